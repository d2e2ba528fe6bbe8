//! What outside clients found in round 1, pinned over real HTTP on SQLite and on PostgreSQL:
//! CORS for browser apps that send cookies (and for the server's own pages, whose same-origin
//! writes carry an `Origin` too), ids of 0 or below, NUL characters (which Postgres
//! cannot store), and a database that goes away and comes back (503, then recovery).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use common::{Backend, CutProxy, TestServer, error_of, id_of, json_of};

/// Both backends; Postgres is skipped loudly outside CI when no server is configured.
const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_credentials_for_allowed_origins() {
    let s = TestServer::start().await;
    let preflight = s
        .http
        .request(Method::OPTIONS, s.url("/api/tasks"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");

    let resp = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");

    // Credentials never go to an origin that is not on the list.
    let resp = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        resp.headers()
    );
}

/// Browsers send `Origin` on same-origin writes too: the writes of a page this server serves
/// (the board) pass CORS, which still refuses origins that are neither the server's own nor in
/// `ALLOWED_ORIGINS`, exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_writes_pass_cors_and_foreign_origins_are_still_refused() {
    let s = TestServer::start().await;
    // reqwest's Host header is the server's address, so this Origin is the request's own.
    let own = s
        .as_user(Method::POST, "/api/tasks", "ada")
        .header("Origin", &s.base)
        .json(&json!({"title": "from the board"}))
        .send()
        .await
        .unwrap();
    assert!(own.headers().get("access-control-allow-origin").is_none());
    let task = json_of(own, 201).await;
    let id = id_of(&task);
    let start = s
        .as_user(Method::POST, &format!("/api/tasks/{id}/start"), "ada")
        .header("Origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(start, 200).await["status"], "in_progress");

    let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    for foreign in [
        "http://evil.example",
        other_port.as_str(),
        "https://127.0.0.1",
        "null",
    ] {
        let resp = s
            .as_user(Method::POST, "/api/tasks", "ada")
            .header("Origin", foreign)
            .json(&json!({"title": "from elsewhere"}))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        error_of(resp, 403).await;
        // A preflight from there is refused too.
        let preflight = s
            .http
            .request(Method::OPTIONS, s.url("/api/tasks"))
            .header("Origin", foreign)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        error_of(preflight, 403).await;
    }
    // A listed origin is answered with CORS headers, as before.
    let listed = s
        .as_user(Method::POST, "/api/tasks", "ada")
        .header("Origin", "http://localhost:3000")
        .json(&json!({"title": "from the listed app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    json_of(listed, 201).await;

    // Nothing from a refused origin was written.
    let list = s
        .as_user(Method::GET, "/api/tasks", "ada")
        .send()
        .await
        .unwrap();
    let titles: Vec<serde_json::Value> = json_of(list, 200)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [json!("from the board"), json!("from the listed app")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_zero_or_below_are_404_on_every_task_route() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        for id in ["0", "-1", &i64::MIN.to_string()] {
            for (method, path) in [
                (Method::GET, format!("/api/tasks/{id}")),
                (Method::PATCH, format!("/api/tasks/{id}")),
                (Method::DELETE, format!("/api/tasks/{id}")),
                (Method::GET, format!("/api/tasks/{id}/audit")),
                (Method::POST, format!("/api/tasks/{id}/start")),
                (Method::POST, format!("/api/tasks/{id}/progress?percent=5")),
                (Method::POST, format!("/api/tasks/{id}/review")),
                (Method::POST, format!("/api/tasks/{id}/request-changes")),
                (Method::POST, format!("/api/tasks/{id}/complete")),
                (Method::POST, format!("/api/tasks/{id}/block")),
                (Method::POST, format!("/api/tasks/{id}/unblock")),
            ] {
                let mut req = s.as_admin(method.clone(), &path);
                if method == Method::PATCH {
                    req = req.json(&json!({"title": "x"}));
                }
                let resp = req.send().await.unwrap();
                let msg = error_of(resp, 404).await;
                assert_eq!(msg, "Task not found", "{backend:?} {method} {path}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_422_naming_the_field_on_every_backend() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let nul = "a\u{0}b";
        let created = s
            .as_user(Method::POST, "/api/tasks", "alice")
            .json(&json!({"title": "fine"}))
            .send()
            .await
            .unwrap();
        let id = id_of(&json_of(created, 201).await);

        let cases: Vec<(Method, String, Option<serde_json::Value>, &str)> = vec![
            (
                Method::POST,
                "/api/tasks".into(),
                Some(json!({"title": nul})),
                "title",
            ),
            (
                Method::POST,
                "/api/tasks".into(),
                Some(json!({"title": "t", "description": nul})),
                "description",
            ),
            (
                Method::POST,
                "/api/tasks".into(),
                Some(json!({"title": "t", "assigned_to": nul})),
                "assigned_to",
            ),
            (
                Method::POST,
                "/api/tasks".into(),
                Some(json!({"title": "t", "project_slug": nul})),
                "project_slug",
            ),
            (
                Method::PATCH,
                format!("/api/tasks/{id}"),
                Some(json!({"description": nul})),
                "description",
            ),
            (
                Method::PATCH,
                format!("/api/tasks/{id}"),
                Some(json!({"title": nul})),
                "title",
            ),
            (
                Method::POST,
                format!("/api/tasks/{id}/block"),
                Some(json!({"reason": nul})),
                "reason",
            ),
            (
                Method::POST,
                format!("/api/tasks/{id}/progress?percent=5&note=a%00b"),
                None,
                "note",
            ),
            (
                Method::PUT,
                "/api/workers/a%00b".into(),
                Some(json!({"type": "agent"})),
                "id",
            ),
            (
                Method::PUT,
                "/api/workers/w1".into(),
                Some(json!({"type": "agent", "name": nul})),
                "name",
            ),
            (Method::GET, "/api/workers/a%00b".into(), None, "id"),
            (
                Method::GET,
                "/api/tasks?project=a%00b".into(),
                None,
                "project",
            ),
            (
                Method::GET,
                "/api/tasks?assigned_to=a%00b".into(),
                None,
                "assigned_to",
            ),
            (
                Method::GET,
                "/api/audit?actor_id=a%00b".into(),
                None,
                "actor_id",
            ),
            (
                Method::GET,
                "/api/audit?action=a%00b".into(),
                None,
                "action",
            ),
            (
                Method::GET,
                "/api/audit?project=a%00b".into(),
                None,
                "project",
            ),
        ];
        for (method, path, body, field) in cases {
            let mut req = s.as_admin(method.clone(), &path);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let msg = error_of(req.send().await.unwrap(), 422).await;
            assert_eq!(
                msg,
                format!("{field}: must not contain NUL characters"),
                "{backend:?} {method} {path}"
            );
        }
        // Nothing was written by any of them.
        let audit = s.as_admin(Method::GET, "/api/audit").send().await.unwrap();
        assert_eq!(json_of(audit, 200).await.as_array().unwrap().len(), 1);
    }
}

/// Where the PostgreSQL test server listens, from `TASKFLOW_TEST_PG_URL`.
fn pg_server_addr(options: &taskflow_store_pg::PgConnectOptions) -> SocketAddr {
    let host = match options.get_host() {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", options.get_port())
        .parse()
        .expect("the test server listens on an IP address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_heals_by_itself() {
    let Some(db) = taskflow_store_pg::test_support::TestDb::create().await else {
        return;
    };
    // The server reaches Postgres through a proxy the test can cut.
    let proxy = CutProxy::start(pg_server_addr(&db.options)).await;
    let options = db.options.clone().host("127.0.0.1").port(proxy.addr.port());
    let pool = taskflow_store_pg::PgStore::default_pool_options()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2));
    let store = taskflow_store_pg::PgStore::connect_with(options, pool)
        .await
        .expect("connect through the proxy");
    let s = TestServer::start_with(Arc::new(store), Box::new(db)).await;

    let create = |title: &str| {
        s.as_user(Method::POST, "/api/tasks", "alice")
            .json(&json!({ "title": title }))
            .send()
    };
    let first = id_of(&json_of(create("before").await.unwrap(), 201).await);

    proxy.cut();
    let msg = error_of(create("during").await.unwrap(), 503).await;
    assert_eq!(msg, "Database unavailable");
    let read = s
        .as_user(Method::GET, &format!("/api/tasks/{first}"), "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(read, 503).await, "Database unavailable");
    let health = s.http.get(s.url("/api/health/db")).send().await.unwrap();
    let msg = error_of(health, 503).await;
    assert!(msg.starts_with("Database error: "), "{msg}");
    assert!(!msg.contains("postgres://"), "no URL in {msg}");

    proxy.restore();
    // The pool reconnects on its own: the next calls succeed, with nothing lost or doubled.
    let mut healed = None;
    for _ in 0..50 {
        let resp = create("after").await.unwrap();
        if resp.status() == 201 {
            healed = Some(id_of(&json_of(resp, 201).await));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = healed.expect("a write succeeds once the database is back");
    let list = s
        .as_user(Method::GET, "/api/tasks", "alice")
        .send()
        .await
        .unwrap();
    let titles: Vec<String> = json_of(list, 200)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["before", "after"]);
    assert!(after > first);
    let health = s.http.get(s.url("/api/health/db")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_past_the_stale_window_is_503() {
    let (ttl, stale) = (Duration::from_millis(300), Duration::from_millis(500));
    let s = TestServer::start_with_verifier(|b| {
        b.default_ttl(ttl)
            .min_refetch_interval(Duration::from_millis(100))
            .stale_if_error(stale)
    })
    .await;
    let me = || s.as_user(Method::GET, "/api/me", "alice").send();
    assert_eq!(me().await.unwrap().status(), 200);

    // The auth server goes down: the cached keys serve on through the stale window, then the
    // API says it cannot verify tokens (503), rather than calling the token invalid (401).
    s.jwks
        .set_response(taskflow_auth::test_support::JwksResponse::Status(503));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let resp = loop {
        let resp = me().await.unwrap();
        if resp.status() != 200 {
            break resp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stale keys served forever"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let msg = error_of(resp, 503).await;
    assert!(msg.starts_with("Auth unavailable: "), "{msg}");

    // And it heals when the JWKS is back.
    s.jwks.set_jwks(s.keys.jwks());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while me().await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
