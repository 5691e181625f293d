//! The line simulator: a seeded, discrete-event model of the hall that drives the very same
//! [`Scheduler`] as the controller, so that a day (or a surge, or a laminator outage) plays in
//! seconds and two policies can be compared on identical work.
//!
//! # Model
//! * Every step's service time is log-normal; whether it spoils the booklet is a Bernoulli draw.
//!   Both are drawn from a generator seeded by (seed, job, stage, attempt) — *common random
//!   numbers* — so our scheduler and FIFO see exactly the same jobs, times and defects.
//! * Machines fail on busy time (exponential MTBF) and stay faulted for the repair (exponential
//!   MTTR). A failure aborts the step in flight: a printer fault spoils the booklet (a jam: the job
//!   is reprinted on a new one), a laminator fault sends the booklet back to the lamination queue
//!   where any other laminator takes it. A scheduled outage (scenario `laminator-down`) does the
//!   same for two hours.
//! * A spoil at any stage sends the job back to printing on a new booklet, rank kept.
//! * Three crews, one shift each. At a shift change every station finishes its step, closes and
//!   reopens custody (`handover_min`), and the next crew signs in. Halfway through a shift
//!   printer and laminator operators swap roles, so separation of duties has work to do.
//!
//! Every run is checked as it goes: a lamination by the booklet's printer, or a QC by either, is
//! counted in [`FlowReport::sod_violations`] (always zero unless the scheduler is wrong).

mod line;
mod report;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

pub use line::{LineConfig, Scenario, ServiceTime, SimConfig};
pub use report::{BatchReport, Comparison, FlowReport, PerClass, PolicyReport, StageStats};

use crate::job::{DeviceId, JobId, OperatorId, PriorityClass, Stage, StationId};
use crate::scheduler::{DeviceReadiness, Policy, QueuedJob, Scheduler, Separation, StationSpec};

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// Plays the scenario under `policy` twice: once as a saturated batch (all jobs at 00:00, for
/// throughput against the physical limit and Cmax/LB) and once as the day's flow (arrivals as the
/// scenario says, for on-time % and lateness).
pub fn simulate(config: &SimConfig, policy: &Policy) -> PolicyReport {
    let batch = Engine::new(config, policy.clone(), Arrivals::Batch).run();
    let flow = Engine::new(config, policy.clone(), Arrivals::Flow).run();
    PolicyReport {
        policy: policy.name().to_string(),
        batch: report::batch(config, &batch),
        flow: report::flow(config, &flow),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrivals {
    Batch,
    Flow,
}

/// What one run produced, before it is summarised.
#[derive(Debug, Clone)]
pub(crate) struct RunOutcome {
    pub jobs: Vec<SimJob>,
    pub stages: [StageStats; 4],
    pub cmax_ms: i64,
    pub sod_violations: u64,
    pub sod_skips: u64,
    pub spoiled: u64,
    pub shift_changes: u32,
    pub rotations: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct SimJob {
    pub class: PriorityClass,
    pub arrival: i64,
    pub due: i64,
    pub done: Option<i64>,
    attempts: [u32; 4],
    printed_by: Option<OperatorId>,
    laminated_by: Option<OperatorId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive(u32),
    Done {
        station: u16,
        epoch: u32,
    },
    Fail {
        station: u16,
        epoch: u32,
    },
    Repaired(u16),
    ShiftChange,
    Rotate,
    OutageStart(u16),
    OutageEnd(u16),
    /// A handover ends: seat whoever waits for it.
    Wake,
}

#[derive(Debug)]
struct SimStation {
    id: StationId,
    stage: Stage,
    epoch: u32,
    busy: Option<(u32, i64)>,
    operator: Option<OperatorId>,
    /// Who signs in next (after a shift change or a rotation).
    next_operator: Option<OperatorId>,
    /// Sign out when the step in flight is done.
    leave_after_step: bool,
    /// A shift change's custody handover is due when the station is free.
    handover_pending: bool,
    /// No one signs in before this time (the handover's end).
    seat_not_before: i64,
    failure_in_ms: i64,
    rng: ChaCha8Rng,
    device: DeviceReadiness,
}

struct Engine<'a> {
    cfg: &'a SimConfig,
    sched: Scheduler,
    stations: Vec<SimStation>,
    by_id: HashMap<StationId, u16>,
    jobs: Vec<SimJob>,
    events: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    now: i64,
    stats: [StageStats; 4],
    last_t: i64,
    remaining: usize,
    /// Jobs at or upstream of each stage (queued for, in, or before it): the stage has work left.
    upstream: [usize; 4],
    /// When each stage started its first step.
    first_start: [Option<i64>; 4],
    crews: [Vec<OperatorId>; 3],
    shift_no: i64,
    out: RunOutcome,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a well-known bijective mixer, used only to derive independent seeds.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn lognormal(mean_s: f64, cv: f64) -> Option<LogNormal<f64>> {
    let sigma2 = (1.0 + cv * cv).ln();
    LogNormal::new(mean_s.ln() - sigma2 / 2.0, sigma2.sqrt()).ok()
}

fn exp_ms(rng: &mut ChaCha8Rng, mean_ms: f64) -> i64 {
    match Exp::new(1.0 / mean_ms) {
        Ok(d) => d.sample(rng).round() as i64,
        Err(_) => i64::MAX / 4,
    }
}

impl<'a> Engine<'a> {
    fn new(cfg: &'a SimConfig, policy: Policy, arrivals: Arrivals) -> Self {
        let line = &cfg.line;
        let mut sched = Scheduler::new(policy, Separation::strict());
        let mut stations = Vec::new();
        let mut by_id = HashMap::new();
        for stage in Stage::ALL {
            let prefix = match stage {
                Stage::Print => "PRN",
                Stage::Laminate => "LAM",
                Stage::Qc => "QC",
                Stage::Dispatch => "DSP",
            };
            for k in 1..=line.machines(stage) {
                let id = StationId::new(format!("{prefix}-{k}"));
                let idx = stations.len() as u16;
                // Station ids are unique by construction; a duplicate cannot happen.
                let _ = sched.add_station(
                    StationSpec {
                        id: id.clone(),
                        stage,
                        device: DeviceId::new(format!("{prefix}-{k}/dev")),
                    },
                    0,
                );
                let _ = sched.set_device(&id, DeviceReadiness::Ready);
                let mut rng =
                    ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ (0x5A7 << 32) ^ u64::from(idx)));
                let mtbf = line.mtbf_busy_h[stage.index()];
                let failure_in_ms = if mtbf > 0.0 {
                    exp_ms(&mut rng, mtbf * HOUR as f64)
                } else {
                    i64::MAX / 4
                };
                by_id.insert(id.clone(), idx);
                stations.push(SimStation {
                    id,
                    stage,
                    epoch: 0,
                    busy: None,
                    operator: None,
                    next_operator: None,
                    leave_after_step: false,
                    handover_pending: false,
                    seat_not_before: 0,
                    failure_in_ms,
                    rng,
                    device: DeviceReadiness::Ready,
                });
            }
        }
        let crews = std::array::from_fn(|c| {
            (0..stations.len())
                .map(|k| OperatorId::new(format!("OP{}-{k:02}", c + 1)))
                .collect()
        });
        let mut e = Engine {
            cfg,
            sched,
            stations,
            by_id,
            jobs: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            now: 0,
            stats: Default::default(),
            last_t: 0,
            remaining: 0,
            upstream: [0; 4],
            first_start: [None; 4],
            crews,
            // Time 0 is 00:00; the night shift began at 22:00 the day before.
            shift_no: 0,
            out: RunOutcome {
                jobs: Vec::new(),
                stages: Default::default(),
                cmax_ms: 0,
                sod_violations: 0,
                sod_skips: 0,
                spoiled: 0,
                shift_changes: 0,
                rotations: 0,
            },
        };
        e.generate(arrivals);
        e.seat_crew(0);
        e.schedule_shift_events();
        if cfg.scenario == Scenario::LaminatorDown && cfg.line.laminators > 0 {
            let lam = StationId::new(format!("LAM-{}", cfg.line.laminators.min(4)));
            if let Some(&i) = e.by_id.get(&lam) {
                e.push(8 * HOUR, Ev::OutageStart(i));
                e.push(10 * HOUR, Ev::OutageEnd(i));
            }
        }
        e
    }

    fn push(&mut self, t: i64, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, ev)));
    }

    fn generate(&mut self, arrivals: Arrivals) {
        let cfg = self.cfg;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0xA771_0000));
        let n = cfg.jobs as usize;
        let (wave, base) = match cfg.scenario {
            Scenario::Surge => (n / 4, n - n / 4),
            _ => (0, n),
        };
        let pick_class = |rng: &mut ChaCha8Rng, mix: [f64; 3]| {
            let u: f64 = rng.random();
            if u < mix[0] {
                PriorityClass::Normal
            } else if u < mix[0] + mix[1] {
                PriorityClass::Urgent
            } else {
                PriorityClass::FastTrack
            }
        };
        let mut list: Vec<(i64, PriorityClass)> = Vec::with_capacity(n);
        for _ in 0..base {
            let t = match arrivals {
                Arrivals::Batch => 0,
                Arrivals::Flow => rng.random_range(0..24 * HOUR),
            };
            list.push((t, pick_class(&mut rng, cfg.mix)));
        }
        for _ in 0..wave {
            let t = match arrivals {
                Arrivals::Batch => 0,
                Arrivals::Flow => rng.random_range(9 * HOUR..11 * HOUR),
            };
            list.push((t, pick_class(&mut rng, [0.0, 0.5, 0.5])));
        }
        // Sorted uniform arrival times over a window are a Poisson process's arrivals within it.
        list.sort_by_key(|&(t, _)| t);
        for (i, (t, class)) in list.into_iter().enumerate() {
            self.jobs.push(SimJob {
                class,
                arrival: t,
                due: t + cfg.due_after_ms(class),
                done: None,
                attempts: [0; 4],
                printed_by: None,
                laminated_by: None,
            });
            self.push(t, Ev::Arrive(i as u32));
        }
        self.remaining = self.jobs.len();
        self.upstream = [self.jobs.len(); 4];
    }

    /// Crew `c`'s operator for station `i`, before or after the mid-shift swap.
    fn operator_for(&self, crew: usize, i: usize, rotated: bool) -> OperatorId {
        let line = &self.cfg.line;
        let swap = (line.printers + line.laminators) as usize;
        let k = if rotated && i < swap && swap > 0 {
            (i + line.printers as usize) % swap
        } else {
            i
        };
        self.crews[crew][k].clone()
    }

    fn seat_crew(&mut self, crew: usize) {
        for i in 0..self.stations.len() {
            let op = self.operator_for(crew, i, false);
            let id = self.stations[i].id.clone();
            let _ = self.sched.set_operator(&id, Some(op.clone()), self.now);
            self.stations[i].operator = Some(op);
        }
    }

    fn schedule_shift_events(&mut self) {
        // Enough shift events for any run: a saturated 40k batch takes under a day, and a flow day
        // drains within a few hours after midnight. Extra events after the end are never reached.
        let shift = (self.cfg.line.shift_h * HOUR as f64) as i64;
        let first_change = 6 * HOUR;
        for n in 0..12 {
            let t = first_change + n * shift;
            self.push(t, Ev::ShiftChange);
            if self.cfg.line.rotate_mid_shift {
                self.push(t - shift / 2, Ev::Rotate);
            }
        }
    }

    fn run(mut self) -> RunOutcome {
        while let Some(Reverse((t, _, ev))) = self.events.pop() {
            if self.remaining == 0 {
                break;
            }
            self.account(t);
            self.now = t;
            match ev {
                Ev::Arrive(j) => self.queue(j, Stage::Print),
                Ev::Done { station, epoch } => {
                    if self.stations[station as usize].epoch == epoch {
                        self.finish_step(station as usize);
                    }
                }
                Ev::Fail { station, epoch } => {
                    if self.stations[station as usize].epoch == epoch {
                        self.fail(station as usize);
                    }
                }
                Ev::Repaired(i) => {
                    // A repair finished during an outage leaves the machine out of service.
                    if self.stations[i as usize].device == DeviceReadiness::Faulted {
                        self.set_device(i as usize, DeviceReadiness::Ready);
                    }
                }
                Ev::ShiftChange => self.shift_change(),
                Ev::Rotate => self.rotate(),
                Ev::OutageStart(i) => self.outage(i as usize, true),
                Ev::OutageEnd(i) => self.outage(i as usize, false),
                Ev::Wake => {}
            }
            self.seat_waiting_operators();
            self.dispatch();
        }
        self.out.stages = self.stats;
        self.out.jobs = self.jobs;
        self.out
    }

    /// Integrates, between two events, where each station's time went. Every station is in exactly
    /// one of: working, repairing, out of service, without an operator, or idle — so no
    /// millisecond counts twice. Idle time while jobs wait for the stage is counted separately.
    fn account(&mut self, t: i64) {
        let dt = t - self.last_t;
        self.last_t = t;
        if dt <= 0 {
            return;
        }
        let waiting = Stage::ALL.map(|s| self.sched.queued(s) > 0);
        // Lost machine time counts only inside a stage's working window (from its first step while
        // work remains for it): outside it, head and tail terms of the lower bound already count.
        let active = Stage::ALL
            .map(|s| self.first_start[s.index()].is_some() && self.upstream[s.index()] > 0);
        for st in &self.stations {
            let s = &mut self.stats[st.stage.index()];
            if st.busy.is_some() || !active[st.stage.index()] {
                continue;
            }
            match st.device {
                DeviceReadiness::Faulted => s.down_ms += dt,
                DeviceReadiness::Offline | DeviceReadiness::Paused => s.outage_ms += dt,
                DeviceReadiness::Ready if st.operator.is_none() => s.handover_ms += dt,
                DeviceReadiness::Ready => {
                    if waiting[st.stage.index()] {
                        s.idle_while_waiting_ms += dt;
                    }
                }
            }
        }
    }

    fn set_device(&mut self, i: usize, readiness: DeviceReadiness) {
        self.stations[i].device = readiness;
        let id = self.stations[i].id.clone();
        let _ = self.sched.set_device(&id, readiness);
    }

    fn queue(&mut self, j: u32, stage: Stage) {
        let job = &self.jobs[j as usize];
        let q = QueuedJob {
            id: JobId(u64::from(j)),
            class: job.class,
            groups: Vec::new(),
            due: job.due,
            received: job.arrival,
            printed_by: job.printed_by.clone(),
            laminated_by: job.laminated_by.clone(),
        };
        let _ = self.sched.enqueue(q, stage);
    }

    fn dispatch(&mut self) {
        for a in self.sched.assign(self.now) {
            self.out.sod_skips += u64::from(a.reason.skipped_ahead);
            let i = self.by_id[&a.station] as usize;
            let j = a.job.0 as u32;
            self.start_step(i, j, a.stage, &a.operator);
        }
    }

    fn job_rng(&self, j: u32, stage: Stage) -> ChaCha8Rng {
        let attempt = self.jobs[j as usize].attempts[stage.index()];
        let key = (u64::from(j) << 24) ^ ((stage.index() as u64) << 16) ^ u64::from(attempt);
        ChaCha8Rng::seed_from_u64(mix(self.cfg.seed ^ mix(key)))
    }

    fn start_step(&mut self, i: usize, j: u32, stage: Stage, operator: &OperatorId) {
        let job = &self.jobs[j as usize];
        let violation = match stage {
            Stage::Laminate => job.printed_by.as_ref() == Some(operator),
            Stage::Qc => {
                job.printed_by.as_ref() == Some(operator)
                    || job.laminated_by.as_ref() == Some(operator)
            }
            _ => false,
        };
        self.out.sod_violations += u64::from(violation);
        let svc = self.cfg.line.service[stage.index()];
        let mut rng = self.job_rng(j, stage);
        let service_ms = lognormal(svc.mean_s, svc.cv)
            .map(|d| (d.sample(&mut rng) * 1000.0).round() as i64)
            .unwrap_or((svc.mean_s * 1000.0) as i64)
            .max(1);
        // Failures happen on busy time: the step either completes or the machine fails first.
        let st = &mut self.stations[i];
        st.busy = Some((j, self.now));
        let epoch = st.epoch;
        let station = i as u16;
        let (t, ev) = if st.failure_in_ms < service_ms {
            (self.now + st.failure_in_ms, Ev::Fail { station, epoch })
        } else {
            st.failure_in_ms -= service_ms;
            (self.now + service_ms, Ev::Done { station, epoch })
        };
        self.stats[stage.index()].operations += 1;
        self.first_start[stage.index()].get_or_insert(self.now);
        match stage {
            Stage::Print => self.jobs[j as usize].printed_by = Some(operator.clone()),
            Stage::Laminate => self.jobs[j as usize].laminated_by = Some(operator.clone()),
            _ => {}
        }
        self.push(t, ev);
    }

    /// The machine at `i` failed mid-step: the step is lost, the machine is faulted until repaired.
    fn fail(&mut self, i: usize) {
        let stage = self.stations[i].stage;
        let Some((j, started)) = self.stations[i].busy.take() else {
            return;
        };
        let mtbf = self.cfg.line.mtbf_busy_h[stage.index()] * HOUR as f64;
        let mttr = self.cfg.line.mttr_min[stage.index()] * MINUTE as f64;
        let st = &mut self.stations[i];
        st.epoch += 1;
        let repair = exp_ms(&mut st.rng, mttr);
        st.failure_in_ms = exp_ms(&mut st.rng, mtbf);
        let id = st.id.clone();
        let s = &mut self.stats[stage.index()];
        s.failures += 1;
        s.busy_ms += self.now - started;
        self.set_device(i, DeviceReadiness::Faulted);
        let _ = self.sched.release(&id, self.now);
        self.push(self.now + repair, Ev::Repaired(i as u16));
        self.jobs[j as usize].attempts[stage.index()] += 1;
        if stage == Stage::Print {
            // A printer fault mid-print is a jam: the booklet is spoiled and printed again.
            self.out.spoiled += 1;
            let job = &mut self.jobs[j as usize];
            job.printed_by = None;
            job.laminated_by = None;
            self.queue(j, Stage::Print);
        } else {
            self.queue(j, stage);
        }
        if self.stations[i].leave_after_step {
            self.sign_out(i);
        }
    }

    fn finish_step(&mut self, i: usize) {
        let Some((j, started)) = self.stations[i].busy.take() else {
            return;
        };
        let stage = self.stations[i].stage;
        let s = &mut self.stats[stage.index()];
        let service_ms = self.now - started;
        s.busy_ms += service_ms;
        s.min_service_ms = if s.min_service_ms == 0 {
            service_ms
        } else {
            s.min_service_ms.min(service_ms)
        };
        let mut rng = self.job_rng(j, stage);
        // Skip the service-time draw so the spoil draw is independent of it.
        let _: f64 = rng.random();
        let spoiled = match stage {
            Stage::Dispatch => false,
            s => rng.random::<f64>() < self.cfg.line.spoil[s.index()],
        };
        let job = &mut self.jobs[j as usize];
        job.attempts[stage.index()] += 1;
        if spoiled {
            // Back to printing: every stage before this one has this job's work again.
            for s in &mut self.upstream[..stage.index()] {
                *s += 1;
            }
            self.out.spoiled += 1;
            job.printed_by = None;
            job.laminated_by = None;
            self.queue(j, Stage::Print);
        } else if stage == Stage::Dispatch {
            self.upstream[stage.index()] -= 1;
            job.done = Some(self.now);
            self.out.cmax_ms = self.out.cmax_ms.max(self.now);
            self.remaining -= 1;
        } else {
            self.upstream[stage.index()] -= 1;
            let next = Stage::ALL[stage.index() + 1];
            self.queue(j, next);
        }
        let id = self.stations[i].id.clone();
        let _ = self.sched.release(&id, self.now);
        if self.stations[i].leave_after_step {
            self.sign_out(i);
        }
    }

    /// The operator leaves the station; a pending shift handover starts now.
    fn sign_out(&mut self, i: usize) {
        let id = self.stations[i].id.clone();
        let _ = self.sched.set_operator(&id, None, self.now);
        let st = &mut self.stations[i];
        st.operator = None;
        st.leave_after_step = false;
        if st.handover_pending {
            st.handover_pending = false;
            st.seat_not_before = self.now + (self.cfg.line.handover_min * MINUTE as f64) as i64;
            let t = st.seat_not_before;
            self.push(t, Ev::Wake);
        }
    }

    /// Moves station `i` to `next` once its step in flight is done.
    fn hand_over(&mut self, i: usize, next: OperatorId, with_custody_count: bool) {
        let st = &mut self.stations[i];
        st.next_operator = Some(next);
        st.handover_pending = with_custody_count;
        if st.busy.is_none() {
            self.sign_out(i);
        } else {
            st.leave_after_step = true;
        }
    }

    /// Every station hands over to the next crew after its step in flight, with a custody count.
    fn shift_change(&mut self) {
        self.shift_no += 1;
        self.out.shift_changes += 1;
        let crew = (self.shift_no % 3) as usize;
        for i in 0..self.stations.len() {
            let op = self.operator_for(crew, i, false);
            self.hand_over(i, op, true);
        }
    }

    /// Printer and laminator operators swap roles; each moves when their station is free.
    fn rotate(&mut self) {
        self.out.rotations += 1;
        let crew = (self.shift_no % 3) as usize;
        let swap = (self.cfg.line.printers + self.cfg.line.laminators) as usize;
        for i in 0..swap.min(self.stations.len()) {
            let op = self.operator_for(crew, i, true);
            self.hand_over(i, op, false);
        }
    }

    /// Seats every waiting operator whose station is free, whose handover is over, and who has
    /// left their previous station (one station per operator: the scheduler refuses otherwise).
    fn seat_waiting_operators(&mut self) {
        for i in 0..self.stations.len() {
            let st = &self.stations[i];
            if st.operator.is_some() || st.busy.is_some() || self.now < st.seat_not_before {
                continue;
            }
            let Some(op) = st.next_operator.clone() else {
                continue;
            };
            let id = st.id.clone();
            if self
                .sched
                .set_operator(&id, Some(op.clone()), self.now)
                .is_ok()
            {
                self.stations[i].operator = Some(op);
                self.stations[i].next_operator = None;
            }
        }
    }

    fn outage(&mut self, i: usize, down: bool) {
        let id = self.stations[i].id.clone();
        let stage = self.stations[i].stage;
        if !down {
            self.set_device(i, DeviceReadiness::Ready);
            return;
        }
        self.stations[i].epoch += 1;
        self.set_device(i, DeviceReadiness::Offline);
        if let Some((j, started)) = self.stations[i].busy.take() {
            // The step in flight is lost with the machine; the job goes back to its queue
            // (the booklet was not laminated, so nothing is spoiled).
            self.stats[stage.index()].busy_ms += self.now - started;
            let _ = self.sched.release(&id, self.now);
            self.queue(j, stage);
            if self.stations[i].leave_after_step {
                self.sign_out(i);
            }
        }
    }
}

/// Runs our scheduler and the FIFO baseline on the same scenario, side by side.
pub fn compare(config: &SimConfig) -> Comparison {
    let ours = simulate(config, &Policy::default());
    let fifo = simulate(config, &Policy::Fifo);
    Comparison::of(config, ours, fifo)
}

#[cfg(test)]
mod tests;
