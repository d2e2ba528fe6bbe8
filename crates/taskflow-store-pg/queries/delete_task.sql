-- Step 3 of a delete, after `delete_blockers.sql` found neither subtasks nor dependents: removes
-- the task. The edges it holds (`task_dependencies.task_id`) go with it (ON DELETE CASCADE).
--
-- Why it is correct under concurrency: the row is locked by this transaction since step 1, so
-- it is still there and nothing can have gained a subtask or a dependent meanwhile (see
-- `delete_blockers.sql`). The foreign keys are the safety net all the same: NO ACTION, checked
-- at the end of this statement, `tasks_parent_id_fkey` refuses the delete if a subtask exists
-- (the store answers `HasSubtasks`) and `task_dependencies_depends_on_fkey` if a task depends on
-- it (the store answers `HasDependents`).
DELETE FROM tasks WHERE id = $1
