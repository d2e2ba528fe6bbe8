//! Key-set rules: bad keys are skipped, not fatal; each key verifies one algorithm.

use serde_json::{Value, json};
use taskflow_auth::test_support::{JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, AuthError, JwksVerifier, Verifier};

use crate::support::{b64, keys};

async fn serve(jwks: Value) -> (JwksServer, JwksVerifier) {
    let server = JwksServer::start(jwks).await;
    let verifier = server.verifier_builder().build().expect("verifier");
    (server, verifier)
}

#[tokio::test]
async fn oct_key_in_the_set_is_never_used() {
    let secret = b"an HMAC secret published by mistake!!";
    let good = keys().key(Algorithm::EdDSA);
    let oct = json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(secret)});
    let (server, verifier) = serve(json!({"keys": [oct, good.jwk()]})).await;
    assert_eq!(verifier.prefetch().await, Ok(1));

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hmac".into());
    header.typ = None;
    let forged = jsonwebtoken::encode(
        &header,
        &server.claims("attacker"),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&forged).await,
        Err(AuthError::UnsupportedAlgorithm)
    );
    // The good key next to it still works.
    assert!(
        verifier
            .verify(&good.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn encryption_keys_are_skipped() {
    let enc = TestKey::generate(Algorithm::EdDSA, "enc-key");
    let mut enc_jwk = enc.jwk();
    enc_jwk["use"] = json!("enc");
    let ops = TestKey::generate(Algorithm::ES256, "ops-key");
    let mut ops_jwk = ops.jwk();
    ops_jwk["key_ops"] = json!(["encrypt"]);
    let sig = TestKey::generate(Algorithm::EdDSA, "sig-key");
    let mut sig_jwk = sig.jwk();
    sig_jwk["use"] = json!("sig");
    sig_jwk["key_ops"] = json!(["verify"]);
    let (server, verifier) = serve(json!({"keys": [enc_jwk, ops_jwk, sig_jwk]})).await;

    assert_eq!(
        verifier.verify(&enc.mint(&server.claims("u1"))).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        verifier.verify(&ops.mint(&server.claims("u1"))).await,
        Err(AuthError::UnknownKey)
    );
    assert!(
        verifier
            .verify(&sig.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert_eq!(verifier.cache_info().key_count, 1);
}

#[tokio::test]
async fn rsa_1024_key_is_refused() {
    let weak: Value = serde_json::from_str(include_str!("../fixtures/rsa1024.jwk.json")).unwrap();
    let token = include_str!("../fixtures/rsa1024.token").trim();
    let good = keys().key(Algorithm::RS256);
    let server = JwksServer::start(json!({"keys": [weak, good.jwk()]})).await;
    let verifier = JwksVerifier::builder(server.jwks_url())
        .issuer("https://weak.test")
        .audience("https://weak.test")
        .build()
        .unwrap();
    // The key was skipped, so its kid is unknown (not a bad signature).
    assert_eq!(verifier.verify(token).await, Err(AuthError::UnknownKey));
    assert_eq!(verifier.cache_info().key_count, 1);
    let claims = taskflow_auth::TokenClaims::new("u1")
        .issuer("https://weak.test")
        .audience("https://weak.test");
    assert!(verifier.verify(&good.mint(&claims)).await.is_ok());
}

#[tokio::test]
async fn duplicate_kids() {
    // Same kid and algorithm twice: the first key wins, the second is ignored.
    let first = TestKey::generate(Algorithm::EdDSA, "dup");
    let second = TestKey::generate(Algorithm::EdDSA, "dup");
    // Same kid, different algorithms: both are usable, chosen by the header's alg.
    let ec = TestKey::generate(Algorithm::ES256, "dup");
    let (server, verifier) = serve(jwks_of([&first, &second, &ec])).await;
    assert!(
        verifier
            .verify(&first.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&second.mint(&server.claims("u1"))).await,
        Err(AuthError::BadSignature)
    );
    assert!(
        verifier
            .verify(&ec.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert_eq!(verifier.cache_info().key_count, 2);
}

#[tokio::test]
async fn unsupported_keys_mixed_with_good_ones() {
    let good_ed = keys().key(Algorithm::EdDSA);
    let good_rsa = keys().key(Algorithm::PS384);
    let mut off_curve = keys().key(Algorithm::ES256).jwk();
    off_curve["kid"] = json!("off-curve");
    off_curve["y"] = off_curve["x"].clone(); // (x, x) is not on P-256
    let mut ec_as_rsa = keys().key(Algorithm::ES384).jwk();
    ec_as_rsa["kid"] = json!("ec-as-rsa");
    ec_as_rsa["alg"] = json!("RS256");
    let mut short_x = good_ed.jwk();
    short_x["kid"] = json!("short-x");
    short_x["x"] = json!(b64(&[1u8; 31]));
    let bad = vec![
        json!({"kty": "EC", "crv": "P-521", "kid": "p521", "alg": "ES512",
               "x": b64(&[1u8; 66]), "y": b64(&[2u8; 66])}),
        json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64(&[9u8; 32])}),
        json!({"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64(&[9u8; 57])}),
        json!({"kty": "RSA", "kid": "garbage-n", "n": "!!!", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "no-e", "n": b64(&[0xc5u8; 256])}),
        json!({"kty": "RSA", "kid": "rsa-oaep", "alg": "RSA-OAEP", "n": b64(&[0xc5u8; 256]), "e": "AQAB"}),
        json!({"kty": "XYZ", "kid": "alien"}),
        json!({"kid": "no-kty"}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": 7, "x": b64(&[9u8; 32])}),
        json!(42),
        json!("string"),
        off_curve,
        ec_as_rsa,
        short_x,
    ];
    let mut all = bad.clone();
    all.push(good_ed.jwk());
    all.push(good_rsa.jwk());
    let (server, verifier) = serve(json!({"keys": all})).await;

    assert!(
        verifier
            .verify(&good_ed.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert!(
        verifier
            .verify(&good_rsa.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert_eq!(verifier.cache_info().key_count, 2);
    // A token naming a skipped key gets nowhere.
    let token = keys().key(Algorithm::ES256).mint_with_header(
        &json!({"alg": "ES256", "kid": "off-curve"}),
        &server.claims("u1"),
    );
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    let token = keys().key(Algorithm::ES384).mint_with_header(
        &json!({"alg": "ES384", "kid": "ec-as-rsa"}),
        &server.claims("u1"),
    );
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn algorithms_are_inferred_for_keys_without_alg() {
    let mut jwks = Vec::new();
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
    ] {
        let mut jwk = keys().key(alg).jwk();
        jwk.as_object_mut().unwrap().remove("alg");
        jwks.push(jwk);
    }
    let (server, verifier) = serve(json!({"keys": jwks})).await;
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
    ] {
        let token = keys().mint(alg, &server.claims("u1"));
        assert!(verifier.verify(&token).await.is_ok(), "{alg}");
    }
    // An RSA key without alg is RS256 only: a PS256 header on it is refused.
    let rs = keys().key(Algorithm::RS256);
    let token = keys().key(Algorithm::PS256).mint_with_header(
        &json!({"alg": "PS256", "kid": rs.kid()}),
        &server.claims("u1"),
    );
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::AlgorithmMismatch)
    );
}
