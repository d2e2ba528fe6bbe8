//! The store's private error, richer than the core one it converts to.

use std::io;

use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgConnectOptions;

use crate::tls;

/// Everything that can go wrong inside [`crate::PgStore`]. Callers only see it through
/// [`taskflow_core::Error::Backend`], whose text is this type's `Display`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// The URL could not be read. The text never repeats the URL, which may hold a password.
    #[error("invalid Postgres URL: {0}")]
    InvalidUrl(String),

    /// No connection could be opened.
    #[error("cannot connect to Postgres at {target}: {reason}")]
    Connect {
        /// `host:port` or the socket path; never the password.
        target: String,
        /// Why, in a few words.
        reason: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<sqlx::Error>,
    },

    /// The TLS settings cannot work (e.g. `sslrootcert` names a missing file), so no connection
    /// was tried. A configuration error, like a TLS failure while connecting.
    #[error("cannot connect to Postgres at {target}: {reason}")]
    TlsConfig {
        /// `host:port` or the socket path; never the password.
        target: String,
        /// Why, in a few words.
        reason: String,
    },

    /// The embedded migrations failed to apply.
    #[error("Postgres migrations failed: {0}")]
    Migrate(#[from] MigrateError),

    /// A statement failed (including a lost connection or a closed pool).
    #[error("Postgres query failed: {0}")]
    Query(#[from] sqlx::Error),

    /// A write carries an invariant this build cannot check. Nothing was written.
    #[error("the Postgres store cannot check the invariant {0}")]
    UnsupportedInvariant(String),

    /// Claim-next found every candidate it locked waiting on a dependency added while it was
    /// being claimed, this many times in a row, and gave up rather than loop. Nothing was
    /// written; the caller may try again.
    #[error("claim-next gave up: {0} candidates in a row gained a dependency while being claimed")]
    ClaimContended(usize),

    /// The lifecycle's claim turned the picked task into a different task. Nothing was written.
    #[error("claim-next picked task {picked}, but the claim decided about task {decided}")]
    ClaimMismatch {
        /// The task the store locked.
        picked: i64,
        /// The task the decision names.
        decided: i64,
    },

    /// Claim-next's compare-and-set found the task it held locked at another version. The row
    /// lock rules this out; nothing was written.
    #[error("claim-next lost task {0} while holding its row lock")]
    ClaimLost(i64),

    /// A reservation found its key taken by its insert and gone by its lock (forgotten or
    /// purged in between) this many times in a row, and gave up rather than loop. Nothing was
    /// written; the caller may try again.
    #[error("reserving an idempotency key gave up: it vanished {0} times while being reserved")]
    ReserveContended(usize),

    /// The idempotency outcome a change carries could not be made from the task as written
    /// ([`taskflow_core::idempotency::OutcomeRecord::render`]). The change was rolled back.
    /// Converted back to taskflow-core's error as it is.
    #[error("{0}")]
    Outcome(taskflow_core::Error),

    /// A stored value does not read back as its domain type.
    #[error("unreadable value in column {column}: {message}")]
    Corrupt {
        /// The column that held it.
        column: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl PgError {
    /// A connection failure to `target`, with a short reason taken from `err`.
    pub(crate) fn connect(target: String, err: sqlx::Error) -> Self {
        // Over TCP, a missing file can only be one the TLS settings name (sqlx reads them once
        // the server has agreed to TLS): a configuration error, not a missing server socket.
        let over_tcp = !target.starts_with('/');
        if let sqlx::Error::Io(io) = &err
            && io.kind() == io::ErrorKind::NotFound
            && over_tcp
        {
            return PgError::TlsConfig {
                reason: format!("a TLS file (sslrootcert, sslcert or sslkey) does not exist: {io}"),
                target,
            };
        }
        PgError::Connect {
            target,
            reason: one_line(&reason(&err)),
            source: Some(err),
        }
    }
}

impl From<PgError> for taskflow_core::Error {
    fn from(err: PgError) -> Self {
        if let PgError::Outcome(err) = err {
            return err;
        }
        if err.is_unavailable() {
            taskflow_core::Error::unavailable(err)
        } else {
            taskflow_core::Error::backend(err)
        }
    }
}

impl PgError {
    /// Whether the database could not be reached (rather than refusing a statement): a
    /// connection that failed or dropped, a pool that timed out or closed, or a server that is
    /// shutting down or starting up. Such a call may succeed once the database is back.
    ///
    /// A TLS failure is not one: the server answered, and the two sides disagree about the
    /// certificate (not trusted, wrong host, expired), the protocol, or whether to use TLS at
    /// all. Retrying changes none of that; the settings or the server's certificate must change.
    /// So it is a configuration error, like a wrong password, and callers should not be told to
    /// retry (HTTP 500 rather than 503, a failed start rather than a wait). A connection that
    /// drops or times out during the handshake is still an outage: it surfaces as a plain I/O
    /// error, without a TLS error inside.
    fn is_unavailable(&self) -> bool {
        match self {
            // A wrong password, a missing database or a TLS failure is a configuration error,
            // not an outage.
            PgError::Connect { source, .. } => source.as_ref().is_none_or(is_unavailable),
            PgError::Query(err) => is_unavailable(err),
            _ => false,
        }
    }
}

fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // rustls reports a failed handshake as an I/O error that carries its own error.
        sqlx::Error::Io(_) => tls::rustls_error(err).is_none(),
        // sqlx's own TLS errors: the server offers no TLS, an unreadable sslrootcert.
        sqlx::Error::Tls(_) => false,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot
        // connect now (starting up or in recovery).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Where `options` points, for messages: `host:port` or the Unix socket, never credentials.
pub(crate) fn target(options: &PgConnectOptions) -> String {
    let port = options.get_port();
    match options.get_socket() {
        Some(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
        None => {
            let host = options.get_host();
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
    }
}

/// The gist of a connection error: `connection refused` rather than the driver's whole chain.
fn reason(err: &sqlx::Error) -> String {
    if let Some(tls) = tls::rustls_error(err) {
        return tls::reason(tls);
    }
    match err {
        sqlx::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            io::ErrorKind::TimedOut => "timed out".to_owned(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Tls(tls) => format!("TLS failed: {tls}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other => other.to_string(),
    }
}

/// `text` on one line: a driver's message may span several (sqlx quotes an inline PEM
/// certificate it cannot read).
fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_owned();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `err` is a violation of the `tasks.parent_id` foreign key (SQLSTATE 23503).
pub(crate) fn is_parent_fk_violation(err: &sqlx::Error) -> bool {
    is_fk_violation(err, "tasks_parent_id_fkey")
}

/// Whether `err` is a violation of the foreign key `constraint` (SQLSTATE 23503).
pub(crate) fn is_fk_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|db: &dyn DatabaseError| {
            db.is_foreign_key_violation() && db.constraint() == Some(constraint)
        })
}

/// Whether `err` is a violation of the unique constraint `constraint` (SQLSTATE 23505).
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|db: &dyn DatabaseError| {
            db.is_unique_violation() && db.constraint() == Some(constraint)
        })
}
