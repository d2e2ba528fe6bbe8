//! The domain types: tasks, patches, filters, audit entries, workers and the acting identity.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A point in time as taskflow stores it: UTC, truncated to whole microseconds so that every
/// backend (SQLite text, Postgres `timestamptz`) round-trips it exactly.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to microseconds (see [`Timestamp`]).
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

/// Declares a string-backed enum with `as_str`, `Display`, `FromStr` and an `ALL` list, so the
/// wire spelling of every variant lives in exactly one place.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage spelling of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::validation(
                        $field,
                        format!(
                            "must be one of {}",
                            [$($text),+].map(|t| format!("'{t}'")).join(", ")
                        ),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Where a task is in its lifecycle. Only [`crate::lifecycle`] decides how it moves.
    TaskStatus, "status" {
        /// Not started yet. The default.
        #[default]
        Pending => "pending",
        /// Claimed and being worked on.
        InProgress => "in_progress",
        /// Waiting for someone to review it.
        Review => "review",
        /// Done. Terminal.
        Completed => "completed",
        /// Waiting on something outside the task.
        Blocked => "blocked",
    }
);

string_enum!(
    /// How urgent a task is.
    Priority, "priority" {
        /// Whenever there is time.
        Low => "low",
        /// The default.
        #[default]
        Medium => "medium",
        /// Soon.
        High => "high",
        /// Now.
        Critical => "critical",
    }
);

string_enum!(
    /// Whether an actor is a person or an AI agent, as recorded in the worker registry.
    ActorType, "type" {
        /// A person. Every actor without a worker row is human; the default.
        #[default]
        Human => "human",
        /// An AI agent.
        Agent => "agent",
    }
);

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Assigned by the store; never reused.
    pub id: i64,
    /// 1..=200 characters, trimmed.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Urgency.
    pub priority: Priority,
    /// 0..=100.
    pub progress_percent: i32,
    /// The actor id that owns the work, if any.
    pub assigned_to: Option<String>,
    /// The project this task belongs to, if any.
    pub project_slug: Option<String>,
    /// The parent task, if any. Always names an existing task, and never forms a cycle.
    pub parent_id: Option<i64>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Starts at 1 and grows by one on every change; the basis of compare-and-set.
    pub version: i64,
}

/// The input to [`crate::TaskFlow::create_task`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// Required; trimmed, then 1..=200 characters.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// `pending` (the default) or `blocked`; nothing else.
    pub status: Option<TaskStatus>,
    /// Defaults to `medium`.
    pub priority: Option<Priority>,
    /// Defaults to 0; must be 0..=100.
    pub progress_percent: Option<i32>,
    /// Who owns it from the start, if anyone.
    pub assigned_to: Option<String>,
    /// Project, if any.
    pub project_slug: Option<String>,
    /// Parent task; `Some(0)` means none, as Swagger UI sends 0 for an empty integer.
    pub parent_id: Option<i64>,
}

impl NewTask {
    /// A new task with this title and every other field defaulted.
    pub fn titled(title: impl Into<String>) -> Self {
        NewTask {
            title: title.into(),
            ..NewTask::default()
        }
    }
}

/// A partial update. For each field, `None` leaves it unchanged. For the clearable fields the
/// inner option tells "set to null" (`Some(None)`) from "set to a value" (`Some(Some(v))`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    /// New title (trimmed, 1..=200 characters).
    pub title: Option<String>,
    /// New description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// A status move; it must be a row of the lifecycle table.
    pub status: Option<TaskStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New progress, 0..=100.
    pub progress_percent: Option<i32>,
    /// New assignee, or `Some(None)` to unassign.
    pub assigned_to: Option<Option<String>>,
    /// New project, or `Some(None)` to clear it.
    pub project_slug: Option<Option<String>>,
    /// New parent, or `Some(None)` (or `Some(Some(0))`) to clear it.
    pub parent_id: Option<Option<i64>>,
}

impl TaskPatch {
    /// True when the patch names no field at all.
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }
}

/// Filters for [`crate::TaskFlow::list_tasks`]. Results are ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this actor.
    pub assigned_to: Option<String>,
    /// Only tasks in this project.
    pub project: Option<String>,
    /// Only tasks with this priority.
    pub priority: Option<Priority>,
    /// Only subtasks of this task (`Some(0)` means no filter).
    pub parent_id: Option<i64>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for TaskFilter {
    fn default() -> Self {
        TaskFilter {
            status: None,
            assigned_to: None,
            project: None,
            priority: None,
            parent_id: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// Filters for [`crate::TaskFlow::list_audit`]. Results are oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only rows about this task.
    pub task_id: Option<i64>,
    /// Only rows written by this actor.
    pub actor_id: Option<String>,
    /// Only rows with this action (free text, e.g. `started`).
    pub action: Option<String>,
    /// Only rows in this project.
    pub project: Option<String>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            task_id: None,
            actor_id: None,
            action: None,
            project: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// The default page size of listings.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size of listings.
pub const MAX_LIMIT: u32 = 100;

/// One page of a listing, with the number of rows that match the filter in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// How many rows match the filter, ignoring `limit` and `offset`.
    pub total: u64,
}

/// What an audit row records. The set is open: stores keep it as text.
pub mod action {
    /// A task was created.
    pub const CREATED: &str = "created";
    /// A task was started (claimed).
    pub const STARTED: &str = "started";
    /// Progress was reported.
    pub const PROGRESSED: &str = "progressed";
    /// A task was submitted for review.
    pub const REVIEW_REQUESTED: &str = "review_requested";
    /// A reviewer sent a task back.
    pub const CHANGES_REQUESTED: &str = "changes_requested";
    /// A task was completed.
    pub const COMPLETED: &str = "completed";
    /// A task was blocked.
    pub const BLOCKED: &str = "blocked";
    /// A task was unblocked.
    pub const UNBLOCKED: &str = "unblocked";
    /// Fields were changed through a patch.
    pub const UPDATED: &str = "updated";
    /// A task was deleted.
    pub const DELETED: &str = "deleted";
}

/// One row of the audit trail. Exactly one is written, in the same transaction, for every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store when the row is written.
    pub id: i64,
    /// The task the change was made to. The row outlives the task.
    pub task_id: i64,
    /// The task's project after the change.
    pub project_slug: Option<String>,
    /// Who made the change (from the verified identity, never from a request body).
    pub actor_id: String,
    /// Whether that actor was a human or an agent when the row was written.
    pub actor_type: ActorType,
    /// What happened; see [`action`].
    pub action: String,
    /// Details: a JSON object, or `None`.
    pub context: Option<serde_json::Value>,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// An entry in the worker registry, which tells agents from humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// The actor id (a JWT `sub`).
    pub id: String,
    /// Human or agent.
    #[serde(rename = "type")]
    pub worker_type: ActorType,
    /// A display name.
    pub name: Option<String>,
    /// When it was first registered; kept across re-registration.
    pub created_at: Timestamp,
}

/// Who is calling, as an authenticator established it: an id, and whether they hold the `admin`
/// role. Whether they are an agent is not theirs to say: [`crate::TaskFlow`] looks that up in the
/// worker registry and produces an [`Actor`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The actor id (a JWT `sub`).
    pub id: String,
    /// Holds the `admin` role.
    pub admin: bool,
}

impl Identity {
    /// A caller without the admin role.
    pub fn user(id: impl Into<String>) -> Self {
        Identity {
            id: id.into(),
            admin: false,
        }
    }

    /// A caller with the admin role.
    pub fn admin(id: impl Into<String>) -> Self {
        Identity {
            id: id.into(),
            admin: true,
        }
    }
}

/// The acting identity the lifecycle works with: an [`Identity`] plus its actor type from the
/// worker registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The actor id.
    pub id: String,
    /// Human or agent, from the worker registry.
    pub actor_type: ActorType,
    /// Holds the `admin` role.
    pub admin: bool,
}

impl Actor {
    /// An actor of the given type.
    pub fn new(identity: &Identity, actor_type: ActorType) -> Self {
        Actor {
            id: identity.id.clone(),
            actor_type,
            admin: identity.admin,
        }
    }
}
