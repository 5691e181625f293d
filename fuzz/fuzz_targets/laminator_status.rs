//! The laminator status-block decoder on arbitrary register values: never panics.
//! The checks are `hallctl_drivers::fuzz_checks::laminator_status`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/laminator_status/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl_drivers::fuzz_checks::laminator_status(data));
