/*
 * frame.h - length-prefixed frames of the dbtd wire protocol.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload
 * (one protobuf message).  The length is at least 1 and at most FRAME_MAX.
 * Used by dbtd (client connections, runner pipe), dbtctl and the runner.
 */
#ifndef DBTD_FRAME_H
#define DBTD_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#define FRAME_HEADER 4u
#define FRAME_MAX (16u * 1024u * 1024u) /* 16 MiB payload cap */

/* A growable receive buffer holding bytes not yet returned as frames. */
struct frame_buf {
	uint8_t *data;
	size_t len;   /* bytes held */
	size_t off;   /* start of the first unconsumed byte */
	size_t cap;
};

/*
 * frame_parse - look at the bytes in buf[0..len) for one whole frame.
 * Returns 1 and sets *payload / *plen when a frame is complete (it spans
 * FRAME_HEADER + *plen bytes), 0 when more bytes are needed, -ERANGE when
 * the announced length exceeds FRAME_MAX, -EBADMSG for a zero length.
 */
int frame_parse(const uint8_t *buf, size_t len, const uint8_t **payload,
                size_t *plen);

/* frame_buf_init / frame_buf_free - set up and release a receive buffer. */
void frame_buf_init(struct frame_buf *fb);
void frame_buf_free(struct frame_buf *fb);

/*
 * frame_buf_fill - read what fd has (one read(2)) into the buffer.
 * Returns the number of bytes read, 0 at end of file, or -errno (-EAGAIN
 * when a non-blocking fd has nothing).
 */
ssize_t frame_buf_fill(struct frame_buf *fb, int fd);

/*
 * frame_buf_next - take the next complete frame out of the buffer.
 * Returns 1 with *payload / *plen pointing into the buffer (valid until the
 * next fill), 0 when no whole frame is held, or a negative error of
 * frame_parse.
 */
int frame_buf_next(struct frame_buf *fb, const uint8_t **payload, size_t *plen);

/*
 * frame_buf_shrink - give back the room a large frame took: a buffer holding
 * nothing is freed (frame_buf_fill makes a new one), one holding at most
 * keep bytes is cut down to keep bytes.  Payloads frame_buf_next returned
 * are no longer readable.
 */
void frame_buf_shrink(struct frame_buf *fb, size_t keep);

/* frame_buf_pending - bytes held that do not yet form a whole frame. */
size_t frame_buf_pending(const struct frame_buf *fb);

/*
 * frame_pack - encode msg as one frame into a new malloc'd buffer.
 * Returns 0 and sets *out / *outlen (caller frees *out), -ERANGE when the
 * message is larger than FRAME_MAX, -ENOMEM.
 */
int frame_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen);

/*
 * frame_write_all - write len bytes to a blocking fd, retrying short
 * writes and EINTR.  Returns 0 or -errno.
 */
int frame_write_all(int fd, const uint8_t *buf, size_t len);

/* frame_send - pack msg and write it to a blocking fd.  0 or -errno. */
int frame_send(int fd, const ProtobufCMessage *msg);

/*
 * frame_recv - read one frame from a blocking fd into fb.  Returns 1 with
 * *payload / *plen set, 0 at a clean end of file, or -errno (-EPROTO when
 * the peer closed in the middle of a frame).
 */
int frame_recv(struct frame_buf *fb, int fd, const uint8_t **payload,
               size_t *plen);

#endif /* DBTD_FRAME_H */
