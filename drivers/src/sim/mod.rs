//! Device simulators, first-class code: the tests, the demo and UI work all run against them.
//!
//! Each simulated device sits behind a [`wire::SimWire`]: the device's bytes are carried to a
//! fresh pseudo-terminal whose slave side is published under a stable symlink, so the driver
//! opens it exactly as it would open `/dev/ttyUSB0` and the real serial code path runs. The wire
//! injects the faults of the line itself (garbage bytes, CRC errors, a silent or slow device,
//! link loss and return); the device simulators inject the faults of the machine (jam, ink out,
//! overheat).

pub mod command;
pub mod inject;
pub mod laminator;
pub mod printer;
pub mod wire;

use std::time::Duration;

/// How fast simulated time runs: every physical duration of a simulator is multiplied by
/// `factor` (1.0 = realistic, 0.01 = a hundred times faster, for tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale {
    /// The multiplier.
    pub factor: f64,
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale { factor: 1.0 }
    }
}

impl TimeScale {
    /// A scale that runs `factor` times as long as reality (so below 1 is faster).
    #[must_use]
    pub fn new(factor: f64) -> Self {
        TimeScale { factor }
    }

    /// `real` scaled.
    #[must_use]
    pub fn scale(self, real: Duration) -> Duration {
        real.mul_f64(self.factor.max(0.0))
    }
}
