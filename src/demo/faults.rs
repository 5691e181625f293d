//! `--faults`: now and then something goes wrong with a simulated device, through the same
//! fault injection as `hallctl serve --sim-faults-stdin` ([`Simulators::inject`]): a printer or
//! a laminator jams, a laminator overheats, a printer's cable is pulled, a laminator stops
//! answering on its bus. A pulled cable is plugged back and a silent unit answers again after a
//! few hall-minutes; a jam or an overheat waits for someone to clear it (the autopilot's floor
//! supervisor, or you).
//!
//! The injector also narrates: it watches the line's snapshot and counts a fault as recovered
//! when the device is ready again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use super::dice::Dice;
use crate::line::LineSnapshot;
use crate::serve::Simulators;
use hallctl_jobs::scheduler::DeviceReadiness;

/// Mean hall time between two faults.
const MEAN_GAP: Duration = Duration::from_secs(12 * 60);
/// Hall time before the first one.
const FIRST: Duration = Duration::from_secs(4 * 60);
/// Hall time a cable stays pulled or a unit silent.
const OUTAGE: Duration = Duration::from_secs(2 * 60);

/// Faults injected and recovered.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Injected.
    pub injected: AtomicU64,
    /// The device was ready again afterwards.
    pub recovered: AtomicU64,
}

/// One fault to inject: the command, and the one that undoes it (for link faults).
fn choose(dice: &mut Dice, printers: &[String], laminators: &[String]) -> (String, Option<String>) {
    let p = dice.pick(printers).clone();
    let l = dice.pick(laminators).clone();
    match dice.below(100) {
        0..=34 => (format!("jam {p}"), None),
        35..=54 => (format!("jam {l}"), None),
        55..=64 => (format!("overheat {l}"), None),
        65..=84 => (format!("unplug {p}"), Some(format!("plug {p}"))),
        _ => (format!("silent {l} on"), Some(format!("silent {l} off"))),
    }
}

/// The injector: runs until stopped, then undoes the link faults it caused.
pub struct Injector {
    task: tokio::task::JoinHandle<()>,
    undo: Arc<std::sync::Mutex<Vec<String>>>,
    simulators: Arc<Simulators>,
}

impl Injector {
    /// Starts injecting into `simulators`, at hall `speed`, narrating from `line`.
    pub fn start(
        simulators: Arc<Simulators>,
        line: watch::Receiver<LineSnapshot>,
        speed: f64,
        stats: Arc<FaultStats>,
    ) -> Injector {
        let undo = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn(inject(simulators.clone(), line, speed, stats, undo.clone()));
        Injector {
            task,
            undo,
            simulators,
        }
    }

    /// Stops injecting and undoes the link faults still in force (cables back in, units
    /// answering), so that the shift can end.
    pub async fn stop(self) {
        self.task.abort();
        let pending: Vec<String> = self
            .undo
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        for cmd in pending {
            if let Err(e) = self.simulators.inject(&cmd).await {
                tracing::warn!(command = cmd, "undoing a fault failed: {e}");
            }
        }
    }
}

fn readiness(snap: &LineSnapshot, device: &str) -> Option<DeviceReadiness> {
    snap.stations
        .iter()
        .find(|s| s.device.as_ref().is_some_and(|d| d.as_str() == device))
        .map(|s| s.readiness)
}

async fn inject(
    sims: Arc<Simulators>,
    line: watch::Receiver<LineSnapshot>,
    speed: f64,
    stats: Arc<FaultStats>,
    undo: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let printers = sims.printer_order.clone();
    let laminators: Vec<String> = sims.laminator_order.iter().map(|l| l.0.clone()).collect();
    if printers.is_empty() || laminators.is_empty() {
        return;
    }
    let mut dice = Dice::from_clock(99);
    let hall = |d: Duration, dice: &mut Dice| dice.around(d).div_f64(speed);
    sleep(hall(FIRST, &mut dice).max(Duration::from_secs(2))).await;
    loop {
        let (cmd, fix) = choose(&mut dice, &printers, &laminators);
        let device = cmd
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        // One fault at a time per device: skip one that is not ready now.
        if readiness(&line.borrow(), &device) == Some(DeviceReadiness::Ready) {
            match sims.inject(&cmd).await {
                Ok(()) => {
                    stats.injected.fetch_add(1, Ordering::Relaxed);
                    println!("fault: {cmd}");
                    if let Some(fix) = &fix
                        && let Ok(mut u) = undo.lock()
                    {
                        u.push(fix.clone());
                    }
                    tokio::spawn(watch_recovery(
                        sims.clone(),
                        line.clone(),
                        device,
                        fix,
                        hall(OUTAGE, &mut dice).max(Duration::from_millis(1500)),
                        stats.clone(),
                        undo.clone(),
                    ));
                }
                Err(e) => tracing::warn!(command = cmd, "fault not injected: {e}"),
            }
        }
        sleep(
            dice.exponential(MEAN_GAP)
                .div_f64(speed)
                .max(Duration::from_secs(2)),
        )
        .await;
    }
}

/// Undoes a link fault after `outage`, then waits for the device to be ready again.
async fn watch_recovery(
    sims: Arc<Simulators>,
    mut line: watch::Receiver<LineSnapshot>,
    device: String,
    fix: Option<String>,
    outage: Duration,
    stats: Arc<FaultStats>,
    undo: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let start = Instant::now();
    // The controller notices the fault first (a jam at the next poll, a dead link after three).
    let noticed = tokio::time::timeout(
        Duration::from_secs(10),
        line.wait_for(|s| readiness(s, &device) != Some(DeviceReadiness::Ready)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if let Some(fix) = fix {
        sleep(outage.saturating_sub(start.elapsed())).await;
        let still_pending = undo
            .lock()
            .map(|mut u| match u.iter().position(|c| *c == fix) {
                Some(i) => {
                    u.remove(i);
                    true
                }
                None => false,
            })
            .unwrap_or(false);
        if still_pending && let Err(e) = sims.inject(&fix).await {
            tracing::warn!(command = fix, "undoing a fault failed: {e}");
        }
    }
    if !noticed {
        // Nothing was noticed (an idle printer's jam can wait for its next job): not counted.
        return;
    }
    if line
        .wait_for(|s| readiness(s, &device) == Some(DeviceReadiness::Ready))
        .await
        .is_ok()
    {
        stats.recovered.fetch_add(1, Ordering::Relaxed);
        println!(
            "recovered: {device} is ready again after {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}
