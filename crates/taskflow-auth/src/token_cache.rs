//! The verified-token cache: a successful verification, reused for the same token until the
//! token expires or the key that verified it leaves the key set.
//!
//! Why it is safe: only successful verifications are stored, and a hit is served only after
//!
//! * the same time checks that verification makes, with the same leeway, at the time of the
//!   hit ([`ClaimRules::check_times`]); and
//! * the verifier confirms that its current key set still holds the very key (same `kid`,
//!   algorithm and key material) that verified the token ([`KeyIndex::holds`](crate::keys::KeyIndex::holds)).
//!
//! Everything else verification checks (signature, `typ`, `alg`, issuer, audience, `sub`) is a
//! function of the token bytes and the verifier's fixed configuration, so it cannot change
//! between two presentations of the same token. Tokens are keyed by their SHA-256, so two
//! different tokens never share an entry. A failed verification is never stored: a refused
//! token goes through full verification every time.

use std::sync::Arc;

use aws_lc_rs::digest;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

use crate::Principal;
use crate::keys::VerifyKey;
use crate::token::{ClaimRules, MAX_TOKEN_BYTES, Validity, unix_now};

/// The SHA-256 of a token: its cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`, or `None` for a token that verification refuses on size alone
    /// (never hashed, never cached).
    pub(crate) fn of(token: &str) -> Option<Self> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        Some(Self(out))
    }
}

/// What one successful verification established.
pub(crate) struct Verified {
    pub(crate) principal: Principal,
    pub(crate) validity: Validity,
    /// The key that verified the token.
    pub(crate) key: Arc<VerifyKey>,
}

/// A bounded, sharded map from token digest to [`Verified`].
///
/// [`quick_cache`]'s sync cache: each shard is behind its own read-write lock and a hit takes
/// only a read lock, and eviction is CLOCK-PRO-like (recently and repeatedly used tokens stay).
pub(crate) struct TokenCache {
    entries: Cache<TokenDigest, Arc<Verified>>,
    capacity: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.entries.len())
            .finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens, or `None` for 0 (caching off).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        // Every shard keeps its own bound, quick_cache rounds a shard's share up, and it
        // merges shards that would hold fewer than 32 items. So pick a power-of-two shard count
        // that leaves each shard at least 32, and give quick_cache a multiple of it: the shard
        // bounds then add up to at most `capacity`.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let wanted = (cores * 4).min(capacity / 32).max(1);
        let shards = 1_usize << wanted.ilog2();
        let bound = capacity - capacity % shards;
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(capacity)
            .weight_capacity(bound as u64)
            .build()
            .ok()?; // fails only when one of the two capacities is left unset
        let entries = Cache::with_options(
            options,
            UnitWeighter,
            DefaultHashBuilder::default(),
            Default::default(),
        );
        Some(Self { entries, capacity })
    }

    /// The cache and the token's key in it; `None` with no cache, or for a token that is
    /// never cached.
    pub(crate) fn with_digest<'a>(
        cache: Option<&'a Self>,
        token: &str,
    ) -> Option<(&'a Self, TokenDigest)> {
        Some((cache?, TokenDigest::of(token)?))
    }

    /// The principal cached for `digest`, when its time checks pass now and `key_held` says the
    /// key that verified it is still in the key set. A stale entry is dropped.
    pub(crate) fn get(
        &self,
        digest: &TokenDigest,
        rules: &ClaimRules,
        key_held: impl FnOnce(&VerifyKey) -> bool,
    ) -> Option<Principal> {
        let entry = self.entries.get(digest)?;
        if rules.check_times(&entry.validity, unix_now()).is_ok() && key_held(&entry.key) {
            return Some(entry.principal.clone());
        }
        // Only this entry: a fresh one another request stored meanwhile stays.
        self.entries
            .remove_if(digest, |current| Arc::ptr_eq(current, &entry));
        None
    }

    /// Stores a successful verification (evicting another entry when full).
    pub(crate) fn insert(&self, digest: TokenDigest, verified: Verified) {
        self.entries.insert(digest, Arc::new(verified));
    }

    /// Number of cached tokens.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::parse_jwk;
    use crate::{Algorithm, test_support::TestKey};

    fn key() -> Arc<VerifyKey> {
        let jwk = TestKey::generate(Algorithm::EdDSA, "k1").jwk();
        Arc::new(parse_jwk(&jwk).unwrap())
    }

    fn verified(id: &str, exp: f64) -> Verified {
        Verified {
            principal: Principal {
                id: id.to_owned(),
                email: Some("ada@example.com".to_owned()),
                role: "admin".to_owned(),
            },
            validity: Validity::for_tests(exp, None),
            key: key(),
        }
    }

    fn rules(leeway_secs: u64) -> ClaimRules {
        ClaimRules {
            leeway: Duration::from_secs(leeway_secs),
            ..ClaimRules::default()
        }
    }

    #[test]
    fn digests_differ_per_token_and_skip_oversized_ones() {
        assert!(TokenDigest::of("a.b.c") != TokenDigest::of("a.b.d"));
        assert!(TokenDigest::of("a.b.c") == TokenDigest::of("a.b.c"));
        assert!(TokenDigest::of("").is_none());
        assert!(TokenDigest::of(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_none());
        assert!(TokenDigest::of(&"x".repeat(MAX_TOKEN_BYTES)).is_some());
    }

    #[test]
    fn a_hit_returns_the_stored_principal() {
        let cache = TokenCache::new(10).unwrap();
        let d = TokenDigest::of("a.b.c").unwrap();
        cache.insert(d, verified("u1", unix_now() + 60.0));
        let p = cache.get(&d, &rules(0), |_| true).unwrap();
        assert_eq!(p.id, "u1");
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        assert_eq!(p.role, "admin");
        assert!(
            cache
                .get(&TokenDigest::of("a.b.d").unwrap(), &rules(0), |_| true)
                .is_none()
        );
    }

    #[test]
    fn expiry_follows_the_leeway_and_drops_the_entry() {
        let cache = TokenCache::new(10).unwrap();
        let d = TokenDigest::of("a.b.c").unwrap();
        // Expired 10 s ago: still good under a 30 s leeway, refused under none.
        cache.insert(d, verified("u1", unix_now() - 10.0));
        assert!(cache.get(&d, &rules(30), |_| true).is_some());
        assert!(cache.get(&d, &rules(0), |_| true).is_none());
        assert_eq!(cache.len(), 0, "a refused entry is dropped");
    }

    #[test]
    fn not_before_is_checked_on_every_hit() {
        // As if the clock stepped back after verification: nbf is now 100 s ahead.
        let cache = TokenCache::new(10).unwrap();
        let d = TokenDigest::of("a.b.c").unwrap();
        let mut v = verified("u1", unix_now() + 600.0);
        v.validity = Validity::for_tests(unix_now() + 600.0, Some(unix_now() + 100.0));
        cache.insert(d, v);
        assert!(cache.get(&d, &rules(30), |_| true).is_none());
    }

    #[test]
    fn a_key_no_longer_held_refuses_the_hit() {
        let cache = TokenCache::new(10).unwrap();
        let d = TokenDigest::of("a.b.c").unwrap();
        cache.insert(d, verified("u1", unix_now() + 60.0));
        assert!(cache.get(&d, &rules(0), |_| false).is_none());
        assert!(cache.get(&d, &rules(0), |_| true).is_none(), "dropped");
    }

    #[test]
    fn the_bound_is_never_exceeded() {
        for capacity in [1, 5, 31, 32, 100, 1000, 1037, 10_000] {
            let cache = TokenCache::new(capacity).unwrap();
            let exp = unix_now() + 60.0;
            for i in 0..capacity * 2 + 10 {
                let d = TokenDigest::of(&format!("t.{i}.s")).unwrap();
                cache.insert(d, verified("u", exp));
                assert!(
                    cache.len() <= capacity,
                    "capacity {capacity}: {}",
                    cache.len()
                );
                // The token just stored is served.
                assert!(cache.get(&d, &rules(0), |_| true).is_some());
            }
            // Full up to rounding to the shard count.
            assert!(
                cache.len() * 10 >= capacity * 9,
                "capacity {capacity}: {}",
                cache.len()
            );
        }
        assert!(TokenCache::new(0).is_none());
    }
}
