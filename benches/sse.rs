//! SSE fan-out under load: `cargo bench --bench sse -- --clients 200`.
//!
//! An in-process controller (the real API router, auth, line actor and ledger in a temporary
//! directory on this disk; no devices) serves `/api/v1/stream` on a real local listener. N
//! clients connect over TCP (plain HTTP/1.0, so the body is the raw event stream) and read
//! every event. Events are produced by submitting jobs one at a time through the API, each one
//! durable ledger record (`jobs_submitted`). Each client takes the producer's timestamp from the
//! event (`at`, the record's time, taken before the ledger append: the figure includes the
//! fsync) and the time it parsed the event; reported: p50, p99 and max of that delay over every
//! delivery, and whether every client got every event.
//!
//! Options: `--clients N` (default 200), `--events N` (default 500), `--rate R` (events per
//! second; default 0: as fast as the ledger acknowledges them), `--dir D` (where the temporary
//! data directory goes; default the system temp dir).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use hallctl::api::app;
use hallctl::ledger::Role;
use hallctl::status::StatusHub;
use hallctl_jobs::job::OperatorId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn job(n: usize) -> serde_json::Value {
    let class = ["normal", "urgent", "fast_track"][n % 3];
    serde_json::json!({
        "tracking_number": format!("SSE-{n:09}"),
        "doc_type": "ordinary",
        "class": class,
        "groups": [],
        "due": (Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
        "destination": "LHR-01",
        "personalization": {
            "surname": "KHAN", "given_names": "AYESHA", "nationality": "PAK",
            "date_of_birth": "1990-01-15", "sex": "female", "place_of_birth": "LAHORE",
            "issuing_state": "PAK", "document_number": format!("AB{:07}", n % 10_000_000),
            "date_of_issue": "2026-11-01", "date_of_expiry": "2036-10-31",
            "personal_number": "", "portrait_ref": format!("img://{n}")
        }
    })
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Delay of each `jobs_submitted` event, µs.
    delays: Vec<u64>,
    snapshots: usize,
}

/// One SSE client: connects, reads until the server closes, records every event's delay.
async fn client(addr: SocketAddr, token: String, ready: Arc<tokio::sync::Barrier>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await else {
        ready.wait().await;
        return seen;
    };
    let req = format!(
        "GET /api/v1/stream HTTP/1.0\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if sock.write_all(req.as_bytes()).await.is_err() {
        ready.wait().await;
        return seen;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 16 << 10];
    let mut headers_done = false;
    let mut signalled = false;
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Utc::now();
        buf.extend_from_slice(&chunk[..n]);
        if !headers_done {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                continue;
            };
            buf.drain(..end + 4);
            headers_done = true;
        }
        while let Some(end) = find(&buf, b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut name = "";
            let mut data = "";
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = v.trim_start();
                }
            }
            match name {
                "snapshot" => {
                    seen.snapshots += 1;
                    if !signalled {
                        signalled = true;
                        ready.wait().await;
                    }
                }
                "jobs_submitted" => {
                    // Only the timestamp is read: the clients share the machine with the server.
                    let at = data
                        .split_once("\"at\":\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .and_then(|(at, _)| at.parse::<DateTime<Utc>>().ok());
                    if let Some(at) = at {
                        let d = (now - at).num_microseconds().unwrap_or(i64::MAX);
                        seen.delays.push(u64::try_from(d).unwrap_or(0));
                    }
                }
                _ => {}
            }
        }
    }
    if !signalled {
        ready.wait().await;
    }
    seen
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e3
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let clients: usize = arg("--clients").map_or(Ok(200), |s| s.parse())?;
    let events: usize = arg("--events").map_or(Ok(500), |s| s.parse())?;
    let rate: f64 = arg("--rate").map_or(Ok(0.0), |s| s.parse())?;
    let base = arg("--dir").map_or_else(std::env::temp_dir, Into::into);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir_in(&base)?;
        let hall = hallctl::serve::headless(dir.path(), StatusHub::default())?;
        let (users, line) = (hall.state.users.clone(), hall.state.line.clone());
        let console = OperatorId::new("CONSOLE");
        users.add(&console, "ISSUANCE", "issuance system", Role::Supervisor, "583920")?;
        let token = users
            .sign_in(&OperatorId::new("ISSUANCE"), "583920", None)?
            .token;
        let (_, monitor) = users.add_service(&console, "WALL", "monitoring wall")?;
        let router = app(hall.state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(axum::serve(listener, router.clone()).into_future());

        let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(addr, monitor.clone(), ready.clone())))
            .collect();
        ready.wait().await;
        println!(
            "{clients} SSE clients connected to http://{addr}/api/v1/stream; {events} events (one job submitted per request, durable), rate {}",
            if rate > 0.0 { format!("{rate}/s") } else { "unpaced".into() }
        );

        let t0 = Instant::now();
        let pace = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        for n in 0..events {
            if let Some(p) = pace {
                let due = t0 + p.mul_f64(n as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            let body = serde_json::json!({ "jobs": [job(n)] });
            let req = Request::post("/api/v1/jobs")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(serde_json::to_vec(&body)?))?;
            let resp = router.clone().oneshot(req).await?;
            anyhow::ensure!(resp.status() == 200, "submission refused: {}", resp.status());
        }
        let produced = t0.elapsed();
        // Let the last events reach every client, then end the streams.
        tokio::time::sleep(Duration::from_millis(500)).await;
        line.status().close();
        let mut all = Vec::with_capacity(clients * events);
        let (mut complete, mut resyncs) = (0usize, 0usize);
        for t in tasks {
            let seen = tokio::time::timeout(Duration::from_secs(30), t).await??;
            if seen.delays.len() == events {
                complete += 1;
            }
            resyncs += seen.snapshots.saturating_sub(1);
            all.extend(seen.delays);
        }
        server.abort();
        all.sort_unstable();
        println!(
            "produced {events} events in {:.2} s ({:.0}/s); {} deliveries; {complete}/{clients} clients got every event; {resyncs} resyncs",
            produced.as_secs_f64(),
            events as f64 / produced.as_secs_f64(),
            all.len()
        );
        println!(
            "delivery delay (record time -> parsed by the client), ms: p50 {:.2}  p99 {:.2}  max {:.2}",
            pct(&all, 0.50),
            pct(&all, 0.99),
            all.last().map_or(f64::NAN, |m| *m as f64 / 1e3)
        );
        anyhow::Ok(())
    })
}
