//! CORS for cross-origin callers only: a request from the server's own origin (the board) is
//! not a CORS request and passes untouched.
//!
//! poem's [`Cors`] takes every request that carries an `Origin` header for a cross-origin one
//! and refuses (403) an origin that is not on its list. Browsers send `Origin` on same-origin
//! writes too: the board at `http://127.0.0.1:8000/board` posting to `/api/tasks` sends
//! `Origin: http://127.0.0.1:8000`, so its writes were refused unless the server's own address
//! was listed in `ALLOWED_ORIGINS`. [`SameOriginOrCors`] hands a request to the inner endpoint
//! directly when its `Origin` is the request's own scheme and `Host` (the page came from this
//! server), and every other request to [`Cors`], whose rules are unchanged.
//!
//! Behind a proxy that changes the scheme or the `Host` header (TLS termination, say), the
//! public origin does not match what the server sees: list it in `ALLOWED_ORIGINS`.

use std::sync::Arc;

use poem::http::header;
use poem::middleware::{Cors, CorsEndpoint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// [`Cors`] for every request except same-origin ones (see the module docs).
pub(crate) struct SameOriginOrCors(pub(crate) Cors);

impl<E: Endpoint> Middleware<E> for SameOriginOrCors {
    type Output = SameOriginOrCorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let inner = Arc::new(ep);
        SameOriginOrCorsEndpoint {
            cors: self.0.transform(Arc::clone(&inner)),
            inner,
        }
    }
}

/// The endpoint of [`SameOriginOrCors`].
pub(crate) struct SameOriginOrCorsEndpoint<E> {
    cors: CorsEndpoint<Arc<E>>,
    inner: Arc<E>,
}

impl<E: Endpoint> Endpoint for SameOriginOrCorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if is_same_origin(&req) {
            // Same-origin responses need no CORS headers: the browser reads them anyway.
            self.inner.call(req).await.map(IntoResponse::into_response)
        } else {
            self.cors.call(req).await
        }
    }
}

/// Whether the request's `Origin` is its own scheme and host (`Host`, or the URI's authority
/// in HTTP/2), with default ports ignored and names compared without regard to case.
fn is_same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host else {
        return false;
    };
    let scheme = req.scheme().as_str();
    let Some((origin_scheme, origin_host)) = origin.split_once("://") else {
        // `null` (a sandboxed or file page) and anything else malformed.
        return false;
    };
    origin_scheme.eq_ignore_ascii_case(scheme)
        && without_default_port(scheme, origin_host)
            .eq_ignore_ascii_case(without_default_port(scheme, host))
}

/// `host` without the scheme's default port (`:80` for http, `:443` for https).
fn without_default_port<'a>(scheme: &str, host: &'a str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return host,
    };
    host.strip_suffix(default).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use poem::http::{Method, StatusCode};
    use poem::test::TestClient;
    use poem::{EndpointExt, handler};

    use super::*;

    #[handler]
    fn ok() -> &'static str {
        "ok"
    }

    fn client() -> TestClient<impl Endpoint> {
        let cors = Cors::new()
            .allow_origin("http://localhost:3000")
            .allow_methods([Method::GET, Method::POST]);
        TestClient::new(ok.with(SameOriginOrCors(cors)))
    }

    #[tokio::test]
    async fn a_same_origin_request_passes_without_cors_headers() {
        let cli = client();
        for (origin, host) in [
            ("http://127.0.0.1:8000", "127.0.0.1:8000"),
            ("http://Board.Example", "board.example"),
            ("http://board.example", "board.example:80"),
        ] {
            let resp = cli
                .post("/")
                .header("Origin", origin)
                .header("Host", host)
                .send()
                .await;
            resp.assert_status_is_ok();
            resp.assert_header_is_not_exist(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        }
    }

    #[tokio::test]
    async fn other_origins_still_go_through_cors() {
        let cli = client();
        // Not on the list: refused, as before.
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:8000"),
            ("http://127.0.0.1:8001", "127.0.0.1:8000"),
            ("https://127.0.0.1:8000", "127.0.0.1:8000"),
            ("null", "127.0.0.1:8000"),
        ] {
            let resp = cli
                .post("/")
                .header("Origin", origin)
                .header("Host", host)
                .send()
                .await;
            resp.assert_status(StatusCode::FORBIDDEN);
        }
        // On the list: answered with CORS headers, as before.
        let resp = cli
            .post("/")
            .header("Origin", "http://localhost:3000")
            .header("Host", "127.0.0.1:8000")
            .send()
            .await;
        resp.assert_status_is_ok();
        resp.assert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "http://localhost:3000");
        // No Origin at all: not a browser's cross-origin request.
        cli.post("/").send().await.assert_status_is_ok();
    }
}
