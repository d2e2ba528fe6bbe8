//! Compact-JWS parsing, signature checking and claim validation, shared by every verifier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use crate::keys::VerifyKey;
use crate::{Algorithm, AuthError, Principal};

/// Tokens longer than this are refused before any parsing or crypto.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The role a principal gets when the token carries no `role` claim.
pub const DEFAULT_ROLE: &str = "user";

/// The algorithm named by a token header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderAlg {
    Asymmetric(Algorithm),
    Hs256,
}

/// A token that passed the structural checks; nothing about it is trusted yet.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) alg: HeaderAlg,
    pub(crate) kid: Option<String>,
    signing_input: &'a str,
    signature_b64: &'a str,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

/// Structural checks, in order: size, segments, base64url, header JSON, `typ`, `alg`.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(AuthError::Malformed);
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AuthError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| AuthError::Malformed)?;
    // Duplicate members are an error in serde's struct decoding, which closes off
    // parser-differential tricks.
    let header: RawHeader =
        serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;

    match &header.typ {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(AuthError::WrongType),
    }
    // No extension is understood, so any critical one must be refused (RFC 7515 §4.1.11).
    if header.crit.is_some() {
        return Err(AuthError::Malformed);
    }
    let alg = match header.alg.as_deref() {
        None => return Err(AuthError::Malformed),
        Some("HS256") => HeaderAlg::Hs256,
        Some(name) => HeaderAlg::Asymmetric(
            Algorithm::from_name(name).ok_or(AuthError::UnsupportedAlgorithm)?,
        ),
    };
    let kid = match header.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(AuthError::Malformed),
    };
    if signature_b64.is_empty() || URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
        return Err(AuthError::Malformed);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Parsed {
        alg,
        kid,
        signing_input,
        signature_b64,
        payload,
    })
}

impl Parsed<'_> {
    /// Verifies the signature with `key` under `alg`, which the caller has matched to the key.
    pub(crate) fn verify_signature(
        &self,
        key: &jsonwebtoken::DecodingKey,
        alg: jsonwebtoken::Algorithm,
    ) -> Result<(), AuthError> {
        match jsonwebtoken::crypto::verify(
            self.signature_b64,
            self.signing_input.as_bytes(),
            key,
            alg,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::BadSignature),
            Err(e) => {
                tracing::debug!(error = %e, "signature verification error");
                Err(AuthError::BadSignature)
            }
        }
    }

    /// Verifies with a public key: the header algorithm must be the key's one algorithm.
    /// Returns the principal and the claim times a cache needs to refuse the token exactly
    /// when this check would.
    pub(crate) fn verify_with(
        &self,
        key: &VerifyKey,
        rules: &ClaimRules,
    ) -> Result<(Principal, Validity), AuthError> {
        match self.alg {
            HeaderAlg::Asymmetric(alg) if alg == key.alg => {}
            HeaderAlg::Asymmetric(_) => return Err(AuthError::AlgorithmMismatch),
            HeaderAlg::Hs256 => return Err(AuthError::UnsupportedAlgorithm),
        }
        self.verify_signature(&key.key, key.alg.to_jwt())?;
        rules.check_with_validity(&self.payload)
    }

    /// Only after the signature verified: the claims.
    pub(crate) fn claims(&self, rules: &ClaimRules) -> Result<Principal, AuthError> {
        rules.check(&self.payload)
    }
}

/// The claim checks: configured issuers and audiences (exact match) and the leeway.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: Duration,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
        }
    }
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
    email: Option<Value>,
    role: Option<Value>,
}

/// Seconds since the Unix epoch, as a float (JWT NumericDate may be fractional).
fn numeric_date(v: Option<&Value>, name: &'static str) -> Result<Option<f64>, AuthError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(AuthError::InvalidClaim(name)),
        },
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The claim times of a verified token, kept so that a cached verification can be refused at
/// exactly the moment verification itself would refuse the token (see
/// [`ClaimRules::check_times`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Validity {
    /// `exp`.
    exp: f64,
    /// The later of `nbf` and `iat`, when either is present: both face the same test.
    not_before: Option<f64>,
}

#[cfg(test)]
impl Validity {
    pub(crate) fn for_tests(exp: f64, not_before: Option<f64>) -> Self {
        Self { exp, not_before }
    }
}

impl ClaimRules {
    pub(crate) fn check(&self, payload: &[u8]) -> Result<Principal, AuthError> {
        self.check_with_validity(payload)
            .map(|(principal, _)| principal)
    }

    fn expired(&self, exp: f64, now: f64) -> bool {
        now > exp + self.leeway.as_secs_f64()
    }

    fn not_yet_valid(&self, not_before: f64, now: f64) -> bool {
        not_before > now + self.leeway.as_secs_f64()
    }

    /// The time checks of [`check`](Self::check) on claims it accepted before, at `now`
    /// (Unix seconds, as [`unix_now`]). The same tests with the same leeway, so a cached token
    /// is refused once verification would refuse it — even if the clock steps back.
    pub(crate) fn check_times(&self, validity: &Validity, now: f64) -> Result<(), AuthError> {
        if self.expired(validity.exp, now) {
            return Err(AuthError::Expired);
        }
        if validity
            .not_before
            .is_some_and(|t| self.not_yet_valid(t, now))
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }

    pub(crate) fn check_with_validity(
        &self,
        payload: &[u8],
    ) -> Result<(Principal, Validity), AuthError> {
        let claims: RawClaims =
            serde_json::from_slice(payload).map_err(|_| AuthError::Malformed)?;
        let now = unix_now();

        let exp =
            numeric_date(claims.exp.as_ref(), "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        if self.expired(exp, now) {
            return Err(AuthError::Expired);
        }
        let nbf = numeric_date(claims.nbf.as_ref(), "nbf")?;
        if nbf.is_some_and(|nbf| self.not_yet_valid(nbf, now)) {
            return Err(AuthError::NotYetValid);
        }
        let iat = numeric_date(claims.iat.as_ref(), "iat")?;
        if iat.is_some_and(|iat| self.not_yet_valid(iat, now)) {
            return Err(AuthError::NotYetValid);
        }
        let validity = Validity {
            exp,
            not_before: match (nbf, iat) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        };

        let id = match claims.sub {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("sub")),
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(AuthError::InvalidClaim("sub")),
        };

        if !self.issuers.is_empty() {
            match claims.iss {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim("iss")),
                Some(Value::String(iss)) if self.issuers.contains(&iss) => {}
                Some(_) => return Err(AuthError::WrongIssuer),
            }
        }
        if !self.audiences.is_empty() {
            let ok = match &claims.aud {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud")),
                Some(Value::String(aud)) => self.audiences.contains(aud),
                Some(Value::Array(auds)) => auds.iter().any(|a| {
                    a.as_str()
                        .is_some_and(|a| self.audiences.iter().any(|c| c == a))
                }),
                Some(_) => false,
            };
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }

        let email = match claims.email {
            Some(Value::String(e)) if !e.is_empty() => Some(e),
            _ => None,
        };
        let role = match claims.role {
            Some(Value::String(r)) if !r.is_empty() => r,
            _ => DEFAULT_ROLE.to_owned(),
        };
        Ok((Principal { id, email, role }, validity))
    }
}
