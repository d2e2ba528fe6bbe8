-- taskflow schema, version 5: claim-next in one project finds the head by index too.
--
-- Claim-next looks in one priority at a time, in id order. With a project named,
-- `tasks_ready_idx` (priority, id) walks the pending tasks of the priority in every project to
-- find the first of this one, and `tasks_project_status_idx` walks the project's pending tasks
-- of every priority; behind 60,000 pending tasks of another project either reads them all on
-- every claim. This index holds the pending tasks by project, then priority, then id. As for
-- `tasks_ready_idx`, `pending` is the default lifecycle's ready status, and the bound status
-- matches it in the custom plans PostgreSQL makes. Nothing existing changes.
CREATE INDEX tasks_ready_project_idx ON tasks (project_slug, priority, id)
    WHERE status = 'pending';
