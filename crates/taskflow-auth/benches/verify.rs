//! Verification with a cached key, per algorithm: a warm `JwksVerifier` (keys fetched once
//! from a loopback JWKS server) verifying a Better Auth-shaped token. Also the dev HS256 path.
//!
//! Run: `cargo bench -p taskflow-auth --bench verify` (add `-- --quick` for a short run).
//!
//! One `--quick` run on the 2-core dev machine (aws-lc-rs backend), median per verification:
//! EdDSA 46 µs, ES256 68 µs, ES384 228 µs, RS256 23 µs, RS384 25 µs, RS512 24 µs,
//! PS256 24 µs, PS384 26 µs, PS512 26 µs, HS256 (dev) 1.8 µs. The HS256 figure bounds this
//! crate's own overhead (parsing, key lookup, claim checks); the rest is the signature check.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_auth::{Algorithm, DevAuth, Verifier};

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = TestKeys::generate();
    let server = rt.block_on(JwksServer::start(keys.jwks()));
    // The token cache off: every iteration checks the signature with the cached key.
    let verifier = server
        .verifier_builder()
        .token_cache_size(0)
        .build()
        .expect("verifier");
    rt.block_on(verifier.prefetch()).expect("keys");

    let mut group = c.benchmark_group("verify_cached");
    for alg in Algorithm::ALL {
        let claims = server
            .claims("user-1")
            .email("ada@example.com")
            .claim("name", "Ada");
        let token = keys.mint(alg, &claims);
        assert!(rt.block_on(verifier.verify(&token)).is_ok());
        group.bench_function(alg.name(), |b| {
            b.iter(|| rt.block_on(verifier.verify(black_box(&token))));
        });
    }
    let dev = DevAuth::hs256([42u8; 32]).expect("dev");
    let token = dev
        .mint_for("user-1", Some("ada@example.com"), None)
        .expect("mint");
    group.bench_function("HS256 (dev)", |b| {
        b.iter(|| rt.block_on(dev.verify(black_box(&token))))
    });
    group.finish();
    assert_eq!(
        server.fetch_count(),
        1,
        "cached verification must not fetch"
    );
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
