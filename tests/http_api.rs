//! Over-the-wire tests of the REST API (SPEC §3): every endpoint of the table, the lifecycle and
//! its refusal texts, PATCH semantics, ETag/If-Match, listings, the audit trail, workers, CORS,
//! and the 50-way start race. Each test runs a real server on loopback (see `common`).
//!
//! Error classes, check order and hostile input live in `http_errors.rs`.

mod common;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use taskflow_core::model::{Identity, NewTask};

use common::TestServer;
use common::{error_of as error, id_of, json_of};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The `ETag` header, which must be present.
fn etag_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("etag")
        .expect("an ETag header")
        .to_str()
        .expect("an ASCII ETag")
        .to_owned()
}

/// The `X-Total-Count` header, which must be present.
fn total_of(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("x-total-count")
        .expect("an X-Total-Count header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("a number")
}

/// A Task response: asserts the status, that `ETag` is the strong `"<version>"` of the body,
/// and returns the body.
async fn task_of(resp: reqwest::Response, status: u16) -> Value {
    let tag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().map(str::to_owned));
    let body = json_of(resp, status).await;
    let tag = tag
        .expect("every Task response carries an ETag")
        .expect("an ASCII ETag");
    assert_eq!(
        tag,
        format!("\"{}\"", body["version"]),
        "strong ETag: {body}"
    );
    body
}

/// `POST /api/tasks` as `sub`; asserts 201.
async fn create(s: &TestServer, sub: &str, body: Value) -> Value {
    let resp = s
        .as_user(Method::POST, "/api/tasks", sub)
        .json(&body)
        .send()
        .await
        .expect("send");
    task_of(resp, 201).await
}

/// `POST /api/tasks/{id}/{action}` as `sub` with no body.
async fn act(s: &TestServer, sub: &str, id: i64, action: &str) -> reqwest::Response {
    s.as_user(Method::POST, &format!("/api/tasks/{id}/{action}"), sub)
        .send()
        .await
        .expect("send")
}

/// Like [`act`], as an admin.
async fn act_admin(s: &TestServer, id: i64, action: &str) -> reqwest::Response {
    s.as_admin(Method::POST, &format!("/api/tasks/{id}/{action}"))
        .send()
        .await
        .expect("send")
}

/// `PATCH /api/tasks/{id}` as `sub`.
async fn patch(s: &TestServer, sub: &str, id: i64, body: Value) -> reqwest::Response {
    s.as_user(Method::PATCH, &format!("/api/tasks/{id}"), sub)
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// `GET path` as `sub`; asserts 200.
async fn get_json(s: &TestServer, sub: &str, path: &str) -> Value {
    let resp = s
        .as_user(Method::GET, path, sub)
        .send()
        .await
        .expect("send");
    json_of(resp, 200).await
}

/// `GET /api/tasks/{id}`; asserts 200.
async fn get_task(s: &TestServer, id: i64) -> Value {
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{id}"), "reader")
        .send()
        .await
        .expect("send");
    task_of(resp, 200).await
}

/// `GET /api/tasks/{id}/audit`; asserts 200.
async fn audit_of(s: &TestServer, id: i64) -> Vec<Value> {
    let rows = get_json(s, "reader", &format!("/api/tasks/{id}/audit")).await;
    rows.as_array().expect("an array").clone()
}

fn actions(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["action"].as_str().expect("an action"))
        .collect()
}

fn ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(id_of)
        .collect()
}

/// `GET path` (a listing) as `sub`: the items' ids and `X-Total-Count`.
async fn list(s: &TestServer, path: &str) -> (Vec<i64>, u64) {
    let resp = s
        .as_user(Method::GET, path, "lister")
        .send()
        .await
        .expect("send");
    let total = total_of(&resp);
    (ids(&json_of(resp, 200).await), total)
}

fn is_utc_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|t| t.contains('T') && (t.ends_with('Z') || t.ends_with("+00:00")))
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_without_auth() {
    let s = TestServer::start().await;
    let resp = s.http.get(s.url("/health")).send().await.unwrap();
    let body = json_of(resp, 200).await;
    assert_eq!(
        body,
        json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")})
    );

    let resp = s.http.get(s.url("/api/health/db")).send().await.unwrap();
    assert_eq!(json_of(resp, 200).await, json!({"database": "connected"}));
}

// ---------------------------------------------------------------------------------------------
// Create, get
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_applies_defaults_and_returns_201_with_etag() {
    let s = TestServer::start().await;
    let resp = s
        .as_user(Method::POST, "/api/tasks", "alice")
        .json(&json!({"title": "  Write the spec  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&resp), "\"1\"");
    let t = task_of(resp, 201).await;
    assert!(id_of(&t) > 0);
    assert_eq!(t["title"], "Write the spec");
    assert_eq!(t["description"], Value::Null);
    assert_eq!(t["status"], "pending");
    assert_eq!(t["priority"], "medium");
    assert_eq!(t["progress_percent"], 0);
    assert_eq!(t["assigned_to"], Value::Null);
    assert_eq!(t["project_slug"], Value::Null);
    assert_eq!(t["parent_id"], Value::Null);
    assert_eq!(t["version"], 1);
    assert!(is_utc_rfc3339(&t["created_at"]), "{t}");
    assert!(is_utc_rfc3339(&t["updated_at"]), "{t}");
    assert_eq!(t["created_at"], t["updated_at"]);

    // GET answers the same task with the same ETag.
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{}", id_of(&t)), "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&resp), "\"1\"");
    assert_eq!(task_of(resp, 200).await, t);

    // One `created` row, by the token's subject, holding the created task's fields.
    let rows = audit_of(&s, id_of(&t)).await;
    assert_eq!(actions(&rows), ["created"]);
    assert_eq!(rows[0]["actor_id"], "alice");
    assert_eq!(rows[0]["actor_type"], "human");
    assert_eq!(rows[0]["task_id"], t["id"]);
    let ctx = &rows[0]["context"];
    assert_eq!(ctx["title"], "Write the spec");
    assert_eq!(ctx["status"], "pending");
    assert_eq!(ctx["priority"], "medium");
    assert_eq!(ctx["progress_percent"], 0);
    assert!(is_utc_rfc3339(&rows[0]["timestamp"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_accepts_every_field_ignores_unknown_ones_and_parent_zero() {
    let s = TestServer::start().await;
    let parent = create(&s, "alice", json!({"title": "parent"})).await;
    let t = create(
        &s,
        "alice",
        json!({
            "title": "child",
            "description": "details",
            "status": "blocked",
            "priority": "critical",
            "progress_percent": 30,
            "assigned_to": "carol",
            "project_slug": "apollo",
            "parent_id": id_of(&parent),
            // Unknown and server-owned fields are ignored.
            "id": 9999,
            "version": 42,
            "created_at": "1999-01-01T00:00:00Z",
            "colour": "teal",
        }),
    )
    .await;
    assert_ne!(id_of(&t), 9999);
    assert_eq!(t["title"], "child");
    assert_eq!(t["description"], "details");
    assert_eq!(t["status"], "blocked");
    assert_eq!(t["priority"], "critical");
    assert_eq!(t["progress_percent"], 30);
    assert_eq!(t["assigned_to"], "carol");
    assert_eq!(t["project_slug"], "apollo");
    assert_eq!(t["parent_id"], parent["id"]);
    assert_eq!(t["version"], 1);
    assert_ne!(t["created_at"], "1999-01-01T00:00:00Z");

    // The seed's quirk: parent_id 0 means none.
    let orphan = create(&s, "alice", json!({"title": "orphan", "parent_id": 0})).await;
    assert_eq!(orphan["parent_id"], Value::Null);

    // A 200-character title is fine after trimming; so is an explicit `pending`.
    let long = "é".repeat(200);
    let t = create(
        &s,
        "alice",
        json!({"title": format!("  {long}\n"), "status": "pending"}),
    )
    .await;
    assert_eq!(t["title"], long.as_str());
    assert_eq!(t["status"], "pending");
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tasks_filters_pages_orders_by_id_and_counts() {
    let s = TestServer::start().await;
    let a = id_of(
        &create(
            &s,
            "u",
            json!({"title": "a", "project_slug": "p1", "priority": "high"}),
        )
        .await,
    );
    let b = id_of(&create(&s, "u", json!({"title": "b", "project_slug": "p2"})).await);
    let c = id_of(
        &create(
            &s,
            "u",
            json!({"title": "c", "project_slug": "p1", "parent_id": a, "status": "blocked"}),
        )
        .await,
    );
    let d = id_of(
        &create(
            &s,
            "u",
            json!({"title": "d", "parent_id": a, "priority": "high"}),
        )
        .await,
    );
    let e = id_of(&create(&s, "u", json!({"title": "e"})).await);
    task_of(act(&s, "worker-1", b, "start").await, 200).await;
    task_of(act(&s, "worker-2", e, "start").await, 200).await;

    assert_eq!(list(&s, "/api/tasks").await, (vec![a, b, c, d, e], 5));
    assert_eq!(
        list(&s, "/api/tasks?status=in_progress").await,
        (vec![b, e], 2)
    );
    assert_eq!(list(&s, "/api/tasks?status=blocked").await, (vec![c], 1));
    assert_eq!(list(&s, "/api/tasks?status=completed").await, (vec![], 0));
    assert_eq!(
        list(&s, "/api/tasks?assigned_to=worker-2").await,
        (vec![e], 1)
    );
    assert_eq!(list(&s, "/api/tasks?project=p1").await, (vec![a, c], 2));
    assert_eq!(list(&s, "/api/tasks?priority=high").await, (vec![a, d], 2));
    assert_eq!(
        list(&s, &format!("/api/tasks?parent_id={a}")).await,
        (vec![c, d], 2)
    );
    // parent_id 0 is no filter.
    assert_eq!(list(&s, "/api/tasks?parent_id=0").await.1, 5);
    // Filters combine.
    assert_eq!(
        list(&s, "/api/tasks?project=p1&priority=high").await,
        (vec![a], 1)
    );
    assert_eq!(
        list(&s, &format!("/api/tasks?parent_id={a}&status=pending")).await,
        (vec![d], 1)
    );
    // Paging: X-Total-Count counts every match, not the page.
    assert_eq!(list(&s, "/api/tasks?limit=2").await, (vec![a, b], 5));
    assert_eq!(
        list(&s, "/api/tasks?limit=2&offset=2").await,
        (vec![c, d], 5)
    );
    assert_eq!(list(&s, "/api/tasks?limit=2&offset=4").await, (vec![e], 5));
    assert_eq!(list(&s, "/api/tasks?offset=99").await, (vec![], 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_limits_default_to_50_and_go_up_to_100() {
    let s = TestServer::start().await;
    let who = Identity::user("bulk");
    let mut created = Vec::new();
    for i in 0..120 {
        let t = s
            .flow
            .create_task(&who, NewTask::titled(format!("bulk {i}")))
            .await
            .unwrap();
        created.push(t.id);
    }
    let (page, total) = list(&s, "/api/tasks").await;
    assert_eq!((page.as_slice(), total), (&created[..50], 120));
    let (page, total) = list(&s, "/api/tasks?limit=100").await;
    assert_eq!((page.as_slice(), total), (&created[..100], 120));
    let (page, total) = list(&s, "/api/tasks?limit=100&offset=100").await;
    assert_eq!((page.as_slice(), total), (&created[100..], 120));

    // The audit listing pages the same way (one `created` row per task).
    let resp = s
        .as_user(Method::GET, "/api/audit", "u")
        .send()
        .await
        .unwrap();
    assert_eq!(total_of(&resp), 120);
    let rows = json_of(resp, 200).await;
    assert_eq!(rows.as_array().unwrap().len(), 50);
    let resp = s
        .as_user(Method::GET, "/api/audit?limit=100&offset=60", "u")
        .send()
        .await
        .unwrap();
    assert_eq!(total_of(&resp), 120);
    let rows = json_of(resp, 200).await;
    let task_ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_id"].as_i64().unwrap())
        .collect();
    assert_eq!(task_ids, created[60..]);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_happy_path_is_audited_oldest_first() {
    let s = TestServer::start().await;
    let id = id_of(
        &create(
            &s,
            "alice",
            json!({"title": "ship it", "project_slug": "apollo"}),
        )
        .await,
    );

    let t = task_of(act(&s, "bob", id, "start").await, 200).await;
    assert_eq!(
        (t["status"].as_str(), t["assigned_to"].as_str()),
        (Some("in_progress"), Some("bob"))
    );
    assert_eq!(t["version"], 2);

    let resp = s
        .as_user(
            Method::POST,
            &format!("/api/tasks/{id}/progress?percent=40&note=half%20way"),
            "bob",
        )
        .send()
        .await
        .unwrap();
    let t = task_of(resp, 200).await;
    assert_eq!(t["progress_percent"], 40);
    assert_eq!(t["status"], "in_progress");

    // A note is optional.
    let resp = s
        .as_user(
            Method::POST,
            &format!("/api/tasks/{id}/progress?percent=60"),
            "bob",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["progress_percent"], 60);

    let t = task_of(act(&s, "bob", id, "review").await, 200).await;
    assert_eq!(t["status"], "review");
    // From review, any user may request changes.
    let t = task_of(act(&s, "carol", id, "request-changes").await, 200).await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["assigned_to"], "bob");
    let t = task_of(act(&s, "bob", id, "complete").await, 200).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["progress_percent"], 100);
    assert_eq!(t["version"], 7);

    let rows = audit_of(&s, id).await;
    assert_eq!(
        actions(&rows),
        [
            "created",
            "started",
            "progressed",
            "progressed",
            "review_requested",
            "changes_requested",
            "completed"
        ]
    );
    let row_ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        row_ids.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {row_ids:?}"
    );
    let actors: Vec<&str> = rows
        .iter()
        .map(|r| r["actor_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["alice", "bob", "bob", "bob", "bob", "carol", "bob"]
    );
    assert!(
        rows.iter()
            .all(|r| r["project_slug"] == "apollo" && r["task_id"] == id)
    );
    assert_eq!(
        rows[2]["context"],
        json!({"percent": 40, "note": "half way"})
    );
    assert_eq!(rows[3]["context"], json!({"percent": 60, "note": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_and_unblock_with_and_without_a_body() {
    let s = TestServer::start().await;

    // Unassigned: block (with a reason) then unblock goes back to pending.
    let id = id_of(&create(&s, "alice", json!({"title": "waits"})).await);
    let resp = s
        .as_user(Method::POST, &format!("/api/tasks/{id}/block"), "alice")
        .json(&json!({"reason": "waiting on legal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["status"], "blocked");
    let t = task_of(act(&s, "alice", id, "unblock").await, 200).await;
    assert_eq!(t["status"], "pending");

    // Assigned: block with no body at all, then unblock goes back to in_progress.
    task_of(act(&s, "bob", id, "start").await, 200).await;
    let t = task_of(act(&s, "bob", id, "block").await, 200).await;
    assert_eq!(t["status"], "blocked");
    let t = task_of(act(&s, "bob", id, "unblock").await, 200).await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["assigned_to"], "bob");

    // `{}` and `null` bodies are fine too; so is blocking from review.
    let resp = s
        .as_user(Method::POST, &format!("/api/tasks/{id}/block"), "bob")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["status"], "blocked");
    task_of(act(&s, "bob", id, "unblock").await, 200).await;
    task_of(act(&s, "bob", id, "review").await, 200).await;
    let resp = s
        .as_user(Method::POST, &format!("/api/tasks/{id}/block"), "bob")
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["status"], "blocked");

    let rows = audit_of(&s, id).await;
    let blocked: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "blocked")
        .map(|r| &r["context"])
        .collect();
    assert_eq!(
        blocked,
        [
            &json!({"reason": "waiting on legal"}),
            &json!({"reason": null}),
            &json!({"reason": null}),
            &json!({"reason": null}),
        ]
    );
    assert_eq!(
        actions(&rows),
        [
            "created",
            "blocked",
            "unblocked",
            "started",
            "blocked",
            "unblocked",
            "blocked",
            "unblocked",
            "review_requested",
            "blocked"
        ]
    );

    // A task created blocked, with an assignee, unblocks to in_progress.
    let id = id_of(
        &create(
            &s,
            "alice",
            json!({"title": "born blocked", "status": "blocked", "assigned_to": "dave"}),
        )
        .await,
    );
    let t = task_of(act(&s, "dave", id, "unblock").await, 200).await;
    assert_eq!(t["status"], "in_progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_refusals_are_400_with_the_seed_texts() {
    let s = TestServer::start().await;
    let pending = id_of(&create(&s, "alice", json!({"title": "p"})).await);
    let in_progress = id_of(&create(&s, "alice", json!({"title": "ip"})).await);
    task_of(act(&s, "alice", in_progress, "start").await, 200).await;
    let completed = id_of(&create(&s, "alice", json!({"title": "c"})).await);
    task_of(act(&s, "alice", completed, "start").await, 200).await;
    task_of(act(&s, "alice", completed, "complete").await, 200).await;
    let blocked = id_of(&create(&s, "alice", json!({"title": "b", "status": "blocked"})).await);

    let cases: &[(i64, &str, &str)] = &[
        (
            in_progress,
            "start",
            "Cannot start task with status 'in_progress'",
        ),
        (
            completed,
            "start",
            "Cannot start task with status 'completed'",
        ),
        (blocked, "start", "Cannot start task with status 'blocked'"),
        (pending, "progress?percent=10", "Task must be in_progress"),
        (blocked, "progress?percent=10", "Task must be in_progress"),
        (
            pending,
            "review",
            "Cannot submit task with status 'pending' for review",
        ),
        (
            completed,
            "review",
            "Cannot submit task with status 'completed' for review",
        ),
        (in_progress, "request-changes", "Task must be in review"),
        (pending, "request-changes", "Task must be in review"),
        (
            pending,
            "complete",
            "Cannot complete task with status 'pending'",
        ),
        (
            blocked,
            "complete",
            "Cannot complete task with status 'blocked'",
        ),
        (
            completed,
            "complete",
            "Cannot complete task with status 'completed'",
        ),
        (
            completed,
            "block",
            "Cannot block task with status 'completed'",
        ),
        (blocked, "block", "Cannot block task with status 'blocked'"),
        (pending, "unblock", "Task must be blocked"),
        (completed, "unblock", "Task must be blocked"),
    ];
    for &(id, action, message) in cases {
        let resp = act(&s, "alice", id, action).await;
        assert_eq!(error(resp, 400).await, message, "{action} on task {id}");
    }

    // PATCH obeys the same table.
    let moves: &[(i64, &str, &str)] = &[
        (pending, "review", "pending"),
        (pending, "completed", "pending"),
        (in_progress, "pending", "in_progress"),
        (blocked, "in_progress", "blocked"), // unassigned: unblocks to pending
        (completed, "in_progress", "completed"),
        (blocked, "completed", "blocked"),
    ];
    for &(id, to, from) in moves {
        let resp = patch(&s, "alice", id, json!({"status": to})).await;
        assert_eq!(
            error(resp, 400).await,
            format!("Cannot change status from '{from}' to '{to}'")
        );
    }

    // No refusal wrote anything: only the writes above are in the trail.
    assert_eq!(actions(&audit_of(&s, pending).await), ["created"]);
    assert_eq!(
        actions(&audit_of(&s, completed).await),
        ["created", "started", "completed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_are_403() {
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "alice", json!({"title": "mine"})).await);
    task_of(act(&s, "alice", id, "start").await, 200).await;

    let forbidden: &[(&str, &str)] = &[
        (
            "complete",
            "Only the assignee or an admin can complete this task",
        ),
        (
            "progress?percent=5",
            "Only the assignee or an admin can report progress on this task",
        ),
        (
            "review",
            "Only the assignee or an admin can submit this task",
        ),
        ("block", "Only the assignee or an admin can block this task"),
    ];
    for &(action, message) in forbidden {
        assert_eq!(
            error(act(&s, "mallory", id, action).await, 403).await,
            message
        );
    }
    // An admin may; so may the assignee.
    let t = task_of(act_admin(&s, id, "progress?percent=50").await, 200).await;
    assert_eq!(t["progress_percent"], 50);
    task_of(act(&s, "alice", id, "block").await, 200).await;
    assert_eq!(
        error(act(&s, "mallory", id, "unblock").await, 403).await,
        "Only the assignee or an admin can unblock this task"
    );
    task_of(act_admin(&s, id, "unblock").await, 200).await;
    task_of(act(&s, "alice", id, "review").await, 200).await;
    // From review any user may complete.
    let t = task_of(act(&s, "mallory", id, "complete").await, 200).await;
    assert_eq!(t["status"], "completed");

    // An admin may complete someone else's in-progress task.
    let other = id_of(&create(&s, "alice", json!({"title": "theirs"})).await);
    task_of(act(&s, "alice", other, "start").await, 200).await;
    task_of(act_admin(&s, other, "complete").await, 200).await;

    // While unassigned, anyone may act.
    let free = id_of(&create(&s, "alice", json!({"title": "free"})).await);
    task_of(act(&s, "mallory", free, "block").await, 200).await;
    task_of(act(&s, "bob", free, "unblock").await, 200).await;

    // Delete and worker registration are admin only; the role name is case-sensitive.
    let resp = s
        .as_user(Method::DELETE, &format!("/api/tasks/{free}"), "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");
    let shouting = s.token("root", "Admin");
    let resp = s
        .http
        .delete(s.url(&format!("/api/tasks/{free}")))
        .bearer_auth(&shouting)
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");
    let resp = s
        .as_user(Method::PUT, "/api/workers/bot-1", "alice")
        .json(&json!({"type": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");
    let resp = s
        .http
        .put(s.url("/api/workers/bot-1"))
        .bearer_auth(&shouting)
        .json(&json!({"type": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");
    let resp = s
        .as_user(Method::GET, "/api/workers/bot-1", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Worker not found");
    // Nothing was deleted.
    get_task(&s, free).await;
}

// ---------------------------------------------------------------------------------------------
// PATCH
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_absent_keeps_null_clears_and_records_changed_fields() {
    let s = TestServer::start().await;
    let parent = id_of(&create(&s, "alice", json!({"title": "parent"})).await);
    let t = create(
        &s,
        "alice",
        json!({
            "title": "t",
            "description": "d",
            "priority": "low",
            "assigned_to": "alice",
            "project_slug": "p1",
            "parent_id": parent,
        }),
    )
    .await;
    let id = id_of(&t);

    // Absent fields are unchanged; `null` clears; unknown fields are ignored.
    let resp = patch(
        &s,
        "alice",
        id,
        json!({"title": "  new title ", "description": null, "colour": "red", "version": 99}),
    )
    .await;
    assert_eq!(etag_of(&resp), "\"2\"");
    let t2 = task_of(resp, 200).await;
    assert_eq!(t2["title"], "new title");
    assert_eq!(t2["description"], Value::Null);
    assert_eq!(t2["priority"], "low");
    assert_eq!(t2["assigned_to"], "alice");
    assert_eq!(t2["project_slug"], "p1");
    assert_eq!(t2["parent_id"], parent);
    assert_eq!(t2["version"], 2);
    assert_eq!(t2["created_at"], t["created_at"]);

    let t3 = task_of(
        patch(
            &s,
            "alice",
            id,
            json!({"assigned_to": null, "project_slug": null, "parent_id": null, "priority": "high", "progress_percent": 15}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(t3["assigned_to"], Value::Null);
    assert_eq!(t3["project_slug"], Value::Null);
    assert_eq!(t3["parent_id"], Value::Null);
    assert_eq!(t3["priority"], "high");
    assert_eq!(t3["progress_percent"], 15);
    assert_eq!(t3["title"], "new title");
    assert_eq!(t3["version"], 3);

    // parent_id 0 also means none; setting one back works.
    let t4 = task_of(
        patch(&s, "alice", id, json!({"parent_id": parent})).await,
        200,
    )
    .await;
    assert_eq!(t4["parent_id"], parent);
    let t5 = task_of(patch(&s, "alice", id, json!({"parent_id": 0})).await, 200).await;
    assert_eq!(t5["parent_id"], Value::Null);

    let rows = audit_of(&s, id).await;
    assert_eq!(
        actions(&rows),
        ["created", "updated", "updated", "updated", "updated"]
    );
    assert_eq!(
        rows[1]["context"],
        json!({"title": "new title", "description": null})
    );
    assert_eq!(
        rows[2]["context"],
        json!({"assigned_to": null, "project_slug": null, "parent_id": null, "priority": "high", "progress_percent": 15})
    );
    assert_eq!(rows[3]["context"], json!({"parent_id": parent}));
    assert_eq!(rows[4]["context"], json!({"parent_id": null}));
    // The row keeps the project as it was after the change.
    assert_eq!(rows[1]["project_slug"], "p1");
    assert_eq!(rows[2]["project_slug"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_that_changes_nothing_bumps_nothing_and_writes_nothing() {
    let s = TestServer::start().await;
    let t = create(&s, "alice", json!({"title": "same", "description": "d"})).await;
    let id = id_of(&t);

    let resp = patch(&s, "bob", id, json!({})).await;
    assert_eq!(etag_of(&resp), "\"1\"");
    assert_eq!(task_of(resp, 200).await, t);

    // Values equal to the current ones are not changes either.
    let resp = patch(
        &s,
        "bob",
        id,
        json!({"title": "same", "description": "d", "status": "pending", "priority": "medium", "assigned_to": null, "ignored": 1}),
    )
    .await;
    assert_eq!(task_of(resp, 200).await, t);
    assert_eq!(actions(&audit_of(&s, id).await), ["created"]);
    assert_eq!(get_task(&s, id).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_status_moves_follow_the_lifecycle_with_its_effects() {
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "alice", json!({"title": "via patch"})).await);

    // pending → in_progress is a start: it assigns the caller, and is one `updated` row.
    let t = task_of(
        patch(&s, "bob", id, json!({"status": "in_progress"})).await,
        200,
    )
    .await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["assigned_to"], "bob");
    assert_eq!(t["version"], 2);
    let rows = audit_of(&s, id).await;
    assert_eq!(actions(&rows), ["created", "updated"]);
    assert_eq!(rows[1]["actor_id"], "bob");
    assert_eq!(
        rows[1]["context"],
        json!({"status": "in_progress", "assigned_to": "bob"})
    );

    // The move's effects apply after the plain fields: a start assigns the actor even when the
    // same patch names someone else.
    let other = id_of(&create(&s, "alice", json!({"title": "assign and start"})).await);
    let t = task_of(
        patch(
            &s,
            "carol",
            other,
            json!({"status": "in_progress", "assigned_to": "dave"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(t["assigned_to"], "carol");

    // The move obeys the row's policy: completing bob's task is his (or an admin's).
    let resp = patch(&s, "mallory", id, json!({"status": "completed"})).await;
    assert_eq!(
        error(resp, 403).await,
        "Only the assignee or an admin can complete this task"
    );
    // Taking the task away from bob is his or an admin's call.
    let resp = patch(&s, "mallory", id, json!({"assigned_to": "mallory"})).await;
    let msg = error(resp, 403).await;
    assert!(
        msg.starts_with("Only the assignee or an admin can ") && msg.ends_with(" this task"),
        "{msg}"
    );

    // in_progress → completed by the assignee sets progress to 100.
    let t = task_of(
        patch(&s, "bob", id, json!({"status": "completed"})).await,
        200,
    )
    .await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["progress_percent"], 100);
    let rows = audit_of(&s, id).await;
    assert_eq!(actions(&rows), ["created", "updated", "updated"]);
    assert_eq!(
        rows[2]["context"],
        json!({"status": "completed", "progress_percent": 100})
    );

    // Completed is terminal for PATCH too.
    let resp = patch(&s, "bob", id, json!({"status": "in_progress"})).await;
    assert_eq!(
        error(resp, 400).await,
        "Cannot change status from 'completed' to 'in_progress'"
    );

    // An admin may reassign.
    let t = task_of(
        s.as_admin(Method::PATCH, &format!("/api/tasks/{other}"))
            .json(&json!({"assigned_to": "erin"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(t["assigned_to"], "erin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_links_refuse_missing_parents_and_cycles() {
    let s = TestServer::start().await;
    let a = id_of(&create(&s, "u", json!({"title": "a"})).await);
    let b = id_of(&create(&s, "u", json!({"title": "b", "parent_id": a})).await);
    let c = id_of(&create(&s, "u", json!({"title": "c", "parent_id": b})).await);

    let resp = s
        .as_user(Method::POST, "/api/tasks", "u")
        .json(&json!({"title": "x", "parent_id": 999_999}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 422).await, "parent_id: task 999999 not found");

    for (id, parent) in [(a, a), (a, b), (a, c), (b, c)] {
        let resp = patch(&s, "u", id, json!({"parent_id": parent})).await;
        assert_eq!(
            error(resp, 422).await,
            "parent_id: would create a cycle",
            "{id} under {parent}"
        );
    }
    let resp = patch(&s, "u", c, json!({"parent_id": 424_242})).await;
    assert_eq!(error(resp, 422).await, "parent_id: task 424242 not found");

    // A legal move: c under a.
    let t = task_of(patch(&s, "u", c, json!({"parent_id": a})).await, 200).await;
    assert_eq!(t["parent_id"], a);
    assert_eq!(get_task(&s, a).await["version"], 1);
}

// ---------------------------------------------------------------------------------------------
// ETag / If-Match
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_guards_patch_lifecycle_and_delete() {
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "alice", json!({"title": "guarded"})).await);
    let path = format!("/api/tasks/{id}");
    let with = |method: Method, path: &str, tag: &str| {
        s.as_user(method, path, "alice").header("if-match", tag)
    };

    // A matching strong tag is accepted and answered with the next one.
    let resp = with(Method::PATCH, &path, "\"1\"")
        .json(&json!({"title": "v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&resp), "\"2\"");
    task_of(resp, 200).await;

    // Stale tags are 412 with the current version, even for a patch that changes nothing.
    for body in [json!({"title": "v3"}), json!({}), json!({"title": "v2"})] {
        let resp = with(Method::PATCH, &path, "\"1\"")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error(resp, 412).await,
            "Version mismatch: task is at version 2"
        );
    }
    // Weak tags never match, not even the current version.
    let resp = with(Method::PATCH, &path, "W/\"2\"")
        .json(&json!({"title": "weak"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 2"
    );
    // `*` matches any existing task.
    let resp = with(Method::PATCH, &path, "*")
        .json(&json!({"description": "star"}))
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["version"], 3);
    let resp = with(Method::PATCH, &path, "\"3\"")
        .json(&json!({"description": "list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(task_of(resp, 200).await["version"], 4);

    // Lifecycle POSTs honour it.
    let start = format!("/api/tasks/{id}/start");
    let resp = with(Method::POST, &start, "\"3\"").send().await.unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 4"
    );
    let resp = with(Method::POST, &start, "W/\"4\"").send().await.unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 4"
    );
    let resp = with(Method::POST, &start, "\"4\"").send().await.unwrap();
    assert_eq!(etag_of(&resp), "\"5\"");
    task_of(resp, 200).await;
    let progress = format!("/api/tasks/{id}/progress?percent=20");
    let resp = with(Method::POST, &progress, "\"4\"").send().await.unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 5"
    );
    let resp = with(Method::POST, &progress, "*").send().await.unwrap();
    assert_eq!(task_of(resp, 200).await["version"], 6);
    for action in ["review", "complete", "block"] {
        let resp = with(Method::POST, &format!("/api/tasks/{id}/{action}"), "\"5\"")
            .send()
            .await
            .unwrap();
        assert_eq!(
            error(resp, 412).await,
            "Version mismatch: task is at version 6",
            "{action}"
        );
    }
    let resp = with(Method::POST, &format!("/api/tasks/{id}/review"), "\"6\"")
        .send()
        .await
        .unwrap();
    task_of(resp, 200).await;
    let resp = with(
        Method::POST,
        &format!("/api/tasks/{id}/request-changes"),
        "\"6\"",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 7"
    );
    let resp = with(Method::POST, &format!("/api/tasks/{id}/block"), "\"7\"")
        .json(&json!({"reason": "r"}))
        .send()
        .await
        .unwrap();
    task_of(resp, 200).await;
    let resp = with(Method::POST, &format!("/api/tasks/{id}/unblock"), "\"7\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 8"
    );
    // Nothing was written by any refused request.
    assert_eq!(get_task(&s, id).await["version"], 8);
    assert_eq!(audit_of(&s, id).await.len(), 8);

    // DELETE honours it too.
    let admin_delete = |tag: &str| {
        s.as_admin(Method::DELETE, &path)
            .header("if-match", tag.to_owned())
    };
    let resp = admin_delete("\"7\"").send().await.unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 8"
    );
    let resp = admin_delete("W/\"8\"").send().await.unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 8"
    );
    let resp = admin_delete("\"8\"").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    // `*` matches only an existing task.
    let resp = s
        .as_user(Method::PATCH, &path, "alice")
        .header("if-match", "*")
        .json(&json!({"title": "gone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Task not found");
}

// ---------------------------------------------------------------------------------------------
// Delete and the audit trail
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_with_subtasks_and_keeps_the_audit_trail() {
    let s = TestServer::start().await;
    let parent = id_of(&create(&s, "alice", json!({"title": "parent", "project_slug": "p"})).await);
    let child = id_of(&create(&s, "alice", json!({"title": "child", "parent_id": parent})).await);

    let resp = s
        .as_admin(Method::DELETE, &format!("/api/tasks/{parent}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 409).await, "Task has subtasks");
    get_task(&s, parent).await;

    for id in [child, parent] {
        let resp = s
            .as_admin(Method::DELETE, &format!("/api/tasks/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(resp.text().await.unwrap().is_empty(), "204 has no body");
        let resp = s
            .as_user(Method::GET, &format!("/api/tasks/{id}"), "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp, 404).await, "Task not found");
    }

    // The trail outlives the task, including the `deleted` row by the admin.
    let rows = audit_of(&s, parent).await;
    assert_eq!(actions(&rows), ["created", "deleted"]);
    assert_eq!(rows[1]["actor_id"], "admin");
    assert_eq!(rows[1]["project_slug"], "p");
    let resp = s
        .as_user(Method::GET, "/api/audit?action=deleted", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(total_of(&resp), 2);
    let rows = json_of(resp, 200).await;
    let task_ids: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["task_id"])
        .collect();
    assert_eq!(task_ids, [&json!(child), &json!(parent)]);

    // Deleting again is 404; a never-existing id has an empty trail.
    let resp = s
        .as_admin(Method::DELETE, &format!("/api/tasks/{parent}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Task not found");
    assert!(audit_of(&s, 987_654).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_search_filters_pages_and_keeps_history() {
    let s = TestServer::start().await;
    let t1 = id_of(&create(&s, "alice", json!({"title": "one", "project_slug": "p1"})).await);
    let t2 = id_of(&create(&s, "bob", json!({"title": "two", "project_slug": "p2"})).await);
    task_of(act(&s, "bob", t1, "start").await, 200).await;
    // bob becomes an agent: rows written from now on say so, earlier ones keep `human`.
    let resp = s
        .as_admin(Method::PUT, "/api/workers/bob")
        .json(&json!({"type": "agent", "name": "Bob the bot"}))
        .send()
        .await
        .unwrap();
    json_of(resp, 200).await;
    task_of(act(&s, "bob", t2, "start").await, 200).await;
    // Moving t1 to another project: the row carries the new project, the old rows the old one.
    task_of(
        patch(&s, "bob", t1, json!({"project_slug": "p2"})).await,
        200,
    )
    .await;

    let server = &s;
    let get = |query: &str| {
        let query = query.to_owned();
        async move {
            let resp = server
                .as_user(Method::GET, &format!("/api/audit{query}"), "reader")
                .send()
                .await
                .unwrap();
            let total = total_of(&resp);
            let rows = json_of(resp, 200).await.as_array().unwrap().clone();
            (rows, total)
        }
    };
    let summary = |rows: &[Value]| -> Vec<(i64, String, String, String)> {
        rows.iter()
            .map(|r| {
                (
                    r["task_id"].as_i64().unwrap(),
                    r["action"].as_str().unwrap().to_owned(),
                    r["actor_id"].as_str().unwrap().to_owned(),
                    r["actor_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let row =
        |t: i64, a: &str, who: &str, ty: &str| (t, a.to_owned(), who.to_owned(), ty.to_owned());

    let (all, total) = get("").await;
    assert_eq!(total, 5);
    assert_eq!(
        summary(&all),
        [
            row(t1, "created", "alice", "human"),
            row(t2, "created", "bob", "human"),
            row(t1, "started", "bob", "human"),
            row(t2, "started", "bob", "agent"),
            row(t1, "updated", "bob", "agent"),
        ]
    );
    let all_ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(all[4]["context"], json!({"project_slug": "p2"}));

    let (rows, total) = get(&format!("?task_id={t1}")).await;
    assert_eq!(total, 3);
    assert_eq!(
        summary(&rows),
        [
            row(t1, "created", "alice", "human"),
            row(t1, "started", "bob", "human"),
            row(t1, "updated", "bob", "agent")
        ]
    );
    let (rows, total) = get("?actor_id=bob").await;
    assert_eq!((rows.len(), total), (4, 4));
    let (rows, total) = get("?action=started").await;
    assert_eq!(
        summary(&rows),
        [
            row(t1, "started", "bob", "human"),
            row(t2, "started", "bob", "agent")
        ]
    );
    assert_eq!(total, 2);
    // `action` is free text: an unknown one matches nothing, and is no error.
    let (rows, total) = get("?action=teleported").await;
    assert_eq!((rows.len(), total), (0, 0));
    let (rows, total) = get("?project=p1").await;
    assert_eq!(
        summary(&rows),
        [
            row(t1, "created", "alice", "human"),
            row(t1, "started", "bob", "human")
        ]
    );
    assert_eq!(total, 2);
    let (rows, total) = get("?project=p2").await;
    assert_eq!(total, 3);
    assert_eq!(rows[2]["task_id"], t1);
    let (rows, total) = get(&format!("?task_id={t1}&actor_id=bob&action=updated")).await;
    assert_eq!(
        (summary(&rows), total),
        (vec![row(t1, "updated", "bob", "agent")], 1)
    );
    // Paging.
    let (rows, total) = get("?limit=2&offset=1").await;
    assert_eq!(total, 5);
    assert_eq!(rows, all[1..3]);
    let (rows, total) = get("?offset=5").await;
    assert_eq!((rows.len(), total), (0, 5));

    // The task's own trail agrees, oldest first.
    assert_eq!(
        audit_of(&s, t1).await,
        [all[0].clone(), all[2].clone(), all[4].clone()]
    );
}

// ---------------------------------------------------------------------------------------------
// Me and workers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_reports_the_token_and_the_registry() {
    let s = TestServer::start().await;
    let me = get_json(&s, "alice", "/api/me").await;
    assert_eq!(
        me,
        json!({"id": "alice", "email": "alice@example.test", "role": "user", "actor_type": "human"})
    );
    let resp = s.as_admin(Method::GET, "/api/me").send().await.unwrap();
    let me = json_of(resp, 200).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["id"], "admin");

    // No role claim: `user`; no email claim: null.
    let bare = s
        .keys
        .mint(taskflow_auth::Algorithm::EdDSA, &s.jwks.claims("bare"));
    let resp = s
        .http
        .get(s.url("/api/me"))
        .bearer_auth(bare)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(resp, 200).await,
        json!({"id": "bare", "email": null, "role": "user", "actor_type": "human"})
    );

    // Registered as an agent, the same token is now an agent.
    let resp = s
        .as_admin(Method::PUT, "/api/workers/alice")
        .json(&json!({"type": "agent"}))
        .send()
        .await
        .unwrap();
    json_of(resp, 200).await;
    assert_eq!(
        get_json(&s, "alice", "/api/me").await["actor_type"],
        "agent"
    );
    // An agent's writes are recorded as an agent's.
    let id = id_of(&create(&s, "alice", json!({"title": "by a bot"})).await);
    assert_eq!(audit_of(&s, id).await[0]["actor_type"], "agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_upserted_by_admins_and_listed_by_id() {
    let s = TestServer::start().await;
    assert_eq!(get_json(&s, "u", "/api/workers").await, json!([]));

    for (id, ty, name) in [
        ("zed", "agent", "Zed"),
        ("amy", "human", "Amy"),
        ("mo", "agent", "Mo"),
    ] {
        let resp = s
            .as_admin(Method::PUT, &format!("/api/workers/{id}"))
            .json(&json!({"type": ty, "name": name, "unknown": true}))
            .send()
            .await
            .unwrap();
        let w = json_of(resp, 200).await;
        assert_eq!(w["id"], id);
        assert_eq!(w["type"], ty);
        assert_eq!(w["name"], name);
        assert!(is_utc_rfc3339(&w["created_at"]), "{w}");
        assert_eq!(w.as_object().unwrap().len(), 4, "{w}");
    }
    let listed = get_json(&s, "u", "/api/workers").await;
    let order: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["amy", "mo", "zed"]);

    let zed = get_json(&s, "u", "/api/workers/zed").await;
    assert_eq!(zed["type"], "agent");
    assert_eq!(zed["name"], "Zed");

    // A re-PUT replaces the row (an omitted name clears it) and keeps created_at.
    let resp = s
        .as_admin(Method::PUT, "/api/workers/zed")
        .json(&json!({"type": "human"}))
        .send()
        .await
        .unwrap();
    let again = json_of(resp, 200).await;
    assert_eq!(again["type"], "human");
    assert_eq!(again["name"], Value::Null);
    assert_eq!(again["created_at"], zed["created_at"]);
    assert_eq!(get_json(&s, "u", "/api/workers/zed").await, again);

    let resp = s
        .as_user(Method::GET, "/api/workers/nobody", "u")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Worker not found");

    // The body is validated: the type is required and is an enum.
    for (body, field) in [
        (json!({"name": "x"}), "type:"),
        (json!({"type": "robot"}), "type:"),
        (json!({"type": "agent", "name": 5}), "name:"),
    ] {
        let resp = s
            .as_admin(Method::PUT, "/api/workers/x")
            .json(&body)
            .send()
            .await
            .unwrap();
        let msg = error(resp, 422).await;
        assert!(msg.starts_with(field), "{body}: {msg}");
    }
    assert_eq!(
        get_json(&s, "u", "/api/workers")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// ---------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------

fn header_list(resp: &reqwest::Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII").split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_the_configured_origin_and_exposes_etag_and_total() {
    const ORIGIN: &str = "http://localhost:3000";
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "alice", json!({"title": "cors"})).await);

    let task_path = format!("/api/tasks/{id}");
    for (path, method) in [("/api/tasks", "POST"), (task_path.as_str(), "PATCH")] {
        let resp = s
            .http
            .request(Method::OPTIONS, s.url(path))
            .header("origin", ORIGIN)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type, if-match",
            )
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "preflight: {}", resp.status());
        assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
        let methods = header_list(&resp, "access-control-allow-methods");
        assert!(
            methods.contains(&method.to_ascii_lowercase()),
            "{methods:?}"
        );
        let headers = header_list(&resp, "access-control-allow-headers");
        for h in ["authorization", "content-type", "if-match"] {
            assert!(headers.contains(&h.to_owned()), "{h} in {headers:?}");
        }
    }

    // Real requests expose ETag and X-Total-Count to the browser.
    let resp = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    let exposed = header_list(&resp, "access-control-expose-headers");
    assert!(exposed.contains(&"etag".to_owned()), "{exposed:?}");
    assert!(exposed.contains(&"x-total-count".to_owned()), "{exposed:?}");
    assert_eq!(total_of(&resp), 1);
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{id}"), "alice")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert!(header_list(&resp, "access-control-expose-headers").contains(&"etag".to_owned()));
    assert_eq!(etag_of(&resp), "\"1\"");

    // Errors reach the browser too (with the same body shape).
    let resp = s
        .http
        .get(s.url("/api/tasks"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(error(resp, 401).await, "Not authenticated");

    // Another origin is not allowed.
    let resp = s
        .http
        .request(Method::OPTIONS, s.url("/api/tasks"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(resp.status().is_client_error(), "{}", resp.status());
    error(resp, 403).await;
}

// ---------------------------------------------------------------------------------------------
// The race
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_users_race_to_start_one_task_and_exactly_one_wins() {
    const RACERS: usize = 50;
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "owner", json!({"title": "contested"})).await);
    let url = s.url(&format!("/api/tasks/{id}/start"));

    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let sub = format!("racer-{i:02}");
        let request = s.http.post(&url).bearer_auth(s.token(&sub, "user"));
        let barrier = Arc::clone(&barrier);
        racers.spawn(async move {
            barrier.wait().await;
            let resp = request.send().await.expect("send");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.expect("a JSON body");
            (sub, status, body)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = racers.join_next().await {
        let (sub, status, body) = joined.expect("racer task");
        match status {
            200 => {
                assert_eq!(body["assigned_to"], sub.as_str(), "{body}");
                winners.push(sub);
            }
            400 => {
                assert_eq!(
                    body,
                    json!({"error": "Cannot start task with status 'in_progress'", "status_code": 400})
                );
                losers += 1;
            }
            other => panic!("{sub}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(losers, RACERS - 1);

    let t = get_task(&s, id).await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["assigned_to"], winners[0].as_str());
    assert_eq!(t["version"], 2);
    let rows = audit_of(&s, id).await;
    let started: Vec<&Value> = rows.iter().filter(|r| r["action"] == "started").collect();
    assert_eq!(started.len(), 1, "{rows:?}");
    assert_eq!(started[0]["actor_id"], winners[0].as_str());
    assert_eq!(actions(&rows), ["created", "started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_lists_match_when_any_strong_tag_is_current() {
    let s = TestServer::start().await;
    let id = id_of(&create(&s, "alice", json!({"title": "listed"})).await);
    let start = format!("/api/tasks/{id}/start");
    // Version 1 is listed after a stale tag: the list matches.
    let resp = s
        .as_user(Method::POST, &start, "alice")
        .header("if-match", r#""7", "1""#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    // No listed tag is current (the weak one never matches): 412 with the current version.
    let progress = format!("/api/tasks/{id}/progress?percent=10");
    let resp = s
        .as_user(Method::POST, &progress, "alice")
        .header("if-match", r#""1", W/"2""#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::error_of(resp, 412).await,
        "Version mismatch: task is at version 2"
    );
    // PATCH and DELETE read lists the same way.
    let path = format!("/api/tasks/{id}");
    let resp = s
        .as_user(Method::PATCH, &path, "alice")
        .header("if-match", r#""5", "2", "9""#)
        .json(&json!({"title": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .as_admin(Method::DELETE, &path)
        .header("if-match", r#""2", "4""#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::error_of(resp, 412).await,
        "Version mismatch: task is at version 3"
    );
    let resp = s
        .as_admin(Method::DELETE, &path)
        .header("if-match", r#""2", "3""#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // A list on a missing task is still 404.
    let resp = s
        .as_user(Method::POST, "/api/tasks/999/start", "alice")
        .header("if-match", r#""1", "2""#)
        .send()
        .await
        .unwrap();
    assert_eq!(common::error_of(resp, 404).await, "Task not found");
}
