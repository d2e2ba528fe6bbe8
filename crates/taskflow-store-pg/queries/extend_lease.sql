-- A heartbeat's lease renewal: sets the lease of task `$1` to expire at `$3`, with length `$4`
-- seconds, if the task is still at version `$2`. Not a change of the task: the version stays,
-- and no audit row is written.
--
-- Why it is correct under concurrency: like `update_task.sql`, under READ COMMITTED an UPDATE
-- that finds its row locked waits for the other writer and re-evaluates `version = $2` on the
-- row it left (EvalPlanQual). A change that moved the task on (a completion, a release, the
-- sweep reclaiming the lease) bumps the version, so a renewal that raced with it affects 0 rows
-- and the store answers `Stale`: a lease the sweep reclaimed is never revived. Two renewals of
-- the same version both succeed, the later one last; neither changes the version.
UPDATE tasks
SET lease_expires_at = $3,
    lease_seconds = $4
WHERE id = $1 AND version = $2
