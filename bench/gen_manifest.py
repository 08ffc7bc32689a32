#!/usr/bin/env python3
"""Generate a synthetic dbt manifest.json (schema v12-like) for benchmarks.

usage: gen_manifest.py N_MODELS [OUT] [--depth D] [--seed S] [--seeds N]
                       [--tests K] [--exposures N] [--run-results PATH]

Models are arranged in D layers (default 25, so the DAG depth is >= 20); each
model in layer k>0 depends on 1-3 models of earlier layers (at least one from
layer k-1), layer-0 models depend on sources. Output is compact JSON like the
file dbt writes. Deterministic for a given set of arguments.

Extras, off by default so the plain output stays what earlier measurements
used: --seeds N adds N seeds (each layer-0 model also reads one), --tests K
adds K generic data tests per model, --exposures N adds N exposures on models
of the last layer, --run-results PATH writes a matching run_results.json
(every seed, model, test and exposure with a status and execution_time;
mostly success/pass, a few error, skipped, fail, warn).
"""
import argparse
import json
import random
import sys

PKG = "bench_project"
WORDS = ("order customer payment invoice shipment product region account "
         "session event refund discount channel campaign ledger balance").split()
TYPES = ["integer", "bigint", "varchar", "timestamp", "date", "numeric(18,2)", "boolean"]


def config(materialized, rng):
    return {
        "enabled": True, "alias": None, "schema": None, "database": None,
        "tags": [], "meta": {}, "group": None, "materialized": materialized,
        "incremental_strategy": None, "batch_size": None, "lookback": 1,
        "begin": None, "persist_docs": {}, "post-hook": [], "pre-hook": [],
        "quoting": {}, "column_types": {}, "full_refresh": None,
        "unique_key": None, "on_schema_change": "ignore",
        "on_configuration_change": "apply", "grants": {}, "packages": [],
        "docs": {"show": True, "node_color": None},
        "contract": {"enforced": False, "alias_types": True},
        "event_time": None, "concurrent_batches": None, "access": "protected",
        "freshness": None,
    }


def columns(rng, n):
    cols = {}
    for j in range(n):
        name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{j}"
        cols[name] = {
            "name": name,
            "description": f"The {name.replace('_', ' ')} of the row, "
                           f"as delivered by the upstream system.",
            "meta": {}, "data_type": rng.choice(TYPES), "constraints": [],
            "quote": None, "config": {"meta": {}, "tags": []}, "tags": [],
            "granularity": None, "doc_blocks": [],
        }
    return cols


def sql(name, parents, rng):
    cols = ",\n    ".join(f"{rng.choice(WORDS)}_{rng.choice(WORDS)} as c{k}"
                          for k in range(rng.randint(6, 12)))
    joins = "\n".join(f"left join {{{{ ref('{p}') }}}} as p{k} on p{k}.id = base.id"
                      for k, p in enumerate(parents[1:]))
    raw = (f"-- model {name}\nwith base as (\n  select * from {{{{ ref('{parents[0]}') }}}}\n)\n"
           f"select\n    base.id,\n    {cols}\nfrom base\n{joins}\nwhere base.id is not null\n")
    comp = raw.replace("{{ ref('", '"bench"."analytics"."').replace("') }}", '"')
    return raw, comp


def test_node(i, k, model_uid, model_name, rng):
    kind = ("not_null", "unique", "accepted_values")[k % 3]
    name = f"{kind}_{model_name}_id" + (f"_{k}" if k >= 3 else "")
    uid = f"test.{PKG}.{name}.{rng.getrandbits(40):010x}"
    comp = (f"select id from \"bench\".\"analytics\".\"{model_name}\"\n"
            f"where id is null\n")
    return uid, {
        "database": "bench", "schema": "analytics_dbt_test__audit", "name": name,
        "resource_type": "test", "package_name": PKG, "path": f"{name}.sql",
        "original_file_path": "models/schema.yml", "unique_id": uid,
        "fqn": [PKG, name], "alias": name,
        "checksum": {"name": "none", "checksum": ""},
        "config": {"enabled": True, "alias": None, "schema": "dbt_test__audit",
                   "database": None, "tags": [], "meta": {}, "group": None,
                   "materialized": "test", "severity": "ERROR",
                   "store_failures": None, "store_failures_as": None,
                   "where": None, "limit": None, "fail_calc": "count(*)",
                   "warn_if": "!= 0", "error_if": "!= 0"},
        "tags": [], "description": "", "columns": {}, "meta": {}, "group": None,
        "docs": {"show": True, "node_color": None}, "patch_path": None,
        "build_path": None, "unrendered_config": {}, "created_at": 1700000000.0 + i,
        "relation_name": None,
        "raw_code": "{{ test_" + kind + "(**_dbt_generic_test_kwargs) }}",
        "doc_blocks": [], "language": "sql",
        "refs": [{"name": model_name, "package": None, "version": None}],
        "sources": [], "metrics": [], "functions": [],
        "depends_on": {"macros": [f"macro.dbt.test_{kind}"], "nodes": [model_uid]},
        "compiled_path": f"target/compiled/{PKG}/models/schema.yml/{name}.sql",
        "compiled": True, "compiled_code": comp, "extra_ctes_injected": True,
        "extra_ctes": [], "contract": {"enforced": False, "alias_types": True, "checksum": None},
        "column_name": "id", "file_key_name": f"models.{model_name}",
        "attached_node": model_uid,
        "test_metadata": {"name": kind, "kwargs": {"column_name": "id"}, "namespace": None},
    }


def seed_node(i):
    name = f"seed_{i:04d}"
    uid = f"seed.{PKG}.{name}"
    return uid, {
        "database": "bench", "schema": "raw", "name": name, "resource_type": "seed",
        "package_name": PKG, "path": f"{name}.csv", "original_file_path": f"seeds/{name}.csv",
        "unique_id": uid, "fqn": [PKG, name], "alias": name,
        "checksum": {"name": "sha256", "checksum": "0" * 64},
        "config": {"enabled": True, "materialized": "seed", "column_types": {},
                   "delimiter": ",", "quote_columns": None, "tags": [], "meta": {}},
        "tags": [], "description": "", "columns": {}, "meta": {}, "group": None,
        "docs": {"show": True, "node_color": None}, "patch_path": None,
        "build_path": None, "unrendered_config": {}, "created_at": 1700000000.0 + i,
        "relation_name": f'"bench"."raw"."{name}"', "raw_code": "", "doc_blocks": [],
        "root_path": "/srv/bench", "depends_on": {"macros": []},
    }


def exposure(i, deps):
    name = f"dashboard_{i:04d}"
    uid = f"exposure.{PKG}.{name}"
    return uid, {
        "name": name, "resource_type": "exposure", "package_name": PKG,
        "path": "exposures.yml", "original_file_path": "models/exposures.yml",
        "unique_id": uid, "fqn": [PKG, name], "type": "dashboard",
        "owner": {"email": "analytics@example.com", "name": "Analytics"},
        "description": "", "label": None, "maturity": None, "meta": {}, "tags": [],
        "config": {"enabled": True, "tags": [], "meta": {}}, "unrendered_config": {},
        "url": None, "depends_on": {"macros": [], "nodes": deps},
        "refs": [{"name": d.rsplit(".", 1)[1], "package": None, "version": None} for d in deps],
        "sources": [], "metrics": [], "created_at": 1700000000.0 + i,
    }


def run_results(manifest, rng):
    """A run_results.json for every seed, model, test and exposure."""
    results = []
    t = 0.0
    every = list(manifest["nodes"].values()) + list(manifest["exposures"].values())
    for n in every:
        rt = n["resource_type"]
        roll = rng.random()
        if rt == "test":
            status = "fail" if roll < 0.01 else "warn" if roll < 0.02 else "pass"
        elif rt == "exposure":
            status = "no-op"
        else:
            status = "error" if roll < 0.01 else "skipped" if roll < 0.03 else "success"
        dur = 0.0 if status == "skipped" else round(rng.uniform(0.01, 3.0), 6)
        t += dur
        results.append({
            "status": status,
            "timing": [] if status == "skipped" else [
                {"name": "compile", "started_at": "2025-01-01T00:00:00.000000Z",
                 "completed_at": "2025-01-01T00:00:00.010000Z"},
                {"name": "execute", "started_at": "2025-01-01T00:00:00.010000Z",
                 "completed_at": "2025-01-01T00:00:01.000000Z"}],
            "thread_id": f"Thread-{rng.randint(1, 8)} (worker)",
            "execution_time": dur,
            "adapter_response": {} if status == "skipped" else {"_message": "OK"},
            "message": None if status in ("skipped", "no-op") else "OK",
            "failures": (1 if status in ("fail", "warn") else 0) if rt == "test" else None,
            "unique_id": n["unique_id"],
            "compiled": rt in ("model", "test"),
            "compiled_code": n.get("compiled_code"),
            "relation_name": n.get("relation_name"),
            "batch_results": None,
        })
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.11.16", "generated_at": "2025-01-01T01:00:00.000000Z",
            "invocation_id": "00000000-0000-4000-8000-000000000000",
            "invocation_started_at": "2025-01-01T00:00:00.000000Z", "env": {},
        },
        "results": results, "elapsed_time": t,
        "args": {"which": "build", "invocation_command": "dbt build"},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out", nargs="?", default="-")
    ap.add_argument("--depth", type=int, default=25)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--seeds", type=int, default=0, metavar="N")
    ap.add_argument("--tests", type=int, default=0, metavar="K")
    ap.add_argument("--exposures", type=int, default=0, metavar="N")
    ap.add_argument("--run-results", metavar="PATH")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    # the extras draw from their own generator so the models stay the same
    xrng = random.Random(a.seed + 1)
    seeds = dict(seed_node(i) for i in range(a.seeds))
    seed_ids = sorted(seeds)
    n, depth = a.n, max(1, min(a.depth, a.n))

    sources = {}
    src_ids = []
    for i in range(max(10, n // 100)):
        uid = f"source.{PKG}.raw.table_{i}"
        src_ids.append(uid)
        sources[uid] = {
            "database": "bench", "schema": "raw", "name": f"table_{i}",
            "resource_type": "source", "package_name": PKG,
            "path": "models/sources.yml", "original_file_path": "models/sources.yml",
            "unique_id": uid, "fqn": [PKG, "raw", f"table_{i}"],
            "source_name": "raw", "source_description": "", "loader": "",
            "identifier": f"table_{i}", "quoting": {}, "loaded_at_field": None,
            "freshness": {"warn_after": {"count": None, "period": None},
                          "error_after": {"count": None, "period": None}, "filter": None},
            "external": None, "description": "", "columns": columns(rng, 4),
            "meta": {}, "source_meta": {}, "tags": [], "config": {"enabled": True},
            "patch_path": None, "unrendered_config": {}, "relation_name": f'"bench"."raw"."table_{i}"',
            "created_at": 1700000000.0 + i,
        }

    layers = [[] for _ in range(depth)]
    nodes = {}
    parent_map = {u: [] for u in src_ids}
    child_map = {u: [] for u in src_ids}
    for i in range(n):
        layer = i * depth // n
        name = f"model_{i:06d}"
        uid = f"model.{PKG}.{name}"
        if layer == 0:
            deps = sorted(set(rng.sample(src_ids, rng.randint(1, 2))))
            if seed_ids:
                deps = sorted(deps + [xrng.choice(seed_ids)])
            parents = [s.rsplit(".", 1)[1] for s in deps]
        else:
            deps = [rng.choice(layers[layer - 1])]
            for _ in range(rng.randint(0, 2)):
                deps.append(rng.choice(layers[rng.randrange(layer)]))
            deps = sorted(set(deps))
            parents = [d.rsplit(".", 1)[1] for d in deps]
        layers[layer].append(uid)
        raw, comp = sql(name, parents, rng)
        mat = rng.choice(["view", "table", "table", "incremental"])
        path = f"models/layer_{layer:02d}/{name}.sql"
        nodes[uid] = {
            "database": "bench", "schema": "analytics", "name": name,
            "resource_type": "model", "package_name": PKG, "path": path[7:],
            "original_file_path": path, "unique_id": uid,
            "fqn": [PKG, f"layer_{layer:02d}", name], "alias": name,
            "checksum": {"name": "sha256", "checksum": "%064x" % rng.getrandbits(256)},
            "config": config(mat, rng), "tags": [],
            "description": f"Layer {layer} model {i}.", "columns": columns(rng, rng.randint(3, 8)),
            "meta": {}, "group": None, "docs": {"show": True, "node_color": None},
            "patch_path": None, "build_path": None, "unrendered_config": {"materialized": mat},
            "created_at": 1700000000.0 + i, "relation_name": f'"bench"."analytics"."{name}"',
            "raw_code": raw, "doc_blocks": [], "language": "sql",
            "refs": [{"name": p, "package": None, "version": None} for p in parents if not p.startswith("table_")],
            "sources": [["raw", p] for p in parents if p.startswith("table_")],
            "metrics": [], "functions": [],
            "depends_on": {"macros": [], "nodes": deps},
            "compiled_path": f"target/compiled/{PKG}/{path}", "compiled": True,
            "compiled_code": comp, "extra_ctes_injected": True, "extra_ctes": [],
            "contract": {"enforced": False, "alias_types": True, "checksum": None},
            "access": "protected", "constraints": [], "version": None,
            "latest_version": None, "deprecation_date": None, "primary_key": ["id"],
            "time_spine": None,
        }
        parent_map[uid] = deps
        child_map[uid] = []
        for d in deps:
            child_map.setdefault(d, []).append(uid)

    tests = {}
    for i in range(n):
        muid = f"model.{PKG}.model_{i:06d}"
        for k in range(a.tests):
            tuid, t = test_node(i, k, muid, f"model_{i:06d}", xrng)
            tests[tuid] = t
            parent_map[tuid] = [muid]
            child_map[tuid] = []
            child_map[muid].append(tuid)
    for uid, sd in seeds.items():
        parent_map[uid] = []
        child_map.setdefault(uid, [])
    exposures = {}
    for i in range(a.exposures):
        deps = sorted(set(xrng.sample(layers[-1], min(len(layers[-1]), xrng.randint(1, 4)))))
        euid, e = exposure(i, deps)
        exposures[euid] = e
        parent_map[euid] = deps
        for d in deps:
            child_map[d].append(euid)
    if seeds or tests:
        nodes = {**seeds, **nodes, **tests}

    manifest = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.11.16", "generated_at": "2025-01-01T00:00:00.000000Z",
            "invocation_id": "00000000-0000-4000-8000-000000000000",
            "invocation_started_at": "2025-01-01T00:00:00.000000Z",
            "env": {}, "project_name": PKG, "project_id": "0" * 32,
            "user_id": None, "send_anonymous_usage_stats": False, "adapter_type": "duckdb",
            "quoting": {"database": True, "schema": True, "identifier": True, "column": None},
        },
        "nodes": nodes, "sources": sources, "macros": {}, "docs": {}, "exposures": exposures,
        "metrics": {}, "groups": {}, "selectors": {}, "disabled": {},
        "parent_map": parent_map, "child_map": child_map, "group_map": {},
        "saved_queries": {}, "semantic_models": {}, "unit_tests": {}, "functions": {},
    }
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    json.dump(manifest, out, separators=(",", ":"))
    if out is not sys.stdout:
        out.close()
    if a.run_results:
        with open(a.run_results, "w") as rr:
            json.dump(run_results(manifest, xrng), rr, separators=(",", ":"))


if __name__ == "__main__":
    main()
