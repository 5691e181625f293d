//! What the ledger records: accountable items, custody sessions, and the events between them.
//!
//! Records carry booklet serials, patch serials and document numbers only: never a name, a date
//! of birth or any other passport-holder data, so they can be kept for the life of the passports.

use std::fmt;

use chrono::{DateTime, Utc};
use hallctl_jobs::job::{Destination, DeviceId, JobId, OperatorId, StationId};
use serde::{Deserialize, Serialize};

hallctl_jobs::string_id!(
    /// The serial number of an accountable item: a booklet (`BK-9001234`) or a patch (`0041200`).
    Serial
);
hallctl_jobs::string_id!(
    /// A lot: a box of booklets or a roll of patches (`R-77`).
    LotId
);
hallctl_jobs::string_id!(
    /// A custody session: one operator at one station during one shift.
    SessionId
);
hallctl_jobs::string_id!(
    /// A shift (`2026-11-21N`).
    ShiftId
);

impl ShiftId {
    /// The shift's hours, `[start, end)`, when the id is a date and a letter as the line names
    /// its shifts (A 06–14, B 14–22, C 22–06, dated by the day it starts); `None` for any other
    /// id (a session may be opened under a shift of another naming).
    pub fn window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let s = self.as_str();
        let (date, letter) = s.split_at_checked(s.len().checked_sub(1)?)?;
        let start_hour = match letter {
            "A" => 6,
            "B" => 14,
            "C" => 22,
            _ => return None,
        };
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let start = day.and_hms_opt(start_hour, 0, 0)?.and_utc();
        Some((start, start + chrono::Duration::hours(8)))
    }
}

impl Serial {
    /// The item's position in its lot: the number formed by the trailing digits.
    pub fn position(&self) -> Option<u64> {
        let digits = self.0.len() - self.0.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        self.0[self.0.len() - digits..].parse().ok()
    }
}

/// The kind of accountable item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A blank passport booklet.
    Booklet,
    /// A security laminate patch.
    Patch,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Booklet => "booklet",
            ItemKind::Patch => "patch",
        })
    }
}

/// A contiguous serial range: `prefix` followed by the number zero-padded to `width` digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialRange {
    /// Text before the number (`BK-`, or empty for patches).
    pub prefix: String,
    /// The first number.
    pub first: u64,
    /// The last number (inclusive).
    pub last: u64,
    /// Digits of the number, zero padded.
    pub width: usize,
}

impl SerialRange {
    /// Parses `0041200-0041349` or `BK-9001200-BK-9001299` (the second part may omit the prefix).
    pub fn parse(text: &str) -> Option<SerialRange> {
        let split = |s: &str| -> Option<(String, u64, usize)> {
            let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            let (p, n) = s.split_at(s.len() - digits);
            Some((p.to_string(), n.parse().ok()?, digits))
        };
        // The separator is the '-' after the first number.
        let first_end = text
            .char_indices()
            .find(|&(i, c)| c == '-' && text[..i].ends_with(|d: char| d.is_ascii_digit()))?
            .0;
        let (a, b) = (&text[..first_end], &text[first_end + 1..]);
        let (prefix, first, width) = split(a)?;
        let (p2, last, _) = split(b)?;
        if (!p2.is_empty() && p2 != prefix) || last < first {
            return None;
        }
        Some(SerialRange {
            prefix,
            first,
            last,
            width,
        })
    }

    /// Number of items.
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first) + 1
    }

    /// Never empty: a range holds at least its first serial.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The serials, in order.
    pub fn serials(&self) -> impl Iterator<Item = Serial> + '_ {
        (self.first..=self.last).map(move |n| self.serial(n))
    }

    /// The serial with number `n`.
    pub fn serial(&self, n: u64) -> Serial {
        Serial(format!("{}{:0w$}", self.prefix, n, w = self.width))
    }

    /// The number of `serial` in this range, when the range holds it: exactly what
    /// [`SerialRange::serial`] writes for a number from `first` to `last`.
    pub fn number_of(&self, serial: &Serial) -> Option<u64> {
        let digits = serial.as_str().strip_prefix(self.prefix.as_str())?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        ((self.first..=self.last).contains(&n) && self.serial(n) == *serial).then_some(n)
    }
}

impl fmt::Display for SerialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.serial(self.first), self.serial(self.last))
    }
}

/// A discrepancy accepted at session close: the serials that cannot be found, signed by a
/// supervisor other than the session's operator. Those items become "missing".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// Every serial still held by the session: the list must match exactly.
    pub missing: Vec<Serial>,
    /// The supervisor who signs the discrepancy.
    pub supervisor: OperatorId,
    /// The supervisor's statement.
    pub statement: String,
}

/// One ledger event. The actor (who made the record) is stored beside it in the [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// A box of booklets or a roll of patches entered the vault.
    LotReceived {
        /// The lot (box or roll).
        lot: LotId,
        /// Booklets or patches.
        kind: ItemKind,
        /// Who delivered it.
        supplier: String,
        /// The serials in it.
        range: SerialRange,
    },
    /// An operator opened a custody session at a station.
    SessionOpened {
        /// New session id.
        session: SessionId,
        /// The station.
        station: StationId,
        /// The operator who works there.
        operator: OperatorId,
        /// The shift.
        shift: ShiftId,
    },
    /// Items left the vault for a session, counted by two people.
    ItemsIssued {
        /// The receiving session.
        session: SessionId,
        /// The serials issued.
        serials: Vec<Serial>,
        /// The two distinct counters.
        counters: [OperatorId; 2],
    },
    /// A booklet was personalized (printed) for a job: bound to the job and document number.
    BookletPrinted {
        /// The booklet.
        booklet: Serial,
        /// The printing session (it must hold the booklet).
        session: SessionId,
        /// The job.
        job: JobId,
        /// The passport number printed in it.
        document_number: String,
        /// The printer.
        device: DeviceId,
    },
    /// A laminate patch was applied to a printed booklet.
    PatchApplied {
        /// The patch.
        patch: Serial,
        /// The laminating session (it must hold the patch).
        session: SessionId,
        /// The booklet it was applied to.
        booklet: Serial,
        /// The job (must be the booklet's).
        job: JobId,
        /// The laminator.
        device: DeviceId,
        /// Why a patch out of roll order was used; required for a skip, which raises an alert.
        skip_reason: Option<String>,
    },
    /// Quality control read the booklet back.
    QcChecked {
        /// The booklet.
        booklet: Serial,
        /// The job.
        job: JobId,
        /// The QC station.
        station: StationId,
        /// Whether the MRZ read back matched.
        passed: bool,
    },
    /// A finished booklet was packed for dispatch.
    Dispatched {
        /// The booklet.
        booklet: Serial,
        /// The job.
        job: JobId,
        /// The destination office.
        destination: Destination,
        /// The courier bag.
        bag: String,
    },
    /// An item was spoiled (defect, jam, failed QC).
    ItemSpoiled {
        /// The item.
        serial: Serial,
        /// The session that held it, if it was held.
        session: Option<SessionId>,
        /// Why.
        reason: String,
        /// Reported on an operator's word (a defect report): the item waits for a supervisor's
        /// [`LedgerEvent::SpoilageDecided`] (only a used item). Absent in older records.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        awaiting_approval: bool,
    },
    /// A supervisor decided reported spoilage with the items scanned in hand (every item of the
    /// report, and only them): approved, they are spoiled and wait for witnessed destruction
    /// (the supervisor joins their custody chain); rejected, they are back where they were. The
    /// supervisor (the record's actor) is never the one who reported them.
    SpoilageDecided {
        /// The serials the supervisor scanned.
        serials: Vec<Serial>,
        /// Approved (spoiled) or rejected.
        approved: bool,
        /// The supervisor's note.
        note: String,
    },
    /// Unused items went back to the vault, counted by two people.
    ItemsReturned {
        /// The returning session.
        session: SessionId,
        /// The serials.
        serials: Vec<Serial>,
        /// The two distinct counters.
        counters: [OperatorId; 2],
    },
    /// A session was closed.
    SessionClosed {
        /// The session.
        session: SessionId,
        /// Required when the session does not balance.
        discrepancy: Option<Discrepancy>,
    },
    /// Spoiled items were destroyed, witnessed by two people outside their custody chains.
    ItemsDestroyed {
        /// The destruction batch.
        batch: String,
        /// The serials.
        serials: Vec<Serial>,
        /// The two distinct witnesses.
        witnesses: [OperatorId; 2],
        /// How (shredding, incineration).
        method: String,
        /// The destruction certificate number.
        certificate: String,
    },
    /// An item in the vault or a session could not be found.
    ItemReportedMissing {
        /// The item.
        serial: Serial,
        /// Circumstances.
        note: String,
    },
    /// The session's operator left the station (signed out, token expired, signed out by a
    /// supervisor) while it still held items: it stays open, holding them, flagged abandoned,
    /// and the supervisor is alerted with every serial.
    SessionAbandoned {
        /// The session.
        session: SessionId,
        /// Every serial it still held (exactly: the record names them all).
        held: Vec<Serial>,
        /// How the operator left.
        reason: String,
    },
    /// Serials skipped on a roll are set aside in their session: still held by it and
    /// accountable (to be returned to the vault or spoiled and destroyed), but never used, so
    /// the roll goes on from the next serial.
    ItemsSetAside {
        /// The session holding them.
        session: SessionId,
        /// The serials.
        serials: Vec<Serial>,
        /// Why (the roll skip's reason).
        reason: String,
    },
    /// A device's own reader contradicted the record of a step (issue 16): the laminator's patch
    /// reader or the printer's booklet read-back named another item than the one scanned, or
    /// nothing. The step is not confirmed; the scanned item becomes
    /// [`Suspect`](super::custody::ItemState::Suspect) (not where the record put it), and so does
    /// the item read, when it is a known serial that was not already used or destroyed (it was
    /// fed without being scanned). Recorded by the line.
    DeviceReadMismatch {
        /// The printer or laminator whose reader disagreed.
        device: DeviceId,
        /// The job of the step.
        job: JobId,
        /// The session that scanned the item.
        session: SessionId,
        /// What the operator scanned (recorded as printed or applied before the device ran).
        scanned: Serial,
        /// What the device read; `None`: it reported no reading (the step is unverified).
        read: Option<Serial>,
        /// Booklet (printer) or patch (laminator).
        kind: ItemKind,
    },
    /// A correction: marks an earlier record as reversed. The earlier record stays in the chain;
    /// custody is never rewound (a mis-recorded item is corrected with a forward event such as a
    /// spoil), so a reversal cannot free a patch for a second use.
    Reversal {
        /// The reversed record.
        reverses: u64,
        /// Why.
        reason: String,
    },
    /// A controller action that moves no item (job intake, assignments, supervisors' and
    /// administrators' requests): see [`super::action`].
    Action {
        /// What was done.
        action: super::action::ControlAction,
    },
}

/// Every name [`LedgerEvent::name`] gives (an action's kind for controller actions), and
/// `action` for every controller action: the kinds an auditor filters records by.
pub const RECORD_KINDS: &[&str] = &[
    "lot_received",
    "session_opened",
    "items_issued",
    "booklet_printed",
    "patch_applied",
    "qc_checked",
    "dispatched",
    "item_spoiled",
    "spoilage_decided",
    "items_returned",
    "session_closed",
    "items_destroyed",
    "item_reported_missing",
    "session_abandoned",
    "items_set_aside",
    "device_read_mismatch",
    "reversal",
    "action",
    "jobs_submitted",
    "assigned",
    "bag_closed",
    "job_changed",
    "job_reprioritised",
    "device_commanded",
    "user_changed",
    "signed_in",
    "signed_out",
    "alert_raised",
    "alert_cleared",
    "alert_acknowledged",
    "alert_repeated",
    "alert_resolved",
    "refused",
];

impl LedgerEvent {
    /// The event's name as stored (`patch_applied`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            LedgerEvent::LotReceived { .. } => "lot_received",
            LedgerEvent::SessionOpened { .. } => "session_opened",
            LedgerEvent::ItemsIssued { .. } => "items_issued",
            LedgerEvent::BookletPrinted { .. } => "booklet_printed",
            LedgerEvent::PatchApplied { .. } => "patch_applied",
            LedgerEvent::QcChecked { .. } => "qc_checked",
            LedgerEvent::Dispatched { .. } => "dispatched",
            LedgerEvent::ItemSpoiled { .. } => "item_spoiled",
            LedgerEvent::SpoilageDecided { .. } => "spoilage_decided",
            LedgerEvent::ItemsReturned { .. } => "items_returned",
            LedgerEvent::SessionClosed { .. } => "session_closed",
            LedgerEvent::ItemsDestroyed { .. } => "items_destroyed",
            LedgerEvent::ItemReportedMissing { .. } => "item_reported_missing",
            LedgerEvent::SessionAbandoned { .. } => "session_abandoned",
            LedgerEvent::ItemsSetAside { .. } => "items_set_aside",
            LedgerEvent::DeviceReadMismatch { .. } => "device_read_mismatch",
            LedgerEvent::Reversal { .. } => "reversal",
            LedgerEvent::Action { action } => action.name(),
        }
    }

    /// The job a custody step of the event belongs to (a print, a lamination, a QC reading, a
    /// dispatch, a reader's mismatch); `None` for the rest.
    pub fn job(&self) -> Option<JobId> {
        match self {
            LedgerEvent::BookletPrinted { job, .. }
            | LedgerEvent::PatchApplied { job, .. }
            | LedgerEvent::QcChecked { job, .. }
            | LedgerEvent::Dispatched { job, .. }
            | LedgerEvent::DeviceReadMismatch { job, .. } => Some(*job),
            _ => None,
        }
    }

    /// Whether the record is of this kind (one of [`RECORD_KINDS`]): its event's name, or
    /// `action` for any controller action.
    pub fn is_kind(&self, kind: &str) -> bool {
        self.name() == kind || (kind == "action" && matches!(self, LedgerEvent::Action { .. }))
    }
}

/// One journal record: the canonical body that is hashed into the chain.
///
/// Field order is fixed by the struct and every collection is a `Vec`, so serde_json produces the
/// same bytes for the same record on every machine: these bytes are what the chain signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When it was recorded (UTC).
    pub at: DateTime<Utc>,
    /// Who recorded it (authenticated operator or supervisor).
    pub actor: OperatorId,
    /// What happened.
    pub event: LedgerEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_ranges_parse_as_written_on_boxes_and_rolls() {
        let cases = [
            ("0041200-0041349", Some(("", 41200, 41349, 7))),
            ("BK-9001200-BK-9001299", Some(("BK-", 9001200, 9001299, 7))),
            ("BK-9001200-9001299", Some(("BK-", 9001200, 9001299, 7))),
            ("0041349-0041200", None),
            ("BK-1-XX-2", None),
            ("nothing", None),
        ];
        for (text, want) in cases {
            let got =
                SerialRange::parse(text).map(|r| (r.prefix.clone(), r.first, r.last, r.width));
            assert_eq!(
                got,
                want.map(|(p, f, l, w)| (p.to_string(), f, l, w)),
                "{text}"
            );
        }
        let r = SerialRange::parse("0041200-0041202").expect("range");
        let serials: Vec<String> = r.serials().map(|s| s.0).collect();
        assert_eq!(serials, ["0041200", "0041201", "0041202"]);
        assert_eq!(r.len(), 3);
    }

    /// The kinds an auditor filters by are exactly the names records are given: read off the
    /// two `name` functions, so a new event or action cannot be left out of the filter.
    #[test]
    fn every_name_of_an_event_or_an_action_is_a_kind_to_filter_by() {
        let mut names = Vec::new();
        for src in [include_str!("event.rs"), include_str!("action.rs")] {
            let body = src
                .split("pub fn name(&self) -> &'static str {")
                .nth(1)
                .and_then(|b| b.split("\n    }\n").next())
                .expect("a name function");
            for arm in body.split("=> \"").skip(1) {
                names.push(arm.split('"').next().expect("a name").to_string());
            }
        }
        assert!(names.len() > 20, "{names:?}");
        let mut kinds: Vec<&str> = RECORD_KINDS
            .iter()
            .copied()
            .filter(|k| *k != "action")
            .collect();
        let mut named: Vec<&str> = names.iter().map(String::as_str).collect();
        kinds.sort_unstable();
        named.sort_unstable();
        assert_eq!(kinds, named);
    }

    #[test]
    fn a_shift_id_names_its_eight_hours() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().expect("time");
        let cases = [
            (
                "2026-11-21A",
                Some(("2026-11-21T06:00:00Z", "2026-11-21T14:00:00Z")),
            ),
            (
                "2026-11-21B",
                Some(("2026-11-21T14:00:00Z", "2026-11-21T22:00:00Z")),
            ),
            (
                "2026-11-21C",
                Some(("2026-11-21T22:00:00Z", "2026-11-22T06:00:00Z")),
            ),
            ("2026-11-21N", None),
            ("N", None),
            ("", None),
            ("2026-13-01A", None),
        ];
        for (id, want) in cases {
            assert_eq!(
                ShiftId::new(id).window(),
                want.map(|(a, b)| (at(a), at(b))),
                "{id}"
            );
        }
    }

    #[test]
    fn a_serial_knows_its_position_in_the_roll() {
        assert_eq!(Serial::new("0041207").position(), Some(41207));
        assert_eq!(Serial::new("BK-9001240").position(), Some(9001240));
        assert_eq!(Serial::new("BK-").position(), None);
    }

    #[test]
    fn the_canonical_body_starts_with_the_sequence_number() {
        let r = Record {
            seq: 42,
            at: DateTime::from_timestamp(0, 0).expect("epoch"),
            actor: OperatorId::new("S"),
            event: LedgerEvent::Reversal {
                reverses: 1,
                reason: "typo".into(),
            },
        };
        let body = serde_json::to_string(&r).expect("json");
        assert!(
            body.starts_with(
                r#"{"seq":42,"at":"1970-01-01T00:00:00Z","actor":"S","event":{"type":"reversal""#
            ),
            "{body}"
        );
    }
}
