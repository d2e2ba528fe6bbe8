//! Server configuration from the environment.
//!
//! Three parts, each read where it belongs: [`ServerConfig`] (`HOST`, `PORT`,
//! `ALLOWED_ORIGINS`, `LOG_LEVEL`, the lease and idempotency settings, the connection limits and
//! `/metrics`) here, [`AuthConfig`] (`JWKS_URL`, `AUTH_SERVER_URL`,
//! `JWT_ISSUER`, `JWT_AUDIENCE`, `AUTH_CACHE_SIZE`) in `taskflow-auth`, and `DATABASE_URL`, which names the store
//! that the caller opens (`taskflow::open` in the facade crate) and hands to
//! [`crate::serve`]. [`Config`] reads all three at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use taskflow_auth::{AuthConfig, EnvError};

/// How the HTTP server listens and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `ALLOWED_ORIGINS`, comma-separated (default `http://localhost:3000`).
    pub allowed_origins: Vec<String>,
    /// `HOST` (default `127.0.0.1`).
    pub host: IpAddr,
    /// `PORT` (default `8000`; 0 picks a free port).
    pub port: u16,
    /// `LOG_LEVEL` (default `info`): a level or a `tracing` filter such as
    /// `info,taskflow_poem=debug`.
    pub log_level: String,
    /// `LEASE_SECONDS` (default 1800, 10..=86400): the lease claim-next grants when the caller
    /// names none.
    pub lease_seconds: i64,
    /// `LEASE_SWEEP_SECONDS` (default 5, at least 1): how often expired leases are reclaimed.
    pub lease_sweep_seconds: u64,
    /// `IDEMPOTENCY_TTL_SECONDS` (default 86400, at least 1): how long the answer to a request
    /// with an `Idempotency-Key` is kept for replays.
    pub idempotency_ttl_seconds: u64,
    /// `EVENTS_POLL_MS` (default 250, at least 10): how often the event feed looks for changes
    /// made by other server processes on the same database.
    pub events_poll_ms: u64,
    /// `EVENTS_KEEPALIVE_SECONDS` (default 15, at least 1): how often an idle `/api/events`
    /// stream sends a comment line.
    pub events_keepalive_seconds: u64,
    /// `HEADER_READ_TIMEOUT_SECONDS` (default 10, at least 1): a connection whose request
    /// headers are not complete this long after it opened (or, on a kept-alive connection,
    /// after the first byte of its next request) is closed. See [`crate::limits`].
    pub header_read_timeout: Duration,
    /// `IDLE_TIMEOUT_SECONDS` (default 60, at least 1): a connection with no traffic either way
    /// for this long is closed once its response in flight, if any, is done.
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS` (default 1024, at least 1): open connections at most. Over it, new
    /// connections wait in the listen backlog until one closes (they are not refused).
    pub max_connections: usize,
    /// `METRICS`, `METRICS_PORT`, `METRICS_HOST`: where `GET /metrics` is served, if anywhere.
    pub metrics: MetricsConfig,
}

/// Where `GET /metrics` (Prometheus text format, no auth) is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsConfig {
    /// Not served, and nothing is recorded (the default).
    #[default]
    Off,
    /// `METRICS=1`: on the main listener, next to the API.
    MainListener,
    /// `METRICS_PORT` (with `METRICS_HOST`, default `127.0.0.1`): on a listener of its own,
    /// and not on the main one.
    Separate(SocketAddr),
}

impl MetricsConfig {
    /// Whether `/metrics` is served at all.
    pub fn enabled(&self) -> bool {
        !matches!(self, MetricsConfig::Off)
    }
}

/// Everything the ready-made server reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `HOST`, `PORT`, `ALLOWED_ORIGINS`, `LOG_LEVEL`.
    pub server: ServerConfig,
    /// `JWKS_URL`, `AUTH_SERVER_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`, `AUTH_CACHE_SIZE`.
    pub auth: AuthConfig,
    /// `DATABASE_URL`: `sqlite://taskflow.db` (default), `sqlite:///abs.db`, `sqlite::memory:`
    /// or `postgres://…`.
    pub database_url: String,
}

/// The default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://taskflow.db";

/// A lookup that treats empty values as unset.
fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

impl ServerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (a variable's value, or `None` when unset). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let get = |name: &str| non_empty(&lookup, name);
        let allowed_origins = get("ALLOWED_ORIGINS").map_or_else(
            || vec!["http://localhost:3000".to_owned()],
            |v| taskflow_auth::csv(&v),
        );
        let host = match get("HOST") {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) if h.trim() == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => h.trim().parse().map_err(|_| {
                EnvError::new(
                    "HOST",
                    format!("must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{h}'"),
                )
            })?,
        };
        let port = match get("PORT") {
            None => 8000,
            Some(p) => p.trim().parse().map_err(|_| {
                EnvError::new(
                    "PORT",
                    format!("must be a port number 0..=65535, got '{p}'"),
                )
            })?,
        };
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| {
            EnvError::new(
                "LOG_LEVEL",
                format!("'{log_level}' is not a level or filter: {e}"),
            )
        })?;
        let lease_seconds = match get("LEASE_SECONDS") {
            None => taskflow_core::model::DEFAULT_LEASE_SECONDS,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .and_then(|n| taskflow_core::validate::lease_seconds(n).ok())
                .ok_or_else(|| {
                    EnvError::new(
                        "LEASE_SECONDS",
                        format!("must be a number of seconds 10..=86400, got '{v}'"),
                    )
                })?,
        };
        let at_least = |name: &'static str, default: u64, min: u64, unit: &str| match get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().ok().filter(|n| *n >= min).ok_or_else(|| {
                EnvError::new(
                    name,
                    format!("must be a whole number of {unit}, at least {min}, got '{v}'"),
                )
            }),
        };
        let lease_sweep_seconds = at_least("LEASE_SWEEP_SECONDS", 5, 1, "seconds")?;
        let idempotency_ttl_seconds = at_least("IDEMPOTENCY_TTL_SECONDS", 86_400, 1, "seconds")?;
        let events_poll_ms = at_least("EVENTS_POLL_MS", 250, 10, "milliseconds")?;
        let events_keepalive_seconds = at_least("EVENTS_KEEPALIVE_SECONDS", 15, 1, "seconds")?;
        let header_read_timeout =
            Duration::from_secs(at_least("HEADER_READ_TIMEOUT_SECONDS", 10, 1, "seconds")?);
        let idle_timeout = Duration::from_secs(at_least("IDLE_TIMEOUT_SECONDS", 60, 1, "seconds")?);
        let max_connections = usize::try_from(at_least("MAX_CONNECTIONS", 1024, 1, "connections")?)
            .map_err(|_| EnvError::new("MAX_CONNECTIONS", "is too large for this machine"))?;
        let metrics = metrics_config(&get)?;
        Ok(ServerConfig {
            allowed_origins,
            host,
            port,
            log_level,
            lease_seconds,
            lease_sweep_seconds,
            idempotency_ttl_seconds,
            events_poll_ms,
            events_keepalive_seconds,
            header_read_timeout,
            idle_timeout,
            max_connections,
            metrics,
        })
    }
}

/// `METRICS` (a switch), `METRICS_PORT` and `METRICS_HOST`. A port alone turns metrics on, on a
/// listener of its own; `METRICS=0` turns them off even with a port.
fn metrics_config(get: &impl Fn(&str) -> Option<String>) -> Result<MetricsConfig, EnvError> {
    let switch = match get("METRICS") {
        None => None,
        Some(v) => Some(match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(EnvError::new(
                    "METRICS",
                    format!("must be 1 or 0 (true/false, yes/no, on/off), got '{v}'"),
                ));
            }
        }),
    };
    let port: Option<u16> = match get("METRICS_PORT") {
        None => None,
        Some(p) => Some(p.trim().parse().map_err(|_| {
            EnvError::new(
                "METRICS_PORT",
                format!("must be a port number 0..=65535, got '{p}'"),
            )
        })?),
    };
    let host = match get("METRICS_HOST") {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(h) if h.trim() == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(h) => h.trim().parse().map_err(|_| {
            EnvError::new(
                "METRICS_HOST",
                format!("must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{h}'"),
            )
        })?,
    };
    Ok(match (switch, port) {
        (Some(false), _) | (None, None) => MetricsConfig::Off,
        (_, Some(port)) => MetricsConfig::Separate(SocketAddr::new(host, port)),
        (Some(true), None) => MetricsConfig::MainListener,
    })
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (a variable's value, or `None` when unset). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let config = Config {
            auth: AuthConfig::from_lookup(&lookup)?,
            database_url: non_empty(&lookup, "DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            server: ServerConfig::from_lookup(&lookup)?,
        };
        config.check_dev_host()?;
        Ok(config)
    }

    /// Dev auth mode mints tokens anyone could ask for, so it never listens beyond loopback.
    fn check_dev_host(&self) -> Result<(), EnvError> {
        if self.auth == AuthConfig::Dev && !self.server.host.is_loopback() {
            return Err(EnvError::new(
                "HOST",
                format!(
                    "{} is not a loopback address; dev auth mode (no JWKS_URL or AUTH_SERVER_URL) only listens on 127.0.0.1 or ::1",
                    self.server.host
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://taskflow.db");
        assert_eq!(c.auth, AuthConfig::Dev);
        assert_eq!(c.server.allowed_origins, ["http://localhost:3000"]);
        assert_eq!(c.server.host.to_string(), "127.0.0.1");
        assert_eq!(c.server.port, 8000);
        assert_eq!(c.server.log_level, "info");
        assert_eq!(c.server.lease_seconds, 1800);
        assert_eq!(c.server.lease_sweep_seconds, 5);
        assert_eq!(c.server.idempotency_ttl_seconds, 86_400);
        assert_eq!(c.server.events_poll_ms, 250);
        assert_eq!(c.server.events_keepalive_seconds, 15);
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 1024);
        assert_eq!(c.server.metrics, MetricsConfig::Off);
    }

    #[test]
    fn limits_and_metrics() {
        let c = config(&[
            ("HEADER_READ_TIMEOUT_SECONDS", "3"),
            ("IDLE_TIMEOUT_SECONDS", "7"),
            ("MAX_CONNECTIONS", "5"),
            ("METRICS", "1"),
        ])
        .unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.server.max_connections, 5);
        assert_eq!(c.server.metrics, MetricsConfig::MainListener);
        let port = |vars: &[(&str, &str)]| config(vars).unwrap().server.metrics;
        assert_eq!(
            port(&[("METRICS_PORT", "9464")]),
            MetricsConfig::Separate("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            port(&[
                ("METRICS", "yes"),
                ("METRICS_PORT", "9464"),
                ("METRICS_HOST", "0.0.0.0")
            ]),
            MetricsConfig::Separate("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(
            port(&[("METRICS", "0"), ("METRICS_PORT", "9464")]),
            MetricsConfig::Off
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (vars, var) in [
            (vec![("PORT", "eighty")], "PORT"),
            (vec![("PORT", "70000")], "PORT"),
            (vec![("HOST", "my host")], "HOST"),
            (vec![("HOST", "0.0.0.0")], "HOST"),
            (vec![("JWKS_URL", "ftp://x")], "JWKS_URL"),
            (vec![("AUTH_SERVER_URL", "nope")], "AUTH_SERVER_URL"),
            (vec![("LOG_LEVEL", "very=loud=yes")], "LOG_LEVEL"),
            (vec![("LEASE_SECONDS", "5")], "LEASE_SECONDS"),
            (vec![("LEASE_SECONDS", "soon")], "LEASE_SECONDS"),
            (vec![("LEASE_SWEEP_SECONDS", "0")], "LEASE_SWEEP_SECONDS"),
            (
                vec![("IDEMPOTENCY_TTL_SECONDS", "-1")],
                "IDEMPOTENCY_TTL_SECONDS",
            ),
            (
                vec![("HEADER_READ_TIMEOUT_SECONDS", "0")],
                "HEADER_READ_TIMEOUT_SECONDS",
            ),
            (
                vec![("IDLE_TIMEOUT_SECONDS", "soon")],
                "IDLE_TIMEOUT_SECONDS",
            ),
            (vec![("MAX_CONNECTIONS", "-3")], "MAX_CONNECTIONS"),
            (vec![("METRICS", "maybe")], "METRICS"),
            (vec![("METRICS_PORT", "http")], "METRICS_PORT"),
            (
                vec![("METRICS_PORT", "9464"), ("METRICS_HOST", "my host")],
                "METRICS_HOST",
            ),
        ] {
            let err = config(&vars).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().starts_with(&format!("{var}: ")), "{err}");
            assert!(!err.to_string().contains('\n'));
        }
        let ok = config(&[
            ("HOST", "0.0.0.0"),
            ("AUTH_SERVER_URL", "https://a.example"),
        ]);
        assert!(ok.is_ok(), "a real JWKS may listen anywhere");
    }
}
