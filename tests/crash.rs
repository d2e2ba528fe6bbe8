//! Crash durability (SPEC §11): the server process is killed with SIGKILL while several clients
//! write to it, then restarted on the same database. Every write that was answered 2xx must be
//! there with its audit row, and no audit row may exist without its change: a task's version is
//! the number of its audit rows (`created` is version 1, each change adds one), and a task with
//! audit rows exists unless one of them is `deleted`. On SQLite and on Postgres, several kills
//! per run.
//!
//! The server is the ready-made one, `examples/server.rs`, built by this test with
//! `cargo build --workspace --example server` in the test's own profile (debug in CI; SPEC §11 speaks of a
//! release server, and the outcome does not depend on the profile). Set
//! `TASKFLOW_CRASH_SERVER_BIN` to run another build of it instead, e.g. a release one.
//! `TASKFLOW_CRASH_ROUNDS` sets the number of kills per backend (default 3).
//!
//! Auth goes through a loopback JWKS (`AUTH_SERVER_URL`), so that tokens outlive restarts.

#![cfg(unix)]
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskflow_auth::Algorithm;
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_store_pg::test_support::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Concurrent writers.
const CLIENTS: usize = 6;

/// How many writes the server answers 2xx in a round before it is killed, by round (cycled).
/// The kill comes after a number of writes, not after a time, so that a slow or busy machine
/// changes how long a round takes, never how much it checks.
const LOAD: [usize; 3] = [150, 110, 190];

/// How long a round may take to reach its writes before the test gives up.
const ROUND_DEADLINE: Duration = Duration::from_secs(180);

fn rounds() -> usize {
    std::env::var("TASKFLOW_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The server binary: `TASKFLOW_CRASH_SERVER_BIN`, or `examples/server.rs` built now.
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Ok(path) = std::env::var("TASKFLOW_CRASH_SERVER_BIN") {
                return PathBuf::from(path);
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
            let mut cmd = std::process::Command::new(cargo);
            // `--workspace`: the features `cargo test --workspace` (scripts/test, CI) resolved,
            // so the example it has just built is reused rather than built again.
            cmd.args(["build", "--workspace", "--example", "server"])
                .args(["--message-format=json", "--manifest-path", manifest]);
            if !cfg!(debug_assertions) {
                cmd.arg("--release");
            }
            let out = cmd
                .stderr(Stdio::inherit())
                .output()
                .expect("run cargo build");
            assert!(out.status.success(), "cargo build --example server failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "server")
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .expect("cargo reported the server example's executable")
        })
        .clone()
}

/// A running server process.
struct Process {
    child: Child,
    base: String,
}

async fn spawn_server(database_url: &str, auth_url: &str) -> Process {
    let mut child = Command::new(server_binary())
        .env("DATABASE_URL", database_url)
        .env("AUTH_SERVER_URL", auth_url)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", "error")
        .env_remove("JWKS_URL")
        .env_remove("JWT_ISSUER")
        .env_remove("JWT_AUDIENCE")
        .env_remove("METRICS")
        .env_remove("METRICS_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the banner") {
            if let Some(url) = line.split(" listening on ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server started within 60 s");
    // Keep draining stdout so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process { child, base }
}

/// A write answered 2xx.
#[derive(Debug, Clone)]
struct Ack {
    task: i64,
    action: &'static str,
    /// The task's version in the answer (none for `deleted`, or when the body was cut).
    version: Option<i64>,
}

#[derive(Default)]
struct Tally {
    acks: Vec<Ack>,
    /// Writes sent whose answer never came (in flight at the kill).
    unknown: usize,
    /// Creates answered 201 whose body (and so the id) was cut short by the kill.
    unidentified: usize,
}

/// One writer: creates tasks and moves each through the lifecycle (start, progress, review,
/// complete; every fourth is deleted after it starts) until `stop` or the server dies.
async fn writer(
    client: usize,
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let http = reqwest::Client::new();
    let mut n = 0_usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let resp = http
            .post(format!("{base}/api/tasks"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("writer {client} task {n}")}))
            .send()
            .await;
        let Some((task, version)) = settle(resp, &tally).await else {
            return;
        };
        let Some(task) = task.as_ref().and_then(|t| t["id"].as_i64()) else {
            // Answered 201 but the body was cut by the kill: the id is unknown, so this one
            // write cannot be looked up (the audit checks still cover it).
            tally.lock().unwrap().unidentified += 1;
            return;
        };
        record(&tally, task, "created", version);
        let steps: &[(&str, &str, &'static str)] = if n.is_multiple_of(4) {
            &[("POST", "start", "started"), ("DELETE", "", "deleted")]
        } else {
            &[
                ("POST", "start", "started"),
                ("POST", "progress?percent=50", "progressed"),
                ("POST", "review", "review_requested"),
                ("POST", "complete", "completed"),
            ]
        };
        for &(method, path, action) in steps {
            let url = if path.is_empty() {
                format!("{base}/api/tasks/{task}")
            } else {
                format!("{base}/api/tasks/{task}/{path}")
            };
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            let resp = http.request(method, url).bearer_auth(&token).send().await;
            let Some((_, version)) = settle(resp, &tally).await else {
                return;
            };
            record(&tally, task, action, version);
        }
    }
}

/// The answer's JSON body and version for a 2xx; `None` (and one unknown write) when the
/// server died first. Any other status fails the test: the writers never conflict.
async fn settle(
    resp: reqwest::Result<reqwest::Response>,
    tally: &Mutex<Tally>,
) -> Option<(Option<Value>, Option<i64>)> {
    let resp = match resp {
        Ok(resp) => resp,
        Err(_) => {
            tally.lock().unwrap().unknown += 1;
            return None;
        }
    };
    let status = resp.status();
    assert!(status.is_success(), "unexpected {status}");
    // Answered 2xx: the write is acknowledged even if the body is cut short by the kill.
    let body = resp.bytes().await.ok();
    let json = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let version = json.as_ref().and_then(|t| t["version"].as_i64());
    Some((json, version))
}

fn record(tally: &Mutex<Tally>, task: i64, action: &'static str, version: Option<i64>) {
    tally.lock().unwrap().acks.push(Ack {
        task,
        action,
        version,
    });
}

/// GET `path` (paged JSON lists: every page).
async fn all_pages(http: &reqwest::Client, base: &str, path: &str, token: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    loop {
        let url = format!("{base}{path}?limit=100&offset={}", rows.len());
        let resp = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let page: Vec<Value> = resp.json().await.unwrap();
        let done = page.len() < 100;
        rows.extend(page);
        if done {
            return rows;
        }
    }
}

/// Checks the restarted server's database against every acknowledged write.
async fn verify(base: &str, token: &str, acks: &[Ack]) -> (usize, usize) {
    let http = reqwest::Client::new();
    let audit = all_pages(&http, base, "/api/audit", token).await;
    let mut rows: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in &audit {
        let task = row["task_id"].as_i64().expect("task_id");
        let action = row["action"].as_str().expect("action").to_owned();
        rows.entry(task).or_default().push(action);
    }
    // Every acknowledged write has its audit row.
    for ack in acks {
        let actions = rows.get(&ack.task).map(Vec::as_slice).unwrap_or_default();
        assert!(
            actions.iter().any(|a| a == ack.action),
            "acknowledged {ack:?} has no audit row (rows: {actions:?})"
        );
    }
    // Every task the audit speaks of: present at the version its rows say, or deleted.
    let mut present = 0;
    let tasks: Vec<i64> = rows.keys().copied().collect();
    for chunk in tasks.chunks(16) {
        let fetches = chunk.iter().map(|&id| {
            let http = http.clone();
            async move {
                let resp = http
                    .get(format!("{base}/api/tasks/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                (id, status, body)
            }
        });
        for (id, status, body) in futures::future::join_all(fetches).await {
            let actions = &rows[&id];
            assert_eq!(actions[0], "created", "task {id}'s first row: {actions:?}");
            if actions.iter().any(|a| a == "deleted") {
                assert_eq!(status, 404, "task {id} was deleted: {body}");
                assert_eq!(actions.last().map(String::as_str), Some("deleted"));
            } else {
                assert_eq!(status, 200, "task {id} has audit rows {actions:?}: {body}");
                let version = body["version"].as_i64().expect("a version");
                assert_eq!(
                    version,
                    actions.len() as i64,
                    "task {id}: version {version} but audit rows {actions:?}"
                );
                present += 1;
            }
        }
    }
    // Acknowledged versions are there (or later ones).
    let acked: BTreeSet<i64> = acks.iter().map(|a| a.task).collect();
    for ack in acks {
        if let Some(v) = ack.version {
            let actions = &rows[&ack.task];
            if !actions.iter().any(|a| a == "deleted") {
                assert!(
                    actions.len() as i64 >= v,
                    "{ack:?} but the task has {} rows",
                    actions.len()
                );
            }
        }
    }
    assert!(acked.iter().all(|t| rows.contains_key(t)));
    (audit.len(), present)
}

async fn crash_and_restart(backend: &str, database_url: &str) {
    let started = Instant::now();
    let keys = TestKeys::generate();
    let jwks = JwksServer::start(keys.jwks()).await;
    let token = keys.mint(Algorithm::EdDSA, &jwks.claims("crash-admin").role("admin"));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut server = spawn_server(database_url, &jwks.base_url()).await;
    let rounds = rounds();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(writer(
                    c,
                    server.base.clone(),
                    token.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&tally),
                ))
            })
            .collect();
        let target = tally.lock().unwrap().acks.len() + LOAD[round % LOAD.len()];
        let round_started = Instant::now();
        loop {
            let acked = tally.lock().unwrap().acks.len();
            if acked >= target {
                break;
            }
            assert!(
                round_started.elapsed() < ROUND_DEADLINE,
                "the server answered only {acked} of {target} writes in {ROUND_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // SIGKILL mid-load: no shutdown, no checkpoint, no goodbye to the database.
        server.child.start_kill().expect("SIGKILL the server");
        let status = server.child.wait().await.expect("the server exits");
        assert!(!status.success(), "killed, not exited: {status:?}");
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.expect("a writer did not panic");
        }
        server = spawn_server(database_url, &jwks.base_url()).await;
        let acks = tally.lock().unwrap().acks.clone();
        let (rows, present) = verify(&server.base, &token, &acks).await;
        let unknown = tally.lock().unwrap().unknown;
        eprintln!(
            "crash[{backend}] kill {}/{rounds}: {} writes answered 2xx so far, {unknown} in \
             flight at the kills, {rows} audit rows, {present} tasks present; {:.1} s",
            round + 1,
            acks.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let tally = tally.lock().unwrap();
    assert!(
        tally.unknown > 0,
        "every kill should catch writes in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_loses_no_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    crash_and_restart("sqlite", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_loses_no_acknowledged_write_on_postgres() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut url = reqwest::Url::parse(
        &taskflow_store_pg::test_support::server_url().expect("the test server's URL"),
    )
    .expect("TASKFLOW_TEST_PG_URL is a URL");
    url.set_path(&format!("/{}", db.name));
    crash_and_restart("postgres", url.as_str()).await;
}
