//! The audit trail through the service: filters, paging, unknown tasks, and what each row keeps.

use taskflow_core::model::{
    ActorType, AuditEntry, AuditFilter, Page, Paging, TaskPatch, WorkerType,
};

use super::*;

async fn query(f: &TaskFlow, filter: AuditFilter) -> Result<Page<AuditEntry>> {
    f.list_audit(&alice(), &filter).await
}

/// Audit filters by task, actor, action (free text) and project, oldest first, with totals.
#[tokio::test]
async fn audit_filters_and_pagination() -> TestResult {
    let f = flow();
    let web = NewTask {
        project_slug: Some("web".into()),
        ..NewTask::titled("w")
    };
    let t1 = f.create_task(&alice(), web).await?;
    let t2 = task(&f, "other").await?;
    f.start(&bob(), t1.id, None).await?;
    f.start(&alice(), t2.id, None).await?;
    f.progress(&bob(), t1.id, 50, None, None).await?;

    let all = query(&f, AuditFilter::default()).await?;
    assert_eq!(all.total, 5);
    let ids: Vec<i64> = all.items.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first");

    let by_task = query(
        &f,
        AuditFilter {
            task_id: Some(t1.id),
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(
        by_task
            .items
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["created", "started", "progressed"]
    );
    let by_actor = query(
        &f,
        AuditFilter {
            actor_id: Some("bob".into()),
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(by_actor.total, 2);
    let by_action = query(
        &f,
        AuditFilter {
            action: Some("started".into()),
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(by_action.total, 2);
    assert!(
        by_action
            .items
            .iter()
            .all(|e| e.action == AuditAction::Started)
    );
    let unknown_action = query(
        &f,
        AuditFilter {
            action: Some("no such action".into()),
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(unknown_action.total, 0);
    let by_project = query(
        &f,
        AuditFilter {
            project: Some("web".into()),
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(by_project.total, 3);
    let page = query(
        &f,
        AuditFilter {
            paging: Paging::new(Some(2), Some(1))?,
            ..AuditFilter::default()
        },
    )
    .await?;
    assert_eq!(page.total, 5);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[1..3]
    );
    Ok(())
}

/// The audit trail of a task that never existed is empty, not an error.
#[tokio::test]
async fn audit_of_unknown_task_is_empty() -> TestResult {
    let f = flow();
    assert!(audit(&f, 123_456).await?.is_empty());
    Ok(())
}

/// An id of 0 or below names no task that could ever have existed: `Task not found`.
#[tokio::test]
async fn audit_of_id_zero_or_below_is_not_found() -> TestResult {
    let f = flow();
    task(&f, "t").await?;
    for id in [0, -1, i64::MIN] {
        expect_task_not_found(f.task_audit(&alice(), id).await, id);
    }
    Ok(())
}

/// Each row keeps the task's project as it was after that change.
#[tokio::test]
async fn audit_keeps_project_after_change() -> TestResult {
    let f = flow();
    let new = NewTask {
        project_slug: Some("old".into()),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await?;
    let patch = TaskPatch {
        project_slug: Some(Some("new".into())),
        ..TaskPatch::default()
    };
    f.update_task(&alice(), t.id, &patch, None).await?;
    let projects: Vec<_> = audit(&f, t.id)
        .await?
        .into_iter()
        .map(|r| r.project_slug)
        .collect();
    assert_eq!(projects, [Some("old".to_owned()), Some("new".to_owned())]);
    Ok(())
}

/// A row keeps the actor type it was written with, even after the worker changes.
#[tokio::test]
async fn audit_keeps_actor_type_as_written() -> TestResult {
    let f = flow();
    f.put_worker(&root(), "bot", WorkerType::Agent, None)
        .await?;
    let bot = Identity::user("bot");
    let t = f.create_task(&bot, NewTask::titled("t")).await?;
    f.put_worker(&root(), "bot", WorkerType::Human, None)
        .await?;
    f.start(&bot, t.id, None).await?;
    let types: Vec<_> = audit(&f, t.id)
        .await?
        .into_iter()
        .map(|r| r.actor_type)
        .collect();
    assert_eq!(types, [ActorType::Agent, ActorType::Human]);
    Ok(())
}
