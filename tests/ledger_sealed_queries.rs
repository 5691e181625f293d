//! Queries answer the same once history is sealed (issue 18, steps 7 and 8): the postings of
//! sealed records (job, session, operator, station, time, session opening) leave sled with
//! their window, into the segment's signed index table, and so do the states that settled in
//! it (used, destroyed or missing items, their traces, closed sessions), into its state table;
//! traces, reconciliations and record pages read sled and the tables alike.
//!
//! The same realistic load (the ledger benchmark's session cycles) goes into a ledger that
//! never seals and into ledgers sealing small windows; every query's JSON is compared.

use chrono::{DateTime, TimeZone, Utc};
use hallctl::ledger::query::{RecordFilter, Scope};
use hallctl::ledger::{Ledger, LedgerConfig, LotId, Period, Serial, SessionId, ShiftId};
use hallctl_jobs::job::{OperatorId, StationId};

#[path = "../benches/common/ledger_events.rs"]
#[allow(dead_code)]
mod ledger_events;
use ledger_events::{PER_SESSION, cycle_events};

const CYCLES: u64 = 12;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0)
        .single()
        .expect("time")
}

/// How sealed files are kept: the window, the merge fan-out (below 2: never) and the period.
#[derive(Debug, Clone, Copy)]
struct Layout {
    window: u64,
    fanout: u64,
    period: Period,
}

/// The cycles, five hours apart (three days: three periods of a day).
fn load(dir: &std::path::Path, layout: Layout) -> Ledger {
    let ledger = Ledger::open(
        dir,
        LedgerConfig {
            seal_window: layout.window,
            merge_fanout: layout.fanout,
            period: layout.period,
            checkpoint_every: 40,
            ..LedgerConfig::default()
        },
    )
    .expect("open");
    ledger
        .import(
            (0..CYCLES).map(|c| {
                let hours = i64::try_from(c * 5).expect("hours");
                cycle_events(c, t0() + chrono::Duration::hours(hours))
            }),
            |_| {},
        )
        .expect("import");
    ledger.checkpoint_now().expect("checkpoint");
    ledger.store().seal_due().expect("seal");
    // Whatever the sealer thread left to merge (it merges in the background as it seals).
    ledger.store().merge_due().expect("merge");
    ledger
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("json")
}

/// Every record of a filter, page by page (a small budget: pages cut short resume).
fn all_pages(l: &Ledger, mut f: RecordFilter) -> Vec<u64> {
    let mut seqs = Vec::new();
    for _ in 0..10_000 {
        let page = l.records_page(&f, 17, 60).expect("page");
        seqs.extend(page.records.iter().map(|r| r.seq));
        let Some(next) = page.next else {
            return seqs;
        };
        if f.before.is_some() {
            f.before = Some(next);
        } else {
            f.after = Some(next);
        }
    }
    panic!("paging did not end");
}

/// Everything a user can ask, as JSON.
fn answers(l: &Ledger) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let passports = CYCLES * PER_SESSION;
    for n in (0..passports).step_by(23).chain([0, passports - 1]) {
        for s in [format!("{n:09}"), format!("BK-{n:09}")] {
            let t = l.trace(&Serial::new(s.clone())).expect("trace");
            out.push((format!("trace {s}"), json(&t)));
        }
    }
    for c in [0, 5, CYCLES - 1] {
        for s in [format!("SP-{c}"), format!("SL-{c}")] {
            let r = l.reconcile(&Scope::Session(SessionId::new(&s))).expect("r");
            out.push((format!("session {s}"), json(&r)));
        }
    }
    let r = l.reconcile(&Scope::Shift(ShiftId::new("SH-0"))).expect("r");
    out.push(("shift SH-0".into(), json(&r)));
    let r = l.reconcile(&Scope::Lot(LotId::new("LOT-0"))).expect("r");
    out.push(("lot LOT-0".into(), json(&r)));
    let base = RecordFilter::default();
    let filters = [
        (
            "operator P3",
            RecordFilter {
                operator: Some(OperatorId::new("P3")),
                ..base.clone()
            },
        ),
        (
            "station LAM-4",
            RecordFilter {
                station: Some(StationId::new("LAM-4")),
                ..base.clone()
            },
        ),
        (
            "operator and station",
            RecordFilter {
                operator: Some(OperatorId::new("L5")),
                station: Some(StationId::new("LAM-5")),
                ..base.clone()
            },
        ),
        (
            "time window",
            RecordFilter {
                from: Some(t0() + chrono::Duration::seconds(700)),
                to: Some(t0() + chrono::Duration::seconds(2_900)),
                ..base.clone()
            },
        ),
        ("everything", base.clone()),
    ];
    for (name, f) in filters {
        out.push((
            format!("{name}, oldest first"),
            json(&all_pages(l, f.clone())),
        ));
        let newest = RecordFilter {
            before: Some(u64::MAX),
            ..f
        };
        out.push((format!("{name}, newest first"), json(&all_pages(l, newest))));
    }
    out
}

/// Equal answers, or a short message naming the first query that differs and where.
fn same(want: &[(String, serde_json::Value)], got: &[(String, serde_json::Value)], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: number of answers");
    for ((name, w), (_, g)) in want.iter().zip(got) {
        if w != g {
            let (ws, gs) = (w.to_string(), g.to_string());
            let at = ws
                .bytes()
                .zip(gs.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            let from = at.saturating_sub(80);
            panic!(
                "{what}: {name} differs at byte {at} (lengths {} and {}):\n want …{}\n got  …{}",
                ws.len(),
                gs.len(),
                &ws[from..(at + 80).min(ws.len())],
                &gs[from.min(gs.len())..(at + 80).min(gs.len())]
            );
        }
    }
}

/// Entries of one of sled's keyspaces (`x` the index, `s` the states).
fn in_sled(l: &Ledger, space: char) -> u64 {
    l.store()
        .space_stats()
        .expect("stats")
        .iter()
        .find(|(c, ..)| *c == space)
        .map_or(0, |e| e.1)
}

#[test]
fn queries_answer_the_same_with_history_sealed_into_index_tables() {
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = load(
        plain_dir.path(),
        Layout {
            window: 0,
            fanout: 0,
            period: Period::Month,
        },
    );
    assert!(plain.store().segment_files().is_empty());
    let want = answers(&plain);
    assert!(
        want.iter().any(
            |(n, v)| n.starts_with("operator P3") && v.as_array().is_some_and(|a| a.len() > 20)
        ),
        "the load gives the queries something to find"
    );
    let layouts = [
        (37, 0, Period::Month),
        (500, 0, Period::Month),
        // Merged: two files of a level make one of the next, a closed day becomes one file.
        (37, 2, Period::Day),
        (37, 8, Period::Month),
    ];
    for (window, fanout, period) in layouts {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout {
            window,
            fanout,
            period,
        };
        let sealed = load(dir.path(), layout);
        let files = sealed.store().segment_files();
        let window = format!("{layout:?}");
        assert!(files.len() >= 2, "window {window}: {} files", files.len());
        let merged = files
            .iter()
            .filter(|f| {
                f.path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains('-'))
            })
            .count();
        assert_eq!(
            merged > 0,
            fanout >= 2,
            "{window}: {merged} merged files of {}",
            files.len()
        );
        if fanout == 2 {
            // Two closed days, one file each, then the open day's files by levels.
            let days: Vec<_> = files
                .iter()
                .map(|f| {
                    sealed
                        .record(f.first)
                        .expect("record")
                        .expect("first")
                        .at
                        .date_naive()
                })
                .collect();
            assert!(days[0] < days[1] && days[1] < days[2], "{days:?}");
            assert!(files.len() <= 2 + 5, "{window}: {} files", files.len());
        }
        let tables = std::fs::read_dir(dir.path().join("store/segments"))
            .expect("segments")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
            .count();
        assert_eq!(tables, files.len(), "one index table per segment file");
        let (now, all) = (in_sled(&sealed, 'x'), in_sled(&plain, 'x'));
        assert!(
            now < all / 2,
            "window {window}: sealed postings left sled ({now} of {all} index keys remain)"
        );
        // The vault's unused stock stays (19,400 items of two 10,000-serial lots); the used
        // items, their traces and the closed sessions leave.
        let (now, all) = (in_sled(&sealed, 's'), in_sled(&plain, 's'));
        assert!(
            all - now > CYCLES * PER_SESSION,
            "window {window}: settled states left sled ({now} of {all} states remain)"
        );
        let states = std::fs::read_dir(dir.path().join("store/segments"))
            .expect("segments")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sta"))
            .count();
        assert!(states >= 1, "{window}: state tables: {states}");
        same(&want, &answers(&sealed), &format!("window {window}"));
        // And after a reopen, from the catalog.
        drop(sealed);
        let reopened = Ledger::open_existing(dir.path()).expect("reopen");
        same(
            &want,
            &answers(&reopened),
            &format!("window {window}, reopened"),
        );
        let report = reopened
            .verify(&Default::default(), |_, _| {})
            .expect("verify");
        assert!(report.ok(), "{window}: {:?}", report.first_bad);
        assert_eq!(
            report.checked,
            reopened.head(),
            "{window}: every record checked"
        );
    }
}
