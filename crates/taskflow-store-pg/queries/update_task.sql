-- The compare-and-set update of one task: it changes the row only if it is at the version the
-- writer expects (`$2`) with the lease expiry it read (`$16`): a heartbeat renews a lease without
-- a new version, and a write that read the task before the heartbeat must not undo it. `created_at` is not in the SET list: it never changes. Used by every
-- change of a task: updates, dependency changes (`write_dependency`) and claim-next.
--
-- Why it is correct under concurrency: under READ COMMITTED, an UPDATE that finds its row
-- locked by another writer waits for that writer to end, then re-evaluates `version = $2`
-- against the row as that writer left it (EvalPlanQual). Of two writers expecting the same
-- version, the second therefore matches no row once the first has committed: it affects 0 rows
-- and the store answers `Stale`. A `parent_id` that names no task fails the
-- `tasks_parent_id_fkey` check (which key-share locks the parent row, so the parent cannot
-- vanish before this transaction ends) and the store answers `ParentMissing`.
--
-- It returns the stored `created_at` (one row when it wrote, none when it lost), so that the
-- store knows the task exactly as written: every column from the write, `created_at` from the
-- row. That is the task an idempotency outcome that rides on the change is made from.
UPDATE tasks
SET title = $3,
    description = $4,
    status = $5,
    priority = $6,
    progress_percent = $7,
    assigned_to = $8,
    project_slug = $9,
    parent_id = $10,
    updated_at = $11,
    version = $12,
    fence = $13,
    lease_expires_at = $14,
    lease_seconds = $15
WHERE id = $1 AND version = $2 AND lease_expires_at IS NOT DISTINCT FROM $16
RETURNING created_at
