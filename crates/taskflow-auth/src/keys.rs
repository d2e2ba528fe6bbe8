//! Turning JWKs into verification keys, one key at a time, and indexing them.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

use crate::alg::{Algorithm, Family};

/// Smallest RSA modulus accepted, in bits.
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the backend's verification limit).
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// One usable public key: exactly one algorithm.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    /// SHA-256 of the algorithm and the public key material: the key's identity across key set
    /// refreshes, which build new `VerifyKey`s. The token cache compares it, so a `kid` that is
    /// republished with other material does not keep old tokens alive.
    pub(crate) fingerprint: [u8; 32],
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Decodes base64url, tolerating trailing `=` padding (some JWKS producers emit it).
fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn required_b64(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = member(jwk, name)?.ok_or_else(|| format!("`{name}` is missing"))?;
    b64(s).ok_or_else(|| format!("`{name}` is not base64url"))
}

/// Parses one JWK into a [`VerifyKey`], or says why it is not usable.
pub(crate) fn parse_jwk(value: &Value) -> Result<VerifyKey, String> {
    let jwk = value.as_object().ok_or("not a JSON object")?;
    let kid = member(jwk, "kid")?.map(str::to_owned);
    let kty = member(jwk, "kty")?.ok_or("`kty` is missing")?;

    if let Some(usage) = member(jwk, "use")?
        && usage != "sig"
    {
        return Err(format!("`use` is {usage:?}, not \"sig\""));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("`key_ops` does not allow \"verify\"".to_owned());
        }
    }
    let declared = member(jwk, "alg")?;

    let family = match kty {
        "OKP" => match member(jwk, "crv")? {
            Some("Ed25519") => Family::Ed25519,
            Some(crv) => return Err(format!("unsupported OKP curve {crv:?}")),
            None => return Err("`crv` is missing".to_owned()),
        },
        "EC" => match member(jwk, "crv")? {
            Some("P-256") => Family::P256,
            Some("P-384") => Family::P384,
            Some("P-521") => {
                return Err("P-521/ES512 is not supported by the JWT library".to_owned());
            }
            Some(crv) => return Err(format!("unsupported EC curve {crv:?}")),
            None => return Err("`crv` is missing".to_owned()),
        },
        "RSA" => Family::Rsa,
        "oct" => return Err("symmetric (`oct`) keys are never accepted from a key set".to_owned()),
        other => return Err(format!("unsupported key type {other:?}")),
    };

    let alg = match declared {
        None => match family {
            Family::Ed25519 => Algorithm::EdDSA,
            Family::P256 => Algorithm::ES256,
            Family::P384 => Algorithm::ES384,
            Family::Rsa => Algorithm::RS256,
        },
        Some(name) => {
            let alg = Algorithm::from_name(name)
                .ok_or_else(|| format!("unsupported or non-signature `alg` {name:?}"))?;
            if alg.family() != family {
                return Err(format!("`alg` {name:?} does not fit a {kty} key"));
            }
            alg
        }
    };

    let (key, fingerprint) = match family {
        Family::Ed25519 => {
            let x = required_b64(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 `x` is not 32 bytes".to_owned());
            }
            ParsedPublicKey::new(&lc::ED25519, &x).map_err(|_| "invalid Ed25519 point")?;
            (DecodingKey::from_ed_der(&x), key_fingerprint(alg, &[&x]))
        }
        Family::P256 | Family::P384 => {
            let (len, check): (usize, &'static dyn lc::VerificationAlgorithm) =
                if family == Family::P256 {
                    (32, &lc::ECDSA_P256_SHA256_FIXED)
                } else {
                    (48, &lc::ECDSA_P384_SHA384_FIXED)
                };
            let x = required_b64(jwk, "x")?;
            let y = required_b64(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".to_owned());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(check, &point).map_err(|_| "EC point is not on the curve")?;
            (
                DecodingKey::from_ec_der(&point),
                key_fingerprint(alg, &[&point]),
            )
        }
        Family::Rsa => {
            let n = required_b64(jwk, "n")?;
            let e = required_b64(jwk, "e")?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA key of {bits} bits is under {MIN_RSA_BITS}"));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!("RSA key of {bits} bits is over {MAX_RSA_BITS}"));
            }
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&lc::RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| "invalid RSA public key")?;
            (
                DecodingKey::from_rsa_raw_components(&n, &e),
                key_fingerprint(alg, &[&n, &e]),
            )
        }
    };
    Ok(VerifyKey {
        kid,
        alg,
        key,
        fingerprint,
    })
}

/// SHA-256 over the algorithm name and length-prefixed key material parts.
fn key_fingerprint(alg: Algorithm, parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(alg.name().as_bytes());
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Number of significant bits of a big-endian unsigned integer.
pub(crate) fn modulus_bits(n: &[u8]) -> usize {
    let Some(pos) = n.iter().position(|b| *b != 0) else {
        return 0;
    };
    (n.len() - pos - 1) * 8 + (8 - n[pos].leading_zeros() as usize)
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Found(&'a Arc<VerifyKey>),
    /// Keys with that `kid` exist, none for the header's algorithm.
    WrongAlgorithm,
    NotFound,
}

/// Usable keys, indexed by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    by_kid: HashMap<String, Vec<Arc<VerifyKey>>>,
    /// Keys with no `kid` (usable only as the single key of a static set).
    unnamed: Vec<Arc<VerifyKey>>,
}

impl KeyIndex {
    /// Parses a JWKS document (`{"keys": [...]}`), skipping (and logging) unusable keys.
    /// Fails only when the document itself is not a JWKS.
    pub(crate) fn from_jwks(doc: &Value, source: &str) -> Result<Self, String> {
        let keys = doc
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or("not a JWKS document (no `keys` array)")?;
        let mut index = KeyIndex::default();
        for (i, value) in keys.iter().enumerate() {
            match parse_jwk(value) {
                Ok(key) => index.insert(key, source),
                Err(reason) => {
                    let kid = value.get("kid").and_then(Value::as_str).unwrap_or("<none>");
                    tracing::warn!(source, index = i, kid, reason = %reason, "skipping unusable JWK");
                }
            }
        }
        Ok(index)
    }

    pub(crate) fn insert(&mut self, key: VerifyKey, source: &str) {
        match &key.kid {
            None => self.unnamed.push(Arc::new(key)),
            Some(kid) => {
                let slot = self.by_kid.entry(kid.clone()).or_default();
                if slot.iter().any(|k| k.alg == key.alg) {
                    tracing::warn!(source, kid = %kid, alg = %key.alg, "duplicate kid and alg: keeping the first key");
                } else {
                    slot.push(Arc::new(key));
                }
            }
        }
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.unnamed.len() + self.by_kid.values().map(Vec::len).sum::<usize>()
    }

    /// Number of keys a JWKS token can select (those with a `kid`).
    pub(crate) fn len_with_kid(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    /// Looks a key up by `kid` and header algorithm.
    pub(crate) fn find(&self, kid: &str, alg: Algorithm) -> Lookup<'_> {
        match self.by_kid.get(kid) {
            None => Lookup::NotFound,
            Some(keys) => match keys.iter().find(|k| k.alg == alg) {
                Some(k) => Lookup::Found(k),
                None => Lookup::WrongAlgorithm,
            },
        }
    }

    /// Whether this set still holds `key`: the same `kid`, algorithm and key material. A key
    /// without a `kid` is held when it is the set's single key.
    pub(crate) fn holds(&self, key: &VerifyKey) -> bool {
        let current = match &key.kid {
            Some(kid) => match self.find(kid, key.alg) {
                Lookup::Found(k) => Some(k),
                Lookup::WrongAlgorithm | Lookup::NotFound => None,
            },
            None => self.single(),
        };
        current.is_some_and(|k| k.alg == key.alg && k.fingerprint == key.fingerprint)
    }

    /// The only key of the set, if it has exactly one.
    pub(crate) fn single(&self) -> Option<&Arc<VerifyKey>> {
        if self.len() != 1 {
            return None;
        }
        self.unnamed
            .first()
            .or_else(|| self.by_kid.values().flatten().next())
    }
}
