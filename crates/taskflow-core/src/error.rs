//! The one error type of taskflow. Each variant maps to one HTTP status.

use std::error::Error as StdError;

/// A boxed error from a storage backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of taskflow's core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on. The `Display` text of every variant is the
/// message the HTTP API sends, so it is part of the wire contract.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist (HTTP 404). The text is e.g. `Task not found`.
    #[error("{0} not found")]
    NotFound(&'static str),

    /// Input broke a rule (HTTP 422). The message starts with the field name and a colon.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field, as named on the wire.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The lifecycle does not allow this move from the task's current status (HTTP 400).
    #[error("{0}")]
    InvalidTransition(String),

    /// The policy does not let this actor do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),

    /// The caller's expected version no longer matches (HTTP 412).
    #[error("Version mismatch: task is at version {current}")]
    VersionMismatch {
        /// The task's version now.
        current: i64,
    },

    /// The task cannot be deleted while it has subtasks (HTTP 409).
    #[error("Task has subtasks")]
    HasSubtasks,

    /// The database cannot be reached right now: refused, timed out, or shutting down (HTTP
    /// 503). Nothing was written; the same call may succeed once the database is back. The text
    /// says why (`connection refused`, `the SQLite store is closed`) and never carries the
    /// database URL or its password; the HTTP API answers `Database unavailable`.
    #[error("{0}")]
    Unavailable(#[source] BoxError),

    /// The storage backend failed (HTTP 500, or 503 for health checks).
    #[error("{0}")]
    Backend(#[source] BoxError),
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
    pub(crate) fn task_not_found() -> Self {
        Error::NotFound("Task")
    }

    /// `Worker not found`.
    pub(crate) fn worker_not_found() -> Self {
        Error::NotFound("Worker")
    }
}
