//! Shared helpers.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use taskflow_auth::JwksVerifier;
use taskflow_auth::test_support::{JwksServer, TestKeys};

/// One key set for the whole binary (RSA generation is the slow part).
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(TestKeys::generate)
}

/// A server with all test keys and a verifier with Better Auth's defaults for it.
pub async fn setup() -> (JwksServer, JwksVerifier) {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server.verifier_builder().build().expect("verifier");
    (server, verifier)
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

pub const SHORT: Duration = Duration::from_millis(100);
/// Upper bound for waiting on background activity (not asserted as a duration).
pub const PATIENCE: Duration = Duration::from_secs(10);
