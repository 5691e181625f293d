//! The one module that knows sled: durable, crash-safe storage for the ledger.
//!
//! # Layout
//! One sled tree, `ledger`, split into four keyspaces by a one-byte prefix:
//! - `j`: the journal's tail: sequence number (u64, big-endian) → stored record (link +
//!   canonical body);
//! - `k`: the journal's sealed part: sequence number of a chunk's first record → a chunk of
//!   [`CHUNK`] consecutive records (see *Chunks* below);
//! - `s`: derived custody state (items, sessions, open-session pointers), a cache of the
//!   journal that makes invariant checks O(1);
//! - `x`: secondary index keys (value empty) for indexed queries;
//! - `c`: sequence number → signed checkpoint;
//! - `a`: the controller's operational state (jobs, users, devices), written only together with
//!   the ledger record that accounts for the change, in the same batch and the same fsync; and
//!   consumers' cursors (`cursor/<name>`: how far the MQTT outbox got through the journal),
//!   which account for no change and are written on their own.
//!
//! - `w`: the write-ahead log's bookkeeping (`w applied`: the last frame sled holds, see
//!   *Durability*);
//! - `g`: the catalog of sealed segment files; `y`: each record's postings, `z` and `v`: the
//!   settled states by key and by record (what sealing moves out of sled, see
//!   docs/ledger.md, issue 18);
//!
//! and a separate `meta` tree for small settings.
//!
//! A [`WriteSet`] is applied as one sled batch on that one tree, which sled applies atomically:
//! the journal and its derived state and indexes never disagree after a crash. (One tree rather
//! than four trees in a sled transaction: a transaction reads every key it writes for conflict
//! detection and cost three times as much per record in the benchmark.)
//!
//! # Chunks
//! A record is written under its own key in `j`, in the batch of the append that makes it. Once
//! [`CHUNK`] records sit in `j`, the oldest [`CHUNK`] of them are moved, bytes unchanged, into one
//! `k` value (`seq ‖ length ‖ stored record`, repeated) by a batch of their own, which sled applies
//! atomically like every other: after a crash a record is either still in `j` or in its chunk,
//! never in neither. Sealing changes where the bytes are, never what they are: the chain is over
//! the records, not the chunks. It makes the journal 16 times fewer sled items: a full
//! verification of tens of millions of records reads a few hundred thousand values, densely
//! packed, instead of one small value per record scattered over sled's log.
//!
//! A reader that walks the journal while a chunk is sealed can find a record missing from `j`
//! that has just moved into `k`; the walk notices that sealing advanced and reads the chunk.
//!
//! # Durability: the write-ahead log
//! The durability point of a commit is one `pwrite` and one `fdatasync` of the store's own
//! write-ahead log ([`wal`]), as in SQLite's WAL mode with `synchronous=FULL`; sled is flushed
//! lazily, by a background thread about once a second or after 8 MiB of frames. (sled's `flush`
//! on Linux only calls `sync_file_range`, sled issue #1452, so a sled flush here is always
//! followed by an `fdatasync` of each of its data files, `db` and any blob files.)
//!
//! - [`Store::commit`] applies the write set to sled as one atomic batch (not durable) and
//!   appends one frame to the log's buffer: its number (one more than the last), the open's
//!   epoch and the batch's operations with absolute values. The same batch sets the key
//!   `w applied` to the frame's number and epoch. Commits are numbered and applied in one order
//!   (under one lock), so `w applied` only grows.
//! - [`Store::sync`] writes the buffered frames and fdatasyncs the log file: everything
//!   committed before it started is durable when it returns.
//! - sled recovers a prefix of its atomic batches, so after a crash `w applied` = A says exactly
//!   which frames sled holds. Open replays, in order, every intact frame numbered A+1, A+2, ...
//!   (each as one sled batch that also sets `w applied`), stops at the first number with no
//!   intact frame of an epoch at least as new as the previous one, flushes sled, stores a new
//!   epoch and goes on. The result is exactly sled's prefix followed by the log's durable
//!   frames: every synced commit, never a mixture. If sled holds more than the log (A beyond the
//!   log's last frame), those commits were never acknowledged but are whole: they stay.
//!   Replaying is idempotent: a crash during it replays again from the new A.
//! - A file of the log is reused (from its start) only once sled holds all its frames durably;
//!   if it does not when the active file is full, the sync waits for a sled flush.
//!
//! Everything else that writes sled keeps this invariant:
//! - chunk and segment sealing move records that committed batches already hold; a sealing
//!   batch comes after the batches of its records in sled's order, so if sled kept it, it kept
//!   them (and A covers their frames). Lost in a crash, a chunk batch is redone by the next
//!   commit; a segment batch lost leaves an unlisted file that open deletes.
//! - [`Store::meta_set`] (the `meta` tree is not in the log) and the tamper hooks flush sled
//!   before they return: durable without frames, and never replayed over.
//! - A commit too large for a log file is made durable by a sled flush before the next commit
//!   is numbered.
//!
//! The directories are fsynced when created or when a file appears. The ledger acknowledges a
//! record only after a `sync` that started after the record was committed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};
use thiserror::Error;

use crate::ledger::chain::{self, Link};

pub mod catalog;
pub mod compact;
pub mod lock;
pub mod segment;
pub mod table;
pub mod wal;
use catalog::{Sealed, Snapshot};
pub use lock::LockHolder;
use segment::{SegmentError, SegmentReader, SegmentWriter};
use table::{TableError, TableReader, TableWriter};

/// Moving sealed history out of sled into segment files (issue 18, design §2.2).
#[derive(Clone)]
pub struct Sealing {
    /// Once more than this many records are not in a segment file, the oldest `window` of them
    /// (a run ending at a multiple of `window`) are written into one.
    pub window: u64,
    /// The key that signs each file's seal: the ledger's checkpoint key.
    pub key: SigningKey,
    /// Index tags read by ranges only (the time index): kept out of the tables' bloom filters.
    pub range_only_tags: Vec<Vec<u8>>,
    /// How many files of one level are merged into one of the next (see
    /// [`catalog::due_merge`]); below 2: files are never merged.
    pub fanout: u64,
    /// The period of a record, from its body (a month of the ledger's records): a closed
    /// period's files merge into one; `None`: periods are not known.
    pub period_of: Option<PeriodOf>,
    /// Free space a merge must leave on the store's file system, beyond the copy it writes
    /// (the line halts below its own threshold: a merge never takes the disk there).
    pub reserve_bytes: u64,
}

/// The period a record belongs to, from its body (`None` when it cannot tell).
pub type PeriodOf = Arc<dyn Fn(&[u8]) -> Option<u64> + Send + Sync>;

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Sealing")
            .field("window", &self.window)
            .field("fanout", &self.fanout)
            .finish_non_exhaustive()
    }
}

/// A sealed file as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// Its first record.
    pub first: u64,
    /// Its last record.
    pub last: u64,
    /// The link before its first record.
    pub prev_link: Link,
    /// Its last record's link.
    pub last_link: Link,
}

/// What a check of a sealed file found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartProblem {
    /// The file.
    pub file: PathBuf,
    /// True when the file is not there at all.
    pub missing: bool,
    /// What is wrong (names the file and the part).
    pub what: String,
}

/// How long an open waits for this process's own store of the same directory to let go of its
/// lock (sled's background threads hold it for a moment after the drop, longer on a loaded
/// machine), and how long a drop waits for that release. A lock of another live process is
/// never waited for.
const OWN_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether sled refused to open because its file lock is taken. sled 0.34.7 reports this only
/// as text (`Error::Io` of kind `Other`, "could not acquire lock on ..."), not as `WouldBlock`.
fn is_lock_refusal(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// Opens sled. A lock held by this very process (a store of the same directory that is being
/// dropped, whose background threads still hold the file) is waited for, up to
/// [`OWN_RELEASE_WAIT`]; a lock held by another live process fails at once with
/// [`StoreError::Locked`] naming it. sled's raw lock message never reaches the caller.
fn open_waiting_for_own_release(config: &sled::Config, dir: &Path) -> Result<sled::Db, StoreError> {
    let db_file = dir.join("db");
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_refusal(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let holder = lock::holder_pid(&db_file);
        let ours_or_gone = match holder {
            Some(pid) => pid == std::process::id() || !lock::alive(pid),
            // Released between sled's try and our look: try again.
            None => true,
        };
        if !ours_or_gone || started.elapsed() >= OWN_RELEASE_WAIT {
            return Err(StoreError::Locked {
                path: dir.to_path_buf(),
                holder: holder.map(|pid| LockHolder {
                    pid,
                    command: lock::command_line(pid),
                }),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// A storage failure. The message names what failed; it never contains record contents.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("storage error: {0}")]
    Sled(String),
    /// Another process holds the store's lock (sled keeps one exclusive `flock` on its `db`
    /// file while a store is open): a running controller, or another console command.
    #[error("{} is in use by {}", .path.display(), .holder.as_ref().map_or_else(|| "another process".to_string(), ToString::to_string))]
    Locked {
        /// The store's directory.
        path: PathBuf,
        /// Who holds it, when the kernel's lock table names a live process.
        holder: Option<LockHolder>,
    },
    /// A sealed segment file cannot be read or is damaged (the message names the file).
    #[error("{0}")]
    Segment(#[from] SegmentError),
    /// A sealed index table cannot be read or is damaged (the message names the file).
    #[error("{0}")]
    Table(#[from] TableError),
    /// A file of the catalog of sealed segments is missing or is not the file the catalog
    /// describes.
    #[error("{}: {what}", .file.display())]
    Catalog {
        /// The file concerned.
        file: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A file system operation (fsync, create) failed.
    #[error("file system error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// An index entry: key and value.
pub type IndexEntry = (Vec<u8>, Vec<u8>);

/// Writes for one atomic commit, across all trees.
#[derive(Debug, Default)]
pub struct WriteSet {
    journal: Vec<(u64, Vec<u8>)>,
    state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    index: Vec<IndexEntry>,
    postings: Vec<IndexEntry>,
    settled: Vec<(Vec<u8>, Vec<u8>)>,
    checkpoints: Vec<(u64, Vec<u8>)>,
    aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteSet {
    /// Adds a journal record under its sequence number.
    pub fn journal(&mut self, seq: u64, value: Vec<u8>) {
        self.journal.push((seq, value));
    }
    /// Sets (or, with `None`, removes) a state entry.
    pub fn state(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.state.push((key, value));
    }
    /// Adds an index key (empty value).
    pub fn index(&mut self, key: Vec<u8>) {
        self.index.push((key, Vec::new()));
    }
    /// Adds an index key with a value: a compact copy of what a query needs from the record,
    /// so that the query does not have to read and decode the record itself.
    pub fn index_with(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.index.push((key, value));
    }
    /// Sets a state entry whose value is settled (an item used or destroyed, a closed session):
    /// unless written again before, it leaves sled with this commit's window, into the
    /// segment's state table, and is read from there. A settled key must never be removed
    /// (a later value is written with [`WriteSet::state`] or again as settled).
    pub fn state_settled(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.settled.push((key, value));
    }
    /// Adds a posting: an index key that ends with the sequence number of the record it names
    /// (`prefix ‖ seq u64 BE`). Unlike [`WriteSet::index`] keys, postings leave sled with their
    /// record's window, into the segment's index table; queries read both alike.
    pub fn posting(&mut self, key: Vec<u8>) {
        self.postings.push((key, Vec::new()));
    }
    /// As [`WriteSet::posting`], with a value.
    pub fn posting_with(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.postings.push((key, value));
    }
    /// Adds a signed checkpoint.
    pub fn checkpoint(&mut self, seq: u64, value: Vec<u8>) {
        self.checkpoints.push((seq, value));
    }
    /// Sets (or, with `None`, removes) an operational state entry.
    pub fn aux(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.aux.push((key, value));
    }
    /// True when nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
            && self.state.is_empty()
            && self.index.is_empty()
            && self.postings.is_empty()
            && self.settled.is_empty()
            && self.checkpoints.is_empty()
            && self.aux.is_empty()
    }
}

/// How the write-ahead log is run (tests shrink the files or stop the lazy sled flush).
#[derive(Debug, Clone)]
struct WalOptions {
    /// Capacity of each log file.
    file_bytes: u64,
    /// Whether a background thread flushes sled now and then (off: only when needed).
    lazy_flush: bool,
    /// Test hook: after each sled flush, copy sled's files here (what a crash would leave of
    /// sled from then on, until the next flush).
    #[cfg(test)]
    sled_copy: Option<PathBuf>,
    /// When an open rebuilds sled's file (stores that seal only).
    compact: compact::Policy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            file_bytes: wal::FILE_BYTES,
            lazy_flush: true,
            compact: compact::Policy::default(),
            #[cfg(test)]
            sled_copy: None,
        }
    }
}

/// The background sled flush runs after this many bytes of frames (or a second).
const FLUSH_AFTER_BYTES: u64 = 8 << 20;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The key (in the `ledger` tree) of the last frame sled has applied: number ‖ epoch.
const WAL_APPLIED: &[u8] = b"wapplied";
/// The `meta` key of the last open's epoch.
const WAL_EPOCH: &str = "wal/epoch";

/// The period of sled's own flusher thread, which also runs sled's segment cleaner for up to
/// half of it after each flush.
const SLED_FLUSH_MS: u64 = 500;

fn marker(number: u64, epoch: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&number.to_be_bytes());
    m[8..].copy_from_slice(&epoch.to_be_bytes());
    m
}

/// What the store and its background flusher share.
struct Shared {
    db: sled::Db,
    dir: PathBuf,
    /// Open handles of the data files, kept so each flush costs one `fsync` per file and no
    /// `open`.
    data_files: Mutex<Vec<(PathBuf, File)>>,
    /// The last frame whose batch sled has applied.
    applied: AtomicU64,
    /// The last frame sled holds durably.
    flushed: AtomicU64,
    /// Bytes of frames committed since the last sled flush started.
    unflushed: AtomicU64,
    /// Why the store can no longer make anything durable (a log write or a background flush
    /// failed): every later sync fails with it.
    failed: Mutex<Option<String>>,
    /// The flusher's stop flag, and its wake-up.
    stop: Mutex<bool>,
    wake: Condvar,
    #[cfg(test)]
    sled_copy: Option<PathBuf>,
}

impl Shared {
    /// Flushes sled and fdatasyncs its files; returns the last frame sled now holds durably.
    fn flush_sled(&self) -> Result<u64, StoreError> {
        let mut files = self
            .data_files
            .lock()
            .map_err(|_| StoreError::Sled("data file list poisoned".into()))?;
        let upto = self.applied.load(Ordering::SeqCst);
        self.unflushed.store(0, Ordering::SeqCst);
        self.db.flush()?;
        self.refresh_data_files(&mut files)?;
        // fdatasync: the data and the metadata needed to read it back (the file's size), not
        // its times.
        for (path, f) in files.iter() {
            f.sync_data().map_err(io_err(path))?;
        }
        #[cfg(test)]
        if let Some(to) = &self.sled_copy {
            tests::copy_sled(&self.dir, to);
        }
        Ok(self.flushed.fetch_max(upto, Ordering::SeqCst).max(upto))
    }

    /// Opens handles to the data files not yet known: `db`, and blob files (large values).
    fn refresh_data_files(&self, files: &mut Vec<(PathBuf, File)>) -> Result<(), StoreError> {
        let mut wanted = vec![self.dir.join("db")];
        let blobs = self.dir.join("blobs");
        if let Ok(rd) = std::fs::read_dir(&blobs) {
            let mut new_blob = false;
            for e in rd.flatten() {
                let p = e.path();
                if !files.iter().any(|(q, _)| *q == p) {
                    new_blob = true;
                }
                wanted.push(p);
            }
            if new_blob {
                fsync_dir(&blobs)?;
            }
        }
        files.retain(|(p, _)| wanted.contains(p));
        for p in wanted {
            if !files.iter().any(|(q, _)| *q == p) && p.exists() {
                let f = File::open(&p).map_err(io_err(&p))?;
                files.push((p, f));
            }
        }
        Ok(())
    }

    fn fail(&self, why: String) {
        let mut f = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.is_none() {
            tracing::error!("the store can no longer make writes durable: {why}");
            *f = Some(why);
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The background flush: about once a second, or sooner after [`FLUSH_AFTER_BYTES`] of
    /// frames; once more when stopped.
    fn flush_lazily(&self) {
        loop {
            let stop = {
                let g = self
                    .stop
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (g, _) = self
                    .wake
                    .wait_timeout_while(g, FLUSH_EVERY, |stop| {
                        !*stop && self.unflushed.load(Ordering::SeqCst) < FLUSH_AFTER_BYTES
                    })
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *g
            };
            if self.applied.load(Ordering::SeqCst) > self.flushed.load(Ordering::SeqCst)
                && let Err(e) = self.flush_sled()
            {
                self.fail(format!("flushing sled: {e}"));
                return;
            }
            if stop {
                return;
            }
        }
    }
}

/// The background flush thread; stopped (after a last flush) and joined when dropped.
struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The frames committed and not yet written, and the numbering.
struct Log {
    /// The next frame's number.
    next: u64,
    /// This open's epoch.
    epoch: u64,
    /// Encoded frames not yet written, in order, with their numbers.
    pending: Vec<(u64, Vec<u8>)>,
}

/// The storage handle. Cheap operations only; the ledger decides when to [`Store::sync`].
pub struct Store {
    /// Declared first: stopped and joined before sled's handles go.
    _flusher: Option<Flusher>,
    shared: Arc<Shared>,
    log: Mutex<Log>,
    /// The log's files; held for the whole of a sync (syncs are one at a time).
    wal_files: Mutex<wal::Files>,
    tree: sled::Tree,
    meta: sled::Tree,
    dir: PathBuf,
    /// Capacity of each log file: a larger frame is made durable by a sled flush.
    wal_capacity: u64,
    /// The last record sealed into a chunk (0: none). Records above it are in `j`.
    sealed: AtomicU64,
    /// Held while a chunk or a segment is sealed (sealing runs after a commit; commits may be
    /// concurrent).
    sealing: Mutex<()>,
    /// Segment sealing, when configured (the ledger passes its window and key).
    seal_config: Option<Sealing>,
    /// The sealed segment files, in sequence order. Readers clone the `Arc`.
    catalog: RwLock<Snapshot>,
    /// The first record of a segment whose sealing found the records unfit (a gap, a broken
    /// link): not retried at every commit. 0: none.
    seal_blocked: AtomicU64,
    /// Test hook: stop a segment's sealing right after its file is renamed into place.
    fault_after_rename: AtomicBool,
    /// Test hook: stop a segment's sealing right after the batch that registers it.
    fault_after_register: AtomicBool,
    /// Commits hold it shared; the batches that remove settled states from sled after sealing
    /// hold it alone, so that each state is checked unchanged at that moment.
    commit_gate: RwLock<()>,
    /// Sealings tried while a segment was due (for tests: the sealer must not spin).
    seal_attempts: AtomicU64,
    /// How many merges replaced files in the catalog.
    merges: AtomicU64,
    /// Held (shared) by whoever checks sealed files by name; a merge takes it to replace files.
    files_gate: RwLock<()>,
    /// Set when registering a merge failed: no more merging in this process.
    merge_blocked: AtomicBool,
    /// Test hook: the next merge stops after its files are in place (1) or after its batch is
    /// durable (2), as a crash there would.
    fault_merge: std::sync::atomic::AtomicU8,
    /// Test hook: microseconds each sync waits before writing (a slow disk).
    sync_delay_us: AtomicU64,
    /// When sled's file is rebuilt (at open, and by a close that leaves a copy for the next
    /// open to swap in), and sled's cache size for the copy.
    compact: (compact::Policy, u64),
    /// Counts this store among the process's open ones; dropped last (fields drop in
    /// declaration order, after sled's handles above), it waits until the file lock is free.
    _registered: lock::Registered,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Drop for Store {
    /// A store that seals, closed whole, leaves a rebuilt copy of a mostly dead sled file for
    /// the next open to swap in ([`compact`]): a clean stop pays for the copy, the next start
    /// only renames. A failed store copies nothing: sled may hold commits the log refused.
    fn drop(&mut self) {
        if self.seal_config.is_none() || self.shared.failed.lock().map_or(true, |f| f.is_some()) {
            return;
        }
        let t0 = std::time::Instant::now();
        let (policy, cache_bytes) = self.compact;
        // An open of this directory under way (its lock held) waits for this store's sled:
        // copying now would only make it wait longer.
        let held = match compact::try_hold(&self.dir) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("sled's file was not rebuilt at close: {e}");
                return;
            }
        };
        match Store::copy_if_due(&self.shared.db, cache_bytes, &self.dir, policy, &held) {
            Ok(None) => {}
            Ok(Some((file, live))) => tracing::info!(
                "copied sled's live keys and values ({} MiB of a {} MiB file) at close in {:.2} s: the next open swaps the copy in",
                live >> 20,
                file >> 20,
                t0.elapsed().as_secs_f64()
            ),
            Err(e) => tracing::warn!("sled's file was not rebuilt at close: {e}"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sled's configuration for the store in `dir`.
fn sled_config(dir: &Path, cache_bytes: u64) -> sled::Config {
    // sled's background flusher runs: it is the only caller of sled's segment cleaner, which
    // moves the live pages out of mostly-dead segments so that they can be reused. Without it
    // sled's file grew by every byte ever written (about 1.3 KB per record, though sealing
    // leaves sled almost empty). Durability does not rest on it: ours flushes and fsyncs sled
    // behind the write-ahead log, see *Durability*.
    sled::Config::new()
        .path(dir)
        .flush_every_ms(Some(SLED_FLUSH_MS))
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::HighThroughput)
}

/// Writes the entries of `tables` (each in key order; on a key in several, the value of the
/// latest table wins) into `w` and finishes it: its length, 0 (and no file) without entries,
/// `None` when `stop` answered true (nothing left behind).
fn merge_tables(
    mut w: TableWriter,
    tables: &[&TableReader],
    key: &SigningKey,
    stop: &dyn Fn() -> bool,
) -> Result<Option<u64>, StoreError> {
    use std::cmp::Reverse;
    let mut cursors: Vec<_> = tables.iter().map(|t| t.cursor_all()).collect();
    // (key, newest table first on a tie, value)
    let mut heap = std::collections::BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some((k, v)) = c.next_entry()? {
            heap.push(Reverse((k, Reverse(i), v)));
        }
    }
    let mut n: u64 = 0;
    let mut last: Option<Vec<u8>> = None;
    while let Some(Reverse((k, Reverse(i), v))) = heap.pop() {
        if let Some((k2, v2)) = cursors[i].next_entry()? {
            heap.push(Reverse((k2, Reverse(i), v2)));
        }
        if last.as_deref() == Some(k.as_slice()) {
            continue; // an older table's value of a key already written
        }
        w.push(&k, &v)?;
        last = Some(k);
        n += 1;
        if n.is_multiple_of(65_536) && stop() {
            return Ok(None);
        }
    }
    if n == 0 {
        return Ok(Some(0));
    }
    Ok(Some(w.finish(key)?))
}

/// Whether the unlisted file at `path`, whose records lie within the listed `files`, is a
/// redundant copy: a segment whose seal verifies with `key` and whose links before its first
/// and at its last record are the listed files' links there; a table whose seal verifies.
/// Any doubt (unreadable, unsigned, another chain) says no.
fn covered_is_redundant(
    path: &Path,
    part: Part,
    files: &[Arc<Sealed>],
    key: &VerifyingKey,
) -> bool {
    let link_at = |seq: u64| -> Option<Link> {
        if seq == 0 {
            return Some(chain::GENESIS);
        }
        catalog::find(files, seq)?
            .reader
            .get_linked(seq)
            .ok()
            .flatten()
            .map(|(l, _)| l)
    };
    match part {
        Part::Segment => {
            let Ok(r) = SegmentReader::open(path) else {
                return false;
            };
            let Some(prev) = link_at(r.first_seq().saturating_sub(1)) else {
                return false;
            };
            r.verify(key, &prev)
                .is_ok_and(|last| Some(last) == link_at(r.last_seq()))
        }
        Part::Table | Part::States => TableReader::open(path).is_ok_and(|t| t.verify(key).is_ok()),
    }
}

/// The parts of a sealed file, by their names' suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Segment,
    Table,
    States,
}

/// The records a sealed file's name stem covers: `<first>` (its last is in the file), or
/// `<first>-<last>` for a merged file; `None` for a name sealing never writes.
fn parse_stem(stem: &str) -> Option<(u64, Option<u64>)> {
    let num = |d: &str| {
        (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .then(|| d.parse::<u64>().ok())
            .flatten()
    };
    match stem.split_once('-') {
        None => Some((num(stem)?, None)),
        Some((a, b)) => Some((num(a)?, Some(num(b)?))),
    }
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err(path))
}

impl Store {
    /// Opens (or creates) the store in `dir`, with sled's page cache capped at `cache_bytes`.
    ///
    /// # Errors
    /// The directory cannot be created, or sled cannot open or recover it;
    /// [`StoreError::Locked`] when another process has it open (a store of this process that is
    /// being dropped is waited for, up to 30 s).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Store::open_with(dir, cache_bytes, None)
    }

    /// As [`Store::open`], sealing history into segment files as `sealing` says (never when
    /// `None`; files sealed earlier are read either way).
    ///
    /// A segment file that the catalog does not list is the remains of a sealing interrupted
    /// between its rename and the batch that registers it: its records are still in sled, so it
    /// is deleted (and logged). A file the catalog lists that is missing, unreadable or not the
    /// file described is an error naming it.
    ///
    /// # Errors
    /// As [`Store::open`]; [`StoreError::Catalog`] and [`StoreError::Segment`] for the files.
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        sealing: Option<Sealing>,
    ) -> Result<Store, StoreError> {
        Store::open_inner(dir, cache_bytes, sealing, WalOptions::default())
    }

    fn open_inner(
        dir: &Path,
        cache_bytes: u64,
        sealing: Option<Sealing>,
        wal_options: WalOptions,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let compacting = sealing.as_ref().is_some_and(|s| s.window > 0);
        // A copy of sled's file that a close or an earlier open left is dealt with before sled
        // opens its files, under the directory's lock until sled holds its own ([`compact`]).
        let held = compact::hold(dir).map_err(io_err(dir))?;
        let stale = |mark: &[u8]| Store::copy_is_stale(dir, mark, wal_options.file_bytes);
        match compact::finish(dir, &held, compacting, stale).map_err(io_err(dir))? {
            compact::Finished::Swapped => {
                tracing::info!(
                    "swapped in the copy of sled's live keys that the last close or open made"
                );
            }
            compact::Finished::Removed => tracing::warn!(
                "removed a copy of sled's file that was partial or older than the file (written since by an opener that does not know of copies)"
            ),
            compact::Finished::Nothing | compact::Finished::Left => {}
        }
        let fresh = !dir.join("db").exists();
        let config = sled_config(dir, cache_bytes);
        let mut db = open_waiting_for_own_release(&config, dir)?;
        if compacting {
            db = Store::compact_if_due(db, &config, cache_bytes, dir, wal_options.compact, &held)?;
        }
        drop(held);
        let tree = db.open_tree("ledger")?;
        let meta = db.open_tree("meta")?;
        let shared = Arc::new(Shared {
            // Moved, not cloned: a failed open drops every handle before it waits for the lock.
            db,
            dir: dir.to_path_buf(),
            data_files: Mutex::new(Vec::new()),
            applied: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            unflushed: AtomicU64::new(0),
            failed: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            #[cfg(test)]
            sled_copy: wal_options.sled_copy.clone(),
        });
        let (files, epoch, applied) = Store::replay(&tree, &meta, &shared, &wal_options)?;
        let flusher = wal_options.lazy_flush.then(|| {
            let s = shared.clone();
            Flusher {
                shared: shared.clone(),
                thread: Some(std::thread::spawn(move || s.flush_lazily())),
            }
        });
        let store = Store {
            _flusher: flusher,
            shared,
            log: Mutex::new(Log {
                next: applied + 1,
                epoch,
                pending: Vec::new(),
            }),
            wal_capacity: files.capacity(),
            wal_files: Mutex::new(files),
            tree,
            meta,
            dir: dir.to_path_buf(),
            sealed: AtomicU64::new(0),
            sealing: Mutex::new(()),
            seal_config: sealing.filter(|s| s.window > 0),
            catalog: RwLock::new(Arc::new(Vec::new())),
            seal_blocked: AtomicU64::new(0),
            fault_after_rename: AtomicBool::new(false),
            fault_after_register: AtomicBool::new(false),
            commit_gate: RwLock::new(()),
            seal_attempts: AtomicU64::new(0),
            merges: AtomicU64::new(0),
            files_gate: RwLock::new(()),
            merge_blocked: AtomicBool::new(false),
            fault_merge: std::sync::atomic::AtomicU8::new(0),
            sync_delay_us: AtomicU64::new(0),
            compact: (wal_options.compact, cache_bytes),
            _registered: lock::Registered::new(&dir.join("db"), OWN_RELEASE_WAIT),
        };
        let sealed = store.last_chunk()?.map_or(0, |(first, v)| {
            chunk_entries(&v)
                .filter(|(k, _)| k.len() == 8)
                .map(|(k, _)| key_u64(k))
                .last()
                .unwrap_or(first)
        });
        let files = store.load_catalog()?;
        // Records in files are sealed too: chunk sealing continues after them.
        let in_files = files.last().map_or(0, |s| s.entry.last);
        store.sealed.store(sealed.max(in_files), Ordering::SeqCst);
        *store
            .catalog
            .write()
            .map_err(|_| StoreError::Sled("catalog lock poisoned".into()))? = Arc::new(files);
        // Finish what a crash interrupted: copies in sled of what the files hold. Only a store
        // that seals writes (an audit's open changes nothing).
        if store.seal_config.is_some() && in_files > 0 {
            store.drop_sealed(in_files)?;
        }
        if fresh {
            // New files are only durable once their directory entries are: fsync the
            // directories sled just created, and the parent that holds `dir` (sled's files
            // were flushed by the replay).
            fsync_dir(dir)?;
            let blobs = dir.join("blobs");
            if blobs.exists() {
                fsync_dir(&blobs)?;
            }
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        Ok(store)
    }

    /// Rebuilds sled's file when it is mostly dead space ([`compact`]): returns the sled to use,
    /// `db` itself when no rebuild is due or the copy failed (a full disk must not stop the
    /// hall: the old file serves, and the partial copy is removed).
    fn compact_if_due(
        db: sled::Db,
        config: &sled::Config,
        cache_bytes: u64,
        dir: &Path,
        policy: compact::Policy,
        held: &compact::Held,
    ) -> Result<sled::Db, StoreError> {
        let t0 = std::time::Instant::now();
        let (file, live) = match Store::copy_if_due(&db, cache_bytes, dir, policy, held) {
            Ok(None) => return Ok(db),
            Ok(Some(done)) => done,
            Err(e) => {
                tracing::error!("sled's file was not rebuilt at open (it goes on as it is): {e}");
                if let Err(e) = compact::finish(dir, held, true, |_| Ok(true)) {
                    tracing::error!("removing the partial copy of sled's file: {e}");
                }
                return Ok(db);
            }
        };
        drop(db);
        // Just made under the lock: not stale.
        compact::finish(dir, held, true, |_| Ok(false)).map_err(io_err(dir))?;
        let db = open_waiting_for_own_release(config, dir)?;
        let after = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
        tracing::info!(
            "rebuilt sled's file at open: {} MiB to {} MiB ({} MiB of live keys and values) in {:.2} s",
            file >> 20,
            after >> 20,
            live >> 20,
            t0.elapsed().as_secs_f64()
        );
        Ok(db)
    }

    /// Copies `db` into `dir/sled.compact` ([`compact::copy`]) when its file is due for a
    /// rebuild by `policy`; returns the file's size and the live bytes copied.
    fn copy_if_due(
        db: &sled::Db,
        cache_bytes: u64,
        dir: &Path,
        policy: compact::Policy,
        held: &compact::Held,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let file = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
        if file < policy.min_file {
            return Ok(None);
        }
        let limit = policy.max_live.min(file / policy.ratio.max(1));
        let Some(live) = compact::live_bytes(db, limit)? else {
            return Ok(None);
        };
        let copy_dir = dir.join(compact::DIR);
        let failed = |e: String| {
            StoreError::Sled(format!(
                "rebuilding sled's file in {}: {e}",
                copy_dir.display()
            ))
        };
        if policy.fail_copy {
            std::fs::create_dir_all(&copy_dir).map_err(io_err(&copy_dir))?;
            std::fs::write(copy_dir.join("db"), b"half").map_err(io_err(&copy_dir))?;
            return Err(failed("No space left on device (test)".into()));
        }
        // The copy's mark of the write-ahead log: what `copy_is_stale` compares the log with.
        let mark = db
            .open_tree("ledger")?
            .get(WAL_APPLIED)?
            .map(|v| v.to_vec())
            .unwrap_or_default();
        let new = sled_config(&copy_dir, cache_bytes);
        compact::copy(db, &new, dir, held, &mark).map_err(|e| failed(e.to_string()))?;
        Ok(Some((file, live)))
    }

    /// True when the write-ahead log holds a frame the copy marked `mark` (its `w applied`:
    /// frame number ‖ epoch, empty for none) does not: an opener that does not know of copies
    /// (an older release, after a roll-back) wrote to sled's file after the copy was made, and
    /// swapping it in would lose those commits.
    fn copy_is_stale(dir: &Path, mark: &[u8], file_bytes: u64) -> std::io::Result<bool> {
        let (number, epoch) = if mark.len() == 16 {
            (key_u64(&mark[..8]), key_u64(&mark[8..]))
        } else {
            (0, 0)
        };
        let (_, frames) = wal::Files::open(dir, file_bytes)?;
        Ok(frames
            .iter()
            .any(|f| f.epoch > epoch || (f.epoch == epoch && f.number > number)))
    }

    /// Replays the log's frames that sled lacks (see *Durability*), flushes sled and stores a
    /// new epoch. Returns the log's files, the epoch and the last frame sled now holds.
    fn replay(
        tree: &sled::Tree,
        meta: &sled::Tree,
        shared: &Shared,
        options: &WalOptions,
    ) -> Result<(wal::Files, u64, u64), StoreError> {
        let (files, frames) =
            wal::Files::open(&shared.dir, options.file_bytes).map_err(io_err(&shared.dir))?;
        let (mut applied, mut applied_epoch) = match tree.get(WAL_APPLIED)? {
            None => (0, 0),
            Some(v) if v.len() == 16 && key_u64(&v[..8]) < u64::MAX / 2 => {
                (key_u64(&v[..8]), key_u64(&v[8..]))
            }
            Some(_) => {
                return Err(StoreError::Sled(
                    "the write-ahead log's mark (`w applied`: the last frame sled holds) is malformed".into(),
                ));
            }
        };
        let newest_seen = frames.iter().map(|f| f.epoch).max().unwrap_or(0);
        let replay = wal::chain(frames, applied, applied_epoch);
        let replayed = replay.len();
        for f in replay {
            let mut b = sled::Batch::default();
            for (k, v) in f.ops {
                match v {
                    Some(v) => b.insert(k, v),
                    None => b.remove(k),
                }
            }
            b.insert(WAL_APPLIED, marker(f.number, f.epoch).as_slice());
            tree.apply_batch(b)?;
            (applied, applied_epoch) = (f.number, f.epoch);
        }
        if replayed > 0 {
            tracing::info!(
                "replayed {replayed} commits from the write-ahead log (sled had lost them), up to frame {applied}"
            );
        }
        let stored_epoch = meta.get(WAL_EPOCH)?.map_or(0, |v| key_u64(&v));
        let epoch = stored_epoch.max(newest_seen).max(applied_epoch) + 1;
        meta.insert(WAL_EPOCH, &epoch.to_be_bytes())?;
        shared.applied.store(applied, Ordering::SeqCst);
        // Sled holds every frame now, and the epoch before any frame of it is written.
        shared.flush_sled()?;
        Ok((files, epoch, applied))
    }

    /// Reads the catalog and opens its files (see [`Store::open_with`]); deletes segment files
    /// it does not list.
    fn load_catalog(&self) -> Result<Vec<Arc<Sealed>>, StoreError> {
        let mut files: Vec<Arc<Sealed>> = Vec::new();
        for kv in self.tree.scan_prefix([G]) {
            let (k, v) = kv?;
            let first = key_u64(&k[1..]);
            let entry = catalog::Entry::decode(&v).filter(|e| e.first == first);
            let file = entry.as_ref().map_or_else(
                || catalog::path(&self.dir, first),
                |e| e.seg_path(&self.dir),
            );
            let catalog_err = |what: &str| StoreError::Catalog {
                file: file.clone(),
                what: what.into(),
            };
            let entry = entry.ok_or_else(|| catalog_err("its catalog entry is unreadable"))?;
            match files.last() {
                None if first != 1 || entry.prev_link != chain::GENESIS => {
                    return Err(catalog_err(
                        "the first segment file must start at record 1, after the chain's genesis",
                    ));
                }
                Some(p) if p.entry.last.checked_add(1) != Some(first) => {
                    return Err(catalog_err(&format!(
                        "it starts at record {first}, but the file before it ends at {}",
                        p.entry.last
                    )));
                }
                Some(p) if p.entry.last_link != entry.prev_link => {
                    return Err(catalog_err(
                        "its link before the first record is not the last link of the file before it",
                    ));
                }
                _ => {}
            }
            if !file.exists() {
                return Err(catalog_err(
                    "this segment file is listed in the catalog but missing",
                ));
            }
            let reader = SegmentReader::open(&file)?;
            entry.matches(&reader).map_err(|w| catalog_err(&w))?;
            let table = self.open_table(&entry)?;
            let states = self.open_states(&entry)?;
            files.push(Arc::new(Sealed {
                entry,
                reader,
                table,
                states,
                period: std::sync::OnceLock::new(),
            }));
        }
        let seg_dir = self.dir.join(catalog::DIR);
        if let Ok(rd) = std::fs::read_dir(&seg_dir) {
            let mut changed = false;
            // Every record up to here is in a listed file.
            let covered = files.last().map_or(0, |s| s.entry.last);
            // The listed files by their names' stem (one lookup per directory entry).
            let by_stem: std::collections::HashMap<String, &Sealed> =
                files.iter().map(|s| (s.entry.stem(), s.as_ref())).collect();
            for e in rd.flatten() {
                let name = e.file_name();
                // Only what sealing and merging write (`<first>.seg`, `<first>-<last>.seg`, the
                // same with `.idx` and `.sta`, and their `.tmp`) is touched.
                let Some(n) = name.to_str() else { continue };
                let tmp = n.ends_with(".tmp");
                let stem = n.strip_suffix(".tmp").unwrap_or(n);
                let Some((base, part)) = [
                    (catalog::SUFFIX, Part::Segment),
                    (catalog::TABLE_SUFFIX, Part::Table),
                    (catalog::STATES_SUFFIX, Part::States),
                ]
                .into_iter()
                .find_map(|(suffix, part)| stem.strip_suffix(suffix).map(|b| (b, part))) else {
                    continue;
                };
                let Some((first, last)) = parse_stem(base) else {
                    continue;
                };
                // A temporary file is never listed, whatever its name.
                let listed = !tmp
                    && by_stem.get(base).is_some_and(|s| match part {
                        Part::Segment => true,
                        Part::Table => s.table.is_some(),
                        Part::States => s.states.is_some(),
                    });
                if listed {
                    continue;
                }
                let p = e.path();
                let redundant = if tmp {
                    true
                } else if first <= covered && last.is_none_or(|l| l <= covered) {
                    // Within the listed files' records: a file merged into another (a crash
                    // before it was removed), or a merged file whose registration never
                    // happened. Removed only if its seal verifies and its chain is the listed
                    // one; an audit's open (no key) leaves it alone.
                    let Some(cfg) = &self.seal_config else {
                        continue;
                    };
                    covered_is_redundant(&p, part, &files, &cfg.key.verifying_key())
                } else {
                    match part {
                        Part::Table => self.unlisted_table_is_redundant(&p, X)?,
                        Part::States => self.unlisted_table_is_redundant(&p, S)?,
                        Part::Segment => self.unlisted_is_redundant(&p)?,
                    }
                };
                if redundant {
                    // A temporary file is never renamed into place, so its records are still
                    // in sled; so are those of a file whose every record sled holds unchanged.
                    std::fs::remove_file(&p).map_err(io_err(&p))?;
                    tracing::warn!(
                        "removed {}: a sealed file the catalog does not list whose contents are all held elsewhere, in the store or in a listed file (its sealing or merging was interrupted)",
                        p.display()
                    );
                } else {
                    // Possibly the only copy of records: never deleted.
                    let orphans = seg_dir.join(ORPHAN_DIR);
                    std::fs::create_dir_all(&orphans).map_err(io_err(&orphans))?;
                    // Never over an earlier orphan of the same name.
                    let mut to = orphans.join(&name);
                    for i in 1.. {
                        if !to.exists() {
                            break;
                        }
                        to = orphans.join(format!("{n}.{i}"));
                    }
                    std::fs::rename(&p, &to).map_err(io_err(&p))?;
                    fsync_dir(&orphans)?;
                    tracing::error!(
                        "moved {} to {}: a sealed file the catalog does not list, whose contents are not all in the store as it holds them; verification reports what is missing, and this file may hold it (keep it for recovery)",
                        p.display(),
                        to.display()
                    );
                }
                changed = true;
            }
            if changed {
                fsync_dir(&seg_dir)?;
            }
        }
        Ok(files)
    }

    /// Opens the index table of a catalogued segment, if its entry lists one.
    fn open_table(&self, entry: &catalog::Entry) -> Result<Option<TableReader>, StoreError> {
        let file = entry.table_path(&self.dir);
        self.open_part(entry, &file, entry.table_len, "index table")
    }

    /// Opens the state table of a catalogued segment, if its entry lists one.
    fn open_states(&self, entry: &catalog::Entry) -> Result<Option<TableReader>, StoreError> {
        let file = entry.states_path(&self.dir);
        self.open_part(entry, &file, entry.states_len, "state table")
    }

    /// Opens the table `file` (`what`) of a catalogued segment whose entry says it is `len`
    /// bytes long (0: it has none), checking it is the one described.
    fn open_part(
        &self,
        entry: &catalog::Entry,
        file: &Path,
        len: u64,
        what: &str,
    ) -> Result<Option<TableReader>, StoreError> {
        if len == 0 {
            return Ok(None);
        }
        let err = |what: String| StoreError::Catalog {
            file: file.to_path_buf(),
            what,
        };
        if !file.exists() {
            return Err(err(format!(
                "the {what} of records {}..={} is listed in the catalog but missing",
                entry.first, entry.last
            )));
        }
        let t = TableReader::open(file)?;
        let on_disk = std::fs::metadata(file).map_err(io_err(file))?.len();
        if on_disk != len || t.seqs() != (entry.first, entry.last) {
            return Err(err(format!(
                "the {what} is not the one its catalog entry describes (length or records)"
            )));
        }
        Ok(Some(t))
    }

    /// Whether every key of the unlisted table at `path` is still in sled (in its index for
    /// an index table, its states for a state table): then the table is a redundant copy.
    fn unlisted_table_is_redundant(&self, path: &Path, space: u8) -> Result<bool, StoreError> {
        let Ok(t) = TableReader::open(path) else {
            return Ok(false);
        };
        let mut all = true;
        let mut err = None;
        let read = t.for_each_in(&[], &[0xff; 8], false, |k, _| {
            match self.tree.contains_key(pk(space, k)) {
                Ok(true) => true,
                Ok(false) => {
                    all = false;
                    false
                }
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        });
        if let Some(e) = err {
            return Err(e.into());
        }
        Ok(read.is_ok() && all)
    }

    /// Whether every record of the unlisted segment file at `path` is still in sled, stored
    /// exactly as the file holds it (then the file is a redundant copy). Any doubt (unreadable
    /// file, a record missing or different) says no.
    fn unlisted_is_redundant(&self, path: &Path) -> Result<bool, StoreError> {
        let Ok(reader) = SegmentReader::open(path) else {
            return Ok(false);
        };
        let mut link = reader.prev_link();
        for r in reader.records() {
            let Ok((seq, body)) = r else {
                return Ok(false);
            };
            link = chain::link(&link, seq, &body);
            let in_sled = match self.tree.get(pk(J, &seq.to_be_bytes()))? {
                Some(v) => Some(v.to_vec()),
                None => self.chunk_at(seq)?.and_then(|(_, chunk)| {
                    chunk_entries(&chunk)
                        .find(|(k, _)| key_u64(k) == seq)
                        .map(|(_, v)| v.to_vec())
                }),
            };
            if in_sled.as_deref() != Some(chain::stored(&link, &body).as_slice()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The catalog as it is now.
    fn catalog(&self) -> Snapshot {
        self.catalog
            .read()
            .map_or_else(|p| p.into_inner().clone(), |c| c.clone())
    }

    fn set_catalog(&self, files: Snapshot) {
        match self.catalog.write() {
            Ok(mut c) => *c = files,
            Err(p) => *p.into_inner() = files,
        }
    }

    /// The sealed segment files, in order.
    pub fn segment_files(&self) -> Vec<SegmentFile> {
        self.catalog()
            .iter()
            .map(|s| SegmentFile {
                path: s.reader.path().to_path_buf(),
                first: s.entry.first,
                last: s.entry.last,
                prev_link: s.entry.prev_link,
                last_link: s.entry.last_link,
            })
            .collect()
    }

    /// Checks the segment file starting at `first` as it is on disk now (opened afresh): that
    /// it is there, is the file its catalog entry describes, that every block, link and the
    /// digest are right from `expected_prev` on, and that its seal verifies with `key`.
    pub fn check_segment(
        &self,
        first: u64,
        key: &VerifyingKey,
        expected_prev: &Link,
    ) -> Result<(), PartProblem> {
        let problem = |file: &Path, missing: bool, what: String| PartProblem {
            file: file.to_path_buf(),
            missing,
            what,
        };
        let cat = self.catalog();
        let Some(entry) = cat
            .iter()
            .find(|s| s.entry.first == first)
            .map(|s| &s.entry)
        else {
            let file = catalog::path(&self.dir, first);
            return Err(problem(&file, false, "not in the catalog".into()));
        };
        let file = entry.seg_path(&self.dir);
        let missing = |file: &Path, what: &str| {
            problem(
                file,
                true,
                format!(
                    "{}: the {what} of records {}..={} is missing",
                    file.display(),
                    entry.first,
                    entry.last
                ),
            )
        };
        if !file.exists() {
            return Err(missing(&file, "segment file"));
        }
        let reader =
            SegmentReader::open(&file).map_err(|e| problem(&file, false, e.to_string()))?;
        entry
            .matches(&reader)
            .map_err(|w| problem(&file, false, format!("{}: {w}", file.display())))?;
        reader
            .verify(key, expected_prev)
            .map_err(|e| problem(&file, false, e.to_string()))?;
        // Its postings and settled states: a damaged or missing table would make queries miss
        // records, or lose states.
        for (table, len, what) in [
            (entry.table_path(&self.dir), entry.table_len, "index table"),
            (
                entry.states_path(&self.dir),
                entry.states_len,
                "state table",
            ),
        ] {
            if len == 0 {
                continue;
            }
            if !table.exists() {
                return Err(missing(&table, what));
            }
            self.open_part(entry, &table, len, what)
                .map_err(|e| problem(&table, false, e.to_string()))?
                .map_or(Ok(()), |t| t.verify(key))
                .map_err(|e| problem(&table, false, e.to_string()))?;
        }
        Ok(())
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies a write set atomically (all trees or none) and appends its frame to the log's
    /// buffer. Not yet durable: see [`Store::sync`].
    ///
    /// # Errors
    /// sled failed; nothing was applied. (A commit too large for a log file: the sled flush
    /// that makes it durable failed.)
    pub fn commit(&self, ws: &WriteSet) -> Result<(), StoreError> {
        // Without sealing nothing leaves sled: no lists of postings or settled states.
        let sealing = self.seal_config.is_some();
        // A settled state is listed under its record (`v`), and `z` says at which record it
        // settled: sealing moves it only if it was not written again since.
        let head = ws
            .journal
            .iter()
            .map(|(s, _)| *s)
            .max()
            .filter(|_| sealing)
            .map(u64::to_be_bytes);
        // Postings are index keys too, and each is listed under its record in `y`, so that
        // sealing finds a window's postings without scanning the index.
        let mut by_seq: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
        for (k, _) in &ws.postings {
            if !sealing || k.len() > usize::from(u16::MAX) {
                continue; // never sealed: no list
            }
            let list = by_seq.entry(index_seq(k)).or_default();
            list.extend_from_slice(&u16::try_from(k.len()).unwrap_or(u16::MAX).to_le_bytes());
            list.extend_from_slice(k);
        }
        let lists: Vec<(Vec<u8>, Vec<u8>)> = by_seq
            .into_iter()
            .map(|(seq, list)| (pk(Y, &seq.to_be_bytes()), list))
            .collect();
        let mut ops: Vec<wal::Op<'_>> = Vec::with_capacity(
            ws.journal.len()
                + 2 * ws.state.len()
                + 3 * ws.settled.len()
                + ws.index.len()
                + ws.postings.len()
                + lists.len()
                + ws.checkpoints.len()
                + ws.aux.len(),
        );
        for (seq, v) in &ws.journal {
            ops.push((pk(J, &seq.to_be_bytes()), Some(v)));
        }
        for (k, v) in &ws.state {
            ops.push((pk(S, k), v.as_deref()));
            // Written again: no longer settled (it stays in sled). Also when this process does
            // not seal: another that does may later.
            ops.push((pk(Z, k), None));
        }
        for (k, v) in &ws.settled {
            ops.push((pk(S, k), Some(v)));
            match &head {
                Some(seq) => {
                    ops.push((pk(Z, k), Some(seq)));
                    ops.push((pk(V, &[&seq[..], k].concat()), Some(&[])));
                }
                None => ops.push((pk(Z, k), None)),
            }
        }
        for (k, v) in ws.index.iter().chain(&ws.postings) {
            ops.push((pk(X, k), Some(v)));
        }
        for (k, list) in &lists {
            ops.push((k.clone(), Some(list)));
        }
        for (seq, v) in &ws.checkpoints {
            ops.push((pk(C, &seq.to_be_bytes()), Some(v)));
        }
        for (k, v) in &ws.aux {
            ops.push((pk(A, k), v.as_deref()));
        }
        {
            // Settled states leave sled under the gate's write side (`drop_sealed`): a commit
            // never lands between that check and its batch. Taken before the log's lock, so
            // that a drop stalls only the commits, not the syncs.
            let _gate = self.commit_gate.read().unwrap_or_else(|p| p.into_inner());
            // One order for numbers and batches: `w applied` only grows.
            let mut log = self
                .log
                .lock()
                .map_err(|_| StoreError::Sled("log lock poisoned".into()))?;
            let number = log.next;
            let frame = wal::encode(number, log.epoch, &ops);
            let mut b = sled::Batch::default();
            for (k, v) in ops {
                match v {
                    Some(v) => b.insert(k, v),
                    None => b.remove(k),
                }
            }
            b.insert(WAL_APPLIED, marker(number, log.epoch).as_slice());
            {
                self.tree.apply_batch(b)?;
            }
            log.next += 1;
            self.shared.applied.store(number, Ordering::SeqCst);
            let len = frame.len() as u64;
            if len > self.wal_capacity {
                // Too large for a log file: durable through sled, before the next number. If
                // that fails, the store is failed: no later commit may be acknowledged past
                // this one, which is applied but not durable.
                if let Err(e) = self.shared.flush_sled() {
                    self.shared.fail(format!(
                        "a commit too large for the log could not be made durable: {e}"
                    ));
                    return Err(e);
                }
            } else {
                log.pending.push((number, frame));
                if self.shared.unflushed.fetch_add(len, Ordering::SeqCst) + len >= FLUSH_AFTER_BYTES
                {
                    self.shared.wake.notify_all();
                }
            }
        }
        // The batch is applied: whatever sealing meets, the append stands (sealing only moves
        // records; a failure leaves them in `j`, where every reader finds them). With segment
        // files, records stay in `j` until their file is sealed, off the append path (see
        // [`Store::seal_segments`]): no chunk is written only to be removed again.
        if self.seal_config.is_none()
            && let Some(head) = ws.journal.iter().map(|(s, _)| *s).max()
            && let Err(e) = self.seal(head)
        {
            tracing::warn!(
                "sealing journal records into a chunk failed (they stay as they are): {e}"
            );
        }
        Ok(())
    }

    /// Seals the full chunks due after an append whose last record is `head` (a store without
    /// segment files).
    fn seal(&self, head: u64) -> Result<(), StoreError> {
        let _guard = self
            .sealing
            .lock()
            .map_err(|_| StoreError::Sled("sealing lock poisoned".into()))?;
        self.seal_chunks(head)
    }

    /// Whether a segment file is due for the records up to `head` (more than the window of
    /// them outside files, and sealing not stopped at a gap).
    pub fn segment_due(&self, head: u64) -> bool {
        let Some(cfg) = &self.seal_config else {
            return false;
        };
        let done = self.catalog().last().map_or(0, |s| s.entry.last);
        head.saturating_sub(done) > cfg.window
            && self.seal_blocked.load(Ordering::SeqCst) != done + 1
    }

    /// Seals the next segment file if one is due for the records up to `head`; returns whether
    /// one was written. The ledger's sealer thread calls it with the last durable record, so
    /// that appends never wait for a file to be written (they run concurrently: sealing only
    /// reads records below `head` and removes them in its own batch).
    ///
    /// # Errors
    /// As sealing: sled, or writing a file (the records stay where they were).
    pub fn seal_next_segment(&self, head: u64) -> Result<bool, StoreError> {
        let _guard = self
            .sealing
            .lock()
            .map_err(|_| StoreError::Sled("sealing lock poisoned".into()))?;
        self.seal_segment(head)
    }

    /// Test and migration hook: seals every segment that is due now for all records stored.
    ///
    /// # Errors
    /// As sealing: sled, or writing a file.
    #[doc(hidden)]
    pub fn seal_due(&self) -> Result<(), StoreError> {
        let Some(head) = self.journal_last()?.map(|(s, _)| s) else {
            return Ok(());
        };
        while self.seal_next_segment(head)? {}
        Ok(())
    }

    /// Test hook: every sync waits this long before it writes, as on a slow disk (so that a
    /// test of group commit does not depend on how fast this machine's disk is today).
    #[doc(hidden)]
    pub fn slow_syncs(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.sync_delay_us.store(us, Ordering::Relaxed);
    }

    /// How many times sealing was tried while a segment was due (tests: the sealer does not
    /// spin while it waits for a checkpoint).
    #[doc(hidden)]
    pub fn seal_attempts(&self) -> u64 {
        self.seal_attempts.load(Ordering::Relaxed)
    }

    /// Test hook: holds the sealing lock (as a file being written does) until the guard drops.
    ///
    /// # Panics
    /// The lock is poisoned.
    #[doc(hidden)]
    pub fn hold_sealing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.sealing.lock().expect("sealing lock")
    }

    /// Test hook: with `on`, the next segment sealing stops right after the batch that
    /// registers its file, before sled lets go of what the file holds (a crash there).
    #[doc(hidden)]
    pub fn fail_after_segment_register(&self, on: bool) {
        self.fault_after_register.store(on, Ordering::SeqCst);
    }

    /// Test hook: the next merge stops after its files are in place (`stage` 1) or after the
    /// batch that registers them is durable (2), as a crash there would.
    #[doc(hidden)]
    pub fn fail_merge_at(&self, stage: u8) {
        self.fault_merge.store(stage, Ordering::SeqCst);
    }

    /// Test hook: with `on`, the next segment sealing stops right after its file is renamed
    /// into place, before the batch that registers it (a crash there).
    #[doc(hidden)]
    pub fn fail_after_segment_rename(&self, on: bool) {
        self.fault_after_rename.store(on, Ordering::SeqCst);
    }

    /// Moves the oldest `window` records not yet in a file into a new segment file once more
    /// than `window` are outside files (the caller holds the sealing lock). The file is written,
    /// fsynced and renamed into place (with its index and state tables), and enters the
    /// in-memory catalog; then one small sled batch registers it (and rewrites a chunk of an
    /// older store that reaches past it), and [`Store::drop_sealed`] removes from sled what the
    /// files hold, in small batches. Returns whether a file was sealed.
    ///
    /// Records are copied only if they are all there, in order, and their stored links are the
    /// links recomputed from their bodies: sealing never launders a gap or an edit (it stops,
    /// leaves them where they are, and verification reports them).
    fn seal_segment(&self, head: u64) -> Result<bool, StoreError> {
        let Some(cfg) = &self.seal_config else {
            return Ok(false);
        };
        if !self.segment_due(head) {
            return Ok(false);
        }
        self.seal_attempts.fetch_add(1, Ordering::Relaxed);
        let files = self.catalog();
        let done = files.last().map_or(0, |s| s.entry.last);
        let (first, end) = (done + 1, (done / cfg.window + 1) * cfg.window);
        // The file's seal vouches for its records: sign only what signed checkpoints vouch for.
        // Every checkpoint from `first` up to the first one at or after `end` must verify with
        // the key and name the link recomputed here (an edit re-linked in sled is refused).
        let Some((cover, _)) = self.checkpoint_at_or_after(end)? else {
            return Ok(false); // not yet: the checkpoint after the window comes with later records
        };
        let mut checks = std::collections::VecDeque::new();
        for (seq, v) in self.checkpoints_from(first)? {
            if seq > cover {
                break;
            }
            let cp: chain::Checkpoint = match serde_json::from_slice(&v) {
                Ok(cp) => cp,
                Err(_) => {
                    return self.seal_unfit(first, format!("checkpoint {seq} is unreadable"));
                }
            };
            if let Err(e) = cp.verify(&cfg.key.verifying_key()) {
                return self.seal_unfit(first, e);
            }
            match cp.head_link() {
                Some(l) if cp.seq == seq => checks.push_back((seq, l)),
                _ => return self.seal_unfit(first, format!("checkpoint {seq} is malformed")),
            }
        }
        let prev = files.last().map_or(chain::GENESIS, |s| s.entry.last_link);
        let seg_dir = self.dir.join(catalog::DIR);
        if !seg_dir.exists() {
            std::fs::create_dir_all(&seg_dir).map_err(io_err(&seg_dir))?;
            fsync_dir(&self.dir)?;
        }
        let path = catalog::path(&self.dir, first);
        let mut out = SegmentWriter::create(&path, first, prev)?;
        let mut run = Run {
            expected: first,
            link: prev,
            checks,
        };
        let mut b = sled::Batch::default();
        let start = self.chunk_at(first)?.map_or(first, |(f, _)| f);
        for kv in self
            .tree
            .range(pk(K, &start.to_be_bytes())..=pk(K, &end.to_be_bytes()))
        {
            let (k, chunk) = kv?;
            let mut rest = Vec::new();
            let mut rest_first = None;
            for (ek, ev) in chunk_entries(&chunk) {
                let seq = key_u64(ek);
                if ek.len() == 8 && seq > end {
                    rest_first.get_or_insert(seq);
                    push_entry(&mut rest, ek, ev);
                } else if let Err(why) = run.take(Some(&mut out), ek, ev) {
                    return self.seal_unfit(first, why);
                }
            }
            b.remove(k);
            // A chunk that reaches past the file keeps its later records, under its new first.
            if let Some(rf) = rest_first {
                b.insert(pk(K, &rf.to_be_bytes()), rest);
            }
        }
        for kv in self
            .tree
            .range(pk(J, &first.to_be_bytes())..=pk(J, &end.to_be_bytes()))
        {
            let (k, v) = kv?;
            if let Err(why) = run.take(Some(&mut out), &k[1..], &v) {
                return self.seal_unfit(first, why);
            }
        }
        if run.expected != end + 1 {
            return self.seal_unfit(first, format!("record {} is missing", run.expected));
        }
        // On to the covering checkpoint, reading only (those records stay in sled).
        for seq in end + 1..=cover {
            let Some(v) = self.journal_get(seq)? else {
                return self.seal_unfit(first, format!("record {seq} is missing"));
            };
            if let Err(why) = run.take(None, &seq.to_be_bytes(), &v) {
                return self.seal_unfit(first, why);
            }
        }
        // The window's postings: listed under their records in `y`, read from the index.
        let mut postings: Vec<IndexEntry> = Vec::new();
        for kv in self
            .tree
            .range(pk(Y, &first.to_be_bytes())..=pk(Y, &end.to_be_bytes()))
        {
            let (yk, list) = kv?;
            for k in listed_postings(&list, key_u64(&yk[1..])) {
                if let Some(v) = self.tree.get(pk(X, k))? {
                    postings.push((k.to_vec(), v.to_vec()));
                }
            }
        }
        postings.sort_unstable();
        postings.dedup_by(|a, b| a.0 == b.0);
        let table_len = if postings.is_empty() {
            0
        } else {
            let path = catalog::table_path(&self.dir, first);
            let mut w = TableWriter::new(&path, first, end).range_only(&cfg.range_only_tags);
            for (k, v) in &postings {
                if let Err(e) = w.push(k, v) {
                    return self.seal_unfit(first, e.to_string());
                }
            }
            w.finish(&cfg.key)?
        };
        // The states that settled in the window and were not written again since.
        let mut settled: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::new();
        for kv in self
            .tree
            .range(pk(V, &first.to_be_bytes())..pk(V, &(end + 1).to_be_bytes()))
        {
            let (wk, _) = kv?;
            let (seq, k) = (key_u64(&wk[1..9]), &wk[9..]);
            // The value, whether it is still settled at `seq`, and the value again: a commit in
            // between (a state written again) leaves the key where it is.
            let before = self.tree.get(pk(S, k))?;
            let still = self.tree.get(pk(Z, k))?.is_some_and(|z| key_u64(&z) == seq);
            if still
                && let Some(v) = before
                && self.tree.get(pk(S, k))?.as_ref() == Some(&v)
            {
                settled.push((k.to_vec(), v.to_vec(), seq));
            }
        }
        settled.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        settled.dedup_by(|a, b| a.0 == b.0);
        let states_len = if settled.is_empty() {
            0
        } else {
            let path = catalog::states_path(&self.dir, first);
            let mut w = TableWriter::new(&path, first, end).whole_keys();
            for (k, v, _) in &settled {
                if let Err(e) = w.push(k, v) {
                    return self.seal_unfit(first, e.to_string());
                }
            }
            w.finish(&cfg.key)?
        };
        let summary = out.finish(&cfg.key)?;
        if self.fault_after_rename.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Sled(format!(
                "fault injected after {} was renamed into place",
                path.display()
            )));
        }
        let entry = catalog::Entry {
            table_len,
            states_len,
            ..catalog::Entry::from_summary(&summary)
        };
        let reader = SegmentReader::open(&path)?;
        let table = self.open_table(&entry)?;
        let states = self.open_states(&entry)?;
        // A small batch registers the file (and rewrites a chunk of an older store that reaches
        // past it); what the file now holds leaves sled afterwards, in small batches
        // ([`Store::drop_sealed`]): sled holds its lock for a whole batch, and appends wait.
        b.insert(pk(G, &first.to_be_bytes()), entry.encode());
        // Into the in-memory catalog first: from here on a reader that misses a record (or a
        // posting, or a state) in sled finds it in the file.
        let mut with = files.as_ref().clone();
        with.push(Arc::new(Sealed {
            entry,
            reader,
            table,
            states,
            period: std::sync::OnceLock::new(),
        }));
        self.set_catalog(Arc::new(with));
        if let Err(e) = self.tree.apply_batch(b) {
            // sled may have applied part of the batch (it stops at its first error): the file
            // may now hold the only copy of some records. Keep it, and keep it in the catalog
            // so that every record stays readable; seal nothing more in this process. The next
            // open finds the file unlisted and keeps it (see `load_catalog`).
            self.seal_blocked.store(end + 1, Ordering::SeqCst);
            tracing::error!(
                "registering the segment file {} failed (it is kept; no more sealing until a restart): {e}",
                path.display()
            );
            return Err(e.into());
        }
        self.sealed.fetch_max(end, Ordering::SeqCst);
        if self.fault_after_register.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Sled(format!(
                "fault injected after {} was registered",
                path.display()
            )));
        }
        // A failure here leaves copies in sled that the next open removes.
        if let Err(e) = self.drop_sealed(end) {
            tracing::warn!(
                "removing sealed entries from the store failed (the next open retries): {e}"
            );
        }
        // Sealing's batches are not in the log: make them durable now, so that a quiet hall
        // does not keep a finished seal only in memory.
        if let Err(e) = self.flush_sled() {
            tracing::warn!("flushing the store after sealing failed (a restart seals again): {e}");
        }
        Ok(true)
    }

    /// Merges the next run of sealed files that is due ([`catalog::due_merge`]): the files of a
    /// closed period into one, or `fanout` files of one level into one of the next. The sealer
    /// thread calls it after sealing; a reader never waits for it. Returns whether it merged.
    ///
    /// The merged files are written, fsynced and renamed into place; one sled batch replaces
    /// the runs' catalog entries with the merged one (keyed by the same first record), made
    /// durable; then the in-memory catalog takes it, and the old files are removed (a reader
    /// holding them open still reads them). A crash at any point leaves either the old files
    /// listed (the merged ones are then removed at open) or the merged one (the old ones are
    /// then removed at open): records are never in no listed file. The merged segment is
    /// checked to end at the run's last link before it is registered. `stop` is asked between
    /// files and every 65,536 table entries; a stopped merge leaves nothing behind.
    ///
    /// # Errors
    /// Reading a file, writing the merged ones, or sled (the old files stay listed).
    pub fn merge_next(&self, stop: &dyn Fn() -> bool) -> Result<bool, StoreError> {
        let _guard = self
            .sealing
            .lock()
            .map_err(|_| StoreError::Sled("sealing lock poisoned".into()))?;
        let Some(cfg) = &self.seal_config else {
            return Ok(false);
        };
        let files = self.catalog();
        let Some(run) = self.due_merge(cfg, &files) else {
            return Ok(false);
        };
        self.merge_run(cfg, &files, run, stop)
    }

    /// While the guard lives, no merge replaces sealed files: a reader that lists them and then
    /// checks them by name ([`Store::check_segment`]) holds it. A merge writes its file
    /// meanwhile and waits only to register it.
    pub fn hold_files(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.files_gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// How many merges this process made.
    pub fn merge_count(&self) -> u64 {
        self.merges.load(Ordering::SeqCst)
    }

    /// Whether a merge is due now (the benchmark waits until none is).
    pub fn merge_pending(&self) -> bool {
        self.seal_config
            .as_ref()
            .is_some_and(|cfg| self.due_merge(cfg, &self.catalog()).is_some())
    }

    /// Test and migration hook: merges until nothing is due.
    ///
    /// # Errors
    /// As [`Store::merge_next`].
    #[doc(hidden)]
    pub fn merge_due(&self) -> Result<(), StoreError> {
        while self.merge_next(&|| false)? {}
        Ok(())
    }

    fn due_merge(&self, cfg: &Sealing, files: &[Arc<Sealed>]) -> Option<std::ops::Range<usize>> {
        if cfg.fanout < 2 || self.merge_blocked.load(Ordering::SeqCst) {
            return None;
        }
        let mut shapes = Vec::with_capacity(files.len());
        for s in files {
            let period = match (s.period.get(), &cfg.period_of) {
                (Some(p), _) => *p,
                (None, None) => None,
                // One block of the file, once per file and process; a read that fails is not
                // remembered (an unknown period would look like the end of the one before).
                (None, Some(f)) => match s.reader.get(s.entry.first) {
                    Ok(Some(body)) => *s.period.get_or_init(|| f(&body)),
                    _ => return None,
                },
            };
            shapes.push(catalog::Shape {
                period,
                records: s.entry.last - s.entry.first + 1,
            });
        }
        catalog::due_merge(&shapes, cfg.window, cfg.fanout)
    }

    /// Merges `files[run]` (see [`Store::merge_next`]).
    fn merge_run(
        &self,
        cfg: &Sealing,
        files: &Snapshot,
        run: std::ops::Range<usize>,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool, StoreError> {
        let parts = &files[run.clone()];
        let (Some(head), Some(tail)) = (parts.first(), parts.last()) else {
            return Ok(false);
        };
        let (first, last) = (head.entry.first, tail.entry.last);
        // Room for a second copy of the run, and the reserve left after it: a merge never
        // brings the disk to where the line halts.
        let size: u64 = parts
            .iter()
            .map(|p| p.entry.len + p.entry.table_len + p.entry.states_len)
            .sum();
        let free = fs2::available_space(&self.dir).map_err(io_err(&self.dir))?;
        if free < size.saturating_add(cfg.reserve_bytes) {
            tracing::warn!(
                "not merging records {first}..={last}: {} MiB free, the merge needs {} MiB and leaves {} MiB (tried again after the next sealed file)",
                free >> 20,
                size >> 20,
                cfg.reserve_bytes >> 20
            );
            return Ok(false);
        }
        // Only what its seal vouches for is merged and signed again: every part is checked
        // whole first (blocks, links, digest, signatures; its tables too).
        let vk = cfg.key.verifying_key();
        for p in parts {
            if stop() {
                return Ok(false);
            }
            let damaged = |what: String| StoreError::Catalog {
                file: p.reader.path().to_path_buf(),
                what: format!("not merged: {what}"),
            };
            p.reader
                .verify(&vk, &p.entry.prev_link)
                .map_err(|e| damaged(e.to_string()))?;
            for t in [&p.table, &p.states].into_iter().flatten() {
                t.verify(&vk)
                    .map_err(|e| damaged(format!("{}: {e}", t.path().display())))?;
            }
        }
        let named = catalog::Entry {
            first,
            last,
            merged: true,
            ..head.entry.clone()
        };
        let seg_path = named.seg_path(&self.dir);
        let new_files = [
            named.table_path(&self.dir),
            named.states_path(&self.dir),
            seg_path.clone(),
        ];
        let remove_new = || {
            for p in &new_files {
                let _ = std::fs::remove_file(p);
            }
        };
        let mut out = SegmentWriter::create(&seg_path, first, head.entry.prev_link)?;
        let mut copied: u64 = 0;
        for p in parts {
            for r in p.reader.records() {
                let (seq, body) = r?;
                out.push(seq, &body)?;
                copied += 1;
                // A stopped merge leaves nothing: `out` removes its temporary file.
                if copied.is_multiple_of(65_536) && stop() {
                    return Ok(false);
                }
            }
        }
        if out.link() != tail.entry.last_link {
            return Err(StoreError::Catalog {
                file: seg_path,
                what: format!(
                    "merging records {first}..={last}: the records do not end at the last file's link (nothing merged; verification tells which file is wrong)"
                ),
            });
        }
        let tables: Vec<&TableReader> = parts.iter().filter_map(|p| p.table.as_ref()).collect();
        let states: Vec<&TableReader> = parts.iter().filter_map(|p| p.states.as_ref()).collect();
        let merged_tables = merge_tables(
            TableWriter::new(&new_files[0], first, last).range_only(&cfg.range_only_tags),
            &tables,
            &cfg.key,
            stop,
        )
        .and_then(|t| {
            let Some(t) = t else { return Ok(None) };
            let w = TableWriter::new(&new_files[1], first, last).whole_keys();
            Ok(merge_tables(w, &states, &cfg.key, stop)?.map(|s| (t, s)))
        });
        let (table_len, states_len) = match merged_tables {
            Ok(Some(lens)) => lens,
            // Stopped (shutdown), or failed: nothing left behind.
            Ok(None) => {
                remove_new();
                return Ok(false);
            }
            Err(e) => {
                remove_new();
                return Err(e);
            }
        };
        let summary = out.finish(&cfg.key).inspect_err(|_| remove_new())?;
        let entry = catalog::Entry {
            table_len,
            states_len,
            merged: true,
            ..catalog::Entry::from_summary(&summary)
        };
        let merged = (|| {
            Ok::<_, StoreError>(Sealed {
                reader: SegmentReader::open(&seg_path)?,
                table: self.open_table(&entry)?,
                states: self.open_states(&entry)?,
                period: std::sync::OnceLock::new(),
                entry: entry.clone(),
            })
        })()
        .inspect_err(|_| remove_new())?;
        if let Some(p) = head.period.get() {
            let _ = merged.period.set(*p);
        }
        let fault = |stage: u8| {
            if self
                .fault_merge
                .compare_exchange(stage, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Err(StoreError::Sled(format!(
                    "fault injected in merging records {first}..={last} (stage {stage})"
                )));
            }
            Ok(())
        };
        fault(1)?;
        // No one is checking the old files by name from here until they are gone.
        let _gate = self.files_gate.write().unwrap_or_else(|p| p.into_inner());
        let mut b = sled::Batch::default();
        b.insert(pk(G, &first.to_be_bytes()), entry.encode());
        for p in &parts[1..] {
            b.remove(pk(G, &p.entry.first.to_be_bytes()));
        }
        if let Err(e) = self.tree.apply_batch(b) {
            // Whatever part of the batch sled kept, every file stays: the next open lists one
            // set and removes the other. No more merging in this process.
            self.merge_blocked.store(true, Ordering::SeqCst);
            tracing::error!(
                "registering the merged file {} failed (every file is kept; no more merging until a restart): {e}",
                seg_path.display()
            );
            return Err(e.into());
        }
        // Durable before any old file goes: the old entries must not come back without them.
        if let Err(e) = self.flush_sled() {
            self.merge_blocked.store(true, Ordering::SeqCst);
            return Err(e);
        }
        fault(2)?;
        let mut with: Vec<Arc<Sealed>> = files[..run.start].to_vec();
        with.push(Arc::new(merged));
        with.extend_from_slice(&files[run.end..]);
        self.set_catalog(Arc::new(with));
        self.merges.fetch_add(1, Ordering::SeqCst);
        for p in parts {
            let e = &p.entry;
            let mut old = vec![e.seg_path(&self.dir)];
            if p.table.is_some() {
                old.push(e.table_path(&self.dir));
            }
            if p.states.is_some() {
                old.push(e.states_path(&self.dir));
            }
            for f in old {
                if let Err(e) = std::fs::remove_file(&f)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(
                        "removing {} after it was merged failed (the next open removes it): {e}",
                        f.display()
                    );
                }
            }
        }
        if let Err(e) = fsync_dir(&self.dir.join(catalog::DIR)) {
            tracing::warn!(
                "syncing the directory of sealed files after a merge failed (a crash may bring old files back; the next open removes them): {e}"
            );
        }
        tracing::info!(
            "merged {} sealed files into records {first}..={last}",
            parts.len()
        );
        Ok(true)
    }

    /// Removes from sled what sealed files hold, for the records up to `upto` (all catalogued):
    /// journal records, postings and their lists, and the settled states that are still the
    /// value their state table holds (under the commit gate, so that no commit writes one
    /// again meanwhile). In batches of [`DROP_BATCH`] keys. Idempotent: open calls it too, to
    /// finish what a crash interrupted.
    fn drop_sealed(&self, upto: u64) -> Result<(), StoreError> {
        let files = self.catalog();
        if files.last().is_none_or(|s| s.entry.last < upto) {
            return Ok(());
        }
        let upto_key = |space: u8| pk(space, &upto.to_be_bytes());
        loop {
            let mut b = sled::Batch::default();
            let mut n = 0;
            for kv in self.tree.range(pk(J, &[])..=upto_key(J)).take(DROP_BATCH) {
                b.remove(kv?.0);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.tree.apply_batch(b)?;
        }
        loop {
            let mut b = sled::Batch::default();
            let mut n = 0;
            for kv in self
                .tree
                .range(pk(Y, &[])..=upto_key(Y))
                .take(DROP_BATCH / 8)
            {
                let (yk, list) = kv?;
                for k in listed_postings(&list, key_u64(&yk[1..])) {
                    b.remove(pk(X, k));
                }
                b.remove(yk);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.tree.apply_batch(b)?;
        }
        let v_end = pk(V, &(upto + 1).to_be_bytes());
        loop {
            // The table's values are read first, without the gate (a block read and a
            // decompression each); under it only sled is checked and the batch applied.
            let mut found: Vec<(sled::IVec, u64, Option<Vec<u8>>)> = Vec::new();
            for kv in self
                .tree
                .range(pk(V, &[])..v_end.clone())
                .take(DROP_BATCH / 4)
            {
                let (vk, _) = kv?;
                let seq = key_u64(&vk[1..9]);
                let table = catalog::find(&files, seq).and_then(|s| s.states.as_ref());
                let sealed = match table {
                    Some(t) => t.get(&vk[9..])?,
                    None => None,
                };
                found.push((vk, seq, sealed));
            }
            if found.is_empty() {
                break;
            }
            let mut b = sled::Batch::default();
            let _gate = self.commit_gate.write().unwrap_or_else(|p| p.into_inner());
            for (vk, seq, sealed) in found {
                let k = &vk[9..];
                let settled_then = self.tree.get(pk(Z, k))?.is_some_and(|z| key_u64(&z) == seq);
                if settled_then
                    && let (Some(tv), Some(v)) = (sealed, self.tree.get(pk(S, k))?)
                    && tv == v.as_ref()
                {
                    b.remove(pk(S, k));
                    b.remove(pk(Z, k));
                }
                b.remove(vk);
            }
            self.tree.apply_batch(b)?;
        }
        Ok(())
    }

    /// A run of records found unfit for a segment: logged once, not retried until reopened.
    fn seal_unfit(&self, first: u64, why: impl Into<Unfit>) -> Result<bool, StoreError> {
        let why = match why.into() {
            Unfit::Record(why) => why,
            Unfit::Io(e) => return Err(e),
        };
        self.seal_blocked.store(first, Ordering::SeqCst);
        tracing::warn!(
            "records from {first} are not sealed into a segment file: {why} (they stay in the store; verification reports it)"
        );
        Ok(false)
    }

    /// Moves full chunks of records from `j` into `k` while at least [`CHUNK`] records up to
    /// `head` are unsealed. Stops (leaving the records where they are) at a gap or a malformed
    /// key: sealing never reorders or drops anything, and verification reports the gap.
    fn seal_chunks(&self, head: u64) -> Result<(), StoreError> {
        loop {
            let sealed = self.sealed.load(Ordering::SeqCst);
            if head < sealed + CHUNK {
                return Ok(());
            }
            let first = sealed + 1;
            let mut chunk = Vec::with_capacity(CHUNK as usize * 280);
            let mut b = sled::Batch::default();
            let mut expected = first;
            for kv in self
                .tree
                .range(pk(J, &first.to_be_bytes())..pk(J, &(first + CHUNK).to_be_bytes()))
            {
                let (k, v) = kv?;
                if key_u64(&k[1..]) != expected {
                    return Ok(());
                }
                push_entry(&mut chunk, &k[1..], &v);
                b.remove(k);
                expected += 1;
            }
            if expected != first + CHUNK {
                return Ok(());
            }
            b.insert(pk(K, &first.to_be_bytes()), chunk);
            self.tree.apply_batch(b)?;
            self.sealed.store(first + CHUNK - 1, Ordering::SeqCst);
        }
    }

    /// The chunk holding `seq`'s place: the one with the greatest first record ≤ `seq`.
    fn chunk_at(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        Ok(
            match self
                .tree
                .range(pk(K, &[])..=pk(K, &seq.to_be_bytes()))
                .next_back()
            {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((key_u64(&k[1..]), v))
                }
                None => None,
            },
        )
    }

    /// The last chunk.
    fn last_chunk(&self) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        Ok(
            match self.tree.range(pk(K, &[])..pk(K + 1, &[])).next_back() {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((key_u64(&k[1..]), v))
                }
                None => None,
            },
        )
    }

    /// The durability point: writes the frames committed since the last sync to the log and
    /// fdatasyncs it (one write, one device wait; sled is flushed lazily, see *Durability*).
    ///
    /// # Errors
    /// The write or the fdatasync failed, or an earlier one or a background sled flush did:
    /// nothing committed since the last successful sync may be treated as durable, now or
    /// later (every later sync fails too).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut files = self
            .wal_files
            .lock()
            .map_err(|_| StoreError::Sled("log file lock poisoned".into()))?;
        if let Some(why) = self.shared.failure() {
            return Err(StoreError::Sled(format!(
                "the store stopped making writes durable: {why}"
            )));
        }
        let pending = std::mem::take(
            &mut self
                .log
                .lock()
                .map_err(|_| StoreError::Sled("log lock poisoned".into()))?
                .pending,
        );
        if pending.is_empty() {
            return Ok(());
        }
        let delay = self.sync_delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        let shared = &self.shared;
        let mut flush = || {
            shared
                .flush_sled()
                .map_err(|e| (shared.dir.join("db"), std::io::Error::other(e.to_string())))
        };
        let flushed = shared.flushed.load(Ordering::SeqCst);
        files
            .write(&pending, flushed, &mut flush)
            .map_err(|(path, source)| {
                shared.fail(format!("writing the log {}: {source}", path.display()));
                StoreError::Io { path, source }
            })
    }

    /// Flushes sled and fdatasyncs its files now (what the background thread does now and
    /// then): for writes that bypass the log.
    ///
    /// # Errors
    /// The flush or an fdatasync failed.
    fn flush_sled(&self) -> Result<(), StoreError> {
        self.shared.flush_sled().map(|_| ())
    }

    /// One journal record.
    ///
    /// # Errors
    /// sled failed.
    pub fn journal_get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.segment_get(seq)? {
            return Ok(Some(v));
        }
        if let Some(v) = self.tree.get(pk(J, &seq.to_be_bytes()))? {
            return Ok(Some(v.to_vec()));
        }
        // Sealed, or being sealed right now (then it is in its chunk once `j` lost it, or in a
        // file once the chunk is gone: the file entered the catalog before).
        if let Some((_, chunk)) = self.chunk_at(seq)?
            && let Some((_, v)) = chunk_entries(&chunk).find(|(k, _)| key_u64(k) == seq)
        {
            return Ok(Some(v.to_vec()));
        }
        self.segment_get(seq)
    }

    /// Record `seq` as stored (`link ‖ body`) from the segment file that holds it, if one does.
    fn segment_get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let files = self.catalog();
        let Some(s) = catalog::find(&files, seq) else {
            return Ok(None);
        };
        Ok(s.reader
            .get_linked(seq)?
            .map(|(link, body)| chain::stored(&link, &body)))
    }

    /// Whether a segment file of the current catalog holds `seq`.
    fn segment_holds(&self, seq: u64) -> bool {
        catalog::find(&self.catalog(), seq).is_some()
    }

    /// Calls `f` with the records from `*next` (below `end`) held by the segment files of
    /// `files`, in order, moving `*next` past each. Returns false when `f` asked to stop or
    /// `end` was reached.
    fn walk_segments(
        files: &[Arc<Sealed>],
        next: &mut u64,
        end: u64,
        f: &mut impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        // No record precedes the first file (it starts at record 1: checked at open).
        if let Some(f0) = files.first()
            && *next < f0.entry.first
        {
            *next = f0.entry.first;
        }
        while let Some(s) = catalog::find(files, *next) {
            let (mut link, records) = s.reader.records_from(*next)?;
            for r in records {
                let (seq, body) = r?;
                link = chain::link(&link, seq, &body);
                if seq < *next {
                    continue;
                }
                if seq >= end {
                    return Ok(false);
                }
                if !f(&seq.to_be_bytes(), &chain::stored(&link, &body)) {
                    return Ok(false);
                }
                *next = seq + 1;
            }
            if *next <= s.entry.last {
                // The file ended early: its footer and blocks disagree (a damaged file).
                return Err(StoreError::Catalog {
                    file: s.reader.path().to_path_buf(),
                    what: format!("the file ends before record {}", *next),
                });
            }
        }
        Ok(true)
    }

    /// The last journal record, if any.
    ///
    /// # Errors
    /// sled failed.
    pub fn journal_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if let Some(kv) = self.tree.range(pk(J, &[])..pk(J + 1, &[])).next_back() {
            let (k, v) = kv?;
            return Ok(Some((key_u64(&k[1..]), v.to_vec())));
        }
        if let Some(last) = self.last_chunk()?.and_then(|(_, chunk)| {
            chunk_entries(&chunk)
                .last()
                .map(|(k, v)| (key_u64(k), v.to_vec()))
        }) {
            return Ok(Some(last));
        }
        // Sealing always leaves the newest records in sled; an old store, or one whose tail was
        // removed, may have none there.
        let Some(last) = self.catalog().last().map(|s| s.entry.last) else {
            return Ok(None);
        };
        Ok(self.segment_get(last)?.map(|v| (last, v)))
    }

    /// Number of journal records (a full count: use for reports, not on hot paths).
    pub fn journal_len(&self) -> usize {
        let files = self.catalog();
        let in_files: u64 = files.iter().map(|s| s.entry.last - s.entry.first + 1).sum();
        // Records past the files only: copies of sealed ones that sled still holds (a crash
        // before they were removed) are not counted twice.
        let past = files.last().map_or(0, |s| s.entry.last);
        let later = |k: &[u8]| k.len() != 8 || key_u64(k) > past;
        let sealed: usize = self
            .tree
            .scan_prefix([K])
            .filter_map(Result::ok)
            .map(|(_, v)| chunk_entries(&v).filter(|(k, _)| later(k)).count())
            .sum();
        usize::try_from(in_files).unwrap_or(usize::MAX)
            + sealed
            + self
                .tree
                .scan_prefix([J])
                .filter_map(Result::ok)
                .filter(|(k, _)| later(&k[1..]))
                .count()
    }

    /// Calls `f` for every journal record with key ≥ `from`, in key order, until it returns
    /// `false`. The key is passed as raw bytes so that a tampered key is reported, not hidden.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn journal_for_each(
        &self,
        from: u64,
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.journal_for_each_in(from, None, f)
    }

    /// As [`Store::journal_for_each`], for the records with keys in `[from, to)` (to the end of
    /// the journal when `to` is `None`): lets several threads each read a part of the journal.
    /// Segment files first, then sealed chunks, then the tail; records moved into a chunk or a
    /// file during the walk are read there: a walk never misses a record that sealing moved.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn journal_for_each_in(
        &self,
        from: u64,
        to: Option<u64>,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let end = to.unwrap_or(u64::MAX);
        let mut next = from;
        let mut in_chunks = false;
        'walk: loop {
            // A snapshot taken now holds every file whose records left sled before now.
            if !Store::walk_segments(&self.catalog(), &mut next, end, &mut f)? {
                return Ok(());
            }
            if next >= end {
                return Ok(());
            }
            if in_chunks || next <= self.sealed.load(Ordering::SeqCst) {
                let start = self.chunk_at(next)?.map_or(next, |(first, _)| first);
                for kv in self.tree.range(pk(K, &start.to_be_bytes())..pk(K + 1, &[])) {
                    let (_, chunk) = kv?;
                    for (k, v) in chunk_entries(&chunk) {
                        let seq = key_u64(k);
                        if seq != u64::MAX && seq < next {
                            continue;
                        }
                        // Chunks removed under the walk: their records are in a file now.
                        if seq != u64::MAX && seq > next && self.segment_holds(next) {
                            in_chunks = true;
                            continue 'walk;
                        }
                        if seq != u64::MAX && seq >= end {
                            return Ok(());
                        }
                        if !f(k, v) {
                            return Ok(());
                        }
                        // A malformed entry (reported to `f` above) does not move the walk.
                        if seq != u64::MAX {
                            next = seq + 1;
                        }
                    }
                }
            }
            if next >= end {
                return Ok(());
            }
            let hi = match to {
                Some(to) => pk(J, &to.to_be_bytes()),
                None => pk(J + 1, &[]),
            };
            // `next` missing from `j` (a gap, or `j` ran out) may have been sealed while we
            // read: a sled batch is atomic, so if it was, its chunk holds it now. Then go back
            // to the chunks from there; the walk moves forward each time, so this ends.
            let mut reread = false;
            for kv in self.tree.range(pk(J, &next.to_be_bytes())..hi) {
                let (k, v) = kv?;
                let seq = key_u64(&k[1..]);
                if seq != next && (self.chunk_holds(next)? || self.segment_holds(next)) {
                    reread = true;
                    break;
                }
                if !f(&k[1..], &v) {
                    return Ok(());
                }
                next = seq.saturating_add(1);
            }
            if !reread && (next >= end || !(self.chunk_holds(next)? || self.segment_holds(next))) {
                return Ok(());
            }
            in_chunks = true;
        }
    }

    /// Whether a chunk holds record `seq`.
    fn chunk_holds(&self, seq: u64) -> Result<bool, StoreError> {
        Ok(self
            .chunk_at(seq)?
            .is_some_and(|(_, chunk)| chunk_entries(&chunk).any(|(k, _)| key_u64(k) == seq)))
    }

    /// A state entry.
    ///
    /// # Errors
    /// sled failed.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        loop {
            // The catalog first: a state that leaves sled is in a file of the catalog already.
            let snap = self.catalog();
            if let Some(v) = self.tree.get(pk(S, key))? {
                return Ok(Some(v.to_vec()));
            }
            // Settled and sealed: the newest state table that holds it.
            for s in snap.iter().rev() {
                if let Some(t) = &s.states
                    && let Some(v) = t.get(key)?
                {
                    return Ok(Some(v));
                }
            }
            if Arc::ptr_eq(&snap, &self.catalog()) {
                return Ok(None);
            }
        }
    }

    /// Reads every state entry whose key starts with `prefix` once, in key order, so that sled
    /// keeps their pages in its cache: a later point read is answered from memory instead of
    /// from several scattered reads of the log. Returns (entries, bytes); `progress(entries)`
    /// is called every 100,000 entries. Stops early when `stop()` answers true.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn warm_state(
        &self,
        prefix: &[u8],
        progress: impl FnMut(u64),
        stop: impl Fn() -> bool,
    ) -> Result<(u64, u64), StoreError> {
        self.warm(pk(S, prefix), progress, stop)
    }

    /// As [`Store::warm_state`], for index entries.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn warm_index(
        &self,
        prefix: &[u8],
        progress: impl FnMut(u64),
        stop: impl Fn() -> bool,
    ) -> Result<(u64, u64), StoreError> {
        self.warm(pk(X, prefix), progress, stop)
    }

    fn warm(
        &self,
        prefix: Vec<u8>,
        mut progress: impl FnMut(u64),
        stop: impl Fn() -> bool,
    ) -> Result<(u64, u64), StoreError> {
        let (mut n, mut bytes) = (0u64, 0u64);
        for kv in self.tree.scan_prefix(prefix) {
            let (k, v) = kv?;
            n += 1;
            bytes += (k.len() + v.len()) as u64;
            if n.is_multiple_of(1_000) && stop() {
                break;
            }
            if n.is_multiple_of(100_000) {
                progress(n);
            }
        }
        Ok((n, bytes))
    }

    /// Per keyspace (`j`, `s`, `x`, `c`): entries, key bytes and value bytes. A full scan: for
    /// reports and benchmarks, not for hot paths.
    ///
    /// # Errors
    /// sled failed.
    pub fn space_stats(&self) -> Result<Vec<(char, u64, u64, u64)>, StoreError> {
        let mut out: Vec<(char, u64, u64, u64)> = Vec::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            let c = k.first().map_or('?', |b| *b as char);
            match out.iter_mut().find(|e| e.0 == c) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += k.len() as u64;
                    e.3 += v.len() as u64;
                }
                None => out.push((c, 1, k.len() as u64, v.len() as u64)),
            }
        }
        Ok(out)
    }

    /// An operational state entry.
    ///
    /// # Errors
    /// sled failed.
    pub fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(pk(A, key))?.map(|v| v.to_vec()))
    }

    /// Calls `f` with every operational entry (key without the keyspace byte, value) whose key
    /// is < `before` and starts with `prefix`, in reverse key order, until it returns `false`.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn aux_for_each_rev(
        &self,
        prefix: &[u8],
        before: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if before <= prefix {
            return Ok(());
        }
        for kv in self.tree.range(pk(A, prefix)..pk(A, before)).rev() {
            let (k, v) = kv?;
            if !k[1..].starts_with(prefix) || !f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with every operational entry (key without the keyspace byte, value) whose key
    /// is ≥ `from` and starts with `prefix`, in key order, until it returns `false`.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn aux_for_each(
        &self,
        prefix: &[u8],
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let start = if from > prefix { from } else { prefix };
        for kv in self.tree.range(pk(A, start)..) {
            let (k, v) = kv?;
            if k.first() != Some(&A) || !k[1..].starts_with(prefix) || !f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    /// Index keys starting with `prefix`, in order, at most `limit`: sled's index and the
    /// sealed index tables alike. For a posting tag, `prefix` is a whole `tag 0 key 0` (the
    /// tables are found by their bloom filters over whole prefixes) or just `tag 0`.
    ///
    /// # Errors
    /// sled failed, or an index table cannot be read.
    pub fn index_scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .index_scan_kv(prefix, limit)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Index entries (key, value) starting with `prefix`, in order, at most `limit`.
    ///
    /// # Errors
    /// sled failed, or an index table cannot be read.
    pub fn index_scan_kv(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let bloom = whole_prefix(prefix).then_some(prefix);
        self.index_batch(prefix, &prefix_end(prefix), false, limit, bloom)
    }

    /// Whether the index holds `key` (without the keyspace byte).
    ///
    /// # Errors
    /// sled failed, or an index table cannot be read.
    pub fn index_contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        let mut end = key.to_vec();
        end.push(0);
        let bloom = Some(table::prefix_of(key)).filter(|p| whole_prefix(p));
        Ok(!self.index_batch(key, &end, false, 1, bloom)?.is_empty())
    }

    /// The last index entry in `[from, to]` (both without the keyspace byte): a floor lookup.
    /// Sled's index only: for registers (keys that never leave sled), not postings.
    ///
    /// # Errors
    /// sled failed.
    pub fn index_floor(&self, from: &[u8], to: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        if to < from {
            return Ok(None);
        }
        match self.tree.range(pk(X, from)..=pk(X, to)).next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(Some((k[1..].to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Calls `f` with every index entry (key without the keyspace byte, value) in
    /// `[from, to)`, in key order, until it returns `false`. Sled's index only: for registers
    /// (keys that never leave sled), not postings.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn index_range_kv_each(
        &self,
        from: &[u8],
        to: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if to <= from {
            return Ok(());
        }
        for kv in self.tree.range(pk(X, from)..pk(X, to)) {
            let (k, v) = kv?;
            if !f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with every state entry whose key starts with `prefix` (key without the
    /// keyspace byte, value), in key order. Sled's states only: for states never written
    /// settled (lots), not items or sessions, which may be in sealed state tables.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn state_for_each(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        for kv in self.tree.scan_prefix(pk(S, prefix)) {
            let (k, v) = kv?;
            f(&k[1..], &v);
        }
        Ok(())
    }

    /// Index keys in `[from, to)`, in order, at most `limit`.
    ///
    /// # Errors
    /// sled failed, or an index table cannot be read.
    pub fn index_range(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .index_batch(from, to, false, limit, None)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Calls `f` with every index key in `[from, to)` (without the keyspace byte), in key order
    /// or, when `reverse`, from the last down, until it returns `false`: a page of a large range
    /// without reading the whole range first (it reads batches of [`INDEX_BATCH`] keys). The
    /// sealed index tables it reads are those whose keys of the range's tag overlap it; for the
    /// postings of one job, session … use [`Store::postings_each`], which knows which tables
    /// hold them.
    ///
    /// # Errors
    /// sled failed while reading, or an index table cannot be read.
    pub fn index_range_each(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.index_each(from, to, reverse, None, f)
    }

    /// Calls `f` with the postings `prefix ‖ seq` for `seq` in `[lo, hi)` (`prefix` is a whole
    /// `tag 0 key 0`), in order or newest first, until it returns `false`. Only the tables whose
    /// bloom filter knows `prefix` and whose records overlap `[lo, hi)` are read.
    ///
    /// # Errors
    /// sled failed while reading, or an index table cannot be read.
    pub fn postings_each(
        &self,
        prefix: &[u8],
        lo: u64,
        hi: u64,
        reverse: bool,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let (from, to) = (
            [prefix, &lo.to_be_bytes()[..]].concat(),
            [prefix, &hi.to_be_bytes()[..]].concat(),
        );
        // A prefix that is not a whole `tag 0 key 0` cannot use the bloom filters.
        let bloom = whole_prefix(prefix).then_some(prefix);
        self.index_each(&from, &to, reverse, bloom, f)
    }

    fn index_each(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        bloom: Option<&[u8]>,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let (mut lo, mut hi) = (from.to_vec(), to.to_vec());
        // Small batches first (a page often wants a few dozen keys), growing to INDEX_BATCH.
        let mut size = 32;
        loop {
            let batch = self.index_batch(&lo, &hi, reverse, size, bloom)?;
            let full = batch.len() == size;
            size = (size * 2).min(INDEX_BATCH);
            let Some((last, _)) = batch.last().cloned() else {
                return Ok(());
            };
            for (k, _) in &batch {
                if !f(k) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            // Each batch is consistent on its own; the next starts past the last key.
            if reverse {
                hi = last;
            } else {
                lo = last;
                lo.push(0);
            }
        }
    }

    /// Up to `limit` index entries in `[from, to)`, in order (or from the last down), merged
    /// from sled's index and the sealed index tables that can hold them: those whose bloom
    /// filter knows `bloom` (a whole posting prefix, when the range lies within one), else
    /// those whose keys of the range's tag overlap it. Tables are read lazily, in order of
    /// where their keys can start, so a query reads blocks only from the tables it needs.
    ///
    /// Consistent against sealing: the catalog is read before sled, and the whole read is done
    /// again if a file entered the catalog meanwhile (its postings may have left sled during the
    /// read; a file enters the catalog before they leave).
    fn index_batch(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
        bloom: Option<&[u8]>,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        loop {
            let snap = self.catalog();
            let out = self.index_merge(&snap, from, to, reverse, limit, bloom)?;
            if Arc::ptr_eq(&snap, &self.catalog()) {
                return Ok(out);
            }
        }
    }

    fn index_merge(
        &self,
        snap: &Snapshot,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
        bloom: Option<&[u8]>,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let mut out: Vec<IndexEntry> = Vec::new();
        if to <= from || limit == 0 {
            return Ok(out);
        }
        let range = self.tree.range(pk(X, from)..pk(X, to));
        let sled: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut sources = vec![MergeSource {
            src: Src::Sled(sled),
            head: None,
            bound: None,
            done: false,
        }];
        let tag = table::tag_of(from);
        let probe = bloom.map(table::Probe::new);
        for t in snap.iter().filter_map(|s| s.table.as_ref()) {
            // Where this table's keys in the range can start (forward) or end (reverse).
            let (mut lo, mut hi) = (from.to_vec(), to.to_vec());
            if let (Some(p), Some(probe)) = (bloom, &probe) {
                // Its records' seqs first (cheap), then its bloom filter.
                let (first, last) = t.seqs();
                lo = lo.max([p, &first.to_be_bytes()[..]].concat());
                hi = hi.min([p, &last.to_be_bytes()[..], &[0][..]].concat());
                if hi <= lo || !t.may_hold(probe) {
                    continue;
                }
            } else if from.get(tag.len()) == Some(&0) && to <= [tag, &[1][..]].concat().as_slice() {
                // The range lies within one tag (its keys are `tag 0 …`, below `tag 1`).
                let Some((min, max)) = t.tag_bounds(tag) else {
                    continue;
                };
                lo = lo.max(min.to_vec());
                hi = hi.min([max, &[0][..]].concat());
            }
            if hi <= lo {
                continue;
            }
            let bound = if reverse { hi.clone() } else { lo.clone() };
            sources.push(MergeSource {
                src: Src::Table(t.cursor(&lo, &hi, reverse)),
                head: None,
                bound: Some(bound),
                done: false,
            });
        }
        sources[0].advance()?;
        while out.len() < limit {
            // The source whose next key comes first; an unopened table (its bound) first on a tie.
            let mut best: Option<(usize, &[u8], bool)> = None;
            for (i, s) in sources.iter().enumerate() {
                let (key, unopened) = match (&s.bound, &s.head) {
                    (Some(b), _) => (b.as_slice(), true),
                    (None, Some((k, _))) => (k.as_slice(), false),
                    (None, None) => continue,
                };
                let better = match best {
                    None => true,
                    Some((_, bk, bu)) => {
                        let ord = if reverse {
                            key.cmp(bk).reverse()
                        } else {
                            key.cmp(bk)
                        };
                        ord.is_lt() || (ord.is_eq() && unopened && !bu)
                    }
                };
                if better {
                    best = Some((i, key, unopened));
                }
            }
            let Some((i, _, unopened)) = best else {
                break;
            };
            let s = &mut sources[i];
            if unopened {
                s.bound = None;
                s.advance()?;
                continue;
            }
            if let Some(e) = s.head.take()
                && out.last().is_none_or(|(k, _)| *k != e.0)
            {
                out.push(e);
            }
            s.advance()?;
        }
        Ok(out)
    }

    /// All stored checkpoints, by sequence number.
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.checkpoints_from(0)
    }

    /// The stored checkpoints at or after `seq`, in order (a range read: its cost is the
    /// number it returns, not the number stored).
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoints_from(&self, seq: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.range(pk(C, &seq.to_be_bytes())..pk(C + 1, &[])) {
            let (k, v) = kv?;
            out.push((key_u64(&k[1..]), v.to_vec()));
        }
        Ok(out)
    }

    /// The last stored checkpoint.
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoint_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(
            match self.tree.range(pk(C, &[])..pk(C + 1, &[])).next_back() {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((key_u64(&k[1..]), v.to_vec()))
                }
                None => None,
            },
        )
    }

    /// The last checkpoint at or before `seq`.
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoint_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(
            match self
                .tree
                .range(pk(C, &[])..=pk(C, &seq.to_be_bytes()))
                .next_back()
            {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((key_u64(&k[1..]), v.to_vec()))
                }
                None => None,
            },
        )
    }

    /// The first checkpoint at or after `seq`.
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoint_at_or_after(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(
            match self
                .tree
                .range(pk(C, &seq.to_be_bytes())..pk(C + 1, &[]))
                .next()
            {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((key_u64(&k[1..]), v.to_vec()))
                }
                None => None,
            },
        )
    }

    /// A metadata value.
    ///
    /// # Errors
    /// sled failed.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    /// Sets a metadata value and makes it durable before returning (metadata is not in the
    /// write-ahead log: this flushes sled, and with it every commit so far).
    ///
    /// # Errors
    /// sled failed.
    pub fn meta_set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        self.flush_sled()
    }

    /// Test hook: a digest of every tree's content, to show that a refused append changed
    /// nothing at all.
    ///
    /// # Errors
    /// sled failed.
    #[doc(hidden)]
    pub fn content_digest(&self) -> Result<u64, StoreError> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            // The log's bookkeeping, not content.
            if k.first() == Some(&W) {
                continue;
            }
            k.as_ref().hash(&mut h);
            v.as_ref().hash(&mut h);
        }
        Ok(h.finish())
    }

    /// Test and forensic-drill hook: writes a raw journal entry, bypassing every check and the
    /// chain, as an attacker with file access could. Used by the tamper tests; never by the
    /// controller.
    ///
    /// # Errors
    /// sled failed.
    #[doc(hidden)]
    pub fn tamper_journal_put(&self, key: u64, value: &[u8]) -> Result<(), StoreError> {
        self.tamper(key, Some(value))
    }

    /// Writes (or removes) a raw journal entry where it lives: in its chunk when sealed,
    /// keeping the chunk's entries in key order; in `j` otherwise.
    fn tamper(&self, key: u64, value: Option<&[u8]>) -> Result<(), StoreError> {
        if let Some(s) = catalog::find(&self.catalog(), key) {
            return Err(StoreError::Catalog {
                file: s.reader.path().to_path_buf(),
                what: format!("record {key} is sealed in this file: damage the file instead"),
            });
        }
        match self.chunk_at(key)? {
            Some((first, chunk)) if key <= self.sealed.load(Ordering::SeqCst) => {
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> = chunk_entries(&chunk)
                    .filter(|(k, _)| key_u64(k) != key)
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                if let Some(v) = value {
                    entries.push((key.to_be_bytes().to_vec(), v.to_vec()));
                    entries.sort_by_key(|(k, _)| key_u64(k));
                }
                let mut out = Vec::new();
                for (k, v) in &entries {
                    push_entry(&mut out, k, v);
                }
                self.tree.insert(pk(K, &first.to_be_bytes()), out)?;
            }
            _ => {
                match value {
                    Some(v) => self.tree.insert(pk(J, &key.to_be_bytes()), v)?,
                    None => self.tree.remove(pk(J, &key.to_be_bytes()))?,
                };
            }
        }
        // Not in the log: durable through sled.
        self.flush_sled()
    }

    /// Test hook: removes a raw journal entry (see [`Store::tamper_journal_put`]).
    ///
    /// # Errors
    /// sled failed.
    #[doc(hidden)]
    pub fn tamper_journal_remove(&self, key: u64) -> Result<(), StoreError> {
        self.tamper(key, None)
    }

    /// Test hook: removes a raw checkpoint entry (see [`Store::tamper_journal_put`]).
    ///
    /// # Errors
    /// sled failed.
    #[doc(hidden)]
    pub fn tamper_checkpoint_put(&self, key: u64, value: Option<&[u8]>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.tree.insert(pk(C, &key.to_be_bytes()), v)?,
            None => self.tree.remove(pk(C, &key.to_be_bytes()))?,
        };
        self.flush_sled()
    }
}

/// Records per sealed chunk of the journal.
pub const CHUNK: u64 = 16;

/// Appends one chunk entry: `key (8 bytes) ‖ length (u32 BE) ‖ value`.
fn push_entry(chunk: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    chunk.extend_from_slice(key);
    chunk.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    chunk.extend_from_slice(value);
}

/// The entries of a chunk (raw key, value), in stored order. A malformed remainder (a
/// tampered chunk) yields one entry with an empty key, which decodes as `u64::MAX` and is
/// reported by verification as a malformed key.
fn chunk_entries(mut chunk: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        if chunk.is_empty() {
            return None;
        }
        let parsed = (|| {
            let len = u32::from_be_bytes(chunk.get(8..12)?.try_into().ok()?) as usize;
            let value = chunk.get(12..12 + len)?;
            Some((&chunk[..8], value, 12 + len))
        })();
        match parsed {
            Some((k, v, n)) => {
                chunk = &chunk[n..];
                Some((k, v))
            }
            None => {
                chunk = &[];
                Some((&[][..], &[][..]))
            }
        }
    })
}

/// Keyspace prefixes of the `ledger` tree.
const J: u8 = b'j';
const K: u8 = b'k';
const S: u8 = b's';
const X: u8 = b'x';
const C: u8 = b'c';
const A: u8 = b'a';
/// The catalog of segment files: first sequence number → [`catalog::Entry`].
const G: u8 = b'g';
/// The write-ahead log's bookkeeping ([`WAL_APPLIED`]).
const W: u8 = b'w';
/// Postings listed by record: seq → the posting keys of that record (each `len u16 LE ‖ key`).
const Y: u8 = b'y';
/// Settled states by key: the record (u64 BE) whose commit settled it.
const Z: u8 = b'z';
/// Settled states listed by record: `seq ‖ key` → ().
const V: u8 = b'v';
/// Where open puts a segment file the catalog does not list and sled does not fully hold.
pub const ORPHAN_DIR: &str = "orphan";

/// Why a run of records is not sealed.
enum Unfit {
    /// The records themselves: never sealable as they are.
    Record(String),
    /// Writing the file failed: worth another try.
    Io(StoreError),
}

impl From<String> for Unfit {
    fn from(why: String) -> Unfit {
        Unfit::Record(why)
    }
}

/// The run of records being copied into a segment file.
struct Run {
    expected: u64,
    link: Link,
    /// The checkpoints still ahead in the run: (seq, the link they sign).
    checks: std::collections::VecDeque<(u64, Link)>,
}

impl Run {
    /// Takes record `key` (stored `value`) into `out` (or only checks it, without `out`) if it
    /// is the next one, its stored link is the recomputed one, and a checkpoint at it names
    /// that link; otherwise says what is wrong.
    fn take(
        &mut self,
        out: Option<&mut SegmentWriter>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), Unfit> {
        let unfit = |what: String| Err(Unfit::Record(what));
        if key.len() != 8 || key_u64(key) != self.expected {
            return unfit(format!("record {} is missing", self.expected));
        }
        let Some((stored, body)) = chain::split_stored(value) else {
            return unfit(format!("record {} is malformed", self.expected));
        };
        // A file's records are trusted by full verification without a second walk: each body
        // must say its own seq.
        if chain::body_seq(body) != Some(self.expected) {
            return unfit(format!("record {}'s body names another seq", self.expected));
        }
        let link = chain::link(&self.link, self.expected, body);
        if link != stored {
            return unfit(format!("record {}'s link does not match", self.expected));
        }
        if let Some(&(seq, signed)) = self.checks.front()
            && seq == self.expected
        {
            if signed != link {
                return unfit(format!(
                    "checkpoint {seq} does not name the link of record {seq} (history was rewritten)"
                ));
            }
            self.checks.pop_front();
        }
        if let Some(out) = out {
            match out.push(self.expected, body) {
                Ok(()) => {}
                // A record the format does not take (too large): never sealable.
                Err(e @ SegmentError::Refused { .. }) => return Err(Unfit::Record(e.to_string())),
                // Writing failed (a full disk …): the sealer tries again later.
                Err(e) => return Err(Unfit::Io(e.into())),
            }
        }
        self.link = link;
        self.expected += 1;
        Ok(())
    }
}

/// The sequence number at the end of a posting key (0 if it is too short to hold one).
fn index_seq(k: &[u8]) -> u64 {
    k.len().checked_sub(8).map_or(0, |i| key_u64(&k[i..]))
}

/// Keys removed per batch when sealed entries leave sled.
const DROP_BATCH: usize = 8192;

/// The posting keys listed under record `seq` in a `y` list (`len u16 LE ‖ key`)*, those of
/// that very record only (a key ends with its record's seq).
fn listed_postings(list: &[u8], seq: u64) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = list.get(at..at + 2)?;
        let n = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let k = list.get(at + 2..at + 2 + n)?;
        at += 2 + n;
        Some(k)
    })
    .filter(move |k| index_seq(k) == seq)
}

/// Index keys read per batch by [`Store::index_range_each`].
pub const INDEX_BATCH: usize = 512;

/// The end (exclusive) of the keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): past every key of the index.
    vec![0xff; 1 << 10]
}

/// Whether `p` may be a whole posting prefix, `tag 0 key 0` (what the tables' bloom filters
/// know) rather than a tag's `tag 0`.
fn whole_prefix(p: &[u8]) -> bool {
    p.last() == Some(&0) && table::tag_of(p).len() + 1 < p.len()
}

/// One input of an index merge: sled's index or a table.
struct MergeSource<'a> {
    src: Src<'a>,
    /// Its next entry, once opened.
    head: Option<IndexEntry>,
    /// Not opened yet: where its keys can start (or, read in reverse, end).
    bound: Option<Vec<u8>>,
    done: bool,
}

enum Src<'a> {
    Sled(Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a>),
    Table(table::TableCursor<'a>),
}

impl MergeSource<'_> {
    /// Reads its next entry into `head` (none at its end).
    fn advance(&mut self) -> Result<(), StoreError> {
        if self.done {
            return Ok(());
        }
        self.head = match &mut self.src {
            Src::Sled(it) => match it.next() {
                Some(kv) => {
                    let (k, v) = kv?;
                    Some((k[1..].to_vec(), v.to_vec()))
                }
                None => None,
            },
            Src::Table(c) => c.next_entry()?,
        };
        self.done = self.head.is_none();
        Ok(())
    }
}

/// `prefix ‖ key`.
fn pk(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(prefix);
    k.extend_from_slice(key);
    k
}

/// Decodes a big-endian u64 key; a malformed (tampered) key decodes as `u64::MAX`.
pub fn key_u64(k: &[u8]) -> u64 {
    <[u8; 8]>::try_from(k).map_or(u64::MAX, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> Vec<u8> {
        format!("record {seq}").into_bytes()
    }

    fn append(store: &Store, seqs: std::ops::RangeInclusive<u64>) {
        let mut ws = WriteSet::default();
        for s in seqs {
            ws.journal(s, record(s));
        }
        store.commit(&ws).expect("commit");
    }

    fn walk(store: &Store, from: u64, to: Option<u64>) -> Vec<u64> {
        let mut seen = Vec::new();
        store
            .journal_for_each_in(from, to, |k, v| {
                assert_eq!(v, record(key_u64(k)).as_slice());
                seen.push(key_u64(k));
                true
            })
            .expect("walk");
        seen
    }

    #[test]
    fn records_are_sealed_into_chunks_and_read_back_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        for s in 1..=100 {
            append(&store, s..=s);
        }
        assert_eq!(store.sealed.load(Ordering::SeqCst), 96, "6 full chunks");
        assert_eq!(
            store.tree.scan_prefix([J]).count(),
            4,
            "the tail stays in j"
        );
        assert_eq!(walk(&store, 1, None), (1..=100).collect::<Vec<_>>());
        assert_eq!(walk(&store, 10, Some(40)), (10..40).collect::<Vec<_>>());
        assert_eq!(walk(&store, 97, None), (97..=100).collect::<Vec<_>>());
        for s in [1, 16, 17, 50, 96, 97, 100] {
            assert_eq!(store.journal_get(s).expect("get"), Some(record(s)), "{s}");
        }
        assert_eq!(store.journal_get(101).expect("get"), None);
        assert_eq!(store.journal_len(), 100);
        assert_eq!(
            store.journal_last().expect("last"),
            Some((100, record(100)))
        );
        // A batch of many records seals several chunks at once; reopening finds the seal mark.
        append(&store, 101..=1000);
        drop(store);
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(store.sealed.load(Ordering::SeqCst), 992);
        assert_eq!(walk(&store, 1, None), (1..=1000).collect::<Vec<_>>());
    }

    /// The race of issue 15: a store is opened while another handle of the same directory is
    /// being dropped on another thread. sled lets go of its file lock only when its last
    /// background reference goes, a moment after the drop: the open must wait for that, not fail.
    #[test]
    fn opening_while_another_handle_of_this_process_is_dropped_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..20u64 {
            let first = Store::open(dir.path(), 1 << 20).expect("open");
            // Work in sled's background threads when the drop comes.
            append(&first, round * 40 + 1..=round * 40 + 40);
            first.sync().expect("sync");
            let go = std::sync::Arc::new(std::sync::Barrier::new(2));
            let dropper = {
                let go = go.clone();
                std::thread::spawn(move || {
                    go.wait();
                    drop(first);
                })
            };
            go.wait();
            let second = Store::open(dir.path(), 1 << 20)
                .unwrap_or_else(|e| panic!("round {round}: open during the drop: {e}"));
            dropper.join().expect("dropper");
            assert_eq!(second.journal_len() as u64, (round + 1) * 40);
        }
    }

    /// A store held by another live process is refused at once, naming the process, and sled's
    /// own lock message never reaches the caller.
    #[test]
    fn a_store_held_by_another_process_is_refused_at_once_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path(), 1 << 20).expect("create"));
        let db = dir.path().join("db");
        // flock(1) holds an exclusive flock on the file as sled does, until killed (`--no-fork`:
        // no child of it keeps the lock after the kill).
        let mut other = std::process::Command::new("flock")
            .args(["-x", "--no-fork"])
            .arg(&db)
            .args(["sleep", "600"])
            .spawn()
            .expect("run flock(1)");
        let ceiling = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while lock::holder_pid(&db) != Some(other.id()) {
            assert!(
                std::time::Instant::now() < ceiling,
                "flock(1) did not take the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let asked = std::time::Instant::now();
        let err = Store::open(dir.path(), 1 << 20).expect_err("the other process holds it");
        let waited = asked.elapsed();
        let _ = other.kill();
        let _ = other.wait();
        match &err {
            StoreError::Locked {
                holder: Some(h), ..
            } => {
                assert_eq!(h.pid, other.id());
                assert_eq!(h.command, "sleep 600", "{h}");
            }
            e => panic!("expected Locked naming flock(1), got {e:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("is in use by process {} (sleep 600)", other.id())),
            "{text}"
        );
        assert!(!text.contains("could not acquire lock"), "{text}");
        // Refused without waiting for a release that only this process's own stores get.
        assert!(waited < OWN_RELEASE_WAIT, "waited {waited:?}");
        // Once it has gone, the store opens.
        Store::open(dir.path(), 1 << 20).expect("open after the other process ended");
    }

    /// A dropped store is closed for every other program at once: another process that takes
    /// the lock right after the drop (a console command run after an in-process hall stopped, a
    /// test's `hallctl audit verify` after it wrote a ledger) gets it, even while other threads
    /// start processes, each of which holds a copy of the store's file until it execs, and while
    /// other tests of this binary open and drop stores of their own.
    #[test]
    fn a_dropped_store_is_free_for_another_process_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Meanwhile another thread starts processes, as the test harness and the controller
        // do: each child holds a copy of every open file until it execs, the store's too.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spawner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::process::Command::new("true").status();
                }
            })
        };
        for round in 0..40u64 {
            let store = Store::open(dir.path(), 1 << 20).expect("open");
            append(&store, round * 40 + 1..=round * 40 + 40);
            store.sync().expect("sync");
            drop(store);
            // `flock -n`: fail at once (exit 1) if anyone holds the lock.
            let free = std::process::Command::new("flock")
                .args(["-n", "-x"])
                .arg(dir.path().join("db"))
                .arg("true")
                .status()
                .expect("run flock(1)");
            assert!(
                free.success(),
                "round {round}: the lock was still held after the drop"
            );
        }
        stop.store(true, Ordering::Relaxed);
        spawner.join().expect("spawner");
    }

    #[test]
    fn tampering_inside_a_chunk_shows_in_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        append(&store, 1..=40);
        store.tamper_journal_remove(5).expect("remove");
        store.tamper_journal_remove(35).expect("remove in the tail");
        let seen = walk(&store, 1, None);
        assert!(!seen.contains(&5) && !seen.contains(&35));
        assert_eq!(seen.len(), 38);
        store.tamper_journal_put(5, &record(5)).expect("put back");
        assert_eq!(store.journal_get(5).expect("get"), Some(record(5)));
        assert_eq!(walk(&store, 1, Some(33)), (1..33).collect::<Vec<_>>());
        // A gap in the tail stops sealing there: nothing beyond it is moved.
        append(&store, 41..=80);
        assert_eq!(store.sealed.load(Ordering::SeqCst), 32);
    }

    /// Values of a well-formed chain of `n` records (bodies of varied length).
    fn chained(n: u64) -> Vec<Vec<u8>> {
        chained_padded(n, 0)
    }

    /// As [`chained`], each body `pad` bytes longer.
    fn chained_padded(n: u64, pad: usize) -> Vec<Vec<u8>> {
        let mut link = chain::GENESIS;
        (1..=n)
            .map(|s| {
                let body = format!(
                    "{{\"seq\":{s},\"pad\":\"{}\"}}",
                    "x".repeat((s % 61) as usize + pad)
                );
                link = chain::link(&link, s, body.as_bytes());
                chain::stored(&link, body.as_bytes())
            })
            .collect()
    }

    fn sealing(window: u64) -> Option<Sealing> {
        Some(Sealing {
            window,
            key: SigningKey::from_bytes(&[7; 32]),
            range_only_tags: Vec::new(),
            fanout: 0,
            period_of: None,
            reserve_bytes: 0,
        })
    }

    fn open_sealing(dir: &Path, window: u64) -> Store {
        Store::open_with(dir, 1 << 22, sealing(window)).expect("open")
    }

    /// Commits records `seqs` of `values` with a signed checkpoint at the last (as the ledger
    /// writes them: sealing needs one at or after a window's end).
    fn commit_chained(store: &Store, values: &[Vec<u8>], seqs: std::ops::RangeInclusive<u64>) {
        let mut ws = WriteSet::default();
        let last = *seqs.end();
        for s in seqs {
            ws.journal(s, values[(s - 1) as usize].clone());
        }
        ws.checkpoint(last, signed_checkpoint(&values[(last - 1) as usize], last));
        store.commit(&ws).expect("commit");
    }

    /// A checkpoint of record `seq` (stored `value`) signed with the test key.
    fn signed_checkpoint(value: &[u8], seq: u64) -> Vec<u8> {
        let (link, _) = chain::split_stored(value).expect("stored");
        let cp = chain::Checkpoint::sign(
            &SigningKey::from_bytes(&[7; 32]),
            seq,
            &link,
            chrono::Utc::now(),
        );
        serde_json::to_vec(&cp).expect("json")
    }

    fn walk_raw(store: &Store, from: u64, to: Option<u64>) -> Vec<(u64, Vec<u8>)> {
        let mut seen = Vec::new();
        store
            .journal_for_each_in(from, to, |k, v| {
                seen.push((key_u64(k), v.to_vec()));
                true
            })
            .expect("walk");
        seen
    }

    fn segment_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(catalog::DIR))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Reads of a store whose history went into segment files are byte for byte those of a
    /// store that kept everything in sled, for every record, every walk and after a reopen.
    fn same_reads(plain: &Store, sealed: &Store, n: u64, from: u64, to: u64) {
        for s in 0..=n + 1 {
            assert_eq!(
                plain.journal_get(s).expect("get"),
                sealed.journal_get(s).expect("get"),
                "record {s}"
            );
        }
        assert_eq!(walk_raw(plain, 1, None), walk_raw(sealed, 1, None));
        assert_eq!(
            walk_raw(plain, from, Some(to)),
            walk_raw(sealed, from, Some(to))
        );
        assert_eq!(walk_raw(plain, from, None), walk_raw(sealed, from, None));
        assert_eq!(
            plain.journal_last().expect("last"),
            sealed.journal_last().expect("last")
        );
        assert_eq!(plain.journal_len(), sealed.journal_len());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        #[test]
        fn records_are_equal_with_and_without_segments(
            window in 1u64..80,
            batches in proptest::collection::vec(1u64..40, 1..20),
            from in 1u64..300,
            span in 0u64..200,
        ) {
            let n: u64 = batches.iter().sum();
            let values = chained(n);
            let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
            let plain = Store::open(a.path(), 1 << 22).expect("open");
            let sealed = open_sealing(b.path(), window);
            let mut at = 1;
            for len in &batches {
                commit_chained(&plain, &values, at..=at + len - 1);
                commit_chained(&sealed, &values, at..=at + len - 1);
                at += len;
            }
            // Commits seal nothing themselves; the sealer (here: the test) seals what is due.
            sealed.seal_due().expect("seal");
            let files = sealed.segment_files();
            let expect_files = if n > window { (n - 1) / window } else { 0 };
            proptest::prop_assert_eq!(files.len() as u64, expect_files);
            proptest::prop_assert_eq!(segment_names(b.path()).len() as u64, expect_files);
            same_reads(&plain, &sealed, n, from, from + span);
            drop(sealed);
            let sealed = open_sealing(b.path(), window);
            same_reads(&plain, &sealed, n, from, from + span);
        }
    }

    /// A store sealing windows of `window` whose open rebuilds sled's file per `policy`.
    fn open_compacting(dir: &Path, window: u64, policy: compact::Policy) -> Store {
        Store::open_inner(
            dir,
            1 << 22,
            sealing(window),
            WalOptions {
                compact: policy,
                ..WalOptions::default()
            },
        )
        .expect("open")
    }

    /// Rebuild whenever the file is at least twice its live data, whatever its size.
    const EAGER: compact::Policy = compact::Policy {
        min_file: 0,
        max_live: 1 << 30,
        ratio: 2,
        fail_copy: false,
    };
    const NEVER: compact::Policy = compact::Policy {
        min_file: u64::MAX,
        max_live: 0,
        ratio: 2,
        fail_copy: false,
    };

    fn sled_file(dir: &Path) -> u64 {
        std::fs::metadata(dir.join("db"))
            .expect("sled's file")
            .len()
    }

    /// `n` records committed one by one into a plain store and into a store sealing windows
    /// of 50 that never rebuilds sled's file, all sealed; returns both.
    fn sealed_and_plain(a: &Path, b: &Path, n: u64) -> (Store, Store) {
        let values = chained_padded(n, 2_000);
        let plain = Store::open(a, 1 << 22).expect("open");
        let sealed = open_compacting(b, 50, NEVER);
        for s in 1..=n {
            commit_chained(&plain, &values, s..=s);
            commit_chained(&sealed, &values, s..=s);
        }
        sealed.seal_due().expect("seal");
        assert!(sealed.segment_files().len() as u64 >= n / 50 - 1);
        (plain, sealed)
    }

    #[test]
    fn an_open_rebuilds_a_sled_file_that_is_mostly_dead_space() {
        let (a, b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let n = 3_000;
        let (plain, sealed) = sealed_and_plain(a.path(), b.path(), n);
        drop(sealed);
        // Not due: no rebuild.
        drop(open_compacting(b.path(), 50, NEVER));
        let before = sled_file(b.path());
        let sealed = open_compacting(b.path(), 50, EAGER);
        let after = sled_file(b.path());
        assert!(
            after * 4 < before,
            "sled's file went from {before} to {after} bytes: not rebuilt"
        );
        assert!(!b.path().join(compact::DIR).exists());
        same_reads(&plain, &sealed, n, 1, n);
        // The rebuilt store goes on: commits, sealing, a reopen.
        let values = chained_padded(n + 120, 2_000);
        commit_chained(&plain, &values, n + 1..=n + 120);
        commit_chained(&sealed, &values, n + 1..=n + 120);
        sealed.seal_due().expect("seal");
        same_reads(&plain, &sealed, n + 120, n - 10, n + 120);
        // A close leaves a copy when the file is due again; the next open swaps it in.
        let grown = sled_file(b.path());
        drop(sealed);
        assert!(
            b.path().join(compact::DIR).join("COMPLETE").exists(),
            "a close of a {grown}-byte sled file left no copy"
        );
        let sealed = open_compacting(b.path(), 50, NEVER);
        assert!(!b.path().join(compact::DIR).exists());
        assert!(sled_file(b.path()) <= grown);
        same_reads(&plain, &sealed, n + 120, 1, n + 120);
    }

    /// Opens `b` as a store sealing windows of 50 whose log files hold 256 KiB (they wrap).
    fn open_small_log(b: &Path, policy: compact::Policy) -> Store {
        Store::open_inner(
            b,
            1 << 22,
            sealing(50),
            WalOptions {
                file_bytes: 256 << 10,
                compact: policy,
                ..WalOptions::default()
            },
        )
        .expect("open")
    }

    /// A close leaves a copy; an opener that does not know of copies (an older release after
    /// a roll-back) then writes and acknowledges more records, wrapping the log. The next open
    /// must not swap the stale copy in: those records would be lost.
    #[test]
    fn a_copy_older_than_sleds_file_is_removed_not_swapped_in() {
        let (a, b, hide) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let n = 3_000;
        let (plain, mut sealed) = sealed_and_plain(a.path(), b.path(), n);
        drop(plain);
        sealed.compact = (EAGER, 1 << 22);
        drop(sealed);
        let copy = b.path().join(compact::DIR);
        assert!(copy.join("COMPLETE").exists(), "no copy at close");
        // The older release does not see the copy.
        std::fs::rename(&copy, hide.path().join("c")).expect("hide");
        let old = open_small_log(b.path(), NEVER);
        let values = chained_padded(n + 3_000, 2_000);
        for s in n + 1..=n + 3_000 {
            commit_chained(&old, &values, s..=s);
            old.sync().expect("sync: acknowledged");
        }
        drop(old);
        std::fs::rename(hide.path().join("c"), &copy).expect("put back");
        let new = open_small_log(b.path(), NEVER);
        assert!(!copy.exists(), "the stale copy is removed");
        assert_eq!(
            new.journal_last().expect("last").map(|(s, _)| s),
            Some(n + 3_000),
            "acknowledged records were rolled back by a stale copy"
        );
    }

    /// A copy that fails (a full disk: the very case a rebuild is for) must not stop the
    /// store from opening: the old file serves, and the partial copy is removed.
    #[test]
    fn a_rebuild_that_fails_at_open_leaves_the_store_serving() {
        let (a, b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let n = 600;
        let (plain, sealed) = sealed_and_plain(a.path(), b.path(), n);
        drop(sealed);
        let failing = compact::Policy {
            fail_copy: true,
            ..EAGER
        };
        for _ in 0..2 {
            let store = open_compacting(b.path(), 50, failing);
            assert!(
                !b.path().join(compact::DIR).exists(),
                "a partial copy is left"
            );
            same_reads(&plain, &store, n, 1, n);
        }
    }

    /// An audit's open (no sealing) never swaps a waiting copy in: it reads the old file,
    /// which is whole, and leaves the copy for the controller.
    #[test]
    fn a_read_only_open_leaves_a_waiting_copy_alone() {
        let (a, b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let n = 600;
        let (plain, mut sealed) = sealed_and_plain(a.path(), b.path(), n);
        sealed.compact = (EAGER, 1 << 22);
        drop(sealed);
        let copy = b.path().join(compact::DIR);
        assert!(copy.join("COMPLETE").exists(), "no copy at close");
        let before = sled_file(b.path());
        let audit = Store::open_with(b.path(), 1 << 22, sealing(0)).expect("open");
        same_reads(&plain, &audit, n, 1, n);
        drop(audit);
        assert!(copy.join("COMPLETE").exists(), "the audit took the copy");
        assert!(sled_file(b.path()) >= before / 2);
        let store = open_compacting(b.path(), 50, NEVER);
        assert!(!copy.exists());
        same_reads(&plain, &store, n, 1, n);
    }

    #[test]
    fn an_interrupted_rebuild_of_sled_is_finished_or_undone_at_the_next_open() {
        let n = 400;
        // Where the swap stops: 0, a partial copy; 1, a complete copy, old files in place;
        // 2, old files removed; 3, some of the copy moved in.
        for stage in 0..4 {
            let (a, b) = (
                tempfile::tempdir().expect("tempdir"),
                tempfile::tempdir().expect("tempdir"),
            );
            let (plain, sealed) = sealed_and_plain(a.path(), b.path(), n);
            let copy = b.path().join(compact::DIR);
            if stage == 0 {
                std::fs::create_dir_all(copy.join("blobs")).expect("mkdir");
                std::fs::write(copy.join("db"), b"half a copy").expect("write");
                std::fs::write(copy.join("conf"), b"segment_size: 8").expect("write");
            } else {
                let new = sled_config(&copy, 1 << 22);
                let held = compact::hold(b.path()).expect("lock");
                let mark = sealed.tree.get(WAL_APPLIED).expect("mark").expect("some");
                compact::copy(&sealed.shared.db, &new, b.path(), &held, &mark).expect("copy");
            }
            drop(sealed);
            if stage >= 2 {
                for e in std::fs::read_dir(b.path()).expect("dir").flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name == "db" || name == "conf" || name.starts_with("snap.") {
                        std::fs::remove_file(e.path()).expect("rm");
                    } else if name == "blobs" {
                        std::fs::remove_dir_all(e.path()).expect("rm");
                    }
                }
                std::fs::write(copy.join("OLD_GONE"), b"").expect("marker");
            }
            if stage == 3 {
                std::fs::rename(copy.join("conf"), b.path().join("conf")).expect("mv");
            }
            let sealed = open_compacting(b.path(), 50, NEVER);
            assert!(
                !copy.exists(),
                "stage {stage}: the copy's directory is left"
            );
            same_reads(&plain, &sealed, n, 1, n);
        }
    }

    #[test]
    fn history_moves_into_segment_files_and_out_of_sled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(200);
        let store = open_sealing(dir.path(), 64);
        for s in 1..=200 {
            commit_chained(&store, &values, s..=s);
            assert!(
                store.segment_files().len() as u64 <= s / 64,
                "a commit does not seal a file itself"
            );
            // As the ledger's sealer does after each sync.
            store.seal_next_segment(s).expect("seal");
        }
        let files = store.segment_files();
        assert_eq!(
            files.iter().map(|f| (f.first, f.last)).collect::<Vec<_>>(),
            [(1, 64), (65, 128), (129, 192)]
        );
        // A walk from 0 (before the first record) reads the files too.
        assert_eq!(walk_raw(&store, 0, None), walk_raw(&store, 1, None));
        assert_eq!(walk_raw(&store, 0, None).len(), 200);
        assert_eq!(
            segment_names(dir.path()),
            [
                "00000000000000000001.seg",
                "00000000000000000065.seg",
                "00000000000000000129.seg"
            ]
        );
        // Gone from sled: neither in `j` nor in a chunk.
        assert!(
            store
                .tree
                .get(pk(J, &5u64.to_be_bytes()))
                .expect("get")
                .is_none()
        );
        for kv in store.tree.scan_prefix([J]) {
            assert!(key_u64(&kv.expect("kv").0[1..]) > 192);
        }
        for kv in store.tree.scan_prefix([K]) {
            let (_, chunk) = kv.expect("kv");
            assert!(chunk_entries(&chunk).all(|(e, _)| key_u64(e) > 192));
        }
        for s in 1..=200 {
            assert_eq!(
                store.journal_get(s).expect("get").as_deref(),
                Some(values[s as usize - 1].as_slice()),
                "{s}"
            );
        }
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        store
            .check_segment(65, &key, &files[0].last_link)
            .expect("a sound file");
    }

    /// An unlisted segment file is deleted only when sled still holds every one of its records
    /// unchanged; otherwise it may hold the only copy of some, and it is moved to `orphan/`.
    #[test]
    fn an_unlisted_file_holding_records_sled_lacks_is_kept_as_an_orphan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(60);
        let store = open_sealing(dir.path(), 32);
        store.fail_after_segment_rename(true);
        commit_chained(&store, &values, 1..=40);
        assert!(store.seal_due().is_err(), "the injected fault");
        // Record 5 leaves sled (a partial registering batch would do this).
        store.tamper_journal_remove(5).expect("remove");
        drop(store);
        let _store = open_sealing(dir.path(), 32);
        assert_eq!(
            segment_names(dir.path()),
            [ORPHAN_DIR],
            "not deleted, not listed"
        );
        let kept = dir
            .path()
            .join(catalog::DIR)
            .join(ORPHAN_DIR)
            .join("00000000000000000001.seg");
        let r = SegmentReader::open(&kept).expect("the orphan is the whole file");
        assert_eq!(
            r.get(5).expect("read").as_deref(),
            chain::split_stored(&values[4]).map(|(_, b)| b)
        );
    }

    /// A crash after the batch that registers a file, before sled let go of what it holds:
    /// reads are right meanwhile (no record counted twice), and the next open removes the
    /// copies.
    #[test]
    fn a_crash_after_registering_leaves_copies_that_open_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(100);
        let store = open_sealing(dir.path(), 32);
        let posting =
            |seq: u64| [&b"jb\0"[..], &7u64.to_be_bytes(), &[0], &seq.to_be_bytes()].concat();
        for s in 1..=40u64 {
            let mut ws = WriteSet::default();
            ws.journal(s, values[s as usize - 1].clone());
            ws.posting(posting(s));
            ws.checkpoint(s, signed_checkpoint(&values[s as usize - 1], s));
            store.commit(&ws).expect("commit");
        }
        store.fail_after_segment_register(true);
        assert!(store.seal_due().is_err(), "the injected fault");
        assert_eq!(store.segment_files().len(), 1);
        let in_sled = |store: &Store, space: u8| store.tree.scan_prefix([space]).count();
        assert_eq!(in_sled(&store, J), 40, "the copies are still in sled");
        assert_eq!(store.journal_len(), 40, "but counted once");
        let prefix = [&b"jb\0"[..], &7u64.to_be_bytes(), &[0]].concat();
        assert_eq!(
            store.index_scan(&prefix, usize::MAX).expect("scan").len(),
            40
        );
        drop(store);
        let store = open_sealing(dir.path(), 32);
        assert_eq!(
            in_sled(&store, J),
            8,
            "records 33..=40 stay; the sealed ones left"
        );
        assert_eq!(in_sled(&store, X), 8);
        assert_eq!(in_sled(&store, Y), 8);
        assert_eq!(store.journal_len(), 40);
        assert_eq!(walk_raw(&store, 1, None).len(), 40);
        let all = store.index_scan(&prefix, usize::MAX).expect("scan");
        assert_eq!(
            all.iter().map(|k| index_seq(k)).collect::<Vec<_>>(),
            (1..=40).collect::<Vec<_>>()
        );
    }

    /// Sealing signs only history that the signed checkpoints vouch for: records edited and
    /// re-linked in sled (every stored link consistent) are not sealed.
    #[test]
    fn relinked_history_is_never_sealed_into_a_signed_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(100);
        let store = open_sealing(dir.path(), 32);
        for s in (1..=100).step_by(10) {
            commit_chained(&store, &values, s..=s + 9);
        }
        // Record 7 rewritten, and every link after it recomputed.
        let mut link = chain::split_stored(&values[5]).expect("stored").0;
        for s in 7..=100u64 {
            let body = if s == 7 {
                b"{\"seq\":7,\"forged\":true}".to_vec()
            } else {
                chain::split_stored(&values[s as usize - 1])
                    .expect("stored")
                    .1
                    .to_vec()
            };
            link = chain::link(&link, s, &body);
            store
                .tamper_journal_put(s, &chain::stored(&link, &body))
                .expect("tamper");
        }
        store.seal_due().expect("seal");
        assert!(store.segment_files().is_empty(), "nothing sealed");
        assert!(
            segment_names(dir.path()).is_empty(),
            "no file, no temporary file"
        );
    }

    /// A crash after a segment file was renamed into place but before the batch that registers
    /// it: the file is half-done work, deleted on open; the records are still in sled, and the
    /// next sealing writes the file again.
    #[test]
    fn a_crash_between_rename_and_registering_recovers_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(100);
        let store = open_sealing(dir.path(), 32);
        store.fail_after_segment_rename(true);
        commit_chained(&store, &values, 1..=40);
        assert!(store.seal_due().is_err(), "the injected fault");
        assert_eq!(segment_names(dir.path()), ["00000000000000000001.seg"]);
        assert!(store.segment_files().is_empty(), "not registered");
        assert_eq!(
            walk_raw(&store, 1, None),
            (1..=40)
                .map(|s| (s, values[s as usize - 1].clone()))
                .collect::<Vec<_>>()
        );
        drop(store);
        let foreign = dir.path().join(catalog::DIR).join("notes.txt");
        std::fs::write(&foreign, b"kept").expect("write");
        let store = open_sealing(dir.path(), 32);
        assert_eq!(
            segment_names(dir.path()),
            ["notes.txt"],
            "the stray segment is deleted, nothing else"
        );
        std::fs::remove_file(&foreign).expect("remove");
        assert_eq!(walk_raw(&store, 1, None).len(), 40);
        commit_chained(&store, &values, 41..=100);
        store.seal_due().expect("seal");
        assert_eq!(
            segment_names(dir.path()),
            [
                "00000000000000000001.seg",
                "00000000000000000033.seg",
                "00000000000000000065.seg"
            ]
        );
        assert_eq!(
            walk_raw(&store, 1, None),
            (1..=100)
                .map(|s| (s, values[s as usize - 1].clone()))
                .collect::<Vec<_>>()
        );
    }

    /// A file the catalog lists that is missing or damaged stops the open, naming the file.
    #[test]
    fn a_missing_or_damaged_segment_file_is_named_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = chained(100);
        let store = open_sealing(dir.path(), 32);
        commit_chained(&store, &values, 1..=100);
        store.seal_due().expect("seal");
        assert_eq!(store.segment_files().len(), 3);
        drop(store);
        let second = catalog::path(dir.path(), 33);
        let bytes = std::fs::read(&second).expect("read");
        std::fs::remove_file(&second).expect("remove");
        let err = Store::open_with(dir.path(), 1 << 22, sealing(32)).expect_err("missing");
        let text = err.to_string();
        assert!(
            text.contains("00000000000000000033.seg") && text.contains("missing"),
            "{text}"
        );
        // Reading alone (no sealing configured) refuses too.
        assert!(Store::open(dir.path(), 1 << 22).is_err());
        let mut damaged = bytes.clone();
        damaged[10] ^= 1; // the header's first seq
        std::fs::write(&second, &damaged).expect("write");
        let text = Store::open_with(dir.path(), 1 << 22, sealing(32))
            .expect_err("damaged")
            .to_string();
        assert!(text.contains("00000000000000000033.seg"), "{text}");
        std::fs::write(&second, &bytes).expect("write");
        let store = open_sealing(dir.path(), 32);
        assert_eq!(walk_raw(&store, 1, None).len(), 100);
    }

    #[test]
    fn a_walk_during_segment_sealing_misses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = std::sync::Arc::new(chained(3000));
        let store = std::sync::Arc::new(open_sealing(dir.path(), 50));
        commit_chained(&store, &values, 1..=8);
        let writer = {
            let (store, values) = (store.clone(), values.clone());
            std::thread::spawn(move || {
                for s in 9..=3000 {
                    commit_chained(&store, &values, s..=s);
                    store.seal_next_segment(s).expect("seal");
                }
            })
        };
        let mut rounds = 0u64;
        while !writer.is_finished() {
            let seen = walk_raw(&store, 1, None);
            let n = seen.len() as u64;
            for (i, (s, v)) in seen.iter().enumerate() {
                assert_eq!(*s, i as u64 + 1, "a walk skipped a record");
                assert_eq!(v, &values[i], "record {s}");
            }
            // Point reads race the sealing too.
            let probe = n.saturating_sub(rounds % 97).max(1);
            if n > 0 {
                assert_eq!(
                    store.journal_get(probe).expect("get").as_deref(),
                    Some(values[probe as usize - 1].as_slice())
                );
            }
            rounds += 1;
        }
        writer.join().expect("writer");
        assert_eq!(walk_raw(&store, 1, None).len(), 3000);
        assert_eq!(store.segment_files().len(), 59);
    }

    /// Index reads during sealing miss nothing: while a writer commits records with postings
    /// and seals windows into segment files and index tables, every prefix scan (forward and
    /// newest first) finds exactly the postings of the records committed so far, no gap.
    #[test]
    fn index_reads_during_sealing_miss_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = std::sync::Arc::new(chained(2000));
        let store = std::sync::Arc::new(open_sealing(dir.path(), 50));
        let posting =
            |k: u64, seq: u64| [&b"pk\0"[..], &k.to_be_bytes(), &[0], &seq.to_be_bytes()].concat();
        let writer = {
            let (store, values) = (store.clone(), values.clone());
            std::thread::spawn(move || {
                for s in 1..=2000u64 {
                    let mut ws = WriteSet::default();
                    ws.journal(s, values[s as usize - 1].clone());
                    ws.posting(posting(s % 7, s));
                    ws.checkpoint(s, signed_checkpoint(&values[s as usize - 1], s));
                    store.commit(&ws).expect("commit");
                    store.seal_next_segment(s).expect("seal");
                }
            })
        };
        let prefix = [&b"pk\0"[..], &3u64.to_be_bytes(), &[0]].concat();
        let mut rounds = 0;
        while !writer.is_finished() || rounds == 0 {
            let seqs: Vec<u64> = store
                .index_scan(&prefix, usize::MAX)
                .expect("scan")
                .iter()
                .map(|k| index_seq(k))
                .collect();
            let want: Vec<u64> = (1..).map(|i| i * 7 - 4).take(seqs.len()).collect();
            assert_eq!(seqs, want, "a scan missed or repeated a posting");
            let mut newest = Vec::new();
            store
                .postings_each(&prefix, 0, u64::MAX, true, |k| {
                    newest.push(index_seq(k));
                    true
                })
                .expect("postings");
            newest.reverse();
            let want: Vec<u64> = (1..).map(|i| i * 7 - 4).take(newest.len()).collect();
            assert_eq!(newest, want, "newest first missed or repeated a posting");
            // A plain range over the same keys (no bloom filter: by the tag's key ranges).
            let mut ranged = Vec::new();
            store
                .index_range_each(&prefix, &prefix_end(&prefix), false, |k| {
                    ranged.push(index_seq(k));
                    true
                })
                .expect("range");
            let want: Vec<u64> = (1..).map(|i| i * 7 - 4).take(ranged.len()).collect();
            assert_eq!(ranged, want, "a range missed or repeated a posting");
            rounds += 1;
        }
        writer.join().expect("writer");
        assert!(
            store.segment_files().len() >= 38,
            "windows were sealed during the reads"
        );
        let all = store.index_scan(&prefix, usize::MAX).expect("scan");
        assert_eq!(all.len(), (1..=2000u64).filter(|s| s % 7 == 3).count());
        assert!(store.index_contains(&posting(3, 10)).expect("contains"));
        assert!(!store.index_contains(&posting(3, 11)).expect("contains"));
    }

    /// Copies sled's files (everything but the log's) of `from` into a fresh `to`.
    pub(super) fn copy_sled(from: &Path, to: &Path) {
        let _ = std::fs::remove_dir_all(to);
        copy_dir(from, to, &|name| !wal::NAMES.iter().any(|w| *name == **w));
    }

    fn copy_dir(from: &Path, to: &Path, take: &dyn Fn(&std::ffi::OsStr) -> bool) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir").flatten() {
            let (p, name) = (e.path(), e.file_name());
            if !take(&name) {
                continue;
            }
            if p.is_dir() {
                copy_dir(&p, &to.join(&name), take);
            } else {
                std::fs::copy(&p, to.join(&name)).expect("copy");
            }
        }
    }

    /// A store in `dir/live` whose sled is flushed only when it must (never in the
    /// background), copying sled's files to `dir/sled` at each flush.
    fn open_watched(dir: &Path, file_bytes: u64) -> Store {
        Store::open_inner(
            &dir.join("live"),
            1 << 22,
            None,
            WalOptions {
                file_bytes,
                lazy_flush: false,
                sled_copy: Some(dir.join("sled")),
                ..WalOptions::default()
            },
        )
        .expect("open")
    }

    /// What a kill -9 of the process (or a power cut after the last sync) leaves in `dir/live`:
    /// sled as of its last flush, the log as written. Made in `dir/<name>`.
    fn crash(dir: &Path, name: &str) -> PathBuf {
        let to = dir.join(name);
        copy_dir(&dir.join("sled"), &to, &|_| true);
        copy_dir(&dir.join("live"), &to, &|name| {
            wal::NAMES.iter().any(|w| *name == **w)
        });
        to
    }

    /// The records of a store, checked: a gap-free prefix 1..=n of `record`. Returns n.
    fn prefix_len(store: &Store) -> u64 {
        let seen = walk(store, 1, None);
        let n = seen.len() as u64;
        assert_eq!(seen, (1..=n).collect::<Vec<_>>(), "a prefix, without gaps");
        n
    }

    /// Commits records `seqs` one per commit, with an index entry and a state entry changed at
    /// each (and one removed at every third), syncing after each.
    fn commit_synced(store: &Store, seqs: std::ops::RangeInclusive<u64>) {
        for s in seqs {
            let mut ws = WriteSet::default();
            ws.journal(s, record(s));
            ws.index(format!("i{s}").into_bytes());
            ws.state(b"last".to_vec(), Some(s.to_be_bytes().to_vec()));
            if s % 3 == 0 {
                ws.state(format!("gone{}", s - 3).into_bytes(), None);
                ws.state(format!("gone{s}").into_bytes(), Some(vec![1]));
            }
            store.commit(&ws).expect("commit");
            store.sync().expect("sync");
        }
    }

    fn open_plain(dir: &Path) -> Store {
        Store::open(dir, 1 << 22).expect("open")
    }

    /// sled loses what it had not flushed; the log gives every synced commit back, and reading
    /// it again (a second open, or an open of another copy of the same crash) changes nothing.
    #[test]
    fn every_synced_commit_comes_back_from_the_log_when_sled_lost_it_and_replay_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_watched(dir.path(), wal::FILE_BYTES);
        commit_synced(&store, 1..=300);
        // Committed, never synced.
        append(&store, 301..=305);
        let (crashed, again) = (crash(dir.path(), "crashed"), crash(dir.path(), "again"));
        drop(store);

        let store = open_plain(&crashed);
        assert_eq!(
            prefix_len(&store),
            300,
            "every synced record, not the unsynced"
        );
        assert_eq!(
            store.state_get(b"last").expect("get"),
            Some(300u64.to_be_bytes().to_vec())
        );
        assert!(store.index_contains(b"i300").expect("index"));
        assert!(store.state_get(b"gone297").expect("get").is_none());
        assert!(store.state_get(b"gone300").expect("get").is_some());
        let replayed = store.content_digest().expect("digest");
        drop(store);
        let store = open_plain(&crashed);
        assert_eq!(
            store.content_digest().expect("digest"),
            replayed,
            "a second open"
        );
        drop(store);
        let store = open_plain(&again);
        assert_eq!(
            store.content_digest().expect("digest"),
            replayed,
            "another copy"
        );
        // The store goes on from there.
        commit_synced(&store, 301..=310);
        assert_eq!(prefix_len(&store), 310);
        drop(store);
        assert_eq!(prefix_len(&open_plain(&again)), 310);
    }

    /// A frame torn or damaged on disk ends the replay: the commits before it come back,
    /// nothing from it or after it, even intact frames that follow.
    #[test]
    fn a_torn_frame_ends_the_replay_and_nothing_after_it_is_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_watched(dir.path(), wal::FILE_BYTES);
        commit_synced(&store, 1..=10);
        let (damaged, torn) = (crash(dir.path(), "damaged"), crash(dir.path(), "torn"));
        drop(store);
        let path = damaged.join(wal::NAMES[0]);
        let mut bytes = std::fs::read(&path).expect("read");
        let frame_at = |bytes: &[u8], n: u64| {
            let mut at = 0;
            for _ in 1..n {
                at = wal::decode_at(bytes, at).expect("frame").1;
            }
            let (f, end) = wal::decode_at(bytes, at).expect("frame n");
            assert_eq!(f.number, n);
            (at, end)
        };
        // Frame 8 (record 8): one byte of its payload changed.
        let (at, _) = frame_at(&bytes, 8);
        bytes[at + wal::HEADER + 3] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        let store = open_plain(&damaged);
        assert_eq!(prefix_len(&store), 7);
        assert_eq!(
            store.state_get(b"last").expect("get"),
            Some(7u64.to_be_bytes().to_vec())
        );
        assert!(!store.index_contains(b"i9").expect("index"));
        // Frame 10 cut short (a torn write): the nine before it.
        let path = torn.join(wal::NAMES[0]);
        let mut bytes = std::fs::read(&path).expect("read");
        let (_, end) = frame_at(&bytes, 10);
        bytes[end - 5..end].fill(0);
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(prefix_len(&open_plain(&torn)), 9);
    }

    /// Small log files: writing goes round both files many times, sled being flushed only when
    /// a file is full and the other still holds frames sled lacks; after a crash at the end
    /// (sled as of its last flush) every synced commit comes back.
    #[test]
    fn the_log_goes_round_its_two_files_and_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_watched(dir.path(), wal::GROW);
        let big = vec![0x5Au8; 20_000];
        for s in 1..=400u64 {
            let mut ws = WriteSet::default();
            ws.journal(s, record(s));
            ws.aux(format!("blob{}", s % 10).into_bytes(), Some(big.clone()));
            ws.aux(b"last".to_vec(), Some(s.to_be_bytes().to_vec()));
            store.commit(&ws).expect("commit");
            store.sync().expect("sync");
        }
        let crashed = crash(dir.path(), "crashed");
        drop(store);
        for name in wal::NAMES {
            assert_eq!(
                std::fs::metadata(crashed.join(name)).expect("meta").len(),
                wal::GROW,
                "{name} never grows past its capacity"
            );
        }
        let store = open_plain(&crashed);
        assert_eq!(prefix_len(&store), 400);
        assert_eq!(
            store.aux_get(b"last").expect("get"),
            Some(400u64.to_be_bytes().to_vec())
        );
        assert_eq!(store.aux_get(b"blob9").expect("get"), Some(big));
    }

    /// A damaged mark of the log stops the open with an error that names it (no panic, no
    /// replay from a wrong place).
    #[test]
    fn a_malformed_log_mark_is_named_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_plain(dir.path());
        append(&store, 1..=3);
        store.sync().expect("sync");
        store.tree.insert(WAL_APPLIED, &b"xx"[..]).expect("insert");
        store.flush_sled().expect("flush");
        drop(store);
        let err = Store::open(dir.path(), 1 << 22).expect_err("malformed mark");
        assert!(err.to_string().contains("`w applied`"), "{err}");
    }

    /// With the background flush, sled is flushed without any sync asking for it.
    #[test]
    fn sled_is_flushed_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 22).expect("open");
        append(&store, 1..=5);
        // No sync is asked for: only the background flush can bring `flushed` up to
        // `applied` (it may already have, by the time this reads them).
        let applied = store.shared.applied.load(Ordering::SeqCst);
        let ceiling = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.shared.flushed.load(Ordering::SeqCst) < applied {
            assert!(std::time::Instant::now() < ceiling, "no background flush");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_walk_during_sealing_misses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(Store::open(dir.path(), 1 << 22).expect("open"));
        append(&store, 1..=8);
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                for s in 9..=4000 {
                    append(&store, s..=s);
                }
            })
        };
        while !writer.is_finished() {
            let seen = walk(&store, 1, None);
            let n = seen.len() as u64;
            assert_eq!(seen, (1..=n).collect::<Vec<_>>(), "a walk skipped a record");
        }
        writer.join().expect("writer");
        assert_eq!(walk(&store, 1, None).len(), 4000);
    }

    /// Sealing with merges: windows of 20, two files of a level make one of the next, and a
    /// period is 400 records (read from the test bodies' `seq`).
    fn merging(window: u64) -> Sealing {
        Sealing {
            fanout: 2,
            period_of: Some(Arc::new(|body: &[u8]| {
                let v: serde_json::Value = serde_json::from_slice(body).ok()?;
                Some((v["seq"].as_u64()? - 1) / 400)
            })),
            ..sealing(window).expect("sealing")
        }
    }

    /// The sealed files' record ranges, in order.
    fn spans_of(store: &Store) -> Vec<(u64, u64)> {
        store
            .segment_files()
            .iter()
            .map(|f| (f.first, f.last))
            .collect()
    }

    fn merge_posting(k: u64, seq: u64) -> Vec<u8> {
        [&b"pk\0"[..], &k.to_be_bytes(), &[0], &seq.to_be_bytes()].concat()
    }

    /// Commits record `s` of `values` with a posting under `s % 7`, key `s % 50`'s state
    /// settled at `s`, and a signed checkpoint.
    fn commit_merging(store: &Store, values: &[Vec<u8>], s: u64) {
        let mut ws = WriteSet::default();
        ws.journal(s, values[s as usize - 1].clone());
        ws.posting(merge_posting(s % 7, s));
        ws.state_settled(
            format!("st{:02}", s % 50).into_bytes(),
            s.to_be_bytes().to_vec(),
        );
        ws.checkpoint(s, signed_checkpoint(&values[s as usize - 1], s));
        store.commit(&ws).expect("commit");
    }

    /// 100 records committed with merging (window 20, fanout 2) and sealed: four windows,
    /// merges due.
    fn four_windows_due_to_merge(dir: &Path) -> (Store, Vec<Vec<u8>>) {
        let values = chained(100);
        let store = Store::open_with(dir, 1 << 22, Some(merging(20))).expect("open");
        for s in 1..=100u64 {
            commit_merging(&store, &values, s);
        }
        store.seal_due().expect("seal");
        (store, values)
    }

    /// What a reader must find after records `1..=done` were committed (later ones may be
    /// there too): every record, every posting under 3, and each state at least as new.
    fn check_reads(store: &Store, values: &[Vec<u8>], done: u64) {
        let seen = walk_raw(store, 1, None);
        assert!(seen.len() as u64 >= done, "a walk missed records");
        for (i, (s, v)) in seen.iter().enumerate() {
            assert_eq!(*s, i as u64 + 1, "a walk skipped a record");
            assert_eq!(v, &values[i], "record {s}");
        }
        for probe in [1, done / 2, done.saturating_sub(25)] {
            if probe > 0 && probe <= done {
                assert_eq!(
                    store.journal_get(probe).expect("get").as_deref(),
                    Some(values[probe as usize - 1].as_slice()),
                    "record {probe} (done {done})"
                );
            }
        }
        let prefix = [&b"pk\0"[..], &3u64.to_be_bytes(), &[0]].concat();
        let seqs: Vec<u64> = store
            .index_scan(&prefix, usize::MAX)
            .expect("scan")
            .iter()
            .map(|k| index_seq(k))
            .collect();
        let want: Vec<u64> = (1..).map(|i| i * 7 - 4).take(seqs.len()).collect();
        assert_eq!(seqs, want, "a scan missed or repeated a posting");
        assert!(seqs.len() as u64 >= (done + 4) / 7, "postings missing");
        for k in [0u64, 17, 49] {
            let Some(newest) = (1..=done).rev().find(|s| s % 50 == k) else {
                continue;
            };
            let v = store
                .state_get(format!("st{k:02}").as_bytes())
                .expect("state")
                .expect("a settled state is found");
            let got = key_u64(&v);
            assert!(
                got >= newest && got % 50 == k,
                "state {k}: value of record {got}, older than {newest}"
            );
        }
    }

    /// Sealed files merge, by levels within a period and whole once the period closes, while a
    /// reader reads records, postings and states: it never misses one, and never reads an older
    /// state than the newest. After: the files are the merged ones (no window left over, no
    /// orphan), each checks with the key, and a reopened store lists and reads the same.
    #[test]
    fn sealed_files_merge_while_readers_read_and_nothing_is_missed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = std::sync::Arc::new(chained(1000));
        let store = std::sync::Arc::new(
            Store::open_with(dir.path(), 1 << 22, Some(merging(20))).expect("open"),
        );
        let done = std::sync::Arc::new(AtomicU64::new(0));
        let writer = {
            let (store, values, done) = (store.clone(), values.clone(), done.clone());
            std::thread::spawn(move || {
                for s in 1..=1000u64 {
                    commit_merging(&store, &values, s);
                    done.store(s, Ordering::SeqCst);
                    // As the ledger's sealer does.
                    if store.seal_next_segment(s).expect("seal") {
                        while store.merge_next(&|| false).expect("merge") {}
                    }
                }
            })
        };
        let mut rounds = 0;
        while !writer.is_finished() || rounds == 0 {
            check_reads(&store, &values, done.load(Ordering::SeqCst));
            rounds += 1;
        }
        writer.join().expect("writer");
        assert!(store.merge_count() > 10, "merges happened during the reads");
        let spans = spans_of(&store);
        // Two closed periods, whole; the open one by levels: 160 + 80 + 20 of 260 sealed
        // records (980 sealed: 1000 less at most a window outside files).
        assert_eq!(
            spans,
            [(1, 400), (401, 800), (801, 960), (961, 980)],
            "{spans:?}"
        );
        // No file merged away is left over.
        let names = segment_names(dir.path());
        let want: Vec<String> = [
            "00000000000000000001-00000000000000000400",
            "00000000000000000401-00000000000000000800",
            "00000000000000000801-00000000000000000960",
            "00000000000000000961",
        ]
        .iter()
        .flat_map(|stem| ["idx", "seg", "sta"].map(|ext| format!("{stem}.{ext}")))
        .collect();
        assert_eq!(names, want);
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut prev = chain::GENESIS;
        for f in store.segment_files() {
            store
                .check_segment(f.first, &key, &prev)
                .unwrap_or_else(|e| panic!("{}: {}", f.first, e.what));
            prev = f.last_link;
        }
        check_reads(&store, &values, 1000);
        drop(store);
        let store = Store::open_with(dir.path(), 1 << 22, Some(merging(20))).expect("reopen");
        let again = spans_of(&store);
        assert_eq!(again, spans);
        assert_eq!(segment_names(dir.path()), names);
        check_reads(&store, &values, 1000);
    }

    /// A merge interrupted before its batch (stage 1) leaves the old files listed and the
    /// merged ones removed at the next open; after its batch (stage 2), the merged one listed
    /// and the old ones removed. Either way every record, posting and state reads back.
    #[test]
    fn an_interrupted_merge_is_finished_or_undone_at_the_next_open() {
        for stage in [1u8, 2] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (store, values) = four_windows_due_to_merge(dir.path());
            assert_eq!(store.segment_files().len(), 4);
            store.fail_merge_at(stage);
            assert!(store.merge_next(&|| false).is_err(), "the injected fault");
            let names = segment_names(dir.path());
            assert!(
                names.iter().any(|n| n.contains('-')),
                "stage {stage}: the merged files are in place: {names:?}"
            );
            assert!(
                names.contains(&"00000000000000000001.seg".to_string()),
                "stage {stage}: the old files too: {names:?}"
            );
            drop(store);
            let store = Store::open_with(dir.path(), 1 << 22, Some(merging(20))).expect("reopen");
            let spans = spans_of(&store);
            let names = segment_names(dir.path());
            if stage == 1 {
                assert_eq!(spans, [(1, 20), (21, 40), (41, 60), (61, 80)], "stage 1");
                assert!(!names.iter().any(|n| n.contains('-')), "{names:?}");
            } else {
                assert_eq!(spans, [(1, 40), (41, 60), (61, 80)], "stage 2");
                assert!(
                    !names.contains(&"00000000000000000001.seg".to_string())
                        && !names.contains(&"00000000000000000021.seg".to_string()),
                    "{names:?}"
                );
            }
            assert!(!names.iter().any(|n| n == ORPHAN_DIR), "{names:?}");
            check_reads(&store, &values, 100);
            // And the merges go on from there.
            store.merge_due().expect("merge");
            assert_eq!(spans_of(&store), [(1, 80)], "stage {stage}");
            check_reads(&store, &values, 100);
        }
    }

    /// A merge never replaces files under a reader that checks them by name (a verification
    /// of a running hall): it writes its file, then waits for the reader's guard to register
    /// it; every file the reader listed still checks meanwhile.
    #[test]
    fn a_merge_waits_for_a_reader_checking_files_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, values) = four_windows_due_to_merge(dir.path());
        let store = std::sync::Arc::new(store);
        assert!(store.merge_pending());
        let guard = store.hold_files();
        let listed = store.segment_files();
        let merger = {
            let store = store.clone();
            std::thread::spawn(move || store.merge_due())
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut prev = chain::GENESIS;
        for f in &listed {
            store
                .check_segment(f.first, &key, &prev)
                .unwrap_or_else(|e| panic!("{}: {}", f.first, e.what));
            prev = f.last_link;
        }
        assert_eq!(
            store.merge_count(),
            0,
            "no merge registered under the guard"
        );
        drop(guard);
        merger.join().expect("merger").expect("merge");
        assert_eq!(spans_of(&store), [(1, 80)]);
        check_reads(&store, &values, 100);
    }

    /// After a merge registered (its old files left over by a crash), an open removes only the
    /// leftovers it can vouch for: an audit's open (no key) leaves them all; an open with the
    /// key removes those whose seal and chain are the listed ones and keeps a damaged one as an
    /// orphan (it could be the evidence of what was changed).
    #[test]
    fn leftovers_of_a_merge_are_removed_only_when_vouched_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, values) = four_windows_due_to_merge(dir.path());
        store.fail_merge_at(2);
        assert!(store.merge_next(&|| false).is_err(), "the injected fault");
        drop(store);
        let seg = |n: &str| dir.path().join(catalog::DIR).join(n);
        let second = seg("00000000000000000021.seg");
        let mut bytes = std::fs::read(&second).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        std::fs::write(&second, &bytes).expect("damage");
        let before = segment_names(dir.path());
        drop(Store::open_with(dir.path(), 1 << 22, None).expect("audit open"));
        assert_eq!(
            segment_names(dir.path()),
            before,
            "an audit's open changes nothing"
        );
        let store = Store::open_with(dir.path(), 1 << 22, Some(merging(20))).expect("reopen");
        let names = segment_names(dir.path());
        assert!(
            !names.contains(&"00000000000000000001.seg".to_string()),
            "a sound leftover is removed: {names:?}"
        );
        assert!(!names.contains(&"00000000000000000021.seg".to_string()));
        let orphans: Vec<String> = std::fs::read_dir(seg(ORPHAN_DIR))
            .expect("orphans")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            orphans,
            ["00000000000000000021.seg"],
            "the damaged one is kept"
        );
        check_reads(&store, &values, 100);
    }

    /// A merge signs only what its parts' seals vouch for: a state table replaced by one that
    /// another key signed (its blocks and checksums sound, one value changed) is refused,
    /// named, and nothing is merged; the forged value is never signed with the ledger's key.
    #[test]
    fn a_merge_refuses_a_part_its_seal_does_not_vouch_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = four_windows_due_to_merge(dir.path());
        // Window 61..=80's state table (the states that settled there and were not written
        // again), forged: one value changed, signed with another key.
        let files = store.catalog();
        let victim = &files[3];
        let t = victim.states.as_ref().expect("a state table");
        let mut entries = Vec::new();
        let mut c = t.cursor_all();
        while let Some(e) = c.next_entry().expect("entry") {
            entries.push(e);
        }
        entries[0].1 = 999u64.to_be_bytes().to_vec();
        let path = victim.entry.states_path(dir.path());
        let forged = dir.path().join("forged.sta");
        let mut w = TableWriter::new(&forged, victim.entry.first, victim.entry.last).whole_keys();
        for (k, v) in &entries {
            w.push(k, v).expect("push");
        }
        let len = w.finish(&SigningKey::from_bytes(&[9; 32])).expect("finish");
        std::fs::rename(&forged, &path).expect("replace");
        let entry = catalog::Entry {
            states_len: len,
            ..victim.entry.clone()
        };
        store
            .tree
            .insert(pk(G, &entry.first.to_be_bytes()), entry.encode())
            .expect("catalog");
        drop((files, store));
        let store = Store::open_with(dir.path(), 1 << 22, Some(merging(20))).expect("reopen");
        // Windows 1..=40 merge; 41..=80, holding the forged table, is refused.
        let err = loop {
            match store.merge_next(&|| false) {
                Ok(true) => {}
                Ok(false) => panic!("every merge went through"),
                Err(e) => break e,
            }
        };
        assert!(
            err.to_string().contains("00000000000000000061.sta"),
            "names the table: {err}"
        );
        assert_eq!(
            spans_of(&store),
            [(1, 40), (41, 60), (61, 80)],
            "nothing merged with the forged table"
        );
        assert!(
            !segment_names(dir.path())
                .iter()
                .any(|n| n.contains("-00000000000000000080")),
            "no merged file left behind"
        );
    }
}
