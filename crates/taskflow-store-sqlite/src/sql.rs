//! SQL text and row mapping. Every statement goes through rusqlite's prepared-statement cache.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params, params_from_iter,
};
use taskflow_core::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, Task, TaskDraft, TaskFilter, Timestamp, Worker,
};
use taskflow_core::{Conflict, Invariant, TaskWrite, Written};

use crate::error::{SqliteError, is_foreign_key_violation};

type Result<T, E = SqliteError> = std::result::Result<T, E>;

const TASK_COLUMNS: &str = "id, title, description, status, priority, progress_percent, \
     assigned_to, project_slug, parent_id, created_at, updated_at, version";
const AUDIT_COLUMNS: &str =
    "id, task_id, project_slug, actor_id, actor_type, action, context, timestamp";

/// Timestamps are stored as RFC 3339 text with microseconds, which sorts as it reads.
pub(crate) fn ts(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(column: &'static str, text: &str) -> Result<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(column, text, e))
}

fn parse<T: FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| corrupt(column, text, e))
}

fn corrupt(column: &'static str, value: &str, reason: impl std::fmt::Display) -> SqliteError {
    SqliteError::Corrupt {
        column,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn task_from_row(row: &Row<'_>) -> Result<Task> {
    let status: String = row.get(3)?;
    let priority: String = row.get(4)?;
    let created_at: String = row.get(9)?;
    let updated_at: String = row.get(10)?;
    Ok(Task {
        id: row.get(0)?,
        title: row.get(1)?,
        description: row.get(2)?,
        status: parse("status", &status)?,
        priority: parse("priority", &priority)?,
        progress_percent: row.get(5)?,
        assigned_to: row.get(6)?,
        project_slug: row.get(7)?,
        parent_id: row.get(8)?,
        created_at: parse_ts("created_at", &created_at)?,
        updated_at: parse_ts("updated_at", &updated_at)?,
        version: row.get(11)?,
    })
}

fn audit_from_row(row: &Row<'_>) -> Result<AuditEntry> {
    let actor_type: String = row.get(4)?;
    let action: String = row.get(5)?;
    let context: Option<String> = row.get(6)?;
    let timestamp: String = row.get(7)?;
    Ok(AuditEntry {
        id: row.get(0)?,
        task_id: row.get(1)?,
        project_slug: row.get(2)?,
        actor_id: row.get(3)?,
        actor_type: parse("actor_type", &actor_type)?,
        action: parse("action", &action)?,
        context: context
            .map(|c| serde_json::from_str(&c).map_err(|e| corrupt("context", &c, e)))
            .transpose()?,
        timestamp: parse_ts("timestamp", &timestamp)?,
    })
}

fn worker_from_row(row: &Row<'_>) -> Result<Worker> {
    let worker_type: String = row.get(1)?;
    let created_at: String = row.get(3)?;
    Ok(Worker {
        id: row.get(0)?,
        worker_type: parse("type", &worker_type)?,
        name: row.get(2)?,
        created_at: parse_ts("created_at", &created_at)?,
    })
}

/// Runs a query and maps every row with `map`, which may fail with a [`SqliteError`].
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// A `WHERE` clause built from the filters that are set, with its parameters.
#[derive(Default)]
struct Where {
    clauses: Vec<&'static str>,
    params: Vec<SqlValue>,
}

impl Where {
    fn eq(&mut self, clause: &'static str, value: Option<impl Into<SqlValue>>) {
        if let Some(v) = value {
            self.clauses.push(clause);
            self.params.push(v.into());
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Runs a page query and its count in one read transaction, so both see the same snapshot.
fn page<T>(
    conn: &mut Connection,
    table: &str,
    columns: &str,
    filter: &Where,
    limit: u32,
    offset: i64,
    map: fn(&Row<'_>) -> Result<T>,
) -> Result<Page<T>> {
    let tx = conn.transaction()?;
    let where_sql = filter.sql();
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) FROM {table}{where_sql}"))?
        .query_row(params_from_iter(&filter.params), |r| r.get(0))?;
    let n = filter.params.len();
    let sql = format!(
        "SELECT {columns} FROM {table}{where_sql} ORDER BY id LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    let mut params = filter.params.clone();
    params.push(SqlValue::Integer(i64::from(limit)));
    params.push(SqlValue::Integer(offset));
    let items = collect(&tx, &sql, params_from_iter(params), map)?;
    tx.commit()?;
    Ok(Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
    })
}

pub(crate) fn get_task(conn: &Connection, id: i64) -> Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
    Ok(collect(conn, &sql, [id], task_from_row)?.pop())
}

pub(crate) fn list_tasks(conn: &mut Connection, f: &TaskFilter) -> Result<Page<Task>> {
    let mut w = Where::default();
    w.eq("status = ?", f.status.map(|s| s.as_str().to_owned()));
    w.eq("assigned_to = ?", f.assigned_to.clone());
    w.eq("project_slug = ?", f.project.clone());
    w.eq("priority = ?", f.priority.map(|p| p.as_str().to_owned()));
    w.eq("parent_id = ?", f.parent_id);
    page(
        conn,
        "tasks",
        TASK_COLUMNS,
        &w,
        f.paging.limit(),
        f.paging.offset(),
        task_from_row,
    )
}

pub(crate) fn list_audit(conn: &mut Connection, f: &AuditFilter) -> Result<Page<AuditEntry>> {
    let mut w = Where::default();
    w.eq("task_id = ?", f.task_id);
    w.eq("actor_id = ?", f.actor_id.clone());
    w.eq("action = ?", f.action.clone());
    w.eq("project_slug = ?", f.project.clone());
    page(
        conn,
        "audit_log",
        AUDIT_COLUMNS,
        &w,
        f.paging.limit(),
        f.paging.offset(),
        audit_from_row,
    )
}

pub(crate) fn task_audit(conn: &Connection, task_id: i64) -> Result<Vec<AuditEntry>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE task_id = ?1 ORDER BY id");
    collect(conn, &sql, [task_id], audit_from_row)
}

fn insert_audit(tx: &Transaction<'_>, task_id: i64, a: &AuditDraft) -> Result<()> {
    let context = a.context.as_ref().map(|c| c.to_string());
    tx.prepare_cached(
        "INSERT INTO audit_log (task_id, project_slug, actor_id, actor_type, action, context, timestamp) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        task_id,
        a.project_slug,
        a.actor_id,
        a.actor_type.as_str(),
        a.action.as_str(),
        context,
        ts(&a.timestamp),
    ])?;
    Ok(())
}

/// A write's outcome when its statement failed: a foreign-key violation while the task names
/// `parent` means that parent does not exist, and the write is refused; anything else is an
/// error. (`parent_id` is the only foreign key of the schema.)
fn refuse_missing_parent<T>(err: SqliteError, parent: Option<i64>) -> Result<Written<T>> {
    match (&err, parent) {
        (SqliteError::Sqlite(e), Some(parent)) if is_foreign_key_violation(e) => {
            Ok(Written::Refused(Conflict::ParentMissing { parent }))
        }
        _ => Err(err),
    }
}

pub(crate) fn insert_task(
    conn: &mut Connection,
    t: &TaskDraft,
    audit: &AuditDraft,
) -> Result<Written<Task>> {
    let run = |conn: &mut Connection| -> Result<Task> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT INTO tasks (title, description, status, priority, progress_percent, assigned_to, \
             project_slug, parent_id, created_at, updated_at, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            t.title,
            t.description,
            t.status.as_str(),
            t.priority.as_str(),
            t.progress_percent,
            t.assigned_to,
            t.project_slug,
            t.parent_id,
            ts(&t.created_at),
            ts(&t.updated_at),
            t.version,
        ])?;
        let id = tx.last_insert_rowid();
        insert_audit(&tx, id, audit)?;
        tx.commit()?;
        Ok(t.clone().into_task(id))
    };
    // On an error the transaction was dropped, which rolled it back: nothing was written.
    run(conn).map_or_else(
        |e| refuse_missing_parent(e, t.parent_id),
        |t| Ok(Written::Done(t)),
    )
}

/// Whether following `parent_id` from `parent` reaches `task` (`parent` itself included), on
/// the data the transaction sees. `UNION` (not `UNION ALL`) drops ids already visited, so a
/// cycle already stored ends the walk instead of looping.
const REACHES: &str = "WITH RECURSIVE chain (id) AS ( \
         SELECT ?1 \
         UNION \
         SELECT tasks.parent_id FROM tasks JOIN chain ON tasks.id = chain.id \
         WHERE tasks.parent_id IS NOT NULL \
     ) \
     SELECT EXISTS (SELECT 1 FROM chain WHERE id = ?2)";

/// The first invariant of `invariants` that does not hold, as a refusal; an error for an
/// invariant this store does not know how to check.
fn broken_invariant(tx: &Transaction<'_>, invariants: &[Invariant]) -> Result<Option<Conflict>> {
    for invariant in invariants {
        match *invariant {
            Invariant::AcyclicParent { task, parent } => {
                let cycle: bool = tx
                    .prepare_cached(REACHES)?
                    .query_row([parent, task], |r| r.get(0))?;
                if cycle {
                    return Ok(Some(Conflict::ParentCycle { parent }));
                }
            }
            // A rule this store does not know cannot be checked, so the write must not happen.
            other => return Err(SqliteError::UnknownInvariant(format!("{other:?}"))),
        }
    }
    Ok(None)
}

/// The stored version of task `id`, if it exists.
fn current_version(tx: &Transaction<'_>, id: i64) -> Result<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT version FROM tasks WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

pub(crate) fn update_task(conn: &mut Connection, write: &TaskWrite) -> Result<Written<()>> {
    let t = &write.task;
    let run = |conn: &mut Connection| -> Result<Written<()>> {
        // IMMEDIATE takes SQLite's single write lock now, so from the version check to the
        // commit no other writer (in this process or another) can change what the checks read.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if current_version(&tx, t.id)? != Some(write.expected_version) {
            return Ok(Written::Stale);
        }
        if let Some(conflict) = broken_invariant(&tx, &write.invariants)? {
            return Ok(Written::Refused(conflict));
        }
        let changed = tx
            .prepare_cached(
                "UPDATE tasks SET title = ?1, description = ?2, status = ?3, priority = ?4, \
                 progress_percent = ?5, assigned_to = ?6, project_slug = ?7, parent_id = ?8, \
                 updated_at = ?9, version = ?10 WHERE id = ?11 AND version = ?12",
            )?
            .execute(params![
                t.title,
                t.description,
                t.status.as_str(),
                t.priority.as_str(),
                t.progress_percent,
                t.assigned_to,
                t.project_slug,
                t.parent_id,
                ts(&t.updated_at),
                t.version,
                t.id,
                write.expected_version,
            ])?;
        if changed == 0 {
            // Cannot happen under the write lock; still, never write an audit row for nothing.
            return Ok(Written::Stale);
        }
        insert_audit(&tx, t.id, &write.audit)?;
        tx.commit()?;
        Ok(Written::Done(()))
    };
    run(conn).or_else(|e| refuse_missing_parent(e, t.parent_id))
}

pub(crate) fn delete_task(
    conn: &mut Connection,
    id: i64,
    expected_version: i64,
    audit: &AuditDraft,
) -> Result<Written<()>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if current_version(&tx, id)? != Some(expected_version) {
        return Ok(Written::Stale);
    }
    let has_subtasks: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = ?1)")?
        .query_row([id], |r| r.get(0))?;
    if has_subtasks {
        return Ok(Written::Refused(Conflict::HasSubtasks));
    }
    let deleted = tx
        .prepare_cached("DELETE FROM tasks WHERE id = ?1 AND version = ?2")?
        .execute([id, expected_version])?;
    if deleted == 0 {
        // Cannot happen under the write lock; still, never write an audit row for nothing.
        return Ok(Written::Stale);
    }
    insert_audit(&tx, id, audit)?;
    tx.commit()?;
    Ok(Written::Done(()))
}

pub(crate) fn put_worker(conn: &mut Connection, w: &Worker) -> Result<Worker> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = tx
        .prepare_cached(
            "INSERT INTO workers (id, type, name, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET type = excluded.type, name = excluded.name \
             RETURNING id, type, name, created_at",
        )?
        .query_row(
            params![w.id, w.worker_type.as_str(), w.name, ts(&w.created_at)],
            |row| Ok(worker_from_row(row)),
        )??;
    tx.commit()?;
    Ok(stored)
}

pub(crate) fn get_worker(conn: &Connection, id: &str) -> Result<Option<Worker>> {
    Ok(collect(
        conn,
        "SELECT id, type, name, created_at FROM workers WHERE id = ?1",
        [id],
        worker_from_row,
    )?
    .pop())
}

pub(crate) fn list_workers(conn: &Connection) -> Result<Vec<Worker>> {
    collect(
        conn,
        "SELECT id, type, name, created_at FROM workers ORDER BY id",
        [],
        worker_from_row,
    )
}

pub(crate) fn ping(conn: &Connection) -> Result<()> {
    conn.prepare_cached("SELECT 1")?
        .query_row([], |r| r.get::<_, i64>(0))?;
    Ok(())
}
