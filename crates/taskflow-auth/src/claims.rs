//! Claims for minting tokens (dev signer and test support).

use std::time::Duration;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

/// Better Auth's token lifetime: `exp` = `iat` + 15 minutes.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The claims of a token to mint. Built with [`TokenClaims::new`] and the chained setters;
/// every field is public so tests can also forge odd tokens (no `sub`, an `exp` in the past…).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenClaims {
    /// `sub`, the principal id. `None` leaves it out.
    pub sub: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `role`; when absent a verifier reports the role `user`.
    pub role: Option<String>,
    /// `iss`.
    pub iss: Option<String>,
    /// `aud`: serialised as a string when there is one, an array when several, absent when
    /// empty.
    pub aud: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    pub exp: Option<i64>,
    /// `nbf`, seconds since the Unix epoch.
    pub nbf: Option<i64>,
    /// `iat`, seconds since the Unix epoch.
    pub iat: Option<i64>,
    /// Any other claims (`name`, `emailVerified`, …).
    pub extra: Map<String, Value>,
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn unix_time() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl TokenClaims {
    /// Claims for `sub`, issued now and expiring in 15 minutes (like Better Auth).
    #[must_use]
    pub fn new(sub: impl Into<String>) -> Self {
        let now = unix_time();
        Self {
            sub: Some(sub.into()),
            iat: Some(now),
            exp: Some(now.saturating_add(secs(DEFAULT_TOKEN_TTL))),
            ..Self::default()
        }
    }

    /// Sets `email`.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets `role`.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets `iss`.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// Adds an `aud` value.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }

    /// Sets `exp` to now + `ttl`.
    #[must_use]
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.exp = Some(unix_time().saturating_add(secs(ttl)));
        self
    }

    /// Sets `exp` to `ago` in the past (an expired token).
    #[must_use]
    pub fn expired_for(mut self, ago: Duration) -> Self {
        self.exp = Some(unix_time().saturating_sub(secs(ago)));
        self
    }

    /// Sets `nbf` to now + `delay`.
    #[must_use]
    pub fn not_before_in(mut self, delay: Duration) -> Self {
        self.nbf = Some(unix_time().saturating_add(secs(delay)));
        self
    }

    /// Sets any other claim.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

impl Serialize for TokenClaims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        // An extra claim named like a field is written only when that field is unset, so
        // tests can give `sub` or `exp` an odd type.
        let named = |k: &str| match k {
            "sub" => self.sub.is_some(),
            "email" => self.email.is_some(),
            "role" => self.role.is_some(),
            "iss" => self.iss.is_some(),
            "aud" => !self.aud.is_empty(),
            "exp" => self.exp.is_some(),
            "nbf" => self.nbf.is_some(),
            "iat" => self.iat.is_some(),
            _ => false,
        };
        for (k, v) in &self.extra {
            if !named(k) {
                map.serialize_entry(k, v)?;
            }
        }
        if let Some(v) = &self.sub {
            map.serialize_entry("sub", v)?;
        }
        if let Some(v) = &self.email {
            map.serialize_entry("email", v)?;
        }
        if let Some(v) = &self.role {
            map.serialize_entry("role", v)?;
        }
        if let Some(v) = &self.iss {
            map.serialize_entry("iss", v)?;
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => map.serialize_entry("aud", one)?,
            many => map.serialize_entry("aud", many)?,
        }
        if let Some(v) = self.exp {
            map.serialize_entry("exp", &v)?;
        }
        if let Some(v) = self.nbf {
            map.serialize_entry("nbf", &v)?;
        }
        if let Some(v) = self.iat {
            map.serialize_entry("iat", &v)?;
        }
        map.end()
    }
}
