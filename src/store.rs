//! The one module that knows sled: durable, crash-safe storage for the ledger.
//!
//! # Layout
//! One sled tree, `ledger`, split into four keyspaces by a one-byte prefix:
//! - `j`: the journal: sequence number (u64, big-endian) → stored record (link + canonical body);
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
//! # Durability
//! sled's `flush` on Linux only calls `sync_file_range` (sled issue #1452): it pushes dirty pages
//! to the device but neither flushes the drive's volatile write cache nor persists file metadata.
//! [`Store::sync`] therefore follows `flush` with a real `fsync` (`File::sync_all`) of every file
//! that holds data (`db`, and any blob files), and the directories are fsynced when created. The
//! ledger acknowledges a record only after a `sync` that started after the record was written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

/// A storage failure. The message names what failed; it never contains record contents.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("storage error: {0}")]
    Sled(String),
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
    /// The directory cannot be created, or sled cannot open or recover it.
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
        // sled releases its file lock when the last reference to a dropped store goes, which
        // its background threads can hold for a moment after `drop`: a store closed and opened
        // again at once (a restart, a CLI command right after the controller stopped) waits a
        // little for the lock instead of failing. Another live process keeps it: that still
        // fails, after the wait.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock && attempts < 30 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        let store = Store {
            tree: db.open_tree("ledger")?,
            meta: db.open_tree("meta")?,
            db,
            dir: dir.to_path_buf(),
            data_files: Mutex::new(Vec::new()),
        };
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
        Ok(())
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
        for (path, f) in files.iter() {
            f.sync_all().map_err(io_err(path))?;
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
        Ok(self
            .tree
            .get(pk(J, &seq.to_be_bytes()))?
            .map(|v| v.to_vec()))
    }

    /// The last journal record, if any.
    ///
    /// # Errors
    /// sled failed.
    pub fn journal_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(match self.tree.range(..pk(J + 1, &[])).next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                (k.first() == Some(&J)).then(|| (key_u64(&k[1..]), v.to_vec()))
            }
            None => None,
        })
    }

    /// Number of journal records (a full count: use for reports, not on hot paths).
    pub fn journal_len(&self) -> usize {
        self.tree.scan_prefix([J]).count()
    }

    /// Calls `f` for every journal record with key ≥ `from`, in key order, until it returns
    /// `false`. The key is passed as raw bytes so that a tampered key is reported, not hidden.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn journal_for_each(
        &self,
        from: u64,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for kv in self.tree.range(pk(J, &from.to_be_bytes())..pk(J + 1, &[])) {
            let (k, v) = kv?;
            if !f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    /// As [`Store::journal_for_each`], for the records with keys in `[from, to)` (to the end of
    /// the journal when `to` is `None`): lets several threads each read a part of the journal.
    ///
    /// # Errors
    /// sled failed while reading.
    pub fn journal_for_each_in(
        &self,
        from: u64,
        to: Option<u64>,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let end = match to {
            Some(to) => pk(J, &to.to_be_bytes()),
            None => pk(J + 1, &[]),
        };
        for kv in self.tree.range(pk(J, &from.to_be_bytes())..end) {
            let (k, v) = kv?;
            if !f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    /// A state entry.
    ///
    /// # Errors
    /// sled failed.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(pk(S, key))?.map(|v| v.to_vec()))
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

    /// All stored checkpoints, by sequence number.
    ///
    /// # Errors
    /// sled failed.
    pub fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix([C]) {
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
        self.tree.insert(pk(J, &key.to_be_bytes()), value)?;
        self.sync()
    }

    /// Test hook: removes a raw journal entry (see [`Store::tamper_journal_put`]).
    ///
    /// # Errors
    /// sled failed.
    #[doc(hidden)]
    pub fn tamper_journal_remove(&self, key: u64) -> Result<(), StoreError> {
        self.tree.remove(pk(J, &key.to_be_bytes()))?;
        self.sync()
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

/// Keyspace prefixes of the `ledger` tree.
const J: u8 = b'j';
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
