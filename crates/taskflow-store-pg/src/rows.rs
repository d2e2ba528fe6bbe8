//! Reading stored rows back into domain types.

use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::PgRow;
use taskflow_core::model::{
    ActorType, AuditAction, AuditEntry, Priority, Task, TaskStatus, Timestamp, Worker, WorkerType,
};

use crate::error::PgError;

/// The columns [`task`] reads, in the order every task query selects them (the queries in
/// `queries/` that return tasks spell the same list).
macro_rules! task_columns {
    () => {
        "id, title, description, status, priority, progress_percent, assigned_to, project_slug, \
         parent_id, created_at, updated_at, version, fence, lease_expires_at, lease_seconds"
    };
}

/// The columns [`audit_entry`] reads.
macro_rules! audit_columns {
    () => {
        "id, task_id, project_slug, actor_id, actor_type, action, context, \"timestamp\""
    };
}

/// The columns [`worker`] reads.
macro_rules! worker_columns {
    () => {
        "id, worker_type, name, created_at"
    };
}

pub(crate) use {audit_columns, task_columns, worker_columns};

/// Reads a column, naming it in the error.
fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, PgError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|err| PgError::Corrupt {
        column,
        message: err.to_string(),
    })
}

/// Reads a text column holding one of taskflow's string enums (status, priority, actor type,
/// worker type, audit action); text that spells none of its values is a corrupt row.
fn parse<T: FromStr>(row: &PgRow, column: &'static str) -> Result<T, PgError> {
    let text: String = get(row, column)?;
    text.parse().map_err(|_| PgError::Corrupt {
        column,
        message: format!("unknown value {text:?}"),
    })
}

/// A row of `tasks` (selected as [`task_columns!`]).
pub(crate) fn task(row: &PgRow) -> Result<Task, PgError> {
    Ok(Task {
        id: get(row, "id")?,
        title: get(row, "title")?,
        description: get(row, "description")?,
        status: parse::<TaskStatus>(row, "status")?,
        priority: parse::<Priority>(row, "priority")?,
        progress_percent: get(row, "progress_percent")?,
        assigned_to: get(row, "assigned_to")?,
        project_slug: get(row, "project_slug")?,
        parent_id: get(row, "parent_id")?,
        created_at: get::<Timestamp>(row, "created_at")?,
        updated_at: get::<Timestamp>(row, "updated_at")?,
        version: get(row, "version")?,
        fence: get(row, "fence")?,
        lease_expires_at: get::<Option<Timestamp>>(row, "lease_expires_at")?,
        lease_seconds: get(row, "lease_seconds")?,
    })
}

/// A row of `audit_log` (selected as [`audit_columns!`]).
pub(crate) fn audit_entry(row: &PgRow) -> Result<AuditEntry, PgError> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        task_id: get(row, "task_id")?,
        project_slug: get(row, "project_slug")?,
        actor_id: get(row, "actor_id")?,
        actor_type: parse::<ActorType>(row, "actor_type")?,
        action: parse::<AuditAction>(row, "action")?,
        context: get(row, "context")?,
        timestamp: get::<Timestamp>(row, "timestamp")?,
    })
}

/// A row of `workers` (selected as [`worker_columns!`]).
pub(crate) fn worker(row: &PgRow) -> Result<Worker, PgError> {
    Ok(Worker {
        id: get(row, "id")?,
        worker_type: parse::<WorkerType>(row, "worker_type")?,
        name: get(row, "name")?,
        created_at: get::<Timestamp>(row, "created_at")?,
    })
}

/// The `total` column of a listing.
pub(crate) fn total(row: &PgRow) -> Result<u64, PgError> {
    let total: i64 = get(row, "total")?;
    u64::try_from(total).map_err(|_| PgError::Corrupt {
        column: "total",
        message: format!("negative count {total}"),
    })
}
