-- The ready queue of an actor: a page of it, most urgent first and then by id, with the number
-- of all ready tasks. Parameters as in `claim_next.sql` ($1 ready status, $2 finished status,
-- $3 actor id, $4 project or NULL, $5..$8 the priorities, most urgent first), then $9 the page
-- size and $10 the offset. The store binds every status and priority from the `ReadyRule` it is
-- given; it spells none.
--
-- The count and the page come from one statement, so they see one snapshot. The count is a
-- single row joined to the (possibly empty) page, so a page past the end still carries the
-- total: its one row has NULL in every page column. A read only: nothing here is locked, and
-- a task listed may be claimed by someone else a moment later.
WITH ready AS (
    SELECT t.id, t.title, t.description, t.status, t.priority, t.progress_percent,
           t.assigned_to, t.project_slug, t.parent_id, t.created_at, t.updated_at, t.version,
           t.fence, t.lease_expires_at, t.lease_seconds,
           CASE t.priority WHEN $5 THEN 0 WHEN $6 THEN 1 WHEN $7 THEN 2 WHEN $8 THEN 3 ELSE 4 END
               AS rank
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
)
SELECT c.total, p.*
FROM (SELECT count(*) AS total FROM ready) AS c
LEFT JOIN LATERAL (
    SELECT * FROM ready ORDER BY rank, id LIMIT $9 OFFSET $10
) AS p ON TRUE
ORDER BY p.rank, p.id
