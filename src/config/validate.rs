//! The rules of `docs/config.md` that involve values or several keys: the as-written sections of
//! [`super::raw`] become the types of [`super`], and every broken rule is reported with its key
//! and line.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use hallctl_jobs::country::{
    icao_replacement, is_issuing_code, is_nationality_code, is_specimen_code,
};
use hallctl_jobs::job::{DeviceId, GroupTag, StationId};

use super::raw::{DriverKind, RawBus, RawConfig, RawDevice, RawPerClass, RawStation};
use super::source::{SpanIndex, join_key};
use super::{
    AlertConfig, BridgeEndpoint, BrokerUrl, BusConfig, ConfigError, ConfigErrors, CustodyConfig,
    DeviceConfig, DriverConfig, HallConfig, HallIdentity, MqttConfig, PerClass, PerformanceConfig,
    PolicyConfig, QcConfig, SerialLink, ServerConfig, Specimens, StationConfig, StationKind,
    TlsFiles,
};

/// Baud rates a serial port may be set to.
pub(super) const BAUD_RATES: [u64; 11] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];
/// Modbus RTU unit addresses (0 is broadcast, 248–255 reserved).
pub(super) const MODBUS_UNITS: RangeInclusive<u64> = 1..=247;
/// Longest hall, bus, station or device id.
pub(super) const ID_MAX_LEN: usize = 32;
/// Longest MQTT client id.
pub(super) const MQTT_CLIENT_ID_MAX_LEN: usize = 64;
/// Longest hall name.
pub(super) const NAME_MAX_LEN: usize = 100;

/// `custody.destroy_within_secs`: from a second (tests) to a week.
const DESTROY_WITHIN_SECS: std::ops::RangeInclusive<u64> = 1..=604_800;

/// `qc.read_attempts`: at least one reading; beyond five, a reader that cannot read a booklet
/// is a reader to fix, not to retry.
pub(super) const QC_READ_ATTEMPTS: RangeInclusive<u64> = 1..=5;

/// Defaults of the per-driver keys.
const PRINTER_BAUD: u64 = 115_200;
const BUS_BAUD: u64 = 19_200;
const PRINTER_TIMEOUT_MS: u64 = 150;
const LAMINATOR_TIMEOUT_MS: u64 = 100;
const BRIDGE_TIMEOUT_MS: u64 = 2000;

/// Checks every rule and builds the configuration.
///
/// # Errors
/// Every broken rule, in file order (rules of the whole file last).
pub(super) fn validate(
    raw: RawConfig,
    index: &SpanIndex,
    base_dir: &Path,
    specimens: Specimens,
) -> Result<HallConfig, ConfigErrors> {
    let mut c = Checker {
        index,
        base_dir,
        specimens,
        errors: Vec::new(),
        ports: HashMap::new(),
    };
    let hall = c.hall(raw.hall);
    let server = c.server(raw.server);
    let policy = c.policy(raw.policy);
    let alerts = c.alerts(raw.alerts);
    let performance = c.performance(raw.performance);
    let qc = c.qc(raw.qc);
    let custody = c.custody(raw.custody);
    let mqtt = raw.mqtt.map(|m| c.mqtt(m, &hall.id));
    let buses = c.buses(raw.buses);
    let stations = c.stations(raw.stations, &buses);
    if c.errors.is_empty() {
        Ok(HallConfig {
            hall,
            server,
            policy,
            alerts,
            performance,
            qc,
            custody,
            mqtt,
            buses,
            stations,
        })
    } else {
        let mut errors = c.errors;
        errors.sort_by_key(|e| (e.line.is_none(), e.line));
        Err(ConfigErrors(errors))
    }
}

struct Checker<'a> {
    index: &'a SpanIndex,
    base_dir: &'a Path,
    /// Whether a specimen issuing state is accepted (the demo hall).
    specimens: Specimens,
    errors: Vec<ConfigError>,
    /// Serial ports already taken (resolved path → who took it, at which line).
    ports: HashMap<PathBuf, (String, Option<usize>)>,
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(self.index.error(path, message));
    }

    fn line_note(&self, path: &str) -> String {
        self.index
            .line_of(path)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default()
    }

    /// `value` if it lies in `range`; otherwise an error, and a placeholder that is never used
    /// (a configuration with errors is not built).
    fn ranged<T: TryFrom<u64> + Default>(
        &mut self,
        path: &str,
        value: u64,
        range: RangeInclusive<u64>,
    ) -> T {
        if !range.contains(&value) {
            self.err(
                path,
                format!(
                    "{value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            );
        }
        T::try_from(value).unwrap_or_default()
    }

    /// A ledger period by name; otherwise an error naming the choices.
    fn period(&mut self, path: &str, name: &str) -> crate::ledger::Period {
        name.parse().unwrap_or_else(|e: String| {
            self.err(path, e);
            crate::ledger::Period::default()
        })
    }

    fn per_class(&mut self, path: &str, v: RawPerClass, range: RangeInclusive<u64>) -> PerClass {
        PerClass {
            normal: self.ranged(&format!("{path}.normal"), v.normal, range.clone()),
            urgent: self.ranged(&format!("{path}.urgent"), v.urgent, range.clone()),
            fast_track: self.ranged(&format!("{path}.fast_track"), v.fast_track, range),
        }
    }

    /// A station, device or bus id: it names things in logs, MQTT topics and metrics labels.
    fn id(&mut self, path: &str, id: &str) -> bool {
        let ok = (1..=ID_MAX_LEN).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            self.err(
                path,
                format!(
                    "{id:?} is not an id: 1-{ID_MAX_LEN} letters, digits, '-' or '_', starting \
                     with a letter or digit"
                ),
            );
        }
        ok
    }

    /// Against the file's directory, with `.` and `..` removed lexically, so that two spellings
    /// of one port compare equal. Symlinks (a udev name and its `/dev/ttyUSB1`) are not followed:
    /// loading reads nothing but the file.
    fn resolve(&self, path: &Path) -> PathBuf {
        let joined = self.base_dir.join(path);
        let mut out = PathBuf::new();
        for part in joined.components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir => match out.components().next_back() {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    // `/..` is `/`.
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => out.push(part),
                },
                other => out.push(other),
            }
        }
        out
    }

    fn hall(&mut self, raw: super::raw::RawHall) -> HallIdentity {
        let id_ok = (1..=ID_MAX_LEN).contains(&raw.id.len())
            && raw
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.id.starts_with('-')
            && !raw.id.ends_with('-');
        if !id_ok {
            self.err(
                "hall.id",
                format!(
                    "{:?} is not a hall id: 1-{ID_MAX_LEN} characters a-z, 0-9 and inner '-' \
                     (it is used in MQTT topics and metrics labels)",
                    raw.id
                ),
            );
        }
        let name = raw.name.trim();
        if name.is_empty()
            || name.chars().count() > NAME_MAX_LEN
            || name.chars().any(char::is_control)
        {
            self.err(
                "hall.name",
                format!("must be 1-{NAME_MAX_LEN} characters with no control characters"),
            );
        }
        let states = match (raw.issuing_state, raw.issuing_states) {
            (Some(one), None) => {
                self.issuing_code("hall.issuing_state", &one);
                vec![one]
            }
            (None, Some(list)) => {
                if list.is_empty() {
                    self.err(
                        "hall.issuing_states",
                        "must list at least one ICAO 9303 code (e.g. [\"PAK\"])",
                    );
                }
                for (i, code) in list.iter().enumerate() {
                    let path = format!("hall.issuing_states[{i}]");
                    if list[..i].contains(code) {
                        self.err(path, format!("{code:?} is listed twice"));
                    } else {
                        self.issuing_code(&path, code);
                    }
                }
                list
            }
            (Some(_), Some(_)) => {
                self.err(
                    "hall.issuing_states",
                    "give issuing_state or issuing_states, not both (issuing_states = [...] \
                     lists every state the hall prints for, its own first)",
                );
                Vec::new()
            }
            (None, None) => {
                self.err(
                    "hall",
                    "missing: issuing_state = \"...\" (or issuing_states = [...]), the ICAO \
                     9303 code of the state the hall prints passports for",
                );
                Vec::new()
            }
        };
        HallIdentity {
            id: raw.id,
            name: name.to_owned(),
            issuing_state: states.first().cloned().unwrap_or_default(),
            issuing_states: states,
        }
    }

    /// One issuing state code as the MRZ writes it: every ICAO 9303 issuing code (`D` for
    /// Germany), a specimen code (`UTO`) only in the demo hall.
    fn issuing_code(&mut self, path: &str, code: &str) {
        let well_formed =
            (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase());
        let problem = if !well_formed {
            format!(
                "{code:?} must be 1-3 upper-case letters: an ICAO 9303 code as the MRZ writes it \
                 (e.g. PAK, or D for Germany)"
            )
        } else if let Some(icao) = icao_replacement(code) {
            format!("{code:?} is written {icao:?} in the MRZ (ICAO 9303): write {icao:?}")
        } else if !is_issuing_code(code) && is_nationality_code(code) {
            format!("{code:?} is a nationality status, never an issuing state")
        } else if !is_issuing_code(code) {
            format!("{code:?} is not an ICAO 9303 issuing state code")
        } else if is_specimen_code(code) && self.specimens == Specimens::Refused {
            format!("{code:?} is ICAO's specimen state (Utopia): only the demo hall prints for it")
        } else {
            return;
        };
        self.err(path, problem);
    }

    fn qc(&mut self, raw: super::raw::RawQc) -> QcConfig {
        let range = QC_READ_ATTEMPTS;
        if !range.contains(&raw.read_attempts) {
            self.err(
                "qc.read_attempts",
                format!(
                    "{} is out of range {}..={} (readings of a booklet's MRZ before a mismatch \
                     spoils it; 1 spoils at the first mismatch)",
                    raw.read_attempts,
                    range.start(),
                    range.end()
                ),
            );
        }
        QcConfig {
            read_attempts: u32::try_from(raw.read_attempts).unwrap_or_default(),
        }
    }

    fn custody(&mut self, raw: super::raw::RawCustody) -> CustodyConfig {
        if let Some(secs) = raw.destroy_within_secs
            && !DESTROY_WITHIN_SECS.contains(&secs)
        {
            self.err(
                "custody.destroy_within_secs",
                format!(
                    "{secs} is out of range {}..={} (seconds a spoiled item may wait for its \
                     witnessed destruction; leave it out for \"by the end of the shift\")",
                    DESTROY_WITHIN_SECS.start(),
                    DESTROY_WITHIN_SECS.end()
                ),
            );
        }
        CustodyConfig {
            destroy_within: raw.destroy_within_secs.map(Duration::from_secs),
        }
    }

    fn server(&mut self, raw: super::raw::RawServer) -> ServerConfig {
        let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            self.err(
                "server.listen",
                format!(
                    "{:?} is not a socket address: an IP address and a port, e.g. \
                     127.0.0.1:8080 or [::1]:8080",
                    raw.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        if raw.data_dir.as_os_str().is_empty() {
            self.err("server.data_dir", "must not be empty");
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (None, None) => None,
            (Some(_), None) => {
                self.err(
                    "server.tls_cert",
                    "HTTPS needs tls_key = \"...\" too (the certificate's private key, PEM)",
                );
                None
            }
            (None, Some(_)) => {
                self.err(
                    "server.tls_key",
                    "HTTPS needs tls_cert = \"...\" too (the certificate chain, PEM)",
                );
                None
            }
            (Some(cert), Some(key)) => {
                for (path, p) in [("server.tls_cert", &cert), ("server.tls_key", &key)] {
                    if p.as_os_str().is_empty() {
                        self.err(path, "must not be empty");
                    }
                }
                if !cert.as_os_str().is_empty() && cert == key {
                    self.err(
                        "server.tls_key",
                        "names the same file as tls_cert: keep the private key in its own file, \
                         readable by the controller only",
                    );
                }
                Some(TlsFiles {
                    cert: self.resolve(&cert),
                    key: self.resolve(&key),
                })
            }
        };
        ServerConfig {
            listen,
            data_dir: self.resolve(&raw.data_dir),
            body_limit_bytes: self.ranged(
                "server.body_limit_bytes",
                raw.body_limit_bytes,
                1024..=256 * 1024 * 1024,
            ),
            request_timeout_secs: self.ranged(
                "server.request_timeout_secs",
                raw.request_timeout_secs,
                1..=3600,
            ),
            shutdown_grace_secs: self.ranged(
                "server.shutdown_grace_secs",
                raw.shutdown_grace_secs,
                1..=3600,
            ),
            ledger_cache_mb: self.ranged(
                "server.ledger_cache_mb",
                raw.ledger_cache_mb,
                64..=1024 * 1024,
            ),
            ledger_seal_window: self.ranged(
                "server.ledger_seal_window",
                raw.ledger_seal_window,
                1000..=10_000_000,
            ),
            ledger_period: self.period("server.ledger_period", &raw.ledger_period),
            min_free_disk_mb: self.ranged(
                "server.min_free_disk_mb",
                raw.min_free_disk_mb,
                0..=1024 * 1024,
            ),
            tls,
            signin_burst: self.ranged("server.signin_burst", raw.signin_burst, 1..=1000),
            signin_refill_secs: self.ranged(
                "server.signin_refill_secs",
                raw.signin_refill_secs,
                1..=3600,
            ),
        }
    }

    fn policy(&mut self, raw: super::raw::RawPolicy) -> PolicyConfig {
        let mut boosted_groups = BTreeMap::new();
        for (tag, hours) in raw.boosted_groups {
            let path = join_key("policy.boosted_groups", &tag);
            if !is_group_tag(&tag) {
                self.err(
                    path.as_str(),
                    format!(
                        "{tag:?} is not a group tag: 1-32 characters A-Z, 0-9 and inner '-' \
                         (e.g. HAJJ-2027)"
                    ),
                );
            }
            let hours = self.ranged(&path, hours, 1..=2160);
            boosted_groups.insert(GroupTag::new(tag), hours);
        }
        PolicyConfig {
            separation: raw.separation,
            roll_order: raw.roll_order,
            issue_margin: self.ranged("policy.issue_margin", raw.issue_margin, 1..=10_000),
            max_held_per_session: self.ranged(
                "policy.max_held_per_session",
                raw.max_held_per_session,
                1..=100_000,
            ),
            max_pin_failures: self.ranged("policy.max_pin_failures", raw.max_pin_failures, 1..=20),
            lockout_minutes: self.ranged("policy.lockout_minutes", raw.lockout_minutes, 1..=1440),
            token_ttl_minutes: self.ranged(
                "policy.token_ttl_minutes",
                raw.token_ttl_minutes,
                1..=10_080,
            ),
            class_lead_hours: self.per_class(
                "policy.class_lead_hours",
                raw.class_lead_hours,
                0..=720,
            ),
            aging_cap_hours: self.per_class(
                "policy.aging_cap_hours",
                raw.aging_cap_hours,
                1..=2160,
            ),
            boosted_groups,
        }
    }

    fn alerts(&mut self, raw: super::raw::RawAlerts) -> AlertConfig {
        AlertConfig {
            queue_depth: self.ranged("alerts.queue_depth", raw.queue_depth, 1..=10_000_000),
            oldest_queued_minutes: self.ranged(
                "alerts.oldest_queued_minutes",
                raw.oldest_queued_minutes,
                1..=10_080,
            ),
            device_offline_secs: self.ranged(
                "alerts.device_offline_secs",
                raw.device_offline_secs,
                1..=3600,
            ),
            due_at_risk_minutes: self.ranged(
                "alerts.due_at_risk_minutes",
                raw.due_at_risk_minutes,
                1..=10_080,
            ),
            clear_percent: self.ranged("alerts.clear_percent", raw.clear_percent, 50..=100),
            due_at_risk_min_completions: self.ranged(
                "alerts.due_at_risk_min_completions",
                raw.due_at_risk_min_completions,
                1..=100_000,
            ),
            due_at_risk_min_window_secs: self.ranged(
                "alerts.due_at_risk_min_window_secs",
                raw.due_at_risk_min_window_secs,
                0..=86_400,
            ),
            raise_after_secs: self.ranged(
                "alerts.raise_after_secs",
                raw.raise_after_secs,
                0..=3600,
            ),
            clear_after_secs: self.ranged(
                "alerts.clear_after_secs",
                raw.clear_after_secs,
                0..=3600,
            ),
            severity: self.severities(raw.severity),
        }
    }

    /// `[alerts.severity]`: an alert kind or a refusal rule → `info`, `warning` or `critical`.
    fn severities(
        &mut self,
        raw: std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, crate::line::Severity> {
        let mut out = std::collections::BTreeMap::new();
        for (key, value) in raw {
            let path = format!("alerts.severity.{key}");
            let known = crate::line::AlertKind::ALL.iter().any(|k| k.name() == key)
                || crate::ledger::Refusal::RULES.contains(&key.as_str());
            if !known {
                self.err(
                    &path,
                    format!(
                        "{key:?} is neither an alert kind nor a refusal rule (see docs/config.md \
                         for the names)"
                    ),
                );
                continue;
            }
            match crate::line::Severity::parse(&value) {
                Some(v) => {
                    out.insert(key, v);
                }
                None => self.err(
                    &path,
                    format!("{value:?} is not a severity: write info, warning or critical"),
                ),
            }
        }
        out
    }

    fn performance(&mut self, raw: super::raw::RawPerformance) -> PerformanceConfig {
        PerformanceConfig {
            ideal_print_secs: self.ranged(
                "performance.ideal_print_secs",
                raw.ideal_print_secs,
                1..=3600,
            ),
            ideal_laminate_secs: self.ranged(
                "performance.ideal_laminate_secs",
                raw.ideal_laminate_secs,
                1..=3600,
            ),
            ideal_qc_secs: self.ranged("performance.ideal_qc_secs", raw.ideal_qc_secs, 1..=3600),
            ideal_dispatch_secs: self.ranged(
                "performance.ideal_dispatch_secs",
                raw.ideal_dispatch_secs,
                1..=3600,
            ),
        }
    }

    fn mqtt(&mut self, raw: super::raw::RawMqtt, hall_id: &str) -> MqttConfig {
        let url = BrokerUrl::parse(&raw.url).unwrap_or_else(|message| {
            self.err("mqtt.url", message);
            BrokerUrl {
                tls: false,
                host: String::new(),
                port: 0,
            }
        });
        let client_id = raw
            .client_id
            .unwrap_or_else(|| format!("hallctl-{hall_id}"));
        let client_ok = (1..=MQTT_CLIENT_ID_MAX_LEN).contains(&client_id.len())
            && client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !client_ok {
            self.err(
                "mqtt.client_id",
                format!(
                    "{client_id:?} is not a client id: 1-{MQTT_CLIENT_ID_MAX_LEN} letters, digits, \
                     '-', '_', '.' or ':'"
                ),
            );
        }
        if let Some(u) = &raw.username
            && (u.is_empty() || u.chars().count() > 256 || u.chars().any(char::is_control))
        {
            self.err(
                "mqtt.username",
                "must be 1-256 characters with no control characters",
            );
        }
        if raw.password.is_some() {
            self.err(
                "mqtt.password",
                "a password is never written in the configuration: put it in a file readable \
                 by the controller only and name that file in password_file",
            );
        }
        let password_file = raw.password_file.map(|p| {
            if p.as_os_str().is_empty() {
                self.err("mqtt.password_file", "must not be empty");
            } else if raw.username.is_none() {
                self.err(
                    "mqtt.password_file",
                    "a password needs username = \"...\" too",
                );
            }
            self.resolve(&p)
        });
        let ca_file = raw.ca_file.map(|p| {
            if p.as_os_str().is_empty() {
                self.err("mqtt.ca_file", "must not be empty");
            } else if !url.tls && !url.host.is_empty() {
                self.err(
                    "mqtt.ca_file",
                    "ca_file is for mqtts:// (TLS) brokers; this url is mqtt://",
                );
            }
            self.resolve(&p)
        });
        if url.tls && ca_file.is_none() {
            self.err(
                "mqtt.url",
                "an mqtts:// broker needs ca_file = \"...\" (the CA certificate that signed the \
                 broker's, PEM)",
            );
        }
        MqttConfig {
            url,
            client_id,
            username: raw.username,
            password_file,
            ca_file,
            keep_alive_secs: self.ranged("mqtt.keep_alive_secs", raw.keep_alive_secs, 5..=3600),
        }
    }

    /// A serial port or a simulator, its baud rate, and the port not taken twice.
    fn serial_link(
        &mut self,
        path: &str,
        owner: &str,
        port: Option<PathBuf>,
        baud: Option<u64>,
        simulate: Option<bool>,
        default_baud: u64,
    ) -> SerialLink {
        let baud = baud.unwrap_or(default_baud);
        if !BAUD_RATES.contains(&baud) {
            let rates = BAUD_RATES.map(|b| b.to_string()).join(", ");
            self.err(
                format!("{path}.baud"),
                format!("{baud} is not a standard baud rate (one of {rates})"),
            );
        }
        match (port, simulate == Some(true)) {
            (Some(_), true) => {
                self.err(
                    format!("{path}.simulate"),
                    "simulate = true and port exclude each other: remove one",
                );
                SerialLink::Simulated
            }
            (None, true) => SerialLink::Simulated,
            (None, false) => {
                self.err(
                    path,
                    "needs port = \"/dev/...\" (a serial port) or simulate = true",
                );
                SerialLink::Simulated
            }
            (Some(port), false) => {
                let port_path = format!("{path}.port");
                if port.as_os_str().is_empty() {
                    self.err(port_path.as_str(), "must not be empty");
                }
                let resolved = self.resolve(&port);
                let line = self.index.line_of(&port_path);
                match self.ports.get(&resolved) {
                    Some((other, other_line)) => {
                        let at = other_line
                            .map(|l| format!(" (line {l})"))
                            .unwrap_or_default();
                        let message = format!(
                            "{} is already used by {other}{at}: one serial port, one owner",
                            port.display()
                        );
                        self.err(port_path, message);
                    }
                    None => {
                        self.ports
                            .insert(resolved.clone(), (owner.to_owned(), line));
                    }
                }
                SerialLink::Port {
                    path: resolved,
                    baud: u32::try_from(baud).unwrap_or_default(),
                }
            }
        }
    }

    fn buses(&mut self, raw: Vec<RawBus>) -> Vec<BusConfig> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut buses = Vec::with_capacity(raw.len());
        for (i, bus) in raw.into_iter().enumerate() {
            let path = format!("buses[{i}]");
            let id_path = format!("{path}.id");
            if self.id(&id_path, &bus.id) {
                if let Some(first) = seen.get(&bus.id) {
                    let note = self.line_note(first);
                    self.err(
                        id_path.as_str(),
                        format!("duplicate bus id {:?}{note}", bus.id),
                    );
                } else {
                    seen.insert(bus.id.clone(), id_path);
                }
            }
            let owner = format!("bus {}", bus.id);
            let link = self.serial_link(&path, &owner, bus.port, bus.baud, bus.simulate, BUS_BAUD);
            buses.push(BusConfig { id: bus.id, link });
        }
        buses
    }

    fn stations(&mut self, raw: Vec<RawStation>, buses: &[BusConfig]) -> Vec<StationConfig> {
        let mut station_ids: HashMap<String, String> = HashMap::new();
        let mut device_ids: HashMap<String, String> = HashMap::new();
        // (bus, unit) → the unit key's path.
        let mut units: HashMap<(String, u64), String> = HashMap::new();
        let mut stations = Vec::with_capacity(raw.len());
        for (i, station) in raw.into_iter().enumerate() {
            let path = format!("stations[{i}]");
            let id_path = format!("{path}.id");
            if self.id(&id_path, &station.id) {
                if let Some(first) = station_ids.get(&station.id) {
                    let note = self.line_note(first);
                    self.err(
                        id_path.as_str(),
                        format!("duplicate station id {:?}{note}", station.id),
                    );
                } else {
                    station_ids.insert(station.id.clone(), id_path);
                }
            }
            let kind = station.kind;
            let device = match (kind, station.device) {
                (StationKind::Print | StationKind::Laminate, None) => {
                    self.err(path.as_str(), format!("a {kind} station needs a device"));
                    None
                }
                (StationKind::Print | StationKind::Laminate, Some(device)) => {
                    let device_path = format!("{path}.device");
                    let id_path = format!("{device_path}.id");
                    if self.id(&id_path, &device.id) {
                        if let Some(first) = device_ids.get(&device.id) {
                            let note = self.line_note(first);
                            self.err(
                                id_path.as_str(),
                                format!("duplicate device id {:?}{note}", device.id),
                            );
                        } else {
                            device_ids.insert(device.id.clone(), id_path);
                        }
                    }
                    Some(self.device(&device_path, kind, device, buses, &mut units))
                }
                (_, Some(_)) => {
                    self.err(
                        format!("{path}.device"),
                        format!(
                            "a {kind} station has no device (only print and laminate stations do)"
                        ),
                    );
                    None
                }
                (_, None) => None,
            };
            stations.push(StationConfig {
                id: StationId::new(station.id),
                kind,
                device,
            });
        }
        for kind in StationKind::ALL {
            if !stations.iter().any(|s| s.kind == kind) {
                self.err(
                    "stations",
                    format!(
                        "no {kind} station: a hall needs at least one vault, print, laminate, qc \
                         and dispatch station"
                    ),
                );
            }
        }
        stations
    }

    fn device(
        &mut self,
        path: &str,
        kind: StationKind,
        d: RawDevice,
        buses: &[BusConfig],
        units: &mut HashMap<(String, u64), String>,
    ) -> DeviceConfig {
        let driver = d.driver;
        let fits = matches!(
            (kind, driver),
            (StationKind::Print, DriverKind::Printer | DriverKind::Bridge)
                | (
                    StationKind::Laminate,
                    DriverKind::Laminator | DriverKind::Bridge
                )
        );
        if !fits {
            self.err(
                format!("{path}.driver"),
                format!(
                    "a {} cannot serve a {kind} station (print: printer or bridge; laminate: \
                     laminator or bridge)",
                    driver.as_str()
                ),
            );
        }
        let own_keys: &[&str] = match driver {
            DriverKind::Printer => &["port", "baud", "simulate", "timeout_ms"],
            DriverKind::Laminator => &["bus", "unit", "timeout_ms"],
            DriverKind::Bridge => &["command", "address", "timeout_ms"],
        };
        let given = [
            ("port", d.port.is_some()),
            ("baud", d.baud.is_some()),
            ("simulate", d.simulate.is_some()),
            ("bus", d.bus.is_some()),
            ("unit", d.unit.is_some()),
            ("command", d.command.is_some()),
            ("address", d.address.is_some()),
        ];
        for (key, _) in given.iter().filter(|(k, g)| *g && !own_keys.contains(k)) {
            self.err(
                format!("{path}.{key}"),
                format!(
                    "{key} is not a key of a {} device (its keys: id, driver, {})",
                    driver.as_str(),
                    own_keys.join(", ")
                ),
            );
        }
        let timeout_path = format!("{path}.timeout_ms");
        let id = DeviceId::new(d.id.clone());
        let driver = match driver {
            DriverKind::Printer => {
                let owner = format!("device {}", d.id);
                let link = self.serial_link(path, &owner, d.port, d.baud, d.simulate, PRINTER_BAUD);
                DriverConfig::Printer {
                    link,
                    timeout: self.timeout(&timeout_path, d.timeout_ms, PRINTER_TIMEOUT_MS, 10_000),
                }
            }
            DriverKind::Laminator => {
                let bus = d.bus.unwrap_or_else(|| {
                    self.err(
                        path,
                        "a laminator needs bus = \"<id of a [[buses]] entry>\"",
                    );
                    String::new()
                });
                if !bus.is_empty() && !buses.iter().any(|b| b.id == bus) {
                    let known = if buses.is_empty() {
                        "no [[buses]] are configured".to_owned()
                    } else {
                        let ids: Vec<&str> = buses.iter().map(|b| b.id.as_str()).collect();
                        format!("buses: {}", ids.join(", "))
                    };
                    self.err(
                        format!("{path}.bus"),
                        format!("unknown bus {bus:?} ({known})"),
                    );
                }
                let unit_path = format!("{path}.unit");
                let unit = match d.unit {
                    None => {
                        self.err(
                            path,
                            "a laminator needs unit = <Modbus unit address, 1..=247>",
                        );
                        0
                    }
                    Some(unit) if !MODBUS_UNITS.contains(&unit) => {
                        self.ranged::<u8>(&unit_path, unit, MODBUS_UNITS)
                    }
                    Some(unit) => {
                        match units.get(&(bus.clone(), unit)) {
                            Some(first) => {
                                let note = self.line_note(first);
                                self.err(
                                    unit_path.as_str(),
                                    format!("unit {unit} is already used on bus {bus}{note}"),
                                );
                            }
                            None => {
                                units.insert((bus.clone(), unit), unit_path);
                            }
                        }
                        u8::try_from(unit).unwrap_or_default()
                    }
                };
                DriverConfig::Laminator {
                    bus,
                    unit,
                    timeout: self.timeout(
                        &timeout_path,
                        d.timeout_ms,
                        LAMINATOR_TIMEOUT_MS,
                        10_000,
                    ),
                }
            }
            DriverKind::Bridge => {
                let endpoint = self.bridge_endpoint(path, d.command, d.address);
                DriverConfig::Bridge {
                    endpoint,
                    timeout: self.timeout(&timeout_path, d.timeout_ms, BRIDGE_TIMEOUT_MS, 60_000),
                }
            }
        };
        DeviceConfig { id, driver }
    }

    fn timeout(&mut self, path: &str, ms: Option<u64>, default: u64, max: u64) -> Duration {
        let ms = ms.unwrap_or(default);
        Duration::from_millis(self.ranged::<u64>(path, ms, 10..=max))
    }

    fn bridge_endpoint(
        &mut self,
        path: &str,
        command: Option<Vec<String>>,
        address: Option<String>,
    ) -> BridgeEndpoint {
        match (command, address) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.address"),
                    "command and address exclude each other: a bridge is a process or a TCP \
                     endpoint",
                );
                BridgeEndpoint::Tcp {
                    address: String::new(),
                }
            }
            (None, None) => {
                self.err(
                    path,
                    "a bridge needs command = [\"/path/to/bridge\", \"arg\", ...] or address = \
                     \"host:port\"",
                );
                BridgeEndpoint::Tcp {
                    address: String::new(),
                }
            }
            (Some(command), None) => {
                let mut parts = command.into_iter();
                let program = parts.next().unwrap_or_default();
                if program.trim().is_empty() {
                    self.err(
                        format!("{path}.command"),
                        "must start with the bridge program's path",
                    );
                }
                // A bare name is looked up on PATH; anything with a slash is a path.
                let program = if program.contains('/') {
                    self.resolve(Path::new(&program))
                } else {
                    PathBuf::from(program)
                };
                BridgeEndpoint::Process {
                    program,
                    args: parts.collect(),
                }
            }
            (None, Some(address)) => {
                let ok = address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    self.err(
                        format!("{path}.address"),
                        format!("{address:?} is not host:port (e.g. 127.0.0.1:7001)"),
                    );
                }
                BridgeEndpoint::Tcp { address }
            }
        }
    }
}

/// A job group tag as intake accepts it: 1-32 characters A-Z, 0-9 and inner hyphens.
fn is_group_tag(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}
