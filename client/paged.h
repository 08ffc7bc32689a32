/*
 * paged.h - replies dbtd sends in several frames when asked to
 * (RunRef.stream): a run's artifact list and its lineage graph, read to the
 * end and put together into the one message an older dbtd sent whole.
 */
#ifndef DBTCTL_PAGED_H
#define DBTCTL_PAGED_H

#include "commands.h"
#include "conn.h"

/*
 * request_paged - request() for a reply `want` (DBTD__RESPONSE__BODY_ARTIFACTS
 * or _LINEAGE) that may come in frames: reads them up to the one with `end`,
 * or to one without `more` (an older dbtd's whole reply), each within the
 * connection's timeout, and appends their items (artifacts; nodes, then
 * edges) to the first frame's message, which keeps its other fields.
 * 0 with *out and c open (free both with request_done), or the exit status
 * after printing why (c closed).
 */
int request_paged(const struct dbtctl_opts *o, struct conn *c, const Dbtd__Request *req,
                  Dbtd__Response__BodyCase want, const char *hint, Dbtd__Response **out);

#endif /* DBTCTL_PAGED_H */
