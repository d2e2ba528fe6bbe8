//! A real taskflow server for tests: a SQLite file store (or a fresh PostgreSQL database), auth
//! through a real loopback JWKS (`taskflow_auth::test_support`), bound to `127.0.0.1:0`, driven
//! with reqwest.
#![allow(dead_code)]

pub mod browser;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::{Acceptor, Listener, TcpListener};
use taskflow::SqliteStore;
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_auth::{Algorithm, JwksVerifierBuilder, Verifier};
use taskflow_core::{DynStore, TaskFlow};
use taskflow_poem::AppOptions;
use taskflow_store_pg::test_support::TestDb;

/// A running server and what it takes to call it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The JWKS the server trusts.
    pub jwks: JwksServer,
    /// Keys whose public halves the JWKS serves.
    pub keys: TestKeys,
    /// The service behind the server, for direct checks.
    pub flow: TaskFlow,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    _guard: Box<dyn Any + Send + Sync>,
    _server: tokio::task::JoinHandle<()>,
}

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `TASKFLOW_TEST_PG_URL`.
    Postgres,
}

impl TestServer {
    /// Starts a server on a fresh SQLite file.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("http.db"))
            .await
            .expect("open store");
        Self::start_with(Arc::new(store), Box::new(dir)).await
    }

    /// Starts a server on `backend`, or returns `None` (after saying so loudly) when Postgres
    /// is not available outside CI. Under `CI=true` a missing Postgres fails the test.
    pub async fn start_on(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::start().await),
            Backend::Postgres => {
                let db = TestDb::create().await?;
                let store = db.store().await;
                Some(Self::start_with(Arc::new(store), Box::new(db)).await)
            }
        }
    }

    /// Starts a server on `store`, keeping `guard` (a temp dir, a test database) alive as long
    /// as the server.
    pub async fn start_with(store: DynStore, guard: Box<dyn Any + Send + Sync>) -> Self {
        Self::start_tuned(store, guard, |builder| builder, AppOptions::default()).await
    }

    /// [`TestServer::start_with`] with app options (the events keep-alive, say).
    pub async fn start_with_options(
        store: DynStore,
        guard: Box<dyn Any + Send + Sync>,
        options: AppOptions,
    ) -> Self {
        Self::start_tuned(store, guard, |builder| builder, options).await
    }

    /// Starts a server on a fresh SQLite file whose JWKS verifier is built with `tune` applied
    /// to the usual builder (to shrink its cache durations, say).
    pub async fn start_with_verifier(
        tune: impl FnOnce(JwksVerifierBuilder) -> JwksVerifierBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("http.db"))
            .await
            .expect("open store");
        Self::start_tuned(Arc::new(store), Box::new(dir), tune, AppOptions::default()).await
    }

    async fn start_tuned(
        store: DynStore,
        guard: Box<dyn Any + Send + Sync>,
        tune: impl FnOnce(JwksVerifierBuilder) -> JwksVerifierBuilder,
        options: AppOptions,
    ) -> Self {
        let keys = TestKeys::generate();
        let jwks = JwksServer::start(keys.jwks()).await;
        let verifier: Arc<dyn Verifier> =
            Arc::new(tune(jwks.verifier_builder()).build().expect("verifier"));
        let flow = TaskFlow::new(store);
        let options = AppOptions {
            allowed_origins: vec!["http://localhost:3000".to_owned()],
            ..options
        };
        let app = taskflow_poem::app_with(flow.clone(), verifier, &options);
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind 127.0.0.1:0");
        let addr: SocketAddr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address");
        let server = tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run(app)
                .await
                .expect("server");
        });
        TestServer {
            base: format!("http://{addr}"),
            jwks,
            keys,
            flow,
            http: reqwest::Client::new(),
            _guard: guard,
            _server: server,
        }
    }

    /// A token for `sub` with `role` (`user` or `admin`), signed with EdDSA (Better Auth's
    /// default) by a key the JWKS serves.
    pub fn token(&self, sub: &str, role: &str) -> String {
        let claims = self
            .jwks
            .claims(sub)
            .email(format!("{sub}@example.test"))
            .role(role);
        self.keys.mint(Algorithm::EdDSA, &claims)
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `sub`'s bearer token (role `user`).
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        sub: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.token(sub, "user"))
    }

    /// A request with an admin's bearer token.
    pub fn as_admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.token("admin", "admin"))
    }
}

/// Asserts the status (showing the body when it differs) and returns the JSON body.
pub async fn json_of(resp: reqwest::Response, status: u16) -> serde_json::Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("a response body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).expect("a JSON body")
}

/// Checks the `{"error", "status_code"}` shape (exactly those keys) against `status` and
/// returns the message.
pub fn message_of(body: &serde_json::Value, status: u16) -> String {
    let obj = body.as_object().expect("an error object");
    assert_eq!(obj.len(), 2, "only error and status_code: {body}");
    assert_eq!(body["status_code"], status, "{body}");
    body["error"]
        .as_str()
        .expect("error is a string")
        .to_owned()
}

/// Asserts the status and the error body shape, and returns the message.
pub async fn error_of(resp: reqwest::Response, status: u16) -> String {
    let body = json_of(resp, status).await;
    message_of(&body, status)
}

/// The `id` of a task body.
pub fn id_of(task: &serde_json::Value) -> i64 {
    task["id"].as_i64().expect("an integer id")
}

/// A TCP proxy on loopback that can cut its traffic, to play a database that goes away and
/// comes back. While cut, it drops every open connection and closes new ones at once.
pub struct CutProxy {
    /// `127.0.0.1:PORT` to connect to instead of the target.
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Starts forwarding `127.0.0.1:<new port>` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (cut, _) = tokio::sync::watch::channel(false);
        let cut_rx = cut.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_rx.clone();
                if *cut_rx.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CutProxy {
            addr,
            cut,
            _task: task,
        }
    }

    /// Drops every connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}
