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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::events::FeedFilter;
use crate::idempotency::{OutcomeRecord, Reservation, Reserve};
use crate::lifecycle::ReadyRule;
use crate::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Paging, ReadyFilter, Task, TaskDraft, TaskFilter,
    Timestamp, Worker,
};
use crate::store::{
    Claim, Conflict, Dependencies, DependencyWrite, EdgeChange, IdempotencyStore, Invariant,
    LeaseWrite, QueueStore, Store, TaskWrite, Written,
};

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
    /// `(task, depends_on)` edges.
    edges: BTreeSet<(i64, i64)>,
    /// Idempotency records by (caller, key).
    records: BTreeMap<(String, String), Record>,
    last_task_id: i64,
    last_audit_id: i64,
    closed: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the memory store is closed")]
struct Closed;

/// One idempotency record.
#[derive(Debug)]
struct Record {
    fingerprint: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    /// The encoded outcome, once the request finished.
    outcome: Option<String>,
}

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
    /// Writes the audit row of a change and, if it carries one, its idempotency record (same
    /// step, so never one without the other). `written` is the task as written, if any.
    fn append_audit(
        &mut self,
        task_id: i64,
        audit: &AuditDraft,
        written: Option<&Task>,
    ) -> Result<()> {
        if let Some(record) = &audit.outcome {
            let outcome = record.render(written)?;
            self.store_record(record, outcome);
        }
        self.last_audit_id += 1;
        let entry = audit.clone().into_entry(self.last_audit_id, task_id);
        self.audit.push(entry);
        Ok(())
    }

    fn store_record(&mut self, record: &OutcomeRecord, outcome: String) {
        let at = crate::model::now();
        self.records.insert(
            (record.caller.clone(), record.key.clone()),
            Record {
                fingerprint: record.fingerprint.clone(),
                created_at: at,
                expires_at: record.expires_at,
                outcome: Some(outcome),
            },
        );
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

    /// Whether following dependency edges from `from` reaches `target`.
    fn depends_transitively(&self, from: i64, target: i64) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(id) = todo.pop() {
            if id == target {
                return true;
            }
            if seen.insert(id) {
                todo.extend(
                    self.edges
                        .range((id, i64::MIN)..=(id, i64::MAX))
                        .map(|(_, d)| *d),
                );
            }
        }
        false
    }

    /// Whether `task` is ready for `actor_id` under `rule`.
    fn is_ready(&self, task: &Task, actor_id: &str, rule: &ReadyRule) -> bool {
        task.status == rule.ready
            && task.assigned_to.as_deref().is_none_or(|a| a == actor_id)
            && self
                .edges
                .range((task.id, i64::MIN)..=(task.id, i64::MAX))
                .all(|(_, d)| self.tasks.get(d).is_some_and(|t| t.status == rule.finished))
    }

    /// The ready queue of `actor_id`, in queue order.
    fn ready<'a>(
        &'a self,
        actor_id: &str,
        project: &Option<String>,
        rule: &ReadyRule,
    ) -> Vec<&'a Task> {
        let mut ready: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| project.is_none() || t.project_slug == *project)
            .filter(|t| self.is_ready(t, actor_id, rule))
            .collect();
        ready.sort_by_key(|t| (rule.rank(t.priority), t.id));
        ready
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
                return Ok(Written::Refused(conflict));
            }
            let stored = task.clone().into_task(s.last_task_id + 1);
            s.append_audit(stored.id, audit, Some(&stored))?;
            s.last_task_id += 1;
            s.tasks.insert(stored.id, stored.clone());
            Ok(Written::Done(stored))
        })?
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
                Some(stored)
                    if stored.version == write.expected_version
                        && stored.lease_expires_at == write.expected_lease_expires_at => {}
                _ => return Ok(Written::Stale),
            }
            if let Some(conflict) = s.check_parent(write.task.parent_id) {
                return Ok(Written::Refused(conflict));
            }
            for invariant in &write.invariants {
                match *invariant {
                    Invariant::AcyclicParent { task, parent } => {
                        if s.reaches(parent, task) {
                            return Ok(Written::Refused(Conflict::ParentCycle { parent }));
                        }
                    }
                }
            }
            let created_at = s.tasks.get(&id).map(|t| t.created_at);
            let mut next = write.task.clone();
            if let Some(created_at) = created_at {
                next.created_at = created_at;
            }
            s.append_audit(id, &write.audit, Some(&next))?;
            s.tasks.insert(id, next);
            Ok(Written::Done(()))
        })?
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
                _ => return Ok(Written::Stale),
            }
            if s.tasks.values().any(|t| t.parent_id == Some(id)) {
                return Ok(Written::Refused(Conflict::HasSubtasks));
            }
            if s.edges.iter().any(|(_, d)| *d == id) {
                return Ok(Written::Refused(Conflict::HasDependents));
            }
            s.append_audit(id, audit, None)?;
            s.tasks.remove(&id);
            s.edges.retain(|(t, _)| *t != id);
            Ok(Written::Done(()))
        })?
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

    async fn audit_horizon(&self) -> Result<i64> {
        // One lock orders every write: a row is visible once its id is assigned.
        self.with(|s| s.last_audit_id)
    }

    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &FeedFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.with(|s| {
            // Ids ascend along the vector.
            let start = s.audit.partition_point(|a| a.id <= after);
            s.audit[start..]
                .iter()
                .take_while(|a| a.id <= upto)
                .filter(|a| filter.task_id.is_none_or(|id| a.task_id == id))
                .filter(|a| {
                    filter
                        .project
                        .as_ref()
                        .is_none_or(|p| a.project_slug.as_ref() == Some(p))
                })
                .take(limit as usize)
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

    fn queue(&self) -> Option<&dyn QueueStore> {
        Some(self)
    }

    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        Some(self)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn reserve(&self, r: &Reserve) -> Result<Reservation> {
        self.with(|s| {
            let id = (r.caller.clone(), r.key.clone());
            let reservation = match s.records.get(&id) {
                Some(old) if old.expires_at > r.now => match &old.outcome {
                    _ if old.fingerprint != r.fingerprint => return Reservation::Mismatch,
                    Some(outcome) => return Reservation::Replay(outcome.clone()),
                    None if old.created_at >= r.stale_before => return Reservation::InProgress,
                    // A reservation whose request died: taken over.
                    None => Reservation::Reserved,
                },
                _ => Reservation::Reserved,
            };
            s.records.insert(
                id,
                Record {
                    fingerprint: r.fingerprint.clone(),
                    created_at: r.now,
                    expires_at: r.expires_at,
                    outcome: None,
                },
            );
            reservation
        })
    }

    async fn settle(&self, record: &OutcomeRecord) -> Result<()> {
        let outcome = record.render(None)?;
        self.with(|s| s.store_record(record, outcome))
    }

    async fn forget(&self, caller: &str, key: &str) -> Result<()> {
        self.with(|s| {
            let id = (caller.to_owned(), key.to_owned());
            if s.records.get(&id).is_some_and(|r| r.outcome.is_none()) {
                s.records.remove(&id);
            }
        })
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.with(|s| {
            let before = s.records.len();
            s.records.retain(|_, r| r.expires_at > now);
            (before - s.records.len()) as u64
        })
    }
}

#[async_trait]
impl QueueStore for MemoryStore {
    async fn dependencies(&self, task_id: i64) -> Result<Dependencies> {
        self.with(|s| Dependencies {
            depends_on: s
                .edges
                .range((task_id, i64::MIN)..=(task_id, i64::MAX))
                .filter_map(|(_, d)| s.tasks.get(d).map(|t| (*d, t.status)))
                .collect(),
            dependents: s
                .edges
                .iter()
                .filter(|(_, d)| *d == task_id)
                .map(|(t, _)| *t)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
    }

    async fn write_dependency(&self, write: &DependencyWrite) -> Result<Written<()>> {
        self.with(|s| {
            let id = write.task.id;
            match s.tasks.get(&id) {
                Some(stored)
                    if stored.version == write.expected_version
                        && stored.lease_expires_at == write.expected_lease_expires_at => {}
                _ => return Ok(Written::Stale),
            }
            let refusal = match write.change {
                EdgeChange::Add { depends_on } if !s.tasks.contains_key(&depends_on) => {
                    Some(Conflict::DependencyMissing { depends_on })
                }
                EdgeChange::Add { depends_on } if s.edges.contains(&(id, depends_on)) => {
                    Some(Conflict::DependencyExists { depends_on })
                }
                EdgeChange::Add { depends_on } if s.depends_transitively(depends_on, id) => {
                    Some(Conflict::DependencyCycle { depends_on })
                }
                EdgeChange::Remove { depends_on } if !s.edges.contains(&(id, depends_on)) => {
                    Some(Conflict::NoSuchDependency { depends_on })
                }
                _ => None,
            };
            if let Some(conflict) = refusal {
                return Ok(Written::Refused(conflict));
            }
            let created_at = s.tasks.get(&id).map(|t| t.created_at);
            let mut next = write.task.clone();
            if let Some(created_at) = created_at {
                next.created_at = created_at;
            }
            s.append_audit(id, &write.audit, Some(&next))?;
            match write.change {
                EdgeChange::Add { depends_on } => s.edges.insert((id, depends_on)),
                EdgeChange::Remove { depends_on } => s.edges.remove(&(id, depends_on)),
            };
            s.tasks.insert(id, next);
            Ok(Written::Done(()))
        })?
    }

    async fn ready_tasks(
        &self,
        actor_id: &str,
        filter: &ReadyFilter,
        rule: &ReadyRule,
    ) -> Result<Page<Task>> {
        self.with(|s| page(s.ready(actor_id, &filter.project, rule), filter.paging))
    }

    async fn claim_next(&self, claim: &Claim) -> Result<Option<Task>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(Error::unavailable(Closed));
        }
        let Some(first) = state
            .ready(&claim.actor.id, &claim.project, &claim.rule)
            .first()
            .map(|t| (*t).clone())
        else {
            return Ok(None);
        };
        let transition = (claim.decide)(&first)?;
        state.append_audit(first.id, &transition.audit, Some(&transition.task))?;
        state.tasks.insert(first.id, transition.task.clone());
        Ok(Some(transition.task))
    }

    async fn extend_lease(&self, write: &LeaseWrite) -> Result<Written<()>> {
        self.with(|s| match s.tasks.get_mut(&write.id) {
            Some(task) if task.version == write.expected_version => {
                task.lease_expires_at = Some(write.lease_expires_at);
                task.lease_seconds = Some(write.lease_seconds);
                Written::Done(())
            }
            _ => Written::Stale,
        })
    }

    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        self.with(|s| {
            let mut expired: Vec<Task> = s
                .tasks
                .values()
                .filter(|t| crate::lifecycle::lease_expired(t, now))
                .cloned()
                .collect();
            expired.sort_by_key(|t| (t.lease_expires_at, t.id));
            expired.truncate(limit as usize);
            expired
        })
    }
}
