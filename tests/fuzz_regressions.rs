//! Every input kept in `fuzz/regressions/<target>/` (a crash the fuzzer found once, or an edge
//! case worth keeping) replayed through the same checks the fuzz target runs
//! (`hallctl::config::fuzz_check`), in a plain `cargo test`: a crash found once stays fixed.
//! `scripts/test-all` copies any new crash there before it fails.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter(|p| {
            let data = std::fs::read(p).expect("a regression input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail again: {failed:?}"
    );
}

#[test]
fn config_regressions_stay_fixed() {
    replay("config", hallctl::config::fuzz_check::check);
}

#[test]
fn printer_frame_regressions_stay_fixed() {
    replay("printer_frame", hallctl_drivers::fuzz_checks::printer_frame);
}

#[test]
fn printer_payloads_regressions_stay_fixed() {
    replay(
        "printer_payloads",
        hallctl_drivers::fuzz_checks::printer_payloads,
    );
}

#[test]
fn bridge_line_regressions_stay_fixed() {
    replay("bridge_line", hallctl_drivers::fuzz_checks::bridge_line);
}

#[test]
fn laminator_status_regressions_stay_fixed() {
    replay(
        "laminator_status",
        hallctl_drivers::fuzz_checks::laminator_status,
    );
}

#[test]
fn mrz_regressions_stay_fixed() {
    replay("mrz", hallctl_jobs::fuzz_checks::mrz);
}
