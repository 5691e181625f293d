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
/// 3 with an index table (or none) and a state table.
const VERSION: u8 = 1;
const VERSION_TABLE: u8 = 2;
const VERSION_STATES: u8 = 3;
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
        }
    }

    /// `version ‖ first ‖ last (u64 BE) ‖ prev link ‖ last link ‖ length (u64 BE) ‖ digest`,
    /// then, in version 2, the index table's length (u64 BE).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENTRY_LEN + 16);
        v.push(if self.states_len > 0 {
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
        if self.table_len > 0 || self.states_len > 0 {
            v.extend_from_slice(&self.table_len.to_be_bytes());
        }
        if self.states_len > 0 {
            v.extend_from_slice(&self.states_len.to_be_bytes());
        }
        v
    }

    /// Decodes [`Entry::encode`]'s bytes; `None` when they are not an entry of this version.
    pub fn decode(b: &[u8]) -> Option<Entry> {
        let (table, states) = match (b.first(), b.len()) {
            (Some(&VERSION), ENTRY_LEN) => (false, false),
            (Some(&VERSION_TABLE), n) if n == ENTRY_LEN + 8 => (true, false),
            (Some(&VERSION_STATES), n) if n == ENTRY_LEN + 16 => (true, true),
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
            states_len: if states {
                u(129).filter(|n| *n > 0)?
            } else {
                0
            },
        })
        .filter(|e| !table || states || e.table_len > 0)
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
}

/// The catalog as readers see it: files in sequence order.
pub type Snapshot = Arc<Vec<Arc<Sealed>>>;

/// The file holding record `seq`, if any.
pub fn find(files: &[Arc<Sealed>], seq: u64) -> Option<&Arc<Sealed>> {
    let i = files.partition_point(|s| s.entry.last < seq);
    files.get(i).filter(|s| s.entry.first <= seq)
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
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
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
        other[0] = 4;
        assert_eq!(Entry::decode(&other), None);
        let mut short = with_table.encode();
        short.pop();
        assert_eq!(Entry::decode(&short), None);
        assert_eq!(Entry::decode(&e.encode()[1..]), None);
        assert_eq!(file_name(17), "00000000000000000017.seg");
    }
}
