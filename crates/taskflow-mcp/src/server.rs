//! [`TaskflowMcp`]: the MCP server. Each tool turns its arguments into one core
//! [`Command`], runs it with [`TaskFlow::execute`] as the caller, and renders the [`Outcome`].

use std::str::FromStr;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde_json::Value;
use taskflow_core::idempotency::{IdempotencyKey, Idempotent};
use taskflow_core::lifecycle::Action;
use taskflow_core::model::{
    NewTask, Paging, Precondition, Priority, ReadyFilter, TaskFilter, TaskPatch, TaskStatus,
};
use taskflow_core::{Command, Error, Outcome, TaskFlow};

use crate::caller::Caller;
use crate::params::{
    AddDependency, BlockTask, ClaimNext, ClaimTask, CreateTask, Heartbeat, ListTasks, ReadyTasks,
    TaskId, TaskMove, UpdateProgress, UpdateTask,
};
use crate::render::Render;

/// Every tool's name, as SPEC §10 lists them (the names are part of the contract).
pub const TOOL_NAMES: [&str; 17] = [
    "whoami",
    "list_tasks",
    "ready_tasks",
    "get_task",
    "create_task",
    "update_task",
    "claim_next",
    "claim_task",
    "heartbeat",
    "update_progress",
    "submit_for_review",
    "complete_task",
    "block_task",
    "unblock_task",
    "release_task",
    "add_dependency",
    "task_history",
];

/// What `claim_next` answers (not as an error) when nothing is ready for the caller; the HTTP
/// API answers 204 with no body.
pub const NOTHING_READY: &str = "Nothing is ready";

/// What a tool answers when no caller could be found: the HTTP API's 401 message.
const NOT_AUTHENTICATED: &str = "Not authenticated";

const INSTRUCTIONS: &str = "taskflow: a task system shared by humans and AI agents. \
Take work with claim_next (the most urgent task ready for you) or claim_task; keep the `fence` \
it returns and pass it to every later write on that task. Renew a lease with heartbeat before \
`lease_expires_at`. Report with update_progress, then submit_for_review or complete_task; \
block_task with a reason when stuck, release_task to give a task back. Results are the HTTP \
API's JSON; a refusal is an error result carrying the API's message.";

/// The taskflow MCP server: the task lifecycle as tools, over any rmcp transport.
///
/// Build one per store with [`TaskflowMcp::new`]. Over stdio, fix the caller with
/// [`TaskflowMcp::with_caller`] and run [`TaskflowMcp::serve_stdio`]; over HTTP,
/// [`crate::http::service`] serves it, taking each request's caller from the request.
#[derive(Clone)]
pub struct TaskflowMcp {
    flow: TaskFlow,
    render: Arc<dyn Render>,
    caller: Option<Caller>,
    tool_router: Arc<ToolRouter<TaskflowMcp>>,
}

impl std::fmt::Debug for TaskflowMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskflowMcp")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl TaskflowMcp {
    /// A server over `flow` whose results `render` writes. With no fixed caller (see
    /// [`TaskflowMcp::with_caller`]) each call acts for the [`Caller`] in its HTTP request's
    /// extensions, and a call without one is refused with `Not authenticated`.
    pub fn new(flow: TaskFlow, render: Arc<dyn Render>) -> Self {
        TaskflowMcp {
            flow,
            render,
            caller: None,
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    /// The same server, acting for `caller` on every call (stdio, or any transport without
    /// requests of its own).
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Serves MCP on this process's stdin and stdout until the client disconnects. Logs must
    /// go to stderr: stdout carries the protocol.
    pub async fn serve_stdio(self) -> std::io::Result<()> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(std::io::Error::other)?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }

    /// Who this call acts for: the fixed caller, else the one the HTTP server's auth put in
    /// the request.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Option<Caller> {
        if let Some(caller) = &self.caller {
            return Some(caller.clone());
        }
        ctx.extensions
            .get::<::http::request::Parts>()?
            .extensions
            .get::<Caller>()
            .cloned()
    }

    /// Runs `command` as the caller and renders what it returned, or the refusal.
    async fn run(
        &self,
        ctx: &RequestContext<RoleServer>,
        command: Result<Command, Error>,
    ) -> CallToolResult {
        self.run_once(ctx, None, command).await
    }

    /// Runs a write as the caller, at most once per `idempotency_key` (core's idempotency
    /// records: a retry with the same key and arguments gets the first answer).
    async fn run_once(
        &self,
        ctx: &RequestContext<RoleServer>,
        key: Option<String>,
        command: Result<Command, Error>,
    ) -> CallToolResult {
        let Some(caller) = self.caller(ctx) else {
            return refused(NOT_AUTHENTICATED);
        };
        let outcome = match (command, key) {
            (Ok(command), None) => self.flow.execute(&caller.identity, command).await,
            (Ok(command), Some(key)) => {
                match IdempotencyKey::new(key)
                    .and_then(|key| Idempotent::for_command(key, &command))
                {
                    Ok(once) => {
                        self.flow
                            .execute_once(&caller.identity, &once, command)
                            .await
                            .value
                    }
                    Err(err) => Err(err),
                }
            }
            (Err(err), _) => Err(err),
        };
        match outcome {
            Ok(outcome) => self.outcome(&caller, outcome),
            Err(err) => refused(self.render.error(err)),
        }
    }

    /// An outcome in the HTTP API's JSON.
    fn outcome(&self, caller: &Caller, outcome: Outcome) -> CallToolResult {
        let render = &*self.render;
        match outcome {
            Outcome::Task(task) | Outcome::Claimed(Some(task)) => json(render.task(task)),
            Outcome::Claimed(None) => {
                CallToolResult::success(vec![ContentBlock::text(NOTHING_READY)])
            }
            Outcome::Tasks(page) => json(page.items.into_iter().map(|t| render.task(t)).collect()),
            Outcome::Dependencies(view) => json(render.dependencies(view)),
            Outcome::Audit(rows) => json(rows.into_iter().map(|a| render.audit(a)).collect()),
            Outcome::AuditPage(page) => {
                json(page.items.into_iter().map(|a| render.audit(a)).collect())
            }
            Outcome::Actor(actor) => json(render.me(&caller.principal, &actor)),
            // No tool runs a command with another outcome (deleting, workers); should one, its
            // core shape is still JSON.
            other => json(serde_json::to_value(other).unwrap_or(Value::Null)),
        }
    }
}

/// A successful result: `value` as compact JSON text.
fn json(value: Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

/// A refusal: `isError: true` with the message.
fn refused(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A text enum argument, parsed by core (`status: must be one of 'pending', …`).
fn parse<T: FromStr<Err = Error>>(value: Option<String>) -> Result<Option<T>, Error> {
    value.as_deref().map(str::parse).transpose()
}

/// A lifecycle move on one task, at any version, holding `fence` if given.
fn act(task_id: i64, action: Action, fence: Option<i64>) -> Result<Command, Error> {
    Ok(Command::Act {
        id: task_id,
        action,
        precondition: Precondition::Any,
        fence,
    })
}

#[tool_router(vis = "pub(crate)")]
impl TaskflowMcp {
    #[tool(
        description = "Who you are: your id, email and role, and whether the worker registry \
                       counts you as an agent.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        self.run(&ctx, Ok(Command::Whoami)).await
    }

    #[tool(
        description = "List tasks, ordered by id, with optional filters and paging.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tasks(
        &self,
        Parameters(p): Parameters<ListTasks>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = (|| -> Result<Command, Error> {
            Ok(Command::ListTasks {
                filter: TaskFilter {
                    status: parse::<TaskStatus>(p.status)?,
                    assigned_to: p.assigned_to,
                    project: p.project,
                    priority: parse::<Priority>(p.priority)?,
                    parent_id: p.parent_id,
                    paging: Paging::new(p.limit, p.offset)?,
                },
            })
        })();
        self.run(&ctx, command).await
    }

    #[tool(
        description = "The tasks you can start now (pending, unassigned or yours, dependencies \
                       done), most urgent first.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn ready_tasks(
        &self,
        Parameters(p): Parameters<ReadyTasks>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = Paging::new(p.limit, p.offset).map(|paging| Command::ReadyTasks {
            filter: ReadyFilter {
                project: p.project,
                paging,
            },
        });
        self.run(&ctx, command).await
    }

    #[tool(
        description = "One task with its dependencies: {\"task\": …, \"dependencies\": \
                       {depends_on, dependents, waiting_on}}.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_task(
        &self,
        Parameters(p): Parameters<TaskId>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(caller) = self.caller(&ctx) else {
            return refused(NOT_AUTHENTICATED);
        };
        let who = &caller.identity;
        let task = match self
            .flow
            .execute(who, Command::GetTask { id: p.task_id })
            .await
        {
            Ok(Outcome::Task(task)) => self.render.task(task),
            Ok(other) => return self.outcome(&caller, other),
            Err(err) => return refused(self.render.error(err)),
        };
        let dependencies = match self
            .flow
            .execute(who, Command::Dependencies { id: p.task_id })
            .await
        {
            Ok(Outcome::Dependencies(view)) => self.render.dependencies(view),
            Ok(other) => return self.outcome(&caller, other),
            // A store without the work queue has no dependencies to show.
            Err(Error::Unsupported { .. }) => Value::Null,
            Err(err) => return refused(self.render.error(err)),
        };
        json(serde_json::json!({ "task": task, "dependencies": dependencies }))
    }

    #[tool(
        description = "Create a task (pending unless you ask for blocked); returns it.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_task(
        &self,
        Parameters(p): Parameters<CreateTask>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = (|| -> Result<Command, Error> {
            Ok(Command::CreateTask {
                task: NewTask {
                    title: p.title,
                    description: p.description,
                    status: parse(p.status)?,
                    priority: parse(p.priority)?,
                    progress_percent: p.progress_percent,
                    assigned_to: p.assigned_to,
                    project_slug: p.project_slug,
                    parent_id: p.parent_id,
                },
            })
        })();
        self.run_once(&ctx, p.idempotency_key.clone(), command)
            .await
    }

    #[tool(
        description = "Change a task's fields; omitted fields stay, null clears; returns the task.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_task(
        &self,
        Parameters(p): Parameters<UpdateTask>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = (|| -> Result<Command, Error> {
            Ok(Command::UpdateTask {
                id: p.task_id,
                patch: TaskPatch {
                    title: p.title,
                    description: p.description,
                    status: parse(p.status)?,
                    priority: parse(p.priority)?,
                    progress_percent: p.progress_percent,
                    assigned_to: p.assigned_to,
                    project_slug: p.project_slug,
                    parent_id: p.parent_id,
                },
                precondition: Precondition::Any,
                fence: p.fence,
            })
        })();
        self.run_once(&ctx, p.idempotency_key.clone(), command)
            .await
    }

    #[tool(
        description = "Claim the most urgent task ready for you, with a lease; keep its fence. \
                       Says \"Nothing is ready\" when the queue is empty.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn claim_next(
        &self,
        Parameters(p): Parameters<ClaimNext>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = Command::ClaimNext {
            project: p.project,
            lease_seconds: p.lease_seconds,
        };
        self.run_once(&ctx, p.idempotency_key.clone(), Ok(command))
            .await
    }

    #[tool(
        description = "Start (claim) a pending task: it becomes in_progress and yours; keep the \
                       fence it returns.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn claim_task(
        &self,
        Parameters(p): Parameters<ClaimTask>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let action = Action::Start {
            lease_seconds: p.lease_seconds,
        };
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, action, p.fence),
        )
        .await
    }

    #[tool(
        description = "Extend your lease on a task you hold (no other change).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn heartbeat(
        &self,
        Parameters(p): Parameters<Heartbeat>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = Command::Heartbeat {
            id: p.task_id,
            lease_seconds: p.lease_seconds,
            fence: p.fence,
        };
        self.run_once(&ctx, p.idempotency_key.clone(), Ok(command))
            .await
    }

    #[tool(
        description = "Report progress (0..=100) on a task in progress, with an optional note.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn update_progress(
        &self,
        Parameters(p): Parameters<UpdateProgress>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let action = Action::Progress {
            percent: p.percent,
            note: p.note,
        };
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, action, p.fence),
        )
        .await
    }

    #[tool(
        description = "Move a task in progress to review.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn submit_for_review(
        &self,
        Parameters(p): Parameters<TaskMove>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, Action::SubmitForReview, p.fence),
        )
        .await
    }

    #[tool(
        description = "Complete a task in progress or in review (progress becomes 100).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn complete_task(
        &self,
        Parameters(p): Parameters<TaskMove>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, Action::Complete, p.fence),
        )
        .await
    }

    #[tool(
        description = "Block a task (pending, in progress or in review), with a reason.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn block_task(
        &self,
        Parameters(p): Parameters<BlockTask>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let action = Action::Block { reason: p.reason };
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, action, p.fence),
        )
        .await
    }

    #[tool(
        description = "Lift a block: back to in_progress if assigned, else pending.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn unblock_task(
        &self,
        Parameters(p): Parameters<TaskMove>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, Action::Unblock, p.fence),
        )
        .await
    }

    #[tool(
        description = "Give a task you hold back to the queue: pending, unassigned, progress kept.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn release_task(
        &self,
        Parameters(p): Parameters<TaskMove>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run_once(
            &ctx,
            p.idempotency_key.clone(),
            act(p.task_id, Action::Release, p.fence),
        )
        .await
    }

    #[tool(
        description = "Make task_id wait for depends_on (it cannot start until that one is \
                       completed); returns the dependencies.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn add_dependency(
        &self,
        Parameters(p): Parameters<AddDependency>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let command = Command::AddDependency {
            id: p.task_id,
            depends_on: p.depends_on,
            fence: p.fence,
        };
        self.run_once(&ctx, p.idempotency_key.clone(), Ok(command))
            .await
    }

    #[tool(
        description = "A task's audit trail, oldest first: who did what, when (it outlives the \
                       task).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn task_history(
        &self,
        Parameters(p): Parameters<TaskId>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(&ctx, Ok(Command::TaskAudit { id: p.task_id }))
            .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TaskflowMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("taskflow", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_routed_with_an_object_schema_and_one_line() {
        let router = TaskflowMcp::tool_router();
        let tools = router.list_all();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        let mut expected = TOOL_NAMES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        for tool in &tools {
            let description = tool.description.as_deref().unwrap_or_default();
            assert!(!description.is_empty(), "{}", tool.name);
            assert!(!description.contains('\n'), "{}: {description}", tool.name);
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&serde_json::json!("object"))
            );
        }
    }
}
