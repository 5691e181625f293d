//! Rebuilding sled's file when it is mostly dead space (issue 18).
//!
//! Sealing moves history out of sled, so sled's live data stays about one seal window, but
//! sled 0.34 reuses the space of removed keys only as fast as its segment cleaner runs: a file
//! written fast (a busy hall, a benchmark's load, a migration) keeps its high-water mark, and
//! sled recovers the whole file at every open. So an open of a store that seals copies sled's
//! live keys into a fresh sled when its file is at least [`Policy::min_file`] and holds at most
//! a [`Policy::ratio`]-th of live data (scanning at most [`Policy::max_live`] bytes of it), then
//! swaps the new files in.
//!
//! # The swap, crash-safe
//! 1. The copy is made in `sled.compact/` beside sled's files, flushed, and each of its files
//!    and the directory fsynced; then the marker `sled.compact/COMPLETE` is written and
//!    fsynced. A crash before that leaves a partial copy, which the next open removes: the old
//!    files are untouched.
//! 2. With `COMPLETE` present the swap only rolls forward ([`finish`], also run by every open
//!    before sled's): sled's old entries (`db`, `conf`, `blobs/`, `snap.*`) are removed, the
//!    directory fsynced, and the marker `OLD_GONE` written; then each entry of the copy is
//!    renamed into place, the directory fsynced, and `sled.compact/` removed. A crash at any
//!    point is finished by the next open; an old snapshot is never left beside the new `db`.
//!
//! The copy holds exactly what the old sled recovered, `w applied` included, so the log's
//! replay after it works as on the old file.

use std::fs::File;
use std::io;
use std::path::Path;

/// The directory of a copy being made or swapped in.
pub const DIR: &str = "sled.compact";
const COMPLETE: &str = "COMPLETE";
const OLD_GONE: &str = "OLD_GONE";

/// When an open rebuilds sled's file.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Files smaller than this are left alone (bytes).
    pub min_file: u64,
    /// At most this many bytes of live keys and values are copied (the scan stops beyond).
    pub max_live: u64,
    /// The file must be at least this many times its live keys and values.
    pub ratio: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_file: 128 << 20,
            max_live: 256 << 20,
            ratio: 4,
        }
    }
}

/// sled's own entries in its directory (config.rs and snapshot.rs of sled 0.34.7).
fn is_sled_entry(name: &str) -> bool {
    matches!(name, "db" | "conf" | "blobs") || name.starts_with("snap.")
}

/// An exclusive `flock` on the store's directory, held while a copy is made or swapped in:
/// two processes starting at once never swap the same copy, and a starting process never
/// takes a copy that a closing one is still writing.
fn hold(dir: &Path) -> io::Result<File> {
    use fs2::FileExt;
    let d = File::open(dir)?;
    d.lock_exclusive()?;
    Ok(d)
}

fn fsync(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Finishes a swap that an earlier open began (see the module's docs), or removes a copy that
/// was never completed. Returns true when a swap was finished.
///
/// # Errors
/// A file could not be removed, renamed or synced.
pub fn finish(dir: &Path) -> io::Result<bool> {
    let copy = dir.join(DIR);
    if !copy.exists() {
        return Ok(false);
    }
    let _held = hold(dir)?;
    if !copy.join(COMPLETE).exists() {
        std::fs::remove_dir_all(&copy)?;
        fsync(dir)?;
        return Ok(false);
    }
    if !copy.join(OLD_GONE).exists() {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            if !is_sled_entry(&name.to_string_lossy()) {
                continue;
            }
            if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
        fsync(dir)?;
        File::create(copy.join(OLD_GONE))?.sync_all()?;
        fsync(&copy)?;
    }
    for e in std::fs::read_dir(&copy)? {
        let e = e?;
        let name = e.file_name();
        if is_sled_entry(&name.to_string_lossy()) {
            std::fs::rename(e.path(), dir.join(&name))?;
        }
    }
    fsync(dir)?;
    std::fs::remove_dir_all(&copy)?;
    fsync(dir)?;
    Ok(true)
}

/// The bytes of keys and values in every tree of `db`, or `None` once they pass `limit`.
///
/// # Errors
/// sled failed while reading.
pub fn live_bytes(db: &sled::Db, limit: u64) -> sled::Result<Option<u64>> {
    let mut live = 0u64;
    for name in db.tree_names() {
        for kv in db.open_tree(&name)?.iter() {
            let (k, v) = kv?;
            live += (k.len() + v.len()) as u64;
            if live > limit {
                return Ok(None);
            }
        }
    }
    Ok(Some(live))
}

/// Copies every tree of `db` into a new sled opened with `config`, whose path must be
/// `dir/sled.compact`, syncs it and marks it complete. `finish` then swaps it in.
///
/// # Errors
/// sled failed, or a file could not be written or synced.
pub fn copy(db: &sled::Db, config: &sled::Config, dir: &Path) -> Result<(), CopyError> {
    let to = dir.join(DIR);
    if config.path != to {
        return Err(CopyError::Io(io::Error::other(format!(
            "the copy's configuration names {}, not {}",
            config.path.display(),
            to.display()
        ))));
    }
    let _held = hold(dir)?;
    if to.exists() {
        std::fs::remove_dir_all(&to)?;
    }
    {
        let new = config.open()?;
        for name in db.tree_names() {
            let (from, into) = (db.open_tree(&name)?, new.open_tree(&name)?);
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for kv in from.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                n += 1;
                if n == 8_192 {
                    into.apply_batch(std::mem::take(&mut batch))?;
                    n = 0;
                }
            }
            into.apply_batch(batch)?;
        }
        new.flush()?;
    }
    // sled's flush on Linux only calls sync_file_range: fsync every file it wrote.
    for e in std::fs::read_dir(&to)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            for f in std::fs::read_dir(e.path())? {
                fsync(&f?.path())?;
            }
        }
        fsync(&e.path())?;
    }
    File::create(to.join(COMPLETE))?.sync_all()?;
    fsync(&to)?;
    fsync(dir)?;
    Ok(())
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// sled failed.
    #[error("{0}")]
    Sled(#[from] sled::Error),
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] io::Error),
}
