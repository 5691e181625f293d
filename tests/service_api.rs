//! Black-box tests of the running service (issue 5, "Tests"): the `hallctl` binary serves a small
//! hall whose devices are simulators on pseudo-terminals (the real serial path), on a temporary
//! data directory; the tests speak HTTP to it like any client would (see `common/`).
//!
//! Every wait is a poll with a deadline; nothing asserts on timing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hallctl_jobs::intake::JobRequest;
use serde_json::{Value, json};

// ---- 1. end to end ------------------------------------------------------------------------------

#[test]
fn a_job_flows_end_to_end_and_the_patch_trace_shows_every_step() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);

    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let c1 = hall.sign_in("C1", Some("QC-01"));
    let d1 = hall.sign_in("D1", Some("DISPATCH-01"));

    let req = job_request("TRK-E2E-1", "Eriksson", "L898902C3");
    let id = submit(c, &sup, &req);

    // Print, by A1: the line assigns it; A1 scans the booklet; the printer prints.
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "A1 scans the booklet");
    wait_work(c, &sup, "PRINT-01", id, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}))
        .expect(200, "A1 confirms the print");

    // Lamination, by B1, with the first patch of B1's session.
    let w = wait_work(c, &sup, "LAM-01", id, "assigned");
    assert_eq!(w["work"]["booklet"], "B1000100", "{w}");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100"}),
    )
    .expect(200, "B1 scans the patch");
    wait_work(c, &sup, "LAM-01", id, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "B1 confirms the lamination");

    // QC, by C1: the MRZ read back equals the job's.
    wait_work(c, &sup, "QC-01", id, "assigned");
    let qc = c
        .post(
            "/stations/QC-01/qc",
            Some(&c1),
            &json!({"booklet": "B1000100", "mrz": mrz_of(&req)}),
        )
        .expect(200, "C1's QC");
    assert_eq!(qc["passed"], true, "{qc}");

    // Dispatch, by D1.
    wait_work(c, &sup, "DISPATCH-01", id, "assigned");
    let bag = c
        .post(
            "/stations/DISPATCH-01/pack",
            Some(&d1),
            &json!({"booklet": "B1000100"}),
        )
        .expect(200, "D1 packs");
    assert_eq!(bag["items"][0]["job"].as_u64(), Some(id), "{bag}");
    assert_eq!(bag["items"][0]["booklet"], "B1000100", "{bag}");

    let j = job(c, &sup, id);
    assert_eq!(j["state"]["state"], "dispatched", "{j}");
    assert_eq!(j["printed_by"], "A1", "{j}");
    assert_eq!(j["laminated_by"], "B1", "{j}");
    assert_eq!(j["checked_by"], "C1", "{j}");

    // The ledger trace of the patch, as the auditor sees it.
    let t = c
        .get("/ledger/trace/P2000100", Some(&aud))
        .expect(200, "trace");
    assert_eq!(t["partner"], "B1000100", "{t}");
    assert_eq!(t["job"].as_u64(), Some(id), "{t}");
    assert_eq!(t["document_number"], "L898902C3", "{t}");
    let steps = t["steps"].as_array().expect("steps");
    let step = |event: &str| -> &Value {
        steps
            .iter()
            .find(|s| s["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in the trace: {t}"))
    };
    let printed = step("booklet_printed");
    assert_eq!(printed["actor"], "A1", "{printed}");
    assert_eq!(printed["station"], "PRINT-01", "{printed}");
    assert!(
        printed["detail"].as_str().unwrap().contains("PR-01"),
        "the printing device: {printed}"
    );
    let applied = step("patch_applied");
    assert_eq!(applied["actor"], "B1", "{applied}");
    assert_eq!(applied["station"], "LAM-01", "{applied}");
    assert!(
        applied["detail"].as_str().unwrap().contains("LM-01"),
        "the laminating device: {applied}"
    );
    let checked = step("qc_checked");
    assert_eq!(checked["actor"], "C1", "{checked}");
    assert!(
        checked["detail"].as_str().unwrap().contains("passed"),
        "{checked}"
    );
    let dispatched = step("dispatched");
    assert_eq!(dispatched["actor"], "D1", "{dispatched}");
    // Nothing of the passport holder in the trace.
    assert!(
        !t.to_string().to_uppercase().contains("ERIKSSON"),
        "the trace carries no biodata: {t}"
    );
}

// ---- 2. refusals ----------------------------------------------------------------------------------

/// What a refusal must leave unchanged: the job, the ledger, the stations concerned.
fn snapshot(c: Client, sup: &str, aud: &str, jobs: &[u64], stations: &[&str]) -> Value {
    json!({
        // A refusal of a rule is recorded (`refused`) and alerted: nothing else is.
        "ledger": records_but_refusals(c, aud),
        "jobs": jobs.iter().map(|j| job(c, sup, *j)).collect::<Vec<_>>(),
        "stations": stations.iter().map(|s| station(c, sup, s)).collect::<Vec<_>>(),
    })
}

#[track_caller]
fn refused(r: Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    r.error(what);
}

#[test]
fn refusals_leave_nothing_changed() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);

    // One station per operator, one operator per station.
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let before = snapshot(c, &sup, &aud, &[], &["PRINT-01", "PRINT-02"]);
    refused(
        c.post(
            "/session",
            None,
            &json!({"user": "A1", "pin": pin("A1"), "station": "PRINT-02"}),
        ),
        409,
        "A1 signs in at a second station",
    );
    refused(
        c.post(
            "/session",
            None,
            &json!({"user": "A2", "pin": pin("A2"), "station": "PRINT-01"}),
        ),
        409,
        "A2 signs in at A1's station",
    );
    assert_eq!(
        snapshot(c, &sup, &aud, &[], &["PRINT-01", "PRINT-02"]),
        before,
        "a refused sign-in changes nothing"
    );

    // J1 is printed by A1.
    let a1_print = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let j1 = submit(c, &sup, &job_request("TRK-REF-1", "Eriksson", "L898902C3"));
    wait_work(c, &sup, "PRINT-01", j1, "assigned");
    // An operator does not choose the job: scanning for another job is refused.
    let before = snapshot(c, &sup, &aud, &[j1], &["PRINT-01"]);
    refused(
        c.post(
            "/stations/PRINT-01/print",
            Some(&a1),
            &json!({"booklet": "B1000100", "job": j1 + 41}),
        ),
        403,
        "A1 chooses another job",
    );
    assert_eq!(
        snapshot(c, &sup, &aud, &[j1], &["PRINT-01"]),
        before,
        "choosing a job changes nothing"
    );
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100", "job": j1}),
    )
    .expect(200, "A1 prints J1 (naming the assigned job is fine)");
    wait_work(c, &sup, "PRINT-01", j1, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}))
        .expect(200, "A1 confirms");
    wait_job_state(c, &sup, j1, &["printed"]);

    // A1 moves to a lamination station with patches of their own: the line must not give A1
    // the booklet A1 printed, and an explicit attempt is refused.
    // (One open custody session per operator: A1 returns the unused booklets and closes.)
    let a1 = move_operator(
        &hall,
        c,
        &a1,
        "A1",
        &a1_print,
        "B1000101-B1000109",
        "LAM-02",
        "P2000110-P2000119",
    );
    // A station's view comes from the line, which answers only after the scheduler ran on the
    // state the view shows: the first view of LAM-02 ready (staffed by A1, with patches) already
    // follows a scheduling pass in which it was free while J1 waited, and every later view
    // follows one more.
    let v = wait_for(60, "LAM-02 ready, with A1 and patches", || {
        let v = station(c, &sup, "LAM-02");
        let ok = v["readiness"] == "ready" && v["held"].as_u64() == Some(10);
        (ok.then(|| v.clone()), v.to_string())
    });
    for v in [v, station(c, &sup, "LAM-02")] {
        assert!(
            v["work"].is_null(),
            "the line assigned work to A1 at LAM-02 (J1 was printed by A1): {v}"
        );
    }
    assert_eq!(job_state(c, &sup, j1), "printed");
    let before = snapshot(c, &sup, &aud, &[j1], &["LAM-02"]);
    let r = c.post(
        "/stations/LAM-02/laminate",
        Some(&a1),
        &json!({"patch": "P2000110", "job": j1}),
    );
    assert!(
        r.status == 403 || r.status == 409,
        "A1 laminating the booklet A1 printed must be refused: {} {}",
        r.status,
        r.text
    );
    r.error("A1 laminates J1");
    assert_eq!(
        snapshot(c, &sup, &aud, &[j1], &["LAM-02"]),
        before,
        "a refused lamination changes nothing"
    );

    // B1 at LAM-01 gets J1.
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    wait_work(c, &sup, "LAM-01", j1, "assigned");
    let before = snapshot(c, &sup, &aud, &[j1], &["LAM-01", "LAM-02"]);
    let before_head = ledger_head(c, &aud);
    // A patch issued to another station's session (A1's at LAM-02).
    refused(
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({"patch": "P2000110"}),
        ),
        409,
        "B1 uses a patch not issued to LAM-01",
    );
    // A patch never issued at all (still in the vault).
    refused(
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({"patch": "P2000150"}),
        ),
        409,
        "B1 uses a patch still in the vault",
    );
    // Choosing a job.
    refused(
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({"patch": "P2000100", "job": j1 + 7}),
        ),
        403,
        "B1 chooses another job",
    );
    // Acting at someone else's station.
    refused(
        c.post(
            "/stations/LAM-01/laminate",
            Some(&a1),
            &json!({"patch": "P2000110"}),
        ),
        403,
        "A1 acts at B1's station",
    );
    // The refusals change no job, station or custody state. Each is a fact of its own, with
    // the person who tried as actor, and an occurrence of LAM-01's refusal incident (BRIEF §3):
    // none is swallowed by the alert the first one opened.
    let after = snapshot(c, &sup, &aud, &[j1], &["LAM-01", "LAM-02"]);
    let head_before = before_head;
    let facts = refusals_after(c, &aud, head_before);
    let rules: Vec<(&str, &str, &str)> = facts
        .iter()
        .map(|(a, r, s, _)| (a.as_str(), r.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("B1", "wrong_session", "LAM-01"),
            ("B1", "not_issued", "LAM-01"),
            ("B1", "chose_work", "LAM-01"),
            ("A1", "not_at_station", "LAM-01"),
        ],
        "{facts:?}"
    );
    assert!(facts[0].3.contains(&"P2000110".to_string()), "{facts:?}");
    assert!(facts[1].3.contains(&"P2000150".to_string()), "{facts:?}");
    let new: Vec<Value> = records(c, &aud)
        .into_iter()
        .filter(|r| r["seq"].as_u64() > Some(head_before))
        .map(|r| r["event"]["action"].clone())
        .collect();
    let kinds: Vec<&str> = new.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "refused",
            "alert_raised",
            "refused",
            "alert_repeated",
            "refused",
            "alert_repeated",
            "refused",
            "alert_repeated"
        ],
        "{new:?}"
    );
    assert_eq!(
        (new[1]["alert_kind"].as_str(), new[1]["subject"].as_str()),
        (Some("refusal"), Some("LAM-01")),
        "{}",
        new[1]
    );
    assert_eq!(new[7]["occurrence"], 4, "{}", new[7]);
    assert_eq!(after, before, "refused patch scans change nothing else");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000100"}),
    )
    .expect(200, "B1 laminates J1 with the first patch of the roll");
    wait_work(c, &sup, "LAM-01", j1, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "B1 confirms");
    wait_job_state(c, &sup, j1, &["laminated"]);

    // A patch used twice: J2, printed by A2, comes to B1, who scans J1's patch again.
    c.delete("/session", Some(&a1))
        .expect(204, "A1 leaves LAM-02");
    let a2 = hall.sign_in("A2", Some("PRINT-02"));
    open_and_issue(c, &a2, "A2", "PRINT-02", "B1000110-B1000119");
    let j2 = submit(c, &sup, &job_request("TRK-REF-2", "Lindqvist", "X12345678"));
    wait_work(c, &sup, "PRINT-02", j2, "assigned");
    c.post(
        "/stations/PRINT-02/print",
        Some(&a2),
        &json!({"booklet": "B1000110"}),
    )
    .expect(200, "A2 prints J2");
    wait_work(c, &sup, "PRINT-02", j2, "awaiting_confirmation");
    c.post("/stations/PRINT-02/confirm", Some(&a2), &json!({}))
        .expect(200, "A2 confirms");
    wait_work(c, &sup, "LAM-01", j2, "assigned");
    let before = snapshot(c, &sup, &aud, &[j1, j2], &["LAM-01"]);
    refused(
        c.post(
            "/stations/LAM-01/laminate",
            Some(&b1),
            &json!({"patch": "P2000100"}),
        ),
        409,
        "B1 uses J1's patch again",
    );
    assert_eq!(
        snapshot(c, &sup, &aud, &[j1, j2], &["LAM-01"]),
        before,
        "a patch used twice changes nothing"
    );
    let t = c
        .get("/ledger/trace/P2000100", Some(&aud))
        .expect(200, "trace");
    assert_eq!(t["job"].as_u64(), Some(j1), "the patch stays J1's: {t}");
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"patch": "P2000101"}),
    )
    .expect(200, "B1 laminates J2 with the next patch");
}

/// Every state-changing route, by a role it does not admit: 403 with the one error body; without
/// a token (or with a bad one): 401. Nothing is written to the ledger.
/// A route (method, path, a well-formed body) and the callers (who, token) it must refuse.
type Route<'a> = (&'a str, String, Value, Vec<(&'a str, &'a str)>);

#[test]
fn wrong_role_on_each_route_is_refused_and_changes_nothing() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let adm = hall.sign_in("AD1", None);
    let mon = hall.monitor_token.clone();
    receive_lots(c, &sup);
    // An operator at a print station with a session, and a job, so that routes naming them
    // reach their role check rather than a 404.
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000104");
    let j = submit(c, &sup, &job_request("TRK-ROLE-1", "Eriksson", "L898902C3"));
    // An operator on the hall UI, at no station.
    let v1 = hall.sign_in("V1", None);

    let mrz = mrz_of(&job_request("TRK-ROLE-1", "Eriksson", "L898902C3"));
    let cos = json!([{"user": "A1", "pin": pin("A1")}, {"user": "S1", "pin": pin("S1")}]);
    let new_job = json!({"jobs": [job_request("TRK-ROLE-2", "Lindqvist", "X12345678")]});
    let routes: Vec<Route<'_>> = {
        let op = ("operator at PRINT-01", a1.as_str());
        let op_ui = ("operator without station", v1.as_str());
        let s = ("supervisor", sup.as_str());
        let au = ("auditor", aud.as_str());
        let ad = ("admin", adm.as_str());
        let mo = ("monitor", mon.as_str());
        vec![
            (
                "POST",
                "/jobs".into(),
                new_job.clone(),
                vec![op, op_ui, au, mo],
            ),
            (
                "POST",
                format!("/jobs/{j}/hold"),
                json!({}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                format!("/jobs/{j}/release"),
                json!({}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                format!("/jobs/{j}/cancel"),
                json!({"reason": "test"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                format!("/jobs/{j}/reprioritise"),
                json!({"class": "urgent", "reason": "test"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                format!("/jobs/{j}/inspect"),
                json!({"verdict": "retry_step"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/stations/PRINT-01/print".into(),
                json!({"booklet": "B1000100"}),
                vec![op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/stations/LAM-01/laminate".into(),
                json!({"patch": "P2000100"}),
                vec![op, op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/stations/PRINT-01/confirm".into(),
                json!({}),
                vec![op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/stations/PRINT-01/defect".into(),
                json!({"reason": "smudge"}),
                vec![op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/stations/QC-01/qc".into(),
                json!({"booklet": "B1000100", "mrz": mrz}),
                vec![op, op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/stations/DISPATCH-01/pack".into(),
                json!({"booklet": "B1000100"}),
                vec![op, op_ui, s, au, ad, mo],
            ),
            (
                "POST",
                "/devices/PR-01/pause".into(),
                json!({}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/devices/PR-01/resume".into(),
                json!({}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/devices/PR-01/clear-fault".into(),
                json!({}),
                vec![au, ad, mo],
            ),
            (
                "POST",
                "/bags/BAG-LHR-01-1/close".into(),
                json!({}),
                vec![op_ui, au, ad, mo],
            ),
            (
                "POST",
                "/custody/lots".into(),
                json!({"lot": "BX-9", "kind": "booklet", "supplier": "X", "range": "B9000100-B9000109"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/custody/sessions".into(),
                json!({"station": "PRINT-01"}),
                vec![s, au, ad, mo],
            ),
            (
                "POST",
                format!("/custody/sessions/{session}/issue"),
                json!({"range": "B1000105-B1000106", "counters": cos}),
                vec![au, ad, mo],
            ),
            (
                "POST",
                format!("/custody/sessions/{session}/return"),
                json!({"serials": ["B1000104"], "counters": cos}),
                vec![au, ad, mo],
            ),
            (
                "POST",
                format!("/custody/sessions/{session}/close"),
                json!({}),
                vec![au, ad, mo],
            ),
            (
                "POST",
                "/custody/destructions".into(),
                json!({"batch": "D-1", "serials": ["B1000190"], "witnesses": cos,
                       "method": "shredding", "certificate": "C-1"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/custody/missing".into(),
                json!({"serial": "B1000191", "note": "not found"}),
                vec![op, au, ad, mo],
            ),
            (
                "POST",
                "/users".into(),
                json!({"id": "OP-NEW", "name": "New", "role": "operator", "pin": "583920"}),
                vec![op, op_ui, au, mo],
            ),
            (
                "POST",
                "/users".into(),
                json!({"id": "AD-NEW", "name": "New", "role": "admin", "pin": "583920"}),
                vec![op, s, au, mo],
            ),
            (
                "POST",
                "/users/A2/disable".into(),
                json!({}),
                vec![op, au, mo],
            ),
            (
                "POST",
                "/users/A2/enable".into(),
                json!({}),
                vec![op, au, mo],
            ),
            (
                "POST",
                "/users/A2/reset-pin".into(),
                json!({"pin": "583920"}),
                vec![op, au, mo],
            ),
            (
                "POST",
                "/users/AU1/disable".into(),
                json!({}),
                vec![op, s, au, mo],
            ),
            (
                "POST",
                "/users/A2/shifts".into(),
                json!({"shifts": ["A"]}),
                vec![op, au, mo],
            ),
            (
                "POST",
                "/users/AU1/shifts".into(),
                json!({"shifts": ["A"]}),
                vec![op, s, au, mo],
            ),
            // Reads by roles they are not for.
            ("GET", "/jobs".into(), Value::Null, vec![op]),
            ("GET", format!("/jobs/{j}"), Value::Null, vec![op]),
            (
                "GET",
                "/ledger/trace/B1000100".into(),
                Value::Null,
                vec![op, mo, ad],
            ),
            ("GET", "/ledger/records".into(), Value::Null, vec![op, mo]),
            ("GET", "/users".into(), Value::Null, vec![op, au, mo]),
            ("GET", "/stations/LAM-01".into(), Value::Null, vec![op]),
        ]
    };

    let before = snapshot(c, &sup, &aud, &[j], &["PRINT-01"]);
    let mut failures = Vec::new();
    let send = |method: &str, path: &str, tok: Option<&str>, body: &Value| match method {
        "GET" => c.get(path, tok),
        _ => c.post(path, tok, body),
    };
    for (method, path, body, wrong) in &routes {
        for (who, tok) in wrong {
            let r = send(method, path, Some(tok), body);
            let shaped =
                r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string();
            if r.status != 403 || !shaped {
                failures.push(format!("{method} {path} as {who}: {} {}", r.status, r.text));
            }
        }
        for (who, tok) in [("no token", None), ("a bad token", Some("not-a-token"))] {
            let r = send(method, path, tok, body);
            let shaped =
                r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string();
            if r.status != 401 || !shaped {
                failures.push(format!(
                    "{method} {path} with {who}: {} {}",
                    r.status, r.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "wrong roles not refused with 403/401 and the error body:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        snapshot(c, &sup, &aud, &[j], &["PRINT-01"]),
        before,
        "refused requests change nothing"
    );
}

// ---- 3. a printer fault mid-job ------------------------------------------------------------------

#[test]
fn a_printer_fault_mid_job_spoils_the_booklet_and_sends_the_job_back() {
    // Real time for the simulated devices: the print (8 s) is still running when the fault
    // comes, even on a loaded machine.
    let mut hall = spawn_hall(1.0);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let id = submit(
        c,
        &sup,
        &job_request("TRK-FAULT-1", "Eriksson", "L898902C3"),
    );
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "A1 starts the print");
    let v = wait_work(c, &sup, "PRINT-01", id, "running");
    assert_eq!(v["work"]["booklet"], "B1000100", "{v}");
    // The supervisor pauses the printer so that the requeued job stays visible in the queue
    // (pausing does not stop the step that is running).
    c.post("/devices/PR-01/pause", Some(&sup), &json!({}))
        .expect(200, "pause PR-01");
    assert_eq!(station(c, &sup, "PRINT-01")["work"]["phase"], "running");

    // The booklet jams in the printer (a machine fault the printer reports with a FAULT event).
    hall.inject("jam PR-01");

    let j = wait_job_state(c, &sup, id, &["spoiled_requeued", "queued"]);
    assert_eq!(j["spoiled"].as_u64(), Some(1), "one booklet spoiled: {j}");
    let st = station(c, &sup, "PRINT-01");
    assert!(st["work"].is_null(), "the station is free again: {st}");
    // A fault that spoils an item is told at once, naming it: a fault an operator caused to
    // keep a blank is seen within seconds.
    let alert = wait_for(60, "a device_spoil alert", || {
        let list = c.get("/alerts", Some(&sup)).expect(200, "alerts");
        let a = list["open"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["kind"] == "device_spoil" && a["subject"] == "PRINT-01")
            .cloned();
        (a, list.to_string())
    });
    assert_eq!(alert["serials"], json!(["B1000100"]), "{alert}");
    let t = c
        .get("/ledger/trace/B1000100", Some(&aud))
        .expect(200, "trace of the booklet");
    assert!(
        t["state"].as_str().unwrap_or_default().contains("spoil"),
        "the booklet is spoiled in the ledger: {t}"
    );
    let spoiled = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["event"] == "item_spoiled")
        .unwrap_or_else(|| panic!("no item_spoiled in the trace: {t}"));
    assert_eq!(spoiled["actor"], "A1", "{spoiled}");
    assert!(
        spoiled["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("fault"),
        "the spoil names the printer's fault: {spoiled}"
    );
    // The booklet was bound to the job before the printer moved (so a crash or a fault finds
    // it on the record), then spoiled: nothing in between is unaccounted for.
    let events: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["event"].as_str())
        .collect();
    let printed = events.iter().position(|e| *e == "booklet_printed");
    let spoiled_at = events.iter().position(|e| *e == "item_spoiled");
    assert!(
        matches!((printed, spoiled_at), (Some(p), Some(s)) if p < s),
        "bound to the job at the scan, then spoiled: {events:?}"
    );

    // The jam is cleared at the printer, the printer is resumed: it gets the job back, and it
    // prints on a new booklet.
    c.post("/devices/PR-01/resume", Some(&sup), &json!({}))
        .expect(200, "resume PR-01");
    wait_for(30, "PR-01 reports faulted", || {
        let st = station(c, &sup, "PRINT-01");
        ((st["readiness"] == "faulted").then_some(()), st.to_string())
    });
    c.post("/devices/PR-01/clear-fault", Some(&a1), &json!({}))
        .expect(200, "A1 clears the jam at PR-01");
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000101"}),
    )
    .expect(200, "A1 prints again on a new booklet");
    wait_work(c, &sup, "PRINT-01", id, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}))
        .expect(200, "A1 confirms");
    let j = wait_job_state(c, &sup, id, &["printed"]);
    assert_eq!(j["booklet"], "B1000101", "{j}");
}

// ---- 4. a restart mid-flow -----------------------------------------------------------------------

#[test]
fn a_restart_mid_step_leaves_the_job_for_inspection_and_the_supervisor_decides() {
    let mut hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let id = submit(
        c,
        &sup,
        &job_request("TRK-RESTART-1", "Eriksson", "L898902C3"),
    );
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "A1 starts the print");
    // The step is in flight (printed, not yet confirmed) when the controller dies.
    wait_work(c, &sup, "PRINT-01", id, "awaiting_confirmation");
    assert_eq!(job_state(c, &sup, id), "printing");

    hall.restart();
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let j = job(c, &sup, id);
    assert_eq!(j["state"]["state"], "needs_inspection", "{j}");
    assert_eq!(j["state"]["stage"], "print", "{j}");
    let listed = c
        .get("/jobs?state=needs_inspection", Some(&sup))
        .expect(200, "list");
    assert_eq!(listed["jobs"][0]["id"].as_u64(), Some(id), "{listed}");
    // Not silently repeated: no station was given the job again.
    let st = station(c, &sup, "PRINT-01");
    assert!(st["work"].is_null(), "{st}");

    // The booklet is bound to the job in the ledger: the print cannot be retried on another
    // booklet (that one would be left personalised and unaccounted for).
    let r = c.post(
        &format!("/jobs/{id}/inspect"),
        Some(&sup),
        &json!({"verdict": "retry_step"}),
    );
    assert_eq!(r.status, 409, "retry refused: {:?}", r.body);
    assert!(
        r.body.to_string().contains("B1000100"),
        "the refusal names the bound booklet: {:?}",
        r.body
    );
    // The supervisor looks at it and spoils it: the booklet is spoiled in the ledger and the
    // job goes back to the print queue for a new one.
    let r = c
        .post(
            &format!("/jobs/{id}/inspect"),
            Some(&sup),
            &json!({"verdict": "spoil"}),
        )
        .expect(200, "inspect");
    let state = r["state"]["state"].as_str().unwrap_or_default().to_string();
    assert_eq!(state, "spoiled_requeued", "back in the print queue: {r}");
    assert_eq!(job_state(c, &sup, id), state);
    let aud = hall.sign_in("AU1", None);
    let t = c
        .get("/ledger/trace/B1000100", Some(&aud))
        .expect(200, "trace of the booklet");
    assert!(
        t["state"].as_str().unwrap_or_default().contains("spoil"),
        "the booklet is spoiled: {t}"
    );
    // A second verdict is refused: it no longer needs inspection.
    let r = c.post(
        &format!("/jobs/{id}/inspect"),
        Some(&sup),
        &json!({"verdict": "retry_step"}),
    );
    refused(r, 409, "a second verdict");
}

// ---- 5. bad input --------------------------------------------------------------------------------

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_is_stored() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    // A distinctive surname: no error message may repeat it.
    const SURNAME: &str = "Vantongerloo";
    let good = job_request("TRK-IN-1", SURNAME, "K45612378");
    let v = c
        .post("/jobs", Some(&sup), &json!({"jobs": [good]}))
        .expect(200, "a valid job");
    let id = v["jobs"][0]["job"].as_u64().expect("id");
    let listing = || c.get("/jobs?limit=500", Some(&sup)).expect(200, "list");
    let stored = listing();
    assert_eq!(stored["jobs"].as_array().map(Vec::len), Some(1), "{stored}");

    let mut checked = Vec::new();
    let mut check = |what: &str, r: Resp, status: &[u16], field: Option<&str>| {
        assert!(
            status.contains(&r.status),
            "{what}: expected {status:?}, got {} {}",
            r.status,
            r.text
        );
        let (_, _, f) = r.error(what);
        if let Some(want) = field {
            assert_eq!(f.as_deref(), Some(want), "{what}: the field: {}", r.text);
        }
        assert!(
            !r.text.to_uppercase().contains(&SURNAME.to_uppercase()),
            "{what}: the error repeats the surname: {}",
            r.text
        );
        assert_eq!(listing(), stored, "{what}: nothing is stored");
        checked.push(what.to_string());
    };

    let with = |f: &dyn Fn(&mut JobRequest)| {
        let mut r = job_request("TRK-IN-2", SURNAME, "K45612379");
        f(&mut r);
        r
    };
    let post_jobs = |jobs: Vec<Value>| c.post("/jobs", Some(&sup), &json!({ "jobs": jobs }));
    let val = |r: JobRequest| serde_json::to_value(r).unwrap();

    // Malformed JSON.
    let body = format!(
        r#"{{"jobs": [{{"tracking_number": "TRK-IN-2", "personalization": {{"surname": "{SURNAME}"#
    );
    check(
        "malformed JSON",
        c.raw(
            "POST",
            "/jobs",
            Some(&sup),
            Some(body.as_bytes()),
            "application/json",
        ),
        &[400],
        None,
    );
    // Not JSON at all, with a JSON content type.
    check(
        "not JSON",
        c.raw(
            "POST",
            "/jobs",
            Some(&sup),
            Some(b"jobs=1"),
            "application/json",
        ),
        &[400],
        None,
    );
    // Unknown fields, at the top, in a job, in the personalization.
    let mut v = val(with(&|_| {}));
    v["colour"] = json!("blue");
    check("unknown field in a job", post_jobs(vec![v]), &[422], None);
    check(
        "unknown top-level field",
        c.post(
            "/jobs",
            Some(&sup),
            &json!({"jobs": [val(with(&|_| {}))], "priority": 1}),
        ),
        &[422],
        None,
    );
    let mut v = val(with(&|_| {}));
    v["personalization"]["maiden_name"] = json!(SURNAME);
    check(
        "unknown personalization field",
        post_jobs(vec![v]),
        &[422],
        None,
    );
    // A wrong type quoting the surname must not be echoed.
    let mut v = val(with(&|_| {}));
    v["personalization"]["given_names"] = json!([SURNAME]);
    check("wrong type", post_jobs(vec![v]), &[422], None);
    // A body over server.body_limit_bytes (64 KiB).
    let mut big = val(with(&|_| {}));
    big["personalization"]["place_of_birth"] = json!("Z".repeat(200_000));
    let bytes = serde_json::to_vec(&json!({"jobs": [big]})).unwrap();
    check(
        "huge body",
        c.raw(
            "POST",
            "/jobs",
            Some(&sup),
            Some(&bytes),
            "application/json",
        ),
        &[413],
        None,
    );
    // Invalid MRZ data.
    check(
        "a surname with digits",
        post_jobs(vec![val(with(&|r| {
            r.personalization.surname = format!("{SURNAME}7")
        }))]),
        &[422],
        Some("jobs[0].personalization.surname"),
    );
    check(
        "a surname in a script without transliteration",
        post_jobs(vec![val(with(&|r| {
            r.personalization.surname = "王小明".into()
        }))]),
        &[422],
        Some("jobs[0].personalization.surname"),
    );
    check(
        "a document number with lower case",
        post_jobs(vec![val(with(&|r| {
            r.personalization.document_number = "k4561237".into()
        }))]),
        &[422],
        Some("jobs[0].personalization.document_number"),
    );
    // Bad dates.
    check(
        "a date of birth that is not a date",
        post_jobs(vec![val(with(&|r| {
            r.personalization.date_of_birth = "1986-02-30".into()
        }))]),
        &[422],
        Some("jobs[0].personalization.date_of_birth"),
    );
    check(
        "a date of birth in another format",
        post_jobs(vec![val(with(&|r| {
            r.personalization.date_of_birth = "12/08/1986".into()
        }))]),
        &[422],
        Some("jobs[0].personalization.date_of_birth"),
    );
    check(
        "an expiry before the issue",
        post_jobs(vec![val(with(&|r| {
            r.personalization.date_of_expiry = "2001-01-01".into();
        }))]),
        &[422],
        Some("jobs[0].personalization.date_of_expiry"),
    );
    check(
        "a due time in the past",
        post_jobs(vec![val(with(&|r| r.due = "2020-01-01T00:00:00Z".into()))]),
        &[422],
        Some("jobs[0].due"),
    );
    // One bad job refuses the whole batch: the good one with it is not stored either.
    let ok = val(job_request("TRK-IN-3", SURNAME, "K45612380"));
    check(
        "a batch with one bad job",
        post_jobs(vec![ok, val(with(&|r| r.personalization.sex = "x".into()))]),
        &[422],
        Some("jobs[1].personalization.sex"),
    );
    // Duplicate tracking numbers in one batch.
    check(
        "duplicate tracking numbers in a batch",
        post_jobs(vec![
            val(job_request("TRK-IN-4", SURNAME, "K45612381")),
            val(job_request("TRK-IN-4", SURNAME, "K45612382")),
        ]),
        &[422],
        Some("jobs[1].tracking_number"),
    );
    // A conflicting resubmission (same tracking number, other content).
    check(
        "a conflicting resubmission",
        post_jobs(vec![val(job_request("TRK-IN-1", SURNAME, "K45612399"))]),
        &[409, 422],
        Some("jobs[0].tracking_number"),
    );
    // An empty batch.
    check("an empty batch", post_jobs(vec![]), &[422], None);
    assert_eq!(checked.len(), 18);

    // An identical resubmission returns the existing job.
    let v = c
        .post("/jobs", Some(&sup), &json!({"jobs": [good]}))
        .expect(200, "identical resubmission");
    assert_eq!(v["jobs"][0]["status"], "existing", "{v}");
    assert_eq!(v["jobs"][0]["job"].as_u64(), Some(id), "{v}");
    assert_eq!(listing(), stored, "nothing new stored");

    // Other bad requests have the one error body too.
    for (what, r, status) in [
        ("unknown route", c.get("/nope", Some(&sup)), 404),
        ("unknown job", c.get("/jobs/999", Some(&sup)), 404),
        ("bad job id", c.get("/jobs/J-x", Some(&sup)), 422),
        ("bad filter", c.get("/jobs?state=lost", Some(&sup)), 422),
        (
            "wrong content type",
            c.raw("POST", "/jobs", Some(&sup), Some(b"{}"), "text/plain"),
            415,
        ),
        (
            "wrong PIN",
            c.post("/session", None, &json!({"user": "A1", "pin": "999990"})),
            401,
        ),
    ] {
        assert_eq!(r.status, status, "{what}: {}", r.text);
        r.error(what);
    }
}

// ---- 6. the API document -------------------------------------------------------------------------

#[test]
fn the_openapi_document_lists_the_routes() {
    let hall = spawn_hall(0.02);
    let doc = hall
        .client
        .get("/openapi.json", None)
        .expect(200, "openapi.json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/jobs",
        "/jobs/{id}",
        "/stations/{id}/print",
        "/stations/{id}/laminate",
        "/custody/sessions",
        "/custody/sessions/{id}/issue",
        "/ledger/trace/{serial}",
        "/session",
    ] {
        let found = paths.contains_key(p) || paths.contains_key(&format!("/api/v1{p}"));
        assert!(
            found,
            "{p} is not in the document: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let jobs = paths
        .get("/jobs")
        .or_else(|| paths.get("/api/v1/jobs"))
        .unwrap();
    assert!(
        jobs["post"].is_object() && jobs["get"].is_object(),
        "{jobs}"
    );
}

/// The ledger is append-only through the API: no operation of the OpenAPI document writes under
/// `/ledger`, no method rewrites or deletes a record or a checkpoint (as the most powerful roles
/// try it), and what the API does append leaves every earlier record and checkpoint as it was.
#[test]
fn the_ledger_and_its_checkpoints_cannot_be_rewritten_through_the_api() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let adm = hall.sign_in("AD1", None);
    receive_lots(c, &sup);

    // The document: under /ledger, reads only; nowhere a method that replaces or edits records.
    let doc = c.get("/openapi.json", None).expect(200, "openapi.json");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        if path.contains("/ledger") {
            assert!(
                methods.iter().all(|m| *m == "get" || *m == "parameters"),
                "{path} takes {methods:?}: the ledger is read-only through the API"
            );
        }
        assert!(
            !methods.iter().any(|m| *m == "put" || *m == "patch"),
            "{path} takes {methods:?}: nothing is replaced or edited in place"
        );
    }

    let before = records(c, &aud);
    // The latest checkpoint, if one was signed yet (every 1,000 records or 60 s).
    let latest = |tok: &str| {
        let r = c.get("/ledger/checkpoint", Some(tok));
        assert!(r.status == 200 || r.status == 404, "{}", r.text);
        (r.status == 200).then_some(r.body)
    };
    // An evidence bundle signs a checkpoint of the head.
    c.get("/ledger/evidence/P2000100", Some(&aud))
        .expect(200, "an evidence bundle");
    let checkpoint = latest(&aud);
    assert!(
        checkpoint.is_some(),
        "the evidence bundle signed a checkpoint"
    );
    let first = before[0]["seq"].as_u64().expect("a first record");

    // Every way one might try, with every powerful token.
    let body = json!({"seq": first, "event": {"type": "lot_received"}, "link": "00"});
    for tok in [&adm, &sup, &aud] {
        for path in [
            "/ledger".to_string(),
            "/ledger/records".to_string(),
            format!("/ledger/records/{first}"),
            "/ledger/checkpoint".to_string(),
            "/ledger/checkpoints".to_string(),
            "/ledger/trace/P2000100".to_string(),
        ] {
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                let r = c.raw(
                    method,
                    &path,
                    Some(tok),
                    Some(body.to_string().as_bytes()),
                    "application/json",
                );
                assert!(
                    r.status == 404 || r.status == 405,
                    "{method} {path}: {} {}",
                    r.status,
                    r.text
                );
                r.error(&format!("{method} {path}"));
            }
        }
    }

    // The API appends (a lot, a session, a lockout...) and rewrites nothing.
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000104");
    let after = records(c, &aud);
    assert!(after.len() > before.len(), "the API appended");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "every earlier record is as it was"
    );
    if let Some(before) = checkpoint {
        let cp = latest(&aud).expect("a checkpoint stays");
        assert!(
            cp["seq"].as_u64() > before["seq"].as_u64() || cp == before,
            "checkpoints only move forward: {before} → {cp}"
        );
    }
}

// ---- graceful shutdown ---------------------------------------------------------------------------

#[test]
fn sigterm_stops_the_service_cleanly_and_a_restart_continues_from_the_stored_state() {
    let mut hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let id = submit(c, &sup, &job_request("TRK-TERM-1", "Eriksson", "L898902C3"));
    let head_before = ledger_head(c, &hall.sign_in("AU1", None));
    let mut child = hall.child.take().expect("the service runs");
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a clean stop exits 0: {exit}");
    let log = std::fs::read_to_string(hall.log()).unwrap_or_default();
    assert!(log.contains("stopped"), "the log says it stopped:\n{log}");

    hall.restart();
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    assert_eq!(
        job_state(c, &sup, id),
        "queued",
        "the job waits where it was"
    );
    let aud = hall.sign_in("AU1", None);
    // The restart recorded no inspection (nothing was in a step), only the new sign-ins.
    let records = records(c, &aud);
    assert!(
        !records.iter().any(|r| r["seq"].as_u64() > Some(head_before)
            && r["event"]["action"]["kind"] == "job_changed"),
        "no job changed across a clean restart"
    );
}

// ---- 7. accounts and shift rosters ---------------------------------------------------------------

/// `GET /users`, the account `id`.
fn account(c: Client, tok: &str, id: &str) -> Value {
    let all = c.get("/users", Some(tok)).expect(200, "GET /users");
    all.as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn sign_in_status(c: Client, user: &str, pin: &str, station: Option<&str>) -> Resp {
    let mut body = json!({"user": user, "pin": pin});
    if let Some(s) = station {
        body["station"] = json!(s);
    }
    c.post("/session", None, &body)
}

/// A supervisor adds an operator whose PIN the controller generates (answered once), disables
/// and enables them, resets their PIN (generated again), and rosters them; bad input is refused
/// naming what is wrong and changes nothing.
#[test]
fn a_supervisor_adds_disables_resets_and_rosters_an_operator_and_bad_input_changes_nothing() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);

    let added = c
        .post(
            "/users",
            Some(&sup),
            &json!({"id": "OP-9", "name": "Nine", "role": "operator", "generate_pin": true}),
        )
        .expect(200, "add OP-9 with a generated PIN");
    let pin = added["pin"]
        .as_str()
        .expect("the generated PIN")
        .to_string();
    assert!(
        pin.len() == 8 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{added}"
    );
    assert_eq!(added["user"]["shifts"], json!(["any"]), "{added}");
    let listed = account(c, &sup, "OP-9");
    assert_eq!(listed["disabled"], false, "{listed}");
    assert_eq!(listed["shifts"], json!(["any"]), "{listed}");
    assert!(
        listed.get("pin").is_none(),
        "the list shows no PIN: {listed}"
    );
    let op9 = sign_in_status(c, "OP-9", &pin, Some("PRINT-01")).expect(200, "OP-9 signs in");
    c.delete("/session", op9["token"].as_str())
        .expect(204, "OP-9 signs out");

    // Bad input: refused, naming the field; nothing changes.
    let before = records_but_refusals(c, &aud);
    let users_before = c.get("/users", Some(&sup)).expect(200, "users");
    let bad: Vec<(&str, String, Value, &str, &str)> = vec![
        (
            "a PIN and generate_pin",
            "/users".into(),
            json!({"id": "OP-10", "name": "Ten", "role": "operator", "pin": "583920", "generate_pin": true}),
            "generate_pin",
            "not both",
        ),
        (
            "reset with neither a PIN nor generate_pin",
            "/users/OP-9/reset-pin".into(),
            json!({}),
            "pin",
            "needs a PIN",
        ),
        (
            "a shift that is not one",
            "/users/OP-9/shifts".into(),
            json!({"shifts": ["A", "D"]}),
            "shifts",
            "\"D\" is not a shift",
        ),
        (
            "a shift twice",
            "/users/OP-9/shifts".into(),
            json!({"shifts": ["B", "B"]}),
            "shifts",
            "named twice",
        ),
        (
            "no shift",
            "/users/OP-9/shifts".into(),
            json!({"shifts": []}),
            "shifts",
            "at least one shift",
        ),
        (
            "any with a shift",
            "/users/OP-9/shifts".into(),
            json!({"shifts": ["any", "C"]}),
            "shifts",
            "stands alone",
        ),
    ];
    for (what, path, body, field, says) in bad {
        let r = c.post(&path, Some(&sup), &body);
        assert_eq!(r.status, 422, "{what}: {}", r.text);
        let (_, message, f) = r.error(what);
        assert_eq!(f.as_deref(), Some(field), "{what}: {}", r.text);
        assert!(message.contains(says), "{what}: {message}");
    }
    // A supervisor rosters operators only.
    let r = c.post("/users/AU1/shifts", Some(&sup), &json!({"shifts": ["A"]}));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        c.get("/users", Some(&sup)).expect(200, "users"),
        users_before,
        "the accounts are as they were"
    );
    assert_eq!(
        records_but_refusals(c, &aud),
        before,
        "nothing was recorded"
    );
    sign_in_status(c, "OP-9", &pin, None).expect(200, "the PIN still works");

    // Disable: OP-9 can no longer sign in; enable: they can again.
    let d = c
        .post("/users/OP-9/disable", Some(&sup), &json!({}))
        .expect(200, "disable");
    assert_eq!(d["disabled"], true, "{d}");
    let r = sign_in_status(c, "OP-9", &pin, Some("PRINT-01"));
    assert_eq!(
        r.status, 401,
        "a disabled account cannot sign in: {}",
        r.text
    );
    c.post("/users/OP-9/enable", Some(&sup), &json!({}))
        .expect(200, "enable");

    // Reset with a generated PIN: the old one stops working, the new one works.
    let reset = c
        .post(
            "/users/OP-9/reset-pin",
            Some(&sup),
            &json!({"generate_pin": true}),
        )
        .expect(200, "reset");
    let new_pin = reset["pin"].as_str().expect("the new PIN").to_string();
    assert_eq!(reset["id"], "OP-9", "{reset}");
    assert_ne!(new_pin, pin);
    let r = sign_in_status(c, "OP-9", &pin, None);
    assert_eq!(r.status, 401, "the old PIN: {}", r.text);
    sign_in_status(c, "OP-9", &new_pin, None).expect(200, "the new PIN");

    // Roster: stored, listed, recorded; the same again is no change.
    let r = c
        .post(
            "/users/OP-9/shifts",
            Some(&sup),
            &json!({"shifts": ["C", "A"]}),
        )
        .expect(200, "roster");
    assert_eq!(r["shifts"], json!(["A", "C"]), "{r}");
    assert_eq!(account(c, &sup, "OP-9")["shifts"], json!(["A", "C"]));
    let r = c.post(
        "/users/OP-9/shifts",
        Some(&sup),
        &json!({"shifts": ["A", "C"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let changes: Vec<Value> = records(c, &aud)
        .into_iter()
        .filter(|r| r["event"]["action"]["kind"] == "user_changed")
        .filter(|r| r["event"]["action"]["user"] == "OP-9")
        .map(|r| r["event"]["action"]["change"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![
            json!({"change": "added", "role": "operator"}),
            json!({"change": "disabled"}),
            json!({"change": "enabled"}),
            json!({"change": "pin_reset"}),
            json!({"change": "rostered", "shifts": ["A", "C"]}),
        ],
    );
    // The roster is kept across a restart.
    let mut hall = hall;
    hall.restart();
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    assert_eq!(account(c, &sup, "OP-9")["shifts"], json!(["A", "C"]));
}

/// An operator rostered for another shift signs in with the right PIN and is refused
/// (`not_rostered`, naming the shift now and theirs), recorded and alerted; the station stays
/// free. Rostered for the shift now, they sign in.
#[test]
fn an_operator_outside_their_roster_is_refused_recorded_and_alerted() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let (away, now) = a_shift_out_of_reach();
    c.post(
        "/users/A1/shifts",
        Some(&sup),
        &json!({"shifts": [away.to_string()]}),
    )
    .expect(200, "roster A1");
    let head = ledger_head(c, &aud);

    let r = sign_in_status(c, "A1", pin("A1"), Some("PRINT-01"));
    assert_eq!(r.status, 403, "{}", r.text);
    let (code, message, _) = r.error("not rostered");
    assert_eq!(code, "not_rostered", "{}", r.text);
    assert_eq!(r.body["error"]["rule"], "not_rostered", "{}", r.text);
    assert!(
        message.contains(&format!("shift {now} ")) && message.contains(&format!("shift(s) {away}")),
        "names the shift now and A1's: {message}"
    );
    let st = station(c, &sup, "PRINT-01");
    assert!(st["operator"].is_null(), "the station stays free: {st}");
    let refused = refusals_after(c, &aud, head);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0].0.as_str(), refused[0].1.as_str()),
        ("A1", "not_rostered")
    );
    let alerts = c.get("/alerts", Some(&sup)).expect(200, "alerts");
    assert!(
        alerts["open"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "refusal"
                && a["subject"] == "A1"
                && a["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("PRINT-01")),
        "the supervisor is told: {alerts}"
    );
    // No session was opened: nothing signed in.
    assert!(
        !records(c, &aud)
            .iter()
            .any(|r| r["seq"].as_u64() > Some(head) && r["event"]["action"]["kind"] == "signed_in"),
        "A1 did not sign in"
    );

    // Rostered for the shift now (or any), A1 signs in.
    c.post(
        "/users/A1/shifts",
        Some(&sup),
        &json!({"shifts": [now.to_string()]}),
    )
    .expect(200, "roster A1 for now");
    hall.sign_in("A1", Some("PRINT-01"));
}

// ---- auditors browse the ledger (issue 17, point 6) ----------------------------------------------

/// The `seq`s of a page of `/ledger/records` (or of its records).
fn seqs_of(page: &Value) -> Vec<u64> {
    page.get("records")
        .unwrap_or(page)
        .as_array()
        .expect("a page of records")
        .iter()
        .map(|r| r["seq"].as_u64().expect("a seq"))
        .collect()
}

/// Every page of `query` (`limit` each), following `cursor` (`after`: oldest first, or `before`:
/// newest first) from each page's `next` until one is `complete`.
fn every_page(c: Client, aud: &str, query: &str, limit: usize, cursor: &str) -> Vec<u64> {
    let mut out = Vec::new();
    // Newest first starts below the largest cursor; oldest first, without one.
    let mut at: Option<u64> = (cursor == "before").then_some(i64::MAX as u64);
    for _ in 0..10_000 {
        let cur = at.map(|s| format!("&{cursor}={s}")).unwrap_or_default();
        let page = c
            .get(
                &format!("/ledger/records?{query}&limit={limit}{cur}"),
                Some(aud),
            )
            .expect(200, &format!("a page of {query} {cur}"));
        let seqs = seqs_of(&page);
        out.extend(&seqs);
        if page["complete"] == true {
            assert_eq!(page["next"], Value::Null, "{page}");
            return out;
        }
        // A full page: its last record is the next cursor.
        assert_eq!(seqs.len(), limit, "{page}");
        assert_eq!(page["next"].as_u64(), seqs.last().copied(), "{page}");
        at = seqs.last().copied();
    }
    panic!("the pages of {query} never end");
}

#[test]
fn auditors_filter_records_by_kind_and_page_through_them() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let crew = LineCrew {
        sup: &sup,
        printer: &a1,
        laminator: &b1,
    };
    for n in 0..3u64 {
        let id = submit(
            c,
            &sup,
            &job_request(
                &format!("TRK-REC-{n}"),
                "Lindqvist",
                &format!("L89890{n}C3"),
            ),
        );
        print_and_laminate(c, &crew, id, &format!("B100010{n}"), &format!("P200010{n}"));
        c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
            .expect(200, "B1 confirms the lamination");
    }
    wait_for(30, "three patches applied", || {
        let r = c
            .get("/ledger/records?kind=patch_applied", Some(&aud))
            .expect(200, "patches applied");
        ((seqs_of(&r).len() == 3).then_some(()), r.to_string())
    });

    // By kind: the event's type.
    let get = |q: &str| c.get(&format!("/ledger/records?{q}"), Some(&aud));
    let applied = get("kind=patch_applied").expect(200, "patches applied");
    let applied = applied["records"].as_array().expect("records");
    assert_eq!(applied.len(), 3, "{applied:?}");
    assert!(
        applied
            .iter()
            .all(|r| r["event"]["type"] == "patch_applied"),
        "{applied:?}"
    );
    // With an operator and a station.
    let by_b1 = get("kind=patch_applied&operator=B1").expect(200, "B1's patches");
    assert_eq!(seqs_of(&by_b1).len(), 3, "{by_b1}");
    let by_a1 = get("kind=patch_applied&operator=A1").expect(200, "A1's patches");
    assert_eq!(seqs_of(&by_a1).len(), 0, "A1 applied no patch: {by_a1}");
    let printed = get("kind=booklet_printed&station=PRINT-01").expect(200, "prints");
    assert_eq!(seqs_of(&printed).len(), 3, "{printed}");
    // An action's kind, and `action` for every controller action.
    let sign_ins = get("kind=signed_in").expect(200, "sign-ins");
    let sign_ins = sign_ins["records"].as_array().expect("records");
    assert!(
        sign_ins.len() >= 4,
        "S1, AU1, A1, B1 signed in: {sign_ins:?}"
    );
    assert!(
        sign_ins
            .iter()
            .all(|r| r["event"]["type"] == "action" && r["event"]["action"]["kind"] == "signed_in"),
        "{sign_ins:?}"
    );
    let actions = get("kind=action&limit=10000").expect(200, "actions");
    let actions = actions["records"].as_array().expect("records");
    assert!(actions.len() > sign_ins.len(), "{actions:?}");
    assert!(actions.iter().all(|r| r["event"]["type"] == "action"));

    // Paging: oldest first after a cursor, newest first before one, each way every record once.
    let all = seqs_of(&get("limit=10000").expect(200, "every record"));
    let head = *all.last().expect("records");
    assert_eq!(all, (1..=head).collect::<Vec<_>>(), "no gaps, oldest first");
    // (A record may land while paging, the alerts' and the line's own: compare up to `head`.)
    let upto = |v: Vec<u64>| v.into_iter().filter(|s| *s <= head).collect::<Vec<_>>();
    assert_eq!(
        upto(every_page(c, &aud, "kind=action", 4, "after")),
        upto(seqs_of(&Value::Array(actions.clone())))
    );
    assert_eq!(
        upto(every_page(c, &aud, "operator=B1", 3, "after")),
        upto(seqs_of(
            &get("operator=B1&limit=10000").expect(200, "B1's records")
        ))
    );
    let oldest_first = every_page(c, &aud, "from=2000-01-01T00:00:00Z", 5, "after");
    assert_eq!(upto(oldest_first), all, "by time, oldest first");
    let newest_first = every_page(c, &aud, "kind=patch_applied", 2, "before");
    let mut applied_seqs = seqs_of(&Value::Array(applied.clone()));
    applied_seqs.reverse();
    assert_eq!(newest_first, applied_seqs, "newest first");
    let mut everything_newest_first = all.clone();
    everything_newest_first.reverse();
    // Records of signing in and out keep coming while paging: page below the head read above.
    let below_head = {
        let mut out: Vec<u64> = Vec::new();
        let mut before = head + 1;
        loop {
            let page = get(&format!("limit=7&before={before}")).expect(200, "a page");
            out.extend(seqs_of(&page));
            match page["next"].as_u64() {
                Some(next) => before = next,
                None => break out,
            }
        }
    };
    assert_eq!(
        below_head, everything_newest_first,
        "every record, newest first"
    );
    let late = get("kind=patch_applied&limit=1&before=9223372036854775807")
        .expect(200, "the newest patch applied");
    assert_eq!(seqs_of(&late), applied_seqs[..1], "{late}");

    // Bad values: 422 naming the parameter.
    let head_before = ledger_head(c, &aud);
    for (q, field) in [
        ("kind=nonsense", "kind"),
        ("kind=PATCH_APPLIED", "kind"),
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("before=1.5", "before"),
        ("after=1&before=9", "before"),
        ("before=9223372036854775808", "before"),
    ] {
        let r = get(q);
        assert_eq!(r.status, 422, "{q}: {}", r.text);
        let (code, _, f) = r.error(q);
        assert_eq!(
            (code.as_str(), f.as_deref()),
            ("invalid", Some(field)),
            "{q}"
        );
    }
    assert_eq!(ledger_head(c, &aud), head_before, "nothing recorded");
    // Records carry no passport-holder data.
    let every = get("limit=10000").expect(200, "every record").to_string();
    assert!(
        !every.to_uppercase().contains("LINDQVIST"),
        "no biodata in records"
    );

    // The document says so: the kinds it names, the cursors as sequence numbers.
    let doc = c.get("/openapi.json", None).expect(200, "openapi.json");
    let params = doc["paths"]["/ledger/records"]["get"]["parameters"]
        .as_array()
        .expect("the parameters of /ledger/records")
        .clone();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {params:?}"))
            .clone()
    };
    let kinds = param("kind")["schema"]["enum"].clone();
    for k in [
        "patch_applied",
        "item_spoiled",
        "action",
        "refused",
        "signed_in",
    ] {
        assert!(
            kinds.as_array().into_iter().flatten().any(|v| v == k),
            "{k} in {kinds}"
        );
    }
    for cursor in ["after", "before"] {
        assert_eq!(
            param(cursor)["schema"]["type"],
            "integer",
            "{}",
            param(cursor)
        );
    }
    // A page: its records, the next cursor, whether the search is complete.
    let body = &doc["paths"]["/ledger/records"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"];
    let page = &doc["components"]["schemas"]["RecordsPage"];
    assert_eq!(body, "#/components/schemas/RecordsPage", "{body}");
    for field in ["records", "next", "complete"] {
        assert!(page["properties"][field].is_object(), "{field} in {page}");
    }
}

#[test]
fn a_shift_reconciliation_lists_the_lots_received_and_drawn_on_in_that_shift() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    // A roll received and not drawn on yet.
    c.post(
        "/custody/lots",
        Some(&sup),
        &json!({"lot": "R-2", "kind": "patch", "supplier": "Specimen Films", "range": "P2000200-P2000299"}),
    )
    .expect(200, "a second roll");
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let by_session = c
        .get(&format!("/ledger/reconcile?session={session}"), Some(&aud))
        .expect(200, "the session's reconciliation");
    let shift = by_session["sessions"][0]["session"]["shift"]
        .as_str()
        .unwrap_or_else(|| panic!("the session's shift: {by_session}"))
        .to_string();

    let rec = c
        .get(&format!("/ledger/reconcile?shift={shift}"), Some(&aud))
        .expect(200, "the shift's reconciliation");
    assert_eq!(rec["sessions"].as_array().map(Vec::len), Some(1), "{rec}");
    let lots: Vec<&str> = rec["lots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["lot"]["id"].as_str())
        .collect();
    // The lots received in the shift's hours (all three, unless the test ran across a change of
    // shift) and BX-1, which its session drew on wherever it was received, in order of receipt.
    let (start, end) = hallctl::ledger::ShiftId::new(shift.as_str())
        .window()
        .unwrap_or_else(|| panic!("the line names its shifts by date and letter: {shift}"));
    let want: Vec<String> = records_of(c, &aud, "kind=lot_received&")
        .iter()
        .filter(|r| {
            let at: chrono::DateTime<chrono::Utc> = r["at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("a time");
            r["event"]["lot"] == "BX-1" || (start <= at && at < end)
        })
        .map(|r| r["event"]["lot"].as_str().expect("a lot").to_string())
        .collect();
    assert_eq!(want.first().map(String::as_str), Some("BX-1"), "{want:?}");
    assert_eq!(
        lots, want,
        "every lot received or drawn on in the shift: {rec}"
    );
    let bx = &rec["lots"][0];
    assert_eq!(bx["issued"].as_array().map(Vec::len), Some(10), "{bx}");
    assert_eq!(bx["in_vault"].as_array().map(Vec::len), Some(90), "{bx}");

    // A shift with no session and no lot has neither.
    let empty = c
        .get("/ledger/reconcile?shift=2001-01-01A", Some(&aud))
        .expect(200, "an old shift");
    assert_eq!(empty["lots"], json!([]), "{empty}");
}

/// An admin may not disable their own account nor reset their own PIN on the API: it would sign
/// them out for good. Refused naming the console command; nothing changes. (A supervisor manages
/// operators only: their own account is refused as any supervisor's.)
#[test]
fn disabling_oneself_or_resetting_ones_own_pin_is_refused_and_changes_nothing() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let aud = hall.sign_in("AU1", None);
    for who in ["AD1"] {
        let tok = hall.sign_in(who, None);
        let before = account(c, &tok, who);
        let head = ledger_head(c, &aud);
        for (what, body) in [
            ("disable", json!({})),
            ("reset-pin", json!({"generate_pin": true})),
            ("reset-pin", json!({"pin": "583920"})),
        ] {
            let r = c.post(&format!("/users/{who}/{what}"), Some(&tok), &body);
            assert_eq!(r.status, 403, "{who} {what}: {}", r.text);
            let (code, message, _) = r.error("own account");
            assert_eq!(code, "own_account", "{}", r.text);
            assert!(
                message.contains(&format!("hallctl users {what} {who}")),
                "names the console command: {message}"
            );
            assert!(r.body.get("pin").is_none(), "no PIN: {}", r.text);
        }
        assert_eq!(ledger_head(c, &aud), head, "nothing recorded for {who}");
        assert_eq!(
            account(c, &tok, who),
            before,
            "{who} unchanged, still signed in"
        );
    }
    // The old PIN still works.
    hall.sign_in("AD1", None);
    let sup = hall.sign_in("S1", None);
    let r = c.post("/users/S1/disable", Some(&sup), &json!({}));
    assert_eq!(r.status, 403, "{}", r.text);
}

/// Rostering a signed-in person for a shift that does not hold this moment signs them out; a
/// roster that does holds their session only to the end of the shift's window.
#[test]
fn a_new_roster_signs_out_who_it_no_longer_covers_and_a_session_ends_with_the_shift() {
    use chrono::Timelike;
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let (away, now) = a_shift_out_of_reach();
    let a1 = hall.sign_in("A1", None);
    c.get("/session", Some(&a1)).expect(200, "A1 signed in");
    c.post(
        "/users/A1/shifts",
        Some(&sup),
        &json!({"shifts": [away.to_string()]}),
    )
    .expect(200, "roster A1 away");
    let r = c.get("/session", Some(&a1));
    assert_eq!(r.status, 401, "A1 is signed out: {}", r.text);

    // Rostered for the shift now: signed in until the window closes, not 12 h.
    c.post(
        "/users/A1/shifts",
        Some(&sup),
        &json!({"shifts": [now.to_string()]}),
    )
    .expect(200, "roster A1 now");
    let r = sign_in_status(c, "A1", pin("A1"), None).expect(200, "A1 for the shift now");
    let expires: chrono::DateTime<chrono::Utc> = r["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("a time");
    let start = match now {
        'A' => 6,
        'B' => 14,
        _ => 22,
    };
    assert_eq!(
        (expires.hour(), expires.minute(), expires.second()),
        ((start + 8) % 24, 30, 0),
        "ends with shift {now}'s grace: {expires}"
    );
    assert!(expires - chrono::Utc::now() <= chrono::TimeDelta::minutes(8 * 60 + 30));
}
