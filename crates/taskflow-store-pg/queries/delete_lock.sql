-- Step 1 of a delete: locks the task's row and reads its version, so that the version is
-- checked before anything else (a missing row or another version: `Stale`).
--
-- Why it is correct under concurrency: FOR UPDATE waits for any transaction that holds a lock
-- on the row (an update of the task, an insert or re-parent of a subtask, or a new dependency
-- edge onto the task, whose foreign-key checks hold FOR KEY SHARE on this row) to end, and then
-- reads the row as committed. From then until this transaction ends no one can change the task,
-- delete it, give it a new subtask or make another task depend on it: each of those needs a row
-- lock that conflicts with FOR UPDATE.
SELECT version FROM tasks WHERE id = $1 FOR UPDATE
