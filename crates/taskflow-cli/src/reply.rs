//! [`Reply`]: what an operation answered, as the REST API's JSON, whichever mode ran it.

use serde_json::Value;

/// An operation's answer, in the HTTP API's JSON shapes. Remote mode gets these values from the
/// server's bodies; local mode makes them with the server's own DTOs (`taskflow_poem::dto`).
/// Everything printed comes from here, so both modes print the same.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// One task (`TaskDto`).
    Task(Value),
    /// A page of tasks, and how many match in all (`X-Total-Count`).
    Tasks {
        /// The tasks.
        items: Vec<Value>,
        /// Matches before paging.
        total: u64,
    },
    /// Audit rows (`AuditDto`), oldest first; a search also says how many match in all.
    Audit {
        /// The rows.
        items: Vec<Value>,
        /// Matches before paging, for a search.
        total: Option<u64>,
    },
    /// A task's dependencies (`DependenciesDto`).
    Dependencies(Value),
    /// One worker (`WorkerDto`).
    Worker(Value),
    /// Every worker.
    Workers(Vec<Value>),
    /// The caller (`MeDto`).
    Me(Value),
    /// Done, with no body (HTTP 204): a deleted task, a removed dependency.
    Done,
    /// Claim-next found nothing ready (HTTP 204).
    NothingReady,
}

impl Reply {
    /// The body the HTTP API answers with: what `--json` prints. `None` for a 204.
    pub fn json(&self) -> Option<Value> {
        match self {
            Reply::Task(v) | Reply::Dependencies(v) | Reply::Worker(v) | Reply::Me(v) => {
                Some(v.clone())
            }
            Reply::Tasks { items, .. } | Reply::Audit { items, .. } | Reply::Workers(items) => {
                Some(Value::Array(items.clone()))
            }
            Reply::Done | Reply::NothingReady => None,
        }
    }
}
