//! What the drivers' integration tests share: waits for events, each bounded by one generous
//! ceiling.
//!
//! A test here waits for the event it needs (a watched view, a message, a counter reaching a
//! value), never for a fixed time: on a busy machine everything takes longer, and the ceiling
//! only turns a test that would otherwise hang into a failure. Timing figures are measured by
//! `examples/figures.rs`, not asserted by tests.

// Each test binary uses a part of this.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// The ceiling of every wait for an event.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A request timeout for a device or bridge that is expected to answer: seconds, where a healthy
/// answer takes milliseconds, so that a busy machine never makes it miss. The tests of timeouts
/// themselves use answers far beyond the timeout they test (or none at all).
pub const GENEROUS: Duration = Duration::from_secs(2);

/// Awaits `fut`; panics naming `what` when it has not completed within [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Waits until the watched value satisfies `pred`; returns that value.
pub async fn wait_for<T: Clone>(
    rx: &mut watch::Receiver<T>,
    what: &str,
    pred: impl Fn(&T) -> bool,
) -> T {
    match within(what, rx.wait_for(|v| pred(v))).await {
        Ok(v) => v.clone(),
        Err(_) => panic!("{what}: the task stopped"),
    }
}

/// Polls `cond` (every 10 ms) until it holds.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
