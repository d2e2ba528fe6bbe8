//! [`open`]: a store from a database URL, for every front-end (the server, the CLI, MCP).

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "memory"))]
use std::sync::Arc;

use crate::{DynStore, Error, Result};

/// Opens the store `url` names, with the features this build has:
///
/// - `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `sqlite::memory:` (feature
///   `sqlite`): a missing file is created, and migrations run;
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` or `postgresql://…` (feature
///   `postgres`): migrations run; errors never repeat the password;
/// - `memory:` (feature `memory`): a [`MemoryStore`](crate::core::MemoryStore), gone with the
///   process.
///
/// Any other URL, or one whose feature this build lacks, is a validation error on
/// `DATABASE_URL` saying what would work.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> taskflow::Result<()> {
/// let store = taskflow::open("sqlite::memory:").await?;
/// store.ping().await?;
/// let Err(err) = taskflow::open("mysql://db/tasks").await else {
///     panic!("MySQL is not a taskflow store");
/// };
/// assert!(err.to_string().starts_with("DATABASE_URL: unsupported URL 'mysql:…'"));
/// # Ok(())
/// # }
/// ```
pub async fn open(url: &str) -> Result<DynStore> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => open_sqlite(url).await,
        "postgres" | "postgresql" => open_postgres(url).await,
        "memory" => open_memory(),
        _ => Err(Error::validation(
            "DATABASE_URL",
            format!(
                "unsupported URL '{scheme}:…': use sqlite://file.db, sqlite::memory: or postgres://…"
            ),
        )),
    }
}

#[cfg_attr(
    all(feature = "sqlite", feature = "postgres", feature = "memory"),
    allow(dead_code)
)]
fn missing(feature: &str) -> Error {
    Error::validation(
        "DATABASE_URL",
        format!("this build of taskflow lacks the `{feature}` feature"),
    )
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<DynStore> {
    Ok(Arc::new(
        taskflow_store_sqlite::SqliteStore::connect(url).await?,
    ))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<DynStore> {
    Err(missing("sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<DynStore> {
    Ok(Arc::new(taskflow_store_pg::PgStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<DynStore> {
    Err(missing("postgres"))
}

#[cfg(feature = "memory")]
fn open_memory() -> Result<DynStore> {
    Ok(Arc::new(taskflow_core::MemoryStore::new()))
}

#[cfg(not(feature = "memory"))]
fn open_memory() -> Result<DynStore> {
    Err(missing("memory"))
}
