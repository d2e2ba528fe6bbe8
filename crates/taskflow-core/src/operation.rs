//! The one list of operations: [`Command`] names each operation of [`TaskFlow`] as data, and
//! [`TaskFlow::execute`] runs it. Front-ends that dispatch by name (an MCP tool, a CLI command)
//! build a `Command` from their arguments and render the [`Outcome`]; so do the HTTP API's write
//! handlers, and [`TaskFlow::execute_once`] runs a command at most once per idempotency key.
//! Either way the rules run once, here in core.
//!
//! Adding an operation means: a method on [`TaskFlow`], a variant here, and a thin mapping in
//! each front-end.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::idempotency::{
    Idempotent, RESERVATION_TIMEOUT, Recorded, Rendered, Reservation, Reserve, decode, encode,
};
use crate::lifecycle::Action;
use crate::model::{
    Actor, AuditEntry, AuditFilter, DependencyView, Expect, Identity, NewTask, Page, Precondition,
    ReadyFilter, Task, TaskFilter, TaskPatch, Worker, WorkerType, now,
};
use crate::service::Recording;
use crate::service::TaskFlow;
use crate::store::EdgeChange;

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
        self.run(who, command, None).await
    }

    /// Runs `command` at most once per idempotency key: the first request with `idempotent`'s
    /// key runs, and its outcome is stored (with its change, in the same transaction); a
    /// repeat with the same key and fingerprint gets the stored outcome, marked replayed, and
    /// changes nothing. The same key for another request is a 422; a repeat while the first
    /// still runs, a 409 ([`Error::IdempotencyInProgress`]). See [`crate::idempotency`]. A
    /// command that writes nothing just runs.
    pub async fn execute_once(
        &self,
        who: &Identity,
        idempotent: &Idempotent,
        command: Command,
    ) -> Once<Result<Outcome>> {
        if !command.is_write() {
            return Once::fresh(self.execute(who, command).await);
        }
        match self.reserve(who, idempotent).await {
            Err(err) => Once::fresh(Err(err)),
            Ok(Reserved::Replay(recorded)) => Once {
                value: recorded,
                replayed: true,
            },
            Ok(Reserved::Run(rec)) => {
                let result = self.run(who, command, Some(&rec)).await;
                // Failing to keep the outcome is not the caller's problem: a change stored it
                // already, and otherwise a retry runs again (the reservation lapses).
                let _ = self.finish(&rec, &result).await;
                Once::fresh(result)
            }
        }
    }

    /// Reserves `idempotent`'s key for `who`, or answers what holds it.
    async fn reserve(&self, who: &Identity, idempotent: &Idempotent) -> Result<Reserved> {
        let store = self.store.idempotency().ok_or_else(|| Error::Unsupported {
            operation: "idempotency keys".to_owned(),
        })?;
        let at = now();
        let stale = chrono::Duration::from_std(RESERVATION_TIMEOUT).map_err(Error::backend)?;
        let ttl = chrono::Duration::from_std(self.idempotency_ttl).map_err(Error::backend)?;
        let rec = Recording {
            caller: who.id.clone(),
            key: idempotent.key.as_str().to_owned(),
            fingerprint: idempotent.fingerprint.clone(),
            expires_at: at + ttl,
            stored: Default::default(),
        };
        let reserve = Reserve {
            caller: rec.caller.clone(),
            key: rec.key.clone(),
            fingerprint: rec.fingerprint.clone(),
            now: at,
            stale_before: at - stale,
            expires_at: rec.expires_at,
        };
        match store.reserve(&reserve).await? {
            Reservation::Reserved => Ok(Reserved::Run(rec)),
            Reservation::Replay(stored) => Ok(Reserved::Replay(decode(&stored)?)),
            Reservation::InProgress => Err(Error::IdempotencyInProgress),
            Reservation::Mismatch => Err(Error::validation(
                "Idempotency-Key",
                "reused with a different request",
            )),
        }
    }

    /// Stores the outcome of a request that ran (for a change that stored it itself: the same
    /// outcome again), or drops the reservation of one whose outcome is not kept.
    async fn finish(&self, rec: &Recording, result: &Result<Outcome>) -> Result<()> {
        let Some(store) = self.store.idempotency() else {
            return Ok(());
        };
        match result {
            Err(err) if !err.is_recorded() => store.forget(&rec.caller, &rec.key).await,
            // The change stored this very outcome with itself.
            Ok(_) if rec.is_stored() => Ok(()),
            recorded => {
                let encoded = encode(recorded)?;
                store.settle(&rec.record(Rendered::Ready(encoded))).await
            }
        }
    }

    /// Deletes the idempotency records whose time-to-live ran out; returns how many. The
    /// server runs it now and then; a program that embeds taskflow may too.
    pub async fn purge_idempotency_records(&self) -> Result<u64> {
        match self.store.idempotency() {
            Some(store) => store.purge_expired(now()).await,
            None => Ok(0),
        }
    }

    /// The one dispatch behind [`TaskFlow::execute`] and [`TaskFlow::execute_once`]: with a
    /// recording, every write stores its outcome with its change.
    async fn run(
        &self,
        who: &Identity,
        command: Command,
        rec: Option<&Recording>,
    ) -> Result<Outcome> {
        Ok(match command {
            Command::CreateTask { task } => Outcome::Task(self.create(who, task, rec).await?),
            Command::GetTask { id } => Outcome::Task(self.get_task(who, id).await?),
            Command::ListTasks { filter } => Outcome::Tasks(self.list_tasks(who, &filter).await?),
            Command::UpdateTask {
                id,
                patch,
                precondition,
                fence,
            } => Outcome::Task(
                self.patch(who, id, &patch, &expect(precondition, fence), rec)
                    .await?,
            ),
            Command::Act {
                id,
                action,
                precondition,
                fence,
            } => Outcome::Task(
                self.move_task(who, id, action, &expect(precondition, fence), rec)
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
            } => Outcome::Claimed(self.claim(who, project, lease_seconds, rec).await?),
            Command::ReadyTasks { filter } => Outcome::Tasks(self.ready_tasks(who, &filter).await?),
            Command::Dependencies { id } => {
                Outcome::Dependencies(self.dependencies(who, id).await?)
            }
            Command::AddDependency {
                id,
                depends_on,
                fence,
            } => Outcome::Dependencies(
                self.edge(
                    who,
                    id,
                    EdgeChange::Add { depends_on },
                    &Expect::fence(fence),
                    rec,
                )
                .await?,
            ),
            Command::RemoveDependency {
                id,
                depends_on,
                fence,
            } => {
                self.edge(
                    who,
                    id,
                    EdgeChange::Remove { depends_on },
                    &Expect::fence(fence),
                    rec,
                )
                .await?;
                Outcome::Deleted
            }
            Command::DeleteTask { id, precondition } => {
                self.delete(who, id, &precondition.into(), rec).await?;
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

/// What a request that may have run before answers: its value, and whether that value was
/// stored from an earlier request with the same idempotency key (a replay) rather than made now.
#[derive(Debug)]
pub struct Once<T> {
    /// The outcome.
    pub value: T,
    /// Whether it is the stored outcome of an earlier request.
    pub replayed: bool,
}

impl<T> Once<T> {
    fn fresh(value: T) -> Self {
        Once {
            value,
            replayed: false,
        }
    }
}

enum Reserved {
    Run(Recording),
    Replay(Recorded),
}
