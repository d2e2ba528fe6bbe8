//! Swagger UI in a real browser: headless Chromium, driven through ChromeDriver's W3C WebDriver
//! HTTP API, loads `/docs`, renders the API, and opens the Authorize dialog for the bearer
//! scheme; a pasted token puts the page in the authorized state. "Try it out" on `GET /api/me`
//! then sends that token from the page, and the page shows the server's 200 and the token's
//! subject. A screenshot of the end state goes to `$CARGO_TARGET_TMPDIR/swagger_ui.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says loudly that it was skipped; under `CI=true` that is a failure (see
//! `common::browser`).

mod common;

use std::path::PathBuf;

use common::TestServer;
use common::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_authorizes_and_executes_a_request() {
    let Some(browser) = Browser::launch(
        "swagger_ui_renders_authorizes_and_executes_a_request",
        1280,
        1600,
    )
    .await
    else {
        return;
    };
    let s = TestServer::start().await;
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
