//! taskflow's REST API on [poem-openapi](https://docs.rs/poem-openapi): wire types, routes,
//! error mapping, bearer auth with Swagger UI's Authorize button, CORS, health checks,
//! configuration from the environment, and a [`serve`] entry point.
//!
//! The API takes a [`taskflow_core::Store`] (`Arc<dyn Store>`): it never touches SQL itself and
//! does not open stores. `DATABASE_URL` names the store; the caller opens it (`taskflow::open`
//! in the facade crate) and hands it to [`serve`].
//!
//! - [`api`]: thin handlers, one `ApiResponse` enum per endpoint.
//! - [`dto`]: `Object` wire types with `From`/`TryFrom` conversions to the domain.
//! - [`error`]: the one place errors (core, auth, and poem's own) become
//!   `{"error": "…", "status_code": n}`.
//! - [`body`]: JSON bodies whose errors name the field, and the 64 KiB limit.
//! - [`config`]: configuration from the environment, [`Config::from_env`].
//! - [`events`]: `GET /api/events`, the audit trail as Server-Sent Events.
//! - `/board`: the task board, one page (HTML, CSS and JavaScript embedded in the binary) that
//!   shows the tasks live and runs the lifecycle actions through the API.
//! - CORS for the origins in `ALLOWED_ORIGINS`; a request from the server's own origin (the
//!   board's writes) is not a cross-origin request and passes.
//! - [`limits`]: the header-read timeout, the idle timeout and the connection cap.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format, off unless asked for.
//!
//! # Example
//!
//! An app over an in-memory store with the dev signer, answering a real request:
//!
//! ```
//! use std::sync::Arc;
//! use taskflow_auth::{DevAuth, TokenClaims};
//! use taskflow_core::TaskFlow;
//! use poem::test::TestClient;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = std::sync::Arc::new(taskflow_core::MemoryStore::new());
//! let dev = DevAuth::ed25519_ephemeral()?;
//! let token = dev.mint(&TokenClaims::new("ada"))?;
//! let app = taskflow_poem::app(TaskFlow::new(store), Arc::new(dev), &[]);
//!
//! let client = TestClient::new(app);
//! let resp = client
//!     .post("/api/tasks")
//!     .header("Authorization", format!("Bearer {token}"))
//!     .body_json(&serde_json::json!({"title": "Ship it"}))
//!     .send()
//!     .await;
//! resp.assert_status(poem::http::StatusCode::CREATED);
//! resp.assert_header("ETag", "\"1\"");
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod auth;
mod board;
pub mod body;
pub mod config;
mod cors;
pub mod dto;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod limits;
pub mod metrics;
mod server;
mod wire;

pub use config::{AuthConfig, Config, DEFAULT_DATABASE_URL, EnvError, MetricsConfig, ServerConfig};
pub use error::{ApiError, ErrorBody};
pub use server::McpJson;
pub use server::{
    AppOptions, ServeError, VERSION, app, app_with, init_logging, openapi_json, serve,
    shutdown_signal,
};
