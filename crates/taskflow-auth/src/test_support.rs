//! Test support (feature `test-support`): a real loopback JWKS server with controllable
//! responses, and generated keys that mint tokens with every supported algorithm.
//!
//! ```
//! use taskflow_auth::test_support::{JwksServer, TestKeys};
//! use taskflow_auth::{Algorithm, JwksVerifier, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = TestKeys::generate();                 // one key per algorithm
//! let server = JwksServer::start(keys.jwks()).await; // http://127.0.0.1:<port>/api/auth/jwks
//! let verifier = JwksVerifier::from_auth_server_url(&server.base_url()).unwrap();
//!
//! // iss = aud = the server's base URL, as Better Auth does.
//! let token = keys.mint(Algorithm::EdDSA, &server.claims("user-1").role("admin"));
//! let principal = verifier.verify(&token).await.unwrap();
//! assert_eq!((principal.id.as_str(), principal.role.as_str()), ("user-1", "admin"));
//! assert_eq!(server.fetch_count(), 1);
//! # }
//! ```
//!
//! The helpers panic on failure (a failed key generation or bind is a broken test
//! environment, not a case to handle).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::EncodingKey;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::{Algorithm, BETTER_AUTH_JWKS_PATH, JwksVerifierBuilder, TokenClaims};

/// A generated key pair that verifies (and here, signs) exactly one algorithm.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// RSA key material shared by the RS*/PS* keys of one [`TestKeys`] (key generation is the
/// slow part).
struct RsaMaterial {
    private_pem: String,
    n: String,
    e: String,
    public_pem: String,
}

fn generate_rsa() -> RsaMaterial {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
    let pkcs8 = pair.as_der().expect("RSA private key export");
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let spki = pair.public_key().as_der().expect("RSA public key export");
    RsaMaterial {
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        n: URL_SAFE_NO_PAD.encode(&public.n),
        e: URL_SAFE_NO_PAD.encode(&public.e),
        public_pem: pem("PUBLIC KEY", spki.as_ref()),
    }
}

impl TestKey {
    /// Generates a key for `alg` with this `kid` (RSA keys are 2048-bit).
    ///
    /// # Panics
    /// If key generation fails.
    #[must_use]
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Self {
        let rsa = matches!(alg.family(), crate::alg::Family::Rsa).then(generate_rsa);
        Self::build(alg, kid.into(), rsa.as_ref())
    }

    fn build(alg: Algorithm, kid: String, rsa: Option<&RsaMaterial>) -> Self {
        let (encoding, mut jwk, public_pem) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().expect("Ed25519 key generation");
                let pkcs8 = pair.to_pkcs8v1().expect("Ed25519 export");
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let spki = pair.public_key().as_der().expect("Ed25519 public export");
                (
                    EncodingKey::from_ed_der(pkcs8.as_ref()),
                    json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
                    pem("PUBLIC KEY", spki.as_ref()),
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, len) = if alg == Algorithm::ES256 {
                    (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::generate(signing).expect("EC key generation");
                let pkcs8 = pair.to_pkcs8v1().expect("EC export");
                let point = pair.public_key().as_ref();
                let spki = pair.public_key().as_der().expect("EC public export");
                (
                    EncodingKey::from_ec_der(pkcs8.as_ref()),
                    json!({
                        "kty": "EC", "crv": crv,
                        "x": URL_SAFE_NO_PAD.encode(&point[1..=len]),
                        "y": URL_SAFE_NO_PAD.encode(&point[1 + len..]),
                    }),
                    pem("PUBLIC KEY", spki.as_ref()),
                )
            }
            _ => {
                let owned;
                let rsa = match rsa {
                    Some(r) => r,
                    None => {
                        owned = generate_rsa();
                        &owned
                    }
                };
                (
                    EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).expect("RSA key import"),
                    json!({ "kty": "RSA", "n": rsa.n, "e": rsa.e }),
                    rsa.public_pem.clone(),
                )
            }
        };
        jwk["kid"] = Value::String(kid.clone());
        jwk["alg"] = Value::String(alg.name().to_owned());
        Self {
            kid,
            alg,
            encoding,
            jwk,
            public_pem,
        }
    }

    /// The `kid`.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK, as Better Auth publishes it (`kty`, `crv`/`x`/`y` or `n`/`e`, `alg`,
    /// `kid`, no `use`). Edit a copy to test odd keys.
    #[must_use]
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// The public key as a `PUBLIC KEY` (SPKI) PEM.
    #[must_use]
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The header Better Auth writes: `{"alg", "kid"}`, no `typ`.
    #[must_use]
    pub fn header(&self) -> Value {
        json!({ "alg": self.alg.name(), "kid": self.kid })
    }

    /// Mints a token with [`header`](Self::header) and `claims`.
    ///
    /// # Panics
    /// If signing fails.
    #[must_use]
    pub fn mint(&self, claims: &TokenClaims) -> String {
        self.mint_with_header(&self.header(), claims)
    }

    /// Mints a token with any header (written as given — a wrong `alg`, no `kid`, a `typ`…)
    /// and any claims, signed by this key with its own algorithm.
    ///
    /// # Panics
    /// If signing fails.
    #[must_use]
    pub fn mint_with_header(&self, header: &Value, claims: &impl Serialize) -> String {
        crate::sign::sign_compact(header, claims, &self.encoding, self.alg.to_jwt())
            .expect("signing a test token")
    }
}

/// A JWKS document (`{"keys": [...]}`) of these keys' public JWKs.
#[must_use]
pub fn jwks_of<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> Value {
    json!({ "keys": keys.into_iter().map(TestKey::jwk).collect::<Vec<_>>() })
}

/// One [`TestKey`] per supported algorithm, with `kid`s `test-eddsa`, `test-es256`, …
/// (the RSA keys share one 2048-bit modulus).
#[derive(Debug, Clone)]
pub struct TestKeys {
    keys: Vec<TestKey>,
}

impl TestKeys {
    /// Generates the keys.
    ///
    /// # Panics
    /// If key generation fails.
    #[must_use]
    pub fn generate() -> Self {
        let rsa = generate_rsa();
        let keys = Algorithm::ALL
            .into_iter()
            .map(|alg| {
                TestKey::build(
                    alg,
                    format!("test-{}", alg.name().to_lowercase()),
                    Some(&rsa),
                )
            })
            .collect();
        Self { keys }
    }

    /// The key for `alg`.
    ///
    /// # Panics
    /// Never for a supported algorithm.
    #[must_use]
    pub fn key(&self, alg: Algorithm) -> &TestKey {
        self.keys
            .iter()
            .find(|k| k.alg == alg)
            .expect("a key for every algorithm")
    }

    /// The JWKS of all the keys.
    #[must_use]
    pub fn jwks(&self) -> Value {
        jwks_of(&self.keys)
    }

    /// Mints a token with the key for `alg`.
    #[must_use]
    pub fn mint(&self, alg: Algorithm, claims: &TokenClaims) -> String {
        self.key(alg).mint(claims)
    }
}

/// What the [`JwksServer`] answers on its JWKS path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksResponse {
    /// `200` with the current key set (the default).
    Keys,
    /// This status with an empty body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// `200` with this body (garbage, an empty set…).
    Body(String),
    /// `302` to this location.
    Redirect(String),
}

struct ServerState {
    jwks: String,
    response: JwksResponse,
    max_age: Option<u64>,
    delay: Duration,
}

struct Shared {
    state: Mutex<ServerState>,
    fetches: AtomicUsize,
}

/// A real HTTP/1.1 JWKS server on `127.0.0.1:<random port>`, serving
/// [`BETTER_AUTH_JWKS_PATH`] (`/api/auth/jwks`) like Better Auth (no `Cache-Control` unless
/// set). Stops when dropped.
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Starts serving `jwks` (a JWKS document) on the current Tokio runtime.
    ///
    /// # Panics
    /// If binding a loopback port fails.
    pub async fn start(jwks: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(ServerState {
                jwks: jwks.to_string(),
                response: JwksResponse::Keys,
                max_age: None,
                delay: Duration::ZERO,
            }),
            fetches: AtomicUsize::new(0),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`: use it as the Better Auth base URL (`AUTH_SERVER_URL`).
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL: `<base_url>/api/auth/jwks`.
    #[must_use]
    pub fn jwks_url(&self) -> String {
        format!("{}{BETTER_AUTH_JWKS_PATH}", self.base_url())
    }

    /// Claims for `sub` with `iss` = `aud` = [`base_url`](Self::base_url), expiring in
    /// 15 minutes: what Better Auth would issue.
    #[must_use]
    pub fn claims(&self, sub: impl Into<String>) -> TokenClaims {
        TokenClaims::new(sub)
            .issuer(self.base_url())
            .audience(self.base_url())
    }

    /// A verifier builder with Better Auth's defaults for this server; shrink its durations
    /// in tests.
    pub fn verifier_builder(&self) -> JwksVerifierBuilder {
        JwksVerifierBuilder::from_auth_server_url(&self.base_url())
    }

    fn with_state(&self, f: impl FnOnce(&mut ServerState)) {
        f(&mut self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner));
    }

    /// Serves this key set from now on (key rotation), and switches back to
    /// [`JwksResponse::Keys`].
    pub fn set_jwks(&self, jwks: Value) {
        self.with_state(|s| {
            s.jwks = jwks.to_string();
            s.response = JwksResponse::Keys;
        });
    }

    /// Answers this way from now on.
    pub fn set_response(&self, response: JwksResponse) {
        self.with_state(|s| s.response = response);
    }

    /// Sends `Cache-Control: max-age=<secs>` (or nothing) with the keys.
    pub fn set_max_age(&self, secs: Option<u64>) {
        self.with_state(|s| s.max_age = secs);
    }

    /// Waits this long before answering each JWKS request.
    pub fn set_delay(&self, delay: Duration) {
        self.with_state(|s| s.delay = delay);
    }

    /// JWKS requests received so far (counted on arrival, hung ones included).
    #[must_use]
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` JWKS requests have arrived, polling every 10 ms for at
    /// most `limit`. Returns whether they did.
    pub async fn wait_for_fetches(&self, count: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.fetch_count() >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping (aborting) this task drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != BETTER_AUTH_JWKS_PATH {
        return Ok(status(StatusCode::NOT_FOUND));
    }
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let (response, jwks, max_age, delay) = {
        let s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        (s.response.clone(), s.jwks.clone(), s.max_age, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = match response {
        JwksResponse::Keys => jwks,
        JwksResponse::Body(body) => body,
        JwksResponse::Status(code) => {
            return Ok(status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ));
        }
        JwksResponse::Hang => std::future::pending().await,
        JwksResponse::Redirect(location) => {
            let mut r = status(StatusCode::FOUND);
            if let Ok(v) = location.parse() {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return Ok(r);
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = max_age
        && let Ok(v) = format!("public, max-age={secs}").parse()
    {
        r.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    Ok(r)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}
