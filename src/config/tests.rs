//! The configuration as a specification: every rule's error names its line and key, the
//! defaults, path resolution, and the shipped files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hallctl_jobs::job::{GroupTag, Separation};
use hallctl_jobs::scheduler::SlackPolicy;

use super::*;

/// A small valid hall. The line numbers in the table below refer to this text.
const BASE: &str = r#"[hall]
id = "test-hall"
name = "Test hall"
issuing_state = "PAK"

[server]
listen = "127.0.0.1:8080"
data_dir = "data"

[policy]
max_pin_failures = 5

[alerts]
queue_depth = 5000

[[buses]]
id = "bus-a"
port = "/dev/ttyUSB1"

[[buses]]
id = "bus-b"
simulate = true

[[stations]]
id = "VAULT"
kind = "vault"

[[stations]]
id = "PRINT-01"
kind = "print"
device = { id = "PR-01", driver = "printer", port = "/dev/ttyUSB0" }

[[stations]]
id = "PRINT-02"
kind = "print"
device = { id = "PR-02", driver = "bridge", command = ["bridge", "--unit", "3"] }

[[stations]]
id = "LAM-01"
kind = "laminate"
device = { id = "LM-01", driver = "laminator", bus = "bus-a", unit = 1 }

[[stations]]
id = "LAM-02"
kind = "laminate"
device = { id = "LM-02", driver = "laminator", bus = "bus-b", unit = 1 }

[[stations]]
id = "QC-01"
kind = "qc"

[[stations]]
id = "DISPATCH-01"
kind = "dispatch"
"#;

fn parse(text: &str) -> Result<HallConfig, ConfigErrors> {
    HallConfig::parse(text, "hall.toml", Path::new("/etc/hallctl"))
}

/// BASE with the first occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no {from:?}");
    BASE.replacen(from, to, 1)
}

/// BASE with an `[mqtt]` section of `keys` at its end.
fn mqtt(keys: &str) -> String {
    format!("{BASE}\n[mqtt]\n{keys}")
}

#[test]
fn base_is_valid() {
    let c = parse(BASE).expect("BASE is valid");
    assert_eq!(
        c.summary(),
        "hall test-hall, 2 print, 2 laminate, 1 qc, 1 dispatch, 1 vault stations, 2 buses"
    );
}

/// One broken rule: its name, the text, then the expected line, key path and a fragment of the
/// message.
type ErrorCase = (&'static str, String, usize, &'static str, &'static str);

/// Each broken rule (at least one bad value for every key: see
/// [`every_key_has_a_case_with_a_bad_value`]).
fn error_cases() -> Vec<ErrorCase> {
    let remove_vault = BASE.replacen("[[stations]]\nid = \"VAULT\"\nkind = \"vault\"\n\n", "", 1);
    vec![
        // [hall]
        (
            "hall id charset",
            edit(r#"id = "test-hall""#, r#"id = "Test Hall""#),
            2,
            "hall.id",
            "is not a hall id",
        ),
        (
            "hall id trailing hyphen",
            edit(r#"id = "test-hall""#, r#"id = "hall-""#),
            2,
            "hall.id",
            "is not a hall id",
        ),
        (
            "hall name empty",
            edit(r#"name = "Test hall""#, r#"name = "  ""#),
            3,
            "hall.name",
            "must be 1-100 characters",
        ),
        (
            "issuing state too long",
            edit(r#""PAK""#, r#""PAKI""#),
            4,
            "hall.issuing_state",
            "must be 1-3 upper-case letters",
        ),
        (
            "issuing state lower case",
            edit(r#""PAK""#, r#""pak""#),
            4,
            "hall.issuing_state",
            "must be 1-3 upper-case letters",
        ),
        (
            "issuing state in the ISO form ICAO replaces",
            edit(r#""PAK""#, r#""DEU""#),
            4,
            "hall.issuing_state",
            "\"DEU\" is written \"D\" in the MRZ (ICAO 9303): write \"D\"",
        ),
        (
            "issuing state the ICAO specimen",
            edit(r#""PAK""#, r#""UTO""#),
            4,
            "hall.issuing_state",
            "\"UTO\" is ICAO's specimen state (Utopia): only the demo hall prints for it",
        ),
        (
            "issuing state a nationality status",
            edit(r#""PAK""#, r#""XXA""#),
            4,
            "hall.issuing_state",
            "a nationality status, never an issuing state",
        ),
        (
            "issuing states with a specimen",
            edit(
                r#"issuing_state = "PAK""#,
                r#"issuing_states = ["PAK", "UTO"]"#,
            ),
            4,
            "hall.issuing_states[1]",
            "specimen state",
        ),
        (
            "issuing states empty",
            edit(r#"issuing_state = "PAK""#, r#"issuing_states = []"#),
            4,
            "hall.issuing_states",
            "at least one ICAO 9303 code",
        ),
        (
            "issuing states repeated",
            edit(r#"issuing_state = "PAK""#, r#"issuing_states = ["D", "D"]"#),
            4,
            "hall.issuing_states[1]",
            "\"D\" is listed twice",
        ),
        (
            "issuing states not a list",
            edit(r#"issuing_state = "PAK""#, r#"issuing_states = "PAK""#),
            4,
            "hall.issuing_states",
            "invalid type",
        ),
        (
            "issuing state and states both",
            edit(
                r#"issuing_state = "PAK""#,
                "issuing_state = \"PAK\"\nissuing_states = [\"PAK\", \"EUE\"]",
            ),
            5,
            "hall.issuing_states",
            "give issuing_state or issuing_states, not both",
        ),
        (
            "issuing state missing",
            edit("issuing_state = \"PAK\"\n", ""),
            1,
            "hall",
            "missing: issuing_state = \"...\" (or issuing_states = [...])",
        ),
        (
            "issuing state unknown",
            edit(r#""PAK""#, r#""XQQ""#),
            4,
            "hall.issuing_state",
            "is not an ICAO 9303 issuing state code",
        ),
        (
            "unknown key",
            edit(
                "name = \"Test hall\"\n",
                "name = \"Test hall\"\ncolour = \"red\"\n",
            ),
            4,
            "hall.colour",
            "unknown field `colour`",
        ),
        (
            "missing required key",
            edit("id = \"test-hall\"\n", ""),
            1,
            "hall",
            "missing field `id`",
        ),
        (
            "unknown section",
            format!("{BASE}\n[extras]\nx = 1\n"),
            56,
            "extras",
            "unknown section",
        ),
        // [server]
        (
            "listen not a socket address",
            edit("127.0.0.1:8080", "localhost:8080"),
            7,
            "server.listen",
            "is not a socket address",
        ),
        (
            "listen wrong type",
            edit(r#""127.0.0.1:8080""#, "8080"),
            7,
            "server.listen",
            "invalid type: integer `8080`",
        ),
        (
            "body limit zero",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nbody_limit_bytes = 0\n",
            ),
            9,
            "server.body_limit_bytes",
            "0 is out of range 1024..=268435456",
        ),
        (
            "request timeout zero",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nrequest_timeout_secs = 0\n",
            ),
            9,
            "server.request_timeout_secs",
            "0 is out of range 1..=3600",
        ),
        (
            "shutdown grace absurd",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nshutdown_grace_secs = 86400\n",
            ),
            9,
            "server.shutdown_grace_secs",
            "86400 is out of range 1..=3600",
        ),
        (
            "ledger cache too small",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nledger_cache_mb = 8\n",
            ),
            9,
            "server.ledger_cache_mb",
            "8 is out of range 64..=1048576",
        ),
        (
            "ledger seal window too small",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nledger_seal_window = 10\n",
            ),
            9,
            "server.ledger_seal_window",
            "10 is out of range 1000..=10000000",
        ),
        (
            "ledger period unknown",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nledger_period = \"fortnight\"\n",
            ),
            9,
            "server.ledger_period",
            "\"fortnight\" is not a period (one of day, week, month)",
        ),
        (
            "free-disk halt threshold too large",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nmin_free_disk_mb = 2000000\n",
            ),
            9,
            "server.min_free_disk_mb",
            "2000000 is out of range 0..=1048576",
        ),
        (
            "negative number",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nshutdown_grace_secs = -1\n",
            ),
            9,
            "server.shutdown_grace_secs",
            "invalid value: integer `-1`",
        ),
        (
            "data dir empty",
            edit(r#"data_dir = "data""#, r#"data_dir = """#),
            8,
            "server.data_dir",
            "must not be empty",
        ),
        (
            "tls cert without key",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\ntls_cert = \"hall.crt\"\n",
            ),
            9,
            "server.tls_cert",
            "HTTPS needs tls_key",
        ),
        (
            "tls key without cert",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\ntls_key = \"hall.key\"\n",
            ),
            9,
            "server.tls_key",
            "HTTPS needs tls_cert",
        ),
        (
            "tls cert empty",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\ntls_cert = \"\"\ntls_key = \"hall.key\"\n",
            ),
            9,
            "server.tls_cert",
            "must not be empty",
        ),
        (
            "tls key empty",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\ntls_cert = \"hall.crt\"\ntls_key = \"\"\n",
            ),
            10,
            "server.tls_key",
            "must not be empty",
        ),
        (
            "tls key in the certificate's file",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\ntls_cert = \"hall.pem\"\ntls_key = \"hall.pem\"\n",
            ),
            10,
            "server.tls_key",
            "names the same file as tls_cert",
        ),
        (
            "sign-in burst zero",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nsignin_burst = 0\n",
            ),
            9,
            "server.signin_burst",
            "0 is out of range 1..=1000",
        ),
        (
            "sign-in refill zero",
            edit(
                "data_dir = \"data\"\n",
                "data_dir = \"data\"\nsignin_refill_secs = 0\n",
            ),
            9,
            "server.signin_refill_secs",
            "0 is out of range 1..=3600",
        ),
        // [policy]
        (
            "max pin failures zero",
            edit("max_pin_failures = 5", "max_pin_failures = 0"),
            11,
            "policy.max_pin_failures",
            "0 is out of range 1..=20",
        ),
        (
            "no issue margin",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nissue_margin = 0\n",
            ),
            12,
            "policy.issue_margin",
            "0 is out of range 1..=10000",
        ),
        (
            "a session may hold nothing",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nmax_held_per_session = 0\n",
            ),
            12,
            "policy.max_held_per_session",
            "0 is out of range 1..=100000",
        ),
        (
            "lockout absurd",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nlockout_minutes = 100000\n",
            ),
            12,
            "policy.lockout_minutes",
            "100000 is out of range 1..=1440",
        ),
        (
            "token ttl zero",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\ntoken_ttl_minutes = 0\n",
            ),
            12,
            "policy.token_ttl_minutes",
            "0 is out of range 1..=10080",
        ),
        (
            "unknown separation",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nseparation = \"lenient\"\n",
            ),
            12,
            "policy.separation",
            "unknown variant `lenient`",
        ),
        (
            "unknown roll order",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nroll_order = \"any\"\n",
            ),
            12,
            "policy.roll_order",
            "unknown variant `any`",
        ),
        (
            "class lead out of range",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nclass_lead_hours = { normal = 0, urgent = 9999, fast_track = 4 }\n",
            ),
            12,
            "policy.class_lead_hours.urgent",
            "9999 is out of range 0..=720",
        ),
        (
            "class lead above a month",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nclass_lead_hours = { normal = 721, urgent = 2, fast_track = 4 }\n",
            ),
            12,
            "policy.class_lead_hours.normal",
            "721 is out of range 0..=720",
        ),
        (
            "class lead negative",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nclass_lead_hours = { normal = 0, urgent = 2, fast_track = -1 }\n",
            ),
            12,
            "policy.class_lead_hours.fast_track",
            "invalid value: integer `-1`",
        ),
        (
            "class lead missing a class",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nclass_lead_hours = { normal = 0, urgent = 2 }\n",
            ),
            12,
            "policy.class_lead_hours",
            "missing field `fast_track`",
        ),
        (
            "aging cap zero",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\naging_cap_hours = { normal = 72, urgent = 24, fast_track = 0 }\n",
            ),
            12,
            "policy.aging_cap_hours.fast_track",
            "0 is out of range 1..=2160",
        ),
        (
            "aging cap above three months",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\naging_cap_hours = { normal = 99999, urgent = 24, fast_track = 4 }\n",
            ),
            12,
            "policy.aging_cap_hours.normal",
            "99999 is out of range 1..=2160",
        ),
        (
            "aging cap as text",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\naging_cap_hours = { normal = 72, urgent = \"a day\", fast_track = 4 }\n",
            ),
            12,
            "policy.aging_cap_hours.urgent",
            "invalid type: string",
        ),
        (
            "boosted group tag",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nboosted_groups = { hajj = 48 }\n",
            ),
            12,
            "policy.boosted_groups.hajj",
            "is not a group tag",
        ),
        (
            "boosted group lead zero",
            edit(
                "max_pin_failures = 5\n",
                "max_pin_failures = 5\nboosted_groups = { HAJJ-2027 = 0 }\n",
            ),
            12,
            "policy.boosted_groups.HAJJ-2027",
            "0 is out of range 1..=2160",
        ),
        // [alerts]
        (
            "queue depth zero",
            edit("queue_depth = 5000", "queue_depth = 0"),
            14,
            "alerts.queue_depth",
            "0 is out of range 1..=10000000",
        ),
        (
            "device offline absurd",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\ndevice_offline_secs = 99999\n",
            ),
            15,
            "alerts.device_offline_secs",
            "99999 is out of range 1..=3600",
        ),
        (
            "oldest queued zero",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\noldest_queued_minutes = 0\n",
            ),
            15,
            "alerts.oldest_queued_minutes",
            "0 is out of range 1..=10080",
        ),
        (
            "a condition raised after more than an hour",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nraise_after_secs = 3601\n",
            ),
            15,
            "alerts.raise_after_secs",
            "3601 is out of range 0..=3600",
        ),
        (
            "a condition cleared after more than an hour",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nclear_after_secs = 7200\n",
            ),
            15,
            "alerts.clear_after_secs",
            "7200 is out of range 0..=3600",
        ),
        (
            "a prediction after more than a day",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\ndue_at_risk_min_window_secs = 86401\n",
            ),
            15,
            "alerts.due_at_risk_min_window_secs",
            "86401 is out of range 0..=86400",
        ),
        (
            "a prediction from no completion at all",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\ndue_at_risk_min_completions = 0\n",
            ),
            15,
            "alerts.due_at_risk_min_completions",
            "0 is out of range 1..=100000",
        ),
        (
            "due at risk above a week",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\ndue_at_risk_minutes = 20000\n",
            ),
            15,
            "alerts.due_at_risk_minutes",
            "20000 is out of range 1..=10080",
        ),
        // [mqtt] (appended after BASE: `[mqtt]` is line 56, its first key line 57)
        (
            "mqtt url not a broker URL",
            mqtt("url = \"http://broker:1883\"\n"),
            57,
            "mqtt.url",
            "is not a broker URL: mqtt://host[:port] or mqtts://host[:port]",
        ),
        (
            "mqtt url with credentials",
            mqtt("url = \"mqtt://hall:secret@broker\"\n"),
            57,
            "mqtt.url",
            "must not carry credentials",
        ),
        (
            "mqtt url port out of range",
            mqtt("url = \"mqtt://broker:99999\"\n"),
            57,
            "mqtt.url",
            "\"99999\" is not a port",
        ),
        (
            "mqtt url with a path",
            mqtt("url = \"mqtt://broker/halls\"\n"),
            57,
            "mqtt.url",
            "has a path or a query",
        ),
        (
            "mqtt url missing",
            mqtt("client_id = \"x\"\n"),
            56,
            "mqtt",
            "missing field `url`",
        ),
        (
            "mqtts without a CA",
            mqtt("url = \"mqtts://broker\"\n"),
            57,
            "mqtt.url",
            "an mqtts:// broker needs ca_file",
        ),
        (
            "ca_file on a plain mqtt url",
            mqtt("url = \"mqtt://broker\"\nca_file = \"ca.pem\"\n"),
            58,
            "mqtt.ca_file",
            "ca_file is for mqtts://",
        ),
        (
            "password written inline",
            mqtt("url = \"mqtt://broker\"\npassword = \"hunter2\"\n"),
            58,
            "mqtt.password",
            "a password is never written in the configuration",
        ),
        (
            "password file without a user name",
            mqtt("url = \"mqtt://broker\"\npassword_file = \"mqtt.pw\"\n"),
            58,
            "mqtt.password_file",
            "a password needs username",
        ),
        (
            "user name empty",
            mqtt("url = \"mqtt://broker\"\nusername = \"\"\n"),
            58,
            "mqtt.username",
            "must be 1-256 characters",
        ),
        (
            "client id with a space",
            mqtt("url = \"mqtt://broker\"\nclient_id = \"hall one\"\n"),
            58,
            "mqtt.client_id",
            "is not a client id",
        ),
        (
            "keep alive too short",
            mqtt("url = \"mqtt://broker\"\nkeep_alive_secs = 1\n"),
            58,
            "mqtt.keep_alive_secs",
            "1 is out of range 5..=3600",
        ),
        (
            "mqtt unknown key",
            mqtt("url = \"mqtt://broker\"\nqos = 2\n"),
            58,
            "mqtt.qos",
            "unknown field `qos`",
        ),
        (
            "clear percent below half",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nclear_percent = 10\n",
            ),
            15,
            "alerts.clear_percent",
            "10 is out of range 50..=100",
        ),
        (
            "clear percent above the threshold",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nclear_percent = 101\n",
            ),
            15,
            "alerts.clear_percent",
            "101 is out of range 50..=100",
        ),
        (
            "a severity that is not one",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nseverity = { already_used = \"loud\" }\n",
            ),
            15,
            "alerts.severity.already_used",
            "\"loud\" is not a severity: write info, warning or critical",
        ),
        (
            "a severity for a rule that does not exist",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nseverity = { patch_refused = \"critical\" }\n",
            ),
            15,
            "alerts.severity.patch_refused",
            "neither an alert kind nor a refusal rule",
        ),
        (
            "unknown alert key",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\nqueue_size = 3\n",
            ),
            15,
            "alerts.queue_size",
            "unknown field `queue_size`",
        ),
        // [performance]
        (
            "ideal print time zero",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[performance]\nideal_print_secs = 0\n",
            ),
            17,
            "performance.ideal_print_secs",
            "0 is out of range 1..=3600",
        ),
        (
            "ideal lamination time absurd",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[performance]\nideal_laminate_secs = 7200\n",
            ),
            17,
            "performance.ideal_laminate_secs",
            "7200 is out of range 1..=3600",
        ),
        (
            "ideal time as text",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[performance]\nideal_qc_secs = \"fast\"\n",
            ),
            17,
            "performance.ideal_qc_secs",
            "invalid type",
        ),
        (
            "ideal dispatch time zero",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[performance]\nideal_dispatch_secs = 0\n",
            ),
            17,
            "performance.ideal_dispatch_secs",
            "0 is out of range 1..=3600",
        ),
        // [qc]
        (
            "qc read attempts zero",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[qc]\nread_attempts = 0\n",
            ),
            17,
            "qc.read_attempts",
            "0 is out of range 1..=5 (readings of a booklet's MRZ before a mismatch spoils it",
        ),
        (
            "qc read attempts absurd",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[qc]\nread_attempts = 50\n",
            ),
            17,
            "qc.read_attempts",
            "50 is out of range 1..=5",
        ),
        (
            "destruction allowance zero",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[custody]\ndestroy_within_secs = 0\n",
            ),
            17,
            "custody.destroy_within_secs",
            "0 is out of range 1..=604800 (seconds a spoiled item may wait",
        ),
        (
            "qc read attempts as text",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[qc]\nread_attempts = \"twice\"\n",
            ),
            17,
            "qc.read_attempts",
            "invalid type",
        ),
        (
            "unknown qc key",
            edit(
                "queue_depth = 5000\n",
                "queue_depth = 5000\n\n[qc]\nretries = 2\n",
            ),
            17,
            "qc.retries",
            "unknown field `retries`",
        ),
        // [[buses]]
        (
            "duplicate bus id",
            edit(r#"id = "bus-b""#, r#"id = "bus-a""#),
            21,
            "buses[1].id",
            "duplicate bus id \"bus-a\" (line 17)",
        ),
        (
            "bus id charset",
            edit(r#"id = "bus-b""#, r#"id = "bus/b""#),
            21,
            "buses[1].id",
            "is not an id",
        ),
        (
            "bus with neither port nor simulate",
            edit("simulate = true\n", "baud = 9600\n"),
            20,
            "buses[1]",
            "needs port",
        ),
        (
            "bus with port and simulate",
            edit(
                "port = \"/dev/ttyUSB1\"\n",
                "port = \"/dev/ttyUSB1\"\nsimulate = true\n",
            ),
            19,
            "buses[0].simulate",
            "exclude each other",
        ),
        (
            "bad baud",
            edit(
                "port = \"/dev/ttyUSB1\"\n",
                "port = \"/dev/ttyUSB1\"\nbaud = 12345\n",
            ),
            19,
            "buses[0].baud",
            "12345 is not a standard baud rate",
        ),
        (
            "bus port empty",
            edit("port = \"/dev/ttyUSB1\"\n", "port = \"\"\n"),
            18,
            "buses[0].port",
            "must not be empty",
        ),
        (
            "buses not an array",
            edit(
                "[[buses]]\nid = \"bus-a\"\nport = \"/dev/ttyUSB1\"\n\n[[buses]]\nid = \"bus-b\"\nsimulate = true\n",
                "[buses]\nid = \"bus-a\"\n",
            ),
            16,
            "buses",
            "invalid type: map, expected a sequence",
        ),
        // [[stations]]
        (
            "station id charset",
            edit(r#"id = "QC-01""#, r#"id = "QC 01""#),
            49,
            "stations[5].id",
            "is not an id",
        ),
        (
            "duplicate station id",
            edit(r#"id = "PRINT-02""#, r#"id = "PRINT-01""#),
            34,
            "stations[2].id",
            "duplicate station id \"PRINT-01\" (line 29)",
        ),
        (
            "unknown station kind",
            edit(r#"kind = "qc""#, r#"kind = "quality""#),
            50,
            "stations[5].kind",
            "unknown variant `quality`",
        ),
        (
            "station missing id",
            edit("id = \"QC-01\"\n", ""),
            48,
            "stations[5]",
            "missing field `id`",
        ),
        (
            "no vault station",
            remove_vault,
            24,
            "stations",
            "no vault station",
        ),
        (
            "print station without device",
            edit(
                "device = { id = \"PR-01\", driver = \"printer\", port = \"/dev/ttyUSB0\" }\n",
                "",
            ),
            28,
            "stations[1]",
            "a print station needs a device",
        ),
        (
            "device at a qc station",
            edit(
                "kind = \"qc\"\n",
                "kind = \"qc\"\ndevice = { id = \"QC\", driver = \"bridge\", address = \"127.0.0.1:7000\" }\n",
            ),
            51,
            "stations[5].device",
            "a qc station has no device",
        ),
        // devices
        (
            "duplicate device id",
            edit(r#"id = "PR-02""#, r#"id = "PR-01""#),
            36,
            "stations[2].device.id",
            "duplicate device id \"PR-01\" (line 31)",
        ),
        (
            "device id charset",
            edit(r#"id = "PR-02""#, r#"id = """#),
            36,
            "stations[2].device.id",
            "is not an id",
        ),
        (
            "unknown driver",
            edit(r#"driver = "bridge""#, r#"driver = "sdk""#),
            36,
            "stations[2].device.driver",
            "unknown variant `sdk`",
        ),
        (
            "unknown device key",
            edit(r#"unit = 1 }"#, r#"unit = 1, speed = 3 }"#),
            41,
            "stations[3].device.speed",
            "unknown field `speed`",
        ),
        (
            "device key of the wrong type",
            edit(r#"unit = 1 }"#, r#"unit = "one" }"#),
            41,
            "stations[3].device.unit",
            "invalid type: string \"one\"",
        ),
        (
            "printer at a laminate station",
            edit(
                r#"{ id = "LM-01", driver = "laminator", bus = "bus-a", unit = 1 }"#,
                r#"{ id = "LM-01", driver = "printer", simulate = true }"#,
            ),
            41,
            "stations[3].device.driver",
            "a printer cannot serve a laminate station",
        ),
        (
            "laminator at a print station",
            edit(
                r#"{ id = "PR-01", driver = "printer", port = "/dev/ttyUSB0" }"#,
                r#"{ id = "PR-01", driver = "laminator", bus = "bus-b", unit = 5 }"#,
            ),
            31,
            "stations[1].device.driver",
            "a laminator cannot serve a print station",
        ),
        (
            "key of another driver",
            edit(
                r#"port = "/dev/ttyUSB0" }"#,
                r#"port = "/dev/ttyUSB0", unit = 3 }"#,
            ),
            31,
            "stations[1].device.unit",
            "unit is not a key of a printer device",
        ),
        (
            "printer with neither port nor simulate",
            edit(r#"port = "/dev/ttyUSB0" }"#, r#"baud = 9600 }"#),
            31,
            "stations[1].device",
            "needs port",
        ),
        (
            "two devices on one port",
            edit(r#"port = "/dev/ttyUSB0" }"#, r#"port = "/dev/ttyUSB1" }"#),
            31,
            "stations[1].device.port",
            "/dev/ttyUSB1 is already used by bus bus-a (line 18)",
        ),
        (
            "the same port by a relative path",
            edit(
                r#"port = "/dev/ttyUSB0" }"#,
                r#"port = "../../dev/ttyUSB1" }"#,
            ),
            31,
            "stations[1].device.port",
            "is already used by bus bus-a",
        ),
        (
            "printer timeout zero",
            edit(
                r#"port = "/dev/ttyUSB0" }"#,
                r#"port = "/dev/ttyUSB0", timeout_ms = 0 }"#,
            ),
            31,
            "stations[1].device.timeout_ms",
            "0 is out of range 10..=10000",
        ),
        (
            "printer baud not standard",
            edit(
                r#"port = "/dev/ttyUSB0" }"#,
                r#"port = "/dev/ttyUSB0", baud = 1234 }"#,
            ),
            31,
            "stations[1].device.baud",
            "1234 is not a standard baud rate",
        ),
        (
            "printer with port and simulate",
            edit(
                r#"port = "/dev/ttyUSB0" }"#,
                r#"port = "/dev/ttyUSB0", simulate = true }"#,
            ),
            31,
            "stations[1].device.simulate",
            "exclude each other",
        ),
        (
            "laminator on an unknown bus",
            edit(r#"bus = "bus-b""#, r#"bus = "bus-c""#),
            46,
            "stations[4].device.bus",
            "unknown bus \"bus-c\" (buses: bus-a, bus-b)",
        ),
        (
            "laminator without a bus",
            edit(r#"bus = "bus-b", "#, ""),
            46,
            "stations[4].device",
            "a laminator needs bus",
        ),
        (
            "laminator without a unit",
            edit(r#", unit = 1 }"#, " }"),
            41,
            "stations[3].device",
            "a laminator needs unit",
        ),
        (
            "unit zero",
            edit(r#"unit = 1 }"#, r#"unit = 0 }"#),
            41,
            "stations[3].device.unit",
            "0 is out of range 1..=247",
        ),
        (
            "unit 248",
            edit(r#"unit = 1 }"#, r#"unit = 248 }"#),
            41,
            "stations[3].device.unit",
            "248 is out of range 1..=247",
        ),
        (
            "unit twice on a bus",
            edit(r#"bus = "bus-b", unit = 1"#, r#"bus = "bus-a", unit = 1"#),
            46,
            "stations[4].device.unit",
            "unit 1 is already used on bus bus-a (line 41)",
        ),
        (
            "bridge with neither command nor address",
            edit(r#"command = ["bridge", "--unit", "3"]"#, "timeout_ms = 500"),
            36,
            "stations[2].device",
            "a bridge needs command",
        ),
        (
            "bridge with command and address",
            edit(
                r#"command = ["bridge", "--unit", "3"]"#,
                r#"command = ["bridge"], address = "127.0.0.1:7000""#,
            ),
            36,
            "stations[2].device.address",
            "exclude each other",
        ),
        (
            "bridge with an empty command",
            edit(r#"command = ["bridge", "--unit", "3"]"#, "command = []"),
            36,
            "stations[2].device.command",
            "must start with the bridge program",
        ),
        (
            "bridge address without a port",
            edit(
                r#"command = ["bridge", "--unit", "3"]"#,
                r#"address = "bridgehost""#,
            ),
            36,
            "stations[2].device.address",
            "is not host:port",
        ),
        // syntax
        (
            "syntax error",
            edit("queue_depth = 5000", "queue_depth = = 5000"),
            14,
            "",
            "extra `=`",
        ),
        (
            "duplicate key",
            edit("kind = \"qc\"\n", "kind = \"qc\"\nkind = \"dispatch\"\n"),
            51,
            "stations[5].kind",
            "duplicate key (first written at line 50)",
        ),
    ]
}

/// Each broken rule: the text, then the expected `line: path` and a fragment of the message.
#[test]
fn every_error_names_its_line_and_key() {
    let cases = error_cases();
    let mut failures = Vec::new();
    for (name, text, line, path, fragment) in &cases {
        let errors = match parse(text) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let prefix = if path.is_empty() {
            format!("hall.toml:{line}: ")
        } else {
            format!("hall.toml:{line}: {path}: ")
        };
        let found = errors.0.iter().any(|e| {
            let s = e.to_string();
            s.starts_with(&prefix) && s[prefix.len()..].contains(fragment)
        });
        if !found {
            failures.push(format!(
                "{name}: expected `{prefix}…{fragment}…`, got:\n{errors}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every key of `raw.rs` (read from its source, so that a new key without a case fails here),
/// named as error paths name it (`stations[].device.unit`).
fn every_key() -> Vec<String> {
    let sections: &[(&str, &[&str])] = &[
        ("RawHall", &["hall"]),
        ("RawServer", &["server"]),
        ("RawPolicy", &["policy"]),
        (
            "RawPerClass",
            &["policy.class_lead_hours", "policy.aging_cap_hours"],
        ),
        ("RawAlerts", &["alerts"]),
        ("RawPerformance", &["performance"]),
        ("RawQc", &["qc"]),
        ("RawCustody", &["custody"]),
        ("RawMqtt", &["mqtt"]),
        ("RawBus", &["buses[]"]),
        ("RawStation", &["stations[]"]),
        ("RawDevice", &["stations[].device"]),
    ];
    let src = include_str!("raw.rs");
    let mut keys = Vec::new();
    let mut seen_structs = Vec::new();
    let mut current: Option<&[&str]> = None;
    for line in src.lines() {
        if let Some(rest) = line.strip_prefix("pub(super) struct ") {
            let name = rest.trim_end_matches(" {").trim();
            seen_structs.push(name.to_string());
            current = sections.iter().find(|(s, _)| *s == name).map(|(_, p)| *p);
            if current.is_none() {
                assert_eq!(
                    name, "RawConfig",
                    "raw.rs has a new section struct {name}: map it here"
                );
            }
        } else if line == "}" {
            current = None;
        } else if let Some(prefixes) = current
            && let Some(field) = line.trim().strip_prefix("pub ")
            && let Some((field, _)) = field.split_once(':')
        {
            keys.extend(prefixes.iter().map(|p| format!("{p}.{field}")));
        }
    }
    for (s, _) in sections {
        assert!(
            seen_structs.iter().any(|n| n == s),
            "raw.rs has no {s} any more"
        );
    }
    keys
}

#[test]
fn every_key_has_a_case_with_a_bad_value() {
    let keys = every_key();
    assert!(keys.len() > 50, "{keys:?}");
    let paths: Vec<String> = error_cases()
        .iter()
        .map(|c| {
            // `stations[3].device.unit` -> `stations[].device.unit`
            let mut out = String::new();
            let mut in_index = false;
            for ch in c.3.chars() {
                match ch {
                    '[' => {
                        in_index = true;
                        out.push('[');
                    }
                    ']' => {
                        in_index = false;
                        out.push(']');
                    }
                    _ if in_index => {}
                    _ => out.push(ch),
                }
            }
            out
        })
        .collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !paths
                .iter()
                .any(|p| p == *k || p.starts_with(&format!("{k}.")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys with no bad-value case in error_cases(): {missing:?}"
    );
}

#[test]
fn errors_of_every_section_and_station_are_reported_together() {
    // Shape errors in two sections and two stations: each one is reported.
    let text = BASE
        .replacen(
            "name = \"Test hall\"\n",
            "name = \"Test hall\"\ncolour = 1\n",
            1,
        )
        .replacen("queue_depth = 5000", "queue_depth = \"many\"", 1)
        .replacen(r#"unit = 1 }"#, r#"unit = "one" }"#, 1)
        .replacen(r#"kind = "qc""#, r#"kind = "quality""#, 1);
    let errors = parse(&text).expect_err("four shape errors");
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "hall.colour",
            "alerts.queue_depth",
            "stations[3].device.unit",
            "stations[5].kind"
        ]
    );

    // Rule errors everywhere: each one is reported, in file order.
    let text = BASE
        .replacen(r#""PAK""#, r#""PK""#, 1)
        .replacen("max_pin_failures = 5", "max_pin_failures = 0", 1)
        .replacen(r#"id = "PRINT-02""#, r#"id = "PRINT-01""#, 1)
        .replacen(r#"bus = "bus-b""#, r#"bus = "bus-c""#, 1);
    let errors = parse(&text).expect_err("four rule errors");
    let lines: Vec<Option<usize>> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(4), Some(11), Some(34), Some(46)], "{errors}");
}

#[test]
fn an_error_reads_file_line_key_message() {
    let errors = parse(&edit(r#"unit = 1 }"#, r#"unit = 0 }"#)).expect_err("unit 0");
    assert_eq!(
        errors.to_string(),
        "hall.toml:41: stations[3].device.unit: 0 is out of range 1..=247"
    );
    assert_eq!(
        errors.0,
        [ConfigError {
            file: "hall.toml".into(),
            line: Some(41),
            path: "stations[3].device.unit".into(),
            message: "0 is out of range 1..=247".into(),
        }]
    );
}

const MINIMAL: &str = r#"
[hall]
id = "h"
name = "H"
issuing_state = "PAK"

[[buses]]
id = "b"
port = "/dev/ttyS9"

[[stations]]
id = "V"
kind = "vault"
[[stations]]
id = "P"
kind = "print"
device = { id = "P", driver = "printer", port = "/dev/ttyS1" }
[[stations]]
id = "L"
kind = "laminate"
device = { id = "L", driver = "laminator", bus = "b", unit = 7 }
[[stations]]
id = "B"
kind = "laminate"
device = { id = "B", driver = "bridge", address = "127.0.0.1:7001" }
[[stations]]
id = "Q"
kind = "qc"
[[stations]]
id = "D"
kind = "dispatch"
"#;

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(MINIMAL).expect("minimal hall");
    assert_eq!(
        c.server,
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("address"),
            data_dir: PathBuf::from("/var/lib/hallctl"),
            body_limit_bytes: 4_194_304,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            ledger_cache_mb: 1024,
            ledger_seal_window: 20_000,
            ledger_period: crate::ledger::Period::Month,
            min_free_disk_mb: 512,
            tls: None,
            signin_burst: 10,
            signin_refill_secs: 6,
        }
    );
    assert_eq!(c.server.signin_refill(), Duration::from_secs(6));
    assert_eq!(c.server.ledger_cache_bytes(), 1 << 30);
    assert_eq!(c.server.request_timeout(), Duration::from_secs(30));
    assert_eq!(c.server.shutdown_grace(), Duration::from_secs(20));
    let p = &c.policy;
    assert_eq!(p.separation, SeparationPolicy::Strict);
    assert_eq!(p.separation(), Separation::strict());
    assert_eq!(p.roll_order, RollOrder::ReasonRequired);
    assert_eq!(
        (p.max_pin_failures, p.lockout(), p.token_ttl()),
        (5, Duration::from_secs(900), Duration::from_secs(720 * 60))
    );
    // The scheduler's defaults are the configuration's defaults.
    assert_eq!(p.slack(), SlackPolicy::default());
    assert_eq!(
        c.alerts,
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
    );
    assert_eq!(c.alerts, AlertConfig::default());
    assert_eq!(c.performance, PerformanceConfig::default());
    assert_eq!(c.qc, QcConfig { read_attempts: 2 });
    assert_eq!(c.qc, QcConfig::default());
    assert_eq!(
        c.performance.ideal_cycle(),
        [60, 45, 30, 15].map(Duration::from_secs)
    );
    assert_eq!(c.alerts.device_offline(), Duration::from_secs(10));
    assert_eq!(c.alerts.oldest_queued(), Duration::from_secs(4 * 3600));
    assert_eq!(c.alerts.due_at_risk(), Duration::from_secs(3600));
    assert_eq!(
        c.buses[0].link,
        SerialLink::Port {
            path: "/dev/ttyS9".into(),
            baud: 19_200
        }
    );
    let drivers: Vec<&DriverConfig> = c
        .stations
        .iter()
        .filter_map(|s| s.device.as_ref().map(|d| &d.driver))
        .collect();
    assert_eq!(
        drivers,
        [
            &DriverConfig::Printer {
                link: SerialLink::Port {
                    path: "/dev/ttyS1".into(),
                    baud: 115_200
                },
                timeout: Duration::from_millis(150),
            },
            &DriverConfig::Laminator {
                bus: "b".into(),
                unit: 7,
                timeout: Duration::from_millis(100)
            },
            &DriverConfig::Bridge {
                endpoint: BridgeEndpoint::Tcp {
                    address: "127.0.0.1:7001".into()
                },
                timeout: Duration::from_millis(2000),
            },
        ]
    );
}

#[test]
fn policies_convert_to_the_scheduler_and_separation_rules() {
    let text = MINIMAL.replacen(
        "[[buses]]",
        "[policy]\nseparation = \"qc-not-independent\"\nroll_order = \"strict\"\n\
         class_lead_hours = { normal = 1, urgent = 3, fast_track = 6 }\n\
         aging_cap_hours = { normal = 48, urgent = 12, fast_track = 4 }\n\
         boosted_groups = { HAJJ-2027 = 48 }\n\n[[buses]]",
        1,
    );
    let p = parse(&text).expect("policy").policy;
    assert_eq!(
        p.separation(),
        Separation {
            qc_independent: false
        }
    );
    assert_eq!(p.roll_order, RollOrder::Strict);
    const H: i64 = 3_600_000;
    assert_eq!(
        p.slack(),
        SlackPolicy {
            class_lead: [H, 3 * H, 6 * H],
            aging_cap: [48 * H, 12 * H, 4 * H],
            boosted_groups: vec![(GroupTag::new("HAJJ-2027"), 48 * H)],
        }
    );
}

#[test]
fn relative_paths_resolve_against_the_files_directory() {
    let text = MINIMAL
        .replacen(
            "[[buses]]",
            "[server]\ndata_dir = \"state/data\"\ntls_cert = \"tls/hall.crt\"\n\
             tls_key = \"/etc/ssl/private/hall.key\"\n\n[[buses]]",
            1,
        )
        .replacen("/dev/ttyS1", "ptys/printer-1", 1)
        .replacen(
            r#"address = "127.0.0.1:7001""#,
            r#"command = ["bin/bridge", "-v"]"#,
            1,
        );
    let c = parse(&text).expect("relative paths");
    assert_eq!(c.server.data_dir, Path::new("/etc/hallctl/state/data"));
    assert_eq!(
        c.server.tls,
        Some(TlsFiles {
            cert: "/etc/hallctl/tls/hall.crt".into(),
            key: "/etc/ssl/private/hall.key".into(),
        })
    );
    assert_eq!(
        c.stations[1].device.as_ref().map(|d| &d.driver),
        Some(&DriverConfig::Printer {
            link: SerialLink::Port {
                path: "/etc/hallctl/ptys/printer-1".into(),
                baud: 115_200
            },
            timeout: Duration::from_millis(150),
        })
    );
    let bridge = c.stations[3].device.as_ref().map(|d| &d.driver);
    assert!(
        matches!(bridge, Some(DriverConfig::Bridge { endpoint: BridgeEndpoint::Process { program, args }, .. })
        if program == Path::new("/etc/hallctl/bin/bridge") && args == &["-v"])
    );

    // A bare program name is left to PATH; absolute paths stay as they are.
    let text =
        text.replacen("bin/bridge", "vendor-bridge", 1)
            .replacen("state/data", "/srv/hall", 1);
    let c = parse(&text).expect("bare name");
    assert_eq!(c.server.data_dir, Path::new("/srv/hall"));
    let bridge = c.stations[3].device.as_ref().map(|d| &d.driver);
    assert!(
        matches!(bridge, Some(DriverConfig::Bridge { endpoint: BridgeEndpoint::Process { program, .. }, .. })
        if program == Path::new("vendor-bridge"))
    );
}

#[test]
fn load_resolves_against_the_files_directory_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hall.toml");
    std::fs::write(
        &file,
        MINIMAL.replacen("[[buses]]", "[server]\ndata_dir = \"data\"\n\n[[buses]]", 1),
    )
    .expect("write");
    let c = HallConfig::load(&file).expect("valid");
    assert_eq!(c.server.data_dir, dir.path().join("data"));

    std::fs::write(&file, BASE.replacen("unit = 1 }", "unit = 0 }", 1)).expect("write");
    let errors = HallConfig::load(&file).expect_err("unit 0");
    assert_eq!(errors.0[0].file, file.display().to_string());
    assert_eq!(errors.0[0].line, Some(41));

    let missing = dir.path().join("nope.toml");
    let errors = HallConfig::load(&missing).expect_err("no file");
    assert!(
        errors.to_string().starts_with(&format!(
            "{}: cannot read the configuration",
            missing.display()
        )),
        "{errors}"
    );
}

#[test]
fn the_demo_hall_validates() {
    let c = HallConfig::demo();
    assert_eq!(
        c.summary(),
        "hall demo, 10 print, 11 laminate, 2 qc, 1 dispatch, 1 vault stations, 2 buses"
    );
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().expect("address"));
    assert_eq!(c.server.data_dir, Path::new("hallctl-demo-data"));
    assert!(c.buses.iter().all(|b| b.link == SerialLink::Simulated));
    let ids = |kind| {
        c.stations_of(kind)
            .map(|s| s.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(StationKind::Print),
        (1..=10)
            .map(|i| format!("PRINT-{i:02}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ids(StationKind::Laminate),
        (1..=11).map(|i| format!("LAM-{i:02}")).collect::<Vec<_>>()
    );
    for s in c.stations_of(StationKind::Print) {
        assert!(
            matches!(
                &s.device,
                Some(DeviceConfig {
                    driver: DriverConfig::Printer {
                        link: SerialLink::Simulated,
                        ..
                    },
                    ..
                })
            ),
            "{s:?}"
        );
    }
    for s in c.stations_of(StationKind::Laminate) {
        assert!(
            matches!(&s.device, Some(DeviceConfig { driver: DriverConfig::Laminator { bus, .. }, .. }) if c.bus(bus).is_some()),
            "{s:?}"
        );
    }
}

#[test]
fn the_example_validates_with_real_ports_and_a_bridge() {
    let c = HallConfig::parse(EXAMPLE_TOML, "hall.example.toml", Path::new("/etc/hallctl"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.summary(),
        "hall isb-central, 10 print, 11 laminate, 2 qc, 1 dispatch, 1 vault stations, 2 buses"
    );
    let drivers: Vec<&DriverConfig> = c
        .stations
        .iter()
        .filter_map(|s| s.device.as_ref().map(|d| &d.driver))
        .collect();
    assert!(drivers.iter().any(|d| matches!(
        d,
        DriverConfig::Bridge {
            endpoint: BridgeEndpoint::Process { .. },
            ..
        }
    )));
    assert!(c.buses.iter().all(|b| b.link.port().is_some()));
    assert!(drivers.iter().all(|d| !matches!(
        d,
        DriverConfig::Printer {
            link: SerialLink::Simulated,
            ..
        }
    )));
}

#[test]
fn the_example_has_a_comment_on_every_key_it_sets_first() {
    // Every key of the schema appears in the example with a comment on its line or near it,
    // so that the example doubles as a reference card.
    let mut undocumented = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in EXAMPLE_TOML.lines().enumerate() {
        let code = line.split('#').next().unwrap_or_default();
        let Some((key, _)) = code.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !seen.insert(key.to_owned()) || key == "device" {
            continue;
        }
        if !line.contains('#') {
            undocumented.push(format!("line {}: {key}", i + 1));
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys without a comment: {undocumented:?}"
    );
}

#[test]
fn mqtt_is_off_by_default_and_its_defaults_are_the_documented_ones() {
    assert_eq!(parse(BASE).expect("BASE").mqtt, None);
    let c = parse(&mqtt("url = \"mqtt://broker.example\"\n")).expect("mqtt");
    assert_eq!(
        c.mqtt,
        Some(MqttConfig {
            url: BrokerUrl {
                tls: false,
                host: "broker.example".into(),
                port: 1883
            },
            client_id: "hallctl-test-hall".into(),
            username: None,
            password_file: None,
            ca_file: None,
            keep_alive_secs: 30,
        })
    );
    let c = parse(&mqtt(
        "url = \"mqtts://10.0.0.5\"\nusername = \"hall-1\"\npassword_file = \"secrets/mqtt.pw\"\n\
         ca_file = \"/etc/ssl/hall-ca.pem\"\nclient_id = \"isb-1\"\nkeep_alive_secs = 10\n",
    ))
    .expect("mqtts");
    let m = c.mqtt.expect("mqtt");
    assert_eq!(m.url.to_string(), "mqtts://10.0.0.5:8883");
    assert_eq!(
        m.password_file.as_deref(),
        Some(Path::new("/etc/hallctl/secrets/mqtt.pw"))
    );
    assert_eq!(
        m.ca_file.as_deref(),
        Some(Path::new("/etc/ssl/hall-ca.pem"))
    );
    assert_eq!(
        (m.client_id.as_str(), m.keep_alive()),
        ("isb-1", Duration::from_secs(10))
    );
}

#[test]
fn broker_urls_parse_as_documented() {
    let ok = [
        ("mqtt://broker", "mqtt://broker:1883"),
        ("mqtt://broker:1884/", "mqtt://broker:1884"),
        (
            "mqtts://broker.example.org",
            "mqtts://broker.example.org:8883",
        ),
        ("mqtt://127.0.0.1:18830", "mqtt://127.0.0.1:18830"),
        ("mqtt://[::1]:1883", "mqtt://[::1]:1883"),
        ("mqtts://[fe80::1]", "mqtts://[fe80::1]:8883"),
    ];
    for (text, shown) in ok {
        let u = BrokerUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(u.to_string(), shown, "{text}");
    }
    let bad = [
        ("tcp://broker", "is not a broker URL"),
        ("mqtt://", "names no host"),
        ("mqtt://:1883", "names no host"),
        ("mqtt://broker:0", "is not a port"),
        ("mqtt://broker:x", "is not a port"),
        ("mqtt://u:p@broker", "must not carry credentials"),
        ("mqtt://broker?x=1", "has a path or a query"),
        ("mqtt://[::1", "needs its closing ]"),
        ("mqtt://[nope]:1", "is not an IPv6 address"),
        ("mqtt://bro ker", "is not a host name or address"),
    ];
    for (text, fragment) in bad {
        let e = BrokerUrl::parse(text).expect_err(text);
        assert!(e.contains(fragment), "{text}: {e}");
    }
}

#[test]
fn qc_read_attempts_is_read() {
    let c = parse(&edit(
        "queue_depth = 5000\n",
        "queue_depth = 5000\n\n[qc]\nread_attempts = 1\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.qc.read_attempts, 1);
    let c = parse(&edit(
        "queue_depth = 5000\n",
        "queue_depth = 5000\n\n[qc]\nread_attempts = 5\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.qc.read_attempts, 5);
}

#[test]
fn custody_destroy_within_is_read_and_defaults_to_the_shift_end() {
    let c = parse(&edit(
        "queue_depth = 5000\n",
        "queue_depth = 5000\n\n[custody]\ndestroy_within_secs = 3600\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.custody.destroy_within,
        Some(std::time::Duration::from_secs(3600))
    );
    let c = parse(&edit("queue_depth = 5000\n", "queue_depth = 5000\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.custody.destroy_within, None);
}

#[test]
fn every_icao_issuing_code_is_accepted_including_d() {
    let c = parse(&edit(r#""PAK""#, r#""D""#)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hall.issuing_state, "D");
    assert_eq!(c.hall.issuing_states, ["D"]);
    for code in hallctl_jobs::country::ISO_3166_ALPHA3
        .iter()
        .chain(
            hallctl_jobs::country::ICAO_SPECIAL_CODES
                .iter()
                .map(|c| &c.code),
        )
        .filter(|c| hallctl_jobs::country::is_issuing_code(c))
        .filter(|c| !hallctl_jobs::country::is_specimen_code(c))
    {
        let c = parse(&edit(r#""PAK""#, &format!("{code:?}")))
            .unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(c.hall.issuing_states, [*code]);
    }
}

#[test]
fn a_hall_may_print_for_several_states_the_first_its_own() {
    let c = parse(&edit(
        r#"issuing_state = "PAK""#,
        r#"issuing_states = ["D", "EUE"]"#,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hall.issuing_state, "D", "the first: the SLTD export's");
    assert_eq!(c.hall.issuing_states, ["D", "EUE"]);
}

#[test]
fn only_the_demo_hall_may_print_specimens() {
    let text = edit(r#""PAK""#, r#""UTO""#);
    assert!(parse(&text).is_err());
    let c = HallConfig::parse_as(&text, "demo.toml", Path::new(""), Specimens::Allowed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hall.issuing_states, ["UTO"]);
    // Everything else is checked the same.
    assert!(
        HallConfig::parse_as(
            &edit(r#""PAK""#, r#""DEU""#),
            "demo.toml",
            Path::new(""),
            Specimens::Allowed
        )
        .is_err()
    );
}
