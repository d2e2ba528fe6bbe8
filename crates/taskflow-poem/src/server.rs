//! Assembling the app, opening the store, and running the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use taskflow_auth::{DevAuth, JwksVerifier, TokenClaims, Verifier};
use taskflow_core::{DynStore, TaskFlow};

use crate::api::Api;
use crate::body::BodyLimit;
use crate::config::{AuthConfig, Config, ConfigError};
use crate::error::to_response;

/// The version reported by `/health` and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long the printed dev token stays valid.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Bad configuration (names the variable).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed to open or close.
    #[error("database: {0}")]
    Store(#[from] taskflow_core::Error),
    /// The token verifier could not be built.
    #[error("auth: {0}")]
    Auth(String),
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

fn openapi(flow: TaskFlow) -> OpenApiService<Api, ()> {
    OpenApiService::new(Api::new(flow), "taskflow", VERSION).description(
        "Task management shared by humans and AI agents: one lifecycle, one audit trail. \
         Every `/api` call needs `Authorization: Bearer <jwt>`: click **Authorize** and paste a \
         token. Errors are `{\"error\": \"…\", \"status_code\": n}`.",
    )
}

/// The OpenAPI document the server serves at `/openapi.json`, as pretty JSON.
pub fn openapi_json(flow: TaskFlow) -> String {
    openapi(flow).spec()
}

/// The whole HTTP app: the API, `/openapi.json`, Swagger UI at `/docs`, CORS, the body limit,
/// request logs, and the error mapping that gives every error the same body shape.
pub fn app(
    flow: TaskFlow,
    verifier: Arc<dyn Verifier>,
    allowed_origins: &[String],
) -> BoxEndpoint<'static> {
    let api = openapi(flow);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let cors = Cors::new()
        .allow_origins(allowed_origins.iter().map(String::as_str))
        .allow_methods(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])
        .allow_headers(["authorization", "content-type", "if-match"])
        .expose_headers(["ETag", "X-Total-Count"])
        // Browser front-ends send cookies (Better Auth sessions) with their calls, as the seed
        // allows; a credentialed request needs this, and an explicit origin list (never `*`).
        .allow_credentials(true)
        .max_age(600);
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .with(BodyLimit)
        .catch_all_error(|err| async move { to_response(err) })
        .with(cors)
        .catch_all_error(|err| async move { to_response(err) })
        .data(verifier)
        .around(log_request)
        .boxed()
}

/// One structured log line per request.
async fn log_request<E: Endpoint>(ep: Arc<E>, req: poem::Request) -> poem::Result<poem::Response> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let resp = ep
        .call(req)
        .await
        .map_or_else(to_response, IntoResponse::into_response);
    let status = resp.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "request");
    }
    Ok(resp)
}

/// Opens the store `DATABASE_URL` names: `sqlite:` URLs with the `sqlite` feature, `postgres://`
/// and `postgresql://` with the `postgres` feature. A missing feature is a clear error.
pub async fn open_store(url: &str) -> Result<DynStore, ServeError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => open_sqlite(url).await,
        "postgres" | "postgresql" => open_postgres(url).await,
        _ => Err(ConfigError::new(
            "DATABASE_URL",
            format!("unsupported URL '{scheme}:…': use sqlite://file.db, sqlite::memory: or postgres://…"),
        )
        .into()),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<DynStore, ServeError> {
    Ok(Arc::new(
        taskflow_store_sqlite::SqliteStore::connect(url).await?,
    ))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<DynStore, ServeError> {
    Err(ConfigError::new(
        "DATABASE_URL",
        "sqlite URLs need taskflow-poem's `sqlite` feature, which this build lacks",
    )
    .into())
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<DynStore, ServeError> {
    Ok(Arc::new(taskflow_store_pg::PgStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<DynStore, ServeError> {
    Err(ConfigError::new(
        "DATABASE_URL",
        "postgres URLs need taskflow-poem's `postgres` feature, which this build lacks",
    )
    .into())
}

/// The verifier the configuration asks for. In dev mode it also returns an admin token.
pub async fn verifier(
    auth: &AuthConfig,
) -> Result<(Arc<dyn Verifier>, Option<String>), ServeError> {
    match auth {
        AuthConfig::Dev => {
            let dev = DevAuth::ed25519_ephemeral().map_err(|e| ServeError::Auth(e.to_string()))?;
            let claims = TokenClaims::new("dev-admin")
                .email("admin@localhost")
                .role("admin")
                .expires_in(DEV_TOKEN_TTL);
            let token = dev
                .mint(&claims)
                .map_err(|e| ServeError::Auth(e.to_string()))?;
            Ok((Arc::new(dev), Some(token)))
        }
        AuthConfig::Jwks {
            jwks_url,
            issuers,
            audiences,
        } => {
            let mut builder = JwksVerifier::builder(jwks_url.clone());
            // SPEC: JWT_ISSUER and JWT_AUDIENCE are enforced when set. Unset, they are waived
            // explicitly and loudly: any key holder's tokens for any audience would pass.
            if issuers.is_empty() {
                tracing::warn!("JWT_ISSUER is not set: token issuers are not checked");
                builder = builder.any_issuer();
            }
            if audiences.is_empty() {
                tracing::warn!("JWT_AUDIENCE is not set: token audiences are not checked");
                builder = builder.any_audience();
            }
            for iss in issuers {
                builder = builder.issuer(iss.clone());
            }
            for aud in audiences {
                builder = builder.audience(aud.clone());
            }
            let verifier = builder
                .build()
                .map_err(|e| ServeError::Auth(e.to_string()))?;
            // Warm the cache, but start anyway: stale-if-error and refetch cover a late JWKS.
            if let Err(e) = verifier.prefetch().await {
                tracing::warn!(jwks_url, error = %e, "JWKS not reachable yet; will retry on demand");
            }
            Ok((Arc::new(verifier), None))
        }
    }
}

/// Installs a `tracing` subscriber at `LOG_LEVEL`, writing to stderr, unless one is installed
/// already.
pub fn init_logging(config: &Config) {
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

/// Runs the server until SIGINT or SIGTERM: opens the store, builds the verifier, binds, serves,
/// then lets in-flight requests finish and closes the store.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    init_logging(&config);
    let store = open_store(&config.database_url).await?;
    let (verifier, dev_token) = verifier(&config.auth).await?;
    let addr = SocketAddr::new(config.host, config.port);
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    print_banner(&config, local, dev_token.as_deref());

    let app = app(
        TaskFlow::new(store.clone()),
        verifier,
        &config.allowed_origins,
    );
    let result = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(SHUTDOWN_GRACE))
        .await;
    tracing::info!("shutting down: closing the store");
    store.close().await?;
    result.map_err(|source| ServeError::Io { addr, source })
}

fn print_banner(config: &Config, addr: SocketAddr, dev_token: Option<&str>) {
    let base = format!("http://{addr}");
    println!("taskflow {VERSION} listening on {base}");
    println!("  Swagger UI:  {base}/docs");
    println!("  OpenAPI:     {base}/openapi.json");
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

async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
