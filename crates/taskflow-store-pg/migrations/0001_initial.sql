-- taskflow's schema on PostgreSQL: tasks, their audit trail, and the worker registry.
--
-- Statuses, priorities and actor types are stored as their wire spelling (`as_str()` in
-- taskflow-core). The schema does not repeat the lifecycle's rules: taskflow-core decides what
-- is legal, the store only persists it.

CREATE TABLE tasks (
    -- An identity column draws from a sequence, which never hands a value out twice, even after
    -- a rollback or a delete.
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title            TEXT        NOT NULL,
    description      TEXT,
    status           TEXT        NOT NULL,
    priority         TEXT        NOT NULL,
    progress_percent INTEGER     NOT NULL,
    assigned_to      TEXT,
    project_slug     TEXT,
    -- NO ACTION: deleting a task that still has subtasks fails with SQLSTATE 23503, which the
    -- store reports as "Task has subtasks"; inserting under a vanished parent fails the same way.
    parent_id        BIGINT
        CONSTRAINT tasks_parent_id_fkey REFERENCES tasks (id),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    version          BIGINT      NOT NULL
);

-- One index per list filter. Each ends in `id`, so a filtered page is read in id order straight
-- from the index.
CREATE INDEX tasks_status_idx       ON tasks (status, id);
CREATE INDEX tasks_assigned_to_idx  ON tasks (assigned_to, id);
CREATE INDEX tasks_project_slug_idx ON tasks (project_slug, id);
CREATE INDEX tasks_priority_idx     ON tasks (priority, id);
-- Also serves the "has subtasks?" check on delete and the foreign key's own lookups.
CREATE INDEX tasks_parent_id_idx    ON tasks (parent_id, id);

CREATE TABLE audit_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Deliberately not a foreign key: audit rows outlive the task they describe.
    task_id      BIGINT      NOT NULL,
    project_slug TEXT,
    actor_id     TEXT        NOT NULL,
    actor_type   TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    context      JSONB,
    "timestamp"  TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_log_task_id_idx      ON audit_log (task_id, id);
CREATE INDEX audit_log_actor_id_idx     ON audit_log (actor_id, id);
CREATE INDEX audit_log_action_idx       ON audit_log (action, id);
CREATE INDEX audit_log_project_slug_idx ON audit_log (project_slug, id);

CREATE TABLE workers (
    -- Byte order, so "ordered by id" means the same on every server and in every backend,
    -- whatever the database's default collation.
    id          TEXT        COLLATE "C" PRIMARY KEY,
    worker_type TEXT        NOT NULL,
    name        TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
