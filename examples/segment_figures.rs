//! Figures of sealed ledger segments (issue 18): the bytes per record of realistic records (the
//! ledger benchmark's session cycles, in the ledger's canonical form) in a segment file, and the
//! rates of a full verify, of reading all records in order and of single-record reads (body
//! only, and with its link).
//!
//! ```text
//! cargo run --release --example segment_figures -- --records 10000
//! ```
//!
//! Nothing is asserted: the figures are printed, one per line.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ed25519_dalek::SigningKey;
use hallctl::ledger::Record;
use hallctl::ledger::chain::GENESIS;
use hallctl::store::segment::{SegmentReader, SegmentWriter};

#[path = "../benches/common/ledger_events.rs"]
mod ledger_events;

/// Runs `f` (which handles `per_call` records) repeatedly for at least a second: records/s.
fn rate(per_call: usize, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    let mut calls = 0usize;
    while t0.elapsed() < Duration::from_secs(1) {
        f();
        calls += 1;
    }
    (calls * per_call) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let mut records = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--records" {
            records = args.next().and_then(|v| v.parse().ok()).unwrap_or(records);
        }
    }
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 5, 6, 0, 0)
        .single()
        .expect("a valid start time");
    let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(records);
    let mut cycle = 0;
    while bodies.len() < records {
        for (at, actor, event) in ledger_events::cycle_events(cycle, t0) {
            if bodies.len() == records {
                break;
            }
            let seq = bodies.len() as u64 + 1;
            let record = Record {
                seq,
                at,
                actor,
                event,
            };
            bodies.push(serde_json::to_vec(&record).expect("a record encodes"));
        }
        cycle += 1;
    }
    let raw: usize = bodies.iter().map(Vec::len).sum();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("figures.seg");
    let key = SigningKey::from_bytes(&[7; 32]);
    let write = Instant::now();
    let mut w = SegmentWriter::create(&path, 1, GENESIS).expect("create");
    for (k, b) in bodies.iter().enumerate() {
        w.push(k as u64 + 1, b).expect("push");
    }
    let summary = w.finish(&key).expect("finish");
    let write_s = write.elapsed().as_secs_f64();

    let reader = SegmentReader::open(&path).expect("open");
    let public = key.verifying_key();
    let verify = rate(records, || {
        reader.verify(&public, &GENESIS).expect("verify");
    });
    let iterate = rate(records, || {
        assert_eq!(reader.records().count(), records);
    });
    let mut seq = 0u64;
    let gets = rate(1, || {
        seq = (seq + 7919) % records as u64;
        reader.get(seq + 1).expect("get").expect("present");
    });
    let linked = rate(1, || {
        seq = (seq + 7919) % records as u64;
        reader
            .get_linked(seq + 1)
            .expect("get_linked")
            .expect("present");
    });

    println!("records                 {records}");
    println!("canonical_bytes_per_rec {:.1}", raw as f64 / records as f64);
    println!("file_bytes              {}", summary.len);
    println!("blocks                  {}", summary.blocks);
    println!(
        "file_bytes_per_record   {:.2}",
        summary.len as f64 / records as f64
    );
    println!(
        "compression_ratio       {:.2}",
        raw as f64 / summary.len as f64
    );
    println!("write_records_per_s     {:.0}", records as f64 / write_s);
    println!("verify_records_per_s    {verify:.0}");
    println!("iterate_records_per_s   {iterate:.0}");
    println!("get_per_s               {gets:.0}");
    println!("get_linked_per_s        {linked:.0}");
}
