"""Commit or fail: a reply that reports a change is sent only once the
change is stored.  The state directory is a small tmpfs that the test
fills, as a full disk on a server would be."""
import json
import os

import pytest

from conftest import Dbtd, make_repo, fill, mount_tmpfs


@pytest.fixture
def small_fs(workdir):
    """A 6 MiB tmpfs (dbtd's state directory goes there); unmounted after."""
    yield from mount_tmpfs(workdir, "6m")


def project_names(d):
    return sorted(p["name"] for p in d.json("project", "list"))


def test_full_disk_project_add_says_added_only_when_stored(workdir, small_fs):
    """On a full disk `project add` used to answer "added (id N)" for a
    project that was never stored.  Now every project reported added is
    there after a restart, and the add that could not be stored says why."""
    d = Dbtd(workdir)
    d.state = os.path.join(small_fs, "state")
    d.start()
    repo = make_repo(workdir)
    d.ok("project", "add", "first", "--repo", repo)
    filler = os.path.join(small_fs, "filler")
    fill(filler)
    # each project record is ~3 KiB: the store must grow, and cannot
    long_repo = repo + "?" + "x" * 3000
    added, refused = ["first"], []
    for i in range(400):
        p = d.ctl("project", "add", "p%03d" % i, "--repo", long_repo)
        if p.returncode == 0:
            assert "added" in p.stdout
            added.append("p%03d" % i)
        else:
            refused.append(p.stderr)
            if len(refused) >= 3:
                break
    # the daemon is still up, and answers from what is stored
    assert project_names(d) == sorted(added)
    assert refused, "the store never ran out of space: the test proves nothing"
    for why in refused:
        assert "no space left" in why, why
        assert "added" not in why
    # with space again, adding works without a restart
    os.unlink(filler)
    d.ok("project", "add", "after", "--repo", repo)
    added.append("after")
    assert d.stop() == 0
    d.start()
    try:
        assert project_names(d) == sorted(added)
    finally:
        d.stop()


def test_full_disk_job_run_says_created_only_when_stored(workdir, small_fs):
    """`job run` on a full disk: every run it reported is in the run history
    after a restart, and a run that could not be stored is refused with the
    cause (before, replies named runs that were never stored)."""
    d = Dbtd(workdir)
    d.state = os.path.join(small_fs, "state")
    d.start()
    repo = make_repo(workdir)
    d.ok("project", "add", "shop", "--repo", repo)
    d.ok("env", "add", "prod", "--project", "shop", "--branch", "main",
         "--destination", "duckdb", "--path", os.path.join(workdir, "w.duckdb"),
         "--dbt", "/bin/true")
    d.ok("job", "add", "nightly", "--env", "prod", "--command", "dbt build",
         "--timeout", "600")
    filler = os.path.join(small_fs, "filler")
    fill(filler)
    told, refused = [], []
    for _ in range(400):
        p = d.ctl("--json", "job", "run", "nightly")
        if p.returncode == 0:
            told.append(json.loads(p.stdout)["id"])
        else:
            refused.append(p.stderr)
            if len(refused) >= 3:
                break
    os.unlink(filler)
    assert d.stop() == 0
    d.start()
    try:
        stored = {r["id"] for r in d.json("run", "list", "--limit", "1000")}
        assert set(told) <= stored, "reported but not stored: %s" % sorted(set(told) - stored)
    finally:
        d.stop()
    assert refused, "the store never ran out of space: the test proves nothing"
    for why in refused:
        assert "no space left" in why, why
