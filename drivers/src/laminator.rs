//! Laminators: the Modbus RTU register map (see `PROTOCOL-laminator.md`) and the bus task.
//!
//! Several laminators share one RS-485 bus. [`spawn_bus`] starts the one task that owns the bus
//! and returns one [`LaminatorHandle`] per unit. Every request carries its unit's own timeout, and
//! a unit that has missed three polls is only *probed* (with backoff) until it answers again, and
//! commands for it fail at once: a dead unit costs the bus one timeout per probe, never one per
//! queued command, so its peers keep their poll rate. (node-red-contrib-modbus issue #446: one
//! dead slave interrupts all communication on the line; #409: a timeout resets the whole queue.
//! Here each request has its own reply channel, and a timeout fails that request only.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::prelude::{Request, Response, Slave, SlaveContext};

use crate::error::DriverError;
use crate::link::{CounterSnapshot, LinkCounters};
use crate::port::{Backoff, Connector, LinkEvent, LinkState, PollConfig};

/// The register map.
pub mod reg {
    /// Input register: machine state (see [`super::LaminatorState`]).
    pub const STATE: u16 = 0;
    /// Input register: roller temperature, 0.1 °C.
    pub const TEMPERATURE: u16 = 1;
    /// Input register: transport speed, mm/s.
    pub const SPEED: u16 = 2;
    /// Input registers 3–4: patches applied since power-on (u32, high word first).
    pub const PATCH_COUNT_HI: u16 = 3;
    /// Low word of the patch counter.
    pub const PATCH_COUNT_LO: u16 = 4;
    /// Input register: fault code (see [`super::LaminatorFault`]).
    pub const FAULT: u16 = 5;
    /// Input register: incremented each time the patch reader reads a serial.
    pub const PATCH_READ_SEQ: u16 = 6;
    /// Input registers 7–14: last patch serial read, 16 ASCII bytes, 2 per register, high byte
    /// first, NUL-padded.
    pub const LAST_PATCH_SERIAL: u16 = 7;
    /// Number of registers in the serial.
    pub const LAST_PATCH_SERIAL_LEN: u16 = 8;
    /// Input registers read by one status poll (0–14).
    pub const STATUS_BLOCK_LEN: u16 = 15;

    /// Holding register: temperature set-point, 0.1 °C.
    pub const TEMP_SETPOINT: u16 = 0;
    /// Holding register: speed set-point, mm/s.
    pub const SPEED_SETPOINT: u16 = 1;

    /// Coil: write 1 to start (heat up, then run); reads 1 while started.
    pub const COIL_START: u16 = 0;
    /// Coil: write 1 to stop; self-clearing.
    pub const COIL_STOP: u16 = 1;
    /// Coil: write 1 to feed one booklet with one patch; self-clearing when the feed is done.
    pub const COIL_FEED: u16 = 2;
    /// Coil: write 1 to reset a latched fault; self-clearing.
    pub const COIL_FAULT_RESET: u16 = 3;
}

/// What a laminator is doing (input register 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaminatorState {
    /// Stopped, heater off.
    Idle,
    /// Heating to the set-point.
    Warming,
    /// At temperature, waiting for a feed.
    Ready,
    /// Laminating a booklet.
    Running,
    /// Stopped on a fault.
    Faulted,
}

impl LaminatorState {
    /// The register value.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            LaminatorState::Idle => 0,
            LaminatorState::Warming => 1,
            LaminatorState::Ready => 2,
            LaminatorState::Running => 3,
            LaminatorState::Faulted => 4,
        }
    }

    /// From the register value.
    #[must_use]
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            0 => LaminatorState::Idle,
            1 => LaminatorState::Warming,
            2 => LaminatorState::Ready,
            3 => LaminatorState::Running,
            4 => LaminatorState::Faulted,
            _ => return None,
        })
    }
}

/// Laminator fault codes (input register 5; 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaminatorFault {
    /// Booklet jammed in the rollers.
    Jam,
    /// Roller temperature above the safe limit.
    Overheat,
    /// Patch roll empty.
    PatchOut,
    /// The patch serial reader failed to read.
    ReaderError,
    /// Any other code, kept as sent.
    Other(u16),
}

impl LaminatorFault {
    /// The register value.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            LaminatorFault::Jam => 1,
            LaminatorFault::Overheat => 2,
            LaminatorFault::PatchOut => 3,
            LaminatorFault::ReaderError => 4,
            LaminatorFault::Other(c) => c,
        }
    }

    /// From the register value; `None` for 0.
    #[must_use]
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            0 => return None,
            1 => LaminatorFault::Jam,
            2 => LaminatorFault::Overheat,
            3 => LaminatorFault::PatchOut,
            4 => LaminatorFault::ReaderError,
            other => LaminatorFault::Other(other),
        })
    }
}

/// One status poll's worth of input registers, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaminatorStatus {
    /// Machine state.
    pub state: LaminatorState,
    /// Roller temperature, 0.1 °C.
    pub temperature_dc: u16,
    /// Transport speed, mm/s.
    pub speed_mm_s: u16,
    /// Patches applied since power-on.
    pub patch_count: u32,
    /// The active fault.
    pub fault: Option<LaminatorFault>,
    /// Increments per patch serial read: a new value means a new read.
    pub patch_read_seq: u16,
    /// The last patch serial the laminator's reader read ("" before the first).
    pub last_patch_serial: String,
}

impl LaminatorStatus {
    /// Decodes input registers 0–14.
    ///
    /// # Errors
    /// [`DriverError::Protocol`] for a short block or an unknown state.
    pub fn decode(regs: &[u16]) -> Result<Self, DriverError> {
        if regs.len() < usize::from(reg::STATUS_BLOCK_LEN) {
            return Err(DriverError::Protocol(format!(
                "status block of {} registers, expected {}",
                regs.len(),
                reg::STATUS_BLOCK_LEN
            )));
        }
        let state = LaminatorState::from_code(regs[0])
            .ok_or_else(|| DriverError::Protocol(format!("unknown laminator state {}", regs[0])))?;
        let serial_regs = &regs[7..15];
        let bytes: Vec<u8> = serial_regs
            .iter()
            .flat_map(|r| r.to_be_bytes())
            .take_while(|&b| b != 0)
            .collect();
        Ok(LaminatorStatus {
            state,
            temperature_dc: regs[1],
            speed_mm_s: regs[2],
            patch_count: (u32::from(regs[3]) << 16) | u32::from(regs[4]),
            fault: LaminatorFault::from_code(regs[5]),
            patch_read_seq: regs[6],
            last_patch_serial: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Encodes as input registers 0–14 (what a simulator serves).
    #[must_use]
    pub fn encode(&self) -> Vec<u16> {
        let mut r = vec![
            self.state.code(),
            self.temperature_dc,
            self.speed_mm_s,
            (self.patch_count >> 16) as u16,
            self.patch_count as u16,
            self.fault.map_or(0, LaminatorFault::code),
            self.patch_read_seq,
        ];
        r.extend(encode_serial(&self.last_patch_serial));
        r
    }
}

/// A patch serial as the 8 registers of the map (16 ASCII bytes, longer serials cut).
#[must_use]
pub fn encode_serial(s: &str) -> [u16; 8] {
    let mut bytes = [0u8; 16];
    for (d, b) in bytes.iter_mut().zip(s.bytes()) {
        *d = b;
    }
    let mut out = [0u16; 8];
    for (i, r) in out.iter_mut().enumerate() {
        *r = u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    }
    out
}

/// One laminator on the bus.
#[derive(Debug, Clone)]
pub struct UnitConfig {
    /// Name for logs and the hall UI (e.g. `LAM-4`).
    pub name: String,
    /// Modbus unit (slave) address, 1–247.
    pub unit_id: u8,
    /// This unit's own request timeout.
    pub timeout: Duration,
}

/// Settings of one bus task.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// The units on the bus.
    pub units: Vec<UnitConfig>,
    /// Polling and backoff.
    pub poll: PollConfig,
    /// Retries of reads and idempotent writes (FEED is never retried: Modbus has no sequence
    /// number, so a retried FEED whose reply was lost would feed twice).
    pub retries: u32,
}

/// What the bus task knows of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaminatorView {
    /// Link state of this unit (`Ready` only after a successful exchange).
    pub link: LinkState,
    /// The last status read.
    pub status: Option<LaminatorStatus>,
}

enum Op {
    Status,
    WriteCoil(u16),
    WriteHolding(u16, u16),
    ReadHolding,
}

enum OpResult {
    Status(LaminatorStatus),
    Holding(Vec<u16>),
    Done,
}

struct Command {
    unit: usize,
    op: Op,
    reply: oneshot::Sender<Result<OpResult, DriverError>>,
}

/// A cheap, cloneable handle to one laminator on a bus.
#[derive(Clone)]
pub struct LaminatorHandle {
    name: Arc<str>,
    unit: usize,
    tx: mpsc::Sender<Command>,
    view: watch::Receiver<LaminatorView>,
    counters: Arc<LinkCounters>,
}

impl std::fmt::Debug for LaminatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaminatorHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LaminatorHandle {
    /// The unit's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, op: Op) -> Result<OpResult, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command {
                unit: self.unit,
                op,
                reply,
            })
            .await
            .map_err(|_| DriverError::TaskStopped)?;
        rx.await.map_err(|_| DriverError::TaskStopped)?
    }

    /// Reads the status block now.
    ///
    /// # Errors
    /// [`DriverError::NotReady`] when the unit is offline; Modbus and timeout errors.
    pub async fn status(&self) -> Result<LaminatorStatus, DriverError> {
        match self.call(Op::Status).await? {
            OpResult::Status(s) => Ok(s),
            _ => Err(DriverError::Protocol("unexpected result".into())),
        }
    }

    /// Reads the holding registers (temperature and speed set-points).
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn setpoints(&self) -> Result<(u16, u16), DriverError> {
        match self.call(Op::ReadHolding).await? {
            OpResult::Holding(h) if h.len() >= 2 => Ok((h[0], h[1])),
            _ => Err(DriverError::Protocol("unexpected result".into())),
        }
    }

    /// Starts the laminator (heat up, then run).
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn start(&self) -> Result<(), DriverError> {
        self.call(Op::WriteCoil(reg::COIL_START)).await.map(|_| ())
    }

    /// Stops the laminator.
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn stop(&self) -> Result<(), DriverError> {
        self.call(Op::WriteCoil(reg::COIL_STOP)).await.map(|_| ())
    }

    /// Feeds one booklet with one patch (never retried).
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn feed(&self) -> Result<(), DriverError> {
        self.call(Op::WriteCoil(reg::COIL_FEED)).await.map(|_| ())
    }

    /// Resets a latched fault.
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn reset_fault(&self) -> Result<(), DriverError> {
        self.call(Op::WriteCoil(reg::COIL_FAULT_RESET))
            .await
            .map(|_| ())
    }

    /// Sets the temperature set-point (0.1 °C).
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn set_temperature(&self, deci_celsius: u16) -> Result<(), DriverError> {
        self.call(Op::WriteHolding(reg::TEMP_SETPOINT, deci_celsius))
            .await
            .map(|_| ())
    }

    /// Sets the speed set-point (mm/s).
    ///
    /// # Errors
    /// As [`LaminatorHandle::status`].
    pub async fn set_speed(&self, mm_s: u16) -> Result<(), DriverError> {
        self.call(Op::WriteHolding(reg::SPEED_SETPOINT, mm_s))
            .await
            .map(|_| ())
    }

    /// The latest view.
    #[must_use]
    pub fn view(&self) -> LaminatorView {
        self.view.borrow().clone()
    }

    /// A receiver that sees every change of the view.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<LaminatorView> {
        self.view.clone()
    }

    /// This unit's counters (bus reconnects are counted on every unit).
    #[must_use]
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }
}

struct Unit {
    cfg: UnitConfig,
    view: watch::Sender<LaminatorView>,
    counters: Arc<LinkCounters>,
    missed: u32,
    next_poll: Instant,
    backoff: Backoff,
}

/// Starts the task that owns the bus reached through `connector`, one handle per unit in
/// `config.units` order. The task ends when every handle is dropped.
pub fn spawn_bus<C: Connector>(
    connector: C,
    config: BusConfig,
) -> (Vec<LaminatorHandle>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(32);
    let mut handles = Vec::new();
    let mut units = Vec::new();
    for (i, cfg) in config.units.iter().enumerate() {
        let (view_tx, view) = watch::channel(LaminatorView {
            link: LinkState::Opening,
            status: None,
        });
        let counters = LinkCounters::shared();
        handles.push(LaminatorHandle {
            name: cfg.name.clone().into(),
            unit: i,
            tx: tx.clone(),
            view,
            counters: counters.clone(),
        });
        units.push(Unit {
            cfg: cfg.clone(),
            view: view_tx,
            counters,
            missed: 0,
            next_poll: Instant::now(),
            backoff: Backoff::new(config.poll.backoff_base, config.poll.backoff_cap),
        });
    }
    drop(tx);
    let join = tokio::spawn(run_bus(connector, config, units, rx));
    (handles, join)
}

/// Applies a link event to a unit's view; counts a loss when the unit goes offline.
fn transition(u: &Unit, event: LinkEvent) {
    u.view.send_if_modified(|v| {
        let (changed, lost) = v.link.advance(event, &u.counters);
        if lost {
            tracing::warn!(unit = %u.cfg.name, "laminator offline");
        }
        changed
    });
}

async fn run_bus<C: Connector>(
    mut connector: C,
    config: BusConfig,
    mut units: Vec<Unit>,
    mut rx: mpsc::Receiver<Command>,
) {
    let mut backoff = Backoff::new(config.poll.backoff_base, config.poll.backoff_cap);
    let mut opened_once = false;
    'outer: loop {
        match connector.connect().await {
            Ok(io) => {
                if opened_once {
                    units.iter().for_each(|u| u.counters.reconnects());
                }
                opened_once = true;
                backoff.reset();
                let now = Instant::now();
                for u in &mut units {
                    transition(u, LinkEvent::Opened);
                    u.next_poll = now;
                    u.missed = 0;
                }
                let drain = Arc::new(AtomicBool::new(false));
                let io = DrainingIo {
                    inner: io,
                    drain: drain.clone(),
                };
                let ctx = tokio_modbus::client::rtu::attach_slave(io, Slave(1));
                let mut resync = Resync {
                    drain,
                    settle_until: None,
                };
                match bus_session(ctx, &config, &mut units, &mut rx, &mut resync).await {
                    SessionEnd::HandlesGone => break 'outer,
                    SessionEnd::Lost => {
                        for u in &units {
                            transition(u, LinkEvent::Lost);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(bus = %connector.describe(), "open failed: {e}"),
        }
        let until = Instant::now() + backoff.next_delay();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                msg = rx.recv() => match msg {
                    None => break 'outer,
                    Some(c) => { let _ = c.reply.send(Err(DriverError::NotReady("bus down"))); }
                },
            }
        }
    }
    for u in &units {
        transition(u, LinkEvent::Stopped);
    }
}

enum SessionEnd {
    HandlesGone,
    Lost,
}

fn check_echo(got: &Response, want: &Response) -> Result<OpResult, DriverError> {
    if got == want {
        Ok(OpResult::Done)
    } else {
        Err(DriverError::Protocol(format!(
            "write echoed {got:?}, expected {want:?}"
        )))
    }
}

/// The bus's I/O with an input flush: when `drain` is set, the input already pending is read and
/// discarded (without waiting) before the next request is written. The bus is half-duplex and the
/// master speaks first, so input pending before a request can only be a late answer or noise.
struct DrainingIo<T> {
    inner: T,
    drain: Arc<AtomicBool>,
}

impl<T: AsyncRead + Unpin> DrainingIo<T> {
    fn discard_pending(&mut self, cx: &mut TaskContext<'_>) {
        let mut scratch = [0u8; 256];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                // Nothing pending (or EOF or an error, which the next read reports).
                _ => return,
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DrainingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DrainingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.drain.swap(false, Ordering::Relaxed) {
            self.discard_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resynchronisation of the bus after a timeout or a mismatched reply. tokio-modbus clears only
/// its own buffer before a call, so an answer that arrives after its request was given up would
/// sit in the port's input and be read by the next call, and every call after it would read its
/// predecessor's answer. So after a timeout or a mismatch, the next request waits until the line
/// has settled (the unit's timeout again: the late answer has arrived by then) and the pending
/// input is discarded before it is written.
struct Resync {
    drain: Arc<AtomicBool>,
    settle_until: Option<Instant>,
}

impl Resync {
    /// The bus is out of step: resynchronise before the next request.
    fn needed(&mut self, u: &Unit) {
        let at = Instant::now() + u.cfg.timeout;
        self.settle_until = Some(self.settle_until.map_or(at, |t| t.max(at)));
    }

    /// Before a request: wait out the settle window and arm the input flush.
    async fn before_request(&mut self, u: &Unit) {
        if let Some(t) = self.settle_until.take() {
            tokio::time::sleep_until(t).await;
            self.drain.store(true, Ordering::Relaxed);
            u.counters.resyncs();
        }
    }
}

/// One exchange with one unit, bounded by the unit's own timeout.
async fn exchange(
    ctx: &mut Context,
    resync: &mut Resync,
    u: &Unit,
    op: &Op,
    attempts: u32,
) -> Result<OpResult, DriverError> {
    ctx.set_slave(Slave(u.cfg.unit_id));
    u.counters.requests();
    let mut last = DriverError::Timeout {
        attempts,
        timeout: u.cfg.timeout,
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            u.counters.retries();
        }
        resync.before_request(u).await;
        let fut = async {
            match op {
                Op::Status => ctx
                    .read_input_registers(0, reg::STATUS_BLOCK_LEN)
                    .await
                    .map(|r| r.map(|regs| LaminatorStatus::decode(&regs).map(OpResult::Status))),
                Op::ReadHolding => ctx
                    .read_holding_registers(0, 2)
                    .await
                    .map(|r| r.map(|h| Ok(OpResult::Holding(h)))),
                // Writes go through `call` and are checked here: tokio-modbus's typed write helpers
                // only `debug_assert` the echo, so a device echoing a wrong value would panic
                // this task in a debug build instead of being reported.
                Op::WriteCoil(addr) => {
                    ctx.call(Request::WriteSingleCoil(*addr, true))
                        .await
                        .map(|r| {
                            r.map(|rsp| check_echo(&rsp, &Response::WriteSingleCoil(*addr, true)))
                        })
                }
                Op::WriteHolding(addr, v) => ctx
                    .call(Request::WriteSingleRegister(*addr, *v))
                    .await
                    .map(|r| {
                        r.map(|rsp| check_echo(&rsp, &Response::WriteSingleRegister(*addr, *v)))
                    }),
            }
        };
        match tokio::time::timeout(u.cfg.timeout, fut).await {
            Err(_) => {
                u.counters.timeouts();
                resync.needed(u);
                last = DriverError::Timeout {
                    attempts,
                    timeout: u.cfg.timeout,
                };
            }
            Ok(Ok(Ok(decoded))) => {
                u.counters.replies();
                return decoded;
            }
            Ok(Ok(Err(exception))) => {
                u.counters.replies();
                return Err(DriverError::ModbusException(exception));
            }
            Ok(Err(e)) => {
                let e = DriverError::Modbus(e);
                if e.is_link_loss() {
                    return Err(e);
                }
                // A reply from another unit or with another function: a late answer to a request
                // that timed out. Never taken as the answer: count it and resynchronise; the
                // retry (if any) then gets the right one.
                u.counters.late_replies();
                resync.needed(u);
                last = e;
            }
        }
    }
    Err(last)
}

async fn bus_session(
    mut ctx: Context,
    config: &BusConfig,
    units: &mut [Unit],
    rx: &mut mpsc::Receiver<Command>,
    resync: &mut Resync,
) -> SessionEnd {
    let p = config.poll;
    loop {
        let (due_idx, due_at) = units
            .iter()
            .enumerate()
            .map(|(i, u)| (i, u.next_poll))
            .min_by_key(|&(_, t)| t)
            .unwrap_or((0, Instant::now() + p.interval));
        // Not `biased`: a caller issuing commands back to back must not starve the polls that
        // detect a dead unit, nor the other units' polls.
        tokio::select! {
            msg = rx.recv() => {
                let Some(c) = msg else { return SessionEnd::HandlesGone };
                let Some(u) = units.get(c.unit) else { continue };
                if !u.view.borrow().link.is_ready() {
                    // Fail fast: queueing commands for a dead unit is what stalls a shared bus.
                    let _ = c.reply.send(Err(DriverError::NotReady("unit offline")));
                    continue;
                }
                let attempts = match c.op {
                    Op::WriteCoil(reg::COIL_FEED) => 1,
                    _ => config.retries + 1,
                };
                let r = exchange(&mut ctx, resync, u, &c.op, attempts).await;
                let lost = matches!(&r, Err(e) if e.is_link_loss());
                if let Ok(OpResult::Status(s)) = &r {
                    u.view.send_modify(|v| v.status = Some(s.clone()));
                    transition(u, LinkEvent::ExchangeOk);
                }
                let _ = c.reply.send(r);
                if lost {
                    return SessionEnd::Lost;
                }
            }
            () = tokio::time::sleep_until(due_at), if !units.is_empty() => {
                let u = &mut units[due_idx];
                // Fixed cadence from the poll's start: a missed poll must not stretch detection.
                let cadence = Instant::now() + p.interval;
                match exchange(&mut ctx, resync, u, &Op::Status, 1).await {
                    Ok(OpResult::Status(s)) => {
                        u.missed = 0;
                        u.backoff.reset();
                        u.view.send_modify(|v| v.status = Some(s));
                        transition(u, LinkEvent::ExchangeOk);
                        u.next_poll = cadence;
                    }
                    Ok(_) => u.next_poll = cadence,
                    Err(e) if e.is_link_loss() => {
                        tracing::info!(unit = %u.cfg.name, "bus lost: {e}");
                        return SessionEnd::Lost;
                    }
                    Err(_) => {
                        u.missed += 1;
                        transition(u, LinkEvent::PollMissed {
                            consecutive: u.missed,
                            limit: p.missed_polls_for_offline,
                        });
                        if u.missed >= p.missed_polls_for_offline {
                            // Probe with backoff: a dead unit costs one timeout per probe.
                            u.next_poll = Instant::now() + u.backoff.next_delay();
                        } else {
                            u.next_poll = cadence;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn status_block_round_trips() {
        let s = LaminatorStatus {
            state: LaminatorState::Ready,
            temperature_dc: 1352,
            speed_mm_s: 40,
            patch_count: 70_000,
            fault: Some(LaminatorFault::Overheat),
            patch_read_seq: 9,
            last_patch_serial: "0041200".into(),
        };
        let regs = s.encode();
        assert_eq!(regs.len(), usize::from(reg::STATUS_BLOCK_LEN));
        assert_eq!(regs[7], u16::from_be_bytes([b'0', b'0']));
        assert_eq!(LaminatorStatus::decode(&regs).unwrap(), s);
        assert!(LaminatorStatus::decode(&regs[..10]).is_err());
    }
}
