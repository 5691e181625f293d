//! MQTT for central monitoring (issue 6, "Tests"), against a real Mosquitto broker: every test
//! starts its own `mosquitto` on a free loopback port with a temporary configuration, and the
//! halls are the real `hallctl serve` binary (see `common`). A subscriber written with rumqttc
//! reads what the halls publish.
//!
//! `#[ignore]`d in a plain `cargo test` (they need the `mosquitto` program): `scripts/test-all`
//! installs it and runs them with `--ignored`. Every wait is a poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use broker::*;
use common::*;
use hallctl::mqtt::{DeviceMessage, EventMessage};
use serde_json::{Value, json};

fn people(ids: &[&str]) -> Vec<(&'static str, &'static str, &'static str)> {
    PEOPLE
        .iter()
        .filter(|p| ids.contains(&p.0))
        .copied()
        .collect()
}

/// The ledger's head, as the auditor sees it.
fn head(hall: &Hall, auditor: &str) -> u64 {
    records(hall.client, auditor)
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// A Prometheus sample's value from the hall's `/metrics`.
fn metric(hall: &Hall, name: &str) -> Option<f64> {
    let r = hall.client.get_at("/metrics", Some(&hall.monitor_token));
    assert_eq!(r.status, 200, "metrics: {}", r.text);
    r.text
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn submit_jobs(hall: &Hall, sup: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let req = job_request(&format!("{prefix}-{i}"), "Eriksson", &format!("L{i:07}"));
        submit(hall.client, sup, &req);
    }
}

/// Waits until the subscriber has every event 1..=`head` of `hall`; returns them.
#[track_caller]
fn wait_events(sub: &Subscriber, hall: &str, head: u64) -> Vec<(EventMessage, Vec<u8>)> {
    wait_for(60, &format!("events 1..={head} of {hall}"), || {
        let ev = sub.events(hall);
        let mut ids: Vec<u64> = ev.iter().map(|(m, _)| m.msg_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let all = ids == (1..=head).collect::<Vec<_>>();
        (
            all.then_some(ev),
            format!("{} distinct of {head}", ids.len()),
        )
    })
}

// ---- (a) state and events arrive and parse -------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn state_devices_and_every_ledger_record_arrive_and_parse() {
    let broker = Broker::start();
    let sub = Subscriber::start(&broker, "test-a", "hallctl/v1/mq-a/#", false);
    let hall = spawn_hall_as(0.02, &hall_toml("mq-a", &broker), &people(&["S1", "AU1"]));
    let sup = hall.sign_in("S1", None);
    submit_jobs(&hall, &sup, "TRK-MQ-A", 3);
    let aud = hall.sign_in("AU1", None);
    let head = head(&hall, &aud);
    assert!(
        head >= 5,
        "accounts, sign-ins and submissions were recorded: {head}"
    );

    // Every record once at least, each message naming itself by its seq, for this hall.
    let events = wait_events(&sub, "mq-a", head);
    for (m, _) in &events {
        assert_eq!(m.msg_id, m.record.seq);
        assert_eq!(m.hall, "mq-a");
    }
    let names: Vec<&str> = events
        .iter()
        .map(|(m, _)| m.record.record.as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "jobs_submitted").count(),
        3,
        "{names:?}"
    );
    let submitted = events
        .iter()
        .find(|(m, _)| m.record.record == "jobs_submitted")
        .expect("a submission");
    assert_eq!(submitted.0.record.jobs, 1);
    assert_eq!(
        submitted.0.detail.as_ref().expect("an action's detail")["kind"],
        "jobs_submitted"
    );
    // Nothing of the passport holder: no name, no document number in any event.
    for (_, raw) in &events {
        let text = String::from_utf8_lossy(raw);
        assert!(
            !text.contains("Eriksson") && !text.contains("L000000"),
            "{text}"
        );
    }

    // The retained state: the line snapshot, with the outbox caught up.
    let state = wait_for(30, "a state with the outbox caught up", || {
        let s = sub.last("hallctl/v1/mq-a/state");
        let v: Option<Value> = s
            .as_ref()
            .map(|g| serde_json::from_slice(&g.payload).unwrap());
        let ok = v
            .as_ref()
            .is_some_and(|v| v["outbox"]["cursor"].as_u64() == Some(head));
        (ok.then(|| v.clone().unwrap()), format!("{v:?}"))
    });
    assert_eq!(state["hall"], "mq-a");
    assert_eq!(state["name"], "Service API test hall");
    assert_eq!(state["queued"].as_array().expect("queued").len(), 4);
    assert_eq!(state["open_jobs"], 3);
    assert_eq!(state["outbox"]["backlog"], 0);
    assert_eq!(state["stations"].as_array().expect("stations").len(), 8);

    // A retained message per station, and `online`.
    for st in [
        "VAULT",
        "PRINT-01",
        "PRINT-02",
        "LAM-01",
        "LAM-02",
        "QC-01",
        "QC-02",
        "DISPATCH-01",
    ] {
        let g = sub
            .last(&format!("hallctl/v1/mq-a/devices/{st}"))
            .unwrap_or_else(|| panic!("device {st}"));
        let d: DeviceMessage = serde_json::from_slice(&g.payload).expect("a device message");
        assert_eq!((d.hall.as_str(), d.station.as_str()), ("mq-a", st));
    }
    assert_eq!(
        sub.last("hallctl/v1/mq-a/status")
            .map(|g| g.text())
            .as_deref(),
        Some("online")
    );
    // The outbox's figures at /metrics.
    assert_eq!(metric(&hall, "hallctl_mqtt_outbox_backlog"), Some(0.0));
    assert_eq!(
        metric(&hall, "hallctl_mqtt_outbox_cursor"),
        Some(head as f64)
    );
    assert_eq!(metric(&hall, "hallctl_mqtt_connected"), Some(1.0));

    // An alert (a printer jams) is a ledger record: on `events`, and again on `alerts`; its
    // device goes `faulted`.
    let mut hall = hall;
    hall.inject("jam PR-01");
    let alert = wait_for(30, "an alert on the alerts topic", || {
        let got = sub.last("hallctl/v1/mq-a/alerts");
        let m: Option<EventMessage> = got.map(|g| serde_json::from_slice(&g.payload).unwrap());
        (
            m.clone().filter(|m| m.record.record == "alert_raised"),
            format!("{m:?}"),
        )
    });
    let detail = alert.detail.as_ref().expect("the alert's detail");
    assert_eq!(
        (detail["alert_kind"].as_str(), detail["subject"].as_str()),
        (Some("device_fault"), Some("PR-01")),
        "{detail}"
    );
    assert!(
        sub.events("mq-a")
            .iter()
            .any(|(m, _)| m.msg_id == alert.msg_id),
        "the alert is on events too"
    );
    wait_for(30, "PRINT-01 faulted", || {
        let d = sub.last("hallctl/v1/mq-a/devices/PRINT-01");
        let r: Option<DeviceMessage> = d.map(|g| serde_json::from_slice(&g.payload).unwrap());
        let ok = r
            .as_ref()
            .is_some_and(|r| r.readiness == hallctl_jobs::scheduler::DeviceReadiness::Faulted);
        (ok.then_some(()), format!("{r:?}"))
    });

    // A late subscriber gets the retained state, devices and status at once.
    let late = Subscriber::start(&broker, "test-a-late", "hallctl/v1/mq-a/#", false);
    wait_for(60, "retained messages for a late subscriber", || {
        let all = late.all();
        let retained: Vec<&str> = all
            .iter()
            .filter(|g| g.retain)
            .map(|g| g.topic.as_str())
            .collect();
        let ok = retained.contains(&"hallctl/v1/mq-a/state")
            && retained.contains(&"hallctl/v1/mq-a/status")
            && retained.iter().filter(|t| t.contains("/devices/")).count() == 8;
        (ok.then_some(()), format!("{retained:?}"))
    });
}

// ---- (b) the last will ---------------------------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn the_last_will_says_offline_when_the_controller_is_killed() {
    let broker = Broker::start();
    let sub = Subscriber::start(&broker, "test-b", "hallctl/v1/mq-b/status", false);
    let mut hall = spawn_hall_as(0.02, &hall_toml("mq-b", &broker), &[]);
    let status = |sub: &Subscriber| sub.all().iter().map(Got::text).collect::<Vec<_>>();
    wait_for(30, "online", || {
        let s = status(&sub);
        (
            s.last().is_some_and(|l| l == "online").then_some(()),
            format!("{s:?}"),
        )
    });
    let before = sub.all().len();
    // SIGKILL: the controller runs no code; only the broker can say it is gone.
    hall.kill9();
    wait_for(30, "the last will", || {
        let s = status(&sub);
        let after = &s[before.min(s.len())..];
        (
            after.iter().any(|m| m == "offline").then_some(()),
            format!("{s:?}"),
        )
    });
    // Retained: whoever looks later sees it too.
    let late = Subscriber::start(&broker, "test-b-late", "hallctl/v1/mq-b/status", false);
    wait_for(60, "the retained offline", || {
        let s = late.all();
        let ok = s.iter().any(|g| g.retain && g.text() == "offline");
        (
            ok.then_some(()),
            format!("{:?}", s.iter().map(Got::text).collect::<Vec<_>>()),
        )
    });
}

// ---- (c) an outage -------------------------------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn after_a_broker_outage_the_outbox_drains_in_order_and_loses_nothing() {
    let mut broker = Broker::start();
    // A persistent session: the broker keeps it, and queues for it, across its own restart.
    let sub = Subscriber::start(&broker, "test-c", "hallctl/v1/mq-c/events", true);
    let hall = spawn_hall_as(0.02, &hall_toml("mq-c", &broker), &people(&["S1", "AU1"]));
    let sup = hall.sign_in("S1", None);
    let aud = hall.sign_in("AU1", None);
    submit_jobs(&hall, &sup, "TRK-MQ-C1", 5);
    let before = head(&hall, &aud);
    wait_events(&sub, "mq-c", before);

    // The broker goes away in the middle of a burst of records (some of them in flight, sent
    // and not yet acknowledged); the hall keeps working and recording.
    let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let burst = {
        let (client, sup, submitted) = (hall.client, sup.clone(), submitted.clone());
        std::thread::spawn(move || {
            for i in 0..60 {
                let req = job_request(&format!("TRK-MQ-C2-{i}"), "Eriksson", &format!("L{i:07}"));
                submit(client, &sup, &req);
                submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    wait_for(30, "the burst under way", || {
        let n = submitted.load(std::sync::atomic::Ordering::SeqCst);
        ((n >= 15).then_some(()), format!("{n} submitted"))
    });
    broker.stop();
    burst.join().expect("the burst");
    for _ in 0..5 {
        hall.sign_in("S1", None);
    }
    let during = head(&hall, &aud);
    assert!(
        during >= before + 65,
        "records were written during the outage"
    );
    wait_for(30, "the outbox to hold the outage's records", || {
        let backlog = metric(&hall, "hallctl_mqtt_outbox_backlog");
        let connected = metric(&hall, "hallctl_mqtt_connected");
        let ok = connected == Some(0.0) && backlog.is_some_and(|b| b >= 5.0);
        (
            ok.then_some(()),
            format!("backlog {backlog:?}, connected {connected:?}"),
        )
    });

    // Back: the outbox drains from its cursor.
    broker.restart();
    let events = wait_events(&sub, "mq-c", during);
    wait_for(30, "the outbox drained", || {
        let b = metric(&hall, "hallctl_mqtt_outbox_backlog");
        (
            matches!(b, Some(x) if x == 0.0).then_some(()),
            format!("backlog {b:?}"),
        )
    });

    // A crash that lost the last cursor saves (they are made every 250 ms, not per record):
    // the controller, killed, restarts with its cursor where it was before the outage and
    // sends those records again.
    let mut hall = hall;
    hall.kill9();
    {
        let ledger = hallctl::ledger::Ledger::open(
            &hall.dir.path().join("data").join("ledger"),
            hallctl::ledger::LedgerConfig::default(),
        )
        .expect("the hall's ledger");
        hallctl::mqtt::Cursor {
            events: before,
            checkpoints: 0,
        }
        .save(&ledger)
        .expect("rewind the cursor");
    }
    hall.restart();
    let outage = during - before;
    let resent = usize::try_from(outage).unwrap();
    wait_for(60, "the records after the rewound cursor again", || {
        let n = sub.events("mq-c").len();
        (
            (n >= events.len() + resent).then_some(()),
            format!("{n} messages"),
        )
    });
    let aud = hall.sign_in("AU1", None);
    let during = head(&hall, &aud);
    let events = wait_events(&sub, "mq-c", during);

    // No loss, and every duplicate is the same message under the same id.
    let mut by_id: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut duplicates = 0;
    for (m, raw) in &events {
        assert_eq!(m.msg_id, m.record.seq);
        match by_id.get(&m.msg_id) {
            Some(first) => {
                duplicates += 1;
                assert_eq!(
                    first, raw,
                    "a duplicate of {} is the same message",
                    m.msg_id
                );
            }
            None => {
                by_id.insert(m.msg_id, raw.clone());
            }
        }
    }
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        (1..=during).collect::<Vec<_>>()
    );
    // In order: a consumer that drops every id not above the highest it has seen loses nothing.
    let mut highest = 0;
    let mut kept = Vec::new();
    for (m, _) in &events {
        if m.msg_id > highest {
            highest = m.msg_id;
            kept.push(m.msg_id);
        }
    }
    assert_eq!(
        kept,
        (1..=during).collect::<Vec<_>>(),
        "in order, without a gap"
    );
    assert!(
        duplicates >= resent,
        "the resent records came twice: {duplicates}"
    );
    eprintln!(
        "{} events, {duplicates} duplicates, {outage} records from the burst on",
        events.len()
    );
}

// ---- (d) the central view ------------------------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn central_shows_two_halls_publishing_at_once() {
    let broker = Broker::start();
    let central = start_central(&broker);
    let one = spawn_hall_as(0.02, &hall_toml("mq-d1", &broker), &people(&["S1"]));
    let mut two = spawn_hall_as(0.02, &hall_toml("mq-d2", &broker), &people(&["S1"]));
    let sup = one.sign_in("S1", None);
    submit_jobs(&one, &sup, "TRK-MQ-D", 2);

    let halls = |c: &Central| -> Value {
        let r = c.client.get_at("/api/halls", None);
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    };
    let hall_of = |v: &Value, id: &str| -> Option<Value> {
        v["halls"]
            .as_array()?
            .iter()
            .find(|h| h["hall"] == id)
            .cloned()
    };
    let v = wait_for(60, "both halls online in central", || {
        let v = halls(&central);
        let ok = ["mq-d1", "mq-d2"].iter().all(|id| {
            hall_of(&v, id).is_some_and(|h| {
                h["status"] == "online" && h["devices_total"] == 8 && h["backlog"].is_u64()
            })
        }) && hall_of(&v, "mq-d1").is_some_and(|h| h["open_jobs"] == 2);
        (ok.then(|| v.clone()), v.to_string())
    });
    assert_eq!(v["connected"], true);
    let h1 = hall_of(&v, "mq-d1").unwrap();
    assert_eq!(h1["name"], "Service API test hall");
    assert!(h1["events"].as_u64().unwrap() >= 3, "{h1}");
    // The halls' own figures: throughput and OEE from their snapshots; on time is unknown, not
    // zero, while nothing was dispatched.
    assert_eq!(h1["throughput_source"], "state", "{h1}");
    assert!(h1["oee_pct"].is_number(), "{h1}");
    assert_eq!(h1["on_time_pct"], json!(null), "{h1}");
    assert!(h1["open_alerts"].is_u64(), "{h1}");

    // The page is served, and it reads /api/halls.
    let page = central.client.get_at("/", None);
    assert_eq!(page.status, 200);
    assert!(page.text.contains("National overview") && page.text.contains("api/halls"));

    // One hall vanishes: central shows it offline (its last will), the other still online.
    two.kill9();
    wait_for(30, "mq-d2 offline in central", || {
        let v = halls(&central);
        let ok = hall_of(&v, "mq-d2").is_some_and(|h| h["status"] == "offline")
            && hall_of(&v, "mq-d1").is_some_and(|h| h["status"] == "online");
        (ok.then_some(()), v.to_string())
    });
    drop(one);
}

// ---- TLS and an account ---------------------------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn over_tls_with_an_account_the_hall_connects_and_a_wrong_password_is_refused() {
    let broker = Broker::start_tls();
    let toml = |id: &str, password: &str| {
        let dir = broker.dir.path();
        let pw = dir.join(format!("{id}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        HALL_TOML.replacen("id = \"svc-test\"", &format!("id = \"{id}\""), 1)
            + &format!(
                "\n[mqtt]\nurl = \"mqtts://127.0.0.1:{}\"\nusername = \"hall-t\"\n\
                 password_file = \"{}\"\nca_file = \"{}\"\nkeep_alive_secs = 5\n",
                broker.port,
                pw.display(),
                dir.join("ca.pem").display()
            )
    };
    let good = spawn_hall_as(0.02, &toml("mq-t1", "s3cret-Pass"), &people(&["AU1"]));
    let aud = good.sign_in("AU1", None);
    let good_head = head(&good, &aud);
    wait_for(30, "the hall connected over TLS and drained", || {
        let (c, cur) = (
            metric(&good, "hallctl_mqtt_connected"),
            metric(&good, "hallctl_mqtt_outbox_cursor"),
        );
        let ok = c == Some(1.0) && cur.is_some_and(|x| x >= good_head as f64);
        (ok.then_some(()), format!("connected {c:?}, cursor {cur:?}"))
    });

    // The wrong password: refused again and again, and the records wait.
    let bad = spawn_hall_as(0.02, &toml("mq-t2", "Wr0ng-Pa55"), &people(&["AU1"]));
    let aud = bad.sign_in("AU1", None);
    let bad_head = head(&bad, &aud);
    wait_for(30, "refusals", || {
        let d = metric(&bad, "hallctl_mqtt_disconnects_total");
        (d.is_some_and(|d| d >= 2.0).then_some(()), format!("{d:?}"))
    });
    assert_eq!(metric(&bad, "hallctl_mqtt_connected"), Some(0.0));
    assert_eq!(
        metric(&bad, "hallctl_mqtt_outbox_backlog"),
        Some(bad_head as f64)
    );
    let log = std::fs::read_to_string(bad.log()).unwrap_or_default();
    assert!(!log.contains("Wr0ng-Pa55"), "no password in the log");
}
