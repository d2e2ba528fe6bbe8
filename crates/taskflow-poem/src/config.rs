//! Server configuration from the environment.

use std::net::{IpAddr, Ipv4Addr};

/// Bad configuration: one line that names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            var,
            message: message.into(),
        }
    }
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// No JWKS configured: an ephemeral key signs tokens that only this process accepts, and the
    /// server prints a ready admin token. Loopback hosts only.
    Dev,
    /// Verify against a JWKS endpoint.
    Jwks {
        /// Where the key set is served.
        jwks_url: String,
        /// Accepted issuers (`iss` must be one of them); empty means not checked.
        issuers: Vec<String>,
        /// Accepted audiences (`aud` must match one); empty means not checked.
        audiences: Vec<String>,
    },
}

/// Everything the example server reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://taskflow.db` (default), `sqlite:///abs.db`, `sqlite::memory:`
    /// or `postgres://…`.
    pub database_url: String,
    /// From `JWKS_URL`, `AUTH_SERVER_URL`, `JWT_ISSUER` and `JWT_AUDIENCE`.
    pub auth: AuthConfig,
    /// `ALLOWED_ORIGINS`, comma-separated (default `http://localhost:3000`).
    pub allowed_origins: Vec<String>,
    /// `HOST` (default `127.0.0.1`).
    pub host: IpAddr,
    /// `PORT` (default `8000`; 0 picks a free port).
    pub port: u16,
    /// `LOG_LEVEL` (default `info`): a level or a `tracing` filter such as
    /// `info,taskflow_poem=debug`.
    pub log_level: String,
}

/// The default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://taskflow.db";

fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn http_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::new(
            var,
            format!("must be an http:// or https:// URL, got '{value}'"),
        ))
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (a variable's value, or `None` when unset). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let issuers = get("JWT_ISSUER").map(|v| csv(&v)).unwrap_or_default();
        let audiences = get("JWT_AUDIENCE").map(|v| csv(&v)).unwrap_or_default();
        let auth_server = get("AUTH_SERVER_URL")
            .map(|v| http_url("AUTH_SERVER_URL", &v))
            .transpose()?
            .map(|v| v.trim_end_matches('/').to_owned());
        let auth = match (get("JWKS_URL"), auth_server) {
            (Some(jwks), server) => AuthConfig::Jwks {
                jwks_url: http_url("JWKS_URL", &jwks)?,
                issuers: if issuers.is_empty() {
                    server.iter().cloned().collect()
                } else {
                    issuers
                },
                audiences: if audiences.is_empty() {
                    server.into_iter().collect()
                } else {
                    audiences
                },
            },
            (None, Some(server)) => AuthConfig::Jwks {
                jwks_url: format!("{server}{}", taskflow_auth::BETTER_AUTH_JWKS_PATH),
                issuers: if issuers.is_empty() {
                    vec![server.clone()]
                } else {
                    issuers
                },
                audiences: if audiences.is_empty() {
                    vec![server]
                } else {
                    audiences
                },
            },
            (None, None) => AuthConfig::Dev,
        };

        let allowed_origins = get("ALLOWED_ORIGINS")
            .map_or_else(|| vec!["http://localhost:3000".to_owned()], |v| csv(&v));
        let host = match get("HOST") {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) if h.trim() == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => h.trim().parse().map_err(|_| {
                ConfigError::new(
                    "HOST",
                    format!("must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{h}'"),
                )
            })?,
        };
        let port = match get("PORT") {
            None => 8000,
            Some(p) => p.trim().parse().map_err(|_| {
                ConfigError::new(
                    "PORT",
                    format!("must be a port number 0..=65535, got '{p}'"),
                )
            })?,
        };
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| {
            ConfigError::new(
                "LOG_LEVEL",
                format!("'{log_level}' is not a level or filter: {e}"),
            )
        })?;

        let config = Config {
            database_url,
            auth,
            allowed_origins,
            host,
            port,
            log_level,
        };
        config.check_dev_host()?;
        Ok(config)
    }

    /// Dev auth mode mints tokens anyone could ask for, so it never listens beyond loopback.
    fn check_dev_host(&self) -> Result<(), ConfigError> {
        if self.auth == AuthConfig::Dev && !self.host.is_loopback() {
            return Err(ConfigError::new(
                "HOST",
                format!(
                    "{} is not a loopback address; dev auth mode (no JWKS_URL or AUTH_SERVER_URL) only listens on 127.0.0.1 or ::1",
                    self.host
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

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
        assert_eq!(c.allowed_origins, ["http://localhost:3000"]);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 8000);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn auth_server_url_defaults_issuer_and_audience() {
        let c = config(&[("AUTH_SERVER_URL", "http://127.0.0.1:3001/")]).unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::Jwks {
                jwks_url: "http://127.0.0.1:3001/api/auth/jwks".into(),
                issuers: vec!["http://127.0.0.1:3001".into()],
                audiences: vec!["http://127.0.0.1:3001".into()],
            }
        );
        let c = config(&[
            ("JWKS_URL", "https://auth.example/keys"),
            ("JWT_AUDIENCE", "a, b"),
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::Jwks {
                jwks_url: "https://auth.example/keys".into(),
                issuers: vec![],
                audiences: vec!["a".into(), "b".into()],
            }
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
