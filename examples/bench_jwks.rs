//! The auth server for `scripts/bench-http`: a fresh RS256 key, its JWKS served on loopback
//! where Better Auth serves it, and one bearer token signed with it.
//!
//! ```text
//! bench_jwks TOKEN_FILE [LIFETIME_SECONDS]
//! ```
//!
//! Generates an RSA-2048 key, serves `{"keys": [its public JWK]}` at
//! `http://127.0.0.1:<free port>/api/auth/jwks`, writes to `TOKEN_FILE` a token for the user
//! `bench-agent` (role `user`) with `iss` and `aud` equal to that base URL and an expiry of
//! `LIFETIME_SECONDS` (default 3600) plus a minute, then prints
//! `jwks base http://127.0.0.1:<port>` and serves until Ctrl-C, SIGTERM, or the lifetime runs
//! out. The server under test is started with `AUTH_SERVER_URL=<that base URL>`, so it verifies
//! the token exactly as in production: RS256 against a fetched JWKS, issuer and audience
//! checked.

use std::time::Duration;

use taskflow_auth::test_support::{JwksServer, TestKey, jwks_of};
use taskflow_auth::{Algorithm, TokenClaims};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(token_file), lifetime) = (args.next(), args.next()) else {
        return Err("usage: bench_jwks TOKEN_FILE [LIFETIME_SECONDS]".into());
    };
    let lifetime = Duration::from_secs(match lifetime {
        Some(s) => s
            .parse()
            .map_err(|_| format!("not a number of seconds: {s}"))?,
        None => 3600,
    });
    let key = TestKey::generate(Algorithm::RS256, "bench-rs256");
    let server = JwksServer::start(jwks_of([&key])).await;
    let claims: TokenClaims = server
        .claims("bench-agent")
        .email("bench-agent@example.test")
        .role("user")
        .expires_in(lifetime + Duration::from_secs(60));
    // Written whole to a temporary name and renamed, so a reader never sees half a token.
    let partial = format!("{token_file}.partial");
    std::fs::write(&partial, key.mint(&claims))?;
    std::fs::rename(&partial, &token_file)?;
    println!("jwks base {}", server.base_url());
    tokio::select! {
        () = taskflow_poem::shutdown_signal() => {}
        () = tokio::time::sleep(lifetime) => eprintln!("bench_jwks: lifetime over, stopping"),
    }
    Ok(())
}
