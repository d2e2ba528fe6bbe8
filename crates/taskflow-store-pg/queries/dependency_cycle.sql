-- Adding the edge "task `$1` depends on `$2`": whether following dependency edges from `$2`
-- reaches `$1`. TRUE means the new edge would close a cycle and must be refused
-- (`DependencyCycle`). A self edge (`$1` = `$2`) is a cycle: the walk starts at its goal.
--
-- Run inside the write transaction, after `graph_lock.sql`, so it checks every edge that any
-- earlier graph writer committed (this statement's READ COMMITTED snapshot is taken after the
-- graph lock was granted, see `graph_lock.sql`). No other write can add an edge until this
-- transaction ends: every write that adds one takes the same lock first. Removing edges and
-- deleting tasks take no lock, and they cannot close a cycle. So `A depends on B` and `B depends
-- on A`, sent at the same moment to two server processes, never both succeed: the second to get
-- the lock sees the first's edge.
--
-- `UNION` (not `UNION ALL`) drops ids the walk has already produced, so diamonds are walked
-- once and a cycle stored before (only a hand-edited database could hold one) ends the
-- recursion instead of looping forever. The walk also stops at `$1`, its goal.
WITH RECURSIVE reach (id) AS (
    SELECT $2::BIGINT
    UNION
    SELECT d.depends_on
    FROM task_dependencies AS d
    JOIN reach AS r ON d.task_id = r.id
    WHERE r.id <> $1::BIGINT
)
SELECT EXISTS (SELECT 1 FROM reach WHERE id = $1::BIGINT) AS cycle
