//! Upgrading a real taskflow 0.1.0 database (`tests/fixtures/0.1.0/taskflow-0.1.0.db` at the
//! repository root, schema version 1, WAL mode) to schema version 3 in place: every row is kept
//! as it was, ids are not reused, the work queue and idempotency records work on the upgraded
//! file, and opening it again migrates nothing.
//!
//! The fixture itself is never opened: each test works on a copy in a temporary directory, and
//! checks at the end that the fixture's bytes did not change.
// The helpers below are test code too (clippy.toml allows unwrap only inside `#[test]`s).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use rusqlite::Connection;
use serde_json::{Value, json};
use taskflow_core::idempotency::{IdempotencyKey, Idempotent};
use taskflow_core::model::{
    ActorType, AuditAction, AuditDraft, AuditEntry, AuditFilter, Identity, NewTask, Paging,
    Priority, ReadyFilter, Task, TaskFilter, TaskStatus, WorkerType,
};
use taskflow_core::{Command, Conflict, Outcome, Store, TaskFlow, Written};
use taskflow_store_sqlite::SqliteStore;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/0.1.0")
}

/// The SQLite part of `expected.json`.
fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["sqlite"].clone()
}

/// A copy of the fixture in a fresh temporary directory (the fixture is self-contained: it has
/// no `-wal` or `-shm` beside it).
fn copy_fixture() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let src = fixture_dir().join("taskflow-0.1.0.db");
    for side in ["taskflow-0.1.0.db-wal", "taskflow-0.1.0.db-shm"] {
        assert!(
            !fixture_dir().join(side).exists(),
            "{side} beside the fixture"
        );
    }
    let bytes = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taskflow.db");
    std::fs::write(&path, &bytes).unwrap();
    (dir, path, bytes)
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// What 0.1.0 wrote, read with plain SQL before the upgrade: tasks as the new model sees them
/// (fence 0, no lease), audit rows (context as stored text, parsed), worker `created_at`s.
struct Before {
    tasks: Vec<Task>,
    audit: Vec<AuditEntry>,
    worker_created_at: BTreeMap<String, String>,
}

fn read_before(path: &Path) -> Before {
    let conn = Connection::open(path).unwrap();
    let ts = |s: String| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('tasks') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(columns.len(), 12, "0.1.0's tasks table: {columns:?}");
    assert!(!columns.iter().any(|c| c == "fence"));
    let tasks = conn
        .prepare(
            "SELECT id, title, description, status, priority, progress_percent, assigned_to, \
             project_slug, parent_id, created_at, updated_at, version FROM tasks ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(Task {
                id: r.get(0)?,
                title: r.get(1)?,
                description: r.get(2)?,
                status: r.get::<_, String>(3)?.parse().unwrap(),
                priority: r.get::<_, String>(4)?.parse().unwrap(),
                progress_percent: r.get(5)?,
                assigned_to: r.get(6)?,
                project_slug: r.get(7)?,
                parent_id: r.get(8)?,
                created_at: ts(r.get(9)?),
                updated_at: ts(r.get(10)?),
                version: r.get(11)?,
                fence: 0,
                lease_expires_at: None,
                lease_seconds: None,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let audit = conn
        .prepare(
            "SELECT id, task_id, project_slug, actor_id, actor_type, action, context, timestamp \
             FROM audit_log ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                task_id: r.get(1)?,
                project_slug: r.get(2)?,
                actor_id: r.get(3)?,
                actor_type: r.get::<_, String>(4)?.parse().unwrap(),
                action: r.get::<_, String>(5)?.parse().unwrap(),
                context: r
                    .get::<_, Option<String>>(6)?
                    .map(|c| serde_json::from_str(&c).unwrap()),
                timestamp: ts(r.get(7)?),
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let worker_created_at = conn
        .prepare("SELECT id, created_at FROM workers")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Before {
        tasks,
        audit,
        worker_created_at,
    }
}

/// Every audit row, through the store (two pages of at most 100).
async fn all_audit(store: &SqliteStore) -> Vec<AuditEntry> {
    let mut rows = Vec::new();
    loop {
        let page = store
            .list_audit(&AuditFilter {
                paging: Paging::new(Some(100), Some(rows.len() as i64)).unwrap(),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let done = page.items.is_empty();
        rows.extend(page.items);
        if done || rows.len() as u64 >= page.total {
            return rows;
        }
    }
}

/// Checks the store's contents against `expected.json` and against what 0.1.0 wrote.
async fn check_contents(store: &SqliteStore, exp: &Value, before: &Before) {
    // Tasks: every field, as listed and as 0.1.0 wrote it; new fields at their defaults.
    let listed = store
        .list_tasks(&TaskFilter {
            paging: Paging::new(Some(100), None).unwrap(),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    let exp_tasks = exp["tasks"].as_array().unwrap();
    assert_eq!(listed.total, 14);
    assert_eq!(exp["row_counts"]["tasks"], json!(listed.total));
    assert_eq!(listed.items, before.tasks, "tasks as 0.1.0 wrote them");
    for (task, e) in listed.items.iter().zip(exp_tasks) {
        assert_eq!(json!(task.id), e["id"]);
        assert_eq!(task.title, e["title"].as_str().unwrap());
        assert_eq!(json!(task.status), e["status"], "task {}", task.id);
        assert_eq!(json!(task.priority), e["priority"], "task {}", task.id);
        assert_eq!(json!(task.progress_percent), e["progress_percent"]);
        assert_eq!(
            task.assigned_to,
            text(&e["assigned_to"]),
            "task {}",
            task.id
        );
        assert_eq!(
            task.project_slug,
            text(&e["project_slug"]),
            "task {}",
            task.id
        );
        assert_eq!(task.parent_id, e["parent_id"].as_i64(), "task {}", task.id);
        assert_eq!(json!(task.version), e["version"], "task {}", task.id);
        assert_eq!(task.fence, 0, "task {}", task.id);
        assert_eq!((task.lease_expires_at, task.lease_seconds), (None, None));
        assert_eq!(store.get_task(task.id).await.unwrap().as_ref(), Some(task));
    }
    assert_eq!(
        store.get_task(15).await.unwrap(),
        None,
        "15 was deleted in 0.1.0"
    );

    // Audit rows: ids, task ids, actions, actors and their types, contexts, timestamps.
    let rows = all_audit(store).await;
    let exp_rows = exp["audit_log"].as_array().unwrap();
    assert_eq!(rows.len(), 36);
    assert_eq!(exp["row_counts"]["audit_log"], json!(rows.len()));
    assert_eq!(rows, before.audit, "audit rows as 0.1.0 wrote them");
    for (row, e) in rows.iter().zip(exp_rows) {
        assert_eq!(json!(row.id), e["id"]);
        assert_eq!(json!(row.task_id), e["task_id"], "row {}", row.id);
        assert_eq!(json!(row.action), e["action"], "row {}", row.id);
        assert_eq!(json!(row.actor_id), e["actor_id"], "row {}", row.id);
        assert_eq!(json!(row.actor_type), e["actor_type"], "row {}", row.id);
    }
    // expected.json does not list contexts; these are the ones the fixture's README names.
    let context = |id: usize| rows[id - 1].context.clone();
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
        context(23),
        Some(json!({"reason": "vendor portal is down"}))
    );
    assert_eq!(context(28), Some(json!({"note": "drafted", "percent": 60})));
    assert_eq!(
        context(32),
        Some(json!({"project_slug": "beta", "title": "Draft the 2025 roadmap"}))
    );
    assert_eq!(context(36), Some(json!({"title": "Scratch task, deleted"})));
    assert_eq!(context(4).unwrap()["title"], json!("✓ 日本語 👩‍👩‍👧"));
    for no_context in [6, 9, 11, 13, 14, 15, 17, 18, 20, 24, 27, 29, 35] {
        assert_eq!(context(no_context), None, "row {no_context}");
    }
    // Rows of the deleted task 15 outlive it.
    assert_eq!(store.task_audit(15).await.unwrap().len(), 3);

    // Workers, with WorkerType.
    let workers = store.list_workers().await.unwrap();
    let exp_workers = exp["workers"].as_array().unwrap();
    assert_eq!(workers.len(), exp_workers.len());
    for (w, e) in workers.iter().zip(exp_workers) {
        assert_eq!(json!(w.id), e["id"]);
        assert_eq!(json!(w.worker_type), e["type"]);
        assert_eq!(w.name, text(&e["name"]));
        assert_eq!(
            stored_ts(&w.created_at),
            before.worker_created_at[&w.id],
            "worker {}",
            w.id
        );
    }
    assert_eq!(workers[0].worker_type, WorkerType::Agent);
    assert_eq!(workers[2].worker_type, WorkerType::Human);
}

/// An admin's `deleted` row.
fn deleted_by_grace() -> AuditDraft {
    AuditDraft {
        project_slug: None,
        actor_id: "grace".to_owned(),
        actor_type: ActorType::Human,
        action: AuditAction::Deleted,
        context: None,
        timestamp: taskflow_core::model::now(),
        outcome: None,
    }
}

/// The stored text of a timestamp.
fn stored_ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
async fn a_0_1_0_database_upgrades_in_place_and_runs_the_work_queue() {
    let exp = expected();
    let (_dir, path, fixture_bytes) = copy_fixture();
    assert_eq!(exp["user_version"], json!(1));
    assert_eq!(user_version(&path), 1);
    let before = read_before(&path);
    assert_eq!(before.tasks.len(), 14);

    // Opening migrates 1 → 5.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(SqliteStore::schema_version(), 5);
    assert_eq!(user_version(&path), 5);
    {
        let conn = Connection::open(&path).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let fk_violations: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk_violations, 0);
        let edges: i64 = conn
            .query_row("SELECT COUNT(*) FROM task_dependencies", [], |r| r.get(0))
            .unwrap();
        assert_eq!(edges, 0);
        // Migration 3: the idempotency records, empty.
        let columns: Vec<(String, String, bool, i64)> = conn
            .prepare(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info('idempotency_records') \
                 ORDER BY cid",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let column =
            |name: &str, notnull: bool, pk: i64| (name.to_owned(), "TEXT".to_owned(), notnull, pk);
        assert_eq!(
            columns,
            [
                column("caller", true, 1),
                column("key", true, 2),
                column("fingerprint", true, 0),
                column("outcome", false, 0),
                column("created_at", true, 0),
                column("expires_at", true, 0),
            ]
        );
        let records: i64 = conn
            .query_row("SELECT COUNT(*) FROM idempotency_records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(records, 0);
        let index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_index_list('idempotency_records') \
                 WHERE name = 'idempotency_records_by_expires_at'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    check_contents(&store, &exp, &before).await;

    // Ids are never reused: the next task is 16 (15 was deleted), the next audit row 37.
    let flow = TaskFlow::new(Arc::new(store.clone()));
    let grace = Identity::admin("grace");
    let agent1 = Identity::user("agent-1");
    let agent2 = Identity::user("agent-2");
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
    assert_eq!(new.id, exp["next_ids"]["tasks"].as_i64().unwrap());
    assert_eq!(new.id, 16);
    assert_eq!((new.fence, new.lease_expires_at), (0, None));
    let created = flow.task_audit(&grace, 16).await.unwrap();
    assert_eq!(
        created[0].id,
        exp["next_ids"]["audit_log"].as_i64().unwrap()
    );
    assert_eq!(created[0].id, 37);

    // The work queue on the upgraded file. Task 3 (critical) waits for task 1 (high).
    let view = flow.add_dependency(&grace, 3, 1, None).await.unwrap();
    assert_eq!((view.depends_on, view.waiting_on), (vec![1], vec![1]));
    assert_eq!(flow.get_task(&grace, 3).await.unwrap().version, 2);
    let rows = flow.task_audit(&grace, 3).await.unwrap();
    assert_eq!(rows.last().unwrap().action, AuditAction::DependencyAdded);
    assert_eq!(rows.last().unwrap().id, 38);
    assert_eq!(
        store.delete_task(1, 1, &deleted_by_grace()).await.unwrap(),
        Written::Refused(Conflict::HasDependents)
    );

    // agent-1's queue: pending, unassigned or theirs, dependencies finished; 12 is agent-2's,
    // 3 waits for 1. Most urgent first, then by id.
    let ready = flow
        .ready_tasks(&agent1, &ReadyFilter::default())
        .await
        .unwrap();
    let ids: Vec<i64> = ready.items.iter().map(|t| t.id).collect();
    assert_eq!(ids, [1, 4, 9, 10, 13, 2, 16]);
    assert_eq!(ready.total, 7);
    let agent2_ids: Vec<i64> = flow
        .ready_tasks(&agent2, &ReadyFilter::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(agent2_ids, [1, 4, 9, 10, 13, 2, 12, 16]);

    // Claim-next through TaskFlow takes the head, with a lease; the sweep reclaims it.
    let claimed = flow
        .claim_next(&agent1, None, Some(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((claimed.id, claimed.fence, claimed.version), (1, 1, 2));
    assert_eq!(claimed.status, TaskStatus::InProgress);
    assert_eq!(claimed.assigned_to.as_deref(), Some("agent-1"));
    assert_eq!(claimed.lease_seconds, Some(10));
    assert_eq!(flow.get_task(&grace, 1).await.unwrap(), claimed);
    let started = flow.task_audit(&grace, 1).await.unwrap();
    let started = started.last().unwrap();
    assert_eq!(
        (started.action, started.actor_type),
        (AuditAction::Started, ActorType::Agent)
    );
    assert_eq!(
        started.context,
        Some(json!({"claimed": true, "fence": 1, "lease_seconds": 10}))
    );

    let at = claimed.lease_expires_at.unwrap() + Duration::seconds(1);
    assert_eq!(flow.sweep_expired_leases_at(at).await.unwrap(), 1);
    let reclaimed = flow.get_task(&grace, 1).await.unwrap();
    assert_eq!(reclaimed.status, TaskStatus::Pending);
    assert_eq!(reclaimed.assigned_to, None);
    assert_eq!(
        (reclaimed.lease_expires_at, reclaimed.lease_seconds),
        (None, None)
    );
    assert_eq!((reclaimed.fence, reclaimed.version), (1, 3));
    let expiry = flow.task_audit(&grace, 1).await.unwrap();
    let expiry = expiry.last().unwrap();
    assert_eq!(expiry.action, AuditAction::LeaseExpired);
    assert_eq!(
        (expiry.actor_id.as_str(), expiry.actor_type),
        ("taskflow", ActorType::System)
    );
    assert_eq!(
        expiry.context,
        Some(json!({"assignee": "agent-1", "fence": 1}))
    );

    // agent-2 takes it over with the next fence and completes it; then 3 is ready, first.
    let second = flow.claim_next(&agent2, None, None).await.unwrap().unwrap();
    assert_eq!((second.id, second.fence), (1, 2));
    flow.complete(&agent2, 1, None).await.unwrap();
    let head = flow
        .ready_tasks(&agent1, &ReadyFilter::default())
        .await
        .unwrap();
    assert_eq!(head.items[0].id, 3);
    assert_eq!(
        flow.claim_next(&agent1, None, None)
            .await
            .unwrap()
            .unwrap()
            .id,
        3
    );

    // Idempotency records on the upgraded file: a create with a key runs once (task 17, audit
    // row 44), and its retry is a replay that writes nothing.
    let command = Command::CreateTask {
        task: NewTask::titled("Exactly once"),
    };
    let key = Idempotent::for_command(IdempotencyKey::new("upgrade-1").unwrap(), &command).unwrap();
    let first = flow.execute_once(&grace, &key, command.clone()).await;
    assert!(!first.replayed);
    let Outcome::Task(once) = first.value.unwrap() else {
        panic!("a created task")
    };
    assert_eq!(once.id, 17);
    let again = flow.execute_once(&grace, &key, command.clone()).await;
    assert!(again.replayed, "the retry is a replay");
    assert_eq!(again.value.unwrap(), Outcome::Task(once.clone()));
    assert_eq!(flow.task_audit(&grace, 17).await.unwrap().len(), 1);
    assert_eq!(flow.get_task(&grace, 18).await.ok(), None, "no second task");
    {
        let conn = Connection::open(&path).unwrap();
        let (caller, key_text, done, expires_at): (String, String, bool, String) = conn
            .query_row(
                "SELECT caller, key, outcome IS NOT NULL, expires_at FROM idempotency_records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (caller.as_str(), key_text.as_str(), done),
            ("grace", "upgrade-1", true)
        );
        assert!(expires_at > stored_ts(&taskflow_core::model::now()));
    }
    store.close().await.unwrap();
    drop(flow);

    // A second open migrates nothing and sees everything as it was left.
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(user_version(&path), 5);
    let t3 = reopened.get_task(3).await.unwrap().unwrap();
    assert_eq!((t3.status, t3.fence), (TaskStatus::InProgress, 1));
    assert_eq!(
        reopened
            .queue()
            .unwrap()
            .dependencies(3)
            .await
            .unwrap()
            .depends_on,
        [(1, TaskStatus::Completed)]
    );
    // The record outlives the store that wrote it: the retry is still a replay.
    let flow = TaskFlow::new(Arc::new(reopened.clone()));
    let later = flow.execute_once(&grace, &key, command).await;
    assert!(later.replayed);
    assert_eq!(later.value.unwrap(), Outcome::Task(once));
    drop(flow);
    let all = all_audit(&reopened).await;
    assert_eq!(all.len(), 36 + 8);
    assert_eq!(all[..36], before.audit[..], "0.1.0's rows are untouched");
    assert!(all.windows(2).all(|w| w[0].id + 1 == w[1].id));
    reopened.close().await.unwrap();

    assert_eq!(
        std::fs::read(fixture_dir().join("taskflow-0.1.0.db")).unwrap(),
        fixture_bytes,
        "the fixture itself is never touched"
    );
}

#[tokio::test]
async fn opening_an_upgraded_0_1_0_database_again_changes_nothing() {
    let exp = expected();
    let (_dir, path, _) = copy_fixture();
    let before = read_before(&path);
    SqliteStore::open(&path)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let schema = |path: &Path| -> Vec<(String, Option<String>)> {
        Connection::open(path)
            .unwrap()
            .prepare("SELECT name, sql FROM sqlite_schema ORDER BY type, name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let after_first = schema(&path);
    for table in ["task_dependencies", "idempotency_records"] {
        assert!(
            after_first.iter().any(|(name, _)| name == table),
            "{table}: {after_first:?}"
        );
    }
    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(user_version(&path), 5);
        assert_eq!(schema(&path), after_first, "no migration ran again");
        check_contents(&store, &exp, &before).await;
        store.close().await.unwrap();
    }
}
