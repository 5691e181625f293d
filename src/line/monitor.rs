//! What the monitoring room reads off the line, kept incrementally by the actor so that a
//! snapshot costs the same with ten jobs or a hundred thousand: queues by priority class and
//! age, throughput per hour and per shift, on-time completion per class, and the prediction
//! behind the *due time at risk* alert.
//!
//! Nothing here carries passport-holder data: jobs are ids, classes and times.

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, TimeZone, Utc};
use hallctl_jobs::job::{JobId, PriorityClass};
use hallctl_jobs::scheduler::Millis;
use serde::{Deserialize, Serialize};

use crate::ledger::ShiftId;

const HOUR_MS: Millis = 3_600_000;

/// Age buckets of the queue snapshot: under 1 h, 1–4 h, 4–24 h, 24 h and more (age since the
/// job was received).
pub const AGE_BUCKETS: [&str; 4] = ["under_1h", "1h_to_4h", "4h_to_24h", "24h_and_more"];
const AGE_BOUNDS: [Millis; 3] = [HOUR_MS, 4 * HOUR_MS, 24 * HOUR_MS];

/// One priority class's waiting jobs (all stages together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassQueue {
    /// The class.
    pub class: PriorityClass,
    /// Jobs waiting for a step.
    pub queued: u32,
    /// The same jobs by age since they were received, in the order of [`AGE_BUCKETS`].
    pub by_age: [u32; 4],
}

/// Jobs waiting in the scheduler's queues, by class and age. Jobs move to an older bucket
/// lazily, when counted: each crossing costs one set operation, so counting never rescans.
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    entries: HashMap<JobId, (PriorityClass, Millis)>,
    /// Per class, per age bucket: the jobs by received time.
    buckets: [[BTreeSet<(Millis, JobId)>; 4]; 3],
}

fn bucket_of(age: Millis) -> usize {
    AGE_BOUNDS.iter().filter(|b| age >= **b).count()
}

impl QueueStats {
    /// A job entered a queue.
    pub(crate) fn add(&mut self, job: JobId, class: PriorityClass, received: Millis, now: Millis) {
        self.remove(job);
        self.entries.insert(job, (class, received));
        self.buckets[class.index()][bucket_of(now - received)].insert((received, job));
    }

    /// A job left its queue (assigned, held, cancelled).
    pub(crate) fn remove(&mut self, job: JobId) {
        if let Some((class, received)) = self.entries.remove(&job) {
            for b in &mut self.buckets[class.index()] {
                if b.remove(&(received, job)) {
                    break;
                }
            }
        }
    }

    fn age(&mut self, now: Millis) {
        for class in &mut self.buckets {
            for (b, bound) in AGE_BOUNDS.iter().enumerate() {
                while let Some(&first) = class[b].first() {
                    if now - first.0 < *bound {
                        break;
                    }
                    class[b].pop_first();
                    class[b + 1].insert(first);
                }
            }
        }
    }

    /// Jobs waiting, per class.
    pub(crate) fn view(&mut self, now: Millis) -> Vec<ClassQueue> {
        self.age(now);
        PriorityClass::ALL
            .iter()
            .map(|c| {
                let by_age = self.buckets[c.index()]
                    .each_ref()
                    .map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX));
                ClassQueue {
                    class: *c,
                    queued: by_age.iter().sum(),
                    by_age,
                }
            })
            .collect()
    }

    /// How many jobs wait.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// When the longest-waiting job was received.
    pub(crate) fn oldest(&self) -> Option<Millis> {
        self.buckets
            .iter()
            .filter_map(|class| class.iter().rev().find_map(|b| b.first()).map(|f| f.0))
            .min()
    }
}

/// Jobs completed in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Jobs dispatched in it.
    pub completed: u32,
}

/// Jobs completed in one shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftCount {
    /// The shift (`2026-11-21A`: A 06–14, B 14–22, C 22–06 UTC).
    pub shift: ShiftId,
    /// Jobs dispatched in it.
    pub completed: u32,
}

/// On-time completion of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnTime {
    /// The class.
    pub class: PriorityClass,
    /// Jobs dispatched in the last 24 hours (counted across restarts).
    pub completed: u32,
    /// Of those, dispatched no later than their due time.
    pub on_time: u32,
    /// `on_time / completed` in percent; absent before the first completion.
    pub percent: Option<f64>,
}

/// Throughput as the snapshot shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputView {
    /// The last 24 hours, oldest first, the current hour last.
    pub hourly: Vec<HourCount>,
    /// The current shift and the two before it, current first.
    pub shifts: Vec<ShiftCount>,
    /// The current rate in jobs per hour (completions of the last hour).
    pub rate_per_hour: f64,
}

/// Completed jobs: a ring of 24 hourly buckets (each with its on-time counts per class), the
/// last three shifts, and the completions of the last hour by minute (for the rate).
///
/// The counts survive a restart: the actor saves them with the ledger record they include up to
/// ([`Throughput::seq`]), every few seconds and when it stops; a restart loads them and counts
/// the dispatches recorded after that record (what a kill -9 or a power cut left uncounted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Throughput {
    /// When counting began (the first start of this data directory's line).
    started: Millis,
    /// Slot `h % 24` holds hour `h` (hours since the epoch).
    ring: [HourSlot; 24],
    shifts: VecDeque<(ShiftId, u32)>,
    /// (minute since the epoch, completions in it), oldest first, the last hour only.
    last_hour: VecDeque<(Millis, u32)>,
    /// Every completion counted.
    total: u64,
    /// The ledger record the counts include up to, as saved.
    pub(crate) seq: u64,
    /// When this run of the controller began, and what it has seen since: the due-at-risk
    /// prediction trusts only a rate this run watched long enough (saved counts from before a
    /// restart, an outage inside the last hour, would deflate it). Never saved.
    #[serde(skip)]
    run: RunWatch,
}

/// What the current run has watched: since when, and every completion since, for the rate.
#[derive(Debug, Clone, Default)]
struct RunWatch {
    started: Millis,
    completions: VecDeque<Millis>,
    total: u64,
}

/// One hour of completions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct HourSlot {
    /// Hours since the epoch (`-1`: never used).
    hour: Millis,
    completed: u32,
    /// Per class: (completed, on time).
    on_time: [(u32, u32); 3],
}

const EMPTY_HOUR: HourSlot = HourSlot {
    hour: -1,
    completed: 0,
    on_time: [(0, 0); 3],
};

/// The shortest window the rate is measured over: a rate from the first minutes after a start
/// would swing wildly.
const MIN_RATE_WINDOW_MS: Millis = 10 * 60_000;

const MINUTE_MS: Millis = 60_000;

/// The store's key of the saved counts (its `meta` tree).
pub(crate) const THROUGHPUT_KEY: &str = "line/throughput";

impl Throughput {
    pub(crate) fn new(now: Millis) -> Self {
        Throughput {
            started: now,
            ring: [EMPTY_HOUR; 24],
            shifts: VecDeque::new(),
            last_hour: VecDeque::new(),
            total: 0,
            seq: 0,
            run: RunWatch {
                started: now,
                ..RunWatch::default()
            },
        }
    }

    /// A new run of the controller begins at `now` (saved counts were loaded): the prediction
    /// waits for this run's own data.
    pub(crate) fn new_run(&mut self, now: Millis) {
        self.run = RunWatch {
            started: now,
            ..RunWatch::default()
        };
    }

    /// A job was dispatched at `now`.
    pub(crate) fn completed(&mut self, now: Millis, due: Millis, class: PriorityClass) {
        let hour = now.div_euclid(HOUR_MS);
        let slot = &mut self.ring[usize::try_from(hour.rem_euclid(24)).unwrap_or(0)];
        if slot.hour != hour {
            *slot = HourSlot { hour, ..EMPTY_HOUR };
        }
        slot.completed += 1;
        let c = &mut slot.on_time[class.index()];
        c.0 += 1;
        if now <= due {
            c.1 += 1;
        }
        let shift = shift_at(now);
        match self.shifts.iter_mut().find(|(s, _)| *s == shift) {
            Some((_, n)) => *n += 1,
            None => {
                // Counts replayed after a restart may be older than the newest shift kept.
                let at = self.shifts.iter().position(|(s, _)| *s < shift);
                self.shifts
                    .insert(at.unwrap_or(self.shifts.len()), (shift, 1));
                self.shifts.truncate(3);
            }
        }
        let minute = now.div_euclid(MINUTE_MS);
        match self.last_hour.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.last_hour.push_back((minute, 1)),
        }
        self.total += 1;
        if now >= self.run.started {
            self.run.completions.push_back(now);
            self.run.total += 1;
        }
    }

    /// Forgets the completions more than an hour before `now` (by whole minutes).
    fn prune(&mut self, now: Millis) {
        let minute = now.div_euclid(MINUTE_MS);
        while self
            .last_hour
            .front()
            .is_some_and(|(m, _)| minute - m >= 60)
        {
            self.last_hour.pop_front();
        }
        while self
            .run
            .completions
            .front()
            .is_some_and(|t| now - t > HOUR_MS)
        {
            self.run.completions.pop_front();
        }
    }

    fn in_last_hour(&self) -> usize {
        self.last_hour.iter().map(|(_, n)| *n as usize).sum()
    }

    /// Jobs per hour over the last hour (or since the start, at least ten minutes), as the
    /// snapshot shows it.
    pub(crate) fn rate_per_hour(&mut self, now: Millis) -> f64 {
        self.prune(now);
        let window = (now - self.started).clamp(MIN_RATE_WINDOW_MS, HOUR_MS);
        self.in_last_hour() as f64 * HOUR_MS as f64 / window as f64
    }

    /// The rate the due-at-risk prediction may use ([`usable_rate`]): `None` until `min` is met.
    pub(crate) fn usable_rate(
        &mut self,
        now: Millis,
        capacity_per_hour: Option<f64>,
        min: RateMinimum,
    ) -> Option<f64> {
        self.prune(now);
        usable_rate(
            self.run.completions.len(),
            now - self.run.started,
            self.run.total,
            capacity_per_hour,
            min,
        )
    }

    pub(crate) fn view(&mut self, now: Millis) -> ThroughputView {
        let hour = now.div_euclid(HOUR_MS);
        let hourly = (hour - 23..=hour)
            .map(|h| HourCount {
                hour: at(h * HOUR_MS),
                completed: self.slot(h).map_or(0, |s| s.completed),
            })
            .collect();
        let current = shift_at(now);
        let mut shifts: Vec<ShiftCount> = Vec::with_capacity(3);
        if self.shifts.front().is_none_or(|s| s.0 != current) {
            shifts.push(ShiftCount {
                shift: current,
                completed: 0,
            });
        }
        shifts.extend(self.shifts.iter().map(|(s, n)| ShiftCount {
            shift: s.clone(),
            completed: *n,
        }));
        shifts.truncate(3);
        ThroughputView {
            hourly,
            shifts,
            rate_per_hour: self.rate_per_hour(now),
        }
    }

    /// Hour `h`'s slot, if the ring still holds it.
    fn slot(&self, h: Millis) -> Option<&HourSlot> {
        Some(&self.ring[usize::try_from(h.rem_euclid(24)).ok()?]).filter(|s| s.hour == h)
    }

    /// On-time completion per class over the last 24 hours.
    pub(crate) fn on_time(&self, now: Millis) -> Vec<OnTime> {
        let hour = now.div_euclid(HOUR_MS);
        PriorityClass::ALL
            .iter()
            .map(|c| {
                let (completed, on_time) = (hour - 23..=hour)
                    .filter_map(|h| self.slot(h))
                    .map(|s| s.on_time[c.index()])
                    .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
                OnTime {
                    class: *c,
                    completed,
                    on_time,
                    percent: (completed > 0)
                        .then(|| f64::from(on_time) * 100.0 / f64::from(completed)),
                }
            })
            .collect()
    }
}

/// How much the line must have been watched before its rate predicts anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateMinimum {
    /// Jobs dispatched since the controller started (`alerts.due_at_risk_min_completions`).
    pub completions: u64,
    /// Time watched since the controller started (`alerts.due_at_risk_min_window_secs`).
    pub window: Millis,
}

/// The dispatch rate (jobs per hour) the due-at-risk prediction may use, or `None` while there
/// is not enough data to predict anything.
///
/// - Not enough data: fewer than `min.completions` jobs dispatched since the start
///   (`total`), or watched for less than `min.window` (`watched`).
/// - The rate: the `in_window` completions of the last hour over the time they were counted
///   in, the hour or the time since the start if shorter, which is at least `min.window` by
///   then. The snapshot's figure ([`Throughput::rate_per_hour`]) divides the completions of the
///   first ten minutes by a fixed ten minutes, so it grows with every completion whatever the
///   pace: the "9300 jobs/h" of a demo hall at speed 20 was its 1550 jobs of the first three
///   minutes.
/// - At most `capacity_per_hour`, what the line's stations could do at the pace they showed
///   ([`super::perf::line_capacity`]): the jobs still to finish go through the slowest stage,
///   whatever a burst of dispatches from the work in progress suggests.
pub(crate) fn usable_rate(
    in_window: usize,
    watched: Millis,
    total: u64,
    capacity_per_hour: Option<f64>,
    min: RateMinimum,
) -> Option<f64> {
    if total < min.completions || watched < min.window || watched <= 0 {
        return None;
    }
    let window = watched.min(HOUR_MS);
    let rate = in_window as f64 * HOUR_MS as f64 / window as f64;
    Some(match capacity_per_hour {
        Some(cap) if cap.is_finite() && cap >= 0.0 => rate.min(cap),
        _ => rate,
    })
}

pub(crate) fn at(t: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t).single().unwrap_or_default()
}

fn shift_at(t: Millis) -> ShiftId {
    super::actor::shift_of(at(t))
}

/// The jobs of one class predicted to finish too late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtRisk {
    /// How many.
    pub count: u32,
    /// The one due first.
    pub first: JobId,
    /// Its due time.
    pub first_due: Millis,
}

/// Which unfinished jobs will miss their due time at the current rate.
///
/// `by_due` lists every unfinished job in due order (the order the scheduler roughly follows,
/// since it ranks by slack): the job at position `k` is predicted to finish after `k + 1` jobs'
/// worth of line time, `now + (k + 1) / rate`. It is at risk when that prediction plus the
/// safety `margin` passes its due time. With a rate of 0 (nothing dispatched in the last hour),
/// only jobs already within the margin of their due time are at risk. The caller passes a rate
/// only once there is enough data for one ([`usable_rate`]). The walk stops at the first
/// due time no prediction can reach, so a long queue of far-off work is not rescanned.
pub(crate) fn predict_at_risk<'a>(
    now: Millis,
    rate_per_hour: f64,
    margin: Millis,
    total: usize,
    by_due: impl Iterator<Item = (Millis, JobId, PriorityClass)> + 'a,
) -> [Option<AtRisk>; 3] {
    let per_job = (rate_per_hour > 0.0).then(|| HOUR_MS as f64 / rate_per_hour);
    let horizon = match per_job {
        Some(p) => now
            .saturating_add(margin)
            .saturating_add((p * total as f64).min(i64::MAX as f64 / 4.0) as Millis),
        None => now.saturating_add(margin),
    };
    let mut out: [Option<AtRisk>; 3] = [None; 3];
    for (k, (due, job, class)) in by_due.enumerate() {
        if due >= horizon {
            break;
        }
        let finish = match per_job {
            Some(p) => now.saturating_add((p * (k as f64 + 1.0)) as Millis),
            None => now,
        };
        if finish.saturating_add(margin) > due {
            let e = out[class.index()].get_or_insert(AtRisk {
                count: 0,
                first: job,
                first_due: due,
            });
            e.count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    #[test]
    fn queued_jobs_move_to_older_buckets_as_time_passes_and_leave_when_removed() {
        let mut q = QueueStats::default();
        let t0 = 1_000 * HOUR_MS;
        q.add(JobId(1), PriorityClass::Normal, t0, t0);
        q.add(JobId(2), PriorityClass::Normal, t0 - 2 * HOUR_MS, t0);
        q.add(JobId(3), PriorityClass::Urgent, t0 - 30 * HOUR_MS, t0);
        let v = q.view(t0);
        assert_eq!(v[0].by_age, [1, 1, 0, 0]);
        assert_eq!(v[1].by_age, [0, 0, 0, 1]);
        assert_eq!(q.oldest(), Some(t0 - 30 * HOUR_MS));
        // Five hours on: job 1 is 5 h old, job 2 is 7 h old.
        let v = q.view(t0 + 5 * HOUR_MS);
        assert_eq!(v[0].by_age, [0, 0, 2, 0]);
        q.remove(JobId(3));
        q.remove(JobId(3));
        assert_eq!(q.view(t0 + 5 * HOUR_MS)[1].queued, 0);
        assert_eq!(q.oldest(), Some(t0 - 2 * HOUR_MS));
        // Re-adding (a reprioritised job) moves it, never counts it twice.
        q.add(
            JobId(2),
            PriorityClass::FastTrack,
            t0 - 2 * HOUR_MS,
            t0 + 5 * HOUR_MS,
        );
        let v = q.view(t0 + 5 * HOUR_MS);
        assert_eq!((v[0].queued, v[2].queued, q.len()), (1, 1, 2));
    }

    #[test]
    fn throughput_counts_hours_shifts_rate_and_on_time() {
        // 2026-11-21 13:00 UTC (shift A), then 14:30 (shift B).
        let t = Utc
            .with_ymd_and_hms(2026, 11, 21, 13, 0, 0)
            .unwrap()
            .timestamp_millis();
        let mut th = Throughput::new(t - 2 * HOUR_MS);
        th.completed(t, t + HOUR_MS, PriorityClass::Normal);
        th.completed(t + 10 * MIN, t, PriorityClass::Normal); // late
        th.completed(t + 90 * MIN, t + 2 * HOUR_MS, PriorityClass::Urgent);
        let v = th.view(t + 90 * MIN);
        assert_eq!(v.hourly.len(), 24);
        assert_eq!(v.hourly[23].completed, 1, "14:00–15:00");
        assert_eq!(v.hourly[22].completed, 2, "13:00–14:00");
        assert_eq!(
            v.shifts
                .iter()
                .map(|s| (s.shift.as_str().to_string(), s.completed))
                .collect::<Vec<_>>(),
            [
                ("2026-11-21B".to_string(), 1),
                ("2026-11-21A".to_string(), 2)
            ]
        );
        // Two completions within the last hour (14:30 and 13:10 is 80 min ago: out).
        assert!((v.rate_per_hour - 1.0).abs() < 1e-9, "{}", v.rate_per_hour);
        let ot = th.on_time(t + 90 * MIN);
        assert_eq!((ot[0].completed, ot[0].on_time), (2, 1));
        assert_eq!(ot[0].percent, Some(50.0));
        assert_eq!(ot[1].percent, Some(100.0));
        assert_eq!(ot[2].percent, None);
        // A day later the ring has forgotten those hours.
        let v = th.view(t + 25 * HOUR_MS);
        assert!(v.hourly.iter().all(|h| h.completed == 0));
    }

    #[test]
    fn throughput_counts_saved_and_loaded_are_the_same_and_late_counts_find_their_shift() {
        // 2026-11-21 13:00 UTC (shift A), then 14:30 (shift B).
        let t = Utc
            .with_ymd_and_hms(2026, 11, 21, 13, 0, 0)
            .unwrap()
            .timestamp_millis();
        let mut th = Throughput::new(t - 2 * HOUR_MS);
        th.completed(t, t + HOUR_MS, PriorityClass::Normal);
        th.completed(t + 90 * MIN, t, PriorityClass::Urgent); // late, shift B
        th.seq = 42;
        let json = serde_json::to_vec(&th).expect("saved");
        let mut back: Throughput = serde_json::from_slice(&json).expect("loaded");
        assert_eq!(back.seq, 42);
        let now = t + 91 * MIN;
        assert_eq!(back.view(now), th.view(now));
        assert_eq!(back.on_time(now), th.on_time(now));
        // A dispatch of shift A counted after a restart in shift B (replayed from the ledger)
        // goes to shift A, and the current shift stays first.
        back.completed(t + 30 * MIN, t + HOUR_MS, PriorityClass::Normal);
        let shifts: Vec<(String, u32)> = back
            .view(now)
            .shifts
            .iter()
            .map(|s| (s.shift.as_str().to_string(), s.completed))
            .collect();
        assert_eq!(
            shifts,
            [
                ("2026-11-21B".to_string(), 1),
                ("2026-11-21A".to_string(), 2)
            ]
        );
        let ot = back.on_time(now);
        assert_eq!((ot[0].completed, ot[0].on_time), (2, 2));
        assert_eq!((ot[1].completed, ot[1].on_time), (1, 0));
        // On time is the last 24 hours': a day later, nothing.
        assert!(
            back.on_time(now + 25 * HOUR_MS)
                .iter()
                .all(|o| o.completed == 0)
        );

        // The prediction trusts only what this run watched: the saved counts (an outage may
        // sit inside their last hour) are not a rate until the run has its own.
        let min = RateMinimum {
            completions: 1,
            window: 15 * MIN,
        };
        assert!(
            th.usable_rate(now, None, min).is_some(),
            "the run that counted them"
        );
        back.new_run(now);
        assert_eq!(
            back.usable_rate(now, None, min),
            None,
            "right after a restart"
        );
        back.completed(now + MIN, now + HOUR_MS, PriorityClass::Normal);
        assert_eq!(
            back.usable_rate(now + 5 * MIN, None, min),
            None,
            "too short a watch"
        );
        assert!(
            back.usable_rate(now + 16 * MIN, None, min).is_some(),
            "watched enough"
        );
    }

    #[test]
    fn a_rate_is_usable_only_with_enough_data_and_never_beyond_the_stations() {
        let min = RateMinimum {
            completions: 20,
            window: 15 * MIN,
        };
        // (case, completions of the last hour, watched, since the start, capacity, rate)
        type Case = (&'static str, usize, Millis, u64, Option<f64>, Option<f64>);
        let cases: [Case; 10] = [
            ("nothing yet", 0, 0, 0, None, None),
            ("a burst at the start", 30, 2 * MIN, 30, None, None),
            (
                "watched long enough, too few jobs",
                19,
                20 * MIN,
                19,
                None,
                None,
            ),
            (
                "enough jobs, not watched long enough",
                200,
                14 * MIN,
                200,
                None,
                None,
            ),
            (
                "both: over the 15 minutes watched",
                20,
                15 * MIN,
                20,
                None,
                Some(80.0),
            ),
            (
                "over the last hour",
                120,
                5 * HOUR_MS,
                900,
                None,
                Some(120.0),
            ),
            (
                "the line stopped an hour ago",
                0,
                5 * HOUR_MS,
                900,
                None,
                Some(0.0),
            ),
            (
                "below the stations' capacity",
                120,
                HOUR_MS,
                120,
                Some(600.0),
                Some(120.0),
            ),
            // The demo hall at speed 20: 1550 jobs dispatched in its first three minutes read
            // 1550 / 10 min = 9300 jobs/h. Now no figure until 15 minutes are watched, and then
            // never more than the stations showed they could do.
            (
                "9300 jobs/h: the first minutes",
                1550,
                3 * MIN,
                1550,
                Some(600.0),
                None,
            ),
            (
                "9300 jobs/h: capped",
                2325,
                15 * MIN,
                2325,
                Some(600.0),
                Some(600.0),
            ),
        ];
        for (case, in_window, watched, total, cap, want) in cases {
            assert_eq!(
                usable_rate(in_window, watched, total, cap, min),
                want,
                "{case}"
            );
        }
        // The snapshot's figure for the first case of the demo hall was 9300.
        let t = 1_000 * HOUR_MS;
        let mut th = Throughput::new(t);
        for i in 0..1550 {
            th.completed(t + i * 100, t + HOUR_MS, PriorityClass::Urgent);
        }
        assert!((th.rate_per_hour(t + 3 * MIN) - 9300.0).abs() < 1e-6);
        assert_eq!(th.usable_rate(t + 3 * MIN, None, min), None);
        assert_eq!(th.usable_rate(t + 15 * MIN, Some(600.0), min), Some(600.0));
        // An hour later, with nothing dispatched since: a measured 0.
        assert_eq!(th.usable_rate(t + 2 * HOUR_MS, Some(600.0), min), Some(0.0));
    }

    fn jobs(list: &[(Millis, u64, PriorityClass)]) -> Vec<(Millis, JobId, PriorityClass)> {
        list.iter().map(|(d, j, c)| (*d, JobId(*j), *c)).collect()
    }

    #[test]
    fn due_at_risk_is_predicted_from_the_rate_and_the_queue_ahead() {
        let now = 1_000 * HOUR_MS;
        let n = PriorityClass::Normal;
        let u = PriorityClass::Urgent;
        // 6 jobs per hour: one every 10 minutes. Margin 15 minutes.
        let list = jobs(&[
            (now + 30 * MIN, 1, u),  // finishes at +10, +15 margin = +25 <= +30: fine
            (now + 30 * MIN, 2, n),  // +20 +15 = +35 > +30: at risk
            (now + 40 * MIN, 3, n),  // +30 +15 = +45 > +40: at risk
            (now + 50 * MIN, 5, u),  // +40 +15 = +55 > +50: at risk
            (now + 120 * MIN, 4, u), // +50 +15: fine (past the horizon: not even looked at)
        ]);
        let r = predict_at_risk(now, 6.0, 15 * MIN, list.len(), list.into_iter());
        assert_eq!(
            r[n.index()],
            Some(AtRisk {
                count: 2,
                first: JobId(2),
                first_due: now + 30 * MIN
            })
        );
        assert_eq!(
            r[u.index()].map(|a| (a.count, a.first)),
            Some((1, JobId(5)))
        );
        assert_eq!(r[PriorityClass::FastTrack.index()], None);
    }

    #[test]
    fn with_no_rate_only_jobs_within_the_margin_are_at_risk() {
        let now = 1_000 * HOUR_MS;
        let n = PriorityClass::Normal;
        let list = jobs(&[(now + 5 * MIN, 1, n), (now + 20 * MIN, 2, n)]);
        let r = predict_at_risk(now, 0.0, 15 * MIN, 2, list.into_iter());
        assert_eq!(r[0].map(|a| (a.count, a.first)), Some((1, JobId(1))));
        // A fast line clears both well before their due times.
        let list = jobs(&[(now + 30 * MIN, 1, n), (now + 40 * MIN, 2, n)]);
        let r = predict_at_risk(now, 60.0, 15 * MIN, 2, list.into_iter());
        assert_eq!(r, [None; 3]);
    }

    #[test]
    fn the_walk_stops_at_due_times_no_prediction_reaches() {
        let now = 1_000 * HOUR_MS;
        let mut seen = 0;
        let it = (0..1_000_000u64).map(|i| {
            seen += 1;
            (
                now + (i as Millis + 1) * HOUR_MS,
                JobId(i),
                PriorityClass::Normal,
            )
        });
        // 100 jobs/h, 3 jobs: the horizon is a few minutes away; the first due time is 1 h.
        let r = predict_at_risk(now, 100.0, MIN, 3, it);
        assert_eq!(r, [None; 3]);
        assert_eq!(seen, 1);
    }
}
