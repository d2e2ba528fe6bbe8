//! The backend conformance suite (feature `testkit`).
//!
//! Two kinds of case, each a plain `pub async fn case(store: DynStore) -> TestResult`:
//!
//! - [`store_cases`] call [`Store`] itself and pin the store contract: compare-and-set, lost
//!   races that write nothing, ids never reused, audit rows that outlive their task, the check
//!   order of delete, invariants checked inside the write, listings and their totals;
//! - [`flow_cases`] drive [`crate::TaskFlow`] over the store under real concurrency: the
//!   start race, the patch races, concurrent creates and the parent-cycle race;
//! - [`queue_cases`] pin the work queue ([`crate::QueueStore`]): dependency edges and their
//!   cycle check, the ready queue, claim-next under 50-way races, leases, heartbeats, the
//!   sweep and fencing;
//! - [`event_cases`] pin the live feed ([`crate::events`]): the audit horizon, replay, resume,
//!   filters, and a lossless feed under concurrent writers.
//!
//! Both run on every backend. The lifecycle, policy and validation rules need no real store:
//! they run once, in this crate's own tests, on [`crate::MemoryStore`].
//!
//! A backend runs the suite with one line in a test file:
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
//! race cases really race), so a failure names its case. A race case releases its contenders
//! together and asserts that compare-and-set writes were really lost ([`RaceStore`]), so a race
//! that happened to run one contender after another cannot pass.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::Barrier;

use crate::error::Result;
use crate::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Task, TaskDraft, TaskFilter, Worker,
};
use crate::store::{DynStore, Store, TaskWrite, Written};

pub mod event_cases;
pub mod flow_cases;
pub mod idempotency_cases;
pub mod queue_cases;
pub mod store_cases;

/// What a case returns: `Err` for an operation that failed where it must not (a broken
/// guarantee is an assertion failure, with a message).
pub type TestResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

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

/// Expands to one `#[tokio::test]` per conformance case (every store case and every flow case),
/// each on a fresh store from `$factory`, an `async fn()` returning a [`Fixture`] (or an
/// `Option<Fixture>`, see [`IntoFixture`]).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        mod store_cases {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_cases!($crate::__conformance_test; store_cases; $factory);
        }
        mod flow_cases {
            #[allow(unused_imports)]
            use super::*;
            $crate::__flow_cases!($crate::__conformance_test; flow_cases; $factory);
        }
        mod queue_cases {
            #[allow(unused_imports)]
            use super::*;
            $crate::__queue_cases!($crate::__conformance_test; queue_cases; $factory);
        }
        mod idempotency_cases {
            #[allow(unused_imports)]
            use super::*;
            $crate::__idempotency_cases!($crate::__conformance_test; idempotency_cases; $factory);
        }
        mod event_cases {
            #[allow(unused_imports)]
            use super::*;
            $crate::__event_cases!($crate::__conformance_test; event_cases; $factory);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($module:ident; $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() -> $crate::testkit::TestResult {
                let Some(fixture) = $crate::testkit::IntoFixture::into_fixture($factory().await)
                else {
                    return Ok(());
                };
                $crate::testkit::$module::$case(fixture.store.clone()).await?;
                drop(fixture);
                Ok(())
            }
        )+
    };
}

/// The store cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            insert_assigns_ids_and_writes_the_created_row,
            insert_refuses_a_missing_parent,
            ids_are_never_reused,
            update_is_compare_and_set,
            update_keeps_created_at,
            update_refuses_a_missing_parent,
            update_checks_the_parent_cycle_inside_the_write,
            delete_is_compare_and_set_and_keeps_the_audit_trail,
            delete_checks_the_version_before_subtasks,
            lost_update_races_write_nothing,
            lost_delete_races_write_nothing,
            concurrent_inserts_get_distinct_ids,
            concurrent_reparents_never_form_a_cycle,
            list_tasks_filters_orders_and_counts,
            list_audit_filters_orders_and_counts,
            workers_upsert_keeps_created_at,
            values_round_trip_exactly,
            ping_answers,
            calls_after_close_are_unavailable,
        );
    };
}

/// The flow cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __flow_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            race_concurrent_starts,
            race_concurrent_patches_same_version,
            race_concurrent_patches_without_version,
            race_concurrent_creates,
            race_concurrent_reparents,
            text_with_nul_is_refused_everywhere,
        );
    };
}

/// The work queue cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __queue_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            dependency_edges_are_written_with_their_task,
            dependency_cycles_are_refused_inside_the_write,
            concurrent_opposite_dependencies_never_form_a_cycle,
            delete_refuses_dependents_and_drops_own_edges,
            ready_queue_orders_by_urgency_then_id,
            claim_next_takes_the_head_and_writes_the_started_row,
            concurrent_claims_never_share_a_task,
            lease_extension_keeps_the_version,
            a_write_that_read_before_a_heartbeat_cannot_undo_it,
            expired_leases_are_listed_and_reclaimed_exactly_once,
            heartbeat_keeps_a_lease_past_its_first_expiry,
            a_stale_holder_is_fenced_off,
            start_waits_for_unfinished_dependencies,
        );
    };
}

/// The live feed cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __event_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            horizon_and_range_reads,
            replay_then_live_then_resume,
            filters_apply_to_replay_and_live_rows,
            concurrent_writers_lose_and_repeat_nothing,
        );
    };
}

/// The idempotency cases, in one place. `$callback` receives `$args; case, case, ...`.
#[doc(hidden)]
#[macro_export]
macro_rules! __idempotency_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            a_replayed_create_returns_the_same_task_and_writes_once,
            a_replayed_claim_returns_the_same_task_and_fence,
            concurrent_requests_with_one_key_run_once,
            a_key_reused_for_another_request_is_refused,
            keys_belong_to_their_caller,
            refusals_are_replayed_and_validation_errors_are_not,
            every_kind_of_write_is_replayed,
            the_outcome_is_stored_with_the_change,
            a_reservation_whose_request_died_is_taken_over,
            records_expire_and_are_purged,
        );
    };
}

/// A store wrapper for race cases: it counts lost compare-and-set writes, and can hold the
/// first `n` reads of a task (or the first `n` updates) until all `n` have arrived, so that
/// contenders really read the same version (or really write at the same time) however the
/// scheduler runs them.
pub struct RaceStore {
    inner: DynStore,
    read_gate: Option<Gate>,
    write_gate: Option<Gate>,
    stale: AtomicUsize,
    done: AtomicUsize,
    fail_settle: bool,
}

struct Gate {
    arrived: AtomicUsize,
    size: usize,
    barrier: Barrier,
}

impl Gate {
    fn new(size: usize) -> Self {
        Gate {
            arrived: AtomicUsize::new(0),
            size,
            barrier: Barrier::new(size),
        }
    }

    /// The first `size` callers wait here for each other; later ones pass straight on.
    async fn pass(&self) {
        if self.arrived.fetch_add(1, Ordering::SeqCst) < self.size {
            self.barrier.wait().await;
        }
    }
}

impl RaceStore {
    /// A wrapper over `inner` that only counts.
    pub fn new(inner: DynStore) -> Self {
        RaceStore {
            inner,
            read_gate: None,
            write_gate: None,
            stale: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            fail_settle: false,
        }
    }

    /// Fails every idempotency `settle` (the step after a request), as if the process died
    /// right after its change committed: only what the change stored with itself remains.
    pub fn fail_settle(mut self) -> Self {
        self.fail_settle = true;
        self
    }

    /// Holds the first `n` calls of `get_task`, each after its read, until all `n` have read.
    pub fn gate_reads(mut self, n: usize) -> Self {
        self.read_gate = Some(Gate::new(n));
        self
    }

    /// Holds the first `n` calls of `update_task` until all `n` have arrived.
    pub fn gate_writes(mut self, n: usize) -> Self {
        self.write_gate = Some(Gate::new(n));
        self
    }

    /// Updates and deletes that found the row at another version ([`Written::Stale`]).
    pub fn stale_writes(&self) -> usize {
        self.stale.load(Ordering::SeqCst)
    }

    /// Updates and deletes that were written.
    pub fn done_writes(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    fn count<T>(&self, written: &Written<T>) {
        match written {
            Written::Done(_) => self.done.fetch_add(1, Ordering::SeqCst),
            Written::Stale => self.stale.fetch_add(1, Ordering::SeqCst),
            Written::Refused(_) => 0,
        };
    }
}

#[async_trait]
impl Store for RaceStore {
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>> {
        self.inner.insert_task(task, audit).await
    }

    async fn get_task(&self, id: i64) -> Result<Option<Task>> {
        // Read first, then wait: every gated reader has its copy before any of them goes on.
        let task = self.inner.get_task(id).await?;
        if let Some(gate) = &self.read_gate {
            gate.pass().await;
        }
        Ok(task)
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>> {
        self.inner.list_tasks(filter).await
    }

    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>> {
        if let Some(gate) = &self.write_gate {
            gate.pass().await;
        }
        let written = self.inner.update_task(write).await?;
        self.count(&written);
        Ok(written)
    }

    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>> {
        let written = self.inner.delete_task(id, expected_version, audit).await?;
        self.count(&written);
        Ok(written)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>> {
        self.inner.list_audit(filter).await
    }

    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>> {
        self.inner.task_audit(task_id).await
    }

    async fn audit_horizon(&self) -> Result<i64> {
        self.inner.audit_horizon().await
    }

    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &crate::events::FeedFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.inner.audit_after(after, upto, filter, limit).await
    }

    async fn put_worker(&self, worker: &Worker) -> Result<Worker> {
        self.inner.put_worker(worker).await
    }

    async fn get_worker(&self, id: &str) -> Result<Option<Worker>> {
        self.inner.get_worker(id).await
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        self.inner.list_workers().await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }

    fn queue(&self) -> Option<&dyn crate::QueueStore> {
        self.inner.queue()
    }

    fn idempotency(&self) -> Option<&dyn crate::IdempotencyStore> {
        self.inner
            .idempotency()
            .map(|_| self as &dyn crate::IdempotencyStore)
    }
}

/// Delegates to the wrapped store's records, failing `settle` when asked to.
#[async_trait]
impl crate::IdempotencyStore for RaceStore {
    async fn reserve(
        &self,
        r: &crate::idempotency::Reserve,
    ) -> Result<crate::idempotency::Reservation> {
        self.records()?.reserve(r).await
    }

    async fn settle(&self, record: &crate::idempotency::OutcomeRecord) -> Result<()> {
        if self.fail_settle {
            return Err(crate::Error::backend("settle failed on purpose"));
        }
        self.records()?.settle(record).await
    }

    async fn forget(&self, caller: &str, key: &str) -> Result<()> {
        self.records()?.forget(caller, key).await
    }

    async fn purge_expired(&self, now: crate::model::Timestamp) -> Result<u64> {
        self.records()?.purge_expired(now).await
    }
}

impl RaceStore {
    fn records(&self) -> Result<&dyn crate::IdempotencyStore> {
        self.inner
            .idempotency()
            .ok_or_else(|| crate::Error::Unsupported {
                operation: "idempotency keys".to_owned(),
            })
    }
}

/// `Arc` a [`RaceStore`] and keep a handle on it for its counters.
pub fn race(store: RaceStore) -> (Arc<RaceStore>, DynStore) {
    let race = Arc::new(store);
    let dyn_store: DynStore = race.clone();
    (race, dyn_store)
}
