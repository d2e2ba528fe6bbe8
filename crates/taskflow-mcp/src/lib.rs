//! taskflow over the [Model Context Protocol](https://modelcontextprotocol.io): the task
//! lifecycle as MCP tools, for AI agents, on the official Rust SDK
//! [`rmcp`](https://docs.rs/rmcp).
//!
//! [`TaskflowMcp`] is an MCP server whose tools (`whoami`, `list_tasks`, `ready_tasks`,
//! `get_task`, `create_task`, `update_task`, `claim_next`, `claim_task`, `heartbeat`,
//! `update_progress`, `submit_for_review`, `complete_task`, `block_task`, `unblock_task`,
//! `release_task`, `add_dependency`, `task_history`) each build one [`taskflow_core::Command`]
//! and run it with [`TaskFlow::execute`](taskflow_core::TaskFlow::execute): the rules, the
//! audit rows and the refusals are core's, written once.
//!
//! - A tool's text result is the HTTP API's JSON for the same operation (a task, a list of
//!   tasks, an audit list, …). This crate does not know that JSON: a [`Render`] supplied by
//!   the HTTP crate (`taskflow_poem::McpJson`, built on its DTOs) writes it, so both
//!   front-ends answer with the same bytes.
//! - A refusal (`Task not found`, `Cannot start task with status 'in_progress'`, `Lease lost:
//!   task is at fence 3`, …) is a tool result with `isError: true` and the HTTP API's message.
//! - Who acts is a [`Caller`]: fixed for a local stdio server ([`Caller::local`]), or taken
//!   from each HTTP request, where the HTTP server's bearer-token check put it
//!   ([`http::service`]).
//!
//! Two transports:
//!
//! - **stdio** ([`TaskflowMcp::serve_stdio`]): one local caller, for an agent that launches
//!   the server as a child process.
//! - **Streamable HTTP** ([`http::service`]): a tower service that `taskflow-poem` mounts at
//!   `/mcp`, behind the same bearer auth as `/api`. It runs stateless (every POST stands on its
//!   own, answered with plain JSON), so several server processes can share one database.
//!
//! # Example
//!
//! An in-process client and server over a pipe (stdio works the same way over the process's
//! standard streams):
//!
//! ```
//! use std::sync::Arc;
//! use rmcp::ServiceExt;
//! use rmcp::model::CallToolRequestParams;
//! use taskflow_core::{MemoryStore, TaskFlow};
//! use taskflow_mcp::{Caller, TaskflowMcp};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let flow = TaskFlow::new(Arc::new(MemoryStore::new()));
//! let server = TaskflowMcp::new(flow, Arc::new(taskflow_poem::McpJson))
//!     .with_caller(Caller::local("agent-7"));
//!
//! let (server_end, client_end) = tokio::io::duplex(64 * 1024);
//! tokio::spawn(async move {
//!     if let Ok(running) = server.serve(server_end).await {
//!         let _ = running.waiting().await;
//!     }
//! });
//! let client = ().serve(client_end).await?;
//!
//! let args = serde_json::json!({"title": "Write the docs"});
//! let created = client
//!     .call_tool(CallToolRequestParams::new("create_task").with_arguments(
//!         args.as_object().cloned().unwrap_or_default(),
//!     ))
//!     .await?;
//! let text = &created.content[0].as_text().ok_or("not text")?.text;
//! let task: serde_json::Value = serde_json::from_str(text)?;
//! assert_eq!(task["status"], "pending");
//!
//! let refused = client
//!     .call_tool(CallToolRequestParams::new("complete_task").with_arguments(
//!         serde_json::json!({"task_id": task["id"]}).as_object().cloned().unwrap_or_default(),
//!     ))
//!     .await?;
//! assert_eq!(refused.is_error, Some(true));
//! assert_eq!(
//!     refused.content[0].as_text().ok_or("not text")?.text,
//!     "Cannot complete task with status 'pending'"
//! );
//! client.cancel().await?;
//! # Ok(())
//! # }
//! ```

mod caller;
pub mod http;
pub mod params;
mod render;
mod server;

pub use caller::Caller;
pub use render::Render;
pub use server::{NOTHING_READY, TOOL_NAMES, TaskflowMcp};
