"""What clients may cost dbtd (issue 13, bounded memory): idle connections
that each sent a 16 MiB request, a frame trickled a byte at a time, more
connections than --max-connections, partial requests over
--max-client-memory, no Hello, an idle client.  Raw socket clients against
a real dbtd, while dbtctl keeps being served."""
import select
import socket
import struct
import time

import pytest

from conftest import Dbtd
from test_core import FRAME_MAX, Conn, pb  # noqa: F401 (pb is a fixture)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def sanitized(pid):
    """Whether dbtd runs under ASan, whose quarantine keeps freed memory
    resident: its RSS says nothing about dbtd's own."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def served(d):
    """A normal dbtctl call works."""
    p = d.ctl("project", "list")
    assert p.returncode == 0, p.stderr


def error_then_eof(pb, s, timeout=15):
    """The Error frame dbtd sends before it closes s, and that it closes it."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    assert len(data) >= 4, "dbtd closed without an Error frame"
    (n,) = struct.unpack(">I", data[:4])
    assert len(data) == 4 + n, "more than one frame before the close: %r" % data
    r = pb.Response.FromString(data[4:])
    assert r.WhichOneof("body") == "error", r
    return r.error


def big_request(pb, size):
    """A request of `size` bytes within every limit of a request: a webhook
    whose payload (bytes, bounded by the frame alone) fills it.  dbtd
    decodes it and answers an error (the payload is not JSON)."""
    req = pb.Request(webhook=pb.Webhook(forge="github", event="push", payload=b"x" * size))
    extra = len(req.SerializeToString()) - size
    req.webhook.payload = b"x" * (size - extra)
    assert len(req.SerializeToString()) == size
    return req


@pytest.fixture
def limited(workdir):
    """limited(*args): a dbtd started with these limits, stopped at the end."""
    started = []

    def start(*args):
        started.append(Dbtd(workdir, extra_args=list(args)).start())
        return started[-1]
    yield start
    for d in started:
        assert d.stop() == 0, d.log()


def test_idle_clients_after_16_mib_requests_hold_no_buffers(pb, dbtd):
    """Twenty clients each send a 16 MiB request, get their answer and stay
    connected: dbtd gives the receive buffers back (it kept them, ~360 MB
    RSS, before)."""
    req = big_request(pb, FRAME_MAX)
    start = rss_mb(dbtd.proc.pid)
    conns = []
    for _ in range(20):
        c = Conn(pb, dbtd)
        r = c.call(req)
        assert r.WhichOneof("body") == "error", r
        assert "not valid JSON" in r.error.message, r.error.message
        conns.append(c)
    served(dbtd)
    grown = rss_mb(dbtd.proc.pid) - start
    if not sanitized(dbtd.proc.pid):
        assert grown < 32, "dbtd's RSS grew by %.0f MB for 20 idle clients" % grown
    # they are still connected, and served
    for c in conns[:3]:
        r = c.call(pb.Request(list=pb.OBJECT_PROJECT))
        assert r.WhichOneof("body") == "projects", r
    for c in conns:
        c.close()


def test_trickled_frame_dropped_at_deadline(pb, dbtd):
    """A frame sent one byte a second is dropped 5 s after its first byte
    (before, each byte restarted a 5 s timer: never dropped)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(dbtd.sock)
    payload = pb.Request(list=pb.OBJECT_PROJECT).SerializeToString()
    data = struct.pack(">I", 100) + payload * 50
    t0 = time.time()
    sent = 0
    closed = None
    while time.time() - t0 < 20:
        try:
            s.send(data[sent:sent + 1])
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        if select.select([s], [], [], 1.0)[0]:
            closed = time.time() - t0
            break
    assert closed is not None, "dbtd took a byte a second for 20 s"
    assert 4.5 <= closed <= 8, "dropped after %.1f s" % closed
    err = error_then_eof(pb, s)
    assert err.code == pb.ERROR_PROTOCOL
    assert "within 5 s of its first byte" in err.message, err.message
    assert "stalled" in dbtd.log()
    served(dbtd)


def test_connection_limit_answers_an_error(pb, limited):
    """Over --max-connections a new connection gets an Error saying so and is
    closed; dbtctl says why; once a connection goes, dbtctl is served."""
    small = limited("--max-connections", "4")
    conns = [Conn(pb, small) for _ in range(4)]
    extra = socket.socket(socket.AF_UNIX)
    extra.connect(small.sock)
    err = error_then_eof(pb, extra)
    assert err.code == pb.ERROR_FAILED
    assert "4 connections, its maximum" in err.message, err.message
    assert "--max-connections" in err.message
    p = small.ctl("project", "list")
    assert p.returncode != 0
    assert "--max-connections" in p.stderr, p.stderr
    assert "refused 1 connection" in small.log()
    conns.pop().close()
    time.sleep(0.2)
    served(small)
    for c in conns:  # those already connected were served all along
        r = c.call(pb.Request(list=pb.OBJECT_PROJECT))
        assert r.WhichOneof("body") == "projects", r
        c.close()


def test_budget_drops_the_client_most_behind(pb, limited):
    """Clients that each send most of a 16 MiB request and stop: over the
    48 MiB budget, the one holding the most is dropped with a reason; the
    others stay, dbtctl is served, and RSS stays within the budget."""
    small = limited("--max-client-memory", "48")
    start = rss_mb(small.proc.pid)
    conns = [Conn(pb, small) for _ in range(3)]
    part = struct.pack(">I", FRAME_MAX) + b"\x00" * (FRAME_MAX - 4096)
    for c in conns:
        try:
            c.s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
    time.sleep(0.3)
    dropped = [c for c in conns if select.select([c.s], [], [], 0)[0]]
    assert len(dropped) == 1, "%d of 3 dropped" % len(dropped)
    err = error_then_eof(pb, dropped[0].s)
    assert err.code == pb.ERROR_FAILED
    assert "--max-client-memory" in err.message and "holding the most" in err.message
    assert "dropped, holding the most memory" in small.log()
    served(small)
    grown = rss_mb(small.proc.pid) - start
    if not sanitized(small.proc.pid):
        assert grown < 48 + 16, "RSS grew by %.0f MB over a 48 MiB budget" % grown
    for c in conns:
        c.close()


def test_hello_and_idle_timeouts(pb, limited):
    """No Hello within --hello-timeout: an Error, closed.  Nothing in flight
    for --idle-timeout: an Error, closed; one that keeps asking stays."""
    small = limited("--hello-timeout", "1", "--idle-timeout", "2")
    s = socket.socket(socket.AF_UNIX)
    s.connect(small.sock)
    t0 = time.time()
    err = error_then_eof(pb, s)
    assert 0.8 <= time.time() - t0 <= 4
    assert err.code == pb.ERROR_PROTOCOL and "no Hello within 1 s" in err.message

    idle, busy = Conn(pb, small), Conn(pb, small)
    t0 = time.time()
    while time.time() - t0 < 3:
        r = busy.call(pb.Request(list=pb.OBJECT_PROJECT))
        assert r.WhichOneof("body") == "projects", r
        time.sleep(0.5)
    err = error_then_eof(pb, idle.s)
    assert err.code == pb.ERROR_FAILED and "idle for 2 s" in err.message, err.message
    r = busy.call(pb.Request(list=pb.OBJECT_PROJECT))
    assert r.WhichOneof("body") == "projects", r
    assert "--idle-timeout" in small.log()
    served(small)
    busy.close()
