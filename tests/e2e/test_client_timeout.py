"""dbtctl gives up on a dbtd that does not answer, but not on a quiet stream.

A fake dbtd on a Unix socket answers Hello (or not), then answers some
requests with the frames a test gives it and leaves the others unanswered,
as dbtd does when it drops a reply it could not encode.
"""
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BASE_ENV, DBTCTL

TIMEOUT_EXIT = 5

# Request body fields (proto/dbtd.proto).
REQ_HELLO, REQ_RUN_JOB, REQ_VIEW_RUN, REQ_WATCH_RUN, REQ_READ_LOGS = 1, 8, 10, 11, 14


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


HELLO_REPLY = frame(f_bytes(2, f_varint(1, 1) + f_bytes(2, "dbtd fake")))
# Run 1 of job nightly, Running, its step 1 "Invoke dbt build" Running.
STEP = f_varint(1, 1) + f_bytes(2, "Invoke dbt build") + f_bytes(3, "dbt") + f_varint(4, 2)
RUN = f_varint(1, 1) + f_bytes(3, "nightly") + f_varint(7, 2) + f_bytes(18, STEP)
RUN_REPLY = frame(f_bytes(9, RUN))
LINE = b"1 of 3 START sql view model main.stg_orders"
LOG_REPLY = frame(f_bytes(12, f_varint(1, 1) + f_bytes(
    2, struct.pack(">QBI", int(time.time() * 1000), 1, len(LINE)) + LINE)))


class FakeDbtd:
    """Accepts connections on sock; answers Hello when hello is set, and each
    request whose body field is in replies with those bytes (or calls that
    function with the connection); then says no more."""

    def __init__(self, sock, hello=True, replies=None):
        self.sock = sock
        self.hello = hello
        self.replies = replies or {}
        self.requests = []
        self.conns = []
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(sock)
        self.lsock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read(self, c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, c):
        try:
            while True:
                head = self._read(c, 4)
                if head is None:
                    return
                payload = self._read(c, struct.unpack(">I", head)[0])
                if payload is None:
                    return
                field = payload[0] >> 3
                self.requests.append(field)
                if field == REQ_HELLO:
                    if self.hello:
                        c.sendall(HELLO_REPLY)
                elif callable(self.replies.get(field)):
                    self.replies[field](c)
                elif field in self.replies:
                    c.sendall(self.replies[field])
        except OSError:
            return

    def close(self):
        self.lsock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def fake(workdir):
    made = []

    def make(**kw):
        f = FakeDbtd(os.path.join(workdir, "fake.sock"), **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def start(f, *args, env=None):
    return subprocess.Popen([DBTCTL, "--socket", f.sock] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or BASE_ENV)


def finish(p, limit=15):
    """Wait for p (at most limit s); its exit status, output and the seconds it took."""
    t0 = time.time()
    try:
        out, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"dbtctl still waiting after {limit} s")
    return p.returncode, out, err, time.time() - t0


def still_running_after(p, secs):
    """True when p is still running secs seconds from now; it is killed then."""
    time.sleep(secs)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    out, err = p.communicate()
    return alive, out, err


def test_unanswered_request_times_out(fake):
    f = fake()
    rc, _, err, took = finish(start(f, "--timeout", "2", "run", "view", "1"))
    assert rc == TIMEOUT_EXIT, err
    assert 1.8 < took < 4.5
    assert f"no reply from dbtd at {f.sock} within 2 s" in err
    assert 'waiting for the reply to "run view 1"' in err
    assert "raise --timeout" in err
    assert f.requests == [REQ_HELLO, REQ_VIEW_RUN]


def test_timeout_from_the_environment(fake):
    f = fake()
    env = dict(BASE_ENV, DBTCTL_TIMEOUT="1")
    rc, _, err, took = finish(start(f, "run", "view", "#1", env=env))
    assert rc == TIMEOUT_EXIT, err
    assert took < 3.5
    assert "within 1 s" in err and '"run view #1"' in err
    # --timeout wins over the environment
    rc, _, err, took = finish(start(f, "--timeout", "2", "run", "view", "1", env=env))
    assert rc == TIMEOUT_EXIT and took > 1.8, err


def test_unanswered_hello_times_out(fake):
    f = fake(hello=False)
    rc, _, err, took = finish(start(f, "--timeout", "2", "job", "list"))
    assert rc == TIMEOUT_EXIT, err
    assert 1.8 < took < 4.5
    assert f"no reply from dbtd at {f.sock} within 2 s" in err
    assert 'waiting for the answer to Hello, before "job list"' in err
    assert f.requests == [REQ_HELLO]


def test_timeout_zero_waits(fake):
    f = fake()
    alive, _, err = still_running_after(start(f, "--timeout", "0", "run", "view", "1"), 3)
    assert alive, err


def test_a_frame_sent_slowly_counts_toward_one_deadline(fake):
    def trickle(c):
        """The reply a byte every half second: never whole within 2 s."""
        for b in RUN_REPLY:
            time.sleep(0.5)
            c.sendall(bytes([b]))
    f = fake(replies={REQ_VIEW_RUN: trickle})
    rc, _, err, took = finish(start(f, "--timeout", "2", "run", "view", "1"))
    assert rc == TIMEOUT_EXIT, err
    assert took < 4.5
    assert 'waiting for the reply to "run view 1"' in err


def test_stream_stalled_between_frames_times_out(fake):
    f = fake(replies={REQ_VIEW_RUN: RUN_REPLY, REQ_READ_LOGS: LOG_REPLY})
    rc, out, err, took = finish(start(f, "--timeout", "2", "run", "logs", "1"))
    assert rc == TIMEOUT_EXIT, err
    assert took < 4.5
    assert LINE.decode() in out
    assert 'waiting for more of the reply to "run logs 1"' in err


@pytest.mark.parametrize("args,replies", [
    (("run", "logs", "1", "--follow"), {REQ_VIEW_RUN: RUN_REPLY, REQ_READ_LOGS: LOG_REPLY}),
    (("run", "logs", "1", "--follow"), {REQ_VIEW_RUN: RUN_REPLY}),  # a queued run: no line yet
    (("run", "watch", "1"), {REQ_WATCH_RUN: RUN_REPLY}),
    (("job", "run", "nightly", "--wait"), {REQ_RUN_JOB: RUN_REPLY}),
], ids=["logs-follow", "logs-follow-nothing-yet", "run-watch", "job-run-wait"])
def test_quiet_stream_is_not_cut(fake, args, replies):
    f = fake(replies=replies)
    alive, out, err = still_running_after(start(f, "--timeout", "1", *args), 3)
    assert alive, err
    assert "no reply" not in err
    if REQ_READ_LOGS in replies:
        assert LINE.decode() in out


def test_bad_timeout_values(fake):
    f = fake()
    for v in ("-1", "abc", "1.5", ""):
        rc, _, err, _ = finish(start(f, "--timeout", v, "run", "view", "1"))
        assert rc == 2, (v, err)
        assert "--timeout" in err
    rc, _, err, _ = finish(start(f, "run", "view", "1", env=dict(BASE_ENV, DBTCTL_TIMEOUT="soon")))
    assert rc == 2 and "DBTCTL_TIMEOUT" in err, err
    assert f.requests == []
