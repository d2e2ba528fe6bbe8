//! The backend conformance suite (feature `testkit`).
//!
//! Each case is a plain `pub async fn case(store: DynStore)` that drives a fresh, empty store
//! through [`TaskFlow`] and panics with a message when the store breaks a guarantee. A backend
//! runs them all with one line in a test file:
//!
//! ```text
//! async fn fresh_store() -> taskflow_core::testkit::Fixture {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(dir.path().join("t.db")).await.unwrap();
//!     taskflow_core::testkit::Fixture::with_guard(std::sync::Arc::new(store), dir)
//! }
//!
//! taskflow_core::store_conformance_tests!(fresh_store);
//! ```
//!
//! The macro expands to one named `#[tokio::test]` per case (on a multi-threaded runtime, so the
//! race cases really race), so a failure names its case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::collections::HashSet;
use std::fmt::Debug;

use futures::future::join_all;
use serde_json::json;

use crate::error::{Error, Result};
use crate::model::{
    ActorType, AuditEntry, AuditFilter, Identity, NewTask, Priority, Task, TaskFilter, TaskPatch,
    TaskStatus,
};
use crate::{DynStore, TaskFlow};

/// A fresh store for one case, plus whatever must live as long as it (a temp dir, a database
/// handle to drop afterwards).
pub struct Fixture {
    /// The store under test.
    pub store: DynStore,
    /// Kept alive until the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: DynStore) -> Self {
        Fixture {
            store,
            guard: Box::new(()),
        }
    }

    /// A fixture that keeps `guard` alive as long as the case runs.
    pub fn with_guard(store: DynStore, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store,
            guard: Box::new(guard),
        }
    }
}

/// Turns what a factory returns into a fixture: a [`Fixture`], or `Option<Fixture>` for a
/// backend that may be unavailable (its factory says why and returns `None`; the case then ends
/// without running).
pub trait IntoFixture {
    /// The fixture, or `None` to end the case without running it.
    fn into_fixture(self) -> Option<Fixture>;
}

impl IntoFixture for Fixture {
    fn into_fixture(self) -> Option<Fixture> {
        Some(self)
    }
}

impl IntoFixture for Option<Fixture> {
    fn into_fixture(self) -> Option<Fixture> {
        self
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store from `$factory`,
/// an `async fn()` returning a [`Fixture`] (or an `Option<Fixture>`, see [`IntoFixture`]).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::__conformance_cases!($crate::__conformance_test; $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(fixture) = $crate::testkit::IntoFixture::into_fixture($factory().await)
                else {
                    return;
                };
                $crate::testkit::$case(fixture.store.clone()).await;
                drop(fixture);
            }
        )+
    };
}

/// The list of cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            create_applies_defaults,
            create_trims_title,
            create_rejects_blank_title,
            create_enforces_title_length,
            create_refuses_other_statuses,
            create_may_start_blocked,
            create_checks_progress_percent,
            create_checks_parent_exists,
            create_treats_parent_zero_as_none,
            create_writes_one_audit_row,
            text_with_nul_is_refused_everywhere,
            ids_are_distinct_and_never_reused,
            get_missing_task_is_not_found,
            start_claims_pending_task,
            start_refusals,
            progress_records_percent_and_note,
            progress_refusals,
            progress_policy,
            submit_for_review_moves_to_review,
            submit_for_review_refusals,
            request_changes_moves_back,
            request_changes_refusals,
            complete_from_in_progress,
            complete_from_review_by_anyone,
            complete_policy,
            complete_refusals,
            block_from_each_open_status,
            block_refusals,
            unblock_returns_to_in_progress_when_assigned,
            unblock_returns_to_pending_when_unassigned,
            unblock_refusals,
            completed_is_terminal,
            admin_overrides_assignee_policy,
            empty_patch_is_a_no_op,
            patch_with_same_values_is_a_no_op,
            patch_records_changed_fields,
            patch_null_clears_fields,
            patch_validates_fields,
            patch_status_start_assigns_actor,
            patch_status_complete_sets_full_progress,
            patch_status_illegal_move,
            patch_status_obeys_policy,
            patch_status_unblock_target_must_match,
            patch_reassign_policy,
            patch_parent_checks,
            version_increments_on_every_change,
            stale_version_is_a_conflict,
            stale_version_on_no_op_patch_is_a_conflict,
            writes_to_missing_task_are_not_found,
            list_filters,
            list_pagination_and_totals,
            list_checks_limit_and_offset,
            delete_is_admin_only,
            delete_refused_with_subtasks,
            delete_keeps_audit_trail,
            delete_honours_expected_version,
            audit_filters_and_pagination,
            audit_of_unknown_task_is_empty,
            audit_keeps_project_after_change,
            worker_registration_makes_agent,
            worker_reregistration_replaces_and_keeps_created_at,
            worker_registration_is_admin_only,
            workers_listing_and_lookup,
            audit_keeps_actor_type_as_written,
            timestamps_round_trip,
            health_ping,
            race_concurrent_starts,
            race_concurrent_patches_same_version,
            race_concurrent_patches_without_version,
            race_concurrent_creates,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn flow(store: &DynStore) -> TaskFlow {
    TaskFlow::new(store.clone())
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

async fn task(flow: &TaskFlow, title: &str) -> Task {
    flow.create_task(&alice(), NewTask::titled(title))
        .await
        .expect("create a task")
}

/// A task in `status`, assigned to alice where the status implies an assignee.
async fn task_in(flow: &TaskFlow, status: TaskStatus) -> Task {
    let t = task(flow, "fixture").await;
    let a = alice();
    let res = match status {
        TaskStatus::Pending => Ok(t),
        TaskStatus::InProgress => flow.start(&a, t.id, None).await,
        TaskStatus::Review => {
            flow.start(&a, t.id, None).await.unwrap();
            flow.submit_for_review(&a, t.id, None).await
        }
        TaskStatus::Completed => {
            flow.start(&a, t.id, None).await.unwrap();
            flow.complete(&a, t.id, None).await
        }
        TaskStatus::Blocked => flow.block(&a, t.id, None, None).await,
    };
    let t = res.expect("move the fixture task");
    assert_eq!(t.status, status);
    t
}

async fn audit(flow: &TaskFlow, task_id: i64) -> Vec<AuditEntry> {
    flow.task_audit(&alice(), task_id)
        .await
        .expect("read audit")
}

async fn actions(flow: &TaskFlow, task_id: i64) -> Vec<String> {
    audit(flow, task_id)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[track_caller]
fn expect_err<T: Debug>(res: Result<T>, text: &str) -> Error {
    match res {
        Ok(v) => panic!("expected error {text:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.to_string(), text, "wrong error text for {e:?}");
            e
        }
    }
}

#[track_caller]
fn expect_invalid<T: Debug>(res: Result<T>, text: &str) {
    let e = expect_err(res, text);
    assert!(matches!(e, Error::InvalidTransition(_)), "{e:?}");
}

#[track_caller]
fn expect_forbidden<T: Debug>(res: Result<T>, text: &str) {
    let e = expect_err(res, text);
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
}

#[track_caller]
fn expect_validation<T: Debug>(res: Result<T>, field: &str) -> Error {
    match res {
        Err(e @ Error::Validation { .. }) => {
            let Error::Validation { field: f, .. } = &e else {
                unreachable!()
            };
            assert_eq!(f, field, "{e}");
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
            e
        }
        other => panic!("expected a validation error on {field}, got {other:?}"),
    }
}

#[track_caller]
fn expect_mismatch<T: Debug>(res: Result<T>, current: i64) {
    match res {
        Err(Error::VersionMismatch { current: c }) => assert_eq!(c, current),
        other => panic!("expected a version mismatch at {current}, got {other:?}"),
    }
}

#[track_caller]
fn expect_not_found<T: Debug>(res: Result<T>) {
    expect_err(res, "Task not found");
}

/// Every status other than `allowed`.
fn statuses_except(allowed: &[TaskStatus]) -> Vec<TaskStatus> {
    TaskStatus::ALL
        .iter()
        .copied()
        .filter(|s| !allowed.contains(s))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Create and read

/// A new task is pending, medium, 0 %, unassigned, at version 1, with equal timestamps.
pub async fn create_applies_defaults(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "Write the docs").await;
    assert!(t.id > 0);
    assert_eq!(t.title, "Write the docs");
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.priority, Priority::Medium);
    assert_eq!(t.progress_percent, 0);
    assert_eq!(t.assigned_to, None);
    assert_eq!(t.parent_id, None);
    assert_eq!(t.version, 1);
    assert_eq!(t.created_at, t.updated_at);
    assert_eq!(f.get_task(&alice(), t.id).await.unwrap(), t);
}

/// Titles are stored trimmed.
pub async fn create_trims_title(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "   padded  ").await;
    assert_eq!(t.title, "padded");
    assert_eq!(f.get_task(&alice(), t.id).await.unwrap().title, "padded");
}

/// A blank title is refused, and nothing is written.
pub async fn create_rejects_blank_title(store: DynStore) {
    let f = flow(&store);
    expect_validation(
        f.create_task(&alice(), NewTask::titled("   ")).await,
        "title",
    );
    expect_validation(f.create_task(&alice(), NewTask::titled("")).await, "title");
    let all = f
        .list_tasks(&alice(), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(all.total, 0);
    let log = f
        .list_audit(&alice(), &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(log.total, 0, "a refused create writes no audit row");
}

/// 200 characters after trimming is the limit, counted in characters, not bytes.
pub async fn create_enforces_title_length(store: DynStore) {
    let f = flow(&store);
    let longest = "ü".repeat(200);
    let t = f
        .create_task(&alice(), NewTask::titled(format!("  {longest}  ")))
        .await
        .unwrap();
    assert_eq!(t.title, longest);
    expect_validation(
        f.create_task(&alice(), NewTask::titled("x".repeat(201)))
            .await,
        "title",
    );
}

/// Only `pending` and `blocked` are valid starting statuses.
pub async fn create_refuses_other_statuses(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::Pending, TaskStatus::Blocked]) {
        let new = NewTask {
            status: Some(status),
            ..NewTask::titled("t")
        };
        let e = expect_validation(f.create_task(&alice(), new).await, "status");
        assert_eq!(
            e.to_string(),
            "status: a new task starts as 'pending' or 'blocked'"
        );
    }
}

/// A task may be created blocked, assigned and with progress.
pub async fn create_may_start_blocked(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        status: Some(TaskStatus::Blocked),
        assigned_to: Some("bob".into()),
        progress_percent: Some(40),
        priority: Some(Priority::Critical),
        description: Some("waiting on infra".into()),
        project_slug: Some("infra".into()),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    assert_eq!(t.status, TaskStatus::Blocked);
    assert_eq!(t.assigned_to.as_deref(), Some("bob"));
    assert_eq!(t.progress_percent, 40);
    assert_eq!(t.priority, Priority::Critical);
    assert_eq!(t.description.as_deref(), Some("waiting on infra"));
    assert_eq!(t.project_slug.as_deref(), Some("infra"));
}

/// `progress_percent` must be 0..=100.
pub async fn create_checks_progress_percent(store: DynStore) {
    let f = flow(&store);
    for bad in [-1, 101, i32::MIN, i32::MAX] {
        let new = NewTask {
            progress_percent: Some(bad),
            ..NewTask::titled("t")
        };
        expect_validation(f.create_task(&alice(), new).await, "progress_percent");
    }
    let new = NewTask {
        progress_percent: Some(100),
        ..NewTask::titled("t")
    };
    assert_eq!(
        f.create_task(&alice(), new).await.unwrap().progress_percent,
        100
    );
}

/// A parent must exist: `parent_id: task <id> not found`.
pub async fn create_checks_parent_exists(store: DynStore) {
    let f = flow(&store);
    for missing in [999, -5] {
        let new = NewTask {
            parent_id: Some(missing),
            ..NewTask::titled("child")
        };
        let e = expect_validation(f.create_task(&alice(), new).await, "parent_id");
        assert_eq!(
            e.to_string(),
            format!("parent_id: task {missing} not found")
        );
    }
    let parent = task(&f, "parent").await;
    let new = NewTask {
        parent_id: Some(parent.id),
        ..NewTask::titled("child")
    };
    assert_eq!(
        f.create_task(&alice(), new).await.unwrap().parent_id,
        Some(parent.id)
    );
}

/// `parent_id` 0 means no parent.
pub async fn create_treats_parent_zero_as_none(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        parent_id: Some(0),
        ..NewTask::titled("t")
    };
    assert_eq!(f.create_task(&alice(), new).await.unwrap().parent_id, None);
}

/// Create writes exactly one `created` row holding the task's fields.
pub async fn create_writes_one_audit_row(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        project_slug: Some("docs".into()),
        priority: Some(Priority::High),
        ..NewTask::titled(" Write ")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    let rows = audit(&f, t.id).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.id > 0);
    assert_eq!(row.task_id, t.id);
    assert_eq!(row.action, "created");
    assert_eq!(row.actor_id, "alice");
    assert_eq!(row.actor_type, ActorType::Human);
    assert_eq!(row.project_slug.as_deref(), Some("docs"));
    assert_eq!(row.timestamp, t.created_at);
    assert_eq!(
        row.context,
        Some(json!({
            "title": "Write",
            "description": null,
            "status": "pending",
            "priority": "high",
            "progress_percent": 0,
            "assigned_to": null,
            "project_slug": "docs",
            "parent_id": null,
        }))
    );
}

/// Text holding a NUL character is refused in core (PostgreSQL cannot store it in `text` or
/// `jsonb`), so every backend behaves alike: a 422 naming the field, and nothing written.
pub async fn text_with_nul_is_refused_everywhere(store: DynStore) {
    let f = flow(&store);
    let nul = "a\0b".to_owned();
    let t = task(&f, "fine").await;
    let new = |edit: fn(&mut NewTask, String)| {
        let mut n = NewTask::titled("t");
        edit(&mut n, "a\0b".to_owned());
        n
    };
    for (fields, field) in [
        (new(|n, v| n.title = v), "title"),
        (new(|n, v| n.description = Some(v)), "description"),
        (new(|n, v| n.assigned_to = Some(v)), "assigned_to"),
        (new(|n, v| n.project_slug = Some(v)), "project_slug"),
    ] {
        expect_validation(f.create_task(&alice(), fields).await, field);
    }
    let patch = TaskPatch {
        description: Some(Some(nul.clone())),
        ..TaskPatch::default()
    };
    expect_validation(
        f.update_task(&alice(), t.id, &patch, None).await,
        "description",
    );
    expect_validation(
        f.block(&alice(), t.id, Some(nul.clone()), None).await,
        "reason",
    );
    expect_validation(
        f.put_worker(&root(), &nul, ActorType::Agent, None).await,
        "id",
    );
    expect_validation(
        f.put_worker(&root(), "w", ActorType::Agent, Some(nul.clone()))
            .await,
        "name",
    );
    expect_validation(
        f.create_task(&Identity::user(nul), NewTask::titled("t"))
            .await,
        "sub",
    );
    assert_eq!(actions(&f, t.id).await, ["created"]);
    let all = f
        .list_tasks(&alice(), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(all.total, 1);
}
/// Ids are distinct, and a deleted task's id is not handed out again.
pub async fn ids_are_distinct_and_never_reused(store: DynStore) {
    let f = flow(&store);
    let a = task(&f, "a").await;
    let b = task(&f, "b").await;
    assert!(b.id > a.id);
    f.delete_task(&root(), b.id, None).await.unwrap();
    let c = task(&f, "c").await;
    assert!(c.id > b.id, "id {} was reused", c.id);
}

/// A missing task is `Task not found`, including ids of 0 and below.
pub async fn get_missing_task_is_not_found(store: DynStore) {
    let f = flow(&store);
    for id in [1, 0, -1, i64::MAX, i64::MIN] {
        let e = expect_err(f.get_task(&alice(), id).await, "Task not found");
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The lifecycle, row by row

/// Start: `pending` → `in_progress`, assigned to the actor, one `started` row.
pub async fn start_claims_pending_task(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    let s = f.start(&bob(), t.id, None).await.unwrap();
    assert_eq!(s.status, TaskStatus::InProgress);
    assert_eq!(s.assigned_to.as_deref(), Some("bob"));
    assert_eq!(s.version, 2);
    assert!(s.updated_at >= t.updated_at);
    assert_eq!(f.get_task(&bob(), t.id).await.unwrap(), s);
    let rows = audit(&f, t.id).await;
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["created", "started"]
    );
    assert_eq!(rows[1].actor_id, "bob");
    assert_eq!(rows[1].context, None);
}

/// Start is refused from every status but `pending`, with the seed's text.
pub async fn start_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::Pending]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.start(&alice(), t.id, None).await,
            &format!("Cannot start task with status '{status}'"),
        );
        assert_eq!(f.get_task(&alice(), t.id).await.unwrap(), t, "unchanged");
    }
}

/// Progress sets the percent and records `{percent, note}`.
pub async fn progress_records_percent_and_note(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    let p = f
        .progress(&alice(), t.id, 40, Some("halfway-ish".into()), None)
        .await
        .unwrap();
    assert_eq!(p.progress_percent, 40);
    assert_eq!(p.status, TaskStatus::InProgress);
    let p = f.progress(&alice(), t.id, 60, None, None).await.unwrap();
    assert_eq!(p.progress_percent, 60);
    let rows = audit(&f, t.id).await;
    let progressed: Vec<_> = rows.iter().filter(|r| r.action == "progressed").collect();
    assert_eq!(progressed.len(), 2);
    assert_eq!(
        progressed[0].context,
        Some(json!({"percent": 40, "note": "halfway-ish"}))
    );
    assert_eq!(
        progressed[1].context,
        Some(json!({"percent": 60, "note": null}))
    );
}

/// Progress needs `in_progress` and a percent in 0..=100; a bad percent is checked first.
pub async fn progress_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::InProgress]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.progress(&alice(), t.id, 10, None, None).await,
            "Task must be in_progress",
        );
    }
    let t = task_in(&f, TaskStatus::InProgress).await;
    for bad in [-1, 101] {
        expect_validation(f.progress(&alice(), t.id, bad, None, None).await, "percent");
    }
    expect_validation(
        f.progress(&alice(), 987_654, 101, None, None).await,
        "percent",
    );
    assert_eq!(actions(&f, t.id).await, ["created", "started"]);
}

/// Only the assignee (or an admin) may report progress.
pub async fn progress_policy(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    expect_forbidden(
        f.progress(&bob(), t.id, 10, None, None).await,
        "Only the assignee or an admin can report progress on this task",
    );
    assert_eq!(actions(&f, t.id).await, ["created", "started"]);
}

/// Submit for review: `in_progress` → `review`.
pub async fn submit_for_review_moves_to_review(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    let r = f.submit_for_review(&alice(), t.id, None).await.unwrap();
    assert_eq!(r.status, TaskStatus::Review);
    assert_eq!(r.assigned_to.as_deref(), Some("alice"));
    expect_forbidden(
        f.submit_for_review(&bob(), task_in(&f, TaskStatus::InProgress).await.id, None)
            .await,
        "Only the assignee or an admin can submit this task",
    );
    assert_eq!(
        actions(&f, t.id).await,
        ["created", "started", "review_requested"]
    );
}

/// Submit is refused outside `in_progress`.
pub async fn submit_for_review_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::InProgress]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.submit_for_review(&alice(), t.id, None).await,
            &format!("Cannot submit task with status '{status}' for review"),
        );
    }
}

/// Request changes: `review` → `in_progress`, by anyone.
pub async fn request_changes_moves_back(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Review).await;
    let r = f.request_changes(&bob(), t.id, None).await.unwrap();
    assert_eq!(r.status, TaskStatus::InProgress);
    assert_eq!(
        r.assigned_to.as_deref(),
        Some("alice"),
        "keeps the assignee"
    );
    let rows = audit(&f, t.id).await;
    let last = rows.last().unwrap();
    assert_eq!(last.action, "changes_requested");
    assert_eq!(last.actor_id, "bob");
}

/// Request changes is refused outside `review`.
pub async fn request_changes_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::Review]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.request_changes(&alice(), t.id, None).await,
            "Task must be in review",
        );
    }
}

/// Complete from `in_progress` sets progress to 100.
pub async fn complete_from_in_progress(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    f.progress(&alice(), t.id, 30, None, None).await.unwrap();
    let c = f.complete(&alice(), t.id, None).await.unwrap();
    assert_eq!(c.status, TaskStatus::Completed);
    assert_eq!(c.progress_percent, 100);
    assert_eq!(
        actions(&f, t.id).await,
        ["created", "started", "progressed", "completed"]
    );
}

/// From `review`, anyone may complete.
pub async fn complete_from_review_by_anyone(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Review).await;
    let c = f.complete(&bob(), t.id, None).await.unwrap();
    assert_eq!(c.status, TaskStatus::Completed);
    assert_eq!(c.progress_percent, 100);
    assert_eq!(audit(&f, t.id).await.last().unwrap().actor_id, "bob");
}

/// From `in_progress`, only the assignee or an admin may complete.
pub async fn complete_policy(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    expect_forbidden(
        f.complete(&bob(), t.id, None).await,
        "Only the assignee or an admin can complete this task",
    );
    assert_eq!(f.get_task(&bob(), t.id).await.unwrap(), t);
    assert_eq!(
        f.complete(&root(), t.id, None).await.unwrap().status,
        TaskStatus::Completed
    );
}

/// Complete is refused from `pending`, `blocked` and `completed`.
pub async fn complete_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::InProgress, TaskStatus::Review]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.complete(&alice(), t.id, None).await,
            &format!("Cannot complete task with status '{status}'"),
        );
    }
}

/// Block works from `pending`, `in_progress` and `review`, and records `{reason}`.
pub async fn block_from_each_open_status(store: DynStore) {
    let f = flow(&store);
    for status in [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Review,
    ] {
        let t = task_in(&f, status).await;
        let b = f
            .block(&alice(), t.id, Some(format!("from {status}")), None)
            .await
            .unwrap();
        assert_eq!(b.status, TaskStatus::Blocked);
        let last = audit(&f, t.id).await.pop().unwrap();
        assert_eq!(last.action, "blocked");
        assert_eq!(
            last.context,
            Some(json!({"reason": format!("from {status}")}))
        );
    }
    let t = task(&f, "no reason").await;
    f.block(&alice(), t.id, None, None).await.unwrap();
    let last = audit(&f, t.id).await.pop().unwrap();
    assert_eq!(last.context, Some(json!({"reason": null})));
}

/// Block is refused from `blocked` and `completed`, and belongs to the assignee.
pub async fn block_refusals(store: DynStore) {
    let f = flow(&store);
    for status in [TaskStatus::Blocked, TaskStatus::Completed] {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.block(&alice(), t.id, None, None).await,
            &format!("Cannot block task with status '{status}'"),
        );
    }
    let t = task_in(&f, TaskStatus::InProgress).await;
    expect_forbidden(
        f.block(&bob(), t.id, None, None).await,
        "Only the assignee or an admin can block this task",
    );
}

/// Unblock returns an assigned task to `in_progress`.
pub async fn unblock_returns_to_in_progress_when_assigned(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    f.block(&alice(), t.id, None, None).await.unwrap();
    expect_forbidden(
        f.unblock(&bob(), t.id, None).await,
        "Only the assignee or an admin can unblock this task",
    );
    let u = f.unblock(&alice(), t.id, None).await.unwrap();
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(audit(&f, t.id).await.pop().unwrap().action, "unblocked");
}

/// Unblock returns an unassigned task to `pending`; anyone may unblock it.
pub async fn unblock_returns_to_pending_when_unassigned(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Blocked).await;
    assert_eq!(t.assigned_to, None);
    let u = f.unblock(&bob(), t.id, None).await.unwrap();
    assert_eq!(u.status, TaskStatus::Pending);
}

/// Unblock is refused unless `blocked`.
pub async fn unblock_refusals(store: DynStore) {
    let f = flow(&store);
    for status in statuses_except(&[TaskStatus::Blocked]) {
        let t = task_in(&f, status).await;
        expect_invalid(
            f.unblock(&alice(), t.id, None).await,
            "Task must be blocked",
        );
    }
}

/// Nothing moves a completed task, though its fields may still be edited.
pub async fn completed_is_terminal(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Completed).await;
    let a = root();
    assert!(f.start(&a, t.id, None).await.is_err());
    assert!(f.progress(&a, t.id, 5, None, None).await.is_err());
    assert!(f.submit_for_review(&a, t.id, None).await.is_err());
    assert!(f.request_changes(&a, t.id, None).await.is_err());
    assert!(f.complete(&a, t.id, None).await.is_err());
    assert!(f.block(&a, t.id, None, None).await.is_err());
    assert!(f.unblock(&a, t.id, None).await.is_err());
    for to in statuses_except(&[TaskStatus::Completed]) {
        let patch = TaskPatch {
            status: Some(to),
            ..TaskPatch::default()
        };
        expect_invalid(
            f.update_task(&a, t.id, &patch, None).await,
            &format!("Cannot change status from 'completed' to '{to}'"),
        );
    }
    assert_eq!(
        f.get_task(&a, t.id).await.unwrap().status,
        TaskStatus::Completed
    );
    let patch = TaskPatch {
        title: Some("renamed".into()),
        ..TaskPatch::default()
    };
    let renamed = f.update_task(&a, t.id, &patch, None).await.unwrap();
    assert_eq!(renamed.title, "renamed");
    assert_eq!(renamed.status, TaskStatus::Completed);
}

/// An admin may act on a task assigned to someone else.
pub async fn admin_overrides_assignee_policy(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    let a = root();
    f.progress(&a, t.id, 50, None, None).await.unwrap();
    f.submit_for_review(&a, t.id, None).await.unwrap();
    f.block(&a, t.id, None, None).await.unwrap();
    let u = f.unblock(&a, t.id, None).await.unwrap();
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(
        u.assigned_to.as_deref(),
        Some("alice"),
        "admin does not take it over"
    );
}

// ---------------------------------------------------------------------------------------------
// PATCH

/// `{}` changes nothing: no version bump, no audit row.
pub async fn empty_patch_is_a_no_op(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    let same = f
        .update_task(&alice(), t.id, &TaskPatch::default(), None)
        .await
        .unwrap();
    assert_eq!(same, t);
    assert_eq!(actions(&f, t.id).await, ["created"]);
}

/// Setting fields to their current values is not a change.
pub async fn patch_with_same_values_is_a_no_op(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    let patch = TaskPatch {
        title: Some("  fixture ".into()),
        description: Some(None),
        status: Some(TaskStatus::InProgress),
        priority: Some(Priority::Medium),
        progress_percent: Some(0),
        assigned_to: Some(Some("alice".into())),
        project_slug: Some(None),
        parent_id: Some(Some(0)),
    };
    let same = f
        .update_task(&bob(), t.id, &patch, Some(t.version))
        .await
        .unwrap();
    assert_eq!(same, t);
    assert_eq!(actions(&f, t.id).await, ["created", "started"]);
}

/// One `updated` row holds exactly the changed fields' new values.
pub async fn patch_records_changed_fields(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    let patch = TaskPatch {
        title: Some("  new title ".into()),
        priority: Some(Priority::High),
        project_slug: Some(Some("web".into())),
        description: Some(None),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await.unwrap();
    assert_eq!(u.title, "new title");
    assert_eq!(u.priority, Priority::High);
    assert_eq!(u.project_slug.as_deref(), Some("web"));
    assert_eq!(u.version, 2);
    assert_eq!(f.get_task(&bob(), t.id).await.unwrap(), u);
    let rows = audit(&f, t.id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].action, "updated");
    assert_eq!(rows[1].actor_id, "bob");
    assert_eq!(rows[1].project_slug.as_deref(), Some("web"));
    assert_eq!(
        rows[1].context,
        Some(json!({"title": "new title", "priority": "high", "project_slug": "web"}))
    );
}

/// `null` clears a clearable field.
pub async fn patch_null_clears_fields(store: DynStore) {
    let f = flow(&store);
    let parent = task(&f, "parent").await;
    let new = NewTask {
        description: Some("d".into()),
        project_slug: Some("p".into()),
        assigned_to: Some("alice".into()),
        parent_id: Some(parent.id),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    let patch = TaskPatch {
        description: Some(None),
        project_slug: Some(None),
        assigned_to: Some(None),
        parent_id: Some(None),
        ..TaskPatch::default()
    };
    let u = f.update_task(&alice(), t.id, &patch, None).await.unwrap();
    assert_eq!(
        (u.description, u.project_slug, u.assigned_to, u.parent_id),
        (None, None, None, None)
    );
    let row = audit(&f, t.id).await.pop().unwrap();
    assert_eq!(
        row.context,
        Some(
            json!({"description": null, "project_slug": null, "assigned_to": null, "parent_id": null})
        )
    );
}

/// Field rules apply to patches, before the task is even looked up.
pub async fn patch_validates_fields(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    let cases = [
        (
            TaskPatch {
                title: Some("  ".into()),
                ..TaskPatch::default()
            },
            "title",
        ),
        (
            TaskPatch {
                title: Some("y".repeat(201)),
                ..TaskPatch::default()
            },
            "title",
        ),
        (
            TaskPatch {
                progress_percent: Some(101),
                ..TaskPatch::default()
            },
            "progress_percent",
        ),
    ];
    for (patch, field) in cases {
        expect_validation(f.update_task(&alice(), t.id, &patch, None).await, field);
        expect_validation(f.update_task(&alice(), 424_242, &patch, None).await, field);
    }
    assert_eq!(actions(&f, t.id).await, ["created"]);
}

/// A PATCH to `in_progress` from `pending` is a start: it assigns the actor.
pub async fn patch_status_start_assigns_actor(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    let patch = TaskPatch {
        status: Some(TaskStatus::InProgress),
        assigned_to: Some(Some("carol".into())),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await.unwrap();
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(
        u.assigned_to.as_deref(),
        Some("bob"),
        "effects apply after fields"
    );
    let row = audit(&f, t.id).await.pop().unwrap();
    assert_eq!(row.action, "updated");
    assert_eq!(
        row.context,
        Some(json!({"status": "in_progress", "assigned_to": "bob"}))
    );
}

/// A PATCH to `completed` sets progress to 100.
pub async fn patch_status_complete_sets_full_progress(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Review).await;
    let patch = TaskPatch {
        status: Some(TaskStatus::Completed),
        ..TaskPatch::default()
    };
    let u = f.update_task(&bob(), t.id, &patch, None).await.unwrap();
    assert_eq!(u.status, TaskStatus::Completed);
    assert_eq!(u.progress_percent, 100);
    let row = audit(&f, t.id).await.pop().unwrap();
    assert_eq!(
        row.context,
        Some(json!({"status": "completed", "progress_percent": 100}))
    );
}

/// A PATCH cannot jump the lifecycle.
pub async fn patch_status_illegal_move(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    for to in [TaskStatus::Review, TaskStatus::Completed] {
        let patch = TaskPatch {
            status: Some(to),
            title: Some("also renamed".into()),
            ..TaskPatch::default()
        };
        expect_invalid(
            f.update_task(&root(), t.id, &patch, None).await,
            &format!("Cannot change status from 'pending' to '{to}'"),
        );
    }
    assert_eq!(
        f.get_task(&alice(), t.id).await.unwrap(),
        t,
        "nothing applied"
    );
    assert_eq!(actions(&f, t.id).await, ["created"]);
}

/// A PATCH status move obeys the same policy as its action.
pub async fn patch_status_obeys_policy(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    for to in [
        TaskStatus::Completed,
        TaskStatus::Review,
        TaskStatus::Blocked,
    ] {
        let patch = TaskPatch {
            status: Some(to),
            ..TaskPatch::default()
        };
        let e = f.update_task(&bob(), t.id, &patch, None).await.unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{to}: {e:?}");
    }
    let patch = TaskPatch {
        status: Some(TaskStatus::Review),
        ..TaskPatch::default()
    };
    assert_eq!(
        f.update_task(&alice(), t.id, &patch, None)
            .await
            .unwrap()
            .status,
        TaskStatus::Review
    );
}

/// Unblocking through PATCH must name the status the table gives.
pub async fn patch_status_unblock_target_must_match(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::Blocked).await;
    let to_progress = TaskPatch {
        status: Some(TaskStatus::InProgress),
        ..TaskPatch::default()
    };
    expect_invalid(
        f.update_task(&alice(), t.id, &to_progress, None).await,
        "Cannot change status from 'blocked' to 'in_progress'",
    );
    let assign_and_unblock = TaskPatch {
        assigned_to: Some(Some("alice".into())),
        ..to_progress
    };
    let u = f
        .update_task(&alice(), t.id, &assign_and_unblock, None)
        .await
        .unwrap();
    assert_eq!(u.status, TaskStatus::InProgress);
    assert_eq!(u.assigned_to.as_deref(), Some("alice"));
}

/// Taking a task away from another user is for the assignee or an admin.
pub async fn patch_reassign_policy(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    let to_bob = TaskPatch {
        assigned_to: Some(Some("bob".into())),
        ..TaskPatch::default()
    };
    expect_forbidden(
        f.update_task(&bob(), t.id, &to_bob, None).await,
        "Only the assignee or an admin can reassign this task",
    );
    let u = f.update_task(&alice(), t.id, &to_bob, None).await.unwrap();
    assert_eq!(u.assigned_to.as_deref(), Some("bob"));
    let back = TaskPatch {
        assigned_to: Some(Some("alice".into())),
        ..TaskPatch::default()
    };
    assert_eq!(
        f.update_task(&root(), t.id, &back, None)
            .await
            .unwrap()
            .assigned_to
            .as_deref(),
        Some("alice")
    );
    let free = task(&f, "unassigned").await;
    assert_eq!(
        f.update_task(&bob(), free.id, &to_bob, None)
            .await
            .unwrap()
            .assigned_to
            .as_deref(),
        Some("bob"),
        "anyone may assign an unassigned task"
    );
}

/// A parent must exist and must not create a cycle.
pub async fn patch_parent_checks(store: DynStore) {
    let f = flow(&store);
    let a = task(&f, "a").await;
    let b = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(a.id),
                ..NewTask::titled("b")
            },
        )
        .await
        .unwrap();
    let c = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(b.id),
                ..NewTask::titled("c")
            },
        )
        .await
        .unwrap();
    let to = |p: i64| TaskPatch {
        parent_id: Some(Some(p)),
        ..TaskPatch::default()
    };
    for (id, parent) in [(a.id, a.id), (a.id, c.id), (a.id, b.id), (b.id, c.id)] {
        let e = expect_validation(
            f.update_task(&alice(), id, &to(parent), None).await,
            "parent_id",
        );
        assert_eq!(e.to_string(), "parent_id: would create a cycle");
    }
    let e = expect_validation(
        f.update_task(&alice(), c.id, &to(777), None).await,
        "parent_id",
    );
    assert_eq!(e.to_string(), "parent_id: task 777 not found");
    let moved = f
        .update_task(&alice(), c.id, &to(a.id), None)
        .await
        .unwrap();
    assert_eq!(moved.parent_id, Some(a.id));
    let top = f.update_task(&alice(), c.id, &to(0), None).await.unwrap();
    assert_eq!(top.parent_id, None);
}

// ---------------------------------------------------------------------------------------------
// Versions

/// Every change bumps the version by exactly one.
pub async fn version_increments_on_every_change(store: DynStore) {
    let f = flow(&store);
    let a = alice();
    let t = task(&f, "t").await;
    assert_eq!(t.version, 1);
    let t = f.start(&a, t.id, None).await.unwrap();
    assert_eq!(t.version, 2);
    let t = f.progress(&a, t.id, 5, None, None).await.unwrap();
    assert_eq!(t.version, 3);
    let patch = TaskPatch {
        title: Some("x".into()),
        ..TaskPatch::default()
    };
    let t = f.update_task(&a, t.id, &patch, None).await.unwrap();
    assert_eq!(t.version, 4);
    let t = f.update_task(&a, t.id, &patch, None).await.unwrap();
    assert_eq!(t.version, 4, "no change, no bump");
    assert_eq!(audit(&f, t.id).await.len(), 4);
}

/// An expected version that no longer matches is a conflict carrying the current version.
pub async fn stale_version_is_a_conflict(store: DynStore) {
    let f = flow(&store);
    let a = alice();
    let t = task(&f, "t").await;
    let started = f.start(&a, t.id, Some(1)).await.unwrap();
    assert_eq!(started.version, 2);
    let patch = TaskPatch {
        title: Some("late".into()),
        ..TaskPatch::default()
    };
    expect_mismatch(f.update_task(&a, t.id, &patch, Some(1)).await, 2);
    expect_mismatch(f.progress(&a, t.id, 5, None, Some(1)).await, 2);
    expect_mismatch(f.complete(&a, t.id, Some(7)).await, 2);
    expect_mismatch(f.delete_task(&root(), t.id, Some(1)).await, 2);
    assert_eq!(
        expect_err(
            f.complete(&a, t.id, Some(1)).await,
            "Version mismatch: task is at version 2"
        )
        .to_string(),
        "Version mismatch: task is at version 2"
    );
    assert_eq!(f.get_task(&a, t.id).await.unwrap(), started);
    assert_eq!(actions(&f, t.id).await, ["created", "started"]);
    // The lifecycle and policy are checked before the version.
    expect_invalid(
        f.start(&a, t.id, Some(1)).await,
        "Cannot start task with status 'in_progress'",
    );
    expect_forbidden(
        f.complete(&bob(), t.id, Some(1)).await,
        "Only the assignee or an admin can complete this task",
    );
}

/// A stale version is refused even when the patch would change nothing.
pub async fn stale_version_on_no_op_patch_is_a_conflict(store: DynStore) {
    let f = flow(&store);
    let t = task_in(&f, TaskStatus::InProgress).await;
    expect_mismatch(
        f.update_task(&alice(), t.id, &TaskPatch::default(), Some(1))
            .await,
        2,
    );
    let same = f
        .update_task(&alice(), t.id, &TaskPatch::default(), Some(2))
        .await
        .unwrap();
    assert_eq!(same, t);
}

/// Every write to a missing task is `Task not found`, before any lifecycle check.
pub async fn writes_to_missing_task_are_not_found(store: DynStore) {
    let f = flow(&store);
    let a = root();
    let id = 31_337;
    expect_not_found(f.start(&a, id, None).await);
    expect_not_found(f.progress(&a, id, 10, None, None).await);
    expect_not_found(f.submit_for_review(&a, id, None).await);
    expect_not_found(f.request_changes(&a, id, None).await);
    expect_not_found(f.complete(&a, id, Some(1)).await);
    expect_not_found(f.block(&a, id, None, None).await);
    expect_not_found(f.unblock(&a, id, None).await);
    expect_not_found(f.update_task(&a, id, &TaskPatch::default(), None).await);
    expect_not_found(f.delete_task(&a, id, None).await);
    expect_not_found(f.delete_task(&alice(), id, None).await);
}

// ---------------------------------------------------------------------------------------------
// Listings

/// Each filter narrows the listing, and filters combine.
pub async fn list_filters(store: DynStore) {
    let f = flow(&store);
    let a = alice();
    let parent = task(&f, "parent").await;
    let mk = |title: &str, project: &str, priority: Priority, parent_id: Option<i64>| NewTask {
        project_slug: Some(project.into()),
        priority: Some(priority),
        parent_id,
        ..NewTask::titled(title)
    };
    let t1 = f
        .create_task(&a, mk("t1", "web", Priority::High, Some(parent.id)))
        .await
        .unwrap();
    let t2 = f
        .create_task(&a, mk("t2", "web", Priority::Low, None))
        .await
        .unwrap();
    let t3 = f
        .create_task(&a, mk("t3", "api", Priority::High, Some(parent.id)))
        .await
        .unwrap();
    f.start(&bob(), t2.id, None).await.unwrap();
    f.start(&a, t3.id, None).await.unwrap();

    let ids = |filter: TaskFilter| {
        let f = f.clone();
        async move {
            let page = f.list_tasks(&alice(), &filter).await.unwrap();
            assert_eq!(page.total as usize, page.items.len());
            page.items.into_iter().map(|t| t.id).collect::<Vec<_>>()
        }
    };
    let all = TaskFilter::default();
    assert_eq!(ids(all.clone()).await, [parent.id, t1.id, t2.id, t3.id]);
    assert_eq!(
        ids(TaskFilter {
            status: Some(TaskStatus::InProgress),
            ..all.clone()
        })
        .await,
        [t2.id, t3.id]
    );
    assert_eq!(
        ids(TaskFilter {
            assigned_to: Some("bob".into()),
            ..all.clone()
        })
        .await,
        [t2.id]
    );
    assert_eq!(
        ids(TaskFilter {
            project: Some("web".into()),
            ..all.clone()
        })
        .await,
        [t1.id, t2.id]
    );
    assert_eq!(
        ids(TaskFilter {
            priority: Some(Priority::High),
            ..all.clone()
        })
        .await,
        [t1.id, t3.id]
    );
    assert_eq!(
        ids(TaskFilter {
            parent_id: Some(parent.id),
            ..all.clone()
        })
        .await,
        [t1.id, t3.id]
    );
    assert_eq!(
        ids(TaskFilter {
            parent_id: Some(0),
            ..all.clone()
        })
        .await
        .len(),
        4,
        "parent_id 0 is no filter"
    );
    assert_eq!(
        ids(TaskFilter {
            project: Some("web".into()),
            priority: Some(Priority::High),
            status: Some(TaskStatus::Pending),
            ..all.clone()
        })
        .await,
        [t1.id]
    );
    assert!(
        ids(TaskFilter {
            status: Some(TaskStatus::Completed),
            ..all
        })
        .await
        .is_empty()
    );
}

/// Pages are ordered by id, and the total ignores limit and offset.
pub async fn list_pagination_and_totals(store: DynStore) {
    let f = flow(&store);
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(task(&f, &format!("t{i}")).await.id);
    }
    let page = |limit, offset| TaskFilter {
        limit,
        offset,
        ..TaskFilter::default()
    };
    let p1 = f.list_tasks(&alice(), &page(3, 0)).await.unwrap();
    let p3 = f.list_tasks(&alice(), &page(3, 6)).await.unwrap();
    let past = f.list_tasks(&alice(), &page(3, 100)).await.unwrap();
    assert_eq!(p1.total, 7);
    assert_eq!(
        p1.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        created[..3]
    );
    assert_eq!(
        p3.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        created[6..]
    );
    assert_eq!(p3.total, 7);
    assert!(past.items.is_empty());
    assert_eq!(past.total, 7);
}

/// Limit must be 1..=100.
pub async fn list_checks_limit_and_offset(store: DynStore) {
    let f = flow(&store);
    for limit in [0, 101] {
        let filter = TaskFilter {
            limit,
            ..TaskFilter::default()
        };
        let e = expect_validation(f.list_tasks(&alice(), &filter).await, "limit");
        assert_eq!(e.to_string(), "limit: must be between 1 and 100");
        let filter = AuditFilter {
            limit,
            ..AuditFilter::default()
        };
        expect_validation(f.list_audit(&alice(), &filter).await, "limit");
    }
    let filter = TaskFilter {
        offset: u64::MAX,
        ..TaskFilter::default()
    };
    expect_validation(f.list_tasks(&alice(), &filter).await, "offset");
}

// ---------------------------------------------------------------------------------------------
// Delete

/// Only admins delete.
pub async fn delete_is_admin_only(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    expect_forbidden(
        f.delete_task(&alice(), t.id, None).await,
        "Admin role required",
    );
    assert!(f.get_task(&alice(), t.id).await.is_ok());
    f.delete_task(&root(), t.id, None).await.unwrap();
    expect_not_found(f.get_task(&alice(), t.id).await);
}

/// A task with subtasks cannot be deleted until they are gone.
pub async fn delete_refused_with_subtasks(store: DynStore) {
    let f = flow(&store);
    let parent = task(&f, "parent").await;
    let child = f
        .create_task(
            &alice(),
            NewTask {
                parent_id: Some(parent.id),
                ..NewTask::titled("child")
            },
        )
        .await
        .unwrap();
    let e = expect_err(
        f.delete_task(&root(), parent.id, None).await,
        "Task has subtasks",
    );
    assert!(matches!(e, Error::HasSubtasks));
    assert_eq!(actions(&f, parent.id).await, ["created"]);
    f.delete_task(&root(), child.id, None).await.unwrap();
    f.delete_task(&root(), parent.id, None).await.unwrap();
}

/// After a delete, the task's audit rows stay, including the `deleted` row.
pub async fn delete_keeps_audit_trail(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        project_slug: Some("p".into()),
        ..NewTask::titled("doomed")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    f.start(&alice(), t.id, None).await.unwrap();
    f.delete_task(&root(), t.id, None).await.unwrap();
    let rows = audit(&f, t.id).await;
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["created", "started", "deleted"]
    );
    let deleted = rows.last().unwrap();
    assert_eq!(deleted.actor_id, "root");
    assert_eq!(deleted.project_slug.as_deref(), Some("p"));
    assert_eq!(deleted.task_id, t.id);
    let filter = AuditFilter {
        task_id: Some(t.id),
        ..AuditFilter::default()
    };
    assert_eq!(f.list_audit(&alice(), &filter).await.unwrap().total, 3);
}

/// Delete honours an expected version.
pub async fn delete_honours_expected_version(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "t").await;
    f.start(&alice(), t.id, None).await.unwrap();
    expect_mismatch(f.delete_task(&root(), t.id, Some(1)).await, 2);
    f.delete_task(&root(), t.id, Some(2)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Audit

/// Audit filters by task, actor, action and project, oldest first, with totals.
pub async fn audit_filters_and_pagination(store: DynStore) {
    let f = flow(&store);
    let web = NewTask {
        project_slug: Some("web".into()),
        ..NewTask::titled("w")
    };
    let t1 = f.create_task(&alice(), web).await.unwrap();
    let t2 = task(&f, "other").await;
    f.start(&bob(), t1.id, None).await.unwrap();
    f.start(&alice(), t2.id, None).await.unwrap();
    f.progress(&bob(), t1.id, 50, None, None).await.unwrap();

    let query = |filter: AuditFilter| {
        let f = f.clone();
        async move { f.list_audit(&alice(), &filter).await.unwrap() }
    };
    let all = query(AuditFilter::default()).await;
    assert_eq!(all.total, 5);
    let ids: Vec<i64> = all.items.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first");

    let by_task = query(AuditFilter {
        task_id: Some(t1.id),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        by_task
            .items
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["created", "started", "progressed"]
    );
    let by_actor = query(AuditFilter {
        actor_id: Some("bob".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_actor.total, 2);
    let by_action = query(AuditFilter {
        action: Some("started".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_action.total, 2);
    let unknown_action = query(AuditFilter {
        action: Some("no such action".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(unknown_action.total, 0);
    let by_project = query(AuditFilter {
        project: Some("web".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_project.total, 3);
    let page = query(AuditFilter {
        limit: 2,
        offset: 1,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(page.total, 5);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[1..3]
    );
}

/// The audit trail of a task that never existed is empty, not an error.
pub async fn audit_of_unknown_task_is_empty(store: DynStore) {
    let f = flow(&store);
    assert!(audit(&f, 123_456).await.is_empty());
}

/// Each row keeps the task's project as it was after that change.
pub async fn audit_keeps_project_after_change(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        project_slug: Some("old".into()),
        ..NewTask::titled("t")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    let patch = TaskPatch {
        project_slug: Some(Some("new".into())),
        ..TaskPatch::default()
    };
    f.update_task(&alice(), t.id, &patch, None).await.unwrap();
    let projects: Vec<_> = audit(&f, t.id)
        .await
        .into_iter()
        .map(|r| r.project_slug)
        .collect();
    assert_eq!(projects, [Some("old".to_owned()), Some("new".to_owned())]);
}

// ---------------------------------------------------------------------------------------------
// Workers

/// A registered agent's changes are recorded with `actor_type` agent.
pub async fn worker_registration_makes_agent(store: DynStore) {
    let f = flow(&store);
    let w = f
        .put_worker(&root(), "claude", ActorType::Agent, Some("Claude".into()))
        .await
        .unwrap();
    assert_eq!(w.worker_type, ActorType::Agent);
    let agent = Identity::user("claude");
    assert_eq!(f.actor(&agent).await.unwrap().actor_type, ActorType::Agent);
    let t = f.create_task(&agent, NewTask::titled("t")).await.unwrap();
    f.start(&agent, t.id, None).await.unwrap();
    f.complete(&alice(), t.id, None)
        .await
        .expect_err("alice is not the assignee");
    let rows = audit(&f, t.id).await;
    assert!(rows.iter().all(|r| r.actor_type == ActorType::Agent));
    assert_eq!(rows.len(), 2);
    assert_eq!(
        f.actor(&alice()).await.unwrap().actor_type,
        ActorType::Human
    );
}

/// Re-registering replaces type and name (an omitted name clears it) and keeps `created_at`.
pub async fn worker_reregistration_replaces_and_keeps_created_at(store: DynStore) {
    let f = flow(&store);
    let first = f
        .put_worker(&root(), "w1", ActorType::Agent, Some("Bot".into()))
        .await
        .unwrap();
    let second = f
        .put_worker(&root(), "w1", ActorType::Human, None)
        .await
        .unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.worker_type, ActorType::Human);
    assert_eq!(second.name, None);
    assert_eq!(f.get_worker(&alice(), "w1").await.unwrap(), second);
    assert_eq!(f.list_workers(&alice()).await.unwrap().len(), 1);
}

/// Only admins register workers, and ids must not be blank.
pub async fn worker_registration_is_admin_only(store: DynStore) {
    let f = flow(&store);
    expect_forbidden(
        f.put_worker(&alice(), "alice", ActorType::Agent, None)
            .await,
        "Admin role required",
    );
    expect_validation(
        f.put_worker(&root(), "  ", ActorType::Agent, None).await,
        "id",
    );
    assert!(f.list_workers(&alice()).await.unwrap().is_empty());
}

/// Workers are listed by id; a missing one is `Worker not found`.
pub async fn workers_listing_and_lookup(store: DynStore) {
    let f = flow(&store);
    for id in ["zeta", "alpha", "mid"] {
        f.put_worker(&root(), id, ActorType::Agent, None)
            .await
            .unwrap();
    }
    let ids: Vec<_> = f
        .list_workers(&alice())
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["alpha", "mid", "zeta"]);
    let e = expect_err(f.get_worker(&alice(), "nobody").await, "Worker not found");
    assert!(matches!(e, Error::NotFound(_)));
}

/// A row keeps the actor type it was written with, even after the worker changes.
pub async fn audit_keeps_actor_type_as_written(store: DynStore) {
    let f = flow(&store);
    f.put_worker(&root(), "bot", ActorType::Agent, None)
        .await
        .unwrap();
    let bot = Identity::user("bot");
    let t = f.create_task(&bot, NewTask::titled("t")).await.unwrap();
    f.put_worker(&root(), "bot", ActorType::Human, None)
        .await
        .unwrap();
    f.start(&bot, t.id, None).await.unwrap();
    let types: Vec<_> = audit(&f, t.id)
        .await
        .into_iter()
        .map(|r| r.actor_type)
        .collect();
    assert_eq!(types, [ActorType::Agent, ActorType::Human]);
}

// ---------------------------------------------------------------------------------------------
// Storage fidelity

/// Timestamps, unicode and JSON contexts come back exactly as written.
pub async fn timestamps_round_trip(store: DynStore) {
    let f = flow(&store);
    let new = NewTask {
        description: Some("emoji 🦀, quotes \" ' and\nnewlines".into()),
        ..NewTask::titled("ünïcødé")
    };
    let t = f.create_task(&alice(), new).await.unwrap();
    let read = f.get_task(&alice(), t.id).await.unwrap();
    assert_eq!(read, t);
    assert_eq!(
        read.created_at.timestamp_subsec_nanos() % 1_000,
        0,
        "microseconds"
    );
    let note = "note with \"quotes\" and 🦀".to_owned();
    f.start(&alice(), t.id, None).await.unwrap();
    let p = f
        .progress(&alice(), t.id, 1, Some(note.clone()), None)
        .await
        .unwrap();
    let row = audit(&f, t.id).await.pop().unwrap();
    assert_eq!(row.context, Some(json!({"percent": 1, "note": note})));
    assert_eq!(row.timestamp, p.updated_at);
}

/// The store answers a health check.
pub async fn health_ping(store: DynStore) {
    flow(&store).health().await.expect("ping");
}

// ---------------------------------------------------------------------------------------------
// Races

/// 50 concurrent starts on one task: exactly 1 winner, 49 lifecycle refusals, 1 `started` row.
pub async fn race_concurrent_starts(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "contested").await;
    let attempts = (0..50).map(|i| {
        let f = f.clone();
        tokio::spawn(async move {
            f.start(&Identity::user(format!("agent-{i}")), t.id, None)
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task panicked"))
        .collect();
    let winners: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::InvalidTransition(_)), "{e:?}");
            assert_eq!(e.to_string(), "Cannot start task with status 'in_progress'");
        }
    }
    let stored = f.get_task(&alice(), t.id).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.assigned_to, winners[0].assigned_to);
    let started: Vec<_> = audit(&f, t.id)
        .await
        .into_iter()
        .filter(|r| r.action == "started")
        .collect();
    assert_eq!(started.len(), 1, "exactly one started row");
    assert_eq!(Some(&started[0].actor_id), stored.assigned_to.as_ref());
}

/// 20 concurrent patches with the same expected version: exactly 1 success, 19 conflicts.
pub async fn race_concurrent_patches_same_version(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "contested").await;
    let attempts = (0..20).map(|i| {
        let f = f.clone();
        tokio::spawn(async move {
            let patch = TaskPatch {
                title: Some(format!("title {i}")),
                ..TaskPatch::default()
            };
            f.update_task(&alice(), t.id, &patch, Some(1)).await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task panicked"))
        .collect();
    let ok: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "exactly one success");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::VersionMismatch { current: 2 }), "{e:?}");
        }
    }
    let stored = f.get_task(&alice(), t.id).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.title, ok[0].title);
    assert_eq!(actions(&f, t.id).await, ["created", "updated"]);
}

/// 20 concurrent patches without an expected version all apply, one version each.
pub async fn race_concurrent_patches_without_version(store: DynStore) {
    let f = flow(&store);
    let t = task(&f, "contested").await;
    let attempts = (0..20).map(|i| {
        let f = f.clone();
        tokio::spawn(async move {
            let patch = TaskPatch {
                title: Some(format!("title {i}")),
                ..TaskPatch::default()
            };
            f.update_task(&alice(), t.id, &patch, None).await
        })
    });
    let results = join_all(attempts).await;
    let mut versions = HashSet::new();
    for r in results {
        let task = r
            .expect("task panicked")
            .expect("a patch without If-Match re-applies");
        versions.insert(task.version);
    }
    let stored = f.get_task(&alice(), t.id).await.unwrap();
    // A patch may find its title already set by a racer with the same text; here every title is
    // distinct, so every patch is a change.
    assert_eq!(stored.version, 21);
    assert_eq!(versions.len(), 20, "each patch got its own version");
    assert_eq!(audit(&f, t.id).await.len(), 21);
}

/// 200 concurrent creates: 200 distinct ids and 200 `created` rows.
pub async fn race_concurrent_creates(store: DynStore) {
    let f = flow(&store);
    let attempts = (0..200).map(|i| {
        let f = f.clone();
        tokio::spawn(async move {
            f.create_task(&alice(), NewTask::titled(format!("t{i}")))
                .await
        })
    });
    let ids: HashSet<i64> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task panicked").expect("create").id)
        .collect();
    assert_eq!(ids.len(), 200);
    let tasks = f
        .list_tasks(&alice(), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(tasks.total, 200);
    let created = f
        .list_audit(
            &alice(),
            &AuditFilter {
                action: Some("created".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.total, 200);
    let mut audited = HashSet::new();
    let mut offset = 0;
    while offset < 200 {
        let page = f
            .list_audit(
                &alice(),
                &AuditFilter {
                    limit: 100,
                    offset,
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        audited.extend(page.items.iter().map(|e| e.task_id));
        offset += 100;
    }
    assert_eq!(audited, ids, "one created row per task");
}
