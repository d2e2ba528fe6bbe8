//! `taskflow serve` runs the real server (dev auth, a SQLite file from `--db`), and the CLI in
//! remote mode talks to it; local mode sees the same file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{BIN, LocalDb, cli, id_of, json, ok};

/// Kills the server when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_runs_the_server_the_cli_talks_to() {
    let db = LocalDb::new();
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", "0")
        .arg("serve")
        .arg("--db")
        .arg(&db.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("its stdout");
    let server = Running(child);

    // The banner: the address first, the dev token after "Admin token".
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut token = None;
    let mut after_token_header = false;
    for line in lines.by_ref() {
        let line = line.expect("a banner line");
        if let Some(rest) = line.split(" listening on ").nth(1) {
            base = Some(rest.trim().to_owned());
        }
        if line.starts_with("Admin token") {
            after_token_header = true;
        } else if after_token_header && line.starts_with("ey") {
            token = Some(line.trim().to_owned());
            break;
        }
    }
    let base = base.expect("the banner names the address");
    let token = token.expect("dev mode prints a token");
    // Keep reading the banner so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let remote = || {
        let mut cmd = cli();
        cmd.env("TASKFLOW_URL", &base).env("TASKFLOW_TOKEN", &token);
        cmd
    };
    let created = json(remote(), &["create", "Served", "--project", "served"]);
    let id = id_of(&created);
    let claimed = json(remote(), &["next", "--project", "served"]);
    assert_eq!(claimed["id"], created["id"]);
    let done = json(remote(), &["complete", &id, "--fence", "1"]);
    assert_eq!(done["status"], "completed");
    let me = json(remote(), &["whoami"]);
    assert_eq!(me["role"], "admin");

    // The server wrote to the --db file: local mode reads the same task and trail.
    let local = json(db.as_("reader"), &["show", &id]);
    assert_eq!(local, done);
    let trail = ok(db.as_("reader"), &["audit", &id]).stdout;
    for action in ["created", "started", "completed"] {
        assert!(trail.contains(action), "{trail}");
    }
    drop(server);
}
