//! The status fan-out: one [`StatusHub`] per line, a `broadcast` of typed [`StatusEvent`]s plus a
//! `watch` of the latest [`LineSnapshot`], and the Prometheus metrics fed from both.
//!
//! # Shape
//! The line's actor is the only producer. After every ledger append it emits one event per
//! record, and one per device readiness change; after every command it replaces the snapshot.
//! A send never blocks: the broadcast ring overwrites the oldest events, and a subscriber that
//! fell behind learns so (`RecvError::Lagged`) and starts again from the snapshot. The SSE stream
//! ([`crate::api::status`]) and `/metrics` are consumers.
//!
//! # Privacy
//! Events carry ids, names and stations, never passport-holder data: they are built from ledger
//! records and control actions, which carry none.
//!
//! # Metrics
//! Counters and the append-latency histogram are updated where the events are emitted (atomics,
//! no lock held across anything), so they never miss an event the way a lagging subscriber
//! would. Gauges are read from the snapshot at scrape time. The hall's id is a constant label
//! added at scrape time.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hallctl_jobs::job::{DeviceId, JobEvent, JobId, OperatorId, Stage, StationId};
use hallctl_jobs::scheduler::DeviceReadiness;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::ledger::{ControlAction, LedgerEvent};
use crate::line::LineSnapshot;

/// How many events a subscriber may fall behind before it lags and resyncs.
pub const DEFAULT_CAPACITY: usize = 1024;

/// One ledger record the line persisted (names and ids only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// The record's sequence number in the ledger.
    pub seq: u64,
    /// The record's name (`assigned`, `booklet_printed`, `patch_applied`, `job_changed`, ...).
    pub record: String,
    /// For `job_changed`, what happened to the job (`finish`, `hold`, `spoil`, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub change: Option<String>,
    /// The job, when the record concerns exactly one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub job: Option<JobId>,
    /// How many jobs the record concerns (a submitted batch names many).
    pub jobs: u32,
    /// The stage (an assignment, a finished step).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stage: Option<Stage>,
    /// The station, when the record names one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub station: Option<StationId>,
    /// For an alert's records (`alert_raised`, `alert_cleared`, `alert_acknowledged`): which
    /// alert, and what it says when raised.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alert: Option<AlertTag>,
    /// Who recorded it.
    pub actor: OperatorId,
    /// When it was recorded (the producer's clock).
    pub at: DateTime<Utc>,
}

/// The alert a record concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTag {
    /// The alert's id.
    pub id: String,
    /// Its kind (on `alert_raised`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// Its subject (on `alert_raised`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// What was seen (on `alert_raised` and `alert_repeated`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// How urgent (on `alert_raised`: the incident's; on `alert_repeated`: this occurrence's).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub severity: Option<String>,
    /// Which occurrence of the incident (on `alert_repeated`; the raising one is 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub occurrence: Option<u32>,
    /// The serials the occurrence named.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub serials: Vec<crate::ledger::Serial>,
}

impl AlertTag {
    fn id(alert: &str) -> AlertTag {
        AlertTag {
            id: alert.to_string(),
            kind: None,
            subject: None,
            detail: None,
            severity: None,
            occurrence: None,
            serials: Vec::new(),
        }
    }
}

/// A device's readiness changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStateEvent {
    /// The station.
    pub station: StationId,
    /// Its device.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<DeviceId>,
    /// Its readiness as the scheduler sees it.
    pub readiness: DeviceReadiness,
    /// When the line saw the change.
    pub at: DateTime<Utc>,
}

/// A device finished its part of a step: the station's operator confirms it or reports a defect
/// (no ledger record is written until they do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvent {
    /// The station.
    pub station: StationId,
    /// The job.
    pub job: JobId,
    /// The stage.
    pub stage: Stage,
    /// Where the step is now (`awaiting_confirmation`).
    pub phase: String,
    /// When the line saw the change.
    pub at: DateTime<Utc>,
}

/// An event as the hub numbered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// The hub's sequence number, from 1, without gaps (the SSE `id:`). A snapshot's
    /// [`LineSnapshot::events`] is the last number it reflects.
    pub id: u64,
    /// The event.
    pub event: StatusEvent,
    /// Its JSON body, serialized once for every subscriber.
    pub json: Arc<str>,
}

/// One status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    /// A ledger record the line persisted.
    Record(RecordEvent),
    /// A device readiness change.
    DeviceState(DeviceStateEvent),
    /// A step moved on without a ledger record (its device finished).
    Step(StepEvent),
    /// The store stopped or resumed recording (see [`crate::line::storage`]): the one change
    /// that cannot come as a ledger record.
    Storage(crate::line::StorageStatus),
    /// An online verification of the ledger's chain moved on (`GET /ledger/verify`).
    Verify(VerifyEvent),
}

/// Progress of an online verification of the ledger (the SSE event `ledger_verify`): sent when
/// it starts, about four times a second while it runs, and when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyEvent {
    /// `full`, `incremental` or `since_checkpoint`.
    pub mode: String,
    /// `running`, `passed`, `failed` (a bad record: see `first_bad`) or `error` (storage).
    pub state: String,
    /// Records checked so far.
    pub done: u64,
    /// Records to check (the head when it started, less the records before its start).
    pub total: u64,
    /// The first bad record, once `failed`.
    pub first_bad: Option<u64>,
    /// Who asked.
    pub by: OperatorId,
    /// When.
    pub at: DateTime<Utc>,
}

impl StatusEvent {
    /// The event's name (the SSE `event:` field): the record's name, `device_state` or
    /// `step_phase`.
    pub fn name(&self) -> &str {
        match self {
            StatusEvent::Record(r) => &r.record,
            StatusEvent::DeviceState(_) => "device_state",
            StatusEvent::Step(_) => "step_phase",
            StatusEvent::Storage(_) => "storage",
            StatusEvent::Verify(_) => "ledger_verify",
        }
    }

    /// When the producer emitted it.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            StatusEvent::Record(r) => r.at,
            StatusEvent::DeviceState(d) => d.at,
            StatusEvent::Step(e) => e.at,
            StatusEvent::Storage(s) => s.since.unwrap_or_else(Utc::now),
            StatusEvent::Verify(v) => v.at,
        }
    }

    /// The event's body as JSON.
    pub fn to_json(&self) -> String {
        let v = match self {
            StatusEvent::Record(r) => serde_json::to_string(r),
            StatusEvent::DeviceState(d) => serde_json::to_string(d),
            StatusEvent::Step(e) => serde_json::to_string(e),
            StatusEvent::Storage(s) => serde_json::to_string(s),
            StatusEvent::Verify(v) => serde_json::to_string(v),
        };
        // Plain structs of strings and numbers: serialization cannot fail.
        v.unwrap_or_else(|_| "{}".to_string())
    }

    /// The event for one persisted ledger record.
    pub fn record(
        seq: u64,
        at: DateTime<Utc>,
        actor: &OperatorId,
        event: &LedgerEvent,
    ) -> StatusEvent {
        StatusEvent::Record(RecordEvent::of(seq, at, actor, event))
    }
}

impl RecordEvent {
    /// The summary of one persisted ledger record (ids and names only).
    pub fn of(seq: u64, at: DateTime<Utc>, actor: &OperatorId, event: &LedgerEvent) -> RecordEvent {
        let mut r = RecordEvent {
            seq,
            record: event.name().to_string(),
            change: None,
            job: None,
            jobs: 0,
            stage: None,
            station: None,
            alert: None,
            actor: actor.clone(),
            at,
        };
        let one = |r: &mut RecordEvent, job: JobId| {
            r.job = Some(job);
            r.jobs = 1;
        };
        match event {
            LedgerEvent::SessionOpened { station, .. } => r.station = Some(station.clone()),
            LedgerEvent::BookletPrinted { job, .. }
            | LedgerEvent::PatchApplied { job, .. }
            | LedgerEvent::DeviceReadMismatch { job, .. }
            | LedgerEvent::Dispatched { job, .. } => one(&mut r, *job),
            LedgerEvent::QcChecked { job, station, .. } => {
                one(&mut r, *job);
                r.station = Some(station.clone());
            }
            LedgerEvent::Action { action } => {
                let jobs = action.jobs();
                r.jobs = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
                if let [job] = jobs.as_slice() {
                    r.job = Some(*job);
                }
                r.station = action.station().cloned();
                match action {
                    ControlAction::Assigned { stage, .. } => r.stage = Some(*stage),
                    ControlAction::AlertRaised {
                        alert,
                        kind,
                        subject,
                        detail,
                        severity,
                        serials,
                    } => {
                        r.alert = Some(AlertTag {
                            kind: Some(kind.clone()),
                            subject: Some(subject.clone()),
                            detail: Some(detail.clone()),
                            severity: severity.clone(),
                            occurrence: Some(1),
                            serials: serials.clone(),
                            ..AlertTag::id(alert)
                        });
                    }
                    ControlAction::AlertRepeated {
                        alert,
                        occurrence,
                        detail,
                        serials,
                        severity,
                        ..
                    } => {
                        r.alert = Some(AlertTag {
                            detail: Some(detail.clone()),
                            severity: severity.clone(),
                            occurrence: Some(*occurrence),
                            serials: serials.clone(),
                            ..AlertTag::id(alert)
                        });
                    }
                    ControlAction::AlertCleared { alert }
                    | ControlAction::AlertAcknowledged { alert }
                    | ControlAction::AlertResolved { alert, .. } => {
                        r.alert = Some(AlertTag::id(alert));
                    }
                    ControlAction::JobChanged { event, .. } => {
                        r.change = Some(event.name().to_string());
                        if let JobEvent::Finish { stage, .. } | JobEvent::Start { stage, .. } =
                            event
                        {
                            r.stage = Some(*stage);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        r
    }
}

/// The hub: the event bus, the latest snapshot and the metrics. Cheap to clone.
#[derive(Clone)]
pub struct StatusHub {
    inner: Arc<Inner>,
}

struct Inner {
    events: broadcast::Sender<Numbered>,
    /// The last id given out; held while sending so that ids reach subscribers in order.
    last_id: Mutex<u64>,
    snapshot: watch::Sender<LineSnapshot>,
    /// Set at shutdown: streams end so that the server can drain.
    closed: watch::Sender<bool>,
    metrics: Metrics,
    /// Set once the MQTT publisher runs.
    outbox: OnceLock<OutboxMetrics>,
}

/// The MQTT outbox's figures (see [`crate::mqtt`]), exposed at `/metrics` once the publisher
/// runs. Clones share the values.
#[derive(Debug, Clone, Default)]
pub struct OutboxMetrics {
    /// Records durable in the ledger but not yet acknowledged by the broker (head − cursor).
    pub backlog: Gauge,
    /// The last record the broker acknowledged, in order (the outbox's cursor).
    pub cursor: Gauge,
    /// 1 while connected to the broker.
    pub connected: Gauge,
    /// Messages the broker acknowledged (events, state, devices, checkpoints; re-sends count).
    pub acknowledged: Counter,
    /// Connections lost or refused.
    pub disconnects: Counter,
}

impl std::fmt::Debug for StatusHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHub")
            .field("subscribers", &self.inner.events.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl StatusHub {
    /// A hub whose subscribers may fall `capacity` events behind before they lag.
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        let (snapshot, _) = watch::channel(LineSnapshot::default());
        StatusHub {
            inner: Arc::new(Inner {
                events,
                last_id: Mutex::new(0),
                snapshot,
                closed: watch::Sender::new(false),
                metrics: Metrics::new(),
                outbox: OnceLock::new(),
            }),
        }
    }

    /// Emits an event to every subscriber and counts it. Never blocks; with no subscriber the
    /// event is only counted.
    pub fn emit(&self, event: StatusEvent) {
        self.inner.metrics.count(&event);
        let json: Arc<str> = event.to_json().into();
        let mut last = self
            .inner
            .last_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last += 1;
        let _ = self.inner.events.send(Numbered {
            id: *last,
            event,
            json,
        });
    }

    /// The id of the last event emitted.
    pub fn last_id(&self) -> u64 {
        *self
            .inner
            .last_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a step that ended, per device and per operator (`good`: finished; otherwise
    /// spoiled).
    pub fn count_step(
        &self,
        device: &DeviceId,
        operator: Option<&OperatorId>,
        stage: Stage,
        good: bool,
    ) {
        let outcome = if good { "completed" } else { "spoiled" };
        let m = &self.inner.metrics;
        m.device_steps
            .get_or_create(&vec![
                ("device", device.to_string()),
                ("stage", stage.name().to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        if let Some(op) = operator {
            m.operator_steps
                .get_or_create(&vec![
                    ("operator", op.to_string()),
                    ("outcome", outcome.to_string()),
                ])
                .inc();
        }
    }

    /// Records how long one ledger append took.
    pub fn observe_append(&self, took: Duration) {
        self.inner.metrics.append.observe(took.as_secs_f64());
    }

    /// Replaces the snapshot, stamped with the last event id it reflects (the producer
    /// publishes after the events of a change, from the same thread).
    pub fn publish(&self, mut snapshot: LineSnapshot) {
        snapshot.events = self.last_id();
        self.inner.snapshot.send_replace(snapshot);
    }

    /// A receiver of the events emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.inner.events.subscribe()
    }

    /// A receiver of snapshots.
    pub fn watch(&self) -> watch::Receiver<LineSnapshot> {
        self.inner.snapshot.subscribe()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> LineSnapshot {
        self.inner.snapshot.borrow().clone()
    }

    /// The MQTT outbox's figures, registered at `/metrics` from the first call on.
    pub fn outbox_metrics(&self) -> OutboxMetrics {
        self.inner
            .outbox
            .get_or_init(OutboxMetrics::default)
            .clone()
    }

    /// Ends every stream (at shutdown: an open stream would otherwise hold the server's
    /// graceful drain until its grace period runs out).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// Completes once [`StatusHub::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        // The sender lives in `self`: waiting cannot fail for want of one.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The metrics in Prometheus text format (OpenMetrics), labelled with `hall`.
    pub fn render_metrics(&self, hall: &str) -> String {
        let mut reg = Registry::with_labels(
            [(Cow::Borrowed("hall"), Cow::Owned(hall.to_string()))].into_iter(),
        );
        self.inner.metrics.register(&mut reg);
        if let Some(o) = self.inner.outbox.get() {
            o.register(&mut reg);
        }
        register_snapshot(&mut reg, &self.snapshot());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

type Labels = Vec<(&'static str, String)>;

/// The counters and histograms that live across scrapes.
struct Metrics {
    records: Family<Labels, Counter>,
    steps_finished: Family<Labels, Counter>,
    device_changes: Family<Labels, Counter>,
    device_steps: Family<Labels, Counter>,
    operator_steps: Family<Labels, Counter>,
    alerts_raised: Family<Labels, Counter>,
    append: Histogram,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            records: Family::default(),
            steps_finished: Family::default(),
            device_changes: Family::default(),
            device_steps: Family::default(),
            operator_steps: Family::default(),
            alerts_raised: Family::default(),
            // 100 µs to ~3 s: an fsync on a quiet disk to a stalled one.
            append: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }

    fn count(&self, event: &StatusEvent) {
        match event {
            StatusEvent::Record(r) => {
                self.records
                    .get_or_create(&vec![("record", r.record.clone())])
                    .inc();
                if let Some(AlertTag {
                    kind: Some(kind), ..
                }) = &r.alert
                {
                    self.alerts_raised
                        .get_or_create(&vec![("kind", kind.clone())])
                        .inc();
                }
                if r.change.as_deref() == Some("finish")
                    && let Some(stage) = r.stage
                {
                    self.steps_finished
                        .get_or_create(&vec![("stage", stage.name().to_string())])
                        .inc();
                }
            }
            StatusEvent::DeviceState(d) => {
                self.device_changes
                    .get_or_create(&vec![
                        ("station", d.station.to_string()),
                        ("readiness", readiness_name(d.readiness).to_string()),
                    ])
                    .inc();
            }
            StatusEvent::Step(_) | StatusEvent::Storage(_) | StatusEvent::Verify(_) => {}
        }
    }

    fn register(&self, reg: &mut Registry) {
        reg.register(
            "hallctl_ledger_records",
            "Ledger records the line persisted, by record name",
            self.records.clone(),
        );
        reg.register(
            "hallctl_steps_finished",
            "Steps finished, by stage",
            self.steps_finished.clone(),
        );
        reg.register(
            "hallctl_device_state_changes",
            "Device readiness changes, by station and new readiness",
            self.device_changes.clone(),
        );
        reg.register(
            "hallctl_device_steps",
            "Steps ended per device (the station where it has none), by stage and outcome (completed, spoiled)",
            self.device_steps.clone(),
        );
        reg.register(
            "hallctl_operator_steps",
            "Steps ended per operator, by outcome (completed, spoiled)",
            self.operator_steps.clone(),
        );
        reg.register(
            "hallctl_alerts_raised",
            "Alerts raised, by kind",
            self.alerts_raised.clone(),
        );
        reg.register_with_unit(
            "hallctl_ledger_append",
            "Latency of the line's ledger appends (record and job state, fsynced)",
            Unit::Seconds,
            self.append.clone(),
        );
    }
}

impl OutboxMetrics {
    fn register(&self, reg: &mut Registry) {
        reg.register(
            "hallctl_mqtt_outbox_backlog",
            "Ledger records not yet acknowledged by the MQTT broker (durable head - cursor)",
            self.backlog.clone(),
        );
        reg.register(
            "hallctl_mqtt_outbox_cursor",
            "Last ledger record the MQTT broker acknowledged, in order",
            self.cursor.clone(),
        );
        reg.register(
            "hallctl_mqtt_connected",
            "1 while the hall is connected to its MQTT broker",
            self.connected.clone(),
        );
        reg.register(
            "hallctl_mqtt_acknowledged",
            "MQTT messages the broker acknowledged (re-sends after a reconnect count again)",
            self.acknowledged.clone(),
        );
        reg.register(
            "hallctl_mqtt_disconnects",
            "MQTT connections lost or refused",
            self.disconnects.clone(),
        );
    }
}

fn readiness_name(r: DeviceReadiness) -> &'static str {
    match r {
        DeviceReadiness::Ready => "ready",
        DeviceReadiness::Paused => "paused",
        DeviceReadiness::Faulted => "faulted",
        DeviceReadiness::Offline => "offline",
    }
}

const READINESS: [DeviceReadiness; 4] = [
    DeviceReadiness::Ready,
    DeviceReadiness::Paused,
    DeviceReadiness::Faulted,
    DeviceReadiness::Offline,
];

fn gauge(v: u32) -> Gauge {
    let g = Gauge::default();
    g.set(i64::from(v));
    g
}

/// Gauges read from the snapshot at scrape time.
fn register_snapshot(reg: &mut Registry, snap: &LineSnapshot) {
    let queue: Family<Labels, Gauge> = Family::default();
    for (stage, n) in Stage::ALL.iter().zip(snap.queued) {
        queue
            .get_or_create(&vec![("stage", stage.name().to_string())])
            .set(i64::from(n));
    }
    reg.register("hallctl_queue_depth", "Jobs waiting, by stage", queue);
    reg.register(
        "hallctl_open_jobs",
        "Unfinished jobs",
        gauge(snap.open_jobs),
    );
    reg.register(
        "hallctl_needs_inspection",
        "Jobs waiting for a supervisor's inspection",
        gauge(snap.needs_inspection),
    );
    reg.register("hallctl_held_jobs", "Jobs held", gauge(snap.held));
    let devices: Family<Labels, Gauge> = Family::default();
    for s in &snap.stations {
        let device = s
            .device
            .as_ref()
            .map_or_else(|| s.id.to_string(), ToString::to_string);
        for r in READINESS {
            devices
                .get_or_create(&vec![
                    ("station", s.id.to_string()),
                    ("device", device.clone()),
                    ("state", readiness_name(r).to_string()),
                ])
                .set(i64::from(s.readiness == r));
        }
    }
    reg.register(
        "hallctl_device_state",
        "Device readiness: 1 for the current state, 0 for the others",
        devices,
    );
    register_monitoring(reg, snap);
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The monitoring gauges: queues by class and age, throughput, on time, open alerts, OEE.
fn register_monitoring(reg: &mut Registry, snap: &LineSnapshot) {
    let queued: Family<Labels, Gauge> = Family::default();
    for q in &snap.queues {
        for (age, n) in crate::line::monitor::AGE_BUCKETS.iter().zip(q.by_age) {
            queued
                .get_or_create(&vec![
                    ("class", q.class.name().to_string()),
                    ("age", (*age).to_string()),
                ])
                .set(i64::from(n));
        }
    }
    reg.register(
        "hallctl_queued_jobs",
        "Jobs waiting for a step, by priority class and age since received",
        queued,
    );
    let rate = FloatGauge::default();
    rate.set(snap.throughput.rate_per_hour);
    reg.register(
        "hallctl_throughput_per_hour",
        "Jobs dispatched in the last hour (the rate due times are predicted from)",
        rate,
    );
    let on_time: Family<Labels, FloatGauge> = Family::default();
    for o in &snap.on_time {
        if let Some(p) = o.percent {
            on_time
                .get_or_create(&vec![("class", o.class.name().to_string())])
                .set(p / 100.0);
        }
    }
    reg.register(
        "hallctl_on_time_ratio",
        "Share of dispatched jobs that made their due time, by class (since the controller started)",
        on_time,
    );
    let open: Family<Labels, Gauge> = Family::default();
    for k in crate::line::AlertKind::ALL {
        let n = snap.alerts.iter().filter(|a| a.kind == k).count();
        open.get_or_create(&vec![("kind", k.name().to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    reg.register("hallctl_alerts_open", "Open alerts, by kind", open);
    let Some(perf) = &snap.performance else {
        return;
    };
    let oee: Family<Labels, FloatGauge> = Family::default();
    let downtime: Family<Labels, FloatGauge> = Family::default();
    for d in &perf.devices {
        let labels = |extra: Option<(&'static str, &str)>| {
            let mut l = vec![
                ("device", d.device.to_string()),
                ("station", d.station.to_string()),
            ];
            l.extend(extra.map(|(k, v)| (k, v.to_string())));
            l
        };
        oee.get_or_create(&labels(None)).set(d.oee);
        for (reason, secs) in [
            ("fault", d.downtime.fault),
            ("offline", d.downtime.offline),
            ("paused", d.downtime.paused),
            ("no_work", d.downtime.no_work),
        ] {
            downtime
                .get_or_create(&labels(Some(("reason", reason))))
                .set(secs);
        }
    }
    reg.register(
        "hallctl_device_oee",
        "OEE (availability x performance x quality) of each device in the current shift",
        oee,
    );
    reg.register_with_unit(
        "hallctl_device_downtime",
        "Downtime of each device in the current shift, by reason",
        Unit::Seconds,
        downtime,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_change_event_names_the_change_and_stage_and_counts_a_finished_step() {
        let hub = StatusHub::new(4);
        let mut rx = hub.subscribe();
        let ev = LedgerEvent::Action {
            action: ControlAction::JobChanged {
                job: JobId(7),
                event: JobEvent::Finish {
                    stage: Stage::Laminate,
                    serial: None,
                },
            },
        };
        hub.emit(StatusEvent::record(
            12,
            Utc::now(),
            &OperatorId::new("OP-1"),
            &ev,
        ));
        let got = rx.try_recv().expect("one event");
        assert_eq!(got.id, 1);
        let StatusEvent::Record(r) = got.event else {
            panic!("a record event")
        };
        assert_eq!(
            (r.seq, r.record.as_str(), r.change.as_deref()),
            (12, "job_changed", Some("finish"))
        );
        assert_eq!((r.job, r.stage), (Some(JobId(7)), Some(Stage::Laminate)));
        let text = hub.render_metrics("H1");
        assert!(text.contains(r#"hallctl_steps_finished_total{hall="H1",stage="laminate"} 1"#));
        assert!(text.contains(r#"hallctl_ledger_records_total{hall="H1",record="job_changed"} 1"#));
    }

    #[test]
    fn emitting_without_subscribers_neither_blocks_nor_fails() {
        let hub = StatusHub::new(1);
        for i in 0..10_000 {
            hub.emit(StatusEvent::DeviceState(DeviceStateEvent {
                station: StationId::new("PRINT-01"),
                device: None,
                readiness: READINESS[i % 4],
                at: Utc::now(),
            }));
        }
    }
}
