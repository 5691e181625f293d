//! The printer frame decoder on arbitrary bytes: never panics, always makes progress, and every
//! frame it returns re-encodes to the exact bytes it was decoded from.
#![no_main]

use hallctl_drivers::frame::{Decoded, decode, decode_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Decoded::Frame { frame, consumed } => {
            assert!(consumed <= data.len());
            assert_eq!(frame.encode().expect("decoded frames fit"), &data[..consumed]);
        }
        Decoded::Invalid { discard, .. } => assert!(discard >= 1 && discard <= data.len()),
        Decoded::Incomplete => {}
    }
    let _ = decode_all(data);
});
