//! `Idempotency-Key` on every write (POST, PUT, PATCH, DELETE under `/api`): a retried request
//! never acts twice. The HTTP side of [`taskflow_core::idempotency`].
//!
//! [`Fingerprints`] digests each write that carries the header (its method, path, query and
//! body bytes) before any handler runs; the handler reads the digest with [`RequestFingerprint`]
//! and the key from its `Idempotency-Key` header parameter (so the header is documented on every
//! write), and runs its command with `TaskFlow::execute_once`. A replayed answer carries
//! `Idempotent-Replayed: true`.

use poem::http::Method;
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use taskflow_core::idempotency::{IdempotencyKey, Idempotent, fingerprint};

/// The header a replayed answer carries, with the value `true`.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// The request header that names a write.
pub const KEY_HEADER: &str = "Idempotency-Key";

/// A write request's `Idempotency-Key` exactly as sent (an empty value included), and the
/// digest of the request: method, path, query and body bytes. Both absent on reads and on
/// writes without the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint {
    key: Option<Vec<u8>>,
    digest: Option<String>,
}

impl<'a> FromRequest<'a> for RequestFingerprint {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(RequestFingerprint {
            key: req.headers().get(KEY_HEADER).map(|v| v.as_bytes().to_vec()),
            digest: req.extensions().get::<Digest>().map(|d| d.0.clone()),
        })
    }
}

impl RequestFingerprint {
    /// The idempotency of this request: `None` without the header; a 422 for a key that is not
    /// 1 to 255 visible ASCII characters, an empty one included (checked in the handler, after
    /// authentication, so that 401 comes first).
    pub fn idempotent(&self) -> Result<Option<Idempotent>, taskflow_core::Error> {
        let Some(raw) = &self.key else {
            return Ok(None);
        };
        let key = IdempotencyKey::new(String::from_utf8_lossy(raw).into_owned())?;
        Ok(Some(Idempotent {
            key,
            fingerprint: self.digest.clone().unwrap_or_default(),
        }))
    }
}

#[derive(Debug, Clone)]
struct Digest(String);

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Digests every write under `/api` that carries `Idempotency-Key`. Placed inside
/// [`crate::body::BodyLimit`], which has already read the body (at most 64 KiB) into memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fingerprints;

impl<E: Endpoint> Middleware<E> for Fingerprints {
    type Output = FingerprintsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        FingerprintsEndpoint(ep)
    }
}

/// The endpoint [`Fingerprints`] wraps.
#[derive(Debug)]
pub struct FingerprintsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for FingerprintsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let named = req.headers().contains_key(KEY_HEADER);
        if named && is_write(req.method()) && req.uri().path().starts_with("/api/") {
            let body = req.take_body().into_bytes().await?;
            let digest = fingerprint(&[
                req.method().as_str().as_bytes(),
                req.uri().path().as_bytes(),
                req.uri().query().unwrap_or_default().as_bytes(),
                &body,
            ]);
            req.extensions_mut().insert(Digest(digest));
            req.set_body(body);
        }
        self.0.call(req).await.map(IntoResponse::into_response)
    }
}
