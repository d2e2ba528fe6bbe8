-- Migration 3: idempotency records (`taskflow_core::idempotency`): a retried write never acts
-- twice.
--
-- Applied in place to 0.1.0 and work-queue databases: it only adds a table, which starts empty
-- (no earlier request named a key). Migrations 1 and 2 are never edited (sqlx checks their
-- checksums).

-- One row per (caller, key): the fingerprint of the request that reserved the key and, once that
-- request finished, its outcome. The row is written by `reserve` in a transaction of its own
-- (`queries/reserve_*.sql`), and its outcome either by the change itself, in the change's own
-- transaction, next to the change's audit row (`queries/store_outcome.sql`), or afterwards by
-- `settle` for a request that changed nothing.
CREATE TABLE idempotency_records (
    -- Whose key: the caller's actor id. Keys of two callers never meet.
    caller      TEXT        NOT NULL,
    -- The caller's key: 1 to 255 visible ASCII characters (checked by taskflow-core).
    key         TEXT        NOT NULL,
    -- A digest of the request the key names; the same key with another one is refused.
    fingerprint TEXT        NOT NULL,
    -- The encoded outcome (`taskflow_core::idempotency::encode`, JSON) as taskflow-core wrote
    -- it, NULL while the request runs. TEXT rather than JSONB: the store never looks inside, a
    -- replay hands back the very bytes that were stored, and JSONB would refuse the `\u0000`
    -- escape that a JSON string may legally hold.
    outcome     TEXT,
    -- When the key was reserved (or the outcome stored). A reservation without an outcome that
    -- is older than `RESERVATION_TIMEOUT` is presumed dead and may be taken over.
    created_at  TIMESTAMPTZ NOT NULL,
    -- From then on the row counts as absent, and the purge deletes it.
    expires_at  TIMESTAMPTZ NOT NULL,
    -- Every reservation of a key meets every other one on this key's unique index and row lock.
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (caller, key)
);

-- The purge deletes the expired rows, whatever their caller.
CREATE INDEX idempotency_records_expires_at_idx ON idempotency_records (expires_at);
