//! `serve` stops gracefully on SIGTERM: it ends open event streams at once (rather than wait
//! out the grace period for them), returns `Ok`, stops listening, and closes the store (SQLite
//! checkpoints and removes its WAL file when the last connection closes).
//!
//! A test binary of its own, because the signal goes to the whole process.

#![cfg(unix)]

use std::time::Duration;

use taskflow_poem::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_and_closes_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shutdown.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("sqlite://{}", db.display());
    let keys = taskflow_auth::test_support::TestKeys::generate();
    let jwks = taskflow_auth::test_support::JwksServer::start(keys.jwks()).await;
    let auth_server = jwks.base_url();
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "AUTH_SERVER_URL" => Some(auth_server.clone()),
        "PORT" => Some(port.to_string()),
        "LOG_LEVEL" => Some("warn".to_owned()),
        _ => None,
    })
    .unwrap();
    // Make sure a SIGTERM can never take the default action (killing the test runner), even
    // before the server has registered its own handler.
    let mut guard =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();

    let store = taskflow::open(&config.database_url).await.unwrap();
    let server = tokio::spawn(taskflow_poem::serve(config, store));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/api/health/db")).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server answered /api/health/db");
    assert!(
        dir.path().join("shutdown.db-wal").exists(),
        "a live WAL database has a -wal file"
    );

    // A subscriber with its stream open: the server must not wait for it to leave.
    let token = keys.mint(taskflow_auth::Algorithm::EdDSA, &jwks.claims("watcher"));
    let mut events = http
        .get(format!("{base}/api/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);

    let signalled = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    guard.recv().await;

    // The stream ends cleanly (no more chunks) instead of being cut at the grace period.
    loop {
        match tokio::time::timeout(Duration::from_secs(60), events.chunk()).await {
            Ok(Ok(Some(_comment))) => continue,
            Ok(Ok(None)) => break,
            Ok(Err(err)) => panic!("the event stream broke instead of ending: {err}"),
            Err(_) => panic!("the event stream was still open 60 s after SIGTERM"),
        }
    }
    let result = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("serve returned after SIGTERM")
        .expect("serve did not panic");
    assert!(result.is_ok(), "{result:?}");
    let took = signalled.elapsed();
    // The grace period for in-flight requests is 30 s; an event stream must not use it up.
    assert!(
        took < Duration::from_secs(20),
        "shutdown with an open event stream took {took:?}"
    );
    assert!(
        http.get(format!("{base}/health")).send().await.is_err(),
        "nothing listens any more"
    );
    assert!(
        !dir.path().join("shutdown.db-wal").exists(),
        "closing the store checkpointed and removed the WAL"
    );
    assert!(db.exists());
}
