//! [`TaskFlow`]: the embeddable API that every client (HTTP, CLI, MCP, an embedding program)
//! goes through.

use crate::error::{Entity, Error, Permission, Result};
use crate::idempotency::{OutcomeRecord, Rendered, encode};
use crate::lifecycle::{self, Action, Creation, Move, Transition};
use crate::model::{
    Actor, ActorType, AuditEntry, AuditFilter, DEFAULT_LEASE_SECONDS, DependencyView, Expect,
    Identity, NewTask, Page, Task, TaskFilter, TaskPatch, Timestamp, Worker, WorkerType, now,
};
use crate::operation::Outcome;
use crate::store::{Conflict, DynStore, Invariant, QueueStore, TaskWrite, Written};
use crate::validate;

/// How many times a write without a version precondition re-reads and re-applies itself after
/// losing a compare-and-set race before giving up with a version mismatch.
pub(crate) const MAX_ATTEMPTS: usize = 64;

/// How deep a parent chain may be walked when looking for cycles.
const MAX_PARENT_DEPTH: usize = 10_000;

/// The task service: reads a task, asks [`crate::lifecycle`] whether a change is legal, and
/// hands the result to the [`crate::Store`] as one compare-and-set with its audit row.
///
/// Its methods are the operations of taskflow, and [`crate::Command`] lists the same
/// operations as data for front-ends that dispatch by name (MCP tools, CLI commands) through
/// [`TaskFlow::execute`]. Every method takes the caller's [`Identity`]. Whether the caller is an
/// agent comes from the worker registry, never from the caller.
///
/// Writes take an [`Expect`]: a version condition ([`crate::model::Precondition`], HTTP
/// `If-Match`; `None` converts to any version) and the fence a lease holder was given. A task
/// at another fence is refused with [`Error::LeaseLost`], one at another version with
/// [`Error::VersionMismatch`]. With any version, a write that loses a race re-reads the task
/// and re-applies itself, so the loser of a race to start a task is told
/// `Cannot start task with status 'in_progress'`.
#[derive(Clone)]
pub struct TaskFlow {
    pub(crate) store: DynStore,
    pub(crate) default_lease_seconds: i64,
    pub(crate) idempotency_ttl: std::time::Duration,
    /// The live feed's follower, shared by clones ([`crate::events`]).
    pub(crate) feed: std::sync::Arc<crate::events::Feed>,
    /// Actor types read from the worker registry, shared by clones ([`crate::workers`]).
    pub(crate) workers: std::sync::Arc<crate::workers::WorkerTypes>,
}

/// The idempotency of the request a write belongs to, threaded through the write so that the
/// store keeps the outcome with the change ([`crate::idempotency`]).
#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub(crate) caller: String,
    pub(crate) key: String,
    pub(crate) fingerprint: String,
    pub(crate) expires_at: Timestamp,
    /// Set once a change stored the outcome with itself: nothing is left to store after.
    pub(crate) stored: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Notes that the change `rec` rode on was written, and with it the outcome.
pub(crate) fn stored(rec: Option<&Recording>) {
    if let Some(rec) = rec {
        rec.stored.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Recording {
    /// Whether a change already stored the outcome.
    pub(crate) fn is_stored(&self) -> bool {
        self.stored.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The record of this request's outcome.
    pub(crate) fn record(&self, outcome: Rendered) -> OutcomeRecord {
        OutcomeRecord {
            caller: self.caller.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            expires_at: self.expires_at,
            outcome,
        }
    }
}

impl std::fmt::Debug for TaskFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFlow").finish_non_exhaustive()
    }
}

impl TaskFlow {
    /// A service over `store`. Claim-next grants [`DEFAULT_LEASE_SECONDS`] unless told
    /// otherwise ([`TaskFlow::with_default_lease`]).
    pub fn new(store: DynStore) -> Self {
        TaskFlow {
            store,
            default_lease_seconds: DEFAULT_LEASE_SECONDS,
            idempotency_ttl: crate::idempotency::DEFAULT_TTL,
            feed: std::sync::Arc::new(crate::events::Feed::new(crate::events::DEFAULT_POLL)),
            workers: std::sync::Arc::default(),
        }
    }

    /// How long the outcome of a request with an idempotency key is kept (the server's
    /// `IDEMPOTENCY_TTL_SECONDS`; default a day).
    pub fn with_idempotency_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// The lease claim-next grants when the caller names none (the server's `LEASE_SECONDS`),
    /// 10..=86400 seconds.
    pub fn with_default_lease(mut self, seconds: i64) -> Result<Self> {
        self.default_lease_seconds = validate::lease_seconds(seconds)?;
        Ok(self)
    }

    /// The underlying store.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Resolves an identity to an actor, taking its actor type from the worker registry (an
    /// identity with no worker row is human). What the registry said is kept for
    /// [`crate::workers::WORKER_TTL`], and forgotten at once when this process registers the
    /// worker again.
    pub async fn actor(&self, who: &Identity) -> Result<Actor> {
        validate::text("sub", &who.id)?;
        if let Some(actor_type) = self.workers.get(&who.id) {
            return Ok(Actor::new(who, actor_type));
        }
        let ticket = self.workers.ticket();
        let actor_type = self
            .store
            .get_worker(&who.id)
            .await?
            .map_or(ActorType::Human, |w| w.worker_type.into());
        self.workers.fill(ticket, &who.id, actor_type);
        Ok(Actor::new(who, actor_type))
    }

    /// Creates a task and its `created` audit row.
    pub async fn create_task(&self, who: &Identity, new: NewTask) -> Result<Task> {
        self.create(who, new, None).await
    }

    pub(crate) async fn create(
        &self,
        who: &Identity,
        new: NewTask,
        rec: Option<&Recording>,
    ) -> Result<Task> {
        let actor = self.actor(who).await?;
        let Creation { task, mut audit } = lifecycle::create(new, &actor, now())?;
        audit.outcome = rec.map(|r| r.record(Rendered::Task));
        match self.store.insert_task(&task, &audit).await? {
            Written::Done(task) => {
                stored(rec);
                self.committed();
                Ok(task)
            }
            Written::Stale => Err(Error::backend("the store answered Stale to an insert")),
            Written::Refused(conflict) => Err(refusal(conflict)),
        }
    }

    /// Reads one task.
    pub async fn get_task(&self, _who: &Identity, id: i64) -> Result<Task> {
        self.store
            .get_task(id)
            .await?
            .ok_or_else(|| Error::task_not_found(id))
    }

    /// Lists tasks, ordered by id, with the total number of matches.
    pub async fn list_tasks(&self, _who: &Identity, filter: &TaskFilter) -> Result<Page<Task>> {
        validate::optional_text("assigned_to", filter.assigned_to.as_deref())?;
        validate::optional_text("project", filter.project.as_deref())?;
        self.store.list_tasks(filter).await
    }

    /// Applies a partial update. A patch that changes nothing returns the task as it is, with no
    /// version bump and no audit row (but a precondition that does not hold is still refused).
    pub async fn update_task(
        &self,
        who: &Identity,
        id: i64,
        patch: &TaskPatch,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.patch(who, id, patch, &expect.into(), None).await
    }

    pub(crate) async fn patch(
        &self,
        who: &Identity,
        id: i64,
        patch: &TaskPatch,
        expect: &Expect,
        rec: Option<&Recording>,
    ) -> Result<Task> {
        let patch = lifecycle::validate_patch(patch)?;
        let actor = self.actor(who).await?;
        let new_parent = patch.parent_id.flatten();
        self.write(id, expect, new_parent, rec, |task, at| {
            lifecycle::apply_patch(task, &patch, &actor, at)
        })
        .await
    }

    /// Runs a lifecycle action on a task.
    pub async fn act(
        &self,
        who: &Identity,
        id: i64,
        action: Action,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.move_task(who, id, action, &expect.into(), None).await
    }

    pub(crate) async fn move_task(
        &self,
        who: &Identity,
        id: i64,
        action: Action,
        expect: &Expect,
        rec: Option<&Recording>,
    ) -> Result<Task> {
        action.validate()?;
        let actor = self.actor(who).await?;
        self.write(id, expect, None, rec, |task, at| {
            lifecycle::apply(task, &action, &actor, at).map(Some)
        })
        .await
    }

    /// Claims a pending task for the caller and moves it to `in_progress`, with no lease: the
    /// caller holds it until they let go. Refused while it waits on unfinished dependencies.
    pub async fn start(&self, who: &Identity, id: i64, expect: impl Into<Expect>) -> Result<Task> {
        self.act(
            who,
            id,
            Action::Start {
                lease_seconds: None,
            },
            expect,
        )
        .await
    }

    /// Reports progress (0..=100) on a task in progress, with an optional note.
    pub async fn progress(
        &self,
        who: &Identity,
        id: i64,
        percent: i32,
        note: Option<String>,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::Progress { percent, note }, expect)
            .await
    }

    /// Moves a task in progress to review.
    pub async fn submit_for_review(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::SubmitForReview, expect).await
    }

    /// Sends a task in review back to `in_progress`.
    pub async fn request_changes(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::RequestChanges, expect).await
    }

    /// Completes a task in progress or in review.
    pub async fn complete(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::Complete, expect).await
    }

    /// Blocks a task, with an optional reason.
    pub async fn block(
        &self,
        who: &Identity,
        id: i64,
        reason: Option<String>,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::Block { reason }, expect).await
    }

    /// Lifts a block: back to `in_progress` if the task is assigned, else to `pending`.
    pub async fn unblock(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::Unblock, expect).await
    }

    /// Gives an `in_progress` task back (its assignee or an admin): `pending`, unassigned, the
    /// lease cleared, progress kept.
    pub async fn release(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<Task> {
        self.act(who, id, Action::Release, expect).await
    }

    /// Deletes a task (admin only). Refused while it has subtasks or dependents; its audit rows
    /// stay.
    pub async fn delete_task(
        &self,
        who: &Identity,
        id: i64,
        expect: impl Into<Expect>,
    ) -> Result<()> {
        self.delete(who, id, &expect.into(), None).await
    }

    pub(crate) async fn delete(
        &self,
        who: &Identity,
        id: i64,
        expect: &Expect,
        rec: Option<&Recording>,
    ) -> Result<()> {
        let precondition = &expect.version;
        let actor = self.actor(who).await?;
        let outcome = match rec {
            Some(r) => Some(r.record(Rendered::Ready(encode(&Ok(Outcome::Deleted))?))),
            None => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let task = self.get_task(who, id).await?;
            let mut audit = lifecycle::delete(&task, &actor, now())?;
            audit.outcome = outcome.clone();
            precondition.check(&task)?;
            match self.store.delete_task(id, task.version, &audit).await? {
                Written::Done(()) => {
                    stored(rec);
                    self.committed();
                    return Ok(());
                }
                Written::Stale => continue,
                Written::Refused(conflict) => return Err(refusal(conflict)),
            }
        }
        Err(self.gave_up(id).await)
    }

    /// Every audit row of a task, oldest first. A task that never existed has none; an id of 0
    /// or below names no task that could ever have existed, and is `Task not found`.
    pub async fn task_audit(&self, _who: &Identity, task_id: i64) -> Result<Vec<AuditEntry>> {
        if task_id <= 0 {
            return Err(Error::task_not_found(task_id));
        }
        self.store.task_audit(task_id).await
    }

    /// Audit rows matching `filter`, oldest first, with the total number of matches.
    pub async fn list_audit(
        &self,
        _who: &Identity,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEntry>> {
        validate::optional_text("actor_id", filter.actor_id.as_deref())?;
        validate::optional_text("action", filter.action.as_deref())?;
        validate::optional_text("project", filter.project.as_deref())?;
        self.store.list_audit(filter).await
    }

    /// Registers or re-registers a worker (admin only). A re-registration replaces the type and
    /// name and keeps `created_at`.
    pub async fn put_worker(
        &self,
        who: &Identity,
        id: &str,
        worker_type: WorkerType,
        name: Option<String>,
    ) -> Result<Worker> {
        validate::actor_id("id", id)?;
        validate::optional_text("name", name.as_deref())?;
        lifecycle::require_admin(&self.actor(who).await?, Permission::RegisterWorker)?;
        // The one id taskflow writes rows as itself.
        if id == crate::model::SYSTEM_ACTOR {
            return Err(Error::validation("id", "is reserved for taskflow itself"));
        }
        let worker = Worker {
            id: id.to_owned(),
            worker_type,
            name,
            created_at: now(),
        };
        let stored = self.store.put_worker(&worker).await;
        // Also after a failure: the write may have landed before the error.
        self.workers.registered(id);
        stored
    }

    /// Reads one worker.
    pub async fn get_worker(&self, _who: &Identity, id: &str) -> Result<Worker> {
        validate::text("id", id)?;
        self.store
            .get_worker(id)
            .await?
            .ok_or_else(|| Error::worker_not_found(id))
    }

    /// Every worker, ordered by id.
    pub async fn list_workers(&self, _who: &Identity) -> Result<Vec<Worker>> {
        self.store.list_workers().await
    }

    /// Checks that the store answers.
    pub async fn health(&self) -> Result<()> {
        self.store.ping().await
    }

    /// The read, decide, compare-and-set loop behind every update. When `new_parent` differs from
    /// the task's parent, it is checked for existence and cycles before deciding (so that the
    /// 422 comes before the lifecycle's answer), and again by the store inside the write.
    async fn write(
        &self,
        id: i64,
        expect: &Expect,
        new_parent: Option<i64>,
        rec: Option<&Recording>,
        decide: impl Fn(&Task, Timestamp) -> Result<Option<Transition>>,
    ) -> Result<Task> {
        for _ in 0..MAX_ATTEMPTS {
            let task = self.read_for_write(id, expect).await?;
            let reparent = new_parent.filter(|&p| task.parent_id != Some(p));
            if let Some(parent) = reparent {
                self.require_acyclic_parent(task.id, parent).await?;
            }
            let decision = decide(&task, now())?;
            if decision.as_ref().and_then(|t| t.moved) == Some(Move::Start) {
                self.require_no_waiting(id).await?;
            }
            expect.version.check(&task)?;
            let Some(Transition {
                task: next,
                mut audit,
                ..
            }) = decision
            else {
                return Ok(task);
            };
            audit.outcome = rec.map(|r| r.record(Rendered::Task));
            let write = TaskWrite {
                expected_version: task.version,
                expected_lease_expires_at: task.lease_expires_at,
                invariants: reparent
                    .map(|parent| Invariant::AcyclicParent { task: id, parent })
                    .into_iter()
                    .collect(),
                task: next,
                audit,
            };
            match self.store.update_task(&write).await? {
                Written::Done(()) => {
                    stored(rec);
                    self.committed();
                    return Ok(write.task);
                }
                Written::Stale => continue,
                Written::Refused(conflict) => return Err(refusal(conflict)),
            }
        }
        Err(self.gave_up(id).await)
    }

    /// Reads task `id` for a write: `Task not found`, then the fence (`Lease lost`).
    pub(crate) async fn read_for_write(&self, id: i64, expect: &Expect) -> Result<Task> {
        let task = self
            .store
            .get_task(id)
            .await?
            .ok_or_else(|| Error::task_not_found(id))?;
        expect.check_fence(&task)?;
        Ok(task)
    }

    /// The work queue of the store, or [`Error::Unsupported`].
    pub(crate) fn queue(&self, operation: &'static str) -> Result<&dyn QueueStore> {
        self.store.queue().ok_or_else(|| Error::Unsupported {
            operation: operation.to_owned(),
        })
    }

    /// Refuses to start task `id` while it waits on unfinished dependencies. A store without
    /// the work queue has no dependencies, so nothing to wait on.
    async fn require_no_waiting(&self, id: i64) -> Result<()> {
        let Some(queue) = self.store.queue() else {
            return Ok(());
        };
        let waiting = waiting_on(&queue.dependencies(id).await?);
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(Error::WaitingOnDependencies { ids: waiting })
        }
    }

    /// The error for a write that lost [`MAX_ATTEMPTS`] races in a row.
    pub(crate) async fn gave_up(&self, id: i64) -> Error {
        match self.store.get_task(id).await {
            Ok(Some(task)) => Error::VersionMismatch {
                current: task.version,
            },
            Ok(None) => Error::task_not_found(id),
            Err(err) => err,
        }
    }

    /// Checks, before deciding, that `parent` exists and that making it the parent of `id`
    /// forms no cycle. The store checks the same inside the write
    /// ([`Invariant::AcyclicParent`]), which is what makes it hold under concurrency; this read
    /// only puts the 422 ahead of the lifecycle's answers.
    async fn require_acyclic_parent(&self, id: i64, parent: i64) -> Result<()> {
        if parent == id {
            return Err(refusal(Conflict::ParentCycle { parent }));
        }
        let mut next = self
            .store
            .get_task(parent)
            .await?
            .ok_or(refusal(Conflict::ParentMissing { parent }))?
            .parent_id;
        for _ in 0..MAX_PARENT_DEPTH {
            let Some(ancestor) = next else {
                return Ok(());
            };
            if ancestor == id {
                return Err(refusal(Conflict::ParentCycle { parent }));
            }
            next = self
                .store
                .get_task(ancestor)
                .await?
                .and_then(|t| t.parent_id);
        }
        Err(refusal(Conflict::ParentCycle { parent }))
    }
}

/// The caller's error for a write the store refused.
pub(crate) fn refusal(conflict: Conflict) -> Error {
    match conflict {
        Conflict::ParentMissing { parent } => {
            Error::validation("parent_id", format!("task {parent} not found"))
        }
        Conflict::ParentCycle { .. } => Error::validation("parent_id", "would create a cycle"),
        Conflict::HasSubtasks => Error::HasSubtasks,
        Conflict::HasDependents => Error::HasDependents,
        Conflict::DependencyMissing { depends_on } => {
            Error::validation("depends_on", format!("task {depends_on} not found"))
        }
        Conflict::DependencyCycle { .. } => Error::validation("depends_on", "would create a cycle"),
        Conflict::NoSuchDependency { depends_on } => Error::NotFound {
            kind: Entity::Dependency,
            id: depends_on.to_string(),
        },
        // Callers treat an existing edge as no change before it gets here.
        Conflict::DependencyExists { depends_on } => {
            Error::backend(format!("dependency on {depends_on} exists"))
        }
    }
}

/// The dependencies of a task that are not finished yet, ascending.
pub(crate) fn waiting_on(deps: &crate::store::Dependencies) -> Vec<i64> {
    deps.depends_on
        .iter()
        .filter(|(_, status)| !lifecycle::is_finished(*status))
        .map(|(id, _)| *id)
        .collect()
}

pub(crate) fn view(task_id: i64, deps: &crate::store::Dependencies) -> DependencyView {
    DependencyView {
        task_id,
        depends_on: deps.depends_on.iter().map(|(id, _)| *id).collect(),
        dependents: deps.dependents.clone(),
        waiting_on: waiting_on(deps),
    }
}
