//! [`TaskFlow`]: the embeddable API that every client (HTTP, CLI, MCP, an embedding program)
//! goes through.

use crate::error::{Error, Result};
use crate::lifecycle::{self, Action, Transition};
use crate::model::{
    Actor, ActorType, AuditEntry, AuditFilter, Identity, NewTask, Page, Task, TaskFilter,
    TaskPatch, Timestamp, Worker, now,
};
use crate::store::DynStore;
use crate::validate;

/// How many times a write without an expected version re-reads and re-applies itself after
/// losing a compare-and-set race before giving up with a version mismatch.
const MAX_ATTEMPTS: usize = 64;

/// How deep a parent chain may be walked when looking for cycles.
const MAX_PARENT_DEPTH: usize = 10_000;

/// The task service: reads a task, asks [`crate::lifecycle`] whether a change is legal, and
/// hands the result to the [`crate::Store`] as one compare-and-set with its audit row.
///
/// Every method takes the caller's [`Identity`]. Whether the caller is an agent comes from the
/// worker registry, never from the caller.
///
/// Writes take an optional `expected_version` (HTTP `If-Match`). With it, a task at any other
/// version is refused with [`Error::VersionMismatch`]. Without it, a write that loses a race
/// re-reads the task and re-applies itself, so the loser of a race to start a task is told
/// `Cannot start task with status 'in_progress'`.
#[derive(Clone)]
pub struct TaskFlow {
    store: DynStore,
}

impl std::fmt::Debug for TaskFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFlow").finish_non_exhaustive()
    }
}

impl TaskFlow {
    /// A service over `store`.
    pub fn new(store: DynStore) -> Self {
        TaskFlow { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Resolves an identity to an actor, taking its actor type from the worker registry (an
    /// identity with no worker row is human).
    pub async fn actor(&self, who: &Identity) -> Result<Actor> {
        validate::text("sub", &who.id)?;
        let actor_type = self
            .store
            .get_worker(&who.id)
            .await?
            .map_or(ActorType::Human, |w| w.worker_type);
        Ok(Actor::new(who, actor_type))
    }

    /// Creates a task and its `created` audit row.
    pub async fn create_task(&self, who: &Identity, new: NewTask) -> Result<Task> {
        let actor = self.actor(who).await?;
        let Transition { task, audit } = lifecycle::create(new, &actor, now())?;
        if let Some(parent) = task.parent_id {
            self.require_parent(parent).await?;
        }
        self.store.insert_task(&task, &audit).await
    }

    /// Reads one task.
    pub async fn get_task(&self, _who: &Identity, id: i64) -> Result<Task> {
        self.store
            .get_task(id)
            .await?
            .ok_or_else(Error::task_not_found)
    }

    /// Lists tasks, ordered by id, with the total number of matches.
    pub async fn list_tasks(&self, _who: &Identity, filter: &TaskFilter) -> Result<Page<Task>> {
        validate::limit(filter.limit)?;
        validate::offset(filter.offset)?;
        validate::optional_text("assigned_to", filter.assigned_to.as_deref())?;
        validate::optional_text("project", filter.project.as_deref())?;
        let mut filter = filter.clone();
        filter.parent_id = validate::parent_id(filter.parent_id);
        self.store.list_tasks(&filter).await
    }

    /// Applies a partial update. A patch that changes nothing returns the task as it is, with no
    /// version bump and no audit row (but a stale `expected_version` is still refused).
    pub async fn update_task(
        &self,
        who: &Identity,
        id: i64,
        patch: &TaskPatch,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let patch = lifecycle::validate_patch(patch)?;
        let actor = self.actor(who).await?;
        let new_parent = patch.parent_id.flatten();
        self.write(id, expected_version, new_parent, |task, at| {
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
        expected_version: Option<i64>,
    ) -> Result<Task> {
        action.validate()?;
        let actor = self.actor(who).await?;
        self.write(id, expected_version, None, |task, at| {
            lifecycle::apply(task, &action, &actor, at).map(Some)
        })
        .await
    }

    /// Claims a pending task for the caller and moves it to `in_progress`.
    pub async fn start(&self, who: &Identity, id: i64, expected: Option<i64>) -> Result<Task> {
        self.act(who, id, Action::Start, expected).await
    }

    /// Reports progress (0..=100) on a task in progress, with an optional note.
    pub async fn progress(
        &self,
        who: &Identity,
        id: i64,
        percent: i32,
        note: Option<String>,
        expected: Option<i64>,
    ) -> Result<Task> {
        self.act(who, id, Action::Progress { percent, note }, expected)
            .await
    }

    /// Moves a task in progress to review.
    pub async fn submit_for_review(
        &self,
        who: &Identity,
        id: i64,
        expected: Option<i64>,
    ) -> Result<Task> {
        self.act(who, id, Action::SubmitForReview, expected).await
    }

    /// Sends a task in review back to `in_progress`.
    pub async fn request_changes(
        &self,
        who: &Identity,
        id: i64,
        expected: Option<i64>,
    ) -> Result<Task> {
        self.act(who, id, Action::RequestChanges, expected).await
    }

    /// Completes a task in progress or in review.
    pub async fn complete(&self, who: &Identity, id: i64, expected: Option<i64>) -> Result<Task> {
        self.act(who, id, Action::Complete, expected).await
    }

    /// Blocks a task, with an optional reason.
    pub async fn block(
        &self,
        who: &Identity,
        id: i64,
        reason: Option<String>,
        expected: Option<i64>,
    ) -> Result<Task> {
        self.act(who, id, Action::Block { reason }, expected).await
    }

    /// Lifts a block: back to `in_progress` if the task is assigned, else to `pending`.
    pub async fn unblock(&self, who: &Identity, id: i64, expected: Option<i64>) -> Result<Task> {
        self.act(who, id, Action::Unblock, expected).await
    }

    /// Deletes a task (admin only). Refused while it has subtasks; its audit rows stay.
    pub async fn delete_task(
        &self,
        who: &Identity,
        id: i64,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let actor = self.actor(who).await?;
        for _ in 0..MAX_ATTEMPTS {
            let task = self.get_task(who, id).await?;
            let audit = lifecycle::delete(&task, &actor, now())?;
            check_expected(&task, expected_version)?;
            if self.store.delete_task(id, task.version, &audit).await? {
                return Ok(());
            }
        }
        Err(self.gave_up(id).await)
    }

    /// Every audit row of a task, oldest first. A task that never existed has none.
    pub async fn task_audit(&self, _who: &Identity, task_id: i64) -> Result<Vec<AuditEntry>> {
        // Ids start at 1: an id of 0 or below names no task that could ever have existed.
        if task_id <= 0 {
            return Err(Error::task_not_found());
        }
        self.store.task_audit(task_id).await
    }

    /// Audit rows matching `filter`, oldest first, with the total number of matches.
    pub async fn list_audit(
        &self,
        _who: &Identity,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEntry>> {
        validate::limit(filter.limit)?;
        validate::offset(filter.offset)?;
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
        worker_type: ActorType,
        name: Option<String>,
    ) -> Result<Worker> {
        validate::actor_id("id", id)?;
        validate::optional_text("name", name.as_deref())?;
        lifecycle::require_admin(&self.actor(who).await?)?;
        let worker = Worker {
            id: id.to_owned(),
            worker_type,
            name,
            created_at: now(),
        };
        self.store.put_worker(&worker).await
    }

    /// Reads one worker.
    pub async fn get_worker(&self, _who: &Identity, id: &str) -> Result<Worker> {
        validate::text("id", id)?;
        self.store
            .get_worker(id)
            .await?
            .ok_or_else(Error::worker_not_found)
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
    /// the task's parent, it is checked for existence and cycles before deciding.
    async fn write(
        &self,
        id: i64,
        expected: Option<i64>,
        new_parent: Option<i64>,
        decide: impl Fn(&Task, Timestamp) -> Result<Option<Transition>>,
    ) -> Result<Task> {
        for _ in 0..MAX_ATTEMPTS {
            let task = self
                .store
                .get_task(id)
                .await?
                .ok_or_else(Error::task_not_found)?;
            if let Some(parent) = new_parent.filter(|&p| task.parent_id != Some(p)) {
                self.require_acyclic_parent(task.id, parent).await?;
            }
            let decision = decide(&task, now())?;
            check_expected(&task, expected)?;
            let Some(Transition { task: next, audit }) = decision else {
                return Ok(task);
            };
            if self.store.update_task(&next, &audit).await? {
                return Ok(next);
            }
        }
        Err(self.gave_up(id).await)
    }

    /// The error for a write that lost [`MAX_ATTEMPTS`] races in a row.
    async fn gave_up(&self, id: i64) -> Error {
        match self.store.get_task(id).await {
            Ok(Some(task)) => Error::VersionMismatch {
                current: task.version,
            },
            Ok(None) => Error::task_not_found(),
            Err(err) => err,
        }
    }

    async fn require_parent(&self, parent: i64) -> Result<Task> {
        self.store
            .get_task(parent)
            .await?
            .ok_or_else(|| Error::validation("parent_id", format!("task {parent} not found")))
    }

    /// Checks that `parent` exists and that making it the parent of `id` forms no cycle.
    async fn require_acyclic_parent(&self, id: i64, parent: i64) -> Result<()> {
        let cycle = || Error::validation("parent_id", "would create a cycle");
        if parent == id {
            return Err(cycle());
        }
        let mut next = self.require_parent(parent).await?.parent_id;
        for _ in 0..MAX_PARENT_DEPTH {
            let Some(ancestor) = next else {
                return Ok(());
            };
            if ancestor == id {
                return Err(cycle());
            }
            next = self
                .store
                .get_task(ancestor)
                .await?
                .and_then(|t| t.parent_id);
        }
        Err(cycle())
    }
}

fn check_expected(task: &Task, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(version) if version != task.version => Err(Error::VersionMismatch {
            current: task.version,
        }),
        _ => Ok(()),
    }
}
