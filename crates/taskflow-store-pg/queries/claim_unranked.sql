-- Claim-next's last resort: as `claim_next.sql`, in the tasks whose priority the urgency
-- ($5..$8) does not rank, which the queue orders last. With the default lifecycle the urgency
-- ranks every priority, and this query is never sent. Same parameters as `claim_next.sql`
-- but $10.
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
  AND t.priority <> ALL (ARRAY[$5, $6, $7, $8]::TEXT[])
ORDER BY t.id
LIMIT 1
FOR UPDATE OF t SKIP LOCKED
