//! The command line, as clap derive types: [`Cli`] with its [`Global`] flags and one [`Cmd`]
//! per command.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use taskflow_core::model::{Priority, StringEnum, TaskStatus, WorkerType};

const AFTER_HELP: &str = "\
Modes:
  remote  --server URL (TASKFLOW_URL) and --token JWT (TASKFLOW_TOKEN): calls the REST API.
  local   --db PATH (TASKFLOW_DB) and --as ID (TASKFLOW_ACTOR): works on a SQLite file, offline.
  A flag beats a variable; giving both modes at the same level is a usage error.

Exit codes:
  0 success, 2 usage, 3 not found (and `next` with nothing ready),
  4 refused (400, 403, 409, 412), 5 not authenticated (401), 1 anything else.

Examples:
  taskflow --db tasks.db --as ada create \"Write the docs\" --priority high
  taskflow next --lease 600 --json
  taskflow progress 7 50 --note \"half way\" --fence 1
  taskflow dep add 7 3          # 7 depends on 3
  while taskflow next --json; do :; done   # drain the queue";

/// taskflow: tasks shared by humans and AI agents, from the command line.
///
/// Every command works the same on a taskflow server (remote mode) and on a local SQLite file
/// with no server (local mode), and prints the same: a table or a card, or with --json the
/// REST API's JSON exactly.
#[derive(Debug, Parser)]
#[command(
    name = "taskflow",
    version,
    propagate_version = true,
    after_help = AFTER_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// Flags every command takes, before or after its name.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The global flags. Each also works after the subcommand (`taskflow list --json`).
#[derive(Debug, Args)]
pub struct Global {
    /// Print the REST API's JSON (and nothing else) on stdout; errors as {"error", "status_code"}
    /// on stderr.
    #[arg(long, global = true)]
    pub json: bool,

    /// Local mode: the SQLite file to work on, offline (created if missing).
    #[arg(long, env = "TASKFLOW_DB", global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Remote mode: the taskflow server's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "TASKFLOW_URL", global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Remote mode: the bearer token (a JWT) to call the server with.
    #[arg(
        long,
        env = "TASKFLOW_TOKEN",
        global = true,
        value_name = "JWT",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Local mode: the actor id every command acts as (the actor of its audit rows).
    #[arg(long = "as", env = "TASKFLOW_ACTOR", global = true, value_name = "ID")]
    pub actor: Option<String>,

    /// Local mode: act with the admin role (needed to delete tasks and register workers).
    #[arg(long, env = "TASKFLOW_ADMIN", global = true)]
    pub admin: bool,

    /// Name this write so that running it again never acts twice (1 to 255 visible ASCII
    /// characters). Remote writes get a fresh key of their own when none is given, so the CLI
    /// can retry them safely.
    #[arg(long, global = true, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

/// One command.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List tasks, ordered by id.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// The tasks ready for you: pending, unassigned or yours, with every dependency completed;
    /// most urgent first.
    Ready(ReadyArgs),
    /// Show one task as a card: status, priority, assignee, progress, lease, dependencies.
    Show(IdArg),
    /// Create a task.
    Create(CreateArgs),
    /// Change a task's fields (only those given).
    Edit(EditArgs),
    /// Start (claim) a pending task: in_progress, assigned to you.
    Start(StartArgs),
    /// Claim the next ready task (most urgent first) with a lease. With nothing ready, says
    /// "Nothing is ready" on stderr and exits 3.
    Next(NextArgs),
    /// Extend your lease on a task.
    Heartbeat(HeartbeatArgs),
    /// Report progress (0..=100) on a task in progress.
    Progress(ProgressArgs),
    /// Submit a task in progress for review.
    Review(HolderArgs),
    /// Send a task in review back to in_progress.
    RequestChanges(HolderArgs),
    /// Complete a task in progress or in review.
    Complete(HolderArgs),
    /// Block a task.
    Block(BlockArgs),
    /// Lift a block: back to in_progress if assigned, else pending.
    Unblock(HolderArgs),
    /// Give an in_progress task back to the queue: pending, unassigned, progress kept.
    Release(HolderArgs),
    /// Delete a task (admin). Its audit rows stay.
    Delete(IdArg),
    /// A task's dependencies: add, remove, list.
    #[command(subcommand)]
    Dep(DepCmd),
    /// The audit trail: one task's whole history, or a search of every row.
    Audit(AuditArgs),
    /// The worker registry, which tells agents from humans.
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// Who you are, and whether an agent.
    Whoami,
    /// Run the taskflow server (the REST API, Swagger UI and /mcp), configured from the
    /// environment: DATABASE_URL, PORT, AUTH_SERVER_URL, … (see the README). --db PATH, if
    /// given, serves that SQLite file.
    Serve,
    /// Serve the MCP tools on stdio over the local SQLite file (--db) as the actor --as.
    Mcp,
    /// Print a shell completion script: `taskflow completions bash > ~/.local/share/bash-completion/completions/taskflow`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// A command on one task.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The task id.
    pub id: i64,
}

/// Paging for listings.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Page size, 1..=100.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
}

/// `taskflow list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status.
    #[arg(long, value_parser = spelled::<TaskStatus>())]
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this actor id.
    #[arg(long, value_name = "ID")]
    pub assignee: Option<String>,
    /// Only this project.
    #[arg(long, value_name = "SLUG")]
    pub project: Option<String>,
    /// Only this priority.
    #[arg(long, value_parser = spelled::<Priority>())]
    pub priority: Option<Priority>,
    /// Only subtasks of this task.
    #[arg(long, value_name = "ID")]
    pub parent: Option<i64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub page: PageArgs,
}

/// `taskflow ready`.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// Only this project.
    #[arg(long, value_name = "SLUG")]
    pub project: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub page: PageArgs,
}

/// `taskflow create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The title (1..=200 characters).
    pub title: String,
    /// Free text.
    #[arg(long, short)]
    pub description: Option<String>,
    /// How urgent (default medium).
    #[arg(long, short, value_parser = spelled::<Priority>())]
    pub priority: Option<Priority>,
    /// The project.
    #[arg(long, value_name = "SLUG")]
    pub project: Option<String>,
    /// The parent task.
    #[arg(long, value_name = "ID")]
    pub parent: Option<i64>,
    /// Who owns it from the start.
    #[arg(long, value_name = "ID")]
    pub assign: Option<String>,
}

/// `taskflow edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The task id.
    pub id: i64,
    /// A new title.
    #[arg(long)]
    pub title: Option<String>,
    /// A new description.
    #[arg(long, short, conflicts_with = "no_description")]
    pub description: Option<String>,
    /// Clear the description.
    #[arg(long)]
    pub no_description: bool,
    /// A status move; it must be a row of the lifecycle table.
    #[arg(long, value_parser = spelled::<TaskStatus>())]
    pub status: Option<TaskStatus>,
    /// A new priority.
    #[arg(long, short, value_parser = spelled::<Priority>())]
    pub priority: Option<Priority>,
    /// New progress, 0..=100.
    #[arg(long, value_name = "PERCENT")]
    pub progress: Option<i32>,
    /// A new assignee.
    #[arg(long, value_name = "ID", conflicts_with = "unassign")]
    pub assign: Option<String>,
    /// Unassign the task.
    #[arg(long)]
    pub unassign: bool,
    /// A new project.
    #[arg(long, value_name = "SLUG", conflicts_with = "no_project")]
    pub project: Option<String>,
    /// Clear the project.
    #[arg(long)]
    pub no_project: bool,
    /// A new parent task.
    #[arg(long, value_name = "ID", conflicts_with = "no_parent")]
    pub parent: Option<i64>,
    /// Clear the parent.
    #[arg(long)]
    pub no_parent: bool,
    /// The fence you hold (409 "Lease lost" if the task moved on to another holder).
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The task id.
    pub id: i64,
    /// Hold the task with a lease of this many seconds (10..=86400), renewed by `heartbeat`.
    /// Without it you hold the task until you let go.
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<i64>,
    /// The fence you hold, if any.
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow next`.
#[derive(Debug, Args)]
pub struct NextArgs {
    /// Only tasks of this project.
    #[arg(long, value_name = "SLUG")]
    pub project: Option<String>,
    /// The lease to hold, 10..=86400 seconds (default: the server's LEASE_SECONDS, 1800 in
    /// local mode).
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<i64>,
}

/// `taskflow heartbeat`.
#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// The task id.
    pub id: i64,
    /// The new lease length, 10..=86400 seconds (default: the length it was granted with).
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<i64>,
    /// The fence you hold.
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow progress`.
#[derive(Debug, Args)]
pub struct ProgressArgs {
    /// The task id.
    pub id: i64,
    /// 0..=100.
    #[arg(allow_negative_numbers = true)]
    pub percent: i32,
    /// A note for the audit trail.
    #[arg(long, short)]
    pub note: Option<String>,
    /// The fence you hold.
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// A lifecycle move by the task's holder: the task, and the fence held.
#[derive(Debug, Args)]
pub struct HolderArgs {
    /// The task id.
    pub id: i64,
    /// The fence you hold (409 "Lease lost" if the task moved on to another holder).
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow block`.
#[derive(Debug, Args)]
pub struct BlockArgs {
    /// The task id.
    pub id: i64,
    /// Why, for the audit trail.
    #[arg(long, short)]
    pub reason: Option<String>,
    /// The fence you hold.
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow dep …`.
#[derive(Debug, Subcommand)]
pub enum DepCmd {
    /// Make TASK depend on DEPENDS_ON: it cannot start until DEPENDS_ON is completed.
    Add(EdgeArgs),
    /// Remove the dependency of TASK on DEPENDS_ON.
    #[command(visible_alias = "remove")]
    Rm(EdgeArgs),
    /// What TASK depends on, what depends on it, and what it still waits for.
    #[command(visible_alias = "list")]
    Ls {
        /// The task id.
        task: i64,
    },
}

/// A dependency edge: `task` depends on `depends_on`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// The dependent task.
    pub task: i64,
    /// The task it waits for.
    pub depends_on: i64,
    /// The fence you hold on TASK.
    #[arg(long, value_name = "N")]
    pub fence: Option<i64>,
}

/// `taskflow audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A task: its whole trail, oldest first (it outlives the task). Without it, search every
    /// row with the filters below.
    pub id: Option<i64>,
    /// Only rows by this actor.
    #[arg(long, value_name = "ID", conflicts_with = "id")]
    pub actor: Option<String>,
    /// Only this action, e.g. started.
    #[arg(long, conflicts_with = "id")]
    pub action: Option<String>,
    /// Only this project.
    #[arg(long, value_name = "SLUG", conflicts_with = "id")]
    pub project: Option<String>,
    /// Page size, 1..=100 (searches only).
    #[arg(long, conflicts_with = "id", default_value_t = 50)]
    pub limit: i64,
    /// Rows to skip (searches only).
    #[arg(long, conflicts_with = "id", default_value_t = 0)]
    pub offset: i64,
}

/// `taskflow worker …`.
#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Register (or re-register) a worker (admin). An agent's actions are then recorded as an
    /// agent's.
    Put {
        /// The worker's actor id (a token's `sub`).
        id: String,
        /// Human or agent.
        #[arg(long = "type", short = 't', value_parser = spelled::<WorkerType>())]
        worker_type: WorkerType,
        /// A display name (a re-registration without one clears it).
        #[arg(long)]
        name: Option<String>,
    },
    /// Every worker.
    #[command(visible_alias = "list")]
    Ls,
}

/// A parser for one of core's text enums, offering its spellings (in help and completions).
fn spelled<T: StringEnum>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::NAMES).try_map(|text: String| T::parse_as(T::FIELD, &text))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        for argv in [
            vec![
                "taskflow", "--json", "--db", "x.db", "--as", "ada", "start", "7",
            ],
            vec![
                "taskflow", "start", "7", "--json", "--db", "x.db", "--as", "ada",
            ],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            assert!(cli.global.json);
            assert_eq!(cli.global.db.as_deref(), Some(std::path::Path::new("x.db")));
            assert_eq!(cli.global.actor.as_deref(), Some("ada"));
            assert!(matches!(cli.command, Cmd::Start(StartArgs { id: 7, .. })));
        }
    }

    #[test]
    fn enums_take_the_api_spellings() {
        let cli =
            Cli::try_parse_from(["taskflow", "list", "--status", "in_progress"]).expect("parses");
        let Cmd::List(list) = cli.command else {
            panic!("not list");
        };
        assert_eq!(list.status, Some(TaskStatus::InProgress));
        assert!(Cli::try_parse_from(["taskflow", "list", "--status", "done"]).is_err());
    }
}
