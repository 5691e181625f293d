//! Issue 17, point 5 ("Jobs"), through the real binary: the jobs list answers newest first with
//! a `before` cursor, keeps `after` paging as it was, finds a job by its tracking number, booklet
//! or patch serial, and refuses a bad query value with a 422 naming the parameter.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use common::*;
use serde_json::Value;

fn ids(page: &Value) -> Vec<u64> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {page}"))
        .iter()
        .map(|j| j["id"].as_u64().expect("a job id"))
        .collect()
}

/// A hall with three jobs; the first printed on booklet `B1000100` and laminated with patch
/// `P2000100`. Returns the hall, the supervisor and the ids in submission order.
fn hall_with_three_jobs() -> (Hall, String, [u64; 3]) {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let first = submit(c, &sup, &job_request("TRK-L-1", "Quist", "K10000001"));
    let crew = LineCrew {
        sup: &sup,
        printer: &a1,
        laminator: &b1,
    };
    print_and_laminate(c, &crew, first, "B1000100", "P2000100");
    let second = submit(c, &sup, &job_request("TRK-L-2", "Quist", "K10000002"));
    let third = submit(c, &sup, &job_request("TRK-L-3", "Quist", "K10000003"));
    (hall, sup, [first, second, third])
}

#[test]
fn jobs_list_newest_first_pages_backward_and_after_paging_is_unchanged() {
    let (hall, sup, [j1, j2, j3]) = hall_with_three_jobs();
    let c = hall.client;

    let oldest = c.get("/jobs", Some(&sup)).expect(200, "default order");
    assert_eq!(
        ids(&oldest),
        vec![j1, j2, j3],
        "the default stays oldest first"
    );

    let newest = c
        .get("/jobs?order=newest", Some(&sup))
        .expect(200, "newest");
    assert_eq!(ids(&newest), vec![j3, j2, j1]);
    assert_eq!(newest["next"], Value::Null, "{newest}");

    let p1 = c
        .get("/jobs?order=newest&limit=2", Some(&sup))
        .expect(200, "newest, page 1");
    assert_eq!(ids(&p1), vec![j3, j2]);
    let before = p1["next"].as_u64().expect("a next cursor");
    let p2 = c
        .get(
            &format!("/jobs?order=newest&limit=2&before={before}"),
            Some(&sup),
        )
        .expect(200, "newest, page 2");
    assert_eq!(ids(&p2), vec![j1]);
    assert_eq!(p2["next"], Value::Null, "{p2}");

    let a1 = c
        .get("/jobs?limit=2", Some(&sup))
        .expect(200, "after, page 1");
    assert_eq!(ids(&a1), vec![j1, j2]);
    let after = a1["next"].as_u64().expect("a next cursor");
    let a2 = c
        .get(&format!("/jobs?limit=2&after={after}"), Some(&sup))
        .expect(200, "after, page 2");
    assert_eq!(ids(&a2), vec![j3]);
}

#[test]
fn jobs_search_finds_the_job_of_a_tracking_number_a_booklet_or_a_patch() {
    let (hall, sup, [j1, j2, _]) = hall_with_three_jobs();
    let c = hall.client;
    let find = |q: &str| {
        let v = c
            .get(&format!("/jobs?order=newest&q={q}"), Some(&sup))
            .expect(200, &format!("search {q}"));
        assert!(!v.to_string().contains("Quist"), "holder data in {v}");
        ids(&v)
    };
    assert_eq!(find("TRK-L-2"), vec![j2], "by tracking number");
    assert_eq!(find("B1000100"), vec![j1], "by booklet serial");
    assert_eq!(find("P2000100"), vec![j1], "by patch serial");
    assert_eq!(find("B1000199"), Vec::<u64>::new(), "an unknown serial");
    let oldest = c
        .get("/jobs?q=TRK-L-1", Some(&sup))
        .expect(200, "search in the default order");
    assert_eq!(ids(&oldest), vec![j1]);
}

#[test]
fn a_bad_jobs_query_is_a_422_naming_the_parameter() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    submit(c, &sup, &job_request("TRK-L-9", "Quist", "K10000009"));
    for (query, field) in [
        ("order=sideways", "order"),
        ("order=newest&before=0", "before"),
        ("order=newest&before=9223372036854775808", "before"),
        ("before=5", "before"),
        ("order=newest&after=5", "after"),
        ("q=", "q"),
        ("q=a%20b", "q"),
        ("q=%3Cscript%3E", "q"),
        (&format!("q={}", "X".repeat(65)), "q"),
    ] {
        let r = c.get(&format!("/jobs?{query}"), Some(&sup));
        assert_eq!(r.status, 422, "{query}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{query}: {}", r.text);
    }
    let all = c.get("/jobs", Some(&sup)).expect(200, "list");
    assert_eq!(ids(&all).len(), 1, "nothing changed: {all}");
}

/// What was seen: a search for a booklet spoiled on an earlier attempt (the job printed again on
/// another) found nothing, and a serial typed in small letters found nothing. A supervisor
/// searches with what is in their hand, as they type it.
#[test]
fn jobs_search_finds_a_job_by_a_booklet_spoiled_on_an_earlier_attempt_and_in_small_letters() {
    let (hall, sup, [j1, j2, j3]) = hall_with_three_jobs();
    let c = hall.client;
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    // j3 waits (held), so that PRINT-01 takes j2 again after its spoil.
    wait_work(c, &sup, "PRINT-01", j2, "assigned");
    c.post(
        &format!("/jobs/{j3}/hold"),
        Some(&sup),
        &serde_json::json!({}),
    )
    .expect(200, "hold j3");
    // j2 prints on B1000101, which the operator finds smudged: spoiled, approved with the
    // booklet in hand, and j2 prints again on B1000102.
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &serde_json::json!({ "booklet": "B1000101" }),
    )
    .expect(200, "the print");
    wait_work(c, &sup, "PRINT-01", j2, "awaiting_confirmation");
    c.post(
        "/stations/PRINT-01/defect",
        Some(&a1),
        &serde_json::json!({"reason": "smudged data page"}),
    )
    .expect(200, "the defect report");
    wait_job_state(c, &sup, j2, &["defect_reported"]);
    c.post(
        "/custody/spoilage/B1000101/approve",
        Some(&sup),
        &serde_json::json!({"scanned": ["B1000101"]}),
    )
    .expect(200, "approved");
    wait_work(c, &sup, "PRINT-01", j2, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &serde_json::json!({ "booklet": "B1000102" }),
    )
    .expect(200, "the reprint");

    let find = |q: &str| {
        let v = c
            .get(&format!("/jobs?order=newest&q={q}"), Some(&sup))
            .expect(200, &format!("search {q}"));
        ids(&v)
    };
    assert_eq!(find("B1000101"), vec![j2], "the spoiled booklet");
    assert_eq!(find("B1000102"), vec![j2], "the reprint's booklet");
    assert_eq!(find("b1000101"), vec![j2], "in small letters");
    assert_eq!(find("p2000100"), vec![j1], "a patch in small letters");
    assert_eq!(
        find("trk-l-2"),
        vec![j2],
        "a tracking number in small letters"
    );
}

/// A lot received with its serials in small letters keeps them; a search for one, typed as it
/// is printed on the item, finds its job (the review of the capitals' lookup: only the capital
/// spelling was tried).
#[test]
fn jobs_search_finds_a_serial_stored_in_small_letters() {
    let (hall, sup, [_, j2, _]) = hall_with_three_jobs();
    let c = hall.client;
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    c.post(
        "/custody/lots",
        Some(&sup),
        &serde_json::json!({"lot": "bx-9", "kind": "booklet", "supplier": "Specimen Security Print", "range": "b9000100-b9000101"}),
    )
    .expect(200, "a lot in small letters");
    let session = station(c, &sup, "PRINT-01")["session"]
        .as_str()
        .expect("A1's session")
        .to_string();
    c.post(
        &format!("/custody/sessions/{session}/issue"),
        Some(&a1),
        &serde_json::json!({"range": "b9000100-b9000101", "counters": [
            {"user": "A1", "pin": pin("A1")}, {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, "issued");
    wait_work(c, &sup, "PRINT-01", j2, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &serde_json::json!({ "booklet": "b9000100" }),
    )
    .expect(200, "printed on a booklet of small letters");
    let v = c
        .get("/jobs?order=newest&q=b9000100", Some(&sup))
        .expect(200, "search");
    assert_eq!(ids(&v), vec![j2], "{v}");
}
