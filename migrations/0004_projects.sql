-- Projects, their members, tasks, comments and notifications (API.md §3-§6).
-- Timestamps the API sorts or pages by are timestamptz(3): what clients see
-- (milliseconds) is exactly what is stored, so keyset cursors are exact.
-- Every enum is a CHECK; every list filter and sort has an index; search
-- uses generated tsvector columns with GIN indexes.

CREATE TABLE projects (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    visibility  text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public')),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    owner_id    uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz(3) NOT NULL DEFAULT now(),
    updated_at  timestamptz(3) NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')) STORED
);
CREATE INDEX projects_search_idx ON projects USING gin (search);
CREATE INDEX projects_owner_idx ON projects (owner_id);
CREATE INDEX projects_public_idx ON projects (created_at DESC, id DESC) WHERE visibility = 'public';

CREATE TABLE project_members (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    joined_at  timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id, project_id);
CREATE INDEX project_members_joined_idx ON project_members (project_id, joined_at, user_id);
-- Exactly one owner per project.
CREATE UNIQUE INDEX project_members_one_owner ON project_members (project_id) WHERE role = 'owner';

CREATE TABLE tasks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 50000),
    status       text NOT NULL DEFAULT 'todo'
                   CHECK (status IN ('todo', 'in_progress', 'in_review', 'done', 'cancelled')),
    priority     text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    -- Sort key for priority: low=1 .. urgent=4.
    priority_rank smallint GENERATED ALWAYS AS (
                   CASE priority WHEN 'low' THEN 1 WHEN 'medium' THEN 2
                                 WHEN 'high' THEN 3 ELSE 4 END) STORED,
    assignee_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by   uuid NOT NULL REFERENCES users (id),
    due_date     timestamptz(3),
    completed_at timestamptz(3),
    tags         text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    version      integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   timestamptz(3) NOT NULL DEFAULT now(),
    updated_at   timestamptz(3) NOT NULL DEFAULT now(),
    search       tsvector GENERATED ALWAYS AS (
                   setweight(to_tsvector('english', title), 'A') ||
                   setweight(to_tsvector('english', description), 'B')) STORED,
    CONSTRAINT tasks_completed_when_done CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at DESC, id DESC);
CREATE INDEX tasks_project_updated_idx ON tasks (project_id, updated_at DESC, id DESC);
CREATE INDEX tasks_project_due_idx ON tasks (project_id, due_date, id);
CREATE INDEX tasks_project_priority_idx ON tasks (project_id, priority_rank, id);
CREATE INDEX tasks_project_status_idx ON tasks (project_id, status);
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id, project_id);
CREATE INDEX tasks_created_by_idx ON tasks (created_by, project_id);
CREATE INDEX tasks_tags_idx ON tasks USING gin (tags);
CREATE INDEX tasks_search_idx ON tasks USING gin (search);

CREATE TABLE comments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id),
    content     text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 10000),
    mentions    uuid[] NOT NULL DEFAULT '{}',
    created_at  timestamptz(3) NOT NULL DEFAULT now(),
    updated_at  timestamptz(3) NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX comments_task_idx ON comments (task_id, created_at, id);
CREATE INDEX comments_user_idx ON comments (user_id);
CREATE INDEX comments_search_idx ON comments USING gin (search);

CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL
                  CHECK (type IN ('task_assigned', 'mentioned', 'task_commented', 'task_status_changed')),
    data        jsonb NOT NULL DEFAULT '{}',
    read_at     timestamptz(3),
    created_at  timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;

-- Idempotency-Key replay store (API.md §1): one row per (user, key), holding
-- the request's fingerprint and, once finished, the answer to replay.
CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    response_status integer,
    response_body   text,
    response_headers jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
