"""Step plugins from the outside: the SDK as `make install` leaves it builds
the example notify plugin out of tree and dbtd runs it; the loader refuses
bad plugins with reasons that `dbtctl plugin list` shows; a plugin that
crashes, calls exit() or hangs ends only its own run."""
import json
import os
import shutil
import time

import pytest

from conftest import BASE_ENV, BUILD, DBT, PLUGIN_DIR, SRC, Dbtd, git, make_repo, run, wait_for

TEST_PLUGINS = os.path.join(BUILD, "tests", "plugins", ".libs")
NOTIFY_SRC = os.path.join(SRC, "examples", "plugins", "notify")


def sanitizer_env(workdir):
    """The environment of a dbtd whose runners die inside a plugin.  In an
    ASan build, SIGSEGV must kill the runner (not be reported by ASan), and
    the leak check that exit() runs in the runner must not report what
    libgit2's PCRE2 keeps: either would replace the status the run reports.
    Other builds ignore these variables."""
    supp = os.path.join(workdir, "lsan.supp")
    with open(supp, "w") as f:
        f.write("leak:libpcre2-8.so\n")
    def add(var, opts):
        return (BASE_ENV.get(var, "") + ":" + opts).lstrip(":")
    return dict(BASE_ENV, ASAN_OPTIONS=add("ASAN_OPTIONS", "handle_segv=0"),
                LSAN_OPTIONS=add("LSAN_OPTIONS", "suppressions=" + supp))


def plugin_dir(root, test_plugins=(), files=None):
    """A plugin directory: the built-in plugins and the named test plugins
    (symlinks), plus files {name: text}."""
    d = os.path.join(root, "plugins")
    os.makedirs(d)
    for f in os.listdir(PLUGIN_DIR):
        if f.endswith(".so"):
            os.symlink(os.path.join(PLUGIN_DIR, f), os.path.join(d, f))
    for name in test_plugins:
        os.symlink(os.path.join(TEST_PLUGINS, name + ".so"), os.path.join(d, name + ".so"))
    for name, text in (files or {}).items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


def add_project_env(d, repo, workdir):
    d.ok("project", "add", "shop", "--repo", repo)
    d.ok("env", "add", "prod", "--project", "shop", "--branch", "main", "--destination",
         "duckdb", "--path", os.path.join(workdir, "prod.duckdb"), "--threads", "2",
         "--dbt", DBT)


def start_run(d, job):
    p = d.ctl("--json", "job", "run", job)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["id"]


def wait_run(d, job):
    """Run Now and follow the run to its end; returns it (run view --json)."""
    p = d.ctl("--json", "job", "run", job, "--wait")
    r = json.loads(p.stdout)
    assert p.returncode == (0 if r["status"] == "completed" else 1)
    return d.json("run", "view", r["id"])


def step_log(d, run_id, step):
    return d.ok("run", "logs", run_id, "--step", step).stdout


def make_env(env):
    """env for a make of our own: nothing of the make running the tests."""
    return {k: v for k, v in env.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS",
                         "CPPFLAGS", "LDFLAGS")}


def status_counts(results):
    counts = {}
    for res in results["results"]:
        counts[res["status"]] = counts.get(res["status"], 0) + 1
    return counts


# ---- the SDK, as installed ----

def install_sdk(workdir):
    """`make install DESTDIR=stage` from the build; returns (stage, env for
    pkg-config that sees only the installed dbtd-step.pc)."""
    stage = os.path.join(workdir, "stage")
    run(["make", "-s", "-C", BUILD, "install", "DESTDIR=" + stage], env=make_env(BASE_ENV))
    pcs = [os.path.join(dp, f) for dp, _, fs in os.walk(stage) for f in fs if f == "dbtd-step.pc"]
    assert len(pcs) == 1, pcs
    pcdir = os.path.dirname(pcs[0])
    env = dict(make_env(BASE_ENV), PKG_CONFIG_LIBDIR=pcdir, PKG_CONFIG_PATH=pcdir,
               PKG_CONFIG_SYSROOT_DIR=stage)
    return stage, env


def pkg(env, *args, sysroot=True):
    e = dict(env)
    if not sysroot:
        e.pop("PKG_CONFIG_SYSROOT_DIR")
    return run(["pkg-config"] + list(args) + ["dbtd-step"], env=e).stdout.strip()


def test_sdk_builds_notify_out_of_tree_and_it_reports_runs(workdir):
    stage, env = install_sdk(workdir)
    prefix_plugindir = pkg(env, "--variable=plugindir", sysroot=False)
    plugindir = pkg(env, "--variable=plugindir")
    assert plugindir == stage + prefix_plugindir
    cflags = pkg(env, "--cflags")
    assert cflags.startswith("-I" + stage) and SRC not in cflags
    incdir = cflags[2:].split()[0]
    with open(os.path.join(incdir, "dbtd", "step.h")) as f:
        assert "DBTD_STEP_RUN_ALWAYS" in f.read()
    mans = [f for dp, _, fs in os.walk(stage) for f in fs if f == "dbtd-step.3"]
    assert mans, "dbtd-step(3) is installed"
    dbtd_bin = [os.path.join(dp, f) for dp, _, fs in os.walk(stage) for f in fs
                if f == "dbtd" and dp.endswith("/bin")][0]

    # The installed dbtd's default plugin directory is pkg-config's plugindir.
    d = Dbtd(os.path.join(workdir, "default"), binary=dbtd_bin, plugin_dir=None)
    os.makedirs(d.root)
    d.start()
    try:
        assert d.json("plugin", "list")["directory"] == prefix_plugindir
    finally:
        assert d.stop() == 0

    # Build the example as its user would: the installed copy, away from the
    # source tree (and the same as the source's).
    installed = [dp for dp, _, fs in os.walk(stage) if dp.endswith("/examples/plugins/notify")]
    assert len(installed) == 1, installed
    src = os.path.join(workdir, "notify")
    os.makedirs(src)
    for f in ("notify.c", "Makefile", "README.md"):
        shutil.copyfile(os.path.join(installed[0], f), os.path.join(src, f))
        with open(os.path.join(src, f)) as a, open(os.path.join(NOTIFY_SRC, f)) as b:
            assert a.read() == b.read(), f
    b = run(["make", "-C", src], env=env)
    assert "-Wall -Wextra -Werror" in b.stdout and SRC not in b.stdout
    assert b.stderr.strip() == "", b.stderr
    run(["make", "-C", src, "install"], env=env)
    assert os.path.exists(os.path.join(plugindir, "notify.so"))

    # dbtd loads it from the installed plugin directory, with the built-ins.
    d = Dbtd(os.path.join(workdir, "d"), binary=dbtd_bin, plugin_dir=plugindir)
    os.makedirs(d.root)
    d.start()
    try:
        notify_runs(d, workdir)
    finally:
        assert d.stop() == 0


def notify_runs(d, workdir):
    listed = {p["type"]: p for p in d.json("plugin", "list")["loaded"]}
    assert set(listed) == {"git-clone", "dbt-profile", "dbt", "notify"}
    assert listed["notify"]["run_always"] is True
    assert (listed["notify"]["abi_major"], listed["notify"]["abi_minor"]) == (1, 2)
    assert listed["notify"]["file"].endswith("/notify.so")

    repo = make_repo(workdir)
    add_project_env(d, repo, workdir)
    runs_file = os.path.join(workdir, "runs.jsonl")
    cmd_file = os.path.join(workdir, "from-command.json")
    d.ok("job", "add", "nightly", "--env", "prod", "--command", "dbt build",
         "--step", f"notify:file={runs_file},command=printenv DBTD_SUMMARY > {cmd_file}")
    job = d.json("job", "view", "nightly")
    assert [s["type"] for s in job["steps"]] == ["dbt", "notify"]
    assert job["steps"][1]["params"] == {
        "file": runs_file, "command": f"printenv DBTD_SUMMARY > {cmd_file}"}
    assert f"notify:file={runs_file},command=" in d.ok("job", "view", "nightly").stdout

    r = wait_run(d, "nightly")
    assert r["status"] == "completed", r
    assert [(s["name"], s["status"]) for s in r["steps"]] == [
        ("Clone Git repository", "completed"), ("Create profile for Destination", "completed"),
        ("Invoke dbt deps", "completed"), ("Invoke dbt build", "completed"),
        ("Run notify", "completed")]
    # dbt's own run_results.json, kept with the run, is the oracle for counts.
    results = json.loads(d.ok("run", "artifact", r["id"], "target/run_results.json").stdout)
    want = status_counts(results)
    with open(runs_file) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    s = json.loads(lines[0])
    assert s["run_id"] == r["id"] and s["job"] == "nightly" and s["environment"] == "prod"
    assert s["status"] == "completed" and s["failed_step"] is None and s["error"] is None
    assert s["commit"] == r["commit_sha"] and s["branch"] == "main"
    assert s["results"]["success"] == want.get("success", 0) > 0
    assert s["results"]["pass"] == want.get("pass", 0) > 0
    assert s["results"]["error"] == s["results"]["fail"] == 0 and s["failures"] == []
    with open(cmd_file) as f:
        assert json.loads(f.read()) == s
    log = step_log(d, r["id"], "notify")
    assert (f"run {r['id']} of job nightly: every step so far completed; dbt results: "
            f"{want['success']} success, 0 error, {want.get('skipped', 0)} skipped, "
            f"{want['pass']} pass, 0 fail, {want.get('warn', 0)} warn") in log
    assert f"summary appended to {runs_file}" in log
    assert "summary delivered to the command" in log

    # A failed dbt step: notify still runs (DBTD_STEP_RUN_ALWAYS) and says why.
    with open(os.path.join(repo, "models", "marts", "broken.sql"), "w") as f:
        f.write("select * from a_table_that_does_not_exist\n")
    with open(os.path.join(repo, "models", "marts", "after_broken.sql"), "w") as f:
        f.write("select * from {{ ref('broken') }}\n")  # skipped
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a broken model")
    r = wait_run(d, "nightly")
    assert r["status"] == "failed"
    assert [s["status"] for s in r["steps"]] == [
        "completed", "completed", "completed", "failed", "completed"]
    assert "broken" in r["error"]  # the run's error is still dbt's
    results = json.loads(d.ok("run", "artifact", r["id"], "target/run_results.json").stdout)
    want = status_counts(results)
    with open(runs_file) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2
    s = json.loads(lines[1])
    assert s["run_id"] == r["id"] and s["status"] == "failed"
    assert s["failed_step"] == "Invoke dbt build" and s["error"] == r["error"]
    assert s["results"]["error"] == want["error"] == 1
    assert s["results"]["skipped"] == want["skipped"] == 1
    assert s["results"]["success"] == want.get("success", 0)
    assert [f["unique_id"] for f in s["failures"]] == ["model.jaffle_shop.broken"]
    assert "a_table_that_does_not_exist" in s["failures"][0]["message"]
    log = step_log(d, r["id"], "notify")
    assert f'run {r["id"]} of job nightly failed at step "Invoke dbt build"' in log
    assert "error model.jaffle_shop.broken: " in log


# ---- loading: refusals ----

def test_refused_plugins_are_logged_and_listed(workdir):
    pdir = plugin_dir(workdir, ["good", "always", "wrong-abi", "no-symbol", "dup-a", "dup-b"],
                      {"x.so": "this is a text file, not a shared object\n"})
    d = Dbtd(workdir, plugin_dir=pdir).start()
    try:
        path = lambda name: os.path.join(pdir, name)  # noqa: E731
        log = d.log()
        want = {
            path("wrong-abi.so"): "built for step ABI 2.0, this dbtd speaks ABI 1.x",
            path("no-symbol.so"): "no symbol dbtd_step_plugin_v1: not a dbtd step plugin",
            path("dup-b.so"): f'duplicate step type "test-dup", already provided by {path("dup-a.so")}',
            path("x.so"): "cannot load: ",
        }
        for f, reason in want.items():
            assert f"plugin {f} refused: {reason}" in log, log

        pl = d.json("plugin", "list")
        assert pl["directory"] == pdir
        loaded = {p["type"]: p["file"] for p in pl["loaded"]}
        assert loaded == {"dbt": path("dbt.so"), "dbt-profile": path("dbt-profile.so"),
                          "git-clone": path("git-clone.so"), "test-good": path("good.so"),
                          "test-dup": path("dup-a.so"), "test-always": path("always.so")}
        assert [p["run_always"] for p in pl["loaded"] if p["type"] == "test-always"] == [True]
        refused = {p["file"]: p["reason"] for p in pl["refused"]}
        assert set(refused) == set(want)
        for f, reason in want.items():
            assert refused[f].startswith(reason), refused[f]
        assert "not a shared object" in refused[path("x.so")]
        text = d.ok("plugin", "list").stdout
        for f, reason in want.items():
            assert f in text and reason in text
        assert "test-good" in text and "a step that logs one line" in text

        # Steps of loaded plugins run in the order given, with their params.
        repo = make_repo(workdir)
        add_project_env(d, repo, workdir)
        p = d.ctl("job", "add", "bad", "--env", "prod", "--command", "dbt parse",
                  "--step", "test-wrong-abi")
        assert p.returncode == 2
        assert 'no step plugin of type "test-wrong-abi" is loaded' in p.stderr
        d.ok("job", "add", "good", "--env", "prod", "--step", "test-good:greeting=hello",
             "--command", "dbt parse", "--step", "test-good")
        r = wait_run(d, "good")
        assert r["status"] == "completed", r
        assert [s["name"] for s in r["steps"]][3:] == [
            "Run test-good", "Invoke dbt parse", "Run test-good"]
        first = step_log(d, r["id"], "4")
        assert "good step ran" in first and "greeting: hello" in first
        assert "greeting" not in step_log(d, r["id"], "6")

        # After a failed step only steps of DBTD_STEP_RUN_ALWAYS plugins run,
        # and they are told which step failed.
        d.ok("job", "add", "fails", "--env", "prod", "--step", "test-always",
             "--command", "dbt parse --no-such-option", "--step", "test-good",
             "--step", "test-always")
        r = wait_run(d, "fails")
        assert r["status"] == "failed"
        assert [(s["name"], s["status"]) for s in r["steps"]][3:] == [
            ("Run test-always", "completed"), ("Invoke dbt parse --no-such-option", "failed"),
            ("Run test-good", "skipped"), ("Run test-always", "completed")]
        assert r["steps"][5]["started_at"] is None and r["steps"][5]["finished_at"] is None
        assert "run.status=running run.failed_step=(unset)" in step_log(d, r["id"], "4")
        assert ("run.status=failed run.failed_step=Invoke dbt parse --no-such-option"
                in step_log(d, r["id"], "7"))
        assert "no-such-option" in r["error"]
    finally:
        assert d.stop() == 0


# ---- a plugin that crashes, exits or hangs ----

def test_crash_and_exit_fail_only_their_run(workdir):
    pdir = plugin_dir(workdir, ["crash", "exit"])
    d = Dbtd(workdir, plugin_dir=pdir, env=sanitizer_env(workdir)).start()
    try:
        repo = make_repo(workdir)
        add_project_env(d, repo, workdir)
        d.ok("job", "add", "crash", "--env", "prod", "--step", "test-crash",
             "--command", "dbt parse")
        d.ok("job", "add", "exit", "--env", "prod", "--step", "test-exit",
             "--command", "dbt parse")
        d.ok("job", "add", "normal", "--env", "prod", "--command", "dbt parse")

        r = wait_run(d, "crash")
        assert r["status"] == "failed"
        assert r["error"] == ("step 4 (Run test-crash) crashed: killed by signal 11 "
                              "(Segmentation fault)"), r["error"]
        assert [s["status"] for s in r["steps"]][3:] == ["failed", "skipped"]
        assert "about to crash" in step_log(d, r["id"], "4")

        r = wait_run(d, "exit")
        assert r["status"] == "failed"
        assert r["error"] == "step 4 (Run test-exit) ended the runner with exit status 3", \
            r["error"]
        assert [s["status"] for s in r["steps"]][3:] == ["failed", "skipped"]

        assert d.proc.poll() is None, "dbtd is still running"
        r = wait_run(d, "normal")
        assert r["status"] == "completed", r
    finally:
        assert d.stop() == 0


@pytest.fixture
def hang_dbtd(workdir):
    d = Dbtd(workdir, plugin_dir=plugin_dir(workdir, ["hang", "always"])).start()
    add_project_env(d, make_repo(workdir), workdir)
    yield d
    assert d.stop() == 0


def test_cancel_stops_a_hanging_plugin(hang_dbtd, workdir):
    d = hang_dbtd
    # test-always runs after failed steps, never after a cancel
    d.ok("job", "add", "hang", "--env", "prod", "--step", "test-hang", "--command", "dbt parse",
         "--step", "test-always")
    run_id = start_run(d, "hang")
    wait_for("the hanging step",
             lambda: "hanging" in d.ctl("run", "logs", run_id, "--step", "4").stdout)
    t0 = time.time()
    p = d.ctl("run", "cancel", run_id)
    assert p.returncode == 0 and f"run {run_id} canceled" in p.stdout, p.stderr
    assert time.time() - t0 < 10
    r = d.json("run", "view", run_id)
    assert r["status"] == "canceled" and r["error"].startswith("canceled by ")
    assert [s["status"] for s in r["steps"]][3:] == ["canceled", "skipped", "skipped"]


def test_timeout_stops_a_hanging_plugin(hang_dbtd, workdir):
    d = hang_dbtd
    d.ok("job", "add", "hang", "--env", "prod", "--step", "test-hang", "--command", "dbt parse",
         "--step", "test-always", "--timeout", "8")
    t0 = time.time()
    r = wait_run(d, "hang")
    took = time.time() - t0
    assert r["status"] == "failed" and r["error"] == "timed out after 8 s"
    assert [(s["name"], s["status"]) for s in r["steps"]][3:] == [
        ("Run test-hang", "failed"), ("Invoke dbt parse", "skipped"),
        ("Run test-always", "skipped")]
    assert "hanging" in step_log(d, r["id"], "4")
    assert 8 <= took < 8 + 10
