//! Delete through the service: admin only, refused with subtasks, audit rows stay.

use serde_json::json;
use taskflow_core::model::AuditFilter;

use super::*;

/// Only admins delete; the policy is checked before the version.
#[tokio::test]
async fn delete_is_admin_only() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    expect_forbidden(
        f.delete_task(&alice(), t.id, None).await,
        Permission::Delete,
        "Admin role required",
    );
    expect_forbidden(
        f.delete_task(&alice(), t.id, Some(99)).await,
        Permission::Delete,
        "Admin role required",
    );
    assert_eq!(f.get_task(&alice(), t.id).await?, t);
    assert_eq!(actions(&f, t.id).await?, [AuditAction::Created]);
    f.delete_task(&root(), t.id, None).await?;
    expect_task_not_found(f.get_task(&alice(), t.id).await, t.id);
    Ok(())
}

/// A task with subtasks cannot be deleted until they are gone; the version is checked first.
#[tokio::test]
async fn delete_refused_with_subtasks() -> TestResult {
    let f = flow();
    let parent = task(&f, "parent").await?;
    let child = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(parent.id),
                ..NewTask::titled("child")
            },
        )
        .await?;
    let e = refused(f.delete_task(&root(), parent.id, None).await);
    assert!(matches!(e, Error::HasSubtasks), "{e:?}");
    assert_eq!(e.to_string(), "Task has subtasks");
    expect_mismatch(f.delete_task(&root(), parent.id, Some(7)).await, 1);
    assert_eq!(actions(&f, parent.id).await?, [AuditAction::Created]);
    f.delete_task(&root(), child.id, None).await?;
    f.delete_task(&root(), parent.id, None).await?;
    Ok(())
}

/// After a delete, the task's audit rows stay, including the `deleted` row, whose context is
/// `{title}`.
#[tokio::test]
async fn delete_keeps_audit_trail() -> TestResult {
    let f = flow();
    let new = NewTask {
        project_slug: Some("p".into()),
        ..NewTask::titled("doomed")
    };
    let t = f.create_task(&alice(), new).await?;
    f.start(&alice(), t.id, None).await?;
    f.delete_task(&root(), t.id, None).await?;
    let rows = audit(&f, t.id).await?;
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["created", "started", "deleted"]
    );
    let deleted = &rows[2];
    assert_eq!(deleted.action, AuditAction::Deleted);
    assert_eq!(deleted.actor_id, "root");
    assert_eq!(deleted.project_slug.as_deref(), Some("p"));
    assert_eq!(deleted.task_id, t.id);
    assert_eq!(deleted.context, Some(json!({"title": "doomed"})));
    let filter = AuditFilter {
        task_id: Some(t.id),
        ..AuditFilter::default()
    };
    assert_eq!(f.list_audit(&alice(), &filter).await?.total, 3);
    Ok(())
}

/// Delete honours an expected version.
#[tokio::test]
async fn delete_honours_expected_version() -> TestResult {
    let f = flow();
    let t = task(&f, "t").await?;
    f.start(&alice(), t.id, None).await?;
    expect_mismatch(f.delete_task(&root(), t.id, Some(1)).await, 2);
    f.delete_task(&root(), t.id, Some(2)).await?;
    expect_task_not_found(f.get_task(&alice(), t.id).await, t.id);
    Ok(())
}
