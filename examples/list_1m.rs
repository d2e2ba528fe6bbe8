//! The filtered task list on a store of 1,000,000 tasks (issue #16).
//!
//! ```text
//! cargo run --release --example list_1m -- sqlite [TASKS] [RUNS]
//! scripts/with-postgres cargo run --release --example list_1m -- pg [TASKS] [RUNS]
//! ```
//!
//! Fills a fresh store (a temp SQLite file, or a fresh database on the Postgres server that
//! `TASKFLOW_TEST_PG_URL` names, dropped at the end) with `TASKS` tasks (default 1,000,000),
//! bulk-inserted as `examples/support/bulk.rs` describes (real-looking rows, no audit rows):
//! 1,000 of them in the project `needle`, spread over the whole id range; the rest in 200 other
//! projects or none; 55 % completed, 25 % pending, 8 % in progress, 7 % in review, 5 % blocked.
//!
//! Then it times the page the server serves for `GET /api/tasks` (limit 50, with the total
//! count the server returns as `X-Total-Count`) for several filters, `RUNS` times each
//! (default 200, after 10 untimed), one request at a time, in two ways: through
//! `TaskFlow::list_tasks` (store and core only), and over HTTP on loopback through the real
//! routes (`taskflow_poem::app_with`, RS256 bearer verified against a JWKS, JSON out). It prints
//! p50, p99 and max per filter. Figures go in notes, never in assertions. `KEEP=1` keeps the
//! SQLite file or the Postgres database (to look at query plans).

#[path = "support/bulk.rs"]
mod bulk;

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use taskflow_auth::test_support::{JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, Verifier};
use taskflow_core::TaskFlow;
use taskflow_core::model::{Identity, Paging, TaskFilter, TaskStatus};
use taskflow_store_pg::PgStore;
use taskflow_store_pg::test_support::TestDb;
use taskflow_store_sqlite::SqliteStore;

type BoxError = Box<dyn std::error::Error>;

const USAGE: &str =
    "usage: list_1m sqlite|pg [TASKS] [RUNS]   (pg: run under scripts/with-postgres)";
const WARMUP: usize = 10;
const NEEDLE: &str = "needle";
const PROJECTS: u64 = 200;

/// One filter to time: a label, the filter, and the query string the server would get.
struct Case {
    label: &'static str,
    filter: TaskFilter,
    query: &'static str,
}

fn cases() -> Result<Vec<Case>, BoxError> {
    let page = Paging::new(Some(50), None)?;
    let base = TaskFilter {
        paging: page,
        ..TaskFilter::default()
    };
    Ok(vec![
        Case {
            label: "project (1k matches)",
            filter: TaskFilter {
                project: Some(NEEDLE.into()),
                ..base.clone()
            },
            query: "project=needle&limit=50",
        },
        Case {
            label: "project + status=pending",
            filter: TaskFilter {
                project: Some(NEEDLE.into()),
                status: Some(TaskStatus::Pending),
                ..base.clone()
            },
            query: "project=needle&status=pending&limit=50",
        },
        Case {
            label: "status=pending only",
            filter: TaskFilter {
                status: Some(TaskStatus::Pending),
                ..base.clone()
            },
            query: "status=pending&limit=50",
        },
        Case {
            label: "no filter",
            filter: base.clone(),
            query: "limit=50",
        },
        Case {
            label: "project, last page",
            filter: TaskFilter {
                project: Some(NEEDLE.into()),
                paging: Paging::new(Some(50), Some(950))?,
                ..base
            },
            query: "project=needle&limit=50&offset=950",
        },
    ])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> Result<usize, BoxError> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().map_err(|_| USAGE.into()))
    };
    let (tasks, runs) = (number(1, 1_000_000)?, number(2, 200)?.max(1));
    let dir = tempfile::tempdir()?;
    let mut pg_db = None;
    let loader = match args.first().map(String::as_str) {
        Some("sqlite") => {
            let store = SqliteStore::open(dir.path().join("list_1m.db")).await?;
            bulk::Loader::Sqlite(Arc::new(store))
        }
        Some("pg") => {
            let db = TestDb::create()
                .await
                .ok_or("Postgres needs TASKFLOW_TEST_PG_URL: run under scripts/with-postgres")?;
            let store =
                PgStore::connect_with(db.options.clone(), PgStore::default_pool_options()).await?;
            pg_db = Some(db);
            bulk::Loader::Pg(Arc::new(store))
        }
        _ => return Err(USAGE.into()),
    };

    let needle_every = (tasks / 1000).max(1);
    let needles = (0..tasks)
        .filter(|i| i % needle_every == needle_every / 2)
        .count();
    println!(
        "list_1m: {tasks} tasks on {} ({needles} in project '{NEEDLE}'), {runs} runs per case",
        loader.name(),
    );
    let started = Instant::now();
    loader
        .insert(tasks, move |i| {
            bulk::mixed_task(i, NEEDLE, needle_every, PROJECTS)
        })
        .await?;
    let loaded = started.elapsed();
    loader.settle().await?;
    println!(
        "loaded in {:.1} s ({:.0} tasks/s), settled in {:.1} s; {}",
        loaded.as_secs_f64(),
        tasks as f64 / loaded.as_secs_f64(),
        (started.elapsed() - loaded).as_secs_f64(),
        size_note(&loader).await
    );

    let flow = TaskFlow::new(loader.store());
    let cases = cases()?;
    let who = Identity::user("bench-reader");
    println!();
    println!("through TaskFlow::list_tasks (store + core), one call at a time:");
    header();
    for case in &cases {
        let (flow, who, filter) = (&flow, &who, &case.filter);
        let (times, (total, items)) = time_runs(runs, move || async move {
            let page = flow.list_tasks(who, filter).await?;
            Ok((page.total, page.items.len()))
        })
        .await?;
        row(case.label, total, items, &times);
    }

    let http = HttpTarget::start(flow.clone()).await?;
    println!();
    println!(
        "over HTTP on loopback (GET /api/tasks?..., RS256 bearer, JSON), one request at a time:"
    );
    header();
    for case in &cases {
        let url = format!("{}/api/tasks?{}", http.base, case.query);
        let (http, url) = (&http, &url);
        let (times, (total, items)) = time_runs(runs, move || async move {
            let resp = http.client.get(url).bearer_auth(&http.token).send().await?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(format!("GET {url}: {}", resp.status()).into());
            }
            let total: u64 = resp
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or("no X-Total-Count")?;
            let items = resp.json::<Vec<serde_json::Value>>().await?.len();
            Ok((total, items))
        })
        .await?;
        row(case.label, total, items, &times);
    }

    loader.store().close().await?;
    if std::env::var("KEEP").as_deref() == Ok("1") {
        match (&loader, pg_db) {
            (bulk::Loader::Sqlite(store), _) => {
                println!("\nkept {}", store.path().display());
                let _ = dir.keep();
            }
            (_, Some(db)) => {
                println!("\nkept database {}", db.name);
                // Its drop would drop the database.
                std::mem::forget(db);
            }
            (_, None) => {}
        }
    }
    Ok(())
}

/// Runs `call` `WARMUP` times untimed, then `runs` times timed; returns the sorted times and
/// what the last call answered (the total and the page size).
async fn time_runs<F, Fut>(
    runs: usize,
    mut call: F,
) -> Result<(Vec<Duration>, (u64, usize)), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(u64, usize), BoxError>>,
{
    for _ in 0..WARMUP {
        call().await?;
    }
    let mut times = Vec::with_capacity(runs);
    let mut last = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        last = call().await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times, last))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn header() {
    println!(
        "  {:<26} {:>9} {:>5} {:>11} {:>11} {:>11}",
        "filter", "total", "page", "p50", "p99", "max"
    );
}

fn row(label: &str, total: u64, items: usize, sorted: &[Duration]) {
    println!(
        "  {:<26} {:>9} {:>5} {:>11} {:>11} {:>11}",
        label,
        total,
        items,
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 99.0)),
        ms(sorted[sorted.len() - 1]),
    );
}

/// How big the loaded data is on disk.
async fn size_note(loader: &bulk::Loader) -> String {
    match loader {
        bulk::Loader::Sqlite(store) => {
            let bytes = std::fs::metadata(store.path()).map_or(0, |m| m.len());
            format!("database file {} MiB", bytes / (1 << 20))
        }
        bulk::Loader::Pg(store) => {
            let size: Result<i64, _> = sqlx::query_scalar("SELECT pg_total_relation_size('tasks')")
                .fetch_one(store.pool())
                .await;
            size.map_or_else(
                |e| format!("size unknown ({e})"),
                |b| format!("tasks table with indexes {} MiB", b / (1 << 20)),
            )
        }
    }
}

/// The real routes on a loopback port, with an RS256 key served as a JWKS and a token for it.
struct HttpTarget {
    base: String,
    token: String,
    client: reqwest::Client,
    _jwks: JwksServer,
    _server: tokio::task::JoinHandle<()>,
}

impl HttpTarget {
    async fn start(flow: TaskFlow) -> Result<Self, BoxError> {
        let key = TestKey::generate(Algorithm::RS256, "bench-rs256");
        let jwks = JwksServer::start(jwks_of([&key])).await;
        let verifier: Arc<dyn Verifier> = Arc::new(jwks.verifier_builder().build()?);
        let token = key.mint(
            &jwks
                .claims("bench-reader")
                .expires_in(Duration::from_secs(3600)),
        );
        let app = taskflow_poem::app_with(flow, verifier, &taskflow_poem::AppOptions::default());
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or("the listener has no socket address")?;
        let server = tokio::spawn(async move {
            if let Err(e) = poem::Server::new_with_acceptor(acceptor).run(app).await {
                eprintln!("list_1m: HTTP server failed: {e}");
            }
        });
        Ok(HttpTarget {
            base: format!("http://{addr}"),
            token,
            client: reqwest::Client::new(),
            _jwks: jwks,
            _server: server,
        })
    }
}
