//! What the CLI tests share: the binary with a clean environment, a local SQLite file, and a
//! real server (the REST API over a SQLite file, with auth through a loopback JWKS) bound to
//! `127.0.0.1:0` on a runtime of its own, so that tests can run the CLI as a child process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use assert_cmd::Command;
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;
use taskflow::SqliteStore;
use taskflow_auth::test_support::{JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, Verifier};
use taskflow_core::TaskFlow;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

/// The variables the CLI (and `serve`) read: cleared so that the caller's shell cannot leak in.
const VARS: &[&str] = &[
    "TASKFLOW_DB",
    "TASKFLOW_URL",
    "TASKFLOW_TOKEN",
    "TASKFLOW_ACTOR",
    "TASKFLOW_ADMIN",
    "DATABASE_URL",
    "JWKS_URL",
    "AUTH_SERVER_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "NO_COLOR",
];

/// The CLI with none of its variables set.
pub fn cli() -> Command {
    let mut cmd = Command::new(BIN);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.timeout(Duration::from_secs(120));
    cmd
}

/// What a run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Stderr as the `{"error", "status_code"}` object, checked to have exactly those keys.
    pub fn error(&self) -> (String, u64) {
        let body: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {self:?}"));
        let obj = body.as_object().expect("an object");
        assert_eq!(obj.len(), 2, "only error and status_code: {body}");
        (
            body["error"].as_str().expect("a message").to_owned(),
            body["status_code"].as_u64().expect("a status"),
        )
    }
}

/// Runs `cmd` with `args`.
pub fn run(mut cmd: Command, args: &[&str]) -> Run {
    let out = cmd.args(args).output().expect("the CLI runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` with `args` and asserts it succeeded.
pub fn ok(cmd: Command, args: &[&str]) -> Run {
    let run = run(cmd, args);
    assert_eq!(run.code, 0, "{args:?} failed: {run:?}");
    run
}

/// Runs `cmd` with `args` and `--json`, asserts success, and returns the JSON it printed.
pub fn json(cmd: Command, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    ok(cmd, &args).json()
}

/// The `id` of a task.
pub fn id_of(task: &Value) -> String {
    task["id"].as_i64().expect("an id").to_string()
}

/// A fresh SQLite file for local mode.
pub struct LocalDb {
    _dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
}

impl LocalDb {
    /// A file in a new temp dir (created by the first command).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("tasks.db");
        LocalDb { _dir: dir, path }
    }

    /// The CLI on this file, acting as `actor` (global flags before the command).
    pub fn as_(&self, actor: &str) -> Command {
        let mut cmd = cli();
        cmd.arg("--db").arg(&self.path).arg("--as").arg(actor);
        cmd
    }

    /// The CLI on this file, as `actor` with the admin role, set through the environment.
    pub fn as_admin(&self, actor: &str) -> Command {
        let mut cmd = cli();
        cmd.env("TASKFLOW_DB", &self.path)
            .env("TASKFLOW_ACTOR", actor)
            .env("TASKFLOW_ADMIN", "true");
        cmd
    }
}

/// A running server: the REST API on a SQLite file, trusting a loopback JWKS.
pub struct Server {
    rt: tokio::runtime::Runtime,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    jwks: JwksServer,
    key: TestKey,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    /// One server per test binary, started on first use. Tests share it, so each works on
    /// tasks it created (and claims within a project of its own).
    pub fn shared() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(Server::start)
    }

    /// Starts a server on a fresh SQLite file.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let key = TestKey::generate(Algorithm::EdDSA, "cli-test");
        let (base, jwks) = rt.block_on(async {
            let store = SqliteStore::open(dir.path().join("server.db"))
                .await
                .expect("open the store");
            let jwks = JwksServer::start(jwks_of([&key])).await;
            let verifier: Arc<dyn Verifier> =
                Arc::new(jwks.verifier_builder().build().expect("a verifier"));
            let app = taskflow_poem::app(TaskFlow::new(Arc::new(store)), verifier, &[]);
            let acceptor = TcpListener::bind("127.0.0.1:0")
                .into_acceptor()
                .await
                .expect("bind 127.0.0.1:0");
            let addr: SocketAddr = *acceptor.local_addr()[0]
                .as_socket_addr()
                .expect("a socket address");
            tokio::spawn(async move {
                poem::Server::new_with_acceptor(acceptor)
                    .run(app)
                    .await
                    .expect("the server runs");
            });
            (format!("http://{addr}"), jwks)
        });
        Server {
            rt,
            base,
            jwks,
            key,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A token for `sub` with `role`, as Better Auth would issue.
    pub fn token(&self, sub: &str, role: &str) -> String {
        self.key.mint(&self.jwks.claims(sub).role(role))
    }

    /// The CLI on this server as `sub` (role `user`), flags before the command.
    pub fn as_(&self, sub: &str) -> Command {
        self.with_token(&self.token(sub, "user"))
    }

    /// The CLI on this server as an admin, configured through the environment.
    pub fn as_admin(&self) -> Command {
        let mut cmd = cli();
        cmd.env("TASKFLOW_URL", &self.base)
            .env("TASKFLOW_TOKEN", self.token("boss", "admin"));
        cmd
    }

    /// The CLI on this server with `token`.
    pub fn with_token(&self, token: &str) -> Command {
        let mut cmd = cli();
        cmd.arg("--server")
            .arg(&self.base)
            .arg("--token")
            .arg(token);
        cmd
    }

    /// `GET path` as `sub`: the status and the JSON body.
    pub fn get(&self, path: &str, sub: &str) -> (u16, Value) {
        let token = self.token(sub, "user");
        self.rt.block_on(async {
            let resp = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("the server answers");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("a body");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// `GET path` as `sub`, asserting 200.
    pub fn get_ok(&self, path: &str, sub: &str) -> Value {
        let (status, body) = self.get(path, sub);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}
