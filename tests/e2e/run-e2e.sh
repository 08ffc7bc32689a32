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
# DBTD_E2E_JOBS: how many pytest-xdist workers share the tests (default 2,
# one a core of the 2-core CI machine); 0 or 1 runs them serially in one
# process.  Every test has its own directory, socket, DuckDB files, Git
# repositories and PostgreSQL port, so they run side by side; --dist
# loadgroup keeps the tests of test_upgrade.py (one expensive filled store
# per module) on one worker and hands out the rest one test at a time.
jobs=${DBTD_E2E_JOBS:-2}
case $jobs in
''|*[!0-9]*) echo "run-e2e: DBTD_E2E_JOBS must be a number, not '$jobs'" >&2; exit 99 ;;
esac
if [ "$jobs" -gt 1 ]; then
	if "$venv/bin/python" -c "import xdist" 2>/dev/null; then
		set -- -n "$jobs" --dist loadgroup "$@"
	else
		echo "run-e2e: no pytest-xdist in $venv (tests/install-deps.sh installs" \
			"it): running the tests serially" >&2
	fi
fi
exec "$venv/bin/pytest" -p no:cacheprovider -o console_output_style=classic -rfE -v \
	"$@" .
