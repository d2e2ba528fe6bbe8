//! Create and read: defaults, validation, parents and the `created` row.

use serde_json::json;
use taskflow_core::model::{ActorType, AuditFilter, Priority, TaskFilter};

use super::*;

/// A new task is pending, medium, 0 %, unassigned, at version 1, with equal timestamps in whole
/// microseconds.
#[tokio::test]
async fn create_applies_defaults() -> TestResult {
    let f = flow();
    let t = task(&f, "Write the docs").await?;
    assert!(t.id > 0);
    assert_eq!(t.title, "Write the docs");
    assert_eq!(t.description, None);
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.priority, Priority::Medium);
    assert_eq!(t.progress_percent, 0);
    assert_eq!(t.assigned_to, None);
    assert_eq!(t.project_slug, None);
    assert_eq!(t.parent_id, None);
    assert_eq!(t.version, 1);
    assert_eq!(t.created_at, t.updated_at);
    assert_eq!(
        t.created_at.timestamp_subsec_nanos() % 1_000,
        0,
        "timestamps are whole microseconds"
    );
    assert_eq!(f.get_task(&alice(), t.id).await?, t);
    Ok(())
}

/// Titles are stored trimmed.
#[tokio::test]
async fn create_trims_title() -> TestResult {
    let f = flow();
    let t = task(&f, "   padded  ").await?;
    assert_eq!(t.title, "padded");
    assert_eq!(f.get_task(&alice(), t.id).await?.title, "padded");
    Ok(())
}

/// A blank title is refused, and nothing is written.
#[tokio::test]
async fn create_rejects_blank_title() -> TestResult {
    let f = flow();
    expect_validation(
        f.create_task(&alice(), NewTask::titled("   ")).await,
        "title",
    );
    expect_validation(f.create_task(&alice(), NewTask::titled("")).await, "title");
    let all = f.list_tasks(&alice(), &TaskFilter::default()).await?;
    assert_eq!(all.total, 0);
    let log = f.list_audit(&alice(), &AuditFilter::default()).await?;
    assert_eq!(log.total, 0, "a refused create writes no audit row");
    Ok(())
}

/// 200 characters after trimming is the limit, counted in characters, not bytes.
#[tokio::test]
async fn create_enforces_title_length() -> TestResult {
    let f = flow();
    let longest = "ü".repeat(200);
    let t = f
        .create_task(&alice(), NewTask::titled(format!("  {longest}  ")))
        .await?;
    assert_eq!(t.title, longest);
    expect_validation(
        f.create_task(&alice(), NewTask::titled("x".repeat(201)))
            .await,
        "title",
    );
    Ok(())
}

/// Only `pending` and `blocked` are valid starting statuses.
#[tokio::test]
async fn create_refuses_other_statuses() -> TestResult {
    let f = flow();
    for status in statuses_except(&[TaskStatus::Pending, TaskStatus::Blocked]) {
        let new = NewTask {
            status: Some(status),
            ..NewTask::titled("t")
        };
        let e = expect_validation(f.create_task(&alice(), new).await, "status");
        assert_eq!(
            e.to_string(),
            "status: a new task starts as 'pending' or 'blocked'"
        );
    }
    Ok(())
}

/// A task may be created blocked, assigned and with progress.
#[tokio::test]
async fn create_may_start_blocked() -> TestResult {
    let f = flow();
    let new = NewTask {
        status: Some(TaskStatus::Blocked),
        assigned_to: Some("bob".into()),
        progress_percent: Some(40),
        priority: Some(Priority::Critical),
        description: Some("waiting on infra".into()),
        project_slug: Some("infra".into()),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await?;
    assert_eq!(t.status, TaskStatus::Blocked);
    assert_eq!(t.assigned_to.as_deref(), Some("bob"));
    assert_eq!(t.progress_percent, 40);
    assert_eq!(t.priority, Priority::Critical);
    assert_eq!(t.description.as_deref(), Some("waiting on infra"));
    assert_eq!(t.project_slug.as_deref(), Some("infra"));
    Ok(())
}

/// `progress_percent` must be 0..=100.
#[tokio::test]
async fn create_checks_progress_percent() -> TestResult {
    let f = flow();
    for bad in [-1, 101, i32::MIN, i32::MAX] {
        let new = NewTask {
            progress_percent: Some(bad),
            ..NewTask::titled("t")
        };
        expect_validation(f.create_task(&alice(), new).await, "progress_percent");
    }
    let new = NewTask {
        progress_percent: Some(100),
        ..NewTask::titled("t")
    };
    assert_eq!(f.create_task(&alice(), new).await?.progress_percent, 100);
    Ok(())
}

/// A parent must exist: `parent_id: task <id> not found`.
#[tokio::test]
async fn create_checks_parent_exists() -> TestResult {
    let f = flow();
    for missing in [999, -5] {
        let new = NewTask {
            parent_id: Some(missing),
            ..NewTask::titled("child")
        };
        let e = expect_validation(f.create_task(&alice(), new).await, "parent_id");
        assert_eq!(
            e.to_string(),
            format!("parent_id: task {missing} not found")
        );
    }
    let parent = task(&f, "parent").await?;
    let new = NewTask {
        parent_id: Some(parent.id),
        ..NewTask::titled("child")
    };
    assert_eq!(
        f.create_task(&alice(), new).await?.parent_id,
        Some(parent.id)
    );
    Ok(())
}

/// In core, `parent_id` 0 is a parent like any other, and no task 0 exists: the create is
/// refused and writes nothing. (Reading 0 as "no parent" is an HTTP input quirk, kept by the
/// HTTP crate.)
#[tokio::test]
async fn create_refuses_parent_zero_as_missing() -> TestResult {
    let f = flow();
    let new = NewTask {
        parent_id: Some(0),
        ..NewTask::titled("t")
    };
    let e = expect_validation(f.create_task(&alice(), new).await, "parent_id");
    assert_eq!(e.to_string(), "parent_id: task 0 not found");
    assert_eq!(
        f.list_tasks(&alice(), &TaskFilter::default()).await?.total,
        0
    );
    assert_eq!(
        f.list_audit(&alice(), &AuditFilter::default()).await?.total,
        0
    );
    Ok(())
}

/// Create writes exactly one `created` row holding the task's fields.
#[tokio::test]
async fn create_writes_one_audit_row() -> TestResult {
    let f = flow();
    let new = NewTask {
        project_slug: Some("docs".into()),
        priority: Some(Priority::High),
        ..NewTask::titled(" Write ")
    };
    let t = f.create_task(&alice(), new).await?;
    let rows = audit(&f, t.id).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.id > 0);
    assert_eq!(row.task_id, t.id);
    assert_eq!(row.action, AuditAction::Created);
    assert_eq!(row.action.as_str(), "created");
    assert_eq!(row.actor_id, "alice");
    assert_eq!(row.actor_type, ActorType::Human);
    assert_eq!(row.project_slug.as_deref(), Some("docs"));
    assert_eq!(row.timestamp, t.created_at);
    assert_eq!(
        row.context,
        Some(json!({
            "title": "Write",
            "description": null,
            "status": "pending",
            "priority": "high",
            "progress_percent": 0,
            "assigned_to": null,
            "project_slug": "docs",
            "parent_id": null,
        }))
    );
    Ok(())
}

/// A missing task is `Task not found`, including ids of 0 and below.
#[tokio::test]
async fn get_missing_task_is_not_found() -> TestResult {
    let f = flow();
    for id in [1, 0, -1, i64::MAX, i64::MIN] {
        expect_task_not_found(f.get_task(&alice(), id).await, id);
    }
    Ok(())
}
