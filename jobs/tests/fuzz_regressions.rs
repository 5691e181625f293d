//! Every input kept in `fuzz/regressions/<target>/` (a crash the fuzzer found once, or an edge
//! case worth keeping) replayed through the same checks the fuzz target runs
//! (`hallctl_jobs::fuzz_checks`), in a plain `cargo test`: a crash found once stays fixed.
//! `scripts/test-all` copies any new crash there before it fails.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
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
fn mrz_regressions_stay_fixed() {
    replay("mrz", hallctl_jobs::fuzz_checks::mrz);
}
