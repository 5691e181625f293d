//! The controller's configuration: `hall.toml`.
//!
//! One file says which hall this is, where the service listens and keeps its data, the policies it
//! enforces, its alert thresholds, and every station with its device. The reference of every key
//! is `docs/config.md`; `config/hall.example.toml` is a documented example and `config/demo.toml`
//! the embedded demo hall ([`HallConfig::demo`]).
//!
//! Loading is a pure function of the text: nothing is opened, created or changed, so a bad file
//! changes nothing. It runs in three passes, and every error names the file, the line and the key
//! (`hall.toml:42: stations[3].device.unit: 0 is out of range 1..=247`):
//!
//! 1. **Syntax.** The TOML parser, with recovery, so every syntax error is reported.
//! 2. **Shape.** Each section and each bus and station is deserialized on its own into the
//!    as-written types of `raw` (unknown keys, wrong types, missing required keys), so a mistake
//!    in one station does not hide a mistake in another.
//! 3. **Meaning.** `validate` turns the as-written values into the types below, checking every
//!    rule that involves values or several keys (ids, ranges, which driver fits which station,
//!    buses, serial ports, one station of each kind). It reports all its errors.
//!
//! A pass runs only when the one before it found nothing, because its findings would be guesses.
//! Lines come from the parser's spans: `source::SpanIndex` maps every key path to where it
//! was written.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hallctl_jobs::job::{DeviceId, GroupTag, Separation, Stage, StationId};
use hallctl_jobs::scheduler::{Millis, SlackPolicy};
use serde::{Deserialize, Serialize};

pub mod fuzz_check;
mod raw;
mod source;
mod validate;

#[cfg(test)]
mod tests;

/// The embedded demo hall: 10 simulated printers, 11 simulated laminators on two simulated
/// buses, 2 QC stations, 1 dispatch station and the vault (`config/demo.toml`).
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");

/// The documented example (`config/hall.example.toml`): real serial ports and a vendor bridge.
pub const EXAMPLE_TOML: &str = include_str!("../config/hall.example.toml");

/// Whether a specimen issuing state (ICAO's `UTO`) is accepted: by the embedded demo hall only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Specimens {
    /// A real hall: specimen codes are refused.
    Refused,
    /// The demo hall.
    Allowed,
}

/// A loaded, validated configuration. Built only by [`HallConfig::load`], [`HallConfig::parse`]
/// or [`HallConfig::demo`], which guarantee every rule of `docs/config.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HallConfig {
    /// Which hall this is.
    pub hall: HallIdentity,
    /// The HTTP service: listen address, data directory, limits.
    pub server: ServerConfig,
    /// The rules the controller enforces.
    pub policy: PolicyConfig,
    /// When the controller raises alerts.
    pub alerts: AlertConfig,
    /// How staff and machine performance is measured.
    pub performance: PerformanceConfig,
    /// How QC reads a booklet back.
    pub qc: QcConfig,
    /// What custody of spoiled items allows.
    pub custody: CustodyConfig,
    /// Where the hall publishes for central monitoring (`None`: it does not).
    pub mqtt: Option<MqttConfig>,
    /// RS-485 buses carrying Modbus RTU laminators, in file order.
    pub buses: Vec<BusConfig>,
    /// Every station of the hall, in file order.
    pub stations: Vec<StationConfig>,
}

/// `[hall]`: which hall this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HallIdentity {
    /// Short id (`[a-z0-9-]`), used in MQTT topics and metrics labels.
    pub id: String,
    /// Human-readable name for the hall UI.
    pub name: String,
    /// ICAO 9303 code of the hall's issuing state as the MRZ writes it (`PAK`, `D`): the first of
    /// [`HallIdentity::issuing_states`], and the country of the SLTD export.
    pub issuing_state: String,
    /// Every state or organization the hall prints passports for (never empty, no repeats):
    /// intake refuses a job for any other. A specimen code (`UTO`) only in the demo hall.
    pub issuing_states: Vec<String>,
}

/// `[server]`: the HTTP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address and port the API and the hall UI listen on.
    pub listen: SocketAddr,
    /// Where the ledger and the job store live. Absolute: a relative path in the file was
    /// resolved against the file's directory when it was loaded.
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a request may take, in seconds.
    pub request_timeout_secs: u64,
    /// How long in-flight work may take to finish after SIGTERM, in seconds.
    pub shutdown_grace_secs: u64,
    /// The ledger's page cache, in MiB. The controller reads every item's state into it after
    /// start (so that a trace is answered from memory): about 550 bytes per ledger event.
    pub ledger_cache_mb: u64,
    /// Ledger history moves out of sled into signed, compressed segment files
    /// (`ledger/store/segments/`) a window of this many records at a time, once more than this
    /// many are outside files.
    pub ledger_seal_window: u64,
    /// A closed period's sealed files are merged into one (the unit an archive keeps).
    pub ledger_period: crate::ledger::Period,
    /// The line stops recording (no patch or booklet issued or applied) when the ledger's
    /// file system has fewer MiB free, before the store fails; 0 turns the halt off.
    pub min_free_disk_mb: u64,
    /// HTTPS: the server's certificate chain and private key (PEM files), or `None` for plain
    /// HTTP. Read when the controller starts.
    pub tls: Option<TlsFiles>,
    /// Sign-in attempts (`POST /api/v1/session`) one client address may make in a burst.
    pub signin_burst: u32,
    /// Seconds for one more sign-in attempt of a client address to become available.
    pub signin_refill_secs: u64,
}

/// `server.tls_cert` and `server.tls_key`: absolute paths (resolved against the file's
/// directory when loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ServerConfig {
    /// Longest a request may take.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// How long in-flight work may take to finish after SIGTERM.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The ledger's page cache, in bytes.
    pub fn ledger_cache_bytes(&self) -> u64 {
        self.ledger_cache_mb << 20
    }

    /// [`ServerConfig::min_free_disk_mb`] in bytes.
    pub fn min_free_disk_bytes(&self) -> u64 {
        self.min_free_disk_mb << 20
    }

    /// How long one sign-in attempt of a client address takes to come back.
    pub fn signin_refill(&self) -> Duration {
        Duration::from_secs(self.signin_refill_secs)
    }
}

/// `policy.separation`: how far separation of duties goes beyond its fixed core.
///
/// The printing operator never laminates the same booklet, whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeparationPolicy {
    /// QC is a third person: neither the printing nor the laminating operator (the default).
    #[default]
    Strict,
    /// QC need not be independent: the printing or the laminating operator of the booklet may do
    /// its QC ([`Separation`] with `qc_independent: false`).
    QcNotIndependent,
}

/// `policy.roll_order`: patches are consumed in roll order; what may break it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollOrder {
    /// A patch out of roll order needs a recorded reason and raises an alert (the default).
    #[default]
    ReasonRequired,
    /// No patch may be used out of roll order.
    Strict,
}

/// One value per priority class (`{ normal = .., urgent = .., fast_track = .. }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerClass {
    /// Normal processing.
    pub normal: u32,
    /// Urgent processing.
    pub urgent: u32,
    /// Fast-track.
    pub fast_track: u32,
}

impl PerClass {
    /// In the scheduler's order (normal, urgent, fast-track), hours as milliseconds.
    fn hours_as_millis(self) -> [Millis; 3] {
        [self.normal, self.urgent, self.fast_track].map(hours_to_millis)
    }
}

fn hours_to_millis(hours: u32) -> Millis {
    Millis::from(hours) * 3_600_000
}

/// `[policy]`: the rules the controller enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Who may do QC.
    pub separation: SeparationPolicy,
    /// Whether a patch may be used out of roll order.
    pub roll_order: RollOrder,
    /// Wrong PINs in a row after which an account is locked.
    pub max_pin_failures: u32,
    /// How long a locked account stays locked, in minutes.
    pub lockout_minutes: u32,
    /// Lifetime of station and UI session tokens, in minutes.
    pub token_ttl_minutes: u32,
    /// The scheduler's safety lead per class, in hours.
    pub class_lead_hours: PerClass,
    /// The scheduler's aging cap per class, in hours.
    pub aging_cap_hours: PerClass,
    /// Extra lead per boosted group tag (e.g. `HAJJ-2027`), in hours.
    pub boosted_groups: BTreeMap<GroupTag, u32>,
    /// Items a session may hold beyond its share of the queued work (BRIEF §3: only the number
    /// needed for the shift is issued; the margin covers spoilage).
    pub issue_margin: u32,
    /// Items a session may hold at most, whatever the work.
    pub max_held_per_session: u32,
}

impl PolicyConfig {
    /// The separation-of-duties rule for the scheduler and the job record.
    pub fn separation(&self) -> Separation {
        Separation {
            qc_independent: self.separation == SeparationPolicy::Strict,
        }
    }

    /// The scheduler's production rule.
    pub fn slack(&self) -> SlackPolicy {
        SlackPolicy {
            class_lead: self.class_lead_hours.hours_as_millis(),
            aging_cap: self.aging_cap_hours.hours_as_millis(),
            boosted_groups: self
                .boosted_groups
                .iter()
                .map(|(tag, hours)| (tag.clone(), hours_to_millis(*hours)))
                .collect(),
        }
    }

    /// How long a locked account stays locked.
    pub fn lockout(&self) -> Duration {
        minutes(self.lockout_minutes)
    }

    /// Lifetime of a session token.
    pub fn token_ttl(&self) -> Duration {
        minutes(self.token_ttl_minutes)
    }
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// `[alerts]`: thresholds at which the controller raises alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// Queued jobs (all stages) above which a backlog alert is raised.
    pub queue_depth: u32,
    /// Age of the oldest queued job, in minutes, above which a backlog alert is raised.
    pub oldest_queued_minutes: u32,
    /// Seconds a device may be offline before an alert is raised.
    pub device_offline_secs: u32,
    /// Safety margin, in minutes: a job is at risk when its predicted completion (from the
    /// current rate and the jobs due before it) comes later than this before its due time.
    pub due_at_risk_minutes: u32,
    /// A backlog alert clears when the queue (or the oldest job's age) is back at or below
    /// this percentage of its threshold, so that a queue hovering at the threshold does not
    /// raise and clear an alert every few seconds.
    pub clear_percent: u32,
    /// The due-at-risk prediction waits for this many jobs dispatched since the controller
    /// started...
    pub due_at_risk_min_completions: u32,
    /// ... and for this many seconds watched since it started: before both, it predicts nothing.
    pub due_at_risk_min_window_secs: u32,
    /// A `backlog` or `due_at_risk` condition raises its alert once it has held this long
    /// without a break (0: at once).
    pub raise_after_secs: u32,
    /// ... and clears it once it has been over this long without a break (0: at once).
    pub clear_after_secs: u32,
    /// Severity by alert kind or refusal rule (`[alerts.severity]`), over the built-in ones.
    pub severity: std::collections::BTreeMap<String, crate::line::Severity>,
}

impl Default for AlertConfig {
    /// The defaults of `docs/config.md`.
    fn default() -> Self {
        AlertConfig {
            queue_depth: 5000,
            oldest_queued_minutes: 240,
            device_offline_secs: 10,
            due_at_risk_minutes: 60,
            clear_percent: 90,
            due_at_risk_min_completions: 20,
            due_at_risk_min_window_secs: 900,
            raise_after_secs: 60,
            clear_after_secs: 300,
            severity: std::collections::BTreeMap::new(),
        }
    }
}

/// `[performance]`: the ideal cycle time of each stage, the yardstick of OEE's performance
/// factor (a step that takes longer than this lowers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerformanceConfig {
    /// Ideal seconds per print step.
    pub ideal_print_secs: u32,
    /// Ideal seconds per lamination step.
    pub ideal_laminate_secs: u32,
    /// Ideal seconds per QC step.
    pub ideal_qc_secs: u32,
    /// Ideal seconds per dispatch step.
    pub ideal_dispatch_secs: u32,
}

impl Default for PerformanceConfig {
    /// The defaults of `docs/config.md`.
    fn default() -> Self {
        PerformanceConfig {
            ideal_print_secs: 60,
            ideal_laminate_secs: 45,
            ideal_qc_secs: 30,
            ideal_dispatch_secs: 15,
        }
    }
}

impl PerformanceConfig {
    /// The ideal cycle times in stage order (print, laminate, QC, dispatch).
    pub fn ideal_cycle(&self) -> [Duration; 4] {
        [
            self.ideal_print_secs,
            self.ideal_laminate_secs,
            self.ideal_qc_secs,
            self.ideal_dispatch_secs,
        ]
        .map(|s| Duration::from_secs(u64::from(s)))
    }
}

/// `[qc]`: how QC reads a booklet's MRZ back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcConfig {
    /// Readings of one booklet's MRZ that must disagree with the job's before QC spoils booklet
    /// and patch: every mismatch before the last asks the operator to read it again (1: the
    /// first mismatch spoils).
    pub read_attempts: u32,
}

impl Default for QcConfig {
    /// The defaults of `docs/config.md`.
    fn default() -> Self {
        QcConfig { read_attempts: 2 }
    }
}

/// `[custody]`: how long spoiled items may wait for their witnessed destruction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustodyConfig {
    /// A spoiled item (awaiting approval or approved) not destroyed this long after its spoil
    /// raises a critical `spoilage_not_destroyed` alert (`destroy_within_secs`). `None` (the
    /// default): by the end of the shift it was spoiled in.
    pub destroy_within: Option<Duration>,
}

impl AlertConfig {
    /// Age of the oldest queued job above which a backlog alert is raised.
    pub fn oldest_queued(&self) -> Duration {
        minutes(self.oldest_queued_minutes)
    }

    /// How long a device may be offline before an alert is raised.
    pub fn device_offline(&self) -> Duration {
        Duration::from_secs(u64::from(self.device_offline_secs))
    }

    /// How long before its due time an unfinished job is at risk.
    pub fn due_at_risk(&self) -> Duration {
        minutes(self.due_at_risk_minutes)
    }
}

/// `[mqtt]`: the broker the hall publishes its status, events and checkpoints to, for central
/// monitoring (`docs/mqtt.md`). Credentials are files, read when the service starts: loading the
/// configuration opens nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// The broker.
    pub url: BrokerUrl,
    /// The MQTT client id (default `hallctl-<hall id>`).
    pub client_id: String,
    /// The user name, when the broker wants one.
    pub username: Option<String>,
    /// A file holding the password (its first line), readable by the controller only. Absolute:
    /// a relative path in the file was resolved against the file's directory.
    pub password_file: Option<PathBuf>,
    /// For `mqtts://`: the CA certificate(s) that signed the broker's, PEM. Absolute.
    pub ca_file: Option<PathBuf>,
    /// Seconds between keep-alive pings; the broker declares the hall offline (and publishes its
    /// last will) after 1.5 times this without a word.
    pub keep_alive_secs: u64,
}

impl MqttConfig {
    /// A plain `[mqtt]` section: `url`, and every other key at its default (client id
    /// `hallctl-<hall id>`, no account, keep-alive 30 s), as the demo's `--mqtt` uses it.
    pub fn new(url: BrokerUrl, hall_id: &str) -> MqttConfig {
        MqttConfig {
            url,
            client_id: format!("hallctl-{hall_id}"),
            username: None,
            password_file: None,
            ca_file: None,
            keep_alive_secs: 30,
        }
    }

    /// The keep-alive interval.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }
}

/// A broker's address: `mqtt://host[:port]` (TCP, port 1883 by default) or
/// `mqtts://host[:port]` (TLS, port 8883 by default). The host is a name, an IPv4 address or an
/// IPv6 address in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (a trailing `/` is allowed).
    ///
    /// # Errors
    /// What is wrong, for a person (credentials, a path or a query in the URL are refused).
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let form = "mqtt://host[:port] or mqtts://host[:port]";
        let (tls, rest) = if let Some(r) = text.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(format!("{text:?} is not a broker URL: {form}"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(
                "the URL must not carry credentials: use username and password_file".to_string(),
            );
        }
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "{text:?} has a path or a query: a broker URL is {form}"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing ]"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{addr:?} is not an IPv6 address"));
            }
            let port =
                match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or_else(|| {
                        format!("{text:?}: expected :port after the IPv6 address")
                    })?),
                };
            (addr.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?} names no host: {form}"));
        }
        if !host.contains(':')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(format!("{host:?} is not a host name or address"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("{p:?} is not a port (1..=65535)")),
            },
        };
        Ok(BrokerUrl { tls, host, port })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How a serial device or bus is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialLink {
    /// A real serial port (or a symlink to one).
    Port {
        /// Path of the port, absolute (a relative path was resolved against the file's directory).
        path: PathBuf,
        /// Line speed.
        baud: u32,
    },
    /// The controller starts a simulator on a pseudo-terminal pair and drives it through the
    /// real serial code path.
    Simulated,
}

impl SerialLink {
    /// The port's path, unless simulated.
    pub fn port(&self) -> Option<&Path> {
        match self {
            SerialLink::Port { path, .. } => Some(path),
            SerialLink::Simulated => None,
        }
    }
}

/// `[[buses]]`: one RS-485 bus carrying Modbus RTU laminators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Bus id, named by each laminator on it (`device.bus`).
    pub id: String,
    /// Its serial port, or a simulated bus.
    pub link: SerialLink,
}

/// What a station does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationKind {
    /// Where lots are received and items issued to and returned from custody sessions.
    Vault,
    /// A passport printer's station.
    Print,
    /// A laminator's station.
    Laminate,
    /// Quality control: the MRZ is read back and compared.
    Qc,
    /// Ready passports are packed into bags per destination.
    Dispatch,
}

impl StationKind {
    /// Every kind, in line order with the vault first.
    pub const ALL: [StationKind; 5] = [
        StationKind::Vault,
        StationKind::Print,
        StationKind::Laminate,
        StationKind::Qc,
        StationKind::Dispatch,
    ];

    /// The line stage this station works, if any (the vault works none).
    pub fn stage(self) -> Option<Stage> {
        match self {
            StationKind::Vault => None,
            StationKind::Print => Some(Stage::Print),
            StationKind::Laminate => Some(Stage::Laminate),
            StationKind::Qc => Some(Stage::Qc),
            StationKind::Dispatch => Some(Stage::Dispatch),
        }
    }

    /// The name used in the file (`print`, `qc`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StationKind::Vault => "vault",
            StationKind::Print => "print",
            StationKind::Laminate => "laminate",
            StationKind::Qc => "qc",
            StationKind::Dispatch => "dispatch",
        }
    }
}

impl fmt::Display for StationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[stations]]`: one station and its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationConfig {
    /// Station id (`PRINT-01`).
    pub id: StationId,
    /// What it does.
    pub kind: StationKind,
    /// Its device: always present at print and laminate stations, never at the others.
    pub device: Option<DeviceConfig>,
}

/// A station's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Device id (`PR-01`), unique in the hall.
    pub id: DeviceId,
    /// How it is driven.
    pub driver: DriverConfig,
}

/// How a device is driven (`device.driver` in the file, with that driver's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverConfig {
    /// A passport printer speaking the binary vendor protocol on its own serial port.
    Printer {
        /// Its port, or a simulated printer.
        link: SerialLink,
        /// Timeout of one request.
        timeout: Duration,
    },
    /// A laminator: one Modbus RTU unit on an RS-485 bus.
    Laminator {
        /// Id of its bus (always one of [`HallConfig::buses`]).
        bus: String,
        /// Modbus unit address, 1–247, unique on its bus.
        unit: u8,
        /// This unit's request timeout.
        timeout: Duration,
    },
    /// A vendor SDK wrapped as a JSON-lines bridge.
    Bridge {
        /// How the bridge is reached.
        endpoint: BridgeEndpoint,
        /// Timeout of one call.
        timeout: Duration,
    },
}

/// Where a vendor bridge runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEndpoint {
    /// A child process speaking JSON lines on stdin/stdout.
    Process {
        /// The program: a bare name is looked up on `PATH`; a relative path was resolved against
        /// the file's directory.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A bridge listening on TCP (`host:port`).
    Tcp {
        /// The address to connect to.
        address: String,
    },
}

impl HallConfig {
    /// Reads and validates `path`. Relative paths in the file (data directory, ports, bridge
    /// programs) are resolved against the file's directory.
    ///
    /// # Errors
    /// Every problem found, each naming the file, the line and the key (or that the file cannot
    /// be read).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read the configuration: {e}"),
            }])
        })?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base_dir = absolute.parent().unwrap_or(Path::new("/"));
        Self::parse(&text, &file, base_dir)
    }

    /// Validates `text` as if read from a file named `file` in the directory `base_dir`
    /// (against which relative paths are resolved).
    ///
    /// # Errors
    /// Every problem found, each naming `file`, the line and the key.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        Self::parse_as(text, file, base_dir, Specimens::Refused)
    }

    fn parse_as(
        text: &str,
        file: &str,
        base_dir: &Path,
        specimens: Specimens,
    ) -> Result<Self, ConfigErrors> {
        let (doc, index) = source::parse_document(text, file)?;
        let raw = raw::RawConfig::from_document(doc, &index)?;
        validate::validate(raw, &index, base_dir, specimens)
    }

    /// The embedded demo hall ([`DEMO_TOML`]). Its data directory, `hallctl-demo-data`, stays
    /// relative: it is resolved against the working directory of the process. The one hall that
    /// may print for a specimen state (`UTO`).
    pub fn demo() -> Self {
        // The embedded text is checked by a unit test; a failure here is a build defect.
        Self::parse_as(DEMO_TOML, "demo.toml", Path::new(""), Specimens::Allowed)
            .unwrap_or_else(|e| panic!("the embedded demo configuration is invalid:\n{e}"))
    }

    /// The stations of one kind, in file order.
    pub fn stations_of(&self, kind: StationKind) -> impl Iterator<Item = &StationConfig> {
        self.stations.iter().filter(move |s| s.kind == kind)
    }

    /// The bus with this id.
    pub fn bus(&self, id: &str) -> Option<&BusConfig> {
        self.buses.iter().find(|b| b.id == id)
    }

    /// One line for a person: `hall isb-central, 10 print, 11 laminate, 2 qc, 1 dispatch,
    /// 1 vault stations, 2 buses`.
    pub fn summary(&self) -> String {
        let kinds = [
            StationKind::Print,
            StationKind::Laminate,
            StationKind::Qc,
            StationKind::Dispatch,
            StationKind::Vault,
        ]
        .map(|k| format!("{} {k}", self.stations_of(k).count()))
        .join(", ");
        let buses = self.buses.len();
        format!(
            "hall {}, {kinds} stations, {buses} bus{}",
            self.hall.id,
            if buses == 1 { "" } else { "es" }
        )
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as it was named.
    pub file: String,
    /// 1-based line of the offending key, when the problem has one.
    pub line: Option<usize>,
    /// Key path (`stations[3].device.unit`), empty for a problem of the whole file.
    pub path: String,
    /// What is wrong, for the person editing the file.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, in file order (one per line of output).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_errors(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn display_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
