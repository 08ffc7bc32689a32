"""Lineage and artifacts of real dbt runs: the graph, its formats and
selections checked against dbt's own answer, failure impact, and the files
dbt wrote, kept by content and served back."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BASE_ENV, DBT, FIXTURES, VENV_PY, git, make_repo, run, setup_job


def wrapper(workdir, after_build, name="dbt-wrapper"):
    """A --dbt that runs the real dbt, then some shell after `dbt build`."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\n{DBT} "$@"\nrc=$?\nif [ "$1" = build ]; then\n{after_build}\nfi\n'
                "exit $rc\n")
    os.chmod(path, 0o755)
    return path


def add_broken_model(repo):
    with open(os.path.join(FIXTURES, "bad_model.sql")) as src, \
            open(os.path.join(repo, "models", "marts", "broken.sql"), "w") as dst:
        dst.write(src.read())
    # a model downstream of the broken one, so the failure has an impact
    with open(os.path.join(repo, "models", "marts", "after_broken.sql"), "w") as f:
        f.write("select * from {{ ref('broken') }}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken model and one downstream")


@pytest.fixture
def built(dbtd, repo, workdir):
    setup_job(dbtd, repo, workdir)
    r = dbtd.json("job", "run", "nightly", "--wait")
    assert r["status"] == "completed"
    return r


def lineage(d, run_id, *args):
    return d.json("run", "lineage", run_id, "--format", "json", *args)


def test_lineage_graph_of_a_run(dbtd, built):
    g = lineage(dbtd, built["id"], "--tests")
    nodes = {n["unique_id"]: n for n in g["nodes"]}
    types = sorted({n["resource_type"] for n in g["nodes"]})
    assert types == ["model", "seed", "test"]
    assert nodes["model.jaffle_shop.orders"]["status"] == "success"
    assert nodes["seed.jaffle_shop.raw_orders"]["status"] == "success"
    assert all(n["status"] in ("success", "pass") for n in g["nodes"])
    edges = {tuple(e) for e in g["edges"]}
    assert ("seed.jaffle_shop.raw_orders", "model.jaffle_shop.stg_orders") in edges
    assert ("model.jaffle_shop.stg_orders", "model.jaffle_shop.orders") in edges
    assert all(a in nodes and b in nodes for a, b in edges)
    # tests are hidden unless asked for
    plain = lineage(dbtd, built["id"])
    assert {n["resource_type"] for n in plain["nodes"]} == {"model", "seed"}
    assert len(plain["nodes"]) == 8
    # text view: by layers, seeds first, final models last, with status marks
    text = dbtd.ok("run", "lineage", built["id"]).stdout

    def pos(name):
        return re.search(r"\b%s\b" % name, text).start()
    assert pos("raw_orders") < pos("stg_orders") < pos("customers")


def test_lineage_formats_render(dbtd, built, workdir):
    dot = dbtd.ok("run", "lineage", built["id"], "--format", "dot").stdout
    assert dot.lstrip().startswith("digraph")
    svg = os.path.join(workdir, "g.svg")
    p = subprocess.run(["dot", "-Tsvg", "-o", svg], input=dot, text=True, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert "<svg" in open(svg).read()
    mer = dbtd.ok("run", "lineage", built["id"], "--format", "mermaid").stdout
    assert mer.lstrip().startswith(("graph", "flowchart"))
    assert "-->" in mer


# `dbt ls` for many selections in one Python process (dbt's own programmatic
# entry point): the same selection code as the command, without paying
# dbt's start-up once per selection.
DBT_LS = """
import json, sys
from dbt.cli.main import dbtRunner
project, profiles, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
runner, out = dbtRunner(), {}
for spec in specs:
    res = runner.invoke(["ls", "--select", spec, "--resource-type", "model", "--output",
                         "name", "--project-dir", project, "--profiles-dir", profiles,
                         "--quiet"])
    if not res.success:
        raise SystemExit(f"dbt ls --select {spec} failed: {res.exception}")
    out[spec] = sorted(str(n) for n in res.result)
print(json.dumps(out))
"""


def dbt_ls_models(repo_copy, profiles, specs):
    """{spec: sorted model names} as `dbt ls --select spec` gives them."""
    p = run([VENV_PY, "-c", DBT_LS, repo_copy, profiles] + list(specs),
            env=dict(BASE_ENV, DBT_USE_COLORS="false"), cwd=repo_copy)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_select_matches_dbt_ls(dbtd, built, repo, workdir):
    """For every seed and model, --select name+ gives the models dbt ls gives."""
    copy = os.path.join(workdir, "lsproject")
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    profiles = os.path.join(workdir, "lsprofiles")
    os.mkdir(profiles)
    with open(os.path.join(profiles, "profiles.yml"), "w") as f:
        f.write("jaffle_shop:\n  target: t\n  outputs:\n    t:\n      type: duckdb\n"
                f"      path: {os.path.join(workdir, 'ls.duckdb')}\n")
    g = lineage(dbtd, built["id"])
    names = [n["name"] for n in g["nodes"] if n["resource_type"] in ("model", "seed")]
    assert len(names) == 8
    specs = [s for name in names for s in (name + "+", "+" + name, "+" + name + "+")]
    theirs = dbt_ls_models(copy, profiles, specs)
    assert len(theirs) == len(specs) == 24
    for spec in specs:
        ours = sorted(n["name"] for n in lineage(dbtd, built["id"], "--select", spec)["nodes"]
                      if n["resource_type"] == "model")
        assert ours == theirs[spec], spec
    # depth-limited operators
    one = lineage(dbtd, built["id"], "--select", "raw_orders+1")
    assert sorted(n["name"] for n in one["nodes"]) == ["raw_orders", "stg_orders"]
    up = lineage(dbtd, built["id"], "--select", "1+orders")
    assert sorted(n["name"] for n in up["nodes"]) == ["orders", "stg_orders", "stg_payments"]
    assert dbtd.ctl("run", "lineage", built["id"], "--select", "no_such_model").returncode in (1, 4)


def test_impact_of_a_failed_model(dbtd, repo, workdir):
    add_broken_model(repo)
    setup_job(dbtd, repo, workdir)
    r = json.loads(dbtd.ctl("--json", "job", "run", "nightly", "--wait").stdout)
    assert r["status"] == "failed"
    g = lineage(dbtd, r["id"], "--impact")
    nodes = {n["name"]: n for n in g["nodes"]}
    assert nodes["broken"]["status"] == "error"
    assert nodes["after_broken"]["status"] == "skipped"
    impact = g["impact"]
    assert impact == {"model.jaffle_shop.broken": ["model.jaffle_shop.after_broken"]}
    text = dbtd.ok("run", "lineage", r["id"], "--impact").stdout
    assert "broken" in text and "after_broken" in text
    dot = dbtd.ok("run", "lineage", r["id"], "--impact", "--format", "dot").stdout
    assert "after_broken" in dot
    assert "after_broken" in dbtd.ok("run", "lineage", r["id"], "--impact",
                                     "--format", "mermaid").stdout


def test_broken_manifest_never_fails_the_run(dbtd, repo, workdir):
    dbt = wrapper(workdir, "printf '{\"nodes\": {\"model.x' > target/manifest.json")
    setup_job(dbtd, repo, workdir, dbt=dbt)
    r = dbtd.json("job", "run", "nightly", "--wait")
    assert r["status"] == "completed"
    p = dbtd.ctl("run", "lineage", r["id"])
    assert p.returncode == 1
    assert f"no lineage for run {r['id']}: " in p.stdout + p.stderr
    assert "manifest.json" in p.stdout + p.stderr


def test_artifacts_are_listed_served_and_stored_once(dbtd, built, workdir):
    arts = dbtd.json("run", "artifacts", built["id"])
    paths = {a["path"]: a["size"] for a in arts}
    for p in ("target/manifest.json", "target/run_results.json", "logs/dbt.log",
              "target/compiled/jaffle_shop/models/marts/orders.sql",
              "target/run/jaffle_shop/models/marts/orders.sql"):
        assert p in paths, p
    assert all(not p.startswith("/") and ".." not in p for p in paths)
    sql = dbtd.ok("run", "artifact", built["id"],
                  "target/compiled/jaffle_shop/models/marts/orders.sql").stdout
    assert "stg_orders" in sql and len(sql.encode()) == \
        paths["target/compiled/jaffle_shop/models/marts/orders.sql"]
    out = os.path.join(workdir, "manifest.json")
    dbtd.ok("run", "artifact", built["id"], "target/manifest.json", "--output", out)
    assert os.path.getsize(out) == paths["target/manifest.json"]
    assert json.load(open(out))["metadata"]["dbt_version"]
    # search by partial, case-insensitive file name, in both views
    found = dbtd.json("run", "artifacts", built["id"], "--search", "ORDERS.sql")
    assert found and all("orders.sql" in a["path"].lower() for a in found)
    tree = dbtd.ok("run", "artifacts", built["id"], "--tree").stdout
    assert "compiled" in tree and "marts" in tree and "orders.sql" in tree
    tree = dbtd.ok("run", "artifacts", built["id"], "--tree", "--search", "manifest").stdout
    assert "manifest.json" in tree and "orders.sql" not in tree
    # a second run stores only what changed
    again = dbtd.json("job", "run", "nightly", "--wait")
    n2 = len(dbtd.json("run", "artifacts", again["id"]))
    blobs = sum(len(f) for _, _, f in os.walk(os.path.join(dbtd.state, "blobs")))
    assert blobs < len(arts) + n2


def test_artifact_paths_are_checked(dbtd, built):
    for bad in ("../etc/passwd", "/etc/passwd", "target/../../etc/passwd"):
        p = dbtd.ctl("run", "artifact", built["id"], bad)
        assert p.returncode == 2, bad
        assert "not valid" in p.stderr
    p = dbtd.ctl("run", "artifact", built["id"], "target/nope.json")
    assert p.returncode == 4 and "has no artifact target/nope.json" in p.stderr
    assert dbtd.ctl("run", "artifacts", 999).returncode == 4


def test_symlinks_out_of_target_are_not_kept(dbtd, repo, workdir):
    dbt = wrapper(workdir, "ln -s /etc target/etc_dir\nln -s /etc/passwd target/passwd")
    setup_job(dbtd, repo, workdir, dbt=dbt)
    r = dbtd.json("job", "run", "nightly", "--wait")
    assert r["status"] == "completed"
    paths = [a["path"] for a in dbtd.json("run", "artifacts", r["id"])]
    assert not any(p.startswith(("target/etc_dir", "target/passwd")) for p in paths)
    assert "target/manifest.json" in paths
    log = dbtd.ok("run", "logs", r["id"], "--search", "symlink").stdout
    assert "target/passwd" in log


def test_failed_run_keeps_its_artifacts(dbtd, repo, workdir):
    add_broken_model(repo)
    setup_job(dbtd, repo, workdir)
    r = json.loads(dbtd.ctl("--json", "job", "run", "nightly", "--wait").stdout)
    assert r["status"] == "failed"
    results = json.loads(dbtd.ok("run", "artifact", r["id"], "target/run_results.json").stdout)
    st = {x["unique_id"]: x["status"] for x in results["results"]}
    assert st["model.jaffle_shop.broken"] == "error"
    assert not os.listdir(os.path.join(dbtd.state, "work"))
