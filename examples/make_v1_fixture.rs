//! Writes `tests/fixtures/ledger-v1.tar.gz` and `tests/fixtures/ledger-v1.json`: a small but
//! varied ledger made by today's code (storage layout v1: sled with journal chunks, item states
//! and trace values), for the migration to a new layout to be tested on (issue 18). The test
//! `tests/ledger_fixture_v1.rs` opens and verifies it and checks the manifest's traces.
//!
//! `cargo run --example make_v1_fixture` regenerates both files. The events, their times and the
//! checkpoint key are fixed, so the records, their chain links and the traces come out the same;
//! only the checkpoints' signing times (and so their signatures) and sled's file bytes differ
//! from one run to the next.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use hallctl::ledger::event::Discrepancy;
use hallctl::ledger::verify::VerifyOptions;
use hallctl::ledger::{
    ItemKind, KEY_FILE, Ledger, LedgerConfig, LedgerEvent, LotId, PUB_FILE, STORE_DIR, Serial,
    SerialRange, SessionId, ShiftId,
};
use hallctl_jobs::job::{Destination, DeviceId, JobId, OperatorId, StationId};

/// The fixture's checkpoint key seed (a test key: never use it for a hall).
const KEY_SEED: [u8; 32] = [0x18; 32];
/// Items per custody session.
const PER_SESSION: u64 = 20;
/// Session pairs of the routine part: (4 × 20 + 6) events each. sled's file holds about 4 KB
/// per event at this size (old page versions included) and the tarball ~500 bytes per event,
/// varying by ±10 % from run to run: 30 keeps it near 1.3 MB.
const CYCLES: u64 = 30;
/// Session pairs per atomic batch of the routine part.
const CYCLES_PER_BATCH: u64 = 1;
/// Items per received lot (booklets and patches alike).
const LOT: u64 = 300;

type Entry = (DateTime<Utc>, OperatorId, LedgerEvent);

fn op(s: &str) -> OperatorId {
    OperatorId::new(s)
}

fn bk(n: u64) -> Serial {
    Serial::new(format!("BK-{n:07}"))
}

fn pt(n: u64) -> Serial {
    Serial::new(format!("PT-{n:07}"))
}

fn lot(kind: ItemKind, n: u64, at: DateTime<Utc>) -> Entry {
    let (prefix, name) = match kind {
        ItemKind::Booklet => ("BK-", "BOX"),
        ItemKind::Patch => ("PT-", "ROLL"),
    };
    (
        at,
        op("V1"),
        LedgerEvent::LotReceived {
            lot: LotId::new(format!("{name}-{n}")),
            kind,
            supplier: "DLR".into(),
            range: SerialRange {
                prefix: prefix.into(),
                first: n * LOT,
                last: n * LOT + LOT - 1,
                width: 7,
            },
        },
    )
}

fn opened(s: &SessionId, station: &str, operator: &str, shift: u64, at: DateTime<Utc>) -> Entry {
    (
        at,
        op("V1"),
        LedgerEvent::SessionOpened {
            session: s.clone(),
            station: StationId::new(station),
            operator: op(operator),
            shift: ShiftId::new(format!("SH-{shift}")),
        },
    )
}

fn issued(s: &SessionId, serials: Vec<Serial>, at: DateTime<Utc>) -> Entry {
    (
        at,
        op("V1"),
        LedgerEvent::ItemsIssued {
            session: s.clone(),
            serials,
            counters: [op("V1"), op("V2")],
        },
    )
}

fn printed(b: u64, s: &SessionId, printer: &str, at: DateTime<Utc>) -> Entry {
    (
        at,
        op(printer),
        LedgerEvent::BookletPrinted {
            booklet: bk(b),
            session: s.clone(),
            job: JobId(b),
            document_number: format!("X{b:08}"),
            device: DeviceId::new(format!("PRN-{printer}")),
        },
    )
}

fn applied(b: u64, p: u64, s: &SessionId, laminator: &str, at: DateTime<Utc>) -> Entry {
    (
        at,
        op(laminator),
        LedgerEvent::PatchApplied {
            patch: pt(p),
            session: s.clone(),
            booklet: bk(b),
            job: JobId(b),
            device: DeviceId::new(format!("LAM-{laminator}")),
            skip_reason: None,
        },
    )
}

fn qc(b: u64, passed: bool, at: DateTime<Utc>) -> Entry {
    (
        at,
        op("Q1"),
        LedgerEvent::QcChecked {
            booklet: bk(b),
            job: JobId(b),
            station: StationId::new("QC-1"),
            passed,
        },
    )
}

fn dispatched(b: u64, bag: u64, at: DateTime<Utc>) -> Entry {
    (
        at,
        op("D1"),
        LedgerEvent::Dispatched {
            booklet: bk(b),
            job: JobId(b),
            destination: Destination::new(format!("RPO-{}", b % 7)),
            bag: format!("BAG-{bag}"),
        },
    )
}

fn closed(s: &SessionId, operator: &str, at: DateTime<Utc>) -> Entry {
    (
        at,
        op(operator),
        LedgerEvent::SessionClosed {
            session: s.clone(),
            discrepancy: None,
        },
    )
}

/// One routine session pair: a printer and a laminator session, each issued 20 items (booklets
/// and patches counted out of the vault), 20 passports printed, laminated, QC'd and dispatched,
/// both sessions closed. Lots arrive as the vault needs them.
fn cycle(c: u64, t0: DateTime<Utc>) -> Vec<Entry> {
    let at = |i: u64| t0 + chrono::Duration::seconds((c * 200 + i) as i64);
    let first = c * PER_SESSION;
    let mut v = Vec::new();
    if first.is_multiple_of(LOT) {
        v.push(lot(ItemKind::Booklet, first / LOT, at(0)));
        v.push(lot(ItemKind::Patch, first / LOT, at(0)));
    }
    let (printer, laminator) = (format!("P{}", c % 3), format!("L{}", c % 2));
    let sp = SessionId::new(format!("SP-{c}"));
    let sl = SessionId::new(format!("SL-{c}"));
    v.push(opened(
        &sp,
        &format!("PRN-{}", c % 3),
        &printer,
        c / 10,
        at(1),
    ));
    v.push(opened(
        &sl,
        &format!("LAM-{}", c % 2),
        &laminator,
        c / 10,
        at(1),
    ));
    v.push(issued(
        &sp,
        (first..first + PER_SESSION).map(bk).collect(),
        at(2),
    ));
    v.push(issued(
        &sl,
        (first..first + PER_SESSION).map(pt).collect(),
        at(2),
    ));
    for i in 0..PER_SESSION {
        let b = first + i;
        v.push(printed(b, &sp, &printer, at(3 + i)));
        v.push(applied(b, b, &sl, &laminator, at(40 + i)));
        v.push(qc(b, true, at(80 + i)));
        v.push(dispatched(b, c, at(120 + i)));
    }
    v.push(closed(&sp, &printer, at(190)));
    v.push(closed(&sl, &laminator, at(190)));
    v
}

/// The rarer custody events, after the routine part (whose last booklet and patch are
/// `CYCLES × 20 − 1`): returns, spoils awaiting approval, an approved spoil destroyed with
/// witnesses, a rejected one, a missing report, a discrepancy at close, a reversal, a device's
/// read mismatch.
fn specials(t0: DateTime<Utc>, routine_seq_of_qc: u64) -> Vec<Vec<Entry>> {
    let base = CYCLES * PER_SESSION; // the first serial not used by the routine part
    let at = |i: u64| t0 + chrono::Duration::seconds((CYCLES * 200 + i) as i64);
    let sp = SessionId::new("SP-X");
    let sl = SessionId::new("SL-X");
    let b = |i: u64| base + i;
    let mut steps: Vec<Vec<Entry>> = Vec::new();
    // Lots for the rest (the routine part may have used its last lot to the end).
    let lot_n = base / LOT;
    if base.is_multiple_of(LOT) {
        steps.push(vec![
            lot(ItemKind::Booklet, lot_n, at(0)),
            lot(ItemKind::Patch, lot_n, at(0)),
        ]);
    }
    steps.push(vec![
        opened(&sp, "PRN-0", "P0", 99, at(1)),
        opened(&sl, "LAM-0", "L0", 99, at(1)),
        issued(&sp, (0..10).map(|i| bk(b(i))).collect(), at(2)),
        issued(&sl, (0..10).map(|i| pt(b(i))).collect(), at(2)),
    ]);
    // Booklets 0..6 printed; 0..4 laminated; 0 QC'd and dispatched; 1 failed QC.
    let mut e = Vec::new();
    for i in 0..6 {
        e.push(printed(b(i), &sp, "P0", at(10 + i)));
    }
    for i in 0..4 {
        e.push(applied(b(i), b(i), &sl, "L0", at(20 + i)));
    }
    e.push(qc(b(0), true, at(30)));
    e.push(dispatched(b(0), 999, at(31)));
    e.push(qc(b(1), false, at(32)));
    steps.push(e);
    // Booklet 1 (failed QC) and its patch: reported spoiled by the laminator's operator, awaiting
    // approval; approved by a supervisor; destroyed before two witnesses.
    let spoil = |s: Serial, actor: &str, pending: bool, i: u64| -> Entry {
        (
            at(i),
            op(actor),
            LedgerEvent::ItemSpoiled {
                serial: s,
                session: None,
                reason: "MRZ unreadable at QC".into(),
                awaiting_approval: pending,
            },
        )
    };
    steps.push(vec![
        spoil(bk(b(1)), "L0", true, 40),
        spoil(pt(b(1)), "L0", true, 41),
    ]);
    steps.push(vec![(
        at(42),
        op("SUP1"),
        LedgerEvent::SpoilageDecided {
            serials: vec![bk(b(1)), pt(b(1))],
            approved: true,
            note: "seen, MRZ smeared".into(),
        },
    )]);
    steps.push(vec![(
        at(43),
        op("SUP1"),
        LedgerEvent::ItemsDestroyed {
            batch: "DB-1".into(),
            serials: vec![bk(b(1)), pt(b(1))],
            witnesses: [op("W1"), op("W2")],
            method: "shredding".into(),
            certificate: "CERT-1".into(),
        },
    )]);
    // Booklet 2 and its patch: reported, awaiting approval (left so).
    steps.push(vec![
        spoil(bk(b(2)), "L0", true, 50),
        spoil(pt(b(2)), "L0", true, 51),
    ]);
    // Booklet 3 and its patch: reported, rejected (back to applied).
    steps.push(vec![
        spoil(bk(b(3)), "L0", true, 52),
        spoil(pt(b(3)), "L0", true, 53),
    ]);
    steps.push(vec![(
        at(54),
        op("SUP1"),
        LedgerEvent::SpoilageDecided {
            serials: vec![bk(b(3)), pt(b(3))],
            approved: false,
            note: "fine on a second look".into(),
        },
    )]);
    // Booklet 4: printed, its blank patch spoiled in the session directly (a jam), approved as
    // is (not a report). Booklet 5: the printer's reader read another booklet.
    steps.push(vec![(
        at(60),
        op("L0"),
        LedgerEvent::ItemSpoiled {
            serial: pt(b(4)),
            session: Some(sl.clone()),
            reason: "jam".into(),
            awaiting_approval: false,
        },
    )]);
    steps.push(vec![(
        at(61),
        op("LINE"),
        LedgerEvent::DeviceReadMismatch {
            device: DeviceId::new("PRN-P0"),
            job: JobId(b(5)),
            session: sp.clone(),
            scanned: bk(b(5)),
            read: None,
            kind: ItemKind::Booklet,
        },
    )]);
    // Returns: booklets 6..8 and patches 5..8 back to the vault.
    steps.push(vec![
        (
            at(70),
            op("V1"),
            LedgerEvent::ItemsReturned {
                session: sp.clone(),
                serials: (6..8).map(|i| bk(b(i))).collect(),
                counters: [op("V1"), op("V2")],
            },
        ),
        (
            at(70),
            op("V1"),
            LedgerEvent::ItemsReturned {
                session: sl.clone(),
                serials: (5..8).map(|i| pt(b(i))).collect(),
                counters: [op("V1"), op("V2")],
            },
        ),
    ]);
    // The laminator session closes with a discrepancy: patches 8 and 9 are not found.
    steps.push(vec![(
        at(80),
        op("L0"),
        LedgerEvent::SessionClosed {
            session: sl.clone(),
            discrepancy: Some(Discrepancy {
                missing: vec![pt(b(8)), pt(b(9))],
                supervisor: op("SUP1"),
                statement: "not found at the count".into(),
            }),
        },
    )]);
    // A booklet in the vault is reported missing.
    steps.push(vec![(
        at(90),
        op("V1"),
        LedgerEvent::ItemReportedMissing {
            serial: bk(b(40)),
            note: "not in its box at the stock count".into(),
        },
    )]);
    // A reversal of a routine QC record (mis-keyed), which stays in the chain.
    steps.push(vec![(
        at(95),
        op("SUP1"),
        LedgerEvent::Reversal {
            reverses: routine_seq_of_qc,
            reason: "QC result keyed against the wrong booklet".into(),
        },
    )]);
    steps
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures");
    std::fs::create_dir_all(&fixtures)?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("ledger");
    std::fs::create_dir_all(&dir)?;
    // A fixed key: the ledger uses the key file it finds.
    let key = ed25519_dalek::SigningKey::from_bytes(&KEY_SEED);
    std::fs::write(dir.join(KEY_FILE), hex::encode(KEY_SEED))?;
    std::fs::write(
        dir.join(PUB_FILE),
        hex::encode(key.verifying_key().as_bytes()),
    )?;
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 2, 6, 0, 0)
        .single()
        .ok_or("t0")?;
    let ledger = Ledger::open(
        &dir,
        LedgerConfig {
            checkpoint_every: 250,
            // Checkpoints by count only, so that they fall on the same records every run.
            checkpoint_interval: std::time::Duration::from_secs(365 * 24 * 3600),
            cache_bytes: 64 << 20,
            ..LedgerConfig::default()
        },
    )?;
    // The routine part, in atomic batches (one fsync each) of CYCLES_PER_BATCH session pairs.
    let mut qc_seq = 0;
    for first in (0..CYCLES).step_by(CYCLES_PER_BATCH as usize) {
        let batch: Vec<Entry> = (first..(first + CYCLES_PER_BATCH).min(CYCLES))
            .flat_map(|c| cycle(c, t0))
            .collect();
        let receipts = ledger.append_batch(batch)?;
        if qc_seq == 0 {
            // The first QC record of the 4th session pair: reversed later.
            qc_seq = receipts
                .iter()
                .map(|r| r.seq)
                .filter(|s| *s > 3 * 86)
                .find(
                    |s| matches!(ledger.record(*s), Ok(Some(r)) if r.event.name() == "qc_checked"),
                )
                .unwrap_or(0);
        }
    }
    let qc_record = ledger.record(qc_seq)?.ok_or("the QC record")?;
    assert_eq!(qc_record.event.name(), "qc_checked", "record {qc_seq}");
    for batch in specials(t0, qc_seq) {
        ledger.append_batch(batch)?;
    }
    ledger.checkpoint_now()?;
    let report = ledger.verify(&VerifyOptions::default(), |_, _| {})?;
    assert!(report.ok(), "{:?}", report.first_bad);

    // What the test checks: head, counts, the verify report, and the full trace of some serials.
    let base = CYCLES * PER_SESSION;
    let serials = [
        ("dispatched booklet (routine)", bk(7)),
        ("applied patch (routine)", pt(7)),
        ("booklet whose QC record is reversed", {
            let r = ledger.record(qc_seq)?.ok_or("qc")?;
            match r.event {
                LedgerEvent::QcChecked { booklet, .. } => booklet,
                _ => return Err("not a QC record".into()),
            }
        }),
        ("dispatched booklet (specials)", bk(base)),
        ("destroyed booklet (approved spoil)", bk(base + 1)),
        ("destroyed patch (approved spoil)", pt(base + 1)),
        ("booklet awaiting spoil approval", bk(base + 2)),
        ("booklet whose spoil was rejected", bk(base + 3)),
        ("patch spoiled in session (jam)", pt(base + 4)),
        ("booklet of a read mismatch", bk(base + 5)),
        ("returned booklet", bk(base + 6)),
        ("patch missing at close (discrepancy)", pt(base + 8)),
        ("booklet reported missing in the vault", bk(base + 40)),
        ("booklet never issued", bk(base + 41)),
    ];
    let mut traces = Vec::new();
    for (what, s) in &serials {
        let t = ledger.trace(s)?.ok_or_else(|| format!("{s:?} unknown"))?;
        let kinds: Vec<&str> = t.steps.iter().map(|s| s.event.as_str()).collect();
        traces.push(serde_json::json!({
            "what": what,
            "serial": s,
            "state": t.state,
            "step_events": kinds,
            "trace": t,
        }));
    }
    let manifest = serde_json::json!({
        "layout": "v1 (sled: journal chunks, item states and trace values)",
        "made_by": "cargo run --example make_v1_fixture",
        "public_key": hex::encode(key.verifying_key().as_bytes()),
        "head": ledger.head(),
        "head_link": ledger.head_link().1,
        "events": ledger.head(),
        "checkpoints": ledger.checkpoints()?.len(),
        "verified_checkpoint": ledger.verified_checkpoint()?,
        "verify": {
            "from": report.from,
            "checked": report.checked,
            "last_good": report.last_good,
            "checkpoints_checked": report.checkpoints_checked,
        },
        "traces": traces,
    });
    drop(ledger);

    assert!(dir.join(STORE_DIR).is_dir(), "the sled store");
    let tarball = fixtures.join("ledger-v1.tar.gz");
    write_tarball(&dir, &tarball)?;
    let mut f = std::fs::File::create(fixtures.join("ledger-v1.json"))?;
    f.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    f.write_all(b"\n")?;
    println!(
        "wrote {} ({} bytes, {} events) and ledger-v1.json",
        tarball.display(),
        std::fs::metadata(&tarball)?.len(),
        manifest["events"]
    );
    Ok(())
}

/// The ledger directory (key files and `store/`) as a gzip'd tar, entries sorted, with fixed
/// owners and times.
fn write_tarball(dir: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let gz =
        flate2::write::GzEncoder::new(std::fs::File::create(out)?, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    for rel in files {
        tar.append_path_with_name(dir.join(&rel), &rel)?;
    }
    tar.into_inner()?.finish()?.sync_all()?;
    Ok(())
}

fn collect(root: &Path, p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(p)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            collect(root, &e.path(), out)?;
        } else {
            out.push(
                e.path()
                    .strip_prefix(root)
                    .unwrap_or(&e.path())
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}
