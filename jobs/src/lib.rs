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
//! - [`mrz`]: the ICAO 9303 TD3 machine readable zone: [`mrz::generate`] for printing,
//!   [`mrz::parse`] and [`mrz::compare_read_back`] for QC read-back, with per-field errors.
//! - [`intake`]: [`intake::validate`] turns the issuance system's [`intake::JobRequest`] into a
//!   [`job::Job`], or lists every invalid field; invalid jobs never reach the queue.
//! - [`country`]: ISO 3166-1 alpha-3 and ICAO 9303 special codes for nationality and issuing state.
#![deny(missing_docs)]

pub mod country;
pub mod fuzz_checks;
pub mod intake;
pub mod job;
pub mod mrz;
pub mod scheduler;
pub mod sim;
