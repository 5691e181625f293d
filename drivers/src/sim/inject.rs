//! Fault injection on a set of running simulators: the one place that turns a
//! [`FaultCommand`] into a simulator control call, for `hallctl devices sim`, `hallctl serve`
//! with simulated devices, and the demo.

use super::command::{DeviceRef, FaultCommand, LineFault};
use super::laminator::{LaminatorBusSim, LaminatorUnitControl, UnitFaults};
use super::printer::PrinterSim;
use super::wire::{LineFaults, WireControl};

/// The simulators a command can reach: `PRN-n` is `printers[n - 1]`, `LAM-n` is
/// `laminators[n - 1]` (a unit and the wire of its bus).
#[derive(Debug, Default)]
pub struct SimSet<'a> {
    /// Simulated printers, in numbering order.
    pub printers: Vec<&'a PrinterSim>,
    /// Simulated laminator units and their bus's wire, in numbering order.
    pub laminators: Vec<(&'a LaminatorUnitControl, &'a WireControl)>,
}

impl<'a> SimSet<'a> {
    /// Printers `PRN-1..` in order, and the units of one bus as `LAM-<unit id>`.
    #[must_use]
    pub fn of(printers: &'a [PrinterSim], bus: Option<&'a LaminatorBusSim>) -> Self {
        let mut laminators: Vec<(&LaminatorUnitControl, &WireControl)> = Vec::new();
        if let Some(b) = bus {
            let max = b.units.iter().map(|u| u.unit_id).max().unwrap_or(0);
            for id in 1..=max {
                if let Some(u) = b.units.iter().find(|u| u.unit_id == id) {
                    laminators.push((u, &b.wire));
                }
            }
        }
        SimSet {
            printers: printers.iter().collect(),
            laminators,
        }
    }

    /// Applies one fault-injection command.
    ///
    /// # Errors
    /// The command names a device that is not in the set.
    pub async fn apply(&self, cmd: &FaultCommand) -> Result<(), String> {
        let printer = |n: u8| {
            self.printers
                .get(usize::from(n).wrapping_sub(1))
                .copied()
                .ok_or(format!("no PRN-{n}"))
        };
        let unit = |n: u8| {
            self.laminators
                .get(usize::from(n).wrapping_sub(1))
                .copied()
                .ok_or(format!("no LAM-{n}"))
        };
        let wire = |d: DeviceRef| -> Result<&WireControl, String> {
            match d {
                DeviceRef::Printer(n) => Ok(&printer(n)?.control.wire),
                DeviceRef::Laminator(n) => Ok(unit(n)?.1),
            }
        };
        match *cmd {
            FaultCommand::Printer { n, fault } => printer(n)?.control.inject(fault).await,
            FaultCommand::Laminator { n, fault } => unit(n)?.0.inject(fault),
            FaultCommand::Plug { device, plugged } => wire(device)?.set_plugged(plugged),
            FaultCommand::Misfeed {
                device: DeviceRef::Printer(n),
                ref serial,
            } => printer(n)?.control.misfeed(serial),
            FaultCommand::Misfeed {
                device: DeviceRef::Laminator(n),
                ref serial,
            } => unit(n)?.0.misfeed(serial),
            FaultCommand::NoRead {
                device: DeviceRef::Printer(n),
            } => printer(n)?.control.no_read(),
            FaultCommand::NoRead {
                device: DeviceRef::Laminator(n),
            } => unit(n)?.0.no_read(),
            // A laminator's own silence or slowness is per unit; noise and CRC errors are on the
            // shared bus, so they hit every unit on it.
            FaultCommand::Line {
                device: DeviceRef::Laminator(n),
                fault: LineFault::Silent(on),
            } => {
                let u = unit(n)?.0;
                u.set_faults(UnitFaults {
                    silent: on,
                    ..u.faults()
                });
            }
            FaultCommand::Line {
                device: DeviceRef::Laminator(n),
                fault: LineFault::Delay(d),
            } => {
                let u = unit(n)?.0;
                u.set_faults(UnitFaults {
                    delay: d,
                    ..u.faults()
                });
            }
            FaultCommand::Line { device, fault } => {
                wire(device)?.update_faults(|f: &mut LineFaults| match fault {
                    LineFault::Silent(on) => f.silent = on,
                    LineFault::Garbage(on) => f.garbage = on,
                    LineFault::CorruptCrc(on) => f.corrupt_crc = on,
                    LineFault::Delay(d) => f.delay = d,
                })
            }
        }
        Ok(())
    }
}
