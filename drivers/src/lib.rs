//! Device I/O for hallctl: frames, codecs, links, the printer and laminator protocols, the vendor
//! bridge and the device simulators.
//!
//! This crate knows nothing of jobs, HTTP or storage (see `STYLE.md`): it speaks to devices and
//! reports what they say. The controller (`src/`) joins it to the job model.
//!
//! # Codemap
//! - [`frame`]: the printer's binary frame as pure functions (encode, decode, CRC-16).
//! - [`codec`]: a `tokio_util` codec over [`frame`].
//! - [`link`]: request/reply over any `AsyncRead + AsyncWrite`: sequence numbers, timeouts,
//!   bounded retries, counters.
//! - [`port`]: opening serial ports (exclusive), reopening with jittered backoff, link states.
//! - [`printer`]: the printer protocol and its driver task + cloneable handle.
//! - [`laminator`]: the Modbus RTU register map and the bus task (several units on one RS-485 bus).
//! - [`bridge`]: the JSON-lines vendor bridge protocol over a child process or TCP.
//! - [`sim`]: printer and laminator simulators on pseudo-terminals, with fault injection.
//!
//! # Ownership
//! One task owns each port or bus. Everyone else holds a cheap `Clone` handle that sends a
//! request over a bounded `mpsc` and awaits a `oneshot` reply; the task also publishes the
//! device's state on a `watch` channel and its events on a `broadcast`.
#![deny(missing_docs)]

pub mod bridge;
pub mod codec;
pub mod error;
pub mod frame;
pub mod fuzz_checks;
pub mod laminator;
pub mod link;
pub mod port;
pub mod printer;
pub mod sim;

pub use error::{DriverError, InvalidFrame, Result};
