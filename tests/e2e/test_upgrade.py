"""Upgrades: the released dbtd 0.1.0 (store format 1), built here from the
repository's own history, fills a state directory with real runs (real
dbt, Git, DuckDB and PostgreSQL); this dbtd migrates it to its format and
keeps everything, as the old and the new dbtctl see it, refuses a store of a
newer format without touching it, and survives being killed mid-migration.

The filled store (built once per module, copied by each test) has three
projects, four environments (DuckDB; PostgreSQL with a password), jobs with
a cron schedule, a plugin step and a pipeline trigger, a job removed after
its runs and one added after it (0.1.0 gave it the removed job's id), and
runs Completed (dbt build: logs, artifacts, lineage), Failed (dbt, a missing
branch, kill -9 of dbtd, dbtd stopped), Canceled, Skipped, a re-run, a
PostgreSQL run, and one left Queued."""
import copy
import datetime
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import zoneinfo

import pytest

from conftest import (BASE_ENV, DBT, DBTCTL, DBTD, EXAMPLE, PLUGIN_DIR, SRC, Dbtd, Postgres,
                      make_repo, wait_for)
from test_lifecycle import add_slow_model, processes_under

# One worker runs this whole module (run-e2e.sh: --dist loadgroup): its
# module fixtures build 0.1.0 and fill a store with real runs, which two
# workers would each do.
pytestmark = pytest.mark.xdist_group("upgrade")

OLD_COMMIT = "400ce6c"  # the released dbtd 0.1.0
OLD_VERSION = "0.1.0"
OLD_FORMAT = 1          # 0.1.0's store: no format record
NEW_FORMAT = 2
CACHE = os.path.join(SRC, ".cache", f"dbtd-{OLD_VERSION}-{OLD_COMMIT}")
PASSWORD = "upgrade-Pg-Secret-4d2a!q"
HOOK_SECRET = "upgrade-Hook-Secret-91bf"
TZ = "Europe/Amsterdam"


def source_version():
    with open(os.path.join(SRC, "configure.ac")) as f:
        return re.search(r"AC_INIT\(\[dbtd\],\s*\[([^\]]+)\]", f.read()).group(1)


NEW_VERSION = source_version()


# ---- dbtd 0.1.0, built once from the history and cached ----

def make_env():
    """The environment of a build of our own: nothing of a make running the
    tests (its jobserver, flags or DESTDIR)."""
    return {k: v for k, v in BASE_ENV.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS",
                         "CPPFLAGS", "LDFLAGS", "DESTDIR")}


class OldRelease:
    """The installed dbtd 0.1.0 under CACHE/inst."""

    def __init__(self, root):
        self.root = root
        inst = os.path.join(root, "inst")
        self.dbtd = os.path.join(inst, "bin", "dbtd")
        self.dbtctl = os.path.join(inst, "bin", "dbtctl")
        pcs = glob.glob(os.path.join(inst, "**", "dbtd-step.pc"), recursive=True)
        assert len(pcs) == 1, f"one dbtd-step.pc installed under {inst}: {pcs}"
        # its built-in default --plugin-dir
        self.plugin_dir = subprocess.run(
            ["pkg-config", "--variable=plugindir", "dbtd-step"], check=True, text=True,
            capture_output=True, env=dict(BASE_ENV, PKG_CONFIG_LIBDIR=os.path.dirname(pcs[0]),
                                          PKG_CONFIG_PATH="")).stdout.strip()
        self.test_good = os.path.join(self.plugin_dir, "good.so")


def _build_old(root):
    def step(cmd, cwd):
        with open(os.path.join(root, "build.log"), "ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            p = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=log, env=make_env())
        if p.returncode != 0:
            with open(os.path.join(root, "build.log"), errors="replace") as f:
                tail = f.read()[-4000:]
            pytest.fail(f"building dbtd {OLD_VERSION} ({OLD_COMMIT}) failed at "
                        f"{' '.join(cmd)} (exit {p.returncode}):\n{tail}", pytrace=False)

    have = subprocess.run(["git", "-C", SRC, "cat-file", "-e", OLD_COMMIT + "^{commit}"],
                          capture_output=True, text=True, env=BASE_ENV)
    if have.returncode != 0:
        pytest.fail(f"commit {OLD_COMMIT} (the released dbtd {OLD_VERSION}) is not in the "
                    f"Git history of {SRC}: the upgrade tests build the old release from it "
                    f"(a shallow clone? run `git fetch --unshallow`).\n{have.stderr}",
                    pytrace=False)
    src = os.path.join(root, "src")
    os.makedirs(src)
    archive = subprocess.Popen(["git", "-C", SRC, "archive", OLD_COMMIT],
                               stdout=subprocess.PIPE, env=BASE_ENV)
    tar = subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, env=BASE_ENV)
    archive.stdout.close()
    assert archive.wait() == 0 and tar.returncode == 0, f"git archive {OLD_COMMIT} | tar -x"
    step(["./autogen.sh"], src)
    # The release as it was, but: its -Werror is for its developers (a newer
    # compiler may warn), and its systemd units must not go to the system's
    # unit directory.
    step(["./configure", "-q", "--prefix=" + os.path.join(root, "inst"), "--disable-werror",
          "--with-systemdsystemunitdir=no"], src)
    step(["make", "-j2", "-s"], src)
    step(["make", "-s", "install"], src)
    # 0.1.0's test plugin "test-good" (a step that logs a line), installed in
    # its default plugin directory, so a job with a plugin step runs there.
    step(["make", "-s", "tests/plugins/good.la"], src)
    rel = OldRelease(root)
    shutil.copyfile(os.path.join(src, "tests", "plugins", ".libs", "good.so"), rel.test_good)


def build_old_release():
    """dbtd 0.1.0 from commit OLD_COMMIT, built once in CACHE: the normal and
    the ASan pass of tests/run.sh share it (a lock keeps two builds apart;
    the stamp "done" is written last, so a build cut short is redone)."""
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    stamp = os.path.join(CACHE, "done")
    with open(CACHE + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(stamp):
            shutil.rmtree(CACHE, ignore_errors=True)
            os.makedirs(CACHE)
            _build_old(CACHE)
            with open(stamp, "w") as f:
                f.write(f"dbtd {OLD_VERSION} from {OLD_COMMIT}\n")
    return OldRelease(CACHE)


# ---- dbtctl, old or new, and everything it shows ----

class Ctl:
    """One dbtctl binary (0.1.0's or this build's) talking to one dbtd."""

    def __init__(self, binary, sock):
        self.binary = binary
        self.sock = sock

    def run(self, *args, env=None):
        return subprocess.run([self.binary, "--socket", self.sock] + [str(a) for a in args],
                              capture_output=True, env=env or BASE_ENV, timeout=600)

    def ok(self, *args, env=None):
        p = self.run(*args, env=env)
        assert p.returncode == 0, (
            f"{self.binary} {' '.join(map(str, args))} -> exit {p.returncode}\n"
            f"{p.stdout.decode(errors='replace')}{p.stderr.decode(errors='replace')}")
        return p.stdout

    def text(self, *args, **kw):
        return self.ok(*args, **kw).decode()

    def json(self, *args, **kw):
        return json.loads(self.ok("--json", *args, **kw))


def outcome(p):
    """A command that may fail for a good reason (a run without lineage):
    its output when it worked, else its exit status and message."""
    if p.returncode == 0:
        return json.loads(p.stdout)
    return {"exit": p.returncode, "stderr": p.stderr.decode(errors="replace")}


def log_file(ctl, scratch, run_id, *args):
    """`run logs --output`: the log exactly as stored, byte for byte."""
    out = os.path.join(scratch, "log.out")
    ctl.ok("run", "logs", run_id, *args, "--output", out)
    with open(out, "rb") as f:
        return f.read()


def all_runs(ctl, page=4):
    """run list, page by page (--limit/--before), newest first."""
    runs, before = [], []
    while True:
        got = ctl.json("run", "list", "--limit", page, *before)
        runs += got
        if len(got) < page:
            break
        before = ["--before", got[-1]["id"]]
    assert runs == ctl.json("run", "list", "--limit", 10000), \
        "paging through run list gives the runs one big page gives"
    return runs


def dump_run(ctl, run_id, scratch):
    view = ctl.json("run", "view", run_id)
    r = {"view": view, "view (text)": ctl.text("run", "view", run_id),
         "logs": log_file(ctl, scratch, run_id),
         "logs (text)": ctl.text("run", "logs", run_id),
         "logs (json lines)": ctl.text("--json", "run", "logs", run_id),
         "step logs": {s["index"]: log_file(ctl, scratch, run_id, "--step", s["index"])
                       for s in view["steps"]},
         "artifacts": outcome(ctl.run("--json", "run", "artifacts", run_id)),
         "lineage": outcome(ctl.run("--json", "run", "lineage", run_id, "--tests"))}
    if isinstance(r["artifacts"], list):
        r["artifact"] = {a["path"]: ctl.ok("run", "artifact", run_id, a["path"])
                         for a in r["artifacts"]}
    return r


def dump(ctl, scratch):
    """Everything a user sees of the store through dbtctl: projects,
    environments and jobs (lists and views, JSON and text), and of every run
    its view, logs (whole and per step, raw and as printed), artifacts with
    their content, and lineage."""
    os.makedirs(scratch, exist_ok=True)
    d = {}
    for kind in ("project", "env", "job"):
        items = ctl.json(kind, "list")
        d[f"{kind} list"] = items
        d[f"{kind} list (text)"] = ctl.text(kind, "list")
        for it in items:
            d[f"{kind} view {it['name']}"] = ctl.json(kind, "view", it["name"])
            d[f"{kind} view {it['name']} (text)"] = ctl.text(kind, "view", it["name"])
    d["run list"] = all_runs(ctl)
    d["run list (text)"] = ctl.text("run", "list", "--limit", 10000)
    d["runs"] = {r["id"]: dump_run(ctl, r["id"], scratch) for r in d["run list"]}
    return d


# What a run has from the moment it is created.  The run 0.1.0 left Queued
# starts on the next start of any dbtd, so its status, times, steps, commit,
# error, logs, artifacts and lineage are each dbtd's own; only these are
# compared for it.
CREATED_FIELDS = ("id", "job", "job_type", "environment", "trigger", "branch", "created_at",
                  "triggered_by", "rerun_of", "pr_number")


def comparable(d, runs=None, moving=()):
    """The part of dump d to compare: the runs in `runs` (all when None), and
    of the runs in `moving` only CREATED_FIELDS."""
    d = copy.deepcopy(d)
    keep = set(d["runs"]) if runs is None else set(runs)

    def created(r):
        return {k: r[k] for k in CREATED_FIELDS}

    d["run list"] = [created(r) if r["id"] in moving else r
                     for r in d["run list"] if r["id"] in keep]
    header, *rows = d["run list (text)"].splitlines()
    d["run list (text)"] = [header] + [row for row in rows
                                       if int(row.split()[0]) in keep - set(moving)]
    d["runs"] = {i: {"view": created(r["view"])} if i in moving else r
                 for i, r in d["runs"].items() if i in keep}
    return d


def short(v):
    s = repr(v)
    return s if len(s) <= 160 else s[:160] + f"... ({len(v)} long)"


def differences(want, got, path=""):
    """Where got differs from want, one line each."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got), key=str):
            p = f"{path} / {k}" if path else str(k)
            if k not in got:
                yield f"{p}: missing (was {short(want[k])})"
            elif k not in want:
                yield f"{p}: new: {short(got[k])}"
            else:
                yield from differences(want[k], got[k], p)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got)):
            yield from differences(a, b, f"{path}[{i}]")
    elif isinstance(want, (str, bytes)) and type(want) is type(got) and want != got:
        i = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                 min(len(want), len(got)))
        yield (f"{path}: differs at offset {i} (length {len(want)} -> {len(got)}): "
               f"{short(want[max(0, i - 40):i + 80])} -> {short(got[max(0, i - 40):i + 80])}")
    elif type(want) is not type(got) or want != got:
        yield f"{path}: {short(want)} -> {short(got)}"


# What this release shows that 0.1.0 did not, for every object alike: a job's
# retention (keep_runs / keep_days, null and "dbtd's ..." when the job has
# none of its own).  Taken out of what this dbtctl prints before comparing.
ADDED_NULL_FIELDS = ("keep_runs", "keep_days")
ADDED_TEXT_LINE = re.compile(r"^  Keep (runs|days) .*\n", re.M)


def without_additions(v):
    if isinstance(v, dict):
        return {k: without_additions(x) for k, x in v.items()
                if not (k in ADDED_NULL_FIELDS and x is None)}
    if isinstance(v, list):
        return [without_additions(x) for x in v]
    if isinstance(v, str):
        return ADDED_TEXT_LINE.sub("", v)
    return v


def assert_same(want, got, what):
    got = without_additions(got)
    diffs = list(differences(want, got))
    assert not diffs, f"{what}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])


def secrets_in(value, secrets, path=""):
    """Where in a dump (or any text) a secret appears."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from secrets_in(v, secrets, f"{path} / {k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from secrets_in(v, secrets, f"{path}[{i}]")
    else:
        b = value if isinstance(value, bytes) else str(value).encode()
        for s in secrets:
            if s.encode() in b:
                yield f"{path} holds {s!r}"


def wait_idle(ctl):
    """Until no run is queued or running."""
    wait_for("every run to end",
             lambda: all(r["status"] not in ("queued", "running")
                         for r in ctl.json("run", "list", "--limit", 10000)),
             timeout=240, every=0.3)


def rfc3339_ms(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- dbtd 0.1.0 fills a state directory ----

def old_dbtd(root, old):
    """0.1.0's dbtd with its built-in plugin directory (test-good installed)."""
    os.makedirs(root, exist_ok=True)
    return Dbtd(root, binary=old.dbtd, plugin_dir=None,
                extra_args=["--max-concurrent-runs", "1"])


def start_run(ctl, job):
    """job run without waiting: (id, status, exit status)."""
    p = ctl.run("--json", "job", "run", job)
    r = json.loads(p.stdout)
    return r["id"], r["status"], p.returncode


def wait_run(ctl, job, status):
    p = ctl.run("--json", "job", "run", job, "--wait")
    r = json.loads(p.stdout)
    assert r["status"] == status, f"run of {job}: {r['status']}, not {status}: {r}"
    return r["id"]


def step_log(ctl, run_id, step):
    return ctl.run("run", "logs", run_id, "--step", step).stdout


class Filled:
    """A state directory 0.1.0 left, and what 0.1.0 showed of it."""

    def __init__(self, root, old, pg):
        self.root = root
        self.old = old
        self.pg = pg
        self.ids = {}        # what each run is -> its id
        self.state = None    # the state directory as 0.1.0 left it
        self.baseline = None  # dump(), old dbtctl against old dbtd
        self.check_before = None  # dbtd check --json of state

    def copy_to(self, root):
        """A copy of the state directory in root/state, for a Dbtd(root)."""
        os.makedirs(root, exist_ok=True)
        shutil.copytree(self.state, os.path.join(root, "state"), symlinks=True)
        return root

    @property
    def moving(self):
        return {self.ids["queued"]}

    def new_plugin_dir(self):
        """This build's plugins and 0.1.0's test-good, which a job uses."""
        d = os.path.join(self.root, "new-plugins")
        if not os.path.isdir(d):
            os.makedirs(d)
            for f in glob.glob(os.path.join(PLUGIN_DIR, "*.so")):
                os.symlink(f, os.path.join(d, os.path.basename(f)))
            os.symlink(self.old.test_good, os.path.join(d, "good.so"))
        return d

    def new_dbtd(self, root):
        return Dbtd(root, plugin_dir=self.new_plugin_dir(),
                    extra_args=["--max-concurrent-runs", "1"])

    def dump_old_ctl(self, d, name):
        return dump(Ctl(self.old.dbtctl, d.sock), os.path.join(d.root, name))

    def assert_keeps_baseline(self, got, what):
        """got (a dump) shows everything as 0.1.0 did; of its runs only the
        baseline's (later runs are not compared), and the run 0.1.0 left
        Queued only as it was created."""
        keep = set(self.baseline["runs"])
        assert_same(comparable(self.baseline, keep, self.moving),
                    comparable(got, keep, self.moving), what)


def fill_state(f):
    """Projects, environments (DuckDB, PostgreSQL with a password), jobs
    (a schedule, a plugin step, a pipeline trigger, a removed one) and runs
    of every status, with 0.1.0's dbtd and dbtctl."""
    shop = make_repo(f.root, "shop")
    add_slow_model(shop)
    pg_repo = make_repo(f.root, "shop-pg")
    d = old_dbtd(os.path.join(f.root, "old"), f.old).start()
    try:
        fill_with(f, d, shop, pg_repo)
    finally:
        d.stop(signal.SIGKILL)  # only when something failed: it is stopped at the end
    f.state = d.state


def fill_with(f, d, shop, pg_repo):
    """fill_state's work, with 0.1.0's dbtd d running: run ids go to f.ids."""
    root, old, pg, ids = f.root, f.old, f.pg, f.ids
    ctl = Ctl(old.dbtctl, d.sock)
    ctl.ok("project", "add", "shop", "--repo", shop)
    ctl.ok("project", "add", "shop-pg", "--repo", pg_repo)
    ctl.ok("project", "add", "lake", "--repo", "https://git.example.invalid/data/lake.git",
           "--subdir", "transform", "--webhook-secret-env", "HOOK_SECRET",
           env=dict(BASE_ENV, HOOK_SECRET=HOOK_SECRET))
    for name, branch, extra in (
            ("prod", "main", ["--schema", "main", "--threads", "2", "--env", "UPGRADE_TEST=yes"]),
            ("dev", "main", ["--threads", "1"]),
            ("gone", "no-such-branch", [])):
        ctl.ok("env", "add", name, "--project", "shop", "--branch", branch, "--destination",
               "duckdb", "--path", os.path.join(root, name + ".duckdb"), "--dbt", DBT, *extra)
    ctl.ok("env", "add", "pg", "--project", "shop-pg", "--branch", "main", "--destination",
           "postgres", "--host", "127.0.0.1", "--port", pg.port, "--user", "dbt",
           "--password-env", "PGPASS", "--dbname", "analytics", "--schema", "marts",
           "--threads", "2", "--dbt", DBT, env=dict(BASE_ENV, PGPASS=PASSWORD))

    # A daily schedule 12 hours away: it does not fire while the tests run,
    # and its next five fire times stay the same.
    hour = (datetime.datetime.now(zoneinfo.ZoneInfo(TZ)).hour + 12) % 24
    ctl.ok("job", "add", "nightly", "--env", "prod", "--command", "dbt build",
           "--schedule", f"0 {hour} * * *", "--timezone", TZ, "--timeout", 900)
    ctl.ok("job", "add", "broken", "--env", "dev", "--command", "dbt parse --no-such-option")
    ctl.ok("job", "add", "slow", "--env", "prod", "--command", "dbt build --select slow")
    ctl.ok("job", "add", "with-plugin", "--env", "dev", "--step", "test-good:greeting=hello",
           "--command", "dbt parse")
    ctl.ok("job", "add", "pg-seed", "--env", "pg", "--command", "dbt seed",
           "--on-pipeline", "crm")
    ctl.ok("job", "add", "waits", "--env", "gone", "--command", "dbt parse")
    ctl.ok("job", "add", "doomed", "--env", "gone", "--command", "dbt parse")

    ids["completed"] = wait_run(ctl, "nightly", "completed")
    ids["failed"] = wait_run(ctl, "broken", "failed")
    ids["plugin"] = wait_run(ctl, "with-plugin", "completed")
    assert b"good step ran" in step_log(ctl, ids["plugin"], 4)
    started = ctl.json("event", "pipeline", "crm")["runs"]
    assert len(started) == 1, started
    ids["pg"] = started[0]["id"]
    assert ctl.run("run", "watch", ids["pg"]).returncode == 0, d.log()
    assert pg.sql("select count(*) from marts.raw_customers", db="analytics") == \
        str(seed_rows("raw_customers"))
    ids["doomed"] = wait_run(ctl, "doomed", "failed")  # its branch does not exist
    ids["doomed rerun"] = json.loads(ctl.run("--json", "run", "rerun", ids["doomed"],
                                             "--wait").stdout)["id"]

    # Skipped and Canceled
    ids["canceled"], status, _ = start_run(ctl, "slow")
    assert status == "running"
    ids["skipped"], status, rc = start_run(ctl, "slow")
    assert (status, rc) == ("skipped", 1)
    ctl.ok("run", "cancel", ids["canceled"])

    # kill -9 of dbtd while dbt runs the slow model; 0.1.0 restarted records
    # the run Failed
    ids["killed"], _, _ = start_run(ctl, "slow")
    wait_for("dbt to start the slow model",
             lambda: b"START sql" in step_log(ctl, ids["killed"], 4), timeout=120)
    d.stop(signal.SIGKILL)
    work = os.path.join(d.state, "work")
    wait_for("the run's processes to end", lambda: processes_under(work) == [], timeout=30)
    d.start()
    r = ctl.json("run", "view", ids["killed"])
    assert (r["status"], r["error"]) == ("failed", "dbtd stopped while the run was running"), r

    # 0.1.0 takes the id of the newest job, removed, for the next job added
    ctl.ok("job", "rm", "doomed")
    ctl.ok("job", "add", "later", "--env", "dev", "--type", "merge", "--command", "dbt build")

    # Stopped (SIGTERM) with a run Running and one Queued behind it
    ids["stopped"], status, _ = start_run(ctl, "slow")
    assert status == "running"
    ids["queued"], status, _ = start_run(ctl, "waits")
    assert status == "queued"
    assert d.stop() == 0, d.log()


def seed_rows(name):
    with open(os.path.join(EXAMPLE, "seeds", name + ".csv")) as fh:
        return sum(1 for line in fh if line.strip()) - 1


def take_baseline(f):
    """Dump what 0.1.0 shows of the filled state, with 0.1.0's dbtctl, on a
    copy (0.1.0 starts the run it left Queued, so the copy moves on)."""
    d = old_dbtd(f.copy_to(os.path.join(f.root, "baseline")), f.old).start()
    try:
        ctl = Ctl(f.old.dbtctl, d.sock)
        wait_idle(ctl)
        f.baseline = dump(ctl, os.path.join(d.root, "dump"))
    finally:
        assert d.stop() == 0, d.log()
    runs = f.baseline["runs"]
    statuses = {runs[i]["view"]["status"] for i in runs}
    assert statuses == {"completed", "failed", "canceled", "skipped"}, statuses
    assert runs[f.ids["stopped"]]["view"]["status"] == "failed"
    # what the comparisons rely on is there to compare
    done = runs[f.ids["completed"]]
    assert done["lineage"]["nodes"] and done["lineage"]["edges"]
    assert any(p == "target/manifest.json" for p in done["artifact"])
    assert b"Running with dbt" in done["logs"]
    assert [j["name"] for j in f.baseline["job list"]].count("later") == 1
    assert "doomed" not in [j["name"] for j in f.baseline["job list"]]
    assert runs[f.ids["doomed rerun"]]["view"]["rerun_of"] == f.ids["doomed"]


@pytest.fixture(scope="module")
def old_release():
    return build_old_release()


@pytest.fixture(scope="module")
def pg():
    p = Postgres(PASSWORD).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def filled(old_release, pg):
    root = tempfile.mkdtemp(prefix="dbtd-upg-")
    f = Filled(root, old_release, pg)
    try:
        fill_state(f)
        take_baseline(f)
        f.check_before = check_report(f.state)  # this dbtd's check of 0.1.0's store
        yield f
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- this dbtd on 0.1.0's store ----

def dbtd_check(state, *args):
    return subprocess.run([DBTD, "check", "--state-dir", state] + list(args),
                          capture_output=True, text=True, env=BASE_ENV, timeout=120)


def check_report(state):
    """dbtd check --json, which must find no problem."""
    p = dbtd_check(state, "--json")
    assert p.returncode == 0, f"dbtd check --state-dir {state}: exit {p.returncode}\n" \
                              f"{p.stdout}{p.stderr}"
    report = json.loads(p.stdout)
    assert report["problems"] == [], report
    return report


def assert_counts(report, d, before=None):
    """dbtd check counts what dbtctl shows of dump d; and, with before (a
    report on the store before the migration), all it counted then."""
    runs = d["runs"].values()
    shown = {"projects": len(d["project list"]), "environments": len(d["env list"]),
             "jobs": len(d["job list"]), "runs": len(d["run list"]),
             "artifacts": sum(len(r["artifact"]) for r in runs if "artifact" in r)}
    got = {k: report["counts"][k] for k in shown}
    assert got == shown, f"dbtd check counts {got}, dbtctl shows {shown}"
    if before:
        # the run left Queued has run since, and logged
        for k, n in before["counts"].items():
            if k == "log_chunks":
                assert report["counts"][k] >= n, (report["counts"], before["counts"])
            else:
                assert report["counts"][k] == n, (report["counts"], before["counts"])


def run_ids(ctl):
    return [r["id"] for r in ctl.json("run", "list", "--limit", 10000)]


def migrate(f, root):
    """This dbtd started on a copy of the filled state in root (unless there
    is one), once the run 0.1.0 left Queued has ended; (dbtd, the time it was
    started in ms)."""
    if not os.path.isdir(os.path.join(root, "state")):
        f.copy_to(root)
    d = f.new_dbtd(root)
    t0 = time.time() * 1000
    d.start()
    wait_idle(Ctl(DBTCTL, d.sock))
    return d, t0


def test_upgrade_keeps_everything(filled, pg, workdir):
    f = filled
    root = os.path.join(workdir, "new")
    state = os.path.join(f.copy_to(root), "state")
    data = os.path.join(state, "data.mdb")
    before = sha256(data)

    # dbtd check reads a 0.1.0 store without changing it
    report = check_report(state)
    assert (report["format"], report["max_format"]) == (OLD_FORMAT, NEW_FORMAT), report
    assert report["backups"] == [], report
    assert_counts(report, f.baseline)
    p = dbtd_check(state)
    assert p.returncode == 0 and re.search(rf"\bformat\s+{OLD_FORMAT}\b", p.stdout), \
        p.stdout + p.stderr
    assert "migrat" in p.stdout.lower(), f"dbtd check says the next start migrates:\n{p.stdout}"
    assert sha256(data) == before, "dbtd check changed data.mdb"

    d, t0 = migrate(f, root)
    try:
        log = d.log()
        for want in (f"has format {OLD_FORMAT}", f"migrating to format {NEW_FORMAT}",
                     f"backup of format {OLD_FORMAT} written to {state}/backup-format-1",
                     f"store migrated to format {NEW_FORMAT}"):
            assert want in log, f"dbtd's log says {want!r}:\n{log}"
        assert log.index(f"store migrated to format {NEW_FORMAT}") < log.index("listening on"), \
            f"dbtd serves only once the store is migrated:\n{log}"
        assert os.path.isfile(os.path.join(state, "backup-format-1", "data.mdb"))

        new_ctl = Ctl(DBTCTL, d.sock)
        # 0.1.0's dbtctl sees through this dbtd what it saw through 0.1.0's,
        # and so does this dbtctl
        f.assert_keeps_baseline(f.dump_old_ctl(d, "dump-old-ctl"),
                                "0.1.0's dbtctl, dbtd 0.1.0 -> this dbtd")
        f.assert_keeps_baseline(dump(new_ctl, os.path.join(root, "dump-new-ctl")),
                                "0.1.0's dbtctl and dbtd -> this dbtctl and dbtd")
        # the run 0.1.0 left Queued was started by this dbtd
        queued = new_ctl.json("run", "view", f.ids["queued"])
        assert queued["status"] not in ("queued", "running"), queued
        assert rfc3339_ms(queued["started_at"]) >= t0 - 1000, (queued, t0)

        # The PostgreSQL environment's password still works; a new run gets
        # an id above every run 0.1.0 recorded.
        old_ids = run_ids(new_ctl)
        pg.sql("drop schema marts cascade", db="analytics")
        p = new_ctl.run("--json", "job", "run", "pg-seed", "--wait")
        r = json.loads(p.stdout)
        assert p.returncode == 0 and r["status"] == "completed", f"{r}\n{d.log()}"
        assert r["id"] > max(old_ids), (r["id"], old_ids)
        assert pg.sql("select count(*) from marts.raw_customers", db="analytics") == \
            str(seed_rows("raw_customers"))

        after = f.dump_old_ctl(d, "dump-after")
        f.assert_keeps_baseline(after, "0.1.0's history after a new run")
        outputs = [after, dump(new_ctl, os.path.join(root, "dump-after-new")), p.stdout,
                   d.log()]
        leaks = [w for t in outputs for w in secrets_in(t, (PASSWORD, HOOK_SECRET))]
        assert leaks == [], leaks
    finally:
        assert d.stop() == 0, d.log()

    # 0.1.0 started on the migrated store (it ignores the format record)
    old = old_dbtd(root, f.old)
    old.start()
    assert old.stop() == 0, old.log()

    d = f.new_dbtd(root)
    mark = os.path.getsize(d.logpath)
    d.start()
    try:
        again = f.dump_old_ctl(d, "dump-again")
        assert_same(after, again, "this dbtd after 0.1.0 ran on the migrated store")
    finally:
        assert d.stop() == 0, d.log()
    with open(d.logpath, "rb") as fh:
        fh.seek(mark)
        last = fh.read().decode(errors="replace")
    assert "migrat" not in last and "backup" not in last, \
        f"a store of format {NEW_FORMAT} is not migrated again:\n{last}"

    report = check_report(state)
    assert (report["format"], report["max_format"]) == (NEW_FORMAT, NEW_FORMAT), report
    assert report["migrated_from"] == OLD_FORMAT, report
    assert t0 - 1000 <= report["migrated_at_ms"] <= time.time() * 1000, (report, t0)
    assert report["written_by"] == f"dbtd {NEW_VERSION}", report
    assert report["backups"] == ["backup-format-1"], report
    assert_counts(report, again)
    assert report["next_ids"]["runs"] > max(again["runs"]), report


def test_rerun_of_a_removed_jobs_run_after_upgrade(filled, workdir):
    """0.1.0 gave the id of the removed job "doomed" to "later": re-running a
    run of "doomed" must not run "later" in its place."""
    f = filled
    d, _ = migrate(f, os.path.join(workdir, "new"))
    try:
        ctl = Ctl(DBTCTL, d.sock)
        before = run_ids(ctl)
        p = ctl.run("run", "rerun", f.ids["doomed"])
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode != 0, f"run rerun {f.ids['doomed']} (job doomed, removed): " \
                                  f"exit 0:\n{out}{ctl.text('run', 'list')}"
        assert "doomed" in p.stderr.decode(), f"the error names the removed job:\n{out}"
        assert run_ids(ctl) == before, "a refused re-run starts no run"
        assert ctl.json("run", "list", "--job", "later") == []
    finally:
        assert d.stop() == 0, d.log()


def test_backup_is_the_old_store(filled, workdir):
    """dbtd(8): to go back to 0.1.0, use the backup directory as the state
    directory; 0.1.0 then shows the history as it did."""
    f = filled
    d, _ = migrate(f, os.path.join(workdir, "new"))
    assert d.stop() == 0, d.log()
    root = os.path.join(workdir, "back")
    os.makedirs(root)
    shutil.copytree(os.path.join(d.state, "backup-format-1"), os.path.join(root, "state"))
    old = old_dbtd(root, f.old).start()
    try:
        wait_idle(Ctl(f.old.dbtctl, old.sock))
        try:
            got = f.dump_old_ctl(old, "dump")
        except AssertionError as e:
            raise AssertionError(f"0.1.0 on backup-format-1 as its state directory: {e}")
        f.assert_keeps_baseline(got, "0.1.0 on the backup the migration left")
    finally:
        assert old.stop() == 0, old.log()


def run_to_exit(cmd, env, what, log=None):
    """Run a dbtd that must exit by itself (it refuses, or kills itself):
    its exit status and standard error (both outputs also appended to log)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{what}: dbtd did not exit within 120 s:\n"
                    f"{(out + err).decode(errors='replace')}", pytrace=False)
    if log:
        with open(log, "ab") as fh:
            fh.write(out + err)
    return proc.returncode, err.decode(errors="replace")


def test_secrets_stay_private_after_upgrade(filled, workdir):
    """As test_postgres: the password is kept only in the store, in files
    no one else can read; the backup of the migration included."""
    d, _ = migrate(filled, os.path.join(workdir, "new"))
    assert d.stop() == 0, d.log()
    holders = {}
    for dirpath, _, files in os.walk(d.state):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                if PASSWORD.encode() in fh.read():
                    holders[os.path.relpath(path, d.state)] = oct(os.stat(path).st_mode & 0o777)
    assert holders == {"data.mdb": "0o600", "backup-format-1/data.mdb": "0o600"}, \
        f"the files holding the password, with their modes: {holders}"


# ---- a store of a newer format ----

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def store_format(fmt, written_by):
    """A StoreFormat message: format = 1 (varint), written_by = 2 (string)."""
    wb = written_by.encode()
    return b"\x08" + varint(fmt) + b"\x12" + varint(len(wb)) + wb


def parse_store_format(b):
    """(format, written_by) of a StoreFormat message; other fields skipped."""
    fields, i = {}, 0

    def read_varint():
        nonlocal i
        n = shift = 0
        while True:
            c = b[i]
            i += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return n
    while i < len(b):
        tag = read_varint()
        if tag & 7 == 0:
            fields[tag >> 3] = read_varint()
        elif tag & 7 == 2:
            n = read_varint()
            fields[tag >> 3] = b[i:i + n]
            i += n
        else:
            raise AssertionError(f"unexpected wire type in {b!r}")
    return fields.get(1, 0), fields.get(2, b"").decode()


def lmdb_module():
    try:
        import lmdb
    except ImportError:
        pytest.fail("the Python package lmdb is missing: run tests/install-deps.sh "
                    "(tests/requirements-test.txt)", pytrace=False)
    return lmdb


def test_future_format_refused(workdir):
    lmdb = lmdb_module()
    d = Dbtd(workdir).start()
    Ctl(DBTCTL, d.sock).ok("project", "add", "shop", "--repo", make_repo(workdir))
    assert d.stop() == 0, d.log()
    report = check_report(d.state)
    assert (report["format"], report["written_by"]) == (NEW_FORMAT, f"dbtd {NEW_VERSION}")
    assert report["created_at_ms"] > 0 and report["backups"] == [], report

    env = lmdb.open(d.state, max_dbs=32, create=False)
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin(write=True) as txn:
            assert parse_store_format(txn.get(b"format", db=meta)) == \
                (NEW_FORMAT, f"dbtd {NEW_VERSION}"), "the format record this dbtd wrote"
            txn.put(b"format", store_format(99, "dbtd 9.9.9"), db=meta)
    finally:
        env.close()
    data = os.path.join(d.state, "data.mdb")
    before = sha256(data)

    def refused(rc, err, what):
        """Exit 1 naming both formats and releases; data.mdb as it was."""
        assert rc == 1, f"{what}: exit {rc}\n{err}"
        for want in ("format 99", "dbtd 9.9.9", f"dbtd {NEW_VERSION}", d.state):
            assert want in err, f"{what}: its message names {want!r}:\n{err}"
        assert re.search(rf"\bformats? (1 to )?{NEW_FORMAT}\b", err), \
            f"{what}: its message names format {NEW_FORMAT}:\n{err}"
        assert sha256(data) == before, f"{what} changed data.mdb"
        return err

    rc, out = run_to_exit([DBTD, "--socket", d.sock, "--state-dir", d.state, "--plugin-dir",
                           PLUGIN_DIR], BASE_ENV, "dbtd on a store of format 99")
    assert "nothing was changed" in refused(rc, out, "dbtd").lower(), out
    assert not os.path.exists(d.sock), "dbtd listened on a store it refuses"
    for args in ((), ("--json",)):
        p = dbtd_check(d.state, *args)
        refused(p.returncode, p.stderr, "dbtd check " + " ".join(args))


# ---- killed while migrating ----

@pytest.mark.parametrize("point", ["after-backup", "before-commit-2", "after-commit-2"])
def test_migration_killed_at_each_step(filled, workdir, point):
    f = filled
    root = f.copy_to(os.path.join(workdir, "killed"))
    d = f.new_dbtd(root)
    rc, out = run_to_exit([DBTD, "--socket", d.sock, "--state-dir", d.state, "--plugin-dir",
                           d.plugin_dir] + d.extra_args,
                          dict(BASE_ENV, DBTD_TEST_MIGRATION_KILL=point),
                          f"DBTD_TEST_MIGRATION_KILL={point}", log=d.logpath)
    assert rc == -signal.SIGKILL, f"DBTD_TEST_MIGRATION_KILL={point}: exit {rc}:\n{out}"

    d.start()
    try:
        wait_idle(Ctl(DBTCTL, d.sock))
        f.assert_keeps_baseline(f.dump_old_ctl(d, "dump"),
                                f"0.1.0's store, migration killed {point}, then started again")
    finally:
        assert d.stop() == 0, d.log()
    report = check_report(d.state)
    assert (report["format"], report["migrated_from"]) == (NEW_FORMAT, OLD_FORMAT), report
    assert report["backups"] == ["backup-format-1"], report
    assert_counts(report, f.baseline, f.check_before)


# ---- this dbtctl, 0.1.0's dbtd ----

def test_this_dbtctl_reads_lists_from_0_1_0(filled, workdir):
    """This dbtctl asks for a run's artifacts and lineage as streams
    (RunRef.stream); 0.1.0 knows no such thing and answers in one frame
    with neither `more` nor `end`.  dbtctl takes that frame as the whole
    answer (it does not wait for more until its timeout) and shows what
    0.1.0's dbtctl showed."""
    f = filled
    root = f.copy_to(os.path.join(workdir, "old-again"))
    d = old_dbtd(root, f.old)
    d.start()
    try:
        ctl = Ctl(DBTCTL, d.sock)
        wait_idle(ctl)  # the run 0.1.0 left Queued starts again
        # a dbtctl waiting for more would give up with exit 5 after this
        env = dict(BASE_ENV, DBTCTL_TIMEOUT="20")
        seen = 0
        for run_id, want in f.baseline["runs"].items():
            if run_id in f.moving:
                continue
            for key, args in (("artifacts", ("run", "artifacts", run_id)),
                              ("lineage", ("run", "lineage", run_id, "--tests"))):
                got = outcome(ctl.run("--json", *args, env=env))
                assert_same(want[key], got, f"this dbtctl {' '.join(map(str, args))} "
                                            "against 0.1.0's dbtd")
            seen += isinstance(want["artifacts"], list) and len(want["artifacts"]) > 0
        assert seen >= 2
    finally:
        assert d.stop() == 0, d.log()


# ---- dbtctl version ----

def dbtctl_version(d):
    """This dbtctl's `version`, as text lines and as JSON, against dbtd d."""
    os.makedirs(d.root, exist_ok=True)
    d.start()
    try:
        ctl = Ctl(DBTCTL, d.sock)
        return ctl.text("version").splitlines(), ctl.json("version")
    finally:
        assert d.stop() == 0, d.log()


def test_dbtctl_version_against_old_and_new(old_release, workdir):
    p = subprocess.run([DBTD, "--version"], capture_output=True, text=True, env=BASE_ENV)
    assert p.returncode == 0 and \
        p.stdout.splitlines()[0] == f"dbtd {NEW_VERSION} (store format {NEW_FORMAT})", p.stdout

    old = old_dbtd(os.path.join(workdir, "old"), old_release)
    lines, report = dbtctl_version(old)
    assert lines[0].startswith(f"dbtctl {NEW_VERSION} "), lines
    assert lines[1].startswith(f"dbtd {OLD_VERSION} at {old.sock} "), lines
    assert "too old to report its store format" in lines[1], lines
    assert report == dict(report, client=f"dbtctl {NEW_VERSION}", server=f"dbtd {OLD_VERSION}",
                          protocol=1, store_format=None), report

    new = Dbtd(os.path.join(workdir, "new"))
    lines, report = dbtctl_version(new)
    assert lines[0].startswith(f"dbtctl {NEW_VERSION} "), lines
    assert lines[1].startswith(f"dbtd {NEW_VERSION} at {new.sock} "), lines
    assert f"store format {NEW_FORMAT}" in lines[1], lines
    assert report == dict(report, client=f"dbtctl {NEW_VERSION}", server=f"dbtd {NEW_VERSION}",
                          protocol=1, store_format=NEW_FORMAT), report


# ---- no room for the backup ----

def test_no_room_for_the_backup(filled, workdir):
    """On a file system without room for the backup, dbtd says how much it
    needs and exits 1 before it writes anything: the 0.1.0 store is as it
    was, with no backup (a real tmpfs just larger than the store)."""
    data = os.path.join(filled.state, "data.mdb")
    size = os.path.getsize(data)
    mnt = os.path.join(workdir, "small")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + (2 << 20)}", "tmpfs", mnt],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    try:
        state = os.path.join(mnt, "state")
        os.makedirs(state)
        shutil.copy2(data, state)
        before = sha256(os.path.join(state, "data.mdb"))
        rc, err = run_to_exit([DBTD, "--socket", os.path.join(workdir, "s.sock"),
                               "--state-dir", state, "--plugin-dir", PLUGIN_DIR],
                              BASE_ENV, "dbtd without room for the backup")
        assert rc == 1, f"exit {rc}\n{err}"
        assert re.search(r"backup of the store before migrating needs \d+ MiB free in "
                         + re.escape(state) + r", and \d+ MiB are free", err), err
        assert sha256(os.path.join(state, "data.mdb")) == before, "the store was changed"
        assert not [n for n in os.listdir(state) if n.startswith("backup-format-")], \
            os.listdir(state)
        assert not os.path.exists(os.path.join(workdir, "s.sock")), "dbtd listened"
    finally:
        subprocess.run(["umount", mnt], check=False)
