//! Property tests of the custody state machine: random sequences of events (most of them
//! wrong) against the invariants of BRIEF §3.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use hallctl::ledger::custody::{MemState, StateView, plan};
use hallctl::ledger::event::Discrepancy;
use hallctl::ledger::{
    ItemKind, ItemState, Ledger, LedgerConfig, LedgerError, LedgerEvent, LotId, Record, Serial,
    SerialRange, SessionId, ShiftId,
};
use hallctl_jobs::job::{Destination, DeviceId, JobId, OperatorId, StationId};
use proptest::prelude::*;

const PEOPLE: [&str; 8] = ["A", "B", "C", "D", "S", "K", "W1", "W2"];
const STATIONS: [&str; 3] = ["PRN-1", "LAM-1", "LAM-2"];
const N: u64 = 8;

fn patch(i: u64) -> Serial {
    Serial::new(format!("{:07}", 41200 + i % N))
}
fn booklet(i: u64) -> Serial {
    Serial::new(format!("BK-{:07}", 9001230 + i % N))
}
fn person(i: usize) -> OperatorId {
    OperatorId::new(PEOPLE[i % PEOPLE.len()])
}
fn session(i: u8) -> SessionId {
    SessionId::new(format!("SES-{}", i % 4))
}

/// The two lots every run starts with.
fn setup() -> Vec<(OperatorId, LedgerEvent)> {
    vec![
        (
            person(4),
            LedgerEvent::LotReceived {
                lot: LotId::new("R-77"),
                kind: ItemKind::Patch,
                supplier: "DLR".into(),
                range: SerialRange::parse("0041200-0041207").expect("range"),
            },
        ),
        (
            person(4),
            LedgerEvent::LotReceived {
                lot: LotId::new("BX-1"),
                kind: ItemKind::Booklet,
                supplier: "DLR".into(),
                range: SerialRange::parse("BK-9001230-BK-9001237").expect("range"),
            },
        ),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Open(u8, usize, usize),
    Issue(u8, Vec<u64>, bool, usize, usize),
    Print(u64, u8, usize),
    Apply(u64, u64, u8, usize, bool),
    Qc(u64, usize),
    Dispatch(u64),
    Spoil(u64, bool, u8, usize),
    Return(u8, Vec<u64>, bool, usize, usize),
    Close(u8, bool, usize),
    Destroy(Vec<u64>, bool, usize, usize),
    Missing(u64, bool),
    Decide(u64, bool, bool, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let serials = prop::collection::vec(0..N, 1..4);
    // Weighted towards the line's normal flow so that deep states (printed, laminated, QC'd,
    // dispatched, destroyed) are reached, with enough wrong events to exercise every refusal.
    prop_oneof![
        2 => (any::<u8>(), 0..3usize, 0..8usize).prop_map(|(s, st, p)| Op::Open(s, st, p)),
        3 => (any::<u8>(), serials.clone(), any::<bool>(), 0..8usize, 0..8usize)
            .prop_map(|(s, v, b, c1, c2)| Op::Issue(s, v, b, c1, c2)),
        3 => (0..N, any::<u8>(), 0..8usize).prop_map(|(b, s, p)| Op::Print(b, s, p)),
        4 => (0..N, 0..N, any::<u8>(), 0..8usize, any::<bool>())
            .prop_map(|(p, b, s, a, k)| Op::Apply(p, b, s, a, k)),
        2 => (0..N, 0..8usize).prop_map(|(b, p)| Op::Qc(b, p)),
        1 => (0..N).prop_map(Op::Dispatch),
        1 => (0..N, any::<bool>(), any::<u8>(), 0..8usize).prop_map(|(x, b, s, p)| Op::Spoil(x, b, s, p)),
        1 => (any::<u8>(), serials.clone(), any::<bool>(), 0..8usize, 0..8usize)
            .prop_map(|(s, v, b, c1, c2)| Op::Return(s, v, b, c1, c2)),
        1 => (any::<u8>(), any::<bool>(), 0..8usize).prop_map(|(s, d, p)| Op::Close(s, d, p)),
        1 => (serials, any::<bool>(), 0..8usize, 0..8usize)
            .prop_map(|(v, b, w1, w2)| Op::Destroy(v, b, w1, w2)),
        1 => (0..N, any::<bool>()).prop_map(|(x, b)| Op::Missing(x, b)),
        1 => (0..N, any::<bool>(), any::<bool>(), 0..8usize, any::<bool>())
            .prop_map(|(x, b, a, p, whole)| Op::Decide(x, b, a, p, whole)),
    ]
}

/// The `k`-th serial (cyclically) among those matching `pred`, or the raw `k`-th serial.
/// Every fourth pick is raw on purpose, so wrong serials keep coming.
fn pick(st: &MemState, k: u64, patches: bool, pred: impl Fn(&ItemState) -> bool) -> Serial {
    let mut c: Vec<&Serial> = st
        .items
        .values()
        .filter(|i| (i.kind == ItemKind::Patch) == patches && pred(&i.state))
        .map(|i| &i.serial)
        .collect();
    c.sort();
    if c.is_empty() || k % 4 == 3 {
        item_of(k, patches)
    } else {
        c[(k as usize) % c.len()].clone()
    }
}

fn holder(st: &MemState, s: &Serial) -> Option<SessionId> {
    match st.items.get(s).map(|i| &i.state) {
        Some(ItemState::Issued { session }) => Some(session.clone()),
        _ => None,
    }
}

fn open_session(st: &MemState, k: u8) -> SessionId {
    let mut open: Vec<&SessionId> = st
        .sessions
        .values()
        .filter(|s| s.is_open())
        .map(|s| &s.id)
        .collect();
    open.sort();
    if open.is_empty() || k % 4 == 3 {
        session(k)
    } else {
        open[(k as usize) % open.len()].clone()
    }
}

fn item_of(v: u64, patches: bool) -> Serial {
    if patches { patch(v) } else { booklet(v) }
}

/// Turns an op into (actor, event), looking at the state only to pick plausible actors (the
/// session's operator) so that many events pass and the deep states are reached.
fn event(op: &Op, st: &MemState) -> (OperatorId, LedgerEvent) {
    let operator_of = |s: &SessionId, fallback: usize| {
        st.sessions
            .get(s)
            .map(|x| x.operator.clone())
            .unwrap_or_else(|| person(fallback))
    };
    match op {
        Op::Open(s, station, p) => (
            person(4),
            LedgerEvent::SessionOpened {
                session: session(*s),
                station: StationId::new(STATIONS[*station]),
                operator: person(*p),
                shift: ShiftId::new("N1"),
            },
        ),
        Op::Issue(s, v, patches, c1, c2) => (
            person(4),
            LedgerEvent::ItemsIssued {
                session: open_session(st, *s),
                serials: {
                    let mut v: Vec<Serial> = v
                        .iter()
                        .map(|&i| pick(st, i, *patches, |x| *x == ItemState::InVault))
                        .collect();
                    v.dedup();
                    v
                },
                counters: [person(*c1), person(*c2)],
            },
        ),
        Op::Print(b, s, p) => {
            let bk = pick(st, *b, false, |x| matches!(x, ItemState::Issued { .. }));
            let sess = holder(st, &bk)
                .filter(|_| *s % 5 != 0)
                .unwrap_or_else(|| session(*s));
            (
                operator_of(&sess, *p),
                LedgerEvent::BookletPrinted {
                    booklet: bk,
                    session: sess,
                    job: JobId(*b),
                    document_number: format!("AB{b:07}"),
                    device: DeviceId::new("PRN-1"),
                },
            )
        }
        Op::Apply(p, b, s, a, skip) => {
            let pt = pick(st, *p, true, |x| matches!(x, ItemState::Issued { .. }));
            let sess = holder(st, &pt)
                .filter(|_| *s % 5 != 0)
                .unwrap_or_else(|| session(*s));
            let bk = pick(
                st,
                *b,
                false,
                |x| matches!(x, ItemState::Applied(b) if b.partner.is_none()),
            );
            let job = match st.items.get(&bk).map(|i| &i.state) {
                Some(ItemState::Applied(x)) if *a != 0 => x.job,
                _ => JobId(*b),
            };
            (
                operator_of(&sess, *a),
                LedgerEvent::PatchApplied {
                    patch: pt,
                    session: sess,
                    booklet: bk,
                    job,
                    device: DeviceId::new("LAM-1"),
                    skip_reason: skip.then(|| "torn patch".to_string()),
                },
            )
        }
        Op::Qc(b, p) => {
            let bk = pick(
                st,
                *b,
                false,
                |x| matches!(x, ItemState::Applied(b) if b.partner.is_some()),
            );
            let job = match st.items.get(&bk).map(|i| &i.state) {
                Some(ItemState::Applied(x)) => x.job,
                _ => JobId(*b),
            };
            (
                person(*p),
                LedgerEvent::QcChecked {
                    booklet: bk,
                    job,
                    station: StationId::new("QC-1"),
                    passed: true,
                },
            )
        }
        Op::Dispatch(b) => (
            person(3),
            LedgerEvent::Dispatched {
                booklet: pick(
                    st,
                    *b,
                    false,
                    |x| matches!(x, ItemState::Applied(b) if b.qc.is_some()),
                ),
                job: match st
                    .items
                    .get(&pick(
                        st,
                        *b,
                        false,
                        |x| matches!(x, ItemState::Applied(b) if b.qc.is_some()),
                    ))
                    .map(|i| &i.state)
                {
                    Some(ItemState::Applied(x)) => x.job,
                    _ => JobId(*b),
                },
                destination: Destination::new("LHR-01"),
                bag: "BAG-1".into(),
            },
        ),
        Op::Spoil(x, patches, s, p) => {
            let serial = pick(st, *x, *patches, |_| true);
            let held_by = st.items.get(&serial).and_then(|i| match &i.state {
                ItemState::Issued { session } => Some(session.clone()),
                _ => None,
            });
            (
                person(*p),
                LedgerEvent::ItemSpoiled {
                    serial,
                    session: held_by.or_else(|| (*s % 2 == 0).then(|| session(*s))),
                    reason: "jam".into(),
                    // Every third spoil is an operator's report, awaiting approval.
                    awaiting_approval: *s % 3 == 0,
                },
            )
        }
        Op::Decide(x, patches, approved, p, whole) => {
            let serial = pick(st, *x, *patches, |s| {
                matches!(s, ItemState::SpoilPending { .. })
            });
            // The whole report (with the partner awaiting too), or only the one serial.
            let mut serials = vec![serial.clone()];
            if *whole
                && let Some(ItemState::SpoilPending { was, .. }) =
                    st.items.get(&serial).map(|i| &i.state)
                && let ItemState::Applied(b) = was.as_ref()
                && let Some(partner) = &b.partner
                && matches!(
                    st.items.get(partner).map(|i| &i.state),
                    Some(ItemState::SpoilPending { .. })
                )
            {
                serials.push(partner.clone());
            }
            (
                person(*p),
                LedgerEvent::SpoilageDecided {
                    serials,
                    approved: *approved,
                    note: String::new(),
                },
            )
        }
        Op::Return(s, v, patches, c1, c2) => (
            person(4),
            LedgerEvent::ItemsReturned {
                session: open_session(st, *s),
                serials: {
                    let mut v: Vec<Serial> = v
                        .iter()
                        .map(|&i| pick(st, i, *patches, |x| matches!(x, ItemState::Issued { .. })))
                        .collect();
                    v.dedup();
                    v
                },
                counters: [person(*c1), person(*c2)],
            },
        ),
        Op::Close(s, with_discrepancy, p) => {
            let id = open_session(st, *s);
            let held = st
                .sessions
                .get(&id)
                .map(|x| x.held.clone())
                .unwrap_or_default();
            (
                operator_of(&id, *p),
                LedgerEvent::SessionClosed {
                    session: id.clone(),
                    discrepancy: with_discrepancy.then(|| Discrepancy {
                        missing: held,
                        supervisor: person(*p),
                        statement: "not found".into(),
                    }),
                },
            )
        }
        Op::Destroy(v, patches, w1, w2) => (
            person(4),
            LedgerEvent::ItemsDestroyed {
                batch: "D-1".into(),
                serials: {
                    let mut v: Vec<Serial> = v
                        .iter()
                        .map(|&i| pick(st, i, *patches, |x| matches!(x, ItemState::Spoiled { .. })))
                        .collect();
                    v.dedup();
                    v
                },
                witnesses: [person(*w1), person(*w2)],
                method: "shredding".into(),
                certificate: "C-1".into(),
            },
        ),
        Op::Missing(x, patches) => (
            person(4),
            LedgerEvent::ItemReportedMissing {
                serial: item_of(*x, *patches),
                note: "not found at count".into(),
            },
        ),
    }
}

fn check_invariants(st: &MemState) {
    // Conservation: every received item exists exactly once, in exactly one state.
    assert_eq!(st.items.len() as u64, 2 * N);
    for s in st.sessions.values() {
        // A session's counts balance: what was issued is used, spoiled (or reported spoiled),
        // returned, missing or held.
        let c = &s.counts;
        assert_eq!(
            c.issued,
            c.applied
                + c.spoiled
                + c.spoiled_pending
                + c.returned
                + c.missing
                + c.suspect
                + s.held.len() as u64,
            "session {} does not conserve its items: {c:?}, held {}",
            s.id,
            s.held.len()
        );
        for h in &s.held {
            assert_eq!(
                st.items[h].state,
                ItemState::Issued {
                    session: s.id.clone()
                },
                "{h} is in {}'s held list but not issued to it",
                s.id
            );
        }
    }
    // An item issued to a session is in that session's held list, and the session is open.
    for i in st.items.values() {
        if let ItemState::Issued { session } = &i.state {
            let s = &st.sessions[session];
            assert!(s.held.contains(&i.serial) && s.is_open());
        }
        // A patch and its booklet point at each other: one patch per booklet, one booklet per patch.
        if let (ItemKind::Patch, ItemState::Applied(b)) = (i.kind, &i.state) {
            let bk = b
                .partner
                .as_ref()
                .expect("an applied patch names its booklet");
            if let ItemState::Applied(bb) = &st.items[bk].state {
                assert_eq!(bb.partner.as_ref(), Some(&i.serial));
                // Separation of duties: printer ≠ laminator; QC a third person.
                assert_ne!(bb.by, b.by);
                if let Some((qc, _)) = &bb.qc {
                    assert!(qc != &bb.by && qc != &b.by);
                }
            }
        }
    }
    // One open session per station and per operator.
    let open: Vec<_> = st.sessions.values().filter(|s| s.is_open()).collect();
    let stations: BTreeSet<_> = open.iter().map(|s| &s.station).collect();
    let operators: BTreeSet<_> = open.iter().map(|s| &s.operator).collect();
    assert_eq!(stations.len(), open.len());
    assert_eq!(operators.len(), open.len());
}

fn at(seq: u64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 22, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::seconds(seq as i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Counts are conserved, no item is used twice, and a refused event changes nothing.
    #[test]
    fn custody_invariants_hold_under_any_sequence(ops in prop::collection::vec(op(), 1..80)) {
        let mut st = MemState::default();
        let mut seq = 0u64;
        for (actor, ev) in setup() {
            seq += 1;
            let p = plan(&st, &Record { seq, at: at(seq), actor, event: ev }).expect("setup");
            st.commit(p);
        }
        let mut used: BTreeSet<Serial> = BTreeSet::new();
        for op in &ops {
            let (actor, ev) = event(op, &st);
            let used_serial = match &ev {
                LedgerEvent::PatchApplied { patch, .. } => Some(patch.clone()),
                LedgerEvent::BookletPrinted { booklet, .. } => Some(booklet.clone()),
                _ => None,
            };
            let rec = Record { seq: seq + 1, at: at(seq + 1), actor, event: ev };
            let before = format!("{:?}", sorted(&st));
            match plan(&st, &rec) {
                Ok(p) => {
                    seq += 1;
                    st.commit(p);
                    if std::env::var("CUSTODY_STATS").is_ok() { eprintln!("ACCEPT {}", rec.event.name()); }
                    if let Some(s) = used_serial {
                        prop_assert!(used.insert(s.clone()), "{} was used twice", s);
                    }
                }
                Err(LedgerError::Refused(_)) => {
                    // plan is pure: the state is untouched (checked here against regressions
                    // that would smuggle interior mutability in).
                    prop_assert_eq!(before, format!("{:?}", sorted(&st)));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
            check_invariants(&st);
        }
    }
}

/// A ledger and its model, both after the setup events.
fn set_up(config: LedgerConfig) -> (tempfile::TempDir, Ledger, MemState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path(), config).expect("open");
    let mut model = MemState::default();
    for (actor, ev) in setup() {
        let seq = ledger.head() + 1;
        let p = plan(
            &model,
            &Record {
                seq,
                at: at(seq),
                actor: actor.clone(),
                event: ev.clone(),
            },
        )
        .expect("setup");
        model.commit(p);
        ledger.append_at(at(seq), actor, ev).expect("setup append");
    }
    (dir, ledger, model)
}

fn sorted(st: &MemState) -> Vec<String> {
    let mut v: Vec<String> = st
        .items
        .values()
        .map(|i| format!("{i:?}"))
        .chain(st.sessions.values().map(|s| format!("{s:?}")))
        .chain(st.station_open.iter().map(|x| format!("{x:?}")))
        .chain(st.operator_open.iter().map(|x| format!("{x:?}")))
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The same sequences against the real, durable ledger: every refused append leaves every
    /// tree of the store byte-for-byte unchanged, and accepted ones match the in-memory model.
    #[test]
    fn a_refused_append_leaves_the_store_unchanged(ops in prop::collection::vec(op(), 1..40)) {
        let (_dir, ledger, mut model) = set_up(LedgerConfig { checkpoint_every: 7, ..LedgerConfig::default() });
        for op in &ops {
            let (actor, ev) = event(op, &model);
            let seq = ledger.head() + 1;
            let before = ledger.store().content_digest().expect("digest");
            let expected = plan(&model, &Record { seq, at: at(seq), actor: actor.clone(), event: ev.clone() });
            match ledger.append_at(at(seq), actor, ev) {
                Ok(r) => {
                    prop_assert_eq!(r.seq, seq);
                    let p = expected.expect("the model accepts what the ledger accepts");
                    model.commit(p);
                }
                Err(LedgerError::Refused(reason)) => {
                    prop_assert!(expected.is_err(), "the model accepts what the ledger refused: {}", reason);
                    prop_assert_eq!(before, ledger.store().content_digest().expect("digest"));
                    prop_assert_eq!(ledger.head(), seq - 1);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
        for (serial, item) in &model.items {
            let stored = ledger.item(serial).expect("item");
            prop_assert_eq!(Some(item), stored.as_ref());
        }
        let report = ledger.verify(&Default::default(), |_, _| {}).expect("verify");
        prop_assert!(report.ok(), "{:?}", report.first_bad);
        let _ = model.open_at_station(&StationId::new("PRN-1"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The same sequences with history sealed every few records: settled items and sessions
    /// leave sled for state tables and are read back from there, and an event about one of
    /// them (a late spoil, a missing report …) brings it back. The ledger still accepts and
    /// refuses exactly as the model, and every item and session ends as the model says.
    #[test]
    fn custody_is_the_same_with_history_sealed_every_few_records(ops in prop::collection::vec(op(), 1..60)) {
        let (_dir, ledger, mut model) = set_up(LedgerConfig { checkpoint_every: 2, seal_window: 3, ..LedgerConfig::default() });
        for op in &ops {
            let (actor, ev) = event(op, &model);
            let seq = ledger.head() + 1;
            let expected = plan(&model, &Record { seq, at: at(seq), actor: actor.clone(), event: ev.clone() });
            match ledger.append_at(at(seq), actor, ev) {
                Ok(_) => model.commit(expected.expect("the model accepts what the ledger accepts")),
                Err(LedgerError::Refused(reason)) => {
                    prop_assert!(expected.is_err(), "the model accepts what the ledger refused: {}", reason);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
            ledger.store().seal_due().expect("seal");
        }
        if ledger.head() >= 10 {
            prop_assert!(!ledger.store().segment_files().is_empty(), "history was sealed");
        }
        for (serial, item) in &model.items {
            let stored = ledger.item(serial).expect("item");
            prop_assert_eq!(Some(item), stored.as_ref());
        }
        for (id, session) in &model.sessions {
            let stored = ledger.session(id).expect("session");
            prop_assert_eq!(Some(session), stored.as_ref());
        }
        let report = ledger.verify(&Default::default(), |_, _| {}).expect("verify");
        prop_assert!(report.ok(), "{:?}", report.first_bad);
    }
}
