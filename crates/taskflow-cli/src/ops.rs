//! From a command line to core's [`Command`]: the one translation both modes share. Local mode
//! runs the command with `TaskFlow::execute`; remote mode sends it to the matching endpoint. No
//! rule is checked here: the core (or the server, which runs the same core) checks them all.

use taskflow_core::Command;
use taskflow_core::lifecycle::Action;
use taskflow_core::model::{AuditFilter, NewTask, Paging, ReadyFilter, TaskFilter, TaskPatch};

use crate::args::{
    AuditArgs, BlockArgs, Cmd, CreateArgs, DepCmd, EdgeArgs, EditArgs, HolderArgs, ListArgs,
    PageArgs, WorkerCmd,
};
use crate::failure::Failure;

/// An operation to run: core's command, and what to say when it answers with no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The command.
    pub command: Command,
    /// What the human output says when the command answers with no body (a delete, a removed
    /// dependency).
    pub done: String,
}

impl Op {
    fn new(command: Command) -> Self {
        Op {
            command,
            done: "Done".to_owned(),
        }
    }

    fn saying(command: Command, done: String) -> Self {
        Op { command, done }
    }
}

/// The operation a task command names; `None` for the commands that are not operations
/// (`serve`, `mcp`, `completions`).
pub fn op(cmd: &Cmd) -> Result<Option<Op>, Failure> {
    let command = match cmd {
        Cmd::List(args) => list(args)?,
        Cmd::Ready(args) => Command::ReadyTasks {
            filter: ReadyFilter {
                project: args.project.clone(),
                paging: paging(&args.page)?,
            },
        },
        Cmd::Show(args) => Command::GetTask { id: args.id },
        Cmd::Create(args) => create(args),
        Cmd::Edit(args) => edit(args),
        Cmd::Start(args) => act(
            args.id,
            Action::Start {
                lease_seconds: args.lease,
            },
            args.fence,
        ),
        Cmd::Next(args) => Command::ClaimNext {
            project: args.project.clone(),
            lease_seconds: args.lease,
        },
        Cmd::Heartbeat(args) => Command::Heartbeat {
            id: args.id,
            lease_seconds: args.lease,
            fence: args.fence,
        },
        Cmd::Progress(args) => act(
            args.id,
            Action::Progress {
                percent: args.percent,
                note: args.note.clone(),
            },
            args.fence,
        ),
        Cmd::Review(args) => holder(args, Action::SubmitForReview),
        Cmd::RequestChanges(args) => holder(args, Action::RequestChanges),
        Cmd::Complete(args) => holder(args, Action::Complete),
        Cmd::Block(BlockArgs { id, reason, fence }) => act(
            *id,
            Action::Block {
                reason: reason.clone(),
            },
            *fence,
        ),
        Cmd::Unblock(args) => holder(args, Action::Unblock),
        Cmd::Release(args) => holder(args, Action::Release),
        Cmd::Delete(args) => {
            return Ok(Some(Op::saying(
                Command::DeleteTask {
                    id: args.id,
                    precondition: Default::default(),
                },
                format!("Deleted task {}", args.id),
            )));
        }
        Cmd::Dep(DepCmd::Add(EdgeArgs {
            task,
            depends_on,
            fence,
        })) => Command::AddDependency {
            id: *task,
            depends_on: *depends_on,
            fence: *fence,
        },
        Cmd::Dep(DepCmd::Rm(EdgeArgs {
            task,
            depends_on,
            fence,
        })) => {
            return Ok(Some(Op::saying(
                Command::RemoveDependency {
                    id: *task,
                    depends_on: *depends_on,
                    fence: *fence,
                },
                format!("Task {task} no longer depends on task {depends_on}"),
            )));
        }
        Cmd::Dep(DepCmd::Ls { task }) => Command::Dependencies { id: *task },
        Cmd::Audit(args) => audit(args)?,
        Cmd::Worker(WorkerCmd::Put {
            id,
            worker_type,
            name,
        }) => Command::PutWorker {
            id: id.clone(),
            worker_type: *worker_type,
            name: name.clone(),
        },
        Cmd::Worker(WorkerCmd::Ls) => Command::ListWorkers,
        Cmd::Whoami => Command::Whoami,
        Cmd::Serve | Cmd::Mcp | Cmd::Completions { .. } => return Ok(None),
    };
    Ok(Some(Op::new(command)))
}

/// Paging, checked by core's one rule (the same 422 as the API).
fn paging(page: &PageArgs) -> Result<Paging, Failure> {
    Ok(Paging::new(Some(page.limit), Some(page.offset))?)
}

fn list(args: &ListArgs) -> Result<Command, Failure> {
    Ok(Command::ListTasks {
        filter: TaskFilter {
            status: args.status,
            assigned_to: args.assignee.clone(),
            project: args.project.clone(),
            priority: args.priority,
            parent_id: args.parent,
            paging: paging(&args.page)?,
        },
    })
}

fn create(args: &CreateArgs) -> Command {
    Command::CreateTask {
        task: NewTask {
            title: args.title.clone(),
            description: args.description.clone(),
            status: None,
            priority: args.priority,
            progress_percent: None,
            assigned_to: args.assign.clone(),
            project_slug: args.project.clone(),
            parent_id: args.parent,
        },
    }
}

/// A value to set, a clear (`Some(None)`), or no change (`None`).
fn clearable<T: Clone>(value: &Option<T>, clear: bool) -> Option<Option<T>> {
    match (value, clear) {
        (Some(v), _) => Some(Some(v.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    }
}

fn edit(args: &EditArgs) -> Command {
    Command::UpdateTask {
        id: args.id,
        patch: TaskPatch {
            title: args.title.clone(),
            description: clearable(&args.description, args.no_description),
            status: args.status,
            priority: args.priority,
            progress_percent: args.progress,
            assigned_to: clearable(&args.assign, args.unassign),
            project_slug: clearable(&args.project, args.no_project),
            parent_id: clearable(&args.parent, args.no_parent),
        },
        precondition: Default::default(),
        fence: args.fence,
    }
}

fn act(id: i64, action: Action, fence: Option<i64>) -> Command {
    Command::Act {
        id,
        action,
        precondition: Default::default(),
        fence,
    }
}

fn holder(args: &HolderArgs, action: Action) -> Command {
    act(args.id, action, args.fence)
}

fn audit(args: &AuditArgs) -> Result<Command, Failure> {
    Ok(match args.id {
        Some(id) => Command::TaskAudit { id },
        None => Command::ListAudit {
            filter: AuditFilter {
                task_id: None,
                actor_id: args.actor.clone(),
                action: args.action.clone(),
                project: args.project.clone(),
                paging: paging(&PageArgs {
                    limit: args.limit,
                    offset: args.offset,
                })?,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use taskflow_core::model::Priority;

    use super::*;
    use crate::args::Cli;

    fn command(argv: &[&str]) -> Command {
        let cli = Cli::try_parse_from(argv).expect("parses");
        op(&cli.command)
            .expect("an op")
            .expect("an operation")
            .command
    }

    #[test]
    fn positional_ids_and_flags_become_commands() {
        assert_eq!(
            command(&[
                "taskflow", "progress", "7", "50", "--note", "half", "--fence", "2"
            ]),
            act(
                7,
                Action::Progress {
                    percent: 50,
                    note: Some("half".into())
                },
                Some(2)
            )
        );
        assert_eq!(
            command(&["taskflow", "dep", "add", "7", "3"]),
            Command::AddDependency {
                id: 7,
                depends_on: 3,
                fence: None
            }
        );
        let Command::CreateTask { task } = command(&[
            "taskflow",
            "create",
            "Docs",
            "-p",
            "high",
            "--project",
            "web",
            "--assign",
            "ada",
        ]) else {
            panic!("not a create");
        };
        assert_eq!(task.title, "Docs");
        assert_eq!(task.priority, Some(Priority::High));
        assert_eq!(task.project_slug.as_deref(), Some("web"));
        assert_eq!(task.assigned_to.as_deref(), Some("ada"));
    }

    #[test]
    fn edit_sets_clears_or_leaves_each_field() {
        let Command::UpdateTask { patch, .. } = command(&[
            "taskflow",
            "edit",
            "4",
            "--title",
            "New",
            "--unassign",
            "--no-parent",
        ]) else {
            panic!("not an edit");
        };
        assert_eq!(patch.title.as_deref(), Some("New"));
        assert_eq!(patch.assigned_to, Some(None));
        assert_eq!(patch.parent_id, Some(None));
        assert_eq!(patch.description, None);
    }

    #[test]
    fn paging_is_checked_by_core() {
        let cli = Cli::try_parse_from(["taskflow", "list", "--limit", "500"]).expect("parses");
        let err = op(&cli.command).expect_err("refused");
        assert_eq!(err.status_code(), 422);
        assert_eq!(err.to_string(), "limit: must be between 1 and 100");
    }
}
