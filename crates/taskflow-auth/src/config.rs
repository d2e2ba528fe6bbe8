//! Verifier configuration from the environment: `JWKS_URL`, `AUTH_SERVER_URL`, `JWT_ISSUER`,
//! `JWT_AUDIENCE` and `AUTH_CACHE_SIZE`, shared by every front-end that verifies tokens (the
//! REST API, MCP over HTTP).
//!
//! With neither `JWKS_URL` nor `AUTH_SERVER_URL`, [`AuthConfig::Dev`] is chosen: an ephemeral
//! signing key that only this process trusts, which also mints a ready admin token.

use std::sync::Arc;
use std::time::Duration;

use crate::{BETTER_AUTH_JWKS_PATH, DevAuth, JwksVerifier, TokenClaims, Verifier, defaults};

/// Bad configuration: one line that names the environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct EnvError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl EnvError {
    /// An error about `var`.
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        EnvError {
            var,
            message: message.into(),
        }
    }
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// No JWKS configured: an ephemeral key signs tokens that only this process accepts, and a
    /// ready admin token is minted. Servers allow it on loopback hosts only.
    Dev,
    /// Verify against a JWKS endpoint.
    Jwks {
        /// Where the key set is served.
        jwks_url: String,
        /// Accepted issuers (`iss` must be one of them); empty means not checked.
        issuers: Vec<String>,
        /// Accepted audiences (`aud` must match one); empty means not checked.
        audiences: Vec<String>,
        /// Most verified tokens to remember (`AUTH_CACHE_SIZE`, default
        /// [`defaults::TOKEN_CACHE_SIZE`]; 0 turns the cache off). See
        /// [`JwksVerifierBuilder::token_cache_size`](crate::JwksVerifierBuilder::token_cache_size).
        token_cache_size: usize,
    },
}

/// How long the minted dev admin token stays valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Splits a comma-separated value, dropping blanks.
pub fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn http_url(var: &'static str, value: &str) -> Result<String, EnvError> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err(EnvError::new(
            var,
            format!("must be an http:// or https:// URL, got '{value}'"),
        ))
    }
}

impl AuthConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (a variable's value, or `None` when unset). Empty
    /// values count as unset.
    ///
    /// Given `AUTH_SERVER_URL`, keys come from `$AUTH_SERVER_URL/api/auth/jwks` and the issuer
    /// and audience default to that URL (Better Auth's defaults); `JWKS_URL` names any other key
    /// set; `JWT_ISSUER` and `JWT_AUDIENCE` (comma-separated) override the defaults.
    /// `AUTH_CACHE_SIZE` bounds the verified-token cache (a count of tokens, 0 for none).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let token_cache_size = match get("AUTH_CACHE_SIZE") {
            None => defaults::TOKEN_CACHE_SIZE,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                EnvError::new(
                    "AUTH_CACHE_SIZE",
                    format!("must be a number of tokens (0 turns the cache off), got '{v}'"),
                )
            })?,
        };
        let issuers = get("JWT_ISSUER").map(|v| csv(&v)).unwrap_or_default();
        let audiences = get("JWT_AUDIENCE").map(|v| csv(&v)).unwrap_or_default();
        let auth_server = get("AUTH_SERVER_URL")
            .map(|v| http_url("AUTH_SERVER_URL", &v))
            .transpose()?
            .map(|v| v.trim_end_matches('/').to_owned());
        let or_server = |given: Vec<String>, server: &Option<String>| {
            if given.is_empty() {
                server.iter().cloned().collect()
            } else {
                given
            }
        };
        Ok(match (get("JWKS_URL"), auth_server) {
            (Some(jwks), server) => AuthConfig::Jwks {
                jwks_url: http_url("JWKS_URL", &jwks)?,
                issuers: or_server(issuers, &server),
                audiences: or_server(audiences, &server),
                token_cache_size,
            },
            (None, Some(server)) => AuthConfig::Jwks {
                jwks_url: format!("{server}{BETTER_AUTH_JWKS_PATH}"),
                issuers: or_server(issuers, &Some(server.clone())),
                audiences: or_server(audiences, &Some(server)),
                token_cache_size,
            },
            (None, None) => AuthConfig::Dev,
        })
    }

    /// The verifier this configuration asks for. In dev mode it also returns an admin token
    /// (subject `dev-admin`, role `admin`, valid [`DEV_TOKEN_TTL`]).
    ///
    /// A JWKS verifier warms its cache but starts anyway when the key set cannot be fetched
    /// yet: it retries on its own (see [`JwksVerifier`]). Unset `JWT_ISSUER`/`JWT_AUDIENCE`
    /// without `AUTH_SERVER_URL` waive those checks, with a warning in the log.
    pub async fn verifier(
        &self,
    ) -> Result<(Arc<dyn Verifier>, Option<String>), crate::ConfigError> {
        match self {
            AuthConfig::Dev => {
                let dev = DevAuth::ed25519_ephemeral()?;
                let claims = TokenClaims::new("dev-admin")
                    .email("admin@localhost")
                    .role("admin")
                    .expires_in(DEV_TOKEN_TTL);
                let token = dev
                    .mint(&claims)
                    .map_err(|e| crate::ConfigError::CryptoBackend(e.to_string()))?;
                Ok((Arc::new(dev), Some(token)))
            }
            AuthConfig::Jwks {
                jwks_url,
                issuers,
                audiences,
                token_cache_size,
            } => {
                let mut builder =
                    JwksVerifier::builder(jwks_url.clone()).token_cache_size(*token_cache_size);
                // Enforced when set. Unset, they are waived explicitly and loudly: any key
                // holder's tokens for any audience would pass.
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
                let verifier = builder.build()?;
                if let Err(e) = verifier.prefetch().await {
                    tracing::warn!(jwks_url, error = %e, "JWKS not reachable yet; will retry on its own");
                }
                Ok((Arc::new(verifier), None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<AuthConfig, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AuthConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_dev_mode() {
        assert_eq!(config(&[]).unwrap(), AuthConfig::Dev);
    }

    #[test]
    fn auth_server_url_defaults_issuer_and_audience() {
        let c = config(&[("AUTH_SERVER_URL", "http://127.0.0.1:3001/")]).unwrap();
        assert_eq!(
            c,
            AuthConfig::Jwks {
                jwks_url: "http://127.0.0.1:3001/api/auth/jwks".into(),
                issuers: vec!["http://127.0.0.1:3001".into()],
                audiences: vec!["http://127.0.0.1:3001".into()],
                token_cache_size: 10_000,
            }
        );
        let c = config(&[
            ("JWKS_URL", "https://auth.example/keys"),
            ("JWT_AUDIENCE", "a, b"),
            ("AUTH_CACHE_SIZE", " 0 "),
        ])
        .unwrap();
        assert_eq!(
            c,
            AuthConfig::Jwks {
                jwks_url: "https://auth.example/keys".into(),
                issuers: vec![],
                audiences: vec!["a".into(), "b".into()],
                token_cache_size: 0,
            }
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (vars, var) in [
            (vec![("JWKS_URL", "ftp://x")], "JWKS_URL"),
            (vec![("AUTH_SERVER_URL", "nope")], "AUTH_SERVER_URL"),
            (vec![("AUTH_CACHE_SIZE", "-1")], "AUTH_CACHE_SIZE"),
            (vec![("AUTH_CACHE_SIZE", "10k")], "AUTH_CACHE_SIZE"),
        ] {
            let err = config(&vars).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().starts_with(&format!("{var}: ")), "{err}");
        }
    }
}
