//! The board (`/board`) over plain HTTP and in a real browser.
//!
//! Over HTTP: the page and its assets are served with their types, a Content-Security-Policy
//! that allows only the server itself, and `Cache-Control`; `/` redirects to the board; the page
//! is not in the OpenAPI document. (That the board's own writes pass CORS is pinned in
//! `http_clients.rs`.)
//!
//! In headless Chromium (driven through ChromeDriver, see `common::browser`): sign in with a
//! pasted token, see the tasks already there in their columns (assignee, agent or human,
//! progress, lease, waiting-on), create a task with the form, start and complete it with the
//! buttons, see a refusal in the API's words, and see changes made by another client appear
//! within 2 s without a reload. A screenshot of the end state goes to
//! `$CARGO_TARGET_TMPDIR/board.png` (the copy in `docs/board.png` comes from it). Without
//! Chromium the browser test is skipped loudly; under `CI=true` that is a failure.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions: a panic is a failure.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use common::browser::Browser;
use common::{TestServer, error_of, id_of, json_of};

/// How soon a change made elsewhere must show on the board.
const LIVE_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_types_and_a_strict_policy() {
    let s = TestServer::start().await;
    let page = s.http.get(s.url("/board")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains(r#"<script src="/board/board.js" defer></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/board/board.css">"#));
    // Nothing from elsewhere: the board works offline.
    assert!(!html.contains("http://") && !html.contains("https://"));

    for (path, kind) in [
        ("/board/board.js", "text/javascript; charset=utf-8"),
        ("/board/board.css", "text/css; charset=utf-8"),
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], kind, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{path}");
        // A revalidation with the tag it got is answered 304, without the body.
        let etag = resp.headers()["etag"].clone();
        assert!(!resp.text().await.unwrap().is_empty());
        let again = s
            .http
            .get(s.url(path))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let script = s
        .http
        .get(s.url("/board/board.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!script.contains("http://") && !script.contains("https://"));

    // HEAD works; other methods are the API's 405.
    let head = s.http.head(s.url("/board")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "text/html; charset=utf-8");
    let post = s.http.post(s.url("/board")).send().await.unwrap();
    assert_eq!(error_of(post, 405).await, "Method not allowed");
    let missing = s.http.get(s.url("/board/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_redirects_to_the_board_which_is_not_in_the_openapi_document() {
    let s = TestServer::start().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects.get(s.url("/")).send().await.unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/board");
    // Followed, it lands on the page.
    let resp = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(resp.url().path(), "/board");
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");

    let spec = json_of(
        s.http.get(s.url("/openapi.json")).send().await.unwrap(),
        200,
    )
    .await;
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|p| p.starts_with("/api") || p == "/health")
    );
    assert!(!paths.contains_key("/board") && !paths.contains_key("/"));
}

async fn create(s: &TestServer, sub: &str, body: Value) -> i64 {
    let resp = s
        .as_user(Method::POST, "/api/tasks", sub)
        .json(&body)
        .send()
        .await
        .unwrap();
    id_of(&json_of(resp, 201).await)
}

async fn post(s: &TestServer, sub: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = s.as_user(Method::POST, path, sub);
    if let Some(body) = body {
        req = req.json(&body);
    }
    json_of(req.send().await.unwrap(), 200).await
}

/// The ids of the seeded tasks.
struct Seed {
    keys: i64,
    notes: i64,
    schema: i64,
    upgrade: i64,
    publish: i64,
    announce: i64,
    flaky: i64,
}

/// Tasks in every column, by other people and an agent, before the board is opened.
async fn seed(s: &TestServer) -> Seed {
    let put = s
        .as_admin(Method::PUT, "/api/workers/agent-7")
        .json(&json!({"type": "agent", "name": "Release bot"}))
        .send()
        .await
        .unwrap();
    json_of(put, 200).await;
    let keys = create(
        s,
        "bob",
        json!({"title": "Rotate the signing keys", "priority": "critical", "project_slug": "ops"}),
    )
    .await;
    let notes = create(
        s,
        "bob",
        json!({"title": "Write the release notes", "project_slug": "docs"}),
    )
    .await;
    post(
        s,
        "agent-7",
        &format!("/api/tasks/{notes}/start?lease_seconds=900"),
        None,
    )
    .await;
    post(
        s,
        "agent-7",
        &format!("/api/tasks/{notes}/progress?percent=40"),
        None,
    )
    .await;
    let schema = create(
        s,
        "bob",
        json!({"title": "Review the schema migration", "priority": "high", "project_slug": "api"}),
    )
    .await;
    post(s, "bob", &format!("/api/tasks/{schema}/start"), None).await;
    post(s, "bob", &format!("/api/tasks/{schema}/review"), None).await;
    let upgrade = create(
        s,
        "bob",
        json!({"title": "Upgrade Postgres to 16", "priority": "low", "project_slug": "ops",
               "description": "Needs the maintenance window."}),
    )
    .await;
    post(
        s,
        "bob",
        &format!("/api/tasks/{upgrade}/block"),
        Some(json!({"reason": "maintenance window"})),
    )
    .await;
    let publish = create(
        s,
        "bob",
        json!({"title": "Publish 0.2.0", "priority": "high", "project_slug": "docs"}),
    )
    .await;
    post(
        s,
        "bob",
        &format!("/api/tasks/{publish}/dependencies"),
        Some(json!({"depends_on": notes})),
    )
    .await;
    let flaky = create(
        s,
        "bob",
        json!({"title": "Fix the flaky lease test", "priority": "high", "project_slug": "api"}),
    )
    .await;
    post(s, "bob", &format!("/api/tasks/{flaky}/start"), None).await;
    post(s, "bob", &format!("/api/tasks/{flaky}/review"), None).await;
    let announce = create(s, "bob", json!({"title": "Announce the release"})).await;
    post(
        s,
        "bob",
        &format!("/api/tasks/{announce}/dependencies"),
        Some(json!({"depends_on": flaky})),
    )
    .await;
    Seed {
        keys,
        notes,
        schema,
        upgrade,
        publish,
        announce,
        flaky,
    }
}

/// The id of the card titled `title`, once there is one.
async fn card_id_by_title(browser: &Browser, title: &str) -> i64 {
    let find = "return [...document.querySelectorAll('.card')] \
        .filter(c => c.querySelector('.title').textContent.endsWith(arguments[0])) \
        .map(c => Number(c.dataset.taskId))[0] ?? null;";
    let deadline = Instant::now() + common::browser::RENDER_WAIT;
    loop {
        if let Some(id) = browser.execute(find, vec![json!(title)]).await.as_i64() {
            return id;
        }
        assert!(Instant::now() < deadline, "no card titled {title:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn in_column(status: &str, id: i64) -> String {
    format!(r#"[data-column="{status}"] #task-{id}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_signs_in_acts_and_updates_live_in_a_real_browser() {
    let Some(browser) = Browser::launch(
        "the_board_signs_in_acts_and_updates_live_in_a_real_browser",
        1440,
        760,
    )
    .await
    else {
        return;
    };
    let s = TestServer::start().await;
    let seed = seed(&s).await;

    // `/` leads to the board, which asks for a token.
    browser.goto(&s.url("/")).await;
    assert_eq!(browser.current_url().await, s.url("/board"));
    let token = browser.wait_for("#token").await;
    browser.type_into(&token, "not-a-token").await;
    browser.click_on("#sign-in-button").await;
    browser
        .wait_for_text("#error-text", "Sign-in failed: Invalid token")
        .await;
    browser.clear(&token).await;
    browser.type_into(&token, &s.token("ada", "user")).await;
    browser.click_on("#sign-in-button").await;
    browser
        .wait_for_text("#status", "Signed in as ada (user, human")
        .await;
    browser.wait_for_text("#status", "live").await;
    // A marker that a reload would wipe: every later change must arrive without one.
    browser
        .execute("window.boardMarker = 'still here';", vec![])
        .await;

    // What was there already, each in its column, with what the card says about it.
    browser.wait_for(&in_column("pending", seed.keys)).await;
    let notes = browser
        .wait_for_text(&in_column("in_progress", seed.notes), "agent")
        .await;
    for needle in [
        "Write the release notes",
        "medium",
        "docs",
        "agent-7",
        "40%",
        "Lease",
    ] {
        assert!(notes.contains(needle), "{needle} in {notes}");
    }
    browser.wait_for(&in_column("review", seed.schema)).await;
    browser
        .wait_for_text(
            &format!("#task-{} .waiting", seed.publish),
            &format!("Waiting on #{}", seed.notes),
        )
        .await;
    browser
        .wait_for_text(
            &in_column("blocked", seed.upgrade),
            "Blocked: maintenance window",
        )
        .await;
    assert_eq!(
        browser.count("#error.shown").await,
        0,
        "signing in cleared the error"
    );
    // ada is neither the agent nor an admin: she may not complete the agent's task.
    assert_eq!(
        browser
            .count(&format!(
                r#"#task-{} button[data-action="complete"]"#,
                seed.notes
            ))
            .await,
        0
    );

    // Create a task with the form.
    let title = browser.wait_for("#new-title").await;
    browser.type_into(&title, "Ship the board").await;
    browser
        .click_on(r#"#new-priority option[value="high"]"#)
        .await;
    let project = browser.wait_for("#new-project").await;
    browser.type_into(&project, "web").await;
    browser.click_on("#create-button").await;
    // Cards are re-rendered as events arrive, so the id is read in one step in the page.
    let id = card_id_by_title(&browser, "Ship the board").await;
    assert!(id > seed.announce, "the new task is the last one: {id}");
    let text = browser
        .wait_for_text(&format!("#task-{id}"), "Ship the board")
        .await;
    assert!(text.contains("high") && text.contains("web"), "{text}");
    let task = json_of(
        s.as_user(Method::GET, &format!("/api/tasks/{id}"), "ada")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(task["priority"], "high");
    assert_eq!(task["project_slug"], "web");

    // Start it and complete it with the buttons.
    browser
        .click_on(&format!(r#"#task-{id} button[data-action="start"]"#))
        .await;
    let card = browser
        .wait_for_text(&in_column("in_progress", id), "ada")
        .await;
    assert!(card.contains("human"), "{card}");
    browser
        .click_on(&format!(r#"#task-{id} button[data-action="complete"]"#))
        .await;
    browser
        .wait_for_text(&in_column("completed", id), "100%")
        .await;
    let audit = json_of(
        s.as_user(Method::GET, &format!("/api/tasks/{id}/audit"), "ada")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let trail: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [("created", "ada"), ("started", "ada"), ("completed", "ada")]
    );

    // A refusal is shown in the API's words.
    browser
        .click_on(&format!(
            r#"#task-{} button[data-action="start"]"#,
            seed.publish
        ))
        .await;
    browser
        .wait_for_text(
            "#error-text",
            &format!("Task is waiting on unfinished dependencies: {}", seed.notes),
        )
        .await;
    browser.click_on("#error-close").await;
    browser.wait_gone("#error.shown").await;

    // Changes made by another client show within 2 s, without a reload.
    let sent = Instant::now();
    post(&s, "bob", &format!("/api/tasks/{}/start", seed.keys), None).await;
    browser
        .wait_for_within(
            &in_column("in_progress", seed.keys),
            LIVE_WITHIN.saturating_sub(sent.elapsed()),
        )
        .await;
    assert!(sent.elapsed() < LIVE_WITHIN, "{:?}", sent.elapsed());

    let sent = Instant::now();
    let hotfix = create(
        &s,
        "bob",
        json!({"title": "Hotfix the login page", "priority": "critical", "project_slug": "web"}),
    )
    .await;
    browser
        .wait_for_within(
            &in_column("pending", hotfix),
            LIVE_WITHIN.saturating_sub(sent.elapsed()),
        )
        .await;
    assert!(sent.elapsed() < LIVE_WITHIN, "{:?}", sent.elapsed());

    // Completing a dependency clears "waiting on" from the task that waited for it.
    let sent = Instant::now();
    post(
        &s,
        "bob",
        &format!("/api/tasks/{}/complete", seed.flaky),
        None,
    )
    .await;
    browser
        .wait_for_within(
            &in_column("completed", seed.flaky),
            LIVE_WITHIN.saturating_sub(sent.elapsed()),
        )
        .await;
    let deadline = Instant::now() + LIVE_WITHIN;
    while browser
        .count(&format!("#task-{} .waiting", seed.announce))
        .await
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "still waiting on #{}",
            seed.flaky
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Block it with a reason, from the card's own form.
    browser
        .click_on(&format!(
            r#"#task-{} button[data-action="block"]"#,
            seed.announce
        ))
        .await;
    let reason = browser
        .wait_for(&format!(r#"#task-{} [data-field="reason"]"#, seed.announce))
        .await;
    browser
        .type_into(&reason, "waiting for the release date")
        .await;
    browser
        .click_on(&format!(
            r#"#task-{} button[data-action="block-submit"]"#,
            seed.announce
        ))
        .await;
    browser
        .wait_for_text(
            &in_column("blocked", seed.announce),
            "Blocked: waiting for the release date",
        )
        .await;

    let marker = browser.execute("return window.boardMarker;", vec![]).await;
    assert_eq!(marker, "still here", "the page was reloaded");

    // Everything the page loaded came from the server itself.
    let origins = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);",
            vec![],
        )
        .await;
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin, &json!(s.base), "{origins}");
    }

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board.png");
    browser.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());
    browser.quit().await;
}
