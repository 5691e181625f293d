//! The patch and booklet ledger: custody of accountable items, in an append-only, hash-chained,
//! durable journal with signed checkpoints and indexed forensic queries.
//!
//! # How an append flows
//! 1. [`Ledger::append`] takes the writer lock, numbers the record and builds its canonical body.
//! 2. [`custody::plan`] checks every invariant against the current state (items, sessions) and
//!    either refuses, with a [`Refusal`] that names the reason, or returns the new states.
//!    A refusal writes nothing.
//! 3. The record, its link, the new states and the index keys go to the store in one atomic
//!    write; a signed checkpoint joins it every N records or T seconds.
//! 4. The writer lock is released and the caller waits for the committer thread: it flushes and
//!    fsyncs the store once for every record written so far (group commit). Only then is the
//!    [`Receipt`] returned: a record is acknowledged only once it is on disk.
//!
//! # Modules
//! - [`event`]: what is recorded ([`LedgerEvent`], [`Record`], serials).
//! - [`custody`]: item and session state machines and the invariant checks.
//! - [`chain`]: links and signed checkpoints.
//! - [`query`]: trace, reconciliation, destruction register, SLTD export.
//! - [`verify`]: integrity check of the whole chain (or its tail).
//! - [`evidence`]: signed evidence bundles, checkable offline.

pub mod action;
pub mod chain;
pub mod custody;
pub mod event;
pub mod evidence;
pub mod lots;
pub mod query;
mod sealer;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::{Sealing, Store, StoreError, WriteSet};
pub use action::{ControlAction, Role, UserChange};
pub use chain::Checkpoint;
pub use custody::{Alert, Item, ItemState, Lot, Refusal, Session};
pub use event::{ItemKind, LedgerEvent, LotId, Record, Serial, SerialRange, SessionId, ShiftId};

/// Everything that can go wrong with the ledger.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The event breaks a custody rule; nothing was written. (Not a `source`: the refusal is
    /// the whole message, and error reports should not print it twice.)
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value could not be decoded (corruption or tampering).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The record was written but the fsync failed: it is not acknowledged, and the ledger
    /// refuses further appends until it is reopened.
    #[error("the ledger could not make records durable: {0}")]
    NotDurable(String),
    /// The storage watch stopped recording before the store fails (the disk is almost full):
    /// nothing was written. Appends resume when the watch lifts the halt.
    #[error("the ledger is not recording: {0}")]
    Halted(String),
    /// A key or ledger file problem.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No ledger at the path.
    #[error("no ledger at {0} (nothing has been recorded there)")]
    NotFound(PathBuf),
}

impl From<Refusal> for LedgerError {
    fn from(r: Refusal) -> Self {
        LedgerError::Refused(r)
    }
}

impl LedgerError {
    /// The refusal, when the error is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            LedgerError::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// Tuning of the journal.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Sign a checkpoint at least every this many records.
    pub checkpoint_every: u64,
    /// Sign a checkpoint when this much time passed since the last one (checked at appends).
    pub checkpoint_interval: Duration,
    /// sled's page cache. Traces and verification of a ledger larger than the cache read pages
    /// back from the file, which sled 0.34 does slowly: size it to the store when memory allows.
    pub cache_bytes: u64,
    /// Sealed history moves out of sled into segment files (`store/segments/`) once more than
    /// this many records are outside files: the oldest run of this many goes into one file
    /// signed with the checkpoint key. 0: never.
    pub seal_window: u64,
    /// A closed period's sealed files are merged into one file.
    pub period: Period,
    /// Within a period, this many sealed files of one size are merged into one (so that a
    /// trace reads a few files, not one per window). Below 2: never.
    pub merge_fanout: u64,
    /// Free space a merge must leave beyond the copy it writes (above the line's halt).
    pub merge_reserve_bytes: u64,
}

/// The span of history a sealed file is closed over: once a record of the next period is
/// sealed, the period's files become one (by the time of each file's first record, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A calendar day.
    Day,
    /// An ISO week.
    Week,
    /// A calendar month.
    #[default]
    Month,
}

impl std::str::FromStr for Period {
    type Err = String;

    /// `day`, `week` or `month`; otherwise an error naming the choices.
    fn from_str(s: &str) -> Result<Period, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => Err(format!(
                "{other:?} is not a period (one of day, week, month)"
            )),
        }
    }
}

impl Period {
    /// The number of the period holding `at` (consecutive periods, consecutive numbers).
    pub fn of(self, at: DateTime<Utc>) -> u64 {
        use chrono::Datelike as _;
        let n = match self {
            Period::Day => at.timestamp().div_euclid(86_400),
            Period::Week => at
                .timestamp()
                .div_euclid(86_400)
                .saturating_add(3)
                .div_euclid(7),
            Period::Month => i64::from(at.year()) * 12 + i64::from(at.month0()),
        };
        u64::try_from(n).unwrap_or(0)
    }

    /// The period of a record's body (`None`: not a record).
    fn of_body(self, body: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct At {
            at: DateTime<Utc>,
        }
        serde_json::from_slice::<At>(body)
            .ok()
            .map(|a| self.of(a.at))
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            cache_bytes: 1 << 30,
            seal_window: 20_000,
            period: Period::Month,
            merge_fanout: 8,
            merge_reserve_bytes: 1 << 30,
        }
    }
}

/// The acknowledgement of a durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Its sequence number.
    pub seq: u64,
    /// Its chain link (hex).
    pub link: String,
    /// An alert the record raised (a roll skip, a discrepancy), for the supervisor.
    pub alert: Option<Alert>,
}

struct Writer {
    head_seq: u64,
    head_link: chain::Link,
    last_cp_seq: u64,
    last_cp_time: Instant,
}

#[derive(Default)]
struct Durability {
    written: u64,
    durable: u64,
    syncs: u64,
    failed: Option<String>,
    /// A halt set by the storage watch ([`Ledger::halt`]): appends are refused until it is
    /// lifted. Unlike `failed`, nothing went wrong yet.
    halted: Option<String>,
    /// When a flush + fsync last succeeded (the storage watch probes only when none did lately).
    last_sync: Option<Instant>,
    shutdown: bool,
}

struct Committer {
    state: Mutex<Durability>,
    work: Condvar,
    done: Condvar,
    /// The last durable sequence number, for consumers that follow the journal (the MQTT
    /// outbox) without polling.
    durable_tx: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave them half-updated in a way that
    // matters: every field is written in one assignment. Keep going rather than cascade.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// File names inside a ledger directory.
pub const STORE_DIR: &str = "store";
/// The checkpoint signing key (hex seed; keep it readable by the controller only).
pub const KEY_FILE: &str = "checkpoint.key";
/// The checkpoint public key (hex); copy it off the machine with the checkpoints.
pub const PUB_FILE: &str = "checkpoint.pub";

/// The ledger: one per hall, behind one handle. `Send + Sync`: share it with an `Arc`.
pub struct Ledger {
    store: Arc<Store>,
    key: SigningKey,
    config: LedgerConfig,
    writer: Mutex<Writer>,
    committer: Arc<Committer>,
    thread: Option<JoinHandle<()>>,
    /// Moves durable history into segment files, off the append path.
    sealer: Arc<sealer::Sealer>,
    sealer_thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    /// Some records predate per-item trace values: a trace reads their serial index entries too.
    legacy_trace: bool,
}

/// Metadata key: the first record whose trace steps are in per-item trace values.
const TRACE_VALUES_SINCE: &str = "trace_values_since";

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("dir", &self.dir).finish()
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn load_or_create_key(dir: &Path) -> Result<SigningKey, LedgerError> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| file_err(&path, "not a 32-byte hex key"))?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    let mut seed = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .map_err(|e| file_err(&path, e))?;
    let key = SigningKey::from_bytes(&seed);
    write_private(&path, &hex::encode(seed))?;
    let pub_path = dir.join(PUB_FILE);
    std::fs::write(&pub_path, hex::encode(key.verifying_key().as_bytes()))
        .map_err(|e| file_err(&pub_path, e))?;
    // The key's directory entry must survive a crash too, or checkpoints signed with it would
    // outlive the only copy of the key.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_err(dir, e))?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> Result<(), LedgerError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| file_err(path, e))
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it (and its signing key) on first use.
    ///
    /// # Errors
    /// The store cannot be opened, or the key file is unreadable.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let key = load_or_create_key(dir)?;
        // The store signs segment files with the checkpoint key; the key stays loaded here.
        let sealing = Sealing {
            window: config.seal_window,
            key: key.clone(),
            range_only_tags: vec![ix::TIME.to_vec()],
            fanout: config.merge_fanout,
            reserve_bytes: config.merge_reserve_bytes,
            period_of: Some(Arc::new(move |body: &[u8]| config.period.of_body(body))),
        };
        let store = Arc::new(Store::open_with(
            &dir.join(STORE_DIR),
            config.cache_bytes,
            Some(sealing),
        )?);
        let (head_seq, head_link) = match store.journal_last()? {
            Some((seq, v)) => {
                let (l, _) = chain::split_stored(&v)
                    .ok_or_else(|| LedgerError::Corrupt(format!("record {seq} is truncated")))?;
                (seq, l)
            }
            None => (0, chain::GENESIS),
        };
        let last_cp_seq = store.checkpoint_last()?.map_or(0, |(s, _)| s);
        // Records from this one on keep their trace steps in per-item trace values; a ledger
        // written by an earlier version keeps the older ones in per-record serial index entries.
        let trace_values_since = match store.meta_get(TRACE_VALUES_SINCE)? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| LedgerError::Corrupt(format!("{TRACE_VALUES_SINCE} is {v:?}")))?,
            None => {
                let since = head_seq + 1;
                store.meta_set(TRACE_VALUES_SINCE, since.to_string().as_bytes())?;
                store.sync()?;
                since
            }
        };
        index_lot_ranges(&store)?;
        let committer = Arc::new(Committer {
            state: Mutex::new(Durability {
                written: head_seq,
                durable: head_seq,
                ..Durability::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable_tx: tokio::sync::watch::Sender::new(head_seq),
        });
        let sealer = Arc::new(sealer::Sealer::new(head_seq));
        let thread = {
            let store = Arc::clone(&store);
            let c = Arc::clone(&committer);
            let s = Arc::clone(&sealer);
            std::thread::Builder::new()
                .name("ledger-commit".into())
                .spawn(move || commit_loop(&store, &c, &s))
                .map_err(|e| file_err(dir, e))?
        };
        let sealer_thread = {
            let store = Arc::clone(&store);
            let s = Arc::clone(&sealer);
            std::thread::Builder::new()
                .name("ledger-seal".into())
                .spawn(move || sealer::seal_loop(&store, &s))
                .map_err(|e| file_err(dir, e))?
        };
        Ok(Ledger {
            store,
            key,
            config,
            writer: Mutex::new(Writer {
                head_seq,
                head_link,
                last_cp_seq,
                last_cp_time: Instant::now(),
            }),
            committer,
            thread: Some(thread),
            sealer,
            sealer_thread: Some(sealer_thread),
            dir: dir.to_path_buf(),
            legacy_trace: trace_values_since > 1,
        })
    }

    /// Opens an existing ledger; refuses to create one (for audit commands).
    ///
    /// # Errors
    /// [`LedgerError::NotFound`] when `dir` holds no ledger, and as [`Ledger::open`].
    pub fn open_existing(dir: &Path) -> Result<Ledger, LedgerError> {
        let store = dir.join(STORE_DIR);
        // In the middle of a swap of sled's rebuilt file, the copy is the store's file.
        if !store.join("db").exists() && !crate::store::compact::has_complete_copy(&store) {
            return Err(LedgerError::NotFound(dir.to_path_buf()));
        }
        // An audit reads: it never seals (the controller seals with its configured window).
        Ledger::open(
            dir,
            LedgerConfig {
                seal_window: 0,
                ..LedgerConfig::default()
            },
        )
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The underlying store (for the tamper drills of the test-suite).
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads every item's state and trace value once, so that the store's cache holds them
    /// and a trace is answered from memory (one scan in key order instead of a handful of
    /// scattered reads per trace, which on a ledger larger than the machine's memory cost
    /// milliseconds each). The controller runs it in the background after opening the ledger;
    /// traces before it finishes are correct, only slower. Returns (entries, bytes); `stop`
    /// ends it early (shutdown).
    ///
    /// # Errors
    /// Storage errors.
    pub fn warm(
        &self,
        mut progress: impl FnMut(u64),
        stop: impl Fn() -> bool,
    ) -> Result<(u64, u64), LedgerError> {
        // What a trace reads besides the items: their lots and the reversal index (small).
        let (mut n, mut bytes) = self.store.warm_state(b"l/", &mut progress, &stop)?;
        let (rn, rb) = self.store.warm_index(ix::REVERSAL, &mut progress, &stop)?;
        // And the lot-range index, through which an unissued item is read.
        let (ln, lb) = self.store.warm_index(lots::TAG, &mut progress, &stop)?;
        let (rn, rb) = (rn + ln, rb + lb);
        let (i_n, ib) = self
            .store
            .warm_state(b"i/", |k| progress(n + rn + k), &stop)?;
        n += rn + i_n;
        bytes += rb + ib;
        Ok((n, bytes))
    }

    /// Sequence number of the last record (0 when empty).
    pub fn head(&self) -> u64 {
        lock(&self.writer).head_seq
    }

    /// The last record's sequence number and chain link (hex); 0 and the genesis link when
    /// the ledger is empty.
    pub fn head_link(&self) -> (u64, String) {
        let w = lock(&self.writer);
        (w.head_seq, hex::encode(w.head_link))
    }

    /// Durability counters: (last durable sequence number, flush + fsync rounds since open).
    pub fn durability(&self) -> (u64, u64) {
        let d = lock(&self.committer.state);
        (d.durable, d.syncs)
    }

    /// A receiver of the last durable sequence number: it changes each time records become
    /// durable. A consumer that follows the journal reads records up to it and never one that a
    /// crash could still take back.
    pub fn watch_durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committer.durable_tx.subscribe()
    }

    /// A consumer's cursor: its progress through the journal, as it saved it with
    /// [`Ledger::save_cursor`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.store.aux_get(&cursor_key(name))?)
    }

    /// Saves a consumer's cursor (the MQTT outbox: the last record the broker acknowledged) and
    /// makes it durable before returning. The one operational entry written without a ledger
    /// record: it changes no custody or job state, only how far a consumer has read. A consumer
    /// saves it now and then, not per record: after a crash it starts again from the saved
    /// cursor and sends some records twice, never none.
    ///
    /// # Errors
    /// Storage errors (the ledger has stopped confirming writes, sled or the fsync failed).
    pub fn save_cursor(&self, name: &str, value: &[u8]) -> Result<(), LedgerError> {
        if let Some(f) = &lock(&self.committer.state).failed {
            return Err(LedgerError::NotDurable(f.clone()));
        }
        let mut ws = WriteSet::default();
        ws.aux(cursor_key(name), Some(value.to_vec()));
        self.store.commit(&ws)?;
        self.store.sync()?;
        Ok(())
    }

    /// Why the store stopped confirming writes, if it did (a failed write or fsync): from then
    /// on every append is refused and nothing is acknowledged, until the ledger is reopened.
    pub fn failure(&self) -> Option<String> {
        lock(&self.committer.state).failed.clone()
    }

    /// Fail-stop: from now on every append is refused (see [`Ledger::failure`]).
    fn fail(&self, why: &str) {
        let mut d = lock(&self.committer.state);
        if d.failed.is_none() {
            tracing::error!("the ledger stops recording: {why}");
            d.failed = Some(why.to_string());
        }
        self.committer.done.notify_all();
    }

    /// Stops recording before the store fails (the storage watch does, when the disk is almost
    /// full): appends are refused with [`LedgerError::Halted`] until [`Ledger::resume`].
    pub fn halt(&self, why: &str) {
        lock(&self.committer.state).halted = Some(why.to_string());
    }

    /// Lifts a [`Ledger::halt`] (not a failure: that needs a reopen).
    pub fn resume(&self) {
        lock(&self.committer.state).halted = None;
    }

    /// Why the ledger is not recording now, if it is not: a failure, else a halt.
    pub fn unavailable(&self) -> Option<String> {
        let d = lock(&self.committer.state);
        d.failed.clone().or_else(|| d.halted.clone())
    }

    /// Checks that the store still writes and syncs: unless a flush + fsync succeeded within
    /// `fresh`, writes a small operational key (`probe`, the time) and syncs it. A failure is a
    /// storage failure (fail-stop, as in an append), so that an idle hall finds out too.
    ///
    /// # Errors
    /// The ledger has failed, or the probe's write or sync failed (and the ledger now has).
    pub fn probe(&self, fresh: Duration) -> Result<(), LedgerError> {
        {
            let d = lock(&self.committer.state);
            if let Some(f) = &d.failed {
                return Err(LedgerError::NotDurable(f.clone()));
            }
            if d.last_sync.is_some_and(|t| t.elapsed() < fresh) {
                return Ok(());
            }
        }
        let mut ws = WriteSet::default();
        ws.aux(
            b"probe".to_vec(),
            Some(Utc::now().timestamp_millis().to_be_bytes().to_vec()),
        );
        let result = self.store.commit(&ws).and_then(|()| self.store.sync());
        match result {
            Ok(()) => {
                lock(&self.committer.state).last_sync = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                self.fail(&format!("storage probe: {e}"));
                Err(LedgerError::NotDurable(e.to_string()))
            }
        }
    }

    /// Records an event now, as `actor`; returns once it is durable.
    ///
    /// # Errors
    /// [`LedgerError::Refused`] when it breaks a custody rule (nothing written); storage errors.
    pub fn append(&self, actor: OperatorId, event: LedgerEvent) -> Result<Receipt, LedgerError> {
        self.append_at(Utc::now(), actor, event)
    }

    /// Records an event with an explicit time (imports, simulations, tests).
    ///
    /// # Errors
    /// As [`Ledger::append`].
    pub fn append_at(
        &self,
        at: DateTime<Utc>,
        actor: OperatorId,
        event: LedgerEvent,
    ) -> Result<Receipt, LedgerError> {
        let mut r = self.append_batch(vec![(at, actor, event)])?;
        r.pop()
            .ok_or_else(|| LedgerError::Corrupt("empty receipt".into()))
    }

    /// Records several events atomically (all or none) with one durability wait.
    ///
    /// # Errors
    /// The first refusal (nothing written), or storage errors.
    pub fn append_batch(
        &self,
        entries: Vec<(DateTime<Utc>, OperatorId, LedgerEvent)>,
    ) -> Result<Vec<Receipt>, LedgerError> {
        self.append_batch_with(entries, Vec::new())
    }

    /// Records events atomically together with the controller's operational state changes
    /// (`aux`: key → value, or removal), in one batch and one durability wait: a job's new
    /// state is never durable without the record that accounts for it, nor the reverse.
    ///
    /// # Errors
    /// As [`Ledger::append_batch`]; on error neither the records nor `aux` are written.
    pub fn append_batch_with(
        &self,
        entries: Vec<(DateTime<Utc>, OperatorId, LedgerEvent)>,
        aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<Receipt>, LedgerError> {
        if entries.is_empty() && !aux.is_empty() {
            return Err(Refusal::Invalid(
                "operational state changes need a ledger record that accounts for them".into(),
            )
            .into());
        }
        let receipts = self.write_batch(entries, aux)?;
        self.wait_durable(receipts.last().map_or(0, |r| r.seq))?;
        Ok(receipts)
    }

    /// Checks `event` against the custody rules as if it were appended now, and writes
    /// nothing: a station asks before it feeds a patch or prints a booklet, so that the
    /// operator sees the refusal before the device moves. The append re-checks.
    ///
    /// # Errors
    /// [`LedgerError::Refused`] with the reason; storage errors.
    pub fn check(
        &self,
        actor: OperatorId,
        event: LedgerEvent,
    ) -> Result<Option<Alert>, LedgerError> {
        let w = lock(&self.writer);
        let overlay = Overlay::default();
        let view = StoreView {
            store: &self.store,
            overlay: &overlay,
        };
        let record = Record {
            seq: w.head_seq + 1,
            at: Utc::now(),
            actor,
            event,
        };
        Ok(custody::plan(&view, &record)?.alert)
    }

    /// Bulk import: records batches of events through the same checks, hashing and indexing
    /// as [`Ledger::append_batch`] (each batch atomic, all or none), but checks and writes batch
    /// N + 1 while the committer flushes and fsyncs batch N, so the CPU work and the disk's
    /// fsync overlap. `acknowledged(receipts)` is called for each batch, in order, only once an
    /// fsync that covers it has completed. Returns the number of records imported.
    ///
    /// # Errors
    /// The first refusal (its batch is not written; the batches before it are, and are
    /// acknowledged once durable before the error is returned), or storage errors.
    pub fn import(
        &self,
        batches: impl IntoIterator<Item = Vec<(DateTime<Utc>, OperatorId, LedgerEvent)>>,
        mut acknowledged: impl FnMut(&[Receipt]),
    ) -> Result<u64, LedgerError> {
        let mut pending: Option<Vec<Receipt>> = None;
        let mut imported = 0u64;
        let mut ack = |p: Vec<Receipt>, imported: &mut u64| -> Result<(), LedgerError> {
            self.wait_durable(p.last().map_or(0, |r| r.seq))?;
            *imported += p.len() as u64;
            acknowledged(&p);
            Ok(())
        };
        for batch in batches {
            let written = self.write_batch(batch, Vec::new());
            if let Some(p) = pending.take() {
                ack(p, &mut imported)?;
            }
            pending = Some(written?);
        }
        if let Some(p) = pending.take() {
            ack(p, &mut imported)?;
        }
        Ok(imported)
    }

    /// Checks and writes one atomic batch and hands it to the committer; does not wait for it
    /// to be durable.
    fn write_batch(
        &self,
        entries: Vec<(DateTime<Utc>, OperatorId, LedgerEvent)>,
        aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<Receipt>, LedgerError> {
        let last = {
            let mut w = lock(&self.writer);
            {
                let d = lock(&self.committer.state);
                if let Some(f) = &d.failed {
                    return Err(LedgerError::NotDurable(f.clone()));
                }
                if let Some(h) = &d.halted {
                    return Err(LedgerError::Halted(h.clone()));
                }
            }
            let mut overlay = Overlay::default();
            let mut ws = WriteSet::default();
            let mut receipts = Vec::with_capacity(entries.len());
            let (mut seq, mut link) = (w.head_seq, w.head_link);
            for (at, actor, event) in entries {
                seq += 1;
                let record = Record {
                    seq,
                    at,
                    actor,
                    event,
                };
                let view = StoreView {
                    store: &self.store,
                    overlay: &overlay,
                };
                let plan = custody::plan(&view, &record)?;
                let body = serde_json::to_vec(&record)
                    .map_err(|e| LedgerError::Corrupt(format!("encoding record {seq}: {e}")))?;
                link = chain::link(&link, seq, &body);
                ws.journal(seq, chain::stored(&link, &body));
                for k in index_keys(&record, &plan) {
                    if ix::is_posting(&k) {
                        ws.posting(k);
                    } else {
                        ws.index(k);
                    }
                }
                let steps = trace_steps(&record, &plan, &view)?;
                receipts.push(Receipt {
                    seq,
                    link: hex::encode(link),
                    alert: plan.alert.clone(),
                });
                overlay.absorb(plan);
                if let Some(steps) = steps {
                    overlay.add_steps(&self.store, steps, &mut ws)?;
                }
            }
            // The batch's final states, each encoded and written once.
            overlay.write(&self.store, &mut ws)?;
            let checkpoint = seq - w.last_cp_seq >= self.config.checkpoint_every
                || (seq > w.last_cp_seq
                    && w.last_cp_time.elapsed() >= self.config.checkpoint_interval);
            if checkpoint {
                let cp = Checkpoint::sign(&self.key, seq, &link, Utc::now());
                ws.checkpoint(seq, encode(&cp)?);
            }
            for (k, v) in aux {
                ws.aux(k, v);
            }
            if let Err(e) = self.store.commit(&ws) {
                // A write the store refused (disk full, I/O error) is a storage failure, not a
                // refusal: fail-stop, as for a failed fsync.
                self.fail(&e.to_string());
                return Err(e.into());
            }
            // Only now that the write is in: a failed commit leaves the writer as it was.
            if checkpoint {
                w.last_cp_seq = seq;
                w.last_cp_time = Instant::now();
            }
            w.head_seq = seq;
            w.head_link = link;
            let mut d = lock(&self.committer.state);
            d.written = seq;
            self.committer.work.notify_one();
            receipts
        };
        Ok(last)
    }

    fn wait_durable(&self, seq: u64) -> Result<(), LedgerError> {
        let mut d = lock(&self.committer.state);
        loop {
            if d.durable >= seq {
                return Ok(());
            }
            if let Some(f) = &d.failed {
                return Err(LedgerError::NotDurable(f.clone()));
            }
            d = self
                .committer
                .done
                .wait(d)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Signs a checkpoint of the current head now (if there is a record it does not cover yet)
    /// and makes it durable. Returns the latest checkpoint.
    ///
    /// # Errors
    /// Storage errors.
    pub fn checkpoint_now(&self) -> Result<Option<Checkpoint>, LedgerError> {
        {
            let mut w = lock(&self.writer);
            if w.head_seq > w.last_cp_seq {
                let cp = Checkpoint::sign(&self.key, w.head_seq, &w.head_link, Utc::now());
                let mut ws = WriteSet::default();
                ws.checkpoint(cp.seq, encode(&cp)?);
                self.store.commit(&ws)?;
                w.last_cp_seq = cp.seq;
                w.last_cp_time = Instant::now();
            }
        }
        self.store.sync()?;
        self.last_checkpoint()
    }

    /// Every stored checkpoint, oldest first.
    ///
    /// # Errors
    /// Storage errors or an unreadable checkpoint.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, LedgerError> {
        self.store
            .checkpoints()?
            .into_iter()
            .map(|(_, v)| decode(&v))
            .collect()
    }

    /// The latest stored checkpoint.
    ///
    /// # Errors
    /// Storage errors or an unreadable checkpoint.
    pub fn last_checkpoint(&self) -> Result<Option<Checkpoint>, LedgerError> {
        self.store
            .checkpoint_last()?
            .map(|(_, v)| decode(&v))
            .transpose()
    }

    /// The first stored checkpoint after sequence number `seq` (for consumers that publish
    /// checkpoints as they are signed).
    ///
    /// # Errors
    /// Storage errors or an unreadable checkpoint.
    pub fn checkpoint_after(&self, seq: u64) -> Result<Option<Checkpoint>, LedgerError> {
        self.store
            .checkpoint_at_or_after(seq.saturating_add(1))?
            .map(|(_, v)| decode(&v))
            .transpose()
    }

    /// One record, decoded.
    ///
    /// # Errors
    /// Storage errors or an unreadable record.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, LedgerError> {
        match self.store.journal_get(seq)? {
            Some(v) => {
                let (_, body) = chain::split_stored(&v)
                    .ok_or_else(|| LedgerError::Corrupt(format!("record {seq} is truncated")))?;
                Ok(Some(decode(body)?))
            }
            None => Ok(None),
        }
    }

    /// An item's current state.
    ///
    /// # Errors
    /// Storage errors.
    pub fn item(&self, serial: &Serial) -> Result<Option<Item>, LedgerError> {
        custody::StateView::item(
            &StoreView {
                store: &self.store,
                overlay: &Overlay::default(),
            },
            serial,
        )
    }

    /// The item `serial` of `lot`, whose range holds it: the stored item, else the one the lot
    /// implies (what [`Ledger::item`] answers, without finding the lot again).
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) fn item_of_lot(
        &self,
        serial: &Serial,
        lot: &Lot,
    ) -> Result<Option<Item>, LedgerError> {
        if let Some(i) = get_state(&self.store, &state_key(b"i/", serial.as_str()))? {
            return Ok(Some(i));
        }
        Ok(lot
            .range
            .number_of(serial)
            .map(|_| lot.implied_item(serial.clone())))
    }

    /// A session's current state.
    ///
    /// # Errors
    /// Storage errors.
    pub fn session(&self, id: &SessionId) -> Result<Option<Session>, LedgerError> {
        get_state(&self.store, &state_key(b"s/", id.as_str()))
    }

    /// The open custody session at a station, if any.
    ///
    /// # Errors
    /// Storage errors.
    pub fn open_session_at(&self, station: &StationId) -> Result<Option<SessionId>, LedgerError> {
        let overlay = Overlay::default();
        custody::StateView::open_at_station(
            &StoreView {
                store: &self.store,
                overlay: &overlay,
            },
            station,
        )
    }

    /// A lot.
    ///
    /// # Errors
    /// Storage errors.
    pub fn lot(&self, id: &LotId) -> Result<Option<Lot>, LedgerError> {
        get_state(&self.store, &state_key(b"l/", id.as_str()))
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        {
            let mut d = lock(&self.committer.state);
            d.shutdown = true;
            self.committer.work.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sealer.shut_down();
        if let Some(t) = self.sealer_thread.take() {
            let _ = t.join();
        }
    }
}

/// The committer: one sync (a write and an fdatasync of the store's log) covers every record
/// written before it started, so concurrent appenders share the cost (group commit).
fn commit_loop(store: &Store, c: &Committer, sealer: &sealer::Sealer) {
    loop {
        let target = {
            let mut d = lock(&c.state);
            while d.written == d.durable && !d.shutdown {
                d = c.work.wait(d).unwrap_or_else(|p| p.into_inner());
            }
            if d.written == d.durable {
                return; // shutdown with nothing pending
            }
            d.written
        };
        let result = store.sync();
        let mut d = lock(&c.state);
        match result {
            Ok(()) => {
                d.durable = d.durable.max(target);
                d.syncs += 1;
                d.last_sync = Some(Instant::now());
                c.durable_tx.send_replace(d.durable);
                sealer.durable(d.durable);
            }
            Err(e) => d.failed = Some(e.to_string()),
        }
        c.done.notify_all();
        if d.failed.is_some() {
            return;
        }
    }
}

/// Set once every lot of the store has its lot-range entries ([`lots`]).
const LOT_RANGES_INDEXED: &str = "lot_ranges_indexed";

/// Writes the lot-range entries of the lots a ledger written before the index holds (once;
/// lots are few: boxes and rolls). Their items were stored at receipt and stay as they are; the
/// entries make a new lot's overlap check see these lots.
fn index_lot_ranges(store: &Store) -> Result<(), LedgerError> {
    if store.meta_get(LOT_RANGES_INDEXED)?.is_some() {
        return Ok(());
    }
    let mut ws = WriteSet::default();
    let mut unreadable = None;
    store.state_for_each(b"l/", |k, v| match decode::<Lot>(v) {
        Ok(lot) => {
            for (k, v) in lots::entries(&lot) {
                ws.index_with(k, v);
            }
        }
        Err(e) => {
            unreadable.get_or_insert(format!("{}: {e}", String::from_utf8_lossy(k)));
        }
    })?;
    if let Some(e) = unreadable {
        return Err(LedgerError::Corrupt(e));
    }
    store.commit(&ws)?;
    store.meta_set(LOT_RANGES_INDEXED, b"1")?;
    store.sync()?;
    Ok(())
}

/// The operational key of a consumer's cursor.
fn cursor_key(name: &str) -> Vec<u8> {
    state_key(b"cursor/", name)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, LedgerError> {
    serde_json::to_vec(v).map_err(|e| LedgerError::Corrupt(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(v: &[u8]) -> Result<T, LedgerError> {
    serde_json::from_slice(v).map_err(|e| LedgerError::Corrupt(e.to_string()))
}

fn state_key(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn get_state<T: for<'de> Deserialize<'de>>(
    store: &Store,
    key: &[u8],
) -> Result<Option<T>, LedgerError> {
    store.state_get(key)?.map(|v| decode(&v)).transpose()
}

/// Changes made earlier in the same batch, read before the store. Written to the batch's
/// [`WriteSet`] once, at its end ([`Overlay::write`]): an item or a session that several records
/// of the batch change is encoded and written once.
#[derive(Default)]
struct Overlay {
    items: HashMap<Serial, Item>,
    sessions: HashMap<SessionId, Session>,
    lots: HashMap<LotId, Lot>,
    /// The lot-range index entries of the batch's lots ([`lots::entries`]).
    lot_ranges: BTreeMap<Vec<u8>, Vec<u8>>,
    station_open: HashMap<StationId, Option<SessionId>>,
    operator_open: HashMap<OperatorId, Option<SessionId>>,
    /// Trace values of the items the batch names: the stored value plus the batch's entries.
    traces: HashMap<Serial, Vec<u8>>,
    /// Opening entries ([`trace_entry`]) of sessions opened in the batch.
    openings: HashMap<SessionId, Vec<u8>>,
}

impl Overlay {
    fn absorb(&mut self, plan: custody::Plan) {
        for l in plan.lots {
            self.lot_ranges.extend(lots::entries(&l));
            self.lots.insert(l.id.clone(), l);
        }
        for i in plan.items {
            self.items.insert(i.serial.clone(), i);
        }
        for s in plan.sessions {
            self.sessions.insert(s.id.clone(), s);
        }
        for (st, s) in plan.station_open {
            self.station_open.insert(st, s);
        }
        for (op, s) in plan.operator_open {
            self.operator_open.insert(op, s);
        }
    }

    /// Appends a record's trace step to the trace value of every item it names (an issue also
    /// appends its session's opening, so that a trace shows the station's operator and shift
    /// without reading the opening). A session's opening is kept under its own index entry.
    fn add_steps(
        &mut self,
        store: &Store,
        steps: TraceSteps<'_>,
        ws: &mut WriteSet,
    ) -> Result<(), LedgerError> {
        let entry = trace_entry(steps.seq, &steps.value);
        if let Some(session) = steps.opens {
            ws.posting_with(
                ix::key(ix::OPENING, session.as_str().as_bytes(), steps.seq),
                steps.value,
            );
            self.openings.insert(session.clone(), entry.clone());
        }
        let opening = match steps.issued_to {
            Some(session) => match self.openings.get(session) {
                Some(e) => Some(e.clone()),
                None => store
                    .index_scan_kv(&ix::prefix(ix::OPENING, session.as_str().as_bytes()), 1)?
                    .pop()
                    .map(|(k, v)| trace_entry(ix::seq_of(&k), &v)),
            },
            None => None,
        };
        for s in steps.serials {
            let t = match self.traces.get_mut(s) {
                Some(t) => t,
                None => {
                    let stored = store.state_get(&trace_key(s))?.unwrap_or_default();
                    self.traces.entry(s.clone()).or_insert(stored)
                }
            };
            if let Some(o) = &opening {
                t.extend_from_slice(o);
            }
            t.extend_from_slice(&entry);
        }
        Ok(())
    }

    /// Writes the batch's final states and trace values. An item whose use is over (applied,
    /// destroyed, missing), its trace value and a closed session are written *settled*: they
    /// leave sled with the batch's window, into the segment's state table (a later change
    /// writes them to sled again).
    fn write(self, store: &Store, ws: &mut WriteSet) -> Result<(), LedgerError> {
        for (id, l) in &self.lots {
            ws.state(state_key(b"l/", id.as_str()), Some(encode(l)?));
        }
        for (k, v) in self.lot_ranges {
            ws.index_with(k, v);
        }
        for (serial, i) in &self.items {
            let key = state_key(b"i/", serial.as_str());
            if i.state.is_settled() {
                ws.state_settled(key, encode(i)?);
            } else {
                ws.state(key, Some(encode(i)?));
            }
        }
        for (serial, t) in self.traces {
            let settled = match self.items.get(&serial) {
                Some(i) => i.state.is_settled(),
                None => get_state::<Item>(store, &state_key(b"i/", serial.as_str()))?
                    .is_some_and(|i| i.state.is_settled()),
            };
            if settled {
                ws.state_settled(trace_key(&serial), t);
            } else {
                ws.state(trace_key(&serial), Some(t));
            }
        }
        for (id, s) in &self.sessions {
            let key = state_key(b"s/", id.as_str());
            if s.closed_at.is_some() {
                ws.state_settled(key, encode(s)?);
            } else {
                ws.state(key, Some(encode(s)?));
            }
        }
        for (st, s) in self.station_open {
            ws.state(state_key(b"os/", st.as_str()), s.map(|s| s.0.into_bytes()));
        }
        for (op, s) in self.operator_open {
            ws.state(state_key(b"oo/", op.as_str()), s.map(|s| s.0.into_bytes()));
        }
        Ok(())
    }
}

/// The state key of an item's trace value: the item's own key followed by `\0t`, so the two sit
/// side by side (usually in one sled leaf) and a trace reads one page per item. It never names an
/// item: every serial comes from a lot range and ends in a digit.
pub(crate) fn trace_key(serial: &Serial) -> Vec<u8> {
    let mut k = state_key(b"i/", serial.as_str());
    k.extend_from_slice(b"\0t");
    k
}

/// One entry of a trace value: `seq (u64 BE) ‖ length (u32 BE) ‖ step` ([`query::StepValue`]).
fn trace_entry(seq: u64, step: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(12 + step.len());
    e.extend_from_slice(&seq.to_be_bytes());
    e.extend_from_slice(&u32::try_from(step.len()).unwrap_or(u32::MAX).to_be_bytes());
    e.extend_from_slice(step);
    e
}

/// Splits a trace value into its entries (seq, step); `None` when it is malformed.
pub(crate) fn trace_entries(mut v: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
        let len = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) as usize;
        out.push((seq, v.get(12..12 + len)?));
        v = &v[12 + len..];
    }
    Some(out)
}

struct StoreView<'a> {
    store: &'a Store,
    overlay: &'a Overlay,
}

impl StoreView<'_> {
    /// The lot-range index, the batch's lots included.
    fn lot_index(&self) -> lots::Index<'_> {
        lots::Index {
            store: self.store,
            pending: &self.overlay.lot_ranges,
        }
    }
}

impl custody::StateView for StoreView<'_> {
    /// The stored item (or the batch's); else, when a lot's range holds the serial, the item
    /// that lot implies: in the vault since its receipt ([`lots`]).
    fn item(&self, s: &Serial) -> Result<Option<Item>, LedgerError> {
        if let Some(i) = self.overlay.items.get(s) {
            return Ok(Some(i.clone()));
        }
        if let Some(i) = get_state(self.store, &state_key(b"i/", s.as_str()))? {
            return Ok(Some(i));
        }
        Ok(match lots::lot_of(&self.lot_index(), s)? {
            Some(id) => custody::StateView::lot(self, &id)?
                .filter(|l| l.range.number_of(s).is_some())
                .map(|l| l.implied_item(s.clone())),
            None => None,
        })
    }
    fn lot_sharing(&self, range: &SerialRange) -> Result<Option<(LotId, Serial)>, LedgerError> {
        let found = lots::sharing(&self.lot_index(), range, |id| {
            custody::StateView::lot(self, id)
        })?;
        Ok(found.map(|(id, n)| (id, range.serial(n))))
    }
    fn session(&self, id: &SessionId) -> Result<Option<Session>, LedgerError> {
        if let Some(i) = self.overlay.sessions.get(id) {
            return Ok(Some(i.clone()));
        }
        get_state(self.store, &state_key(b"s/", id.as_str()))
    }
    fn lot(&self, id: &LotId) -> Result<Option<Lot>, LedgerError> {
        if let Some(i) = self.overlay.lots.get(id) {
            return Ok(Some(i.clone()));
        }
        get_state(self.store, &state_key(b"l/", id.as_str()))
    }
    fn open_at_station(&self, st: &StationId) -> Result<Option<SessionId>, LedgerError> {
        if let Some(s) = self.overlay.station_open.get(st) {
            return Ok(s.clone());
        }
        Ok(self
            .store
            .state_get(&state_key(b"os/", st.as_str()))?
            .map(|v| SessionId(String::from_utf8_lossy(&v).into_owned())))
    }
    fn open_of_operator(&self, op: &OperatorId) -> Result<Option<SessionId>, LedgerError> {
        if let Some(s) = self.overlay.operator_open.get(op) {
            return Ok(s.clone());
        }
        Ok(self
            .store
            .state_get(&state_key(b"oo/", op.as_str()))?
            .map(|v| SessionId(String::from_utf8_lossy(&v).into_owned())))
    }
}

/// Index families. Each key is `tag 0 key 0 seq(be)`; a prefix scan on `tag 0 key 0` lists the
/// records of one serial, job, session, operator or station in order.
pub(crate) mod ix {
    /// Records that name a serial (booklet or patch), valued with their trace step: written by
    /// earlier versions only (now the item's trace value, [`super::trace_key`], holds the steps).
    pub const SERIAL: &[u8] = b"se";
    /// Records of a job.
    pub const JOB: &[u8] = b"jb";
    /// Records of a session.
    pub const SESSION: &[u8] = b"ss";
    /// Records an operator made, counted, witnessed or signed.
    pub const OPERATOR: &[u8] = b"op";
    /// Records at a station.
    pub const STATION: &[u8] = b"st";
    /// Sessions of a shift (the last component is the session id, not a seq).
    pub const SHIFT: &[u8] = b"sh";
    /// Every record by time (key: microseconds, big-endian, offset to sort negatives first).
    pub const TIME: &[u8] = b"tm";
    /// Destruction records.
    pub const DESTROYED: &[u8] = b"de";
    /// Serials reported missing (key: serial).
    pub const MISSING: &[u8] = b"ms";
    /// Spoil records (key: serial): where the spoiled items still to destroy are found.
    pub const SPOILED: &[u8] = b"sp";
    /// Reversals (key: reversed seq).
    pub const REVERSAL: &[u8] = b"rv";
    /// Lots received.
    pub const LOT: &[u8] = b"lo";
    /// A session's opening (key: session id, then seq), valued with its trace step.
    pub const OPENING: &[u8] = b"so";

    /// Whether `k` is a posting: a key of the high-volume indexes (job, session, operator,
    /// station, time, session opening), which ends with its record's seq and leaves sled with
    /// that record's window, into the segment's index table. The others (lots, shifts,
    /// reversals, spoils, missing, destroyed: rare events, looked up as registers) stay in sled.
    pub fn is_posting(k: &[u8]) -> bool {
        [JOB, SESSION, OPERATOR, STATION, TIME, OPENING]
            .iter()
            .any(|t| k.len() > t.len() + 9 && k.starts_with(t) && k[t.len()] == 0)
    }

    /// `tag 0 key 0`.
    pub fn prefix(tag: &[u8], key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(tag.len() + key.len() + 10);
        k.extend_from_slice(tag);
        k.push(0);
        k.extend_from_slice(key);
        k.push(0);
        k
    }

    /// `tag 0 key 0 seq`.
    pub fn key(tag: &[u8], key: &[u8], seq: u64) -> Vec<u8> {
        let mut k = prefix(tag, key);
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// The seq at the end of an index key.
    pub fn seq_of(k: &[u8]) -> u64 {
        k.len()
            .checked_sub(8)
            .map_or(0, |i| crate::store::key_u64(&k[i..]))
    }

    /// A time as sortable bytes.
    pub fn time(at: chrono::DateTime<chrono::Utc>) -> [u8; 8] {
        ((at.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
    }
}

fn index_keys(r: &Record, plan: &custody::Plan) -> Vec<Vec<u8>> {
    let seq = r.seq;
    let mut keys = vec![
        ix::key(ix::OPERATOR, r.actor.as_str().as_bytes(), seq),
        ix::key(ix::TIME, &ix::time(r.at), seq),
    ];
    // Every session the record changes, and its station: "everything at LAM-2" and a session's
    // reconciliation are prefix scans.
    for s in &plan.sessions {
        keys.push(ix::key(ix::SESSION, s.id.as_str().as_bytes(), seq));
        keys.push(ix::key(ix::STATION, s.station.as_str().as_bytes(), seq));
    }
    match &r.event {
        LedgerEvent::LotReceived { lot, range, .. } => {
            // A lot's serials are found through the lot (their state names it), not one index
            // key per serial: a 10,000-patch roll stays one small write.
            let _ = range;
            keys.push(ix::key(ix::LOT, lot.as_str().as_bytes(), seq));
        }
        LedgerEvent::SessionOpened {
            session,
            station,
            operator,
            shift,
        } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            keys.push(ix::key(ix::STATION, station.as_str().as_bytes(), seq));
            keys.push(ix::key(ix::OPERATOR, operator.as_str().as_bytes(), seq));
            let mut k = ix::prefix(ix::SHIFT, shift.as_str().as_bytes());
            k.extend_from_slice(session.as_str().as_bytes());
            keys.push(k);
        }
        LedgerEvent::ItemsIssued {
            session, counters, ..
        }
        | LedgerEvent::ItemsReturned {
            session, counters, ..
        } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            for c in counters {
                keys.push(ix::key(ix::OPERATOR, c.as_str().as_bytes(), seq));
            }
        }
        LedgerEvent::BookletPrinted { session, job, .. } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
        }
        LedgerEvent::PatchApplied { session, job, .. } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
        }
        LedgerEvent::QcChecked { job, station, .. } => {
            keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
            keys.push(ix::key(ix::STATION, station.as_str().as_bytes(), seq));
        }
        LedgerEvent::Dispatched { job, .. } => {
            keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
        }
        LedgerEvent::ItemSpoiled {
            session, serial, ..
        } => {
            if let Some(session) = session {
                keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            }
            keys.push(ix::key(ix::SPOILED, serial.as_str().as_bytes(), seq));
        }
        // On the trace of each serial; the supervisor is the actor, the sessions that used the
        // items are in the plan.
        LedgerEvent::SpoilageDecided { .. } => {}
        LedgerEvent::SessionClosed {
            session,
            discrepancy,
        } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            if let Some(d) = discrepancy {
                keys.push(ix::key(ix::OPERATOR, d.supervisor.as_str().as_bytes(), seq));
                for m in &d.missing {
                    keys.push(ix::key(ix::MISSING, m.as_str().as_bytes(), seq));
                }
            }
        }
        LedgerEvent::SessionAbandoned { session, .. }
        | LedgerEvent::ItemsSetAside { session, .. } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
        }
        LedgerEvent::ItemsDestroyed { witnesses, .. } => {
            keys.push(ix::key(ix::DESTROYED, &[], seq));
            for w in witnesses {
                keys.push(ix::key(ix::OPERATOR, w.as_str().as_bytes(), seq));
            }
        }
        LedgerEvent::ItemReportedMissing { serial: s, .. } => {
            keys.push(ix::key(ix::MISSING, s.as_str().as_bytes(), seq));
        }
        LedgerEvent::DeviceReadMismatch { session, job, .. } => {
            keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
        }
        LedgerEvent::Reversal { reverses, .. } => {
            keys.push(ix::key(ix::REVERSAL, &reverses.to_be_bytes(), seq));
        }
        LedgerEvent::Action { action } => {
            for job in action.jobs() {
                keys.push(ix::key(ix::JOB, &job.0.to_be_bytes(), seq));
            }
            for u in action.users() {
                keys.push(ix::key(ix::OPERATOR, u.as_str().as_bytes(), seq));
            }
            if let Some(st) = action.station() {
                keys.push(ix::key(ix::STATION, st.as_str().as_bytes(), seq));
            }
            if let Some(session) = action.session() {
                keys.push(ix::key(ix::SESSION, session.as_str().as_bytes(), seq));
            }
        }
    }
    // The serial keys carry values: see `trace_entries`.
    keys.sort();
    keys.dedup();
    keys
}

/// The serials a record names (its serial index keys).
fn named_serials(r: &Record) -> Vec<&Serial> {
    match &r.event {
        LedgerEvent::LotReceived { .. }
        | LedgerEvent::SessionOpened { .. }
        | LedgerEvent::Reversal { .. } => Vec::new(),
        // A refusal is on the trace of every serial it named (a known one: an unknown serial
        // has no trace, and its refusals are found by station, operator and alert).
        LedgerEvent::Action { action } => action.serials().iter().collect(),
        LedgerEvent::ItemsIssued { serials, .. }
        | LedgerEvent::ItemsReturned { serials, .. }
        | LedgerEvent::ItemsDestroyed { serials, .. }
        | LedgerEvent::ItemsSetAside { serials, .. }
        | LedgerEvent::SpoilageDecided { serials, .. }
        | LedgerEvent::SessionAbandoned { held: serials, .. } => serials.iter().collect(),
        LedgerEvent::BookletPrinted { booklet, .. }
        | LedgerEvent::QcChecked { booklet, .. }
        | LedgerEvent::Dispatched { booklet, .. } => vec![booklet],
        LedgerEvent::PatchApplied { patch, booklet, .. } => vec![patch, booklet],
        LedgerEvent::DeviceReadMismatch { scanned, read, .. } => {
            std::iter::once(scanned).chain(read.as_ref()).collect()
        }
        LedgerEvent::ItemSpoiled { serial, .. }
        | LedgerEvent::ItemReportedMissing { serial, .. } => {
            vec![serial]
        }
        LedgerEvent::SessionClosed { discrepancy, .. } => discrepancy
            .as_ref()
            .map(|d| d.missing.iter().collect())
            .unwrap_or_default(),
    }
}

/// What a record adds to traces: its step ([`query::StepValue`], encoded) for every serial it
/// names, and for a session's opening, the opening entry.
struct TraceSteps<'r> {
    seq: u64,
    value: Vec<u8>,
    serials: Vec<&'r Serial>,
    opens: Option<&'r SessionId>,
    issued_to: Option<&'r SessionId>,
}

/// The trace steps of `r` (none for a record no trace shows). The step is what a trace shows of
/// the record, so a trace needs no journal read.
fn trace_steps<'r>(
    r: &'r Record,
    plan: &custody::Plan,
    view: &StoreView<'_>,
) -> Result<Option<TraceSteps<'r>>, LedgerError> {
    let mut serials = named_serials(r);
    let opens = match &r.event {
        LedgerEvent::SessionOpened { session, .. } => Some(session),
        _ => None,
    };
    if serials.is_empty() && opens.is_none() {
        return Ok(None);
    }
    serials.sort();
    serials.dedup();
    let mut station = |id: &SessionId| -> Result<Option<StationId>, LedgerError> {
        if let Some(s) = plan.sessions.iter().find(|s| &s.id == id) {
            return Ok(Some(s.station.clone()));
        }
        Ok(custody::StateView::session(view, id)?.map(|s| s.station))
    };
    let mut step = query::StepValue::of(r, &mut station)?;
    // The opening is stored with the items themselves: no pointer to it needed.
    step.opening_of = None;
    let issued_to = match &r.event {
        LedgerEvent::ItemsIssued { session, .. } => Some(session),
        _ => None,
    };
    Ok(Some(TraceSteps {
        seq: r.seq,
        value: encode(&step)?,
        serials,
        opens,
        issued_to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallctl_jobs::job::JobId;

    /// A crash in the middle of swapping in sled's rebuilt file (old files removed, the copy's
    /// not yet moved in) leaves a ledger that any open recovers: an audit must find it, not
    /// say that nothing was ever recorded.
    #[test]
    fn an_audit_of_a_store_in_the_middle_of_a_swap_finds_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let l = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
            l.append(OperatorId::new("OP1"), lot(0, 0)).expect("append");
        }
        let store = dir.path().join(STORE_DIR);
        let copy = store.join(crate::store::compact::DIR);
        std::fs::create_dir_all(&copy).expect("mkdir");
        for e in std::fs::read_dir(&store).expect("dir").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "db" || name == "conf" || name == "blobs" || name.starts_with("snap.") {
                std::fs::rename(e.path(), copy.join(&name)).expect("mv");
            }
        }
        std::fs::write(copy.join("COMPLETE"), b"").expect("marker");
        std::fs::write(copy.join("OLD_GONE"), b"").expect("marker");
        let audit = Ledger::open_existing(dir.path()).expect("the audit finds the ledger");
        assert_eq!(audit.head(), 1);
    }

    fn lot(t: usize, n: usize) -> LedgerEvent {
        LedgerEvent::LotReceived {
            lot: LotId::new(format!("L-{t}-{n}")),
            kind: ItemKind::Patch,
            supplier: "DLR".into(),
            range: SerialRange {
                prefix: format!("{t}.{n}-"),
                first: 1,
                last: 1,
                width: 3,
            },
        }
    }

    #[test]
    fn operational_state_is_written_with_its_record_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
        let submitted = LedgerEvent::Action {
            action: ControlAction::JobsSubmitted {
                jobs: vec![JobId(1)],
            },
        };
        let now = Utc::now();
        ledger
            .append_batch_with(
                vec![(now, OperatorId::new("ISSUANCE"), submitted)],
                vec![(b"job/1".to_vec(), Some(b"queued".to_vec()))],
            )
            .expect("append");
        assert_eq!(
            ledger.store().aux_get(b"job/1").expect("get").as_deref(),
            Some(&b"queued"[..])
        );
        // A refused record (an unreasoned reversal) takes its state change down with it.
        let before = ledger.store().content_digest().expect("digest");
        let refused = ledger.append_batch_with(
            vec![(
                now,
                OperatorId::new("S"),
                LedgerEvent::Reversal {
                    reverses: 1,
                    reason: " ".into(),
                },
            )],
            vec![(b"job/1".to_vec(), None)],
        );
        assert!(
            matches!(refused, Err(LedgerError::Refused(_))),
            "{refused:?}"
        );
        // And state without a record is refused outright.
        let bare = ledger.append_batch_with(Vec::new(), vec![(b"job/1".to_vec(), None)]);
        assert!(matches!(bare, Err(LedgerError::Refused(_))), "{bare:?}");
        assert_eq!(ledger.store().content_digest().expect("digest"), before);
        assert!(ledger.store().aux_get(b"job/1").expect("get").is_some());
    }

    #[test]
    fn a_cursor_survives_a_reopen_and_the_durable_watch_follows_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
            let durable = ledger.watch_durable();
            assert_eq!(*durable.borrow(), 0);
            assert_eq!(ledger.cursor("mqtt").expect("read"), None);
            for n in 0..3 {
                ledger
                    .append(OperatorId::new("S"), lot(0, n))
                    .expect("append");
            }
            // Acknowledged means durable, and the watch saw it.
            assert_eq!(*durable.borrow(), 3);
            ledger.save_cursor("mqtt", b"2").expect("save");
            // A cursor is no record: the journal did not grow.
            assert_eq!(ledger.head(), 3);
        }
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("reopen");
        assert_eq!(
            ledger.cursor("mqtt").expect("read").as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(*ledger.watch_durable().borrow(), 3);
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_each_is_acknowledged_only_once_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
        // A sync as slow as a busy disk's (the log's fdatasync can be quicker than a debug
        // build's append, and then there is nothing to share): the test is of the sharing.
        ledger.store().slow_syncs(Duration::from_millis(3));
        let (threads, per_thread) = (8, 40);
        std::thread::scope(|s| {
            for t in 0..threads {
                let ledger = &ledger;
                s.spawn(move || {
                    for n in 0..per_thread {
                        let r = ledger
                            .append(OperatorId::new("S"), lot(t, n))
                            .expect("append");
                        // The acknowledgement implies a completed sync that covered the record.
                        assert!(ledger.durability().0 >= r.seq);
                    }
                });
            }
        });
        let (durable, syncs) = ledger.durability();
        let appends = (threads * per_thread) as u64;
        println!("{appends} concurrent appends, {syncs} flush + fsync rounds");
        assert_eq!(durable, appends);
        assert!(
            syncs < appends * 3 / 4,
            "group commit should share fsyncs: {syncs} syncs for {appends} appends"
        );
    }

    #[test]
    fn import_acknowledges_each_batch_only_once_durable_and_stops_at_a_refusal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
        let at = Utc::now();
        let batch = |b: usize| -> Vec<(DateTime<Utc>, OperatorId, LedgerEvent)> {
            (0..10)
                .map(|n| (at, OperatorId::new("S"), lot(b, n)))
                .collect()
        };
        let mut acked = Vec::new();
        let n = ledger
            .import((0..5).map(batch), |r| {
                assert!(ledger.durability().0 >= r.last().expect("receipts").seq);
                acked.push(r.len());
            })
            .expect("import");
        assert_eq!((n, acked, ledger.head()), (50, vec![10; 5], 50));
        // Batch 1 again is refused (its lots exist): batch 0' before it is kept and durable.
        let mut acked = 0;
        let e = ledger
            .import([batch(9), batch(1), batch(8)], |r| acked += r.len())
            .expect_err("refused");
        assert!(e.refusal().is_some(), "{e}");
        assert_eq!((acked, ledger.head(), ledger.durability().0), (10, 60, 60));
    }

    /// A line's events: two lots, a printer and a laminator session, issues, prints, laminations,
    /// QC and dispatch, closes.
    fn line_events() -> Vec<(DateTime<Utc>, OperatorId, LedgerEvent)> {
        use hallctl_jobs::job::{Destination, DeviceId, JobId};
        let at = Utc::now();
        let s = |x: &str| OperatorId::new(x);
        let mut v = Vec::new();
        for (kind, prefix) in [(ItemKind::Booklet, "BK-"), (ItemKind::Patch, "")] {
            v.push((
                s("S"),
                LedgerEvent::LotReceived {
                    lot: LotId::new(format!("{prefix}LOT")),
                    kind,
                    supplier: "DLR".into(),
                    range: SerialRange {
                        prefix: prefix.into(),
                        first: 1,
                        last: 4,
                        width: 3,
                    },
                },
            ));
        }
        let (sp, sl) = (SessionId::new("SP"), SessionId::new("SL"));
        for (sess, st, o) in [(&sp, "PRN-1", "A"), (&sl, "LAM-1", "B")] {
            v.push((
                s("S"),
                LedgerEvent::SessionOpened {
                    session: sess.clone(),
                    station: StationId::new(st),
                    operator: s(o),
                    shift: ShiftId::new("N"),
                },
            ));
        }
        let bk = |i: u64| Serial::new(format!("BK-{i:03}"));
        let pt = |i: u64| Serial::new(format!("{i:03}"));
        for (sess, f) in [(&sp, &bk as &dyn Fn(u64) -> Serial), (&sl, &pt)] {
            v.push((
                s("S"),
                LedgerEvent::ItemsIssued {
                    session: sess.clone(),
                    serials: (1..=3).map(f).collect(),
                    counters: [s("S"), s("K")],
                },
            ));
        }
        for i in 1..=3 {
            v.push((
                s("A"),
                LedgerEvent::BookletPrinted {
                    booklet: bk(i),
                    session: sp.clone(),
                    job: JobId(i),
                    document_number: format!("AB{i}"),
                    device: DeviceId::new("PRN-1"),
                },
            ));
            v.push((
                s("B"),
                LedgerEvent::PatchApplied {
                    patch: pt(i),
                    session: sl.clone(),
                    booklet: bk(i),
                    job: JobId(i),
                    device: DeviceId::new("LAM-1"),
                    skip_reason: None,
                },
            ));
            v.push((
                s("Q"),
                LedgerEvent::QcChecked {
                    booklet: bk(i),
                    job: JobId(i),
                    station: StationId::new("QC-1"),
                    passed: true,
                },
            ));
            v.push((
                s("D"),
                LedgerEvent::Dispatched {
                    booklet: bk(i),
                    job: JobId(i),
                    destination: Destination::new("RPO"),
                    bag: "BAG".into(),
                },
            ));
        }
        v.into_iter().map(|(o, e)| (at, o, e)).collect()
    }

    /// The trace values a batch accumulates in memory are what one append at a time builds
    /// through the store, and survive a reopen.
    #[test]
    fn traces_are_the_same_whether_recorded_in_one_batch_or_one_by_one() {
        let trace = |l: &Ledger, s: &str| {
            let t = l.trace(&Serial::new(s)).expect("trace").expect("known");
            t.steps
                .iter()
                .map(|s| format!("{} {} {} {:?}", s.seq, s.serial, s.detail, s.station))
                .collect::<Vec<_>>()
        };
        let (d1, d2) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let batch = Ledger::open(d1.path(), LedgerConfig::default()).expect("open");
        batch.append_batch(line_events()).expect("batch");
        {
            let single = Ledger::open(d2.path(), LedgerConfig::default()).expect("open");
            for (at, actor, e) in line_events() {
                single.append_at(at, actor, e).expect("append");
            }
        }
        let single = Ledger::open(d2.path(), LedgerConfig::default()).expect("reopen");
        for s in ["001", "002", "BK-003", "004"] {
            assert_eq!(trace(&batch, s), trace(&single, s), "{s}");
        }
        let t = trace(&single, "002");
        // Both lots, both openings, both issues, print, lamination, QC, dispatch.
        assert_eq!(t.len(), 10, "{t:#?}");
        assert!(
            t.iter().any(|s| s.contains("session SL opened for B")),
            "{t:#?}"
        );
        assert!(
            t.iter().any(|s| s.contains("session SP opened for A")),
            "{t:#?}"
        );
        assert!(!batch.legacy_trace && !single.legacy_trace);
    }

    /// Issue 16: a device's reader that contradicts the record flags the scanned item and the
    /// item read as unaccounted for; neither can be used, a booklet with such a patch goes no
    /// further, and both traces show the record.
    #[test]
    fn a_device_read_mismatch_flags_both_items_and_blocks_their_use() {
        use hallctl_jobs::job::DeviceId;
        let dir = tempfile::tempdir().expect("tmp");
        let l = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
        // Lots, sessions, issues, then job 1 printed (BK-001) and its patch 001 recorded.
        let events: Vec<_> = line_events().into_iter().take(8).collect();
        assert!(matches!(events[7].2, LedgerEvent::PatchApplied { .. }));
        l.append_batch(events).expect("setup");
        let line = OperatorId::new("LINE");
        let (sl, sp) = (SessionId::new("SL"), SessionId::new("SP"));
        let mismatch = |scanned: &str, read: Option<&str>, job: u64, kind, session: &SessionId| {
            LedgerEvent::DeviceReadMismatch {
                device: DeviceId::new(if kind == ItemKind::Patch {
                    "LAM-1"
                } else {
                    "PRN-1"
                }),
                job: JobId(job),
                session: session.clone(),
                scanned: Serial::new(scanned),
                read: read.map(Serial::new),
                kind,
            }
        };
        let refused = |r: Result<Receipt, LedgerError>, what: &str| {
            assert!(matches!(r, Err(LedgerError::Refused(_))), "{what}: {r:?}");
        };
        // Not a mismatch; not the job's item; not used yet.
        refused(
            l.append(
                line.clone(),
                mismatch("001", Some("001"), 1, ItemKind::Patch, &sl),
            ),
            "the same serial",
        );
        refused(
            l.append(
                line.clone(),
                mismatch("001", Some("003"), 2, ItemKind::Patch, &sl),
            ),
            "another job",
        );
        refused(
            l.append(
                line.clone(),
                mismatch("002", Some("003"), 1, ItemKind::Patch, &sl),
            ),
            "an unused patch",
        );

        l.append(
            line.clone(),
            mismatch("001", Some("003"), 1, ItemKind::Patch, &sl),
        )
        .expect("the laminator read 003 where 001 was scanned");
        for s in ["001", "003"] {
            let item = l.item(&Serial::new(s)).expect("item").expect("known");
            assert!(
                matches!(item.state, ItemState::Suspect { .. }),
                "{s}: {:?}",
                item.state
            );
            assert!(!item.is_accounted(), "{s}");
            let t = l.trace(&Serial::new(s)).expect("trace").expect("known");
            assert!(t.state.contains("unaccounted"), "{s}: {}", t.state);
            let step = t
                .steps
                .iter()
                .find(|x| x.event == "device_read_mismatch")
                .unwrap_or_else(|| panic!("{s}: no mismatch in {:#?}", t.steps));
            assert!(
                step.detail.contains("001") && step.detail.contains("003"),
                "{}",
                step.detail
            );
            assert_eq!(step.station.as_ref().map(StationId::as_str), Some("LAM-1"));
        }
        // 003 left the session (it was fed), unscanned; the session still balances its count.
        let session = l.session(&sl).expect("session").expect("known");
        assert_eq!(session.held, vec![Serial::new("002")]);
        assert_eq!(session.counts.suspect, 1);
        // Neither can be used again; the booklet carrying the unknown patch goes no further.
        refused(
            l.append(
                OperatorId::new("B"),
                LedgerEvent::PatchApplied {
                    patch: Serial::new("003"),
                    session: sl.clone(),
                    booklet: Serial::new("BK-002"),
                    job: JobId(2),
                    device: DeviceId::new("LAM-1"),
                    skip_reason: None,
                },
            ),
            "the patch read",
        );
        refused(
            l.append(
                OperatorId::new("Q"),
                LedgerEvent::QcChecked {
                    booklet: Serial::new("BK-001"),
                    job: JobId(1),
                    station: StationId::new("QC-1"),
                    passed: true,
                },
            ),
            "QC of the booklet with an unaccounted patch",
        );
        // A printer that reads nothing: the scanned booklet is unaccounted for.
        l.append(
            OperatorId::new("A"),
            LedgerEvent::BookletPrinted {
                booklet: Serial::new("BK-002"),
                session: sp.clone(),
                job: JobId(2),
                document_number: "AB2".into(),
                device: DeviceId::new("PRN-1"),
            },
        )
        .expect("print");
        l.append(
            line.clone(),
            mismatch("BK-002", None, 2, ItemKind::Booklet, &sp),
        )
        .expect("no reading");
        let t = l
            .trace(&Serial::new("BK-002"))
            .expect("trace")
            .expect("known");
        assert!(t.state.contains("read nothing"), "{}", t.state);
        // A supervisor who cannot find it reports it missing.
        l.append(
            OperatorId::new("S"),
            LedgerEvent::ItemReportedMissing {
                serial: Serial::new("BK-002"),
                note: "not found after the read mismatch".into(),
            },
        )
        .expect("reported missing");
    }

    #[test]
    fn a_lone_appender_gets_one_sync_per_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).expect("open");
        for n in 0..5 {
            ledger
                .append(OperatorId::new("S"), lot(0, n))
                .expect("append");
        }
        assert_eq!(ledger.durability(), (5, 5));
    }
}
