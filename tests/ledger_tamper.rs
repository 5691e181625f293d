//! Tamper evidence: an attacker with write access to the sled files edits, deletes, reorders,
//! inserts or truncates records, or forges a checkpoint; `hallctl audit verify` must fail and
//! name the first bad sequence number.

use std::path::Path;
use std::process::Command;

use chrono::{TimeZone, Utc};
use hallctl::ledger::chain;
use hallctl::ledger::{ItemKind, Ledger, LedgerConfig, LedgerEvent, LotId, SerialRange};
use hallctl_jobs::job::OperatorId;

/// 20 records, a checkpoint every 5 (at 5, 10, 15, 20).
fn ledger_with_records(dir: &Path) {
    let l = Ledger::open(
        dir,
        LedgerConfig {
            checkpoint_every: 5,
            ..LedgerConfig::default()
        },
    )
    .expect("open");
    for n in 0..20u64 {
        l.append_at(
            Utc.with_ymd_and_hms(2026, 11, 21, 22, 0, 0)
                .single()
                .expect("time")
                + chrono::Duration::seconds(n as i64),
            OperatorId::new("S"),
            LedgerEvent::LotReceived {
                lot: LotId::new(format!("R-{n}")),
                kind: ItemKind::Patch,
                supplier: "DLR".into(),
                range: SerialRange {
                    prefix: format!("{n}-"),
                    first: 1,
                    last: 2,
                    width: 3,
                },
            },
        )
        .expect("append");
    }
    assert_eq!(l.checkpoints().expect("checkpoints").len(), 4);
}

fn verify(dir: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args(["audit", "verify"])
        .args(extra)
        .env("HALLCTL_LEDGER", dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run hallctl audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tamper(dir: &Path, f: impl FnOnce(&Ledger)) {
    let l = Ledger::open(dir, LedgerConfig::default()).expect("open");
    f(&l);
}

fn raw(l: &Ledger, seq: u64) -> Vec<u8> {
    l.store().journal_get(seq).expect("get").expect("present")
}

fn assert_fails_at(dir: &Path, seq: u64, what: &str) {
    let (ok, text) = verify(dir, &[]);
    assert!(!ok, "verify passed on a tampered ledger: {text}");
    assert!(
        text.contains(&format!("at record {seq}:")),
        "expected the first bad record to be {seq}: {text}"
    );
    assert!(text.contains(what), "expected {what:?} in: {text}");
}

#[test]
fn an_untouched_ledger_verifies() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    let (ok, text) = verify(d.path(), &[]);
    assert!(ok, "{text}");
    assert!(text.contains("records 1–20 verified"), "{text}");
    let (ok, text) = verify(d.path(), &["--since-checkpoint"]);
    assert!(ok, "{text}");
}

#[test]
fn an_edited_record_is_named() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        let v = raw(l, 7);
        let (link, body) = chain::split_stored(&v).expect("split");
        let edited = String::from_utf8(body.to_vec())
            .expect("utf8")
            .replace("\"S\"", "\"X\"");
        l.store()
            .tamper_journal_put(7, &chain::stored(&link, edited.as_bytes()))
            .expect("put");
    });
    assert_fails_at(d.path(), 7, "does not match its content");
}

#[test]
fn a_deleted_record_is_named() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        l.store().tamper_journal_remove(12).expect("remove")
    });
    assert_fails_at(d.path(), 12, "record is missing");
}

#[test]
fn reordered_records_are_named() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        let (a, b) = (raw(l, 8), raw(l, 9));
        l.store().tamper_journal_put(8, &b).expect("put");
        l.store().tamper_journal_put(9, &a).expect("put");
    });
    assert_fails_at(d.path(), 8, "says it is record 9");
}

#[test]
fn an_inserted_record_is_named() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    // A forged record slipped in at 11 with a correct link from 10; the originals shift up.
    tamper(d.path(), |l| {
        let originals: Vec<Vec<u8>> = (11..=20).map(|s| raw(l, s)).collect();
        for (i, v) in originals.iter().enumerate() {
            l.store().tamper_journal_put(12 + i as u64, v).expect("put");
        }
        let prev = chain::split_stored(&raw(l, 10)).expect("split").0;
        let body = br#"{"seq":11,"at":"2026-11-21T22:30:00Z","actor":"S","event":{"type":"reversal","reverses":3,"reason":"forged"}}"#;
        let link = chain::link(&prev, 11, body);
        l.store()
            .tamper_journal_put(11, &chain::stored(&link, body))
            .expect("put");
    });
    assert_fails_at(d.path(), 12, "says it is record 11");
}

#[test]
fn a_rewritten_history_with_recomputed_links_is_caught_by_the_signed_checkpoint() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    // The attacker edits record 3 and recomputes every later link: only the signature on the
    // checkpoint at 5 (which they cannot forge) gives them away.
    tamper(d.path(), |l| {
        let mut prev = chain::split_stored(&raw(l, 2)).expect("split").0;
        for seq in 3..=20 {
            let v = raw(l, seq);
            let body = chain::split_stored(&v).expect("split").1.to_vec();
            let body = if seq == 3 {
                String::from_utf8(body)
                    .expect("utf8")
                    .replace("\"DLR\"", "\"EVIL\"")
                    .into_bytes()
            } else {
                body
            };
            let link = chain::link(&prev, seq, &body);
            l.store()
                .tamper_journal_put(seq, &chain::stored(&link, &body))
                .expect("put");
            prev = link;
        }
    });
    assert_fails_at(
        d.path(),
        5,
        "signed checkpoint 5 vouches for a different chain head",
    );
}

#[test]
fn a_truncated_tail_is_detected_against_the_last_checkpoint() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        for seq in 18..=20 {
            l.store().tamper_journal_remove(seq).expect("remove");
        }
    });
    assert_fails_at(d.path(), 18, "records were removed from the tail");
    let (ok, text) = verify(d.path(), &["--since-checkpoint"]);
    assert!(!ok && text.contains("removed from the tail"), "{text}");
}

#[test]
fn a_truncated_tail_with_its_checkpoints_removed_is_caught_by_the_exported_checkpoints() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    let exported = d.path().join("checkpoints.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args(["audit", "export-checkpoints", "-o"])
        .arg(&exported)
        .env("HALLCTL_LEDGER", d.path())
        .output()
        .expect("export");
    assert!(out.status.success());
    tamper(d.path(), |l| {
        for seq in 16..=20 {
            l.store().tamper_journal_remove(seq).expect("remove");
        }
        l.store()
            .tamper_checkpoint_put(20, None)
            .expect("remove cp");
    });
    // The store alone now looks consistent...
    let (ok, text) = verify(d.path(), &[]);
    assert!(ok, "{text}");
    // ...but not against the checkpoints kept off the machine.
    let (ok, text) = verify(
        d.path(),
        &["--checkpoints", exported.to_str().expect("path")],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("at record 16:") && text.contains("removed from the tail"),
        "{text}"
    );
}

#[test]
fn a_forged_checkpoint_signature_is_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        let (_, v) = l
            .store()
            .checkpoint_at_or_after(10)
            .expect("cp")
            .expect("present");
        let mut cp: chain::Checkpoint = serde_json::from_slice(&v).expect("decode");
        // Same key field, signature by someone else's key.
        let forger = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
        let head = cp.head_link().expect("head");
        let fake = chain::Checkpoint::sign(&forger, cp.seq, &head, cp.at);
        cp.signature = fake.signature;
        l.store()
            .tamper_checkpoint_put(10, Some(&serde_json::to_vec(&cp).expect("encode")))
            .expect("put");
    });
    assert_fails_at(d.path(), 10, "signature does not verify");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    tamper(d.path(), |l| {
        let forger = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
        let head = chain::split_stored(&raw(l, 20)).expect("split").0;
        let cp = chain::Checkpoint::sign(&forger, 20, &head, Utc::now());
        l.store()
            .tamper_checkpoint_put(20, Some(&serde_json::to_vec(&cp).expect("encode")))
            .expect("put");
    });
    assert_fails_at(d.path(), 20, "not by the trusted key");
}

#[test]
fn a_tampered_evidence_bundle_fails_its_offline_check() {
    let d = tempfile::tempdir().expect("tempdir");
    ledger_with_records(d.path());
    let bundle = d.path().join("bundle.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hallctl"))
            .args(args)
            .env("HALLCTL_LEDGER", d.path())
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run")
    };
    let b = bundle.to_str().expect("path");
    let out = run(&["audit", "evidence", "7-001", "-o", b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pubkey = d.path().join("checkpoint.pub");
    let out = run(&[
        "audit",
        "check-bundle",
        b,
        "--pubkey",
        pubkey.to_str().expect("p"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&bundle).expect("read");
    std::fs::write(&bundle, text.replace("DLR", "EVIL")).expect("write");
    let out = run(&["audit", "check-bundle", b]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match the chain"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
