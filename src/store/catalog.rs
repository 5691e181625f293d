//! The catalog of sealed segment files (issue 18, design §2.2): which file holds which records.
//!
//! The store keeps one entry per file in its own keyspace (written in the same sled batch that
//! removes the file's records from the journal tail), and an in-memory copy that readers take
//! as an `Arc` snapshot. A file enters the in-memory catalog before its records leave sled, so a
//! reader that misses a record in sled finds it in a file of a snapshot taken afterwards.
//!
//! This module knows files only; the store decides when entries are written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::segment::{SegmentReader, SegmentSummary};
use super::table::TableReader;
use crate::ledger::chain::Link;

/// The directory of segment files, inside the store's directory.
pub const DIR: &str = "segments";
/// The file name suffix of a segment.
pub const SUFFIX: &str = ".seg";
/// The file name suffix of a segment's index table (its records' postings).
pub const TABLE_SUFFIX: &str = ".idx";
/// The file name suffix of a segment's state table (the states that settled in it).
pub const STATES_SUFFIX: &str = ".sta";
/// The version byte at the start of an encoded entry: 1 without tables, 2 with an index table,
/// 3 with an index table (or none) and a state table, 4 for a merged file (both lengths, either
/// may be 0; its files are named by its first and last record).
const VERSION: u8 = 1;
const VERSION_TABLE: u8 = 2;
const VERSION_STATES: u8 = 3;
const VERSION_MERGED: u8 = 4;
const ENTRY_LEN: usize = 1 + 8 + 8 + 32 + 32 + 8 + 32;

/// A segment's file name: its first sequence number, zero-padded so that names sort as numbers.
pub fn file_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

/// The path of the index table of the segment starting at `first`.
pub fn table_path(store_dir: &Path, first: u64) -> PathBuf {
    store_dir
        .join(DIR)
        .join(format!("{first:020}{TABLE_SUFFIX}"))
}

/// The path of the state table of the segment starting at `first`.
pub fn states_path(store_dir: &Path, first: u64) -> PathBuf {
    store_dir
        .join(DIR)
        .join(format!("{first:020}{STATES_SUFFIX}"))
}

/// The path of the segment starting at `first` in the store directory `store_dir`.
pub fn path(store_dir: &Path, first: u64) -> PathBuf {
    store_dir.join(DIR).join(file_name(first))
}

/// The stem of a merged file's names: its first and last record, zero-padded.
pub fn merged_stem(first: u64, last: u64) -> String {
    format!("{first:020}-{last:020}")
}

/// What the catalog records about one file (its id is `first`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// First sequence number.
    pub first: u64,
    /// Last sequence number.
    pub last: u64,
    /// The link before the first record.
    pub prev_link: Link,
    /// The last record's link.
    pub last_link: Link,
    /// File length in bytes.
    pub len: u64,
    /// SHA-256 of the header and blocks, as sealed.
    pub digest: [u8; 32],
    /// The length of its index table (`<first>.idx`), 0 when it has none.
    pub table_len: u64,
    /// The length of its state table (`<first>.sta`), 0 when it has none.
    pub states_len: u64,
    /// Whether it was merged from consecutive files (its names then carry `first-last`).
    pub merged: bool,
}

impl Entry {
    /// The entry of a file just written.
    pub fn from_summary(s: &SegmentSummary) -> Entry {
        Entry {
            first: s.first_seq,
            last: s.last_seq,
            prev_link: s.prev_link,
            last_link: s.last_link,
            len: s.len,
            digest: s.digest,
            table_len: 0,
            states_len: 0,
            merged: false,
        }
    }

    /// The stem of its files' names: `<first>`, or `<first>-<last>` when merged.
    pub fn stem(&self) -> String {
        if self.merged {
            merged_stem(self.first, self.last)
        } else {
            format!("{:020}", self.first)
        }
    }

    /// Its segment file in the store directory `store_dir`.
    pub fn seg_path(&self, store_dir: &Path) -> PathBuf {
        store_dir.join(DIR).join(format!("{}{SUFFIX}", self.stem()))
    }

    /// Its index table's path (whether or not it has one).
    pub fn table_path(&self, store_dir: &Path) -> PathBuf {
        store_dir
            .join(DIR)
            .join(format!("{}{TABLE_SUFFIX}", self.stem()))
    }

    /// Its state table's path (whether or not it has one).
    pub fn states_path(&self, store_dir: &Path) -> PathBuf {
        store_dir
            .join(DIR)
            .join(format!("{}{STATES_SUFFIX}", self.stem()))
    }

    /// `version ‖ first ‖ last (u64 BE) ‖ prev link ‖ last link ‖ length (u64 BE) ‖ digest`,
    /// then, in version 2, the index table's length (u64 BE).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENTRY_LEN + 16);
        v.push(if self.merged {
            VERSION_MERGED
        } else if self.states_len > 0 {
            VERSION_STATES
        } else if self.table_len > 0 {
            VERSION_TABLE
        } else {
            VERSION
        });
        v.extend_from_slice(&self.first.to_be_bytes());
        v.extend_from_slice(&self.last.to_be_bytes());
        v.extend_from_slice(&self.prev_link);
        v.extend_from_slice(&self.last_link);
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.digest);
        if self.merged || self.table_len > 0 || self.states_len > 0 {
            v.extend_from_slice(&self.table_len.to_be_bytes());
        }
        if self.merged || self.states_len > 0 {
            v.extend_from_slice(&self.states_len.to_be_bytes());
        }
        v
    }

    /// Decodes [`Entry::encode`]'s bytes; `None` when they are not an entry of this version.
    pub fn decode(b: &[u8]) -> Option<Entry> {
        let (table, states, merged) = match (b.first(), b.len()) {
            (Some(&VERSION), ENTRY_LEN) => (false, false, false),
            (Some(&VERSION_TABLE), n) if n == ENTRY_LEN + 8 => (true, false, false),
            (Some(&VERSION_STATES), n) if n == ENTRY_LEN + 16 => (true, true, false),
            (Some(&VERSION_MERGED), n) if n == ENTRY_LEN + 16 => (true, true, true),
            _ => return None,
        };
        let u = |at: usize| b.get(at..at + 8)?.try_into().ok().map(u64::from_be_bytes);
        let l = |at: usize| -> Option<[u8; 32]> { b.get(at..at + 32)?.try_into().ok() };
        Some(Entry {
            first: u(1)?,
            last: u(9)?,
            prev_link: l(17)?,
            last_link: l(49)?,
            len: u(81)?,
            digest: l(89)?,
            table_len: if table { u(121)? } else { 0 },
            states_len: match (states, merged) {
                (true, false) => u(129).filter(|n| *n > 0)?,
                (true, true) => u(129)?,
                _ => 0,
            },
            merged,
        })
        .filter(|e| merged || !table || states || e.table_len > 0)
        .filter(|e| !merged || e.first < e.last)
    }

    /// Whether an opened file is the one this entry describes: its header and footer against
    /// the entry (the blocks themselves are checked by a verification). `Err` says what differs.
    ///
    /// # Errors
    /// A description of the first field that differs.
    pub fn matches(&self, r: &SegmentReader) -> Result<(), String> {
        let differs = |what: &str| Err(format!("the file's {what} differs from its catalog entry"));
        if r.first_seq() != self.first || r.last_seq() != self.last {
            return differs("record range");
        }
        if r.len() != self.len {
            return differs("length");
        }
        if r.prev_link() != self.prev_link || r.last_link() != self.last_link {
            return differs("chain link");
        }
        if r.digest() != self.digest {
            return differs("digest");
        }
        Ok(())
    }
}

/// An open file of the catalog.
#[derive(Debug)]
pub struct Sealed {
    /// What the catalog says about it.
    pub entry: Entry,
    /// The open file.
    pub reader: SegmentReader,
    /// Its open index table, if it has one.
    pub table: Option<TableReader>,
    /// Its open state table, if it has one.
    pub states: Option<TableReader>,
    /// The period of its first record, once asked (see [`due_merge`]).
    pub period: std::sync::OnceLock<Option<u64>>,
}

/// The catalog as readers see it: files in sequence order.
pub type Snapshot = Arc<Vec<Arc<Sealed>>>;

/// The file holding record `seq`, if any.
pub fn find(files: &[Arc<Sealed>], seq: u64) -> Option<&Arc<Sealed>> {
    let i = files.partition_point(|s| s.entry.last < seq);
    files.get(i).filter(|s| s.entry.first <= seq)
}

/// What the merge rule knows of one catalogued file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The period of its first record (`None`: none known; such files never close a period).
    pub period: Option<u64>,
    /// How many records it holds.
    pub records: u64,
}

/// A file's level: the smallest `L` with `records ≤ window × fanout^L` (a window is level 0).
pub fn level(records: u64, window: u64, fanout: u64) -> u32 {
    let mut cap = window.max(1);
    let mut l = 0;
    while records > cap && l < 64 {
        cap = cap.saturating_mul(fanout.max(2));
        l += 1;
    }
    l
}

/// Which consecutive files (indexes into `files`, in sequence order) to merge next, if any:
///
/// 1. the files of a closed period (a later file belongs to another period), when more than
///    one: a closed period becomes one file;
/// 2. else the first `fanout` consecutive files of one level within one period: they become one
///    file of the next level, so that an open period holds at most `fanout - 1` files per level.
///
/// Files are never merged across periods. `fanout < 2`: never.
pub fn due_merge(files: &[Shape], window: u64, fanout: u64) -> Option<std::ops::Range<usize>> {
    if fanout < 2 {
        return None;
    }
    let fanout_n = usize::try_from(fanout).unwrap_or(usize::MAX);
    // Runs of one period, in order.
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=files.len() {
        if i == files.len() || files[i].period != files[start].period {
            runs.push(start..i);
            start = i;
        }
    }
    for r in &runs {
        let closed = r.end < files.len() && files[r.start].period.is_some();
        if closed && r.len() > 1 {
            return Some(r.clone());
        }
    }
    for r in runs {
        let mut i = r.start;
        while i < r.end {
            let l = level(files[i].records, window, fanout);
            let mut j = i + 1;
            while j < r.end && level(files[j].records, window, fanout) == l {
                j += 1;
            }
            if j - i >= fanout_n {
                return Some(i..i + fanout_n);
            }
            i = j;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_a_foreign_value_is_refused() {
        let e = Entry {
            first: 1,
            last: u64::MAX - 1,
            prev_link: [1; 32],
            last_link: [2; 32],
            len: 4096,
            digest: [3; 32],
            table_len: 0,
            states_len: 0,
            merged: false,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        for (table_len, states_len) in [(0, 0), (3, 0), (0, 4), (5, 6)] {
            let merged = Entry {
                table_len,
                states_len,
                merged: true,
                ..e.clone()
            };
            assert_eq!(Entry::decode(&merged.encode()), Some(merged.clone()));
            assert_eq!(
                merged.seg_path(Path::new("s")),
                Path::new("s/segments/00000000000000000001-18446744073709551614.seg")
            );
        }
        let with_table = Entry {
            table_len: 777,
            ..e.clone()
        };
        assert_eq!(
            Entry::decode(&with_table.encode()),
            Some(with_table.clone())
        );
        for table_len in [0, 5] {
            let with_states = Entry {
                table_len,
                states_len: 99,
                ..e.clone()
            };
            assert_eq!(Entry::decode(&with_states.encode()), Some(with_states));
        }
        let mut other = e.encode();
        other[0] = 5;
        assert_eq!(Entry::decode(&other), None);
        let mut short = with_table.encode();
        short.pop();
        assert_eq!(Entry::decode(&short), None);
        assert_eq!(Entry::decode(&e.encode()[1..]), None);
        assert_eq!(file_name(17), "00000000000000000017.seg");
    }

    fn shapes(v: &[(Option<u64>, u64)]) -> Vec<Shape> {
        v.iter()
            .map(|&(period, records)| Shape { period, records })
            .collect()
    }

    #[test]
    fn levels_grow_by_the_fanout() {
        assert_eq!(level(10, 10, 4), 0);
        assert_eq!(level(11, 10, 4), 1);
        assert_eq!(level(40, 10, 4), 1);
        assert_eq!(level(41, 10, 4), 2);
        assert_eq!(level(u64::MAX, 1, 2), 64);
    }

    #[test]
    fn a_closed_period_merges_whole_and_an_open_one_by_levels() {
        let m = Some(7);
        // Three windows of an open period: nothing with a fanout of 4.
        assert_eq!(due_merge(&shapes(&[(m, 10); 3]), 10, 4), None);
        // Four: the four.
        assert_eq!(due_merge(&shapes(&[(m, 10); 4]), 10, 4), Some(0..4));
        // Level 1 files and windows: the windows only once there are four of them.
        let mut v = vec![(m, 40), (m, 40), (m, 10), (m, 10), (m, 10)];
        assert_eq!(due_merge(&shapes(&v), 10, 4), None);
        v.push((m, 10));
        assert_eq!(due_merge(&shapes(&v), 10, 4), Some(2..6));
        // A later period closes the first: all of it, before any level rule.
        v.push((Some(8), 10));
        assert_eq!(due_merge(&shapes(&v), 10, 4), Some(0..6));
        // A closed period of one file stays; the open one merges by levels.
        let v = [(m, 60), (Some(8), 10), (Some(8), 10)];
        assert_eq!(due_merge(&shapes(&v), 10, 2), Some(1..3));
        // Never across periods, never without a period known, never with fanout < 2.
        let v = [(m, 10), (Some(8), 10), (Some(9), 10)];
        assert_eq!(due_merge(&shapes(&v), 10, 2), None);
        let v = [(None, 10), (Some(8), 10), (None, 10)];
        assert_eq!(due_merge(&shapes(&v), 10, 4), None);
        assert_eq!(due_merge(&shapes(&[(m, 10); 9]), 10, 1), None);
        assert_eq!(due_merge(&[], 10, 4), None);
    }
}
