//! Simulated laminators: a Modbus RTU slave (tokio-modbus's server) serving several units on one
//! simulated RS-485 bus, with the register map of `PROTOCOL-laminator.md`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialStream;

use super::TimeScale;
use super::wire::{WireControl, spawn_wire};
use crate::laminator::{LaminatorFault, LaminatorState, LaminatorStatus, reg};

/// Physical behaviour of a simulated laminator (before scaling).
#[derive(Debug, Clone, Copy)]
pub struct LaminatorTiming {
    /// Heating rate, 0.1 °C per second.
    pub heat_rate_dc_per_s: u16,
    /// Time to laminate one booklet.
    pub feed: Duration,
    /// Scale of all durations.
    pub scale: TimeScale,
}

impl Default for LaminatorTiming {
    fn default() -> Self {
        LaminatorTiming {
            heat_rate_dc_per_s: 50,
            feed: Duration::from_secs(4),
            scale: TimeScale::default(),
        }
    }
}

/// Faults of one unit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UnitFaults {
    /// The unit does not answer (the others on the bus still do).
    pub silent: bool,
    /// The unit answers after this delay.
    pub delay: Duration,
}

#[derive(Debug)]
struct UnitState {
    status: LaminatorStatus,
    setpoint_dc: u16,
    speed_setpoint: u16,
    started: bool,
    feeding_left: Option<Duration>,
    next_patch: u64,
    faults: UnitFaults,
    /// The patch the operator put in ([`LaminatorUnitControl::load_patch`]); without one the
    /// unit takes the next patch of its own roll.
    feeder: Option<String>,
    /// Fault injection: the next feed takes this patch instead (scan one, feed another).
    misfeed: Option<String>,
    /// Fault injection: the reader takes no reading on the next feed (PATCH_READ_SEQ unchanged).
    no_read: bool,
}

const AMBIENT_DC: u16 = 220;
const OVERHEAT_DC: u16 = 1750;

impl UnitState {
    fn new(first_patch: u64) -> Self {
        UnitState {
            status: LaminatorStatus {
                state: LaminatorState::Idle,
                temperature_dc: AMBIENT_DC,
                speed_mm_s: 0,
                patch_count: 0,
                fault: None,
                patch_read_seq: 0,
                last_patch_serial: String::new(),
            },
            setpoint_dc: 1350,
            speed_setpoint: 40,
            started: false,
            feeding_left: None,
            next_patch: first_patch,
            faults: UnitFaults::default(),
            feeder: None,
            misfeed: None,
            no_read: false,
        }
    }

    fn raise(&mut self, f: LaminatorFault) {
        self.status.fault = Some(f);
        self.status.state = LaminatorState::Faulted;
        self.status.speed_mm_s = 0;
        self.feeding_left = None;
    }

    /// Advances the physics by `dt` of simulated time.
    fn tick(&mut self, dt: Duration, t: LaminatorTiming) {
        let step = (f64::from(t.heat_rate_dc_per_s) * dt.as_secs_f64()).round() as u16;
        let target = if self.started && self.status.fault.is_none() {
            self.setpoint_dc
        } else {
            AMBIENT_DC
        };
        let temp = &mut self.status.temperature_dc;
        *temp = if *temp < target {
            (*temp + step.max(1)).min(target)
        } else {
            temp.saturating_sub(step.max(1)).max(target)
        };
        if self.status.fault.is_some() {
            return;
        }
        if self.status.temperature_dc >= OVERHEAT_DC {
            self.raise(LaminatorFault::Overheat);
            return;
        }
        if let Some(left) = self.feeding_left {
            if left <= dt {
                self.feeding_left = None;
                self.status.patch_count += 1;
                let patch = match (self.misfeed.take(), self.feeder.take()) {
                    (Some(p), _) | (None, Some(p)) => p,
                    (None, None) => {
                        self.next_patch += 1;
                        format!("{:07}", self.next_patch - 1)
                    }
                };
                // The reader reads the patch fed (unless told to read nothing).
                if !std::mem::take(&mut self.no_read) {
                    self.status.patch_read_seq = self.status.patch_read_seq.wrapping_add(1);
                    self.status.last_patch_serial = patch;
                }
            } else {
                self.feeding_left = Some(left - dt);
            }
        }
        self.status.state = match (self.started, self.feeding_left.is_some()) {
            (false, _) => LaminatorState::Idle,
            (true, true) => LaminatorState::Running,
            (true, false) if self.status.temperature_dc + 20 >= self.setpoint_dc => {
                LaminatorState::Ready
            }
            (true, false) => LaminatorState::Warming,
        };
        self.status.speed_mm_s = if self.feeding_left.is_some() {
            self.speed_setpoint
        } else {
            0
        };
    }

    fn coils(&self) -> [bool; 4] {
        [self.started, false, self.feeding_left.is_some(), false]
    }

    fn write_coil(&mut self, addr: u16, on: bool, t: LaminatorTiming) -> Result<(), ExceptionCode> {
        match (addr, on) {
            (_, false) => Ok(()), // writing 0 to a command coil is a no-op
            (reg::COIL_START, true) => {
                self.started = true;
                Ok(())
            }
            (reg::COIL_STOP, true) => {
                self.started = false;
                self.feeding_left = None;
                Ok(())
            }
            (reg::COIL_FEED, true) => {
                if self.status.state != LaminatorState::Ready {
                    return Err(ExceptionCode::ServerDeviceBusy);
                }
                self.feeding_left = Some(t.feed); // simulated time: the physics tick scales
                self.status.state = LaminatorState::Running;
                Ok(())
            }
            (reg::COIL_FAULT_RESET, true) => {
                if self.status.fault == Some(LaminatorFault::Overheat) {
                    self.status.temperature_dc = self.setpoint_dc.min(OVERHEAT_DC - 100);
                }
                self.status.fault = None;
                self.status.state = LaminatorState::Idle;
                Ok(())
            }
            _ => Err(ExceptionCode::IllegalDataAddress),
        }
    }
}

type Units = Arc<HashMap<u8, Arc<Mutex<UnitState>>>>;

/// The Modbus service: dispatches by unit address; a unit that is absent or silent gives no
/// response at all, as on a real RS-485 bus.
#[derive(Clone)]
struct BusService {
    units: Units,
    timing: LaminatorTiming,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for BusService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = ServiceFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Some(unit) = self.units.get(&req.slave).cloned() else {
            return Box::pin(async { Ok(None) });
        };
        let timing = self.timing;
        Box::pin(async move {
            let (faults, result) = {
                let Ok(mut u) = unit.lock() else {
                    return Err(ExceptionCode::ServerDeviceFailure);
                };
                let faults = u.faults;
                (faults, answer(&mut u, req.request, timing))
            };
            if faults.silent {
                return Ok(None);
            }
            if !faults.delay.is_zero() {
                tokio::time::sleep(faults.delay).await;
            }
            result.map(Some)
        })
    }
}

fn answer(
    u: &mut UnitState,
    req: Request<'static>,
    t: LaminatorTiming,
) -> Result<Response, ExceptionCode> {
    let range =
        |addr: u16, cnt: u16, len: usize| -> Result<std::ops::Range<usize>, ExceptionCode> {
            let (a, c) = (usize::from(addr), usize::from(cnt));
            if c == 0 || a + c > len {
                Err(ExceptionCode::IllegalDataAddress)
            } else {
                Ok(a..a + c)
            }
        };
    match req {
        Request::ReadInputRegisters(addr, cnt) => {
            let regs = u.status.encode();
            Ok(Response::ReadInputRegisters(
                regs[range(addr, cnt, regs.len())?].to_vec(),
            ))
        }
        Request::ReadHoldingRegisters(addr, cnt) => {
            let regs = [u.setpoint_dc, u.speed_setpoint];
            Ok(Response::ReadHoldingRegisters(
                regs[range(addr, cnt, 2)?].to_vec(),
            ))
        }
        Request::WriteSingleRegister(addr, v) => {
            match addr {
                reg::TEMP_SETPOINT => u.setpoint_dc = v,
                reg::SPEED_SETPOINT => u.speed_setpoint = v,
                _ => return Err(ExceptionCode::IllegalDataAddress),
            }
            Ok(Response::WriteSingleRegister(addr, v))
        }
        Request::ReadCoils(addr, cnt) => {
            let c = u.coils();
            Ok(Response::ReadCoils(c[range(addr, cnt, c.len())?].to_vec()))
        }
        Request::WriteSingleCoil(addr, on) => {
            u.write_coil(addr, on, t)?;
            Ok(Response::WriteSingleCoil(addr, on))
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

/// Controls of one simulated laminator unit.
#[derive(Debug, Clone)]
pub struct LaminatorUnitControl {
    /// The unit address.
    pub unit_id: u8,
    state: Arc<Mutex<UnitState>>,
}

impl LaminatorUnitControl {
    /// Sets this unit's own faults (silent, slow).
    pub fn set_faults(&self, faults: UnitFaults) {
        if let Ok(mut u) = self.state.lock() {
            u.faults = faults;
        }
    }

    /// This unit's current faults.
    #[must_use]
    pub fn faults(&self) -> UnitFaults {
        self.state.lock().map(|u| u.faults).unwrap_or_default()
    }

    /// Raises a machine fault now (jam, overheat, patch out ...). Overheat also drives the
    /// temperature over the limit, as a failed thermostat would.
    pub fn inject(&self, fault: LaminatorFault) {
        if let Ok(mut u) = self.state.lock() {
            if fault == LaminatorFault::Overheat {
                u.status.temperature_dc = OVERHEAT_DC + 50;
            }
            u.raise(fault);
        }
    }

    /// Puts `serial` in the unit, as the operator does with the patch they scanned: the next
    /// feed takes it, and the reader reads it.
    pub fn load_patch(&self, serial: &str) {
        if let Ok(mut u) = self.state.lock() {
            u.feeder = Some(serial.to_string());
        }
    }

    /// Fault injection: the next feed takes patch `serial`, whatever was put in (an insider's
    /// swap: scan one patch, feed another).
    pub fn misfeed(&self, serial: &str) {
        if let Ok(mut u) = self.state.lock() {
            u.misfeed = Some(serial.to_string());
        }
    }

    /// Fault injection: the reader takes no reading on the next feed (PATCH_READ_SEQ and
    /// LAST_PATCH_SERIAL stay as they were).
    pub fn no_read(&self) {
        if let Ok(mut u) = self.state.lock() {
            u.no_read = true;
        }
    }

    /// The status the unit would serve now.
    #[must_use]
    pub fn status(&self) -> Option<LaminatorStatus> {
        self.state.lock().ok().map(|u| u.status.clone())
    }
}

/// A running simulated bus of laminators.
#[derive(Debug)]
pub struct LaminatorBusSim {
    /// One control per unit, in the order given.
    pub units: Vec<LaminatorUnitControl>,
    /// The wire: line faults and the cable of the whole bus.
    pub wire: WireControl,
    /// Server, physics and wire tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

impl LaminatorBusSim {
    /// The stable port path of the bus.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.wire.path().to_path_buf()
    }
}

/// Starts simulated laminators with unit addresses `unit_ids` on one bus at `link_path`. Unit
/// `k` reads patch serials from `first_patch + k * 100_000` on.
///
/// # Errors
/// When a pseudo-terminal or the symlink cannot be created.
pub fn spawn_laminator_bus(
    link_path: PathBuf,
    unit_ids: &[u8],
    first_patch: u64,
    timing: LaminatorTiming,
) -> std::io::Result<LaminatorBusSim> {
    let mut map = HashMap::new();
    let mut controls = Vec::new();
    for (k, &id) in unit_ids.iter().enumerate() {
        let state = Arc::new(Mutex::new(UnitState::new(first_patch + k as u64 * 100_000)));
        map.insert(id, state.clone());
        controls.push(LaminatorUnitControl { unit_id: id, state });
    }
    let units: Units = Arc::new(map);
    // tokio-modbus's server wants a SerialStream: the device side is a pseudo-terminal pair of
    // its own, whose master the wire carries to the host-side terminal.
    let (dev_master, dev_slave) = SerialStream::pair().map_err(std::io::Error::from)?;
    let wire = spawn_wire(dev_master, link_path)?;
    let service = BusService {
        units: units.clone(),
        timing,
    };
    let server = tokio::spawn(async move {
        let server = tokio_modbus::server::rtu::Server::new(dev_slave);
        if let Err(e) = server.serve_forever(service).await {
            tracing::debug!("laminator simulator stopped: {e}");
        }
    });
    let physics = tokio::spawn(async move {
        let dt = Duration::from_millis(50);
        let mut tick = tokio::time::interval(dt);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Simulated time runs 1/factor as fast as real time.
        let sim_dt = dt.div_f64(timing.scale.factor.max(1e-6));
        loop {
            tick.tick().await;
            for u in units.values() {
                if let Ok(mut u) = u.lock() {
                    u.tick(sim_dt, timing);
                }
            }
        }
    });
    Ok(LaminatorBusSim {
        units: controls,
        wire: wire.control,
        tasks: vec![server, physics, wire.task],
    })
}
