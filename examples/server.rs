//! The ready-made taskflow server: the REST API with Swagger UI at `/docs`.
//!
//! `cargo run --release --example server` starts it on `sqlite://taskflow.db` in dev auth mode,
//! with no auth server and no network: it prints an admin token to paste into Swagger's
//! Authorize button. Point it at Better Auth with `AUTH_SERVER_URL` and at Postgres with
//! `DATABASE_URL=postgres://…`; the README lists every variable. Ctrl-C (or SIGTERM) lets
//! in-flight requests finish and closes the database.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let served = match taskflow_poem::Config::from_env() {
        Ok(config) => taskflow_poem::serve(config).await,
        Err(bad) => Err(bad.into()),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("taskflow: {err}");
            ExitCode::FAILURE
        }
    }
}
