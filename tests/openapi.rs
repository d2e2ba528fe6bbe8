//! The OpenAPI document is part of the contract: it is committed as `openapi.json` at the
//! repository root, and this test fails when the served document drifts from it.
//!
//! After an intended API change, regenerate it with
//! `UPDATE_OPENAPI=1 cargo test --test openapi` and commit the diff.

mod common;

use common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_spec_matches_the_committed_openapi_json() {
    let s = TestServer::start().await;
    let resp = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let served: serde_json::Value = resp.json().await.expect("the spec is JSON");

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
        std::fs::write(&path, pretty).unwrap();
        eprintln!("wrote {}", path.display());
    }
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("openapi.json is committed at the root"),
    )
    .expect("openapi.json is JSON");
    assert!(
        served == committed,
        "the served OpenAPI document differs from openapi.json; if the change is intended, run \
         `UPDATE_OPENAPI=1 cargo test --test openapi` and commit the result"
    );

    // The document really describes this API: a sample of what clients rely on.
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/health",
        "/api/health/db",
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/tasks/{id}/start",
        "/api/tasks/{id}/progress",
        "/api/tasks/{id}/review",
        "/api/tasks/{id}/request-changes",
        "/api/tasks/{id}/complete",
        "/api/tasks/{id}/block",
        "/api/tasks/{id}/unblock",
        "/api/tasks/{id}/audit",
        "/api/audit",
        "/api/me",
        "/api/workers",
        "/api/workers/{id}",
    ] {
        assert!(paths.contains_key(p), "missing path {p}");
    }
    let scheme = &served["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let start = &served["paths"]["/api/tasks/{id}/start"]["post"];
    assert!(
        start["security"].to_string().contains("bearerAuth"),
        "{start}"
    );
    assert!(start["responses"]["400"].is_object() && start["responses"]["412"].is_object());
}

/// Client generators can use the committed document: every operation has a unique, stable
/// `operationId`, and no schema is wrapped in `allOf` (openapi-python-client drops every model
/// with "Cannot take allOf a non-object" when an enum `$ref` is wrapped so), except the one
/// shape of a nullable object field, `{"allOf": [{"$ref": …}], "nullable": true}`, which
/// generators turn into `T | None`. Fields that the API sends as `null` are declared nullable.
#[test]
fn committed_openapi_json_suits_client_generators() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric()) && id.starts_with(char::is_lowercase),
                "{method} {path}: operationId {id:?} is not camelCase"
            );
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
    for id in [
        "createTask",
        "startTask",
        "listTasks",
        "listAudit",
        "updateTask",
    ] {
        assert!(ids.contains(id), "no operation {id}");
    }

    fn no_all_of(at: &str, v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let nullable_object = map.len() == 2
                    && map.get("nullable") == Some(&serde_json::Value::Bool(true))
                    && map
                        .get("allOf")
                        .and_then(|a| a.as_array())
                        .is_some_and(|members| {
                            members.len() == 1
                                && members[0].as_object().is_some_and(|m| {
                                    m.len() == 1
                                        && m["$ref"]
                                            .as_str()
                                            .is_some_and(|r| r.starts_with("#/components/schemas/"))
                                })
                        });
                assert!(
                    !map.contains_key("allOf") || nullable_object,
                    "allOf at {at}: {v}"
                );
                for (k, v) in map {
                    no_all_of(&format!("{at}/{k}"), v);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    no_all_of(&format!("{at}/{i}"), v);
                }
            }
            _ => {}
        }
    }
    no_all_of("#", &doc);

    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        (
            "Task",
            &["description", "assigned_to", "project_slug", "parent_id"][..],
        ),
        ("AuditLog", &["project_slug", "context"]),
        ("Worker", &["name"]),
        ("Me", &["email"]),
    ] {
        for field in fields {
            assert_eq!(
                schemas[schema]["properties"][field]["nullable"], true,
                "{schema}.{field} is sent as null, so it must be nullable"
            );
        }
    }
    assert_eq!(
        schemas["Task"]["properties"]["status"]["$ref"],
        "#/components/schemas/TaskStatus"
    );
}
