-- The audit trail's committed prefix (`Store::audit_horizon`), with `$1` =
-- `taskflow_store_pg::FEED_LOCK_KEY`.
--
-- Audit ids come from a sequence when a row is inserted, but transactions commit in any order:
-- ids 10 and 11 can be taken by two writers, and 11 commit first. A live feed that read up to
-- 11 then would skip 10 for ever. So every writer holds the feed lock shared from its first
-- statement until it ends (`BEGIN_WRITE`), and this statement first takes it exclusively: it
-- waits until every writer that could hold an id has ended (PostgreSQL lets go of a
-- transaction's locks only after its commit is visible), and meanwhile no writer can start.
-- The sequence's last value, read while the lock is held, is then an id such that every row
-- up to it has committed or never will. The lock is released when this statement's implicit
-- transaction ends, a moment later.
--
-- The CTE is materialised and the sequence is read in the outer query's target list, with a
-- volatile function, once per row the CTE produced: after the lock is held.
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock($1))
SELECT COALESCE(
    pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'id')::regclass),
    0
)
FROM locked
