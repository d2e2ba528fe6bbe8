//! The live feed ([`crate::events`]) over a real store: the horizon and range reads of the
//! store contract, replay and resume, filters, deletes, and the whole feed under concurrent
//! writers, where rows may commit out of id order.

use std::time::Duration;

use super::TestResult;
use crate::events::{Event, EventFilter, FeedFilter, Subscription};
use crate::model::{AuditAction, AuditFilter, Identity, NewTask, Paging, Precondition};
use crate::{DynStore, TaskFlow};

fn alice() -> Identity {
    Identity::user("alice")
}

/// How long a case waits for an event that must come.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The next event, or a failure naming what was awaited.
async fn next(sub: &mut Subscription, what: &str) -> Result<Event, String> {
    match tokio::time::timeout(EVENT_WAIT, sub.next()).await {
        Ok(Ok(event)) => Ok(event),
        Ok(Err(err)) => Err(format!("{what}: the feed failed: {err}")),
        Err(_) => Err(format!("{what}: no event within {EVENT_WAIT:?}")),
    }
}

/// Every audit row id in the store, oldest first.
async fn all_audit_ids(flow: &TaskFlow) -> crate::Result<Vec<i64>> {
    let mut ids = Vec::new();
    loop {
        let page = flow
            .list_audit(
                &alice(),
                &AuditFilter {
                    paging: Paging::new(Some(100), Some(ids.len() as i64))?,
                    ..AuditFilter::default()
                },
            )
            .await?;
        if page.items.is_empty() {
            return Ok(ids);
        }
        ids.extend(page.items.iter().map(|row| row.id));
    }
}

fn in_project(title: &str, project: &str) -> NewTask {
    NewTask {
        project_slug: Some(project.to_owned()),
        ..NewTask::titled(title)
    }
}

/// The horizon is 0 on an empty store and covers every committed row; `audit_after` reads a
/// half-open range, filters by task and project, and honours the limit.
pub async fn horizon_and_range_reads(store: DynStore) -> TestResult {
    assert_eq!(store.audit_horizon().await?, 0, "an empty trail");
    let flow = TaskFlow::new(store.clone());
    let a = flow.create_task(&alice(), in_project("a", "web")).await?;
    let b = flow.create_task(&alice(), in_project("b", "api")).await?;
    flow.start(&alice(), a.id, None).await?;
    let ids = all_audit_ids(&flow).await?;
    assert_eq!(ids.len(), 3);
    let horizon = store.audit_horizon().await?;
    assert_eq!(
        horizon, ids[2],
        "every row is committed: the horizon is the last id"
    );

    let all = store
        .audit_after(0, horizon, &FeedFilter::default(), 100)
        .await?;
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    let tail = store
        .audit_after(ids[0], horizon, &FeedFilter::default(), 100)
        .await?;
    assert_eq!(
        tail.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[1..],
        "after is exclusive"
    );
    let head = store
        .audit_after(0, ids[1], &FeedFilter::default(), 100)
        .await?;
    assert_eq!(
        head.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[..2],
        "upto is inclusive"
    );
    let limited = store
        .audit_after(0, horizon, &FeedFilter::default(), 1)
        .await?;
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].id, ids[0]);

    let of_a = FeedFilter {
        task_id: Some(a.id),
        project: None,
    };
    let rows = store.audit_after(0, horizon, &of_a, 100).await?;
    assert_eq!(
        rows.iter().map(|r| r.action).collect::<Vec<_>>(),
        [AuditAction::Created, AuditAction::Started]
    );
    let in_api = FeedFilter {
        task_id: None,
        project: Some("api".into()),
    };
    let rows = store.audit_after(0, horizon, &in_api, 100).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].task_id, b.id);
    let both = FeedFilter {
        task_id: Some(a.id),
        project: Some("api".into()),
    };
    assert!(store.audit_after(0, horizon, &both, 100).await?.is_empty());
    Ok(())
}

/// A subscription replays what is there, then follows new writes with the task as it is now;
/// one that starts after an id resumes there; a deleted task comes with no task.
pub async fn replay_then_live_then_resume(store: DynStore) -> TestResult {
    let flow = TaskFlow::new(store);
    let a = flow.create_task(&alice(), NewTask::titled("a")).await?;
    flow.start(&alice(), a.id, None).await?;

    let mut sub = flow.subscribe(&alice(), EventFilter::default()).await?;
    let created = next(&mut sub, "the replayed created row").await?;
    assert_eq!(created.audit.action, AuditAction::Created);
    let task = created.task.ok_or("the task exists")?;
    assert_eq!(task.id, a.id);
    let started = next(&mut sub, "the replayed started row").await?;
    assert_eq!(started.audit.action, AuditAction::Started);
    assert!(started.audit.id > created.audit.id);

    // Live: written after the subscription caught up.
    let b = flow.create_task(&alice(), NewTask::titled("b")).await?;
    let live = next(&mut sub, "a live created row").await?;
    assert_eq!(live.audit.action, AuditAction::Created);
    assert_eq!(live.task.as_ref().map(|t| t.id), Some(b.id));
    flow.delete_task(&Identity::admin("root"), b.id, Precondition::Any)
        .await?;
    let deleted = next(&mut sub, "a live deleted row").await?;
    assert_eq!(deleted.audit.action, AuditAction::Deleted);
    assert_eq!(deleted.audit.task_id, b.id);
    assert!(deleted.task.is_none(), "a deleted task comes as no task");

    // Resume after the started row: the rest, and nothing before it.
    let mut resumed = flow
        .subscribe(
            &alice(),
            EventFilter {
                after: started.audit.id,
                ..EventFilter::default()
            },
        )
        .await?;
    let first = next(&mut resumed, "the first row after the resume point").await?;
    assert_eq!(first.audit.id, live.audit.id);
    let second = next(&mut resumed, "the second row after the resume point").await?;
    assert_eq!(second.audit.id, deleted.audit.id);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), resumed.next())
            .await
            .is_err(),
        "nothing more was written"
    );
    Ok(())
}

/// Filters by task and by project apply to replay and to live rows alike.
pub async fn filters_apply_to_replay_and_live_rows(store: DynStore) -> TestResult {
    let flow = TaskFlow::new(store);
    let web = flow.create_task(&alice(), in_project("w", "web")).await?;
    flow.create_task(&alice(), in_project("x", "api")).await?;
    let mut by_project = flow
        .subscribe(
            &alice(),
            EventFilter {
                after: 0,
                feed: FeedFilter {
                    task_id: None,
                    project: Some("web".into()),
                },
            },
        )
        .await?;
    let mut by_task = flow
        .subscribe(
            &alice(),
            EventFilter {
                after: 0,
                feed: FeedFilter {
                    task_id: Some(web.id),
                    project: None,
                },
            },
        )
        .await?;
    flow.create_task(&alice(), in_project("y", "api")).await?;
    flow.start(&alice(), web.id, None).await?;
    let web2 = flow.create_task(&alice(), in_project("z", "web")).await?;

    let mut seen = Vec::new();
    for what in ["web created", "web started", "web2 created"] {
        let e = next(&mut by_project, what).await?;
        seen.push((e.audit.task_id, e.audit.action));
    }
    assert_eq!(
        seen,
        [
            (web.id, AuditAction::Created),
            (web.id, AuditAction::Started),
            (web2.id, AuditAction::Created)
        ]
    );
    let mut seen = Vec::new();
    for what in ["created", "started"] {
        let e = next(&mut by_task, what).await?;
        seen.push((e.audit.task_id, e.audit.action));
    }
    assert_eq!(
        seen,
        [
            (web.id, AuditAction::Created),
            (web.id, AuditAction::Started)
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), by_task.next())
            .await
            .is_err(),
        "no other task's rows"
    );
    Ok(())
}

/// Eight writers create and move tasks at once while a subscriber follows: it receives every
/// audit row exactly once, in id order, with none skipped. On a store whose rows can commit
/// out of id order, a feed that read past an uncommitted id would miss it here.
pub async fn concurrent_writers_lose_and_repeat_nothing(store: DynStore) -> TestResult {
    const WRITERS: usize = 8;
    const TASKS_EACH: usize = 15;
    let flow = TaskFlow::new(store);
    let mut sub = flow.subscribe(&alice(), EventFilter::default()).await?;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        // Each task gives two rows: created and started.
        while ids.len() < WRITERS * TASKS_EACH * 2 {
            match next(&mut sub, "a row written by a concurrent writer").await {
                Ok(e) => ids.push(e.audit.id),
                Err(err) => return Err(format!("{err} (after {} events)", ids.len())),
            }
        }
        Ok(ids)
    });
    let writers: Vec<tokio::task::JoinHandle<crate::Result<()>>> = (0..WRITERS)
        .map(|w| {
            let flow = flow.clone();
            tokio::spawn(async move {
                let who = Identity::user(format!("writer-{w}"));
                for i in 0..TASKS_EACH {
                    let t = flow
                        .create_task(&who, NewTask::titled(format!("w{w}-{i}")))
                        .await?;
                    flow.start(&who, t.id, None).await?;
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let received = reader.await??;
    let stored = all_audit_ids(&flow).await?;
    assert_eq!(stored.len(), WRITERS * TASKS_EACH * 2);
    assert_eq!(
        received, stored,
        "every row exactly once, in id order (received vs stored)"
    );
    Ok(())
}
