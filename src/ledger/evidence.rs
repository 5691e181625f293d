//! Signed evidence bundles: the records of a trace, the chain links that tie each of them to a
//! signed checkpoint, and the public key, in one JSON file that can be checked offline, years
//! later, without the ledger.
//!
//! For each record the bundle carries a *segment*: the link before it and the body digests of
//! every record from it up to the next checkpoint. Recomputing the links along the segment must
//! land on the checkpoint's signed head, which proves the record is in the signed chain. Only
//! digests of the neighbouring records travel, never their contents.

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::chain::{self, Checkpoint};
use super::event::{Record, Serial};
use super::{Ledger, LedgerError};

/// Format tag of a bundle.
pub const FORMAT: &str = "hallctl-evidence-v1";

/// One record in a bundle, as stored (canonical body) and with its link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleRecord {
    /// Sequence number.
    pub seq: u64,
    /// The canonical body, exactly as hashed.
    pub body: String,
    /// Its link (hex).
    pub link: String,
}

/// A run of the chain from the link before `first` to a signed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    /// The first record of the run.
    pub first: u64,
    /// The link of record `first - 1` (hex).
    pub prev: String,
    /// Body digests (hex) of records `first ..= checkpoint.seq`.
    pub digests: Vec<String>,
    /// The checkpoint that ends the run.
    pub checkpoint: Checkpoint,
}

/// An evidence bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceBundle {
    /// [`FORMAT`].
    pub format: String,
    /// The serial traced.
    pub serial: Serial,
    /// When the bundle was made.
    pub generated_at: DateTime<Utc>,
    /// The hall's checkpoint public key (hex).
    pub public_key: String,
    /// The records.
    pub records: Vec<BundleRecord>,
    /// The runs tying them to signed checkpoints.
    pub segments: Vec<Segment>,
}

/// What an offline check established.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleCheck {
    /// The serial.
    pub serial: Serial,
    /// Records proven.
    pub records: usize,
    /// Checkpoints whose signatures verified.
    pub checkpoints: Vec<u64>,
    /// The decoded records, for display.
    pub decoded: Vec<Record>,
}

fn bad(msg: impl Into<String>) -> String {
    msg.into()
}

impl Ledger {
    /// Builds the evidence bundle of a serial. Signs a fresh checkpoint first when the newest
    /// records are not covered by one yet.
    ///
    /// # Errors
    /// Storage errors; `Ok(None)` for an unknown serial.
    pub fn evidence(&self, serial: &Serial) -> Result<Option<EvidenceBundle>, LedgerError> {
        let Some(trace) = self.trace(serial)? else {
            return Ok(None);
        };
        self.checkpoint_now()?;
        let mut seqs: Vec<u64> = trace.steps.iter().map(|s| s.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut records = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        for &seq in &seqs {
            let v = self
                .store
                .journal_get(seq)?
                .ok_or_else(|| LedgerError::Corrupt(format!("record {seq} is missing")))?;
            let (link, body) = chain::split_stored(&v)
                .ok_or_else(|| LedgerError::Corrupt(format!("record {seq} is truncated")))?;
            records.push(BundleRecord {
                seq,
                body: String::from_utf8_lossy(body).into_owned(),
                link: hex::encode(link),
            });
            if segments.last().is_some_and(|s| s.checkpoint.seq >= seq) {
                continue;
            }
            let cp = self
                .store
                .checkpoint_at_or_after(seq)?
                .map(|(_, v)| super::decode::<Checkpoint>(&v))
                .transpose()?
                .ok_or_else(|| {
                    LedgerError::Corrupt(format!("no checkpoint covers record {seq}"))
                })?;
            let prev = if seq == 1 {
                chain::GENESIS
            } else {
                let v = self.store.journal_get(seq - 1)?.ok_or_else(|| {
                    LedgerError::Corrupt(format!("record {} is missing", seq - 1))
                })?;
                chain::split_stored(&v)
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!("record {} is truncated", seq - 1))
                    })?
                    .0
            };
            let mut digests = Vec::new();
            let mut failure = None;
            self.store.journal_for_each(seq, |k, v| {
                let s = crate::store::key_u64(k);
                if s > cp.seq {
                    return false;
                }
                match chain::split_stored(v) {
                    Some((_, b)) => digests.push(hex::encode(chain::body_digest(b))),
                    None => {
                        failure = Some(s);
                        return false;
                    }
                }
                true
            })?;
            if let Some(s) = failure {
                return Err(LedgerError::Corrupt(format!("record {s} is truncated")));
            }
            segments.push(Segment {
                first: seq,
                prev: hex::encode(prev),
                digests,
                checkpoint: cp,
            });
        }
        Ok(Some(EvidenceBundle {
            format: FORMAT.into(),
            serial: serial.clone(),
            generated_at: Utc::now(),
            public_key: hex::encode(self.public_key().as_bytes()),
            records,
            segments,
        }))
    }
}

impl EvidenceBundle {
    /// Checks the bundle offline: every record's digest and link, every segment's run to its
    /// checkpoint, and every checkpoint's signature against `trusted` (or, when `None`, the key
    /// in the bundle — then compare that key with the hall's published one).
    ///
    /// # Errors
    /// What is wrong, naming the record or checkpoint.
    pub fn check(&self, trusted: Option<&VerifyingKey>) -> Result<BundleCheck, String> {
        if self.format != FORMAT {
            return Err(bad(format!("unknown bundle format {:?}", self.format)));
        }
        let own = chain::parse_public_key(&self.public_key)
            .ok_or_else(|| bad("the bundle's public key is malformed"))?;
        let key = trusted.unwrap_or(&own);
        let mut checkpoints = Vec::new();
        let mut decoded = Vec::new();
        for r in &self.records {
            let seg = self
                .segments
                .iter()
                .find(|s| s.first <= r.seq && r.seq <= s.checkpoint.seq)
                .ok_or_else(|| bad(format!("record {}: no segment covers it", r.seq)))?;
            let digest = hex::encode(chain::body_digest(r.body.as_bytes()));
            let i = (r.seq - seg.first) as usize;
            if seg.digests.get(i) != Some(&digest) {
                return Err(bad(format!(
                    "record {}: its content does not match the chain (altered)",
                    r.seq
                )));
            }
            let rec: Record = serde_json::from_str(&r.body)
                .map_err(|e| bad(format!("record {}: unreadable: {e}", r.seq)))?;
            if rec.seq != r.seq {
                return Err(bad(format!("record {}: its body says {}", r.seq, rec.seq)));
            }
            decoded.push(rec);
        }
        for seg in &self.segments {
            let mut l: chain::Link = hex::decode(&seg.prev)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad(format!("segment at {}: malformed link", seg.first)))?;
            if seg.first + seg.digests.len() as u64 != seg.checkpoint.seq + 1 {
                return Err(bad(format!(
                    "segment at {}: it does not reach checkpoint {}",
                    seg.first, seg.checkpoint.seq
                )));
            }
            for (i, d) in seg.digests.iter().enumerate() {
                let seq = seg.first + i as u64;
                let d: [u8; 32] = hex::decode(d)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad(format!("record {seq}: malformed digest")))?;
                l = chain::link_from_digest(&l, seq, &d);
                if let Some(r) = self.records.iter().find(|r| r.seq == seq)
                    && r.link != hex::encode(l)
                {
                    return Err(bad(format!(
                        "record {seq}: its link does not match the chain"
                    )));
                }
            }
            if seg.checkpoint.head_link() != Some(l) {
                return Err(bad(format!(
                    "segment at {}: the chain does not reach the head signed by checkpoint {}",
                    seg.first, seg.checkpoint.seq
                )));
            }
            seg.checkpoint.verify(key)?;
            checkpoints.push(seg.checkpoint.seq);
        }
        if self.records.is_empty() {
            return Err(bad("the bundle holds no records"));
        }
        Ok(BundleCheck {
            serial: self.serial.clone(),
            records: self.records.len(),
            checkpoints,
            decoded,
        })
    }
}
