//! Opening ports, reopening them with jittered backoff, and the link state a device task reports.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

/// Something a device task can (re)open: a serial port, a pseudo-terminal, a test stream.
pub trait Connector: Send + 'static {
    /// The byte stream it opens.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Opens the stream.
    fn connect(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;

    /// A name for logs and `hallctl devices` output (a port path, an address).
    fn describe(&self) -> String;
}

/// Opens a serial port (or a pseudo-terminal, or a symlink to either) by path, exclusively.
#[derive(Debug, Clone)]
pub struct SerialConnector {
    /// Path of the port, e.g. `/dev/ttyUSB0` or a simulator's symlink.
    pub path: PathBuf,
    /// Line speed.
    pub baud: u32,
}

impl SerialConnector {
    /// A connector for `path` at `baud`.
    pub fn new(path: impl Into<PathBuf>, baud: u32) -> Self {
        SerialConnector {
            path: path.into(),
            baud,
        }
    }
}

impl Connector for SerialConnector {
    type Io = SerialStream;

    async fn connect(&mut self) -> io::Result<SerialStream> {
        let path = self.path.to_string_lossy().into_owned();
        // tokio-serial opens exclusively by default (TIOCEXCL + flock on Unix): a second program
        // on the same port would interleave its frames with ours.
        let port = tokio_serial::new(path, self.baud)
            .timeout(Duration::from_millis(50))
            .open_native_async()
            .map_err(io::Error::from)?;
        // Bytes left in the input queue from before the reopen belong to requests nobody waits for.
        let _ = port.clear(tokio_serial::ClearBuffer::Input);
        Ok(port)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Exponential backoff with jitter for reopening a port or probing a silent device.
///
/// Jitter (each delay drawn uniformly from half to all of the nominal delay) keeps ten devices
/// that lost power together from retrying in lockstep. The cap bounds how long a device that came
/// back can wait before the next attempt: with the default 800 ms cap plus one poll, a returning
/// device is ready well within the 2 s the brief asks for.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(50), Duration::from_millis(800))
    }
}

impl Backoff {
    /// Backoff starting at `base`, doubling per attempt, never above `cap`.
    #[must_use]
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        half + nominal
            .saturating_sub(half)
            .mul_f64(rand::rng().random::<f64>())
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How a device task watches its device.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Time between status polls while the device is up.
    pub interval: Duration,
    /// Consecutive missed polls after which the device is offline (the brief says 3).
    pub missed_polls_for_offline: u32,
    /// Reopen backoff and probe pacing while the device is down.
    pub backoff_base: Duration,
    /// Upper bound of the backoff.
    pub backoff_cap: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_millis(200),
            missed_polls_for_offline: 3,
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_millis(800),
        }
    }
}

/// Where a device's link stands, as its task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The port is not open (never opened, or closed after a loss); the task is (re)opening it.
    Opening,
    /// The port is open but no exchange has succeeded yet: not ready.
    Probing,
    /// The last exchange succeeded.
    Ready,
    /// Too many polls were missed, or the link failed: the device is offline.
    Offline,
    /// The task was shut down.
    Stopped,
}

/// What happened on a link, as its port task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// The port was opened.
    Opened,
    /// An exchange with the device succeeded.
    ExchangeOk,
    /// A status poll got no valid answer; `consecutive` in a row, offline from `limit` on.
    PollMissed {
        /// Missed polls in a row, this one included.
        consecutive: u32,
        /// The threshold ([`PollConfig::missed_polls_for_offline`]).
        limit: u32,
    },
    /// The link failed (EOF, EIO) or the port could not be kept.
    Lost,
    /// The task is shutting down.
    Stopped,
}

impl LinkState {
    /// Only a device whose last exchange succeeded takes commands.
    #[must_use]
    pub fn is_ready(self) -> bool {
        self == LinkState::Ready
    }

    /// The state after `event`. Pure: the port tasks call it for every transition, so the rules
    /// live here and are tested as a table.
    ///
    /// Opening a port never makes a device ready (only a successful exchange does), and an
    /// offline device stays offline through a reopen until it answers.
    #[must_use]
    pub fn apply(self, event: LinkEvent) -> LinkState {
        use LinkState::*;
        match (self, event) {
            (Stopped, _) | (_, LinkEvent::Stopped) => Stopped,
            (_, LinkEvent::ExchangeOk) => Ready,
            (_, LinkEvent::Lost) => Offline,
            (_, LinkEvent::PollMissed { consecutive, limit }) if consecutive >= limit => Offline,
            (state, LinkEvent::PollMissed { .. }) => state,
            (Opening, LinkEvent::Opened) => Probing,
            (state, LinkEvent::Opened) => state,
        }
    }

    /// Moves `self` to the state after `event` in place, counting a fresh loss of the link in
    /// `counters`. Returns whether the state changed and whether the link was just lost (for the
    /// caller's log line). The one place both drivers' tasks track their link.
    pub fn advance(
        &mut self,
        event: LinkEvent,
        counters: &crate::link::LinkCounters,
    ) -> (bool, bool) {
        let next = self.apply(event);
        let lost = next == LinkState::Offline && *self != LinkState::Offline;
        if lost {
            counters.link_losses();
        }
        let changed = next != *self;
        *self = next;
        (changed, lost)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn link_state_transitions_table() {
        use LinkEvent::{ExchangeOk, Lost, Opened, PollMissed};
        use LinkState::{Offline, Opening, Probing, Ready};
        let missed = |n| PollMissed {
            consecutive: n,
            limit: 3,
        };
        let table = [
            (Opening, Opened, Probing),
            (Probing, ExchangeOk, Ready),
            (Opening, ExchangeOk, Ready),
            (Ready, missed(1), Ready),
            (Ready, missed(2), Ready),
            (Ready, missed(3), Offline),
            (Probing, missed(3), Offline),
            (Ready, Lost, Offline),
            // A reopened port does not make an offline device ready: only an answer does.
            (Offline, Opened, Offline),
            (Offline, missed(7), Offline),
            (Offline, ExchangeOk, Ready),
            (Ready, LinkEvent::Stopped, LinkState::Stopped),
            (LinkState::Stopped, ExchangeOk, LinkState::Stopped),
        ];
        for (from, event, to) in table {
            assert_eq!(from.apply(event), to, "{from:?} + {event:?}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_respects_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let nominal = [100u64, 200, 400, 800, 800, 800];
        for n in nominal {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(n / 2) && d <= Duration::from_millis(n),
                "{d:?} for nominal {n}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
