//! The persistence surface every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::events::FeedFilter;
use crate::idempotency::{OutcomeRecord, Reservation, Reserve};
use crate::lifecycle::{ReadyRule, Transition};
use crate::model::{
    Actor, AuditDraft, AuditEntry, AuditFilter, Page, ReadyFilter, Task, TaskDraft, TaskFilter,
    TaskStatus, Timestamp, Worker,
};

/// A store shared across tasks and threads; the server picks its backend at run time.
pub type DynStore = Arc<dyn Store>;

/// The smallest persistence surface that keeps taskflow's guarantees.
///
/// A store persists; it never decides. Whether a change is legal is settled by
/// [`crate::lifecycle`] before a store sees it. What a store guarantees, and what the
/// conformance suite ([`crate::testkit`], feature `testkit`) checks on every backend:
///
/// - every write and its audit row commit in one transaction, or neither does;
/// - [`update_task`](Store::update_task) and [`delete_task`](Store::delete_task) are
///   compare-and-set: each names the version it expects, and of two writers that expect the
///   same version only one wins; the loser gets [`Written::Stale`] and has written nothing;
/// - the invariants a write lists ([`Invariant`]) are checked inside its transaction, so two
///   concurrent writes cannot both pass a check that only one of them may pass;
/// - a task's `parent_id` always names a stored task ([`Conflict::ParentMissing`] otherwise);
/// - ids (of tasks and audit rows) are assigned by the store and never reused;
/// - listings are ordered by id, and their totals ignore the paging;
/// - audit rows outlive their task;
/// - the audit trail has a committed prefix ([`Store::audit_horizon`]) that live feeds read up
///   to, so that a feed never skips a row that commits late.
///
/// Backends keep a richer private error type and convert it to [`crate::Error`]:
/// [`crate::Error::Unavailable`] when the database cannot be reached, otherwise
/// [`crate::Error::Backend`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts `task` and its `created` row (about the new task) in one transaction, and
    /// returns the task with the id the store assigned. Refuses a parent that does not exist
    /// with [`Conflict::ParentMissing`]. Never answers [`Written::Stale`].
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>>;

    /// Reads one task.
    async fn get_task(&self, id: i64) -> Result<Option<Task>>;

    /// Lists tasks matching `filter`, ordered by id, with the total count of matches.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>>;

    /// Compare-and-set: if the stored task `write.task.id` is at `write.expected_version` and
    /// its lease expiry is still `write.expected_lease_expires_at` (a heartbeat renews a lease
    /// without a new version, and must not be undone by a write that read the task before it),
    /// replaces it with `write.task` (every field but `created_at`, which never changes) and
    /// writes `write.audit` about it, in one transaction, after checking `write.invariants`
    /// inside that transaction. [`Written::Stale`] when the task is at another version or gone;
    /// [`Written::Refused`] when an invariant or the parent would not hold. Either way nothing
    /// was written. The version (and lease) is checked first. An invariant the store does not know (the
    /// enum grows) fails the write with a backend error; it is never skipped.
    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>>;

    /// Compare-and-set delete: if task `id` is at `expected_version`, removes it (and the
    /// dependency edges it holds) and writes `audit` about it in one transaction. The version is
    /// checked first ([`Written::Stale`]), then subtasks ([`Conflict::HasSubtasks`]), then tasks
    /// that depend on it ([`Conflict::HasDependents`]). The task's audit rows stay.
    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>>;

    /// Audit rows matching `filter`, oldest first, with the total count of matches.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>>;

    /// Every audit row of one task, oldest first; empty for a task that never existed.
    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>>;

    /// The audit trail's committed prefix: an id such that every audit row with an id up to it
    /// has committed, or never will (its transaction rolled back), so that no row can appear
    /// at or below it later; `0` when there is none. It never goes down. A store whose rows
    /// can commit out of id order (Postgres) must wait for the writes in flight to finish
    /// before answering ([`crate::events`]).
    async fn audit_horizon(&self) -> Result<i64>;

    /// Audit rows with `after < id <= upto` that match `filter`, oldest first, at most
    /// `limit`. Called with an `upto` no higher than [`audit_horizon`](Store::audit_horizon)
    /// answered, so the answer is final.
    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &FeedFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;

    /// Inserts or replaces a worker. On replace, the stored `created_at` is kept and every other
    /// field is taken from `worker`. Returns the worker as stored.
    async fn put_worker(&self, worker: &Worker) -> Result<Worker>;

    /// Reads one worker.
    async fn get_worker(&self, id: &str) -> Result<Option<Worker>>;

    /// Every worker, ordered by id.
    async fn list_workers(&self) -> Result<Vec<Worker>>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Releases connections. Calls made after this fail with [`crate::Error::Unavailable`].
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// The work queue (dependencies, the ready queue, claim-next, leases), if this store has
    /// it. Operations that need it answer [`crate::Error::Unsupported`] on a store without it.
    fn queue(&self) -> Option<&dyn QueueStore> {
        None
    }

    /// Idempotency records ([`crate::idempotency`]), if this store keeps them. A store that
    /// does must also write the [`crate::model::AuditDraft::outcome`] of every change it
    /// writes, in the same transaction. Requests with a key answer [`crate::Error::Unsupported`]
    /// on a store without it.
    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        None
    }
}

/// Idempotency records, an optional capability of a [`Store`] ([`Store::idempotency`]): one
/// row per (caller, key), holding the request's fingerprint and, once it finished, its encoded
/// outcome. A store with this capability writes the outcome a change's audit row carries
/// ([`crate::model::AuditDraft::outcome`]) in the change's own transaction, replacing the
/// reservation.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `r.key` for `r.caller` and the request `r.fingerprint`, in a transaction of its
    /// own, or reports what holds it: the stored outcome of a finished request with the same
    /// fingerprint ([`Reservation::Replay`]), a different request ([`Reservation::Mismatch`]),
    /// or a request still running ([`Reservation::InProgress`]). A reservation made before
    /// `r.stale_before` that never got an outcome is taken over; a record past its expiry is
    /// treated as absent. Of concurrent reservations of one key, exactly one is `Reserved`.
    async fn reserve(&self, r: &Reserve) -> Result<Reservation>;

    /// Stores the outcome of a request that changed nothing (a refusal, or a write with no
    /// effect), replacing its reservation.
    async fn settle(&self, record: &OutcomeRecord) -> Result<()>;

    /// Drops the reservation of `key` by `caller`, so that a retry runs again. A record that
    /// already holds an outcome (a change stored it with itself) stays: it is never forgotten.
    async fn forget(&self, caller: &str, key: &str) -> Result<()>;

    /// Deletes the records that expired at `now`; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64>;
}

/// The work queue, an optional capability of a [`Store`] ([`Store::queue`]): dependency edges
/// between tasks, the ready queue, an atomic claim-next, and leases. Every write here keeps
/// the store's guarantees: one transaction with its audit row (a heartbeat writes none and
/// changes no version), compare-and-set, checks inside the transaction.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// The edges of task `task_id`: the tasks it depends on, with their status, and the tasks
    /// that depend on it; ids ascending.
    async fn dependencies(&self, task_id: i64) -> Result<Dependencies>;

    /// Adds or removes one edge of `write.task`, as a compare-and-set change of that task
    /// (version and lease as for [`Store::update_task`]; version + 1, its audit row) in one
    /// transaction. Adding refuses a target that does not
    /// exist ([`Conflict::DependencyMissing`]), an edge that would close a cycle (checked
    /// inside the transaction: [`Conflict::DependencyCycle`]) and an edge that exists
    /// ([`Conflict::DependencyExists`]); removing refuses an edge that does not exist
    /// ([`Conflict::NoSuchDependency`]).
    async fn write_dependency(&self, write: &DependencyWrite) -> Result<Written<()>>;

    /// The tasks ready for `actor_id` (see [`ReadyRule`]), most urgent first, then by id, with
    /// the total count.
    async fn ready_tasks(
        &self,
        actor_id: &str,
        filter: &ReadyFilter,
        rule: &ReadyRule,
    ) -> Result<Page<Task>>;

    /// Takes the first task of `claim.actor`'s ready queue and writes what `claim.decide` makes
    /// of it, with its audit row, in one transaction; `None` when nothing is ready. Concurrent
    /// claims never take the same task, and never pick the head of the queue, lose, and retry:
    /// a store serialises claims (SQLite's single writer) or lets each lock its candidate and
    /// skip the ones others hold (Postgres `FOR UPDATE SKIP LOCKED`).
    async fn claim_next(&self, claim: &Claim) -> Result<Option<Task>>;

    /// Renews a lease without changing the task's version: if task `write.id` is still at
    /// `write.expected_version`, sets its lease expiry and length. [`Written::Stale`] otherwise.
    async fn extend_lease(&self, write: &LeaseWrite) -> Result<Written<()>>;

    /// Up to `limit` tasks whose lease ran out at `now` (a non-null `lease_expires_at` not
    /// after it; only `in_progress` tasks hold a lease), oldest expiry first, then by id.
    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>>;
}

/// A task's dependency edges, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// The tasks it depends on, with their status now; ids ascending.
    pub depends_on: Vec<(i64, TaskStatus)>,
    /// The tasks that depend on it; ids ascending.
    pub dependents: Vec<i64>,
}

/// Which edge a [`DependencyWrite`] adds or removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeChange {
    /// The task starts depending on `depends_on`.
    Add {
        /// The task it will wait for.
        depends_on: i64,
    },
    /// The task stops depending on `depends_on`.
    Remove {
        /// The task it waited for.
        depends_on: i64,
    },
}

/// A compare-and-set change of one task's dependency edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyWrite {
    /// The dependent task as it must be stored (version + 1).
    pub task: Task,
    /// The version the stored task must be at.
    pub expected_version: i64,
    /// The lease expiry the stored task must still have (`None`: no lease); see
    /// [`Store::update_task`].
    pub expected_lease_expires_at: Option<Timestamp>,
    /// The edge.
    pub change: EdgeChange,
    /// The audit row about the task.
    pub audit: AuditDraft,
}

/// A heartbeat's renewal of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWrite {
    /// The task.
    pub id: i64,
    /// The version it must still be at (a heartbeat does not change it).
    pub expected_version: i64,
    /// The new expiry.
    pub lease_expires_at: Timestamp,
    /// The new length, in seconds.
    pub lease_seconds: i64,
}

/// What claim-next decides about the task a store picked: the lifecycle's claim, as a
/// [`Transition`] (or a refusal, which aborts the claim).
pub type ClaimDecision = dyn Fn(&Task) -> Result<Transition> + Send + Sync;

/// A claim-next request.
#[derive(Clone)]
pub struct Claim {
    /// Who claims.
    pub actor: Actor,
    /// Only tasks of this project.
    pub project: Option<String>,
    /// What makes a task ready.
    pub rule: ReadyRule,
    /// Turns the picked task into the claimed one and its `started` row.
    pub decide: Arc<ClaimDecision>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("actor", &self.actor)
            .field("project", &self.project)
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Written<T> {
    /// It was written, with its audit row.
    Done(T),
    /// The row was not at the expected version (or is gone): nothing was written. The caller
    /// may re-read and decide again.
    Stale,
    /// The write would have broken a rule of the data: nothing was written.
    Refused(Conflict),
}

/// Why a store refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// The task's `parent_id` names no stored task.
    ParentMissing {
        /// The parent asked for.
        parent: i64,
    },
    /// The task's new parent chain leads back to the task ([`Invariant::AcyclicParent`]).
    ParentCycle {
        /// The parent asked for.
        parent: i64,
    },
    /// The task to delete still has subtasks.
    HasSubtasks,
    /// The task to delete has tasks that depend on it.
    HasDependents,
    /// A dependency on a task that does not exist.
    DependencyMissing {
        /// The target asked for.
        depends_on: i64,
    },
    /// The new edge would close a cycle of dependencies.
    DependencyCycle {
        /// The target asked for.
        depends_on: i64,
    },
    /// The edge exists already.
    DependencyExists {
        /// Its target.
        depends_on: i64,
    },
    /// The edge to remove does not exist.
    NoSuchDependency {
        /// Its target.
        depends_on: i64,
    },
}

/// A rule that spans rows, which a write asks its store to check inside the write's own
/// transaction (SQLite: under its single writer; Postgres: under a lock that serialises graph
/// changes), so that two concurrent writes cannot each pass it alone and break it together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invariant {
    /// After the write, following `parent_id` from `parent` never reaches `task`: making
    /// `parent` the parent of `task` forms no cycle.
    AcyclicParent {
        /// The task being re-parented.
        task: i64,
        /// Its new parent.
        parent: i64,
    },
}

/// A compare-and-set update of one task: what to write, what the caller expects to replace, and
/// the audit row and invariants that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskWrite {
    /// The task as it must be stored.
    pub task: Task,
    /// The version the stored task must be at for the write to happen.
    pub expected_version: i64,
    /// The lease expiry the stored task must still have (`None`: no lease).
    pub expected_lease_expires_at: Option<Timestamp>,
    /// The one audit row that records the change (about `task.id`).
    pub audit: AuditDraft,
    /// Rules to check inside the transaction.
    pub invariants: Vec<Invariant>,
}
