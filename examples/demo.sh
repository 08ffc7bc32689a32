#!/bin/sh
# The dbtd demo on a fresh Debian 12 machine, as root: installs what is
# needed (Debian packages, pinned dbt in .venv-dbt), builds dbtd, makes a Git
# repository of the bundled example dbt project, starts dbtd on a temporary
# state directory and socket, adds a project, an environment (DuckDB) and a
# job, runs the job and shows the run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

tests/install-deps.sh
echo "== building dbtd"
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
if [ -f config.status ]; then
	build=$top           # an in-tree build exists: use it
else
	build=$top/build
	mkdir -p "$build"
	[ -f "$build/config.status" ] || (cd "$build" && ../configure -q)
fi
make -s -C "$build" -j"$(nproc)" >/dev/null

demo=$(mktemp -d /tmp/dbtd-demo-XXXXXX)
echo "== the example dbt project as a Git repository: $demo/jaffle_shop"
cp -r examples/jaffle_shop "$demo/jaffle_shop"
rm -rf "$demo/jaffle_shop/target" "$demo/jaffle_shop/logs" "$demo/jaffle_shop/dbt_packages"
git -C "$demo/jaffle_shop" init -q -b main
git -C "$demo/jaffle_shop" -c user.name=demo -c user.email=demo@dbtd.invalid add -A
git -C "$demo/jaffle_shop" -c user.name=demo -c user.email=demo@dbtd.invalid commit -q -m "jaffle_shop example"

export DBTD_SOCKET="$demo/dbtd.sock"
echo "== starting dbtd (log: $demo/dbtd.log)"
"$build/daemon/dbtd" --state-dir "$demo/state" --socket "$DBTD_SOCKET" \
	--plugin-dir "$build/plugins/.libs" 2>"$demo/dbtd.log" &
dbtd_pid=$!
trap 'kill $dbtd_pid 2>/dev/null; wait $dbtd_pid 2>/dev/null' EXIT
i=0
until [ -S "$DBTD_SOCKET" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$demo/dbtd.log"; exit 1; }
	sleep 0.1
done

ctl() { echo "\$ dbtctl $*"; "$build/client/dbtctl" "$@"; }
ctl project add jaffle_shop --repo "$demo/jaffle_shop"
ctl env add prod --project jaffle_shop --branch main --destination duckdb \
	--path "$demo/warehouse.duckdb" --schema main --threads 4 --dbt "$top/.venv-dbt/bin/dbt"
ctl job add nightly --env prod --command "dbt build"
ctl job run nightly --wait
ctl run list
ctl run view 1
echo
echo "The tables are in $demo/warehouse.duckdb; dbtd's state is in $demo/state."
