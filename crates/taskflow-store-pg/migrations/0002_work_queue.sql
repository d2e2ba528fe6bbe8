-- Migration 2: the work queue (dependencies between tasks, the ready queue, claim-next, leases).
--
-- Applied in place to 0.1.0 databases: every existing task gets fence 0 and no lease, and no
-- dependency edges. Migration 1 is never edited (sqlx checks its checksum).

-- `fence` grows by one on every start, so a holder that lost its lease cannot overwrite the one
-- that took over. `lease_expires_at` and `lease_seconds` are set together, while a task is
-- `in_progress` with a lease, and cleared together.
ALTER TABLE tasks
    ADD COLUMN fence            BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at TIMESTAMPTZ,
    ADD COLUMN lease_seconds    BIGINT;

-- One row per edge: `task_id` cannot start until `depends_on` is finished.
CREATE TABLE task_dependencies (
    -- Deleting a task drops the edges it holds.
    task_id    BIGINT NOT NULL
        CONSTRAINT task_dependencies_task_id_fkey REFERENCES tasks (id) ON DELETE CASCADE,
    -- NO ACTION: the store refuses to delete a task that others depend on ("HasDependents")
    -- before it tries; this foreign key is the safety net, and the store answers the same
    -- refusal for its violation.
    depends_on BIGINT NOT NULL
        CONSTRAINT task_dependencies_depends_on_fkey REFERENCES tasks (id),
    CONSTRAINT task_dependencies_pkey PRIMARY KEY (task_id, depends_on)
);

-- "Who depends on this task?": the dependents of a task, the delete check, and the foreign
-- key's own lookups when a task is deleted. (The primary key serves "what does it depend on?".)
CREATE INDEX task_dependencies_depends_on_idx ON task_dependencies (depends_on, task_id);

-- The lease sweep reads the expired leases, oldest first; only tasks holding a lease are indexed.
CREATE INDEX tasks_lease_expires_at_idx ON tasks (lease_expires_at, id)
    WHERE lease_expires_at IS NOT NULL;

-- The ready queue and claim-next read pending tasks only, however many tasks are finished.
-- `pending` is the ready status of the default lifecycle (`taskflow_core::lifecycle::READY`).
-- The queries bind the status rather than spell it; PostgreSQL uses this index in the plans it
-- makes for the bound value (custom plans, which it keeps choosing while they are cheaper than
-- a generic plan, as they are whenever most tasks are not pending).
CREATE INDEX tasks_ready_idx ON tasks (priority, id)
    WHERE status = 'pending';
