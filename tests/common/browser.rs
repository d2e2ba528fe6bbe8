//! Headless Chromium for browser tests, driven through ChromeDriver's W3C WebDriver HTTP API
//! with reqwest (no WebDriver client crate).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them), or the binaries
//! named by `CHROMIUM` and `CHROMEDRIVER`. Without them [`Browser::launch`] says loudly that
//! the test was skipped and returns `None`; under `CI=true` that is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// How long to wait for the page to render an element before giving up.
pub const RENDER_WAIT: Duration = Duration::from_secs(45);

/// The web element identifier: the key under which W3C WebDriver answers carry an element
/// reference (WebDriver spec, "Elements").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// A WebDriver error answer: an HTTP error status with `value.error` and `value.message`.
#[derive(Debug)]
pub struct WebDriverError {
    /// The HTTP status.
    pub status: u16,
    /// The W3C error code, e.g. `no such element`.
    pub error: String,
    /// ChromeDriver's explanation.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}: {}", self.status, self.error, self.message)
    }
}

/// A WebDriver session on a ChromeDriver process that is killed on drop. A session that was
/// not quit (the test failed) is deleted first, so that ChromeDriver closes Chromium.
pub struct Browser {
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
    /// Starts Chromium (headless, a window of `width` x `height`), or returns `None` after
    /// saying loudly that `test` was skipped when Chromium or ChromeDriver is missing. Under
    /// `CI=true` a missing browser fails the test instead.
    pub async fn launch(test: &str, width: u32, height: u32) -> Option<Browser> {
        let driver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let chromium = find_binary(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the browser test {test} needs chromium and chromium-driver (.ci/run installs them)"
            );
            eprintln!(
                "\n==> SKIPPED {test}: chromium or chromedriver not found \
                 (apt-get install chromium chromium-driver)\n"
            );
            return None;
        };
        Some(Browser::start(driver, chromium, width, height).await)
    }

    async fn start(driver: PathBuf, chromium: PathBuf, width: u32, height: u32) -> Browser {
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
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
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
    pub async fn try_call(
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
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method.clone(), path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {path} failed: {e}"),
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The URL of the page shown (after any redirects).
    pub async fn current_url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str()
            .unwrap_or_else(|| panic!("the URL is not a string: {v}"))
            .to_owned()
    }

    /// The first element matching `css`, once the page has rendered it. Polls until
    /// [`RENDER_WAIT`] has passed, then fails naming the selector.
    pub async fn wait_for(&self, css: &str) -> String {
        self.wait_for_within(css, RENDER_WAIT).await
    }

    /// [`Browser::wait_for`] with a deadline of `wait`.
    pub async fn wait_for_within(&self, css: &str, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
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
                "`{css}` did not appear within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until nothing matches `css` any more, failing after [`RENDER_WAIT`].
    pub async fn wait_gone(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            if self.count(css).await == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` was still there after {RENDER_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap_or_else(|| panic!("`{css}`: not a list of elements: {v}"))
            .len()
    }

    /// Polls until the first element matching `css` shows text containing `needle`, failing
    /// after [`RENDER_WAIT`] with the text it last showed; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            let element = self.wait_for(css).await;
            // The element may be replaced between finding it and reading it.
            let text = self
                .try_call(
                    reqwest::Method::GET,
                    &format!("/element/{element}/text"),
                    None,
                )
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` did not show {needle:?} within {RENDER_WAIT:?}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The rendered text of an element.
    pub async fn text(&self, element: &str) -> String {
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

    /// Clicks an element, as a user would (scrolled into view, at its centre).
    pub async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks the first element matching `css` once it is there. A page that re-renders (a live
    /// update) may replace the element between finding and clicking it: then it is found again.
    pub async fn click_on(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + RENDER_WAIT;
        loop {
            let element = self.wait_for(css).await;
            let answer = self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{element}/click"),
                    Some(json!({})),
                )
                .await;
            match answer {
                Ok(_) => return,
                Err(e) if e.error == "stale element reference" => {}
                Err(e) => panic!("clicking `{css}` failed: {e}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` kept being replaced for {RENDER_WAIT:?}"
            );
        }
    }

    /// Types `text` into an element, key by key.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Empties an input.
    pub async fn clear(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
    }

    /// Runs `script` in the page with `args` and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Scrolls the page so that `element` is in the middle of the viewport.
    pub async fn scroll_to(&self, element: &str) {
        self.execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![json!({ELEMENT_KEY: element})],
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
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

    /// Ends the session (and so Chromium).
    pub async fn quit(mut self) {
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
