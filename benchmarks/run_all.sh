#!/bin/sh
# Every benchmark against one database, in order; tee the output into a log for RESULTS.md.
#   benchmarks/run_all.sh sqlite:///bench.db [KPI_ROWS]
# --fresh: the database at URL is emptied first (SQLite file deleted / PG schema dropped).
set -e
URL=${1:?usage: benchmarks/run_all.sh DATABASE_URL [KPI_ROWS]}
ROWS=${2:-1000000}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
$PY -m benchmarks.generate --url "$URL" --kpi-rows "$ROWS" --fresh
$PY -m benchmarks.kpi_query --url "$URL"
$PY -m benchmarks.slash_roundtrip --url "$URL"
$PY -m benchmarks.digest_fanout --url "$URL"
$PY -m benchmarks.replica_chaos --url "$URL"
