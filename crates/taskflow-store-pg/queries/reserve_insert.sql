-- Reserve, step 1 (`IdempotencyStore::reserve`, in a READ COMMITTED transaction of its own):
-- claims key `$2` of caller `$1` for the request `$3` when no row holds it, as a reservation (no
-- outcome) made at `$4` that expires at `$5`. Returns one row when it inserted, none when a row
-- for the key exists already (step 2, `reserve_lock.sql`, then decides).
--
-- Why exactly one of many concurrent reservations of a free key inserts: the primary key
-- `(caller, key)` is a unique index, and an insert that meets a row of another transaction
-- still in flight in that index waits for it to end. If that transaction commits, this insert
-- sees the conflict and does nothing; if it rolls back, this insert goes on. This check is made
-- against the index (every committed row, whatever the snapshot), not against the statement's
-- snapshot, so two inserts of one key can never both succeed. The winner keeps the new row
-- locked until it commits, and every other reservation of the key reads the row only after
-- that (see `reserve_lock.sql`).
INSERT INTO idempotency_records (caller, key, fingerprint, outcome, created_at, expires_at)
VALUES ($1, $2, $3, NULL, $4, $5)
ON CONFLICT (caller, key) DO NOTHING
RETURNING TRUE AS reserved
