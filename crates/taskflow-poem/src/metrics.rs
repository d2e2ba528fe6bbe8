//! `GET /metrics`: the server's series in the Prometheus text format.
//!
//! Series are recorded through the [`metrics`](https://docs.rs/metrics) facade and rendered by
//! [`metrics_exporter_prometheus`]. [`crate::serve`] installs the recorder only when metrics are
//! on (`METRICS=1` or `METRICS_PORT`, see [`crate::config::MetricsConfig`]); without a recorder
//! every `counter!`/`gauge!`/`histogram!` call is a no-op. The series and their labels are listed
//! in [`names`] and in the README's "Metrics" section.
//!
//! HTTP requests are labelled with their route template: the `operationId` of the OpenAPI
//! operation that answered (`createTask`, `claimNextTask`, …), which poem-openapi attaches to the
//! operation's response or error. Requests that reached no operation are labelled `/mcp`,
//! `/docs`, `/openapi.json`, or `unmatched` (an unknown path or method, or a request refused
//! before routing, such as a body over the size limit), so that the label set stays bounded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OperationId;

use crate::config::{MetricsConfig, ServerConfig};
use crate::error::ApiError;
use crate::server::ServeError;

/// The names of every series the server records.
pub mod names {
    /// Counter, labels `route`, `method`, `status`: HTTP requests answered.
    pub const REQUESTS: &str = "taskflow_http_requests_total";
    /// Histogram, labels `route`, `method`: seconds from a request's arrival to its response
    /// headers (a streamed body is not included).
    pub const REQUEST_DURATION: &str = "taskflow_http_request_duration_seconds";
    /// Gauge: HTTP requests being handled right now.
    pub const IN_FLIGHT: &str = "taskflow_http_requests_in_flight";
    /// Gauge: open client connections (see [`crate::limits`]).
    pub const CONNECTIONS_OPEN: &str = "taskflow_http_connections_open";
    /// Counter: connections closed because their request headers did not arrive in time.
    pub const HEADER_READ_TIMEOUTS: &str = "taskflow_http_header_read_timeouts_total";
    /// Counter, label `kind` (`unavailable` or `backend`): HTTP answers that are a store
    /// failure (503 `Database unavailable`, 500 `Internal server error`).
    pub const STORE_ERRORS: &str = "taskflow_store_errors_total";
    /// Counter: tasks claimed through `POST /api/tasks/claim` (200 answers, replays excluded).
    pub const CLAIMS: &str = "taskflow_claims_total";
    /// Counter: expired leases reclaimed by the server's sweep loop.
    pub const LEASE_EXPIRIES: &str = "taskflow_lease_expiries_total";
    /// Counter: JWKS fetch attempts (recorded by `taskflow-auth`).
    pub const JWKS_FETCHES: &str = "taskflow_jwks_fetches_total";
    /// Counter: JWKS fetch attempts that failed (recorded by `taskflow-auth`).
    pub const JWKS_FETCH_FAILURES: &str = "taskflow_jwks_fetch_failures_total";
}

/// Histogram buckets of [`names::REQUEST_DURATION`], in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorder's upkeep (draining histogram samples) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the Prometheus recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(#[from] BuildError);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the Prometheus recorder as the process's global `metrics` recorder (once; later
/// calls return the same handle) and describes the series. Fails when another global recorder
/// was installed first.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let _once = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::REQUEST_DURATION.to_owned()),
            DURATION_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        "HTTP requests answered, by route template and status."
    );
    describe_histogram!(
        names::REQUEST_DURATION,
        Unit::Seconds,
        "Time to the response headers, by route template."
    );
    describe_gauge!(names::IN_FLIGHT, "HTTP requests being handled.");
    describe_gauge!(names::CONNECTIONS_OPEN, "Open client connections.");
    describe_counter!(
        names::HEADER_READ_TIMEOUTS,
        "Connections closed because their request headers did not arrive in time."
    );
    describe_counter!(
        names::STORE_ERRORS,
        "HTTP answers that are store failures, by kind."
    );
    describe_counter!(names::CLAIMS, "Tasks claimed with claim-next.");
    describe_counter!(
        names::LEASE_EXPIRIES,
        "Expired leases reclaimed by the sweep loop."
    );
    describe_counter!(names::JWKS_FETCHES, "JWKS fetch attempts.");
    describe_counter!(
        names::JWKS_FETCH_FAILURES,
        "JWKS fetch attempts that failed."
    );
    // Present (at 0) from the start, so that rates work before the first event.
    for name in [
        names::CLAIMS,
        names::LEASE_EXPIRIES,
        names::HEADER_READ_TIMEOUTS,
        names::JWKS_FETCHES,
        names::JWKS_FETCH_FAILURES,
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// `GET /metrics`: renders what `handle` recorded, as `text/plain; version=0.0.4`.
pub fn endpoint(handle: PrometheusHandle) -> impl Endpoint<Output = Response> {
    poem::get(poem::endpoint::make_sync(move |_| {
        Response::builder()
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(handle.render())
    }))
}

/// What the operation that answered a request left for [`track`]: filled in by
/// [`tag_operation`], which runs inside the error mapping (which would drop it).
#[derive(Debug, Clone, Default)]
struct Answered(Arc<OnceLock<Outcome>>);

#[derive(Debug, Clone, Copy)]
struct Outcome {
    operation: Option<&'static str>,
    store_error: Option<&'static str>,
}

/// Around the routes, inside the error mapping: notes the answering operation's id and whether
/// the answer is a store failure, for [`track`] (a no-op when metrics are off).
pub(crate) async fn tag_operation<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let Some(answered) = req.extensions().get::<Answered>().cloned() else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let result = ep.call(req).await.map(IntoResponse::into_response);
    let outcome = match &result {
        Ok(resp) => Outcome {
            operation: resp.data::<OperationId>().map(|op| op.0),
            store_error: None,
        },
        Err(err) => Outcome {
            operation: err.data::<OperationId>().map(|op| op.0),
            store_error: err.downcast_ref::<ApiError>().and_then(store_error_kind),
        },
    };
    let _ = answered.0.set(outcome);
    result
}

/// `unavailable` or `backend` when `err` is the answer to a store failure (see
/// `From<taskflow_core::Error> for ApiError`).
fn store_error_kind(err: &ApiError) -> Option<&'static str> {
    match (err.status(), err.message()) {
        (StatusCode::SERVICE_UNAVAILABLE, "Database unavailable") => Some("unavailable"),
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error") => Some("backend"),
        _ => None,
    }
}

/// Decrements the in-flight gauge when the request ends, cancelled or not.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!(names::IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(names::IN_FLIGHT).decrement(1.0);
    }
}

/// Outermost around the app: counts every request by route template, method and status, times
/// it, and keeps the in-flight gauge, the store-error and the claim counters.
pub(crate) async fn track<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let _in_flight = InFlight::start();
    let started = Instant::now();
    let method = method_label(req.method());
    let fallback = fallback_route(req.uri().path());
    let answered = Answered::default();
    req.extensions_mut().insert(answered.clone());
    let resp = match ep.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => crate::error::to_response(err),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let outcome = answered.0.get().copied();
    let route = outcome.and_then(|o| o.operation).unwrap_or(fallback);
    let status = resp.status();
    metrics::counter!(
        names::REQUESTS,
        "route" => route,
        "method" => method,
        "status" => status.as_str().to_owned()
    )
    .increment(1);
    metrics::histogram!(names::REQUEST_DURATION, "route" => route, "method" => method)
        .record(elapsed);
    if let Some(kind) = outcome.and_then(|o| o.store_error) {
        metrics::counter!(names::STORE_ERRORS, "kind" => kind).increment(1);
    }
    let replayed = resp
        .headers()
        .contains_key(crate::idempotency::REPLAYED_HEADER);
    if route == "claimNextTask" && status == StatusCode::OK && !replayed {
        metrics::counter!(names::CLAIMS).increment(1);
    }
    Ok(resp)
}

/// The route label of a request no operation answered.
fn fallback_route(path: &str) -> &'static str {
    match path {
        "/mcp" => "/mcp",
        "/openapi.json" => "/openapi.json",
        "/docs" => "/docs",
        p if p.starts_with("/docs/") => "/docs",
        _ => "unmatched",
    }
}

/// The method label: one of the standard methods, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `/metrics` when metrics are on: the recorder's handle, and a listener of its own when
/// `METRICS_PORT` asks for one (`addr` is then where it listens).
pub(crate) struct MetricsListener {
    handle: metrics_exporter_prometheus::PrometheusHandle,
    separate: Option<poem::listener::TcpAcceptor>,
    addr: Option<SocketAddr>,
}

impl MetricsListener {
    /// Installs the recorder and binds `METRICS_PORT` (before the banner, so that a bad port
    /// fails the start), or `None` when metrics are off.
    pub(crate) async fn bind(config: &ServerConfig) -> Result<Option<Self>, ServeError> {
        let separate = match config.metrics {
            MetricsConfig::Off => return Ok(None),
            MetricsConfig::MainListener => None,
            MetricsConfig::Separate(addr) => Some(addr),
        };
        let handle = install()?;
        let (separate, addr) = match separate {
            None => (None, None),
            Some(addr) => {
                let acceptor = TcpListener::bind(addr)
                    .into_acceptor()
                    .await
                    .map_err(|source| ServeError::Io { addr, source })?;
                let local = acceptor
                    .local_addr()
                    .first()
                    .and_then(|a| a.as_socket_addr().copied())
                    .unwrap_or(addr);
                (Some(acceptor), Some(local))
            }
        };
        Ok(Some(MetricsListener {
            handle,
            separate,
            addr,
        }))
    }

    /// Where the listener of its own listens, if there is one.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The app with its requests measured, and `/metrics` on it or on its own listener; the
    /// tasks to stop when the server stops.
    pub(crate) fn mount(
        self,
        app: BoxEndpoint<'static>,
        limits: &crate::limits::Limits,
    ) -> (BoxEndpoint<'static>, Vec<tokio::task::JoinHandle<()>>) {
        let handle = self.handle.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let mut ticks = tokio::time::interval(UPKEEP_EVERY);
            loop {
                ticks.tick().await;
                handle.run_upkeep();
            }
        })];
        let measured = app.around(track);
        let scrape = endpoint(self.handle);
        let app = match self.separate {
            None => Route::new()
                .at("/metrics", scrape)
                .nest("/", measured)
                .boxed(),
            Some(acceptor) => {
                let server = crate::limits::server(acceptor, limits);
                let route = Route::new().at("/metrics", scrape);
                tasks.push(tokio::spawn(async move {
                    if let Err(err) = server.run(route).await {
                        tracing::error!(error = %err, "the metrics listener stopped");
                    }
                }));
                measured.boxed()
            }
        };
        (app, tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_recognised() {
        let unavailable = ApiError::from(taskflow_core::Error::Unavailable("down".into()));
        assert_eq!(store_error_kind(&unavailable), Some("unavailable"));
        let backend = ApiError::from(taskflow_core::Error::Backend("broken".into()));
        assert_eq!(store_error_kind(&backend), Some("backend"));
        let auth = ApiError::from(taskflow_auth::AuthError::Missing);
        assert_eq!(store_error_kind(&auth), None);
        let not_found = ApiError::new(StatusCode::NOT_FOUND, "Task 1 not found");
        assert_eq!(store_error_kind(&not_found), None);
    }

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(fallback_route("/docs/oauth-receiver.html"), "/docs");
        assert_eq!(fallback_route("/api/tasks/123/nonsense"), "unmatched");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
