//! Issue 16, point 4: the device's reading is the last word. The laminator's patch reader and
//! the printer's booklet read-back must name the item the operator scanned; when they do not, the
//! step stops, the ledger records both serials, the items are flagged as not where the record put
//! them, and a `read_mismatch` alert stays open for the supervisor.
//!
//! The real `hallctl` binary serves simulated devices over pseudo-terminals (the real serial
//! code path). The simulators take the item the operator scanned unless they are told, through
//! `--sim-faults-stdin`, to take another (`misfeed DEVICE SERIAL`: scan one, feed another) or to
//! read nothing (`no-read DEVICE`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use serde_json::{Value, json};

fn open_alerts(c: Client, tok: &str) -> Vec<Value> {
    c.get("/alerts", Some(tok)).expect(200, "GET /alerts")["open"]
        .as_array()
        .expect("open alerts")
        .clone()
}

/// Waits for an open alert of `kind` whose detail mentions every one of `words`.
#[track_caller]
fn wait_alert(c: Client, tok: &str, kind: &str, words: &[&str]) -> Value {
    wait_for(
        60,
        &format!("an open {kind} alert naming {words:?}"),
        || {
            let open = open_alerts(c, tok);
            let found = open
                .iter()
                .find(|a| {
                    a["kind"] == kind
                        && words
                            .iter()
                            .all(|w| a["detail"].as_str().unwrap_or_default().contains(w))
                })
                .cloned();
            (found, json!(open).to_string())
        },
    )
}

/// The one `device_read_mismatch` record of `job`.
#[track_caller]
fn mismatch_record(c: Client, aud: &str, job: u64) -> Value {
    let found: Vec<Value> = records(c, aud)
        .into_iter()
        .filter(|r| r["event"]["type"] == "device_read_mismatch" && r["event"]["job"] == job)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one mismatch record for job {job}: {found:?}"
    );
    found[0].clone()
}

#[track_caller]
fn trace(c: Client, aud: &str, serial: &str) -> Value {
    c.get(&format!("/ledger/trace/{serial}"), Some(aud))
        .expect(200, &format!("trace of {serial}"))
}

/// The trace of `serial` shows the mismatch record, and its state says it is unaccounted for.
#[track_caller]
fn shows_mismatch(c: Client, aud: &str, serial: &str) {
    let t = trace(c, aud, serial);
    let steps = t["steps"].as_array().expect("steps");
    assert!(
        steps.iter().any(|s| s["event"] == "device_read_mismatch"),
        "the trace of {serial} shows the mismatch: {t}"
    );
    assert!(
        t["state"]
            .as_str()
            .unwrap_or_default()
            .contains("unaccounted"),
        "{serial} is flagged as not where the record put it: {t}"
    );
}

/// Prints job `id` on PRINT-01 with `booklet`, confirmed by A1.
fn print(c: Client, sup: &str, a1: &str, id: u64, booklet: &str) {
    wait_work(c, sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(a1),
        &json!({ "booklet": booklet }),
    )
    .expect(200, "A1 scans the booklet");
    wait_work(c, sup, "PRINT-01", id, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(a1), &json!({}))
        .expect(200, "A1 confirms the print");
}

#[test]
fn a_laminator_that_reads_another_patch_stops_the_step_records_both_and_alerts() {
    let mut hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let session = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let id = submit(c, &sup, &job_request("TRK-READ-1", "Eriksson", "L898902C3"));
    print(c, &sup, &a1, id, "B1000100");

    // The insider scans P2000100 and feeds P2000107 from the same roll (keeping the scanned one).
    hall.inject("misfeed LM-01 P2000107");
    wait_work(c, &sup, "LAM-01", id, "assigned");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100"}),
    )
    .expect(200, "B1 scans P2000100");

    // The step stops: the job waits for a supervisor's inspection, the station is free, the
    // operator has nothing to confirm.
    let j = wait_job_state(c, &sup, id, &["needs_inspection"]);
    assert_eq!(j["state"]["stage"], "laminate", "{j}");
    let st = station(c, &sup, "LAM-01");
    assert!(st["work"].is_null(), "the step is over: {st}");
    let r = c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}));
    assert_eq!(r.status, 409, "nothing to confirm: {}", r.text);

    // The ledger records both serials.
    let rec = mismatch_record(c, &aud, id);
    let e = &rec["event"];
    assert_eq!(e["scanned"], "P2000100", "{rec}");
    assert_eq!(e["read"], "P2000107", "{rec}");
    assert_eq!(e["kind"], "patch", "{rec}");
    assert_eq!(e["device"], "LM-01", "{rec}");
    assert_eq!(e["session"], session.as_str(), "{rec}");

    // Both patches are flagged, and both traces show the mismatch.
    shows_mismatch(c, &aud, "P2000100");
    shows_mismatch(c, &aud, "P2000107");

    // A critical incident that stays open until a supervisor resolves it, naming both.
    let alert = wait_alert(c, &sup, "read_mismatch", &["P2000100", "P2000107", "LM-01"]);
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["serials"], json!(["P2000100", "P2000107"]), "{alert}");
    assert!(
        !alert.to_string().to_uppercase().contains("ERIKSSON"),
        "no biodata in the alert: {alert}"
    );

    // The booklet carrying an unknown patch never goes on: the lamination cannot be taken as
    // done, nor retried; the supervisor spoils it.
    for verdict in [
        json!({"verdict": "step_completed", "serial": "B1000100"}),
        json!({"verdict": "step_completed", "serial": "P2000100"}),
        json!({"verdict": "retry_step"}),
    ] {
        let r = c.post(&format!("/jobs/{id}/inspect"), Some(&sup), &verdict);
        assert_eq!(r.status, 409, "{verdict} refused: {}", r.text);
    }
    let r = c
        .post(
            &format!("/jobs/{id}/inspect"),
            Some(&sup),
            &json!({"verdict": "spoil"}),
        )
        .expect(200, "the supervisor spoils the booklet");
    assert_eq!(r["state"]["state"], "spoiled_requeued", "{r}");

    // The flagged patches cannot be used again: P2000107 is no longer the session's to use.
    let r = c
        .get(&format!("/custody/sessions/{session}"), Some(&sup))
        .expect(200, "session");
    let held = r["held"].to_string();
    assert!(
        !held.contains("P2000107") && !held.contains("P2000100"),
        "neither patch is held: {r}"
    );
}

#[test]
fn a_printer_that_reads_back_another_booklet_stops_the_step_records_both_and_alerts() {
    let mut hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let id = submit(c, &sup, &job_request("TRK-READ-2", "Eriksson", "L898902C3"));

    hall.inject("misfeed PR-01 B1000105");
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "A1 scans B1000100");

    let j = wait_job_state(c, &sup, id, &["needs_inspection"]);
    assert_eq!(j["state"]["stage"], "print", "{j}");
    let r = c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}));
    assert_eq!(r.status, 409, "nothing to confirm: {}", r.text);

    let rec = mismatch_record(c, &aud, id);
    let e = &rec["event"];
    assert_eq!(
        (&e["scanned"], &e["read"], &e["kind"], &e["device"]),
        (
            &json!("B1000100"),
            &json!("B1000105"),
            &json!("booklet"),
            &json!("PR-01")
        ),
        "{rec}"
    );
    shows_mismatch(c, &aud, "B1000100");
    shows_mismatch(c, &aud, "B1000105");
    wait_alert(c, &sup, "read_mismatch", &["B1000100", "B1000105", "PR-01"]);

    for verdict in [
        json!({"verdict": "step_completed", "serial": "B1000100"}),
        json!({"verdict": "retry_step"}),
    ] {
        let r = c.post(&format!("/jobs/{id}/inspect"), Some(&sup), &verdict);
        assert_eq!(r.status, 409, "{verdict} refused: {}", r.text);
    }
}

#[test]
fn a_laminator_whose_reader_reads_nothing_stops_the_step_as_unverified() {
    let mut hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let id = submit(c, &sup, &job_request("TRK-READ-3", "Eriksson", "L898902C3"));
    print(c, &sup, &a1, id, "B1000100");

    hall.inject("no-read LM-01");
    wait_work(c, &sup, "LAM-01", id, "assigned");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100"}),
    )
    .expect(200, "B1 scans P2000100");
    wait_job_state(c, &sup, id, &["needs_inspection"]);
    let rec = mismatch_record(c, &aud, id);
    assert_eq!(rec["event"]["scanned"], "P2000100", "{rec}");
    assert!(rec["event"]["read"].is_null(), "nothing read: {rec}");
    shows_mismatch(c, &aud, "P2000100");
    wait_alert(
        c,
        &sup,
        "read_mismatch",
        &["P2000100", "LM-01", "no reading"],
    );
}
