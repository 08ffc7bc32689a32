"""A damaged store is detected and said: dbtd check names the damage, dbtd
refuses a file it cannot open with the reason, and a read that meets damage
fails (dbtctl exits non-zero with the damaged-store message) while the rest
stays readable.  The store is a real one: three runs of the example
project with real dbt; copies of it are damaged in several ways."""
import json
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from conftest import DBTD, VENV_PY, BASE_ENV, Dbtd, make_repo, setup_job

pytestmark = pytest.mark.xdist_group("corruption")

P_BRANCH, P_META = 0x01, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02
P_INVALID = 0xFFFFFFFFFFFFFFFF


class Pages:
    """Which pages of an LMDB 0.9 data.mdb (64-bit) each database owns."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.psize = struct.unpack_from("<I", self.data, 40)[0]
        metas = [self._meta(0), self._meta(self.psize)]
        root = max(metas, key=lambda m: m[1])[0]
        self.dbs = {}
        for key, flags, val, _ in self._walk(root)["entries"]:
            if flags & F_SUBDATA:
                self.dbs[key.decode()] = self._walk(struct.unpack_from("<Q", val, 40)[0])

    def _meta(self, off):
        assert struct.unpack_from("<H", self.data, off + 10)[0] & P_META
        root = struct.unpack_from("<Q", self.data, off + 16 + 24 + 48 + 40)[0]
        txnid = struct.unpack_from("<Q", self.data, off + 16 + 24 + 96 + 8)[0]
        return root, txnid

    def _walk(self, root):
        out = {"leaf": {}, "entries": []}
        todo = [] if root == P_INVALID else [root]
        while todo:
            pgno = todo.pop()
            base = pgno * self.psize
            flags, lower = struct.unpack_from("<HH", self.data, base + 10)
            ptrs = struct.unpack_from("<%dH" % ((lower - 16) // 2), self.data, base + 16)
            if flags & P_BRANCH:
                for ptr in ptrs:
                    lo, hi, fl = struct.unpack_from("<HHH", self.data, base + ptr)
                    todo.append(lo | hi << 16 | fl << 32)
                continue
            keys = []
            for ptr in ptrs:
                lo, hi, fl, ks = struct.unpack_from("<HHHH", self.data, base + ptr)
                key = self.data[base + ptr + 8:base + ptr + 8 + ks]
                at = base + ptr + 8 + ks  # the value's offset in the file
                val = None if fl & F_BIGDATA else self.data[at:at + (lo | hi << 16)]
                out["entries"].append((key, fl, val, at))
                keys.append(key)
            out["leaf"][pgno] = keys
        return out


def write_at(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def check(state, *args):
    return subprocess.run([DBTD, "check", "--state-dir", state] + list(args),
                          capture_output=True, text=True, env=BASE_ENV, timeout=300)


@pytest.fixture(scope="module")
def store():
    """A real store: three completed runs of the example project; dbtd stopped."""
    root = tempfile.mkdtemp(prefix="dbtd-e2e-")
    d = Dbtd(root).start()
    try:
        repo = make_repo(root)
        setup_job(d, repo, root)
        runs = [d.json("job", "run", "nightly", "--wait") for _ in range(3)]
        assert [r["status"] for r in runs] == ["completed"] * 3
        logs = {r["id"]: d.ok("run", "logs", r["id"]).stdout for r in runs}
    finally:
        assert d.stop() == 0
    yield {"root": root, "runs": runs, "logs": logs}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def copy(store, workdir):
    """A copy of the store's state directory to damage, and a dbtd for it."""
    root = workdir
    shutil.copytree(os.path.join(store["root"], "state"), os.path.join(root, "state"))
    os.remove(os.path.join(root, "state", "lock.mdb"))
    d = Dbtd(root)
    d.data = os.path.join(d.state, "data.mdb")
    yield d
    d.stop()


def damaged_message(text, state):
    assert f"the store in {state} is damaged" in text, text
    assert "dbtd check" in text and "backup" in text, text


def test_a_healthy_store_checks_clean(store, copy):
    p = check(copy.state, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["problems"] == [] and r["damaged"] == 0
    assert r["counts"]["runs"] == 3 and r["counts"]["log_chunks"] > 0
    assert r["databases"]["runs_by_job"]["records"] == 3


def test_a_damaged_log_page_fails_the_read_not_truncates_it(store, copy):
    """A leaf page of `logs` holding only chunks of run 3 (not its first):
    zeroed.  The log of run 3 is never printed short with exit 0."""
    pages = Pages(copy.data)
    last = store["runs"][-1]["id"]
    leaves = sorted(pages.dbs["logs"]["leaf"].items(),
                    key=lambda kv: kv[1][0])
    own = [pg for pg, keys in leaves
           if all(struct.unpack(">Q", k[:8])[0] == last for k in keys)]
    assert len(own) >= 2, leaves
    write_at(copy.data, own[1] * pages.psize, b"\0" * pages.psize)

    p = check(copy.state)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "logs:" in p.stdout and "damaged" in p.stdout, p.stdout

    copy.start()
    p = copy.ctl("run", "logs", last)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"cannot read the log of run {last}" in p.stderr, p.stderr
    damaged_message(p.stderr, copy.state)
    assert "database logs" in p.stderr, p.stderr
    # what came before the damage is the log as it was, not a complete one
    assert store["logs"][last].startswith(p.stdout[:200])
    assert len(p.stdout) < len(store["logs"][last])
    # dbtd is still up, and the other runs read whole
    for r in store["runs"][:-1]:
        assert copy.ok("run", "logs", r["id"]).stdout == store["logs"][r["id"]]
        assert copy.json("run", "view", r["id"])["status"] == "completed"
    assert copy.json("run", "view", last)["id"] == last
    assert copy.stop() == 0


def test_a_damaged_log_chunk_ends_the_stream_with_an_error(store, copy):
    """The bytes of one stored chunk (its records' framing) overwritten."""
    pages = Pages(copy.data)
    first = store["runs"][0]["id"]
    chunks = [(k, at, len(v)) for k, fl, v, at in pages.dbs["logs"]["entries"]
              if v and struct.unpack(">QII", k)[0] == first and len(v) > 40]
    key, at, n = chunks[len(chunks) // 2]
    write_at(copy.data, at, b"\xff" * min(n, 64))
    _, step, seq = struct.unpack(">QII", key)

    p = check(copy.state, "--json")
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["databases"]["logs"]["damaged"] == 1, r
    assert any(f"chunk {seq} of step {step} of run {first}" in x for x in r["problems"]), r

    copy.start()
    p = copy.ctl("run", "logs", first)
    assert p.returncode == 1, p.stdout + p.stderr
    damaged_message(p.stderr, copy.state)
    assert f"chunk {seq} of step {step} of run {first}" in p.stderr, p.stderr
    assert "same release" not in p.stderr
    p = copy.ctl("--json", "run", "logs", first, "--step", step)
    assert p.returncode == 1 and "damaged" in p.stderr
    other = store["runs"][1]["id"]
    assert copy.ok("run", "logs", other).stdout == store["logs"][other]
    assert copy.stop() == 0


def test_a_damaged_run_record_is_said_by_view_and_list(store, copy):
    pages = Pages(copy.data)
    mid = store["runs"][1]["id"]
    [(key, at, n)] = [(k, at, len(v)) for k, fl, v, at in pages.dbs["runs"]["entries"]
                      if struct.unpack(">Q", k)[0] == mid]
    write_at(copy.data, at, b"\xff" * 16)

    p = check(copy.state)
    assert p.returncode == 1
    assert f"runs: run {mid}: its record does not decode" in p.stdout, p.stdout

    copy.start()
    p = copy.ctl("run", "view", mid)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"cannot read run {mid}" in p.stderr and f"database runs, run {mid}" in p.stderr
    damaged_message(p.stderr, copy.state)
    p = copy.ctl("run", "list")
    assert p.returncode == 1 and "damaged" in p.stderr, p.stdout + p.stderr
    for r in (store["runs"][0], store["runs"][2]):
        assert copy.json("run", "view", r["id"])["status"] == "completed"
        assert copy.ok("run", "logs", r["id"]).stdout == store["logs"][r["id"]]
    assert copy.stop() == 0


def test_a_damaged_page_of_runs_is_said(store, copy):
    """The one leaf page holding every run record, overwritten."""
    pages = Pages(copy.data)
    [pg] = pages.dbs["runs"]["leaf"]
    write_at(copy.data, pg * pages.psize, b"\0" * pages.psize)
    p = check(copy.state)
    assert p.returncode == 1 and "runs" in p.stdout, p.stdout + p.stderr

    copy.start()
    for r in store["runs"]:
        p = copy.ctl("run", "view", r["id"])
        assert p.returncode != 0 and "damaged" in p.stderr, p.stdout + p.stderr
    assert copy.ok("job", "list")
    assert copy.stop() == 0


def test_an_index_entry_of_a_missing_run(store, copy):
    """A run record removed behind dbtd's back: its index entries dangle."""
    code = ("import lmdb,sys;e=lmdb.open(sys.argv[1],max_dbs=32);db=e.open_db(b'runs');"
            "t=e.begin(write=True);t.delete((2).to_bytes(8,'big'),db=db);t.commit()")
    subprocess.run([VENV_PY, "-c", code, copy.state], check=True)
    p = check(copy.state, "--json")
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert any("runs_by_job: an entry for run 2, which database runs does not hold" in x
               for x in r["problems"]), r
    copy.start()
    p = copy.ctl("run", "list", "--job", "nightly")
    assert p.returncode == 1 and "runs_by_job" in p.stderr, p.stderr
    damaged_message(p.stderr, copy.state)
    assert copy.ctl("run", "view", 2).returncode == 4
    assert copy.stop() == 0


def test_a_missing_blob_is_reported(store, copy):
    blobs = os.path.join(copy.state, "blobs")
    victim = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(blobs) for f in fs)[0]
    os.remove(victim)
    p = check(copy.state)
    assert p.returncode == 1
    assert "artifacts:" in p.stdout and "is missing" in p.stdout, p.stdout


@pytest.mark.parametrize("how", ["truncated", "random", "foreign", "lmdb-version"])
def test_a_file_dbtd_cannot_open_is_named(copy, how):
    size = os.path.getsize(copy.data)
    if how == "truncated":
        os.truncate(copy.data, size // 2)
        want = "is truncated"
    elif how == "random":
        with open(copy.data, "wb") as f:
            f.write(os.urandom(size))
        want = "is not an LMDB file"
    elif how == "foreign":
        os.remove(copy.data)
        code = ("import lmdb,sys;e=lmdb.open(sys.argv[1],max_dbs=4);d=e.open_db(b'users');"
                "t=e.begin(write=True);t.put(b'alice',b'1',db=d);t.commit()")
        subprocess.run([VENV_PY, "-c", code, copy.state], check=True)
        os.remove(os.path.join(copy.state, "lock.mdb"))
        want = "is an LMDB file of another program"
    else:
        for off in (0, 4096):
            write_at(copy.data, off + 20, struct.pack("<I", 7))
        want = "is an LMDB file of data version 7"
    before = open(copy.data, "rb").read()
    p = check(copy.state)
    assert p.returncode == 1 and want in p.stderr and copy.data in p.stderr, p.stderr
    p = check(copy.state, "--json")
    assert p.returncode == 1 and want in json.loads(p.stdout)["problems"][0]
    p = subprocess.run([DBTD, "--socket", copy.sock, "--state-dir", copy.state],
                       capture_output=True, text=True, env=BASE_ENV, timeout=30)
    assert p.returncode == 1 and want in p.stderr and copy.data in p.stderr, p.stderr
    assert open(copy.data, "rb").read() == before  # nothing written
