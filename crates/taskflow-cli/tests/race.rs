//! Two agents, ten CLI processes each, racing `taskflow next` on one local SQLite file with ten
//! tasks: every task goes to exactly one process, and none to two.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use common::{BIN, LocalDb, json};

#[test]
fn racing_next_processes_never_share_a_task() {
    let db = LocalDb::new();
    for i in 0..10 {
        json(db.as_("lead"), &["create", &format!("Task {i}")]);
    }
    // Spawn them all before waiting for any, so that their claims overlap.
    let children: Vec<_> = (0..20)
        .map(|i| {
            let actor = if i % 2 == 0 { "agent-a" } else { "agent-b" };
            Command::new(BIN)
                .env_remove("TASKFLOW_URL")
                .env_remove("TASKFLOW_TOKEN")
                .arg("--db")
                .arg(&db.path)
                .args(["--as", actor, "next", "--json", "--lease", "600"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn the CLI")
        })
        .collect();
    let mut claimed = Vec::new();
    let mut empty = 0;
    for child in children {
        let out = child.wait_with_output().expect("the CLI finishes");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                let task: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("a task as JSON");
                assert_eq!(task["status"], "in_progress");
                claimed.push((
                    task["id"].as_i64().expect("an id"),
                    task["assigned_to"]
                        .as_str()
                        .expect("an assignee")
                        .to_owned(),
                ));
            }
            Some(3) => {
                assert_eq!(stderr, "Nothing is ready\n");
                assert!(out.stdout.is_empty());
                empty += 1;
            }
            other => panic!("a claim failed with {other:?}: {stderr}"),
        }
    }
    let ids: HashSet<i64> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids.len(),
        claimed.len(),
        "a task was claimed twice: {claimed:?}"
    );
    assert_eq!(claimed.len(), 10, "every task was claimed once");
    assert_eq!(empty, 10, "the other ten found nothing ready");

    // The file agrees: each task is held by the process that was told it got it, and was
    // started exactly once.
    for (id, actor) in &claimed {
        let task = json(db.as_("lead"), &["show", &id.to_string()]);
        assert_eq!(task["assigned_to"], actor.as_str());
        let trail = json(db.as_("lead"), &["audit", &id.to_string()]);
        let starts = trail
            .as_array()
            .expect("a list")
            .iter()
            .filter(|row| row["action"] == "started")
            .count();
        assert_eq!(starts, 1, "task {id}: {trail}");
    }
}
