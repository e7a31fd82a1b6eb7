-- bench/scale.sh: adds :others tasks in :projects projects that the measured
-- user is NOT a member of (all private, owned by one other user, 1,000
-- tasks each by default, each project with its own owner, as many users as
-- projects), with the same word, status, priority, tag and
-- due-date mix as the measured project (bench/scale/mine.sql), so that the
-- search term and the filters match as many rows elsewhere as at home.
-- Run with psql -v others=N -v projects=N. Idempotent per run: scale.sh
-- starts from a fresh database.
\set ON_ERROR_STOP 1
SET synchronous_commit = off;

CREATE TEMP TABLE other_projects AS
SELECT gen_random_uuid() AS id, gen_random_uuid() AS owner_id, g AS n
  FROM generate_series(1, :projects) g;

INSERT INTO users (id, email, password_hash, name)
SELECT owner_id, 'scale-other-' || n || '@example.com', 'x', 'Other owner ' || n FROM other_projects;

INSERT INTO projects (id, name, owner_id, created_at, updated_at)
SELECT id, 'other project ' || n, owner_id, now(), now() FROM other_projects;
INSERT INTO project_members (project_id, user_id, role)
SELECT id, owner_id, 'owner' FROM other_projects;

INSERT INTO tasks (project_id, title, description, status, priority, created_by, due_date,
                   completed_at, tags, created_at, updated_at)
SELECT p.id,
       (ARRAY['fix','refactor','document','test','review','optimize','design','deploy'])[1 + g % 8] || ' '
         || (ARRAY['login page','database migration','search index','billing report','email template',
                   'mobile layout','cache layer','api client','user settings','audit log'])[1 + g % 10]
         || ' #' || g,
       'the customer server query timeout ' || (ARRAY['release','screen','invoice','token','session'])[1 + g % 5],
       s.status, (ARRAY['low','medium','high','urgent','medium'])[1 + g % 5], p.owner_id,
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (g % 400) * interval '1 day' END,
       CASE WHEN s.status = 'done' THEN timestamptz '2026-06-01' END,
       CASE g % 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{backend}' WHEN 2 THEN '{bug,frontend}'
                  ELSE '{ops}' END,
       timestamptz '2026-01-01' + g * interval '1 second',
       timestamptz '2026-01-01' + g * interval '1 second'
  FROM generate_series(1, :others) g
  JOIN other_projects p ON p.n = 1 + (g - 1) % :projects
  CROSS JOIN LATERAL (SELECT (ARRAY['todo','in_progress','in_review','done','todo','cancelled','todo'])[1 + g % 7]
                             AS status) s;

-- One comment for every fifth task (a tenth of them mention the search term).
INSERT INTO comments (task_id, user_id, content, created_at, updated_at)
SELECT t.id, t.created_by,
       CASE WHEN n % 10 = 0 THEN 'the migration broke the report again'
            ELSE 'looks good, shipping the ' || (ARRAY['button','screen','invoice','token'])[1 + n % 4] END,
       t.created_at, t.created_at
  FROM (SELECT t.id, t.created_by, t.created_at, row_number() OVER () AS n
          FROM tasks t JOIN other_projects p ON p.id = t.project_id) t
 WHERE t.n % 5 = 0;

VACUUM ANALYZE;
