#!/bin/sh
# The webhook fuzz target (make check): tests/fuzz/fuzz_webhook replays the
# webhook fixtures, then mutations of them (tests/fuzz/driver.c).
set -eu
src=${DBTD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
exec "${DBTD_BUILDDIR:-.}/tests/fuzz/fuzz_webhook" "$src/tests/fixtures/webhooks"
