//! Verification with a cached key, per algorithm: a warm `JwksVerifier` (keys fetched once
//! from a loopback JWKS server, verified-token cache off) verifying a Better Auth-shaped token.
//! Also the dev HS256 path, and the verified-token cache (`verify_token_cache`): a hit, a
//! miss, and hits from two threads.
//!
//! Run: `cargo bench -p taskflow-auth --bench verify` (add `-- --quick` for a short run).
//!
//! One `--quick` run on the 2-core dev machine (aws-lc-rs backend), median per verification:
//! EdDSA 46 µs, ES256 68 µs, ES384 228 µs, RS256 23 µs, RS384 25 µs, RS512 24 µs,
//! PS256 24 µs, PS384 26 µs, PS512 26 µs, HS256 (dev) 1.8 µs. The HS256 figure bounds this
//! crate's own overhead (parsing, key lookup, claim checks); the rest is the signature check.
//!
//! The token cache, in a full run on the same machine while other builds kept it busy (load
//! about 5; RS256 without the cache measured 32 µs in that run): a hit 0.8–1.4 µs whatever the
//! algorithm — mostly the token's SHA-256 and this harness's `block_on`, no signature check —
//! and a miss costs what a verification without the cache costs. Two threads hitting one
//! cache: 1.3 µs of wall time per verification.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use taskflow_auth::test_support::{JwksServer, TestKeys};
use taskflow_auth::{Algorithm, DevAuth, JwksVerifier, Verifier};

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

/// The verified-token cache: a hit (no signature check), a miss (full verification plus the
/// digest, the store and an eviction), and hits from two threads at once.
fn bench_token_cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = TestKeys::generate();
    let server = rt.block_on(JwksServer::start(keys.jwks()));
    let verifier = server.verifier_builder().build().expect("verifier");
    rt.block_on(verifier.prefetch()).expect("keys");
    let mint = |alg: Algorithm, sub: &str| {
        let claims = server
            .claims(sub)
            .email("ada@example.com")
            .claim("name", "Ada");
        keys.mint(alg, &claims)
    };

    let mut group = c.benchmark_group("verify_token_cache");
    for alg in [Algorithm::RS256, Algorithm::EdDSA, Algorithm::ES256] {
        let token = mint(alg, "user-1");
        assert!(rt.block_on(verifier.verify(&token)).is_ok());
        group.bench_function(format!("{} hit", alg.name()), |b| {
            b.iter(|| rt.block_on(verifier.verify(black_box(&token))));
        });
    }

    // A one-token cache and two tokens in turn: every verification misses, stores and evicts.
    let tiny = server
        .verifier_builder()
        .token_cache_size(1)
        .build()
        .expect("verifier");
    rt.block_on(tiny.prefetch()).expect("keys");
    let pair = [
        mint(Algorithm::RS256, "user-1"),
        mint(Algorithm::RS256, "user-2"),
    ];
    let mut turn = 0;
    group.bench_function("RS256 miss", |b| {
        b.iter(|| {
            turn ^= 1;
            rt.block_on(tiny.verify(black_box(&pair[turn])))
        });
    });

    // Wall time per verification with two threads hitting the same cache.
    let token = mint(Algorithm::RS256, "user-1");
    assert!(rt.block_on(verifier.verify(&token)).is_ok());
    group.bench_function("RS256 hit, 2 threads", |b| {
        b.iter_custom(|iters| hits_on_threads(&verifier, &token, iters, 2));
    });
    group.finish();
}

fn hits_on_threads(verifier: &JwksVerifier, token: &str, iters: u64, threads: u64) -> Duration {
    let start = Barrier::new(usize::try_from(threads).expect("threads") + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                start.wait();
                for _ in 0..iters / threads {
                    let _ = black_box(rt.block_on(verifier.verify(black_box(token))));
                }
            });
        }
        start.wait();
        // The scope joins the threads before it returns, so this times all their hits.
        Instant::now()
    })
    .elapsed()
}

criterion_group!(benches, bench_verify, bench_token_cache);
criterion_main!(benches);
