//! What a call through `TaskFlow` over a `SqliteStore` file costs, end to end (validation,
//! lifecycle, compare-and-set, audit row, WAL commit). Run with `cargo bench -p
//! taskflow-store-sqlite`; figures go in the closing notes, never in assertions.
//!
//! The seed's Python service is the yardstick: its requests take milliseconds.
//!
//! Figures from one `--quick` run on the 2-core dev machine, idle (2026-11-21):
//! `create_task` 163 µs, `get_task` 31 µs, `create_start_complete` 844 µs,
//! `list_tasks_project_page_of_50` 104 µs. `get_task_64_concurrent` read 4.9 ms then, but that
//! version awaited each get before spawning the next; with the 64 really in flight together it
//! takes 1.1 ms (58 k gets/s, 2026-12-02).
//!
//! `claim_next_32_concurrent` (256 ready tasks per iteration, 32 claimers, only the claiming
//! timed), `--quick`, 2026-12-02, on the 2-core machine while other builds ran on it (not
//! idle): 81 ms per 256 claims (3.15 k claims/s, ~320 µs a claim) in one run, 138 ms (1.86 k
//! claims/s) in another at load average 5.6. Claims are serialized on SQLite's write lock, one
//! commit each, so more claimers do not make it faster.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskflow_core::TaskFlow;
use taskflow_core::model::{Identity, NewTask, TaskFilter, TaskStatus};
use taskflow_store_sqlite::SqliteStore;

fn store_ops(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flow = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("bench.db"))
            .await
            .unwrap();
        TaskFlow::new(Arc::new(store))
    });
    let who = Identity::user("bench");
    let seeded: Vec<i64> = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..1000 {
            let new = NewTask {
                project_slug: Some(format!("p{}", i % 10)),
                ..NewTask::titled(format!("seed {i}"))
            };
            ids.push(flow.create_task(&who, new).await.unwrap().id);
        }
        ids
    });

    let mut group = c.benchmark_group("sqlite_file");
    group.throughput(Throughput::Elements(1));
    group.bench_function("create_task", |b| {
        b.to_async(&rt)
            .iter(|| flow.create_task(&who, NewTask::titled("bench")));
    });
    let mut n = 0usize;
    group.bench_function("get_task", |b| {
        b.to_async(&rt).iter(|| {
            n = (n + 1) % seeded.len();
            flow.get_task(&who, seeded[n])
        });
    });
    group.bench_function("create_start_complete", |b| {
        b.to_async(&rt).iter(|| async {
            let t = flow
                .create_task(&who, NewTask::titled("cycle"))
                .await
                .unwrap();
            flow.start(&who, t.id, None).await.unwrap();
            let done = flow.complete(&who, t.id, None).await.unwrap();
            assert_eq!(done.status, TaskStatus::Completed);
        });
    });
    group.bench_function("list_tasks_project_page_of_50", |b| {
        let filter = TaskFilter {
            project: Some("p3".into()),
            ..TaskFilter::default()
        };
        b.to_async(&rt).iter(|| flow.list_tasks(&who, &filter));
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("get_task_64_concurrent", |b| {
        b.to_async(&rt).iter(|| async {
            // Spawn all 64 before awaiting any (a lazy `map` would spawn each only when the
            // previous one had finished, measuring sequential gets).
            let gets: Vec<_> = (0..64)
                .map(|i| {
                    let flow = flow.clone();
                    let who = who.clone();
                    let id = seeded[i * 7 % seeded.len()];
                    tokio::spawn(async move { flow.get_task(&who, id).await.unwrap() })
                })
                .collect();
            for g in gets {
                g.await.unwrap();
            }
        });
    });
    group.finish();
}

/// Tasks seeded per iteration of `claim_next_32_concurrent`.
const CLAIM_TASKS: usize = 256;
/// Concurrent claimers.
const CLAIMERS: usize = 32;

/// Claim-next throughput: each iteration seeds `CLAIM_TASKS` ready tasks (not timed), then
/// `CLAIMERS` tasks each loop `claim_next` until it answers `None` (timed). Every claim is one
/// `BEGIN IMMEDIATE` transaction (pick the head of the queue, start it, write its `started`
/// row) on the store's single writer connection, so the figure is the serialized rate.
fn claim_next(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flow = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("claim.db"))
            .await
            .unwrap();
        TaskFlow::new(Arc::new(store))
    });
    let admin = Identity::admin("bench");

    let mut group = c.benchmark_group("sqlite_file");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CLAIM_TASKS as u64));
    group.bench_function("claim_next_32_concurrent", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (flow, admin) = (flow.clone(), admin.clone());
            async move {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    for i in 0..CLAIM_TASKS {
                        flow.create_task(&admin, NewTask::titled(format!("claim {i}")))
                            .await
                            .unwrap();
                    }
                    let start = Instant::now();
                    let claimers: Vec<_> = (0..CLAIMERS)
                        .map(|i| {
                            let flow = flow.clone();
                            tokio::spawn(async move {
                                let who = Identity::user(format!("agent-{i}"));
                                let mut claimed = 0usize;
                                while flow.claim_next(&who, None, None).await.unwrap().is_some() {
                                    claimed += 1;
                                }
                                claimed
                            })
                        })
                        .collect();
                    let mut claimed = 0;
                    for claimer in claimers {
                        claimed += claimer.await.unwrap();
                    }
                    elapsed += start.elapsed();
                    assert_eq!(claimed, CLAIM_TASKS, "every seeded task claimed once");
                }
                elapsed
            }
        });
    });
    group.finish();
}

criterion_group!(benches, store_ops, claim_next);
criterion_main!(benches);
