//! What idempotency keys cost: a retry storm against the same work without keys.
//!
//! `cargo run --release --example retry_storm` runs, on a fresh SQLite file (or the Postgres
//! database `DATABASE_URL` names), 32 concurrent clients that each create and then claim
//! tasks through `TaskFlow`, in two rounds:
//!
//! 1. **no keys**: every write sent once;
//! 2. **retry storm**: every write sent twice with the same `Idempotency-Key` (the second answer
//!    is the stored one, a replay), as an agent retrying after every answer it got would.
//!
//! It prints the writes that took effect per second in each round and the cost of the keys.
//! Figures go in closing notes, never in assertions.

use std::time::Instant;

use futures::future::join_all;
use taskflow::core::idempotency::{IdempotencyKey, Idempotent};
use taskflow::{Command, Identity, NewTask, Outcome, TaskFlow};

const CLIENTS: usize = 32;
const WRITES_PER_CLIENT: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("storm.db").display()));
    let store = taskflow::open(&url).await?;
    let flow = TaskFlow::new(store);
    println!(
        "{CLIENTS} clients x {WRITES_PER_CLIENT} writes (half creates, half claims) on {}",
        if url.starts_with("postgres") {
            "Postgres"
        } else {
            "SQLite"
        }
    );

    let plain = round(&flow, "plain", false).await?;
    let storm = round(&flow, "storm", true).await?;
    println!("no keys:              {plain:8.0} writes/s");
    println!(
        "every write twice:    {storm:8.0} writes/s (each counted once; the repeat is a replay)"
    );
    println!(
        "cost of the keys:     {:7.1} %",
        (1.0 - storm / plain) * 100.0
    );
    Ok(())
}

/// One round: every client creates then claims, `WRITES_PER_CLIENT` writes in all; with `keys`,
/// each write is sent twice under one key. Returns writes that took effect per second.
async fn round(flow: &TaskFlow, name: &str, keys: bool) -> Result<f64, taskflow::Error> {
    let started = Instant::now();
    let clients = (0..CLIENTS).map(|c| {
        let flow = flow.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let who = Identity::user(format!("{name}-agent-{c}"));
            for i in 0..WRITES_PER_CLIENT {
                let command = if i % 2 == 0 {
                    Command::CreateTask {
                        task: NewTask {
                            project_slug: Some(name.clone()),
                            ..NewTask::titled(format!("{name} {c}.{i}"))
                        },
                    }
                } else {
                    Command::ClaimNext {
                        project: Some(name.clone()),
                        lease_seconds: None,
                    }
                };
                if keys {
                    let key = IdempotencyKey::new(format!("{name}-{c}-{i}"))?;
                    let once = Idempotent::for_command(key, &command)?;
                    let first = flow.execute_once(&who, &once, command.clone()).await;
                    let again = flow.execute_once(&who, &once, command).await;
                    assert!(again.replayed, "a repeat is a replay");
                    assert_eq!(again.value?, first.value?);
                } else {
                    let outcome = flow.execute(&who, command).await?;
                    assert!(matches!(outcome, Outcome::Task(_) | Outcome::Claimed(_)));
                }
            }
            Ok::<(), taskflow::Error>(())
        })
    });
    for joined in join_all(clients).await {
        joined.map_err(taskflow::Error::backend)??;
    }
    let writes = (CLIENTS * WRITES_PER_CLIENT) as f64;
    Ok(writes / started.elapsed().as_secs_f64())
}
