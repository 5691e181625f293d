//! `hallctl serve`: builds the hall from its configuration (devices, ledger, users, line) and
//! serves the API until SIGTERM or Ctrl-C.
//!
//! Shutdown order: stop accepting requests and let those in flight finish (bounded by
//! `server.shutdown_grace_secs`), stop the line actor (a step still on a device is found in
//! flight at the next start and waits for inspection, never repeated), then drop the ledger,
//! whose committer makes everything written durable before it exits. With `[mqtt]`, the
//! publisher ([`crate::mqtt`]) runs beside the API and stops last: it sends what the outbox
//! still holds for a moment, then publishes `offline` and disconnects.

use std::collections::HashMap;
use std::future::{Future, IntoFuture as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hallctl_drivers::laminator::{BusConfig as LamBus, UnitConfig, spawn_bus};
use hallctl_drivers::port::{PollConfig, SerialConnector};
use hallctl_drivers::printer::{PrinterConfig, spawn_printer};
use hallctl_drivers::sim::TimeScale;
use hallctl_drivers::sim::laminator::{LaminatorBusSim, LaminatorTiming, spawn_laminator_bus};
use hallctl_drivers::sim::printer::{PrinterSim, PrinterTiming, spawn_printer_sim};

use crate::api::web::{SignInRule, WebSecurity};
use crate::api::{AppState, HallInfo, Limits};
use crate::auth::{AuthPolicy, Users};
use crate::config::{BridgeEndpoint, DriverConfig, HallConfig, SerialLink};
use crate::ledger::{Ledger, LedgerConfig};
use crate::line::{Device, DeviceHandle, Line, LineSetup, LineThread, Loader, StationSetup};

/// How long a graceful stop keeps sending the outbox before it publishes `offline` (what is
/// left is sent after the next start).
pub const MQTT_DRAIN_AT_STOP: Duration = Duration::from_secs(2);

/// Options that are not part of the hall's configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Simulated devices run this many times as long as reality (0.01: a hundred times faster).
    pub sim_time_scale: f64,
    /// Read fault-injection commands for the simulated devices from standard input
    /// (`jam PR-01`, `unplug LM-03`, `silent PR-02 on`: see [`SIM_FAULTS_HELP`]).
    pub sim_faults_stdin: bool,
}

/// The fault-injection commands `--sim-faults-stdin` accepts (devices by their configured ids).
pub const SIM_FAULTS_HELP: &str = "\
jam|ink-out|media-out|overheat|cover-open PRINTER   raise a printer fault
jam|overheat|patch-out|reader-error LAMINATOR       raise a laminator fault
silent|garbage|crc DEVICE on|off                    line faults
slow DEVICE MS                                      delay answers by MS milliseconds (0 = off)
unplug|plug DEVICE                                  pull the cable (a laminator's: its bus) / plug it back
misfeed DEVICE SERIAL                               the next print/feed takes SERIAL, not the item scanned
no-read DEVICE                                      the device's reader reads nothing on the next print/feed";

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            sim_time_scale: 1.0,
            sim_faults_stdin: false,
        }
    }
}

/// Simulated devices the controller started (kept alive while it runs).
#[derive(Default)]
pub struct Simulators {
    /// Simulated printers by device id.
    pub printers: HashMap<String, PrinterSim>,
    /// Simulated buses by bus id.
    pub buses: HashMap<String, LaminatorBusSim>,
    /// Simulated printers' ids, in numbering order (`PRN-n` of the fault commands).
    pub printer_order: Vec<String>,
    /// Simulated laminators: (device id, bus id, unit id), in numbering order.
    pub laminator_order: Vec<(String, String, u8)>,
}

impl Simulators {
    /// Applies one fault-injection command naming devices by their configured ids.
    ///
    /// # Errors
    /// A message naming what is wrong (unknown device, bad command).
    pub async fn inject(&self, line: &str) -> Result<(), String> {
        use hallctl_drivers::sim::command::{DeviceRef, parse_with};
        let resolve = |name: &str| -> Result<DeviceRef, String> {
            let n = |i: usize| u8::try_from(i + 1).map_err(|_| "too many devices".to_string());
            if let Some(i) = self.printer_order.iter().position(|p| p == name) {
                return Ok(DeviceRef::Printer(n(i)?));
            }
            if let Some(i) = self.laminator_order.iter().position(|l| l.0 == name) {
                return Ok(DeviceRef::Laminator(n(i)?));
            }
            Err(format!("no simulated device {name}"))
        };
        let cmd = parse_with(line, resolve)?;
        let mut set = hallctl_drivers::sim::inject::SimSet::default();
        for id in &self.printer_order {
            set.printers.push(&self.printers[id]);
        }
        for (_, bus, unit) in &self.laminator_order {
            let b = &self.buses[bus];
            let u = b
                .units
                .iter()
                .find(|u| u.unit_id == *unit)
                .ok_or("unit missing")?;
            set.laminators.push((u, &b.wire));
        }
        set.apply(&cmd).await
    }
}

/// A running hall: what the API serves, and what shutdown must stop.
pub struct Hall {
    /// The API's state.
    pub state: AppState,
    /// The line actor's thread.
    pub line_thread: LineThread,
    /// Simulated devices.
    pub simulators: Simulators,
}

/// The file a serving controller leaves in its ledger directory, so that a console command
/// that finds the ledger locked can say which controller holds it and where its API answers.
pub const SERVING_FILE: &str = "serving.json";

/// What [`SERVING_FILE`] says. Written when the API listens, removed when the controller stops;
/// after a kill it stays behind, and a reader trusts it only while its `pid` is the process
/// that holds the ledger's lock.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServingFile {
    /// The controller's process id.
    pub pid: u32,
    /// The hall.
    pub hall: String,
    /// Where this machine reaches the API (`http://127.0.0.1:8080` for a controller that
    /// listens on every address).
    pub url: String,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
}

impl ServingFile {
    /// Reads the serving file of a ledger directory, if there is a readable one.
    pub fn read(ledger_dir: &Path) -> Option<ServingFile> {
        serde_json::from_slice(&std::fs::read(ledger_dir.join(SERVING_FILE)).ok()?).ok()
    }

    /// Writes it (to a temporary file, then renamed into place); removed again when the
    /// returned guard is dropped.
    fn write(&self, ledger_dir: &Path) -> std::io::Result<RemoveOnDrop> {
        let path = ledger_dir.join(SERVING_FILE);
        let tmp = ledger_dir.join(format!("{SERVING_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, &path)?;
        Ok(RemoveOnDrop(path))
    }
}

/// Removes its file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The URL at which this machine reaches a server listening on `addr`.
fn local_url(scheme: &str, addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// The data directory's ledger.
pub fn ledger_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("ledger")
}

/// Builds the hall: opens the ledger, the user directory, every device (starting simulators for
/// `simulate = true`), and starts the line. Must run inside a tokio runtime.
///
/// # Errors
/// The data directory or the ledger cannot be opened; a simulator cannot start; a bridge
/// program cannot be started; the line's recovery fails.
pub async fn start(config: &HallConfig, opts: ServeOptions) -> anyhow::Result<Hall> {
    let data = &config.server.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let ledger = Arc::new(
        Ledger::open(
            &ledger_dir(data),
            LedgerConfig {
                cache_bytes: config.server.ledger_cache_bytes(),
                seal_window: config.server.ledger_seal_window,
                period: config.server.ledger_period,
                // Above the line's halt, with room to spare.
                merge_reserve_bytes: (config.server.min_free_disk_mb + 512) << 20,
                ..LedgerConfig::default()
            },
        )
        .with_context(|| {
            format!(
                "cannot open the ledger in {} (is another controller running on it?)",
                data.display()
            )
        })?,
    );
    let p = &config.policy;
    let policy = AuthPolicy {
        max_failures: p.max_pin_failures,
        lockout: p.lockout(),
        token_ttl: p.token_ttl(),
    };
    let users =
        Arc::new(Users::open(ledger.clone(), policy).context("cannot open the user directory")?);
    let run_dir = data.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let scale = TimeScale::new(opts.sim_time_scale);
    let mut sims = Simulators::default();
    // Buses first: laminators are units on them.
    let mut bus_units: HashMap<String, Vec<(String, u8, Duration)>> = HashMap::new();
    for s in &config.stations {
        if let Some(d) = &s.device
            && let DriverConfig::Laminator { bus, unit, timeout } = &d.driver
        {
            bus_units.entry(bus.clone()).or_default().push((
                d.id.as_str().to_string(),
                *unit,
                *timeout,
            ));
        }
    }
    let mut laminators: HashMap<String, DeviceHandle> = HashMap::new();
    // Simulated devices: the operator's hands put the scanned item into them (`Device::loader`).
    let mut loaders: HashMap<String, Loader> = HashMap::new();
    for (k, bus) in config.buses.iter().enumerate() {
        let units = bus_units.remove(&bus.id).unwrap_or_default();
        let connector = match &bus.link {
            SerialLink::Port { path, baud } => SerialConnector::new(path, *baud),
            SerialLink::Simulated => {
                let ids: Vec<u8> = units.iter().map(|u| u.1).collect();
                let sim = spawn_laminator_bus(
                    run_dir.join(&bus.id),
                    &ids,
                    41_200 + k as u64 * 1_000_000,
                    LaminatorTiming {
                        scale,
                        ..LaminatorTiming::default()
                    },
                )
                .with_context(|| format!("cannot start the simulated bus {}", bus.id))?;
                let c = SerialConnector::new(sim.path(), 115_200);
                for (name, unit, _) in &units {
                    sims.laminator_order
                        .push((name.clone(), bus.id.clone(), *unit));
                    if let Some(u) = sim.units.iter().find(|u| u.unit_id == *unit) {
                        let u = u.clone();
                        loaders.insert(
                            name.clone(),
                            Loader(Arc::new(move |serial: &str| u.load_patch(serial))),
                        );
                    }
                }
                sims.buses.insert(bus.id.clone(), sim);
                c
            }
        };
        let (handles, _task) = spawn_bus(
            connector,
            LamBus {
                units: units
                    .iter()
                    .map(|(name, unit, timeout)| UnitConfig {
                        name: name.clone(),
                        unit_id: *unit,
                        timeout: *timeout,
                    })
                    .collect(),
                poll: PollConfig::default(),
                retries: 2,
            },
        );
        for ((name, _, _), h) in units.iter().zip(handles) {
            laminators.insert(name.clone(), DeviceHandle::Laminator(h));
        }
    }
    let mut stations = Vec::new();
    for (k, s) in config.stations.iter().enumerate() {
        let device = match &s.device {
            None => None,
            Some(d) => {
                let handle = match &d.driver {
                    DriverConfig::Printer { link, timeout } => {
                        let connector = match link {
                            SerialLink::Port { path, baud } => SerialConnector::new(path, *baud),
                            SerialLink::Simulated => {
                                let sim = spawn_printer_sim(
                                    run_dir.join(d.id.as_str()),
                                    9_000_000 + k as u64 * 100_000,
                                    PrinterTiming {
                                        scale,
                                        ..PrinterTiming::default()
                                    },
                                )
                                .with_context(|| {
                                    format!("cannot start the simulated printer {}", d.id)
                                })?;
                                let c = SerialConnector::new(sim.control.path(), 115_200);
                                let ctl = sim.control.clone();
                                loaders.insert(
                                    d.id.as_str().to_string(),
                                    Loader(Arc::new(move |serial: &str| ctl.load_booklet(serial))),
                                );
                                sims.printers.insert(d.id.as_str().to_string(), sim);
                                sims.printer_order.push(d.id.as_str().to_string());
                                c
                            }
                        };
                        let mut pc = PrinterConfig::default();
                        pc.link.timeout = *timeout;
                        let (h, _task) = spawn_printer(connector, pc);
                        DeviceHandle::Printer(h)
                    }
                    DriverConfig::Laminator { .. } => laminators
                        .remove(d.id.as_str())
                        .with_context(|| format!("laminator {} has no bus", d.id))?,
                    DriverConfig::Bridge { endpoint, timeout } => {
                        let (h, _task) = match endpoint {
                            BridgeEndpoint::Process { program, args } => {
                                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                                hallctl_drivers::bridge::spawn_bridge_process(
                                    program, &args, *timeout,
                                )
                                .with_context(|| format!("cannot start the bridge of {}", d.id))?
                            }
                            BridgeEndpoint::Tcp { address } => {
                                hallctl_drivers::bridge::connect_bridge_tcp(address, *timeout)
                                    .await
                                    .with_context(|| {
                                        format!("cannot reach the bridge of {}", d.id)
                                    })?
                            }
                        };
                        DeviceHandle::Bridge(h)
                    }
                };
                Some(Device {
                    id: d.id.clone(),
                    handle,
                    loader: loaders.remove(d.id.as_str()),
                })
            }
        };
        stations.push(StationSetup {
            id: s.id.clone(),
            kind: s.kind,
            device,
        });
    }
    let setup = LineSetup {
        separation: config.policy.separation(),
        slack: config.policy.slack(),
        stations,
        destinations: None,
        issuing_states: config.hall.issuing_states.clone(),
        // A step may take a while on a real machine; scaled with simulated time, with a floor.
        step_timeout: Duration::from_secs(120)
            .mul_f64(opts.sim_time_scale.clamp(0.05, 1.0))
            .max(Duration::from_secs(10)),
        strict_roll_order: config.policy.roll_order == crate::config::RollOrder::Strict,
        alerts: config.alerts.clone(),
        ideal_cycle: config.performance.ideal_cycle(),
        min_free_disk: config.server.min_free_disk_bytes(),
        qc_read_attempts: config.qc.read_attempts,
        issue_cap: (
            config.policy.issue_margin,
            config.policy.max_held_per_session,
        ),
        destroy_within: config.custody.destroy_within,
    };
    let (line, line_thread) = Line::start(setup, ledger.clone())?;
    let state = AppState {
        line,
        users,
        ledger,
        hall: Arc::new(HallInfo {
            id: config.hall.id.clone(),
            name: config.hall.name.clone(),
            issuing_state: config.hall.issuing_state.clone(),
        }),
        limits: Limits {
            body_bytes: config.server.body_limit_bytes,
            timeout: config.server.request_timeout(),
        },
        web: Arc::new(WebSecurity::new(
            config.server.tls.is_some(),
            SignInRule {
                burst: config.server.signin_burst,
                refill: config.server.signin_refill(),
            },
        )?),
        verify: Arc::default(),
    };
    Ok(Hall {
        state,
        line_thread,
        simulators: sims,
    })
}

/// The issuing state of the [`headless`] hall.
pub const HEADLESS_STATE: &str = "PAK";

/// A hall without devices, in process: the real ledger (in `data_dir`), user directory, line
/// (one deviceless print, laminate, QC and dispatch station) and API state, publishing on
/// `status`. For benchmarks and tests of the layers above the devices; nothing is assigned until
/// operators sign in. Must run inside a tokio runtime.
///
/// # Errors
/// The ledger or the user directory cannot be opened; the line cannot start.
pub fn headless(data_dir: &Path, status: crate::status::StatusHub) -> anyhow::Result<Hall> {
    use crate::config::StationKind;
    let ledger = Arc::new(Ledger::open(
        &ledger_dir(data_dir),
        LedgerConfig::default(),
    )?);
    let users = Arc::new(Users::open(ledger.clone(), AuthPolicy::default())?);
    let stations = [
        ("PRINT-01", StationKind::Print),
        ("LAM-01", StationKind::Laminate),
        ("QC-01", StationKind::Qc),
        ("DSP-01", StationKind::Dispatch),
    ]
    .into_iter()
    .map(|(id, kind)| StationSetup {
        id: hallctl_jobs::job::StationId::new(id),
        kind,
        device: None,
    })
    .collect();
    let (line, line_thread) = Line::start_with(
        LineSetup {
            separation: hallctl_jobs::job::Separation::strict(),
            slack: hallctl_jobs::scheduler::SlackPolicy::default(),
            stations,
            destinations: None,
            issuing_states: vec![HEADLESS_STATE.into()],
            step_timeout: Duration::from_secs(60),
            strict_roll_order: false,
            alerts: crate::config::AlertConfig::default(),
            ideal_cycle: crate::config::PerformanceConfig::default().ideal_cycle(),
            min_free_disk: 0,
            qc_read_attempts: crate::config::QcConfig::default().read_attempts,
            issue_cap: (25, 500),
            destroy_within: None,
        },
        ledger.clone(),
        status,
    )?;
    Ok(Hall {
        state: AppState {
            line,
            users,
            ledger,
            hall: Arc::new(HallInfo {
                id: "headless".into(),
                name: "headless hall".into(),
                issuing_state: HEADLESS_STATE.into(),
            }),
            limits: Limits {
                body_bytes: 64 << 20,
                timeout: Duration::from_secs(60),
            },
            web: Arc::new(WebSecurity::new(false, SignInRule::default())?),
            verify: Arc::default(),
        },
        line_thread,
        simulators: Simulators::default(),
    })
}

/// Serves `config`'s hall until `shutdown` completes; prints the address it listens on.
///
/// # Errors
/// As [`start`]; the listen address is taken.
pub async fn run(
    config: HallConfig,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, opts, move |_| shutdown).await
}

/// A hall that is serving, as [`run_with`] hands it to its caller.
pub struct Serving {
    /// Where the API listens.
    pub addr: std::net::SocketAddr,
    /// The API's state (the line, the users, the ledger).
    pub state: AppState,
    /// The simulated devices (for fault injection).
    pub simulators: Arc<Simulators>,
}

/// As [`run`], for a caller that works with the running hall (the demo): once the hall listens,
/// `serving` gets it, and the future `serving` returns is the shutdown signal. The HTTP server
/// keeps answering until that future completes, so the caller can still use the API on its way
/// out.
///
/// # Errors
/// As [`start`]; the listen address is taken.
pub async fn run_with<F, S>(
    config: HallConfig,
    opts: ServeOptions,
    serving: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Serving) -> S,
    S: Future<Output = ()> + Send + 'static,
{
    // The broker's credentials are read before anything is opened: a missing file stops here.
    let broker = config
        .mqtt
        .as_ref()
        .map(crate::mqtt::Broker::from_config)
        .transpose()?;
    // So are the HTTPS certificate and key: an unreadable or unusable one stops here, named.
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::https::server_config)
        .transpose()?;
    let hall = start(&config, opts).await?;
    let publisher = match &broker {
        Some(b) => Some(crate::mqtt::Publisher::start(
            b,
            crate::mqtt::HallRef {
                id: config.hall.id.clone(),
                name: config.hall.name.clone(),
            },
            hall.state.ledger.clone(),
            hall.state.line.status().clone(),
        )?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Before the line that says it listens: whoever reads that line and then runs a console
    // command finds the controller's address.
    let _serving_file = ServingFile {
        pid: std::process::id(),
        hall: config.hall.id.clone(),
        url: local_url(scheme, addr),
        since: chrono::Utc::now(),
    }
    .write(&ledger_dir(&config.server.data_dir))
    .map_err(|e| tracing::warn!("cannot write the serving file {SERVING_FILE} (console commands will not find this controller's address): {e}"))
    .ok();
    println!("hallctl {}: listening on {scheme}://{addr}", config.hall.id);
    tracing::info!(%addr, hall = %config.hall.id, "serving");
    let users = hall.state.users.clone();
    let line = hall.state.line.clone();
    let sweeper = tokio::spawn(async move {
        // Every 10 s: an expired operator is signed out of their station (and a session left
        // holding items abandoned and alerted) at most 10 s after their token expired.
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let u = users.clone();
            let swept = tokio::task::spawn_blocking(move || {
                u.sweep_expired_sessions_at(chrono::Utc::now())
            })
            .await;
            // An operator whose token expired has left their station: the line signs them
            // out of it (a session left holding items is recorded abandoned and alerted).
            for (user, station) in swept.ok().and_then(Result::ok).unwrap_or_default() {
                if station.is_some()
                    && let Err(e) = line
                        .vacate(user.clone(), "token expired".into(), true)
                        .await
                {
                    tracing::warn!(%user, "an expired operator stays at their station: {e}");
                }
            }
        }
    });
    // Traces answered from memory: item states and trace values pulled into the store's cache
    // once, off the request path (a trace before it finishes is only slower).
    let warm_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Stops the warm-up on every way out of this function, early returns included.
    let _stop_warm = StopOnDrop(warm_stop.clone());
    let warm_thread = {
        let ledger = hall.state.ledger.clone();
        let stop = warm_stop.clone();
        std::thread::Builder::new()
            .name("ledger-warm".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                match ledger.warm(|_| {}, || stop.load(std::sync::atomic::Ordering::Relaxed)) {
                    Ok((items, bytes)) => tracing::info!(
                        items,
                        bytes,
                        secs = t.elapsed().as_secs_f64(),
                        "ledger cache warmed"
                    ),
                    Err(e) => tracing::warn!("warming the ledger cache failed: {e}"),
                }
            })
            .context("cannot start the ledger warm-up thread")?
    };
    let line = hall.state.line.clone();
    let sims = Arc::new(hall.simulators);
    let injector = opts.sim_faults_stdin.then(|| {
        let sims = sims.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt as _;
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let l = l.trim();
                if l.is_empty() {
                    continue;
                }
                match sims.inject(l).await {
                    Ok(()) => tracing::info!(command = l, "simulated fault injected"),
                    Err(e) => {
                        tracing::warn!(command = l, "fault command refused: {e}\n{SIM_FAULTS_HELP}")
                    }
                }
            }
        })
    });
    let shutdown = serving(Serving {
        addr,
        state: hall.state.clone(),
        simulators: sims.clone(),
    });
    let app = crate::api::app(hall.state);
    let grace = config.server.shutdown_grace();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let status = line.status().clone();
    let shutdown = async move {
        shutdown.await;
        status.close();
        let _ = stop_tx.send(());
    };
    // The client's address reaches the handlers (the sign-in limit is per address).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls {
        Some(tls) => {
            use axum::serve::ListenerExt as _;
            // axum gives a listener of its own type the client's address through `tap_io`.
            let listener = crate::https::TlsListener::new(listener, tls)?.tap_io(|_| {});
            Box::pin(
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .into_future(),
            )
        }
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .into_future(),
        ),
    };
    tokio::select! {
        r = server => r.context("the HTTP server failed")?,
        () = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("requests still running after the grace period were cut"),
    }
    sweeper.abort();
    warm_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The warm-up holds the ledger: it lets go (within 1,000 entries) before this returns, so
    // the store is closed for whoever opens it next in this process.
    let _ = tokio::task::spawn_blocking(move || warm_thread.join()).await;
    if let Some(i) = injector {
        i.abort();
    }
    line.stop().await;
    drop(line);
    let _ = tokio::task::spawn_blocking(move || hall.line_thread.join()).await;
    // After the line: its last records are in the journal, and the outbox gets a moment to
    // send them before the hall says `offline`.
    if let Some(p) = publisher {
        p.stop(MQTT_DRAIN_AT_STOP).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
