//! The lifecycle, policy and validation rules of taskflow, run once on `MemoryStore`.
//!
//! These cases need no real store: what a backend must guarantee is pinned by the conformance
//! suite (`taskflow_core::testkit`), which runs on every backend. Here, each case drives a fresh
//! [`TaskFlow`] over an empty [`MemoryStore`] and checks the rules of `SPEC.md` §2 and §3: create
//! defaults and validation, every lifecycle move and refusal text, the default policy, PATCH
//! semantics, versions and preconditions, delete, the audit trail, workers, listings, and
//! [`TaskFlow::execute`].
//!
//! Errors are matched on their structured variants, and their `Display` text is checked where it
//! is part of the wire contract.

use std::fmt::Debug;
use std::sync::Arc;

use taskflow_core::lifecycle::Move;
use taskflow_core::model::{AuditAction, AuditEntry, Identity, NewTask, Task, TaskStatus};
use taskflow_core::{Entity, Error, MemoryStore, Permission, Result, TaskFlow};

mod audit;
mod create;
mod delete;
mod execute;
mod lifecycle;
mod listings;
mod patch;
mod queue;
mod versions;
mod workers;

/// What every case returns: `Err` for a call that failed where it must succeed.
type TestResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A service over a fresh, empty store.
fn flow() -> TaskFlow {
    TaskFlow::new(Arc::new(MemoryStore::new()))
}

fn alice() -> Identity {
    Identity::user("alice")
}

fn bob() -> Identity {
    Identity::user("bob")
}

fn root() -> Identity {
    Identity::admin("root")
}

/// A task created by alice with this title and every other field defaulted.
async fn task(f: &TaskFlow, title: &str) -> Result<Task> {
    f.create_task(&alice(), NewTask::titled(title)).await
}

/// A task in `status`, assigned to alice where the status implies an assignee.
async fn task_in(f: &TaskFlow, status: TaskStatus) -> Result<Task> {
    let t = task(f, "fixture").await?;
    let a = alice();
    let t = match status {
        TaskStatus::Pending => t,
        TaskStatus::InProgress => f.start(&a, t.id, None).await?,
        TaskStatus::Review => {
            f.start(&a, t.id, None).await?;
            f.submit_for_review(&a, t.id, None).await?
        }
        TaskStatus::Completed => {
            f.start(&a, t.id, None).await?;
            f.complete(&a, t.id, None).await?
        }
        TaskStatus::Blocked => f.block(&a, t.id, None, None).await?,
    };
    assert_eq!(t.status, status);
    Ok(t)
}

/// A task's whole audit trail.
async fn audit(f: &TaskFlow, task_id: i64) -> Result<Vec<AuditEntry>> {
    f.task_audit(&alice(), task_id).await
}

/// The `action` of each row of a task's audit trail, oldest first.
async fn actions(f: &TaskFlow, task_id: i64) -> Result<Vec<AuditAction>> {
    Ok(audit(f, task_id)
        .await?
        .into_iter()
        .map(|row| row.action)
        .collect())
}

/// The last row of a task's audit trail.
async fn last_row(f: &TaskFlow, task_id: i64) -> Result<AuditEntry> {
    let rows = audit(f, task_id).await?;
    Ok(rows
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("task {task_id} has no audit rows")))
}

/// Every status other than `allowed`.
fn statuses_except(allowed: &[TaskStatus]) -> Vec<TaskStatus> {
    TaskStatus::ALL
        .iter()
        .copied()
        .filter(|s| !allowed.contains(s))
        .collect()
}

/// The error of a call that must fail.
#[track_caller]
fn refused<T: Debug>(res: Result<T>) -> Error {
    match res {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// A lifecycle refusal (HTTP 400) of `action` from `from`, with its wire text.
#[track_caller]
fn expect_invalid<T: Debug>(res: Result<T>, action: Move, from: TaskStatus, text: &str) {
    let e = refused(res);
    assert!(
        matches!(e, Error::InvalidTransition { action: a, from: f } if a == action && f == from),
        "expected InvalidTransition {{ {action:?}, {from} }}, got {e:?}"
    );
    assert_eq!(e.to_string(), text);
}

/// A PATCH status move that no row of the lifecycle table makes (HTTP 400), with its wire text.
#[track_caller]
fn expect_status_change<T: Debug>(res: Result<T>, from: TaskStatus, to: TaskStatus, text: &str) {
    let e = refused(res);
    assert!(
        matches!(e, Error::InvalidStatusChange { from: f, to: t } if f == from && t == to),
        "expected InvalidStatusChange {{ {from}, {to} }}, got {e:?}"
    );
    assert_eq!(e.to_string(), text);
}

/// A policy refusal (HTTP 403) of `permission`, with its wire text.
#[track_caller]
fn expect_forbidden<T: Debug>(res: Result<T>, permission: Permission, text: &str) {
    let e = refused(res);
    assert!(
        matches!(e, Error::Forbidden { action } if action == permission),
        "expected Forbidden {{ {permission:?} }}, got {e:?}"
    );
    assert_eq!(e.to_string(), text);
}

/// A validation error (HTTP 422) on `field`; its text starts with the field and a colon.
#[track_caller]
fn expect_validation<T: Debug>(res: Result<T>, field: &str) -> Error {
    let e = refused(res);
    assert!(
        matches!(&e, Error::Validation { field: f, .. } if f == field),
        "expected a validation error on {field}, got {e:?}"
    );
    assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
    e
}

/// A version mismatch (HTTP 412) that reports `current`, with its wire text.
#[track_caller]
fn expect_mismatch<T: Debug>(res: Result<T>, current: i64) {
    let e = refused(res);
    assert!(
        matches!(e, Error::VersionMismatch { current: c } if c == current),
        "expected a version mismatch at {current}, got {e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("Version mismatch: task is at version {current}")
    );
}

/// `Task not found` (HTTP 404) naming `id`.
#[track_caller]
fn expect_task_not_found<T: Debug>(res: Result<T>, id: i64) {
    let e = refused(res);
    assert!(
        matches!(&e, Error::NotFound { kind: Entity::Task, id: got } if *got == id.to_string()),
        "expected task {id} not found, got {e:?}"
    );
    assert_eq!(e.to_string(), "Task not found");
}
