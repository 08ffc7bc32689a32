"""The socket path: dbtd only ever removes a stale socket, and only listens in
a directory that nobody but its user (or root) can change."""
import os
import pwd
import socket
import stat
import subprocess

import pytest

from conftest import BASE_ENV, DBTD, Dbtd, PLUGIN_DIR


def refused(workdir, sock, *extra):
    """Start dbtd on sock, expecting it to refuse: its stderr."""
    p = subprocess.run([DBTD, "--socket", sock, "--state-dir", os.path.join(workdir, "state"),
                        "--plugin-dir", PLUGIN_DIR] + list(extra),
                       capture_output=True, text=True, timeout=30, env=BASE_ENV)
    assert p.returncode != 0, p.stderr
    return p.stderr


def serves(d):
    p = d.ctl("project", "list")
    assert p.returncode == 0, p.stderr


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_regular_file_is_left_alone(workdir):
    path = os.path.join(workdir, "notes.txt")
    with open(path, "w") as f:
        f.write("precious\n")
    err = refused(workdir, path)
    assert f"{path} is a regular file, not a socket" in err
    assert "will not remove it" in err
    with open(path) as f:
        assert f.read() == "precious\n"


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_other_things_at_the_socket_path_are_left_alone(workdir, kind):
    path = os.path.join(workdir, "dbtd.sock")
    target = os.path.join(workdir, "target")
    with open(target, "w") as f:
        f.write("kept\n")
    if kind == "directory":
        os.mkdir(path)
    elif kind == "symlink":
        os.symlink(target, path)
    else:
        os.mkfifo(path)
    err = refused(workdir, path)
    assert f"{path} is a {kind}" in err and "will not remove it" in err
    assert os.path.lexists(path)
    with open(target) as f:
        assert f.read() == "kept\n"


def test_stale_socket_is_replaced(workdir):
    d = Dbtd(workdir)
    s = socket.socket(socket.AF_UNIX)
    s.bind(d.sock)  # bound, never listening: connect() is refused
    s.close()
    assert stat.S_ISSOCK(os.lstat(d.sock).st_mode)
    d.start()
    try:
        serves(d)
    finally:
        assert d.stop() == 0


def test_second_daemon_is_refused_and_the_first_serves_on(dbtd, workdir):
    err = refused(os.path.join(workdir, "second"), dbtd.sock)
    assert "another dbtd is already serving" in err
    assert stat.S_ISSOCK(os.lstat(dbtd.sock).st_mode)
    serves(dbtd)


@pytest.mark.parametrize("dmode", [0o777, 0o770, 0o1777, 0o720, 0o702])
def test_writable_directory_is_refused(workdir, dmode):
    sdir = os.path.join(workdir, "run")
    os.mkdir(sdir)
    os.chmod(sdir, dmode)
    sock = os.path.join(sdir, "dbtd.sock")
    err = refused(workdir, sock)
    assert f"socket directory {sdir} is writable by its group or by others" in err
    assert not os.path.lexists(sock)


def test_symlinked_directory_is_refused(workdir):
    real = os.path.join(workdir, "real")
    os.mkdir(real, 0o700)
    link = os.path.join(workdir, "link")
    os.symlink(real, link)
    err = refused(workdir, os.path.join(link, "dbtd.sock"))
    assert f"socket directory {link} is a symlink" in err
    assert os.listdir(real) == []


def test_directory_of_another_user_is_refused(workdir):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    nobody = pwd.getpwnam("nobody").pw_uid
    sdir = os.path.join(workdir, "run")
    os.mkdir(sdir, 0o700)
    os.chown(sdir, nobody, -1)
    err = refused(workdir, os.path.join(sdir, "dbtd.sock"))
    assert f"socket directory {sdir} belongs to uid {nobody}" in err
    assert os.listdir(sdir) == []


def test_missing_directories_are_created_private(workdir):
    d = Dbtd(workdir)
    d.sock = os.path.join(workdir, "run", "deep", "dbtd.sock")
    d.start()
    try:
        assert mode(os.path.join(workdir, "run")) == 0o700
        assert mode(os.path.dirname(d.sock)) == 0o700
        assert mode(d.sock) == 0o600
        serves(d)
    finally:
        assert d.stop() == 0


def test_group_socket_gets_a_directory_the_group_can_enter(workdir):
    """--socket-mode 0660: a new directory is 0710, searchable by the group only."""
    d = Dbtd(workdir, extra_args=["--socket-mode", "0660"])
    d.sock = os.path.join(workdir, "run", "dbtd.sock")
    d.start()
    try:
        assert mode(os.path.dirname(d.sock)) == 0o710
        assert mode(d.sock) == 0o660
        serves(d)
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("dmode", [0o700, 0o750, 0o755])
def test_existing_private_directory_is_used_as_it_is(workdir, dmode):
    """e.g. /run/dbtd from systemd's RuntimeDirectory=, 0755 by default."""
    sdir = os.path.join(workdir, "run")
    os.mkdir(sdir)
    os.chmod(sdir, dmode)
    d = Dbtd(workdir)
    d.sock = os.path.join(sdir, "dbtd.sock")
    d.start()
    try:
        assert mode(sdir) == dmode
        serves(d)
    finally:
        assert d.stop() == 0
