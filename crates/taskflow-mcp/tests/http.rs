//! MCP over real Streamable HTTP on loopback, with rmcp's own client, against the whole poem
//! app: the tools, their JSON next to the HTTP API's, the refusals, the audit trail, the claim
//! race, and auth on `/mcp`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{TestServer, call, ok, refusal, text};
use serde_json::{Value, json};
use taskflow_core::MemoryStore;
use taskflow_core::testkit::{RaceStore, race};
use taskflow_mcp::{NOTHING_READY, TOOL_NAMES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_and_list_every_tool_with_a_described_schema() {
    let server = TestServer::start().await;
    let client = server.client(&server.token("ada")).await;

    let info = client.peer_info().expect("initialized");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("taskflow")
    );
    assert!(info.capabilities.tools.is_some());
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or_default()
            .contains("claim_next")
    );

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOL_NAMES.into_iter().collect::<BTreeSet<_>>());
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            !description.is_empty() && !description.contains('\n'),
            "{}",
            tool.name
        );
        let schema = &tool.input_schema;
        assert_eq!(schema.get("type"), Some(&json!("object")), "{}", tool.name);
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (field, property) in &properties {
            let about = property.get("description").and_then(Value::as_str);
            assert!(
                about.is_some_and(|d| !d.is_empty()),
                "{}.{field} has no description: {property}",
                tool.name
            );
        }
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let expected: &[&str] = match tool.name.as_ref() {
            "whoami" | "list_tasks" | "ready_tasks" | "claim_next" => &[],
            "create_task" => &["title"],
            "update_progress" => &["task_id", "percent"],
            "add_dependency" => &["task_id", "depends_on"],
            _ => &["task_id"],
        };
        assert_eq!(
            required,
            expected.iter().copied().collect(),
            "{}",
            tool.name
        );
        if tool.name.as_ref() != "whoami" {
            assert!(!properties.is_empty(), "{}", tool.name);
        }
    }
    let create = tools
        .iter()
        .find(|t| t.name == "create_task")
        .expect("create_task");
    assert_eq!(
        create.input_schema["properties"]["priority"]["enum"],
        json!(["low", "medium", "high", "critical"])
    );
    let writes = [
        "update_task",
        "claim_task",
        "heartbeat",
        "update_progress",
        "complete_task",
        "release_task",
        "add_dependency",
    ];
    for name in writes {
        let tool = tools.iter().find(|t| t.name == name).expect("tool");
        assert!(
            tool.input_schema["properties"].get("fence").is_some(),
            "{name} takes fence"
        );
    }
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_over_mcp_answers_with_the_apis_json_and_audits_the_token_subject() {
    let server = TestServer::start().await;
    server.register_agent("agent-1").await;
    let token = server.token("agent-1");
    let client = server.client(&token).await;

    let me = ok(&call(&client, "whoami", json!({})).await);
    assert_eq!(me, server.get(&token, "/api/me").await.1);
    assert_eq!(me["id"], "agent-1");
    assert_eq!(me["actor_type"], "agent");

    let created = ok(&call(
        &client,
        "create_task",
        json!({"title": "Ship the MCP server", "priority": "high", "project_slug": "web"}),
    )
    .await);
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["priority"], "high");
    assert_eq!(
        created,
        server.get(&token, &format!("/api/tasks/{id}")).await.1
    );

    let claimed = ok(&call(
        &client,
        "claim_task",
        json!({"task_id": id, "lease_seconds": 60}),
    )
    .await);
    assert_eq!(claimed["status"], "in_progress");
    assert_eq!(claimed["assigned_to"], "agent-1");
    assert_eq!(claimed["fence"], 1);
    assert!(claimed["lease_expires_at"].is_string());
    assert_eq!(
        claimed,
        server.get(&token, &format!("/api/tasks/{id}")).await.1
    );
    let fence = claimed["fence"].clone();

    let beat = ok(&call(&client, "heartbeat", json!({"task_id": id, "fence": fence})).await);
    assert_eq!(
        beat["version"], claimed["version"],
        "a heartbeat is not a change"
    );

    let progressed = ok(&call(
        &client,
        "update_progress",
        json!({"task_id": id, "percent": 50, "note": "half way", "fence": fence}),
    )
    .await);
    assert_eq!(progressed["progress_percent"], 50);

    let done = ok(&call(
        &client,
        "complete_task",
        json!({"task_id": id, "fence": fence}),
    )
    .await);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress_percent"], 100);
    assert!(done["lease_expires_at"].is_null());

    let history = ok(&call(&client, "task_history", json!({"task_id": id})).await);
    assert_eq!(
        history,
        server
            .get(&token, &format!("/api/tasks/{id}/audit"))
            .await
            .1
    );
    let rows = history.as_array().expect("a list");
    let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["created", "started", "progressed", "completed"]);
    for row in rows {
        assert_eq!(row["actor_id"], "agent-1", "{row}");
        assert_eq!(row["actor_type"], "agent", "{row}");
    }
    assert_eq!(rows[1]["context"]["fence"], 1);
    assert_eq!(rows[2]["context"]["note"], "half way");

    let listed = ok(&call(&client, "list_tasks", json!({"status": "completed"})).await);
    assert_eq!(
        listed,
        server.get(&token, "/api/tasks?status=completed").await.1
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_error_results_with_the_apis_message() {
    let server = TestServer::start().await;
    let token = server.token("ada");
    let client = server.client(&token).await;
    let id = ok(&call(&client, "create_task", json!({"title": "t"})).await)["id"].clone();

    // The lifecycle's refusal, word for word the HTTP API's.
    let mcp = call(&client, "complete_task", json!({"task_id": id})).await;
    let (status, http) = server
        .post(&token, &format!("/api/tasks/{id}/complete"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(refusal(&mcp), http["error"]);
    assert_eq!(refusal(&mcp), "Cannot complete task with status 'pending'");

    let missing = call(&client, "get_task", json!({"task_id": 999})).await;
    assert_eq!(refusal(&missing), "Task not found");
    assert_eq!(
        server.get(&token, "/api/tasks/999").await.1["error"],
        "Task not found"
    );

    // A stale fence loses the lease before the lifecycle is asked.
    ok(&call(&client, "claim_task", json!({"task_id": id})).await);
    let stale = call(
        &client,
        "update_progress",
        json!({"task_id": id, "percent": 5, "fence": 7}),
    )
    .await;
    assert_eq!(refusal(&stale), "Lease lost: task is at fence 1");

    // Someone else's task: the policy's refusal.
    let bob = server.client(&server.token("bob")).await;
    let theirs = call(
        &bob,
        "update_progress",
        json!({"task_id": id, "percent": 5}),
    )
    .await;
    assert_eq!(
        refusal(&theirs),
        "Only the assignee or an admin can report progress on this task"
    );

    // Input core refuses, with the field's name.
    let bad = call(
        &client,
        "update_progress",
        json!({"task_id": id, "percent": 101}),
    )
    .await;
    assert_eq!(refusal(&bad), "percent: must be between 0 and 100");
    let bad = call(
        &client,
        "create_task",
        json!({"title": "t", "priority": "urgent"}),
    )
    .await;
    assert_eq!(
        refusal(&bad),
        "priority: must be one of 'low', 'medium', 'high', 'critical'"
    );
    let bad = call(&client, "list_tasks", json!({"limit": 0})).await;
    assert_eq!(refusal(&bad), "limit: must be between 1 and 100");
    // Arguments that do not fit the schema are an error result too, so the model can retry.
    let bad = call(&client, "claim_task", json!({"id": 1})).await;
    assert!(refusal(&bad).contains("task_id"), "{bad:?}");
    client.cancel().await.expect("close");
    bob.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_dependencies_and_release() {
    let server = TestServer::start().await;
    let token = server.token("ada");
    let client = server.client(&token).await;
    let create = |title: &str, priority: &str| json!({"title": title, "priority": priority});
    let design = ok(&call(&client, "create_task", create("design", "low")).await)["id"].clone();
    let build = ok(&call(&client, "create_task", create("build", "critical")).await)["id"].clone();

    let deps = ok(&call(
        &client,
        "add_dependency",
        json!({"task_id": build, "depends_on": design}),
    )
    .await);
    assert_eq!(
        deps,
        json!({"task_id": build, "depends_on": [design], "dependents": [], "waiting_on": [design]})
    );

    let shown = ok(&call(&client, "get_task", json!({"task_id": build})).await);
    assert_eq!(
        shown["task"],
        server.get(&token, &format!("/api/tasks/{build}")).await.1
    );
    assert_eq!(
        shown["dependencies"],
        server
            .get(&token, &format!("/api/tasks/{build}/dependencies"))
            .await
            .1
    );
    assert_eq!(
        shown["task"]["version"], 2,
        "adding the edge changed the task"
    );

    let ready = ok(&call(&client, "ready_tasks", json!({})).await);
    assert_eq!(ready, server.get(&token, "/api/tasks/ready").await.1);
    assert_eq!(ready.as_array().map(Vec::len), Some(1));
    assert_eq!(ready[0]["id"], design);

    let waiting = call(&client, "claim_task", json!({"task_id": build})).await;
    assert_eq!(
        refusal(&waiting),
        format!("Task is waiting on unfinished dependencies: {design}")
    );

    let claimed = ok(&call(&client, "claim_next", json!({"lease_seconds": 30})).await);
    assert_eq!(claimed["id"], design);
    assert_eq!(claimed["assigned_to"], "ada");
    let nothing = call(&client, "claim_next", json!({})).await;
    assert_eq!(nothing.is_error, Some(false));
    assert_eq!(text(&nothing), NOTHING_READY);

    let released = ok(&call(
        &client,
        "release_task",
        json!({"task_id": design, "fence": claimed["fence"]}),
    )
    .await);
    assert_eq!(released["status"], "pending");
    assert!(released["assigned_to"].is_null());

    let blocked = ok(&call(
        &client,
        "block_task",
        json!({"task_id": design, "reason": "waiting for specs"}),
    )
    .await);
    assert_eq!(blocked["status"], "blocked");
    let unblocked = ok(&call(&client, "unblock_task", json!({"task_id": design})).await);
    assert_eq!(unblocked["status"], "pending");

    let updated = ok(&call(
        &client,
        "update_task",
        json!({"task_id": design, "description": "the spec", "project_slug": "web"}),
    )
    .await);
    assert_eq!(updated["description"], "the spec");
    let cleared = ok(&call(
        &client,
        "update_task",
        json!({"task_id": design, "description": null}),
    )
    .await);
    assert!(cleared["description"].is_null());
    assert_eq!(
        cleared["project_slug"], "web",
        "an absent field is unchanged"
    );

    let reviewed = {
        ok(&call(&client, "claim_task", json!({"task_id": design})).await);
        ok(&call(&client, "submit_for_review", json!({"task_id": design})).await)
    };
    assert_eq!(reviewed["status"], "review");
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_agents_race_to_claim_one_task_and_exactly_one_wins() {
    const AGENTS: usize = 20;
    // The first 20 reads of a task (the 20 claims) wait for each other, so every contender
    // really reads the task pending before any of them writes.
    let (race, store) = race(RaceStore::new(Arc::new(MemoryStore::new())).gate_reads(AGENTS));
    let server = TestServer::start_with(store).await;
    let lead = server.client(&server.token("lead")).await;
    let id = ok(&call(&lead, "create_task", json!({"title": "contested"})).await)["id"].clone();

    let mut clients = Vec::new();
    for n in 0..AGENTS {
        let name = format!("agent-{n}");
        server.register_agent(&name).await;
        clients.push(server.client(&server.token(&name)).await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(AGENTS));
    let mut calls = Vec::new();
    for client in clients {
        let start = start.clone();
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            start.wait().await;
            let result = call(&client, "claim_task", json!({"task_id": id})).await;
            client.cancel().await.expect("close");
            result
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for call in calls {
        let result = call.await.expect("task");
        if result.is_error == Some(true) {
            assert_eq!(text(&result), "Cannot start task with status 'in_progress'");
            losers += 1;
        } else {
            winners.push(ok(&result)["assigned_to"].clone());
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(losers, AGENTS - 1);
    assert_eq!(race.done_writes(), 1);
    assert_eq!(
        race.stale_writes(),
        AGENTS - 1,
        "every loser read the task pending and lost the compare-and-set"
    );

    let history = ok(&call(&lead, "task_history", json!({"task_id": id})).await);
    let started: Vec<&Value> = history
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["action"] == "started")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["actor_id"], winners[0]);
    assert_eq!(started[0]["actor_type"], "agent");
    lead.cancel().await.expect("close");
}

/// A raw `initialize` POST to `/mcp`.
fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "0"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_a_missing_or_bad_token_with_the_apis_401() {
    let server = TestServer::start().await;
    let mcp = |authorization: Option<&str>| {
        let mut req = server
            .http
            .post(server.mcp_url())
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize_body());
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        req.send()
    };
    let api = |authorization: Option<&str>| {
        let mut req = server.http.get(format!("{}/api/tasks", server.base));
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        req.send()
    };

    let expired = server.keys.mint(
        taskflow_auth::Algorithm::EdDSA,
        &server
            .jwks
            .claims("ada")
            .expired_for(std::time::Duration::from_secs(600)),
    );
    let cases = [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Bearer {expired}")),
    ];
    for authorization in cases {
        let at_mcp = mcp(authorization.as_deref()).await.expect("POST /mcp");
        let at_api = api(authorization.as_deref()).await.expect("GET /api/tasks");
        assert_eq!(at_mcp.status(), 401, "{authorization:?}");
        assert_eq!(at_api.status(), 401);
        let challenge = |r: &reqwest::Response| r.headers().get("www-authenticate").cloned();
        assert_eq!(challenge(&at_mcp), challenge(&at_api), "{authorization:?}");
        let body: Value = at_mcp.json().await.expect("JSON");
        assert_eq!(
            body,
            at_api.json::<Value>().await.expect("JSON"),
            "{authorization:?}"
        );
        assert_eq!(body["status_code"], 401);
    }

    // rmcp's own client with a bad token cannot even initialize.
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            server.mcp_url(),
        )
        .auth_header("not-a-jwt");
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
    assert!(rmcp::ServiceExt::serve((), transport).await.is_err());

    // With a good token, the same raw POST initializes, statelessly, in plain JSON.
    let token = server.token("ada");
    let resp = mcp(Some(&format!("Bearer {token}")))
        .await
        .expect("POST /mcp");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("mcp-session-id").is_none());
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.expect("JSON-RPC");
    assert_eq!(body["result"]["serverInfo"]["name"], "taskflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_a_foreign_host_on_a_loopback_server() {
    let server = TestServer::start().await;
    let token = server.token("ada");
    let resp = server
        .http
        .post(server.mcp_url())
        .header("Host", "evil.example")
        .header("Accept", "application/json, text/event-stream")
        .bearer_auth(&token)
        .json(&initialize_body())
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_2026_protocol_discovers_instead_of_initializing() {
    use rmcp::ClientServiceExt;
    use rmcp::model::ProtocolVersion;
    use rmcp::service::ClientLifecycleMode;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let server = TestServer::start().await;
    server.register_agent("agent-9").await;
    let config = StreamableHttpClientTransportConfig::with_uri(server.mcp_url())
        .auth_header(server.token("agent-9"));
    let client = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover");
    let names: BTreeSet<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert_eq!(names.len(), TOOL_NAMES.len());
    let me = ok(&call(&client, "whoami", json!({})).await);
    assert_eq!(me["id"], "agent-9");
    assert_eq!(me["actor_type"], "agent");
    let task = ok(&call(&client, "create_task", json!({"title": "t"})).await);
    let claimed = ok(&call(&client, "claim_next", json!({})).await);
    assert_eq!(claimed["id"], task["id"]);
    assert_eq!(claimed["assigned_to"], "agent-9");
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_with_an_idempotency_key_acts_once() {
    let server = TestServer::start().await;
    let token = server.token("ada");
    let client = server.client(&token).await;
    for title in ["first", "second"] {
        ok(&call(&client, "create_task", json!({"title": title})).await);
    }
    let claim = json!({"lease_seconds": 30, "idempotency_key": "claim-1"});
    let first = ok(&call(&client, "claim_next", claim.clone()).await);
    let again = ok(&call(&client, "claim_next", claim).await);
    assert_eq!(again, first, "the same task and fence, not a second claim");
    let started = server.get(&token, "/api/audit?action=started").await.1;
    assert_eq!(started.as_array().map(Vec::len), Some(1));

    let create = json!({"title": "once", "idempotency_key": "create-1"});
    let made = ok(&call(&client, "create_task", create.clone()).await);
    assert_eq!(ok(&call(&client, "create_task", create).await), made);
    let other = call(
        &client,
        "create_task",
        json!({"title": "other", "idempotency_key": "create-1"}),
    )
    .await;
    assert_eq!(
        refusal(&other),
        "Idempotency-Key: reused with a different request"
    );
    let bad = call(
        &client,
        "create_task",
        json!({"title": "x", "idempotency_key": "two words"}),
    )
    .await;
    assert_eq!(
        refusal(&bad),
        "Idempotency-Key: must be 1 to 255 visible ASCII characters"
    );
    let tasks = server.get(&token, "/api/tasks").await.1;
    assert_eq!(tasks.as_array().map(Vec::len), Some(3));
}
