-- Claim-next, step 1: picks and locks the first task of one priority in the caller's ready
-- queue, skipping the tasks other claimers hold. The ready predicate is that of
-- `ready_tasks.sql` (keep the two in step; a unit test compares them):
--   $1 the ready status, $2 the finished status (`ReadyRule::ready`, `ReadyRule::finished`),
--   $3 the claimer's actor id, $4 the project or NULL, $5..$8 the priorities, most urgent
--   first (`ReadyRule::urgency`), $9 ids to leave out (candidates this transaction already
--   found waiting, see `claim_waiting.sql`), $10 the rank (1..4) of the priority to look in.
--
-- The queue's order is rank, then id. The claim asks rank 1, then 2, and so on, and takes the
-- first task it finds: the head of the queue, as `ready_tasks.sql` orders it (a priority the
-- urgency does not rank comes last: `claim_unranked.sql`). Within one priority the pending
-- tasks are walked in id order on `tasks_ready_idx` (priority, id) and the walk stops at the
-- first that qualifies, so a claim never ranks every ready task.
--
-- Why two claimers can never take the same task: FOR UPDATE puts an exclusive row lock on the
-- task it returns, held until the claim commits or rolls back, and a claimer only writes the
-- task it holds locked. A second claimer cannot lock that row while the first holds it; once
-- the first has committed, the row is `in_progress` (and at a new version), and under READ
-- COMMITTED the second, locking it, re-reads the row as committed and re-checks this WHERE
-- clause against it (EvalPlanQual): `status = $1` fails, and the row is not returned. The claim
-- then writes with a compare-and-set on the version it read (`update_task.sql`) as a second
-- guard. So each task goes to at most one claimer.
--
-- Why they do not collide at the head of the queue: SKIP LOCKED makes a claimer pass over rows
-- that another transaction has locked instead of waiting for them, so the claimers that run at
-- the same moment spread over the first tasks of the queue, one each, instead of all queueing on
-- the head's lock and re-reading it in turn. No claimer picks a task, loses it, and retries.
--
-- What it does not see: the NOT EXISTS below is evaluated with this statement's snapshot, even
-- when EvalPlanQual re-reads a row that changed after it was taken. A dependency added to a task
-- between that snapshot and the lock is therefore missed here; the claim re-checks the locked
-- task's dependencies with a fresh statement (`claim_waiting.sql`) before it writes anything.
SELECT t.id, t.title, t.description, t.status, t.priority, t.progress_percent, t.assigned_to,
       t.project_slug, t.parent_id, t.created_at, t.updated_at, t.version, t.fence,
       t.lease_expires_at, t.lease_seconds
FROM tasks AS t
-- ready:begin
WHERE t.status = $1
  AND (t.assigned_to IS NULL OR t.assigned_to = $3)
  AND ($4::TEXT IS NULL OR t.project_slug = $4)
  AND NOT EXISTS (
      SELECT 1
      FROM task_dependencies AS d
      JOIN tasks AS dep ON dep.id = d.depends_on
      WHERE d.task_id = t.id AND dep.status <> $2
  )
-- ready:end
  AND t.id <> ALL ($9::BIGINT[])
  AND t.priority = (ARRAY[$5, $6, $7, $8]::TEXT[])[$10]
ORDER BY t.id
LIMIT 1
FOR UPDATE OF t SKIP LOCKED
