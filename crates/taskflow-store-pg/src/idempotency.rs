//! [`IdempotencyStore`] for [`PgStore`]: idempotency records in `idempotency_records`
//! (migration 3), one row per (caller, key).
//!
//! A reservation is a READ COMMITTED transaction of its own (`reserve_insert.sql`, then, when the
//! key is taken, `reserve_lock.sql` and possibly `reserve_take.sql`); the outcome of a change is
//! stored by the change itself, in its own transaction ([`store_outcome`], called by
//! `insert_audit`), and the outcome of a request that changed nothing by
//! [`IdempotencyStore::settle`].
//! The statements live in `queries/*.sql`, each with a comment saying why it is correct under
//! concurrency.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{Row, Transaction};
use taskflow_core::IdempotencyStore;
use taskflow_core::Result;
use taskflow_core::idempotency::{OutcomeRecord, Reservation, Reserve};
use taskflow_core::model::Timestamp;

use crate::PgStore;
use crate::error::PgError;
use crate::store::BEGIN;

/// Reserve, step 1: inserts a reservation if no row holds the key.
const RESERVE_INSERT: &str = include_str!("../queries/reserve_insert.sql");

/// Reserve, step 2: locks and reads the row that holds the key.
const RESERVE_LOCK: &str = include_str!("../queries/reserve_lock.sql");

/// Reserve, step 3: overwrites an expired or abandoned row with a fresh reservation.
const RESERVE_TAKE: &str = include_str!("../queries/reserve_take.sql");

/// Stores an outcome, replacing the reservation (inside a change, or by `settle`).
const STORE_OUTCOME: &str = include_str!("../queries/store_outcome.sql");

/// Deletes the expired records.
const PURGE_EXPIRED: &str = include_str!("../queries/purge_expired.sql");

/// How many times in a row a reservation may find the key taken by step 1 and gone by step 2
/// (forgotten or purged in between) before it gives up. Each round needs a delete of that very
/// key to commit inside that window, so even a second round is rare.
const MAX_RESERVE_ROUNDS: usize = 8;

/// The row that holds a key, as `reserve_lock.sql` read it under its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    fingerprint: String,
    outcome: Option<String>,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// What a reservation does about the row it holds locked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Overwrite the row with a fresh reservation (`reserve_take.sql`): it expired, or its
    /// request died. The answer is [`Reservation::Reserved`].
    Take,
    /// Write nothing and answer this.
    Answer(Reservation),
}

/// The store contract's decision, in its order: a row past its expiry counts as absent; then
/// another fingerprint is a mismatch; then an outcome is replayed; then a reservation made at
/// or after `stale_before` is in progress; an older one is taken over.
fn decide(held: &Held, r: &Reserve) -> Decision {
    if held.expires_at <= r.now {
        return Decision::Take;
    }
    if held.fingerprint != r.fingerprint {
        return Decision::Answer(Reservation::Mismatch);
    }
    match &held.outcome {
        Some(outcome) => Decision::Answer(Reservation::Replay(outcome.clone())),
        None if held.created_at >= r.stale_before => Decision::Answer(Reservation::InProgress),
        None => Decision::Take,
    }
}

/// Stores `outcome`, the rendered outcome of `record`, through `conn`: inside a change's
/// transaction (from `insert_audit`), or in `settle`'s own (`queries/store_outcome.sql`).
pub(crate) async fn store_outcome(
    conn: &mut PgConnection,
    record: &OutcomeRecord,
    outcome: &str,
) -> Result<(), PgError> {
    sqlx::query(STORE_OUTCOME)
        .bind(record.caller.as_str())
        .bind(record.key.as_str())
        .bind(record.fingerprint.as_str())
        .bind(outcome)
        .bind(taskflow_core::model::now())
        .bind(record.expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a reservation that wrote nothing. A failed rollback is only logged: no COMMIT was sent,
/// so the server discards the transaction (and its row lock) when the connection goes.
async fn release(tx: Transaction<'static, Postgres>) {
    if let Err(err) = tx.rollback().await {
        tracing::debug!(%err, "rolling back a reservation that wrote nothing failed");
    }
}

impl PgStore {
    async fn try_reserve(&self, r: &Reserve) -> Result<Reservation, PgError> {
        for _ in 0..MAX_RESERVE_ROUNDS {
            let mut tx = self.pool.begin_with(BEGIN).await?;
            let inserted = sqlx::query(RESERVE_INSERT)
                .bind(r.caller.as_str())
                .bind(r.key.as_str())
                .bind(r.fingerprint.as_str())
                .bind(r.now)
                .bind(r.expires_at)
                .fetch_optional(&mut *tx)
                .await?;
            if inserted.is_some() {
                tx.commit().await?;
                return Ok(Reservation::Reserved);
            }

            let row = sqlx::query(RESERVE_LOCK)
                .bind(r.caller.as_str())
                .bind(r.key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                // Forgotten or purged since step 1: try to insert again.
                tracing::debug!(key = %r.key, "reserved key vanished between insert and lock");
                release(tx).await;
                continue;
            };
            let held = Held {
                fingerprint: row.try_get("fingerprint")?,
                outcome: row.try_get("outcome")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            };
            return match decide(&held, r) {
                Decision::Take => {
                    sqlx::query(RESERVE_TAKE)
                        .bind(r.caller.as_str())
                        .bind(r.key.as_str())
                        .bind(r.fingerprint.as_str())
                        .bind(r.now)
                        .bind(r.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Reservation::Reserved)
                }
                Decision::Answer(answer) => {
                    release(tx).await;
                    Ok(answer)
                }
            };
        }
        Err(PgError::ReserveContended(MAX_RESERVE_ROUNDS))
    }

    async fn try_settle(&self, record: &OutcomeRecord) -> Result<(), PgError> {
        // Rendered before anything is sent: a record that cannot render writes nothing.
        let outcome = record.render(None).map_err(PgError::Outcome)?;
        // A transaction of its own for one statement, so that it runs READ COMMITTED whatever
        // the server's default (`queries/store_outcome.sql` relies on it).
        let mut tx = self.pool.begin_with(BEGIN).await?;
        store_outcome(&mut tx, record, &outcome).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_forget(&self, caller: &str, key: &str) -> Result<(), PgError> {
        // A plain delete of one row by its key: a reservation holding the row locked makes it
        // wait, and one that finds the row gone in its step 2 starts over at step 1.
        let mut tx = self.pool.begin_with(BEGIN).await?;
        sqlx::query("DELETE FROM idempotency_records WHERE caller = $1 AND key = $2")
            .bind(caller)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_purge_expired(&self, now: Timestamp) -> Result<u64, PgError> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let purged = sqlx::query(PURGE_EXPIRED)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn reserve(&self, r: &Reserve) -> Result<Reservation> {
        Ok(self.try_reserve(r).await?)
    }

    async fn settle(&self, record: &OutcomeRecord) -> Result<()> {
        Ok(self.try_settle(record).await?)
    }

    async fn forget(&self, caller: &str, key: &str) -> Result<()> {
        Ok(self.try_forget(caller, key).await?)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        Ok(self.try_purge_expired(now).await?)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::types::chrono::{TimeZone, Utc};

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    /// A reservation at t = 100 s, with a stale limit of 60 s.
    fn reserve(fingerprint: &str) -> Reserve {
        Reserve {
            caller: "alice".into(),
            key: "k".into(),
            fingerprint: fingerprint.into(),
            now: at(100),
            stale_before: at(40),
            expires_at: at(1000),
        }
    }

    fn held(fingerprint: &str, outcome: Option<&str>, created: i64, expires: i64) -> Held {
        Held {
            fingerprint: fingerprint.into(),
            outcome: outcome.map(str::to_owned),
            created_at: at(created),
            expires_at: at(expires),
        }
    }

    #[test]
    fn decisions_follow_the_contract_order() {
        let r = reserve("fp");
        let answer = |h: Held| decide(&h, &r);
        // Expired (at `now` exactly, too): absent, whatever it holds.
        assert_eq!(answer(held("other", Some("{}"), 0, 100)), Decision::Take);
        assert_eq!(answer(held("fp", None, 99, 50)), Decision::Take);
        // Another request, even a finished or abandoned one.
        for h in [
            held("other", Some("{}"), 90, 500),
            held("other", None, 0, 500),
            held("other", None, 90, 500),
        ] {
            assert_eq!(answer(h), Decision::Answer(Reservation::Mismatch));
        }
        // Finished: replayed, however old.
        assert_eq!(
            answer(held("fp", Some("{\"ok\":1}"), 0, 500)),
            Decision::Answer(Reservation::Replay("{\"ok\":1}".into()))
        );
        // Running: in progress from the stale limit on; taken over before it.
        assert_eq!(
            answer(held("fp", None, 40, 500)),
            Decision::Answer(Reservation::InProgress)
        );
        assert_eq!(
            answer(held("fp", None, 99, 500)),
            Decision::Answer(Reservation::InProgress)
        );
        assert_eq!(answer(held("fp", None, 39, 500)), Decision::Take);
    }
}
