//! The store contract, tested on [`Store`](crate::Store) itself. Each case gets a fresh, empty store.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use futures::future::join_all;
use serde_json::json;
use tokio::sync::Barrier;

use super::TestResult;
use crate::Error;
use crate::model::{
    ActorType, AuditAction, AuditDraft, AuditFilter, Paging, Priority, Task, TaskDraft, TaskFilter,
    TaskStatus, Worker, WorkerType, now,
};
use crate::store::{Conflict, DynStore, Invariant, TaskWrite, Written};

/// A pending task draft with this title.
pub fn draft(title: &str) -> TaskDraft {
    let at = now();
    TaskDraft {
        title: title.to_owned(),
        description: None,
        status: TaskStatus::Pending,
        priority: Priority::Medium,
        progress_percent: 0,
        assigned_to: None,
        project_slug: None,
        parent_id: None,
        created_at: at,
        updated_at: at,
        version: 1,
        fence: 0,
    }
}

/// An audit row by `alice` (human) recording `action`.
pub fn row(action: AuditAction) -> AuditDraft {
    AuditDraft {
        project_slug: None,
        actor_id: "alice".to_owned(),
        actor_type: ActorType::Human,
        action,
        context: None,
        timestamp: now(),
        outcome: None,
    }
}

/// Inserts `task`, which must be written.
pub async fn insert(store: &DynStore, task: TaskDraft) -> Result<Task, Error> {
    match store.insert_task(&task, &row(AuditAction::Created)).await? {
        Written::Done(task) => Ok(task),
        other => panic!("insert of {:?} was not written: {other:?}", task.title),
    }
}

/// The write that changes `task` into `next`, expecting `task`'s version.
fn update(task: &Task, edit: impl FnOnce(&mut Task)) -> TaskWrite {
    let mut next = task.clone();
    edit(&mut next);
    next.version = task.version + 1;
    next.updated_at = now();
    TaskWrite {
        task: next,
        expected_version: task.version,
        expected_lease_expires_at: task.lease_expires_at,
        audit: row(AuditAction::Updated),
        invariants: Vec::new(),
    }
}

async fn audit_count(store: &DynStore) -> Result<u64, Error> {
    Ok(store.list_audit(&AuditFilter::default()).await?.total)
}

async fn task_count(store: &DynStore) -> Result<u64, Error> {
    Ok(store.list_tasks(&TaskFilter::default()).await?.total)
}

/// A page of `limit` rows from `offset`.
fn paging(limit: i64, offset: i64) -> Paging {
    Paging::new(Some(limit), Some(offset)).expect("valid paging")
}

// ---------------------------------------------------------------------------------------------
// Insert

/// An insert assigns a positive id, stores the draft as given, and writes its `created` row
/// about the new task in the same step.
pub async fn insert_assigns_ids_and_writes_the_created_row(store: DynStore) -> TestResult {
    let mut d = draft("first");
    d.description = Some("with a description".into());
    d.priority = Priority::High;
    d.assigned_to = Some("bob".into());
    d.project_slug = Some("p".into());
    d.progress_percent = 10;
    let mut audit = row(AuditAction::Created);
    audit.project_slug = Some("p".into());
    audit.context = Some(json!({"title": "first"}));
    let Written::Done(t) = store.insert_task(&d, &audit).await? else {
        panic!("the insert was not written");
    };
    assert!(t.id > 0);
    assert_eq!(t, d.clone().into_task(t.id));
    assert_eq!(store.get_task(t.id).await?, Some(t.clone()));

    let rows = store.task_audit(t.id).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0], audit.into_entry(rows[0].id, t.id));
    assert!(rows[0].id > 0);

    let second = insert(&store, draft("second")).await?;
    assert!(second.id > t.id, "ids grow: {} then {}", t.id, second.id);
    Ok(())
}

/// An insert under a parent that does not exist is refused, and writes nothing.
pub async fn insert_refuses_a_missing_parent(store: DynStore) -> TestResult {
    let mut d = draft("orphan");
    d.parent_id = Some(4242);
    let written = store.insert_task(&d, &row(AuditAction::Created)).await?;
    assert_eq!(
        written,
        Written::Refused(Conflict::ParentMissing { parent: 4242 })
    );
    assert_eq!(task_count(&store).await?, 0);
    assert_eq!(audit_count(&store).await?, 0);

    let parent = insert(&store, draft("parent")).await?;
    let mut d = draft("child");
    d.parent_id = Some(parent.id);
    let child = insert(&store, d).await?;
    assert_eq!(child.parent_id, Some(parent.id));
    Ok(())
}

/// Task ids and audit ids are never handed out twice, not even after a delete.
pub async fn ids_are_never_reused(store: DynStore) -> TestResult {
    let a = insert(&store, draft("a")).await?;
    let b = insert(&store, draft("b")).await?;
    let gone = store
        .delete_task(b.id, b.version, &row(AuditAction::Deleted))
        .await?;
    assert_eq!(gone, Written::Done(()));
    let c = insert(&store, draft("c")).await?;
    assert!(c.id > b.id, "id {} came back as {}", b.id, c.id);
    assert_ne!(c.id, a.id);

    let rows = store.list_audit(&AuditFilter::default()).await?.items;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "audit ids are distinct and ascending");
    assert_eq!(ids.len(), 4);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Update

/// An update happens only at the expected version; a stale one (or one of a missing task)
/// writes nothing at all, not even its audit row.
pub async fn update_is_compare_and_set(store: DynStore) -> TestResult {
    let t = insert(&store, draft("t")).await?;
    let write = update(&t, |n| {
        n.title = "renamed".into();
        n.status = TaskStatus::InProgress;
        n.assigned_to = Some("alice".into());
        n.progress_percent = 40;
    });
    assert_eq!(store.update_task(&write).await?, Written::Done(()));
    let stored = store.get_task(t.id).await?.expect("still there");
    assert_eq!(stored, write.task);
    assert_eq!(stored.version, 2);
    assert_eq!(store.task_audit(t.id).await?.len(), 2);

    // The same write again expects version 1, which is gone.
    let before = audit_count(&store).await?;
    assert_eq!(store.update_task(&write).await?, Written::Stale);
    let stale = update(&t, |n| n.title = "lost".into());
    assert_eq!(store.update_task(&stale).await?, Written::Stale);
    assert_eq!(store.get_task(t.id).await?, Some(stored));
    assert_eq!(
        audit_count(&store).await?,
        before,
        "a lost write has no audit row"
    );

    let mut missing = update(&t, |n| n.title = "x".into());
    missing.task.id = 9999;
    assert_eq!(store.update_task(&missing).await?, Written::Stale);
    assert_eq!(store.get_task(9999).await?, None);
    assert_eq!(audit_count(&store).await?, before);
    Ok(())
}

/// `created_at` never changes, whatever an update carries.
pub async fn update_keeps_created_at(store: DynStore) -> TestResult {
    let t = insert(&store, draft("t")).await?;
    let write = update(&t, |n| n.created_at -= Duration::days(3));
    assert_eq!(store.update_task(&write).await?, Written::Done(()));
    let stored = store.get_task(t.id).await?.expect("still there");
    assert_eq!(stored.created_at, t.created_at);
    assert_eq!(stored.updated_at, write.task.updated_at);
    Ok(())
}

/// An update to a parent that does not exist is refused, and writes nothing.
pub async fn update_refuses_a_missing_parent(store: DynStore) -> TestResult {
    let t = insert(&store, draft("t")).await?;
    let write = update(&t, |n| n.parent_id = Some(777));
    assert_eq!(
        store.update_task(&write).await?,
        Written::Refused(Conflict::ParentMissing { parent: 777 })
    );
    assert_eq!(store.get_task(t.id).await?, Some(t.clone()));
    assert_eq!(store.task_audit(t.id).await?.len(), 1);
    Ok(())
}

/// [`Invariant::AcyclicParent`] is checked by the store: a parent chain that leads back to the
/// task is refused, and nothing is written.
pub async fn update_checks_the_parent_cycle_inside_the_write(store: DynStore) -> TestResult {
    // a <- b <- c
    let a = insert(&store, draft("a")).await?;
    let mut d = draft("b");
    d.parent_id = Some(a.id);
    let b = insert(&store, d).await?;
    let mut d = draft("c");
    d.parent_id = Some(b.id);
    let c = insert(&store, d).await?;

    for (task, parent) in [(&a, c.id), (&a, b.id), (&b, c.id), (&a, a.id)] {
        let mut write = update(task, |n| n.parent_id = Some(parent));
        write.invariants = vec![Invariant::AcyclicParent {
            task: task.id,
            parent,
        }];
        assert_eq!(
            store.update_task(&write).await?,
            Written::Refused(Conflict::ParentCycle { parent }),
            "{} under {parent}",
            task.title
        );
    }
    assert_eq!(
        audit_count(&store).await?,
        3,
        "refused writes wrote nothing"
    );

    // Moving c under a is fine.
    let mut write = update(&c, |n| n.parent_id = Some(a.id));
    write.invariants = vec![Invariant::AcyclicParent {
        task: c.id,
        parent: a.id,
    }];
    assert_eq!(store.update_task(&write).await?, Written::Done(()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Delete

/// A delete happens only at the expected version; the task's audit rows stay, with the
/// delete's own row last.
pub async fn delete_is_compare_and_set_and_keeps_the_audit_trail(store: DynStore) -> TestResult {
    let t = insert(&store, draft("t")).await?;
    let write = update(&t, |n| n.title = "t2".into());
    assert_eq!(store.update_task(&write).await?, Written::Done(()));

    let deleted = row(AuditAction::Deleted);
    assert_eq!(store.delete_task(t.id, 1, &deleted).await?, Written::Stale);
    assert!(store.get_task(t.id).await?.is_some());
    assert_eq!(store.task_audit(t.id).await?.len(), 2);

    assert_eq!(
        store.delete_task(t.id, 2, &deleted).await?,
        Written::Done(())
    );
    assert_eq!(store.get_task(t.id).await?, None);
    let actions: Vec<AuditAction> = store
        .task_audit(t.id)
        .await?
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            AuditAction::Created,
            AuditAction::Updated,
            AuditAction::Deleted
        ]
    );
    assert_eq!(store.delete_task(t.id, 2, &deleted).await?, Written::Stale);
    assert_eq!(store.task_audit(t.id).await?.len(), 3);
    Ok(())
}

/// Delete checks the version first, then subtasks: a stale delete of a parent is `Stale`, a
/// current one is refused for its subtasks. Neither writes anything.
pub async fn delete_checks_the_version_before_subtasks(store: DynStore) -> TestResult {
    let parent = insert(&store, draft("parent")).await?;
    let mut d = draft("child");
    d.parent_id = Some(parent.id);
    let child = insert(&store, d).await?;
    let deleted = row(AuditAction::Deleted);

    assert_eq!(
        store.delete_task(parent.id, 7, &deleted).await?,
        Written::Stale
    );
    assert_eq!(
        store.delete_task(parent.id, 1, &deleted).await?,
        Written::Refused(Conflict::HasSubtasks)
    );
    assert!(store.get_task(parent.id).await?.is_some());
    assert_eq!(audit_count(&store).await?, 2);

    assert_eq!(
        store.delete_task(child.id, 1, &deleted).await?,
        Written::Done(())
    );
    assert_eq!(
        store.delete_task(parent.id, 1, &deleted).await?,
        Written::Done(())
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// 50 writers that read the same version write at once: exactly one wins, the other 49 get
/// `Stale`, and exactly one audit row is added.
pub async fn lost_update_races_write_nothing(store: DynStore) -> TestResult {
    let t = insert(&store, draft("contested")).await?;
    let barrier = Arc::new(Barrier::new(50));
    let writers = (0..50).map(|i| {
        let (store, barrier) = (store.clone(), barrier.clone());
        let write = update(&t, |n| n.title = format!("writer {i}"));
        tokio::spawn(async move {
            barrier.wait().await;
            store.update_task(&write).await.map(|w| (i, w))
        })
    });
    let mut winners = Vec::new();
    let mut stale = 0;
    for joined in join_all(writers.collect::<Vec<_>>()).await {
        match joined?? {
            (i, Written::Done(())) => winners.push(i),
            (_, Written::Stale) => stale += 1,
            (i, other) => panic!("writer {i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(stale, 49);
    let stored = store.get_task(t.id).await?.expect("still there");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.title, format!("writer {}", winners[0]));
    assert_eq!(store.task_audit(t.id).await?.len(), 2);
    Ok(())
}

/// 20 deletes of the same version at once: exactly one wins and one `deleted` row is written.
pub async fn lost_delete_races_write_nothing(store: DynStore) -> TestResult {
    let t = insert(&store, draft("contested")).await?;
    let barrier = Arc::new(Barrier::new(20));
    let deleters = (0..20).map(|_| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store.delete_task(t.id, 1, &row(AuditAction::Deleted)).await
        })
    });
    let results: Vec<Written<()>> = join_all(deleters.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|j| j.map_err(Box::from).and_then(|r| r.map_err(Box::from)))
        .collect::<Result<_, Box<dyn std::error::Error + Send + Sync>>>()?;
    let done = results.iter().filter(|w| **w == Written::Done(())).count();
    let stale = results.iter().filter(|w| **w == Written::Stale).count();
    assert_eq!((done, stale), (1, 19));
    assert_eq!(store.task_audit(t.id).await?.len(), 2);
    Ok(())
}

/// 200 inserts released together get 200 distinct ids and 200 `created` rows.
pub async fn concurrent_inserts_get_distinct_ids(store: DynStore) -> TestResult {
    let barrier = Arc::new(Barrier::new(200));
    let inserts = (0..200).map(|i| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            insert(&store, draft(&format!("t{i}"))).await
        })
    });
    let mut ids = HashSet::new();
    for joined in join_all(inserts.collect::<Vec<_>>()).await {
        ids.insert(joined??.id);
    }
    assert_eq!(ids.len(), 200);
    assert_eq!(task_count(&store).await?, 200);
    let mut audited = HashSet::new();
    for offset in [0, 100] {
        let page = store
            .list_audit(&AuditFilter {
                paging: paging(100, offset),
                ..AuditFilter::default()
            })
            .await?;
        assert_eq!(page.total, 200);
        audited.extend(page.items.iter().map(|r| r.task_id));
    }
    assert_eq!(audited, ids, "one created row per task");
    Ok(())
}

/// `A.parent = B` and `B.parent = A`, written at the same moment with their invariants, never
/// both succeed: the store checks the cycle inside the write. 20 rounds.
pub async fn concurrent_reparents_never_form_a_cycle(store: DynStore) -> TestResult {
    for round in 0..20 {
        let a = insert(&store, draft(&format!("a{round}"))).await?;
        let b = insert(&store, draft(&format!("b{round}"))).await?;
        let barrier = Arc::new(Barrier::new(2));
        let writes = [(a.clone(), b.id), (b.clone(), a.id)].map(|(task, parent)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let mut write = update(&task, |n| n.parent_id = Some(parent));
            write.invariants = vec![Invariant::AcyclicParent {
                task: task.id,
                parent,
            }];
            tokio::spawn(async move {
                barrier.wait().await;
                store.update_task(&write).await
            })
        });
        let mut done = 0;
        for joined in join_all(writes).await {
            match joined?? {
                Written::Done(()) => done += 1,
                Written::Refused(Conflict::ParentCycle { .. }) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(done, 1, "round {round}: exactly one re-parent succeeds");
        let a = store.get_task(a.id).await?.expect("a");
        let b = store.get_task(b.id).await?.expect("b");
        assert!(
            !(a.parent_id == Some(b.id) && b.parent_id == Some(a.id)),
            "round {round}: a cycle formed"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Listings

/// Task listings filter on every field, are ordered by id, and count every match whatever the
/// page.
pub async fn list_tasks_filters_orders_and_counts(store: DynStore) -> TestResult {
    let parent = insert(&store, draft("parent")).await?;
    let mut ids = vec![parent.id];
    for i in 0..12 {
        let mut d = draft(&format!("t{i}"));
        d.status = if i % 3 == 0 {
            TaskStatus::Blocked
        } else {
            TaskStatus::Pending
        };
        d.priority = if i % 2 == 0 {
            Priority::High
        } else {
            Priority::Low
        };
        d.assigned_to = (i % 4 == 0).then(|| "bob".to_owned());
        d.project_slug = (i < 6).then(|| "alpha".to_owned());
        d.parent_id = (i % 5 == 0).then_some(parent.id);
        ids.push(insert(&store, d).await?.id);
    }
    let list = |filter: TaskFilter| {
        let store = store.clone();
        async move { store.list_tasks(&filter).await }
    };
    let all = list(TaskFilter::default()).await?;
    assert_eq!(all.total, 13);
    assert_eq!(all.items.iter().map(|t| t.id).collect::<Vec<_>>(), ids);

    let cases: Vec<(TaskFilter, Vec<usize>)> = vec![
        (
            TaskFilter {
                status: Some(TaskStatus::Blocked),
                ..TaskFilter::default()
            },
            vec![0, 3, 6, 9],
        ),
        (
            TaskFilter {
                priority: Some(Priority::Low),
                ..TaskFilter::default()
            },
            vec![1, 3, 5, 7, 9, 11],
        ),
        (
            TaskFilter {
                assigned_to: Some("bob".into()),
                ..TaskFilter::default()
            },
            vec![0, 4, 8],
        ),
        (
            TaskFilter {
                project: Some("alpha".into()),
                status: Some(TaskStatus::Pending),
                ..TaskFilter::default()
            },
            vec![1, 2, 4, 5],
        ),
        (
            TaskFilter {
                parent_id: Some(parent.id),
                ..TaskFilter::default()
            },
            vec![0, 5, 10],
        ),
        (
            TaskFilter {
                project: Some("nope".into()),
                ..TaskFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let page = list(filter.clone()).await?;
        let want: Vec<i64> = expected.iter().map(|i| ids[i + 1]).collect();
        assert_eq!(
            page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
            want,
            "{filter:?}"
        );
        assert_eq!(page.total, want.len() as u64, "{filter:?}");
    }

    let page = list(TaskFilter {
        paging: paging(5, 10),
        ..TaskFilter::default()
    })
    .await?;
    assert_eq!(page.total, 13);
    assert_eq!(
        page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[10..]
    );
    let past = list(TaskFilter {
        paging: paging(5, 50),
        ..TaskFilter::default()
    })
    .await?;
    assert!(past.items.is_empty());
    assert_eq!(past.total, 13, "a page past the end still counts");
    let huge = list(TaskFilter {
        paging: paging(100, i64::MAX),
        ..TaskFilter::default()
    })
    .await?;
    assert!(huge.items.is_empty());
    assert_eq!(huge.total, 13);
    Ok(())
}

/// Audit listings filter on task, actor, action and project, are oldest first, and count every
/// match whatever the page.
pub async fn list_audit_filters_orders_and_counts(store: DynStore) -> TestResult {
    let a = insert(&store, draft("a")).await?;
    let b = insert(&store, draft("b")).await?;
    let mut write = update(&a, |n| n.project_slug = Some("p".into()));
    write.audit.actor_id = "bob".into();
    write.audit.project_slug = Some("p".into());
    assert_eq!(store.update_task(&write).await?, Written::Done(()));

    let all = store.list_audit(&AuditFilter::default()).await?;
    assert_eq!(all.total, 3);
    let ids: Vec<i64> = all.items.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");

    let count = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .list_audit(&filter)
                .await
                .map(|p| (p.items.len(), p.total))
        }
    };
    assert_eq!(
        count(AuditFilter {
            task_id: Some(a.id),
            ..AuditFilter::default()
        })
        .await?,
        (2, 2)
    );
    assert_eq!(
        count(AuditFilter {
            actor_id: Some("bob".into()),
            ..AuditFilter::default()
        })
        .await?,
        (1, 1)
    );
    assert_eq!(
        count(AuditFilter {
            action: Some("created".into()),
            ..AuditFilter::default()
        })
        .await?,
        (2, 2)
    );
    assert_eq!(
        count(AuditFilter {
            action: Some("no such action".into()),
            ..AuditFilter::default()
        })
        .await?,
        (0, 0)
    );
    assert_eq!(
        count(AuditFilter {
            project: Some("p".into()),
            ..AuditFilter::default()
        })
        .await?,
        (1, 1)
    );
    assert_eq!(
        count(AuditFilter {
            paging: paging(1, 1),
            ..AuditFilter::default()
        })
        .await?,
        (1, 3)
    );
    assert_eq!(store.task_audit(b.id).await?.len(), 1);
    assert!(store.task_audit(424_242).await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Workers, values, health

/// A worker upsert inserts, then replaces every field but `created_at`; listings are ordered
/// by id, byte-wise.
pub async fn workers_upsert_keeps_created_at(store: DynStore) -> TestResult {
    let first = Worker {
        id: "bot-1".into(),
        worker_type: WorkerType::Agent,
        name: Some("Bot".into()),
        created_at: now(),
    };
    let stored = store.put_worker(&first).await?;
    assert_eq!(stored, first);
    let again = Worker {
        worker_type: WorkerType::Human,
        name: None,
        created_at: first.created_at + Duration::hours(1),
        ..first.clone()
    };
    let stored = store.put_worker(&again).await?;
    assert_eq!(stored.worker_type, WorkerType::Human);
    assert_eq!(stored.name, None);
    assert_eq!(stored.created_at, first.created_at);
    assert_eq!(store.get_worker("bot-1").await?, Some(stored));
    assert_eq!(store.get_worker("nobody").await?, None);

    for id in ["b", "B", "a", "ä", "_"] {
        store
            .put_worker(&Worker {
                id: id.into(),
                ..first.clone()
            })
            .await?;
    }
    let ids: Vec<String> = store
        .list_workers()
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["B", "_", "a", "b", "bot-1", "ä"]);
    Ok(())
}

/// Text, timestamps (to the microsecond) and JSON contexts read back exactly as written.
pub async fn values_round_trip_exactly(store: DynStore) -> TestResult {
    let odd = "✓ 日本語 \u{202e}rev\u{202c} 👩‍👩‍👧 \"q\" \\ '; DROP TABLE tasks; -- \u{feff}";
    let mut d = draft(odd);
    d.description = Some(odd.into());
    d.project_slug = Some(odd.into());
    d.assigned_to = Some(odd.into());
    let t = insert(&store, d.clone()).await?;
    assert_eq!(store.get_task(t.id).await?, Some(d.into_task(t.id)));

    let mut audit = row(AuditAction::Progressed);
    audit.context = Some(json!({
        "percent": 42, "note": odd, "nested": {"list": [1, 2.5, null, true]}, "empty": {}
    }));
    audit.actor_type = ActorType::Agent;
    let write = TaskWrite {
        audit: audit.clone(),
        ..update(&t, |n| n.progress_percent = 42)
    };
    assert_eq!(store.update_task(&write).await?, Written::Done(()));
    let rows = store.task_audit(t.id).await?;
    assert_eq!(rows[1], audit.into_entry(rows[1].id, t.id));
    assert_eq!(rows[0].context, None);
    Ok(())
}

/// The store answers a health check.
pub async fn ping_answers(store: DynStore) -> TestResult {
    store.ping().await?;
    Ok(())
}

/// After `close`, calls fail with [`Error::Unavailable`] (HTTP 503), never a panic or a hang.
pub async fn calls_after_close_are_unavailable(store: DynStore) -> TestResult {
    insert(&store, draft("before")).await?;
    store.close().await?;
    for result in [
        store.ping().await.map(drop),
        store.get_task(1).await.map(drop),
        store
            .insert_task(&draft("after"), &row(AuditAction::Created))
            .await
            .map(drop),
    ] {
        match result {
            Err(Error::Unavailable(_)) => {}
            other => panic!("expected Unavailable after close, got {other:?}"),
        }
    }
    Ok(())
}
