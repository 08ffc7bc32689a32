"""Run lifecycle with real processes: Skipped, Queued (slots and DuckDB
files), cancel, re-run, timeouts, kill -9 of dbtd, and the run history."""
import json
import os
import signal
import time

from conftest import DBT, Dbtd, git, make_repo, wait_for

SLOW_SQL = "select count(*) as n from range(100000000000) t(i)\n"


def add_slow_model(repo):
    """A model that runs until it is interrupted (DuckDB stops it on SIGINT)."""
    with open(os.path.join(repo, "models", "marts", "slow.sql"), "w") as f:
        f.write(SLOW_SQL)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a slow model")


def env_add(d, name, project, db, branch="main"):
    d.ok("env", "add", name, "--project", project, "--branch", branch, "--destination",
         "duckdb", "--path", db, "--threads", "2", "--dbt", DBT)


def view(d, run_id):
    return d.json("run", "view", run_id)


def step_running(d, run_id, name):
    r = view(d, run_id)
    return any(s["name"] == name and s["status"] == "running" for s in r["steps"])


def processes_under(path):
    """Pids of processes whose working directory or command line is under path."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(path) or path in cmd:
            found.append(int(pid))
    return found


def start(d, job):
    """Run Now without waiting; returns the new run's id and status."""
    p = d.ctl("--json", "job", "run", job)
    out = json.loads(p.stdout)
    return out["id"], out["status"], p.returncode


def slow_setup(d, workdir, jobs=("slow",), slow_cmd="dbt build --select slow", db=None):
    repo = make_repo(workdir)
    add_slow_model(repo)
    d.ok("project", "add", "shop", "--repo", repo)
    env_add(d, "prod", "shop", db or os.path.join(workdir, "prod.duckdb"))
    for j in jobs:
        d.ok("job", "add", j, "--env", "prod", "--command", slow_cmd)
    return repo


def test_skipped_while_running(dbtd, workdir):
    slow_setup(dbtd, workdir)
    first, status, rc = start(dbtd, "slow")
    assert rc == 0 and status == "running"
    p = dbtd.ctl("job", "run", "slow")
    assert p.returncode == 1
    assert "skipped" in p.stdout + p.stderr
    assert f"already has run {first} running" in p.stdout + p.stderr
    skipped = dbtd.json("run", "list", "--status", "skipped")
    assert len(skipped) == 1
    s = view(dbtd, skipped[0]["id"])
    assert s["status"] == "skipped" and s["trigger"] == "manual"
    assert s["branch"] == "main" and s["triggered_by"]
    assert s["steps"] == [] and s["started_at"] is None
    p = dbtd.ctl("--json", "job", "run", "slow")
    assert p.returncode == 1 and json.loads(p.stdout)["status"] == "skipped"
    dbtd.ok("run", "cancel", first)


def test_cancel_running_stops_every_process(dbtd, workdir):
    slow_setup(dbtd, workdir)
    run_id, status, _ = start(dbtd, "slow")
    wait_for("dbt build to run", lambda: step_running(dbtd, run_id, "Invoke dbt build --select slow"))
    time.sleep(1.5)  # let dbt reach the query
    work = os.path.join(dbtd.state, "work")
    assert processes_under(work), "the run has processes before the cancel"
    t0 = time.time()
    p = dbtd.ctl("run", "cancel", run_id)
    assert p.returncode == 0, p.stderr
    assert f"run {run_id} canceled" in p.stdout
    assert time.time() - t0 < 10
    r = view(dbtd, run_id)
    assert r["status"] == "canceled"
    assert [s["status"] for s in r["steps"]] == ["completed", "completed", "completed", "canceled"]
    assert r["error"].startswith("canceled by ")
    assert r["finished_at"] and r["duration_ms"] > 0
    assert processes_under(work) == []


def test_cancel_during_clone_skips_later_steps(dbtd, workdir):
    """A cancel right away stops whichever step runs and skips the rest."""
    slow_setup(dbtd, workdir)
    run_id, _, _ = start(dbtd, "slow")
    assert dbtd.ctl("run", "cancel", run_id).returncode == 0
    r = view(dbtd, run_id)
    assert r["status"] == "canceled"
    st = [s["status"] for s in r["steps"]]
    assert "canceled" in st and st[-1] in ("canceled", "skipped")
    after = st[st.index("canceled") + 1:]
    assert all(x == "skipped" for x in after)


def test_queued_behind_busy_slot_then_fifo(workdir):
    d = Dbtd(workdir, extra_args=["--max-concurrent-runs", "1"]).start()
    try:
        repo = slow_setup(d, workdir)
        env_add(d, "other", "shop", os.path.join(workdir, "other.duckdb"))
        d.ok("job", "add", "seed-a", "--env", "other", "--command", "dbt seed")
        d.ok("job", "add", "seed-b", "--env", "other", "--command", "dbt seed")
        slow, status, _ = start(d, "slow")
        assert status == "running"
        a, status_a, _ = start(d, "seed-a")
        b, status_b, _ = start(d, "seed-b")
        assert status_a == "queued" and status_b == "queued"
        ra = view(d, a)
        assert ra["status"] == "queued"
        assert ra["waiting_for"] == "a free run slot (1 of 1 in use)"
        assert ra["started_at"] is None and ra["queued_ms"] >= 0
        assert d.ok("run", "view", a).stdout.count("Waiting for") == 1
        time.sleep(1)
        assert d.ctl("run", "cancel", slow).returncode == 0
        rb = json.loads(d.ctl("--json", "run", "watch", b).stdout)
        ra = view(d, a)
        assert ra["status"] == "completed" and rb["status"] == "completed"
        assert ra["waiting_for"] is None
        assert ra["started_at"] < rb["started_at"]  # FIFO
        assert ra["queued_ms"] >= 1000
        assert git(repo, "rev-parse", "HEAD") == rb["commit_sha"]
    finally:
        assert d.stop() == 0


def test_one_writer_per_duckdb_file(dbtd, workdir):
    """Runs of different jobs writing one DuckDB file never overlap."""
    slow_setup(dbtd, workdir)
    dbtd.ok("job", "add", "seed", "--env", "prod", "--command", "dbt seed")
    env_add(dbtd, "elsewhere", "shop", os.path.join(workdir, "elsewhere.duckdb"))
    dbtd.ok("job", "add", "seed-elsewhere", "--env", "elsewhere", "--command", "dbt seed")
    slow, _, _ = start(dbtd, "slow")
    shared, status, _ = start(dbtd, "seed")
    assert status == "queued"
    r = view(dbtd, shared)
    assert r["waiting_for"].startswith(f'run {slow} (job "slow") to finish: both write ')
    assert r["waiting_for"].endswith("prod.duckdb")
    # a run writing another file is not held up behind it
    other, status, _ = start(dbtd, "seed-elsewhere")
    assert status == "running"
    assert json.loads(dbtd.ctl("--json", "run", "watch", other).stdout)["status"] == "completed"
    assert view(dbtd, shared)["status"] == "queued"
    dbtd.ok("run", "cancel", slow)
    done = json.loads(dbtd.ctl("--json", "run", "watch", shared).stdout)
    assert done["status"] == "completed"
    assert done["started_at"] >= view(dbtd, slow)["finished_at"]


def test_cancel_queued_and_refusals(workdir):
    d = Dbtd(workdir, extra_args=["--max-concurrent-runs", "1"]).start()
    try:
        slow_setup(d, workdir, jobs=("slow", "slow2"))
        slow, _, _ = start(d, "slow")
        queued, status, _ = start(d, "slow2")
        assert status == "queued"
        p = d.ctl("run", "cancel", queued)
        assert p.returncode == 0 and f"run {queued} canceled" in p.stdout
        r = view(d, queued)
        assert r["status"] == "canceled" and r["started_at"] is None
        assert "while queued" in r["error"]
        assert view(d, slow)["status"] == "running"
        # refusals name the status
        p = d.ctl("run", "cancel", queued)
        assert p.returncode == 1
        assert f"run {queued} is canceled: only queued or running runs can be canceled" in p.stderr
        p = d.ctl("run", "rerun", slow)
        assert p.returncode == 1
        assert f"run {slow} is running: only completed or failed runs can be re-run" in p.stderr
        p = d.ctl("run", "rerun", queued)
        assert p.returncode == 1 and "is canceled" in p.stderr
        assert d.ctl("run", "cancel", 999).returncode == 4
        assert d.ctl("run", "rerun", 999).returncode == 4
        d.ok("run", "cancel", slow)
        p = d.ctl("run", "cancel", slow)
        assert p.returncode == 1 and "is canceled" in p.stderr
    finally:
        assert d.stop() == 0


def test_rerun_uses_latest_commit(dbtd, workdir):
    repo = make_repo(workdir)
    dbtd.ok("project", "add", "shop", "--repo", repo)
    env_add(dbtd, "prod", "shop", os.path.join(workdir, "prod.duckdb"))
    dbtd.ok("job", "add", "seed", "--env", "prod", "--command", "dbt seed")
    first = dbtd.json("job", "run", "seed", "--wait")
    assert first["status"] == "completed"
    with open(os.path.join(repo, "README.md"), "a") as f:
        f.write("\nA change after the first run.\n")
    git(repo, "commit", "-q", "-am", "a newer commit")
    head = git(repo, "rev-parse", "HEAD")
    assert head != first["commit_sha"]
    p = dbtd.ctl("--json", "run", "rerun", first["id"], "--wait")
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["trigger"] == "rerun" and again["rerun_of"] == first["id"]
    assert again["commit_sha"] == head
    assert again["status"] == "completed"
    # a failed run can be re-run too, and without --wait it prints the new id
    p = dbtd.ctl("--json", "run", "rerun", again["id"])
    assert p.returncode == 0
    third = json.loads(p.stdout)
    assert third["id"] == again["id"] + 1 and third["status"] in ("queued", "running")
    assert json.loads(dbtd.ctl("--json", "run", "watch", third["id"]).stdout)["status"] == "completed"


def test_timeout_fails_the_run(dbtd, workdir):
    repo = make_repo(workdir)
    add_slow_model(repo)
    dbtd.ok("project", "add", "shop", "--repo", repo)
    env_add(dbtd, "prod", "shop", os.path.join(workdir, "prod.duckdb"))
    dbtd.ok("job", "add", "slow", "--env", "prod", "--command", "dbt build --select slow",
            "--timeout", "8")
    assert dbtd.json("job", "view", "slow")["timeout_s"] == 8
    t0 = time.time()
    p = dbtd.ctl("--json", "job", "run", "slow", "--wait")
    took = time.time() - t0
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["status"] == "failed"
    assert r["error"] == "timed out after 8 s"
    assert r["steps"][-1]["status"] == "failed"
    assert 8 <= took < 8 + 10
    assert processes_under(os.path.join(dbtd.state, "work")) == []


def test_kill9_of_dbtd_mid_run(workdir):
    d = Dbtd(workdir, extra_args=["--max-concurrent-runs", "1"]).start()
    repo = slow_setup(d, workdir)
    env_add(d, "other", "shop", os.path.join(workdir, "other.duckdb"))
    d.ok("job", "add", "seed", "--env", "other", "--command", "dbt seed")
    done = d.json("job", "run", "seed", "--wait")
    assert done["status"] == "completed"
    slow, _, _ = start(d, "slow")
    queued, status, _ = start(d, "seed")
    assert status == "queued"
    wait_for("dbt build to run", lambda: step_running(d, slow, "Invoke dbt build --select slow"))
    work = os.path.join(d.state, "work")
    assert processes_under(work)
    d.stop(signal.SIGKILL)
    # the run's processes do not outlive dbtd
    wait_for("the run's processes to end", lambda: processes_under(work) == [], timeout=10)

    d = Dbtd(workdir, extra_args=["--max-concurrent-runs", "1"]).start()
    try:
        r = view(d, slow)
        assert r["status"] == "failed"
        assert r["error"] == "dbtd stopped while the run was running"
        assert r["steps"][-1]["status"] == "failed"
        # what was committed before the crash is all there
        assert view(d, done["id"]) == done
        assert [j["name"] for j in d.json("job", "list")] == ["slow", "seed"]
        # the queued run starts after the restart
        q = json.loads(d.ctl("--json", "run", "watch", queued).stdout)
        assert q["status"] == "completed"
        assert q["commit_sha"] == git(repo, "rev-parse", "HEAD")
    finally:
        assert d.stop() == 0


def test_run_history_filters_and_paging(dbtd, workdir):
    repo = make_repo(workdir)
    git(repo, "branch", "dev")
    dbtd.ok("project", "add", "shop", "--repo", repo)
    env_add(dbtd, "prod", "shop", os.path.join(workdir, "prod.duckdb"))
    env_add(dbtd, "dev", "shop", os.path.join(workdir, "dev.duckdb"), branch="dev")
    env_add(dbtd, "broken", "shop", os.path.join(workdir, "b.duckdb"), branch="gone")
    dbtd.ok("job", "add", "seed", "--env", "prod", "--command", "dbt seed")
    dbtd.ok("job", "add", "seed-dev", "--env", "dev", "--command", "dbt seed")
    dbtd.ok("job", "add", "broken", "--env", "broken", "--command", "dbt seed")
    ids = {}
    ids["ok"] = dbtd.json("job", "run", "seed", "--wait")["id"]
    ids["dev"] = dbtd.json("job", "run", "seed-dev", "--wait")["id"]
    ids["bad1"] = json.loads(dbtd.ctl("--json", "job", "run", "broken", "--wait").stdout)["id"]
    ids["bad2"] = json.loads(dbtd.ctl("--json", "run", "rerun", ids["bad1"], "--wait").stdout)["id"]
    ids["ok2"] = json.loads(dbtd.ctl("--json", "run", "rerun", ids["ok"], "--wait").stdout)["id"]

    def listed(*args):
        return [r["id"] for r in dbtd.json("run", "list", *args)]

    assert listed() == sorted(ids.values(), reverse=True)
    assert listed("--status", "failed") == [ids["bad2"], ids["bad1"]]
    assert listed("--job", "seed") == [ids["ok2"], ids["ok"]]
    assert listed("--trigger", "rerun") == [ids["ok2"], ids["bad2"]]
    assert listed("--trigger", "rerun", "--status", "failed") == [ids["bad2"]]
    assert listed("--branch", "dev") == [ids["dev"]]
    assert listed("--branch", "main", "--status", "completed") == [ids["ok2"], ids["ok"]]
    assert listed("--job", "seed", "--trigger", "manual") == [ids["ok"]]
    assert listed("--limit", "2") == [ids["ok2"], ids["bad2"]]
    assert listed("--limit", "2", "--before", ids["bad2"]) == [ids["bad1"], ids["dev"]]
    assert listed("--job", "nobody") == []
    human = dbtd.ok("run", "list").stdout.splitlines()
    assert human[0].split() == ["ID", "JOB", "STATUS", "TRIGGER", "BRANCH", "COMMIT", "STARTED",
                                "DURATION"]
    row = next(l for l in human if l.split()[0] == str(ids["dev"])).split()
    assert row[1:5] == ["seed-dev", "Completed", "Manual", "dev"]
    assert len(row[5]) == 7
    assert dbtd.ctl("run", "list", "--status", "exploded").returncode == 2


def test_watch_follows_and_exit_codes(dbtd, workdir):
    repo = make_repo(workdir)
    dbtd.ok("project", "add", "shop", "--repo", repo)
    env_add(dbtd, "prod", "shop", os.path.join(workdir, "prod.duckdb"))
    env_add(dbtd, "broken", "shop", os.path.join(workdir, "b.duckdb"), branch="gone")
    dbtd.ok("job", "add", "seed", "--env", "prod", "--command", "dbt seed")
    dbtd.ok("job", "add", "broken", "--env", "broken", "--command", "dbt seed")
    run_id, _, _ = start(dbtd, "seed")
    p = dbtd.ctl("run", "watch", run_id)
    assert p.returncode == 0
    assert "Clone Git repository" in p.stdout and "Completed" in p.stdout
    bad = json.loads(dbtd.ctl("--json", "job", "run", "broken", "--wait").stdout)["id"]
    assert dbtd.ctl("run", "watch", bad).returncode == 1
    assert dbtd.ctl("run", "watch", run_id).returncode == 0
    assert dbtd.ctl("run", "watch", 999).returncode == 4
