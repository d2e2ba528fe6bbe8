-- Step 2 of a delete, after `delete_lock.sql` found the task at the expected version: removes
-- it unless it has subtasks. 0 rows affected means it has some (the row is locked by this
-- transaction, so it is still there): the store answers `HasSubtasks`.
--
-- Why it is correct under concurrency: under READ COMMITTED this statement's snapshot is taken
-- after step 1 obtained its lock, so it sees every subtask whose insert or re-parent committed
-- before then, and the lock keeps new ones out until this transaction ends. The
-- `tasks_parent_id_fkey` foreign key (NO ACTION, checked at the end of this statement) refuses
-- the delete all the same if a subtask it did not see exists; the store answers `HasSubtasks`
-- for that violation too.
DELETE FROM tasks AS t
WHERE t.id = $1
  AND NOT EXISTS (SELECT 1 FROM tasks AS c WHERE c.parent_id = t.id)
