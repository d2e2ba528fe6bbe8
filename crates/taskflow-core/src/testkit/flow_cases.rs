//! [`TaskFlow`] over a real store under real concurrency. Contenders are released together and
//! the cases assert that compare-and-set writes were really lost ([`RaceStore`]).

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::Barrier;

use super::{RaceStore, TestResult, race};
use crate::error::{Error, Result};
use crate::lifecycle::Move;
use crate::model::{
    AuditAction, AuditFilter, Identity, NewTask, Task, TaskFilter, TaskPatch, TaskStatus,
    WorkerType,
};
use crate::{DynStore, TaskFlow};

fn alice() -> Identity {
    Identity::user("alice")
}

async fn started_rows(flow: &TaskFlow, id: i64) -> Result<Vec<String>> {
    Ok(flow
        .task_audit(&alice(), id)
        .await?
        .into_iter()
        .filter(|r| r.action == AuditAction::Started)
        .map(|r| r.actor_id)
        .collect())
}

/// Joins spawned calls, failing the case on a panic.
async fn joined<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Result<Vec<T>, tokio::task::JoinError> {
    join_all(handles).await.into_iter().collect()
}

/// 50 agents start one task at once, all having read it pending: exactly 1 wins, 49 lose a
/// compare-and-set and are then told the task is in progress, and one `started` row is written.
pub async fn race_concurrent_starts(store: DynStore) -> TestResult {
    let t = TaskFlow::new(store.clone())
        .create_task(&alice(), NewTask::titled("contested"))
        .await?;
    let (counter, gated) = race(RaceStore::new(store).gate_reads(50));
    let f = TaskFlow::new(gated);
    let attempts = (0..50)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                f.start(&Identity::user(format!("agent-{i}")), t.id, None)
                    .await
            })
        })
        .collect();
    let results = joined(attempts).await?;
    let winners: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    Error::InvalidTransition {
                        action: Move::Start,
                        from: TaskStatus::InProgress
                    }
                ),
                "{e:?}"
            );
            assert_eq!(e.to_string(), "Cannot start task with status 'in_progress'");
        }
    }
    assert_eq!(counter.done_writes(), 1);
    assert_eq!(
        counter.stale_writes(),
        49,
        "every loser read the task pending and lost the compare-and-set"
    );
    let stored = f.get_task(&alice(), t.id).await?;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.assigned_to, winners[0].assigned_to);
    let started = started_rows(&f, t.id).await?;
    assert_eq!(started.len(), 1, "exactly one started row");
    assert_eq!(Some(&started[0]), stored.assigned_to.as_ref());
    Ok(())
}

/// 20 patches that all expect version 1, having all read it: exactly 1 succeeds, 19 lose the
/// compare-and-set and then get a version mismatch.
pub async fn race_concurrent_patches_same_version(store: DynStore) -> TestResult {
    let t = TaskFlow::new(store.clone())
        .create_task(&alice(), NewTask::titled("contested"))
        .await?;
    let (counter, gated) = race(RaceStore::new(store).gate_reads(20));
    let f = TaskFlow::new(gated);
    let attempts = (0..20)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                let patch = TaskPatch {
                    title: Some(format!("title {i}")),
                    ..TaskPatch::default()
                };
                f.update_task(&alice(), t.id, &patch, Some(1)).await
            })
        })
        .collect();
    let results = joined(attempts).await?;
    let ok: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "exactly one success");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::VersionMismatch { current: 2 }), "{e:?}");
        }
    }
    assert_eq!(counter.stale_writes(), 19, "the losers really lost a write");
    let stored = f.get_task(&alice(), t.id).await?;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.title, ok[0].title);
    assert_eq!(f.task_audit(&alice(), t.id).await?.len(), 2);
    Ok(())
}

/// 20 patches without a precondition, having all read version 1: each that loses re-reads and
/// re-applies, so all 20 apply, one version each, with 20 `updated` rows.
pub async fn race_concurrent_patches_without_version(store: DynStore) -> TestResult {
    let t = TaskFlow::new(store.clone())
        .create_task(&alice(), NewTask::titled("contested"))
        .await?;
    let (counter, gated) = race(RaceStore::new(store).gate_reads(20));
    let f = TaskFlow::new(gated);
    let attempts = (0..20)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                let patch = TaskPatch {
                    title: Some(format!("title {i}")),
                    ..TaskPatch::default()
                };
                f.update_task(&alice(), t.id, &patch, None).await
            })
        })
        .collect();
    let mut versions = HashSet::new();
    for r in joined(attempts).await? {
        versions.insert(r?.version);
    }
    assert!(
        counter.stale_writes() >= 19,
        "the first round lost 19 writes, got {}",
        counter.stale_writes()
    );
    assert_eq!(counter.done_writes(), 20);
    let stored = f.get_task(&alice(), t.id).await?;
    // Every title is distinct, so every patch is a change.
    assert_eq!(stored.version, 21);
    assert_eq!(versions.len(), 20, "each patch got its own version");
    assert_eq!(f.task_audit(&alice(), t.id).await?.len(), 21);
    Ok(())
}

/// 200 creates released together: 200 distinct ids and 200 `created` rows, one per task.
pub async fn race_concurrent_creates(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let barrier = Arc::new(Barrier::new(200));
    let attempts = (0..200)
        .map(|i| {
            let (f, barrier) = (f.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                f.create_task(&alice(), NewTask::titled(format!("t{i}")))
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for r in joined(attempts).await? {
        ids.insert(r?.id);
    }
    assert_eq!(ids.len(), 200);
    assert_eq!(
        f.list_tasks(&alice(), &TaskFilter::default()).await?.total,
        200
    );
    let created = f
        .list_audit(
            &alice(),
            &AuditFilter {
                action: Some("created".into()),
                ..AuditFilter::default()
            },
        )
        .await?;
    assert_eq!(created.total, 200);
    Ok(())
}

/// Two PATCHes, `A.parent_id = B` and `B.parent_id = A`, both past the service's own cycle
/// check before either writes: the store's check inside the write refuses one of them, every
/// time (25 rounds). With the check outside the write transaction, both would succeed and
/// neither task could ever be deleted.
pub async fn race_concurrent_reparents(store: DynStore) -> TestResult {
    let plain = TaskFlow::new(store.clone());
    for round in 0..25 {
        let a = plain
            .create_task(&alice(), NewTask::titled(format!("a{round}")))
            .await?;
        let b = plain
            .create_task(&alice(), NewTask::titled(format!("b{round}")))
            .await?;
        let (_, gated) = race(RaceStore::new(store.clone()).gate_writes(2));
        let f = TaskFlow::new(gated);
        let attempts = [(a.id, b.id), (b.id, a.id)]
            .map(|(id, parent)| {
                let f = f.clone();
                tokio::spawn(async move {
                    let patch = TaskPatch {
                        parent_id: Some(Some(parent)),
                        ..TaskPatch::default()
                    };
                    f.update_task(&alice(), id, &patch, None).await
                })
            })
            .into_iter()
            .collect();
        let results = joined(attempts).await?;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            ok, 1,
            "round {round}: exactly one re-parent succeeds: {results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert_eq!(
                    e.to_string(),
                    "parent_id: would create a cycle",
                    "round {round}"
                );
            }
        }
        let a = plain.get_task(&alice(), a.id).await?;
        let b = plain.get_task(&alice(), b.id).await?;
        assert!(
            !(a.parent_id == Some(b.id) && b.parent_id == Some(a.id)),
            "round {round}: a cycle formed"
        );
    }
    Ok(())
}

/// Text holding a NUL character is refused in core (PostgreSQL cannot store it in `text` or
/// `jsonb`), so every backend behaves alike: a 422 naming the field, and nothing written.
pub async fn text_with_nul_is_refused_everywhere(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let nul = "a\0b".to_owned();
    let root = Identity::admin("root");
    let t = f.create_task(&alice(), NewTask::titled("fine")).await?;
    let new = |edit: fn(&mut NewTask, String)| {
        let mut n = NewTask::titled("t");
        edit(&mut n, "a\0b".to_owned());
        n
    };
    let expect = |res: Result<Task>, field: &str| match res {
        Err(Error::Validation { field: f, message }) => {
            assert_eq!(
                (f.as_str(), message.as_str()),
                (field, "must not contain NUL characters")
            );
        }
        other => panic!("expected a validation error on {field}, got {other:?}"),
    };
    for (fields, field) in [
        (new(|n, v| n.title = v), "title"),
        (new(|n, v| n.description = Some(v)), "description"),
        (new(|n, v| n.assigned_to = Some(v)), "assigned_to"),
        (new(|n, v| n.project_slug = Some(v)), "project_slug"),
    ] {
        expect(f.create_task(&alice(), fields).await, field);
    }
    let patch = TaskPatch {
        description: Some(Some(nul.clone())),
        ..TaskPatch::default()
    };
    expect(
        f.update_task(&alice(), t.id, &patch, None).await,
        "description",
    );
    expect(
        f.block(&alice(), t.id, Some(nul.clone()), None).await,
        "reason",
    );
    expect(
        f.progress(&alice(), t.id, 5, Some(nul.clone()), None).await,
        "note",
    );
    expect(
        f.create_task(&Identity::user(nul.clone()), NewTask::titled("t"))
            .await,
        "sub",
    );
    for (res, field) in [
        (
            f.put_worker(&root, &nul, WorkerType::Agent, None).await,
            "id",
        ),
        (
            f.put_worker(&root, "w", WorkerType::Agent, Some(nul.clone()))
                .await,
            "name",
        ),
    ] {
        match res {
            Err(Error::Validation { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected a validation error on {field}, got {other:?}"),
        }
    }
    assert_eq!(f.task_audit(&alice(), t.id).await?.len(), 1);
    assert_eq!(
        f.list_tasks(&alice(), &TaskFilter::default()).await?.total,
        1
    );
    assert!(f.list_workers(&alice()).await?.is_empty());
    Ok(())
}
