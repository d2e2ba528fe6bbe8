//! A real taskflow server for the MCP tests: the whole poem app (`/api` and `/mcp`) over a
//! `MemoryStore`, bound to `127.0.0.1:0`, trusting a real loopback JWKS
//! (`taskflow_auth::test_support`); and rmcp's own client over Streamable HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::{Acceptor, Listener, TcpListener};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use taskflow_auth::Algorithm;
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_core::model::{Identity, WorkerType};
use taskflow_core::{DynStore, MemoryStore, TaskFlow};

/// An MCP client session.
pub type Client = RunningService<RoleClient, ()>;

/// A running server and what it takes to call it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The JWKS the server trusts.
    pub jwks: JwksServer,
    /// Keys whose public halves the JWKS serves.
    pub keys: TestKeys,
    /// The service behind the server, for direct setup and checks.
    pub flow: TaskFlow,
    /// A plain HTTP client, for `/api` and raw `/mcp` requests.
    pub http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts the app on a fresh `MemoryStore`.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(MemoryStore::new())).await
    }

    /// Starts the app on `store`.
    pub async fn start_with(store: DynStore) -> Self {
        let keys = TestKeys::generate();
        let jwks = JwksServer::start(keys.jwks()).await;
        let verifier = Arc::new(jwks.verifier_builder().build().expect("verifier"));
        let flow = TaskFlow::new(store);
        let app = taskflow_poem::app(flow.clone(), verifier, &[]);
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
            _server: server,
        }
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.keys.mint(
            Algorithm::EdDSA,
            &self.jwks.claims(sub).email(format!("{sub}@example.com")),
        )
    }

    /// A valid token for `sub` with the `admin` role.
    pub fn admin_token(&self, sub: &str) -> String {
        self.keys
            .mint(Algorithm::EdDSA, &self.jwks.claims(sub).role("admin"))
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Registers `id` as an agent in the worker registry.
    pub async fn register_agent(&self, id: &str) {
        self.flow
            .put_worker(&Identity::admin("lead"), id, WorkerType::Agent, None)
            .await
            .expect("register agent");
    }

    /// An rmcp client, initialized over Streamable HTTP with `token` as its bearer token.
    pub async fn client(&self, token: &str) -> Client {
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.mcp_url()).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP initialize")
    }

    /// `GET {base}{path}` as `token`, its status and JSON body.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST {base}{path}` as `token` with no body, its status and JSON body.
    pub async fn post(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Calls tool `name` with `args` (a JSON object). Protocol errors fail the test; refusals come
/// back as results with `is_error`.
pub async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().expect("arguments are an object");
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("calling {name}: {e}"))
}

/// The one text content of a result.
pub fn text(result: &CallToolResult) -> &str {
    assert_eq!(result.content.len(), 1, "{result:?}");
    &result.content[0].as_text().expect("text content").text
}

/// The JSON of a successful result.
pub fn ok(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    serde_json::from_str(text(result)).expect("JSON text")
}

/// The message of a refusal.
pub fn refusal(result: &CallToolResult) -> &str {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    text(result)
}
