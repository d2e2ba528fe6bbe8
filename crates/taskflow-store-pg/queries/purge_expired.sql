-- Deletes the idempotency records that expired at `$1` (`expires_at` at or before it), served
-- by `idempotency_records_expires_at_idx`.
--
-- Why it is correct under concurrency: a row that a reservation is taking over at the same
-- moment is locked by it; the DELETE waits, re-checks `expires_at <= $1` on the row as the
-- reservation left it (EvalPlanQual), and leaves the fresh reservation alone. A reservation
-- that locks a row this purge deleted finds none, and inserts a new one.
DELETE FROM idempotency_records WHERE expires_at <= $1
