//! [`Store`] for [`PgStore`]: every write is one transaction holding the change and its audit
//! row, and every update or delete is a compare-and-set on `version`.

use async_trait::async_trait;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{Executor, QueryBuilder, Row};
use taskflow_core::model::{AuditEntry, AuditFilter, Page, Task, TaskFilter, Worker};
use taskflow_core::{Error, Result, Store};

use crate::PgStore;
use crate::error::{PgError, is_parent_fk_violation};
use crate::rows::{self, audit_columns, task_columns, worker_columns};

/// The error for a parent that vanished between the service's check and the insert or update.
fn parent_not_found(parent: Option<i64>) -> Error {
    let parent = parent.map_or_else(|| "?".to_owned(), |id| id.to_string());
    Error::validation("parent_id", format!("task {parent} not found"))
}

/// Writes `audit` about task `task_id` through `executor` (the caller's transaction).
async fn insert_audit<'c, E>(executor: E, task_id: i64, audit: &AuditEntry) -> Result<(), PgError>
where
    E: Executor<'c, Database = Postgres>,
{
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
    .execute(executor)
    .await?;
    Ok(())
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
    // 0 means "no filter" (see `TaskFilter::parent_id`).
    if let Some(parent) = filter.parent_id.filter(|&id| id != 0) {
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
    limit: u32,
    offset: u64,
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
        .push_bind(i64::from(limit));
    // The service refuses offsets beyond i64::MAX; saturating keeps a direct caller's page empty.
    query
        .push(" OFFSET ")
        .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
    query.push(") AS p ON TRUE ORDER BY p.id");
    query
}

/// Splits the rows of a [`page_query`] into the page and the total.
fn read_page<T>(
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

impl PgStore {
    async fn try_insert_task(&self, task: &Task, audit: &AuditEntry) -> Result<Task> {
        let mut tx = self.pool.begin().await.map_err(PgError::from)?;
        let inserted = bind_task(
            sqlx::query(
                "INSERT INTO tasks \
                 (title, description, status, priority, progress_percent, assigned_to, \
                  project_slug, parent_id, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING id",
            ),
            task,
        )
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(PgError::from)?,
            Err(err) if is_parent_fk_violation(&err) => {
                return Err(parent_not_found(task.parent_id));
            }
            Err(err) => return Err(PgError::from(err).into()),
        };
        insert_audit(&mut *tx, id, audit).await?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(Task { id, ..task.clone() })
    }

    async fn try_update_task(&self, task: &Task, audit: &AuditEntry) -> Result<bool> {
        let Some(expected) = task.version.checked_sub(1) else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await.map_err(PgError::from)?;
        // Under READ COMMITTED a concurrent writer of the same row makes this wait for its
        // commit and then re-check `version` against the committed row, so one writer wins.
        let updated = bind_task(
            sqlx::query(
                "UPDATE tasks SET \
                 title = $3, description = $4, status = $5, priority = $6, \
                 progress_percent = $7, assigned_to = $8, project_slug = $9, parent_id = $10, \
                 created_at = $11, updated_at = $12, version = $13 \
             WHERE id = $1 AND version = $2",
            )
            .bind(task.id)
            .bind(expected),
            task,
        )
        .execute(&mut *tx)
        .await;
        let updated = match updated {
            Ok(done) => done.rows_affected(),
            Err(err) if is_parent_fk_violation(&err) => {
                return Err(parent_not_found(task.parent_id));
            }
            Err(err) => return Err(PgError::from(err).into()),
        };
        if updated == 0 {
            tracing::debug!(
                id = task.id,
                expected,
                "update lost: version moved or task gone"
            );
            return Ok(false);
        }
        insert_audit(&mut *tx, task.id, audit).await?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(true)
    }

    async fn try_delete_task(&self, id: i64, version: i64, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(PgError::from)?;
        let has_subtasks: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(PgError::from)?;
        if has_subtasks {
            return Err(Error::HasSubtasks);
        }
        // A subtask inserted after the check above (and committed before this delete) still
        // fails the delete, through the foreign key.
        let deleted = sqlx::query("DELETE FROM tasks WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await;
        let deleted = match deleted {
            Ok(done) => done.rows_affected(),
            Err(err) if is_parent_fk_violation(&err) => return Err(Error::HasSubtasks),
            Err(err) => return Err(PgError::from(err).into()),
        };
        if deleted == 0 {
            tracing::debug!(id, version, "delete lost: version moved or task gone");
            return Ok(false);
        }
        insert_audit(&mut *tx, id, audit).await?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(true)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_task(&self, task: &Task, audit: &AuditEntry) -> Result<Task> {
        self.try_insert_task(task, audit).await
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
        let mut query = page_query("tasks", task_columns!(), filter.limit, filter.offset, |q| {
            push_task_filter(q, filter)
        });
        let found = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::from)?;
        Ok(read_page(&found, rows::task)?)
    }

    async fn update_task(&self, task: &Task, audit: &AuditEntry) -> Result<bool> {
        self.try_update_task(task, audit).await
    }

    async fn delete_task(&self, id: i64, version: i64, audit: &AuditEntry) -> Result<bool> {
        self.try_delete_task(id, version, audit).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>> {
        let mut query = page_query(
            "audit_log",
            audit_columns!(),
            filter.limit,
            filter.offset,
            |q| push_audit_filter(q, filter),
        );
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
}

/// Binds a task's stored columns, in the order both the insert (`$1..$11`) and the
/// compare-and-set update (`$3..$13`) list them: title, description, status, priority,
/// progress_percent, assigned_to, project_slug, parent_id, created_at, updated_at, version.
/// One list, so the two statements cannot drift apart.
fn bind_task<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    task: &'q Task,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(task.title.as_str())
        .bind(task.description.as_deref())
        .bind(task.status.as_str())
        .bind(task.priority.as_str())
        .bind(task.progress_percent)
        .bind(task.assigned_to.as_deref())
        .bind(task.project_slug.as_deref())
        .bind(task.parent_id)
        .bind(task.created_at)
        .bind(task.updated_at)
        .bind(task.version)
}
