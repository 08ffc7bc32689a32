"""Runs started by events: pipeline events, GitHub and GitLab webhooks,
polling a repository, and cron schedules."""
import datetime
import hashlib
import hmac
import json
import os
import time
import zoneinfo

import pytest

from conftest import DBT, FIXTURES, Dbtd, duckdb_count, git, run, wait_for

SECRET = "hook-secret-4e1f"
HOOKS = os.path.join(FIXTURES, "webhooks")


def fixture(name):
    with open(os.path.join(HOOKS, name)) as f:
        return json.load(f)


def sign(body):
    return "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()


def wait_runs(d, n, timeout=120, **filters):
    """Wait until `run list` (with filters) shows n runs, all finished."""
    args = ["run", "list"]
    for k, v in filters.items():
        args += ["--" + k, v]
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = d.json(*args)
        if len(runs) >= n and all(r["status"] not in ("queued", "running") for r in runs):
            return runs
        time.sleep(0.3)
    raise AssertionError(f"no {n} finished runs for {filters}: {d.json('run', 'list')}\n{d.log()}")


def add_project(d, repo, poll=None):
    env = dict(os.environ, HOOK_SECRET=SECRET, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    args = ["project", "add", "shop", "--repo", repo, "--webhook-secret-env", "HOOK_SECRET"]
    if poll:
        args += ["--poll", str(poll)]
    d.ok(*args, env=env)


def add_env(d, workdir, name="prod", branch="main"):
    db = os.path.join(workdir, f"{name}.duckdb")
    d.ok("env", "add", name, "--project", "shop", "--branch", branch, "--destination",
         "duckdb", "--path", db, "--threads", "2", "--dbt", DBT)
    return db


def feature_commit(repo, branch="feature"):
    """A branch with one more customer in the seed; returns its commit."""
    git(repo, "checkout", "-q", "-b", branch)
    with open(os.path.join(repo, "seeds", "raw_customers.csv"), "a") as f:
        f.write("101,Ada,L.\n")
    git(repo, "commit", "-q", "-am", f"one more customer on {branch}")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


def main_commit(repo, msg="change on main"):
    with open(os.path.join(repo, "README.md"), "a") as f:
        f.write(f"\n{msg}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


def github_pr(repo, number, head, sha, base="main", action="opened"):
    p = fixture("github_pull_request_opened.json")
    p["action"] = action
    p["number"] = number
    p["pull_request"]["number"] = number
    p["pull_request"]["head"]["ref"] = head
    p["pull_request"]["head"]["sha"] = sha
    p["pull_request"]["base"]["ref"] = base
    p["repository"]["clone_url"] = repo
    return json.dumps(p)


def hook(d, forge, event, body, *extra):
    return d.ctl("webhook", forge, "--event", event, *extra, input=body)


def test_pipeline_event_runs_listening_jobs(dbtd, repo, workdir):
    add_project(dbtd, repo)
    add_env(dbtd, workdir)
    for job in ("after_sync", "also_after_sync"):
        dbtd.ok("job", "add", job, "--env", "prod", "--command", "dbt seed",
                "--on-pipeline", "crm_sync")
    dbtd.ok("job", "add", "unrelated", "--env", "prod", "--command", "dbt seed",
            "--on-pipeline", "other_sync")
    assert dbtd.json("job", "view", "after_sync")["on_pipeline"] == "crm_sync"

    out = dbtd.json("event", "pipeline", "crm_sync")
    assert sorted(r["job"] for r in out["runs"]) == ["after_sync", "also_after_sync"]
    runs = wait_runs(dbtd, 2)
    assert len(runs) == 2
    for r in runs:
        assert r["trigger"] == "pipeline" and r["status"] == "completed", r
        assert r["triggered_by"] == "pipeline:crm_sync"
    assert [r["id"] for r in dbtd.json("run", "list", "--trigger", "pipeline")] == \
        [r["id"] for r in runs]

    p = dbtd.ctl("event", "pipeline", "nobody_listens")
    assert p.returncode == 4, p.stdout + p.stderr
    assert 'no job listens to pipeline "nobody_listens"' in p.stderr
    assert len(dbtd.json("run", "list")) == 2
    assert 'pipeline "nobody_listens" finished' in dbtd.log()


def test_github_pull_request_builds_into_its_own_schema(dbtd, repo, workdir):
    add_project(dbtd, repo)
    db = add_env(dbtd, workdir)
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")
    dbtd.ok("job", "add", "nightly", "--env", "prod", "--command", "dbt seed")
    sha = feature_commit(repo)
    git(repo, "update-ref", "refs/pull/7/head", sha)

    body = github_pr(repo, 7, "feature", sha)
    p = dbtd.ctl("--json", "webhook", "github", "--event", "pull_request",
                 "--signature", sign(body), input=body)
    assert p.returncode == 0, p.stdout + p.stderr + dbtd.log()
    started = json.loads(p.stdout)["runs"]
    assert [r["job"] for r in started] == ["ci_check"]
    [r] = wait_runs(dbtd, 1)
    r = dbtd.json("run", "view", r["id"])
    assert r["status"] == "completed", r
    assert r["trigger"] == "pr" and r["pr_number"] == 7 and r["job_type"] == "ci"
    assert r["branch"] == "feature" and r["commit_sha"] == sha
    assert r["triggered_by"].startswith("github")
    # the PR's data landed in <schema>_pr_<number>, production untouched
    assert duckdb_count(db, "main_pr_7.raw_customers") == 101
    tables = run([os.path.join(os.path.dirname(DBT), "python"), "-c",
                  "import duckdb,sys;c=duckdb.connect(sys.argv[1],read_only=True);"
                  "print(c.execute(\"select count(*) from information_schema.tables "
                  "where table_schema='main'\").fetchone()[0])", db]).stdout.strip()
    assert tables == "0"

    # an update (synchronize) with a new head commit runs again on that commit
    git(repo, "checkout", "-q", "feature")
    sha2 = main_commit(repo, "second PR commit")
    git(repo, "checkout", "-q", "main")
    git(repo, "update-ref", "refs/pull/7/head", sha2)
    body = github_pr(repo, 7, "feature", sha2, action="synchronize")
    p = hook(dbtd, "github", "pull_request", body, "--signature", sign(body))
    assert p.returncode == 0, p.stderr
    runs = wait_runs(dbtd, 2, trigger="pr")
    assert runs[0]["commit_sha"] == sha2 and runs[0]["status"] == "completed"

    # labels do not start runs
    body = github_pr(repo, 7, "feature", sha2, action="labeled")
    p = hook(dbtd, "github", "pull_request", body, "--signature", sign(body))
    assert p.returncode == 0 and "nothing to run" in p.stdout, p.stdout + p.stderr
    assert len(dbtd.json("run", "list")) == 2


def test_pull_request_from_a_fork_is_fetched_by_its_ref(dbtd, repo, workdir):
    """The head branch exists only in the fork: the commit comes from refs/pull/N/head."""
    add_project(dbtd, repo)
    db = add_env(dbtd, workdir)
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")
    sha = feature_commit(repo, "fork-feature")
    git(repo, "update-ref", "refs/pull/12/head", sha)
    git(repo, "branch", "-q", "-D", "fork-feature")
    body = github_pr(repo, 12, "fork-feature", sha)
    p = hook(dbtd, "github", "pull_request", body, "--signature", sign(body))
    assert p.returncode == 0, p.stdout + p.stderr
    [r] = wait_runs(dbtd, 1)
    assert r["status"] == "completed" and r["commit_sha"] == sha, dbtd.json("run", "view", r["id"])
    assert duckdb_count(db, "main_pr_12.raw_customers") == 101


def test_pushes_and_merges_run_merge_jobs(dbtd, repo, workdir):
    add_project(dbtd, repo)
    add_env(dbtd, workdir)
    dbtd.ok("job", "add", "on_merge", "--env", "prod", "--type", "merge",
            "--command", "dbt seed")
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")

    sha = main_commit(repo)
    push = fixture("github_push.json")
    push.update(ref="refs/heads/main", after=sha)
    push["repository"]["clone_url"] = repo
    body = json.dumps(push)
    p = hook(dbtd, "github", "push", body, "--signature", sign(body))
    assert p.returncode == 0, p.stdout + p.stderr
    [r] = wait_runs(dbtd, 1)
    assert r["trigger"] == "merge" and r["job"] == "on_merge" and r["commit_sha"] == sha
    assert r["branch"] == "main" and r["status"] == "completed"

    # GitLab: a push hook, then a merge request opened (PR) against main
    sha2 = main_commit(repo, "second change")
    gl = fixture("gitlab_push.json")
    gl.update(ref="refs/heads/main", after=sha2, checkout_sha=sha2)
    body = json.dumps(gl)
    p = hook(dbtd, "gitlab", "Push Hook", body, "--project", "shop", "--token", SECRET)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = wait_runs(dbtd, 2, trigger="merge")
    assert runs[0]["commit_sha"] == sha2 and runs[0]["triggered_by"].startswith("gitlab")

    fsha = feature_commit(repo, "mr-branch")
    git(repo, "update-ref", "refs/merge-requests/5/head", fsha)
    mr = fixture("gitlab_merge_request_open.json")
    attrs = mr["object_attributes"]
    attrs.update(iid=5, source_branch="mr-branch", target_branch="main", action="open")
    attrs["last_commit"]["id"] = fsha
    body = json.dumps(mr)
    p = hook(dbtd, "gitlab", "Merge Request Hook", body, "--project", "shop", "--token", SECRET)
    assert p.returncode == 0, p.stdout + p.stderr
    [pr] = wait_runs(dbtd, 1, trigger="pr")
    assert pr["pr_number"] == 5 and pr["branch"] == "mr-branch" and pr["commit_sha"] == fsha
    assert pr["status"] == "completed" and pr["job"] == "ci_check"


def test_bad_webhooks_trigger_nothing(dbtd, repo, workdir):
    add_project(dbtd, repo)
    add_env(dbtd, workdir)
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")
    sha = feature_commit(repo)
    body = github_pr(repo, 3, "feature", sha)

    cases = [
        # (args, input, exit code, words in the error)
        (["github", "--event", "pull_request"], body, 1, "missing signature"),
        (["github", "--event", "pull_request", "--signature", "sha256=" + "0" * 64], body, 1,
         "does not match"),
        (["github", "--event", "pull_request", "--signature", "md5=abc"], body, 1, "signature"),
        (["github", "--event", "pull_request", "--signature", sign(body[:-1])], body[:-1], 2,
         "malformed"),
        (["github", "--event", "deployment", "--signature", sign(body)], body, 2, "deployment"),
        (["github", "--event", "pull_request", "--signature", sign("[]")], "[]", 2, "malformed"),
        (["gitlab", "--event", "Merge Request Hook", "--project", "shop", "--token", "wrong"],
         json.dumps(fixture("gitlab_merge_request_open.json")), 1, "token"),
        (["gitlab", "--event", "Merge Request Hook", "--project", "shop"],
         json.dumps(fixture("gitlab_merge_request_open.json")), 1, "missing token"),
        (["github", "--event", "pull_request", "--project", "nosuch", "--signature", sign(body)],
         body, 4, 'no project named "nosuch"'),
    ]
    for args, data, code, words in cases:
        p = dbtd.ctl("webhook", *args, input=data)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        assert words in p.stderr, (args, p.stderr)

    # a repository no project has
    other = json.loads(body)
    for k in ("clone_url", "ssh_url", "html_url", "git_url", "svn_url"):
        other["repository"][k] = "https://github.com/someone/else.git"
    b = json.dumps(other)
    p = hook(dbtd, "github", "pull_request", b, "--signature", sign(b))
    assert p.returncode == 4 and "no project has repository" in p.stderr, p.stderr

    # a branch no environment is on
    b = github_pr(repo, 3, "feature", sha, base="release")
    p = hook(dbtd, "github", "pull_request", b, "--signature", sign(b))
    assert p.returncode == 4 and 'on branch "release"' in p.stderr, p.stderr

    assert dbtd.json("run", "list") == []
    assert dbtd.log().count("refused, nothing triggered") >= len(cases) + 2
    assert SECRET not in dbtd.log()

    # a project without a webhook secret accepts no webhooks
    dbtd.ok("project", "add", "open", "--repo", repo)
    p = hook(dbtd, "github", "pull_request", body, "--project", "open", "--signature", sign(body))
    assert p.returncode == 1 and "no webhook secret" in p.stderr, p.stderr


def test_polling_sees_pull_refs_and_branch_moves(dbtd, repo, workdir):
    sha_open = feature_commit(repo, "already-open")
    git(repo, "update-ref", "refs/pull/1/head", sha_open)  # before dbtd looks: no run
    add_project(dbtd, repo, poll=1)
    add_env(dbtd, workdir)
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")
    dbtd.ok("job", "add", "on_merge", "--env", "prod", "--type", "merge",
            "--command", "dbt seed")
    wait_for("the first poll", lambda: dbtd.json("project", "view", "shop")["last_poll_at"], 15)

    sha = feature_commit(repo)
    git(repo, "update-ref", "refs/pull/9/head", sha)
    [pr] = wait_runs(dbtd, 1, timeout=60, trigger="pr")
    assert pr["pr_number"] == 9 and pr["branch"] == "feature" and pr["commit_sha"] == sha
    assert pr["status"] == "completed" and pr["triggered_by"] == "poll:shop"

    new_main = main_commit(repo)
    [m] = wait_runs(dbtd, 1, timeout=60, trigger="merge")
    assert m["commit_sha"] == new_main and m["job"] == "on_merge" and m["status"] == "completed"

    # nothing moved: no more runs; the pre-existing PR 1 never ran
    time.sleep(2.5)
    assert len(dbtd.json("run", "list")) == 2
    view = dbtd.json("project", "view", "shop")
    assert view["poll_seconds"] == 1 and view["poll_error"] is None


def test_schedule_validation_and_next_fires(dbtd, repo, workdir):
    add_project(dbtd, repo)
    add_env(dbtd, workdir)
    bad = [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * FOO", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("* * * *", "5 fields"),
        ("@fortnightly", "@fortnightly"),
    ]
    for expr, words in bad:
        p = dbtd.ctl("job", "add", "j", "--env", "prod", "--command", "dbt seed",
                     "--schedule", expr)
        assert p.returncode == 2, (expr, p.stdout, p.stderr)
        assert words in p.stderr, (expr, p.stderr)
    p = dbtd.ctl("job", "add", "j", "--env", "prod", "--command", "dbt seed",
                 "--schedule", "0 9 * * *", "--timezone", "Mars/Olympus_Mons")
    assert p.returncode == 2 and "Mars/Olympus_Mons" in p.stderr, p.stderr
    assert dbtd.json("job", "list") == []

    dbtd.ok("job", "add", "weekday_mornings", "--env", "prod", "--command", "dbt seed",
            "--schedule", "30 9 * * MON-FRI", "--timezone", "Europe/Berlin")
    job = dbtd.json("job", "view", "weekday_mornings")
    fires = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
             for t in job["next_fires"]]
    assert len(fires) == 5
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    now = datetime.datetime.now(datetime.timezone.utc)
    expect, t = [], now.astimezone(berlin).replace(second=0, microsecond=0)
    while len(expect) < 5:
        t = (t + datetime.timedelta(minutes=1))
        if t.weekday() < 5 and t.hour == 9 and t.minute == 30:
            expect.append(t.astimezone(datetime.timezone.utc))
            t = t.replace(hour=10, minute=0)
    assert fires == expect
    text = dbtd.ok("job", "view", "weekday_mornings").stdout
    assert "Next runs" in text and "Europe/Berlin" in text
    # each fire time also in the job's zone: 09:30 local, CET or CEST
    assert text.count(" 09:30 CE") == 5, text


@pytest.mark.slow
def test_schedule_fires_on_the_minute_and_skips_missed(workdir, repo):
    """A * * * * * job: a minute missed while dbtd is down is logged, not
    replayed; the next minute fires within a second."""
    d = Dbtd(workdir).start()
    try:
        add_project(d, repo)
        add_env(d, workdir)
        d.ok("job", "add", "every_minute", "--env", "prod", "--command", "dbt seed",
             "--schedule", "* * * * *")
        assert d.stop() == 0
        # stay down across a minute boundary
        now = time.time()
        time.sleep(60 - now % 60 + 1.5)
        d.start()
        assert "scheduled run missed while dbtd was down" in d.log(), d.log()
        assert d.json("run", "list") == []
        boundary = (time.time() // 60 + 1) * 60
        [r] = wait_runs(d, 1, timeout=150, trigger="scheduled")
        created = datetime.datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
        assert 0 <= created.timestamp() - boundary < 1.0, (r["created_at"], boundary)
        assert r["status"] == "completed" and r["triggered_by"] == "schedule"
        d.ok("job", "rm", "every_minute")
    finally:
        assert d.stop() == 0


def test_run_list_tells_every_trigger_apart(dbtd, repo, workdir):
    """One run of each trigger a test can cause at once (the scheduled one is
    in the slow test); run list --trigger finds exactly each."""
    from conftest import VENV_PY, BASE_ENV, SRC
    add_project(dbtd, repo)
    add_env(dbtd, workdir)
    dbtd.ok("job", "add", "deploy", "--env", "prod", "--command", "dbt seed",
            "--on-pipeline", "crm")
    dbtd.ok("job", "add", "ci_check", "--env", "prod", "--type", "ci", "--command", "dbt seed")
    dbtd.ok("job", "add", "on_merge", "--env", "prod", "--type", "merge",
            "--command", "dbt seed")
    ids = {}
    ids["manual"] = dbtd.json("job", "run", "deploy", "--wait")["id"]
    ids["rerun"] = dbtd.json("run", "rerun", ids["manual"], "--wait")["id"]
    env = dict(BASE_ENV, XDG_CACHE_HOME=os.path.join(workdir, "cache"))
    p = run([VENV_PY, os.path.join(SRC, "examples", "api", "dbtd_api.py"), "--socket",
             dbtd.sock, "run", "deploy", "--wait"], check=False, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    ids["api"] = int(p.stdout.splitlines()[0])
    ids["pipeline"] = dbtd.json("event", "pipeline", "crm")["runs"][0]["id"]
    wait_runs(dbtd, 1, trigger="pipeline")
    sha = feature_commit(repo)
    body = github_pr(repo, 4, "feature", sha)
    ids["pr"] = json.loads(hook(dbtd, "github", "pull_request", body, "--json",
                                "--signature", sign(body)).stdout)["runs"][0]["id"]
    wait_runs(dbtd, 1, trigger="pr")
    push = fixture("github_push.json")
    push.update(ref="refs/heads/main", after=git(repo, "rev-parse", "main"))
    push["repository"]["clone_url"] = repo
    body = json.dumps(push)
    ids["merge"] = json.loads(hook(dbtd, "github", "push", body, "--json",
                                   "--signature", sign(body)).stdout)["runs"][0]["id"]
    wait_runs(dbtd, 6)
    for trigger, rid in ids.items():
        listed = dbtd.json("run", "list", "--trigger", trigger)
        assert [r["id"] for r in listed] == [rid], (trigger, listed)
        assert listed[0]["trigger"] == trigger and listed[0]["status"] == "completed"
    assert dbtd.json("run", "list", "--trigger", "scheduled") == []
    text = dbtd.ok("run", "list").stdout
    for word in ("Manual", "Re-run", "API", "Pipeline", "PR", "Merge"):
        assert word in text, text
