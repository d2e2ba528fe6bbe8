-- The leases that have run out at `$1`: up to `$2` tasks whose `lease_expires_at` is at or
-- before `$1`, oldest expiry first, then by id (served by `tasks_lease_expires_at_idx`).
--
-- A read only: the sweep (`TaskFlow::sweep_expired_leases`) reclaims each task with a
-- compare-and-set on the version read here, so two sweepers that read the same task reclaim it
-- once: the second's update affects no row (`Stale`). A lease exists only while a task is
-- `in_progress` (the lifecycle clears it on every other move), so no status is needed here.
SELECT id, title, description, status, priority, progress_percent, assigned_to, project_slug,
       parent_id, created_at, updated_at, version, fence, lease_expires_at, lease_seconds
FROM tasks
WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= $1
ORDER BY lease_expires_at, id
LIMIT $2
