//! The configuration loader on arbitrary text: never panics; an error names a line inside the
//! text; an accepted configuration keeps the rules that stations and buses depend on.
#![no_main]

use std::path::Path;

use hallctl::config::{DriverConfig, HallConfig, StationKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match HallConfig::parse(text, "fuzz.toml", Path::new("/etc/hallctl")) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error value with no error");
            let last_line = text.matches('\n').count() + 1;
            for e in &errors.0 {
                if let Some(line) = e.line {
                    assert!((1..=last_line).contains(&line), "line {line} of {last_line}: {e}");
                }
            }
            let _ = errors.to_string();
        }
        Ok(config) => {
            for kind in StationKind::ALL {
                assert!(config.stations_of(kind).next().is_some(), "no {kind} station");
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
});
