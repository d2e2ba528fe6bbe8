//! A request that is in flight when SIGTERM arrives still completes: the server stops accepting,
//! lets the request finish (here: a create whose body is still arriving), answers it, and only
//! then closes the store. The task it created is in the database afterwards.
//!
//! A test binary of its own, because the signal goes to the whole process.

#![cfg(unix)]

use std::time::Duration;

use taskflow_auth::Algorithm;
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_core::TaskFlow;
use taskflow_core::model::{Identity, TaskFilter};
use taskflow_poem::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("in-flight.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let keys = TestKeys::generate();
    let jwks = JwksServer::start(keys.jwks()).await;
    let token = keys.mint(Algorithm::EdDSA, &jwks.claims("alice"));
    let url = format!("sqlite://{}", db.display());
    let jwks_url = jwks.jwks_url();
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "PORT" => Some(port.to_string()),
        "JWKS_URL" => Some(jwks_url.clone()),
        "LOG_LEVEL" => Some("warn".to_owned()),
        _ => None,
    })
    .unwrap();
    let mut guard =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let store = taskflow::open(&config.database_url).await.unwrap();
    let server = tokio::spawn(taskflow_poem::serve(config, store));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server answered /health");

    // Headers and half the body of a create; the handler is now waiting for the rest.
    let body = br#"{"title": "finished after SIGTERM"}"#;
    let (head, tail) = body.split_at(10);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.write_all(head).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    guard.recv().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.is_finished(),
        "serve waits for the request in flight"
    );

    conn.write_all(tail).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut response))
        .await
        .expect("the response arrives")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the in-flight create is answered: {response}"
    );
    assert!(response.contains("finished after SIGTERM"), "{response}");

    let result = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("serve returned after SIGTERM")
        .expect("serve did not panic");
    assert!(result.is_ok(), "{result:?}");

    let store = taskflow::SqliteStore::open(&db).await.unwrap();
    let flow = TaskFlow::new(std::sync::Arc::new(store));
    let tasks = flow
        .list_tasks(&Identity::user("alice"), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(tasks.total, 1);
    assert_eq!(tasks.items[0].title, "finished after SIGTERM");
}
