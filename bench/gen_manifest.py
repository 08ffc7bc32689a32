#!/usr/bin/env python3
"""Generate a synthetic dbt manifest.json (schema v12-like) for benchmarks.

usage: gen_manifest.py N_MODELS [OUT] [--depth D] [--seed S]

Models are arranged in D layers (default 25, so the DAG depth is >= 20); each
model in layer k>0 depends on 1-3 models of earlier layers (at least one from
layer k-1), layer-0 models depend on sources. Output is compact JSON like the
file dbt writes. Deterministic for a given (N, depth, seed).
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out", nargs="?", default="-")
    ap.add_argument("--depth", type=int, default=25)
    ap.add_argument("--seed", type=int, default=12345)
    a = ap.parse_args()
    rng = random.Random(a.seed)
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
            child_map[d].append(uid)

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
        "nodes": nodes, "sources": sources, "macros": {}, "docs": {}, "exposures": {},
        "metrics": {}, "groups": {}, "selectors": {}, "disabled": {},
        "parent_map": parent_map, "child_map": child_map, "group_map": {},
        "saved_queries": {}, "semantic_models": {}, "unit_tests": {}, "functions": {},
    }
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    json.dump(manifest, out, separators=(",", ":"))
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
