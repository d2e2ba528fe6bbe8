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
//!
//! The default policy: anyone may create, edit fields and start. Progress, submit, block and
//! unblock belong to the assignee (anyone while unassigned) or an admin. Complete from
//! `in_progress` belongs to the assignee (anyone while unassigned) or an admin; from `review`,
//! anyone may complete or request changes. Delete and worker registration are admin only.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::{Actor, AuditEntry, NewTask, Task, TaskPatch, TaskStatus, Timestamp, action};
use crate::validate;

/// A lifecycle action, as asked for by a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Claim a pending task and begin work on it.
    Start,
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
}

/// The outcome of a legal change: the task as it must be stored, and its audit entry.
///
/// `task.version` is already incremented; the store writes it only if the stored version is still
/// `task.version - 1`. The audit entry's `id` is assigned by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The task after the change.
    pub task: Task,
    /// The one audit entry that records the change.
    pub audit: AuditEntry,
}

/// The rows of the lifecycle table, by what they do rather than what they are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Start,
    Progress,
    SubmitForReview,
    RequestChanges,
    Complete,
    Block,
    Unblock,
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
            _ => None,
        }
    }

    /// The seed's refusal text for this move from `from`.
    fn refusal(self, from: TaskStatus) -> String {
        match self {
            Move::Start => format!("Cannot start task with status '{from}'"),
            Move::Progress => "Task must be in_progress".to_owned(),
            Move::SubmitForReview => format!("Cannot submit task with status '{from}' for review"),
            Move::RequestChanges => "Task must be in review".to_owned(),
            Move::Complete => format!("Cannot complete task with status '{from}'"),
            Move::Block => format!("Cannot block task with status '{from}'"),
            Move::Unblock => "Task must be blocked".to_owned(),
        }
    }

    /// The default policy for this move on `task` (in its state before the move).
    fn authorize(self, task: &Task, actor: &Actor) -> Result<()> {
        let verb = match self {
            Move::Start | Move::RequestChanges => return Ok(()),
            Move::Complete if task.status == TaskStatus::Review => return Ok(()),
            Move::Complete => "complete",
            Move::Progress => "report progress on",
            Move::SubmitForReview => "submit",
            Move::Block => "block",
            Move::Unblock => "unblock",
        };
        owner_or_admin(task, actor, verb)
    }

    /// The audit action of this move when made through its own endpoint.
    fn audit_action(self) -> &'static str {
        match self {
            Move::Start => action::STARTED,
            Move::Progress => action::PROGRESSED,
            Move::SubmitForReview => action::REVIEW_REQUESTED,
            Move::RequestChanges => action::CHANGES_REQUESTED,
            Move::Complete => action::COMPLETED,
            Move::Block => action::BLOCKED,
            Move::Unblock => action::UNBLOCKED,
        }
    }

    /// Applies the move's effects (status and side effects) to `task`.
    fn apply_effects(self, task: &mut Task, to: TaskStatus, actor: &Actor) {
        task.status = to;
        match self {
            Move::Start => task.assigned_to = Some(actor.id.clone()),
            Move::Complete => task.progress_percent = 100,
            _ => {}
        }
    }
}

impl Action {
    fn as_move(&self) -> Move {
        match self {
            Action::Start => Move::Start,
            Action::Progress { .. } => Move::Progress,
            Action::SubmitForReview => Move::SubmitForReview,
            Action::RequestChanges => Move::RequestChanges,
            Action::Complete => Move::Complete,
            Action::Block { .. } => Move::Block,
            Action::Unblock => Move::Unblock,
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
            _ => Ok(()),
        }
    }
}

/// The assignee, anyone while the task is unassigned, or an admin.
fn owner_or_admin(task: &Task, actor: &Actor, verb: &str) -> Result<()> {
    match &task.assigned_to {
        Some(owner) if *owner != actor.id && !actor.admin => Err(Error::Forbidden(format!(
            "Only the assignee or an admin can {verb} this task"
        ))),
        _ => Ok(()),
    }
}

/// Refuses non-admins with `Admin role required`.
pub fn require_admin(actor: &Actor) -> Result<()> {
    if actor.admin {
        Ok(())
    } else {
        Err(Error::Forbidden("Admin role required".to_owned()))
    }
}

fn audit(
    task: &Task,
    actor: &Actor,
    action: &str,
    context: Option<Value>,
    now: Timestamp,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        task_id: task.id,
        project_slug: task.project_slug.clone(),
        actor_id: actor.id.clone(),
        actor_type: actor.actor_type,
        action: action.to_owned(),
        context,
        timestamp: now,
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
    let to = mv
        .target(task.status, task.assigned_to.is_some())
        .ok_or_else(|| Error::InvalidTransition(mv.refusal(task.status)))?;
    mv.authorize(task, actor)?;

    let mut next = task.clone();
    mv.apply_effects(&mut next, to, actor);
    let context = match action {
        Action::Progress { percent, note } => {
            next.progress_percent = *percent;
            Some(json!({ "percent": percent, "note": note }))
        }
        Action::Block { reason } => Some(json!({ "reason": reason })),
        _ => None,
    };
    bump(&mut next, now);
    let audit = audit(&next, actor, mv.audit_action(), context, now);
    Ok(Transition { task: next, audit })
}

/// The fields of a task as they appear in audit contexts and on the wire.
fn field_value(task: &Task, field: &str) -> Value {
    match field {
        "title" => json!(task.title),
        "description" => json!(task.description),
        "status" => json!(task.status),
        "priority" => json!(task.priority),
        "progress_percent" => json!(task.progress_percent),
        "assigned_to" => json!(task.assigned_to),
        "project_slug" => json!(task.project_slug),
        "parent_id" => json!(task.parent_id),
        _ => Value::Null,
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

/// Builds a new task (with `id` 0, for the store to assign) and its `created` audit entry.
///
/// Checks everything that needs no database; the parent's existence is checked by the caller.
pub fn create(new: NewTask, actor: &Actor, now: Timestamp) -> Result<Transition> {
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
    let task = Task {
        id: 0,
        title,
        description: new.description,
        status,
        priority: new.priority.unwrap_or_default(),
        progress_percent,
        assigned_to: new.assigned_to,
        project_slug: new.project_slug,
        parent_id: validate::parent_id(new.parent_id),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let context: Map<String, Value> = FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), field_value(&task, f)))
        .collect();
    let audit = audit(
        &task,
        actor,
        action::CREATED,
        Some(Value::Object(context)),
        now,
    );
    Ok(Transition { task, audit })
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
    if let Some(parent) = patch.parent_id {
        patch.parent_id = Some(validate::parent_id(parent));
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
    if let Some(to) = patch.status.filter(|&to| to != task.status) {
        let assigned = next.assigned_to.is_some();
        let mv = PATCH_MOVES
            .into_iter()
            .find(|mv| mv.target(task.status, assigned) == Some(to))
            .ok_or_else(|| {
                Error::InvalidTransition(format!(
                    "Cannot change status from '{}' to '{to}'",
                    task.status
                ))
            })?;
        mv.authorize(task, actor)?;
        mv.apply_effects(&mut next, to, actor);
    }
    if reassigned {
        owner_or_admin(task, actor, "reassign")?;
    }

    let changed: Map<String, Value> = FIELDS
        .iter()
        .filter(|f| field_value(task, f) != field_value(&next, f))
        .map(|f| ((*f).to_owned(), field_value(&next, f)))
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    bump(&mut next, now);
    let audit = audit(
        &next,
        actor,
        action::UPDATED,
        Some(Value::Object(changed)),
        now,
    );
    Ok(Some(Transition { task: next, audit }))
}

/// Authorizes a delete (admin only) and builds its `deleted` audit entry.
pub fn delete(task: &Task, actor: &Actor, now: Timestamp) -> Result<AuditEntry> {
    require_admin(actor)?;
    Ok(audit(
        task,
        actor,
        action::DELETED,
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
        ];
        let moves = [
            Move::Start,
            Move::Progress,
            Move::SubmitForReview,
            Move::RequestChanges,
            Move::Complete,
            Move::Block,
            Move::Unblock,
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
        let tr = apply(&t, &Action::Start, &alice(), now()).unwrap();
        assert_eq!(tr.task.status, TaskStatus::InProgress);
        assert_eq!(tr.task.assigned_to.as_deref(), Some("alice"));
        assert_eq!(tr.task.version, 4);
        assert_eq!(tr.audit.action, "started");
        assert_eq!(tr.audit.task_id, 7);
    }

    #[test]
    fn status_refusal_comes_before_policy() {
        let t = task(TaskStatus::Pending, Some("bob"));
        let err = apply(&t, &Action::Complete, &alice(), now()).unwrap_err();
        assert!(matches!(err, Error::InvalidTransition(_)), "{err:?}");
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
