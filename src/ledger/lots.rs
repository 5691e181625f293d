//! Lots and the lot-range index: unissued stock is implied by its lot, not stored per serial.
//!
//! A lot's serials are its prefix followed by its number, zero-padded to `width` digits, for
//! every number from `first` to `last` ([`SerialRange`]). Receiving a lot writes the lot and
//! one index entry, never an item per serial (a box or roll holds up to
//! [`super::custody::MAX_LOT`]): an item no record has changed since its lot was received is in
//! the vault, implied by the lot ([`Lot::implied_item`]). A record that changes an item writes
//! it, and from then on the stored item is what the item is (a returned item is stored in the
//! vault explicitly).
//!
//! # The index
//! One entry per lot: `lr 0 L prefix 0 width first` → `last ‖ lot id`, with `L` (one byte) the
//! length of its serials and the numbers as big-endian u64. Within one (prefix, width) the
//! lots' number intervals never overlap, so the lot that may hold number `n` is the entry with
//! the greatest `first ≤ n` (a floor lookup), and it does when `n ≤ last`.
//!
//! The same characters can be split into prefix and number in several ways (`BK-1200999` is
//! `BK-` and 1200999 on 7 digits, `BK-1` and 200999 on 6, ...), and lots of different splits
//! interleave in text order without sharing a serial. So a serial is looked up under each split
//! of its trailing digits (at most one lot holds it; about 7 floor lookups for a 7-digit
//! serial), never by a floor lookup over the serials' text.
//!
//! # Overlap at receipt
//! A lot that shares any serial with a lot already received is refused. A lot with serials of
//! the same length that shares one is written either with a prefix that is ours less some of
//! its trailing digits (or ours), or with ours followed by digits:
//! - ours or shorter: one floor lookup per such prefix at our last number, as it reads under
//!   that split;
//! - longer: a scan of the entries of our serials' length whose prefix is ours followed by one
//!   of the digits our numbers start with. A hall writes its lots under a few prefixes, so this
//!   scan normally finds nothing. It is bounded ([`SCAN_LIMIT`] entries): past it the lot is
//!   refused, naming why, rather than checked for part of its neighbours.
//!
//! Every candidate is then checked exactly, by arithmetic on the two ranges (`shared`).
//!
//! Ranges are checked at receipt so that the index is exact: at least one digit, a last number
//! that fits the width (`last < 10^width`: every serial then has exactly `width` digits after
//! the prefix), a prefix without control characters and serials of at most [`MAX_SERIAL`]
//! characters. A lot received before these checks is indexed piece by piece: one entry per
//! number of digits its serials have (see `spans`).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::LedgerError;
use super::custody::{Lot, Refusal};
use super::event::{LotId, Serial, SerialRange};
use crate::store::{IndexEntry, Store};

/// The index family of lot ranges.
pub(crate) const TAG: &[u8] = b"lr";

/// Longest serial a lot may hold, in characters (bytes).
pub const MAX_SERIAL: usize = 64;

/// Most index entries of lots with longer prefixes that one receipt examines.
pub const SCAN_LIMIT: usize = 10_000;

fn pow10(d: usize) -> Option<u64> {
    10u64.checked_pow(u32::try_from(d).ok()?)
}

/// Checks that `r` is a range the index can hold exactly.
///
/// # Errors
/// A refusal naming the range and what is wrong with it.
pub(crate) fn check_range(r: &SerialRange) -> Result<(), Refusal> {
    let bad = |why: String| Err(Refusal::Invalid(format!("range {r}: {why}")));
    if r.width == 0 {
        return bad("a serial ends in at least one digit (width 0)".into());
    }
    if r.first > r.last {
        return bad(format!(
            "the first number {} is after the last {}",
            r.first, r.last
        ));
    }
    if r.prefix.chars().any(char::is_control) {
        return bad("the prefix holds a control character".into());
    }
    if r.prefix.len() + r.width > MAX_SERIAL {
        return bad(format!("a serial has at most {MAX_SERIAL} characters"));
    }
    if let Some(limit) = pow10(r.width)
        && r.last >= limit
    {
        return bad(format!(
            "a serial is the prefix and exactly {} digits, so the last number is at most {} ({})",
            r.width,
            limit - 1,
            r.serial(limit - 1)
        ));
    }
    Ok(())
}

/// The pieces of `r` whose serials have the same number of digits: (digits, first, last).
/// One piece for a range that `check_range` accepts; a range received before that check
/// whose numbers outgrow its width has one more per extra digit.
pub(crate) fn spans(r: &SerialRange) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let (mut digits, mut lo) = (r.width.max(1), r.first);
    while lo <= r.last && digits <= MAX_SERIAL.max(r.width) {
        // The largest number written with `digits` digits.
        let top = pow10(digits).map_or(u64::MAX, |p| p - 1);
        if lo <= top {
            out.push((digits, lo, r.last.min(top)));
            if r.last <= top {
                break;
            }
            lo = top + 1;
        }
        digits += 1;
    }
    out
}

/// `lr 0 L prefix 0 width`: the key prefix of the lots written with `prefix` and `width`
/// digits. `None` when the lengths do not fit a byte (no lot can have them).
fn family(prefix: &[u8], width: usize) -> Option<Vec<u8>> {
    let total = u8::try_from(prefix.len() + width).ok()?;
    let mut k = Vec::with_capacity(prefix.len() + 14);
    k.extend_from_slice(TAG);
    k.push(0);
    k.push(total);
    k.extend_from_slice(prefix);
    k.push(0);
    k.push(u8::try_from(width).ok()?);
    Some(k)
}

fn key(prefix: &[u8], width: usize, n: u64) -> Option<Vec<u8>> {
    let mut k = family(prefix, width)?;
    k.extend_from_slice(&n.to_be_bytes());
    Some(k)
}

/// The index entries of `lot` (one per `spans` piece).
pub(crate) fn entries(lot: &Lot) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefix = lot.range.prefix.as_bytes();
    // A prefix with a 0 byte could not be told from the key's separator (refused at receipt).
    if prefix.contains(&0) {
        return Vec::new();
    }
    spans(&lot.range)
        .into_iter()
        .filter_map(|(width, first, last)| {
            let k = key(prefix, width, first)?;
            let mut v = last.to_be_bytes().to_vec();
            v.extend_from_slice(lot.id.as_str().as_bytes());
            Some((k, v))
        })
        .collect()
}

/// (last, lot) of an index value.
fn parse_value(v: &[u8]) -> Option<(u64, LotId)> {
    let last = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    Some((last, LotId::new(std::str::from_utf8(&v[8..]).ok()?)))
}

/// The lot-range index as an append sees it: the store's entries and those of the lots
/// received earlier in the same batch (not written yet), so a batch that receives many lots
/// reads them as fast as stored ones.
pub(crate) struct Index<'a> {
    /// The store.
    pub store: &'a Store,
    /// Entries of the batch, by key.
    pub pending: &'a BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Index<'_> {
    /// The last entry in `[from, to]`.
    fn floor(&self, from: &[u8], to: &[u8]) -> Result<Option<IndexEntry>, LedgerError> {
        let stored = self.store.index_floor(from, to)?;
        let pending = self
            .pending
            .range::<[u8], _>((Bound::Included(from), Bound::Included(to)))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(match (stored, pending) {
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    /// Calls `f` with the entries in `[from, to)` (the store's, then the batch's) until it
    /// returns `false`.
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), LedgerError> {
        let mut go = true;
        self.store.index_range_kv_each(from, to, |k, v| {
            go = f(k, v);
            go
        })?;
        if go && from < to {
            for (k, v) in self
                .pending
                .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            {
                if !f(k, v) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The lot whose entry in `family` is the floor of `n`, when its range reaches `lo`.
fn floor(index: &Index<'_>, family: &[u8], n: u64, lo: u64) -> Result<Option<LotId>, LedgerError> {
    let mut at = family.to_vec();
    at.extend_from_slice(&n.to_be_bytes());
    Ok(match index.floor(family, &at)? {
        Some((k, v)) if k.len() == at.len() => parse_value(&v)
            .filter(|(last, _)| *last >= lo)
            .map(|(_, lot)| lot),
        _ => None,
    })
}

fn digits_value(d: &[u8]) -> Option<u64> {
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

/// `x · 10^width`, when it fits.
fn shifted(x: u64, width: usize) -> Option<u64> {
    if x == 0 {
        return Some(0);
    }
    x.checked_mul(pow10(width)?)
}

/// The lot whose range holds `serial`, from the index (a candidate: the caller reads the lot
/// and checks it holds the serial).
///
/// # Errors
/// Storage errors.
pub(crate) fn lot_of(index: &Index<'_>, serial: &Serial) -> Result<Option<LotId>, LedgerError> {
    let s = serial.as_str().as_bytes();
    let run = s.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    for k in 1..=run.min(MAX_SERIAL) {
        let (prefix, digits) = s.split_at(s.len() - k);
        let (Some(n), Some(fam)) = (digits_value(digits), family(prefix, k)) else {
            continue;
        };
        if let Some(lot) = floor(index, &fam, n, n)? {
            return Ok(Some(lot));
        }
    }
    Ok(None)
}

/// The smallest number of `ours` whose serial `theirs` holds too.
pub(crate) fn shared(ours: &SerialRange, theirs: &SerialRange) -> Option<u64> {
    let (p1, p2) = (ours.prefix.as_bytes(), theirs.prefix.as_bytes());
    let mut best: Option<u64> = None;
    for (w1, a1, b1) in spans(ours) {
        for &(w2, a2, b2) in &spans(theirs) {
            if p1.len() + w1 != p2.len() + w2 {
                continue;
            }
            // Their numbers, as our numbers: [lo, hi].
            let (lo, hi) = if p1 == p2 {
                (a2, b2)
            } else if let Some(x) = p2.strip_prefix(p1) {
                // Theirs is ours followed by the digits x: our number is x·10^w2 + theirs.
                let Some(off) = digits_value(x).and_then(|x| shifted(x, w2)) else {
                    continue;
                };
                let (Some(lo), Some(hi)) = (off.checked_add(a2), off.checked_add(b2)) else {
                    continue;
                };
                (lo, hi)
            } else if let Some(y) = p1.strip_prefix(p2) {
                // Ours is theirs followed by the digits y: their number is y·10^w1 + ours.
                let Some(off) = digits_value(y).and_then(|y| shifted(y, w1)) else {
                    continue;
                };
                if b2 < off {
                    continue;
                }
                (a2.saturating_sub(off), b2 - off)
            } else {
                continue;
            };
            let (lo, hi) = (lo.max(a1), hi.min(b1));
            if lo <= hi && best.is_none_or(|b| lo < b) {
                best = Some(lo);
            }
        }
    }
    best
}

/// A lot of the index sharing a serial with `range`: the one holding the serial of `range`
/// that comes first, with its number. `load` reads a lot.
///
/// # Errors
/// Storage errors; a refusal when more than [`SCAN_LIMIT`] lots with longer prefixes would have
/// to be examined.
pub(crate) fn sharing(
    index: &Index<'_>,
    range: &SerialRange,
    mut load: impl FnMut(&LotId) -> Result<Option<Lot>, LedgerError>,
) -> Result<Option<(LotId, u64)>, LedgerError> {
    let p = range.prefix.as_bytes();
    let mut candidates: Vec<LotId> = Vec::new();
    let run = p.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    for (w, a, b) in spans(range) {
        // Our prefix less its last j digits (j = 0: ours), the numbers then y·10^w + ours.
        for j in 0..=run {
            let (shorter, y) = p.split_at(p.len() - j);
            let off = if j == 0 {
                Some(0)
            } else {
                digits_value(y).and_then(|y| shifted(y, w))
            };
            let Some((lo, hi)) = off.and_then(|o| Some((o.checked_add(a)?, o.checked_add(b)?)))
            else {
                continue;
            };
            if let Some(fam) = family(shorter, w + j) {
                // Any lot of the family sharing a serial: the last starting at or below `hi`.
                // Several may share some; the refusal names the lowest shared serial, so also
                // the lot holding `lo` and the first starting inside the range.
                if let Some(lot) = floor(index, &fam, hi, lo)? {
                    candidates.push(lot);
                    if let Some(lot) = floor(index, &fam, lo, lo)? {
                        candidates.push(lot);
                    }
                    let (from, to) = (
                        [&fam[..], &lo.to_be_bytes()[..]].concat(),
                        [&fam[..], &hi.saturating_add(1).to_be_bytes()[..]].concat(),
                    );
                    index.scan(&from, &to, |_, v| {
                        if let Some((_, lot)) = parse_value(v) {
                            candidates.push(lot);
                        }
                        false
                    })?;
                }
            }
        }
        // Our prefix followed by the digits our numbers start with.
        let Ok(total) = u8::try_from(p.len() + w) else {
            continue;
        };
        let start = |n: u64| format!("{n:0w$}").as_bytes()[0];
        let mut from = [TAG, &[0, total], p].concat();
        let mut to = from.clone();
        from.push(start(a));
        to.push(start(b) + 1);
        let mut seen = 0usize;
        index.scan(&from, &to, |_, v| {
            seen += 1;
            if let Some((_, lot)) = parse_value(v) {
                candidates.push(lot);
            }
            seen <= SCAN_LIMIT
        })?;
        if seen > SCAN_LIMIT {
            return Err(Refusal::Invalid(format!(
                "range {range}: more than {SCAN_LIMIT} lots have serials of the same length \
                 that start with {:?} and a digit, too many to check for a serial shared with \
                 this lot in one receipt; write its serials with a longer prefix",
                range.prefix
            ))
            .into());
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut best: Option<(LotId, u64)> = None;
    for id in candidates {
        if let Some(lot) = load(&id)?
            && let Some(n) = shared(range, &lot.range)
            && best.as_ref().is_none_or(|b| n < b.1)
        {
            best = Some((id, n));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use hallctl_jobs::job::OperatorId;

    use crate::ledger::query::Scope;
    use crate::ledger::{
        ItemKind, ItemState, Ledger, LedgerConfig, LedgerError, LedgerEvent, LotId, Serial,
        SerialRange,
    };

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).expect("time")
    }

    fn receive(
        l: &Ledger,
        lot: &str,
        prefix: &str,
        width: usize,
        first: u64,
        last: u64,
    ) -> Result<u64, LedgerError> {
        l.append_at(
            at(),
            OperatorId::new("S"),
            lot_event(lot, prefix, width, first, last),
        )
        .map(|r| r.seq)
    }

    fn lot_event(lot: &str, prefix: &str, width: usize, first: u64, last: u64) -> LedgerEvent {
        LedgerEvent::LotReceived {
            lot: LotId::new(lot),
            kind: ItemKind::Patch,
            supplier: "DLR".into(),
            range: SerialRange {
                prefix: prefix.into(),
                first,
                last,
                width,
            },
        }
    }

    fn refused(r: Result<u64, LedgerError>) -> String {
        match r {
            Err(LedgerError::Refused(why)) => why.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn ledger(dir: &std::path::Path) -> Ledger {
        Ledger::open(dir, LedgerConfig::default()).expect("open")
    }

    /// A serial is its prefix followed by exactly `width` digits: a range whose numbers need
    /// more digits (or a width of none) is refused at receipt, naming the range, and nothing is
    /// written.
    #[test]
    fn a_range_whose_numbers_outgrow_their_width_is_refused_naming_the_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        let before = l.store().content_digest().expect("digest");
        for (prefix, width, first, last) in [
            ("BK-", 3, 995, 1005),
            ("BK-", 3, 1000, 1000),
            ("", 0, 0, 0),
            ("BK\0", 3, 1, 2),
        ] {
            let why = refused(receive(&l, "L-1", prefix, width, first, last));
            assert!(why.contains("range"), "{why}");
        }
        assert_eq!(l.store().content_digest().expect("digest"), before);
        // The largest number that fits is accepted.
        receive(&l, "L-1", "BK-", 3, 990, 999).expect("fits");
    }

    /// Receiving the largest lot writes a handful of state entries, not one per serial; each
    /// serial still reads as an item in the vault, counted by the lot's reconciliation.
    #[test]
    fn a_100k_lot_is_a_few_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        receive(&l, "R-1", "", 7, 1, 100_000).expect("receive");
        let states = l
            .store()
            .space_stats()
            .expect("stats")
            .into_iter()
            .find(|e| e.0 == 's')
            .map_or(0, |e| e.1);
        assert!(states <= 5, "{states} state entries for one lot");
        let item = l
            .item(&Serial::new("0050000"))
            .expect("read")
            .expect("known");
        assert_eq!(item.state, ItemState::InVault);
        assert_eq!(item.custody, [OperatorId::new("S")]);
        assert_eq!(item.lot, LotId::new("R-1"));
        assert_eq!(l.item(&Serial::new("0100001")).expect("read"), None);
        let rec = l
            .reconcile(&Scope::Lot(LotId::new("R-1")))
            .expect("reconcile");
        assert_eq!(rec.lots[0].in_vault.len(), 100_000);
    }

    /// A lot sharing any serial with a lot already received is refused, whether it shares the
    /// first serials, the last ones, lies inside or covers it, and whether its serials are
    /// written with the same prefix and width or with another split of the same characters.
    /// Lots that only come close, or interleave in text order without sharing a serial, are
    /// accepted.
    /// A lot sharing serials with several lots of one family names the lowest shared serial
    /// (found by the property test: it named the lot found first, B-89 of L1).
    #[test]
    fn a_lot_overlapping_several_names_the_lowest_shared_serial() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        receive(&l, "L0", "B-", 2, 67, 88).expect("L0");
        receive(&l, "L1", "B-", 2, 89, 89).expect("L1");
        let why = refused(receive(&l, "L2", "B-", 2, 0, 89));
        assert!(why.contains("B-67") && why.contains("lot L0"), "{why}");
    }

    #[test]
    fn overlapping_lot_refused_at_both_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        // BK-1200000 .. BK-1200999.
        receive(&l, "A", "BK-1", 6, 200_000, 200_999).expect("A");
        let before = l.store().content_digest().expect("digest");
        for (prefix, width, first, last) in [
            ("BK-1", 6, 199_000, 200_000),    // its first serial
            ("BK-1", 6, 200_999, 201_500),    // its last serial
            ("BK-1", 6, 200_100, 200_200),    // inside
            ("BK-1", 6, 150_000, 249_999),    // around
            ("BK-", 7, 1_200_500, 1_200_600), // same characters, shorter prefix
            ("BK-", 7, 1_199_990, 1_200_000), // ... at its first serial
            ("BK-12", 5, 900, 1_100),         // longer prefix, at its last serial
            ("BK-1200", 3, 0, 5),             // longer still
            ("BK-120099", 1, 9, 9),           // its very last serial alone
        ] {
            let why = refused(receive(&l, "B", prefix, width, first, last));
            assert!(
                why.contains("lot A"),
                "{prefix} {width} {first}-{last}: {why}"
            );
        }
        assert_eq!(l.store().content_digest().expect("digest"), before);
        for (lot, prefix, width, first, last) in [
            ("C", "BK-1", 6, 199_000, 199_999),    // just before
            ("D", "BK-1", 6, 201_000, 201_999),    // just after
            ("E", "BK-", 7, 1_202_000, 1_202_100), // another split, no serial in common
            ("F", "BK-1", 7, 200_000, 200_999),    // one digit longer: other serials
            ("G", "BK-1A", 5, 0, 99_999),          // between them in text order
            ("H", "BK-12010", 2, 0, 99),           // inside D, written another way
        ] {
            let r = receive(&l, lot, prefix, width, first, last);
            if lot == "H" {
                assert!(refused(r).contains("lot D"));
            } else {
                r.unwrap_or_else(|e| panic!("{lot}: {e}"));
            }
        }
        // Every serial reads as an item of its own lot.
        for (serial, lot) in [
            ("BK-1200000", Some("A")),
            ("BK-1200999", Some("A")),
            ("BK-1199999", Some("C")),
            ("BK-1201000", Some("D")),
            ("BK-10200999", Some("F")),
            ("BK-1202050", Some("E")),
            ("BK-1A12345", Some("G")),
            ("BK-1203000", None),
            ("BK-120", None),
        ] {
            let item = l.item(&Serial::new(serial)).expect("read");
            assert_eq!(item.map(|i| i.lot), lot.map(LotId::new), "{serial}");
        }
    }

    /// The check of longer prefixes is bounded: with more than [`SCAN_LIMIT`] lots written as
    /// `B0` and digits, a lot `B` whose numbers start with 0 is refused, saying why and changing
    /// nothing; one whose numbers start with another digit is checked and accepted. The batch
    /// that receives the 10,001 lots reads its own lots through an in-memory index.
    #[test]
    fn a_lot_past_the_bound_of_the_overlap_check_is_refused_saying_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        let mut batch: Vec<_> = (0..10_000)
            .map(|x| {
                (
                    at(),
                    OperatorId::new("S"),
                    lot_event(&format!("X{x}"), &format!("B0{x:04}"), 1, 1, 1),
                )
            })
            .collect();
        batch.push((
            at(),
            OperatorId::new("S"),
            lot_event("Y", "B0999", 2, 20, 20),
        ));
        l.append_batch(batch).expect("10,001 lots");
        let before = l.store().content_digest().expect("digest");
        let why = refused(receive(&l, "Z", "B", 6, 0, 99_999));
        assert!(
            why.contains("more than 10000 lots") && why.contains("range"),
            "{why}"
        );
        assert_eq!(l.store().content_digest().expect("digest"), before);
        receive(&l, "W", "B", 6, 100_000, 199_999).expect("numbers starting with 1");
        assert_eq!(
            l.item(&Serial::new("B099920"))
                .expect("read")
                .map(|i| i.lot),
            Some(LotId::new("Y"))
        );
    }

    /// A lot received before the range checks, whose numbers outgrew their width (`BK-995` to
    /// `BK-1005` on 3 digits), is indexed when the ledger is first opened by this version, one
    /// entry per number of digits: each of its serials reads as its item, and a new lot sharing
    /// one of either length is refused naming it.
    #[test]
    fn a_lot_received_before_the_range_checks_is_indexed_piece_by_piece() {
        use crate::ledger::Lot;
        use crate::store::{Store, WriteSet};
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // As an earlier version left it: the lot, no index entry (its items aside).
            let store =
                Store::open(&dir.path().join(crate::ledger::STORE_DIR), 1 << 20).expect("store");
            let lot = Lot {
                id: LotId::new("OLD"),
                kind: ItemKind::Booklet,
                supplier: "DLR".into(),
                range: SerialRange {
                    prefix: "BK-".into(),
                    first: 995,
                    last: 1005,
                    width: 3,
                },
                received_at: at(),
                received_by: OperatorId::new("S"),
                seq: 1,
            };
            let mut ws = WriteSet::default();
            ws.state(
                b"l/OLD".to_vec(),
                Some(serde_json::to_vec(&lot).expect("json")),
            );
            store.commit(&ws).expect("commit");
            store.sync().expect("sync");
        }
        let l = ledger(dir.path());
        for (serial, lot) in [
            ("BK-995", true),
            ("BK-999", true),
            ("BK-1000", true),
            ("BK-1005", true),
            ("BK-1006", false),
            ("BK-0999", false),
            ("BK-994", false),
        ] {
            let item = l.item(&Serial::new(serial)).expect("read");
            assert_eq!(
                item.map(|i| i.lot),
                lot.then(|| LotId::new("OLD")),
                "{serial}"
            );
        }
        for (width, first, last, shared) in [(4, 1003, 1010, "BK-1003"), (3, 990, 995, "BK-995")] {
            let why = refused(receive(&l, "NEW", "BK-", width, first, last));
            assert!(why.contains(&format!("{shared} (lot OLD)")), "{why}");
        }
        receive(&l, "NEW", "BK-", 4, 1006, 1010).expect("after it");
    }

    /// An untouched serial traces, and its lot reconciles, exactly as when every serial of a
    /// lot was stored at receipt (the JSON the code before the change answered).
    #[test]
    fn an_untouched_serial_traces_and_reconciles_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path());
        receive(&l, "R-7", "", 7, 41_200, 41_203).expect("receive");
        let trace = l
            .trace(&Serial::new("0041202"))
            .expect("trace")
            .expect("known");
        let rec = l
            .reconcile(&Scope::Lot(LotId::new("R-7")))
            .expect("reconcile");
        let item = l.item(&Serial::new("0041202")).expect("item");
        let json = |text: &str| -> serde_json::Value { serde_json::from_str(text).expect("json") };
        let lot = r#"{"id":"R-7","kind":"patch","supplier":"DLR","range":{"prefix":"","first":41200,"last":41203,"width":7},"received_at":"2026-09-21T14:13:20Z","received_by":"S","seq":1}"#;
        assert_eq!(
            serde_json::to_value(&trace).expect("trace"),
            json(&format!(
                r#"{{"serial":"0041202","kind":"patch","state":"in the vault","lot":{lot},"partner":null,"job":null,"document_number":null,"steps":[{{"seq":1,"at":"2026-09-21T14:13:20Z","actor":"S","serial":"0041202","event":"lot_received","station":null,"detail":"patch lot R-7 (0041200–0041203) received from DLR","reversed_by":null}}]}}"#
            ))
        );
        assert_eq!(
            serde_json::to_value(&rec).expect("reconciliation"),
            json(&format!(
                r#"{{"scope":"lot R-7","sessions":[],"lots":[{{"lot":{lot},"in_vault":["0041200","0041201","0041202","0041203"],"issued":[],"applied":0,"spoiled":[],"spoiled_pending":[],"spoiled_approved":[],"destroyed":[],"missing":[],"suspect":[]}}]}}"#
            ))
        );
        assert_eq!(
            serde_json::to_value(&item).expect("item"),
            json(
                r#"{"serial":"0041202","kind":"patch","lot":"R-7","state":{"state":"in_vault"},"custody":["S"]}"#
            )
        );
    }

    /// Lots under prefixes that extend one another with digits (so the same characters split
    /// several ways), received one by one: the ledger accepts exactly the lots the model (which
    /// stores every serial) accepts, refuses the others with the model's words (the first
    /// shared serial and its lot), and answers every serial, received or not, as the model
    /// does. Received in one batch, they are accepted exactly when the model accepts each.
    mod agrees_with_the_model {
        use super::*;
        use crate::ledger::Record;
        use crate::ledger::custody::{MemState, StateView, plan};
        use proptest::prelude::*;

        const PREFIXES: [&str; 8] = ["", "1", "12", "B", "B1", "B12", "B-", "B-0"];

        fn lots() -> impl Strategy<Value = Vec<(usize, usize, u64, u64)>> {
            prop::collection::vec(
                (0..PREFIXES.len(), 1usize..=3, 0u64..1_000, 1u64..300).prop_map(
                    |(p, w, first, len)| {
                        let top = 10u64.pow(w as u32) - 1;
                        let first = first % (top + 1);
                        (p, w, first, (first + len - 1).min(top))
                    },
                ),
                1..12,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

            #[test]
            fn lots_and_their_serials(lots in lots()) {
                let dir = tempfile::tempdir().expect("tempdir");
                let l = ledger(&dir.path().join("one"));
                let mut model = MemState::default();
                let mut all_accepted = true;
                let mut events = Vec::new();
                for (i, &(p, w, first, last)) in lots.iter().enumerate() {
                    let ev = lot_event(&format!("L{i}"), PREFIXES[p], w, first, last);
                    events.push((at(), OperatorId::new("S"), ev.clone()));
                    let seq = l.head() + 1;
                    let rec = Record { seq, at: at(), actor: OperatorId::new("S"), event: ev.clone() };
                    let expected = plan(&model, &rec);
                    match (l.append_at(at(), OperatorId::new("S"), ev), expected) {
                        (Ok(_), Ok(p)) => model.commit(p),
                        (Err(LedgerError::Refused(got)), Err(LedgerError::Refused(want))) => {
                            prop_assert_eq!(got.to_string(), want.to_string());
                            all_accepted = false;
                        }
                        (got, want) => prop_assert!(false, "ledger {:?}, model {:?}", got, want.map(|_| ())),
                    }
                }
                let mut serials: Vec<Serial> = Vec::new();
                for &(p, w, first, last) in &lots {
                    let r = SerialRange { prefix: PREFIXES[p].into(), first, last, width: w };
                    serials.extend(r.serials());
                    // Just outside, and one digit longer.
                    serials.push(r.serial(first.saturating_sub(1)));
                    serials.push(r.serial(last + 1));
                    serials.push(Serial::new(format!("{}0", r.serial(first))));
                }
                for s in &serials {
                    prop_assert_eq!(l.item(s).expect("read"), model.item(s).expect("model"), "{}", s);
                }
                let batch = ledger(&dir.path().join("batch"));
                prop_assert_eq!(batch.append_batch(events).is_ok(), all_accepted);
            }
        }
    }
}
