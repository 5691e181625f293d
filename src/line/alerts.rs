//! Alerts: what the line raises for the shift supervisor and the monitoring room.
//!
//! # Lifecycle
//! An alert is raised once per kind and subject while it is open (a printer that stays faulted
//! raises one alert, not one per second), as a ledger record
//! ([`ControlAction::AlertRaised`](crate::ledger::ControlAction::AlertRaised)) with the alert's
//! state in the same batch (aux keyspace, `alert/<n>`), so an open alert survives a restart.
//! *Conditions* (a device fault or offline, a backlog, due times at risk) clear themselves when
//! the condition ends (`AlertCleared`; a backlog and due times at risk with some hysteresis,
//! `alerts.raise_after_secs` and `alerts.clear_after_secs`, so that they do not flap);
//! *events* (a reconciliation difference, a refused patch, a roll skip) stay open until a
//! supervisor acknowledges them (`AlertAcknowledged`, with the supervisor as actor). Acknowledging a condition marks it seen; it stays open until it clears.
//! The last [`RECENT`] closed alerts are kept for `GET /api/v1/alerts`.
//!
//! # Privacy
//! Subjects and details name devices, stations, sessions, serials, job ids and classes: never
//! passport-holder data.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use hallctl_jobs::job::OperatorId;
use serde::{Deserialize, Serialize};

use super::LineError;
use crate::ledger::Serial;
use crate::store::Store;

/// How many closed alerts are kept (in memory and in the store).
pub const RECENT: usize = 100;

const PREFIX: &[u8] = b"alert/";

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A device reports a fault (a jam, a laminator fault). Clears when the fault is cleared.
    DeviceFault,
    /// A device has been unreachable longer than `alerts.device_offline_secs`. Clears when it
    /// answers again.
    DeviceOffline,
    /// Too many jobs queued (`alerts.queue_depth`) or the oldest waiting too long
    /// (`alerts.oldest_queued_minutes`), for `alerts.raise_after_secs`. Clears at or below
    /// `alerts.clear_percent` of the threshold, for `alerts.clear_after_secs`.
    Backlog,
    /// Jobs of a class predicted to miss their due time at the current rate, once there is
    /// enough data for a rate (`alerts.due_at_risk_min_completions`,
    /// `alerts.due_at_risk_min_window_secs`), for `alerts.raise_after_secs`. Clears when none
    /// has been for `alerts.clear_after_secs`.
    DueAtRisk,
    /// A custody session closed with items unaccounted for (a signed discrepancy).
    Reconciliation,
    /// A patch was used out of roll order (with a recorded reason).
    RollSkip,
    /// A custody, separation or gating rule refused what someone tried (a used, unknown or
    /// foreign patch, a booklet one printed, a close that does not balance, work at another
    /// station...): one incident per station gathers every refusal there.
    Refusal,
    /// Someone signed out (or was signed out) of a station whose session still holds items.
    SessionAbandoned,
    /// A custody session is still open at the end of its shift.
    SessionOpenAtShiftEnd,
    /// An item was reported missing.
    ItemMissing,
    /// Wrong co-signer PINs typed at a station or by one person.
    CosignerFailures,
    /// The store records nothing (a write or fsync failed, or the disk is almost full): no
    /// patch or booklet is issued or applied. Shown from memory while it lasts (`AL-storage`),
    /// recorded raised and cleared when recording resumes.
    StorageFault,
    /// The disk holding the ledger is filling (below 4 × `server.min_free_disk_mb`).
    StorageLow,
    /// **Critical.** A device's own reader contradicted the scan (issue 16): the laminator read
    /// another patch, the printer read back another booklet, or either read nothing. The step
    /// was stopped and the items are unaccounted for; stays open until acknowledged.
    ReadMismatch,
    /// An operator reported items spoiled (a defect at a terminal): they wait for a
    /// supervisor's approval with the items in hand. One incident per station.
    SpoilageAwaitingApproval,
    /// **Critical.** Spoiled items (awaiting approval, or approved) were not destroyed before
    /// witnesses in time (`custody.destroy_within_secs`, or by the end of their shift): the
    /// oldest theft path is declaring an item spoiled and keeping it.
    SpoilageNotDestroyed,
    /// QC spoiled a booklet and its patch after a confirmed MRZ mismatch (one incident per QC
    /// station): the spoil is the QC operator's reading, so a supervisor looks at it.
    QcSpoil,
    /// A device fault (a jam, a timeout, a cancel, a lost link) spoiled the step's items: one
    /// incident per station, naming every serial, so that a fault an operator caused to keep a
    /// blank is seen within seconds, not at the end of the shift.
    DeviceSpoil,
    /// Wrong PINs for an id from one place locked sign-in there (and every try while it lasts):
    /// someone is guessing at that account. Subject: the id.
    SigninLockout,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 19] = [
        AlertKind::DeviceFault,
        AlertKind::DeviceOffline,
        AlertKind::Backlog,
        AlertKind::DueAtRisk,
        AlertKind::Reconciliation,
        AlertKind::RollSkip,
        AlertKind::Refusal,
        AlertKind::SessionAbandoned,
        AlertKind::SessionOpenAtShiftEnd,
        AlertKind::ItemMissing,
        AlertKind::CosignerFailures,
        AlertKind::StorageFault,
        AlertKind::StorageLow,
        AlertKind::ReadMismatch,
        AlertKind::SpoilageAwaitingApproval,
        AlertKind::SpoilageNotDestroyed,
        AlertKind::QcSpoil,
        AlertKind::DeviceSpoil,
        AlertKind::SigninLockout,
    ];

    /// The kind's name in records, the API and metrics.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::DeviceFault => "device_fault",
            AlertKind::DeviceOffline => "device_offline",
            AlertKind::Backlog => "backlog",
            AlertKind::DueAtRisk => "due_at_risk",
            AlertKind::Reconciliation => "reconciliation",
            AlertKind::RollSkip => "roll_skip",
            AlertKind::Refusal => "refusal",
            AlertKind::SessionAbandoned => "session_abandoned",
            AlertKind::SessionOpenAtShiftEnd => "session_open_at_shift_end",
            AlertKind::ItemMissing => "item_missing",
            AlertKind::CosignerFailures => "cosigner_failures",
            AlertKind::StorageFault => "storage_fault",
            AlertKind::StorageLow => "storage_low",
            AlertKind::ReadMismatch => "read_mismatch",
            AlertKind::SpoilageAwaitingApproval => "spoilage_awaiting_approval",
            AlertKind::SpoilageNotDestroyed => "spoilage_not_destroyed",
            AlertKind::QcSpoil => "qc_spoil",
            AlertKind::DeviceSpoil => "device_spoil",
            AlertKind::SigninLockout => "signin_lockout",
        }
    }

    /// Whether the alert stands for a condition that ends by itself (and then clears). The
    /// others are incidents: they gather occurrences until a supervisor resolves them.
    pub fn is_condition(self) -> bool {
        matches!(
            self,
            AlertKind::DeviceFault
                | AlertKind::DeviceOffline
                | AlertKind::Backlog
                | AlertKind::DueAtRisk
                | AlertKind::StorageFault
                | AlertKind::StorageLow
        )
    }

    /// The severity of an alert of this kind unless `[alerts.severity]` says otherwise (for a
    /// refusal: the rule's, see [`Severity::of_rule`]).
    pub fn default_severity(self) -> Severity {
        match self {
            AlertKind::Backlog | AlertKind::DueAtRisk | AlertKind::RollSkip => Severity::Warning,
            AlertKind::DeviceFault | AlertKind::DeviceOffline | AlertKind::StorageLow => {
                Severity::Warning
            }
            AlertKind::CosignerFailures
            | AlertKind::SpoilageAwaitingApproval
            | AlertKind::DeviceSpoil => Severity::Warning,
            // Guessing at a PIN: a supervisor's gives every power of the role.
            AlertKind::SigninLockout => Severity::Critical,
            AlertKind::Refusal => Severity::Warning,
            AlertKind::Reconciliation
            | AlertKind::SessionAbandoned
            | AlertKind::SessionOpenAtShiftEnd
            | AlertKind::ItemMissing
            | AlertKind::ReadMismatch
            | AlertKind::SpoilageNotDestroyed
            | AlertKind::QcSpoil
            | AlertKind::StorageFault => Severity::Critical,
        }
    }
}

/// How urgent an alert is for the supervisor and the monitoring room.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Someone should look this shift.
    #[default]
    Warning,
    /// Someone must look now: an item may have left custody.
    Critical,
}

impl Severity {
    /// Its name (`info`, `warning`, `critical`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.name() == s)
    }

    /// The default severity of a refusal by `rule` (`Refusal::rule`): critical where an item
    /// may be leaving custody or a separation rule was tried, a warning otherwise.
    pub fn of_rule(rule: &str) -> Severity {
        match rule {
            "unknown_serial"
            | "already_used"
            | "wrong_session"
            | "not_issued"
            | "laminator_printed_booklet"
            | "qc_not_third_person"
            | "booklet_already_laminated"
            | "unbalanced"
            | "witness_in_custody_chain"
            | "self_signed_discrepancy"
            | "set_aside"
            | "issuing_state"
            | "count_without_supervisor"
            | "not_own_session"
            | "job_mismatch"
            | "spoilage_not_in_hand"
            | "self_approved_spoilage"
            | "spoil_stands"
            | "already_dispatched" => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The supervisor.
    pub by: OperatorId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A supervisor's resolution of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The supervisor.
    pub by: OperatorId,
    /// When.
    pub at: DateTime<Utc>,
    /// What was found and done.
    pub note: String,
}

/// One alert: a condition, or an incident that gathers occurrences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id (`AL-17`).
    pub id: String,
    /// What kind.
    pub kind: AlertKind,
    /// What it is about (a device, station, session, class, `queue_depth`, `oldest_queued`).
    pub subject: String,
    /// What was seen first, in words.
    pub detail: String,
    /// How urgent: the most severe of its occurrences.
    #[serde(default)]
    pub severity: Severity,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// How many times it occurred (every occurrence is a record of its own).
    #[serde(default = "one")]
    pub occurrences: u32,
    /// When it last occurred.
    #[serde(default)]
    pub last_at: Option<DateTime<Utc>>,
    /// What was seen last, when it occurred more than once.
    #[serde(default)]
    pub last_detail: Option<String>,
    /// Every serial its occurrences named, in the order first named (at most [`MAX_SERIALS`];
    /// the records name them all).
    #[serde(default)]
    pub serials: Vec<Serial>,
    /// The rules whose refusals it gathers, in the order first seen.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Whether it is still open.
    pub open: bool,
    /// The supervisor who acknowledged it.
    pub acknowledged: Option<Acknowledgement>,
    /// When its condition ended.
    pub cleared_at: Option<DateTime<Utc>>,
    /// How a supervisor resolved it (incidents).
    #[serde(default)]
    pub resolution: Option<Resolution>,
}

fn one() -> u32 {
    1
}

/// Serials an incident lists at most (every occurrence's record names all of its own).
pub const MAX_SERIALS: usize = 1000;

/// One occurrence of an incident, as the line saw it.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    /// What kind of incident.
    pub kind: AlertKind,
    /// What it is about.
    pub subject: String,
    /// What was seen.
    pub detail: String,
    /// How urgent this occurrence is.
    pub severity: Severity,
    /// The serials it named.
    pub serials: Vec<Serial>,
    /// The rule that refused, for a refusal.
    pub rule: Option<String>,
}

impl Alert {
    /// A new open alert, occurred once, with its kind's default severity.
    pub(crate) fn new(
        id: String,
        kind: AlertKind,
        subject: &str,
        detail: String,
        at: DateTime<Utc>,
    ) -> Alert {
        Alert {
            id,
            kind,
            subject: subject.to_string(),
            detail,
            severity: kind.default_severity(),
            raised_at: at,
            occurrences: 1,
            last_at: None,
            last_detail: None,
            serials: Vec::new(),
            rules: Vec::new(),
            open: true,
            acknowledged: None,
            cleared_at: None,
            resolution: None,
        }
    }

    fn number(&self) -> u64 {
        number(&self.id).unwrap_or(0)
    }
}

fn number(id: &str) -> Option<u64> {
    id.strip_prefix("AL-")?.parse().ok()
}

fn key(n: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// Open alerts and the recently closed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertList {
    /// Open alerts, oldest first.
    pub open: Vec<Alert>,
    /// The last closed alerts, most recent first.
    pub recent: Vec<Alert>,
}

/// An aux write (key, value or deletion) that goes into the batch of the alert's record.
pub(crate) type AuxWrite = (Vec<u8>, Option<Vec<u8>>);

/// The line's alerts. Changes are prepared (the alert in its new state and the aux writes),
/// persisted by the actor with their record, then committed here.
#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    open: BTreeMap<u64, Alert>,
    by_subject: HashMap<(AlertKind, String), u64>,
    recent: VecDeque<Alert>,
    next: u64,
}

impl AlertBook {
    /// Reads the stored alerts back.
    pub(crate) fn load(store: &Store) -> Result<Self, LineError> {
        let mut all = Vec::new();
        let mut bad = None;
        store
            .aux_for_each(PREFIX, PREFIX, |_, v| {
                match serde_json::from_slice::<Alert>(v) {
                    Ok(a) => {
                        all.push(a);
                        true
                    }
                    Err(e) => {
                        bad = Some(e.to_string());
                        false
                    }
                }
            })
            .map_err(|e| LineError::Storage(e.to_string()))?;
        if let Some(e) = bad {
            return Err(LineError::Storage(format!(
                "a stored alert cannot be read: {e}"
            )));
        }
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        // Key order is number order: the recent list ends up most recent first.
        for a in all {
            book.next = book.next.max(a.number() + 1);
            book.commit(a);
        }
        Ok(book)
    }

    /// The open alert of `kind` about `subject`.
    pub(crate) fn open_for(&self, kind: AlertKind, subject: &str) -> Option<&Alert> {
        self.by_subject
            .get(&(kind, subject.to_string()))
            .and_then(|n| self.open.get(n))
    }

    /// A new alert, unless one of the same kind and subject is open.
    pub(crate) fn prepare_raise(
        &self,
        kind: AlertKind,
        subject: &str,
        detail: String,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        if self.open_for(kind, subject).is_some() {
            return None;
        }
        Some(Alert::new(
            format!("AL-{}", self.next),
            kind,
            subject,
            detail,
            now,
        ))
    }

    /// The incident `o` belongs to, with `o` added: the open one of its kind and subject
    /// (`true`: a repeat), or a new one (`false`).
    pub(crate) fn prepare_occurrence(&self, o: &Occurrence, now: DateTime<Utc>) -> (Alert, bool) {
        let (mut a, repeat) = match self.open_for(o.kind, &o.subject) {
            Some(open) => {
                let mut a = open.clone();
                a.occurrences = a.occurrences.saturating_add(1);
                a.last_at = Some(now);
                a.last_detail = Some(o.detail.clone());
                a.severity = a.severity.max(o.severity);
                (a, true)
            }
            None => {
                let mut a = self
                    .prepare_raise(o.kind, &o.subject, o.detail.clone(), now)
                    .unwrap_or_else(|| {
                        unreachable!("no incident of this kind and subject is open")
                    });
                a.severity = o.severity;
                (a, false)
            }
        };
        for s in &o.serials {
            if a.serials.len() < MAX_SERIALS && !a.serials.contains(s) {
                a.serials.push(s.clone());
            }
        }
        if let Some(rule) = &o.rule
            && !a.rules.contains(rule)
        {
            a.rules.push(rule.clone());
        }
        (a, repeat)
    }

    /// Incident `id`, resolved by `by` with `note`.
    ///
    /// # Errors
    /// [`LineError::NotFound`] for an id not open; [`LineError::Conflict`] for a condition
    /// (it clears by itself).
    pub(crate) fn prepare_resolve(
        &self,
        id: &str,
        by: &OperatorId,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Alert, LineError> {
        let found = number(id).and_then(|n| self.open.get(&n));
        let Some(a) = found else {
            if number(id).is_some_and(|n| self.recent.iter().any(|a| a.number() == n)) {
                return Err(LineError::Conflict(format!("alert {id} is already closed")));
            }
            return Err(LineError::NotFound(format!(
                "no open alert {id}: see GET /api/v1/alerts"
            )));
        };
        if a.kind.is_condition() {
            return Err(LineError::Conflict(format!(
                "alert {id} is a condition ({}): it closes by itself when the condition ends",
                a.kind.name()
            )));
        }
        let mut a = a.clone();
        a.open = false;
        a.resolution = Some(Resolution {
            by: by.clone(),
            at: now,
            note: note.to_string(),
        });
        Ok(a)
    }

    /// The open alert of `kind` about `subject`, cleared.
    pub(crate) fn prepare_clear(
        &self,
        kind: AlertKind,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        let mut a = self.open_for(kind, subject)?.clone();
        a.open = false;
        a.cleared_at = Some(now);
        Some(a)
    }

    /// Alert `id`, acknowledged by `by`.
    ///
    /// # Errors
    /// [`LineError::NotFound`] for an id neither open nor among the recent ones;
    /// [`LineError::Conflict`] when it was acknowledged already.
    pub(crate) fn prepare_ack(
        &self,
        id: &str,
        by: &OperatorId,
        now: DateTime<Utc>,
    ) -> Result<Alert, LineError> {
        let found = number(id).and_then(|n| {
            self.open
                .get(&n)
                .or_else(|| self.recent.iter().find(|a| a.number() == n))
        });
        let Some(a) = found else {
            return Err(LineError::NotFound(format!(
                "no alert {id} (open, or among the last {RECENT} closed): see GET /api/v1/alerts"
            )));
        };
        if let Some(ack) = &a.acknowledged {
            return Err(LineError::Conflict(format!(
                "alert {id} was already acknowledged by {} at {}",
                ack.by,
                ack.at.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        let mut a = a.clone();
        a.acknowledged = Some(Acknowledgement {
            by: by.clone(),
            at: now,
        });
        Ok(a)
    }

    /// The aux writes that store `a` in its new state (and drop the oldest closed alert when
    /// `a` closes and the recent list is full).
    pub(crate) fn writes(&self, a: &Alert) -> Result<Vec<AuxWrite>, LineError> {
        let json = serde_json::to_vec(a).map_err(|e| LineError::Storage(e.to_string()))?;
        let mut out = vec![(key(a.number()), Some(json))];
        let newly_closed = !a.open && self.open.contains_key(&a.number());
        if newly_closed
            && self.recent.len() >= RECENT
            && let Some(oldest) = self.recent.back()
        {
            out.push((key(oldest.number()), None));
        }
        Ok(out)
    }

    /// Takes `a` in its new state (after its record was appended).
    pub(crate) fn commit(&mut self, a: Alert) {
        let n = a.number();
        self.next = self.next.max(n + 1);
        if a.open {
            self.by_subject.insert((a.kind, a.subject.clone()), n);
            self.open.insert(n, a);
            return;
        }
        if self.open.remove(&n).is_some() {
            self.by_subject.remove(&(a.kind, a.subject.clone()));
        }
        if let Some(r) = self.recent.iter_mut().find(|r| r.number() == n) {
            *r = a;
            return;
        }
        self.recent.push_front(a);
        self.recent.truncate(RECENT);
    }

    /// The open alerts, oldest first.
    pub(crate) fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Open alerts and the recently closed ones.
    pub(crate) fn list(&self) -> AlertList {
        AlertList {
            open: self.open.values().cloned().collect(),
            recent: self.recent.iter().cloned().collect(),
        }
    }
}

/// Milliseconds since the epoch (the line's clock, passed in: nothing here reads it).
type Millis = i64;

/// When a condition's alert (`backlog`, `due_at_risk`) is raised and cleared, so that a
/// condition that comes and goes does not raise a new alert every few seconds: it is raised once
/// the condition has held for `raise_after` without a break, and cleared once it has been over
/// for `clear_after` without a break (`alerts.raise_after_secs`, `alerts.clear_after_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hysteresis {
    /// How long the condition holds before its alert is raised.
    pub raise_after: Millis,
    /// How long the condition is over before its alert clears.
    pub clear_after: Millis,
}

/// What to do with a condition's alert now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Raise it.
    Raise,
    /// Clear it.
    Clear,
    /// Leave it as it is (open or not).
    Keep,
}

impl Hysteresis {
    /// The verdict on one condition seen at `now`: `open` whether its alert is open (the alert
    /// book's word, so that an alert open at a restart is cleared as any other); `holds`
    /// whether the condition holds (`None`: nobody can tell, e.g. no rate to predict from yet:
    /// the alert stays as it is and a change under way is neither confirmed nor dropped; a
    /// backlog is always known, see [`level_holds`]); `pending` the change under way
    /// (the state asked for and since when), kept by the caller between calls.
    pub(crate) fn decide(
        &self,
        open: bool,
        holds: Option<bool>,
        pending: &mut Option<(bool, Millis)>,
        now: Millis,
    ) -> Verdict {
        if pending.is_some_and(|(want, _)| want == open) {
            // The alert changed by itself (a restart, another path): start again.
            *pending = None;
        }
        let Some(holds) = holds else {
            return Verdict::Keep;
        };
        if holds == open {
            *pending = None;
            return Verdict::Keep;
        }
        let since = pending.get_or_insert((holds, now)).1;
        let wait = if holds {
            self.raise_after
        } else {
            self.clear_after
        };
        if now - since < wait {
            return Verdict::Keep;
        }
        *pending = None;
        if holds {
            Verdict::Raise
        } else {
            Verdict::Clear
        }
    }
}

/// Whether a level condition (a backlog: the queue's depth, the oldest queued job's age) holds,
/// `value` against its `threshold`, its alert being `open` or not: a Schmitt trigger. Until the
/// alert is raised the condition holds above the threshold (a dip under it is a break in the
/// wait to raise); once it is raised, above the clearing level (`clear_percent` of the
/// threshold: a rise over that is a break in the wait to clear). Always known (never `None`
/// to [`Hysteresis::decide`], which would keep a wait alive across a value that broke it).
pub(crate) fn level_holds(value: u64, threshold: u64, clear_percent: u32, open: bool) -> bool {
    let level = if open {
        threshold * u64::from(clear_percent) / 100
    } else {
        threshold
    };
    value > level
}

/// The changes under way of the line's conditions, by kind and subject.
#[derive(Debug)]
pub(crate) struct ConditionGates {
    hysteresis: Hysteresis,
    pending: HashMap<(AlertKind, String), (bool, Millis)>,
}

impl ConditionGates {
    pub(crate) fn new(hysteresis: Hysteresis) -> Self {
        ConditionGates {
            hysteresis,
            pending: HashMap::new(),
        }
    }

    /// [`Hysteresis::decide`] for the condition of `kind` about `subject`.
    pub(crate) fn decide(
        &mut self,
        kind: AlertKind,
        subject: &str,
        open: bool,
        holds: Option<bool>,
        now: Millis,
    ) -> Verdict {
        let key = (kind, subject.to_string());
        let mut pending = self.pending.get(&key).copied();
        let v = self.hysteresis.decide(open, holds, &mut pending, now);
        match pending {
            Some(p) => self.pending.insert(key, p),
            None => self.pending.remove(&key),
        };
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn an_alert_is_raised_once_per_kind_and_subject_while_open() {
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        let a = book
            .prepare_raise(AlertKind::DeviceFault, "PR-01", "jam".into(), now())
            .expect("a new alert");
        assert_eq!(a.id, "AL-1");
        book.commit(a);
        assert!(
            book.prepare_raise(AlertKind::DeviceFault, "PR-01", "jam".into(), now())
                .is_none()
        );
        // Another subject, or another kind, is another alert.
        let b = book
            .prepare_raise(AlertKind::DeviceFault, "PR-02", "jam".into(), now())
            .expect("another device");
        assert_eq!(b.id, "AL-2");
        book.commit(b);
        // Cleared, it can be raised again, under a new id.
        let c = book
            .prepare_clear(AlertKind::DeviceFault, "PR-01", now())
            .expect("open");
        book.commit(c);
        let again = book
            .prepare_raise(AlertKind::DeviceFault, "PR-01", "jam".into(), now())
            .expect("raised again");
        assert_eq!(again.id, "AL-3");
        let l = book.list();
        assert_eq!((l.open.len(), l.recent.len()), (1, 1));
        assert_eq!(l.recent[0].id, "AL-1");
        assert!(l.recent[0].cleared_at.is_some());
    }

    #[test]
    fn acknowledging_is_seen_resolving_closes_an_incident_and_twice_is_a_conflict() {
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        let sup = OperatorId::new("S1");
        for (kind, subject) in [
            (AlertKind::DeviceOffline, "LM-01"),
            (AlertKind::Reconciliation, "S-PRINT-01-7"),
        ] {
            let a = book
                .prepare_raise(kind, subject, "x".into(), now())
                .expect("new");
            book.commit(a);
        }
        let a = book.prepare_ack("AL-1", &sup, now()).expect("ack");
        assert!(a.open, "a condition stays open until it clears");
        book.commit(a);
        let b = book.prepare_ack("AL-2", &sup, now()).expect("ack");
        assert!(b.open, "an incident stays open until resolved");
        book.commit(b);
        assert!(matches!(
            book.prepare_ack("AL-2", &sup, now()),
            Err(LineError::Conflict(m)) if m.contains("already acknowledged by S1")
        ));
        assert!(matches!(
            book.prepare_resolve("AL-1", &sup, "fixed", now()),
            Err(LineError::Conflict(m)) if m.contains("closes by itself")
        ));
        let r = book
            .prepare_resolve("AL-2", &sup, "found in the tray", now())
            .expect("resolve");
        assert!(!r.open);
        assert_eq!(
            r.resolution.as_ref().map(|x| x.note.as_str()),
            Some("found in the tray")
        );
        book.commit(r);
        assert!(matches!(
            book.prepare_resolve("AL-2", &sup, "again", now()),
            Err(LineError::Conflict(m)) if m.contains("already closed")
        ));
        assert!(matches!(
            book.prepare_ack("AL-99", &sup, now()),
            Err(LineError::NotFound(_))
        ));
        assert!(matches!(
            book.prepare_ack("nonsense", &sup, now()),
            Err(LineError::NotFound(_))
        ));
    }

    #[test]
    fn an_incident_gathers_every_occurrence_its_serials_and_its_worst_severity() {
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        let occ = |rule: &str, severity, serials: &[&str]| Occurrence {
            kind: AlertKind::Refusal,
            subject: "LAM-01".into(),
            detail: format!("refused: {rule}"),
            severity,
            serials: serials.iter().map(|s| Serial::new(*s)).collect(),
            rule: Some(rule.into()),
        };
        let (a, repeat) = book.prepare_occurrence(
            &occ("out_of_roll_order", Severity::Warning, &["P2", "P1"]),
            now(),
        );
        assert!(!repeat);
        assert_eq!((a.id.as_str(), a.occurrences), ("AL-1", 1));
        book.commit(a);
        let (b, repeat) = book.prepare_occurrence(
            &occ("already_used", Severity::Critical, &["P1", "P9"]),
            now(),
        );
        assert!(repeat, "the open incident of LAM-01 takes it");
        assert_eq!(b.id, "AL-1");
        assert_eq!(b.occurrences, 2);
        assert_eq!(b.severity, Severity::Critical);
        assert_eq!(
            b.serials,
            ["P2", "P1", "P9"].map(Serial::new).to_vec(),
            "every serial, once, in the order first named"
        );
        assert_eq!(b.rules, ["out_of_roll_order", "already_used"]);
        assert_eq!(b.detail, "refused: out_of_roll_order", "the first stays");
        assert_eq!(b.last_detail.as_deref(), Some("refused: already_used"));
        book.commit(b);
        // Another station is another incident; once resolved, a new one opens.
        let (c, repeat) = book.prepare_occurrence(
            &Occurrence {
                subject: "LAM-02".into(),
                ..occ("not_issued", Severity::Critical, &[])
            },
            now(),
        );
        assert!(!repeat);
        assert_eq!(c.id, "AL-2");
        book.commit(c);
        let sup = OperatorId::new("S1");
        let r = book
            .prepare_resolve("AL-1", &sup, "checked", now())
            .expect("resolve");
        book.commit(r);
        let (d, repeat) =
            book.prepare_occurrence(&occ("already_used", Severity::Critical, &["P1"]), now());
        assert!(!repeat);
        assert_eq!((d.id.as_str(), d.occurrences), ("AL-3", 1));
    }

    #[test]
    fn the_oldest_closed_alert_is_dropped_from_the_store_when_the_list_is_full() {
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        for i in 0..=RECENT {
            let a = book
                .prepare_raise(AlertKind::Refusal, &format!("LAM-{i}"), "x".into(), now())
                .expect("new");
            book.commit(a);
        }
        let sup = OperatorId::new("S1");
        for i in 1..=RECENT as u64 {
            let a = book
                .prepare_resolve(&format!("AL-{i}"), &sup, "done", now())
                .expect("resolve");
            assert_eq!(book.writes(&a).expect("writes").len(), 1);
            book.commit(a);
        }
        let last = book
            .prepare_resolve(&format!("AL-{}", RECENT + 1), &sup, "done", now())
            .expect("resolve");
        let w = book.writes(&last).expect("writes");
        assert_eq!(w.len(), 2);
        assert_eq!(w[1], (key(1), None));
    }

    const S: Millis = 1000;

    #[test]
    fn a_condition_is_raised_after_it_held_and_cleared_after_it_ended_each_for_a_while() {
        use Verdict::{Clear, Keep, Raise};
        let h = Hysteresis {
            raise_after: 60 * S,
            clear_after: 300 * S,
        };
        // (case, alert open, the condition holds, pending before, now, verdict, pending after)
        type Row = (
            &'static str,
            bool,
            Option<bool>,
            Option<(bool, Millis)>,
            Millis,
            Verdict,
            Option<(bool, Millis)>,
        );
        let rows: [Row; 12] = [
            ("quiet", false, Some(false), None, 0, Keep, None),
            (
                "it starts to hold",
                false,
                Some(true),
                None,
                10 * S,
                Keep,
                Some((true, 10 * S)),
            ),
            (
                "held 59 s",
                false,
                Some(true),
                Some((true, 10 * S)),
                69 * S,
                Keep,
                Some((true, 10 * S)),
            ),
            (
                "held 60 s: raise",
                false,
                Some(true),
                Some((true, 10 * S)),
                70 * S,
                Raise,
                None,
            ),
            (
                "a break before 60 s",
                false,
                Some(false),
                Some((true, 10 * S)),
                30 * S,
                Keep,
                None,
            ),
            (
                "unknown: kept, the change still under way",
                false,
                None,
                Some((true, 10 * S)),
                30 * S,
                Keep,
                Some((true, 10 * S)),
            ),
            (
                "open and holding: hold",
                true,
                Some(true),
                None,
                100 * S,
                Keep,
                None,
            ),
            (
                "it ends",
                true,
                Some(false),
                None,
                100 * S,
                Keep,
                Some((false, 100 * S)),
            ),
            (
                "over for 299 s",
                true,
                Some(false),
                Some((false, 100 * S)),
                399 * S,
                Keep,
                Some((false, 100 * S)),
            ),
            (
                "over for 300 s: clear",
                true,
                Some(false),
                Some((false, 100 * S)),
                400 * S,
                Clear,
                None,
            ),
            (
                "it comes back before: hold",
                true,
                Some(true),
                Some((false, 100 * S)),
                200 * S,
                Keep,
                None,
            ),
            (
                "the alert changed by itself",
                true,
                Some(false),
                Some((true, 10 * S)),
                100 * S,
                Keep,
                Some((false, 100 * S)),
            ),
        ];
        for (case, open, holds, before, now, verdict, after) in rows {
            let mut pending = before;
            assert_eq!(h.decide(open, holds, &mut pending, now), verdict, "{case}");
            assert_eq!(pending, after, "{case}");
        }
        // With no delay (a test hall), the first sighting decides.
        let instant = Hysteresis {
            raise_after: 0,
            clear_after: 0,
        };
        assert_eq!(instant.decide(false, Some(true), &mut None, 5), Raise);
        assert_eq!(instant.decide(true, Some(false), &mut None, 5), Clear);
    }

    /// Runs `signal` (the condition, every 5 s) through the gates as the actor does and counts
    /// the alerts raised and cleared.
    fn run(h: Hysteresis, signal: impl Iterator<Item = Option<bool>>) -> (u32, u32, bool) {
        let mut gates = ConditionGates::new(h);
        let (mut open, mut raised, mut cleared) = (false, 0, 0);
        for (i, holds) in signal.enumerate() {
            let now = i64::try_from(i).unwrap_or(0) * 5 * S;
            match gates.decide(AlertKind::DueAtRisk, "urgent", open, holds, now) {
                Verdict::Raise => (open, raised) = (true, raised + 1),
                Verdict::Clear => (open, cleared) = (false, cleared + 1),
                Verdict::Keep => {}
            }
        }
        (raised, cleared, open)
    }

    #[test]
    fn a_condition_oscillating_near_its_threshold_does_not_flap() {
        let h = Hysteresis {
            raise_after: 60 * S,
            clear_after: 300 * S,
        };
        let no_delay = Hysteresis {
            raise_after: 0,
            clear_after: 0,
        };
        // Four minutes of a condition that holds 10 s out of every 25 s (the demo's due times
        // at risk came and went so: AL-1 to AL-27 in 4 minutes).
        let flicker = || (0..48).map(|i| Some(i % 5 < 2));
        assert_eq!(
            run(no_delay, flicker()),
            (10, 10, false),
            "without hysteresis"
        );
        assert_eq!(run(h, flicker()), (0, 0, false), "it never held a minute");
        // Held for two minutes, then flickering for an hour: raised once, never cleared.
        let held_then_flicker = (0..24)
            .map(|_| Some(true))
            .chain((0..720).map(|i| Some(i % 5 < 2)));
        assert_eq!(run(h, held_then_flicker), (1, 0, true));
        // ... and cleared five minutes after it ended for good.
        let ended = (0..24)
            .map(|_| Some(true))
            .chain((0..60).map(|_| Some(false)));
        assert_eq!(run(h, ended.clone()), (1, 0, true), "over for 4 min 55 s");
        assert_eq!(
            run(h, ended.chain([Some(false)])),
            (1, 1, false),
            "over for 5 min"
        );
        // A condition nobody can tell (`None`) changes nothing.
        let band = (0..24)
            .map(|_| Some(true))
            .chain((0..1000).map(|i| if i % 2 == 0 { None } else { Some(true) }));
        assert_eq!(run(h, band), (1, 0, true));
        // Conditions of different subjects are gated apart.
        let mut gates = ConditionGates::new(no_delay);
        assert_eq!(
            gates.decide(AlertKind::DueAtRisk, "urgent", false, Some(true), 0),
            Verdict::Raise
        );
        assert_eq!(
            gates.decide(AlertKind::DueAtRisk, "normal", false, Some(false), 0),
            Verdict::Keep
        );
    }

    /// What was seen: a queue above its threshold for one look, then just under it (but above
    /// its clearing level) for 59 s, then above it for one look again, raised `backlog`: a dip
    /// under the threshold did not count as a break. A backlog holds above its threshold until
    /// its alert is raised, and above its clearing level while the alert is open.
    #[test]
    fn a_backlog_that_dips_under_its_threshold_breaks_the_wait_to_raise_and_one_over_its_clearing_level_the_wait_to_clear()
     {
        let h = Hysteresis {
            raise_after: 60 * S,
            clear_after: 300 * S,
        };
        // Depth every 5 s against a threshold of 100 cleared at 90%, through the gates as the
        // actor runs them; (raised, cleared, open at the end).
        let run = |depths: &[u64]| {
            let mut gates = ConditionGates::new(h);
            let (mut open, mut raised, mut cleared) = (false, 0, 0);
            for (i, d) in depths.iter().enumerate() {
                let now = i64::try_from(i).unwrap_or(0) * 5 * S;
                let holds = Some(level_holds(*d, 100, 90, open));
                match gates.decide(AlertKind::Backlog, "queue_depth", open, holds, now) {
                    Verdict::Raise => (open, raised) = (true, raised + 1),
                    Verdict::Clear => (open, cleared) = (false, cleared + 1),
                    Verdict::Keep => {}
                }
            }
            (raised, cleared, open)
        };
        let mut dip = vec![101];
        dip.extend([95; 12]);
        dip.push(101);
        assert_eq!(run(&dip), (0, 0, false), "above for two looks only");
        // Above for a minute: raised; then at 95 (over the clearing level) for an hour: it holds.
        let mut held = vec![101; 13];
        held.extend([95; 720]);
        assert_eq!(run(&held), (1, 0, true), "raised, and not cleared at 95");
        // At 90 for 5 min with a look at 95 in the middle: the wait to clear starts again.
        let mut back = vec![101; 13];
        back.extend([90; 30]);
        back.push(95);
        back.extend([90; 30]);
        assert_eq!(run(&back), (1, 0, true), "a look at 95 breaks the wait");
        back.extend([90; 31]);
        assert_eq!(run(&back), (1, 1, false), "at 90 for 5 min: cleared");
        // The level itself: a Schmitt trigger.
        for (value, open, want) in [
            (101, false, true),
            (100, false, false),
            (95, false, false),
            (95, true, true),
            (91, true, true),
            (90, true, false),
            (0, true, false),
        ] {
            assert_eq!(level_holds(value, 100, 90, open), want, "{value} {open}");
        }
    }
}
