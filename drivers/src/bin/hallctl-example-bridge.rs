//! An example vendor bridge: the program a vendor would write around its closed SDK, speaking
//! hallctl's JSON-lines bridge protocol on stdin/stdout (see `docs/drivers.md`).
//!
//! Its "SDK" is a toy desktop personalization machine. Methods: `hello` (device identity),
//! `status`, `print` (`{"job_ref": n}`: replies at once, then emits a `done` event), `jam` (a
//! test hook that makes the next print fail with the error code `jam`), `echo_late` (replies
//! with an id nobody asked for, then normally: lets the tests check stray replies are dropped),
//! `garbage` (writes a non-JSON line first), `sleep` (`{"ms": n}`, replies late), `exit`.
#![deny(missing_docs)]

use std::io::{BufRead, Write};

use serde_json::{Value, json};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    let mut jam_next = false;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(req) = serde_json::from_str::<Value>(&line) else {
            eprintln!("example bridge: unreadable request");
            continue;
        };
        let id = req["id"].as_u64().unwrap_or(0);
        let method = req["method"].as_str().unwrap_or("");
        let mut lines = Vec::new();
        match method {
            "hello" => lines.push(
                json!({"id": id, "result": {"vendor": "Example", "model": "DPM-1", "protocol": 1}}),
            ),
            "status" => {
                lines.push(json!({"id": id, "result": {"state": "idle", "printed": printed}}))
            }
            "print" => {
                let job_ref = req["params"]["job_ref"].as_u64().unwrap_or(0);
                if jam_next {
                    jam_next = false;
                    lines.push(json!({"id": id, "error": {"code": "jam", "message": "card jammed at the turnover"}}));
                    lines.push(
                        json!({"event": "fault", "data": {"code": "jam", "job_ref": job_ref}}),
                    );
                } else {
                    printed += 1;
                    lines.push(json!({"id": id, "result": {"accepted": true}}));
                    lines.push(json!({"event": "done", "data": {"job_ref": job_ref, "booklet_serial": format!("BK-{:07}", 9_100_000 + printed)}}));
                }
            }
            "jam" => {
                jam_next = true;
                lines.push(json!({"id": id, "result": {}}));
            }
            "echo_late" => {
                lines.push(json!({"id": id + 1000, "result": {"stray": true}}));
                lines.push(json!({"id": id, "result": {"ok": true}}));
            }
            "garbage" => {
                let _ = writeln!(out, "%%% not json %%%");
                lines.push(json!({"id": id, "result": {"ok": true}}));
            }
            "sleep" => {
                let ms = req["params"]["ms"].as_u64().unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                lines.push(json!({"id": id, "result": {"slept_ms": ms}}));
            }
            "exit" => break,
            _ => lines
                .push(json!({"id": id, "error": {"code": "unknown_method", "message": method}})),
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }
}
