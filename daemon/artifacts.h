/*
 * artifacts.h - serving what a run left: its lineage graph, the list of
 * files dbt wrote, and one file's content streamed from the blob store.
 */
#ifndef DBTD_ARTIFACTS_H
#define DBTD_ARTIFACTS_H

#include "dbtd.pb-c.h"

struct daemon;
struct client;

/* artifacts_lineage - reply with the run's Lineage (its error says why there is none). */
void artifacts_lineage(struct daemon *d, struct client *c, const Dbtd__RunRef *ref);

/* artifacts_list - reply with the run's ArtifactList, by path. */
void artifacts_list(struct daemon *d, struct client *c, const Dbtd__RunRef *ref);

/*
 * artifacts_send - stream one artifact's content as blob frames, the last
 * with end set.  A path with "..", a leading "/" or a NUL is refused
 * (ERROR_BAD_REQUEST); an unknown one is ERROR_NOT_FOUND.
 */
void artifacts_send(struct daemon *d, struct client *c, const Dbtd__ArtifactRef *ref);

/* artifacts_forget_client - c is going away: close its open file, if any. */
void artifacts_forget_client(struct daemon *d, struct client *c);

#endif /* DBTD_ARTIFACTS_H */
