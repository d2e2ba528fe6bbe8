//! The `taskflow` command line: tasks, the agent work queue and the audit trail of
//! [taskflow](https://example.invalid/taskflow), on a server or offline on a SQLite file.
//!
//! One path for every command, in two modes:
//!
//! 1. [`args`]: clap parses the command line ([`args::Cli`]).
//! 2. [`ops`]: the command becomes core's [`taskflow_core::Command`], the same value an MCP
//!    tool or an HTTP handler builds. No rule is checked in the CLI.
//! 3. A [`Backend`] runs it: [`local::Local`] with `TaskFlow::execute` on a SQLite file
//!    (`--db`, acting as `--as`), or [`remote::Remote`] by calling the REST API endpoint that
//!    runs the same command (`--server`, `--token`). Either way the answer is a
//!    [`reply::Reply`] holding the API's JSON: local mode renders the core's outcome with the
//!    server's own DTOs.
//! 4. [`render`] draws the reply for a person (a table, a card), or `--json` prints the JSON
//!    as is. Failures become the API's `{"error", "status_code"}` and an exit code
//!    ([`failure`]).
//!
//! `taskflow serve` and `taskflow mcp` run the server and the MCP stdio server ([`serve`]).
//!
//! The binary's whole `main` is [`main_from`] with the process's arguments.

pub mod args;
pub mod failure;
pub mod local;
pub mod ops;
pub mod remote;
pub mod render;
pub mod reply;
pub mod serve;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use taskflow_core::Command;

use crate::args::{Cli, Cmd};
use crate::failure::{EXIT_OK, Failure};
use crate::local::Local;
use crate::ops::Op;
use crate::remote::Remote;
use crate::render::{Extras, Painter, Style};
use crate::reply::Reply;

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// On a SQLite file, offline.
    Local {
        /// The file.
        db: PathBuf,
        /// The actor id commands act as.
        actor: String,
        /// Whether the actor holds the admin role.
        admin: bool,
    },
    /// On a taskflow server.
    Remote {
        /// Its base URL.
        server: String,
        /// The bearer token, if any.
        token: Option<String>,
    },
}

/// Decides the mode from the global flags and where each came from: a flag on the command line
/// beats an environment variable; two modes at the same level are a usage error, as is no mode.
pub fn mode(cli: &Cli, matches: &ArgMatches) -> Result<Mode, Failure> {
    let g = &cli.global;
    let source = |id: &str| matches.value_source(id);
    let on_command_line = |id: &str| source(id) == Some(ValueSource::CommandLine);
    let remote = match (&g.server, &g.db) {
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (Some(_), Some(_)) if on_command_line("server") != on_command_line("db") => {
            on_command_line("server")
        }
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "both a server (--server, TASKFLOW_URL) and a local file (--db, TASKFLOW_DB) are \
                 given: choose one",
            ));
        }
        (None, None) => {
            return Err(Failure::usage(
                "no taskflow to talk to: give --server URL (or TASKFLOW_URL) for a server, or \
                 --db PATH (or TASKFLOW_DB) and --as ID for a local file",
            ));
        }
    };
    if remote {
        for (id, flag) in [("actor", "--as"), ("admin", "--admin")] {
            if on_command_line(id) {
                return Err(Failure::usage(format!(
                    "{flag} is for local mode (--db); on a server the token says who you are"
                )));
            }
        }
        let server = g.server.clone().unwrap_or_default();
        Ok(Mode::Remote {
            server,
            token: g.token.clone().filter(|t| !t.trim().is_empty()),
        })
    } else {
        if on_command_line("token") {
            return Err(Failure::usage(
                "--token is for remote mode (--server); in local mode --as says who you are",
            ));
        }
        let actor = g
            .actor
            .clone()
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| {
                Failure::usage(
                    "local mode needs --as ID (or TASKFLOW_ACTOR): the actor every command acts as",
                )
            })?;
        Ok(Mode::Local {
            db: g.db.clone().unwrap_or_default(),
            actor,
            admin: g.admin,
        })
    }
}

/// What runs commands: the core over a local file, or a server.
#[derive(Debug)]
pub enum Backend {
    /// Local mode.
    Local(Local),
    /// Remote mode.
    Remote(Remote),
}

impl Backend {
    /// Opens the backend `mode` names. `key` names the write, if given.
    pub async fn open(mode: Mode, key: Option<String>) -> Result<Self, Failure> {
        Ok(match mode {
            Mode::Local { db, actor, admin } => {
                let local = Local::open(&db, &actor, admin, key).await?;
                local.sweep().await;
                Backend::Local(local)
            }
            Mode::Remote { server, token } => Backend::Remote(Remote::new(&server, token, key)?),
        })
    }

    /// Runs one command.
    pub async fn run(&self, command: Command) -> Result<Reply, Failure> {
        match self {
            Backend::Local(local) => local.run(command).await,
            Backend::Remote(remote) => remote.run(command).await,
        }
    }

    /// Lets go of the backend (closes a local database).
    pub async fn close(self) {
        if let Backend::Local(local) = self {
            local.close().await;
        }
    }
}

/// Runs the CLI on `args` (the program name first) and returns the exit code.
pub fn main_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let parsed = Cli::command()
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            // Help and version go to stdout with 0, usage errors to stderr with 2.
            let _ = err.print();
            return u8::try_from(err.exit_code()).unwrap_or(failure::EXIT_USAGE);
        }
    };
    let json = cli.global.json;
    match run(cli, &matches) {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            report(&failure, json);
            failure.exit_code()
        }
    }
}

/// Prints a failure on stderr: `Nothing is ready`, the `{"error", "status_code"}` object with
/// `--json`, or `error: <message>`.
fn report(failure: &Failure, json: bool) {
    let text = match failure {
        Failure::NothingReady => failure.to_string(),
        _ if json => failure.to_json().to_string(),
        _ => format!("error: {failure}"),
    };
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, Failure> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start the async runtime: {e}")))
}

/// Runs a parsed command line.
pub fn run(cli: Cli, matches: &ArgMatches) -> Result<(), Failure> {
    match &cli.command {
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "taskflow", &mut out);
            write_stdout(&out)
        }
        Cmd::Serve => {
            let db = (matches.value_source("db") == Some(ValueSource::CommandLine))
                .then(|| cli.global.db.clone())
                .flatten();
            runtime(true)?.block_on(serve::serve(db.as_deref()))
        }
        Cmd::Mcp => match mode(&cli, matches)? {
            Mode::Local { db, actor, admin } => {
                runtime(true)?.block_on(serve::mcp(&db, &actor, admin))
            }
            Mode::Remote { .. } => Err(Failure::usage(
                "taskflow mcp serves a local SQLite file (--db, --as); a server has MCP built in: \
                 point the MCP client at <server>/mcp with the bearer token",
            )),
        },
        command => {
            let op = ops::op(command)?.ok_or_else(|| Failure::other("not an operation"))?;
            let mode = mode(&cli, matches)?;
            let key = cli.global.idempotency_key.clone();
            let json = cli.global.json;
            runtime(false)?.block_on(async move {
                let backend = Backend::open(mode, key).await?;
                let result = execute(&backend, op, json).await;
                backend.close().await;
                result
            })
        }
    }
}

/// Runs one operation and prints its answer.
pub async fn execute(backend: &Backend, op: Op, json: bool) -> Result<(), Failure> {
    let reply = backend.run(op.command).await?;
    if reply == Reply::NothingReady {
        return Err(Failure::NothingReady);
    }
    if json {
        return match reply.json() {
            Some(value) => write_stdout(format!("{value}\n").as_bytes()),
            None => Ok(()),
        };
    }
    let extras = match &reply {
        Reply::Task(task) => extras(backend, task).await,
        _ => Extras::default(),
    };
    let agents = match &reply {
        Reply::Tasks { .. } => agents(backend).await,
        _ => HashSet::new(),
    };
    let painter = Painter {
        style: Style::detect(),
        now: chrono::Utc::now(),
    };
    let text = painter.reply(&reply, &extras, &agents, &op.done)?;
    write_stdout(text.as_bytes())
}

/// What a task's card shows beside it: its dependencies and whether its assignee is an agent.
/// Best effort: the command already succeeded, and a card without them is still right.
async fn extras(backend: &Backend, task: &serde_json::Value) -> Extras {
    let mut extras = Extras::default();
    let Some(id) = task.get("id").and_then(serde_json::Value::as_i64) else {
        return extras;
    };
    if let Ok(Reply::Dependencies(deps)) = backend.run(Command::Dependencies { id }).await {
        extras.deps = render::view(&deps).ok();
    }
    if let Some(assignee) = task.get("assigned_to").and_then(serde_json::Value::as_str) {
        let lookup = backend
            .run(Command::GetWorker {
                id: assignee.to_owned(),
            })
            .await;
        extras.assignee_is_agent = match lookup {
            Ok(Reply::Worker(worker)) => Some(worker["type"] == "agent"),
            Err(Failure::Api { status: 404, .. }) => Some(false),
            _ => None,
        };
    }
    extras
}

/// The ids of the registered agents, to mark assignees in tables. Best effort.
async fn agents(backend: &Backend) -> HashSet<String> {
    match backend.run(Command::ListWorkers).await {
        Ok(Reply::Workers(workers)) => workers
            .iter()
            .filter(|w| w["type"] == "agent")
            .filter_map(|w| w["id"].as_str().map(str::to_owned))
            .collect(),
        _ => HashSet::new(),
    }
}

/// Writes to stdout; a reader that went away (`taskflow list | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
