"""What one request may hold (issue 13, no amplification): a 16 MiB add_job
of 8 million empty steps is refused on its wire bytes, before anything is
allocated per step, quickly and within a few MB of dbtd's memory while
another client is served; and each limit a user can meet through dbtctl
is refused with a sentence naming it, exit status 2, nothing stored."""
import os
import socket
import struct
import threading
import time

import pytest

from test_conn_limits import rss_mb, sanitized
from test_core import FRAME_MAX, Conn, pb  # noqa: F401 (pb is a fixture)


def hwm_mb(pid):
    """dbtd's peak resident memory so far (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM for pid %d" % pid)


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def eight_million_steps():
    """Request{add_job: Job{name, environment, steps: 8,000,000 x JobStep{}}},
    encoded by hand (2 bytes a step): just under the 16 MiB frame limit."""
    job = b"\x12\x03big" + b"\x22\x04prod" + b"\x32\x00" * 8_000_000
    payload = b"\x22" + varint(len(job)) + job + b"\xa0\x06\x07"  # request_id 7
    assert len(payload) <= FRAME_MAX
    return struct.pack(">I", len(payload)) + payload


def test_eight_million_steps_refused_before_unpacking(pb, dbtd):
    """Before: RSS from 6 to 814 MB and the loop held for a second or more.
    Now: the error at once, dbtd's peak RSS within 64 MB of its start, and
    another client answered all the while."""
    frame = eight_million_steps()
    c = Conn(pb, dbtd)
    other = Conn(pb, dbtd)
    start = rss_mb(dbtd.proc.pid)
    sent = []

    def send():
        c.s.sendall(frame)
        sent.append(time.monotonic())
    t = threading.Thread(target=send)
    t.start()
    # the other client, while the big frame arrives and is checked
    rtts = []
    while t.is_alive() or not rtts:
        t0 = time.monotonic()
        r = other.call(pb.Request(list=pb.OBJECT_JOB))
        assert r.WhichOneof("body") == "jobs", r
        rtts.append(time.monotonic() - t0)
    t.join()
    r = c.recv()
    took = time.monotonic() - sent[0]
    assert r.WhichOneof("body") == "error", r
    assert r.error.code == pb.ERROR_BAD_REQUEST
    assert r.error.message == "a job may have at most 100 steps (this request has 8000000)"
    assert r.request_id == 7
    assert took < 2, "answered %.2f s after the frame was sent" % took
    assert max(rtts) < 2, "the other client waited %.2f s" % max(rtts)
    if not sanitized(dbtd.proc.pid):
        grown = hwm_mb(dbtd.proc.pid) - start
        assert grown < 64, "dbtd's peak RSS grew by %.0f MB" % grown
    # the connection goes on, nothing was stored, dbtd says why in its log
    r = c.call(pb.Request(list=pb.OBJECT_JOB))
    assert r.WhichOneof("body") == "jobs" and len(r.jobs.items) == 0
    assert "at most 100 steps" in dbtd.log()
    c.close()
    other.close()


def test_malformed_bytes_refused_saying_where(pb, dbtd):
    """A frame whose bytes are not a Request: ERROR_PROTOCOL naming the
    fault, the connection closed, dbtd serving on."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(dbtd.sock)
    payload = b"\x22\x02\x12\x09"  # add_job{name: 9 bytes announced, none there}
    s.sendall(struct.pack(">I", len(payload)) + payload)
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    r = pb.Response.FromString(data[4:])
    assert r.error.code == pb.ERROR_PROTOCOL
    assert "says 9 bytes; 0 are left" in r.error.message, r.error.message
    dbtd.ok("project", "list")


@pytest.fixture
def shop(dbtd, repo, workdir):
    """A project and a DuckDB environment to add jobs to."""
    dbtd.ok("project", "add", "shop", "--repo", repo)
    dbtd.ok("env", "add", "prod", "--project", "shop", "--branch", "main",
            "--destination", "duckdb", "--path", os.path.join(workdir, "w.duckdb"))
    return dbtd


def refused(d, args, message):
    p = d.ctl(*args)
    assert p.returncode == 2, f"{args[:3]} -> {p.returncode}\n{p.stderr}"
    assert message in p.stderr, p.stderr


def names(d, kind):
    return [o["name"] for o in d.json(kind, "list")]


def commands(n, size=len("dbt build")):
    """n --command options, each a dbt command of size bytes."""
    cmd = "dbt build"
    if size > len(cmd):
        cmd += " --select " + "x" * (size - len(cmd) - len(" --select "))
    return [a for _ in range(n) for a in ("--command", cmd)]


def test_job_limits_through_dbtctl(shop):
    d = shop
    refused(d, ["job", "add", "j", "--env", "prod"] + commands(101),
            "a job may have at most 100 steps (this request has 101)")
    refused(d, ["job", "add", "j", "--env", "prod"] + commands(1, 65537),
            "a step's command (--command) may be at most 65536 bytes (this one has 65537)")
    params = ",".join("k%d=v" % i for i in range(65))
    refused(d, ["job", "add", "j", "--env", "prod", "--command", "dbt build",
                "--step", "notify:" + params],
            "a step may have at most 64 parameters (this request has 65)")
    refused(d, ["job", "add", "j", "--env", "prod", "--command", "dbt build",
                "--step", "notify:k=" + "v" * 65537],
            "a step parameter's value may be at most 65536 bytes (this one has 65537)")
    refused(d, ["job", "add", "j" * 129, "--env", "prod", "--command", "dbt build"],
            "a job's name may be at most 128 bytes (this one has 129)")
    refused(d, ["job", "add", "j", "--env", "prod", "--command", "dbt build",
                "--schedule", "0 " * 128 + "0"],
            "a job's --schedule may be at most 256 bytes (this one has 257)")
    assert names(d, "job") == []
    # at the limits: accepted
    d.ok("job", "add", "hundred", "--env", "prod", *commands(100))
    d.ok("job", "add", "long", "--env", "prod", *commands(1, 65536))
    job = d.json("job", "view", "hundred")
    assert len(job["steps"]) == 100
    assert names(d, "job") == ["hundred", "long"]


def test_environment_limits_through_dbtctl(dbtd, repo, workdir):
    d = dbtd
    d.ok("project", "add", "shop", "--repo", repo)
    base = ["env", "add", "prod", "--project", "shop", "--branch", "main",
            "--destination", "duckdb", "--path", os.path.join(workdir, "w.duckdb")]
    many = [a for i in range(257) for a in ("--env", "V%d=x" % i)]
    refused(d, base + many,
            "an environment may have at most 256 --env variables (this request has 257)")
    refused(d, base + ["--env", "V" * 257 + "=x"],
            "an --env variable's name may be at most 256 bytes (this one has 257)")
    refused(d, base + ["--env", "V=" + "x" * 65537],
            "an --env variable's value may be at most 65536 bytes (this one has 65537)")
    refused(d, ["env", "add", "prod", "--project", "shop", "--branch", "b" * 1025,
                "--destination", "duckdb", "--path", os.path.join(workdir, "w.duckdb")],
            "an environment's branch (--branch) may be at most 1024 bytes (this one has 1025)")
    refused(d, base[:-1] + ["/" + "p" * 4096],
            "a destination's --path may be at most 4096 bytes (this one has 4097)")
    assert names(d, "env") == []
    d.ok(*(base + many[:-2]))  # 256 variables
    assert len(d.json("env", "view", "prod")["env"]) == 256


def test_project_and_event_limits_through_dbtctl(dbtd, repo):
    d = dbtd
    refused(d, ["project", "add", "shop", "--repo", repo + "/" + "x" * 4096],
            "a project's repository (--repo) may be at most 4096 bytes")
    refused(d, ["project", "add", "p" * 129, "--repo", repo],
            "a project's name may be at most 128 bytes (this one has 129)")
    assert names(d, "project") == []
    refused(d, ["event", "pipeline", "p" * 129],
            "a pipeline's name may be at most 128 bytes (this one has 129)")
    refused(d, ["job", "run", "j" * 129], "a job name may be at most 128 bytes")
    assert d.json("run", "list") == []
