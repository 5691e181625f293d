//! `hallctl demo`: the demo hall, with nothing to configure.
//!
//! It runs the embedded demo configuration ([`HallConfig::demo`]: 10 printers and 11
//! laminators simulated on pseudo-terminals and driven through the real serial code, 2 QC
//! stations, 1 dispatch station) with [`serve::run_with`], exactly as `hallctl serve` runs a
//! hall, in a data directory of its own. On top of the running controller:
//!
//! - **First start** ([`staff`], [`vault`], [`issuance`]): accounts for the visitor (PINs shown
//!   once) and the simulated crew, the first boxes of booklets and rolls of patches received
//!   into the vault, a backlog of jobs. A restart finds them and seeds nothing again.
//! - **The issuance system** ([`issuance`]) submits a stream of synthetic jobs over the API.
//! - **`--autopilot`** ([`autopilot`]): simulated staff run the line over the API.
//! - **`--faults`** ([`faults`]): devices jam, lose their cable or fall silent now and then.
//! - A progress line every ten seconds. Ctrl-C ends the shift (with the autopilot: every
//!   session returned and closed, balanced) and stops the controller as `serve` does.
//!
//! Everything the simulated world does to the hall goes through the HTTP API, except creating
//! the accounts (done as the console, like `hallctl users add`, since the first admin cannot
//! come from the API) and the faults (which happen to the devices, not through the controller).

pub mod autopilot;
pub mod client;
pub mod dice;
pub mod faults;
pub mod issuance;
pub mod staff;
pub mod terminal;
pub mod vault;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use crate::config::HallConfig;
use crate::line::Line;
use crate::serve::{self, ServeOptions, Serving};
use dice::Dice;
use issuance::JobMix;
use staff::{Duty, Member};
use terminal::Terminal;

/// Lots of each kind received on the first start.
const FIRST_LOTS: u32 = 4;
/// Jobs waiting when the hall opens for the first time.
const BACKLOG: usize = 150;
/// The issuance system holds back while this many jobs are open (no autopilot, nobody works).
const OPEN_CAP: u32 = 5_000;
/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What `hallctl demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The data directory (created if absent).
    pub data_dir: PathBuf,
    /// Hall time runs this many times as fast as the clock (devices, staff, due times).
    pub speed: f64,
    /// Simulated staff run the line.
    pub autopilot: bool,
    /// Where the API listens (the demo configuration's address when `None`).
    pub listen: Option<SocketAddr>,
    /// Jobs the issuance system submits per hour of hall time.
    pub jobs_per_hour: f64,
    /// Inject device faults now and then.
    pub faults: bool,
    /// Publish to this MQTT broker (the hall's `[mqtt]` with its defaults).
    pub mqtt: Option<crate::config::BrokerUrl>,
    /// Read fault-injection commands from standard input (as `serve --sim-faults-stdin`).
    pub sim_faults_stdin: bool,
}

/// Runs the demo hall until Ctrl-C or SIGTERM.
///
/// # Errors
/// Bad options, the data directory cannot be created, the hall cannot start, or the first start
/// cannot be seeded.
pub fn run(opts: DemoOptions) -> anyhow::Result<()> {
    if !(opts.speed > 0.0 && opts.speed <= 1000.0) {
        anyhow::bail!("--speed must be above 0 and at most 1000 (hall time per real time)");
    }
    if !(0.0..=100_000.0).contains(&opts.jobs_per_hour) {
        anyhow::bail!("--jobs-per-hour must be between 0 and 100000");
    }
    let data_dir = std::path::absolute(&opts.data_dir)
        .with_context(|| format!("bad data directory {}", opts.data_dir.display()))?;
    let created = !data_dir.exists();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let mut config = HallConfig::demo();
    config.alerts = alerts_in_hall_time(&config.alerts, opts.speed);
    config.server.data_dir = data_dir.clone();
    if let Some(l) = opts.listen {
        config.server.listen = l;
    }
    if let Some(url) = &opts.mqtt {
        config.mqtt = Some(crate::config::MqttConfig::new(url.clone(), &config.hall.id));
    }
    println!(
        "hallctl demo: data directory {} ({})",
        data_dir.display(),
        if created { "created" } else { "continuing" }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run_hall(config, DemoOptions { data_dir, ..opts }));
    // Everything durable is done by now.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The alert thresholds that are hall time (a due time's margin, a queued job's age, how long a
/// condition holds or is over before its alert is raised or cleared, how long the line is
/// watched before predicting), for a hall whose time runs `speed` times as fast as the clock.
/// The controller counts real time; the demo shrinks due times by `speed`, and so must these:
/// at speed 20 an urgent job is due 36 real minutes after it arrives, and with the 60-minute
/// margin unscaled every one was "at risk" from the start, whatever the rate.
fn alerts_in_hall_time(a: &crate::config::AlertConfig, speed: f64) -> crate::config::AlertConfig {
    let scale = |v: u32, min: u32| ((f64::from(v) / speed).round() as u32).max(min);
    crate::config::AlertConfig {
        oldest_queued_minutes: scale(a.oldest_queued_minutes, 1),
        due_at_risk_minutes: scale(a.due_at_risk_minutes, 1),
        due_at_risk_min_window_secs: scale(a.due_at_risk_min_window_secs, 0),
        raise_after_secs: scale(a.raise_after_secs, 0),
        clear_after_secs: scale(a.clear_after_secs, 0),
        ..a.clone()
    }
}

async fn run_hall(config: HallConfig, opts: DemoOptions) -> anyhow::Result<()> {
    let failure: Arc<std::sync::Mutex<Option<anyhow::Error>>> = Arc::default();
    let failed = failure.clone();
    let grace = config.server.shutdown_grace();
    let serve_opts = ServeOptions {
        sim_time_scale: 1.0 / opts.speed,
        sim_faults_stdin: opts.sim_faults_stdin,
    };
    let cfg = config.clone();
    serve::run_with(config, serve_opts, move |serving| async move {
        let started = tokio::select! {
            r = open(serving, &cfg, &opts) => r,
            () = serve::signal() => return,
        };
        let demo = match started {
            Ok(d) => d,
            Err(e) => {
                if let Ok(mut f) = failed.lock() {
                    *f = Some(e);
                }
                return;
            }
        };
        serve::signal().await;
        println!("\nstopping (Ctrl-C again to stop at once)");
        tokio::select! {
            () = demo.close(grace) => {}
            () = serve::signal() => println!("stopping at once"),
        }
    })
    .await?;
    let failure = failure.lock().ok().and_then(|mut f| f.take());
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The demo hall, open.
struct OpenHall {
    line: Line,
    feed: JoinHandle<()>,
    progress: JoinHandle<()>,
    injector: Option<faults::Injector>,
    autopilot: Option<autopilot::Autopilot>,
    report: Report,
}

/// What the progress line reads.
#[derive(Clone)]
struct Report {
    started: Instant,
    speed: f64,
    staff: Option<Arc<autopilot::Stats>>,
    faults: Option<Arc<faults::FaultStats>>,
}

impl Report {
    fn line(&self, line: &Line) -> String {
        let snap = line.snapshot();
        let queued: u32 = snap.queued.iter().sum();
        let dispatched: u32 = snap.throughput.shifts.iter().map(|s| s.completed).sum();
        let hall = self.started.elapsed().mul_f64(self.speed).as_secs();
        let mut out = format!(
            "progress: hall time {}:{:02}:{:02} · dispatched {dispatched} · open {} ({queued} queued, \
             {} in steps or between them, {} to inspect) · {} alert(s) open",
            hall / 3600,
            hall % 3600 / 60,
            hall % 60,
            snap.open_jobs,
            snap.open_jobs
                .saturating_sub(queued + snap.held + snap.needs_inspection),
            snap.needs_inspection,
            snap.alerts.len(),
        );
        if let Some(f) = &self.faults {
            out.push_str(&format!(
                " · faults {} injected, {} recovered",
                f.injected.load(Ordering::Relaxed),
                f.recovered.load(Ordering::Relaxed)
            ));
        }
        if let Some(s) = &self.staff {
            out.push_str(&format!(
                " · staff: {} packed, {} defects, {} faults cleared, {} swaps, {} deliveries",
                s.dispatched.load(Ordering::Relaxed),
                s.defects.load(Ordering::Relaxed),
                s.faults_cleared.load(Ordering::Relaxed),
                s.handovers.load(Ordering::Relaxed),
                s.deliveries.load(Ordering::Relaxed),
            ));
        }
        out
    }
}

impl OpenHall {
    /// Ends the shift (with the autopilot) and stops everything the demo started; the
    /// controller stops after this.
    async fn close(self, within: Duration) {
        self.feed.abort();
        if let Some(i) = self.injector {
            i.stop().await;
        }
        if let Some(a) = self.autopilot {
            println!("ending the shift: steps finish, sessions return what they hold and close");
            let end = a.end_shift(within).await;
            if end.problems.is_empty() {
                println!(
                    "shift ended: {} operators left their stations with every item accounted for",
                    end.left_cleanly
                );
            } else {
                for p in &end.problems {
                    println!("shift end: {p}");
                }
            }
        }
        self.progress.abort();
        println!("{}", self.report.line(&self.line));
    }
}

/// Seeds what a first start needs, prints how to reach the hall, and starts the simulated
/// world.
async fn open(
    serving: Serving,
    config: &HallConfig,
    opts: &DemoOptions,
) -> anyhow::Result<OpenHall> {
    let addr = serving.addr;
    let users = serving.state.users.clone();
    let data_dir = opts.data_dir.clone();
    let roster = staff::roster(config);
    let enrolled = tokio::task::spawn_blocking(move || staff::enroll(&users, &data_dir, roster))
        .await
        .context("enrolling the staff")??;
    let crew = enrolled.crew;
    // Shown once: before anything else can fail.
    print_accounts(&enrolled.created, &opts.data_dir);

    // The vault: the first boxes and rolls, once.
    let mut vault_desk = Terminal::new(addr, crew.one(Duty::Vault)?.clone(), None);
    let shelves = vault::Shelves::count(&mut vault_desk).await?;
    let first_start = shelves.boxes == 0 && shelves.rolls == 0;
    let mix = JobMix::new(opts.speed, &config.hall.issuing_state);
    let mut issuance = Terminal::new(addr, crew.one(Duty::Issuance)?.clone(), None);
    if first_start {
        for n in 1..=FIRST_LOTS {
            vault::receive(&mut vault_desk, vault::Kind::Booklet, n).await?;
            vault::receive(&mut vault_desk, vault::Kind::Patch, n).await?;
        }
        let mut dice = Dice::from_clock(1);
        let jobs = mix.batch(BACKLOG, chrono::Utc::now(), &mut dice);
        let a = issuance
            .post("/jobs", &json!({"jobs": jobs}))
            .await
            .map_err(anyhow::Error::msg)?;
        if !a.ok() {
            anyhow::bail!("the first jobs were refused: {}", a.message());
        }
    }
    banner(addr, opts, enrolled.created.is_empty(), first_start).await;

    let staff_stats = Arc::new(autopilot::Stats::default());
    let fault_stats = Arc::new(faults::FaultStats::default());
    let line = serving.state.line.clone();
    let report = Report {
        started: Instant::now(),
        speed: opts.speed,
        staff: opts.autopilot.then(|| staff_stats.clone()),
        faults: opts.faults.then(|| fault_stats.clone()),
    };
    let autopilot = if opts.autopilot {
        Some(autopilot::Autopilot::start(addr, &crew, config, opts.speed, staff_stats).await?)
    } else {
        None
    };
    let injector = opts.faults.then(|| {
        faults::Injector::start(
            serving.simulators.clone(),
            line.watch(),
            opts.speed,
            fault_stats,
        )
    });
    let feed = tokio::spawn(feed(
        issuance,
        mix,
        opts.jobs_per_hour,
        opts.speed,
        line.clone(),
    ));
    let progress = {
        let (report, line) = (report.clone(), line.clone());
        tokio::spawn(async move {
            loop {
                sleep(PROGRESS_EVERY).await;
                println!("{}", report.line(&line));
            }
        })
    };
    Ok(OpenHall {
        line,
        feed,
        progress,
        injector,
        autopilot,
        report,
    })
}

/// The issuance system: jobs at `per_hour` of hall time, in a batch every second.
async fn feed(mut t: Terminal, mix: JobMix, per_hour: f64, speed: f64, line: Line) {
    let mut dice = Dice::from_clock(2);
    let tick = Duration::from_secs(1);
    let mut owed = 0.0;
    loop {
        sleep(tick).await;
        owed += per_hour * speed * tick.as_secs_f64() / 3600.0;
        if owed < 1.0 {
            continue;
        }
        let n = (owed.floor() as usize).min(5_000);
        owed -= n as f64;
        if line.snapshot().open_jobs >= OPEN_CAP {
            continue;
        }
        let jobs = mix.batch(n, chrono::Utc::now(), &mut dice);
        match t.post("/jobs", &json!({"jobs": jobs})).await {
            Ok(a) if a.ok() => {}
            Ok(a) => tracing::warn!("issuance: a batch of {n} was refused: {}", a.message()),
            Err(e) => tracing::warn!("issuance: {e}"),
        }
    }
}

/// The accounts created now, with their PINs: shown this once.
fn print_accounts(created: &[Member], data_dir: &std::path::Path) {
    let visitors: Vec<&Member> = created.iter().filter(|m| m.duty == Duty::Visitor).collect();
    if !visitors.is_empty() {
        println!();
        println!("Your accounts. The PINs are shown this once (stored only as hashes):");
        for m in &visitors {
            println!(
                "  {:<8} {:<11} PIN {}   {}",
                m.id,
                m.role.name(),
                m.pin,
                m.name
            );
        }
    }
    let simulated: Vec<&Member> = created.iter().filter(|m| m.duty != Duty::Visitor).collect();
    if !simulated.is_empty() {
        println!();
        println!(
            "The simulated crew ({} people; the autopilot keeps their PINs in {}):",
            simulated.len(),
            staff::crew_file(data_dir).display()
        );
        for chunk in simulated.chunks(4) {
            let row: Vec<String> = chunk
                .iter()
                .map(|m| format!("{:<8} {}", m.id, m.pin))
                .collect();
            println!("  {}", row.join("   "));
        }
    }
}

/// How to reach the hall and what it is doing.
async fn banner(addr: SocketAddr, opts: &DemoOptions, known_staff: bool, first_start: bool) {
    let ui = matches!(
        client::ApiClient::new(addr).page("/").await,
        Ok((200, kind)) if kind.starts_with("text/html")
    );
    println!();
    if ui {
        println!("  hall UI   http://{addr}/");
    } else {
        println!("  API       http://{addr}/api/v1 (this build has no hall UI)");
    }
    println!("  API doc   http://{addr}/api/v1/openapi.json");
    println!(
        "  hall      speed x{} · autopilot {} · faults {} · {} jobs per hour of hall time",
        opts.speed,
        if opts.autopilot { "on" } else { "off" },
        if opts.faults { "on" } else { "off" },
        opts.jobs_per_hour
    );
    if first_start {
        println!(
            "  vault     received {FIRST_LOTS} boxes of booklets and {FIRST_LOTS} rolls of patches ({} each); {BACKLOG} jobs submitted",
            vault::LOT_SIZE
        );
    }
    if known_staff {
        println!(
            "  staff     the accounts exist already (a forgotten PIN, with the demo stopped: \
             hallctl users reset-pin ID --data-dir {})",
            opts.data_dir.display()
        );
    }
    println!();
    if !opts.autopilot {
        println!(
            "Nobody works the line: sign in at a station terminal, or start with --autopilot."
        );
    }
    println!("Ctrl-C ends the shift and stops the hall; run the same command again to continue.");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertConfig;

    #[test]
    fn the_demo_scales_the_alert_thresholds_that_are_hall_time() {
        let a = AlertConfig::default();
        assert_eq!(alerts_in_hall_time(&a, 1.0), a);
        let fast = alerts_in_hall_time(&a, 20.0);
        assert_eq!(
            (
                fast.oldest_queued_minutes,
                fast.due_at_risk_minutes,
                fast.due_at_risk_min_window_secs,
                fast.raise_after_secs,
                fast.clear_after_secs
            ),
            (12, 3, 45, 3, 15)
        );
        // Counts and device timings are not hall time.
        assert_eq!(
            (
                fast.due_at_risk_min_completions,
                fast.device_offline_secs,
                fast.queue_depth
            ),
            (20, 10, 5000)
        );
        // At any speed, the margin stays under the demo's shortest due time (2 real minutes).
        let fastest = alerts_in_hall_time(&a, 1000.0);
        assert_eq!(
            (fastest.due_at_risk_minutes, fastest.raise_after_secs),
            (1, 0)
        );
    }
}
