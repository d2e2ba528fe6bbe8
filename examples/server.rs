//! The ready-made taskflow server: the REST API with Swagger UI at `/docs`.
//!
//! `cargo run --release --example server` starts it on `sqlite://taskflow.db` in dev auth mode,
//! with no auth server and no network: it prints an admin token to paste into Swagger's
//! Authorize button. Point it at Better Auth with `AUTH_SERVER_URL` and at Postgres with
//! `DATABASE_URL=postgres://…`; the README lists every variable. Ctrl-C (or SIGTERM) lets
//! in-flight requests finish and closes the database.

use std::process::ExitCode;

/// mimalloc rather than the system allocator: under load a task list spent a fifth of its time
/// in glibc's malloc and free (README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("taskflow: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = taskflow_poem::Config::from_env()?;
    let store = taskflow::open(&config.database_url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    Ok(taskflow_poem::serve(config, store).await?)
}
