//! [`Render`]: the JSON a tool answers with, supplied by whoever owns the wire shapes.

use serde_json::Value;
use taskflow_auth::Principal;
use taskflow_core::Error;
use taskflow_core::model::{Actor, AuditEntry, DependencyView, Task};

/// Writes tool results in the HTTP API's shapes, so that an agent reading MCP and a client
/// reading `/api` see the same JSON, and a refusal carries the same message.
///
/// The shapes belong to the HTTP crate (its DTOs), which depends on this one to mount `/mcp`;
/// so it implements this trait (`taskflow_poem::McpJson`) rather than this crate depending
/// on it. A tool's text result is one of these values as compact JSON; a list is a JSON array
/// of them, as the HTTP API answers.
pub trait Render: Send + Sync + 'static {
    /// A task, as `GET /api/tasks/{id}` answers.
    fn task(&self, task: Task) -> Value;

    /// One audit row, as an element of `GET /api/tasks/{id}/audit`.
    fn audit(&self, entry: AuditEntry) -> Value;

    /// A task's dependencies, as `GET /api/tasks/{id}/dependencies` answers.
    fn dependencies(&self, view: DependencyView) -> Value;

    /// The caller, as `GET /api/me` answers: `principal`'s claims and `actor`'s type from the
    /// worker registry.
    fn me(&self, principal: &Principal, actor: &Actor) -> Value;

    /// The message the HTTP API sends for `error` (its `error` field): the core error's
    /// `Display` for refusals, and the API's generic text for store failures, which it logs.
    fn error(&self, error: Error) -> String;
}
