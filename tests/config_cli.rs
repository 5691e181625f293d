//! `hallctl config` as a user runs it: a good file, a bad file, the demo hall.

use std::path::Path;
use std::process::{Command, Output};

fn hallctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hallctl"))
        .args(args)
        .output()
        .expect("run hallctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/hall.example.toml"
    ))
}

#[test]
fn check_prints_a_summary_of_a_good_file() {
    let out = hallctl(&["config", "check", example().to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: hall isb-central, 10 print, 11 laminate, 2 qc, 1 dispatch, 1 vault stations, 2 buses\n"
    );
}

#[test]
fn check_prints_every_error_of_a_bad_file_and_fails() {
    let good = std::fs::read_to_string(example()).expect("example");
    // Three mistakes in three places: a wrong hall id, a laminator on a bus that does not exist,
    // and a unit id out of range.
    let bad = good
        .replacen(r#"id = "isb-central""#, r#"id = "ISB Central""#, 1)
        .replacen(
            r#"bus = "rs485-b", unit = 2"#,
            r#"bus = "rs485-c", unit = 2"#,
            1,
        )
        .replacen(
            r#"bus = "rs485-a", unit = 3"#,
            r#"bus = "rs485-a", unit = 0"#,
            1,
        );
    assert_eq!(bad.matches("ISB Central").count(), 1);
    assert_eq!(bad.matches("rs485-c").count(), 1);
    assert_eq!(bad.matches("unit = 0").count(), 1);
    let line_of = |needle: &str| {
        1 + bad
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle in the file")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hall.toml");
    std::fs::write(&file, &bad).expect("write");
    let file = file.to_str().expect("utf-8 path");

    let out = hallctl(&["config", "check", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let lam_03 = line_of("unit = 0");
    let lam_08 = line_of("rs485-c");
    let expected = [
        format!(
            "{file}:{}: hall.id: \"ISB Central\" is not a hall id",
            line_of("ISB Central")
        ),
        format!("{file}:{lam_03}: stations[13].device.unit: 0 is out of range 1..=247"),
        format!(
            "{file}:{lam_08}: stations[18].device.bus: unknown bus \"rs485-c\" (buses: rs485-a, rs485-b)"
        ),
        format!("error: {file} is not a valid configuration: 3 errors"),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "expected {want:?}\n got {line:?}"
        );
    }
}

#[test]
fn check_names_a_missing_file() {
    let out = hallctl(&["config", "check", "/nonexistent/hall.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("/nonexistent/hall.toml: cannot read the configuration"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_prints_the_embedded_hall_which_checks_clean() {
    let out = hallctl(&["config", "demo"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("demo.toml");
    std::fs::write(&file, &out.stdout).expect("write");
    let out = hallctl(&["config", "check", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: hall demo, 10 print, 11 laminate, 2 qc, 1 dispatch, 1 vault stations, 2 buses\n"
    );
}
