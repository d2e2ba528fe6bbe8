//! The domain of [taskflow](https://example.invalid/taskflow): task management shared by humans
//! and AI agents.
//!
//! This crate owns everything that is not storage or transport:
//!
//! - [`model`]: tasks, patches, filters, paging, preconditions, audit rows, workers, and the
//!   acting identity;
//! - [`validate`]: input rules, each error naming its field;
//! - [`lifecycle`]: the pure state machine that is the only place a status is compared, and the
//!   default policy of who may do what;
//! - [`TaskFlow`]: the embeddable service; its methods are taskflow's operations, and
//!   [`Command`] lists them as data for front-ends that dispatch by name
//!   ([`TaskFlow::execute`]);
//! - [`Store`]: the persistence trait that backends (`taskflow-store-sqlite`,
//!   `taskflow-store-pg`, and [`MemoryStore`] here) implement, used as [`DynStore`]
//!   (`Arc<dyn Store>`): compare-and-set writes that name the version they expect
//!   ([`TaskWrite`], [`Written`]), and rules that span rows checked inside the write
//!   ([`Invariant`]);
//! - [`events`]: the audit trail as a live, lossless feed ([`TaskFlow::subscribe`]);
//! - [`workers`]: the worker registry as writes read it (an identity's actor type, kept a few
//!   seconds);
//! - [`Error`]: one error enum whose variants carry data (`InvalidTransition { action, from }`,
//!   `NotFound { kind, id }`, …) and whose `Display` is the API's message.
//!
//! A call flows like this: [`TaskFlow`] reads the task from the store, asks
//! [`lifecycle`] for the next task and its audit row (or a typed refusal), checks the caller's
//! [`Precondition`](model::Precondition), and hands both to [`Store::update_task`], a compare-and-set on `version`
//! that writes the change and its audit row in one transaction. A lost race re-reads and
//! re-decides.
//!
//! # Features
//!
//! - `memory`: [`MemoryStore`], a store in process memory for tests and experiments.
//! - `testkit`: the backend conformance suite, [`testkit`], with the
//!   [`store_conformance_tests!`] macro that expands one `#[tokio::test]` per case (implies
//!   `memory`).
//!
//! # Example
//!
//! The lifecycle on its own, with no store. The `taskflow` facade crate shows the whole service
//! embedded over SQLite.
//!
//! ```
//! use taskflow_core::{Error, lifecycle::{self, Action, Move}, model::*};
//!
//! let alice = Actor::new(&Identity::user("alice"), ActorType::Agent);
//! let created = lifecycle::create(NewTask::titled("Write docs"), &alice, now()).unwrap();
//! let task = created.task.into_task(1);
//! let start = Action::Start { lease_seconds: None };
//! let started = lifecycle::apply(&task, &start, &alice, now()).unwrap();
//! assert_eq!(started.task.status, TaskStatus::InProgress);
//! assert_eq!(started.task.assigned_to.as_deref(), Some("alice"));
//! assert_eq!(started.audit.action, AuditAction::Started);
//!
//! let again = lifecycle::apply(&started.task, &start, &alice, now()).unwrap_err();
//! assert!(matches!(
//!     again,
//!     Error::InvalidTransition { action: Move::Start, from: TaskStatus::InProgress }
//! ));
//! assert_eq!(again.to_string(), "Cannot start task with status 'in_progress'");
//! ```

pub mod error;
pub mod events;
pub mod idempotency;
pub mod lifecycle;
#[cfg(feature = "memory")]
mod memory;
pub mod model;
mod operation;
mod queue;
mod service;
mod store;
pub mod validate;
pub mod workers;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BoxError, Entity, Error, Permission, Result};
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
pub use operation::{Command, Once, Outcome};
pub use service::TaskFlow;
pub use store::{
    Claim, ClaimDecision, Conflict, Dependencies, DependencyWrite, DynStore, EdgeChange,
    IdempotencyStore, Invariant, LeaseWrite, QueueStore, Store, TaskWrite, Written,
};
