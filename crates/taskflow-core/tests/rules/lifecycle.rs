//! The lifecycle, row by row: every move, every refusal text, and the default policy.

use serde_json::json;
use taskflow_core::model::TaskPatch;

use super::*;

/// Start: `pending` → `in_progress`, assigned to the actor, one `started` row.
#[tokio::test]
async fn start_claims_pending_task() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let s = f.start(&bob(), t.id, None).await?;
    assert_eq!(s.status, TaskStatus::InProgress);
    assert_eq!(s.assigned_to.as_deref(), Some("bob"));
    assert_eq!(s.version, 2);
    assert!(s.updated_at >= t.updated_at);
    assert_eq!(f.get_task(&bob(), t.id).await?, s);
    let rows = audit(&f, t.id).await?;
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["created", "started"]
    );
    assert_eq!(rows[1].actor_id, "bob");
    assert_eq!(rows[1].context, None);
    assert_eq!(
        rows[1].timestamp, s.updated_at,
        "the row and the change share their instant"
    );
    Ok(())
}

/// Start is refused from every status but `pending`, with the seed's text.
#[tokio::test]
async fn start_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::Pending]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.start(&alice(), t.id, None).await,
            Move::Start,
            status,
            &format!("Cannot start task with status '{status}'"),
        );
        assert_eq!(f.get_task(&alice(), t.id).await?, t, "unchanged");
    }
    Ok(())
}

/// Progress sets the percent and records `{percent, note}`.
#[tokio::test]
async fn progress_records_percent_and_note() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let p = f
        .progress(&alice(), t.id, 40, Some("halfway-ish".into()), None)
        .await?;
    assert_eq!(p.progress_percent, 40);
    assert_eq!(p.status, TaskStatus::InProgress);
    let p = f.progress(&alice(), t.id, 60, None, None).await?;
    assert_eq!(p.progress_percent, 60);
    let rows = audit(&f, t.id).await?;
    let progressed: Vec<_> = rows
        .iter()
        .filter(|r| r.action == AuditAction::Progressed)
        .collect();
    assert_eq!(progressed.len(), 2);
    assert_eq!(progressed[0].action.as_str(), "progressed");
    assert_eq!(
        progressed[0].context,
        Some(json!({"percent": 40, "note": "halfway-ish"}))
    );
    assert_eq!(
        progressed[1].context,
        Some(json!({"percent": 60, "note": null}))
    );
    Ok(())
}

/// Progress needs `in_progress` and a percent in 0..=100; a bad percent is checked first.
#[tokio::test]
async fn progress_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::InProgress]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.progress(&alice(), t.id, 10, None, None).await,
            Move::Progress,
            status,
            "Task must be in_progress",
        );
    }
    let t = task_in(&f, TaskStatus::InProgress).await?;
    for bad in [-1, 101] {
        expect_validation(f.progress(&alice(), t.id, bad, None, None).await, "percent");
    }
    expect_validation(
        f.progress(&alice(), 987_654, 101, None, None).await,
        "percent",
    );
    assert_eq!(
        actions(&f, t.id).await?,
        [AuditAction::Created, AuditAction::Started]
    );
    Ok(())
}

/// Only the assignee (or an admin) may report progress.
#[tokio::test]
async fn progress_policy() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    expect_forbidden(
        f.progress(&bob(), t.id, 10, None, None).await,
        Permission::ReportProgress,
        "Only the assignee or an admin can report progress on this task",
    );
    assert_eq!(
        actions(&f, t.id).await?,
        [AuditAction::Created, AuditAction::Started]
    );
    Ok(())
}

/// Submit for review: `in_progress` → `review`, by the assignee.
#[tokio::test]
async fn submit_for_review_moves_to_review() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let r = f.submit_for_review(&alice(), t.id, None).await?;
    assert_eq!(r.status, TaskStatus::Review);
    assert_eq!(r.assigned_to.as_deref(), Some("alice"));
    let other = task_in(&f, TaskStatus::InProgress).await?;
    expect_forbidden(
        f.submit_for_review(&bob(), other.id, None).await,
        Permission::SubmitForReview,
        "Only the assignee or an admin can submit this task",
    );
    assert_eq!(
        actions(&f, t.id).await?,
        [
            AuditAction::Created,
            AuditAction::Started,
            AuditAction::ReviewRequested
        ]
    );
    assert_eq!(
        last_row(&f, t.id).await?.action.as_str(),
        "review_requested"
    );
    Ok(())
}

/// Submit is refused outside `in_progress`.
#[tokio::test]
async fn submit_for_review_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::InProgress]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.submit_for_review(&alice(), t.id, None).await,
            Move::SubmitForReview,
            status,
            &format!("Cannot submit task with status '{status}' for review"),
        );
    }
    Ok(())
}

/// Request changes: `review` → `in_progress`, by anyone; the assignee stays.
#[tokio::test]
async fn request_changes_moves_back() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Review).await?;
    let r = f.request_changes(&bob(), t.id, None).await?;
    assert_eq!(r.status, TaskStatus::InProgress);
    assert_eq!(
        r.assigned_to.as_deref(),
        Some("alice"),
        "keeps the assignee"
    );
    let last = last_row(&f, t.id).await?;
    assert_eq!(last.action, AuditAction::ChangesRequested);
    assert_eq!(last.action.as_str(), "changes_requested");
    assert_eq!(last.actor_id, "bob");
    Ok(())
}

/// Request changes is refused outside `review`.
#[tokio::test]
async fn request_changes_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::Review]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.request_changes(&alice(), t.id, None).await,
            Move::RequestChanges,
            status,
            "Task must be in review",
        );
    }
    Ok(())
}

/// Complete from `in_progress` sets progress to 100.
#[tokio::test]
async fn complete_from_in_progress() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    f.progress(&alice(), t.id, 30, None, None).await?;
    let c = f.complete(&alice(), t.id, None).await?;
    assert_eq!(c.status, TaskStatus::Completed);
    assert_eq!(c.progress_percent, 100);
    assert_eq!(
        actions(&f, t.id).await?,
        [
            AuditAction::Created,
            AuditAction::Started,
            AuditAction::Progressed,
            AuditAction::Completed
        ]
    );
    assert_eq!(last_row(&f, t.id).await?.action.as_str(), "completed");
    Ok(())
}

/// From `review`, anyone may complete.
#[tokio::test]
async fn complete_from_review_by_anyone() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Review).await?;
    let c = f.complete(&bob(), t.id, None).await?;
    assert_eq!(c.status, TaskStatus::Completed);
    assert_eq!(c.progress_percent, 100);
    assert_eq!(last_row(&f, t.id).await?.actor_id, "bob");
    Ok(())
}

/// From `in_progress`, only the assignee or an admin may complete.
#[tokio::test]
async fn complete_policy() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    expect_forbidden(
        f.complete(&bob(), t.id, None).await,
        Permission::Complete,
        "Only the assignee or an admin can complete this task",
    );
    assert_eq!(f.get_task(&bob(), t.id).await?, t);
    assert_eq!(
        f.complete(&root(), t.id, None).await?.status,
        TaskStatus::Completed
    );
    Ok(())
}

/// Complete is refused from `pending`, `blocked` and `completed`.
#[tokio::test]
async fn complete_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::InProgress, TaskStatus::Review]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.complete(&alice(), t.id, None).await,
            Move::Complete,
            status,
            &format!("Cannot complete task with status '{status}'"),
        );
    }
    Ok(())
}

/// Block works from `pending`, `in_progress` and `review`, and records `{reason}`.
#[tokio::test]
async fn block_from_each_open_status() -> TestResult {
    let f = flow();
    for status in [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Review,
    ] {
        let t = task_in(&f, status).await?;
        let b = f
            .block(&alice(), t.id, Some(format!("from {status}")), None)
            .await?;
        assert_eq!(b.status, TaskStatus::Blocked);
        let last = last_row(&f, t.id).await?;
        assert_eq!(last.action, AuditAction::Blocked);
        assert_eq!(last.action.as_str(), "blocked");
        assert_eq!(
            last.context,
            Some(json!({"reason": format!("from {status}")}))
        );
    }
    let t = task(&f, "no reason").await?;
    f.block(&alice(), t.id, None, None).await?;
    let last = last_row(&f, t.id).await?;
    assert_eq!(last.context, Some(json!({"reason": null})));
    Ok(())
}

/// Block is refused from `blocked` and `completed`, and belongs to the assignee.
#[tokio::test]
async fn block_refusals() -> TestResult {
    let f = flow();
    for status in [TaskStatus::Blocked, TaskStatus::Completed] {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.block(&alice(), t.id, None, None).await,
            Move::Block,
            status,
            &format!("Cannot block task with status '{status}'"),
        );
    }
    let t = task_in(&f, TaskStatus::InProgress).await?;
    expect_forbidden(
        f.block(&bob(), t.id, None, None).await,
        Permission::Block,
        "Only the assignee or an admin can block this task",
    );
    Ok(())
}

/// Unblock returns an assigned task to `in_progress`, and belongs to the assignee.
#[tokio::test]
async fn unblock_returns_to_in_progress_when_assigned() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    f.block(&alice(), t.id, None, None).await?;
    expect_forbidden(
        f.unblock(&bob(), t.id, None).await,
        Permission::Unblock,
        "Only the assignee or an admin can unblock this task",
    );
    let u = f.unblock(&alice(), t.id, None).await?;
    assert_eq!(u.status, TaskStatus::InProgress);
    let last = last_row(&f, t.id).await?;
    assert_eq!(last.action, AuditAction::Unblocked);
    assert_eq!(last.action.as_str(), "unblocked");
    Ok(())
}

/// Unblock returns an unassigned task to `pending`; anyone may unblock it.
#[tokio::test]
async fn unblock_returns_to_pending_when_unassigned() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Blocked).await?;
    assert_eq!(t.assigned_to, None);
    let u = f.unblock(&bob(), t.id, None).await?;
    assert_eq!(u.status, TaskStatus::Pending);
    Ok(())
}

/// Unblock is refused unless `blocked`.
#[tokio::test]
async fn unblock_refusals() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::Blocked]) {
        let t = task_in(&f, status).await?;
        expect_invalid(
            f.unblock(&alice(), t.id, None).await,
            Move::Unblock,
            status,
            "Task must be blocked",
        );
    }
    Ok(())
}

/// Nothing moves a completed task, not even an admin, though its fields may still be edited.
#[tokio::test]
async fn completed_is_terminal() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Completed).await?;
    let a = root();
    let done = TaskStatus::Completed;
    expect_invalid(
        f.start(&a, t.id, None).await,
        Move::Start,
        done,
        "Cannot start task with status 'completed'",
    );
    expect_invalid(
        f.progress(&a, t.id, 5, None, None).await,
        Move::Progress,
        done,
        "Task must be in_progress",
    );
    expect_invalid(
        f.submit_for_review(&a, t.id, None).await,
        Move::SubmitForReview,
        done,
        "Cannot submit task with status 'completed' for review",
    );
    expect_invalid(
        f.request_changes(&a, t.id, None).await,
        Move::RequestChanges,
        done,
        "Task must be in review",
    );
    expect_invalid(
        f.complete(&a, t.id, None).await,
        Move::Complete,
        done,
        "Cannot complete task with status 'completed'",
    );
    expect_invalid(
        f.block(&a, t.id, None, None).await,
        Move::Block,
        done,
        "Cannot block task with status 'completed'",
    );
    expect_invalid(
        f.unblock(&a, t.id, None).await,
        Move::Unblock,
        done,
        "Task must be blocked",
    );
    for to in statuses_except(&[TaskStatus::Completed]) {
        let patch = TaskPatch {
            status: Some(to),
            ..TaskPatch::default()
        };
        expect_status_change(
            f.update_task(&a, t.id, &patch, None).await,
            done,
            to,
            &format!("Cannot change status from 'completed' to '{to}'"),
        );
    }
    assert_eq!(f.get_task(&a, t.id).await?, t, "unchanged");
    let patch = TaskPatch {
        title: Some("renamed".into()),
        ..TaskPatch::default()
    };
    let renamed = f.update_task(&a, t.id, &patch, None).await?;
    assert_eq!(renamed.title, "renamed");
    assert_eq!(renamed.status, TaskStatus::Completed);
    Ok(())
}

/// An admin may act on a task assigned to someone else, without taking it over.
#[tokio::test]
async fn admin_overrides_assignee_policy() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let a = root();
    f.progress(&a, t.id, 50, None, None).await?;
    f.submit_for_review(&a, t.id, None).await?;
    f.block(&a, t.id, None, None).await?;
    let u = f.unblock(&a, t.id, None).await?;
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(
        u.assigned_to.as_deref(),
        Some("alice"),
        "admin does not take it over"
    );
    assert!(
        audit(&f, t.id).await?[2..]
            .iter()
            .all(|r| r.actor_id == "root"),
        "the admin's moves are recorded as the admin's"
    );
    Ok(())
}
