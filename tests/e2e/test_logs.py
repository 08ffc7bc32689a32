"""Step logs: capture with timestamps, search, download, live follow, dbt
progress, and durability across kill -9 of dbtd."""
import json
import os
import re
import signal
import subprocess
import time

from conftest import DBT, DBTCTL, FIXTURES, Dbtd, git, make_repo, setup_job

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def log_lines(d, run_id, *args):
    p = d.ctl("--json", "run", "logs", run_id, *args)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


def wrapper(workdir, body, name="dbt-wrapper"):
    """A --dbt that runs some shell first, then the real dbt."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + f'\nexec {DBT} "$@"\n')
    os.chmod(path, 0o755)
    return path


def test_step_logs_hold_dbt_lines_with_timestamps(dbtd, repo, workdir):
    setup_job(dbtd, repo, workdir)
    run = dbtd.json("job", "run", "nightly", "--wait")
    lines = log_lines(dbtd, run["id"])
    assert {l["step_name"] for l in lines} == {s["name"] for s in run["steps"]}
    for l in lines:
        assert RFC3339_MS.match(l["ts"]), l
        assert l["stream"] in ("info", "out", "err")
    build = [l for l in lines if l["step"] == 4]
    assert build[0]["text"] == f"$ {DBT} build"           # the exact command line first
    assert any("Running with dbt=" in l["text"] for l in build)
    assert any(re.search(r"Done\. PASS=\d+", l["text"]) for l in build)
    assert re.match(r"dbt exited with status 0 after ", build[-2]["text"]) or \
        any("exited with status 0" in l["text"] for l in build[-3:])
    assert build[-1]["text"].startswith("Invoke dbt build completed after ")
    assert [l["line"] for l in build] == list(range(1, len(build) + 1))
    clone = [l for l in lines if l["step"] == 1]
    assert any(run["commit_sha"] in l["text"] for l in clone)
    # the human form has a header per step and the lines in order
    human = dbtd.ok("run", "logs", run["id"]).stdout
    assert human.count("== Step ") == 4
    assert "== Step 4: Invoke dbt build (completed" in human
    assert dbtd.ok("run", "logs", run["id"], "--step", "build").stdout.count("== Step ") == 1
    assert dbtd.ok("run", "logs", run["id"], "--step", "2").stdout.count("== Step 2:") == 1
    assert dbtd.ctl("run", "logs", run["id"], "--step", "9").returncode in (2, 4)
    assert dbtd.ctl("run", "logs", 999).returncode == 4


def test_search_finds_the_failing_models_error(dbtd, repo, workdir):
    with open(os.path.join(FIXTURES, "bad_model.sql")) as src, \
            open(os.path.join(repo, "models", "marts", "broken.sql"), "w") as dst:
        dst.write(src.read())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken model")
    setup_job(dbtd, repo, workdir)
    run = json.loads(dbtd.ctl("--json", "job", "run", "nightly", "--wait").stdout)
    assert run["status"] == "failed"
    p = dbtd.ctl("run", "logs", run["id"], "--search", "error")
    assert p.returncode == 0
    hits = p.stdout.splitlines()
    assert any(l.startswith("Invoke dbt build:") and
               'Referenced column "dbtd_no_such_column" not found' in l for l in hits)
    assert all(re.match(r"^[^:]+:\d+: ", l) for l in hits)
    # case: insensitive by default, sensitive on request
    assert dbtd.ctl("run", "logs", run["id"], "--search", "BINDER ERROR").returncode == 0
    assert dbtd.ctl("run", "logs", run["id"], "--search", "BINDER ERROR",
                    "--case-sensitive").returncode == 1
    # nothing matched: exit 1, as grep
    p = dbtd.ctl("run", "logs", run["id"], "--search", "no line says this")
    assert p.returncode == 1 and p.stdout == ""
    # POSIX ERE, one step, and context lines in grep's form
    p = dbtd.ctl("run", "logs", run["id"], "--step", "build", "--regex", "--search",
                 r"ERROR=[1-9][0-9]*")
    assert p.returncode == 0 and "ERROR=1" in p.stdout
    p = dbtd.ctl("run", "logs", run["id"], "--search", "Binder Error", "-C", "1")
    out = p.stdout.splitlines()
    m = next(i for i, l in enumerate(out) if re.match(r"^Invoke dbt build:\d+: ", l))
    n = int(out[m].split(":")[1])
    assert out[m - 1].startswith(f"Invoke dbt build-{n - 1}-")
    assert out[m + 1].startswith(f"Invoke dbt build-{n + 1}-")
    assert dbtd.ctl("run", "logs", run["id"], "--regex", "--search", "(").returncode == 2


def test_download_is_exact_and_odd_bytes_survive(dbtd, repo, workdir):
    blob = bytes(b for b in range(256) if b not in (10, 13))
    with open(os.path.join(workdir, "blob"), "wb") as f:
        f.write(blob + b"\n")
    big = b"x" * 1000000
    with open(os.path.join(workdir, "big"), "wb") as f:
        f.write(big + b"\n")
    dbt = wrapper(workdir, f'cat {workdir}/blob >&2\ncat {workdir}/big')
    setup_job(dbtd, repo, workdir, dbt=dbt)
    run = dbtd.json("job", "run", "nightly", "--wait")
    assert run["status"] == "completed"
    out = os.path.join(workdir, "run.log")
    p = dbtd.ctl("run", "logs", run["id"], "--output", out)
    assert p.returncode == 0 and p.stdout == ""
    data = open(out, "rb").read()
    assert blob in data                      # raw bytes, as the step printed them
    assert big in data                       # the 1 MB line, whole
    assert data.count(big) == 2              # once per dbt invocation (deps, build)
    # the same log, printed: escaped, so a terminal is safe
    shown = dbtd.ok("run", "logs", run["id"], "--step", "3").stdout
    assert "\\x00\\x01" in shown and "\x01" not in shown
    # and --output again gives the same bytes
    out2 = os.path.join(workdir, "run2.log")
    dbtd.ok("run", "logs", run["id"], "--output", out2)
    assert open(out2, "rb").read() == data


def test_secrets_are_masked_but_short_ones_only_warned_about(dbtd, repo, workdir):
    """A secret is masked in every stored line.  One under 4 bytes would shred
    every line if masked: it is left alone, and dbtd's log names it, not its
    value, once per run."""
    dbt = wrapper(workdir, 'echo "token Q7 and Q7Q7, hook s3cret-hook-42 in s3cret-hook-42!"\n'
                  'exit 0')
    for project, secret in (("short", "Q7"), ("long", "s3cret-hook-42")):
        env = dict(os.environ, HOOK_SECRET=secret)
        dbtd.ok("project", "add", project, "--repo", repo, "--webhook-secret-env", "HOOK_SECRET",
                env=env)
        dbtd.ok("env", "add", f"{project}-env", "--project", project, "--branch", "main",
                "--destination", "duckdb", "--path", os.path.join(workdir, f"{project}.duckdb"),
                "--dbt", dbt)
        dbtd.ok("job", "add", f"{project}-job", "--env", f"{project}-env",
                "--command", "dbt build")
    short = dbtd.json("job", "run", "short-job", "--wait")
    long = dbtd.json("job", "run", "long-job", "--wait")
    texts = {r: [l["text"] for l in log_lines(dbtd, r)] for r in (short["id"], long["id"])}
    assert "token Q7 and Q7Q7, hook s3cret-hook-42 in s3cret-hook-42!" in texts[short["id"]]
    assert "token Q7 and Q7Q7, hook *** in ***!" in texts[long["id"]]
    assert not any("s3cret-hook-42" in t for t in texts[long["id"]])
    warned = [l for l in dbtd.log().splitlines() if "is shorter than 4 bytes" in l]
    assert len(warned) == 1, dbtd.log()
    assert f"run {short['id']}: the project's webhook secret is shorter" in warned[0]
    assert "Q7" not in warned[0]


def test_follow_sees_lines_before_the_step_ends(dbtd, repo, workdir):
    dbt = wrapper(workdir, 'if [ "$1" = build ]; then for i in 1 2 3 4 5 6 7 8 9 10; do '
                           'echo "tick $i"; sleep 0.3; done; fi')
    setup_job(dbtd, repo, workdir, dbt=dbt)
    run_id = json.loads(dbtd.ctl("--json", "job", "run", "nightly").stdout)["id"]
    f = subprocess.Popen([DBTCTL, "--socket", dbtd.sock, "run", "logs", str(run_id), "--follow"],
                         stdout=subprocess.PIPE, text=True)
    seen_running = False
    for line in f.stdout:
        if line.rstrip().endswith("tick 3"):
            r = dbtd.json("run", "view", run_id)
            seen_running = r["status"] == "running" and r["steps"][3]["status"] == "running"
            break
    assert seen_running, "the follower saw tick 3 only after the step ended"
    rest = f.stdout.read()
    assert f.wait(timeout=120) == 0
    assert "tick 10" in rest and "Done. PASS=" in rest
    assert dbtd.json("run", "view", run_id)["status"] == "completed"


def test_progress_counts_match_dbts_total(dbtd, repo, workdir):
    setup_job(dbtd, repo, workdir)
    run_id = json.loads(dbtd.ctl("--json", "job", "run", "nightly").stdout)["id"]
    live = []
    while True:
        r = dbtd.json("run", "view", run_id)
        p = r["steps"][3].get("progress")
        if r["steps"][3]["status"] == "running" and p:
            live.append(p)
        if r["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert r["status"] == "completed"
    final = r["steps"][3]["progress"]
    summary = next(l["text"] for l in log_lines(dbtd, run_id, "--step", "4")
                   if l["text"].startswith("Done. PASS="))
    total = int(re.search(r"TOTAL=(\d+)", summary).group(1))
    assert final["total"] == total and final["done"] == total
    assert final["failed"] == [] and final["running"] == []
    assert live, "no progress was seen while dbt ran"
    assert all(0 <= p["done"] <= p["total"] == total for p in live)
    assert [p["done"] for p in live] == sorted(p["done"] for p in live)
    assert "nodes" in dbtd.ok("run", "view", run_id).stdout


def test_kill9_keeps_the_log_up_to_the_crash(workdir):
    d = Dbtd(workdir).start()
    repo = make_repo(workdir)
    mark = os.path.join(workdir, "printed")
    dbt = wrapper(workdir, 'if [ "$1" = build ]; then i=0; while :; do i=$((i+1)); '
                           f'echo "line $i"; echo $i > {mark}; sleep 0.05; done; fi')
    setup_job(d, repo, workdir, dbt=dbt)
    run_id = json.loads(d.ctl("--json", "job", "run", "nightly").stdout)["id"]
    deadline = time.time() + 60
    while not (os.path.exists(mark) and int(open(mark).read() or 0) >= 40):
        assert time.time() < deadline
        time.sleep(0.05)
    printed = int(open(mark).read())
    d.stop(signal.SIGKILL)
    d = Dbtd(workdir).start()
    try:
        texts = [l["text"] for l in log_lines(d, run_id, "--step", "4")]
        stored = max(int(t.split()[1]) for t in texts if re.match(r"^line \d+$", t))
        # everything printed up to ~100 ms (2 lines) before the kill is there
        assert stored >= printed - 2, (stored, printed)
        assert [f"line {i}" for i in range(1, stored + 1)] == \
            [t for t in texts if re.match(r"^line \d+$", t)]
        assert d.json("run", "view", run_id)["status"] == "failed"
    finally:
        assert d.stop() == 0
