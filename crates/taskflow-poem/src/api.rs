//! The endpoints. Each handler parses its input, calls one [`TaskFlow`] method and maps the
//! result; errors are mapped in [`crate::error`].

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use taskflow_core::lifecycle::Action;
use taskflow_core::model::{
    AuditFilter, Paging, Precondition, Priority, ReadyFilter, Task, TaskFilter, TaskStatus,
};
use taskflow_core::{Command, Outcome, TaskFlow};

use crate::auth::BearerAuth;
use crate::body::{JsonBody, OptionalJsonBody, SerdeJson};
use crate::dto::{
    AddDependencyDto, AuditDto, BlockDto, ClaimDto, CreateTaskDto, DbHealthDto, DependenciesDto,
    HealthDto, MeDto, PatchTaskDto, PutWorkerDto, TaskDto, Wire, WorkerDto, parent_or_none,
};
use crate::error::ApiError;
use crate::idempotency::RequestFingerprint;

#[derive(Tags)]
pub(crate) enum Tag {
    /// Tasks and their lifecycle.
    Tasks,
    /// The agent work queue: dependencies, the ready queue, claim-next, leases.
    Queue,
    /// The audit trail.
    Audit,
    /// The worker registry (who is an agent).
    Workers,
    /// The caller.
    Me,
    /// Liveness and database checks.
    Health,
}

/// A task, with its version as a strong `ETag`.
#[derive(ApiResponse)]
pub enum TaskResponse {
    /// The task after the call.
    #[oai(status = 200)]
    Ok(
        SerdeJson<TaskDto>,
        #[oai(header = "ETag")] String,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// A created task.
#[derive(ApiResponse)]
pub enum CreateTaskResponse {
    /// The new task.
    #[oai(status = 201)]
    Created(
        SerdeJson<TaskDto>,
        #[oai(header = "ETag")] String,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// A page of tasks.
#[derive(ApiResponse)]
pub enum TaskListResponse {
    /// Tasks ordered by id; `X-Total-Count` counts every match.
    #[oai(status = 200)]
    Ok(
        SerdeJson<Vec<TaskDto>>,
        #[oai(header = "X-Total-Count")] u64,
    ),
}

/// A deleted task.
#[derive(ApiResponse)]
pub enum DeleteTaskResponse {
    /// Deleted; its audit rows stay.
    #[oai(status = 204)]
    NoContent(
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// What claim-next took.
#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // Built once per request and moved into the response.
pub enum ClaimResponse {
    /// The claimed task: `in_progress`, assigned to the caller, with a new fence and a lease.
    #[oai(status = 200)]
    Claimed(
        SerdeJson<TaskDto>,
        #[oai(header = "ETag")] String,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
    /// Nothing is ready for the caller.
    #[oai(status = 204)]
    NothingReady(
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// A task's dependencies.
#[derive(ApiResponse)]
pub enum DependenciesResponse {
    /// What the task depends on, what depends on it, and what it still waits for.
    #[oai(status = 200)]
    Ok(
        Json<DependenciesDto>,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// A removed dependency.
#[derive(ApiResponse)]
pub enum DependencyRemovedResponse {
    /// The edge is gone.
    #[oai(status = 204)]
    NoContent(
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// A task's audit trail.
#[derive(ApiResponse)]
pub enum TaskAuditResponse {
    /// Every row, oldest first; empty for an id that never existed.
    #[oai(status = 200)]
    Ok(Json<Vec<AuditDto>>),
}

/// A page of the audit trail.
#[derive(ApiResponse)]
pub enum AuditListResponse {
    /// Rows oldest first; `X-Total-Count` counts every match.
    #[oai(status = 200)]
    Ok(Json<Vec<AuditDto>>, #[oai(header = "X-Total-Count")] u64),
}

/// One worker.
#[derive(ApiResponse)]
pub enum WorkerResponse {
    /// The worker.
    #[oai(status = 200)]
    Ok(
        Json<WorkerDto>,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

/// Every worker.
#[derive(ApiResponse)]
pub enum WorkerListResponse {
    /// Workers ordered by id.
    #[oai(status = 200)]
    Ok(Json<Vec<WorkerDto>>),
}

/// The caller.
#[derive(ApiResponse)]
pub enum MeResponse {
    /// Who the token speaks for, and whether they are an agent.
    #[oai(status = 200)]
    Ok(Json<MeDto>),
}

/// Liveness.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process answers.
    #[oai(status = 200)]
    Ok(Json<HealthDto>),
}

/// Database reachability.
#[derive(ApiResponse)]
pub enum DbHealthResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ok(Json<DbHealthDto>),
}

type Result<T> = std::result::Result<T, ApiError>;

fn etag(task: &Task) -> String {
    format!("\"{}\"", task.version)
}

fn task_ok(task: Task) -> TaskResponse {
    let tag = etag(&task);
    TaskResponse::Ok(SerdeJson(task.into()), tag, None)
}

/// What a write command answered, and whether it was the stored answer of an earlier request
/// with the same `Idempotency-Key`.
struct Ran {
    outcome: Outcome,
    replayed: bool,
}

impl Ran {
    /// The `Idempotent-Replayed` header.
    fn replayed(&self) -> Option<String> {
        self.replayed.then(|| "true".to_owned())
    }

    /// The task the command answered.
    fn task(self) -> Result<(Task, Option<String>)> {
        let replayed = self.replayed();
        match self.outcome {
            Outcome::Task(task) => Ok((task, replayed)),
            other => Err(unexpected(&other)),
        }
    }

    /// The task answered, as a 200 with its ETag.
    fn task_response(self) -> Result<TaskResponse> {
        let (task, replayed) = self.task()?;
        let tag = etag(&task);
        Ok(TaskResponse::Ok(SerdeJson(task.into()), tag, replayed))
    }
}

/// A command answered with an outcome of another kind: a bug, not the caller's doing.
fn unexpected(outcome: &Outcome) -> ApiError {
    tracing::error!(?outcome, "a command answered an unexpected outcome");
    ApiError::new(
        poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        "Internal server error",
    )
}

/// The precondition an `If-Match` header states. No header, or `*`, is any existing task.
/// Otherwise the strong tags listed, as versions: weak tags never match (strong comparison) and
/// are dropped, as is anything unparseable, and a list left empty matches nothing.
fn precondition(if_match: Option<&str>) -> Precondition {
    match if_match.map(str::trim) {
        None | Some("*") => Precondition::Any,
        Some(value) => {
            let mut versions: Vec<i64> = value
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.starts_with("W/"))
                .filter_map(|tag| tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
                .collect();
            if versions.len() == 1 {
                Precondition::Version(versions.remove(0))
            } else {
                Precondition::OneOf(versions)
            }
        }
    }
}

/// The taskflow REST API.
pub struct Api {
    flow: TaskFlow,
}

impl Api {
    /// The API over a service.
    pub fn new(flow: TaskFlow) -> Self {
        Api { flow }
    }

    /// Runs one write command as the caller, at most once per `Idempotency-Key`: every write
    /// endpoint goes through here, and through core's one list of operations.
    async fn run(
        &self,
        auth: &BearerAuth,
        fingerprint: &RequestFingerprint,
        command: Command,
    ) -> Result<Ran> {
        let who = auth.identity();
        let (value, replayed) = match fingerprint.idempotent()? {
            None => (self.flow.execute(&who, command).await, false),
            Some(idempotent) => {
                let once = self.flow.execute_once(&who, &idempotent, command).await;
                (once.value, once.replayed)
            }
        };
        match value {
            Ok(outcome) => Ok(Ran { outcome, replayed }),
            Err(err) => Err(ApiError::from(err).replayed(replayed)),
        }
    }

    /// Every lifecycle endpoint: one action on one task, guarded by `If-Match` and `fence`.
    async fn act(
        &self,
        auth: &BearerAuth,
        id: i64,
        (if_match, fence): (Option<String>, Option<i64>),
        fingerprint: &RequestFingerprint,
        action: Action,
    ) -> Result<TaskResponse> {
        let command = Command::Act {
            id,
            action,
            precondition: precondition(if_match.as_deref()),
            fence,
        };
        self.run(auth, fingerprint, command).await?.task_response()
    }
}

// Endpoints take one argument per documented parameter (path, query, headers, body).
#[allow(clippy::too_many_arguments)]
#[OpenApi]
impl Api {
    /// Liveness
    ///
    /// Answers while the process is up, with the taskflow version. No auth.
    #[oai(
        path = "/health",
        method = "get",
        tag = "Tag::Health",
        operation_id = "getHealth"
    )]
    async fn health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(HealthDto {
            status: "healthy".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    /// Database check
    ///
    /// 200 when the database answers, 503 `Database error: …` when it does not. No auth.
    #[oai(
        path = "/api/health/db",
        method = "get",
        tag = "Tag::Health",
        operation_id = "getDatabaseHealth"
    )]
    async fn db_health(&self) -> Result<DbHealthResponse> {
        self.flow.health().await.map_err(|e| {
            // Store errors say why (refused, timed out) and never carry the URL or password.
            ApiError::new(
                poem::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("Database error: {e}"),
            )
        })?;
        Ok(DbHealthResponse::Ok(Json(DbHealthDto {
            database: "connected".to_owned(),
        })))
    }

    /// Create a task
    ///
    /// Starts `pending` (or `blocked` if asked). `parent_id` 0 means none. Writes one `created`
    /// audit row.
    #[oai(
        path = "/api/tasks",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "createTask"
    )]
    async fn create_task(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        body: JsonBody<CreateTaskDto>,
    ) -> Result<CreateTaskResponse> {
        let command = Command::CreateTask {
            task: body.0.into(),
        };
        let (task, replayed) = self.run(&auth, &fingerprint, command).await?.task()?;
        let tag = etag(&task);
        Ok(CreateTaskResponse::Created(
            SerdeJson(task.into()),
            tag,
            replayed,
        ))
    }

    /// List tasks
    ///
    /// Ordered by id. `X-Total-Count` is the number of matches before paging.
    #[oai(
        path = "/api/tasks",
        method = "get",
        tag = "Tag::Tasks",
        operation_id = "listTasks"
    )]
    async fn list_tasks(
        &self,
        auth: BearerAuth,
        /// Only this status.
        status: Query<Option<Wire<TaskStatus>>>,
        /// Only tasks assigned to this actor id.
        assigned_to: Query<Option<String>>,
        /// Only this project slug.
        project: Query<Option<String>>,
        /// Only this priority.
        priority: Query<Option<Wire<Priority>>>,
        /// Only subtasks of this task (0 = no filter).
        parent_id: Query<Option<i64>>,
        /// Page size, 1..=100 (default 50).
        limit: Query<Option<i64>>,
        /// Rows to skip (default 0).
        offset: Query<Option<i64>>,
    ) -> Result<TaskListResponse> {
        let filter = TaskFilter {
            status: status.0.map(|s| s.0),
            assigned_to: assigned_to.0,
            project: project.0,
            priority: priority.0.map(|p| p.0),
            parent_id: parent_or_none(parent_id.0),
            paging: Paging::new(limit.0, offset.0)?,
        };
        let page = self.flow.list_tasks(&auth.identity(), &filter).await?;
        Ok(TaskListResponse::Ok(
            SerdeJson(page.items.into_iter().map(Into::into).collect()),
            page.total,
        ))
    }

    /// Get a task
    #[oai(
        path = "/api/tasks/:id",
        method = "get",
        tag = "Tag::Tasks",
        operation_id = "getTask"
    )]
    async fn get_task(&self, auth: BearerAuth, id: Path<i64>) -> Result<TaskResponse> {
        Ok(task_ok(self.flow.get_task(&auth.identity(), id.0).await?))
    }

    /// Update a task
    ///
    /// An absent field is unchanged; `null` clears it. A `status` change must be a row of the
    /// lifecycle table and has that row's effects and policy. A patch that changes nothing
    /// writes nothing. Honours `If-Match`.
    #[oai(
        path = "/api/tasks/:id",
        method = "patch",
        tag = "Tag::Tasks",
        operation_id = "updateTask"
    )]
    async fn update_task(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
        body: JsonBody<PatchTaskDto>,
    ) -> Result<TaskResponse> {
        let command = Command::UpdateTask {
            id: id.0,
            patch: body.0.try_into()?,
            precondition: precondition(if_match.0.as_deref()),
            fence: fence.0,
        };
        self.run(&auth, &fingerprint, command)
            .await?
            .task_response()
    }

    /// Delete a task (admin)
    ///
    /// Refused with 409 while it has subtasks. Its audit rows stay. Honours `If-Match`.
    #[oai(
        path = "/api/tasks/:id",
        method = "delete",
        tag = "Tag::Tasks",
        operation_id = "deleteTask"
    )]
    async fn delete_task(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<DeleteTaskResponse> {
        let command = Command::DeleteTask {
            id: id.0,
            precondition: precondition(if_match.0.as_deref()),
        };
        let ran = self.run(&auth, &fingerprint, command).await?;
        Ok(DeleteTaskResponse::NoContent(ran.replayed()))
    }

    /// Start (claim) a task
    ///
    /// `pending` → `in_progress`, assigned to the caller. Of concurrent starts exactly one wins;
    /// the others get 400 `Cannot start task with status 'in_progress'`.
    #[oai(
        path = "/api/tasks/:id/start",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "startTask"
    )]
    async fn start(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
        /// Hold the task with a lease of this many seconds (10..=86400), renewed by heartbeats
        /// and reclaimed when it runs out. Without it the caller holds the task until they let go.
        lease_seconds: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        let action = Action::Start {
            lease_seconds: lease_seconds.0,
        };
        self.act(&auth, id.0, (if_match.0, fence.0), &fingerprint, action)
            .await
    }

    /// Report progress
    ///
    /// On an `in_progress` task, by its assignee or an admin. Records `{percent, note}`.
    #[oai(
        path = "/api/tasks/:id/progress",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "reportProgress"
    )]
    async fn progress(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// 0..=100.
        percent: Query<i32>,
        /// An optional note for the audit trail.
        note: Query<Option<String>>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        let action = Action::Progress {
            percent: percent.0,
            note: note.0,
        };
        self.act(&auth, id.0, (if_match.0, fence.0), &fingerprint, action)
            .await
    }

    /// Submit for review
    ///
    /// `in_progress` → `review`, by the assignee or an admin.
    #[oai(
        path = "/api/tasks/:id/review",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "submitForReview"
    )]
    async fn review(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        self.act(
            &auth,
            id.0,
            (if_match.0, fence.0),
            &fingerprint,
            Action::SubmitForReview,
        )
        .await
    }

    /// Request changes
    ///
    /// `review` → `in_progress`, by anyone.
    #[oai(
        path = "/api/tasks/:id/request-changes",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "requestChanges"
    )]
    async fn request_changes(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        self.act(
            &auth,
            id.0,
            (if_match.0, fence.0),
            &fingerprint,
            Action::RequestChanges,
        )
        .await
    }

    /// Complete a task
    ///
    /// From `in_progress` (assignee or admin) or `review` (anyone). Sets progress to 100.
    #[oai(
        path = "/api/tasks/:id/complete",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "completeTask"
    )]
    async fn complete(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        self.act(
            &auth,
            id.0,
            (if_match.0, fence.0),
            &fingerprint,
            Action::Complete,
        )
        .await
    }

    /// Block a task
    ///
    /// From `pending`, `in_progress` or `review`. The body and its `reason` are optional.
    #[oai(
        path = "/api/tasks/:id/block",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "blockTask"
    )]
    async fn block(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
        body: OptionalJsonBody<BlockDto>,
    ) -> Result<TaskResponse> {
        let action = Action::Block {
            reason: body.0.reason,
        };
        self.act(&auth, id.0, (if_match.0, fence.0), &fingerprint, action)
            .await
    }

    /// Unblock a task
    ///
    /// Back to `in_progress` if assigned, else `pending`.
    #[oai(
        path = "/api/tasks/:id/unblock",
        method = "post",
        tag = "Tag::Tasks",
        operation_id = "unblockTask"
    )]
    async fn unblock(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        self.act(
            &auth,
            id.0,
            (if_match.0, fence.0),
            &fingerprint,
            Action::Unblock,
        )
        .await
    }

    /// Release a task
    ///
    /// The assignee (or an admin) gives an `in_progress` task back: `pending`, unassigned, the
    /// lease cleared, progress kept. Audit `released`.
    #[oai(
        path = "/api/tasks/:id/release",
        method = "post",
        tag = "Tag::Queue",
        operation_id = "releaseTask"
    )]
    async fn release(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task's `ETag`; 412 if it has moved on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        self.act(
            &auth,
            id.0,
            (if_match.0, fence.0),
            &fingerprint,
            Action::Release,
        )
        .await
    }

    /// Heartbeat
    ///
    /// The assignee extends the lease to now + `lease_seconds` (default: the length it was
    /// granted with). Not a change: no version bump, no audit row, the ETag stays. 400
    /// `Task has no lease` if there is none.
    #[oai(
        path = "/api/tasks/:id/heartbeat",
        method = "post",
        tag = "Tag::Queue",
        operation_id = "heartbeatTask"
    )]
    async fn heartbeat(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
        /// The new lease length, 10..=86400 seconds.
        lease_seconds: Query<Option<i64>>,
    ) -> Result<TaskResponse> {
        let command = Command::Heartbeat {
            id: id.0,
            lease_seconds: lease_seconds.0,
            fence: fence.0,
        };
        self.run(&auth, &fingerprint, command)
            .await?
            .task_response()
    }

    /// The ready queue
    ///
    /// The tasks ready for the caller: `pending`, unassigned or assigned to them, with every
    /// dependency completed; most urgent first (critical, high, medium, low), then by id.
    /// `X-Total-Count` counts every ready task.
    #[oai(
        path = "/api/tasks/ready",
        method = "get",
        tag = "Tag::Queue",
        operation_id = "listReadyTasks"
    )]
    async fn ready(
        &self,
        auth: BearerAuth,
        /// Only this project slug.
        project: Query<Option<String>>,
        /// Page size, 1..=100 (default 50).
        limit: Query<Option<i64>>,
        /// Rows to skip (default 0).
        offset: Query<Option<i64>>,
    ) -> Result<TaskListResponse> {
        let filter = ReadyFilter {
            project: project.0,
            paging: Paging::new(limit.0, offset.0)?,
        };
        let page = self.flow.ready_tasks(&auth.identity(), &filter).await?;
        Ok(TaskListResponse::Ok(
            SerdeJson(page.items.into_iter().map(Into::into).collect()),
            page.total,
        ))
    }

    /// Claim the next task
    ///
    /// Takes the first task of the caller's ready queue and starts it for them in one atomic
    /// step: `in_progress`, assigned to the caller, a new fence and a lease (`lease_seconds`,
    /// default the server's `LEASE_SECONDS`). 204 with no body when nothing is ready. Of
    /// concurrent claims each task goes to at most one caller, across server processes too.
    #[oai(
        path = "/api/tasks/claim",
        method = "post",
        tag = "Tag::Queue",
        operation_id = "claimNextTask"
    )]
    async fn claim(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        body: OptionalJsonBody<ClaimDto>,
    ) -> Result<ClaimResponse> {
        let command = Command::ClaimNext {
            project: body.0.project,
            lease_seconds: body.0.lease_seconds,
        };
        let ran = self.run(&auth, &fingerprint, command).await?;
        let replayed = ran.replayed();
        match ran.outcome {
            Outcome::Claimed(Some(task)) => {
                let tag = etag(&task);
                Ok(ClaimResponse::Claimed(
                    SerdeJson(task.into()),
                    tag,
                    replayed,
                ))
            }
            Outcome::Claimed(None) => Ok(ClaimResponse::NothingReady(replayed)),
            other => Err(unexpected(&other)),
        }
    }

    /// A task's dependencies
    ///
    /// What it depends on, what depends on it, and what it still waits for (`waiting_on`: the
    /// dependencies not completed yet). Ids ascending.
    #[oai(
        path = "/api/tasks/:id/dependencies",
        method = "get",
        tag = "Tag::Queue",
        operation_id = "getDependencies"
    )]
    async fn dependencies(&self, auth: BearerAuth, id: Path<i64>) -> Result<DependenciesResponse> {
        let view = self.flow.dependencies(&auth.identity(), id.0).await?;
        Ok(DependenciesResponse::Ok(Json(view.into()), None))
    }

    /// Add a dependency
    ///
    /// The task waits until `depends_on` is completed; it cannot start before. A change of the
    /// task (version + 1, audit `dependency_added`); an edge that exists changes nothing. 422
    /// `depends_on: task <id> not found`, or `depends_on: would create a cycle`.
    #[oai(
        path = "/api/tasks/:id/dependencies",
        method = "post",
        tag = "Tag::Queue",
        operation_id = "addDependency"
    )]
    async fn add_dependency(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
        body: JsonBody<AddDependencyDto>,
    ) -> Result<DependenciesResponse> {
        let command = Command::AddDependency {
            id: id.0,
            depends_on: body.0.depends_on,
            fence: fence.0,
        };
        let ran = self.run(&auth, &fingerprint, command).await?;
        let replayed = ran.replayed();
        match ran.outcome {
            Outcome::Dependencies(view) => {
                Ok(DependenciesResponse::Ok(Json(view.into()), replayed))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Remove a dependency
    ///
    /// A change of the task (version + 1, audit `dependency_removed`). 404 `Dependency not found`
    /// if there is no such edge.
    #[oai(
        path = "/api/tasks/:id/dependencies/:dep",
        method = "delete",
        tag = "Tag::Queue",
        operation_id = "removeDependency"
    )]
    async fn remove_dependency(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<i64>,
        /// The task it depends on.
        dep: Path<i64>,
        /// The fence the caller was given when it started the task; 409 `Lease lost` if the
        /// task has moved on to another holder.
        fence: Query<Option<i64>>,
    ) -> Result<DependencyRemovedResponse> {
        let command = Command::RemoveDependency {
            id: id.0,
            depends_on: dep.0,
            fence: fence.0,
        };
        let ran = self.run(&auth, &fingerprint, command).await?;
        Ok(DependencyRemovedResponse::NoContent(ran.replayed()))
    }

    /// A task's audit trail
    ///
    /// Oldest first. It outlives the task: rows of a deleted task are still answered.
    #[oai(
        path = "/api/tasks/:id/audit",
        method = "get",
        tag = "Tag::Audit",
        operation_id = "getTaskAudit"
    )]
    async fn task_audit(&self, auth: BearerAuth, id: Path<i64>) -> Result<TaskAuditResponse> {
        let rows = self.flow.task_audit(&auth.identity(), id.0).await?;
        Ok(TaskAuditResponse::Ok(Json(
            rows.into_iter().map(Into::into).collect(),
        )))
    }

    /// Search the audit trail
    ///
    /// Oldest first. `action` is free text. `X-Total-Count` is the number of matches.
    #[oai(
        path = "/api/audit",
        method = "get",
        tag = "Tag::Audit",
        operation_id = "listAudit"
    )]
    async fn list_audit(
        &self,
        auth: BearerAuth,
        /// Only rows about this task.
        task_id: Query<Option<i64>>,
        /// Only rows by this actor.
        actor_id: Query<Option<String>>,
        /// Only this action, e.g. `started`.
        action: Query<Option<String>>,
        /// Only this project slug.
        project: Query<Option<String>>,
        /// Page size, 1..=100 (default 50).
        limit: Query<Option<i64>>,
        /// Rows to skip (default 0).
        offset: Query<Option<i64>>,
    ) -> Result<AuditListResponse> {
        let filter = AuditFilter {
            task_id: task_id.0,
            actor_id: actor_id.0,
            action: action.0,
            project: project.0,
            paging: Paging::new(limit.0, offset.0)?,
        };
        let page = self.flow.list_audit(&auth.identity(), &filter).await?;
        Ok(AuditListResponse::Ok(
            Json(page.items.into_iter().map(Into::into).collect()),
            page.total,
        ))
    }

    /// The caller
    ///
    /// The token's id, email and role, and the actor type from the worker registry.
    #[oai(
        path = "/api/me",
        method = "get",
        tag = "Tag::Me",
        operation_id = "getMe"
    )]
    async fn me(&self, auth: BearerAuth) -> Result<MeResponse> {
        let actor = self.flow.actor(&auth.identity()).await?;
        Ok(MeResponse::Ok(Json(MeDto::new(&auth.0, &actor))))
    }

    /// List workers
    #[oai(
        path = "/api/workers",
        method = "get",
        tag = "Tag::Workers",
        operation_id = "listWorkers"
    )]
    async fn list_workers(&self, auth: BearerAuth) -> Result<WorkerListResponse> {
        let workers = self.flow.list_workers(&auth.identity()).await?;
        Ok(WorkerListResponse::Ok(Json(
            workers.into_iter().map(Into::into).collect(),
        )))
    }

    /// Get a worker
    #[oai(
        path = "/api/workers/:id",
        method = "get",
        tag = "Tag::Workers",
        operation_id = "getWorker"
    )]
    async fn get_worker(&self, auth: BearerAuth, id: Path<String>) -> Result<WorkerResponse> {
        let worker = self.flow.get_worker(&auth.identity(), &id.0).await?;
        Ok(WorkerResponse::Ok(Json(worker.into()), None))
    }

    /// Register a worker (admin)
    ///
    /// Upserts: a re-PUT replaces type and name (an omitted name clears it) and keeps
    /// `created_at`. An agent's actions are then recorded with `actor_type` `agent`.
    #[oai(
        path = "/api/workers/:id",
        method = "put",
        tag = "Tag::Workers",
        operation_id = "putWorker"
    )]
    async fn put_worker(
        &self,
        auth: BearerAuth,
        /// Names this write: a retry with the same key and request gets the stored answer
        /// (with `Idempotent-Replayed: true`) instead of running again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        fingerprint: RequestFingerprint,
        id: Path<String>,
        body: JsonBody<PutWorkerDto>,
    ) -> Result<WorkerResponse> {
        let command = Command::PutWorker {
            id: id.0,
            worker_type: body.0.worker_type.0,
            name: body.0.name,
        };
        let ran = self.run(&auth, &fingerprint, command).await?;
        let replayed = ran.replayed();
        match ran.outcome {
            Outcome::Worker(worker) => Ok(WorkerResponse::Ok(Json(worker.into()), replayed)),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_is_a_precondition() {
        use Precondition::*;
        assert_eq!(precondition(None), Any);
        assert_eq!(precondition(Some(" * ")), Any);
        assert_eq!(precondition(Some("\"3\"")), Version(3));
        assert_eq!(precondition(Some(" W/\"3\", \"4\" ")), Version(4));
        assert_eq!(precondition(Some("\"1\", \"3\"")), OneOf(vec![1, 3]));
        assert_eq!(precondition(Some("W/\"3\"")), OneOf(vec![]));
        assert_eq!(precondition(Some("3")), OneOf(vec![]));
    }
}
