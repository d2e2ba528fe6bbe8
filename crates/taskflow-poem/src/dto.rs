//! Wire types. They are kept apart from the domain types, with conversions both ways; a domain
//! crate never sees poem.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use serde::Deserialize;
use taskflow_core::model::{
    Actor, ActorType, AuditEntry, DependencyView, NewTask, Priority, Task, TaskPatch, TaskStatus,
    Worker, WorkerType,
};

use crate::error::ApiError;
pub use crate::wire::Wire;

/// `parent_id` 0 means "no parent": Swagger UI sends 0 for an empty integer field. This quirk
/// of the seed's API lives here, in the HTTP crate only.
pub fn parent_or_none(parent_id: Option<i64>) -> Option<i64> {
    parent_id.filter(|&id| id != 0)
}

// Also `serde::Serialize`, field for field the JSON its `ToJSON` gives (times as
// `to_rfc3339`, `null` for an absent optional field), so that task bodies are written in one
// pass (`crate::body::SerdeJson`). Not in the doc comment, which is the schema's description.
/// A task.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "Task")]
pub struct TaskDto {
    /// Assigned by the server; never reused.
    pub id: i64,
    /// 1..=200 characters.
    pub title: String,
    /// Free text.
    #[oai(nullable)]
    pub description: Option<String>,
    // Lifecycle state. Enum fields carry no description of their own, so that the schema is a
    // plain `$ref` (a description beside it would make poem-openapi wrap it in `allOf`, which
    // client generators refuse).
    #[allow(missing_docs)]
    pub status: Wire<TaskStatus>,
    #[allow(missing_docs)]
    pub priority: Wire<Priority>,
    /// 0..=100.
    pub progress_percent: i32,
    /// Who owns the work.
    #[oai(nullable)]
    pub assigned_to: Option<String>,
    /// Project.
    #[oai(nullable)]
    pub project_slug: Option<String>,
    /// Parent task.
    #[oai(nullable)]
    pub parent_id: Option<i64>,
    /// Creation time (UTC).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Starts at 1, +1 per change. Also sent as the `ETag` header.
    pub version: i64,
    /// 0 for a new task, +1 on every start (claim included). A holder sends it back as `fence`
    /// on its writes; a stale one gets 409 `Lease lost`.
    pub fence: i64,
    /// When the holder's lease runs out (UTC), if the task was started with one.
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_or_null")]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// A time as poem-openapi's `ToJSON` writes it (`DateTime::to_rfc3339`: `+00:00`, never `Z`).
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0; RFC3339_MAX];
    match format_rfc3339(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_str(&t.to_rfc3339()),
    }
}

/// The longest text [`format_rfc3339`] writes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+00:00`.
const RFC3339_MAX: usize = 35;

/// `t` exactly as `DateTime::to_rfc3339` writes it, into `buf`, without chrono's formatting
/// machinery (which parses a format description each time, and was a tenth of a task list's
/// time). `None` for what it leaves to chrono: years outside 0..=9999 and leap seconds.
fn format_rfc3339<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; RFC3339_MAX]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    let t = t.naive_utc();
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    fn two(buf: &mut [u8], at: usize, n: u32) {
        buf[at] = b'0' + (n / 10) as u8;
        buf[at + 1] = b'0' + (n % 10) as u8;
    }
    two(buf, 0, year / 100);
    two(buf, 2, year % 100);
    buf[4] = b'-';
    two(buf, 5, t.month());
    buf[7] = b'-';
    two(buf, 8, t.day());
    buf[10] = b'T';
    two(buf, 11, t.hour());
    buf[13] = b':';
    two(buf, 14, t.minute());
    buf[16] = b':';
    two(buf, 17, t.second());
    let mut len = 19;
    // As chrono's `SecondsFormat::AutoSi`: none, milli, micro or nano digits, whichever is exact.
    let (digits, mut frac) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (3, n / 1_000_000),
        n if n % 1_000 == 0 => (6, n / 1_000),
        n => (9, n),
    };
    if digits > 0 {
        buf[len] = b'.';
        for i in (0..digits).rev() {
            buf[len + 1 + i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        len += 1 + digits;
    }
    buf[len..len + 6].copy_from_slice(b"+00:00");
    len += 6;
    std::str::from_utf8(&buf[..len]).ok()
}

/// [`rfc3339`], or `null`.
fn rfc3339_or_null<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

impl From<Task> for TaskDto {
    fn from(t: Task) -> Self {
        TaskDto {
            id: t.id,
            title: t.title,
            description: t.description,
            status: t.status.into(),
            priority: t.priority.into(),
            progress_percent: t.progress_percent,
            assigned_to: t.assigned_to,
            project_slug: t.project_slug,
            parent_id: t.parent_id,
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
            fence: t.fence,
            lease_expires_at: t.lease_expires_at,
        }
    }
}

/// The body of `POST /api/tasks`. Unknown fields are ignored.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename = "TaskCreate")]
pub struct CreateTaskDto {
    /// Required; trimmed, then 1..=200 characters.
    pub title: String,
    /// Free text.
    #[serde(default)]
    #[oai(nullable)]
    pub description: Option<String>,
    // `pending` (default) or `blocked`.
    #[allow(missing_docs)]
    #[serde(default)]
    pub status: Option<Wire<TaskStatus>>,
    // Default `medium`.
    #[allow(missing_docs)]
    #[serde(default)]
    pub priority: Option<Wire<Priority>>,
    /// 0..=100, default 0.
    #[serde(default)]
    #[oai(nullable)]
    pub progress_percent: Option<i32>,
    /// Initial assignee.
    #[serde(default)]
    #[oai(nullable)]
    pub assigned_to: Option<String>,
    /// Project.
    #[serde(default)]
    #[oai(nullable)]
    pub project_slug: Option<String>,
    /// Parent task; 0 means none.
    #[serde(default)]
    #[oai(nullable)]
    pub parent_id: Option<i64>,
}

impl From<CreateTaskDto> for NewTask {
    fn from(d: CreateTaskDto) -> Self {
        NewTask {
            title: d.title,
            description: d.description,
            status: d.status.map(|s| s.0),
            priority: d.priority.map(|p| p.0),
            progress_percent: d.progress_percent,
            assigned_to: d.assigned_to,
            project_slug: d.project_slug,
            parent_id: parent_or_none(d.parent_id),
        }
    }
}

/// The body of `PATCH /api/tasks/{id}`: an absent field is unchanged, `null` clears it.
/// `title`, `status`, `priority` and `progress_percent` cannot be null. Unknown fields are
/// ignored.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "TaskUpdate")]
pub struct PatchTaskDto {
    /// New title.
    #[serde(default)]
    pub title: MaybeUndefined<String>,
    /// New description, or null.
    #[serde(default)]
    #[oai(nullable)]
    pub description: MaybeUndefined<String>,
    // A lifecycle move; it must be a row of the lifecycle table.
    #[allow(missing_docs)]
    #[serde(default)]
    pub status: MaybeUndefined<Wire<TaskStatus>>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub priority: MaybeUndefined<Wire<Priority>>,
    /// New progress, 0..=100.
    #[serde(default)]
    pub progress_percent: MaybeUndefined<i32>,
    /// New assignee, or null.
    #[serde(default)]
    #[oai(nullable)]
    pub assigned_to: MaybeUndefined<String>,
    /// New project, or null.
    #[serde(default)]
    #[oai(nullable)]
    pub project_slug: MaybeUndefined<String>,
    /// New parent, or null (0 also means none).
    #[serde(default)]
    #[oai(nullable)]
    pub parent_id: MaybeUndefined<i64>,
}

/// A field that may be absent or set, but not null.
fn required<T>(field: &str, v: MaybeUndefined<T>) -> Result<Option<T>, ApiError> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(ApiError::unprocessable(field, "must not be null")),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}

/// A field that may be absent, null (clear) or set.
fn clearable<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

impl TryFrom<PatchTaskDto> for TaskPatch {
    type Error = ApiError;

    fn try_from(d: PatchTaskDto) -> Result<Self, ApiError> {
        Ok(TaskPatch {
            title: required("title", d.title)?,
            description: clearable(d.description),
            status: required("status", d.status)?.map(|s| s.0),
            priority: required("priority", d.priority)?.map(|p| p.0),
            progress_percent: required("progress_percent", d.progress_percent)?,
            assigned_to: clearable(d.assigned_to),
            project_slug: clearable(d.project_slug),
            parent_id: clearable(d.parent_id).map(parent_or_none),
        })
    }
}

/// The optional body of `POST /api/tasks/{id}/block`.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "BlockRequest")]
pub struct BlockDto {
    /// Why the task is blocked.
    #[serde(default)]
    #[oai(nullable)]
    pub reason: Option<String>,
}

/// One row of the audit trail.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AuditLog")]
pub struct AuditDto {
    /// Row id; ascending ids are oldest first.
    pub id: i64,
    /// The task the change was made to (it may since have been deleted).
    pub task_id: i64,
    /// The task's project after the change.
    #[oai(nullable)]
    pub project_slug: Option<String>,
    /// Who made the change.
    pub actor_id: String,
    // Whether they were a human or an agent at the time.
    #[allow(missing_docs)]
    pub actor_type: Wire<ActorType>,
    /// What happened: `created`, `started`, `progressed`, `review_requested`,
    /// `changes_requested`, `completed`, `blocked`, `unblocked`, `updated`, `deleted`.
    pub action: String,
    /// Details, a JSON object or null.
    #[oai(nullable)]
    pub context: Option<serde_json::Value>,
    /// When (UTC).
    pub timestamp: DateTime<Utc>,
}

impl From<AuditEntry> for AuditDto {
    fn from(a: AuditEntry) -> Self {
        AuditDto {
            id: a.id,
            task_id: a.task_id,
            project_slug: a.project_slug,
            actor_id: a.actor_id,
            actor_type: a.actor_type.into(),
            action: a.action.as_str().to_owned(),
            context: a.context,
            timestamp: a.timestamp,
        }
    }
}

/// A registered worker.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Worker")]
pub struct WorkerDto {
    /// The actor id (a JWT `sub`).
    pub id: String,
    #[allow(missing_docs)]
    #[oai(rename = "type")]
    pub worker_type: Wire<WorkerType>,
    /// Display name.
    #[oai(nullable)]
    pub name: Option<String>,
    /// First registration (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<Worker> for WorkerDto {
    fn from(w: Worker) -> Self {
        WorkerDto {
            id: w.id,
            worker_type: w.worker_type.into(),
            name: w.name,
            created_at: w.created_at,
        }
    }
}

/// The body of `PUT /api/workers/{id}`. A re-PUT replaces the row: an omitted `name` clears it.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename = "WorkerUpsert")]
pub struct PutWorkerDto {
    #[allow(missing_docs)]
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub worker_type: Wire<WorkerType>,
    /// Display name.
    #[serde(default)]
    #[oai(nullable)]
    pub name: Option<String>,
}

/// The caller, as the API sees them.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Me")]
pub struct MeDto {
    /// The token's `sub`.
    pub id: String,
    /// The token's `email`, if any.
    #[oai(nullable)]
    pub email: Option<String>,
    /// The token's `role` (default `user`).
    pub role: String,
    // From the worker registry.
    #[allow(missing_docs)]
    pub actor_type: Wire<ActorType>,
}

impl MeDto {
    /// Combines the token's claims with the registry's actor type.
    pub fn new(principal: &taskflow_auth::Principal, actor: &Actor) -> Self {
        MeDto {
            id: principal.id.clone(),
            email: principal.email.clone(),
            role: principal.role.clone(),
            actor_type: actor.actor_type.into(),
        }
    }
}

/// `GET /health`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Health")]
pub struct HealthDto {
    /// Always `healthy` when the process answers.
    pub status: String,
    /// The taskflow version.
    pub version: String,
}

/// `GET /api/health/db`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "DatabaseHealth")]
pub struct DbHealthDto {
    /// `connected`.
    pub database: String,
}

/// The body of `POST /api/tasks/{id}/dependencies`.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename = "DependencyAdd")]
pub struct AddDependencyDto {
    /// The task this one will wait for.
    pub depends_on: i64,
}

/// A task's dependencies, ids ascending.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Dependencies")]
pub struct DependenciesDto {
    /// The task.
    pub task_id: i64,
    /// The tasks it depends on.
    pub depends_on: Vec<i64>,
    /// The tasks that depend on it.
    pub dependents: Vec<i64>,
    /// The tasks it depends on that are not completed yet; it cannot start while any remain.
    pub waiting_on: Vec<i64>,
}

impl From<DependencyView> for DependenciesDto {
    fn from(v: DependencyView) -> Self {
        DependenciesDto {
            task_id: v.task_id,
            depends_on: v.depends_on,
            dependents: v.dependents,
            waiting_on: v.waiting_on,
        }
    }
}

/// The optional body of `POST /api/tasks/claim`.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "ClaimRequest")]
pub struct ClaimDto {
    /// Only tasks of this project.
    #[oai(nullable)]
    #[serde(default)]
    pub project: Option<String>,
    /// The lease to hold, 10..=86400 seconds (default: the server's `LEASE_SECONDS`).
    #[oai(nullable)]
    #[serde(default)]
    pub lease_seconds: Option<i64>,
}

/// An object field that is always sent, as the object or as `null`. Documented as
/// `{"allOf": [{"$ref": …}], "nullable": true}`, the one shape that client generators turn
/// into `T | None` on OpenAPI 3.0: a plain `Option` field marked nullable is documented with an
/// extra inline `allOf` member, and generators then copy the object under a new name.
#[derive(Debug, Clone, PartialEq)]
pub struct NullableObject<T>(pub Option<T>);

impl<T: poem_openapi::types::Type> poem_openapi::types::Type for NullableObject<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> std::borrow::Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema {
                all_of: vec![T::schema_ref()],
                nullable: true,
                ..poem_openapi::registry::MetaSchema::ANY
            },
        ))
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(|v| v.as_raw_value())
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: poem_openapi::types::ToJSON> poem_openapi::types::ToJSON for NullableObject<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.to_json()
    }
}

impl<T: poem_openapi::types::ParseFromJSON> poem_openapi::types::ParseFromJSON
    for NullableObject<T>
{
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        Option::<T>::parse_from_json(value)
            .map(NullableObject)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Timelike};
    use poem_openapi::types::ToJSON;

    use super::*;

    fn task(nanos: u32, lease: bool) -> TaskDto {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 2, 9, 5, 7)
            .unwrap()
            .with_nanosecond(nanos)
            .unwrap();
        TaskDto {
            id: 42,
            title: "Ship \"it\" ✓".into(),
            description: lease.then(|| "line\nbreak".into()),
            status: TaskStatus::InProgress.into(),
            priority: Priority::Critical.into(),
            progress_percent: 40,
            assigned_to: lease.then(|| "agent-7".into()),
            project_slug: None,
            parent_id: lease.then_some(7),
            created_at: at,
            updated_at: at + chrono::Duration::microseconds(1),
            version: 3,
            fence: 2,
            lease_expires_at: lease.then_some(at),
        }
    }

    /// The hand-written time format is `to_rfc3339`'s, over every precision and the edges of
    /// what it handles (and chrono's own text past them).
    #[test]
    fn times_are_written_as_to_rfc3339() {
        use chrono::TimeZone;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let max = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp();
        let mut cases = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(max, 999_999_999).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            // A leap second, which chrono writes as :60.
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
        ];
        for _ in 0..20_000 {
            let secs = i64::try_from(next() % u64::try_from(max).unwrap()).unwrap();
            let nanos = match next() % 4 {
                0 => 0,
                1 => u32::try_from(next() % 1_000).unwrap() * 1_000_000,
                2 => u32::try_from(next() % 1_000_000).unwrap() * 1_000,
                _ => u32::try_from(next() % 1_000_000_000).unwrap(),
            };
            cases.push(Utc.timestamp_opt(secs, nanos).unwrap());
        }
        for t in cases {
            #[derive(serde::Serialize)]
            struct Time(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);
            let written = serde_json::to_value(Time(t)).unwrap();
            assert_eq!(written, serde_json::Value::from(t.to_rfc3339()), "{t:?}");
        }
    }

    /// A task body written with serde is exactly what poem-openapi's `ToJSON` would write,
    /// whatever the precision of its times and with every optional field present or null.
    #[test]
    fn serde_output_matches_to_json() {
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789, 999_999_999] {
            for lease in [false, true] {
                let dto = task(nanos, lease);
                let serde = serde_json::to_value(&dto).unwrap();
                assert_eq!(
                    serde,
                    dto.to_json().unwrap(),
                    "nanos {nanos}, lease {lease}"
                );
                assert_eq!(
                    serde["created_at"].as_str().unwrap(),
                    dto.created_at.to_rfc3339()
                );
            }
        }
    }
}
