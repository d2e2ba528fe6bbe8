-- The edges of task `$1`, in one statement (so one snapshot): first the tasks it depends on,
-- with their status now (`outgoing` TRUE), then the tasks that depend on it (`outgoing` FALSE,
-- no status); ids ascending within each. Served by the primary key and by
-- `task_dependencies_depends_on_idx`.
SELECT TRUE AS outgoing, d.depends_on AS id, t.status
FROM task_dependencies AS d
JOIN tasks AS t ON t.id = d.depends_on
WHERE d.task_id = $1
UNION ALL
SELECT FALSE AS outgoing, d.task_id AS id, NULL AS status
FROM task_dependencies AS d
WHERE d.depends_on = $1
ORDER BY outgoing DESC, id
