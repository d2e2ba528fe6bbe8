//! Human output: tables for lists, a card for one task. Everything is drawn from the REST API's
//! JSON ([`crate::reply::Reply`]), whichever mode produced it, so local and remote look the same.
//! Colour only when stdout is a terminal (and `NO_COLOR` is unset).

use std::collections::HashSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use taskflow_core::model::{Priority, TaskStatus};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::failure::Failure;
use crate::reply::Reply;

/// The longest title a table row shows, in columns.
const TITLE_WIDTH: usize = 60;

/// The progress bar's width, in cells.
const BAR_WIDTH: usize = 20;

/// Whether to paint: ANSI colours and Unicode bars, or plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Plain text.
    pub const PLAIN: Style = Style { color: false };
    /// Colour and Unicode bars.
    pub const COLOR: Style = Style { color: true };

    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            color: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

fn status_color(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending => "36",
        TaskStatus::InProgress => "34",
        TaskStatus::Review => "35",
        TaskStatus::Completed => "32",
        TaskStatus::Blocked => "31",
    }
}

fn priority_color(priority: Priority) -> &'static str {
    match priority {
        Priority::Critical => "1;31",
        Priority::High => "33",
        Priority::Medium => "",
        Priority::Low => "2",
    }
}

/// A task as the API sends it (`TaskDto`).
#[derive(Debug, Clone, Deserialize)]
pub struct TaskView {
    /// The id.
    pub id: i64,
    /// The title.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Urgency.
    pub priority: Priority,
    /// 0..=100.
    pub progress_percent: i32,
    /// Who owns the work.
    pub assigned_to: Option<String>,
    /// The project.
    pub project_slug: Option<String>,
    /// The parent task.
    pub parent_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The version (`ETag`).
    pub version: i64,
    /// The fence a holder names on its writes.
    pub fence: i64,
    /// When the lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// A task's dependencies (`DependenciesDto`).
#[derive(Debug, Clone, Deserialize)]
pub struct DepsView {
    /// The task.
    pub task_id: i64,
    /// What it depends on.
    pub depends_on: Vec<i64>,
    /// What depends on it.
    pub dependents: Vec<i64>,
    /// What it still waits for.
    pub waiting_on: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct AuditView {
    task_id: i64,
    actor_id: String,
    actor_type: String,
    action: String,
    context: Option<Value>,
    timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
struct WorkerView {
    id: String,
    #[serde(rename = "type")]
    worker_type: String,
    name: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
struct MeView {
    id: String,
    email: Option<String>,
    role: String,
    actor_type: String,
}

/// Reads the API's JSON into a view.
pub fn view<T: DeserializeOwned>(value: &Value) -> Result<T, Failure> {
    T::deserialize(value).map_err(|e| Failure::other(format!("unexpected answer {value}: {e}")))
}

/// What a card shows beside the task itself, looked up with further reads.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The task's dependencies.
    pub deps: Option<DepsView>,
    /// Whether the assignee is a registered agent.
    pub assignee_is_agent: Option<bool>,
}

/// Context for drawing: the style and the time "now" is.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    /// Colours or not.
    pub style: Style,
    /// Now, for lease time left.
    pub now: DateTime<Utc>,
}

impl Painter {
    /// Draws a reply for a person. `agents` marks assignees who are agents in tables; `extras`
    /// adds to a task's card; `done` is what a reply with no body says.
    pub fn reply(
        &self,
        reply: &Reply,
        extras: &Extras,
        agents: &HashSet<String>,
        done: &str,
    ) -> Result<String, Failure> {
        Ok(match reply {
            Reply::Task(task) => self.card(&view(task)?, extras),
            Reply::Tasks { items, total } => {
                let tasks = items
                    .iter()
                    .map(view)
                    .collect::<Result<Vec<TaskView>, _>>()?;
                self.task_table(&tasks, *total, agents)
            }
            Reply::Audit { items, total } => {
                let rows = items
                    .iter()
                    .map(view)
                    .collect::<Result<Vec<AuditView>, _>>()?;
                self.audit_table(&rows, *total)
            }
            Reply::Dependencies(deps) => self.deps(&view(deps)?),
            Reply::Worker(worker) => {
                let w: WorkerView = view(worker)?;
                format!(
                    "Worker {} is {}{}\n",
                    self.style.bold(&w.id),
                    article(&w.worker_type),
                    w.name.map(|n| format!(" ({n})")).unwrap_or_default()
                )
            }
            Reply::Workers(items) => {
                let workers = items
                    .iter()
                    .map(view)
                    .collect::<Result<Vec<WorkerView>, _>>()?;
                self.worker_table(&workers)
            }
            Reply::Me(me) => {
                let me: MeView = view(me)?;
                let email = me.email.map(|e| format!(", {e}")).unwrap_or_default();
                format!(
                    "{} ({}, role {}{email})\n",
                    self.style.bold(&me.id),
                    me.actor_type,
                    me.role
                )
            }
            Reply::Done => format!("{done}\n"),
            Reply::NothingReady => String::new(),
        })
    }

    /// One task as a card.
    pub fn card(&self, t: &TaskView, extras: &Extras) -> String {
        let s = self.style;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {}",
            s.bold(&format!("#{}", t.id)),
            s.bold(&t.title)
        );
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {}  {value}", s.dim(&format!("{label:<10}")));
        };
        line(
            "status",
            s.paint(status_color(t.status), &words(t.status.as_str())),
        );
        line(
            "priority",
            s.paint(priority_color(t.priority), t.priority.as_str()),
        );
        line(
            "assignee",
            match (&t.assigned_to, extras.assignee_is_agent) {
                (None, _) => s.dim("nobody"),
                (Some(who), Some(true)) => format!("{who} (agent)"),
                (Some(who), Some(false)) => format!("{who} (human)"),
                (Some(who), None) => who.clone(),
            },
        );
        line("progress", self.bar(t.progress_percent));
        match t.lease_expires_at {
            Some(until) => line(
                "lease",
                format!("{} (fence {})", lease_left(until, self.now), t.fence),
            ),
            None if t.status == TaskStatus::InProgress => line(
                "lease",
                format!("none, held until released (fence {})", t.fence),
            ),
            None => {}
        }
        if let Some(project) = &t.project_slug {
            line("project", project.clone());
        }
        if let Some(parent) = t.parent_id {
            line("parent", format!("#{parent}"));
        }
        if let Some(deps) = &extras.deps {
            if !deps.depends_on.is_empty() {
                let waiting = if deps.waiting_on.is_empty() {
                    s.paint("32", "(all completed)")
                } else {
                    s.paint("33", &format!("(waiting on {})", ids(&deps.waiting_on)))
                };
                line("depends on", format!("{} {waiting}", ids(&deps.depends_on)));
            }
            if !deps.dependents.is_empty() {
                line("dependents", ids(&deps.dependents));
            }
        }
        line(
            "version",
            format!(
                "{} · created {} · updated {}",
                t.version,
                time(t.created_at),
                time(t.updated_at)
            ),
        );
        if let Some(description) = t.description.as_deref().filter(|d| !d.trim().is_empty()) {
            out.push('\n');
            for text in description.lines() {
                let _ = writeln!(out, "  {text}");
            }
        }
        out
    }

    /// A progress bar with its percentage.
    pub fn bar(&self, percent: i32) -> String {
        let percent = percent.clamp(0, 100);
        let filled = usize::try_from(percent).unwrap_or(0) * BAR_WIDTH / 100;
        let (full, empty) = if self.style.color {
            ('█', '░')
        } else {
            ('#', '.')
        };
        let bar: String = std::iter::repeat_n(full, filled)
            .chain(std::iter::repeat_n(empty, BAR_WIDTH - filled))
            .collect();
        format!("[{bar}] {percent:>3}%")
    }

    fn task_table(&self, tasks: &[TaskView], total: u64, agents: &HashSet<String>) -> String {
        if tasks.is_empty() {
            return if total == 0 {
                "No tasks\n".to_owned()
            } else {
                format!("No tasks on this page ({total} in all)\n")
            };
        }
        let mut table = Table::new(&[
            "ID", "STATUS", "PRIORITY", "PROGRESS", "ASSIGNEE", "PROJECT", "TITLE",
        ]);
        for t in tasks {
            let assignee = match &t.assigned_to {
                Some(who) if agents.contains(who) => format!("{who} (agent)"),
                Some(who) => who.clone(),
                None => "-".to_owned(),
            };
            table.row(vec![
                Cell::new(t.id.to_string()),
                Cell::painted(words(t.status.as_str()), status_color(t.status)),
                Cell::painted(t.priority.as_str(), priority_color(t.priority)),
                Cell::new(format!("{:>3}%", t.progress_percent)),
                Cell::new(assignee),
                Cell::new(t.project_slug.clone().unwrap_or_else(|| "-".to_owned())),
                Cell::new(truncate(&t.title, TITLE_WIDTH)),
            ]);
        }
        let mut out = table.render(self.style);
        let shown = tasks.len() as u64;
        let noun = if total == 1 { "task" } else { "tasks" };
        let _ = if shown < total {
            writeln!(
                out,
                "{}",
                self.style.dim(&format!("{shown} of {total} {noun}"))
            )
        } else {
            writeln!(out, "{}", self.style.dim(&format!("{total} {noun}")))
        };
        out
    }

    fn audit_table(&self, rows: &[AuditView], total: Option<u64>) -> String {
        if rows.is_empty() {
            return "No audit rows\n".to_owned();
        }
        let mut table = Table::new(&["TIME", "TASK", "ACTOR", "ACTION", "DETAILS"]);
        for row in rows {
            let actor = if row.actor_type == "human" {
                row.actor_id.clone()
            } else {
                format!("{} ({})", row.actor_id, row.actor_type)
            };
            table.row(vec![
                Cell::new(time(row.timestamp)),
                Cell::new(format!("#{}", row.task_id)),
                Cell::new(actor),
                Cell::painted(row.action.clone(), "1"),
                Cell::new(details(row.context.as_ref())),
            ]);
        }
        let mut out = table.render(self.style);
        if let Some(total) = total.filter(|t| *t > rows.len() as u64) {
            let _ = writeln!(
                out,
                "{}",
                self.style.dim(&format!("{} of {total} rows", rows.len()))
            );
        }
        out
    }

    fn worker_table(&self, workers: &[WorkerView]) -> String {
        if workers.is_empty() {
            return "No workers\n".to_owned();
        }
        let mut table = Table::new(&["ID", "TYPE", "NAME", "REGISTERED"]);
        for w in workers {
            table.row(vec![
                Cell::new(w.id.clone()),
                Cell::new(w.worker_type.clone()),
                Cell::new(w.name.clone().unwrap_or_else(|| "-".to_owned())),
                Cell::new(time(w.created_at)),
            ]);
        }
        table.render(self.style)
    }

    fn deps(&self, deps: &DepsView) -> String {
        let s = self.style;
        let list = |ids_: &[i64]| {
            if ids_.is_empty() {
                s.dim("none")
            } else {
                ids(ids_)
            }
        };
        format!(
            "{}\n  {}  {}\n  {}  {}\n  {}  {}\n",
            s.bold(&format!("Task #{}", deps.task_id)),
            s.dim("depends on"),
            list(&deps.depends_on),
            s.dim("waiting on"),
            list(&deps.waiting_on),
            s.dim("dependents"),
            list(&deps.dependents),
        )
    }
}

/// `in_progress` as `in progress`.
fn words(spelling: &str) -> String {
    spelling.replace('_', " ")
}

fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn ids(ids: &[i64]) -> String {
    ids.iter()
        .map(|id| format!("#{id}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long a lease has left, or how long ago it ran out.
pub fn lease_left(until: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (until - now).num_seconds();
    if secs >= 0 {
        format!("{} left", duration(secs))
    } else {
        format!("expired {} ago", duration(-secs))
    }
}

fn duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

/// An audit row's context as `key=value` pairs (strings bare, other values as JSON, nulls
/// left out).
fn details(context: Option<&Value>) -> String {
    match context {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(text) => format!("{k}={text}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

/// `text` cut to `width` columns, with an ellipsis when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

struct Cell {
    text: String,
    color: &'static str,
}

impl Cell {
    fn new(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            color: "",
        }
    }

    fn painted(text: impl Into<String>, color: &'static str) -> Self {
        Cell {
            text: text.into(),
            color,
        }
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    fn render(&self, style: Style) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.text.width());
                }
            }
        }
        let last = widths.len().saturating_sub(1);
        let pad = |text: &str, i: usize| {
            if i == last {
                String::new()
            } else {
                " ".repeat(widths[i].saturating_sub(text.width()))
            }
        };
        let mut out = String::new();
        let header: Vec<String> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}{}", style.bold(h), pad(h, i)))
            .collect();
        let _ = writeln!(out, "{}", header.join("  ").trim_end());
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{}{}", style.paint(c.color, &c.text), pad(&c.text, i)))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task() -> Value {
        json!({
            "id": 7, "title": "Write the docs", "description": null, "status": "in_progress",
            "priority": "high", "progress_percent": 50, "assigned_to": "agent-7",
            "project_slug": "docs", "parent_id": null,
            "created_at": "2026-01-01T10:00:00Z", "updated_at": "2026-01-01T10:05:00Z",
            "version": 4, "fence": 1, "lease_expires_at": "2026-01-01T10:35:00Z"
        })
    }

    fn painter() -> Painter {
        Painter {
            style: Style::PLAIN,
            now: "2026-01-01T10:05:30Z".parse().expect("a time"),
        }
    }

    #[test]
    fn a_card_shows_the_lease_progress_and_dependencies() {
        let extras = Extras {
            deps: Some(DepsView {
                task_id: 7,
                depends_on: vec![3, 5],
                dependents: vec![9],
                waiting_on: vec![5],
            }),
            assignee_is_agent: Some(true),
        };
        let card = painter()
            .reply(&Reply::Task(task()), &extras, &HashSet::new(), "")
            .expect("a card");
        assert!(card.starts_with("#7 Write the docs\n"), "{card}");
        assert!(card.contains("status      in progress"), "{card}");
        assert!(card.contains("assignee    agent-7 (agent)"), "{card}");
        assert!(card.contains("[##########..........]  50%"), "{card}");
        assert!(
            card.contains("lease       29m 30s left (fence 1)"),
            "{card}"
        );
        assert!(
            card.contains("depends on  #3, #5 (waiting on #5)"),
            "{card}"
        );
        assert!(card.contains("dependents  #9"), "{card}");
        assert!(!card.contains('\x1b'), "no colour when plain");
    }

    #[test]
    fn a_table_lines_up_and_counts() {
        let reply = Reply::Tasks {
            items: vec![task()],
            total: 3,
        };
        let agents = HashSet::from(["agent-7".to_owned()]);
        let table = painter()
            .reply(&reply, &Extras::default(), &agents, "")
            .expect("a table");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID  STATUS       PRIORITY"), "{table}");
        assert!(lines[1].starts_with("7   in progress  high"), "{table}");
        assert!(lines[1].contains("agent-7 (agent)"), "{table}");
        assert_eq!(lines[2], "1 of 3 tasks");
    }

    #[test]
    fn small_things() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(3725), "1h 02m");
        assert_eq!(
            details(Some(&json!({"percent": 50, "note": "half", "x": null}))),
            "note=half percent=50"
        );
        assert_eq!(Style::COLOR.paint("31", "x"), "\x1b[31mx\x1b[0m");
    }
}
