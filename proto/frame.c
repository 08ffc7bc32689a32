/* frame.c - length-prefixed protobuf frames (see frame.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"

/* Read a 32-bit big-endian integer. */
static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Write a 32-bit big-endian integer. */
static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
frame_parse(const uint8_t *buf, size_t len, const uint8_t **payload,
            size_t *plen)
{
	uint32_t n;

	if (len < FRAME_HEADER)
		return 0;
	n = get_be32(buf);
	if (n == 0)
		return -EBADMSG;
	if (n > FRAME_MAX)
		return -ERANGE;
	if (len - FRAME_HEADER < n)
		return 0;
	*payload = buf + FRAME_HEADER;
	*plen = n;
	return 1;
}

void
frame_buf_init(struct frame_buf *fb)
{
	memset(fb, 0, sizeof(*fb));
}

void
frame_buf_free(struct frame_buf *fb)
{
	free(fb->data);
	frame_buf_init(fb);
}

/* Make room for at least `want` more bytes after the held ones. */
static int
frame_buf_reserve(struct frame_buf *fb, size_t want)
{
	size_t held = fb->len - fb->off;
	size_t cap;
	uint8_t *p;

	if (fb->off > 0 && (fb->off >= fb->cap / 2 || fb->cap - fb->len < want)) {
		memmove(fb->data, fb->data + fb->off, held);
		fb->len = held;
		fb->off = 0;
	}
	if (fb->cap - fb->len >= want)
		return 0;
	/* double, but room for one large frame is just that: 16 MiB, not 32 */
	cap = fb->cap ? fb->cap * 2 : 4096;
	if (cap - fb->len < want)
		cap = fb->len + want;
	p = realloc(fb->data, cap);
	if (p == NULL)
		return -ENOMEM;
	fb->data = p;
	fb->cap = cap;
	return 0;
}

ssize_t
frame_buf_fill(struct frame_buf *fb, int fd)
{
	size_t want = 65536;
	ssize_t n;
	int rc;

	/*
	 * Read a whole announced frame in as few calls as possible, and make
	 * room for no more than its rest: the last bytes of a 16 MiB frame do
	 * not double the buffer to 32 MiB.
	 */
	if (fb->len - fb->off >= FRAME_HEADER) {
		uint32_t need = get_be32(fb->data + fb->off);
		if (need <= FRAME_MAX && need + FRAME_HEADER > fb->len - fb->off)
			want = need + FRAME_HEADER - (fb->len - fb->off);
	}
	rc = frame_buf_reserve(fb, want);
	if (rc < 0)
		return rc;
	do
		n = read(fd, fb->data + fb->len, fb->cap - fb->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	fb->len += (size_t)n;
	return n;
}

void
frame_buf_shrink(struct frame_buf *fb, size_t keep)
{
	size_t held = fb->len - fb->off;
	uint8_t *p;

	if (held == 0) {
		frame_buf_free(fb);
		return;
	}
	if (held > keep || fb->cap <= keep)
		return;
	memmove(fb->data, fb->data + fb->off, held);
	fb->len = held;
	fb->off = 0;
	p = realloc(fb->data, keep);
	if (p == NULL)
		return; /* the larger buffer stays: still whole */
	fb->data = p;
	fb->cap = keep;
}

int
frame_buf_next(struct frame_buf *fb, const uint8_t **payload, size_t *plen)
{
	int rc;

	if (fb->data == NULL)
		return 0;
	rc = frame_parse(fb->data + fb->off, fb->len - fb->off, payload, plen);
	if (rc == 1) {
		fb->off += FRAME_HEADER + *plen;
		if (fb->off == fb->len)
			fb->off = fb->len = 0; /* payload stays readable until the next fill */
	}
	return rc;
}

size_t
frame_buf_pending(const struct frame_buf *fb)
{
	return fb->len - fb->off;
}

int
frame_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	if (n > FRAME_MAX)
		return -ERANGE;
	if (n == 0)
		return -EINVAL; /* an empty message carries nothing; never sent */
	buf = malloc(FRAME_HEADER + n);
	if (buf == NULL)
		return -ENOMEM;
	put_be32(buf, (uint32_t)n);
	protobuf_c_message_pack(msg, buf + FRAME_HEADER);
	*out = buf;
	*outlen = FRAME_HEADER + n;
	return 0;
}

int
frame_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
frame_send(int fd, const ProtobufCMessage *msg)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = frame_pack(msg, &buf, &len);
	if (rc < 0)
		return rc;
	rc = frame_write_all(fd, buf, len);
	free(buf);
	return rc;
}

int
frame_recv(struct frame_buf *fb, int fd, const uint8_t **payload, size_t *plen)
{
	for (;;) {
		ssize_t n;
		int rc = frame_buf_next(fb, payload, plen);

		if (rc != 0)
			return rc;
		n = frame_buf_fill(fb, fd);
		if (n == 0)
			return frame_buf_pending(fb) ? -EPROTO : 0;
		if (n < 0)
			return (int)n;
	}
}
