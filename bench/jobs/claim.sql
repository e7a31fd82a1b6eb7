-- The job runner's claims and backlog reading (runtime/jobs/runner.c) on a
-- table where 10,000 due jobs wait for a kind this instance does not handle
-- (bench/jobs_claim.sh runs it; psql variable :kind_index is 'keep' or
-- 'drop': drop runs everything without jobs_pending_kind_idx, migration
-- 0012, as before it existed). Every statement is prepared with bound
-- parameters like the runner's and run 6 times first, so the EXPLAIN shows
-- the plan PostgreSQL keeps (plan_cache_mode auto), then rolled back.
\set ON_ERROR_STOP 1
BEGIN;
\if :before
DROP INDEX jobs_pending_kind_idx;
CREATE INDEX jobs_pending_idx ON jobs (run_at) WHERE status = 'pending';
ANALYZE jobs;
\endif

-- runner.c TAKE_OTHER_SQL, $2 = the kinds the generation handles: the first
-- due job of each kind (jobs_pending_kind_idx), then the earliest of those
PREPARE take_other AS
UPDATE jobs SET attempts = attempts + 1,
  run_at = clock_timestamp() + make_interval(secs => $1::float8 / 1000)
WHERE id = (SELECT c.id FROM unnest($2::text[]) AS k(kind) CROSS JOIN LATERAL
  (SELECT id, run_at FROM jobs WHERE status = 'pending' AND kind = k.kind AND run_at <= now()
   ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) c ORDER BY c.run_at, c.id LIMIT 1)
RETURNING id, kind, attempts, max_attempts, payload->>'to' AS mail_to,
  payload->>'subject' AS subject, payload->>'template' AS template,
  payload->>'html' AS html, payload->>'webhookId' AS webhook_id,
  payload->>'event' AS event, payload->>'body' AS body,
  payload->>'disableAfter' AS disable_after, payload->>'allowPrivate' AS allow_private,
  payload->>'toName' AS to_name, payload->>'text' AS text, payload::text AS payload;

-- kind = ANY($2) in one scan, for comparison (not what the runner runs)
PREPARE take_any AS
UPDATE jobs SET attempts = attempts + 1,
  run_at = clock_timestamp() + make_interval(secs => $1::float8 / 1000)
WHERE id = (SELECT id FROM jobs WHERE status = 'pending' AND run_at <= now()
  AND kind = ANY($2::text[]) ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, kind, attempts;

-- runner.c TAKE_MAIL_SQL
PREPARE take_mail AS
UPDATE jobs SET attempts = attempts + 1,
  run_at = clock_timestamp() + make_interval(secs => $1::float8 / 1000)
WHERE id = (SELECT f.id FROM (SELECT id, run_at FROM jobs WHERE status = 'pending'
  AND kind = 'email' AND run_at <= now() ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) f)
RETURNING id, kind, attempts;

-- runner.c BACKLOG_SQL
PREPARE backlog AS
SELECT kind, count(*), coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8,
  kind = 'email' OR kind = ANY($1::text[])
FROM jobs WHERE status = 'pending' AND run_at <= now() GROUP BY kind ORDER BY kind;

\o /dev/null
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_other('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_any('60000', '{webhook,autoassign.record}');
EXECUTE take_mail('60000');
EXECUTE take_mail('60000');
EXECUTE take_mail('60000');
EXECUTE take_mail('60000');
EXECUTE take_mail('60000');
EXECUTE take_mail('60000');
EXECUTE backlog('{webhook,autoassign.record}');
EXECUTE backlog('{webhook,autoassign.record}');
EXECUTE backlog('{webhook,autoassign.record}');
EXECUTE backlog('{webhook,autoassign.record}');
EXECUTE backlog('{webhook,autoassign.record}');
EXECUTE backlog('{webhook,autoassign.record}');
\o
\echo '--- other lane: claim one webhook/autoassign.record job'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE take_other('60000', '{webhook,autoassign.record}');
\echo '--- (for comparison: kind = ANY($2) in one scan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE take_any('60000', '{webhook,autoassign.record}');
\echo '--- mail lane: claim one email job'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE take_mail('60000');
\echo '--- backlog reading (every 5 s)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE backlog('{webhook,autoassign.record}');
ROLLBACK;
