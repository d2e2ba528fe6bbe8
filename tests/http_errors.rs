//! Over-the-wire tests of the REST API's errors (SPEC §3): every error class with its exact
//! message and body shape, the check order 401 → 422 → 404 → 400 → 403 → 412 → 409, the body
//! limit, and hostile input that must never produce a 500.
//!
//! The endpoints' successful behaviour lives in `http_api.rs`.

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use taskflow_auth::test_support::TestKey;
use taskflow_auth::{Algorithm, TokenClaims};

use common::TestServer;
use common::{error_of as error, id_of, json_of, message_of};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts a 4xx (never a 5xx) with the error shape; returns the status and message.
async fn client_error(resp: reqwest::Response, what: &str) -> (u16, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a response body");
    assert!((400..500).contains(&status), "{what}: {status} {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: a JSON error body ({e}): {text}"));
    (status, message_of(&body, status))
}

/// Asserts a 422 whose message names `field` (starts with `field:`); returns the message.
async fn unprocessable(resp: reqwest::Response, field: &str, what: &str) -> String {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a response body");
    assert_eq!(status, 422, "{what}: {text}");
    let msg = message_of(&serde_json::from_str(&text).expect("a JSON body"), 422);
    assert!(
        msg.starts_with(&format!("{field}: ")),
        "{what}: the message should name `{field}`: {msg}"
    );
    msg
}

/// `POST /api/tasks` as `sub`; asserts 201.
async fn create(s: &TestServer, sub: &str, body: Value) -> i64 {
    let resp = s
        .as_user(Method::POST, "/api/tasks", sub)
        .json(&body)
        .send()
        .await
        .expect("send");
    id_of(&json_of(resp, 201).await)
}

/// `GET /api/tasks/{id}`; asserts 200.
async fn get_task(s: &TestServer, id: i64) -> Value {
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{id}"), "reader")
        .send()
        .await
        .expect("send");
    json_of(resp, 200).await
}

/// The number of rows in `GET /api/tasks/{id}/audit`.
async fn audit_len(s: &TestServer, id: i64) -> usize {
    let resp = s
        .as_user(Method::GET, &format!("/api/tasks/{id}/audit"), "reader")
        .send()
        .await
        .expect("send");
    json_of(resp, 200).await.as_array().expect("an array").len()
}

/// A task in progress, assigned to `owner`, at version 2.
async fn started_by(s: &TestServer, owner: &str) -> i64 {
    let id = create(s, owner, json!({"title": "owned"})).await;
    let resp = s
        .as_user(Method::POST, &format!("/api/tasks/{id}/start"), owner)
        .send()
        .await
        .expect("send");
    json_of(resp, 200).await;
    id
}

fn www_authenticate(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// One request of every `/api` endpoint that needs a token, with a well-formed body.
fn every_api_call(id: i64) -> Vec<(Method, String, Option<Value>)> {
    let t = format!("/api/tasks/{id}");
    vec![
        (Method::GET, "/api/tasks".into(), None),
        (
            Method::POST,
            "/api/tasks".into(),
            Some(json!({"title": "t"})),
        ),
        (Method::GET, t.clone(), None),
        (Method::PATCH, t.clone(), Some(json!({"title": "t2"}))),
        (Method::DELETE, t.clone(), None),
        (Method::POST, format!("{t}/start"), None),
        (Method::POST, format!("{t}/progress?percent=10"), None),
        (Method::POST, format!("{t}/review"), None),
        (Method::POST, format!("{t}/request-changes"), None),
        (Method::POST, format!("{t}/complete"), None),
        (
            Method::POST,
            format!("{t}/block"),
            Some(json!({"reason": "r"})),
        ),
        (Method::POST, format!("{t}/unblock"), None),
        (Method::GET, format!("{t}/audit"), None),
        (Method::GET, "/api/audit".into(), None),
        (Method::GET, "/api/me".into(), None),
        (Method::GET, "/api/workers".into(), None),
        (Method::GET, "/api/workers/w".into(), None),
        (
            Method::PUT,
            "/api/workers/w".into(),
            Some(json!({"type": "agent"})),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// 401
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_endpoint_needs_a_bearer_token() {
    let s = TestServer::start().await;
    let id = create(&s, "alice", json!({"title": "exists"})).await;

    for (method, path, body) in every_api_call(id) {
        for auth in [
            None,
            Some("Basic YWxpY2U6c2VjcmV0"),
            Some("Token abc.def.ghi"),
        ] {
            let mut req = s.http.request(method.clone(), s.url(&path));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            if let Some(body) = &body {
                req = req.json(body);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                www_authenticate(&resp),
                "Bearer",
                "{method} {path} {auth:?}"
            );
            assert_eq!(
                error(resp, 401).await,
                "Not authenticated",
                "{method} {path} {auth:?}"
            );
        }
    }
    // No call changed anything.
    assert_eq!(get_task(&s, id).await["version"], 1);
    assert_eq!(audit_len(&s, id).await, 1);

    // A scheme with no token is no token.
    for auth in ["Bearer", "Bearer "] {
        let resp = s
            .http
            .get(s.url("/api/me"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(www_authenticate(&resp), "Bearer", "{auth:?}");
        assert_eq!(error(resp, 401).await, "Not authenticated", "{auth:?}");
    }
    // The scheme name is case-insensitive (RFC 9110 §11.1), as in the seed.
    let token = s.token("alice", "user");
    for scheme in ["bearer", "BEARER"] {
        let resp = s
            .http
            .get(s.url("/api/me"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(resp, 200).await["id"], "alice", "{scheme}");
    }

    // The health checks need no token.
    let resp = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.http.get(s.url("/api/health/db")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_invalid_token_with_the_reason() {
    let s = TestServer::start().await;
    let base = s.jwks.base_url();
    let eddsa = |claims: &TokenClaims| s.keys.mint(Algorithm::EdDSA, claims);
    let other_key = TestKey::generate(Algorithm::EdDSA, "test-eddsa");
    let rogue_key = TestKey::generate(Algorithm::EdDSA, "rogue");
    let mut no_sub = s.jwks.claims("x");
    no_sub.sub = None;
    let at_jwt = s.keys.key(Algorithm::EdDSA).mint_with_header(
        &json!({"alg": "EdDSA", "kid": "test-eddsa", "typ": "at+jwt"}),
        &s.jwks.claims("alice"),
    );

    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("garbage", "not-a-jwt".to_owned(), Some("malformed")),
        (
            "three garbage segments",
            "a.b.c".to_owned(),
            Some("malformed"),
        ),
        (
            "expired",
            eddsa(
                &s.jwks
                    .claims("alice")
                    .expired_for(Duration::from_secs(3600)),
            ),
            Some("expired"),
        ),
        (
            "wrong audience",
            eddsa(
                &TokenClaims::new("alice")
                    .issuer(base.clone())
                    .audience("http://elsewhere.test"),
            ),
            Some("audience"),
        ),
        (
            "wrong issuer",
            eddsa(
                &TokenClaims::new("alice")
                    .issuer("http://elsewhere.test")
                    .audience(base.clone()),
            ),
            Some("issuer"),
        ),
        (
            "forged with another key under a known kid",
            other_key.mint(&s.jwks.claims("alice")),
            Some("signature"),
        ),
        (
            "an unknown kid",
            rogue_key.mint(&s.jwks.claims("alice")),
            None,
        ),
        ("no sub", eddsa(&no_sub), Some("sub")),
        ("an OAuth access token", at_jwt, None),
        (
            "over 8 KiB",
            format!("{}.{}.{}", "a".repeat(4096), "b".repeat(4096), "c"),
            None,
        ),
    ];
    for (what, token, reason) in cases {
        let resp = s
            .http
            .get(s.url("/api/tasks"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let challenge = www_authenticate(&resp);
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        let msg = error(resp, 401).await;
        assert!(msg.starts_with("Invalid token: "), "{what}: {msg}");
        assert!(
            msg.len() > "Invalid token: ".len(),
            "{what}: a reason: {msg}"
        );
        if let Some(reason) = reason {
            assert!(msg.contains(reason), "{what}: {msg}");
        }
    }

    // The same claims, properly signed, pass.
    let resp = s
        .http
        .get(s.url("/api/me"))
        .bearer_auth(eddsa(&s.jwks.claims("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(resp, 200).await["id"], "alice");
}

// ---------------------------------------------------------------------------------------------
// 404 and 405
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tasks_workers_and_routes_are_404() {
    let s = TestServer::start().await;
    let existing = create(&s, "alice", json!({"title": "exists"})).await;

    // A missing task, and the ids 0 and below, on every task endpoint (as an admin, so that
    // nothing but existence can refuse).
    for id in ["424242", "0", "-1", "-9223372036854775808"] {
        for (method, path, body) in every_api_call(0) {
            if !path.starts_with("/api/tasks/0") || path.ends_with("/audit") {
                continue;
            }
            let path = path.replacen("/api/tasks/0", &format!("/api/tasks/{id}"), 1);
            let mut req = s.as_admin(method.clone(), &path);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(error(resp, 404).await, "Task not found", "{method} {path}");
        }
    }
    // An empty PATCH of a missing task is still 404.
    let resp = s
        .as_user(Method::PATCH, "/api/tasks/424242", "alice")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Task not found");

    let resp = s
        .as_user(Method::GET, "/api/workers/ghost", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Worker not found");

    // Unknown routes, with or without a token, have the error shape.
    for path in [
        "/nope",
        "/api/nope",
        "/api/tasks/1/teleport",
        "/api/tasks/1/audit/2",
        "/api/v2/tasks",
    ] {
        let resp = s.as_user(Method::GET, path, "alice").send().await.unwrap();
        error(resp, 404).await;
        let resp = s.http.post(s.url(path)).send().await.unwrap();
        error(resp, 404).await;
    }
    assert_eq!(get_task(&s, existing).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_are_405() {
    let s = TestServer::start().await;
    let id = create(&s, "alice", json!({"title": "exists"})).await;
    let calls = [
        (Method::PUT, "/api/tasks".to_owned()),
        (Method::DELETE, "/api/tasks".to_owned()),
        (Method::PATCH, "/api/tasks".to_owned()),
        (Method::PUT, format!("/api/tasks/{id}")),
        (Method::POST, format!("/api/tasks/{id}")),
        (Method::GET, format!("/api/tasks/{id}/start")),
        (Method::DELETE, format!("/api/tasks/{id}/audit")),
        (Method::POST, "/api/me".to_owned()),
        (Method::POST, "/api/audit".to_owned()),
        (Method::DELETE, "/api/workers/w".to_owned()),
        (Method::POST, "/health".to_owned()),
    ];
    for (method, path) in calls {
        let resp = s
            .as_admin(method.clone(), &path)
            .json(&json!({"title": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error(resp, 405).await,
            "Method not allowed",
            "{method} {path}"
        );
    }
    assert_eq!(get_task(&s, id).await["version"], 1);
}

// ---------------------------------------------------------------------------------------------
// 422
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validation_failures_are_422_naming_the_field() {
    let s = TestServer::start().await;
    let post = |body: String| {
        s.as_user(Method::POST, "/api/tasks", "alice")
            .header("content-type", "application/json")
            .body(body)
    };

    let long = format!("  {}  ", "x".repeat(201));
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": long}), "title"),
        (json!({"title": "    "}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"description": "no title"}), "title"),
        (json!({"title": null}), "title"),
        (json!({"title": 5}), "title"),
        (json!({"title": ["t"]}), "title"),
        (json!({"title": "t", "status": "done"}), "status"),
        (json!({"title": "t", "status": 1}), "status"),
        (json!({"title": "t", "priority": "urgent"}), "priority"),
        (json!({"title": "t", "priority": "HIGH"}), "priority"),
        (
            json!({"title": "t", "progress_percent": 101}),
            "progress_percent",
        ),
        (
            json!({"title": "t", "progress_percent": -1}),
            "progress_percent",
        ),
        (
            json!({"title": "t", "progress_percent": "x"}),
            "progress_percent",
        ),
        (
            json!({"title": "t", "progress_percent": 1.5}),
            "progress_percent",
        ),
        (json!({"title": "t", "parent_id": "abc"}), "parent_id"),
        (json!({"title": "t", "description": 5}), "description"),
        (
            json!({"title": "t", "assigned_to": {"id": 1}}),
            "assigned_to",
        ),
        (json!({"title": "t", "project_slug": true}), "project_slug"),
    ];
    for (body, field) in cases {
        let resp = post(body.to_string()).send().await.unwrap();
        unprocessable(resp, field, &body.to_string()).await;
    }

    // A new task starts as pending or blocked, nothing else.
    for status in ["in_progress", "review", "completed"] {
        let resp = post(json!({"title": "t", "status": status}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error(resp, 422).await,
            "status: a new task starts as 'pending' or 'blocked'"
        );
    }
    let resp = post(json!({"title": "t", "parent_id": 77}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 422).await, "parent_id: task 77 not found");

    // Malformed JSON is 422 too, with a `name:` message.
    for raw in [
        r#"{"title": "#,
        r#"{"title": "t""#,
        r#"{"title": "t",}"#,
        r#"{title: "t"}"#,
        r#"{"title": "t"} trailing"#,
        "not json",
        r#"["an array", "is no task"]"#,
    ] {
        let resp = post(raw.to_owned()).send().await.unwrap();
        let msg = error(resp, 422).await;
        let (name, rest) = msg.split_once(": ").expect("a `name: reason` message");
        assert!(
            !name.is_empty() && !name.contains(' ') && !rest.is_empty(),
            "{raw}: {msg}"
        );
    }

    // Nothing was created.
    let resp = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "0");
    assert_eq!(json_of(resp, 200).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_validation_failures_are_422_naming_the_field() {
    let s = TestServer::start().await;
    let id = create(&s, "alice", json!({"title": "t", "description": "d"})).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": null}), "title"),
        (json!({"status": null}), "status"),
        (json!({"priority": null}), "priority"),
        (json!({"progress_percent": null}), "progress_percent"),
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "y".repeat(201)}), "title"),
        (json!({"title": 7}), "title"),
        (json!({"status": "done"}), "status"),
        (json!({"priority": 3}), "priority"),
        (json!({"progress_percent": 150}), "progress_percent"),
        (json!({"progress_percent": -5}), "progress_percent"),
        (json!({"progress_percent": "half"}), "progress_percent"),
        (json!({"parent_id": "x"}), "parent_id"),
        (json!({"description": false}), "description"),
        (json!({"assigned_to": 12}), "assigned_to"),
    ];
    for (body, field) in cases {
        let resp = s
            .as_user(Method::PATCH, &format!("/api/tasks/{id}"), "alice")
            .json(&body)
            .send()
            .await
            .unwrap();
        unprocessable(resp, field, &body.to_string()).await;
    }
    for raw in [r#"{"title": "#, "[1, 2]", r#""title""#] {
        let resp = s
            .as_user(Method::PATCH, &format!("/api/tasks/{id}"), "alice")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let msg = error(resp, 422).await;
        assert!(msg.contains(": "), "{raw}: {msg}");
    }
    // Nothing changed.
    assert_eq!(get_task(&s, id).await["version"], 1);
    assert_eq!(audit_len(&s, id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_path_failures_are_422_naming_the_parameter() {
    let s = TestServer::start().await;
    let id = create(&s, "alice", json!({"title": "t"})).await;
    let get = |path: &str| s.as_user(Method::GET, path, "alice").send();

    for path in ["/api/tasks", "/api/audit"] {
        for limit in ["0", "101", "-1", "1000"] {
            let resp = get(&format!("{path}?limit={limit}")).await.unwrap();
            assert_eq!(
                error(resp, 422).await,
                "limit: must be between 1 and 100",
                "{path} limit={limit}"
            );
        }
        for (query, field) in [
            ("limit=abc", "limit"),
            ("limit=1.5", "limit"),
            ("limit=99999999999999999999", "limit"),
            ("offset=-1", "offset"),
            ("offset=abc", "offset"),
        ] {
            let resp = get(&format!("{path}?{query}")).await.unwrap();
            unprocessable(resp, field, &format!("{path}?{query}")).await;
        }
    }
    for (query, field) in [
        ("status=done", "status"),
        ("status=IN_PROGRESS", "status"),
        ("priority=urgent", "priority"),
        ("parent_id=abc", "parent_id"),
    ] {
        let resp = get(&format!("/api/tasks?{query}")).await.unwrap();
        unprocessable(resp, field, query).await;
    }
    let resp = get("/api/audit?task_id=abc").await.unwrap();
    unprocessable(resp, "task_id", "task_id=abc").await;

    // progress: percent is required, an integer, and within 0..=100.
    for (query, exact) in [
        ("?percent=101", Some("percent: must be between 0 and 100")),
        ("?percent=-1", Some("percent: must be between 0 and 100")),
        ("?percent=abc", None),
        ("?percent=2147483648", None),
        ("", None),
        ("?note=no%20percent", None),
    ] {
        let resp = s
            .as_user(
                Method::POST,
                &format!("/api/tasks/{id}/progress{query}"),
                "alice",
            )
            .send()
            .await
            .unwrap();
        let msg = unprocessable(resp, "percent", query).await;
        if let Some(exact) = exact {
            assert_eq!(msg, exact);
        }
    }

    // Path ids that are not an i64 are 422 naming the id.
    for bad in [
        "99999999999999999999",
        "9223372036854775808",
        "abc",
        "1.0",
        "1e3",
    ] {
        for (method, path) in [
            (Method::GET, format!("/api/tasks/{bad}")),
            (Method::PATCH, format!("/api/tasks/{bad}")),
            (Method::DELETE, format!("/api/tasks/{bad}")),
            (Method::POST, format!("/api/tasks/{bad}/start")),
            (Method::GET, format!("/api/tasks/{bad}/audit")),
        ] {
            let resp = s
                .as_admin(method.clone(), &path)
                .json(&json!({"title": "x"}))
                .send()
                .await
                .unwrap();
            unprocessable(resp, "id", &format!("{method} {path}")).await;
        }
    }
    assert_eq!(get_task(&s, id).await["version"], 1);
}

// ---------------------------------------------------------------------------------------------
// 413
// ---------------------------------------------------------------------------------------------

/// Sends a chunked (no `Content-Length`) POST over a raw socket and returns the status and
/// body of the answer.
fn post_chunked(addr: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer (and stop reading) before the whole body is sent.
    for chunk in body.chunks(4096) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let mut buf = [0_u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived is fine.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Single-chunk answers only: `<len>\r\n<data>\r\n0\r\n\r\n`.
        body.split("\r\n").nth(1).expect("a chunk").to_owned()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413() {
    const LIMIT: usize = 64 * 1024;
    let s = TestServer::start().await;

    // Just under the limit is accepted.
    let resp = s
        .as_user(Method::POST, "/api/tasks", "alice")
        .json(&json!({"title": "big", "description": "d".repeat(LIMIT - 100)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Over it, with a Content-Length: a big field, or mere whitespace (wire bytes count).
    let big = json!({"title": "big", "description": "d".repeat(LIMIT)}).to_string();
    let padded = format!("{}{}", r#"{"title": "tiny"}"#, " ".repeat(LIMIT));
    for body in [big.clone(), padded] {
        let resp = s
            .as_user(Method::POST, "/api/tasks", "alice")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp, 413).await, "Request body too large");
    }
    let resp = s
        .as_user(Method::PATCH, "/api/tasks/1", "alice")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 413).await, "Request body too large");

    // Over it, chunked (no Content-Length).
    let addr = s.base.trim_start_matches("http://").to_owned();
    let token = s.token("alice", "user");
    let (status, body) = tokio::task::spawn_blocking(move || {
        post_chunked(&addr, "/api/tasks", &token, big.as_bytes())
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    assert_eq!(message_of(&body, 413), "Request body too large");

    // Only the first task exists.
    let resp = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "1");
}

// ---------------------------------------------------------------------------------------------
// Check order: 401 → 422 → 404 → 400 → 403 → 412 → 409
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_in_the_specified_order() {
    let s = TestServer::start().await;
    let owned = started_by(&s, "alice").await; // in_progress, alice's, version 2
    let missing = 424_242;

    // 401 before 422 and 404.
    let resp = s
        .http
        .post(s.url("/api/tasks"))
        .header("content-type", "application/json")
        .body(r#"{"title": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 401).await, "Not authenticated");
    let resp = s
        .http
        .post(s.url("/api/tasks"))
        .bearer_auth("not-a-jwt")
        .json(&json!({"title": 5}))
        .send()
        .await
        .unwrap();
    assert!(error(resp, 401).await.starts_with("Invalid token: "));
    for (method, path) in [
        (Method::GET, format!("/api/tasks/{missing}")),
        (Method::GET, "/api/tasks?limit=0".to_owned()),
        (Method::GET, "/api/tasks?status=done".to_owned()),
        (Method::GET, "/api/tasks/abc".to_owned()),
        (Method::GET, "/api/tasks/99999999999999999999".to_owned()),
        (
            Method::POST,
            format!("/api/tasks/{owned}/progress?percent=500"),
        ),
        (Method::POST, format!("/api/tasks/{owned}/progress")),
        (Method::DELETE, format!("/api/tasks/{missing}")),
    ] {
        let resp = s
            .http
            .request(method.clone(), s.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error(resp, 401).await,
            "Not authenticated",
            "{method} {path}"
        );
    }
    let resp = s
        .http
        .patch(s.url(&format!("/api/tasks/{missing}")))
        .json(&json!({"title": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 401).await, "Not authenticated");

    // 422 before 404.
    for (body, field) in [
        (json!({"title": 5}), "title"),
        (json!({"title": null}), "title"),
        (json!({"title": "  "}), "title"),
        (json!({"progress_percent": 101}), "progress_percent"),
        (json!({"status": "done"}), "status"),
    ] {
        let resp = s
            .as_user(Method::PATCH, &format!("/api/tasks/{missing}"), "alice")
            .json(&body)
            .send()
            .await
            .unwrap();
        unprocessable(resp, field, &body.to_string()).await;
    }
    let resp = s
        .as_user(
            Method::POST,
            &format!("/api/tasks/{missing}/progress?percent=500"),
            "alice",
        )
        .send()
        .await
        .unwrap();
    assert!(error(resp, 422).await.starts_with("percent: "));
    let resp = s
        .as_user(
            Method::POST,
            &format!("/api/tasks/{missing}/block"),
            "alice",
        )
        .json(&json!({"reason": 5}))
        .send()
        .await
        .unwrap();
    assert!(error(resp, 422).await.starts_with("reason: "));

    // 404 before 400 (and before 412).
    for action in ["complete", "unblock", "request-changes", "start"] {
        let resp = s
            .as_user(
                Method::POST,
                &format!("/api/tasks/{missing}/{action}"),
                "alice",
            )
            .header("if-match", "\"9\"")
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp, 404).await, "Task not found", "{action}");
    }
    // A non-admin DELETE of a missing task is 404, not 403.
    let resp = s
        .as_user(Method::DELETE, &format!("/api/tasks/{missing}"), "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 404).await, "Task not found");

    // 400 before 403: an illegal move by someone who could not make it anyway.
    for (action, message) in [
        ("start", "Cannot start task with status 'in_progress'"),
        ("unblock", "Task must be blocked"),
        ("request-changes", "Task must be in review"),
    ] {
        let resp = s
            .as_user(
                Method::POST,
                &format!("/api/tasks/{owned}/{action}"),
                "mallory",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp, 400).await, message, "{action}");
    }
    let resp = s
        .as_user(Method::PATCH, &format!("/api/tasks/{owned}"), "mallory")
        .json(&json!({"status": "pending"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 400).await,
        "Cannot change status from 'in_progress' to 'pending'"
    );
    // 400 before 412.
    let resp = s
        .as_user(Method::POST, &format!("/api/tasks/{owned}/start"), "alice")
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 400).await,
        "Cannot start task with status 'in_progress'"
    );

    // 403 before 412: a stale If-Match from someone who may not act anyway.
    let resp = s
        .as_user(
            Method::POST,
            &format!("/api/tasks/{owned}/complete"),
            "mallory",
        )
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 403).await,
        "Only the assignee or an admin can complete this task"
    );
    let resp = s
        .as_user(Method::PATCH, &format!("/api/tasks/{owned}"), "mallory")
        .header("if-match", "\"1\"")
        .json(&json!({"assigned_to": "mallory"}))
        .send()
        .await
        .unwrap();
    error(resp, 403).await;
    let resp = s
        .as_user(Method::DELETE, &format!("/api/tasks/{owned}"), "mallory")
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");

    // 422 before 403.
    let resp = s
        .as_user(Method::PATCH, &format!("/api/tasks/{owned}"), "mallory")
        .json(&json!({"assigned_to": "mallory", "title": ""}))
        .send()
        .await
        .unwrap();
    assert!(error(resp, 422).await.starts_with("title: "));
    let resp = s
        .as_user(Method::PUT, "/api/workers/w", "mallory")
        .json(&json!({"type": "robot"}))
        .send()
        .await
        .unwrap();
    assert!(error(resp, 422).await.starts_with("type: "));

    // 403 before 409, 412 before 409.
    let child = create(&s, "alice", json!({"title": "child", "parent_id": owned})).await;
    let resp = s
        .as_user(Method::DELETE, &format!("/api/tasks/{owned}"), "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 403).await, "Admin role required");
    let resp = s
        .as_admin(Method::DELETE, &format!("/api/tasks/{owned}"))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp, 412).await,
        "Version mismatch: task is at version 2"
    );
    let resp = s
        .as_admin(Method::DELETE, &format!("/api/tasks/{owned}"))
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(error(resp, 409).await, "Task has subtasks");

    // None of it changed anything.
    assert_eq!(get_task(&s, owned).await["version"], 2);
    assert_eq!(audit_len(&s, owned).await, 2);
    assert_eq!(get_task(&s, child).await["version"], 1);
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

/// What it is, method, path, `Content-Type`, body.
type RawRequest = (&'static str, Method, String, Option<&'static str>, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_4xx_never_a_500() {
    let s = TestServer::start().await;
    let id = create(&s, "alice", json!({"title": "target"})).await;
    let task = format!("/api/tasks/{id}");

    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let raw_bodies: Vec<RawRequest> = vec![
        (
            "empty create, JSON",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            vec![],
        ),
        (
            "empty create, no type",
            Method::POST,
            "/api/tasks".into(),
            None,
            vec![],
        ),
        (
            "whitespace create",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            b"  \n ".to_vec(),
        ),
        (
            "empty patch",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            vec![],
        ),
        (
            "empty worker",
            Method::PUT,
            "/api/workers/w".into(),
            Some("application/json"),
            vec![],
        ),
        (
            "text/plain",
            Method::POST,
            "/api/tasks".into(),
            Some("text/plain"),
            br#"{"title":"t"}"#.to_vec(),
        ),
        (
            "form",
            Method::POST,
            "/api/tasks".into(),
            Some("application/x-www-form-urlencoded"),
            b"title=t".to_vec(),
        ),
        (
            "xml",
            Method::POST,
            "/api/tasks".into(),
            Some("application/xml"),
            br#"{"title":"t"}"#.to_vec(),
        ),
        (
            "array",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            b"[]".to_vec(),
        ),
        (
            "null",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            b"null".to_vec(),
        ),
        (
            "number",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            b"42".to_vec(),
        ),
        (
            "string",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            br#""title""#.to_vec(),
        ),
        (
            "invalid UTF-8",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            b"{\"title\": \"\xff\xfe\"}".to_vec(),
        ),
        (
            "lone surrogate",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            br#"{"title": "\ud800"}"#.to_vec(),
        ),
        (
            "NUL byte outside a string",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            b"{\"title\": \"t\"\0}".to_vec(),
        ),
        (
            "deep title",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            format!(r#"{{"title": {}}}"#, deep(20_000)).into_bytes(),
        ),
        (
            "deep patch",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            format!(r#"{{"description": {}}}"#, deep(30_000)).into_bytes(),
        ),
        (
            "deep block",
            Method::POST,
            format!("{task}/block"),
            Some("application/json"),
            format!(r#"{{"reason": {}}}"#, deep(30_000)).into_bytes(),
        ),
        (
            "huge parent_id",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            br#"{"title": "t", "parent_id": 100000000000000000000000000000}"#.to_vec(),
        ),
        (
            "huge progress",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            br#"{"title": "t", "progress_percent": 4294967296}"#.to_vec(),
        ),
        (
            "huge exponent",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            br#"{"progress_percent": 1e999}"#.to_vec(),
        ),
        (
            "negative zero parent",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            br#"{"parent_id": -0.0}"#.to_vec(),
        ),
        (
            "min i64 parent",
            Method::PATCH,
            task.clone(),
            Some("application/json"),
            br#"{"parent_id": -9223372036854775808}"#.to_vec(),
        ),
        (
            "duplicate keys",
            Method::POST,
            "/api/tasks".into(),
            Some("application/json"),
            br#"{"title": "a", "title": 5}"#.to_vec(),
        ),
        (
            "block with garbage",
            Method::POST,
            format!("{task}/block"),
            Some("application/json"),
            b"{{{".to_vec(),
        ),
        (
            "block with a string",
            Method::POST,
            format!("{task}/block"),
            Some("application/json"),
            br#""why""#.to_vec(),
        ),
    ];
    for (what, method, path, content_type, body) in raw_bodies {
        let mut req = s.as_admin(method, &path).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        client_error(req.send().await.unwrap(), what).await;
    }

    // A deeply nested unknown field is ignored (or refused), but never a crash.
    let resp = s
        .as_admin(Method::POST, "/api/tasks")
        .header("content-type", "application/json")
        .body(format!(r#"{{"title": "deep", "x": {}}}"#, deep(30_000)))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status == 201 {
        assert_eq!(json_of(resp, 201).await["title"], "deep");
    } else {
        client_error(resp, "deep unknown field").await;
    }

    let paths = [
        "/api/tasks/%F0%9F%92%A5",
        "/api/tasks/%00",
        "/api/tasks/1%20OR%201=1",
        "/api/tasks/340282366920938463463374607431768211456/start",
        "/api/tasks/-99999999999999999999/audit",
        "/api/tasks/1/progress?percent=1e2",
        "/api/tasks/1/progress?percent=%F0%9F%92%A5",
        "/api/tasks?limit=%00",
        "/api/tasks?status=%F0%9F%92%A5",
        "/api/tasks?parent_id=99999999999999999999",
        "/api/audit?task_id=-99999999999999999999",
        "/api/audit?offset=99999999999999999999",
        "/api/tasks?offset=18446744073709551615",
    ];
    for path in paths {
        let method = if path.contains("/start") || path.contains("/progress") {
            Method::POST
        } else {
            Method::GET
        };
        client_error(s.as_admin(method, path).send().await.unwrap(), path).await;
    }

    // Odd headers.
    for tag in ["\"99999999999999999999\"", "\"-1\"", "garbage", "\"\"", ""] {
        let resp = s
            .as_user(Method::PATCH, &task, "alice")
            .header("if-match", tag)
            .json(&json!({"title": "never"}))
            .send()
            .await
            .unwrap();
        client_error(resp, &format!("If-Match: {tag}")).await;
    }
    let resp = s
        .http
        .get(s.url("/api/tasks"))
        .header("authorization", format!("Bearer {}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    client_error(resp, "a 20 KB token").await;

    // Odd but valid text is stored and answered exactly. (NUL is refused with a 422, the same
    // on every backend: see http_clients.rs.)
    let odd = [
        "✓ 日本語 \u{202e}reversed\u{202c} 👩‍👩‍👧",
        "quotes \" and \\ backslashes '; DROP TABLE tasks; --",
        "\u{feff}zero\u{200b}width",
    ];
    for title in odd {
        let resp = s
            .as_user(Method::POST, "/api/tasks", "alice")
            .json(&json!({"title": title, "description": title, "project_slug": title}))
            .send()
            .await
            .unwrap();
        let t = json_of(resp, 201).await;
        assert_eq!(t["title"], title.trim());
        assert_eq!(t["description"], title);
        let got = get_task(&s, id_of(&t)).await;
        assert_eq!(got["project_slug"], title);
    }
    // 200 four-byte characters are 200 characters; 201 are too many.
    let emoji = "💥".repeat(200);
    let resp = s
        .as_user(Method::POST, "/api/tasks", "alice")
        .json(&json!({"title": emoji}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(resp, 201).await["title"], emoji.as_str());
    let resp = s
        .as_user(Method::POST, "/api/tasks", "alice")
        .json(&json!({"title": format!("{emoji}💥")}))
        .send()
        .await
        .unwrap();
    unprocessable(resp, "title", "201 emoji").await;
    // Unicode in query filters is just a value that matches nothing.
    let resp = s
        .as_user(
            Method::GET,
            "/api/tasks?assigned_to=%F0%9F%92%A5&project=%E6%97%A5",
            "alice",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(resp, 200).await, json!([]));

    // The target was never touched.
    assert_eq!(get_task(&s, id).await["version"], 1);
    assert_eq!(audit_len(&s, id).await, 1);
    let resp = s.http.get(s.url("/api/health/db")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
