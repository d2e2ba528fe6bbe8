//! Cache behaviour against a real loopback JWKS server: single-flight refetch, rate limit,
//! rotation, stale-if-error, garbage responses, max-age clamping, background refresh.
//!
//! Durations are shrunk through the builder; waits are bounded polls, never asserted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use taskflow_auth::test_support::{JwksResponse, JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, AuthError, JwksVerifier, Verifier};
use tokio::task::JoinSet;

use crate::support::{PATIENCE, SHORT, keys};

async fn verify_concurrently(
    verifier: &JwksVerifier,
    token: &str,
    n: usize,
) -> Vec<Result<String, AuthError>> {
    let verifier = Arc::new(verifier.clone());
    let token: Arc<str> = Arc::from(token);
    let mut set = JoinSet::new();
    for _ in 0..n {
        let (v, t) = (Arc::clone(&verifier), Arc::clone(&token));
        set.spawn(async move { v.verify(&t).await.map(|p| p.id) });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_unknown_kids_cause_one_fetch() {
    // Cold cache: the kid is unknown until the one fetch brings it in.
    let server = JwksServer::start(keys().jwks()).await;
    server.set_delay(Duration::from_millis(200)); // keep the fetch in flight while tasks pile up
    let verifier = server.verifier_builder().build().unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    let results = verify_concurrently(&verifier, &token, 1000).await;
    assert!(results.iter().all(|r| r.as_deref() == Ok("u1")));
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_bogus_kids_cause_one_fetch() {
    // Warm cache, then a flood of tokens with a kid nobody publishes.
    let server = JwksServer::start(keys().jwks()).await;
    let interval = Duration::from_secs(2);
    let verifier = server
        .verifier_builder()
        .min_refetch_interval(interval)
        .build()
        .unwrap();
    assert_eq!(verifier.prefetch().await, Ok(9));
    tokio::time::sleep(interval + SHORT).await; // a refetch is allowed again
    server.set_delay(Duration::from_millis(200));
    let key = TestKey::generate(Algorithm::EdDSA, "never-published");
    let token = key.mint(&server.claims("u1"));
    let results = verify_concurrently(&verifier, &token, 1000).await;
    assert!(results.iter().all(|r| *r == Err(AuthError::UnknownKey)));
    assert_eq!(server.fetch_count(), 2); // the prefetch + exactly one
    // Within the interval, more bogus kids cost nothing.
    let results = verify_concurrently(&verifier, &token, 100).await;
    assert!(results.iter().all(|r| *r == Err(AuthError::UnknownKey)));
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn rotated_key_is_accepted_after_one_refetch() {
    let old = TestKey::generate(Algorithm::EdDSA, "2024-01");
    let new = TestKey::generate(Algorithm::EdDSA, "2024-02");
    let server = JwksServer::start(jwks_of([&old])).await;
    let interval = Duration::from_millis(500);
    let verifier = server
        .verifier_builder()
        .min_refetch_interval(interval)
        .build()
        .unwrap();
    assert!(
        verifier
            .verify(&old.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert_eq!(server.fetch_count(), 1);

    // Better Auth rotates lazily: the new kid shows up in a token first.
    server.set_jwks(jwks_of([&old, &new]));
    tokio::time::sleep(interval + SHORT).await;
    assert_eq!(
        verifier
            .verify(&new.mint(&server.claims("u2")))
            .await
            .unwrap()
            .id,
        "u2"
    );
    assert_eq!(server.fetch_count(), 2);
    // Both keys now serve from the cache.
    assert!(
        verifier
            .verify(&old.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    assert!(
        verifier
            .verify(&new.mint(&server.claims("u2")))
            .await
            .is_ok()
    );
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn failed_fetches_count_towards_the_refetch_limit() {
    let server = JwksServer::start(keys().jwks()).await;
    let interval = Duration::from_secs(1);
    let verifier = server
        .verifier_builder()
        .min_refetch_interval(interval)
        .build()
        .unwrap();
    assert_eq!(verifier.prefetch().await, Ok(9));
    tokio::time::sleep(interval + SHORT).await; // the successful fetch no longer limits...
    server.set_response(JwksResponse::Status(500));
    assert_eq!(verifier.prefetch().await, Ok(9)); // ...but this failed one (stale kept) does
    assert_eq!(server.fetch_count(), 2);
    // The endpoint recovers, but the failed attempt 0 s ago still counts: no new fetch.
    server.set_response(JwksResponse::Keys);
    let key = TestKey::generate(Algorithm::EdDSA, "not-yet-fetched");
    assert_eq!(
        verifier.verify(&key.mint(&server.claims("u1"))).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(server.fetch_count(), 2);
    assert_eq!(
        verifier.cache_info().last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
}

#[tokio::test]
async fn failed_cold_start_fetches_count_towards_the_backoff() {
    let server = JwksServer::start(keys().jwks()).await;
    server.set_response(JwksResponse::Status(500));
    let backoff = Duration::from_secs(30);
    let verifier = server
        .verifier_builder()
        .cold_start_backoff(backoff, backoff)
        .build()
        .unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(server.fetch_count(), 1);
    // The endpoint recovers, but the failed attempt 0 s ago still counts: no new fetch.
    server.set_response(JwksResponse::Keys);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(server.fetch_count(), 1);
    assert_eq!(
        verifier.cache_info().last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
}

/// A verifier whose key set expires quickly and refreshes often.
fn fast(server: &JwksServer) -> taskflow_auth::JwksVerifierBuilder {
    server
        .verifier_builder()
        .default_ttl(Duration::from_millis(300))
        .min_refetch_interval(SHORT)
        .request_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn endpoint_returning_500_keeps_cached_keys_verifying() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = fast(&server).build().unwrap();
    let token = keys().mint(Algorithm::ES256, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    server.set_response(JwksResponse::Status(500));
    // Let the set expire and several refreshes fail.
    assert!(server.wait_for_fetches(4, PATIENCE).await);
    let info = verifier.cache_info();
    assert!(info.stale);
    assert_eq!(info.key_count, 9);
    assert!(info.last_error.is_some());
    assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
}

#[tokio::test]
async fn hanging_endpoint_keeps_cached_keys_verifying() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = fast(&server)
        .request_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let token = keys().mint(Algorithm::RS256, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    server.set_response(JwksResponse::Hang);
    // A refresh is now stuck on the hanging endpoint (its timeout is a minute)...
    assert!(server.wait_for_fetches(2, PATIENCE).await);
    // ...and cached keys keep verifying, without waiting for it.
    for _ in 0..10 {
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
    }
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn hanging_endpoint_times_out() {
    let server = JwksServer::start(keys().jwks()).await;
    server.set_response(JwksResponse::Hang);
    let verifier = fast(&server).build().unwrap(); // 500 ms request timeout
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(
        verifier.cache_info().last_error.as_deref(),
        Some("timed out")
    );
}

#[tokio::test]
async fn stale_keys_serve_until_the_stale_limit_then_keys_unavailable() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = fast(&server)
        .stale_if_error(Duration::from_millis(700))
        .build()
        .unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    server.set_response(JwksResponse::Status(503));
    let mut served_stale = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let outcome = loop {
        let result = verifier.verify(&token).await;
        if result.is_ok() && verifier.cache_info().stale {
            served_stale = true;
        }
        if result.is_err() || tokio::time::Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(served_stale, "stale keys should have served for a while");
    assert_eq!(outcome, Err(AuthError::KeysUnavailable));
    // The endpoint comes back: the next attempt recovers.
    server.set_response(JwksResponse::Keys);
    assert!(
        server
            .wait_for_fetches(server.fetch_count() + 1, PATIENCE)
            .await
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while verifier.verify(&token).await.is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn empty_or_garbage_responses_never_replace_a_good_set() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = fast(&server).build().unwrap();
    let token = keys().mint(Algorithm::PS512, &server.claims("u1"));
    assert!(verifier.verify(&token).await.is_ok());
    let bad_bodies = [
        r#"{"keys":[]}"#.to_owned(),
        "not json at all".to_owned(),
        "{}".to_owned(),
        r#"{"keys":"nope"}"#.to_owned(),
        json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}).to_string(),
        String::new(),
    ];
    for body in bad_bodies {
        // Set first, count second: the next two requests both get the bad body.
        server.set_response(JwksResponse::Body(body.clone()));
        let before = server.fetch_count();
        assert!(server.wait_for_fetches(before + 2, PATIENCE).await);
        assert_eq!(verifier.cache_info().key_count, 9, "{body}");
        assert!(verifier.cache_info().last_error.is_some(), "{body}");
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1", "{body}");
    }
}

#[tokio::test]
async fn max_age_is_obeyed_within_its_clamp() {
    let server = JwksServer::start(keys().jwks()).await;
    let (min, max) = (Duration::from_millis(400), Duration::from_secs(3));
    let default = Duration::from_secs(2);
    let verifier = server
        .verifier_builder()
        .ttl_bounds(min, max)
        .default_ttl(default)
        // Long enough that no background refresh races the forced prefetches below.
        .min_refetch_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    for (max_age, expected) in [
        (None, default),                   // no Cache-Control: the default
        (Some(0), min),                    // clamped up
        (Some(1), Duration::from_secs(1)), // within the clamp: as sent
        (Some(86_400 * 365), max),         // clamped down
    ] {
        server.set_max_age(max_age);
        verifier.prefetch().await.unwrap();
        assert_eq!(
            verifier.cache_info().ttl,
            Some(expected),
            "max-age {max_age:?}"
        );
    }
}

#[tokio::test]
async fn keys_refresh_in_the_background() {
    let server = JwksServer::start(keys().jwks()).await;
    server.set_max_age(Some(0)); // clamped up to the 300 ms minimum below
    let verifier = server
        .verifier_builder()
        .ttl_bounds(Duration::from_millis(300), Duration::from_secs(5))
        .min_refetch_interval(SHORT)
        .build()
        .unwrap();
    let old = TestKey::generate(Algorithm::EdDSA, "bg-old");
    let new = TestKey::generate(Algorithm::EdDSA, "bg-new");
    server.set_jwks(jwks_of([&old]));
    assert!(
        verifier
            .verify(&old.mint(&server.claims("u1")))
            .await
            .is_ok()
    );
    // With no verification at all, the set is refetched before/around expiry, repeatedly.
    server.set_jwks(jwks_of([&old, &new]));
    assert!(server.wait_for_fetches(3, PATIENCE).await);
    // The new key arrived through the background refresh, so using it costs no fetch.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while verifier.cache_info().key_count < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(verifier.cache_info().key_count, 2);
    assert!(
        verifier
            .verify(&new.mint(&server.claims("u2")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn dropping_the_verifier_stops_the_background_refresh() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = fast(&server).build().unwrap();
    verifier.prefetch().await.unwrap();
    assert!(server.wait_for_fetches(2, PATIENCE).await); // background refresh is running
    drop(verifier);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = server.fetch_count();
    tokio::time::sleep(Duration::from_secs(1)).await; // > 3 refresh periods
    assert_eq!(server.fetch_count(), after_drop);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = JwksServer::start(keys().jwks()).await;
    let server = JwksServer::start(keys().jwks()).await;
    server.set_response(JwksResponse::Redirect(target.jwks_url()));
    let verifier = server.verifier_builder().build().unwrap();
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(server.fetch_count(), 1);
    assert_eq!(target.fetch_count(), 0);
    assert!(
        verifier
            .cache_info()
            .last_error
            .unwrap()
            .contains("redirects are not followed")
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = JwksServer::start(keys().jwks()).await;
    let verifier = server
        .verifier_builder()
        .max_body_bytes(512)
        .build()
        .unwrap();
    assert_eq!(verifier.prefetch().await, Err(AuthError::KeysUnavailable));
    assert!(
        verifier
            .cache_info()
            .last_error
            .unwrap()
            .contains("body over 512 bytes")
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_keys_unavailable() {
    // A port that was just free: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let verifier = JwksVerifier::from_auth_server_url(&url).unwrap();
    let token = keys().key(Algorithm::EdDSA).mint(
        &taskflow_auth::TokenClaims::new("u1")
            .issuer(url.clone())
            .audience(url.clone()),
    );
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(verifier.cache_info().fetch_attempts, 1);
}
