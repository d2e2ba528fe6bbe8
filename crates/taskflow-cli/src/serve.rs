//! `taskflow serve` (the REST API server) and `taskflow mcp` (the MCP tools on stdio).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use taskflow_core::{Store, TaskFlow};
use taskflow_mcp::{Caller, TaskflowMcp};

use crate::failure::Failure;
use crate::local::{open_store, principal};

/// Runs the server until SIGINT or SIGTERM, exactly as the `server` example does: configuration
/// from the environment (`taskflow_poem::Config::from_env`), the store `DATABASE_URL` names
/// (`taskflow::open`). `db`, a SQLite file given with `--db`, takes the place of `DATABASE_URL`.
pub async fn serve(db: Option<&Path>) -> Result<(), Failure> {
    let mut config =
        taskflow_poem::Config::from_env().map_err(|e| Failure::usage(e.to_string()))?;
    if let Some(path) = db {
        config.database_url = sqlite_url(path)?;
    }
    let store = taskflow::open(&config.database_url)
        .await
        .map_err(|e| Failure::other(format!("database: {e}")))?;
    taskflow_poem::serve(config, store)
        .await
        .map_err(Failure::other)
}

/// The `sqlite:` URL of a file path.
pub fn sqlite_url(path: &Path) -> Result<String, Failure> {
    let text = path
        .to_str()
        .ok_or_else(|| Failure::usage(format!("--db: '{}' is not UTF-8", path.display())))?;
    Ok(format!("sqlite://{text}"))
}

/// Serves the MCP tools on stdin and stdout over the SQLite file at `db`, acting as `actor`
/// (an admin if `admin`), as the `mcp_stdio` example does; expired leases are reclaimed every
/// `LEASE_SWEEP_SECONDS` (default 5) meanwhile. Nothing but the protocol goes to stdout.
pub async fn mcp(db: &Path, actor: &str, admin: bool) -> Result<(), Failure> {
    let sweep_every = match std::env::var("LEASE_SWEEP_SECONDS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => 5,
        Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Failure::usage(format!(
                "LEASE_SWEEP_SECONDS: must be a whole number of seconds, at least 1, got '{v}'"
            ))
        })?,
    };
    let store = open_store(db).await?;
    let flow = TaskFlow::new(store.clone());
    let sweeper = tokio::spawn(sweep_leases(flow.clone(), Duration::from_secs(sweep_every)));
    let (principal, identity) = principal(actor, admin);
    let server = TaskflowMcp::new(flow, Arc::new(taskflow_poem::McpJson))
        .with_caller(Caller::new(identity, principal));
    let served = server.serve_stdio().await;
    sweeper.abort();
    store.close().await?;
    served.map_err(|e| Failure::other(format!("MCP on stdio: {e}")))
}

/// Reclaims expired leases every `every` while the MCP server runs, as the HTTP server does.
async fn sweep_leases(flow: TaskFlow, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = flow.sweep_expired_leases().await {
            eprintln!("taskflow mcp: lease sweep failed: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_sqlite_urls() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/t.db")).expect("a URL"),
            "sqlite:///tmp/t.db"
        );
        assert_eq!(
            sqlite_url(Path::new("t.db")).expect("a URL"),
            "sqlite://t.db"
        );
    }
}
