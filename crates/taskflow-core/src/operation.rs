//! The one list of operations: [`Command`] names each operation of [`TaskFlow`] as data, and
//! [`TaskFlow::execute`] runs it. Front-ends that dispatch by name (an MCP tool, a CLI command)
//! build a `Command` from their arguments and render the [`Outcome`]; the HTTP API calls the
//! same methods directly. Either way the rules run once, here in core.
//!
//! Adding an operation means: a method on [`TaskFlow`], a variant here, and a thin mapping in
//! each front-end.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lifecycle::Action;
use crate::model::{
    Actor, AuditEntry, AuditFilter, DependencyView, Expect, Identity, NewTask, Page, Precondition,
    ReadyFilter, Task, TaskFilter, TaskPatch, Worker, WorkerType,
};
use crate::service::TaskFlow;

/// An operation of taskflow, with its arguments. The acting identity is passed beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// [`TaskFlow::create_task`].
    CreateTask {
        /// The new task.
        task: NewTask,
    },
    /// [`TaskFlow::get_task`].
    GetTask {
        /// The task.
        id: i64,
    },
    /// [`TaskFlow::list_tasks`].
    ListTasks {
        /// Filters and paging.
        #[serde(default)]
        filter: TaskFilter,
    },
    /// [`TaskFlow::update_task`].
    UpdateTask {
        /// The task.
        id: i64,
        /// The fields to change.
        patch: TaskPatch,
        /// What the task must be at.
        #[serde(default)]
        precondition: Precondition,
        /// The fence the caller holds, if any.
        #[serde(default)]
        fence: Option<i64>,
    },
    /// [`TaskFlow::act`]: a lifecycle move (start, progress, review, release, …).
    Act {
        /// The task.
        id: i64,
        /// The move, with its arguments.
        action: Action,
        /// What the task must be at.
        #[serde(default)]
        precondition: Precondition,
        /// The fence the caller holds, if any.
        #[serde(default)]
        fence: Option<i64>,
    },
    /// [`TaskFlow::heartbeat`].
    Heartbeat {
        /// The task.
        id: i64,
        /// The new lease length; default the one granted.
        #[serde(default)]
        lease_seconds: Option<i64>,
        /// The fence the caller holds, if any.
        #[serde(default)]
        fence: Option<i64>,
    },
    /// [`TaskFlow::claim_next`].
    ClaimNext {
        /// Only tasks of this project.
        #[serde(default)]
        project: Option<String>,
        /// The lease to hold; default the server's.
        #[serde(default)]
        lease_seconds: Option<i64>,
    },
    /// [`TaskFlow::ready_tasks`].
    ReadyTasks {
        /// Filters and paging.
        #[serde(default)]
        filter: ReadyFilter,
    },
    /// [`TaskFlow::dependencies`].
    Dependencies {
        /// The task.
        id: i64,
    },
    /// [`TaskFlow::add_dependency`].
    AddDependency {
        /// The dependent task.
        id: i64,
        /// The task it will wait for.
        depends_on: i64,
        /// The fence the caller holds, if any.
        #[serde(default)]
        fence: Option<i64>,
    },
    /// [`TaskFlow::remove_dependency`].
    RemoveDependency {
        /// The dependent task.
        id: i64,
        /// The task it waited for.
        depends_on: i64,
        /// The fence the caller holds, if any.
        #[serde(default)]
        fence: Option<i64>,
    },
    /// [`TaskFlow::delete_task`].
    DeleteTask {
        /// The task.
        id: i64,
        /// What the task must be at.
        #[serde(default)]
        precondition: Precondition,
    },
    /// [`TaskFlow::task_audit`].
    TaskAudit {
        /// The task (it may since have been deleted).
        id: i64,
    },
    /// [`TaskFlow::list_audit`].
    ListAudit {
        /// Filters and paging.
        #[serde(default)]
        filter: AuditFilter,
    },
    /// [`TaskFlow::put_worker`].
    PutWorker {
        /// The worker's actor id.
        id: String,
        /// Human or agent.
        worker_type: WorkerType,
        /// A display name.
        #[serde(default)]
        name: Option<String>,
    },
    /// [`TaskFlow::get_worker`].
    GetWorker {
        /// The worker's actor id.
        id: String,
    },
    /// [`TaskFlow::list_workers`].
    ListWorkers,
    /// [`TaskFlow::actor`]: who the caller is, and whether an agent.
    Whoami,
}

impl Command {
    /// Whether running this command can change anything.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::CreateTask { .. }
                | Command::UpdateTask { .. }
                | Command::Act { .. }
                | Command::Heartbeat { .. }
                | Command::ClaimNext { .. }
                | Command::AddDependency { .. }
                | Command::RemoveDependency { .. }
                | Command::DeleteTask { .. }
                | Command::PutWorker { .. }
        )
    }
}

/// What a [`Command`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// One task (create, get, update, a lifecycle move).
    Task(Task),
    /// A page of tasks.
    Tasks(Page<Task>),
    /// The task is gone, or the edge removed.
    Deleted,
    /// What claim-next took: a task, or nothing when nothing was ready.
    Claimed(Option<Task>),
    /// A task's dependencies.
    Dependencies(DependencyView),
    /// A task's whole audit trail.
    Audit(Vec<AuditEntry>),
    /// A page of the audit trail.
    AuditPage(Page<AuditEntry>),
    /// One worker.
    Worker(Worker),
    /// Every worker.
    Workers(Vec<Worker>),
    /// The caller.
    Actor(Actor),
}

impl TaskFlow {
    /// Runs `command` as `who`: the same call, with the same rules and audit rows, as the
    /// method it names.
    pub async fn execute(&self, who: &Identity, command: Command) -> Result<Outcome> {
        Ok(match command {
            Command::CreateTask { task } => Outcome::Task(self.create_task(who, task).await?),
            Command::GetTask { id } => Outcome::Task(self.get_task(who, id).await?),
            Command::ListTasks { filter } => Outcome::Tasks(self.list_tasks(who, &filter).await?),
            Command::UpdateTask {
                id,
                patch,
                precondition,
                fence,
            } => Outcome::Task(
                self.update_task(who, id, &patch, expect(precondition, fence))
                    .await?,
            ),
            Command::Act {
                id,
                action,
                precondition,
                fence,
            } => Outcome::Task(
                self.act(who, id, action, expect(precondition, fence))
                    .await?,
            ),
            Command::Heartbeat {
                id,
                lease_seconds,
                fence,
            } => Outcome::Task(
                self.heartbeat(who, id, lease_seconds, Expect::fence(fence))
                    .await?,
            ),
            Command::ClaimNext {
                project,
                lease_seconds,
            } => Outcome::Claimed(self.claim_next(who, project, lease_seconds).await?),
            Command::ReadyTasks { filter } => Outcome::Tasks(self.ready_tasks(who, &filter).await?),
            Command::Dependencies { id } => {
                Outcome::Dependencies(self.dependencies(who, id).await?)
            }
            Command::AddDependency {
                id,
                depends_on,
                fence,
            } => Outcome::Dependencies(
                self.add_dependency(who, id, depends_on, Expect::fence(fence))
                    .await?,
            ),
            Command::RemoveDependency {
                id,
                depends_on,
                fence,
            } => {
                self.remove_dependency(who, id, depends_on, Expect::fence(fence))
                    .await?;
                Outcome::Deleted
            }
            Command::DeleteTask { id, precondition } => {
                self.delete_task(who, id, precondition).await?;
                Outcome::Deleted
            }
            Command::TaskAudit { id } => Outcome::Audit(self.task_audit(who, id).await?),
            Command::ListAudit { filter } => {
                Outcome::AuditPage(self.list_audit(who, &filter).await?)
            }
            Command::PutWorker {
                id,
                worker_type,
                name,
            } => Outcome::Worker(self.put_worker(who, &id, worker_type, name).await?),
            Command::GetWorker { id } => Outcome::Worker(self.get_worker(who, &id).await?),
            Command::ListWorkers => Outcome::Workers(self.list_workers(who).await?),
            Command::Whoami => Outcome::Actor(self.actor(who).await?),
        })
    }
}

fn expect(version: Precondition, fence: Option<i64>) -> Expect {
    Expect::from(version).with_fence(fence)
}
