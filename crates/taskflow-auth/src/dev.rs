//! The explicit dev signer and verifier.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::json;

use crate::token::{ClaimRules, HeaderAlg};
use crate::{AuthError, ConfigError, MintError, Principal, TokenClaims, Verifier, backend, token};

#[derive(Clone, Copy, PartialEq, Eq)]
enum DevKind {
    Hs256,
    Ed25519,
}

/// A dev-only signer **and** verifier: an HS256 shared secret or an ephemeral Ed25519 key.
///
/// It mints tokens (`sub`, `email`, `role`, `exp`, …) and verifies its own tokens with the
/// same rules as the other verifiers (`exp`/`sub` required, leeway, `typ`, size cap, and the
/// issuer/audience when set). HS256 is accepted here only: a JWKS or static verifier never
/// accepts HMAC. Not for production: whoever holds the secret can mint any identity.
#[derive(Clone)]
pub struct DevAuth {
    kind: DevKind,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Public JWK of the Ed25519 key.
    public_jwk: Option<serde_json::Value>,
    rules: ClaimRules,
}

impl fmt::Debug for DevAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAuth")
            .field("alg", &self.alg_name())
            .field("kid", &self.kid)
            .field("issuers", &self.rules.issuers)
            .field("audiences", &self.rules.audiences)
            .finish_non_exhaustive()
    }
}

impl DevAuth {
    /// Shortest accepted HS256 secret, in bytes.
    pub const MIN_SECRET_BYTES: usize = 32;

    /// An HS256 signer/verifier over a shared secret of at least
    /// [`MIN_SECRET_BYTES`](Self::MIN_SECRET_BYTES) bytes.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the secret is too short; [`ConfigError::CryptoBackend`]
    /// when the crypto backend is unusable.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        backend::ensure()?;
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(ConfigError::InvalidKey(format!(
                "an HS256 secret needs at least {} bytes",
                Self::MIN_SECRET_BYTES
            )));
        }
        Ok(Self {
            kind: DevKind::Hs256,
            kid: "dev-hs256".to_owned(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            public_jwk: None,
            rules: ClaimRules::default(),
        })
    }

    /// An Ed25519 signer/verifier with a fresh key that lives as long as this value (tokens do
    /// not survive a restart).
    ///
    /// # Errors
    /// [`ConfigError::CryptoBackend`] when the crypto backend is unusable or key generation
    /// fails.
    pub fn ed25519_ephemeral() -> Result<Self, ConfigError> {
        backend::ensure()?;
        let pair = Ed25519KeyPair::generate()
            .map_err(|_| ConfigError::CryptoBackend("Ed25519 key generation failed".into()))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| ConfigError::CryptoBackend("Ed25519 key export failed".into()))?;
        let public = pair.public_key().as_ref().to_vec();
        let kid = format!("dev-ed25519-{}", &URL_SAFE_NO_PAD.encode(&public)[..8]);
        let public_jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": kid, "x": URL_SAFE_NO_PAD.encode(&public),
        });
        Ok(Self {
            kind: DevKind::Ed25519,
            kid,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ed_der(&public),
            public_jwk: Some(public_jwk),
            rules: ClaimRules::default(),
        })
    }

    /// Expects (and stamps on minted tokens lacking one) this `iss`. May be called again to
    /// accept several; the first is stamped.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.rules.issuers.push(iss.into());
        self
    }

    /// Expects (and stamps on minted tokens lacking one) this `aud`. May be called again to
    /// accept several; the first is stamped.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.rules.audiences.push(aud.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = leeway;
        self
    }

    /// `"HS256"` or `"EdDSA"`.
    #[must_use]
    pub fn alg_name(&self) -> &'static str {
        match self.kind {
            DevKind::Hs256 => "HS256",
            DevKind::Ed25519 => "EdDSA",
        }
    }

    /// The `kid` stamped on minted tokens.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// For the Ed25519 variant, a JWKS with its public key (for example to serve at
    /// `/api/auth/jwks` in dev); `None` for HS256, whose secret must never be published.
    #[must_use]
    pub fn public_jwks(&self) -> Option<serde_json::Value> {
        self.public_jwk.as_ref().map(|k| json!({ "keys": [k] }))
    }

    /// Mints a token with header `{alg, kid}`. A configured issuer/audience is added when the
    /// claims carry none.
    ///
    /// # Errors
    /// [`MintError`] when encoding or signing fails.
    pub fn mint(&self, claims: &TokenClaims) -> Result<String, MintError> {
        let mut claims = claims.clone();
        if claims.iss.is_none() {
            claims.iss = self.rules.issuers.first().cloned();
        }
        if claims.aud.is_empty()
            && let Some(aud) = self.rules.audiences.first()
        {
            claims.aud.push(aud.clone());
        }
        let alg = match self.kind {
            DevKind::Hs256 => jsonwebtoken::Algorithm::HS256,
            DevKind::Ed25519 => jsonwebtoken::Algorithm::EdDSA,
        };
        let header = json!({ "alg": self.alg_name(), "kid": self.kid });
        crate::sign::sign_compact(&header, &claims, &self.encoding, alg)
    }

    /// Mints a 15-minute token for `sub` with an optional email and role.
    ///
    /// # Errors
    /// [`MintError`] when encoding or signing fails.
    pub fn mint_for(
        &self,
        sub: &str,
        email: Option<&str>,
        role: Option<&str>,
    ) -> Result<String, MintError> {
        let mut claims = TokenClaims::new(sub);
        claims.email = email.map(str::to_owned);
        claims.role = role.map(str::to_owned);
        self.mint(&claims)
    }
}

#[async_trait]
impl Verifier for DevAuth {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let parsed = token::parse(token)?;
        let alg = match (self.kind, parsed.alg) {
            (DevKind::Hs256, HeaderAlg::Hs256) => jsonwebtoken::Algorithm::HS256,
            (DevKind::Ed25519, HeaderAlg::Asymmetric(crate::Algorithm::EdDSA)) => {
                jsonwebtoken::Algorithm::EdDSA
            }
            _ => return Err(AuthError::AlgorithmMismatch),
        };
        if let Some(kid) = &parsed.kid
            && *kid != self.kid
        {
            return Err(AuthError::UnknownKey);
        }
        parsed.verify_signature(&self.decoding, alg)?;
        parsed.claims(&self.rules)
    }
}
