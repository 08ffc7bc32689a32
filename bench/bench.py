#!/usr/bin/env python3
"""dbtd benchmarks; prints a table.

(a) wall time of a run of the example project through dbtd (clone, profile,
    dbt deps, dbt build) against the same four steps done by a plain shell
    script, median of N runs each, as a ratio (target <= 1.05);
(b) dbtd's resident memory when idle, after start and after those runs
    (target <= 8 MB).
"""
import os
import shutil
import signal
import socket
import statistics
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


def main():
    tmp = tempfile.mkdtemp(prefix="dbtd-bench-")
    repo = os.path.join(tmp, "jaffle_shop")
    shutil.copytree(os.path.join(SRC, "examples", "jaffle_shop"), repo,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@dbtd.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "bench"], check=True)
    script = os.path.join(tmp, "baseline.sh")
    with open(script, "w") as f:
        f.write(BASELINE)
    os.chmod(script, 0o755)

    sock = os.path.join(tmp, "dbtd.sock")
    log = open(os.path.join(tmp, "dbtd.log"), "w")
    d = subprocess.Popen([os.path.join(BUILD, "daemon", "dbtd"), "--socket", sock,
                          "--state-dir", os.path.join(tmp, "state"),
                          "--plugin-dir", os.path.join(BUILD, "plugins", ".libs")],
                         stderr=log, env=ENV)
    for _ in range(200):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            break
        except OSError:
            time.sleep(0.05)
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
    print(f"dbtd benchmark: {N} runs each, {os.cpu_count()} CPUs")
    print(f"{'measure':52} {'value':>8}  target")
    for name, v, target in rows:
        print(f"{name:52} {v:>8}  {target}")
    ok = ratio <= 1.05 and idle_start <= 8192 and idle_after <= 8192
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
