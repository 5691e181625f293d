//! Controller actions that move no accountable item: job intake, the line's assignments, the
//! requests of supervisors and administrators. They are ledger records like any other (hash-
//! chained, durable before acknowledged, with their actor), so that every state-changing request
//! is accountable and every assignment is logged (ICAO Doc 9303 Part 2, D.4). They change no
//! custody state, so the custody rules never refuse them; the controller checks them before it
//! appends.

use std::fmt;

use hallctl_jobs::job::{DeviceId, JobEvent, JobId, OperatorId, StationId};
use serde::{Deserialize, Serialize};

use super::event::{Serial, SessionId};

/// What a user may do. Deny by default: every route names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works at a station: prints, laminates, checks or dispatches what the line assigns.
    Operator,
    /// Runs the shift: holds and releases jobs, pauses devices, co-signs counts, witnesses.
    Supervisor,
    /// Reads the ledger: traces, reconciliations, evidence; changes nothing.
    Auditor,
    /// Manages users.
    Admin,
    /// A monitoring service (central room): reads line status with a service token.
    Monitor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Operator,
        Role::Supervisor,
        Role::Auditor,
        Role::Admin,
        Role::Monitor,
    ];

    /// The role's name as written in requests and the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Monitor => "monitor",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A change to a user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum UserChange {
    /// The account was created.
    Added {
        /// Its role.
        role: Role,
    },
    /// The account can no longer sign in; its tokens were revoked.
    Disabled,
    /// The account was enabled again.
    Enabled,
    /// A new PIN (or service token) was set; failures and lockout were cleared.
    PinReset,
    /// Too many wrong PINs: locked for a while.
    LockedOut {
        /// Consecutive failures that triggered it.
        failures: u32,
        /// Where they came from (a client address): the lock holds there only. Absent: the
        /// whole account (records before per-place locks, and checks with no place).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
    },
    /// The shifts the account signs in for were set: `["any"]`, or some of `A`, `B`, `C`.
    Rostered {
        /// The new roster.
        shifts: Vec<String>,
    },
}

/// A controller action recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlAction {
    /// The issuance system submitted jobs (one record per accepted batch).
    JobsSubmitted {
        /// The new jobs, in submission order.
        jobs: Vec<JobId>,
    },
    /// The line assigned a job's next step to a station and its operator (operators never
    /// choose): the record of ICAO D.4, with the scheduler's reason. For print, lamination and
    /// QC it is also the record of the job's `start` transition.
    Assigned {
        /// The job.
        job: JobId,
        /// The step.
        stage: hallctl_jobs::job::Stage,
        /// The station.
        station: StationId,
        /// Its device (the station itself where it has none).
        device: DeviceId,
        /// The operator signed in there.
        operator: OperatorId,
        /// Why this job, why this station (the scheduler's reason, in words).
        reason: String,
    },
    /// A dispatch bag was closed: its manifest is final.
    BagClosed {
        /// The bag.
        bag: String,
        /// Its destination office.
        destination: hallctl_jobs::job::Destination,
        /// The jobs in it, in packing order.
        jobs: Vec<JobId>,
    },
    /// A job changed state: a finished or spoiled step, a hold, release, cancel, an
    /// interruption found at recovery or a supervisor's inspection.
    JobChanged {
        /// The job.
        job: JobId,
        /// What happened to it.
        event: JobEvent,
    },
    /// A job's priority class was changed by a supervisor.
    JobReprioritised {
        /// The job.
        job: JobId,
        /// The new class (`normal`, `urgent`, `fast_track`).
        class: hallctl_jobs::job::PriorityClass,
        /// Why.
        reason: String,
    },
    /// A supervisor paused or resumed a device.
    DeviceCommanded {
        /// The device.
        device: DeviceId,
        /// `pause` or `resume`.
        command: String,
    },
    /// A user account changed.
    UserChanged {
        /// The account.
        user: OperatorId,
        /// How.
        change: UserChange,
    },
    /// A user signed in (at a station terminal, or on the hall UI when `station` is empty).
    SignedIn {
        /// Who.
        user: OperatorId,
        /// Where.
        station: Option<StationId>,
    },
    /// A user signed out, or was signed out (token expiry, account disabled).
    SignedOut {
        /// Who.
        user: OperatorId,
        /// Where.
        station: Option<StationId>,
        /// Why.
        reason: String,
    },
    /// The line raised an alert (a device fault, a backlog, a due time at risk, a
    /// reconciliation difference, a refused patch...). Ids, station and device names only: never
    /// passport-holder data.
    AlertRaised {
        /// The alert's id (`AL-17`).
        alert: String,
        /// What kind of alert (`device_fault`, `device_offline`, `backlog`, `due_at_risk`,
        /// `reconciliation`, `roll_skip`, `patch_refused`). Written `alert_kind` (`kind` names
        /// the action).
        #[serde(rename = "alert_kind")]
        kind: String,
        /// What it is about (a device, a station, a session, a priority class, `queue_depth`):
        /// one alert per kind and subject is open at a time.
        subject: String,
        /// What was seen, in words.
        detail: String,
        /// How serious (`info`, `warning`, `critical`); absent in records before incidents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<String>,
        /// The serials the occurrence named.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        serials: Vec<Serial>,
    },
    /// An open incident occurred again: one record per occurrence, none swallowed.
    AlertRepeated {
        /// The incident's id.
        alert: String,
        /// Its occurrence number (the raising one is 1).
        occurrence: u32,
        /// What was seen this time.
        detail: String,
        /// The serials this occurrence named.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        serials: Vec<Serial>,
        /// This occurrence's own severity (a critical refusal inside an incident raised as a
        /// warning says so itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<String>,
        /// The rule that refused, for a refusal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// A supervisor resolved an incident, with a note.
    AlertResolved {
        /// The incident's id.
        alert: String,
        /// What was found and done.
        note: String,
    },
    /// A custody, separation or gating rule refused what someone tried (BRIEF §3): the refusal
    /// is a fact of its own, with the person who tried as the record's actor. Serials, stations
    /// and ids only: never passport-holder data.
    Refused {
        /// The rule (`already_used`, `not_at_station`, ...: see `Refusal::rule`).
        rule: String,
        /// Where it was tried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        station: Option<StationId>,
        /// The custody session open there, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<SessionId>,
        /// Every serial the attempt and the refusal named.
        serials: Vec<Serial>,
        /// The refusal as the person was told it.
        reason: String,
    },
    /// The condition behind an alert ended (the device came back, the backlog shrank).
    AlertCleared {
        /// The alert's id.
        alert: String,
    },
    /// A supervisor acknowledged an alert.
    AlertAcknowledged {
        /// The alert's id.
        alert: String,
    },
}

impl ControlAction {
    /// The action's name (`jobs_submitted`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ControlAction::JobsSubmitted { .. } => "jobs_submitted",
            ControlAction::Assigned { .. } => "assigned",
            ControlAction::BagClosed { .. } => "bag_closed",
            ControlAction::JobChanged { .. } => "job_changed",
            ControlAction::JobReprioritised { .. } => "job_reprioritised",
            ControlAction::DeviceCommanded { .. } => "device_commanded",
            ControlAction::UserChanged { .. } => "user_changed",
            ControlAction::SignedIn { .. } => "signed_in",
            ControlAction::SignedOut { .. } => "signed_out",
            ControlAction::AlertRaised { .. } => "alert_raised",
            ControlAction::AlertCleared { .. } => "alert_cleared",
            ControlAction::AlertAcknowledged { .. } => "alert_acknowledged",
            ControlAction::AlertRepeated { .. } => "alert_repeated",
            ControlAction::AlertResolved { .. } => "alert_resolved",
            ControlAction::Refused { .. } => "refused",
        }
    }

    /// The jobs the action concerns (job index keys).
    pub fn jobs(&self) -> Vec<JobId> {
        match self {
            ControlAction::JobsSubmitted { jobs } | ControlAction::BagClosed { jobs, .. } => {
                jobs.clone()
            }
            ControlAction::Assigned { job, .. } => vec![*job],
            ControlAction::JobChanged { job, .. } | ControlAction::JobReprioritised { job, .. } => {
                vec![*job]
            }
            _ => Vec::new(),
        }
    }

    /// The users the action names besides its actor (operator index keys).
    pub fn users(&self) -> Vec<&OperatorId> {
        match self {
            ControlAction::Assigned { operator, .. } => vec![operator],
            ControlAction::UserChanged { user, .. }
            | ControlAction::SignedIn { user, .. }
            | ControlAction::SignedOut { user, .. } => vec![user],
            _ => Vec::new(),
        }
    }

    /// The station the action happened at (station index key).
    pub fn station(&self) -> Option<&StationId> {
        match self {
            ControlAction::Assigned { station, .. } => Some(station),
            ControlAction::SignedIn { station, .. }
            | ControlAction::SignedOut { station, .. }
            | ControlAction::Refused { station, .. } => station.as_ref(),
            _ => None,
        }
    }

    /// The serials whose traces list the action: those a refusal named.
    pub fn serials(&self) -> &[Serial] {
        match self {
            ControlAction::Refused { serials, .. } => serials,
            _ => &[],
        }
    }

    /// The custody session the action concerns (session index key).
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            ControlAction::Refused { session, .. } => session.as_ref(),
            _ => None,
        }
    }

    /// What happened, in words (no passport-holder data: actions carry none).
    pub fn describe(&self) -> String {
        match self {
            ControlAction::JobsSubmitted { jobs } => match (jobs.first(), jobs.last()) {
                (Some(a), Some(b)) if jobs.len() > 1 => {
                    format!("{} jobs submitted ({a} … {b})", jobs.len())
                }
                (Some(a), _) => format!("job {a} submitted"),
                _ => "empty submission".into(),
            },
            ControlAction::Assigned {
                job,
                stage,
                station,
                device,
                operator,
                reason,
            } => format!(
                "job {job} assigned: {} at {station} on {device} to {operator} ({reason})",
                stage.name()
            ),
            ControlAction::BagClosed {
                bag,
                destination,
                jobs,
            } => format!(
                "bag {bag} for {destination} closed with {} passports",
                jobs.len()
            ),
            ControlAction::JobChanged { job, event } => match event {
                JobEvent::Cancel { reason } => format!("job {job} cancelled: {reason}"),
                other => format!("job {job}: {}", other.name()),
            },
            ControlAction::JobReprioritised { job, class, reason } => {
                format!("job {job} reprioritised to {}: {reason}", class.name())
            }
            ControlAction::DeviceCommanded { device, command } => format!("{device}: {command}"),
            ControlAction::UserChanged { user, change } => match change {
                UserChange::Added { role } => format!("user {user} added as {role}"),
                UserChange::Disabled => format!("user {user} disabled"),
                UserChange::Enabled => format!("user {user} enabled"),
                UserChange::PinReset => format!("PIN of {user} reset"),
                UserChange::LockedOut { failures, origin } => match origin {
                    Some(o) => format!("user {user} locked out at {o} after {failures} wrong PINs"),
                    None => format!("user {user} locked out after {failures} wrong PINs"),
                },
                UserChange::Rostered { shifts } => {
                    format!("user {user} rostered for shift(s) {}", shifts.join(", "))
                }
            },
            ControlAction::SignedIn { user, station } => match station {
                Some(s) => format!("{user} signed in at {s}"),
                None => format!("{user} signed in"),
            },
            ControlAction::SignedOut {
                user,
                station,
                reason,
            } => match station {
                Some(s) => format!("{user} signed out of {s}: {reason}"),
                None => format!("{user} signed out: {reason}"),
            },
            ControlAction::AlertRaised {
                alert,
                kind,
                subject,
                detail,
                ..
            } => format!("alert {alert} raised: {kind} {subject}: {detail}"),
            ControlAction::AlertRepeated {
                alert,
                occurrence,
                detail,
                ..
            } => format!("alert {alert} occurred again (#{occurrence}): {detail}"),
            ControlAction::AlertResolved { alert, note } => {
                format!("alert {alert} resolved: {note}")
            }
            ControlAction::Refused { rule, reason, .. } => format!("refused ({rule}): {reason}"),
            ControlAction::AlertCleared { alert } => format!("alert {alert} cleared"),
            ControlAction::AlertAcknowledged { alert } => format!("alert {alert} acknowledged"),
        }
    }
}
