//! The laminator status-block decoder on arbitrary register values: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let regs: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let _ = hallctl_drivers::laminator::LaminatorStatus::decode(&regs);
});
