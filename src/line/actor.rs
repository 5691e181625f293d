//! The line actor: every command is handled here, one at a time, and each transition is made
//! durable (ledger record + job state in one batch) before it is acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use hallctl_jobs::intake::{IntakeContext, JobRequest, validate};
use hallctl_jobs::job::{
    Destination, DeviceId, InspectionVerdict, JobEvent, JobId, JobRecord, JobState, OperatorId,
    PriorityClass, Separation, SpoilReason, Stage, StationId, StepRun,
};
use hallctl_jobs::scheduler::{
    Assignment, DeviceReadiness, Millis, Policy, QueuedJob, Scheduler, StationSpec,
};
use tokio::sync::{mpsc, watch};

use super::alerts::{
    Alert, AlertBook, AlertKind, AlertList, ConditionGates, Hysteresis, Occurrence, Severity,
    Verdict, level_holds,
};
use super::jobs::{self as store_jobs, JobView, TrackingEntry};
use super::monitor::{QueueStats, RateMinimum, THROUGHPUT_KEY, Throughput, predict_at_risk};
use super::perf::{DeviceActivity, OperatorActivity, Perf, PerfReport, Period};
use super::storage::{StorageState, StorageStatus, StorageWatch};
use super::{
    Attempt, Bag, BagItem, BatchError, Cmd, Consumables, Device, LINE_ACTOR, LineError, LineSetup,
    LineSnapshot, QcOutcome, QcVerdict, SpoilageDecision, SpoilageList, SpoilageReport,
    StationKind, StationView, SubmitStatus, Submitted, WorkView, devices,
};
use crate::config::AlertConfig;
use crate::ledger::event::Discrepancy;
use crate::ledger::{
    ControlAction, ItemState, Ledger, LedgerEvent, Refusal, Serial, SessionId, ShiftId,
};
use crate::status::StatusEvent;

/// The most jobs one submission may carry.
pub const MAX_BATCH: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Assigned: waits for the operator's scan.
    Assigned,
    /// The device is working.
    Running,
    /// The device finished: the operator confirms or reports a defect.
    AwaitingConfirm,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Assigned => "assigned",
            Phase::Running => "running",
            Phase::AwaitingConfirm => "awaiting_confirmation",
        }
    }
}

#[derive(Debug, Clone)]
struct Step {
    /// The device reference of the running attempt (0 before the device starts).
    attempt: u32,
    job: JobId,
    stage: Stage,
    phase: Phase,
    booklet: Option<Serial>,
    patch: Option<Serial>,
    assigned_at: DateTime<Utc>,
    /// QC: readings of the booklet that did not match so far (each asked for a re-read).
    qc_mismatches: u32,
}

#[derive(Debug)]
struct StationRt {
    id: StationId,
    kind: StationKind,
    device: Option<Device>,
    operator: Option<OperatorId>,
    reported: DeviceReadiness,
    paused: bool,
    step: Option<Step>,
    /// Since when the device has been offline (for the offline alert).
    offline_since: Option<DateTime<Utc>>,
    /// The open custody session's counts, refreshed whenever custody changes here.
    consumables: Option<Consumables>,
    /// The operator's departure with items held was recorded since they last took the
    /// station (a supervisor's repeated attempts to sign them out are one departure; a return
    /// and a second departure are two).
    departure_flagged: bool,
}

impl StationRt {
    fn device_id(&self) -> DeviceId {
        self.device
            .as_ref()
            .map_or_else(|| DeviceId::new(self.id.as_str()), |d| d.id.clone())
    }

    fn readiness(&self) -> DeviceReadiness {
        if self.paused {
            DeviceReadiness::Paused
        } else {
            self.reported
        }
    }
}

/// The serials `events` spoil.
fn spoiled_serials(events: &[LedgerEvent]) -> Vec<Serial> {
    events
        .iter()
        .filter_map(|e| match e {
            LedgerEvent::ItemSpoiled { serial, .. } => Some(serial.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) struct Actor {
    ledger: Arc<Ledger>,
    separation: Separation,
    destinations: Option<BTreeSet<Destination>>,
    step_timeout: Duration,
    strict_roll_order: bool,
    /// `qc.read_attempts`: readings before a QC mismatch spoils.
    qc_read_attempts: u32,
    /// (margin over the work share, absolute maximum) of items a session may hold.
    issue_cap: (u32, u32),
    /// `custody.destroy_within_secs` (`None`: by the end of the shift).
    destroy_within: Option<Duration>,
    /// Spoiled serials already named by a `spoilage_not_destroyed` alert (seeded at a start
    /// from the stored alerts).
    overdue_alerted: HashSet<Serial>,
    /// The issuing states intake accepts (`hall.issuing_state(s)`).
    issuing_states: Vec<String>,
    sched: Scheduler,
    jobs: HashMap<JobId, JobRecord>,
    next_id: u64,
    stations: Vec<StationRt>,
    by_id: HashMap<StationId, usize>,
    bags: BTreeMap<Destination, Bag>,
    tx: mpsc::Sender<Cmd>,
    rt: tokio::runtime::Handle,
    status: crate::status::StatusHub,
    stopping: bool,
    /// Device references, one per attempt (never reused while the controller runs; started
    /// from the clock so that a restart does not reuse a recent one either).
    next_attempt: u32,
    /// What the storage watch saw last ([`super::storage`]); it also halts the ledger.
    storage: watch::Receiver<StorageStatus>,
    /// The state the line last acted on (alerts raised or cleared).
    storage_seen: StorageState,
    /// The shift whose open sessions were last checked (None: not yet, since the start).
    shift_checked: Option<ShiftId>,
    /// The `storage_fault` alert while the store records nothing (it cannot be recorded then;
    /// it is, raised and cleared, when recording resumes).
    storage_alert: Option<Alert>,
    /// Stops the watch when the line stops (the actor drops it last).
    _storage_watch: Option<StorageWatch>,
    alert_cfg: AlertConfig,
    alerts: AlertBook,
    /// The changes under way of the `backlog` and `due_at_risk` conditions (hysteresis).
    gates: ConditionGates,
    /// Jobs in the scheduler's queues, by class and age.
    queue: QueueStats,
    /// Dispatched jobs per hour and shift; on-time counts; the current rate.
    throughput: Throughput,
    /// Every unfinished job by due time (for the due-at-risk prediction).
    by_due: BTreeSet<(Millis, JobId)>,
    perf: Perf,
    ticks: u64,
}

/// The id of the in-memory `storage_fault` alert (the ledger cannot number it while it is down).
pub(crate) const STORAGE_ALERT: &str = "AL-storage";

fn ms(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

fn line_actor() -> OperatorId {
    OperatorId::new(LINE_ACTOR)
}

fn action(a: ControlAction) -> LedgerEvent {
    LedgerEvent::Action { action: a }
}

fn changed(job: JobId, event: JobEvent) -> LedgerEvent {
    action(ControlAction::JobChanged { job, event })
}

fn queued(r: &JobRecord) -> QueuedJob {
    QueuedJob {
        id: r.job.id,
        class: r.job.class,
        groups: r.job.groups.clone(),
        due: ms(r.job.due),
        received: ms(r.job.received_at),
        printed_by: r.crew.printed.as_ref().map(|s| s.operator.clone()),
        laminated_by: r.crew.laminated.as_ref().map(|s| s.operator.clone()),
    }
}

fn conflict(e: impl std::fmt::Display) -> LineError {
    LineError::Conflict(e.to_string())
}

/// The throughput counts as saved ([`Actor::save_throughput`]), with the dispatches recorded
/// after them counted (what a kill -9 or a power cut left uncounted); with none saved, the last
/// 24 hours' dispatches; fresh ones when they cannot be read (said in the log: counts are figures, not facts; the ledger
/// keeps the facts).
fn restore_throughput(ledger: &Ledger, now: Millis) -> Throughput {
    let saved = match ledger.store().meta_get(THROUGHPUT_KEY) {
        Ok(Some(v)) => serde_json::from_slice::<Throughput>(&v)
            .map_err(|e| {
                tracing::warn!(
                    "the saved throughput counts are unreadable ({e}); counting from now"
                )
            })
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("the saved throughput counts cannot be read ({e}); counting from now");
            None
        }
    };
    let (mut th, from) = match saved {
        Some(th) => {
            let from = th.seq.saturating_add(1);
            (th, from)
        }
        // None saved (a data directory of an earlier version): the last 24 hours' dispatches,
        // from the time index, once.
        None => {
            let day_ago = super::monitor::at(now - 24 * 3_600_000);
            let first = ledger
                .records(
                    &crate::ledger::query::RecordFilter {
                        from: Some(day_ago),
                        ..Default::default()
                    },
                    1,
                )
                .ok()
                .and_then(|r| r.first().map(|r| r.seq));
            let Some(first) = first else {
                return Throughput::new(now);
            };
            (Throughput::new(now - 24 * 3_600_000), first)
        }
    };
    let head = ledger.head();
    for seq in from..=head {
        let rec = match ledger.record(seq) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("throughput: record {seq} unreadable ({e}); counts may be short");
                continue;
            }
        };
        if let LedgerEvent::Dispatched { job, .. } = rec.event {
            match super::jobs::load_job(ledger.store(), job) {
                Ok(Some(j)) => th.completed(ms(rec.at), ms(j.job.due), j.job.class),
                _ => tracing::warn!("throughput: job {job} of record {seq} not found"),
            }
        }
    }
    tracing::info!(
        "throughput counts: {} from record {from} to {head}",
        if from > 1 && th.seq > 0 {
            "saved ones, with the dispatches recorded"
        } else {
            "the dispatches recorded"
        }
    );
    th.seq = head;
    th.new_run(now);
    th
}

/// The shift a moment belongs to: A 06–14, B 14–22, C 22–06 (dated by the day it started).
pub(crate) fn shift_of(t: DateTime<Utc>) -> ShiftId {
    // The small hours belong to the C shift that began the evening before.
    let day = if t.hour() < 6 {
        t.date_naive().pred_opt().unwrap_or(t.date_naive())
    } else {
        t.date_naive()
    };
    let letter = crate::roster::Shift::at(t).letter();
    ShiftId::new(format!("{}{letter}", day.format("%Y-%m-%d")))
}

/// The most items one session may hold: its share of `work` (jobs queued for or running at its
/// stage) among the `staffed` stations of its kind, rounded up, plus `margin`; at most `max`.
fn issue_cap(work: usize, staffed: usize, margin: u32, max: u32) -> u64 {
    let share = work.div_ceil(staffed.max(1)) as u64;
    (share + u64::from(margin)).min(u64::from(max))
}

/// The first 10 of `serials`, comma-separated, then `…` when there are more: what an alert's
/// detail lists (its `serials` name them all).
fn first_serials(serials: &[Serial]) -> String {
    const SHOWN: usize = 10;
    let mut list: Vec<&str> = serials.iter().take(SHOWN).map(Serial::as_str).collect();
    if serials.len() > SHOWN {
        list.push("…");
    }
    list.join(", ")
}

/// What an abandonment alert says: the session, how it was left, what it holds (the first 10).
fn abandoned_detail(session: &SessionId, held: &[Serial], reason: &str) -> String {
    format!(
        "session {session} was left holding {} item(s) ({reason}): {}",
        held.len(),
        first_serials(held)
    )
}

/// Whether `s` is open although its shift is over (`current` is another shift).
fn open_past_its_shift(s: &crate::ledger::Session, current: &ShiftId) -> bool {
    s.is_open() && s.shift != *current
}

impl Actor {
    pub(crate) fn recover(
        setup: LineSetup,
        ledger: Arc<Ledger>,
        tx: mpsc::Sender<Cmd>,
        rt: tokio::runtime::Handle,
        status: crate::status::StatusHub,
    ) -> Result<Actor, LineError> {
        let now = Utc::now();
        let mut sched = Scheduler::new(Policy::Slack(setup.slack.clone()), setup.separation);
        let mut stations = Vec::new();
        let mut by_id = HashMap::new();
        for s in setup.stations {
            if by_id.contains_key(&s.id) {
                return Err(LineError::invalid(
                    "stations",
                    format!("station {} appears twice", s.id),
                ));
            }
            let rt_station = StationRt {
                id: s.id.clone(),
                kind: s.kind,
                reported: if s.device.is_some() {
                    DeviceReadiness::Offline
                } else {
                    DeviceReadiness::Ready
                },
                device: s.device,
                operator: None,
                paused: false,
                step: None,
                offline_since: None,
                consumables: None,
                departure_flagged: false,
            };
            if let Some(stage) = s.kind.stage() {
                sched
                    .add_station(
                        StationSpec {
                            id: s.id.clone(),
                            stage,
                            device: rt_station.device_id(),
                        },
                        ms(now),
                    )
                    .map_err(conflict)?;
                sched
                    .set_device(&s.id, rt_station.readiness())
                    .map_err(conflict)?;
            }
            by_id.insert(s.id.clone(), stations.len());
            stations.push(rt_station);
        }
        let mut perf = Perf::new(setup.ideal_cycle);
        for st in &mut stations {
            if let Some(stage) = st.kind.stage() {
                perf.add_device(st.device_id(), st.id.clone(), stage);
            }
            if st.reported == DeviceReadiness::Offline {
                st.offline_since = Some(now);
            }
        }
        let alerts = AlertBook::load(ledger.store())?;
        // The items already alerted before a restart: the stored not-destroyed alerts (open, or
        // among the recent closed) name them, so a restart does not alert them again.
        let list = alerts.list();
        let overdue_alerted = list
            .open
            .iter()
            .chain(&list.recent)
            .filter(|a| a.kind == AlertKind::SpoilageNotDestroyed)
            .flat_map(|a| a.serials.iter().cloned())
            .collect();
        let ledger_for_counts = ledger.clone();
        let mut a = Actor {
            ledger,
            separation: setup.separation,
            destinations: setup.destinations,
            step_timeout: setup.step_timeout,
            strict_roll_order: setup.strict_roll_order,
            qc_read_attempts: setup.qc_read_attempts,
            issue_cap: setup.issue_cap,
            destroy_within: setup.destroy_within,
            overdue_alerted,
            issuing_states: setup.issuing_states,
            sched,
            jobs: HashMap::new(),
            next_id: 1,
            stations,
            by_id,
            bags: BTreeMap::new(),
            tx,
            rt,
            status,
            stopping: false,
            next_attempt: u32::try_from(Utc::now().timestamp() & 0x3FFF_FFFF).unwrap_or(1) | 1,
            // Until the watch starts (after recovery: a disk that is almost full must not
            // keep the controller from starting and showing why).
            storage: watch::channel(StorageStatus::default()).1,
            storage_seen: StorageState::Ok,
            shift_checked: None,
            storage_alert: None,
            _storage_watch: None,
            gates: ConditionGates::new(Hysteresis {
                raise_after: i64::from(setup.alerts.raise_after_secs) * 1000,
                clear_after: i64::from(setup.alerts.clear_after_secs) * 1000,
            }),
            alert_cfg: setup.alerts,
            alerts,
            queue: QueueStats::default(),
            throughput: restore_throughput(&ledger_for_counts, ms(now)),
            by_due: BTreeSet::new(),
            perf,
            ticks: 0,
        };
        for i in 0..a.stations.len() {
            a.refresh_consumables(i)?;
        }
        a.load()?;
        let (w, rx) = StorageWatch::start(a.ledger.clone(), setup.min_free_disk)
            .map_err(|e| LineError::Storage(format!("cannot start the storage watch: {e}")))?;
        a._storage_watch = Some(w);
        a.storage = rx;
        Ok(a)
    }

    /// Reads the stored jobs and bags back; interrupted steps become needs-inspection.
    fn load(&mut self) -> Result<(), LineError> {
        let ledger = self.ledger.clone();
        let store = ledger.store();
        let (records, next_id) = store_jobs::load_live(store)?;
        self.next_id = self.next_id.max(next_id);
        let mut interrupted = Vec::new();
        for r in records {
            if r.state.is_final() {
                continue;
            }
            if r.state.in_step().is_some() {
                let next = r
                    .apply(&JobEvent::Interrupt, &self.separation)
                    .map_err(conflict)?;
                interrupted.push(next);
            } else {
                if let Some(w) = r.state.waiting() {
                    self.enqueue(queued(&r), w.next_stage())?;
                }
                self.by_due.insert((ms(r.job.due), r.job.id));
                self.jobs.insert(r.job.id, r);
            }
        }
        if !interrupted.is_empty() {
            let events = interrupted
                .iter()
                .map(|r| changed(r.job.id, JobEvent::Interrupt))
                .collect();
            let refs: Vec<&JobRecord> = interrupted.iter().collect();
            self.persist(&line_actor(), events, &refs, Vec::new())?;
            tracing::warn!(
                jobs = interrupted.len(),
                "jobs were in a step when the controller stopped: they need inspection"
            );
            for r in interrupted {
                self.by_due.insert((ms(r.job.due), r.job.id));
                self.jobs.insert(r.job.id, r);
            }
        }
        for b in store_jobs::load_open_bags(store)? {
            self.bags.insert(b.destination.clone(), b);
        }
        Ok(())
    }

    /// Starts one watcher task per device: readiness changes come back as commands. (Nothing
    /// here starts a device: a laminator is started by the lamination step that needs it.)
    pub(crate) fn watch_devices(&self) {
        for s in &self.stations {
            let Some(device) = s.device.clone() else {
                continue;
            };
            let tx = self.tx.clone();
            let station = s.id.clone();
            self.rt.spawn(async move {
                let mut last = None;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let r = device.handle.readiness();
                    if last != Some(r) {
                        let cmd = Cmd::DeviceState {
                            station: station.clone(),
                            readiness: r,
                        };
                        if tx.send(cmd).await.is_err() {
                            return;
                        }
                        last = Some(r);
                    }
                    // The handles publish views on watch channels; a short tick keeps this
                    // independent of how each driver signals (and costs nothing measurable).
                    tick.tick().await;
                }
            });
        }
    }

    /// Sends the actor a [`Cmd::Tick`] every second while it runs. The ticker holds no sender
    /// of its own, so it never keeps the line alive; a tick is skipped when the actor is busy.
    pub(crate) fn start_ticker(&self) {
        let weak = self.tx.downgrade();
        self.rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(tx) = weak.upgrade() else { return };
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Cmd::Tick) {
                    return;
                }
            }
        });
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        self.schedule();
        self.after_change(true);
        self.publish();
        while let Some(cmd) = rx.blocking_recv() {
            let reply = match cmd {
                Cmd::Call(f) => Some(f(&mut self)),
                Cmd::DeviceDone {
                    station,
                    job,
                    attempt,
                    result,
                } => {
                    self.device_done(&station, job, attempt, result);
                    None
                }
                Cmd::DeviceState { station, readiness } => {
                    self.device_state(&station, readiness);
                    None
                }
                Cmd::Tick => {
                    self.tick();
                    None
                }
            };
            if self.stopping {
                if let Some(r) = reply {
                    r();
                }
                break;
            }
            self.schedule();
            self.after_change(false);
            self.publish();
            if let Some(r) = reply {
                r();
            }
        }
        tracing::info!("line stopped");
    }

    pub(crate) fn stop(&mut self) {
        self.save_throughput();
        self.stopping = true;
    }

    /// Saves the throughput counts with the ledger record they include up to: every dispatch
    /// recorded so far has been counted (the actor counts its own, right after recording them).
    fn save_throughput(&mut self) {
        let head = self.ledger.head();
        if head == self.throughput.seq {
            return;
        }
        self.throughput.seq = head;
        let saved = serde_json::to_vec(&self.throughput)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.ledger
                    .store()
                    .meta_set(THROUGHPUT_KEY, &v)
                    .map_err(|e| e.to_string())
            });
        // Made durable now: a kill -9 must not take back counts the next start would not
        // count again (it counts only the dispatches after the saved record).
        let saved = saved.and_then(|()| self.ledger.store().sync().map_err(|e| e.to_string()));
        if let Err(e) = saved {
            tracing::warn!("throughput counts not saved: {e}");
        }
    }

    // ---- persistence ----------------------------------------------------------------------

    fn persist(
        &self,
        actor: &OperatorId,
        events: Vec<LedgerEvent>,
        jobs: &[&JobRecord],
        aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<crate::ledger::Receipt>, LineError> {
        let entries = events.into_iter().map(|e| (actor.clone(), e)).collect();
        self.persist_as(entries, jobs, aux)
    }

    /// [`Actor::persist`] with an actor per record (a refusal by an operator and the line's
    /// alert about it, in one batch).
    fn persist_as(
        &self,
        events: Vec<(OperatorId, LedgerEvent)>,
        jobs: &[&JobRecord],
        mut aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<crate::ledger::Receipt>, LineError> {
        if let Some(why) = self.ledger.unavailable() {
            return Err(LineError::Storage(format!(
                "the line is not recording ({why}); nothing was changed"
            )));
        }
        let now = Utc::now();
        // The status events are built before the records move into the append (ids and names
        // only, never biodata); their sequence numbers come from the receipts.
        let pending: Vec<StatusEvent> = events
            .iter()
            .map(|(actor, e)| StatusEvent::record(0, now, actor, e))
            .collect();
        let entries = events
            .into_iter()
            .map(|(actor, e)| (now, actor, e))
            .collect();
        for j in jobs {
            aux.extend(store_jobs::job_writes(j)?);
        }
        let started = std::time::Instant::now();
        let result = self.ledger.append_batch_with(entries, aux);
        self.status.observe_append(started.elapsed());
        match result {
            Ok(r) => {
                for (receipt, mut event) in r.iter().zip(pending) {
                    if let StatusEvent::Record(rec) = &mut event {
                        rec.seq = receipt.seq;
                    }
                    self.status.emit(event);
                }
                Ok(r)
            }
            // A storage failure has already stopped the ledger (fail-stop); every later change
            // is refused above.
            Err(e) => Err(e.into()),
        }
    }

    // ---- scheduling -----------------------------------------------------------------------

    fn schedule(&mut self) {
        let now = Utc::now();
        for a in self.sched.assign(ms(now)) {
            self.queue.remove(a.job);
            if let Err(e) = self.start_step(&a, now) {
                tracing::error!(job = %a.job, station = %a.station, "assignment not recorded: {e}");
                let _ = self.sched.release(&a.station, ms(now));
                if let Some(q) = self.jobs.get(&a.job).map(queued) {
                    let _ = self.enqueue(q, a.stage);
                }
            }
        }
    }

    fn start_step(&mut self, a: &Assignment, now: DateTime<Utc>) -> Result<(), LineError> {
        let rec = self
            .jobs
            .get(&a.job)
            .ok_or_else(|| LineError::NotFound(format!("job {} is not live", a.job)))?;
        let next = if a.stage == Stage::Dispatch {
            rec.clone()
        } else {
            let run = StepRun {
                station: a.station.clone(),
                device: a.device.clone(),
                operator: a.operator.clone(),
                started_at: now,
            };
            rec.apply(
                &JobEvent::Start {
                    stage: a.stage,
                    run,
                },
                &self.separation,
            )
            .map_err(conflict)?
        };
        let record = action(ControlAction::Assigned {
            job: a.job,
            stage: a.stage,
            station: a.station.clone(),
            device: a.device.clone(),
            operator: a.operator.clone(),
            reason: a.reason.to_string(),
        });
        self.persist(&line_actor(), vec![record], &[&next], Vec::new())?;
        let booklet = next.crew.booklet.clone().map(Serial);
        self.jobs.insert(a.job, next);
        let i = self.index(&a.station)?;
        if a.stage == Stage::Laminate
            && let Some(d) = &self.stations[i].device
            && d.handle.laminator_state() == Some(hallctl_drivers::laminator::LaminatorState::Idle)
        {
            // Work is assigned: warm the laminator up now, so it is ready when the patch is
            // scanned.
            let h = d.handle.clone();
            self.rt.spawn(async move { h.start_laminator().await });
        }
        self.stations[i].step = Some(Step {
            attempt: 0,
            job: a.job,
            stage: a.stage,
            phase: Phase::Assigned,
            booklet,
            patch: None,
            assigned_at: now,
            qc_mismatches: 0,
        });
        Ok(())
    }

    /// Ends the step at station `i` with the job's new record: frees the station and queues
    /// the job for whatever it waits for now.
    fn end_step(&mut self, i: usize, next: JobRecord) -> Result<(), LineError> {
        let now = Utc::now();
        if let Some(step) = self.stations[i].step.take() {
            self.step_ended(i, &step, &next, now);
        }
        // A departure flagged during this step was this step's; the next one is another.
        self.stations[i].departure_flagged = false;
        let id = self.stations[i].id.clone();
        // Memory follows what is already durable first; the scheduler after.
        let queued_job = next
            .state
            .waiting()
            .map(|w| (queued(&next), w.next_stage()));
        if next.state.is_final() {
            self.by_due.remove(&(ms(next.job.due), next.job.id));
            self.jobs.remove(&next.job.id);
        } else {
            self.jobs.insert(next.job.id, next);
        }
        self.sched.release(&id, ms(now)).map_err(conflict)?;
        if let Some((q, stage)) = queued_job {
            self.enqueue(q, stage)?;
        }
        self.refresh_consumables(i)
    }

    /// Counts a step that ended at station `i` (performance, throughput, on time): finished
    /// when the job moved on, spoiled when it went back to printing; a step handed back
    /// untouched (the operator signed out) is not counted.
    fn step_ended(&mut self, i: usize, step: &Step, next: &JobRecord, now: DateTime<Utc>) {
        let good = !matches!(
            next.state,
            JobState::SpoiledRequeued { .. } | JobState::DefectReported { .. }
        );
        let handed_back = !matches!(next.state, JobState::SpoiledRequeued { .. })
            && next
                .state
                .waiting()
                .is_some_and(|w| w.next_stage() == step.stage);
        if handed_back {
            return;
        }
        let st = &self.stations[i];
        let device = st.device_id();
        self.perf.step(
            &device,
            st.operator.as_ref(),
            step.stage,
            ms(step.assigned_at),
            ms(now),
            good,
        );
        self.status
            .count_step(&device, st.operator.as_ref(), step.stage, good);
        if matches!(next.state, JobState::Dispatched { .. }) {
            self.throughput
                .completed(ms(now), ms(next.job.due), next.job.class);
        }
    }

    /// Puts a job in the scheduler's queue for `stage` (and in the queue counts).
    fn enqueue(&mut self, q: QueuedJob, stage: Stage) -> Result<(), LineError> {
        let (id, class, received) = (q.id, q.class, q.received);
        self.sched.enqueue(q, stage).map_err(conflict)?;
        self.queue.add(id, class, received, ms(Utc::now()));
        Ok(())
    }

    /// Takes a job out of its queue, if it is in one.
    fn unqueue(&mut self, id: JobId) -> Option<Stage> {
        self.queue.remove(id);
        self.sched.remove(id)
    }

    fn refresh_consumables(&mut self, i: usize) -> Result<(), LineError> {
        let session = match self.ledger.open_session_at(&self.stations[i].id)? {
            Some(sid) => self.ledger.session(&sid)?,
            None => None,
        };
        self.stations[i].consumables = session.map(|s| Consumables {
            left: u32::try_from(s.held.len()).unwrap_or(u32::MAX),
            session: s.id,
            issued: s.counts.issued,
            applied: s.counts.applied,
            spoiled: s.counts.spoiled,
            spoiled_pending: s.counts.spoiled_pending,
            returned: s.counts.returned,
            set_aside: u32::try_from(s.set_aside.len()).unwrap_or(u32::MAX),
            abandoned: s.abandoned_at.is_some(),
        });
        let st = &self.stations[i];
        if !matches!(st.kind, StationKind::Print | StationKind::Laminate) {
            return Ok(());
        }
        let held = match (self.held_at(&st.id)?, &st.operator) {
            (Some((sid, n)), Some(op)) => {
                let theirs = self
                    .ledger
                    .session(&sid)?
                    .is_some_and(|s| &s.operator == op);
                if theirs { n } else { 0 }
            }
            _ => 0,
        };
        self.sched
            .set_consumables(&st.id, Some(held))
            .map_err(conflict)
    }

    fn held_at(&self, station: &StationId) -> Result<Option<(SessionId, u32)>, LineError> {
        let Some(sid) = self.ledger.open_session_at(station)? else {
            return Ok(None);
        };
        let held = self
            .ledger
            .session(&sid)?
            // Set-aside serials are held but never used: no work for them.
            .map_or(0, |s| {
                u32::try_from(s.held.len().saturating_sub(s.set_aside.len())).unwrap_or(u32::MAX)
            });
        Ok(Some((sid, held)))
    }

    fn publish(&mut self) {
        let now = Utc::now();
        // The snapshot's storage state and its alerts agree: the storage watch may have changed
        // since the last tick, and a snapshot saying "halted" without its storage alert (or the
        // alert list lagging a tick behind it) misleads whoever reads both.
        let storage = self.storage_alerts(now);
        let mut snap = LineSnapshot::default();
        for (i, s) in Stage::ALL.iter().enumerate() {
            snap.queued[i] = u32::try_from(self.sched.queued(*s)).unwrap_or(u32::MAX);
        }
        for r in self.jobs.values() {
            match r.state {
                JobState::NeedsInspection { .. } => snap.needs_inspection += 1,
                JobState::Held { .. } => snap.held += 1,
                _ => {}
            }
        }
        snap.open_jobs = u32::try_from(self.jobs.len()).unwrap_or(u32::MAX);
        snap.stations = (0..self.stations.len())
            .filter_map(|i| self.view(i).ok())
            .collect();
        snap.queues = self.queue.view(ms(now));
        snap.oldest_queued = self.queue.oldest().map(super::monitor::at);
        snap.throughput = self.throughput.view(ms(now));
        snap.on_time = self.throughput.on_time(ms(now));
        snap.alerts = self
            .storage_alert
            .iter()
            .chain(self.alerts.open())
            .cloned()
            .collect();
        snap.storage = storage;
        snap.performance = Some(self.perf.summary(ms(now)));
        self.status.publish(snap);
    }

    // ---- monitoring -----------------------------------------------------------------------

    /// After every command: the time accounting of devices and operators follows what they do
    /// now, and the alerts that depend on the line's state are raised or cleared.
    fn after_change(&mut self, timed: bool) {
        let now = Utc::now();
        self.track_activity(ms(now));
        self.device_alerts(now);
        self.backlog_alerts(now);
        if timed {
            self.due_alerts(now);
        }
    }

    /// Once a second: the conditions that change with time alone, and (every few seconds) the
    /// consumables, which custody requests outside the line can change too.
    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(10) {
            self.save_throughput();
        }
        let _ = self.storage_alerts(Utc::now());
        self.shift_end_alerts(Utc::now());
        if self.ticks.is_multiple_of(5) {
            // A backlog's hysteresis runs on time alone too.
            self.backlog_alerts(Utc::now());
            self.due_alerts(Utc::now());
            self.spoilage_alerts(Utc::now());
            for i in 0..self.stations.len() {
                if let Err(e) = self.refresh_consumables(i) {
                    tracing::warn!("consumables not refreshed: {e}");
                }
            }
        }
    }

    /// Once per shift (and at start, for a controller that was down at the change): every
    /// custody session still open from an earlier shift raises an alert naming what it holds.
    fn shift_end_alerts(&mut self, now: DateTime<Utc>) {
        let current = shift_of(now);
        if self.shift_checked.as_ref() == Some(&current) {
            return;
        }
        let mut late = Vec::new();
        for st in &self.stations {
            match self.ledger.open_session_at(&st.id) {
                Ok(Some(id)) => match self.ledger.session(&id) {
                    Ok(Some(s)) if open_past_its_shift(&s, &current) => late.push(s),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("session {id} not read for the shift check: {e}");
                        return;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("open sessions not read for the shift check: {e}");
                    return;
                }
            }
        }
        for s in late {
            self.raise_naming(
                AlertKind::SessionOpenAtShiftEnd,
                s.id.as_str(),
                format!(
                    "session {} of {} at {} (shift {}) is still open in shift {current}, holding {} item(s)",
                    s.id,
                    s.operator,
                    s.station,
                    s.shift,
                    s.held.len()
                ),
                s.held.clone(),
            );
        }
        self.shift_checked = Some(current);
    }

    fn track_activity(&mut self, now: Millis) {
        let mut present = HashSet::new();
        for st in &self.stations {
            if st.kind.stage().is_none() {
                continue;
            }
            let activity = match (st.reported, &st.step, st.paused) {
                (DeviceReadiness::Faulted, ..) => DeviceActivity::Fault,
                (DeviceReadiness::Offline, ..) => DeviceActivity::Offline,
                (_, Some(_), _) => DeviceActivity::Busy,
                (_, None, true) => DeviceActivity::Paused,
                _ => DeviceActivity::NoWork,
            };
            self.perf.device(&st.device_id(), activity, now);
            if let Some(op) = &st.operator {
                let a = if st.step.is_some() {
                    OperatorActivity::Busy
                } else {
                    OperatorActivity::Idle
                };
                self.perf.operator(op, a, now);
                present.insert(op.clone());
            }
        }
        for op in self.perf.present() {
            if !present.contains(&op) {
                self.perf.operator(&op, OperatorActivity::Away, now);
            }
        }
    }

    /// The severity of an alert of `kind` (for a refusal, of `rule`): `[alerts.severity]`, or
    /// the built-in default.
    fn severity(&self, kind: AlertKind, rule: Option<&str>) -> Severity {
        match rule {
            // The rule's own setting, else the kind's, else the rule's default.
            Some(r) => self
                .alert_cfg
                .severity
                .get(r)
                .or_else(|| self.alert_cfg.severity.get(kind.name()))
                .copied()
                .unwrap_or_else(|| Severity::of_rule(r)),
            None => self
                .alert_cfg
                .severity
                .get(kind.name())
                .copied()
                .unwrap_or_else(|| kind.default_severity()),
        }
    }

    /// Raises an alert. A condition is raised once while it lasts; an incident gathers every
    /// occurrence ([`Actor::occur`]). Never fails the command that caused it: a storage
    /// failure is logged (and halts the line anyway).
    pub(crate) fn raise(&mut self, kind: AlertKind, subject: &str, detail: String) {
        self.raise_naming(kind, subject, detail, Vec::new());
    }

    /// [`Actor::raise`], naming serials.
    fn raise_naming(
        &mut self,
        kind: AlertKind,
        subject: &str,
        detail: String,
        serials: Vec<Serial>,
    ) {
        if !kind.is_condition() {
            let o = Occurrence {
                kind,
                subject: subject.to_string(),
                detail,
                severity: self.severity(kind, None),
                serials,
                rule: None,
            };
            self.occur(&line_actor(), o, None);
            return;
        }
        let Some(mut alert) = self.alerts.prepare_raise(kind, subject, detail, Utc::now()) else {
            return;
        };
        alert.severity = self.severity(kind, None);
        let record = ControlAction::AlertRaised {
            alert: alert.id.clone(),
            kind: kind.name().to_string(),
            subject: alert.subject.clone(),
            detail: alert.detail.clone(),
            severity: Some(alert.severity.name().to_string()),
            serials,
        };
        match self.commit_alert(&line_actor(), record, alert) {
            Ok(a) => {
                tracing::warn!(alert = %a.id, kind = kind.name(), subject = %a.subject, "alert raised: {}", a.detail)
            }
            Err(e) => tracing::error!(kind = kind.name(), %subject, "alert not recorded: {e}"),
        }
    }

    /// Adds an occurrence to its incident (raising the incident if none of its kind and subject
    /// is open), in one batch with `fact` (a refusal, recorded with `who` as its actor). Every
    /// occurrence is a record and a status event of its own: none is swallowed.
    fn occur(&mut self, who: &OperatorId, o: Occurrence, fact: Option<ControlAction>) {
        let facts = fact.map(|f| (who.clone(), action(f))).into_iter().collect();
        if let Err(e) = self.occur_with(o, facts, &[]) {
            tracing::error!("alert not recorded: {e}");
        }
    }

    /// Records `facts` (each with its actor, and `jobs`' states) and the occurrence they raise
    /// in **one batch**: a crash or power cut keeps both or neither, so no acknowledged fact
    /// lacks its alert.
    ///
    /// # Errors
    /// The ledger's refusal of a fact, or storage: then nothing of the batch was written.
    fn occur_with(
        &mut self,
        o: Occurrence,
        facts: Vec<(OperatorId, LedgerEvent)>,
        jobs: &[&JobRecord],
    ) -> Result<Vec<crate::ledger::Receipt>, LineError> {
        let now = Utc::now();
        let (alert, repeat) = self.alerts.prepare_occurrence(&o, now);
        let record = if repeat {
            ControlAction::AlertRepeated {
                alert: alert.id.clone(),
                occurrence: alert.occurrences,
                detail: o.detail.clone(),
                serials: o.serials.clone(),
                severity: Some(o.severity.name().to_string()),
                rule: o.rule.clone(),
            }
        } else {
            ControlAction::AlertRaised {
                alert: alert.id.clone(),
                kind: o.kind.name().to_string(),
                subject: alert.subject.clone(),
                detail: o.detail.clone(),
                severity: Some(alert.severity.name().to_string()),
                serials: o.serials.clone(),
            }
        };
        let aux = self.alerts.writes(&alert)?;
        let mut entries = facts;
        entries.push((line_actor(), action(record)));
        match self.persist_as(entries, jobs, aux) {
            Ok(receipts) => {
                tracing::warn!(
                    alert = %alert.id,
                    kind = o.kind.name(),
                    subject = %alert.subject,
                    occurrence = alert.occurrences,
                    severity = alert.severity.name(),
                    "alert: {}",
                    o.detail
                );
                self.alerts.commit(alert);
                Ok(receipts)
            }
            Err(e) => {
                tracing::error!(kind = o.kind.name(), subject = %o.subject, "alert not recorded: {e}");
                Err(e)
            }
        }
    }

    /// The issuing states the hall prints for.
    pub(crate) fn issuing_states(&self) -> &[String] {
        &self.issuing_states
    }

    /// Records a refusal of a custody, separation or gating rule as a fact (a `refused` record
    /// with the person who tried as its actor) and an occurrence of the station's refusal
    /// incident. Other errors (a malformed request, a state the line is not in) are only
    /// answered.
    pub(crate) fn refused(&mut self, at: &Attempt, e: &LineError) {
        let (LineError::Refused(r) | LineError::Forbidden(r)) = e else {
            return;
        };
        if !r.is_rule() {
            return;
        }
        let session = at.session.clone().or_else(|| {
            at.station
                .as_ref()
                .and_then(|st| self.ledger.open_session_at(st).ok().flatten())
        });
        let station = at.station.clone().or_else(|| {
            session
                .as_ref()
                .and_then(|s| self.ledger.session(s).ok().flatten())
                .map(|s| s.station)
        });
        let mut serials: Vec<Serial> = Vec::new();
        for s in at.serials.iter().cloned().chain(r.serials()) {
            if !serials.contains(&s) {
                serials.push(s);
            }
        }
        let rule = r.rule();
        let reason = r.to_string();
        let subject = station
            .as_ref()
            .map_or_else(|| at.actor.to_string(), ToString::to_string);
        // Wrong co-signer PINs gather on the person who asked (wherever they ask from), and
        // turn critical when they reach the limit.
        let (kind, subject, severity) = match r {
            Refusal::CosignerPin { asker, blocked, .. } => {
                let s = self.severity(AlertKind::CosignerFailures, Some(rule));
                let s = if *blocked { Severity::Critical } else { s };
                (AlertKind::CosignerFailures, asker.to_string(), s)
            }
            _ => (
                AlertKind::Refusal,
                subject,
                self.severity(AlertKind::Refusal, Some(rule)),
            ),
        };
        let o = Occurrence {
            kind,
            subject,
            detail: format!(
                "{} refused at {}: {reason}",
                at.actor,
                station.as_ref().map_or("the hall", |s| s.as_str())
            ),
            severity,
            serials: serials.clone(),
            rule: Some(rule.to_string()),
        };
        let fact = ControlAction::Refused {
            rule: rule.to_string(),
            station,
            session,
            serials,
            reason,
        };
        self.occur(&at.actor, o, Some(fact));
    }

    /// Clears the open alert of `kind` about `subject`, if there is one.
    fn clear(&mut self, kind: AlertKind, subject: &str) {
        let Some(alert) = self.alerts.prepare_clear(kind, subject, Utc::now()) else {
            return;
        };
        let record = ControlAction::AlertCleared {
            alert: alert.id.clone(),
        };
        match self.commit_alert(&line_actor(), record, alert) {
            Ok(a) => {
                tracing::info!(alert = %a.id, kind = kind.name(), subject = %a.subject, "alert cleared")
            }
            Err(e) => {
                tracing::error!(kind = kind.name(), %subject, "alert clearing not recorded: {e}")
            }
        }
    }

    /// Appends `record` with the alert's new state in the same batch, then takes it.
    fn commit_alert(
        &mut self,
        actor: &OperatorId,
        record: ControlAction,
        alert: Alert,
    ) -> Result<Alert, LineError> {
        let aux = self.alerts.writes(&alert)?;
        self.persist(actor, vec![action(record)], &[], aux)?;
        self.alerts.commit(alert.clone());
        Ok(alert)
    }

    fn device_alerts(&mut self, now: DateTime<Utc>) {
        let limit = chrono::Duration::seconds(i64::from(self.alert_cfg.device_offline_secs));
        let mut changes = Vec::new();
        for st in &self.stations {
            let Some(d) = &st.device else { continue };
            let id = d.id.to_string();
            let fault = st.reported == DeviceReadiness::Faulted;
            let offline_for = st.offline_since.map(|t| now - t);
            changes.push((id, st.id.clone(), fault, offline_for));
        }
        for (device, station, fault, offline_for) in changes {
            if fault {
                self.raise(
                    AlertKind::DeviceFault,
                    &device,
                    format!("{device} at {station} reports a fault"),
                );
            } else {
                self.clear(AlertKind::DeviceFault, &device);
            }
            match offline_for {
                Some(d) if d >= limit => self.raise(
                    AlertKind::DeviceOffline,
                    &device,
                    format!(
                        "{device} at {station} has been offline for {} s (threshold {} s)",
                        d.num_seconds(),
                        limit.num_seconds()
                    ),
                ),
                Some(_) => {}
                None => self.clear(AlertKind::DeviceOffline, &device),
            }
        }
    }

    /// Runs a condition's signal through its hysteresis and raises or clears its alert.
    /// `holds`: whether the condition holds (`None`: cannot tell, the alert stays as it is);
    /// `detail` is asked for only to raise.
    fn gate(
        &mut self,
        kind: AlertKind,
        subject: &str,
        holds: Option<bool>,
        now: DateTime<Utc>,
        detail: impl FnOnce() -> String,
    ) {
        let open = self.alerts.open_for(kind, subject).is_some();
        match self.gates.decide(kind, subject, open, holds, ms(now)) {
            Verdict::Raise => self.raise(kind, subject, detail()),
            Verdict::Clear => self.clear(kind, subject),
            Verdict::Keep => {}
        }
    }

    /// `backlog`: before its alert is raised the condition holds above its threshold; once
    /// raised, above `clear_percent` of it ([`level_holds`]). Then the hysteresis of
    /// [`Actor::gate`].
    fn backlog_alerts(&mut self, now: DateTime<Utc>) {
        let cfg = self.alert_cfg.clone();
        let open = |alerts: &AlertBook, subject: &str| {
            alerts.open_for(AlertKind::Backlog, subject).is_some()
        };
        let depth = self.queue.len() as u64;
        let limit = u64::from(cfg.queue_depth);
        let holds = level_holds(
            depth,
            limit,
            cfg.clear_percent,
            open(&self.alerts, "queue_depth"),
        );
        self.gate(AlertKind::Backlog, "queue_depth", Some(holds), now, || {
            format!("{depth} jobs queued (threshold {limit})")
        });
        let age_secs = self
            .queue
            .oldest()
            .map_or(0, |t| (ms(now) - t).max(0) / 1000);
        let limit = u64::from(cfg.oldest_queued_minutes) * 60;
        let age = u64::try_from(age_secs).unwrap_or(0);
        let holds = level_holds(
            age,
            limit,
            cfg.clear_percent,
            open(&self.alerts, "oldest_queued"),
        );
        self.gate(
            AlertKind::Backlog,
            "oldest_queued",
            Some(holds),
            now,
            || {
                format!(
                    "the oldest queued job has waited {} min (threshold {} min)",
                    age / 60,
                    limit / 60
                )
            },
        );
    }

    /// `due_at_risk`, per class: predicted from the dispatch rate once there is enough data
    /// for one ([`super::monitor::usable_rate`]); before, nothing is predicted (an open alert
    /// stays, unless no job is left). Then the hysteresis of [`Actor::gate`].
    fn due_alerts(&mut self, now: DateTime<Utc>) {
        let cfg = &self.alert_cfg;
        let min = RateMinimum {
            completions: u64::from(cfg.due_at_risk_min_completions),
            window: i64::from(cfg.due_at_risk_min_window_secs) * 1000,
        };
        let margin = i64::from(cfg.due_at_risk_minutes) * 60_000;
        let capacity = self.perf.capacity_per_hour(ms(now) - 3_600_000, ms(now));
        let rate = self.throughput.usable_rate(ms(now), capacity, min);
        let risk = rate.map(|rate| {
            let jobs = &self.jobs;
            let by_due = self
                .by_due
                .iter()
                .filter_map(|(due, id)| jobs.get(id).map(|r| (*due, *id, r.job.class)));
            predict_at_risk(ms(now), rate, margin, self.by_due.len(), by_due)
        });
        let none_left = self.by_due.is_empty();
        for class in hallctl_jobs::job::PriorityClass::ALL {
            let subject = class.name();
            let at_risk = risk.map(|r| r[class.index()]);
            let holds = match at_risk {
                Some(r) => Some(r.is_some()),
                None if none_left => Some(false),
                None => None,
            };
            let detail = || match (at_risk.flatten(), rate) {
                (Some(r), Some(rate)) => format!(
                    "{} {subject} job(s) predicted to miss their due time at {rate:.1} jobs/h; \
                     first: job {} due {}",
                    r.count,
                    r.first,
                    super::monitor::at(r.first_due).format("%Y-%m-%d %H:%M UTC")
                ),
                _ => format!("{subject} jobs predicted to miss their due time"),
            };
            self.gate(AlertKind::DueAtRisk, subject, holds, now, detail);
        }
    }

    /// The storage watch's alerts: `storage_fault` (in memory while nothing can be recorded,
    /// recorded raised and cleared once recording resumes) and `storage_low`. Returns the
    /// storage status they were decided on.
    fn storage_alerts(&mut self, now: DateTime<Utc>) -> StorageStatus {
        let st = self.storage.borrow().clone();
        let seen = st.clone();
        if st.state != self.storage_seen {
            self.status.emit(StatusEvent::Storage(st.clone()));
        }
        if st.state.stopped() {
            let detail = st.detail.unwrap_or_default();
            match self.storage_alert.as_mut() {
                Some(a) => a.detail = detail,
                None => {
                    tracing::error!("storage fault: the line records nothing: {detail}");
                    self.storage_alert = Some(Alert::new(
                        STORAGE_ALERT.to_string(),
                        AlertKind::StorageFault,
                        "store",
                        detail,
                        st.since.unwrap_or(now),
                    ));
                }
            }
            self.storage_seen = st.state;
            return seen;
        }
        if let Some(a) = self.storage_alert.take() {
            self.raise(
                AlertKind::StorageFault,
                "store",
                format!(
                    "{} (from {} to {} UTC; nothing could be recorded meanwhile)",
                    a.detail,
                    a.raised_at.format("%Y-%m-%d %H:%M:%S"),
                    now.format("%H:%M:%S")
                ),
            );
            self.clear(AlertKind::StorageFault, "store");
        }
        if st.state != self.storage_seen || st.state == StorageState::Low {
            match (st.state, st.detail) {
                (StorageState::Low, Some(d)) => self.raise(AlertKind::StorageLow, "store", d),
                _ => self.clear(AlertKind::StorageLow, "store"),
            }
        }
        self.storage_seen = st.state;
        seen
    }

    pub(crate) fn alerts(&self) -> AlertList {
        let mut list = self.alerts.list();
        if let Some(a) = &self.storage_alert {
            list.open.insert(0, a.clone());
        }
        list
    }

    pub(crate) fn ack_alert(&mut self, actor: &OperatorId, id: &str) -> Result<Alert, LineError> {
        if let Some(a) = self.storage_alert.as_ref().filter(|a| a.id == id) {
            return Err(LineError::Storage(format!(
                "{} cannot be acknowledged while the store records nothing: {}",
                a.id, a.detail
            )));
        }
        let alert = self.alerts.prepare_ack(id, actor, Utc::now())?;
        let record = ControlAction::AlertAcknowledged {
            alert: alert.id.clone(),
        };
        self.commit_alert(actor, record, alert)
    }

    pub(crate) fn resolve_alert(
        &mut self,
        actor: &OperatorId,
        id: &str,
        note: &str,
    ) -> Result<Alert, LineError> {
        let alert = self.alerts.prepare_resolve(id, actor, note, Utc::now())?;
        let record = ControlAction::AlertResolved {
            alert: alert.id.clone(),
            note: note.to_string(),
        };
        self.commit_alert(actor, record, alert)
    }

    pub(crate) fn performance(&self, period: &Period) -> PerfReport {
        self.perf.report(period, ms(Utc::now()))
    }

    // ---- lookups --------------------------------------------------------------------------

    fn index(&self, station: &StationId) -> Result<usize, LineError> {
        self.by_id
            .get(station)
            .copied()
            .ok_or_else(|| LineError::NotFound(format!("no station {station}")))
    }

    /// The station `actor` is signed in at, which must be `station`.
    fn my_station(&self, actor: &OperatorId, station: &StationId) -> Result<usize, LineError> {
        let i = self.index(station)?;
        if self.stations[i].operator.as_ref() != Some(actor) {
            return Err(LineError::Forbidden(Refusal::NotAtStation {
                actor: actor.clone(),
                station: station.clone(),
            }));
        }
        Ok(i)
    }

    /// Refuses a booklet `actor` printed (the ledger refuses the lamination itself too; this
    /// tells the operator at the scan, before a patch is touched).
    fn not_printed_by(&self, actor: &OperatorId, booklet: &Serial) -> Result<(), LineError> {
        if let Some(item) = self.ledger.item(booklet)?
            && item.kind == crate::ledger::ItemKind::Booklet
            && let ItemState::Applied(b) = &item.state
            && b.by == *actor
        {
            return Err(LineError::Forbidden(Refusal::LaminatorPrintedBooklet {
                booklet: booklet.clone(),
                operator: actor.clone(),
            }));
        }
        Ok(())
    }

    /// The station's step, which must be for `kind` and in `phase`.
    fn step_at(&self, i: usize, kind: StationKind, phase: Phase) -> Result<Step, LineError> {
        let st = &self.stations[i];
        if st.kind != kind {
            return Err(LineError::Conflict(format!(
                "{} is not a {} station",
                st.id,
                kind.as_str()
            )));
        }
        match &st.step {
            Some(s) if s.phase == phase => Ok(s.clone()),
            Some(s) => Err(LineError::Conflict(format!(
                "the step at {} is {}, not {}",
                st.id,
                s.phase.name(),
                phase.name()
            ))),
            None => Err(LineError::Conflict(format!(
                "the line has assigned no work to {} yet",
                st.id
            ))),
        }
    }

    fn record(&self, id: JobId) -> Result<JobRecord, LineError> {
        if let Some(r) = self.jobs.get(&id) {
            return Ok(r.clone());
        }
        store_jobs::load_job(self.ledger.store(), id)?
            .ok_or_else(|| LineError::NotFound(format!("no job {id}")))
    }

    fn live(&self, id: JobId) -> Result<JobRecord, LineError> {
        match self.jobs.get(&id) {
            Some(r) => Ok(r.clone()),
            None => {
                let r = self.record(id)?;
                Err(LineError::Conflict(format!(
                    "job {id} is {}: nothing more can happen to it",
                    r.state.name()
                )))
            }
        }
    }

    fn session_at(&self, station: &StationId) -> Result<SessionId, LineError> {
        self.ledger.open_session_at(station)?.ok_or_else(|| {
            LineError::Conflict(format!(
                "no custody session is open at {station}: open one and have items issued to it"
            ))
        })
    }

    fn view(&self, i: usize) -> Result<StationView, LineError> {
        let st = &self.stations[i];
        let (session, held) = match &st.consumables {
            Some(c) => (Some(c.session.clone()), c.left),
            None => (None, 0),
        };
        let work = match &st.step {
            Some(s) => {
                let r = self.record(s.job)?;
                Some(WorkView {
                    job: s.job,
                    tracking_number: r.job.tracking.as_str().to_string(),
                    class: r.job.class,
                    destination: r.job.destination.clone(),
                    stage: s.stage,
                    phase: s.phase.name().to_string(),
                    booklet: s.booklet.clone(),
                    patch: s.patch.clone(),
                    assigned_at: s.assigned_at,
                })
            }
            None => None,
        };
        Ok(StationView {
            id: st.id.clone(),
            kind: st.kind,
            device: st.device.as_ref().map(|d| d.id.clone()),
            readiness: st.readiness(),
            operator: st.operator.clone(),
            session,
            held,
            consumables: st.consumables.clone(),
            work,
        })
    }

    pub(crate) fn station_view(&self, id: &StationId) -> Result<StationView, LineError> {
        self.view(self.index(id)?)
    }

    // ---- intake ---------------------------------------------------------------------------

    pub(crate) fn submit(
        &mut self,
        actor: &OperatorId,
        reqs: Vec<JobRequest>,
    ) -> Result<Vec<Submitted>, LineError> {
        if reqs.is_empty() {
            return Err(LineError::invalid("jobs", "the batch is empty"));
        }
        if reqs.len() > MAX_BATCH {
            return Err(LineError::invalid(
                "jobs",
                format!(
                    "{} jobs in one batch; at most {MAX_BATCH}: split the batch",
                    reqs.len()
                ),
            ));
        }
        let now = Utc::now();
        let store = self.ledger.store();
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(reqs.len());
        let mut new = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut id = self.next_id;
        for (i, req) in reqs.iter().enumerate() {
            let tn = req.tracking_number.as_str();
            if let Some(j) = seen.insert(tn, i) {
                errors.push(BatchError {
                    index: i,
                    field: format!("jobs[{i}].tracking_number"),
                    message: format!("repeats the tracking number of jobs[{j}]"),
                });
                continue;
            }
            let digest = store_jobs::request_digest(req);
            if !tn.is_empty()
                && let Some(TrackingEntry { job, digest: d }) =
                    store_jobs::load_tracking(store, tn)?
            {
                if d == digest {
                    out.push(Submitted {
                        job,
                        tracking_number: tn.to_string(),
                        status: SubmitStatus::Existing,
                    });
                } else {
                    errors.push(BatchError {
                        index: i,
                        field: format!("jobs[{i}].tracking_number"),
                        message: format!(
                            "already submitted with different content (job {job}); a \
                             tracking number cannot be reused"
                        ),
                    });
                }
                continue;
            }
            let ctx = IntakeContext {
                now,
                job_id: JobId(id),
                known_destinations: self.destinations.as_ref(),
                issuing_states: Some(&self.issuing_states),
            };
            match validate(req, &ctx) {
                Ok(job) => {
                    id += 1;
                    let rec = JobRecord::new(job)
                        .apply(&JobEvent::Queue, &self.separation)
                        .map_err(conflict)?;
                    out.push(Submitted {
                        job: rec.job.id,
                        tracking_number: tn.to_string(),
                        status: SubmitStatus::Created,
                    });
                    new.push((rec, digest));
                }
                Err(es) => {
                    for e in es.0 {
                        errors.push(BatchError {
                            index: i,
                            field: format!("jobs[{i}].{}", e.field),
                            message: e.message,
                        });
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(LineError::Batch(errors));
        }
        if new.is_empty() {
            return Ok(out);
        }
        let mut aux = Vec::with_capacity(new.len());
        for (rec, digest) in &new {
            let entry = TrackingEntry {
                job: rec.job.id,
                digest: digest.clone(),
            };
            aux.push((
                store_jobs::tracking_key(rec.job.tracking.as_str()),
                Some(serde_json::to_vec(&entry).map_err(|e| LineError::Storage(e.to_string()))?),
            ));
        }
        let ids = new.iter().map(|(r, _)| r.job.id).collect();
        let refs: Vec<&JobRecord> = new.iter().map(|(r, _)| r).collect();
        self.persist(
            actor,
            vec![action(ControlAction::JobsSubmitted { jobs: ids })],
            &refs,
            aux,
        )?;
        self.next_id = id;
        for (rec, _) in new {
            self.enqueue(queued(&rec), Stage::Print)?;
            self.by_due.insert((ms(rec.job.due), rec.job.id));
            self.jobs.insert(rec.job.id, rec);
        }
        Ok(out)
    }

    // ---- supervisors' job commands ----------------------------------------------------------

    fn transition(
        &mut self,
        actor: &OperatorId,
        id: JobId,
        event: JobEvent,
        extra: Vec<LedgerEvent>,
    ) -> Result<JobRecord, LineError> {
        let rec = self.live(id)?;
        let next = rec.apply(&event, &self.separation).map_err(conflict)?;
        let mut events = extra;
        events.push(changed(id, event));
        self.persist(actor, events, &[&next], Vec::new())?;
        Ok(next)
    }

    /// [`Actor::transition`] with the alert it raises in **one batch** (a spoil and the
    /// supervisor's alert: a power cut keeps both or neither).
    fn transition_alerting(
        &mut self,
        actor: &OperatorId,
        id: JobId,
        event: JobEvent,
        extra: Vec<LedgerEvent>,
        o: Occurrence,
    ) -> Result<JobRecord, LineError> {
        let rec = self.live(id)?;
        let next = rec.apply(&event, &self.separation).map_err(conflict)?;
        let mut facts: Vec<(OperatorId, LedgerEvent)> =
            extra.into_iter().map(|e| (actor.clone(), e)).collect();
        facts.push((actor.clone(), changed(id, event)));
        self.occur_with(o, facts, &[&next])?;
        Ok(next)
    }

    /// Refuses a command on a job a station is working on (dispatch steps leave the job's state
    /// as it was, so the state alone does not say so).
    fn not_at_a_station(&self, id: JobId) -> Result<(), LineError> {
        match self
            .stations
            .iter()
            .find(|s| s.step.as_ref().is_some_and(|st| st.job == id))
        {
            Some(s) => Err(LineError::Conflict(format!(
                "job {id} is assigned to {}: wait until the step there is over",
                s.id
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn hold(&mut self, actor: &OperatorId, id: JobId) -> Result<JobView, LineError> {
        self.not_at_a_station(id)?;
        let next = self.transition(actor, id, JobEvent::Hold, Vec::new())?;
        self.unqueue(id);
        let v = JobView::from(&next);
        self.jobs.insert(id, next);
        Ok(v)
    }

    pub(crate) fn release(&mut self, actor: &OperatorId, id: JobId) -> Result<JobView, LineError> {
        let next = self.transition(actor, id, JobEvent::Release, Vec::new())?;
        if let Some(w) = next.state.waiting() {
            self.enqueue(queued(&next), w.next_stage())?;
        }
        let v = JobView::from(&next);
        self.jobs.insert(id, next);
        Ok(v)
    }

    /// Spoil records for the items of a job's current attempt that are still live (printed
    /// booklet, applied patch): a cancelled or spoiled job leaves no item unaccounted for.
    fn spoil_items(
        &self,
        booklet: Option<&Serial>,
        reason: &str,
    ) -> Result<Vec<LedgerEvent>, LineError> {
        self.spoil_items_as(booklet, reason, false)
    }

    /// [`Actor::spoil_items`]; `awaiting_approval`: spoiled without a supervisor's word (an
    /// operator's report, a device fault, a QC mismatch), the items wait for a supervisor's
    /// decision with them in hand.
    fn spoil_items_as(
        &self,
        booklet: Option<&Serial>,
        reason: &str,
        awaiting_approval: bool,
    ) -> Result<Vec<LedgerEvent>, LineError> {
        let mut out = Vec::new();
        let Some(b) = booklet else {
            return Ok(out);
        };
        let mut serials = Vec::new();
        if let Some(p) = self.ledger.patch_of(b)? {
            serials.push(p);
        }
        serials.push(b.clone());
        for s in serials {
            // The session that used it: the record is on its report and at its station.
            if let Some(ItemState::Applied(b)) = self.ledger.item(&s)?.map(|i| i.state) {
                out.push(LedgerEvent::ItemSpoiled {
                    serial: s,
                    session: Some(b.session),
                    reason: reason.to_string(),
                    awaiting_approval,
                });
            }
        }
        Ok(out)
    }

    pub(crate) fn cancel(
        &mut self,
        actor: &OperatorId,
        id: JobId,
        reason: String,
    ) -> Result<JobView, LineError> {
        if reason.trim().is_empty() {
            return Err(LineError::invalid(
                "reason",
                "a cancellation needs a reason",
            ));
        }
        self.not_at_a_station(id)?;
        let rec = self.live(id)?;
        let booklet = rec.crew.booklet.clone().map(Serial);
        let spoils = if rec.state.in_step().is_none() {
            self.spoil_items(booklet.as_ref(), &format!("job cancelled: {reason}"))?
        } else {
            Vec::new()
        };
        let next = self.transition(actor, id, JobEvent::Cancel { reason }, spoils)?;
        self.unqueue(id);
        self.by_due.remove(&(ms(next.job.due), id));
        self.jobs.remove(&id);
        Ok(JobView::from(&next))
    }

    pub(crate) fn reprioritise(
        &mut self,
        actor: &OperatorId,
        id: JobId,
        class: PriorityClass,
        reason: String,
    ) -> Result<JobView, LineError> {
        if reason.trim().is_empty() {
            return Err(LineError::invalid(
                "reason",
                "a reprioritisation needs a reason",
            ));
        }
        let mut next = self.live(id)?;
        if next.job.class == class {
            return Err(LineError::Conflict(format!(
                "job {id} is already {}",
                class.name()
            )));
        }
        next.job.class = class;
        self.persist(
            actor,
            vec![action(ControlAction::JobReprioritised {
                job: id,
                class,
                reason,
            })],
            &[&next],
            Vec::new(),
        )?;
        if let Some(stage) = self.unqueue(id) {
            self.enqueue(queued(&next), stage)?;
        }
        let v = JobView::from(&next);
        self.jobs.insert(id, next);
        Ok(v)
    }

    pub(crate) fn inspect(
        &mut self,
        actor: &OperatorId,
        id: JobId,
        verdict: InspectionVerdict,
        serial: Option<String>,
    ) -> Result<JobView, LineError> {
        let rec = self.live(id)?;
        let JobState::NeedsInspection { stage, .. } = &rec.state else {
            return Err(LineError::Conflict(format!(
                "job {id} is {}, not waiting for inspection",
                rec.state.name()
            )));
        };
        let mut extra = Vec::new();
        let bound = match stage {
            Stage::Print => rec.crew.booklet.clone(),
            Stage::Laminate => rec.crew.patch.clone(),
            Stage::Qc | Stage::Dispatch => None,
        };
        // A step whose device read another item (or nothing) is neither done nor retried: the
        // item bound to it is unaccounted for (issue 16).
        if let Some(b) = &bound
            && verdict != InspectionVerdict::Spoil
            && let Some(item) = self.ledger.item(&Serial::new(b.as_str()))?
            && matches!(item.state, ItemState::Suspect { .. })
        {
            return Err(LineError::Conflict(format!(
                "{b} is {}: the step cannot be taken as done or retried; choose spoil",
                item.state.describe()
            )));
        }
        match (verdict, stage) {
            (InspectionVerdict::RetryStep, _) if bound.is_some() => {
                return Err(LineError::Conflict(format!(
                    "{} is already bound to job {id} in the ledger: the step cannot be retried \
                     on another item; choose step_completed (it is fine) or spoil",
                    bound.unwrap_or_default()
                )));
            }
            (InspectionVerdict::StepCompleted, Stage::Qc) => {
                return Err(LineError::Conflict(
                    "an interrupted QC is never taken as passed: choose retry_step".into(),
                ));
            }
            _ => {}
        }
        match verdict {
            InspectionVerdict::StepCompleted => {
                let s = serial.clone().ok_or_else(|| {
                    LineError::invalid("serial", "name the booklet or patch found on the job")
                })?;
                let bound = self
                    .ledger
                    .item(&Serial::new(s.as_str()))?
                    .is_some_and(|i| matches!(&i.state, ItemState::Applied(b) if b.job == id));
                if matches!(stage, Stage::Print | Stage::Laminate) && !bound {
                    return Err(LineError::Conflict(format!(
                        "{s} is not recorded as used for job {id}: the step did not complete \
                         in the ledger; choose retry_step or spoil"
                    )));
                }
            }
            InspectionVerdict::Spoil => {
                let b = rec.crew.booklet.clone().map(Serial);
                extra = self.spoil_items(b.as_ref(), "spoiled at inspection")?;
                // An item a device read for this job without its being scanned, found on the
                // job by the supervisor, is spoiled with it.
                if let Some(s) = &serial
                    && let Some(item) = self.ledger.item(&Serial::new(s.as_str()))?
                    && matches!(&item.state, ItemState::Suspect { job, .. } if *job == id)
                    && !extra
                        .iter()
                        .any(|e| matches!(e, LedgerEvent::ItemSpoiled { serial, .. } if serial == &item.serial))
                {
                    extra.push(LedgerEvent::ItemSpoiled {
                        serial: item.serial,
                        session: None,
                        reason: "found on the job at inspection after a device read mismatch"
                            .into(),
                        awaiting_approval: false,
                    });
                }
            }
            InspectionVerdict::RetryStep => {}
        }
        let next = self.transition(actor, id, JobEvent::Inspect { verdict, serial }, extra)?;
        if let Some(w) = next.state.waiting() {
            self.enqueue(queued(&next), w.next_stage())?;
        }
        let v = JobView::from(&next);
        self.jobs.insert(id, next);
        Ok(v)
    }

    // ---- stations -------------------------------------------------------------------------

    pub(crate) fn can_occupy(
        &self,
        user: &OperatorId,
        station: &StationId,
    ) -> Result<(), LineError> {
        let i = self.index(station)?;
        if let Some(other) = self
            .stations
            .iter()
            .find(|s| s.operator.as_ref() == Some(user) && s.id != *station)
        {
            return Err(LineError::Conflict(format!(
                "{user} is signed in at {}: one station per operator",
                other.id
            )));
        }
        match &self.stations[i].operator {
            Some(o) if o != user => Err(LineError::Conflict(format!(
                "{station} is taken by {o}: one operator per station"
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn occupy(
        &mut self,
        user: &OperatorId,
        station: &StationId,
    ) -> Result<(), LineError> {
        self.can_occupy(user, station)?;
        let i = self.index(station)?;
        if self.stations[i].kind.stage().is_some() {
            self.sched
                .set_operator(station, Some(user.clone()), ms(Utc::now()))
                .map_err(conflict)?;
        }
        self.stations[i].operator = Some(user.clone());
        self.stations[i].departure_flagged = false;
        self.refresh_consumables(i)
    }

    pub(crate) fn vacate(
        &mut self,
        user: &OperatorId,
        reason: &str,
        forced: bool,
    ) -> Result<(), LineError> {
        let Some(i) = self
            .stations
            .iter()
            .position(|s| s.operator.as_ref() == Some(user))
        else {
            return Ok(());
        };
        if let Some(step) = self.stations[i].step.clone() {
            if step.phase != Phase::Assigned {
                // Gone (token expired, signed out by a supervisor) with a step in flight: the
                // station stays theirs until the step ends, but items left behind are told now.
                if forced {
                    let why = format!(
                        "{reason}, with job {} {} at {}",
                        step.job,
                        step.phase.name(),
                        self.stations[i].id
                    );
                    self.abandon_if_holding(i, user, &why, true)?;
                }
                return Err(LineError::Conflict(format!(
                    "job {} is {} at {}: confirm it or report a defect before signing out",
                    step.job,
                    step.phase.name(),
                    self.stations[i].id
                )));
            }
            // Nothing physical happened yet: the job goes back to its queue, on the record.
            let rec = self.live(step.job)?;
            let next = if step.stage == Stage::Dispatch {
                rec
            } else {
                let interrupted = rec
                    .apply(&JobEvent::Interrupt, &self.separation)
                    .map_err(conflict)?;
                let retry = JobEvent::Inspect {
                    verdict: InspectionVerdict::RetryStep,
                    serial: None,
                };
                let next = interrupted
                    .apply(&retry, &self.separation)
                    .map_err(conflict)?;
                self.persist(
                    &line_actor(),
                    vec![
                        changed(step.job, JobEvent::Interrupt),
                        changed(step.job, retry),
                    ],
                    &[&next],
                    Vec::new(),
                )?;
                next
            };
            self.end_step(i, next)?;
        }
        self.abandon_if_holding(i, user, reason, false)?;
        let st = &mut self.stations[i];
        st.operator = None;
        if st.kind.stage().is_some() {
            let id = st.id.clone();
            self.sched
                .set_operator(&id, None, ms(Utc::now()))
                .map_err(conflict)?;
        }
        self.refresh_consumables(i)
    }

    /// Leaving items behind is never silent: the session at station `i` stays open holding
    /// them, flagged abandoned, and the supervisor is told every serial. `unless_flagged`: not
    /// again while the departure already recorded stands (a supervisor's repeated attempts to
    /// sign out someone whose step is still in flight are one departure; the step's end or the
    /// station taken again starts another).
    fn abandon_if_holding(
        &mut self,
        i: usize,
        user: &OperatorId,
        reason: &str,
        unless_flagged: bool,
    ) -> Result<(), LineError> {
        let station = self.stations[i].id.clone();
        if let Some(session) = self.ledger.open_session_at(&station)?
            && let Some(s) = self.ledger.session(&session)?
            && !s.held.is_empty()
            && s.operator == *user
            && !(unless_flagged && self.stations[i].departure_flagged)
        {
            let event = LedgerEvent::SessionAbandoned {
                session: session.clone(),
                held: s.held.clone(),
                reason: reason.to_string(),
            };
            // The record and its alert in one batch (the record's own alert in its receipt is
            // this one: not raised again).
            let o = Occurrence {
                kind: AlertKind::SessionAbandoned,
                subject: session.to_string(),
                detail: abandoned_detail(&session, &s.held, reason),
                severity: self.severity(AlertKind::SessionAbandoned, None),
                serials: s.held.clone(),
                rule: None,
            };
            self.occur_with(o, vec![(user.clone(), event)], &[])?;
            self.stations[i].departure_flagged = true;
            self.refresh_consumables(i)?;
        }
        Ok(())
    }

    pub(crate) fn open_session(
        &mut self,
        operator: &OperatorId,
        station: &StationId,
    ) -> Result<SessionId, LineError> {
        let i = self.my_station(operator, station)?;
        let now = Utc::now();
        let session = SessionId::new(format!("S-{station}-{}", self.ledger.head() + 1));
        self.persist(
            operator,
            vec![LedgerEvent::SessionOpened {
                session: session.clone(),
                station: station.clone(),
                operator: operator.clone(),
                shift: shift_of(now),
            }],
            &[],
            Vec::new(),
        )?;
        self.refresh_consumables(i)?;
        Ok(session)
    }

    fn session_station(&self, session: &SessionId) -> Result<usize, LineError> {
        let s = self
            .ledger
            .session(session)?
            .ok_or_else(|| LineError::NotFound(format!("no custody session {session}")))?;
        self.index(&s.station)
    }

    /// Records a custody event on `session` and refreshes its station's consumables.
    fn session_record(
        &mut self,
        actor: &OperatorId,
        session: &SessionId,
        event: LedgerEvent,
    ) -> Result<u64, LineError> {
        let i = self.session_station(session)?;
        let r = self.record_custody(actor, event)?;
        self.refresh_consumables(i)?;
        Ok(r.seq)
    }

    /// The alert occurrence a custody record asks for (a discrepancy at close, a roll skip, an
    /// abandonment, a missing report). Free text the operator typed (a skip's reason) stays in
    /// the record and is not repeated in the alert, which is streamed.
    fn custody_occurrence(&self, actor: &OperatorId, alert: &crate::ledger::Alert) -> Occurrence {
        use crate::ledger::Alert as A;
        let (kind, subject, detail, serials) = match alert {
            A::Discrepancy { session, missing } => (
                AlertKind::Reconciliation,
                session.to_string(),
                format!(
                    "session {session} closed with {} item(s) unaccounted for: {}",
                    missing.len(),
                    first_serials(missing)
                ),
                missing.clone(),
            ),
            A::RollSkip {
                session,
                expected,
                got,
                ..
            } => (
                AlertKind::RollSkip,
                session.to_string(),
                format!(
                    "patch {got} used out of roll order in {session} ({expected} was next): \
                     the reason is in the record"
                ),
                vec![got.clone(), expected.clone()],
            ),
            A::Abandoned { session, held } => (
                AlertKind::SessionAbandoned,
                session.to_string(),
                format!(
                    "session {session} was left holding {} item(s): {}",
                    held.len(),
                    first_serials(held)
                ),
                held.clone(),
            ),
            A::Missing { serial } => (
                AlertKind::ItemMissing,
                serial.to_string(),
                format!("{serial} was reported missing by {actor}"),
                vec![serial.clone()],
            ),
        };
        self.event_occurrence(kind, subject, detail, serials)
    }

    /// An occurrence of an event kind of alert, with its configured severity.
    fn event_occurrence(
        &self,
        kind: AlertKind,
        subject: String,
        detail: String,
        serials: Vec<Serial>,
    ) -> Occurrence {
        Occurrence {
            kind,
            subject,
            detail,
            severity: self.severity(kind, None),
            serials,
            rule: None,
        }
    }

    /// Appends a custody record and the alert it asks for in **one batch**: the ledger is asked
    /// first (the actor is its one writer, so the answer holds for the append), then the record
    /// goes in alone or with its alert's occurrence.
    fn record_custody(
        &mut self,
        actor: &OperatorId,
        event: LedgerEvent,
    ) -> Result<crate::ledger::Receipt, LineError> {
        self.record_custody_with(actor, event, Vec::new(), &[])
    }

    /// [`Actor::record_custody`] with `also` (records the fact brings about, such as a job's
    /// change) and `jobs`' new states in the same batch.
    fn record_custody_with(
        &mut self,
        actor: &OperatorId,
        event: LedgerEvent,
        also: Vec<LedgerEvent>,
        jobs: &[&JobRecord],
    ) -> Result<crate::ledger::Receipt, LineError> {
        let checked = self.ledger.check(actor.clone(), event.clone())?;
        let mut facts = vec![event];
        facts.extend(also);
        let receipts = match &checked {
            Some(alert) => {
                let o = self.custody_occurrence(actor, alert);
                let facts = facts.into_iter().map(|e| (actor.clone(), e)).collect();
                self.occur_with(o, facts, jobs)?
            }
            None => self.persist(actor, facts, jobs, Vec::new())?,
        };
        // The fact's receipt comes first (its alert's, if any, after it).
        let receipt = receipts
            .into_iter()
            .next()
            .ok_or_else(|| LineError::Storage("the ledger acknowledged no record".into()))?;
        if receipt.alert != checked {
            // Another writer changed the custody state between the check and the append: the
            // alert the append asked for is raised all the same, never dropped.
            tracing::error!(seq = receipt.seq, "a custody alert differed from its check");
            if let Some(alert) = &receipt.alert {
                let o = self.custody_occurrence(actor, alert);
                self.occur(&line_actor(), o, None);
            }
        }
        Ok(receipt)
    }

    /// Records a custody event that belongs to no station (a destruction, a missing report)
    /// and raises what it asks for.
    pub(crate) fn custody(
        &mut self,
        actor: &OperatorId,
        event: LedgerEvent,
    ) -> Result<crate::ledger::Receipt, LineError> {
        // An item of the defect report a job waits for, not in hand: the step cannot stand, so
        // the job is spoiled (printed again on a new booklet) with the missing report, in one
        // batch with its alert; what is left of the report is approved in hand.
        if let LedgerEvent::ItemReportedMissing { serial, .. } = &event
            && let Some(item) = self.ledger.item(serial)?
            && let Some(rec) = self.job_waiting_on(&item)
            && let JobState::DefectReported { reason, .. } = &rec.state
        {
            let ev = JobEvent::Spoil { reason: *reason };
            let next = rec.apply(&ev, &self.separation).map_err(conflict)?;
            let also = vec![changed(rec.job.id, ev)];
            let receipt = self.record_custody_with(actor, event, also, &[&next])?;
            if let Some(w) = next.state.waiting() {
                self.enqueue(queued(&next), w.next_stage())?;
            }
            self.jobs.insert(next.job.id, next);
            for i in 0..self.stations.len() {
                self.refresh_consumables(i)?;
            }
            return Ok(receipt);
        }
        // The record and the alert it asks for (a missing report's) in one batch.
        let receipt = self.record_custody(actor, event)?;
        // A reported spoil reported missing leaves its session's pending count.
        for i in 0..self.stations.len() {
            self.refresh_consumables(i)?;
        }
        Ok(receipt)
    }

    pub(crate) fn issue(
        &mut self,
        actor: &OperatorId,
        session: &SessionId,
        serials: Vec<Serial>,
        counters: [OperatorId; 2],
    ) -> Result<u64, LineError> {
        self.within_issue_cap(session, &serials)?;
        let event = LedgerEvent::ItemsIssued {
            session: session.clone(),
            serials,
            counters,
        };
        self.session_record(actor, session, event)
    }

    /// BRIEF §3: only the number needed for the shift is issued. A session may hold its
    /// station's share of the work queued for (or running at) its stage, plus
    /// `[policy] issue_margin`, and never more than `max_held_per_session`; only the kind of
    /// item its station uses, and nothing at a station that uses none.
    fn within_issue_cap(&self, session: &SessionId, serials: &[Serial]) -> Result<(), LineError> {
        let i = self.session_station(session)?;
        let st = &self.stations[i];
        let Some(s) = self.ledger.session(session)? else {
            return Ok(());
        };
        // What the station consumes: booklets at a printer, patches at a laminator, nothing
        // elsewhere (the vault, QC and dispatch hold no custody items of their own).
        let kind = match st.kind {
            StationKind::Print => Some(crate::ledger::ItemKind::Booklet),
            StationKind::Laminate => Some(crate::ledger::ItemKind::Patch),
            _ => None,
        };
        let first_kind = match serials.first() {
            Some(x) => self.ledger.item(x)?.map(|it| it.kind),
            None => None,
        };
        if let Some(want) = kind {
            for x in serials {
                if let Some(it) = self.ledger.item(x)?
                    && it.kind != want
                {
                    return Err(LineError::Refused(Refusal::WrongKind {
                        serial: x.clone(),
                        actual: it.kind,
                        expected: want,
                    }));
                }
            }
        }
        let cap = match (kind, st.kind.stage()) {
            (Some(_), Some(stage)) => {
                // The station's share among all the stations of its kind (staffed or not: the
                // first operator of a shift does not take the whole queue), plus the margin.
                let same = self.stations.iter().filter(|x| x.kind == st.kind);
                let stations = same.clone().count().max(1);
                let running = same.filter(|x| x.step.is_some()).count();
                let work = self.sched.queued(stage) + running;
                let (margin, max) = self.issue_cap;
                issue_cap(work, stations, margin, max)
            }
            _ => 0,
        };
        let held = s.held.len() as u64;
        let asked = serials.len() as u64;
        if held + asked > cap {
            return Err(LineError::Refused(Refusal::IssueCap {
                station: st.id.clone(),
                kind: kind
                    .or(first_kind)
                    .unwrap_or(crate::ledger::ItemKind::Patch),
                cap,
                held,
                asked,
            }));
        }
        Ok(())
    }

    pub(crate) fn return_items(
        &mut self,
        actor: &OperatorId,
        session: &SessionId,
        serials: Vec<Serial>,
        counters: [OperatorId; 2],
    ) -> Result<u64, LineError> {
        let event = LedgerEvent::ItemsReturned {
            session: session.clone(),
            serials,
            counters,
        };
        self.session_record(actor, session, event)
    }

    pub(crate) fn close_session(
        &mut self,
        actor: &OperatorId,
        session: &SessionId,
        discrepancy: Option<Discrepancy>,
    ) -> Result<u64, LineError> {
        let i = self.session_station(session)?;
        if let Some(step) = &self.stations[i].step
            && step.phase != Phase::Assigned
        {
            return Err(LineError::Conflict(format!(
                "job {} is {} at {}: finish it before closing the session",
                step.job,
                step.phase.name(),
                self.stations[i].id
            )));
        }
        let event = LedgerEvent::SessionClosed {
            session: session.clone(),
            discrepancy,
        };
        self.session_record(actor, session, event)
    }

    fn no_choosing(step: &Step, job: Option<JobId>, station: &StationId) -> Result<(), LineError> {
        match job {
            Some(j) if j != step.job => Err(LineError::Forbidden(Refusal::ChoseWork {
                station: station.clone(),
                assigned: step.job,
                chosen: j,
            })),
            _ => Ok(()),
        }
    }

    /// The booklet scanned at QC or dispatch must be the assigned job's: another one (not
    /// checked yet, already packed, printed elsewhere) is a refusal of the gate, recorded and
    /// alerted like the wrong booklet at a laminator.
    fn assigned_booklet(
        step: &Step,
        booklet: &Serial,
        station: &StationId,
    ) -> Result<(), LineError> {
        match &step.booklet {
            Some(assigned) if assigned != booklet => {
                Err(LineError::Refused(Refusal::WrongBooklet {
                    booklet: booklet.clone(),
                    station: station.clone(),
                    assigned: assigned.clone(),
                }))
            }
            Some(_) => Ok(()),
            None => Err(LineError::Conflict(format!(
                "job {} has no printed booklet",
                step.job
            ))),
        }
    }

    fn device_of(&self, i: usize) -> Result<Device, LineError> {
        self.stations[i]
            .device
            .clone()
            .ok_or_else(|| LineError::Conflict(format!("{} has no device", self.stations[i].id)))
    }

    pub(crate) fn scan_booklet(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
        booklet: Serial,
        job: Option<JobId>,
    ) -> Result<StationView, LineError> {
        let i = self.my_station(actor, station)?;
        let step = self.step_at(i, StationKind::Print, Phase::Assigned)?;
        Self::no_choosing(&step, job, station)?;
        let device = self.device_of(i)?;
        let session = self.session_at(station)?;
        let mut rec = self.live(step.job)?;
        let attempt = self.new_attempt();
        let data = devices::job_data(&rec.job, attempt).map_err(conflict)?;
        // The booklet is bound to the job in the ledger *before* the printer moves (like the
        // patch gate): it must be held by this station's session and unused, and from now on a
        // crash, a fault or a defect finds it on the record and accounts for it.
        rec.crew.booklet = Some(booklet.0.clone());
        self.persist(
            actor,
            vec![LedgerEvent::BookletPrinted {
                booklet: booklet.clone(),
                session,
                job: step.job,
                document_number: rec.job.data.document_number.clone(),
                device: device.id.clone(),
            }],
            &[&rec],
            Vec::new(),
        )?;
        self.jobs.insert(step.job, rec);
        let booklet_str = booklet.0.clone();
        if let Some(s) = self.stations[i].step.as_mut() {
            s.phase = Phase::Running;
            s.booklet = Some(booklet);
            s.attempt = attempt;
        }
        self.refresh_consumables(i)?;
        device.load(booklet_str.as_str());
        self.spawn_step(station, step.job, attempt, move |timeout| async move {
            devices::print(&device.handle, data, timeout).await
        });
        self.view(i)
    }

    pub(crate) fn scan_patch(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
        patch: Serial,
        skip_reason: Option<String>,
        job: Option<JobId>,
        in_hand: Option<Serial>,
    ) -> Result<StationView, LineError> {
        let i = self.my_station(actor, station)?;
        // The booklet the operator holds is checked before anything else: whoever printed it
        // is told so, whatever the station's work (BRIEF §3, separation of duties).
        if let Some(b) = &in_hand {
            self.not_printed_by(actor, b)?;
        }
        let step = self.step_at(i, StationKind::Laminate, Phase::Assigned)?;
        Self::no_choosing(&step, job, station)?;
        if let Some(b) = &in_hand
            && let Some(assigned) = &step.booklet
            && assigned != b
        {
            return Err(LineError::Refused(Refusal::WrongBooklet {
                booklet: b.clone(),
                station: station.clone(),
                assigned: assigned.clone(),
            }));
        }
        let device = self.device_of(i)?;
        let session = self.session_at(station)?;
        if self.strict_roll_order && skip_reason.is_some() {
            return Err(LineError::Forbidden(Refusal::StrictRollOrder { patch }));
        }
        let booklet = step.booklet.clone().ok_or_else(|| {
            LineError::Conflict(format!("job {} has no printed booklet", step.job))
        })?;
        // A laminator that is running another booklet or stopped on a fault takes no patch:
        // the patch is recorded as applied before the feed. (A cold one is warmed up by the step,
        // and the line already started its heater when it assigned the work.)
        use hallctl_drivers::laminator::LaminatorState as L;
        if let Some(state @ (L::Running | L::Faulted)) = device.handle.laminator_state() {
            return Err(LineError::Conflict(format!(
                "{} is {} and takes no patch now",
                device.id,
                format!("{state:?}").to_lowercase()
            )));
        }
        let mut rec = self.live(step.job)?;
        rec.crew.patch = Some(patch.0.clone());
        // A recorded skip sets the skipped serials aside in the same batch: still held and
        // accountable, never used, so the roll goes on from the patch used.
        let skipped = match skip_reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => self.roll_gap(&session, &patch)?,
            _ => Vec::new(),
        };
        let skip_session = session.clone();
        let mut events = vec![LedgerEvent::PatchApplied {
            patch: patch.clone(),
            session: session.clone(),
            booklet,
            job: step.job,
            device: device.id.clone(),
            skip_reason: skip_reason.clone(),
        }];
        if !skipped.is_empty() {
            events.push(LedgerEvent::ItemsSetAside {
                session,
                serials: skipped.clone(),
                reason: format!(
                    "skipped for patch {patch}: {}",
                    skip_reason.as_deref().unwrap_or_default().trim()
                ),
            });
        }
        let receipts = match skipped.first() {
            None => self.persist(actor, events, &[&rec], Vec::new())?,
            // A skip: the lamination, the serials set aside and the alert naming every one of
            // them in one batch.
            Some(expected) => {
                let list: Vec<&str> = skipped.iter().map(Serial::as_str).collect();
                let o = Occurrence {
                    kind: AlertKind::RollSkip,
                    subject: skip_session.to_string(),
                    // The operator's reason stays in the record (free text is not streamed).
                    detail: format!(
                        "patch {patch} used out of roll order in {skip_session} ({expected} was \
                         next); set aside: {}",
                        list.join(", ")
                    ),
                    severity: self.severity(AlertKind::RollSkip, None),
                    serials: std::iter::once(patch.clone())
                        .chain(skipped.iter().cloned())
                        .collect(),
                    rule: None,
                };
                let facts = events.into_iter().map(|e| (actor.clone(), e)).collect();
                self.occur_with(o, facts, &[&rec])?
            }
        };
        for r in &receipts {
            match &r.alert {
                // Raised with the record, above.
                Some(crate::ledger::Alert::RollSkip { .. }) if !skipped.is_empty() => {}
                // Not expected beside a lamination; raised all the same, never dropped.
                Some(alert) => {
                    let o = self.custody_occurrence(actor, alert);
                    self.occur(&line_actor(), o, None);
                }
                None => {}
            }
        }
        self.jobs.insert(step.job, rec);
        let attempt = self.new_attempt();
        // (A simulated laminator is handed the scanned patch; a real one gets it from the operator.)
        device.load(patch.as_str());
        if let Some(s) = self.stations[i].step.as_mut() {
            s.phase = Phase::Running;
            s.patch = Some(patch);
            s.attempt = attempt;
        }
        self.refresh_consumables(i)?;
        self.spawn_step(station, step.job, attempt, move |timeout| async move {
            devices::laminate(&device.handle, attempt, timeout).await
        });
        self.view(i)
    }

    /// The serials of `patch`'s roll that `session` holds ahead of it and has not set aside:
    /// what a skip to `patch` leaves behind.
    fn roll_gap(&self, session: &SessionId, patch: &Serial) -> Result<Vec<Serial>, LineError> {
        let Some(s) = self.ledger.session(session)? else {
            return Ok(Vec::new());
        };
        let Some(lot) = self.ledger.item(patch)?.map(|i| i.lot) else {
            return Ok(Vec::new());
        };
        let mut gap = Vec::new();
        for h in &s.held {
            if h == patch {
                return Ok(gap);
            }
            if !s.set_aside.contains(h) && self.ledger.item(h)?.is_some_and(|i| i.lot == lot) {
                gap.push(h.clone());
            }
        }
        // The patch is not held here: the gate refuses it, nothing is set aside.
        Ok(Vec::new())
    }

    /// A fresh device reference for a step attempt.
    fn new_attempt(&mut self) -> u32 {
        let attempt = self.next_attempt;
        self.next_attempt = self.next_attempt.wrapping_add(1).max(1);
        attempt
    }

    /// Runs a device step on the runtime; its end comes back to the actor as `DeviceDone`.
    fn spawn_step<F, Fut>(&self, station: &StationId, job: JobId, attempt: u32, run: F)
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<devices::Reading, String>> + Send,
    {
        let (tx, timeout, station) = (self.tx.clone(), self.step_timeout, station.clone());
        self.rt.spawn(async move {
            let result = run(timeout).await;
            let _ = tx
                .send(Cmd::DeviceDone {
                    station,
                    job,
                    attempt,
                    result,
                })
                .await;
        });
    }

    fn device_done(
        &mut self,
        station: &StationId,
        job: JobId,
        attempt: u32,
        result: Result<devices::Reading, String>,
    ) {
        let Ok(i) = self.index(station) else {
            return;
        };
        let Some(step) = self.stations[i].step.clone() else {
            return;
        };
        if step.job != job || step.attempt != attempt || step.phase != Phase::Running {
            return;
        }
        // The device's reading is the last word (issue 16): it must name the scanned item.
        let scanned = match step.stage {
            Stage::Print => step.booklet.clone(),
            Stage::Laminate => step.patch.clone(),
            Stage::Qc | Stage::Dispatch => None,
        };
        let outcome = match (result, scanned) {
            (Ok(read), Some(scanned)) if read.as_deref() != Some(scanned.as_str()) => {
                self.device_read_mismatch(i, &step, scanned, read.map(Serial))
            }
            (Ok(_), _) => self.device_finished(i, &step),
            (Err(fault), _) => self.device_faulted(i, &step, &fault),
        };
        if let Err(e) = outcome {
            tracing::error!(%station, %job, "device step not recorded: {e}");
        }
    }

    fn device_finished(&mut self, i: usize, step: &Step) -> Result<(), LineError> {
        if let Some(s) = self.stations[i].step.as_mut() {
            s.phase = Phase::AwaitingConfirm;
        }
        // Nothing is recorded until the operator confirms; the terminal and the hall view
        // learn from this event that the device is done.
        self.status
            .emit(StatusEvent::Step(crate::status::StepEvent {
                station: self.stations[i].id.clone(),
                job: step.job,
                stage: step.stage,
                phase: Phase::AwaitingConfirm.name().to_string(),
                at: Utc::now(),
            }));
        Ok(())
    }

    /// The device read another item than the one scanned, or nothing: the step is not
    /// confirmed. The ledger records both serials (`device_read_mismatch`: the scanned item, and
    /// the one read if known, become unaccounted for), the job waits for a supervisor's
    /// inspection, and a critical `read_mismatch` alert stays open until acknowledged.
    fn device_read_mismatch(
        &mut self,
        i: usize,
        step: &Step,
        scanned: Serial,
        read: Option<Serial>,
    ) -> Result<(), LineError> {
        let station = self.stations[i].id.clone();
        let device = self.stations[i].device_id();
        let kind = if step.stage == Stage::Print {
            crate::ledger::ItemKind::Booklet
        } else {
            crate::ledger::ItemKind::Patch
        };
        // The session that recorded the scan (still open: a step in flight blocks its close).
        let session = match self.ledger.item(&scanned)?.map(|it| it.state) {
            Some(ItemState::Applied(b)) => b.session,
            _ => self.session_at(&station)?,
        };
        let rec = self.live(step.job)?;
        let next = rec
            .apply(&JobEvent::Interrupt, &self.separation)
            .map_err(conflict)?;
        let record = LedgerEvent::DeviceReadMismatch {
            device: device.clone(),
            job: step.job,
            session,
            scanned: scanned.clone(),
            read: read.clone(),
            kind,
        };
        let interrupted = changed(step.job, JobEvent::Interrupt);
        let what = match &read {
            Some(r) => format!("read {kind} {r} where {scanned} was scanned"),
            None => format!("gave no reading of the {kind} where {scanned} was scanned"),
        };
        // One incident per station: a second mismatch there is an occurrence of the first.
        let occurrence = |flagged: String, severity| Occurrence {
            kind: AlertKind::ReadMismatch,
            subject: station.to_string(),
            detail: format!(
                "{device} at {station} {what} for job {}: step stopped, the job waits for \
                 inspection; {flagged}",
                step.job
            ),
            severity,
            serials: std::iter::once(scanned.clone())
                .chain(read.clone())
                .collect(),
            rule: None,
        };
        let severity = self.severity(AlertKind::ReadMismatch, None);
        let flagged = match &read {
            Some(r) => format!("{scanned} and {r} are unaccounted for"),
            None => format!("{scanned} is unaccounted for"),
        };
        // The record, the job's interruption and the alert in one batch: a power cut keeps all
        // three or none.
        let facts = vec![(line_actor(), record), (line_actor(), interrupted.clone())];
        match self.occur_with(occurrence(flagged, severity), facts, &[&next]) {
            Ok(_) => {}
            // The record was refused (the custody state is not what the step recorded): the
            // step stops all the same, and the alert says so.
            Err(LineError::Refused(r)) => {
                tracing::error!(%station, job = %step.job, "read mismatch not recorded: {r}");
                let flagged = "the mismatch could not be recorded: check the ledger".to_string();
                let facts = vec![(line_actor(), interrupted)];
                self.occur_with(occurrence(flagged, severity), facts, &[&next])?;
            }
            Err(e) => return Err(e),
        }
        tracing::error!(%station, job = %step.job, "device read mismatch: {what}");
        self.end_step(i, next)
    }

    fn device_faulted(&mut self, i: usize, step: &Step, fault: &str) -> Result<(), LineError> {
        let operator = self.stations[i].operator.clone().unwrap_or_else(line_actor);
        let station = self.stations[i].id.clone();
        let reason = if fault.contains("Jam") {
            SpoilReason::Jam
        } else {
            SpoilReason::DeviceFault
        };
        let text = format!("{} fault at {station}: {fault}", step.stage.name());
        // A fault can be provoked (a cover opened, a cancel): the items it spoils wait for a
        // supervisor to see them in hand, like a defect report's.
        let events = self.spoil_items_as(step.booklet.as_ref(), &text, true)?;
        let spoiled = spoiled_serials(&events);
        let ev = JobEvent::Spoil { reason };
        let next = if spoiled.is_empty() {
            self.transition(&operator, step.job, ev, events)?
        } else {
            let detail = format!(
                "{text}: {} spoiled (job {}, operator {operator}); a supervisor approves it \
                 with the item(s) in hand",
                spoiled
                    .iter()
                    .map(Serial::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                step.job
            );
            let o =
                self.event_occurrence(AlertKind::DeviceSpoil, station.to_string(), detail, spoiled);
            self.transition_alerting(&operator, step.job, ev, events, o)?
        };
        tracing::warn!(%station, job = %step.job, "device fault: job sent back to printing");
        self.end_step(i, next)
    }

    pub(crate) fn confirm(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
    ) -> Result<StationView, LineError> {
        let i = self.my_station(actor, station)?;
        let kind = self.stations[i].kind;
        let step = self.step_at(i, kind, Phase::AwaitingConfirm)?;
        let serial = match step.stage {
            Stage::Print => step.booklet.clone(),
            _ => step.patch.clone(),
        };
        let ev = JobEvent::Finish {
            stage: step.stage,
            serial: serial.map(|s| s.0),
        };
        let next = self.transition(actor, step.job, ev, Vec::new())?;
        self.end_step(i, next)?;
        self.view(i)
    }

    pub(crate) fn report_defect(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
        reason: String,
    ) -> Result<StationView, LineError> {
        if reason.trim().is_empty() {
            return Err(LineError::invalid("reason", "describe the defect"));
        }
        let i = self.my_station(actor, station)?;
        let kind = self.stations[i].kind;
        let step = self.step_at(i, kind, Phase::AwaitingConfirm)?;
        let (spoil, text) = match step.stage {
            Stage::Print => (SpoilReason::PrintDefect, format!("print defect: {reason}")),
            _ => (
                SpoilReason::LaminationDefect,
                format!("lamination defect: {reason}"),
            ),
        };
        // On the operator's word alone nothing is spoiled: the items wait for a supervisor's
        // approval with them in hand, and the job waits with them. The report and its alert in
        // one batch; the operator's words stay in the record (free text is not streamed).
        let extra = self.spoil_items_as(step.booklet.as_ref(), &text, true)?;
        let serials = spoiled_serials(&extra);
        let detail = format!(
            "{actor} reported {} of job {} spoiled at {station} ({} defect): a supervisor \
             approves or rejects it with the item(s) in hand",
            serials
                .iter()
                .map(Serial::as_str)
                .collect::<Vec<_>>()
                .join(" and "),
            step.job,
            step.stage.name()
        );
        let o = self.event_occurrence(
            AlertKind::SpoilageAwaitingApproval,
            station.to_string(),
            detail,
            serials,
        );
        let next = self.transition_alerting(
            actor,
            step.job,
            JobEvent::ReportDefect { reason: spoil },
            extra,
            o,
        )?;
        self.end_step(i, next)?;
        self.view(i)
    }

    /// The spoil report `item` belongs to: its items (the item and, for a used item, its
    /// partner when it is in the same state) as a [`SpoilageReport`].
    fn report_of(&self, item: &crate::ledger::Item) -> Result<SpoilageReport, LineError> {
        let (reason, by, at, approved_by, binding, status) = match &item.state {
            ItemState::SpoilPending {
                reason,
                by,
                at,
                was,
                ..
            } => (
                reason,
                by,
                at,
                None,
                match was.as_ref() {
                    ItemState::Applied(b) => Some(b.clone()),
                    _ => None,
                },
                "awaiting_approval",
            ),
            ItemState::Spoiled {
                reason,
                by,
                at,
                approved_by,
                ..
            } => (
                reason,
                by,
                at,
                approved_by.clone(),
                None,
                if approved_by.is_some() {
                    "approved"
                } else {
                    "spoiled"
                },
            ),
            other => {
                return Err(LineError::Refused(Refusal::NotAwaitingApproval {
                    serial: item.serial.clone(),
                    state: other.describe(),
                }));
            }
        };
        let mut serials = vec![item.serial.clone()];
        if let Some(p) = binding.as_ref().and_then(|b| b.partner.clone())
            && let Some(pi) = self.ledger.item(&p)?
            && matches!(pi.state, ItemState::SpoilPending { .. })
        {
            serials.push(p);
        }
        Ok(SpoilageReport {
            job: binding.map(|b| b.job),
            serials,
            status: status.into(),
            reason: reason.clone(),
            reported_by: by.clone(),
            reported_at: *at,
            approved_by,
        })
    }

    /// Spoilage not yet destroyed: reports awaiting a decision, items awaiting destruction.
    pub(crate) fn spoilage(&self) -> Result<SpoilageList, LineError> {
        let mut list = SpoilageList::default();
        let mut seen: HashSet<Serial> = HashSet::new();
        for item in self.ledger.spoilage()? {
            if seen.contains(&item.serial) {
                continue;
            }
            let r = self.report_of(&item)?;
            seen.extend(r.serials.iter().cloned());
            if r.status == "awaiting_approval" {
                list.pending.push(r);
            } else {
                list.to_destroy.push(r);
            }
        }
        Ok(list)
    }

    /// The job that waits for the spoil report `item` belongs to: `defect_reported`, with the
    /// report's booklet (the item, or the booklet the patch is on, whatever became of it since)
    /// as its current booklet. A job can wait on a newer defect report (on its reprint) while an
    /// older device or QC spoil of it is decided: that one is not its report.
    fn job_waiting_on(&self, item: &crate::ledger::Item) -> Option<JobRecord> {
        let ItemState::SpoilPending { was, .. } = &item.state else {
            return None;
        };
        let ItemState::Applied(b) = was.as_ref() else {
            return None;
        };
        let booklet = match item.kind {
            crate::ledger::ItemKind::Booklet => Some(&item.serial),
            crate::ledger::ItemKind::Patch => b.partner.as_ref(),
        }?;
        self.jobs
            .get(&b.job)
            .filter(|r| matches!(r.state, JobState::DefectReported { .. }))
            .filter(|r| r.crew.booklet.as_deref() == Some(booklet.as_str()))
            .cloned()
    }

    /// A supervisor decides the spoil report of `serial` with the items scanned in hand.
    pub(crate) fn decide_spoilage(
        &mut self,
        actor: &OperatorId,
        serial: &Serial,
        d: SpoilageDecision,
    ) -> Result<SpoilageReport, LineError> {
        let item = self
            .ledger
            .item(serial)?
            .ok_or_else(|| LineError::NotFound(format!("{serial} is not a known serial")))?;
        let ItemState::SpoilPending { was, .. } = &item.state else {
            return Err(LineError::Refused(Refusal::NotAwaitingApproval {
                serial: serial.clone(),
                state: item.state.describe(),
            }));
        };
        let report = self.report_of(&item)?;
        let want: BTreeSet<&Serial> = report.serials.iter().collect();
        let got: BTreeSet<&Serial> = d.scanned.iter().collect();
        if want != got || got.len() != d.scanned.len() {
            return Err(LineError::Refused(Refusal::SpoilageNotInHand {
                awaiting: report.serials.clone(),
                scanned: d.scanned.clone(),
            }));
        }
        let decided = LedgerEvent::SpoilageDecided {
            serials: d.scanned.clone(),
            approved: d.approved,
            note: d.note.clone(),
        };
        // The job waits with its items: approved, it is printed again on a new booklet;
        // rejected, the step stands. Only when it waits for *this* report (see
        // [`Actor::job_waiting_on`]).
        let job = self.job_waiting_on(&item);
        match job {
            Some(rec) => {
                let JobState::DefectReported { stage, reason, .. } = &rec.state else {
                    return Err(LineError::Storage(
                        "a job changed under the decision".into(),
                    ));
                };
                let ev = if d.approved {
                    JobEvent::Spoil { reason: *reason }
                } else {
                    let kind = match stage {
                        Stage::Print => crate::ledger::ItemKind::Booklet,
                        _ => crate::ledger::ItemKind::Patch,
                    };
                    let mut step_item = None;
                    for s in &report.serials {
                        if self.ledger.item(s)?.is_some_and(|i| i.kind == kind) {
                            step_item = Some(s.to_string());
                        }
                    }
                    JobEvent::RejectDefect { serial: step_item }
                };
                let next = self.transition(actor, rec.job.id, ev, vec![decided])?;
                if let Some(w) = next.state.waiting() {
                    self.enqueue(queued(&next), w.next_stage())?;
                }
                self.jobs.insert(next.job.id, next);
            }
            // A spoil whose job went on without it (a device fault, QC): the items cannot go
            // back to the job, which is printed again on a new booklet.
            None => {
                if !d.approved
                    && let ItemState::Applied(b) = was.as_ref()
                {
                    return Err(LineError::Refused(Refusal::SpoilStands {
                        items: report.serials.clone(),
                        job: b.job,
                    }));
                }
                self.persist(actor, vec![decided], &[], Vec::new())?;
            }
        }
        for i in 0..self.stations.len() {
            self.refresh_consumables(i)?;
        }
        let mut out = report;
        out.status = if d.approved { "approved" } else { "rejected" }.into();
        out.approved_by = d.approved.then(|| actor.clone());
        tracing::info!(%serial, approved = d.approved, "spoilage decided by {actor}");
        Ok(out)
    }

    /// Spoiled items not destroyed in time (`custody.destroy_within_secs`, or by the end of the
    /// shift they were spoiled in): one critical alert naming them, once per item while the
    /// controller runs.
    fn spoilage_alerts(&mut self, now: DateTime<Utc>) {
        let items = match self.ledger.spoilage() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("spoilage not read for the destruction check: {e}");
                return;
            }
        };
        let current = shift_of(now);
        let mut pending = Vec::new();
        let mut approved = Vec::new();
        for item in items {
            let (at, is_pending) = match &item.state {
                ItemState::SpoilPending { at, .. } => (*at, true),
                ItemState::Spoiled { at, .. } => (*at, false),
                _ => continue,
            };
            let late = match self.destroy_within {
                Some(d) => (now - at).to_std().is_ok_and(|age| age >= d),
                None => shift_of(at) != current,
            };
            if !late || self.overdue_alerted.contains(&item.serial) {
                continue;
            }
            if is_pending {
                pending.push(item.serial);
            } else {
                approved.push(item.serial);
            }
        }
        if pending.is_empty() && approved.is_empty() {
            return;
        }
        let when = match self.destroy_within {
            Some(d) => format!("within {} s", d.as_secs()),
            None => "by the end of their shift".into(),
        };
        let names = |v: &[Serial]| v.iter().map(Serial::as_str).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !approved.is_empty() {
            parts.push(format!("spoiled, not destroyed: {}", names(&approved)));
        }
        if !pending.is_empty() {
            parts.push(format!("still awaiting approval: {}", names(&pending)));
        }
        let serials: Vec<Serial> = approved.into_iter().chain(pending).collect();
        self.overdue_alerted.extend(serials.iter().cloned());
        self.raise_naming(
            AlertKind::SpoilageNotDestroyed,
            "spoilage",
            format!(
                "{} spoiled item(s) not destroyed before witnesses {when}: {}",
                serials.len(),
                parts.join("; ")
            ),
            serials,
        );
    }

    pub(crate) fn qc(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
        booklet: Serial,
        mrz: [String; 2],
    ) -> Result<QcOutcome, LineError> {
        let i = self.my_station(actor, station)?;
        let step = self.step_at(i, StationKind::Qc, Phase::Assigned)?;
        Self::assigned_booklet(&step, &booklet, station)?;
        let rec = self.live(step.job)?;
        let expected = hallctl_jobs::mrz::generate(rec.job.doc_type, &rec.job.data)
            .map_err(|e| conflict(format!("the job's MRZ cannot be generated ({})", e.field())))?;
        // Read like a document reader: parsed, check digits verified, compared field by field.
        let reading = hallctl_jobs::mrz::compare_read_back(&expected, mrz[0].trim(), mrz[1].trim());
        let read = step.qc_mismatches + 1;
        let attempts = self.qc_read_attempts;
        let verdict = super::qc_verdict(&reading, read, attempts);
        let fields: Vec<String> = reading.fields().iter().map(|f| f.name().into()).collect();
        let mismatch = super::qc_mismatch(&reading);
        let outcome = |message: String| QcOutcome {
            passed: verdict == QcVerdict::Passed,
            outcome: verdict,
            fields: fields.clone(),
            read,
            read_attempts: attempts,
            message,
        };
        if verdict == QcVerdict::Reread {
            // Nothing changes but the count: no ledger record, no spoil.
            if let Some(s) = self.stations[i].step.as_mut() {
                s.qc_mismatches = read;
            }
            tracing::info!(
                station = %station, job = %step.job, booklet = %booklet, read, attempts,
                "QC: the MRZ read back {mismatch}; asking for a re-read"
            );
            return Ok(outcome(format!(
                "reading {read} of {attempts}: the MRZ read back from booklet {booklet} (job {}) \
                 {mismatch}: read the booklet again (nothing was spoiled)",
                step.job
            )));
        }
        let passed = verdict == QcVerdict::Passed;
        let mut events = vec![LedgerEvent::QcChecked {
            booklet: booklet.clone(),
            job: step.job,
            station: station.clone(),
            passed,
        }];
        let readings = if read == 1 {
            "1 reading".to_string()
        } else {
            format!("{read} readings")
        };
        let ev = if passed {
            JobEvent::Finish {
                stage: Stage::Qc,
                serial: None,
            }
        } else {
            // Typed or read at QC without a supervisor: the items wait for one, in hand.
            events.extend(self.spoil_items_as(
                Some(&booklet),
                &format!("QC: the MRZ read back {mismatch} ({readings})"),
                true,
            )?);
            JobEvent::Spoil {
                reason: SpoilReason::QcMismatch,
            }
        };
        // The patch on the booklet, read before the spoil changes the booklet's state.
        let patch = self.ledger.item(&booklet)?.and_then(|it| match it.state {
            ItemState::Applied(b) => b.partner,
            _ => None,
        });
        let next = if passed {
            self.transition(actor, step.job, ev, events)?
        } else {
            // The spoil and its alert in one batch.
            let detail = format!(
                "{actor} at {station}: the MRZ read back from booklet {booklet} (job {}) \
                 {mismatch} ({readings}): booklet and patch spoiled, awaiting a supervisor's \
                 approval with them in hand",
                step.job
            );
            let serials = std::iter::once(booklet.clone()).chain(patch).collect();
            let o = self.event_occurrence(AlertKind::QcSpoil, station.to_string(), detail, serials);
            self.transition_alerting(actor, step.job, ev, events, o)?
        };
        self.end_step(i, next)?;
        Ok(outcome(if passed {
            format!("job {} passed QC: ready for dispatch", step.job)
        } else {
            tracing::warn!(
                station = %station, job = %step.job, booklet = %booklet,
                "QC: the MRZ read back {mismatch} ({readings}): booklet and patch spoiled"
            );
            format!(
                "the MRZ read back from booklet {booklet} (job {}) {mismatch} ({readings}): \
                 booklet and patch spoiled (a supervisor approves with them in hand), the job \
                 goes back to printing",
                step.job
            )
        }))
    }

    pub(crate) fn pack(
        &mut self,
        actor: &OperatorId,
        station: &StationId,
        booklet: Serial,
    ) -> Result<Bag, LineError> {
        let i = self.my_station(actor, station)?;
        let step = self.step_at(i, StationKind::Dispatch, Phase::Assigned)?;
        Self::assigned_booklet(&step, &booklet, station)?;
        let rec = self.live(step.job)?;
        let now = Utc::now();
        let dest = rec.job.destination.clone();
        let mut bag = match self.bags.get(&dest) {
            Some(b) => b.clone(),
            None => {
                let prefix = bag_prefix(&dest, now);
                let n = store_jobs::last_bag_number(self.ledger.store(), &prefix)? + 1;
                Bag {
                    id: format!("{prefix}{n:03}"),
                    destination: dest.clone(),
                    opened_at: now,
                    closed_at: None,
                    items: Vec::new(),
                }
            }
        };
        bag.items.push(BagItem {
            job: step.job,
            tracking_number: rec.job.tracking.as_str().to_string(),
            booklet: booklet.clone(),
            document_number: rec.job.data.document_number.clone(),
            packed_by: actor.clone(),
        });
        let ev = JobEvent::Dispatch {
            bag: bag.id.clone(),
        };
        let next = rec.apply(&ev, &self.separation).map_err(conflict)?;
        self.persist(
            actor,
            vec![
                LedgerEvent::Dispatched {
                    booklet,
                    job: step.job,
                    destination: dest.clone(),
                    bag: bag.id.clone(),
                },
                changed(step.job, ev),
            ],
            &[&next],
            store_jobs::bag_writes(&bag)?.into(),
        )?;
        self.bags.insert(dest, bag.clone());
        self.end_step(i, next)?;
        Ok(bag)
    }

    pub(crate) fn close_bag(&mut self, actor: &OperatorId, id: &str) -> Result<Bag, LineError> {
        let mut bag = self
            .bags
            .values()
            .find(|b| b.id == id)
            .cloned()
            .ok_or_else(|| LineError::NotFound(format!("no open bag {id}")))?;
        bag.closed_at = Some(Utc::now());
        self.persist(
            actor,
            vec![action(ControlAction::BagClosed {
                bag: bag.id.clone(),
                destination: bag.destination.clone(),
                jobs: bag.items.iter().map(|b| b.job).collect(),
            })],
            &[],
            store_jobs::bag_writes(&bag)?.into(),
        )?;
        self.bags.remove(&bag.destination);
        Ok(bag)
    }

    pub(crate) fn bag(&self, id: &str) -> Result<Bag, LineError> {
        let v = self
            .ledger
            .store()
            .aux_get(&store_jobs::bag_key(id))
            .map_err(|e| LineError::Storage(e.to_string()))?
            .ok_or_else(|| LineError::NotFound(format!("no bag {id}")))?;
        serde_json::from_slice(&v).map_err(|e| LineError::Storage(e.to_string()))
    }

    // ---- devices --------------------------------------------------------------------------

    fn device_state(&mut self, station: &StationId, readiness: DeviceReadiness) {
        let Ok(i) = self.index(station) else {
            return;
        };
        let before = self.stations[i].readiness();
        let st = &mut self.stations[i];
        st.reported = readiness;
        if readiness != DeviceReadiness::Offline {
            st.offline_since = None;
        } else if st.offline_since.is_none() {
            st.offline_since = Some(Utc::now());
        }
        self.apply_readiness(i);
        self.emit_readiness(i, before);
    }

    /// Tells the status stream when station `i`'s readiness is no longer `before`.
    fn emit_readiness(&self, i: usize, before: DeviceReadiness) {
        let st = &self.stations[i];
        if st.readiness() != before {
            self.status
                .emit(StatusEvent::DeviceState(crate::status::DeviceStateEvent {
                    station: st.id.clone(),
                    device: st.device.as_ref().map(|d| d.id.clone()),
                    readiness: st.readiness(),
                    at: Utc::now(),
                }));
        }
    }

    fn apply_readiness(&mut self, i: usize) {
        let st = &self.stations[i];
        if st.kind.stage().is_some() {
            let (id, r) = (st.id.clone(), st.readiness());
            let _ = self.sched.set_device(&id, r);
        }
    }

    pub(crate) fn clear_fault(
        &mut self,
        actor: &OperatorId,
        device: &DeviceId,
    ) -> Result<StationView, LineError> {
        let i = self.device_station(device)?;
        let st = &self.stations[i];
        let is_operator_here = st.operator.as_ref() == Some(actor);
        if st.reported != DeviceReadiness::Faulted {
            return Err(LineError::Conflict(format!("{device} reports no fault")));
        }
        let handle = self.device_of(i)?.handle;
        self.persist(
            actor,
            vec![action(ControlAction::DeviceCommanded {
                device: device.clone(),
                command: if is_operator_here {
                    "clear-fault (by the station's operator)"
                } else {
                    "clear-fault"
                }
                .into(),
            })],
            &[],
            Vec::new(),
        )?;
        let name = device.clone();
        self.rt.spawn(async move {
            if let Err(e) = devices::clear_fault(&handle).await {
                tracing::warn!(device = %name, "clearing the fault failed: {e}");
            }
        });
        self.view(i)
    }

    fn device_station(&self, device: &DeviceId) -> Result<usize, LineError> {
        self.stations
            .iter()
            .position(|s| s.device.as_ref().is_some_and(|d| &d.id == device))
            .ok_or_else(|| LineError::NotFound(format!("no device {device}")))
    }

    pub(crate) fn pause_device(
        &mut self,
        actor: &OperatorId,
        device: &DeviceId,
        pause: bool,
    ) -> Result<StationView, LineError> {
        let i = self.device_station(device)?;
        if self.stations[i].paused == pause {
            return Err(LineError::Conflict(format!(
                "{device} is already {}",
                if pause { "paused" } else { "running" }
            )));
        }
        self.persist(
            actor,
            vec![action(ControlAction::DeviceCommanded {
                device: device.clone(),
                command: if pause { "pause" } else { "resume" }.into(),
            })],
            &[],
            Vec::new(),
        )?;
        let before = self.stations[i].readiness();
        self.stations[i].paused = pause;
        self.apply_readiness(i);
        self.emit_readiness(i, before);
        self.view(i)
    }
}

fn bag_prefix(dest: &Destination, at: DateTime<Utc>) -> String {
    format!("BAG-{dest}-{}-", at.format("%Y%m%d"))
}

#[cfg(test)]
mod cap_tests {
    use super::issue_cap;

    #[test]
    fn a_session_holds_its_share_of_the_work_plus_the_margin_up_to_the_maximum() {
        // No work: the margin only.
        assert_eq!(issue_cap(0, 1, 25, 500), 25);
        // 100 jobs among 3 staffed stations: 34 each (rounded up), plus the margin.
        assert_eq!(issue_cap(100, 3, 25, 500), 59);
        // Nobody staffed yet counts as one station.
        assert_eq!(issue_cap(10, 0, 5, 500), 15);
        // Never beyond the maximum.
        assert_eq!(issue_cap(40_000, 1, 25, 500), 500);
    }
}
