/*
 * lineage.h - `dbtctl run lineage`: a run's model graph (dbtd's Lineage of
 * the run), narrowed with dbt's selection syntax, with the downstream
 * impact of failed nodes, printed as text by layer, Graphviz dot, Mermaid
 * or JSON.
 */
#ifndef DBTCTL_LINEAGE_H
#define DBTCTL_LINEAGE_H

#include "commands.h"

/*
 * cmd_run_lineage - `run lineage ID [--format text|dot|mermaid|json]
 * [--select SPEC]... [--impact] [--tests]`.  Exit status: 0; 1 when the run
 * has no lineage or a selector matches no node; 2 usage error; 3, 4 as
 * every command.
 */
int cmd_run_lineage(struct dbtctl_opts *o, const struct command *cmd, int argc,
                    char **argv);

#endif /* DBTCTL_LINEAGE_H */
