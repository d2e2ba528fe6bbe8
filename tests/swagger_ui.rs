//! Swagger UI in a real browser: headless Chromium, driven through ChromeDriver's W3C WebDriver
//! HTTP API, loads `/docs`, renders the API, and opens the Authorize dialog for the bearer
//! scheme; a pasted token puts the page in the authorized state.
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

/// A WebDriver session on a ChromeDriver process that is killed on drop.
struct Browser {
    http: reqwest::Client,
    session: String,
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
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("chromedriver answers");
        let v: Value = resp.json().await.expect("a JSON answer");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element matching `css`, once the page has rendered it.
    async fn wait_for(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
            {
                return id.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` never appeared: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn text(&self, element: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await;
        // Swagger UI breaks long paths with zero-width spaces.
        v.as_str().unwrap_or_default().replace('\u{200b}', "")
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

    async fn screenshot(&self, path: &std::path::Path) {
        use base64_decode::decode;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        if let Some(png) = v.as_str().and_then(decode) {
            let _ = std::fs::write(path, png);
        }
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None).await;
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
async fn swagger_ui_renders_and_authorize_dialog_works() {
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
            "\n==> SKIPPED swagger_ui_renders_and_authorize_dialog_works: chromium or \
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
    let authorize = browser.wait_for(".swagger-ui button.authorize").await;
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
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("swagger-authorize.png");
    browser.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());
    browser
        .wait_for(".dialog-ux .auth-btn-wrapper button.logout")
        .await;
    let text = browser.text(&dialog).await;
    assert!(text.contains("Authorized"), "{text}");
    assert!(text.contains("Logout"), "{text}");
    browser.quit().await;
}
