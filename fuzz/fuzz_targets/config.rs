//! The configuration loader on arbitrary text: never panics; an error names a line inside the
//! text; an accepted configuration keeps the rules that stations and buses depend on.
//! The checks are `hallctl::config::fuzz_check::check`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/config/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl::config::fuzz_check::check(data));
