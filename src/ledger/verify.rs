//! Integrity check of the journal: every link recomputed, every checkpoint's signature checked
//! and matched against the chain. Stops at the first bad record and says what is wrong with it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::chain::{self, Checkpoint, Link};
use super::{Ledger, LedgerError};
use crate::store::StoreError;

/// What is wrong with the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// A sequence number is absent (a deleted record, or the start of an inserted run).
    Missing {
        /// The key found in its place.
        found_key: u64,
    },
    /// The record's body names another sequence number (reordered or moved).
    WrongSeq {
        /// The number in the body.
        body_seq: Option<u64>,
    },
    /// The stored link does not match the recomputed one (edited body or link).
    LinkMismatch,
    /// The stored value is too short to hold a link and a body.
    Truncated,
    /// The body is not a readable record.
    Unreadable {
        /// The decoder's message.
        error: String,
    },
    /// A checkpoint signed a different link for this record.
    CheckpointMismatch {
        /// The checkpoint's sequence number.
        checkpoint: u64,
    },
    /// The journal ends before a signed checkpoint: records were removed from its tail.
    TruncatedTail {
        /// The checkpoint's sequence number.
        checkpoint: u64,
        /// The last record present.
        last_present: u64,
    },
    /// A checkpoint's signature does not verify.
    BadCheckpoint {
        /// What is wrong.
        reason: String,
    },
    /// A sealed segment file that holds this record is missing.
    MissingPart {
        /// The file.
        file: String,
    },
    /// A sealed segment file that holds this record is damaged: a checksum, its digest, its
    /// chain or its seal is wrong, or it is not the file its catalog entry describes.
    DamagedPart {
        /// The file.
        file: String,
        /// What is wrong, naming the part.
        what: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { found_key } => write!(
                f,
                "record is missing (the next key present is {})",
                if *found_key == u64::MAX {
                    "malformed".to_string()
                } else {
                    found_key.to_string()
                }
            ),
            Problem::WrongSeq { body_seq } => match body_seq {
                Some(s) => write!(
                    f,
                    "the record stored here says it is record {s} (moved or reordered)"
                ),
                None => write!(f, "the record stored here has no readable sequence number"),
            },
            Problem::LinkMismatch => write!(
                f,
                "its hash link does not match its content and predecessor (edited or inserted)"
            ),
            Problem::Truncated => write!(f, "the stored value is truncated"),
            Problem::Unreadable { error } => write!(f, "the record is unreadable: {error}"),
            Problem::CheckpointMismatch { checkpoint } => write!(
                f,
                "signed checkpoint {checkpoint} vouches for a different chain head here (history rewritten)"
            ),
            Problem::TruncatedTail {
                checkpoint,
                last_present,
            } => write!(
                f,
                "the journal ends at record {last_present}, but checkpoint {checkpoint} was signed over a longer chain: records were removed from the tail"
            ),
            Problem::BadCheckpoint { reason } => write!(f, "{reason}"),
            Problem::MissingPart { file } => write!(f, "the segment file {file} is missing"),
            Problem::DamagedPart { what, .. } => write!(f, "{what}"),
        }
    }
}

/// The first bad record found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    /// Its sequence number.
    pub seq: u64,
    /// What is wrong.
    pub problem: Problem,
}

/// How much of the chain a verification checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Every record from the first, every checkpoint.
    #[default]
    Full,
    /// From the last verified signed checkpoint (the newest one that an earlier verification of
    /// this ledger found good) to the head: a running hall's routine check, whose cost is the
    /// records written since. Every stored checkpoint's signature is still checked. Without an
    /// earlier verification it is a full one.
    Incremental,
    /// From the newest signed checkpoint to the head (a fast tail check).
    SinceCheckpoint,
}

impl VerifyMode {
    /// The mode's name, as in the API (`full`, `incremental`, `since_checkpoint`).
    pub fn name(self) -> &'static str {
        match self {
            VerifyMode::Full => "full",
            VerifyMode::Incremental => "incremental",
            VerifyMode::SinceCheckpoint => "since_checkpoint",
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    /// What was asked for.
    #[serde(default)]
    pub mode: VerifyMode,
    /// The ledger's head when the verification started.
    #[serde(default)]
    pub head: u64,
    /// The public key the checkpoints were checked with (hex).
    #[serde(default)]
    pub public_key: String,
    /// The first record checked.
    pub from: u64,
    /// Records checked.
    pub checked: u64,
    /// The last good record.
    pub last_good: u64,
    /// Checkpoints whose signature and link were checked.
    pub checkpoints_checked: u64,
    /// The first bad record, if any.
    pub first_bad: Option<BadRecord>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Options of [`Ledger::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Which part of the chain to check.
    pub mode: VerifyMode,
    /// The trusted public key; defaults to the ledger's own.
    pub trusted_key: Option<VerifyingKey>,
    /// Checkpoints held off the machine (an exported file), checked besides the stored ones.
    pub external: Vec<Checkpoint>,
}

impl Ledger {
    /// Verifies the chain. `progress(done, total)` is called now and then.
    ///
    /// # Errors
    /// Storage errors. Integrity problems are reported in the [`VerifyReport`], not as errors.
    pub fn verify(
        &self,
        opts: &VerifyOptions,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<VerifyReport, LedgerError> {
        let key = opts.trusted_key.unwrap_or_else(|| self.public_key());
        let head = self.head();
        let mut report = self.verify_with(opts, &key, &mut progress)?;
        report.mode = opts.mode;
        report.head = head;
        report.public_key = hex::encode(key.as_bytes());
        // Remember the newest checkpoint a passing verification vouched for: the next
        // incremental verification starts there.
        if report.ok() && report.checkpoints_checked > 0 {
            let newest = self
                .store
                .checkpoint_at_or_before(report.last_good)?
                .map(|(seq, _)| seq);
            let before = self.verified_checkpoint()?;
            if let Some(seq) = newest.filter(|s| *s >= report.from && *s > before) {
                // The report stands even when the mark cannot be saved (a halted or failed
                // store): the next incremental verification then starts further back.
                if let Err(e) = self
                    .store
                    .meta_set(VERIFIED_CHECKPOINT, seq.to_string().as_bytes())
                    .and_then(|()| self.store.sync())
                {
                    tracing::warn!("cannot save the verified checkpoint {seq}: {e}");
                }
            }
        }
        Ok(report)
    }

    /// The newest checkpoint an earlier verification found good (0: none yet).
    ///
    /// # Errors
    /// Storage errors.
    pub fn verified_checkpoint(&self) -> Result<u64, LedgerError> {
        Ok(self
            .store
            .meta_get(VERIFIED_CHECKPOINT)?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
            .unwrap_or(0))
    }

    fn verify_with(
        &self,
        opts: &VerifyOptions,
        key: &VerifyingKey,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifyReport, LedgerError> {
        // An incremental run reads and checks only the checkpoints from the verified mark on
        // (the mark's own among them: its signed link is where the run starts), so its cost
        // does not grow with the ledger's age; the others are the full run's to check.
        let below = match opts.mode {
            VerifyMode::Incremental => self.verified_checkpoint()?,
            VerifyMode::Full | VerifyMode::SinceCheckpoint => 0,
        };
        let stored: Vec<Checkpoint> = self
            .store
            .checkpoints_from(below)?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        let mut cps: Vec<Checkpoint> = stored
            .into_iter()
            .chain(opts.external.iter().cloned())
            .collect();
        cps.sort_by_key(|c| c.seq);
        // A forged checkpoint is itself an integrity failure, reported at its sequence number.
        for c in &cps {
            if let Err(reason) = c.verify(key) {
                return Ok(bad(c.seq, 0, Problem::BadCheckpoint { reason }));
            }
        }
        let from_checkpoint = match opts.mode {
            VerifyMode::Full => None,
            VerifyMode::SinceCheckpoint => cps.last(),
            VerifyMode::Incremental => {
                let verified = self.verified_checkpoint()?;
                cps.iter().rev().find(|c| c.seq <= verified)
            }
        };
        let (start, prev): (u64, Link) = match from_checkpoint {
            Some(c) => {
                // The checkpoint's own record must still carry the signed link.
                let head = c.head_link().unwrap_or(chain::GENESIS);
                let stored = match self.store.journal_get(c.seq) {
                    Ok(v) => v,
                    // In a sealed file that cannot be read: a finding, not a failure.
                    Err(e @ (StoreError::Segment(_) | StoreError::Catalog { .. })) => {
                        let file = self
                            .store
                            .segment_files()
                            .into_iter()
                            .find(|f| (f.first..=f.last).contains(&c.seq))
                            .map_or_else(String::new, |f| f.path.display().to_string());
                        return Ok(bad(
                            c.seq,
                            0,
                            Problem::DamagedPart {
                                file,
                                what: e.to_string(),
                            },
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                match stored.as_deref().and_then(chain::split_stored) {
                    Some((l, _)) if l == head => (c.seq + 1, head),
                    Some(_) => {
                        return Ok(bad(
                            c.seq,
                            0,
                            Problem::CheckpointMismatch { checkpoint: c.seq },
                        ));
                    }
                    None => {
                        let last = self.store.journal_last()?.map_or(0, |(s, _)| s);
                        return Ok(bad(
                            last + 1,
                            0,
                            Problem::TruncatedTail {
                                checkpoint: c.seq,
                                last_present: last,
                            },
                        ));
                    }
                }
            }
            None => (1, chain::GENESIS),
        };
        // The files checked whole are the ones the walk starts after: a file sealed meanwhile is
        // walked, never skipped.
        let (found, files) = self.verify_segment_files(start, key);
        if let Some(report) = found {
            return Ok(report);
        }
        let cps: Vec<Checkpoint> = cps.into_iter().filter(|c| c.seq >= start).collect();
        // The sealed files from `start` on were just checked whole (blocks, links, digest,
        // continuity, seal): their records' links are known good, and only the checkpoints
        // among them remain to compare, each with its record's link. The walk starts after
        // them, so that a full verification reads each sealed record once.
        let (origin, mut start, mut prev) = (start, start, prev);
        let mut sealed_checkpoints = 0;
        if let Some(last) = files.last().filter(|f| f.last >= start) {
            for c in cps.iter().filter(|c| c.seq <= last.last) {
                let link = self
                    .store
                    .journal_get(c.seq)?
                    .as_deref()
                    .and_then(chain::split_stored)
                    .map(|(l, _)| l);
                if link.is_none() || link != c.head_link() {
                    let mut r = bad(
                        c.seq,
                        origin,
                        Problem::CheckpointMismatch { checkpoint: c.seq },
                    );
                    r.checked = c.seq - origin;
                    r.last_good = c.seq - 1;
                    r.checkpoints_checked = sealed_checkpoints;
                    return Ok(r);
                }
                sealed_checkpoints += 1;
            }
            start = last.last + 1;
            prev = last.last_link;
        }
        let in_files = start - origin;
        let cps: Vec<Checkpoint> = cps.into_iter().filter(|c| c.seq >= start).collect();
        if start > self.head() {
            // Nothing after the files.
            let mut r = bad(0, origin, Problem::Truncated);
            r.first_bad = None;
            r.checked = in_files;
            r.last_good = start - 1;
            r.checkpoints_checked = sealed_checkpoints;
            return Ok(self.finish_report(r, &cps));
        }
        let total = self.head().saturating_sub(start) + 1;
        // More parts than cores: on a journal that is not in memory the parts mostly wait for
        // the disk, and several reads in flight keep it busy.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parts = if total >= PART_MIN * 2 {
            (cores * 4).clamp(2, 16)
        } else {
            1
        };
        let mut report = self.verify_parts(start, prev, total, &cps, parts, progress)?;
        report.from = origin;
        report.checked += in_files;
        report.checkpoints_checked += sealed_checkpoints;
        if report.checked == in_files && report.first_bad.is_none() {
            report.last_good = report.last_good.max(start - 1);
        }
        Ok(self.finish_report(report, &cps))
    }

    /// The end of a verification: checkpoints past the last good record (a cut tail), and the
    /// head record decoded whole.
    fn finish_report(&self, mut report: VerifyReport, cps: &[Checkpoint]) -> VerifyReport {
        if report.first_bad.is_none() {
            // Checkpoints beyond the last record: the tail was cut off.
            if let Some(c) = cps.iter().find(|c| c.seq > report.last_good) {
                report.first_bad = Some(BadRecord {
                    seq: report.last_good + 1,
                    problem: Problem::TruncatedTail {
                        checkpoint: c.seq,
                        last_present: report.last_good,
                    },
                });
            }
        }
        let mut err = report.first_bad.take();
        // Bodies are not fully decoded on the hot path (that would double the cost); the head
        // record is, so that a chain whose newest record hashes right but cannot be read (written
        // by another program) is still reported.
        if err.is_none()
            && report.last_good > 0
            && let Err(e) = self.record(report.last_good)
        {
            err = Some(BadRecord {
                seq: report.last_good,
                problem: Problem::Unreadable {
                    error: e.to_string(),
                },
            });
        }
        report.first_bad = err;
        report
    }

    /// Checks, as they are on disk now, the segment files that hold records from `start` on:
    /// each is there, is the file its catalog entry describes, its blocks, links and digest are
    /// right, it continues the chain of the file before it, and its seal verifies with `key`.
    /// The records are then checked like the others by the walk (which recomputes their links
    /// from the files), against the checkpoints.
    fn verify_segment_files(
        &self,
        start: u64,
        key: &VerifyingKey,
    ) -> (Option<VerifyReport>, Vec<crate::store::SegmentFile>) {
        // Files are checked by name, as on disk: no merge replaces them meanwhile (on a running
        // hall, a merge waits to register its file until this ends).
        let _files = self.store.hold_files();
        let files = self.store.segment_files();
        let found = self.check_segment_files(&files, start, key);
        (found, files)
    }

    fn check_segment_files(
        &self,
        files: &[crate::store::SegmentFile],
        start: u64,
        key: &VerifyingKey,
    ) -> Option<VerifyReport> {
        // Each file's expected link before it, from the catalog: the first file starts the
        // chain (or, after a migration that kept no older file, continues from the link its
        // catalog entry states).
        let mut prev: Option<Link> = None;
        let mut todo = Vec::new();
        for f in files {
            let expected = prev.unwrap_or(if f.first == 1 {
                chain::GENESIS
            } else {
                f.prev_link
            });
            prev = Some(f.last_link);
            if f.last >= start {
                todo.push((f.first, expected));
            }
        }
        // The files are independent: checked on every core, the lowest bad one reported, as
        // one pass in order would.
        let next = AtomicUsize::new(0);
        let lowest_bad = AtomicUsize::new(usize::MAX);
        let found: Mutex<Vec<(usize, u64, crate::store::PartProblem)>> = Mutex::new(Vec::new());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 0..cores.min(todo.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= todo.len() || i > lowest_bad.load(Ordering::Relaxed) {
                            return;
                        }
                        let (first, expected) = &todo[i];
                        if let Err(p) = self.store.check_segment(*first, key, expected) {
                            lowest_bad.fetch_min(i, Ordering::Relaxed);
                            found
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((i, *first, p));
                        }
                    }
                });
            }
        });
        let found = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, first, p) = found.into_iter().min_by_key(|(i, _, _)| *i)?;
        let file = p.file.display().to_string();
        let problem = if p.missing {
            Problem::MissingPart { file }
        } else {
            Problem::DamagedPart { file, what: p.what }
        };
        Some(bad(first.max(start), start, problem))
    }

    /// Checks records `start..` (the predecessor of `start` has link `prev`) in `parts`
    /// contiguous parts, each on its own thread. A record's link needs only its predecessor's
    /// *stored* link, which the predecessor's own check vouches for, so the parts are
    /// independent: together they check exactly what one pass would, and the report is the one
    /// pass's (the first bad record, the records and checkpoints checked before it).
    fn verify_parts(
        &self,
        start: u64,
        prev: Link,
        total: u64,
        cps: &[Checkpoint],
        parts: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifyReport, LedgerError> {
        let parts = (parts.max(1) as u64).min(total.max(1));
        let bounds: Vec<u64> = (0..parts).map(|i| start + total * i / parts).collect();
        let done = AtomicU64::new(0);
        // The lowest bad record found so far: parts after it stop early.
        let first_bad = AtomicU64::new(u64::MAX);
        let results: Vec<Result<Part, LedgerError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .iter()
                .enumerate()
                .map(|(i, &from)| {
                    let to = bounds.get(i + 1).copied();
                    let (done, first_bad) = (&done, &first_bad);
                    scope.spawn(move || {
                        let prev = if from == start {
                            Some(prev)
                        } else {
                            // The predecessor's stored link; if it is unreadable, the part
                            // before this one reports it.
                            self.store
                                .journal_get(from - 1)?
                                .as_deref()
                                .and_then(chain::split_stored)
                                .map(|(l, _)| l)
                        };
                        match prev {
                            Some(prev) => self.verify_part(from, to, prev, cps, done, first_bad),
                            None => Ok(Part::default_at(from)),
                        }
                    })
                })
                .collect();
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                progress(done.load(Ordering::Relaxed), total);
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(LedgerError::Corrupt("verify thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut report = VerifyReport {
            mode: VerifyMode::Full,
            head: 0,
            public_key: String::new(),
            from: start,
            checked: 0,
            last_good: start - 1,
            checkpoints_checked: 0,
            first_bad: None,
        };
        for r in results {
            let p = r?;
            report.checked += p.checked;
            report.checkpoints_checked += p.checkpoints_checked;
            report.last_good = p.last_good;
            if p.bad.is_some() {
                report.first_bad = p.bad;
                break;
            }
        }
        progress(report.checked, total);
        Ok(report)
    }

    /// Checks the records with keys in `[from, to)` (to the end when `to` is `None`).
    fn verify_part(
        &self,
        from: u64,
        to: Option<u64>,
        mut prev: Link,
        cps: &[Checkpoint],
        done: &AtomicU64,
        first_bad: &AtomicU64,
    ) -> Result<Part, LedgerError> {
        let mut part = Part::default_at(from);
        let mut cp_iter = cps.iter().filter(|c| c.seq >= from).peekable();
        let mut expected = from;
        let bad = |seq: u64, problem: Problem| {
            first_bad.fetch_min(seq, Ordering::Relaxed);
            Some(BadRecord { seq, problem })
        };
        let mut stopped = false;
        self.store.journal_for_each_in(from, to, |k, v| {
            let key_seq = crate::store::key_u64(k);
            if key_seq != expected {
                part.bad = bad(expected, Problem::Missing { found_key: key_seq });
                return false;
            }
            let Some((stored_link, body)) = chain::split_stored(v) else {
                part.bad = bad(expected, Problem::Truncated);
                return false;
            };
            let body_seq = chain::body_seq(body);
            if body_seq != Some(expected) {
                part.bad = bad(expected, Problem::WrongSeq { body_seq });
                return false;
            }
            let l = chain::link(&prev, expected, body);
            if l != stored_link {
                part.bad = bad(expected, Problem::LinkMismatch);
                return false;
            }
            while let Some(c) = cp_iter.peek() {
                if c.seq != expected {
                    break;
                }
                if c.head_link() != Some(l) {
                    part.bad = bad(expected, Problem::CheckpointMismatch { checkpoint: c.seq });
                    return false;
                }
                part.checkpoints_checked += 1;
                cp_iter.next();
            }
            prev = l;
            part.checked += 1;
            part.last_good = expected;
            expected += 1;
            if part.checked.is_multiple_of(4096) {
                done.fetch_add(4096, Ordering::Relaxed);
                // An earlier part found a bad record: what follows it is not reported.
                if first_bad.load(Ordering::Relaxed) < from {
                    stopped = true;
                    return false;
                }
            }
            true
        })?;
        if part.bad.is_none()
            && !stopped
            && let Some(to) = to
            && expected < to
        {
            // The part ended early: the record after its last one is missing.
            let mut found_key = u64::MAX;
            self.store.journal_for_each(expected, |k, _| {
                found_key = crate::store::key_u64(k);
                false
            })?;
            part.bad = bad(expected, Problem::Missing { found_key });
        }
        Ok(part)
    }
}

/// Records in one part of the journal below which a part's threads stop being split.
const PART_MIN: u64 = 1024;

/// The outcome of one part of a verification.
struct Part {
    checked: u64,
    last_good: u64,
    checkpoints_checked: u64,
    bad: Option<BadRecord>,
}

impl Part {
    fn default_at(from: u64) -> Part {
        Part {
            checked: 0,
            last_good: from - 1,
            checkpoints_checked: 0,
            bad: None,
        }
    }
}

/// Metadata key: the newest checkpoint a passing verification vouched for.
const VERIFIED_CHECKPOINT: &str = "verified_checkpoint";

fn bad(seq: u64, from: u64, problem: Problem) -> VerifyReport {
    VerifyReport {
        mode: VerifyMode::Full,
        head: 0,
        public_key: String::new(),
        from,
        checked: 0,
        last_good: 0,
        checkpoints_checked: 0,
        first_bad: Some(BadRecord { seq, problem }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ItemKind, LedgerConfig, LedgerEvent, LotId, SerialRange};
    use hallctl_jobs::job::OperatorId;

    fn ledger(dir: &std::path::Path, n: u64) -> Ledger {
        let l = Ledger::open(
            dir,
            LedgerConfig {
                checkpoint_every: 7,
                ..LedgerConfig::default()
            },
        )
        .expect("open");
        lots(&l, 0, n);
        l
    }

    /// Appends `n` lots (`L<first>`...) in one batch.
    fn lots(l: &Ledger, first: u64, n: u64) {
        let batch = (first..first + n)
            .map(|i| {
                (
                    chrono::Utc::now(),
                    OperatorId::new("S"),
                    LedgerEvent::LotReceived {
                        lot: LotId::new(format!("L{i}")),
                        kind: ItemKind::Patch,
                        supplier: "DLR".into(),
                        range: SerialRange {
                            prefix: format!("{i}-"),
                            first: 1,
                            last: 1,
                            width: 3,
                        },
                    },
                )
            })
            .collect();
        l.append_batch(batch).expect("append");
    }

    fn run(l: &Ledger, mode: VerifyMode) -> VerifyReport {
        l.verify(
            &VerifyOptions {
                mode,
                ..VerifyOptions::default()
            },
            |_, _| {},
        )
        .expect("verify")
    }

    /// Incremental verification starts at the newest checkpoint that a passing verification
    /// vouched for: before any, it is a full one; after a full one, it checks only the records
    /// written since; a failing one moves nothing forward.
    #[test]
    fn incremental_verification_starts_at_the_last_verified_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A checkpoint closes each batch of at least 7 records: at 7, 14, 21, 28 and 35.
        let l = ledger(dir.path(), 7);
        for batch in 1..5 {
            lots(&l, batch * 7, 7);
        }
        lots(&l, 35, 5);
        let signed: Vec<u64> = l
            .checkpoints()
            .expect("read")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(signed, [7, 14, 21, 28, 35]);
        assert_eq!(l.verified_checkpoint().expect("read"), 0);
        let first = run(&l, VerifyMode::Incremental);
        assert!(first.ok(), "{first:?}");
        assert_eq!((first.from, first.checked, first.head), (1, 40, 40));
        assert_eq!(first.mode, VerifyMode::Incremental);
        assert_eq!(first.public_key, hex::encode(l.public_key().as_bytes()));
        assert_eq!(l.verified_checkpoint().expect("read"), 35);

        // Nothing new: only the records after checkpoint 35.
        let again = run(&l, VerifyMode::Incremental);
        assert!(again.ok(), "{again:?}");
        assert_eq!((again.from, again.checked, again.last_good), (36, 5, 40));

        // Damage before the verified checkpoint is the full verification's to find...
        let stored = l.store().journal_get(10).expect("get").expect("record");
        let mut edited = stored.clone();
        let last = edited.len() - 2;
        edited[last] ^= 1;
        l.store().tamper_journal_put(10, &edited).expect("put");
        assert!(run(&l, VerifyMode::Incremental).ok());
        let full = run(&l, VerifyMode::Full);
        assert_eq!(full.first_bad.as_ref().map(|b| b.seq), Some(10), "{full:?}");
        l.store().tamper_journal_put(10, &stored).expect("put back");

        // ...damage after it is found by the incremental one, which then vouches for nothing.
        let stored = l.store().journal_get(38).expect("get").expect("record");
        let mut edited = stored.clone();
        let last = edited.len() - 2;
        edited[last] ^= 1;
        l.store().tamper_journal_put(38, &edited).expect("put");
        let bad = run(&l, VerifyMode::Incremental);
        assert_eq!(bad.first_bad.as_ref().map(|b| b.seq), Some(38), "{bad:?}");
        assert_eq!(l.verified_checkpoint().expect("read"), 35);
        l.store().tamper_journal_put(38, &stored).expect("put back");

        // New records and checkpoints: the next incremental run checks them and moves on.
        lots(&l, 40, 10); // records 41-50, a checkpoint at 50
        let next = run(&l, VerifyMode::Incremental);
        assert!(next.ok(), "{next:?}");
        assert_eq!((next.from, next.last_good), (36, 50));
        assert_eq!(l.verified_checkpoint().expect("read"), 50);
    }

    /// Incremental verification reads and checks only the checkpoints from the verified mark on:
    /// its cost does not grow with the ledger's age. A checkpoint forged below the mark is the
    /// full verification's to find, like a record edited there.
    #[test]
    fn incremental_verification_checks_only_the_checkpoints_from_the_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path(), 7);
        for batch in 1..5 {
            lots(&l, batch * 7, 7);
        }
        // Checkpoints at 7, 14, 21, 28, 35; a full verification sets the mark at 35.
        assert!(run(&l, VerifyMode::Full).ok());
        assert_eq!(l.verified_checkpoint().expect("read"), 35);
        lots(&l, 35, 7); // records 36-42, a checkpoint at 42
        lots(&l, 42, 7); // records 43-49, a checkpoint at 49

        // A forged checkpoint below the mark.
        let cps = l.checkpoints().expect("checkpoints");
        let mut forged = cps.iter().find(|c| c.seq == 14).expect("14").clone();
        forged.signature = "00".repeat(64);
        l.store()
            .tamper_checkpoint_put(14, Some(&serde_json::to_vec(&forged).expect("encode")))
            .expect("put");

        let inc = run(&l, VerifyMode::Incremental);
        assert!(inc.ok(), "{inc:?}");
        assert_eq!((inc.from, inc.checked, inc.last_good), (36, 14, 49));
        // The checkpoints after the mark (the mark's own is where the run starts): 42 and 49.
        assert_eq!(inc.checkpoints_checked, 2, "{inc:?}");
        assert_eq!(l.verified_checkpoint().expect("read"), 49);

        let full = run(&l, VerifyMode::Full);
        assert_eq!(full.first_bad.as_ref().map(|b| b.seq), Some(14), "{full:?}");
        assert!(
            matches!(
                full.first_bad.as_ref().map(|b| &b.problem),
                Some(Problem::BadCheckpoint { .. })
            ),
            "{full:?}"
        );
    }

    /// Every way of splitting the journal gives the one-pass report, for a sound journal and
    /// for each kind of damage, wherever it falls relative to the parts' boundaries.
    #[test]
    fn parts_report_what_one_pass_reports() {
        let n = 40u64;
        let check = |l: &Ledger, what: &str| {
            let cps: Vec<Checkpoint> = l.checkpoints().expect("checkpoints");
            let one = l
                .verify_parts(1, chain::GENESIS, n, &cps, 1, &mut |_, _| {})
                .expect("verify");
            for parts in [2, 3, 4, 7, 40] {
                let p = l
                    .verify_parts(1, chain::GENESIS, n, &cps, parts, &mut |_, _| {})
                    .expect("verify");
                assert_eq!(
                    (p.checked, p.last_good, p.checkpoints_checked, &p.first_bad),
                    (
                        one.checked,
                        one.last_good,
                        one.checkpoints_checked,
                        &one.first_bad
                    ),
                    "{what}, {parts} parts"
                );
            }
            one
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(dir.path(), n);
        let sound = check(&l, "sound");
        assert!(sound.first_bad.is_none() && sound.checked == n);
        for seq in [1, 10, 11, 20, 21, 30, 40] {
            let stored = l.store().journal_get(seq).expect("get").expect("record");
            // An edited body.
            let mut edited = stored.clone();
            let last = edited.len() - 2;
            edited[last] ^= 1;
            l.store().tamper_journal_put(seq, &edited).expect("put");
            let r = check(&l, &format!("record {seq} edited"));
            assert_eq!(r.first_bad.map(|b| b.seq), Some(seq));
            // A removed record.
            l.store().tamper_journal_remove(seq).expect("remove");
            let r = check(&l, &format!("record {seq} removed"));
            if seq < n {
                assert_eq!(r.first_bad.map(|b| b.seq), Some(seq));
            }
            l.store().tamper_journal_put(seq, &stored).expect("restore");
        }
        // Damage in two places: the first is reported.
        for (a, b) in [(5, 35), (12, 13), (20, 21)] {
            let (va, vb) = (
                l.store().journal_get(a).expect("get").expect("a"),
                l.store().journal_get(b).expect("get").expect("b"),
            );
            l.store().tamper_journal_remove(b).expect("remove");
            l.store().tamper_journal_put(a, &vb).expect("put");
            let r = check(&l, &format!("records {a} and {b}"));
            assert_eq!(r.first_bad.map(|b| b.seq), Some(a));
            l.store().tamper_journal_put(a, &va).expect("restore");
            l.store().tamper_journal_put(b, &vb).expect("restore");
        }
        assert!(check(&l, "restored").first_bad.is_none());
    }

    /// Windows of `window` records, never merged (these tests name the windows' files).
    fn open_sealing(dir: &std::path::Path, window: u64) -> Ledger {
        Ledger::open(
            dir,
            LedgerConfig {
                checkpoint_every: 7,
                seal_window: window,
                merge_fanout: 0,
                ..LedgerConfig::default()
            },
        )
        .expect("open")
    }

    /// A verification of a running hall while its sealed files are merged (files replaced
    /// under it by name) finds nothing wrong, every time, and checks every record.
    #[test]
    fn verifications_during_merges_find_nothing_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = std::sync::Arc::new(
            Ledger::open(
                dir.path(),
                LedgerConfig {
                    checkpoint_every: 5,
                    seal_window: 10,
                    merge_fanout: 2,
                    ..LedgerConfig::default()
                },
            )
            .expect("open"),
        );
        let writer = {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    lots(&l, i * 4, 4);
                }
            })
        };
        let mut rounds = 0;
        while !writer.is_finished() || rounds == 0 {
            for mode in [VerifyMode::Full, VerifyMode::Incremental] {
                let r = run(&l, mode);
                assert!(r.ok(), "round {rounds}, {mode:?}: {:?}", r.first_bad);
            }
            rounds += 1;
        }
        writer.join().expect("writer");
        l.store().seal_due().expect("seal");
        l.store().merge_due().expect("merge");
        assert!(l.store().merge_count() > 5, "merges happened meanwhile");
        let r = run(&l, VerifyMode::Full);
        assert!(r.ok(), "{:?}", r.first_bad);
        assert_eq!(r.checked, 600);
    }

    /// What a report says about the chain (not when or with what it ran).
    fn findings(r: &VerifyReport) -> serde_json::Value {
        serde_json::json!([
            r.from,
            r.checked,
            r.last_good,
            r.checkpoints_checked,
            r.first_bad
        ])
    }

    fn journal(l: &Ledger) -> Vec<Option<Vec<u8>>> {
        (0..=l.head() + 1)
            .map(|s| l.store().journal_get(s).expect("get"))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
        /// A ledger's records and its verification reports are the same whether its history is
        /// in sled or in segment files.
        #[test]
        fn records_and_reports_are_equal_with_and_without_sealing(
            window in 1u64..60,
            batches in proptest::collection::vec(1u64..30, 1..8),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let l = open_sealing(dir.path(), 0);
            let mut at = 0;
            for n in &batches {
                lots(&l, at, *n);
                at += n;
            }
            let before = journal(&l);
            let full = findings(&run(&l, VerifyMode::Full));
            drop(l);
            let l = open_sealing(dir.path(), window);
            l.store().seal_due().expect("seal");
            let files = l.store().segment_files();
            // A window is sealed once a signed checkpoint at or after its end vouches for it.
            let last_cp = l.store().checkpoint_last().expect("checkpoint").map_or(0, |(s, _)| s);
            proptest::prop_assert_eq!(
                files.len() as u64,
                ((at.max(1) - 1) / window).min(last_cp / window)
            );
            proptest::prop_assert_eq!(&journal(&l), &before);
            proptest::prop_assert_eq!(findings(&run(&l, VerifyMode::Full)), full);
            let since = run(&l, VerifyMode::SinceCheckpoint);
            proptest::prop_assert!(since.ok(), "{:?}", since);
            // Appends go on after the files, and verify.
            lots(&l, at, 3);
            let after = run(&l, VerifyMode::Full);
            proptest::prop_assert!(after.ok(), "{:?}", after);
            proptest::prop_assert_eq!(after.checked, at + 3);
            drop(l);
            let l = open_sealing(dir.path(), window);
            proptest::prop_assert!(run(&l, VerifyMode::Incremental).ok());
        }
    }

    /// An incremental verification whose starting checkpoint lies in a damaged sealed file
    /// reports the damage (naming the file) instead of failing.
    #[test]
    fn an_incremental_start_in_a_damaged_file_is_a_finding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = open_sealing(dir.path(), 20);
        lots(&l, 0, 28);
        assert!(
            run(&l, VerifyMode::Full).ok(),
            "marks checkpoint 28 verified"
        );
        lots(&l, 28, 40);
        l.store().seal_due().expect("seal");
        let files = l.store().segment_files();
        assert!(files.len() >= 2, "{files:?}");
        let path = files[1].path.clone();
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[70] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        let r = run(&l, VerifyMode::Incremental);
        let first_bad = r.first_bad.expect("damage found");
        match &first_bad.problem {
            Problem::DamagedPart { file, .. } => {
                assert!(file.ends_with("00000000000000000021.seg"), "{file}");
            }
            p => panic!("expected DamagedPart, got {p:?}"),
        }
    }

    /// A damaged or missing segment file is reported naming the file; an edit of a record
    /// still in sled right after the files is reported at that record.
    #[test]
    fn a_damaged_or_missing_segment_file_is_named_by_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = open_sealing(dir.path(), 20);
        for i in 0..10 {
            lots(&l, i * 7, 7);
        }
        l.store().seal_due().expect("seal");
        let files = l.store().segment_files();
        assert_eq!(files.len(), 3);
        assert!(run(&l, VerifyMode::Full).ok());

        // A flipped byte inside the first block of the second file.
        let path = files[1].path.clone();
        let good = std::fs::read(&path).expect("read");
        let mut bad_bytes = good.clone();
        bad_bytes[70] ^= 0x10;
        std::fs::write(&path, &bad_bytes).expect("write");
        let r = run(&l, VerifyMode::Full);
        let first_bad = r.first_bad.expect("damage found");
        assert_eq!(first_bad.seq, 21);
        match &first_bad.problem {
            Problem::DamagedPart { file, what } => {
                assert!(file.ends_with("00000000000000000021.seg"), "{file}");
                assert!(what.contains("block 0"), "{what}");
            }
            p => panic!("expected DamagedPart, got {p:?}"),
        }
        std::fs::write(&path, &good).expect("restore");
        assert!(run(&l, VerifyMode::Full).ok());

        // The last file removed while the ledger is open (its handle still reads it).
        let last = files[2].path.clone();
        let kept = std::fs::read(&last).expect("read");
        std::fs::remove_file(&last).expect("remove");
        let r = run(&l, VerifyMode::Full);
        let first_bad = r.first_bad.expect("missing file found");
        assert_eq!(first_bad.seq, 41);
        assert_eq!(
            first_bad.problem,
            Problem::MissingPart {
                file: last.display().to_string()
            }
        );
        assert!(
            first_bad
                .problem
                .to_string()
                .contains("00000000000000000041.seg"),
            "{}",
            first_bad.problem
        );
        std::fs::write(&last, &kept).expect("restore");

        // The first record still in sled, edited: its link no longer follows the files'.
        let seq = files[2].last + 1;
        let stored = l.store().journal_get(seq).expect("get").expect("record");
        let mut edited = stored.clone();
        let n = edited.len();
        edited[n - 3] ^= 1;
        l.store().tamper_journal_put(seq, &edited).expect("put");
        let r = run(&l, VerifyMode::Full);
        assert_eq!(
            r.first_bad.map(|b| (b.seq, b.problem)),
            Some((seq, Problem::LinkMismatch))
        );
        // A record in a file cannot be edited through the store: the file must be damaged.
        let err = l
            .store()
            .tamper_journal_put(5, &stored)
            .expect_err("sealed in a file");
        assert!(
            err.to_string().contains("00000000000000000001.seg"),
            "{err}"
        );
    }
}
