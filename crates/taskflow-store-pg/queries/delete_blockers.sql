-- Step 2 of a delete, after `delete_lock.sql` found the task at the expected version: what
-- stops the delete, in the order the store contract checks it: subtasks (`HasSubtasks`), then
-- tasks that depend on it (`HasDependents`).
--
-- Why it is correct under concurrency: under READ COMMITTED this statement's snapshot is taken
-- after step 1 obtained its row lock, so it sees every subtask and every dependency edge onto
-- the task whose transaction committed before then (such a transaction held FOR KEY SHARE on
-- the row through its foreign-key check, so step 1 waited for it to end). Until this
-- transaction ends, no new subtask or edge can be added: both need FOR KEY SHARE on the row,
-- which conflicts with the FOR UPDATE this transaction holds.
SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = $1) AS has_subtasks,
       EXISTS (SELECT 1 FROM task_dependencies WHERE depends_on = $1) AS has_dependents
