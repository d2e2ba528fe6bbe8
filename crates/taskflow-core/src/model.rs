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

/// A closed set of values spelled as text on the wire and in storage: [`TaskStatus`],
/// [`Priority`], [`ActorType`] and [`AuditAction`]. Each value's spelling is written once, in
/// this module; serde, `Display`, `FromStr` and the HTTP crate's schemas all read it from here.
pub trait StringEnum: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// The type's name in API documents, e.g. `TaskStatus`.
    const NAME: &'static str;
    /// One line describing the type, for API documents.
    const DESCRIPTION: &'static str;
    /// The field a parse error names, e.g. `status`.
    const FIELD: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// Every spelling, in declaration order.
    const NAMES: &'static [&'static str];

    /// The wire and storage spelling of this value.
    fn as_str(self) -> &'static str;

    /// Reads a spelling; anything else is a validation error on `field` listing the spellings.
    fn parse_as(field: &str, text: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| {
                let all: Vec<String> = Self::NAMES.iter().map(|n| format!("'{n}'")).collect();
                Error::validation(field, format!("must be one of {}", all.join(", ")))
            })
    }
}

/// Declares a [`StringEnum`], with `Display`, `FromStr` and serde going through its spellings.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal, $about:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl StringEnum for $name {
            const NAME: &'static str = stringify!($name);
            const DESCRIPTION: &'static str = $about;
            const FIELD: &'static str = $field;
            const ALL: &'static [$name] = &[$($name::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = <$name as StringEnum>::ALL;

            /// The wire and storage spelling of this value.
            pub fn as_str(self) -> &'static str {
                StringEnum::as_str(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                <$name as StringEnum>::parse_as($field, s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$name as StringEnum>::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&text, Self::NAMES))
            }
        }
    };
}

string_enum!(
    /// Where a task is in its lifecycle. Only [`crate::lifecycle`] decides how it moves.
    #[derive(Default)]
    TaskStatus, "status", "Where a task is in its lifecycle." {
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
    #[derive(Default)]
    Priority, "priority", "How urgent a task is." {
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
    #[derive(Default)]
    ActorType, "actor_type", "A human, an AI agent, or taskflow itself." {
        /// A person. Every actor without a worker row is human; the default.
        #[default]
        Human => "human",
        /// An AI agent.
        Agent => "agent",
        /// taskflow itself, for rows it writes on its own (a reclaimed lease).
        System => "system",
    }
);

string_enum!(
    /// What the worker registry records an actor as.
    #[derive(Default)]
    WorkerType, "type", "A human or an AI agent." {
        /// A person; the default.
        #[default]
        Human => "human",
        /// An AI agent.
        Agent => "agent",
    }
);

impl From<WorkerType> for ActorType {
    fn from(t: WorkerType) -> Self {
        match t {
            WorkerType::Human => ActorType::Human,
            WorkerType::Agent => ActorType::Agent,
        }
    }
}

/// The actor id of rows taskflow writes on its own, with actor type [`ActorType::System`].
pub const SYSTEM_ACTOR: &str = "taskflow";

/// The shortest lease, in seconds.
pub const MIN_LEASE_SECONDS: i64 = 10;
/// The longest lease, in seconds (a day).
pub const MAX_LEASE_SECONDS: i64 = 86_400;
/// The lease claim-next grants when the caller names none (the server's `LEASE_SECONDS`).
pub const DEFAULT_LEASE_SECONDS: i64 = 1_800;

string_enum!(
    /// What an audit row records.
    AuditAction, "action", "What an audit row records." {
        /// A task was created.
        Created => "created",
        /// A task was started (claimed).
        Started => "started",
        /// Progress was reported.
        Progressed => "progressed",
        /// A task was submitted for review.
        ReviewRequested => "review_requested",
        /// A reviewer sent a task back.
        ChangesRequested => "changes_requested",
        /// A task was completed.
        Completed => "completed",
        /// A task was blocked.
        Blocked => "blocked",
        /// A task was unblocked.
        Unblocked => "unblocked",
        /// Fields were changed through a patch.
        Updated => "updated",
        /// A task was deleted.
        Deleted => "deleted",
        /// The task got a dependency.
        DependencyAdded => "dependency_added",
        /// The task lost a dependency.
        DependencyRemoved => "dependency_removed",
        /// The assignee gave an `in_progress` task back.
        Released => "released",
        /// taskflow reclaimed a task whose lease ran out.
        LeaseExpired => "lease_expired",
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
    /// 0 for a new task, + 1 on every start (claim-next included). A holder names it on its
    /// writes; a write with another fence is refused, so a stale holder cannot overwrite the
    /// one that took over.
    pub fence: i64,
    /// When the holder's lease runs out, if the task was started with one.
    pub lease_expires_at: Option<Timestamp>,
    /// The length of the lease as granted, in seconds: what a heartbeat extends by default.
    pub lease_seconds: Option<i64>,
}

/// A task that is not stored yet: every field of [`Task`] but the id, which the store assigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDraft {
    /// 1..=200 characters, trimmed.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// `pending` or `blocked`.
    pub status: TaskStatus,
    /// Urgency.
    pub priority: Priority,
    /// 0..=100.
    pub progress_percent: i32,
    /// The actor id that owns the work, if any.
    pub assigned_to: Option<String>,
    /// The project, if any.
    pub project_slug: Option<String>,
    /// The parent task, if any; the store refuses one that does not exist.
    pub parent_id: Option<i64>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Equal to `created_at`.
    pub updated_at: Timestamp,
    /// 1.
    pub version: i64,
    /// 0.
    pub fence: i64,
}

impl TaskDraft {
    /// The task as stored under `id`.
    pub fn into_task(self, id: i64) -> Task {
        Task {
            id,
            title: self.title,
            description: self.description,
            status: self.status,
            priority: self.priority,
            progress_percent: self.progress_percent,
            assigned_to: self.assigned_to,
            project_slug: self.project_slug,
            parent_id: self.parent_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
            fence: self.fence,
            lease_expires_at: None,
            lease_seconds: None,
        }
    }
}

/// The input to [`crate::TaskFlow::create_task`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// Required; trimmed, then 1..=200 characters.
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `pending` (the default) or `blocked`; nothing else.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Defaults to `medium`.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Defaults to 0; must be 0..=100.
    #[serde(default)]
    pub progress_percent: Option<i32>,
    /// Who owns it from the start, if anyone.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// Project, if any.
    #[serde(default)]
    pub project_slug: Option<String>,
    /// Parent task, which must exist.
    #[serde(default)]
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
///
/// As JSON, an absent field is `None`, `null` is `Some(None)` and a value is `Some(Some(v))`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPatch {
    /// New title (trimmed, 1..=200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New description, or `Some(None)` to clear it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub description: Option<Option<String>>,
    /// A status move; it must be a row of the lifecycle table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// New priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// New progress, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<i32>,
    /// New assignee, or `Some(None)` to unassign.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub assigned_to: Option<Option<String>>,
    /// New project, or `Some(None)` to clear it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub project_slug: Option<Option<String>>,
    /// New parent (which must exist and must not be the task or one of its subtasks), or
    /// `Some(None)` to clear it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub parent_id: Option<Option<i64>>,
}

impl TaskPatch {
    /// True when the patch names no field at all.
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }
}

/// `Option<Option<T>>` as JSON: absent (with `#[serde(default)]`) is `None`, `null` is
/// `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// What a write expects to find: the compare-and-set condition a caller states (HTTP
/// `If-Match`). A task at any other version is refused with
/// [`Error::VersionMismatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// Whatever version the task is at. A write that loses a race re-reads the task and
    /// re-applies itself.
    #[default]
    Any,
    /// Exactly this version.
    Version(i64),
    /// Any one of these versions; an empty list matches nothing.
    OneOf(Vec<i64>),
}

impl Precondition {
    /// Whether a task at `version` satisfies this precondition.
    pub fn holds_for(&self, version: i64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Version(v) => *v == version,
            Precondition::OneOf(vs) => vs.contains(&version),
        }
    }

    /// Refuses `task` with a version mismatch unless this precondition holds for it.
    pub fn check(&self, task: &Task) -> Result<(), Error> {
        if self.holds_for(task.version) {
            Ok(())
        } else {
            Err(Error::VersionMismatch {
                current: task.version,
            })
        }
    }
}

/// What a write expects of the task it changes: a version (HTTP `If-Match`) and, for a lease
/// holder, the fence it was given. A fence that is not the task's is refused with
/// [`Error::LeaseLost`] before the lifecycle is asked; a version that does not hold, with
/// [`Error::VersionMismatch`] after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    /// The version condition.
    #[serde(default)]
    pub version: Precondition,
    /// The fence the caller holds, if it holds one.
    #[serde(default)]
    pub fence: Option<i64>,
}

impl Expect {
    /// Any version, and this fence if given.
    pub fn fence(fence: Option<i64>) -> Self {
        Expect {
            version: Precondition::Any,
            fence,
        }
    }

    /// This expectation, also naming `fence` if given.
    pub fn with_fence(mut self, fence: Option<i64>) -> Self {
        self.fence = fence;
        self
    }

    /// Refuses `task` with [`Error::LeaseLost`] when a fence is named and is not the task's.
    pub fn check_fence(&self, task: &Task) -> Result<(), Error> {
        match self.fence {
            Some(fence) if fence != task.fence => Err(Error::LeaseLost {
                current_fence: task.fence,
            }),
            _ => Ok(()),
        }
    }
}

impl From<Precondition> for Expect {
    fn from(version: Precondition) -> Self {
        Expect {
            version,
            fence: None,
        }
    }
}

/// `None` is any version and `Some(v)` is exactly `v`; no fence.
impl From<Option<i64>> for Expect {
    fn from(version: Option<i64>) -> Self {
        Precondition::from(version).into()
    }
}

/// `None` is [`Precondition::Any`] and `Some(v)` is [`Precondition::Version`].
impl From<Option<i64>> for Precondition {
    fn from(version: Option<i64>) -> Self {
        version.map_or(Precondition::Any, Precondition::Version)
    }
}

/// The default page size of listings.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size of listings.
pub const MAX_LIMIT: u32 = 100;

/// Which page of a listing: a page size of 1..=100 and an offset of 0 or more. Only
/// [`Paging::new`] makes one from raw numbers, so every listing checks them the same way, with
/// the same messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPaging", into = "RawPaging")]
pub struct Paging {
    limit: u32,
    offset: i64,
}

#[derive(Serialize, Deserialize)]
struct RawPaging {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl TryFrom<RawPaging> for Paging {
    type Error = Error;

    fn try_from(raw: RawPaging) -> Result<Self, Error> {
        Paging::new(raw.limit, raw.offset)
    }
}

impl From<Paging> for RawPaging {
    fn from(p: Paging) -> Self {
        RawPaging {
            limit: Some(i64::from(p.limit)),
            offset: Some(p.offset),
        }
    }
}

impl Paging {
    /// Checks a page size (default 50, 1..=100) and an offset (default 0, never negative).
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Error> {
        let limit = limit.unwrap_or(i64::from(DEFAULT_LIMIT));
        let limit = u32::try_from(limit)
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                Error::validation("limit", format!("must be between 1 and {MAX_LIMIT}"))
            })?;
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(Error::validation("offset", "must be 0 or more"));
        }
        Ok(Paging { limit, offset })
    }

    /// The page size, 1..=100.
    pub fn limit(self) -> u32 {
        self.limit
    }

    /// Rows to skip, 0 or more.
    pub fn offset(self) -> i64 {
        self.offset
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// Filters for [`crate::TaskFlow::list_tasks`]. Results are ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks with this status.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this actor.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// Only tasks in this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Only tasks with this priority.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Only subtasks of this task.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Which page.
    #[serde(default, flatten)]
    pub paging: Paging,
}

/// A task's dependencies: what it waits for, and what waits for it. Ids ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyView {
    /// The task.
    pub task_id: i64,
    /// The tasks it depends on.
    pub depends_on: Vec<i64>,
    /// The tasks that depend on it.
    pub dependents: Vec<i64>,
    /// The tasks it depends on that are not completed yet; it cannot start while any remain.
    pub waiting_on: Vec<i64>,
}

/// Filters for the ready queue ([`crate::TaskFlow::ready_tasks`]): the caller's ready tasks,
/// most urgent first, then by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyFilter {
    /// Only tasks in this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Which page.
    #[serde(default, flatten)]
    pub paging: Paging,
}

/// Filters for [`crate::TaskFlow::list_audit`]. Results are oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only rows about this task.
    #[serde(default)]
    pub task_id: Option<i64>,
    /// Only rows written by this actor.
    #[serde(default)]
    pub actor_id: Option<String>,
    /// Only rows with this action (free text, e.g. `started`).
    #[serde(default)]
    pub action: Option<String>,
    /// Only rows in this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Which page.
    #[serde(default, flatten)]
    pub paging: Paging,
}

/// One page of a listing, with the number of rows that match the filter in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// How many rows match the filter, ignoring the paging.
    pub total: u64,
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
    /// What happened.
    pub action: AuditAction,
    /// Details: a JSON object, or `None`.
    pub context: Option<serde_json::Value>,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// An audit row not written yet: the store assigns its `id`, and takes its `task_id` from the
/// write it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDraft {
    /// The task's project after the change.
    pub project_slug: Option<String>,
    /// Who makes the change.
    pub actor_id: String,
    /// Human or agent, as the worker registry says now.
    pub actor_type: ActorType,
    /// What happens.
    pub action: AuditAction,
    /// Details: a JSON object, or `None`.
    pub context: Option<serde_json::Value>,
    /// When.
    pub timestamp: Timestamp,
    /// The idempotency record of the request that makes this change, if it named a key: the
    /// store writes it in the same transaction as the change and this row
    /// ([`crate::idempotency`]).
    #[serde(skip)]
    pub outcome: Option<crate::idempotency::OutcomeRecord>,
}

impl AuditDraft {
    /// The row as written with `id`, about task `task_id`.
    pub fn into_entry(self, id: i64, task_id: i64) -> AuditEntry {
        AuditEntry {
            id,
            task_id,
            project_slug: self.project_slug,
            actor_id: self.actor_id,
            actor_type: self.actor_type,
            action: self.action,
            context: self.context,
            timestamp: self.timestamp,
        }
    }
}

/// An entry in the worker registry, which tells agents from humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// The actor id (a JWT `sub`).
    pub id: String,
    /// Human or agent.
    #[serde(rename = "type")]
    pub worker_type: WorkerType,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_checked_once_with_one_message_each() {
        assert_eq!(Paging::new(None, None).unwrap(), Paging::default());
        assert_eq!(Paging::default().limit(), 50);
        assert_eq!(Paging::new(Some(100), Some(7)).unwrap().offset(), 7);
        for limit in [0, 101, -1, i64::MAX] {
            assert_eq!(
                Paging::new(Some(limit), None).unwrap_err().to_string(),
                "limit: must be between 1 and 100"
            );
        }
        assert_eq!(
            Paging::new(None, Some(-1)).unwrap_err().to_string(),
            "offset: must be 0 or more"
        );
    }

    #[test]
    fn preconditions() {
        assert!(Precondition::Any.holds_for(9));
        assert!(Precondition::Version(3).holds_for(3));
        assert!(!Precondition::Version(3).holds_for(4));
        assert!(Precondition::OneOf(vec![1, 4]).holds_for(4));
        assert!(!Precondition::OneOf(vec![]).holds_for(1));
        assert_eq!(Precondition::from(None), Precondition::Any);
        assert_eq!(Precondition::from(Some(2)), Precondition::Version(2));
    }

    #[test]
    fn spellings_live_in_one_place() {
        assert_eq!(TaskStatus::InProgress.as_str(), "in_progress");
        assert_eq!("review".parse::<TaskStatus>().unwrap(), TaskStatus::Review);
        assert_eq!(
            "done".parse::<TaskStatus>().unwrap_err().to_string(),
            "status: must be one of 'pending', 'in_progress', 'review', 'completed', 'blocked'"
        );
        assert_eq!(
            serde_json::to_string(&AuditAction::ReviewRequested).unwrap(),
            "\"review_requested\""
        );
        let err = serde_json::from_str::<Priority>("\"urgent\"").unwrap_err();
        assert!(
            err.to_string().starts_with("unknown variant `urgent`"),
            "{err}"
        );
        assert_eq!(
            <ActorType as StringEnum>::NAMES,
            ["human", "agent", "system"]
        );
        assert_eq!(<WorkerType as StringEnum>::NAMES, ["human", "agent"]);
    }

    #[test]
    fn patches_as_json_tell_absent_from_null() {
        let p: TaskPatch =
            serde_json::from_str(r#"{"description": null, "parent_id": 4, "title": "t"}"#).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.parent_id, Some(Some(4)));
        assert_eq!(p.assigned_to, None);
        let back: TaskPatch = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
