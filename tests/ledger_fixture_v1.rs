//! The v1 ledger fixture (issue 18): `tests/fixtures/ledger-v1.tar.gz`, a ledger written by the
//! storage layout of 2026-12 (sled: journal chunks, item states, trace values), made by
//! `cargo run --example make_v1_fixture`. Today's code must open it, verify it in full with the
//! counts of its manifest (`ledger-v1.json`) and trace its serials exactly as the manifest says:
//! the baseline that a migration to a new layout is held to.

use std::path::{Path, PathBuf};

use hallctl::ledger::verify::{Problem, VerifyMode, VerifyOptions};
use hallctl::ledger::{Ledger, LedgerConfig, Serial, chain};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Value {
    let path = fixtures().join("ledger-v1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("the manifest is JSON")
}

/// The fixture unpacked into a fresh temporary directory (the ledger is `<tmp>/ledger`).
fn unpack() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    let file = std::fs::File::open(fixtures().join("ledger-v1.tar.gz")).expect("the tarball");
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&dir)
        .expect("unpack the tarball");
    (tmp, dir)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[test]
fn fixture_v1_opens_and_verifies() {
    let m = manifest();
    let (_tmp, dir) = unpack();
    let ledger = Ledger::open_existing(&dir).expect("today's code opens the v1 fixture");
    assert_eq!(ledger.head(), u(&m["head"]));
    assert_eq!(
        ledger.head_link().1,
        m["head_link"].as_str().expect("head_link")
    );
    assert_eq!(
        hex::encode(ledger.public_key().as_bytes()),
        m["public_key"].as_str().expect("public_key")
    );
    assert_eq!(
        ledger.checkpoints().expect("checkpoints").len() as u64,
        u(&m["checkpoints"])
    );
    assert_eq!(
        ledger.verified_checkpoint().expect("mark"),
        u(&m["verified_checkpoint"])
    );
    let report = ledger
        .verify(&VerifyOptions::default(), |_, _| {})
        .expect("verify");
    assert!(report.ok(), "{:?}", report.first_bad);
    let v = &m["verify"];
    assert_eq!(report.from, u(&v["from"]));
    assert_eq!(report.checked, u(&v["checked"]));
    assert_eq!(report.last_good, u(&v["last_good"]));
    assert_eq!(report.checkpoints_checked, u(&v["checkpoints_checked"]));
    assert_eq!(report.checked, u(&m["events"]));
    // The fixture carries a verified mark at its head: an incremental verify checks no record
    // before it.
    let inc = ledger
        .verify(
            &VerifyOptions {
                mode: VerifyMode::Incremental,
                ..VerifyOptions::default()
            },
            |_, _| {},
        )
        .expect("incremental verify");
    assert!(inc.ok(), "{:?}", inc.first_bad);
    assert!(inc.from >= u(&m["verified_checkpoint"]), "{inc:?}");
}

#[test]
fn fixture_v1_traces_as_its_manifest_says() {
    let m = manifest();
    let (_tmp, dir) = unpack();
    let ledger = Ledger::open_existing(&dir).expect("open");
    traces_as_the_manifest_says(&ledger, &m);
}

/// Opened with a small sealing window, the v1 ledger (no catalog: all its history in sled)
/// moves its history into segment files, then verifies with the manifest's counts and traces
/// exactly as before, also after a reopen.
#[test]
fn fixture_v1_sealed_into_segment_files_verifies_and_traces_the_same() {
    let m = manifest();
    let (_tmp, dir) = unpack();
    let open = || {
        Ledger::open(
            &dir,
            LedgerConfig {
                seal_window: 500,
                ..LedgerConfig::default()
            },
        )
        .expect("open")
    };
    let ledger = open();
    let before: Vec<Option<Vec<u8>>> = (1..=ledger.head())
        .map(|s| ledger.store().journal_get(s).expect("read"))
        .collect();
    ledger.store().seal_due().expect("seal");
    let files = ledger.store().segment_files();
    // A window is sealed once a signed checkpoint at or after its end vouches for it.
    let last_cp = ledger
        .store()
        .checkpoint_last()
        .expect("checkpoint")
        .map_or(0, |(s, _)| s);
    assert_eq!(
        files.len() as u64,
        ((u(&m["head"]) - 1) / 500).min(last_cp / 500)
    );
    assert!(!files.is_empty());
    drop(ledger);
    let ledger = open();
    assert_eq!(ledger.store().segment_files(), files);
    let after: Vec<Option<Vec<u8>>> = (1..=ledger.head())
        .map(|s| ledger.store().journal_get(s).expect("read"))
        .collect();
    assert!(before == after, "records differ after sealing");
    let report = ledger
        .verify(&VerifyOptions::default(), |_, _| {})
        .expect("verify");
    assert!(report.ok(), "{:?}", report.first_bad);
    let v = &m["verify"];
    assert_eq!(
        (report.checked, report.last_good, report.checkpoints_checked),
        (
            u(&v["checked"]),
            u(&v["last_good"]),
            u(&v["checkpoints_checked"])
        )
    );
    traces_as_the_manifest_says(&ledger, &m);
}

fn traces_as_the_manifest_says(ledger: &Ledger, m: &Value) {
    let traces = m["traces"].as_array().expect("traces");
    assert!(traces.len() >= 10, "the manifest names its serials");
    for t in traces {
        let what = &t["what"];
        let serial = Serial::new(t["serial"].as_str().expect("serial"));
        let trace = ledger
            .trace(&serial)
            .expect("trace")
            .unwrap_or_else(|| panic!("{what}: {serial:?} unknown"));
        let events: Vec<&str> = trace.steps.iter().map(|s| s.event.as_str()).collect();
        let expected: Vec<&str> = t["step_events"]
            .as_array()
            .expect("step_events")
            .iter()
            .map(|e| e.as_str().expect("an event name"))
            .collect();
        assert_eq!(events, expected, "{what}: {serial:?}");
        assert_eq!(trace.state, t["state"].as_str().expect("state"), "{what}");
        // The whole trace (lot, partner, job, document number, every step's time, actor,
        // station, detail and reversal) as the code that wrote the ledger answered.
        assert_eq!(
            serde_json::to_value(&trace).expect("json"),
            t["trace"],
            "{what}: {serial:?}"
        );
    }
    // The manifest covers the rare kinds, not only the routine ones.
    let all: Vec<&str> = traces
        .iter()
        .flat_map(|t| t["step_events"].as_array().expect("steps"))
        .filter_map(Value::as_str)
        .collect();
    for kind in [
        "items_destroyed",
        "spoilage_decided",
        "item_reported_missing",
        "items_returned",
        "device_read_mismatch",
        "dispatched",
    ] {
        assert!(all.contains(&kind), "no traced serial has a {kind} step");
    }
    assert!(
        traces.iter().any(|t| t["trace"]["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["reversed_by"].is_u64()))),
        "a traced serial has a reversed step"
    );
}

/// `hallctl ledger migrate`, exactly as an operator runs it.
fn migrate(dir: &Path) -> std::process::Output {
    migrate_with(dir, "1000")
}

fn migrate_with(dir: &Path, window: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args([
            "ledger",
            "migrate",
            "--seal-window",
            window,
            "--period",
            "day",
        ])
        .env("HALLCTL_LEDGER", dir)
        .output()
        .expect("run hallctl ledger migrate")
}

/// The v1 ledger migrates with a full verify before and after: its history moves into signed
/// files (a checkpoint at the head vouches for the last full window), every record verifies,
/// and every manifest trace answers exactly as the code that wrote it answered.
#[test]
fn fixture_v1_migrates_with_a_verify_before_and_after() {
    let m = manifest();
    let (_tmp, dir) = unpack();
    let out = migrate(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let events = u(&m["events"]);
    assert_eq!(u(&report["records"]), u(&m["head"]));
    assert_eq!(u(&report["verified_before"]), events);
    assert_eq!(u(&report["verified_after"]), events);
    assert_eq!(u(&report["sealed_files_before"]), 0);
    // Windows of 1,000 up to the last full one below the head.
    assert_eq!(
        u(&report["sealed_through"]),
        (u(&m["head"]) - 1) / 1000 * 1000
    );
    assert!(u(&report["sealed_files_after"]) >= 1, "{report}");
    let ledger = Ledger::open_existing(&dir).expect("open the migrated ledger");
    assert_eq!(
        ledger.store().segment_files().len() as u64,
        u(&report["sealed_files_after"])
    );
    let full = ledger
        .verify(&VerifyOptions::default(), |_, _| {})
        .expect("verify");
    assert!(full.ok(), "{:?}", full.first_bad);
    assert_eq!(full.checked, events);
    traces_as_the_manifest_says(&ledger, &m);
}

/// A v1 ledger that does not verify is not migrated: the command fails naming the record, and
/// nothing is sealed. Nor with a window the hall could not configure.
#[test]
fn fixture_v1_that_does_not_verify_is_not_migrated() {
    let (_tmp, dir) = unpack();
    let out = migrate_with(&dir, "10");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "migrated with a window of 10");
    assert!(stderr.contains("out of range 1000..=10000000"), "{stderr}");
    let seq = {
        let ledger = Ledger::open_existing(&dir).expect("open");
        let seq = ledger.head() / 2;
        damage(&ledger, seq);
        seq
    };
    let out = migrate(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "migrated a damaged ledger");
    assert!(stderr.contains(&format!("record {seq}")), "{stderr}");
    assert!(stderr.contains("nothing was sealed or merged"), "{stderr}");
    let segments = dir.join("store/segments");
    assert!(
        std::fs::read_dir(&segments).map_or(true, |mut d| d.next().is_none()),
        "files were sealed"
    );
}

/// Flips a byte inside the JSON of record `seq`'s body (past `{"seq":N,`).
fn damage(ledger: &Ledger, seq: u64) {
    let stored = ledger
        .store()
        .journal_get(seq)
        .expect("read")
        .expect("the record");
    let (link, body) = chain::split_stored(&stored).expect("a stored record");
    let mut body = body.to_vec();
    let i = body.len() / 2;
    body[i] ^= 0x01;
    ledger
        .store()
        .tamper_journal_put(seq, &chain::stored(&link, &body))
        .expect("tamper");
}

/// The guard guards: one flipped byte in a stored record's body is named by a full verify.
#[test]
fn fixture_v1_with_a_damaged_record_fails_verify_naming_it() {
    let (_tmp, dir) = unpack();
    let ledger = Ledger::open_existing(&dir).expect("open");
    let seq = ledger.head() / 2;
    damage(&ledger, seq);
    let report = ledger
        .verify(&VerifyOptions::default(), |_, _| {})
        .expect("verify");
    let bad = report.first_bad.expect("the damage is found");
    assert_eq!(bad.seq, seq, "{:?}", bad.problem);
    assert!(
        !matches!(bad.problem, Problem::BadCheckpoint { .. }),
        "{:?}",
        bad.problem
    );
}

/// A ledger written when every serial of a lot was stored at receipt keeps its items; its lots
/// enter the lot-range index when it is first opened, so a new lot sharing one of their serials
/// is refused (at either end of the old lot, and written with another prefix/width split), a
/// neighbouring lot is accepted and reads as implied stock, and old serials trace as before.
#[test]
fn fixture_v1_lots_refuse_a_new_lot_sharing_their_serials() {
    use hallctl::ledger::{ItemKind, ItemState, LedgerError, LedgerEvent, LotId, SerialRange};
    use hallctl_jobs::job::OperatorId;
    let m = manifest();
    let (_tmp, dir) = unpack();
    let ledger = Ledger::open_existing(&dir).expect("open");
    let receive = |lot: &str, prefix: &str, width: usize, first: u64, last: u64| {
        ledger.append(
            OperatorId::new("S"),
            LedgerEvent::LotReceived {
                lot: LotId::new(lot),
                kind: ItemKind::Booklet,
                supplier: "DLR".into(),
                range: SerialRange {
                    prefix: prefix.into(),
                    first,
                    last,
                    width,
                },
            },
        )
    };
    // BOX-2 holds BK-0000600 .. BK-0000899, BOX-1 the serials before. A refusal names the
    // lowest serial the new lot shares.
    for (prefix, width, first, last, named) in [
        ("BK-", 7, 500, 600, "BK-0000500 (lot BOX-1)"),
        ("BK-", 7, 899, 950, "BK-0000899 (lot BOX-2)"),
        ("BK-0000", 3, 700, 710, "BK-0000700 (lot BOX-2)"),
        ("BK-000089", 1, 9, 9, "BK-0000899 (lot BOX-2)"),
    ] {
        match receive("NEW", prefix, width, first, last) {
            Err(LedgerError::Refused(why)) => {
                assert!(why.to_string().contains(named), "{why}");
            }
            other => panic!("{prefix} {width} {first}-{last}: {other:?}"),
        }
    }
    let far = 1_000_000;
    receive("NEW", "BK-", 7, far, far + 99).expect("a lot of new serials");
    let item = ledger
        .item(&Serial::new(format!("BK-{:07}", far + 50)))
        .expect("read")
        .expect("implied");
    assert_eq!(item.state, ItemState::InVault);
    assert_eq!(item.lot, LotId::new("NEW"));
    for t in m["traces"].as_array().expect("traces") {
        let serial = Serial::new(t["serial"].as_str().expect("serial"));
        let trace = ledger.trace(&serial).expect("trace").expect("known");
        assert_eq!(serde_json::to_value(&trace).expect("json"), t["trace"]);
    }
}
