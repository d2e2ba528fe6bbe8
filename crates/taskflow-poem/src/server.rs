//! Assembling the app, opening the store, and running the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use taskflow_auth::Verifier;
use taskflow_core::{DynStore, TaskFlow};
use tokio::sync::watch;

use crate::api::Api;
use crate::body::BodyLimit;
use crate::config::{AuthConfig, Config, EnvError, MetricsConfig, ServerConfig};
use crate::cors::SameOriginOrCors;
use crate::error::to_response;
use crate::events::{DEFAULT_KEEP_ALIVE, EventsApi};
use crate::idempotency::Fingerprints;

pub use mcp::McpJson;

/// The version reported by `/health` and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Bad configuration (names the variable).
    #[error(transparent)]
    Config(#[from] EnvError),
    /// The store failed to open or close.
    #[error("database: {0}")]
    Store(#[from] taskflow_core::Error),
    /// The token verifier could not be built.
    #[error("auth: {0}")]
    Auth(#[from] taskflow_auth::ConfigError),
    /// Metrics are on but their recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn openapi(flow: TaskFlow, events: EventsApi) -> OpenApiService<(Api, EventsApi), ()> {
    OpenApiService::new((Api::new(flow), events), "taskflow", VERSION).description(
        "Task management shared by humans and AI agents: one lifecycle, one audit trail. \
         Every `/api` call needs `Authorization: Bearer <jwt>`: click **Authorize** and paste a \
         token. Errors are `{\"error\": \"…\", \"status_code\": n}`.",
    )
}

/// The OpenAPI document the server serves at `/openapi.json`, as pretty JSON.
pub fn openapi_json(flow: TaskFlow) -> String {
    let events = EventsApi::new(flow.clone(), DEFAULT_KEEP_ALIVE, None);
    openapi(flow, events).spec()
}

/// What an app is built with besides its service and its token verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppOptions {
    /// The origins CORS allows, with credentials (the server's `ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// How often an idle `/api/events` stream sends a comment line (the server's
    /// `EVENTS_KEEPALIVE_SECONDS`; default 15 s).
    pub events_keep_alive: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            allowed_origins: Vec::new(),
            events_keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// The whole HTTP app: the API, `/openapi.json`, Swagger UI at `/docs`, the MCP tools at `/mcp`,
/// the board at `/board` (and `/`, which redirects there), CORS (for other origins than the
/// server's own), the body limit, request logs, and the error mapping that gives every error the
/// same body shape. `/mcp` accepts the `Host` names of a loopback server (see [`serve`] for
/// others).
pub fn app(
    flow: TaskFlow,
    verifier: Arc<dyn Verifier>,
    allowed_origins: &[String],
) -> BoxEndpoint<'static> {
    let options = AppOptions {
        allowed_origins: allowed_origins.to_vec(),
        ..AppOptions::default()
    };
    app_with(flow, verifier, &options)
}

/// [`app`] with every option.
pub fn app_with(
    flow: TaskFlow,
    verifier: Arc<dyn Verifier>,
    options: &AppOptions,
) -> BoxEndpoint<'static> {
    let loopback = std::net::Ipv4Addr::LOCALHOST.into();
    app_on(loopback, flow, verifier, options, None)
}

/// [`app`] for a server listening on `host`, which decides the `Host` names `/mcp` accepts;
/// event streams end when `closing` turns `true`.
fn app_on(
    host: std::net::IpAddr,
    flow: TaskFlow,
    verifier: Arc<dyn Verifier>,
    options: &AppOptions,
    closing: Option<watch::Receiver<bool>>,
) -> BoxEndpoint<'static> {
    let allowed_origins = &options.allowed_origins;
    let mcp = mcp::endpoint(flow.clone(), host);
    let events = EventsApi::new(flow.clone(), options.events_keep_alive, closing);
    let api = openapi(flow, events);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let cors = Cors::new()
        .allow_origins(allowed_origins.iter().map(String::as_str))
        .allow_methods(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])
        .allow_headers([
            "authorization",
            "content-type",
            "if-match",
            "idempotency-key",
            "last-event-id",
        ])
        .expose_headers(["ETag", "X-Total-Count", "Idempotent-Replayed"])
        // Browser front-ends send cookies (Better Auth sessions) with their calls, as the seed
        // allows; a credentialed request needs this, and an explicit origin list (never `*`).
        .allow_credentials(true)
        .max_age(600)
        // poem's `Cors` with no origin at all allows every origin, which with credentials
        // would hand any site the user's session. An empty list means none: only the
        // server's own pages (same origin) may call it from a browser.
        .allow_origins_fn(|_| false);
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/mcp", mcp)
        // The board is a page, not an operation: beside the OpenAPI service, not in it.
        .nest("/board", crate::board::routes())
        .nest("/", api)
        .around(crate::board::redirect_home)
        .around(crate::metrics::tag_operation)
        .with(Fingerprints)
        .with(BodyLimit)
        .catch_all_error(|err| async move { to_response(err) })
        .with(SameOriginOrCors(cors))
        .catch_all_error(|err| async move { to_response(err) })
        .data(verifier)
        .around(log_request)
        .boxed()
}

/// The `tracing` target of the per-request lines.
pub const ACCESS_LOG_TARGET: &str = "taskflow_poem::access";

/// How long a request may take before its line is a warning.
const SLOW_REQUEST: Duration = Duration::from_secs(1);

/// One structured line per request, under [`ACCESS_LOG_TARGET`]: at `error` for a 5xx answer,
/// `warn` for one slower than a second, `debug` for the rest. At the default `LOG_LEVEL=info`
/// the server logs what needs attention and counts the rest in `/metrics`; writing a line for
/// every request costs more than a cached read (see the README's "Performance"). `LOG_LEVEL=debug`
/// or `LOG_LEVEL=info,taskflow_poem::access=debug` logs every request.
async fn log_request<E: Endpoint>(ep: Arc<E>, req: poem::Request) -> poem::Result<poem::Response> {
    // Cheap copies (a `Uri` shares its bytes): most answers are written without a line.
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = Instant::now();
    let resp = ep
        .call(req)
        .await
        .map_or_else(to_response, IntoResponse::into_response);
    let path = uri.path();
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(target: ACCESS_LOG_TARGET, %method, path, status, elapsed_ms, "request");
    } else if elapsed >= SLOW_REQUEST {
        tracing::warn!(target: ACCESS_LOG_TARGET, %method, path, status, elapsed_ms, "slow request");
    } else {
        tracing::debug!(target: ACCESS_LOG_TARGET, %method, path, status, elapsed_ms, "request");
    }
    Ok(resp)
}

/// Installs a `tracing` subscriber at `LOG_LEVEL`, writing to stderr, unless one is installed
/// already.
pub fn init_logging(config: &ServerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr, so stdout carries only the banner (and the dev token).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Err only means a subscriber exists already, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Runs the server on `store` until SIGINT or SIGTERM: builds the verifier, binds, serves, then
/// lets in-flight requests finish and closes the store. The caller opens the store that
/// `config.database_url` names (`taskflow::open` in the facade crate does).
pub async fn serve(config: Config, store: DynStore) -> Result<(), ServeError> {
    init_logging(&config.server);
    // Before the verifier, whose first JWKS fetch is counted.
    let metrics = crate::metrics::MetricsListener::bind(&config.server).await?;
    let (verifier, dev_token) = config.auth.verifier().await?;
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    let metrics_addr = metrics.as_ref().and_then(|m| m.addr());
    print_banner(&config, local, dev_token.as_deref(), metrics_addr);

    let flow = TaskFlow::new(store.clone())
        .with_default_lease(config.server.lease_seconds)?
        .with_idempotency_ttl(Duration::from_secs(config.server.idempotency_ttl_seconds))
        .with_event_poll(Duration::from_millis(config.server.events_poll_ms));
    let sweeper = tokio::spawn(sweep_leases(
        flow.clone(),
        Duration::from_secs(config.server.lease_sweep_seconds),
    ));
    let purger = tokio::spawn(purge_idempotency_records(flow.clone(), PURGE_EVERY));
    let options = AppOptions {
        allowed_origins: config.server.allowed_origins.clone(),
        events_keep_alive: Duration::from_secs(config.server.events_keepalive_seconds),
    };
    // Event streams never end on their own: they end when shutdown begins, so that in-flight
    // requests can finish within the grace period.
    let (close, closing) = watch::channel(false);
    let app = app_on(config.server.host, flow, verifier, &options, Some(closing));
    let stopping = async move {
        shutdown_signal().await;
        close.send_replace(true);
    };
    let limits = crate::limits::Limits::from(&config.server);
    let (app, metrics_tasks) = match metrics {
        None => (app, Vec::new()),
        Some(m) => m.mount(app, &limits),
    };
    let result = crate::limits::server(acceptor, &limits)
        .run_with_graceful_shutdown(app, stopping, Some(SHUTDOWN_GRACE))
        .await;
    sweeper.abort();
    purger.abort();
    metrics_tasks
        .iter()
        .for_each(tokio::task::JoinHandle::abort);
    tracing::info!("shutting down: closing the store");
    store.close().await?;
    result.map_err(|source| ServeError::Io { addr, source })
}

/// Reclaims expired leases every `every`, for as long as the server runs. Several server
/// processes on one database may all sweep: each lease is reclaimed exactly once.
async fn sweep_leases(flow: TaskFlow, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match flow.sweep_expired_leases().await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!(crate::metrics::names::LEASE_EXPIRIES)
                    .increment(u64::try_from(n).unwrap_or(u64::MAX));
                tracing::info!(reclaimed = n, "expired leases reclaimed");
            }
            // A store without the work queue has no leases to sweep.
            Err(taskflow_core::Error::Unsupported { .. }) => return,
            Err(err) => tracing::warn!(error = %err, "lease sweep failed; retrying"),
        }
    }
}

/// How often expired idempotency records are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Deletes expired idempotency records every `every`, for as long as the server runs.
async fn purge_idempotency_records(flow: TaskFlow, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match flow.purge_idempotency_records().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired idempotency records purged"),
            Err(err) => tracing::warn!(error = %err, "purging idempotency records failed"),
        }
    }
}

fn print_banner(
    config: &Config,
    addr: SocketAddr,
    dev_token: Option<&str>,
    metrics_addr: Option<SocketAddr>,
) {
    let base = format!("http://{addr}");
    println!("taskflow {VERSION} listening on {base}");
    println!("  Board:       {base}/board");
    println!("  Swagger UI:  {base}/docs");
    println!("  OpenAPI:     {base}/openapi.json");
    println!("  MCP:         {base}/mcp (Streamable HTTP, same bearer token)");
    match (config.server.metrics, metrics_addr) {
        (MetricsConfig::MainListener, _) => println!("  Metrics:     {base}/metrics"),
        (_, Some(m)) => println!("  Metrics:     http://{m}/metrics"),
        _ => {}
    }
    println!("  Database:    {}", redact(&config.database_url));
    match (&config.auth, dev_token) {
        (AuthConfig::Jwks { jwks_url, .. }, _) => println!("  Auth:        JWKS at {jwks_url}"),
        (AuthConfig::Dev, Some(token)) => {
            println!(
                "  Auth:        DEV MODE (no JWKS_URL or AUTH_SERVER_URL set): tokens are signed"
            );
            println!("               by a key that lives only in this process; loopback only.");
            println!();
            println!("Admin token (role admin, valid 12 h):");
            println!();
            println!("{token}");
            println!();
            println!("Try it in Swagger UI:");
            println!(
                "  1. Open {base}/docs and click Authorize; paste the token above; Authorize."
            );
            println!("  2. POST /api/tasks with {{\"title\": \"My first task\"}} (note the id).");
            println!("  3. POST /api/tasks/{{id}}/start, then POST /api/tasks/{{id}}/complete.");
            println!("  4. GET /api/tasks/{{id}}/audit shows created, started, completed.");
            println!("Or with curl:");
            println!("  export TOKEN='{token}'");
            println!("  curl -H \"Authorization: Bearer $TOKEN\" {base}/api/tasks");
        }
        (AuthConfig::Dev, None) => {}
    }
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM: the signal [`serve`] stops on. Also for programs
/// beside the server that should stop the same way (the benchmark's helpers).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// `/mcp`: the MCP tools of [`taskflow_mcp`], mounted in [`app`].
mod mcp {
    use std::net::IpAddr;
    use std::sync::Arc;

    use poem::endpoint::TowerCompatExt;
    use poem::http::{StatusCode, header};
    use poem::{Endpoint, EndpointExt, IntoResponse, Response};
    use poem_openapi::types::ToJSON;
    use serde_json::Value;
    use taskflow_auth::{Principal, Verifier};
    use taskflow_core::TaskFlow;
    use taskflow_core::model::{Actor, AuditEntry, DependencyView, Task};

    use crate::auth::BearerAuth;
    use crate::dto::{AuditDto, DependenciesDto, MeDto, TaskDto};
    use crate::error::ApiError;

    /// `/mcp`: the MCP tools ([`taskflow_mcp`]) over Streamable HTTP, behind the same bearer
    /// check as `/api`, answering in the same JSON ([`McpJson`]).
    pub(super) fn endpoint(flow: TaskFlow, host: IpAddr) -> impl Endpoint<Output = Response> {
        let server = taskflow_mcp::TaskflowMcp::new(flow, Arc::new(McpJson));
        let hosts = taskflow_mcp::http::allowed_hosts(host);
        taskflow_mcp::http::service(server, hosts)
            .compat()
            .around(auth)
    }

    /// Verifies the bearer token as `/api` does (the same 401s) and hands the verified caller to
    /// the MCP tools in the request's extensions.
    async fn auth<E: Endpoint>(ep: Arc<E>, mut req: poem::Request) -> poem::Result<Response> {
        let verifier = req.data::<Arc<dyn Verifier>>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No token verifier configured",
            )
        })?;
        let authorization = req.header(header::AUTHORIZATION);
        let principal = taskflow_auth::verify_authorization(verifier.as_ref(), authorization)
            .await
            .map_err(ApiError::from)?;
        let identity = BearerAuth(principal.clone()).identity();
        req.extensions_mut()
            .insert(taskflow_mcp::Caller::new(identity, principal));
        Ok(ep.call(req).await?.into_response())
    }

    /// The HTTP API's JSON for MCP tool results: the same DTOs and error messages as `/api`, so
    /// an agent over MCP and a client over HTTP read the same shapes.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct McpJson;

    impl taskflow_mcp::Render for McpJson {
        fn task(&self, task: Task) -> Value {
            TaskDto::from(task).to_json().unwrap_or_default()
        }

        fn audit(&self, entry: AuditEntry) -> Value {
            AuditDto::from(entry).to_json().unwrap_or_default()
        }

        fn dependencies(&self, view: DependencyView) -> Value {
            DependenciesDto::from(view).to_json().unwrap_or_default()
        }

        fn me(&self, principal: &Principal, actor: &Actor) -> Value {
            MeDto::new(principal, actor).to_json().unwrap_or_default()
        }

        fn error(&self, error: taskflow_core::Error) -> String {
            ApiError::from(error).message().to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;
    use poem::test::TestClient;

    use super::*;

    /// With no allowed origin, no foreign origin is allowed (poem's default would be all of
    /// them, with credentials); the server's own origin still is.
    #[tokio::test]
    async fn an_empty_origin_list_allows_no_foreign_origin() {
        let store = Arc::new(taskflow_core::MemoryStore::new());
        let dev = taskflow_auth::DevAuth::ed25519_ephemeral().unwrap();
        let app = crate::app(TaskFlow::new(store), Arc::new(dev), &[]);
        let cli = TestClient::new(app);
        let preflight = cli
            .options("/api/tasks")
            .header("Origin", "http://evil.example")
            .header("Host", "127.0.0.1:8000")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await;
        preflight.assert_status(StatusCode::FORBIDDEN);
        preflight.assert_header_is_not_exist("access-control-allow-origin");
        let get = cli
            .get("/health")
            .header("Origin", "http://evil.example")
            .header("Host", "127.0.0.1:8000")
            .send()
            .await;
        get.assert_header_is_not_exist("access-control-allow-origin");
        let own = cli
            .get("/health")
            .header("Origin", "http://127.0.0.1:8000")
            .header("Host", "127.0.0.1:8000")
            .send()
            .await;
        own.assert_status_is_ok();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://taskflow.db"), "sqlite://taskflow.db");
    }
}
