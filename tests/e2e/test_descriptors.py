"""Descriptors: dbtd takes the open-file limit the kernel allows, and when its
table is full all the same, a client is refused at once with the reason and
a run that cannot start says so, naming the limit (issue 13, item 6).

dbtd is started under a low limit by a wrapper that sets it and execs dbtd
(same pid).  The hard limit is lowered too, since dbtd raises the soft one
to it."""
import json
import os
import re
import socket
import struct
import time

from conftest import BUILD, DBTD, Dbtd, setup_job, wait_for


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def pb_bytes(field, data):
    """A length-delimited protobuf field (lengths < 128 here)."""
    return bytes([field << 3 | 2, len(data)]) + data


HELLO = frame(pb_bytes(1, b"\x08\x01" + pb_bytes(2, b"pytest idle")))


def limited(workdir, soft, hard):
    """A dbtd that starts with these open-file limits."""
    path = os.path.join(workdir, f"dbtd-nofile-{soft}-{hard}")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nulimit -S -n {soft} && ulimit -H -n {hard} && "
                f"exec {DBTD} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def nofile(pid):
    """(soft, hard) open-file limits of a process."""
    with open(f"/proc/{pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def exhaust(d, most=300):
    """Clients that said Hello and then idle, until dbtd has no descriptor for
    the next one.  Returns them and what that last one was told (b"" when
    it got no answer within 3 s)."""
    idle = []
    for _ in range(most):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        s.connect(d.sock)
        try:
            s.sendall(HELLO)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before Hello was written: what dbtd said is there to read
        try:
            got = s.recv(65536)
        except socket.timeout:
            got = b""
        if b"dbtd " not in got or b"descriptors" in got:  # not the Hello answer
            s.close()
            return idle, got
        idle.append(s)
    raise AssertionError(f"{most} idle clients and dbtd still accepts more")


def gated_dbt(workdir, gate):
    """A stand-in for dbt whose `build` waits until the file gate exists: the
    run holds its slot (and its descriptors) until the test lets it go."""
    path = os.path.join(workdir, "dbt-gated")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f'if [ "$1" = build ]; then while [ ! -e {gate} ]; do sleep 0.05; done; fi\n'
                "exit 0\n")
    os.chmod(path, 0o755)
    return path


def test_soft_limit_is_raised_to_the_hard_limit_but_not_for_dbt(workdir, repo):
    seen = os.path.join(workdir, "dbt-nofile")
    dbt = os.path.join(workdir, "dbt-limit")
    with open(dbt, "w") as f:
        f.write(f"#!/bin/sh\nulimit -S -n >> {seen}\nexit 0\n")
    os.chmod(dbt, 0o755)
    d = Dbtd(workdir, binary=limited(workdir, 32, 256)).start()
    try:
        assert nofile(d.proc.pid) == (256, 256)
        assert "open-file limit: 256 (raised from 32 to the hard limit)" in d.log()
        setup_job(d, repo, workdir, dbt=dbt)
        d.json("job", "run", "nightly", "--wait")
        # dbt gets the limit dbtd was started with: a program written for
        # the usual limit is not handed descriptors above it
        assert set(open(seen).read().split()) == {"32"}
    finally:
        assert d.stop() == 0


def test_client_is_refused_with_the_reason_and_served_once_descriptors_free(workdir):
    d = Dbtd(workdir, binary=limited(workdir, 64, 64)).start()
    try:
        idle, got = exhaust(d)
        t0 = time.time()
        p = d.ctl("--timeout", "10", "project", "list")
        took = time.time() - t0
        assert p.returncode != 0
        assert ("dbtctl: dbtd has no file descriptors left (limit 64, all in use): "
                "try again later") in p.stderr, p.stderr
        assert "LimitNOFILE=" in p.stderr
        assert took < 5, f"dbtctl waited {took:.1f} s for its answer"
        assert b"no file descriptors left (limit 64" in got
        # the ones it holds are still served
        idle[0].sendall(frame(b"\x28\x01"))  # Request.list = projects
        assert idle[0].recv(65536)
        # refusing does not spin: dbtd is idle while a refused client retries
        cpu0 = cpu_seconds(d.proc.pid)
        for _ in range(20):
            assert d.ctl("project", "list").returncode != 0
            time.sleep(0.05)
        assert cpu_seconds(d.proc.pid) - cpu0 < 0.5
        for s in idle:
            s.close()
        wait_for("dbtctl to be served again",
                 lambda: d.ctl("project", "list").returncode == 0, timeout=10)
        assert "no file descriptors left (limit 64, all in use): refused 1 client" in d.log()
    finally:
        assert d.stop() == 0


def cpu_seconds(pid):
    """User and system CPU time of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_run_that_cannot_start_names_the_descriptor_limit(workdir, repo):
    """With one run slot, a run waits while another holds the slot; the
    table is then filled with idle clients, and the slot freed.  The one
    descriptor the finished run gives back is not enough for the next run's
    socketpair, deterministically."""
    gate = os.path.join(workdir, "go")
    d = Dbtd(workdir, binary=limited(workdir, 64, 64),
             extra_args=["--max-concurrent-runs", "1"]).start()
    idle = []
    try:
        setup_job(d, repo, workdir, dbt=gated_dbt(workdir, gate), job="hold")
        d.ok("job", "add", "victim", "--env", "prod", "--command", "dbt build")
        hold = json.loads(d.ok("--json", "job", "run", "hold").stdout)["id"]
        wait_for("the first run to reach dbt build",
                 lambda: d.json("run", "view", hold)["steps"][3]["status"] == "running")
        victim = json.loads(d.ok("--json", "job", "run", "victim").stdout)["id"]
        assert d.json("run", "view", victim)["status"] == "queued"
        idle, _ = exhaust(d)
        open(gate, "w").close()
        wait_for("the queued run's start to fail",
                 lambda: f'run {victim} of job "victim" failed to start' in d.log(), timeout=60)
        for s in idle:
            s.close()
        idle = []
        run = wait_for("dbtctl to be served again", lambda: (
            lambda p: p.returncode == 0 and json.loads(p.stdout))(
                d.ctl("--json", "run", "view", victim)), timeout=10)
        assert run["status"] == "failed"
        assert run["error"].startswith(
            "dbtd has no file descriptors left (limit 64, all in use), so the run could "
            "not start"), run["error"]
        assert "LimitNOFILE=" in run["error"]
        assert "workspace" not in run["error"]
        # with descriptors free again, the job runs
        again = d.json("run", "rerun", victim, "--wait")
        assert again["status"] == "completed", again
    finally:
        for s in idle:
            s.close()
        if not os.path.exists(gate):
            open(gate, "w").close()
        assert d.stop() == 0


def test_service_unit_sets_the_limit():
    """dbtd.service: a hard limit for dbtd to raise itself to, the usual soft
    one for dbt (test_systemd.py has systemd-analyze verify the unit)."""
    with open(os.path.join(BUILD, "systemd", "dbtd.service")) as f:
        unit = f.read()
    m = re.search(r"^LimitNOFILE=(\d+):(\d+)$", unit, re.M)
    assert m, "dbtd.service sets LimitNOFILE=SOFT:HARD"
    assert int(m.group(1)) <= 1024 and int(m.group(2)) >= 65536
