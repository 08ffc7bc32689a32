/*
 * errors.c - the one place an error of the store or the engine becomes a
 * wire Error: kinds mapped to codes, and the sentences the api repeats.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "api_int.h"
#include "server.h"
#include "store.h"

/* The wire code of an error kind: the one mapping. */
static Dbtd__ErrorCode
wire_code(enum err_kind kind)
{
	switch (kind) {
	case ERR_INVALID: return DBTD__ERROR_CODE__ERROR_BAD_REQUEST;
	case ERR_NOT_FOUND: return DBTD__ERROR_CODE__ERROR_NOT_FOUND;
	case ERR_EXISTS: return DBTD__ERROR_CODE__ERROR_EXISTS;
	case ERR_CONFLICT: return DBTD__ERROR_CODE__ERROR_CONFLICT;
	case ERR_FAILED: case ERR_NO_SPACE: case ERR_LIMIT:
		return DBTD__ERROR_CODE__ERROR_FAILED;
	case ERR_UNSUPPORTED: return DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED;
	case ERR_DAMAGED: return DBTD__ERROR_CODE__ERROR_DAMAGED;
	case ERR_NONE: case ERR_INTERNAL: break;
	}
	return DBTD__ERROR_CODE__ERROR_INTERNAL;
}

void
api_error(struct client *c, const struct err *e)
{
	client_error(c, wire_code(e->kind), "%s", e->msg[0] ? e->msg : err_kind_name(e->kind));
}

void
api_fail(struct client *c, enum err_kind kind, const char *fmt, ...)
{
	struct err e;
	va_list ap;

	e.kind = kind;
	e.rc = -EINVAL;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	api_error(c, &e);
}

void
api_store_fail(struct api *a, struct client *c, int rc, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	api_fail(c, store_err_kind(rc), "%s: %s", what, store_error(a->store, rc));
}

void
api_run_error(struct api *a, struct client *c, int rc, uint64_t id)
{
	if (rc == -ENOENT)
		api_fail(c, ERR_NOT_FOUND, "no run %llu; see dbtctl run list", (unsigned long long)id);
	else
		api_store_fail(a, c, rc, "cannot read run %llu", (unsigned long long)id);
}

void
api_stream_busy(struct client *c)
{
	api_fail(c, ERR_CONFLICT, "a stream (logs, an artifact, a list or a watched run) is already "
	         "open on this connection; open another connection for a second one");
}
