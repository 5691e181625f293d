//! What the simulator simulates: the line's machines, their timing and failures, the crews, and
//! the scenario's arrivals.

use serde::{Deserialize, Serialize};

use crate::job::{PriorityClass, Stage};

/// A service-time distribution: log-normal with this mean and coefficient of variation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServiceTime {
    /// Mean, in seconds.
    pub mean_s: f64,
    /// Standard deviation over mean.
    pub cv: f64,
}

/// The hall's line: machines per stage, their timing, failures and spoilage, and the shift
/// pattern. Defaults are the agency's hall after the last upgrade (BRIEF §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineConfig {
    /// Passport printers.
    pub printers: u32,
    /// Laminators.
    pub laminators: u32,
    /// QC stations (MRZ read-back).
    pub qc_stations: u32,
    /// Dispatch (packing) stations.
    pub dispatch_stations: u32,
    /// Service time per stage (print, laminate, QC, dispatch).
    pub service: [ServiceTime; 4],
    /// Mean busy time between failures per stage, in hours (0: the stage never fails).
    pub mtbf_busy_h: [f64; 4],
    /// Mean time to repair per stage, in minutes.
    pub mttr_min: [f64; 4],
    /// Probability that a step spoils the booklet: print (jam), laminate (defect), QC (mismatch).
    pub spoil: [f64; 3],
    /// Length of a shift, in hours (three shifts: 22:00, 06:00, 14:00).
    pub shift_h: f64,
    /// Custody handover at a shift change, per station, in minutes (sessions close and open with
    /// their counts).
    pub handover_min: f64,
    /// Halfway through a shift, printer and laminator operators swap roles (fatigue rotation).
    /// This is what makes separation of duties bite: a booklet printed before the swap may not
    /// be laminated by its printer after it.
    pub rotate_mid_shift: bool,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            printers: 10,
            laminators: 11,
            qc_stations: 4,
            dispatch_stations: 1,
            service: [
                ServiceTime {
                    mean_s: 19.0,
                    cv: 0.15,
                },
                ServiceTime {
                    mean_s: 20.0,
                    cv: 0.10,
                },
                ServiceTime {
                    mean_s: 7.0,
                    cv: 0.20,
                },
                ServiceTime {
                    mean_s: 1.5,
                    cv: 0.20,
                },
            ],
            mtbf_busy_h: [8.0, 12.0, 0.0, 0.0],
            mttr_min: [15.0, 20.0, 0.0, 0.0],
            spoil: [0.004, 0.003, 0.002],
            shift_h: 8.0,
            handover_min: 3.0,
            rotate_mid_shift: true,
        }
    }
}

impl LineConfig {
    /// Machines at a stage.
    pub fn machines(&self, stage: Stage) -> u32 {
        match stage {
            Stage::Print => self.printers,
            Stage::Laminate => self.laminators,
            Stage::Qc => self.qc_stations,
            Stage::Dispatch => self.dispatch_stations,
        }
    }

    /// Expected visits of a stage per finished passport: a spoil anywhere sends the job back to
    /// printing, so upstream stages see more work than they deliver.
    pub fn visits(&self, stage: Stage) -> f64 {
        let ok: Vec<f64> = self.spoil.iter().map(|p| 1.0 - p).collect();
        // Probability that one attempt reaches a stage and that it succeeds end to end.
        let reach = match stage {
            Stage::Print => 1.0,
            Stage::Laminate => ok[0],
            Stage::Qc => ok[0] * ok[1],
            Stage::Dispatch => ok[0] * ok[1] * ok[2],
        };
        let success = ok[0] * ok[1] * ok[2];
        if stage == Stage::Dispatch {
            1.0
        } else {
            reach / success
        }
    }

    /// Availability of a stage's machines: failures (MTBF over MTBF + MTTR, failures counted on
    /// busy time) and shift handovers.
    pub fn availability(&self, stage: Stage) -> f64 {
        let i = stage.index();
        let failures = if self.mtbf_busy_h[i] > 0.0 {
            let mtbf = self.mtbf_busy_h[i] * 60.0;
            mtbf / (mtbf + self.mttr_min[i])
        } else {
            1.0
        };
        failures * (1.0 - self.handover_min / (self.shift_h * 60.0))
    }

    /// The line's physical limit in finished passports per hour, from the configuration:
    /// the minimum over stages of machines × availability ÷ (mean service time × visits).
    pub fn physical_limit_per_h(&self) -> (f64, Stage) {
        Stage::ALL
            .iter()
            .map(|&s| {
                let per_h = f64::from(self.machines(s)) * self.availability(s) * 3600.0
                    / (self.service[s.index()].mean_s * self.visits(s));
                (per_h, s)
            })
            .fold((f64::INFINITY, Stage::Print), |best, cur| {
                if cur.0 < best.0 { cur } else { best }
            })
    }
}

/// The day being played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Jobs arrive evenly over the day (Poisson), the usual mix of classes.
    Steady,
    /// A quarter of the day's jobs arrive in a wave from 09:00 to 11:00, half urgent and half
    /// fast-track, on top of the steady flow: for two hours, three times what the line can do.
    Surge,
    /// Steady, but one laminator is out from 08:00 to 10:00.
    LaminatorDown,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 3] = [Scenario::Steady, Scenario::Surge, Scenario::LaminatorDown];

    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Surge => "surge",
            Scenario::LaminatorDown => "laminator-down",
        }
    }
}

/// A whole simulation: the line, the scenario and its workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The line.
    pub line: LineConfig,
    /// The scenario.
    pub scenario: Scenario,
    /// Jobs submitted over the day.
    pub jobs: u32,
    /// Seed of every random draw: the same seed gives the same report.
    pub seed: u64,
    /// Share of normal, urgent and fast-track jobs in the steady flow.
    pub mix: [f64; 3],
    /// Due time after submission per class (normal, urgent, fast-track), in hours.
    pub due_after_h: [f64; 3],
}

impl SimConfig {
    /// The defaults for a scenario: 40,000 jobs a day, 80 % normal, 15 % urgent, 5 % fast-track;
    /// fast-track due within 4 hours, urgent within 12, normal within 5 days.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            line: LineConfig::default(),
            scenario,
            jobs: 40_000,
            seed: 7,
            mix: [0.80, 0.15, 0.05],
            due_after_h: [120.0, 12.0, 4.0],
        }
    }

    /// Due offset of a class, in ms.
    pub(crate) fn due_after_ms(&self, class: PriorityClass) -> i64 {
        (self.due_after_h[class.index()] * 3_600_000.0).round() as i64
    }

    /// Offered load over the day: submitted work at the bottleneck ÷ the physical limit.
    pub fn offered_load(&self) -> f64 {
        let (limit, _) = self.line.physical_limit_per_h();
        f64::from(self.jobs) / 24.0 / limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hall_is_printer_bound_near_forty_thousand_a_day() {
        let line = LineConfig::default();
        let (limit, stage) = line.physical_limit_per_h();
        assert_eq!(stage, Stage::Print);
        let per_day = limit * 24.0;
        assert!((40_000.0..46_000.0).contains(&per_day), "{per_day}");
        let load = SimConfig::new(Scenario::Steady).offered_load();
        assert!(load < 0.95, "the default day is below 95 % load: {load}");
    }

    #[test]
    fn spoilage_adds_visits_upstream_only() {
        let line = LineConfig::default();
        assert!(line.visits(Stage::Print) > line.visits(Stage::Laminate));
        assert!(line.visits(Stage::Laminate) > line.visits(Stage::Qc));
        assert!(line.visits(Stage::Qc) > 1.0);
        assert_eq!(line.visits(Stage::Dispatch), 1.0);
        let perfect = LineConfig {
            spoil: [0.0; 3],
            ..LineConfig::default()
        };
        assert_eq!(perfect.visits(Stage::Print), 1.0);
    }
}
