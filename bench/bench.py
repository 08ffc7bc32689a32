#!/usr/bin/env python3
"""dbtd benchmarks; each prints a table.  usage: bench.py [run|history|throughput|clients ...]

run:        wall time of a run of the example project through dbtd (clone,
            profile, dbt deps, dbt build) against the same four steps done by
            a plain shell script, median of N runs each, as a ratio (target
            <= 1.05); dbtd's idle RSS (target <= 8 MB).
history:    1,000,000 runs over 100 jobs made through the store API; median
            client round trips of run list / run view (targets 5 ms / 2 ms),
            bytes of LMDB per run, dbtd's RSS after the queries.
throughput: 2,000 runs whose steps are plugins that do nothing, 2 run slots:
            runs per second (target >= 200) and orchestration time per run
            (target <= 5 ms).
clients:    the hostile mix of issue 13 against a dbtd with default limits (but
            --max-connections 2048): 1,000 idle connections, 20 that each sent
            a 16 MiB request and stay, 5 that send 15 MiB of a 16 MiB frame and
            stop, 10 that trickle a byte a second, 10 that ask for a 100 MB log
            and never read it, while two runs log 200,000 lines each; dbtd's
            peak RSS (target <= 256 MB, the default --max-client-memory), the
            p99 of another client's round trips meanwhile (target <= 50 ms),
            and every line of the two runs kept.
prune:      1,000,000 runs over 100 jobs pruned to 100,000 (--keep-runs 1000
            --keep-days 0): time taken, data.mdb before and after, 100,000
            runs added afterwards (the file should not grow: LMDB reuses the
            freed pages), the size of a dbtd backup, run list / run view
            latency before, during and after the prune.
logs:       a step printing 1 GiB of short lines (a fake dbt): capture rate
            (target >= 100 MB/s) with dbtd's RSS < 64 MB; --search over a
            200 MB step log (<= 0.5 s); --follow latency (median <= 50 ms).
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("DBTD_BUILDDIR") or (
    os.path.join(SRC, "build") if os.path.exists(os.path.join(SRC, "build", "daemon", "dbtd"))
    else SRC)
DBT = os.path.join(os.environ.get("DBTD_VENV") or os.path.join(SRC, ".venv-dbt"), "bin", "dbt")
N = int(os.environ.get("BENCH_RUNS", "5"))
ENV = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")

BASELINE = r"""#!/bin/sh
# The same work as one dbtd run, by hand.
set -e
ws=$(mktemp -d "$BENCH_TMP/ws-XXXXXX")
git clone -q --branch main "$REPO" "$ws/repo"
mkdir -m 700 "$ws/profiles"
cat > "$ws/profiles/profiles.yml" <<YML
jaffle_shop:
  target: dbtd
  outputs:
    dbtd:
      type: duckdb
      path: $DB
      schema: main
      threads: 4
YML
chmod 600 "$ws/profiles/profiles.yml"
cd "$ws/repo"
export DBT_PROFILES_DIR="$ws/profiles" DBT_USE_COLORS=false
"$DBT" deps >/dev/null
"$DBT" build >/dev/null
cd /
rm -rf "$ws"
"""


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def example_repo(tmp):
    """A Git repository of the example project in tmp."""
    repo = os.path.join(tmp, "jaffle_shop")
    shutil.copytree(os.path.join(SRC, "examples", "jaffle_shop"), repo,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@dbtd.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "bench"], check=True)
    return repo


def start_dbtd(tmp, plugin_dir=None, extra=()):
    sock = os.path.join(tmp, "dbtd.sock")
    log = open(os.path.join(tmp, "dbtd.log"), "a")
    d = subprocess.Popen([os.path.join(BUILD, "daemon", "dbtd"), "--socket", sock,
                          "--state-dir", os.path.join(tmp, "state"),
                          "--plugin-dir", plugin_dir or os.path.join(BUILD, "plugins", ".libs")]
                         + list(extra), stderr=log, env=ENV)
    for _ in range(400):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            break
        except OSError:
            time.sleep(0.05)
    return d, sock


def mem_kb(pid):
    """VmRSS, RssAnon (private), RssFile (mapped files, e.g. LMDB pages)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(line.split()[1])
    return out


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(title, rows):
    print(title)
    print(f"{'measure':56} {'value':>10}  target")
    for name, v, target in rows:
        print(f"{name:56} {v:>10}  {target}")
    print()


def bench_history(n=1000000, jobs=100):
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    state = os.path.join(tmp, "state")
    t0 = time.monotonic()
    subprocess.run([os.path.join(BUILD, "bench", "gen_runs"), state, str(n), str(jobs)],
                   check=True)
    gen = time.monotonic() - t0
    size = os.path.getsize(os.path.join(state, "data.mdb"))
    d, sock = start_dbtd(tmp)
    out = subprocess.run([os.path.join(BUILD, "bench", "rtt"), sock, "500", str(n)],
                         check=True, capture_output=True, text=True).stdout
    mem = mem_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    res = {l.split()[0]: (float(l.split()[1]), float(l.split()[2])) for l in out.splitlines()}
    rows = [(f"runs made through the store API ({jobs} jobs)", f"{n}", ""),
            ("time to make them (s)", f"{gen:.1f}", "")]
    ok = True
    for key, label, target in (
            ("run_list_limit_50", "run list --limit 50: median ms (p95)", 5),
            ("run_list_job_limit_50", "run list --job J --limit 50: median ms (p95)", 5),
            ("run_list_status_failed_limit_50", "run list --status failed --limit 50: median ms (p95)", 5),
            ("run_view", "run view ID: median ms (p95)", 2)):
        med, p95 = res[key]
        ok = ok and med <= target
        rows.append((label, f"{med:.3f} ({p95:.2f})", f"<= {target}"))
    rows += [("LMDB bytes per run (data.mdb / runs)", f"{size / n:.0f}", ""),
             ("dbtd RSS after the queries (MB)", f"{mem['VmRSS'] / 1024:.1f}", ""),
             ("  of which private (MB)", f"{mem['RssAnon'] / 1024:.1f}", ""),
             ("  of which mapped LMDB pages (MB)", f"{mem['RssFile'] / 1024:.1f}", "")]
    table(f"run history: {n} runs, 500 queries each", rows)
    return ok


def bench_prune(n=1000000, jobs=100, keep=1000, extra=100000):
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    state = os.path.join(tmp, "state")
    data = os.path.join(state, "data.mdb")
    gen = os.path.join(BUILD, "bench", "gen_runs")
    rtt = os.path.join(BUILD, "bench", "rtt")
    ctl = os.path.join(BUILD, "client", "dbtctl")
    t0 = time.monotonic()
    subprocess.run([gen, state, str(n), str(jobs)], check=True)
    gen_s = time.monotonic() - t0
    size0 = os.path.getsize(data)
    ENV["DBTD_TEST_AUTO_PRUNE"] = "0"  # the benchmark says when
    extra_args = ["--keep-runs", str(keep), "--keep-days", "0"]

    def lat(sock, lo=1):
        out = subprocess.run([rtt, sock, "300", str(n), str(lo)], check=True,
                             capture_output=True, text=True).stdout
        return {l.split()[0]: (float(l.split()[1]), float(l.split()[2]))
                for l in out.splitlines()}

    d, sock = start_dbtd(tmp, extra=extra_args)
    before = lat(sock)
    # run view meanwhile: the loop must keep answering while the pass works
    during = subprocess.Popen([rtt, sock, "3000", str(n), str(n - jobs * keep // 2 + 1)],
                              stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    rep = json.loads(subprocess.run([ctl, "--socket", sock, "--json", "run", "prune"],
                                    check=True, capture_output=True, text=True).stdout)
    prune_s = time.monotonic() - t0
    dur = {l.split()[0]: (float(l.split()[1]), float(l.split()[2]))
           for l in during.communicate()[0].splitlines()}
    after = lat(sock, n - jobs * keep // 2 + 1)  # ids every job keeps
    rss = mem_kb(d.pid)["VmRSS"]
    d.send_signal(signal.SIGTERM)
    d.wait()
    size1 = os.path.getsize(data)
    copy = os.path.join(tmp, "backup.mdb")
    t0 = time.monotonic()
    subprocess.run([os.path.join(BUILD, "daemon", "dbtd"), "backup", copy, "--state-dir", state],
                   check=True, capture_output=True)
    backup_s = time.monotonic() - t0
    backup = os.path.getsize(copy)
    subprocess.run([gen, state, str(extra), str(jobs), str(int(time.time() * 1000)), "1000"],
                   check=True)
    size2 = os.path.getsize(data)
    del ENV["DBTD_TEST_AUTO_PRUNE"]
    shutil.rmtree(tmp, ignore_errors=True)
    mib = lambda b: f"{b / 1048576:.0f}"
    rows = [(f"runs made through the store API ({jobs} jobs)", f"{n}", ""),
            ("time to make them (s)", f"{gen_s:.1f}", ""),
            (f"run prune --keep-runs {keep}: runs deleted", f"{rep['runs']}", f"{n - jobs * keep}"),
            ("  time taken (s)", f"{prune_s:.1f}", ""),
            ("data.mdb before the prune (MiB)", mib(size0), ""),
            ("data.mdb after the prune (MiB)", mib(size1), "same: LMDB keeps its file"),
            (f"data.mdb after {extra} more runs (MiB)", mib(size2), f"<= {mib(size1)}"),
            ("dbtd backup of the pruned store (MiB)", mib(backup), ""),
            ("  time taken (s)", f"{backup_s:.1f}", "")]
    for key, label in (("run_list_limit_50", "run list --limit 50"),
                       ("run_list_job_limit_50", "run list --job J --limit 50"),
                       ("run_view", "run view ID")):
        rows.append((f"{label}: median ms (p95), before", "%.3f (%.2f)" % before[key], ""))
        rows.append((f"{label}: median ms (p95), after", "%.3f (%.2f)" % after[key], ""))
    rows.append(("run view during the prune: median ms (p95)", "%.3f (%.2f)" % dur["run_view"],
                 ""))
    rows.append(("dbtd RSS after the prune (MB)", f"{rss / 1024:.1f}", ""))
    table(f"retention: {n} runs pruned to {jobs * keep}", rows)
    return rep["runs"] == n - jobs * keep and size2 <= size1


def bench_throughput(n=2000, slots=2):
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    pdir = os.path.join(tmp, "plugins")
    os.mkdir(pdir)
    os.mkdir(os.path.join(tmp, "db"))
    for t in ("git-clone", "dbt-profile", "dbt"):
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", os.path.join(SRC, "include"),
                        f'-DSTEP_TYPE="{t}"', "-o", os.path.join(pdir, t + ".so"),
                        os.path.join(SRC, "bench", "noop_step.c")], check=True)
    d, sock = start_dbtd(tmp, pdir, ["--max-concurrent-runs", str(slots)])
    out = subprocess.run([os.path.join(BUILD, "bench", "burst"), sock, str(n),
                          os.path.join(tmp, "repo"), os.path.join(tmp, "db")],
                         check=True, capture_output=True, text=True).stdout.split()
    runs, secs, completed = int(out[0]), float(out[1]), int(out[2])
    cpu = cpu_s(d.pid)
    mem = mem_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    rate = runs / secs
    per_run = secs * slots / runs * 1000
    rows = [("runs triggered / completed", f"{runs}/{completed}", ""),
            ("wall time, first trigger to last run ended (s)", f"{secs:.2f}", ""),
            ("runs per second", f"{rate:.0f}", ">= 200"),
            ("orchestration time per run (ms of a slot)", f"{per_run:.2f}", "<= 5"),
            ("dbtd CPU per run, incl. adding the jobs (ms)", f"{cpu / runs * 1000:.2f}", ""),
            ("dbtd RSS after (MB)", f"{mem['VmRSS'] / 1024:.1f}", "")]
    table(f"throughput: {n} runs of do-nothing steps, {slots} run slots", rows)
    return rate >= 200 and per_run <= 5 and completed == runs


def fake_dbt(tmp, name, build_body):
    """A --dbt for benchmarks: deps does nothing, build runs build_body."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write('#!/bin/sh\nif [ "$1" = build ]; then\n' + build_body + "\nfi\nexit 0\n")
    os.chmod(path, 0o755)
    return path


def bench_logs():
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    repo = example_repo(tmp)
    py = os.path.join(os.path.dirname(DBT), "python")
    line = "2026-11-28 12:00:00.000 chatty step: processing record batch 0000000042"
    gib = fake_dbt(tmp, "dbt-1gib", f'yes "{line}" | head -c 1073741824')
    mb200 = fake_dbt(tmp, "dbt-200mb",
                     f"{py} -c \"import sys\n"
                     f"w=sys.stdout.write\n"
                     f"for i in range(2800000): w('{line} %d\\n' % i if i % 100000 else 'the needle is here %d\\n' % i)\"")
    ticks = fake_dbt(tmp, "dbt-ticks",
                     f"{py} -c \"import time,sys\n"
                     f"for i in range(250):\n"
                     f"  print('tick', time.time_ns(), flush=True); time.sleep(0.02)\"")
    d, sock = start_dbtd(tmp)

    def ctl(*args, **kw):
        return subprocess.run([os.path.join(BUILD, "client", "dbtctl"), "--socket", sock]
                              + [str(a) for a in args], capture_output=True, text=True,
                              env=ENV, **kw)

    ctl("project", "add", "shop", "--repo", repo)
    for name, dbt in (("gib", gib), ("mb200", mb200), ("ticks", ticks)):
        ctl("env", "add", name, "--project", "shop", "--branch", "main", "--destination",
            "duckdb", "--path", os.path.join(tmp, name + ".duckdb"), "--dbt", dbt)
        ctl("job", "add", name, "--env", name, "--command", "dbt build")

    # (1) 1 GiB of short lines: capture rate and dbtd's RSS throughout
    import json
    import threading
    rid = json.loads(ctl("--json", "job", "run", "gib").stdout)["id"]
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], mem_kb(d.pid)["VmRSS"])
            time.sleep(0.05)
    th = threading.Thread(target=sample)
    th.start()
    run = json.loads(ctl("--json", "run", "watch", rid).stdout)
    done.set()
    th.join()
    step = run["steps"][3]
    rate = 1024 / (step["duration_ms"] / 1000)
    stored = os.path.getsize(os.path.join(tmp, "state", "data.mdb"))

    # (2) --search over a 200 MB stored log
    rid2 = json.loads(ctl("--json", "job", "run", "mb200", "--wait").stdout)["id"]
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        p = subprocess.run([os.path.join(BUILD, "client", "dbtctl"), "--socket", sock, "run",
                            "logs", str(rid2), "--step", "4", "--search", "needle is here"],
                           stdout=subprocess.PIPE, env=ENV)
        times.append(time.monotonic() - t0)
        hits = p.stdout.count(b"\n")
    search_s = statistics.median(times)

    # (3) --follow: from a line printed by the step to the line shown by the client
    rid3 = json.loads(ctl("--json", "job", "run", "ticks").stdout)["id"]
    f = subprocess.Popen([os.path.join(BUILD, "client", "dbtctl"), "--socket", sock, "run",
                          "logs", str(rid3), "--step", "4", "--follow"],
                         stdout=subprocess.PIPE, text=True, env=ENV)
    lat = []
    for l in f.stdout:
        now = time.time_ns()
        m = l.split()
        if len(m) >= 4 and m[-2] == "tick":
            lat.append((now - int(m[-1])) / 1e6)
    f.wait()
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median(lat) if lat else float("inf")
    rows = [("1 GiB of short lines: capture rate (MB/s)", f"{rate:.0f}", ">= 100"),
            ("  dbtd peak RSS during the capture (MB)", f"{peak[0] / 1024:.1f}", "< 64"),
            ("  state after it (data.mdb, MB)", f"{stored / 1e6:.0f}", ""),
            ("--search over a 200 MB step log: median s (3 runs)", f"{search_s:.3f}", "<= 0.5"),
            ("  matching lines found", f"{hits}", "28"),
            ("--follow: median line latency (ms)", f"{med:.1f}", "<= 50"),
            ("  lines followed", f"{len(lat)}", "250")]
    table("step logs", rows)
    return rate >= 100 and peak[0] < 64 * 1024 and search_s <= 0.5 and med <= 50 \
        and hits == 28 and len(lat) == 250


def bench_lineage(n=5000):
    """Lineage of a generated 5,000-model project: read and stored by the
    runner, then shown by dbtctl."""
    import json
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    manifest = os.path.join(gen, "manifest.json")
    subprocess.run([sys.executable, os.path.join(SRC, "bench", "gen_manifest.py"), str(n),
                    manifest, "--run-results", os.path.join(gen, "run_results.json")],
                   check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(manifest)
    out = subprocess.run([os.path.join(BUILD, "bench", "lineage_bench"), gen], check=True,
                         capture_output=True, text=True).stdout
    read_ms = float(re.search(r"wall\s+([0-9.]+) ms", out).group(1))
    rss_mb = float(re.search(r"peak RSS\s+([0-9.]+) MB", out).group(1))
    repo = example_repo(tmp)
    dbt = fake_dbt(tmp, "dbt-manifest", f"mkdir -p target && cp {gen}/*.json target/")
    d, sock = start_dbtd(tmp)

    def ctl(*args):
        return subprocess.run([os.path.join(BUILD, "client", "dbtctl"), "--socket", sock]
                              + [str(a) for a in args], capture_output=True, text=True, env=ENV)
    ctl("project", "add", "p", "--repo", repo)
    ctl("env", "add", "e", "--project", "p", "--branch", "main", "--destination", "duckdb",
        "--path", os.path.join(tmp, "x.duckdb"), "--dbt", dbt)
    ctl("job", "add", "j", "--env", "e", "--command", "dbt build")
    run = json.loads(ctl("--json", "job", "run", "j", "--wait").stdout)
    step_ms = run["steps"][3]["duration_ms"]
    g = json.loads(ctl("--json", "run", "lineage", run["id"], "--format", "json").stdout)
    mid = sorted(x["name"] for x in g["nodes"] if x["resource_type"] == "model")[n // 2]

    def timed(*args):
        t = []
        for _ in range(5):
            t0 = time.monotonic()
            p = ctl(*args)
            t.append((time.monotonic() - t0) * 1000)
            assert p.returncode == 0, p.stderr
        return statistics.median(t)
    json_ms = timed("run", "lineage", run["id"], "--format", "json")
    sel_ms = timed("run", "lineage", run["id"], "--format", "json", "--select", mid + "+")
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    rows = [(f"manifest of {n} models (MB)", f"{size / 1e6:.1f}", ""),
            ("read into the graph (ms)", f"{read_ms:.0f}", "<= 1000 (read and stored)"),
            ("  peak RSS of the reader (MB)", f"{rss_mb:.1f}", f"<= {10 * size / 1e6:.0f} (10x)"),
            ("  the dbt step through dbtd: copy + read + store (ms)", f"{step_ms}", ""),
            ("run lineage --format json, whole dbtctl call (ms, median)", f"{json_ms:.1f}", "<= 50"),
            (f"run lineage --select {mid}+ (ms, median)", f"{sel_ms:.1f}", "<= 20"),
            ("nodes in the graph", f"{len(g['nodes'])}", "")]
    table("lineage", rows)
    return read_ms <= 1000 and rss_mb <= 10 * size / 1e6 and json_ms <= 50 and sel_ms <= 20


def bench_run():
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    repo = example_repo(tmp)
    script = os.path.join(tmp, "baseline.sh")
    with open(script, "w") as f:
        f.write(BASELINE)
    os.chmod(script, 0o755)

    d, sock = start_dbtd(tmp)
    time.sleep(0.5)
    idle_start = rss_kb(d.pid)

    def ctl(*args):
        return subprocess.run([os.path.join(BUILD, "client", "dbtctl"), "--socket", sock]
                              + list(args), check=True, capture_output=True, text=True, env=ENV)

    ctl("project", "add", "shop", "--repo", repo)
    ctl("env", "add", "prod", "--project", "shop", "--branch", "main", "--destination",
        "duckdb", "--path", os.path.join(tmp, "dbtd.duckdb"), "--threads", "4", "--dbt", DBT)
    ctl("job", "add", "nightly", "--env", "prod", "--command", "dbt build")

    benv = dict(ENV, REPO=repo, DB=os.path.join(tmp, "plain.duckdb"), DBT=DBT, BENCH_TMP=tmp)
    t_dbtd, t_plain = [], []
    for i in range(N + 1):  # the first round warms caches and is not counted
        t0 = time.monotonic()
        subprocess.run([script], check=True, env=benv)
        t1 = time.monotonic()
        ctl("job", "run", "nightly", "--wait")
        t2 = time.monotonic()
        if i:
            t_plain.append(t1 - t0)
            t_dbtd.append(t2 - t1)
    time.sleep(0.5)
    idle_after = rss_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    mp, md = statistics.median(t_plain), statistics.median(t_dbtd)
    ratio = md / mp
    rows = [
        ("run of the example, plain shell script (median s)", f"{mp:.3f}", ""),
        ("run of the example, through dbtd (median s)", f"{md:.3f}", ""),
        ("ratio dbtd / plain", f"{ratio:.3f}", "<= 1.05"),
        ("dbtd idle RSS after start (MB)", f"{idle_start / 1024:.1f}", "<= 8"),
        ("dbtd idle RSS after the runs (MB)", f"{idle_after / 1024:.1f}", "<= 8"),
    ]
    table(f"a run of the example: {N} runs each, {os.cpu_count()} CPUs", rows)
    return ratio <= 1.05 and idle_start <= 8192 and idle_after <= 8192


def bench_schedule(n=10000, every=20, extra=200, window=60):
    """10,000 scheduled jobs: dbtd's CPU over a minute, and job add latency."""
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    pdir = os.path.join(tmp, "plugins")
    os.mkdir(pdir)
    for t in ("git-clone", "dbt-profile", "dbt"):
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", os.path.join(SRC, "include"),
                        f'-DSTEP_TYPE="{t}"', "-o", os.path.join(pdir, t + ".so"),
                        os.path.join(SRC, "bench", "noop_step.c")], check=True)
    d, sock = start_dbtd(tmp, pdir)
    out = subprocess.run([os.path.join(BUILD, "bench", "sched"), sock, str(n), str(every),
                          str(extra), os.path.join(tmp, "repo"),
                          os.path.join(tmp, "w.duckdb")],
                         check=True, capture_output=True, text=True).stdout.split()
    added, med, p95, xmed, xp95, xmax = int(out[0]), *map(float, out[1:])
    # a whole minute of the scheduler holding n jobs (every-minute ones fire)
    c0, t0 = cpu_s(d.pid), time.monotonic()
    time.sleep(window)
    cpu = cpu_s(d.pid) - c0
    wall = time.monotonic() - t0
    ctl = [os.path.join(BUILD, "client", "dbtctl"), "--socket", sock, "--json"]
    runs = json.loads(subprocess.run(ctl + ["run", "list", "--trigger", "scheduled",
                                            "--limit", "10000"], check=True,
                                           capture_output=True, text=True).stdout)
    mem = mem_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    share = cpu / wall * 100
    rows = [("scheduled jobs", f"{added + extra}", ""),
            ("job add while adding them, median / p95 (ms)", f"{med:.2f} / {p95:.2f}", ""),
            (f"job add of one more, median of {extra} (ms)", f"{xmed:.2f}", "<= 5"),
            ("  p95 / max (ms)", f"{xp95:.2f} / {xmax:.2f}", ""),
            (f"dbtd CPU over {wall:.0f} s, % of a core", f"{share:.2f}", "<= 1"),
            (f"  scheduled runs fired in that time ({every} jobs every minute)",
             f"{len(runs)}", ""),
            ("dbtd RSS (MB)", f"{mem['VmRSS'] / 1024:.1f}", "")]
    table(f"scheduler: {added + extra} jobs with cron schedules", rows)
    return xmed <= 5 and share <= 1 and len(runs) >= every


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _frame(payload):
    return struct.pack(">I", len(payload)) + payload


def _hello(name_len=5):
    """A Request{hello: Hello{protocol_version: 1, client: "x" * name_len}} frame."""
    hello = b"\x08\x01" + b"\x12" + _varint(name_len) + b"x" * name_len
    return _frame(b"\x0a" + _varint(len(hello)) + hello)


def _webhook(size):
    """A Request{webhook: Webhook{forge: "github", event: "push", payload}}
    frame of `size` bytes: the largest a request may be, within every limit
    (a payload is bounded by the frame alone); dbtd answers an error."""
    head = b"\x0a\x06github" + b"\x12\x04push"
    n = size - 16  # room for the headers and length prefixes
    while True:
        hook = head + b"\x32" + _varint(n) + b"x" * n
        payload = b"\x92\x01" + _varint(len(hook)) + hook
        if len(payload) <= size:
            return _frame(payload)
        n -= len(payload) - size


def _read_frame(s):
    def exact(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("dbtd closed the connection")
            buf += chunk
        return bytes(buf)
    (n,) = struct.unpack(">I", exact(4))
    return exact(n)


def bench_clients(idle=1000, big=20, partial=5, tricklers=10, readers=10, seconds=8.0,
                  lines=200000):
    import threading
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    d, sock = start_dbtd(tmp, extra=["--max-connections", "2048",
                                     "--max-concurrent-runs", "3"])
    dbtctl = os.path.join(BUILD, "client", "dbtctl")

    def ctl(*args):
        return subprocess.run([dbtctl, "--socket", sock] + [str(a) for a in args],
                              capture_output=True, text=True, env=ENV)

    # a 100 MB step log for clients that ask for it and never read, and two
    # runs that log steadily through the whole mix (every line must be kept)
    py = os.path.join(os.path.dirname(DBT), "python")
    repo = example_repo(tmp)
    big_log = fake_dbt(tmp, "dbt-big", 'yes "a line of a large step log, kept to be read" '
                                       '| head -c 100000000')
    steady = fake_dbt(tmp, "dbt-steady",
                      f"{py} -c \"import sys,time\n"
                      f"for i in range({lines}):\n"
                      f"  print('steady line', i, flush=not i % 500)\n"
                      f"  (i % 500) or time.sleep({seconds} * 500 / {lines})\"")
    ctl("project", "add", "shop", "--repo", repo)
    for name, dbt in (("big", big_log), ("steady", steady)):
        ctl("env", "add", name, "--project", "shop", "--branch", "main", "--destination",
            "duckdb", "--path", os.path.join(tmp, name + ".duckdb"), "--dbt", dbt)
    ctl("job", "add", "big", "--env", "big", "--command", "dbt build")
    for j in ("steady1", "steady2"):
        ctl("job", "add", j, "--env", "steady", "--command", "dbt build")
    big_run = json.loads(ctl("--json", "job", "run", "big", "--wait").stdout)["id"]

    def connect(hello=True):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        if hello:
            c.sendall(_hello())
            _read_frame(c)
        return c

    peak = [0]
    lat = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], mem_kb(d.pid)["VmRSS"])
            time.sleep(0.02)

    def probe():
        c = connect()
        while not stop.is_set():
            t0 = time.monotonic()
            c.sendall(_frame(b"\x28\x01"))  # list projects
            _read_frame(c)
            lat.append((time.monotonic() - t0) * 1000)
            time.sleep(0.005)
        c.close()

    def trickle(socks):
        header = struct.pack(">I", 100)
        for i in range(int(seconds) + 2):
            for t in socks:
                try:
                    t.send(header[i:i + 1] if i < 4 else b"x")
                except OSError:
                    pass
            if stop.wait(1.0):
                return

    threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
    for t in threads:
        t.start()
    steady_runs = [json.loads(ctl("--json", "job", "run", j).stdout)["id"]
                   for j in ("steady1", "steady2")]
    # dbtctl processes whose output nobody reads: they stop reading dbtd
    stuck = [subprocess.Popen([dbtctl, "--socket", sock, "run", "logs", str(big_run)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)
             for _ in range(readers)]
    t0 = time.monotonic()
    conns = [connect() for _ in range(idle)]
    trick = [connect(hello=False) for _ in range(tricklers)]
    threads.append(threading.Thread(target=trickle, args=(trick,)))
    threads[-1].start()
    req = _webhook(16 * 1024 * 1024)
    for _ in range(big):
        c = connect()
        c.sendall(req)
        _read_frame(c)
        conns.append(c)
    part = struct.pack(">I", 16 * 1024 * 1024) + b"\0" * (15 * 1024 * 1024)
    for _ in range(partial):
        c = connect()
        try:
            c.sendall(part)
        except OSError:
            pass
        conns.append(c)
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    stop.set()
    for t in threads:
        t.join()
    end = mem_kb(d.pid)["VmRSS"]
    for c in conns + trick:
        c.close()
    for p in stuck:
        p.kill()
        p.wait()
    kept, notes = 0, 0
    for rid in steady_runs:
        run = json.loads(ctl("--json", "run", "watch", rid).stdout)
        out = ctl("run", "logs", rid, "--step", "4").stdout
        kept += out.count("steady line")
        notes += out.count("could not be stored") + (1 if run.get("error") else 0)
    d.send_signal(signal.SIGTERM)
    d.wait()
    with open(os.path.join(tmp, "dbtd.log")) as f:
        log = f.read()
    shutil.rmtree(tmp, ignore_errors=True)
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    rows = [("connections: idle/16 MiB sent/15 MiB partial/trickling/not reading",
             f"{idle}/{big}/{partial}/{tricklers}/{readers}", ""),
            ("log lines of 2 runs logging meanwhile: kept/printed",
             f"{kept}/{2 * lines}", "all"),
            ("  lost-line notes or run errors", f"{notes}", "0"),
            ("dbtd peak RSS (MB)", f"{peak[0] / 1024:.0f}", "<= 256"),
            (f"dbtd RSS after {seconds:.0f} s (MB)", f"{end / 1024:.0f}", ""),
            (f"another client's round trips: {len(lat)}, p50 ms", f"{p50:.2f}", ""),
            ("  p99 ms", f"{p99:.2f}", "<= 50"),
            ("clients dropped: stalled frames (incl. partial)", f"{log.count('stalled')}", ""),
            ("clients dropped: over the memory budget",
             f"{log.count('holding the most memory')}", "")]
    table("clients: a hostile mix against the default limits", rows)
    return peak[0] <= 256 * 1024 and p99 <= 50 and kept == 2 * lines and notes == 0


def main():
    which = sys.argv[1:] or ["run", "history", "throughput", "logs", "lineage", "schedule",
                             "clients"]
    benches = {"run": bench_run, "history": bench_history, "throughput": bench_throughput,
               "logs": bench_logs, "lineage": bench_lineage, "prune": bench_prune, "schedule": bench_schedule,
               "clients": bench_clients}
    ok = True
    for name in which:
        if name not in benches:
            print(f"bench: unknown benchmark {name}; choose from {' '.join(benches)}")
            return 2
        ok = benches[name]() and ok
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
