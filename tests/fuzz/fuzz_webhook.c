/*
 * fuzz_webhook.c - libFuzzer target for the webhook decoder (forge.c): the
 * input is parsed as a delivery of each handled event type, checked as a
 * GitHub-signed payload, and used as a signature header, a GitLab token
 * and a repository URL.  Corpus: tests/fixtures/webhooks.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Exercise every entry point of forge.c on data. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[][2] = {
		{ "github", "pull_request" }, { "github", "push" }, { "github", "ping" },
		{ "gitlab", "Merge Request Hook" }, { "gitlab", "Push Hook" },
	};
	static const char *const repos[] = {
		"https://github.com/octo-org/jaffle-shop", "git@gitlab.example.com:analytics/jaffle-shop.git",
		"/srv/git/jaffle-shop.git",
	};
	struct forge_event ev;
	char err[256];
	char *text;

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		if (forge_parse(events[i][0], events[i][1], data, size, &ev, err, sizeof(err)) == 0) {
			for (size_t u = 0; u < ev.n_repo_urls; u++)
				forge_url_match(repos[u % 3], ev.repo_urls[u]);
			forge_event_free(&ev);
		}
	}
	forge_verify_github("fuzz secret", data, size,
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", err, sizeof(err));
	/* the input as a C string: header, token, URL */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	forge_verify_github("fuzz secret", data, size, text, err, sizeof(err));
	forge_verify_gitlab("fuzz secret", text, err, sizeof(err));
	for (size_t r = 0; r < sizeof(repos) / sizeof(repos[0]); r++)
		forge_url_match(repos[r], text);
	forge_url_match(text, text);
	free(text);
	return 0;
}
