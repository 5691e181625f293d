//! The printer payload parsers (LOAD_JOB, STATUS reply, events) on arbitrary bytes: never panic.
//! The checks are `hallctl_drivers::fuzz_checks::printer_payloads`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/printer_payloads/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl_drivers::fuzz_checks::printer_payloads(data));
