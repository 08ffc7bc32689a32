/*
 * mask.h - hide secrets in step log lines: every occurrence of a known
 * secret (a database password, a webhook secret) is replaced by MASK_TEXT
 * before a line leaves the runner.
 */
#ifndef DBTD_MASK_H
#define DBTD_MASK_H

#include <stddef.h>

#define MASK_TEXT "***"   /* what a masked secret is shown as */
#define MASK_MIN_LEN 4    /* shorter secrets are never masked */

/*
 * mask_usable - 1 when secret is long enough to be masked (at least
 * MASK_MIN_LEN bytes), 0 when it is not (also for NULL or "").  Masking a
 * 1-3 byte string would shred every log line, so such secrets are skipped.
 */
int mask_usable(const char *secret);

/*
 * mask_apply - copy text[0..len) (any bytes, NUL included) with every
 * occurrence of the nsecrets NUL-terminated secrets replaced by MASK_TEXT.
 * Secrets that are not mask_usable are ignored, as are NULL entries.
 *
 * Occurrences are found in the original text only, never in the output, so
 * a secret that equals or contains MASK_TEXT is masked once.  Every byte of
 * every occurrence of every secret is hidden: occurrences that overlap (of
 * one secret, "aaaa" in "aaaaa", or of two, "abcd" and "bcde" in "abcdef")
 * are merged into a single MASK_TEXT ("***", "***f"); occurrences that
 * merely touch ("abcdabcd") are masked one by one ("******").
 *
 * On success *out is a malloc'd, NUL-terminated copy the caller frees and
 * *outlen its length without the NUL (never more than len).  Returns 0, or
 * -EINVAL (text NULL with len > 0, secrets NULL with nsecrets > 0, out or
 * outlen NULL) or -ENOMEM, and then *out is NULL.
 */
int mask_apply(const char *text, size_t len, const char *const *secrets, size_t nsecrets,
               char **out, size_t *outlen);

#endif /* DBTD_MASK_H */
