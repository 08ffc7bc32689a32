/* err.c - the one error type of dbtd's store and engine (see err.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "err.h"

int
err_set(struct err *e, int rc, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (rc >= 0)
		rc = -EINVAL;
	if (e) {
		e->kind = kind;
		e->rc = rc;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

void
err_clear(struct err *e)
{
	if (e) {
		e->kind = ERR_NONE;
		e->rc = 0;
		e->msg[0] = '\0';
	}
}

const char *
err_kind_name(enum err_kind kind)
{
	switch (kind) {
	case ERR_NONE: return "no error";
	case ERR_INVALID: return "invalid";
	case ERR_NOT_FOUND: return "not found";
	case ERR_EXISTS: return "exists";
	case ERR_CONFLICT: return "conflict";
	case ERR_FAILED: return "failed";
	case ERR_NO_SPACE: return "no space";
	case ERR_LIMIT: return "limit reached";
	case ERR_UNSUPPORTED: return "unsupported";
	case ERR_INTERNAL: return "internal";
	case ERR_DAMAGED: return "store damaged";
	}
	return "unknown";
}
