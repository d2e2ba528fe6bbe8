//! SQL text and row mapping. Every statement goes through rusqlite's prepared-statement cache.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, Savepoint, params, params_from_iter};
use taskflow_core::events::FeedFilter;
use taskflow_core::idempotency::{OutcomeRecord, Reservation, Reserve};
use taskflow_core::lifecycle::ReadyRule;
use taskflow_core::model::{
    AuditDraft, AuditEntry, AuditFilter, Page, ReadyFilter, Task, TaskDraft, TaskFilter, Timestamp,
    Worker,
};
use taskflow_core::{
    Claim, Conflict, Dependencies, DependencyWrite, EdgeChange, Invariant, LeaseWrite, TaskWrite,
    Written,
};

use crate::error::{SqliteError, is_foreign_key_violation};

type Result<T, E = SqliteError> = std::result::Result<T, E>;

const TASK_COLUMNS: &str = "id, title, description, status, priority, progress_percent, \
     assigned_to, project_slug, parent_id, created_at, updated_at, version, fence, \
     lease_expires_at, lease_seconds";
const AUDIT_COLUMNS: &str =
    "id, task_id, project_slug, actor_id, actor_type, action, context, timestamp";

/// Opens the savepoint of one write inside the writer thread's batch transaction (see
/// `writer.rs`), which began with `BEGIN IMMEDIATE`: SQLite's single write lock is held from
/// the write's first check to the batch's commit. Committing the savepoint keeps the write in
/// the batch; dropping it (a refusal, a lost compare-and-set, an error) rolls back this write
/// alone. Outside a transaction a savepoint would begin a deferred one, whose read-then-write
/// can fail on lock upgrade, so that is refused.
fn write_scope(conn: &mut Connection) -> Result<Savepoint<'_>> {
    if conn.is_autocommit() {
        return Err(SqliteError::NotInBatch);
    }
    Ok(conn.savepoint()?)
}

/// Timestamps are stored as RFC 3339 text with microseconds, which sorts as it reads.
pub(crate) fn ts(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(column: &'static str, text: &str) -> Result<Timestamp> {
    if let Some(t) = parse_stored_ts(text) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(column, text, e))
}

/// The text [`ts`] writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), read digit by digit: chrono's RFC
/// 3339 parser handles every offset and precision, and costs more than the rest of a row. Any
/// other text (or an impossible date) is `None`, left to that parser.
fn parse_stored_ts(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if b.len() != 27 || punctuation.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0_u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?
        .and_hms_micro_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?)
        .map(|t| t.and_utc())
}

/// Column `i` as text, borrowed from the row (no allocation).
fn column_text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str> {
    Ok(row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })?)
}

/// Column `i` as text or `NULL`, borrowed from the row.
fn column_text_or_null<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r str>> {
    Ok(row.get_ref(i)?.as_str_or_null().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })?)
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
    Ok(Task {
        id: row.get(0)?,
        title: row.get(1)?,
        description: row.get(2)?,
        status: parse("status", column_text(row, 3)?)?,
        priority: parse("priority", column_text(row, 4)?)?,
        progress_percent: row.get(5)?,
        assigned_to: row.get(6)?,
        project_slug: row.get(7)?,
        parent_id: row.get(8)?,
        created_at: parse_ts("created_at", column_text(row, 9)?)?,
        updated_at: parse_ts("updated_at", column_text(row, 10)?)?,
        version: row.get(11)?,
        fence: row.get(12)?,
        lease_expires_at: column_text_or_null(row, 13)?
            .map(|at| parse_ts("lease_expires_at", at))
            .transpose()?,
        lease_seconds: row.get(14)?,
    })
}

fn audit_from_row(row: &Row<'_>) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        task_id: row.get(1)?,
        project_slug: row.get(2)?,
        actor_id: row.get(3)?,
        actor_type: parse("actor_type", column_text(row, 4)?)?,
        action: parse("action", column_text(row, 5)?)?,
        context: column_text_or_null(row, 6)?
            .map(|c| serde_json::from_str(c).map_err(|e| corrupt("context", c, e)))
            .transpose()?,
        timestamp: parse_ts("timestamp", column_text(row, 7)?)?,
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

/// The highest audit id: every write takes its audit id inside its write transaction, and
/// write transactions are serialised (one writer connection, `BEGIN IMMEDIATE` across
/// processes), so rows commit in id order and the highest committed id is the horizon.
pub(crate) fn audit_horizon(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_log", [], |r| {
            r.get(0)
        })?,
    )
}

/// Audit rows with `after < id <= upto` matching `filter`, oldest first, at most `limit`.
pub(crate) fn audit_after(
    conn: &Connection,
    after: i64,
    upto: i64,
    filter: &FeedFilter,
    limit: u32,
) -> Result<Vec<AuditEntry>> {
    // One statement per filter shape, so each uses its index ((task_id, id), (project_slug, id)
    // or the primary key) and stays in the statement cache.
    let filters = match (filter.task_id.is_some(), filter.project.is_some()) {
        (false, false) => "",
        (true, false) => "AND task_id = ?4",
        (false, true) => "AND project_slug = ?5",
        (true, true) => "AND task_id = ?4 AND project_slug = ?5",
    };
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log \
         WHERE id > ?1 AND id <= ?2 {filters} ORDER BY id LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut bound = vec![
        (1, SqlValue::Integer(after)),
        (2, SqlValue::Integer(upto)),
        (3, SqlValue::Integer(i64::from(limit))),
    ];
    if let Some(task_id) = filter.task_id {
        bound.push((4, SqlValue::Integer(task_id)));
    }
    if let Some(project) = &filter.project {
        bound.push((5, SqlValue::Text(project.clone())));
    }
    for (index, value) in bound {
        stmt.raw_bind_parameter(index, value)?;
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(audit_from_row(row)?);
    }
    Ok(out)
}

/// Writes the audit row of a change and, if it carries one ([`AuditDraft::outcome`]), the
/// idempotency record of the request behind the change, in the change's own transaction: a
/// change is never committed without its record, nor a record without its change. The outcome
/// is rendered against `written`, the task as the change wrote it (`None` for a delete); an
/// outcome that cannot be rendered fails the write, which then rolls back.
fn insert_audit(
    tx: &Connection,
    task_id: i64,
    a: &AuditDraft,
    written: Option<&Task>,
) -> Result<()> {
    if let Some(record) = &a.outcome {
        let outcome = record.render(written).map_err(SqliteError::Core)?;
        store_record(tx, record, &outcome)?;
    }
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
/// error. (`parent_id` is the only foreign key a write of a `tasks` row can break: the keys of
/// `task_dependencies` point at `tasks`, and a task's id never changes.)
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
        let tx = write_scope(conn)?;
        tx.prepare_cached(
            "INSERT INTO tasks (title, description, status, priority, progress_percent, assigned_to, \
             project_slug, parent_id, created_at, updated_at, version, fence, lease_expires_at, \
             lease_seconds) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, NULL)",
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
            t.fence,
        ])?;
        let id = tx.last_insert_rowid();
        let stored = t.clone().into_task(id);
        insert_audit(&tx, id, audit, Some(&stored))?;
        tx.commit()?;
        Ok(stored)
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
fn broken_invariant(tx: &Connection, invariants: &[Invariant]) -> Result<Option<Conflict>> {
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
fn current_version(tx: &Connection, id: i64) -> Result<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT version FROM tasks WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Whether task `id` is stored at `version` with the lease expiry `lease` (a heartbeat renews a
/// lease without a new version; a write that read the task before it must not undo it).
fn is_at(tx: &Connection, id: i64, version: i64, lease: Option<&Timestamp>) -> Result<bool> {
    let stored: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT version, lease_expires_at FROM tasks WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(stored == Some((version, lease.map(ts))))
}

/// Compare-and-set of one task row: replaces every field but `created_at` (and the id) with
/// `t`'s if the row is at `expected_version`. Returns the row as written (with its stored
/// `created_at`), or `None` if no row was replaced.
fn replace_task(tx: &Connection, t: &Task, expected_version: i64) -> Result<Option<Task>> {
    let sql = format!(
        "UPDATE tasks SET title = ?1, description = ?2, status = ?3, priority = ?4, \
         progress_percent = ?5, assigned_to = ?6, project_slug = ?7, parent_id = ?8, \
         updated_at = ?9, version = ?10, fence = ?11, lease_expires_at = ?12, \
         lease_seconds = ?13 WHERE id = ?14 AND version = ?15 RETURNING {TASK_COLUMNS}"
    );
    let written = collect(
        tx,
        &sql,
        params![
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
            t.fence,
            t.lease_expires_at.as_ref().map(ts),
            t.lease_seconds,
            t.id,
            expected_version,
        ],
        task_from_row,
    )?;
    Ok(written.into_iter().next())
}

pub(crate) fn update_task(conn: &mut Connection, write: &TaskWrite) -> Result<Written<()>> {
    let t = &write.task;
    let run = |conn: &mut Connection| -> Result<Written<()>> {
        // IMMEDIATE takes SQLite's single write lock now, so from the version check to the
        // commit no other writer (in this process or another) can change what the checks read.
        let tx = write_scope(conn)?;
        if !is_at(
            &tx,
            t.id,
            write.expected_version,
            write.expected_lease_expires_at.as_ref(),
        )? {
            return Ok(Written::Stale);
        }
        if let Some(conflict) = broken_invariant(&tx, &write.invariants)? {
            return Ok(Written::Refused(conflict));
        }
        let Some(written) = replace_task(&tx, t, write.expected_version)? else {
            // Cannot happen under the write lock; still, never write an audit row for nothing.
            return Ok(Written::Stale);
        };
        insert_audit(&tx, t.id, &write.audit, Some(&written))?;
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
    let tx = write_scope(conn)?;
    if current_version(&tx, id)? != Some(expected_version) {
        return Ok(Written::Stale);
    }
    let has_subtasks: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = ?1)")?
        .query_row([id], |r| r.get(0))?;
    if has_subtasks {
        return Ok(Written::Refused(Conflict::HasSubtasks));
    }
    let has_dependents: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM task_dependencies WHERE depends_on = ?1)")?
        .query_row([id], |r| r.get(0))?;
    if has_dependents {
        return Ok(Written::Refused(Conflict::HasDependents));
    }
    // The edges the task holds go with it (ON DELETE CASCADE on task_dependencies.task_id).
    let deleted = tx
        .prepare_cached("DELETE FROM tasks WHERE id = ?1 AND version = ?2")?
        .execute([id, expected_version])?;
    if deleted == 0 {
        // Cannot happen under the write lock; still, never write an audit row for nothing.
        return Ok(Written::Stale);
    }
    insert_audit(&tx, id, audit, None)?;
    tx.commit()?;
    Ok(Written::Done(()))
}

pub(crate) fn put_worker(conn: &mut Connection, w: &Worker) -> Result<Worker> {
    let tx = write_scope(conn)?;
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

// ---------------------------------------------------------------------------------------------
// The work queue

/// Whether following dependency edges from `?1` (itself included) reaches `?2`, on the data the
/// transaction sees: adding the edge `?2 → ?1` would then close a cycle (`?1 = ?2` is a self
/// edge, a cycle too). `UNION` (not `UNION ALL`) drops ids already visited, so a diamond is
/// walked once and a cycle already stored ends the walk instead of looping.
const DEPENDS_TRANSITIVELY: &str = "WITH RECURSIVE reach (id) AS ( \
         SELECT ?1 \
         UNION \
         SELECT d.depends_on FROM task_dependencies d JOIN reach ON d.task_id = reach.id \
     ) \
     SELECT EXISTS (SELECT 1 FROM reach WHERE id = ?2)";

/// The ready predicate over `tasks t`: in the rule's ready status, unassigned or assigned to
/// the actor, and no dependency that is not in the rule's finished status (a dependency that
/// is missing, which the foreign key forbids, does not count as finished either).
const READY_WHERE: &str = "t.status = :ready \
     AND (t.assigned_to IS NULL OR t.assigned_to = :actor) \
     AND NOT EXISTS ( \
         SELECT 1 FROM task_dependencies d \
         WHERE d.task_id = t.id \
           AND (SELECT dt.status FROM tasks dt WHERE dt.id = d.depends_on) IS NOT :finished \
     )";

/// The rank of a ready task's priority in the rule's urgency (0 for the most urgent); the
/// queue is ordered by it, then by id.
const READY_RANK: &str = "CASE t.priority \
     WHEN :urgency0 THEN 0 WHEN :urgency1 THEN 1 WHEN :urgency2 THEN 2 WHEN :urgency3 THEN 3 \
     ELSE 4 END";

/// One ready-queue query: who asks, in which project, under which rule. Every status and
/// priority it names is bound from the rule; none is spelled here.
struct Ready<'a> {
    actor: &'a str,
    project: Option<&'a str>,
    rule: &'a ReadyRule,
}

type Named = Vec<(&'static str, SqlValue)>;

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

impl Ready<'_> {
    /// `FROM tasks t WHERE …`, and its parameters.
    fn filtered(&self) -> (String, Named) {
        let mut params: Named = vec![
            (":ready", text(self.rule.ready.as_str())),
            (":actor", text(self.actor)),
            (":finished", text(self.rule.finished.as_str())),
        ];
        let mut sql = format!("FROM tasks t WHERE {READY_WHERE}");
        if let Some(project) = self.project {
            sql.push_str(" AND t.project_slug = :project");
            params.push((":project", text(project)));
        }
        (sql, params)
    }

    /// The ready tasks in queue order, `LIMIT :limit OFFSET :offset`, and its parameters.
    ///
    /// The page is chosen on ids and ranks alone, which `tasks_ready` covers (with the
    /// dependency check on `task_dependencies`' key), and only the rows of the page are read
    /// whole: ranking N ready tasks sorts N small entries, not N rows.
    fn select(&self, limit: u32, offset: i64) -> (String, Named) {
        let (from_where, mut params) = self.filtered();
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks JOIN ( \
                 SELECT t.id AS ready_id, {READY_RANK} AS ready_rank {from_where} \
                 ORDER BY ready_rank, t.id LIMIT :limit OFFSET :offset \
             ) ON id = ready_id \
             ORDER BY ready_rank, ready_id"
        );
        let urgency = [":urgency0", ":urgency1", ":urgency2", ":urgency3"];
        for (name, priority) in urgency.into_iter().zip(self.rule.urgency) {
            params.push((name, text(priority.as_str())));
        }
        params.push((":limit", SqlValue::Integer(i64::from(limit))));
        params.push((":offset", SqlValue::Integer(offset)));
        (sql, params)
    }

    /// The head of the queue: the first ready task in queue order, as [`Ready::select`] with
    /// `LIMIT 1` would pick it, found by index. For each priority in the rule's urgency, most
    /// urgent first, it walks `tasks_ready_head` (status, priority, id) in id order and stops
    /// at the first task that passes the rest of the ready predicate; then, for safety, any
    /// priority the urgency does not rank (ranked last, as in `select`). A claim costs a few
    /// index steps however many tasks are ready, instead of ranking all of them.
    fn head(&self, conn: &Connection) -> Result<Option<Task>> {
        let (from_where, params) = self.filtered();
        let ranked = format!(
            "SELECT {TASK_COLUMNS} {from_where} AND t.priority = :priority ORDER BY t.id LIMIT 1"
        );
        for priority in self.rule.urgency {
            let mut params = params.clone();
            params.push((":priority", text(priority.as_str())));
            let found = collect(conn, &ranked, named(&params).as_slice(), task_from_row)?;
            if let Some(task) = found.into_iter().next() {
                return Ok(Some(task));
            }
        }
        let unranked = format!(
            "SELECT {TASK_COLUMNS} {from_where} \
             AND t.priority NOT IN (:urgency0, :urgency1, :urgency2, :urgency3) \
             ORDER BY t.id LIMIT 1"
        );
        let mut params = params;
        let urgency = [":urgency0", ":urgency1", ":urgency2", ":urgency3"];
        for (name, priority) in urgency.into_iter().zip(self.rule.urgency) {
            params.push((name, text(priority.as_str())));
        }
        Ok(
            collect(conn, &unranked, named(&params).as_slice(), task_from_row)?
                .into_iter()
                .next(),
        )
    }
}

fn named(params: &Named) -> Vec<(&str, &dyn rusqlite::ToSql)> {
    params
        .iter()
        .map(|(name, value)| (*name, value as &dyn rusqlite::ToSql))
        .collect()
}

pub(crate) fn dependencies(conn: &mut Connection, task_id: i64) -> Result<Dependencies> {
    // One read transaction, so both lists come from the same snapshot.
    let tx = conn.transaction()?;
    let depends_on = {
        let mut stmt = tx.prepare_cached(
            "SELECT d.depends_on, t.status FROM task_dependencies d \
             JOIN tasks t ON t.id = d.depends_on \
             WHERE d.task_id = ?1 ORDER BY d.depends_on",
        )?;
        let mut rows = stmt.query([task_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let status: String = row.get(1)?;
            out.push((row.get(0)?, parse("status", &status)?));
        }
        out
    };
    let dependents = {
        let mut stmt = tx.prepare_cached(
            "SELECT task_id FROM task_dependencies WHERE depends_on = ?1 ORDER BY task_id",
        )?;
        stmt.query_map([task_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?
    };
    tx.commit()?;
    Ok(Dependencies {
        depends_on,
        dependents,
    })
}

pub(crate) fn write_dependency(
    conn: &mut Connection,
    write: &DependencyWrite,
) -> Result<Written<()>> {
    let id = write.task.id;
    // Under SQLite's single write lock from here to the commit: the checks below see what the
    // write will be applied to, and no concurrent edge can slip in between.
    let tx = write_scope(conn)?;
    if !is_at(
        &tx,
        id,
        write.expected_version,
        write.expected_lease_expires_at.as_ref(),
    )? {
        return Ok(Written::Stale);
    }
    match write.change {
        EdgeChange::Add { depends_on } => {
            let exists: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = ?1)")?
                .query_row([depends_on], |r| r.get(0))?;
            if !exists {
                return Ok(Written::Refused(Conflict::DependencyMissing { depends_on }));
            }
            let edge_exists: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM task_dependencies \
                     WHERE task_id = ?1 AND depends_on = ?2)",
                )?
                .query_row([id, depends_on], |r| r.get(0))?;
            if edge_exists {
                return Ok(Written::Refused(Conflict::DependencyExists { depends_on }));
            }
            // The task would wait for `depends_on`; if `depends_on` already waits (directly or
            // not) for the task, or is the task, the edge would close a cycle.
            let cycle: bool = tx
                .prepare_cached(DEPENDS_TRANSITIVELY)?
                .query_row([depends_on, id], |r| r.get(0))?;
            if cycle {
                return Ok(Written::Refused(Conflict::DependencyCycle { depends_on }));
            }
            tx.prepare_cached(
                "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?1, ?2)",
            )?
            .execute([id, depends_on])?;
        }
        EdgeChange::Remove { depends_on } => {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM task_dependencies WHERE task_id = ?1 AND depends_on = ?2",
                )?
                .execute([id, depends_on])?;
            if removed == 0 {
                return Ok(Written::Refused(Conflict::NoSuchDependency { depends_on }));
            }
        }
    }
    let Some(written) = replace_task(&tx, &write.task, write.expected_version)? else {
        // Cannot happen under the write lock; still, never write an audit row for nothing.
        return Ok(Written::Stale);
    };
    insert_audit(&tx, id, &write.audit, Some(&written))?;
    tx.commit()?;
    Ok(Written::Done(()))
}

pub(crate) fn ready_tasks(
    conn: &mut Connection,
    actor_id: &str,
    filter: &ReadyFilter,
    rule: &ReadyRule,
) -> Result<Page<Task>> {
    let ready = Ready {
        actor: actor_id,
        project: filter.project.as_deref(),
        rule,
    };
    // One read transaction, so the page and its total come from the same snapshot.
    let tx = conn.transaction()?;
    let (from_where, params) = ready.filtered();
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) {from_where}"))?
        .query_row(named(&params).as_slice(), |r| r.get(0))?;
    let (sql, params) = ready.select(filter.paging.limit(), filter.paging.offset());
    let items = collect(&tx, &sql, named(&params).as_slice(), task_from_row)?;
    tx.commit()?;
    Ok(Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// Claim-next in one `BEGIN IMMEDIATE` transaction: pick the head of the actor's ready queue,
/// ask `claim.decide`, write its task (compare-and-set on the version read) and its audit row.
/// The write lock is held from the pick to the commit, so no other claimer (in this process or
/// another) can pick the same task: the next one to get the lock sees it started.
pub(crate) fn claim_next(
    conn: &mut Connection,
    claim: &Claim,
) -> taskflow_core::Result<Option<Task>> {
    let ready = Ready {
        actor: &claim.actor.id,
        project: claim.project.as_deref(),
        rule: &claim.rule,
    };
    let tx = write_scope(conn)?;
    let Some(picked) = ready.head(&tx)? else {
        return Ok(None);
    };
    // A refusal drops the transaction, which rolls it back: nothing was written.
    let transition = (claim.decide)(&picked)?;
    let next = &transition.task;
    let written = if next.id == picked.id {
        replace_task(&tx, next, picked.version)?
    } else {
        None
    };
    let Some(written) = written else {
        // Cannot happen under the write lock (and a decision about another task is a bug):
        // fail rather than report a claim that was not written.
        return Err(SqliteError::ClaimNotWritten { id: picked.id }.into());
    };
    // The claimed task as written is both the answer and the outcome stored with it.
    insert_audit(&tx, picked.id, &transition.audit, Some(&written))?;
    tx.commit().map_err(SqliteError::from)?;
    Ok(Some(written))
}

pub(crate) fn extend_lease(conn: &mut Connection, write: &LeaseWrite) -> Result<Written<()>> {
    let tx = write_scope(conn)?;
    // No version bump and no audit row: a heartbeat is not a change of the task.
    let changed = tx
        .prepare_cached(
            "UPDATE tasks SET lease_expires_at = ?1, lease_seconds = ?2 \
             WHERE id = ?3 AND version = ?4",
        )?
        .execute(params![
            ts(&write.lease_expires_at),
            write.lease_seconds,
            write.id,
            write.expected_version,
        ])?;
    if changed == 0 {
        return Ok(Written::Stale);
    }
    tx.commit()?;
    Ok(Written::Done(()))
}

pub(crate) fn expired_leases(conn: &Connection, now: &Timestamp, limit: u32) -> Result<Vec<Task>> {
    // Text order is time order (fixed-width RFC 3339 in UTC), so `<=` compares times.
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks \
         WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= ?1 \
         ORDER BY lease_expires_at, id LIMIT ?2"
    );
    collect(
        conn,
        &sql,
        params![ts(now), i64::from(limit)],
        task_from_row,
    )
}

// ---------------------------------------------------------------------------------------------
// Idempotency records

/// Writes the finished outcome of `record`'s request, replacing its reservation (or a record
/// already there): the fingerprint, the outcome, `created_at` now, and the record's expiry.
const STORE_RECORD: &str = "INSERT INTO idempotency_records \
     (caller, key, fingerprint, outcome, created_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (caller, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
     outcome = excluded.outcome, created_at = excluded.created_at, \
     expires_at = excluded.expires_at";

/// Stores `outcome` as the record of (`record.caller`, `record.key`), inside the caller's
/// transaction.
fn store_record(conn: &Connection, record: &OutcomeRecord, outcome: &str) -> Result<()> {
    conn.prepare_cached(STORE_RECORD)?.execute(params![
        record.caller,
        record.key,
        record.fingerprint,
        outcome,
        ts(&taskflow_core::model::now()),
        ts(&record.expires_at),
    ])?;
    Ok(())
}

/// Reserves `r.key` for `r.caller` in one `BEGIN IMMEDIATE` transaction, or reports what holds
/// it. SQLite's single write lock is held from the read to the commit, so of concurrent
/// reservations of one key exactly one finds it free.
pub(crate) fn reserve(conn: &mut Connection, r: &Reserve) -> Result<Reservation> {
    let tx = write_scope(conn)?;
    let found: Option<(String, Option<String>, String, String)> = tx
        .prepare_cached(
            "SELECT fingerprint, outcome, created_at, expires_at FROM idempotency_records \
             WHERE caller = ?1 AND key = ?2",
        )?
        .query_row([&r.caller, &r.key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    if let Some((fingerprint, outcome, created_at, expires_at)) = found {
        // A record past its expiry counts as absent: it is replaced below.
        if parse_ts("expires_at", &expires_at)? > r.now {
            if fingerprint != r.fingerprint {
                return Ok(Reservation::Mismatch);
            }
            if let Some(outcome) = outcome {
                return Ok(Reservation::Replay(outcome));
            }
            if parse_ts("created_at", &created_at)? >= r.stale_before {
                return Ok(Reservation::InProgress);
            }
            // A reservation whose request died (no outcome within the timeout): taken over.
        }
    }
    tx.prepare_cached(
        "INSERT INTO idempotency_records \
         (caller, key, fingerprint, outcome, created_at, expires_at) \
         VALUES (?1, ?2, ?3, NULL, ?4, ?5) \
         ON CONFLICT (caller, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
         outcome = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at",
    )?
    .execute(params![
        r.caller,
        r.key,
        r.fingerprint,
        ts(&r.now),
        ts(&r.expires_at),
    ])?;
    tx.commit()?;
    Ok(Reservation::Reserved)
}

/// Stores the rendered outcome of a request that changed nothing, replacing its reservation.
pub(crate) fn settle(conn: &mut Connection, record: &OutcomeRecord, outcome: &str) -> Result<()> {
    let tx = write_scope(conn)?;
    store_record(&tx, record, outcome)?;
    tx.commit()?;
    Ok(())
}

/// Drops the reservation of (`caller`, `key`) so that a retry runs again. Only a reservation
/// (a record without an outcome) is dropped: an outcome already stored, which a change wrote
/// with itself, stays, or a retry would run the change a second time.
pub(crate) fn forget(conn: &mut Connection, caller: &str, key: &str) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM idempotency_records \
         WHERE caller = ?1 AND key = ?2 AND outcome IS NULL",
    )?
    .execute([caller, key])?;
    Ok(())
}

/// Deletes the records that expired at `now` (`expires_at <= now`, text order being time
/// order); returns how many.
pub(crate) fn purge_expired(conn: &mut Connection, now: &Timestamp) -> Result<u64> {
    let purged = conn
        .prepare_cached("DELETE FROM idempotency_records WHERE expires_at <= ?1")?
        .execute([ts(now)])?;
    Ok(u64::try_from(purged).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Every time [`ts`] writes reads back through the digit-by-digit path, as chrono reads it.
    #[test]
    fn stored_times_read_back_exactly() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let max = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp();
        for i in 0..20_000_u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = i64::try_from(seed % u64::try_from(max).unwrap()).unwrap();
            let micros = u32::try_from((seed >> 20) % 1_000_000).unwrap();
            let t = Utc
                .timestamp_opt(secs, micros * 1_000 * u32::from(i % 5 != 0))
                .unwrap();
            let text = ts(&t);
            assert_eq!(parse_stored_ts(&text), Some(t), "{text}");
            assert_eq!(parse_ts("t", &text).unwrap(), t);
        }
    }

    /// Text in another shape is left to chrono, which reads any RFC 3339 time or refuses it.
    #[test]
    fn other_times_go_to_chrono() {
        let cases = [
            ("2026-12-02T19:21:40Z", true),
            ("2026-12-02T19:21:40.435768+02:00", true),
            ("2026-12-02T19:21:40.435768123Z", true),
            ("2016-12-31T23:59:60.500000Z", true),
            ("2026-02-30T19:21:40.435768Z", false),
            ("2026-12-02T19:21:4x.435768Z", false),
            ("not a time", false),
        ];
        for (text, valid) in cases {
            assert_eq!(parse_stored_ts(text), None, "{text}");
            assert_eq!(parse_ts("t", text).is_ok(), valid, "{text}");
            if valid {
                assert_eq!(
                    parse_ts("t", text).unwrap(),
                    DateTime::parse_from_rfc3339(text).unwrap()
                );
            }
        }
    }
}
