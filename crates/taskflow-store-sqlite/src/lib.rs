//! [`SqliteStore`]: taskflow's embedded store, on rusqlite with a bundled SQLite.
//!
//! It works on a file or in memory, with no server and no network.
//!
//! - **Migrations** are numbered `.sql` files embedded in the binary and applied with
//!   `rusqlite_migration`, which tracks the schema version in `PRAGMA user_version`. Reopening a
//!   database is safe; a database written by a newer schema version is refused with a clear
//!   error, as is a file that is not a SQLite database. Pending migrations run in one
//!   transaction: a failed upgrade leaves the file as it was.
//!   - `0001_initial.sql` (schema 1, taskflow 0.1.0): `tasks`, `audit_log`, `workers`.
//!   - `0002_work_queue.sql` (schema 2): `tasks` gains `fence` (0 on existing rows),
//!     `lease_expires_at` and `lease_seconds` (NULL: no lease), added in place with
//!     `ALTER TABLE … ADD COLUMN` (no table is rebuilt, which would need foreign keys off and so
//!     could not run inside the migration's transaction); a `task_dependencies (task_id,
//!     depends_on)` table whose `task_id` cascades on delete (a deleted task drops the edges it
//!     holds) and whose `depends_on` does not (the store refuses to delete a task others depend
//!     on; the foreign key is the safety net); indexes for dependents, expiring leases and the
//!     ready queue.
//!   - `0003_idempotency.sql` (schema 3): an `idempotency_records (caller, key, fingerprint,
//!     outcome, created_at, expires_at)` table keyed by `(caller, key)` (`STRICT, WITHOUT
//!     ROWID`; `outcome` is NULL while the request runs), and an index on `expires_at` for the
//!     purge. Nothing existing changes.
//!
//!   - `0004_ready_head.sql` (schema 4): an index `tasks (status, priority, id)`, by which
//!     claim-next finds the head of the ready queue without ranking every ready task.
//!
//!   - `0005_ready_project.sql` (schema 5): an index `tasks (project_slug, status, priority,
//!     id)`, by which claim-next in one project walks only that project's ready tasks.
//!
//!   A 0.1.0 database upgrades in place on first open (1 → 5 in one transaction), keeping
//!   every row and id (the tests upgrade a real 0.1.0 file, `tests/fixtures/0.1.0/` at the
//!   repository root).
//! - **Settings**: WAL journal, `synchronous=NORMAL`, a busy timeout, foreign keys on, and
//!   `BEGIN IMMEDIATE` for every write, so a read-then-write never deadlocks on lock upgrade.
//! - **Concurrency**: one writer connection, owned by a writer thread, and a small pool of
//!   read-only connections. Under WAL, readers never queue behind the writer. A read by key
//!   (`get_task`, `get_worker`, `dependencies`, the audit horizon, `ping`) runs where it is
//!   called, on an idle reader, since it takes microseconds and a thread hop would cost more;
//!   a read of unbounded cost (a page and its count, an audit trail) runs on tokio's blocking
//!   pool, so the async runtime is never blocked. Every statement comes from the
//!   prepared-statement cache. An in-memory database has a single connection, since each
//!   `:memory:` connection would be a separate database.
//! - **Group commit.** Every write is queued for the writer thread, which takes the first
//!   write waiting and every write already queued behind it (up to 64), runs them in one
//!   `BEGIN IMMEDIATE` transaction, each in its own savepoint, and commits once. No write is
//!   answered before that commit, and if it fails every write of the batch fails with it; a
//!   lost compare-and-set, a refusal or an error rolls back its own savepoint alone. A lone
//!   write is not delayed: nothing waits to fill a batch. (Under load the queue fills while a
//!   batch commits, so commits are shared; see `writer.rs`.) Below, "its transaction" means
//!   the write's savepoint inside the batch's transaction: the write lock is held from the
//!   write's first check to the batch's commit, so every check sees what the write is applied
//!   to.
//! - **Writes** follow the [`Store`] contract. Each runs in its own transaction (its savepoint
//!   in the batch) on the writer connection, together with its audit row (whose `action` is
//!   stored as its text, and read back strictly: an unknown stored value is a corrupt-row
//!   error).
//!   - `update_task` and `delete_task` are compare-and-set: they first read the stored version
//!     and answer [`Written::Stale`] unless it is the one the write expects; the statement
//!     itself also names that version.
//!   - The invariants a write lists ([`taskflow_core::Invariant`]) are checked inside that same
//!     transaction, before the `UPDATE`: for `AcyclicParent`, a recursive CTE follows
//!     `parent_id` from the new parent (with `UNION`, so a cycle already stored ends the walk
//!     rather than looping) and refuses with [`taskflow_core::Conflict::ParentCycle`] if it
//!     reaches the task. SQLite's single writer holds from the check to the commit, so two
//!     concurrent re-parents cannot both pass the check and form a cycle together.
//!   - A `parent_id` naming no task fails the schema's foreign key, and the write is refused
//!     with [`taskflow_core::Conflict::ParentMissing`]; nothing is written.
//!   - `delete_task` checks the version first, then subtasks
//!     ([`taskflow_core::Conflict::HasSubtasks`]), then dependents
//!     ([`taskflow_core::Conflict::HasDependents`]); the task's audit rows stay, and the
//!     dependency edges it holds go with it.
//! - **The work queue** ([`QueueStore`], through [`Store::queue`]) keeps the same rules: every
//!   write is one `BEGIN IMMEDIATE` transaction with its audit row (a lease extension writes
//!   none and keeps the version), compare-and-set on the task's version, checks inside the
//!   transaction.
//!   - `write_dependency` checks, in order: the version ([`Written::Stale`]), then for an added
//!     edge a missing target, an existing edge, and a cycle (a recursive CTE that follows
//!     `task_dependencies` from the target with `UNION`, so a cycle already stored ends the
//!     walk; a self edge is a cycle); for a removed edge, that it exists. The single writer
//!     holds from the check to the commit, so two concurrent opposite edges cannot both pass.
//!   - The ready queue is selected in SQL from the lifecycle's [`ReadyRule`]: every status and
//!     priority is bound from it, none is spelled by the store. Tasks in the ready status,
//!     unassigned or the caller's, with no dependency outside the finished status; ordered by
//!     the rank of their priority in the rule's urgency, then by id.
//!   - `claim_next` is one `BEGIN IMMEDIATE` transaction: it selects the head of the caller's
//!     ready queue, asks the claim's `decide` (the lifecycle's start), writes the task
//!     (compare-and-set on the version it read) and its `started` row, and commits. The write
//!     lock is SQLite's, on the database file: it is held from the pick to the commit, so no
//!     other claimer, on this store or on another connection or process using the same file,
//!     can pick the same task; the next one to get the lock sees it started and takes the next
//!     task. No claim is ever lost and retried, and a refused decision writes nothing. Claims
//!     are serialized under the write lock; their commits are shared by group commit.
//!   - `expired_leases` reads the tasks whose `lease_expires_at` (RFC 3339 text in UTC with
//!     microseconds, so text order is time order) is at or before the given time, oldest expiry
//!     first; the lifecycle only ever holds a lease on an `in_progress` task.
//! - **Idempotency records** ([`IdempotencyStore`], through [`Store::idempotency`]): one row per
//!   (caller, key) in `idempotency_records`, timestamps as RFC 3339 text with microseconds like
//!   everywhere here (text order is time order).
//!   - **A change writes its record in its own transaction.** Every write that inserts an audit
//!     row (`insert_task`, `update_task`, `delete_task`, `write_dependency`, `claim_next`) goes
//!     through one helper that, when the row carries an
//!     [`outcome`](taskflow_core::model::AuditDraft::outcome), upserts it as the record of its
//!     (caller, key) in the same `BEGIN IMMEDIATE` transaction, rendered against the task as
//!     the write left it (the new task with its id; the row as updated, read back with
//!     `RETURNING`; the claimed task; nothing for a delete). A commit therefore never leaves a
//!     change without its record or a record without its change, and an outcome that cannot be
//!     rendered rolls the change back.
//!   - `reserve` is one `BEGIN IMMEDIATE` transaction: no row, or one whose `expires_at` is not
//!     after now, is replaced by a fresh reservation (`Reserved`); a live row with another
//!     fingerprint is a `Mismatch`; one with an outcome is a `Replay` of it; one without, made
//!     at or after the stale limit, is `InProgress`; an older one is taken over (its
//!     `created_at` reset to now: `Reserved`). The single writer holds from the read to the
//!     commit, so of concurrent reservations of one key exactly one wins.
//!   - `settle` upserts the finished outcome; `forget` drops a reservation (a row without an
//!     outcome: an outcome a change already stored stays, so a retry never runs the change
//!     again); `purge_expired` deletes the rows with `expires_at` at or before the given time.
//! - **Errors**: a closed store, or a database lock held by another process past the busy
//!   timeout, is [`taskflow_core::Error::Unavailable`]; anything else that fails is
//!   [`taskflow_core::Error::Backend`].
//!
//! ```
//! use std::sync::Arc;
//! use taskflow_core::{TaskFlow, model::{Identity, NewTask}};
//! use taskflow_store_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> taskflow_core::Result<()> {
//! let dir = tempfile::tempdir().map_err(taskflow_core::Error::backend)?;
//! let store = SqliteStore::open(dir.path().join("tasks.db")).await?;
//! let flow = TaskFlow::new(Arc::new(store));
//! let task = flow.create_task(&Identity::user("ada"), NewTask::titled("Ship it")).await?;
//! assert_eq!(task.version, 1);
//! # Ok(())
//! # }
//! ```

mod error;
mod sql;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use taskflow_core::events::FeedFilter;
use taskflow_core::idempotency::{OutcomeRecord, Reservation, Reserve};
use taskflow_core::lifecycle::ReadyRule;
use taskflow_core::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, ReadyFilter, Task, TaskDraft, TaskFilter, Timestamp,
    Worker,
};
use taskflow_core::{
    Claim, Dependencies, DependencyWrite, IdempotencyStore, LeaseWrite, QueueStore, Result, Store,
    TaskWrite, Written,
};

use crate::error::SqliteError;

/// The embedded migrations, in order. Their count is the schema version this build writes.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../migrations/0001_initial.sql")),
    M::up(include_str!("../migrations/0002_work_queue.sql")),
    M::up(include_str!("../migrations/0003_idempotency.sql")),
    M::up(include_str!("../migrations/0004_ready_head.sql")),
    M::up(include_str!("../migrations/0005_ready_project.sql")),
];

/// How a [`SqliteStore`] opens its database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Read-only connections beside the writer (file databases only). Default 4.
    pub readers: usize,
    /// How long a connection waits for another process's lock before failing. Default 5 s.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// What a [`SqliteStore`]'s writer has committed ([`SqliteStore::commit_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitStats {
    /// Write transactions committed (one per batch).
    pub commits: u64,
    /// Writes committed in them (each in its own savepoint).
    pub writes: u64,
}

/// A taskflow [`Store`] on SQLite. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("readers", &self.inner.readers.len())
            .finish()
    }
}

type Slot = Mutex<Option<Connection>>;

struct Inner {
    path: PathBuf,
    /// The writer connection. The writer thread locks it for each batch; `close` takes it.
    writer: Arc<Slot>,
    /// The writer thread's queue (see `writer.rs`): every write goes through it.
    writes: std::sync::mpsc::Sender<writer::Job>,
    /// What the writer thread has committed.
    counters: Arc<writer::Counters>,
    /// Empty for in-memory databases: reads then use the writer.
    readers: Vec<Slot>,
    next_reader: AtomicUsize,
}

pub(crate) fn lock(slot: &Slot) -> MutexGuard<'_, Option<Connection>> {
    // A panic while holding a connection leaves it usable: rusqlite rolls back an open
    // transaction when it is dropped during unwinding.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with_conn<T>(slot: &Slot, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    match lock(slot).as_mut() {
        Some(conn) => f(conn),
        None => Err(SqliteError::Closed.into()),
    }
}

impl Inner {
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        if self.readers.is_empty() {
            return with_conn(&self.writer, f);
        }
        // Take an idle reader; if all are busy, wait for the next one in turn.
        match self.idle_reader() {
            Some(mut reader) => match reader.as_mut() {
                Some(conn) => f(conn),
                None => Err(SqliteError::Closed.into()),
            },
            None => {
                let next = self.next_reader.fetch_add(1, Ordering::Relaxed);
                with_conn(&self.readers[next % self.readers.len()], f)
            }
        }
    }

    /// A reader no one is using, if there is one (never the writer).
    fn idle_reader(&self) -> Option<MutexGuard<'_, Option<Connection>>> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok())
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` with default options, and
    /// migrates it to the latest schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens a private in-memory database. It lives as long as the store and its clones.
    pub async fn open_in_memory() -> Result<Self> {
        Self::open_with(":memory:", SqliteOptions::default()).await
    }

    /// Opens a database from a URL: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
    /// or `sqlite::memory:` (also `sqlite://:memory:`). Query strings are not supported.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(path_from_url(url)?).await
    }

    /// Opens `path` (or `:memory:`) with explicit options.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let inner = tokio::task::spawn_blocking(move || open_blocking(path, &options))
            .await
            .map_err(SqliteError::from)??;
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database path (`:memory:` for an in-memory database).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What group commit has done so far: write transactions committed, and the writes they
    /// held. Under concurrent writes there are fewer commits than writes.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.inner.counters.commits.load(Ordering::Relaxed),
            writes: self.inner.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// The schema version this build migrates to.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// A read of unbounded cost (a page and its count, a whole audit trail): on tokio's
    /// blocking pool, so the async runtime is never blocked.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.read(f))
            .await
            .map_err(SqliteError::from)?
    }

    /// A read by key, which takes microseconds: run where the caller is, on an idle reader,
    /// with no hop to another thread. (A hop to the blocking pool and back costs more than the
    /// read.) If every reader is busy, or the database is in memory and has only the writer,
    /// it goes to the blocking pool like any other read.
    async fn read_by_key<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if let Some(mut reader) = self.inner.idle_reader() {
            return match reader.as_mut() {
                Some(conn) => f(conn),
                None => Err(SqliteError::Closed.into()),
            };
        }
        self.read(f).await
    }

    /// A write: queued for the writer thread, which commits it with the writes queued beside
    /// it (group commit, see `writer.rs`), and answered after that commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.inner
            .writes
            .send(writer::job(f, done))
            .map_err(|_| SqliteError::Closed)?;
        answer.await.map_err(|_| SqliteError::WriterFailed)?
    }
}

/// Maps a `sqlite:` URL to a path.
fn path_from_url(url: &str) -> Result<PathBuf> {
    let bad = || SqliteError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("sqlite:").ok_or_else(bad)?;
    if rest == ":memory:" || rest == "//:memory:" {
        return Ok(PathBuf::from(":memory:"));
    }
    let path = rest.strip_prefix("//").ok_or_else(bad)?;
    if path.is_empty() || path.contains('?') {
        return Err(bad().into());
    }
    Ok(PathBuf::from(path))
}

fn configure(conn: &Connection, path: &Path, options: &SqliteOptions) -> Result<(), SqliteError> {
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| SqliteError::opening(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Reading `foreign_keys` back forces SQLite to read the file header, so a file that is not a
    // database fails here with SQLITE_NOTADB rather than later.
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| SqliteError::opening(path, e))?;
    conn.pragma_query_value(None, "schema_version", |r| r.get::<_, i64>(0))
        .map_err(|e| SqliteError::opening(path, e))?;
    Ok(())
}

fn open_blocking(path: PathBuf, options: &SqliteOptions) -> Result<Inner> {
    let in_memory = path.as_os_str() == ":memory:";
    let mut writer = if in_memory {
        Connection::open_in_memory()
    } else {
        Connection::open(&path)
    }
    .map_err(|e| SqliteError::opening(&path, e))?;
    configure(&writer, &path, options)?;
    if !in_memory {
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| SqliteError::opening(&path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite could not switch to WAL");
        }
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(SqliteError::from)?;
    }
    migrate(&mut writer, &path)?;
    let writer = Arc::new(Mutex::new(Some(writer)));
    let counters = Arc::new(writer::Counters::default());
    let writes = writer::spawn(Arc::clone(&writer), Arc::clone(&counters))
        .map_err(SqliteError::WriterThread)?;

    let readers = if in_memory {
        Vec::new()
    } else {
        (0..options.readers)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| SqliteError::opening(&path, e))?;
                configure(&conn, &path, options)?;
                Ok(Mutex::new(Some(conn)))
            })
            .collect::<Result<Vec<_>, SqliteError>>()?
    };
    Ok(Inner {
        path,
        writer,
        writes,
        counters,
        readers,
        next_reader: AtomicUsize::new(0),
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), SqliteError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| SqliteError::opening(path, e))?;
    if usize::try_from(found).map_or(true, |v| v > MIGRATIONS.len()) {
        return Err(SqliteError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: MIGRATIONS.len(),
        });
    }
    Migrations::from_slice(MIGRATIONS)
        .to_latest(conn)
        .map_err(|source| SqliteError::Migration {
            path: path.to_owned(),
            source,
        })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>> {
        let (task, audit) = (task.clone(), audit.clone());
        self.write(move |c| Ok(sql::insert_task(c, &task, &audit)?))
            .await
    }

    async fn get_task(&self, id: i64) -> Result<Option<Task>> {
        self.read_by_key(move |c| Ok(sql::get_task(c, id)?)).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>> {
        let filter = filter.clone();
        self.read(move |c| Ok(sql::list_tasks(c, &filter)?)).await
    }

    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>> {
        let write = write.clone();
        self.write(move |c| Ok(sql::update_task(c, &write)?)).await
    }

    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>> {
        let audit = audit.clone();
        self.write(move |c| Ok(sql::delete_task(c, id, expected_version, &audit)?))
            .await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>> {
        let filter = filter.clone();
        self.read(move |c| Ok(sql::list_audit(c, &filter)?)).await
    }

    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>> {
        self.read(move |c| Ok(sql::task_audit(c, task_id)?)).await
    }

    async fn audit_horizon(&self) -> Result<i64> {
        self.read_by_key(|c| Ok(sql::audit_horizon(c)?)).await
    }

    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &FeedFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let filter = filter.clone();
        self.read(move |c| Ok(sql::audit_after(c, after, upto, &filter, limit)?))
            .await
    }

    async fn put_worker(&self, worker: &Worker) -> Result<Worker> {
        let worker = worker.clone();
        self.write(move |c| Ok(sql::put_worker(c, &worker)?)).await
    }

    async fn get_worker(&self, id: &str) -> Result<Option<Worker>> {
        let id = id.to_owned();
        self.read_by_key(move |c| Ok(sql::get_worker(c, &id)?))
            .await
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        self.read(|c| Ok(sql::list_workers(c)?)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read_by_key(|c| Ok(sql::ping(c)?)).await
    }

    async fn close(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            for slot in inner.readers.iter().chain([&*inner.writer]) {
                if let Some(conn) = lock(slot).take() {
                    conn.close().map_err(|(_, e)| SqliteError::from(e))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(SqliteError::from)?
    }

    fn queue(&self) -> Option<&dyn QueueStore> {
        Some(self)
    }

    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        Some(self)
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn reserve(&self, r: &Reserve) -> Result<Reservation> {
        let r = r.clone();
        self.write(move |c| Ok(sql::reserve(c, &r)?)).await
    }

    async fn settle(&self, record: &OutcomeRecord) -> Result<()> {
        // A settled request changed nothing: its outcome is ready, with no task to render.
        let outcome = record.render(None)?;
        let record = record.clone();
        self.write(move |c| Ok(sql::settle(c, &record, &outcome)?))
            .await
    }

    async fn forget(&self, caller: &str, key: &str) -> Result<()> {
        let (caller, key) = (caller.to_owned(), key.to_owned());
        self.write(move |c| Ok(sql::forget(c, &caller, &key)?))
            .await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |c| Ok(sql::purge_expired(c, &now)?)).await
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn dependencies(&self, task_id: i64) -> Result<Dependencies> {
        self.read_by_key(move |c| Ok(sql::dependencies(c, task_id)?))
            .await
    }

    async fn write_dependency(&self, write: &DependencyWrite) -> Result<Written<()>> {
        let write = write.clone();
        self.write(move |c| Ok(sql::write_dependency(c, &write)?))
            .await
    }

    async fn ready_tasks(
        &self,
        actor_id: &str,
        filter: &ReadyFilter,
        rule: &ReadyRule,
    ) -> Result<Page<Task>> {
        let (actor_id, filter, rule) = (actor_id.to_owned(), filter.clone(), *rule);
        self.read(move |c| Ok(sql::ready_tasks(c, &actor_id, &filter, &rule)?))
            .await
    }

    async fn claim_next(&self, claim: &Claim) -> Result<Option<Task>> {
        let claim = claim.clone();
        self.write(move |c| sql::claim_next(c, &claim)).await
    }

    async fn extend_lease(&self, write: &LeaseWrite) -> Result<Written<()>> {
        let write = write.clone();
        self.write(move |c| Ok(sql::extend_lease(c, &write)?)).await
    }

    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        self.read(move |c| Ok(sql::expired_leases(c, &now, limit)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_paths() {
        assert_eq!(
            path_from_url("sqlite://taskflow.db").unwrap(),
            PathBuf::from("taskflow.db")
        );
        assert_eq!(
            path_from_url("sqlite:///abs/t.db").unwrap(),
            PathBuf::from("/abs/t.db")
        );
        assert_eq!(
            path_from_url("sqlite::memory:").unwrap(),
            PathBuf::from(":memory:")
        );
        assert_eq!(
            path_from_url("sqlite://:memory:").unwrap(),
            PathBuf::from(":memory:")
        );
        for bad in [
            "postgres://x",
            "sqlite:",
            "sqlite://",
            "sqlite:t.db",
            "sqlite://a.db?mode=ro",
        ] {
            let err = path_from_url(bad).unwrap_err().to_string();
            assert!(err.contains("unsupported SQLite URL"), "{bad}: {err}");
        }
    }
}
