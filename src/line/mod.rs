//! The line: the dispatcher actor that joins the scheduler, the stations, the devices and the
//! ledger into the running hall.
//!
//! # Shape
//! One actor (a thread of its own, since every transition waits for the ledger's fsync) owns the
//! [`Scheduler`](hallctl_jobs::scheduler::Scheduler), the live job records and the stations.
//! Everyone else holds a cheap [`Line`] handle that sends it a command and awaits the reply.
//! After every command it runs the scheduler, so a job that arrives, a device that comes back, a
//! step that finishes or an operator who signs in is answered by new assignments at once.
//!
//! # Durability
//! Every transition is one ledger append ([`crate::ledger::Ledger::append_batch_with`]): the
//! record that accounts for it (with its actor) and the new job state are written in one batch
//! and acknowledged only after the fsync. A refused transition writes nothing.
//!
//! # Recovery
//! On start the actor reads every unfinished job back. A job that was in a step (printing,
//! laminating, QC) when the controller stopped is never run again silently: it becomes
//! *needs inspection*, recorded in the ledger, and waits for a supervisor's verdict.
//!
//! # Stations and devices
//! A station serves one stage; print and laminate stations drive one device. Device steps run as
//! tasks on the tokio runtime and report back to the actor; device readiness (link up, no
//! fault, not paused) is watched and fed to the scheduler.

mod actor;
pub mod alerts;
pub mod devices;
mod jobs;
pub mod monitor;
pub mod perf;
pub mod storage;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hallctl_jobs::intake::JobRequest;
use hallctl_jobs::job::{
    Destination, DeviceId, InspectionVerdict, JobId, OperatorId, PriorityClass, Separation, Stage,
    StationId,
};
use hallctl_jobs::mrz::ReadBack;
use hallctl_jobs::scheduler::{DeviceReadiness, SlackPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::ledger::{Ledger, LedgerError, LedgerEvent, Refusal, Serial, SessionId};
use crate::status::{Numbered, StatusHub};

pub use crate::config::StationKind;
pub use alerts::{Alert, AlertKind, AlertList, Severity};
pub use devices::DeviceHandle;
pub use jobs::{JobFilter, JobView, Page};
pub use monitor::{ClassQueue, OnTime, ThroughputView};
pub use perf::{PerfReport, PerfSummary, Period};
pub use storage::{StorageState, StorageStatus};

/// The actor id the line itself records its decisions under (assignments, recovery).
pub const LINE_ACTOR: &str = "LINE";

/// A device attached to a station.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// The driver handle.
    pub handle: DeviceHandle,
    /// For a simulated device only: the operator's hands, putting the item they scanned into the
    /// simulator's feeder before the step starts (at a real device the operator does this). It
    /// never talks to the device: what the device then reads comes back over its protocol.
    pub loader: Option<Loader>,
}

/// Puts an item (by serial) into a simulated device's feeder: see [`Device::loader`].
#[derive(Clone)]
pub struct Loader(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

impl Device {
    /// Has the item `serial` put into a simulated device (nothing for a real one).
    pub fn load(&self, serial: &str) {
        if let Some(l) = &self.loader {
            (l.0)(serial);
        }
    }
}

/// One station of the hall, as the line is built from the configuration.
#[derive(Debug, Clone)]
pub struct StationSetup {
    /// The station.
    pub id: StationId,
    /// What it does.
    pub kind: StationKind,
    /// Its device (print and laminate stations).
    pub device: Option<Device>,
}

/// Everything the line needs to start.
#[derive(Debug, Clone)]
pub struct LineSetup {
    /// Separation of duties (QC a third person or not).
    pub separation: Separation,
    /// The scheduler's ranking rule.
    pub slack: SlackPolicy,
    /// The stations.
    pub stations: Vec<StationSetup>,
    /// Destination offices accepted at intake (`None`: any well-formed code).
    pub destinations: Option<BTreeSet<Destination>>,
    /// The issuing states the hall prints for (`hall.issuing_state(s)`): intake refuses a job
    /// for any other.
    pub issuing_states: Vec<String>,
    /// How long a device step may take before it counts as a fault.
    pub step_timeout: Duration,
    /// `policy.roll_order = "strict"`: no patch out of roll order, even with a reason.
    pub strict_roll_order: bool,
    /// When alerts are raised (`[alerts]`).
    pub alerts: crate::config::AlertConfig,
    /// The ideal cycle time of each stage (print, laminate, QC, dispatch), for OEE
    /// (`[performance]`).
    pub ideal_cycle: [Duration; 4],
    /// The line stops recording when the ledger's file system has fewer bytes free
    /// (`server.min_free_disk_mb`; 0: never, only a failed write stops it).
    pub min_free_disk: u64,
    /// Readings of a booklet's MRZ that must disagree with the job's before QC spoils it
    /// (`qc.read_attempts`, at least 1).
    pub qc_read_attempts: u32,
    /// `[policy] issue_margin` and `max_held_per_session`: the issue cap (see
    /// [`crate::config::PolicyConfig`]).
    pub issue_cap: (u32, u32),
    /// How long a spoiled item may wait for its witnessed destruction before a critical alert
    /// (`custody.destroy_within_secs`; `None`: by the end of its shift).
    pub destroy_within: Option<Duration>,
}

/// Who tried what, where: the context a refusal is recorded with.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The person who tried.
    pub actor: OperatorId,
    /// Where.
    pub station: Option<StationId>,
    /// The custody session acted on.
    pub session: Option<SessionId>,
    /// The serials they scanned or named.
    pub serials: Vec<Serial>,
}

impl Attempt {
    /// `actor` at `station`, naming `serials`.
    pub fn at(
        actor: &OperatorId,
        station: &StationId,
        serials: impl IntoIterator<Item = Serial>,
    ) -> Attempt {
        Attempt {
            actor: actor.clone(),
            station: Some(station.clone()),
            session: None,
            serials: serials.into_iter().collect(),
        }
    }

    /// `actor` acting on `session`, naming `serials`.
    pub fn on(
        actor: &OperatorId,
        session: &SessionId,
        serials: impl IntoIterator<Item = Serial>,
    ) -> Attempt {
        Attempt {
            actor: actor.clone(),
            station: None,
            session: Some(session.clone()),
            serials: serials.into_iter().collect(),
        }
    }
}

/// Why the line refused a command. Messages name what is wrong and never carry
/// passport-holder data.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The request is malformed or out of range.
    #[error("{message}")]
    Invalid {
        /// The offending field, when one is to blame.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// One or more jobs of a batch are invalid or conflict: nothing of the batch was stored.
    #[error("{} of the submitted jobs were refused; nothing was stored", refused_jobs(.0))]
    Batch(Vec<BatchError>),
    /// No such job, station, device, bag or session.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the current state (a job in a step cannot be cancelled...).
    #[error("{0}")]
    Conflict(String),
    /// The actor may not do this (not their station, separation of duties, choosing work).
    #[error("{0}")]
    Forbidden(Refusal),
    /// The ledger's custody rules refused it.
    #[error("{0}")]
    Refused(Refusal),
    /// Storage failed: nothing was acknowledged.
    #[error("storage failure, not acknowledged: {0}")]
    Storage(String),
    /// The line is shutting down.
    #[error("the line is stopping")]
    Stopped,
}

fn refused_jobs(errors: &[BatchError]) -> usize {
    let mut idx: Vec<usize> = errors.iter().map(|e| e.index).collect();
    idx.dedup();
    idx.len()
}

impl LineError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        LineError::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

impl From<LedgerError> for LineError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Refused(r) => LineError::Refused(r),
            other => LineError::Storage(other.to_string()),
        }
    }
}

/// One refused job of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    /// Its position in the batch.
    pub index: usize,
    /// The field (`jobs[3].personalization.date_of_birth`).
    pub field: String,
    /// What is wrong (never the submitted value).
    pub message: String,
}

/// The outcome of one job of an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The job.
    pub job: JobId,
    /// The issuance system's tracking number.
    pub tracking_number: String,
    /// `created`, or `existing` for an identical resubmission.
    pub status: SubmitStatus,
}

/// Whether a submitted job is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitStatus {
    /// Accepted now.
    Created,
    /// Submitted before with the same content: the existing job.
    Existing,
}

/// What a station terminal shows: the station, who is there, and the work the line assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationView {
    /// The station.
    pub id: StationId,
    /// What it does.
    pub kind: StationKind,
    /// Its device, if any.
    pub device: Option<DeviceId>,
    /// The device's readiness as the scheduler sees it.
    pub readiness: DeviceReadiness,
    /// Who is signed in.
    pub operator: Option<OperatorId>,
    /// The open custody session.
    pub session: Option<SessionId>,
    /// Items the session still holds.
    pub held: u32,
    /// The open session's consumables (issued, applied, spoiled, returned, left).
    pub consumables: Option<Consumables>,
    /// The assigned step, if any.
    pub work: Option<WorkView>,
}

/// The accountable items of a station's open custody session, as the ledger counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumables {
    /// The session.
    pub session: SessionId,
    /// Items issued to it (a serial issued twice counts twice).
    pub issued: u64,
    /// Items printed or applied.
    pub applied: u64,
    /// Items spoiled, while held or after use (approved, or on the line's evidence).
    pub spoiled: u64,
    /// Used items reported spoiled, awaiting a supervisor's approval.
    #[serde(default)]
    pub spoiled_pending: u64,
    /// Items returned to the vault.
    pub returned: u64,
    /// Items it still holds.
    pub left: u32,
    /// Of those, serials set aside after a roll skip (to be returned or destroyed).
    #[serde(default)]
    pub set_aside: u32,
    /// Its operator left it holding items.
    #[serde(default)]
    pub abandoned: bool,
}

/// The step a station was assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkView {
    /// The job.
    pub job: JobId,
    /// Its tracking number.
    pub tracking_number: String,
    /// Its class.
    pub class: PriorityClass,
    /// Its destination.
    pub destination: Destination,
    /// The stage.
    pub stage: Stage,
    /// Where the step is: `assigned` (scan to start), `running` (the device works),
    /// `awaiting_confirmation` (confirm or report a defect).
    pub phase: String,
    /// The booklet of this job (known from print on).
    pub booklet: Option<Serial>,
    /// The patch scanned at lamination.
    pub patch: Option<Serial>,
    /// When the line assigned it.
    pub assigned_at: DateTime<Utc>,
}

/// A dispatch bag and its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bag {
    /// Its id (`BAG-LHR-01-20261121-001`).
    pub id: String,
    /// The destination office.
    pub destination: Destination,
    /// When the first passport went in.
    pub opened_at: DateTime<Utc>,
    /// When it was closed (the manifest is final from then on).
    pub closed_at: Option<DateTime<Utc>>,
    /// The passports in it, in packing order.
    pub items: Vec<BagItem>,
}

/// One passport in a bag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BagItem {
    /// The job.
    pub job: JobId,
    /// The issuance system's tracking number.
    pub tracking_number: String,
    /// The booklet serial.
    pub booklet: Serial,
    /// The passport number.
    pub document_number: String,
    /// Who packed it.
    pub packed_by: OperatorId,
}

/// The line at a glance (for the hall UI and monitoring). Built from counters the actor keeps
/// up to date as things happen, never by rescanning jobs; free of passport-holder data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineSnapshot {
    /// Every station.
    pub stations: Vec<StationView>,
    /// Jobs waiting per stage (print, laminate, QC, dispatch).
    pub queued: [u32; 4],
    /// Jobs needing a supervisor's inspection.
    pub needs_inspection: u32,
    /// Jobs held.
    pub held: u32,
    /// Unfinished jobs.
    pub open_jobs: u32,
    /// Jobs waiting for a step, by priority class and age (see [`monitor::AGE_BUCKETS`]).
    pub queues: Vec<ClassQueue>,
    /// When the longest-waiting queued job was received.
    pub oldest_queued: Option<DateTime<Utc>>,
    /// Jobs completed (dispatched) per hour over the last 24 hours and per shift.
    pub throughput: ThroughputView,
    /// Jobs dispatched by their due time, per class.
    pub on_time: Vec<OnTime>,
    /// Open alerts, oldest first.
    pub alerts: Vec<Alert>,
    /// Per-device OEE in the current shift (for supervisors and central monitoring; the
    /// stream leaves it out for operators).
    pub performance: Option<PerfSummary>,
    /// The store: recording or not, and why (see [`storage`]).
    #[serde(default)]
    pub storage: StorageStatus,
    /// The id of the last status event this snapshot reflects (see [`crate::status`]): a
    /// stream that starts from it skips the events up to it.
    pub events: u64,
}

/// A command: it runs on the actor and returns the delivery of its answer, which the actor
/// makes only after the scheduler ran and the snapshot was published, so that whoever got the
/// answer and then reads the snapshot (or opens the stream) sees its effect.
type Call = Box<dyn FnOnce(&mut actor::Actor) -> Reply + Send>;

pub(crate) type Reply = Box<dyn FnOnce() + Send>;

pub(crate) enum Cmd {
    Call(Call),
    DeviceDone {
        station: StationId,
        job: JobId,
        /// The device reference of this attempt: a late answer to an earlier attempt of the
        /// same job is ignored.
        attempt: u32,
        /// The serial the device's own reader read (`None`: no reading), or the fault.
        result: Result<Option<String>, String>,
    },
    DeviceState {
        station: StationId,
        readiness: DeviceReadiness,
    },
    /// Time passed: conditions that depend on it (a device offline too long, the oldest queued
    /// job, due times at risk) are looked at again.
    Tick,
}

/// The handle to the line. Cheap to clone; every method waits for the actor's durable answer.
#[derive(Clone)]
pub struct Line {
    tx: mpsc::Sender<Cmd>,
    snapshot: watch::Receiver<LineSnapshot>,
    status: StatusHub,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line").finish_non_exhaustive()
    }
}

/// The actor's thread: joined at shutdown, after every [`Line`] handle is dropped.
pub type LineThread = std::thread::JoinHandle<()>;

impl Line {
    /// Starts the line on `ledger`: recovers the stored jobs (interrupted steps become
    /// needs-inspection), starts watching the devices and runs the scheduler. Must be called
    /// inside a tokio runtime (device steps run on it).
    ///
    /// # Errors
    /// The stored state cannot be read or the recovery records cannot be written.
    pub fn start(setup: LineSetup, ledger: Arc<Ledger>) -> Result<(Line, LineThread), LineError> {
        Self::start_with(setup, ledger, StatusHub::default())
    }

    /// As [`Line::start`], publishing on `status` (tests choose its capacity).
    ///
    /// # Errors
    /// As [`Line::start`].
    pub fn start_with(
        setup: LineSetup,
        ledger: Arc<Ledger>,
        status: StatusHub,
    ) -> Result<(Line, LineThread), LineError> {
        let (tx, rx) = mpsc::channel(1024);
        let snap_rx = status.watch();
        let rt = tokio::runtime::Handle::current();
        let actor = actor::Actor::recover(setup, ledger, tx.clone(), rt, status.clone())?;
        actor.watch_devices();
        actor.start_ticker();
        let thread = std::thread::Builder::new()
            .name("line".into())
            .spawn(move || actor.run(rx))
            .map_err(|e| LineError::Storage(format!("cannot start the line thread: {e}")))?;
        Ok((
            Line {
                tx,
                snapshot: snap_rx,
                status,
            },
            thread,
        ))
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut actor::Actor) -> R + Send + 'static,
    ) -> Result<R, LineError> {
        let (tx, rx) = oneshot::channel();
        let call: Call = Box::new(move |a| {
            let answer = f(a);
            Box::new(move || {
                let _ = tx.send(answer);
            })
        });
        self.tx
            .send(Cmd::Call(call))
            .await
            .map_err(|_| LineError::Stopped)?;
        rx.await.map_err(|_| LineError::Stopped)
    }

    /// Stops the actor after the command it is handling. Steps still running on devices are
    /// found in flight at the next start and wait for inspection.
    pub async fn stop(&self) {
        let _ = self.call(actor::Actor::stop).await;
    }

    /// Whether the line's actor still runs.
    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> LineSnapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver of snapshots, for streaming.
    pub fn watch(&self) -> watch::Receiver<LineSnapshot> {
        self.snapshot.clone()
    }

    /// A receiver of the line's status events from now on (see [`crate::status`]). A receiver
    /// that falls behind gets `RecvError::Lagged` and should start again from
    /// [`Line::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.status.subscribe()
    }

    /// The line's status hub (events, snapshot, metrics).
    pub fn status(&self) -> &StatusHub {
        &self.status
    }

    /// Submits a batch of jobs, idempotently on tracking number: an identical resubmission
    /// returns the existing job, a conflicting one refuses the batch. All or nothing.
    ///
    /// # Errors
    /// [`LineError::Batch`] listing every refused job; storage errors.
    pub async fn submit(
        &self,
        actor: OperatorId,
        jobs: Vec<JobRequest>,
    ) -> Result<Vec<Submitted>, LineError> {
        // The states asked for, as codes (never anything else the request carries).
        let states: Vec<String> = jobs
            .iter()
            .map(|j| {
                let s = &j.personalization.issuing_state;
                let code = (1..=3).contains(&s.len()) && s.chars().all(|c| c.is_ascii_uppercase());
                if code { s.clone() } else { "?".into() }
            })
            .collect();
        let at = Attempt {
            actor: actor.clone(),
            station: None,
            session: None,
            serials: Vec::new(),
        };
        self.call(move |a| {
            let r = a.submit(&actor, jobs);
            // A job for another state is the hall's blanks used for a foreign passport: the
            // batch is refused as any bad batch, and recorded and alerted once.
            if let Err(LineError::Batch(errors)) = &r {
                let foreign: Vec<&BatchError> = errors
                    .iter()
                    .filter(|e| e.field.ends_with("personalization.issuing_state"))
                    .collect();
                if !foreign.is_empty() {
                    let mut named: Vec<String> = Vec::new();
                    for e in &foreign {
                        if let Some(s) = states.get(e.index)
                            && !named.contains(s)
                            && named.len() < 10
                        {
                            named.push(s.clone());
                        }
                    }
                    let refusal = Refusal::IssuingState {
                        states: named,
                        jobs: foreign.len(),
                        allowed: a.issuing_states().join(", "),
                    };
                    a.refused(&at, &LineError::Refused(refusal));
                }
            }
            r
        })
        .await?
    }

    /// One job, read from the store (every transition is stored before the actor moves on, so
    /// the store is never behind). Blocking: call it off the async workers.
    ///
    /// # Errors
    /// [`LineError::NotFound`]; storage errors.
    pub fn job(ledger: &Ledger, id: JobId) -> Result<JobView, LineError> {
        jobs::load_job(ledger.store(), id)?
            .map(|r| JobView::from(&r))
            .ok_or_else(|| LineError::NotFound(format!("no job {id}")))
    }

    /// Jobs by filter, in id order (ascending, or descending for `order=newest`), one page,
    /// read from the store without holding up the line. Blocking: call it off the async workers.
    ///
    /// # Errors
    /// An invalid filter; storage errors.
    pub fn jobs(ledger: &Ledger, filter: &JobFilter) -> Result<Page, LineError> {
        jobs::list(ledger, filter)
    }

    /// Holds a waiting job.
    ///
    /// # Errors
    /// [`LineError::Conflict`] when the job is not waiting.
    pub async fn hold(&self, actor: OperatorId, id: JobId) -> Result<JobView, LineError> {
        self.call(move |a| a.hold(&actor, id)).await?
    }

    /// Releases a held job to the queue it left.
    ///
    /// # Errors
    /// [`LineError::Conflict`] when the job is not held.
    pub async fn release(&self, actor: OperatorId, id: JobId) -> Result<JobView, LineError> {
        self.call(move |a| a.release(&actor, id)).await?
    }

    /// Cancels a job that is not in a step.
    ///
    /// # Errors
    /// [`LineError::Conflict`] when it is in a step or final; a reason is required.
    pub async fn cancel(
        &self,
        actor: OperatorId,
        id: JobId,
        reason: String,
    ) -> Result<JobView, LineError> {
        self.call(move |a| a.cancel(&actor, id, reason)).await?
    }

    /// Changes a job's priority class.
    ///
    /// # Errors
    /// [`LineError::Conflict`] for a final job.
    pub async fn reprioritise(
        &self,
        actor: OperatorId,
        id: JobId,
        class: PriorityClass,
        reason: String,
    ) -> Result<JobView, LineError> {
        self.call(move |a| a.reprioritise(&actor, id, class, reason))
            .await?
    }

    /// A supervisor's verdict on a job that needs inspection.
    ///
    /// # Errors
    /// [`LineError::Conflict`] when it does not need inspection.
    pub async fn inspect(
        &self,
        actor: OperatorId,
        id: JobId,
        verdict: InspectionVerdict,
        serial: Option<String>,
    ) -> Result<JobView, LineError> {
        self.call(move |a| a.inspect(&actor, id, verdict, serial))
            .await?
    }

    /// Whether `user` could sign in at `station` now (one station per operator, one operator
    /// per station). Asked before the PIN is checked against the account.
    ///
    /// # Errors
    /// [`LineError::Conflict`] naming who is where; [`LineError::NotFound`].
    pub async fn can_occupy(&self, user: OperatorId, station: StationId) -> Result<(), LineError> {
        self.call(move |a| a.can_occupy(&user, &station)).await?
    }

    /// Signs `user` in at `station`.
    ///
    /// # Errors
    /// As [`Line::can_occupy`].
    pub async fn occupy(&self, user: OperatorId, station: StationId) -> Result<(), LineError> {
        self.call(move |a| a.occupy(&user, &station)).await?
    }

    /// Signs `user` out of whatever station they are at (`reason`: how they left). An assigned
    /// step not yet started goes back to the queue; a custody session left holding items is
    /// recorded abandoned and alerted, naming every serial. `forced` (a token expired, a
    /// supervisor signs them out): with a step in flight the station stays theirs until the step
    /// ends, but the abandonment is recorded and alerted now.
    ///
    /// # Errors
    /// [`LineError::Conflict`] while their device is running a step.
    pub async fn vacate(
        &self,
        user: OperatorId,
        reason: String,
        forced: bool,
    ) -> Result<(), LineError> {
        self.call(move |a| a.vacate(&user, &reason, forced)).await?
    }

    /// A station's view (for its terminal).
    ///
    /// # Errors
    /// [`LineError::NotFound`].
    pub async fn station(&self, id: StationId) -> Result<StationView, LineError> {
        self.call(move |a| a.station_view(&id)).await?
    }

    /// Opens a custody session for the operator signed in at `station`.
    ///
    /// # Errors
    /// The operator is not signed in there; the ledger refuses (a session already open).
    pub async fn open_session(
        &self,
        operator: OperatorId,
        station: StationId,
    ) -> Result<SessionId, LineError> {
        let at = Attempt::at(&operator, &station, []);
        self.guarded(at, move |a| a.open_session(&operator, &station))
            .await
    }

    /// Issues items to a session, counted by two distinct people (their PINs already
    /// checked by the caller).
    ///
    /// # Errors
    /// The ledger's refusal (unknown serial, not in the vault, same counter twice...).
    pub async fn issue(
        &self,
        actor: OperatorId,
        session: SessionId,
        serials: Vec<Serial>,
        counters: [OperatorId; 2],
    ) -> Result<u64, LineError> {
        let at = Attempt::on(&actor, &session, serials.iter().cloned());
        self.guarded(at, move |a| a.issue(&actor, &session, serials, counters))
            .await
    }

    /// Returns unused items from a session to the vault, counted by two people.
    ///
    /// # Errors
    /// The ledger's refusal.
    pub async fn return_items(
        &self,
        actor: OperatorId,
        session: SessionId,
        serials: Vec<Serial>,
        counters: [OperatorId; 2],
    ) -> Result<u64, LineError> {
        let at = Attempt::on(&actor, &session, serials.iter().cloned());
        self.guarded(at, move |a| {
            a.return_items(&actor, &session, serials, counters)
        })
        .await
    }

    /// Closes a session (balanced, or with a supervisor-signed discrepancy).
    ///
    /// # Errors
    /// The ledger's refusal (items still held without a discrepancy).
    pub async fn close_session(
        &self,
        actor: OperatorId,
        session: SessionId,
        discrepancy: Option<crate::ledger::event::Discrepancy>,
    ) -> Result<u64, LineError> {
        let named = discrepancy.iter().flat_map(|d| d.missing.clone());
        let at = Attempt::on(&actor, &session, named.collect::<Vec<_>>());
        self.guarded(at, move |a| a.close_session(&actor, &session, discrepancy))
            .await
    }

    /// Print station: the operator scanned the booklet for the assigned job; the printer
    /// starts. `job`, if given, must be the assigned job (operators never choose).
    ///
    /// # Errors
    /// Not this operator's station, no assigned step, the ledger's refusal of the booklet.
    pub async fn scan_booklet(
        &self,
        actor: OperatorId,
        station: StationId,
        booklet: Serial,
        job: Option<JobId>,
    ) -> Result<StationView, LineError> {
        let at = Attempt::at(&actor, &station, [booklet.clone()]);
        self.guarded(at, move |a| a.scan_booklet(&actor, &station, booklet, job))
            .await
    }

    /// Lamination station: the operator scanned the patch (and, from a terminal, first the
    /// booklet in their hands); the patch is recorded as applied (the gate) and the laminator
    /// feeds.
    ///
    /// # Errors
    /// As [`Line::scan_booklet`]; the booklet in hand was printed by `actor` or is not the
    /// assigned job's; the ledger's refusal of the patch (not issued to this station's session,
    /// used, out of roll order without a reason).
    pub async fn scan_patch(
        &self,
        actor: OperatorId,
        station: StationId,
        patch: Serial,
        skip_reason: Option<String>,
        job: Option<JobId>,
        booklet: Option<Serial>,
    ) -> Result<StationView, LineError> {
        let at = Attempt::at(
            &actor,
            &station,
            [Some(patch.clone()), booklet.clone()].into_iter().flatten(),
        );
        self.guarded(at, move |a| {
            a.scan_patch(&actor, &station, patch, skip_reason, job, booklet)
        })
        .await
    }

    /// The operator confirms the finished print or lamination.
    ///
    /// # Errors
    /// Nothing awaits confirmation at the station.
    pub async fn confirm(
        &self,
        actor: OperatorId,
        station: StationId,
    ) -> Result<StationView, LineError> {
        let at = Attempt::at(&actor, &station, []);
        self.guarded(at, move |a| a.confirm(&actor, &station)).await
    }

    /// The operator reports a defect on the step's item: it is spoiled and the job goes back
    /// to printing on a new booklet.
    ///
    /// # Errors
    /// Nothing to report at the station; a reason is required.
    pub async fn report_defect(
        &self,
        actor: OperatorId,
        station: StationId,
        reason: String,
    ) -> Result<StationView, LineError> {
        let at = Attempt::at(&actor, &station, []);
        self.guarded(at, move |a| a.report_defect(&actor, &station, reason))
            .await
    }

    /// Spoilage reported at terminals and not yet destroyed: awaiting a supervisor's decision,
    /// or approved (or spoiled on the line's evidence) and awaiting witnessed destruction.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn spoilage(&self) -> Result<SpoilageList, LineError> {
        self.call(|a| a.spoilage()).await?
    }

    /// A supervisor approves or rejects the spoilage reported on `serial`'s report, with the
    /// serials they scanned in hand: exactly the report's items (the patch and the booklet it
    /// is on, for a lamination). Approved, the items wait for witnessed destruction and the job
    /// is printed again; rejected, they are back where they were and the job goes on.
    ///
    /// # Errors
    /// Nothing awaits a decision on `serial`; the scanned serials are not the report's; the
    /// supervisor reported it (all recorded as refusals); storage errors.
    pub async fn decide_spoilage(
        &self,
        actor: OperatorId,
        serial: Serial,
        decision: SpoilageDecision,
    ) -> Result<SpoilageReport, LineError> {
        let mut serials = vec![serial.clone()];
        serials.extend(decision.scanned.iter().filter(|s| **s != serial).cloned());
        let at = Attempt {
            actor: actor.clone(),
            station: None,
            session: None,
            serials,
        };
        self.guarded(at, move |a| a.decide_spoilage(&actor, &serial, decision))
            .await
    }

    /// QC: the MRZ read back from the booklet, compared with the job's.
    ///
    /// # Errors
    /// Not the assigned job's booklet; not this operator's station.
    pub async fn qc(
        &self,
        actor: OperatorId,
        station: StationId,
        booklet: Serial,
        mrz: [String; 2],
    ) -> Result<QcOutcome, LineError> {
        let at = Attempt::at(&actor, &station, [booklet.clone()]);
        self.guarded(at, move |a| a.qc(&actor, &station, booklet, mrz))
            .await
    }

    /// Dispatch: the operator scanned the finished booklet; it goes into its destination's open
    /// bag.
    ///
    /// # Errors
    /// Not the assigned job's booklet; not this operator's station.
    pub async fn pack(
        &self,
        actor: OperatorId,
        station: StationId,
        booklet: Serial,
    ) -> Result<Bag, LineError> {
        let at = Attempt::at(&actor, &station, [booklet.clone()]);
        self.guarded(at, move |a| a.pack(&actor, &station, booklet))
            .await
    }

    /// Closes a bag: its manifest is final.
    ///
    /// # Errors
    /// No such open bag.
    pub async fn close_bag(&self, actor: OperatorId, bag: String) -> Result<Bag, LineError> {
        self.call(move |a| a.close_bag(&actor, &bag)).await?
    }

    /// A bag and its manifest.
    ///
    /// # Errors
    /// No such bag.
    pub async fn bag(&self, bag: String) -> Result<Bag, LineError> {
        self.call(move |a| a.bag(&bag)).await?
    }

    /// Clears a device's fault once its cause was removed (a supervisor, or the operator at
    /// its station).
    ///
    /// # Errors
    /// No such device; it reports no fault.
    pub async fn clear_fault(
        &self,
        actor: OperatorId,
        device: DeviceId,
    ) -> Result<StationView, LineError> {
        self.call(move |a| a.clear_fault(&actor, &device)).await?
    }

    /// Open alerts and the recently closed ones.
    ///
    /// # Errors
    /// The line stopped.
    pub async fn alerts(&self) -> Result<AlertList, LineError> {
        self.call(|a| a.alerts()).await
    }

    /// A supervisor acknowledges an alert (recorded in the ledger with `actor`): seen. It stays
    /// open: a condition until it clears, an incident until it is resolved.
    ///
    /// # Errors
    /// [`LineError::NotFound`] for an unknown id, [`LineError::Conflict`] when it was
    /// acknowledged already; storage errors.
    pub async fn ack_alert(&self, actor: OperatorId, id: String) -> Result<Alert, LineError> {
        self.call(move |a| a.ack_alert(&actor, &id)).await?
    }

    /// A supervisor resolves an incident with a note (recorded with `actor`): it closes.
    ///
    /// # Errors
    /// [`LineError::NotFound`] for an id not open; [`LineError::Conflict`] for a condition
    /// or an incident already closed; storage errors.
    pub async fn resolve_alert(
        &self,
        actor: OperatorId,
        id: String,
        note: String,
    ) -> Result<Alert, LineError> {
        self.call(move |a| a.resolve_alert(&actor, &id, &note))
            .await?
    }

    /// Records a custody event outside any station (a destruction, a missing report) through
    /// the line, so that a refusal is recorded and alerted and a missing report raises its
    /// alert.
    ///
    /// # Errors
    /// The ledger's refusal; storage errors.
    pub async fn custody(
        &self,
        actor: OperatorId,
        event: LedgerEvent,
    ) -> Result<crate::ledger::Receipt, LineError> {
        let serials: Vec<Serial> = match &event {
            LedgerEvent::ItemsDestroyed { serials, .. } => serials.clone(),
            LedgerEvent::ItemReportedMissing { serial, .. }
            | LedgerEvent::ItemSpoiled { serial, .. } => vec![serial.clone()],
            LedgerEvent::SpoilageDecided { serials, .. } => serials.clone(),
            _ => Vec::new(),
        };
        let at = Attempt {
            actor: actor.clone(),
            station: None,
            session: None,
            serials,
        };
        self.guarded(at, move |a| a.custody(&actor, event)).await
    }

    /// Raises an incident (or an occurrence of the open one) the line did not see itself (a
    /// sign-in lockout).
    ///
    /// # Errors
    /// The line stopped.
    pub async fn raise_incident(
        &self,
        kind: AlertKind,
        subject: String,
        detail: String,
    ) -> Result<(), LineError> {
        self.call(move |a| a.raise(kind, &subject, detail)).await
    }

    /// Records a refusal made outside the line (an operator acting on another's session, a
    /// wrong co-signer PIN) as a fact and an alert occurrence, like the line's own.
    ///
    /// # Errors
    /// The line stopped.
    pub async fn record_refusal(&self, at: Attempt, refusal: Refusal) -> Result<(), LineError> {
        self.call(move |a| a.refused(&at, &LineError::Forbidden(refusal)))
            .await
    }

    /// [`Line::record_refusal`], then the refusal as the answer (403): one call for the API's
    /// own gates. A stopped line is answered as such.
    pub async fn refuse(&self, at: Attempt, refusal: Refusal) -> LineError {
        match self.record_refusal(at, refusal.clone()).await {
            Ok(()) => LineError::Forbidden(refusal),
            Err(e) => e,
        }
    }

    /// Runs `f` on the actor; a refusal of a rule it returns is recorded ([`Line::record_refusal`])
    /// before the answer goes back.
    async fn guarded<R: Send + 'static>(
        &self,
        at: Attempt,
        f: impl FnOnce(&mut actor::Actor) -> Result<R, LineError> + Send + 'static,
    ) -> Result<R, LineError> {
        self.call(move |a| {
            let r = f(a);
            if let Err(e) = &r {
                a.refused(&at, e);
            }
            r
        })
        .await?
    }

    /// Staff and machine performance over a shift or a day (supervisors and monitoring only:
    /// never shown at stations, never used by the scheduler).
    ///
    /// # Errors
    /// The line stopped.
    pub async fn performance(&self, period: Period) -> Result<PerfReport, LineError> {
        self.call(move |a| a.performance(&period)).await
    }

    /// Pauses (or resumes) a device: the scheduler stops (or starts again) assigning to it.
    ///
    /// # Errors
    /// No such device.
    pub async fn pause_device(
        &self,
        actor: OperatorId,
        device: DeviceId,
        pause: bool,
    ) -> Result<StationView, LineError> {
        self.call(move |a| a.pause_device(&actor, &device, pause))
            .await?
    }
}

/// A supervisor's decision on reported spoilage.
#[derive(Debug, Clone)]
pub struct SpoilageDecision {
    /// Approve (spoiled, to be destroyed) or reject (back where it was).
    pub approved: bool,
    /// The serials the supervisor scanned in hand.
    pub scanned: Vec<Serial>,
    /// Their note.
    pub note: String,
}

/// One spoil report: its items, as they are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpoilageReport {
    /// The job the items were used for, if known.
    #[schema(value_type = Option<u64>)]
    pub job: Option<JobId>,
    /// The items (a lamination report: the patch and the booklet it is on).
    #[schema(value_type = Vec<String>)]
    pub serials: Vec<Serial>,
    /// `awaiting_approval`, `approved` (awaiting witnessed destruction), `rejected` (back in
    /// use) or `spoiled` (on the line's evidence, awaiting witnessed destruction).
    pub status: String,
    /// Why.
    pub reason: String,
    /// Who reported (or recorded) the spoil.
    #[schema(value_type = String)]
    pub reported_by: OperatorId,
    /// When.
    pub reported_at: DateTime<Utc>,
    /// The supervisor who approved it.
    #[schema(value_type = Option<String>)]
    pub approved_by: Option<OperatorId>,
}

/// Spoilage not yet destroyed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpoilageList {
    /// Reports awaiting a supervisor's decision, oldest first.
    pub pending: Vec<SpoilageReport>,
    /// Spoiled items awaiting witnessed destruction (approved, or on the line's evidence).
    pub to_destroy: Vec<SpoilageReport>,
}

/// The result of a QC check. Names MRZ fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QcOutcome {
    /// Whether the MRZ read back matched (`outcome` is `passed`).
    pub passed: bool,
    /// What the line did with the reading.
    pub outcome: QcVerdict,
    /// The MRZ fields that differ from the job's or fail their checks, in MRZ order
    /// (`date_of_birth`, `composite_check`, ...); empty when the reading passed.
    pub fields: Vec<String>,
    /// Which reading of this booklet this was, from 1.
    pub read: u32,
    /// Readings a mismatch gets before it spoils the booklet (`qc.read_attempts`).
    pub read_attempts: u32,
    /// What happens next, in words.
    pub message: String,
}

/// What QC does with one reading of a booklet's MRZ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QcVerdict {
    /// The reading matches the job's MRZ field by field: the job is ready for dispatch.
    Passed,
    /// It does not match, and readings are left: the operator reads the booklet again. Nothing
    /// changes: no ledger record, no spoil.
    Reread,
    /// It does not match on the last reading allowed: booklet and patch are spoiled and the job
    /// goes back to printing.
    Spoiled,
}

/// The verdict on reading number `read` (from 1) of a booklet, with `attempts` readings allowed
/// before a mismatch spoils it (fewer than 1 counts as 1).
pub fn qc_verdict(reading: &ReadBack, read: u32, attempts: u32) -> QcVerdict {
    match reading {
        ReadBack::Matches => QcVerdict::Passed,
        ReadBack::Invalid(_) | ReadBack::Differs(_) if read < attempts => QcVerdict::Reread,
        ReadBack::Invalid(_) | ReadBack::Differs(_) => QcVerdict::Spoiled,
    }
}

/// How a reading fails, in words that name fields only (`differs in date_of_birth, ...`).
pub fn qc_mismatch(reading: &ReadBack) -> String {
    let names = reading
        .fields()
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ");
    match reading {
        ReadBack::Matches => "matches".into(),
        ReadBack::Invalid(_) => format!("is not a valid MRZ (invalid: {names})"),
        ReadBack::Differs(_) => format!("differs in {names}"),
    }
}

#[cfg(test)]
mod qc_tests {
    use super::*;
    use hallctl_jobs::mrz::MrzField;

    #[test]
    fn a_mismatch_is_read_again_until_the_last_attempt() {
        let differs = ReadBack::Differs(vec![MrzField::DateOfBirth]);
        let invalid = ReadBack::Invalid(vec![MrzField::CompositeCheck]);
        for r in [&differs, &invalid] {
            assert_eq!(qc_verdict(r, 1, 2), QcVerdict::Reread);
            assert_eq!(qc_verdict(r, 2, 2), QcVerdict::Spoiled);
            assert_eq!(qc_verdict(r, 1, 1), QcVerdict::Spoiled);
            assert_eq!(qc_verdict(r, 1, 0), QcVerdict::Spoiled);
            assert_eq!(qc_verdict(r, 4, 5), QcVerdict::Reread);
        }
        assert_eq!(qc_verdict(&ReadBack::Matches, 1, 2), QcVerdict::Passed);
        assert_eq!(qc_verdict(&ReadBack::Matches, 2, 2), QcVerdict::Passed);
    }

    #[test]
    fn a_mismatch_is_worded_by_field_names() {
        assert_eq!(
            qc_mismatch(&ReadBack::Differs(vec![
                MrzField::DateOfBirth,
                MrzField::DateOfBirthCheck
            ])),
            "differs in date_of_birth, date_of_birth_check"
        );
        assert_eq!(
            qc_mismatch(&ReadBack::Invalid(vec![MrzField::CompositeCheck])),
            "is not a valid MRZ (invalid: composite_check)"
        );
    }
}
