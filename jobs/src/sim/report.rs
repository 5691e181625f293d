//! Turning a run into figures.
//!
//! # Definitions
//! * **Physical limit** of a stage, in finished passports per hour: machines × availability ÷
//!   (mean service time × visits per finished passport). The line's limit is the minimum over
//!   stages; that stage is the bottleneck. [`LineConfig::physical_limit_per_h`] computes it from
//!   the configuration. A run computes it again from what actually happened — the machine time
//!   really available (after the run's breakdowns, handovers and outages) and the work really done
//!   (rework included) — so that `throughput_ratio` judges the scheduler, not the dice.
//! * **throughput_ratio** = batch throughput ÷ realized physical limit. With all jobs released at
//!   00:00 it is the share of the bottleneck's available time spent working.
//! * **Cmax/LB**: the batch's makespan over the flow-shop lower bound, generalised from two stages
//!   to four: `LB = max over stages s of (head_s + (work_s + unavailable_s) / machines_s + tail_s)`,
//!   where `head_s` and `tail_s` are the shortest realized service times of the stages before and
//!   after `s`, and `unavailable_s` is the machine time lost to repairs, handovers and outages.
//! * **on_time** per class: share of the day's jobs finished (dispatched) by their due time.
//!   **p95_lateness_s**: the 95th percentile of max(0, finish − due), in seconds.
//!
//! [`LineConfig::physical_limit_per_h`]: super::LineConfig::physical_limit_per_h

use serde::{Deserialize, Serialize};

use super::{RunOutcome, SimConfig};
use crate::job::{PriorityClass, Stage};

/// What happened at one stage during a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStats {
    /// Steps started.
    pub operations: u64,
    /// Machine time spent working, ms.
    pub busy_ms: i64,
    /// Machine time lost to repairs, ms.
    pub down_ms: i64,
    /// Station time without an operator (custody handovers, rotations), ms, machine not down.
    pub handover_ms: i64,
    /// Machine time lost to outages (offline or paused), ms.
    pub outage_ms: i64,
    /// Machine time a station could have worked while jobs waited for its stage, ms.
    pub idle_while_waiting_ms: i64,
    /// Breakdowns.
    pub failures: u64,
    /// Shortest service time seen, ms.
    pub min_service_ms: i64,
}

impl StageStats {
    fn unavailable_ms(&self) -> i64 {
        self.down_ms + self.handover_ms + self.outage_ms
    }
}

/// A figure per priority class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerClass<T> {
    /// Normal.
    pub normal: T,
    /// Urgent.
    pub urgent: T,
    /// Fast-track.
    pub fast_track: T,
}

impl<T: Copy> PerClass<T> {
    /// The figure of a class.
    pub fn get(&self, class: PriorityClass) -> T {
        match class {
            PriorityClass::Normal => self.normal,
            PriorityClass::Urgent => self.urgent,
            PriorityClass::FastTrack => self.fast_track,
        }
    }

    fn from_fn(mut f: impl FnMut(PriorityClass) -> T) -> Self {
        Self {
            normal: f(PriorityClass::Normal),
            urgent: f(PriorityClass::Urgent),
            fast_track: f(PriorityClass::FastTrack),
        }
    }
}

/// The saturated run: every job released at 00:00.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Jobs finished.
    pub jobs: usize,
    /// Makespan, s.
    pub cmax_s: f64,
    /// Lower bound on the makespan, s.
    pub lb_s: f64,
    /// Cmax ÷ LB.
    pub cmax_over_lb: f64,
    /// Finished passports per hour.
    pub throughput_per_h: f64,
    /// The realized physical limit, finished passports per hour.
    pub limit_per_h: f64,
    /// Throughput ÷ realized limit.
    pub throughput_ratio: f64,
    /// The stage that set the limit.
    pub bottleneck: String,
    /// Breakdowns over all stages.
    pub failures: u64,
    /// Per stage, in line order.
    pub stages: [StageStats; 4],
}

/// The day's flow: arrivals as the scenario says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowReport {
    /// Jobs submitted (all are finished before the run ends).
    pub jobs: usize,
    /// Jobs per class.
    pub jobs_per_class: PerClass<u32>,
    /// Finished passports per hour over the day.
    pub throughput_per_h: f64,
    /// Share finished by the due time, per class.
    pub on_time: PerClass<f64>,
    /// 95th percentile lateness, s, per class.
    pub p95_lateness_s: PerClass<f64>,
    /// Maximum lateness, s, per class.
    pub max_lateness_s: PerClass<f64>,
    /// Bottleneck machine time free while work waited for it, s.
    pub bottleneck_idle_while_waiting_s: f64,
    /// Booklets spoiled (jams, defects, QC mismatches), each reprinted.
    pub spoiled: u64,
    /// Laminations by the printer or QC by either: must be zero.
    pub sod_violations: u64,
    /// Times a job was passed over for separation of duties (it waited for another operator).
    pub sod_skips: u64,
    /// Shift changes played.
    pub shift_changes: u32,
    /// Mid-shift role rotations played.
    pub rotations: u32,
    /// When the last job finished, s after 00:00.
    pub last_finish_s: f64,
}

/// One policy's figures for a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// `slack` or `fifo`.
    pub policy: String,
    /// Saturated batch.
    pub batch: BatchReport,
    /// The day's flow.
    pub flow: FlowReport,
}

/// Our scheduler and FIFO on the same scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Jobs of the day.
    pub jobs: u32,
    /// Offered load: the day's work ÷ the configured physical limit.
    pub offered_load: f64,
    /// The configured physical limit, finished passports per hour.
    pub physical_limit_per_h: f64,
    /// The configured bottleneck stage.
    pub bottleneck: String,
    /// Our scheduler.
    pub ours: PolicyReport,
    /// The FIFO baseline.
    pub fifo: PolicyReport,
}

impl Comparison {
    /// Puts two policies' reports on the same scenario side by side.
    pub fn of(config: &SimConfig, ours: PolicyReport, fifo: PolicyReport) -> Self {
        let (limit, bottleneck) = config.line.physical_limit_per_h();
        Self {
            scenario: config.scenario.name().to_string(),
            seed: config.seed,
            jobs: config.jobs,
            offered_load: config.offered_load(),
            physical_limit_per_h: limit,
            bottleneck: bottleneck.name().to_string(),
            ours,
            fifo,
        }
    }
}

fn stage_limit(cfg: &SimConfig, run: &RunOutcome, stage: Stage, horizon: i64, done: usize) -> f64 {
    let s = &run.stages[stage.index()];
    let machines = i64::from(cfg.line.machines(stage));
    let available = (machines * horizon - s.unavailable_ms()).max(1) as f64;
    if s.busy_ms == 0 {
        return f64::INFINITY;
    }
    done as f64 * available / s.busy_ms as f64 / (horizon as f64 / 3_600_000.0)
}

pub(crate) fn batch(cfg: &SimConfig, run: &RunOutcome) -> BatchReport {
    let done = run.jobs.iter().filter(|j| j.done.is_some()).count();
    let horizon = run.cmax_ms.max(1);
    let (limit, bottleneck) = Stage::ALL
        .iter()
        .map(|&s| (stage_limit(cfg, run, s, horizon, done), s))
        .fold(
            (f64::INFINITY, Stage::Print),
            |b, c| if c.0 < b.0 { c } else { b },
        );
    let throughput = done as f64 / (horizon as f64 / 3_600_000.0);
    let min_service: Vec<i64> = run.stages.iter().map(|s| s.min_service_ms).collect();
    let lb_ms = Stage::ALL
        .iter()
        .map(|&s| {
            let i = s.index();
            let st = &run.stages[i];
            let machines = f64::from(cfg.line.machines(s).max(1));
            let head: i64 = min_service[..i].iter().sum();
            let tail: i64 = min_service[i + 1..].iter().sum();
            head as f64 + (st.busy_ms + st.unavailable_ms()) as f64 / machines + tail as f64
        })
        .fold(0.0, f64::max);
    BatchReport {
        jobs: done,
        cmax_s: horizon as f64 / 1000.0,
        lb_s: lb_ms / 1000.0,
        cmax_over_lb: horizon as f64 / lb_ms.max(1.0),
        throughput_per_h: throughput,
        limit_per_h: limit,
        throughput_ratio: throughput / limit,
        bottleneck: bottleneck.name().to_string(),
        failures: run.stages.iter().map(|s| s.failures).sum(),
        stages: run.stages,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn flow(cfg: &SimConfig, run: &RunOutcome) -> FlowReport {
    let mut lateness: [Vec<f64>; 3] = Default::default();
    let mut on_time = [0u32; 3];
    let mut last = 0i64;
    for j in &run.jobs {
        let c = j.class.index();
        let done = j.done.unwrap_or(i64::MAX / 2);
        last = last.max(done);
        let late = (done - j.due).max(0);
        on_time[c] += u32::from(late == 0);
        lateness[c].push(late as f64 / 1000.0);
    }
    for l in &mut lateness {
        l.sort_by(f64::total_cmp);
    }
    let count = |c: PriorityClass| lateness[c.index()].len() as u32;
    let (_, bottleneck) = cfg.line.physical_limit_per_h();
    let first_arrival = run.jobs.iter().map(|j| j.arrival).min().unwrap_or(0);
    let span_h = ((last - first_arrival).max(1)) as f64 / 3_600_000.0;
    FlowReport {
        jobs: run.jobs.len(),
        jobs_per_class: PerClass::from_fn(count),
        throughput_per_h: run.jobs.len() as f64 / span_h,
        on_time: PerClass::from_fn(|c| {
            let n = count(c);
            if n == 0 {
                1.0
            } else {
                f64::from(on_time[c.index()]) / f64::from(n)
            }
        }),
        p95_lateness_s: PerClass::from_fn(|c| percentile(&lateness[c.index()], 0.95)),
        max_lateness_s: PerClass::from_fn(|c| lateness[c.index()].last().copied().unwrap_or(0.0)),
        bottleneck_idle_while_waiting_s: run.stages[bottleneck.index()].idle_while_waiting_ms
            as f64
            / 1000.0,
        spoiled: run.spoiled,
        sod_violations: run.sod_violations,
        sod_skips: run.sod_skips,
        shift_changes: run.shift_changes,
        rotations: run.rotations,
        last_finish_s: last as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
    }
}
