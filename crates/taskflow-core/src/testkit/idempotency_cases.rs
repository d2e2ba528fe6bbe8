//! Idempotency keys ([`crate::idempotency`]) on every store that keeps records: a retried write
//! never acts twice, its outcome is stored with its change, and records expire.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::Barrier;

use super::{RaceStore, TestResult, race};
use crate::error::Error;
use crate::idempotency::{IdempotencyKey, Idempotent, Reservation, Reserve};
use crate::lifecycle::Action;
use crate::model::{
    AuditFilter, Identity, NewTask, Precondition, TaskFilter, TaskPatch, TaskStatus, WorkerType,
    now,
};
use crate::{Command, DynStore, Outcome, TaskFlow};

fn alice() -> Identity {
    Identity::user("alice")
}

fn create(title: &str) -> Command {
    Command::CreateTask {
        task: NewTask::titled(title),
    }
}

fn once(key: &str, command: &Command) -> Idempotent {
    Idempotent::for_command(IdempotencyKey::new(key).expect("a valid key"), command)
        .expect("a fingerprint")
}

async fn tasks(f: &TaskFlow) -> Result<u64, Error> {
    Ok(f.list_tasks(&alice(), &TaskFilter::default()).await?.total)
}

async fn audit_rows(f: &TaskFlow, action: &str) -> Result<u64, Error> {
    let filter = AuditFilter {
        action: Some(action.into()),
        ..AuditFilter::default()
    };
    Ok(f.list_audit(&alice(), &filter).await?.total)
}

/// A retried create returns the same task, marked replayed, and writes one task and one row.
pub async fn a_replayed_create_returns_the_same_task_and_writes_once(
    store: DynStore,
) -> TestResult {
    let f = TaskFlow::new(store);
    let command = create("once");
    let key = once("create-1", &command);
    let first = f.execute_once(&alice(), &key, command.clone()).await;
    assert!(!first.replayed);
    let Outcome::Task(task) = first.value? else {
        panic!("a task")
    };
    for _ in 0..3 {
        let again = f.execute_once(&alice(), &key, command.clone()).await;
        assert!(again.replayed, "a repeat is a replay");
        assert_eq!(again.value?, Outcome::Task(task.clone()));
    }
    assert_eq!(tasks(&f).await?, 1);
    assert_eq!(audit_rows(&f, "created").await?, 1);
    Ok(())
}

/// A retried claim-next returns the same task and fence, never a second task.
pub async fn a_replayed_claim_returns_the_same_task_and_fence(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    for title in ["a", "b"] {
        f.create_task(&alice(), NewTask::titled(title)).await?;
    }
    let claim = Command::ClaimNext {
        project: None,
        lease_seconds: Some(60),
    };
    let key = once("claim-1", &claim);
    let Outcome::Claimed(Some(first)) = f.execute_once(&alice(), &key, claim.clone()).await.value?
    else {
        panic!("a claim")
    };
    let again = f.execute_once(&alice(), &key, claim.clone()).await;
    assert!(again.replayed);
    let Outcome::Claimed(Some(replayed)) = again.value? else {
        panic!("the same claim")
    };
    assert_eq!((replayed.id, replayed.fence), (first.id, first.fence));
    assert_eq!(audit_rows(&f, "started").await?, 1, "one claim, not two");
    let pending = f
        .list_tasks(
            &alice(),
            &TaskFilter {
                status: Some(TaskStatus::Pending),
                ..TaskFilter::default()
            },
        )
        .await?;
    assert_eq!(pending.total, 1, "the other task is still there");
    Ok(())
}

/// 20 requests with one key at once: the write runs once; the others are told the request is
/// in progress, or get the replay.
pub async fn concurrent_requests_with_one_key_run_once(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let command = create("contested");
    let key = once("burst", &command);
    let barrier = Arc::new(Barrier::new(20));
    let calls = (0..20).map(|_| {
        let (f, key, command, barrier) = (f.clone(), key.clone(), command.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            f.execute_once(&alice(), &key, command).await
        })
    });
    let mut fresh = 0;
    for joined in join_all(calls.collect::<Vec<_>>()).await {
        let answer = joined?;
        match (answer.replayed, answer.value) {
            (false, Ok(Outcome::Task(_))) => fresh += 1,
            (true, Ok(Outcome::Task(_))) => {}
            (false, Err(Error::IdempotencyInProgress)) => {}
            (r, other) => panic!("unexpected answer (replayed {r}): {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran");
    assert_eq!(tasks(&f).await?, 1);
    assert_eq!(audit_rows(&f, "created").await?, 1);
    Ok(())
}

/// The same key for another request is refused with a 422, and runs nothing.
pub async fn a_key_reused_for_another_request_is_refused(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let first = create("first");
    f.execute_once(&alice(), &once("k", &first), first)
        .await
        .value?;
    let other = create("other");
    let refused = f.execute_once(&alice(), &once("k", &other), other).await;
    assert!(!refused.replayed);
    match refused.value {
        Err(e @ Error::Validation { .. }) => assert_eq!(
            e.to_string(),
            "Idempotency-Key: reused with a different request"
        ),
        other => panic!("expected a 422, got {other:?}"),
    }
    assert_eq!(tasks(&f).await?, 1);
    Ok(())
}

/// Keys are scoped to the caller: two callers with one key do not see each other's outcomes.
pub async fn keys_belong_to_their_caller(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let command = create("same body");
    let key = once("shared", &command);
    let a = f.execute_once(&alice(), &key, command.clone()).await;
    let b = f.execute_once(&Identity::user("bob"), &key, command).await;
    assert!(!a.replayed && !b.replayed);
    let (Outcome::Task(ta), Outcome::Task(tb)) = (a.value?, b.value?) else {
        panic!("two tasks")
    };
    assert_ne!(ta.id, tb.id);
    assert_eq!(tasks(&f).await?, 2);
    Ok(())
}

/// A refusal (here 400) is kept and replayed; a validation error (422) is not kept, so a retry
/// runs again.
pub async fn refusals_are_replayed_and_validation_errors_are_not(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let t = f.create_task(&alice(), NewTask::titled("t")).await?;
    let complete = Command::Act {
        id: t.id,
        action: Action::Complete,
        precondition: Precondition::Any,
        fence: None,
    };
    let key = once("complete", &complete);
    let first = f.execute_once(&alice(), &key, complete.clone()).await;
    let text = "Cannot complete task with status 'pending'";
    assert_eq!(
        first.value.err().map(|e| e.to_string()).as_deref(),
        Some(text)
    );
    // The task moves on; the replay still tells what the request was answered then.
    f.start(&alice(), t.id, None).await?;
    let again = f.execute_once(&alice(), &key, complete).await;
    assert!(again.replayed);
    assert_eq!(
        again.value.err().map(|e| e.to_string()).as_deref(),
        Some(text)
    );

    let bad = Command::Act {
        id: t.id,
        action: Action::Progress {
            percent: 500,
            note: None,
        },
        precondition: Precondition::Any,
        fence: None,
    };
    let key = once("bad", &bad);
    for _ in 0..2 {
        let answer = f.execute_once(&alice(), &key, bad.clone()).await;
        assert!(!answer.replayed, "a 422 is never replayed");
        assert!(matches!(answer.value, Err(Error::Validation { .. })));
    }
    Ok(())
}

/// Every kind of write keeps its outcome: update, a lifecycle move, a dependency, a heartbeat,
/// a worker, a delete.
pub async fn every_kind_of_write_is_replayed(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store);
    let root = Identity::admin("root");
    let a = f.create_task(&alice(), NewTask::titled("a")).await?;
    let b = f.create_task(&alice(), NewTask::titled("b")).await?;
    let started = f
        .act(
            &alice(),
            b.id,
            Action::Start {
                lease_seconds: Some(60),
            },
            None,
        )
        .await?;
    let commands = [
        Command::UpdateTask {
            id: a.id,
            patch: TaskPatch {
                title: Some("renamed".into()),
                ..TaskPatch::default()
            },
            precondition: Precondition::Any,
            fence: None,
        },
        Command::AddDependency {
            id: a.id,
            depends_on: b.id,
            fence: None,
        },
        Command::Heartbeat {
            id: b.id,
            lease_seconds: Some(120),
            fence: Some(started.fence),
        },
        Command::Act {
            id: b.id,
            action: Action::Progress {
                percent: 10,
                note: None,
            },
            precondition: Precondition::Any,
            fence: Some(started.fence),
        },
        Command::PutWorker {
            id: "bot".into(),
            worker_type: WorkerType::Agent,
            name: None,
        },
        Command::RemoveDependency {
            id: a.id,
            depends_on: b.id,
            fence: None,
        },
        Command::DeleteTask {
            id: a.id,
            precondition: Precondition::Any,
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        let key = once(&format!("write-{i}"), &command);
        let first = f.execute_once(&root, &key, command.clone()).await;
        let first = first.value?;
        let rows = f.list_audit(&root, &AuditFilter::default()).await?.total;
        let again = f.execute_once(&root, &key, command.clone()).await;
        assert!(again.replayed, "{command:?}");
        assert_eq!(again.value?, first, "{command:?}");
        let after = f.list_audit(&root, &AuditFilter::default()).await?.total;
        assert_eq!(after, rows, "a replay writes nothing: {command:?}");
    }
    Ok(())
}

/// The outcome of a change is stored with the change itself: even if nothing runs after the
/// change committed (here: the step that stores outcomes afterwards always fails), a retry is
/// a replay, not a second run.
pub async fn the_outcome_is_stored_with_the_change(store: DynStore) -> TestResult {
    let (_, crashy) = race(RaceStore::new(store.clone()).fail_settle());
    let f = TaskFlow::new(crashy);
    for (name, command) in [
        ("create", create("crash")),
        (
            "claim",
            Command::ClaimNext {
                project: None,
                lease_seconds: None,
            },
        ),
    ] {
        let key = once(name, &command);
        let first = f
            .execute_once(&alice(), &key, command.clone())
            .await
            .value?;
        let again = f.execute_once(&alice(), &key, command).await;
        assert!(again.replayed, "{name}: the record came with the change");
        assert_eq!(again.value?, first);
    }
    assert_eq!(audit_rows(&f, "created").await?, 1);
    assert_eq!(audit_rows(&f, "started").await?, 1);
    Ok(())
}

/// A reservation whose request died (nothing stored it within the timeout) does not block its
/// key forever: the next request with the key runs.
pub async fn a_reservation_whose_request_died_is_taken_over(store: DynStore) -> TestResult {
    let records = store
        .idempotency()
        .expect("the conformance suite needs a store with idempotency records");
    let f = TaskFlow::new(store.clone());
    let command = create("after a crash");
    let key = once("orphan", &command);
    let long_ago = now() - chrono::Duration::minutes(10);
    let reserve = Reserve {
        caller: "alice".into(),
        key: "orphan".into(),
        fingerprint: key.fingerprint.clone(),
        now: long_ago,
        stale_before: long_ago - chrono::Duration::minutes(1),
        expires_at: now() + chrono::Duration::hours(1),
    };
    assert_eq!(records.reserve(&reserve).await?, Reservation::Reserved);
    let answer = f.execute_once(&alice(), &key, command).await;
    assert!(!answer.replayed);
    assert!(matches!(answer.value?, Outcome::Task(_)));
    // A fresh reservation, on the other hand, holds.
    let young = Reserve {
        key: "young".into(),
        now: now(),
        stale_before: now() - chrono::Duration::minutes(1),
        ..reserve
    };
    assert_eq!(records.reserve(&young).await?, Reservation::Reserved);
    let command = create("later");
    let key = Idempotent {
        fingerprint: young.fingerprint.clone(),
        ..once("young", &command)
    };
    let blocked = f.execute_once(&alice(), &key, command).await;
    assert!(matches!(blocked.value, Err(Error::IdempotencyInProgress)));
    Ok(())
}

/// Records live for the time-to-live: after it a key runs again, and the purge deletes them.
pub async fn records_expire_and_are_purged(store: DynStore) -> TestResult {
    let f = TaskFlow::new(store).with_idempotency_ttl(Duration::from_millis(200));
    let command = create("short-lived");
    let key = once("ttl", &command);
    f.execute_once(&alice(), &key, command.clone())
        .await
        .value?;
    assert!(
        f.execute_once(&alice(), &key, command.clone())
            .await
            .replayed
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let purged = f.purge_idempotency_records().await?;
    assert!(purged >= 1, "the expired record is purged");
    let after = f.execute_once(&alice(), &key, command).await;
    assert!(!after.replayed, "an expired key runs again");
    assert_eq!(tasks(&f).await?, 2);
    Ok(())
}
