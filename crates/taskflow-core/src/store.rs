//! The persistence surface every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Task, TaskDraft, TaskFilter, Worker,
};

/// A store shared across tasks and threads; the server picks its backend at run time.
pub type DynStore = Arc<dyn Store>;

/// The smallest persistence surface that keeps taskflow's guarantees.
///
/// A store persists; it never decides. Whether a change is legal is settled by
/// [`crate::lifecycle`] before a store sees it. What a store guarantees, and what the
/// conformance suite ([`crate::testkit`], feature `testkit`) checks on every backend:
///
/// - every write and its audit row commit in one transaction, or neither does;
/// - [`update_task`](Store::update_task) and [`delete_task`](Store::delete_task) are
///   compare-and-set: each names the version it expects, and of two writers that expect the
///   same version only one wins; the loser gets [`Written::Stale`] and has written nothing;
/// - the invariants a write lists ([`Invariant`]) are checked inside its transaction, so two
///   concurrent writes cannot both pass a check that only one of them may pass;
/// - a task's `parent_id` always names a stored task ([`Conflict::ParentMissing`] otherwise);
/// - ids (of tasks and audit rows) are assigned by the store and never reused;
/// - listings are ordered by id, and their totals ignore the paging;
/// - audit rows outlive their task.
///
/// Backends keep a richer private error type and convert it to [`crate::Error`]:
/// [`crate::Error::Unavailable`] when the database cannot be reached, otherwise
/// [`crate::Error::Backend`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts `task` and its `created` row (about the new task) in one transaction, and
    /// returns the task with the id the store assigned. Refuses a parent that does not exist
    /// with [`Conflict::ParentMissing`]. Never answers [`Written::Stale`].
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>>;

    /// Reads one task.
    async fn get_task(&self, id: i64) -> Result<Option<Task>>;

    /// Lists tasks matching `filter`, ordered by id, with the total count of matches.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>>;

    /// Compare-and-set: if the stored task `write.task.id` is at `write.expected_version`,
    /// replaces it with `write.task` (every field but `created_at`, which never changes) and
    /// writes `write.audit` about it, in one transaction, after checking `write.invariants`
    /// inside that transaction. [`Written::Stale`] when the task is at another version or gone;
    /// [`Written::Refused`] when an invariant or the parent would not hold. Either way nothing
    /// was written. The version is checked first. An invariant the store does not know (the
    /// enum grows) fails the write with a backend error; it is never skipped.
    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>>;

    /// Compare-and-set delete: if task `id` is at `expected_version`, removes it and writes
    /// `audit` about it in one transaction. The version is checked first ([`Written::Stale`]),
    /// then subtasks ([`Conflict::HasSubtasks`]). The task's audit rows stay.
    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>>;

    /// Audit rows matching `filter`, oldest first, with the total count of matches.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>>;

    /// Every audit row of one task, oldest first; empty for a task that never existed.
    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>>;

    /// Inserts or replaces a worker. On replace, the stored `created_at` is kept and every other
    /// field is taken from `worker`. Returns the worker as stored.
    async fn put_worker(&self, worker: &Worker) -> Result<Worker>;

    /// Reads one worker.
    async fn get_worker(&self, id: &str) -> Result<Option<Worker>>;

    /// Every worker, ordered by id.
    async fn list_workers(&self) -> Result<Vec<Worker>>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Releases connections. Calls made after this fail with [`crate::Error::Unavailable`].
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Written<T> {
    /// It was written, with its audit row.
    Done(T),
    /// The row was not at the expected version (or is gone): nothing was written. The caller
    /// may re-read and decide again.
    Stale,
    /// The write would have broken a rule of the data: nothing was written.
    Refused(Conflict),
}

/// Why a store refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// The task's `parent_id` names no stored task.
    ParentMissing {
        /// The parent asked for.
        parent: i64,
    },
    /// The task's new parent chain leads back to the task ([`Invariant::AcyclicParent`]).
    ParentCycle {
        /// The parent asked for.
        parent: i64,
    },
    /// The task to delete still has subtasks.
    HasSubtasks,
}

/// A rule that spans rows, which a write asks its store to check inside the write's own
/// transaction (SQLite: under its single writer; Postgres: under a lock that serialises graph
/// changes), so that two concurrent writes cannot each pass it alone and break it together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invariant {
    /// After the write, following `parent_id` from `parent` never reaches `task`: making
    /// `parent` the parent of `task` forms no cycle.
    AcyclicParent {
        /// The task being re-parented.
        task: i64,
        /// Its new parent.
        parent: i64,
    },
}

/// A compare-and-set update of one task: what to write, what the caller expects to replace, and
/// the audit row and invariants that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskWrite {
    /// The task as it must be stored.
    pub task: Task,
    /// The version the stored task must be at for the write to happen.
    pub expected_version: i64,
    /// The one audit row that records the change (about `task.id`).
    pub audit: AuditDraft,
    /// Rules to check inside the transaction.
    pub invariants: Vec<Invariant>,
}
