//! The sealer: moves durable history into segment files on its own thread, so that an append
//! never waits while a file of a window of records is read, compressed, written and fsynced.
//!
//! The committer tells it the last durable record after every flush + fsync; it seals one file
//! at a time while one is due ([`Store::seal_next_segment`]), and checks for shutdown between
//! files. A failed sealing is logged and tried again after [`RETRY`] (the records stay in sled,
//! where every reader finds them, so nothing waits on it).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::store::Store;

use super::lock;

/// How long the sealer waits after a failed sealing before it tries again.
pub const RETRY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    /// The last durable record the committer reported.
    head: u64,
    shutdown: bool,
}

/// What the committer and the ledger share with the sealer thread.
#[derive(Default)]
pub struct Sealer {
    state: Mutex<State>,
    work: Condvar,
}

impl Sealer {
    /// A sealer that knows `head` is durable (the ledger's head at open: a store opened with
    /// more than a window of records outside files seals them at once).
    pub fn new(head: u64) -> Sealer {
        Sealer {
            state: Mutex::new(State {
                head,
                shutdown: false,
            }),
            work: Condvar::new(),
        }
    }

    /// Records up to `head` are durable.
    pub fn durable(&self, head: u64) {
        let mut s = lock(&self.state);
        if head > s.head {
            s.head = head;
            self.work.notify_all();
        }
    }

    /// Ends the thread after the file it is writing, if any.
    pub fn shut_down(&self) {
        lock(&self.state).shutdown = true;
        self.work.notify_all();
    }
}

/// Merges sealed files while a merge is due ([`Store::merge_next`]), until shutdown. A failed
/// merge is logged; the next sealed file tries again (the old files stay listed meanwhile).
fn merge_while_due(store: &Store, s: &Sealer) {
    let stop = || lock(&s.state).shutdown;
    while !stop() {
        match store.merge_next(&stop) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(
                    "merging sealed files failed (they stay as they are, and every reader finds their records; tried again after the next file is sealed): {e}"
                );
                return;
            }
        }
    }
}

/// The sealer thread's loop (see the module documentation).
pub fn seal_loop(store: &Store, s: &Sealer) {
    // Files left unmerged by an earlier process (or an older release) first.
    merge_while_due(store, s);
    let mut failed_at: Option<Instant> = None;
    // A head at which sealing found nothing it could do yet (the signed checkpoint that vouches
    // for the window comes with later records): wait for a later head, never spin.
    let mut idle_at: Option<u64> = None;
    loop {
        let head = {
            let mut st = lock(&s.state);
            loop {
                if st.shutdown {
                    return;
                }
                let waited = failed_at.map_or(RETRY, |t| t.elapsed());
                if waited < RETRY {
                    st = s
                        .work
                        .wait_timeout(st, RETRY - waited)
                        .map_or_else(|p| p.into_inner().0, |(g, _)| g);
                    continue;
                }
                if idle_at.is_none_or(|h| st.head > h) && store.segment_due(st.head) {
                    break st.head;
                }
                st = s.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        match store.seal_next_segment(head) {
            Ok(sealed) => {
                failed_at = None;
                idle_at = (!sealed).then_some(head);
                if sealed {
                    merge_while_due(store, s);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "sealing records into a segment file failed (they stay in the store, where every reader finds them; next try in {} s): {e}",
                    RETRY.as_secs()
                );
                failed_at = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use hallctl_jobs::job::OperatorId;

    use crate::ledger::{ItemKind, Ledger, LedgerConfig, LedgerEvent, LotId, SerialRange};

    fn lot(i: u64) -> LedgerEvent {
        LedgerEvent::LotReceived {
            lot: LotId::new(format!("L-{i}")),
            kind: ItemKind::Patch,
            supplier: "DLR".into(),
            range: SerialRange {
                prefix: format!("S{i}-"),
                first: 1,
                last: 1,
                width: 3,
            },
        }
    }

    /// With a window due but no signed checkpoint after it yet, the sealer waits for later
    /// records instead of trying again and again.
    #[test]
    fn the_sealer_waits_for_a_checkpoint_without_spinning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(
            dir.path(),
            LedgerConfig {
                seal_window: 10,
                // These tests name the windows' files.
                merge_fanout: 0,
                checkpoint_every: 1000,
                ..LedgerConfig::default()
            },
        )
        .expect("open");
        for i in 0..25 {
            ledger
                .append(OperatorId::new("vault"), lot(i))
                .expect("append");
        }
        // Long enough for a spinning loop to try thousands of times.
        std::thread::sleep(Duration::from_millis(500));
        let tries = ledger.store().seal_attempts();
        assert!(tries <= 26, "the sealer tried {tries} times for 25 appends");
        assert!(
            ledger.store().segment_files().is_empty(),
            "no checkpoint: nothing sealed"
        );
        ledger.checkpoint_now().expect("checkpoint");
        ledger
            .append(OperatorId::new("vault"), lot(99))
            .expect("append");
        let mut files = Vec::new();
        for _ in 0..600 {
            files = ledger.store().segment_files();
            if files.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            files.len(),
            2,
            "sealed once a checkpoint vouches for the windows"
        );
    }

    /// An append never waits for a segment file: with the sealing lock held by someone else
    /// (a file being written), more than a window of appends still complete; the files are
    /// sealed once the lock is free.
    #[test]
    fn appends_do_not_wait_for_sealing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = std::sync::Arc::new(
            Ledger::open(
                dir.path(),
                LedgerConfig {
                    seal_window: 10,
                    merge_fanout: 0,
                    // A window is sealed once a checkpoint vouches for it.
                    checkpoint_every: 5,
                    ..LedgerConfig::default()
                },
            )
            .expect("open"),
        );
        let held = ledger.store().hold_sealing();
        let (tx, rx) = mpsc::channel();
        let writer = {
            let ledger = std::sync::Arc::clone(&ledger);
            std::thread::spawn(move || {
                for i in 0..40 {
                    let r = ledger
                        .append(OperatorId::new("vault"), lot(i))
                        .map(|r| r.seq);
                    tx.send(r).expect("send");
                }
            })
        };
        for i in 0..40 {
            // Generous: a liveness check, not a speed target. With sealing on the append path,
            // the append that makes a file due blocks on the held lock and this times out.
            let got = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("append {i} waited for sealing"));
            got.expect("append");
        }
        writer.join().expect("writer");
        assert!(
            ledger.store().segment_files().is_empty(),
            "nothing sealed while the lock is held"
        );
        drop(held);
        let mut files = Vec::new();
        for _ in 0..600 {
            files = ledger.store().segment_files();
            if files.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            files.iter().map(|f| (f.first, f.last)).collect::<Vec<_>>(),
            [(1, 10), (11, 20), (21, 30)],
            "the sealer seals every due file once free"
        );
    }
}
