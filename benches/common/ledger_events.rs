//! The events of the ledger benchmark's load (`benches/ledger.rs`), also used by
//! `examples/segment_figures.rs`: realistic session cycles of a peak hall.

use chrono::{DateTime, Utc};
use hallctl::ledger::{ItemKind, LedgerEvent, LotId, Serial, SerialRange, SessionId, ShiftId};
use hallctl_jobs::job::{Destination, DeviceId, JobId, OperatorId, StationId};

/// An operator id.
pub fn op(s: &str) -> OperatorId {
    OperatorId::new(s)
}

/// Items per custody session in the load: a realistic issue of 50.
pub const PER_SESSION: u64 = 50;

/// Items per received lot.
pub const LOT: u64 = 10_000;

/// The events of one session pair: a printer and a laminator session, 50 booklets and 50
/// patches issued, each printed, laminated, QC'd and dispatched, both sessions closed.
pub fn cycle_events(c: u64, t0: DateTime<Utc>) -> Vec<(DateTime<Utc>, OperatorId, LedgerEvent)> {
    let mut v = Vec::with_capacity(4 * PER_SESSION as usize + 8);
    let at = |i: u64| t0 + chrono::Duration::milliseconds((c * 300 + i) as i64 * 1000);
    let first = c * PER_SESSION;
    if first.is_multiple_of(LOT) {
        for (kind, prefix) in [(ItemKind::Booklet, "BK-"), (ItemKind::Patch, "")] {
            v.push((
                at(0),
                op("S"),
                LedgerEvent::LotReceived {
                    lot: LotId::new(format!("{prefix}LOT-{}", first / LOT)),
                    kind,
                    supplier: "DLR".into(),
                    range: SerialRange {
                        prefix: prefix.into(),
                        first,
                        last: first + LOT - 1,
                        width: 9,
                    },
                },
            ));
        }
    }
    let (printer, laminator) = (format!("P{}", c % 10), format!("L{}", c % 11));
    let (sp, sl) = (
        SessionId::new(format!("SP-{c}")),
        SessionId::new(format!("SL-{c}")),
    );
    let shift = ShiftId::new(format!("SH-{}", c / 30));
    for (s, st, o) in [
        (&sp, format!("PRN-{}", c % 10), &printer),
        (&sl, format!("LAM-{}", c % 11), &laminator),
    ] {
        v.push((
            at(1),
            op("S"),
            LedgerEvent::SessionOpened {
                session: s.clone(),
                station: StationId::new(st),
                operator: op(o),
                shift: shift.clone(),
            },
        ));
    }
    let bk = |i: u64| Serial::new(format!("BK-{:09}", first + i));
    let pt = |i: u64| Serial::new(format!("{:09}", first + i));
    v.push((
        at(2),
        op("S"),
        LedgerEvent::ItemsIssued {
            session: sp.clone(),
            serials: (0..PER_SESSION).map(bk).collect(),
            counters: [op("S"), op("K")],
        },
    ));
    v.push((
        at(2),
        op("S"),
        LedgerEvent::ItemsIssued {
            session: sl.clone(),
            serials: (0..PER_SESSION).map(pt).collect(),
            counters: [op("S"), op("K")],
        },
    ));
    for i in 0..PER_SESSION {
        let job = JobId(first + i);
        v.push((
            at(3 + i),
            op(&printer),
            LedgerEvent::BookletPrinted {
                booklet: bk(i),
                session: sp.clone(),
                job,
                document_number: format!("AB{:07}", first + i),
                device: DeviceId::new(format!("PRN-{}", c % 10)),
            },
        ));
        v.push((
            at(60 + i),
            op(&laminator),
            LedgerEvent::PatchApplied {
                patch: pt(i),
                session: sl.clone(),
                booklet: bk(i),
                job,
                device: DeviceId::new(format!("LAM-{}", c % 11)),
                skip_reason: None,
            },
        ));
        v.push((
            at(120 + i),
            op(&format!("Q{}", c % 4)),
            LedgerEvent::QcChecked {
                booklet: bk(i),
                job,
                station: StationId::new("QC-1"),
                passed: true,
            },
        ));
        v.push((
            at(180 + i),
            op("D0"),
            LedgerEvent::Dispatched {
                booklet: bk(i),
                job,
                destination: Destination::new(format!("RPO-{}", (first + i) % 232)),
                bag: format!("BAG-{}", c),
            },
        ));
    }
    for s in [&sp, &sl] {
        v.push((
            at(250),
            op("S"),
            LedgerEvent::SessionClosed {
                session: s.clone(),
                discrepancy: None,
            },
        ));
    }
    v
}
