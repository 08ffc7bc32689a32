/*
 * lineage.h - a run's model graph from dbt's target/ files: the nodes and
 * edges of manifest.json, with the statuses of run_results.json.
 *
 * The graph is a Dbtd__Lineage (proto/dbtd.proto): nodes sorted by
 * unique_id, edges parent -> child as indexes into nodes.  It is built with
 * malloc'd fields, so dbtd__lineage__free_unpacked(l, NULL) frees it like
 * any unpacked message.
 *
 * The files are read into memory once and walked member by member: each
 * entry of "nodes", "sources", "exposures" (and of every other top-level
 * object) is parsed by jansson on its own and released right away, so the
 * peak memory is about the file's size plus the largest single entry, not
 * a JSON tree of the whole manifest (7-8 times the file).  All of the file
 * is still checked to be valid JSON.
 */
#ifndef DBTD_LINEAGE_H
#define DBTD_LINEAGE_H

#include "dbtd.pb-c.h"

/*
 * lineage_read - the graph of <target_dir>/manifest.json, with the statuses
 * of <target_dir>/run_results.json when that file exists.
 *
 * Nodes: the entries of the manifest's "nodes" whose resource_type is
 * model, seed, snapshot or test (analyses, operations, ... are left out),
 * of "sources" and of "exposures"; per node unique_id, resource_type, name,
 * package (package_name), materialization (config.materialized, "" when
 * absent) and original_file_path.  Sorted by unique_id (byte order); an id
 * listed twice is kept once (the later entry, as JSON objects do).
 *
 * Edges: parent -> child for each id in a node's depends_on.nodes when
 * both ends are nodes of the graph; sorted by (parent, child), no
 * duplicates.
 *
 * Statuses: each node listed in run_results.json's "results" gets its
 * status (success, error, skipped, pass, fail, warn, no-op, ...) and
 * execution_time (seconds).  Nodes that did not run keep status "".  A
 * missing, unreadable or corrupt run_results.json is not an error: then no
 * node has a status.
 *
 * Arguments: target_dir is dbt's target path (the files are named relative
 * to its last component in messages, e.g. "target/manifest.json").  On
 * success *out is the graph, which the caller frees with
 * dbtd__lineage__free_unpacked(*out, NULL); its error and step fields are
 * left empty for the caller.  why may be NULL; otherwise *why is set to
 * NULL on success and, on failure, to a malloc'd sentence for the user
 * (the caller frees it; NULL if even that could not be allocated).
 *
 * Returns 0, or a negative errno with *out NULL:
 *   -ENOENT    manifest.json is missing ("... is missing (dbt did not get
 *              far enough to write it)")
 *   -EBADMSG   it is empty, not valid JSON ("... is not valid JSON: <what>
 *              at line L column C"), or valid JSON without a "nodes" object
 *              ("... has no "nodes": not a dbt manifest")
 *   -ENOMEM    out of memory
 *   other      it could not be opened or read ("cannot read ...: <strerror>")
 * It never aborts on bad input.
 */
int lineage_read(const char *target_dir, Dbtd__Lineage **out, char **why);

/*
 * lineage_merge_status - for runs with several dbt steps: every node of
 * `into` (the graph of the latest manifest) that has no status takes the
 * status and execution_time of the node with the same unique_id in `older`
 * (the graph of an earlier step), when that one has a status.  Nodes that
 * have a status keep it; older is not changed and need not be sorted.
 *
 * Returns 0, or -ENOMEM (then `into` may have taken some of the statuses).
 */
int lineage_merge_status(Dbtd__Lineage *into, const Dbtd__Lineage *older);

#endif /* DBTD_LINEAGE_H */
