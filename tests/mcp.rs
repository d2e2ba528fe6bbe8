//! Agents over MCP (SPEC §10), end to end with rmcp's own client: Streamable HTTP at `/mcp`
//! of a real server on loopback (SQLite, and Postgres where available), and stdio against
//! the `mcp_stdio` example as a child process on a temp SQLite file.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use taskflow::{ActorType, AuditAction, Identity, SqliteStore, Store, TaskFlow, WorkerType};
use taskflow_mcp::TOOL_NAMES;

use common::{Backend, TestServer, error_of, json_of};

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

type Client = RunningService<RoleClient, ()>;

/// An rmcp client initialized over Streamable HTTP at the server's `/mcp`, as `sub`.
async fn http_client(s: &TestServer, sub: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(s.url("/mcp"))
        .auth_header(s.token(sub, "user"));
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP initialize over HTTP")
}

async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().expect("arguments are an object");
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("calling {name}: {e}"))
}

fn text(result: &CallToolResult) -> &str {
    assert_eq!(result.content.len(), 1, "{result:?}");
    &result.content[0].as_text().expect("text content").text
}

/// The JSON of a successful result.
fn ok(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    serde_json::from_str(text(result)).expect("JSON text")
}

/// Lists the tools and checks every name is there, each with an object input schema.
async fn assert_tools(client: &Client) {
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOL_NAMES.into_iter().collect::<BTreeSet<_>>());
    for tool in &tools {
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
    }
}

/// create → claim → progress → complete as `actor`, then the audit trail: every row by
/// `actor`, an agent. Returns the task id.
async fn lifecycle(client: &Client, actor: &str) -> i64 {
    let created = ok(&call(
        client,
        "create_task",
        json!({"title": "Ship it", "priority": "high"}),
    )
    .await);
    let id = created["id"].as_i64().expect("id");
    let claimed = ok(&call(
        client,
        "claim_task",
        json!({"task_id": id, "lease_seconds": 60}),
    )
    .await);
    assert_eq!(claimed["status"], "in_progress");
    assert_eq!(claimed["assigned_to"], actor);
    let fence = claimed["fence"].clone();
    let progressed = ok(&call(
        client,
        "update_progress",
        json!({"task_id": id, "percent": 40, "note": "tests pass", "fence": fence}),
    )
    .await);
    assert_eq!(progressed["progress_percent"], 40);
    let done = ok(&call(
        client,
        "complete_task",
        json!({"task_id": id, "fence": fence}),
    )
    .await);
    assert_eq!(done["status"], "completed");

    let history = ok(&call(client, "task_history", json!({"task_id": id})).await);
    let rows = history.as_array().expect("audit rows");
    let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["created", "started", "progressed", "completed"]);
    for row in rows {
        assert_eq!(row["actor_id"], actor, "{row}");
        assert_eq!(row["actor_type"], "agent", "{row}");
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_runs_the_lifecycle_as_the_tokens_subject() {
    let s = TestServer::start().await;
    s.flow
        .put_worker(&Identity::admin("lead"), "agent-1", WorkerType::Agent, None)
        .await
        .unwrap();
    let client = http_client(&s, "agent-1").await;
    assert_eq!(
        client
            .peer_info()
            .and_then(|i| i.server_info.clone())
            .map(|i| i.name),
        Some("taskflow".to_owned())
    );
    assert_tools(&client).await;

    let id = lifecycle(&client, "agent-1").await;

    // The same JSON as the HTTP API, byte for byte once parsed.
    let task = ok(&call(&client, "get_task", json!({"task_id": id})).await);
    let path = format!("/api/tasks/{id}");
    let http = json_of(
        s.as_user(reqwest::Method::GET, &path, "agent-1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(task["task"], http);
    let audit = ok(&call(&client, "task_history", json!({"task_id": id})).await);
    let path = format!("/api/tasks/{id}/audit");
    let http = json_of(
        s.as_user(reqwest::Method::GET, &path, "agent-1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(audit, http);

    // A refusal carries the HTTP API's message.
    let refused = call(&client, "claim_task", json!({"task_id": id})).await;
    assert_eq!(refused.is_error, Some(true));
    let path = format!("/api/tasks/{id}/start");
    let http = error_of(
        s.as_user(reqwest::Method::POST, &path, "agent-1")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(text(&refused), http);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_over_mcp_have_exactly_one_winner() {
    const AGENTS: usize = 20;
    for backend in BACKENDS {
        let Some(s) = TestServer::start_on(backend).await else {
            continue;
        };
        let lead = http_client(&s, "lead").await;
        let id = ok(&call(&lead, "create_task", json!({"title": "contested"})).await)["id"].clone();
        let mut clients = Vec::new();
        for n in 0..AGENTS {
            clients.push(http_client(&s, &format!("agent-{n}")).await);
        }
        let start = Arc::new(tokio::sync::Barrier::new(AGENTS));
        let calls: Vec<_> = clients
            .into_iter()
            .map(|client| {
                let (start, id) = (start.clone(), id.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let result = call(&client, "claim_task", json!({"task_id": id})).await;
                    client.cancel().await.unwrap();
                    result
                })
            })
            .collect();
        let mut winners = 0;
        for call in calls {
            let result = call.await.unwrap();
            if result.is_error == Some(true) {
                assert_eq!(
                    text(&result),
                    "Cannot start task with status 'in_progress'",
                    "{backend:?}"
                );
            } else {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{backend:?}");
        let history = ok(&call(&lead, "task_history", json!({"task_id": id})).await);
        let started = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "started")
            .count();
        assert_eq!(started, 1, "{backend:?}");
        lead.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_without_a_token_or_with_a_bad_one_is_refused_with_401_like_the_api() {
    let s = TestServer::start().await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}
        }
    });
    for authorization in [None, Some("Bearer not-a-jwt")] {
        let mut mcp = s
            .http
            .post(s.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        let mut api = s.http.get(s.url("/api/tasks"));
        if let Some(value) = authorization {
            mcp = mcp.header("Authorization", value);
            api = api.header("Authorization", value);
        }
        let (mcp, api) = (mcp.send().await.unwrap(), api.send().await.unwrap());
        assert_eq!(
            mcp.headers().get("www-authenticate"),
            api.headers().get("www-authenticate")
        );
        assert_eq!(
            error_of(mcp, 401).await,
            error_of(api, 401).await,
            "{authorization:?}"
        );
    }
}

/// The `mcp_stdio` example's binary, built if need be.
fn stdio_example() -> PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "mcp_stdio"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build --example mcp_stdio");
    assert!(status.success());
    // target/debug/deps/mcp-HASH → target/debug/examples/mcp_stdio
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    dir.join("examples")
        .join(format!("mcp_stdio{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_against_the_example_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agents.db");
    {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let flow = TaskFlow::new(store.clone());
        flow.put_worker(&Identity::admin("lead"), "agent-7", WorkerType::Agent, None)
            .await
            .unwrap();
        store.close().await.unwrap();
    }

    let mut command = tokio::process::Command::new(stdio_example());
    command
        .env("TASKFLOW_DB", &db)
        .env("TASKFLOW_ACTOR", "agent-7");
    let client =
        ().serve(TokioChildProcess::new(command).unwrap())
            .await
            .expect("MCP initialize over stdio");
    assert_tools(&client).await;
    let me = ok(&call(&client, "whoami", json!({})).await);
    assert_eq!(
        me,
        json!({"id": "agent-7", "email": null, "role": "user", "actor_type": "agent"})
    );
    let id = lifecycle(&client, "agent-7").await;
    client.cancel().await.unwrap();

    // The rows are in the file, written by the child.
    let store = Arc::new(SqliteStore::open(&db).await.unwrap());
    let trail = TaskFlow::new(store.clone())
        .task_audit(&Identity::user("x"), id)
        .await
        .unwrap();
    assert_eq!(trail[1].action, AuditAction::Started);
    assert_eq!(trail[1].actor_id, "agent-7");
    assert_eq!(trail[1].actor_type, ActorType::Agent);
    store.close().await.unwrap();
}
