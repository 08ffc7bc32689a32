"""Retention: the runs a policy no longer keeps are deleted with their logs,
lineage and artifact records, and the artifact contents only they referred
to; nothing else (a content shared with a kept run, a running run, each
job's newest finished run).  run prune --dry-run changes nothing.
dbtd backup copies the store while dbtd serves it."""
import hashlib
import os
import time

import pytest

from conftest import BASE_ENV, BUILD, DBT, DBTD, Dbtd, run, setup_job, wait_for

GEN_RUNS = os.path.join(BUILD, "bench", "gen_runs")
DAY_MS = 86400 * 1000
NO_AUTO = dict(BASE_ENV, DBTD_TEST_AUTO_PRUNE="0")


def blobs(state):
    """Every artifact content file: {digest: size}."""
    out = {}
    for root, _, files in os.walk(os.path.join(state, "blobs")):
        for f in files:
            if len(f) == 64:
                out[f] = os.path.getsize(os.path.join(root, f))
    return out


def age_blobs(state, days=2):
    """Make every blob look written days ago (the sweep spares recent ones)."""
    t = time.time() - days * 86400
    for root, _, files in os.walk(os.path.join(state, "blobs")):
        for f in files:
            os.utime(os.path.join(root, f), (t, t))


def slow_dbt(workdir):
    """A --dbt that waits while workdir/slow exists, then runs the real dbt."""
    path = os.path.join(workdir, "dbt-slow")
    flag = os.path.join(workdir, "slow")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nwhile [ -e "{flag}" ]; do sleep 0.2; done\nexec {DBT} "$@"\n')
    os.chmod(path, 0o755)
    return path, flag


def contents(d, run_id):
    """{path: sha256} of every artifact of a run, as dbtd serves them back."""
    out = {}
    dst = os.path.join(d.root, "artifact.out")
    for a in d.json("run", "artifacts", run_id):
        d.ok("run", "artifact", run_id, a["path"], "--output", dst)
        with open(dst, "rb") as f:
            out[a["path"]] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture
def quiet(workdir):
    """A dbtd without automatic passes: the test says when to prune."""
    d = Dbtd(workdir, env=NO_AUTO).start()
    yield d
    assert d.stop() == 0, d.log()


def test_keep_runs_deletes_the_oldest_and_what_only_they_kept(quiet, repo, workdir):
    d = quiet
    dbt, flag = slow_dbt(workdir)
    setup_job(d, repo, workdir, commands=("dbt seed",), dbt=dbt)
    d.ok("job", "edit", "nightly", "--keep-runs", "2")
    view = d.json("job", "view", "nightly")
    assert view["keep_runs"] == 2 and view["keep_days"] is None
    assert "Keep runs" in d.ok("job", "view", "nightly").stdout
    ids = [d.json("job", "run", "nightly", "--wait")["id"] for _ in range(3)]
    kept_before = {i: contents(d, i) for i in ids[1:]}
    old_lineage = d.ctl("run", "lineage", ids[0], "--format", "json")
    assert old_lineage.returncode == 0
    # a running run is neither counted nor deleted
    open(flag, "w").close()
    active = d.json("job", "run", "nightly")["id"]
    wait_for("the run to be running",
             lambda: d.json("run", "view", active)["status"] == "running")
    age_blobs(d.state)
    before = blobs(d.state)

    dry = d.json("run", "prune", "--dry-run")
    assert dry["dry_run"] is True
    assert dry["runs"] == 1 and dry["artifacts"] > 0 and dry["log_bytes"] > 0
    assert dry["lineages"] == 1 and dry["blobs"] > 0
    assert blobs(d.state) == before
    assert d.ctl("run", "view", ids[0]).returncode == 0

    rep = d.json("run", "prune")
    assert rep["dry_run"] is False and rep["error"] is None
    for k in ("runs", "artifacts", "log_bytes", "lineages", "blobs", "blob_bytes"):
        assert rep[k] == dry[k], k
    after = blobs(d.state)
    gone = set(before) - set(after)
    assert len(gone) == rep["blobs"] and not set(after) - set(before)
    assert rep["blob_bytes"] == sum(before[g] for g in gone)
    # the oldest run and everything of it are gone
    for args in (("run", "view", ids[0]), ("run", "logs", ids[0]),
                 ("run", "artifacts", ids[0]), ("run", "lineage", ids[0])):
        assert d.ctl(*args).returncode == 4, args
    assert [r["id"] for r in d.json("run", "list", "--job", "nightly")] == [active] + ids[:0:-1]
    # the kept runs lost nothing, contents they share with the deleted run included
    for i in ids[1:]:
        assert contents(d, i) == kept_before[i]
        assert d.ctl("run", "lineage", i).returncode == 0
        assert d.ctl("run", "logs", i).returncode == 0
    shared = {v for c in kept_before.values() for v in c.values()}
    assert shared & set(after) and not shared & gone

    # once finished it counts: the next pass keeps it and the newest before it
    d.ok("run", "cancel", active)
    wait_for("the cancel", lambda: d.json("run", "view", active)["status"] == "canceled")
    os.unlink(flag)
    assert d.json("run", "prune")["runs"] == 1
    assert [r["id"] for r in d.json("run", "list", "--job", "nightly")] == [active, ids[2]]
    assert d.json("run", "prune")["runs"] == 0


def gen_old_runs(state, n, job, start_ms, every_ms=3600 * 1000):
    run([GEN_RUNS, state, str(n), "1", str(start_ms), str(every_ms), job])


def test_keep_days_removed_jobs_and_the_newest_run(workdir, repo):
    state = os.path.join(workdir, "state")
    now = int(time.time() * 1000)
    gen_old_runs(state, 40, "nightly", now - 100 * DAY_MS)           # all older than 30 days
    gen_old_runs(state, 30, "gone", now - 60 * DAY_MS, DAY_MS)       # 60 to 31 days old
    gen_old_runs(state, 10, "recent", now - 5 * DAY_MS, 3600 * 1000)  # all young
    d = Dbtd(workdir, ["--keep-days", "30"], env=NO_AUTO).start()
    try:
        setup_job(d, repo, workdir, commands=("dbt seed",))
        real = d.json("job", "run", "nightly", "--wait")["id"]
        dry = d.json("run", "prune", "--dry-run", "--job", "nightly")
        assert dry["runs"] == 40 and dry["job"] == "nightly" and dry["keep_days"] == 30
        assert len(d.json("run", "list", "--job", "nightly", "--limit", "100")) == 41
        rep = d.json("run", "prune")
        # nightly: every old run (the real one is its newest); gone (a removed job):
        # all but its newest, by the global policy; recent: nothing
        assert rep["runs"] == 40 + 29
        assert [r["id"] for r in d.json("run", "list", "--job", "nightly")] == [real]
        assert len(d.json("run", "list", "--job", "gone")) == 1
        assert len(d.json("run", "list", "--job", "recent", "--limit", "100")) == 10
        txt = d.ok("run", "prune", "--dry-run").stdout
        assert "would delete 0 runs" in txt and "nothing was changed" in txt
    finally:
        assert d.stop() == 0, d.log()
    # at start, without being asked
    gen_old_runs(state, 5, "ancient", now - 300 * DAY_MS, 60000)
    d = Dbtd(workdir, ["--keep-days", "30"]).start()
    try:
        wait_for("the pass at start",
                 lambda: len(d.json("run", "list", "--job", "ancient")) == 1)
        assert len(d.json("run", "list", "--job", "recent", "--limit", "100")) == 10
        wait_for("the log line", lambda: "retention: pruned 4 runs" in d.log())
    finally:
        assert d.stop() == 0, d.log()


def test_backup_while_serving(workdir):
    state = os.path.join(workdir, "state")
    gen_old_runs(state, 3000, "nightly", int(time.time() * 1000) - 10 * DAY_MS, 60000)
    d = Dbtd(workdir, ["--keep-runs", "100"], env=NO_AUTO).start()
    try:
        assert d.json("run", "prune")["runs"] == 2900
        listed = d.json("run", "list", "--limit", "200")
        copy = os.path.join(workdir, "copy.mdb")
        p = run([DBTD, "backup", copy, "--state-dir", state])
        assert "written to" in p.stdout
        assert os.stat(copy).st_mode & 0o777 == 0o600
        assert os.path.getsize(copy) < os.path.getsize(os.path.join(state, "data.mdb"))
        p = run([DBTD, "backup", copy, "--state-dir", state], check=False)
        assert p.returncode == 1 and "--force" in p.stderr
        run([DBTD, "backup", "--force", copy, "--state-dir", state])
        p = run([DBTD, "backup", os.path.join(workdir, "no", "such", "dir", "c.mdb"),
                 "--state-dir", state], check=False)
        assert p.returncode == 1 and "does not exist" in p.stderr
        assert not os.path.exists(copy + ".tmp")
    finally:
        assert d.stop() == 0, d.log()
    # restore: the copy as <state>/data.mdb, mode 0600; dbtd check, then serve
    root2 = os.path.join(workdir, "r")
    os.makedirs(os.path.join(root2, "state"), mode=0o700)
    os.rename(copy, os.path.join(root2, "state", "data.mdb"))
    run([DBTD, "check", "--state-dir", os.path.join(root2, "state")])
    d2 = Dbtd(root2, env=NO_AUTO).start()
    try:
        assert d2.json("run", "list", "--limit", "200") == listed
    finally:
        assert d2.stop() == 0, d2.log()
