//! Bulk-loading tasks straight into a store's `tasks` table, for the benchmark examples
//! (`bench_seed`, `list_1m`). Not a taskflow API: it writes the tables behind the store's back.
//!
//! Creating a million tasks through `TaskFlow` takes minutes (one transaction and one audit row
//! each); these inserts take seconds. The rows are what the store itself would hold for tasks
//! that went through the lifecycle (status, assignee, version, fence and progress agree with one
//! another), but **no audit rows are written**: nothing measured here reads them, and a version
//! above 1 without its audit rows only matters to the audit trail.
//!
//! SQLite: the store is opened first (so its migrations run), then a connection of our own on
//! the same file inserts in transactions of [`SQLITE_CHUNK`] rows with one prepared statement.
//! Postgres: `INSERT … SELECT FROM UNNEST(arrays)` in batches of [`PG_CHUNK`] rows, through the
//! store's own pool.

// Shared by two examples; each uses a part.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use taskflow_core::DynStore;
use taskflow_store_pg::PgStore;
use taskflow_store_sqlite::SqliteStore;

/// Rows per SQLite transaction.
pub const SQLITE_CHUNK: usize = 50_000;
/// Rows per Postgres `INSERT`.
pub const PG_CHUNK: usize = 10_000;

/// One row of the `tasks` table, as the store would write it (ids are the table's own).
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub title: String,
    pub description: Option<String>,
    pub status: &'static str,
    pub priority: &'static str,
    pub progress_percent: i32,
    pub assigned_to: Option<String>,
    pub project_slug: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub fence: i64,
}

/// A store opened for bulk loading: the concrete store (for its file or pool) and the same
/// store as a [`DynStore`] for `TaskFlow`.
pub enum Loader {
    Sqlite(Arc<SqliteStore>),
    Pg(Arc<PgStore>),
}

impl Loader {
    /// The store as `TaskFlow` takes it.
    pub fn store(&self) -> DynStore {
        match self {
            Loader::Sqlite(s) => s.clone(),
            Loader::Pg(s) => s.clone(),
        }
    }

    /// `"SQLite"` or `"Postgres"`.
    pub fn name(&self) -> &'static str {
        match self {
            Loader::Sqlite(_) => "SQLite",
            Loader::Pg(_) => "Postgres",
        }
    }

    /// Opens the store a `DATABASE_URL` names (`sqlite://…` or `postgres://…`), migrated.
    pub async fn open(url: &str) -> Result<Loader, Box<dyn std::error::Error>> {
        if url.starts_with("sqlite:") {
            Ok(Loader::Sqlite(Arc::new(SqliteStore::connect(url).await?)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Loader::Pg(Arc::new(PgStore::connect(url).await?)))
        } else {
            Err(format!("not a sqlite: or postgres:// URL: {url}").into())
        }
    }

    /// Inserts `count` rows made by `row(i)` for `i` in `0..count`, in id order.
    pub async fn insert(
        &self,
        count: usize,
        row: impl Fn(usize) -> TaskRow + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Loader::Sqlite(store) => {
                let path = store.path().to_owned();
                tokio::task::spawn_blocking(move || insert_sqlite(&path, count, &row)).await??;
            }
            Loader::Pg(store) => insert_pg(store.pool(), count, &row).await?,
        }
        Ok(())
    }

    /// Brings the planner's statistics up to date after a load, as autovacuum would soon do on
    /// Postgres (`VACUUM ANALYZE`: statistics, and the visibility map that index-only scans
    /// need). Nothing on SQLite: the store never runs `ANALYZE`, so neither do we.
    pub async fn settle(&self) -> Result<(), Box<dyn std::error::Error>> {
        if let Loader::Pg(store) = self {
            sqlx::raw_sql("VACUUM ANALYZE tasks")
                .execute(store.pool())
                .await?;
        }
        Ok(())
    }
}

/// The text SQLite rows hold for a timestamp (the store's own format).
fn sqlite_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn insert_sqlite(
    path: &std::path::Path,
    count: usize,
    row: &dyn Fn(usize) -> TaskRow,
) -> Result<(), rusqlite::Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // This connection only (the file stays in WAL mode with the store's settings): a big page
    // cache keeps the seven indexes' pages in memory, and a lost load is simply run again.
    conn.pragma_update(None, "cache_size", -262_144)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let mut start = 0;
    while start < count {
        let end = (start + SQLITE_CHUNK).min(count);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO tasks (title, description, status, priority, progress_percent, \
                 assigned_to, project_slug, parent_id, created_at, updated_at, version, fence, \
                 lease_expires_at, lease_seconds) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10, ?11, NULL, NULL)",
            )?;
            for i in start..end {
                let t = row(i);
                insert.execute(rusqlite::params![
                    t.title,
                    t.description,
                    t.status,
                    t.priority,
                    t.progress_percent,
                    t.assigned_to,
                    t.project_slug,
                    sqlite_ts(&t.created_at),
                    sqlite_ts(&t.updated_at),
                    t.version,
                    t.fence,
                ])?;
            }
        }
        tx.commit()?;
        start = end;
    }
    Ok(())
}

async fn insert_pg(
    pool: &sqlx::PgPool,
    count: usize,
    row: &(dyn Fn(usize) -> TaskRow + Send),
) -> Result<(), sqlx::Error> {
    let mut start = 0;
    while start < count {
        let end = (start + PG_CHUNK).min(count);
        let rows: Vec<TaskRow> = (start..end).map(row).collect();
        let col = |f: fn(&TaskRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        let opt = |f: fn(&TaskRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO tasks (title, description, status, priority, progress_percent, \
             assigned_to, project_slug, created_at, updated_at, version, fence) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], \
             $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int8[], \
             $11::int8[])",
        )
        .bind(col(|t| t.title.clone()))
        .bind(opt(|t| t.description.clone()))
        .bind(col(|t| t.status.to_owned()))
        .bind(col(|t| t.priority.to_owned()))
        .bind(rows.iter().map(|t| t.progress_percent).collect::<Vec<_>>())
        .bind(opt(|t| t.assigned_to.clone()))
        .bind(opt(|t| t.project_slug.clone()))
        .bind(rows.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.version).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.fence).collect::<Vec<_>>())
        .execute(pool)
        .await?;
        start = end;
    }
    Ok(())
}

/// A well-mixed 64-bit hash of `i` (splitmix64): the same data on every run and every backend,
/// without a random-number crate.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// When the synthetic history starts.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

const VERBS: &[&str] = &[
    "Fix",
    "Review",
    "Write",
    "Migrate",
    "Refactor",
    "Test",
    "Document",
    "Deploy",
    "Investigate",
    "Triage",
];
const OBJECTS: &[&str] = &[
    "the login flow",
    "billing export",
    "search ranking",
    "the nightly backup job",
    "onboarding emails",
    "API rate limits",
    "the mobile release",
    "flaky integration tests",
    "the audit report",
    "customer import",
];

/// A pending, unassigned task in `project`: what claim-next takes.
pub fn ready_task(i: usize, project: &str) -> TaskRow {
    let at = epoch() + Duration::seconds(i64::try_from(i).unwrap_or(i64::MAX) % 10_000_000);
    TaskRow {
        title: format!("Ready task {i}"),
        description: None,
        status: "pending",
        priority: "medium",
        progress_percent: 0,
        assigned_to: None,
        project_slug: Some(project.to_owned()),
        created_at: at,
        updated_at: at,
        version: 1,
        fence: 0,
    }
}

/// Task `i` of a mixed history: one task in `needle_every` is in `needle` (spread over the whole
/// id range, as a project's tasks are when many projects grow at once); of the rest, 90 % are
/// in one of `projects` other projects and 10 % in none. Statuses: 55 % completed, 25 % pending,
/// 8 % in progress, 7 % in review, 5 % blocked. One task created every 30 s.
pub fn mixed_task(i: usize, needle: &str, needle_every: usize, projects: u64) -> TaskRow {
    let h = mix(i as u64);
    let project_slug = if i % needle_every == needle_every / 2 {
        Some(needle.to_owned())
    } else if h.is_multiple_of(10) {
        None
    } else {
        Some(format!("proj-{}", (h >> 8) % projects))
    };
    let (status, version, fence, progress) = match (h >> 16) % 100 {
        0..55 => ("completed", 4, 1, 100),
        55..80 => ("pending", 1, 0, 0),
        80..88 => ("in_progress", 3, 1, ((h >> 24) % 10 * 10) as i32),
        88..95 => ("review", 4, 1, 100),
        _ => ("blocked", 2, 0, 0),
    };
    let priority = match (h >> 32) % 100 {
        0..20 => "low",
        20..70 => "medium",
        70..92 => "high",
        _ => "critical",
    };
    let assigned_to = match status {
        "pending" if !(h >> 40).is_multiple_of(5) => None,
        _ if (h >> 44).is_multiple_of(3) => Some(format!("user-{}", (h >> 48) % 20)),
        _ => Some(format!("agent-{}", (h >> 48) % 50)),
    };
    let created_at = epoch() + Duration::seconds(30 * i64::try_from(i).unwrap_or(0));
    let updated_at =
        created_at + Duration::seconds(((h >> 52) % 86_400) as i64 * i64::from(version > 1));
    let verb = VERBS[(h % VERBS.len() as u64) as usize];
    let object = OBJECTS[((h >> 4) % OBJECTS.len() as u64) as usize];
    TaskRow {
        title: format!("{verb} {object} (#{i})"),
        description: (h >> 36).is_multiple_of(2).then(|| {
            format!(
                "{verb} {object}. Steps: reproduce on staging, write the change, add a test, \
                 ask for review. Ticket {i}."
            )
        }),
        status,
        priority,
        progress_percent: progress,
        assigned_to,
        project_slug,
        created_at,
        updated_at,
        version,
        fence,
    }
}
