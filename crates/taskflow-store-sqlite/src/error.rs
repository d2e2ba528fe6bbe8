//! The store's private error, converted to [`taskflow_core::Error`] at the boundary.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Everything that can go wrong inside the SQLite store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    #[error("{} is not a SQLite database (or is encrypted or corrupt)", path.display())]
    NotADatabase { path: PathBuf },

    #[error(
        "{} was written by a newer taskflow (schema version {found}; this build knows up to {supported}); upgrade taskflow to open it",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: usize,
    },

    #[error("cannot open SQLite database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("migrating {}: {source}", path.display())]
    Migration {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },

    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("SQLite store: stored {column} {value:?} is not valid: {reason}")]
    Corrupt {
        column: &'static str,
        value: String,
        reason: String,
    },

    #[error("the SQLite store cannot check the invariant {0}; nothing was written")]
    UnknownInvariant(String),

    #[error(
        "claim-next could not write task {id}, which it had picked under the write lock; nothing was written"
    )]
    ClaimNotWritten { id: i64 },

    #[error("the SQLite store is closed")]
    Closed,

    /// An error of taskflow's own inside a write (an idempotency outcome that could not be
    /// rendered): the write is rolled back, and the error is passed on unchanged.
    #[error(transparent)]
    Core(taskflow_core::Error),

    #[error("SQLite worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),

    #[error("cannot start the SQLite writer thread: {0}")]
    WriterThread(#[source] std::io::Error),

    #[error("the SQLite writer thread failed during this write; it was rolled back")]
    WriterFailed,

    #[error("a SQLite write ran outside the writer's transaction; nothing was written")]
    NotInBatch,

    #[error(
        "unsupported SQLite URL {0:?}: expected sqlite://relative.db, sqlite:///absolute.db or sqlite::memory:"
    )]
    BadUrl(String),
}

impl SqliteError {
    /// Classifies an error from opening `path` or reading its first page.
    pub(crate) fn opening(path: &std::path::Path, err: rusqlite::Error) -> Self {
        if err.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
            SqliteError::NotADatabase {
                path: path.to_owned(),
            }
        } else {
            SqliteError::Open {
                path: path.to_owned(),
                source: err,
            }
        }
    }
}

impl From<SqliteError> for taskflow_core::Error {
    fn from(err: SqliteError) -> Self {
        if let SqliteError::Core(err) = err {
            return err;
        }
        let unavailable = match &err {
            // Another process held the database lock for longer than the busy timeout.
            SqliteError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            SqliteError::Closed => true,
            _ => false,
        };
        if unavailable {
            taskflow_core::Error::unavailable(err)
        } else {
            taskflow_core::Error::backend(err)
        }
    }
}

/// True for a foreign-key violation. On an insert or update of a `tasks` row it can only be a
/// `parent_id` that does not exist.
pub(crate) fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}
