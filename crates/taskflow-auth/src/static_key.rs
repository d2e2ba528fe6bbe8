//! Verification against a fixed key set, for offline use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;

use crate::keys::{KeyIndex, Lookup, VerifyKey, parse_jwk};
use crate::token::ClaimRules;
use crate::token_cache::{TokenCache, Verified};
use crate::{Algorithm, AuthError, ConfigError, Principal, Verifier, backend, defaults, token};

/// Verifies tokens against a static JWKS (inline JSON or a file) or one PEM public key.
///
/// The same key rules as [`JwksVerifier`](crate::JwksVerifier) apply (unusable keys are
/// skipped with a warning). A set with a single key accepts tokens without `kid`; with several
/// keys, tokens must carry one. Issuers and audiences are optional here; when configured they
/// are required and exact.
///
/// Like [`JwksVerifier`](crate::JwksVerifier), it remembers tokens that verified (see
/// [`token_cache_size`](Self::token_cache_size)).
#[derive(Debug)]
pub struct StaticVerifier {
    keys: KeyIndex,
    rules: ClaimRules,
    /// `None` when turned off.
    tokens: Option<TokenCache>,
    token_cache_size: usize,
}

impl StaticVerifier {
    /// From a JWKS document (`{"keys": [...]}`).
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the text is not a JWKS or holds no usable key.
    pub fn from_jwks_json(jwks: &str) -> Result<Self, ConfigError> {
        backend::ensure()?;
        let doc: serde_json::Value = serde_json::from_str(jwks)
            .map_err(|e| ConfigError::InvalidKey(format!("JWKS is not JSON: {e}")))?;
        let keys = KeyIndex::from_jwks(&doc, "static JWKS").map_err(ConfigError::InvalidKey)?;
        if keys.len() == 0 {
            return Err(ConfigError::InvalidKey("the JWKS has no usable key".into()));
        }
        Ok(Self::with_keys(keys))
    }

    /// From a JWKS file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read, else as
    /// [`from_jwks_json`](Self::from_jwks_json).
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_jwks_json(&text)
    }

    /// From one PEM public key (`PUBLIC KEY` SPKI, or `RSA PUBLIC KEY`). With `alg` `None` the
    /// algorithm is inferred: Ed25519 → EdDSA, P-256 → ES256, P-384 → ES384, RSA → RS256.
    /// Pass `Some(Algorithm::PS256)` and the like for the others. Tokens need no `kid`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the PEM is not a supported public key (or is RSA under
    /// 2048 bits, or does not fit `alg`).
    pub fn from_pem(pem: &[u8], alg: Option<Algorithm>) -> Result<Self, ConfigError> {
        backend::ensure()?;
        let text = std::str::from_utf8(pem)
            .map_err(|_| ConfigError::InvalidKey("PEM is not UTF-8".into()))?;
        if text.contains("PRIVATE KEY") {
            return Err(ConfigError::InvalidKey(
                "expected a public key, got a private key".into(),
            ));
        }
        let (decoding, inferred) = if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (k, Algorithm::EdDSA)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            let alg = match k.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => Algorithm::ES256,
                Ok(97) => Algorithm::ES384,
                _ => return Err(ConfigError::InvalidKey("unsupported EC curve".into())),
            };
            (k, alg)
        } else if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (k, Algorithm::RS256)
        } else {
            return Err(ConfigError::InvalidKey(
                "not a supported PEM public key".into(),
            ));
        };
        let alg = alg.unwrap_or(inferred);
        // Round-trip through a JWK so PEM keys get exactly the JWKS key checks.
        let jwk = Jwk::from_decoding_key(&decoding, Some(alg.to_jwt()))
            .map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let value =
            serde_json::to_value(&jwk).map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let key: VerifyKey = parse_jwk(&value).map_err(ConfigError::InvalidKey)?;
        let mut keys = KeyIndex::default();
        keys.insert(key, "PEM");
        Ok(Self::with_keys(keys))
    }

    fn with_keys(keys: KeyIndex) -> Self {
        Self {
            keys,
            rules: ClaimRules::default(),
            tokens: TokenCache::new(defaults::TOKEN_CACHE_SIZE),
            token_cache_size: defaults::TOKEN_CACHE_SIZE,
        }
    }

    /// The same verifier under new rules: tokens verified under the old ones are forgotten.
    fn with_rules(mut self, change: impl FnOnce(&mut ClaimRules)) -> Self {
        change(&mut self.rules);
        self.tokens = TokenCache::new(self.token_cache_size);
        self
    }

    /// Requires this `iss` (call again to accept several).
    #[must_use]
    pub fn issuer(self, iss: impl Into<String>) -> Self {
        self.with_rules(|r| r.issuers.push(iss.into()))
    }

    /// Requires this `aud` (call again to accept several; a token must match one).
    #[must_use]
    pub fn audience(self, aud: impl Into<String>) -> Self {
        self.with_rules(|r| r.audiences.push(aud.into()))
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        self.with_rules(|r| r.leeway = leeway)
    }

    /// Most verified tokens to remember (default 10,000; 0 turns the cache off). A remembered
    /// token is accepted without a signature check until its `exp` plus the leeway; the keys of
    /// a static verifier never change. See
    /// [`JwksVerifierBuilder::token_cache_size`](crate::JwksVerifierBuilder::token_cache_size).
    #[must_use]
    pub fn token_cache_size(mut self, tokens: usize) -> Self {
        self.token_cache_size = tokens;
        self.tokens = TokenCache::new(tokens);
        self
    }

    /// Number of usable keys.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn verify_sync(&self, token: &str) -> Result<Principal, AuthError> {
        let Some((cache, digest)) = TokenCache::with_digest(self.tokens.as_ref(), token) else {
            return self.verify_uncached(token).map(|v| v.principal);
        };
        // The key set never changes, so the key that verified a token is always still held.
        if let Some(principal) = cache.get(&digest, &self.rules, |_| true) {
            return Ok(principal);
        }
        let verified = self.verify_uncached(token)?;
        let principal = verified.principal.clone();
        cache.insert(digest, verified);
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> Result<Verified, AuthError> {
        let parsed = token::parse(token)?;
        let alg = match parsed.alg {
            token::HeaderAlg::Asymmetric(alg) => alg,
            token::HeaderAlg::Hs256 => return Err(AuthError::UnsupportedAlgorithm),
        };
        let key = match parsed.kid.as_deref() {
            Some(kid) => match self.keys.find(kid, alg) {
                Lookup::Found(k) => k,
                Lookup::WrongAlgorithm => return Err(AuthError::AlgorithmMismatch),
                Lookup::NotFound => match self.keys.single() {
                    // A lone key without a kid matches any token kid.
                    Some(k) if k.kid.is_none() => k,
                    _ => return Err(AuthError::UnknownKey),
                },
            },
            None => self.keys.single().ok_or(AuthError::MissingKeyId)?,
        };
        let (principal, validity) = parsed.verify_with(key, &self.rules)?;
        Ok(Verified {
            principal,
            validity,
            key: Arc::clone(key),
        })
    }
}

#[async_trait]
impl Verifier for StaticVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_sync(token)
    }
}
