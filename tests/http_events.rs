//! `GET /api/events` over real HTTP on SQLite and Postgres: the stream's shape, replay then
//! live, filters, resume after a disconnect while writes go on (nothing lost, nothing twice),
//! keep-alive comments, refused input and tokens, and two server processes on one Postgres.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use common::{Backend, TestServer, error_of, id_of, json_of};
use taskflow_poem::AppOptions;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// How long to wait for a frame that must come.
const FRAME_WAIT: Duration = Duration::from_secs(10);

/// One SSE frame: an event, or a comment line.
#[derive(Debug)]
enum Frame {
    Event { id: i64, event: String, data: Value },
    Comment,
}

/// An open event stream, read frame by frame.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    /// Opens `/api/events{query}` as `sub`, resuming after `last_id` if given.
    async fn open(s: &TestServer, query: &str, last_id: Option<i64>) -> Stream {
        let mut req = s.as_user(Method::GET, &format!("/api/events{query}"), "watcher");
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        let kind = resp.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Stream {
            resp,
            buf: String::new(),
        }
    }

    /// The next frame, failing the test if none comes within [`FRAME_WAIT`].
    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                return parse(&raw);
            }
            let chunk = tokio::time::timeout(FRAME_WAIT, self.resp.chunk())
                .await
                .expect("a frame within the wait")
                .expect("the stream stays readable")
                .expect("the stream stays open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event, skipping comments: (id, event type, data).
    async fn event(&mut self) -> (i64, String, Value) {
        loop {
            if let Frame::Event { id, event, data } = self.frame().await {
                return (id, event, data);
            }
        }
    }

    /// Whether an event arrives within `wait` (comments do not count).
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.event()).await.is_err()
    }
}

fn parse(raw: &str) -> Frame {
    let (mut id, mut event, mut data) = (None, None, String::new());
    let mut comment = false;
    for line in raw.lines() {
        if line.starts_with(':') {
            comment = true;
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("a numeric id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    match (id, event) {
        (Some(id), Some(event)) => Frame::Event {
            id,
            event,
            data: serde_json::from_str(&data).expect("data is JSON"),
        },
        _ if comment => Frame::Comment,
        _ => panic!("a frame with neither an event nor a comment: {raw:?}"),
    }
}

async fn create(s: &TestServer, body: Value) -> Value {
    let resp = s
        .as_user(Method::POST, "/api/tasks", "lead")
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(resp, 201).await
}

/// Every audit id on the server, oldest first.
async fn audit_ids(s: &TestServer) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let path = format!("/api/audit?limit=100&offset={}", ids.len());
        let resp = s.as_user(Method::GET, &path, "lead").send().await.unwrap();
        let page = json_of(resp, 200).await;
        let rows = page.as_array().unwrap();
        if rows.is_empty() {
            return ids;
        }
        ids.extend(rows.iter().map(|r| r["id"].as_i64().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_need_a_token_and_valid_resume_points() {
    let s = TestServer::start().await;
    let bare = s.http.get(s.url("/api/events")).send().await.unwrap();
    assert_eq!(error_of(bare, 401).await, "Not authenticated");

    let negative = s
        .as_user(Method::GET, "/api/events?after=-1", "watcher")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(negative, 422).await,
        "after: must be an audit id (0 or more)"
    );
    let junk = s
        .as_user(Method::GET, "/api/events", "watcher")
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    let status = junk.status().as_u16();
    let message = error_of(junk, status).await;
    assert!(
        (400..500).contains(&status) && message.contains("Last-Event-ID"),
        "{status} {message}"
    );
}

/// The stream replays what is there, then sends new rows live; each event carries its audit id
/// as `id:`, its action as `event:`, and `{audit, task}` as data, the task as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_then_live_with_the_task_as_it_is_now() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let a = create(&s, json!({"title": "a", "project_slug": "web"})).await;
        let mut all = Stream::open(&s, "", None).await;
        let (id, event, data) = all.event().await;
        assert_eq!(event, "created");
        assert_eq!(data["audit"]["id"], id);
        assert_eq!(data["audit"]["action"], "created");
        assert_eq!(data["audit"]["actor_id"], "lead");
        assert_eq!(data["task"], a, "{backend:?}: the task as the API shows it");

        // Live rows: a start, then a delete (the task is then null).
        let a_id = id_of(&a);
        let started = s
            .as_user(Method::POST, &format!("/api/tasks/{a_id}/start"), "dev")
            .send()
            .await
            .unwrap();
        let started = json_of(started, 200).await;
        let (start_id, event, data) = all.event().await;
        assert!(start_id > id);
        assert_eq!(event, "started");
        assert_eq!(data["audit"]["actor_id"], "dev");
        assert_eq!(data["task"], started);
        let deleted = s
            .as_admin(Method::DELETE, &format!("/api/tasks/{a_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let (_, event, data) = all.event().await;
        assert_eq!(event, "deleted");
        assert_eq!(data["audit"]["task_id"], a_id);
        assert_eq!(data["task"], Value::Null, "a deleted task is null");
    }
}

/// `project` and `task_id` filter replayed and live rows alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_by_project_and_task() {
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let web = id_of(&create(&s, json!({"title": "w", "project_slug": "web"})).await);
        create(&s, json!({"title": "x", "project_slug": "api"})).await;
        let mut in_web = Stream::open(&s, "?project=web", None).await;
        let mut of_web = Stream::open(&s, &format!("?task_id={web}"), None).await;
        create(&s, json!({"title": "y", "project_slug": "api"})).await;
        let started = s
            .as_user(Method::POST, &format!("/api/tasks/{web}/start"), "dev")
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 200);
        let web2 = id_of(&create(&s, json!({"title": "z", "project_slug": "web"})).await);

        let mut seen = Vec::new();
        for _ in 0..3 {
            let (_, event, data) = in_web.event().await;
            seen.push((data["audit"]["task_id"].as_i64().unwrap(), event));
        }
        assert_eq!(
            seen,
            [
                (web, "created".to_owned()),
                (web, "started".to_owned()),
                (web2, "created".to_owned())
            ],
            "{backend:?}"
        );
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (_, event, data) = of_web.event().await;
            seen.push((data["audit"]["task_id"].as_i64().unwrap(), event));
        }
        assert_eq!(
            seen,
            [(web, "created".to_owned()), (web, "started".to_owned())]
        );
        assert!(
            of_web.quiet_for(Duration::from_millis(500)).await,
            "no other task's rows"
        );
    }
}

/// Four writers keep writing while a reader reads a few events, disconnects, and resumes with
/// `Last-Event-ID` (and once with `?after=`), again and again: it ends with every audit row
/// exactly once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_disconnects_loses_and_repeats_nothing() {
    const WRITERS: usize = 4;
    const TASKS_EACH: usize = 15;
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let s = Arc::new(s);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..TASKS_EACH {
                        let t = create(&s, json!({"title": format!("w{w}-{i}")})).await;
                        let path = format!("/api/tasks/{}/start", id_of(&t));
                        let resp = s
                            .as_user(Method::POST, &path, &format!("writer-{w}"))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 200);
                    }
                })
            })
            .collect();

        let total = WRITERS * TASKS_EACH * 2;
        let mut received: Vec<i64> = Vec::new();
        let mut reconnects = 0;
        while received.len() < total {
            let last = received.last().copied();
            // Every third connection resumes with `?after=`, the others with the header.
            let mut stream = if reconnects % 3 == 2 {
                let after = last.unwrap_or(0);
                Stream::open(&s, &format!("?after={after}"), None).await
            } else {
                Stream::open(&s, "", last).await
            };
            for _ in 0..7 {
                if received.len() == total {
                    break;
                }
                let (id, _, _) = stream.event().await;
                received.push(id);
            }
            drop(stream);
            reconnects += 1;
        }
        for w in writers {
            w.await.unwrap();
        }
        let unique: HashSet<_> = received.iter().collect();
        assert_eq!(unique.len(), received.len(), "{backend:?}: no event twice");
        assert_eq!(
            received,
            audit_ids(&s).await,
            "{backend:?}: every row, in order, over {reconnects} connections"
        );
        assert!(reconnects >= total / 7);
    }
}

/// An idle stream sends a comment line every keep-alive interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_send_keep_alive_comments() {
    let dir = tempfile::tempdir().unwrap();
    let store = taskflow::SqliteStore::open(dir.path().join("events.db"))
        .await
        .unwrap();
    let options = AppOptions {
        events_keep_alive: Duration::from_millis(300),
        ..AppOptions::default()
    };
    let s = TestServer::start_with_options(Arc::new(store), Box::new(dir), options).await;
    let mut stream = Stream::open(&s, "", None).await;
    for _ in 0..2 {
        assert!(
            matches!(stream.frame().await, Frame::Comment),
            "an idle stream sends comments"
        );
    }
}

/// Two server processes on one Postgres database, each with its own pool and its own feed: a
/// change made through one reaches a subscriber of the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_through_another_process_arrives_within_a_second() {
    let Some(db) = taskflow_store_pg::test_support::TestDb::create().await else {
        return;
    };
    let (one, two) = (db.store().await, db.store().await);
    let writer = TestServer::start_with(Arc::new(one), Box::new(())).await;
    let watcher = TestServer::start_with(Arc::new(two), Box::new(db)).await;
    let mut stream = Stream::open(&watcher, "", None).await;
    let mut delays = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        let task = create(&writer, json!({"title": format!("far {i}")})).await;
        let (_, event, data) = stream.event().await;
        delays.push(sent.elapsed());
        assert_eq!(event, "created");
        assert_eq!(data["task"], task);
    }
    eprintln!("cross-process event delays: {delays:?}");
    for delay in &delays {
        assert!(
            *delay < Duration::from_secs(1),
            "a change through another process arrived after {delay:?}"
        );
    }
}
