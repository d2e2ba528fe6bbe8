//! [`MemoryStore`] (feature `memory`): a [`Store`] in process memory.
//!
//! It keeps every guarantee of the store contract and passes the same conformance suite as the
//! SQLite and Postgres stores. Core's own tests run the lifecycle and policy rules on it; a
//! library user can test their own code against it. Nothing is persisted: the data lives as
//! long as the store and its clones.
//!
//! ```
//! use std::sync::Arc;
//! use taskflow_core::{MemoryStore, TaskFlow, model::{Identity, NewTask}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> taskflow_core::Result<()> {
//! let flow = TaskFlow::new(Arc::new(MemoryStore::new()));
//! let ada = Identity::user("ada");
//! let task = flow.create_task(&ada, NewTask::titled("Try it in memory")).await?;
//! let task = flow.start(&ada, task.id, None).await?;
//! assert_eq!(task.assigned_to.as_deref(), Some("ada"));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Paging, Task, TaskDraft, TaskFilter, Worker,
};
use crate::store::{Conflict, Invariant, Store, TaskWrite, Written};

/// A [`Store`] in memory. Cheap to clone; clones share the data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tasks: BTreeMap<i64, Task>,
    audit: Vec<AuditEntry>,
    workers: BTreeMap<String, Worker>,
    last_task_id: i64,
    last_audit_id: i64,
    closed: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the memory store is closed")]
struct Closed;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Runs `f` on the state under the lock: every call is one atomic step, which is what
    /// makes each write a transaction here.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T> {
        // A panic under the lock cannot leave a half-made write: every write checks first and
        // changes the state only once nothing can fail any more.
        let mut state: MutexGuard<'_, State> =
            self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(Error::unavailable(Closed));
        }
        Ok(f(&mut state))
    }
}

impl State {
    fn append_audit(&mut self, task_id: i64, audit: &AuditDraft) {
        self.last_audit_id += 1;
        let entry = audit.clone().into_entry(self.last_audit_id, task_id);
        self.audit.push(entry);
    }

    /// Whether following `parent_id` from `from` reaches `target`.
    fn reaches(&self, from: i64, target: i64) -> bool {
        let mut next = Some(from);
        let mut steps = 0;
        while let Some(id) = next {
            if id == target {
                return true;
            }
            steps += 1;
            if steps > self.tasks.len() {
                return true; // a cycle already stored; refuse rather than loop
            }
            next = self.tasks.get(&id).and_then(|t| t.parent_id);
        }
        false
    }

    fn check_parent(&self, parent: Option<i64>) -> Option<Conflict> {
        parent
            .filter(|p| !self.tasks.contains_key(p))
            .map(|parent| Conflict::ParentMissing { parent })
    }
}

fn page<T: Clone>(rows: Vec<&T>, paging: Paging) -> Page<T> {
    let total = rows.len() as u64;
    let offset = usize::try_from(paging.offset()).unwrap_or(usize::MAX);
    let items = rows
        .into_iter()
        .skip(offset)
        .take(paging.limit() as usize)
        .cloned()
        .collect();
    Page { items, total }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>> {
        self.with(|s| {
            if let Some(conflict) = s.check_parent(task.parent_id) {
                return Written::Refused(conflict);
            }
            s.last_task_id += 1;
            let stored = task.clone().into_task(s.last_task_id);
            s.tasks.insert(stored.id, stored.clone());
            s.append_audit(stored.id, audit);
            Written::Done(stored)
        })
    }

    async fn get_task(&self, id: i64) -> Result<Option<Task>> {
        self.with(|s| s.tasks.get(&id).cloned())
    }

    async fn list_tasks(&self, f: &TaskFilter) -> Result<Page<Task>> {
        self.with(|s| {
            let rows = s
                .tasks
                .values()
                .filter(|t| f.status.is_none_or(|v| t.status == v))
                .filter(|t| f.priority.is_none_or(|v| t.priority == v))
                .filter(|t| f.assigned_to.is_none() || t.assigned_to == f.assigned_to)
                .filter(|t| f.project.is_none() || t.project_slug == f.project)
                .filter(|t| f.parent_id.is_none() || t.parent_id == f.parent_id)
                .collect();
            page(rows, f.paging)
        })
    }

    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>> {
        self.with(|s| {
            let id = write.task.id;
            match s.tasks.get(&id) {
                Some(stored) if stored.version == write.expected_version => {}
                _ => return Written::Stale,
            }
            if let Some(conflict) = s.check_parent(write.task.parent_id) {
                return Written::Refused(conflict);
            }
            for invariant in &write.invariants {
                match *invariant {
                    Invariant::AcyclicParent { task, parent } => {
                        if s.reaches(parent, task) {
                            return Written::Refused(Conflict::ParentCycle { parent });
                        }
                    }
                }
            }
            let created_at = s.tasks.get(&id).map(|t| t.created_at);
            let mut next = write.task.clone();
            if let Some(created_at) = created_at {
                next.created_at = created_at;
            }
            s.tasks.insert(id, next);
            s.append_audit(id, &write.audit);
            Written::Done(())
        })
    }

    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>> {
        self.with(|s| {
            match s.tasks.get(&id) {
                Some(stored) if stored.version == expected_version => {}
                _ => return Written::Stale,
            }
            if s.tasks.values().any(|t| t.parent_id == Some(id)) {
                return Written::Refused(Conflict::HasSubtasks);
            }
            s.tasks.remove(&id);
            s.append_audit(id, audit);
            Written::Done(())
        })
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Page<AuditEntry>> {
        self.with(|s| {
            let rows = s
                .audit
                .iter()
                .filter(|a| f.task_id.is_none_or(|v| a.task_id == v))
                .filter(|a| f.actor_id.as_ref().is_none_or(|v| a.actor_id == *v))
                .filter(|a| f.action.as_ref().is_none_or(|v| a.action.as_str() == v))
                .filter(|a| f.project.is_none() || a.project_slug == f.project)
                .collect();
            page(rows, f.paging)
        })
    }

    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>> {
        self.with(|s| {
            s.audit
                .iter()
                .filter(|a| a.task_id == task_id)
                .cloned()
                .collect()
        })
    }

    async fn put_worker(&self, worker: &Worker) -> Result<Worker> {
        self.with(|s| {
            let mut stored = worker.clone();
            if let Some(existing) = s.workers.get(&worker.id) {
                stored.created_at = existing.created_at;
            }
            s.workers.insert(stored.id.clone(), stored.clone());
            stored
        })
    }

    async fn get_worker(&self, id: &str) -> Result<Option<Worker>> {
        self.with(|s| s.workers.get(id).cloned())
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        self.with(|s| s.workers.values().cloned().collect())
    }

    async fn ping(&self) -> Result<()> {
        self.with(|_| ())
    }

    async fn close(&self) -> Result<()> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        Ok(())
    }
}
