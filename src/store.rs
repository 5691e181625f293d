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
//! # Durability
//! sled's `flush` on Linux only calls `sync_file_range` (sled issue #1452): it pushes dirty pages
//! to the device but neither flushes the drive's volatile write cache nor persists file metadata.
//! [`Store::sync`] therefore follows `flush` with a real `fdatasync` (`File::sync_data`: the data
//! and the size needed to read it, not the file's times) of every file that holds data (`db`, and
//! any blob files), and the directories are fsynced when created or when a file appears. The
//! ledger acknowledges a record only after a `sync` that started after the record was written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

pub mod lock;
pub mod segment;
pub use lock::LockHolder;

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
            && self.checkpoints.is_empty()
            && self.aux.is_empty()
    }
}

/// The storage handle. Cheap operations only; the ledger decides when to [`Store::sync`].
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    meta: sled::Tree,
    dir: PathBuf,
    /// Open handles of the data files, kept so each sync costs one `fsync` per file and no `open`.
    data_files: Mutex<Vec<(PathBuf, File)>>,
    /// The last record sealed into a chunk (0: none). Records above it are in `j`.
    sealed: AtomicU64,
    /// Held while a chunk is sealed (sealing runs after a commit; commits may be concurrent).
    sealing: Mutex<()>,
    /// Counts this store among the process's open ones; dropped last (fields drop in
    /// declaration order, after sled's handles above), it waits until the file lock is free.
    _registered: lock::Registered,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
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
        let fresh = !dir.join("db").exists();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // sled's background flusher is off: we flush (and fsync) ourselves at each commit, and
        // a timer-driven flush between commits would only add I/O without durability.
        let config = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        let db = open_waiting_for_own_release(&config, dir)?;
        let store = Store {
            tree: db.open_tree("ledger")?,
            meta: db.open_tree("meta")?,
            db,
            dir: dir.to_path_buf(),
            data_files: Mutex::new(Vec::new()),
            sealed: AtomicU64::new(0),
            sealing: Mutex::new(()),
            _registered: lock::Registered::new(&dir.join("db"), OWN_RELEASE_WAIT),
        };
        let sealed = store.last_chunk()?.map_or(0, |(first, v)| {
            chunk_entries(&v)
                .filter(|(k, _)| k.len() == 8)
                .map(|(k, _)| key_u64(k))
                .last()
                .unwrap_or(first)
        });
        store.sealed.store(sealed, Ordering::SeqCst);
        if fresh {
            // New files are only durable once their directory entries are: fsync the
            // directories sled just created, and the parent that holds `dir`.
            store.sync()?;
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

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies a write set atomically (all trees or none). Not yet durable: see [`Store::sync`].
    ///
    /// # Errors
    /// sled failed; nothing was applied.
    pub fn commit(&self, ws: &WriteSet) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (seq, v) in &ws.journal {
            b.insert(pk(J, &seq.to_be_bytes()), v.as_slice());
        }
        for (k, v) in &ws.state {
            match v {
                Some(v) => b.insert(pk(S, k), v.as_slice()),
                None => b.remove(pk(S, k)),
            }
        }
        for (k, v) in &ws.index {
            b.insert(pk(X, k), v.as_slice());
        }
        for (seq, v) in &ws.checkpoints {
            b.insert(pk(C, &seq.to_be_bytes()), v.as_slice());
        }
        for (k, v) in &ws.aux {
            match v {
                Some(v) => b.insert(pk(A, k), v.as_slice()),
                None => b.remove(pk(A, k)),
            }
        }
        self.tree.apply_batch(b)?;
        // The batch is applied: whatever sealing meets, the append stands (sealing only moves
        // records; a failure leaves them in `j`, where every reader finds them).
        if let Some(head) = ws.journal.iter().map(|(s, _)| *s).max()
            && let Err(e) = self.seal(head)
        {
            tracing::warn!(
                "sealing journal records into a chunk failed (they stay as they are): {e}"
            );
        }
        Ok(())
    }

    /// Moves full chunks of records from `j` into `k` while at least [`CHUNK`] records up to
    /// `head` are unsealed. Stops (leaving the records where they are) at a gap or a malformed
    /// key: sealing never reorders or drops anything, and verification reports the gap.
    fn seal(&self, head: u64) -> Result<(), StoreError> {
        let _guard = self
            .sealing
            .lock()
            .map_err(|_| StoreError::Sled("sealing lock poisoned".into()))?;
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

    /// The durability point: flushes sled's buffers, then fsyncs every data file.
    ///
    /// # Errors
    /// The flush or an fsync failed; nothing written since the last successful sync may be
    /// treated as durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        let mut files = self
            .data_files
            .lock()
            .map_err(|_| StoreError::Sled("data file list poisoned".into()))?;
        self.refresh_data_files(&mut files)?;
        // fdatasync: the data and the metadata needed to read it back (the file's size), not
        // its times. One journal commit fewer per durable append than `sync_all` when sled
        // rewrites a segment inside the file.
        for (path, f) in files.iter() {
            f.sync_data().map_err(io_err(path))?;
        }
        Ok(())
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

    /// One journal record.
    ///
    /// # Errors
    /// sled failed.
    pub fn journal_get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.tree.get(pk(J, &seq.to_be_bytes()))? {
            return Ok(Some(v.to_vec()));
        }
        // Sealed, or being sealed right now (then it is in its chunk once `j` lost it).
        Ok(match self.chunk_at(seq)? {
            Some((_, chunk)) => chunk_entries(&chunk)
                .find(|(k, _)| key_u64(k) == seq)
                .map(|(_, v)| v.to_vec()),
            None => None,
        })
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
        Ok(self.last_chunk()?.and_then(|(_, chunk)| {
            chunk_entries(&chunk)
                .last()
                .map(|(k, v)| (key_u64(k), v.to_vec()))
        }))
    }

    /// Number of journal records (a full count: use for reports, not on hot paths).
    pub fn journal_len(&self) -> usize {
        let sealed: usize = self
            .tree
            .scan_prefix([K])
            .filter_map(Result::ok)
            .map(|(_, v)| chunk_entries(&v).count())
            .sum();
        sealed + self.tree.scan_prefix([J]).count()
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
    /// Sealed chunks first, then the tail; a chunk sealed during the walk is read too.
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
        loop {
            if in_chunks || next <= self.sealed.load(Ordering::SeqCst) {
                let start = self.chunk_at(next)?.map_or(next, |(first, _)| first);
                for kv in self.tree.range(pk(K, &start.to_be_bytes())..pk(K + 1, &[])) {
                    let (_, chunk) = kv?;
                    for (k, v) in chunk_entries(&chunk) {
                        let seq = key_u64(k);
                        if seq != u64::MAX && seq < next {
                            continue;
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
                if seq != next && self.chunk_holds(next)? {
                    reread = true;
                    break;
                }
                if !f(&k[1..], &v) {
                    return Ok(());
                }
                next = seq.saturating_add(1);
            }
            if !reread && (next >= end || !self.chunk_holds(next)?) {
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
        Ok(self.tree.get(pk(S, key))?.map(|v| v.to_vec()))
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

    /// Index keys starting with `prefix`, in order, at most `limit`.
    ///
    /// # Errors
    /// sled failed.
    pub fn index_scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(pk(X, prefix)).take(limit) {
            out.push(kv?.0[1..].to_vec());
        }
        Ok(out)
    }

    /// Index entries (key, value) starting with `prefix`, in order, at most `limit`.
    ///
    /// # Errors
    /// sled failed.
    pub fn index_scan_kv(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(pk(X, prefix)).take(limit) {
            let (k, v) = kv?;
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
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

    /// Whether the index holds `key` (without the keyspace byte).
    ///
    /// # Errors
    /// sled failed.
    pub fn index_contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(pk(X, key))?)
    }

    /// The last index entry in `[from, to]` (both without the keyspace byte): a floor lookup.
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
    /// `[from, to)`, in key order, until it returns `false`.
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
    /// keyspace byte, value), in key order.
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
    /// sled failed.
    pub fn index_range(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.range(pk(X, from)..pk(X, to)).take(limit) {
            out.push(kv?.0[1..].to_vec());
        }
        Ok(out)
    }

    /// Calls `f` with every index key in `[from, to)` (without the keyspace byte), in key order
    /// or, when `reverse`, from the last down, until it returns `false`: a page of a large range
    /// without reading the whole range first.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn index_range_each(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if to <= from {
            return Ok(());
        }
        let range = self.tree.range(pk(X, from)..pk(X, to));
        let keys: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for kv in keys {
            if !f(&kv?.0[1..]) {
                break;
            }
        }
        Ok(())
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

    /// Sets a metadata value (made durable by the next [`Store::sync`]).
    ///
    /// # Errors
    /// sled failed.
    pub fn meta_set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
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
        self.sync()
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
        self.sync()
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
}
