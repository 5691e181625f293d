//! Spoilage is approved and ends in witnessed destruction (issue 16, point 3), through the real
//! binary and its API: a defect report puts the items in `spoiled, awaiting approval`; a
//! supervisor approves or rejects with the items scanned in hand; approved items stay accountable
//! until two witnesses outside their custody chain see them destroyed; reconciliations show each
//! state by serial, for the session, the shift and the lot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use serde_json::{Value, json};

struct Crew {
    sup: String,
    aud: String,
    a1: String,
    b1: String,
    print_session: String,
    lam_session: String,
}

fn crew(hall: &Hall) -> Crew {
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let print_session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let lam_session = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    Crew {
        sup,
        aud,
        a1,
        b1,
        print_session,
        lam_session,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Prints `booklet` for a new job and confirms it.
fn printed(c: Client, w: &Crew, tracking: &str, booklet: &str) -> u64 {
    let id = submit(c, &w.sup, &job_request(tracking, "Eriksson", "L898902C3"));
    wait_work(c, &w.sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&w.a1),
        &json!({ "booklet": booklet }),
    )
    .expect(200, "print");
    wait_work(c, &w.sup, "PRINT-01", id, "awaiting_confirmation");
    id
}

/// Prints `booklet` for a new job, confirms it and laminates `patch` onto it at LAM-01: the
/// lamination awaits B1's confirmation.
fn laminated(c: Client, w: &Crew, tracking: &str, booklet: &str, patch: &str) -> u64 {
    let id = submit(c, &w.sup, &job_request(tracking, "Eriksson", "L898902C3"));
    let crew = LineCrew {
        sup: &w.sup,
        printer: &w.a1,
        laminator: &w.b1,
    };
    print_and_laminate(c, &crew, id, booklet, patch);
    id
}

fn session_report(c: Client, aud: &str, session: &str) -> Value {
    let r = c
        .get(&format!("/ledger/reconcile?session={session}"), Some(aud))
        .expect(200, "reconcile the session");
    r["sessions"][0].clone()
}

fn shift_report(c: Client, aud: &str, session: &str) -> Value {
    let s = session_report(c, aud, session);
    let shift = s["session"]["shift"].as_str().unwrap().to_string();
    let r = c
        .get(&format!("/ledger/reconcile?shift={shift}"), Some(aud))
        .expect(200, "reconcile the shift");
    r["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["session"]["id"] == session)
        .cloned()
        .unwrap_or_else(|| panic!("{session} is in its shift's report: {r}"))
}

fn lot_report(c: Client, aud: &str, lot: &str) -> Value {
    let r = c
        .get(&format!("/ledger/reconcile?roll={lot}"), Some(aud))
        .expect(200, "reconcile the lot");
    r["lots"][0].clone()
}

fn pending(c: Client, sup: &str) -> Vec<Value> {
    c.get("/custody/spoilage", Some(sup))
        .expect(200, "the spoilage awaiting approval")["pending"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn open_alert(c: Client, sup: &str, kind: &str) -> Option<Value> {
    let list = c.get("/alerts", Some(sup)).expect(200, "alerts");
    list["open"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["kind"] == kind)
        .cloned()
}

fn trace_state(c: Client, aud: &str, serial: &str) -> String {
    c.get(&format!("/ledger/trace/{serial}"), Some(aud))
        .expect(200, "trace")["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_lamination_defect_waits_for_approval_then_for_witnessed_destruction() {
    let mut hall = spawn_hall_with(0.02, "[custody]\ndestroy_within_secs = 3\n");
    let c = hall.client;
    let w = crew(&hall);
    let id = laminated(c, &w, "TRK-SPOIL-1", "B1000100", "P2000100");

    // B1 says the lamination is bad: nothing is spoiled on their word alone.
    c.post(
        "/stations/LAM-01/defect",
        Some(&w.b1),
        &json!({"reason": "air bubble under the patch"}),
    )
    .expect(200, "the defect report");
    let j = wait_job_state(c, &w.sup, id, &["defect_reported"]);
    assert_eq!(j["spoiled"].as_u64(), Some(0), "not spoiled yet: {j}");
    let st = station(c, &w.sup, "LAM-01");
    assert!(st["work"].is_null(), "the station is free: {st}");
    assert_eq!(st["consumables"]["spoiled_pending"], 1, "{st}");
    for s in ["P2000100", "B1000100"] {
        let state = trace_state(c, &w.aud, s);
        assert!(state.contains("awaiting"), "{s}: {state}");
    }
    let list = pending(c, &w.sup);
    assert_eq!(list.len(), 1, "one report: {list:?}");
    assert_eq!(list[0]["job"].as_u64(), Some(id), "{list:?}");
    assert_eq!(list[0]["reported_by"], "B1", "{list:?}");
    let mut serials = strings(&list[0]["serials"]);
    serials.sort();
    assert_eq!(serials, ["B1000100", "P2000100"], "{list:?}");
    let alert = open_alert(c, &w.sup, "spoilage_awaiting_approval").expect("an alert");
    let mut named = strings(&alert["serials"]);
    named.sort();
    assert_eq!(named, ["B1000100", "P2000100"], "{alert}");

    // Each state, by serial, in the session, the shift and the lots.
    for s in [
        session_report(c, &w.aud, &w.lam_session),
        shift_report(c, &w.aud, &w.lam_session),
    ] {
        assert_eq!(strings(&s["applied"]), Vec::<String>::new(), "{s}");
        assert_eq!(strings(&s["spoiled_pending"]), ["P2000100"], "{s}");
        assert_eq!(strings(&s["spoiled"]), ["P2000100"], "{s}");
    }
    let s = session_report(c, &w.aud, &w.print_session);
    assert_eq!(strings(&s["spoiled_pending"]), ["B1000100"], "{s}");
    let l = lot_report(c, &w.aud, "R-1");
    assert_eq!(strings(&l["spoiled_pending"]), ["P2000100"], "{l}");

    // Not destroyable before approval.
    let witnesses = json!([{"user": "C1", "pin": pin("C1")}, {"user": "D1", "pin": pin("D1")}]);
    let destroy = json!({"batch": "D-1", "serials": ["P2000100", "B1000100"],
        "witnesses": witnesses, "method": "shredding", "certificate": "C-1"});
    c.post("/custody/destructions", Some(&w.sup), &destroy)
        .expect(409, "no destruction before approval");

    // The supervisor scans only the booklet: the patch awaits approval too. Refused, recorded,
    // nothing else changes.
    let before = records_but_refusals(c, &w.aud);
    let head = ledger_head(c, &w.aud);
    let r = c.post(
        "/custody/spoilage/P2000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["B1000100"], "note": "bubble seen"}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
    let refused = refusals_after(c, &w.aud, head);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "S1");
    assert_eq!(refused[0].1, "spoilage_not_in_hand", "{refused:?}");
    assert!(
        refused[0].3.contains(&"P2000100".to_string()),
        "{refused:?}"
    );
    assert_eq!(records_but_refusals(c, &w.aud), before);
    // An operator does not approve.
    c.post(
        "/custody/spoilage/P2000100/approve",
        Some(&w.a1),
        &json!({"scanned": ["B1000100", "P2000100"]}),
    )
    .expect(403, "operators do not approve spoilage");

    // With both in hand: approved. The job prints again on a new booklet.
    c.post(
        "/custody/spoilage/P2000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["P2000100", "B1000100"], "note": "bubble seen"}),
    )
    .expect(200, "the approval");
    let j = wait_job_state(c, &w.sup, id, &["spoiled_requeued", "printing"]);
    assert_eq!(j["spoiled"].as_u64(), Some(1), "{j}");
    assert!(pending(c, &w.sup).is_empty());
    for s in [
        session_report(c, &w.aud, &w.lam_session),
        shift_report(c, &w.aud, &w.lam_session),
    ] {
        assert_eq!(strings(&s["applied"]), Vec::<String>::new(), "{s}");
        assert_eq!(strings(&s["spoiled_pending"]), Vec::<String>::new(), "{s}");
        assert_eq!(strings(&s["spoiled_approved"]), ["P2000100"], "{s}");
    }
    let l = lot_report(c, &w.aud, "BX-1");
    assert_eq!(strings(&l["spoiled_approved"]), ["B1000100"], "{l}");
    let st = station(c, &w.sup, "LAM-01");
    assert_eq!(st["consumables"]["spoiled"], 1, "{st}");
    assert_eq!(st["consumables"]["spoiled_pending"], 0, "{st}");
    let decided = trace_step(c, &w.aud, "P2000100", "spoilage_decided");
    assert_eq!(decided["actor"], "S1", "{decided}");

    // Not destroyed within the allowance: a critical alert names the serials.
    let alert = wait_for(30, "the not-destroyed alert", || {
        let a = open_alert(c, &w.sup, "spoilage_not_destroyed");
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(alert["severity"], "critical", "{alert}");
    let mut named = strings(&alert["serials"]);
    named.sort();
    assert_eq!(named, ["B1000100", "P2000100"], "{alert}");
    assert_eq!(alert["occurrences"], 1, "{alert}");

    // A restart does not alert the same items again: the next occurrence is a new item's.
    hall.restart();
    let c = hall.client;
    let w = Crew {
        sup: hall.sign_in("S1", None),
        aud: hall.sign_in("AU1", None),
        a1: hall.sign_in("A1", Some("PRINT-01")),
        b1: hall.sign_in("B1", Some("LAM-01")),
        ..w
    };
    laminated(c, &w, "TRK-SPOIL-2", "B1000101", "P2000101");
    c.post(
        "/stations/LAM-01/defect",
        Some(&w.b1),
        &json!({"reason": "crease"}),
    )
    .expect(200, "the second defect report");
    let again = wait_for(30, "the new item's overdue occurrence", || {
        let a = open_alert(c, &w.sup, "spoilage_not_destroyed");
        let new = a.as_ref().is_some_and(|a| {
            a["last_detail"]
                .as_str()
                .is_some_and(|d| d.contains("P2000101"))
        });
        (new.then(|| a.clone()).flatten(), format!("{a:?}"))
    });
    assert_eq!(again["occurrences"], 2, "one occurrence per item: {again}");
    let last = again["last_detail"].as_str().unwrap_or_default();
    assert!(!last.contains("P2000100"), "alerted again: {again}");

    // Witnessed destruction by two people outside the chain.
    c.post("/custody/destructions", Some(&w.sup), &destroy)
        .expect(200, "the destruction");
    let s = session_report(c, &w.aud, &w.lam_session);
    assert_eq!(strings(&s["destroyed"]), ["P2000100"], "{s}");
    assert_eq!(strings(&s["spoiled_approved"]), Vec::<String>::new(), "{s}");
    let l = lot_report(c, &w.aud, "R-1");
    assert_eq!(strings(&l["destroyed"]), ["P2000100"], "{l}");
}

#[test]
fn a_rejected_print_defect_leaves_the_print_standing_and_the_job_goes_on() {
    let mut hall = spawn_hall(0.02);
    let w = crew(&hall);
    let c = hall.client;
    let id = printed(c, &w, "TRK-SPOIL-2", "B1000100");
    c.post(
        "/stations/PRINT-01/defect",
        Some(&w.a1),
        &json!({"reason": "smudged data page"}),
    )
    .expect(200, "the defect report");
    wait_job_state(c, &w.sup, id, &["defect_reported"]);
    // The operator's words stay in the record; the alert, which is streamed to the hall and
    // to MQTT, names the items and the stage, never the free text.
    let alert = open_alert(c, &w.sup, "spoilage_awaiting_approval").expect("an alert");
    assert!(
        alert["detail"].as_str().unwrap().contains("print defect"),
        "{alert}"
    );
    let streamed: Vec<Value> = records(c, &w.aud)
        .into_iter()
        .filter(|r| r.to_string().contains("spoilage_awaiting_approval"))
        .collect();
    assert!(!streamed.is_empty());
    for text in [alert.to_string(), format!("{streamed:?}")] {
        assert!(!text.contains("smudged"), "free text in an alert: {text}");
    }
    let spoil = trace_step(c, &w.aud, "B1000100", "item_spoiled");
    assert!(spoil.to_string().contains("smudged"), "{spoil}");

    // A restart changes nothing: the report still waits, and so does the job.
    hall.restart();
    let c = hall.client;
    let w = Crew {
        sup: hall.sign_in("S1", None),
        aud: hall.sign_in("AU1", None),
        a1: hall.sign_in("A1", Some("PRINT-01")),
        b1: hall.sign_in("B1", Some("LAM-01")),
        ..w
    };
    assert_eq!(job_state(c, &w.sup, id), "defect_reported");
    assert_eq!(pending(c, &w.sup).len(), 1);
    let st = station(c, &w.sup, "PRINT-01");
    assert_eq!(st["consumables"]["spoiled_pending"], 1, "{st}");

    // Scanning another booklet than the one reported is refused.
    let head = ledger_head(c, &w.aud);
    c.post(
        "/custody/spoilage/B1000100/reject",
        Some(&w.sup),
        &json!({"scanned": ["B1000101"], "note": "looks fine"}),
    )
    .expect(409, "not the booklet reported");
    let refused = refusals_after(c, &w.aud, head);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].1, "spoilage_not_in_hand", "{refused:?}");

    c.post(
        "/custody/spoilage/B1000100/reject",
        Some(&w.sup),
        &json!({"scanned": ["B1000100"], "note": "the page is clean"}),
    )
    .expect(200, "the rejection");
    // The print stands: the job goes on to lamination with the same booklet.
    wait_work(c, &w.sup, "LAM-01", id, "assigned");
    let j = job(c, &w.sup, id);
    assert_eq!(j["booklet"], "B1000100", "{j}");
    assert_eq!(j["spoiled"].as_u64(), Some(0), "{j}");
    assert!(trace_state(c, &w.aud, "B1000100").contains("used for job"));
    let s = session_report(c, &w.aud, &w.print_session);
    assert_eq!(strings(&s["applied"]), ["B1000100"], "{s}");
    assert_eq!(strings(&s["spoiled_pending"]), Vec::<String>::new(), "{s}");
    assert_eq!(strings(&s["spoiled"]), Vec::<String>::new(), "{s}");
    let st = station(c, &w.sup, "PRINT-01");
    assert_eq!(st["consumables"]["spoiled_pending"], 0, "{st}");
    assert_eq!(st["consumables"]["applied"], 1, "{st}");
    assert!(pending(c, &w.sup).is_empty());
    // A decided report is not decided twice.
    c.post(
        "/custody/spoilage/B1000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["B1000100"]}),
    )
    .expect(409, "nothing awaits approval");
}

#[test]
fn a_device_fault_spoil_waits_for_a_supervisor_with_the_item_in_hand() {
    // A jam can be provoked (a cover opened, a booklet pulled): what it spoils is not taken on
    // the device's word either.
    let mut hall = spawn_hall(0.02);
    let w = crew(&hall);
    let c = hall.client;
    let id = submit(
        c,
        &w.sup,
        &job_request("TRK-SPOIL-3", "Eriksson", "L898902C3"),
    );
    wait_work(c, &w.sup, "PRINT-01", id, "assigned");
    // Paused so that the step stays running until the jam.
    c.post("/devices/PR-01/pause", Some(&w.sup), &json!({}))
        .expect(200, "pause PR-01");
    c.post(
        "/stations/PRINT-01/print",
        Some(&w.a1),
        &json!({ "booklet": "B1000100" }),
    )
    .expect(200, "print");
    wait_work(c, &w.sup, "PRINT-01", id, "running");
    hall.inject("jam PR-01");
    let j = wait_job_state(c, &w.sup, id, &["spoiled_requeued", "queued"]);
    assert_eq!(j["spoiled"].as_u64(), Some(1), "{j}");

    let list = pending(c, &w.sup);
    assert_eq!(list.len(), 1, "the jam's spoil awaits approval: {list:?}");
    assert_eq!(strings(&list[0]["serials"]), ["B1000100"], "{list:?}");
    assert_eq!(list[0]["reported_by"], "A1", "{list:?}");
    assert!(trace_state(c, &w.aud, "B1000100").contains("awaiting"));
    let s = session_report(c, &w.aud, &w.print_session);
    assert_eq!(strings(&s["spoiled_pending"]), ["B1000100"], "{s}");
    let alert = open_alert(c, &w.sup, "device_spoil").expect("a device_spoil alert");
    assert_eq!(strings(&alert["serials"]), ["B1000100"], "{alert}");
    // The spoil and its alert are one batch (one append, one time): a power cut keeps both or
    // neither.
    let recs = records(c, &w.aud);
    let spoil = recs
        .iter()
        .position(|r| r["event"]["type"] == "item_spoiled")
        .unwrap_or_else(|| panic!("no item_spoiled: {recs:?}"));
    let batch = &recs[spoil..(spoil + 3).min(recs.len())];
    assert_eq!(
        batch[1]["event"]["action"]["kind"], "job_changed",
        "{batch:?}"
    );
    assert_eq!(
        batch[2]["event"]["action"]["alert_kind"], "device_spoil",
        "{batch:?}"
    );
    assert!(
        batch.iter().all(|r| r["at"] == batch[0]["at"]),
        "one batch: {batch:?}"
    );

    // The jam is cleared, the job is printed again on B1000101, and A1 reports a defect on the
    // reprint: the job now waits for that report, not for the jam's.
    c.post("/devices/PR-01/resume", Some(&w.sup), &json!({}))
        .expect(200, "resume PR-01");
    wait_for(30, "PR-01 reports faulted", || {
        let st = station(c, &w.sup, "PRINT-01");
        ((st["readiness"] == "faulted").then_some(()), st.to_string())
    });
    wait_for(30, "the jam's device_fault alert open", || {
        let a = open_alert(c, &w.sup, "device_fault");
        (a.is_some().then_some(()), "none".to_string())
    });
    c.post("/devices/PR-01/clear-fault", Some(&w.a1), &json!({}))
        .expect(200, "A1 clears the jam");
    // The fault's alert closes when the line sees the printer ready again, in its own time:
    // wait for it, so that its `alert_cleared` record cannot land inside the "nothing changed"
    // comparison below (it once did, under load).
    wait_for(30, "the jam's device_fault alert cleared", || {
        let a = open_alert(c, &w.sup, "device_fault");
        (a.is_none().then_some(()), format!("{a:?}"))
    });
    wait_work(c, &w.sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&w.a1),
        &json!({ "booklet": "B1000101" }),
    )
    .expect(200, "the reprint");
    wait_work(c, &w.sup, "PRINT-01", id, "awaiting_confirmation");
    c.post(
        "/stations/PRINT-01/defect",
        Some(&w.a1),
        &json!({"reason": "smudged"}),
    )
    .expect(200, "a defect on the reprint");
    wait_job_state(c, &w.sup, id, &["defect_reported"]);
    assert_eq!(pending(c, &w.sup).len(), 2, "two reports wait");

    // The operator does not decide; a rejection of the jam's report cannot put the jammed
    // booklet back into the job (which waits for the reprint's report): refused, recorded,
    // nothing else changes.
    let head = ledger_head(c, &w.aud);
    c.post(
        "/custody/spoilage/B1000100/approve",
        Some(&w.a1),
        &json!({"scanned": ["B1000100"]}),
    )
    .expect(403, "operators do not approve spoilage");
    let before = records_but_refusals(c, &w.aud);
    let r = c.post(
        "/custody/spoilage/B1000100/reject",
        Some(&w.sup),
        &json!({"scanned": ["B1000100"], "note": "looks fine"}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.body["error"]["rule"], "spoil_stands", "{:?}", r.body);
    assert!(
        r.error("reject").1.contains("went back to printing"),
        "{:?}",
        r.body
    );
    assert_eq!(records_but_refusals(c, &w.aud), before);
    let refused = refusals_after(c, &w.aud, head);
    let rules: Vec<&str> = refused.iter().map(|f| f.1.as_str()).collect();
    assert!(rules.contains(&"spoil_stands"), "{refused:?}");
    assert_eq!(job_state(c, &w.sup, id), "defect_reported");
    // Not destroyable before approval.
    let witnesses = json!([{"user": "C1", "pin": pin("C1")}, {"user": "D1", "pin": pin("D1")}]);
    let destroy = json!({"batch": "D-3", "serials": ["B1000100"],
        "witnesses": witnesses, "method": "shredding", "certificate": "C-3"});
    c.post("/custody/destructions", Some(&w.sup), &destroy)
        .expect(409, "no destruction before approval");
    // Approving the jam's report leaves the job waiting for the reprint's.
    c.post(
        "/custody/spoilage/B1000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["B1000100"], "note": "jammed booklet seen"}),
    )
    .expect(200, "approved with the booklet in hand");
    let j = job(c, &w.sup, id);
    assert_eq!(j["state"]["state"], "defect_reported", "{j}");
    assert_eq!(j["spoiled"].as_u64(), Some(1), "the jam counted once: {j}");
    assert_eq!(
        pending(c, &w.sup).len(),
        1,
        "the reprint's report still waits"
    );
    c.post("/custody/destructions", Some(&w.sup), &destroy)
        .expect(200, "the destruction");
    let s = session_report(c, &w.aud, &w.print_session);
    assert_eq!(strings(&s["destroyed"]), ["B1000100"], "{s}");
    // The reprint's report is the job's: rejected, the reprint stands and the job goes on.
    c.post(
        "/custody/spoilage/B1000101/reject",
        Some(&w.sup),
        &json!({"scanned": ["B1000101"], "note": "the page is clean"}),
    )
    .expect(200, "the reprint's report rejected");
    wait_work(c, &w.sup, "LAM-01", id, "assigned");
    assert_eq!(job(c, &w.sup, id)["booklet"], "B1000101");
}

#[test]
fn an_item_of_a_defect_report_not_in_hand_is_reported_missing_and_the_job_goes_on() {
    // B1 reports a lamination defect; the supervisor finds the patch but not the booklet.
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let w = crew(&hall);
    let id = laminated(c, &w, "TRK-SPOIL-4", "B1000100", "P2000100");
    c.post(
        "/stations/LAM-01/defect",
        Some(&w.b1),
        &json!({"reason": "bubble"}),
    )
    .expect(200, "the defect report");
    wait_job_state(c, &w.sup, id, &["defect_reported"]);

    // The booklet is not in hand: reported missing. The step cannot stand, so the job is
    // printed again (not stuck waiting for a report that can no longer be decided whole).
    let r = c
        .post(
            "/custody/missing",
            Some(&w.sup),
            &json!({"serial": "B1000100", "note": "not at the laminator"}),
        )
        .expect(200, "the missing report");
    let recs = records(c, &w.aud);
    let seq = r["seq"].as_u64().expect("the record's seq");
    let rec = recs
        .iter()
        .find(|x| x["seq"].as_u64() == Some(seq))
        .expect("the answered record");
    assert_eq!(rec["event"]["type"], "item_reported_missing", "{rec}");
    let j = wait_job_state(c, &w.sup, id, &["spoiled_requeued", "queued", "printing"]);
    assert_eq!(j["spoiled"].as_u64(), Some(1), "{j}");
    assert!(trace_state(c, &w.aud, "B1000100").contains("missing"));
    // What is left of the report, the patch, is approved in hand; it cannot be rejected.
    let list = pending(c, &w.sup);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(strings(&list[0]["serials"]), ["P2000100"], "{list:?}");
    let r = c.post(
        "/custody/spoilage/P2000100/reject",
        Some(&w.sup),
        &json!({"scanned": ["P2000100"], "note": "fine"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "spoil_stands", "{}", r.text);
    c.post(
        "/custody/spoilage/P2000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["P2000100"], "note": "patch seen"}),
    )
    .expect(200, "the patch approved in hand");
    assert!(pending(c, &w.sup).is_empty());
    let s = session_report(c, &w.aud, &w.lam_session);
    assert_eq!(strings(&s["spoiled_approved"]), ["P2000100"], "{s}");
    let st = station(c, &w.sup, "LAM-01");
    assert_eq!(st["consumables"]["spoiled_pending"], 0, "{st}");
    // The job is printed again on a new booklet.
    wait_work(c, &w.sup, "PRINT-01", id, "assigned");
}
