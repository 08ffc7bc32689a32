#!/bin/sh
# The whole test suite on a fresh Debian 12 machine, as root: installs what
# is needed, builds, and runs the unit tests (cmocka) and the end-to-end
# tests (pytest: real dbtd, git, dbt and DuckDB, on every core) twice: in a
# normal build and in an ASan/UBSan build; then checks that `make distcheck`
# passes.
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

tests/install-deps.sh || exit 1
export DBTD_VENV="$top/.venv-dbt"
# the end-to-end tests run on one pytest-xdist worker a core (run-e2e.sh)
export DBTD_E2E_JOBS="${DBTD_E2E_JOBS:-$jobs}"
./autogen.sh >/dev/null 2>&1 || { echo "autogen.sh failed"; exit 1; }

status=0
# build_and_check DIR CONFIGURE-FLAGS...: a VPATH build in DIR, then make check.
build_and_check() {
	dir=$1; shift
	echo "== $dir: configure $*"
	rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
	"$top/configure" -q "$@" >/dev/null || { cd "$top"; return 1; }
	make -s -j"$jobs" >/dev/null || { cd "$top"; return 1; }
	make -s check || { cd "$top"; return 1; }
	cd "$top"
}

build_and_check build || status=1
# The slow tests (a cron minute going by) run in the normal build only.
DBTD_E2E_SKIP_SLOW=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	build_and_check build-asan --enable-sanitizers || status=1

if [ "${DBTD_SKIP_DISTCHECK:-0}" != 1 ]; then
	echo "== make distcheck"
	# the tarball's own check: unit tests, one real end-to-end run, and a
	# step plugin built from what the tarball installs (the plugin SDK)
	(cd build && DBTD_E2E_ARGS="-k 'test_example_builds_through_dbtd or test_sdk_builds'" \
		make -s distcheck >distcheck.out 2>&1) || { tail -40 build/distcheck.out; status=1; }
	grep -E "archives ready for distribution|^dbtd-.*tar.gz" build/distcheck.out | head -2
fi

# One summary over both builds: cmocka and pytest counts from the test logs.
counts=$(for d in build build-asan; do
	for f in "$d"/tests/unit/*.log; do [ -f "$f" ] && cat "$f"; done
	[ -f "$d/tests/e2e/run-e2e.sh.log" ] && cat "$d/tests/e2e/run-e2e.sh.log"
done | awk '
	/^\[  PASSED  \] [0-9]+ test/ { p += $4 }
	/^\[  FAILED  \] [0-9]+ test/ { f += $4 }
	/^=+ .*(passed|failed|error).* in [0-9.]+s/ {
		for (i = 1; i <= NF; i++) {
			if ($(i) ~ /^passed/) p += $(i-1)
			if ($(i) ~ /^failed/ || $(i) ~ /^error/) f += $(i-1)
		}
	}
	END { printf "%d %d\n", p, f }')
passed=${counts% *}
failed=${counts#* }
[ "$failed" -gt 0 ] && status=1
# a failure outside any counted test (build, crash, distcheck) still counts
[ $status -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "$passed passed, $failed failed"
exit $status
