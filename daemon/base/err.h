/*
 * err.h - the one error type of dbtd's store and engine: what kind of
 * failure (which the api layer turns into a wire Error in one place), the
 * errno-style code, and a sentence for a person.
 */
#ifndef DBTD_ERR_H
#define DBTD_ERR_H

/* What went wrong, as the client is told (api/ maps these to wire codes). */
enum err_kind {
	ERR_NONE = 0,
	ERR_INVALID,      /* the request is malformed or not allowed as given */
	ERR_NOT_FOUND,    /* no such object */
	ERR_EXISTS,       /* an object of that name exists */
	ERR_CONFLICT,     /* not allowed in the object's current state */
	ERR_FAILED,       /* the operation ran and failed */
	ERR_NO_SPACE,     /* the disk or the store's map is full: nothing was saved */
	ERR_LIMIT,        /* a size or count limit was reached */
	ERR_UNSUPPORTED,  /* this dbtd does not do that */
	ERR_INTERNAL,     /* dbtd could not do it */
	ERR_DAMAGED,      /* the store is damaged: a page or a record cannot be read */
};

struct err {
	enum err_kind kind;
	int rc;           /* negative errno (or a store code), 0 when none */
	char msg[512];
};

/*
 * err_set - fill e (when not NULL) with kind, rc and a formatted message;
 * returns rc (negative) so a caller can write `return err_set(...)`.
 */
int err_set(struct err *e, int rc, enum err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* err_clear - no error. */
void err_clear(struct err *e);

/* err_kind_name - a short name of a kind, for logs ("not found", ...). */
const char *err_kind_name(enum err_kind kind);

#endif /* DBTD_ERR_H */
