//! Ledger figures (BRIEF §7), printed as a table:
//! - durable events/s, one per commit and grouped, side by side with SQLite (WAL,
//!   `synchronous=FULL`) in the same run;
//! - trace latency (p50/p99) of one patch among N events;
//! - full verification rate of N chained records.
//!
//! `cargo bench --bench ledger -- --events 10000000` (default 10 million; `--events 200000` for
//! a quick run). `--dir PATH` puts the data elsewhere than a temp dir (it needs about 1 KB per
//! event); `--secs S` sets each durability measurement's length.
//!
//! `--json` prints one JSON object on stdout (the table goes to stderr) with the figures of
//! issue 18: `events`, `bytes_per_event`, `open_s`, `first_trace_p99_ms`, `trace_p99_ms`,
//! `rss_mb`, `verify_incremental_s`, `verify_full_records_per_s`, `appends_single_per_s`,
//! `appends_grouped_per_s`, `sqlite_single_per_s`, `sqlite_grouped_per_s` (and a few more); a
//! figure this run did not measure is `null`. `open_s`, `first_trace_p99_ms` (back-to-back
//! traces of random patches from the moment the open returns, for 1 s) and `rss_mb` (that
//! process's peak resident memory, VmHWM, MiB) come from a fresh process: the benchmark runs
//! itself again with `--measure DIR`. `trace_p99_ms` is measured afterwards in the benchmark's
//! own freshly opened handle, without `Ledger::warm` (with `--json` the warm-up is not run).
//! `verify_incremental_s`: after the full verify, 1 % more events (at least one session pair,
//! at most 100,000) are appended, then an incremental verify runs from the verified mark.
//! `--settle DIR` opens a kept ledger and waits until its sealer has nothing left to seal or
//! merge (as after an upgrade from a release that did not merge), printing how long it took.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use hallctl::ledger::verify::{VerifyMode, VerifyOptions};
use hallctl::ledger::{ItemKind, Ledger, LedgerConfig, LedgerEvent, LotId, Serial, SerialRange};

// The events of the load, shared with the segment figures (examples/segment_figures.rs).
#[path = "common/ledger_events.rs"]
mod ledger_events;
use ledger_events::{PER_SESSION, cycle_events, op};

// The same allocator as the `hallctl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    events: u64,
    dir: Option<PathBuf>,
    secs: f64,
    threads: usize,
    /// Also verify inside the loading process (slow: sled's in-memory delta chains).
    warm_verify: bool,
    /// Stop loading when the process's resident memory passes this many GiB.
    max_rss_gb: f64,
    /// Close and reopen the loading store whenever it passes this many GiB (0: never).
    reopen_gb: f64,
    /// Session pairs (about 205 events each) per import batch, i.e. per atomic write and fsync.
    batch_cycles: u64,
    /// Keep the data directory at the end (its path is printed).
    keep: bool,
    /// Count the live keys and values per keyspace at the end (a full scan of the store, which
    /// sled caches: its memory grows with the store).
    space_stats: bool,
    /// Measure traces and verification on a big ledger kept by an earlier `--keep` run (the
    /// `big` directory), skipping the durability runs and the load.
    reuse: Option<PathBuf>,
    /// sled's page cache of the measuring process, GiB (default 6): to answer every trace
    /// from memory it must hold the item states (`Ledger::warm` reports their size).
    cache_gb: f64,
    /// One JSON object on stdout; the table goes to stderr.
    json: bool,
    /// The fresh process's part (internal): open the ledger in this directory, trace for 1 s,
    /// print its own JSON.
    measure: Option<PathBuf>,
    /// `--settle DIR`: opens the kept ledger, waits until its sealer has nothing due (sealing
    /// and merging, as after an upgrade from a release that did not merge), prints JSON.
    settle: Option<PathBuf>,
    /// Records per sealed window (`[server] ledger_seal_window`); the ledger's default when
    /// not given.
    seal_window: u64,
}

fn args() -> Args {
    let mut a = Args {
        events: 10_000_000,
        dir: None,
        secs: 3.0,
        threads: 16,
        warm_verify: false,
        max_rss_gb: 14.0,
        reopen_gb: 0.0,
        batch_cycles: 10,
        keep: false,
        space_stats: false,
        reuse: None,
        cache_gb: CACHE as f64 / (1u64 << 30) as f64,
        json: false,
        measure: None,
        settle: None,
        seal_window: LedgerConfig::default().seal_window,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.events),
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.secs),
            "--threads" => a.threads = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.threads),
            "--warm-verify" => a.warm_verify = true,
            "--keep" => a.keep = true,
            "--space-stats" => a.space_stats = true,
            "--reuse" => a.reuse = it.next().map(PathBuf::from),
            "--json" => a.json = true,
            "--measure" => a.measure = it.next().map(PathBuf::from),
            "--settle" => a.settle = it.next().map(PathBuf::from),
            "--seal-window" => {
                a.seal_window = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.seal_window)
            }
            "--cache-gb" => {
                a.cache_gb = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.cache_gb)
            }
            "--reopen-gb" => {
                a.reopen_gb = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.reopen_gb)
            }
            "--max-rss-gb" => {
                a.max_rss_gb = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.max_rss_gb)
            }
            "--batch-cycles" => {
                a.batch_cycles = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.batch_cycles)
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// `--json`: the table goes to stderr, stdout carries only the JSON object.
static JSON: AtomicBool = AtomicBool::new(false);

/// A line of the human table: stdout, or stderr with `--json`.
macro_rules! table {
    ($($t:tt)*) => {
        if JSON.load(Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}

/// A small, realistic record for the durability runs: a one-patch lot receipt.
fn small_event(tag: &str, n: u64) -> LedgerEvent {
    LedgerEvent::LotReceived {
        lot: LotId::new(format!("{tag}-{n}")),
        kind: ItemKind::Patch,
        supplier: "DLR".into(),
        range: SerialRange {
            prefix: format!("{tag}.{n}-"),
            first: 1,
            last: 1,
            width: 7,
        },
    }
}

/// Durable appends for `secs` from `threads` threads; returns events/s.
fn ledger_durable(dir: &Path, threads: usize, secs: f64, tag: &str) -> f64 {
    let ledger = Arc::new(Ledger::open(dir, LedgerConfig::default()).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (l, stop, count) = (ledger.clone(), stop.clone(), count.clone());
            let tag = format!("{tag}{t}");
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    l.append(op("S"), small_event(&tag, n)).expect("append");
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().expect("join");
    }
    count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// The same workload on SQLite in WAL mode with synchronous=FULL: one row per transaction,
/// each thread with its own connection (SQLite serialises writers; each commit syncs the WAL).
fn sqlite_durable(path: &Path, threads: usize, secs: f64) -> f64 {
    {
        let c = rusqlite::Connection::open(path).expect("sqlite open");
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, link BLOB NOT NULL);",
        )
        .expect("sqlite schema");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let path = path.to_path_buf();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, count, path) = (stop.clone(), count.clone(), path.clone());
            std::thread::spawn(move || {
                let c = rusqlite::Connection::open(&path).expect("sqlite open");
                c.execute_batch("PRAGMA synchronous=FULL;").expect("pragma");
                c.busy_timeout(Duration::from_secs(30)).expect("busy");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = serde_json::to_vec(&small_event(&format!("Q{t}"), n)).expect("json");
                    let link = hallctl::ledger::chain::body_digest(&body);
                    c.execute(
                        "INSERT INTO journal (body, link) VALUES (?1, ?2)",
                        rusqlite::params![body, link.to_vec()],
                    )
                    .expect("insert");
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().expect("join");
    }
    count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// sled page cache for the big ledger: 6 GiB, so a 10-million-event store is read from memory.
const CACHE: u64 = 6 << 30;

/// A `/proc/self/status` figure (kB) in bytes.
fn status_bytes(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}

/// Nanoseconds this thread has waited on a run queue (for a CPU) since it started.
fn run_queue_wait_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Trace latencies of one measurement (ms, sorted).
struct Traces {
    lat: Vec<f64>,
    on_cpu: Vec<f64>,
    paced: Vec<f64>,
    waits: u32,
}

/// Trace latency (phase 3): random applied patches, 200 warm-up traces not counted, then 4,000
/// traces in blocks of 200 alternating two ways of asking: back to back (a CPU-bound loop,
/// which a busy scheduler preempts like any batch job) and paced (one every 2 ms, as an
/// auditor or the supervisor's screen asks: the thread sleeps between traces). Besides the
/// latency, the time the thread spent waiting for a CPU during each trace
/// (/proc/thread-self/schedstat): on a shared 2-core machine much of the tail is that wait.
/// `seed` picks the patches (each measurement its own, so a later one does not find the pages an
/// earlier one read).
fn measure_traces(ledger: &Ledger, passports: u64, seed: u64) -> Traces {
    let mut lat = Vec::new();
    let mut lat_on_cpu = Vec::new();
    let mut lat_paced = Vec::new();
    let mut waits = 0u32;
    let mut x = seed;
    for i in 0..4200 {
        let serial = random_patch(&mut x, passports);
        let paced = i >= 200 && (i / 200) % 2 == 0;
        if paced {
            std::thread::sleep(Duration::from_millis(2));
        }
        let w0 = run_queue_wait_ns();
        let t = Instant::now();
        let tr = ledger.trace(&serial).expect("trace").expect("known");
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        let waited = run_queue_wait_ns().saturating_sub(w0) as f64 / 1e6;
        if paced {
            lat_paced.push(elapsed);
        } else if i >= 200 {
            lat.push(elapsed);
            lat_on_cpu.push((elapsed - waited).max(0.0));
            waits += u32::from(waited > 0.0);
        }
        assert!(
            tr.steps.len() >= 8,
            "a full trace has lot, session, issue, print, apply, QC, dispatch"
        );
    }
    lat.sort_by(f64::total_cmp);
    lat_on_cpu.sort_by(f64::total_cmp);
    lat_paced.sort_by(f64::total_cmp);
    Traces {
        lat,
        on_cpu: lat_on_cpu,
        paced: lat_paced,
        waits,
    }
}

/// The next random applied patch among `passports` (xorshift over `x`).
fn random_patch(x: &mut u64, passports: u64) -> Serial {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    Serial::new(format!("{:09}", *x % passports))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The store's bytes by part: sled's own files, the sealed files (`segments/`, their index and
/// state tables), the write-ahead log's two files, and anything else; and their total.
fn bytes_by_part(path: &Path) -> (u64, serde_json::Value) {
    let (mut sled, mut sealed, mut log, mut other) = (0u64, 0u64, 0u64, 0u64);
    fn walk(p: &Path, sealed_dir: bool, f: &mut dyn FnMut(&Path, bool, u64)) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            let inside = sealed_dir || e.file_name() == "segments";
            if m.is_dir() {
                walk(&e.path(), inside, f);
            } else {
                f(&e.path(), inside, m.len());
            }
        }
    }
    walk(path, false, &mut |p, in_segments, len| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if in_segments {
            sealed += len;
        } else if name.starts_with("wal-") {
            log += len;
        } else if name == "db" || p.components().any(|c| c.as_os_str() == "blobs") {
            sled += len;
        } else {
            other += len;
        }
    });
    (
        sled + sealed + log + other,
        serde_json::json!({ "sled": sled, "sealed": sealed, "log": log, "other": other }),
    )
}

/// Durable appends per second: hallctl and SQLite, one writer and `--threads` writers.
#[derive(Clone, Copy)]
struct Durable {
    single: f64,
    grouped: f64,
    sqlite_single: f64,
    sqlite_grouped: f64,
}

/// What steps 1 and 2 made: the big ledger's directory, events, load time and passports, the
/// warm verification (when asked for) and the durability figures.
struct Loaded {
    dir: PathBuf,
    events: u64,
    load_s: f64,
    passports: u64,
    warm: Option<(u64, f64)>,
    durable: Option<Durable>,
}

/// The load's first record time.
fn load_t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("t0")
}

/// Steps 1 and 2: the durability runs and the load of the big ledger.
fn durable_and_load(a: &Args, base: &Path) -> Loaded {
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    // 1. Durability, side by side with SQLite.
    let mut rows: Vec<(String, f64)> = Vec::new();
    rows.push((
        "hallctl ledger (sled + write-ahead log), 1 appender (one per commit)".into(),
        ledger_durable(&base.join("d1"), 1, a.secs, "A"),
    ));
    rows.push((
        format!(
            "hallctl ledger (sled + write-ahead log), {} appenders (group commit)",
            a.threads
        ),
        ledger_durable(&base.join("d2"), a.threads, a.secs, "B"),
    ));
    rows.push((
        "SQLite WAL synchronous=FULL, 1 writer (one per commit)".into(),
        sqlite_durable(&base.join("s1.db"), 1, a.secs),
    ));
    rows.push((
        format!("SQLite WAL synchronous=FULL, {} writers", a.threads),
        sqlite_durable(&base.join("s2.db"), a.threads, a.secs),
    ));
    table!("| durable appends ({} s each) | events/s |", a.secs);
    table!("|---|---:|");
    for (name, r) in &rows {
        table!("| {name} | {r:.0} |");
    }
    table!();
    let durable = Durable {
        single: rows[0].1,
        grouped: rows[1].1,
        sqlite_single: rows[2].1,
        sqlite_grouped: rows[3].1,
    };

    // 2. Load N events of a realistic line (print, laminate, QC, dispatch + custody).
    let dir = base.join("big");
    let open_loader = || {
        Ledger::open(
            &dir,
            LedgerConfig {
                checkpoint_every: 10_000,
                cache_bytes: CACHE,
                seal_window: a.seal_window,
                ..LedgerConfig::default()
            },
        )
        .expect("open")
    };
    let mut ledger = open_loader();
    let t0 = load_t0();
    let load = Instant::now();
    let mut c = 0u64;
    let mut last_report = Instant::now();
    let target = a.events;
    let cycles = a.batch_cycles;
    // The import path: every event checked, hashed and indexed as in `append`, ~2,000 events
    // per atomic batch and fsync, the next batch checked and written while the last one syncs.
    // sled 0.34 holds far more memory than its cache setting while it writes (a 4 M run reached
    // the machine's 24 GiB at ~2 M events): stop loading, and report the size reached, before the
    // machine runs out.
    // With `--reopen-gb R`, the loader closes and reopens the store whenever it passes R GiB
    // (sled frees its write-side memory on close), up to `--max-rss-gb`.
    let rss_limit = if a.reopen_gb > 0.0 {
        a.reopen_gb
    } else {
        a.max_rss_gb
    } * (1 << 30) as f64;
    let mut acked = 0u64;
    let mut reopens = 0u32;
    loop {
        let stop = AtomicBool::new(false);
        let batches = std::iter::from_fn(|| {
            (ledger.head() < target && !stop.load(Ordering::Relaxed)).then(|| {
                let mut batch = Vec::new();
                for _ in 0..cycles {
                    batch.extend(cycle_events(c, t0));
                    c += 1;
                }
                batch
            })
        });
        ledger
            .import(batches, |r| {
                acked = r.last().map_or(acked, |r| r.seq);
                let rss = status_bytes("VmRSS:");
                if rss > rss_limit && !stop.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "  stopping the load at {acked} events: resident memory {:.1} GiB",
                        rss / (1u64 << 30) as f64
                    );
                }
                if last_report.elapsed() > Duration::from_secs(30) {
                    eprintln!(
                        "  loaded {acked} events ({:.0}/s), resident {:.1} GiB, load average {}",
                        acked as f64 / load.elapsed().as_secs_f64(),
                        rss / (1u64 << 30) as f64,
                        loadavg()
                    );
                    last_report = Instant::now();
                }
            })
            .expect("load");
        if ledger.head() >= target || a.reopen_gb <= 0.0 {
            break;
        }
        let r0 = Instant::now();
        drop(ledger);
        ledger = open_loader();
        reopens += 1;
        let rss = status_bytes("VmRSS:");
        eprintln!(
            "  reopened the store at {} events in {:.1} s: resident {:.1} GiB",
            ledger.head(),
            r0.elapsed().as_secs_f64(),
            rss / (1u64 << 30) as f64
        );
        if rss > a.max_rss_gb * (1u64 << 30) as f64 || rss > rss_limit * 0.8 {
            eprintln!("  memory not released by the reopen: stopping the load");
            break;
        }
    }
    eprintln!("  load done: {} events, {reopens} reopen(s)", ledger.head());
    let loaded = ledger.head();
    ledger.checkpoint_now().expect("checkpoint");
    // The load runs hundreds of times faster than a hall: the sealer, one file at a time
    // beside it, falls behind. A hall's sealer keeps up (a window of 20,000 records is an hour
    // of a peak hall, sealed in seconds), so the load waits for it, and its time counts.
    let sealed_through = |l: &Ledger| l.store().segment_files().last().map_or(0, |f| f.last);
    if a.seal_window > 0 {
        let mut last_note = Instant::now();
        // Until nothing is due: more than a window outside files is sealed, and sealed files
        // due for a merge are merged.
        while loaded.saturating_sub(sealed_through(&ledger)) > a.seal_window
            || ledger.store().merge_pending()
        {
            if last_note.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "  waiting for the sealer: sealed through {} of {loaded}, {} files",
                    sealed_through(&ledger),
                    ledger.store().segment_files().len()
                );
                last_note = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let load_s = load.elapsed().as_secs_f64();
    let passports = c * PER_SESSION;
    // Verification with the loader's warm handle (optional: slow), then with a fresh one.
    let warm = if a.warm_verify {
        let v0 = Instant::now();
        let warm = ledger
            .verify(&VerifyOptions::default(), |_, _| {})
            .expect("verify");
        assert!(warm.ok(), "{:?}", warm.first_bad);
        Some((warm.checked, v0.elapsed().as_secs_f64()))
    } else {
        None
    };
    drop(ledger);
    std::fs::write(dir.join("bench-passports"), passports.to_string()).expect("write");
    Loaded {
        dir,
        events: loaded,
        load_s,
        passports,
        warm,
        durable: Some(durable),
    }
}

/// The figures of the fresh process (`--measure`).
struct Fresh {
    open_s: f64,
    first_trace_p50_ms: Option<f64>,
    first_trace_p99_ms: Option<f64>,
    traces: u64,
    rss_mb: f64,
}

/// Opens a kept ledger as the controller would (the default configuration, with the
/// benchmark's cache and window).
fn open_kept(dir: &Path, a: &Args) -> Ledger {
    Ledger::open(
        dir,
        LedgerConfig {
            cache_bytes: (a.cache_gb * (1u64 << 30) as f64) as u64,
            seal_window: a.seal_window,
            ..LedgerConfig::default()
        },
    )
    .expect("open")
}

/// `--measure DIR`, the fresh process: opens the ledger, traces random patches back to back
/// from the moment the open returns, for 1 s, and prints its figures as one JSON line.
fn measure_fresh(dir: &Path, a: &Args) {
    let passports: u64 = std::fs::read_to_string(dir.join("bench-passports"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("bench-passports in the ledger directory");
    let o0 = Instant::now();
    let ledger = open_kept(dir, a);
    let open_s = o0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut x: u64 = 0xD1B5_4A32_D192_ED03;
    while t0.elapsed() < Duration::from_secs(1) {
        let serial = random_patch(&mut x, passports);
        let t = Instant::now();
        let tr = ledger.trace(&serial).expect("trace").expect("known");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(tr.steps.len() >= 8, "a full trace");
    }
    lat.sort_by(f64::total_cmp);
    let p = |q| (!lat.is_empty()).then(|| percentile(&lat, q));
    println!(
        "{}",
        serde_json::json!({
            "open_s": open_s,
            "first_trace_p50_ms": p(0.5),
            "first_trace_p99_ms": p(0.99),
            "traces": lat.len(),
            "rss_mb": status_bytes("VmHWM:") / (1u64 << 20) as f64,
        })
    );
}

/// Runs `measure_fresh` in a new process of this benchmark (nothing of the ledger in its memory)
/// and reads its figures.
fn fresh_process(dir: &Path, a: &Args) -> Fresh {
    let exe = std::env::current_exe().expect("the benchmark's own executable");
    let out = std::process::Command::new(exe)
        .arg("--measure")
        .arg(dir)
        .args(["--cache-gb", &a.cache_gb.to_string()])
        .args(["--max-rss-gb", &a.max_rss_gb.to_string()])
        .args(["--seal-window", &a.seal_window.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start the measuring process");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the measuring process failed ({}): {text}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("the measuring process printed {text:?}: {e}"));
    let num = |k: &str| v[k].as_f64();
    Fresh {
        open_s: num("open_s").expect("open_s"),
        first_trace_p50_ms: num("first_trace_p50_ms"),
        first_trace_p99_ms: num("first_trace_p99_ms"),
        traces: v["traces"].as_u64().expect("traces"),
        rss_mb: num("rss_mb").expect("rss_mb"),
    }
}

/// Appends about 1 % more events (at least one session pair, at most 100,000 events) after the
/// `cycles` session pairs already loaded, as the load does; returns the events appended.
fn append_more(ledger: &Ledger, cycles: u64, a: &Args) -> u64 {
    let per_cycle = 4 * PER_SESSION + 6;
    let want = (ledger.head() / 100).clamp(per_cycle, 100_000);
    let extra_cycles = want.div_ceil(per_cycle);
    let t0 = load_t0();
    let mut c = cycles;
    let end = cycles + extra_cycles;
    let head0 = ledger.head();
    let batches = std::iter::from_fn(|| {
        (c < end).then(|| {
            let mut batch = Vec::new();
            while c < end && batch.len() < (a.batch_cycles * per_cycle) as usize {
                batch.extend(cycle_events(c, t0));
                c += 1;
            }
            batch
        })
    });
    ledger.import(batches, |_| {}).expect("append more");
    // A later `--reuse` traces among every passport loaded so far.
    std::fs::write(
        ledger.dir().join("bench-passports"),
        (end * PER_SESSION).to_string(),
    )
    .expect("write");
    ledger.head() - head0
}

/// `--settle DIR`: see [`Args::settle`].
fn settle(dir: &Path, a: &Args) {
    let seg_files = || {
        std::fs::read_dir(dir.join("store/segments")).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .count()
        })
    };
    let before = seg_files();
    let t0 = Instant::now();
    let ledger = open_kept(dir, a);
    let mut last_note = Instant::now();
    while ledger.store().merge_pending() || ledger.store().segment_due(ledger.head()) {
        if last_note.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "  settling: {} files after {:.0} s",
                ledger.store().segment_files().len(),
                t0.elapsed().as_secs_f64()
            );
            last_note = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let settle_s = t0.elapsed().as_secs_f64();
    let after = ledger.store().segment_files().len();
    drop(ledger);
    println!(
        "{}",
        serde_json::json!({
            "settle_s": settle_s,
            "files_before": before,
            "files_after": after,
            "files_on_disk_after": seg_files(),
            "rss_mb": status_bytes("VmHWM:") / (1u64 << 20) as f64,
        })
    );
}

fn main() {
    let a = args();
    if let Some(dir) = &a.measure {
        measure_fresh(dir, &a);
        return;
    }
    if let Some(dir) = &a.settle {
        settle(dir, &a);
        return;
    }
    JSON.store(a.json, Ordering::Relaxed);
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).expect("tmp");
    let base = tmp.path().to_path_buf();
    let base = base.as_path();
    if a.keep {
        eprintln!("  keeping {} (--keep)", base.display());
    }
    // A guard for every phase (the load also reopens below its own limit): a process past
    // `--max-rss-gb` stops here rather than push the shared machine into thrashing.
    let max_rss = a.max_rss_gb * (1u64 << 30) as f64;
    std::thread::spawn(move || {
        loop {
            let rss = status_bytes("VmRSS:");
            if rss > max_rss {
                eprintln!(
                    "  resident memory {:.1} GiB passed --max-rss-gb: stopping the benchmark",
                    rss / (1u64 << 30) as f64
                );
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let load_at_start = loadavg();
    table!(
        "hallctl ledger benchmark: {cores} cores ({cpu}), load average {load_at_start} at start, data in {}",
        base.display()
    );
    table!();

    let Loaded {
        dir,
        events: loaded,
        load_s,
        passports,
        warm,
        durable,
    } = match &a.reuse {
        Some(d) => {
            let passports = std::fs::read_to_string(d.join("bench-passports"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .expect("bench-passports in the reused directory");
            Loaded {
                dir: d.clone(),
                events: 0,
                load_s: f64::NAN,
                passports,
                warm: None,
                durable: None,
            }
        }
        None => durable_and_load(&a, base),
    };
    // Opening and the first second of traces, in a fresh process (as the controller starts).
    let fresh = fresh_process(&dir, &a);
    eprintln!(
        "  fresh process: opened in {:.2} s, {} traces in its first second (p99 {:?} ms), peak resident {:.0} MiB",
        fresh.open_s, fresh.traces, fresh.first_trace_p99_ms, fresh.rss_mb
    );
    // The auditor opens the ledger afresh (as `hallctl ledger trace` does), not the loader's
    // handle with its write-side caches.
    let o0 = Instant::now();
    let ledger = Ledger::open(
        &dir,
        LedgerConfig {
            cache_bytes: (a.cache_gb * (1u64 << 30) as f64) as u64,
            seal_window: a.seal_window,
            ..LedgerConfig::default()
        },
    )
    .expect("reopen");
    let open_s = o0.elapsed().as_secs_f64();
    let loaded = if a.reuse.is_some() {
        ledger.head()
    } else {
        loaded
    };
    eprintln!(
        "  opened the ledger of {loaded} events in {open_s:.1} s; tracing, load average {}",
        loadavg()
    );

    // 3. Trace latency, cold (no warm-up: the JSON's figure) and, without `--json`, warm.
    let cold = measure_traces(&ledger, passports, 0x2545_F491_4F6C_DD1D);
    let warmed = if a.json {
        None
    } else {
        // The controller warms the item states into the cache after opening (`Ledger::warm`,
        // in the background); then the same traces again.
        let w0 = Instant::now();
        let (warm_items, warm_bytes) = ledger.warm(|_| {}, || false).expect("warm");
        let warm_s = w0.elapsed().as_secs_f64();
        eprintln!(
            "  warmed {warm_items} item entries ({:.2} GB) in {warm_s:.1} s; tracing again, resident {:.1} GiB",
            warm_bytes as f64 / 1e9,
            status_bytes("VmRSS:") / (1u64 << 30) as f64
        );
        let hot = measure_traces(&ledger, passports, 0x9E37_79B9_7F4A_7C15);
        Some((warm_items, warm_bytes, warm_s, hot))
    };
    eprintln!("  traced; verifying, load average {}", loadavg());

    // 4. Full verification.
    let v0 = Instant::now();
    let report = ledger
        .verify(&VerifyOptions::default(), |_, _| {})
        .expect("verify");
    let verify_s = v0.elapsed().as_secs_f64();
    eprintln!(
        "  verified {} records in {verify_s:.1} s; cold trace p50 / p99 {:.3} / {:.3} ms; load average {}",
        report.checked,
        percentile(&cold.lat, 0.5),
        percentile(&cold.lat, 0.99),
        loadavg()
    );
    assert!(report.ok(), "{:?}", report.first_bad);
    let (size, parts) = bytes_by_part(&dir);
    let stats = if a.space_stats {
        ledger.store().space_stats().expect("stats")
    } else {
        Vec::new()
    };

    // 5. Incremental verification: from the mark the full verify left, after 1 % more events.
    let more = append_more(&ledger, passports / PER_SESSION, &a);
    let i0 = Instant::now();
    let incremental = ledger
        .verify(
            &VerifyOptions {
                mode: VerifyMode::Incremental,
                ..VerifyOptions::default()
            },
            |_, _| {},
        )
        .expect("incremental verify");
    let verify_incremental_s = i0.elapsed().as_secs_f64();
    assert!(incremental.ok(), "{:?}", incremental.first_bad);
    eprintln!(
        "  appended {more} events; incremental verify checked {} records and {} checkpoints in {verify_incremental_s:.3} s",
        incremental.checked, incremental.checkpoints_checked
    );

    table!("| ledger of {loaded} events ({passports} passports) | figure | target |");
    table!("|---|---:|---:|");
    table!(
        "| load (import: batches of ~2,000 events, one fsync each, overlapped) | {:.0} events/s ({:.0} s) | |",
        loaded as f64 / load_s,
        load_s
    );
    table!(
        "| open the ledger (fresh process, sled recovery) | {:.2} s | ≤ 2 s |",
        fresh.open_s
    );
    table!(
        "| trace one patch in the fresh process's first second, back to back, p50 / p99 ({} traces) | {} / **{}** ms | p99 ≤ 1 ms |",
        fresh.traces,
        fresh
            .first_trace_p50_ms
            .map_or("–".into(), |v| format!("{v:.3}")),
        fresh
            .first_trace_p99_ms
            .map_or("–".into(), |v| format!("{v:.3}"))
    );
    table!(
        "| peak resident memory of the fresh process (open + 1 s of traces) | {:.0} MiB | |",
        fresh.rss_mb
    );
    let mut rows = vec![("cold, right after open", &cold)];
    if let Some((_, _, _, hot)) = &warmed {
        rows.push(("after the warm-up", hot));
    }
    for (label, t) in rows {
        table!(
            "| trace one patch ({label}), back to back, p50 / p99 / max | {:.3} / **{:.3}** / {:.3} ms | p99 ≤ 1 ms |",
            percentile(&t.lat, 0.5),
            percentile(&t.lat, 0.99),
            percentile(&t.lat, 1.0)
        );
        table!(
            "| trace one patch ({label}), paced (one every 2 ms), p50 / p99 / max | {:.3} / {:.3} / {:.3} ms | p99 ≤ 1 ms |",
            percentile(&t.paced, 0.5),
            percentile(&t.paced, 0.99),
            percentile(&t.paced, 1.0)
        );
        table!(
            "| trace one patch ({label}), back to back, less the time waiting for a CPU ({} of {} traces waited) | {:.3} / {:.3} / {:.3} ms | |",
            t.waits,
            t.lat.len(),
            percentile(&t.on_cpu, 0.5),
            percentile(&t.on_cpu, 0.99),
            percentile(&t.on_cpu, 1.0)
        );
    }
    match &warmed {
        Some((warm_items, warm_bytes, warm_s, _)) => table!(
            "| warm-up of the item states (`Ledger::warm`, one scan) | {warm_s:.1} s, {warm_items} entries, {:.2} GB | |",
            *warm_bytes as f64 / 1e9
        ),
        None => table!("| warm-up of the item states (`Ledger::warm`) | not run (`--json`) | |"),
    }
    table!(
        "| full verify, freshly opened ledger | {:.1} s ({:.0} records/s) | 10 M in ≤ 30 s |",
        verify_s,
        report.checked as f64 / verify_s
    );
    table!(
        "| incremental verify after {more} more events ({} records, {} checkpoints checked) | {verify_incremental_s:.3} s | ≤ 1 s |",
        incremental.checked,
        incremental.checkpoints_checked
    );
    match warm {
        Some((checked, secs)) => table!(
            "| full verify, same process that loaded it (warm cache) | {secs:.1} s ({:.0} records/s) | |",
            checked as f64 / secs
        ),
        None => {
            table!("| full verify, same process that loaded it | not run (`--warm-verify`) | |")
        }
    }
    table!(
        "| store size (files) | {:.2} GB ({:.0} bytes/event) | |",
        size as f64 / 1e9,
        size as f64 / loaded as f64
    );
    for (space, entries, kb, vb) in &stats {
        table!(
            "| live `{space}` entries: {entries}, keys + values | {:.2} GB ({:.0} bytes/event) | |",
            (kb + vb) as f64 / 1e9,
            (kb + vb) as f64 / loaded as f64
        );
    }
    table!(
        "| peak resident memory of the benchmark process | {:.1} GiB | |",
        status_bytes("VmHWM:") / (1u64 << 30) as f64
    );
    table!();
    let load_at_end = loadavg();
    table!(
        "load average {load_at_end} at the end (other work on the machine skews tail latencies)"
    );
    if a.json {
        let finite = |v: f64| v.is_finite().then_some(v);
        let d = |f: fn(&Durable) -> f64| durable.as_ref().map(f);
        println!(
            "{}",
            serde_json::json!({
                "events": loaded,
                "bytes_per_event": finite(size as f64 / loaded as f64),
                "open_s": fresh.open_s,
                "first_trace_p99_ms": fresh.first_trace_p99_ms,
                "trace_p99_ms": percentile(&cold.lat, 0.99),
                "rss_mb": fresh.rss_mb,
                "verify_incremental_s": verify_incremental_s,
                "verify_full_records_per_s": finite(report.checked as f64 / verify_s),
                "appends_single_per_s": d(|d| d.single),
                "appends_grouped_per_s": d(|d| d.grouped),
                "sqlite_single_per_s": d(|d| d.sqlite_single),
                "sqlite_grouped_per_s": d(|d| d.sqlite_grouped),
                "first_trace_p50_ms": fresh.first_trace_p50_ms,
                "first_second_traces": fresh.traces,
                "trace_p50_ms": percentile(&cold.lat, 0.5),
                "load_events_per_s": finite(loaded as f64 / load_s),
                "verify_incremental_records": incremental.checked,
                "verify_incremental_checkpoints": incremental.checkpoints_checked,
                "appended_before_incremental": more,
                "durable_secs_each": durable.map(|_| a.secs),
                "grouped_threads": a.threads,
                "cores": cores,
                "load_average_start": load_at_start,
                "load_average_end": load_at_end,
                "seal_window": a.seal_window,
                "sealed_files": ledger.store().segment_files().len(),
                "bytes_by_part": parts,
                "sled_keyspaces": stats
                    .iter()
                    .map(|(space, entries, kb, vb)| {
                        (space.to_string(), serde_json::json!([entries, kb, vb]))
                    })
                    .collect::<serde_json::Map<_, _>>(),
            })
        );
    }
    drop(ledger);
    if a.keep {
        let _ = tmp.keep();
    }
}
