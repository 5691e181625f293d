//! Bad input, black-box, route family by route family (the real binary, simulated devices, a
//! temporary data directory): malformed JSON, wrong types, unknown fields, bodies over
//! `server.body_limit_bytes`, out-of-range numbers and bad path ids. Each answer must be a 4xx
//! with the one error body naming its code (and the field, where one is to blame), and the
//! ledger's head must be where it was: a refusal changes nothing.
//!
//! The generated battery (`tests/api_battery.rs`, schemathesis) covers the same ground at
//! random; these are the cases a person would try first, written down. Job submissions' bad
//! input is in `tests/service_api.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use serde_json::{Value, json};

/// A request body.
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

/// A request that must be refused: status, error code and (when one is to blame) field.
struct Bad {
    what: String,
    method: &'static str,
    path: String,
    token: Option<String>,
    body: Body,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn bad(
    what: &str,
    method: &'static str,
    path: &str,
    token: &str,
    body: Body,
    (status, code, field): (u16, &'static str, Option<&'static str>),
) -> Bad {
    Bad {
        what: what.to_string(),
        method,
        path: path.to_string(),
        token: (!token.is_empty()).then(|| token.to_string()),
        body,
        status,
        code,
        field,
    }
}

fn head(c: Client, auditor: &str) -> Value {
    c.get("/ledger/head", Some(auditor))
        .expect(200, "the ledger head")
}

/// Sends every case; collects every mismatch, so that one run shows them all.
fn refuse_all(c: Client, auditor: &str, cases: Vec<Bad>) -> usize {
    let mut failures = Vec::new();
    let n = cases.len();
    for b in cases {
        let before = head(c, auditor);
        let r = match &b.body {
            Body::None => c.raw(
                b.method,
                &b.path,
                b.token.as_deref(),
                None,
                "application/json",
            ),
            Body::Json(v) => c.raw(
                b.method,
                &b.path,
                b.token.as_deref(),
                Some(v.to_string().as_bytes()),
                "application/json",
            ),
            Body::Raw(bytes, ct) => c.raw(b.method, &b.path, b.token.as_deref(), Some(bytes), ct),
        };
        let after = head(c, auditor);
        let e = &r.body["error"];
        let mut wrong = Vec::new();
        if r.status != b.status {
            wrong.push(format!("status {} (want {})", r.status, b.status));
        }
        if e["code"].as_str() != Some(b.code) {
            wrong.push(format!("code {} (want {})", e["code"], b.code));
        }
        if e["message"].as_str().is_none_or(str::is_empty) {
            wrong.push("no message".into());
        }
        if let Some(f) = b.field
            && e["field"].as_str() != Some(f)
        {
            wrong.push(format!("field {} (want {f})", e["field"]));
        }
        // A refusal of a custody rule is recorded (`refused`, and its alert: two records);
        // anything else leaves the ledger as it was.
        let moved_by_the_refusal = e["rule"].is_string() && {
            let from = before["seq"].as_u64().unwrap_or(0);
            let new: Vec<Value> = records(c, auditor)
                .into_iter()
                .filter(|r| r["seq"].as_u64() > Some(from))
                .collect();
            new.len() == 2
                && new[0]["event"]["action"]["kind"] == "refused"
                && new[1]["event"]["action"]["kind"]
                    .as_str()
                    .is_some_and(|k| k == "alert_raised" || k == "alert_repeated")
        };
        if before != after && !moved_by_the_refusal {
            wrong.push(format!("the ledger moved: {before} -> {after}"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({} {}): {}\n    {}",
                b.what,
                b.method,
                b.path,
                wrong.join("; "),
                r.text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} bad requests were not refused as they should be:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

const BAD_JSON: (u16, &str, Option<&str>) = (400, "bad_json", None);
const TOO_LARGE: (u16, &str, Option<&str>) = (413, "too_large", None);
const NOT_JSON: (u16, &str, Option<&str>) = (415, "content_type", None);

const fn data(field: &'static str) -> (u16, &'static str, Option<&'static str>) {
    (422, "bad_json", Some(field))
}

const fn invalid(field: &'static str) -> (u16, &'static str, Option<&'static str>) {
    (422, "invalid", Some(field))
}

/// A JSON body just over the test hall's `server.body_limit_bytes` (65,536).
fn oversized() -> Body {
    Body::Json(json!({ "padding": "x".repeat(70_000) }))
}

#[test]
fn every_route_family_refuses_bad_input_and_changes_nothing() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let adm = hall.sign_in("AD1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000104");
    let j = submit(c, &sup, &job_request("TRK-BAD-1", "Eriksson", "L898902C3"));
    let cos = json!([{"user": "A1", "pin": pin("A1")}, {"user": "S1", "pin": pin("S1")}]);
    let long = "x".repeat(501);

    // The JSON body routes, each sent malformed JSON, a non-JSON content type and a body over
    // the limit: the same three answers everywhere.
    let body_routes: Vec<(&str, String, &str)> = vec![
        ("session", "/session".into(), ""),
        ("jobs", "/jobs".into(), &sup),
        ("cancel", format!("/jobs/{j}/cancel"), &sup),
        ("reprioritise", format!("/jobs/{j}/reprioritise"), &sup),
        ("inspect", format!("/jobs/{j}/inspect"), &sup),
        ("print", "/stations/PRINT-01/print".into(), &a1),
        ("laminate", "/stations/PRINT-01/laminate".into(), &a1),
        ("defect", "/stations/PRINT-01/defect".into(), &a1),
        ("qc", "/stations/PRINT-01/qc".into(), &a1),
        ("pack", "/stations/PRINT-01/pack".into(), &a1),
        ("lots", "/custody/lots".into(), &sup),
        ("open session", "/custody/sessions".into(), &a1),
        ("issue", format!("/custody/sessions/{session}/issue"), &sup),
        (
            "return",
            format!("/custody/sessions/{session}/return"),
            &sup,
        ),
        ("close", format!("/custody/sessions/{session}/close"), &sup),
        ("destroy", "/custody/destructions".into(), &sup),
        ("missing", "/custody/missing".into(), &sup),
        ("add user", "/users".into(), &adm),
        ("reset pin", "/users/A2/reset-pin".into(), &adm),
    ];
    let mut cases = Vec::new();
    for (name, path, tok) in &body_routes {
        cases.push(bad(
            &format!("{name}: malformed JSON"),
            "POST",
            path,
            tok,
            Body::Raw(b"{]".to_vec(), "application/json"),
            BAD_JSON,
        ));
        cases.push(bad(
            &format!("{name}: not JSON"),
            "POST",
            path,
            tok,
            Body::Raw(b"a=1&b=2".to_vec(), "application/x-www-form-urlencoded"),
            NOT_JSON,
        ));
        cases.push(bad(
            &format!("{name}: over the body limit"),
            "POST",
            path,
            tok,
            oversized(),
            TOO_LARGE,
        ));
        cases.push(bad(
            &format!("{name}: a JSON string for an object"),
            "POST",
            path,
            tok,
            Body::Json(json!("an object, please")),
            (422, "bad_json", None),
        ));
    }

    let j_path = |cmd: &str| format!("/jobs/{j}/{cmd}");
    cases.extend([
        // ---- session
        bad(
            "sign-in: a number for the id",
            "POST",
            "/session",
            "",
            Body::Json(json!({"user": 7, "pin": "395172"})),
            data("user"),
        ),
        bad(
            "sign-in: an unknown field",
            "POST",
            "/session",
            "",
            Body::Json(json!({"user": "A2", "pin": pin("A2"), "remember": true})),
            data("remember"),
        ),
        bad(
            "sign-in: no PIN",
            "POST",
            "/session",
            "",
            Body::Json(json!({"user": "A2"})),
            data("pin"),
        ),
        bad(
            "sign-in: an id that cannot be one",
            "POST",
            "/session",
            "",
            Body::Json(json!({"user": "a2 ", "pin": "618204"})),
            (401, "invalid_credentials", None),
        ),
        bad(
            "sign-in: at a station that does not exist",
            "POST",
            "/session",
            "",
            Body::Json(json!({"user": "A2", "pin": pin("A2"), "station": "PRINT-99"})),
            (404, "not_found", None),
        ),
        // ---- jobs
        bad(
            "job: an id that is not one",
            "GET",
            "/jobs/J-x",
            &sup,
            Body::None,
            invalid("id"),
        ),
        bad(
            "job: id zero",
            "POST",
            "/jobs/0/hold",
            &sup,
            Body::None,
            invalid("id"),
        ),
        bad(
            "job: an id past 2^64",
            "POST",
            "/jobs/99999999999999999999999/release",
            &sup,
            Body::None,
            invalid("id"),
        ),
        bad(
            "job: an unknown id",
            "POST",
            "/jobs/424242/hold",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "jobs: page size zero",
            "GET",
            "/jobs?limit=0",
            &sup,
            Body::None,
            invalid("limit"),
        ),
        bad(
            "jobs: page size over 500",
            "GET",
            "/jobs?limit=501",
            &sup,
            Body::None,
            invalid("limit"),
        ),
        bad(
            "jobs: a negative page size",
            "GET",
            "/jobs?limit=-1",
            &sup,
            Body::None,
            invalid("limit"),
        ),
        bad(
            "jobs: after past the 64-bit signed range",
            "GET",
            "/jobs?after=9223372036854775808",
            &sup,
            Body::None,
            invalid("after"),
        ),
        bad(
            "jobs: an unknown filter",
            "GET",
            "/jobs?colour=red",
            &sup,
            Body::None,
            invalid("colour"),
        ),
        bad(
            "reprioritise: an unknown class",
            "POST",
            &j_path("reprioritise"),
            &sup,
            Body::Json(json!({"class": "express", "reason": "asked"})),
            data("class"),
        ),
        bad(
            "reprioritise: a reason too long",
            "POST",
            &j_path("reprioritise"),
            &sup,
            Body::Json(json!({"class": "urgent", "reason": long})),
            invalid("reason"),
        ),
        bad(
            "cancel: no reason",
            "POST",
            &j_path("cancel"),
            &sup,
            Body::Json(json!({})),
            data("reason"),
        ),
        bad(
            "cancel: a reason with a line break",
            "POST",
            &j_path("cancel"),
            &sup,
            Body::Json(json!({"reason": "duplicate\nrequest"})),
            invalid("reason"),
        ),
        bad(
            "inspect: an unknown verdict",
            "POST",
            &j_path("inspect"),
            &sup,
            Body::Json(json!({"verdict": "maybe"})),
            data("verdict"),
        ),
        bad(
            "inspect: a serial that is not one",
            "POST",
            &j_path("inspect"),
            &sup,
            Body::Json(json!({"verdict": "step_completed", "serial": "B 100/0"})),
            invalid("serial"),
        ),
        // ---- stations and devices
        bad(
            "print: a serial that is not one",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Json(json!({"booklet": "B1000100; DROP"})),
            invalid("booklet"),
        ),
        bad(
            "print: a serial of 41 characters",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Json(json!({"booklet": "B".repeat(41)})),
            invalid("booklet"),
        ),
        bad(
            "print: a negative job",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Json(json!({"booklet": "B1000100", "job": -1})),
            data("job"),
        ),
        bad(
            "print: a job as a fraction",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Json(json!({"booklet": "B1000100", "job": 1.5})),
            data("job"),
        ),
        bad(
            "print: a job past 2^64",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Raw(
                br#"{"booklet": "B1000100", "job": 18446744073709551616}"#.to_vec(),
                "application/json",
            ),
            data("job"),
        ),
        bad(
            "print: an unknown field",
            "POST",
            "/stations/PRINT-01/print",
            &a1,
            Body::Json(json!({"booklet": "B1000100", "copies": 2})),
            data("copies"),
        ),
        bad(
            "laminate: a skip reason too long",
            "POST",
            "/stations/PRINT-01/laminate",
            &a1,
            Body::Json(json!({"patch": "P2000100", "skip_reason": long})),
            invalid("skip_reason"),
        ),
        bad(
            "defect: a reason of the wrong type",
            "POST",
            "/stations/PRINT-01/defect",
            &a1,
            Body::Json(json!({"reason": ["smudge"]})),
            data("reason"),
        ),
        bad(
            "defect: a reason too long",
            "POST",
            "/stations/PRINT-01/defect",
            &a1,
            Body::Json(json!({"reason": long})),
            invalid("reason"),
        ),
        bad(
            "qc: one MRZ line",
            "POST",
            "/stations/PRINT-01/qc",
            &a1,
            Body::Json(json!({"booklet": "B1000100", "mrz": ["P<UTO"]})),
            data("mrz"),
        ),
        bad(
            "station: an unknown id",
            "GET",
            "/stations/NOPE-1",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "device: an unknown id",
            "POST",
            "/devices/NOPE-1/pause",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "vacate: an unknown station",
            "POST",
            "/stations/NOPE-1/vacate",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "bag: an unknown id",
            "POST",
            "/bags/NOPE-1/close",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        // ---- custody
        bad(
            "lot: a range of another shape",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "booklet", "supplier": "S", "range": "B100-C200"}),
            ),
            invalid("range"),
        ),
        bad(
            "lot: a range backwards",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "booklet", "supplier": "S", "range": "B2000200-B2000100"}),
            ),
            invalid("range"),
        ),
        bad(
            "lot: a range of 10 million",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "booklet", "supplier": "S", "range": "B0000000-B9999999"}),
            ),
            invalid("range"),
        ),
        bad(
            "lot: a last number with more digits than the first",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "booklet", "supplier": "S", "range": "B995-B1005"}),
            ),
            invalid("range"),
        ),
        bad(
            "lot: serials of 60 characters",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(json!({"lot": "BX-9", "kind": "booklet", "supplier": "S",
                "range": format!("{}1-{}2", "B".repeat(59), "B".repeat(59))})),
            invalid("range"),
        ),
        bad(
            "lot: an unknown kind",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "sticker", "supplier": "S", "range": "B3000100-B3000199"}),
            ),
            data("kind"),
        ),
        bad(
            "lot: an id with a space",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX 9", "kind": "booklet", "supplier": "S", "range": "B3000100-B3000199"}),
            ),
            invalid("lot"),
        ),
        bad(
            "lot: a supplier too long",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-9", "kind": "booklet", "supplier": long, "range": "B3000100-B3000199"}),
            ),
            invalid("supplier"),
        ),
        bad(
            "lot: received twice",
            "POST",
            "/custody/lots",
            &sup,
            Body::Json(
                json!({"lot": "BX-1", "kind": "booklet", "supplier": "S", "range": "B3000100-B3000199"}),
            ),
            (409, "refused", None),
        ),
        bad(
            "open session: no station",
            "POST",
            "/custody/sessions",
            &a1,
            Body::Json(json!({"station": " "})),
            invalid("station"),
        ),
        bad(
            "issue: a range of a trillion",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"range": "B0-B999999999999", "counters": cos})),
            invalid("range"),
        ),
        bad(
            "issue: serials and a range",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"range": "B1000110-B1000111", "serials": ["B1000112"], "counters": cos})),
            invalid("range"),
        ),
        bad(
            "issue: one counter",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"range": "B1000110-B1000111", "counters": [cos[0]]})),
            data("counters"),
        ),
        bad(
            "issue: a counter without a PIN",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"range": "B1000110-B1000111", "counters": [{"user": "A1"}, cos[1]]})),
            data("counters[0].pin"),
        ),
        bad(
            "issue: a serial that is not one",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"serials": ["B1000110", "B10001 11"], "counters": cos})),
            invalid("serials[1]"),
        ),
        bad(
            "issue: a wrong PIN",
            "POST",
            &format!("/custody/sessions/{session}/issue"),
            &sup,
            Body::Json(json!({"range": "B1000110-B1000111", "counters": [
                {"user": "A1", "pin": "999990"}, cos[1]]})),
            (403, "cosigner_pin", Some("counters[0]")),
        ),
        bad(
            "issue: to a session that does not exist",
            "POST",
            "/custody/sessions/NOPE-1/issue",
            &a1,
            Body::Json(json!({"range": "B1000110-B1000111", "counters": cos})),
            (404, "not_found", None),
        ),
        bad(
            "close: a statement too long",
            "POST",
            &format!("/custody/sessions/{session}/close"),
            &sup,
            Body::Json(json!({"missing": ["B1000101"], "statement": long,
                "supervisor": {"user": "S1", "pin": pin("S1")}})),
            invalid("statement"),
        ),
        bad(
            "close: missing items without a supervisor",
            "POST",
            &format!("/custody/sessions/{session}/close"),
            &sup,
            Body::Json(json!({"missing": ["B1000101"]})),
            invalid("supervisor"),
        ),
        bad(
            "destroy: a batch id with a slash",
            "POST",
            "/custody/destructions",
            &sup,
            Body::Json(json!({"batch": "D/1", "serials": ["B1000190"], "witnesses": cos,
                "method": "shredding", "certificate": "DC-1"})),
            invalid("batch"),
        ),
        bad(
            "destroy: a method too long",
            "POST",
            "/custody/destructions",
            &sup,
            Body::Json(json!({"batch": "D-1", "serials": ["B1000190"], "witnesses": cos,
                "method": long, "certificate": "DC-1"})),
            invalid("method"),
        ),
        bad(
            "missing: a note too long",
            "POST",
            "/custody/missing",
            &sup,
            Body::Json(json!({"serial": "B1000150", "note": long})),
            invalid("note"),
        ),
        bad(
            "missing: a serial as a number",
            "POST",
            "/custody/missing",
            &sup,
            Body::Json(json!({"serial": 1000150, "note": "gone"})),
            data("serial"),
        ),
        bad(
            "session: an unknown id",
            "GET",
            "/custody/sessions/NOPE-1",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        // ---- ledger
        bad(
            "records: limit zero",
            "GET",
            "/ledger/records?limit=0",
            &aud,
            Body::None,
            invalid("limit"),
        ),
        bad(
            "records: limit over 10,000",
            "GET",
            "/ledger/records?limit=10001",
            &aud,
            Body::None,
            invalid("limit"),
        ),
        bad(
            "records: a date that is not one",
            "GET",
            "/ledger/records?from=yesterday",
            &aud,
            Body::None,
            invalid("from"),
        ),
        bad(
            "records: a kind of record that is none",
            "GET",
            "/ledger/records?kind=patch_stolen",
            &aud,
            Body::None,
            invalid("kind"),
        ),
        bad(
            "records: a cursor that is not a sequence number",
            "GET",
            "/ledger/records?after=last",
            &aud,
            Body::None,
            invalid("after"),
        ),
        bad(
            "records: a negative cursor",
            "GET",
            "/ledger/records?before=-5",
            &aud,
            Body::None,
            invalid("before"),
        ),
        bad(
            "records: both cursors",
            "GET",
            "/ledger/records?after=1&before=9",
            &aud,
            Body::None,
            invalid("before"),
        ),
        bad(
            "records: an unknown filter",
            "GET",
            "/ledger/records?device=PR-01",
            &aud,
            Body::None,
            invalid("device"),
        ),
        bad(
            "reconcile: two scopes",
            "GET",
            "/ledger/reconcile?shift=2026-11-21A&roll=R-1",
            &aud,
            Body::None,
            invalid("shift"),
        ),
        bad(
            "trace: an unknown serial",
            "GET",
            "/ledger/trace/B9999999",
            &aud,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "evidence: a serial that is not one",
            "GET",
            "/ledger/evidence/B%201",
            &aud,
            Body::None,
            invalid("serial"),
        ),
        // ---- users
        bad(
            "add user: an unknown role",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "N1", "name": "N", "role": "root", "pin": "539182"})),
            data("role"),
        ),
        bad(
            "add user: an id in lower case",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "n1", "name": "N", "role": "operator", "pin": "539182"})),
            (422, "invalid_id", None),
        ),
        bad(
            "add user: a trivial PIN",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "N1", "name": "N", "role": "operator", "pin": "123456"})),
            (422, "weak_pin", None),
        ),
        bad(
            "add user: a PIN of 13 digits",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "N1", "name": "N", "role": "operator", "pin": "5391827364519"})),
            (422, "weak_pin", None),
        ),
        bad(
            "add user: a name of 101 characters",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "N1", "name": "n".repeat(101), "role": "operator", "pin": "539182"})),
            (422, "invalid_name", None),
        ),
        bad(
            "add user: a person without a PIN",
            "POST",
            "/users",
            &adm,
            Body::Json(json!({"id": "N1", "name": "N", "role": "operator"})),
            invalid("pin"),
        ),
        bad(
            "disable: an id that cannot be one",
            "POST",
            "/users/a%20b/disable",
            &adm,
            Body::None,
            (422, "invalid_id", None),
        ),
        bad(
            "enable: an unknown id",
            "POST",
            "/users/NOBODY/enable",
            &adm,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "reset pin: a PIN as a number",
            "POST",
            "/users/A2/reset-pin",
            &adm,
            Body::Json(json!({"pin": 539182})),
            data("pin"),
        ),
        // ---- alerts, performance, stream
        bad(
            "ack: an id of 33 characters",
            "POST",
            &format!("/alerts/{}/ack", "A".repeat(33)),
            &sup,
            Body::None,
            invalid("id"),
        ),
        bad(
            "ack: an unknown id",
            "POST",
            "/alerts/AL-999/ack",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "performance: a shift and a day",
            "GET",
            "/performance?shift=2026-11-21A&day=2026-11-21",
            &sup,
            Body::None,
            invalid("shift"),
        ),
        bad(
            "performance: a day that is not one",
            "GET",
            "/performance?day=2026-02-30",
            &sup,
            Body::None,
            (422, "invalid", None),
        ),
        bad(
            "stream: a token that is not one",
            "GET",
            "/stream?token=nope",
            "",
            Body::None,
            (401, "invalid_credentials", None),
        ),
        bad(
            "stream: a token that is not UTF-8",
            "GET",
            "/stream?token=%FF%FE",
            "",
            Body::None,
            (401, "invalid_credentials", None),
        ),
        bad(
            "job: an id that is not UTF-8",
            "GET",
            "/jobs/%FF%FE",
            &sup,
            Body::None,
            (400, "bad_request", None),
        ),
        bad(
            "station: an id that is not UTF-8",
            "POST",
            "/stations/%C3%28/print",
            &a1,
            Body::Json(json!({"booklet": "B1000100"})),
            (400, "bad_request", None),
        ),
        // ---- the API as a whole
        bad(
            "an unknown route",
            "GET",
            "/jobz",
            &sup,
            Body::None,
            (404, "not_found", None),
        ),
        bad(
            "a method the route does not take",
            "PUT",
            "/jobs",
            &sup,
            Body::Json(json!({})),
            (405, "method_not_allowed", None),
        ),
        bad(
            "a token that is not one",
            "GET",
            "/jobs",
            "not-a-token",
            Body::None,
            (401, "invalid_credentials", None),
        ),
        bad(
            "a token of 10,000 characters",
            "GET",
            "/jobs",
            &"t".repeat(10_000),
            Body::None,
            (401, "invalid_credentials", None),
        ),
    ]);
    let n = refuse_all(c, &aud, cases);
    println!("{n} bad requests refused, the ledger unchanged after each");
}
