//! The hall UI: supervisor hall view, station terminal and auditor view.
//!
//! The UI talks to the controller only over HTTP and SSE; its assets are embedded in the binary
//! so that running it needs no build step.
#![deny(missing_docs)]

/// `hallctl central`'s national overview page: one row per hall, refreshed from `/api/halls`
/// every two seconds. Self-contained (no external scripts, styles or fonts).
pub const CENTRAL_HTML: &str = include_str!("central.html");
