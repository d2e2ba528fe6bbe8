-- taskflow schema, version 3: idempotency records (a retried write never acts twice).
--
-- One row per (caller, key): the fingerprint of the request that first used the key and, once
-- it finished, its encoded outcome (NULL while the request runs: a reservation). A change
-- writes its outcome here in its own transaction, with its audit row. Timestamps are RFC 3339
-- text in UTC with microseconds, like every timestamp here, so text order is time order.
-- `created_at` is when the row was last reserved or given its outcome (a reservation older
-- than the reservation timeout, still without an outcome, may be taken over); `expires_at` is
-- when the row may be purged (a row past it counts as absent).
CREATE TABLE idempotency_records (
    caller      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    outcome     TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (caller, key)
) STRICT, WITHOUT ROWID;

-- The purge of expired records.
CREATE INDEX idempotency_records_by_expires_at ON idempotency_records (expires_at);
