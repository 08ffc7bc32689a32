"""dbtd under systemd: socket activation through the real
systemd-socket-activate, readiness on a NOTIFY_SOCKET, refusals of sockets
it cannot serve, and the installed units checked by systemd-analyze."""
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import BASE_ENV, BUILD, DBT, DBTD, PLUGIN_DIR, Dbtd, git, make_repo, setup_job, wait_for

SSA = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")
STEPS = ["Clone Git repository", "Create profile for Destination",
         "Invoke dbt deps", "Invoke dbt build"]
# systemd-socket-activate passes on only PATH, HOME, TERM and USER: these go with --setenv
FORWARD = ("DBT_SEND_ANONYMOUS_USAGE_STATS", "DO_NOT_TRACK", "LC_ALL", "TZ",
           "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
HANDED_OVER = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET")


def built_with_libsystemd():
    with open(os.path.join(BUILD, "config.h")) as f:
        return re.search(r"^#define HAVE_LIBSYSTEMD 1$", f.read(), re.M) is not None


LIBSYSTEMD = built_with_libsystemd()
needs_libsystemd = pytest.mark.skipif(not LIBSYSTEMD, reason="dbtd built without libsystemd")
needs_ssa = pytest.mark.skipif(SSA is None, reason="no systemd-socket-activate "
                               "(Debian package systemd; tests/install-deps.sh installs it)")


def exe(pid):
    return os.path.realpath(f"/proc/{pid}/exe")


class Notify:
    """A NOTIFY_SOCKET of our own: what systemd's end of sd_notify looks like."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def recv(self, timeout=30):
        """One notification: ({KEY: value}, sender pid from the kernel's credentials)."""
        self.sock.settimeout(timeout)
        msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", data[:12])[0]
        fields = dict(line.split("=", 1) for line in msg.decode().splitlines() if "=" in line)
        return fields, pid

    def pending(self):
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
            return True
        except BlockingIOError:
            return False

    def close(self):
        self.sock.close()


class Activated(Dbtd):
    """dbtd behind systemd-socket-activate: exec'd on the first connection
    with the listening socket as fd 3 (LISTEN_FDS=1), as systemd does."""

    def __init__(self, root, extra_args=(), setenv=()):
        super().__init__(root, extra_args)
        self.setenv = list(setenv)

    def start(self):
        self.logfile = open(self.logpath, "ab")
        start = self.logfile.tell()
        env = ["--setenv=%s=%s" % (k, BASE_ENV[k]) for k in FORWARD if k in BASE_ENV]
        env += ["--setenv=" + e for e in self.setenv]
        self.proc = subprocess.Popen(
            [SSA, "-l", self.sock] + env +
            [DBTD, "--state-dir", self.state, "--plugin-dir", PLUGIN_DIR] + self.extra_args,
            stdout=self.logfile, stderr=self.logfile, env=BASE_ENV)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("systemd-socket-activate exited:\n" + self.log())
            return "Listening on " + self.sock in self.log()[start:]
        wait_for("systemd-socket-activate to listen", listening, timeout=15)
        return self


def normalized(run):
    """A run record without what differs between any two runs (ids, times)."""
    r = {k: v for k, v in run.items()
         if k not in ("id", "created_at", "queued_at", "started_at", "finished_at",
                      "duration_ms", "queued_ms")}
    r["steps"] = [{k: v for k, v in s.items()
                   if k not in ("started_at", "finished_at", "duration_ms")} for s in run["steps"]]
    return r


def dbt_that_records_its_environment(workdir):
    """The real dbt, behind a wrapper that writes down the environment dbt gets."""
    path = os.path.join(workdir, "dbt-recording")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nenv > "%s/dbt-env.$$"\nexec "%s" "$@"\n' % (workdir, DBT))
    os.chmod(path, 0o755)
    return path


@needs_libsystemd
@needs_ssa
def test_socket_activation_serves_runs_like_a_direct_start(workdir):
    notify = Notify(os.path.join(workdir, "notify.sock"))
    ignored = os.path.join(workdir, "ignored.sock")
    a = Activated(workdir, extra_args=["--socket", ignored],
                  setenv=["NOTIFY_SOCKET=" + notify.path])
    try:
        a.start()
        # nothing started yet: systemd-socket-activate holds the socket alone
        assert exe(a.proc.pid) == os.path.realpath(SSA)
        assert not os.path.exists(a.state)
        assert not notify.pending()

        # the first client starts dbtd, which serves that very connection
        p = a.ok("project", "list")
        assert "No projects" in p.stdout
        assert exe(a.proc.pid) == os.path.realpath(DBTD)
        log = a.log()
        assert f"serving the inherited socket {a.sock} (fd 3, systemd socket activation)" in log
        assert f"--socket {ignored} is ignored" in log
        assert not os.path.exists(ignored)
        ready, pid = notify.recv()
        assert ready["READY"] == "1" and pid == a.proc.pid
        assert ready["STATUS"].startswith("Serving " + a.sock)

        repo = make_repo(workdir)
        setup_job(a, repo, workdir, dbt=dbt_that_records_its_environment(workdir))
        p = a.ctl("--json", "job", "run", "nightly", "--wait")
        assert p.returncode == 0, p.stdout + p.stderr + a.log()
        first = json.loads(p.stdout)
        assert first["status"] == "completed" and first["trigger"] == "manual"
        assert [s["name"] for s in first["steps"]] == STEPS
        assert [s["status"] for s in first["steps"]] == ["completed"] * 4
        assert first["commit_sha"] == git(repo, "rev-parse", "HEAD")

        # what systemd handed to dbtd stays with dbtd: dbt (deps, build) never sees it
        envs = [f for f in os.listdir(workdir) if f.startswith("dbt-env.")]
        assert len(envs) == 2
        for name in envs:
            with open(os.path.join(workdir, name)) as f:
                keys = {line.split("=", 1)[0] for line in f}
            assert not keys & set(HANDED_OVER), name

        # SIGTERM: STOPPING=1, exit 0; the socket file is systemd's, so it stays
        rc = a.stop()
        assert rc == 0, a.log()
        stopping, pid = notify.recv()
        assert stopping["STOPPING"] == "1" and pid is not None
        assert a.log().rstrip().endswith("dbtd[info]: stopped")
        assert stat.S_ISSOCK(os.stat(a.sock).st_mode)

        # the same job under a dbtd started directly, on the same state: same record
        d = Dbtd(workdir).start()
        p = d.ctl("--json", "job", "run", "nightly", "--wait")
        second = json.loads(p.stdout)
        assert d.stop() == 0, d.log()
        assert second["id"] == first["id"] + 1
        assert normalized(second) == normalized(first)
        assert not os.path.exists(d.sock), "a socket dbtd bound itself is removed at stop"

        # and activated again, the history is all there
        a.start()
        assert [r["id"] for r in a.json("run", "list")] == [second["id"], first["id"]]
        assert a.json("run", "view", first["id"]) == first
        assert a.stop() == 0, a.log()
    finally:
        a.stop(signal.SIGKILL)
        notify.close()


@needs_libsystemd
def test_readiness_comes_once_dbtd_serves(workdir):
    notify = Notify(os.path.join(workdir, "notify.sock"))
    d = Dbtd(workdir, env=dict(BASE_ENV, NOTIFY_SOCKET=notify.path))
    try:
        d.logfile = open(d.logpath, "ab")
        d.proc = subprocess.Popen([DBTD, "--socket", d.sock, "--state-dir", d.state,
                                   "--plugin-dir", PLUGIN_DIR, "--max-concurrent-runs", "3"],
                                  stdout=d.logfile, stderr=d.logfile, env=d.env)
        ready, pid = notify.recv()
        assert ready["READY"] == "1" and pid == d.proc.pid
        assert re.fullmatch(f"Serving {re.escape(d.sock)}; 3 run slots; [0-9]+ step plugins?",
                            ready["STATUS"]), ready
        # ready means served: the state is open, plugins loaded, the socket answers
        assert "ready" in d.log()
        assert "No projects" in d.ok("project", "list").stdout
        d.proc.send_signal(signal.SIGTERM)
        stopping, pid = notify.recv()
        assert stopping["STOPPING"] == "1" and pid == d.proc.pid
        assert d.proc.wait(timeout=30) == 0, d.log()
        assert not notify.pending(), "nothing after STOPPING=1"
    finally:
        d.stop(signal.SIGKILL)
        notify.close()


def start_with_inherited(workdir, fds, listen_fds=None):
    """dbtd with fds as 3, 4, ... and LISTEN_PID set to its own pid, as systemd does
    (bash, not sh: dash cannot redirect from descriptors above 9)."""
    log = os.path.join(workdir, "dbtd.log")
    state = os.path.join(workdir, "state")
    dups = " ".join("%d<&%d" % (3 + i, fd) for i, fd in enumerate(fds))
    with open(log, "wb") as out:
        p = subprocess.run(
            ["bash", "-c", 'LISTEN_PID=$$ LISTEN_FDS=%d exec "$@" %s'
             % (listen_fds or len(fds), dups), "bash", DBTD, "--state-dir", state,
             "--socket", os.path.join(workdir, "dbtd.sock"), "--plugin-dir", PLUGIN_DIR],
            pass_fds=fds, stdout=out, stderr=out, env=BASE_ENV, timeout=60)
    with open(log, errors="replace") as f:
        return p.returncode, f.read(), state


def unix_socket(workdir, kind=socket.SOCK_STREAM, listen=True, name="passed.sock"):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(os.path.join(workdir, name))
    if listen:
        s.listen()
    return s


WRONG = {
    "regular file": "fd 3 (LISTEN_FDS=1) is a regular file, not a socket",
    "TCP socket": "fd 3 (LISTEN_FDS=1) is an AF_INET (IPv4) socket, not a Unix (AF_UNIX) socket",
    "datagram socket": "fd 3 (LISTEN_FDS=1) is a Unix datagram socket, not a stream socket",
    "connected socket": "fd 3 (LISTEN_FDS=1) is a Unix stream socket that is not listening",
    "two sockets": "systemd passed 2 sockets (LISTEN_FDS=2); dbtd serves exactly one",
}


@needs_libsystemd
@pytest.mark.parametrize("what", list(WRONG))
def test_a_socket_dbtd_cannot_serve_is_refused(workdir, what):
    keep = []
    if what == "regular file":
        keep.append(open(os.path.join(workdir, "not-a-socket"), "w+"))
    elif what == "TCP socket":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen()
        keep.append(s)
    elif what == "datagram socket":
        keep.append(unix_socket(workdir, socket.SOCK_DGRAM, listen=False))
    elif what == "connected socket":
        keep += socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        keep.pop()
    else:
        keep += [unix_socket(workdir, name="a.sock"), unix_socket(workdir, name="b.sock")]
    try:
        rc, log, state = start_with_inherited(workdir, [k.fileno() for k in keep])
    finally:
        for k in keep:
            k.close()
    assert rc == 1, log
    assert "dbtd[error]: socket activation: " + WRONG[what] in log
    assert "Sanitizer" not in log and "runtime error" not in log
    # refused before it touched anything
    assert not os.path.exists(state)
    assert not os.path.exists(os.path.join(workdir, "dbtd.sock"))


@needs_libsystemd
def test_listen_fds_naming_a_missing_descriptor_is_refused(workdir):
    rc, log, state = start_with_inherited(workdir, [], listen_fds=1)
    assert rc == 1, log
    assert "(LISTEN_PID=" in log and "a descriptor it names (from fd 3 on) is not open" in log
    assert not os.path.exists(state)


def test_listen_fds_of_another_process_is_ignored(workdir):
    """LISTEN_* left over from a parent: not ours, so dbtd binds --socket."""
    d = Dbtd(workdir, env=dict(BASE_ENV, LISTEN_PID="1", LISTEN_FDS="1")).start()
    try:
        assert "No projects" in d.ok("project", "list").stdout
        assert "LISTEN_FDS=1 is not for this process (LISTEN_PID=1" in d.log()
        assert f"listening on {d.sock}" in d.log()
    finally:
        assert d.stop() == 0, d.log()


@pytest.mark.skipif(LIBSYSTEMD, reason="dbtd built with libsystemd")
@needs_ssa
def test_without_libsystemd_activation_is_refused(workdir):
    a = Activated(workdir).start()
    try:
        assert a.ctl("project", "list").returncode == 3
        assert a.proc.wait(timeout=30) == 1
        assert "this dbtd was built without libsystemd and cannot serve it" in a.log()
    finally:
        a.stop(signal.SIGKILL)


def verify_works(tmp):
    """Whether systemd-analyze verify can check units here (no running systemd needed)."""
    unit = os.path.join(tmp, "dbtd-probe.service")
    with open(unit, "w") as f:
        f.write("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    p = subprocess.run([ANALYZE, "verify", "--man=no", unit], capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


@pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze (Debian package systemd)")
def test_installed_units_verify():
    units = os.path.join(BUILD, "systemd")
    with tempfile.TemporaryDirectory(prefix="dbtd-units-") as tmp:
        ok, why = verify_works(tmp)
        if not ok:
            pytest.skip("systemd-analyze verify does not work in this environment: " + why)
        text = {}
        for name in ("dbtd.socket", "dbtd.service"):
            with open(os.path.join(units, name)) as f:
                text[name] = f.read()
            assert "@" not in re.sub(r"(?m)^#.*$", "", text[name]), f"{name}: not substituted"
        svc = text["dbtd.service"]
        # the unit runs the installed dbtd; verify wants an executable, so use this build's
        m = re.search(r"^ExecStart=(\S+)/dbtd ", svc, re.M)
        assert m, "ExecStart= runs dbtd"
        for name, t in text.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(t.replace(m.group(1) + "/dbtd ", DBTD + " "))
        p = subprocess.run([ANALYZE, "verify", "--man=no",
                            os.path.join(tmp, "dbtd.socket"), os.path.join(tmp, "dbtd.service")],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert "dbtd." not in p.stdout + p.stderr, "warnings about the units:\n" + p.stderr

    sock = text["dbtd.socket"]
    for line in ("ListenStream=/run/dbtd/dbtd.sock", "SocketMode=0660", "SocketGroup=dbtd"):
        assert re.search("^" + line + "$", sock, re.M), line
    for line in ("Type=notify", "KillMode=mixed", "StateDirectory=dbtd",
                 "StateDirectoryMode=0700", "Restart=on-failure", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        assert re.search("^" + line + "$", svc, re.M), line
    assert "--state-dir ${STATE_DIRECTORY}" in svc
    stop = re.search(r"^TimeoutStopSec=(\d+)s$", svc, re.M)
    assert stop and int(stop.group(1)) >= 15, "room for SIGINT, SIGTERM 4 s, SIGKILL 3 s"
    assert not re.search(r"^MemoryDenyWriteExecute=", svc, re.M)
