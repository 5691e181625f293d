//! Measures the driver figures of `docs/drivers.md` over pseudo-terminals (real serial path):
//! round-trip latency, fault detection time, time to resume after the device returns.
//!
//! `cargo run -p hallctl-drivers --example figures` (add `-- --quick` for fewer samples).
//! A measurement, not a test: it asserts nothing and prints a Markdown table.

use std::time::Duration;

use hallctl_drivers::laminator::{BusConfig, UnitConfig, spawn_bus};
use hallctl_drivers::port::{LinkState, PollConfig, SerialConnector};
use hallctl_drivers::printer::{PrinterConfig, spawn_printer};
use hallctl_drivers::sim::laminator::{LaminatorTiming, UnitFaults, spawn_laminator_bus};
use hallctl_drivers::sim::printer::{PrinterTiming, spawn_printer_sim};
use tokio::sync::watch;
use tokio::time::Instant;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} |",
        v.len(),
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.99)),
        ms(*v.last().unwrap_or(&Duration::ZERO)),
    );
}

async fn until<T>(rx: &mut watch::Receiver<T>, pred: impl Fn(&T) -> bool) -> Instant {
    let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| pred(v))).await;
    Instant::now()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_rtt, trials) = if quick { (200, 3) } else { (2000, 10) };
    let dir = tempfile_dir()?;
    let poll = PollConfig::default();
    println!(
        "poll interval {:?}, offline after {} missed polls, printer timeout {:?}, laminator timeout 100 ms, backoff cap {:?}\n",
        poll.interval,
        poll.missed_polls_for_offline,
        PrinterConfig::default().link.timeout,
        poll.backoff_cap
    );
    println!("| figure | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");

    // --- printer -------------------------------------------------------------------------------
    let sim = spawn_printer_sim(dir.join("prn-1"), 1, PrinterTiming::default())?;
    // No reply delay for the round trip: measure the path, not the simulated processing time.
    let sim_fast = spawn_printer_sim(
        dir.join("prn-2"),
        1,
        PrinterTiming {
            reply: Duration::ZERO,
            ..PrinterTiming::default()
        },
    )?;
    let (p_fast, _t) = spawn_printer(
        SerialConnector::new(sim_fast.control.path(), 115_200),
        PrinterConfig::default(),
    );
    let mut w = p_fast.watch();
    until(&mut w, |v| v.link == LinkState::Ready).await;
    let mut rtt = Vec::with_capacity(n_rtt);
    for _ in 0..n_rtt {
        let t0 = Instant::now();
        p_fast.status().await?;
        rtt.push(t0.elapsed());
    }
    row(
        "printer STATUS round trip (handle → task → PTY → simulator → back)",
        rtt,
    );

    let (p, _t) = spawn_printer(
        SerialConnector::new(sim.control.path(), 115_200),
        PrinterConfig::default(),
    );
    let mut w = p.watch();
    until(&mut w, |v| v.link == LinkState::Ready).await;
    let (mut detect, mut resume, mut unplug_detect, mut replug_resume) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..trials {
        let t0 = Instant::now();
        sim.control.wire.update_faults(|f| f.silent = true);
        detect.push(until(&mut w, |v| v.link == LinkState::Offline).await - t0);
        tokio::time::sleep(Duration::from_millis(1500)).await; // let the backoff grow to its cap
        let t1 = Instant::now();
        sim.control.wire.update_faults(|f| f.silent = false);
        resume.push(until(&mut w, |v| v.link == LinkState::Ready).await - t1);

        let t2 = Instant::now();
        sim.control.wire.set_plugged(false);
        unplug_detect.push(until(&mut w, |v| v.link == LinkState::Offline).await - t2);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t3 = Instant::now();
        sim.control.wire.set_plugged(true);
        replug_resume.push(until(&mut w, |v| v.link == LinkState::Ready).await - t3);
    }
    row("printer fault detection: silent → offline", detect);
    row("printer resume: answers again → ready", resume);
    row("printer link loss (EIO) → offline", unplug_detect);
    row("printer cable back → port reopened, ready", replug_resume);

    // --- laminators ------------------------------------------------------------------------------
    let bus = spawn_laminator_bus(
        dir.join("rs485-1"),
        &[3, 4, 5],
        41_200,
        LaminatorTiming::default(),
    )?;
    let units = [3u8, 4, 5]
        .iter()
        .map(|&id| UnitConfig {
            name: format!("LAM-{id}"),
            unit_id: id,
            timeout: Duration::from_millis(100),
        })
        .collect();
    let (lams, _t) = spawn_bus(
        SerialConnector::new(bus.path(), 115_200),
        BusConfig {
            units,
            poll,
            retries: 1,
        },
    );
    for l in &lams {
        let mut w = l.watch();
        until(&mut w, |v| v.link == LinkState::Ready).await;
    }
    let mut rtt = Vec::new();
    for _ in 0..n_rtt / 2 {
        let t0 = Instant::now();
        lams[0].status().await?;
        rtt.push(t0.elapsed());
    }
    row(
        "laminator status block (Modbus RTU FC04 ×15) round trip",
        rtt,
    );

    let mut w4 = lams[1].watch();
    let (mut detect, mut resume, mut peer) = (vec![], vec![], vec![]);
    for _ in 0..trials {
        let t0 = Instant::now();
        bus.units[1].set_faults(UnitFaults {
            silent: true,
            ..UnitFaults::default()
        });
        detect.push(until(&mut w4, |v| v.link == LinkState::Offline).await - t0);
        // Peers' latency while LAM-4 is dead.
        let until_t = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until_t {
            let t = Instant::now();
            lams[0].status().await?;
            peer.push(t.elapsed());
        }
        let t1 = Instant::now();
        bus.units[1].set_faults(UnitFaults::default());
        resume.push(until(&mut w4, |v| v.link == LinkState::Ready).await - t1);
    }
    row("laminator dead unit: silent → offline", detect);
    row("laminator dead unit: answers again → ready", resume);
    row("peer LAM-3 round trip while LAM-4 is dead", peer);
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hallctl-figures-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
