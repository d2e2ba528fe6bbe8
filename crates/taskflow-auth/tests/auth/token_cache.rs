//! The verified-token cache: a hit answers exactly what verification would, and nothing that
//! verification would refuse gets through it.

use std::time::Duration;

use taskflow_auth::test_support::{JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, AuthError, StaticVerifier, TokenClaims, Verifier, unix_time};

use crate::support::{b64, keys, unb64};

/// Sleeps until the wall clock is past `unix_secs` (whole seconds: a second past is past).
async fn sleep_past(unix_secs: i64) {
    while unix_time() <= unix_secs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cached_hit_returns_the_same_claims() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server.verifier_builder().build().unwrap();
    let claims = server.claims("u1").email("ada@example.com").role("admin");
    let token = keys().mint(Algorithm::RS256, &claims);
    let first = verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.cache_info().tokens_cached, 1);
    for _ in 0..3 {
        assert_eq!(verifier.verify(&token).await.unwrap(), first);
    }
    assert_eq!(first.id, "u1");
    assert_eq!(first.email.as_deref(), Some("ada@example.com"));
    assert_eq!(first.role, "admin");
    assert_eq!(verifier.cache_info().tokens_cached, 1);
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn a_cached_token_past_its_exp_is_refused() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server
        .verifier_builder()
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    verifier.prefetch().await.unwrap();
    // Whole seconds: `exp` is 1 to 2 s away.
    let claims = server.claims("u1").expires_in(Duration::from_secs(2));
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok()); // a hit
    sleep_past(claims.exp.unwrap()).await;
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
    assert_eq!(
        verifier.cache_info().tokens_cached,
        0,
        "the entry is dropped"
    );
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn a_cached_token_lives_as_long_as_the_leeway_allows() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server
        .verifier_builder()
        .leeway(Duration::from_secs(3))
        .build()
        .unwrap();
    verifier.prefetch().await.unwrap();
    // Expired about a second ago: good for 1 to 2 s more under a 3 s leeway, then refused.
    let claims = server.claims("u1").expired_for(Duration::from_secs(1));
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok()); // a hit
    sleep_past(claims.exp.unwrap() + 3).await;
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn a_cached_token_is_refused_once_the_jwks_drops_its_kid() {
    let old = TestKey::generate(Algorithm::EdDSA, "cache-old");
    let new = TestKey::generate(Algorithm::EdDSA, "cache-new");
    let server = JwksServer::start(jwks_of([&old, &new])).await;
    let verifier = server.verifier_builder().build().unwrap();
    let old_token = old.mint(&server.claims("u1"));
    let new_token = new.mint(&server.claims("u2"));
    assert_eq!(verifier.verify(&old_token).await.unwrap().id, "u1");
    assert_eq!(verifier.verify(&new_token).await.unwrap().id, "u2");
    assert_eq!(verifier.cache_info().tokens_cached, 2);

    // The auth server retires the old key; the next refresh brings the set without it.
    server.set_jwks(jwks_of([&new]));
    assert_eq!(verifier.prefetch().await, Ok(1));
    assert_eq!(
        verifier.verify(&old_token).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(verifier.verify(&new_token).await.unwrap().id, "u2");
    assert_eq!(verifier.cache_info().tokens_cached, 1);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_kid_names_other_key_material() {
    let first = TestKey::generate(Algorithm::ES256, "reused-kid");
    let second = TestKey::generate(Algorithm::ES256, "reused-kid");
    let server = JwksServer::start(jwks_of([&first])).await;
    let verifier = server.verifier_builder().build().unwrap();
    let token = first.mint(&server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok());

    server.set_jwks(jwks_of([&second]));
    assert_eq!(verifier.prefetch().await, Ok(1));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::BadSignature));
    let fresh = second.mint(&server.claims("u1"));
    assert!(verifier.verify(&fresh).await.is_ok());
}

#[tokio::test]
async fn a_refresh_that_keeps_the_key_keeps_the_cached_tokens() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server.verifier_builder().build().unwrap();
    let token = keys().mint(Algorithm::PS256, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(verifier.prefetch().await, Ok(9)); // a new snapshot, the same keys
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(verifier.cache_info().tokens_cached, 1);
}

#[tokio::test]
async fn a_refused_token_stays_refused() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server.verifier_builder().build().unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());

    // The cached token with another payload (same header and signature): a different token.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    payload["role"] = "admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    );
    // A token for someone else, and one not yet valid.
    let wrong_audience = keys().mint(
        Algorithm::EdDSA,
        &TokenClaims::new("u1")
            .issuer(server.base_url())
            .audience("someone-else"),
    );
    let early = keys().mint(
        Algorithm::EdDSA,
        &server.claims("u1").not_before_in(Duration::from_secs(600)),
    );
    for _ in 0..3 {
        assert_eq!(verifier.verify(&forged).await, Err(AuthError::BadSignature));
        assert_eq!(
            verifier.verify(&wrong_audience).await,
            Err(AuthError::WrongAudience)
        );
        assert_eq!(verifier.verify(&early).await, Err(AuthError::NotYetValid));
    }
    assert_eq!(
        verifier.cache_info().tokens_cached,
        1,
        "only the good token"
    );
    assert_eq!(verifier.verify(&token).await.unwrap().role, "user");
}

#[tokio::test]
async fn the_cache_holds_at_most_its_size() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server
        .verifier_builder()
        .token_cache_size(5)
        .build()
        .unwrap();
    let tokens: Vec<String> = (0..20)
        .map(|i| keys().mint(Algorithm::EdDSA, &server.claims(format!("u{i}"))))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(verifier.verify(token).await.unwrap().id, format!("u{i}"));
        assert!(verifier.cache_info().tokens_cached <= 5);
    }
    assert_eq!(verifier.cache_info().tokens_cached, 5, "full, not over");
    // Evicted tokens still verify (the slow way) and take a place again.
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(verifier.verify(token).await.unwrap().id, format!("u{i}"));
        assert!(verifier.cache_info().tokens_cached <= 5);
    }
}

#[tokio::test]
async fn a_size_of_zero_turns_the_cache_off() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server
        .verifier_builder()
        .token_cache_size(0)
        .build()
        .unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    for _ in 0..3 {
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
    }
    assert_eq!(verifier.cache_info().tokens_cached, 0);
}

#[tokio::test]
async fn static_verifier_forgets_tokens_when_its_rules_change() {
    let key = keys().key(Algorithm::EdDSA);
    let verifier = StaticVerifier::from_pem(key.public_pem().as_bytes(), None).unwrap();
    let token = key.mint(&TokenClaims::new("u1"));
    assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
    assert_eq!(verifier.verify(&token).await.unwrap().id, "u1"); // a hit
    // Same verifier, now requiring an issuer the token lacks: the hit must not survive.
    let verifier = verifier.issuer("https://auth.example");
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("iss"))
    );
}
