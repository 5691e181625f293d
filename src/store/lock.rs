//! Who holds a store's file lock, read from the kernel's lock table (`/proc/locks`): sled takes
//! an exclusive `flock` on its `db` file and reports a refusal only as text, so the holder is
//! found the way `lslocks` finds it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The stores of this process that are open, per `db` file (device, inode): how many.
static OPEN: Mutex<BTreeMap<(u64, u64), usize>> = Mutex::new(BTreeMap::new());

fn open_count(key: (u64, u64)) -> usize {
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .copied()
        .unwrap_or(0)
}

/// An open store of this process, counted while it lives. When the last one of a `db` file is
/// dropped (after sled's handles, which the store drops first), the drop waits until sled's
/// background threads, and any child process forked meanwhile that inherited the file, have let
/// go of its lock, up to `ceiling`: a store closed in this process is closed for everyone,
/// another program started right after the drop included.
#[derive(Debug)]
pub struct Registered {
    key: (u64, u64),
    db_file: PathBuf,
    ceiling: Duration,
}

impl Registered {
    /// Counts an open store of `db_file`.
    pub fn new(db_file: &Path, ceiling: Duration) -> Registered {
        use std::os::unix::fs::MetadataExt;
        let key = std::fs::metadata(db_file).map_or((0, 0), |m| (m.dev(), m.ino()));
        *OPEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(0) += 1;
        Registered {
            key,
            db_file: db_file.to_path_buf(),
            ceiling,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        {
            let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
            match open.get_mut(&self.key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    return;
                }
                _ => {
                    open.remove(&self.key);
                }
            }
        }
        wait_released(&self.db_file, self.key, self.ceiling);
    }
}

/// Waits until nobody holds `db_file`'s lock (probing it with a lock of its own, let go at
/// once), until a store of it is opened again in this process, or until `ceiling`.
fn wait_released(db_file: &Path, key: (u64, u64), ceiling: Duration) {
    use fs2::FileExt;
    let Ok(file) = std::fs::File::open(db_file) else {
        return;
    };
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    while open_count(key) == 0 && start.elapsed() < ceiling {
        if file.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&file);
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The process holding a store's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Its process id.
    pub pid: u32,
    /// Its command line (arguments joined by spaces, at most 200 characters), or `?` when
    /// it cannot be read.
    pub command: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} ({})", self.pid, self.command)
    }
}

/// The pid that holds a `flock` on `file`, if the kernel's lock table names one.
pub fn holder_pid(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&table, meta.ino(), meta.dev())
}

/// The holder of the lock on inode `ino` of device `dev` in a `/proc/locks` text: lines like
/// `3: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF` (`->` lines are waiters). The
/// device in the table is the file system's, which `stat` can report differently (btrfs
/// subvolumes, overlays): a line with the inode and the device wins over one with the inode
/// only.
pub fn holder_in(table: &str, ino: u64, dev: u64) -> Option<u32> {
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let mut inode_only = None;
    for line in table.lines() {
        // `N: KIND ADVISORY|MANDATORY MODE PID MAJ:MIN:INODE START END`; waiters have `->`.
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, kind, _, _, pid, id, ..] = f.as_slice() else {
            continue;
        };
        if !matches!(*kind, "FLOCK" | "POSIX" | "OFDLCK") {
            continue;
        }
        let mut parts = id.split(':');
        let (Some(ma), Some(mi), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if i.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        // -1 (an OFD lock) names no process.
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor)
        {
            return Some(pid);
        }
        inode_only.get_or_insert(pid);
    }
    inode_only
}

/// The holder of `file`'s lock with its command line, if the kernel names one.
pub fn holder(file: &Path) -> Option<LockHolder> {
    let pid = holder_pid(file)?;
    Some(LockHolder {
        pid,
        command: command_line(pid),
    })
}

/// A process's command line, arguments joined by spaces, at most 200 characters.
pub fn command_line(pid: u32) -> String {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) if !raw.is_empty() => {
            let text: String = String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let mut short: String = text.chars().take(200).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            short
        }
        _ => "?".to_string(),
    }
}

/// Whether a process with this id exists (and has not yet been reaped).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "1: POSIX  ADVISORY  WRITE 812 00:19:3321 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234567 0 EOF
3: OFDLCK ADVISORY  READ  -1 fd:01:777 0 EOF
4: FLOCK  ADVISORY  WRITE 5151 00:2a:99 0 EOF
";

    /// `makedev` as glibc encodes it.
    fn dev(major: u64, minor: u64) -> u64 {
        ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
    }

    #[test]
    fn the_holder_is_read_from_the_lock_table() {
        assert_eq!(
            holder_in(TABLE, 1_234_567, dev(0xfd, 1)),
            Some(4242),
            "not the waiter"
        );
        assert_eq!(holder_in(TABLE, 3321, dev(0, 0x19)), Some(812));
        assert_eq!(
            holder_in(TABLE, 777, dev(0xfd, 1)),
            None,
            "an OFD lock names no pid"
        );
        assert_eq!(holder_in(TABLE, 42, dev(0xfd, 1)), None);
        // The inode alone when the device in the table is not the one stat reports.
        assert_eq!(holder_in(TABLE, 99, dev(0, 0x30)), Some(5151));
        assert_eq!(holder_in("garbage\n\n1: FLOCK\n", 99, 0), None);
    }

    #[test]
    fn this_process_is_named_as_the_holder_of_its_own_lock() {
        use fs2::FileExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let f = std::fs::File::create(&path).expect("create");
        assert_eq!(holder_pid(&path), None);
        f.try_lock_exclusive().expect("lock");
        let h = holder(&path).expect("a holder");
        assert_eq!(h.pid, std::process::id());
        assert!(alive(h.pid));
        assert!(h.command.contains("hallctl"), "{h}");
    }
}
