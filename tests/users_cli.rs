//! Accounts as the console meets them, through the `hallctl` binary: the first admin, an operator
//! with a PIN from stdin, refusals with clear errors, a PIN reset, a disable; then the ledger
//! holds a record of each change with `CONSOLE` as its actor.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use hallctl::auth::{AuthPolicy, Users};
use hallctl::ledger::query::RecordFilter;
use hallctl::ledger::{ControlAction, Ledger, LedgerEvent, Role, UserChange};
use hallctl_jobs::job::OperatorId;

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

fn hallctl(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args(args)
        .env("HALLCTL_DATA_DIR", dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hallctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    Run {
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let r = hallctl(dir, args, stdin);
    assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.err);
    r.out
}

#[test]
fn console_manages_accounts_and_the_ledger_records_each_change() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    // The first admin, with a PIN typed on stdin.
    let out = ok(
        dir,
        &[
            "users",
            "add",
            "ADM-1",
            "--name",
            "Hina Qureshi",
            "--role",
            "admin",
            "--pin-stdin",
        ],
        "730518\n",
    );
    assert!(out.contains("added ADM-1"), "{out}");
    assert!(
        !out.contains("730518"),
        "a PIN from stdin is not echoed: {out}"
    );
    ok(
        dir,
        &[
            "users",
            "add",
            "OP-1",
            "--name",
            "Ayesha Khan",
            "--role",
            "operator",
            "--pin-stdin",
        ],
        "482917\n",
    );
    // Without --pin-stdin a PIN is generated and shown once.
    let out = ok(
        dir,
        &[
            "users",
            "add",
            "OP-2",
            "--name",
            "Bilal Ahmed",
            "--role",
            "operator",
        ],
        "",
    );
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("PIN (shown once; hand it over in person): "))
        .unwrap_or_else(|| panic!("no PIN printed: {out}"))
        .to_string();
    assert!(generated.len() >= 6 && generated.bytes().all(|b| b.is_ascii_digit()));
    // A monitor service gets a token instead.
    let out = ok(
        dir,
        &[
            "users",
            "add",
            "MON-1",
            "--name",
            "Central room",
            "--role",
            "monitor",
        ],
        "",
    );
    let token = out.lines().last().expect("token line").to_string();
    assert_eq!(token.len(), 64, "{out}");

    // The list shows them, without any hash.
    let list = ok(dir, &["users", "list"], "");
    for id in ["ADM-1", "OP-1", "OP-2", "MON-1"] {
        assert!(list.contains(id), "{list}");
    }
    assert!(!list.contains("argon2") && !list.contains("$"), "{list}");
    let json = ok(dir, &["users", "list", "--format", "json"], "");
    assert!(!json.contains("argon2") && !json.contains("pin"), "{json}");
    assert!(json.contains("\"role\": \"operator\""), "{json}");

    // Refusals: a clear error, exit 1.
    for (args, stdin, says) in [
        (
            &[
                "users",
                "add",
                "OP-1",
                "--name",
                "Again",
                "--role",
                "operator",
                "--pin-stdin",
            ][..],
            "915372\n",
            "user OP-1 already exists",
        ),
        (
            &[
                "users",
                "add",
                "OP-3",
                "--name",
                "C",
                "--role",
                "operator",
                "--pin-stdin",
            ][..],
            "234567\n",
            "consecutive digits",
        ),
        (
            &[
                "users",
                "add",
                "op 3",
                "--name",
                "C",
                "--role",
                "operator",
                "--pin-stdin",
            ][..],
            "915372\n",
            "invalid user id",
        ),
        (&["users", "disable", "OP-9"][..], "", "no user OP-9"),
        (&["users", "enable", "OP-1"][..], "", "not disabled"),
    ] {
        let r = hallctl(dir, args, stdin);
        assert_eq!(r.code, Some(1), "{args:?} should fail: {}", r.out);
        assert!(
            r.err.contains(says),
            "{args:?}: want {says:?}, said {}",
            r.err
        );
        assert!(
            !r.err.contains(stdin.trim()) || stdin.is_empty(),
            "{}",
            r.err
        );
    }

    // A PIN reset and a disable.
    ok(
        dir,
        &["users", "reset-pin", "OP-1", "--pin-stdin"],
        "915372\n",
    );
    ok(dir, &["users", "disable", "OP-2"], "");
    let list = ok(dir, &["users", "list"], "");
    let op2 = list.lines().find(|l| l.starts_with("OP-2")).expect("OP-2");
    assert!(op2.contains("disabled"), "{list}");

    // The ledger has a record of each change, made by CONSOLE, and the accounts work.
    let ledger = std::sync::Arc::new(Ledger::open_existing(&dir.join("ledger")).expect("ledger"));
    let records = ledger
        .records(
            &RecordFilter {
                operator: Some(OperatorId::new("CONSOLE")),
                ..RecordFilter::default()
            },
            100,
        )
        .expect("records");
    let changes: Vec<(String, UserChange)> = records
        .into_iter()
        .map(|r| {
            assert_eq!(r.actor.as_str(), "CONSOLE");
            match r.event {
                LedgerEvent::Action {
                    action: ControlAction::UserChanged { user, change },
                } => (user.0, change),
                other => panic!("unexpected record {other:?}"),
            }
        })
        .collect();
    let added = |role| UserChange::Added { role };
    assert_eq!(
        changes,
        vec![
            ("ADM-1".into(), added(Role::Admin)),
            ("OP-1".into(), added(Role::Operator)),
            ("OP-2".into(), added(Role::Operator)),
            ("MON-1".into(), added(Role::Monitor)),
            ("OP-1".into(), UserChange::PinReset),
            ("OP-2".into(), UserChange::Disabled),
        ]
    );
    let users = Users::open(ledger, AuthPolicy::default()).expect("users");
    let op1 = OperatorId::new("OP-1");
    users.sign_in(&op1, "915372", None).expect("new PIN works");
    assert!(
        users.sign_in(&op1, "482917", None).is_err(),
        "old PIN refused"
    );
    assert!(
        users
            .sign_in(&OperatorId::new("OP-2"), &generated, None)
            .is_err()
    );
    let p = users.authenticate(&token).expect("service token");
    assert_eq!(p.role, Role::Monitor);
}

/// Stops the child it holds, also when the test panics.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_controller_holds_the_data_directory() {
    let d = tempfile::tempdir().expect("tempdir");
    // Any process holding the ledger open stands in for the controller: the crash-test workload.
    let mut holder = Stopped(
        Command::new(env!("CARGO_BIN_EXE_hallctl"))
            .args(["ledger", "--ledger"])
            .arg(d.path().join("ledger"))
            .args(["soak", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start holder"),
    );
    // Keep reading its output open: it stops when its stdout closes.
    let mut acks = BufReader::new(holder.0.stdout.take().expect("stdout"));
    let mut first = String::new();
    acks.read_line(&mut first).expect("read");
    assert!(first.starts_with("ack"), "{first}");
    let r = hallctl(
        d.path(),
        &[
            "users",
            "add",
            "ADM-1",
            "--name",
            "A",
            "--role",
            "admin",
            "--pin-stdin",
        ],
        "730518\n",
    );
    let pid = holder.0.id();
    drop(holder);
    drop(acks);
    assert_eq!(r.code, Some(1), "{}", r.out);
    // It names the process that holds the ledger (not a controller: no address to give) and
    // never shows sled's own lock message.
    assert!(
        r.err.contains(&format!("is in use by process {pid} (")) && r.err.contains("soak"),
        "{}",
        r.err
    );
    assert!(!r.err.contains("could not acquire lock"), "{}", r.err);
}
