//! [`PgStore`]: taskflow's PostgreSQL store, on [sqlx](https://docs.rs/sqlx).
//!
//! PostgreSQL is how taskflow scales out: several stateless server processes, each with its own
//! [`PgStore`] and connection pool, share one database. Every guarantee of
//! [`taskflow_core::Store`] holds across them, because it is kept by the database rather than
//! by the process:
//!
//! - each write and its audit row commit in one transaction, which starts with `BEGIN
//!   ISOLATION LEVEL READ COMMITTED` whatever the server's default, since the guarantees below
//!   rely on every statement taking a fresh snapshot;
//! - an insert under a parent that does not exist (or is deleted meanwhile) is refused by the
//!   `tasks_parent_id_fkey` foreign key, and the store answers [`Conflict::ParentMissing`]
//!   having written nothing; so is an update to such a parent;
//! - an update is `UPDATE … WHERE id = $1 AND version = $2`, a compare-and-set that PostgreSQL's
//!   row locks make exclusive, so of 50 processes racing to start one task exactly one wins and
//!   the others get [`Written::Stale`](taskflow_core::Written::Stale). It writes every column
//!   but `created_at`, which never changes;
//! - an update that carries [`Invariant::AcyclicParent`] (a re-parent) first takes a
//!   transaction-level advisory lock on [`GRAPH_LOCK_KEY`], which serialises re-parents across
//!   connections and server processes, and after its own `UPDATE` follows `parent_id` from the
//!   new parent with a recursive query; reaching the task answers
//!   [`Conflict::ParentCycle`] and writes nothing. So `A.parent = B` and `B.parent = A`, sent
//!   at the same moment to two processes, never both succeed;
//! - a delete locks the task's row (`SELECT … FOR UPDATE`) and checks its version first (a
//!   missing task or another version is `Stale`), then its subtasks
//!   ([`Conflict::HasSubtasks`]), then the tasks that depend on it
//!   ([`Conflict::HasDependents`]). The row lock keeps new subtasks and new dependents out until
//!   the delete ends (both need a key-share lock on the row for their foreign-key check), and
//!   the foreign keys refuse the delete if one got past the check all the same. The edges the
//!   task holds itself are deleted with it;
//! - ids come from identity columns, which never hand a value out twice.
//!
//! The statements whose correctness under concurrency is not obvious (the cycle checks, the
//! graph lock, the compare-and-set update, the steps of a delete, claim-next, the lease
//! renewal, and the steps of a reservation and the storing of an outcome) live in
//! `crates/taskflow-store-pg/queries/`, each with a comment saying why it is correct.
//!
//! # Work queue
//!
//! [`PgStore`] has taskflow's work queue ([`taskflow_core::QueueStore`], through
//! [`Store::queue`](taskflow_core::Store::queue)): dependencies between tasks, the ready queue,
//! an atomic claim-next and leases, with the same guarantees across server processes.
//!
//! - **Dependencies** are rows of `task_dependencies (task_id, depends_on)`. Adding or removing
//!   one is a change of `task_id` (a compare-and-set on its version, version + 1, and a
//!   `dependency_added` or `dependency_removed` row) in one transaction; the version is checked
//!   first ([`Written::Stale`](taskflow_core::Written::Stale)). Adding one takes the graph lock
//!   ([`GRAPH_LOCK_KEY`], the same lock as re-parents) and then, each in a statement of its
//!   own, refuses a target that does not exist ([`Conflict::DependencyMissing`]), an edge that
//!   exists ([`Conflict::DependencyExists`]) and an edge that would close a cycle, a self edge
//!   included ([`Conflict::DependencyCycle`], a recursive query over the edges). So `A depends
//!   on B` and `B depends on A`, sent at the same moment to two processes, never both succeed.
//!   Removing an edge that does not exist is [`Conflict::NoSuchDependency`].
//! - **The ready queue** of an actor is the tasks in the ready status, unassigned or assigned to
//!   that actor, whose every dependency is in the finished status; most urgent first, then by
//!   id. The store binds those statuses and the order of priorities from the
//!   [`ReadyRule`](taskflow_core::lifecycle::ReadyRule) it is given and spells none itself.
//! - **Claim-next** is one transaction: it selects the head of the caller's ready queue with
//!   `FOR UPDATE OF t SKIP LOCKED LIMIT 1`, so concurrent claimers lock different tasks instead
//!   of queueing on the head; re-checks the locked task's dependencies with a fresh statement
//!   (an edge added between the select's snapshot and its lock would otherwise be missed) and, if
//!   the task now waits, leaves it and picks again; asks the lifecycle's decision
//!   ([`Claim::decide`](taskflow_core::Claim)) what the claimed task becomes; and writes it with
//!   a compare-and-set on the version it read, plus its `started` row. Of any number of
//!   claimers in any number of processes, each task goes to one; a claimer that finds nothing
//!   ready gets `None`. Every claim sorts the caller's whole ready queue by urgency, so a claim
//!   costs more as that queue grows (see `benches/claim.rs`).
//! - **Leases**: `tasks.lease_expires_at` and `tasks.lease_seconds`, written with the task. A
//!   heartbeat ([`QueueStore::extend_lease`](taskflow_core::QueueStore::extend_lease)) renews
//!   one with a compare-and-set on the version that leaves the version alone and writes no
//!   audit row, so it never revives a lease the sweep has reclaimed.
//!   [`QueueStore::expired_leases`](taskflow_core::QueueStore::expired_leases) lists the leases
//!   that have run out, oldest first; the sweep reclaims each with a compare-and-set, so two
//!   sweepers in two processes reclaim each exactly once.
//! - **Fences**: `tasks.fence`, written with the task; every start adds one
//!   ([`taskflow_core::lifecycle`] decides that, the store stores it).
//!
//! Migration 2 (`0002_work_queue.sql`) adds all this to a 0.1.0 database in place: every task
//! gets fence 0 and no lease, and no task depends on another.
//!
//! # Idempotency keys
//!
//! [`PgStore`] keeps idempotency records ([`taskflow_core::IdempotencyStore`], through
//! [`Store::idempotency`](taskflow_core::Store::idempotency)), so that a retried write never acts
//! twice ([`taskflow_core::idempotency`],
//! [`TaskFlow::execute_once`](taskflow_core::TaskFlow::execute_once)), whichever server process
//! the retry reaches.
//!
//! - **Records** are rows of `idempotency_records (caller, key, fingerprint, outcome,
//!   created_at, expires_at)`, one per (caller, key) (the primary key). `outcome` is the encoded
//!   outcome as taskflow-core wrote it, as `TEXT` (replayed byte for byte), and NULL while the
//!   request runs.
//! - **A reservation** is a READ COMMITTED transaction of its own:
//!   `INSERT … ON CONFLICT (caller, key) DO NOTHING`; when a row holds the key, that row is
//!   locked (`SELECT … FOR UPDATE`) and the store decides, in the contract's order: a record past
//!   its expiry counts as absent and is overwritten by a fresh reservation (`Reserved`); another
//!   fingerprint is `Mismatch`; an outcome is `Replay`; a reservation made at or after the stale
//!   limit is `InProgress`; an older one, whose request is presumed dead, is taken over
//!   (`Reserved`). Every reservation that answers `Reserved` has written the row (insert or
//!   overwrite) and holds it until it commits; every other reservation of the key meets that
//!   row, on the unique index or on its row lock, and decides only after that commit, on the
//!   fresh reservation: `InProgress`. So of any number of concurrent reservations of one key,
//!   in any number of processes, exactly one is `Reserved`. (The times compared are the ones
//!   the callers pass, so this assumes the servers' clocks agree to well within
//!   [`RESERVATION_TIMEOUT`](taskflow_core::idempotency::RESERVATION_TIMEOUT).)
//! - **The record comes with the change.** Every write of this store that inserts an audit
//!   row (insert, update, delete, adding or removing a dependency, claim-next) stores the
//!   outcome that row carries ([`AuditDraft::outcome`](taskflow_core::model::AuditDraft::outcome))
//!   as the record of its (caller, key), in the same transaction as the change and its audit
//!   row, rendered from the task as that transaction wrote it (a new task with its id, an
//!   updated, re-linked or claimed task; nothing for a delete). The change, its audit row and its
//!   record commit together or not at all: a process that dies right after the commit leaves a
//!   record that replays the change, never a change that a retry would make again. An outcome
//!   that cannot be rendered fails the write, which is rolled back.
//! - **Requests that changed nothing** (a refusal, a write with no effect) store their outcome
//!   afterwards ([`IdempotencyStore::settle`](taskflow_core::IdempotencyStore::settle)); one
//!   whose outcome is not kept drops its reservation
//!   ([`IdempotencyStore::forget`](taskflow_core::IdempotencyStore::forget)).
//! - **Expiry**:
//!   [`IdempotencyStore::purge_expired`](taskflow_core::IdempotencyStore::purge_expired) deletes
//!   the records past their `expires_at` (indexed).
//!
//! Migration 3 (`0003_idempotency.sql`) adds the `idempotency_records` table and its
//! `expires_at` index to an existing database in place; it touches no existing table, and starts
//! with no records. Migrations 1 and 2 are unchanged.
//!
//! Migration 4 (`0004_project_status.sql`) adds an index on `tasks (project_slug, status, id)`,
//! so that a project's page in one status, and its count for `X-Total-Count`, read only the
//! matching entries. Migration 5 (`0005_ready_project.sql`) adds a partial index on the
//! pending tasks by `(project_slug, priority, id)`, so that claim-next in one project walks only
//! that project's ready tasks.
//!
//! The schema lives in numbered `.sql` migrations embedded in the binary
//! (`crates/taskflow-store-pg/migrations/`). [`PgStore::connect`] applies any that are missing;
//! [`PgStore::migrate`] does the same on demand, and is a no-op when the schema is current.
//! Concurrent starters are safe: sqlx serialises migrations with an advisory lock.
//!
//! Queries are checked at run time, so building this crate needs no database.
//!
//! # Features
//!
//! - `test-support`: the [`test_support` module](crate::test_support), a fresh database per
//!   test on the server `TASKFLOW_TEST_PG_URL` names, for this crate's tests and the
//!   workspace's HTTP tests.
//!
//! # TLS
//!
//! Connections to a server over TCP can use TLS: sqlx's rustls backend on the aws-lc-rs
//! provider (sqlx's feature `tls-rustls-aws-lc-rs`), the one crypto stack of the workspace; no
//! OpenSSL and no `ring`. A hosted Postgres such as Neon connects with the URL it hands out,
//! `postgresql://user:pass@host/db?sslmode=require` (rustls sends the host name as SNI, which
//! Neon routes by).
//!
//! The URL's `sslmode` and `sslrootcert` (or `PGSSLMODE` and `PGSSLROOTCERT`) mean what they mean
//! to libpq:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | never (libpq would fall back to TLS if the server insisted) | — |
//! | `prefer` (default) | when the server offers it, else plain | not checked |
//! | `require` | always; fails if the server offers none | not checked, unless `sslrootcert` names a file that exists: then as `verify-ca` |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA, and issued for the host in the URL |
//!
//! - **Trusted CAs** are the well-known public ones (the webpki roots, Mozilla's list, built into
//!   the binary; the operating system's store is not read) plus the certificates in the PEM file
//!   `sslrootcert` names. Unlike libpq, the file adds to the public CAs instead of replacing
//!   them: pinning a private CA does not make a publicly trusted certificate for the same host
//!   fail.
//! - **`sslrootcert=system`** (as in libpq 16) trusts the public CAs only, and means
//!   `verify-full` when no sslmode is given; any other sslmode is refused.
//! - **A missing `sslrootcert` file**, or one without a PEM certificate, is refused before
//!   connecting when the sslmode needs it.
//! - **Unix sockets** never use TLS, whatever the sslmode (PostgreSQL offers none there).
//! - **Host names**: `verify-full` checks the URL's host against the certificate's subject
//!   alternative names, so `localhost` and `127.0.0.1` are different names.
//!
//! Client certificates (`sslcert`, `sslkey`) are passed to sqlx as they are.
//!
//! The libpq rules for `sslrootcert` above (`require` with a file, `system`, the file check)
//! apply to URLs, [`PgStore::connect`] and so `taskflow::open`. [`PgConnectOptions`] built or
//! parsed by the caller and given to [`PgStore::connect_with`] are used as sqlx reads them:
//! there `require` never checks the certificate and `system` is a file name.
//!
//! A TLS failure is a one-line configuration error ([`taskflow_core::Error::Backend`]), never an
//! outage ([`taskflow_core::Error::Unavailable`], which tells callers to retry): the server
//! answered, and retrying will not change its certificate. The text names the target and the
//! gist, never the URL or its password:
//!
//! ```text
//! cannot connect to Postgres at db.example.com:5432: TLS certificate not trusted: no trusted CA signed it (see sslrootcert)
//! cannot connect to Postgres at 10.0.0.5:5432: TLS certificate is not valid for host 10.0.0.5 (it is for db.example.com)
//! cannot connect to Postgres at db.example.com:5432: TLS failed: server does not support TLS
//! cannot connect to Postgres at db.example.com:5432: sslrootcert file "/etc/taskflow/ca.crt" does not exist
//! ```
//!
//! A connection that drops or times out during the handshake is an outage like any other.
//!
//! sqlx's `verify-ca` builds its verifier on the process's default rustls provider. When a
//! program installed none, [`PgStore::connect_with`] installs aws-lc-rs's before a `verify-ca`
//! connection, so that a program that also links rustls with `ring` does not panic there.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use taskflow_core::{TaskFlow, model::{Identity, NewTask}};
//! use taskflow_store_pg::PgStore;
//!
//! # async fn run() -> taskflow_core::Result<()> {
//! // Connects, and applies any migrations the database lacks.
//! let store = PgStore::connect("postgres://taskflow@127.0.0.1:5432/taskflow").await?;
//! let flow = TaskFlow::new(Arc::new(store));
//!
//! let alice = Identity::user("alice");
//! let task = flow.create_task(&alice, NewTask::titled("Write docs")).await?;
//! let started = flow.start(&alice, task.id, None).await?;
//! assert_eq!(started.assigned_to.as_deref(), Some("alice"));
//! # Ok(())
//! # }
//! ```
//!
//! To tune the pool, start from [`PgStore::default_pool_options`]:
//!
//! ```no_run
//! use std::str::FromStr;
//!
//! use taskflow_store_pg::{PgConnectOptions, PgStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = PgConnectOptions::from_str("postgres://taskflow@db.internal/taskflow")?;
//! let pool = PgStore::default_pool_options().max_connections(32);
//! let store = PgStore::connect_with(options, pool).await?;
//! # drop(store);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnection;
pub use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use taskflow_core::Result;
#[cfg(doc)]
use taskflow_core::{Conflict, Invariant};

mod error;
mod idempotency;
mod queue;
mod rows;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
mod tls;

use error::PgError;

/// The embedded migrations, from `migrations/` in this crate.
static MIGRATOR: Migrator = sqlx::migrate!();

/// How long to wait for a connection (opening one, or a free one from the pool) by default.
/// Short, so that a database that is down or unreachable fails a request promptly.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default pool size of one [`PgStore`]. Every server process has its own pool, so the
/// database sees this many connections per process at most.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// The key of the transaction-level advisory lock (`pg_advisory_xact_lock`) that serialises
/// changes to the task graphs: every update that carries [`Invariant::AcyclicParent`] and every
/// write that adds a dependency edge holds it from before its `UPDATE` until it commits or rolls
/// back, so that its cycle check sees every earlier re-parent and every earlier edge. Its value
/// is `"taskflow"` in ASCII (`0x7461736b666c6f77`).
///
/// Other programs that change `tasks.parent_id` or add rows to `task_dependencies` in the same
/// database must take it too (in a READ COMMITTED transaction, before reading the graph), or
/// they may form a cycle. No other taskflow statement locks it; sqlx's migration lock uses a
/// key derived from the database name.
pub const GRAPH_LOCK_KEY: i64 = 0x7461_736b_666c_6f77;

/// The key of the advisory lock that keeps the audit trail's committed prefix
/// ([`Store::audit_horizon`](taskflow_core::Store::audit_horizon)) true: every transaction
/// that writes an audit row holds it shared from its first statement until it ends, and the
/// horizon is read while holding it exclusively, so that every audit id taken before then
/// belongs to a transaction that has ended. Taken first, before any row lock, so that a writer
/// waiting for it never holds a lock another writer waits for. Its value is `"taskfeed"` in
/// ASCII (`0x7461736b66656564`).
///
/// Other programs that insert into `audit_log` in the same database must take it too
/// (`pg_advisory_xact_lock_shared`, first in their transaction), or a live feed may skip
/// their rows.
pub const FEED_LOCK_KEY: i64 = 0x7461_736b_6665_6564;

/// The name a connection reports in `pg_stat_activity` unless its URL names another.
const APPLICATION_NAME: &str = "taskflow";

/// taskflow's PostgreSQL store: a [`taskflow_core::Store`] over a sqlx [`PgPool`].
///
/// Cloning is cheap and shares the pool. Use it behind [`taskflow_core::DynStore`]
/// (`Arc<dyn Store>`), usually through [`taskflow_core::TaskFlow`].
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl fmt::Debug for PgStore {
    // By hand, so that no connect option (and so no password) can end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// or `postgresql://…`) with [`PgStore::default_pool_options`], and applies any missing
    /// migrations.
    ///
    /// The URL's `sslmode` and `sslrootcert` follow libpq (see the crate docs' "TLS").
    ///
    /// Fails with an error whose one line says what went wrong without repeating the password:
    /// [`taskflow_core::Error::Unavailable`] when the server cannot be reached, e.g. `cannot
    /// connect to Postgres at 127.0.0.1:5432: connection refused`, and
    /// [`taskflow_core::Error::Backend`] for a configuration error, e.g. `invalid Postgres URL:
    /// …`, a wrong password or a TLS failure (`cannot connect to Postgres at localhost:5432: TLS
    /// certificate not trusted: …`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = parse_url(url)?;
        Self::connect_with(options, Self::default_pool_options()).await
    }

    /// Connects with explicit connection and pool options, and applies any missing migrations.
    ///
    /// TLS is as sqlx reads `options` (see the crate docs' "TLS" for where that differs from a
    /// URL given to [`PgStore::connect`]), except that a Unix socket never uses it.
    ///
    /// The pool is opened with at least one live connection, so a wrong address, user,
    /// password or database name fails here rather than on the first request.
    pub async fn connect_with(options: PgConnectOptions, pool: PgPoolOptions) -> Result<Self> {
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name(APPLICATION_NAME),
        };
        // As libpq: no TLS over a Unix socket, whatever the sslmode (PostgreSQL offers none
        // there, and sqlx would fail a `require`).
        let options = match options.get_socket() {
            Some(_) => options.ssl_mode(PgSslMode::Disable),
            None => options,
        };
        let target = error::target(&options);
        if matches!(options.get_ssl_mode(), PgSslMode::VerifyCa) {
            tls::ensure_crypto_provider();
        }
        probe(&options, &target, pool.get_acquire_timeout()).await?;
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|err| PgError::connect(target.clone(), err))?;
        tracing::info!(%target, "connected to Postgres");
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool, and applies any missing migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The pool options [`PgStore::connect`] uses: at most [`DEFAULT_MAX_CONNECTIONS`]
    /// connections, and [`DEFAULT_ACQUIRE_TIMEOUT`] to get one.
    pub fn default_pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
    }

    /// Applies the embedded migrations that the database lacks. Re-running it is a no-op.
    ///
    /// Fails if the database holds a migration this build does not know, or one whose
    /// checksum differs from the embedded file (an edited migration).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(PgError::from)?;
        Ok(())
    }

    /// The embedded migrations, for tooling that wants to list or apply them itself.
    pub fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Reads a `postgres://` URL. Errors never repeat the URL, since it may carry a password.
fn parse_url(url: &str) -> Result<PgConnectOptions, PgError> {
    const EXPECTED: &str = "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(PgError::InvalidUrl(format!("not a URL; {EXPECTED}")));
    };
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(PgError::InvalidUrl(format!(
            "unsupported scheme {scheme:?}; {EXPECTED}"
        )));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|err| PgError::InvalidUrl(format!("{err}; {EXPECTED}")))?;
    tls::apply_libpq_rules(options.clone(), url, &error::target(&options))
}

/// Opens and closes one connection, to learn why connecting fails. The pool would retry a
/// refused connection until its acquire timeout and then report only that it timed out; a
/// single plain attempt fails at once and says why.
async fn probe(options: &PgConnectOptions, target: &str, timeout: Duration) -> Result<(), PgError> {
    let attempt = tokio::time::timeout(timeout, PgConnection::connect_with(options)).await;
    let conn = match attempt {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => return Err(PgError::connect(target.to_owned(), err)),
        Err(_) => {
            return Err(PgError::Connect {
                target: target.to_owned(),
                reason: format!("no answer within {timeout:?}"),
                source: None,
            });
        }
    };
    // The probe has done its job; failing to say goodbye politely is harmless.
    if let Err(err) = conn.close().await {
        tracing::debug!(%err, "closing the probe connection failed");
    }
    Ok(())
}
