//! Device I/O for hallctl: frames, codecs, links, the printer and laminator protocols, the vendor
//! bridge and the device simulators.
//!
//! This crate knows nothing of jobs, HTTP or storage (see `STYLE.md`): it speaks to devices and
//! reports what they say. The controller (`src/`) joins it to the job model.
#![deny(missing_docs)]
