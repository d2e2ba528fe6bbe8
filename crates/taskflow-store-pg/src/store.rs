//! [`Store`] for [`PgStore`]: every write is one transaction holding the change and its audit
//! row, every update or delete is a compare-and-set on `version`, and the invariants a write
//! carries are checked inside its transaction.
//!
//! The statements whose correctness depends on how concurrent transactions interleave live in
//! `queries/*.sql`, each with a comment saying why it is correct.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{QueryBuilder, Row, Transaction};
use taskflow_core::events::FeedFilter;
use taskflow_core::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Paging, Task, TaskDraft, TaskFilter, Timestamp,
    Worker,
};
use taskflow_core::{
    Conflict, IdempotencyStore, Invariant, QueueStore, Result, Store, TaskWrite, Written,
};

use crate::error::{PgError, is_fk_violation, is_parent_fk_violation};
use crate::idempotency::store_outcome;
use crate::rows::{self, audit_columns, task_columns, worker_columns};
use crate::{GRAPH_LOCK_KEY, PgStore};

/// How every write transaction starts. Spelled out rather than left to the server's
/// `default_transaction_isolation`: the compare-and-set writes and the graph lock rely on READ
/// COMMITTED taking a new snapshot for every statement (see `queries/graph_lock.sql`).
pub(crate) const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// How every transaction that writes an audit row starts: [`BEGIN`], then the feed lock
/// ([`FEED_LOCK_KEY`](crate::FEED_LOCK_KEY)) shared, in one round trip.
pub(crate) const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; \
     SELECT pg_advisory_xact_lock_shared(8386110886257190244)";

/// Reads the audit horizon: waits for every transaction that holds the feed lock shared to
/// end, then reads the audit id sequence (`queries/audit_horizon.sql`).
const AUDIT_HORIZON: &str = include_str!("../queries/audit_horizon.sql");

/// Takes the graph lock ([`GRAPH_LOCK_KEY`]) until the transaction ends.
pub(crate) const GRAPH_LOCK: &str = include_str!("../queries/graph_lock.sql");

/// Whether following `parent_id` from `$2` reaches `$1`.
const PARENT_CYCLE: &str = include_str!("../queries/parent_cycle.sql");

/// The compare-and-set update of one task.
const UPDATE_TASK: &str = include_str!("../queries/update_task.sql");

/// Locks a task's row and reads its version, first step of a delete.
const DELETE_LOCK: &str = include_str!("../queries/delete_lock.sql");

/// Whether a task has subtasks and dependents, second step of a delete.
const DELETE_BLOCKERS: &str = include_str!("../queries/delete_blockers.sql");

/// Deletes a task (and the edges it holds), last step of a delete.
const DELETE_TASK: &str = include_str!("../queries/delete_task.sql");

/// Writes `audit` about task `task_id` in the caller's transaction (`conn`) and, if it carries
/// an idempotency outcome ([`AuditDraft::outcome`]), stores that outcome as the record of its
/// (caller, key) in the same transaction (`queries/store_outcome.sql`), so that the change, its
/// audit row and its record commit together or not at all. `written` is the task as the
/// transaction wrote it (a new task with its id, an updated or claimed task with its stored
/// `created_at`), or `None` for a delete; the outcome is made from it
/// ([`OutcomeRecord::render`](taskflow_core::idempotency::OutcomeRecord::render)). An outcome
/// that cannot be made fails the write before its audit row is sent, and the caller's
/// transaction, dropped without a COMMIT, is rolled back whole.
///
/// Every write of this store that inserts an audit row goes through here: insert, update,
/// delete, dependency writes and claim-next.
pub(crate) async fn insert_audit(
    conn: &mut PgConnection,
    task_id: i64,
    audit: &AuditDraft,
    written: Option<&Task>,
) -> Result<(), PgError> {
    let outcome = match &audit.outcome {
        Some(record) => Some((record, record.render(written).map_err(PgError::Outcome)?)),
        None => None,
    };
    sqlx::query(
        "INSERT INTO audit_log \
             (task_id, project_slug, actor_id, actor_type, action, context, \"timestamp\") \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(task_id)
    .bind(audit.project_slug.as_deref())
    .bind(audit.actor_id.as_str())
    .bind(audit.actor_type.as_str())
    .bind(audit.action.as_str())
    .bind(audit.context.as_ref())
    .bind(audit.timestamp)
    .execute(&mut *conn)
    .await?;
    // Last, after the task rows and the audit row: the record's row lock is the last lock a
    // write takes (see `queries/store_outcome.sql`).
    if let Some((record, outcome)) = outcome {
        store_outcome(conn, record, &outcome).await?;
    }
    Ok(())
}

/// `task` as an update wrote it: every column from the write, and `created_at` as stored (the
/// update never changes it; `queries/update_task.sql` returns it).
pub(crate) fn as_written(task: &Task, created_at: Timestamp) -> Task {
    Task {
        created_at,
        ..task.clone()
    }
}

/// Ends a transaction that must write nothing, and returns `outcome`. A failed rollback is only
/// logged: no COMMIT was sent, so the server discards the transaction when the connection goes,
/// and `outcome` ("nothing was written") holds either way.
pub(crate) async fn abandon<T>(
    tx: Transaction<'static, Postgres>,
    outcome: Written<T>,
) -> Written<T> {
    if let Err(err) = tx.rollback().await {
        tracing::debug!(%err, "rolling back a refused or stale write failed");
    }
    outcome
}

/// Appends `WHERE …` for `filter` to `query`, binding every value.
fn push_task_filter(query: &mut QueryBuilder<Postgres>, filter: &TaskFilter) {
    query.push(" WHERE TRUE");
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(assignee) = &filter.assigned_to {
        query
            .push(" AND assigned_to = ")
            .push_bind(assignee.as_str());
    }
    if let Some(project) = &filter.project {
        query
            .push(" AND project_slug = ")
            .push_bind(project.as_str());
    }
    if let Some(priority) = filter.priority {
        query.push(" AND priority = ").push_bind(priority.as_str());
    }
    if let Some(parent) = filter.parent_id {
        query.push(" AND parent_id = ").push_bind(parent);
    }
}

/// Appends `WHERE …` for `filter` to `query`, binding every value.
fn push_audit_filter(query: &mut QueryBuilder<Postgres>, filter: &AuditFilter) {
    query.push(" WHERE TRUE");
    if let Some(task_id) = filter.task_id {
        query.push(" AND task_id = ").push_bind(task_id);
    }
    if let Some(actor) = &filter.actor_id {
        query.push(" AND actor_id = ").push_bind(actor.as_str());
    }
    if let Some(action) = &filter.action {
        query.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(project) = &filter.project {
        query
            .push(" AND project_slug = ")
            .push_bind(project.as_str());
    }
}

/// Builds one statement that returns a page of `table` in id order together with the number of
/// all matching rows. The count and the page come from one statement, so they see one snapshot.
/// The count is a single row joined to the (possibly empty) page, so a page past the end still
/// carries the total: its one row has NULL in every page column.
fn page_query(
    table: &'static str,
    columns: &'static str,
    paging: Paging,
    push_filter: impl Fn(&mut QueryBuilder<Postgres>),
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new("SELECT c.total, p.* FROM (SELECT count(*) AS total FROM ");
    query.push(table);
    push_filter(&mut query);
    query.push(") AS c LEFT JOIN LATERAL (SELECT ");
    query.push(columns).push(" FROM ").push(table);
    push_filter(&mut query);
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(paging.limit()));
    query.push(" OFFSET ").push_bind(paging.offset());
    query.push(") AS p ON TRUE ORDER BY p.id");
    query
}

/// Splits the rows of a [`page_query`] into the page and the total.
pub(crate) fn read_page<T>(
    rows: &[PgRow],
    read: impl Fn(&PgRow) -> Result<T, PgError>,
) -> Result<Page<T>, PgError> {
    let total = rows.first().map(rows::total).transpose()?.unwrap_or(0);
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Option<i64> = row.try_get("id")?;
        if id.is_some() {
            items.push(read(row)?);
        }
    }
    Ok(Page { items, total })
}

/// The `(task, parent)` pairs of the cycle checks `invariants` ask for. An invariant this build
/// does not know is an error: writing without checking it would break it silently.
fn cycle_checks(invariants: &[Invariant]) -> Result<Vec<(i64, i64)>, PgError> {
    invariants
        .iter()
        .map(|invariant| match *invariant {
            Invariant::AcyclicParent { task, parent } => Ok((task, parent)),
            ref other => Err(PgError::UnsupportedInvariant(format!("{other:?}"))),
        })
        .collect()
}

impl PgStore {
    async fn try_insert_task(
        &self,
        task: &TaskDraft,
        audit: &AuditDraft,
    ) -> Result<Written<Task>, PgError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let inserted = Shared::of_draft(task)
            .bind(sqlx::query(
                "INSERT INTO tasks \
                 (title, description, status, priority, progress_percent, assigned_to, \
                  project_slug, parent_id, created_at, updated_at, version, fence) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 RETURNING id",
            ))
            .bind(task.created_at)
            .bind(task.updated_at)
            .bind(task.version)
            .bind(task.fence)
            .fetch_one(&mut *tx)
            .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id")?,
            // The foreign key's check key-share locks the parent row, so a parent that exists
            // now stays until this transaction ends; one that is gone (or being deleted by a
            // transaction that then commits) fails here.
            Err(err) if is_parent_fk_violation(&err) => match task.parent_id {
                Some(parent) => {
                    return Ok(
                        abandon(tx, Written::Refused(Conflict::ParentMissing { parent })).await,
                    );
                }
                None => return Err(err.into()),
            },
            Err(err) => return Err(err.into()),
        };
        let inserted = task.clone().into_task(id);
        insert_audit(&mut tx, id, audit, Some(&inserted)).await?;
        tx.commit().await?;
        Ok(Written::Done(inserted))
    }

    async fn try_update_task(&self, write: &TaskWrite) -> Result<Written<()>, PgError> {
        let task = &write.task;
        let cycle_checks = cycle_checks(&write.invariants)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        // Two re-parents such as `A.parent = B` and `B.parent = A` touch different rows, so no
        // row lock orders them: each would check the graph without the other's uncommitted
        // edge, both would pass, and both would commit a cycle. So every write that carries an
        // `AcyclicParent` invariant first takes one transaction-level advisory lock, which
        // serialises them across connections and server processes. Writes that carry none take
        // no lock: the contract has a write list the invariant whenever it sets a new parent,
        // and inserting a task, keeping or clearing a parent, or deleting a task without
        // subtasks cannot close a cycle.
        //
        // Why the check below then sees the previous graph writer's commit: the lock is released
        // only when its holder's transaction ends, and PostgreSQL makes a commit visible to new
        // snapshots before it releases the committing transaction's locks. Under READ COMMITTED
        // (which `BEGIN` asks for) every statement takes a new snapshot when it starts, and the
        // lock is taken by a statement of its own, so every later statement of this transaction
        // has a snapshot taken after the lock was granted, which includes that commit. (Under
        // REPEATABLE READ the snapshot would be taken by the lock statement itself, before it
        // waited, and would miss it.)
        if !cycle_checks.is_empty() {
            sqlx::query(GRAPH_LOCK)
                .bind(GRAPH_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }

        let updated = update_query(
            task,
            write.expected_version,
            write.expected_lease_expires_at,
        )
        .fetch_optional(&mut *tx)
        .await;
        let updated = match updated {
            Ok(row) => row,
            Err(err) if is_parent_fk_violation(&err) => match task.parent_id {
                Some(parent) => {
                    return Ok(
                        abandon(tx, Written::Refused(Conflict::ParentMissing { parent })).await,
                    );
                }
                None => return Err(err.into()),
            },
            Err(err) => return Err(err.into()),
        };
        let Some(updated) = updated else {
            tracing::debug!(
                id = task.id,
                expected = write.expected_version,
                "update lost: version moved or task gone"
            );
            return Ok(abandon(tx, Written::Stale).await);
        };
        let written = as_written(task, updated.try_get("created_at")?);

        // After this transaction's own UPDATE, so the graph checked is the one it would commit.
        for (task_id, parent) in cycle_checks {
            let cycle: bool = sqlx::query_scalar(PARENT_CYCLE)
                .bind(task_id)
                .bind(parent)
                .fetch_one(&mut *tx)
                .await?;
            if cycle {
                tracing::debug!(task = task_id, parent, "update refused: parent cycle");
                return Ok(abandon(tx, Written::Refused(Conflict::ParentCycle { parent })).await);
            }
        }

        insert_audit(&mut tx, task.id, &write.audit, Some(&written)).await?;
        tx.commit().await?;
        Ok(Written::Done(()))
    }

    async fn try_delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>, PgError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // The version first: a missing task or another version is `Stale`, whatever its
        // subtasks. The row stays locked until this transaction ends.
        let version: Option<i64> = sqlx::query_scalar(DELETE_LOCK)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if version != Some(expected_version) {
            tracing::debug!(
                id,
                expected_version,
                ?version,
                "delete lost: version moved or task gone"
            );
            return Ok(abandon(tx, Written::Stale).await);
        }

        // Then the subtasks, then the tasks that depend on it, in that order.
        let blockers = sqlx::query(DELETE_BLOCKERS)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let has_subtasks: bool = blockers.try_get("has_subtasks")?;
        let has_dependents: bool = blockers.try_get("has_dependents")?;
        let refusal = if has_subtasks {
            Some(Conflict::HasSubtasks)
        } else if has_dependents {
            Some(Conflict::HasDependents)
        } else {
            None
        };
        if let Some(conflict) = refusal {
            return Ok(abandon(tx, Written::Refused(conflict)).await);
        }

        // The foreign keys refuse the delete if a subtask or a dependent slipped past the check
        // (the row lock says none can; see `queries/delete_task.sql`).
        let deleted = sqlx::query(DELETE_TASK).bind(id).execute(&mut *tx).await;
        let conflict = match deleted {
            Ok(done) if done.rows_affected() == 1 => None,
            // The row is locked by this transaction, so it cannot be gone.
            Ok(_) => return Ok(abandon(tx, Written::Stale).await),
            Err(err) if is_parent_fk_violation(&err) => Some(Conflict::HasSubtasks),
            Err(err) if is_fk_violation(&err, DEPENDS_ON_FKEY) => Some(Conflict::HasDependents),
            Err(err) => return Err(err.into()),
        };
        if let Some(conflict) = conflict {
            return Ok(abandon(tx, Written::Refused(conflict)).await);
        }

        insert_audit(&mut tx, id, audit, None).await?;
        tx.commit().await?;
        Ok(Written::Done(()))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_task(&self, task: &TaskDraft, audit: &AuditDraft) -> Result<Written<Task>> {
        Ok(self.try_insert_task(task, audit).await?)
    }

    async fn get_task(&self, id: i64) -> Result<Option<Task>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(PgError::from)?;
        Ok(row.as_ref().map(rows::task).transpose()?)
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Page<Task>> {
        let mut query = page_query("tasks", task_columns!(), filter.paging, |q| {
            push_task_filter(q, filter)
        });
        let found = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(read_page(&found, rows::task)?)
    }

    async fn update_task(&self, write: &TaskWrite) -> Result<Written<()>> {
        Ok(self.try_update_task(write).await?)
    }

    async fn delete_task(
        &self,
        id: i64,
        expected_version: i64,
        audit: &AuditDraft,
    ) -> Result<Written<()>> {
        Ok(self.try_delete_task(id, expected_version, audit).await?)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>> {
        let mut query = page_query("audit_log", audit_columns!(), filter.paging, |q| {
            push_audit_filter(q, filter)
        });
        let found = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(read_page(&found, rows::audit_entry)?)
    }

    async fn task_audit(&self, task_id: i64) -> Result<Vec<AuditEntry>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await
        .map_err(PgError::from)?;
        Ok(found
            .iter()
            .map(rows::audit_entry)
            .collect::<Result<_, _>>()?)
    }

    async fn audit_horizon(&self) -> Result<i64> {
        let horizon: i64 = sqlx::query_scalar(AUDIT_HORIZON)
            .bind(crate::FEED_LOCK_KEY)
            .fetch_one(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(horizon)
    }

    async fn audit_after(
        &self,
        after: i64,
        upto: i64,
        filter: &FeedFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let mut query = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE id > "
        ));
        query.push_bind(after).push(" AND id <= ").push_bind(upto);
        if let Some(task_id) = filter.task_id {
            query.push(" AND task_id = ").push_bind(task_id);
        }
        if let Some(project) = &filter.project {
            query
                .push(" AND project_slug = ")
                .push_bind(project.as_str());
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit));
        let found = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(found
            .iter()
            .map(rows::audit_entry)
            .collect::<Result<_, _>>()?)
    }

    async fn put_worker(&self, worker: &Worker) -> Result<Worker> {
        let row = sqlx::query(concat!(
            "INSERT INTO workers (id, worker_type, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE \
                 SET worker_type = EXCLUDED.worker_type, name = EXCLUDED.name \
             RETURNING ",
            worker_columns!()
        ))
        .bind(worker.id.as_str())
        .bind(worker.worker_type.as_str())
        .bind(worker.name.as_deref())
        .bind(worker.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(PgError::from)?;
        Ok(rows::worker(&row)?)
    }

    async fn get_worker(&self, id: &str) -> Result<Option<Worker>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            worker_columns!(),
            " FROM workers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(PgError::from)?;
        Ok(row.as_ref().map(rows::worker).transpose()?)
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            worker_columns!(),
            " FROM workers ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(PgError::from)?;
        Ok(found.iter().map(rows::worker).collect::<Result<_, _>>()?)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        self.pool.close().await;
        Ok(())
    }

    fn queue(&self) -> Option<&dyn QueueStore> {
        Some(self)
    }

    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        Some(self)
    }
}

/// The foreign key from a dependency edge to the task it waits for.
pub(crate) const DEPENDS_ON_FKEY: &str = "task_dependencies_depends_on_fkey";

/// The compare-and-set update of `task` (every column but `created_at`), expecting the stored
/// task at `expected_version` with the lease expiry `expected_lease` (`queries/update_task.sql`).
/// Returns one row, the stored `created_at`, when it wrote; none when it lost.
pub(crate) fn update_query(
    task: &Task,
    expected_version: i64,
    expected_lease: Option<Timestamp>,
) -> Query<'_, Postgres, PgArguments> {
    Shared::of_task(task)
        .bind(
            sqlx::query(UPDATE_TASK)
                .bind(task.id)
                .bind(expected_version),
        )
        .bind(task.updated_at)
        .bind(task.version)
        .bind(task.fence)
        .bind(task.lease_expires_at)
        .bind(task.lease_seconds)
        .bind(expected_lease)
}

/// The task columns that the insert (`$1..$8`) and the compare-and-set update (`$3..$10`, see
/// `queries/update_task.sql`) both write, bound in the order both statements list them. One
/// list, so the two statements cannot drift apart; each binds the columns after these itself
/// (the insert `created_at`, `updated_at`, `version` and `fence`, and no lease, since a new task
/// holds none; the update `updated_at`, `version`, `fence` and the lease, since `created_at`
/// never changes).
struct Shared<'a> {
    title: &'a str,
    description: Option<&'a str>,
    status: &'static str,
    priority: &'static str,
    progress_percent: i32,
    assigned_to: Option<&'a str>,
    project_slug: Option<&'a str>,
    parent_id: Option<i64>,
}

impl<'a> Shared<'a> {
    fn of_draft(task: &'a TaskDraft) -> Self {
        Shared {
            title: &task.title,
            description: task.description.as_deref(),
            status: task.status.as_str(),
            priority: task.priority.as_str(),
            progress_percent: task.progress_percent,
            assigned_to: task.assigned_to.as_deref(),
            project_slug: task.project_slug.as_deref(),
            parent_id: task.parent_id,
        }
    }

    fn of_task(task: &'a Task) -> Self {
        Shared {
            title: &task.title,
            description: task.description.as_deref(),
            status: task.status.as_str(),
            priority: task.priority.as_str(),
            progress_percent: task.progress_percent,
            assigned_to: task.assigned_to.as_deref(),
            project_slug: task.project_slug.as_deref(),
            parent_id: task.parent_id,
        }
    }

    fn bind(self, query: Query<'a, Postgres, PgArguments>) -> Query<'a, Postgres, PgArguments> {
        query
            .bind(self.title)
            .bind(self.description)
            .bind(self.status)
            .bind(self.priority)
            .bind(self.progress_percent)
            .bind(self.assigned_to)
            .bind(self.project_slug)
            .bind(self.parent_id)
    }
}
