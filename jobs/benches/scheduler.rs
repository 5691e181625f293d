//! One scheduling decision with a deep backlog: `cargo bench -p hallctl-jobs --bench scheduler`.
//!
//! The line has 10 printers and 11 laminators (21 devices) with operators signed in, and
//! `--queued N` jobs (default 100,000) waiting, split between printing and lamination (a fifth of
//! the laminate queue printed by operators now at laminators, so separation of duties makes the
//! scheduler skip). Each sample frees one station, queues one new job (the backlog stays at N) and
//! times `Scheduler::assign`. Prints p50, p99, p99.9 and max over `--decisions` samples.
//!
//! A plain binary rather than criterion: the figure that matters is a tail percentile of single
//! decisions, which it measures directly.

use std::hint::black_box;
use std::time::Instant;

use hallctl_jobs::job::{DeviceId, JobId, OperatorId, PriorityClass, Stage, StationId};
use hallctl_jobs::scheduler::{
    DeviceReadiness, Policy, QueuedJob, Scheduler, Separation, StationSpec,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn job(n: u64) -> (QueuedJob, Stage) {
    // A deterministic mix: classes 80/15/5, due times spread over five days.
    let class = match n % 20 {
        0 => PriorityClass::FastTrack,
        1..=3 => PriorityClass::Urgent,
        _ => PriorityClass::Normal,
    };
    let h = 3_600_000i64;
    let due = (n as i64 * 7919) % (120 * h);
    let laminate = n.is_multiple_of(2);
    let printed_by = laminate.then(|| {
        // Every fifth booklet was printed by someone now at a laminator.
        if n.is_multiple_of(10) {
            OperatorId::new(format!("L{}", (n / 10) % 11))
        } else {
            OperatorId::new(format!("P{}", n % 10))
        }
    });
    (
        QueuedJob {
            id: JobId(n),
            class,
            groups: vec![],
            due,
            received: 0,
            printed_by,
            laminated_by: None,
        },
        if laminate {
            Stage::Laminate
        } else {
            Stage::Print
        },
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let queued = arg("--queued", 100_000);
    let decisions = arg("--decisions", 20_000);
    for policy in [Policy::default(), Policy::Fifo] {
        let name = policy.name();
        let mut s = Scheduler::new(policy, Separation::strict());
        for (prefix, stage, count) in [("PRN", Stage::Print, 10), ("LAM", Stage::Laminate, 11)] {
            for k in 0..count {
                let id = StationId::new(format!("{prefix}-{k}"));
                let spec = StationSpec {
                    id: id.clone(),
                    stage,
                    device: DeviceId::new(format!("{prefix}-{k}/dev")),
                };
                s.add_station(spec, 0).expect("unique station");
                s.set_device(&id, DeviceReadiness::Ready).expect("station");
                let op = if stage == Stage::Print {
                    format!("P{k}")
                } else {
                    format!("L{k}")
                };
                s.set_operator(&id, Some(OperatorId::new(op)), 0)
                    .expect("operator");
            }
        }
        let mut next = 0u64;
        while next < queued as u64 {
            let (j, stage) = job(next);
            s.enqueue(j, stage).expect("new job");
            next += 1;
        }
        // Occupy every station so each sample measures exactly one freed station.
        let mut busy: Vec<StationId> = s.assign(0).into_iter().map(|a| a.station).collect();
        let mut samples = Vec::with_capacity(decisions);
        let mut made = 0usize;
        for t in 1..=decisions as i64 {
            let free = busy.remove((t as usize * 7) % busy.len());
            s.release(&free, t).expect("station");
            let (j, stage) = job(next);
            next += 1;
            s.enqueue(j, stage).expect("new job");
            let start = Instant::now();
            let out = black_box(s.assign(t));
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            made += out.len();
            if out.is_empty() {
                // No eligible job for it: the station stays free; releasing it again is harmless.
                busy.push(free);
            }
            busy.extend(out.into_iter().map(|a| a.station));
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "{name:>5}: {queued} queued, 21 devices, {decisions} decisions ({made} assignments): \
             p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.2} µs",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 0.999),
            samples[samples.len() - 1],
        );
    }
}
