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
    Actor, ActorType, AuditEntry, AuditFilter, Identity, NewTask, Page, Precondition, Task,
    TaskFilter, TaskPatch, Worker,
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
    },
    /// [`TaskFlow::act`]: a lifecycle move (start, progress, review, …).
    Act {
        /// The task.
        id: i64,
        /// The move, with its arguments.
        action: Action,
        /// What the task must be at.
        #[serde(default)]
        precondition: Precondition,
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
        worker_type: ActorType,
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
    /// The task is gone.
    Deleted,
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
            } => Outcome::Task(self.update_task(who, id, &patch, precondition).await?),
            Command::Act {
                id,
                action,
                precondition,
            } => Outcome::Task(self.act(who, id, action, precondition).await?),
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
