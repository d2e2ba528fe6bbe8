-- Reserve, step 2, after `reserve_insert.sql` found the key of caller `$1`, key `$2` taken:
-- locks the row and reads it, so that the store can decide (in Rust, `decide` in
-- `src/idempotency.rs`) while nobody else can change it: an expired row is overwritten as a
-- fresh reservation (`reserve_take.sql`); another fingerprint is `Mismatch`; an outcome is
-- `Replay`; a reservation younger than the stale limit is `InProgress`; an older one, whose
-- request is presumed dead, is taken over (`reserve_take.sql`).
--
-- Why it is correct under concurrency: this is a new statement, so under READ COMMITTED it
-- takes a new snapshot, which holds the row whose conflict step 1 met (step 1 waited for it to
-- commit). FOR UPDATE then waits for any transaction that holds the row locked (another
-- reservation deciding, a change storing its outcome) and reads the row as that one committed
-- it (EvalPlanQual), so every reservation decides on the latest row, and one at a time. A
-- reservation that takes the key over writes the row before it releases the lock, so the next
-- one to lock it sees a fresh reservation and answers `InProgress`: of any number of
-- concurrent reservations, at most one turns a taken row into `Reserved`. No row (it was
-- forgotten or purged between the two steps) sends the store back to step 1.
SELECT fingerprint, outcome, created_at, expires_at
FROM idempotency_records
WHERE caller = $1 AND key = $2
FOR UPDATE
