//! hallctl's pure domain: the job model, ICAO 9303 MRZ, intake validation, the scheduler and the
//! discrete-event line simulator.
//!
//! Nothing in this crate does I/O, reads a clock or spawns a task: every function takes what it
//! needs as arguments, so the same inputs always give the same outputs. The controller (`src/`)
//! supplies time and persistence; the simulator supplies virtual time.
//!
//! # Codemap
//! - [`job`]: the job, its lifecycle state machine ([`job::JobState::apply`]) and the stored record.
//! - [`scheduler`]: which queued step goes to which station next, and why (pure, `O(log n)`).
//! - [`sim`]: the discrete-event line simulator that plays a day on the same scheduler, side by side
//!   with a FIFO baseline.
#![deny(missing_docs)]

pub mod job;
pub mod scheduler;
pub mod sim;
