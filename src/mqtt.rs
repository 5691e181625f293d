//! MQTT for central monitoring: the hall publishes its state, its devices, every ledger record and
//! its signed checkpoints under `hallctl/v1/<hall>/...` ([`Topics`]; the tree and the payloads
//! are in `docs/mqtt.md`), and `hallctl central` ([`crate::central`]) reads them back.
//!
//! # The outbox is the journal
//! Nothing is copied into a second queue. The ledger's journal is already durable and ordered,
//! so the outbox is a cursor into it: the last sequence number the broker acknowledged (PUBACK)
//! with every record before it, saved in the store ([`crate::ledger::Ledger::save_cursor`]) at
//! most every [`CURSOR_SAVE_EVERY`]. The publisher sends every *durable* record after the cursor,
//! in sequence order, on one connection (so the broker sees them in order), at most
//! [`EVENT_WINDOW`] unacknowledged at a time. While the broker is unreachable the records simply
//! stay in the journal; on reconnect the publisher starts again after the cursor. Records that
//! were sent but not acknowledged when a connection dropped (or when the controller crashed
//! after the last cursor save) are sent again: a consumer drops a message whose `msg_id` (the
//! record's sequence number) it has already seen. Because every (re)connection resends from the
//! cursor in order, "drop what is not above the highest `msg_id` seen" loses nothing.
//!
//! # Connections
//! One task owns rumqttc's event loop and does nothing but poll it (a poll cancelled half-way
//! could lose a packet); the publisher task reads its events. When a connection drops, the
//! event-loop task waits until the publisher has seen the loss, then discards every request
//! still queued for the dead connection before it reconnects: otherwise records queued after
//! the loss would go out after reconnecting ahead of the resend from the cursor, out of order.
//!
//! # Status
//! The broker holds a retained last will `status` = `offline`, published when the hall
//! vanishes (killed, network gone: after 1.5 × keep-alive). On connect the hall publishes
//! `online` (retained); a graceful stop drains the outbox for a moment, publishes `offline`
//! itself and disconnects cleanly.
//!
//! # Privacy
//! Payloads are built from ledger records, control actions and the line snapshot: ids, names of
//! stations and devices, counts. The journal holds no passport-holder data, and custody records
//! are published as their summary (no document numbers).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use hallctl_jobs::job::{DeviceId, StationId};
use hallctl_jobs::scheduler::DeviceReadiness;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{BrokerUrl, MqttConfig, StationKind};
use crate::ledger::{Checkpoint, LedgerEvent, Record};
use crate::ledger::{Ledger, LedgerError};
use crate::line::LineSnapshot;
use crate::status::{OutboxMetrics, RecordEvent, StatusHub};

/// The root of every hall's topics.
pub const TOPIC_ROOT: &str = "hallctl/v1";
/// The name of the outbox's cursor in the store.
pub const CURSOR: &str = "mqtt";
/// Records sent and not yet acknowledged, at most.
pub const EVENT_WINDOW: usize = 64;
/// The cursor is saved at most this often (and at a graceful stop).
pub const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(250);
/// `state` is published at most this often (the latest snapshot wins).
pub const STATE_EVERY: Duration = Duration::from_millis(500);
/// `state` is published at least this often, changed or not: its `at` tells a consumer the hall
/// is alive and current.
pub const STATE_HEARTBEAT: Duration = Duration::from_secs(30);
/// A control action larger than this (a batch of thousands of job ids) is published without
/// its `detail`.
pub const DETAIL_MAX_BYTES: usize = 4096;
/// Largest MQTT packet sent or accepted.
pub const MAX_PACKET_BYTES: usize = 1 << 20;
/// rumqttc's packet ids in flight (above [`EVENT_WINDOW`], leaving room for state and devices).
const INFLIGHT: u16 = 128;
/// Requests queued for the event loop, at most.
const REQUEST_CAPACITY: usize = 512;
/// Reconnect delays: doubling from the first to the last, with ±25 % jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The topics of one hall: `hallctl/v1/<hall>/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// The topics of hall `hall` (an id as the configuration accepts it: `a-z 0-9 -`).
    pub fn new(hall: &str) -> Topics {
        Topics {
            base: format!("{TOPIC_ROOT}/{hall}"),
        }
    }

    /// Retained `online` / `offline` (the last will).
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// Retained line snapshot.
    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// Retained state of one station's device.
    pub fn device(&self, station: &str) -> String {
        format!("{}/devices/{station}", self.base)
    }

    /// Every ledger record, in order.
    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    /// Alert records (`alert_*`), also on `events`.
    pub fn alerts(&self) -> String {
        format!("{}/alerts", self.base)
    }

    /// Signed ledger checkpoints (the latest retained).
    pub fn checkpoints(&self) -> String {
        format!("{}/checkpoints", self.base)
    }
}

/// The outbox's progress, saved in the store under [`CURSOR`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every record up to this sequence number was acknowledged by the broker.
    pub events: u64,
    /// The last checkpoint (by its sequence number) the broker acknowledged.
    pub checkpoints: u64,
}

impl Cursor {
    /// The saved cursor (zero when none was saved).
    ///
    /// # Errors
    /// Storage errors, or a cursor that does not decode.
    pub fn load(ledger: &Ledger) -> Result<Cursor, LedgerError> {
        match ledger.cursor(CURSOR)? {
            None => Ok(Cursor::default()),
            Some(v) => serde_json::from_slice(&v)
                .map_err(|e| LedgerError::Corrupt(format!("the MQTT cursor: {e}"))),
        }
    }

    /// Saves it durably.
    ///
    /// # Errors
    /// Storage errors.
    pub fn save(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let v = serde_json::to_vec(self).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        ledger.save_cursor(CURSOR, &v)
    }
}

/// One ledger record on `events` (and `alerts`): the record's summary (as on the SSE stream),
/// with its message id and, for a control action, the action itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The message id: the record's sequence number. A consumer drops a message whose id it
    /// has seen (a resend after a reconnect or a crash).
    pub msg_id: u64,
    /// The hall.
    pub hall: String,
    /// The record (seq, name, job, station, actor, time...).
    #[serde(flatten)]
    pub record: RecordEvent,
    /// A control action's own fields (`kind` and the rest: an alert's id and what it is
    /// about...), when it serializes to at most [`DETAIL_MAX_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<serde_json::Value>,
}

impl EventMessage {
    /// The message for one record of hall `hall`.
    pub fn of(hall: &str, record: &Record) -> EventMessage {
        let summary = RecordEvent::of(record.seq, record.at, &record.actor, &record.event);
        let detail = match &record.event {
            LedgerEvent::Action { action } => serde_json::to_value(action)
                .ok()
                .filter(|v| v.to_string().len() <= DETAIL_MAX_BYTES),
            _ => None,
        };
        EventMessage {
            msg_id: record.seq,
            hall: hall.to_string(),
            record: summary,
            detail,
        }
    }

    /// Whether it also goes to `alerts`: every record named `alert_*` (raised, acknowledged...).
    pub fn is_alert(&self) -> bool {
        self.record.record.starts_with("alert")
    }
}

/// The outbox's progress as `state` shows it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct OutboxState {
    /// The last record the broker acknowledged, in order.
    pub cursor: u64,
    /// Durable records not yet acknowledged.
    pub backlog: u64,
}

/// The retained `state`: the line snapshot, with the hall and the outbox.
#[derive(Debug, Serialize)]
struct StateMessage<'a> {
    hall: &'a str,
    name: &'a str,
    at: DateTime<Utc>,
    /// The last durable ledger record.
    ledger_head: u64,
    outbox: OutboxState,
    #[serde(flatten)]
    snapshot: &'a LineSnapshot,
}

/// The retained `devices/<station>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMessage {
    /// The hall.
    pub hall: String,
    /// The station.
    pub station: StationId,
    /// What the station does.
    pub kind: StationKind,
    /// Its device (print and laminate stations).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<DeviceId>,
    /// `ready`, `paused`, `faulted` or `offline`.
    pub readiness: DeviceReadiness,
    /// When the hall published it.
    pub at: DateTime<Utc>,
}

/// The retained `checkpoints`: a signed checkpoint, checkable with the key it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMessage {
    /// The hall.
    pub hall: String,
    /// The checkpoint.
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
}

/// How to reach the broker: the configuration with its files read.
#[derive(Clone)]
pub struct Broker {
    /// The broker.
    pub url: BrokerUrl,
    /// The client id.
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// The CA certificate(s), PEM, for `mqtts://`.
    pub ca: Option<Vec<u8>>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Broker")
            .field("url", &self.url.to_string())
            .field("client_id", &self.client_id)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Reads the files `config` names (password, CA).
    ///
    /// # Errors
    /// A file cannot be read, or holds no password / no PEM certificate; the message names it.
    pub fn from_config(config: &MqttConfig) -> anyhow::Result<Broker> {
        let password = config
            .password_file
            .as_deref()
            .map(read_password)
            .transpose()?;
        let credentials = config
            .username
            .clone()
            .map(|u| (u, password.unwrap_or_default()));
        let ca = config.ca_file.as_deref().map(read_ca).transpose()?;
        Ok(Broker {
            url: config.url.clone(),
            client_id: config.client_id.clone(),
            credentials,
            ca,
            keep_alive: config.keep_alive(),
        })
    }

    /// rumqttc's options for this broker, with a last will when given.
    pub fn options(&self, last_will: Option<LastWill>) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &self.url.host, self.url.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_session(true)
            .set_inflight(INFLIGHT)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u, p);
        }
        if let Some(w) = last_will {
            o.set_last_will(w);
        }
        if self.url.tls {
            // The one crypto provider compiled in; installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: self.ca.clone().unwrap_or_default(),
                alpn: None,
                client_auth: None,
            }));
        }
        o
    }
}

/// The first line of the password file.
fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read mqtt.password_file {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        anyhow::bail!(
            "mqtt.password_file {}: the first line (the password) is empty",
            path.display()
        );
    }
    Ok(line)
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read mqtt.ca_file {}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!(
            "mqtt.ca_file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(pem)
}

/// What the event-loop task reports.
enum Net {
    Event(Event),
    /// The connection dropped or could not be made. The task waits for the ack before it
    /// discards what is still queued and tries again.
    Lost(String, oneshot::Sender<()>),
}

/// Polls rumqttc's event loop, uncancelled, and forwards everything to the publisher.
async fn drive(mut eventloop: EventLoop, tx: mpsc::Sender<Net>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match eventloop.poll().await {
            Ok(ev) => {
                if matches!(ev, Event::Incoming(Incoming::ConnAck(_))) {
                    backoff = BACKOFF_FIRST;
                }
                if tx.send(Net::Event(ev)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let (ack_tx, ack_rx) = oneshot::channel();
                if tx.send(Net::Lost(describe(&e), ack_tx)).await.is_err() {
                    return;
                }
                if ack_rx.await.is_err() {
                    return;
                }
                // Requests the publisher queued before it saw the loss belong to the dead
                // connection: the resend from the cursor replaces them.
                eventloop.clean();
                eventloop.pending.clear();
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn jitter(d: Duration) -> Duration {
    use rand::Rng as _;
    d.mul_f64(rand::rng().random_range(0.75..1.25))
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("the broker refused: {code:?}"),
        other => other.to_string(),
    }
}

/// A message sent and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// One part of a record (a record may go to `events` and `alerts`).
    Event(u64),
    Checkpoint(u64),
    Other,
    Offline,
}

/// The running publisher.
pub struct Publisher {
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// Who the publisher speaks for.
#[derive(Debug, Clone)]
pub struct HallRef {
    /// The hall's id (in the topics).
    pub id: String,
    /// Its name (in `state`).
    pub name: String,
}

impl Publisher {
    /// Starts publishing `ledger`'s records and `status`'s snapshots for `hall` to `broker`.
    /// Returns at once: the broker may well be unreachable, and the records wait in the journal.
    /// Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The saved cursor cannot be read.
    pub fn start(
        broker: &Broker,
        hall: HallRef,
        ledger: Arc<Ledger>,
        status: StatusHub,
    ) -> Result<Publisher, LedgerError> {
        let mut cursor = Cursor::load(&ledger)?;
        let head = ledger.durability().0;
        if cursor.events > head {
            // Only a store restored from an older backup gets here: resend what it has.
            tracing::warn!(
                cursor = cursor.events,
                head,
                "the MQTT cursor is past the journal's head"
            );
            cursor.events = head;
        }
        let topics = Topics::new(&hall.id);
        let will = LastWill::new(topics.status(), "offline", QoS::AtLeastOnce, true);
        let (client, eventloop) = AsyncClient::new(broker.options(Some(will)), REQUEST_CAPACITY);
        let (net_tx, net_rx) = mpsc::channel(1024);
        let driver = tokio::spawn(drive(eventloop, net_tx));
        let (stop_tx, stop_rx) = oneshot::channel();
        tracing::info!(broker = %broker.url, client_id = %broker.client_id, cursor = cursor.events,
            "publishing to MQTT");
        let metrics = status.outbox_metrics();
        let (cursor_tx, cursor_rx) = watch::channel(cursor);
        let saver = tokio::spawn(save_cursor(ledger.clone(), cursor_rx));
        let durable = ledger.watch_durable();
        let snapshots = status.watch();
        let p = Pump {
            hall,
            topics,
            client,
            ledger,
            metrics,
            connected: false,
            ever_connected: false,
            requested: VecDeque::new(),
            inflight: HashMap::new(),
            collided: None,
            cursor,
            cursor_tx,
            next_event: cursor.events + 1,
            parts: BTreeMap::new(),
            checkpoint_in_flight: false,
            devices_sent: HashMap::new(),
            devices_dirty: true,
            checkpoints_dirty: true,
            state_dirty: true,
            last_state: None,
            offline_acked: false,
            stalled: None,
        };
        let task = tokio::spawn(async move {
            p.run(net_rx, durable, snapshots, stop_rx).await;
            driver.abort();
            let _ = saver.await;
        });
        Ok(Publisher {
            stop: Some(stop_tx),
            task,
        })
    }

    /// Stops: keeps draining the outbox for up to `drain` (when connected), publishes `offline`
    /// and disconnects cleanly, then saves the cursor. Returns when all that is done.
    pub async fn stop(mut self, drain: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(drain);
        }
        let _ = (&mut self.task).await;
    }
}

/// Saves the cursor when it moved, at most every [`CURSOR_SAVE_EVERY`], and once more when the
/// publisher ends.
async fn save_cursor(ledger: Arc<Ledger>, mut rx: watch::Receiver<Cursor>) {
    let mut saved = *rx.borrow();
    loop {
        let more = rx.changed().await.is_ok();
        let c = *rx.borrow_and_update();
        if c != saved {
            let l = ledger.clone();
            match tokio::task::spawn_blocking(move || c.save(&l)).await {
                Ok(Ok(())) => saved = c,
                Ok(Err(e)) => tracing::error!("cannot save the MQTT cursor: {e}"),
                Err(e) => tracing::error!("cannot save the MQTT cursor: {e}"),
            }
        }
        if !more {
            return;
        }
        tokio::time::sleep(CURSOR_SAVE_EVERY).await;
    }
}

/// The publisher's state (one task).
struct Pump {
    hall: HallRef,
    topics: Topics,
    client: AsyncClient,
    ledger: Arc<Ledger>,
    metrics: OutboxMetrics,
    connected: bool,
    ever_connected: bool,
    /// Handed to rumqttc, packet id not yet known (rumqttc numbers them in request order).
    requested: VecDeque<Sent>,
    /// Sent, by packet id, waiting for PUBACK.
    inflight: HashMap<u16, Sent>,
    /// Held back by rumqttc for a packet-id collision; sent when that id is acknowledged.
    collided: Option<Sent>,
    cursor: Cursor,
    cursor_tx: watch::Sender<Cursor>,
    /// The next record to send.
    next_event: u64,
    /// Records sent and not fully acknowledged → parts still unacknowledged.
    parts: BTreeMap<u64, u8>,
    checkpoint_in_flight: bool,
    /// What each station's retained device message says now.
    devices_sent: HashMap<StationId, DeviceReadiness>,
    /// The snapshot changed since the devices were compared.
    devices_dirty: bool,
    /// A checkpoint may be waiting (the journal grew, or one was acknowledged).
    checkpoints_dirty: bool,
    state_dirty: bool,
    last_state: Option<Instant>,
    offline_acked: bool,
    /// A record that could not be read (storage trouble): retried on the next tick.
    stalled: Option<String>,
}

impl Pump {
    async fn run(
        mut self,
        mut net: mpsc::Receiver<Net>,
        mut durable: watch::Receiver<u64>,
        mut snapshots: watch::Receiver<LineSnapshot>,
        mut stop: oneshot::Receiver<Duration>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut drain_until: Option<Instant> = None;
        self.update_backlog();
        let (mut durable_open, mut snapshots_open) = (true, true);
        loop {
            if let Some(deadline) = drain_until
                && (self.drained() || !self.connected || Instant::now() >= deadline)
            {
                break;
            }
            let state_at = self
                .last_state
                .map_or_else(Instant::now, |t| t + STATE_EVERY);
            tokio::select! {
                m = net.recv() => match m {
                    Some(Net::Event(ev)) => self.on_event(ev),
                    Some(Net::Lost(why, ack)) => {
                        self.on_lost(&why);
                        let _ = ack.send(());
                    }
                    None => break,
                },
                r = durable.changed(), if durable_open => match r {
                    Ok(()) => {
                        self.update_backlog();
                        self.checkpoints_dirty = true;
                    }
                    Err(_) => durable_open = false,
                },
                r = snapshots.changed(), if snapshots_open => match r {
                    Ok(()) => {
                        self.state_dirty = true;
                        self.devices_dirty = true;
                    }
                    // The line is gone (shutdown): its last snapshot stays.
                    Err(_) => snapshots_open = false,
                },
                () = tokio::time::sleep_until(state_at),
                    if self.state_dirty && self.connected => {}
                () = tokio::time::sleep_until(drain_until.unwrap_or_else(Instant::now)),
                    if drain_until.is_some() => {}
                _ = tick.tick() => {
                    self.stalled = None;
                    self.checkpoints_dirty = true;
                    if self.last_state.is_some_and(|t| t.elapsed() >= STATE_HEARTBEAT) {
                        self.state_dirty = true;
                    }
                }
                d = &mut stop, if drain_until.is_none() => {
                    let d = d.unwrap_or_default();
                    drain_until = Some(Instant::now() + d);
                }
            }
            if self.connected {
                self.pump(&snapshots);
            }
        }
        self.go_offline(&mut net).await;
    }

    /// Every durable record is acknowledged.
    fn drained(&self) -> bool {
        self.parts.is_empty() && self.cursor.events >= self.ledger_durable()
    }

    fn ledger_durable(&self) -> u64 {
        self.ledger.durability().0
    }

    fn outstanding(&self) -> usize {
        self.requested.len() + self.inflight.len() + usize::from(self.collided.is_some())
    }

    fn send(&mut self, topic: String, retain: bool, payload: Vec<u8>, what: Sent) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.requested.push_back(what);
                true
            }
            // The request queue is full: try again on the next turn.
            Err(_) => false,
        }
    }

    /// Sends whatever is due: records after the cursor, the next checkpoint, device changes,
    /// the state.
    fn pump(&mut self, snapshots: &watch::Receiver<LineSnapshot>) {
        let head = self.ledger_durable();
        while self.stalled.is_none() && self.next_event <= head && self.outstanding() < EVENT_WINDOW
        {
            let seq = self.next_event;
            let record = match self.ledger.record(seq) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.stall(format!("record {seq} is durable but not in the journal"));
                    break;
                }
                Err(e) => {
                    self.stall(format!("record {seq}: {e}"));
                    break;
                }
            };
            let msg = EventMessage::of(&self.hall.id, &record);
            let body = serde_json::to_vec(&msg).unwrap_or_default();
            let alert = msg.is_alert();
            if !self.send(self.topics.events(), false, body.clone(), Sent::Event(seq)) {
                break;
            }
            let mut parts = 1;
            if alert {
                if self.send(self.topics.alerts(), false, body, Sent::Event(seq)) {
                    parts += 1;
                } else {
                    tracing::error!(
                        seq,
                        "the MQTT request queue is full: alert not copied to alerts"
                    );
                }
            }
            self.parts.insert(seq, parts);
            self.next_event += 1;
        }
        if !self.checkpoint_in_flight && self.checkpoints_dirty {
            self.checkpoints_dirty = false;
            match self.ledger.checkpoint_after(self.cursor.checkpoints) {
                Ok(Some(cp)) => {
                    let seq = cp.seq;
                    let msg = CheckpointMessage {
                        hall: self.hall.id.clone(),
                        checkpoint: cp,
                    };
                    let body = serde_json::to_vec(&msg).unwrap_or_default();
                    if self.send(self.topics.checkpoints(), true, body, Sent::Checkpoint(seq)) {
                        self.checkpoint_in_flight = true;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot read the next checkpoint to publish: {e}"),
            }
        }
        let due = self.last_state.is_none_or(|t| t.elapsed() >= STATE_EVERY);
        if !(self.devices_dirty || (self.state_dirty && due)) {
            return;
        }
        let snap = snapshots.borrow().clone();
        self.devices_dirty = false;
        for st in &snap.stations {
            if self.devices_sent.get(&st.id) == Some(&st.readiness) {
                continue;
            }
            let msg = DeviceMessage {
                hall: self.hall.id.clone(),
                station: st.id.clone(),
                kind: st.kind,
                device: st.device.clone(),
                readiness: st.readiness,
                at: Utc::now(),
            };
            let body = serde_json::to_vec(&msg).unwrap_or_default();
            if self.send(self.topics.device(st.id.as_str()), true, body, Sent::Other) {
                self.devices_sent.insert(st.id.clone(), st.readiness);
            } else {
                self.devices_dirty = true;
            }
        }
        if self.state_dirty && due {
            let msg = StateMessage {
                hall: &self.hall.id,
                name: &self.hall.name,
                at: Utc::now(),
                ledger_head: head,
                outbox: OutboxState {
                    cursor: self.cursor.events,
                    backlog: head.saturating_sub(self.cursor.events),
                },
                snapshot: &snap,
            };
            let body = serde_json::to_vec(&msg).unwrap_or_default();
            if self.send(self.topics.state(), true, body, Sent::Other) {
                self.state_dirty = false;
                self.last_state = Some(Instant::now());
            }
        }
    }

    fn stall(&mut self, why: String) {
        tracing::error!("the MQTT outbox waits: {why}");
        self.stalled = Some(why);
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) => {
                self.reset();
                self.connected = true;
                self.metrics.connected.set(1);
                let backlog = self.ledger_durable().saturating_sub(self.cursor.events);
                if self.ever_connected {
                    tracing::info!(backlog, "MQTT connection back; draining the outbox");
                } else {
                    tracing::info!(backlog, "connected to the MQTT broker");
                }
                self.ever_connected = true;
                self.devices_sent.clear();
                self.devices_dirty = true;
                self.state_dirty = true;
                let topic = self.topics.status();
                self.send(topic, true, b"online".to_vec(), Sent::Other);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                let sent = self.collided.take().or_else(|| self.requested.pop_front());
                if let Some(s) = sent {
                    self.inflight.insert(pkid, s);
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(_)) => {
                self.collided = self.requested.pop_front();
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                let Some(sent) = self.inflight.remove(&ack.pkid) else {
                    return;
                };
                self.metrics.acknowledged.inc();
                match sent {
                    Sent::Event(seq) => {
                        if let Some(n) = self.parts.get_mut(&seq) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                self.parts.remove(&seq);
                            }
                        }
                        self.advance();
                    }
                    Sent::Checkpoint(seq) => {
                        self.checkpoint_in_flight = false;
                        self.checkpoints_dirty = true;
                        self.cursor.checkpoints = self.cursor.checkpoints.max(seq);
                        self.cursor_tx.send_replace(self.cursor);
                    }
                    Sent::Offline => self.offline_acked = true,
                    Sent::Other => {}
                }
            }
            _ => {}
        }
    }

    /// Moves the cursor past every record acknowledged in order.
    fn advance(&mut self) {
        let acked = match self.parts.first_key_value() {
            Some((&first, _)) => first - 1,
            None => self.next_event - 1,
        };
        if acked > self.cursor.events {
            self.cursor.events = acked;
            self.cursor_tx.send_replace(self.cursor);
            self.update_backlog();
            // The state shows the outbox's progress.
            self.state_dirty = true;
        }
    }

    fn update_backlog(&self) {
        let head = self.ledger_durable();
        let backlog = head.saturating_sub(self.cursor.events);
        self.metrics
            .backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        self.metrics
            .cursor
            .set(i64::try_from(self.cursor.events).unwrap_or(i64::MAX));
    }

    fn on_lost(&mut self, why: &str) {
        if self.connected {
            tracing::warn!(
                "MQTT connection lost ({why}); records wait in the ledger and are sent on \
                 reconnect"
            );
            self.metrics.connected.set(0);
        } else {
            tracing::debug!("MQTT broker unreachable: {why}");
        }
        self.metrics.disconnects.inc();
        self.connected = false;
        self.reset();
    }

    /// Forgets everything sent on the last connection: the next one starts after the cursor.
    fn reset(&mut self) {
        self.requested.clear();
        self.inflight.clear();
        self.collided = None;
        self.parts.clear();
        self.next_event = self.cursor.events + 1;
        self.checkpoint_in_flight = false;
        self.checkpoints_dirty = true;
        self.update_backlog();
    }

    /// Publishes `offline` (retained) and disconnects, when connected; bounded in time.
    async fn go_offline(&mut self, net: &mut mpsc::Receiver<Net>) {
        if self.connected {
            let topic = self.topics.status();
            if self.send(topic, true, b"offline".to_vec(), Sent::Offline) {
                let deadline = Instant::now() + Duration::from_secs(2);
                while !self.offline_acked {
                    match tokio::time::timeout_at(deadline, net.recv()).await {
                        Ok(Some(Net::Event(ev))) => self.on_event(ev),
                        Ok(Some(Net::Lost(_, ack))) => {
                            let _ = ack.send(());
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            let _ = self.client.try_disconnect();
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Ok(Some(Net::Event(ev))) = tokio::time::timeout_at(deadline, net.recv()).await
            {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
            self.metrics.connected.set(0);
        }
        tracing::info!(cursor = self.cursor.events, "MQTT publisher stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ControlAction, Serial, SessionId};
    use hallctl_jobs::job::{JobId, OperatorId};

    fn record(seq: u64, event: LedgerEvent) -> Record {
        Record {
            seq,
            at: Utc::now(),
            actor: OperatorId::new("A1"),
            event,
        }
    }

    #[test]
    fn topics_are_under_the_hall() {
        let t = Topics::new("isb-central");
        assert_eq!(t.status(), "hallctl/v1/isb-central/status");
        assert_eq!(t.state(), "hallctl/v1/isb-central/state");
        assert_eq!(t.device("LAM-03"), "hallctl/v1/isb-central/devices/LAM-03");
        assert_eq!(t.events(), "hallctl/v1/isb-central/events");
        assert_eq!(t.alerts(), "hallctl/v1/isb-central/alerts");
        assert_eq!(t.checkpoints(), "hallctl/v1/isb-central/checkpoints");
    }

    #[test]
    fn an_event_is_the_records_summary_with_its_id_and_an_actions_detail() {
        let ack = record(
            7,
            LedgerEvent::Action {
                action: ControlAction::AlertAcknowledged {
                    alert: "A-1".into(),
                },
            },
        );
        let m = EventMessage::of("h", &ack);
        assert_eq!((m.msg_id, m.record.seq, m.hall.as_str()), (7, 7, "h"));
        assert!(m.is_alert());
        assert_eq!(
            m.detail,
            Some(serde_json::json!({"kind": "alert_acknowledged", "alert": "A-1"}))
        );
        // A batch of many jobs: the summary counts them, the detail is left out.
        let big = record(
            8,
            LedgerEvent::Action {
                action: ControlAction::JobsSubmitted {
                    jobs: (1..=5000).map(JobId).collect(),
                },
            },
        );
        let m = EventMessage::of("h", &big);
        assert_eq!(
            (m.record.jobs, m.detail.is_none(), m.is_alert()),
            (5000, true, false)
        );
        // A custody record: its summary, never the document number.
        let printed = record(
            9,
            LedgerEvent::BookletPrinted {
                booklet: Serial::new("B1000100"),
                session: SessionId("S-1".into()),
                job: JobId(3),
                document_number: "L898902C3".into(),
                device: DeviceId::new("PR-01"),
            },
        );
        let text = serde_json::to_string(&EventMessage::of("h", &printed)).expect("json");
        assert!(!text.contains("L898902C3"), "{text}");
        let back: EventMessage = serde_json::from_str(&text).expect("parses back");
        assert_eq!((back.record.job, back.detail), (Some(JobId(3)), None));
    }

    fn config(dir: &Path) -> MqttConfig {
        MqttConfig {
            url: BrokerUrl::parse("mqtts://broker.example").expect("url"),
            client_id: "hallctl-h".into(),
            username: Some("hall-h".into()),
            password_file: Some(dir.join("pw")),
            ca_file: Some(dir.join("ca.pem")),
            keep_alive_secs: 30,
        }
    }

    #[test]
    fn credential_files_are_read_at_start_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path());
        let e = Broker::from_config(&c).expect_err("no password file");
        assert!(
            format!("{e:#}").starts_with(&format!(
                "cannot read mqtt.password_file {}",
                dir.path().join("pw").display()
            )),
            "{e:#}"
        );
        std::fs::write(dir.path().join("pw"), "\nsecond line\n").expect("write");
        let e = Broker::from_config(&c).expect_err("empty first line");
        assert!(format!("{e:#}").contains("the first line (the password) is empty"));
        std::fs::write(dir.path().join("pw"), "s3cret-Pass\n").expect("write");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").expect("write");
        let e = Broker::from_config(&c).expect_err("no PEM");
        assert!(format!("{e:#}").contains("no PEM certificate"), "{e:#}");
        std::fs::write(
            dir.path().join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let b = Broker::from_config(&c).expect("readable files");
        assert_eq!(
            b.credentials,
            Some(("hall-h".to_string(), "s3cret-Pass".to_string()))
        );
        // Never the password in logs or Debug output.
        assert!(!format!("{b:?}").contains("s3cret"), "{b:?}");
    }
}
