//! Test support (feature `test-support`): where the test server is, and a fresh database per
//! test. Used by this crate's tests and by the HTTP tests of the workspace.
//!
//! The server comes from `TASKFLOW_TEST_PG_URL`, which `scripts/with-postgres` exports. Without
//! it the tests skip loudly, except under `CI=true`, where a missing Postgres is a failure. The
//! same goes for the server's TLS material (`TASKFLOW_TEST_PG_CA`, `TASKFLOW_TEST_PG_OTHER_CA`),
//! which the TLS tests need.
//!
//! Test databases are reached without TLS unless the URL (or `PGSSLMODE`) names an sslmode,
//! although the server of `scripts/with-postgres` offers it: sqlx 0.9.0 leaves Nagle's algorithm
//! on, and over loopback that makes each TLS connect wait for delayed ACKs, about 100 ms against
//! 5 to 10 ms in plain text (sqlx issue 4335). Suites that open many pools would slow down, and
//! cases with short deadlines (a 200 ms idempotency TTL) would fail now and then. TLS has tests
//! of its own (`tests/tls.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used)] // Test support: a failure here is a failed test.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use taskflow_core::testkit::Fixture;

use crate::{PgConnectOptions, PgSslMode, PgStore};

/// The environment variable that names the test server (`scripts/with-postgres` sets it).
pub const URL_VAR: &str = "TASKFLOW_TEST_PG_URL";

/// The environment variable that names the CA file that signed the test server's certificate
/// (`scripts/with-postgres` sets it). The certificate is for the host name `localhost` only.
pub const CA_VAR: &str = "TASKFLOW_TEST_PG_CA";

/// The environment variable that names an unrelated CA file, which must not be trusted.
pub const OTHER_CA_VAR: &str = "TASKFLOW_TEST_PG_OTHER_CA";

/// Pool size per store in tests: small, so that many tests in parallel fit the server's
/// `max_connections`.
pub const TEST_POOL_SIZE: u32 = 8;

/// The URL of the test server, or `None` when the tests should skip.
///
/// Under `CI=true` a missing URL is a failure, never a skip; elsewhere it prints a loud line and
/// the caller returns early.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "Postgres is required under CI=true, but {URL_VAR} is not set: \
             run the tests via scripts/with-postgres"
        ),
        _ => {
            // Straight to the process's stderr: the test harness captures `eprintln!` of a
            // passing test, and a skip must not pass silently.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: Postgres tests need {URL_VAR}; run via scripts/with-postgres"
            );
            None
        }
    }
}

/// The test server's TLS material, from [`CA_VAR`] and [`OTHER_CA_VAR`].
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate (issued for `localhost` only).
    pub ca: PathBuf,
    /// A CA that has nothing to do with the server.
    pub other_ca: PathBuf,
}

/// The test server's CA files, or `None` when the TLS tests should skip.
///
/// Under `CI=true` a missing variable is a failure, never a skip; elsewhere it prints a loud line
/// and the caller returns early.
pub fn tls_files() -> Option<TlsFiles> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    match (var(CA_VAR), var(OTHER_CA_VAR)) {
        (Some(ca), Some(other_ca)) => Some(TlsFiles {
            ca: ca.into(),
            other_ca: other_ca.into(),
        }),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "Postgres over TLS is required under CI=true, but {CA_VAR} or {OTHER_CA_VAR} is not \
             set: run the tests via scripts/with-postgres (which needs the openssl CLI)"
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: Postgres TLS tests need {CA_VAR} and {OTHER_CA_VAR}; run via \
                 scripts/with-postgres (which needs the openssl CLI)"
            );
            None
        }
    }
}

/// A database of its own for one test, created on the test server. Dropping it drops the
/// database, unless the test is panicking: a failed test's data stays for inspection (the
/// cluster from `scripts/with-postgres` is thrown away anyway).
pub struct TestDb {
    /// Connect options for the new database; without TLS unless the URL names an sslmode.
    pub options: PgConnectOptions,
    /// Its name.
    pub name: String,
    admin: PgConnectOptions,
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates an empty database, or returns `None` when the tests should skip.
    pub async fn create() -> Option<TestDb> {
        let url = server_url()?;
        let admin = PgConnectOptions::from_str(&url).expect("TASKFLOW_TEST_PG_URL is a URL");
        let admin = if names_sslmode(&url) {
            admin
        } else {
            admin.ssl_mode(PgSslMode::Disable)
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        // Unique across parallel tests and test binaries; only digits, letters and `_`.
        let name = format!(
            "tf_{}_{}_{nanos}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .expect("connect to the test server as admin");
        // Identifiers cannot be bound; `name` is ours and holds no quote.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        Some(TestDb {
            options,
            name,
            admin,
        })
    }

    /// A store on this database with its own small pool (as one server process would have).
    pub async fn store(&self) -> PgStore {
        PgStore::connect_with(
            self.options.clone(),
            PgStore::default_pool_options().max_connections(TEST_POOL_SIZE),
        )
        .await
        .expect("connect a PgStore to the test database")
    }

    async fn drop_database(admin: PgConnectOptions, name: String) {
        let result = async {
            let mut conn = PgConnection::connect_with(&admin).await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await
        }
        .await;
        if let Err(err) = result {
            eprintln!("note: could not drop test database {name}: {err}");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("note: keeping test database {} of a failed test", self.name);
            return;
        }
        // Dropping a database is async; block on it where a multi-threaded runtime allows,
        // otherwise leave the database to the throwaway cluster.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        tokio::task::block_in_place(|| handle.block_on(Self::drop_database(admin, name)));
    }
}

/// Whether `url`, or the environment, names an sslmode (see the module docs).
fn names_sslmode(url: &str) -> bool {
    let in_url = url::Url::parse(url).is_ok_and(|url| {
        url.query_pairs()
            .any(|(key, _)| key == "sslmode" || key == "ssl-mode")
    });
    in_url || std::env::var_os("PGSSLMODE").is_some()
}

/// A fresh store on a fresh database for one conformance case, or `None` to skip.
pub async fn fresh_store() -> Option<Fixture> {
    let db = TestDb::create().await?;
    let store = db.store().await;
    Some(Fixture::with_guard(Arc::new(store), db))
}
