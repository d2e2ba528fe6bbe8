//! taskflow embedded in a program: a SQLite file, no server, no network.
//!
//! An agent claims a subtask and reports progress; a human completes it. Then the audit trail is
//! printed with who did what, and whether they are a human or an agent.
//!
//! Run it with `cargo run --example embedded [PATH]` (default `taskflow-embedded.db`).

use std::sync::Arc;

use taskflow::{Identity, NewTask, SqliteStore, TaskFlow, WorkerType};

#[tokio::main]
async fn main() -> taskflow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "taskflow-embedded.db".to_owned());
    let flow = TaskFlow::new(Arc::new(SqliteStore::open(&path).await?));

    let lead = Identity::admin("grace");
    let agent = Identity::user("agent-claude");
    flow.put_worker(&lead, &agent.id, WorkerType::Agent, Some("Claude".into()))
        .await?;

    let parent = flow
        .create_task(&lead, NewTask::titled("Release 1.0"))
        .await?;
    let subtask = flow
        .create_task(
            &lead,
            NewTask {
                parent_id: Some(parent.id),
                project_slug: Some("release".into()),
                ..NewTask::titled("Write the changelog")
            },
        )
        .await?;

    flow.start(&agent, subtask.id, None).await?;
    flow.progress(&agent, subtask.id, 60, Some("drafted".into()), None)
        .await?;
    let done = flow.complete(&lead, subtask.id, None).await?;

    println!("database: {path}");
    println!(
        "task #{} {:?} under #{}: {} ({}%)",
        done.id, done.title, parent.id, done.status, done.progress_percent
    );
    println!("audit trail:");
    for entry in flow.task_audit(&lead, subtask.id).await? {
        let context = entry.context.map(|c| c.to_string()).unwrap_or_default();
        println!(
            "  {:<10} by {:<13} ({:<5}) {context}",
            entry.action, entry.actor_id, entry.actor_type
        );
    }
    Ok(())
}
