#!/bin/sh
# Run dbtd's benchmarks (after ./tests/run.sh or ./examples/demo.sh built it).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
exec "${DBTD_VENV:-$top/.venv-dbt}/bin/python" "$top/bench/bench.py" "$@"
