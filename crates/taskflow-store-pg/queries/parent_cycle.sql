-- `Invariant::AcyclicParent { task: $1, parent: $2 }`: whether following `parent_id` from
-- `$2` reaches `$1`. TRUE means the write would close a cycle and must be refused.
--
-- Run inside the write transaction, after `graph_lock.sql` and after the write's own UPDATE, so
-- it checks the graph as it will be committed: its own change (seen by its own transaction),
-- plus everything every earlier graph writer committed (seen because this statement's READ
-- COMMITTED snapshot is taken after the graph lock was granted, see `graph_lock.sql`). No other
-- write can add an edge that closes a cycle until this transaction ends: every write that
-- changes a parent takes the same lock, and the writes that do not take it (inserting a task,
-- keeping or clearing a parent, deleting a task without subtasks) cannot close a cycle.
--
-- `UNION` (not `UNION ALL`) drops ids the walk has already produced, so a cycle stored before
-- (only a hand-edited database could hold one) ends the recursion instead of looping forever.
-- The walk also stops at `$1` itself, its goal.
WITH RECURSIVE chain (id) AS (
    SELECT $2::BIGINT
    UNION
    SELECT t.parent_id
    FROM tasks AS t
    JOIN chain AS c ON t.id = c.id
    WHERE c.id <> $1::BIGINT AND t.parent_id IS NOT NULL
)
SELECT EXISTS (SELECT 1 FROM chain WHERE id = $1::BIGINT) AS cycle
