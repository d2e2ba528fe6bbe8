-- taskflow schema, version 1.
-- AUTOINCREMENT keeps ids from ever being reused after a delete.

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    title            TEXT    NOT NULL,
    description      TEXT,
    status           TEXT    NOT NULL,
    priority         TEXT    NOT NULL,
    progress_percent INTEGER NOT NULL,
    assigned_to      TEXT,
    project_slug     TEXT,
    parent_id        INTEGER REFERENCES tasks (id),
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    version          INTEGER NOT NULL
) STRICT;

-- One index per list filter. Each also orders by rowid (= id), which is the listing order.
CREATE INDEX tasks_by_status       ON tasks (status);
CREATE INDEX tasks_by_assigned_to  ON tasks (assigned_to);
CREATE INDEX tasks_by_project_slug ON tasks (project_slug);
CREATE INDEX tasks_by_priority     ON tasks (priority);
CREATE INDEX tasks_by_parent_id    ON tasks (parent_id);

-- No foreign key on task_id: audit rows outlive the task they describe.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id      INTEGER NOT NULL,
    project_slug TEXT,
    actor_id     TEXT    NOT NULL,
    actor_type   TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    context      TEXT,
    timestamp    TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_by_task_id      ON audit_log (task_id);
CREATE INDEX audit_by_actor_id     ON audit_log (actor_id);
CREATE INDEX audit_by_action       ON audit_log (action);
CREATE INDEX audit_by_project_slug ON audit_log (project_slug);

CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    name       TEXT,
    created_at TEXT NOT NULL
) STRICT;
