"""A real dbt project built through dbtd: clone, profile, deps, build."""
import getpass
import os
import stat

from conftest import DBT, FIXTURES, duckdb_count, git, setup_job

STEPS = ["Clone Git repository", "Create profile for Destination",
         "Invoke dbt deps", "Invoke dbt build"]


def test_example_builds_through_dbtd(dbtd, repo, workdir):
    db = setup_job(dbtd, repo, workdir)
    p = dbtd.ctl("--json", "job", "run", "nightly", "--wait")
    assert p.returncode == 0, p.stdout + p.stderr
    run = __import__("json").loads(p.stdout)
    assert run["status"] == "completed", run
    assert [s["name"] for s in run["steps"]] == STEPS
    assert [s["status"] for s in run["steps"]] == ["completed"] * 4
    assert [s["index"] for s in run["steps"]] == [1, 2, 3, 4]
    assert run["commit_sha"] == git(repo, "rev-parse", "HEAD")
    assert run["job"] == "nightly" and run["environment"] == "prod"
    assert run["job_type"] == "deploy" and run["trigger"] == "manual"
    assert run["branch"] == "main"
    assert run["triggered_by"] == getpass.getuser()
    assert run["error"] is None and run["rerun_of"] is None and run["pr_number"] is None
    assert run["duration_ms"] > 0 and run["queued_ms"] >= 0
    for s in run["steps"]:
        assert s["started_at"] and s["finished_at"] and s["duration_ms"] >= 0

    # run view shows the same record, and the data really landed in DuckDB
    view = dbtd.json("run", "view", run["id"])
    assert view == run
    assert duckdb_count(db, "main.orders") == 500
    assert duckdb_count(db, "main.customers") == 100
    assert duckdb_count(db, "main.raw_payments") == 600

    # the run history lists it without steps
    runs = dbtd.json("run", "list")
    assert [r["id"] for r in runs] == [run["id"]]
    assert "steps" not in runs[0]
    assert runs[0]["status"] == "completed"

    # the workspace (clone, target/) is gone after the run
    assert os.listdir(os.path.join(dbtd.state, "work")) == []


def test_sql_error_fails_run_with_dbt_error(dbtd, repo, workdir):
    with open(os.path.join(FIXTURES, "bad_model.sql")) as src, \
            open(os.path.join(repo, "models", "marts", "broken.sql"), "w") as dst:
        dst.write(src.read())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a model with an error")
    setup_job(dbtd, repo, workdir)
    p = dbtd.ctl("--json", "job", "run", "nightly", "--wait")
    assert p.returncode == 1, p.stdout + p.stderr
    run = __import__("json").loads(p.stdout)
    assert run["status"] == "failed"
    assert [s["status"] for s in run["steps"]] == ["completed", "completed", "completed", "failed"]
    assert 'Referenced column "dbtd_no_such_column" not found' in run["error"]
    assert "broken" in run["error"]


def test_unknown_branch_fails_at_clone(dbtd, repo, workdir):
    setup_job(dbtd, repo, workdir, branch="no-such-branch")
    p = dbtd.ctl("--json", "job", "run", "nightly", "--wait")
    assert p.returncode == 1
    run = __import__("json").loads(p.stdout)
    assert run["status"] == "failed"
    assert run["steps"][0]["name"] == "Clone Git repository"
    assert [s["status"] for s in run["steps"]] == ["failed", "skipped", "skipped", "skipped"]
    assert '"no-such-branch"' in run["error"]
    assert run["commit_sha"] is None


def test_unreachable_repository_fails_at_clone(dbtd, workdir):
    missing = os.path.join(workdir, "not-a-repo")
    setup_job(dbtd, missing, workdir)
    run = __import__("json").loads(dbtd.ctl("--json", "job", "run", "nightly", "--wait").stdout)
    assert run["status"] == "failed"
    assert run["steps"][0]["status"] == "failed"
    assert missing in run["error"]


def test_job_on_missing_environment_is_refused(dbtd, repo):
    dbtd.ok("project", "add", "shop", "--repo", repo)
    p = dbtd.ctl("job", "add", "nightly", "--env", "ghost", "--command", "dbt build")
    assert p.returncode == 4
    assert 'no environment named "ghost"' in p.stderr
    assert dbtd.json("job", "list") == []


def test_profile_is_private_to_the_run(dbtd, repo, workdir):
    """A wrapper in front of real dbt records what dbt is given."""
    seen = os.path.join(workdir, "seen")
    wrapper = os.path.join(workdir, "dbt-wrapper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                f"stat -c '%a %n' \"$DBT_PROFILES_DIR\" \"$DBT_PROFILES_DIR/profiles.yml\" >> {seen}\n"
                f"echo \"cwd $(pwd)\" >> {seen}\n"
                f"echo \"stats $DBT_SEND_ANONYMOUS_USAGE_STATS\" >> {seen}\n"
                f"exec {DBT} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    setup_job(dbtd, repo, workdir, dbt=wrapper)
    run = dbtd.json("job", "run", "nightly", "--wait")
    assert run["status"] == "completed", run
    lines = open(seen).read().splitlines()
    modes = [l.split()[0] for l in lines if l.endswith("profiles") or l.endswith("profiles.yml")]
    assert modes and set(modes[0::2]) == {"700"} and set(modes[1::2]) == {"600"}, lines
    assert "stats false" in lines
    cwds = {l for l in lines if l.startswith("cwd ")}
    assert len(cwds) == 1 and cwds.pop().endswith("/repo"), lines


def test_dbt_found_on_path(workdir, repo):
    """Without --dbt, the environment uses dbt on dbtd's PATH."""
    from conftest import BASE_ENV, Dbtd
    env = dict(BASE_ENV, PATH=os.path.dirname(DBT) + ":" + BASE_ENV["PATH"])
    d = Dbtd(workdir, env=env).start()
    try:
        setup_job(d, repo, workdir, dbt=None)
        run = d.json("job", "run", "nightly", "--wait")
        assert run["status"] == "completed", run
    finally:
        assert d.stop() == 0


def test_state_survives_restart(workdir, repo):
    from conftest import Dbtd
    d = Dbtd(workdir).start()
    setup_job(d, repo, workdir)
    first = d.json("job", "run", "nightly", "--wait")
    assert d.stop() == 0
    d = Dbtd(workdir).start()
    try:
        assert [j["name"] for j in d.json("job", "list")] == ["nightly"]
        assert d.json("run", "view", first["id"]) == first
        second = d.json("job", "run", "nightly", "--wait")
        assert second["id"] == first["id"] + 1
        assert [r["id"] for r in d.json("run", "list")] == [second["id"], first["id"]]
    finally:
        assert d.stop() == 0


def test_daemon_shell_dbt_variables_do_not_reach_runs(workdir, repo):
    """dbt settings in dbtd's own environment must not steer a run's dbt."""
    from conftest import BASE_ENV, Dbtd
    env = dict(BASE_ENV, DBT_TARGET="no-such-target", DBT_PROFILES_DIR="/nonexistent")
    d = Dbtd(workdir, env=env).start()
    try:
        setup_job(d, repo, workdir)
        run = d.json("job", "run", "nightly", "--wait")
        assert run["status"] == "completed", run
    finally:
        assert d.stop() == 0
