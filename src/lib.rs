//! # taskflow
//!
//! Task management shared by humans and AI agents. One lifecycle, one audit trail, and no two
//! actors can ever claim the same task, whether they come through a web UI, a CLI, or an agent
//! over MCP.
//!
//! This crate is a thin facade: it re-exports [`taskflow_core`] (the domain, the lifecycle and
//! the [`TaskFlow`] service) and the stores, each behind a feature, and adds one thing every
//! front-end needs: [`open`], a store from a database URL.
//!
//! # Features
//!
//! - `sqlite` (default): [`SqliteStore`], an embedded store on bundled SQLite. Works offline on a
//!   file or in memory.
//! - `postgres`: `PgStore`, a store on PostgreSQL through sqlx, for several server processes
//!   sharing one database. Connect with `PgStore::connect("postgres://…")` or [`open`].
//! - `memory`: `MemoryStore` (from `taskflow-core`), a store in process memory for tests.
//! - `auth`: [`auth`], bearer-token verification: JWKS (Better Auth out of the box), static
//!   keys, and a dev signer that can mint tokens.
//! - `server` (implies `auth`): [`server`], the REST API on poem-openapi with Swagger UI, and
//!   `serve`, the ready-made server (`cargo run --release --example server`), which runs on
//!   whatever store [`open`] gives it.
//!
//! # Embedding
//!
//! ```
//! use std::sync::Arc;
//! use taskflow::{
//!     ActorType, AuditAction, Identity, NewTask, SqliteStore, TaskFlow, TaskStatus, WorkerType,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> taskflow::Result<()> {
//! # let dir = tempfile::tempdir().map_err(taskflow::Error::backend)?;
//! # let path = dir.path().join("tasks.db");
//! let flow = TaskFlow::new(Arc::new(SqliteStore::open(&path).await?));
//!
//! let lead = Identity::admin("lead");
//! let agent = Identity::user("agent-7");
//! flow.put_worker(&lead, &agent.id, WorkerType::Agent, Some("Agent 7".into())).await?;
//!
//! let task = flow.create_task(&lead, NewTask::titled("Triage the backlog")).await?;
//! let task = flow.start(&agent, task.id, None).await?; // the agent claims it
//! assert_eq!(task.status, TaskStatus::InProgress);
//!
//! // A second claim is refused by the lifecycle, not by luck.
//! let err = flow.start(&lead, task.id, None).await.unwrap_err();
//! assert_eq!(err.to_string(), "Cannot start task with status 'in_progress'");
//!
//! let trail = flow.task_audit(&lead, task.id).await?;
//! assert_eq!(trail[1].action, AuditAction::Started);
//! assert_eq!(trail[1].actor_type, ActorType::Agent);
//! # Ok(())
//! # }
//! ```

mod open;

pub use open::open;
pub use taskflow_core::lifecycle::{Action, Move};
pub use taskflow_core::model::{
    Actor, ActorType, AuditAction, AuditEntry, AuditFilter, DependencyView, Expect, Identity,
    NewTask, Page, Paging, Precondition, Priority, ReadyFilter, Task, TaskFilter, TaskPatch,
    TaskStatus, Worker, WorkerType,
};
pub use taskflow_core::{
    Command, DynStore, Entity, Error, Outcome, Permission, Result, Store, TaskFlow,
};

/// The domain crate, for everything the root does not re-export.
pub use taskflow_core as core;

#[cfg(feature = "sqlite")]
pub use taskflow_store_sqlite::{SqliteOptions, SqliteStore};

#[cfg(feature = "postgres")]
pub use taskflow_store_pg::PgStore;

/// Bearer-token verification (feature `auth`).
#[cfg(feature = "auth")]
pub use taskflow_auth as auth;

/// The REST API and server (feature `server`).
#[cfg(feature = "server")]
pub use taskflow_poem as server;

/// The README's code blocks, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
