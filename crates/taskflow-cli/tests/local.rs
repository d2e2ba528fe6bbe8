//! Every command in local mode, on a temp SQLite file: the output, `--json`, exit codes.

mod common;

use common::{LocalDb, cli, id_of, json, ok, run};
use serde_json::json;

#[test]
fn every_task_command_works_on_a_local_file() {
    let db = LocalDb::new();
    let ada = || db.as_("ada");

    // The lead registers the agent; only an admin may.
    let refused = run(ada(), &["worker", "put", "bot-1", "--type", "agent"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(refused.stderr.trim(), "error: Admin role required");
    let worker = json(
        db.as_admin("lead"),
        &["worker", "put", "bot-1", "--type", "agent", "--name", "Bot"],
    );
    assert_eq!(worker["type"], "agent");
    assert_eq!(worker["name"], "Bot");
    let workers = json(ada(), &["worker", "ls"]);
    assert_eq!(workers.as_array().map(Vec::len), Some(1));
    let listed = ok(ada(), &["worker", "ls"]).stdout;
    assert!(
        listed.contains("bot-1") && listed.contains("agent"),
        "{listed}"
    );

    // create, show, list, edit.
    let docs = json(
        ada(),
        &[
            "create",
            "Write the docs",
            "--description",
            "All of them",
            "--priority",
            "high",
            "--project",
            "web",
        ],
    );
    assert_eq!(docs["title"], "Write the docs");
    assert_eq!(docs["status"], "pending");
    assert_eq!(docs["priority"], "high");
    assert_eq!(docs["project_slug"], "web");
    let docs_id = id_of(&docs);
    let review = json(ada(), &["create", "Review the docs", "--parent", &docs_id]);
    let review_id = id_of(&review);
    assert_eq!(review["parent_id"], docs["id"]);

    let shown = json(ada(), &["show", &docs_id]);
    assert_eq!(shown, docs, "show answers the task as created");
    let card = ok(ada(), &["show", &docs_id]).stdout;
    assert!(
        card.starts_with(&format!("#{docs_id} Write the docs\n")),
        "{card}"
    );
    assert!(card.contains("status      pending"), "{card}");
    assert!(card.contains("priority    high"), "{card}");
    assert!(card.contains("assignee    nobody"), "{card}");
    assert!(card.contains("[....................]   0%"), "{card}");
    assert!(card.contains("All of them"), "{card}");

    let list = json(ada(), &["list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let table = ok(ada(), &["list", "--project", "web"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID  STATUS"), "{table}");
    assert!(lines[1].contains("Write the docs"), "{table}");
    assert_eq!(lines[2], "1 task");

    let edited = json(
        ada(),
        &[
            "edit",
            &review_id,
            "--title",
            "Review them",
            "--assign",
            "bot-1",
        ],
    );
    assert_eq!(edited["title"], "Review them");
    assert_eq!(edited["assigned_to"], "bot-1");
    // Taking it away from its assignee is theirs (or an admin's) to do.
    let edited = json(
        db.as_("bot-1"),
        &["edit", &review_id, "--unassign", "--no-parent"],
    );
    assert_eq!(edited["assigned_to"], json!(null));
    assert_eq!(edited["parent_id"], json!(null));

    // Dependencies: review waits for docs.
    let deps = json(ada(), &["dep", "add", &review_id, &docs_id]);
    assert_eq!(deps["depends_on"], json!([docs["id"]]));
    assert_eq!(deps["waiting_on"], json!([docs["id"]]));
    let deps = json(ada(), &["dep", "ls", &docs_id]);
    assert_eq!(deps["dependents"], json!([review["id"]]));
    let waiting = run(ada(), &["start", &review_id]);
    assert_eq!(waiting.code, 4, "{waiting:?}");
    assert_eq!(
        waiting.stderr.trim(),
        format!("error: Task is waiting on unfinished dependencies: {docs_id}")
    );
    let ready = json(ada(), &["ready"]);
    assert_eq!(ready, json!([json(ada(), &["show", &docs_id])]));

    // The agent claims the next task with a lease and works it, naming its fence.
    let claimed = json(db.as_("bot-1"), &["next", "--lease", "600"]);
    assert_eq!(claimed["id"], docs["id"]);
    assert_eq!(claimed["status"], "in_progress");
    assert_eq!(claimed["assigned_to"], "bot-1");
    assert_eq!(claimed["fence"], 1);
    assert!(claimed["lease_expires_at"].is_string());
    let card = ok(db.as_("bot-1"), &["show", &docs_id]).stdout;
    assert!(card.contains("assignee    bot-1 (agent)"), "{card}");
    assert!(card.contains("left (fence 1)"), "{card}");
    assert!(
        card.contains(&format!("dependents  #{review_id}")),
        "{card}"
    );

    let bot = || db.as_("bot-1");
    let beat = json(
        bot(),
        &["heartbeat", &docs_id, "--fence", "1", "--lease", "900"],
    );
    assert_eq!(
        beat["version"], claimed["version"],
        "a heartbeat is not a change"
    );
    let half = json(
        bot(),
        &[
            "progress", &docs_id, "50", "--note", "half way", "--fence", "1",
        ],
    );
    assert_eq!(half["progress_percent"], 50);
    let in_review = json(bot(), &["review", &docs_id, "--fence", "1"]);
    assert_eq!(in_review["status"], "review");
    assert_eq!(in_review["lease_expires_at"], json!(null));
    let back = json(ada(), &["request-changes", &docs_id]);
    assert_eq!(back["status"], "in_progress");
    let blocked = json(bot(), &["block", &docs_id, "--reason", "waiting on CI"]);
    assert_eq!(blocked["status"], "blocked");
    let unblocked = json(bot(), &["unblock", &docs_id]);
    assert_eq!(unblocked["status"], "in_progress");
    let released = json(bot(), &["release", &docs_id]);
    assert_eq!(released["status"], "pending");
    assert_eq!(released["assigned_to"], json!(null));
    assert_eq!(released["progress_percent"], 50, "release keeps progress");

    // A plain start (no lease), then complete; the dependent becomes ready.
    let started = json(bot(), &["start", &docs_id]);
    assert_eq!(started["lease_expires_at"], json!(null));
    assert_eq!(started["fence"], 2);
    let done = json(bot(), &["complete", &docs_id, "--fence", "2"]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress_percent"], 100);
    let deps = json(ada(), &["dep", "ls", &review_id]);
    assert_eq!(deps["waiting_on"], json!([]));

    // The audit trail, whole and searched.
    let trail = json(ada(), &["audit", &docs_id]);
    let actions: Vec<&str> = trail
        .as_array()
        .expect("a list")
        .iter()
        .map(|row| row["action"].as_str().expect("an action"))
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "started",
            "progressed",
            "review_requested",
            "changes_requested",
            "blocked",
            "unblocked",
            "released",
            "started",
            "completed"
        ]
    );
    assert_eq!(trail[1]["actor_id"], "bot-1");
    assert_eq!(trail[1]["actor_type"], "agent");
    let history = ok(ada(), &["audit", &docs_id]).stdout;
    assert!(history.contains("bot-1 (agent)"), "{history}");
    assert!(history.contains("note=half way percent=50"), "{history}");
    let started_rows = json(ada(), &["audit", "--action", "started", "--actor", "bot-1"]);
    assert_eq!(started_rows.as_array().map(Vec::len), Some(2));

    // Remove the edge; delete (admin only); the trail outlives the task.
    let removed = ok(ada(), &["dep", "rm", &review_id, &docs_id]);
    assert_eq!(
        removed.stdout,
        format!("Task {review_id} no longer depends on task {docs_id}\n")
    );
    json(ada(), &["dep", "add", &review_id, &docs_id]);
    let quiet = ok(ada(), &["dep", "rm", &review_id, &docs_id, "--json"]);
    assert_eq!(quiet.stdout, "", "a 204 has no JSON to print");
}

#[test]
fn removing_a_missing_edge_is_not_found() {
    let db = LocalDb::new();
    let a = json(db.as_("ada"), &["create", "A"]);
    let b = json(db.as_("ada"), &["create", "B"]);
    let missing = run(
        db.as_("ada"),
        &["dep", "rm", &id_of(&a), &id_of(&b), "--json"],
    );
    assert_eq!(missing.code, 3, "{missing:?}");
    assert_eq!(missing.error(), ("Dependency not found".to_owned(), 404));
}

#[test]
fn delete_whoami_and_the_admin_role() {
    let db = LocalDb::new();
    let task = json(db.as_("ada"), &["create", "Doomed"]);
    let id = id_of(&task);
    let refused = run(db.as_("ada"), &["delete", &id, "--json"]);
    assert_eq!(refused.code, 4);
    assert_eq!(refused.error(), ("Admin role required".to_owned(), 403));
    let deleted = ok(db.as_admin("lead"), &["delete", &id]);
    assert_eq!(deleted.stdout, format!("Deleted task {id}\n"));
    let other = id_of(&json(db.as_("ada"), &["create", "Also doomed"]));
    let quiet = ok(db.as_admin("lead"), &["delete", &other, "--json"]);
    assert_eq!(quiet.stdout, "", "a 204 has no JSON to print");
    let gone = run(db.as_("ada"), &["show", &id]);
    assert_eq!(gone.code, 3);
    assert_eq!(gone.stderr, "error: Task not found\n");
    let trail = json(db.as_("ada"), &["audit", &id]);
    assert_eq!(trail[1]["action"], "deleted");

    let me = json(db.as_("ada"), &["whoami"]);
    assert_eq!(
        me,
        json!({"id": "ada", "email": null, "role": "user", "actor_type": "human"})
    );
    assert_eq!(json(db.as_admin("lead"), &["whoami"])["role"], "admin");
    assert_eq!(
        ok(db.as_("ada"), &["whoami"]).stdout,
        "ada (human, role user)\n"
    );
}

#[test]
fn exit_codes_name_what_went_wrong() {
    let db = LocalDb::new();
    let task = json(db.as_("ada"), &["create", "T"]);
    let id = id_of(&task);
    let id = id.as_str();

    // 3: not found, in both output styles.
    let missing = run(db.as_("ada"), &["show", "999", "--json"]);
    assert_eq!(missing.code, 3);
    assert_eq!(missing.stdout, "", "nothing on stdout");
    assert_eq!(missing.error(), ("Task not found".to_owned(), 404));

    // 4: the lifecycle (400), the policy (403), a lost lease (409).
    let early = run(db.as_("ada"), &["complete", id, "--json"]);
    assert_eq!(early.code, 4);
    assert_eq!(
        early.error(),
        ("Cannot complete task with status 'pending'".to_owned(), 400)
    );
    json(db.as_("ada"), &["start", id]);
    let not_yours = run(db.as_("eve"), &["progress", id, "10", "--json"]);
    assert_eq!(not_yours.code, 4);
    assert_eq!(
        not_yours.error(),
        (
            "Only the assignee or an admin can report progress on this task".to_owned(),
            403
        )
    );
    let stale = run(
        db.as_("ada"),
        &["progress", id, "10", "--fence", "7", "--json"],
    );
    assert_eq!(stale.code, 4);
    assert_eq!(
        stale.error(),
        ("Lease lost: task is at fence 1".to_owned(), 409)
    );

    // 1: a validation error (422) is neither usage nor a refusal.
    let invalid = run(db.as_("ada"), &["progress", id, "150", "--json"]);
    assert_eq!(invalid.code, 1);
    assert_eq!(invalid.error().1, 422);
    let bad_limit = run(db.as_("ada"), &["list", "--limit", "0"]);
    assert_eq!(bad_limit.code, 1);
    assert_eq!(
        bad_limit.stderr,
        "error: limit: must be between 1 and 100\n"
    );

    // 2: usage.
    for args in [
        vec!["progress", id],                            // no percent
        vec!["frobnicate"],                              // no such command
        vec!["list", "--status", "done"],                // not a status
        vec!["edit", id, "--assign", "x", "--unassign"], // contradiction
    ] {
        let wrong = run(db.as_("ada"), &args);
        assert_eq!(wrong.code, 2, "{args:?}: {wrong:?}");
        assert_eq!(wrong.stdout, "");
    }
    let no_actor = run(cli(), &["--db", db.path.to_str().expect("utf-8"), "list"]);
    assert_eq!(no_actor.code, 2);
    assert!(no_actor.stderr.contains("--as"), "{no_actor:?}");
    let no_mode = run(cli(), &["list"]);
    assert_eq!(no_mode.code, 2);
    assert!(no_mode.stderr.contains("--server") && no_mode.stderr.contains("--db"));
    let token_here = run(db.as_("ada"), &["list", "--token", "x"]);
    assert_eq!(token_here.code, 2, "{token_here:?}");
}

#[test]
fn next_with_nothing_ready_exits_3_and_a_loop_drains_the_queue() {
    let db = LocalDb::new();
    let empty = run(db.as_("bot"), &["next", "--json"]);
    assert_eq!(empty.code, 3);
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "Nothing is ready\n");
    let plain = run(db.as_("bot"), &["next"]);
    assert_eq!(
        (plain.code, plain.stderr.as_str()),
        (3, "Nothing is ready\n")
    );

    for title in ["one", "two", "three"] {
        json(db.as_("ada"), &["create", title]);
    }
    // The loop from the spec: each claimed task is printed as one JSON line.
    let script = format!(
        "while \"$0\" --db '{}' --as bot next --json; do :; done",
        db.path.display()
    );
    let drained = ok(
        assert_cmd::Command::new("sh"),
        &["-c", &script, common::BIN],
    );
    let claimed: Vec<serde_json::Value> = drained
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON task per line"))
        .collect();
    assert_eq!(claimed.len(), 3, "{drained:?}");
    assert!(claimed.iter().all(|t| t["assigned_to"] == "bot"));
    assert_eq!(drained.stderr, "Nothing is ready\n");
}

#[test]
fn an_idempotency_key_makes_a_write_happen_once() {
    let db = LocalDb::new();
    let args = ["create", "Once", "--idempotency-key", "create-once-1"];
    let first = json(db.as_("ada"), &args);
    let second = json(db.as_("ada"), &args);
    assert_eq!(first, second, "the replay answers the stored task");
    assert_eq!(
        json(db.as_("ada"), &["list"]).as_array().map(Vec::len),
        Some(1)
    );
    let reused = run(
        db.as_("ada"),
        &[
            "create",
            "Other",
            "--idempotency-key",
            "create-once-1",
            "--json",
        ],
    );
    assert_eq!(reused.code, 1);
    assert_eq!(
        reused.error(),
        (
            "Idempotency-Key: reused with a different request".to_owned(),
            422
        )
    );
}

#[test]
fn help_version_and_completions() {
    let help = ok(cli(), &["--help"]).stdout;
    for command in [
        "list",
        "ready",
        "show",
        "create",
        "edit",
        "start",
        "next",
        "heartbeat",
        "progress",
        "review",
        "request-changes",
        "complete",
        "block",
        "unblock",
        "release",
        "delete",
        "dep",
        "audit",
        "worker",
        "whoami",
        "serve",
        "mcp",
        "completions",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from help"
        );
    }
    assert!(help.contains("Exit codes"));
    let version = ok(cli(), &["--version"]).stdout;
    assert_eq!(version, format!("taskflow {}\n", env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(cli(), &["completions", shell]).stdout;
        assert!(script.contains("taskflow"), "{shell}");
        assert!(script.contains("request-changes"), "{shell}");
    }
    assert_eq!(run(cli(), &["completions", "tcsh"]).code, 2);
}

#[test]
fn mcp_serves_the_tools_on_stdio() {
    let db = LocalDb::new();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "create_task", "arguments": {"title": "Over MCP"}}}),
    ];
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let mut cmd = db.as_("agent-9");
    cmd.arg("mcp").write_stdin(input);
    let out = cmd.output().expect("the MCP server runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON-RPC"))
        .collect();
    let created = answers
        .iter()
        .find(|a| a["id"] == 2)
        .expect("an answer to the tool call");
    assert_eq!(created["result"]["isError"], false, "{created}");
    // The task is in the file, created by the MCP caller.
    let trail = json(db.as_("ada"), &["audit", "1"]);
    assert_eq!(trail[0]["actor_id"], "agent-9");
}
