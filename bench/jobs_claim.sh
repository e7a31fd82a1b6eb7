#!/usr/bin/env bash
# What a job claim reads when many due jobs wait for a kind this instance
# does not handle (the other lane claims kind = ANY(<its kinds>) since
# migration 0012): EXPLAIN (ANALYZE, BUFFERS) of the runner's two claims and
# its backlog reading, with the indexes of migration 0012 and before it.
#
#   bench/jobs_claim.sh                  # a few seconds
#   UNHANDLED=100000 bench/jobs_claim.sh
#
# Starts a private PostgreSQL in var/pg-jobs (fsync off; port
# TASKAPI_PG_PORT or 54460), recreates database jobs_bench, applies
# migrations/*.sql with psql, loads DONE finished jobs (history), UNHANDLED
# due jobs of kind other.plugin (older than the rest), HANDLED due jobs of
# kinds webhook and autoassign.record and EMAILS due email jobs, ANALYZEs,
# then runs bench/jobs/claim.sql twice: as migrated, and with the indexes
# as they were before migration 0012 (in a transaction rolled back). Output also in
# var/jobs/explain.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

UNHANDLED=${UNHANDLED:-10000}
HANDLED=${HANDLED:-1000}
EMAILS=${EMAILS:-20}
DONE=${DONE:-50000}
OUT=$TK_VAR/jobs

install_traps
mkdir -p "$OUT"
unset DATABASE_URL
start_pg pg-jobs 54460 ephemeral
create_db jobs_bench fresh
db() { "$TK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" "$@"; }

section "Schema (migrations/*.sql) and data"
for f in migrations/*.sql; do db -f "$f" >/dev/null; done
db <<SQL
INSERT INTO jobs (kind, payload, status, attempts, run_at, finished_at)
  SELECT (ARRAY['email', 'webhook', 'other.plugin'])[1 + g % 3], '{}', 'done', 1,
         now() - interval '2 days' + g * interval '1 second', now() - interval '1 day'
  FROM generate_series(1, $DONE) g;
INSERT INTO jobs (kind, payload, run_at)
  SELECT 'other.plugin', '{"n": 1}', now() - interval '1 hour' + g * interval '10 ms'
  FROM generate_series(1, $UNHANDLED) g;
INSERT INTO jobs (kind, payload, run_at)
  SELECT (ARRAY['webhook', 'autoassign.record'])[1 + g % 2], '{"n": 1}',
         now() - interval '1 minute' + g * interval '10 ms'
  FROM generate_series(1, $HANDLED) g;
INSERT INTO jobs (kind, payload, run_at)
  SELECT 'email', '{"to": "a@example.com"}', now() - interval '1 minute' + g * interval '10 ms'
  FROM generate_series(1, $EMAILS) g;
VACUUM ANALYZE jobs;
SQL
info "$DONE done, $UNHANDLED due of an unhandled kind, $HANDLED due handled, $EMAILS due email"

{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), PostgreSQL $(db -tAc 'SHOW server_version'), $DONE done, $UNHANDLED due unhandled (other.plugin), $HANDLED due handled, $EMAILS due email"
    echo
    echo "## with jobs_pending_kind_idx (migration 0012)"
    db -v before=false -f bench/jobs/claim.sql
    echo
    echo "## before 0012 (jobs_pending_idx on run_at only)"
    db -v before=true -f bench/jobs/claim.sql
} | tee "$OUT/explain.txt"
