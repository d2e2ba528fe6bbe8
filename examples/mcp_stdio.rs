//! taskflow's MCP tools on stdio, over a local SQLite file: an agent launches this as a child
//! process and talks MCP on its stdin and stdout. The CLI's `taskflow mcp --db FILE --as ID` runs
//! the same server; this example shows it with no CLI around it.
//!
//! ```text
//! TASKFLOW_DB=tasks.db TASKFLOW_ACTOR=agent-7 cargo run --example mcp_stdio
//! ```
//!
//! - `TASKFLOW_DB`: the SQLite file (default `taskflow.db`); created and migrated if missing.
//!   Several processes may share it (a server too): SQLite's WAL and taskflow's
//!   compare-and-set writes keep them consistent.
//! - `TASKFLOW_ACTOR` (required): who every call acts as, the actor of every audit row. There is
//!   no token: whoever can open the file can act. Register the id as an agent (`PUT
//!   /api/workers/{id}` or `TaskFlow::put_worker`) for its rows to say `agent`.
//! - `LEASE_SWEEP_SECONDS` (default 5): how often expired leases in the file are reclaimed, as
//!   the server does.
//!
//! An agent that can speak HTTP uses a server's `/mcp` directly, with its bearer token. Logs go to stderr only:
//! stdout carries the protocol.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use taskflow::{SqliteStore, Store, TaskFlow};
use taskflow_mcp::{Caller, TaskflowMcp};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("taskflow mcp: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A variable's value, with empty counted as unset.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let actor = var("TASKFLOW_ACTOR")
        .ok_or("TASKFLOW_ACTOR: set it to the actor id every call acts as, e.g. agent-7")?;
    let db = var("TASKFLOW_DB").unwrap_or_else(|| "taskflow.db".to_owned());
    let sweep_every = match var("LEASE_SWEEP_SECONDS") {
        None => 5,
        Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("LEASE_SWEEP_SECONDS: must be a whole number of seconds, at least 1, got '{v}'")
        })?,
    };

    let store = Arc::new(
        SqliteStore::open(&db)
            .await
            .map_err(|e| format!("TASKFLOW_DB: cannot open '{db}': {e}"))?,
    );
    let flow = TaskFlow::new(store.clone());
    let sweeper = tokio::spawn(sweep_leases(flow.clone(), Duration::from_secs(sweep_every)));

    let server =
        TaskflowMcp::new(flow, Arc::new(taskflow_poem::McpJson)).with_caller(Caller::local(actor));
    let served = server.serve_stdio().await;
    sweeper.abort();
    store.close().await?;
    Ok(served?)
}

/// Reclaims expired leases every `every` while the server runs, as the HTTP server does.
async fn sweep_leases(flow: TaskFlow, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Err(err) = flow.sweep_expired_leases().await {
            eprintln!("taskflow mcp: lease sweep failed: {err}");
        }
    }
}
