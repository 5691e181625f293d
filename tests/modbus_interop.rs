//! Issue 16, point 4, against an independently written device: the controller (`hallctl serve`)
//! drives a laminator that is the pymodbus slave of `drivers/interop/pymodbus_laminator.py` (over
//! a socat pseudo-terminal pair, like `drivers/tests/interop.rs`), whose patch reader is told to
//! read another patch than the one scanned. The controller must stop the step, record both
//! serials and raise the `read_mismatch` alert; a reading that matches goes on as usual.
//!
//! Needs socat and a Python venv with pymodbus 3.11.x at `.venv/` (or `HALLCTL_PYTHON`):
//! `scripts/test-all` installs both and runs this with `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HALLCTL_PYTHON") {
        return p.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

fn wait_path(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs socat + pymodbus: run by scripts/test-all"]
fn the_controller_stops_and_alerts_when_a_pymodbus_laminator_reads_another_patch() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("bus");
    let dev = dir.path().join("dev");
    let _socat = Kill(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", host.display()))
            .arg(format!("pty,raw,echo=0,link={}", dev.display()))
            .spawn()
            .expect("socat must be installed (scripts/test-all installs it)"),
    );
    wait_path(&host);
    wait_path(&dev);
    // The first feed's reader reads PT2000077 (scanned: P2000100); the second reads what is
    // scanned then (P2000101).
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("drivers/interop/pymodbus_laminator.py");
    let mut slave = Kill(
        Command::new(python())
            .arg(&script)
            .args(["--read", "PT2000077", "--read", "P2000101"])
            .arg(&dev)
            .args(["1", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python venv with pymodbus must exist (scripts/test-all creates it)"),
    );
    let mut line = String::new();
    std::io::BufReader::new(slave.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "pymodbus slave did not start");

    // The test hall, its bus on the socat port instead of a simulator.
    let simulated = "[[buses]]\nid = \"rs485-a\"\nsimulate = true\n";
    assert!(HALL_TOML.contains(simulated));
    let toml = HALL_TOML.replace(
        simulated,
        &format!(
            "[[buses]]\nid = \"rs485-a\"\nport = \"{}\"\nbaud = 115200\n",
            host.display()
        ),
    );
    let hall = spawn_hall_as(0.02, &toml, PEOPLE);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");

    let laminate = |id: u64, booklet: &str, patch: &str| {
        wait_work(c, &sup, "PRINT-01", id, "assigned");
        c.post(
            "/stations/PRINT-01/print",
            Some(&a1),
            &json!({ "booklet": booklet }),
        )
        .expect(200, "A1 scans the booklet");
        wait_work(c, &sup, "PRINT-01", id, "awaiting_confirmation");
        c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}))
            .expect(200, "A1 confirms the print");
        wait_work(c, &sup, "LAM-01", id, "assigned");
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({ "patch": patch }),
        )
        .expect(200, "B1 scans the patch");
    };

    // Scan P2000100; the device's reader says PT2000077.
    let id = submit(c, &sup, &job_request("TRK-PYM-1", "Eriksson", "L898902C3"));
    laminate(id, "B1000100", "P2000100");
    let j = wait_job_state(c, &sup, id, &["needs_inspection"]);
    assert_eq!(j["state"]["stage"], "laminate", "{j}");
    let mismatch: Vec<_> = records(c, &aud)
        .into_iter()
        .filter(|r| r["event"]["type"] == "device_read_mismatch")
        .collect();
    assert_eq!(mismatch.len(), 1, "{mismatch:?}");
    let e = &mismatch[0]["event"];
    assert_eq!(
        (&e["scanned"], &e["read"], &e["device"]),
        (&json!("P2000100"), &json!("PT2000077"), &json!("LM-01")),
        "{e}"
    );
    let t = c
        .get("/ledger/trace/P2000100", Some(&aud))
        .expect(200, "trace");
    assert!(
        t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["event"] == "device_read_mismatch"),
        "{t}"
    );
    assert!(t["state"].as_str().unwrap().contains("unaccounted"), "{t}");
    wait_for(60, "the read_mismatch alert", || {
        let open = c.get("/alerts", Some(&sup)).expect(200, "alerts")["open"].clone();
        let found = open.as_array().unwrap().iter().any(|a| {
            a["kind"] == "read_mismatch"
                && a["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("PT2000077")
        });
        (found.then_some(()), open.to_string())
    });

    // The next job: the reader reads the patch scanned, and the step goes on as usual.
    let id2 = submit(c, &sup, &job_request("TRK-PYM-2", "Lindqvist", "L898902C4"));
    laminate(id2, "B1000101", "P2000101");
    wait_work(c, &sup, "LAM-01", id2, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "B1 confirms the lamination");
    wait_job_state(c, &sup, id2, &["laminated", "qc"]);
}
