//! The agent work queue over real HTTP (SPEC §7): dependencies, the ready queue, claim-next,
//! leases with heartbeats and release, fencing, and expiry; on SQLite and on PostgreSQL, and
//! claim races across two server processes sharing one Postgres database.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Backend, TestServer, error_of, id_of, json_of};

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

async fn create(s: &TestServer, body: Value) -> i64 {
    let resp = s
        .as_user(Method::POST, "/api/tasks", "lead")
        .json(&body)
        .send()
        .await
        .unwrap();
    id_of(&json_of(resp, 201).await)
}

async fn post(s: &TestServer, sub: &str, path: &str) -> reqwest::Response {
    s.as_user(Method::POST, path, sub).send().await.unwrap()
}

fn etag(resp: &reqwest::Response) -> String {
    resp.headers()["etag"].to_str().unwrap().to_owned()
}

async fn actions(s: &TestServer, id: i64) -> Vec<Value> {
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{id}/audit"), "lead")
        .send()
        .await
        .unwrap();
    json_of(resp, 200).await.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_gate_starting_and_deleting() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let a = create(&s, json!({"title": "a"})).await;
        let b = create(&s, json!({"title": "b"})).await;
        let c = create(&s, json!({"title": "c"})).await;
        let deps = |id: i64| format!("/api/tasks/{id}/dependencies");
        let add = |id: i64, on: i64| {
            s.as_user(Method::POST, &deps(id), "lead")
                .json(&json!({ "depends_on": on }))
                .send()
        };

        let view = json_of(add(a, b).await.unwrap(), 200).await;
        assert_eq!(
            view,
            json!({"task_id": a, "depends_on": [b], "dependents": [], "waiting_on": [b]})
        );
        let view = json_of(add(a, c).await.unwrap(), 200).await;
        assert_eq!(view["depends_on"], json!([b, c]));
        // An edge that exists changes nothing: no version bump, no audit row.
        let before = actions(&s, a).await.len();
        assert_eq!(json_of(add(a, b).await.unwrap(), 200).await, view);
        assert_eq!(actions(&s, a).await.len(), before);
        let rows = actions(&s, a).await;
        assert_eq!(rows[1]["action"], "dependency_added");
        assert_eq!(rows[1]["context"], json!({"depends_on": b}));

        let get = s.as_user(Method::GET, &deps(b), "x").send().await.unwrap();
        assert_eq!(json_of(get, 200).await["dependents"], json!([a]));
        for (id, on, msg) in [
            (a, 999_999, "depends_on: task 999999 not found".to_owned()),
            (a, a, "depends_on: would create a cycle".to_owned()),
            (b, a, "depends_on: would create a cycle".to_owned()),
        ] {
            assert_eq!(error_of(add(id, on).await.unwrap(), 422).await, msg);
        }
        assert_eq!(
            error_of(add(999_999, a).await.unwrap(), 404).await,
            "Task not found"
        );

        // Waiting: start and a PATCH to in_progress are refused with the unfinished ids.
        let waiting = format!("Task is waiting on unfinished dependencies: {b}, {c}");
        let start = post(&s, "agent", &format!("/api/tasks/{a}/start")).await;
        assert_eq!(error_of(start, 400).await, waiting);
        let patch = s
            .as_user(Method::PATCH, &format!("/api/tasks/{a}"), "agent")
            .json(&json!({"status": "in_progress"}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(patch, 400).await, waiting);

        // b cannot be deleted while a depends on it.
        let del = s
            .as_admin(Method::DELETE, &format!("/api/tasks/{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(del, 409).await, "Task has dependents");

        // Removing: 204, then 404 for an edge that is gone.
        let rm = |on: i64| {
            s.as_user(
                Method::DELETE,
                &format!("/api/tasks/{a}/dependencies/{on}"),
                "x",
            )
            .send()
        };
        assert_eq!(rm(c).await.unwrap().status(), 204);
        assert_eq!(
            error_of(rm(c).await.unwrap(), 404).await,
            "Dependency not found"
        );
        assert_eq!(
            actions(&s, a).await.last().unwrap()["action"],
            "dependency_removed"
        );

        // Completing b frees a.
        assert_eq!(
            post(&s, "lead", &format!("/api/tasks/{b}/start"))
                .await
                .status(),
            200
        );
        assert_eq!(
            post(&s, "lead", &format!("/api/tasks/{b}/complete"))
                .await
                .status(),
            200
        );
        let start = post(&s, "agent", &format!("/api/tasks/{a}/start")).await;
        assert_eq!(json_of(start, 200).await["status"], "in_progress");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_queue_and_claim_next() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let claim = |body: Option<Value>| {
            let req = s.as_user(Method::POST, "/api/tasks/claim", "agent");
            let req = match body {
                Some(b) => req.json(&b),
                None => req,
            };
            req.send()
        };
        let empty = claim(None).await.unwrap();
        assert_eq!(empty.status(), 204);
        assert!(empty.text().await.unwrap().is_empty(), "204 has no body");

        let low = create(&s, json!({"title": "low", "priority": "low"})).await;
        let crit = create(&s, json!({"title": "crit", "priority": "critical"})).await;
        let other = create(&s, json!({"title": "p", "project_slug": "p"})).await;
        let theirs = create(&s, json!({"title": "theirs", "assigned_to": "someone"})).await;
        let waits = create(&s, json!({"title": "waits", "priority": "critical"})).await;
        let add = s
            .as_user(
                Method::POST,
                &format!("/api/tasks/{waits}/dependencies"),
                "lead",
            )
            .json(&json!({ "depends_on": low }))
            .send()
            .await
            .unwrap();
        assert_eq!(add.status(), 200);

        let ready = s
            .as_user(Method::GET, "/api/tasks/ready", "agent")
            .send()
            .await
            .unwrap();
        assert_eq!(ready.headers()["x-total-count"], "3");
        let ids: Vec<i64> = json_of(ready, 200)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect();
        assert_eq!(ids, [crit, other, low]);
        let _ = theirs;
        let in_p = s
            .as_user(Method::GET, "/api/tasks/ready?project=p&limit=1", "agent")
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(in_p, 200).await.as_array().unwrap().len(), 1);

        let resp = claim(Some(json!({"lease_seconds": 60}))).await.unwrap();
        let tag = etag(&resp);
        let task = json_of(resp, 200).await;
        assert_eq!(id_of(&task), crit);
        assert_eq!(tag, format!("\"{}\"", task["version"]));
        assert_eq!(task["status"], "in_progress");
        assert_eq!(task["assigned_to"], "agent");
        assert_eq!(task["fence"], 1);
        assert!(task["lease_expires_at"].is_string(), "{task}");
        let rows = actions(&s, crit).await;
        assert_eq!(rows[1]["action"], "started");
        assert_eq!(
            rows[1]["context"],
            json!({"claimed": true, "fence": 1, "lease_seconds": 60})
        );

        let in_p = claim(Some(json!({"project": "p"}))).await.unwrap();
        assert_eq!(id_of(&json_of(in_p, 200).await), other);
        for (body, msg) in [
            (
                json!({"lease_seconds": 5}),
                "lease_seconds: must be between 10 and 86400",
            ),
            (json!({"lease_seconds": "x"}), "lease_seconds"),
        ] {
            let err = error_of(claim(Some(body)).await.unwrap(), 422).await;
            assert!(err.starts_with(msg), "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_heartbeats_release_and_fencing() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let id = create(&s, json!({"title": "leased"})).await;
        let t = |suffix: &str| format!("/api/tasks/{id}{suffix}");

        let start = post(&s, "agent", &t("/start?lease_seconds=30")).await;
        let started = json_of(start, 200).await;
        assert_eq!(started["fence"], 1);
        let first_expiry = started["lease_expires_at"].as_str().unwrap().to_owned();

        // A heartbeat: same version and ETag, a later expiry, no audit row.
        let rows = actions(&s, id).await.len();
        let beat = post(&s, "agent", &t("/heartbeat?fence=1&lease_seconds=600")).await;
        assert_eq!(etag(&beat), format!("\"{}\"", started["version"]));
        let beat = json_of(beat, 200).await;
        assert_eq!(beat["version"], started["version"]);
        assert!(beat["lease_expires_at"].as_str().unwrap() > first_expiry.as_str());
        assert_eq!(actions(&s, id).await.len(), rows);

        // Someone else's heartbeat, a stale fence, a bad length.
        let other = post(&s, "intruder", &t("/heartbeat")).await;
        assert_eq!(
            error_of(other, 403).await,
            "Only the assignee or an admin can extend the lease on this task"
        );
        let stale = post(&s, "agent", &t("/heartbeat?fence=7")).await;
        assert_eq!(error_of(stale, 409).await, "Lease lost: task is at fence 1");
        let bad = post(&s, "agent", &t("/heartbeat?lease_seconds=1")).await;
        assert_eq!(
            error_of(bad, 422).await,
            "lease_seconds: must be between 10 and 86400"
        );

        // The fence is checked before the lifecycle, on every holder write.
        for (method, path) in [
            (Method::POST, t("/progress?percent=10&fence=9")),
            (Method::POST, t("/review?fence=9")),
            (Method::POST, t("/complete?fence=9")),
            (Method::POST, t("/block?fence=9")),
            (Method::POST, t("/unblock?fence=9")),
            (Method::POST, t("/release?fence=9")),
            (Method::POST, t("/request-changes?fence=9")),
            (Method::PATCH, t("?fence=9")),
        ] {
            let mut req = s.as_user(method.clone(), &path, "agent");
            if method == Method::PATCH {
                req = req.json(&json!({"title": "x"}));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                error_of(resp, 409).await,
                "Lease lost: task is at fence 1",
                "{method} {path}"
            );
        }
        let missing = post(&s, "agent", "/api/tasks/999999/progress?percent=1&fence=9").await;
        assert_eq!(error_of(missing, 404).await, "Task not found");

        // Release: back to pending, unassigned, lease cleared, progress kept.
        let progressed = post(&s, "agent", &t("/progress?percent=40&fence=1")).await;
        assert_eq!(progressed.status(), 200);
        let released = json_of(post(&s, "agent", &t("/release?fence=1")).await, 200).await;
        assert_eq!(released["status"], "pending");
        assert_eq!(released["assigned_to"], Value::Null);
        assert_eq!(released["lease_expires_at"], Value::Null);
        assert_eq!(released["progress_percent"], 40);
        assert_eq!(actions(&s, id).await.last().unwrap()["action"], "released");
        let again = post(&s, "agent", &t("/release")).await;
        assert_eq!(
            error_of(again, 400).await,
            "Cannot release task with status 'pending'"
        );
        let no_lease = post(&s, "agent", &t("/heartbeat")).await;
        assert_eq!(error_of(no_lease, 400).await, "Task has no lease");

        // Expiry: a new holder's lease runs out and the sweep reclaims it; its stale fence is
        // then refused.
        let second = json_of(
            post(&s, "agent-2", &t("/start?lease_seconds=10")).await,
            200,
        )
        .await;
        assert_eq!(second["fence"], 2);
        let until =
            chrono::DateTime::parse_from_rfc3339(second["lease_expires_at"].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc);
        let reclaimed = s
            .flow
            .sweep_expired_leases_at(until + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(reclaimed, 1);
        let rows = actions(&s, id).await;
        let last = rows.last().unwrap();
        assert_eq!(last["action"], "lease_expired");
        assert_eq!(last["actor_id"], "taskflow");
        assert_eq!(last["actor_type"], "system");
        assert_eq!(last["context"], json!({"assignee": "agent-2", "fence": 2}));
        let third = json_of(post(&s, "agent-3", &t("/start")).await, 200).await;
        assert_eq!(third["fence"], 3);
        let stale = post(&s, "agent-2", &t("/complete?fence=2")).await;
        assert_eq!(error_of(stale, 409).await, "Lease lost: task is at fence 3");
    }
}

/// 50 concurrent claims over HTTP on 20 ready tasks: 20 × 200, each task once, 30 × 204.
async fn claim_race(servers: &[&TestServer]) {
    let first = servers[0];
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(create(first, json!({"title": format!("t{i}")})).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let claims: Vec<_> = (0..50)
        .map(|i| {
            let s = servers[i % servers.len()];
            let req = s.as_user(Method::POST, "/api/tasks/claim", &format!("agent-{i}"));
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut claimed = HashSet::new();
    let mut nothing = 0;
    for c in claims {
        let (status, body) = c.await.unwrap();
        match status {
            200 => {
                let task: Value = serde_json::from_str(&body).unwrap();
                assert!(claimed.insert(id_of(&task)), "task claimed twice: {body}");
            }
            204 => nothing += 1,
            other => panic!("claim answered {other}: {body}"),
        }
    }
    assert_eq!((claimed.len(), nothing), (20, 30));
    assert_eq!(claimed, ids);
    let started = first
        .as_user(Method::GET, "/api/audit?action=started&limit=100", "lead")
        .send()
        .await
        .unwrap();
    assert_eq!(started.headers()["x-total-count"], "20");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_claims_on_twenty_tasks_over_http() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        claim_race(&[&s]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_across_two_server_processes_on_one_postgres() {
    let Some(db) = taskflow_store_pg::test_support::TestDb::create().await else {
        return;
    };
    let (one, two) = (db.store().await, db.store().await);
    let a = TestServer::start_with(Arc::new(one), Box::new(())).await;
    let b = TestServer::start_with(Arc::new(two), Box::new(db)).await;
    claim_race(&[&a, &b]).await;
}
