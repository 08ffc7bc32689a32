"""A run's artifact list and lineage however large: dbtd streams them in
bounded frames when asked (RunRef.stream), dbtctl puts them together.

One real run serves every test here: a dbt project of 1,500 models whose
refs make ~12,000 edges (dbt parse: the lineage needs three frames), run
through a --dbt that, after the real dbt, leaves 38,000 files with 380-byte
paths (the longest the runner keeps) in target/.  Their list is ~17 MB: over
the 16 MiB limit of one frame, so before streams nobody could read it."""
import json
import os
import random
import shutil
import struct
import tempfile

import pytest

from conftest import DBT, VENV_PY, Dbtd, git, run
from test_core import Conn, pb  # noqa: F401 (pb: the fixture of generated bindings)

pytestmark = pytest.mark.xdist_group("streamed_lists")

MODELS = 1500
ROOTS = 20            # models without refs
REFS = 8              # refs of every other model
FILES = 38000         # generated artifacts, identical content (one blob)
DIRS = 200
PATH_LEN = 380        # collect.c keeps relative paths up to 380 bytes
PAGE_ITEMS, PAGE_EDGES, PAGE_BYTES = 1000, 10000, 1 << 20
FRAME_MAX = 16 * 1024 * 1024

MAKE_FILES = """
import json, os, stat, sys
n, ndirs, plen, listing = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for i in range(n):
    d = "target/many/%s_%03d" % ("d" * 140, i % ndirs)
    name = "_%06d.txt" % i
    path = d + "/" + "f" * (plen - len(d) - 1 - len(name)) + name
    assert len(path) == plen
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write("x\\n")
# what the runner will keep: every regular file under target/ and logs/
kept = {}
for top in ("target", "logs"):
    for root, dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                kept[p] = st.st_size
with open(listing, "w") as f:
    json.dump(kept, f)
"""


def model_refs():
    """{model: [the models it refs]}, the same every time."""
    rng = random.Random(7)
    return {"m%04d" % i: [] if i < ROOTS else
            ["m%04d" % j for j in sorted(rng.sample(range(i), REFS))]
            for i in range(MODELS)}


def make_project(root, name, refs):
    repo = os.path.join(root, name)
    os.makedirs(os.path.join(repo, "models"))
    with open(os.path.join(repo, "dbt_project.yml"), "w") as f:
        f.write(f"name: {name}\nversion: '1.0'\nconfig-version: 2\nprofile: {name}\n")
    for m, parents in refs.items():
        with open(os.path.join(repo, "models", m + ".sql"), "w") as f:
            f.write("select 1 as id\n" + "".join(
                "-- after {{ ref('%s') }}\n" % p for p in parents))
    run(["git", "init", "-q", "-b", "main", repo])
    git(repo, "config", "user.email", "tests@dbtd.invalid")
    git(repo, "config", "user.name", "dbtd tests")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "generated project")
    return repo


def add_job(d, root, project, repo, dbt, job):
    d.ok("project", "add", project, "--repo", repo)
    d.ok("env", "add", project, "--project", project, "--branch", "main", "--destination",
         "duckdb", "--path", os.path.join(root, project + ".duckdb"), "--dbt", dbt)
    d.ok("job", "add", job, "--env", project, "--command", "dbt parse")
    r = d.json("job", "run", job, "--wait", timeout=300)
    assert r["status"] == "completed", d.ok("run", "logs", r["id"]).stdout[-3000:]
    return r["id"]


class Big:
    """The dbtd, the big run (and what it kept) and a small one."""


@pytest.fixture(scope="module")
def big():
    root = tempfile.mkdtemp(prefix="dbtd-e2e-")
    d = Dbtd(root).start()
    try:
        b = Big()
        b.d = d
        b.refs = model_refs()
        b.listing = os.path.join(root, "kept.json")
        script = os.path.join(root, "make_files.py")
        with open(script, "w") as f:
            f.write(MAKE_FILES)
        wrapper = os.path.join(root, "dbt-many-files")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\n{DBT} "$@"\nrc=$?\nif [ "$1" = parse ]; then\n'
                    f'{VENV_PY} {script} {FILES} {DIRS} {PATH_LEN} {b.listing} || exit 1\n'
                    f'fi\nexit $rc\n')
        os.chmod(wrapper, 0o755)
        repo = make_project(root, "big", b.refs)
        b.run = add_job(d, root, "big", repo, wrapper, "big")
        with open(b.listing) as f:
            b.kept = json.load(f)
        small = make_project(root, "small", {"a": [], "b": ["a"], "c": ["a", "b"]})
        b.small = add_job(d, root, "small", small, DBT, "small")
        yield b
    finally:
        rc = d.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert rc == 0, d.log()


def frames(c, req, request_id):
    """Send req; every frame of its answer up to the one with end: (bytes, Response)."""
    c.send(req)
    out = []
    while True:
        (n,) = struct.unpack(">I", c._exact(4))
        assert 0 < n <= FRAME_MAX
        r = c.pb.Response.FromString(c._exact(n))
        assert r.WhichOneof("body") != "error", r.error
        assert r.request_id == request_id
        out.append((n, r))
        if r.end:
            return out


def test_artifact_list_over_a_frame_comes_whole(big):
    kept = big.kept
    assert len(kept) > FILES and sum(1 for p in kept if p.startswith("target/many/")) == FILES
    assert "target/manifest.json" in kept and "logs/dbt.log" in kept
    arts = big.d.json("run", "artifacts", big.run)
    assert {a["path"]: a["size"] for a in arts} == kept
    assert len(arts) == len(kept)
    # the text views see the same list
    text = big.d.ok("run", "artifacts", big.run).stdout.splitlines()
    assert text[0].split() == ["PATH", "SIZE"] and len(text) == 1 + len(kept)
    one = big.d.json("run", "artifacts", big.run, "--search", "_012345.txt")
    assert [a["path"] for a in one] == [p for p in kept if p.endswith("_012345.txt")]
    tree = big.d.ok("run", "artifacts", big.run, "--tree", "--search", "_037999").stdout
    assert "many" in tree and "_037999.txt" in tree


def test_artifact_frames_are_bounded(pb, big):
    c = Conn(pb, big.d)
    # asked the old way, the list does not fit in a frame: an error says so
    r = c.call(pb.Request(artifacts=pb.RunRef(id=big.run), request_id=6))
    assert r.WhichOneof("body") == "error" and r.error.code == pb.ERROR_FAILED
    assert "over the 16 MiB limit" in r.error.message
    got = frames(c, pb.Request(artifacts=pb.RunRef(id=big.run, stream=True), request_id=7), 7)
    assert len(got) >= len(big.kept) // PAGE_ITEMS
    for i, (n, r) in enumerate(got):
        last = i == len(got) - 1
        assert r.WhichOneof("body") == "artifacts"
        assert n <= PAGE_BYTES + 1024 and 0 < len(r.artifacts.items) <= PAGE_ITEMS
        assert r.end == last and r.artifacts.more == (not last)
    paths = [a.path for _, r in got for a in r.artifacts.items]
    assert paths == sorted(paths, key=str.encode) and len(set(paths)) == len(paths)
    assert {a.path: a.size for _, r in got for a in r.artifacts.items} == big.kept
    # the stream is over: the connection serves the next request
    r = c.call(pb.Request(list=pb.OBJECT_JOB, request_id=8))
    assert r.WhichOneof("body") == "jobs" and r.request_id == 8
    c.close()


def test_lineage_in_several_frames_is_the_whole_graph(pb, big):
    c = Conn(pb, big.d)
    whole = c.call(pb.Request(lineage=pb.RunRef(id=big.run), request_id=1))
    assert whole.WhichOneof("body") == "lineage" and not whole.lineage.more
    assert len(whole.lineage.nodes) == MODELS
    got = frames(c, pb.Request(lineage=pb.RunRef(id=big.run, stream=True), request_id=2), 2)
    # 1,000 nodes; 500 nodes and 10,000 edges; the other 1,840 edges
    assert [(len(r.lineage.nodes), len(r.lineage.edges)) for _, r in got] == \
        [(PAGE_ITEMS, 0), (MODELS - PAGE_ITEMS, PAGE_EDGES),
         (0, len(whole.lineage.edges) - PAGE_EDGES)]
    for i, (n, r) in enumerate(got):
        last = i == len(got) - 1
        assert n <= PAGE_BYTES + 1024
        assert r.end == last and r.lineage.more == (not last)
    assert got[0][1].lineage.step == whole.lineage.step == 4
    assert all(r.lineage.step == 0 for _, r in got[1:])
    joined = pb.Lineage(step=got[0][1].lineage.step, error=got[0][1].lineage.error)
    for _, r in got:
        joined.nodes.extend(r.lineage.nodes)
        joined.edges.extend(r.lineage.edges)
    assert joined == whole.lineage
    c.close()
    # dbtctl puts it together: every model, every ref
    g = big.d.json("run", "lineage", big.run)
    assert sorted(n["name"] for n in g["nodes"]) == sorted(big.refs)
    assert sorted(map(tuple, g["edges"])) == sorted(
        ("model.big." + p, "model.big." + m) for m, ps in big.refs.items() for p in ps)
    text = big.d.ok("run", "lineage", big.run, "--select", "m1499").stdout
    assert "m1499" in text


def test_a_list_that_fits_is_one_frame_with_end(pb, big):
    c = Conn(pb, big.d)
    for ref in (pb.Request(artifacts=pb.RunRef(id=big.small, stream=True), request_id=3),
                pb.Request(lineage=pb.RunRef(id=big.small, stream=True), request_id=4)):
        got = frames(c, ref, ref.request_id)
        assert len(got) == 1
        body = got[0][1].WhichOneof("body")
        assert not getattr(got[0][1], body).more
    r = got[0][1].lineage
    assert sorted(n.name for n in r.nodes) == ["a", "b", "c"] and len(r.edges) == 3
    # the old way answers the same, in one frame without end (as before streams)
    old = c.call(pb.Request(lineage=pb.RunRef(id=big.small)))
    assert not old.end and old.lineage == r
    c.close()
    assert "target/manifest.json" in [a["path"] for a in big.d.json("run", "artifacts",
                                                                     big.small)]


INFLATE = """
import json, sys
path = "target/manifest.json"
with open(path) as f:
    m = json.load(f)
for n in m["nodes"].values():
    n["original_file_path"] = "models/" + "p" * (6 << 20) + ".sql"
with open(path, "w") as f:
    json.dump(m, f)
"""


def test_a_graph_too_large_to_keep_says_so(big, tmp_path):
    """A lineage graph larger than a runner frame (16 MiB) used to be lost
    without a word ("no dbt command of the run wrote a manifest"); now the
    run's lineage says why it is missing and where the manifest is."""
    script = tmp_path / "inflate.py"
    script.write_text(INFLATE)
    wrapper = tmp_path / "dbt-inflate"
    wrapper.write_text(f'#!/bin/sh\n{DBT} "$@" || exit $?\n'
                       f'[ "$1" = parse ] && {VENV_PY} {script}\nexit 0\n')
    wrapper.chmod(0o755)
    repo = make_project(str(tmp_path), "huge", {"a": [], "b": ["a"], "c": ["a", "b"]})
    run_id = add_job(big.d, str(tmp_path), "huge", repo, str(wrapper), "huge")
    p = big.d.ctl("run", "lineage", run_id)
    assert p.returncode == 1, p.stdout
    assert "(3 nodes, 18 MiB) is larger than the 16 MiB dbtd keeps" in p.stderr, p.stderr
    assert "target/manifest.json is among the run's artifacts" in p.stderr
    assert "target/manifest.json" in [a["path"] for a in big.d.json("run", "artifacts", run_id)]
