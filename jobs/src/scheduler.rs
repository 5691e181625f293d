//! The scheduler: which queued step goes to which station next, and why.
//!
//! It is pure code: the caller tells it what happened (a job was queued, a station's device or
//! operator changed, a step finished) and asks [`Scheduler::assign`] for the assignments the line
//! can make *now*. It holds no clock and does no I/O, so the controller and the line simulator
//! drive the very same code, and the same inputs always give the same assignments.
//!
//! # The rule
//! Each stage (print, laminate, QC, dispatch) has one queue, ordered by a *rank* fixed when the job
//! is queued (ties broken by queue order):
//!
//! ```text
//! rank = min(due − lead(class, groups), received + aging_cap(class))
//! ```
//!
//! * `due − lead` is earliest-due-date with a per-class safety lead: a fast-track job due at 06:00
//!   ranks as if it were due at 02:00, so it wins against a normal job due at 04:00 while both can
//!   still make it. A boosted group (a pilgrimage batch) gets its own lead and moves as a whole.
//! * `received + aging_cap` is aging: a job's rank is never later than the moment it has waited
//!   its class's cap, so a job can be passed only by work ranked earlier than that moment — at most
//!   by jobs that arrive within the largest lead of it. Nothing starves: the wait of any job is
//!   bounded by its cap plus the largest lead, plus the work ranked ahead of it.
//!
//! Because the rank depends only on the job, a job keeps its place across stages and after a spoil
//! (priority kept).
//!
//! # Separation of duties and the choice of station
//! The operator who laminates a booklet never printed it (not configurable: it is why this product
//! exists). With [`Separation::strict`] (the default) QC is a third person, neither the printer
//! nor the laminator. The rule itself is [`Separation::check`], shared with the job record.
//!
//! Each stage's queue is partitioned by who is barred from its jobs (the printer and, for QC, the
//! laminator), each partition a `BTreeSet` in rank order. A free station's best job is the first
//! of every partition its operator may take: `O(p log n)` for `p` partitions, whatever the
//! backlog, and never a scan past work the operator may not do. The line is *work-conserving*: after
//! [`Scheduler::assign`], no free station is idle while a job it may take waits.
//!
//! Stations pick nothing. The best-ranked job any free station may take is assigned first; when
//! several free stations may take it, it goes to the one with the worst alternative (no other
//! eligible job, or a later-ranked one), so that a job only one operator may take is not left
//! waiting; among equals, to the station idle longest (ties by station id), which spreads work
//! fairly across operators.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::job::Separation;
use crate::job::{DeviceId, GroupTag, JobId, OperatorId, PriorityClass, Stage, StationId};

/// Milliseconds since the Unix epoch (or since the start of a simulation): the scheduler's clock
/// values, supplied by the caller.
pub type Millis = i64;

const HOUR: Millis = 3_600_000;

/// How far [`Reason::barred_ahead`] counts: it is a report, not a search, so it stops here.
pub const BARRED_COUNT_LIMIT: usize = 10_000;

/// How the queues are ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    /// Due-date and slack based, with class leads and aging (the production rule).
    Slack(SlackPolicy),
    /// First in, first out per stage: the baseline every report compares against.
    Fifo,
}

impl Policy {
    /// The policy's short name for reports.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Which rule this is.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Slack(_) => PolicyKind::Slack,
            Policy::Fifo => PolicyKind::Fifo,
        }
    }
}

/// The rule that ranked a queue, as recorded in a [`Reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// [`Policy::Slack`].
    Slack,
    /// [`Policy::Fifo`].
    Fifo,
}

impl PolicyKind {
    /// `slack` or `fifo`.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Slack => "slack",
            PolicyKind::Fifo => "fifo",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::Slack(SlackPolicy::default())
    }
}

/// Parameters of the production rule. Defaults suit a hall whose fast-track jobs are due within
/// hours and normal jobs within days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackPolicy {
    /// Safety lead per class (normal, urgent, fast-track), in ms: subtracted from the due time.
    pub class_lead: [Millis; 3],
    /// Aging cap per class, in ms: after waiting this long a job is passed by no newer job.
    pub aging_cap: [Millis; 3],
    /// Extra lead for boosted groups (e.g. pilgrims before the Hajj season), in ms. The largest
    /// lead among a job's boosted groups applies, if it exceeds its class lead.
    pub boosted_groups: Vec<(GroupTag, Millis)>,
}

impl Default for SlackPolicy {
    fn default() -> Self {
        Self {
            class_lead: [0, 2 * HOUR, 4 * HOUR],
            aging_cap: [72 * HOUR, 24 * HOUR, 8 * HOUR],
            boosted_groups: Vec::new(),
        }
    }
}

/// What the scheduler needs to know of a job to queue it for a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// The job.
    pub id: JobId,
    /// Its service class.
    pub class: PriorityClass,
    /// Its group tags (only boosted groups matter here).
    pub groups: Vec<GroupTag>,
    /// When it is due.
    pub due: Millis,
    /// When it entered the line (the base of aging).
    pub received: Millis,
    /// Who printed the current booklet (for lamination and QC).
    pub printed_by: Option<OperatorId>,
    /// Who laminated it (for QC).
    pub laminated_by: Option<OperatorId>,
}

/// A device's readiness, as the drivers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceReadiness {
    /// Answered its last poll and reports no fault.
    Ready,
    /// Paused by a supervisor.
    Paused,
    /// Reports a fault (jam, ink out, overheat...).
    Faulted,
    /// Not answering.
    Offline,
}

/// A station as the scheduler sees it: one device, at most one operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationSpec {
    /// The station.
    pub id: StationId,
    /// The stage it serves.
    pub stage: Stage,
    /// Its device.
    pub device: DeviceId,
}

#[derive(Debug, Clone)]
struct Station {
    spec: StationSpec,
    device: DeviceReadiness,
    operator: Option<OperatorId>,
    /// Items (booklets or patches) left in the open custody session; `None` where the stage
    /// consumes none.
    consumables: Option<u32>,
    busy_with: Option<JobId>,
    idle_since: Millis,
}

impl Station {
    fn can_work(&self) -> bool {
        self.busy_with.is_none()
            && self.device == DeviceReadiness::Ready
            && self.operator.is_some()
            && self.consumables != Some(0)
    }
}

/// Why a job went where it went: recorded with every assignment (ICAO D.4: every assignment is
/// logged, and operators never choose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule that ranked the queue.
    pub policy: PolicyKind,
    /// The job's class.
    pub class: PriorityClass,
    /// The job's rank (ms): its effective deadline under `slack`, its queue order under `fifo`.
    pub rank: Millis,
    /// The job had waited its class's aging cap, and that is what ranked it.
    pub aged: bool,
    /// The boosted group whose lead applied, if any.
    pub boosted_group: Option<GroupTag>,
    /// Jobs ranked ahead that this station's operator may not take (separation of duties);
    /// counted up to [`BARRED_COUNT_LIMIT`].
    pub barred_ahead: u32,
    /// How many jobs were waiting for this stage.
    pub waiting: u32,
    /// How many free stations could take the job.
    pub eligible_stations: u32,
    /// Why this station of those.
    pub choice: StationChoice,
}

/// Why a job went to one station rather than another free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationChoice {
    /// No other free station may take the job.
    OnlyEligible,
    /// The other eligible stations have other work they may take; this one has less.
    FewestAlternatives,
    /// Equal alternatives: the station idle longest.
    IdleLongest,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            PolicyKind::Fifo => write!(f, "first in line (fifo) of {} waiting", self.waiting)?,
            PolicyKind::Slack => {
                write!(
                    f,
                    "{} job with the earliest effective deadline of {} waiting",
                    self.class.name(),
                    self.waiting
                )?;
                if self.aged {
                    write!(f, " (aged: it waited its class's cap)")?;
                }
                if let Some(g) = &self.boosted_group {
                    write!(f, " (group {g} boosted)")?;
                }
            }
        }
        if self.barred_ahead > 0 {
            write!(
                f,
                "; {} ranked ahead barred for this operator by separation of duties",
                self.barred_ahead
            )?;
        }
        match self.choice {
            StationChoice::OnlyEligible => write!(f, "; the only free station that may take it"),
            StationChoice::FewestAlternatives => write!(
                f,
                "; of {} free stations that may take it, the one with the least other work",
                self.eligible_stations
            ),
            StationChoice::IdleLongest => write!(
                f,
                "; idle longest of {} free stations that may take it",
                self.eligible_stations
            ),
        }
    }
}

/// One decision: this job's next step goes to this station, device and operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job: JobId,
    /// The step.
    pub stage: Stage,
    /// The station.
    pub station: StationId,
    /// The station's device.
    pub device: DeviceId,
    /// The operator signed in there.
    pub operator: OperatorId,
    /// Why.
    pub reason: Reason,
}

/// Something the scheduler was told that does not fit what it knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// No station with that id.
    #[error("unknown station {0}")]
    UnknownStation(StationId),
    /// The station id is already known.
    #[error("station {0} is already configured")]
    DuplicateStation(StationId),
    /// The job is already queued or in a step.
    #[error("job {0} is already scheduled")]
    AlreadyScheduled(JobId),
    /// The operator is already signed in at another station (one station per operator).
    #[error("operator {operator} is already signed in at {station}")]
    OperatorElsewhere {
        /// The operator.
        operator: OperatorId,
        /// Where they are signed in.
        station: StationId,
    },
    /// Another operator is signed in at that station (one operator per station).
    #[error("station {station} is taken by operator {operator}")]
    StationTaken {
        /// The station.
        station: StationId,
        /// Who is there.
        operator: OperatorId,
    },
}

type Key = (Millis, u64, JobId);

/// Who may not take a queued job (its printer and laminator, as far as they matter at its stage).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Bar {
    printed_by: Option<OperatorId>,
    laminated_by: Option<OperatorId>,
}

/// One stage's queue, partitioned by [`Bar`] so that a station finds its best eligible job without
/// passing over jobs its operator may not take.
#[derive(Debug, Clone, Default)]
struct StageQueue {
    parts: BTreeMap<Bar, BTreeSet<Key>>,
    len: usize,
}

impl StageQueue {
    fn insert(&mut self, bar: Bar, key: Key) {
        if self.parts.entry(bar).or_default().insert(key) {
            self.len += 1;
        }
    }

    fn remove(&mut self, bar: &Bar, key: &Key) {
        if let Some(set) = self.parts.get_mut(bar)
            && set.remove(key)
        {
            self.len -= 1;
            if set.is_empty() {
                self.parts.remove(bar);
            }
        }
    }

    /// The best-ranked job `op` may take at `stage`, other than `except`.
    fn best_for(
        &self,
        stage: Stage,
        separation: &Separation,
        op: &OperatorId,
        except: Option<&Key>,
    ) -> Option<Key> {
        self.parts
            .iter()
            .filter(|(bar, _)| allows(stage, separation, bar, op))
            .filter_map(|(_, set)| set.iter().find(|k| Some(*k) != except).copied())
            .min()
    }

    /// Jobs ranked ahead of `key` that `op` may not take, counted up to a limit.
    fn barred_ahead(
        &self,
        stage: Stage,
        separation: &Separation,
        op: &OperatorId,
        key: &Key,
    ) -> u32 {
        let mut n = 0;
        for (bar, set) in &self.parts {
            if !allows(stage, separation, bar, op) {
                n += set.range(..*key).take(BARRED_COUNT_LIMIT - n).count();
                if n >= BARRED_COUNT_LIMIT {
                    break;
                }
            }
        }
        n as u32
    }
}

fn allows(stage: Stage, separation: &Separation, bar: &Bar, op: &OperatorId) -> bool {
    separation
        .check(
            stage,
            op,
            bar.printed_by.as_ref(),
            bar.laminated_by.as_ref(),
        )
        .is_ok()
}

#[derive(Debug, Clone)]
struct Entry {
    job: QueuedJob,
    stage: Stage,
    key: Key,
    bar: Bar,
    by_due: Millis,
    by_age: Millis,
    boosted: Option<GroupTag>,
}

/// The scheduler's state: queues per stage and the stations of the line.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policy: Policy,
    separation: Separation,
    queues: [StageQueue; 4],
    waiting: HashMap<JobId, Entry>,
    /// Jobs in a step, and the station doing it.
    in_flight: HashMap<JobId, usize>,
    stations: Vec<Station>,
    by_id: HashMap<StationId, usize>,
    seq: u64,
}

impl Scheduler {
    /// An empty line with the given rules.
    pub fn new(policy: Policy, separation: Separation) -> Self {
        Self {
            policy,
            separation,
            queues: Default::default(),
            waiting: HashMap::new(),
            in_flight: HashMap::new(),
            stations: Vec::new(),
            by_id: HashMap::new(),
            seq: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Adds a station: its device starts offline and no one is signed in.
    ///
    /// # Errors
    /// [`SchedulerError::DuplicateStation`].
    pub fn add_station(&mut self, spec: StationSpec, now: Millis) -> Result<(), SchedulerError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(SchedulerError::DuplicateStation(spec.id));
        }
        self.by_id.insert(spec.id.clone(), self.stations.len());
        self.stations.push(Station {
            spec,
            device: DeviceReadiness::Offline,
            operator: None,
            consumables: None,
            busy_with: None,
            idle_since: now,
        });
        Ok(())
    }

    fn station_index(&self, id: &StationId) -> Result<usize, SchedulerError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| SchedulerError::UnknownStation(id.clone()))
    }

    /// Records a device's readiness.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownStation`].
    pub fn set_device(
        &mut self,
        station: &StationId,
        readiness: DeviceReadiness,
    ) -> Result<(), SchedulerError> {
        let i = self.station_index(station)?;
        self.stations[i].device = readiness;
        Ok(())
    }

    /// Signs an operator in at a station, or out with `None`. One station per operator and one
    /// operator per station.
    ///
    /// # Errors
    /// [`SchedulerError::OperatorElsewhere`], [`SchedulerError::StationTaken`] or
    /// [`SchedulerError::UnknownStation`]; nothing changes.
    pub fn set_operator(
        &mut self,
        station: &StationId,
        operator: Option<OperatorId>,
        now: Millis,
    ) -> Result<(), SchedulerError> {
        let i = self.station_index(station)?;
        if let Some(op) = &operator
            && let Some(other) = self
                .stations
                .iter()
                .find(|s| s.operator.as_ref() == Some(op) && &s.spec.id != station)
        {
            return Err(SchedulerError::OperatorElsewhere {
                operator: op.clone(),
                station: other.spec.id.clone(),
            });
        }
        let st = &mut self.stations[i];
        if let (Some(current), Some(new)) = (&st.operator, &operator)
            && current != new
        {
            return Err(SchedulerError::StationTaken {
                station: station.clone(),
                operator: current.clone(),
            });
        }
        st.operator = operator;
        st.idle_since = now;
        Ok(())
    }

    /// Sets how many items are left in the station's custody session (`None`: not counted).
    ///
    /// # Errors
    /// [`SchedulerError::UnknownStation`].
    pub fn set_consumables(
        &mut self,
        station: &StationId,
        left: Option<u32>,
    ) -> Result<(), SchedulerError> {
        let i = self.station_index(station)?;
        self.stations[i].consumables = left;
        Ok(())
    }

    /// The step at `station` is over (done, spoiled or aborted): the station is free again and its
    /// job may be queued for its next step.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownStation`].
    pub fn release(&mut self, station: &StationId, now: Millis) -> Result<(), SchedulerError> {
        let i = self.station_index(station)?;
        let st = &mut self.stations[i];
        if let Some(job) = st.busy_with.take() {
            self.in_flight.remove(&job);
        }
        st.idle_since = now;
        Ok(())
    }

    /// Queues a job for a stage.
    ///
    /// # Errors
    /// [`SchedulerError::AlreadyScheduled`] if it is already queued or in a step (release its
    /// station first).
    pub fn enqueue(&mut self, job: QueuedJob, stage: Stage) -> Result<(), SchedulerError> {
        if self.waiting.contains_key(&job.id) || self.in_flight.contains_key(&job.id) {
            return Err(SchedulerError::AlreadyScheduled(job.id));
        }
        self.seq += 1;
        let (rank, by_due, by_age, boosted) = match &self.policy {
            Policy::Fifo => (self.seq as Millis, Millis::MAX, Millis::MAX, None),
            Policy::Slack(p) => {
                let mut lead = p.class_lead[job.class.index()];
                let mut boosted = None;
                for (g, l) in &p.boosted_groups {
                    if *l > lead && job.groups.contains(g) {
                        lead = *l;
                        boosted = Some(g.clone());
                    }
                }
                let by_due = job.due.saturating_sub(lead);
                let by_age = job.received.saturating_add(p.aging_cap[job.class.index()]);
                let boosted = boosted.filter(|_| by_due <= by_age);
                (by_due.min(by_age), by_due, by_age, boosted)
            }
        };
        let key = (rank, self.seq, job.id);
        let bar = match stage {
            Stage::Laminate | Stage::Qc => Bar {
                printed_by: job.printed_by.clone(),
                laminated_by: job.laminated_by.clone(),
            },
            Stage::Print | Stage::Dispatch => Bar::default(),
        };
        self.queues[stage.index()].insert(bar.clone(), key);
        self.waiting.insert(
            job.id,
            Entry {
                job,
                stage,
                key,
                bar,
                by_due,
                by_age,
                boosted,
            },
        );
        Ok(())
    }

    /// Takes a queued job out (hold, cancel). Returns the stage it waited for, if it was queued.
    pub fn remove(&mut self, job: JobId) -> Option<Stage> {
        let e = self.waiting.remove(&job)?;
        self.queues[e.stage.index()].remove(&e.bar, &e.key);
        Some(e.stage)
    }

    /// How many jobs wait for `stage`.
    pub fn queued(&self, stage: Stage) -> usize {
        self.queues[stage.index()].len
    }

    /// Makes every assignment the line can make now, downstream stages first (finishing work in
    /// progress frees custody and space before new work starts). Assigned jobs leave their queue
    /// and their stations become busy until [`Scheduler::release`].
    pub fn assign(&mut self, now: Millis) -> Vec<Assignment> {
        let mut out = Vec::new();
        for stage in [Stage::Dispatch, Stage::Qc, Stage::Laminate, Stage::Print] {
            self.assign_stage(stage, now, &mut out);
        }
        out
    }

    fn assign_stage(&mut self, stage: Stage, now: Millis, out: &mut Vec<Assignment>) {
        // Free stations with their operators, idle longest first, then by id: deterministic.
        let mut free: Vec<(usize, OperatorId)> = self
            .stations
            .iter()
            .enumerate()
            .filter(|(_, s)| s.spec.stage == stage && s.can_work())
            .filter_map(|(i, s)| s.operator.clone().map(|op| (i, op)))
            .collect();
        free.sort_by(|a, b| {
            let (sa, sb) = (&self.stations[a.0], &self.stations[b.0]);
            (sa.idle_since, &sa.spec.id).cmp(&(sb.idle_since, &sb.spec.id))
        });
        let waiting = self.queues[stage.index()].len as u32;
        let sep = self.separation;
        while !free.is_empty() && self.queues[stage.index()].len > 0 {
            let q = &self.queues[stage.index()];
            let bests: Vec<Option<Key>> = free
                .iter()
                .map(|(_, op)| q.best_for(stage, &sep, op, None))
                .collect();
            let Some(best) = bests.iter().flatten().min().copied() else {
                break; // every waiting job is barred for every free operator
            };
            let eligible: Vec<usize> = (0..free.len())
                .filter(|&p| bests[p] == Some(best))
                .collect();
            let (pos, choice) = if eligible.len() == 1 {
                (eligible[0], StationChoice::OnlyEligible)
            } else {
                // The station whose next-best job is ranked last (or that has none) needs this one
                // most; `None` sorts after every key. Among equals, the first: idle longest.
                let alt = |p: usize| {
                    q.best_for(stage, &sep, &free[p].1, Some(&best))
                        .map_or((1, best), |k| (0, k))
                };
                let alts: Vec<_> = eligible.iter().map(|&p| alt(p)).collect();
                let worst = alts.iter().max().copied().unwrap_or((1, best));
                let at = alts.iter().position(|a| *a == worst).unwrap_or(0);
                let choice = if alts.iter().all(|a| *a == worst) {
                    StationChoice::IdleLongest
                } else {
                    StationChoice::FewestAlternatives
                };
                (eligible[at], choice)
            };
            let (station, operator) = free.remove(pos);
            let job = best.2;
            let Some(entry) = self.waiting.remove(&job) else {
                break; // unreachable: every queued key has an entry
            };
            let q = &mut self.queues[stage.index()];
            q.remove(&entry.bar, &entry.key);
            let st = &mut self.stations[station];
            st.busy_with = Some(job);
            if let Some(n) = st.consumables.as_mut() {
                *n = n.saturating_sub(1);
            }
            self.in_flight.insert(job, station);
            out.push(Assignment {
                job,
                stage,
                station: st.spec.id.clone(),
                device: st.spec.device.clone(),
                reason: Reason {
                    policy: self.policy.kind(),
                    class: entry.job.class,
                    rank: entry.key.0,
                    aged: entry.by_age < entry.by_due && now >= entry.by_age,
                    boosted_group: entry.boosted,
                    barred_ahead: q.barred_ahead(stage, &sep, &operator, &entry.key),
                    waiting,
                    eligible_stations: eligible.len() as u32,
                    choice,
                },
                operator,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(s: &str) -> OperatorId {
        OperatorId::new(s)
    }
    fn st(s: &str) -> StationId {
        StationId::new(s)
    }

    fn line(policy: Policy, stations: &[(&str, Stage, &str)]) -> Scheduler {
        let mut s = Scheduler::new(policy, Separation::strict());
        for (id, stage, operator) in stations {
            s.add_station(
                StationSpec {
                    id: st(id),
                    stage: *stage,
                    device: DeviceId::new(format!("{id}/dev")),
                },
                0,
            )
            .expect("add");
            s.set_device(&st(id), DeviceReadiness::Ready).expect("dev");
            s.set_operator(&st(id), Some(op(operator)), 0).expect("op");
        }
        s
    }

    fn job(id: u64, class: PriorityClass, due_h: i64, received_h: i64) -> QueuedJob {
        QueuedJob {
            id: JobId(id),
            class,
            groups: vec![],
            due: due_h * HOUR,
            received: received_h * HOUR,
            printed_by: None,
            laminated_by: None,
        }
    }

    fn printed(mut j: QueuedJob, by: &str) -> QueuedJob {
        j.printed_by = Some(op(by));
        j
    }

    #[test]
    fn fast_track_goes_first_under_slack_and_last_under_fifo() {
        let stations = [("PRN-1", Stage::Print, "A")];
        for (policy, first) in [(Policy::default(), 3), (Policy::Fifo, 1)] {
            let mut s = line(policy, &stations);
            s.enqueue(job(1, PriorityClass::Normal, 72, 0), Stage::Print)
                .expect("q");
            s.enqueue(job(2, PriorityClass::Urgent, 24, 0), Stage::Print)
                .expect("q");
            s.enqueue(job(3, PriorityClass::FastTrack, 6, 0), Stage::Print)
                .expect("q");
            let a = s.assign(0);
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].job, JobId(first), "{}", s.policy().name());
            assert_eq!(a[0].operator, op("A"));
        }
    }

    #[test]
    fn earlier_due_wins_within_a_class_and_class_lead_breaks_near_ties() {
        let mut s = line(Policy::default(), &[("PRN-1", Stage::Print, "A")]);
        // Normal due at 3h vs fast-track due at 6h: the fast-track lead (4h) puts it at 2h.
        s.enqueue(job(1, PriorityClass::Normal, 3, 0), Stage::Print)
            .expect("q");
        s.enqueue(job(2, PriorityClass::FastTrack, 6, 0), Stage::Print)
            .expect("q");
        assert_eq!(s.assign(0)[0].job, JobId(2));
        // Normal due at 1h vs fast-track due at 6h: the normal one is far more pressing.
        let mut s = line(Policy::default(), &[("PRN-1", Stage::Print, "A")]);
        s.enqueue(job(1, PriorityClass::Normal, 1, 0), Stage::Print)
            .expect("q");
        s.enqueue(job(2, PriorityClass::FastTrack, 6, 0), Stage::Print)
            .expect("q");
        assert_eq!(s.assign(0)[0].job, JobId(1));
    }

    #[test]
    fn aging_stops_newer_work_from_passing_an_old_job_forever() {
        let mut s = line(Policy::default(), &[("PRN-1", Stage::Print, "A")]);
        // A normal job due in 30 days, received at t=0: by due time it would wait a month.
        s.enqueue(job(1, PriorityClass::Normal, 720, 0), Stage::Print)
            .expect("q");
        // Fast-track jobs keep arriving. Any received more than 76h after job 1 ranks after it.
        s.enqueue(job(2, PriorityClass::FastTrack, 80, 77), Stage::Print)
            .expect("q");
        let a = s.assign(77 * HOUR);
        assert_eq!(a[0].job, JobId(1));
        assert!(a[0].reason.aged);
        assert!(a[0].reason.to_string().contains("aged"), "{}", a[0].reason);
    }

    #[test]
    fn boosted_group_moves_as_a_whole() {
        let hajj = GroupTag::new("HAJJ-2027");
        let policy = Policy::Slack(SlackPolicy {
            boosted_groups: vec![(hajj.clone(), 48 * HOUR)],
            ..SlackPolicy::default()
        });
        let mut s = line(
            policy,
            &[("PRN-1", Stage::Print, "A"), ("PRN-2", Stage::Print, "D")],
        );
        s.enqueue(job(1, PriorityClass::FastTrack, 6, 0), Stage::Print)
            .expect("q");
        for id in [2, 3] {
            let mut j = job(id, PriorityClass::Normal, 49, 0);
            j.groups.push(hajj.clone());
            s.enqueue(j, Stage::Print).expect("q");
        }
        let a = s.assign(0);
        let jobs: Vec<_> = a.iter().map(|a| a.job).collect();
        assert_eq!(jobs, [JobId(2), JobId(3)]);
        assert_eq!(a[0].reason.boosted_group.as_ref(), Some(&hajj));
    }

    #[test]
    fn printing_operator_never_laminates_their_own_booklet() {
        // A printed job 1 and now stands at LAM-1; B is at LAM-2. Job 1 must go to LAM-2 even
        // though LAM-1 has been idle longer.
        let mut s = line(
            Policy::default(),
            &[
                ("LAM-1", Stage::Laminate, "A"),
                ("LAM-2", Stage::Laminate, "B"),
            ],
        );
        s.release(&st("LAM-2"), 10).expect("release");
        s.enqueue(
            printed(job(1, PriorityClass::FastTrack, 6, 0), "A"),
            Stage::Laminate,
        )
        .expect("q");
        let a = s.assign(20);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].station, st("LAM-2"));
        assert_eq!(a[0].operator, op("B"));
        assert_eq!(a[0].reason.eligible_stations, 1);
    }

    #[test]
    fn a_job_only_its_printer_could_take_waits_and_is_skipped_not_lost() {
        let mut s = line(Policy::default(), &[("LAM-1", Stage::Laminate, "A")]);
        s.enqueue(
            printed(job(1, PriorityClass::FastTrack, 1, 0), "A"),
            Stage::Laminate,
        )
        .expect("q");
        s.enqueue(
            printed(job(2, PriorityClass::Normal, 72, 0), "Z"),
            Stage::Laminate,
        )
        .expect("q");
        let a = s.assign(0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].job, JobId(2));
        assert_eq!(a[0].reason.barred_ahead, 1);
        assert_eq!(
            s.queued(Stage::Laminate),
            1,
            "job 1 still waits for another operator"
        );
    }

    #[test]
    fn qc_is_a_third_person_when_strict_and_may_repeat_when_relaxed() {
        for (qc_independent, expect) in [(true, 0usize), (false, 1)] {
            let mut s = Scheduler::new(Policy::default(), Separation { qc_independent });
            s.add_station(
                StationSpec {
                    id: st("QC-1"),
                    stage: Stage::Qc,
                    device: DeviceId::new("QC-1/reader"),
                },
                0,
            )
            .expect("add");
            s.set_device(&st("QC-1"), DeviceReadiness::Ready)
                .expect("dev");
            s.set_operator(&st("QC-1"), Some(op("B")), 0).expect("op");
            let mut j = printed(job(1, PriorityClass::Normal, 5, 0), "A");
            j.laminated_by = Some(op("B"));
            s.enqueue(j, Stage::Qc).expect("q");
            assert_eq!(s.assign(0).len(), expect, "qc_independent={qc_independent}");
        }
    }

    #[test]
    fn unavailable_stations_get_no_work() {
        let mut s = line(
            Policy::default(),
            &[
                ("PRN-1", Stage::Print, "A"),
                ("PRN-2", Stage::Print, "D"),
                ("PRN-3", Stage::Print, "E"),
            ],
        );
        s.set_device(&st("PRN-1"), DeviceReadiness::Faulted)
            .expect("dev");
        s.set_consumables(&st("PRN-2"), Some(0)).expect("c");
        s.set_operator(&st("PRN-3"), None, 0).expect("out");
        for id in 1..=3 {
            s.enqueue(job(id, PriorityClass::Normal, 9, 0), Stage::Print)
                .expect("q");
        }
        assert!(s.assign(0).is_empty());
        s.set_consumables(&st("PRN-2"), Some(1)).expect("c");
        let a = s.assign(1);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].station, st("PRN-2"));
        s.release(&st("PRN-2"), 2).expect("release");
        assert!(
            s.assign(3).is_empty(),
            "the last booklet of the session was used"
        );
    }

    #[test]
    fn one_station_per_operator_and_one_operator_per_station() {
        let mut s = line(
            Policy::default(),
            &[
                ("PRN-1", Stage::Print, "A"),
                ("LAM-2", Stage::Laminate, "B"),
            ],
        );
        assert_eq!(
            s.set_operator(&st("PRN-1"), Some(op("B")), 0),
            Err(SchedulerError::OperatorElsewhere {
                operator: op("B"),
                station: st("LAM-2")
            })
        );
        s.set_operator(&st("LAM-2"), None, 0).expect("sign out");
        assert_eq!(
            s.set_operator(&st("PRN-1"), Some(op("B")), 0),
            Err(SchedulerError::StationTaken {
                station: st("PRN-1"),
                operator: op("A")
            })
        );
    }

    #[test]
    fn held_jobs_leave_the_queue_and_busy_stations_wait_for_release() {
        let mut s = line(Policy::default(), &[("PRN-1", Stage::Print, "A")]);
        s.enqueue(job(1, PriorityClass::FastTrack, 1, 0), Stage::Print)
            .expect("q");
        s.enqueue(job(2, PriorityClass::Normal, 9, 0), Stage::Print)
            .expect("q");
        assert_eq!(
            s.enqueue(job(2, PriorityClass::Normal, 9, 0), Stage::Print),
            Err(SchedulerError::AlreadyScheduled(JobId(2)))
        );
        assert_eq!(s.remove(JobId(1)), Some(Stage::Print));
        assert_eq!(s.remove(JobId(1)), None);
        assert_eq!(s.assign(0)[0].job, JobId(2));
        s.enqueue(job(3, PriorityClass::FastTrack, 1, 0), Stage::Print)
            .expect("q");
        assert!(s.assign(1).is_empty(), "PRN-1 is busy");
        s.release(&st("PRN-1"), 2).expect("release");
        assert_eq!(s.assign(2)[0].job, JobId(3));
    }

    #[test]
    fn same_inputs_give_the_same_assignments() {
        let run = || {
            let mut s = line(
                Policy::default(),
                &[
                    ("PRN-1", Stage::Print, "A"),
                    ("PRN-2", Stage::Print, "D"),
                    ("LAM-1", Stage::Laminate, "B"),
                ],
            );
            for id in 0..50u64 {
                let class = PriorityClass::ALL[(id % 3) as usize];
                s.enqueue(job(id, class, (id % 7) as i64 + 1, 0), Stage::Print)
                    .expect("q");
            }
            let mut log = Vec::new();
            for t in 0..30 {
                for a in s.assign(t) {
                    log.push((a.job, a.station.clone()));
                    s.release(&a.station, t).expect("release");
                }
            }
            log
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn regression_a_job_in_a_step_cannot_be_queued_again() {
        let mut s = line(
            Policy::default(),
            &[("PRN-1", Stage::Print, "A"), ("PRN-2", Stage::Print, "D")],
        );
        s.enqueue(job(1, PriorityClass::Normal, 9, 0), Stage::Print)
            .expect("q");
        assert_eq!(s.assign(0).len(), 1);
        assert_eq!(
            s.enqueue(job(1, PriorityClass::Normal, 9, 0), Stage::Laminate),
            Err(SchedulerError::AlreadyScheduled(JobId(1)))
        );
        assert!(s.assign(1).is_empty(), "one job never runs at two stations");
        s.release(&st("PRN-1"), 2).expect("release");
        s.enqueue(
            printed(job(1, PriorityClass::Normal, 9, 0), "A"),
            Stage::Laminate,
        )
        .expect("next step");
    }

    #[test]
    fn regression_aged_is_reported_only_once_the_cap_has_passed() {
        let mut s = line(Policy::default(), &[("PRN-1", Stage::Print, "A")]);
        // Due in 120 h, cap 72 h: ranked by its cap, but at t=0 it has not waited at all.
        s.enqueue(job(1, PriorityClass::Normal, 120, 0), Stage::Print)
            .expect("q");
        let a = s.assign(0);
        assert!(!a[0].reason.aged);
        assert!(!a[0].reason.to_string().contains("aged"), "{}", a[0].reason);
    }

    #[test]
    fn regression_many_barred_jobs_ahead_never_idle_a_station() {
        // After a rotation, operator X stands at the only laminator; 520 booklets X printed are
        // ranked ahead of 80 printed by Y. X must get Y's best one now.
        let mut s = line(Policy::default(), &[("LAM-1", Stage::Laminate, "X")]);
        for id in 0..520 {
            s.enqueue(
                printed(job(id, PriorityClass::FastTrack, 1, 0), "X"),
                Stage::Laminate,
            )
            .expect("q");
        }
        for id in 520..600 {
            s.enqueue(
                printed(job(id, PriorityClass::Normal, 90, 0), "Y"),
                Stage::Laminate,
            )
            .expect("q");
        }
        let a = s.assign(0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].job, JobId(520));
        assert_eq!(a[0].reason.barred_ahead, 520);
        assert!(
            a[0].reason.to_string().contains("520 ranked ahead barred"),
            "{}",
            a[0].reason
        );
    }

    #[test]
    fn regression_a_tie_goes_to_the_station_with_no_other_work() {
        // L1 (A) idle longest, L2 (B). Job 1 (printed by C) either may take; job 2 (printed by B)
        // only L1 may take. Both must start now: job 1 to L2, job 2 to L1.
        let mut s = line(
            Policy::default(),
            &[("L1", Stage::Laminate, "A"), ("L2", Stage::Laminate, "B")],
        );
        s.release(&st("L2"), 5).expect("L2 idle for less time");
        s.enqueue(
            printed(job(1, PriorityClass::FastTrack, 1, 0), "C"),
            Stage::Laminate,
        )
        .expect("q");
        s.enqueue(
            printed(job(2, PriorityClass::Normal, 9, 0), "B"),
            Stage::Laminate,
        )
        .expect("q");
        let a = s.assign(10);
        let got: Vec<_> = a
            .iter()
            .map(|a| (a.job, a.station.clone(), a.reason.choice))
            .collect();
        assert_eq!(
            got,
            [
                (JobId(1), st("L2"), StationChoice::FewestAlternatives),
                (JobId(2), st("L1"), StationChoice::OnlyEligible),
            ]
        );
    }

    #[test]
    fn equal_alternatives_go_to_the_station_idle_longest() {
        let mut s = line(
            Policy::default(),
            &[("PRN-1", Stage::Print, "A"), ("PRN-2", Stage::Print, "D")],
        );
        s.release(&st("PRN-1"), 5).expect("PRN-1 idle since 5");
        s.enqueue(job(1, PriorityClass::Normal, 9, 0), Stage::Print)
            .expect("q");
        let a = s.assign(10);
        assert_eq!(a[0].station, st("PRN-2"));
        assert_eq!(a[0].reason.choice, StationChoice::IdleLongest);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashSet;

        #[derive(Debug, Clone)]
        enum Op {
            Enqueue {
                class: u8,
                due_h: i64,
                stage: u8,
                printer: u8,
                laminator: u8,
            },
            Release(u8),
            Device(u8, u8),
            SignIn(u8, u8),
            SignOut(u8),
            Consumables(u8, Option<u8>),
            Remove(u8),
            Requeue(u8),
            Assign,
        }

        fn any_op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..3, 0i64..100, 0u8..4, 0u8..6, 0u8..6).prop_map(
                    |(class, due_h, stage, printer, laminator)| {
                        Op::Enqueue {
                            class,
                            due_h,
                            stage,
                            printer,
                            laminator,
                        }
                    }
                ),
                (0u8..8).prop_map(Op::Release),
                (0u8..8, 0u8..4).prop_map(|(s, d)| Op::Device(s, d)),
                (0u8..8, 0u8..6).prop_map(|(s, o)| Op::SignIn(s, o)),
                (0u8..8).prop_map(Op::SignOut),
                (0u8..8, proptest::option::of(0u8..3)).prop_map(|(s, c)| Op::Consumables(s, c)),
                (0u8..40).prop_map(Op::Remove),
                (0u8..40).prop_map(Op::Requeue),
                Just(Op::Assign),
                Just(Op::Assign),
            ]
        }

        const STAGES: [Stage; 8] = [
            Stage::Print,
            Stage::Print,
            Stage::Laminate,
            Stage::Laminate,
            Stage::Laminate,
            Stage::Qc,
            Stage::Qc,
            Stage::Dispatch,
        ];

        /// Plays the operations; checks every assignment against an independent model of the line
        /// and returns the assignment log.
        fn play(ops: &[Op], policy: Policy) -> Result<Vec<(JobId, StationId)>, TestCaseError> {
            let mut s = Scheduler::new(policy, Separation::strict());
            let ids: Vec<StationId> = (0..8).map(|i| st(&format!("S{i}"))).collect();
            for (i, id) in ids.iter().enumerate() {
                s.add_station(
                    StationSpec {
                        id: id.clone(),
                        stage: STAGES[i],
                        device: DeviceId::new(format!("D{i}")),
                    },
                    0,
                )
                .expect("add");
            }
            // The model: what the scheduler should believe.
            let mut ready = [false; 8];
            let mut operator: [Option<u8>; 8] = [None; 8];
            let mut left: [Option<u32>; 8] = [None; 8];
            let mut busy = [false; 8];
            let mut busy_job: [Option<JobId>; 8] = [None; 8];
            let mut queued: HashMap<JobId, QueuedJob> = HashMap::new();
            let mut stage_of: HashMap<JobId, Stage> = HashMap::new();
            let mut in_flight: HashSet<JobId> = HashSet::new();
            let mut next_job = 0u64;
            let mut log = Vec::new();
            for (t, o) in ops.iter().enumerate() {
                let now = t as Millis;
                match o.clone() {
                    Op::Enqueue {
                        class,
                        due_h,
                        stage,
                        printer,
                        laminator,
                    } => {
                        let stage = Stage::ALL[stage as usize];
                        let mut j = job(next_job, PriorityClass::ALL[class as usize], due_h, 0);
                        next_job += 1;
                        if stage != Stage::Print {
                            j.printed_by = Some(op(&format!("O{printer}")));
                        }
                        if matches!(stage, Stage::Qc | Stage::Dispatch) {
                            j.laminated_by = Some(op(&format!("O{laminator}")));
                        }
                        s.enqueue(j.clone(), stage).expect("fresh job");
                        stage_of.insert(j.id, stage);
                        queued.insert(j.id, j);
                    }
                    Op::Release(i) => {
                        s.release(&ids[i as usize], now).expect("station");
                        busy[i as usize] = false;
                        if let Some(j) = busy_job[i as usize].take() {
                            in_flight.remove(&j);
                        }
                    }
                    Op::Device(i, d) => {
                        let r = [
                            DeviceReadiness::Ready,
                            DeviceReadiness::Paused,
                            DeviceReadiness::Faulted,
                            DeviceReadiness::Offline,
                        ][d as usize];
                        s.set_device(&ids[i as usize], r).expect("station");
                        ready[i as usize] = r == DeviceReadiness::Ready;
                    }
                    Op::SignIn(i, who) => {
                        let elsewhere = operator
                            .iter()
                            .enumerate()
                            .any(|(k, o)| *o == Some(who) && k != i as usize);
                        let taken = operator[i as usize].is_some_and(|o| o != who);
                        let r = s.set_operator(&ids[i as usize], Some(op(&format!("O{who}"))), now);
                        prop_assert_eq!(r.is_ok(), !elsewhere && !taken, "sign-in {:?}", r);
                        if r.is_ok() {
                            operator[i as usize] = Some(who);
                        }
                    }
                    Op::SignOut(i) => {
                        s.set_operator(&ids[i as usize], None, now)
                            .expect("sign out");
                        operator[i as usize] = None;
                    }
                    Op::Consumables(i, c) => {
                        s.set_consumables(&ids[i as usize], c.map(u32::from))
                            .expect("station");
                        left[i as usize] = c.map(u32::from);
                    }
                    Op::Remove(k) => {
                        let id = JobId(u64::from(k));
                        let was_queued = queued.remove(&id).is_some();
                        prop_assert_eq!(s.remove(id).is_some(), was_queued);
                    }
                    Op::Requeue(k) => {
                        // A job already queued or in a step is refused; nothing changes.
                        let id = JobId(u64::from(k));
                        if queued.contains_key(&id) || in_flight.contains(&id) {
                            let again = job(u64::from(k), PriorityClass::Normal, 1, 0);
                            prop_assert_eq!(
                                s.enqueue(again, Stage::Print),
                                Err(SchedulerError::AlreadyScheduled(id))
                            );
                        }
                    }
                    Op::Assign => {
                        for a in s.assign(now) {
                            let i = ids
                                .iter()
                                .position(|x| *x == a.station)
                                .expect("known station");
                            let j = queued.remove(&a.job);
                            prop_assert!(j.is_some(), "{} assigned but not queued", a.job);
                            let j = j.expect("checked");
                            prop_assert!(!in_flight.contains(&a.job), "{} assigned twice", a.job);
                            prop_assert_eq!(stage_of[&a.job], a.stage);
                            prop_assert_eq!(STAGES[i], a.stage);
                            prop_assert!(
                                ready[i] && !busy[i] && left[i] != Some(0),
                                "station {} not free",
                                i
                            );
                            let who = operator[i].map(|o| op(&format!("O{o}")));
                            prop_assert_eq!(Some(&a.operator), who.as_ref());
                            if a.stage == Stage::Laminate || a.stage == Stage::Qc {
                                prop_assert_ne!(
                                    j.printed_by.as_ref(),
                                    Some(&a.operator),
                                    "printer laminates or checks"
                                );
                            }
                            if a.stage == Stage::Qc {
                                prop_assert_ne!(
                                    j.laminated_by.as_ref(),
                                    Some(&a.operator),
                                    "laminator checks"
                                );
                            }
                            busy[i] = true;
                            busy_job[i] = Some(a.job);
                            if let Some(n) = left[i].as_mut() {
                                *n -= 1;
                            }
                            in_flight.insert(a.job);
                            log.push((a.job, a.station));
                        }
                        // Work conservation: no free station is left idle while a job it may take waits.
                        for i in 0..8 {
                            let Some(o) = operator[i] else { continue };
                            if !ready[i] || busy[i] || left[i] == Some(0) {
                                continue;
                            }
                            let me = op(&format!("O{o}"));
                            for (id, j) in &queued {
                                if stage_of[id] != STAGES[i] {
                                    continue;
                                }
                                let barred = match STAGES[i] {
                                    Stage::Laminate => j.printed_by.as_ref() == Some(&me),
                                    Stage::Qc => {
                                        j.printed_by.as_ref() == Some(&me)
                                            || j.laminated_by.as_ref() == Some(&me)
                                    }
                                    _ => false,
                                };
                                prop_assert!(barred, "station S{} idle while {} waits", i, id);
                            }
                        }
                    }
                }
            }
            Ok(log)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn assignments_respect_the_line_and_are_work_conserving(
                ops in proptest::collection::vec(any_op(), 1..120),
                fifo in any::<bool>(),
            ) {
                let policy = if fifo { Policy::Fifo } else { Policy::default() };
                let first = play(&ops, policy.clone())?;
                prop_assert_eq!(first, play(&ops, policy)?, "same inputs, same assignments");
            }
        }
    }
}
