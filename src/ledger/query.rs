//! Forensic queries, all through secondary indexes: a trace reads a handful of index prefixes and
//! records, whatever the size of the journal.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use hallctl_jobs::job::{JobId, OperatorId, StationId};
use serde::{Deserialize, Serialize};

use super::custody::{Item, ItemState, Lot, Session};
use super::event::{ItemKind, LedgerEvent, LotId, Record, Serial, SessionId, ShiftId};
use super::{Ledger, LedgerError, ix};

/// Most records one query returns (a guard against unbounded output, not a page size).
pub const MAX_ROWS: usize = 1_000_000;

/// One step in a trace: who did what, where and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceStep {
    /// The record.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: OperatorId,
    /// Which item of the trace it concerns.
    pub serial: Serial,
    /// The event name.
    pub event: String,
    /// The station, when the event happened in a session.
    pub station: Option<StationId>,
    /// What happened, in words.
    pub detail: String,
    /// A later reversal of this record, if any.
    pub reversed_by: Option<u64>,
}

/// The forward and backward trace of a serial (patch or booklet) and its partner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trace {
    /// The serial asked for.
    pub serial: Serial,
    /// Booklet or patch; `null` for a serial never received into the vault (a forgery, a
    /// misread), whose trace lists the refused attempts that named it.
    pub kind: Option<ItemKind>,
    /// Its current state, in words.
    pub state: String,
    /// The lot it came in.
    pub lot: Option<Lot>,
    /// The booklet (for a patch) or patch (for a booklet) it is bound to.
    pub partner: Option<Serial>,
    /// The job.
    pub job: Option<JobId>,
    /// The passport number printed in the booklet.
    pub document_number: Option<String>,
    /// Every record about the serial and its partner, in order.
    pub steps: Vec<TraceStep>,
}

/// What a trace shows of one record, kept as the value of the record's serial index entries
/// (and of a session's opening entry) when the record is appended: a trace then reads a few
/// index prefixes instead of reading and decoding whole records, some of which (an issue of 50
/// serials) are large. Derived data, like the custody state: `audit verify` checks the journal,
/// and an evidence bundle carries the records themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepValue {
    /// When.
    pub at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: OperatorId,
    /// The event name.
    pub event: String,
    /// The station.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<StationId>,
    /// What happened, in words.
    pub detail: String,
    /// For an issue: the session whose opening the trace shows too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_of: Option<SessionId>,
}

impl StepValue {
    /// The value of `r`'s index entries, given the stations of the sessions it names.
    pub(crate) fn of(
        r: &Record,
        sessions: &mut dyn FnMut(&SessionId) -> Result<Option<StationId>, LedgerError>,
    ) -> Result<StepValue, LedgerError> {
        let (station, detail) = describe(r, sessions)?;
        Ok(StepValue {
            at: r.at,
            actor: r.actor.clone(),
            event: r.event.name().into(),
            station,
            detail,
            opening_of: match &r.event {
                LedgerEvent::ItemsIssued { session, .. } => Some(session.clone()),
                _ => None,
            },
        })
    }

    fn step(self, seq: u64, serial: Serial) -> TraceStep {
        TraceStep {
            seq,
            at: self.at,
            actor: self.actor,
            serial,
            event: self.event,
            station: self.station,
            detail: self.detail,
            reversed_by: None,
        }
    }
}

/// Lists index entries under `tag`/`key` as sequence numbers.
fn seqs(l: &Ledger, tag: &[u8], key: &[u8]) -> Result<Vec<u64>, LedgerError> {
    Ok(l.store
        .index_scan(&ix::prefix(tag, key), MAX_ROWS)?
        .iter()
        .map(|k| ix::seq_of(k))
        .collect())
}

fn record(l: &Ledger, seq: u64) -> Result<Record, LedgerError> {
    l.record(seq)?
        .ok_or_else(|| LedgerError::Corrupt(format!("index names record {seq}, which is missing")))
}

struct Sessions<'a> {
    l: &'a Ledger,
    cache: HashMap<SessionId, Option<Session>>,
}

impl Sessions<'_> {
    fn station(&mut self, id: &SessionId) -> Result<Option<StationId>, LedgerError> {
        if !self.cache.contains_key(id) {
            let s = self.l.session(id)?;
            self.cache.insert(id.clone(), s);
        }
        Ok(self
            .cache
            .get(id)
            .and_then(|s| s.as_ref().map(|s| s.station.clone())))
    }
}

/// A record's station and description, as a trace shows it. `sessions` gives a session's
/// station.
pub(crate) fn describe(
    r: &Record,
    sessions: &mut dyn FnMut(&SessionId) -> Result<Option<StationId>, LedgerError>,
) -> Result<(Option<StationId>, String), LedgerError> {
    let st =
        |s: &SessionId,
         sessions: &mut dyn FnMut(&SessionId) -> Result<Option<StationId>, LedgerError>| {
            sessions(s)
        };
    Ok(match &r.event {
        LedgerEvent::LotReceived {
            lot,
            kind,
            supplier,
            range,
        } => (
            None,
            format!("{kind} lot {lot} ({range}) received from {supplier}"),
        ),
        LedgerEvent::SessionOpened {
            session,
            station,
            operator,
            shift,
        } => (
            Some(station.clone()),
            format!("session {session} opened for {operator}, shift {shift}"),
        ),
        LedgerEvent::ItemsIssued {
            session,
            counters,
            serials,
        } => (
            st(session, sessions)?,
            format!(
                "{} item(s) issued to session {session}, counted by {} and {}",
                serials.len(),
                counters[0],
                counters[1]
            ),
        ),
        LedgerEvent::BookletPrinted {
            booklet,
            session,
            job,
            document_number,
            device,
        } => (
            st(session, sessions)?,
            format!(
                "booklet {booklet} printed for job {job} (document {document_number}) on {device}"
            ),
        ),
        LedgerEvent::PatchApplied {
            patch,
            session,
            booklet,
            job,
            device,
            skip_reason,
        } => (
            st(session, sessions)?,
            format!(
                "patch {patch} applied to booklet {booklet} for job {job} on {device}{}",
                skip_reason
                    .as_ref()
                    .map(|r| format!(" (out of roll order: {r})"))
                    .unwrap_or_default()
            ),
        ),
        LedgerEvent::QcChecked {
            booklet,
            station,
            passed,
            ..
        } => (
            Some(station.clone()),
            format!(
                "QC of booklet {booklet}: {}",
                if *passed { "passed" } else { "failed" }
            ),
        ),
        LedgerEvent::Dispatched {
            booklet,
            destination,
            bag,
            ..
        } => (
            None,
            format!("booklet {booklet} packed for {destination} in bag {bag}"),
        ),
        LedgerEvent::ItemSpoiled {
            serial,
            session,
            reason,
            awaiting_approval,
        } => (
            match session {
                Some(s) => st(s, sessions)?,
                None => None,
            },
            if *awaiting_approval {
                format!("{serial} reported spoiled: {reason}; awaiting a supervisor's approval")
            } else {
                format!("{serial} spoiled: {reason}")
            },
        ),
        LedgerEvent::SpoilageDecided {
            serials,
            approved,
            note,
        } => (
            None,
            format!(
                "spoilage of {} {} with the item(s) scanned in hand{}",
                serials
                    .iter()
                    .map(Serial::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                if *approved {
                    "approved: to be destroyed before witnesses"
                } else {
                    "rejected: back where it was"
                },
                if note.trim().is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                }
            ),
        ),
        LedgerEvent::ItemsReturned {
            session,
            serials,
            counters,
        } => (
            st(session, sessions)?,
            format!(
                "{} item(s) returned from session {session}, counted by {} and {}",
                serials.len(),
                counters[0],
                counters[1]
            ),
        ),
        LedgerEvent::SessionClosed {
            session,
            discrepancy,
        } => (
            st(session, sessions)?,
            match discrepancy {
                None => format!("session {session} closed, balanced"),
                Some(d) => format!(
                    "session {session} closed with a discrepancy signed by {}: missing {}",
                    d.supervisor,
                    d.missing
                        .iter()
                        .map(Serial::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        ),
        LedgerEvent::ItemsDestroyed {
            batch,
            serials,
            witnesses,
            method,
            certificate,
        } => (
            None,
            format!(
                "{} item(s) destroyed in batch {batch} ({method}, certificate {certificate}), witnessed by {} and {}",
                serials.len(),
                witnesses[0],
                witnesses[1]
            ),
        ),
        LedgerEvent::ItemReportedMissing { serial, note } => {
            (None, format!("{serial} reported missing: {note}"))
        }
        LedgerEvent::SessionAbandoned {
            session,
            held,
            reason,
        } => (
            st(session, sessions)?,
            format!(
                "session {session} abandoned ({reason}) holding {} item(s): {}",
                held.len(),
                held.iter()
                    .map(Serial::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        LedgerEvent::ItemsSetAside {
            session,
            serials,
            reason,
        } => (
            st(session, sessions)?,
            format!(
                "{} set aside in session {session} after a roll skip ({reason}): to be returned or destroyed, never used",
                serials
                    .iter()
                    .map(Serial::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        LedgerEvent::DeviceReadMismatch {
            device,
            job,
            session,
            scanned,
            read,
            kind,
        } => (
            st(session, sessions)?,
            match read {
                Some(r) => format!(
                    "{device} read {kind} {r} where {scanned} was scanned for job {job}: step \
                     stopped, both unaccounted for"
                ),
                None => format!(
                    "{device} reported no reading of the {kind} where {scanned} was scanned for \
                     job {job}: step stopped, {scanned} unaccounted for"
                ),
            },
        ),
        LedgerEvent::Reversal { reverses, reason } => {
            (None, format!("record {reverses} reversed: {reason}"))
        }
        LedgerEvent::Action { action } => (action.station().cloned(), action.describe()),
    })
}

impl Ledger {
    /// Traces a serial forward and backward: its lot, every custody session and its counters,
    /// the booklet or patch it is bound to, the job, who printed, laminated, checked and
    /// dispatched it, on which device, when — or that it was never received, spoiled,
    /// destroyed or is missing.
    ///
    /// # Errors
    /// Storage errors or unreadable records. An unknown serial is `Ok(None)`.
    pub fn trace(&self, serial: &Serial) -> Result<Option<Trace>, LedgerError> {
        let Some(item) = self.item(serial)? else {
            return self.trace_unknown(serial);
        };
        let (partner, job, document_number) = match &item.state {
            ItemState::Applied(b) => (b.partner.clone(), Some(b.job), b.document_number.clone()),
            _ => (None, None, None),
        };
        let partner_item = match &partner {
            Some(p) => self.item(p)?,
            None => None,
        };
        // The partner's booklet data (document number) lives on the booklet.
        let document_number = match (&document_number, &partner_item, item.kind) {
            (None, Some(pi), ItemKind::Patch) => match &pi.state {
                ItemState::Applied(b) => b.document_number.clone(),
                _ => None,
            },
            _ => document_number,
        };
        let lot = self.lot(&item.lot)?;
        let mut steps: Vec<TraceStep> = Vec::new();
        // Records written before the index entries carried their step (an older ledger).
        let mut old: Vec<(u64, Serial)> = Vec::new();
        let lot_step = |l: &Lot, s: &Serial, steps: &mut Vec<TraceStep>| {
            steps.push(TraceStep {
                seq: l.seq,
                at: l.received_at,
                actor: l.received_by.clone(),
                serial: s.clone(),
                event: "lot_received".into(),
                station: None,
                detail: format!(
                    "{} lot {} ({}) received from {}",
                    l.kind, l.id, l.range, l.supplier
                ),
                reversed_by: None,
            });
        };
        if let Some(l) = &lot {
            lot_step(l, serial, &mut steps);
        }
        let partner_lot = match &partner_item {
            Some(pi) => self.lot(&pi.lot)?,
            None => None,
        };
        if let (Some(p), Some(pl)) = (&partner, &partner_lot) {
            lot_step(pl, p, &mut steps);
        }
        for s in std::iter::once(serial).chain(partner.as_ref()) {
            // One point read: the item's trace value, next to its state.
            if let Some(v) = self.store.state_get(&super::trace_key(s))? {
                let entries = super::trace_entries(&v).ok_or_else(|| {
                    LedgerError::Corrupt(format!("the trace value of {s} is truncated"))
                })?;
                for (seq, e) in entries {
                    let sv: StepValue = serde_json::from_slice(e).map_err(|e| {
                        LedgerError::Corrupt(format!("trace entry of record {seq}: {e}"))
                    })?;
                    steps.push(sv.step(seq, s.clone()));
                }
            }
            if !self.legacy_trace {
                continue;
            }
            // Records of a ledger written by an earlier version: serial index entries.
            let entries = self
                .store
                .index_scan_kv(&ix::prefix(ix::SERIAL, s.as_str().as_bytes()), MAX_ROWS)?;
            for (k, v) in entries {
                let seq = ix::seq_of(&k);
                if v.is_empty() {
                    old.push((seq, s.clone()));
                    continue;
                }
                let sv: StepValue = serde_json::from_slice(&v).map_err(|e| {
                    LedgerError::Corrupt(format!("trace entry of record {seq}: {e}"))
                })?;
                // An issue shows the opening of its session: operator, station and shift.
                if let Some(sess) = &sv.opening_of
                    && let Some((ok, ov)) = self
                        .store
                        .index_scan_kv(&ix::prefix(ix::OPENING, sess.as_str().as_bytes()), 1)?
                        .pop()
                {
                    let o: StepValue = serde_json::from_slice(&ov).map_err(|e| {
                        LedgerError::Corrupt(format!("opening entry of session {sess}: {e}"))
                    })?;
                    steps.push(o.step(ix::seq_of(&ok), s.clone()));
                }
                steps.push(sv.step(seq, s.clone()));
            }
        }
        old.sort();
        old.dedup_by_key(|w| w.0);
        let mut sessions = Sessions {
            l: self,
            cache: HashMap::new(),
        };
        for (seq, s) in old {
            let r = record(self, seq)?;
            // Session openings are not indexed by serial: add the opening of each session the
            // item passed through, so the trace names the station's operator and shift.
            if let LedgerEvent::ItemsIssued { session, .. } = &r.event
                && let Some(sess) = self.session(session)?
            {
                let o = record(self, sess.opened_seq)?;
                let (station, detail) = describe(&o, &mut |id| sessions.station(id))?;
                steps.push(TraceStep {
                    seq: o.seq,
                    at: o.at,
                    actor: o.actor.clone(),
                    serial: s.clone(),
                    event: o.event.name().into(),
                    station,
                    detail,
                    reversed_by: None,
                });
            }
            let (station, detail) = describe(&r, &mut |id| sessions.station(id))?;
            steps.push(TraceStep {
                seq,
                at: r.at,
                actor: r.actor.clone(),
                serial: s,
                event: r.event.name().into(),
                station,
                detail,
                reversed_by: None,
            });
        }
        let first = steps.iter().map(|s| s.seq).min().unwrap_or(0);
        // A record naming both items is shown once (under the serial that sorts first).
        steps.sort_by(|a, b| (a.seq, a.serial.as_str()).cmp(&(b.seq, b.serial.as_str())));
        steps.dedup_by_key(|s| s.seq);
        // One range scan of the reversal index covers every step (reversals are rare).
        let first = steps.first().map_or(first, |s| s.seq.min(first));
        let mut lo = ix::prefix(ix::REVERSAL, &first.to_be_bytes());
        lo.pop();
        let last = steps.last().map_or(0, |s| s.seq);
        let mut hi = ix::prefix(ix::REVERSAL, &(last + 1).to_be_bytes());
        hi.pop();
        for k in self.store.index_range(&lo, &hi, MAX_ROWS)? {
            let p = ix::REVERSAL.len() + 1;
            let reversed = crate::store::key_u64(&k[p..p + 8]);
            if let Ok(i) = steps.binary_search_by_key(&reversed, |s| s.seq) {
                steps[i].reversed_by.get_or_insert(ix::seq_of(&k));
            }
        }
        Ok(Some(Trace {
            serial: serial.clone(),
            kind: Some(item.kind),
            state: item.state.describe(),
            lot,
            partner,
            job,
            document_number,
            steps,
        }))
    }

    /// The trace of a serial no lot brought in: the records that named it (refused attempts,
    /// alerts), or `None` when nothing ever did.
    fn trace_unknown(&self, serial: &Serial) -> Result<Option<Trace>, LedgerError> {
        let Some(v) = self.store.state_get(&super::trace_key(serial))? else {
            return Ok(None);
        };
        let entries = super::trace_entries(&v).ok_or_else(|| {
            LedgerError::Corrupt(format!("the trace value of {serial} is truncated"))
        })?;
        let mut steps = Vec::new();
        for (seq, e) in entries {
            let sv: StepValue = serde_json::from_slice(e)
                .map_err(|e| LedgerError::Corrupt(format!("trace entry of record {seq}: {e}")))?;
            steps.push(sv.step(seq, serial.clone()));
        }
        if steps.is_empty() {
            return Ok(None);
        }
        steps.sort_by_key(|s| s.seq);
        Ok(Some(Trace {
            serial: serial.clone(),
            kind: None,
            state: "never received into the vault: named only by refused attempts (or a device's \
                    reading)"
                .into(),
            lot: None,
            partner: None,
            job: None,
            document_number: None,
            steps,
        }))
    }

    /// The patch on a booklet, if it was laminated.
    ///
    /// # Errors
    /// Storage errors.
    pub fn patch_of(&self, booklet: &Serial) -> Result<Option<Serial>, LedgerError> {
        Ok(match self.item(booklet)?.map(|i| (i.kind, i.state)) {
            Some((ItemKind::Booklet, ItemState::Applied(b))) => b.partner,
            _ => None,
        })
    }

    /// The reversal of a record, if one was recorded.
    ///
    /// # Errors
    /// Storage errors.
    pub fn reversal_of(&self, seq: u64) -> Result<Option<u64>, LedgerError> {
        Ok(seqs(self, ix::REVERSAL, &seq.to_be_bytes())?
            .first()
            .copied())
    }

    /// Records by operator (made, counted, witnessed or signed), by station, by time range and by
    /// kind (any combination, or none), at most `limit`, however many records that takes to read
    /// (for the console and the controller's own checks; the API reads
    /// [`Ledger::records_page`] with a budget).
    ///
    /// # Errors
    /// Storage errors.
    pub fn records(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Record>, LedgerError> {
        Ok(self.records_page(filter, limit, usize::MAX)?.records)
    }

    /// A page of records by operator, station, time range and kind: at most `limit`, after
    /// examining at most `budget` records (or index entries), oldest first from just after
    /// `filter.after`, or newest first from just before `filter.before` when it is given.
    ///
    /// The order of the page is that of the index it is read from, and the cursor stands for a
    /// place in that order: by operator or station (that index; with both, the operator's, each
    /// entry looked up in the station's) and with no filter but the kind (the journal), the order
    /// of sequence numbers; by time alone, the time index's own order, by time and then by
    /// sequence number (a record appended later may carry an earlier time), the cursor being the
    /// place of that record. Either way [`RecordsPage::next`] is the last record examined, so a
    /// page cut short by the budget resumes where it stopped, and no record is passed over.
    ///
    /// # Errors
    /// Storage errors.
    pub fn records_page(
        &self,
        filter: &RecordFilter,
        limit: usize,
        budget: usize,
    ) -> Result<RecordsPage, LedgerError> {
        let newest_first = filter.before.is_some();
        let (lo, hi) = filter.seq_bounds();
        let keep = |r: &Record| {
            filter.from.is_none_or(|f| r.at >= f)
                && filter.to.is_none_or(|t| r.at < t)
                && filter.kind.as_deref().is_none_or(|k| r.event.is_kind(k))
        };
        let mut out = Vec::new();
        let (mut examined, mut last, mut failed) = (0usize, None::<u64>, None::<LedgerError>);
        // One candidate, in the page's order (`probe`: whether the other index has it too);
        // false once the page is full or the budget spent.
        let mut visit = |seq: u64, probe: Option<&[u8]>| -> bool {
            examined += 1;
            last = Some(seq);
            let mut step = || -> Result<(), LedgerError> {
                if let Some(key) = probe
                    && !self.store.index_contains(key)?
                {
                    return Ok(());
                }
                let r = record(self, seq)?;
                if keep(&r) {
                    out.push(r);
                }
                Ok(())
            };
            if let Err(e) = step() {
                failed = Some(e);
                return false;
            }
            out.len() < limit && examined < budget
        };
        let mut stopped = false;
        let indexed = match (&filter.operator, &filter.station) {
            (Some(op), st) => Some((ix::OPERATOR, op.as_str(), st.as_ref())),
            (None, Some(st)) => Some((ix::STATION, st.as_str(), None)),
            (None, None) => None,
        };
        if let Some((tag, id, also_at)) = indexed {
            let prefix = ix::prefix(tag, id.as_bytes());
            self.store
                .postings_each(&prefix, lo, hi, newest_first, |k| {
                    let seq = ix::seq_of(k);
                    let probe = also_at.map(|st| ix::key(ix::STATION, st.as_str().as_bytes(), seq));
                    stopped = !visit(seq, probe.as_deref());
                    !stopped
                })?;
        } else if filter.from.is_some() || filter.to.is_some() {
            let bound = |t: Option<DateTime<Utc>>, none: [u8; 8]| {
                let mut k = ix::prefix(ix::TIME, &t.map(ix::time).unwrap_or(none));
                k.truncate(k.len() - 1);
                k
            };
            let (mut from, mut to) = (bound(filter.from, [0; 8]), bound(filter.to, [0xff; 8]));
            // The cursor's place in the time index: its record's time, then its seq. Seq 0 is
            // before the first record; a seq past the head, after the last.
            let place = |seq: u64| -> Result<Option<Vec<u8>>, LedgerError> {
                Ok(self
                    .record(seq)?
                    .map(|r| ix::key(ix::TIME, &ix::time(r.at), seq)))
            };
            let empty = match (filter.after, filter.before) {
                (Some(0), _) | (None, None) => false,
                (Some(a), _) => match place(a)? {
                    // Just after that record's key: its key and a byte more.
                    Some(mut k) => {
                        k.push(0);
                        from = from.max(k);
                        false
                    }
                    None => true,
                },
                (None, Some(0)) => true,
                (None, Some(b)) => {
                    if let Some(k) = place(b)? {
                        to = to.min(k);
                    }
                    false
                }
            };
            if !empty {
                self.store.index_range_each(&from, &to, newest_first, |k| {
                    stopped = !visit(ix::seq_of(k), None);
                    !stopped
                })?;
            }
        } else {
            // Sequence numbers run from 1 to the head without gaps.
            let hi = hi.min(self.head().saturating_add(1));
            let mut seqs: Box<dyn Iterator<Item = u64>> = if newest_first {
                Box::new((lo..hi).rev())
            } else {
                Box::new(lo..hi)
            };
            stopped = !seqs.all(|seq| visit(seq, None));
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(RecordsPage {
            records: out,
            next: if stopped { last } else { None },
            complete: !stopped,
        })
    }

    /// The lots received during a shift's hours, and the lots its sessions drew items from, in
    /// the order of their reception.
    fn shift_lots(
        &self,
        shift: &ShiftId,
        sessions: &[SessionReport],
    ) -> Result<Vec<LotId>, LedgerError> {
        let mut lots: Vec<(u64, LotId)> = Vec::new();
        let prefix = [ix::LOT, &[0]].concat();
        let window = shift.window();
        let mut used: std::collections::BTreeSet<LotId> = std::collections::BTreeSet::new();
        for s in sessions {
            for serial in s.issued_serials() {
                if let Some(item) = self.item(serial)? {
                    used.insert(item.lot);
                }
            }
        }
        for k in self.store.index_scan(&prefix, MAX_ROWS)? {
            let seq = ix::seq_of(&k);
            let id = LotId(
                String::from_utf8_lossy(&k[prefix.len()..k.len().saturating_sub(9)]).into_owned(),
            );
            let received_then = match window {
                Some((start, end)) => {
                    let r = record(self, seq)?;
                    r.at >= start && r.at < end
                }
                None => false,
            };
            if received_then || used.contains(&id) {
                lots.push((seq, id));
            }
        }
        lots.sort();
        // Once each, at its first receipt (a lot may be in the index twice).
        let mut seen = std::collections::BTreeSet::new();
        Ok(lots
            .into_iter()
            .filter(|(_, id)| seen.insert(id.clone()))
            .map(|(_, id)| id)
            .collect())
    }

    /// Reconciliation of one session, every session of a shift, or one lot (roll or box).
    ///
    /// # Errors
    /// Storage errors. An unknown session, shift or lot gives an empty report.
    pub fn reconcile(&self, scope: &Scope) -> Result<Reconciliation, LedgerError> {
        match scope {
            Scope::Session(id) => Ok(Reconciliation {
                scope: format!("session {id}"),
                sessions: self.session_report(id)?.into_iter().collect(),
                lots: Vec::new(),
            }),
            Scope::Shift(shift) => {
                let mut sessions = Vec::new();
                for k in self
                    .store
                    .index_scan(&ix::prefix(ix::SHIFT, shift.as_str().as_bytes()), MAX_ROWS)?
                {
                    let prefix_len = ix::prefix(ix::SHIFT, shift.as_str().as_bytes()).len();
                    let id = SessionId(String::from_utf8_lossy(&k[prefix_len..]).into_owned());
                    sessions.extend(self.session_report(&id)?);
                }
                let mut lots = Vec::new();
                for id in self.shift_lots(shift, &sessions)? {
                    lots.extend(self.lot_report(&id)?);
                }
                Ok(Reconciliation {
                    scope: format!("shift {shift}"),
                    sessions,
                    lots,
                })
            }
            Scope::Lot(lot) => Ok(Reconciliation {
                scope: format!("lot {lot}"),
                sessions: Vec::new(),
                lots: self.lot_report(lot)?.into_iter().collect(),
            }),
        }
    }

    fn session_report(&self, id: &SessionId) -> Result<Option<SessionReport>, LedgerError> {
        let Some(s) = self.session(id)? else {
            return Ok(None);
        };
        let mut outcome: BTreeMap<Serial, &'static str> = BTreeMap::new();
        for seq in seqs(self, ix::SESSION, id.as_str().as_bytes())? {
            let r = record(self, seq)?;
            match r.event {
                LedgerEvent::ItemsIssued { serials, .. } => {
                    for x in serials {
                        outcome.insert(x, "held");
                    }
                }
                LedgerEvent::BookletPrinted { booklet: x, .. }
                | LedgerEvent::PatchApplied { patch: x, .. } => {
                    outcome.insert(x, "applied");
                }
                LedgerEvent::ItemSpoiled { serial: x, .. } => {
                    outcome.insert(x, "spoiled");
                }
                LedgerEvent::ItemReportedMissing { serial: x, .. } => {
                    outcome.insert(x, "missing");
                }
                LedgerEvent::DeviceReadMismatch { scanned, read, .. } => {
                    // Only the items this session used or held are its to report.
                    for x in std::iter::once(scanned).chain(read) {
                        if outcome.contains_key(&x) {
                            outcome.insert(x, "suspect");
                        }
                    }
                }
                LedgerEvent::ItemsReturned { serials, .. } => {
                    for x in serials {
                        outcome.insert(x, "returned");
                    }
                }
                LedgerEvent::SessionClosed {
                    discrepancy: Some(d),
                    ..
                } => {
                    for x in d.missing {
                        outcome.insert(x, "missing");
                    }
                }
                _ => {}
            }
        }
        // What became of what it used or spoiled: the item's state now (a used item spoiled
        // later, a spoil approved, rejected or destroyed).
        for (serial, o) in &mut outcome {
            if !matches!(*o, "applied" | "spoiled") {
                continue;
            }
            if let Some(item) = self.item(serial)? {
                *o = match item.state {
                    ItemState::Applied(_) => "applied",
                    ItemState::SpoilPending { .. } => "spoiled_pending",
                    ItemState::Spoiled { .. } => "spoiled_approved",
                    ItemState::Destroyed { .. } => "destroyed",
                    ItemState::Missing { .. } => "missing",
                    ItemState::Suspect { .. } => "suspect",
                    ItemState::InVault | ItemState::Issued { .. } => o,
                };
            }
        }
        let pick = |what: &str| -> Vec<Serial> {
            outcome
                .iter()
                .filter(|(_, o)| **o == what)
                .map(|(s, _)| s.clone())
                .collect()
        };
        Ok(Some(SessionReport {
            balanced: s.is_balanced() && s.discrepancy.is_empty(),
            open: s.is_open(),
            applied: pick("applied"),
            spoiled: {
                let mut v = pick("spoiled");
                v.extend(pick("spoiled_pending"));
                v.extend(pick("spoiled_approved"));
                v.extend(pick("destroyed"));
                v.sort();
                v
            },
            spoiled_pending: pick("spoiled_pending"),
            spoiled_approved: pick("spoiled_approved"),
            destroyed: pick("destroyed"),
            set_aside: s.set_aside.clone(),
            returned: pick("returned"),
            missing: pick("missing"),
            suspect: pick("suspect"),
            unaccounted: s.held.clone(),
            session: s,
        }))
    }

    fn lot_report(&self, id: &LotId) -> Result<Option<LotReport>, LedgerError> {
        let Some(lot) = self.lot(id)? else {
            return Ok(None);
        };
        let mut r = LotReport {
            lot: lot.clone(),
            in_vault: Vec::new(),
            issued: Vec::new(),
            applied: 0,
            spoiled: Vec::new(),
            spoiled_pending: Vec::new(),
            spoiled_approved: Vec::new(),
            destroyed: Vec::new(),
            missing: Vec::new(),
            suspect: Vec::new(),
        };
        for serial in lot.range.serials() {
            // What `item` answers, without looking the lot up again for each serial.
            let Some(item) = self.item_of_lot(&serial, &lot)? else {
                r.missing.push(serial);
                continue;
            };
            match item.state {
                ItemState::InVault => r.in_vault.push(serial),
                ItemState::Issued { .. } => r.issued.push(serial),
                ItemState::Applied(_) => r.applied += 1,
                ItemState::SpoilPending { .. } => {
                    r.spoiled.push(serial.clone());
                    r.spoiled_pending.push(serial);
                }
                ItemState::Spoiled { .. } => {
                    r.spoiled.push(serial.clone());
                    r.spoiled_approved.push(serial);
                }
                ItemState::Destroyed { .. } => r.destroyed.push(serial),
                ItemState::Missing { .. } => r.missing.push(serial),
                ItemState::Suspect { .. } => r.suspect.push(serial),
            }
        }
        Ok(Some(r))
    }

    /// Every item spoiled and not yet destroyed: reported and awaiting a supervisor's decision
    /// ([`ItemState::SpoilPending`]) or spoiled and awaiting witnessed destruction
    /// ([`ItemState::Spoiled`]), in the order of their spoil records. Reads the spoil index
    /// (one entry per spoil record ever) and each item's state: spoils are rare (well under
    /// 1 % of items), so this stays small beside the ledger. Spoils recorded by versions before
    /// the index are not listed.
    ///
    /// # Errors
    /// Storage errors.
    pub fn spoilage(&self) -> Result<Vec<Item>, LedgerError> {
        let mut entries: Vec<(u64, Serial)> = Vec::new();
        for k in self
            .store
            .index_scan(&[ix::SPOILED, &[0]].concat(), MAX_ROWS)?
        {
            let serial_bytes = &k[ix::SPOILED.len() + 1..k.len().saturating_sub(9)];
            let serial = Serial(String::from_utf8_lossy(serial_bytes).into_owned());
            entries.push((ix::seq_of(&k), serial));
        }
        entries.sort();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (_, serial) in entries {
            if !seen.insert(serial.clone()) {
                continue;
            }
            if let Some(item) = self.item(&serial)?
                && matches!(
                    item.state,
                    ItemState::SpoilPending { .. } | ItemState::Spoiled { .. }
                )
            {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// The destruction register: every destruction, with serials, witnesses, method and
    /// certificate.
    ///
    /// # Errors
    /// Storage errors.
    pub fn destruction_register(&self) -> Result<Vec<Record>, LedgerError> {
        seqs(self, ix::DESTROYED, &[])?
            .into_iter()
            .map(|s| record(self, s))
            .collect()
    }

    /// Every item reported missing (by a report or a signed session discrepancy).
    ///
    /// # Errors
    /// Storage errors.
    pub fn missing(&self) -> Result<Vec<MissingItem>, LedgerError> {
        let mut out = Vec::new();
        for k in self
            .store
            .index_scan(&[ix::MISSING, &[0]].concat(), MAX_ROWS)?
        {
            let seq = ix::seq_of(&k);
            let serial_bytes = &k[ix::MISSING.len() + 1..k.len().saturating_sub(9)];
            let serial = Serial(String::from_utf8_lossy(serial_bytes).into_owned());
            let Some(item) = self.item(&serial)? else {
                continue;
            };
            let r = record(self, seq)?;
            out.push(MissingItem {
                last_custody: item.custody.last().cloned(),
                item,
                reported_at: r.at,
                seq,
            });
        }
        Ok(out)
    }
}

/// A page of [`Ledger::records_page`]: the records, and where the search stopped.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordsPage {
    /// The records that match, in the page's order (oldest first, or newest first with
    /// `before`).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
    /// The next page's cursor, to pass as `after` (oldest first) or `before` (newest first):
    /// the last record examined, which is the last record of a full page or the record where
    /// the request's share of reading ran out (a page can then be short, even empty, and not
    /// the last). `null` when the search is complete.
    pub next: Option<u64>,
    /// The search reached the end of the range: there is no next page.
    pub complete: bool,
}

/// Filters of [`Ledger::records`].
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Records this person made, counted, witnessed or signed.
    pub operator: Option<OperatorId>,
    /// Records at this station.
    pub station: Option<StationId>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Of this kind: one of [`super::event::RECORD_KINDS`].
    pub kind: Option<String>,
    /// After this record (the cursor of the next page, oldest first).
    pub after: Option<u64>,
    /// Before this record (the cursor of the next page, newest first).
    pub before: Option<u64>,
}

impl RecordFilter {
    /// The sequence numbers the cursors allow, `[lo, hi)`.
    fn seq_bounds(&self) -> (u64, u64) {
        (
            self.after.map_or(1, |a| a.saturating_add(1)).max(1),
            self.before.unwrap_or(u64::MAX),
        )
    }
}

/// What to reconcile.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One custody session.
    Session(SessionId),
    /// Every session of a shift.
    Shift(ShiftId),
    /// One lot (roll or box).
    Lot(LotId),
}

/// Reconciliation of one session, serial by serial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReport {
    /// The session (station, operator, shift, counts).
    pub session: Session,
    /// Still open.
    pub open: bool,
    /// Every issued item applied, spoiled or returned, with no discrepancy.
    pub balanced: bool,
    /// Serials used.
    pub applied: Vec<Serial>,
    /// Serials spoiled (while held or after use), whatever came of it since: the union of
    /// `spoiled_pending`, `spoiled_approved` and `destroyed`.
    pub spoiled: Vec<Serial>,
    /// Used serials reported spoiled, awaiting a supervisor's approval.
    #[serde(default)]
    pub spoiled_pending: Vec<Serial>,
    /// Spoiled serials awaiting witnessed destruction (approved by a supervisor, or spoiled on
    /// the line's evidence: a device fault, a QC reading).
    #[serde(default)]
    pub spoiled_approved: Vec<Serial>,
    /// Spoiled serials destroyed before two witnesses.
    #[serde(default)]
    pub destroyed: Vec<Serial>,
    /// Held serials set aside after a roll skip (still held: also in `unaccounted`).
    #[serde(default)]
    pub set_aside: Vec<Serial>,
    /// Serials returned.
    pub returned: Vec<Serial>,
    /// Serials missing (reported, or in the closing discrepancy).
    pub missing: Vec<Serial>,
    /// Serials a device's reader contradicted: scanned but another (or nothing) was read, or
    /// read without being scanned ([`ItemState::Suspect`]).
    pub suspect: Vec<Serial>,
    /// Serials still held (an open session, or not yet accounted for).
    pub unaccounted: Vec<Serial>,
}

impl SessionReport {
    /// Every serial the session was issued, whatever came of it.
    fn issued_serials(&self) -> impl Iterator<Item = &Serial> {
        self.applied
            .iter()
            .chain(&self.spoiled)
            .chain(&self.returned)
            .chain(&self.missing)
            .chain(&self.suspect)
            .chain(&self.unaccounted)
    }
}

/// Reconciliation of one lot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LotReport {
    /// The lot.
    pub lot: Lot,
    /// In the vault.
    pub in_vault: Vec<Serial>,
    /// Held by sessions.
    pub issued: Vec<Serial>,
    /// Number used.
    pub applied: u64,
    /// Spoiled, awaiting destruction or a decision: `spoiled_pending` and `spoiled_approved`.
    pub spoiled: Vec<Serial>,
    /// Reported spoiled, awaiting a supervisor's approval.
    #[serde(default)]
    pub spoiled_pending: Vec<Serial>,
    /// Spoiled (approved, or on the line's evidence), awaiting witnessed destruction.
    #[serde(default)]
    pub spoiled_approved: Vec<Serial>,
    /// Destroyed.
    pub destroyed: Vec<Serial>,
    /// Missing.
    pub missing: Vec<Serial>,
    /// Unaccounted for: a device's reader contradicted their record.
    pub suspect: Vec<Serial>,
}

/// A reconciliation report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconciliation {
    /// What was reconciled.
    pub scope: String,
    /// Per session.
    pub sessions: Vec<SessionReport>,
    /// Per lot.
    pub lots: Vec<LotReport>,
}

/// An item reported missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingItem {
    /// The item.
    pub item: Item,
    /// When it was reported.
    pub reported_at: DateTime<Utc>,
    /// The record.
    pub seq: u64,
    /// The last person in its custody chain.
    pub last_custody: Option<OperatorId>,
}

/// One row of INTERPOL's Stolen and Lost Travel Documents database, for a missing blank.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SltdRow {
    /// The document (booklet) or item serial number.
    pub document_number: String,
    /// Document type: a blank passport booklet, or a security laminate of a passport.
    pub document_type: String,
    /// ISO 3166-1 alpha-3 code of the issuing state.
    pub issuing_state: String,
    /// SLTD status: a blank document missing from production is a stolen blank.
    pub status: String,
    /// The country where it was lost or stolen.
    pub country_of_loss: String,
    /// When it was reported missing (date).
    pub date_of_loss: String,
}

impl SltdRow {
    /// The SLTD row of a missing item.
    pub fn of(m: &MissingItem, issuing_state: &str) -> SltdRow {
        SltdRow {
            document_number: m.item.serial.to_string(),
            document_type: match m.item.kind {
                ItemKind::Booklet => "PASSPORT BLANK".into(),
                ItemKind::Patch => "PASSPORT SECURITY LAMINATE".into(),
            },
            issuing_state: issuing_state.into(),
            status: "STOLEN BLANK".into(),
            country_of_loss: issuing_state.into(),
            date_of_loss: m.reported_at.format("%Y-%m-%d").to_string(),
        }
    }

    /// The CSV header matching [`SltdRow::csv`].
    pub const CSV_HEADER: &'static str =
        "document_number,document_type,issuing_state,status,country_of_loss,date_of_loss";

    /// The row as CSV (fields never contain commas or quotes: serials and fixed words).
    pub fn csv(&self) -> String {
        [
            &self.document_number,
            &self.document_type,
            &self.issuing_state,
            &self.status,
            &self.country_of_loss,
            &self.date_of_loss,
        ]
        .iter()
        .map(|f| f.replace([',', '"', '\n'], " "))
        .collect::<Vec<_>>()
        .join(",")
    }
}
