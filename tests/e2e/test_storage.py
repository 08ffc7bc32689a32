"""Storage errors are never silent, and the map grows.

A step prints a known number of lines ("line 1" .. "line N") through a
--dbt script (real dbt cannot print a million lines on demand); every line
is either in the stored log or counted in the note that ends the step's log
and in the run's error.  The state directory is a real tmpfs where the
disk must fill."""
import json
import os
import re

import pytest

from conftest import Dbtd, make_repo, wait_for, fill, mount_tmpfs

LINE = re.compile(r"^line (\d+)(?: x+)?$")
NOTE = re.compile(r"^dbtd: ([\d,]+) lines? of this step's log could not be stored")
HERE = re.compile(r"^dbtd: ([\d,]+) lines? of this step's log could not be stored here")
# lines of the build step besides the script's own: the command line dbtd
# logs first, then its exit status, the artifacts kept and the outcome
OWN_LINES = 4


def printer(workdir, lines, width=90):
    """A --dbt whose `dbt build` prints `lines` numbered lines, padded with
    about width x's."""
    path = os.path.join(workdir, "dbt-printer")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                'if [ "$1" = build ]; then\n'
                f"  awk 'BEGIN {{ pad = \"\"; for (i = 0; i < {width}; i++) pad = pad \"x\"; "
                f"if (pad != \"\") pad = \" \" pad; "
                f"for (i = 1; i <= {lines}; i++) print \"line \" i pad }}'\n"
                "fi\n")
    os.chmod(path, 0o755)
    return path


def setup(d, workdir, dbt):
    repo = make_repo(workdir)
    d.ok("project", "add", "shop", "--repo", repo)
    d.ok("env", "add", "prod", "--project", "shop", "--branch", "main",
         "--destination", "duckdb", "--path", os.path.join(workdir, "w.duckdb"),
         "--dbt", dbt)
    d.ok("job", "add", "nightly", "--env", "prod", "--command", "dbt build",
         "--timeout", "600")


def step_log(d, run_id, step):
    """The texts of a step's stored log lines (dbtctl must succeed)."""
    p = d.ctl("--json", "run", "logs", run_id, "--step", step)
    assert p.returncode == 0, p.stderr
    return [json.loads(l)["text"] for l in p.stdout.splitlines()]


def accounted(texts, total):
    """(numbers of the stored lines, lines the note says were lost), after
    checking that every line of the step is either stored or counted."""
    stored = [int(m.group(1)) for m in map(LINE.match, texts) if m]
    notes = [NOTE.match(t) for t in texts if NOTE.match(t)]
    lost = int(notes[-1].group(1).replace(",", "")) if notes else 0
    assert len(texts) - len(notes) + lost == total + OWN_LINES, \
        (len(texts), len(notes), lost, total)
    # each hole in the numbering is marked where it is, with its size
    want = 1
    for i, t in enumerate(texts):
        m = LINE.match(t)
        if not m:
            continue
        if int(m.group(1)) != want:
            here = HERE.match(texts[i - 1])
            assert here, ("an unmarked hole", texts[i - 1][:80], t[:20])
            assert int(here.group(1).replace(",", "")) == int(m.group(1)) - want
        want = int(m.group(1)) + 1
    return stored, lost


def space(d):
    return d.json("version")["store_space"]


@pytest.fixture
def small_fs(workdir):
    """A 24 MiB tmpfs for dbtd's state directory; unmounted after."""
    yield from mount_tmpfs(workdir, "24m")


def test_map_starts_small_and_grows_with_the_history(workdir):
    """--map-size 1M: the map grows as the log fills it, and every line is
    stored (before, the map was a fixed 64 GiB)."""
    d = Dbtd(workdir, extra_args=["--map-size", "1M"]).start()
    try:
        setup(d, workdir, printer(workdir, 600000))
        first = space(d)
        assert first["max_map_size"] == 1 << 40
        run_id = d.json("job", "run", "nightly", "--wait")["id"]
        run = d.json("run", "view", run_id)
        assert run["status"] == "completed", run
        assert not run.get("error"), run
        stored, lost = accounted(step_log(d, run_id, 4), 600000)
        assert lost == 0
        assert stored == list(range(1, 600001))
        after = space(d)
        assert after["map_used"] > 40 << 20, after
        assert after["map_size"] > first["map_size"], (first, after)
        assert "map grown from" in d.log()
    finally:
        assert d.stop() == 0


def test_full_map_at_max_counts_lost_lines_and_keeps_the_run(workdir):
    """--max-map-size reached: log lines are refused before run states, the
    step log ends with how many were lost and why, the run's error says so,
    and the run still ends Completed (before: an I/O error in dbtd's log, a
    hole in the step log, and a run that could stay Running)."""
    d = Dbtd(workdir, extra_args=["--map-size", "1M", "--max-map-size", "16M"]).start()
    total = 400000
    try:
        setup(d, workdir, printer(workdir, total))
        run_id = d.json("job", "run", "nightly", "--wait")["id"]
        run = d.json("run", "view", run_id)
        assert run["status"] == "completed", run
        assert "could not be stored" in run["error"], run
        assert "map is full" in run["error"], run
        texts = step_log(d, run_id, 4)
        stored, lost = accounted(texts, total)
        assert lost > 0 and stored, (len(stored), lost)
        assert NOTE.match(texts[-1]), texts[-3:]
        assert "map is full" in texts[-1]
        assert space(d)["map_size"] == 16 << 20
        # the store still takes states: a project is added
        d.ok("project", "add", "other", "--repo", make_repo(workdir, "other"))
    finally:
        assert d.stop() == 0
    # a larger limit after a restart: runs log in full again
    d = Dbtd(workdir, extra_args=["--max-map-size", "1G"]).start()
    try:
        run_id = d.json("job", "run", "nightly", "--wait")["id"]
        assert d.json("run", "view", run_id)["status"] == "completed"
        stored, lost = accounted(step_log(d, run_id, 4), total)
        assert lost == 0 and len(stored) == total
    finally:
        assert d.stop() == 0


def test_full_disk_under_a_logging_run_is_counted_and_said(workdir, small_fs):
    """A step printing 1,000,000 lines into a 24 MiB state directory: the
    disk fills, the lost lines are counted in the step log and the run's
    error (ENOSPC named, not EIO), and everything stored reads back after a
    restart."""
    d = Dbtd(workdir)
    d.state = os.path.join(small_fs, "state")
    d.start()
    total = 1000000
    try:
        setup(d, workdir, printer(workdir, total, width=0))
        run_id = d.json("job", "run", "nightly", "--wait")["id"]
        run = d.json("run", "view", run_id)
        assert run["status"] == "completed", run
        assert "no space left" in run["error"], run
        texts = step_log(d, run_id, 4)
        stored, lost = accounted(texts, total)
        assert lost > 0, (len(stored), lost)
        # what was stored is in order; any hole is marked where it is (accounted)
        assert stored == sorted(stored)
        assert "no space left" in texts[-1]
        assert "Input/output error" not in d.log()
    finally:
        assert d.stop() == 0
    d.start()
    try:
        stored2, lost2 = accounted(step_log(d, run_id, 4), total)
        assert (len(stored2), lost2) == (len(stored), lost)
    finally:
        assert d.stop() == 0


class Filler:
    """Keeps a file system full: takes every byte that comes free (LMDB
    reuses pages, and a failed write can give a few back) until stopped."""

    def __init__(self, path):
        import threading
        self.path = path
        self.stop_ = threading.Event()
        self.full = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self.stop_.is_set():
                wrote = False
                for size in (1 << 20, 4096, 1):
                    try:
                        while os.write(fd, b"\0" * size) > 0:
                            wrote = True
                    except OSError:
                        pass
                if not wrote:
                    self.full.set()
                    self.stop_.wait(0.001)
        finally:
            os.close(fd)

    def __enter__(self):
        self.thread.start()
        assert self.full.wait(60), "the file system did not fill"
        return self

    def __exit__(self, *exc):
        self.stop_.set()
        self.thread.join()
        os.unlink(self.path)


def test_run_whose_end_cannot_be_stored_is_failed_at_the_next_chance(workdir, small_fs):
    """The disk is kept full by something else while a run logs, and a
    reader (a backup, say) holds an old snapshot so LMDB cannot reuse pages:
    the run's end cannot be committed.  It is never shown Completed; once
    there is space again it is stored Failed, its error naming the real
    outcome and the cause, and it stays so after a restart.  (The engine's
    unit test injects the failed commit; here the real disk decides, and
    on a loaded machine LMDB may still find a page for the end: then it is
    stored Completed, and shown so only once stored.)"""
    import lmdb
    d = Dbtd(workdir)
    d.state = os.path.join(small_fs, "state")
    d.start()
    mark, burst = os.path.join(workdir, "go"), os.path.join(workdir, "burst")
    dbt = os.path.join(workdir, "dbt-waits")
    with open(dbt, "w") as f:
        f.write("#!/bin/sh\n"
                'if [ "$1" = build ]; then\n'
                f"  while [ ! -e {mark} ]; do\n"
                f"    if [ -e {burst} ] && [ ! -e {burst}.done ]; then\n"
                "      awk 'BEGIN { for (i = 0; i < 40000; i++) print \"burst \" i }'\n"
                f"      touch {burst}.done\n"
                "    fi\n"
                "    echo waiting; sleep 0.05\n"
                "  done\n"
                "  echo done\n"
                "fi\n")
    os.chmod(dbt, 0o755)
    try:
        setup(d, workdir, dbt)
        run_id = json.loads(d.ok("--json", "job", "run", "nightly").stdout)["id"]
        wait_for("the build step", lambda: d.json("run", "view", run_id)["steps"][3]
                 ["status"] == "running")
        env = lmdb.open(d.state, readonly=True, max_dbs=32)
        snapshot = env.begin()
        # lines stored after the snapshot use up the pages LMDB could reuse
        open(burst, "w").close()
        wait_for("the burst to be stored", lambda: "burst 39999" in d.ctl(
            "run", "logs", run_id, "--step", 4, "--search", "burst 39999").stdout)
        with Filler(os.path.join(small_fs, "filler")):
            open(mark, "w").close()
            # usually no page is left for the run's end; when LMDB still
            # finds one (a loaded machine can order things so), the end is
            # simply stored: either way nothing is shown that is not stored
            wait_for("the run's end", lambda: "cannot save its state (completed)" in d.log()
                     or d.json("run", "view", run_id)["status"] != "running", timeout=60)
            unstored = "cannot save its state (completed)" in d.log()
            run = d.json("run", "view", run_id)
            assert run["status"] == ("running" if unstored else "completed"), run
            snapshot.abort()
            env.close()
        run = wait_for("the run to be stored",
                       lambda: (lambda r: r if r["status"] != "running" else None)(
                           d.json("run", "view", run_id)), timeout=60)
        if unstored:
            assert run["status"] == "failed", run
            assert "the run completed" in run["error"], run
            assert "could not store its end" in run["error"], run
            assert "no space left" in run["error"], run
        else:
            assert run["status"] == "completed", run
        final = run["status"]
    finally:
        assert d.stop() == 0
    d.start()
    try:
        assert d.json("run", "view", run_id)["status"] == final
    finally:
        assert d.stop() == 0
