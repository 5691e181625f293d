//! Batch intake through the whole HTTP stack, durable: `cargo bench --bench intake`.
//!
//! An in-process controller (the real API router, auth, line actor and ledger in a temporary
//! directory on this disk; no devices, no operators, so nothing is assigned) receives batches of
//! valid jobs as JSON with a supervisor's bearer token. Each batch is acknowledged only after the
//! ledger's fsync covered its record and the jobs' state, as in production. Reported: jobs/s per
//! batch size, and one-job submissions for comparison.
//!
//! Options: `--jobs N` (per batch size, default 20,000), `--dir D` (where the temporary data
//! directory goes; default the system temp dir).

use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use hallctl::api::app;
use hallctl::ledger::Role;
use hallctl::status::StatusHub;
use hallctl_jobs::job::OperatorId;
use tower::ServiceExt;

fn job(n: usize) -> serde_json::Value {
    let class = ["normal", "urgent", "fast_track"][n % 3];
    serde_json::json!({
        "tracking_number": format!("BENCH-{n:09}"),
        "doc_type": "ordinary",
        "class": class,
        "groups": [],
        "due": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let per_size: usize = arg("--jobs").map_or(Ok(20_000), |s| s.parse())?;
    let base = arg("--dir").map_or_else(std::env::temp_dir, Into::into);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir_in(&base)?;
        let hall = hallctl::serve::headless(dir.path(), StatusHub::default())?;
        let (users, ledger, line, thread) = (
            hall.state.users.clone(),
            hall.state.ledger.clone(),
            hall.state.line.clone(),
            hall.line_thread,
        );
        users.add(
            &OperatorId::new("CONSOLE"),
            "ISSUANCE",
            "issuance system",
            Role::Supervisor,
            "583920",
        )?;
        let token = users
            .sign_in(&OperatorId::new("ISSUANCE"), "583920", None)?
            .token;
        let router = app(hall.state);
        println!(
            "durable batch intake through the HTTP API (JSON, auth, validation, MRZ, ledger fsync)"
        );
        println!(
            "{:>10} {:>9} {:>10} {:>12} {:>14}",
            "batch", "batches", "jobs", "jobs/s", "p99 batch ms"
        );
        let mut next = 0usize;
        for size in [1usize, 100, 500, 1000, 2000] {
            let jobs_total = if size == 1 {
                per_size.min(2_000)
            } else {
                per_size
            };
            let batches = jobs_total.div_ceil(size);
            let mut lat = Vec::with_capacity(batches);
            let t0 = Instant::now();
            for _ in 0..batches {
                let body =
                    serde_json::json!({ "jobs": (next..next + size).map(job).collect::<Vec<_>>() });
                next += size;
                let req = Request::post("/api/v1/jobs")
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::from(serde_json::to_vec(&body)?))?;
                let t = Instant::now();
                let resp = router.clone().oneshot(req).await?;
                anyhow::ensure!(resp.status() == 200, "batch refused: {}", resp.status());
                lat.push(t.elapsed());
            }
            let secs = t0.elapsed().as_secs_f64();
            lat.sort();
            let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
            println!(
                "{size:>10} {batches:>9} {:>10} {:>12.0} {:>14.1}",
                batches * size,
                (batches * size) as f64 / secs,
                p99.as_secs_f64() * 1e3
            );
        }
        let (written, syncs) = ledger.durability();
        println!(
            "ledger: {} records, {written} durable, {syncs} fsyncs",
            ledger.head()
        );
        line.stop().await;
        drop(line);
        drop(router);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        Ok(())
    })
}
