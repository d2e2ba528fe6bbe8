//! The persistence surface every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{AuditEntry, AuditFilter, Page, Task, TaskFilter, Worker};

/// A store shared across tasks and threads; the server picks its backend at run time.
pub type DynStore = Arc<dyn Store>;

/// The smallest persistence surface that keeps taskflow's guarantees.
///
/// A store persists; it never decides. Whether a change is legal is settled by
/// [`crate::lifecycle`] before a store sees it. What a store guarantees:
///
/// - every write and its audit row commit in one transaction, or neither does;
/// - [`update_task`](Store::update_task) and [`delete_task`](Store::delete_task) are
///   compare-and-set on `version`, so of two writers that read the same version only one wins;
/// - ids (of tasks and audit rows) are assigned by the store and never reused;
/// - listings are ordered by id, and their totals ignore `limit` and `offset`.
///
/// Backends keep a richer private error type and convert it to [`crate::Error`], usually
/// [`crate::Error::Backend`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts `task` and its `created` row in one transaction, and returns the task with the id
    /// the store assigned. The `id` of `task` and the `id` and `task_id` of `audit` are ignored:
    /// the store assigns them. A `parent_id` that no longer exists is a validation error on
    /// `parent_id`.
    async fn insert_task(&self, task: &Task, audit: &AuditEntry) -> Result<Task>;

    /// Reads one task.
    async fn get_task(&self, id: i64) -> Result<Option<Task>>;

    /// Lists tasks matching `filter`, ordered by id, with the total count of matches.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>>;

    /// Compare-and-set: replaces the stored task with `task` if the stored version is still
    /// `task.version - 1`, and writes `audit` (whose `id` is ignored) in the same transaction.
    /// Returns `false`, having written nothing, when the version moved or the task is gone.
    async fn update_task(&self, task: &Task, audit: &AuditEntry) -> Result<bool>;

    /// Compare-and-set delete: removes the task if its stored version is still `version`, and
    /// writes `audit` in the same transaction. Returns `false`, having written nothing, when the
    /// version moved or the task is gone. Refuses with [`crate::Error::HasSubtasks`] while any
    /// task names it as parent. The task's audit rows stay.
    async fn delete_task(&self, id: i64, version: i64, audit: &AuditEntry) -> Result<bool>;

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

    /// Releases connections. Calls made after this fail with a backend error.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
