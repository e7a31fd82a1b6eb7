-- bench/scale.sh: :mine tasks in project :'project' (the measured user's,
-- created through the API), created by :'owner'. Same mix as others.sql.
\set ON_ERROR_STOP 1
INSERT INTO tasks (project_id, title, description, status, priority, created_by, due_date,
                   completed_at, tags, created_at, updated_at)
SELECT :'project'::uuid,
       (ARRAY['fix','refactor','document','test','review','optimize','design','deploy'])[1 + g % 8] || ' '
         || (ARRAY['login page','database migration','search index','billing report','email template',
                   'mobile layout','cache layer','api client','user settings','audit log'])[1 + g % 10]
         || ' #' || g,
       'the customer server query timeout ' || (ARRAY['release','screen','invoice','token','session'])[1 + g % 5],
       s.status, (ARRAY['low','medium','high','urgent','medium'])[1 + g % 5], :'owner'::uuid,
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (g % 400) * interval '1 day' END,
       CASE WHEN s.status = 'done' THEN timestamptz '2026-06-01' END,
       CASE g % 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{backend}' WHEN 2 THEN '{bug,frontend}'
                  ELSE '{ops}' END,
       timestamptz '2026-03-01' + g * interval '1 minute',
       timestamptz '2026-03-01' + g * interval '1 minute'
  FROM generate_series(1, :mine) g
  CROSS JOIN LATERAL (SELECT (ARRAY['todo','in_progress','in_review','done','todo','cancelled','todo'])[1 + g % 7]
                             AS status) s;
-- One comment for every fifth task (a tenth of them mention the search term).
INSERT INTO comments (task_id, user_id, content, created_at, updated_at)
SELECT t.id, t.created_by,
       CASE WHEN n % 10 = 0 THEN 'the migration broke the report again'
            ELSE 'looks good, shipping the ' || (ARRAY['button','screen','invoice','token'])[1 + n % 4] END,
       t.created_at, t.created_at
  FROM (SELECT t.id, t.created_by, t.created_at, row_number() OVER () AS n
          FROM tasks t WHERE t.project_id = :'project'::uuid) t
 WHERE t.n % 5 = 0;

ANALYZE tasks;
ANALYZE comments;
