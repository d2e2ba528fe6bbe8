//! Seeds a taskflow database for `scripts/bench-http`.
//!
//! ```text
//! bench_seed DATABASE_URL api N            N tasks created through TaskFlow (audit rows and all)
//! bench_seed DATABASE_URL ready N PROJECT  N pending, unassigned tasks in PROJECT, bulk-inserted
//! ```
//!
//! `api` is the real write path, one transaction per task; on a fresh database the first task
//! gets id 1. `ready` writes the `tasks` table directly (see `examples/support/bulk.rs`: no
//! audit rows), fast enough for the hundreds of thousands of tasks a claim-next run consumes.
//! It can run while a server uses the same database.

#[path = "support/bulk.rs"]
mod bulk;

use std::time::Instant;

use taskflow::{Identity, NewTask, Priority, TaskFlow};

const USAGE: &str =
    "usage: bench_seed DATABASE_URL api N | bench_seed DATABASE_URL ready N PROJECT";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, mode, count, rest @ ..] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let count: usize = count.parse().map_err(|_| USAGE)?;
    let loader = bulk::Loader::open(url).await?;
    let started = Instant::now();
    match (mode.as_str(), rest) {
        ("api", []) => {
            let flow = TaskFlow::new(loader.store());
            let who = Identity::admin("bench-seed");
            for i in 0..count {
                let priority = [Priority::Low, Priority::Medium, Priority::High][i % 3];
                let task = NewTask {
                    description: Some(format!("Seeded for the list scenario, number {i}.")),
                    priority: Some(priority),
                    project_slug: Some("bench-list".to_owned()),
                    ..NewTask::titled(format!("Seed task {i}"))
                };
                flow.create_task(&who, task).await?;
            }
        }
        ("ready", [project]) => {
            let project = project.clone();
            loader
                .insert(count, move |i| bulk::ready_task(i, &project))
                .await?;
            loader.settle().await?;
        }
        _ => return Err(USAGE.into()),
    }
    loader.store().close().await?;
    println!(
        "seeded {count} tasks ({mode}) on {} in {:.1} s",
        loader.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
