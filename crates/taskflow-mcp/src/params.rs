//! The tools' arguments. Each struct is one tool's input: its JSON Schema (with a description
//! per field, from the doc comments here) is what `tools/list` shows an agent, and its fields
//! carry the HTTP API's names (`title`, `priority`, `project_slug`, `percent`, `fence`, …; one
//! task is `task_id`).
//!
//! Nothing here checks a value beyond its JSON type: ranges, lengths and spellings are checked
//! by core, with the same messages as the HTTP API. Unknown fields are ignored, as the HTTP API
//! ignores them.

use rmcp::schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use taskflow_core::model::{Priority, StringEnum, TaskStatus};

/// A text enum of core's (`TaskStatus`, `Priority`) as a JSON Schema string enum, its values
/// spelled by core.
fn string_enum<T: StringEnum>() -> Schema {
    json_schema!({
        "type": "string",
        "enum": T::NAMES,
    })
}

/// Every tool's input schema goes through this: an optional argument is described by its plain
/// type (`{"type": "integer"}`, not `{"type": ["integer", "null"], "default": null}`) and left
/// out of `required`; its description is one line. Absent means "not given", which every client's schema dialect can express
/// (a `type` list is legal JSON Schema, but some model providers' function-calling dialects
/// refuse it). `null` is still accepted.
fn plain_optionals(schema: &mut Schema) {
    let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for property in properties.values_mut() {
        let Some(property) = property.as_object_mut() else {
            continue;
        };
        if let Some(serde_json::Value::Array(types)) = property.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                property.insert("type".to_owned(), only);
            }
        }
        if property.get("default") == Some(&serde_json::Value::Null) {
            property.remove("default");
        }
        // Doc comments wrap at the source's width; a description is one paragraph.
        if let Some(serde_json::Value::String(about)) = property.get_mut("description") {
            *about = about.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
}

/// A field where `null` means "clear it": its type or `null`, as `anyOf` branches of one type
/// each (the most portable spelling of a nullable value).
fn nullable(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(serde_json::Value::Array(types)) = object.remove("type") else {
        return;
    };
    let mut value = serde_json::Map::new();
    for key in ["format", "minimum", "maximum"] {
        if let Some(v) = object.remove(key) {
            value.insert(key.to_owned(), v);
        }
    }
    let branches: Vec<serde_json::Value> = types
        .into_iter()
        .map(|t| {
            if t == "null" {
                serde_json::json!({ "type": "null" })
            } else {
                let mut branch = value.clone();
                branch.insert("type".to_owned(), t);
                serde_json::Value::Object(branch)
            }
        })
        .collect();
    object.insert("anyOf".to_owned(), branches.into());
    object.remove("default");
}

fn status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<TaskStatus>()
}

fn priority_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<Priority>()
}

/// `null` is `Some(None)` (clear the field), an absent field is `None` (with `#[serde(default)]`).
fn clearable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `get_task`, `task_history`: one task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct TaskId {
    /// The task's id.
    pub task_id: i64,
}

/// `submit_for_review`, `complete_task`, `unblock_task`, `release_task`: a lifecycle move on
/// one task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct TaskMove {
    /// The task's id.
    pub task_id: i64,
    /// The fence you were given when you claimed the task; if another holder has taken it over
    /// since, the call is refused with `Lease lost`. Omit it if you hold no lease.
    #[serde(default)]
    pub fence: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `list_tasks`: filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct ListTasks {
    /// Only tasks with this status.
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<String>,
    /// Only tasks assigned to this actor id.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// Only tasks of this project slug.
    #[serde(default)]
    pub project: Option<String>,
    /// Only tasks with this priority.
    #[serde(default)]
    #[schemars(schema_with = "priority_schema")]
    pub priority: Option<String>,
    /// Only subtasks of this task.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Page size, 1..=100 (default 50).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Tasks to skip (default 0).
    #[serde(default)]
    pub offset: Option<i64>,
}

/// `ready_tasks`: filters and paging of the caller's ready queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct ReadyTasks {
    /// Only tasks of this project slug.
    #[serde(default)]
    pub project: Option<String>,
    /// Page size, 1..=100 (default 50).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Tasks to skip (default 0).
    #[serde(default)]
    pub offset: Option<i64>,
}

/// `create_task`: the new task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct CreateTask {
    /// Required; trimmed, then 1..=200 characters.
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `pending` (the default) or `blocked`.
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<String>,
    /// How urgent (default `medium`).
    #[serde(default)]
    #[schemars(schema_with = "priority_schema")]
    pub priority: Option<String>,
    /// 0..=100 (default 0).
    #[serde(default)]
    pub progress_percent: Option<i32>,
    /// Who owns it from the start (an actor id), if anyone.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// The project slug, if any.
    #[serde(default)]
    pub project_slug: Option<String>,
    /// The parent task's id, if any; it must exist.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `update_task`: the fields to change. An absent field is unchanged; `null` clears a field
/// that can be empty (`description`, `assigned_to`, `project_slug`, `parent_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct UpdateTask {
    /// The task's id.
    pub task_id: i64,
    /// The fence you were given when you claimed the task; if another holder has taken it over
    /// since, the call is refused with `Lease lost`. Omit it if you hold no lease.
    #[serde(default)]
    pub fence: Option<i64>,
    /// New title (trimmed, 1..=200 characters).
    #[serde(default)]
    pub title: Option<String>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "clearable")]
    #[schemars(transform = nullable)]
    pub description: Option<Option<String>>,
    /// A status move; it must be one the lifecycle allows from the task's status (prefer the
    /// lifecycle tools).
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    pub status: Option<String>,
    /// New priority.
    #[serde(default)]
    #[schemars(schema_with = "priority_schema")]
    pub priority: Option<String>,
    /// New progress, 0..=100.
    #[serde(default)]
    pub progress_percent: Option<i32>,
    /// New assignee (an actor id); `null` unassigns.
    #[serde(default, deserialize_with = "clearable")]
    #[schemars(transform = nullable)]
    pub assigned_to: Option<Option<String>>,
    /// New project slug; `null` clears it.
    #[serde(default, deserialize_with = "clearable")]
    #[schemars(transform = nullable)]
    pub project_slug: Option<Option<String>>,
    /// New parent task's id (it must exist and not be this task or below it); `null` clears it.
    #[serde(default, deserialize_with = "clearable")]
    #[schemars(transform = nullable)]
    pub parent_id: Option<Option<i64>>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `claim_next`: which queue, and the lease to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct ClaimNext {
    /// Only tasks of this project slug.
    #[serde(default)]
    pub project: Option<String>,
    /// The lease to hold, 10..=86400 seconds (default: the server's `LEASE_SECONDS`). Renew it
    /// with `heartbeat` before it runs out, or the task goes back to the queue.
    #[serde(default)]
    pub lease_seconds: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `claim_task`: start one task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct ClaimTask {
    /// The task's id.
    pub task_id: i64,
    /// Hold the task with a lease of this many seconds (10..=86400), renewed by `heartbeat`
    /// and reclaimed when it runs out. Without it you hold the task until you let go.
    #[serde(default)]
    pub lease_seconds: Option<i64>,
    /// The fence you expect the task to be at; refused with `Lease lost` if it is at another.
    #[serde(default)]
    pub fence: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `heartbeat`: extend a lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct Heartbeat {
    /// The task's id.
    pub task_id: i64,
    /// The fence you were given when you claimed the task; refused with `Lease lost` if
    /// another holder has taken it over since.
    #[serde(default)]
    pub fence: Option<i64>,
    /// The new lease length, 10..=86400 seconds (default: the length it was granted with).
    #[serde(default)]
    pub lease_seconds: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `update_progress`: report progress.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct UpdateProgress {
    /// The task's id.
    pub task_id: i64,
    /// How far along, 0..=100.
    pub percent: i32,
    /// A note for the audit trail.
    #[serde(default)]
    pub note: Option<String>,
    /// The fence you were given when you claimed the task; refused with `Lease lost` if
    /// another holder has taken it over since.
    #[serde(default)]
    pub fence: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `block_task`: block a task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct BlockTask {
    /// The task's id.
    pub task_id: i64,
    /// Why it is blocked, for the audit trail.
    #[serde(default)]
    pub reason: Option<String>,
    /// The fence you were given when you claimed the task; refused with `Lease lost` if
    /// another holder has taken it over since.
    #[serde(default)]
    pub fence: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `add_dependency`: make one task wait for another.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = plain_optionals)]
pub struct AddDependency {
    /// The task that will wait.
    pub task_id: i64,
    /// The task it will wait for: it cannot start until this one is completed.
    pub depends_on: i64,
    /// The fence you were given when you claimed the task; refused with `Lease lost` if
    /// another holder has taken it over since.
    #[serde(default)]
    pub fence: Option<i64>,
    /// Names this write so that a retry is safe: a repeat with the same key and arguments
    /// returns the first answer instead of acting again (1 to 255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use rmcp::handler::server::tool::schema_for_input;
    use serde_json::{Value, json};

    use super::*;

    fn schema<T: JsonSchema + 'static>() -> Value {
        Value::Object(schema_for_input::<T>().unwrap().as_ref().clone())
    }

    #[test]
    fn optional_arguments_are_plain_types_and_clearable_ones_any_of_null() {
        let update = schema::<UpdateTask>();
        assert_eq!(update["required"], json!(["task_id"]));
        let props = &update["properties"];
        assert_eq!(props["fence"]["type"], "integer");
        assert!(props["fence"].get("default").is_none());
        assert_eq!(props["title"]["type"], "string");
        assert_eq!(props["status"]["type"], "string");
        assert_eq!(
            props["priority"]["enum"],
            json!(["low", "medium", "high", "critical"])
        );
        assert_eq!(
            props["description"]["anyOf"],
            json!([{"type": "string"}, {"type": "null"}])
        );
        assert_eq!(
            props["parent_id"]["anyOf"],
            json!([{"type": "integer", "format": "int64"}, {"type": "null"}])
        );
        assert!(
            props["description"]["description"]
                .as_str()
                .unwrap()
                .contains("null")
        );
    }

    #[test]
    fn no_schema_has_a_type_list() {
        for schema in [
            schema::<TaskId>(),
            schema::<TaskMove>(),
            schema::<ListTasks>(),
            schema::<ReadyTasks>(),
            schema::<CreateTask>(),
            schema::<UpdateTask>(),
            schema::<ClaimNext>(),
            schema::<ClaimTask>(),
            schema::<Heartbeat>(),
            schema::<UpdateProgress>(),
            schema::<BlockTask>(),
            schema::<AddDependency>(),
        ] {
            for (name, property) in schema["properties"].as_object().unwrap() {
                assert!(!property["type"].is_array(), "{name}: {property}");
                assert!(property.get("default").is_none(), "{name}: {property}");
                let about = property["description"].as_str().unwrap();
                assert!(
                    !about.is_empty() && !about.contains('\n'),
                    "{name}: {property}"
                );
            }
        }
    }

    #[test]
    fn clearable_fields_tell_absent_from_null() {
        let p: UpdateTask =
            serde_json::from_value(json!({"task_id": 1, "description": null, "title": "t"}))
                .unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.assigned_to, None);
        assert_eq!(p.title.as_deref(), Some("t"));
        let p: ListTasks = serde_json::from_value(json!({"status": null, "limit": 5})).unwrap();
        assert_eq!(p.status, None);
        assert_eq!(p.limit, Some(5));
    }
}
