/*
 * mask.c - hide secrets in step log lines (see mask.h).
 *
 * One sweep over the original text finds the regions to hide: each region
 * starts at the leftmost occurrence not yet covered and grows while another
 * occurrence (of any secret) overlaps it.  The sweep runs twice, first to
 * size the output, then to write it; replaced text is never searched again.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"

#define NONE ((size_t)-1) /* no further occurrence */
#define FIND_WINDOW 4096  /* bytes of start positions memmem tries per call */

/* Long enough to be masked: at least MASK_MIN_LEN bytes. */
int
mask_usable(const char *secret)
{
	return secret != NULL && strnlen(secret, MASK_MIN_LEN) >= MASK_MIN_LEN;
}

/*
 * Offset of the first occurrence of s (sl bytes) in text[from..len), or
 * NONE.  memmem looks at a window at a time, so that finding many
 * occurrences costs time linear in len also where memmem's cost is that of
 * its whole haystack (sanitizers check the haystack on every call).
 */
static size_t
find(const char *text, size_t len, size_t from, const char *s, size_t sl)
{
	if (sl == 0)
		return NONE;
	while (from <= len && len - from >= sl) {
		size_t win = len - from < FIND_WINDOW + sl ? len - from : FIND_WINDOW + sl - 1;
		const char *p = memmem(text + from, win, s, sl);

		if (p)
			return (size_t)(p - text);
		from += win - sl + 1; /* every start in the window was tried */
	}
	return NONE;
}

/*
 * Sweep text for the secrets (sl[k] bytes each, 0 for those skipped) and
 * return the masked length; write the masked text to out unless it is NULL.
 * next[] is scratch space for nsecrets offsets.
 */
static size_t
sweep(const char *text, size_t len, const char *const *secrets, const size_t *sl,
      size_t nsecrets, size_t *next, char *out)
{
	size_t copied = 0, n = 0;

	for (size_t k = 0; k < nsecrets; k++)
		next[k] = find(text, len, 0, secrets[k], sl[k]);
	for (;;) {
		size_t start = NONE, end;
		int grew;

		for (size_t k = 0; k < nsecrets; k++)
			if (next[k] < start)
				start = next[k];
		if (start == NONE)
			break;
		/* every occurrence that starts inside the region belongs to it */
		end = start + 1;
		do {
			grew = 0;
			for (size_t k = 0; k < nsecrets; k++) {
				while (next[k] < end) {
					if (next[k] + sl[k] > end)
						end = next[k] + sl[k];
					/* later ones starting before end - sl[k] + 1 end inside */
					next[k] = find(text, len, end - sl[k] + 1, secrets[k], sl[k]);
					grew = 1;
				}
			}
		} while (grew);
		if (out) {
			memcpy(out + n, text + copied, start - copied);
			memcpy(out + n + (start - copied), MASK_TEXT, sizeof(MASK_TEXT) - 1);
		}
		n += start - copied + sizeof(MASK_TEXT) - 1;
		copied = end;
	}
	if (out && len > copied)
		memcpy(out + n, text + copied, len - copied);
	return n + (len - copied);
}

/* Size the masked copy with one sweep, then write it with a second. */
int
mask_apply(const char *text, size_t len, const char *const *secrets, size_t nsecrets,
           char **out, size_t *outlen)
{
	size_t *sl = NULL, *next = NULL, n = 0;
	char *res;

	if (out)
		*out = NULL;
	if (out == NULL || outlen == NULL || (text == NULL && len > 0) ||
	    (secrets == NULL && nsecrets > 0))
		return -EINVAL;
	if (nsecrets > 0) {
		sl = calloc(nsecrets, sizeof(*sl));
		next = calloc(nsecrets, sizeof(*next));
		if (sl == NULL || next == NULL) {
			free(sl);
			free(next);
			return -ENOMEM;
		}
		for (size_t k = 0; k < nsecrets; k++)
			sl[k] = mask_usable(secrets[k]) ? strlen(secrets[k]) : 0;
		n = sweep(text, len, secrets, sl, nsecrets, next, NULL);
	} else {
		n = len;
	}
	res = malloc(n + 1);
	if (res == NULL) {
		free(sl);
		free(next);
		return -ENOMEM;
	}
	if (nsecrets > 0)
		sweep(text, len, secrets, sl, nsecrets, next, res);
	else if (len > 0)
		memcpy(res, text, len);
	res[n] = '\0';
	free(sl);
	free(next);
	*out = res;
	*outlen = n;
	return 0;
}
