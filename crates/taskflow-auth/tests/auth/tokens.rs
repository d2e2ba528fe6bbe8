//! Good and bad tokens against a JWKS verifier.

use std::time::Duration;

use serde_json::json;
use taskflow_auth::{
    Algorithm, AuthError, DEFAULT_ROLE, TokenClaims, Verifier, bearer_token, verify_authorization,
};

use crate::support::{b64, keys, setup, unb64};

#[tokio::test]
async fn good_tokens_verify_with_every_algorithm() {
    let (server, verifier) = setup().await;
    // The issue's list first (EdDSA, ES256, ES384, RS256, PS256), then the rest.
    for alg in Algorithm::ALL {
        let token = keys().mint(alg, &server.claims(format!("user-{alg}")));
        let principal = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(principal.id, format!("user-{alg}"));
        assert_eq!(principal.email, None);
        assert_eq!(principal.role, DEFAULT_ROLE);
    }
    // One fetch for the whole set: cached keys cost no I/O.
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn principal_carries_email_and_role() {
    let (server, verifier) = setup().await;
    let claims = server
        .claims("u1")
        .email("ada@example.com")
        .role("admin")
        .claim("name", "Ada")
        .claim("emailVerified", true);
    let p = verifier
        .verify(&keys().mint(Algorithm::EdDSA, &claims))
        .await
        .unwrap();
    assert_eq!(p.id, "u1");
    assert_eq!(p.email.as_deref(), Some("ada@example.com"));
    assert_eq!(p.role, "admin");
}

#[tokio::test]
async fn better_auth_shaped_token_passes() {
    // Header {alg, kid} without typ; iss = aud = base URL; exp = iat + 15 min; no nbf.
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::EdDSA);
    assert_eq!(key.header(), json!({"alg": "EdDSA", "kid": "test-eddsa"}));
    let token = key.mint(&server.claims("u1"));
    let claims: serde_json::Value =
        serde_json::from_slice(&unb64(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["iss"], server.base_url());
    assert_eq!(claims["aud"], server.base_url());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn typ_jwt_is_accepted_case_insensitively() {
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::ES256);
    for typ in ["JWT", "jwt", "Jwt"] {
        let header = json!({"alg": "ES256", "kid": key.kid(), "typ": typ});
        let token = key.mint_with_header(&header, &server.claims("u1"));
        assert!(verifier.verify(&token).await.is_ok(), "typ {typ}");
    }
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let (server, verifier) = setup().await;
    let claims = serde_json::to_vec(&server.claims("u1")).unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = serde_json::to_vec(&json!({"alg": alg, "kid": "test-eddsa"})).unwrap();
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        assert_eq!(
            verifier.verify(&unsigned).await,
            Err(AuthError::UnsupportedAlgorithm),
            "{alg}"
        );
        // Even with a signature segment attached.
        let with_sig = format!("{unsigned}{}", b64(b"sig"));
        assert_eq!(
            verifier.verify(&with_sig).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let (server, verifier) = setup().await;
    let rsa = keys().key(Algorithm::RS256);
    let n = rsa.jwk()["n"].as_str().unwrap().to_owned();
    // The classic key-confusion attack: the public key (PEM, or raw modulus) as HMAC secret.
    for secret in [rsa.public_pem().as_bytes().to_vec(), unb64(&n)] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = None;
        header.kid = Some(rsa.kid().to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &server.claims("attacker"),
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
    for alg in ["HS384", "HS512"] {
        let header = json!({"alg": alg, "kid": rsa.kid()});
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(&serde_json::to_vec(&server.claims("attacker")).unwrap()),
            b64(b"mac")
        );
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
}

#[tokio::test]
async fn algorithm_not_matching_the_key_is_rejected() {
    let (server, verifier) = setup().await;
    let claims = server.claims("u1");
    // Header ES256 on the EdDSA key's kid.
    let ed = keys().key(Algorithm::EdDSA);
    let token = ed.mint_with_header(&json!({"alg": "ES256", "kid": ed.kid()}), &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::AlgorithmMismatch)
    );
    // The PS256 key verifies PS256 only, not RS256, though the modulus is the same.
    let ps = keys().key(Algorithm::PS256);
    let token = keys()
        .key(Algorithm::RS256)
        .mint_with_header(&json!({"alg": "RS256", "kid": ps.kid()}), &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::AlgorithmMismatch)
    );
    // An unknown algorithm name.
    let token = ed.mint_with_header(&json!({"alg": "ES512", "kid": ed.kid()}), &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[tokio::test]
async fn expired_token_is_rejected_beyond_the_leeway() {
    let (server, verifier) = setup().await;
    let expired = server.claims("u1").expired_for(Duration::from_secs(120));
    let token = keys().mint(Algorithm::EdDSA, &expired);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
    // Within the 30 s leeway it still passes.
    let just_expired = server.claims("u1").expired_for(Duration::from_secs(10));
    assert!(
        verifier
            .verify(&keys().mint(Algorithm::EdDSA, &just_expired))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn nbf_or_iat_in_the_future_is_rejected() {
    let (server, verifier) = setup().await;
    let future = server.claims("u1").not_before_in(Duration::from_secs(120));
    let token = keys().mint(Algorithm::ES384, &future);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::NotYetValid));

    let mut iat_future = server.claims("u1");
    iat_future.iat = Some(taskflow_auth::unix_time() + 120);
    let token = keys().mint(Algorithm::ES384, &iat_future);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::NotYetValid));

    let within_leeway = server.claims("u1").not_before_in(Duration::from_secs(10));
    assert!(
        verifier
            .verify(&keys().mint(Algorithm::ES384, &within_leeway))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn wrong_or_missing_issuer_is_rejected() {
    let (server, verifier) = setup().await;
    let mut claims = server.claims("u1");
    claims.iss = Some("https://evil.example".into());
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::WrongIssuer));
    // Exact match only: a trailing slash is a different issuer.
    claims.iss = Some(format!("{}/", server.base_url()));
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::WrongIssuer));
    claims.iss = None;
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("iss"))
    );
}

#[tokio::test]
async fn wrong_or_missing_audience_is_rejected() {
    let (server, verifier) = setup().await;
    let mut claims = server.claims("u1");
    claims.aud = vec!["https://other-api.example".into()];
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::WrongAudience));
    claims.aud = vec![];
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("aud"))
    );
    // An array containing the configured audience passes.
    claims.aud = vec!["https://other-api.example".into(), server.base_url()];
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn several_configured_audiences_any_one_matches() {
    let (server, _) = setup().await;
    let verifier = taskflow_auth::JwksVerifier::builder(server.jwks_url())
        .issuer(server.base_url())
        .audiences_csv("https://api-a.example, https://api-b.example")
        .build()
        .unwrap();
    let claims = TokenClaims::new("u1").issuer(server.base_url());
    for (aud, ok) in [
        ("https://api-a.example", true),
        ("https://api-b.example", true),
        ("https://api-c.example", false),
    ] {
        let token = keys().mint(Algorithm::EdDSA, &claims.clone().audience(aud));
        assert_eq!(verifier.verify(&token).await.is_ok(), ok, "{aud}");
    }
}

#[tokio::test]
async fn missing_sub_or_exp_is_rejected() {
    let (server, verifier) = setup().await;
    let mut claims = server.claims("u1");
    claims.sub = None;
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("sub"))
    );
    let token = keys().mint(Algorithm::EdDSA, &claims.clone().claim("sub", 42));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim("sub"))
    );

    let mut claims = server.claims("u1");
    claims.exp = None;
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("exp"))
    );
    let token = keys().mint(Algorithm::EdDSA, &claims.claim("exp", "tomorrow"));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim("exp"))
    );
}

#[tokio::test]
async fn missing_kid_is_rejected() {
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::EdDSA);
    let token = key.mint_with_header(&json!({"alg": "EdDSA"}), &server.claims("u1"));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::MissingKeyId));
    // Refused before any key lookup: nothing was fetched.
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::EdDSA);
    let token = key.mint_with_header(
        &json!({"alg": "EdDSA", "kid": "nope"}),
        &server.claims("u1"),
    );
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn other_token_types_are_rejected() {
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::EdDSA);
    for typ in [
        "at+jwt",
        "better-auth.session-cache+jwt",
        "JOSE",
        "application/at+jwt",
    ] {
        let header = json!({"alg": "EdDSA", "kid": key.kid(), "typ": typ});
        let token = key.mint_with_header(&header, &server.claims("u1"));
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::WrongType),
            "{typ}"
        );
    }
    let header = json!({"alg": "EdDSA", "kid": key.kid(), "typ": 1});
    let token = key.mint_with_header(&header, &server.claims("u1"));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::WrongType));
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    let (server, verifier) = setup().await;
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let token = keys().mint(alg, &server.claims("alice"));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = serde_json::to_vec(&server.claims("alice").role("admin")).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
        assert_eq!(
            verifier.verify(&tampered).await,
            Err(AuthError::BadSignature),
            "{alg}"
        );
        // A flipped signature bit too.
        let mut sig = unb64(parts[2]);
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            verifier.verify(&flipped).await,
            Err(AuthError::BadSignature),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let (server, verifier) = setup().await;
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        format!("{}.{}", parts[0], parts[1]), // 2 segments
        format!("{token}.{}", parts[2]),      // 4 segments
        format!("{}.!!not-base64!!.{}", parts[0], parts[2]), // bad base64 payload
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]), // padding
        format!("%%%.{}.{}", parts[1], parts[2]), // bad base64 header
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]), // header not JSON
        format!("{}.{}.{}", b64(b"[1,2]"), parts[1], parts[2]), // header not an object
        format!("{}.{}.", parts[0], parts[1]), // empty signature
        format!(".{}.{}", parts[1], parts[2]), // empty header
        "abc".to_owned(),
        "a.b.c.d.e".to_owned(),
    ];
    for case in &cases {
        assert_eq!(
            verifier.verify(case).await,
            Err(AuthError::Malformed),
            "{case}"
        );
    }
    // Duplicate header members (parser-differential bait) and `crit`.
    let key = keys().key(Algorithm::EdDSA);
    let dup = format!(r#"{{"alg":"EdDSA","kid":"{}","alg":"none"}}"#, key.kid());
    let token = format!("{}.{}.{}", b64(dup.as_bytes()), parts[1], parts[2]);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Malformed));
    let crit = json!({"alg": "EdDSA", "kid": key.kid(), "crit": ["b64"], "b64": false});
    let token = key.mint_with_header(&crit, &server.claims("u1"));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Malformed));
    // A validly signed token whose payload is not a JSON object.
    let token = key.mint_with_header(&key.header(), &json!("just a string"));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Malformed));
}

#[tokio::test]
async fn oversized_token_is_refused_before_any_work() {
    let (server, verifier) = setup().await;
    let claims = server.claims("u1").claim("padding", "x".repeat(9000));
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert!(token.len() > taskflow_auth::MAX_TOKEN_BYTES);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::TooLarge));
    let garbage = "a".repeat(taskflow_auth::MAX_TOKEN_BYTES + 1);
    assert_eq!(verifier.verify(&garbage).await, Err(AuthError::TooLarge));
    // Nothing was even looked up.
    assert_eq!(server.fetch_count(), 0);
    // Just under the cap is fine.
    let claims = server.claims("u1").claim("padding", "x".repeat(5000));
    let token = keys().mint(Algorithm::EdDSA, &claims);
    assert!(token.len() <= taskflow_auth::MAX_TOKEN_BYTES);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn authorization_header_handling() {
    let (server, verifier) = setup().await;
    let token = keys().mint(Algorithm::EdDSA, &server.claims("u1"));
    let ok = verify_authorization(&verifier, Some(&format!("Bearer {token}"))).await;
    assert_eq!(ok.unwrap().id, "u1");
    assert_eq!(
        bearer_token(&format!("bearer {token}")),
        Some(token.as_str())
    );
    for header in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some(token.as_str()),
        Some("Bearer "),
    ] {
        assert_eq!(
            verify_authorization(&verifier, header).await,
            Err(AuthError::Missing)
        );
    }
    assert_eq!(verifier.verify("").await, Err(AuthError::Missing));
}

#[tokio::test]
async fn error_texts_are_short_and_leak_nothing() {
    let (server, verifier) = setup().await;
    let key = keys().key(Algorithm::RS256);
    let n = key.jwk()["n"].as_str().unwrap().to_owned();
    let token = key.mint(&server.claims("u1"));
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(b"{\"sub\":\"x\"}"), parts[2]);
    let err = verifier.verify(&tampered).await.unwrap_err();
    let text = format!("Invalid token: {err}");
    assert_eq!(text, "Invalid token: bad signature");
    assert!(!text.contains(&n[..16]) && !text.contains(parts[2]));
    let all = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::TooLarge,
        AuthError::WrongType,
        AuthError::UnsupportedAlgorithm,
        AuthError::AlgorithmMismatch,
        AuthError::MissingKeyId,
        AuthError::UnknownKey,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::MissingClaim("sub"),
        AuthError::InvalidClaim("exp"),
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::KeysUnavailable,
    ];
    for e in all {
        let s = e.to_string();
        assert!(!s.is_empty() && s.len() < 40, "{s}");
        assert_eq!(e.is_unavailable(), e == AuthError::KeysUnavailable);
    }
}
