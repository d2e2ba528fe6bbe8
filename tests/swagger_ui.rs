//! Swagger UI in a real browser: headless Chromium, driven through ChromeDriver's W3C WebDriver
//! HTTP API, loads `/docs`, renders the API, and opens the Authorize dialog for the bearer
//! scheme; a pasted token puts the page in the authorized state. "Try it out" on `GET /api/me`
//! then sends that token from the page, and the page shows the server's 200 and the token's
//! subject. A screenshot of the end state goes to `$CARGO_TARGET_TMPDIR/swagger_ui.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says loudly that it was skipped; under `CI=true` that is a failure.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

/// How long to wait for the page to render an element before giving up.
const RENDER_WAIT: Duration = Duration::from_secs(45);

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// The web element identifier: the key under which W3C WebDriver answers carry an element
/// reference (WebDriver spec, "Elements").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error answer: an HTTP error status with `value.error` and `value.message`.
#[derive(Debug)]
struct WebDriverError {
    status: u16,
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}: {}", self.status, self.error, self.message)
    }
}

/// A WebDriver session on a ChromeDriver process that is killed on drop. A session that was
/// not quit (the test failed) is deleted first, so that ChromeDriver closes Chromium.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    /// ChromeDriver's `127.0.0.1:PORT`.
    driver_addr: String,
    /// `/session/ID`.
    session_path: String,
    quit: bool,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver: PathBuf, chromium: PathBuf) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("a JSON answer");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver_addr: format!("127.0.0.1:{port}"),
            session_path: format!("/session/{session}"),
            quit: false,
            _driver: driver,
            _profile: profile,
        }
    }

    /// One WebDriver command on the session; a W3C error answer (an error status or a
    /// `value.error`) is an `Err`.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not answer {method} {path}: {e}"));
        let status = resp.status();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("no body in the answer to {method} {path}: {e}"));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not a JSON answer ({e}): {text}"));
        let value = v.get("value").cloned().unwrap_or_else(|| {
            panic!("{method} {path}: a WebDriver answer without `value`: {text}")
        });
        match value.get("error") {
            None if status.is_success() => Ok(value),
            error => Err(WebDriverError {
                status: status.as_u16(),
                error: error
                    .and_then(Value::as_str)
                    .unwrap_or("(no error code)")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or(&text).to_owned(),
            }),
        }
    }

    /// One WebDriver command that must succeed.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method.clone(), path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {path} failed: {e}"),
        }
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element matching `css`, once the page has rendered it. Polls until
    /// [`RENDER_WAIT`] has passed, then fails naming the selector.
    async fn wait_for(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            let answer = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match answer {
                Ok(v) => {
                    return v[ELEMENT_KEY]
                        .as_str()
                        .unwrap_or_else(|| panic!("`{css}`: not an element reference: {v}"))
                        .to_owned();
                }
                Err(e) if e.error == "no such element" => {}
                Err(e) => panic!("looking for `{css}` failed: {e}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` did not appear within {RENDER_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until nothing matches `css` any more, failing after [`RENDER_WAIT`].
    async fn wait_gone(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/elements",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            let found = v
                .as_array()
                .unwrap_or_else(|| panic!("`{css}`: not a list of elements: {v}"));
            if found.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` was still there after {RENDER_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The rendered text of an element.
    async fn text(&self, element: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await;
        // Swagger UI breaks long paths with zero-width spaces.
        v.as_str()
            .unwrap_or_else(|| panic!("element text is not a string: {v}"))
            .replace('\u{200b}', "")
    }

    async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Scrolls the page so that `element` is in the middle of the viewport.
    async fn scroll_to(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "arguments[0].scrollIntoView({block: 'center'});",
                "args": [{ELEMENT_KEY: element}],
            })),
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    async fn screenshot(&self, path: &std::path::Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = v
            .as_str()
            .and_then(base64_decode::decode)
            .unwrap_or_else(|| panic!("the screenshot answer is not base64 text"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("saving the screenshot to {}: {e}", path.display()));
    }

    async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", None).await;
        self.quit = true;
    }
}

impl Drop for Browser {
    /// Killing ChromeDriver alone would leave Chromium running, orphaned: when a failed test
    /// never reached [`Browser::quit`], delete the session first (best effort, blocking, as
    /// this runs while the test's panic unwinds).
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.quit {
            return;
        }
        let Ok(mut conn) = std::net::TcpStream::connect(&self.driver_addr) else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            conn,
            "DELETE {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session_path, self.driver_addr
        );
        let _ = conn.read_to_end(&mut Vec::new());
    }
}

/// Just enough standard base64 to save a screenshot, without another dependency.
mod base64_decode {
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let val = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut acc = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                acc |= val(c)? << (18 - 6 * i);
            }
            let n = chunk.len() * 6 / 8;
            out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
        }
        Some(out)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_authorizes_and_executes_a_request() {
    let driver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let chromium = find_binary(
        "CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the Swagger UI browser test needs chromium and chromium-driver (.ci/run installs them)"
        );
        eprintln!(
            "\n==> SKIPPED swagger_ui_renders_authorizes_and_executes_a_request: chromium or \
             chromedriver not found (apt-get install chromium chromium-driver)\n"
        );
        return;
    };

    let s = TestServer::start().await;
    let browser = Browser::start(driver, chromium).await;
    browser.goto(&s.url("/docs")).await;

    // The page rendered the API from /openapi.json.
    let title = browser.wait_for(".swagger-ui .info .title").await;
    assert!(browser.text(&title).await.contains("taskflow"));
    // Every operation is listed; the start endpoint stands for the rest.
    browser
        .wait_for(r#".opblock-summary-path[data-path="/api/tasks/{id}/start"]"#)
        .await;
    browser
        .wait_for(r#".opblock-summary-path[data-path="/api/workers/{id}"]"#)
        .await;

    // The Authorize button opens a dialog for the bearer scheme.
    let authorize = browser
        .wait_for(".swagger-ui .auth-wrapper button.authorize.unlocked")
        .await;
    browser.click(&authorize).await;
    let dialog = browser.wait_for(".dialog-ux .modal-ux").await;
    let text = browser.text(&dialog).await;
    assert!(text.contains("Available authorizations"), "{text}");
    assert!(text.contains("bearerAuth"), "{text}");
    assert!(text.contains("Bearer"), "{text}");

    // Pasting a token and authorizing switches the dialog to the authorized state.
    let input = browser.wait_for(".dialog-ux .modal-ux input").await;
    browser
        .type_into(&input, &s.token("swagger-user", "user"))
        .await;
    let submit = browser
        .wait_for(".dialog-ux .auth-btn-wrapper button.authorize")
        .await;
    browser.click(&submit).await;
    // This Swagger UI gives the Logout button no class of its own, only its aria-label.
    browser
        .wait_for(r#".dialog-ux .auth-btn-wrapper button[aria-label="Remove authorization"]"#)
        .await;
    let text = browser.text(&dialog).await;
    assert!(text.contains("Authorized"), "{text}");
    assert!(text.contains("Logout"), "{text}");

    // Close the dialog; the page's Authorize button now shows the locked state.
    let close = browser
        .wait_for(".dialog-ux .auth-btn-wrapper button.btn-done")
        .await;
    browser.click(&close).await;
    browser.wait_gone(".dialog-ux").await;
    browser
        .wait_for(".swagger-ui .auth-wrapper button.authorize.locked")
        .await;

    // Expand GET /api/me, try it out, and execute it from the page.
    let me = r#".opblock.opblock-get:has(.opblock-summary-path[data-path="/api/me"])"#;
    let summary = browser
        .wait_for(&format!("{me} button.opblock-summary-control"))
        .await;
    browser.click(&summary).await;
    let try_out = browser.wait_for(&format!("{me} button.try-out__btn")).await;
    browser.click(&try_out).await;
    let execute = browser.wait_for(&format!("{me} button.btn.execute")).await;
    browser.click(&execute).await;

    // The live response (not the documented responses' table) shows the server's 200 ...
    let live = format!("{me} .responses-wrapper .live-responses-table tbody tr.response");
    let status = browser
        .wait_for(&format!("{live} td.response-col_status"))
        .await;
    browser.scroll_to(&status).await;
    let status = browser.text(&status).await;
    let body = browser
        .wait_for(&format!(
            "{live} td.response-col_description .highlight-code"
        ))
        .await;
    let body = browser.text(&body).await;
    assert_eq!(status.trim(), "200", "the response body: {body}");
    // ... and the body speaks for the pasted token, so the request carried it.
    assert!(body.contains(r#""id": "swagger-user""#), "{body}");
    assert!(body.contains(r#""role": "user""#), "{body}");
    let url = browser
        .wait_for(&format!("{me} .responses-wrapper .request-url pre"))
        .await;
    assert_eq!(browser.text(&url).await.trim(), s.url("/api/me"));

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("swagger_ui.png");
    browser.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());
    browser.quit().await;
}
