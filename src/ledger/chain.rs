//! The hash chain and signed checkpoints.
//!
//! A stored journal value is `link (32 bytes) ‖ body`, where `body` is the record's canonical
//! JSON ([`super::Record`]) and
//!
//! ```text
//! link(n) = SHA-256( link(n-1) ‖ seq(n) as u64 big-endian ‖ SHA-256(body(n)) ),   link(0) = 32 zero bytes
//! ```
//!
//! The body enters through its own digest so that an evidence bundle can prove one record is in
//! the chain by carrying only the digests of its neighbours, never their contents.
//!
//! A [`Checkpoint`] signs `(seq, link(seq), time)` with the hall's Ed25519 key. Checkpoints are
//! kept in the store and exported as a file; one held off the machine makes even a rewrite of the
//! whole store (with recomputed links) detectable.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A chain link (SHA-256).
pub type Link = [u8; 32];

/// The link before the first record.
pub const GENESIS: Link = [0u8; 32];

/// SHA-256 of a record body.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The link of record `seq` given the previous link and the body's digest.
pub fn link_from_digest(prev: &Link, seq: u64, digest: &[u8; 32]) -> Link {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(digest);
    h.finalize().into()
}

/// The link of record `seq` with `body`.
pub fn link(prev: &Link, seq: u64, body: &[u8]) -> Link {
    link_from_digest(prev, seq, &body_digest(body))
}

/// Splits a stored journal value into its link and body.
pub fn split_stored(v: &[u8]) -> Option<(Link, &[u8])> {
    if v.len() < 33 {
        return None;
    }
    let (l, b) = v.split_at(32);
    Some((l.try_into().ok()?, b))
}

/// Builds a stored journal value.
pub fn stored(link: &Link, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + body.len());
    v.extend_from_slice(link);
    v.extend_from_slice(body);
    v
}

/// The sequence number written at the start of a canonical body (`{"seq":N,`), read without
/// parsing the whole record, so that verification stays fast.
pub fn body_seq(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|c| !c.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// A signed statement: "the chain's record `seq` has link `head`", made at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number of the head record.
    pub seq: u64,
    /// Its link (hex).
    pub head: String,
    /// When it was signed.
    pub at: DateTime<Utc>,
    /// The signer's public key (hex), so a reader can tell which key to trust.
    pub key: String,
    /// Ed25519 signature (hex) over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes: a domain tag, then seq, head and time (microseconds), fixed width.
    pub fn message(seq: u64, head: &Link, at: DateTime<Utc>) -> Vec<u8> {
        let mut m = b"hallctl-ledger-checkpoint-v1".to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head);
        m.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        m
    }

    /// Signs a checkpoint.
    pub fn sign(key: &SigningKey, seq: u64, head: &Link, at: DateTime<Utc>) -> Checkpoint {
        // Round to microseconds: the signed message carries microseconds, the JSON must too.
        let at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
        let sig = key.sign(&Self::message(seq, head, at));
        Checkpoint {
            seq,
            head: hex::encode(head),
            at,
            key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// The head link as bytes.
    pub fn head_link(&self) -> Option<Link> {
        hex::decode(&self.head).ok()?.try_into().ok()
    }

    /// Checks the signature against `trusted` (the hall's public key).
    ///
    /// # Errors
    /// A description of what is wrong: another key, a malformed field, or a bad signature.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<(), String> {
        if self.key != hex::encode(trusted.as_bytes()) {
            return Err(format!(
                "checkpoint {} is signed by key {}, not by the trusted key {}",
                self.seq,
                short(&self.key),
                short(&hex::encode(trusted.as_bytes()))
            ));
        }
        let head = self
            .head_link()
            .ok_or_else(|| format!("checkpoint {} has a malformed head", self.seq))?;
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("checkpoint {} has a malformed signature", self.seq))?;
        trusted
            .verify(
                &Self::message(self.seq, &head, self.at),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| {
                format!(
                    "checkpoint {}: the signature does not verify (forged or altered)",
                    self.seq
                )
            })
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

/// Parses a hex public key.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let b: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_seq_reads_the_prefix() {
        assert_eq!(body_seq(br#"{"seq":42,"at":"x"}"#), Some(42));
        assert_eq!(body_seq(br#"{"at":"x"}"#), None);
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_an_altered_one_does_not() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let head = link(&GENESIS, 1, b"{}");
        let cp = Checkpoint::sign(&key, 1, &head, Utc::now());
        assert!(cp.verify(&key.verifying_key()).is_ok());
        let mut forged = cp.clone();
        forged.seq = 2;
        assert!(forged.verify(&key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(cp.verify(&other.verifying_key()).is_err());
    }

    #[test]
    fn links_depend_on_prev_seq_and_body() {
        let a = link(&GENESIS, 1, b"x");
        assert_ne!(a, link(&GENESIS, 2, b"x"));
        assert_ne!(a, link(&GENESIS, 1, b"y"));
        assert_ne!(a, link(&a, 1, b"x"));
    }
}
