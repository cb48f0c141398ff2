#!/bin/sh
# Every benchmark against one database, in order; tee the output into a log for RESULTS.md.
#   benchmarks/run_all.sh sqlite:///bench.db [KPI_ROWS]
# --fresh: the database at URL is emptied first (SQLite file deleted / PG schema dropped).
set -e
URL=${1:?usage: benchmarks/run_all.sh DATABASE_URL [KPI_ROWS]}
ROWS=${2:-1000000}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
$PY benchmarks/generate.py --url "$URL" --kpi-rows "$ROWS" --fresh
$PY benchmarks/kpi_query.py --url "$URL"
$PY benchmarks/slash_roundtrip.py --url "$URL"
$PY benchmarks/digest_fanout.py --url "$URL"
