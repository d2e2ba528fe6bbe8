//! The domain of [taskflow](https://example.invalid/taskflow): task management shared by humans
//! and AI agents.
//!
//! This crate owns everything that is not storage or transport:
//!
//! - [`model`]: tasks, patches, filters, audit entries, workers, and the acting identity;
//! - [`validate`]: input rules, each error naming its field;
//! - [`lifecycle`]: the pure state machine that is the only place a status is compared, and the
//!   default policy of who may do what;
//! - [`Store`]: the persistence trait that backends (`taskflow-store-sqlite`,
//!   `taskflow-store-pg`) implement, used as [`DynStore`] (`Arc<dyn Store>`);
//! - [`TaskFlow`]: the embeddable service every client calls;
//! - [`Error`]: one error enum whose variants map onto HTTP statuses.
//!
//! A call flows like this: [`TaskFlow`] reads the task from the store, asks
//! [`lifecycle`] for the next task and its audit entry (or a typed refusal), and hands both to
//! [`Store::update_task`], a compare-and-set on `version` that writes the change and its audit
//! row in one transaction. A lost race re-reads and re-decides.
//!
//! # Features
//!
//! - `testkit`: the backend conformance suite, [`testkit`], with the
//!   [`store_conformance_tests!`] macro that expands one `#[tokio::test]` per case.
//!
//! # Example
//!
//! The lifecycle on its own, with no store. The `taskflow` facade crate shows the whole service
//! embedded over SQLite.
//!
//! ```
//! use taskflow_core::{Error, lifecycle::{self, Action}, model::*};
//!
//! let alice = Actor::new(&Identity::user("alice"), ActorType::Agent);
//! let created = lifecycle::create(NewTask::titled("Write docs"), &alice, now()).unwrap();
//! let started = lifecycle::apply(&created.task, &Action::Start, &alice, now()).unwrap();
//! assert_eq!(started.task.status, TaskStatus::InProgress);
//! assert_eq!(started.task.assigned_to.as_deref(), Some("alice"));
//! assert_eq!(started.audit.action, "started");
//!
//! let again = lifecycle::apply(&started.task, &Action::Start, &alice, now()).unwrap_err();
//! assert!(matches!(again, Error::InvalidTransition(_)));
//! assert_eq!(again.to_string(), "Cannot start task with status 'in_progress'");
//! ```

pub mod error;
pub mod lifecycle;
pub mod model;
mod service;
mod store;
pub mod validate;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BoxError, Error, Result};
pub use service::TaskFlow;
pub use store::{DynStore, Store};
