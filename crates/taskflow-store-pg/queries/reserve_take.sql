-- Reserve, step 3, when `reserve_lock.sql` found the row of caller `$1`, key `$2` expired, or a
-- reservation whose request died (no outcome, made before the stale limit): replaces it with a
-- fresh reservation of the request `$3`, made at `$4`, expiring at `$5`.
--
-- Why it is correct under concurrency: this transaction holds the row locked since step 2
-- (FOR UPDATE), so the row is still the one it decided on, and every other reservation of the
-- key waits in its own step 2 until this one commits, then reads this fresh reservation and
-- answers `InProgress` (or `Mismatch`). So only this reservation is `Reserved`.
UPDATE idempotency_records
SET fingerprint = $3,
    outcome = NULL,
    created_at = $4,
    expires_at = $5
WHERE caller = $1 AND key = $2
