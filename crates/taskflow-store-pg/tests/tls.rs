//! Postgres over TLS: each sslmode and `sslrootcert` against the test server, which
//! `scripts/with-postgres` starts with ssl=on and a certificate for `localhost` (and not for
//! 127.0.0.1) signed by the CA in `TASKFLOW_TEST_PG_CA`; `TASKFLOW_TEST_PG_OTHER_CA` is an
//! unrelated CA. Every connection goes through `PgStore::connect` with a URL, as a deployment's
//! would, and carries a password (the test server trusts every local connection and never asks
//! for it), which no error may show.
//!
//! Tests that need the server skip without it, or fail under `CI=true`; those that need none
//! always run.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use taskflow_core::Error;
use taskflow_store_pg::test_support::{TestDb, TlsFiles, server_url, tls_files};
use taskflow_store_pg::{PgSslMode, PgStore};

/// In every URL; never in any message.
const PASSWORD: &str = "Tls-s3cret-pw";

/// The test server, a database on it, and its CA files; `None` to skip.
async fn server() -> Option<(TestDb, TlsFiles)> {
    // The server first, so that a missing server is reported as such.
    server_url()?;
    let files = tls_files()?;
    let db = TestDb::create().await?;
    Some((db, files))
}

/// A URL for `db` at `host` (the server listens on 127.0.0.1, which `localhost` names), with
/// `query` as its query string.
fn url(db: &TestDb, host: &str, query: &str) -> String {
    let user = db.options.get_username();
    let port = db.options.get_port();
    let name = &db.name;
    let url = format!("postgresql://{user}:{PASSWORD}@{host}:{port}/{name}");
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

/// `sslrootcert=PATH`, percent-encoded.
fn root_cert(path: &Path) -> String {
    let mut encoded = String::from("sslrootcert=");
    for byte in path.to_str().expect("a UTF-8 path").bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Connects to `url`, which must work.
async fn connect(url: &str) -> PgStore {
    match PgStore::connect(url).await {
        Ok(store) => store,
        Err(err) => panic!("connecting failed: {err}"),
    }
}

/// Whether the store's sessions are encrypted, as the server sees them.
async fn uses_tls(store: &PgStore) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("read pg_stat_ssl")
}

/// Connecting to `url` fails with exactly `expected`: a configuration error (not an outage, so
/// not worth retrying), on one line, without the password.
async fn refused(url: &str, expected: &str) {
    let err = match PgStore::connect(url).await {
        Ok(_) => panic!("connected, but expected: {expected}"),
        Err(err) => err,
    };
    let text = err.to_string();
    println!("refused as expected: {text}");
    assert_eq!(text, expected);
    assert!(
        matches!(err, Error::Backend(_)),
        "not a configuration error: {err:?}"
    );
    assert!(!text.contains(['\n', '\r']), "more than one line: {text:?}");
    assert!(
        !text.contains(PASSWORD) && !format!("{err:?}").contains(PASSWORD),
        "the password leaked: {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Connections that work.

/// `sslmode=require`, the hosted-Postgres URL (Neon's): encrypted, whatever the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_connects_over_tls() {
    let Some((db, _)) = server().await else {
        return;
    };
    let store = connect(&url(&db, "127.0.0.1", "sslmode=require")).await;
    assert!(
        uses_tls(&store).await,
        "sslmode=require gave a plain session"
    );
    store.pool().close().await;
}

/// Without an sslmode the default, `prefer`, takes the TLS the server offers (without
/// checking its certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_prefer_uses_tls_when_offered() {
    let Some((db, _)) = server().await else {
        return;
    };
    let store = connect(&url(&db, "127.0.0.1", "")).await;
    assert!(
        uses_tls(&store).await,
        "sslmode=prefer gave a plain session"
    );
    store.pool().close().await;
}

/// `verify-full` to the name the certificate is for, trusting the CA that signed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_ca_and_host_connects() {
    let Some((db, files)) = server().await else {
        return;
    };
    let query = format!("sslmode=verify-full&{}", root_cert(&files.ca));
    let store = connect(&url(&db, "localhost", &query)).await;
    assert!(uses_tls(&store).await);
    store.pool().close().await;
}

/// `verify-ca` checks the chain but not the host name: 127.0.0.1, which the certificate does
/// not name, connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_with_the_right_ca_connects_whatever_the_host_name() {
    let Some((db, files)) = server().await else {
        return;
    };
    let query = format!("sslmode=verify-ca&{}", root_cert(&files.ca));
    let store = connect(&url(&db, "127.0.0.1", &query)).await;
    assert!(uses_tls(&store).await);
    store.pool().close().await;
}

/// `sslmode=disable` never asks for TLS, although the server offers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_connects_without_tls() {
    let Some((db, _)) = server().await else {
        return;
    };
    let store = connect(&url(&db, "localhost", "sslmode=disable")).await;
    assert!(
        !uses_tls(&store).await,
        "sslmode=disable gave a TLS session"
    );
    store.pool().close().await;
}

/// libpq's rule, which sqlx lacks and `PgStore::connect` adds: `require` with a root
/// certificate file verifies the chain as `verify-ca` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_with_a_root_certificate_verifies_the_chain() {
    let Some((db, files)) = server().await else {
        return;
    };
    let query = format!("sslmode=require&{}", root_cert(&files.ca));
    let store = connect(&url(&db, "127.0.0.1", &query)).await;
    assert!(uses_tls(&store).await);
    store.pool().close().await;

    let port = db.options.get_port();
    let query = format!("sslmode=require&{}", root_cert(&files.other_ca));
    refused(
        &url(&db, "127.0.0.1", &query),
        &format!(
            "cannot connect to Postgres at 127.0.0.1:{port}: \
             TLS certificate not trusted: no trusted CA signed it (see sslrootcert)"
        ),
    )
    .await;
}

/// As libpq: a Unix socket never uses TLS, whatever the sslmode (sqlx alone would fail a
/// `require`, since PostgreSQL offers no TLS there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_ignores_the_sslmode() {
    let Some((db, _)) = server().await else {
        return;
    };
    let tcp = connect(&url(&db, "localhost", "sslmode=disable")).await;
    let dirs: String = sqlx::query_scalar("SHOW unix_socket_directories")
        .fetch_one(tcp.pool())
        .await
        .expect("read unix_socket_directories");
    tcp.pool().close().await;
    let dir = dirs.split(',').next().expect("a socket directory").trim();
    for mode in [PgSslMode::Require, PgSslMode::VerifyFull] {
        let options = db.options.clone().socket(dir).ssl_mode(mode);
        let store = PgStore::connect_with(options, PgStore::default_pool_options())
            .await
            .unwrap_or_else(|err| panic!("connecting over {dir} failed: {err}"));
        assert!(!uses_tls(&store).await, "TLS over a Unix socket");
        store.pool().close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates that must not be accepted.

/// `verify-full` trusting a CA that did not sign the server's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_wrong_ca_is_refused() {
    let Some((db, files)) = server().await else {
        return;
    };
    let port = db.options.get_port();
    let query = format!("sslmode=verify-full&{}", root_cert(&files.other_ca));
    refused(
        &url(&db, "localhost", &query),
        &format!(
            "cannot connect to Postgres at localhost:{port}: \
             TLS certificate not trusted: no trusted CA signed it (see sslrootcert)"
        ),
    )
    .await;
}

/// `verify-ca` trusting a CA that did not sign the server's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_with_the_wrong_ca_is_refused() {
    let Some((db, files)) = server().await else {
        return;
    };
    let port = db.options.get_port();
    let query = format!("sslmode=verify-ca&{}", root_cert(&files.other_ca));
    refused(
        &url(&db, "127.0.0.1", &query),
        &format!(
            "cannot connect to Postgres at 127.0.0.1:{port}: \
             TLS certificate not trusted: no trusted CA signed it (see sslrootcert)"
        ),
    )
    .await;
}

/// `verify-full` to 127.0.0.1, which the certificate (for `localhost` only) does not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_to_a_host_the_certificate_does_not_name_is_refused() {
    let Some((db, files)) = server().await else {
        return;
    };
    let port = db.options.get_port();
    let query = format!("sslmode=verify-full&{}", root_cert(&files.ca));
    refused(
        &url(&db, "127.0.0.1", &query),
        &format!(
            "cannot connect to Postgres at 127.0.0.1:{port}: \
             TLS certificate is not valid for host 127.0.0.1 (it is for localhost)"
        ),
    )
    .await;
}

/// Options built in code skip the URL's check of `sslrootcert`; sqlx then finds the file missing
/// once the server has agreed to TLS, and that is a configuration error too, not an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_a_missing_root_certificate_is_a_configuration_error() {
    let Some((db, _)) = server().await else {
        return;
    };
    let port = db.options.get_port();
    let missing = std::env::temp_dir().join(format!("taskflow-no-such-ca-{port}.crt"));
    let options = db
        .options
        .clone()
        .host("localhost")
        .password(PASSWORD)
        .ssl_mode(PgSslMode::VerifyFull)
        .ssl_root_cert(&missing);
    let err = PgStore::connect_with(options, PgStore::default_pool_options())
        .await
        .map(|_| ())
        .unwrap_err();
    let text = err.to_string();
    println!("refused as expected: {text}");
    assert!(
        text.starts_with(&format!(
            "cannot connect to Postgres at localhost:{port}: \
             a TLS file (sslrootcert, sslcert or sslkey) does not exist: "
        )),
        "{text}"
    );
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert!(
        !format!("{err:?}").contains(PASSWORD),
        "the password leaked: {err:?}"
    );
}

/// `sslrootcert=system` (libpq 16) trusts the public CAs only, and means `verify-full`: the
/// test server's private CA is not among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslrootcert_system_trusts_the_public_cas_only() {
    let Some((db, _)) = server().await else {
        return;
    };
    let port = db.options.get_port();
    refused(
        &url(&db, "localhost", "sslrootcert=system"),
        &format!(
            "cannot connect to Postgres at localhost:{port}: \
             TLS certificate not trusted: no trusted CA signed it (see sslrootcert)"
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Settings that cannot work: refused before connecting, so these need no server and always run.

/// A port nothing listens on: these must fail before they would find that out.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// libpq refuses `sslrootcert=system` with any sslmode but `verify-full`.
#[tokio::test]
async fn sslrootcert_system_with_a_weaker_sslmode_is_refused() {
    let port = closed_port();
    for mode in ["disable", "prefer", "require", "verify-ca"] {
        refused(
            &format!(
                "postgresql://app:{PASSWORD}@127.0.0.1:{port}/app?sslmode={mode}&sslrootcert=system"
            ),
            &format!(
                "cannot connect to Postgres at 127.0.0.1:{port}: sslmode={mode} may not be used \
                 with sslrootcert=system (use verify-full)"
            ),
        )
        .await;
    }
}

/// A root certificate file that is missing, or holds no certificate, is named at once (sqlx
/// alone would fail only once connected, or trust the public CAs instead).
#[tokio::test]
async fn a_missing_or_empty_root_certificate_is_refused() {
    let port = closed_port();
    let missing = std::env::temp_dir().join(format!("taskflow-no-such-ca-{port}.crt"));
    for mode in ["verify-ca", "verify-full"] {
        let url = format!(
            "postgresql://app:{PASSWORD}@localhost:{port}/app?sslmode={mode}&{}",
            root_cert(&missing)
        );
        refused(
            &url,
            &format!(
                "cannot connect to Postgres at localhost:{port}: sslrootcert file {:?} does not \
                 exist",
                missing.display().to_string()
            ),
        )
        .await;
    }

    let empty = std::env::temp_dir().join(format!("taskflow-empty-ca-{port}.crt"));
    std::fs::write(&empty, "not a certificate\n").expect("write a file");
    let url = format!(
        "postgresql://app:{PASSWORD}@localhost:{port}/app?sslmode=verify-full&{}",
        root_cert(&empty)
    );
    let expected = format!(
        "cannot connect to Postgres at localhost:{port}: sslrootcert file {:?} holds no PEM \
         certificate",
        empty.display().to_string()
    );
    refused(&url, &expected).await;
    // libpq reads the file for `require` too, when it exists.
    refused(&url.replace("verify-full", "require"), &expected).await;
    std::fs::remove_file(&empty).ok();
}

/// A server that declines TLS (answers `N` to the SSLRequest) under `sslmode=require`: a
/// configuration error, not an outage.
#[tokio::test]
async fn a_server_without_tls_is_refused_under_require() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut request = [0u8; 8];
        conn.read_exact(&mut request).expect("read the SSLRequest");
        // Length 8, then the SSLRequest code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "not an SSLRequest");
        conn.write_all(b"N").expect("decline TLS");
        // Wait for the client to hang up.
        let _ = conn.read(&mut [0u8; 64]);
    });
    refused(
        &format!("postgresql://app:{PASSWORD}@127.0.0.1:{port}/app?sslmode=require"),
        &format!(
            "cannot connect to Postgres at 127.0.0.1:{port}: TLS failed: server does not support \
             TLS"
        ),
    )
    .await;
    server.join().expect("the fake server");
}
