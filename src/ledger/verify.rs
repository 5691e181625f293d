//! Integrity check of the journal: every link recomputed, every checkpoint's signature checked
//! and matched against the chain. Stops at the first bad record and says what is wrong with it.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::chain::{self, Checkpoint, Link};
use super::{Ledger, LedgerError};

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

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
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
    /// Start from the last valid checkpoint instead of record 1 (a fast tail check).
    pub since_checkpoint: bool,
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
        let stored: Vec<Checkpoint> = self
            .store
            .checkpoints()?
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
            if let Err(reason) = c.verify(&key) {
                return Ok(VerifyReport {
                    from: 0,
                    checked: 0,
                    last_good: 0,
                    checkpoints_checked: 0,
                    first_bad: Some(BadRecord {
                        seq: c.seq,
                        problem: Problem::BadCheckpoint { reason },
                    }),
                });
            }
        }
        let (start, mut prev): (u64, Link) = match (opts.since_checkpoint, cps.last()) {
            (true, Some(c)) => {
                // The checkpoint's own record must still carry the signed link.
                let head = c.head_link().unwrap_or(chain::GENESIS);
                match self
                    .store
                    .journal_get(c.seq)?
                    .as_deref()
                    .and_then(chain::split_stored)
                {
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
            _ => (1, chain::GENESIS),
        };
        let total = self.head().saturating_sub(start) + 1;
        let mut report = VerifyReport {
            from: start,
            checked: 0,
            last_good: start - 1,
            checkpoints_checked: 0,
            first_bad: None,
        };
        let mut cp_iter = cps.iter().filter(|c| c.seq >= start).peekable();
        let mut expected = start;
        let mut err: Option<BadRecord> = None;
        self.store.journal_for_each(start, |k, v| {
            let key_seq = crate::store::key_u64(k);
            if key_seq != expected {
                err = Some(BadRecord {
                    seq: expected,
                    problem: Problem::Missing { found_key: key_seq },
                });
                return false;
            }
            let Some((stored_link, body)) = chain::split_stored(v) else {
                err = Some(BadRecord {
                    seq: expected,
                    problem: Problem::Truncated,
                });
                return false;
            };
            let body_seq = chain::body_seq(body);
            if body_seq != Some(expected) {
                err = Some(BadRecord {
                    seq: expected,
                    problem: Problem::WrongSeq { body_seq },
                });
                return false;
            }
            let l = chain::link(&prev, expected, body);
            if l != stored_link {
                err = Some(BadRecord {
                    seq: expected,
                    problem: Problem::LinkMismatch,
                });
                return false;
            }
            while let Some(c) = cp_iter.peek() {
                if c.seq != expected {
                    break;
                }
                if c.head_link() != Some(l) {
                    err = Some(BadRecord {
                        seq: expected,
                        problem: Problem::CheckpointMismatch { checkpoint: c.seq },
                    });
                    return false;
                }
                report.checkpoints_checked += 1;
                cp_iter.next();
            }
            prev = l;
            report.checked += 1;
            report.last_good = expected;
            expected += 1;
            if report.checked.is_multiple_of(65_536) {
                progress(report.checked, total);
            }
            true
        })?;
        progress(report.checked, total);
        if err.is_none() {
            // Checkpoints beyond the last record: the tail was cut off.
            if let Some(c) = cp_iter.next() {
                err = Some(BadRecord {
                    seq: report.last_good + 1,
                    problem: Problem::TruncatedTail {
                        checkpoint: c.seq,
                        last_present: report.last_good,
                    },
                });
            }
        }
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
        Ok(report)
    }
}

fn bad(seq: u64, from: u64, problem: Problem) -> VerifyReport {
    VerifyReport {
        from,
        checked: 0,
        last_good: 0,
        checkpoints_checked: 0,
        first_bad: Some(BadRecord { seq, problem }),
    }
}
