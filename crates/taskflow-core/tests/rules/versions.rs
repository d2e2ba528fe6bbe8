//! Versions and preconditions (`Any`, one version, `OneOf`), and writes to missing tasks.

use taskflow_core::model::{Precondition, TaskPatch};

use super::*;

fn retitle(title: &str) -> TaskPatch {
    TaskPatch {
        title: Some(title.into()),
        ..TaskPatch::default()
    }
}

/// Every change bumps the version by exactly one; no change, no bump.
#[tokio::test]
async fn version_increments_on_every_change() -> TestResult {
    let f = flow();
    let a = alice();
    let t = task(&f, "t").await?;
    assert_eq!(t.version, 1);
    let t = f.start(&a, t.id, None).await?;
    assert_eq!(t.version, 2);
    let t = f.progress(&a, t.id, 5, None, None).await?;
    assert_eq!(t.version, 3);
    let patch = retitle("x");
    let t = f.update_task(&a, t.id, &patch, None).await?;
    assert_eq!(t.version, 4);
    let t = f.update_task(&a, t.id, &patch, None).await?;
    assert_eq!(t.version, 4, "no change, no bump");
    assert_eq!(audit(&f, t.id).await?.len(), 4);
    Ok(())
}

/// An expected version that no longer matches is a conflict carrying the current version; the
/// lifecycle and the policy are checked before it.
#[tokio::test]
async fn stale_version_is_a_conflict() -> TestResult {
    let f = flow();
    let a = alice();
    let t = task(&f, "t").await?;
    let started = f.start(&a, t.id, Some(1)).await?;
    assert_eq!(started.version, 2);
    expect_mismatch(f.update_task(&a, t.id, &retitle("late"), Some(1)).await, 2);
    expect_mismatch(f.progress(&a, t.id, 5, None, Some(1)).await, 2);
    expect_mismatch(f.complete(&a, t.id, Some(7)).await, 2);
    expect_mismatch(f.delete_task(&root(), t.id, Some(1)).await, 2);
    let e = refused(f.complete(&a, t.id, Precondition::Version(1)).await);
    assert_eq!(e.to_string(), "Version mismatch: task is at version 2");
    assert_eq!(f.get_task(&a, t.id).await?, started);
    assert_eq!(
        actions(&f, t.id).await?,
        [AuditAction::Created, AuditAction::Started]
    );
    // The lifecycle and policy are checked before the version.
    expect_invalid(
        f.start(&a, t.id, Some(1)).await,
        Move::Start,
        TaskStatus::InProgress,
        "Cannot start task with status 'in_progress'",
    );
    expect_forbidden(
        f.complete(&bob(), t.id, Some(1)).await,
        Permission::Complete,
        "Only the assignee or an admin can complete this task",
    );
    Ok(())
}

/// A stale version is refused even when the patch would change nothing.
#[tokio::test]
async fn stale_version_on_no_op_patch_is_a_conflict() -> TestResult {
    let f = flow();
    let t = task_in(&f, TaskStatus::InProgress).await?;
    expect_mismatch(
        f.update_task(&alice(), t.id, &TaskPatch::default(), Some(1))
            .await,
        2,
    );
    expect_mismatch(
        f.update_task(
            &alice(),
            t.id,
            &TaskPatch::default(),
            Precondition::OneOf(vec![]),
        )
        .await,
        2,
    );
    let same = f
        .update_task(&alice(), t.id, &TaskPatch::default(), Some(2))
        .await?;
    assert_eq!(same, t);
    Ok(())
}

/// `OneOf` holds when the task is at any listed version (an empty list matches nothing), and
/// `Any` always holds; updates, moves and deletes honour them alike.
#[tokio::test]
async fn one_of_precondition_accepts_any_listed_version() -> TestResult {
    let f = flow();
    let a = alice();
    let t = task(&f, "t").await?;
    let started = f.start(&a, t.id, Precondition::OneOf(vec![5, 1])).await?;
    assert_eq!(started.version, 2);
    expect_mismatch(
        f.update_task(&a, t.id, &retitle("miss"), Precondition::OneOf(vec![1, 3]))
            .await,
        2,
    );
    expect_mismatch(
        f.update_task(&a, t.id, &retitle("empty"), Precondition::OneOf(vec![]))
            .await,
        2,
    );
    expect_mismatch(
        f.progress(&a, t.id, 10, None, Precondition::OneOf(vec![3]))
            .await,
        2,
    );
    let renamed = f
        .update_task(&a, t.id, &retitle("hit"), Precondition::OneOf(vec![2, 3]))
        .await?;
    assert_eq!((renamed.title.as_str(), renamed.version), ("hit", 3));
    let progressed = f.progress(&a, t.id, 20, None, Precondition::Any).await?;
    assert_eq!(progressed.version, 4);
    expect_mismatch(
        f.delete_task(&root(), t.id, Precondition::OneOf(vec![1, 2, 3]))
            .await,
        4,
    );
    f.delete_task(&root(), t.id, Precondition::OneOf(vec![4]))
        .await?;
    expect_task_not_found(f.get_task(&a, t.id).await, t.id);
    assert_eq!(
        actions(&f, t.id).await?,
        [
            AuditAction::Created,
            AuditAction::Started,
            AuditAction::Updated,
            AuditAction::Progressed,
            AuditAction::Deleted
        ],
        "refused writes left no rows"
    );
    Ok(())
}

/// Every write to a missing task is `Task not found`, before any lifecycle, policy or version
/// check.
#[tokio::test]
async fn writes_to_missing_task_are_not_found() -> TestResult {
    let f = flow();
    let a = root();
    let id = 31_337;
    expect_task_not_found(f.start(&a, id, None).await, id);
    expect_task_not_found(f.progress(&a, id, 10, None, None).await, id);
    expect_task_not_found(f.submit_for_review(&a, id, None).await, id);
    expect_task_not_found(f.request_changes(&a, id, None).await, id);
    expect_task_not_found(f.complete(&a, id, Some(1)).await, id);
    expect_task_not_found(f.block(&a, id, None, None).await, id);
    expect_task_not_found(f.unblock(&a, id, None).await, id);
    expect_task_not_found(f.update_task(&a, id, &TaskPatch::default(), None).await, id);
    expect_task_not_found(
        f.update_task(&a, id, &retitle("x"), Precondition::OneOf(vec![]))
            .await,
        id,
    );
    expect_task_not_found(f.delete_task(&a, id, None).await, id);
    expect_task_not_found(f.delete_task(&alice(), id, None).await, id);
    Ok(())
}
