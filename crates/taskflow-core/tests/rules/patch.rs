//! PATCH: what is a change, what is recorded, status moves through PATCH, reassignment and
//! parents.

use serde_json::json;
use taskflow_core::model::{Priority, TaskPatch};

use super::*;

/// `{}` changes nothing: no version bump, no audit row.
#[tokio::test]
async fn empty_patch_is_a_no_op() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let same = f
        .update_task(&alice(), t.id, &TaskPatch::default(), None)
        .await?;
    assert_eq!(same, t);
    assert_eq!(actions(&f, t.id).await?, [AuditAction::Created]);
    Ok(())
}

/// Setting fields to their current values is not a change. (A parentless task keeps no parent
/// with `parent_id: null`; in core, `Some(0)` would name a task 0.)
#[tokio::test]
async fn patch_with_same_values_is_a_no_op() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let patch = TaskPatch {
        title: Some("  fixture ".into()),
        description: Some(None),
        status: Some(TaskStatus::InProgress),
        priority: Some(Priority::Medium),
        progress_percent: Some(0),
        assigned_to: Some(Some("alice".into())),
        project_slug: Some(None),
        parent_id: Some(None),
    };
    let same = f.update_task(&bob(), t.id, &patch, Some(t.version)).await?;
    assert_eq!(same, t);
    assert_eq!(
        actions(&f, t.id).await?,
        [AuditAction::Created, AuditAction::Started]
    );
    Ok(())
}

/// One `updated` row holds exactly the changed fields' new values.
#[tokio::test]
async fn patch_records_changed_fields() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let patch = TaskPatch {
        title: Some("  new title ".into()),
        priority: Some(Priority::High),
        project_slug: Some(Some("web".into())),
        description: Some(None),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await?;
    assert_eq!(u.title, "new title");
    assert_eq!(u.priority, Priority::High);
    assert_eq!(u.project_slug.as_deref(), Some("web"));
    assert_eq!(u.version, 2);
    assert_eq!(f.get_task(&bob(), t.id).await?, u);
    let rows = audit(&f, t.id).await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].action, AuditAction::Updated);
    assert_eq!(rows[1].action.as_str(), "updated");
    assert_eq!(rows[1].actor_id, "bob");
    assert_eq!(rows[1].project_slug.as_deref(), Some("web"));
    assert_eq!(
        rows[1].context,
        Some(json!({"title": "new title", "priority": "high", "project_slug": "web"}))
    );
    Ok(())
}

/// `null` clears a clearable field.
#[tokio::test]
async fn patch_null_clears_fields() -> TestResult {
    let f = flow();
    let parent = task(&f, "parent").await?;
    let new = NewTask {
        description: Some("d".into()),
        project_slug: Some("p".into()),
        assigned_to: Some("alice".into()),
        parent_id: Some(parent.id),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await?;
    let patch = TaskPatch {
        description: Some(None),
        project_slug: Some(None),
        assigned_to: Some(None),
        parent_id: Some(None),
        ..TaskPatch::default()
    };
    let u = f.update_task(&alice(), t.id, &patch, None).await?;
    assert_eq!(
        (u.description, u.project_slug, u.assigned_to, u.parent_id),
        (None, None, None, None)
    );
    let row = last_row(&f, t.id).await?;
    assert_eq!(
        row.context,
        Some(
            json!({"description": null, "project_slug": null, "assigned_to": null, "parent_id": null})
        )
    );
    Ok(())
}

/// Field rules apply to patches, before the task is even looked up.
#[tokio::test]
async fn patch_validates_fields() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let cases = [
        (
            TaskPatch {
                title: Some("  ".into()),
                ..TaskPatch::default()
            },
            "title",
        ),
        (
            TaskPatch {
                title: Some("y".repeat(201)),
                ..TaskPatch::default()
            },
            "title",
        ),
        (
            TaskPatch {
                progress_percent: Some(101),
                ..TaskPatch::default()
            },
            "progress_percent",
        ),
    ];
    for (patch, field) in cases {
        expect_validation(f.update_task(&alice(), t.id, &patch, None).await, field);
        expect_validation(f.update_task(&alice(), 424_242, &patch, None).await, field);
    }
    assert_eq!(actions(&f, t.id).await?, [AuditAction::Created]);
    Ok(())
}

/// A PATCH to `in_progress` from `pending` is a start: it assigns the actor.
#[tokio::test]
async fn patch_status_start_assigns_actor() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    let patch = TaskPatch {
        status: Some(TaskStatus::InProgress),
        assigned_to: Some(Some("carol".into())),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await?;
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(
        u.assigned_to.as_deref(),
        Some("bob"),
        "effects apply after fields"
    );
    let row = last_row(&f, t.id).await?;
    assert_eq!(row.action, AuditAction::Updated);
    assert_eq!(
        row.context,
        Some(json!({"status": "in_progress", "assigned_to": "bob"}))
    );
    Ok(())
}

/// A PATCH to `completed` sets progress to 100.
#[tokio::test]
async fn patch_status_complete_sets_full_progress() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Review).await?;
    let patch = TaskPatch {
        status: Some(TaskStatus::Completed),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await?;
    assert_eq!(u.status, TaskStatus::Completed);
    assert_eq!(u.progress_percent, 100);
    let row = last_row(&f, t.id).await?;
    assert_eq!(row.action, AuditAction::Updated);
    assert_eq!(
        row.context,
        Some(json!({"status": "completed", "progress_percent": 100}))
    );
    Ok(())
}

/// A PATCH cannot jump the lifecycle, and a refused PATCH applies none of its fields.
#[tokio::test]
async fn patch_status_illegal_move() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    for to in [TaskStatus::Review, TaskStatus::Completed] {
        let patch = TaskPatch {
            status: Some(to),
            title: Some("also renamed".into()),
            ..TaskPatch::default()
        };
        expect_status_change(
            f.update_task(&root(), t.id, &patch, None).await,
            TaskStatus::Pending,
            to,
            &format!("Cannot change status from 'pending' to '{to}'"),
        );
    }
    assert_eq!(f.get_task(&alice(), t.id).await?, t, "nothing applied");
    assert_eq!(actions(&f, t.id).await?, [AuditAction::Created]);
    Ok(())
}

/// A PATCH status move obeys the same policy as its action.
#[tokio::test]
async fn patch_status_obeys_policy() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    for (to, permission, verb) in [
        (TaskStatus::Completed, Permission::Complete, "complete"),
        (TaskStatus::Review, Permission::SubmitForReview, "submit"),
        (TaskStatus::Blocked, Permission::Block, "block"),
    ] {
        let patch = TaskPatch {
            status: Some(to),
            ..TaskPatch::default()
        };
        expect_forbidden(
            f.update_task(&bob(), t.id, &patch, None).await,
            permission,
            &format!("Only the assignee or an admin can {verb} this task"),
        );
    }
    let patch = TaskPatch {
        status: Some(TaskStatus::Review),
        ..TaskPatch::default()
    };
    assert_eq!(
        f.update_task(&alice(), t.id, &patch, None).await?.status,
        TaskStatus::Review
    );
    Ok(())
}

/// Unblocking through PATCH must name the status the table gives.
#[tokio::test]
async fn patch_status_unblock_target_must_match() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::Blocked).await?;
    let to_progress = TaskPatch {
        status: Some(TaskStatus::InProgress),
        ..TaskPatch::default()
    };
    expect_status_change(
        f.update_task(&alice(), t.id, &to_progress, None).await,
        TaskStatus::Blocked,
        TaskStatus::InProgress,
        "Cannot change status from 'blocked' to 'in_progress'",
    );
    let assign_and_unblock = TaskPatch {
        assigned_to: Some(Some("alice".into())),
        ..to_progress
    };
    let u = f
        .update_task(&alice(), t.id, &assign_and_unblock, None)
        .await?;
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(u.assigned_to.as_deref(), Some("alice"));
    Ok(())
}

/// Taking a task away from another user is for the assignee or an admin.
#[tokio::test]
async fn patch_reassign_policy() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    let to_bob = TaskPatch {
        assigned_to: Some(Some("bob".into())),
        ..TaskPatch::default()
    };
    expect_forbidden(
        f.update_task(&bob(), t.id, &to_bob, None).await,
        Permission::Reassign,
        "Only the assignee or an admin can reassign this task",
    );
    let u = f.update_task(&alice(), t.id, &to_bob, None).await?;
    assert_eq!(u.assigned_to.as_deref(), Some("bob"));
    let back = TaskPatch {
        assigned_to: Some(Some("alice".into())),
        ..TaskPatch::default()
    };
    assert_eq!(
        f.update_task(&root(), t.id, &back, None)
            .await?
            .assigned_to
            .as_deref(),
        Some("alice")
    );
    let free = task(&f, "unassigned").await?;
    assert_eq!(
        f.update_task(&bob(), free.id, &to_bob, None)
            .await?
            .assigned_to
            .as_deref(),
        Some("bob"),
        "anyone may assign an unassigned task"
    );
    Ok(())
}

/// A parent must exist and must not create a cycle; `null` moves a task to the top. In core,
/// parent 0 is a task like any other, and there is none.
#[tokio::test]
async fn patch_parent_checks() -> TestResult {
    let f = flow();
    let a = task(&f, "a").await?;
    let b = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(a.id),
                ..NewTask::titled("b")
            },
        )
        .await?;
    let c = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(b.id),
                ..NewTask::titled("c")
            },
        )
        .await?;
    let to = |p: Option<i64>| TaskPatch {
        parent_id: Some(p),
        ..TaskPatch::default()
    };
    for (id, parent) in [(a.id, a.id), (a.id, c.id), (a.id, b.id), (b.id, c.id)] {
        let e = expect_validation(
            f.update_task(&alice(), id, &to(Some(parent)), None).await,
            "parent_id",
        );
        assert_eq!(e.to_string(), "parent_id: would create a cycle");
    }
    for missing in [777, 0] {
        let e = expect_validation(
            f.update_task(&alice(), c.id, &to(Some(missing)), None)
                .await,
            "parent_id",
        );
        assert_eq!(
            e.to_string(),
            format!("parent_id: task {missing} not found")
        );
    }
    assert_eq!(
        actions(&f, c.id).await?,
        [AuditAction::Created],
        "refused re-parents write nothing"
    );
    let moved = f.update_task(&alice(), c.id, &to(Some(a.id)), None).await?;
    assert_eq!(moved.parent_id, Some(a.id));
    let top = f.update_task(&alice(), c.id, &to(None), None).await?;
    assert_eq!(top.parent_id, None);
    Ok(())
}
