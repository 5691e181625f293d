//! The printer: its binary vendor protocol (see `PROTOCOL-printer.md`) and its driver task.
//!
//! [`spawn_printer`] starts the one task that owns the printer's port and returns a
//! [`PrinterHandle`]: a cheap `Clone` that sends commands over a bounded `mpsc` and awaits a
//! `oneshot` reply. The task polls STATUS, reports the link state on a `watch` channel
//! ([`PrinterView`]), publishes unsolicited events on a `broadcast` ([`PrinterEvent`]), and reopens
//! the port with jittered backoff when the link is lost.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::DriverError;
use crate::frame::Frame;
use crate::link::{CounterSnapshot, Link, LinkConfig, LinkCounters};
use crate::port::{Backoff, Connector, LinkEvent, LinkState, PollConfig};

/// Command, reply and event codes.
pub mod code {
    /// Host → device: report state, fault, levels.
    pub const STATUS: u8 = 0x01;
    /// Host → device: load the data of one job (data page fields, MRZ, portrait reference).
    pub const LOAD_JOB: u8 = 0x02;
    /// Host → device: print the loaded job.
    pub const PRINT: u8 = 0x03;
    /// Host → device: read the serial number of the booklet in the feeder.
    pub const READ_SERIAL: u8 = 0x04;
    /// Host → device: cancel the loaded or printing job.
    pub const CANCEL: u8 = 0x05;
    /// Host → device: acknowledge a fault the operator has cleared (jam removed, ink replaced).
    pub const CLEAR_FAULT: u8 = 0x06;

    /// Device → host: a job finished printing.
    pub const EV_DONE: u8 = 0x41;
    /// Device → host: a fault was raised.
    pub const EV_FAULT: u8 = 0x42;
    /// Device → host: ink and media levels.
    pub const EV_LEVELS: u8 = 0x43;
    /// Device → host: the fault was cleared.
    pub const EV_FAULT_CLEARED: u8 = 0x44;
    /// Device → host: a job was cancelled.
    pub const EV_CANCELLED: u8 = 0x45;

    /// Reply result: done.
    pub const OK: u8 = 0x00;
    /// Reply result: busy printing.
    pub const BUSY: u8 = 0x01;
    /// Reply result: no job loaded (or another job reference).
    pub const NO_JOB: u8 = 0x02;
    /// Reply result: the payload does not parse.
    pub const BAD_PAYLOAD: u8 = 0x03;
    /// Reply result: the printer is faulted; clear the fault first.
    pub const FAULTED: u8 = 0x04;
    /// Reply result: unknown command.
    pub const UNKNOWN_COMMAND: u8 = 0x05;
    /// Reply result: no booklet in the feeder.
    pub const NO_BOOKLET: u8 = 0x06;
}

/// What a printer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    /// Nothing loaded.
    Idle,
    /// A job is loaded, not yet printing.
    Loaded,
    /// Printing.
    Printing,
    /// Stopped on a fault.
    Faulted,
}

impl PrinterState {
    /// The wire value.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            PrinterState::Idle => 0,
            PrinterState::Loaded => 1,
            PrinterState::Printing => 2,
            PrinterState::Faulted => 3,
        }
    }

    /// From the wire value.
    #[must_use]
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => PrinterState::Idle,
            1 => PrinterState::Loaded,
            2 => PrinterState::Printing,
            3 => PrinterState::Faulted,
            _ => return None,
        })
    }
}

/// Printer fault codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterFault {
    /// Booklet jammed in the transport.
    Jam,
    /// Ink (or ribbon) exhausted.
    InkOut,
    /// No blank booklets in the input hopper.
    MediaOut,
    /// Print head over temperature.
    Overheat,
    /// A cover is open.
    CoverOpen,
    /// Any other fault code, kept as sent.
    Other(u8),
}

impl PrinterFault {
    /// The wire value (0 is "no fault" and is never a `PrinterFault`).
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            PrinterFault::Jam => 0x01,
            PrinterFault::InkOut => 0x02,
            PrinterFault::MediaOut => 0x03,
            PrinterFault::Overheat => 0x04,
            PrinterFault::CoverOpen => 0x05,
            PrinterFault::Other(c) => c,
        }
    }

    /// From the wire value; `None` for 0 (no fault).
    #[must_use]
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0x00 => return None,
            0x01 => PrinterFault::Jam,
            0x02 => PrinterFault::InkOut,
            0x03 => PrinterFault::MediaOut,
            0x04 => PrinterFault::Overheat,
            0x05 => PrinterFault::CoverOpen,
            other => PrinterFault::Other(other),
        })
    }
}

/// The answer to STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrinterStatus {
    /// What the printer is doing.
    pub state: PrinterState,
    /// The active fault, if any.
    pub fault: Option<PrinterFault>,
    /// Ink left, 0–100 %.
    pub ink_percent: u8,
    /// Blank booklets left in the hopper.
    pub media_count: u16,
    /// Reference of the loaded job (0 = none).
    pub job_ref: u32,
    /// Booklets printed since power-on.
    pub printed: u32,
}

/// Length of a STATUS reply payload, result byte included.
pub const STATUS_REPLY_LEN: usize = 1 + 1 + 1 + 1 + 2 + 4 + 4;

impl PrinterStatus {
    /// The STATUS reply payload (result byte first).
    #[must_use]
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(STATUS_REPLY_LEN);
        v.push(code::OK);
        v.push(self.state.code());
        v.push(self.fault.map_or(0, PrinterFault::code));
        v.push(self.ink_percent);
        v.extend(self.media_count.to_be_bytes());
        v.extend(self.job_ref.to_be_bytes());
        v.extend(self.printed.to_be_bytes());
        v
    }

    /// Parses a STATUS reply payload.
    ///
    /// # Errors
    /// [`DriverError::Protocol`] for a wrong length or state code; [`DriverError::Refused`] when
    /// the result byte is not OK.
    pub fn decode_reply(p: &[u8]) -> Result<Self, DriverError> {
        check_result(p)?;
        if p.len() != STATUS_REPLY_LEN {
            return Err(DriverError::Protocol(format!(
                "STATUS reply of {} bytes, expected {STATUS_REPLY_LEN}",
                p.len()
            )));
        }
        let state = PrinterState::from_code(p[1])
            .ok_or_else(|| DriverError::Protocol(format!("unknown printer state {}", p[1])))?;
        Ok(PrinterStatus {
            state,
            fault: PrinterFault::from_code(p[2]),
            ink_percent: p[3],
            media_count: u16::from_be_bytes([p[4], p[5]]),
            job_ref: u32::from_be_bytes([p[6], p[7], p[8], p[9]]),
            printed: u32::from_be_bytes([p[10], p[11], p[12], p[13]]),
        })
    }
}

fn check_result(p: &[u8]) -> Result<(), DriverError> {
    match p.first() {
        None => Err(DriverError::Protocol("empty reply".into())),
        Some(&code::OK) => Ok(()),
        Some(&c) => Err(DriverError::Refused(result_name(c).to_string())),
    }
}

/// A readable name for a reply result code.
#[must_use]
pub fn result_name(c: u8) -> &'static str {
    match c {
        code::OK => "ok",
        code::BUSY => "busy",
        code::NO_JOB => "no job loaded",
        code::BAD_PAYLOAD => "bad payload",
        code::FAULTED => "printer faulted",
        code::UNKNOWN_COMMAND => "unknown command",
        code::NO_BOOKLET => "no booklet in the feeder",
        _ => "unknown result code",
    }
}

/// Tags of the LOAD_JOB payload's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataField {
    /// Surname (data page).
    Surname,
    /// Given names.
    GivenNames,
    /// Document number.
    DocumentNumber,
    /// Nationality code.
    Nationality,
    /// Date of birth.
    DateOfBirth,
    /// Sex.
    Sex,
    /// Place of birth.
    PlaceOfBirth,
    /// Date of issue.
    DateOfIssue,
    /// Date of expiry.
    DateOfExpiry,
    /// Issuing authority.
    Authority,
    /// MRZ line 1 (44 characters for TD3).
    MrzLine1,
    /// MRZ line 2.
    MrzLine2,
    /// Reference of the portrait image in the printer's image store.
    PortraitRef,
}

impl DataField {
    const ALL: [DataField; 13] = [
        DataField::Surname,
        DataField::GivenNames,
        DataField::DocumentNumber,
        DataField::Nationality,
        DataField::DateOfBirth,
        DataField::Sex,
        DataField::PlaceOfBirth,
        DataField::DateOfIssue,
        DataField::DateOfExpiry,
        DataField::Authority,
        DataField::MrzLine1,
        DataField::MrzLine2,
        DataField::PortraitRef,
    ];

    /// The wire tag.
    #[must_use]
    pub fn tag(self) -> u8 {
        match self {
            DataField::Surname => 0x01,
            DataField::GivenNames => 0x02,
            DataField::DocumentNumber => 0x03,
            DataField::Nationality => 0x04,
            DataField::DateOfBirth => 0x05,
            DataField::Sex => 0x06,
            DataField::PlaceOfBirth => 0x07,
            DataField::DateOfIssue => 0x08,
            DataField::DateOfExpiry => 0x09,
            DataField::Authority => 0x0A,
            DataField::MrzLine1 => 0x10,
            DataField::MrzLine2 => 0x11,
            DataField::PortraitRef => 0x20,
        }
    }

    /// From the wire tag.
    #[must_use]
    pub fn from_tag(t: u8) -> Option<Self> {
        DataField::ALL.into_iter().find(|f| f.tag() == t)
    }
}

/// The data of one job for LOAD_JOB: a job reference and tagged fields.
///
/// Its `Debug` shows the reference and which fields are present, never their values: these are
/// passport-holder data and must not reach logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct JobData {
    /// The controller's reference for the job; echoed in DONE and CANCELLED events.
    pub job_ref: u32,
    /// Tagged fields, in order.
    pub fields: Vec<(DataField, String)>,
}

impl std::fmt::Debug for JobData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobData")
            .field("job_ref", &self.job_ref)
            .field(
                "fields",
                &self.fields.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JobData {
    /// The value of `field`, if present.
    #[must_use]
    pub fn get(&self, field: DataField) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }

    /// The LOAD_JOB payload: job reference (u32, big-endian), then per field a tag byte, a
    /// length byte and that many UTF-8 bytes.
    ///
    /// # Errors
    /// [`DriverError::Protocol`] for a field longer than 255 bytes;
    /// [`DriverError::PayloadTooLong`] when the whole does not fit in one frame.
    pub fn encode(&self) -> Result<Vec<u8>, DriverError> {
        let mut v = self.job_ref.to_be_bytes().to_vec();
        for (field, value) in &self.fields {
            let len = u8::try_from(value.len()).map_err(|_| {
                DriverError::Protocol(format!("field {field:?} is longer than 255 bytes"))
            })?;
            v.push(field.tag());
            v.push(len);
            v.extend(value.as_bytes());
        }
        if v.len() > crate::frame::MAX_PAYLOAD {
            return Err(DriverError::PayloadTooLong(v.len()));
        }
        Ok(v)
    }

    /// Parses a LOAD_JOB payload. Pure; never panics (fuzzed).
    ///
    /// # Errors
    /// [`DriverError::Protocol`] naming what is wrong: short payload, unknown tag, truncated field,
    /// invalid UTF-8.
    pub fn decode(p: &[u8]) -> Result<Self, DriverError> {
        let bad = |m: String| DriverError::Protocol(m);
        // Symmetric with `encode`: what one side cannot send, the other does not accept.
        if p.len() > crate::frame::MAX_PAYLOAD {
            return Err(bad(format!(
                "LOAD_JOB payload of {} bytes is longer than one frame",
                p.len()
            )));
        }
        let (head, mut rest) = p
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("LOAD_JOB payload shorter than its job reference".into()))?;
        let mut job = JobData {
            job_ref: u32::from_be_bytes(*head),
            fields: Vec::new(),
        };
        while let Some((&tag, after)) = rest.split_first() {
            let field = DataField::from_tag(tag)
                .ok_or_else(|| bad(format!("unknown field tag {tag:#04x}")))?;
            let (&len, after) = after
                .split_first()
                .ok_or_else(|| bad(format!("field {field:?} has no length")))?;
            let len = usize::from(len);
            if after.len() < len {
                return Err(bad(format!("field {field:?} is truncated")));
            }
            let value = std::str::from_utf8(&after[..len])
                .map_err(|_| bad(format!("field {field:?} is not UTF-8")))?;
            job.fields.push((field, value.to_string()));
            rest = &after[len..];
        }
        Ok(job)
    }
}

/// Unsolicited events from the printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PrinterEvent {
    /// A job finished printing on the booklet with this serial.
    Done {
        /// The job reference.
        job_ref: u32,
        /// Serial of the printed booklet.
        booklet_serial: String,
    },
    /// A fault was raised (while printing `job_ref`, or 0).
    Fault {
        /// The fault.
        fault: PrinterFault,
        /// The job being printed, or 0.
        job_ref: u32,
    },
    /// The fault was cleared.
    FaultCleared,
    /// Ink and media levels changed.
    Levels {
        /// Ink left, %.
        ink_percent: u8,
        /// Blank booklets left.
        media_count: u16,
    },
    /// A job was cancelled.
    Cancelled {
        /// The job reference.
        job_ref: u32,
    },
}

impl PrinterEvent {
    /// The event as a frame payload with its code.
    #[must_use]
    pub fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            PrinterEvent::Done {
                job_ref,
                booklet_serial,
            } => {
                let mut v = job_ref.to_be_bytes().to_vec();
                v.extend(booklet_serial.as_bytes());
                (code::EV_DONE, v)
            }
            PrinterEvent::Fault { fault, job_ref } => {
                let mut v = vec![fault.code()];
                v.extend(job_ref.to_be_bytes());
                (code::EV_FAULT, v)
            }
            PrinterEvent::FaultCleared => (code::EV_FAULT_CLEARED, vec![]),
            PrinterEvent::Levels {
                ink_percent,
                media_count,
            } => {
                let mut v = vec![*ink_percent];
                v.extend(media_count.to_be_bytes());
                (code::EV_LEVELS, v)
            }
            PrinterEvent::Cancelled { job_ref } => {
                (code::EV_CANCELLED, job_ref.to_be_bytes().to_vec())
            }
        }
    }

    /// Parses an event frame. Pure; never panics.
    ///
    /// # Errors
    /// [`DriverError::Protocol`] for an unknown code or a malformed payload.
    pub fn decode(cmd: u8, p: &[u8]) -> Result<Self, DriverError> {
        let bad =
            || DriverError::Protocol(format!("malformed event {cmd:#04x} ({} bytes)", p.len()));
        let u32_at = |i: usize| -> Result<u32, DriverError> {
            p.get(i..i + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(bad)
        };
        Ok(match cmd {
            code::EV_DONE => PrinterEvent::Done {
                job_ref: u32_at(0)?,
                booklet_serial: String::from_utf8(p[4..].to_vec()).map_err(|_| bad())?,
            },
            code::EV_FAULT => PrinterEvent::Fault {
                fault: p
                    .first()
                    .and_then(|&c| PrinterFault::from_code(c))
                    .ok_or_else(bad)?,
                job_ref: u32_at(1)?,
            },
            code::EV_FAULT_CLEARED => PrinterEvent::FaultCleared,
            code::EV_LEVELS => {
                if p.len() != 3 {
                    return Err(bad());
                }
                PrinterEvent::Levels {
                    ink_percent: p[0],
                    media_count: u16::from_be_bytes([p[1], p[2]]),
                }
            }
            code::EV_CANCELLED => PrinterEvent::Cancelled {
                job_ref: u32_at(0)?,
            },
            _ => return Err(bad()),
        })
    }
}

/// What the printer's task currently knows: link state and the last status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrinterView {
    /// The link state; only `Ready` takes commands.
    pub link: LinkState,
    /// The last status read, if any exchange succeeded yet.
    pub status: Option<PrinterStatus>,
}

/// Settings of one printer's task.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrinterConfig {
    /// Per-request timeout and retries for commands.
    pub link: LinkConfig,
    /// Status polling and reopen backoff.
    pub poll: PollConfig,
}

struct Command {
    cmd: u8,
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<Frame, DriverError>>,
}

/// Queue depth between handles and the port task: a few callers may wait; beyond that,
/// `send` waits too, which is the back-pressure we want rather than an unbounded pile of
/// commands for a printer that prints one booklet at a time.
const QUEUE_DEPTH: usize = 16;

/// A cheap, cloneable handle to one printer's task.
#[derive(Clone)]
pub struct PrinterHandle {
    name: Arc<str>,
    tx: mpsc::Sender<Command>,
    view: watch::Receiver<PrinterView>,
    events: broadcast::Sender<PrinterEvent>,
    counters: Arc<LinkCounters>,
}

impl std::fmt::Debug for PrinterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrinterHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PrinterHandle {
    /// The printer's name (its port).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, cmd: u8, payload: Vec<u8>) -> Result<Frame, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command {
                cmd,
                payload,
                reply,
            })
            .await
            .map_err(|_| DriverError::TaskStopped)?;
        rx.await.map_err(|_| DriverError::TaskStopped)?
    }

    /// Reads the status now (a fresh exchange, not the cached view).
    ///
    /// # Errors
    /// [`DriverError::NotReady`] when the printer is not ready; link and protocol errors.
    pub async fn status(&self) -> Result<PrinterStatus, DriverError> {
        let f = self.call(code::STATUS, vec![]).await?;
        PrinterStatus::decode_reply(&f.payload)
    }

    /// Loads a job's data.
    ///
    /// # Errors
    /// [`DriverError::Refused`] when the printer is busy or faulted; link errors.
    pub async fn load_job(&self, job: &JobData) -> Result<(), DriverError> {
        let f = self.call(code::LOAD_JOB, job.encode()?).await?;
        check_result(&f.payload)
    }

    /// Starts printing the loaded job; completion comes as [`PrinterEvent::Done`].
    ///
    /// # Errors
    /// [`DriverError::Refused`] when no such job is loaded or the printer is faulted.
    pub async fn print(&self, job_ref: u32) -> Result<(), DriverError> {
        let f = self
            .call(code::PRINT, job_ref.to_be_bytes().to_vec())
            .await?;
        check_result(&f.payload)
    }

    /// Reads the serial number of the booklet in the feeder.
    ///
    /// # Errors
    /// [`DriverError::Refused`] when no booklet is there.
    pub async fn read_serial(&self) -> Result<String, DriverError> {
        let f = self.call(code::READ_SERIAL, vec![]).await?;
        check_result(&f.payload)?;
        String::from_utf8(f.payload[1..].to_vec())
            .map_err(|_| DriverError::Protocol("booklet serial is not UTF-8".into()))
    }

    /// Cancels the loaded or printing job.
    ///
    /// # Errors
    /// Link errors; [`DriverError::Refused`] when nothing is loaded.
    pub async fn cancel(&self) -> Result<(), DriverError> {
        let f = self.call(code::CANCEL, vec![]).await?;
        check_result(&f.payload)
    }

    /// Tells the printer that the operator cleared its fault.
    ///
    /// # Errors
    /// [`DriverError::Refused`] when the fault is still there.
    pub async fn clear_fault(&self) -> Result<(), DriverError> {
        let f = self.call(code::CLEAR_FAULT, vec![]).await?;
        check_result(&f.payload)
    }

    /// The latest view (link state and last status).
    #[must_use]
    pub fn view(&self) -> PrinterView {
        *self.view.borrow()
    }

    /// A receiver that sees every change of the view.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<PrinterView> {
        self.view.clone()
    }

    /// Subscribes to the printer's events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<PrinterEvent> {
        self.events.subscribe()
    }

    /// The link's counters.
    #[must_use]
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }
}

/// Starts the task that owns the printer reached through `connector`.
///
/// The task ends when every [`PrinterHandle`] is dropped; the returned `JoinHandle` lets the
/// caller wait for that (or abort it at shutdown).
pub fn spawn_printer<C: Connector>(
    connector: C,
    config: PrinterConfig,
) -> (PrinterHandle, JoinHandle<()>) {
    let name: Arc<str> = connector.describe().into();
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let (view_tx, view) = watch::channel(PrinterView {
        link: LinkState::Opening,
        status: None,
    });
    let (events, _) = broadcast::channel(64);
    let counters = LinkCounters::shared();
    let task = PrinterTask {
        name: name.clone(),
        config,
        rx,
        view: view_tx,
        events: events.clone(),
        counters: counters.clone(),
    };
    let join = tokio::spawn(task.run(connector));
    (
        PrinterHandle {
            name,
            tx,
            view,
            events,
            counters,
        },
        join,
    )
}

struct PrinterTask {
    name: Arc<str>,
    config: PrinterConfig,
    rx: mpsc::Receiver<Command>,
    view: watch::Sender<PrinterView>,
    events: broadcast::Sender<PrinterEvent>,
    counters: Arc<LinkCounters>,
}

/// Why a connected session ended.
enum SessionEnd {
    /// Every handle is gone: stop the task.
    HandlesGone,
    /// The link was lost or the device went offline: close and reopen.
    Lost,
}

impl PrinterTask {
    /// Applies a link event to the view; counts a loss when the printer goes offline.
    fn transition(&self, event: LinkEvent) {
        self.view.send_if_modified(|v| {
            let (changed, lost) = v.link.advance(event, &self.counters);
            if lost {
                tracing::warn!(printer = %self.name, "printer offline");
            }
            changed
        });
    }

    async fn run<C: Connector>(mut self, mut connector: C) {
        let p = self.config.poll;
        let mut backoff = Backoff::new(p.backoff_base, p.backoff_cap);
        let mut opened_once = false;
        loop {
            match connector.connect().await {
                Ok(io) => {
                    if opened_once {
                        self.counters.reconnects();
                    }
                    opened_once = true;
                    self.transition(LinkEvent::Opened);
                    let link = Link::new(io, self.config.link, self.counters.clone());
                    match self.session(link, &mut backoff).await {
                        SessionEnd::HandlesGone => break,
                        SessionEnd::Lost => {}
                    }
                }
                Err(e) => tracing::debug!(printer = %self.name, "open failed: {e}"),
            }
            // Wait before reopening, still answering callers at once: a command to a printer that
            // is down fails fast rather than hanging until the port comes back.
            let until = Instant::now() + backoff.next_delay();
            if !self.refuse_until(until).await {
                break;
            }
        }
        self.transition(LinkEvent::Stopped);
    }

    /// Answers every command with NotReady until `until`. False when every handle is gone.
    async fn refuse_until(&mut self, until: Instant) -> bool {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                msg = self.rx.recv() => match msg {
                    None => return false,
                    Some(c) => { let _ = c.reply.send(Err(DriverError::NotReady("link down"))); }
                },
            }
        }
    }

    async fn session<T>(&mut self, mut link: Link<T>, backoff: &mut Backoff) -> SessionEnd
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let p = self.config.poll;
        let mut missed = 0u32;
        let mut next_poll = Instant::now();
        loop {
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(c) = msg else { return SessionEnd::HandlesGone };
                    if !self.view.borrow().link.is_ready() {
                        let _ = c.reply.send(Err(DriverError::NotReady("no successful exchange yet")));
                        continue;
                    }
                    let r = link.request(c.cmd, &c.payload).await;
                    let lost = matches!(&r, Err(e) if e.is_link_loss());
                    let _ = c.reply.send(r);
                    self.forward_events(&mut link);
                    if lost {
                        return self.lost();
                    }
                }
                () = tokio::time::sleep_until(next_poll) => {
                    // Polls keep a fixed cadence from their start, so a missed poll (which waits
                    // out the timeout) does not stretch the time to detect a silent device.
                    let started = Instant::now();
                    let cadence = started + p.interval;
                    match link.poll(code::STATUS, &[]).await {
                        Ok(f) => {
                            missed = 0;
                            backoff.reset();
                            match PrinterStatus::decode_reply(&f.payload) {
                                Ok(status) => {
                                    self.view.send_modify(|v| v.status = Some(status));
                                    self.transition(LinkEvent::ExchangeOk);
                                }
                                Err(e) => tracing::warn!(printer = %self.name, "bad STATUS reply: {e}"),
                            }
                            next_poll = cadence;
                        }
                        Err(e) if e.is_link_loss() => return self.lost(),
                        Err(_) => {
                            missed += 1;
                            self.transition(LinkEvent::PollMissed {
                                consecutive: missed,
                                limit: p.missed_polls_for_offline,
                            });
                            if missed >= p.missed_polls_for_offline {
                                // Offline: close the port and reopen it; a wedged adapter
                                // recovers that way, and a healthy one loses nothing.
                                return SessionEnd::Lost;
                            }
                            next_poll = cadence;
                        }
                    }
                    self.forward_events(&mut link);
                }
                ev = link.next_event() => match ev {
                    Ok(f) => self.publish(&f),
                    Err(e) => {
                        tracing::info!(printer = %self.name, "link lost: {e}");
                        return self.lost();
                    }
                },
            }
        }
    }

    fn lost(&self) -> SessionEnd {
        self.transition(LinkEvent::Lost);
        SessionEnd::Lost
    }

    fn forward_events<T>(&self, link: &mut Link<T>)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        while let Some(f) = link.take_event() {
            self.publish(&f);
        }
    }

    fn publish(&self, f: &Frame) {
        match PrinterEvent::decode(f.cmd, &f.payload) {
            Ok(ev) => {
                // A fault event updates the view at once rather than at the next poll.
                if let PrinterEvent::Fault { fault, .. } = ev {
                    self.view.send_modify(|v| {
                        if let Some(s) = v.status.as_mut() {
                            s.state = PrinterState::Faulted;
                            s.fault = Some(fault);
                        }
                    });
                }
                let _ = self.events.send(ev);
            }
            Err(e) => tracing::warn!(printer = %self.name, "bad event: {e}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn job_data_round_trips_and_hides_values_from_debug() {
        let job = JobData {
            job_ref: 42,
            fields: vec![
                (DataField::Surname, "ERIKSSON".into()),
                (
                    DataField::MrzLine1,
                    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<".into(),
                ),
                (
                    DataField::MrzLine2,
                    "L898902C36UTO7408122F1204159ZE184226B<<<<<10".into(),
                ),
                (DataField::PortraitRef, "img/42.jp2".into()),
            ],
        };
        let bytes = job.encode().unwrap();
        assert_eq!(JobData::decode(&bytes).unwrap(), job);
        let dbg = format!("{job:?}");
        assert!(
            !dbg.contains("ERIKSSON") && !dbg.contains("L898902C3"),
            "{dbg}"
        );
    }

    /// Found by the `printer_payloads` fuzz target: a 1045-byte payload decoded, but could not
    /// be encoded again (encode refuses more than one frame's payload).
    #[test]
    fn regression_job_data_longer_than_a_frame_is_refused_by_decode_too() {
        let mut p = 7u32.to_be_bytes().to_vec();
        while p.len() <= crate::frame::MAX_PAYLOAD {
            p.extend([0x01, 1, b'A']);
        }
        let err = JobData::decode(&p).unwrap_err().to_string();
        assert!(err.contains("longer than one frame"), "{err}");
    }

    #[test]
    fn job_data_decoder_names_what_is_wrong() {
        let table: [(&[u8], &str); 4] = [
            (&[0, 0], "shorter than its job reference"),
            (&[0, 0, 0, 1, 0x99, 0], "unknown field tag"),
            (&[0, 0, 0, 1, 0x01, 5, b'A'], "truncated"),
            (&[0, 0, 0, 1, 0x01, 1, 0xFF], "not UTF-8"),
        ];
        for (input, want) in table {
            let err = JobData::decode(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn status_and_events_round_trip() {
        let s = PrinterStatus {
            state: PrinterState::Printing,
            fault: Some(PrinterFault::InkOut),
            ink_percent: 3,
            media_count: 480,
            job_ref: 7,
            printed: 1234,
        };
        assert_eq!(PrinterStatus::decode_reply(&s.encode_reply()).unwrap(), s);
        for ev in [
            PrinterEvent::Done {
                job_ref: 1,
                booklet_serial: "BK-9001234".into(),
            },
            PrinterEvent::Fault {
                fault: PrinterFault::Jam,
                job_ref: 1,
            },
            PrinterEvent::FaultCleared,
            PrinterEvent::Levels {
                ink_percent: 10,
                media_count: 2,
            },
            PrinterEvent::Cancelled { job_ref: 9 },
        ] {
            let (c, p) = ev.encode();
            assert_eq!(PrinterEvent::decode(c, &p).unwrap(), ev);
        }
        assert!(PrinterEvent::decode(code::EV_DONE, &[1]).is_err());
    }
}
