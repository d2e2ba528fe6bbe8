-- Claim-next, step 2: whether the task `claim_next.sql` just locked (`$1`) waits on a dependency
-- that is not in the finished status (`$2`). TRUE: the claim leaves it and picks again.
--
-- Why it is needed and why it is enough: `claim_next.sql` judged the dependencies with a
-- snapshot taken before it locked the row, so an edge committed in between is missing from that
-- judgement (the rest of its WHERE clause was re-checked on the locked row itself). This is a new
-- statement, so under READ COMMITTED it takes a new snapshot, after the lock was granted. Adding
-- an edge to a task changes the task's row in the same transaction (version + 1), so every such
-- transaction either committed before the lock was granted (and is seen here) or waits for this
-- claim to end (and then fails its compare-and-set). A dependency's status cannot leave the
-- finished status either: completed is terminal in the lifecycle.
SELECT EXISTS (
    SELECT 1
    FROM task_dependencies AS d
    JOIN tasks AS dep ON dep.id = d.depends_on
    WHERE d.task_id = $1 AND dep.status <> $2
) AS waiting
