//! Staff and machine performance, for supervisors and the monitoring room: per operator and
//! per device, per shift or per day, completed and spoiled steps, mean cycle time and idle
//! time; per device OEE with its downtime by reason.
//!
//! # What it is made of
//! Only what the line's actor sees: when a step is assigned and when it ends (finished or
//! spoiled), whether a station's device is faulted, offline, paused, busy or without work, and
//! who is signed in where. Times are accumulated in hourly buckets (every shift and day
//! boundary is on the hour), so a shift or a day is a sum of hours; the ongoing interval of
//! each device and operator is added up to the moment of the report.
//!
//! # OEE
//! For a device over a period, with *observed* the time the controller watched it:
//! - availability = busy / observed, where the rest is downtime: `fault`, `offline`, `paused`
//!   and `no_work` (ready, but nothing assigned: starved or unstaffed);
//! - performance = (ideal cycle time × steps ended) / busy, at most 1, with the ideal cycle
//!   times of `[performance]` in the configuration;
//! - quality = completed / (completed + spoiled) (1 with no step);
//! - OEE = availability × performance × quality, which (uncapped) is
//!   ideal cycle time × completed / observed.
//!
//! # Who sees it
//! Never operators at stations and never the scheduler: the figures leave the actor only for
//! the performance route (supervisors, monitors), the supervisors' snapshot and the metrics.
//! They restart from zero when the controller restarts.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc};
use hallctl_jobs::job::{DeviceId, OperatorId, Stage, StationId};
use hallctl_jobs::scheduler::Millis;
use serde::{Deserialize, Serialize};

use super::monitor::at;

const HOUR_MS: Millis = 3_600_000;
/// How long hourly buckets are kept: a week and a day.
const RETAIN_HOURS: Millis = 8 * 24;

/// What a device is doing, for the time accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceActivity {
    /// A step is assigned to it.
    Busy,
    /// Ready, nothing assigned.
    NoWork,
    /// Reports a fault.
    Fault,
    /// Unreachable.
    Offline,
    /// Paused by a supervisor.
    Paused,
}

/// What an operator is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperatorActivity {
    /// Signed in at a station with a step assigned.
    Busy,
    /// Signed in, nothing assigned.
    Idle,
    /// Not signed in at a station.
    Away,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Who {
    Device(DeviceId),
    Operator(OperatorId),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    completed: u32,
    spoiled: u32,
    cycle_ms: i64,
    ideal_ms: i64,
    busy_ms: i64,
    /// No work (device) or idle (operator).
    idle_ms: i64,
    fault_ms: i64,
    offline_ms: i64,
    paused_ms: i64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.completed += o.completed;
        self.spoiled += o.spoiled;
        self.cycle_ms += o.cycle_ms;
        self.ideal_ms += o.ideal_ms;
        self.busy_ms += o.busy_ms;
        self.idle_ms += o.idle_ms;
        self.fault_ms += o.fault_ms;
        self.offline_ms += o.offline_ms;
        self.paused_ms += o.paused_ms;
    }

    fn time(&mut self, state: State) -> &mut i64 {
        match state {
            State::Device(DeviceActivity::Busy) | State::Operator(OperatorActivity::Busy) => {
                &mut self.busy_ms
            }
            State::Device(DeviceActivity::NoWork) | State::Operator(OperatorActivity::Idle) => {
                &mut self.idle_ms
            }
            State::Device(DeviceActivity::Fault) => &mut self.fault_ms,
            State::Device(DeviceActivity::Offline) => &mut self.offline_ms,
            State::Device(DeviceActivity::Paused) => &mut self.paused_ms,
            // Time away is not counted.
            State::Operator(OperatorActivity::Away) => &mut self.paused_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Device(DeviceActivity),
    Operator(OperatorActivity),
}

impl State {
    fn counts(self) -> bool {
        self != State::Operator(OperatorActivity::Away)
    }
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    state: State,
    since: Millis,
}

#[derive(Debug, Clone)]
struct DeviceMeta {
    id: DeviceId,
    station: StationId,
    stage: Stage,
}

/// The performance tracker (one per line, owned by the actor).
#[derive(Debug)]
pub(crate) struct Perf {
    ideal_ms: [i64; 4],
    devices: Vec<DeviceMeta>,
    clocks: HashMap<Who, Clock>,
    hours: BTreeMap<(Millis, Who), Bucket>,
}

/// Downtime of a device by reason, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Downtime {
    /// Faulted (a jam, a laminator fault).
    pub fault: f64,
    /// Unreachable.
    pub offline: f64,
    /// Paused by a supervisor.
    pub paused: f64,
    /// Ready with nothing assigned (no job waiting, or nobody signed in).
    pub no_work: f64,
}

/// One device's figures over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceFigures {
    /// The device (the station itself where it has none).
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Its station.
    #[schema(value_type = String)]
    pub station: StationId,
    /// The step it does.
    #[schema(value_type = String)]
    pub stage: Stage,
    /// Steps finished good.
    pub completed: u32,
    /// Steps that ended with the item spoiled (a defect, a jam, a QC mismatch).
    pub spoiled: u32,
    /// spoiled / (completed + spoiled); 0 with no step.
    pub spoilage_rate: f64,
    /// Mean time from assignment to the end of a step, seconds; absent with no step.
    pub mean_cycle_secs: Option<f64>,
    /// Seconds the controller watched the device in the period.
    pub observed_secs: f64,
    /// Seconds with a step assigned.
    pub busy_secs: f64,
    /// Seconds ready without work (the same as `downtime.no_work`).
    pub idle_secs: f64,
    /// Downtime by reason.
    pub downtime: Downtime,
    /// busy / observed.
    pub availability: f64,
    /// ideal cycle time × steps / busy, at most 1.
    pub performance: f64,
    /// completed / (completed + spoiled); 1 with no step.
    pub quality: f64,
    /// availability × performance × quality.
    pub oee: f64,
}

/// One operator's figures over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperatorFigures {
    /// The operator.
    #[schema(value_type = String)]
    pub operator: OperatorId,
    /// Steps finished good.
    pub completed: u32,
    /// Steps that ended with the item spoiled.
    pub spoiled: u32,
    /// spoiled / (completed + spoiled); 0 with no step.
    pub spoilage_rate: f64,
    /// Mean time from assignment to the end of a step, seconds; absent with no step.
    pub mean_cycle_secs: Option<f64>,
    /// Seconds signed in at a station.
    pub signed_in_secs: f64,
    /// Seconds with a step assigned.
    pub busy_secs: f64,
    /// Seconds signed in with nothing assigned.
    pub idle_secs: f64,
}

/// The figures of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PerfReport {
    /// `shift 2026-11-21A` or `day 2026-11-21`.
    pub period: String,
    /// Its start.
    pub from: DateTime<Utc>,
    /// Its end (or now, for the current period).
    pub to: DateTime<Utc>,
    /// Every device of the hall, in station order.
    pub devices: Vec<DeviceFigures>,
    /// Every operator who was signed in during the period, by id.
    pub operators: Vec<OperatorFigures>,
}

/// A device's OEE in the snapshot summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceOee {
    /// The device.
    pub device: DeviceId,
    /// Its station.
    pub station: StationId,
    /// availability × performance × quality.
    pub oee: f64,
    /// busy / observed.
    pub availability: f64,
    /// ideal cycle time × steps / busy.
    pub performance: f64,
    /// completed / (completed + spoiled).
    pub quality: f64,
    /// Downtime by reason, seconds.
    pub downtime: Downtime,
}

/// The snapshot's performance summary: per-device OEE in the current shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSummary {
    /// The shift.
    pub shift: String,
    /// Every device.
    pub devices: Vec<DeviceOee>,
}

/// A period to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// A shift: A 06–14, B 14–22, C 22–06 UTC, dated by the day it starts (`2026-11-21C`).
    Shift(NaiveDate, char),
    /// A calendar day, UTC.
    Day(NaiveDate),
}

impl Period {
    /// Parses `2026-11-21A` (B, C).
    ///
    /// # Errors
    /// A message naming the expected form.
    pub fn parse_shift(s: &str) -> Result<Period, String> {
        let s = s.trim();
        let bad =
            || format!("{s:?} is not a shift: write the date and A, B or C, e.g. 2026-11-21A");
        let (date, letter) = s
            .split_at_checked(s.len().saturating_sub(1))
            .ok_or_else(bad)?;
        let letter = letter.chars().next().ok_or_else(bad)?.to_ascii_uppercase();
        if !matches!(letter, 'A' | 'B' | 'C') {
            return Err(bad());
        }
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
        Ok(Period::Shift(date, letter))
    }

    /// Parses `2026-11-21`.
    ///
    /// # Errors
    /// A message naming the expected form.
    pub fn parse_day(s: &str) -> Result<Period, String> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(Period::Day)
            .map_err(|_| format!("{s:?} is not a day: write it as 2026-11-21"))
    }

    /// The shift that `t` falls in.
    pub fn shift_at(t: DateTime<Utc>) -> Period {
        let id = super::actor::shift_of(t);
        // shift_of writes a well-formed id.
        Period::parse_shift(id.as_str()).unwrap_or(Period::Day(t.date_naive()))
    }

    /// Start and end, in milliseconds.
    pub fn range(&self) -> (Millis, Millis) {
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
        let (start, hours) = match self {
            Period::Shift(d, l) => {
                let h = match l {
                    'A' => 6,
                    'B' => 14,
                    _ => 22,
                };
                (midnight(*d) + ChronoDuration::hours(h), 8)
            }
            Period::Day(d) => (midnight(*d), 24),
        };
        let s = start.timestamp_millis();
        (s, s + hours * HOUR_MS)
    }

    /// `shift 2026-11-21A` or `day 2026-11-21`.
    pub fn name(&self) -> String {
        match self {
            Period::Shift(d, l) => format!("shift {}{l}", d.format("%Y-%m-%d")),
            Period::Day(d) => format!("day {}", d.format("%Y-%m-%d")),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// OEE from a device's bucket: (availability, performance, quality, oee).
fn oee(b: &Bucket) -> (f64, f64, f64, f64) {
    let observed = b.busy_ms + b.idle_ms + b.fault_ms + b.offline_ms + b.paused_ms;
    let availability = ratio(b.busy_ms as f64, observed as f64);
    let performance = ratio(b.ideal_ms as f64, b.busy_ms as f64);
    let steps = b.completed + b.spoiled;
    let quality = if steps == 0 {
        1.0
    } else {
        f64::from(b.completed) / f64::from(steps)
    };
    (
        availability,
        performance,
        quality,
        availability * performance * quality,
    )
}

fn spoilage(b: &Bucket) -> (f64, Option<f64>) {
    let steps = b.completed + b.spoiled;
    if steps == 0 {
        return (0.0, None);
    }
    (
        f64::from(b.spoiled) / f64::from(steps),
        Some(secs(b.cycle_ms) / f64::from(steps)),
    )
}

impl Perf {
    /// A tracker with the ideal cycle time of each stage (print, laminate, QC, dispatch).
    pub(crate) fn new(ideal: [std::time::Duration; 4]) -> Self {
        Perf {
            ideal_ms: ideal.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            devices: Vec::new(),
            clocks: HashMap::new(),
            hours: BTreeMap::new(),
        }
    }

    /// A device of the hall, reported on from now.
    pub(crate) fn add_device(&mut self, id: DeviceId, station: StationId, stage: Stage) {
        self.devices.push(DeviceMeta { id, station, stage });
    }

    /// Adds `[from, to)` in `state` to `who`'s hourly buckets.
    fn accrue(&mut self, who: &Who, state: State, from: Millis, to: Millis) {
        if !state.counts() {
            return;
        }
        let mut t = from;
        while t < to {
            let hour = t.div_euclid(HOUR_MS);
            let end = ((hour + 1) * HOUR_MS).min(to);
            *self
                .hours
                .entry((hour, who.clone()))
                .or_default()
                .time(state) += end - t;
            t = end;
        }
    }

    fn set(&mut self, who: Who, state: State, now: Millis) {
        match self.clocks.get(&who).copied() {
            Some(c) if c.state == state => {}
            Some(c) => {
                self.accrue(&who, c.state, c.since, now);
                self.clocks.insert(who, Clock { state, since: now });
            }
            None => {
                self.clocks.insert(who, Clock { state, since: now });
            }
        }
    }

    /// What a device is doing from `now` on (a no-op when unchanged).
    pub(crate) fn device(&mut self, id: &DeviceId, activity: DeviceActivity, now: Millis) {
        self.set(Who::Device(id.clone()), State::Device(activity), now);
    }

    /// What an operator is doing from `now` on (a no-op when unchanged).
    pub(crate) fn operator(&mut self, id: &OperatorId, activity: OperatorActivity, now: Millis) {
        self.set(Who::Operator(id.clone()), State::Operator(activity), now);
    }

    /// The operators being tracked who are not away.
    pub(crate) fn present(&self) -> Vec<OperatorId> {
        self.clocks
            .iter()
            .filter_map(|(w, c)| match w {
                Who::Operator(o) if c.state != State::Operator(OperatorActivity::Away) => {
                    Some(o.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// A step ended at `now` (`good`: finished; otherwise spoiled), assigned at `assigned`.
    pub(crate) fn step(
        &mut self,
        device: &DeviceId,
        operator: Option<&OperatorId>,
        stage: Stage,
        assigned: Millis,
        now: Millis,
        good: bool,
    ) {
        let hour = now.div_euclid(HOUR_MS);
        let ideal = self.ideal_ms[stage.index()];
        let mut whos = vec![Who::Device(device.clone())];
        whos.extend(operator.map(|o| Who::Operator(o.clone())));
        for who in whos {
            let b = self.hours.entry((hour, who)).or_default();
            if good {
                b.completed += 1;
            } else {
                b.spoiled += 1;
            }
            b.cycle_ms += (now - assigned).max(0);
            b.ideal_ms += ideal;
        }
        // Forget what no period within the retention can ask for.
        let keep_from = hour - RETAIN_HOURS;
        while let Some(((h, _), _)) = self.hours.first_key_value() {
            if *h >= keep_from {
                break;
            }
            self.hours.pop_first();
        }
    }

    /// Sums every bucket of `[from, to)` per subject, with the running intervals up to
    /// `min(to, now)`.
    fn sums(&self, from: Millis, to: Millis, now: Millis) -> HashMap<Who, Bucket> {
        let mut out: HashMap<Who, Bucket> = HashMap::new();
        // `Device("")` sorts before every subject: the range is whole hours h0..=h1.
        let first = |h: Millis| (h, Who::Device(DeviceId::new("")));
        let (h0, h1) = (from.div_euclid(HOUR_MS), (to - 1).div_euclid(HOUR_MS));
        for ((_, who), b) in self.hours.range(first(h0)..first(h1 + 1)) {
            out.entry(who.clone()).or_default().add(b);
        }
        let end = to.min(now);
        for (who, c) in &self.clocks {
            let (a, z) = (c.since.max(from), end);
            if a < z && c.state.counts() {
                *out.entry(who.clone()).or_default().time(c.state) += z - a;
            }
        }
        out
    }

    /// The figures of `period` (up to `now` when it is still running).
    pub(crate) fn report(&self, period: &Period, now: Millis) -> PerfReport {
        let (from, to) = period.range();
        let sums = self.sums(from, to, now);
        let devices = self
            .devices
            .iter()
            .map(|d| {
                let b = sums
                    .get(&Who::Device(d.id.clone()))
                    .copied()
                    .unwrap_or_default();
                let (availability, performance, quality, oee) = oee(&b);
                let (spoilage_rate, mean_cycle_secs) = spoilage(&b);
                DeviceFigures {
                    device: d.id.clone(),
                    station: d.station.clone(),
                    stage: d.stage,
                    completed: b.completed,
                    spoiled: b.spoiled,
                    spoilage_rate,
                    mean_cycle_secs,
                    observed_secs: secs(
                        b.busy_ms + b.idle_ms + b.fault_ms + b.offline_ms + b.paused_ms,
                    ),
                    busy_secs: secs(b.busy_ms),
                    idle_secs: secs(b.idle_ms),
                    downtime: Downtime {
                        fault: secs(b.fault_ms),
                        offline: secs(b.offline_ms),
                        paused: secs(b.paused_ms),
                        no_work: secs(b.idle_ms),
                    },
                    availability,
                    performance,
                    quality,
                    oee,
                }
            })
            .collect();
        let mut operators: Vec<OperatorFigures> = sums
            .iter()
            .filter_map(|(w, b)| match w {
                Who::Operator(o) => {
                    let (spoilage_rate, mean_cycle_secs) = spoilage(b);
                    Some(OperatorFigures {
                        operator: o.clone(),
                        completed: b.completed,
                        spoiled: b.spoiled,
                        spoilage_rate,
                        mean_cycle_secs,
                        signed_in_secs: secs(b.busy_ms + b.idle_ms),
                        busy_secs: secs(b.busy_ms),
                        idle_secs: secs(b.idle_ms),
                    })
                }
                Who::Device(_) => None,
            })
            .collect();
        operators.sort_by(|a, b| a.operator.cmp(&b.operator));
        PerfReport {
            period: period.name(),
            from: at(from),
            to: at(to.min(now.max(from))),
            devices,
            operators,
        }
    }

    /// What the line's stations could dispatch per hour at the pace they showed since `from`
    /// (whole hours): see [`line_capacity`].
    pub(crate) fn capacity_per_hour(&self, from: Millis, now: Millis) -> Option<f64> {
        let sums = self.sums(from, now, now);
        line_capacity(self.devices.iter().map(|d| {
            let b = sums
                .get(&Who::Device(d.id.clone()))
                .copied()
                .unwrap_or_default();
            (d.stage, b.completed + b.spoiled, b.cycle_ms)
        }))
    }

    /// Per-device OEE of the current shift, for the snapshot.
    pub(crate) fn summary(&self, now: Millis) -> PerfSummary {
        let period = Period::shift_at(at(now));
        let r = self.report(&period, now);
        PerfSummary {
            shift: period.name().trim_start_matches("shift ").to_string(),
            devices: r
                .devices
                .into_iter()
                .map(|d| DeviceOee {
                    device: d.device,
                    station: d.station,
                    oee: d.oee,
                    availability: d.availability,
                    performance: d.performance,
                    quality: d.quality,
                    downtime: d.downtime,
                })
                .collect(),
        }
    }
}

/// What a line could complete per hour if every station that worked were busy all the time at
/// the pace it showed: per station (stage, steps ended, their summed time from assignment to
/// end), a station's pace is steps per hour of step time; a stage's capacity is the sum of its
/// stations'; the line's is the slowest stage's, since every job goes through every stage.
/// A stage with no step timed (or steps of no duration) sets no bound; `None` when no stage
/// does. Pure: the actor passes the perf tracker's figures.
pub(crate) fn line_capacity(stations: impl Iterator<Item = (Stage, u32, i64)>) -> Option<f64> {
    // Per stage: the summed pace, or None while unbounded.
    let mut stages: [Option<f64>; 4] = [Some(0.0); 4];
    let mut timed = [false; 4];
    for (stage, steps, cycle_ms) in stations {
        if steps == 0 {
            continue;
        }
        let i = stage.index();
        timed[i] = true;
        stages[i] = match stages[i] {
            Some(sum) if cycle_ms > 0 => {
                Some(sum + f64::from(steps) * HOUR_MS as f64 / cycle_ms as f64)
            }
            _ => None,
        };
    }
    stages
        .iter()
        .zip(timed)
        .filter_map(|(c, t)| if t { *c } else { None })
        .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIN: Millis = 60_000;

    fn t0() -> Millis {
        // 2026-11-21 06:00 UTC: the start of shift A.
        Utc.with_ymd_and_hms(2026, 11, 21, 6, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    fn tracker() -> (Perf, DeviceId, OperatorId) {
        let mut p = Perf::new([
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(30),
            Duration::from_secs(10),
        ]);
        let d = DeviceId::new("PR-01");
        p.add_device(d.clone(), StationId::new("PRINT-01"), Stage::Print);
        (p, d, OperatorId::new("A1"))
    }

    #[test]
    fn oee_is_availability_times_performance_times_quality() {
        let (mut p, d, op) = tracker();
        let t = t0();
        // 10 min no work, 5 min faulted, 15 min busy with 6 steps of which 1 spoiled, 10 min
        // paused: observed 40 min.
        p.device(&d, DeviceActivity::NoWork, t);
        p.operator(&op, OperatorActivity::Idle, t);
        p.device(&d, DeviceActivity::Fault, t + 10 * MIN);
        p.device(&d, DeviceActivity::Busy, t + 15 * MIN);
        p.operator(&op, OperatorActivity::Busy, t + 15 * MIN);
        for k in 0..6 {
            let end = t + 15 * MIN + (k + 1) * 150_000;
            p.step(&d, Some(&op), Stage::Print, end - 150_000, end, k != 3);
        }
        p.device(&d, DeviceActivity::Paused, t + 30 * MIN);
        p.operator(&op, OperatorActivity::Away, t + 30 * MIN);
        let r = p.report(&Period::shift_at(at(t)), t + 40 * MIN);
        assert_eq!(r.period, "shift 2026-11-21A");
        let f = &r.devices[0];
        assert_eq!((f.completed, f.spoiled), (5, 1));
        assert_eq!(f.observed_secs, 2400.0);
        assert_eq!(f.busy_secs, 900.0);
        assert_eq!(
            f.downtime,
            Downtime {
                fault: 300.0,
                offline: 0.0,
                paused: 600.0,
                no_work: 600.0
            }
        );
        let (a, pf, q) = (900.0 / 2400.0, 6.0 * 60.0 / 900.0, 5.0 / 6.0);
        assert!((f.availability - a).abs() < 1e-12);
        assert!((f.performance - pf).abs() < 1e-12);
        assert!((f.quality - q).abs() < 1e-12);
        assert!((f.oee - a * pf * q).abs() < 1e-12);
        // The identity: ideal cycle × good steps / observed.
        assert!((f.oee - 5.0 * 60.0 / 2400.0).abs() < 1e-12);
        assert_eq!(f.mean_cycle_secs, Some(150.0));
        assert!((f.spoilage_rate - 1.0 / 6.0).abs() < 1e-12);
        let o = &r.operators[0];
        assert_eq!((o.completed, o.spoiled), (5, 1));
        assert_eq!(
            (o.signed_in_secs, o.busy_secs, o.idle_secs),
            (1800.0, 900.0, 900.0)
        );
    }

    #[test]
    fn performance_is_capped_and_an_idle_device_has_zero_oee() {
        let (mut p, d, _) = tracker();
        let t = t0();
        p.device(&d, DeviceActivity::Busy, t);
        // Two 60 s steps in 60 s of busy time: faster than ideal, performance capped at 1.
        p.step(&d, None, Stage::Print, t, t + 30_000, true);
        p.step(&d, None, Stage::Print, t + 30_000, t + 60_000, true);
        p.device(&d, DeviceActivity::NoWork, t + 60_000);
        let f = &p.report(&Period::shift_at(at(t)), t + 60_000).devices[0];
        assert_eq!(
            (f.availability, f.performance, f.quality, f.oee),
            (1.0, 1.0, 1.0, 1.0)
        );
        let (q, d2, _) = tracker();
        let f = &q.report(&Period::shift_at(at(t)), t + 60_000).devices[0];
        assert_eq!(f.device, d2);
        assert_eq!((f.observed_secs, f.oee, f.quality), (0.0, 0.0, 1.0));
    }

    #[test]
    fn time_is_split_at_period_boundaries() {
        let (mut p, d, _) = tracker();
        // Shift A ends at 14:00; busy from 13:30 to 14:30.
        let t = t0() + 7 * 60 * MIN + 30 * MIN;
        p.device(&d, DeviceActivity::Busy, t);
        p.device(&d, DeviceActivity::NoWork, t + 60 * MIN);
        let now = t + 90 * MIN;
        let a = p.report(&Period::parse_shift("2026-11-21A").expect("a period"), now);
        let b = p.report(&Period::parse_shift("2026-11-21B").expect("a period"), now);
        let day = p.report(&Period::parse_day("2026-11-21").expect("a period"), now);
        assert_eq!(a.devices[0].busy_secs, 1800.0);
        assert_eq!(
            (b.devices[0].busy_secs, b.devices[0].idle_secs),
            (1800.0, 1800.0)
        );
        assert_eq!(day.devices[0].observed_secs, 5400.0);
        let next_day = p.report(&Period::parse_day("2026-11-22").expect("a period"), now);
        assert_eq!(next_day.devices[0].observed_secs, 0.0);
    }

    #[test]
    fn periods_parse_and_refuse_with_the_expected_form() {
        assert_eq!(
            Period::parse_shift("2026-11-21c")
                .expect("a period")
                .range()
                .1
                - Period::parse_shift("2026-11-21c")
                    .expect("a period")
                    .range()
                    .0,
            8 * HOUR_MS
        );
        let c = Period::parse_shift("2026-11-21C")
            .expect("a period")
            .range();
        assert_eq!(
            at(c.0).to_rfc3339(),
            "2026-11-21T22:00:00+00:00",
            "shift C starts at 22:00 on its date"
        );
        for bad in ["", "A", "2026-11-21D", "2026-13-01A", "yesterday"] {
            assert!(
                Period::parse_shift(bad)
                    .expect_err("refused")
                    .contains("e.g. 2026-11-21A"),
                "{bad}"
            );
        }
        assert!(Period::parse_day("21/11/2026").is_err());
    }

    #[test]
    fn the_line_capacity_is_its_slowest_stage_at_the_pace_its_stations_showed() {
        use Stage::{Dispatch, Laminate, Print, Qc};
        let s = |stage, steps, secs: i64| (stage, steps, secs * 1000);
        // (case, stations, capacity per hour)
        type Case = (&'static str, Vec<(Stage, u32, i64)>, Option<f64>);
        let cases: Vec<Case> = vec![
            ("nothing timed", vec![], None),
            (
                "a station that did nothing bounds nothing",
                vec![s(Print, 0, 0)],
                None,
            ),
            // Two printers at 60 s a step: 120/h; a laminator at 30 s: 120/h; QC at 10 s: 360/h.
            (
                "the slowest stage",
                vec![
                    s(Print, 10, 600),
                    s(Print, 5, 300),
                    s(Laminate, 20, 600),
                    s(Qc, 30, 300),
                ],
                Some(120.0),
            ),
            (
                "a stage of instant steps bounds nothing",
                vec![s(Print, 10, 600), s(Dispatch, 10, 0)],
                Some(60.0),
            ),
        ];
        for (case, stations, want) in cases {
            let got = line_capacity(stations.into_iter());
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{case}: {g} != {w}"),
                _ => assert_eq!(got, want, "{case}"),
            }
        }
        // From the tracker: one printer, two steps of 30 s each, in the current hour.
        let (mut p, d, op) = tracker();
        let t = t0();
        p.step(&d, Some(&op), Stage::Print, t, t + 30_000, true);
        p.step(&d, Some(&op), Stage::Print, t + 60_000, t + 90_000, false);
        let cap = p.capacity_per_hour(t + 2 * MIN - HOUR_MS, t + 2 * MIN);
        assert_eq!(cap, Some(120.0));
    }
}
