//! Upgrading a real taskflow 0.1.0 database in place: the fixture at
//! `tests/fixtures/0.1.0/taskflow-0.1.0.pg.inserts.sql` (a database written by 0.1.0's own
//! `PgStore`, dumped with `--column-inserts`) is loaded into a fresh database, then
//! `PgStore::connect_with` applies migrations 2 to 5 to it. Everything 0.1.0 wrote must read
//! back as `expected.json` says, ids must go on where 0.1.0 left off, and the work queue and
//! idempotency keys must work on it.
//!
//! Skips (or fails under `CI=true`) without `TASKFLOW_TEST_PG_URL`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use taskflow_core::idempotency::{IdempotencyKey, Idempotent};
use taskflow_core::model::{
    ActorType, AuditAction, AuditDraft, AuditEntry, AuditFilter, Identity, NewTask, Paging,
    Priority, ReadyFilter, Task, TaskFilter, TaskStatus, Timestamp, WorkerType, now,
};
use taskflow_core::{Command, Conflict, Outcome, Store, TaskFlow, Written};
use taskflow_store_pg::PgStore;
use taskflow_store_pg::test_support::{TEST_POOL_SIZE, TestDb};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/0.1.0")
}

/// The checksum (SHA-384, hex) of migration 2 (`0002_work_queue.sql`) as it was released. A
/// migration is never edited once released: a database that applied it records this checksum,
/// and sqlx refuses to start on a database whose recorded checksum differs from the embedded
/// file. (Migration 1's is in `expected.json`, as 0.1.0 recorded it.)
const MIGRATION_2_CHECKSUM: &str = concat!(
    "17685a3af0e643a6dd5746788a4df5917367b685ac487b3a",
    "cb7078961f2bc71b6b36358133179d59317d19f806bdc9db"
);

fn expected() -> Value {
    let path = fixture_dir().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let all: Value = serde_json::from_str(&text).expect("expected.json is JSON");
    all["postgres"].clone()
}

/// `_sqlx_migrations` as (version, description, success, checksum in hex, installed_on).
async fn migrations(conn: &mut PgConnection) -> Vec<(i64, String, bool, String, String)> {
    sqlx::query_as(
        "SELECT version, description, success, encode(checksum, 'hex'), installed_on::text \
         FROM public._sqlx_migrations ORDER BY version",
    )
    .fetch_all(conn)
    .await
    .expect("read _sqlx_migrations")
}

/// What 0.1.0 stored, read with SQL before the upgrade: timestamps, project and context of
/// every audit row, and the times of every task, which `expected.json` does not list.
struct Before {
    audit: BTreeMap<i64, (Option<String>, Option<Value>, Timestamp)>,
    task_times: BTreeMap<i64, (Timestamp, Timestamp)>,
}

async fn read_before(conn: &mut PgConnection) -> Before {
    let audit = sqlx::query(
        "SELECT id, project_slug, context, \"timestamp\" FROM public.audit_log ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("read the 0.1.0 audit rows")
    .iter()
    .map(|r: &PgRow| {
        (
            r.get::<i64, _>("id"),
            (
                r.get::<Option<String>, _>("project_slug"),
                r.get::<Option<Value>, _>("context"),
                r.get::<Timestamp, _>("timestamp"),
            ),
        )
    })
    .collect();
    let task_times = sqlx::query("SELECT id, created_at, updated_at FROM public.tasks")
        .fetch_all(&mut *conn)
        .await
        .expect("read the 0.1.0 tasks")
        .iter()
        .map(|r: &PgRow| {
            (
                r.get::<i64, _>("id"),
                (r.get::<Timestamp, _>("created_at"), r.get("updated_at")),
            )
        })
        .collect();
    Before { audit, task_times }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn check_task(task: &Task, want: &Value, before: &Before) {
    let id = want["id"].as_i64().expect("id");
    assert_eq!(task.id, id);
    assert_eq!(
        Some(task.title.as_str()),
        want["title"].as_str(),
        "task {id}"
    );
    assert_eq!(
        Some(task.status.as_str()),
        want["status"].as_str(),
        "task {id}"
    );
    assert_eq!(
        Some(task.priority.as_str()),
        want["priority"].as_str(),
        "task {id}"
    );
    assert_eq!(
        Some(i64::from(task.progress_percent)),
        want["progress_percent"].as_i64(),
        "task {id}"
    );
    assert_eq!(task.assigned_to, text(&want["assigned_to"]), "task {id}");
    assert_eq!(task.project_slug, text(&want["project_slug"]), "task {id}");
    assert_eq!(task.parent_id, want["parent_id"].as_i64(), "task {id}");
    assert_eq!(Some(task.version), want["version"].as_i64(), "task {id}");
    // What migration 2 gives every existing task: fence 0, no lease.
    assert_eq!(task.fence, 0, "task {id}");
    assert_eq!(
        (task.lease_expires_at, task.lease_seconds),
        (None, None),
        "task {id}"
    );
    assert_eq!(
        Some(&(task.created_at, task.updated_at)),
        before.task_times.get(&id),
        "task {id}: times unchanged"
    );
}

fn check_audit_row(row: &AuditEntry, want: &Value, before: &Before) {
    let id = want["id"].as_i64().expect("id");
    assert_eq!(row.id, id);
    assert_eq!(
        Some(row.task_id),
        want["task_id"].as_i64(),
        "audit row {id}"
    );
    assert_eq!(
        Some(row.action.as_str()),
        want["action"].as_str(),
        "audit row {id}"
    );
    assert_eq!(
        Some(row.actor_id.as_str()),
        want["actor_id"].as_str(),
        "audit row {id}"
    );
    assert_eq!(
        Some(row.actor_type.as_str()),
        want["actor_type"].as_str(),
        "audit row {id}"
    );
    let (project, context, timestamp) = before.audit.get(&id).expect("read before the upgrade");
    assert_eq!(&row.project_slug, project, "audit row {id}");
    assert_eq!(&row.context, context, "audit row {id}");
    assert_eq!(&row.timestamp, timestamp, "audit row {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_0_1_0_database_upgrades_in_place() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let expected = expected();

    // Load the 0.1.0 dump on a connection of its own: it empties `search_path` for the rest of
    // its session, so this connection is closed afterwards and never reused.
    let dump = std::fs::read_to_string(fixture_dir().join("taskflow-0.1.0.pg.inserts.sql"))
        .expect("read the 0.1.0 dump");
    let mut loader = PgConnection::connect_with(&db.options).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(dump))
        .execute(&mut loader)
        .await
        .expect("load the 0.1.0 dump");
    loader.close().await.unwrap();

    // The database as 0.1.0 left it: migration 1 only, and the rows to compare with.
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let old = migrations(&mut conn).await;
    let want_migrations = expected["sqlx_migrations"].as_array().expect("migrations");
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].0, 1);
    assert_eq!(
        Some(old[0].3.as_str()),
        want_migrations[0]["checksum_hex"].as_str()
    );
    let before = read_before(&mut conn).await;
    assert_eq!(before.audit.len(), 36);
    assert_eq!(before.task_times.len(), 14);

    // Open it with this build: migrations 2 to 5 are applied.
    let pool = PgStore::default_pool_options().max_connections(TEST_POOL_SIZE);
    let store = Arc::new(
        PgStore::connect_with(db.options.clone(), pool.clone())
            .await
            .expect("open the 0.1.0 database"),
    );

    // _sqlx_migrations: 1 exactly as 0.1.0 recorded it, then 2 to 5, all with the checksums of
    // the embedded files; those of 1 and 2 are the ones they were released with.
    let upgraded = migrations(&mut conn).await;
    assert_eq!(
        upgraded.iter().map(|m| m.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "{upgraded:?}"
    );
    assert_eq!(upgraded[0], old[0], "migration 1's row is untouched");
    assert!(upgraded.iter().all(|m| m.2), "all succeeded");
    assert_eq!(
        Some(upgraded[0].3.as_str()),
        want_migrations[0]["checksum_hex"].as_str(),
        "migration 1 is unchanged"
    );
    assert_eq!(
        upgraded[1].3, MIGRATION_2_CHECKSUM,
        "migration 2 is unchanged"
    );
    for (applied, embedded) in upgraded.iter().zip(PgStore::migrator().iter()) {
        let hex: String = embedded
            .checksum
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!((applied.0, &applied.3), (embedded.version, &hex));
    }
    assert_eq!(upgraded[1].1, "work queue");
    assert_eq!(upgraded[2].1, "idempotency");
    assert_eq!(upgraded[3].1, "project status");
    assert_eq!(upgraded[4].1, "ready project");
    assert_eq!(PgStore::migrator().iter().count(), 5);

    // Every task, as 0.1.0 wrote it, with fence 0 and no lease.
    let everything = TaskFilter {
        paging: Paging::new(Some(100), None).unwrap(),
        ..TaskFilter::default()
    };
    let tasks = store.list_tasks(&everything).await.unwrap();
    let want_tasks = expected["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.total, 14);
    assert_eq!(tasks.items.len(), want_tasks.len());
    for (task, want) in tasks.items.iter().zip(want_tasks) {
        check_task(task, want, &before);
        assert_eq!(store.get_task(task.id).await.unwrap().as_ref(), Some(task));
    }

    // Every audit row: ids, tasks, actions, actors, and (from the rows as 0.1.0 stored them)
    // projects, contexts and times.
    let all_rows = AuditFilter {
        paging: Paging::new(Some(100), None).unwrap(),
        ..AuditFilter::default()
    };
    let rows = store.list_audit(&all_rows).await.unwrap();
    let want_rows = expected["audit_log"].as_array().expect("audit_log");
    assert_eq!(rows.total, 36);
    assert_eq!(rows.items.len(), want_rows.len());
    for (row, want) in rows.items.iter().zip(want_rows) {
        check_audit_row(row, want, &before);
    }
    // A few contexts spelled out, as the fixture's README describes them.
    let context = |id: i64| rows.items[usize::try_from(id - 1).unwrap()].context.clone();
    assert_eq!(
        context(7),
        Some(json!({"note": "halfway through 2023", "percent": 40}))
    );
    assert_eq!(context(10), Some(json!({"note": null, "percent": 80})));
    assert_eq!(
        context(21),
        Some(json!({"reason": "waiting for the new runner images"}))
    );
    assert_eq!(
        context(32),
        Some(json!({"title": "Draft the 2025 roadmap", "project_slug": "beta"}))
    );
    assert_eq!(context(36), Some(json!({"title": "Scratch task, deleted"})));
    assert_eq!(context(6), None);
    let created_4 = context(4).expect("a created context");
    assert_eq!(created_4["title"], json!("✓ 日本語 👩‍👩‍👧"));
    // The deleted task's rows outlive it.
    let t15 = store.task_audit(15).await.unwrap();
    assert_eq!(
        t15.iter().map(|r| r.action).collect::<Vec<_>>(),
        [
            AuditAction::Created,
            AuditAction::Started,
            AuditAction::Deleted
        ]
    );
    assert!(store.get_task(15).await.unwrap().is_none());

    // Workers, with their worker type.
    let workers = store.list_workers().await.unwrap();
    let want_workers = expected["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), want_workers.len());
    for (worker, want) in workers.iter().zip(want_workers) {
        assert_eq!(Some(worker.id.as_str()), want["id"].as_str());
        assert_eq!(Some(worker.worker_type.as_str()), want["type"].as_str());
        assert_eq!(worker.name, text(&want["name"]));
    }
    assert_eq!(workers[0].worker_type, WorkerType::Agent);

    // Ids go on where 0.1.0 left off: task 16 (15 was deleted, never reused), audit row 37.
    let next = &expected["next_ids"];
    let flow = TaskFlow::new(store.clone());
    let grace = Identity::admin("grace");
    let agent = Identity::user("agent-1");
    let new = flow
        .create_task(
            &grace,
            NewTask {
                priority: Some(Priority::Low),
                ..NewTask::titled("After the upgrade")
            },
        )
        .await
        .unwrap();
    assert_eq!(Some(new.id), next["tasks"].as_i64());
    assert_eq!(new.id, 16);
    assert_eq!((new.fence, new.lease_expires_at), (0, None));
    let created = flow.task_audit(&grace, new.id).await.unwrap();
    assert_eq!(Some(created[0].id), next["audit_log"].as_i64());
    assert_eq!(created[0].id, 37);

    // The work queue works on the upgraded data. Task 1 (high) waits on task 3 (critical).
    let view = flow.add_dependency(&grace, 1, 3, None).await.unwrap();
    assert_eq!((view.depends_on, view.waiting_on), (vec![3], vec![3]));
    assert_eq!(flow.get_task(&grace, 1).await.unwrap().version, 2);
    let ready = flow
        .ready_tasks(&agent, &ReadyFilter::default())
        .await
        .unwrap();
    let ready_ids: Vec<i64> = ready.items.iter().map(|t| t.id).collect();
    // Pending 0.1.0 tasks: 3 critical; 1 high (waiting on 3); 4, 9, 10, 13 medium; 2 low, 12
    // low (assigned to agent-2), and the new 16 low.
    assert_eq!(ready_ids, [3, 4, 9, 10, 13, 2, 16]);
    assert_eq!(ready.total, 7);
    // Task 3 has a dependent now: it cannot be deleted.
    let deleted = AuditDraft {
        project_slug: None,
        actor_id: "grace".into(),
        actor_type: ActorType::Human,
        action: AuditAction::Deleted,
        context: None,
        timestamp: now(),
        outcome: None,
    };
    assert_eq!(
        store.delete_task(3, 1, &deleted).await.unwrap(),
        Written::Refused(Conflict::HasDependents)
    );

    // A claim takes the head (task 3) with a lease and a fence.
    let claimed = flow
        .claim_next(&agent, None, Some(30))
        .await
        .unwrap()
        .expect("a ready task");
    assert_eq!(claimed.id, 3);
    assert_eq!(claimed.status, TaskStatus::InProgress);
    assert_eq!((claimed.fence, claimed.version), (1, 2));
    assert_eq!(claimed.lease_seconds, Some(30));
    let until = claimed.lease_expires_at.expect("a lease");

    // The sweep reclaims it once its lease has run out, and only it: task 5, in progress
    // since 0.1.0, holds no lease.
    assert_eq!(flow.sweep_expired_leases_at(until).await.unwrap(), 1);
    let reclaimed = flow.get_task(&grace, 3).await.unwrap();
    assert_eq!(
        (
            reclaimed.status,
            reclaimed.assigned_to.as_deref(),
            reclaimed.version
        ),
        (TaskStatus::Pending, None, 3)
    );
    let last = flow.task_audit(&grace, 3).await.unwrap();
    let last = last.last().expect("rows");
    assert_eq!(last.action, AuditAction::LeaseExpired);
    assert_eq!(
        (last.actor_id.as_str(), last.actor_type),
        ("taskflow", ActorType::System)
    );
    assert_eq!(
        flow.get_task(&grace, 5).await.unwrap().status,
        TaskStatus::InProgress
    );

    // Idempotency keys work on the upgraded database: a create with a key runs once (task 17,
    // after the 16 above), its retry is a replay of the same task, and one record is stored.
    let command = Command::CreateTask {
        task: NewTask::titled("Created once after the upgrade"),
    };
    let key =
        Idempotent::for_command(IdempotencyKey::new("after-upgrade").unwrap(), &command).unwrap();
    let first = flow.execute_once(&grace, &key, command.clone()).await;
    assert!(!first.replayed);
    let Outcome::Task(once) = first.value.unwrap() else {
        panic!("a task")
    };
    assert_eq!(once.id, 17);
    let again = flow.execute_once(&grace, &key, command).await;
    assert!(again.replayed, "the retry is a replay");
    assert_eq!(again.value.unwrap(), Outcome::Task(once.clone()));
    assert_eq!(
        flow.task_audit(&grace, once.id).await.unwrap().len(),
        1,
        "one created row"
    );
    assert_eq!(store.list_tasks(&everything).await.unwrap().total, 16);
    let records: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT caller, key, outcome IS NOT NULL FROM public.idempotency_records")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        records,
        [("grace".to_owned(), "after-upgrade".to_owned(), true)]
    );

    // Connecting again applies nothing.
    let again = PgStore::connect_with(db.options.clone(), pool)
        .await
        .expect("reopen");
    assert_eq!(migrations(&mut conn).await, upgraded, "no new migration");

    conn.close().await.ok();
    again.close().await.unwrap();
    store.close().await.unwrap();
}
