//! Three agents drain a work queue with dependencies, and one of them dies mid-task.
//!
//! `cargo run --example agent` builds a small release plan on a temporary SQLite file: tasks
//! that depend on each other, all through `taskflow`'s library API, no server. Three agents
//! loop on claim-next with a 10-second lease, heartbeat while they work, and complete what they
//! claimed. `carol-bot` dies right after her first claim: she never heartbeats again, her lease
//! runs out, the sweep (what the server runs every `LEASE_SWEEP_SECONDS`) reclaims the task,
//! and another agent takes it over with a new fence. It takes about 15 seconds, because leases
//! are real time and the shortest is 10 seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskflow::core::model::{Expect, TaskFilter, WorkerType};
use taskflow::{Identity, NewTask, Priority, SqliteStore, TaskFlow, TaskStatus};

/// The shortest lease taskflow grants.
const LEASE_SECONDS: i64 = 10;

#[tokio::main]
async fn main() -> taskflow::Result<()> {
    let dir = std::env::temp_dir().join(format!("taskflow-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(taskflow::Error::backend)?;
    let store = Arc::new(SqliteStore::open(dir.join("queue.db")).await?);
    let flow = TaskFlow::new(store).with_default_lease(LEASE_SECONDS)?;

    let lead = Identity::admin("lead");
    for bot in ["alice-bot", "bob-bot", "carol-bot"] {
        flow.put_worker(&lead, bot, WorkerType::Agent, None).await?;
    }

    // The plan: design → (build, docs); build → test; (test, docs) → release; plus chores.
    let mut id = std::collections::HashMap::new();
    for (title, priority) in [
        ("design", Priority::Critical),
        ("build", Priority::High),
        ("docs", Priority::Medium),
        ("test", Priority::High),
        ("release", Priority::Critical),
        ("tidy the backlog", Priority::Low),
        ("triage bug reports", Priority::Medium),
    ] {
        let task = NewTask {
            priority: Some(priority),
            ..NewTask::titled(title)
        };
        id.insert(title, flow.create_task(&lead, task).await?.id);
    }
    for (task, depends_on) in [
        ("build", "design"),
        ("docs", "design"),
        ("test", "build"),
        ("release", "test"),
        ("release", "docs"),
    ] {
        flow.add_dependency(&lead, id[task], id[depends_on], None)
            .await?;
    }
    println!("queue of {} tasks, 5 dependencies, 3 agents", id.len());

    // The sweeper, as the server runs it.
    let sweeper = {
        let flow = flow.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match flow.sweep_expired_leases().await {
                    Ok(0) => {}
                    Ok(n) => println!("  sweep: reclaimed {n} expired lease(s)"),
                    Err(e) => eprintln!("  sweep failed: {e}"),
                }
            }
        })
    };

    let started = Instant::now();
    let agents: Vec<_> = ["alice-bot", "bob-bot", "carol-bot"]
        .into_iter()
        .map(|name| {
            let flow = flow.clone();
            tokio::spawn(async move { run_agent(flow, name, started).await })
        })
        .collect();
    for agent in agents {
        agent.await.map_err(taskflow::Error::backend)??;
    }
    sweeper.abort();

    let all = flow.list_tasks(&lead, &TaskFilter::default()).await?;
    assert!(all.items.iter().all(|t| t.status == TaskStatus::Completed));
    println!(
        "drained: all {} tasks completed in {:.1} s",
        all.total,
        started.elapsed().as_secs_f64()
    );

    let expiries = taskflow::AuditFilter {
        action: Some("lease_expired".into()),
        ..Default::default()
    };
    for row in flow.list_audit(&lead, &expiries).await?.items {
        let task = flow.get_task(&lead, row.task_id).await?;
        println!(
            "audit trail of the reclaimed task #{} {:?}:",
            task.id, task.title
        );
        for entry in flow.task_audit(&lead, task.id).await? {
            let context = entry.context.map(|c| c.to_string()).unwrap_or_default();
            println!(
                "  {:<17} by {:<9} ({:<6}) {context}",
                entry.action, entry.actor_id, entry.actor_type
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One agent: claim, work (heartbeating), complete; until everything is done. `carol-bot` dies
/// after her first claim.
async fn run_agent(flow: TaskFlow, name: &str, started: Instant) -> taskflow::Result<()> {
    let me = Identity::user(name);
    loop {
        let Some(task) = flow.claim_next(&me, None, None).await? else {
            let open = flow
                .list_tasks(&me, &TaskFilter::default())
                .await?
                .items
                .iter()
                .any(|t| t.status != TaskStatus::Completed);
            if !open {
                return Ok(());
            }
            // Waiting on dependencies or on a lease to be reclaimed.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let at = started.elapsed().as_secs_f64();
        println!(
            "{at:5.1}s {name:<9} claimed #{} {:?} (fence {})",
            task.id, task.title, task.fence
        );
        if name == "carol-bot" {
            println!("{at:5.1}s {name:<9} dies holding #{}", task.id);
            return Ok(());
        }
        let mine = Expect::fence(Some(task.fence));
        for percent in [30, 60, 90] {
            tokio::time::sleep(Duration::from_millis(150)).await;
            flow.progress(&me, task.id, percent, None, mine.clone())
                .await?;
            flow.heartbeat(&me, task.id, None, mine.clone()).await?;
        }
        flow.complete(&me, task.id, mine).await?;
        println!(
            "{:5.1}s {name:<9} completed #{} {:?}",
            started.elapsed().as_secs_f64(),
            task.id,
            task.title
        );
    }
}
