//! The board: one page at `/board` (and `/`, which redirects to it) showing the tasks in a
//! column per status, live from `/api/events`, with buttons for the lifecycle actions.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary: no build step, no CDN,
//! nothing fetched from elsewhere, so it works offline. It is a client of the public API like
//! any other: it signs in with a pasted bearer token and calls `/api/...`. It is served beside
//! the OpenAPI service, not in the OpenAPI document.

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Redirect;
use poem::{Endpoint, IntoResponse, Request, Response, Route, get};

/// Scripts, styles and connections only from this server; nothing else at all.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file, served with its type, a strong ETag (a hash of its bytes, so a new build
/// with new assets is fetched again) and `no-cache` (revalidate every time: the page is small,
/// and a stale script against a newer API is worse than one round trip).
#[derive(Debug, Clone, Copy)]
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Asset {
            body,
            content_type,
            etag: fnv1a(body.as_bytes()),
        }
    }
}

const INDEX: Asset = Asset::new(
    include_str!("../assets/board/index.html"),
    "text/html; charset=utf-8",
);
const SCRIPT: Asset = Asset::new(
    include_str!("../assets/board/board.js"),
    "text/javascript; charset=utf-8",
);
const STYLE: Asset = Asset::new(
    include_str!("../assets/board/board.css"),
    "text/css; charset=utf-8",
);

/// FNV-1a (64 bit), at compile time: enough to tell two versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

impl Endpoint for Asset {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let etag = format!("\"{:016x}\"", self.etag);
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
            });
        let builder = Response::builder()
            .header(header::ETAG, etag)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer");
        if fresh {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }
        Ok(builder
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )
            .body(self.body))
    }
}

/// `/board`'s routes, to nest at `/board`: the page and its two assets (GET and HEAD).
pub(crate) fn routes() -> Route {
    Route::new()
        .at("/", get(INDEX))
        .at("/board.js", get(SCRIPT))
        .at("/board.css", get(STYLE))
}

/// Around the app's routes: `GET /` (and `HEAD /`) redirects to the board. A route at `/`
/// would never be reached: poem sends `/` to the OpenAPI service, which is nested at `/`.
pub(crate) async fn redirect_home<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    if req.uri().path() == "/" && (req.method() == Method::GET || req.method() == Method::HEAD) {
        return Ok(Redirect::temporary("/board").into_response());
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use poem::EndpointExt;
    use poem::test::TestClient;

    use super::*;

    fn client() -> TestClient<impl Endpoint> {
        #[poem::handler]
        fn api() -> &'static str {
            "api"
        }
        TestClient::new(
            Route::new()
                .nest("/board", routes())
                .nest("/", api)
                .around(redirect_home),
        )
    }

    #[tokio::test]
    async fn assets_have_their_types_and_a_strict_policy() {
        let cli = client();
        for (path, kind, needle) in [
            ("/board", "text/html; charset=utf-8", "<!doctype html>"),
            (
                "/board/board.js",
                "text/javascript; charset=utf-8",
                "use strict",
            ),
            ("/board/board.css", "text/css; charset=utf-8", "--"),
        ] {
            let resp = cli.get(path).send().await;
            resp.assert_status_is_ok();
            resp.assert_content_type(kind);
            resp.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
            resp.assert_header(header::CACHE_CONTROL, "no-cache");
            let body = resp.0.into_body().into_string().await.expect("a body");
            assert!(body.contains(needle), "{path}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_is_304() {
        let cli = client();
        let resp = cli.get("/board/board.js").send().await;
        let etag = resp.0.headers().get(header::ETAG).expect("an ETag").clone();
        let again = cli
            .get("/board/board.js")
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await;
        again.assert_status(StatusCode::NOT_MODIFIED);
        let other = cli
            .get("/board/board.js")
            .header(header::IF_NONE_MATCH, "\"0\"")
            .send()
            .await;
        other.assert_status_is_ok();
    }

    #[tokio::test]
    async fn home_redirects_to_the_board() {
        let cli = client();
        let resp = cli.get("/").send().await;
        resp.assert_status(StatusCode::TEMPORARY_REDIRECT);
        resp.assert_header(header::LOCATION, "/board");
        // Other paths and other methods on `/` are the routes' business.
        cli.post("/").send().await.assert_text("api").await;
        cli.get("/elsewhere").send().await.assert_text("api").await;
    }

    #[test]
    fn different_files_have_different_tags() {
        assert_ne!(INDEX.etag, SCRIPT.etag);
        assert_ne!(SCRIPT.etag, STYLE.etag);
    }
}
