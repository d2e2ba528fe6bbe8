//! Error types.

use thiserror::Error;

/// Why a bearer token was not accepted.
///
/// The `Display` text is a short human reason meant to follow `Invalid token: `. It never
/// contains key material or token contents.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token at all: no `Authorization` header, a non-`Bearer` scheme, or an empty token.
    #[error("no bearer token")]
    Missing,
    /// Not a compact JWS: wrong number of segments, bad base64url, or a header or payload
    /// that is not a JSON object of the expected shape.
    #[error("malformed token")]
    Malformed,
    /// The token is longer than 8 KiB; it was refused before any parsing or crypto.
    #[error("token too large")]
    TooLarge,
    /// The header `typ` is present and is not `JWT` (for example `at+jwt` or a session-cache
    /// token).
    #[error("wrong token type")]
    WrongType,
    /// The header `alg` is `none`, HMAC where only public keys are accepted, or otherwise not
    /// supported.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header `alg` is not the one algorithm the selected key verifies.
    #[error("algorithm does not match key")]
    AlgorithmMismatch,
    /// The token has no `kid` header but the verifier needs one to pick a key.
    #[error("missing key id")]
    MissingKeyId,
    /// No usable key has the token's `kid`, even after a refetch of the key set.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify (tampered or forged token).
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim (`sub`, `exp`, or a configured `iss`/`aud`) is absent.
    #[error("missing claim: {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type (for example a string `exp` or an empty `sub`).
    #[error("invalid claim: {0}")]
    InvalidClaim(&'static str),
    /// `iss` is not one of the configured issuers.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` matches none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// No usable signing keys: the key set could not be fetched and no stale copy is left
    /// (a server should answer 503, not 401).
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// `true` when the failure is on the server's side (the keys are unavailable), so the
    /// caller should answer 503 rather than 401.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable)
    }
}

/// A verifier or signer could not be built from its configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL did not parse or is not `http`/`https`.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A verifier of JWKS tokens needs at least one issuer and one audience.
    #[error("at least one {0} must be configured")]
    MissingExpectation(&'static str),
    /// Inconsistent durations or limits (for example a minimum TTL above the maximum).
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// The static key material was not usable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Reading a key file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// The JWT crypto backend is not usable in this process (for example another crate
    /// pinned jsonwebtoken to a different, unusable provider before this crate could install
    /// its own).
    #[error("JWT crypto backend unavailable: {0}")]
    CryptoBackend(String),
}

/// A token could not be minted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MintError {
    /// The claims could not be serialised.
    #[error("cannot encode claims: {0}")]
    Encode(String),
    /// The signing operation failed.
    #[error("signing failed: {0}")]
    Sign(String),
}
