//! Interop: the laminator driver against an independently written Modbus RTU slave (pymodbus,
//! `interop/pymodbus_laminator.py`) over a socat pseudo-terminal pair, reading and writing the
//! register map of `PROTOCOL-laminator.md`.
//!
//! Needs socat and a Python venv with pymodbus 3.11.x at `.venv/` (or `HALLCTL_PYTHON`):
//! `scripts/test-all` installs both and runs this with `--ignored`.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hallctl_drivers::DriverError;
use hallctl_drivers::laminator::{BusConfig, LaminatorState, UnitConfig, spawn_bus};
use hallctl_drivers::port::{LinkState, PollConfig, SerialConnector};

use common::{GENEROUS, wait_for, wait_until, within};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HALLCTL_PYTHON") {
        return p.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

async fn wait_path(p: &Path) {
    wait_until(&format!("{} to appear", p.display()), || p.exists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs socat + pymodbus: run by scripts/test-all"]
async fn laminator_driver_interoperates_with_a_pymodbus_slave() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("bus");
    let dev = dir.path().join("dev");
    let _socat = Kill(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", host.display()))
            .arg(format!("pty,raw,echo=0,link={}", dev.display()))
            .spawn()
            .expect("socat must be installed (scripts/test-all installs it)"),
    );
    wait_path(&host).await;
    wait_path(&dev).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pymodbus_laminator.py");
    let mut slave = Kill(
        Command::new(python())
            .arg(&script)
            .arg(&dev)
            .args(["3", "4"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python venv with pymodbus must exist (scripts/test-all creates it)"),
    );
    {
        use std::io::BufRead;
        let out = slave.0.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "pymodbus slave did not start");
    }

    // Units 3 and 4 exist (a Python slave on a busy machine: their timeout is generous); unit 9
    // does not: it must go offline without stalling the others (it never answers, so its
    // timeout only sets how long each probe of it holds the bus).
    let units = [
        (3u8, GENEROUS),
        (4, GENEROUS),
        (9, Duration::from_millis(200)),
    ]
    .iter()
    .map(|&(id, timeout)| UnitConfig {
        name: format!("LAM-{id}"),
        unit_id: id,
        timeout,
    })
    .collect();
    let (lams, task) = spawn_bus(
        SerialConnector::new(&host, 115_200),
        BusConfig {
            units,
            poll: PollConfig::default(),
            retries: 1,
        },
    );
    for l in &lams[..2] {
        let mut w = l.watch();
        wait_for(&mut w, "the pymodbus unit ready", |v| {
            v.link == LinkState::Ready
        })
        .await;
    }
    let mut w9 = lams[2].watch();
    wait_for(&mut w9, "absent unit 9 offline", |v| {
        v.link == LinkState::Offline
    })
    .await;

    let lam = &lams[0];
    let s = lam.status().await.unwrap();
    assert_eq!(
        (s.state, s.temperature_dc, s.patch_count),
        (LaminatorState::Idle, 221, 0)
    );
    lam.set_temperature(1300).await.unwrap();
    lam.set_speed(35).await.unwrap();
    assert_eq!(lam.setpoints().await.unwrap(), (1300, 35));
    lam.start().await.unwrap();
    let s = lam.status().await.unwrap();
    assert_eq!((s.state, s.temperature_dc), (LaminatorState::Ready, 1300));
    lam.feed().await.unwrap();
    lam.feed().await.unwrap();
    let s = lam.status().await.unwrap();
    assert_eq!(s.patch_count, 2);
    assert_eq!(s.patch_read_seq, 2);
    assert_eq!(s.last_patch_serial, "0041201");
    // The second unit is independent.
    let s4 = lams[1].status().await.unwrap();
    assert_eq!((s4.state, s4.patch_count), (LaminatorState::Idle, 0));
    assert!(matches!(
        lams[2].status().await,
        Err(DriverError::NotReady(_))
    ));

    drop(lams);
    within("the bus task to stop after its handles were dropped", task)
        .await
        .unwrap();
}
