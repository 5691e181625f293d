//! The printer frame decoder on arbitrary bytes: never panics, always makes progress, and every
//! frame it returns re-encodes to the exact bytes it was decoded from.
//! The checks are `hallctl_drivers::fuzz_checks::printer_frame`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/printer_frame/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl_drivers::fuzz_checks::printer_frame(data));
