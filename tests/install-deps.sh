#!/bin/sh
# Install what building and testing dbtd needs on Debian 12, as root:
# the Debian packages, and pinned dbt (dbt-core, dbt-duckdb, dbt-postgres)
# in a virtual environment of the project's own (.venv-dbt).  Safe to rerun:
# it installs only what is missing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

packages="autoconf automake libtool pkg-config make gcc git
  libev-dev libgit2-dev liblmdb-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libjansson-dev libyaml-dev libcmocka-dev libsystemd-dev libssl-dev
  python3 python3-venv postgresql systemd graphviz tzdata"

missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: these Debian packages are missing:$missing; run as root" >&2
		exit 1
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq $missing >/dev/null
fi

# dbt in its own virtual environment, pinned; rebuilt when the pins change.
venv="$top/.venv-dbt"
req="$top/tests/requirements-dbt.txt"
treq="$top/tests/requirements-test.txt"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/dbt" ] || ! cat "$req" "$treq" | cmp -s - "$stamp"; then
	echo "install-deps: installing pinned dbt and pytest into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" -r "$treq"
	cat "$req" "$treq" > "$stamp"
fi
"$venv/bin/dbt" --version 2>/dev/null | sed -n 's/^.*installed: */install-deps: dbt-core /p' | head -1
