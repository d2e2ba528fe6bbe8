//! Behaviour specific to the SQLite store: files, reopening, schema versions and settings, the
//! work queue across two stores on one file, and idempotency records (a change and its record
//! in one transaction; reservations across two stores on one file).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use taskflow_core::idempotency::{OutcomeRecord, Rendered, Reservation, Reserve};
use taskflow_core::model::{
    ActorType, AuditAction, AuditDraft, AuditFilter, Identity, NewTask, Priority, TaskDraft,
    TaskFilter, TaskStatus, WorkerType, now,
};
use taskflow_core::{
    Conflict, DependencyWrite, EdgeChange, Error, Invariant, Store, TaskFlow, TaskWrite, Written,
};
use taskflow_store_sqlite::SqliteStore;

fn admin() -> Identity {
    Identity::admin("root")
}

fn draft(title: &str) -> TaskDraft {
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

fn row(action: AuditAction) -> AuditDraft {
    AuditDraft {
        project_slug: None,
        actor_id: "root".to_owned(),
        actor_type: ActorType::Human,
        action,
        context: None,
        timestamp: now(),
        outcome: None,
    }
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let (task, worker) = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let flow = TaskFlow::new(store.clone());
        let worker = flow
            .put_worker(&admin(), "bot", WorkerType::Agent, Some("Bot".into()))
            .await
            .unwrap();
        let task = flow
            .create_task(&Identity::user("bot"), NewTask::titled("persist me"))
            .await
            .unwrap();
        let task = flow
            .start(&Identity::user("bot"), task.id, None)
            .await
            .unwrap();
        store.close().await.unwrap();
        let err = store.get_task(task.id).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        (task, worker)
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let flow = TaskFlow::new(store);
    let reread = flow.get_task(&admin(), task.id).await.unwrap();
    assert_eq!(reread, task);
    assert_eq!(reread.status, TaskStatus::InProgress);
    assert_eq!(flow.get_worker(&admin(), "bot").await.unwrap(), worker);
    let trail = flow.task_audit(&admin(), task.id).await.unwrap();
    assert_eq!(trail.len(), 2);
    assert!(trail.iter().all(|e| e.actor_type == ActorType::Agent));
    let next = flow
        .create_task(&admin(), NewTask::titled("after reopen"))
        .await
        .unwrap();
    assert!(next.id > task.id);
}

#[tokio::test]
async fn reopening_keeps_schema_version_and_applies_no_migration_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        store.close().await.unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::schema_version() as i64);
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('tasks', 'audit_log', 'workers', 'task_dependencies', \
             'idempotency_records')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 5);
}

#[tokio::test]
async fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.db");
    std::fs::write(
        &path,
        b"this is certainly not a SQLite database file, just text. ".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("is not a SQLite database"), "{text}");
    assert!(text.contains("not-a-db.db"), "{text}");
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        57 * 200,
        "the file is left untouched"
    );
}

#[tokio::test]
async fn a_directory_or_unwritable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    let missing_parent = dir.path().join("no/such/dir/t.db");
    let err = SqliteStore::open(&missing_parent).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot open SQLite database"),
        "{err}"
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    SqliteStore::open(&path)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let future = SqliteStore::schema_version() as i64 + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("newer taskflow"), "{text}");
    assert!(text.contains(&format!("schema version {future}")), "{text}");
    let version: i64 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, future, "a refused database is not modified");
}

#[tokio::test]
async fn file_databases_use_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let _store = SqliteStore::open(&path).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Every list filter and audit lookup has an index.
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.join("; ")
    };
    for (sql, index) in [
        (
            "SELECT * FROM tasks WHERE status = 'x' ORDER BY id",
            "tasks_by_status",
        ),
        (
            "SELECT * FROM tasks WHERE assigned_to = 'x' ORDER BY id",
            "tasks_by_assigned_to",
        ),
        (
            "SELECT * FROM tasks WHERE project_slug = 'x' ORDER BY id",
            "tasks_by_project_slug",
        ),
        (
            "SELECT * FROM tasks WHERE priority = 'x' ORDER BY id",
            "tasks_by_priority",
        ),
        (
            "SELECT * FROM tasks WHERE parent_id = 1 ORDER BY id",
            "tasks_by_parent_id",
        ),
        (
            "SELECT * FROM audit_log WHERE task_id = 1 ORDER BY id",
            "audit_by_task_id",
        ),
        (
            "SELECT * FROM audit_log WHERE actor_id = 'x' ORDER BY id",
            "audit_by_actor_id",
        ),
        (
            "SELECT * FROM audit_log WHERE action = 'x' ORDER BY id",
            "audit_by_action",
        ),
        (
            "SELECT * FROM audit_log WHERE project_slug = 'x' ORDER BY id",
            "audit_by_project_slug",
        ),
        // The work queue (migration 2).
        (
            "SELECT task_id FROM task_dependencies WHERE depends_on = 1 ORDER BY task_id",
            "task_dependencies_by_depends_on",
        ),
        (
            "SELECT * FROM tasks WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= 'x' \
             ORDER BY lease_expires_at, id LIMIT 5",
            "tasks_by_lease_expires_at",
        ),
        // The ready queue picks its page on ids and ranks, which this index covers.
        (
            "SELECT id FROM tasks WHERE status = 'x' AND (assigned_to IS NULL OR assigned_to = 'a') \
             ORDER BY CASE priority WHEN 'a' THEN 0 ELSE 1 END, id LIMIT 1",
            "COVERING INDEX tasks_ready",
        ),
        // Claim-next walks one priority's ready tasks in id order (migration 4): no sort.
        (
            "SELECT * FROM tasks t WHERE t.status = 'x' \
             AND (t.assigned_to IS NULL OR t.assigned_to = 'a') AND t.priority = 'high' \
             ORDER BY t.id LIMIT 1",
            "USING INDEX tasks_ready_head (status=? AND priority=?)",
        ),
        // ... and in one project, that project's ready tasks only (migration 5).
        (
            "SELECT * FROM tasks t WHERE t.status = 'x' \
             AND (t.assigned_to IS NULL OR t.assigned_to = 'a') AND t.project_slug = 'p' \
             AND t.priority = 'high' ORDER BY t.id LIMIT 1",
            "USING INDEX tasks_ready_project (project_slug=? AND status=? AND priority=?)",
        ),
    ] {
        let p = plan(sql);
        assert!(p.contains(index), "{sql}: {p}");
    }
}

#[tokio::test]
async fn urls_open_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("url.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", abs.display()))
        .await
        .unwrap();
    assert_eq!(store.path(), abs);
    assert!(abs.exists(), "a missing file is created");
    let mem = SqliteStore::connect("sqlite::memory:").await.unwrap();
    mem.ping().await.unwrap();
    let err = SqliteStore::connect("mysql://nope").await.unwrap_err();
    assert!(err.to_string().contains("unsupported SQLite URL"), "{err}");
}

#[tokio::test]
async fn readers_see_committed_writes_immediately() {
    let dir = tempfile::tempdir().unwrap();
    let flow = TaskFlow::new(Arc::new(
        SqliteStore::open(dir.path().join("t.db")).await.unwrap(),
    ));
    for i in 0..20 {
        let t = flow
            .create_task(&admin(), NewTask::titled(format!("t{i}")))
            .await
            .unwrap();
        let page = flow
            .list_tasks(&admin(), &TaskFilter::default())
            .await
            .unwrap();
        assert_eq!(page.total, i + 1);
        assert_eq!(flow.get_task(&admin(), t.id).await.unwrap(), t);
    }
}

/// The cycle check walks `parent_id` with `UNION`, so a cycle already in the file (which the
/// store never writes) ends the walk. With `UNION ALL` the walk would never end; the test runs
/// on its own runtime so that it then fails after 10 s instead of hanging on the spinning
/// blocking thread.
#[test]
fn a_cycle_already_stored_ends_the_cycle_check() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let reparent_around_a_stored_cycle = async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut ids = Vec::new();
        for title in ["a", "b", "c"] {
            match store
                .insert_task(&draft(title), &row(AuditAction::Created))
                .await
            {
                Ok(Written::Done(t)) => ids.push(t.id),
                other => panic!("insert {title}: {other:?}"),
            }
        }
        let [a, b, c] = ids[..] else { unreachable!() };
        // A cycle that the store would never write, written behind its back: a -> b -> a.
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE tasks SET parent_id = ?1 WHERE id = ?2", [b, a])
            .unwrap();
        conn.execute("UPDATE tasks SET parent_id = ?1 WHERE id = ?2", [a, b])
            .unwrap();

        let reparent = |task: i64, parent: i64| {
            let store = store.clone();
            async move {
                let mut next = store.get_task(task).await.unwrap().unwrap();
                let expected_version = next.version;
                next.parent_id = Some(parent);
                next.version += 1;
                let write = TaskWrite {
                    task: next,
                    expected_version,
                    expected_lease_expires_at: None,
                    audit: row(AuditAction::Updated),
                    invariants: vec![Invariant::AcyclicParent { task, parent }],
                };
                store.update_task(&write).await.unwrap()
            }
        };
        // The walk from a goes a -> b -> a and stops there: it never reaches c.
        assert_eq!(reparent(c, a).await, Written::Done(()));
        // a under b is refused: the walk from b reaches a.
        assert_eq!(
            reparent(a, b).await,
            Written::Refused(Conflict::ParentCycle { parent: b })
        );
        assert_eq!(store.get_task(c).await.unwrap().unwrap().parent_id, Some(a));
    };
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), reparent_around_a_stored_cycle).await
    });
    rt.shutdown_background();
    outcome.expect("the cycle check ends on a stored cycle");
}

#[tokio::test]
async fn an_unknown_stored_action_is_a_corrupt_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let flow = TaskFlow::new(Arc::new(SqliteStore::open(&path).await.unwrap()));
    let task = flow
        .create_task(&admin(), NewTask::titled("t"))
        .await
        .unwrap();
    let trail = flow.task_audit(&admin(), task.id).await.unwrap();
    assert_eq!(trail[0].action, AuditAction::Created);
    let stored: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT action FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "created", "the action is stored as its text");

    Connection::open(&path)
        .unwrap()
        .execute("UPDATE audit_log SET action = 'teleported'", [])
        .unwrap();
    for err in [
        flow.task_audit(&admin(), task.id).await.unwrap_err(),
        flow.list_audit(&admin(), &AuditFilter::default())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "SQLite store: stored action \"teleported\" is not valid: action: must be one of \
             'created', 'started', 'progressed', 'review_requested', 'changes_requested', \
             'completed', 'blocked', 'unblocked', 'updated', 'deleted', 'dependency_added', \
             'dependency_removed', 'released', 'lease_expired'"
        );
    }
}

/// Like the parent walk, the dependency walk uses `UNION`, so a dependency cycle already in the
/// file (which the store never writes) ends it; on its own runtime so that a walk that never
/// ended would fail after 10 s instead of hanging.
#[test]
fn a_dependency_cycle_already_stored_ends_the_cycle_check() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let add_around_a_stored_cycle = async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut ids = Vec::new();
        for title in ["a", "b", "c"] {
            match store
                .insert_task(&draft(title), &row(AuditAction::Created))
                .await
            {
                Ok(Written::Done(t)) => ids.push(t.id),
                other => panic!("insert {title}: {other:?}"),
            }
        }
        let [a, b, c] = ids[..] else { unreachable!() };
        // a -> b -> a, written behind the store's back.
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?1, ?2), (?2, ?1)",
            [a, b],
        )
        .unwrap();

        let add = |task: i64, depends_on: i64| {
            let store = store.clone();
            async move {
                let stored = store.get_task(task).await.unwrap().unwrap();
                let mut next = stored.clone();
                next.version += 1;
                let write = DependencyWrite {
                    task: next,
                    expected_version: stored.version,
                    expected_lease_expires_at: stored.lease_expires_at,
                    change: EdgeChange::Add { depends_on },
                    audit: row(AuditAction::DependencyAdded),
                };
                store
                    .queue()
                    .unwrap()
                    .write_dependency(&write)
                    .await
                    .unwrap()
            }
        };
        // c waits for a: the walk from a goes a -> b -> a and stops, never reaching c.
        assert_eq!(add(c, a).await, Written::Done(()));
        // a waiting for c closes a cycle: the walk from c reaches a.
        assert_eq!(
            add(a, c).await,
            Written::Refused(Conflict::DependencyCycle { depends_on: c })
        );
        let deps = store.queue().unwrap().dependencies(a).await.unwrap();
        assert_eq!(deps.dependents, [b, c]);
    };
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), add_around_a_stored_cycle).await
    });
    rt.shutdown_background();
    outcome.expect("the dependency walk ends on a stored cycle");
}

/// Two stores on one file stand for two processes: each has its own connections, and only
/// SQLite's file lock orders their writes. 50 claimers released together, split between them,
/// on 20 ready tasks: each task goes to exactly one claimer, 30 get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_never_hand_out_a_task_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let one = TaskFlow::new(Arc::new(SqliteStore::open(&path).await.unwrap()));
    let two = TaskFlow::new(Arc::new(SqliteStore::open(&path).await.unwrap()));
    let mut ids = HashSet::new();
    for i in 0..20 {
        let flow = if i % 2 == 0 { &one } else { &two };
        let t = flow
            .create_task(&admin(), NewTask::titled(format!("t{i}")))
            .await
            .unwrap();
        ids.insert(t.id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let claims: Vec<_> = (0..50)
        .map(|i| {
            let flow = if i % 2 == 0 { one.clone() } else { two.clone() };
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let who = Identity::user(format!("agent-{i}"));
                let task = flow.claim_next(&who, None, Some(60)).await.unwrap();
                (who.id, task)
            })
        })
        .collect();
    let mut claimed = HashSet::new();
    let mut nothing = 0;
    for claim in claims {
        match claim.await.unwrap() {
            (who, Some(task)) => {
                assert_eq!(task.assigned_to.as_deref(), Some(who.as_str()));
                assert!(claimed.insert(task.id), "task {} handed out twice", task.id);
            }
            (_, None) => nothing += 1,
        }
    }
    assert_eq!((claimed.len(), nothing), (20, 30));
    assert_eq!(claimed, ids);
    let started = one
        .list_audit(
            &admin(),
            &AuditFilter {
                action: Some("started".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(started.total, 20);
    for id in ids {
        let t = two.get_task(&admin(), id).await.unwrap();
        assert_eq!(
            (t.status, t.fence, t.version),
            (TaskStatus::InProgress, 1, 2)
        );
    }
}

fn record(key: &str, outcome: Rendered) -> OutcomeRecord {
    OutcomeRecord {
        caller: "root".to_owned(),
        key: key.to_owned(),
        fingerprint: "fp".to_owned(),
        expires_at: now() + chrono::Duration::hours(1),
        outcome,
    }
}

fn reserve(key: &str) -> Reserve {
    let at = now();
    Reserve {
        caller: "root".to_owned(),
        key: key.to_owned(),
        fingerprint: "fp".to_owned(),
        now: at,
        stale_before: at - chrono::Duration::minutes(1),
        expires_at: at + chrono::Duration::hours(1),
    }
}

/// The idempotency records in the file at `path`.
fn records_in(path: &std::path::Path) -> rusqlite::Result<i64> {
    Connection::open(path)?.query_row("SELECT COUNT(*) FROM idempotency_records", [], |r| r.get(0))
}

/// The record rides on the change's transaction: an outcome that cannot be rendered (here a
/// task's outcome on a delete, which writes no task) fails the write, and nothing of it stays:
/// not the delete, not its audit row, not the record.
#[tokio::test]
async fn an_outcome_that_cannot_be_rendered_rolls_the_change_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let Written::Done(task) = store
        .insert_task(&draft("keep me"), &row(AuditAction::Created))
        .await
        .unwrap()
    else {
        panic!("inserted")
    };
    let mut audit = row(AuditAction::Deleted);
    audit.outcome = Some(record("del", Rendered::Task));
    let err = store.delete_task(task.id, 1, &audit).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert!(store.get_task(task.id).await.unwrap().is_some());
    assert_eq!(store.task_audit(task.id).await.unwrap().len(), 1);
    assert_eq!(records_in(&path).unwrap(), 0);
}

/// A change stores its outcome, rendered from the task as written, in its own transaction;
/// `forget` then drops nothing (only a reservation without an outcome is dropped), so a retry
/// is a replay rather than a second run. A reservation without an outcome is dropped.
#[tokio::test]
async fn a_stored_outcome_is_replayed_and_survives_forget() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let records = store.idempotency().unwrap();
    assert_eq!(
        records.reserve(&reserve("create")).await.unwrap(),
        Reservation::Reserved
    );
    let mut audit = row(AuditAction::Created);
    audit.outcome = Some(record("create", Rendered::Task));
    let Written::Done(task) = store.insert_task(&draft("once"), &audit).await.unwrap() else {
        panic!("inserted")
    };
    records.forget("root", "create").await.unwrap();
    let Reservation::Replay(stored) = records.reserve(&reserve("create")).await.unwrap() else {
        panic!("a replay")
    };
    let replayed = taskflow_core::idempotency::decode(&stored)
        .unwrap()
        .unwrap();
    assert_eq!(replayed, taskflow_core::Outcome::Task(task));

    assert_eq!(
        records.reserve(&reserve("dropped")).await.unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        records.reserve(&reserve("dropped")).await.unwrap(),
        Reservation::InProgress
    );
    records.forget("root", "dropped").await.unwrap();
    assert_eq!(
        records.reserve(&reserve("dropped")).await.unwrap(),
        Reservation::Reserved
    );
}

/// Two stores on one file stand for two processes: a key reserved through one is held against
/// the other, its outcome settled through one is replayed through the other, and the purge
/// deletes exactly the records whose expiry is at or before the given time.
#[tokio::test]
async fn reservations_hold_across_two_stores_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let one = SqliteStore::open(&path).await.unwrap();
    let two = SqliteStore::open(&path).await.unwrap();
    let (a, b) = (one.idempotency().unwrap(), two.idempotency().unwrap());
    let first = reserve("k");
    assert_eq!(a.reserve(&first).await.unwrap(), Reservation::Reserved);
    assert_eq!(
        b.reserve(&reserve("k")).await.unwrap(),
        Reservation::InProgress
    );
    let other = Reserve {
        fingerprint: "other".to_owned(),
        ..reserve("k")
    };
    assert_eq!(b.reserve(&other).await.unwrap(), Reservation::Mismatch);
    a.settle(&record("k", Rendered::Ready("\"done\"".to_owned())))
        .await
        .unwrap();
    assert_eq!(
        b.reserve(&reserve("k")).await.unwrap(),
        Reservation::Replay("\"done\"".to_owned())
    );
    let stored: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT expires_at FROM idempotency_records", [], |r| {
            r.get(0)
        })
        .unwrap();
    let expires_at = chrono::DateTime::parse_from_rfc3339(&stored)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let just_before = expires_at - chrono::Duration::microseconds(1);
    assert_eq!(b.purge_expired(just_before).await.unwrap(), 0);
    // Past its expiry a record counts as absent, even before the purge.
    let later = Reserve {
        fingerprint: "other".to_owned(),
        now: expires_at,
        stale_before: expires_at - chrono::Duration::minutes(1),
        expires_at: expires_at + chrono::Duration::hours(1),
        ..reserve("k")
    };
    assert_eq!(a.reserve(&later).await.unwrap(), Reservation::Reserved);
    assert_eq!(b.purge_expired(expires_at).await.unwrap(), 0);
    assert_eq!(
        b.purge_expired(later.expires_at).await.unwrap(),
        1,
        "expires_at <= now is expired"
    );
    assert_eq!(records_in(&path).unwrap(), 0);
}

/// Every write that changes a task stores its outcome with the change, not only create and
/// claim-next (which the conformance suite checks): with the step after the change failing
/// (`settle`), an update, a lifecycle move, a dependency added and removed, and a delete are
/// each replayed on retry, and the replay writes nothing.
#[tokio::test]
async fn every_change_stores_its_outcome_with_itself() {
    use taskflow_core::idempotency::{IdempotencyKey, Idempotent};
    use taskflow_core::lifecycle::Action;
    use taskflow_core::model::{Precondition, TaskPatch};
    use taskflow_core::testkit::{RaceStore, race};
    use taskflow_core::{Command, DynStore};

    let store: DynStore = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let (_, crashy) = race(RaceStore::new(store).fail_settle());
    let f = TaskFlow::new(crashy);
    let root = admin();
    let a = f.create_task(&root, NewTask::titled("a")).await.unwrap();
    let b = f.create_task(&root, NewTask::titled("b")).await.unwrap();
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
        Command::Act {
            id: b.id,
            action: Action::Start {
                lease_seconds: Some(60),
            },
            precondition: Precondition::Any,
            fence: None,
        },
        Command::AddDependency {
            id: a.id,
            depends_on: b.id,
            fence: None,
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
        let key = Idempotent::for_command(IdempotencyKey::new(format!("w{i}")).unwrap(), &command)
            .unwrap();
        let first = f.execute_once(&root, &key, command.clone()).await;
        assert!(!first.replayed);
        let first = first.value.unwrap();
        let rows = f
            .list_audit(&root, &AuditFilter::default())
            .await
            .unwrap()
            .total;
        let again = f.execute_once(&root, &key, command.clone()).await;
        assert!(
            again.replayed,
            "the record came with the change: {command:?}"
        );
        assert_eq!(again.value.unwrap(), first, "{command:?}");
        let after = f
            .list_audit(&root, &AuditFilter::default())
            .await
            .unwrap()
            .total;
        assert_eq!(after, rows, "a replay writes nothing: {command:?}");
    }
}

trait MapDone<T> {
    fn map_done<U>(self, f: impl FnOnce(T) -> U) -> Written<U>;
}

impl<T> MapDone<T> for Written<T> {
    fn map_done<U>(self, f: impl FnOnce(T) -> U) -> Written<U> {
        match self {
            Written::Done(t) => Written::Done(f(t)),
            Written::Stale => Written::Stale,
            Written::Refused(conflict) => Written::Refused(conflict),
        }
    }
}

/// Group commit: concurrent writes share transactions, yet each stays atomic on its own. Of
/// 300 writes in flight together, 100 inserts all land, a refused insert (missing parent) and
/// the 99 losers of one compare-and-set write nothing, and exactly one update wins; every
/// change has its audit row and nothing else has one. The store reports fewer commits than
/// writes, so the writes really were batched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_keeps_each_write_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("batch.db"))
            .await
            .unwrap(),
    );
    let Written::Done(target) = store
        .insert_task(&draft("contested"), &row(AuditAction::Created))
        .await
        .unwrap()
    else {
        panic!("the first insert was not written")
    };
    let before = store.commit_stats();

    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    let mut handles = Vec::new();
    for i in 0..300 {
        let (store, barrier, target) = (store.clone(), barrier.clone(), target.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            match i % 3 {
                0 => (
                    "insert",
                    store
                        .insert_task(&draft(&format!("t{i}")), &row(AuditAction::Created))
                        .await
                        .unwrap()
                        .map_done(|t| t.id),
                ),
                1 => {
                    let orphan = TaskDraft {
                        parent_id: Some(999_999),
                        ..draft("orphan")
                    };
                    (
                        "orphan",
                        store
                            .insert_task(&orphan, &row(AuditAction::Created))
                            .await
                            .unwrap()
                            .map_done(|t| t.id),
                    )
                }
                _ => {
                    let mut task = target.clone();
                    task.title = format!("won by {i}");
                    task.version = 2;
                    let write = TaskWrite {
                        task,
                        expected_version: 1,
                        expected_lease_expires_at: None,
                        audit: row(AuditAction::Updated),
                        invariants: Vec::new(),
                    };
                    (
                        "update",
                        store.update_task(&write).await.unwrap().map_done(|()| 0),
                    )
                }
            }
        }));
    }
    let (mut inserted, mut orphans_refused, mut updates_won, mut updates_stale) =
        (HashSet::new(), 0, 0, 0);
    for handle in handles {
        match handle.await.unwrap() {
            ("insert", Written::Done(id)) => assert!(inserted.insert(id)),
            ("orphan", Written::Refused(Conflict::ParentMissing { parent: 999_999 })) => {
                orphans_refused += 1;
            }
            ("update", Written::Done(_)) => updates_won += 1,
            ("update", Written::Stale) => updates_stale += 1,
            (kind, other) => panic!("unexpected outcome of {kind}: {other:?}"),
        }
    }
    assert_eq!(
        (inserted.len(), orphans_refused, updates_won, updates_stale),
        (100, 100, 1, 99)
    );

    let flow = TaskFlow::new(store.clone());
    let tasks = flow
        .list_tasks(&admin(), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(
        tasks.total, 101,
        "only the target and the 100 inserts exist"
    );
    let audit = flow
        .list_audit(&admin(), &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(
        audit.total,
        1 + 100 + 1,
        "one row per change, none for refusals"
    );
    assert!(
        flow.get_task(&admin(), target.id)
            .await
            .unwrap()
            .title
            .starts_with("won by ")
    );

    let after = store.commit_stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert_eq!(writes, 300, "every write went through a committed batch");
    assert!(
        commits < writes,
        "300 concurrent writes took {commits} commits: nothing was batched"
    );
}
