-- The job runner's other lane claims only the kinds its scripts handle
-- (runtime/jobs/runner.c), so due jobs of kinds it does not handle (a plugin
-- enabled on another instance only, a rolling deploy) stay pending for an
-- instance that does. jobs_pending_idx is on run_at alone: a claim through
-- it walks every due row of those other kinds before the first one it may
-- take, reading more pages the longer they wait. This index starts at the
-- kind and is in the claim's order within it (run_at, id): a claim reads the
-- first due entry of each of its kinds and stops (the mail lane's
-- kind = 'email' too).
--
-- jobs_pending_idx goes: while it exists the planner prefers it for the
-- claims (its statistics are over the whole table, where finished jobs of a
-- kind make that kind look common among pending ones too, so an ordered
-- scan by run_at looks cheap). Everything else it served (the backlog
-- reading, admin status, a webhook's pending deliveries) reads pending rows
-- through this index as well.
CREATE INDEX jobs_pending_kind_idx ON jobs (kind, run_at, id) WHERE status = 'pending';
DROP INDEX jobs_pending_idx;
