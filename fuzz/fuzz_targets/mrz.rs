//! The TD3 MRZ reader (QC reads the MRZ back from the printed booklet) on arbitrary input: never
//! panics, and its error messages never repeat what was read (the MRZ holds the holder's name
//! and date of birth, which must not reach logs or error messages).
//! The checks are `hallctl_jobs::fuzz_checks::mrz`, which `cargo test` also replays on every input kept in
//! `fuzz/regressions/mrz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallctl_jobs::fuzz_checks::mrz(data));
