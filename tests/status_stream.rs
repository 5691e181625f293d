//! The line's live status: the SSE stream at `/api/v1/stream` (snapshot first, then events; a
//! lagging client resyncs from a snapshot without slowing the producer) and `/metrics`.
//! In process: the real router, auth, line actor and ledger in a temp dir, no devices.

mod common;

use std::future::IntoFuture;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::within;
use hallctl::api::app;
use hallctl::ledger::Role;
use hallctl::line::Line;
use hallctl::status::StatusHub;
use hallctl_jobs::job::{OperatorId, StationId};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Hall {
    router: Router,
    line: Line,
    supervisor: String,
    monitor: String,
    operator_off_station: String,
    _dir: tempfile::TempDir,
}

async fn hall(capacity: usize) -> Hall {
    let dir = tempfile::tempdir().expect("temp dir");
    let hall = hallctl::serve::headless(dir.path(), StatusHub::new(capacity)).expect("hall");
    let (users, line) = (hall.state.users.clone(), hall.state.line.clone());
    let console = OperatorId::new("CONSOLE");
    users
        .add(&console, "SUP-1", "supervisor", Role::Supervisor, "583920")
        .expect("supervisor");
    users
        .add(&console, "OP-1", "operator", Role::Operator, "471628")
        .expect("operator");
    let (_, monitor) = users
        .add_service(&console, "PROM", "prometheus")
        .expect("monitor");
    let supervisor = users
        .sign_in(&OperatorId::new("SUP-1"), "583920", None)
        .expect("sign in")
        .token;
    let operator_off_station = users
        .sign_in(&OperatorId::new("OP-1"), "471628", None)
        .expect("sign in")
        .token;
    let router = app(hall.state);
    Hall {
        router,
        line,
        supervisor,
        monitor,
        operator_off_station,
        _dir: dir,
    }
}

fn job(n: usize) -> serde_json::Value {
    serde_json::json!({
        "tracking_number": format!("SSE-{n:09}"),
        "doc_type": "ordinary",
        "class": "normal",
        "groups": [],
        "due": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
        "destination": "LHR-01",
        "personalization": {
            "surname": "KHAN", "given_names": "AYESHA", "nationality": "PAK",
            "date_of_birth": "1990-01-15", "sex": "female", "place_of_birth": "LAHORE",
            "issuing_state": "PAK", "document_number": format!("AB{:07}", n),
            "date_of_issue": "2026-11-01", "date_of_expiry": "2036-10-31",
            "personal_number": "", "portrait_ref": format!("img://{n}")
        }
    })
}

async fn submit(h: &Hall, jobs: std::ops::Range<usize>) {
    let body = serde_json::json!({ "jobs": jobs.map(job).collect::<Vec<_>>() });
    let req = Request::post("/api/v1/jobs")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", h.supervisor))
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = h.router.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn get(h: &Hall, uri: &str, token: Option<&str>) -> axum::response::Response {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    h.router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response")
}

/// Reads server-sent events off a response body, one at a time.
struct SseReader {
    body: Body,
    buf: String,
}

impl SseReader {
    /// The next event (name, JSON data), skipping keep-alive comments.
    async fn next(&mut self) -> (String, serde_json::Value) {
        loop {
            if let Some(event) = common::next_sse_event(&mut self.buf) {
                return event;
            }
            let frame = within("an event", self.body.frame())
                .await
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(bytes) = frame.into_data() {
                self.buf
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
            }
        }
    }
}

async fn open_stream(h: &Hall, uri: &str, token: Option<&str>) -> SseReader {
    let resp = get(h, uri, token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    SseReader {
        body: resp.into_body(),
        buf: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_the_snapshot_first_then_an_event_per_ledger_record() {
    let h = hall(1024).await;
    // EventSource cannot set headers: the token may come as a query parameter.
    let mut sse = open_stream(&h, &format!("/api/v1/stream?token={}", h.supervisor), None).await;
    let (name, snap) = sse.next().await;
    assert_eq!(name, "snapshot");
    assert_eq!(snap["resync"], false);
    assert_eq!(snap["open_jobs"], 0);
    assert_eq!(snap["stations"].as_array().map(Vec::len), Some(4));

    submit(&h, 0..3).await;
    let (name, ev) = sse.next().await;
    assert_eq!(name, "jobs_submitted");
    assert_eq!(ev["record"], "jobs_submitted");
    assert_eq!(ev["jobs"], 3);
    assert_eq!(ev["actor"], "SUP-1");
    assert!(ev["seq"].as_u64().is_some_and(|s| s > 0));
    // Ids and names only: nothing of the passport holder.
    let text = ev.to_string();
    assert!(!text.contains("KHAN") && !text.contains("AB000"), "{text}");

    // The bearer header works as well; an operator not at a station may not watch.
    let mut by_header = open_stream(&h, "/api/v1/stream", Some(&h.supervisor)).await;
    assert_eq!(by_header.next().await.1["open_jobs"], 3);
    let refused = get(&h, "/api/v1/stream", Some(&h.operator_off_station)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&h, "/api/v1/stream", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_client_resyncs_from_a_snapshot_and_never_slows_the_producer() {
    let h = hall(4).await;
    let mut slow = open_stream(&h, "/api/v1/stream", Some(&h.supervisor)).await;
    assert_eq!(slow.next().await.0, "snapshot");
    let mut live = h.line.subscribe();

    // The slow client reads nothing while the line records 20 batches (4 fit in its buffer).
    for i in 0..20 {
        submit(&h, i..i + 1).await;
    }
    // And a flood straight into the hub: a stuck subscriber must not hold the producer up (the
    // flood ends while the slow client still reads nothing; how fast it goes is a benchmark's
    // figure, not this test's).
    let hub = h.line.status().clone();
    within(
        "100,000 sends past a stuck subscriber",
        tokio::task::spawn_blocking(move || {
            for _ in 0..100_000 {
                hub.emit(hallctl::status::StatusEvent::DeviceState(
                    hallctl::status::DeviceStateEvent {
                        station: StationId::new("PRINT-01"),
                        device: None,
                        readiness: hallctl_jobs::scheduler::DeviceReadiness::Ready,
                        at: chrono::Utc::now(),
                    },
                ));
            }
        }),
    )
    .await
    .expect("the flood");
    assert!(matches!(
        live.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
    ));

    let (name, snap) = slow.next().await;
    assert_eq!(name, "snapshot");
    assert_eq!(snap["resync"], true);
    assert!(snap["missed"].as_u64().is_some_and(|m| m > 0));
    assert_eq!(snap["open_jobs"], 20);

    // After the resync the client follows the line again. (The flood above bypassed the line's
    // snapshots, so the next change may first come as a snapshot that covers it.)
    submit(&h, 100..101).await;
    let (name, ev) = slow.next().await;
    assert!(
        name == "jobs_submitted" || (name == "snapshot" && ev["open_jobs"] == 21),
        "{name} {ev}"
    );
    submit(&h, 101..102).await;
    let (name, ev) = slow.next().await;
    assert_eq!(name, "jobs_submitted");
    assert_eq!(ev["jobs"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_and_report_the_queue_depth() {
    let h = hall(1024).await;
    assert_eq!(
        get(&h, "/metrics", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&h, "/metrics", Some(&h.operator_off_station))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    submit(&h, 0..7).await;
    submit(&h, 7..12).await;
    // The snapshot is published once the actor finished the command.
    let mut watch = h.line.watch();
    within(
        "the snapshot with 12 open jobs",
        watch.wait_for(|s| s.open_jobs == 12),
    )
    .await
    .expect("line alive");

    let resp = get(&h, "/metrics", Some(&h.monitor)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = std::str::from_utf8(&body).expect("UTF-8");
    let samples = parse_exposition(text);
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
    };
    let hall = ("hall", "headless");
    assert_eq!(
        value("hallctl_queue_depth", &[hall, ("stage", "print")]),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        value("hallctl_queue_depth", &[hall, ("stage", "qc")]),
        Some(0.0)
    );
    assert_eq!(value("hallctl_open_jobs", &[hall]), Some(12.0));
    assert_eq!(
        value(
            "hallctl_ledger_records_total",
            &[hall, ("record", "jobs_submitted")]
        ),
        Some(2.0)
    );
    assert!(value("hallctl_ledger_append_seconds_count", &[hall]).is_some_and(|n| n >= 2.0));
    // Stations without a device count as their own device, ready.
    assert_eq!(
        value(
            "hallctl_device_state",
            &[
                ("station", "QC-01"),
                ("device", "QC-01"),
                ("state", "ready")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "hallctl_device_state",
            &[("station", "QC-01"), ("state", "offline")]
        ),
        Some(0.0)
    );
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses the text exposition strictly enough to catch a malformed line: every line is a
/// comment (`# HELP`, `# TYPE`, `# UNIT`, `# EOF` last) or `name{k="v",...} value`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let mut out = Vec::new();
    for line in &lines {
        if let Some(c) = line.strip_prefix("# ") {
            assert!(
                ["HELP ", "TYPE ", "UNIT ", "EOF"]
                    .iter()
                    .any(|p| c.starts_with(p)),
                "{line}"
            );
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                let labels = rest
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("k=v");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (n, labels)
            }
            None => (head, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        out.push((name.to_string(), labels, value));
    }
    out
}

/// A raw SSE client over TCP (HTTP/1.0: the body is the event stream itself, no chunking).
struct TcpSse {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl TcpSse {
    async fn open(sock: tokio::net::TcpStream, token: &str) -> TcpSse {
        use tokio::io::AsyncWriteExt;
        let mut sock = sock;
        let req = format!(
            "GET /api/v1/stream HTTP/1.0\r\nHost: test\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.expect("request");
        let mut s = TcpSse {
            reader: tokio::io::BufReader::new(sock),
        };
        let status = s.line().await;
        assert!(
            status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
            "{status}"
        );
        while !s.line().await.trim().is_empty() {}
        s
    }

    /// The next line of the stream.
    async fn line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut l = String::new();
        let n = within("a line of the stream", self.reader.read_line(&mut l))
            .await
            .expect("read");
        assert!(n > 0, "the stream ended");
        l
    }

    /// Reads up to the next event; returns its name, id and data.
    async fn event(&mut self) -> (String, Option<u64>, String) {
        let (mut name, mut id, mut data) = (String::from("message"), None, String::new());
        loop {
            let l = self.line().await;
            let l = l.trim_end();
            if l.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return (name, id, data);
            }
            if let Some(v) = l.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = l.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_up_another_and_resyncs_from_a_fresh_snapshot() {
    // A small ring: a client 64 events behind lags.
    let h = hall(64).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(axum::serve(listener, h.router.clone()).into_future());

    // The slow client: a small receive buffer; it reads its first snapshot, then nothing.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("buffer size");
    let mut slow = TcpSse::open(sock.connect(addr).await.expect("connect"), &h.supervisor).await;
    assert_eq!(slow.event().await.0, "snapshot");
    // The live client reads everything.
    let conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut live = TcpSse::open(conn, &h.supervisor).await;
    assert_eq!(live.event().await.0, "snapshot");

    // 64,000 events (about 12 MB of stream: more than the slow client's socket buffers and the
    // server's hold), in bursts the live client reads before the next one. The producer never
    // waits for the slow client, and the live client gets every event, in order, without a
    // single resync: the slow client's stall does not reach it.
    let hub = h.line.status().clone();
    let mut expected = None;
    for _ in 0..2_000 {
        for _ in 0..32 {
            hub.emit(hallctl::status::StatusEvent::DeviceState(
                hallctl::status::DeviceStateEvent {
                    station: StationId::new("PRINT-01"),
                    device: None,
                    readiness: hallctl_jobs::scheduler::DeviceReadiness::Ready,
                    at: chrono::Utc::now(),
                },
            ));
        }
        let last = hub.last_id();
        loop {
            let (name, id, _) = live.event().await;
            // The line's own events (its ticks publish snapshots, not events) may interleave;
            // a snapshot here would mean the live client lagged.
            assert_ne!(name, "snapshot", "the live client had to resync");
            let id = id.expect("every event has an id");
            if let Some(e) = expected {
                assert_eq!(id, e, "the live client got every event in order");
            }
            expected = Some(id + 1);
            if id >= last {
                break;
            }
        }
    }

    // The line's next snapshot covers the whole flood (its ticks publish one every second).
    let last = hub.last_id();
    let mut watch = h.line.watch();
    within(
        "a snapshot covering the flood",
        watch.wait_for(|s| s.events >= last),
    )
    .await
    .expect("the line runs");

    // Now the slow client reads: what its socket held is old (it may include resyncs from
    // moments it fell behind while the socket still took data); then the server finds it
    // lagged and sends a fresh snapshot, covering the flood, instead of the events it missed.
    let mut old = 0u64;
    let snap = loop {
        let (name, _, data) = slow.event().await;
        if name == "snapshot" {
            let v = serde_json::from_str::<serde_json::Value>(&data).expect("JSON");
            if v["events"].as_u64().is_some_and(|e| e >= last) {
                break v;
            }
        }
        old += 1;
        assert!(old < 100_000, "no resync after {old} events");
    };
    assert_eq!(snap["resync"], true, "{snap}");
    assert!(snap["missed"].as_u64().is_some_and(|m| m > 0), "{snap}");
    assert!(snap["stations"].is_array(), "a whole snapshot: {snap}");
    assert!(
        old < 64_000,
        "the slow client did not get every event: {old}"
    );

    // And it follows the line again from there.
    submit(&h, 0..1).await;
    let (name, _, data) = loop {
        let e = slow.event().await;
        if e.0 != "device_state" {
            break e;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&data).expect("JSON");
    assert!(
        name == "jobs_submitted" || (name == "snapshot" && v["open_jobs"] == 1),
        "{name} {v}"
    );
    server.abort();
}
