//! The served OpenAPI document tells the truth about real responses: every call of a scenario
//! that touches every operation (successes and refusals) answers a status the document lists
//! for that operation, with the content type it lists, and a body that validates against the
//! documented schema (nullable fields included), on SQLite and on PostgreSQL.
//!
//! This is what a client generator or a response-validating client relies on; an outside fuzzer
//! (schemathesis, response-schema check) found 44 violations here in round 1.

#![allow(clippy::unwrap_used)] // Test support outside #[test] functions: a panic is a failure.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Backend, TestServer};

/// Turns an OpenAPI 3.0 schema into JSON Schema (2020-12): `nullable: true` becomes a `null`
/// alternative. References keep pointing into `#/components/schemas`, which the root document
/// carries along.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| (k.clone(), to_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match out.remove("type") {
                    Some(Value::String(ty)) => {
                        out.insert("type".into(), json!([ty, "null"]));
                        if let Some(Value::Array(values)) = out.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    other => {
                        if let Some(ty) = other {
                            out.insert("type".into(), ty);
                        }
                        return json!({"anyOf": [Value::Object(out), {"type": "null"}]});
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// The served document, and checks of responses against it.
struct Spec {
    doc: Value,
    components: Value,
    checked: std::cell::RefCell<std::collections::BTreeSet<(String, String, u16)>>,
}

impl Spec {
    async fn fetch(s: &TestServer) -> Spec {
        let doc: Value = s
            .http
            .get(s.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let components = to_json_schema(&doc["components"]);
        Spec {
            doc,
            components,
            checked: Default::default(),
        }
    }

    /// Checks one response of `method template`: its status is documented, its content type
    /// and body match the documented ones, and documented required headers are present.
    async fn check(&self, method: &Method, template: &str, resp: reqwest::Response) -> Value {
        let status = resp.status().as_u16();
        let op = &self.doc["paths"][template][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which is not documented"
        );
        if let Some(headers) = documented["headers"].as_object() {
            for (name, h) in headers {
                if h["required"] == true {
                    assert!(
                        resp.headers().contains_key(name.as_str()),
                        "{method} {template} {status}: missing header {name}"
                    );
                }
            }
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let content = documented["content"].as_object();
        let body = match content.and_then(|c| c.iter().next()) {
            None => {
                assert!(
                    text.is_empty(),
                    "{method} {template} {status}: no content is documented, got {text}"
                );
                Value::Null
            }
            Some((media, media_type)) => {
                let got = content_type.unwrap_or_default();
                let essence = |ct: &str| ct.split(';').next().unwrap_or("").trim().to_owned();
                assert_eq!(
                    essence(&got),
                    essence(media),
                    "{method} {template} {status}: content type"
                );
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{method} {template} {status}: {e}: {text}"));
                let mut schema = to_json_schema(&media_type["schema"]);
                schema["components"] = self.components.clone();
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("{method} {template}: bad schema: {e}"));
                let errors: Vec<String> = validator
                    .iter_errors(&body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{method} {template} {status}: the body does not match the documented \
                     schema: {errors:#?}\nbody: {body}"
                );
                body
            }
        };
        self.checked
            .borrow_mut()
            .insert((method.to_string(), template.to_owned(), status));
        body
    }

    /// Checks a `200` event stream of `method template`: its content type is the documented
    /// one, and the `data:` of each of its first `count` events matches the documented item
    /// schema.
    async fn check_stream(
        &self,
        method: &Method,
        template: &str,
        mut resp: reqwest::Response,
        count: usize,
    ) {
        let status = resp.status().as_u16();
        assert_eq!(status, 200, "{method} {template}");
        let op = &self.doc["paths"][template][method.as_str().to_ascii_lowercase()];
        let (media, media_type) = op["responses"]["200"]["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .unwrap_or_else(|| panic!("{method} {template}: no documented 200 content"));
        assert_eq!(media, "text/event-stream");
        let got = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            got.starts_with(media.as_str()),
            "{method} {template}: {got}"
        );
        let mut schema = to_json_schema(&media_type["schema"]["items"]);
        schema["components"] = self.components.clone();
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{method} {template}: bad item schema: {e}"));
        let mut text = String::new();
        let mut seen = 0;
        while seen < count {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let body: Value = serde_json::from_str(data).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{method} {template}: an event does not match the documented schema: \
                     {errors:#?}\nevent: {body}"
                );
                seen += 1;
            }
        }
        self.checked
            .borrow_mut()
            .insert((method.to_string(), template.to_owned(), status));
    }

    /// Every documented operation, as `(METHOD, template)`.
    fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        ops
    }
}

async fn scenario(s: &TestServer) {
    let spec = Spec::fetch(s).await;
    let sp = &spec;
    let alice = |m: Method, p: &str| s.as_user(m, p, "alice");
    let admin = |m: Method, p: &str| s.as_admin(m, p);
    let send = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap() };

    let h = send(s.http.get(s.url("/health"))).await;
    sp.check(&Method::GET, "/health", h).await;
    let h = send(s.http.get(s.url("/api/health/db"))).await;
    sp.check(&Method::GET, "/api/health/db", h).await;

    // Tasks with every nullable field null, and with every one set.
    let bare = send(alice(Method::POST, "/api/tasks").json(&json!({"title": "bare"}))).await;
    let bare = sp.check(&Method::POST, "/api/tasks", bare).await;
    assert!(bare["description"].is_null() && bare["parent_id"].is_null());
    let bare_id = bare["id"].as_i64().unwrap();
    let full = json!({"title": "full", "description": "d", "priority": "high",
        "assigned_to": "alice", "project_slug": "p", "parent_id": bare_id});
    let full = send(alice(Method::POST, "/api/tasks").json(&full)).await;
    let full = sp.check(&Method::POST, "/api/tasks", full).await;
    let id = full["id"].as_i64().unwrap();
    let t = |suffix: &str| format!("/api/tasks/{id}{suffix}");

    for resp in [
        send(alice(Method::POST, "/api/tasks").json(&json!({"title": ""}))).await,
        send(alice(Method::POST, "/api/tasks").body("{")).await,
        send(
            s.http
                .post(s.url("/api/tasks"))
                .json(&json!({"title": "x"})),
        )
        .await,
        // On a connection of its own: the server answers 413 without reading the body and
        // closes the connection, which a pooled client could otherwise reuse.
        send(
            reqwest::Client::new()
                .post(s.url("/api/tasks"))
                .bearer_auth(s.token("alice", "user"))
                .body(vec![b' '; 70_000]),
        )
        .await,
        // A body that is not JSON is 415, which must be documented too (schemathesis sends
        // `text/plain` and `multipart/form-data` to every operation with a body).
        send(
            alice(Method::POST, "/api/tasks")
                .header("content-type", "text/plain")
                .body(r#"{"title": "x"}"#),
        )
        .await,
    ] {
        sp.check(&Method::POST, "/api/tasks", resp).await;
    }
    for path in [
        "/api/tasks",
        "/api/tasks?status=pending&limit=1",
        "/api/tasks?limit=0",
        "/api/tasks?status=nope",
    ] {
        let r = send(alice(Method::GET, path)).await;
        sp.check(&Method::GET, "/api/tasks", r).await;
    }
    for path in [t(""), "/api/tasks/999999".to_owned()] {
        let r = send(alice(Method::GET, &path)).await;
        sp.check(&Method::GET, "/api/tasks/{id}", r).await;
    }
    for body in [
        json!({"description": null, "project_slug": null}),
        json!({"title": null}),
        json!({"status": "completed"}),
    ] {
        let r = send(alice(Method::PATCH, &t("")).json(&body)).await;
        sp.check(&Method::PATCH, "/api/tasks/{id}", r).await;
    }
    let r = send(
        alice(Method::PATCH, &t(""))
            .header("If-Match", "\"1\"")
            .json(&json!({})),
    )
    .await;
    sp.check(&Method::PATCH, "/api/tasks/{id}", r).await;
    let r = send(
        alice(Method::PATCH, &t(""))
            .header("content-type", "multipart/form-data")
            .body("{}"),
    )
    .await;
    sp.check(&Method::PATCH, "/api/tasks/{id}", r).await;

    // The lifecycle, with a refusal of each kind along the way.
    let steps: Vec<(Method, String, &str, Option<Value>, bool)> = vec![
        (
            Method::POST,
            t("/complete"),
            "/api/tasks/{id}/complete",
            None,
            false,
        ),
        (
            Method::POST,
            t("/start"),
            "/api/tasks/{id}/start",
            None,
            false,
        ),
        (
            Method::POST,
            t("/start"),
            "/api/tasks/{id}/start",
            None,
            false,
        ),
        (
            Method::POST,
            t("/progress?percent=40&note=n"),
            "/api/tasks/{id}/progress",
            None,
            false,
        ),
        (
            Method::POST,
            t("/progress?percent=400"),
            "/api/tasks/{id}/progress",
            None,
            false,
        ),
        (
            Method::POST,
            t("/progress?percent=5"),
            "/api/tasks/{id}/progress",
            None,
            true,
        ),
        (
            Method::POST,
            t("/review"),
            "/api/tasks/{id}/review",
            None,
            false,
        ),
        (
            Method::POST,
            t("/request-changes"),
            "/api/tasks/{id}/request-changes",
            None,
            false,
        ),
        (
            Method::POST,
            t("/block"),
            "/api/tasks/{id}/block",
            Some(json!({"reason": null})),
            false,
        ),
        (
            Method::POST,
            t("/block"),
            "/api/tasks/{id}/block",
            None,
            false,
        ),
        (
            Method::POST,
            t("/unblock"),
            "/api/tasks/{id}/unblock",
            None,
            false,
        ),
        (
            Method::POST,
            t("/unblock"),
            "/api/tasks/{id}/unblock",
            None,
            false,
        ),
        (
            Method::POST,
            t("/complete"),
            "/api/tasks/{id}/complete",
            None,
            false,
        ),
    ];
    for (method, path, template, body, as_bob) in steps {
        let mut req = if as_bob {
            s.as_user(method.clone(), &path, "bob")
        } else {
            alice(method.clone(), &path)
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = send(req).await;
        sp.check(&method, template, r).await;
    }
    let r = send(alice(Method::POST, &t("/start")).header("If-Match", "\"1\"")).await;
    sp.check(&Method::POST, "/api/tasks/{id}/start", r).await;

    for path in [
        t("/audit"),
        "/api/tasks/424242/audit".to_owned(),
        "/api/tasks/0/audit".into(),
    ] {
        let r = send(alice(Method::GET, &path)).await;
        sp.check(&Method::GET, "/api/tasks/{id}/audit", r).await;
    }
    for path in [
        "/api/audit",
        "/api/audit?action=created&limit=2",
        "/api/audit?limit=500",
    ] {
        let r = send(alice(Method::GET, path)).await;
        sp.check(&Method::GET, "/api/audit", r).await;
    }

    // The work queue: ready, claim (200 and 204), heartbeat, release, dependencies.
    let q1 = send(alice(Method::POST, "/api/tasks").json(&json!({"title": "q1"}))).await;
    let q1 = sp.check(&Method::POST, "/api/tasks", q1).await["id"]
        .as_i64()
        .unwrap();
    let q2 = send(alice(Method::POST, "/api/tasks").json(&json!({"title": "q2"}))).await;
    let q2 = sp.check(&Method::POST, "/api/tasks", q2).await["id"]
        .as_i64()
        .unwrap();
    let deps = format!("/api/tasks/{q2}/dependencies");
    for (req, template) in [
        (
            alice(Method::POST, &deps).json(&json!({"depends_on": q1})),
            "/api/tasks/{id}/dependencies",
        ),
        (
            alice(Method::POST, &deps).json(&json!({"depends_on": 424242})),
            "/api/tasks/{id}/dependencies",
        ),
        (
            alice(Method::POST, &deps).json(&json!({"depends_on": q2})),
            "/api/tasks/{id}/dependencies",
        ),
    ] {
        let r = send(req).await;
        sp.check(&Method::POST, template, r).await;
    }
    for path in [deps.clone(), "/api/tasks/424242/dependencies".into()] {
        let r = send(alice(Method::GET, &path)).await;
        sp.check(&Method::GET, "/api/tasks/{id}/dependencies", r)
            .await;
    }
    for path in ["/api/tasks/ready", "/api/tasks/ready?project=none&limit=1"] {
        let r = send(alice(Method::GET, path)).await;
        sp.check(&Method::GET, "/api/tasks/ready", r).await;
    }
    let q2_start = send(alice(Method::POST, &format!("/api/tasks/{q2}/start"))).await;
    sp.check(&Method::POST, "/api/tasks/{id}/start", q2_start)
        .await;
    let claimed = send(
        s.as_user(Method::POST, "/api/tasks/claim", "agent")
            .json(&json!({"lease_seconds": 60})),
    )
    .await;
    let claimed = sp.check(&Method::POST, "/api/tasks/claim", claimed).await;
    let (cid, fence) = (
        claimed["id"].as_i64().unwrap(),
        claimed["fence"].as_i64().unwrap(),
    );
    for req in [
        s.as_user(Method::POST, "/api/tasks/claim", "agent"),
        s.as_user(Method::POST, "/api/tasks/claim", "agent")
            .json(&json!({"lease_seconds": 1})),
    ] {
        let r = send(req).await;
        sp.check(&Method::POST, "/api/tasks/claim", r).await;
    }
    let c = |suffix: &str| format!("/api/tasks/{cid}{suffix}");
    for (req, template) in [
        (
            s.as_user(
                Method::POST,
                &c(&format!("/heartbeat?fence={fence}")),
                "agent",
            ),
            "/api/tasks/{id}/heartbeat",
        ),
        (
            s.as_user(Method::POST, &c("/heartbeat?fence=99"), "agent"),
            "/api/tasks/{id}/heartbeat",
        ),
        (
            s.as_user(Method::POST, &c("/heartbeat"), "someone"),
            "/api/tasks/{id}/heartbeat",
        ),
        (
            s.as_user(
                Method::POST,
                &c(&format!("/release?fence={fence}")),
                "agent",
            ),
            "/api/tasks/{id}/release",
        ),
        (
            s.as_user(Method::POST, &c("/release"), "agent"),
            "/api/tasks/{id}/release",
        ),
        (
            s.as_user(Method::POST, &c("/heartbeat"), "agent"),
            "/api/tasks/{id}/heartbeat",
        ),
    ] {
        let r = send(req).await;
        sp.check(&Method::POST, template, r).await;
    }
    for dep in [q1, q1] {
        let r = send(alice(Method::DELETE, &format!("{deps}/{dep}"))).await;
        sp.check(&Method::DELETE, "/api/tasks/{id}/dependencies/{dep}", r)
            .await;
    }

    // Workers and the caller.
    let r = send(alice(Method::GET, "/api/me")).await;
    sp.check(&Method::GET, "/api/me", r).await;
    for (req, _) in [
        (
            admin(Method::PUT, "/api/workers/bot").json(&json!({"type": "agent"})),
            200,
        ),
        (
            admin(Method::PUT, "/api/workers/bot2").json(&json!({"type": "agent", "name": "B"})),
            200,
        ),
        (
            alice(Method::PUT, "/api/workers/bot").json(&json!({"type": "agent"})),
            403,
        ),
        (
            admin(Method::PUT, "/api/workers/bot").json(&json!({"type": "robot"})),
            422,
        ),
    ] {
        let r = send(req).await;
        sp.check(&Method::PUT, "/api/workers/{id}", r).await;
    }
    let r = send(alice(Method::GET, "/api/workers")).await;
    sp.check(&Method::GET, "/api/workers", r).await;
    for path in ["/api/workers/bot", "/api/workers/nobody"] {
        let r = send(alice(Method::GET, path)).await;
        sp.check(&Method::GET, "/api/workers/{id}", r).await;
    }

    // Delete: refused with subtasks, forbidden for users, then done.
    let parent = format!("/api/tasks/{bare_id}");
    for req in [
        admin(Method::DELETE, &parent),
        alice(Method::DELETE, &t("")),
        admin(Method::DELETE, &t("")).header("If-Match", "\"1\""),
        admin(Method::DELETE, &t("")),
        admin(Method::DELETE, &t("")),
    ] {
        let r = send(req).await;
        sp.check(&Method::DELETE, "/api/tasks/{id}", r).await;
    }

    // The live events: the whole trail so far (a deleted task comes as null), and refusals.
    let rows = send(alice(Method::GET, "/api/audit?limit=1")).await;
    let rows: usize = rows.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = send(alice(Method::GET, "/api/events")).await;
    sp.check_stream(&Method::GET, "/api/events", r, rows).await;
    for req in [
        alice(Method::GET, "/api/events?after=-1"),
        s.http.get(s.url("/api/events")),
    ] {
        let r = send(req).await;
        sp.check(&Method::GET, "/api/events", r).await;
    }

    // Every documented operation was called at least once.
    let called: std::collections::BTreeSet<(String, String)> = spec
        .checked
        .borrow()
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    for op in spec.operations() {
        assert!(called.contains(&op), "the scenario never called {op:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_documented_schemas_on_sqlite() {
    let s = TestServer::start_on(Backend::Sqlite).await.unwrap();
    scenario(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_documented_schemas_on_postgres() {
    let Some(s) = TestServer::start_on(Backend::Postgres).await else {
        return;
    };
    scenario(&s).await;
}
