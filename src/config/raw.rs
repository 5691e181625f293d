//! The file as written: every section's keys with their types, and the defaults of the keys that
//! may be left out. Nothing here is checked beyond its type; [`super::validate`] does the rest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::source::{SpanIndex, join_key};
use super::{ConfigError, ConfigErrors, RollOrder, SeparationPolicy, StationKind};

/// The whole file.
#[derive(Debug, Default)]
pub(super) struct RawConfig {
    pub hall: RawHall,
    pub server: RawServer,
    pub policy: RawPolicy,
    pub alerts: RawAlerts,
    pub performance: RawPerformance,
    pub qc: RawQc,
    pub custody: RawCustody,
    pub mqtt: Option<RawMqtt>,
    pub buses: Vec<RawBus>,
    pub stations: Vec<RawStation>,
}

/// `[hall]`: no defaults, a hall must say who it is. One of `issuing_state` and `issuing_states`
/// is required (checked in [`super::validate`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHall {
    pub id: String,
    pub name: String,
    pub issuing_state: Option<String>,
    pub issuing_states: Option<Vec<String>>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    /// Text, not `SocketAddr`, so that a bad address gets our message rather than serde's.
    pub listen: String,
    pub data_dir: PathBuf,
    pub body_limit_bytes: u64,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub ledger_cache_mb: u64,
    pub ledger_seal_window: u64,
    /// Text, so that a bad period gets our message rather than serde's.
    pub ledger_period: String,
    pub min_free_disk_mb: u64,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub signin_burst: u64,
    pub signin_refill_secs: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: "/var/lib/hallctl".into(),
            body_limit_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            ledger_cache_mb: 1024,
            ledger_seal_window: 20_000,
            ledger_period: "month".into(),
            min_free_disk_mb: 512,
            tls_cert: None,
            tls_key: None,
            signin_burst: 10,
            signin_refill_secs: 6,
        }
    }
}

/// `{ normal = .., urgent = .., fast_track = .. }`: all three, when given.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerClass {
    pub normal: u64,
    pub urgent: u64,
    pub fast_track: u64,
}

/// `[policy]`. The scheduler's defaults are `SlackPolicy::default()`'s, in hours.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPolicy {
    pub separation: SeparationPolicy,
    pub roll_order: RollOrder,
    pub max_pin_failures: u64,
    pub lockout_minutes: u64,
    pub token_ttl_minutes: u64,
    pub class_lead_hours: RawPerClass,
    pub aging_cap_hours: RawPerClass,
    pub boosted_groups: BTreeMap<String, u64>,
    pub issue_margin: u64,
    pub max_held_per_session: u64,
}

impl Default for RawPolicy {
    fn default() -> Self {
        Self {
            separation: SeparationPolicy::Strict,
            roll_order: RollOrder::ReasonRequired,
            max_pin_failures: 5,
            lockout_minutes: 15,
            token_ttl_minutes: 720,
            class_lead_hours: RawPerClass {
                normal: 0,
                urgent: 2,
                fast_track: 4,
            },
            aging_cap_hours: RawPerClass {
                normal: 72,
                urgent: 24,
                fast_track: 8,
            },
            boosted_groups: BTreeMap::new(),
            issue_margin: 25,
            max_held_per_session: 500,
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAlerts {
    pub queue_depth: u64,
    pub oldest_queued_minutes: u64,
    pub device_offline_secs: u64,
    pub due_at_risk_minutes: u64,
    pub clear_percent: u64,
    pub due_at_risk_min_completions: u64,
    pub due_at_risk_min_window_secs: u64,
    pub raise_after_secs: u64,
    pub clear_after_secs: u64,
    pub severity: BTreeMap<String, String>,
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            queue_depth: 5000,
            oldest_queued_minutes: 240,
            device_offline_secs: 10,
            due_at_risk_minutes: 60,
            clear_percent: 90,
            due_at_risk_min_completions: 20,
            due_at_risk_min_window_secs: 900,
            raise_after_secs: 60,
            clear_after_secs: 300,
            severity: BTreeMap::new(),
        }
    }
}

/// `[performance]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPerformance {
    pub ideal_print_secs: u64,
    pub ideal_laminate_secs: u64,
    pub ideal_qc_secs: u64,
    pub ideal_dispatch_secs: u64,
}

impl Default for RawPerformance {
    fn default() -> Self {
        Self {
            ideal_print_secs: 60,
            ideal_laminate_secs: 45,
            ideal_qc_secs: 30,
            ideal_dispatch_secs: 15,
        }
    }
}

/// `[qc]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawQc {
    pub read_attempts: u64,
}

impl Default for RawQc {
    fn default() -> Self {
        Self { read_attempts: 2 }
    }
}

/// `[custody]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCustody {
    pub destroy_within_secs: Option<u64>,
}

/// `[mqtt]`: optional as a whole; when present, `url` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    pub url: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Never accepted: read only to say where a password goes instead.
    pub password: Option<serde::de::IgnoredAny>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

fn default_keep_alive() -> u64 {
    30
}

/// `[[buses]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBus {
    pub id: String,
    pub port: Option<PathBuf>,
    pub baud: Option<u64>,
    pub simulate: Option<bool>,
}

/// `[[stations]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStation {
    pub id: String,
    pub kind: StationKind,
    pub device: Option<RawDevice>,
}

/// `device.driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum DriverKind {
    Printer,
    Laminator,
    Bridge,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Printer => "printer",
            DriverKind::Laminator => "laminator",
            DriverKind::Bridge => "bridge",
        }
    }
}

/// `device = { .. }`: the keys of every driver, flat, so that each key's span (and so its line)
/// survives; which keys a driver takes is checked in [`super::validate`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    pub id: String,
    pub driver: DriverKind,
    pub port: Option<PathBuf>,
    pub baud: Option<u64>,
    pub simulate: Option<bool>,
    pub bus: Option<String>,
    pub unit: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub command: Option<Vec<String>>,
    pub address: Option<String>,
}

const SECTIONS: &str =
    "hall, server, policy, alerts, performance, qc, custody, mqtt, buses, stations";

impl RawConfig {
    /// Deserializes each section, and each bus and station, on its own, so that every one of
    /// them reports its first problem.
    ///
    /// # Errors
    /// Every problem found, in file order.
    pub fn from_document(
        doc: Spanned<DeTable<'_>>,
        index: &SpanIndex,
    ) -> Result<Self, ConfigErrors> {
        let mut raw = RawConfig::default();
        let mut errors = Vec::new();
        let mut has_hall = false;
        for (key, value) in doc.into_inner() {
            let name = key.get_ref().as_ref();
            match name {
                "hall" => {
                    has_hall = true;
                    section(value, name, index, &mut errors, &mut raw.hall);
                }
                "server" => section(value, name, index, &mut errors, &mut raw.server),
                "policy" => section(value, name, index, &mut errors, &mut raw.policy),
                "alerts" => section(value, name, index, &mut errors, &mut raw.alerts),
                "performance" => section(value, name, index, &mut errors, &mut raw.performance),
                "qc" => section(value, name, index, &mut errors, &mut raw.qc),
                "custody" => section(value, name, index, &mut errors, &mut raw.custody),
                "mqtt" => section(value, name, index, &mut errors, &mut raw.mqtt),
                "buses" => raw.buses = elements(value, name, index, &mut errors),
                "stations" => raw.stations = elements(value, name, index, &mut errors),
                other => errors.push(index.error(
                    join_key("", other),
                    format!("unknown section, expected one of {SECTIONS}"),
                )),
            }
        }
        if !has_hall {
            errors.push(index.error(
                "hall",
                "missing: a [hall] table with id, name and issuing_state",
            ));
        }
        if errors.is_empty() {
            Ok(raw)
        } else {
            errors.sort_by_key(|e| e.line);
            Err(ConfigErrors(errors))
        }
    }
}

fn section<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &str,
    index: &SpanIndex,
    errors: &mut Vec<ConfigError>,
    out: &mut T,
) {
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => *out = v,
        Err(e) => errors.push(index.de_error(&e, path)),
    }
}

/// An array of tables, element by element; anything else is reported as serde sees it.
fn elements<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &str,
    index: &SpanIndex,
    errors: &mut Vec<ConfigError>,
) -> Vec<T> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(array) => array
            .into_iter()
            .enumerate()
            .filter_map(|(i, element)| {
                T::deserialize(ValueDeserializer::from(element))
                    .map_err(|e| errors.push(index.de_error(&e, &format!("{path}[{i}]"))))
                    .ok()
            })
            .collect(),
        other => {
            let mut out = Vec::new();
            section(Spanned::new(span, other), path, index, errors, &mut out);
            out
        }
    }
}
