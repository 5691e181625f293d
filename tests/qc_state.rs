//! Issue 16, points 7 and 8, through the real binary: QC reads the MRZ back like a document
//! reader (field by field, a re-read before a spoil), and a hall prints only for its own
//! issuing state(s).
//!
//! Every wait is a poll with a deadline; nothing asserts on timing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use hallctl_jobs::intake::JobRequest;
use serde_json::{Value, json};

/// The signed-in crew of the test hall, with booklets and patches issued.
struct Crew {
    sup: String,
    aud: String,
    a1: String,
    b1: String,
    c1: String,
}

fn crew(hall: &Hall) -> Crew {
    crew_of(hall, hall.sign_in("S1", None))
}

/// As [`crew`], with the supervisor signed in already.
fn crew_of(hall: &Hall, sup: String) -> Crew {
    let c = hall.client;
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let c1 = hall.sign_in("C1", Some("QC-01"));
    Crew {
        sup,
        aud,
        a1,
        b1,
        c1,
    }
}

/// Submits `req` and takes it through print (`booklet`) and lamination (`patch`) to QC.
fn to_qc(c: Client, w: &Crew, req: &JobRequest, booklet: &str, patch: &str) -> u64 {
    let id = submit(c, &w.sup, req);
    let crew = LineCrew {
        sup: &w.sup,
        printer: &w.a1,
        laminator: &w.b1,
    };
    print_and_laminate(c, &crew, id, booklet, patch);
    c.post("/stations/LAM-01/confirm", Some(&w.b1), &json!({}))
        .expect(200, "confirm the lamination");
    wait_work(c, &w.sup, "QC-01", id, "assigned");
    id
}

fn qc(c: Client, w: &Crew, booklet: &str, mrz: &[String; 2]) -> Value {
    c.post(
        "/stations/QC-01/qc",
        Some(&w.c1),
        &json!({ "booklet": booklet, "mrz": mrz }),
    )
    .expect(200, "QC")
}

/// The ledger's steps of a serial, as the auditor traces it.
fn trace_steps(c: Client, aud: &str, serial: &str) -> Vec<Value> {
    c.get(&format!("/ledger/trace/{serial}"), Some(aud))
        .expect(200, "trace")["steps"]
        .as_array()
        .expect("steps")
        .clone()
}

fn fields(v: &Value) -> Vec<&str> {
    v["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {v}"))
        .iter()
        .map(|f| f.as_str().expect("a field name"))
        .collect()
}

/// What a QC answer and the ledger must never show of the holder.
fn assert_no_holder_data(text: &str, req: &JobRequest) {
    let p = &req.personalization;
    let dob = &p.date_of_birth; // YYYY-MM-DD
    let mrz_dob = format!("{}{}{}", &dob[2..4], &dob[5..7], &dob[8..10]);
    for secret in [p.surname.to_uppercase(), "ANNA".to_string(), mrz_dob] {
        assert!(!text.to_uppercase().contains(&secret), "{secret} in {text}");
    }
}

#[test]
fn qc_reads_field_by_field_asks_for_a_re_read_and_spoils_only_a_confirmed_mismatch() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let w = crew(&hall);

    // 1. The other ICAO form of the empty optional data's check digit (`0` for `<`) passes.
    let req = job_request("TRK-QC-1", "Eriksson", "QC0000001");
    let id = to_qc(c, &w, &req, "B1000100", "P2000100");
    let mut mrz = mrz_of(&req);
    assert_eq!(&mrz[1][42..43], "<", "printed with the filler form");
    mrz[1].replace_range(42..43, "0");
    let v = qc(c, &w, "B1000100", &mrz);
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["outcome"], "passed", "{v}");
    wait_job_state(c, &w.sup, id, &["ready"]);

    // 2. A first mismatch asks for a re-read, names the fields, changes nothing; a good second
    //    reading passes.
    let req = job_request("TRK-QC-2", "Nilsson", "QC0000002");
    let id = to_qc(c, &w, &req, "B1000101", "P2000101");
    let mut misread = req.clone();
    misread.personalization.date_of_birth = {
        let d = &req.personalization.date_of_birth;
        format!("{}-09-{}", &d[..4], &d[8..])
    };
    let before = (
        trace_steps(c, &w.aud, "B1000101"),
        trace_steps(c, &w.aud, "P2000101"),
    );
    let v = qc(c, &w, "B1000101", &mrz_of(&misread));
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["outcome"], "reread", "{v}");
    assert_eq!(v["read"], 1, "{v}");
    assert_eq!(v["read_attempts"], 2, "the default: {v}");
    assert!(fields(&v).contains(&"date_of_birth"), "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("date_of_birth"), "{message}");
    assert!(message.contains("read the booklet again"), "{message}");
    assert!(message.contains("nothing was spoiled"), "{message}");
    assert_no_holder_data(&v.to_string(), &req);
    assert_no_holder_data(&v.to_string(), &misread);
    assert_eq!(job_state(c, &w.sup, id), "qc", "the job stays at QC");
    wait_work(c, &w.sup, "QC-01", id, "assigned");
    assert_eq!(
        (
            trace_steps(c, &w.aud, "B1000101"),
            trace_steps(c, &w.aud, "P2000101"),
        ),
        before,
        "a re-read records nothing in the ledger"
    );
    let v = qc(c, &w, "B1000101", &mrz_of(&req));
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["outcome"], "passed", "{v}");
    wait_job_state(c, &w.sup, id, &["ready"]);

    // 3. A mismatch confirmed on the last reading spoils booklet and patch, naming the fields.
    let req = job_request("TRK-QC-3", "Larsson", "QC0000003");
    let id = to_qc(c, &w, &req, "B1000102", "P2000102");
    let mut other = req.clone();
    other.personalization.document_number = "QC0000009".into();
    let v = qc(c, &w, "B1000102", &mrz_of(&other));
    assert_eq!(v["outcome"], "reread", "{v}");
    assert_eq!(
        fields(&v),
        [
            "document_number",
            "document_number_check",
            "composite_check"
        ],
        "{v}"
    );
    let v = qc(c, &w, "B1000102", &mrz_of(&other));
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["outcome"], "spoiled", "{v}");
    assert_eq!(v["read"], 2, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("document_number"), "{message}");
    assert!(message.contains("spoiled"), "{message}");
    assert_no_holder_data(&v.to_string(), &req);
    wait_job_state(c, &w.sup, id, &["spoiled_requeued", "printing"]);
    for serial in ["B1000102", "P2000102"] {
        let steps = trace_steps(c, &w.aud, serial);
        let spoiled = steps
            .iter()
            .find(|s| s["detail"].as_str().unwrap_or("").contains("spoiled"))
            .unwrap_or_else(|| panic!("{serial} not spoiled: {steps:?}"));
        let detail = spoiled["detail"].as_str().unwrap();
        assert!(detail.contains("document_number"), "{detail}");
        assert!(detail.contains("2 readings"), "{detail}");
        assert_no_holder_data(&format!("{steps:?}"), &req);
    }
    let steps = trace_steps(c, &w.aud, "B1000102");
    let qc_records: Vec<&Value> = steps
        .iter()
        .filter(|s| s["event"] == "qc_checked")
        .collect();
    assert_eq!(qc_records.len(), 1, "one QC record, the failed one");
    assert!(
        qc_records[0]["detail"].as_str().unwrap().contains("failed"),
        "{:?}",
        qc_records[0]
    );
}

#[test]
fn one_read_attempt_spoils_at_the_first_mismatch() {
    let hall = spawn_hall_with(0.02, "[qc]\nread_attempts = 1\n");
    let c = hall.client;
    let w = crew(&hall);
    let req = job_request("TRK-QC-4", "Eriksson", "QC0000004");
    let id = to_qc(c, &w, &req, "B1000100", "P2000100");
    let mut other = req.clone();
    other.personalization.sex = "male".into();
    let v = qc(c, &w, "B1000100", &mrz_of(&other));
    assert_eq!(v["outcome"], "spoiled", "{v}");
    assert_eq!(v["read_attempts"], 1, "{v}");
    assert!(fields(&v).contains(&"sex"), "{v}");
    wait_job_state(c, &w.sup, id, &["spoiled_requeued", "printing"]);
    // A QC spoil rests on the QC operator's reading: the supervisor is told, naming both items.
    let alerts = c.get("/alerts", Some(&w.sup)).expect(200, "alerts");
    let spoil = alerts["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "qc_spoil" && a["subject"] == "QC-01")
        .unwrap_or_else(|| panic!("no qc_spoil alert: {alerts}"))
        .clone();
    assert_eq!(spoil["serials"], json!(["B1000100", "P2000100"]), "{spoil}");
    assert!(spoil["detail"].as_str().unwrap().contains("sex"), "{spoil}");
    assert_no_holder_data(&spoil.to_string(), &req);

    // A QC operator can type a wrong MRZ on purpose: the spoil waits for a supervisor with
    // both items in hand, like a defect report, and cannot be rejected (the job went on).
    let pending = c
        .get("/custody/spoilage", Some(&w.sup))
        .expect(200, "spoilage")["pending"]
        .clone();
    let report = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serials"].to_string().contains("B1000100"))
        .unwrap_or_else(|| panic!("the QC spoil awaits approval: {pending}"))
        .clone();
    assert_eq!(report["reported_by"], "C1", "{report}");
    assert_eq!(report["status"], "awaiting_approval", "{report}");
    let head = ledger_head(c, &w.aud);
    let r = c.post(
        "/custody/spoilage/B1000100/reject",
        Some(&w.sup),
        &json!({"scanned": ["B1000100", "P2000100"], "note": "looks fine"}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(
        r.error("reject").1.contains("went back to printing"),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["error"]["rule"], "spoil_stands", "{:?}", r.body);
    // Recorded as a refusal (and its alert), nothing else.
    let refused = refusals_after(c, &w.aud, head);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].1, "spoil_stands", "{refused:?}");
    assert_eq!(
        ledger_head(c, &w.aud),
        head + 2,
        "the refusal and its alert only"
    );
    c.post(
        "/custody/spoilage/B1000100/approve",
        Some(&w.sup),
        &json!({"scanned": ["P2000100", "B1000100"], "note": "seen"}),
    )
    .expect(200, "approved with both in hand");
    for s in ["B1000100", "P2000100"] {
        let t = c
            .get(&format!("/ledger/trace/{s}"), Some(&w.aud))
            .expect(200, "trace");
        let state = t["state"].as_str().unwrap_or_default();
        assert!(state.contains("destruction"), "{s}: {state}");
    }
}

#[test]
fn a_bad_read_attempts_value_stops_the_start_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hall.toml");
    std::fs::write(&file, format!("{HALL_TOML}\n[qc]\nread_attempts = 0\n")).unwrap();
    let out = hallctl()
        .arg("config")
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("qc.read_attempts: 0 is out of range 1..=5"),
        "{err}"
    );
}

// ---- point 8: the hall's state is the hall's ---------------------------------------------------

fn for_state(tracking: &str, code: &str) -> JobRequest {
    let mut r = job_request(tracking, "Eriksson", "ST0000001");
    r.personalization.issuing_state = code.into();
    r
}

#[test]
fn a_hall_prints_only_for_its_own_state_and_a_german_hall_is_d() {
    // The test hall issues for Germany, written D (`D<<`) in the MRZ.
    assert!(HALL_TOML.contains("issuing_state = \"D\""));
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    for (i, code) in ["PAK", "GBR", "FRA", "EUE", "UTO"].iter().enumerate() {
        let r = c.post(
            "/jobs",
            Some(&sup),
            &json!({ "jobs": [for_state(&format!("TRK-ST-{i}"), code)] }),
        );
        assert_eq!(r.status, 422, "{code}: {}", r.text);
        let (kind, message, field) = r.error(code);
        assert_eq!(kind, "invalid_jobs", "{code}");
        assert_eq!(
            field.as_deref(),
            Some("jobs[0].personalization.issuing_state"),
            "{code}: {}",
            r.text
        );
        let detail = r.body["error"]["errors"][0]["message"].as_str().unwrap();
        assert!(
            detail.contains("must be D") && detail.contains("hall.issuing_state"),
            "{code}: {detail}"
        );
        assert!(message.contains("nothing was stored"), "{message}");
    }
    // ISO's DEU is no MRZ code: the message says what to write.
    let r = c.post(
        "/jobs",
        Some(&sup),
        &json!({ "jobs": [for_state("TRK-ST-DEU", "DEU")] }),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("written D in the MRZ"), "{}", r.text);
    // A batch with one job for another state stores nothing, not even the good job.
    let r = c.post(
        "/jobs",
        Some(&sup),
        &json!({ "jobs": [for_state("TRK-ST-OK", "D"), for_state("TRK-ST-GB", "GBR")] }),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.body["error"]["field"], "jobs[1].personalization.issuing_state",
        "{}",
        r.text
    );
    let jobs = c.get("/jobs", Some(&sup)).expect(200, "jobs");
    assert_eq!(
        jobs["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing stored: {jobs}"
    );
    // Each refused batch is a fact (the submitter as actor, the states asked for) and an
    // occurrence of one critical incident about the submitter.
    let aud = hall.sign_in("AU1", None);
    let facts = refusals_after(c, &aud, 0);
    assert_eq!(facts.len(), 7, "{facts:?}");
    assert!(
        facts
            .iter()
            .all(|(a, r, _, _)| a == "S1" && r == "issuing_state"),
        "{facts:?}"
    );
    let alerts = c.get("/alerts", Some(&sup)).expect(200, "alerts");
    let incident = alerts["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "refusal" && a["subject"] == "S1")
        .unwrap_or_else(|| panic!("no refusal incident about S1: {alerts}"))
        .clone();
    assert_eq!(incident["occurrences"], 7, "{incident}");
    assert_eq!(incident["severity"], "critical", "{incident}");
    assert!(
        incident["last_detail"].as_str().unwrap().contains("GBR"),
        "{incident}"
    );

    // A German job goes through, its MRZ with D<<, and QC passes its reading.
    let w = crew_of(&hall, sup);
    let req = for_state("TRK-ST-D", "D");
    let mrz = mrz_of(&req);
    assert_eq!(&mrz[0][..5], "P<D<<", "{}", &mrz[0][..5]);
    to_qc(c, &w, &req, "B1000100", "P2000100");
    let v = qc(c, &w, "B1000100", &mrz);
    assert_eq!(v["outcome"], "passed", "{v}");
}

#[test]
fn a_real_hall_cannot_be_configured_for_a_specimen_state_and_accepts_d() {
    let dir = tempfile::tempdir().unwrap();
    let check = |state: &str| {
        let file = dir.path().join("hall.toml");
        let toml = HALL_TOML.replacen(
            "issuing_state = \"D\"",
            &format!("issuing_state = {state}"),
            1,
        );
        std::fs::write(&file, toml).unwrap();
        let out = hallctl()
            .args(["config", "check"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = check("\"UTO\"");
    assert!(!ok);
    assert!(
        err.contains("hall.issuing_state: \"UTO\" is ICAO's specimen state (Utopia)"),
        "{err}"
    );
    let (ok, err) = check("\"DEU\"");
    assert!(!ok);
    assert!(err.contains("is written \"D\" in the MRZ"), "{err}");
    for good in ["\"D\"", "\"PAK\"", "\"EUE\""] {
        let (ok, err) = check(good);
        assert!(ok, "{good}: {err}");
    }
    let file = dir.path().join("hall.toml");
    let toml = HALL_TOML.replacen(
        "issuing_state = \"D\"",
        "issuing_states = [\"D\", \"UTO\"]",
        1,
    );
    std::fs::write(&file, toml).unwrap();
    let out = hallctl()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hall.issuing_states[1]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
