-- The job runner's other lane claims only the kinds its scripts handle
-- (kind = ANY($2), runtime/jobs/runner.c), so due jobs of kinds it does not
-- handle (a plugin enabled on another instance only, a rolling deploy) stay
-- pending for an instance that does. jobs_pending_idx is on run_at alone: a
-- claim through it walks every due row of those other kinds before the first
-- one it may take, and reads more pages the longer they wait. This index
-- starts at the kind, so a claim reads only rows of its own kinds (the mail
-- lane's kind = 'email' too). jobs_pending_idx stays for the backlog reading
-- (every due pending job, whatever its kind).
CREATE INDEX jobs_pending_kind_idx ON jobs (kind, run_at) WHERE status = 'pending';
