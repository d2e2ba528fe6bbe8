//! Minimal over-the-wire checks of the harness itself.

mod common;

use common::{TestServer, error_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_a_first_task() {
    let s = TestServer::start().await;
    let health: serde_json::Value = s
        .http
        .get(s.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let resp = s
        .as_user(reqwest::Method::POST, "/api/tasks", "alice")
        .json(&serde_json::json!({"title": "  hello  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let task: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(task["title"], "hello");
    let unauth = s.http.get(s.url("/api/tasks")).send().await.unwrap();
    assert_eq!(unauth.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(unauth, 401).await, "Not authenticated");
}
