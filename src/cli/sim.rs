//! `hallctl sim`: play a day of the line in the discrete-event simulator, our scheduler side by
//! side with a FIFO baseline, and print the comparison as a table or as JSON.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use clap::{Args, ValueEnum};
use hallctl_jobs::job::PriorityClass;
use hallctl_jobs::scheduler::Policy;
use hallctl_jobs::sim::{self, Comparison, PolicyReport, Scenario, SimConfig};
use serde_json::{Value, json};

/// Which scenario to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// Jobs arrive evenly over the day.
    Steady,
    /// A wave of urgent and fast-track jobs from 09:00 to 11:00.
    Surge,
    /// One laminator out from 08:00 to 10:00.
    LaminatorDown,
    /// All three, one after the other.
    All,
}

/// Arguments of `hallctl sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Passport printers.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub printers: u32,
    /// Laminators.
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub laminators: u32,
    /// QC stations.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub qc_stations: u32,
    /// Dispatch stations.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub dispatch_stations: u32,
    /// Jobs submitted over the day.
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    pub jobs: u32,
    /// Instead of --jobs: the day's offered load as a fraction of the line's physical limit
    /// (e.g. 0.95); the number of jobs follows from it.
    #[arg(long, conflicts_with = "jobs", value_parser = parse_load)]
    pub load: Option<f64>,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The scenario.
    #[arg(long, value_enum, default_value_t = ScenarioArg::All)]
    pub scenario: ScenarioArg,
    /// Print one JSON object per scenario (an array for `all`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_load(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number (expected e.g. 0.95)"))?;
    if (0.01..=3.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is outside 0.01..=3.0"))
    }
}

/// One scenario's comparison with the wall time each policy took.
struct Timed {
    cmp: Comparison,
    wall_ours_s: f64,
    wall_fifo_s: f64,
}

fn play(config: &SimConfig) -> Timed {
    let t = Instant::now();
    let ours = sim::simulate(config, &Policy::default());
    let wall_ours_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fifo = sim::simulate(config, &Policy::Fifo);
    let wall_fifo_s = t.elapsed().as_secs_f64();
    Timed {
        cmp: Comparison::of(config, ours, fifo),
        wall_ours_s,
        wall_fifo_s,
    }
}

fn per_class(f: impl Fn(PriorityClass) -> f64) -> Value {
    json!({
        "normal": f(PriorityClass::Normal),
        "urgent": f(PriorityClass::Urgent),
        "fast_track": f(PriorityClass::FastTrack),
    })
}

/// The flat keys of one policy's figures (the same for ours and for `fifo`).
fn figures(r: &PolicyReport, wall_s: f64) -> Value {
    json!({
        "policy": r.policy,
        "throughput_ratio": r.batch.throughput_ratio,
        "cmax_over_lb": r.batch.cmax_over_lb,
        "on_time": per_class(|c| r.flow.on_time.get(c)),
        "p95_lateness_s": per_class(|c| r.flow.p95_lateness_s.get(c)),
        "max_lateness_s": per_class(|c| r.flow.max_lateness_s.get(c)),
        "sim_wall_s": wall_s,
        "batch": r.batch,
        "flow": r.flow,
    })
}

fn to_json(t: &Timed) -> Value {
    let mut v = figures(&t.cmp.ours, t.wall_ours_s);
    if let Value::Object(map) = &mut v {
        map.insert("scenario".into(), json!(t.cmp.scenario));
        map.insert("seed".into(), json!(t.cmp.seed));
        map.insert("jobs".into(), json!(t.cmp.jobs));
        map.insert("offered_load".into(), json!(t.cmp.offered_load));
        map.insert(
            "physical_limit_per_h".into(),
            json!(t.cmp.physical_limit_per_h),
        );
        map.insert("bottleneck".into(), json!(t.cmp.bottleneck));
        map.insert("fifo".into(), figures(&t.cmp.fifo, t.wall_fifo_s));
    }
    v
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn table(t: &Timed, config: &SimConfig) -> String {
    let c = &t.cmp;
    let (o, f) = (&c.ours, &c.fifo);
    let l = &config.line;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {} · {} jobs · seed {} · {} printers, {} laminators, {} QC, {} dispatch",
        c.scenario, c.jobs, c.seed, l.printers, l.laminators, l.qc_stations, l.dispatch_stations
    );
    let _ = writeln!(
        s,
        "physical limit {:.0} passports/h (bottleneck: {}); the day's offered load {:.1} %",
        c.physical_limit_per_h,
        c.bottleneck,
        c.offered_load * 100.0
    );
    let mut row = |label: &str, a: String, b: String| {
        let _ = writeln!(s, "  {label:<42} {a:>14} {b:>14}");
    };
    row("", "ours (slack)".into(), "fifo".into());
    row(
        "saturated batch (all jobs at 00:00)",
        String::new(),
        String::new(),
    );
    row(
        "  throughput / physical limit",
        pct(o.batch.throughput_ratio),
        pct(f.batch.throughput_ratio),
    );
    row(
        "  Cmax / LB",
        format!("{:.4}", o.batch.cmax_over_lb),
        format!("{:.4}", f.batch.cmax_over_lb),
    );
    row(
        "  Cmax (h)",
        format!("{:.2}", o.batch.cmax_s / 3600.0),
        format!("{:.2}", f.batch.cmax_s / 3600.0),
    );
    row(
        "  throughput (passports/h)",
        format!("{:.0}", o.batch.throughput_per_h),
        format!("{:.0}", f.batch.throughput_per_h),
    );
    row("the day's flow", String::new(), String::new());
    const CLASSES: [PriorityClass; 3] = [
        PriorityClass::FastTrack,
        PriorityClass::Urgent,
        PriorityClass::Normal,
    ];
    for class in CLASSES {
        let label = format!(
            "  on time, {} ({} jobs)",
            class.name(),
            o.flow.jobs_per_class.get(class)
        );
        row(
            &label,
            pct(o.flow.on_time.get(class)),
            pct(f.flow.on_time.get(class)),
        );
    }
    for class in CLASSES {
        let label = format!("  p95 lateness, {} (s)", class.name());
        let secs = |r: &PolicyReport| format!("{:.0}", r.flow.p95_lateness_s.get(class));
        row(&label, secs(o), secs(f));
    }
    row(
        "  bottleneck idle while work waited (min)",
        format!("{:.1}", o.flow.bottleneck_idle_while_waiting_s / 60.0),
        format!("{:.1}", f.flow.bottleneck_idle_while_waiting_s / 60.0),
    );
    row(
        "  spoiled and reprinted",
        o.flow.spoiled.to_string(),
        f.flow.spoiled.to_string(),
    );
    row(
        "  passed over for separation of duties",
        o.flow.sod_skips.to_string(),
        f.flow.sod_skips.to_string(),
    );
    row(
        "  separation-of-duties violations",
        o.flow.sod_violations.to_string(),
        f.flow.sod_violations.to_string(),
    );
    row(
        "sim wall time, batch + day (s)",
        format!("{:.2}", t.wall_ours_s),
        format!("{:.2}", t.wall_fifo_s),
    );
    s
}

/// Runs the simulator and prints its report.
///
/// # Errors
/// Only from writing to stdout.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = match args.scenario {
        ScenarioArg::Steady => vec![Scenario::Steady],
        ScenarioArg::Surge => vec![Scenario::Surge],
        ScenarioArg::LaminatorDown => vec![Scenario::LaminatorDown],
        ScenarioArg::All => Scenario::ALL.to_vec(),
    };
    let mut stdout = std::io::stdout().lock();
    let mut out = Vec::new();
    for scenario in scenarios {
        let mut config = SimConfig::new(scenario);
        config.line.printers = args.printers;
        config.line.laminators = args.laminators;
        config.line.qc_stations = args.qc_stations;
        config.line.dispatch_stations = args.dispatch_stations;
        config.jobs = match args.load {
            Some(load) => {
                let (limit, _) = config.line.physical_limit_per_h();
                (load * limit * 24.0).round().max(1.0) as u32
            }
            None => args.jobs,
        };
        config.seed = args.seed;
        if !args.json {
            eprintln!("playing {} ...", scenario.name());
        }
        let timed = play(&config);
        if args.json {
            out.push(to_json(&timed));
        } else {
            writeln!(stdout, "{}", table(&timed, &config))?;
        }
    }
    if args.json {
        let v = if out.len() == 1 {
            out.remove(0)
        } else {
            Value::Array(out)
        };
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}
