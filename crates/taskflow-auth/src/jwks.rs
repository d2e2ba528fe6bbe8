//! The JWKS verifier: a remote key set, cached, refreshed, and hard to abuse.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use crate::keys::{KeyIndex, Lookup, VerifyKey};
use crate::token::{ClaimRules, HeaderAlg};
use crate::token_cache::{TokenCache, Verified};
use crate::{AuthError, ConfigError, Principal, Verifier, backend, token};

/// Better Auth's JWKS path, relative to its base URL.
pub const BETTER_AUTH_JWKS_PATH: &str = "/api/auth/jwks";

/// The SPEC §4 defaults. Every one can be changed on [`JwksVerifierBuilder`].
pub mod defaults {
    use std::time::Duration;

    /// Once a key set is held, at most one refetch per this interval, counted from the last
    /// fetch attempt of any kind.
    pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
    /// While no key set was ever fetched (cold start), the wait after the first failed fetch
    /// before the next try; it doubles with every further failure.
    pub const COLD_START_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
    /// The longest cold-start wait between two fetch attempts.
    pub const COLD_START_BACKOFF_MAX: Duration = Duration::from_secs(30);
    /// Key-set lifetime when the response has no `Cache-Control: max-age`.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
    /// Lower clamp of `max-age`.
    pub const MIN_TTL: Duration = Duration::from_secs(60);
    /// Upper clamp of `max-age`.
    pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
    /// How long past its expiry a key set keeps serving while fetches fail.
    pub const STALE_IF_ERROR: Duration = Duration::from_secs(24 * 60 * 60);
    /// TCP/TLS connect timeout of a fetch.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Whole-request timeout of a fetch (headers and body).
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Largest accepted JWKS response body.
    pub const MAX_BODY_BYTES: usize = 256 * 1024;
    /// Most verified tokens kept in the verified-token cache.
    pub const TOKEN_CACHE_SIZE: usize = 10_000;
}

/// Counter of JWKS fetch attempts, through the `metrics` facade (a no-op unless the
/// application installs a recorder, as the REST server does with `METRICS=1`).
const FETCHES_METRIC: &str = "taskflow_jwks_fetches_total";
/// Counter of JWKS fetch attempts that failed.
const FETCH_FAILURES_METRIC: &str = "taskflow_jwks_fetch_failures_total";

/// A background refresh starts once this fraction of the key set's lifetime has passed.
const REFRESH_AT_FRACTION: f64 = 0.8;

/// Configuration of a [`JwksVerifier`]. Issuer and audience are required, unless waived
/// explicitly with [`any_issuer`](Self::any_issuer) / [`any_audience`](Self::any_audience).
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksVerifierBuilder {
    jwks_url: String,
    rules: ClaimRules,
    any_issuer: bool,
    any_audience: bool,
    min_refetch_interval: Duration,
    cold_start_backoff_initial: Duration,
    cold_start_backoff_max: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    stale_if_error: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_body_bytes: usize,
    token_cache_size: usize,
}

impl JwksVerifierBuilder {
    /// A builder for the key set at `jwks_url`, with the SPEC defaults and no issuer or
    /// audience yet.
    pub fn new(jwks_url: impl Into<String>) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            rules: ClaimRules::default(),
            any_issuer: false,
            any_audience: false,
            min_refetch_interval: defaults::MIN_REFETCH_INTERVAL,
            cold_start_backoff_initial: defaults::COLD_START_BACKOFF_INITIAL,
            cold_start_backoff_max: defaults::COLD_START_BACKOFF_MAX,
            default_ttl: defaults::DEFAULT_TTL,
            min_ttl: defaults::MIN_TTL,
            max_ttl: defaults::MAX_TTL,
            stale_if_error: defaults::STALE_IF_ERROR,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            request_timeout: defaults::REQUEST_TIMEOUT,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            token_cache_size: defaults::TOKEN_CACHE_SIZE,
        }
    }

    /// Better Auth's defaults for a base URL such as `http://127.0.0.1:3001`: the JWKS at
    /// `<url>/api/auth/jwks`, and `iss` and `aud` both equal to the URL (trailing slashes
    /// removed). More issuers or audiences may still be added.
    pub fn from_auth_server_url(auth_server_url: &str) -> Self {
        let base = auth_server_url.trim().trim_end_matches('/');
        Self::new(format!("{base}{BETTER_AUTH_JWKS_PATH}"))
            .issuer(base)
            .audience(base)
    }

    /// Accepts tokens whose `iss` is exactly this (may be called several times).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.rules.issuers.push(iss.into());
        self
    }

    /// Accepts tokens whose `aud` contains exactly this (may be called several times; a token
    /// must match one).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.rules.audiences.push(aud.into());
        self
    }

    /// Waives the issuer check when no issuer is configured: any `iss` (or none) is accepted.
    /// Only for a JWKS that signs for nobody else; prefer [`issuer`](Self::issuer).
    pub fn any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Waives the audience check when no audience is configured: any `aud` (or none) is
    /// accepted. Only for a JWKS that signs for nobody else; prefer [`audience`](Self::audience).
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Adds every audience of a comma-separated list (the `JWT_AUDIENCE` format); blanks are
    /// ignored.
    pub fn audiences_csv(mut self, csv: &str) -> Self {
        self.rules.audiences.extend(
            csv.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = leeway;
        self
    }

    /// Minimum time between two fetches of any kind once a key set is held (default 30 s),
    /// counted from the last attempt, failed ones included. Bounds refetches on unknown
    /// `kid`s. Before the first successful fetch, [`cold_start_backoff`](Self::cold_start_backoff)
    /// applies instead.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Retry backoff while no key set was ever fetched, for example when the auth server
    /// starts a moment after this one (default 0.5 s doubling up to 30 s). After the `n`th
    /// failed attempt in a row, the next one may start `initial × 2ⁿ⁻¹` (at most `max`) after
    /// it: a verification then triggers it (concurrent ones share it), and the background
    /// task makes it by itself. The first successful fetch ends the cold start for good:
    /// from then on [`min_refetch_interval`](Self::min_refetch_interval) applies.
    pub fn cold_start_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.cold_start_backoff_initial = initial;
        self.cold_start_backoff_max = max;
        self
    }

    /// Lifetime of a key set served without `Cache-Control: max-age` (default 10 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Clamp of `Cache-Control: max-age` (default 60 s..24 h).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// How long past expiry the last good key set keeps serving while fetches fail
    /// (default 24 h). After that, verification fails with [`AuthError::KeysUnavailable`].
    pub fn stale_if_error(mut self, limit: Duration) -> Self {
        self.stale_if_error = limit;
        self
    }

    /// Fetch connect timeout (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Fetch total timeout, body included (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Largest accepted response body (default 256 KiB).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Most verified tokens to remember (default 10,000; 0 turns the cache off).
    ///
    /// A token that verified is then accepted on its next presentations without a signature
    /// check, for as long as verification itself would accept it: until its `exp` (plus the
    /// [leeway](Self::leeway)), and only while the key that verified it — the same `kid`,
    /// algorithm and key material — is in the current, usable key set. A refresh that drops or
    /// replaces the key, or a key set past its stale limit, ends that at once. Failed
    /// verifications are never remembered. When full, tokens not presented lately make room
    /// (CLOCK-PRO eviction). An entry takes a few hundred bytes.
    pub fn token_cache_size(mut self, tokens: usize) -> Self {
        self.token_cache_size = tokens;
        self
    }

    /// Builds the verifier. No request is made yet: the first verification (or
    /// [`JwksVerifier::prefetch`]) fetches the keys, and from then on a background task on the
    /// current Tokio runtime keeps them fresh.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad URL, no issuer or audience, inconsistent durations (a zero
    /// duration, a minimum TTL or initial backoff above its maximum), or an unusable HTTP
    /// client or crypto backend.
    pub fn build(self) -> Result<JwksVerifier, ConfigError> {
        backend::ensure()?;
        let url = reqwest::Url::parse(&self.jwks_url).map_err(|e| ConfigError::InvalidUrl {
            url: self.jwks_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::InvalidUrl {
                url: self.jwks_url.clone(),
                reason: "the scheme must be http or https".into(),
            });
        }
        if self.rules.issuers.is_empty() && !self.any_issuer {
            return Err(ConfigError::MissingExpectation("issuer"));
        }
        if self.rules.audiences.is_empty() && !self.any_audience {
            return Err(ConfigError::MissingExpectation("audience"));
        }
        if self.min_ttl > self.max_ttl {
            return Err(ConfigError::InvalidSetting(
                "the minimum TTL exceeds the maximum".into(),
            ));
        }
        if self.cold_start_backoff_initial > self.cold_start_backoff_max {
            return Err(ConfigError::InvalidSetting(
                "the initial cold-start backoff exceeds the maximum".into(),
            ));
        }
        if self.min_refetch_interval.is_zero()
            || self.cold_start_backoff_initial.is_zero()
            || self.default_ttl.is_zero()
            || self.min_ttl.is_zero()
            || self.request_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.max_body_bytes == 0
        {
            return Err(ConfigError::InvalidSetting(
                "durations and limits must be non-zero".into(),
            ));
        }
        let loopback = url.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if url.scheme() == "http" && !loopback {
            tracing::warn!(url = %url, "JWKS fetched over plain http");
        }
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(concat!("taskflow-auth/", env!("CARGO_PKG_VERSION")));
        if loopback {
            client = client.no_proxy();
        }
        let client = client
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Ok(JwksVerifier {
            inner: Arc::new(Inner {
                url,
                client,
                rules: self.rules,
                timing: Timing {
                    min_refetch_interval: self.min_refetch_interval,
                    cold_start_backoff_initial: self.cold_start_backoff_initial,
                    cold_start_backoff_max: self.cold_start_backoff_max,
                    default_ttl: self.default_ttl,
                    min_ttl: self.min_ttl,
                    max_ttl: self.max_ttl,
                    stale_if_error: self.stale_if_error,
                    max_body_bytes: self.max_body_bytes,
                },
                keys: ArcSwapOption::empty(),
                fetch: Mutex::new(FetchState::default()),
                attempts: AtomicU64::new(0),
                background: Mutex::new(None),
                fetch_done: Arc::new(Notify::new()),
                tokens: TokenCache::new(self.token_cache_size),
            }),
        })
    }
}

/// Verifies tokens against a remote JWKS (Better Auth's `/api/auth/jwks`, or any other).
///
/// * Keys are cached for `Cache-Control: max-age` clamped to 60 s..24 h (10 min without it)
///   and refreshed in the background before they expire (at 80 % of their lifetime), on the
///   schedule of the set currently held.
/// * A token with an unknown `kid` triggers a refetch — single-flight, and at most one fetch
///   of any kind per 30 s — so a rotated key is picked up at once and a flood of bogus `kid`s
///   costs at most one request per interval.
/// * Until a first key set has been fetched (cold start, for example an auth server that is
///   not up yet), failed fetches are retried after 0.5 s, doubling up to 30 s, on demand and
///   in the background; see [`JwksVerifierBuilder::cold_start_backoff`].
/// * When fetches fail, the last good key set keeps serving for 24 h past its expiry
///   (stale-if-error); after that, [`AuthError::KeysUnavailable`]. An empty or unparseable
///   response never replaces a good set, and one unusable key never spoils the others.
/// * Fetches time out (2 s connect, 5 s total), cap the body, and never follow redirects.
/// * A cached key costs no I/O: the key set is an `Arc` snapshot read without a lock, and no
///   lock is ever held across an `.await`.
/// * A token that verified is remembered (up to 10,000 tokens, keyed by their SHA-256) and
///   accepted again without a signature check until its `exp` plus leeway, while the key that
///   verified it stays in the usable key set; see [`JwksVerifierBuilder::token_cache_size`].
///
/// Cloning is cheap and shares the cache.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("url", &self.inner.url.as_str())
            .field("issuers", &self.inner.rules.issuers)
            .field("audiences", &self.inner.rules.audiences)
            .finish_non_exhaustive()
    }
}

/// A look at the cache, for health checks and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Usable keys in the current set (0 when none was ever fetched).
    pub key_count: usize,
    /// Time since the current set was fetched.
    pub age: Option<Duration>,
    /// Lifetime given to the current set (after clamping).
    pub ttl: Option<Duration>,
    /// The current set is past its lifetime (served only because refreshes fail).
    pub stale: bool,
    /// Fetch attempts made so far, failed ones included.
    pub fetch_attempts: u64,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<String>,
    /// Tokens in the verified-token cache (expired ones linger until a hit or eviction
    /// drops them).
    pub tokens_cached: usize,
}

impl JwksVerifier {
    /// A builder for the JWKS at `jwks_url`.
    pub fn builder(jwks_url: impl Into<String>) -> JwksVerifierBuilder {
        JwksVerifierBuilder::new(jwks_url)
    }

    /// A verifier with Better Auth's defaults for its base URL (`AUTH_SERVER_URL`): JWKS at
    /// `/api/auth/jwks`, `iss` = `aud` = the URL. See
    /// [`JwksVerifierBuilder::from_auth_server_url`] to adjust anything.
    ///
    /// # Errors
    /// [`ConfigError`] when the URL is not an http(s) URL.
    pub fn from_auth_server_url(auth_server_url: &str) -> Result<Self, ConfigError> {
        JwksVerifierBuilder::from_auth_server_url(auth_server_url).build()
    }

    /// The JWKS URL.
    #[must_use]
    pub fn jwks_url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// Fetches the key set now (joining a fetch already under way, ignoring the refetch
    /// interval), for example at start-up. Returns the number of usable keys.
    ///
    /// # Errors
    /// [`AuthError::KeysUnavailable`] when no usable key set is held afterwards.
    pub async fn prefetch(&self) -> Result<usize, AuthError> {
        if let Some(mut rx) = self.inner.start_fetch(true) {
            let _ = rx.wait_for(|done| *done).await;
        }
        match self.inner.usable(Instant::now()) {
            Some(s) => Ok(s.index.len_with_kid()),
            None => Err(AuthError::KeysUnavailable),
        }
    }

    /// The state of the cache.
    #[must_use]
    pub fn cache_info(&self) -> CacheInfo {
        let now = Instant::now();
        let snap = self.inner.keys.load_full();
        let last_error = lock(&self.inner.fetch).last_error.clone();
        CacheInfo {
            key_count: snap.as_ref().map_or(0, |s| s.index.len_with_kid()),
            age: snap
                .as_ref()
                .map(|s| now.saturating_duration_since(s.fetched_at)),
            ttl: snap
                .as_ref()
                .map(|s| s.fresh_until.saturating_duration_since(s.fetched_at)),
            stale: snap.as_ref().is_some_and(|s| now >= s.fresh_until),
            fetch_attempts: self.inner.attempts.load(Ordering::Relaxed),
            last_error,
            tokens_cached: self.inner.tokens.as_ref().map_or(0, TokenCache::len),
        }
    }
}

#[async_trait]
impl Verifier for JwksVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        let Some((cache, digest)) = TokenCache::with_digest(inner.tokens.as_ref(), token) else {
            return self.verify_uncached(token).await.map(|v| v.principal);
        };
        let now = Instant::now();
        if let Some(snap) = inner.usable(now) {
            if now >= snap.refresh_at {
                drop(inner.start_fetch(false));
            }
            if let Some(principal) = cache.get(&digest, &inner.rules, |key| snap.index.holds(key)) {
                return Ok(principal);
            }
        }
        let verified = self.verify_uncached(token).await?;
        let principal = verified.principal.clone();
        cache.insert(digest, verified);
        Ok(principal)
    }
}

impl JwksVerifier {
    /// Full verification: parse, find the key (fetching on an unknown `kid`), check the
    /// signature and the claims.
    async fn verify_uncached(&self, token: &str) -> Result<Verified, AuthError> {
        let parsed = token::parse(token)?;
        let alg = match parsed.alg {
            HeaderAlg::Asymmetric(alg) => alg,
            // Never HMAC against a key set: that is the public-key-as-secret confusion.
            HeaderAlg::Hs256 => return Err(AuthError::UnsupportedAlgorithm),
        };
        let kid = parsed.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
        let inner = &self.inner;

        // Fast path: a lock-free snapshot read, no I/O.
        let now = Instant::now();
        if let Some(snap) = inner.usable(now) {
            if now >= snap.refresh_at {
                // Due for a refresh: start one (rate limit permitting), don't wait for it.
                drop(inner.start_fetch(false));
            }
            match snap.index.find(kid, alg) {
                Lookup::Found(key) => return verify_with(&parsed, key, &inner.rules),
                Lookup::WrongAlgorithm => return Err(AuthError::AlgorithmMismatch),
                Lookup::NotFound => {}
            }
        }

        // Unknown kid (or no usable set): one shared, rate-limited refetch.
        if let Some(mut rx) = inner.start_fetch(false) {
            let _ = rx.wait_for(|done| *done).await;
        }
        let snap = inner
            .usable(Instant::now())
            .ok_or(AuthError::KeysUnavailable)?;
        match snap.index.find(kid, alg) {
            Lookup::Found(key) => verify_with(&parsed, key, &inner.rules),
            Lookup::WrongAlgorithm => Err(AuthError::AlgorithmMismatch),
            Lookup::NotFound => Err(AuthError::UnknownKey),
        }
    }
}

fn verify_with(
    parsed: &token::Parsed<'_>,
    key: &Arc<VerifyKey>,
    rules: &ClaimRules,
) -> Result<Verified, AuthError> {
    let (principal, validity) = parsed.verify_with(key, rules)?;
    Ok(Verified {
        principal,
        validity,
        key: Arc::clone(key),
    })
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    min_refetch_interval: Duration,
    cold_start_backoff_initial: Duration,
    cold_start_backoff_max: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    stale_if_error: Duration,
    max_body_bytes: usize,
}

struct Snapshot {
    index: KeyIndex,
    fetched_at: Instant,
    fresh_until: Instant,
    refresh_at: Instant,
    usable_until: Instant,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Completion signal of the fetch under way, shared by every waiter.
    inflight: Option<watch::Receiver<bool>>,
    last_error: Option<String>,
    /// Failed attempts in a row while no key set was ever fetched (drives the cold-start
    /// backoff).
    cold_failures: u32,
}

struct Inner {
    url: reqwest::Url,
    client: reqwest::Client,
    rules: ClaimRules,
    timing: Timing,
    keys: ArcSwapOption<Snapshot>,
    /// Never held across an `.await`.
    fetch: Mutex<FetchState>,
    attempts: AtomicU64,
    background: Mutex<Option<AbortHandle>>,
    /// Signalled whenever a fetch ends, so the background task reschedules from the new state.
    fetch_done: Arc<Notify>,
    /// `None` when turned off.
    tokens: Option<TokenCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.background).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Clears the in-flight marker and wakes the waiters when the fetch task ends, even if it is
/// cancelled or panics.
struct InflightGuard {
    inner: Arc<Inner>,
    done: watch::Sender<bool>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.inner.fetch).inflight = None;
        let _ = self.done.send(true);
        self.inner.fetch_done.notify_one();
    }
}

impl Inner {
    /// The current key set, if still usable (fresh or within stale-if-error).
    fn usable(&self, now: Instant) -> Option<Arc<Snapshot>> {
        self.keys.load_full().filter(|s| now < s.usable_until)
    }

    /// The least time between two fetch attempts: the cold-start backoff while no key set was
    /// ever fetched, the refetch interval once one was.
    fn retry_interval(&self, state: &FetchState) -> Duration {
        if self.keys.load().is_some() {
            return self.timing.min_refetch_interval;
        }
        let doublings = state.cold_failures.saturating_sub(1).min(31);
        self.timing
            .cold_start_backoff_initial
            .saturating_mul(1_u32 << doublings)
            .min(self.timing.cold_start_backoff_max)
    }

    /// The earliest time the next attempt may start (now, if none was made yet).
    fn earliest_attempt(&self, state: &FetchState, now: Instant) -> Instant {
        state
            .last_attempt
            .map_or(now, |t| t + self.retry_interval(state))
    }

    /// Joins the fetch under way, or starts one unless the last attempt was less than the
    /// retry interval ago (`force` skips that check). `None`: rate-limited (or no runtime).
    fn start_fetch(self: &Arc<Self>, force: bool) -> Option<watch::Receiver<bool>> {
        let mut state = lock(&self.fetch);
        if let Some(rx) = &state.inflight {
            return Some(rx.clone());
        }
        let now = Instant::now();
        if !force && now < self.earliest_attempt(&state, now) {
            return None;
        }
        let Ok(handle) = Handle::try_current() else {
            tracing::warn!("JWKS fetch needs a Tokio runtime");
            return None;
        };
        state.last_attempt = Some(now);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        state.inflight = Some(rx.clone());
        drop(state);

        let guard = InflightGuard {
            inner: Arc::clone(self),
            done: tx,
        };
        // A task of its own: a cancelled request cannot strand the other waiters.
        handle.spawn(async move {
            let result = guard.inner.fetch_once().await;
            guard.inner.apply(result);
            drop(guard);
        });
        self.ensure_background(&handle);
        Some(rx)
    }

    fn ensure_background(self: &Arc<Self>, handle: &Handle) {
        let mut task = lock(&self.background);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(self);
        let fetch_done = Arc::clone(&self.fetch_done);
        *task = Some(
            handle
                .spawn(background_refresh(weak, fetch_done))
                .abort_handle(),
        );
    }

    /// When the background task should next fetch, judged from the current state: the
    /// refresh point of the current set (with no set yet: at once), but never before the
    /// retry interval has passed since the last attempt.
    fn next_fetch_due(&self, now: Instant) -> Instant {
        let state = lock(&self.fetch);
        let earliest = self.earliest_attempt(&state, now);
        match self.keys.load().as_ref() {
            Some(snap) => snap.refresh_at.max(earliest),
            None => earliest,
        }
    }

    fn apply(&self, result: Result<(KeyIndex, Duration), String>) {
        metrics::counter!(FETCHES_METRIC).increment(1);
        if result.is_err() {
            metrics::counter!(FETCH_FAILURES_METRIC).increment(1);
        }
        match result {
            Ok((index, ttl)) => {
                let now = Instant::now();
                let fresh_until = now + ttl;
                tracing::debug!(url = %self.url, keys = index.len_with_kid(), ttl_secs = ttl.as_secs_f64(), "JWKS refreshed");
                self.keys.store(Some(Arc::new(Snapshot {
                    index,
                    fetched_at: now,
                    fresh_until,
                    refresh_at: now + ttl.mul_f64(REFRESH_AT_FRACTION),
                    usable_until: fresh_until + self.timing.stale_if_error,
                })));
                let mut state = lock(&self.fetch);
                state.last_error = None;
                state.cold_failures = 0;
            }
            Err(error) => {
                let cold_retry_in = {
                    let mut state = lock(&self.fetch);
                    let cold = self.keys.load().is_none();
                    if cold {
                        state.cold_failures = state.cold_failures.saturating_add(1);
                    }
                    let retry_in = cold.then(|| self.retry_interval(&state));
                    state.last_error = Some(error.clone());
                    retry_in
                };
                match cold_retry_in {
                    Some(retry_in) => {
                        tracing::warn!(url = %self.url, error = %error, retry_in_secs = retry_in.as_secs_f64(), "JWKS fetch failed and no key set is held yet");
                    }
                    None => {
                        tracing::warn!(url = %self.url, error = %error, "JWKS fetch failed; keeping the previous key set");
                    }
                }
            }
        }
    }

    async fn fetch_once(&self) -> Result<(KeyIndex, Duration), String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!("HTTP {status} (redirects are not followed)"));
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        let cap = self.timing.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(format!("body over {cap} bytes"));
        }
        let max_age = max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(format!("body over {cap} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "response is not JSON".to_owned())?;
        let index = KeyIndex::from_jwks(&doc, self.url.as_str())?;
        if index.len_with_kid() == 0 {
            return Err("the key set has no usable key with a kid".to_owned());
        }
        if index.len() > index.len_with_kid() {
            tracing::warn!(url = %self.url, "JWKS keys without a kid are ignored (tokens must name their key)");
        }
        let ttl = match max_age {
            Some(age) => age.clamp(self.timing.min_ttl, self.timing.max_ttl),
            None => self.timing.default_ttl,
        };
        Ok((index, ttl))
    }
}

/// Keeps the key set fresh (and, on a cold start, retries until there is one).
///
/// Every decision is taken from the state at that moment: a fetch starts only when
/// [`Inner::next_fetch_due`] says one is due now. Otherwise the task sleeps until then, or until
/// any fetch ends (`fetch_done`), since a new key set or failure moves the schedule. Holds the
/// verifier only weakly, and never across an `.await`.
async fn background_refresh(weak: Weak<Inner>, fetch_done: Arc<Notify>) {
    loop {
        let now = Instant::now();
        let (due, fetch) = {
            let Some(inner) = weak.upgrade() else { return };
            let due = inner.next_fetch_due(now);
            (due, (due <= now).then(|| inner.start_fetch(false)))
        };
        match fetch {
            Some(Some(mut rx)) => {
                let _ = rx.wait_for(|done| *done).await;
            }
            // Refused after all (the state moved in between): look again shortly, never spin.
            Some(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            None => {
                let _ = tokio::time::timeout_at(due.into(), fetch_done.notified()).await;
            }
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        e.to_string()
    }
}

/// `Cache-Control: max-age=N` (`no-store`/`no-cache` count as 0, then clamped up).
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                found = Some(Duration::from_secs(secs));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(
            max_age(&headers("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age(&headers("MAX-AGE=\"7\"")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(max_age(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(&headers("max-age=abc")), None);
        assert_eq!(max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn builder_requires_issuer_and_audience() {
        let e = JwksVerifier::builder("https://auth.example/jwks")
            .audience("a")
            .build();
        assert!(matches!(e, Err(ConfigError::MissingExpectation("issuer"))));
        let e = JwksVerifier::builder("https://auth.example/jwks")
            .issuer("i")
            .build();
        assert!(matches!(
            e,
            Err(ConfigError::MissingExpectation("audience"))
        ));
        let e = JwksVerifier::builder("ftp://auth.example/jwks")
            .issuer("i")
            .audience("a")
            .build();
        assert!(matches!(e, Err(ConfigError::InvalidUrl { .. })));
        let waived = JwksVerifier::builder("https://auth.example/jwks")
            .any_issuer()
            .any_audience()
            .build();
        assert!(waived.is_ok(), "explicit waivers build");
    }

    #[test]
    fn https_verifier_builds_with_tls() {
        let v = JwksVerifier::from_auth_server_url("https://auth.example.com/").unwrap();
        assert_eq!(v.jwks_url(), "https://auth.example.com/api/auth/jwks");
        assert_eq!(v.cache_info().key_count, 0);
        assert_eq!(v.cache_info().fetch_attempts, 0);
    }

    #[test]
    fn refresh_is_scheduled_before_expiry_and_stale_window_after() {
        let v = JwksVerifier::builder("https://auth.example.com/jwks")
            .issuer("i")
            .audience("a")
            .stale_if_error(Duration::from_secs(3600))
            .build()
            .unwrap();
        v.inner
            .apply(Ok((KeyIndex::default(), Duration::from_secs(600))));
        let snap = v.inner.keys.load_full().unwrap();
        assert_eq!(snap.fresh_until - snap.fetched_at, Duration::from_secs(600));
        assert_eq!(snap.refresh_at - snap.fetched_at, Duration::from_secs(480));
        assert_eq!(
            snap.usable_until - snap.fresh_until,
            Duration::from_secs(3600)
        );
        // A failed fetch keeps the set and records why.
        v.inner.apply(Err("HTTP 500".into()));
        assert!(Arc::ptr_eq(&snap, &v.inner.keys.load_full().unwrap()));
        assert_eq!(v.cache_info().last_error.as_deref(), Some("HTTP 500"));
    }

    #[test]
    fn cold_start_backoff_doubles_up_to_its_cap_then_gives_way_to_the_refetch_interval() {
        let v = JwksVerifier::builder("https://auth.example.com/jwks")
            .issuer("i")
            .audience("a")
            .build()
            .unwrap();
        let expected_ms = [500, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
        for (failures, ms) in (0..).zip(expected_ms).chain([(u32::MAX, 30_000)]) {
            let state = FetchState {
                cold_failures: failures,
                ..FetchState::default()
            };
            assert_eq!(
                v.inner.retry_interval(&state),
                Duration::from_millis(ms),
                "{failures} failures"
            );
        }
        // Failures while no set is held count; the first good set ends the cold start.
        v.inner.apply(Err("HTTP 503".into()));
        v.inner.apply(Err("HTTP 503".into()));
        assert_eq!(lock(&v.inner.fetch).cold_failures, 2);
        v.inner
            .apply(Ok((KeyIndex::default(), Duration::from_secs(600))));
        v.inner.apply(Err("HTTP 503".into()));
        let state = lock(&v.inner.fetch);
        assert_eq!(state.cold_failures, 0);
        assert_eq!(v.inner.retry_interval(&state), Duration::from_secs(30));
    }

    #[test]
    fn cold_start_backoff_is_validated() {
        let b = JwksVerifier::builder("https://auth.example.com/jwks")
            .issuer("i")
            .audience("a");
        let (short, long) = (Duration::from_millis(100), Duration::from_secs(1));
        assert!(matches!(
            b.clone().cold_start_backoff(long, short).build(),
            Err(ConfigError::InvalidSetting(_))
        ));
        assert!(matches!(
            b.clone().cold_start_backoff(Duration::ZERO, long).build(),
            Err(ConfigError::InvalidSetting(_))
        ));
        assert!(b.cold_start_backoff(short, short).build().is_ok());
    }

    #[test]
    fn the_background_schedule_follows_the_current_set() {
        let v = JwksVerifier::builder("https://auth.example.com/jwks")
            .issuer("i")
            .audience("a")
            .build()
            .unwrap();
        let now = Instant::now();
        // No set and no attempt yet: due at once.
        assert_eq!(v.inner.next_fetch_due(now), now);
        // An attempt just failed: due after the cold-start backoff, not the refetch interval.
        lock(&v.inner.fetch).last_attempt = Some(now);
        v.inner.apply(Err("HTTP 503".into()));
        assert_eq!(
            v.inner.next_fetch_due(now),
            now + Duration::from_millis(500)
        );
        // A short-lived set, then a 10-minute one: the schedule is the newest set's.
        v.inner
            .apply(Ok((KeyIndex::default(), Duration::from_secs(60))));
        let first = v.inner.keys.load_full().unwrap();
        assert_eq!(v.inner.next_fetch_due(now), first.refresh_at);
        v.inner
            .apply(Ok((KeyIndex::default(), Duration::from_secs(600))));
        let second = v.inner.keys.load_full().unwrap();
        assert_eq!(
            v.inner.next_fetch_due(now),
            second.fetched_at + Duration::from_secs(480)
        );
    }

    #[test]
    fn better_auth_defaults() {
        let b = JwksVerifierBuilder::from_auth_server_url("http://127.0.0.1:3001/");
        assert_eq!(b.jwks_url, "http://127.0.0.1:3001/api/auth/jwks");
        assert_eq!(b.rules.issuers, ["http://127.0.0.1:3001"]);
        assert_eq!(b.rules.audiences, ["http://127.0.0.1:3001"]);
        assert_eq!(b.min_refetch_interval, Duration::from_secs(30));
        assert_eq!(
            (b.cold_start_backoff_initial, b.cold_start_backoff_max),
            (Duration::from_millis(500), Duration::from_secs(30))
        );
        assert_eq!(b.default_ttl, Duration::from_secs(600));
        assert_eq!(
            (b.min_ttl, b.max_ttl),
            (Duration::from_secs(60), Duration::from_secs(86_400))
        );
        assert_eq!(b.stale_if_error, Duration::from_secs(86_400));
        assert_eq!(
            (b.connect_timeout, b.request_timeout),
            (Duration::from_secs(2), Duration::from_secs(5))
        );
        assert_eq!(b.rules.leeway, Duration::from_secs(30));
        assert_eq!(b.token_cache_size, 10_000);
        let b = JwksVerifierBuilder::new("x").audiences_csv(" a, b ,,c");
        assert_eq!(b.rules.audiences, ["a", "b", "c"]);
    }
}
