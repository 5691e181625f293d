//! The chaos run (issue 9): the demo hall on autopilot under load, while this program kills the
//! controller with SIGKILL at random moments, pulls and plugs serial cables, sends garbage and
//! corrupted CRCs on the lines, and stops and restarts the MQTT broker. Afterwards it checks
//! what must hold whatever happened:
//!
//! - **no acknowledged event lost**: every ledger record seen on the status stream
//!   (`/api/v1/stream`, sent after the record is durable) or over MQTT is in the ledger, at the
//!   same sequence number, with the same content;
//! - **the ledger verifies** (`hallctl audit verify`, the chain and every signed checkpoint);
//! - **every job is in exactly one state**: submitted once, stored once, and its stored state
//!   is what its `job_changed` records in the ledger lead to;
//! - **no patch applied twice** (nor a booklet printed twice, nor a booklet given two patches);
//! - **reconciliation balances or lists exactly the serials in question**: every session
//!   balances, or its report lists exactly the serials the custody state says it still holds;
//!   every lot adds up, serial by serial;
//! - **the outbox drained**: the publisher's acknowledged cursor is the ledger's head, and the
//!   subscriber got every record 1..=head (resends allowed, by `msg_id`).
//!
//! ```text
//! cargo run --example chaos -- --minutes 3            # as scripts/test-all runs it
//! cargo run --release --example chaos -- --minutes 60 # the soak, for release checks
//! cargo run --example chaos -- --minutes 3 --seed 42  # replay a run's dice
//! ```
//!
//! The controller is a child process: this program runs itself as `chaos hallctl demo ...`,
//! which goes through the same entry point as the `hallctl` binary (`hallctl::cli`), so nothing
//! else has to be built. It needs `mosquitto` (scripts/test-all installs it). The dice are
//! seeded (the seed is printed first); the controller's own timing is not, so a replay makes the
//! same choices at the same moments, not the same interleaving. Exits non-zero on any
//! violation, naming it; the work directory is kept then (and with `--keep`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use hallctl::config::{DriverConfig, HallConfig};
use hallctl::demo::dice::Dice;
use hallctl::ledger::query::Scope;
use hallctl::ledger::{ControlAction, ItemState, Ledger, LedgerEvent, Serial, SessionId};
use hallctl::mqtt::EventMessage;
use hallctl::status::RecordEvent;
use hallctl_jobs::job::{JobEvent, JobId, JobRecord, JobState, Stage, StepRun, StoredJobRecord};
use rumqttc::{Event, Incoming, MqttOptions, QoS};

/// The chaos run's options.
#[derive(Debug, Parser)]
#[command(
    about = "Chaos run: the demo hall on autopilot while the controller is killed, \
                   cables pulled, lines corrupted and the broker restarted; then the invariants"
)]
struct Opts {
    /// How long the chaos lasts (the checks and the clean stops come after it).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// The dice's seed (printed at the start; default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Hall time per real time (the demo's --speed).
    #[arg(long, default_value_t = 100.0)]
    speed: f64,
    /// Mean seconds between two SIGKILLs of the controller.
    #[arg(long, default_value_t = 30.0)]
    kill_every: f64,
    /// Mean seconds between two broker restarts.
    #[arg(long, default_value_t = 30.0)]
    broker_every: f64,
    /// Mean seconds between two line faults (a cable pulled, a garbage or CRC burst).
    #[arg(long, default_value_t = 2.0)]
    fault_every: f64,
    /// The work directory (default: a new one under the system's temporary directory); kept
    /// afterwards. Without it, a passing run deletes its directory.
    #[arg(long)]
    keep: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "hallctl") {
        // The controller: the hallctl command line, as the binary runs it.
        let cli = hallctl::cli::Cli::parse_from(&args[1..]);
        hallctl::cli::init_tracing();
        return match hallctl::cli::run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = Opts::parse();
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---- the broker --------------------------------------------------------------------------------

fn mosquitto_program() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("no mosquitto program (apt-get install mosquitto)"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A Mosquitto of our own on the loopback, with persistence (a clean stop keeps the subscriber's
/// session and what was queued for it).
struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(dir: PathBuf) -> anyhow::Result<Broker> {
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\n\
                 # the subscriber's queue while it reconnects: no limit, nothing dropped\n\
                 max_queued_messages 0\n\
                 # as root, mosquitto would switch to its own user\nuser root\n",
                dir.display()
            ),
        )?;
        let mut b = Broker {
            dir,
            port,
            child: None,
        };
        b.up()?;
        Ok(b)
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))?;
        let child = Command::new(mosquitto_program()?)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting mosquitto")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "mosquitto did not accept connections within 20 s (see {}/mosquitto.log)",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A clean stop (SIGTERM: it saves its sessions and queues).
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.down();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

// ---- what was seen -----------------------------------------------------------------------------

/// Records seen by the stream watcher and the MQTT subscriber, and what contradicts itself.
#[derive(Default)]
struct Seen {
    /// Records on the status stream, by sequence number.
    stream: Mutex<BTreeMap<u64, RecordEvent>>,
    /// Records over MQTT, by sequence number (a resend counts once).
    mqtt: Mutex<BTreeMap<u64, RecordEvent>>,
    /// MQTT event messages received, resends included.
    mqtt_messages: AtomicU64,
    /// The latest `state` message: (ledger head, outbox cursor, backlog, received at).
    state: Mutex<Option<(u64, u64, u64, Instant)>>,
    /// The stream fell behind and resynced.
    resyncs: AtomicU64,
    /// The same sequence number seen with two different contents.
    contradictions: Mutex<Vec<String>>,
    /// Where the stream is: the controller's address and an auditor's token, and a generation
    /// that changes with every start.
    target: Mutex<Option<(SocketAddr, String, u64)>>,
    stop: AtomicBool,
}

impl Seen {
    fn note(&self, via: &str, map: &Mutex<BTreeMap<u64, RecordEvent>>, r: RecordEvent) {
        let Ok(mut m) = map.lock() else { return };
        match m.get(&r.seq) {
            Some(old) if *old != r => {
                if let Ok(mut c) = self.contradictions.lock() {
                    c.push(format!(
                        "{via}: record {} was first {} and later {}",
                        r.seq,
                        json(old),
                        json(&r)
                    ));
                }
            }
            Some(_) => {}
            None => {
                m.insert(r.seq, r);
            }
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Follows `/api/v1/stream` of whichever controller runs, reconnecting after every restart.
fn watch_stream(seen: Arc<Seen>) {
    while !seen.stop.load(Ordering::Relaxed) {
        let target = seen.target.lock().ok().and_then(|t| t.clone());
        let Some((addr, token, generation)) = target else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if follow(&seen, addr, &token, generation).is_err() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One connection to the stream, until it ends, the controller is replaced, or we stop.
fn follow(seen: &Seen, addr: SocketAddr, token: &str, generation: u64) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    write!(
        s,
        "GET /api/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )?;
    let mut raw: Vec<u8> = Vec::new();
    let mut body = String::new();
    let mut headers_done = false;
    let mut buf = [0u8; 64 * 1024];
    loop {
        if seen.stop.load(Ordering::Relaxed)
            || seen
                .target
                .lock()
                .ok()
                .and_then(|t| t.as_ref().map(|t| t.2))
                != Some(generation)
        {
            return Ok(());
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
        if !headers_done {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                return Err(std::io::Error::other(head));
            }
            raw.drain(..end + 4);
            headers_done = true;
        }
        // Chunks: the size in hex, CRLF, the data, CRLF.
        while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16)
                .map_err(|_| std::io::Error::other("a bad chunk size"))?;
            if size == 0 {
                return Ok(());
            }
            if raw.len() < eol + 2 + size + 2 {
                break;
            }
            body.push_str(&String::from_utf8_lossy(&raw[eol + 2..eol + 2 + size]));
            raw.drain(..eol + 2 + size + 2);
        }
        while let Some(end) = body.find("\n\n") {
            let block: String = body.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            match name.as_str() {
                "snapshot" => {
                    if data.contains("\"resync\":true") {
                        seen.resyncs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                "device_state" | "step_phase" | "" => {}
                _ => {
                    if let Ok(r) = serde_json::from_str::<RecordEvent>(&data) {
                        seen.note("stream", &seen.stream, r);
                    }
                }
            }
        }
    }
}

/// A subscriber with a session the broker keeps while it is away: every event and state
/// message of every hall.
fn subscribe(seen: Arc<Seen>, port: u16) -> rumqttc::Client {
    let mut o = MqttOptions::new("chaos-watch", "127.0.0.1", port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut connection) = rumqttc::Client::new(o, 256);
    let sub = client.clone();
    std::thread::spawn(move || {
        for ev in connection.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = sub.try_subscribe("hallctl/v1/+/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if p.topic.ends_with("/events") {
                        seen.mqtt_messages.fetch_add(1, Ordering::Relaxed);
                        match serde_json::from_slice::<EventMessage>(&p.payload) {
                            Ok(m) => seen.note("MQTT", &seen.mqtt, m.record),
                            Err(e) => {
                                if let Ok(mut c) = seen.contradictions.lock() {
                                    c.push(format!("MQTT: an unreadable event message: {e}"));
                                }
                            }
                        }
                    } else if p.topic.ends_with("/state")
                        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                    {
                        let n = |k: &serde_json::Value| k.as_u64().unwrap_or(0);
                        if let Ok(mut s) = seen.state.lock() {
                            *s = Some((
                                n(&v["ledger_head"]),
                                n(&v["outbox"]["cursor"]),
                                n(&v["outbox"]["backlog"]),
                                Instant::now(),
                            ));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    if seen.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    client
}

// ---- the controller ----------------------------------------------------------------------------

/// The controller (`hallctl demo`), started and killed again and again on one data directory.
struct Controller {
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// The current incarnation's standard output.
    out: Arc<Mutex<Vec<String>>>,
    addr: Option<SocketAddr>,
}

impl Controller {
    fn new(dir: PathBuf, log: PathBuf) -> Controller {
        Controller {
            dir,
            log,
            child: None,
            stdin: None,
            out: Arc::default(),
            addr: None,
        }
    }

    /// Starts `hallctl demo <args> --data-dir D --listen 127.0.0.1:0 --sim-faults-stdin` and
    /// waits until it has printed its banner.
    fn start(&mut self, args: &[String]) -> anyhow::Result<SocketAddr> {
        self.spawn(args)?;
        self.wait_open()
    }

    /// Starts the process without waiting for it.
    fn spawn(&mut self, args: &[String]) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "hallctl",
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--sim-faults-stdin",
            ])
            .args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            // Warnings and errors; the Modbus codec's complaints about the CRC bursts are noise.
            .env("RUST_LOG", "warn,tokio_modbus=off")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?))
            .spawn()
            .context("starting the controller")?;
        self.stdin = child.stdin.take();
        let out: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let (out, stdout) = (out.clone(), child.stdout.take());
            let mut log = log;
            std::thread::spawn(move || {
                let Some(stdout) = stdout else { return };
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let _ = writeln!(log, "[stdout] {line}");
                    if let Ok(mut o) = out.lock() {
                        o.push(line);
                    }
                }
            });
        }
        self.out = out;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the controller has printed its banner: its address.
    fn wait_open(&mut self) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let lines = self.lines();
            let addr = lines.iter().find_map(|l| {
                l.split("listening on http://")
                    .nth(1)
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            });
            if let Some(a) = addr
                && lines.iter().any(|l| l.contains("Ctrl-C ends the shift"))
            {
                self.addr = Some(a);
                return Ok(a);
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "the controller exited while starting ({status}):\n{}",
                    tail(&self.log, 40)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller did not open within 180 s:\n{}",
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// SIGKILL, and the process reaped.
    fn kill9(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.addr = None;
    }

    /// Exited by itself (a crash) since it was started?
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM (the shift ends, the controller stops like `hallctl serve`): must exit 0.
    fn stop(&mut self) -> anyhow::Result<()> {
        self.stdin = None;
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = c.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                bail!(
                    "the controller did not stop within 120 s of SIGTERM:\n{}",
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        self.addr = None;
        // The reader takes the last lines.
        std::thread::sleep(Duration::from_millis(200));
        if !status.success() {
            bail!(
                "the controller's clean stop failed ({status}):\n{}",
                tail(&self.log, 40)
            );
        }
        Ok(())
    }

    /// One fault-injection command on the controller's standard input.
    fn inject(&mut self, cmd: &str) -> bool {
        match self.stdin.as_mut() {
            Some(s) => writeln!(s, "{cmd}").and_then(|()| s.flush()).is_ok(),
            None => false,
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One HTTP/1.1 request with a JSON body: (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let b = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer: {text}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
        .unwrap_or_default();
    Ok((status, body))
}

/// The auditor's PIN, as the first start printed it.
fn auditor_pin(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "PIN")?;
        (w.first() == Some(&"AUD-1")).then(|| w.get(i + 1).map(|p| p.to_string()))?
    })
}

// ---- the run -----------------------------------------------------------------------------------

/// What the chaos did.
#[derive(Default, Debug)]
struct Counts {
    kills: u64,
    kills_starting: u64,
    link_cuts: u64,
    garbage: u64,
    crc: u64,
    broker_restarts: u64,
}

/// A fault to undo later.
enum Undo {
    Device { device: String, cmd: String },
    Broker,
}

fn run(opts: &Opts) -> anyhow::Result<bool> {
    if opts.minutes.is_nan() || opts.minutes <= 0.0 {
        bail!("--minutes must be above 0");
    }
    let seed = opts
        .seed
        .unwrap_or_else(|| Dice::from_clock(9).next_u64() >> 16);
    println!(
        "chaos: seed {seed} (replay: --seed {seed}), {} min, demo speed x{}",
        opts.minutes, opts.speed
    );
    let work = match &opts.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("hallctl-chaos-")
            .tempdir()?
            .keep(),
    };
    println!("chaos: work directory {}", work.display());
    let data = work.join("hall");
    let log = work.join("controller.log");
    let mut dice = Dice::seeded(seed);

    // The simulated devices the faults go to.
    let config = HallConfig::demo();
    let mut devices = Vec::new();
    for s in &config.stations {
        if let Some(d) = &s.device
            && matches!(
                d.driver,
                DriverConfig::Printer { .. } | DriverConfig::Laminator { .. }
            )
        {
            devices.push(d.id.as_str().to_string());
        }
    }

    let mut broker = Broker::start(work.join("broker"))?;
    let seen = Arc::new(Seen::default());
    let subscriber = subscribe(seen.clone(), broker.port);
    // The subscriber's session exists before the hall publishes its first record.
    std::thread::sleep(Duration::from_millis(500));
    let watcher = {
        let seen = seen.clone();
        std::thread::spawn(move || watch_stream(seen))
    };

    let speed = opts.speed.to_string();
    let chaos_args: Vec<String> = [
        "--autopilot",
        "--faults",
        "--speed",
        &speed,
        "--mqtt",
        &broker.url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut ctl = Controller::new(data.clone(), log.clone());
    let mut generation = 0u64;
    let mut pin = None;
    let mut start = |ctl: &mut Controller, args: &[String]| -> anyhow::Result<()> {
        let addr = ctl.start(args)?;
        if pin.is_none() {
            pin = auditor_pin(&ctl.lines());
        }
        let p = pin
            .clone()
            .ok_or_else(|| anyhow!("the first start printed no PIN for AUD-1"))?;
        let (status, body) = http(
            addr,
            "POST",
            "/api/v1/session",
            &serde_json::json!({"user": "AUD-1", "pin": p}),
        )?;
        let token = body["token"]
            .as_str()
            .filter(|_| status == 200)
            .ok_or_else(|| anyhow!("the auditor cannot sign in: {status} {body}"))?;
        generation += 1;
        if let Ok(mut t) = seen.target.lock() {
            *t = Some((addr, token.to_string(), generation));
        }
        Ok(())
    };

    let t0 = Instant::now();
    let chaos_for = Duration::from_secs_f64(opts.minutes * 60.0);
    start(&mut ctl, &chaos_args)?;
    let mut counts = Counts::default();
    let mut pending: Vec<(Instant, Undo)> = Vec::new();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut broker_down = false;
    let mean = |d: &mut Dice, secs: f64| d.exponential(Duration::from_secs_f64(secs));
    // Each happens at least once, by half time.
    let half = chaos_for / 2;
    let mut next_kill = Instant::now() + mean(&mut dice, opts.kill_every).min(half);
    let mut next_broker = Instant::now() + mean(&mut dice, opts.broker_every).min(half);
    let mut next_fault = Instant::now() + mean(&mut dice, opts.fault_every);
    let mut violations: Vec<String> = Vec::new();
    let mut last_progress = Instant::now();
    while t0.elapsed() < chaos_for {
        let now = Instant::now();
        // Undo what is due.
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(t, _)| *t <= now);
        pending = later;
        for (_, u) in due {
            match u {
                Undo::Device { device, cmd } => {
                    ctl.inject(&cmd);
                    busy.remove(&device);
                }
                Undo::Broker => {
                    broker.up()?;
                    broker_down = false;
                    counts.broker_restarts += 1;
                }
            }
        }
        if let Some(status) = ctl.exited() {
            violations.push(format!(
                "the controller exited by itself ({status}):\n{}",
                tail(&log, 30)
            ));
            break;
        }
        if now >= next_kill {
            ctl.kill9();
            counts.kills += 1;
            // A new controller has new simulators: the line faults are gone with the old one.
            pending.retain(|(_, u)| matches!(u, Undo::Broker));
            busy.clear();
            // Now and then it stays down a moment; usually it comes straight back.
            if dice.chance(0.3) {
                std::thread::sleep(Duration::from_millis(200 + dice.below(3000)));
            }
            // Now and then it is killed again while it starts (recovering the ledger, the jobs
            // in flight, the sessions).
            if dice.chance(0.25) {
                ctl.spawn(&chaos_args)?;
                std::thread::sleep(Duration::from_millis(dice.below(3000)));
                ctl.kill9();
                counts.kills += 1;
                counts.kills_starting += 1;
            }
            start(&mut ctl, &chaos_args)?;
            next_kill = Instant::now() + mean(&mut dice, opts.kill_every);
        }
        if now >= next_broker && !broker_down {
            broker.down();
            broker_down = true;
            let off = Duration::from_millis(500 + dice.below(8000));
            pending.push((Instant::now() + off, Undo::Broker));
            next_broker = Instant::now() + off + mean(&mut dice, opts.broker_every);
        }
        if now >= next_fault {
            next_fault = now + mean(&mut dice, opts.fault_every);
            let device = dice.pick(&devices).clone();
            if !busy.contains(&device) {
                let (on, off, hold) = match dice.below(3) {
                    0 => {
                        counts.link_cuts += 1;
                        (
                            format!("unplug {device}"),
                            format!("plug {device}"),
                            1_000 + dice.below(9_000),
                        )
                    }
                    1 => {
                        counts.garbage += 1;
                        (
                            format!("garbage {device} on"),
                            format!("garbage {device} off"),
                            200 + dice.below(3_000),
                        )
                    }
                    _ => {
                        counts.crc += 1;
                        (
                            format!("crc {device} on"),
                            format!("crc {device} off"),
                            200 + dice.below(3_000),
                        )
                    }
                };
                ctl.inject(&on);
                busy.insert(device.clone());
                pending.push((
                    now + Duration::from_millis(hold),
                    Undo::Device { device, cmd: off },
                ));
            }
        }
        if last_progress.elapsed() > Duration::from_secs(30) {
            last_progress = Instant::now();
            let head = seen.stream.lock().map_or(0, |m| m.len());
            println!(
                "chaos: {:>4} s · {} kills · {} link cuts · {} garbage · {} CRC · {} broker \
                 restarts · {head} records seen on the stream",
                t0.elapsed().as_secs(),
                counts.kills,
                counts.link_cuts,
                counts.garbage,
                counts.crc,
                counts.broker_restarts
            );
        }
        let next = [next_kill, next_broker, next_fault]
            .into_iter()
            .chain(pending.iter().map(|p| p.0))
            .min()
            .unwrap_or(now);
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(20), Duration::from_millis(500)),
        );
    }
    let chaos_secs = t0.elapsed().as_secs_f64();

    // ---- calm: everything back, the shift ends cleanly ------------------------------------
    for (_, u) in std::mem::take(&mut pending) {
        match u {
            Undo::Device { cmd, .. } => {
                ctl.inject(&cmd);
            }
            Undo::Broker => {
                broker.up()?;
                counts.broker_restarts += 1;
            }
        }
    }
    let mut shift_notes = Vec::new();
    if violations.is_empty() {
        std::thread::sleep(Duration::from_secs(3));
        println!("chaos: calm; the shift ends (SIGTERM)");
        ctl.stop()?;
        for l in ctl.lines() {
            if l.starts_with("shift end:") {
                shift_notes.push(l);
            }
        }
        // A quiet start publishes what the outbox still holds.
        println!("chaos: a quiet start to drain the outbox");
        start(
            &mut ctl,
            &[
                "--jobs-per-hour".into(),
                "0".into(),
                "--mqtt".into(),
                broker.url(),
            ],
        )?;
        let since = Instant::now();
        let deadline = since + Duration::from_secs(120);
        loop {
            let s = seen.state.lock().ok().and_then(|s| *s);
            if let Some((head, cursor, backlog, at)) = s
                && at > since
                && backlog == 0
                && cursor == head
                && head > 0
            {
                break;
            }
            if Instant::now() > deadline {
                violations.push(format!(
                    "the outbox did not drain within 120 s of a quiet start (last state: {s:?})"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        ctl.stop()?;
    } else {
        ctl.kill9();
    }
    seen.stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();

    // ---- the checks --------------------------------------------------------------------------
    let ledger_dir = data.join("ledger");
    println!("chaos: hallctl audit verify");
    let verify = Command::new(std::env::current_exe()?)
        .args(["hallctl", "audit", "verify", "--ledger"])
        .arg(&ledger_dir)
        .output()?;
    let verify_out = String::from_utf8_lossy(&verify.stdout).trim().to_string();
    if verify.status.success() {
        println!("  {verify_out}");
    } else {
        violations.push(format!(
            "the ledger does not verify: {verify_out} {}",
            String::from_utf8_lossy(&verify.stderr).trim()
        ));
    }
    let ledger = Ledger::open_existing(&ledger_dir).context("opening the ledger")?;
    let head = ledger.head();
    // The subscriber may still be taking the last messages.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.mqtt.lock().map_or(0, |m| m.len() as u64) < head && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = subscriber.disconnect();
    let mut records = Vec::with_capacity(usize::try_from(head).unwrap_or(0));
    for seq in 1..=head {
        match ledger.record(seq)? {
            Some(r) => records.push(r),
            None => bail!("record {seq} is missing below the head {head}"),
        }
    }
    let report = check(&ledger, &records, &seen, &config)?;
    // A run that saw nothing, or in which the hall did nothing, proves nothing.
    let stream_seen = seen.stream.lock().map_or(0, |m| m.len());
    if stream_seen == 0 {
        violations.push("the stream watcher saw no record".into());
    }
    if report.dispatched == 0 {
        violations.push("no job was completed: the hall did not work".into());
    }
    violations.extend(report.violations.iter().cloned());
    violations.extend(
        seen.contradictions
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default(),
    );
    drop(ledger);

    let mqtt_seen = seen.mqtt.lock().map_or(0, |m| m.len());
    println!(
        "chaos: {:.1} min of chaos, seed {seed}: {} kills ({} while starting), {} link cuts, {} garbage bursts, {} CRC \
         bursts, {} broker restarts · {} jobs completed ({} submitted, {} open) · ledger head {head} \
         · {stream_seen} records seen on the stream ({} resyncs), {mqtt_seen} over MQTT ({} \
         messages with resends) · lost={} · {} sessions ({} balanced, {} listing {} serials in \
         question) · {} patches applied once each · outbox cursor {} of {head}",
        chaos_secs / 60.0,
        counts.kills,
        counts.kills_starting,
        counts.link_cuts,
        counts.garbage,
        counts.crc,
        counts.broker_restarts,
        report.dispatched,
        report.jobs,
        report.open_jobs,
        seen.resyncs.load(Ordering::Relaxed),
        seen.mqtt_messages.load(Ordering::Relaxed),
        report.lost,
        report.sessions,
        report.balanced,
        report.sessions - report.balanced,
        report.in_question,
        report.patches,
        report.cursor,
    );
    println!(
        "chaos: jobs by state: {}",
        report
            .by_state
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &shift_notes {
        println!("  {n}");
    }
    if violations.is_empty() {
        println!("chaos: OK");
        if opts.keep.is_none() {
            let _ = std::fs::remove_dir_all(&work);
        }
        Ok(true)
    } else {
        for v in &violations {
            eprintln!("chaos: VIOLATION: {v}");
        }
        eprintln!(
            "chaos: FAILED with {} violation(s); seed {seed}; kept {}",
            violations.len(),
            work.display()
        );
        Ok(false)
    }
}

/// What the checks found.
#[derive(Default)]
struct Report {
    violations: Vec<String>,
    lost: u64,
    jobs: u64,
    open_jobs: u64,
    dispatched: u64,
    sessions: u64,
    balanced: u64,
    in_question: u64,
    patches: u64,
    cursor: u64,
    /// Jobs by their stored state.
    by_state: BTreeMap<&'static str, u64>,
}

fn check(
    ledger: &Ledger,
    records: &[hallctl::ledger::Record],
    seen: &Seen,
    config: &HallConfig,
) -> anyhow::Result<Report> {
    let mut r = Report::default();
    let head = records.len() as u64;
    let mut v = Vec::new();

    // No acknowledged event lost: what the stream and the subscriber saw is in the ledger.
    for (via, map) in [("stream", &seen.stream), ("MQTT", &seen.mqtt)] {
        let map = map.lock().map_err(|_| anyhow!("poisoned"))?;
        for (seq, got) in map.iter() {
            let ok = seq
                .checked_sub(1)
                .and_then(|i| records.get(usize::try_from(i).ok()?))
                .map(|rec| RecordEvent::of(rec.seq, rec.at, &rec.actor, &rec.event));
            if ok.as_ref() != Some(got) {
                r.lost += 1;
                if r.lost <= 10 {
                    v.push(format!(
                        "record {seq} was seen on the {via} as {} but the ledger has {}",
                        json(got),
                        ok.as_ref().map_or("nothing".into(), json)
                    ));
                }
            }
        }
        if via == "MQTT" {
            let missing: Vec<u64> = (1..=head).filter(|s| !map.contains_key(s)).collect();
            if !missing.is_empty() {
                v.push(format!(
                    "the subscriber did not get {} of the {head} records (first: {:?})",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ));
            }
        }
    }

    // The outbox drained.
    r.cursor = hallctl::mqtt::Cursor::load(ledger)?.events;
    if r.cursor != head {
        v.push(format!(
            "the outbox did not drain: acknowledged cursor {} but the ledger's head is {head}",
            r.cursor
        ));
    }

    // Every job in exactly one state: submitted once, stored once, and its stored state is
    // where its records lead.
    let separation = config.policy.separation();
    let mut submitted: HashMap<JobId, u64> = HashMap::new();
    let mut changes: HashMap<JobId, Vec<(u64, Replay)>> = HashMap::new();
    let mut printed: HashMap<Serial, Vec<u64>> = HashMap::new();
    let mut applied: HashMap<Serial, Vec<u64>> = HashMap::new();
    let mut patched: HashMap<Serial, Vec<u64>> = HashMap::new();
    let mut sessions: Vec<SessionId> = Vec::new();
    let mut lots = Vec::new();
    for rec in records {
        match &rec.event {
            LedgerEvent::Action {
                action: ControlAction::JobsSubmitted { jobs },
            } => {
                for j in jobs {
                    if let Some(first) = submitted.insert(*j, rec.seq) {
                        v.push(format!(
                            "job {j} was submitted twice (records {first} and {})",
                            rec.seq
                        ));
                    }
                }
            }
            LedgerEvent::Action {
                action: ControlAction::JobChanged { job, event },
            } => changes
                .entry(*job)
                .or_default()
                .push((rec.seq, Replay::Job(event.clone()))),
            // An assignment starts the step (a dispatch assignment changes nothing: packing does).
            LedgerEvent::Action {
                action:
                    ControlAction::Assigned {
                        job,
                        stage,
                        station,
                        device,
                        operator,
                        ..
                    },
            } if *stage != Stage::Dispatch => changes.entry(*job).or_default().push((
                rec.seq,
                Replay::Job(JobEvent::Start {
                    stage: *stage,
                    run: StepRun {
                        station: station.clone(),
                        device: device.clone(),
                        operator: operator.clone(),
                        started_at: rec.at,
                    },
                }),
            )),
            // The scan binds the item to the job's crew at once (the gate), before the step ends:
            // a job left between scan and end (awaiting a spoilage decision) shows it.
            LedgerEvent::BookletPrinted { booklet, job, .. } => {
                printed.entry(booklet.clone()).or_default().push(rec.seq);
                changes
                    .entry(*job)
                    .or_default()
                    .push((rec.seq, Replay::Booklet(booklet.as_str().to_string())));
            }
            LedgerEvent::PatchApplied {
                patch,
                booklet,
                job,
                ..
            } => {
                applied.entry(patch.clone()).or_default().push(rec.seq);
                patched.entry(booklet.clone()).or_default().push(rec.seq);
                changes
                    .entry(*job)
                    .or_default()
                    .push((rec.seq, Replay::Patch(patch.as_str().to_string())));
            }
            LedgerEvent::SessionOpened { session, .. } => sessions.push(session.clone()),
            LedgerEvent::LotReceived { lot, range, .. } => lots.push((lot.clone(), range.clone())),
            _ => {}
        }
    }
    let mut stored: BTreeMap<JobId, JobRecord> = BTreeMap::new();
    let mut unreadable = None;
    ledger
        .store()
        .aux_for_each(b"job/", b"job/", |_, val| {
            match serde_json::from_slice::<StoredJobRecord>(val) {
                Ok(s) => {
                    let j = JobRecord::from(s);
                    stored.insert(j.job.id, j);
                }
                Err(e) => unreadable = Some(e.to_string()),
            }
            true
        })
        .map_err(|e| anyhow!("reading the stored jobs: {e}"))?;
    if let Some(e) = unreadable {
        v.push(format!("a stored job is unreadable: {e}"));
    }
    r.jobs = stored.len() as u64;
    for id in submitted.keys() {
        if !stored.contains_key(id) {
            v.push(format!("job {id} was submitted but is not stored"));
        }
    }
    for (id, job) in &stored {
        if !submitted.contains_key(id) {
            v.push(format!("job {id} is stored but was never submitted"));
            continue;
        }
        let mut replay = JobRecord::new(job.job.clone())
            .apply(&JobEvent::Queue, &separation)
            .map_err(|e| anyhow!("job {id}: {e}"))?;
        for (seq, step) in changes.get(id).map(Vec::as_slice).unwrap_or_default() {
            let ev = match step {
                Replay::Job(ev) => ev,
                Replay::Booklet(b) => {
                    replay.crew.booklet = Some(b.clone());
                    continue;
                }
                Replay::Patch(p) => {
                    replay.crew.patch = Some(p.clone());
                    continue;
                }
            };
            match replay.apply(ev, &separation) {
                Ok(next) => replay = next,
                Err(e) => {
                    v.push(format!(
                        "job {id}: its record {seq} ({}) cannot follow its earlier records: {e}",
                        ev.name()
                    ));
                    break;
                }
            }
        }
        // When a step started is the line's clock, not the record's: compared without it.
        let plain = |r: &JobRecord| {
            let mut v = serde_json::json!([r.state, r.crew, r.spoiled]);
            strip(&mut v, "started_at");
            v
        };
        if plain(&replay) != plain(job) {
            v.push(format!(
                "job {id} is stored as {} but its records lead to {}",
                json(&job.state),
                json(&replay.state)
            ));
        }
        *r.by_state.entry(job.state.name()).or_default() += 1;
        match &job.state {
            JobState::Dispatched { .. } => r.dispatched += 1,
            JobState::Cancelled { .. } => {}
            _ => r.open_jobs += 1,
        }
    }

    // No patch applied twice; no booklet printed twice or given two patches.
    for (what, map) in [
        ("patch applied", &applied),
        ("booklet printed", &printed),
        ("booklet laminated", &patched),
    ] {
        for (serial, seqs) in map {
            if seqs.len() > 1 {
                v.push(format!("{what} twice: {serial} in records {seqs:?}"));
            }
        }
    }
    r.patches = applied.len() as u64;
    for serial in applied.keys() {
        // Applied, or spoiled with its booklet (and perhaps destroyed since): never back in
        // the vault or a session, where it could be applied again.
        match ledger.item(serial)?.map(|i| i.state) {
            Some(s) if s.follows_use() => {}
            other => v.push(format!(
                "patch {serial} has a patch_applied record but it is {}",
                other.map_or("unknown".into(), |s| s.describe())
            )),
        }
    }

    // Reconciliation: every lot adds up; every session balances or lists exactly the serials
    // its custody state still holds.
    let mut held_by: HashMap<SessionId, BTreeSet<Serial>> = HashMap::new();
    for (lot, range) in &lots {
        let rep = ledger.reconcile(&Scope::Lot(lot.clone()))?;
        let Some(l) = rep.lots.first() else {
            v.push(format!("lot {lot} has no reconciliation"));
            continue;
        };
        let total = l.in_vault.len() as u64
            + l.issued.len() as u64
            + l.applied
            + l.spoiled.len() as u64
            + l.destroyed.len() as u64
            + l.missing.len() as u64
            + l.suspect.len() as u64;
        if total != range.len() {
            v.push(format!(
                "lot {lot} does not add up: {total} serials accounted of {}",
                range.len()
            ));
        }
        for s in &l.issued {
            match ledger.item(s)?.map(|i| i.state) {
                Some(ItemState::Issued { session }) => {
                    held_by.entry(session).or_default().insert(s.clone());
                }
                other => v.push(format!(
                    "lot {lot} lists {s} as issued but it is {}",
                    other.map_or("unknown".into(), |s| s.describe())
                )),
            }
        }
    }
    for id in &sessions {
        let rep = ledger.reconcile(&Scope::Session(id.clone()))?;
        let Some(s) = rep.sessions.first() else {
            v.push(format!("session {id} has no reconciliation"));
            continue;
        };
        r.sessions += 1;
        let listed: BTreeSet<Serial> = s.unaccounted.iter().cloned().collect();
        let held = held_by.remove(id).unwrap_or_default();
        if listed != held {
            v.push(format!(
                "session {id}: reconciliation lists {listed:?} as unaccounted but it holds {held:?}"
            ));
        }
        if s.balanced {
            r.balanced += 1;
            if !listed.is_empty() {
                v.push(format!("session {id} balances but lists {listed:?}"));
            }
        } else {
            let in_question = listed.len() + s.missing.len();
            r.in_question += in_question as u64;
            if in_question == 0 {
                v.push(format!(
                    "session {id} does not balance but lists no serial in question"
                ));
            }
        }
    }
    for (session, serials) in held_by {
        v.push(format!(
            "{serials:?} are issued to session {session}, which no record opened"
        ));
    }
    r.violations = v;
    Ok(r)
}

/// `v` without any member named `key`, at any depth.
/// What a job's records do to it, in record order: a change of its state, or a scan that binds
/// an item to its crew.
enum Replay {
    Job(JobEvent),
    Booklet(String),
    Patch(String),
}

fn strip(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| strip(x, key));
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip(x, key)),
        _ => {}
    }
}
