//! What the `config` fuzz target checks, as a plain function: `fuzz/fuzz_targets/config.rs`
//! calls it under libFuzzer, and `tests/fuzz_regressions.rs` replays every input kept in
//! `fuzz/regressions/config/` through it in a normal `cargo test`, so that a crash found once
//! stays fixed.

use std::path::Path;

use super::{DriverConfig, HallConfig, StationKind};

/// `config`: the loader never panics; an error names a line inside the text; an accepted
/// configuration has every kind of station, and each laminator a known bus and a unit in
/// 1..=247.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match HallConfig::parse(text, "fuzz.toml", Path::new("/etc/hallctl")) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error value with no error");
            let last_line = text.matches('\n').count() + 1;
            for e in &errors.0 {
                if let Some(line) = e.line {
                    assert!(
                        (1..=last_line).contains(&line),
                        "line {line} of {last_line}: {e}"
                    );
                }
            }
            let _ = errors.to_string();
        }
        Ok(config) => {
            for kind in StationKind::ALL {
                assert!(
                    config.stations_of(kind).next().is_some(),
                    "no {kind} station"
                );
            }
            for station in &config.stations {
                if let Some(DriverConfig::Laminator { bus, unit, .. }) =
                    station.device.as_ref().map(|d| &d.driver)
                {
                    assert!(config.bus(bus).is_some(), "unknown bus {bus}");
                    assert!((1..=247).contains(unit), "unit {unit}");
                }
            }
            let _ = config.summary();
        }
    }
}
