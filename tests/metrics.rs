//! `GET /metrics` (SPEC §11): off by default, on the main listener with `METRICS=1`, on a port
//! of its own with `METRICS_PORT`; traffic, claims, lease expiries, JWKS fetches and store
//! failures move the series. The output is read with a Prometheus text parser.
//!
//! Each test runs the real `serve` (as `examples/server.rs` does) against a loopback JWKS. The
//! `metrics` recorder is global to the process, so the tests take turns and compare readings
//! taken before and after their own traffic.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;
use taskflow_auth::Algorithm;
use taskflow_auth::test_support::{JwksResponse, JwksServer, TestKeys};
use taskflow_core::DynStore;

/// One test at a time: the recorder (and so every counter) is shared by the whole binary.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server {
    base: String,
    metrics_base: String,
    jwks: JwksServer,
    keys: TestKeys,
    store: DynStore,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), taskflow_poem::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `serve` on a fresh SQLite file with `vars` added to the environment it reads.
async fn start(vars: &[(&str, String)], jwks_response: JwksResponse) -> Server {
    let keys = TestKeys::generate();
    let jwks = JwksServer::start(keys.jwks()).await;
    jwks.set_response(jwks_response);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        ),
        ("PORT", port.to_string()),
        ("LOG_LEVEL", "off".to_owned()),
        ("AUTH_SERVER_URL", jwks.base_url()),
        ("LEASE_SWEEP_SECONDS", "1".to_owned()),
    ];
    env.extend(vars.iter().map(|(k, v)| (*k, v.clone())));
    let config = taskflow_poem::Config::from_lookup(|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let metrics_base = match config.server.metrics {
        taskflow_poem::MetricsConfig::Separate(addr) => format!("http://{addr}"),
        _ => format!("http://127.0.0.1:{port}"),
    };
    let store = taskflow::open(&config.database_url).await.unwrap();
    let task = tokio::spawn(taskflow_poem::serve(config, store.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Server {
        base,
        metrics_base,
        jwks,
        keys,
        store,
        http,
        task,
        _dir: dir,
    }
}

impl Server {
    fn token(&self, sub: &str) -> String {
        let claims = self.jwks.claims(sub).role("admin");
        self.keys.mint(Algorithm::EdDSA, &claims)
    }

    fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token("ada"))
    }

    async fn scrape(&self) -> Readings {
        let resp = self
            .http
            .get(format!("{}/metrics", self.metrics_base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = resp.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        Readings(scrape)
    }
}

/// A parsed scrape.
struct Readings(Scrape);

impl Readings {
    /// The value of the counter or gauge `name` whose labels include `labels` (summed over the
    /// other labels), 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{name} is not a counter or gauge: {other:?}"),
            })
            .sum()
    }

    /// The observation count of the histogram `name` with these labels (its `+Inf` bucket).
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Histogram(buckets) => {
                    assert!(buckets.len() > 2, "a histogram with buckets: {buckets:?}");
                    buckets
                        .iter()
                        .find(|b| b.less_than.is_infinite())
                        .map_or(0.0, |b| b.count)
                }
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == name)
    }
}

const REQUESTS: &str = "taskflow_http_requests_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_claims_leases_jwks_and_store_failures_move_the_series() {
    let _turn = TURN.lock().await;
    // The JWKS fails at first: the first authenticated request finds no keys.
    let server = start(&[("METRICS", "1".to_owned())], JwksResponse::Status(500)).await;
    let before = server.scrape().await;
    for name in [
        "taskflow_http_requests_in_flight",
        "taskflow_claims_total",
        "taskflow_lease_expiries_total",
        "taskflow_jwks_fetches_total",
        "taskflow_jwks_fetch_failures_total",
    ] {
        assert!(before.has(name), "{name} is listed from the start");
    }

    // A failed JWKS fetch (cold start): 503, one fetch, one failure.
    let resp = server
        .call(reqwest::Method::GET, "/api/tasks")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The verifier retries on its own while it has no keys (0.5 s, then 1 s, …).
    let failures = "taskflow_jwks_fetch_failures_total";
    let mut failed = 0.0;
    for _ in 0..40 {
        failed = server.scrape().await.value(failures, &[]) - before.value(failures, &[]);
        if failed >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(failed >= 1.0, "a failed fetch is counted");
    server.jwks.set_response(JwksResponse::Keys);
    // The cold-start backoff is 0.5 s; then a request fetches again, and succeeds.
    let mut listed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let resp = server
            .call(reqwest::Method::GET, "/api/tasks")
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            listed = true;
            break;
        }
    }
    assert!(listed, "the JWKS came back");

    // Traffic: two creates, a read, a miss, an unknown route, a claim.
    for title in ["one", "two"] {
        let resp = server
            .call(reqwest::Method::POST, "/api/tasks")
            .json(&json!({"title": title}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = server
        .call(reqwest::Method::GET, "/api/tasks/1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = server
        .call(reqwest::Method::GET, "/api/tasks/999999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = server
        .call(reqwest::Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = server
        .call(reqwest::Method::POST, "/api/tasks/claim")
        .json(&json!({"lease_seconds": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "a task was claimed");

    let after = server.scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        delta(
            REQUESTS,
            &[
                ("route", "createTask"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        2.0
    );
    assert_eq!(
        delta(REQUESTS, &[("route", "getTask"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        delta(REQUESTS, &[("route", "getTask"), ("status", "404")]),
        1.0,
        "a missing task is labelled with its operation"
    );
    assert_eq!(
        delta(REQUESTS, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    assert!(
        delta(REQUESTS, &[("route", "listTasks"), ("status", "503")]) >= 1.0,
        "the requests that found no keys (the retries may have found none either)"
    );
    assert!(delta(REQUESTS, &[("route", "listTasks"), ("status", "200")]) >= 1.0);
    assert!(
        after.0.samples.iter().all(|s| s.metric != REQUESTS
            || !s.labels.get("route").unwrap_or("").contains("/api/tasks/")),
        "no route label carries an id"
    );
    let duration = "taskflow_http_request_duration_seconds";
    assert_eq!(
        after.observations(duration, &[("route", "createTask")])
            - before.observations(duration, &[("route", "createTask")]),
        2.0
    );
    assert_eq!(delta("taskflow_claims_total", &[]), 1.0);
    assert!(delta("taskflow_jwks_fetches_total", &[]) >= 2.0);
    assert_eq!(
        after.value("taskflow_http_requests_in_flight", &[]),
        0.0,
        "nothing in flight between requests"
    );
    assert!(after.value("taskflow_http_connections_open", &[]) >= 1.0);

    // The claim's 10 s lease runs out; the sweep (every second) reclaims it.
    let mut expired = 0.0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        expired = server
            .scrape()
            .await
            .value("taskflow_lease_expiries_total", &[])
            - before.value("taskflow_lease_expiries_total", &[]);
        if expired >= 1.0 {
            break;
        }
    }
    assert_eq!(expired, 1.0, "one lease expiry");

    // A closed store answers 503 `Database unavailable`: a store error.
    server.store.close().await.unwrap();
    let resp = server
        .call(reqwest::Method::GET, "/api/tasks/1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let last = server.scrape().await;
    assert_eq!(
        last.value("taskflow_store_errors_total", &[("kind", "unavailable")])
            - before.value("taskflow_store_errors_total", &[("kind", "unavailable")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_a_port_of_their_own() {
    let _turn = TURN.lock().await;
    let metrics_port = free_port();
    let server = start(
        &[("METRICS_PORT", metrics_port.to_string())],
        JwksResponse::Keys,
    )
    .await;
    let before = server.scrape().await;
    let resp = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "not on the main listener"
    );
    let resp = server
        .http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let after = server.scrape().await;
    let route = [("route", "getHealth"), ("status", "200")];
    assert_eq!(
        after.value(REQUESTS, &route) - before.value(REQUESTS, &route),
        1.0
    );
    let route = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        after.value(REQUESTS, &route) - before.value(REQUESTS, &route),
        1.0,
        "the main listener's /metrics is an unknown route"
    );
    let resp = server
        .http
        .get(format!("{}/other", server.metrics_base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "only /metrics there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    let _turn = TURN.lock().await;
    let server = start(&[], JwksResponse::Keys).await;
    let resp = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = server
        .http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
