//! The vendor bridge line decoder on arbitrary text: never panics.
//! The checks are `hallctl_drivers::fuzz_checks::bridge_line`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/bridge_line/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl_drivers::fuzz_checks::bridge_line(data));
