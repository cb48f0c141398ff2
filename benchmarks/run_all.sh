#!/bin/sh
# Every benchmark against one database, in order; tee the output into a log for RESULTS.md.
#   benchmarks/run_all.sh sqlite:///bench.db [KPI_ROWS] [WORKERS]
# The database at URL is emptied first (generate --fresh: SQLite file deleted / PG schema
# dropped). WORKERS: the worker process counts the round trip is measured at (default 1,2,4).
# Every figure is printed with its target: ratios against a floor measured in the same run.
set -e
URL=${1:?usage: benchmarks/run_all.sh DATABASE_URL [KPI_ROWS] [WORKERS]}
ROWS=${2:-1000000}
WORKERS=${3:-1,2,4}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
# The generator and the app sign the audit trail: a throw-away key for a throw-away
# database, unless one is set (README, Audit trail).
export CROBOT_AUDIT_KEY=${CROBOT_AUDIT_KEY:-bench:$($PY -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')}
$PY -m benchmarks.generate --url "$URL" --kpi-rows "$ROWS" --fresh
# KPI queries: service / raw SQL at p50 (targets <= 1.5 PostgreSQL, <= 2 SQLite).
$PY -m benchmarks.kpi_query --url "$URL"
# CPU per request in process (targets: kpi show, action list mine <= 2 ms; status <= 6 ms;
# a write <= 4 ms). Its writes add 100 action items, as the round trip's below do.
$PY -m benchmarks.request_cpu --url "$URL"
# Reads (crobot / a no-op Bolt app on the same stack and worker count: p99 <= 3 at c=1 and
# c=8, >= 300 req/s at c=8), writes (action add until its reply reaches response_url: p99 at
# c=8 <= 10 x p50 at c=1), peak RSS per process, req/s by worker count. The writes add
# action items to the database, so this runs after the read-only benchmarks above.
$PY -m benchmarks.slash_roundtrip --url "$URL" --workers "$WORKERS" --writes 300
# CSV import: >= 10,000 rows/s and >= half the generator's rate (rolled back: no trace).
$PY -m benchmarks.kpi_import --url "$URL"
# Digest fan-out: 1,000 digests delivered exactly once in < 10 s.
$PY -m benchmarks.digest_fanout --url "$URL"
$PY -m benchmarks.replica_chaos --url "$URL"
