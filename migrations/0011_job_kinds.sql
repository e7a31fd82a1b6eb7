-- Job kinds are no longer a closed list: `email` is the runner's own, and
-- every other kind is run by the Lua handler a script or plugin registers for
-- it (lib.jobs.handle, docs/lua-api.md), e.g. the webhooks plugin's `webhook`.
-- A kind is a dotted lower-case name; one nobody handles is an error the
-- runner logs, counts and retries, never a row the database refuses.
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' AND char_length(kind) <= 64);
