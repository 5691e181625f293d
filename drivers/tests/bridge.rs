//! The vendor bridge client against the example bridge program, as a child process and over TCP.
//!
//! A bridge that is expected to answer gets a timeout of seconds; the timeouts under test are met
//! by answers that come seconds after them, or never. Every wait is for an event, bounded by a
//! generous ceiling (`common`).

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::path::Path;
use std::time::Duration;

use hallctl_drivers::DriverError;
use hallctl_drivers::bridge::{connect_bridge_tcp, spawn_bridge_process};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use common::{GENEROUS, wait_until, within};

fn example() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hallctl-example-bridge"))
}

#[tokio::test]
async fn bridge_child_process_requests_events_errors_timeouts_and_exit() {
    let (b, task) = spawn_bridge_process(example(), &[], GENEROUS).unwrap();
    let mut events = b.subscribe();
    let hello = b.call("hello", json!({})).await.unwrap();
    assert_eq!(hello["model"], "DPM-1");

    b.call("print", json!({"job_ref": 42})).await.unwrap();
    let ev = within("the done event", events.recv()).await.unwrap();
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
    // An answer 6 s late, three times the 2 s timeout: the call times out, and the answer, when it
    // comes, is counted and dropped (the second late reply after echo_late's stray one).
    let err = b.call("sleep", json!({"ms": 6000})).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err}");
    wait_until("the late answer to come in", || {
        b.counters().late_replies >= 2
    })
    .await;
    // It answered nothing: the next call gets its own answer.
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
    within("the bridge task to end", task).await.unwrap();
}

/// The late answer to a call that timed out arrives while the next call waits for its own: it
/// must not be taken for it. (The bridge answers the first request only once the second has come,
/// so the first is answered late whatever the machine's speed.)
#[tokio::test]
async fn a_late_answer_does_not_answer_the_call_in_flight() {
    let (b, task) = sh(
        r#"read line; read line; printf '{"id":1,"result":{"late":true}}\n{"id":2,"result":{"ok":2}}\n'; sleep 30"#,
        GENEROUS,
    );
    let err = b.call("status", json!({})).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err}");
    assert_eq!(b.call("status", json!({})).await.unwrap()["ok"], 2);
    let c = b.counters();
    assert_eq!((c.timeouts, c.late_replies), (1, 1), "{c:?}");
    drop(b);
    within("the bridge task to end", task).await.unwrap();
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
    let (b, task) = connect_bridge_tcp(&addr, GENEROUS).await.unwrap();
    assert_eq!(
        b.call("status", json!({})).await.unwrap()["method"],
        "status"
    );
    drop(b);
    within("the bridge task to end", task).await.unwrap();
    within("the server to end", server).await.unwrap();
}

fn sh(
    script: &str,
    timeout: Duration,
) -> (
    hallctl_drivers::bridge::BridgeHandle,
    tokio::task::JoinHandle<()>,
) {
    spawn_bridge_process(Path::new("/bin/sh"), &["-c", script], timeout).unwrap()
}

/// A bridge that never reads its stdin: once the pipe is full, writes block. Calls must still time
/// out, and dropping the handles must still end the task.
#[tokio::test]
async fn a_bridge_that_stops_reading_stdin_never_hangs_the_task() {
    let (b, task) = sh("exec sleep 30", Duration::from_millis(200));
    // Far more than a pipe buffer (64 KiB on Linux): the write of this request blocks.
    let big = "x".repeat(1 << 20);
    for _ in 0..3 {
        let res = within(
            "a call behind a blocked write to end",
            b.call("print", json!({ "name": big })),
        )
        .await;
        assert!(matches!(res, Err(DriverError::Timeout { .. })), "{res:?}");
    }
    drop(b);
    within(
        "the bridge task to end after its handles were dropped",
        task,
    )
    .await
    .unwrap();
}

/// A line that is not UTF-8 is a framing error and skipped; the link stays up.
#[tokio::test]
async fn an_invalid_utf8_line_is_a_framing_error_not_the_end_of_the_link() {
    let (b, task) = sh(
        r#"read line; printf '\377\376 bad\n'; printf '{"id":1,"result":{"ok":true}}\n'; read line; printf '{"id":2,"result":{"ok":2}}\n'; sleep 30"#,
        GENEROUS,
    );
    assert_eq!(b.call("status", json!({})).await.unwrap()["ok"], true);
    assert_eq!(b.call("status", json!({})).await.unwrap()["ok"], 2);
    assert_eq!(b.counters().framing_errors, 1, "{:?}", b.counters());
    drop(b);
    within("the bridge task to end", task).await.unwrap();
}

/// A line longer than MAX_LINE, even one without a newline for a long while, is one framing error
/// and skipped.
#[tokio::test]
async fn an_oversize_line_is_a_framing_error_and_skipped() {
    let script = r#"read line; head -c 200000 /dev/zero | tr '\0' 'a'; printf '\n{"id":1,"result":{"ok":true}}\n'; sleep 30"#;
    let (b, task) = sh(script, GENEROUS);
    assert_eq!(b.call("status", json!({})).await.unwrap()["ok"], true);
    assert_eq!(b.counters().framing_errors, 1, "{:?}", b.counters());
    drop(b);
    within("the bridge task to end", task).await.unwrap();
}

#[tokio::test]
async fn request_and_event_debug_hide_params() {
    use hallctl_drivers::bridge::{BridgeEvent, BridgeRequest};
    let req = BridgeRequest {
        id: 7,
        method: "print".into(),
        params: json!({"holder": "Jane Roe"}),
    };
    let ev = BridgeEvent {
        event: "done".into(),
        data: json!({"holder": "Jane Roe"}),
    };
    for s in [format!("{req:?}"), format!("{ev:?}")] {
        assert!(!s.contains("Jane"), "{s}");
    }
    assert!(format!("{req:?}").contains("print"));
}
