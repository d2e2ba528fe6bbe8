//! The writer thread and its group commit.
//!
//! SQLite has one writer, and a commit costs far more than the statements of a small write. So
//! every write of a [`SqliteStore`](crate::SqliteStore) is sent to one thread that owns the
//! writer connection. It takes the first write that waits, then every other write already
//! queued behind it (up to [`MAX_BATCH`]), and runs them together:
//!
//! - one `BEGIN IMMEDIATE` for the batch, so every check a write makes sees what it will be
//!   applied to, as before;
//! - each write in its own savepoint (the functions of `sql.rs` open it), so a lost
//!   compare-and-set, a refusal or an error rolls back that write alone;
//! - one `COMMIT`, and only then is any write of the batch answered. If the commit fails, every
//!   write of the batch gets the error, and none of them happened.
//!
//! A lone write is never delayed waiting for company: the thread batches what is already
//! queued and never sleeps to fill a batch. Under load the queue fills while a batch commits,
//! so the next batch is larger and the commit cost is shared.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, ErrorCode};

use crate::error::SqliteError;

/// The most writes one transaction holds. Enough to share a commit among many writers, small
/// enough that a batch's transaction stays short.
pub(crate) const MAX_BATCH: usize = 64;

/// Why a whole batch failed: its `BEGIN` or `COMMIT` (or SQLite rolled the transaction back
/// under a write). Copied to every write of the batch.
#[derive(Debug, Clone)]
pub(crate) struct BatchFailure {
    /// The database was locked by another process past the busy timeout, or the store closed.
    unavailable: bool,
    message: String,
}

impl BatchFailure {
    fn from_sqlite(what: &str, err: &rusqlite::Error) -> Self {
        BatchFailure {
            unavailable: matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            message: format!("SQLite {what}: {err}"),
        }
    }

    fn closed() -> Self {
        BatchFailure {
            unavailable: true,
            message: SqliteError::Closed.to_string(),
        }
    }

    fn into_error(self) -> taskflow_core::Error {
        if self.unavailable {
            taskflow_core::Error::unavailable(self.message)
        } else {
            taskflow_core::Error::backend(self.message)
        }
    }
}

/// What a write does once its batch has ended: answers its caller with its own result if the
/// batch committed, or with the batch's failure.
type Finish = Box<dyn FnOnce(Result<(), BatchFailure>) + Send>;

/// One queued write: runs inside the batch's transaction (given the connection), or is told
/// that the batch could not start (given `None`), and returns how to answer its caller.
pub(crate) type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Finish + Send>;

/// Wraps `f` as a [`Job`] whose answer goes to `done` after the batch ends.
pub(crate) fn job<T: Send + 'static>(
    f: impl FnOnce(&mut Connection) -> taskflow_core::Result<T> + Send + 'static,
    done: tokio::sync::oneshot::Sender<taskflow_core::Result<T>>,
) -> Job {
    Box::new(move |conn| {
        let result = conn.map(f);
        Box::new(move |batch| {
            let answer = match (batch, result) {
                (Ok(()), Some(result)) => result,
                (Err(failure), _) => Err(failure.into_error()),
                // Not run, yet the batch did not fail: cannot happen; never answer Ok for it.
                (Ok(()), None) => Err(SqliteError::Closed.into()),
            };
            // The caller may have gone away (a dropped request); the write stands regardless.
            let _ = done.send(answer);
        })
    })
}

/// What the writer thread has committed so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed.
    pub(crate) commits: AtomicU64,
    /// Writes those transactions held.
    pub(crate) writes: AtomicU64,
}

/// Starts the writer thread over `slot`. It ends when every sender is dropped.
pub(crate) fn spawn(
    slot: Arc<Mutex<Option<Connection>>>,
    counters: Arc<Counters>,
) -> std::io::Result<Sender<Job>> {
    let (queue, jobs) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("taskflow-sqlite-writer".into())
        .spawn(move || run(&slot, &jobs, &counters))?;
    Ok(queue)
}

fn run(slot: &Mutex<Option<Connection>>, jobs: &Receiver<Job>, counters: &Counters) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(8);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let mut guard = crate::lock(slot);
        match guard.as_mut() {
            Some(conn) => run_batch(conn, batch, counters),
            None => {
                for job in batch {
                    job(None)(Err(BatchFailure::closed()));
                }
            }
        }
    }
}

/// Runs `batch` in as few transactions as SQLite allows (one, unless SQLite rolls one back
/// under a write), answering each write only after its transaction has ended.
fn run_batch(conn: &mut Connection, batch: Vec<Job>, counters: &Counters) {
    let mut done: Vec<Finish> = Vec::with_capacity(batch.len());
    let mut open = false;
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        if !open {
            if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
                // Locked by another process past the busy timeout (or worse): the writes still
                // queued in this batch would only wait as long again, so they fail with it.
                let failure = BatchFailure::from_sqlite("BEGIN", &err);
                for job in std::iter::once(job).chain(jobs.by_ref()) {
                    job(None)(Err(failure.clone()));
                }
                break;
            }
            open = true;
        }
        // A panic inside a write drops its savepoint while unwinding, which rolls that write
        // back; its caller sees its answer channel closed. The rest of the batch goes on.
        if let Ok(finish) = catch_unwind(AssertUnwindSafe(|| job(Some(conn)))) {
            done.push(finish);
        }
        if conn.is_autocommit() {
            // SQLite itself rolled the transaction back (SQLITE_FULL, SQLITE_IOERR, ...): the
            // writes before this one are gone too, so none of them may be answered as done.
            let failure = BatchFailure {
                unavailable: false,
                message: "SQLite rolled the write transaction back; nothing of it was written"
                    .to_owned(),
            };
            for finish in done.drain(..) {
                finish(Err(failure.clone()));
            }
            open = false;
        }
    }
    if !open {
        return;
    }
    let outcome = conn
        .execute_batch("COMMIT")
        .map_err(|err| BatchFailure::from_sqlite("COMMIT", &err));
    if outcome.is_err() && !conn.is_autocommit() {
        // A failed COMMIT may leave the transaction open; end it so the next batch can begin.
        let _ = conn.execute_batch("ROLLBACK");
    }
    if outcome.is_ok() {
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .writes
            .fetch_add(done.len() as u64, Ordering::Relaxed);
    }
    for finish in done {
        finish(outcome.clone());
    }
}
