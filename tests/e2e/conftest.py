"""Fixtures for dbtd's end-to-end tests: a real dbtd and dbtctl from the
build tree, real Git repositories made here, real dbt on real DuckDB files."""
import glob
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

SRC = os.environ.get("DBTD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DBTD_BUILDDIR") or SRC
VENV = os.environ.get("DBTD_VENV") or os.path.join(SRC, ".venv-dbt")
DBT = os.path.join(VENV, "bin", "dbt")
VENV_PY = os.path.join(VENV, "bin", "python")
DBTD = os.path.join(BUILD, "daemon", "dbtd")
DBTCTL = os.path.join(BUILD, "client", "dbtctl")
PLUGIN_DIR = os.path.join(BUILD, "plugins", ".libs")
EXAMPLE = os.path.join(SRC, "examples", "jaffle_shop")
FIXTURES = os.path.join(SRC, "tests", "fixtures")

# dbt must never phone home from a test.
BASE_ENV = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1",
                LC_ALL="C.UTF-8")
BASE_ENV.pop("DBTD_SOCKET", None)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: waits for wall-clock time (a cron minute); "
                            "skipped when DBTD_E2E_SKIP_SLOW=1")
    # pytest-xdist's, named here too for a run without it (DBTD_E2E_JOBS=1)
    config.addinivalue_line("markers", "xdist_group(name): tests one worker runs")


def pytest_collection_modifyitems(config, items):
    # The longest work first, so that neither parallel worker (run-e2e.sh,
    # DBTD_E2E_JOBS) is left alone with it at the end: the slow tests (they
    # wait for a cron minute), then test_upgrade.py (one worker runs the
    # whole module); the rest as collected.  A stable sort, the same in
    # every worker.
    def rank(item):
        if "slow" in item.keywords and os.environ.get("DBTD_E2E_SKIP_SLOW") != "1":
            return 0
        return 1 if item.module.__name__ == "test_upgrade" else 2
    items.sort(key=rank)
    if os.environ.get("DBTD_E2E_SKIP_SLOW") == "1":
        skip = pytest.mark.skip(reason="slow test: runs in the normal build only")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


def run(cmd, check=True, **kw):
    """Run a command, capturing text output."""
    kw.setdefault("env", BASE_ENV)
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


class Dbtd:
    """One dbtd process on a private socket and state directory."""

    def __init__(self, root, extra_args=(), env=None, binary=DBTD, plugin_dir=PLUGIN_DIR):
        """binary: the dbtd to run; plugin_dir: its --plugin-dir, or None for
        the default it was built with."""
        self.root = root
        self.binary = binary
        self.plugin_dir = plugin_dir
        self.sock = os.path.join(root, "dbtd.sock")
        self.state = os.path.join(root, "state")
        self.logpath = os.path.join(root, "dbtd.log")
        self.extra_args = list(extra_args)
        self.env = env or BASE_ENV
        self.proc = None

    def start(self):
        self.logfile = open(self.logpath, "ab")
        plugins = ["--plugin-dir", self.plugin_dir] if self.plugin_dir else []
        self.proc = subprocess.Popen(
            [self.binary, "--socket", self.sock, "--state-dir", self.state]
            + plugins + self.extra_args,
            stdout=self.logfile, stderr=self.logfile, env=self.env)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dbtd exited at start:\n" + self.log())
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("dbtd did not listen within 15 s:\n" + self.log())

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logfile.close()
        return rc

    def ctl(self, *args, env=None, input=None, timeout=600):
        e = dict(env or BASE_ENV)
        return subprocess.run([DBTCTL, "--socket", self.sock] + [str(a) for a in args],
                              capture_output=True, text=True, env=e, input=input,
                              timeout=timeout)

    def ok(self, *args, **kw):
        p = self.ctl(*args, **kw)
        assert p.returncode == 0, f"dbtctl {' '.join(map(str, args))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def json(self, *args, **kw):
        return json.loads(self.ok("--json", *args, **kw).stdout)


def wait_for(what, predicate, timeout=60, every=0.1):
    """Poll predicate until it returns something true; that value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def workdir():
    """A short private directory (Unix socket paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="dbtd-e2e-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dbtd(workdir):
    d = Dbtd(workdir).start()
    yield d
    rc = d.stop()
    assert rc == 0, f"dbtd exited with {rc}:\n{d.log()}"


def mount_tmpfs(workdir, size):
    """A tmpfs of `size` (e.g. "24m") at workdir/fs, as a small state disk;
    yields its path and unmounts it after.  Skips when mounting fails."""
    mnt = os.path.join(workdir, "fs")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + p.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", mnt], check=False)


def fill(path):
    """Write zeros to path until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # what did not fit, in smaller pieces
            block = b"\0" * size
            try:
                while os.write(fd, block) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def git(repo, *args):
    return run(["git", "-C", repo] + list(args)).stdout.strip()


def make_repo(root, name="shop"):
    """A Git repository holding the example dbt project on branch main."""
    repo = os.path.join(root, name)
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(
        "target", "logs", "dbt_packages", ".user.yml"))
    run(["git", "init", "-q", "-b", "main", repo])
    git(repo, "config", "user.email", "tests@dbtd.invalid")
    git(repo, "config", "user.name", "dbtd tests")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example project")
    return repo


@pytest.fixture
def repo(workdir):
    return make_repo(workdir)


def duckdb_count(path, table):
    """Rows in a table of a DuckDB file, read with the venv's duckdb."""
    code = ("import duckdb,sys;c=duckdb.connect(sys.argv[1],read_only=True);"
            "print(c.execute('select count(*) from ' + sys.argv[2]).fetchone()[0])")
    return int(run([VENV_PY, "-c", code, path, table]).stdout)


def setup_job(d, repo, workdir, branch="main", job="nightly", commands=("dbt build",),
              dbt=DBT, name="shop"):
    """Add project, DuckDB environment and job; returns the DuckDB path."""
    db = os.path.join(workdir, "warehouse.duckdb")
    d.ok("project", "add", name, "--repo", repo)
    args = ["env", "add", "prod", "--project", name, "--branch", branch,
            "--destination", "duckdb", "--path", db, "--threads", "2"]
    if dbt:
        args += ["--dbt", dbt]
    d.ok(*args)
    cmd = ["job", "add", job, "--env", "prod"]
    for c in commands:
        cmd += ["--command", c]
    d.ok(*cmd)
    return db


# ---- PostgreSQL (test_postgres.py, test_upgrade.py) ----

def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run tests/install-deps.sh")
    return found[-1]


def free_port():
    """A TCP port on 127.0.0.1 that is free now, drawn at random from below
    the kernel's ephemeral range: a port bind(0) handed out can be taken as
    the source port of any outgoing connection (another test worker's dbt
    talking to its own server) before the server binds it.  Postgres.start
    still retries, as another program may bind the port first."""
    lo = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(100 if lo > 10001 else 0):
        port = random.randrange(10000, lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A private PostgreSQL cluster: TCP on 127.0.0.1 with passwords, a Unix
    socket in its own directory for the test's admin connection.  start()
    makes the login role dbt with password and its database analytics."""

    def __init__(self, password):
        self.password = password
        self.root = tempfile.mkdtemp(prefix="dbtd-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o755)

    def cmd(self, *args, check=True):
        return run(self.as_user + list(args), check=check)

    def start(self):
        self.cmd(pg_bin("initdb"), "-D", self.data, "-U", "admin", "--auth-local=trust",
                 "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
        log = os.path.join(self.root, "pg.log")
        for attempt in range(1, 11):
            mark = os.path.getsize(log) if os.path.exists(log) else 0
            p = self.cmd(pg_bin("pg_ctl"), "-D", self.data, "-l", log, "-w", "-o",
                         f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                         "start", check=False)
            if p.returncode == 0:
                break
            with open(log, errors="replace") as f:
                f.seek(mark)
                said = f.read()
            # the port was taken between free_port() and the server's bind
            # (tests run in parallel; other programs run too): another one
            if "Address already in use" not in said or attempt == 10:
                raise AssertionError(f"PostgreSQL did not start on port {self.port}:\n"
                                     f"{p.stdout}{p.stderr}{said}")
            self.port = free_port()
        self.sql(f"CREATE ROLE dbt LOGIN PASSWORD '{self.password}'")
        self.sql("CREATE DATABASE analytics OWNER dbt")
        return self

    def sql(self, query, db="postgres"):
        return self.cmd(pg_bin("psql"), "-h", self.root, "-p", str(self.port), "-U", "admin",
                        "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", query).stdout.strip()

    def stop(self):
        self.cmd(pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
