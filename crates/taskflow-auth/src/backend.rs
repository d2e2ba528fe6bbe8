//! The one JWT crypto backend: aws-lc-rs.
//!
//! jsonwebtoken 11 panics on first use when neither or both of its `aws_lc_rs` and
//! `rust_crypto` features are on. This crate depends on it with `aws_lc_rs` fixed and default
//! features off, so "neither" cannot happen through it. "Both" can still happen through
//! feature unification with another crate; [`ensure`] therefore installs the aws-lc provider
//! explicitly (process-wide, before any jsonwebtoken call made by this crate) and then runs a
//! sign/verify self-test, so a still-broken setup surfaces as a [`ConfigError`] when a
//! verifier is built instead of a panic on the first request.

use std::sync::OnceLock;

use jsonwebtoken::crypto::CryptoProvider;

use crate::ConfigError;

static CHECK: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the aws-lc provider (if nothing was installed yet) and self-tests it once.
pub(crate) fn ensure() -> Result<(), ConfigError> {
    CHECK
        .get_or_init(|| {
            // Err means a provider was installed already (by us or another crate): fine, the
            // self-test below tells whether it works.
            let _ =
                CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
            std::panic::catch_unwind(self_test)
                .unwrap_or_else(|_| Err("the jsonwebtoken crypto provider panicked".to_owned()))
        })
        .clone()
        .map_err(ConfigError::CryptoBackend)
}

fn self_test() -> Result<(), String> {
    let key = jsonwebtoken::EncodingKey::from_secret(b"taskflow-auth backend self-test");
    let sig = jsonwebtoken::crypto::sign(b"probe", &key, jsonwebtoken::Algorithm::HS256)
        .map_err(|e| e.to_string())?;
    let dkey = jsonwebtoken::DecodingKey::from_secret(b"taskflow-auth backend self-test");
    match jsonwebtoken::crypto::verify(&sig, b"probe", &dkey, jsonwebtoken::Algorithm::HS256) {
        Ok(true) => Ok(()),
        Ok(false) => Err("self-test signature did not verify".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}
