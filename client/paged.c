/* paged.c - replies that come in several frames, put together (see paged.h). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paged.h"

/*
 * Functions that move the n items of a frame's repeated field to the end of
 * the first frame's: the arrays are protobuf-c's, from its default
 * allocator (malloc), so realloc may grow them and free_unpacked frees what
 * they end up holding.  0 or -ENOMEM (nothing moved).
 */
#define DEFINE_APPEND(name, type)                                               \
	static int                                                              \
	name(type ***to, size_t *nto, type **from, size_t *nfrom)              \
	{                                                                       \
		type **p;                                                       \
                                                                                \
		if (*nfrom == 0)                                                \
			return 0;                                               \
		p = realloc(*to, (*nto + *nfrom) * sizeof(*p));                 \
		if (p == NULL)                                                  \
			return -ENOMEM;                                         \
		memcpy(p + *nto, from, *nfrom * sizeof(*p));                    \
		*to = p;                                                        \
		*nto += *nfrom;                                                 \
		*nfrom = 0; /* the frame no longer owns them */                 \
		return 0;                                                       \
	}

DEFINE_APPEND(append_artifacts, Dbtd__Artifact)
DEFINE_APPEND(append_nodes, Dbtd__LineageNode)
DEFINE_APPEND(append_edges, Dbtd__LineageEdge)

/* Whether frames follow r: not after `end`, nor after an older dbtd's whole reply. */
static bool
more_follow(const Dbtd__Response *r)
{
	if (r->end)
		return false;
	switch (r->body_case) {
	case DBTD__RESPONSE__BODY_ARTIFACTS:
		return r->artifacts->more;
	case DBTD__RESPONSE__BODY_LINEAGE:
		return r->lineage->more;
	default:
		return false;
	}
}

/* Move next's items (a frame of the same kind) into r; r takes next's end and more. */
static int
merge(Dbtd__Response *r, Dbtd__Response *next)
{
	int rc = 0;

	switch (r->body_case) {
	case DBTD__RESPONSE__BODY_ARTIFACTS:
		rc = append_artifacts(&r->artifacts->items, &r->artifacts->n_items,
		                      next->artifacts->items, &next->artifacts->n_items);
		r->artifacts->more = next->artifacts->more;
		break;
	case DBTD__RESPONSE__BODY_LINEAGE:
		rc = append_nodes(&r->lineage->nodes, &r->lineage->n_nodes,
		                  next->lineage->nodes, &next->lineage->n_nodes);
		if (rc == 0)
			rc = append_edges(&r->lineage->edges, &r->lineage->n_edges,
			                  next->lineage->edges, &next->lineage->n_edges);
		r->lineage->more = next->lineage->more;
		break;
	default:
		break;
	}
	r->end = next->end;
	return rc;
}

int
request_paged(const struct dbtctl_opts *o, struct conn *c, const Dbtd__Request *req,
              Dbtd__Response__BodyCase want, const char *hint, Dbtd__Response **out)
{
	Dbtd__Response *r = NULL, *next = NULL;
	int rc;

	*out = NULL;
	rc = request(o, c, req, want, hint, &r);
	if (rc != 0)
		return rc;
	while (more_follow(r)) {
		rc = conn_recv(c, &next); /* the timeout bounds each frame */
		if (rc == -ECONNRESET || rc == -EPROTO) {
			fprintf(stderr, "dbtctl: dbtd at %s closed the connection before the end "
			        "of the reply to \"%s\"; see dbtd's log (journalctl -u dbtd)\n",
			        c->path, c->what);
			rc = DBTCTL_EXIT_FAILED;
			goto fail;
		}
		if (rc < 0) {
			rc = transport_error(c, rc);
			goto fail;
		}
		rc = reply_check(next, want, hint);
		if (rc != 0)
			goto fail;
		if (merge(r, next) < 0) {
			fprintf(stderr, "dbtctl: out of memory while reading the reply to \"%s\"\n",
			        c->what);
			rc = DBTCTL_EXIT_FAILED;
			goto fail;
		}
		dbtd__response__free_unpacked(next, NULL);
		next = NULL;
	}
	*out = r;
	return 0;
fail:
	if (next != NULL)
		dbtd__response__free_unpacked(next, NULL);
	request_done(c, r);
	return rc;
}
