//! The generated bad-input battery: schemathesis, driven by the service's own OpenAPI document,
//! against the real binary (simulated devices, a temporary data directory), once per role.
//!
//! Every operation of the document gets generated calls (the document's examples, boundary and
//! malformed values from schemathesis's coverage phase, random valid and invalid data from its
//! fuzzing phase, and chains of calls from its stateful phase), with ids that exist in the hall
//! mixed into the generated ones. Each answer is checked:
//! - no 5xx (`not_a_server_error`);
//! - status, content type, headers and body conform to the document;
//! - schema-violating requests are refused, and a route ignores no missing or bad token;
//! - every error is the one error body (`one_error_body`, in the hooks);
//! - **a refusal changes nothing**: the ledger's head is read before and after each call, and
//!   any 4xx answer must leave it where it was (`no_state_change_on_refusal`, in
//!   `tests/schemathesis/hooks.py`, whose docstring says why that is the whole state).
//!
//! It needs schemathesis, which `scripts/test-all` installs into `.venv` and runs this with
//! `--ignored`. `HALLCTL_BATTERY_SEED` replays a run (each run prints its seed);
//! `HALLCTL_BATTERY_EXAMPLES` sets the examples per operation of the fuzzing phase.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::{Value, json};

/// Accounts the battery may disable, enable and re-PIN (the role accounts it signs in with are
/// kept out of its reach, or it would sign itself out), and one that signs in at QC-02 to be
/// signed out by the last run.
const SPARE: &[(&str, &str, &str)] = &[
    ("X1", "operator", "731904"),
    ("X2", "operator", "846215"),
    ("X3", "supervisor", "590637"),
];

/// One schemathesis run: who, with which token, which phases, how many examples, and which
/// methods (`DELETE /session` signs the run's own token out: it comes last, on its own).
struct Run {
    role: &'static str,
    token: String,
    phases: &'static str,
    examples: u32,
    methods: Methods,
}

#[derive(Clone, Copy)]
enum Methods {
    AllButDelete,
    OnlyDelete,
}

/// What one run reported.
struct Outcome {
    role: &'static str,
    ok: bool,
    generated: u64,
    calls: u64,
    refusals: u64,
    operations: u64,
    secs: f64,
    tail: String,
}

fn schemathesis() -> PathBuf {
    let p = std::env::var_os("HALLCTL_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis"));
    assert!(
        p.exists(),
        "schemathesis is not installed at {} (scripts/test-all installs it into .venv; or set HALLCTL_SCHEMATHESIS)",
        p.display()
    );
    p
}

/// The number in `text` just before `word` on the summary line that has it
/// (`2174 generated, ...`).
fn count_before(text: &str, word: &str) -> u64 {
    text.lines()
        .rev()
        .find_map(|l| {
            let i = l.find(word)?;
            l[..i].split_whitespace().last()?.parse().ok()
        })
        .unwrap_or(0)
}

/// `Tested: N` of the summary: the operations the run reached.
fn operations_tested(text: &str) -> u64 {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Tested:")?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs schemathesis: run by scripts/test-all"]
fn generated_battery_finds_no_server_error_and_no_change_on_refusal() {
    let st = schemathesis();
    let mut people: Vec<(&str, &str, &str)> = PEOPLE.to_vec();
    people.extend_from_slice(SPARE);
    let hall = spawn_hall_as(0.02, &format!("{HALL_TOML}\n"), &people);
    let c = hall.client;
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    let adm = hall.sign_in("AD1", None);
    // The hooks read the ledger's head with a token of their own, which no run can sign out.
    let head_token = hall.sign_in("AU1", None);

    // A hall with something in it, so that generated calls with real ids get past the lookup:
    // lots in the vault, jobs, an operator with a session at a printer and one at a laminator.
    receive_lots(c, &sup);
    let a1 = hall.sign_in("A1", Some("PRINT-01"));
    let print_session = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = hall.sign_in("B1", Some("LAM-01"));
    let lam_session = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let d1 = hall.sign_in("D1", Some("DISPATCH-01"));
    let x2 = {
        let v = c
            .post(
                "/session",
                None,
                &json!({"user": "X2", "pin": "846215", "station": "QC-02"}),
            )
            .expect(200, "X2 signs in at QC-02");
        v["token"].as_str().unwrap().to_string()
    };
    let mut jobs = Vec::new();
    for (i, (surname, doc)) in [("Eriksson", "L898902C3"), ("Lindqvist", "X12345678")]
        .iter()
        .enumerate()
    {
        jobs.push(submit(
            c,
            &sup,
            &job_request(&format!("TRK-BATTERY-{i}"), surname, doc),
        ));
    }
    let known = json!({
        "/jobs/": jobs.iter().flat_map(|j| [j.to_string(), format!("J-{j:08}")]).collect::<Vec<_>>(),
        "/stations/": ["PRINT-01", "PRINT-02", "LAM-01", "QC-01", "DISPATCH-01", "VAULT"],
        "/devices/": ["PR-01", "PR-02", "LM-01", "LM-02"],
        "/custody/sessions/": [print_session, lam_session],
        "/ledger/trace/": ["B1000100", "P2000100", "B1000150"],
        "/ledger/evidence/": ["B1000100", "P2000100"],
        "/users/": ["X1", "X3"],
        "/bags/": ["LHR-01"],
        "/alerts/": ["1"],
    });
    let known_file = hall.dir.path().join("battery-known.json");
    std::fs::write(&known_file, known.to_string()).unwrap();
    let protect: Vec<&str> = PEOPLE.iter().map(|p| p.0).chain(["MON1", "X2"]).collect();

    // Operators first: a supervisor's run may sign them out of their stations (`vacate`).
    let examples: u32 = std::env::var("HALLCTL_BATTERY_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    // The coverage phase (every boundary and malformed value of every parameter, ~1,500 calls)
    // for four roles; generated data and chains of calls for every role.
    let all = "examples,coverage,fuzzing,stateful";
    let lighter = "fuzzing,stateful";
    let runs = [
        Run {
            role: "operator at PRINT-01",
            token: a1,
            phases: all,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "operator at LAM-01",
            token: b1,
            phases: lighter,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "operator at DISPATCH-01",
            token: d1,
            phases: lighter,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "auditor",
            token: aud.clone(),
            phases: all,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "monitor",
            token: hall.monitor_token.clone(),
            phases: lighter,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "admin",
            token: adm,
            phases: all,
            examples,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "supervisor",
            token: sup,
            phases: all,
            examples: examples * 2,
            methods: Methods::AllButDelete,
        },
        Run {
            role: "operator at QC-02, signing out",
            token: x2,
            phases: all,
            examples,
            methods: Methods::OnlyDelete,
        },
    ];

    let api = format!("http://{}/api/v1", c.addr);
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let seed = std::env::var("HALLCTL_BATTERY_SEED").ok();
    let mut outcomes = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let stats = hall.dir.path().join(format!("battery-stats-{i}.json"));
        let work = hall.dir.path().join(format!("battery-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut cmd = Command::new(&st);
        cmd.current_dir(&work)
            .env("PYTHONPATH", &hooks)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("HALLCTL_BATTERY_API", &api)
            .env("HALLCTL_BATTERY_HEAD_TOKEN", &head_token)
            .env("HALLCTL_BATTERY_KNOWN", &known_file)
            .env("HALLCTL_BATTERY_STATS", &stats)
            .env("HALLCTL_BATTERY_PROTECT", protect.join(","))
            .env("NO_COLOR", "1")
            .args(["run", &format!("{api}/openapi.json"), "--url", &api])
            .args(["--header", &format!("Authorization: Bearer {}", run.token)])
            // Single worker: the head is read around each call.
            .args(["--workers", "1", "--phases", run.phases])
            .args(["--max-examples", &run.examples.to_string()])
            .args(["--checks", "all"])
            // Valid-looking data is often refused for the hall's own reasons (a job that is
            // not held, a serial never issued): that is not a finding.
            .args(["--exclude-checks", "positive_data_acceptance"])
            // An event stream does not end: tests/status_stream.rs and tests/bad_input.rs
            // cover it.
            .args(["--exclude-path", "/stream"])
            .args(["--request-timeout", "30", "--no-shrink"]);
        match run.methods {
            Methods::AllButDelete => cmd.args(["--exclude-method", "DELETE"]),
            Methods::OnlyDelete => cmd.args(["--include-method", "DELETE"]),
        };
        if let Some(s) = &seed {
            cmd.args(["--seed", s]);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run schemathesis");
        let secs = started.elapsed().as_secs_f64();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = std::fs::read_to_string(&stats)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let tail: String = {
            let lines: Vec<&str> = text.lines().collect();
            let keep = if out.status.success() { 12 } else { 400 };
            lines[lines.len().saturating_sub(keep)..].join("\n")
        };
        std::fs::write(work.join("schemathesis.log"), &text).unwrap();
        println!(
            "schemathesis as {}: exit {:?} after {secs:.1} s; {}",
            run.role,
            out.status.code(),
            text.lines()
                .rev()
                .find(|l| l.contains(" generated"))
                .unwrap_or("no summary")
                .trim()
        );
        outcomes.push(Outcome {
            role: run.role,
            ok: out.status.success(),
            generated: count_before(&text, " generated"),
            calls: s["calls"].as_u64().unwrap_or(0),
            refusals: s["refusals"].as_u64().unwrap_or(0),
            operations: operations_tested(&text),
            secs,
            tail,
        });
    }

    println!(
        "\n{:<24} {:>9} {:>7} {:>9} {:>10} {:>7}",
        "role", "generated", "calls", "refusals", "operations", "secs"
    );
    for o in &outcomes {
        println!(
            "{:<24} {:>9} {:>7} {:>9} {:>10} {:>7.1}{}",
            o.role,
            o.generated,
            o.calls,
            o.refusals,
            o.operations,
            o.secs,
            if o.ok { "" } else { "  FAILED" }
        );
    }
    let total = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    println!(
        "battery: {} cases generated, {} calls, {} refusals checked unchanged, {} roles, {:.0} s",
        total(|o| o.generated),
        total(|o| o.calls),
        total(|o| o.refusals),
        outcomes.len(),
        outcomes.iter().map(|o| o.secs).sum::<f64>()
    );
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    for o in &failed {
        println!("\n---- schemathesis as {} ----\n{}", o.role, o.tail);
    }
    assert!(
        failed.is_empty(),
        "the battery found problems as: {}",
        failed.iter().map(|o| o.role).collect::<Vec<_>>().join(", ")
    );
    for o in &outcomes {
        assert!(
            o.calls > 0 && o.generated > 0,
            "{}: nothing was sent:\n{}",
            o.role,
            o.tail
        );
    }
    // Still the same hall: the role accounts were never signed out or disabled under the run.
    c.get("/ledger/head", Some(&aud))
        .expect(200, "the auditor still reads the head");
}
