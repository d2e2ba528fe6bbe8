//! The one error type of taskflow. Variants carry data, not sentences: a front-end matches on
//! them (a CLI picks an exit code, MCP marks a tool result as an error) and their `Display` is
//! the message the HTTP API sends, so it is part of the wire contract.

use std::error::Error as StdError;
use std::fmt;

use crate::lifecycle::Move;
use crate::model::TaskStatus;

/// A boxed error from a storage backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of taskflow's core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on. Each variant maps to one HTTP status.
///
/// The refusals serialize (an idempotency record stores them, [`crate::idempotency`]); the
/// errors that are not the caller's doing do not.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist (HTTP 404): `Task not found`, `Worker not found`.
    #[error("{kind} not found")]
    NotFound {
        /// What kind of thing.
        kind: Entity,
        /// The id that was asked for.
        id: String,
    },

    /// Input broke a rule (HTTP 422). The message starts with the field name and a colon.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field, as named on the wire.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The lifecycle has no such move from the task's status (HTTP 400), e.g. `Cannot start
    /// task with status 'in_progress'`.
    #[error("{}", action.refusal(*from))]
    InvalidTransition {
        /// The move that was asked for.
        action: Move,
        /// The task's status.
        from: TaskStatus,
    },

    /// A PATCH asked for a status that no row of the lifecycle table reaches from the task's
    /// status (HTTP 400): `Cannot change status from '<from>' to '<to>'`.
    #[error("Cannot change status from '{from}' to '{to}'")]
    InvalidStatusChange {
        /// The task's status.
        from: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },

    /// The policy does not let this actor do this (HTTP 403).
    #[error("{action}")]
    Forbidden {
        /// What was refused.
        action: Permission,
    },

    /// The caller's precondition does not hold: the task is at another version (HTTP 412).
    #[error("Version mismatch: task is at version {current}")]
    VersionMismatch {
        /// The task's version now.
        current: i64,
    },

    /// The task cannot be deleted while it has subtasks (HTTP 409).
    #[error("Task has subtasks")]
    HasSubtasks,

    /// The task cannot be deleted while other tasks depend on it (HTTP 409).
    #[error("Task has dependents")]
    HasDependents,

    /// The caller named a fence that is not the task's: its lease was lost to a newer holder
    /// (HTTP 409). Checked before the lifecycle.
    #[error("Lease lost: task is at fence {current_fence}")]
    LeaseLost {
        /// The task's fence now.
        current_fence: i64,
    },

    /// The task cannot start while tasks it depends on are unfinished (HTTP 400).
    #[error("Task is waiting on unfinished dependencies: {}", join_ids(ids))]
    WaitingOnDependencies {
        /// The unfinished dependencies, ascending.
        ids: Vec<i64>,
    },

    /// A heartbeat for a task that holds no lease (HTTP 400).
    #[error("Task has no lease")]
    NoLease,

    /// A request with this idempotency key is still running (HTTP 409).
    #[error("Idempotency-Key: a request with this key is still in progress")]
    IdempotencyInProgress,

    /// The store does not offer what this operation needs (HTTP 501), e.g. a custom store
    /// without the work queue capability.
    #[error("This store does not support {operation}")]
    #[serde(skip)]
    Unsupported {
        /// What was asked, e.g. `dependencies`.
        operation: String,
    },

    /// The database cannot be reached right now: refused, timed out, or shutting down (HTTP
    /// 503). Nothing was written; the same call may succeed once the database is back. The text
    /// says why (`connection refused`, `the SQLite store is closed`) and never carries the
    /// database URL or its password; the HTTP API answers `Database unavailable`.
    #[error("{0}")]
    #[serde(skip)]
    Unavailable(#[source] BoxError),

    /// The storage backend failed (HTTP 500, or 503 for health checks).
    #[error("{0}")]
    #[serde(skip)]
    Backend(#[source] BoxError),
}

/// The kinds of things a caller can ask for by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A task.
    Task,
    /// A worker registry entry.
    Worker,
    /// A dependency edge between two tasks.
    Dependency,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Task => "Task",
            Entity::Worker => "Worker",
            Entity::Dependency => "Dependency",
        })
    }
}

/// What the default policy guards: moves that belong to a task's assignee (or anyone while it
/// is unassigned) or an admin, and actions for admins only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Permission {
    /// Reporting progress.
    ReportProgress,
    /// Submitting for review.
    SubmitForReview,
    /// Completing a task in progress.
    Complete,
    /// Blocking.
    Block,
    /// Unblocking.
    Unblock,
    /// Taking a task away from its assignee.
    Reassign,
    /// Giving an `in_progress` task back to the queue.
    Release,
    /// Extending the lease on a task.
    Heartbeat,
    /// Deleting a task (admin only).
    Delete,
    /// Registering a worker (admin only).
    RegisterWorker,
}

impl Permission {
    /// Whether only an admin may do this.
    pub fn admin_only(self) -> bool {
        matches!(self, Permission::Delete | Permission::RegisterWorker)
    }

    fn verb(self) -> &'static str {
        match self {
            Permission::ReportProgress => "report progress on",
            Permission::SubmitForReview => "submit",
            Permission::Complete => "complete",
            Permission::Block => "block",
            Permission::Unblock => "unblock",
            Permission::Reassign => "reassign",
            Permission::Release => "release",
            Permission::Heartbeat => "extend the lease on",
            Permission::Delete => "delete",
            Permission::RegisterWorker => "register",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.admin_only() {
            f.write_str("Admin role required")
        } else {
            write!(
                f,
                "Only the assignee or an admin can {} this task",
                self.verb()
            )
        }
    }
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// A validation error about `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A backend error wrapping `err`.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Error::Backend(err.into())
    }

    /// A database-unavailable error wrapping `err`, its cause.
    pub fn unavailable(err: impl Into<BoxError>) -> Self {
        Error::Unavailable(err.into())
    }

    /// `Task not found`.
    pub fn task_not_found(id: i64) -> Self {
        Error::NotFound {
            kind: Entity::Task,
            id: id.to_string(),
        }
    }

    /// `Worker not found`.
    pub fn worker_not_found(id: &str) -> Self {
        Error::NotFound {
            kind: Entity::Worker,
            id: id.to_owned(),
        }
    }

    /// Whether this is the caller's doing (a 4xx): retrying the same call gives the same answer.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Error::Unavailable(_) | Error::Backend(_) | Error::Unsupported { .. }
        )
    }

    /// Whether an idempotency record keeps this refusal, so that a retry gets it again: the
    /// refusals of a well-formed request (HTTP 400, 403, 404, 409, 412). Validation errors
    /// (422), a key still in use, and errors that are not the caller's doing are not kept: a
    /// retry runs again.
    pub fn is_recorded(&self) -> bool {
        self.is_client_error()
            && !matches!(
                self,
                Error::Validation { .. } | Error::IdempotencyInProgress
            )
    }
}
