//! Claim-next throughput on `PgStore`: 32 claimers at once, each looping on
//! `TaskFlow::claim_next`, drain a queue of ready tasks on a real PostgreSQL server (the one
//! `TASKFLOW_TEST_PG_URL` names, in a database of its own that is dropped afterwards).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-pg scripts/with-postgres \
//!     cargo bench -p taskflow-store-pg --bench claim -- --quick
//! ```
//!
//! Without `TASKFLOW_TEST_PG_URL` it says so loudly and measures nothing (under `CI=true` it
//! fails). Figures go in the closing notes, never in assertions.
//!
//! - `drain_256`: one iteration seeds 256 ready tasks (untimed), then times 32 claimers taking
//!   all of them, 8 each on average; throughput is in claims per second.
//! - `drain_256_behind_10k`: the same, with 10 000 less urgent ready tasks queued behind the
//!   256 for the whole run. Every claim orders the whole ready queue by urgency, so this shows
//!   what a deep queue costs each claim.
//!
//! Figures from one `--quick` run on the 2-core dev machine (PostgreSQL 15.18 from
//! `scripts/with-postgres` on the same machine, 2026-12-02): `drain_256` 386 ms
//! a batch, 664 claims/s (range 615..973); `drain_256_behind_10k` 1.45 s a batch, 176 claims/s.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use taskflow_core::TaskFlow;
use taskflow_core::model::{Identity, Priority, TaskStatus};
use taskflow_store_pg::PgStore;
use taskflow_store_pg::test_support::{TestDb, server_url};

/// Claimers in flight at once; the store's pool has as many connections.
const CLAIMERS: usize = 32;
/// Ready tasks one iteration drains.
const BATCH: usize = 256;

/// Inserts `n` ready tasks of `priority` straight into the table (no audit rows: the bench
/// measures claims, not creates).
async fn seed(store: &PgStore, n: usize, priority: Priority) {
    sqlx::query(
        "INSERT INTO tasks (title, status, priority, progress_percent, created_at, updated_at, \
                            version) \
         SELECT 'bench ' || g, $2, $3, 0, now(), now(), 1 FROM generate_series(1, $1) AS g",
    )
    .bind(i64::try_from(n).unwrap())
    .bind(TaskStatus::Pending.as_str())
    .bind(priority.as_str())
    .execute(store.pool())
    .await
    .expect("seed ready tasks");
    sqlx::query("ANALYZE tasks")
        .execute(store.pool())
        .await
        .expect("analyze");
}

/// 32 claimers take `BATCH` tasks between them; returns how long that took.
async fn drain(flow: &TaskFlow) -> Duration {
    let remaining = Arc::new(AtomicUsize::new(BATCH));
    let started = Instant::now();
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|i| {
            let (flow, remaining) = (flow.clone(), remaining.clone());
            tokio::spawn(async move {
                let who = Identity::user(format!("agent-{i}"));
                // Exactly BATCH claims in all, so none of them finds the queue empty.
                while remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let task = flow.claim_next(&who, None, Some(600)).await.unwrap();
                    assert!(task.is_some(), "a claim found the queue empty");
                }
            })
        })
        .collect();
    for claimer in claimers {
        claimer.await.unwrap();
    }
    started.elapsed()
}

fn claim_next(c: &mut Criterion) {
    if server_url().is_none() {
        eprintln!(
            "\n################################################################################\n\
             ## claim bench SKIPPED: TASKFLOW_TEST_PG_URL is not set, nothing was measured.\n\
             ## Run it via scripts/with-postgres.\n\
             ################################################################################\n"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::create()).expect("a test database");
    let store = rt.block_on(async {
        let pool = PgStore::default_pool_options().max_connections(CLAIMERS as u32);
        PgStore::connect_with(db.options.clone(), pool)
            .await
            .expect("connect")
    });
    let flow = TaskFlow::new(Arc::new(store.clone()));

    let mut group = c.benchmark_group("pg_claim_next_32_claimers");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("drain_256", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    seed(&store, BATCH, Priority::High).await;
                    timed += drain(&flow).await;
                }
                timed
            })
        });
    });
    rt.block_on(seed(&store, 10_000, Priority::Low));
    group.bench_function("drain_256_behind_10k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    seed(&store, BATCH, Priority::High).await;
                    timed += drain(&flow).await;
                }
                timed
            })
        });
    });
    group.finish();

    rt.block_on(async {
        store.pool().close().await;
        // Dropping the database needs a runtime worker (see `TestDb`'s `Drop`).
        tokio::spawn(async move { drop(db) }).await.unwrap();
    });
}

criterion_group!(benches, claim_next);
criterion_main!(benches);
