//! What the fuzz targets check, as plain functions: `fuzz/fuzz_targets/*.rs` call them under
//! libFuzzer, and `tests/fuzz_regressions.rs` replays every input kept in
//! `fuzz/regressions/<target>/` through them in a normal `cargo test`, so that a crash found
//! once stays fixed. Each panics on a broken property; a decoder may refuse anything.

use crate::frame::{Decoded, decode, decode_all};
use crate::printer::{JobData, PrinterEvent, PrinterStatus};

/// `printer_frame`: a decoded frame re-encodes to the bytes it consumed; an invalid prefix
/// discards at least one byte and no more than it has.
pub fn printer_frame(data: &[u8]) {
    match decode(data) {
        Decoded::Frame { frame, consumed } => {
            assert!(consumed <= data.len());
            assert_eq!(
                frame.encode().expect("decoded frames fit"),
                &data[..consumed]
            );
        }
        Decoded::Invalid { discard, .. } => assert!(discard >= 1 && discard <= data.len()),
        Decoded::Incomplete => {}
    }
    let _ = decode_all(data);
}

/// `printer_payloads`: job data that parses re-encodes to the same bytes; status replies and
/// events decode or are refused.
pub fn printer_payloads(data: &[u8]) {
    if let Ok(job) = JobData::decode(data) {
        assert_eq!(job.encode().ok().as_deref(), Some(data));
    }
    let _ = PrinterStatus::decode_reply(data);
    if let Some((&cmd, rest)) = data.split_first() {
        let _ = PrinterEvent::decode(cmd, rest);
    }
}

/// `bridge_line`: any UTF-8 line decodes or is refused.
pub fn bridge_line(data: &[u8]) {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = crate::bridge::decode_line(line);
    }
}

/// `laminator_status`: any register block (big-endian pairs) decodes or is refused.
pub fn laminator_status(data: &[u8]) {
    let regs: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let _ = crate::laminator::LaminatorStatus::decode(&regs);
}
