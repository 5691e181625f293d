//! `hallctl devices sim` as a user runs it: the binary prints port paths, the real drivers reach
//! the simulated printers and laminators through them, and faults typed on its standard input
//! reach the drivers.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::within;
use hallctl_drivers::laminator::{BusConfig, UnitConfig, spawn_bus};
use hallctl_drivers::link::LinkConfig;
use hallctl_drivers::port::{LinkState, PollConfig, SerialConnector};
use hallctl_drivers::printer::{PrinterConfig, PrinterEvent, PrinterFault, spawn_printer};

/// The request timeout of the drivers here: seconds, where a simulated device answers in
/// milliseconds, so that a busy machine never makes a healthy one miss polls. (LAM-2 falls
/// silent: it goes offline after three missed polls whatever the timeout.)
const GENEROUS: Duration = Duration::from_secs(2);

/// Kills the simulator when the test ends, also when it fails.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sim_prints_ports_the_drivers_can_open() {
    let dir = tempfile::tempdir().unwrap();
    // `--seconds` only stops a simulator that outlived its test; the test kills it when it ends.
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_hallctl"))
            .args(["devices", "sim", "--printers", "2", "--laminators", "2"])
            .args(["--time-scale", "0.01", "--seconds", "600", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut out = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    for line in out.by_ref() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    let path_of = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap()
            .to_string()
    };

    let (printer, _p) = spawn_printer(
        SerialConnector::new(path_of("printer   PRN-2"), 115_200),
        PrinterConfig {
            link: LinkConfig {
                timeout: GENEROUS,
                ..LinkConfig::default()
            },
            ..PrinterConfig::default()
        },
    );
    let units = [1u8, 2]
        .iter()
        .map(|&id| UnitConfig {
            name: format!("LAM-{id}"),
            unit_id: id,
            timeout: GENEROUS,
        })
        .collect();
    let (lams, _b) = spawn_bus(
        SerialConnector::new(path_of("laminator LAM-1"), 115_200),
        BusConfig {
            units,
            poll: PollConfig::default(),
            retries: 1,
        },
    );
    let mut w = printer.watch();
    within(
        "the simulated printer ready",
        w.wait_for(|v| v.link == LinkState::Ready),
    )
    .await
    .unwrap();
    assert_eq!(printer.read_serial().await.unwrap(), "BK-9200000");
    for l in &lams {
        let mut w = l.watch();
        within(
            "the simulated laminator ready",
            w.wait_for(|v| v.link == LinkState::Ready),
        )
        .await
        .unwrap();
    }
    assert_eq!(lams[1].setpoints().await.unwrap(), (1350, 40));

    // Fault injection from standard input: a jam on PRN-2, LAM-2 falls silent.
    let mut events = printer.subscribe();
    writeln!(stdin, "jam PRN-2").unwrap();
    writeln!(stdin, "silent LAM-2 on").unwrap();
    writeln!(stdin, "bogus PRN-2").unwrap();
    stdin.flush().unwrap();
    let replies: Vec<String> = out.by_ref().take(3).map(Result::unwrap).collect();
    assert_eq!(replies[..2], ["ok: jam PRN-2", "ok: silent LAM-2 on"]);
    assert!(replies[2].starts_with("error: "), "{replies:?}");
    let ev = within("the jam event", events.recv()).await.unwrap();
    assert!(
        matches!(
            ev,
            PrinterEvent::Fault {
                fault: PrinterFault::Jam,
                ..
            }
        ),
        "{ev:?}"
    );
    let mut w2 = lams[1].watch();
    within(
        "the silenced LAM-2 offline",
        w2.wait_for(|v| v.link == LinkState::Offline),
    )
    .await
    .unwrap();
    assert_eq!(lams[0].view().link, LinkState::Ready);
}
