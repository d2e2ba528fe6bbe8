//! Remote mode: core's [`Command`] sent to the REST API endpoint that runs it, with reqwest.
//! The server runs the same core, so the rules, the refusals and the JSON are the same as in
//! local mode; this module only knows the routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use taskflow_core::Command;
use taskflow_core::idempotency::IdempotencyKey;
use taskflow_core::lifecycle::Action;
use taskflow_core::model::{Paging, Precondition};

use crate::failure::Failure;
use crate::reply::Reply;

/// How many times a request is tried when the server cannot be reached or the answer is lost.
/// A write is retried with the same `Idempotency-Key`, so it never acts twice.
const ATTEMPTS: usize = 3;

/// The waits between attempts.
const BACKOFF: [Duration; ATTEMPTS - 1] = [Duration::from_millis(200), Duration::from_secs(1)];

/// A taskflow server, called as the holder of a bearer token.
#[derive(Debug)]
pub struct Remote {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    key: Option<String>,
}

/// What kind of answer an endpoint gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Task,
    Tasks,
    Audit {
        paged: bool,
    },
    Dependencies,
    Worker,
    Workers,
    Me,
    /// 204 with no body.
    Done,
    /// A task, or 204 when nothing is ready.
    Claim,
}

/// One HTTP request for one command.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    method: Method,
    path: Vec<String>,
    query: Vec<(&'static str, String)>,
    if_match: Option<String>,
    body: Option<Value>,
    shape: Shape,
}

impl Call {
    fn new(method: Method, path: &[&str], shape: Shape) -> Self {
        Call {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            if_match: None,
            body: None,
            shape,
        }
    }

    fn get(path: &[&str], shape: Shape) -> Self {
        Call::new(Method::GET, path, shape)
    }

    fn post(path: &[&str], shape: Shape) -> Self {
        Call::new(Method::POST, path, shape)
    }

    /// Adds `name=value` to the query when `value` is given.
    fn param(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    fn paging(self, paging: Paging) -> Self {
        self.param("limit", Some(paging.limit()))
            .param("offset", Some(paging.offset()))
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The `If-Match` header a precondition states (none for any version).
    fn precondition(mut self, precondition: &Precondition) -> Self {
        self.if_match = match precondition {
            Precondition::Any => None,
            Precondition::Version(v) => Some(format!("\"{v}\"")),
            Precondition::OneOf(vs) => Some(
                vs.iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        self
    }
}

/// The endpoint that runs `command`.
fn call(command: &Command) -> Result<Call, Failure> {
    let id_of = |id: &i64| id.to_string();
    Ok(match command {
        Command::CreateTask { task } => {
            Call::post(&["api", "tasks"], Shape::Task).body(without_nulls(to_json(task)?))
        }
        Command::GetTask { id } => Call::get(&["api", "tasks", &id_of(id)], Shape::Task),
        Command::ListTasks { filter } => Call::get(&["api", "tasks"], Shape::Tasks)
            .param("status", filter.status.map(|s| s.as_str()))
            .param("assigned_to", filter.assigned_to.as_ref())
            .param("project", filter.project.as_ref())
            .param("priority", filter.priority.map(|p| p.as_str()))
            .param("parent_id", filter.parent_id)
            .paging(filter.paging),
        Command::UpdateTask {
            id,
            patch,
            precondition,
            fence,
        } => Call::new(Method::PATCH, &["api", "tasks", &id_of(id)], Shape::Task)
            .param("fence", *fence)
            .precondition(precondition)
            .body(to_json(patch)?),
        Command::Act {
            id,
            action,
            precondition,
            fence,
        } => act(*id, action)
            .param("fence", *fence)
            .precondition(precondition),
        Command::Heartbeat {
            id,
            lease_seconds,
            fence,
        } => Call::post(&["api", "tasks", &id_of(id), "heartbeat"], Shape::Task)
            .param("fence", *fence)
            .param("lease_seconds", *lease_seconds),
        Command::ClaimNext {
            project,
            lease_seconds,
        } => Call::post(&["api", "tasks", "claim"], Shape::Claim).body(without_nulls(
            json!({"project": project, "lease_seconds": lease_seconds}),
        )),
        Command::ReadyTasks { filter } => Call::get(&["api", "tasks", "ready"], Shape::Tasks)
            .param("project", filter.project.as_ref())
            .paging(filter.paging),
        Command::Dependencies { id } => Call::get(
            &["api", "tasks", &id_of(id), "dependencies"],
            Shape::Dependencies,
        ),
        Command::AddDependency {
            id,
            depends_on,
            fence,
        } => Call::post(
            &["api", "tasks", &id_of(id), "dependencies"],
            Shape::Dependencies,
        )
        .param("fence", *fence)
        .body(json!({ "depends_on": depends_on })),
        Command::RemoveDependency {
            id,
            depends_on,
            fence,
        } => Call::new(
            Method::DELETE,
            &[
                "api",
                "tasks",
                &id_of(id),
                "dependencies",
                &id_of(depends_on),
            ],
            Shape::Done,
        )
        .param("fence", *fence),
        Command::DeleteTask { id, precondition } => {
            Call::new(Method::DELETE, &["api", "tasks", &id_of(id)], Shape::Done)
                .precondition(precondition)
        }
        Command::TaskAudit { id } => Call::get(
            &["api", "tasks", &id_of(id), "audit"],
            Shape::Audit { paged: false },
        ),
        Command::ListAudit { filter } => Call::get(&["api", "audit"], Shape::Audit { paged: true })
            .param("task_id", filter.task_id)
            .param("actor_id", filter.actor_id.as_ref())
            .param("action", filter.action.as_ref())
            .param("project", filter.project.as_ref())
            .paging(filter.paging),
        Command::PutWorker {
            id,
            worker_type,
            name,
        } => Call::new(Method::PUT, &["api", "workers", id], Shape::Worker)
            .body(without_nulls(json!({"type": worker_type, "name": name}))),
        Command::GetWorker { id } => Call::get(&["api", "workers", id], Shape::Worker),
        Command::ListWorkers => Call::get(&["api", "workers"], Shape::Workers),
        Command::Whoami => Call::get(&["api", "me"], Shape::Me),
        other => {
            return Err(Failure::other(format!(
                "this CLI cannot send {other:?} to a server"
            )));
        }
    })
}

/// A lifecycle move's endpoint: `POST /api/tasks/{id}/<move>`.
fn act(id: i64, action: &Action) -> Call {
    let id = id.to_string();
    let post = |name: &str| Call::post(&["api", "tasks", &id, name], Shape::Task);
    match action {
        Action::Start { lease_seconds } => post("start").param("lease_seconds", *lease_seconds),
        Action::Progress { percent, note } => post("progress")
            .param("percent", Some(percent))
            .param("note", note.as_ref()),
        Action::SubmitForReview => post("review"),
        Action::RequestChanges => post("request-changes"),
        Action::Complete => post("complete"),
        Action::Block { reason } => match reason {
            Some(reason) => post("block").body(json!({ "reason": reason })),
            None => post("block"),
        },
        Action::Unblock => post("unblock"),
        Action::Release => post("release"),
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(Failure::other)
}

/// An object without its `null` members (an absent field means the default to the API).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

impl Remote {
    /// A client of the server at `server` (its base URL), with `token` if given. `key`, if
    /// given, names the write; otherwise each write gets a fresh key.
    pub fn new(server: &str, token: Option<String>, key: Option<String>) -> Result<Self, Failure> {
        let base = Url::parse(server.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--server: '{server}' is not an http:// or https:// URL"
                ))
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("taskflow-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::other(format!("cannot make an HTTP client: {e}")))?;
        Ok(Remote {
            http,
            base,
            token,
            key,
        })
    }

    /// Runs `command` on the server.
    pub async fn run(&self, command: Command) -> Result<Reply, Failure> {
        let write = command.is_write();
        let call = call(&command)?;
        let key = match (&self.key, write) {
            (_, false) => None,
            (Some(key), true) => Some(key.clone()),
            (None, true) => Some(fresh_key()),
        };
        self.send(&call, key.as_deref()).await
    }

    fn url(&self, call: &Call) -> Result<Url, Failure> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Failure::usage("--server: not a base URL"))?
            .pop_if_empty()
            .extend(&call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    async fn send(&self, call: &Call, key: Option<&str>) -> Result<Reply, Failure> {
        let url = self.url(call)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            // Core's rule for keys (the server's 422), checked before the key goes in a header.
            let key = IdempotencyKey::new(key)?;
            let value = HeaderValue::from_str(key.as_str()).map_err(Failure::other)?;
            headers.insert("Idempotency-Key", value);
        }
        if let Some(tag) = &call.if_match {
            let value = HeaderValue::from_str(tag).map_err(Failure::other)?;
            headers.insert(reqwest::header::IF_MATCH, value);
        }
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .headers(headers);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.trim());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let mut attempt = 0;
        loop {
            let sent = match request.try_clone() {
                Some(request) => exchange(request).await,
                None => return Err(Failure::other("cannot repeat the request")),
            };
            match sent {
                Ok((status, headers, text)) => return answer(call.shape, status, &headers, &text),
                Err(err) if attempt + 1 < ATTEMPTS && retryable(&err) => {
                    tokio::time::sleep(BACKOFF[attempt]).await;
                    attempt += 1;
                }
                Err(err) => {
                    return Err(Failure::other(format!(
                        "cannot reach the server at {}: {}",
                        self.base,
                        chain(&err)
                    )));
                }
            }
        }
    }
}

/// Sends a request and reads its whole answer.
async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(StatusCode, HeaderMap, String), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    Ok((status, headers, text))
}

/// Whether the request may not have reached the server, or its answer was lost.
fn retryable(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// An error with its causes, as one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// A fresh idempotency key for one write: unique to this process and moment.
fn fresh_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("taskflow-cli-{}-{nanos}-{n}", std::process::id())
}

/// The reply an answer carries, or the failure an error answer is.
fn answer(
    shape: Shape,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Reply, Failure> {
    if !status.is_success() {
        return Err(error_answer(status, text));
    }
    if status == StatusCode::NO_CONTENT {
        return match shape {
            Shape::Claim => Ok(Reply::NothingReady),
            Shape::Done => Ok(Reply::Done),
            _ => Err(Failure::other(format!(
                "the server answered {status} with no body"
            ))),
        };
    }
    if shape == Shape::Done {
        return Ok(Reply::Done);
    }
    let body: Value = serde_json::from_str(text)
        .map_err(|e| Failure::other(format!("the server's answer ({status}) is not JSON: {e}")))?;
    let total = headers
        .get("X-Total-Count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(match shape {
        Shape::Task | Shape::Claim => Reply::Task(body),
        Shape::Tasks => {
            let items = array(body)?;
            Reply::Tasks {
                total: total.unwrap_or(items.len() as u64),
                items,
            }
        }
        Shape::Audit { paged } => Reply::Audit {
            items: array(body)?,
            total: if paged { total } else { None },
        },
        Shape::Dependencies => Reply::Dependencies(body),
        Shape::Worker => Reply::Worker(body),
        Shape::Workers => Reply::Workers(array(body)?),
        Shape::Me => Reply::Me(body),
        Shape::Done => Reply::Done,
    })
}

fn array(body: Value) -> Result<Vec<Value>, Failure> {
    match body {
        Value::Array(items) => Ok(items),
        other => Err(Failure::other(format!(
            "the server answered {other} where a list belongs"
        ))),
    }
}

/// An error answer: the API's `{"error", "status_code"}` body, or (from something that is not
/// taskflow, say a proxy) the status and the start of the body.
fn error_answer(status: StatusCode, text: &str) -> Failure {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let message = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => body.error,
        Err(_) => {
            let reason = status.canonical_reason().unwrap_or("Error").to_owned();
            let text = text.trim();
            if text.is_empty() {
                reason
            } else {
                let start: String = text.chars().take(200).collect();
                format!("{reason}: {start}")
            }
        }
    };
    Failure::Api {
        status: status.as_u16(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use taskflow_core::model::{NewTask, TaskPatch};

    use super::*;

    fn url(command: Command) -> (Method, String, Option<Value>) {
        let remote = Remote::new("http://h:1/base/", None, None).expect("a base URL");
        let call = call(&command).expect("a call");
        let url = remote.url(&call).expect("a URL");
        (call.method, url.to_string(), call.body)
    }

    #[test]
    fn commands_go_to_their_endpoints() {
        let (m, u, b) = url(Command::Act {
            id: 7,
            action: Action::Progress {
                percent: 50,
                note: Some("half way".into()),
            },
            precondition: Precondition::Any,
            fence: Some(2),
        });
        assert_eq!(m, Method::POST);
        assert_eq!(
            u,
            "http://h:1/base/api/tasks/7/progress?percent=50&note=half+way&fence=2"
        );
        assert_eq!(b, None);

        let (m, u, b) = url(Command::CreateTask {
            task: NewTask::titled("Docs"),
        });
        assert_eq!((m, u.as_str()), (Method::POST, "http://h:1/base/api/tasks"));
        assert_eq!(b, Some(json!({"title": "Docs"})));

        let (_, u, _) = url(Command::GetWorker { id: "a/b c".into() });
        assert_eq!(u, "http://h:1/base/api/workers/a%2Fb%20c");

        let (m, u, b) = url(Command::UpdateTask {
            id: 3,
            patch: TaskPatch {
                assigned_to: Some(None),
                title: Some("T".into()),
                ..TaskPatch::default()
            },
            precondition: Precondition::Any,
            fence: None,
        });
        assert_eq!(
            (m, u.as_str()),
            (Method::PATCH, "http://h:1/base/api/tasks/3")
        );
        assert_eq!(b, Some(json!({"title": "T", "assigned_to": null})));

        let (m, u, _) = url(Command::RemoveDependency {
            id: 7,
            depends_on: 3,
            fence: None,
        });
        assert_eq!(
            (m, u.as_str()),
            (Method::DELETE, "http://h:1/base/api/tasks/7/dependencies/3")
        );
    }

    #[test]
    fn error_bodies_become_failures() {
        let f = error_answer(
            StatusCode::CONFLICT,
            r#"{"error": "Lease lost: task is at fence 3", "status_code": 409}"#,
        );
        assert_eq!(f.exit_code(), 4);
        assert_eq!(f.to_string(), "Lease lost: task is at fence 3");
        let f = error_answer(StatusCode::BAD_GATEWAY, "<html>oops</html>");
        assert_eq!(f.status_code(), 502);
        assert_eq!(f.to_string(), "Bad Gateway: <html>oops</html>");
    }

    #[test]
    fn servers_are_http_urls() {
        assert!(Remote::new("ftp://x", None, None).is_err());
        assert!(Remote::new("localhost:8000", None, None).is_err());
        assert!(Remote::new("http://localhost:8000", None, None).is_ok());
    }
}
