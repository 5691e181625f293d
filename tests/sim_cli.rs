//! `hallctl sim` as a user runs it: the binary, its JSON and its table.

use std::process::Command;

use serde_json::Value;

fn hallctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args(args)
        .output()
        .expect("run hallctl")
}

fn sim_json(args: &[&str]) -> Value {
    let out = hallctl(&[&["sim", "--json"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

const SMALL: &[&str] = &[
    "--printers",
    "2",
    "--laminators",
    "3",
    "--qc-stations",
    "1",
    "--jobs",
    "6000",
];

#[test]
fn json_report_has_the_documented_keys_for_ours_and_fifo() {
    let v = sim_json(&[SMALL, &["--scenario", "surge", "--seed", "3"]].concat());
    assert_eq!(v["scenario"], "surge");
    for side in [&v, &v["fifo"]] {
        for key in ["throughput_ratio", "cmax_over_lb", "sim_wall_s"] {
            let x = side[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {side}"));
            assert!(x.is_finite() && x > 0.0, "{key} = {x}");
        }
        for key in ["on_time", "p95_lateness_s"] {
            for class in ["normal", "urgent", "fast_track"] {
                assert!(side[key][class].is_number(), "{key}.{class} missing");
            }
        }
        let ratio = side["throughput_ratio"].as_f64().unwrap_or(0.0);
        assert!(
            (0.9..=1.0 + 1e-9).contains(&ratio),
            "throughput ratio {ratio}"
        );
        assert_eq!(side["flow"]["sod_violations"], 0);
    }
    assert_eq!(v["policy"], "slack");
    assert_eq!(v["fifo"]["policy"], "fifo");
}

#[test]
fn the_same_seed_prints_the_same_figures() {
    let strip = |mut v: Value| {
        v["sim_wall_s"] = Value::Null;
        v["fifo"]["sim_wall_s"] = Value::Null;
        v
    };
    let args = [SMALL, &["--scenario", "steady", "--seed", "9"]].concat();
    assert_eq!(strip(sim_json(&args)), strip(sim_json(&args)));
}

#[test]
fn all_scenarios_print_as_tables_by_default() {
    let out = hallctl(&[&["sim"], SMALL].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for scenario in ["steady", "surge", "laminator-down"] {
        assert!(text.contains(&format!("scenario {scenario} ")), "{text}");
    }
    assert!(text.contains("ours (slack)") && text.contains("fifo"));
    assert!(text.contains("throughput / physical limit"));
}

#[test]
fn bad_arguments_are_refused_with_the_argument_named() {
    for (args, needle) in [
        (vec!["sim", "--printers", "0"], "--printers"),
        (vec!["sim", "--scenario", "blackout"], "--scenario"),
        (vec!["sim", "--jobs", "many"], "--jobs"),
        (vec!["sim", "--load=-1"], "--load"),
        (vec!["sim", "--load", "7"], "--load"),
        (vec!["sim", "--load", "0.9", "--jobs", "10"], "--load"),
    ] {
        let out = hallctl(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn load_sets_the_number_of_jobs_from_the_physical_limit() {
    let v = sim_json(&[&SMALL[..6], &["--scenario", "steady", "--load", "0.5"]].concat());
    let load = v["offered_load"].as_f64().unwrap_or(0.0);
    assert!((load - 0.5).abs() < 0.001, "offered load {load}");
    let jobs = v["jobs"].as_u64().unwrap_or(0);
    let limit = v["physical_limit_per_h"].as_f64().unwrap_or(0.0);
    assert_eq!(jobs, (0.5 * limit * 24.0).round() as u64);
}
