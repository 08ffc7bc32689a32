/*
 * logrec.h - the format of step log lines, as the runner sends them, as
 * LMDB stores them and as dbtd streams them to clients: a sequence of
 * records, each
 *
 *     u64 ts_ms | u8 stream | u32 len | len bytes of text
 *
 * (integers big-endian; text is the line without its newline, any bytes).
 * A chunk of records is opaque to everything between the runner and the
 * reader, so lines are stored and streamed without being parsed.
 */
#ifndef DBTD_LOGREC_H
#define DBTD_LOGREC_H

#include <stddef.h>
#include <stdint.h>

#define LOGREC_HEADER 13u

struct logrec {
	int64_t ts_ms;
	unsigned stream;       /* DBTD_STREAM_* */
	const uint8_t *text;   /* not NUL-terminated */
	size_t len;
};

/* A growable buffer of records. */
struct logbuf {
	uint8_t *data;
	size_t len, cap;
	size_t lines;
};

/* logbuf_add - append one record.  0 or -ENOMEM. */
int logbuf_add(struct logbuf *b, int64_t ts_ms, unsigned stream, const void *text,
               size_t len);

/* logbuf_reset - forget the records, keep the memory. */
void logbuf_reset(struct logbuf *b);

/* logbuf_free - release the memory. */
void logbuf_free(struct logbuf *b);

/*
 * logrec_next - decode the record at data[*off] and advance *off.
 * Returns 1 with *rec set, 0 at the end, -EBADMSG for a truncated record.
 */
int logrec_next(const uint8_t *data, size_t len, size_t *off, struct logrec *rec);

/*
 * logrec_check - does data hold whole records and nothing else?  0, or
 * -EBADMSG with *bad (may be NULL) set to the offset of the first record
 * that runs past the end.
 */
int logrec_check(const uint8_t *data, size_t len, size_t *bad);

#endif /* DBTD_LOGREC_H */
