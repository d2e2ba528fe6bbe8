//! Every command in remote mode, against a real server started here: `--json` prints exactly
//! what the API answers (fetched with reqwest to compare), exit codes, and the same output as
//! local mode.

mod common;

use common::{LocalDb, Server, id_of, json, ok, run};
use serde_json::{Value, json};

/// `--json` for a write that answers a task equals the task as the API serves it right after.
fn same_as_api(server: &Server, task: &Value) {
    let api = server.get_ok(&format!("/api/tasks/{}", id_of(task)), "reader");
    assert_eq!(task, &api, "the CLI printed the API's JSON");
}

#[test]
fn every_task_command_prints_the_api_json() {
    let s = Server::shared();
    let ada = || s.as_("ada");
    let bot = || s.as_("bot-r");

    let worker = json(
        s.as_admin(),
        &["worker", "put", "bot-r", "--type", "agent", "--name", "Bot"],
    );
    assert_eq!(worker, s.get_ok("/api/workers/bot-r", "ada"));
    let workers = json(ada(), &["worker", "ls"]);
    assert_eq!(workers, s.get_ok("/api/workers", "ada"));

    let docs = json(
        ada(),
        &[
            "create",
            "Docs",
            "-d",
            "All",
            "-p",
            "critical",
            "--project",
            "rwalk",
        ],
    );
    same_as_api(s, &docs);
    let docs_id = id_of(&docs);
    let review = json(ada(), &["create", "Review", "--project", "rwalk"]);
    let review_id = id_of(&review);

    // Reads print what the endpoint answers.
    assert_eq!(
        json(ada(), &["show", &docs_id]),
        s.get_ok(&format!("/api/tasks/{docs_id}"), "ada")
    );
    assert_eq!(
        json(ada(), &["list", "--project", "rwalk"]),
        s.get_ok("/api/tasks?project=rwalk", "ada")
    );
    assert_eq!(
        json(
            ada(),
            &["list", "--project", "rwalk", "--priority", "critical"]
        ),
        json!([docs])
    );

    let edited = json(
        ada(),
        &["edit", &review_id, "--assign", "ada", "-p", "high"],
    );
    same_as_api(s, &edited);
    assert_eq!(edited["assigned_to"], "ada");
    let edited = json(ada(), &["edit", &review_id, "--unassign"]);
    same_as_api(s, &edited);

    let deps = json(ada(), &["dep", "add", &review_id, &docs_id]);
    let api_deps = s.get_ok(&format!("/api/tasks/{review_id}/dependencies"), "ada");
    assert_eq!(deps, api_deps);
    assert_eq!(json(ada(), &["dep", "ls", &review_id]), api_deps);

    assert_eq!(
        json(ada(), &["ready", "--project", "rwalk"]),
        s.get_ok("/api/tasks/ready?project=rwalk", "ada")
    );

    let claimed = json(bot(), &["next", "--project", "rwalk", "--lease", "600"]);
    assert_eq!(claimed["id"], docs["id"], "the critical task first");
    assert_eq!(claimed["fence"], 1);
    same_as_api(s, &claimed);
    let card = ok(bot(), &["show", &docs_id]).stdout;
    assert!(card.contains("assignee    bot-r (agent)"), "{card}");
    assert!(card.contains("left (fence 1)"), "{card}");
    assert!(card.contains("priority    critical"), "{card}");

    for (args, status) in [
        (
            vec!["heartbeat", &docs_id, "--fence", "1", "--lease", "900"],
            "in_progress",
        ),
        (
            vec!["progress", &docs_id, "40", "--note", "n", "--fence", "1"],
            "in_progress",
        ),
        (vec!["review", &docs_id, "--fence", "1"], "review"),
        (vec!["request-changes", &docs_id], "in_progress"),
        (vec!["block", &docs_id, "--reason", "CI"], "blocked"),
        (vec!["unblock", &docs_id], "in_progress"),
        (vec!["release", &docs_id], "pending"),
        (vec!["start", &docs_id, "--lease", "60"], "in_progress"),
        (vec!["complete", &docs_id, "--fence", "2"], "completed"),
    ] {
        let task = json(bot(), &args);
        assert_eq!(task["status"], status, "{args:?}");
        same_as_api(s, &task);
    }

    let trail = json(ada(), &["audit", &docs_id]);
    assert_eq!(
        trail,
        s.get_ok(&format!("/api/tasks/{docs_id}/audit"), "ada")
    );
    assert_eq!(trail[1]["actor_type"], "agent");
    assert_eq!(
        json(
            ada(),
            &["audit", "--project", "rwalk", "--action", "started"]
        ),
        s.get_ok("/api/audit?project=rwalk&action=started", "ada")
    );

    let removed = ok(ada(), &["dep", "rm", &review_id, &docs_id]);
    assert_eq!(
        removed.stdout,
        format!("Task {review_id} no longer depends on task {docs_id}\n")
    );
    let deleted = ok(s.as_admin(), &["delete", &review_id, "--json"]);
    assert_eq!(deleted.stdout, "");
    assert_eq!(s.get(&format!("/api/tasks/{review_id}"), "ada").0, 404);

    let me = json(ada(), &["whoami"]);
    assert_eq!(me, s.get_ok("/api/me", "ada"));
    assert_eq!(me["actor_type"], "human");
}

#[test]
fn global_flags_work_after_the_command_too() {
    let s = Server::shared();
    let token = s.token("late", "user");
    let mut cmd = common::cli();
    cmd.args(["create", "Flags last", "--project", "late"]);
    let created = run(
        cmd,
        &[
            "--server",
            s.base.as_str(),
            "--token",
            token.as_str(),
            "--json",
        ],
    )
    .json();
    same_as_api(s, &created);
}

#[test]
fn exit_codes_over_http() {
    let s = Server::shared();
    let task = json(s.as_("ada"), &["create", "Codes", "--project", "codes"]);
    let id = id_of(&task);
    let id = id.as_str();

    let missing = run(s.as_("ada"), &["show", "987654", "--json"]);
    assert_eq!(missing.code, 3);
    assert_eq!(missing.stdout, "");
    assert_eq!(missing.error(), ("Task not found".to_owned(), 404));

    let early = run(s.as_("ada"), &["complete", id, "--json"]);
    assert_eq!(early.code, 4);
    assert_eq!(
        early.error(),
        ("Cannot complete task with status 'pending'".to_owned(), 400)
    );
    json(s.as_("ada"), &["start", id]);
    let not_yours = run(s.as_("eve"), &["block", id]);
    assert_eq!(not_yours.code, 4);
    assert_eq!(
        not_yours.stderr,
        "error: Only the assignee or an admin can block this task\n"
    );
    let stale = run(s.as_("ada"), &["complete", id, "--fence", "9", "--json"]);
    assert_eq!(stale.code, 4);
    assert_eq!(
        stale.error(),
        ("Lease lost: task is at fence 1".to_owned(), 409)
    );
    let invalid = run(s.as_("ada"), &["heartbeat", id, "--lease", "5", "--json"]);
    assert_eq!(invalid.code, 1, "422 is neither usage nor a refusal");
    assert_eq!(invalid.error().1, 422);

    // 5: no token, a bad token.
    let mut anonymous = common::cli();
    anonymous.env("TASKFLOW_URL", &s.base);
    let no_token = run(anonymous, &["list", "--json"]);
    assert_eq!(no_token.code, 5);
    assert_eq!(no_token.error(), ("Not authenticated".to_owned(), 401));
    let forged = run(s.with_token("not.a.jwt"), &["list"]);
    assert_eq!(forged.code, 5);
    assert!(
        forged.stderr.starts_with("error: Invalid token: "),
        "{forged:?}"
    );

    // 2: usage, before anything is sent.
    let wrong = run(s.as_("ada"), &["start"]);
    assert_eq!(wrong.code, 2);
    let not_here = run(s.as_("ada"), &["list", "--as", "ada"]);
    assert_eq!(not_here.code, 2, "{not_here:?}");
    let bad_url = run(common::cli(), &["list", "--server", "localhost:8000"]);
    assert_eq!(bad_url.code, 2, "{bad_url:?}");

    // 1: nobody answers.
    let nobody = run(
        common::cli(),
        &["list", "--server", "http://127.0.0.1:9", "--json"],
    );
    assert_eq!(nobody.code, 1);
    let (message, status) = nobody.error();
    assert_eq!(status, 0, "no HTTP status");
    assert!(message.starts_with("cannot reach the server"), "{message}");
}

#[test]
fn next_with_nothing_ready_exits_3() {
    let s = Server::shared();
    let empty = run(
        s.as_("bot"),
        &["next", "--project", "nothing-here", "--json"],
    );
    assert_eq!(empty.code, 3);
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "Nothing is ready\n");
}

#[test]
fn a_retried_write_with_a_key_acts_once() {
    let s = Server::shared();
    let args = [
        "create",
        "Keyed",
        "--project",
        "keyed",
        "--idempotency-key",
        "cli-key-1",
    ];
    let first = json(s.as_("ada"), &args);
    let second = json(s.as_("ada"), &args);
    assert_eq!(first, second);
    let bad = common::run(
        s.as_("ada"),
        &[
            "create",
            "Keyed",
            "--idempotency-key",
            "not visible",
            "--json",
        ],
    );
    assert_eq!(bad.code, 1);
    assert_eq!(
        bad.error(),
        (
            "Idempotency-Key: must be 1 to 255 visible ASCII characters".to_owned(),
            422
        )
    );
    assert_eq!(
        s.get_ok("/api/tasks?project=keyed", "ada")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// Blanks what differs between two stores for the same operation: ids and times.
fn normalised(mut task: Value) -> Value {
    for field in ["id", "created_at", "updated_at", "lease_expires_at"] {
        if !task[field].is_null() {
            task[field] = json!("…");
        }
    }
    task
}

#[test]
fn local_and_remote_print_the_same() {
    let s = Server::shared();
    let db = LocalDb::new();
    let create = [
        "create",
        "Same everywhere",
        "--description",
        "one path",
        "--priority",
        "low",
        "--project",
        "same",
    ];
    let remote = json(s.as_("ada"), &create);
    let local = json(db.as_("ada"), &create);
    assert_eq!(normalised(remote.clone()), normalised(local.clone()));
    // The same keys, in the same order, with the same spellings: byte for byte once the ids
    // and times agree.
    assert_eq!(
        serde_json::to_string(&normalised(remote.clone())).expect("JSON"),
        serde_json::to_string(&normalised(local.clone())).expect("JSON")
    );

    let (r, l) = (id_of(&remote), id_of(&local));
    for (remote_args, local_args) in [
        (vec!["start", r.as_str()], vec!["start", l.as_str()]),
        (
            vec!["progress", r.as_str(), "30", "--note", "a third"],
            vec!["progress", l.as_str(), "30", "--note", "a third"],
        ),
    ] {
        let remote = json(s.as_("ada"), &remote_args);
        let local = json(db.as_("ada"), &local_args);
        assert_eq!(normalised(remote), normalised(local), "{remote_args:?}");
    }

    // The cards, but for the id and the times.
    let card = |text: String, id: &str| -> String {
        text.lines()
            .filter(|line| !line.trim_start().starts_with("version"))
            .map(|line| line.replace(&format!("#{id} "), "#ID "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let remote_card = card(ok(s.as_("ada"), &["show", &r]).stdout, &r);
    let local_card = card(ok(db.as_("ada"), &["show", &l]).stdout, &l);
    assert_eq!(remote_card, local_card);
    assert!(
        remote_card.contains("[######..............]  30%"),
        "{remote_card}"
    );

    // The same refusal, the same words and exit code, in both output styles.
    for extra in [None, Some("--json")] {
        let mut remote_args = vec!["start", r.as_str()];
        let mut local_args = vec!["start", l.as_str()];
        remote_args.extend(extra);
        local_args.extend(extra);
        let remote = run(s.as_("ada"), &remote_args);
        let local = run(db.as_("ada"), &local_args);
        assert_eq!(remote.code, 4);
        assert_eq!((remote.code, &remote.stderr), (local.code, &local.stderr));
    }
    let trail = |runs: Value| -> Vec<Value> {
        runs.as_array()
            .expect("a list")
            .iter()
            .map(|row| {
                json!([
                    row["action"],
                    row["actor_id"],
                    row["actor_type"],
                    row["context"]
                ])
            })
            .collect()
    };
    assert_eq!(
        trail(json(s.as_("ada"), &["audit", &r])),
        trail(json(db.as_("ada"), &["audit", &l]))
    );
}
