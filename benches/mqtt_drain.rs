//! The MQTT outbox's drain rate after a broker outage: `cargo bench --bench mqtt_drain -- --records 20000`.
//! Needs the `mosquitto` program (`apt-get install mosquitto`); it starts its own on a free
//! loopback port.
//!
//! 1. A broker starts; a subscriber connects with a persistent session, subscribes to the
//!    hall's `events` and leaves; the broker stops (SIGTERM: it saves the session). From here on
//!    the broker is unreachable.
//! 2. A hall's ledger (real, fsynced, in a temporary directory on this disk) and its MQTT
//!    publisher start; N records are appended (batches of 100, as the line's intake writes
//!    them) while the publisher finds no broker: they wait in the journal.
//! 3. The broker restarts on the same port. Measured: how long the publisher took to reconnect
//!    (its backoff), then how long from its connection until the broker had acknowledged all N
//!    records in order (the cursor reached the head): the drain rate. The subscriber reconnects
//!    and must receive every record once at least: the end-to-end rate is counted to its last one.
//!
//! Options: `--records N` (default 20000), `--dir D` (where the temporary data directory goes).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hallctl::ledger::{ControlAction, Ledger, LedgerConfig, LedgerEvent};
use hallctl::mqtt::{Broker, HallRef, Publisher};
use hallctl::status::StatusHub;
use hallctl_jobs::job::{JobId, OperatorId};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

fn mosquitto() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no mosquitto program: apt-get install mosquitto"))
}

fn start_broker(dir: &std::path::Path, port: u16) -> anyhow::Result<Child> {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\nuser root\n",
            dir.display()
        ),
    )?;
    let child = Command::new(mosquitto())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn stop_broker(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The persistent subscriber; returns (distinct events seen, when the last new one came).
async fn subscribe(port: u16, once: bool, until: u64) -> (u64, Instant) {
    let mut o = MqttOptions::new("drain-bench-sub", "127.0.0.1", port);
    o.set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    let mut highest = 0u64;
    let mut last = Instant::now();
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                let _ = client
                    .subscribe("hallctl/v1/bench/events", QoS::AtLeastOnce)
                    .await;
            }
            Ok(Event::Incoming(Incoming::SubAck(_))) if once => {
                let _ = client.disconnect().await;
                return (0, last);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                let id = v["msg_id"].as_u64().unwrap_or(0);
                if id > highest {
                    highest = id;
                    last = Instant::now();
                }
                if highest >= until {
                    return (highest, last);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let records: u64 = arg("--records").map_or(Ok(20_000), |s| s.parse())?;
    let base = arg("--dir").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // 1. The subscriber's session, then the outage.
    let b = start_broker(&broker_dir, port)?;
    rt.block_on(subscribe(port, true, 0));
    stop_broker(b);

    // 2. The hall writes while the broker is away.
    let ledger = Arc::new(Ledger::open(
        &dir.path().join("ledger"),
        LedgerConfig::default(),
    )?);
    let status = StatusHub::default();
    let metrics = status.outbox_metrics();
    let broker = Broker::from_config(&hallctl::config::MqttConfig {
        url: hallctl::config::BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}"))
            .map_err(anyhow::Error::msg)?,
        client_id: "hallctl-bench".into(),
        username: None,
        password_file: None,
        ca_file: None,
        keep_alive_secs: 30,
    })?;
    let publisher = rt.block_on(async {
        Publisher::start(
            &broker,
            HallRef {
                id: "bench".into(),
                name: "drain bench".into(),
            },
            ledger.clone(),
            status.clone(),
        )
    })?;
    let t = Instant::now();
    let actor = OperatorId::new("ISSUANCE");
    let mut next = 1u64;
    while next <= records {
        let batch: Vec<_> = (next..(next + 100).min(records + 1))
            .map(|j| {
                (
                    Utc::now(),
                    actor.clone(),
                    LedgerEvent::Action {
                        action: ControlAction::JobsSubmitted {
                            jobs: vec![JobId(j)],
                        },
                    },
                )
            })
            .collect();
        next += batch.len() as u64;
        ledger.append_batch(batch)?;
    }
    let head = ledger.head();
    println!(
        "outage: {head} records written in {:.2} s while the broker was down; outbox backlog {}",
        t.elapsed().as_secs_f64(),
        metrics.backlog.get()
    );

    // 3. The broker comes back.
    let up = Instant::now();
    let b = start_broker(&broker_dir, port)?;
    let sub = rt.spawn(subscribe(port, false, head));
    let deadline = Instant::now() + Duration::from_secs(110);
    while metrics.connected.get() != 1 {
        anyhow::ensure!(Instant::now() < deadline, "the publisher never reconnected");
        std::thread::sleep(Duration::from_millis(1));
    }
    let connected = Instant::now();
    while metrics.cursor.get() < i64::try_from(head)? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the outbox did not drain in time"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let drained = Instant::now();
    let (seen, last) = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), sub)
            .await
            .map_err(|_| anyhow::anyhow!("the subscriber did not get every record"))?
            .map_err(anyhow::Error::from)
    })?;
    anyhow::ensure!(seen >= head, "the subscriber saw {seen} of {head}");
    let drain = drained - connected;
    println!(
        "reconnect after the broker came back: {:.0} ms (backoff)",
        (connected - up).as_secs_f64() * 1000.0
    );
    println!(
        "drain: {head} records acknowledged in order in {:.2} s = {:.0} records/s (window {})",
        drain.as_secs_f64(),
        head as f64 / drain.as_secs_f64(),
        hallctl::mqtt::EVENT_WINDOW
    );
    println!(
        "end to end: the subscriber had all {head} {:.2} s after the connection = {:.0} records/s",
        (last - connected).as_secs_f64(),
        head as f64 / (last - connected).as_secs_f64()
    );
    rt.block_on(publisher.stop(Duration::from_secs(1)));
    stop_broker(b);
    Ok(())
}
