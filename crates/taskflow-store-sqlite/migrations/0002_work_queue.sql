-- taskflow schema, version 2: the work queue (dependencies, the ready queue, claim-next,
-- leases).
--
-- Runs inside rusqlite_migration's transaction, on a connection with foreign keys on (0.1.0
-- opened its files that way too). Nothing here rebuilds a table, which would need foreign keys
-- off and so could not run in a transaction: columns are added in place, and existing rows
-- take the defaults (fence 0, no lease).

-- A task's fence: 0 when created, + 1 on every start. Its lease: when it runs out (RFC 3339
-- text with microseconds, like every timestamp here, so text order is time order) and how long
-- it was granted for, in seconds. Both NULL when the task holds no lease.
ALTER TABLE tasks ADD COLUMN fence            INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_expires_at TEXT;
ALTER TABLE tasks ADD COLUMN lease_seconds    INTEGER;

-- One row per edge: `task_id` cannot start until `depends_on` is finished.
-- Deleting a task drops the edges it holds (CASCADE on task_id). Deleting a task that others
-- depend on is refused by the store before it gets here; the foreign key on depends_on (no
-- cascade) is the safety net.
CREATE TABLE task_dependencies (
    task_id    INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on)
) STRICT, WITHOUT ROWID;

-- The dependents of a task (delete's check, the cycle walk's reverse lookups, and the foreign
-- key's own check when a task is deleted).
CREATE INDEX task_dependencies_by_depends_on ON task_dependencies (depends_on, task_id);

-- The lease sweep: only tasks that hold a lease, oldest expiry first.
CREATE INDEX tasks_by_lease_expires_at ON tasks (lease_expires_at, id)
    WHERE lease_expires_at IS NOT NULL;

-- The ready queue and claim-next: tasks in the ready status, by who holds them. The status is
-- bound by the store from the lifecycle's ready rule, so no status is spelled here.
CREATE INDEX tasks_ready ON tasks (status, assigned_to, priority);
