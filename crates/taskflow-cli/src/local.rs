//! Local mode: the core over a SQLite file, offline. A command runs with
//! [`TaskFlow::execute`] (or [`TaskFlow::execute_once`] with an idempotency key), and its
//! [`Outcome`] is rendered with the HTTP API's own DTOs, so the JSON is the server's.

use std::path::Path;
use std::sync::Arc;

use poem_openapi::types::ToJSON;
use serde_json::Value;
use taskflow::SqliteStore;
use taskflow_auth::{DEFAULT_ROLE, Principal};
use taskflow_core::idempotency::{IdempotencyKey, Idempotent};
use taskflow_core::model::Identity;
use taskflow_core::{Command, DynStore, Outcome, TaskFlow};
use taskflow_poem::auth::{ADMIN_ROLE, BearerAuth};
use taskflow_poem::dto::{AuditDto, DependenciesDto, MeDto, TaskDto, WorkerDto};

use crate::failure::Failure;
use crate::reply::Reply;

/// The core over a local SQLite file, acting as one actor.
pub struct Local {
    flow: TaskFlow,
    store: DynStore,
    principal: Principal,
    who: Identity,
    key: Option<String>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("actor", &self.who.id)
            .finish_non_exhaustive()
    }
}

/// Who a local command acts as: `actor`, with the admin role if `admin`. The identity is derived
/// the way the server derives it from a token's claims, so the admin rule lives in one place.
pub fn principal(actor: &str, admin: bool) -> (Principal, Identity) {
    let principal = Principal {
        id: actor.to_owned(),
        email: None,
        role: if admin { ADMIN_ROLE } else { DEFAULT_ROLE }.to_owned(),
    };
    let identity = BearerAuth(principal.clone()).identity();
    (principal, identity)
}

/// Opens (creating and migrating if needed) the SQLite file at `path`.
pub async fn open_store(path: &Path) -> Result<Arc<SqliteStore>, Failure> {
    SqliteStore::open(path)
        .await
        .map(Arc::new)
        .map_err(|e| Failure::other(format!("cannot open '{}': {e}", path.display())))
}

impl Local {
    /// Opens `path` to act as `actor`. `key`, if given, names the write (run with
    /// `execute_once`).
    pub async fn open(
        path: &Path,
        actor: &str,
        admin: bool,
        key: Option<String>,
    ) -> Result<Self, Failure> {
        let store: DynStore = open_store(path).await?;
        let (principal, who) = principal(actor, admin);
        Ok(Local {
            flow: TaskFlow::new(store.clone()),
            store,
            principal,
            who,
            key,
        })
    }

    /// Reclaims leases that ran out, as a server's sweeper would: with no server running, the
    /// CLI is what keeps a dead holder's task from staying claimed forever.
    pub async fn sweep(&self) {
        if let Err(err) = self.flow.sweep_expired_leases().await {
            eprintln!("warning: reclaiming expired leases failed: {err}");
        }
    }

    /// Runs `command` through the core.
    pub async fn run(&self, command: Command) -> Result<Reply, Failure> {
        let outcome = match &self.key {
            Some(key) if command.is_write() => {
                let key = IdempotencyKey::new(key.clone())?;
                let idempotent = Idempotent::for_command(key, &command)?;
                self.flow
                    .execute_once(&self.who, &idempotent, command)
                    .await
                    .value?
            }
            _ => self.flow.execute(&self.who, command).await?,
        };
        self.reply(outcome)
    }

    /// An outcome in the API's JSON.
    fn reply(&self, outcome: Outcome) -> Result<Reply, Failure> {
        Ok(match outcome {
            Outcome::Task(task) => Reply::Task(json(TaskDto::from(task))),
            Outcome::Tasks(page) => Reply::Tasks {
                items: page
                    .items
                    .into_iter()
                    .map(TaskDto::from)
                    .map(json)
                    .collect(),
                total: page.total,
            },
            Outcome::Deleted => Reply::Done,
            Outcome::Claimed(Some(task)) => Reply::Task(json(TaskDto::from(task))),
            Outcome::Claimed(None) => Reply::NothingReady,
            Outcome::Dependencies(view) => Reply::Dependencies(json(DependenciesDto::from(view))),
            Outcome::Audit(rows) => Reply::Audit {
                items: rows.into_iter().map(AuditDto::from).map(json).collect(),
                total: None,
            },
            Outcome::AuditPage(page) => Reply::Audit {
                items: page
                    .items
                    .into_iter()
                    .map(AuditDto::from)
                    .map(json)
                    .collect(),
                total: Some(page.total),
            },
            Outcome::Worker(worker) => Reply::Worker(json(WorkerDto::from(worker))),
            Outcome::Workers(workers) => {
                Reply::Workers(workers.into_iter().map(WorkerDto::from).map(json).collect())
            }
            Outcome::Actor(actor) => Reply::Me(json(MeDto::new(&self.principal, &actor))),
            other => {
                return Err(Failure::other(format!(
                    "the core answered an outcome this CLI does not know: {other:?}"
                )));
            }
        })
    }

    /// Closes the store (checkpointing SQLite's write-ahead log).
    pub async fn close(self) {
        if let Err(err) = self.store.close().await {
            eprintln!("warning: closing the database failed: {err}");
        }
    }
}

/// A DTO as the JSON the server sends for it.
fn json(dto: impl ToJSON) -> Value {
    dto.to_json().unwrap_or_default()
}
