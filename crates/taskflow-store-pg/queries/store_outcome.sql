-- Stores the outcome `$4` of the request `$3` under key `$2` of caller `$1`, recorded at `$5`,
-- expiring at `$6`, replacing its reservation (or any row of the key). Used by every write that
-- inserts an audit row carrying an outcome (`insert_audit` in `src/store.rs`), inside the
-- change's own transaction, and by `settle` for a request that changed nothing.
--
-- Why it is correct under concurrency: INSERT … ON CONFLICT DO UPDATE either inserts the row or
-- locks and updates the one that exists, atomically, whatever runs at the same moment (a row
-- forgotten or purged meanwhile is inserted again; one inserted meanwhile is updated). Inside
-- a change, the row lock it takes is held until the change commits, so a reservation of the
-- key waits in `reserve_lock.sql` and then sees the outcome, or (if the change rolls back) the
-- reservation as it was. It is the last lock a write takes (after its task rows and its audit
-- row), and a reservation never waits for a task, so it cannot deadlock with one.
INSERT INTO idempotency_records (caller, key, fingerprint, outcome, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (caller, key) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint,
    outcome = EXCLUDED.outcome,
    created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
