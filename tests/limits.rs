//! Slow and idle clients, over real TCP on loopback: connections whose request headers do not
//! arrive within the header-read timeout are closed while other connections are served; a
//! response that streams for longer than every timeout, and a request body that arrives slowly,
//! are not cut; connections over the cap wait in the backlog until a slot frees.
//!
//! The server is the one [`taskflow_poem::serve`] runs (`taskflow_poem::limits::server` with the
//! limits of a [`taskflow_poem::ServerConfig`] read from variables), around the real app plus two
//! test-only routes: `/test/slow` streams its body slowly, `/test/upload` counts a body.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Json;
use poem::{Body, EndpointExt, Route, handler};
use taskflow_auth::DevAuth;
use taskflow_core::TaskFlow;
use taskflow_poem::limits::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Chunks of `/test/slow`, and the pause before each.
const SLOW_CHUNKS: usize = 4;
const SLOW_GAP: Duration = Duration::from_millis(1300);

/// Streams `SLOW_CHUNKS` lines, `SLOW_GAP` apart (longer than the timeouts the tests set).
#[handler]
fn slow() -> Body {
    let chunks = futures::stream::iter(0..SLOW_CHUNKS).then(|i| async move {
        tokio::time::sleep(SLOW_GAP).await;
        Ok::<_, std::io::Error>(format!("chunk {i}\n"))
    });
    Body::from_bytes_stream(chunks)
}

/// The number of body bytes received.
#[handler]
async fn upload(body: Vec<u8>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"received": body.len()}))
}

struct Server {
    addr: std::net::SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

/// The limits `serve` would use with these variables set.
fn limits(vars: &[(&str, &str)]) -> Limits {
    let config = taskflow_poem::ServerConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    Limits::from(&config)
}

async fn start(limits: Limits) -> Server {
    let store = Arc::new(taskflow_core::MemoryStore::new());
    let dev = DevAuth::ed25519_ephemeral().unwrap();
    let app = taskflow_poem::app(TaskFlow::new(store), Arc::new(dev), &[]);
    let app = Route::new()
        .at("/test/slow", slow)
        .at("/test/upload", poem::post(upload))
        .nest("/", app)
        .boxed();
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let task = tokio::spawn(async move {
        taskflow_poem::limits::server(acceptor, &limits)
            .run(app)
            .await
            .unwrap();
    });
    Server { addr, _task: task }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Reads until the server closes the connection (EOF or reset) or `limit` passes; returns what
/// was read and when it closed (`None`: still open at `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0) | Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response whose body has `Content-Length` (enough for `/health`).
async fn read_response(stream: &mut TcpStream, limit: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response in time");
    String::from_utf8(got).unwrap()
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_while_others_are_served() {
    let server = start(limits(&[
        ("HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("IDLE_TIMEOUT_SECONDS", "30"),
    ]))
    .await;
    let opened = Instant::now();

    // Partial headers, then nothing.
    let mut partial = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        partial.push(s);
    }
    // Nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // A byte every 300 ms: never idle, never done.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        for b in b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (_, closed) = read_until_closed(&mut trickle, Duration::from_secs(1)).await;
        closed
    });
    // A kept-alive connection: one whole request, then half of the next.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(HEALTH).await.unwrap();
    let first = read_response(&mut kept, Duration::from_secs(5)).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    kept.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let next_request = Instant::now();

    // Meanwhile, normal requests on new connections keep working.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..10 {
        let resp = http.get(server.url("/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for s in &mut partial {
        let (got, closed) = read_until_closed(s, Duration::from_secs(4)).await;
        let closed = closed.expect("a half-open connection is closed");
        let after = closed - opened;
        assert!(
            after >= Duration::from_millis(900),
            "closed after {after:?}"
        );
        assert!(after < Duration::from_secs(4), "closed after {after:?}");
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 4"),
            "no 200: {got:?}"
        );
    }
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "a silent connection is closed");
    let closed = trickler
        .await
        .unwrap()
        .expect("a trickling connection is closed");
    let after = closed - opened;
    assert!(
        after < Duration::from_secs(4),
        "the trickle was cut after {after:?}"
    );
    let (_, closed) = read_until_closed(&mut kept, Duration::from_secs(4)).await;
    let after = closed.expect("a stalled next request is closed") - next_request;
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );

    // And the server still answers.
    let resp = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_outlives_the_timeouts() {
    // Every pause of the stream (1.3 s) is longer than both timeouts.
    let server = start(limits(&[
        ("HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("IDLE_TIMEOUT_SECONDS", "1"),
    ]))
    .await;
    let started = Instant::now();
    let resp = reqwest::get(server.url("/test/slow")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("the whole body");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines, ["chunk 0", "chunk 1", "chunk 2", "chunk 3"]);
    assert!(started.elapsed() >= SLOW_GAP * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_body_is_not_cut() {
    let server = start(limits(&[
        ("HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("IDLE_TIMEOUT_SECONDS", "3"),
    ]))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /test/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n")
        .await
        .unwrap();
    // 2.8 s of body, well past the header-read timeout, within the idle timeout per pause.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.write_all(b"0123456789").await.unwrap();
    }
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(r#"{"received":40}"#), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let server = start(limits(&[
        ("MAX_CONNECTIONS", "2"),
        ("HEADER_READ_TIMEOUT_SECONDS", "30"),
        ("IDLE_TIMEOUT_SECONDS", "30"),
    ]))
    .await;
    // Two connections hold both slots.
    let held_a = TcpStream::connect(server.addr).await.unwrap();
    let mut held_b = TcpStream::connect(server.addr).await.unwrap();
    held_b.write_all(HEALTH).await.unwrap();
    let resp = read_response(&mut held_b, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // A third connects (the kernel queues it) but is not served...
    let mut third = TcpStream::connect(server.addr)
        .await
        .expect("over the cap, a connection is queued, not refused");
    third.write_all(HEALTH).await.unwrap();
    let mut buf = [0_u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(800), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "not served while the cap is reached: {waited:?}"
    );

    // ...until a slot frees.
    drop(held_a);
    let resp = read_response(&mut third, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    drop(held_b);
}
