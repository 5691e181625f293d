//! The hall UI: supervisor hall view, station terminal and auditor view.
//!
//! The UI talks to the controller only over HTTP and SSE; its assets are embedded in the binary
//! so that running it needs no build step.
#![deny(missing_docs)]
