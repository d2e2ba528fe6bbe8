//! The stdio mode (one fixed local caller) over an in-process pipe: the same byte stream a
//! child process's stdin and stdout carry. The child-process test over SQLite is the root
//! crate's `tests/mcp.rs`.

mod common;

use std::sync::Arc;

use common::{Client, call, ok, refusal};
use rmcp::ServiceExt;
use serde_json::json;
use taskflow_core::model::{Identity, WorkerType};
use taskflow_core::{MemoryStore, TaskFlow};
use taskflow_mcp::{Caller, TaskflowMcp};

/// Serves `server` on one end of a pipe and returns an initialized client on the other.
async fn connect(server: TaskflowMcp) -> Client {
    let (server_end, client_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("server initialize");
        let _ = running.waiting().await;
    });
    ().serve(client_end).await.expect("client initialize")
}

#[tokio::test]
async fn a_local_caller_acts_on_every_call_and_is_audited() {
    let flow = TaskFlow::new(Arc::new(MemoryStore::new()));
    flow.put_worker(&Identity::admin("lead"), "bot", WorkerType::Agent, None)
        .await
        .unwrap();
    let server = TaskflowMcp::new(flow.clone(), Arc::new(taskflow_poem::McpJson))
        .with_caller(Caller::local("bot"));
    let client = connect(server).await;

    let me = ok(&call(&client, "whoami", json!({})).await);
    assert_eq!(
        me,
        json!({"id": "bot", "email": null, "role": "user", "actor_type": "agent"})
    );

    let id = ok(&call(&client, "create_task", json!({"title": "local work"})).await)["id"].clone();
    let claimed = ok(&call(&client, "claim_next", json!({})).await);
    assert_eq!(claimed["id"], id);
    assert_eq!(claimed["assigned_to"], "bot");
    let fence = claimed["fence"].clone();
    ok(&call(
        &client,
        "update_progress",
        json!({"task_id": id, "percent": 80, "fence": fence}),
    )
    .await);
    let done = ok(&call(
        &client,
        "complete_task",
        json!({"task_id": id, "fence": fence}),
    )
    .await);
    assert_eq!(done["status"], "completed");

    let trail = flow.task_audit(&Identity::user("anyone"), 1).await.unwrap();
    assert_eq!(trail.len(), 4);
    assert!(trail.iter().all(|row| row.actor_id == "bot"));
    assert!(trail.iter().all(|row| row.actor_type.as_str() == "agent"));
    assert_eq!(trail[1].context.as_ref().unwrap()["claimed"], true);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn without_a_caller_every_tool_is_refused() {
    let flow = TaskFlow::new(Arc::new(MemoryStore::new()));
    let client = connect(TaskflowMcp::new(flow, Arc::new(taskflow_poem::McpJson))).await;
    let refused = call(&client, "create_task", json!({"title": "t"})).await;
    assert_eq!(refusal(&refused), "Not authenticated");
    let refused = call(&client, "get_task", json!({"task_id": 1})).await;
    assert_eq!(refusal(&refused), "Not authenticated");
    client.cancel().await.unwrap();
}
