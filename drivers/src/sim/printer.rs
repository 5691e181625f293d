//! A simulated passport printer speaking the vendor protocol of `PROTOCOL-printer.md`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::TimeScale;
use super::wire::{SimWire, WireControl, spawn_wire};
use crate::frame::{self, Decoded, Frame};
use crate::link::REPLY_FLAG;
use crate::printer::{JobData, PrinterEvent, PrinterFault, PrinterState, PrinterStatus, code};

/// Physical timings of the simulated printer (before scaling).
#[derive(Debug, Clone, Copy)]
pub struct PrinterTiming {
    /// Time to print one data page.
    pub print: Duration,
    /// Time to process a command before replying.
    pub reply: Duration,
    /// Scale applied to both.
    pub scale: TimeScale,
}

impl Default for PrinterTiming {
    fn default() -> Self {
        PrinterTiming {
            print: Duration::from_secs(8),
            reply: Duration::from_millis(4),
            scale: TimeScale::default(),
        }
    }
}

#[derive(Debug)]
struct Machine {
    state: PrinterState,
    fault: Option<PrinterFault>,
    ink_percent: u8,
    media_count: u16,
    loaded: Option<JobData>,
    printed: u32,
    next_booklet: u64,
    print_done_at: Option<Instant>,
    event_seq: u8,
    /// Last request's (seq, cmd) and its reply, so a retransmission is answered, not executed.
    last: Option<(u8, u8, Vec<u8>)>,
    /// The booklet the operator put in the feeder ([`PrinterSimControl::load_booklet`]); without
    /// one the printer takes the next blank of its own stock (`BK-<n>`).
    feeder: Option<String>,
    /// Fault injection: the next print takes this booklet instead (scan one, print another).
    misfeed: Option<String>,
    /// Fault injection: the next print's read-back reads nothing.
    no_read: bool,
}

impl Machine {
    fn status(&self) -> PrinterStatus {
        PrinterStatus {
            state: self.state,
            fault: self.fault,
            ink_percent: self.ink_percent,
            media_count: self.media_count,
            job_ref: self.loaded.as_ref().map_or(0, |j| j.job_ref),
            printed: self.printed,
        }
    }

    /// The booklet in the feeder: the one injected, else the one put in, else the next of the
    /// printer's own stock.
    fn booklet_serial(&self) -> String {
        self.misfeed
            .clone()
            .or_else(|| self.feeder.clone())
            .unwrap_or_else(|| format!("BK-{:07}", self.next_booklet))
    }

    fn raise(&mut self, fault: PrinterFault) -> PrinterEvent {
        let job_ref = self.loaded.as_ref().map_or(0, |j| j.job_ref);
        self.fault = Some(fault);
        self.state = PrinterState::Faulted;
        self.print_done_at = None;
        PrinterEvent::Fault { fault, job_ref }
    }

    /// Executes one command; returns the reply payload and any events it caused.
    fn execute(
        &mut self,
        cmd: u8,
        payload: &[u8],
        t: PrinterTiming,
    ) -> (Vec<u8>, Vec<PrinterEvent>) {
        let mut events = Vec::new();
        let reply = match cmd {
            code::STATUS => return (self.status().encode_reply(), events),
            code::LOAD_JOB => match (self.state, JobData::decode(payload)) {
                (PrinterState::Faulted, _) => vec![code::FAULTED],
                (PrinterState::Printing, _) => vec![code::BUSY],
                (_, Err(_)) => vec![code::BAD_PAYLOAD],
                (_, Ok(job)) => {
                    self.loaded = Some(job);
                    self.state = PrinterState::Loaded;
                    vec![code::OK]
                }
            },
            code::PRINT => {
                let want = payload.try_into().ok().map(u32::from_be_bytes);
                match self.state {
                    PrinterState::Faulted => vec![code::FAULTED],
                    PrinterState::Printing => vec![code::BUSY],
                    _ if self.loaded.as_ref().map(|j| j.job_ref) != want || want.is_none() => {
                        vec![code::NO_JOB]
                    }
                    _ if self.media_count == 0 => {
                        events.push(self.raise(PrinterFault::MediaOut));
                        vec![code::FAULTED]
                    }
                    _ if self.ink_percent == 0 => {
                        events.push(self.raise(PrinterFault::InkOut));
                        vec![code::FAULTED]
                    }
                    _ => {
                        self.state = PrinterState::Printing;
                        self.print_done_at = Some(Instant::now() + t.scale.scale(t.print));
                        vec![code::OK]
                    }
                }
            }
            code::READ_SERIAL => {
                if self.media_count == 0 {
                    vec![code::NO_BOOKLET]
                } else {
                    let mut v = vec![code::OK];
                    v.extend(self.booklet_serial().as_bytes());
                    v
                }
            }
            code::CANCEL => match self.loaded.take() {
                None => vec![code::NO_JOB],
                Some(job) => {
                    self.print_done_at = None;
                    if self.state != PrinterState::Faulted {
                        self.state = PrinterState::Idle;
                    }
                    events.push(PrinterEvent::Cancelled {
                        job_ref: job.job_ref,
                    });
                    vec![code::OK]
                }
            },
            code::CLEAR_FAULT => {
                if let Some(f) = self.fault.take() {
                    // The operator fixed the cause: refill what ran out.
                    match f {
                        PrinterFault::InkOut => self.ink_percent = 100,
                        PrinterFault::MediaOut => self.media_count = 500,
                        _ => {}
                    }
                    self.state = if self.loaded.is_some() {
                        PrinterState::Loaded
                    } else {
                        PrinterState::Idle
                    };
                    events.push(PrinterEvent::FaultCleared);
                }
                vec![code::OK]
            }
            _ => vec![code::UNKNOWN_COMMAND],
        };
        (reply, events)
    }

    /// Advances printing; returns the events that happened.
    fn tick(&mut self, now: Instant) -> Vec<PrinterEvent> {
        let Some(at) = self.print_done_at else {
            return vec![];
        };
        if now < at {
            return vec![];
        }
        self.print_done_at = None;
        let job_ref = self.loaded.take().map_or(0, |j| j.job_ref);
        // The read-back of the booklet printed (empty: the reader read nothing).
        let booklet_serial = if std::mem::take(&mut self.no_read) {
            String::new()
        } else {
            self.booklet_serial()
        };
        if self.misfeed.take().is_none() && self.feeder.take().is_none() {
            self.next_booklet += 1;
        }
        self.printed += 1;
        self.media_count = self.media_count.saturating_sub(1);
        self.ink_percent = self.ink_percent.saturating_sub(1);
        self.state = PrinterState::Idle;
        vec![
            PrinterEvent::Done {
                job_ref,
                booklet_serial,
            },
            PrinterEvent::Levels {
                ink_percent: self.ink_percent,
                media_count: self.media_count,
            },
        ]
    }
}

/// Machine faults to inject into a simulated printer.
#[derive(Debug)]
enum Inject {
    Fault(PrinterFault),
}

/// Controls of a simulated printer; cheap to clone.
#[derive(Debug, Clone)]
pub struct PrinterSimControl {
    machine: Arc<Mutex<Machine>>,
    inject: mpsc::Sender<Inject>,
    /// The wire: line faults and the cable.
    pub wire: WireControl,
}

impl PrinterSimControl {
    /// Raises a machine fault now (jam, ink out, overheat ...); the printer sends a FAULT event.
    pub async fn inject(&self, fault: PrinterFault) {
        let _ = self.inject.send(Inject::Fault(fault)).await;
    }

    /// Sets the ink level (0 makes the next PRINT raise ink out).
    pub fn set_ink(&self, percent: u8) {
        if let Ok(mut m) = self.machine.lock() {
            m.ink_percent = percent;
        }
    }

    /// Puts `serial` in the feeder, as the operator does with the booklet they scanned: the next
    /// print takes it (and its DONE reads it back).
    pub fn load_booklet(&self, serial: &str) {
        if let Ok(mut m) = self.machine.lock() {
            m.feeder = Some(serial.to_string());
        }
    }

    /// Fault injection: the next print takes booklet `serial`, whatever was put in the feeder
    /// (an insider's swap: scan one booklet, print another).
    pub fn misfeed(&self, serial: &str) {
        if let Ok(mut m) = self.machine.lock() {
            m.misfeed = Some(serial.to_string());
        }
    }

    /// Fault injection: the next print's booklet read-back reads nothing (DONE with an empty
    /// serial).
    pub fn no_read(&self) {
        if let Ok(mut m) = self.machine.lock() {
            m.no_read = true;
        }
    }

    /// The machine's status as the simulator sees it (for assertions).
    #[must_use]
    pub fn status(&self) -> Option<PrinterStatus> {
        self.machine.lock().ok().map(|m| m.status())
    }

    /// The stable port path the driver opens.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.wire.path().to_path_buf()
    }
}

/// A running simulated printer.
#[derive(Debug)]
pub struct PrinterSim {
    /// Its controls.
    pub control: PrinterSimControl,
    /// The device task.
    pub device: JoinHandle<()>,
    /// The wire task.
    pub wire: JoinHandle<()>,
}

/// Starts a simulated printer reachable at `link_path` (a symlink to a pseudo-terminal).
///
/// # Errors
/// When the pseudo-terminal or the symlink cannot be created.
pub fn spawn_printer_sim(
    link_path: PathBuf,
    first_booklet: u64,
    timing: PrinterTiming,
) -> std::io::Result<PrinterSim> {
    let (dev_io, wire_io) = tokio::io::duplex(4096);
    let SimWire {
        control: wire,
        task: wire_task,
    } = spawn_wire(wire_io, link_path)?;
    let machine = Arc::new(Mutex::new(Machine {
        state: PrinterState::Idle,
        fault: None,
        ink_percent: 100,
        media_count: 500,
        loaded: None,
        printed: 0,
        next_booklet: first_booklet,
        print_done_at: None,
        event_seq: 0,
        last: None,
        feeder: None,
        misfeed: None,
        no_read: false,
    }));
    let (inject, inject_rx) = mpsc::channel(8);
    let device = tokio::spawn(run_device(dev_io, machine.clone(), inject_rx, timing));
    Ok(PrinterSim {
        control: PrinterSimControl {
            machine,
            inject,
            wire,
        },
        device,
        wire: wire_task,
    })
}

async fn run_device<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    machine: Arc<Mutex<Machine>>,
    mut inject: mpsc::Receiver<Inject>,
    timing: PrinterTiming,
) {
    let mut buf = BytesMut::with_capacity(2048);
    let mut tick = tokio::time::interval(
        timing
            .scale
            .scale(Duration::from_millis(100))
            .max(Duration::from_millis(5)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut out = Vec::new();
        tokio::select! {
            r = io.read_buf(&mut buf) => {
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                loop {
                    match frame::decode(&buf) {
                        Decoded::Incomplete => break,
                        Decoded::Invalid { discard, .. } => { let _ = buf.split_to(discard.clamp(1, buf.len())); }
                        Decoded::Frame { frame, consumed } => {
                            let _ = buf.split_to(consumed);
                            if !timing.reply.is_zero() {
                                tokio::time::sleep(timing.scale.scale(timing.reply)).await;
                            }
                            out.extend(handle_request(&machine, &frame, timing));
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let events = machine.lock().map(|mut m| m.tick(Instant::now())).unwrap_or_default();
                out.extend(encode_events(&machine, events));
            }
            Some(Inject::Fault(f)) = inject.recv() => {
                let events = machine.lock().map(|mut m| vec![m.raise(f)]).unwrap_or_default();
                out.extend(encode_events(&machine, events));
            }
        }
        if !out.is_empty() && io.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn handle_request(machine: &Arc<Mutex<Machine>>, req: &Frame, timing: PrinterTiming) -> Vec<u8> {
    let Ok(mut m) = machine.lock() else {
        return vec![];
    };
    let reply_payload = match &m.last {
        Some((seq, cmd, reply)) if *seq == req.seq && *cmd == req.cmd => reply.clone(),
        _ => {
            let (reply, events) = m.execute(req.cmd, &req.payload, timing);
            m.last = Some((req.seq, req.cmd, reply.clone()));
            let mut out = Frame::new(req.seq, req.cmd | REPLY_FLAG, reply)
                .encode()
                .unwrap_or_default();
            for ev in events {
                out.extend(event_frame(&mut m, &ev));
            }
            return out;
        }
    };
    Frame::new(req.seq, req.cmd | REPLY_FLAG, reply_payload)
        .encode()
        .unwrap_or_default()
}

fn event_frame(m: &mut Machine, ev: &PrinterEvent) -> Vec<u8> {
    let (c, p) = ev.encode();
    m.event_seq = m.event_seq.wrapping_add(1);
    Frame::new(m.event_seq, c, p).encode().unwrap_or_default()
}

fn encode_events(machine: &Arc<Mutex<Machine>>, events: Vec<PrinterEvent>) -> Vec<u8> {
    let Ok(mut m) = machine.lock() else {
        return vec![];
    };
    events
        .iter()
        .flat_map(|ev| event_frame(&mut m, ev))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use crate::printer::DataField;

    fn machine() -> Arc<Mutex<Machine>> {
        Arc::new(Mutex::new(Machine {
            state: PrinterState::Idle,
            fault: None,
            ink_percent: 100,
            media_count: 10,
            loaded: None,
            printed: 0,
            next_booklet: 1,
            print_done_at: None,
            event_seq: 0,
            last: None,
            feeder: None,
            misfeed: None,
            no_read: false,
        }))
    }

    fn result_of(bytes: &[u8]) -> u8 {
        match frame::decode(bytes) {
            Decoded::Frame { frame, .. } => frame.payload[0],
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_retransmitted_print_is_answered_from_the_cache_not_printed_twice() {
        let m = machine();
        let t = PrinterTiming::default();
        let job = JobData {
            job_ref: 5,
            fields: vec![(DataField::Surname, "X".into())],
        };
        let load = Frame::new(1, code::LOAD_JOB, job.encode().unwrap());
        assert_eq!(result_of(&handle_request(&m, &load, t)), code::OK);
        let print = Frame::new(2, code::PRINT, 5u32.to_be_bytes().to_vec());
        assert_eq!(result_of(&handle_request(&m, &print, t)), code::OK);
        // Same SEQ again (the host's retry after a lost reply): the cached OK, not BUSY.
        assert_eq!(result_of(&handle_request(&m, &print, t)), code::OK);
        // A new SEQ is a new command: now the printer is busy.
        let again = Frame::new(3, code::PRINT, 5u32.to_be_bytes().to_vec());
        assert_eq!(result_of(&handle_request(&m, &again, t)), code::BUSY);
    }
}
