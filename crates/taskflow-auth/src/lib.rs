//! Bearer-token verification for taskflow: JWKS verification that works with
//! [Better Auth](https://www.better-auth.com/) out of the box and holds against hostile tokens.
//!
//! Give it the Better Auth base URL, get a [`Principal`] back:
//!
//! ```
//! use taskflow_auth::{JwksVerifier, Verifier, bearer_token};
//! # use taskflow_auth::{Algorithm, test_support::{JwksServer, TestKeys}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A stand-in for Better Auth: a real loopback JWKS server and a token it "issued".
//! # let keys = TestKeys::generate();
//! # let better_auth = JwksServer::start(keys.jwks()).await;
//! # let auth_server_url = better_auth.base_url();
//! # let token = keys.mint(Algorithm::EdDSA, &better_auth.claims("user-1").email("ada@example.com"));
//! # let authorization = format!("Bearer {token}");
//! // AUTH_SERVER_URL, e.g. "http://127.0.0.1:3001": JWKS at /api/auth/jwks, iss = aud = the URL.
//! let verifier = JwksVerifier::from_auth_server_url(&auth_server_url)?;
//!
//! // The `Authorization` header value of a request.
//! let token = bearer_token(&authorization).ok_or("Not authenticated")?;
//! let principal = verifier.verify(token).await?;
//!
//! assert_eq!(principal.id, "user-1");
//! assert_eq!(principal.email.as_deref(), Some("ada@example.com"));
//! assert_eq!(principal.role, "user"); // no `role` claim: the default
//! # Ok(())
//! # }
//! ```
//!
//! # Verifiers
//!
//! All implement the dyn-compatible [`Verifier`] trait:
//!
//! * [`JwksVerifier`] — a remote JWKS with a cache that honours `Cache-Control: max-age`
//!   (clamped to 60 s..24 h, 10 min without it), refreshes in the background, refetches on an
//!   unknown `kid` (single-flight, at most once per 30 s), retries a failing first fetch with
//!   a short backoff (0.5 s doubling up to 30 s), and serves stale keys for up to 24 h while
//!   the endpoint is down.
//!   It also remembers verified tokens (see [Verified-token cache](#verified-token-cache)).
//! * [`StaticVerifier`] — a static JWKS (inline or file) or one PEM public key, for offline use;
//!   it remembers verified tokens too.
//! * [`DevAuth`] — an explicit dev signer and verifier (HS256 shared secret or ephemeral
//!   Ed25519) that can also mint tokens.
//!
//! # Rules
//!
//! * Algorithms: EdDSA (Ed25519), ES256, ES384, RS256/384/512, PS256/384/512. Each key
//!   verifies exactly one algorithm — its `alg`, or one inferred from its type — and the token
//!   header's `alg` must be that one. ES512 keys are skipped with a warning (the JWT library
//!   lacks ES512).
//! * Never accepted: `alg: none`, HMAC against a public key set, `oct` keys from a JWKS, keys
//!   with `use: enc`, RSA keys under 2048 bits. One bad key is skipped, not fatal.
//! * `typ` absent or `JWT` (case-insensitive), so Better Auth session-cache cookies
//!   (`better-auth.session-cache+jwt`) and OAuth access tokens (`at+jwt`) don't pass.
//! * Tokens over 8 KiB are refused before any parsing or crypto.
//! * `exp` and `sub` are required; `exp`, `nbf` and `iat` are checked with a 30 s leeway;
//!   configured issuers and audiences are required and exact (a token must match one).
//! * A JWKS token must carry a `kid`; a single static key needs none.
//! * [`Principal`]: `id` = `sub`, `email`, `role` (claim `role`, default `user`).
//!
//! # Verified-token cache
//!
//! A signature check costs 20–250 µs depending on the algorithm, and a client presents the same
//! token on every request until it expires. So [`JwksVerifier`] and [`StaticVerifier`] keep the
//! outcome of each *successful* verification, keyed by the token's SHA-256, and answer the next
//! presentation of that token in about a microsecond. The cache never accepts a token that
//! verification would refuse:
//!
//! * a hit repeats verification's time checks (`exp`, `nbf`, `iat`, same leeway) at that moment,
//!   so a cached token is refused from the same second a fresh verification would refuse it;
//! * a [`JwksVerifier`] hit requires the key that verified the token — the same `kid`,
//!   algorithm and key material — to be in its current, usable key set: a refresh that drops or
//!   replaces the key, or a key set past its stale limit, ends every token that key verified;
//! * everything else verification checks is fixed by the token bytes and the verifier's
//!   configuration; a [`StaticVerifier`] whose rules change forgets its tokens;
//! * failed verifications are not stored, so a refused token is checked in full every time.
//!
//! The cache holds at most 10,000 tokens by default ([`defaults::TOKEN_CACHE_SIZE`]; set with
//! [`JwksVerifierBuilder::token_cache_size`], `AUTH_CACHE_SIZE` in [`AuthConfig`]; 0 turns it
//! off). It is [quick_cache](https://docs.rs/quick_cache)'s sharded map, where a hit takes one
//! shard's read lock; when full, tokens not presented lately make room. [`DevAuth`] has no
//! cache.
//!
//! # Crypto backend
//!
//! jsonwebtoken is used with exactly one backend, **aws-lc-rs**, fixed in this crate's
//! manifest (`default-features = false, features = ["aws_lc_rs", "use_pem"]`), so "no backend"
//! cannot happen through this crate. If feature unification elsewhere also turns on
//! `rust_crypto`, every constructor here installs the aws-lc provider explicitly and
//! self-tests it, so a broken setup is a [`ConfigError::CryptoBackend`] at start-up, not a
//! panic on the first request. Why aws-lc-rs rather than RustCrypto: reqwest 0.13's default
//! TLS (rustls) already builds aws-lc-rs, so RustCrypto would add a second crypto stack to
//! compile on a 2-core machine; aws-lc-sys needs only a C compiler (no cmake) for this
//! target; its RSA/ECDSA code is assembly-optimised; and it keeps the `rsa` crate (advisory
//! RUSTSEC-2023-0071, about private-key timing) out of this crate's tree.
//!
//! # Features
//!
//! * `test-support` — the `test_support` module: a loopback JWKS server with controllable
//!   responses, and generated keys that mint tokens with every supported algorithm.

mod alg;
mod backend;
mod claims;
mod config;
mod dev;
mod error;
mod jwks;
mod keys;
mod sign;
mod static_key;
mod token;
mod token_cache;

#[cfg(feature = "test-support")]
pub mod test_support;

use async_trait::async_trait;

pub use alg::{Algorithm, UnknownAlgorithm};
pub use claims::{DEFAULT_TOKEN_TTL, TokenClaims, unix_time};
pub use config::{AuthConfig, DEV_TOKEN_TTL, EnvError, csv};
pub use dev::DevAuth;
pub use error::{AuthError, ConfigError, MintError};
pub use jwks::{BETTER_AUTH_JWKS_PATH, CacheInfo, JwksVerifier, JwksVerifierBuilder, defaults};
pub use static_key::StaticVerifier;
pub use token::{DEFAULT_LEEWAY, DEFAULT_ROLE, MAX_TOKEN_BYTES};

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The user id: the token's `sub`.
    pub id: String,
    /// The `email` claim, if any.
    pub email: Option<String>,
    /// The `role` claim, or [`DEFAULT_ROLE`] (`user`) when absent.
    pub role: String,
}

/// Turns a bearer token into a [`Principal`], or says why not.
///
/// Dyn-compatible: servers hold an `Arc<dyn Verifier>`.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Verifies `token` (the bare token, without `Bearer `).
    ///
    /// # Errors
    /// An [`AuthError`] naming the reason; [`AuthError::KeysUnavailable`] is the server's
    /// problem (503), the others the client's (401).
    async fn verify(&self, token: &str) -> Result<Principal, AuthError>;
}

/// The token of an `Authorization` header value: `Bearer <token>` (scheme case-insensitive).
/// Any other scheme, or an empty token, is `None` — treat it as no token
/// ([`AuthError::Missing`]).
#[must_use]
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// Verifies an optional `Authorization` header value: no header or a non-Bearer scheme is
/// [`AuthError::Missing`].
///
/// # Errors
/// As [`Verifier::verify`], plus [`AuthError::Missing`].
pub async fn verify_authorization(
    verifier: &dyn Verifier,
    authorization: Option<&str>,
) -> Result<Principal, AuthError> {
    let token = authorization
        .and_then(bearer_token)
        .ok_or(AuthError::Missing)?;
    verifier.verify(token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_extraction() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }

    #[test]
    fn verifier_is_dyn_compatible() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Verifier>();
        let v: std::sync::Arc<dyn Verifier> =
            std::sync::Arc::new(DevAuth::hs256([7u8; 32]).unwrap());
        assert_eq!(std::sync::Arc::strong_count(&v), 1);
    }
}
