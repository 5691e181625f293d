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
    /// Tests: every copy fails half-way, as on a full disk.
    #[doc(hidden)]
    pub fail_copy: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_file: 128 << 20,
            max_live: 256 << 20,
            ratio: 4,
            fail_copy: false,
        }
    }
}

/// True when `dir` holds a complete copy of sled's file (perhaps all that is left of it in the
/// middle of a swap): evidence of a store as good as its `db` file.
pub fn has_complete_copy(dir: &Path) -> bool {
    dir.join(DIR).join(COMPLETE).exists()
}

/// sled's own entries in its directory (config.rs and snapshot.rs of sled 0.34.7).
fn is_sled_entry(name: &str) -> bool {
    matches!(name, "db" | "conf" | "blobs") || name.starts_with("snap.")
}

/// An exclusive `flock` on the store's directory, held by an open from before it looks for a
/// copy until sled's own lock is taken, and by a close while it copies: two processes starting
/// at once never swap the same copy, a starting process never takes a copy that a closing one
/// is still writing, and nobody opens the old files between a copy and its swap.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] File);

/// Takes the directory's lock, waiting for it.
///
/// # Errors
/// The directory cannot be opened or locked.
pub fn hold(dir: &Path) -> io::Result<Held> {
    use fs2::FileExt;
    let d = File::open(dir).map_err(named("opening the store's directory", dir))?;
    d.lock_exclusive()
        .map_err(named("locking the store's directory", dir))?;
    Ok(Held(d))
}

/// Takes the directory's lock if nobody holds it.
///
/// # Errors
/// The directory cannot be opened.
pub fn try_hold(dir: &Path) -> io::Result<Option<Held>> {
    use fs2::FileExt;
    let d = File::open(dir).map_err(named("opening the store's directory", dir))?;
    Ok(d.try_lock_exclusive().is_ok().then_some(Held(d)))
}

/// An io error that names what was being done, and to which path.
fn named<'a>(doing: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

fn fsync(path: &Path) -> io::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(named("syncing", path))
}

/// What [`finish`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// No copy.
    Nothing,
    /// A copy was left as it is: the old files are whole and are used (a read-only open).
    Left,
    /// A partial copy, or one older than sled's file, was removed.
    Removed,
    /// The copy was swapped in.
    Swapped,
}

/// Finishes a swap that an open or a close began (see the module's docs), under `_held`.
///
/// - A partial copy (no `COMPLETE`) is removed when `writer`, else left.
/// - A complete copy whose old files are still there is swapped in only by a `writer`, and
///   only if `stale(marker)` (given what `COMPLETE` holds: the write-ahead log's mark of the
///   copy) says sled's file did not move on since the copy (an opener that does not know of
///   copies, an older release, wrote to it); a stale copy is removed.
/// - Once the old files are being removed (`OLD_GONE`), every open rolls forward.
///
/// # Errors
/// A file could not be read, removed, renamed or synced (the error names it).
pub fn finish(
    dir: &Path,
    _held: &Held,
    writer: bool,
    stale: impl FnOnce(&[u8]) -> io::Result<bool>,
) -> io::Result<Finished> {
    let copy = dir.join(DIR);
    if !copy.exists() {
        return Ok(Finished::Nothing);
    }
    let remove = |copy: &Path| -> io::Result<Finished> {
        std::fs::remove_dir_all(copy).map_err(named("removing", copy))?;
        fsync(dir)?;
        Ok(Finished::Removed)
    };
    let marker = copy.join(COMPLETE);
    if !marker.exists() {
        return if writer {
            remove(&copy)
        } else {
            Ok(Finished::Left)
        };
    }
    if !copy.join(OLD_GONE).exists() {
        if !writer {
            return Ok(Finished::Left);
        }
        let mark = std::fs::read(&marker).map_err(named("reading", &marker))?;
        if stale(&mark)? {
            return remove(&copy);
        }
        for e in std::fs::read_dir(dir).map_err(named("listing", dir))? {
            let e = e.map_err(named("listing", dir))?;
            let name = e.file_name();
            if !is_sled_entry(&name.to_string_lossy()) {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(named("removing", &path))?;
            } else {
                std::fs::remove_file(&path).map_err(named("removing", &path))?;
            }
        }
        fsync(dir)?;
        let gone = copy.join(OLD_GONE);
        File::create(&gone)
            .and_then(|f| f.sync_all())
            .map_err(named("writing", &gone))?;
        fsync(&copy)?;
    }
    for e in std::fs::read_dir(&copy).map_err(named("listing", &copy))? {
        let e = e.map_err(named("listing", &copy))?;
        let name = e.file_name();
        if is_sled_entry(&name.to_string_lossy()) {
            let to = dir.join(&name);
            std::fs::rename(e.path(), &to).map_err(named("moving into place", &to))?;
        }
    }
    fsync(dir)?;
    std::fs::remove_dir_all(&copy).map_err(named("removing", &copy))?;
    fsync(dir)?;
    Ok(Finished::Swapped)
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
/// `dir/sled.compact`, syncs it and marks it complete, the marker holding `mark` (what
/// [`finish`] hands to its staleness check). `finish` then swaps it in. A failed copy leaves a
/// partial one, which the next writer's `finish` removes.
///
/// # Errors
/// sled failed, or a file could not be written or synced (the error names it).
pub fn copy(
    db: &sled::Db,
    config: &sled::Config,
    dir: &Path,
    _held: &Held,
    mark: &[u8],
) -> Result<(), CopyError> {
    let to = dir.join(DIR);
    if config.path != to {
        return Err(CopyError::Io(io::Error::other(format!(
            "the copy's configuration names {}, not {}",
            config.path.display(),
            to.display()
        ))));
    }
    if to.exists() {
        std::fs::remove_dir_all(&to).map_err(named("removing", &to))?;
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
    for e in std::fs::read_dir(&to).map_err(named("listing", &to))? {
        let path = e.map_err(named("listing", &to))?.path();
        if path.is_dir() {
            for f in std::fs::read_dir(&path).map_err(named("listing", &path))? {
                fsync(&f.map_err(named("listing", &path))?.path())?;
            }
        }
        fsync(&path)?;
    }
    let marker = to.join(COMPLETE);
    std::fs::write(&marker, mark)
        .and_then(|()| File::open(&marker)?.sync_all())
        .map_err(named("writing", &marker))?;
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
