"""The socket: bad clients are answered or dropped, everyone else is served."""
import os
import socket
import stat
import struct
import time

from conftest import DBTCTL, Dbtd, PLUGIN_DIR, run


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def pb_bytes(field, data):
    """A length-delimited protobuf field (lengths < 128 here)."""
    assert len(data) < 128
    return bytes([field << 3 | 2, len(data)]) + data


def hello(version=1):
    return frame(pb_bytes(1, b"\x08" + bytes([version]) + pb_bytes(2, b"pytest")))


def connect(d):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(d.sock)
    return s


def read_until_closed(s, limit=10):
    """Everything the daemon sends until it closes the connection."""
    data = b""
    deadline = time.time() + limit
    while time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("dbtd kept the connection open: %r" % data)


def still_serving(d):
    p = d.ctl("project", "list")
    assert p.returncode == 0, p.stderr


def test_garbage_is_answered_and_dropped(dbtd):
    s = connect(dbtd)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = read_until_closed(s)
    assert b"16 MiB" in reply
    still_serving(dbtd)


def test_oversized_and_zero_length_frames(dbtd):
    for bad in (struct.pack(">I", 16 * 1024 * 1024 + 1), struct.pack(">I", 0)):
        s = connect(dbtd)
        s.sendall(hello() + bad)
        read_until_closed(s)
        still_serving(dbtd)


def test_undecodable_message(dbtd):
    s = connect(dbtd)
    s.sendall(frame(b"\xff\xff\xff\xff\xff\xff"))
    assert b"does not decode" in read_until_closed(s)
    still_serving(dbtd)


def test_first_request_must_be_hello_with_our_version(dbtd):
    s = connect(dbtd)
    s.sendall(frame(b"\x28\x01"))  # Request.list = OBJECT_PROJECT, no Hello first
    assert b"first request on a connection must be Hello" in read_until_closed(s)
    s = connect(dbtd)
    s.sendall(hello(99))
    assert b"protocol version 99 is not supported" in read_until_closed(s)
    still_serving(dbtd)


def test_half_frame_stall_does_not_block_others(dbtd):
    s = connect(dbtd)
    s.sendall(hello() + struct.pack(">I", 100) + b"0123456789")
    t0 = time.time()
    for _ in range(5):
        still_serving(dbtd)
    assert time.time() - t0 < 3
    # the stalled client is dropped after a few seconds
    read_until_closed(s, limit=15)
    assert "stalled" in dbtd.log()


def test_many_clients_at_once(dbtd):
    socks = [connect(dbtd) for _ in range(50)]
    for s in socks:
        s.sendall(hello())
    still_serving(dbtd)
    for s in socks:
        s.close()
    still_serving(dbtd)


def test_socket_is_private_and_directory_created(workdir):
    d = Dbtd(workdir)
    d.sock = os.path.join(workdir, "run", "deep", "dbtd.sock")
    d.start()
    try:
        assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o600
        still_serving(d)
    finally:
        assert d.stop() == 0
    assert not os.path.exists(d.sock)


def test_second_daemon_on_same_socket_refuses(dbtd):
    import subprocess
    p = subprocess.run([os.path.dirname(DBTCTL) + "/../daemon/dbtd", "--socket", dbtd.sock,
                        "--state-dir", dbtd.state + "2", "--plugin-dir", PLUGIN_DIR],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "another dbtd is already serving" in p.stderr
    still_serving(dbtd)


def test_plugin_load_is_logged_and_refusals_do_not_stop_dbtd(workdir):
    pdir = os.path.join(workdir, "plugins")
    os.mkdir(pdir)
    for name in ("git-clone.so", "dbt-profile.so", "dbt.so"):
        os.symlink(os.path.join(PLUGIN_DIR, name), os.path.join(pdir, name))
    with open(os.path.join(pdir, "notes.so"), "w") as f:
        f.write("not a shared object\n")
    d = Dbtd(workdir)
    d.extra_args = ["--plugin-dir", pdir]
    d.start()
    try:
        log = d.log()
        for t in ("git-clone", "dbt-profile", "dbt"):
            assert f'step type "{t}"' in log
        assert "notes.so refused: cannot load" in log
        still_serving(d)
    finally:
        assert d.stop() == 0


def test_unreachable_daemon_and_usage_exit_codes(dbtd, workdir):
    p = run([DBTCTL, "--socket", os.path.join(workdir, "nobody.sock"), "project", "list"],
            check=False)
    assert p.returncode == 3
    assert "cannot reach dbtd" in p.stderr
    assert dbtd.ctl("frobnicate").returncode == 2
    assert dbtd.ctl("job", "add", "x").returncode == 2
    p = dbtd.ctl("job", "run", "nightly")
    assert p.returncode == 4
    assert 'no job named "nightly"; see dbtctl job list' in p.stderr
    p = dbtd.ctl("run", "view", "999")
    assert p.returncode == 4
