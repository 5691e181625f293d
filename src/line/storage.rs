//! The storage watch: the line stops recording before the store fails, and says why.
//!
//! A thread of its own (an fsync that hangs on a failing disk must not stall the line) looks at
//! the store every [`PERIOD`]:
//!
//! - **Failed**: the ledger stopped confirming writes (a write or an fsync failed: disk full,
//!   I/O error). Every append is refused from then on; only a restart reopens the store.
//! - **Probe**: when no flush + fsync succeeded in the last [`PROBE_FRESH`] (an idle hall), it
//!   writes and syncs a small operational key, so that a dead disk is found within a second even
//!   when nobody is working. A failed probe is a failure, as above.
//! - **Halted**: the data directory's file system has less than `halt_below` bytes free. The
//!   ledger refuses appends ([`Ledger::halt`]) *before* the disk is full, so no patch is issued
//!   or applied that could not be recorded. The halt lifts by itself once there is
//!   `halt_below` plus a margin free again.
//! - **Low**: less than [`WARN_FACTOR`] × `halt_below` free: everything works, and the line
//!   raises a `storage_low` alert for the supervisor.
//!
//! The watch publishes a [`StorageStatus`]; the line puts it in its snapshot (the hall UI shows
//! a banner, `/health` answers 503) and raises the `storage_fault` alert, which lives in memory
//! while nothing can be recorded and is written to the ledger (raised and cleared) once the
//! halt lifts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::ledger::Ledger;

/// How often the watch looks.
pub const PERIOD: Duration = Duration::from_millis(250);
/// The probe writes only when no sync succeeded for this long.
pub const PROBE_FRESH: Duration = Duration::from_millis(750);
/// Below this many times the halt threshold, the store is *low*.
pub const WARN_FACTOR: u64 = 4;

/// How the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageState {
    /// Writing and syncing; enough space.
    #[default]
    Ok,
    /// Writing, but the disk is filling: a `storage_low` alert is open.
    Low,
    /// Not recording: the disk is almost full. Lifts by itself when space is freed.
    Halted,
    /// Not recording: a write or an fsync failed. Restart the controller once the cause is
    /// fixed.
    Failed,
}

impl StorageState {
    /// Whether the ledger refuses appends in this state.
    pub fn stopped(self) -> bool {
        matches!(self, StorageState::Halted | StorageState::Failed)
    }
}

/// What the watch saw last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageStatus {
    /// The state.
    pub state: StorageState,
    /// Why, in words, when not `ok`.
    pub detail: Option<String>,
    /// Bytes free on the data directory's file system (`None` when it cannot be read).
    pub free_bytes: Option<u64>,
    /// The line stops recording below this many bytes free (`[server] min_free_disk_mb`).
    pub halt_below_bytes: u64,
    /// Since when the store has been in this state (`None` while `ok`).
    pub since: Option<DateTime<Utc>>,
}

/// The running watch; dropping it stops the thread (within [`PERIOD`]) and waits for it.
pub struct StorageWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StorageWatch {
    /// Starts watching `ledger` (whose directory's file system is measured).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start(
        ledger: Arc<Ledger>,
        halt_below: u64,
    ) -> std::io::Result<(StorageWatch, watch::Receiver<StorageStatus>)> {
        let dir = ledger.dir().to_path_buf();
        let (tx, rx) = watch::channel(StorageStatus {
            halt_below_bytes: halt_below,
            free_bytes: free_bytes(&dir),
            ..StorageStatus::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("storage-watch".into())
            .spawn(move || {
                let mut w = Watcher {
                    ledger,
                    dir,
                    halt_below,
                    tx,
                };
                while !stopped.load(Ordering::Relaxed) {
                    w.look();
                    std::thread::park_timeout(PERIOD);
                }
            })?;
        Ok((
            StorageWatch {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }
}

impl Drop for StorageWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

struct Watcher {
    ledger: Arc<Ledger>,
    dir: PathBuf,
    halt_below: u64,
    tx: watch::Sender<StorageStatus>,
}

impl Watcher {
    fn look(&mut self) {
        let free = free_bytes(&self.dir);
        let (state, detail) = self.judge(free);
        self.tx.send_if_modified(|s| {
            let changed = s.state != state || s.detail != detail;
            // Logged when the state changes, not each time the free space in its detail does.
            if s.state != state {
                match state {
                    StorageState::Ok => tracing::info!("storage: ok"),
                    _ => tracing::warn!(
                        "storage: {}: {}",
                        serde_json::to_value(state)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        detail.as_deref().unwrap_or_default()
                    ),
                }
                s.since = (state != StorageState::Ok).then(Utc::now);
            }
            if changed {
                s.state = state;
                s.detail = detail;
            }
            // Free space alone is not news: it is read with the snapshot's other figures.
            s.free_bytes = free;
            changed
        });
    }

    fn judge(&self, free: Option<u64>) -> (StorageState, Option<String>) {
        if let Some(why) = self.ledger.failure() {
            return (StorageState::Failed, Some(failed(&why)));
        }
        if let Err(e) = self.ledger.probe(PROBE_FRESH) {
            return (StorageState::Failed, Some(failed(&e.to_string())));
        }
        let mb = |b: u64| b / (1024 * 1024);
        let Some(free) = free else {
            return (StorageState::Ok, None);
        };
        // Once halted, recording resumes only with a margin above the threshold, so that the
        // line does not flap on and off at the edge.
        let margin = (self.halt_below / 4).max(16 * 1024 * 1024);
        let halted = self.tx.borrow().state == StorageState::Halted;
        let resume_at = if halted {
            self.halt_below.saturating_add(margin)
        } else {
            self.halt_below
        };
        if free < resume_at {
            let why = format!(
                "disk almost full: {} MB free on the ledger's file system ({}), the line stops \
                 recording below {} MB; free space to resume",
                mb(free),
                self.dir.display(),
                mb(self.halt_below)
            );
            self.ledger.halt(&why);
            return (StorageState::Halted, Some(why));
        }
        if halted {
            self.ledger.resume();
        }
        if free < self.halt_below.saturating_mul(WARN_FACTOR) {
            return (
                StorageState::Low,
                Some(format!(
                    "disk filling: {} MB free on the ledger's file system, the line stops \
                     recording below {} MB",
                    mb(free),
                    mb(self.halt_below)
                )),
            );
        }
        (StorageState::Ok, None)
    }
}

fn failed(why: &str) -> String {
    format!(
        "the store stopped confirming writes ({why}); nothing more is recorded: fix the cause \
         (free space, replace the disk) and restart the controller"
    )
}

/// Bytes available to the controller on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    fs2::available_space(dir).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{LedgerConfig, LedgerError, LedgerEvent, LotId, SerialRange};
    use hallctl_jobs::job::OperatorId;

    fn lot(n: u32) -> LedgerEvent {
        LedgerEvent::LotReceived {
            lot: LotId::new(format!("L-{n}")),
            kind: crate::ledger::ItemKind::Patch,
            supplier: "DLR".into(),
            range: SerialRange {
                prefix: format!("P{n}-"),
                first: 1,
                last: 1,
                width: 3,
            },
        }
    }

    /// Polls `cond` until it holds; panics naming `what` after a minute (a ceiling for a busy
    /// machine, not a figure: the watch looks every [`PERIOD`]).
    fn poll(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn until(rx: &mut watch::Receiver<StorageStatus>, want: StorageState) -> StorageStatus {
        poll(&format!("the watch to say {want:?}"), || {
            rx.borrow().state == want
        });
        rx.borrow().clone()
    }

    #[test]
    fn below_the_threshold_the_ledger_refuses_appends_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Arc::new(Ledger::open(dir.path(), LedgerConfig::default()).expect("open"));
        let me = OperatorId::new("S1");
        ledger.append(me.clone(), lot(1)).expect("before the watch");
        // No disk has this much free: the watch halts at once.
        let (watch, mut rx) = StorageWatch::start(ledger.clone(), u64::MAX / 2).expect("watch");
        let st = until(&mut rx, StorageState::Halted);
        assert!(
            st.detail
                .as_deref()
                .unwrap_or_default()
                .contains("disk almost full"),
            "{st:?}"
        );
        assert!(st.since.is_some() && st.free_bytes.is_some(), "{st:?}");
        let head = ledger.head();
        match ledger.append(me.clone(), lot(2)) {
            Err(LedgerError::Halted(why)) => assert!(why.contains("MB free"), "{why}"),
            other => panic!("an append while halted: {other:?}"),
        }
        assert_eq!(ledger.head(), head, "nothing was written");
        assert!(ledger.unavailable().is_some() && ledger.failure().is_none());
        // Stopping the watch does not lift the halt by itself: only the watch does.
        drop(watch);
        assert!(ledger.unavailable().is_some());
        ledger.resume();
        ledger.append(me, lot(3)).expect("after the halt lifted");
    }

    #[test]
    fn with_room_an_idle_store_is_probed_and_stays_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Arc::new(Ledger::open(dir.path(), LedgerConfig::default()).expect("open"));
        let (_watch, mut rx) = StorageWatch::start(ledger.clone(), 0).expect("watch");
        // Nothing is written: after PROBE_FRESH the watch probes the store with a write.
        poll("the idle store to be probed with a write", || {
            ledger.store().aux_get(b"probe").expect("read").is_some()
        });
        let st = until(&mut rx, StorageState::Ok);
        assert_eq!(st.detail, None);
        assert!(ledger.unavailable().is_none());
    }
}
