//! `Idempotency-Key` over real HTTP (SPEC §8), on SQLite and on PostgreSQL: replays carry
//! `Idempotent-Replayed: true` and the stored answer byte for byte; a key reused for another
//! request is 422; a malformed key is 422; concurrent requests with one key run once; keys
//! belong to their caller; refusals are replayed and validation errors are not.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

mod common;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Backend, TestServer, error_of, json_of};

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Status, `Idempotent-Replayed`, `ETag` and body of an answer.
async fn answer(resp: reqwest::Response) -> (u16, Option<String>, Option<String>, String) {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (replayed, etag) = (header("idempotent-replayed"), header("etag"));
    let status = resp.status().as_u16();
    (status, replayed, etag, resp.text().await.unwrap())
}

async fn count(s: &TestServer, path: &str) -> u64 {
    let resp = s.as_admin(Method::GET, path).send().await.unwrap();
    resp.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_is_answered_from_the_record() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let create = |key: &str, body: Value| {
            s.as_user(Method::POST, "/api/tasks", "alice")
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
        };
        let first = answer(create("create-1", json!({"title": "once"})).await.unwrap()).await;
        assert_eq!((first.0, first.1.as_deref()), (201, None), "{backend:?}");
        for _ in 0..2 {
            let again = answer(create("create-1", json!({"title": "once"})).await.unwrap()).await;
            assert_eq!(again.0, 201);
            assert_eq!(again.1.as_deref(), Some("true"), "a replay says so");
            assert_eq!(
                (again.2, again.3),
                (first.2.clone(), first.3.clone()),
                "same answer"
            );
        }
        assert_eq!(count(&s, "/api/tasks").await, 1);
        assert_eq!(count(&s, "/api/audit?action=created").await, 1);

        // Another body with the same key: 422, nothing written.
        let other = create("create-1", json!({"title": "other"})).await.unwrap();
        assert_eq!(
            error_of(other, 422).await,
            "Idempotency-Key: reused with a different request"
        );
        // The same key from another caller is another key.
        let bob = s
            .as_user(Method::POST, "/api/tasks", "bob")
            .header("Idempotency-Key", "create-1")
            .json(&json!({"title": "once"}))
            .send()
            .await
            .unwrap();
        let bob = answer(bob).await;
        assert_eq!((bob.0, bob.1), (201, None));
        assert_ne!(bob.3, first.3);
        assert_eq!(count(&s, "/api/tasks").await, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_422_after_auth() {
    let s = TestServer::start().await;
    for key in ["", &"k".repeat(256), "two words"] {
        let resp = s
            .as_user(Method::POST, "/api/tasks", "alice")
            .header("Idempotency-Key", key)
            .json(&json!({"title": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(resp, 422).await,
            "Idempotency-Key: must be 1 to 255 visible ASCII characters",
            "{key:?}"
        );
    }
    let resp = s
        .as_user(Method::POST, "/api/tasks", "alice")
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .json(&json!({"title": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp, 422).await,
        "Idempotency-Key: must be 1 to 255 visible ASCII characters"
    );
    // Authentication comes first.
    let resp = s
        .http
        .post(s.url("/api/tasks"))
        .header("Idempotency-Key", "")
        .json(&json!({"title": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(count(&s, "/api/tasks").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_refusals_and_deletes_are_replayed() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        for title in ["a", "b"] {
            let r = s
                .as_user(Method::POST, "/api/tasks", "lead")
                .json(&json!({ "title": title }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let claim = || {
            s.as_user(Method::POST, "/api/tasks/claim", "agent")
                .header("Idempotency-Key", "claim-7")
                .send()
        };
        let first = answer(claim().await.unwrap()).await;
        assert_eq!(first.0, 200);
        let again = answer(claim().await.unwrap()).await;
        assert_eq!(again.1.as_deref(), Some("true"));
        assert_eq!(
            again.3, first.3,
            "the same task and fence, never a second task"
        );
        assert_eq!(count(&s, "/api/audit?action=started").await, 1);
        let task: Value = serde_json::from_str(&first.3).unwrap();
        let id = task["id"].as_i64().unwrap();

        // A refusal (400) is kept and replayed even after the task moved on.
        let start = || {
            s.as_user(Method::POST, &format!("/api/tasks/{id}/start"), "other")
                .header("Idempotency-Key", "start-1")
                .send()
        };
        let refused = answer(start().await.unwrap()).await;
        assert_eq!(refused.0, 400);
        let r = s
            .as_user(Method::POST, &format!("/api/tasks/{id}/release"), "agent")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the task is pending again");
        let replayed = answer(start().await.unwrap()).await;
        assert_eq!((replayed.0, replayed.1.as_deref()), (400, Some("true")));
        assert_eq!(replayed.3, refused.3);

        // A 422 is not kept: the same request runs again.
        let bad = || {
            s.as_user(
                Method::POST,
                &format!("/api/tasks/{id}/progress?percent=500"),
                "agent",
            )
            .header("Idempotency-Key", "bad-1")
            .send()
        };
        for _ in 0..2 {
            let a = answer(bad().await.unwrap()).await;
            assert_eq!((a.0, a.1), (422, None));
        }

        // A delete's 204 is replayed as a 204, and the second delete writes nothing.
        let delete = || {
            s.as_admin(Method::DELETE, &format!("/api/tasks/{id}"))
                .header("Idempotency-Key", "delete-1")
                .send()
        };
        let d1 = answer(delete().await.unwrap()).await;
        let d2 = answer(delete().await.unwrap()).await;
        assert_eq!((d1.0, d1.1), (204, None));
        assert_eq!((d2.0, d2.1.as_deref()), (204, Some("true")));
        assert_eq!(count(&s, "/api/audit?action=deleted").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_requests_with_one_key_run_once() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let req = s
                    .as_user(Method::POST, "/api/tasks", "alice")
                    .header("Idempotency-Key", "burst")
                    .json(&json!({"title": "burst"}));
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    answer(req.send().await.unwrap()).await
                })
            })
            .collect();
        let mut fresh = 0;
        for c in calls {
            let (status, replayed, _, body) = c.await.unwrap();
            match (status, replayed.as_deref()) {
                (201, None) => fresh += 1,
                (201, Some("true")) => {}
                (409, None) => assert!(body.contains("still in progress"), "{body}"),
                other => panic!("unexpected {other:?}: {body}"),
            }
        }
        assert_eq!(fresh, 1, "{backend:?}: the write ran once");
        assert_eq!(count(&s, "/api/tasks").await, 1);
        let body = json_of(
            s.as_admin(Method::GET, "/api/audit?action=created")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(body.as_array().unwrap().len(), 1);
    }
}
