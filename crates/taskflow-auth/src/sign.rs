//! Compact-JWS signing, used by the dev signer and the test support.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use crate::MintError;

/// Signs `claims` under `header` (written as given: any `alg`, `kid` or `typ`) with `key`
/// using `alg`.
pub(crate) fn sign_compact<C: Serialize + ?Sized>(
    header: &Value,
    claims: &C,
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
) -> Result<String, MintError> {
    let header = serde_json::to_vec(header).map_err(|e| MintError::Encode(e.to_string()))?;
    let claims = serde_json::to_vec(claims).map_err(|e| MintError::Encode(e.to_string()))?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let signature = jsonwebtoken::crypto::sign(token.as_bytes(), key, alg)
        .map_err(|e| MintError::Sign(e.to_string()))?;
    token.push('.');
    token.push_str(&signature);
    Ok(token)
}
