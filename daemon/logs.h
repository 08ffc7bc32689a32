/*
 * logs.h - streaming a run's step logs to clients: what is stored, read
 * from LMDB as fast as the client takes it, then (with follow) the lines the
 * run produces, pushed as they arrive, until the run ends.
 */
#ifndef DBTD_LOGS_H
#define DBTD_LOGS_H

#include <stddef.h>
#include <stdint.h>

#include "dbtd.pb-c.h"

struct daemon;
struct client;
struct logs;

/* logs_new / logs_free - the set of open log streams. */
int logs_new(struct logs **out, struct daemon *d);
void logs_free(struct logs *l);

/*
 * logs_open - start streaming req's run to c.  Replies an error itself
 * (no such run, a stream already open on c).
 */
void logs_open(struct logs *l, struct client *c, const Dbtd__ReadLogs *req);

/*
 * logs_push - a chunk of run's step log was just stored under seq: send it
 * to the followers that are caught up.
 */
void logs_push(struct logs *l, uint64_t run, uint32_t step, uint32_t seq,
               const uint8_t *data, size_t len);

/* logs_run_ended - run reached its final state: finish its followers. */
void logs_run_ended(struct logs *l, const Dbtd__Run *run);

/* logs_forget_client - c is going away. */
void logs_forget_client(struct logs *l, struct client *c);

#endif /* DBTD_LOGS_H */
