//! Fault-injection commands for a running simulator, as typed on `hallctl devices sim`'s
//! standard input (and usable by a demo autopilot): `jam PRN-1`, `silent LAM-2 on`, `unplug PRN-1`.

use std::time::Duration;

use crate::laminator::LaminatorFault;
use crate::printer::PrinterFault;

/// One fault-injection command.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultCommand {
    /// Raise a printer machine fault (`jam`, `ink-out`, `media-out`, `overheat`, `cover-open`).
    Printer {
        /// Printer number (PRN-n).
        n: u8,
        /// The fault.
        fault: PrinterFault,
    },
    /// Raise a laminator machine fault (`jam`, `overheat`, `patch-out`, `reader-error`).
    Laminator {
        /// Laminator unit (LAM-n).
        n: u8,
        /// The fault.
        fault: LaminatorFault,
    },
    /// A line fault on a device's cable (for a laminator: on its own answers where it applies).
    Line {
        /// The device.
        device: DeviceRef,
        /// The fault and its setting.
        fault: LineFault,
    },
    /// Pull the cable (`unplug`) or plug it back (`plug`).
    Plug {
        /// The device (for laminators: the whole bus).
        device: DeviceRef,
        /// Plugged in after the command.
        plugged: bool,
    },
    /// The device's next print or feed takes `serial` instead of the item put in, and its
    /// reader reads it (`misfeed DEVICE SERIAL`: scan one item, feed another).
    Misfeed {
        /// The printer or laminator.
        device: DeviceRef,
        /// The booklet or patch it takes.
        serial: String,
    },
    /// The device's reader reads nothing on its next print or feed (`no-read DEVICE`).
    NoRead {
        /// The printer or laminator.
        device: DeviceRef,
    },
}

/// Which simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRef {
    /// PRN-n.
    Printer(u8),
    /// LAM-n.
    Laminator(u8),
}

/// A line fault setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LineFault {
    /// The device stops answering (`silent … on|off`).
    Silent(bool),
    /// Noise before each chunk (`garbage … on|off`).
    Garbage(bool),
    /// A corrupted CRC in each chunk (`crc … on|off`).
    CorruptCrc(bool),
    /// Answers delayed (`slow … MS`, 0 to stop).
    Delay(Duration),
}

/// The commands, for `help`.
pub const HELP: &str = "\
jam|ink-out|media-out|overheat|cover-open PRN-n     raise a printer fault
jam|overheat|patch-out|reader-error LAM-n           raise a laminator fault
silent|garbage|crc DEVICE on|off                    line faults (DEVICE = PRN-n or LAM-n)
slow DEVICE MS                                      delay answers by MS milliseconds (0 = off)
unplug|plug DEVICE                                  pull the cable / plug it back
misfeed DEVICE SERIAL                               the next print/feed takes SERIAL, not the item put in
no-read DEVICE                                      the device's reader reads nothing on the next print/feed";

fn device(s: &str) -> Result<DeviceRef, String> {
    let up = s.to_ascii_uppercase();
    let num = |rest: &str| {
        rest.parse::<u8>()
            .map_err(|_| format!("bad device number in {s:?}"))
    };
    if let Some(rest) = up.strip_prefix("PRN-") {
        Ok(DeviceRef::Printer(num(rest)?))
    } else if let Some(rest) = up.strip_prefix("LAM-") {
        Ok(DeviceRef::Laminator(num(rest)?))
    } else {
        Err(format!("unknown device {s:?} (PRN-n or LAM-n)"))
    }
}

fn on_off(s: Option<&str>) -> Result<bool, String> {
    match s {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}

/// Parses one command line. Pure.
///
/// # Errors
/// A message naming what is wrong, for the operator of the simulator.
pub fn parse(line: &str) -> Result<FaultCommand, String> {
    parse_with(line, device)
}

/// Parses one command line, naming devices through `device` (the controller names them by
/// their configured ids, `PR-01`, and numbers them in its own order). Pure.
///
/// # Errors
/// As [`parse`], or the resolver's message for an unknown device.
pub fn parse_with(
    line: &str,
    device: impl Fn(&str) -> Result<DeviceRef, String>,
) -> Result<FaultCommand, String> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or("empty command")?;
    let dev = device(words.next().ok_or("missing device")?)?;
    let arg = words.next();
    let takes_arg = matches!(verb, "silent" | "garbage" | "crc" | "slow" | "misfeed");
    if words.next().is_some() || (!takes_arg && arg.is_some()) {
        return Err("too many words".into());
    }
    let cmd = match (verb, dev) {
        ("unplug" | "plug", device) => FaultCommand::Plug {
            device,
            plugged: verb == "plug",
        },
        ("misfeed", device) => {
            let serial = arg.ok_or("misfeed needs the serial the device takes instead")?;
            if !serial.is_ascii() || serial.len() > 16 {
                return Err("a serial is at most 16 ASCII characters".into());
            }
            FaultCommand::Misfeed {
                device,
                serial: serial.to_string(),
            }
        }
        ("no-read", device) => FaultCommand::NoRead { device },
        ("silent", device) => FaultCommand::Line {
            device,
            fault: LineFault::Silent(on_off(arg)?),
        },
        ("garbage", device) => FaultCommand::Line {
            device,
            fault: LineFault::Garbage(on_off(arg)?),
        },
        ("crc", device) => FaultCommand::Line {
            device,
            fault: LineFault::CorruptCrc(on_off(arg)?),
        },
        ("slow", device) => {
            let ms = arg
                .and_then(|a| a.parse::<u64>().ok())
                .ok_or("slow needs a delay in milliseconds")?;
            FaultCommand::Line {
                device,
                fault: LineFault::Delay(Duration::from_millis(ms)),
            }
        }
        (v, DeviceRef::Printer(n)) => {
            let fault = match v {
                "jam" => PrinterFault::Jam,
                "ink-out" => PrinterFault::InkOut,
                "media-out" => PrinterFault::MediaOut,
                "overheat" => PrinterFault::Overheat,
                "cover-open" => PrinterFault::CoverOpen,
                _ => return Err(format!("unknown printer command {v:?}")),
            };
            FaultCommand::Printer { n, fault }
        }
        (v, DeviceRef::Laminator(n)) => {
            let fault = match v {
                "jam" => LaminatorFault::Jam,
                "overheat" => LaminatorFault::Overheat,
                "patch-out" => LaminatorFault::PatchOut,
                "reader-error" => LaminatorFault::ReaderError,
                _ => return Err(format!("unknown laminator command {v:?}")),
            };
            FaultCommand::Laminator { n, fault }
        }
    };
    Ok(cmd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_command() {
        let table = [
            (
                "jam PRN-1",
                FaultCommand::Printer {
                    n: 1,
                    fault: PrinterFault::Jam,
                },
            ),
            (
                "overheat lam-4",
                FaultCommand::Laminator {
                    n: 4,
                    fault: LaminatorFault::Overheat,
                },
            ),
            (
                "silent LAM-4 on",
                FaultCommand::Line {
                    device: DeviceRef::Laminator(4),
                    fault: LineFault::Silent(true),
                },
            ),
            (
                "slow PRN-2 300",
                FaultCommand::Line {
                    device: DeviceRef::Printer(2),
                    fault: LineFault::Delay(Duration::from_millis(300)),
                },
            ),
            (
                "unplug PRN-1",
                FaultCommand::Plug {
                    device: DeviceRef::Printer(1),
                    plugged: false,
                },
            ),
            (
                "misfeed LAM-1 PT2000077",
                FaultCommand::Misfeed {
                    device: DeviceRef::Laminator(1),
                    serial: "PT2000077".into(),
                },
            ),
            (
                "no-read PRN-2",
                FaultCommand::NoRead {
                    device: DeviceRef::Printer(2),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(parse(line).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn refuses_bad_commands_with_a_reason() {
        for (line, why) in [
            ("", "empty"),
            ("jam", "missing device"),
            ("jam XYZ-1", "unknown device"),
            ("ink-out LAM-1", "unknown laminator command"),
            ("silent PRN-1 maybe", "on or off"),
            ("slow PRN-1", "milliseconds"),
            ("jam PRN-1 now", "too many"),
            ("misfeed LAM-1", "needs the serial"),
            ("no-read LAM-1 P1", "too many"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }
}
