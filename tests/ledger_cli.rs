//! The ledger as its users meet it, through the `hallctl` binary: a night shift (SCENARIOS.md 1,
//! 3, 7, 8, 10) from the vault to the forensic auditor.

use std::path::Path;
use std::process::{Command, Output};

struct Hall<'a> {
    dir: &'a Path,
}

struct Run {
    ok: bool,
    out: String,
    err: String,
}

impl Hall<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let o: Output = Command::new(env!("CARGO_BIN_EXE_hallctl"))
            .args(args)
            .env("HALLCTL_LEDGER", self.dir)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run hallctl");
        Run {
            ok: o.status.success(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs with the file `input` as stdin.
    fn run_stdin(&self, args: &[&str], input: &Path) -> Run {
        let o: Output = Command::new(env!("CARGO_BIN_EXE_hallctl"))
            .args(args)
            .env("HALLCTL_LEDGER", self.dir)
            .env_remove("RUST_BACKTRACE")
            .stdin(std::fs::File::open(input).expect("the input file"))
            .output()
            .expect("run hallctl");
        Run {
            ok: o.status.success(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Records one event as `actor`; panics unless accepted. Returns the receipt line.
    fn ok(&self, actor: &str, event: &str) -> String {
        let r = self.run(&["ledger", "append", "--actor", actor, "--event", event]);
        assert!(r.ok, "refused: {event}\n{}", r.err);
        r.out
    }

    /// Records one event as `actor`; panics unless refused with `reason` in the message.
    fn refused(&self, actor: &str, event: &str, reason: &str) {
        let r = self.run(&["ledger", "append", "--actor", actor, "--event", event]);
        assert!(!r.ok, "accepted but should be refused: {event}\n{}", r.out);
        assert!(
            r.err.contains(reason),
            "refusal should say {reason:?}, said: {}",
            r.err
        );
    }
}

fn serial_list(from: u32, to: u32) -> String {
    (from..=to)
        .map(|n| format!("\"{n:07}\""))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_night_shift_from_vault_to_forensic_trace() {
    let d = tempfile::tempdir().expect("tempdir");
    let hall = Hall { dir: d.path() };
    // Scenario 1: lots into the vault; sessions; two-person issue of 150 patches.
    let r = hall.run(&[
        "ledger",
        "receive",
        "--actor",
        "S",
        "--lot",
        "R-77",
        "--kind",
        "patch",
        "--range",
        "0041200-0041349",
        "--supplier",
        "DLR",
    ]);
    assert!(r.ok, "{}", r.err);
    let r = hall.run(&[
        "ledger",
        "receive",
        "--actor",
        "S",
        "--lot",
        "R-78",
        "--kind",
        "patch",
        "--range",
        "0041350-0041359",
    ]);
    assert!(r.ok, "{}", r.err);
    let r = hall.run(&[
        "ledger",
        "receive",
        "--actor",
        "S",
        "--lot",
        "BX-1",
        "--kind",
        "booklet",
        "--range",
        "BK-9001230-BK-9001249",
    ]);
    assert!(r.ok, "{}", r.err);
    hall.ok("S", r#"{"type":"session_opened","session":"SES-LAM2","station":"LAM-2","operator":"B","shift":"N-1121"}"#);
    hall.ok("S", r#"{"type":"session_opened","session":"SES-PRN1","station":"PRN-1","operator":"A","shift":"N-1121"}"#);
    hall.ok("S", r#"{"type":"session_opened","session":"SES-LAM5","station":"LAM-5","operator":"E","shift":"N-1121"}"#);
    hall.refused(
        "S",
        r#"{"type":"session_opened","session":"SES-X","station":"PRN-3","operator":"B","shift":"N-1121"}"#,
        "B is signed in at another station (session SES-LAM2)",
    );
    hall.refused(
        "S",
        &format!(
            r#"{{"type":"items_issued","session":"SES-LAM2","serials":[{}],"counters":["S","S"]}}"#,
            serial_list(41200, 41349)
        ),
        "two distinct people",
    );
    hall.ok(
        "S",
        &format!(
            r#"{{"type":"items_issued","session":"SES-LAM2","serials":[{}],"counters":["S","K"]}}"#,
            serial_list(41200, 41349)
        ),
    );
    hall.ok("S", r#"{"type":"items_issued","session":"SES-LAM5","serials":["0041350","0041351"],"counters":["S","K"]}"#);
    hall.ok("S", r#"{"type":"items_issued","session":"SES-PRN1","serials":["BK-9001234","BK-9001240"],"counters":["S","K"]}"#);

    // Scenario 2 (ledger part): A prints, B laminates.
    hall.ok("A", r#"{"type":"booklet_printed","booklet":"BK-9001234","session":"SES-PRN1","job":7,"document_number":"AB1234567","device":"PRN-1"}"#);
    hall.ok("A", r#"{"type":"booklet_printed","booklet":"BK-9001240","session":"SES-PRN1","job":8,"document_number":"AB1234568","device":"PRN-1"}"#);

    // Scenario 3: refusals that protect the hall.
    let apply = |patch: &str, booklet: &str, job: u32, session: &str, skip: &str| {
        format!(
            r#"{{"type":"patch_applied","patch":"{patch}","session":"{session}","booklet":"{booklet}","job":{job},"device":"LAM-2","skip_reason":{skip}}}"#
        )
    };
    hall.refused(
        "A",
        &apply("0041200", "BK-9001234", 7, "SES-LAM2", "null"),
        "you printed booklet BK-9001234",
    );
    hall.ok("B", &apply("0041200", "BK-9001234", 7, "SES-LAM2", "null"));
    hall.refused(
        "B",
        &apply("0041300", "BK-9001240", 8, "SES-LAM2", "null"),
        "patch 0041300 is out of roll order: 0041201 is next",
    );
    hall.refused(
        "B",
        &apply("0041200", "BK-9001240", 8, "SES-LAM2", "null"),
        "patch 0041200 was applied to BK-9001234 at ",
    );
    hall.refused(
        "B",
        &apply("0041350", "BK-9001240", 8, "SES-LAM2", "null"),
        "patch 0041350 was issued to session SES-LAM5, not to session SES-LAM2",
    );
    hall.refused(
        "B",
        &apply("0099999", "BK-9001240", 8, "SES-LAM2", "null"),
        "0099999 is not a known serial",
    );
    // A skip with a recorded reason is accepted and raises an alert.
    let receipt = hall.ok(
        "B",
        &apply(
            "0041300",
            "BK-9001240",
            8,
            "SES-LAM2",
            r#""0041201 torn on the roll""#,
        ),
    );
    assert!(
        receipt.contains(r#""alert":"roll_skip""#) && receipt.contains("0041201"),
        "{receipt}"
    );

    // QC is a third person; dispatch after QC.
    hall.refused(
        "B",
        r#"{"type":"qc_checked","booklet":"BK-9001234","job":7,"station":"QC-1","passed":true}"#,
        "QC must be a third person",
    );
    hall.refused("D", r#"{"type":"dispatched","booklet":"BK-9001234","job":7,"destination":"LHR-01","bag":"BAG-LHR-3"}"#, "needs a passed QC check");
    hall.ok(
        "C",
        r#"{"type":"qc_checked","booklet":"BK-9001234","job":7,"station":"QC-1","passed":true}"#,
    );
    hall.ok("D", r#"{"type":"dispatched","booklet":"BK-9001234","job":7,"destination":"LHR-01","bag":"BAG-LHR-3"}"#);

    // Scenario 7: shift end. 0041201 spoiled, 0041202 goes missing, the rest returned.
    hall.ok("B", r#"{"type":"item_spoiled","serial":"0041201","session":"SES-LAM2","reason":"torn on the roll"}"#);
    let rest: Vec<String> = (41203..=41349)
        .filter(|&n| n != 41300)
        .map(|n| format!("\"{n:07}\""))
        .collect();
    hall.ok(
        "K",
        &format!(r#"{{"type":"items_returned","session":"SES-LAM2","serials":[{}],"counters":["K","B"]}}"#, rest.join(",")),
    );
    hall.refused(
        "B",
        r#"{"type":"session_closed","session":"SES-LAM2","discrepancy":null}"#,
        "session SES-LAM2 does not balance: unaccounted 0041202",
    );
    hall.refused(
        "B",
        r#"{"type":"session_closed","session":"SES-LAM2","discrepancy":{"missing":["0041202"],"supervisor":"B","statement":"lost"}}"#,
        "signed by a supervisor other than the session's operator",
    );
    let receipt = hall.ok(
        "S",
        r#"{"type":"session_closed","session":"SES-LAM2","discrepancy":{"missing":["0041202"],"supervisor":"S","statement":"not found after search of LAM-2"}}"#,
    );
    assert!(receipt.contains("discrepancy"), "{receipt}");

    let r = hall.run(&["ledger", "reconcile", "--session", "SES-LAM2"]);
    assert!(r.ok, "{}", r.err);
    assert!(r.out.contains("closed WITH DISCREPANCY"), "{}", r.out);
    assert!(
        r.out
            .contains("issued 150  applied 2  spoiled 1  returned 146  missing 1"),
        "{}",
        r.out
    );
    assert!(r.out.contains("missing      0041202"), "{}", r.out);
    let r = hall.run(&["ledger", "reconcile", "--shift", "N-1121"]);
    assert!(
        r.ok && r.out.contains("SES-PRN1") && r.out.contains("SES-LAM5"),
        "{}",
        r.out
    );
    let r = hall.run(&["ledger", "reconcile", "--roll", "R-77"]);
    assert!(r.ok, "{}", r.err);
    assert!(
        r.out
            .contains("in vault 146  issued 0  applied 2  spoiled 1  destroyed 0  missing 1"),
        "{}",
        r.out
    );

    let r = hall.run(&["ledger", "export-missing", "--format", "sltd"]);
    assert!(r.ok, "{}", r.err);
    assert!(
        r.out
            .starts_with("document_number,document_type,issuing_state,status"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("0041202,PASSPORT SECURITY LAMINATE,PAK,STOLEN BLANK,PAK,"),
        "{}",
        r.out
    );
    assert_eq!(r.out.lines().count(), 2, "{}", r.out);

    // Scenario 8: destruction, witnessed by two people outside the custody chain.
    hall.refused(
        "S",
        r#"{"type":"items_destroyed","batch":"D-47","serials":["0041201"],"witnesses":["K","W2"],"method":"shredding","certificate":"DC-2026-47"}"#,
        "K cannot witness the destruction of 0041201: they are in its custody chain",
    );
    hall.refused(
        "S",
        r#"{"type":"items_destroyed","batch":"D-47","serials":["0041204"],"witnesses":["W1","W2"],"method":"shredding","certificate":"DC-2026-47"}"#,
        "cannot be destroyed: it is in the vault, not spoiled",
    );
    hall.ok(
        "S",
        r#"{"type":"items_destroyed","batch":"D-47","serials":["0041201"],"witnesses":["W1","W2"],"method":"shredding","certificate":"DC-2026-47"}"#,
    );
    let r = hall.run(&["ledger", "destroyed"]);
    assert!(
        r.ok && r.out.contains("batch D-47")
            && r.out.contains("DC-2026-47")
            && r.out.contains("W1 and W2")
            && r.out.contains("0041201"),
        "{}",
        r.out
    );

    // Scenario 10: the forensic trace of patch 0041200, and of the destroyed 0041201.
    let r = hall.run(&["ledger", "trace", "0041200"]);
    assert!(r.ok, "{}", r.err);
    for needle in [
        "lot        R-77 (0041200–0041349)",
        "booklet    BK-9001234",
        "job        J-00000007",
        "document   AB1234567",
        "session SES-LAM2 opened for B, shift N-1121",
        "150 item(s) issued to session SES-LAM2, counted by S and K",
        "booklet BK-9001234 printed for job J-00000007 (document AB1234567) on PRN-1",
        "patch 0041200 applied to booklet BK-9001234 for job J-00000007 on LAM-2",
        "QC of booklet BK-9001234: passed",
        "booklet BK-9001234 packed for LHR-01 in bag BAG-LHR-3",
    ] {
        assert!(r.out.contains(needle), "trace lacks {needle:?}:\n{}", r.out);
    }
    // Backward: the booklet leads to the same patch.
    let r = hall.run(&["ledger", "trace", "BK-9001234", "--format", "json"]);
    assert!(
        r.ok && r.out.contains(r#""partner": "0041200""#),
        "{}",
        r.out
    );
    let r = hall.run(&["ledger", "trace", "0041201"]);
    assert!(
        r.ok && r.out.contains("destroyed in batch D-47")
            && r.out.contains("spoiled: torn on the roll"),
        "{}",
        r.out
    );
    // A correction is a new record; the trace shows the original and its reversal.
    let r = hall.run(&["ledger", "records", "--operator", "C"]);
    let qc_seq = r
        .out
        .lines()
        .next()
        .and_then(|l| l.split("\"seq\":").nth(1))
        .and_then(|x| x.split(',').next())
        .expect("QC record")
        .to_string();
    hall.refused(
        "C",
        r#"{"type":"reversal","reverses":3,"reason":""}"#,
        "a reversal needs a reason",
    );
    hall.ok("S", &format!(r#"{{"type":"reversal","reverses":{qc_seq},"reason":"QC result entered on the wrong booklet, re-checked"}}"#));
    let r = hall.run(&["ledger", "trace", "0041200"]);
    assert!(
        r.out
            .contains("QC of booklet BK-9001234: passed  [reversed by #"),
        "{}",
        r.out
    );
    let r = hall.run(&["ledger", "trace", "0099999"]);
    assert!(
        !r.ok && r.err.contains("0099999 was never received into the vault"),
        "{}",
        r.err
    );

    // Records by operator and station.
    let r = hall.run(&["ledger", "records", "--operator", "A"]);
    assert!(
        r.ok && r.out.lines().count() == 3,
        "A opened nothing but was the session operator and printed twice:\n{}",
        r.out
    );
    let r = hall.run(&["ledger", "records", "--station", "LAM-5"]);
    assert!(r.ok && r.out.lines().count() == 2, "{}", r.out);

    // Evidence bundle, checked offline with the published key.
    let bundle = d.path().join("bundle.json");
    let r = hall.run(&[
        "audit",
        "evidence",
        "0041200",
        "-o",
        bundle.to_str().expect("p"),
    ]);
    assert!(r.ok, "{}", r.err);
    let key = d.path().join("checkpoint.pub");
    let r = hall.run(&[
        "audit",
        "check-bundle",
        bundle.to_str().expect("p"),
        "--pubkey",
        key.to_str().expect("p"),
    ]);
    assert!(r.ok && r.out.contains("bundle OK"), "{}{}", r.out, r.err);

    let r = hall.run(&["audit", "verify"]);
    assert!(r.ok && r.out.contains("ledger OK"), "{}{}", r.out, r.err);
    // No passport-holder data anywhere in the journal: only serials and document numbers.
    let r = hall.run(&["ledger", "records", "--from", "2000-01-01T00:00:00Z"]);
    assert!(r.ok && !r.out.contains("surname") && !r.out.contains("date_of_birth"));
}

#[test]
fn commands_on_a_missing_ledger_say_so() {
    let d = tempfile::tempdir().expect("tempdir");
    let hall = Hall {
        dir: &d.path().join("nothing"),
    };
    let r = hall.run(&["audit", "verify"]);
    assert!(!r.ok && r.err.contains("no ledger at"), "{}", r.err);
}

#[test]
fn a_malformed_event_is_rejected_and_nothing_written() {
    let d = tempfile::tempdir().expect("tempdir");
    let hall = Hall { dir: d.path() };
    let r = hall.run(&[
        "ledger",
        "append",
        "--actor",
        "S",
        "--event",
        r#"{"type":"patch_applied"}"#,
    ]);
    assert!(
        !r.ok && r.err.contains("event 1 is not a valid ledger event"),
        "{}",
        r.err
    );
}

#[test]
fn a_malformed_line_anywhere_in_an_import_records_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    let hall = Hall { dir: d.path() };
    let events = [
        r#"{"type":"lot_received","lot":"R-1","kind":"patch","supplier":"S","range":{"prefix":"","first":1,"last":9,"width":7}}"#,
        r#"{"type":"lot_received","lot":"R-2","kind":"patch","supplier":"S","range":"0000010-0000019"}"#,
    ];
    let file = d.path().join("events.jsonl");
    std::fs::write(&file, events.join("\n")).expect("write the import");
    let r = hall.run_stdin(&["ledger", "append", "--actor", "S"], &file);
    assert!(
        !r.ok
            && r.err
                .contains("event 2 is not a valid ledger event (nothing was recorded)"),
        "{}",
        r.err
    );
    let r = hall.run(&["ledger", "records", "--limit", "10"]);
    assert!(
        r.ok && r.out.trim().is_empty(),
        "nothing recorded: {} {}",
        r.out,
        r.err
    );
}
