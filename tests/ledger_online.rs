//! Verifying a running hall (issue 15, point 3): the controller verifies its own ledger on
//! `GET /api/v1/ledger/verify` (auditors and admins), reports progress on the status stream, and
//! every console command that opens the ledger while the controller holds it names the
//! controller and says how to do the same online; `hallctl audit verify --user ... --pin-stdin`
//! does it. sled's raw lock message never reaches a person.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::*;
use serde_json::Value;

/// Runs `hallctl` with `args` on the hall's ledger, `stdin` on its standard input; returns
/// (success, stdout, stderr).
fn cli(hall: &Hall, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = hallctl()
        .args(args)
        .env("HALLCTL_LEDGER", hall.dir.path().join("data/ledger"))
        .env_remove("HALLCTL_URL")
        .env_remove("HALLCTL_USER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hallctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_running_hall_is_verified_online_and_console_commands_name_the_controller() {
    let mut hall = spawn_hall(1.0);
    let pid = hall.child.as_ref().unwrap().id();
    let c = hall.client;

    // Offline commands find the ledger held: they name the controller, its address and the
    // online way, never sled's lock error.
    for args in [
        &["audit", "verify"][..],
        &["ledger", "trace", "PT0000001"][..],
        &["ledger", "records"][..],
    ] {
        let (ok, _, err) = cli(&hall, args, "");
        assert!(!ok, "{args:?} succeeded on a held ledger");
        assert!(
            err.contains("is in use by the running controller of hall")
                && err.contains(&format!("process {pid} ("))
                && err.contains(&format!("http://{}", c.addr))
                && err.contains("hallctl audit verify --online --user")
                && err.contains("/api/v1/ledger/verify"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("could not acquire lock"), "{args:?}: {err}");
        assert!(!err.contains("WouldBlock"), "{args:?}: {err}");
    }
    // `users` opens it through the data directory.
    let (ok, _, err) = cli(
        &hall,
        &[
            "users",
            "list",
            "--data-dir",
            hall.dir.path().join("data").to_str().unwrap(),
        ],
        "",
    );
    assert!(
        !ok && err.contains("is in use by the running controller"),
        "{err}"
    );
    assert!(!err.contains("could not acquire lock"), "{err}");

    // The route: auditors and admins only; a wrong mode is named.
    let auditor = hall.sign_in("AU1", None);
    let admin = hall.sign_in("AD1", None);
    let supervisor = hall.sign_in("S1", None);
    let r = c.get("/ledger/verify", Some(&supervisor));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = c.get("/ledger/verify?mode=quick", Some(&auditor));
    assert_eq!(r.status, 422, "{}", r.text);
    let (_, message, field) = r.error("a bad mode");
    assert_eq!(field.as_deref(), Some("mode"), "{message}");
    assert!(
        message.contains("incremental, full or since_checkpoint"),
        "{message}"
    );

    // A full verification, its progress on the stream, and the report.
    let mut stream = c.stream(&hall.monitor_token);
    let head = ledger_head(c, &auditor);
    let full = c
        .get("/ledger/verify?mode=full", Some(&admin))
        .expect(200, "full verification");
    assert_eq!(full["mode"], "full", "{full}");
    assert_eq!(full["first_bad"], Value::Null, "{full}");
    assert_eq!(full["from"], 1, "{full}");
    assert!(full["checked"].as_u64().unwrap() >= head, "{full}");
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("passed") {
        let (name, data) = stream.next();
        if name == "ledger_verify" {
            assert_eq!(data["mode"], "full", "{data}");
            assert_eq!(data["by"], "AD1", "{data}");
            states.push(data["state"].as_str().unwrap().to_string());
        }
        assert!(
            states.len() < 1000,
            "no end of the verification: {states:?}"
        );
    }
    assert_eq!(
        states.first().map(String::as_str),
        Some("running"),
        "{states:?}"
    );

    // Incremental is the default.
    let inc = c
        .get("/ledger/verify", Some(&auditor))
        .expect(200, "incremental verification");
    assert_eq!(inc["mode"], "incremental", "{inc}");
    assert_eq!(inc["first_bad"], Value::Null, "{inc}");

    // The console verifies online with an auditor's credentials: the same report.
    let au1 = format!("{}\n", pin("AU1"));
    let (ok, out, err) = cli(
        &hall,
        &["audit", "verify", "--user", "AU1", "--pin-stdin"],
        &au1,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ledger OK (full verification): records 1–"),
        "{out}"
    );
    let (ok, out, err) = cli(
        &hall,
        &[
            "audit",
            "verify",
            "--online",
            "--incremental",
            "--json",
            "--user",
            "AU1",
            "--pin-stdin",
        ],
        &au1,
    );
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("a JSON report");
    assert_eq!(report["mode"], "incremental", "{report}");
    assert!(
        report["public_key"].as_str().is_some_and(|k| k.len() == 64),
        "{report}"
    );
    // A wrong PIN is refused by the controller, named.
    let (ok, _, err) = cli(
        &hall,
        &["audit", "verify", "--user", "AU1", "--pin-stdin"],
        "000000\n",
    );
    assert!(!ok && err.contains("signing in as AU1"), "{err}");
    // An operator cannot.
    let (ok, _, err) = cli(
        &hall,
        &["audit", "verify", "--online", "--user", "A1", "--pin-stdin"],
        &format!("{}\n", pin("A1")),
    );
    assert!(!ok && err.contains("refused"), "{err}");
    // Online without credentials says what is missing.
    let (ok, _, err) = cli(&hall, &["audit", "verify", "--online"], "");
    assert!(!ok && err.contains("--user <id> --pin-stdin"), "{err}");

    // After a kill the serving file stays behind, but no process holds the ledger: the offline
    // verification works and ignores it.
    hall.kill9();
    // Nor is the PIN sent where the stale file points.
    let (ok, _, err) = cli(
        &hall,
        &[
            "audit",
            "verify",
            "--online",
            "--user",
            "AU1",
            "--pin-stdin",
        ],
        &au1,
    );
    assert!(!ok && err.contains("no running controller found"), "{err}");
    let (ok, out, err) = cli(&hall, &["audit", "verify"], "");
    assert!(ok, "{out}{err}");
    assert!(out.contains("ledger OK (full verification)"), "{out}");
}
