//! The task lifecycle: a pure state machine and the default policy.
//!
//! This module is the only place in taskflow where a task's status is compared. Every function
//! here takes the current task, what is asked and who asks, and returns either the next task and
//! its audit entry, or a typed refusal. Nothing here touches a store: [`crate::TaskFlow`] reads the
//! task, asks this module, and hands the result to a [`crate::Store`] as one compare-and-set.
//!
//! | action (audit `action`) | from | to | effect |
//! |---|---|---|---|
//! | start (`started`) | `pending` | `in_progress` | `assigned_to` = actor |
//! | progress (`progressed`) | `in_progress` | `in_progress` | `progress_percent` = p |
//! | submit for review (`review_requested`) | `in_progress` | `review` | |
//! | request changes (`changes_requested`) | `review` | `in_progress` | |
//! | complete (`completed`) | `in_progress`, `review` | `completed` | `progress_percent` = 100 |
//! | block (`blocked`) | `pending`, `in_progress`, `review` | `blocked` | |
//! | unblock (`unblocked`) | `blocked` | `in_progress` if assigned, else `pending` | |
//! | release (`released`) | `in_progress` | `pending` | `assigned_to` cleared, progress kept |
//! | expire (`lease_expired`, by taskflow) | `in_progress`, lease run out | `pending` | `assigned_to` cleared |
//!
//! Every start (claim-next and a PATCH to `in_progress` included) adds one to the task's
//! `fence` and, when asked for one, grants a lease; leaving `in_progress` clears the lease. A
//! heartbeat extends a lease without changing the task's version.
//!
//! The default policy: anyone may create, edit fields and start. Progress, submit, block and
//! unblock belong to the assignee (anyone while unassigned) or an admin. Complete from
//! `in_progress` belongs to the assignee (anyone while unassigned) or an admin; from `review`,
//! anyone may complete or request changes. Release and heartbeat belong to the assignee or an
//! admin. Delete and worker registration are admin only.

use serde_json::{Map, Value, json};

use crate::error::{Error, Permission, Result};
use crate::model::{
    Actor, ActorType, AuditAction, AuditDraft, NewTask, Priority, SYSTEM_ACTOR, Task, TaskDraft,
    TaskPatch, TaskStatus, Timestamp,
};
use crate::validate;

/// A lifecycle action, as asked for by a caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "move", rename_all = "snake_case")]
pub enum Action {
    /// Claim a pending task and begin work on it, with a lease of this many seconds if given
    /// (10..=86400).
    Start {
        /// The lease to hold, in seconds; none means the task is held until let go.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease_seconds: Option<i64>,
    },
    /// Report progress on a task in progress.
    Progress {
        /// 0..=100.
        percent: i32,
        /// An optional note for the audit trail.
        note: Option<String>,
    },
    /// Ask for a review of a task in progress.
    SubmitForReview,
    /// Send a task in review back to work.
    RequestChanges,
    /// Finish a task in progress or in review.
    Complete,
    /// Mark a task as blocked.
    Block {
        /// Why, for the audit trail.
        reason: Option<String>,
    },
    /// Lift a block.
    Unblock,
    /// Give an `in_progress` task back: `pending` and unassigned, progress kept.
    Release,
}

/// The outcome of a legal change: the task as it must be stored, and its audit row.
///
/// `task.version` is already one more than the version the change was decided on; the caller
/// hands both to the store as a compare-and-set that expects the version it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The task after the change.
    pub task: Task,
    /// The one audit row that records the change.
    pub audit: AuditDraft,
    /// The row of the lifecycle table the change took, if it moved the task.
    pub moved: Option<Move>,
}

/// A new task and its `created` audit row, for the store to insert together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The task to insert.
    pub task: TaskDraft,
    /// Its `created` row.
    pub audit: AuditDraft,
}

/// The rows of the lifecycle table, by what they do rather than what they are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Move {
    /// `pending` → `in_progress`.
    Start,
    /// `in_progress` → `in_progress`, with a new percentage.
    Progress,
    /// `in_progress` → `review`.
    SubmitForReview,
    /// `review` → `in_progress`.
    RequestChanges,
    /// `in_progress` or `review` → `completed`.
    Complete,
    /// `pending`, `in_progress` or `review` → `blocked`.
    Block,
    /// `blocked` → `in_progress` if assigned, else `pending`.
    Unblock,
    /// `in_progress` → `pending`, unassigned.
    Release,
}

/// The moves a status-changing PATCH may stand for, tried in this order.
const PATCH_MOVES: [Move; 6] = [
    Move::Start,
    Move::SubmitForReview,
    Move::RequestChanges,
    Move::Complete,
    Move::Block,
    Move::Unblock,
];

impl Move {
    /// Where this move takes a task in `from`, or `None` when the table has no such row.
    /// `assigned` is whether the task has an assignee once the move's other changes apply.
    fn target(self, from: TaskStatus, assigned: bool) -> Option<TaskStatus> {
        use TaskStatus::*;
        match (self, from) {
            (Move::Start, Pending) => Some(InProgress),
            (Move::Progress, InProgress) => Some(InProgress),
            (Move::SubmitForReview, InProgress) => Some(Review),
            (Move::RequestChanges, Review) => Some(InProgress),
            (Move::Complete, InProgress | Review) => Some(Completed),
            (Move::Block, Pending | InProgress | Review) => Some(Blocked),
            (Move::Unblock, Blocked) => Some(if assigned { InProgress } else { Pending }),
            (Move::Release, InProgress) => Some(Pending),
            _ => None,
        }
    }

    /// The refusal text of this move from `from` (the seed's texts, and ours for the moves the
    /// seed lacks).
    pub(crate) fn refusal(self, from: TaskStatus) -> String {
        match self {
            Move::Start => format!("Cannot start task with status '{from}'"),
            Move::Progress => "Task must be in_progress".to_owned(),
            Move::SubmitForReview => format!("Cannot submit task with status '{from}' for review"),
            Move::RequestChanges => "Task must be in review".to_owned(),
            Move::Complete => format!("Cannot complete task with status '{from}'"),
            Move::Block => format!("Cannot block task with status '{from}'"),
            Move::Unblock => "Task must be blocked".to_owned(),
            Move::Release => format!("Cannot release task with status '{from}'"),
        }
    }

    /// The default policy for this move on `task` (in its state before the move).
    fn authorize(self, task: &Task, actor: &Actor) -> Result<()> {
        let permission = match self {
            Move::Start | Move::RequestChanges => return Ok(()),
            Move::Complete if task.status == TaskStatus::Review => return Ok(()),
            Move::Complete => Permission::Complete,
            Move::Progress => Permission::ReportProgress,
            Move::SubmitForReview => Permission::SubmitForReview,
            Move::Block => Permission::Block,
            Move::Unblock => Permission::Unblock,
            Move::Release => Permission::Release,
        };
        owner_or_admin(task, actor, permission)
    }

    /// The audit action of this move when made through its own endpoint.
    fn audit_action(self) -> AuditAction {
        match self {
            Move::Start => AuditAction::Started,
            Move::Progress => AuditAction::Progressed,
            Move::SubmitForReview => AuditAction::ReviewRequested,
            Move::RequestChanges => AuditAction::ChangesRequested,
            Move::Complete => AuditAction::Completed,
            Move::Block => AuditAction::Blocked,
            Move::Unblock => AuditAction::Unblocked,
            Move::Release => AuditAction::Released,
        }
    }

    /// Applies the move's effects (status and side effects) to `task`. A start takes a new
    /// fence; leaving `in_progress` drops the lease.
    fn apply_effects(self, task: &mut Task, to: TaskStatus, actor: &Actor) {
        task.status = to;
        match self {
            Move::Start => {
                task.assigned_to = Some(actor.id.clone());
                task.fence += 1;
                task.lease_expires_at = None;
                task.lease_seconds = None;
            }
            Move::Complete => task.progress_percent = 100,
            Move::Release => task.assigned_to = None,
            _ => {}
        }
        if to != TaskStatus::InProgress {
            task.lease_expires_at = None;
            task.lease_seconds = None;
        }
    }
}

impl Action {
    /// The row of the lifecycle table this action asks for.
    pub fn as_move(&self) -> Move {
        match self {
            Action::Start { .. } => Move::Start,
            Action::Progress { .. } => Move::Progress,
            Action::SubmitForReview => Move::SubmitForReview,
            Action::RequestChanges => Move::RequestChanges,
            Action::Complete => Move::Complete,
            Action::Block { .. } => Move::Block,
            Action::Unblock => Move::Unblock,
            Action::Release => Move::Release,
        }
    }

    /// Checks the action's own arguments, which needs no task: a bad percent is refused before
    /// anything is read.
    pub fn validate(&self) -> Result<()> {
        match self {
            Action::Progress { percent, note } => {
                validate::percent("percent", *percent)?;
                validate::optional_text("note", note.as_deref())
            }
            Action::Block { reason } => validate::optional_text("reason", reason.as_deref()),
            Action::Start {
                lease_seconds: Some(seconds),
            } => validate::lease_seconds(*seconds).map(drop),
            _ => Ok(()),
        }
    }
}

/// The assignee, anyone while the task is unassigned, or an admin.
fn owner_or_admin(task: &Task, actor: &Actor, permission: Permission) -> Result<()> {
    match &task.assigned_to {
        Some(owner) if *owner != actor.id && !actor.admin => {
            Err(Error::Forbidden { action: permission })
        }
        _ => Ok(()),
    }
}

/// Refuses non-admins `permission` (`Admin role required`).
pub fn require_admin(actor: &Actor, permission: Permission) -> Result<()> {
    if actor.admin {
        Ok(())
    } else {
        Err(Error::Forbidden { action: permission })
    }
}

fn audit(
    project_slug: &Option<String>,
    actor: &Actor,
    action: AuditAction,
    context: Option<Value>,
    now: Timestamp,
) -> AuditDraft {
    AuditDraft {
        project_slug: project_slug.clone(),
        actor_id: actor.id.clone(),
        actor_type: actor.actor_type,
        action,
        context,
        timestamp: now,
        outcome: None,
    }
}

fn bump(task: &mut Task, now: Timestamp) {
    task.version += 1;
    task.updated_at = now;
}

/// Applies a lifecycle action: the status check (HTTP 400) comes before the policy (HTTP 403).
pub fn apply(task: &Task, action: &Action, actor: &Actor, now: Timestamp) -> Result<Transition> {
    action.validate()?;
    let mv = action.as_move();
    let to =
        mv.target(task.status, task.assigned_to.is_some())
            .ok_or(Error::InvalidTransition {
                action: mv,
                from: task.status,
            })?;
    mv.authorize(task, actor)?;

    let mut next = task.clone();
    mv.apply_effects(&mut next, to, actor);
    let context = match action {
        Action::Progress { percent, note } => {
            next.progress_percent = *percent;
            Some(json!({ "percent": percent, "note": note }))
        }
        Action::Block { reason } => Some(json!({ "reason": reason })),
        Action::Start {
            lease_seconds: Some(seconds),
        } => {
            grant_lease(&mut next, *seconds, now);
            Some(json!({ "fence": next.fence, "lease_seconds": seconds }))
        }
        Action::Release => Some(json!({ "fence": next.fence })),
        _ => None,
    };
    bump(&mut next, now);
    let audit = audit(&next.project_slug, actor, mv.audit_action(), context, now);
    Ok(Transition {
        task: next,
        audit,
        moved: Some(mv),
    })
}

fn grant_lease(task: &mut Task, seconds: i64, now: Timestamp) {
    task.lease_expires_at = Some(now + chrono::Duration::seconds(seconds));
    task.lease_seconds = Some(seconds);
}

/// Claim-next's start: the same move as [`Action::Start`], with a lease, recorded as a
/// `started` row with context `{"claimed": true, "fence": n, "lease_seconds": n}`.
pub fn claim(task: &Task, actor: &Actor, lease_seconds: i64, now: Timestamp) -> Result<Transition> {
    let mut transition = apply(
        task,
        &Action::Start {
            lease_seconds: Some(lease_seconds),
        },
        actor,
        now,
    )?;
    transition.audit.context = Some(json!({
        "claimed": true,
        "fence": transition.task.fence,
        "lease_seconds": lease_seconds,
    }));
    Ok(transition)
}

/// A heartbeat: the lease `task`'s holder keeps, renewed to now + `lease_seconds` (default: the
/// length it was granted with). Not a change of the task: no version bump, no audit row.
/// Refused with [`Error::NoLease`] when the task holds none, and by the policy for anyone but
/// the assignee or an admin. Returns the new expiry and length.
pub fn heartbeat(
    task: &Task,
    actor: &Actor,
    lease_seconds: Option<i64>,
    now: Timestamp,
) -> Result<(Timestamp, i64)> {
    if let Some(seconds) = lease_seconds {
        validate::lease_seconds(seconds)?;
    }
    let (TaskStatus::InProgress, Some(_), Some(granted)) =
        (task.status, task.lease_expires_at, task.lease_seconds)
    else {
        return Err(Error::NoLease);
    };
    owner_or_admin(task, actor, Permission::Heartbeat)?;
    let seconds = lease_seconds.unwrap_or(granted);
    Ok((now + chrono::Duration::seconds(seconds), seconds))
}

/// Whether `task`'s lease has run out at `now`.
pub fn lease_expired(task: &Task, now: Timestamp) -> bool {
    task.status == TaskStatus::InProgress && task.lease_expires_at.is_some_and(|at| at <= now)
}

/// Reclaims a task whose lease ran out: back to `pending`, unassigned, lease cleared, recorded
/// as `lease_expired` by taskflow itself (actor `taskflow`, type `system`) with context
/// `{"assignee": <old>, "fence": n}`. `None` when the lease has not run out.
pub fn expire(task: &Task, now: Timestamp) -> Option<Transition> {
    if !lease_expired(task, now) {
        return None;
    }
    let system = Actor {
        id: SYSTEM_ACTOR.to_owned(),
        actor_type: ActorType::System,
        admin: true,
    };
    let mut next = task.clone();
    next.status = TaskStatus::Pending;
    next.assigned_to = None;
    next.lease_expires_at = None;
    next.lease_seconds = None;
    bump(&mut next, now);
    let context = json!({ "assignee": task.assigned_to, "fence": task.fence });
    let audit = audit(
        &next.project_slug,
        &system,
        AuditAction::LeaseExpired,
        Some(context),
        now,
    );
    Some(Transition {
        task: next,
        audit,
        moved: None,
    })
}

/// Whether a task in `status` counts as finished for the tasks that depend on it.
pub fn is_finished(status: TaskStatus) -> bool {
    status == TaskStatus::Completed
}

/// What makes a task ready, for stores that select the ready queue themselves: a task is
/// *ready for* a caller when it is in `ready` status, unassigned or assigned to that caller,
/// and every task it depends on is in `finished` status. The queue is ordered by `urgency`
/// (most urgent first), then by id. Stores bind these values; they never spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyRule {
    /// The status a ready task is in.
    pub ready: TaskStatus,
    /// The status a dependency must be in for it to count as done.
    pub finished: TaskStatus,
    /// Priorities, most urgent first.
    pub urgency: [Priority; 4],
}

/// The ready rule of the default lifecycle.
pub const READY: ReadyRule = ReadyRule {
    ready: TaskStatus::Pending,
    finished: TaskStatus::Completed,
    urgency: [
        Priority::Critical,
        Priority::High,
        Priority::Medium,
        Priority::Low,
    ],
};

impl ReadyRule {
    /// The rank of `priority` in the queue: 0 for the most urgent.
    pub fn rank(&self, priority: Priority) -> usize {
        self.urgency
            .iter()
            .position(|p| *p == priority)
            .unwrap_or(self.urgency.len())
    }
}

/// The fields a caller sets, of a stored task or of a draft, as they appear in audit contexts
/// and on the wire.
struct Fields<'a> {
    title: &'a str,
    description: &'a Option<String>,
    status: TaskStatus,
    priority: crate::model::Priority,
    progress_percent: i32,
    assigned_to: &'a Option<String>,
    project_slug: &'a Option<String>,
    parent_id: Option<i64>,
}

impl<'a> From<&'a Task> for Fields<'a> {
    fn from(t: &'a Task) -> Self {
        Fields {
            title: &t.title,
            description: &t.description,
            status: t.status,
            priority: t.priority,
            progress_percent: t.progress_percent,
            assigned_to: &t.assigned_to,
            project_slug: &t.project_slug,
            parent_id: t.parent_id,
        }
    }
}

impl<'a> From<&'a TaskDraft> for Fields<'a> {
    fn from(t: &'a TaskDraft) -> Self {
        Fields {
            title: &t.title,
            description: &t.description,
            status: t.status,
            priority: t.priority,
            progress_percent: t.progress_percent,
            assigned_to: &t.assigned_to,
            project_slug: &t.project_slug,
            parent_id: t.parent_id,
        }
    }
}

impl Fields<'_> {
    fn value(&self, field: &str) -> Value {
        match field {
            "title" => json!(self.title),
            "description" => json!(self.description),
            "status" => json!(self.status),
            "priority" => json!(self.priority),
            "progress_percent" => json!(self.progress_percent),
            "assigned_to" => json!(self.assigned_to),
            "project_slug" => json!(self.project_slug),
            "parent_id" => json!(self.parent_id),
            _ => Value::Null,
        }
    }
}

const FIELDS: [&str; 8] = [
    "title",
    "description",
    "status",
    "priority",
    "progress_percent",
    "assigned_to",
    "project_slug",
    "parent_id",
];

/// Builds a new task and its `created` audit row, for the store to insert (it assigns the id).
///
/// Checks everything that needs no database; the store refuses a parent that does not exist.
pub fn create(new: NewTask, actor: &Actor, now: Timestamp) -> Result<Creation> {
    let title = validate::title(&new.title)?;
    validate::optional_text("description", new.description.as_deref())?;
    validate::optional_text("assigned_to", new.assigned_to.as_deref())?;
    validate::optional_text("project_slug", new.project_slug.as_deref())?;
    let status = match new.status.unwrap_or(TaskStatus::Pending) {
        s @ (TaskStatus::Pending | TaskStatus::Blocked) => s,
        _ => {
            return Err(Error::validation(
                "status",
                "a new task starts as 'pending' or 'blocked'",
            ));
        }
    };
    let progress_percent =
        validate::percent("progress_percent", new.progress_percent.unwrap_or(0))?;
    let task = TaskDraft {
        title,
        description: new.description,
        status,
        priority: new.priority.unwrap_or_default(),
        progress_percent,
        assigned_to: new.assigned_to,
        project_slug: new.project_slug,
        parent_id: new.parent_id,
        created_at: now,
        updated_at: now,
        version: 1,
        fence: 0,
    };
    let fields = Fields::from(&task);
    let context: Map<String, Value> = FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), fields.value(f)))
        .collect();
    let audit = audit(
        &task.project_slug,
        actor,
        AuditAction::Created,
        Some(Value::Object(context)),
        now,
    );
    Ok(Creation { task, audit })
}

/// Checks a patch's fields on their own, before any task is read (HTTP 422 comes before 404).
pub fn validate_patch(patch: &TaskPatch) -> Result<TaskPatch> {
    let mut patch = patch.clone();
    if let Some(title) = &patch.title {
        patch.title = Some(validate::title(title)?);
    }
    if let Some(p) = patch.progress_percent {
        validate::percent("progress_percent", p)?;
    }
    for (field, value) in [
        ("description", &patch.description),
        ("assigned_to", &patch.assigned_to),
        ("project_slug", &patch.project_slug),
    ] {
        validate::optional_text(field, value.as_ref().and_then(Option::as_deref))?;
    }
    Ok(patch)
}

/// Applies a validated patch (see [`validate_patch`]). Returns `Ok(None)` when nothing would
/// change: no version bump and no audit row.
///
/// A status change must be a row of the lifecycle table whose target is exactly the requested
/// status; it has that row's effects, applied after the plain field changes, and obeys that row's
/// policy. Taking `assigned_to` away from another user is for the assignee or an admin. The whole
/// patch is recorded as one `updated` entry whose context holds every changed field's new value.
pub fn apply_patch(
    task: &Task,
    patch: &TaskPatch,
    actor: &Actor,
    now: Timestamp,
) -> Result<Option<Transition>> {
    let mut next = task.clone();
    if let Some(title) = &patch.title {
        next.title.clone_from(title);
    }
    if let Some(description) = &patch.description {
        next.description.clone_from(description);
    }
    if let Some(priority) = patch.priority {
        next.priority = priority;
    }
    if let Some(percent) = patch.progress_percent {
        next.progress_percent = percent;
    }
    if let Some(assigned_to) = &patch.assigned_to {
        next.assigned_to.clone_from(assigned_to);
    }
    if let Some(project_slug) = &patch.project_slug {
        next.project_slug.clone_from(project_slug);
    }
    if let Some(parent_id) = patch.parent_id {
        next.parent_id = parent_id;
    }

    let reassigned = next.assigned_to != task.assigned_to;
    let mut moved = None;
    if let Some(to) = patch.status.filter(|&to| to != task.status) {
        let assigned = next.assigned_to.is_some();
        let mv = PATCH_MOVES
            .into_iter()
            .find(|mv| mv.target(task.status, assigned) == Some(to))
            .ok_or(Error::InvalidStatusChange {
                from: task.status,
                to,
            })?;
        mv.authorize(task, actor)?;
        mv.apply_effects(&mut next, to, actor);
        moved = Some(mv);
    }
    if reassigned {
        owner_or_admin(task, actor, Permission::Reassign)?;
    }

    let (before, after) = (Fields::from(task), Fields::from(&next));
    let changed: Map<String, Value> = FIELDS
        .iter()
        .filter(|f| before.value(f) != after.value(f))
        .map(|f| ((*f).to_owned(), after.value(f)))
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    bump(&mut next, now);
    let audit = audit(
        &next.project_slug,
        actor,
        AuditAction::Updated,
        Some(Value::Object(changed)),
        now,
    );
    Ok(Some(Transition {
        task: next,
        audit,
        moved,
    }))
}

/// Authorizes a delete (admin only) and builds its `deleted` audit row.
pub fn delete(task: &Task, actor: &Actor, now: Timestamp) -> Result<AuditDraft> {
    require_admin(actor, Permission::Delete)?;
    Ok(audit(
        &task.project_slug,
        actor,
        AuditAction::Deleted,
        Some(json!({ "title": task.title })),
        now,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActorType, Identity, Priority, now};

    fn task(status: TaskStatus, assigned_to: Option<&str>) -> Task {
        let t = now();
        Task {
            id: 7,
            title: "t".into(),
            description: None,
            status,
            priority: Priority::Medium,
            progress_percent: 0,
            assigned_to: assigned_to.map(str::to_owned),
            project_slug: Some("p".into()),
            parent_id: None,
            created_at: t,
            updated_at: t,
            version: 3,
            fence: 0,
            lease_expires_at: None,
            lease_seconds: None,
        }
    }

    fn alice() -> Actor {
        Actor::new(&Identity::user("alice"), ActorType::Human)
    }

    #[test]
    fn every_move_has_exactly_its_rows() {
        use TaskStatus::*;
        let expected: &[(Move, TaskStatus, TaskStatus)] = &[
            (Move::Start, Pending, InProgress),
            (Move::Progress, InProgress, InProgress),
            (Move::SubmitForReview, InProgress, Review),
            (Move::RequestChanges, Review, InProgress),
            (Move::Complete, InProgress, Completed),
            (Move::Complete, Review, Completed),
            (Move::Block, Pending, Blocked),
            (Move::Block, InProgress, Blocked),
            (Move::Block, Review, Blocked),
            (Move::Unblock, Blocked, InProgress),
            (Move::Release, InProgress, Pending),
        ];
        let moves = [
            Move::Start,
            Move::Progress,
            Move::SubmitForReview,
            Move::RequestChanges,
            Move::Complete,
            Move::Block,
            Move::Unblock,
            Move::Release,
        ];
        let mut legal = 0;
        for mv in moves {
            for &from in TaskStatus::ALL {
                match mv.target(from, true) {
                    Some(to) => {
                        legal += 1;
                        assert!(expected.contains(&(mv, from, to)), "{mv:?} {from} -> {to}");
                    }
                    None => assert!(!expected.iter().any(|(m, f, _)| *m == mv && *f == from)),
                }
            }
        }
        assert_eq!(legal, expected.len());
        assert_eq!(Move::Unblock.target(Blocked, false), Some(Pending));
        for mv in moves {
            assert_eq!(mv.target(Completed, true), None, "completed is terminal");
        }
    }

    #[test]
    fn start_assigns_and_bumps() {
        let t = task(TaskStatus::Pending, None);
        let tr = apply(
            &t,
            &Action::Start {
                lease_seconds: None,
            },
            &alice(),
            now(),
        )
        .unwrap();
        assert_eq!(tr.task.status, TaskStatus::InProgress);
        assert_eq!(tr.task.assigned_to.as_deref(), Some("alice"));
        assert_eq!(tr.task.version, 4);
        assert_eq!(tr.audit.action, AuditAction::Started);
        assert_eq!(tr.audit.project_slug.as_deref(), Some("p"));
        assert_eq!(tr.task.fence, 1, "every start takes a new fence");
        assert_eq!(tr.task.lease_expires_at, None);
        assert_eq!(tr.moved, Some(Move::Start));
    }

    #[test]
    fn leases_are_granted_kept_and_dropped() {
        let at = now();
        let t = task(TaskStatus::Pending, None);
        let started = apply(
            &t,
            &Action::Start {
                lease_seconds: Some(60),
            },
            &alice(),
            at,
        )
        .unwrap()
        .task;
        assert_eq!(
            started.lease_expires_at,
            Some(at + chrono::Duration::seconds(60))
        );
        assert_eq!(started.lease_seconds, Some(60));
        let (until, secs) = heartbeat(&started, &alice(), None, at).unwrap();
        assert_eq!((until, secs), (at + chrono::Duration::seconds(60), 60));
        let bob = Actor::new(&Identity::user("bob"), ActorType::Human);
        assert_eq!(
            heartbeat(&started, &bob, None, at).unwrap_err().to_string(),
            "Only the assignee or an admin can extend the lease on this task"
        );
        let progressed = apply(
            &started,
            &Action::Progress {
                percent: 5,
                note: None,
            },
            &alice(),
            at,
        )
        .unwrap()
        .task;
        assert_eq!(
            progressed.lease_seconds,
            Some(60),
            "staying in progress keeps it"
        );
        let done = apply(&progressed, &Action::Complete, &alice(), at)
            .unwrap()
            .task;
        assert_eq!((done.lease_expires_at, done.lease_seconds), (None, None));
        assert!(matches!(
            heartbeat(&done, &alice(), None, at),
            Err(Error::NoLease)
        ));

        let later = at + chrono::Duration::seconds(61);
        assert!(expire(&started, at).is_none(), "not yet");
        let expired = expire(&started, later).unwrap();
        assert_eq!(expired.task.status, TaskStatus::Pending);
        assert_eq!(expired.task.assigned_to, None);
        assert_eq!(expired.task.fence, started.fence);
        assert_eq!(expired.audit.actor_id, "taskflow");
        assert_eq!(expired.audit.actor_type, ActorType::System);
        assert_eq!(
            expired.audit.context,
            Some(json!({"assignee": "alice", "fence": 1}))
        );
    }

    #[test]
    fn status_refusal_comes_before_policy() {
        let t = task(TaskStatus::Pending, Some("bob"));
        let err = apply(&t, &Action::Complete, &alice(), now()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidTransition {
                    action: Move::Complete,
                    from: TaskStatus::Pending
                }
            ),
            "{err:?}"
        );
        let t = task(TaskStatus::InProgress, Some("bob"));
        let err = apply(&t, &Action::Complete, &alice(), now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Only the assignee or an admin can complete this task"
        );
    }

    #[test]
    fn patch_without_changes_is_none() {
        let t = task(TaskStatus::InProgress, Some("alice"));
        let p = TaskPatch {
            title: Some("t".into()),
            status: Some(TaskStatus::InProgress),
            ..TaskPatch::default()
        };
        assert_eq!(apply_patch(&t, &p, &alice(), now()).unwrap(), None);
    }
}
