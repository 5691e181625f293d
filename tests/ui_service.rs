//! What the hall UI needs from the running service, without a browser: the pages and assets
//! served from the binary with their types and caching headers; the auditor's evidence export;
//! the lamination terminal's check of the booklet in hand; the event that tells a terminal its
//! device finished. (The UI itself, in a real browser: `ui_browser.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A GET outside the API with extra headers: status, headers (lower-case names), body.
fn get(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<HashMap<_, _>>();
    let body = parse_response(&raw).unwrap().text.into_bytes();
    (status, headers, body)
}

#[test]
fn the_pages_and_assets_are_served_from_the_binary_with_types_and_caching_headers() {
    let hall = spawn_hall(0.02);
    let addr = hall.client.addr;

    for (path, marker) in [
        ("/", "Hall view"),
        ("/station", "Station terminal"),
        ("/audit", "Auditor view"),
    ] {
        let (status, h, body) = get(addr, path, &[]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert!(
            h["content-security-policy"].contains("script-src 'self'"),
            "{path}: {h:?}"
        );
        assert!(
            h["content-security-policy"].contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");
        // A browser that has the page asks again and gets a 304 without a body.
        let etag = h["etag"].clone();
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");
        let (status, h2, body) = get(addr, path, &[("If-None-Match", &etag)]);
        assert_eq!(status, 304, "{path} with its ETag");
        assert_eq!(h2["etag"], etag);
        assert!(body.is_empty(), "{path}: a 304 has no body");
        let (status, _, _) = get(addr, path, &[("If-None-Match", "\"stale\"")]);
        assert_eq!(status, 200, "{path} with a stale ETag");
    }

    for (path, ctype) in [
        ("/ui/js/hall.js", "text/javascript; charset=utf-8"),
        ("/ui/js/station.js", "text/javascript; charset=utf-8"),
        ("/ui/js/common.js", "text/javascript; charset=utf-8"),
        ("/ui/css/ui.css", "text/css; charset=utf-8"),
        (
            "/ui/vendor/uplot/uPlot.esm.js",
            "text/javascript; charset=utf-8",
        ),
        ("/ui/vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
        ("/ui/vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
        // The icon every page links, and where a browser looks for one anyway: no 404.
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let (status, h, body) = get(addr, path, &[]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(h["content-type"], ctype, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert!(h.contains_key("etag"), "{path}");
        assert!(!body.is_empty(), "{path}");
    }

    // Nothing outside the assets, and unknown paths get the one error body.
    for path in [
        "/ui/../Cargo.toml",
        "/ui/js/../../Cargo.toml",
        "/ui/hall.html",
        "/ui/nope.js",
        "/nope",
    ] {
        let (status, h, body) = get(addr, path, &[]);
        assert_eq!(status, 404, "{path}");
        assert!(h["content-type"].starts_with("application/json"), "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    // The API is where it was.
    hall.client.get("/health", None).expect(200, "health");
}

#[test]
fn the_auditor_exports_a_signed_evidence_bundle_of_a_serial() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);

    let r = c.get("/ledger/evidence/P2000150", Some(&aud));
    let (_, h, _) = get(
        c.addr,
        "/api/v1/ledger/evidence/P2000150",
        &[("Authorization", &format!("Bearer {aud}"))],
    );
    let v = r.expect(200, "the bundle of a patch in the vault");
    assert_eq!(v["serial"], "P2000150", "{v}");
    assert!(!v["records"].as_array().unwrap().is_empty(), "{v}");
    assert!(!v["segments"].as_array().unwrap().is_empty(), "signed: {v}");
    assert_eq!(
        h["content-disposition"], "attachment; filename=\"evidence-P2000150.json\"",
        "a download"
    );

    // The bundle checks offline with the CLI.
    let file = hall.dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let o = hallctl()
        .args(["audit", "check-bundle"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check-bundle: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let r = c.get("/ledger/evidence/P9999999", Some(&aud));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(
        r.error("unknown serial").1.contains("never received"),
        "{}",
        r.text
    );
    let r = c.get("/ledger/evidence/P2000150", None);
    assert_eq!(r.status, 401, "{}", r.text);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let r = c.get("/ledger/evidence/P2000150", Some(&a1));
    assert_eq!(r.status, 403, "an operator exports no evidence: {}", r.text);
}

/// The lamination terminal sends the booklet in the operator's hands with the patch: whoever
/// printed it is refused in plain words before any patch is touched, and a booklet that is not
/// the assigned job's is refused too. The stream tells a terminal when its device is done.
#[test]
fn the_booklet_in_hand_is_checked_at_lamination_and_the_stream_says_when_a_device_is_done() {
    let hall = spawn_hall(0.02);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let a1_session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");

    let mut stream = c.stream(&a1);
    let (name, _) = stream.next();
    assert_eq!(name, "snapshot");
    let id = submit(c, &sup, &job_request("TRK-HAND-1", "Eriksson", "L898902C3"));
    wait_work(c, &sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(&a1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "A1 prints");
    let (_, done) = stream.until(200, |name, v| {
        name == "step_phase" && v["station"] == "PRINT-01"
    });
    assert_eq!(done["job"].as_u64(), Some(id), "{done}");
    assert_eq!(done["phase"], "awaiting_confirmation", "{done}");
    assert_eq!(done["stage"], "print", "{done}");
    c.post("/stations/PRINT-01/confirm", Some(&a1), &json!({}))
        .expect(200, "A1 confirms");
    wait_work(c, &sup, "LAM-01", id, "assigned");

    // A1 moves to LAM-02 with patches of A1's own and scans the booklet A1 printed.
    let a1 = move_operator(
        &hall,
        c,
        &a1,
        "A1",
        &a1_session,
        "B1000101-B1000109",
        "LAM-02",
        "P2000110-P2000119",
    );
    let head = ledger_head(c, &aud);
    let state_before = job_state(c, &sup, id);
    let r = c.post(
        "/stations/LAM-02/laminate",
        Some(&a1),
        &json!({"booklet": "B1000100", "patch": "P2000110"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let (_, message, _) = r.error("A1 laminates what A1 printed");
    assert_eq!(
        message, "A1: you printed booklet B1000100; another operator must laminate it",
        "plain words"
    );
    // At B1's station, a booklet that is not the assigned job's.
    let r = c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"booklet": "B1000105", "patch": "P2000100"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let (_, message, _) = r.error("the wrong booklet");
    assert!(
        message.contains("B1000105") && message.contains("scan booklet B1000100"),
        "{message}"
    );
    // A malformed booklet serial names its field.
    let r = c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"booklet": "B 1", "patch": "P2000100"}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error("bad serial").2.as_deref(), Some("booklet"));
    // The two refusals of a rule are facts of their own (with their alerts); the malformed
    // serial is only answered.
    let facts = refusals_after(c, &aud, head);
    let rules: Vec<&str> = facts.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(
        rules,
        ["laminator_printed_booklet", "wrong_booklet"],
        "{facts:?}"
    );
    assert_eq!(
        ledger_head(c, &aud),
        head + 4,
        "two refusals and their alerts, nothing else"
    );
    assert_eq!(job_state(c, &sup, id), state_before);

    // The right booklet goes through.
    c.post(
        "/stations/LAM-01/laminate",
        Some(&b1),
        &json!({"booklet": "B1000100", "patch": "P2000100"}),
    )
    .expect(200, "B1 laminates");
    wait_work(c, &sup, "LAM-01", id, "awaiting_confirmation");
}
