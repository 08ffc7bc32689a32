/* logrec.c - step log records (see logrec.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "logrec.h"

int
logbuf_add(struct logbuf *b, int64_t ts_ms, unsigned stream, const void *text, size_t len)
{
	uint8_t *p;
	uint64_t ts = (uint64_t)ts_ms;

	if (len > UINT32_MAX)
		return -E2BIG;
	if (b->cap - b->len < LOGREC_HEADER + len) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap - b->len < LOGREC_HEADER + len)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	p = b->data + b->len;
	for (int i = 7; i >= 0; i--, ts >>= 8)
		p[i] = (uint8_t)ts;
	p[8] = (uint8_t)stream;
	p[9] = (uint8_t)(len >> 24);
	p[10] = (uint8_t)(len >> 16);
	p[11] = (uint8_t)(len >> 8);
	p[12] = (uint8_t)len;
	memcpy(p + LOGREC_HEADER, text, len);
	b->len += LOGREC_HEADER + len;
	b->lines++;
	return 0;
}

void
logbuf_reset(struct logbuf *b)
{
	b->len = 0;
	b->lines = 0;
}

void
logbuf_free(struct logbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
logrec_next(const uint8_t *data, size_t len, size_t *off, struct logrec *rec)
{
	const uint8_t *p = data + *off;
	uint64_t ts = 0;
	size_t n;

	if (*off >= len)
		return 0;
	if (len - *off < LOGREC_HEADER)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		ts = ts << 8 | p[i];
	n = (size_t)p[9] << 24 | (size_t)p[10] << 16 | (size_t)p[11] << 8 | p[12];
	if (len - *off - LOGREC_HEADER < n)
		return -EBADMSG;
	rec->ts_ms = (int64_t)ts;
	rec->stream = p[8];
	rec->text = p + LOGREC_HEADER;
	rec->len = n;
	*off += LOGREC_HEADER + n;
	return 1;
}

int
logrec_check(const uint8_t *data, size_t len, size_t *bad)
{
	struct logrec rec;
	size_t off = 0, at = 0;
	int r;

	while ((r = logrec_next(data, len, &off, &rec)) == 1)
		at = off;
	if (r < 0 && bad)
		*bad = at;
	return r;
}
