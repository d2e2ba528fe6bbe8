//! The work queue: dependency edges, the ready queue, claim-next, leases and fencing, on the
//! store's [`QueueStore`] directly and through [`TaskFlow`].

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use futures::future::join_all;
use serde_json::json;
use tokio::sync::Barrier;

use super::TestResult;
use super::store_cases::{draft, insert, row};
use crate::TaskFlow;
use crate::error::Error;
use crate::lifecycle::READY;
use crate::model::{
    ActorType, AuditAction, Identity, NewTask, Priority, ReadyFilter, Task, TaskDraft, TaskPatch,
    TaskStatus, now,
};
use crate::store::{
    Conflict, DependencyWrite, DynStore, EdgeChange, LeaseWrite, QueueStore, Written,
};

fn queue(store: &DynStore) -> &dyn QueueStore {
    store
        .queue()
        .expect("the conformance suite needs a store with the work queue")
}

fn alice() -> Identity {
    Identity::user("alice")
}

/// The write that adds or removes an edge of `task`, expecting its version.
fn edge(task: &Task, change: EdgeChange) -> DependencyWrite {
    let mut next = task.clone();
    next.version += 1;
    next.updated_at = now();
    let (action, depends_on) = match change {
        EdgeChange::Add { depends_on } => (AuditAction::DependencyAdded, depends_on),
        EdgeChange::Remove { depends_on } => (AuditAction::DependencyRemoved, depends_on),
    };
    let mut audit = row(action);
    audit.context = Some(json!({ "depends_on": depends_on }));
    DependencyWrite {
        task: next,
        expected_version: task.version,
        expected_lease_expires_at: task.lease_expires_at,
        change,
        audit,
    }
}

fn add(depends_on: i64) -> EdgeChange {
    EdgeChange::Add { depends_on }
}

fn with(title: &str, edit: impl FnOnce(&mut TaskDraft)) -> TaskDraft {
    let mut d = draft(title);
    edit(&mut d);
    d
}

async fn get(store: &DynStore, id: i64) -> Result<Task, Error> {
    Ok(store.get_task(id).await?.expect("the task exists"))
}

// ---------------------------------------------------------------------------------------------
// Dependencies

/// An edge is written with its task: version + 1 and one audit row, compare-and-set; the
/// refusals write nothing.
pub async fn dependency_edges_are_written_with_their_task(store: DynStore) -> TestResult {
    let q = queue(&store);
    let a = insert(&store, draft("a")).await?;
    let b = insert(&store, draft("b")).await?;
    let c = insert(&store, draft("c")).await?;

    assert_eq!(
        q.write_dependency(&edge(&a, add(b.id))).await?,
        Written::Done(())
    );
    let a = get(&store, a.id).await?;
    assert_eq!(a.version, 2);
    assert_eq!(
        q.write_dependency(&edge(&a, add(c.id))).await?,
        Written::Done(())
    );
    let a = get(&store, a.id).await?;
    let deps = q.dependencies(a.id).await?;
    assert_eq!(
        deps.depends_on,
        [(b.id, TaskStatus::Pending), (c.id, TaskStatus::Pending)]
    );
    assert!(deps.dependents.is_empty());
    assert_eq!(q.dependencies(b.id).await?.dependents, [a.id]);
    let rows = store.task_audit(a.id).await?;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].action, AuditAction::DependencyAdded);
    assert_eq!(rows[2].context, Some(json!({"depends_on": c.id})));

    // Refusals, each writing nothing.
    let before = store.task_audit(a.id).await?.len();
    assert_eq!(
        q.write_dependency(&edge(&a, add(b.id))).await?,
        Written::Refused(Conflict::DependencyExists { depends_on: b.id })
    );
    assert_eq!(
        q.write_dependency(&edge(&a, add(9999))).await?,
        Written::Refused(Conflict::DependencyMissing { depends_on: 9999 })
    );
    assert_eq!(
        q.write_dependency(&edge(&a, EdgeChange::Remove { depends_on: 9999 }))
            .await?,
        Written::Refused(Conflict::NoSuchDependency { depends_on: 9999 })
    );
    let mut stale = edge(&a, add(c.id));
    stale.expected_version = 1;
    assert_eq!(q.write_dependency(&stale).await?, Written::Stale);
    assert_eq!(store.task_audit(a.id).await?.len(), before);
    assert_eq!(get(&store, a.id).await?, a);

    assert_eq!(
        q.write_dependency(&edge(&a, EdgeChange::Remove { depends_on: b.id }))
            .await?,
        Written::Done(())
    );
    assert_eq!(
        q.dependencies(a.id).await?.depends_on,
        [(c.id, TaskStatus::Pending)]
    );
    assert_eq!(get(&store, a.id).await?.version, 4);
    Ok(())
}

/// An edge that would close a cycle (of any length, or onto the task itself) is refused by
/// the store.
pub async fn dependency_cycles_are_refused_inside_the_write(store: DynStore) -> TestResult {
    let q = queue(&store);
    // a depends on b, b on c.
    let a = insert(&store, draft("a")).await?;
    let b = insert(&store, draft("b")).await?;
    let c = insert(&store, draft("c")).await?;
    assert_eq!(
        q.write_dependency(&edge(&a, add(b.id))).await?,
        Written::Done(())
    );
    assert_eq!(
        q.write_dependency(&edge(&b, add(c.id))).await?,
        Written::Done(())
    );
    let (b, c) = (get(&store, b.id).await?, get(&store, c.id).await?);
    for (task, target) in [(&c, a.id), (&b, a.id), (&c, c.id)] {
        assert_eq!(
            q.write_dependency(&edge(task, add(target))).await?,
            Written::Refused(Conflict::DependencyCycle { depends_on: target }),
            "{} on {target}",
            task.title
        );
    }
    // A diamond is not a cycle.
    let a = get(&store, a.id).await?;
    assert_eq!(
        q.write_dependency(&edge(&a, add(c.id))).await?,
        Written::Done(())
    );
    Ok(())
}

/// `A depends on B` and `B depends on A`, written at the same moment, never both succeed.
pub async fn concurrent_opposite_dependencies_never_form_a_cycle(store: DynStore) -> TestResult {
    for round in 0..20 {
        let a = insert(&store, draft(&format!("a{round}"))).await?;
        let b = insert(&store, draft(&format!("b{round}"))).await?;
        let barrier = Arc::new(Barrier::new(2));
        let writes = [(a.clone(), b.id), (b.clone(), a.id)].map(|(task, target)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let write = edge(&task, add(target));
            tokio::spawn(async move {
                barrier.wait().await;
                queue(&store).write_dependency(&write).await
            })
        });
        let mut done = 0;
        for joined in join_all(writes).await {
            match joined?? {
                Written::Done(()) => done += 1,
                Written::Refused(Conflict::DependencyCycle { .. }) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(done, 1, "round {round}: exactly one edge is written");
        let (da, db) = (
            queue(&store).dependencies(a.id).await?,
            queue(&store).dependencies(b.id).await?,
        );
        assert_eq!(
            da.depends_on.len() + db.depends_on.len(),
            1,
            "round {round}: one edge, no cycle"
        );
    }
    Ok(())
}

/// A task that others depend on cannot be deleted (version first, then subtasks, then
/// dependents); deleting a task drops the edges it holds.
pub async fn delete_refuses_dependents_and_drops_own_edges(store: DynStore) -> TestResult {
    let q = queue(&store);
    let a = insert(&store, draft("a")).await?;
    let b = insert(&store, draft("b")).await?;
    assert_eq!(
        q.write_dependency(&edge(&a, add(b.id))).await?,
        Written::Done(())
    );
    let deleted = row(AuditAction::Deleted);
    assert_eq!(store.delete_task(b.id, 9, &deleted).await?, Written::Stale);
    assert_eq!(
        store.delete_task(b.id, 1, &deleted).await?,
        Written::Refused(Conflict::HasDependents)
    );
    assert!(store.get_task(b.id).await?.is_some());
    assert_eq!(
        store.delete_task(a.id, 2, &deleted).await?,
        Written::Done(())
    );
    assert!(q.dependencies(b.id).await?.dependents.is_empty());
    assert_eq!(
        store.delete_task(b.id, 1, &deleted).await?,
        Written::Done(())
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The ready queue and claim-next

/// The ready queue holds the caller's pending tasks (unassigned or theirs) whose dependencies
/// are all completed, most urgent first, then by id, with totals and projects.
pub async fn ready_queue_orders_by_urgency_then_id(store: DynStore) -> TestResult {
    let q = queue(&store);
    let low = insert(&store, with("low", |d| d.priority = Priority::Low)).await?;
    let crit = insert(&store, with("crit", |d| d.priority = Priority::Critical)).await?;
    let high = insert(&store, with("high", |d| d.priority = Priority::High)).await?;
    let crit2 = insert(&store, with("crit2", |d| d.priority = Priority::Critical)).await?;
    let mine = insert(
        &store,
        with("mine", |d| d.assigned_to = Some("alice".into())),
    )
    .await?;
    let theirs = insert(
        &store,
        with("theirs", |d| d.assigned_to = Some("bob".into())),
    )
    .await?;
    let blocked = insert(&store, with("blocked", |d| d.status = TaskStatus::Blocked)).await?;
    let other = insert(&store, with("other", |d| d.project_slug = Some("p".into()))).await?;
    // `waits` depends on `high`, which is not completed.
    let waits = insert(&store, draft("waits")).await?;
    assert_eq!(
        q.write_dependency(&edge(&waits, add(high.id))).await?,
        Written::Done(())
    );
    // `done_dep` depends on a completed task: ready.
    let finished = insert(
        &store,
        with("finished", |d| d.status = TaskStatus::Completed),
    )
    .await?;
    let done_dep = insert(&store, draft("done_dep")).await?;
    assert_eq!(
        q.write_dependency(&edge(&done_dep, add(finished.id)))
            .await?,
        Written::Done(())
    );

    let ids = |page: crate::model::Page<Task>| page.items.iter().map(|t| t.id).collect::<Vec<_>>();
    let all = q
        .ready_tasks("alice", &ReadyFilter::default(), &READY)
        .await?;
    assert_eq!(all.total, 7);
    assert_eq!(
        ids(all),
        [
            crit.id,
            crit2.id,
            high.id,
            mine.id,
            other.id,
            done_dep.id,
            low.id
        ]
    );
    // Bob sees his own task and not alice's.
    let bobs = ids(q
        .ready_tasks("bob", &ReadyFilter::default(), &READY)
        .await?);
    assert!(
        bobs.contains(&theirs.id) && !bobs.contains(&mine.id),
        "{bobs:?}"
    );
    assert!(!bobs.contains(&blocked.id) && !bobs.contains(&waits.id));
    let in_p = q
        .ready_tasks(
            "alice",
            &ReadyFilter {
                project: Some("p".into()),
                ..ReadyFilter::default()
            },
            &READY,
        )
        .await?;
    assert_eq!((ids(in_p.clone()), in_p.total), (vec![other.id], 1));
    let page = q
        .ready_tasks(
            "alice",
            &ReadyFilter {
                paging: crate::model::Paging::new(Some(2), Some(2))?,
                ..ReadyFilter::default()
            },
            &READY,
        )
        .await?;
    assert_eq!((ids(page.clone()), page.total), (vec![high.id, mine.id], 7));
    Ok(())
}

/// Claim-next takes the head of the caller's queue, writes what the lifecycle decides with a
/// `started` row, and answers `None` on an empty queue.
pub async fn claim_next_takes_the_head_and_writes_the_started_row(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store.clone());
    assert_eq!(f.claim_next(&alice(), None, None).await?, None);
    let low = f
        .create_task(
            &alice(),
            NewTask {
                priority: Some(Priority::Low),
                ..NewTask::titled("low")
            },
        )
        .await?;
    let high = f
        .create_task(
            &alice(),
            NewTask {
                priority: Some(Priority::High),
                ..NewTask::titled("high")
            },
        )
        .await?;
    let before = now();
    let claimed = f
        .claim_next(&alice(), None, Some(60))
        .await?
        .expect("a ready task");
    assert_eq!(claimed.id, high.id);
    assert_eq!(claimed.status, TaskStatus::InProgress);
    assert_eq!(claimed.assigned_to.as_deref(), Some("alice"));
    assert_eq!((claimed.fence, claimed.version), (1, 2));
    let until = claimed.lease_expires_at.expect("a lease");
    assert!(until >= before + Duration::seconds(60) && until <= now() + Duration::seconds(60));
    assert_eq!(get(&store, high.id).await?, claimed);
    let rows = f.task_audit(&alice(), high.id).await?;
    assert_eq!(rows[1].action, AuditAction::Started);
    assert_eq!(
        rows[1].context,
        Some(json!({"claimed": true, "fence": 1, "lease_seconds": 60}))
    );

    let next = f
        .claim_next(&alice(), None, None)
        .await?
        .expect("the low one");
    assert_eq!(next.id, low.id);
    assert_eq!(
        next.lease_seconds,
        Some(crate::model::DEFAULT_LEASE_SECONDS)
    );
    assert_eq!(f.claim_next(&alice(), None, None).await?, None);
    Ok(())
}

/// 50 claimers released together on 20 ready tasks: 20 distinct winners, 30 `None`, every task
/// started exactly once, no claimer with two tasks, exactly 20 `started` rows.
pub async fn concurrent_claims_never_share_a_task(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store.clone());
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(
            f.create_task(&alice(), NewTask::titled(format!("t{i}")))
                .await?
                .id,
        );
    }
    let barrier = Arc::new(Barrier::new(50));
    let claims = (0..50).map(|i| {
        let (f, barrier) = (f.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let who = Identity::user(format!("agent-{i}"));
            f.claim_next(&who, None, None).await.map(|t| (who.id, t))
        })
    });
    let mut winners = HashSet::new();
    let mut claimed = HashSet::new();
    let mut nothing = 0;
    for joined in join_all(claims.collect::<Vec<_>>()).await {
        match joined?? {
            (who, Some(task)) => {
                assert_eq!(task.assigned_to.as_deref(), Some(who.as_str()));
                assert!(winners.insert(who), "a claimer got two tasks");
                assert!(claimed.insert(task.id), "task {} claimed twice", task.id);
            }
            (_, None) => nothing += 1,
        }
    }
    assert_eq!((claimed.len(), nothing), (20, 30));
    assert_eq!(claimed, ids);
    let started = f
        .list_audit(
            &alice(),
            &crate::model::AuditFilter {
                action: Some("started".into()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(started.total, 20);
    for id in ids {
        let t = get(&store, id).await?;
        assert_eq!(
            (t.status, t.fence, t.version),
            (TaskStatus::InProgress, 1, 2)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Leases

/// A lease extension changes the lease and nothing else: same version, no audit row; and it is
/// a compare-and-set on the version.
pub async fn lease_extension_keeps_the_version(store: DynStore) -> TestResult {
    let q = queue(&store);
    let f = TaskFlow::new(store.clone());
    let t = f.create_task(&alice(), NewTask::titled("t")).await?;
    let t = f
        .act(
            &alice(),
            t.id,
            crate::lifecycle::Action::Start {
                lease_seconds: Some(30),
            },
            None,
        )
        .await?;
    let until = now() + Duration::seconds(90);
    let write = LeaseWrite {
        id: t.id,
        expected_version: t.version,
        lease_expires_at: until,
        lease_seconds: 90,
    };
    assert_eq!(q.extend_lease(&write).await?, Written::Done(()));
    let stored = get(&store, t.id).await?;
    assert_eq!(stored.lease_expires_at, Some(until));
    assert_eq!(stored.lease_seconds, Some(90));
    assert_eq!((stored.version, stored.fence), (t.version, t.fence));
    assert_eq!(store.task_audit(t.id).await?.len(), 2, "no audit row");
    let stale = LeaseWrite {
        expected_version: t.version - 1,
        ..write
    };
    assert_eq!(q.extend_lease(&stale).await?, Written::Stale);
    Ok(())
}

/// A heartbeat renews a lease without a new version, so every write names the lease it read:
/// a write (or a sweep) that read the task before the heartbeat is `Stale` and cannot undo it.
pub async fn a_write_that_read_before_a_heartbeat_cannot_undo_it(store: DynStore) -> TestResult {
    let q = queue(&store);
    let f = TaskFlow::new(store.clone());
    let t = f.create_task(&alice(), NewTask::titled("t")).await?;
    let t = f
        .act(
            &alice(),
            t.id,
            crate::lifecycle::Action::Start {
                lease_seconds: Some(30),
            },
            None,
        )
        .await?;
    // A writer reads the task, then the holder's heartbeat lands.
    let mut stale_write = crate::store::TaskWrite {
        task: t.clone(),
        expected_version: t.version,
        expected_lease_expires_at: t.lease_expires_at,
        audit: row(AuditAction::Progressed),
        invariants: Vec::new(),
    };
    stale_write.task.version += 1;
    stale_write.task.progress_percent = 50;
    let renewed = now() + Duration::seconds(600);
    let beat = LeaseWrite {
        id: t.id,
        expected_version: t.version,
        lease_expires_at: renewed,
        lease_seconds: 600,
    };
    assert_eq!(q.extend_lease(&beat).await?, Written::Done(()));
    assert_eq!(store.update_task(&stale_write).await?, Written::Stale);
    let mut dep_write = edge(&t, add(t.id));
    dep_write.change = EdgeChange::Remove { depends_on: 1 };
    assert_eq!(q.write_dependency(&dep_write).await?, Written::Stale);
    assert_eq!(get(&store, t.id).await?.lease_expires_at, Some(renewed));

    // Through the service, a write after the heartbeat keeps the renewed lease.
    let progressed = f.progress(&alice(), t.id, 50, None, None).await?;
    assert_eq!(progressed.lease_expires_at, Some(renewed));
    assert_eq!(get(&store, t.id).await?.lease_expires_at, Some(renewed));
    Ok(())
}

/// Expired leases are listed (and only those), and two sweepers racing reclaim each exactly
/// once: one `lease_expired` row by `taskflow` (system), the task back to `pending`.
pub async fn expired_leases_are_listed_and_reclaimed_exactly_once(store: DynStore) -> TestResult {
    let q = queue(&store);
    let f = TaskFlow::new(store.clone());
    let mut leased = Vec::new();
    for (i, secs) in [30, 10, 20].into_iter().enumerate() {
        let t = f
            .create_task(&alice(), NewTask::titled(format!("t{i}")))
            .await?;
        leased.push(
            f.act(
                &Identity::user(format!("agent-{i}")),
                t.id,
                crate::lifecycle::Action::Start {
                    lease_seconds: Some(secs),
                },
                None,
            )
            .await?,
        );
    }
    let unleased = f.create_task(&alice(), NewTask::titled("held")).await?;
    f.start(&alice(), unleased.id, None).await?;

    let at = now() + Duration::seconds(25);
    let expired: Vec<i64> = q
        .expired_leases(at, 100)
        .await?
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(expired, [leased[1].id, leased[2].id], "oldest expiry first");
    assert!(q.expired_leases(now(), 100).await?.is_empty());

    let barrier = Arc::new(Barrier::new(2));
    let sweeps = (0..2).map(|_| {
        let (f, barrier) = (f.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            f.sweep_expired_leases_at(at).await
        })
    });
    let mut reclaimed = 0;
    for joined in join_all(sweeps.collect::<Vec<_>>()).await {
        reclaimed += joined??;
    }
    assert_eq!(reclaimed, 2, "each expired lease is reclaimed exactly once");
    for t in &leased[1..] {
        let stored = get(&store, t.id).await?;
        assert_eq!(stored.status, TaskStatus::Pending);
        assert_eq!(stored.assigned_to, None);
        assert_eq!(
            (stored.lease_expires_at, stored.lease_seconds),
            (None, None)
        );
        assert_eq!(stored.version, t.version + 1);
        let rows = store.task_audit(t.id).await?;
        let expiries: Vec<_> = rows
            .iter()
            .filter(|r| r.action == AuditAction::LeaseExpired)
            .collect();
        assert_eq!(expiries.len(), 1);
        assert_eq!(expiries[0].actor_id, "taskflow");
        assert_eq!(expiries[0].actor_type, ActorType::System);
        assert_eq!(
            expiries[0].context,
            Some(json!({"assignee": t.assigned_to, "fence": t.fence}))
        );
    }
    assert_eq!(
        get(&store, leased[0].id).await?.status,
        TaskStatus::InProgress
    );
    assert_eq!(
        f.sweep_expired_leases_at(at).await?,
        0,
        "nothing left to reclaim"
    );
    Ok(())
}

/// A heartbeat carries a lease past its first expiry: no version bump, no audit row, and the
/// sweep leaves the task alone.
pub async fn heartbeat_keeps_a_lease_past_its_first_expiry(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store.clone());
    let agent = Identity::user("agent");
    let t = f.create_task(&alice(), NewTask::titled("long")).await?;
    let t = f
        .act(
            &agent,
            t.id,
            crate::lifecycle::Action::Start {
                lease_seconds: Some(10),
            },
            None,
        )
        .await?;
    let first_expiry = t.lease_expires_at.expect("a lease");
    let beat = f
        .heartbeat(
            &agent,
            t.id,
            Some(60),
            crate::model::Expect::fence(Some(t.fence)),
        )
        .await?;
    assert_eq!(beat.version, t.version, "a heartbeat is not a change");
    assert!(beat.lease_expires_at.expect("a lease") >= first_expiry + Duration::seconds(50));
    assert_eq!(get(&store, t.id).await?, beat);
    let after_first = first_expiry + Duration::seconds(1);
    assert_eq!(f.sweep_expired_leases_at(after_first).await?, 0);
    assert_eq!(get(&store, t.id).await?.status, TaskStatus::InProgress);
    // Without a length, a heartbeat renews by the length last granted.
    let again = f.heartbeat(&agent, t.id, None, None).await?;
    assert_eq!(again.lease_seconds, Some(60));
    assert_eq!(f.task_audit(&alice(), t.id).await?.len(), 2);
    Ok(())
}

/// A holder whose lease was reclaimed and taken over is fenced off: its next write with the old
/// fence is refused with `Lease lost`, before the lifecycle is asked, and writes nothing.
pub async fn a_stale_holder_is_fenced_off(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store.clone());
    let (old, new) = (Identity::user("old-agent"), Identity::user("new-agent"));
    f.create_task(&alice(), NewTask::titled("t")).await?;
    let first = f.claim_next(&old, None, Some(10)).await?.expect("claimed");
    let at = first.lease_expires_at.expect("a lease") + Duration::seconds(1);
    assert_eq!(f.sweep_expired_leases_at(at).await?, 1);
    let second = f
        .claim_next(&new, None, Some(60))
        .await?
        .expect("re-claimed");
    assert_eq!((second.id, second.fence), (first.id, first.fence + 1));

    let stale = crate::model::Expect::fence(Some(first.fence));
    for result in [
        f.progress(&old, first.id, 90, None, stale.clone()).await,
        f.complete(&old, first.id, stale.clone()).await,
        f.heartbeat(&old, first.id, None, stale.clone()).await,
        f.release(&old, first.id, stale.clone()).await,
        f.update_task(
            &old,
            first.id,
            &TaskPatch {
                title: Some("mine".into()),
                ..TaskPatch::default()
            },
            stale.clone(),
        )
        .await,
    ] {
        match result {
            Err(Error::LeaseLost { current_fence }) => assert_eq!(current_fence, second.fence),
            other => panic!("expected Lease lost, got {other:?}"),
        }
    }
    assert_eq!(get(&store, first.id).await?, second, "nothing was written");
    // The new holder, naming its fence, goes on.
    let done = f
        .complete(
            &new,
            first.id,
            crate::model::Expect::fence(Some(second.fence)),
        )
        .await?;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!((done.lease_expires_at, done.lease_seconds), (None, None));
    Ok(())
}

/// A task waiting on unfinished dependencies cannot start (by start, a PATCH, or claim-next);
/// once they are completed it can.
pub async fn start_waits_for_unfinished_dependencies(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store.clone());
    let dep1 = f.create_task(&alice(), NewTask::titled("dep1")).await?;
    let dep2 = f.create_task(&alice(), NewTask::titled("dep2")).await?;
    let t = f.create_task(&alice(), NewTask::titled("waits")).await?;
    f.add_dependency(&alice(), t.id, dep2.id, None).await?;
    let view = f.add_dependency(&alice(), t.id, dep1.id, None).await?;
    assert_eq!(view.waiting_on, [dep1.id, dep2.id]);
    let text = format!(
        "Task is waiting on unfinished dependencies: {}, {}",
        dep1.id, dep2.id
    );
    let to_in_progress = TaskPatch {
        status: Some(TaskStatus::InProgress),
        ..TaskPatch::default()
    };
    for result in [
        f.start(&alice(), t.id, None).await,
        f.update_task(&alice(), t.id, &to_in_progress, None).await,
    ] {
        match result {
            Err(e @ Error::WaitingOnDependencies { .. }) => assert_eq!(e.to_string(), text),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // Claim-next skips it and takes the dependencies first.
    let first = f.claim_next(&alice(), None, None).await?.expect("dep1");
    assert_eq!(first.id, dep1.id);
    f.complete(&alice(), dep1.id, None).await?;
    let second = f.claim_next(&alice(), None, None).await?.expect("dep2");
    assert_eq!(second.id, dep2.id);
    assert_eq!(f.claim_next(&alice(), None, None).await?, None);
    f.complete(&alice(), dep2.id, None).await?;
    assert!(f.dependencies(&alice(), t.id).await?.waiting_on.is_empty());
    let started = f.start(&alice(), t.id, None).await?;
    assert_eq!(started.status, TaskStatus::InProgress);
    Ok(())
}
