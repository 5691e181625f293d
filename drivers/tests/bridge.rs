//! The vendor bridge client against the example bridge program, as a child process and over TCP.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::Path;
use std::time::Duration;

use hallctl_drivers::DriverError;
use hallctl_drivers::bridge::{connect_bridge_tcp, spawn_bridge_process};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn example() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hallctl-example-bridge"))
}

#[tokio::test]
async fn bridge_child_process_requests_events_errors_timeouts_and_exit() {
    let (b, task) = spawn_bridge_process(example(), &[], Duration::from_millis(300)).unwrap();
    let mut events = b.subscribe();
    let hello = b.call("hello", json!({})).await.unwrap();
    assert_eq!(hello["model"], "DPM-1");

    b.call("print", json!({"job_ref": 42})).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.event.as_str(), &ev.data["job_ref"]),
        ("done", &json!(42))
    );

    b.call("jam", json!({})).await.unwrap();
    let err = b.call("print", json!({"job_ref": 43})).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Refused(m) if m.starts_with("jam")),
        "{err}"
    );

    // A stray reply and a non-JSON line are counted and dropped; the real reply still arrives.
    assert_eq!(b.call("echo_late", json!({})).await.unwrap()["ok"], true);
    assert_eq!(b.call("garbage", json!({})).await.unwrap()["ok"], true);
    let err = b.call("sleep", json!({"ms": 600})).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err}");
    // The late answer to the timed-out call must not answer the next one.
    assert_eq!(b.call("status", json!({})).await.unwrap()["printed"], 1);
    let c = b.counters();
    assert!(
        c.late_replies >= 2 && c.framing_errors == 1 && c.timeouts == 1,
        "{c:?}"
    );

    // The bridge exits: pending and later calls fail, nothing hangs.
    let _ = b.call("exit", json!({})).await;
    let err = b.call("status", json!({})).await.unwrap_err();
    assert!(
        matches!(err, DriverError::TaskStopped | DriverError::LinkClosed),
        "{err}"
    );
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("bridge task hung")
        .unwrap();
}

#[tokio::test]
async fn bridge_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // A one-request bridge server standing in for a vendor service.
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let req: serde_json::Value = serde_json::from_str(&line).unwrap();
        let reply = json!({"id": req["id"], "result": {"method": req["method"]}});
        w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
        let _ = lines.next_line().await;
    });
    let (b, task) = connect_bridge_tcp(&addr, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        b.call("status", json!({})).await.unwrap()["method"],
        "status"
    );
    drop(b);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    server.await.unwrap();
}
