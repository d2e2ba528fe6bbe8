//! The static (offline) verifier and the dev signer/verifier, and the crypto-backend guard.

use std::time::Duration;

use serde_json::json;
use taskflow_auth::test_support::{TestKey, jwks_of};
use taskflow_auth::{
    Algorithm, AuthError, ConfigError, DevAuth, StaticVerifier, TokenClaims, Verifier,
};

use crate::support::keys;

/// Guards the one-backend setup: with no or two jsonwebtoken crypto backends the first
/// sign/verify panics, so this signs and verifies with every algorithm.
#[tokio::test]
async fn crypto_backend_is_configured() {
    let verifier = StaticVerifier::from_jwks_json(&keys().jwks().to_string()).unwrap();
    for alg in Algorithm::ALL {
        let token = keys().mint(alg, &TokenClaims::new("u1"));
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1", "{alg}");
    }
    let dev = DevAuth::hs256(b"0123456789abcdef0123456789abcdef").unwrap();
    let token = dev.mint_for("u1", None, None).unwrap();
    assert_eq!(dev.verify(&token).await.unwrap().id, "u1");
}

#[tokio::test]
async fn static_jwks_requires_kid_when_several_keys() {
    let verifier = StaticVerifier::from_jwks_json(&keys().jwks().to_string()).unwrap();
    assert_eq!(verifier.key_count(), 9);
    let key = keys().key(Algorithm::EdDSA);
    let no_kid = key.mint_with_header(&json!({"alg": "EdDSA"}), &TokenClaims::new("u1"));
    assert_eq!(verifier.verify(&no_kid).await, Err(AuthError::MissingKeyId));
    let unknown = key.mint_with_header(
        &json!({"alg": "EdDSA", "kid": "x"}),
        &TokenClaims::new("u1"),
    );
    assert_eq!(verifier.verify(&unknown).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn single_static_key_needs_no_kid() {
    let key = keys().key(Algorithm::ES256);
    let mut jwk = key.jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let verifier = StaticVerifier::from_jwks_json(&json!({"keys": [jwk]}).to_string()).unwrap();
    let no_kid = key.mint_with_header(&json!({"alg": "ES256"}), &TokenClaims::new("u1"));
    assert_eq!(verifier.verify(&no_kid).await.unwrap().id, "u1");
    let any_kid = key.mint(&TokenClaims::new("u2"));
    assert_eq!(verifier.verify(&any_kid).await.unwrap().id, "u2");
    // Still one algorithm per key.
    let wrong = key.mint_with_header(&json!({"alg": "ES384"}), &TokenClaims::new("u1"));
    assert_eq!(
        verifier.verify(&wrong).await,
        Err(AuthError::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn static_jwks_from_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("static-jwks-{}.json", std::process::id()));
    std::fs::write(&path, keys().jwks().to_string()).unwrap();
    let verifier = StaticVerifier::from_jwks_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let token = keys().mint(Algorithm::PS256, &TokenClaims::new("u1"));
    assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");

    // A set whose only key is unusable (1024-bit RSA) is a configuration error.
    let weak = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa1024.jwk.json"
    );
    let weak_set = format!(r#"{{"keys":[{}]}}"#, std::fs::read_to_string(weak).unwrap());
    assert!(matches!(
        StaticVerifier::from_jwks_json(&weak_set),
        Err(ConfigError::InvalidKey(_))
    ));
    assert!(matches!(
        StaticVerifier::from_jwks_file("/nonexistent/jwks.json"),
        Err(ConfigError::Io { .. })
    ));
    assert!(matches!(
        StaticVerifier::from_jwks_json("nope"),
        Err(ConfigError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn static_pem_keys_infer_their_algorithm() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
    ] {
        let key = keys().key(alg);
        let verifier = StaticVerifier::from_pem(key.public_pem().as_bytes(), None).unwrap();
        let no_kid = key.mint_with_header(&json!({"alg": alg.name()}), &TokenClaims::new("u1"));
        assert_eq!(verifier.verify(&no_kid).await.unwrap().id, "u1", "{alg}");
    }
    // RSA PEM defaults to RS256; PS256 must be asked for.
    let rsa_pem = keys().key(Algorithm::PS256).public_pem().as_bytes();
    let ps_token = keys().mint(Algorithm::PS256, &TokenClaims::new("u1"));
    let rs_only = StaticVerifier::from_pem(rsa_pem, None).unwrap();
    assert_eq!(
        rs_only.verify(&ps_token).await,
        Err(AuthError::AlgorithmMismatch)
    );
    let ps = StaticVerifier::from_pem(rsa_pem, Some(Algorithm::PS256)).unwrap();
    assert!(ps.verify(&ps_token).await.is_ok());
    // A key of another type than the algorithm asked for, garbage, and private keys.
    let ec_pem = keys().key(Algorithm::ES256).public_pem().as_bytes();
    assert!(StaticVerifier::from_pem(ec_pem, Some(Algorithm::RS256)).is_err());
    assert!(
        StaticVerifier::from_pem(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            None
        )
        .is_err()
    );
    assert!(
        StaticVerifier::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        )
        .is_err()
    );
}

#[tokio::test]
async fn static_issuer_and_audience_are_enforced_when_set() {
    let verifier = StaticVerifier::from_jwks_json(&keys().jwks().to_string())
        .unwrap()
        .issuer("https://auth.example")
        .audience("https://api.example")
        .leeway(Duration::ZERO);
    let good = TokenClaims::new("u1")
        .issuer("https://auth.example")
        .audience("https://api.example");
    assert!(
        verifier
            .verify(&keys().mint(Algorithm::EdDSA, &good))
            .await
            .is_ok()
    );
    let mut wrong_iss = good.clone();
    wrong_iss.iss = Some("https://evil.example".into());
    assert_eq!(
        verifier
            .verify(&keys().mint(Algorithm::EdDSA, &wrong_iss))
            .await,
        Err(AuthError::WrongIssuer)
    );
    let mut wrong_aud = good.clone();
    wrong_aud.aud = vec!["https://evil.example".into()];
    assert_eq!(
        verifier
            .verify(&keys().mint(Algorithm::EdDSA, &wrong_aud))
            .await,
        Err(AuthError::WrongAudience)
    );
    // Zero leeway: a token that expired a few seconds ago is refused.
    let expired = good.expired_for(Duration::from_secs(5));
    assert_eq!(
        verifier
            .verify(&keys().mint(Algorithm::EdDSA, &expired))
            .await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn static_verifier_refuses_hmac() {
    let rsa = keys().key(Algorithm::RS256);
    let verifier = StaticVerifier::from_pem(rsa.public_pem().as_bytes(), None).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = None;
    let token = jsonwebtoken::encode(
        &header,
        &TokenClaims::new("attacker"),
        &jsonwebtoken::EncodingKey::from_secret(rsa.public_pem().as_bytes()),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[tokio::test]
async fn dev_hs256_mints_and_verifies() {
    let dev = DevAuth::hs256("a dev secret that is long enough!!").unwrap();
    assert_eq!(dev.alg_name(), "HS256");
    assert!(dev.public_jwks().is_none());
    let token = dev
        .mint_for("u1", Some("ada@example.com"), Some("admin"))
        .unwrap();
    let p = dev.verify(&token).await.unwrap();
    assert_eq!(
        (p.id.as_str(), p.email.as_deref(), p.role.as_str()),
        ("u1", Some("ada@example.com"), "admin")
    );
    let p = dev
        .verify(&dev.mint_for("u2", None, None).unwrap())
        .await
        .unwrap();
    assert_eq!((p.email, p.role.as_str()), (None, "user"));

    let expired = dev
        .mint(&TokenClaims::new("u1").expired_for(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(dev.verify(&expired).await, Err(AuthError::Expired));
    let other = DevAuth::hs256("another dev secret, also long enough").unwrap();
    assert_eq!(
        dev.verify(&other.mint_for("u1", None, None).unwrap()).await,
        Err(AuthError::BadSignature)
    );
    let ed = keys().key(Algorithm::EdDSA).mint(&TokenClaims::new("u1"));
    assert_eq!(dev.verify(&ed).await, Err(AuthError::AlgorithmMismatch));
    let mut no_sub = TokenClaims::new("x");
    no_sub.sub = None;
    assert_eq!(
        dev.verify(&dev.mint(&no_sub).unwrap()).await,
        Err(AuthError::MissingClaim("sub"))
    );
    assert!(matches!(
        DevAuth::hs256("short"),
        Err(ConfigError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn dev_ed25519_mints_and_verifies() {
    let dev = DevAuth::ed25519_ephemeral()
        .unwrap()
        .issuer("http://dev.local")
        .audience("http://dev.local");
    assert_eq!(dev.alg_name(), "EdDSA");
    let token = dev.mint_for("u1", None, Some("worker")).unwrap();
    assert_eq!(dev.verify(&token).await.unwrap().role, "worker");
    // The public JWKS verifies the same tokens elsewhere.
    let jwks = dev.public_jwks().unwrap();
    let verifier = StaticVerifier::from_jwks_json(&jwks.to_string())
        .unwrap()
        .issuer("http://dev.local")
        .audience("http://dev.local");
    assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
    // Issuer/audience are stamped and checked.
    let foreign = dev
        .mint(&TokenClaims::new("u1").issuer("http://elsewhere"))
        .unwrap();
    assert_eq!(dev.verify(&foreign).await, Err(AuthError::WrongIssuer));
    // Another ephemeral key's tokens don't pass, nor do HS256 ones.
    let other = DevAuth::ed25519_ephemeral().unwrap();
    assert_eq!(
        dev.verify(&other.mint_for("u1", None, None).unwrap()).await,
        Err(AuthError::UnknownKey)
    );
    let hs = DevAuth::hs256([1u8; 32])
        .unwrap()
        .mint_for("u1", None, None)
        .unwrap();
    assert_eq!(dev.verify(&hs).await, Err(AuthError::AlgorithmMismatch));
    // A typ of another token kind is refused here too.
    let key = TestKey::generate(Algorithm::EdDSA, dev.kid());
    let typed = key.mint_with_header(
        &json!({"alg": "EdDSA", "typ": "at+jwt"}),
        &TokenClaims::new("u1"),
    );
    assert_eq!(dev.verify(&typed).await, Err(AuthError::WrongType));
    assert_eq!(jwks_of([&key])["keys"][0]["kid"], dev.kid());
}
