//! Insider moves around custody sessions and rolls (issue 16, points 2 and 6), through the real
//! binary and its API: walking away from a session holding items, a refused close, a session
//! left open past its shift, a roll skip that sets the skipped serials aside. Each test checks
//! the record, the alert (on the supervisor's status stream where it matters), and that nothing
//! else changed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use serde_json::{Value, json};

/// The first event on `sse` of the record `kind` (`alert_raised`...) whose alert kind, when
/// given, is `alert_kind`.
fn wait_record(sse: &mut SseStream, kind: &str, alert_kind: Option<&str>) -> Value {
    let (_, v) = sse.until(2000, |name, v| {
        name == kind && alert_kind.is_none_or(|k| v["alert"]["kind"] == k)
    });
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn session(c: Client, tok: &str, id: &str) -> Value {
    c.get(&format!("/custody/sessions/{id}"), Some(tok))
        .expect(200, "the session")
}

fn open_alert(c: Client, sup: &str, kind: &str, subject: &str) -> Option<Value> {
    let list = c.get("/alerts", Some(sup)).expect(200, "alerts");
    list["open"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["kind"] == kind && a["subject"] == subject)
        .cloned()
}

#[test]
fn signing_out_holding_items_abandons_the_session_and_alerts_every_serial() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000103");
    let mut sse = c.stream(&sup);

    c.delete("/session", Some(&b1))
        .expect(204, "B1 signs out holding 4 patches");

    let raised = wait_record(&mut sse, "alert_raised", Some("session_abandoned"));
    let held = ["P2000100", "P2000101", "P2000102", "P2000103"];
    assert_eq!(strings(&raised["alert"]["serials"]), held, "{raised}");
    assert_eq!(raised["alert"]["severity"], "critical", "{raised}");
    let s = session(c, &sup, &id);
    assert!(s["closed_at"].is_null(), "the session stays open: {s}");
    assert!(s["abandoned_at"].is_string(), "flagged abandoned: {s}");
    assert_eq!(strings(&s["held"]), held, "it still holds them: {s}");
    // The record names every serial, and each serial's trace shows it.
    let step = trace_step(c, &aud, "P2000102", "session_abandoned");
    assert_eq!(step["station"], "LAM-01", "{step}");
    assert!(
        step["detail"].as_str().unwrap().contains("signed out"),
        "{step}"
    );
    let alert = open_alert(c, &sup, "session_abandoned", &id).expect("an open alert");
    assert_eq!(strings(&alert["serials"]), held, "{alert}");
    // The record and its alert were written in one batch (one time for both): a power cut keeps
    // both or neither.
    let all = records(c, &aud);
    let at = all
        .iter()
        .position(|r| r["event"]["type"] == "session_abandoned")
        .expect("the record");
    let next = &all[at + 1];
    assert_eq!(next["event"]["action"]["kind"], "alert_raised", "{next}");
    assert_eq!(next["at"], all[at]["at"], "one batch: {} {next}", all[at]);

    // Away from the station (the hall UI), B1 cannot act on the session: recorded.
    let b1_ui = hall.sign_in("B1", None);
    let r = c.post(
        &format!("/custody/sessions/{id}/return"),
        Some(&b1_ui),
        &json!({"range": "P2000100-P2000103", "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": pin("S1")},
        ]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "not_at_station", "{}", r.text);
    c.delete("/session", Some(&b1_ui))
        .expect(204, "B1 leaves the hall UI");
    // A supervisor signing someone out of a station is the same move.
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let a1 = hall.sign_in("A1", Some("LAM-02"));
    let id2 = open_and_issue(c, &a1, "A1", "LAM-02", "P2000110-P2000111");
    c.post("/stations/LAM-02/vacate", Some(&sup), &json!({}))
        .expect(200, "S1 signs A1 out of LAM-02");
    let raised = wait_record(&mut sse, "alert_raised", Some("session_abandoned"));
    assert_eq!(raised["alert"]["subject"], id2.as_str(), "{raised}");
    assert_eq!(
        strings(&raised["alert"]["serials"]),
        ["P2000110", "P2000111"]
    );

    // Back at the station, B1 returns the patches and closes: the session balances.
    c.post(
        &format!("/custody/sessions/{id}/return"),
        Some(&b1),
        &json!({"range": "P2000100-P2000103", "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, "return");
    c.post(
        &format!("/custody/sessions/{id}/close"),
        Some(&b1),
        &json!({}),
    )
    .expect(200, "close");
}

#[test]
fn signing_out_with_nothing_held_abandons_nothing() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000101");
    c.post(
        &format!("/custody/sessions/{id}/return"),
        Some(&b1),
        &json!({"range": "P2000100-P2000101", "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, "return");
    c.delete("/session", Some(&b1)).expect(204, "sign out");
    let kinds: Vec<String> = records(c, &aud)
        .iter()
        .map(|r| r["event"]["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!kinds.iter().any(|k| k == "session_abandoned"), "{kinds:?}");
    assert!(session(c, &sup, &id)["abandoned_at"].is_null());
}

#[test]
fn a_refused_close_is_recorded_and_alerts_naming_the_unaccounted_serials() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000101");
    let before = (session(c, &sup, &id), records_but_refusals(c, &aud));
    let head = ledger_head(c, &aud);
    let mut sse = c.stream(&sup);

    let r = c.post(
        &format!("/custody/sessions/{id}/close"),
        Some(&b1),
        &json!({}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "unbalanced", "{}", r.text);

    let raised = wait_record(&mut sse, "alert_raised", Some("refusal"));
    assert_eq!(raised["alert"]["subject"], "LAM-01", "{raised}");
    assert_eq!(raised["alert"]["severity"], "critical", "{raised}");
    assert_eq!(
        strings(&raised["alert"]["serials"]),
        ["P2000100", "P2000101"]
    );
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(
        (
            facts[0].0.as_str(),
            facts[0].1.as_str(),
            facts[0].2.as_str()
        ),
        ("B1", "unbalanced", "LAM-01")
    );
    assert_eq!(facts[0].3, ["P2000100", "P2000101"]);
    assert_eq!(
        (session(c, &sup, &id), records_but_refusals(c, &aud)),
        before,
        "a refused close changes nothing else"
    );
    // The refusal is on each serial's trace.
    let t = c
        .get("/ledger/trace/P2000101", Some(&aud))
        .expect(200, "trace");
    assert!(
        t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["event"] == "refused" && s["actor"] == "B1"),
        "{t}"
    );
}

#[test]
fn a_session_open_from_an_earlier_shift_raises_an_alert_when_the_controller_starts() {
    let mut hall = spawn_hall(0.02);
    let sup = hall.sign_in("S1", None);
    receive_lots(hall.client, &sup);
    hall.kill9();
    // A session of a shift long over, as a controller that was down at the change left it.
    let ledger = hall.dir.path().join("data").join("ledger");
    let append = |actor: &str, event: Value| {
        let o = hallctl()
            .args(["ledger", "append", "--actor", actor, "--event"])
            .arg(event.to_string())
            .env("HALLCTL_LEDGER", &ledger)
            .output()
            .expect("run hallctl ledger append");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    append(
        "A2",
        json!({"type": "session_opened", "session": "S-OLD-1", "station": "PRINT-02",
               "operator": "A2", "shift": "2026-01-05B"}),
    );
    append(
        "A2",
        json!({"type": "items_issued", "session": "S-OLD-1", "serials": ["B1000150", "B1000151"],
               "counters": ["A2", "S1"]}),
    );
    hall.restart();
    let sup = hall.sign_in("S1", None);
    let alert = wait_for(60, "the shift-end alert", || {
        let a = open_alert(hall.client, &sup, "session_open_at_shift_end", "S-OLD-1");
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(strings(&alert["serials"]), ["B1000150", "B1000151"]);
    assert!(
        alert["detail"]
            .as_str()
            .unwrap()
            .contains("(shift 2026-01-05B)"),
        "{alert}"
    );
}

/// J prints at PRINT-01 (A1) and waits at LAM-01 (B1).
fn printed(c: Client, sup: &str, a1: &str, booklet: &str, tracking: &str) -> u64 {
    let j = submit(c, sup, &job_request(tracking, "Specimen", "L898902C3"));
    wait_work(c, sup, "PRINT-01", j, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(a1),
        &json!({"booklet": booklet}),
    )
    .expect(200, "print");
    wait_work(c, sup, "PRINT-01", j, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(a1), &json!({}))
        .expect(200, "confirm the print");
    wait_work(c, sup, "LAM-01", j, "assigned");
    j
}

#[test]
fn a_recorded_roll_skip_sets_the_skipped_serials_aside_and_the_roll_goes_on() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000103");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000105");

    let j1 = printed(c, &sup, &a1, "B1000100", "TRK-SKIP-1");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000102", "skip_reason": "first two patches creased"}),
    )
    .expect(200, "a skip with a reason");
    wait_work(c, &sup, "LAM-01", j1, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "confirm");
    let s = session(c, &sup, &id);
    assert_eq!(
        strings(&s["set_aside"]),
        ["P2000100", "P2000101"],
        "the skipped serials are set aside: {s}"
    );
    let skip = open_alert(c, &sup, "roll_skip", &id).expect("the roll_skip alert");
    assert_eq!(
        strings(&skip["serials"]),
        ["P2000102", "P2000100", "P2000101"],
        "the alert names the patch used and every serial set aside: {skip}"
    );
    assert_eq!(
        strings(&s["held"]),
        ["P2000100", "P2000101", "P2000103", "P2000104", "P2000105"],
        "and still held (accountable): {s}"
    );
    // The skipped serial's trace says it was set aside, and why.
    let aside = trace_step(c, &aud, "P2000100", "items_set_aside");
    assert!(
        aside["detail"]
            .as_str()
            .unwrap()
            .contains("first two patches creased"),
        "{aside}"
    );

    // The roll goes on from P2000103: no second skip, no alert.
    let j2 = printed(c, &sup, &a1, "B1000101", "TRK-SKIP-2");
    let head = ledger_head(c, &aud);
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000103"}),
    )
    .expect(200, "the next patch on the roll, without a reason");
    wait_work(c, &sup, "LAM-01", j2, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "confirm");
    assert!(refusals_after(c, &aud, head).is_empty());

    // A set-aside serial is never used: refused, recorded, alerted.
    let j3 = printed(c, &sup, &a1, "B1000102", "TRK-SKIP-3");
    let head = ledger_head(c, &aud);
    let r = c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100", "skip_reason": "looks fine after all"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "set_aside", "{}", r.text);
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(facts[0].1, "set_aside");
    assert!(facts[0].3.contains(&"P2000100".to_string()), "{facts:?}");
    let _ = j3;

    // They go back to the vault with a two-person count.
    c.post(
        &format!("/custody/sessions/{id}/return"),
        Some(&b1),
        &json!({"serials": ["P2000100", "P2000101"], "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, "return the set-aside serials");
    let s = session(c, &sup, &id);
    assert!(s["set_aside"].as_array().is_none_or(Vec::is_empty), "{s}");
}

#[test]
fn wrong_cosigner_pins_count_against_the_asker_and_never_lock_the_supervisor_out() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_session(c, &b1, "LAM-01");
    let head = ledger_head(c, &aud);
    let issue = |s1_pin: &str| {
        c.post(
            &format!("/custody/sessions/{id}/issue"),
            Some(&b1),
            &json!({"range": "P2000100-P2000101", "counters": [
                {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": s1_pin},
            ]}),
        )
    };
    // Five wrong PINs typed into the co-signer field (the hall's limit is 5).
    for n in 1..=5 {
        let r = issue("999999");
        assert_eq!(r.status, 403, "wrong PIN {n}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "cosigner_pin", "{}", r.text);
        assert_eq!(r.body["error"]["field"], "counters[1]", "{}", r.text);
        assert_eq!(r.body["error"]["rule"], "cosigner_pin", "{}", r.text);
    }
    // Now B1 (and LAM-01's terminal) may not ask for co-signatures, even with the right PIN.
    let r = issue(pin("S1"));
    assert_eq!(r.status, 423, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "cosign_blocked", "{}", r.text);
    // S1 is not locked out: S1 signs in, and co-signs for A1 at another station.
    let s1_again = c.post("/session", None, &json!({"user": "S1", "pin": pin("S1")}));
    assert_eq!(s1_again.status, 200, "S1 signs in: {}", s1_again.text);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000101");
    // Every wrong PIN is a fact, and one incident about B1 gathers them, critical at the limit.
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 6, "{facts:?}");
    assert!(
        facts
            .iter()
            .all(|(a, r, s, _)| a == "B1" && r == "cosigner_pin" && s == "LAM-01"),
        "{facts:?}"
    );
    let alert = open_alert(c, &sup, "cosigner_failures", "B1").expect("an incident about B1");
    assert_eq!(alert["occurrences"], 6, "{alert}");
    assert_eq!(alert["severity"], "critical", "{alert}");
    // Nothing was issued.
    assert_eq!(session(c, &sup, &id)["held"], json!([]));
}

#[test]
fn a_session_gets_only_what_its_work_needs_and_a_refused_issue_is_recorded() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_session(c, &b1, "LAM-01");
    let issue = |range: &str| {
        c.post(
            &format!("/custody/sessions/{id}/issue"),
            Some(&b1),
            &json!({"range": range, "counters": [
                {"user": "B1", "pin": pin("B1")}, {"user": "S1", "pin": pin("S1")},
            ]}),
        )
    };
    // No work queued: the margin (25 by default) is all a session may hold.
    let head = ledger_head(c, &aud);
    let r = issue("P2000100-P2000125");
    assert_eq!(r.status, 409, "26 patches: {}", r.text);
    assert_eq!(r.body["error"]["rule"], "issue_cap", "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 25"),
        "{}",
        r.text
    );
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(
        (facts[0].0.as_str(), facts[0].1.as_str()),
        ("B1", "issue_cap")
    );
    assert_eq!(facts[0].3.len(), 26, "every serial asked for is named");
    assert_eq!(session(c, &sup, &id)["held"], json!([]), "nothing issued");
    assert!(open_alert(c, &sup, "refusal", "LAM-01").is_some());
    issue("P2000100-P2000124").expect(200, "25 patches");
    let r = issue("P2000125-P2000125");
    assert_eq!(r.status, 409, "a 26th: {}", r.text);
}

#[test]
fn an_operator_whose_token_expires_holding_items_leaves_an_abandoned_session() {
    // The shortest token life the configuration allows: one minute.
    let hall = spawn_hall_with(0.02, "[policy]\ntoken_ttl_minutes = 1\n");
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000102");
    // B1 walks away without signing out. A minute later the token expires; the controller
    // signs B1 out of LAM-01 and the session is abandoned. (Every person's token expires in a
    // minute here: the monitoring service's token, which does not, watches.)
    let mon = hall.monitor_token.clone();
    let alert = wait_for(180, "the session abandoned after the token expired", || {
        let a = open_alert(c, &mon, "session_abandoned", &id);
        (a.clone(), format!("{a:?}"))
    });
    assert!(
        alert["detail"].as_str().unwrap().contains("3 item(s)"),
        "{alert}"
    );
    let sup = hall.sign_in("S1", None);
    let s = session(c, &sup, &id);
    assert!(s["abandoned_at"].is_string(), "{s}");
    assert_eq!(strings(&s["held"]), ["P2000100", "P2000101", "P2000102"]);
    let station = c.get("/stations/LAM-01", Some(&sup)).expect(200, "LAM-01");
    assert!(station["operator"].is_null(), "B1 left LAM-01: {station}");
}

#[test]
fn an_operator_signing_a_discrepancy_is_refused_recorded_and_alerted() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000101");
    let before = (session(c, &sup, &id), records_but_refusals(c, &aud));
    let mut sse = c.stream(&sup);

    // The operator signs their own write-off, then a fellow operator signs it.
    for signer in ["B1", "B2"] {
        let head = ledger_head(c, &aud);
        let r = c.post(
            &format!("/custody/sessions/{id}/close"),
            Some(&b1),
            &json!({"missing": ["P2000100", "P2000101"], "statement": "lost",
                    "supervisor": {"user": signer, "pin": pin(signer)}}),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(
            r.body["error"]["rule"], "self_signed_discrepancy",
            "{}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], "supervisor", "{}", r.text);
        let facts = refusals_after(c, &aud, head);
        assert_eq!(facts.len(), 1, "{facts:?}");
        assert_eq!(
            (
                facts[0].0.as_str(),
                facts[0].1.as_str(),
                facts[0].2.as_str()
            ),
            ("B1", "self_signed_discrepancy", "LAM-01")
        );
        assert_eq!(facts[0].3, ["P2000100", "P2000101"]);
    }
    let raised = wait_record(&mut sse, "alert_raised", Some("refusal"));
    assert_eq!(raised["alert"]["subject"], "LAM-01", "{raised}");
    let again = wait_record(&mut sse, "alert_repeated", None);
    assert_eq!(again["alert"]["id"], raised["alert"]["id"], "{again}");
    assert_eq!(again["alert"]["occurrence"], 2, "{again}");
    assert_eq!(
        (session(c, &sup, &id), records_but_refusals(c, &aud)),
        before,
        "the refused write-offs change nothing else"
    );
}

#[test]
fn a_booklet_the_line_did_not_assign_is_refused_at_qc_and_dispatch_and_alerted() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000103");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000103");
    let c1 = hall.sign_in("C1", Some("QC-01"));
    let d1 = hall.sign_in("D1", Some("DISPATCH-01"));
    let through_lamination = |tracking: &str, booklet: &str, patch: &str| {
        let j = printed(c, &sup, &a1, booklet, tracking);
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({ "patch": patch }),
        )
        .expect(200, "laminate");
        wait_work(c, &sup, "LAM-01", j, "awaiting_confirmation");
        c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
            .expect(200, "confirm");
        wait_work(c, &sup, "QC-01", j, "assigned");
        j
    };
    let mrz = |tracking: &str| mrz_of(&job_request(tracking, "Specimen", "L898902C3"));

    let j1 = through_lamination("TRK-GATE-1", "B1000100", "P2000100");
    c.post(
        "/stations/QC-01/qc",
        Some(&c1),
        &json!({"booklet": "B1000100", "mrz": mrz("TRK-GATE-1")}),
    )
    .expect(200, "QC");
    wait_work(c, &sup, "DISPATCH-01", j1, "assigned");
    c.post(
        "/stations/DISPATCH-01/pack",
        Some(&d1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "pack");
    let j2 = through_lamination("TRK-GATE-2", "B1000101", "P2000101");

    // QC scans another booklet than the assigned one (the packed one).
    let before = records_but_refusals(c, &aud);
    let head = ledger_head(c, &aud);
    let r = c.post(
        "/stations/QC-01/qc",
        Some(&c1),
        &json!({"booklet": "B1000100", "mrz": mrz("TRK-GATE-1")}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "wrong_booklet", "{}", r.text);
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!((facts[0].0.as_str(), facts[0].2.as_str()), ("C1", "QC-01"));
    assert_eq!(facts[0].3, ["B1000100", "B1000101"]);
    assert_eq!(records_but_refusals(c, &aud), before);
    assert!(open_alert(c, &sup, "refusal", "QC-01").is_some());

    // Dispatch scans a booklet already packed: refused the same way.
    c.post(
        "/stations/QC-01/qc",
        Some(&c1),
        &json!({"booklet": "B1000101", "mrz": mrz("TRK-GATE-2")}),
    )
    .expect(200, "QC");
    wait_work(c, &sup, "DISPATCH-01", j2, "assigned");
    let before = records_but_refusals(c, &aud);
    let head = ledger_head(c, &aud);
    let r = c.post(
        "/stations/DISPATCH-01/pack",
        Some(&d1),
        &json!({"booklet": "B1000100"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "wrong_booklet", "{}", r.text);
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(
        (facts[0].0.as_str(), facts[0].2.as_str()),
        ("D1", "DISPATCH-01")
    );
    assert_eq!(records_but_refusals(c, &aud), before);
    assert!(open_alert(c, &sup, "refusal", "DISPATCH-01").is_some());
}

#[test]
fn severities_follow_the_configuration_by_rule_then_by_kind() {
    let hall = spawn_hall_with(
        0.02,
        "[alerts.severity]\nunbalanced = \"info\"\nrefusal = \"warning\"\n",
    );
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000100");
    let r = c.post(
        &format!("/custody/sessions/{id}/close"),
        Some(&b1),
        &json!({}),
    );
    assert_eq!(r.body["error"]["rule"], "unbalanced", "{}", r.text);
    let a = wait_for(60, "the refusal incident", || {
        let a = open_alert(c, &sup, "refusal", "LAM-01");
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(a["severity"], "info", "the rule's setting: {a}");
    // Closing another operator's session is critical by default; with no setting for its rule,
    // the kind's (warning) applies: the incident's severity is the worst of its occurrences.
    let a2 = hall.sign_in("A2", Some("LAM-02"));
    let r = c.post(
        &format!("/custody/sessions/{id}/close"),
        Some(&a2),
        &json!({}),
    );
    assert_eq!(r.body["error"]["rule"], "not_own_session", "{}", r.text);
    let a = wait_for(60, "the second occurrence", || {
        let a = open_alert(c, &sup, "refusal", "LAM-01").filter(|a| a["occurrences"] == 2);
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(a["severity"], "warning", "the kind's setting: {a}");
}

#[test]
fn two_operators_cannot_count_items_out_of_or_into_the_vault_without_a_supervisor() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000101");
    let head = ledger_head(c, &aud);
    // B1 and B2 "count" a return of B1's patches: the patches would be back in the vault on
    // paper and in B1's pocket.
    let r = c.post(
        &format!("/custody/sessions/{id}/return"),
        Some(&b1),
        &json!({"range": "P2000100-P2000101", "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "B2", "pin": pin("B2")},
        ]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["error"]["rule"], "count_without_supervisor",
        "{}",
        r.text
    );
    let facts = refusals_after(c, &aud, head);
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(facts[0].3, ["P2000100", "P2000101"], "{facts:?}");
    let alert = open_alert(c, &sup, "refusal", "LAM-01").expect("an incident");
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(
        strings(&session(c, &sup, &id)["held"]),
        ["P2000100", "P2000101"],
        "nothing returned"
    );
    // The same for an issue.
    let r = c.post(
        &format!("/custody/sessions/{id}/issue"),
        Some(&b1),
        &json!({"range": "P2000102-P2000103", "counters": [
            {"user": "B1", "pin": pin("B1")}, {"user": "B2", "pin": pin("B2")},
        ]}),
    );
    assert_eq!(
        r.body["error"]["rule"], "count_without_supervisor",
        "{}",
        r.text
    );
}

#[test]
fn leaving_with_a_step_in_flight_still_abandons_the_session_and_alerts() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000101");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let id = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000103");
    let j = printed(c, &sup, &a1, "B1000100", "TRK-GONE-1");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100"}),
    )
    .expect(200, "laminate");
    wait_work(c, &sup, "LAM-01", j, "awaiting_confirmation");
    // B1 walks away without confirming; the supervisor signs B1 out. The step must be finished
    // first (409), but the three patches B1 left are told now, not at the end of the shift.
    let r = c.post("/stations/LAM-01/vacate", Some(&sup), &json!({}));
    assert_eq!(r.status, 409, "{}", r.text);
    let alert = wait_for(60, "the abandonment alert", || {
        let a = open_alert(c, &sup, "session_abandoned", &id);
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(
        strings(&alert["serials"]),
        ["P2000101", "P2000102", "P2000103"],
        "{alert}"
    );
    assert!(
        alert["detail"].as_str().unwrap().contains("3 item(s)"),
        "{alert}"
    );
    // A second attempt does not flag it again.
    let r = c.post("/stations/LAM-01/vacate", Some(&sup), &json!({}));
    assert_eq!(r.status, 409, "{}", r.text);
    let a = open_alert(c, &sup, "session_abandoned", &id).expect("still open");
    assert_eq!(a["occurrences"], 1, "{a}");

    // B1 comes back, finishes the step and starts the next; walking away again is a second
    // departure, told again (the session's old flag does not hide it).
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "confirm");
    let j2 = printed(c, &sup, &a1, "B1000101", "TRK-GONE-2");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000101"}),
    )
    .expect(200, "laminate the next");
    wait_work(c, &sup, "LAM-01", j2, "awaiting_confirmation");
    let r = c.post("/stations/LAM-01/vacate", Some(&sup), &json!({}));
    assert_eq!(r.status, 409, "{}", r.text);
    let a = wait_for(60, "the second departure's occurrence", || {
        let a = open_alert(c, &sup, "session_abandoned", &id).filter(|a| a["occurrences"] == 2);
        (a.clone(), format!("{a:?}"))
    });
    assert_eq!(
        strings(&a["serials"]),
        ["P2000101", "P2000102", "P2000103"],
        "{a}"
    );
}

#[test]
fn an_operator_at_a_supervisors_route_is_recorded_and_alerted() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let head = ledger_head(c, &aud);
    // B1 tries to report a vault patch missing (to cover a theft), then to hold a job.
    let r = c.post(
        "/custody/missing",
        Some(&b1),
        &json!({"serial": "P2000150", "note": "gone"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "role", "{}", r.text);
    let r = c.post("/jobs/1/hold", Some(&b1), &json!({}));
    assert_eq!(r.status, 403, "{}", r.text);
    let facts = refusals_after(c, &aud, head);
    let rules: Vec<(&str, &str, &str)> = facts
        .iter()
        .map(|(a, r, s, _)| (a.as_str(), r.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        rules,
        [("B1", "role", "LAM-01"), ("B1", "role", "LAM-01")],
        "{facts:?}"
    );
    let alert = open_alert(c, &sup, "refusal", "LAM-01").expect("an incident");
    assert_eq!(alert["occurrences"], 2, "{alert}");
    assert!(
        alert["last_detail"]
            .as_str()
            .unwrap()
            .contains("may not hold jobs"),
        "{alert}"
    );
    // Nothing else changed: the patch is still in the vault.
    let t = c
        .get("/ledger/trace/P2000150", Some(&aud))
        .expect(200, "trace");
    assert!(t["state"].as_str().unwrap().contains("vault"), "{t}");
}

#[test]
fn items_go_only_where_they_are_used() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let count = |tok: &str, id: &str, range: &str, who: &str| {
        c.post(
            &format!("/custody/sessions/{id}/issue"),
            Some(tok),
            &json!({"range": range, "counters": [
                {"user": who, "pin": pin(who)}, {"user": "S1", "pin": pin("S1")},
            ]}),
        )
    };
    // Patches to a printer's session: the wrong kind, whatever the count.
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let print = open_session(c, &a1, "PRINT-01");
    let r = count(&a1, &print, "P2000100-P2000101", "A1");
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "wrong_kind", "{}", r.text);
    // A QC station holds no custody items of its own: nothing may be issued to it.
    let c1 = hall.sign_in("C1", Some("QC-01"));
    let qc = open_session(c, &c1, "QC-01");
    let head = ledger_head(c, &aud);
    let r = count(&c1, &qc, "P2000102-P2000103", "C1");
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "issue_cap", "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 0 patches"),
        "{}",
        r.text
    );
    assert_eq!(refusals_after(c, &aud, head).len(), 1);
    assert_eq!(session(c, &sup, &qc)["held"], json!([]));
}

#[test]
fn a_serial_never_received_is_traced_to_the_attempts_that_named_it() {
    // A forged or stolen-elsewhere patch scanned at a laminator: the auditor starts from the
    // serial on the patch and finds who tried it, where and when.
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000101");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000101");
    c.get("/ledger/trace/P2999999", Some(&aud))
        .expect(404, "nothing named it yet");
    printed(c, &sup, &a1, "B1000100", "TRK-FORGED-1");
    let r = c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2999999"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "unknown_serial", "{}", r.text);

    let t = c
        .get("/ledger/trace/P2999999", Some(&aud))
        .expect(200, "the trace of a serial only refusals named");
    assert!(t["kind"].is_null(), "{t}");
    assert!(
        t["state"].as_str().unwrap().contains("never received"),
        "{t}"
    );
    let steps = t["steps"].as_array().unwrap();
    let refused = steps
        .iter()
        .find(|s| {
            s["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown_serial")
        })
        .unwrap_or_else(|| panic!("the refusal is on the serial's trace: {t}"));
    assert_eq!(refused["actor"], "B1", "{refused}");
    assert_eq!(refused["station"], "LAM-01", "{refused}");
    // The evidence bundle of the serial carries those records.
    c.get("/ledger/evidence/P2999999", Some(&aud))
        .expect(200, "the evidence of the attempt");
}

/// Account management is a supervisor's or an admin's: an operator adding an account or
/// resetting a colleague's PIN, and a supervisor disabling the auditor, are insider moves,
/// refused, recorded and alerted (rule `role`), and nothing else changes. An operator learns
/// nothing of which ids exist: an unknown id is refused like a known one.
#[test]
fn an_account_change_by_someone_who_may_not_is_recorded_and_alerted() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let a1 = hall.sign_in("A1", None);
    let users_before = c.get("/users", Some(&sup)).expect(200, "users");
    let head = ledger_head(c, &aud);
    let tries = [
        (
            &a1,
            "/users",
            json!({"id": "OP-NEW", "name": "New", "role": "operator", "pin": "583920"}),
        ),
        (&a1, "/users/A2/reset-pin", json!({"pin": "583920"})),
        (&a1, "/users/NOBODY-9/disable", json!({})),
        (&sup, "/users/AU1/disable", json!({})),
        (
            &sup,
            "/users",
            json!({"id": "AD-NEW", "name": "New", "role": "admin", "pin": "583920"}),
        ),
    ];
    for (tok, path, body) in &tries {
        let r = c.post(path, Some(tok), body);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["rule"], "role", "{path}: {}", r.text);
    }
    let facts = refusals_after(c, &aud, head);
    let who: Vec<(&str, &str)> = facts
        .iter()
        .map(|(a, r, _, _)| (a.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("A1", "role"),
            ("A1", "role"),
            ("A1", "role"),
            ("S1", "role"),
            ("S1", "role")
        ],
        "{facts:?}"
    );
    let alert = open_alert(c, &sup, "refusal", "A1").expect("an incident about A1");
    assert_eq!(alert["occurrences"], 3, "{alert}");
    assert_eq!(
        c.get("/users", Some(&sup)).expect(200, "users"),
        users_before,
        "no account changed"
    );
}
