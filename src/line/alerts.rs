//! Alerts: what the line raises for the shift supervisor and the monitoring room.
//!
//! # Lifecycle
//! An alert is raised once per kind and subject while it is open (a printer that stays faulted
//! raises one alert, not one per second), as a ledger record
//! ([`ControlAction::AlertRaised`](crate::ledger::ControlAction::AlertRaised)) with the alert's
//! state in the same batch (aux keyspace, `alert/<n>`), so an open alert survives a restart.
//! *Conditions* (a device fault or offline, a backlog, due times at risk) clear themselves when
//! the condition ends (`AlertCleared`); *events* (a reconciliation difference, a refused patch, a
//! roll skip) stay open until a supervisor acknowledges them (`AlertAcknowledged`, with the
//! supervisor as actor). Acknowledging a condition marks it seen; it stays open until it clears.
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
    /// (`alerts.oldest_queued_minutes`). Clears below `alerts.clear_percent` of the threshold.
    Backlog,
    /// Jobs of a class predicted to miss their due time at the current rate. Clears when none is.
    DueAtRisk,
    /// A custody session closed with items unaccounted for (a signed discrepancy).
    Reconciliation,
    /// A patch was used out of roll order (with a recorded reason).
    RollSkip,
    /// The line refused a patch at the gate (unknown, used, another session's, out of order).
    PatchRefused,
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
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 10] = [
        AlertKind::DeviceFault,
        AlertKind::DeviceOffline,
        AlertKind::Backlog,
        AlertKind::DueAtRisk,
        AlertKind::Reconciliation,
        AlertKind::RollSkip,
        AlertKind::PatchRefused,
        AlertKind::StorageFault,
        AlertKind::StorageLow,
        AlertKind::ReadMismatch,
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
            AlertKind::PatchRefused => "patch_refused",
            AlertKind::StorageFault => "storage_fault",
            AlertKind::StorageLow => "storage_low",
            AlertKind::ReadMismatch => "read_mismatch",
        }
    }

    /// Whether the alert stands for a condition that ends by itself (and then clears).
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
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The supervisor.
    pub by: OperatorId,
    /// When.
    pub at: DateTime<Utc>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id (`AL-17`).
    pub id: String,
    /// What kind.
    pub kind: AlertKind,
    /// What it is about (a device, station, session, class, `queue_depth`, `oldest_queued`).
    pub subject: String,
    /// What was seen, in words.
    pub detail: String,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// Whether it is still open.
    pub open: bool,
    /// The supervisor who acknowledged it.
    pub acknowledged: Option<Acknowledgement>,
    /// When its condition ended.
    pub cleared_at: Option<DateTime<Utc>>,
}

impl Alert {
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
        Some(Alert {
            id: format!("AL-{}", self.next),
            kind,
            subject: subject.to_string(),
            detail,
            raised_at: now,
            open: true,
            acknowledged: None,
            cleared_at: None,
        })
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
        if !a.kind.is_condition() {
            a.open = false;
        }
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
    fn acknowledging_closes_an_event_but_not_a_condition_and_twice_is_a_conflict() {
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
        assert!(!b.open, "an event closes when acknowledged");
        book.commit(b);
        assert!(matches!(
            book.prepare_ack("AL-2", &sup, now()),
            Err(LineError::Conflict(m)) if m.contains("already acknowledged by S1")
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
    fn the_oldest_closed_alert_is_dropped_from_the_store_when_the_list_is_full() {
        let mut book = AlertBook {
            next: 1,
            ..AlertBook::default()
        };
        for i in 0..=RECENT {
            let a = book
                .prepare_raise(
                    AlertKind::PatchRefused,
                    &format!("LAM-{i}"),
                    "x".into(),
                    now(),
                )
                .expect("new");
            book.commit(a);
        }
        let sup = OperatorId::new("S1");
        for i in 1..=RECENT as u64 {
            let a = book
                .prepare_ack(&format!("AL-{i}"), &sup, now())
                .expect("ack");
            assert_eq!(book.writes(&a).expect("writes").len(), 1);
            book.commit(a);
        }
        let last = book
            .prepare_ack(&format!("AL-{}", RECENT + 1), &sup, now())
            .expect("ack");
        let w = book.writes(&last).expect("writes");
        assert_eq!(w.len(), 2);
        assert_eq!(w[1], (key(1), None));
    }
}
