//! The printer payload parsers (LOAD_JOB, STATUS reply, events) on arbitrary bytes: never panic.
#![no_main]

use hallctl_drivers::printer::{JobData, PrinterEvent, PrinterStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = JobData::decode(data) {
        // What parses re-encodes to the same bytes.
        assert_eq!(job.encode().ok().as_deref(), Some(data));
    }
    let _ = PrinterStatus::decode_reply(data);
    if let Some((&cmd, rest)) = data.split_first() {
        let _ = PrinterEvent::decode(cmd, rest);
    }
});
