#!/bin/sh
# End-to-end tests (make check): real dbtd, dbtctl, git, dbt and DuckDB,
# driven by pytest from the project's dbt virtual environment.
set -eu
src=${DBTD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
venv=${DBTD_VENV:-$src/.venv-dbt}
if [ ! -x "$venv/bin/pytest" ] || [ ! -x "$venv/bin/dbt" ]; then
	echo "run-e2e: no dbt virtual environment at $venv; run tests/install-deps.sh" >&2
	exit 99
fi
export DBTD_SRCDIR="$src" DBTD_VENV="$venv" PYTHONDONTWRITEBYTECODE=1
cd "$src/tests/e2e"
# DBTD_E2E_ARGS is split like a shell command line, so a -k expression with
# spaces can be quoted: DBTD_E2E_ARGS="-k 'test_a or test_b'".
eval "set -- ${DBTD_E2E_ARGS:-}"
exec "$venv/bin/pytest" -p no:cacheprovider -o console_output_style=classic -rfE -v \
	"$@" .
