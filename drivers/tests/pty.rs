//! Each driver against its simulator over pseudo-terminals (the real serial code path), under
//! every fault the simulators inject: recovery, counters, and no hung task.
//!
//! Every wait is for an event (a view, a message, a counter), bounded by a generous ceiling
//! (`common`), never for a fixed time, and nothing asserts how long something took: these are not
//! timing benchmarks; `examples/figures.rs` measures the figures. A device that should answer has
//! a request timeout of seconds; the tests of timeouts make a device answer far beyond the timeout
//! they test, or never.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::{GENEROUS, wait_for, wait_until, within};

use hallctl_drivers::DriverError;
use hallctl_drivers::laminator::{
    BusConfig, LaminatorFault, LaminatorHandle, LaminatorState, UnitConfig, spawn_bus,
};
use hallctl_drivers::link::LinkConfig;
use hallctl_drivers::port::{LinkState, PollConfig, SerialConnector};
use hallctl_drivers::printer::{
    DataField, JobData, PrinterConfig, PrinterEvent, PrinterFault, PrinterHandle, spawn_printer,
};
use hallctl_drivers::sim::TimeScale;
use hallctl_drivers::sim::laminator::{LaminatorTiming, UnitFaults, spawn_laminator_bus};
use hallctl_drivers::sim::printer::{PrinterSim, PrinterTiming, spawn_printer_sim};
use hallctl_drivers::sim::wire::LineFaults;
use tokio::task::JoinHandle;

fn fast() -> TimeScale {
    TimeScale::new(0.01)
}

struct PrinterRig {
    _dir: tempfile::TempDir,
    sim: PrinterSim,
    printer: PrinterHandle,
    task: JoinHandle<()>,
}

/// A printer whose commands and polls time out after [`GENEROUS`] (2 s).
async fn printer_rig() -> PrinterRig {
    printer_rig_with(
        LinkConfig {
            timeout: GENEROUS,
            ..LinkConfig::default()
        },
        PollConfig::default(),
    )
    .await
}

async fn printer_rig_with(link: LinkConfig, poll: PollConfig) -> PrinterRig {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_printer_sim(
        dir.path().join("prn-1"),
        9_001_234,
        PrinterTiming {
            scale: fast(),
            ..PrinterTiming::default()
        },
    )
    .unwrap();
    let (printer, task) = spawn_printer(
        SerialConnector::new(sim.control.path(), 115_200),
        PrinterConfig { link, poll },
    );
    let mut w = printer.watch();
    wait_for(&mut w, "printer ready", |v| v.link == LinkState::Ready).await;
    PrinterRig {
        _dir: dir,
        sim,
        printer,
        task,
    }
}

impl PrinterRig {
    /// Drops every handle and checks the task ends promptly: no hung task.
    async fn finish(self) {
        let PrinterRig {
            printer, task, sim, ..
        } = self;
        drop(printer);
        within(
            "the printer task to stop after its handles were dropped",
            task,
        )
        .await
        .unwrap();
        sim.device.abort();
        sim.wire.abort();
    }
}

fn job(job_ref: u32) -> JobData {
    JobData {
        job_ref,
        fields: vec![
            (DataField::Surname, "ERIKSSON".into()),
            (
                DataField::MrzLine1,
                "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<".into(),
            ),
            (
                DataField::MrzLine2,
                "L898902C36UTO7408122F1204159ZE184226B<<<<<10".into(),
            ),
            (DataField::PortraitRef, "portraits/42.jp2".into()),
        ],
    }
}

async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<PrinterEvent>) -> PrinterEvent {
    within("a printer event", rx.recv()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_prints_a_job_and_reports_done_with_the_booklet_serial() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    let mut events = p.subscribe();
    assert_eq!(p.read_serial().await.unwrap(), "BK-9001234");
    p.load_job(&job(42)).await.unwrap();
    p.print(42).await.unwrap();
    loop {
        match next_event(&mut events).await {
            PrinterEvent::Done {
                job_ref,
                booklet_serial,
            } => {
                assert_eq!((job_ref, booklet_serial.as_str()), (42, "BK-9001234"));
                break;
            }
            PrinterEvent::Levels { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(p.status().await.unwrap().printed, 1);
    // A print with no job loaded is refused by the device, not retried.
    assert!(matches!(p.print(43).await, Err(DriverError::Refused(_))));
    rig.finish().await;
}

/// The booklet serial of the next DONE for `job_ref`.
async fn done_serial(
    rx: &mut tokio::sync::broadcast::Receiver<PrinterEvent>,
    job_ref: u32,
) -> String {
    loop {
        match next_event(rx).await {
            PrinterEvent::Done {
                job_ref: r,
                booklet_serial,
            } if r == job_ref => return booklet_serial,
            PrinterEvent::Done { .. } | PrinterEvent::Levels { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Issue 16: the DONE event reads back the booklet the printer took: the one put in the feeder,
/// another one when told to (`misfeed`), or nothing (`no-read`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_reads_back_the_booklet_it_took_misfed_or_none() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    let mut events = p.subscribe();
    let print = |n: u32| async move {
        p.load_job(&job(n)).await.unwrap();
        p.print(n).await.unwrap();
    };
    rig.sim.control.load_booklet("B1000100");
    print(1).await;
    assert_eq!(done_serial(&mut events, 1).await, "B1000100");
    rig.sim.control.load_booklet("B1000101");
    rig.sim.control.misfeed("B1000177");
    print(2).await;
    assert_eq!(done_serial(&mut events, 2).await, "B1000177", "misfed");
    rig.sim.control.load_booklet("B1000102");
    rig.sim.control.no_read();
    print(3).await;
    assert_eq!(done_serial(&mut events, 3).await, "", "nothing read");
    // Without a booklet put in, the printer takes the next of its own stock.
    print(4).await;
    assert_eq!(done_serial(&mut events, 4).await, "BK-9001234");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_machine_faults_jam_ink_out_overheat_are_reported_and_cleared() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    let mut events = p.subscribe();
    for fault in [PrinterFault::Jam, PrinterFault::Overheat] {
        p.load_job(&job(7)).await.unwrap();
        p.print(7).await.unwrap();
        rig.sim.control.inject(fault).await;
        let ev = next_event(&mut events).await;
        assert_eq!(ev, PrinterEvent::Fault { fault, job_ref: 7 });
        let mut w = p.watch();
        wait_for(&mut w, "faulted view", |v| {
            v.status.is_some_and(|s| s.fault == Some(fault))
        })
        .await;
        assert!(matches!(p.print(7).await, Err(DriverError::Refused(_))));
        p.clear_fault().await.unwrap();
        assert_eq!(next_event(&mut events).await, PrinterEvent::FaultCleared);
        p.cancel().await.unwrap();
        let _ = next_event(&mut events).await; // Cancelled
    }
    // Ink out: the printer refuses to print and says why.
    rig.sim.control.set_ink(0);
    p.load_job(&job(8)).await.unwrap();
    assert!(matches!(p.print(8).await, Err(DriverError::Refused(_))));
    assert_eq!(
        next_event(&mut events).await,
        PrinterEvent::Fault {
            fault: PrinterFault::InkOut,
            job_ref: 8
        }
    );
    p.clear_fault().await.unwrap();
    assert_eq!(p.status().await.unwrap().ink_percent, 100);
    assert_eq!(p.view().link, LinkState::Ready);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_survives_garbage_and_crc_errors_and_counts_them() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    rig.sim.control.wire.update_faults(|f| f.garbage = true);
    for _ in 0..20 {
        p.status().await.unwrap();
    }
    let c = p.counters();
    assert!(c.noise_bytes > 0, "{c:?}");

    rig.sim.control.wire.set_faults(LineFaults {
        corrupt_crc: true,
        ..LineFaults::default()
    });
    // Every reply is corrupted: bounded retries, then a timeout; never a hang.
    let err = within("a status call under CRC errors to end", p.status())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DriverError::Timeout { .. } | DriverError::NotReady(_)),
        "{err}"
    );
    let c = p.counters();
    assert!(c.crc_errors > 0 && c.timeouts > 0, "{c:?}");

    rig.sim.control.wire.set_faults(LineFaults::default());
    let mut w = p.watch();
    wait_for(&mut w, "ready again", |v| v.link == LinkState::Ready).await;
    p.status().await.unwrap();
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_silent_goes_offline_after_missed_polls_fails_fast_and_comes_back() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    let mut w = p.watch();
    rig.sim.control.wire.update_faults(|f| f.silent = true);
    wait_for(&mut w, "offline", |v| v.link == LinkState::Offline).await;
    // Commands to an offline printer are refused rather than queued for the device: NotReady,
    // not a timeout. (How fast that comes is a figure, not a test.)
    let err = within("a command to the offline printer", p.status())
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::NotReady(_)), "{err}");
    let c = p.counters();
    assert!(c.timeouts >= 3 && c.link_losses >= 1, "{c:?}");

    rig.sim.control.wire.update_faults(|f| f.silent = false);
    wait_for(&mut w, "ready again", |v| v.link == LinkState::Ready).await;
    p.status().await.unwrap();
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_slow_device_within_the_timeout_works_beyond_it_goes_offline() {
    // Within: every reply 60 ms late, against a timeout of seconds. The command is answered at
    // its first attempt (no retry).
    let rig = printer_rig().await;
    let p = &rig.printer;
    rig.sim
        .control
        .wire
        .update_faults(|f| f.delay = Duration::from_millis(60));
    let retries = p.counters().retries;
    p.status().await.unwrap();
    assert_eq!(p.counters().retries, retries, "{:?}", p.counters());
    rig.finish().await;

    // Beyond: every reply 1.5 s late, against the default 150 ms timeout: each poll is missed,
    // and after three the printer is offline. Polls 2 s apart keep the session that sent them
    // open until their late replies have come in (offline at the third miss, about 4 s on).
    let rig = printer_rig_with(
        LinkConfig::default(),
        PollConfig {
            interval: Duration::from_secs(2),
            ..PollConfig::default()
        },
    )
    .await;
    let p = &rig.printer;
    let mut w = p.watch();
    rig.sim
        .control
        .wire
        .update_faults(|f| f.delay = Duration::from_millis(1500));
    wait_for(&mut w, "offline", |v| v.link == LinkState::Offline).await;
    rig.sim
        .control
        .wire
        .update_faults(|f| f.delay = Duration::ZERO);
    wait_for(&mut w, "ready again", |v| v.link == LinkState::Ready).await;
    // The slow replies arrived after their requests were given up: dropped, not mistaken.
    assert!(p.counters().late_replies > 0, "{:?}", p.counters());
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_link_loss_is_detected_and_the_port_reopened_when_it_returns() {
    let rig = printer_rig().await;
    let p = &rig.printer;
    let mut w = p.watch();
    rig.sim.control.wire.set_plugged(false);
    wait_for(&mut w, "offline", |v| v.link == LinkState::Offline).await;
    // While the cable is out the port is gone: every reopen attempt fails, and commands are
    // refused. (The pause only lets the task go through a few failed reopens before the cable
    // comes back; nothing below depends on how many it made.)
    wait_until("the port to be gone", || !rig.sim.control.path().exists()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(p.status().await, Err(DriverError::NotReady(_))));
    rig.sim.control.wire.set_plugged(true);
    wait_for(&mut w, "ready again", |v| v.link == LinkState::Ready).await;
    p.status().await.unwrap();
    let c = p.counters();
    assert!(c.reconnects >= 1 && c.link_losses >= 1, "{c:?}");
    rig.finish().await;
}

// --- laminators -----------------------------------------------------------------------------

struct BusRig {
    _dir: tempfile::TempDir,
    sim: hallctl_drivers::sim::laminator::LaminatorBusSim,
    lams: Vec<LaminatorHandle>,
    task: JoinHandle<()>,
}

/// Units `ids`, each with a request timeout of [`GENEROUS`] (2 s).
async fn bus_rig(ids: &[u8]) -> BusRig {
    let units: Vec<(u8, Duration)> = ids.iter().map(|&id| (id, GENEROUS)).collect();
    bus_rig_with(&units, PollConfig::default()).await
}

/// Units `(id, request timeout)`.
async fn bus_rig_with(units: &[(u8, Duration)], poll: PollConfig) -> BusRig {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u8> = units.iter().map(|u| u.0).collect();
    let sim = spawn_laminator_bus(
        dir.path().join("rs485-1"),
        &ids,
        41_200,
        LaminatorTiming {
            scale: fast(),
            ..LaminatorTiming::default()
        },
    )
    .unwrap();
    let units = units
        .iter()
        .map(|&(id, timeout)| UnitConfig {
            name: format!("LAM-{id}"),
            unit_id: id,
            timeout,
        })
        .collect();
    let (lams, task) = spawn_bus(
        SerialConnector::new(sim.path(), 115_200),
        BusConfig {
            units,
            poll,
            retries: 1,
        },
    );
    for l in &lams {
        let mut w = l.watch();
        wait_for(&mut w, "laminator ready", |v| v.link == LinkState::Ready).await;
    }
    BusRig {
        _dir: dir,
        sim,
        lams,
        task,
    }
}

impl BusRig {
    async fn finish(self) {
        let BusRig {
            lams, task, sim, ..
        } = self;
        drop(lams);
        within("the bus task to stop after its handles were dropped", task)
            .await
            .unwrap();
        for t in sim.tasks {
            t.abort();
        }
    }
}

async fn wait_state(l: &LaminatorHandle, want: LaminatorState) {
    let mut w = l.watch();
    wait_for(&mut w, &format!("{} {want:?}", l.name()), |v| {
        v.status.as_ref().is_some_and(|s| s.state == want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laminator_heats_feeds_and_reports_the_patch_serial_it_read() {
    let rig = bus_rig(&[3, 4]).await;
    let lam = &rig.lams[0];
    lam.set_temperature(1300).await.unwrap();
    assert_eq!(lam.setpoints().await.unwrap(), (1300, 40));
    lam.start().await.unwrap();
    wait_state(lam, LaminatorState::Ready).await;
    lam.feed().await.unwrap();
    let mut w = lam.watch();
    let v = wait_for(&mut w, "a patch applied", |v| {
        v.status.as_ref().is_some_and(|s| s.patch_count == 1)
    })
    .await;
    let s = v.status.unwrap();
    assert_eq!(s.last_patch_serial, "0041200");
    assert_eq!(s.patch_read_seq, 1);
    assert!(s.temperature_dc >= 1280, "{s:?}");
    // Feeding while not ready is refused by the device with a Modbus exception.
    assert!(matches!(
        rig.lams[1].feed().await,
        Err(DriverError::ModbusException(_))
    ));
    rig.finish().await;
}

/// Issue 16: the patch reader reads the patch fed: the one put in, another one when told to
/// (`misfeed`); with `no-read`, PATCH_READ_SEQ does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laminator_reader_reads_the_patch_fed_misfed_or_none() {
    let rig = bus_rig(&[1]).await;
    let (lam, unit) = (&rig.lams[0], &rig.sim.units[0]);
    lam.start().await.unwrap();
    let feed = |n: u32| async move {
        wait_state(lam, LaminatorState::Ready).await;
        lam.feed().await.unwrap();
        let mut w = lam.watch();
        let v = wait_for(&mut w, "a patch applied", |v| {
            v.status
                .as_ref()
                .is_some_and(|s| s.patch_count == n && s.state == LaminatorState::Ready)
        })
        .await;
        let s = v.status.unwrap();
        (s.patch_read_seq, s.last_patch_serial)
    };
    unit.load_patch("P2000100");
    assert_eq!(feed(1).await, (1, "P2000100".to_string()));
    unit.load_patch("P2000101");
    unit.misfeed("PT2000077");
    assert_eq!(feed(2).await, (2, "PT2000077".to_string()), "misfed");
    unit.load_patch("P2000102");
    unit.no_read();
    assert_eq!(
        feed(3).await,
        (2, "PT2000077".to_string()),
        "no new reading: the sequence did not move"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_unit_on_the_bus_never_stalls_the_others() {
    // The unit that dies keeps the 100 ms timeout of a real bus (it never answers, so its timeout
    // only sets how long each probe holds the bus); its healthy peers have timeouts of seconds.
    let rig = bus_rig_with(
        &[
            (3, GENEROUS),
            (4, Duration::from_millis(100)),
            (5, GENEROUS),
        ],
        PollConfig::default(),
    )
    .await;
    let (l3, l4, l5) = (&rig.lams[0], &rig.lams[1], &rig.lams[2]);
    rig.sim.units[1].set_faults(UnitFaults {
        silent: true,
        ..UnitFaults::default()
    });
    let mut w4 = l4.watch();
    wait_for(&mut w4, "LAM-4 offline", |v| v.link == LinkState::Offline).await;
    // While LAM-4 is dead, LAM-3 and LAM-5 answer every command: each probe of the dead unit
    // costs the bus one timeout and its settle window, never a queue of timeouts. (Their round
    // trip meanwhile is a figure of `examples/figures.rs`, not a test.)
    for _ in 0..10 {
        for l in [l3, l5] {
            within(&format!("{} to answer", l.name()), l.status())
                .await
                .unwrap();
        }
    }
    // ... and commands for LAM-4 are refused at once (NotReady) instead of taking bus time.
    assert!(matches!(l4.start().await, Err(DriverError::NotReady(_))));
    assert_eq!(l3.view().link, LinkState::Ready);
    assert_eq!(l5.view().link, LinkState::Ready);
    assert_eq!(l3.counters().link_losses, 0, "{:?}", l3.counters());
    assert_eq!(l5.counters().link_losses, 0, "{:?}", l5.counters());

    rig.sim.units[1].set_faults(UnitFaults::default());
    wait_for(&mut w4, "LAM-4 back", |v| v.link == LinkState::Ready).await;
    l4.status().await.unwrap();
    assert!(l4.counters().link_losses >= 1);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laminator_jam_and_overheat_are_reported_and_reset() {
    let rig = bus_rig(&[3]).await;
    let lam = &rig.lams[0];
    for fault in [LaminatorFault::Jam, LaminatorFault::Overheat] {
        rig.sim.units[0].inject(fault);
        let mut w = lam.watch();
        let v = wait_for(&mut w, "fault", |v| {
            v.status.as_ref().is_some_and(|s| s.fault == Some(fault))
        })
        .await;
        assert_eq!(v.status.unwrap().state, LaminatorState::Faulted);
        lam.reset_fault().await.unwrap();
        assert_eq!(lam.status().await.unwrap().fault, None);
    }
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laminator_bus_survives_garbage_crc_errors_slow_units_and_link_loss() {
    let rig = bus_rig(&[3, 4]).await;
    let lam = &rig.lams[0];
    let wire = &rig.sim.wire;

    // Noise before a Modbus RTU reply can make tokio-modbus's decoder wait for a frame length
    // read from the noise (RTU framing by silence is not implemented there), so under noise some
    // requests time out. What must hold: every call returns, and the bus recovers.
    wire.update_faults(|f| f.garbage = true);
    for _ in 0..10 {
        let r = within("a status call under noise to end", lam.status()).await;
        if let Err(e) = r {
            assert!(
                matches!(e, DriverError::Timeout { .. } | DriverError::NotReady(_)),
                "{e}"
            );
        }
    }
    wire.set_faults(LineFaults::default());
    let mut w = lam.watch();
    wait_for(&mut w, "ready after noise", |v| v.link == LinkState::Ready).await;
    lam.status().await.unwrap();

    wire.set_faults(LineFaults {
        corrupt_crc: true,
        ..LineFaults::default()
    });
    wait_for(&mut w, "offline on CRC errors", |v| {
        v.link == LinkState::Offline
    })
    .await;
    wire.set_faults(LineFaults::default());
    wait_for(&mut w, "back after CRC errors", |v| {
        v.link == LinkState::Ready
    })
    .await;

    // A slow unit: 40 ms late, against a timeout of seconds.
    rig.sim.units[0].set_faults(UnitFaults {
        delay: Duration::from_millis(40),
        ..UnitFaults::default()
    });
    lam.status().await.unwrap();
    rig.sim.units[0].set_faults(UnitFaults::default());

    wire.set_plugged(false);
    wait_for(&mut w, "offline on link loss", |v| {
        v.link == LinkState::Offline
    })
    .await;
    wire.set_plugged(true);
    wait_for(&mut w, "back after link loss", |v| {
        v.link == LinkState::Ready
    })
    .await;
    let mut w1 = rig.lams[1].watch();
    wait_for(&mut w1, "the other unit back too", |v| {
        v.link == LinkState::Ready
    })
    .await;
    rig.lams[1].status().await.unwrap();
    let c = lam.counters();
    assert!(c.link_losses >= 2 && c.reconnects >= 1, "{c:?}");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_is_opened_exclusively() {
    use hallctl_drivers::port::Connector;
    let rig = printer_rig().await;
    // The printer task holds the port: a second opener (another program, a second task) must be
    // refused rather than interleave its frames with ours.
    let mut second = SerialConnector::new(rig.sim.control.path(), 115_200);
    assert!(second.connect().await.is_err(), "second open succeeded");
    rig.finish().await;
}

/// A reply that arrives after its request timed out must not shift the bus: every later request
/// would read the previous one's answer (a header or function mismatch, or worse the stale answer
/// of the same unit taken for the new one), and healthy peers would go offline. After a timeout or
/// mismatch the bus task lets the line settle (the unit's timeout again) and discards the pending
/// input before the next request.
///
/// The late answers are placed in the middle of those windows with a second of margin on each
/// side: a timeout of 2 s, answers 3 s late. LAM-4's first answer lands 3 s after the first
/// attempt, inside the settle window before the retry (2 s to 4 s); the retry, sent at 4 s, is
/// answered at 7 s, inside the settle window after its own timeout (6 s to 8 s), where the bus
/// sends nothing: on an idle line, which nothing clears but the flush before the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_does_not_shift_the_bus() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    const LATE: Duration = Duration::from_secs(3);
    let rig = bus_rig_with(
        &[(3, TIMEOUT), (4, TIMEOUT)],
        PollConfig {
            interval: Duration::from_millis(700),
            ..PollConfig::default()
        },
    )
    .await;
    let (l3, l4) = (&rig.lams[0], &rig.lams[1]);
    // Tell the units apart: LAM-3 heats and has its own set-point, LAM-4 stays idle.
    l3.set_temperature(1300).await.unwrap();
    l4.set_temperature(1200).await.unwrap();
    l3.start().await.unwrap();

    // Every answer of LAM-4 comes after its timeout, so none may be taken as the answer to a call:
    // the retry must not read the first attempt's late answer.
    rig.sim.units[1].set_faults(UnitFaults {
        delay: LATE,
        ..UnitFaults::default()
    });
    let r = within("LAM-4's late call to end", l4.setpoints()).await;
    assert!(
        matches!(r, Err(DriverError::Timeout { .. })),
        "a late answer was taken for the retry's: {r:?}"
    );
    // LAM-4 is prompt again from its next request on (the bus sends none before 8 s). Its
    // retry's answer is still on its way and lands on the idle line.
    rig.sim.units[1].set_faults(UnitFaults::default());

    // Both units are ready, and every call is answered by the unit asked, with its own data.
    let mut w3 = l3.watch();
    let mut w4 = l4.watch();
    wait_for(&mut w3, "LAM-3 ready", |v| v.link == LinkState::Ready).await;
    wait_for(&mut w4, "LAM-4 ready", |v| v.link == LinkState::Ready).await;
    let (c3, c4) = (l3.counters(), l4.counters());
    for _ in 0..10 {
        let s3 = l3.status().await.unwrap();
        let s4 = l4.status().await.unwrap();
        assert_ne!(s3.state, LaminatorState::Idle, "LAM-3 was started: {s3:?}");
        assert_eq!(s4.state, LaminatorState::Idle, "LAM-4 was not: {s4:?}");
        assert_eq!(l3.setpoints().await.unwrap().0, 1300);
        assert_eq!(l4.setpoints().await.unwrap().0, 1200);
    }
    // In step: no call met another request's answer (a shifted bus hides behind retries).
    for (c0, l) in [(c3, l3), (c4, l4)] {
        let c = l.counters();
        assert_eq!(
            (c.late_replies, c.retries),
            (c0.late_replies, c0.retries),
            "{}: {c:?}",
            l.name()
        );
    }
    // The polls keep working for both (each answers one more, with the test idle), and the
    // healthy peer never went offline.
    let (r3, r4) = (l3.counters().replies, l4.counters().replies);
    wait_until("a poll answered by each unit", || {
        l3.counters().replies > r3 && l4.counters().replies > r4
    })
    .await;
    assert_eq!(l3.counters().link_losses, 0, "{:?}", l3.counters());
    assert_eq!(l3.view().link, LinkState::Ready);
    assert_eq!(l4.view().link, LinkState::Ready);
    assert!(l4.counters().resyncs >= 1, "{:?}", l4.counters());
    rig.finish().await;
}
