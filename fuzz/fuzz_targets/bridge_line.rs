//! The vendor bridge line decoder on arbitrary text: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = hallctl_drivers::bridge::decode_line(line);
    }
});
