//! `PgStore` behaviour beyond the conformance suite: several processes on one database,
//! migrations, races the service cannot produce on its own, and connection failures.
//!
//! Tests that need a server skip (or fail under `CI=true`) without `TASKFLOW_TEST_PG_URL`;
//! the connection-failure tests need none and always run.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::{Connection, PgConnection, Row};
use taskflow_core::idempotency::{
    IdempotencyKey, Idempotent, OutcomeRecord, Rendered, Reservation, Reserve, decode,
};
use taskflow_core::model::{
    ActorType, AuditAction, AuditDraft, AuditEntry, Identity, NewTask, Priority, Task, TaskDraft,
    TaskStatus, Timestamp, now,
};
use taskflow_core::{
    Command, Conflict, DependencyWrite, EdgeChange, Error, Invariant, Outcome, Store, TaskFlow,
    TaskWrite, Written,
};
use taskflow_store_pg::PgStore;
use taskflow_store_pg::test_support::TestDb;
use tokio::sync::Barrier;

fn audit(action: AuditAction) -> AuditDraft {
    AuditDraft {
        project_slug: None,
        actor_id: "root".into(),
        actor_type: ActorType::Human,
        action,
        context: None,
        timestamp: now(),
        outcome: None,
    }
}

fn new_task(title: &str, parent_id: Option<i64>) -> TaskDraft {
    let at = now();
    TaskDraft {
        title: title.into(),
        description: None,
        status: TaskStatus::Pending,
        priority: Priority::Medium,
        progress_percent: 0,
        assigned_to: None,
        project_slug: None,
        parent_id,
        created_at: at,
        updated_at: at,
        version: 1,
        fence: 0,
    }
}

/// Inserts `task`, which must be written.
async fn insert(store: &dyn Store, task: TaskDraft) -> Task {
    match store
        .insert_task(&task, &audit(AuditAction::Created))
        .await
        .expect("insert a task")
    {
        Written::Done(task) => task,
        other => panic!("insert of {:?} was not written: {other:?}", task.title),
    }
}

/// Waits until some session of `db` is blocked on a lock, so that a race is set up for sure.
async fn wait_for_lock_wait(db: &TestDb) {
    let mut conn = PgConnection::connect_with(&db.options)
        .await
        .expect("connect to watch for lock waits");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no session ever waited on a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.close().await.ok();
}

/// Two stores with separate pools on one database stand for two server processes. 50 starts
/// race on one task, 25 through each: one wins, 49 are refused by the lifecycle, one
/// `started` row is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_50_starts_on_one_task() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = TaskFlow::new(Arc::new(db.store().await));
    let second = TaskFlow::new(Arc::new(db.store().await));
    let task = first
        .create_task(&Identity::user("alice"), NewTask::titled("contested"))
        .await
        .unwrap();

    let attempts = (0..50).map(|i| {
        let flow = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tokio::spawn(async move {
            flow.start(&Identity::user(format!("agent-{i}")), task.id, None)
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("start task panicked"))
        .collect();

    let winners: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    let losers: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(losers.len(), 49);
    for err in losers {
        assert!(matches!(err, Error::InvalidTransition { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Cannot start task with status 'in_progress'"
        );
    }

    // Both processes see the same outcome.
    let alice = Identity::user("alice");
    let seen_first = first.get_task(&alice, task.id).await.unwrap();
    let seen_second = second.get_task(&alice, task.id).await.unwrap();
    assert_eq!(seen_first, seen_second);
    assert_eq!(seen_first.version, 2);
    assert_eq!(seen_first.status, TaskStatus::InProgress);
    assert_eq!(seen_first.assigned_to, winners[0].assigned_to);
    let started: Vec<AuditEntry> = second
        .task_audit(&alice, task.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.action == AuditAction::Started)
        .collect();
    assert_eq!(started.len(), 1, "exactly one started row");
    assert_eq!(Some(&started[0].actor_id), seen_first.assigned_to.as_ref());

    first.store().close().await.unwrap();
    second.store().close().await.unwrap();
}

/// On an empty database the migrations create the schema; running them again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_from_zero_and_rerun_is_a_no_op() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let tables = "SELECT table_name::text FROM information_schema.tables \
                  WHERE table_schema = 'public' ORDER BY table_name";
    let before: Vec<String> = sqlx::query_scalar(tables)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        before.is_empty(),
        "a fresh database has no tables: {before:?}"
    );

    let store = db.store().await;
    let after: Vec<String> = sqlx::query_scalar(tables)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        after,
        [
            "_sqlx_migrations",
            "audit_log",
            "idempotency_records",
            "task_dependencies",
            "tasks",
            "workers"
        ]
    );

    let applied = "SELECT version, success, installed_on::text AS installed_on \
                   FROM _sqlx_migrations ORDER BY version";
    let read_applied = |rows: Vec<sqlx::postgres::PgRow>| {
        rows.iter()
            .map(|r| {
                (
                    r.get::<i64, _>("version"),
                    r.get::<bool, _>("success"),
                    r.get::<String, _>("installed_on"),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = read_applied(sqlx::query(applied).fetch_all(&mut conn).await.unwrap());
    let embedded: Vec<i64> = PgStore::migrator().iter().map(|m| m.version).collect();
    assert!(!embedded.is_empty());
    assert_eq!(
        first.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(),
        embedded,
        "every embedded migration is applied"
    );
    assert!(first.iter().all(|(_, ok, _)| *ok));

    // Again, explicitly and through a second connect: nothing is re-applied.
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let again = db.store().await;
    let second = read_applied(sqlx::query(applied).fetch_all(&mut conn).await.unwrap());
    assert_eq!(first, second, "re-running migrations is a no-op");

    // The schema promises of the issue: identity ids, jsonb context, timestamptz times.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND (column_name IN ('context', 'created_at', \
               'updated_at', 'timestamp') OR (column_name = 'id' AND table_name <> 'workers')) \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let tz = "timestamp with time zone";
    assert_eq!(
        columns,
        [
            ("audit_log", "context", "jsonb"),
            ("audit_log", "id", "bigint"),
            ("audit_log", "timestamp", tz),
            ("idempotency_records", "created_at", tz),
            ("tasks", "created_at", tz),
            ("tasks", "id", "bigint"),
            ("tasks", "updated_at", tz),
            ("workers", "created_at", tz),
        ]
        .map(|(t, c, d)| (t.to_owned(), c.to_owned(), d.to_owned()))
    );
    let identities: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_schema = 'public' AND column_name = 'id' AND is_identity = 'YES'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        identities, 2,
        "tasks.id and audit_log.id are identity columns"
    );

    // Every list filter and audit lookup has an index whose first column is the filter.
    let indexed: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, a.attname::text \
         FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for wanted in [
        ("tasks", "status"),
        ("tasks", "assigned_to"),
        ("tasks", "project_slug"),
        ("tasks", "priority"),
        ("tasks", "parent_id"),
        ("audit_log", "task_id"),
        ("audit_log", "actor_id"),
        ("audit_log", "action"),
        ("audit_log", "project_slug"),
        ("idempotency_records", "caller"),
        ("idempotency_records", "expires_at"),
    ] {
        assert!(
            indexed.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "no index on {wanted:?}: {indexed:?}"
        );
    }

    // parent_id is a foreign key; the audit trail has none, so it outlives its tasks.
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, conname::text FROM pg_constraint \
         WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        foreign_keys,
        [
            ("task_dependencies", "task_dependencies_depends_on_fkey"),
            ("task_dependencies", "task_dependencies_task_id_fkey"),
            ("tasks", "tasks_parent_id_fkey"),
        ]
        .map(|(t, c)| (t.to_owned(), c.to_owned()))
    );

    conn.close().await.ok();
    store.close().await.unwrap();
    again.close().await.unwrap();
}

/// Several processes starting at once on an empty database migrate it once, without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_migrate_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores = join_all((0..4).map(|_| db.store())).await;
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, PgStore::migrator().iter().count() as i64);
    conn.close().await.ok();
    for store in stores {
        store.close().await.unwrap();
    }
}

/// A subtask inserted while a delete of its parent is in flight (its transaction still open
/// when the delete starts, committed while the delete waits) still stops the delete: the
/// delete's row lock waits for the insert's foreign-key lock, and its subtask check then sees
/// the committed subtask (the foreign key would refuse the `DELETE` otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_racing_a_subtask_insert_is_refused() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = Arc::new(db.store().await);
    let parent = insert(&*store, new_task("parent", None)).await;

    // Another process inserts a subtask and holds its transaction open; its foreign-key check
    // locks the parent row, so the delete below has to wait for it.
    let mut other = PgConnection::connect_with(&db.options).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO tasks (title, status, priority, progress_percent, parent_id, created_at, \
                            updated_at, version) \
         VALUES ('child', 'pending', 'medium', 0, $1, now(), now(), 1)",
    )
    .bind(parent.id)
    .execute(&mut *tx)
    .await
    .unwrap();

    let deleting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .delete_task(parent.id, 1, &audit(AuditAction::Deleted))
                .await
        })
    };
    wait_for_lock_wait(&db).await;
    tx.commit().await.unwrap();

    let result = deleting.await.unwrap();
    assert!(
        matches!(result, Ok(Written::Refused(Conflict::HasSubtasks))),
        "{result:?}"
    );
    assert!(store.get_task(parent.id).await.unwrap().is_some());
    let actions: Vec<AuditAction> = store
        .task_audit(parent.id)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(
        actions,
        [AuditAction::Created],
        "a refused delete writes no row"
    );

    other.close().await.ok();
    store.close().await.unwrap();
}

/// An insert under a parent that is deleted meanwhile is refused as `ParentMissing`, as the
/// service's own check would refuse it, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insert_under_a_vanishing_parent_is_refused() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = Arc::new(db.store().await);
    let parent = insert(&*store, new_task("parent", None)).await;

    // Another process deletes the parent and holds its transaction open.
    let mut other = PgConnection::connect_with(&db.options).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(parent.id)
        .execute(&mut *tx)
        .await
        .unwrap();

    let inserting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_task(
                    &new_task("child", Some(parent.id)),
                    &audit(AuditAction::Created),
                )
                .await
        })
    };
    wait_for_lock_wait(&db).await;
    tx.commit().await.unwrap();

    let missing = Written::Refused(Conflict::ParentMissing { parent: parent.id });
    match inserting.await.unwrap() {
        Ok(written) => assert_eq!(written, missing),
        Err(err) => panic!("expected a ParentMissing refusal, got {err:?}"),
    }
    // And afterwards, with no race at all.
    let result = store
        .insert_task(
            &new_task("child", Some(parent.id)),
            &audit(AuditAction::Created),
        )
        .await
        .unwrap();
    assert_eq!(result, missing);
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let (tasks, rows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM audit_log)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (tasks, rows),
        (0, 1),
        "only the parent's created row remains"
    );

    conn.close().await.ok();
    other.close().await.ok();
    store.close().await.unwrap();
}

/// Two stores with separate pools on one database stand for two server processes: `A.parent =
/// B` through one and `B.parent = A` through the other, each with its `AcyclicParent`
/// invariant, released together, 20 rounds. Every round exactly one succeeds and the other is
/// refused as a cycle, and no cycle is ever stored: the graph lock lives in the server, so it
/// orders re-parents across pools as well as within one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_reparents_and_never_form_a_cycle() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(db.store().await);
    let second: Arc<dyn Store> = Arc::new(db.store().await);
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();

    for round in 0..20 {
        let a = insert(&*first, new_task(&format!("a{round}"), None)).await;
        let b = insert(&*second, new_task(&format!("b{round}"), None)).await;
        let barrier = Arc::new(Barrier::new(2));
        let writes =
            [(first.clone(), &a, b.id), (second.clone(), &b, a.id)].map(|(store, task, parent)| {
                let mut next = task.clone();
                next.parent_id = Some(parent);
                next.version += 1;
                next.updated_at = now();
                let write = TaskWrite {
                    task: next,
                    expected_version: task.version,
                    expected_lease_expires_at: None,
                    audit: audit(AuditAction::Updated),
                    invariants: vec![Invariant::AcyclicParent {
                        task: task.id,
                        parent,
                    }],
                };
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.update_task(&write).await
                })
            });
        let mut done = 0;
        for joined in join_all(writes).await {
            match joined.expect("a re-parent panicked") {
                Ok(Written::Done(())) => done += 1,
                Ok(Written::Refused(Conflict::ParentCycle { .. })) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(done, 1, "round {round}: exactly one re-parent succeeds");

        // Seen from either process, the pair is not a cycle.
        let a = first.get_task(a.id).await.unwrap().expect("a");
        let b = second.get_task(b.id).await.unwrap().expect("b");
        assert!(
            !(a.parent_id == Some(b.id) && b.parent_id == Some(a.id)),
            "round {round}: a cycle formed"
        );
        // Nor is anything else in the table: no task reaches itself through its parents.
        let in_cycles: i64 = sqlx::query_scalar(
            "WITH RECURSIVE walk (start, id) AS ( \
                 SELECT id, parent_id FROM tasks WHERE parent_id IS NOT NULL \
                 UNION \
                 SELECT w.start, t.parent_id FROM walk w JOIN tasks t ON t.id = w.id \
                 WHERE t.parent_id IS NOT NULL) \
             SELECT count(*) FROM walk WHERE start = id",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(in_cycles, 0, "round {round}: a cycle is stored");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 20 * 3, "two created rows and one updated row a round");

    conn.close().await.ok();
    first.close().await.unwrap();
    second.close().await.unwrap();
}

/// After `close`, calls fail with an unavailable error (HTTP 503) instead of panicking or
/// hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_close_are_unavailable_errors() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    store.ping().await.unwrap();
    store.close().await.unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let err = store.get_task(1).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

/// Connections killed by the server turn into errors (or a transparent reconnect), never a
/// panic, and the store recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_errors_and_the_store_recovers() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    store.ping().await.unwrap();
    let mut admin = PgConnection::connect_with(&db.options).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    admin.close().await.ok();

    match store.get_task(1).await {
        Ok(_) => {}
        // A connection the server killed is an outage (57P01, or a broken socket): 503.
        Err(err) => assert!(matches!(err, Error::Unavailable(_)), "{err:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await.unwrap();
}

/// A database that does not exist is named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_is_a_clear_error() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let options = db.options.clone().database("tf_no_such_database");
    let err = PgStore::connect_with(options, PgStore::default_pool_options())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("cannot connect to Postgres at "), "{text}");
    assert!(
        text.ends_with("database \"tf_no_such_database\" does not exist"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The work queue across processes.

/// Counts the audit rows with `action`, per task, straight from the database.
async fn rows_per_task(conn: &mut PgConnection, action: AuditAction) -> HashMap<i64, i64> {
    sqlx::query_as::<_, (i64, i64)>(
        "SELECT task_id, count(*) FROM audit_log WHERE action = $1 GROUP BY task_id",
    )
    .bind(action.as_str())
    .fetch_all(conn)
    .await
    .expect("count audit rows")
    .into_iter()
    .collect()
}

/// Two stores with separate pools on one database stand for two server processes (two pools,
/// so two sets of server backends). 50 claimers, 25 through each, released together on 20
/// ready tasks: exactly 20 distinct tasks are claimed, 30 claimers get `None`, no claimer gets
/// two, and exactly 20 `started` rows are written, one per task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_50_claims_on_20_tasks() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = TaskFlow::new(Arc::new(db.store().await));
    let second = TaskFlow::new(Arc::new(db.store().await));
    let alice = Identity::user("alice");
    let mut ready = HashSet::new();
    for i in 0..20 {
        let task = first
            .create_task(&alice, NewTask::titled(format!("job {i}")))
            .await
            .unwrap();
        ready.insert(task.id);
    }

    let barrier = Arc::new(Barrier::new(50));
    let claims: Vec<_> = (0..50)
        .map(|i| {
            let flow = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let who = Identity::user(format!("agent-{i}"));
                barrier.wait().await;
                flow.claim_next(&who, None, Some(60))
                    .await
                    .map(|task| (who.id, task))
            })
        })
        .collect();
    let mut claimed: HashMap<i64, String> = HashMap::new();
    let mut claimers = HashSet::new();
    let mut nothing = 0;
    for joined in join_all(claims).await {
        match joined.expect("a claim panicked").expect("a claim failed") {
            (who, Some(task)) => {
                assert_eq!(task.assigned_to.as_deref(), Some(who.as_str()));
                assert_eq!(
                    (task.status, task.fence, task.version),
                    (TaskStatus::InProgress, 1, 2)
                );
                assert!(claimers.insert(who.clone()), "{who} got two tasks");
                assert!(
                    claimed.insert(task.id, who).is_none(),
                    "task {} claimed twice",
                    task.id
                );
            }
            (_, None) => nothing += 1,
        }
    }
    assert_eq!((claimed.len(), nothing), (20, 30));
    assert_eq!(claimed.keys().copied().collect::<HashSet<_>>(), ready);

    // What is stored agrees, seen from either process and from the table itself.
    for (id, who) in &claimed {
        let stored = second.get_task(&alice, *id).await.unwrap();
        assert_eq!(stored.assigned_to.as_ref(), Some(who));
        assert_eq!(stored.status, TaskStatus::InProgress);
        assert!(stored.lease_expires_at.is_some());
    }
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let started = rows_per_task(&mut conn, AuditAction::Started).await;
    assert_eq!(started.len(), 20, "a started row for every task");
    assert!(
        started.values().all(|n| *n == 1),
        "one started row each: {started:?}"
    );
    let (total,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'started'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(total, 20);

    conn.close().await.ok();
    first.store().close().await.unwrap();
    second.store().close().await.unwrap();
}

/// Two sweepers in two processes race to reclaim the same expired leases: each lease is
/// reclaimed exactly once (one `lease_expired` row each, by `taskflow`/system), the sum of what
/// the two report is the number of expired leases, and a lease that has not run out is left
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_sweeps_and_reclaim_each_lease_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = TaskFlow::new(Arc::new(db.store().await));
    let second = TaskFlow::new(Arc::new(db.store().await));
    let alice = Identity::user("alice");
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();

    for round in 0..5 {
        let mut leased = Vec::new();
        for i in 0..30 {
            first
                .create_task(&alice, NewTask::titled(format!("r{round} t{i}")))
                .await
                .unwrap();
            let flow = if i % 2 == 0 { &first } else { &second };
            let who = Identity::user(format!("agent-{i}"));
            let task = flow.claim_next(&who, None, Some(10)).await.unwrap();
            leased.push(task.expect("a ready task"));
        }
        let created = first
            .create_task(&alice, NewTask::titled(format!("r{round} long")))
            .await
            .unwrap();
        let long = first
            .claim_next(&Identity::user("patient"), None, Some(3600))
            .await
            .unwrap()
            .expect("the long one");
        assert_eq!(long.id, created.id);

        let at = now() + Duration::from_secs(60);
        let barrier = Arc::new(Barrier::new(2));
        let sweeps = [first.clone(), second.clone()].map(|flow| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                flow.sweep_expired_leases_at(at).await
            })
        });
        let mut reclaimed = 0;
        for joined in join_all(sweeps).await {
            reclaimed += joined.expect("a sweep panicked").expect("a sweep failed");
        }
        assert_eq!(
            reclaimed, 30,
            "round {round}: each lease reclaimed exactly once"
        );

        let expiries = rows_per_task(&mut conn, AuditAction::LeaseExpired).await;
        for task in &leased {
            assert_eq!(
                expiries.get(&task.id),
                Some(&1),
                "round {round}: task {}",
                task.id
            );
            let stored = second.get_task(&alice, task.id).await.unwrap();
            assert_eq!(stored.status, TaskStatus::Pending);
            assert_eq!(stored.assigned_to, None);
            assert_eq!(
                (stored.lease_expires_at, stored.lease_seconds),
                (None, None)
            );
            assert_eq!(
                (stored.version, stored.fence),
                (task.version + 1, task.fence)
            );
        }
        let rows = first.task_audit(&alice, leased[0].id).await.unwrap();
        let expired = rows.last().expect("rows");
        assert_eq!(expired.action, AuditAction::LeaseExpired);
        assert_eq!(
            (expired.actor_id.as_str(), expired.actor_type),
            ("taskflow", ActorType::System)
        );
        assert_eq!(
            second.get_task(&alice, long.id).await.unwrap().status,
            TaskStatus::InProgress,
            "round {round}: a live lease is left alone"
        );
        assert_eq!(first.sweep_expired_leases_at(at).await.unwrap(), 0);

        // Put the reclaimed tasks out of the next round's way.
        for task in &leased {
            first.block(&alice, task.id, None, None).await.unwrap();
        }
        first.block(&alice, long.id, None, None).await.ok();
    }

    conn.close().await.ok();
    first.store().close().await.unwrap();
    second.store().close().await.unwrap();
}

/// A dependency added to a task while claim-next is choosing it (after the claim's snapshot,
/// before its row lock) must stop the claim from taking it: the claim re-checks the locked
/// task's dependencies with a fresh statement and picks another. 20 000 other ready tasks make
/// the claim's statement long enough for the dependency write to commit inside it in most
/// rounds. Whatever the interleaving, never both: the edge is written and the task claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dependency_added_during_a_claim_keeps_the_task_out_of_it() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let claimer = Arc::new(db.store().await);
    let writer = Arc::new(db.store().await);
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    sqlx::query(
        "INSERT INTO tasks (title, status, priority, progress_percent, created_at, updated_at, \
                            version) \
         SELECT 'filler ' || g, 'pending', 'low', 0, now(), now(), 1 \
         FROM generate_series(1, 20000) AS g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE tasks")
        .execute(&mut conn)
        .await
        .unwrap();

    let mut edges_written = 0;
    for round in 0..30 {
        let urgent = insert(
            &*claimer,
            TaskDraft {
                priority: Priority::Critical,
                ..new_task(&format!("urgent {round}"), None)
            },
        )
        .await;
        let blocker = insert(
            &*claimer,
            TaskDraft {
                status: TaskStatus::Blocked,
                ..new_task(&format!("blocker {round}"), None)
            },
        )
        .await;
        let mut next = urgent.clone();
        next.version += 1;
        next.updated_at = now();
        let write = DependencyWrite {
            task: next,
            expected_version: urgent.version,
            expected_lease_expires_at: None,
            change: EdgeChange::Add {
                depends_on: blocker.id,
            },
            audit: audit(AuditAction::DependencyAdded),
        };
        let barrier = Arc::new(Barrier::new(2));
        let claim = {
            let (store, barrier) = (claimer.clone(), barrier.clone());
            tokio::spawn(async move {
                let flow = TaskFlow::new(store);
                barrier.wait().await;
                flow.claim_next(&Identity::user("agent"), None, None).await
            })
        };
        let add = {
            let (store, barrier) = (writer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let queue = store.queue().expect("PgStore has the work queue");
                queue.write_dependency(&write).await
            })
        };
        let claimed = claim.await.unwrap().unwrap().expect("a ready task");
        let written = add.await.unwrap().unwrap();
        let stored = claimer.get_task(urgent.id).await.unwrap().expect("urgent");
        match written {
            Written::Done(()) => {
                edges_written += 1;
                assert_ne!(
                    claimed.id, urgent.id,
                    "round {round}: claimed a waiting task"
                );
                assert_eq!(stored.status, TaskStatus::Pending, "round {round}");
                assert_eq!(stored.version, 2, "round {round}");
            }
            Written::Stale => {
                assert_eq!(claimed.id, urgent.id, "round {round}");
                assert_eq!(stored.status, TaskStatus::InProgress, "round {round}");
                let deps = claimer
                    .queue()
                    .unwrap()
                    .dependencies(urgent.id)
                    .await
                    .unwrap();
                assert!(deps.depends_on.is_empty(), "round {round}: {deps:?}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        // No task in progress waits on an unfinished dependency.
        let (violations,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM tasks AS t \
             JOIN task_dependencies AS d ON d.task_id = t.id \
             JOIN tasks AS dep ON dep.id = d.depends_on \
             WHERE t.status = 'in_progress' AND dep.status <> 'completed'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(violations, 0, "round {round}");
        // The urgent task must not be the head of the next round's queue.
        if stored.status == TaskStatus::Pending {
            sqlx::query("UPDATE tasks SET priority = 'low' WHERE id = $1")
                .bind(urgent.id)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    eprintln!("a_dependency_added_during_a_claim: {edges_written}/30 edges written first");

    conn.close().await.ok();
    claimer.close().await.unwrap();
    writer.close().await.unwrap();
}

/// A dependency edge onto a task, inserted while a delete of that task is in flight (its
/// transaction still open when the delete starts, committed while the delete waits), still
/// stops the delete: `HasDependents`, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_racing_a_new_dependent_is_refused() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = Arc::new(db.store().await);
    let target = insert(&*store, new_task("target", None)).await;
    let dependent = insert(&*store, new_task("dependent", None)).await;

    // Another process adds `dependent depends on target` and holds its transaction open; its
    // foreign-key check key-share locks the target's row, so the delete has to wait for it.
    let mut other = PgConnection::connect_with(&db.options).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("INSERT INTO task_dependencies (task_id, depends_on) VALUES ($1, $2)")
        .bind(dependent.id)
        .bind(target.id)
        .execute(&mut *tx)
        .await
        .unwrap();

    let deleting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .delete_task(target.id, 1, &audit(AuditAction::Deleted))
                .await
        })
    };
    wait_for_lock_wait(&db).await;
    tx.commit().await.unwrap();

    let result = deleting.await.unwrap();
    assert!(
        matches!(result, Ok(Written::Refused(Conflict::HasDependents))),
        "{result:?}"
    );
    assert!(store.get_task(target.id).await.unwrap().is_some());
    assert_eq!(store.task_audit(target.id).await.unwrap().len(), 1);

    other.close().await.ok();
    store.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys across processes.

fn create_command(title: &str) -> Command {
    Command::CreateTask {
        task: NewTask::titled(title),
    }
}

fn idempotent(key: &str, command: &Command) -> Idempotent {
    let key = IdempotencyKey::new(key).expect("a valid key");
    Idempotent::for_command(key, command).expect("a fingerprint")
}

/// A reservation of `key` by alice for `fingerprint`, made at `at`, with the default stale
/// limit (60 s before `at`) and a day to live.
fn reservation(key: &str, fingerprint: &str, at: Timestamp) -> Reserve {
    Reserve {
        caller: "alice".into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        now: at,
        stale_before: at - Duration::from_secs(60),
        expires_at: at + Duration::from_secs(86_400),
    }
}

/// `n` reservations of `r`, split over `stores` in turn, released together.
async fn race_reservations(stores: &[Arc<PgStore>], n: usize, r: &Reserve) -> Vec<Reservation> {
    let barrier = Arc::new(Barrier::new(n));
    let calls = (0..n).map(|i| {
        let store = stores[i % stores.len()].clone();
        let (barrier, r) = (barrier.clone(), r.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let records = store
                .idempotency()
                .expect("PgStore keeps idempotency records");
            records.reserve(&r).await
        })
    });
    join_all(calls.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|joined| {
            joined
                .expect("a reservation panicked")
                .expect("a reservation failed")
        })
        .collect()
}

/// The stored row of alice's `key`: fingerprint, outcome, created_at.
async fn record_row(
    conn: &mut PgConnection,
    caller: &str,
    key: &str,
) -> Option<(String, Option<String>, Timestamp)> {
    sqlx::query_as(
        "SELECT fingerprint, outcome, created_at FROM idempotency_records \
         WHERE caller = $1 AND key = $2",
    )
    .bind(caller)
    .bind(key)
    .fetch_optional(conn)
    .await
    .expect("read an idempotency record")
}

/// Two stores with separate pools on one database stand for two server processes. 20
/// `execute_once` creates with one key, 10 through each, released together: exactly one runs
/// and creates a task; every other one is a replay of that very task or is told the request is
/// in progress. One task, one `created` row and one record, holding the task, are stored; a
/// retry through either process afterwards is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_20_idempotent_creates_with_one_key() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = TaskFlow::new(Arc::new(db.store().await));
    let second = TaskFlow::new(Arc::new(db.store().await));
    let alice = Identity::user("alice");
    let command = create_command("contested create");
    let key = idempotent("burst", &command);

    let barrier = Arc::new(Barrier::new(20));
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let flow = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let (barrier, key, command, alice) =
                (barrier.clone(), key.clone(), command.clone(), alice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                flow.execute_once(&alice, &key, command).await
            })
        })
        .collect();
    let mut fresh = Vec::new();
    let mut replayed = Vec::new();
    let mut in_progress = 0;
    for joined in join_all(calls).await {
        let answer = joined.expect("a request panicked");
        match (answer.replayed, answer.value) {
            (false, Ok(Outcome::Task(task))) => fresh.push(task),
            (true, Ok(Outcome::Task(task))) => replayed.push(task),
            (false, Err(Error::IdempotencyInProgress)) => in_progress += 1,
            (r, other) => panic!("unexpected answer (replayed {r}): {other:?}"),
        }
    }
    assert_eq!(fresh.len(), 1, "exactly one request ran");
    assert_eq!(fresh.len() + replayed.len() + in_progress, 20);
    let task = fresh.pop().unwrap();
    assert!(
        replayed.iter().all(|t| *t == task),
        "every replay is the task created"
    );

    // Stored: one task, one created row, one record whose outcome is that task.
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let (tasks, created, records): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks), \
                (SELECT count(*) FROM audit_log WHERE action = 'created'), \
                (SELECT count(*) FROM idempotency_records)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((tasks, created, records), (1, 1, 1));
    let (fingerprint, outcome, _) = record_row(&mut conn, "alice", "burst").await.unwrap();
    assert_eq!(fingerprint, key.fingerprint);
    let stored = decode(&outcome.expect("an outcome is stored")).unwrap();
    assert_eq!(stored.unwrap(), Outcome::Task(task.clone()));

    // A retry through either process is a replay of the same task, and writes nothing.
    for flow in [&first, &second] {
        let again = flow.execute_once(&alice, &key, command.clone()).await;
        assert!(again.replayed);
        assert_eq!(again.value.unwrap(), Outcome::Task(task.clone()));
    }
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tasks, 1);

    conn.close().await.ok();
    first.store().close().await.unwrap();
    second.store().close().await.unwrap();
}

/// Reservations straight against the store, 20 at a time through two processes: of a free key,
/// of a key whose reservation was abandoned (its request died), and of an expired key, exactly
/// one is `Reserved` each time; the others see that fresh reservation (`InProgress`). The
/// takeover race is set up for sure: a third session holds the abandoned row locked until the
/// reservations queue on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_20_reservations_and_one_wins_each_time() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let reserved = |answers: &[Reservation]| {
        answers
            .iter()
            .filter(|a| **a == Reservation::Reserved)
            .count()
    };
    let only_in_progress = |answers: &[Reservation]| {
        answers
            .iter()
            .all(|a| matches!(a, Reservation::Reserved | Reservation::InProgress))
    };

    // A free key.
    let answers = race_reservations(&stores, 20, &reservation("free", "fp", now())).await;
    assert_eq!(reserved(&answers), 1, "{answers:?}");
    assert!(only_in_progress(&answers), "{answers:?}");

    // An abandoned reservation, ten minutes old, locked by another session while 20 takeovers
    // line up behind it.
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let long_ago = now() - Duration::from_secs(600);
    let records = stores[0].idempotency().unwrap();
    assert_eq!(
        records
            .reserve(&reservation("abandoned", "fp", long_ago))
            .await
            .unwrap(),
        Reservation::Reserved
    );
    let mut other = PgConnection::connect_with(&db.options).await.unwrap();
    let mut holder = other.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM idempotency_records WHERE key = 'abandoned' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let racing = {
        let stores = stores.clone();
        tokio::spawn(async move {
            race_reservations(&stores, 20, &reservation("abandoned", "fp", now())).await
        })
    };
    wait_for_lock_wait(&db).await;
    holder.commit().await.unwrap();
    let answers = racing.await.unwrap();
    assert_eq!(reserved(&answers), 1, "{answers:?}");
    assert!(only_in_progress(&answers), "{answers:?}");
    let (_, outcome, created_at) = record_row(&mut conn, "alice", "abandoned").await.unwrap();
    assert_eq!(outcome, None);
    assert!(
        created_at > long_ago,
        "the takeover renewed the reservation"
    );

    // An expired record of another request counts as absent.
    let expired = Reserve {
        expires_at: long_ago + Duration::from_secs(1),
        ..reservation("expired", "an older request", long_ago)
    };
    assert_eq!(
        records.reserve(&expired).await.unwrap(),
        Reservation::Reserved
    );
    let answers = race_reservations(&stores, 20, &reservation("expired", "fp", now())).await;
    assert_eq!(reserved(&answers), 1, "{answers:?}");
    assert!(only_in_progress(&answers), "{answers:?}");
    let (fingerprint, _, _) = record_row(&mut conn, "alice", "expired").await.unwrap();
    assert_eq!(fingerprint, "fp");

    other.close().await.ok();
    conn.close().await.ok();
    for store in stores {
        store.close().await.unwrap();
    }
}

/// An outcome that cannot be made from what the write wrote (here: a task outcome on a delete,
/// which writes no task) fails the write, and its transaction is rolled back whole: the task
/// stays, and no audit row and no record are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_that_cannot_be_rendered_rolls_the_write_back() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let task = insert(&store, new_task("kept", None)).await;
    let mut deleted = audit(AuditAction::Deleted);
    deleted.outcome = Some(OutcomeRecord {
        caller: "root".into(),
        key: "bad".into(),
        fingerprint: "fp".into(),
        expires_at: now() + Duration::from_secs(3600),
        outcome: Rendered::Task,
    });
    let err = store.delete_task(task.id, 1, &deleted).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "an outcome of a task needs the task written"
    );
    assert!(store.get_task(task.id).await.unwrap().is_some());
    assert_eq!(store.task_audit(task.id).await.unwrap().len(), 1);
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    assert_eq!(record_row(&mut conn, "root", "bad").await, None);
    conn.close().await.ok();
    store.close().await.unwrap();
}

/// An outcome is stored and replayed byte for byte, including a JSON `\u0000` escape (which a
/// JSONB column would refuse) and key order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_replayed_byte_for_byte() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let records = store.idempotency().unwrap();
    let r = reservation("exact", "fp", now());
    assert_eq!(records.reserve(&r).await.unwrap(), Reservation::Reserved);
    let text = r#"{"z": 1, "a":"nul \u0000 here"}"#;
    records
        .settle(&OutcomeRecord {
            caller: r.caller.clone(),
            key: r.key.clone(),
            fingerprint: r.fingerprint.clone(),
            expires_at: r.expires_at,
            outcome: Rendered::Ready(text.into()),
        })
        .await
        .unwrap();
    assert_eq!(
        records.reserve(&r).await.unwrap(),
        Reservation::Replay(text.into())
    );
    // Forgotten, the key is free again; purged, an expired one is gone.
    records.forget("alice", "exact").await.unwrap();
    assert_eq!(records.reserve(&r).await.unwrap(), Reservation::Reserved);
    assert_eq!(records.purge_expired(r.expires_at).await.unwrap(), 1);
    assert_eq!(records.purge_expired(r.expires_at).await.unwrap(), 0);
    store.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Connection failures that need no server: these always run.

/// A URL that is not a Postgres URL is refused up front, without echoing it (it may hold a
/// password).
#[tokio::test]
async fn wrong_urls_are_clear_errors() {
    for url in [
        "garbage",
        "",
        "mysql://admin:hunter2@127.0.0.1:3306/taskflow",
        "http://admin:hunter2@127.0.0.1/taskflow",
        "postgres://admin:hunter2@[::1/taskflow",
        "postgres://admin:hunter2@127.0.0.1:99999/taskflow",
    ] {
        let err = PgStore::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::Backend(_)), "{url}: {err:?}");
        let text = err.to_string();
        assert!(text.starts_with("invalid Postgres URL: "), "{url}: {text}");
        assert!(
            !text.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
            "{url}: the password leaked: {text}"
        );
    }
    let text = PgStore::connect("mysql://localhost/x")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid Postgres URL: unsupported scheme \"mysql\"; \
         expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    );
}

/// A refused connection fails at once with the address and the reason, not a panic, a hang or
/// a bare timeout.
#[tokio::test]
async fn refused_connection_is_a_clear_error() {
    // A port that was free a moment ago; nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = PgStore::connect(&format!(
        "postgres://admin:hunter2@127.0.0.1:{port}/taskflow"
    ))
    .await
    .unwrap_err();
    // A refused connection is an outage: retrying may succeed once the server is up.
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot connect to Postgres at 127.0.0.1:{port}: connection refused")
    );
    assert!(
        !format!("{err:?}").contains("hunter2"),
        "the password leaked"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

/// Whether `task` is still running after `wait`: used to show that a call is held by a lock.
/// A call that is not held finishes well within it; one that is held cannot finish at all.
async fn still_running<T>(task: &tokio::task::JoinHandle<T>, wait: Duration) -> bool {
    tokio::time::sleep(wait).await;
    !task.is_finished()
}

/// Every store write that inserts an audit row takes the feed lock shared before anything
/// else: while another session holds it exclusively (as a horizon read does), a create, an
/// update, a delete, a dependency write and a claim all wait, and go through once it is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_writers_wait_for_the_feed_lock() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let flow = TaskFlow::new(store.clone());
    let root = Identity::admin("root");
    let a = flow.create_task(&root, NewTask::titled("a")).await.unwrap();
    let b = flow.create_task(&root, NewTask::titled("b")).await.unwrap();
    let c = flow.create_task(&root, NewTask::titled("c")).await.unwrap();

    type Write = Box<
        dyn FnOnce(TaskFlow) -> futures::future::BoxFuture<'static, taskflow_core::Result<()>>
            + Send,
    >;
    let root2 = root.clone();
    let writes: Vec<(&str, Write)> = vec![
        (
            "create",
            Box::new(move |f: TaskFlow| {
                Box::pin(async move { f.create_task(&root2, NewTask::titled("d")).await.map(drop) })
            }),
        ),
        ("update", {
            let root = root.clone();
            Box::new(move |f: TaskFlow| {
                Box::pin(async move { f.start(&root, a.id, None).await.map(drop) })
            })
        }),
        ("dependency", {
            let root = root.clone();
            Box::new(move |f: TaskFlow| {
                Box::pin(async move { f.add_dependency(&root, b.id, c.id, None).await.map(drop) })
            })
        }),
        ("claim", {
            let root = Identity::user("agent");
            Box::new(move |f: TaskFlow| {
                Box::pin(async move { f.claim_next(&root, None, None).await.map(drop) })
            })
        }),
        ("delete", {
            let root = root.clone();
            Box::new(move |f: TaskFlow| {
                Box::pin(async move {
                    f.delete_task(&root, a.id, taskflow_core::model::Precondition::Any)
                        .await
                })
            })
        }),
    ];
    for (name, write) in writes {
        let mut holder = PgConnection::connect_with(&db.options).await.unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(taskflow_store_pg::FEED_LOCK_KEY)
            .execute(&mut holder)
            .await
            .unwrap();
        let running = tokio::spawn(write(flow.clone()));
        assert!(
            still_running(&running, Duration::from_millis(300)).await,
            "a {name} went through while the feed lock was held exclusively"
        );
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        running
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The horizon waits for a writer that took an audit id and has not committed, and never
/// passes it: a row that commits late is still read by a feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_horizon_waits_for_uncommitted_audit_rows() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let flow = TaskFlow::new(store.clone());
    let root = Identity::admin("root");
    let t = flow.create_task(&root, NewTask::titled("t")).await.unwrap();
    let before = store.audit_horizon().await.unwrap();

    // A writer as the store's own: the feed lock shared first, then an audit row, uncommitted.
    let mut late = PgConnection::connect_with(&db.options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(taskflow_store_pg::FEED_LOCK_KEY)
        .execute(&mut late)
        .await
        .unwrap();
    let late_id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (task_id, actor_id, actor_type, action, \"timestamp\") \
         VALUES ($1, 'late', 'human', 'updated', now()) RETURNING id",
    )
    .bind(t.id)
    .fetch_one(&mut late)
    .await
    .unwrap();
    assert!(late_id > before);

    let reading = tokio::spawn({
        let store = store.clone();
        async move { store.audit_horizon().await }
    });
    assert!(
        still_running(&reading, Duration::from_millis(300)).await,
        "the horizon was read past an uncommitted audit row"
    );
    sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    let horizon = reading.await.unwrap().unwrap();
    assert!(
        horizon >= late_id,
        "{horizon} covers the late row {late_id}"
    );
    let rows = store
        .audit_after(before, horizon, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [late_id]);
}
