//! End-to-end test of `hallctl demo` (issue 8, "Tests"): the real binary runs the demo hall
//! with the autopilot at 50 times the speed of the clock on a temporary data directory; the
//! test then looks at what the simulated staff did, through the API as an auditor would.
//!
//! One test, three runs of the demo on the same data directory:
//! 1. first start with `--autopilot`: jobs flow through print, lamination, QC and dispatch, at
//!    least one operator both printed and laminated (the station swaps happened) and never a
//!    booklet of their own; SIGINT ends the shift and stops the demo cleanly;
//! 2. a restart without the autopilot: nothing is seeded again, the demo shift reconciles
//!    (every session closed, balanced, serial by serial), and every applied patch traces to a
//!    printer and a laminator who are two different people;
//! 3. a restart with the autopilot and faults: the line continues (the ledger grows, more jobs
//!    are dispatched), a fault is recovered; after SIGINT the ledger verifies
//!    (`hallctl audit verify`).
//!
//! 4. Nothing secret and nothing of a passport holder is in what the three runs wrote to their
//!    log (at debug level) or, after the first start's PIN sheet, to their output: no PIN of
//!    the crew or the visitor, no session token, no checkpoint key, no PIN hash, no holder
//!    name, no MRZ.
//!
//! Every wait is a poll with a deadline; nothing asserts on timing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, hallctl, wait_for};
use serde_json::{Value, json};

/// A running `hallctl demo`: its stdout is collected line by line; killed when dropped.
struct Demo {
    child: Option<Child>,
    client: Client,
    out: Arc<Mutex<Vec<String>>>,
    /// The thread that collects `out`: it ends when the demo closes its stdout.
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
}

impl Demo {
    /// Starts `hallctl demo --speed 50 --data-dir <dir> --listen 127.0.0.1:0 <extra>` and waits
    /// until it printed its banner and answers.
    fn start(dir: &Path, extra: &[&str]) -> Demo {
        let log = dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = hallctl()
            .args([
                "demo",
                "--speed",
                "50",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            // As talkative as the controller gets (sled's page cache aside), for the check that
            // nothing secret is ever logged.
            .env("RUST_LOG", "debug,sled=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start hallctl demo");
        let out: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let (out, stdout) = (out.clone(), child.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    out.lock().unwrap().push(line);
                }
            })
        };
        let mut demo = Demo {
            child: Some(child),
            client: Client {
                addr: "127.0.0.1:1".parse().unwrap(),
            },
            out,
            reader: Some(reader),
            log,
        };
        let addr: SocketAddr = wait_for(120, "the demo says where it listens", || {
            let a = demo
                .find(|l| l.split("listening on http://").nth(1).map(str::to_string))
                .and_then(|a| a.trim().parse().ok());
            (a, demo.stdout())
        });
        demo.client = Client { addr };
        wait_for(120, "the demo's banner", || {
            let done = demo.find(|l| l.contains("Ctrl-C ends the shift").then_some(()));
            (done, demo.stdout())
        });
        demo
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    fn find<T>(&self, f: impl FnMut(&String) -> Option<T>) -> Option<T> {
        self.out.lock().unwrap().iter().find_map(f)
    }

    /// SIGINT (Ctrl-C); waits for a clean exit.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("the demo runs");
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
        // The shift end takes at most the controller's grace period (20 s), and the controller
        // then stops as `serve` does, within the same grace.
        let deadline = Instant::now() + Duration::from_secs(60);
        let exit = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop after SIGINT:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader thread has taken the last lines once the demo's stdout is closed.
        let reader = self.reader.take().expect("the stdout reader");
        wait_for(60, "the demo's stdout to be read to its end", || {
            (reader.is_finished().then_some(()), self.stdout())
        });
        reader.join().expect("the stdout reader");
        assert!(
            exit.success(),
            "a clean stop exits 0: {exit}\n{}",
            self.stdout()
        );
    }

    fn sign_in(&self, user: &str, pin: &str) -> String {
        let v = self
            .client
            .post("/session", None, &json!({"user": user, "pin": pin}))
            .expect(200, &format!("{user} signs in"));
        v["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!(
                "---- demo stdout ----\n{}\n---- demo log (tail) ----\n{tail}\n---- end ----",
                self.stdout()
            );
        }
    }
}

/// The PINs printed on the first start: id → PIN.
fn printed_pins(out: &str) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "PIN")
            && i >= 1
            && let Some(pin) = words.get(i + 1)
            && pin.len() >= 6
            && pin.bytes().all(|b| b.is_ascii_digit())
        {
            pins.insert(words[0].to_string(), pin.to_string());
        }
    }
    pins
}

/// Every ledger record (the auditor's view), in order.
fn records(c: Client, aud: &str) -> Vec<Value> {
    common::records(c, aud)
}

/// A record's event type (`lot_received`, `patch_applied`, `action`...).
fn kind(r: &Value) -> &str {
    r["event"]["type"].as_str().unwrap_or_default()
}

fn jobs_in(c: Client, tok: &str, state: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page = c
            .get(
                &format!("/jobs?state={state}&limit=500&after={after}"),
                Some(tok),
            )
            .expect(200, "jobs");
        out.extend(page["jobs"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// Operators who printed one booklet and laminated another (a station swap happened).
fn printed_and_laminated(recs: &[Value]) -> BTreeSet<String> {
    let by = |k: &str| -> BTreeSet<String> {
        recs.iter()
            .filter(|r| kind(r) == k)
            .filter_map(|r| r["actor"].as_str().map(str::to_string))
            .collect()
    };
    by("booklet_printed")
        .intersection(&by("patch_applied"))
        .cloned()
        .collect()
}

#[test]
fn the_demo_hall_runs_by_itself_balances_its_shift_and_continues_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hall");

    // ---- 1. first start, autopilot ------------------------------------------------------------
    let mut demo = Demo::start(&dir, &["--autopilot"]);
    let out = demo.stdout();
    let pins = printed_pins(&out);
    for id in ["SUP-1", "AUD-1", "ADM-1", "OPR-1"] {
        assert!(pins.contains_key(id), "{id}'s PIN is printed once:\n{out}");
    }
    assert!(
        out.contains("The simulated crew") && out.contains("OP-101") && out.contains("SV-401"),
        "the crew is listed:\n{out}"
    );
    assert!(out.contains("received 4 boxes"), "{out}");
    let c = demo.client;
    let sup = demo.sign_in("SUP-1", &pins["SUP-1"]);
    let aud = demo.sign_in("AUD-1", &pins["AUD-1"]);

    // Jobs flow through both stages and beyond, and the swaps put printers at laminators.
    wait_for(180, "dispatched jobs and a station swap", || {
        // Once a second: reading the whole ledger is not free for the hall.
        std::thread::sleep(Duration::from_secs(1));
        let dispatched = jobs_in(c, &sup, "dispatched").len();
        let swapped = printed_and_laminated(&records(c, &aud));
        let ok = dispatched >= 10 && !swapped.is_empty();
        (
            ok.then_some(()),
            format!("{dispatched} dispatched, swapped: {swapped:?}"),
        )
    });
    for j in jobs_in(c, &sup, "dispatched") {
        let (p, l, q) = (&j["printed_by"], &j["laminated_by"], &j["checked_by"]);
        assert!(p.is_string() && l.is_string() && q.is_string(), "{j}");
        assert!(p != l && q != p && q != l, "three different people: {j}");
    }
    let head_1 = records(c, &aud).len();
    let mut tokens = vec![sup.clone(), aud.clone()];
    demo.interrupt();
    let out = demo.stdout();
    assert!(
        out.contains("shift ended"),
        "the shift ends cleanly:\n{out}"
    );
    drop(demo);

    // ---- 2. restart without the autopilot: nothing seeded again; the shift balances ---------
    let mut demo = Demo::start(&dir, &["--jobs-per-hour", "0"]);
    let out = demo.stdout();
    assert!(
        printed_pins(&out).is_empty() && !out.contains("The simulated crew"),
        "no PIN is printed again:\n{out}"
    );
    assert!(!out.contains("received 4 boxes"), "{out}");
    let c = demo.client;
    let _sup = demo.sign_in("SUP-1", &pins["SUP-1"]);
    let aud = demo.sign_in("AUD-1", &pins["AUD-1"]);
    let adm = demo.sign_in("ADM-1", &pins["ADM-1"]);
    let recs = records(c, &aud);
    assert!(recs.len() > head_1, "the ledger kept everything");
    let users = c.get("/users", Some(&adm)).expect(200, "users");
    let users = users
        .as_array()
        .or(users["users"].as_array())
        .unwrap()
        .len();
    let added = recs
        .iter()
        .filter(|r| kind(r) == "action" && r["event"]["action"]["kind"] == "user_changed")
        .filter(|r| r["event"]["action"]["change"]["change"] == "added")
        .count();
    assert_eq!(added, users, "every account was added once");
    let lots: Vec<&str> = recs
        .iter()
        .filter(|r| kind(r) == "lot_received")
        .filter_map(|r| r["event"]["lot"].as_str())
        .collect();
    let distinct: BTreeSet<&&str> = lots.iter().collect();
    assert_eq!(
        distinct.len(),
        lots.len(),
        "each lot received once: {lots:?}"
    );
    assert!(lots.len() >= 8, "{lots:?}");

    // The demo shift (every shift a session was opened in) reconciles: every session closed,
    // every item issued to it applied, spoiled or returned.
    let shifts: BTreeSet<String> = recs
        .iter()
        .filter(|r| kind(r) == "session_opened")
        .filter_map(|r| r["event"]["shift"].as_str().map(str::to_string))
        .collect();
    let opened = recs.iter().filter(|r| kind(r) == "session_opened").count();
    assert!(
        !shifts.is_empty() && opened >= 21,
        "{opened} sessions in {shifts:?}"
    );
    let mut reconciled = 0;
    for shift in &shifts {
        let r = c
            .get(&format!("/ledger/reconcile?shift={shift}"), Some(&aud))
            .expect(200, "reconcile the shift");
        for s in r["sessions"].as_array().unwrap() {
            assert_eq!(s["open"], false, "closed at the shift end: {s}");
            assert_eq!(s["balanced"], true, "balanced: {s}");
            assert!(
                s["unaccounted"].as_array().unwrap().is_empty()
                    && s["missing"].as_array().unwrap().is_empty(),
                "{s}"
            );
            reconciled += 1;
        }
    }
    assert_eq!(reconciled, opened, "every session is in its shift's report");
    for lot in distinct {
        let r = c
            .get(&format!("/ledger/reconcile?roll={lot}"), Some(&aud))
            .expect(200, "reconcile a lot");
        let l = &r["lots"][0];
        assert!(
            l["issued"].as_array().unwrap().is_empty()
                && l["missing"].as_array().unwrap().is_empty(),
            "nothing of {lot} is out of the vault unaccounted: {l}"
        );
    }

    // Every applied patch traces to a printer and a laminator, two different people: the
    // patch's own trace while it is on its booklet, and the booklet's trace for a patch spoiled
    // afterwards (a laminator fault, a defect, a QC mismatch), whose trace no longer leads to
    // a booklet.
    let trace = |serial: &str| -> Value {
        c.get(&format!("/ledger/trace/{serial}"), Some(&aud))
            .expect(200, "trace")
    };
    let actor_of = |t: &Value, event: &str| -> String {
        t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["event"] == event)
            .and_then(|s| s["actor"].as_str())
            .unwrap_or_else(|| panic!("no {event} in the trace: {t}"))
            .to_string()
    };
    let applied: Vec<&Value> = recs.iter().filter(|r| kind(r) == "patch_applied").collect();
    let mut on_booklets = 0;
    for r in &applied {
        let (patch, booklet) = (
            r["event"]["patch"].as_str().unwrap(),
            r["event"]["booklet"].as_str().unwrap(),
        );
        let laminator = r["actor"].as_str().unwrap();
        let printer = actor_of(&trace(booklet), "booklet_printed");
        assert_ne!(
            printer, laminator,
            "{patch} on {booklet}: printed and laminated by {printer}"
        );
        let t = trace(patch);
        assert_eq!(actor_of(&t, "patch_applied"), laminator, "{t}");
        if t["partner"].as_str() == Some(booklet) {
            assert_eq!(actor_of(&t, "booklet_printed"), printer, "{t}");
            on_booklets += 1;
        }
    }
    assert!(
        on_booklets >= 10,
        "{on_booklets} of {} patches on their booklets",
        applied.len()
    );
    let head_2 = records(c, &aud).len();
    tokens.extend([aud.clone(), adm.clone()]);
    demo.interrupt();
    let mut later_output = demo.stdout();
    drop(demo);

    // ---- 3. restart with the autopilot and faults: it continues ------------------------------
    let mut demo = Demo::start(&dir, &["--autopilot", "--faults"]);
    let out = demo.stdout();
    assert!(
        printed_pins(&out).is_empty() && !out.contains("The simulated crew"),
        "no PIN is printed again:\n{out}"
    );
    let c = demo.client;
    let sup = demo.sign_in("SUP-1", &pins["SUP-1"]);
    let aud = demo.sign_in("AUD-1", &pins["AUD-1"]);
    let dispatched_before = jobs_in(c, &sup, "dispatched").len();
    wait_for(180, "more jobs dispatched and a fault recovered", || {
        std::thread::sleep(Duration::from_secs(1));
        let more = jobs_in(c, &sup, "dispatched").len();
        let recovered = demo.find(|l| l.starts_with("recovered:").then_some(()));
        let ok = more >= dispatched_before + 5 && recovered.is_some();
        (
            ok.then_some(()),
            format!("{more} dispatched (was {dispatched_before}); recovered: {recovered:?}"),
        )
    });
    let head_3 = records(c, &aud).len();
    assert!(head_3 > head_2, "the ledger grows: {head_2} → {head_3}");
    tokens.extend([sup.clone(), aud.clone()]);
    demo.interrupt();
    let out = demo.stdout();
    assert!(out.contains("shift ended"), "{out}");
    later_output.push_str(&out);
    drop(demo);

    // ---- the ledger verifies --------------------------------------------------------------------
    let o = hallctl()
        .args(["audit", "verify", "--ledger"])
        .arg(dir.join("ledger"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "audit verify: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // ---- 4. nothing secret, nothing of a passport holder, in what the demo wrote -------------
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(
        log.lines().count() > 100 && log.contains("DEBUG"),
        "the runs logged at debug level"
    );
    let mut secrets: Vec<(String, String)> = Vec::new();
    let crew: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-crew.json")).unwrap()).unwrap();
    collect_pins(&crew, &mut secrets);
    for (id, pin) in &pins {
        secrets.push((format!("{id}'s PIN"), pin.clone()));
    }
    assert!(
        secrets.len() >= 20,
        "the crew's and the visitor's PINs: {}",
        secrets.len()
    );
    for t in &tokens {
        secrets.push(("a session token".into(), t.clone()));
    }
    let key = std::fs::read_to_string(dir.join("ledger").join("checkpoint.key")).unwrap();
    secrets.push(("the checkpoint signing key".into(), key.trim().to_string()));
    for (what, text) in [
        ("the log", &log),
        ("the output after the PIN sheet", &later_output),
    ] {
        for (name, secret) in &secrets {
            assert!(
                !contains_word(text, secret),
                "{name} is in {what}: {}",
                text.lines()
                    .find(|l| l.contains(secret.as_str()))
                    .unwrap_or_default()
            );
        }
        assert!(!text.contains("$argon2"), "a PIN hash is in {what}");
        // Holder data: every demo holder's surname is one of these; an MRZ has `<<`.
        for surname in hallctl::demo::issuance::SURNAMES {
            assert!(
                !contains_word(text, surname),
                "a holder's surname ({surname}) is in {what}: {}",
                text.lines()
                    .find(|l| l.contains(surname))
                    .unwrap_or_default()
            );
        }
        assert!(
            !text.contains("<<"),
            "an MRZ is in {what}: {}",
            text.lines().find(|l| l.contains("<<")).unwrap_or_default()
        );
    }
}

/// Every `"pin"` value in the crew file.
fn collect_pins(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("pin", Value::String(p)) if !p.is_empty() => {
                        out.push(("a crew member's PIN".into(), p.clone()));
                    }
                    _ => collect_pins(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_pins(x, out)),
        _ => {}
    }
}

/// `needle` in `text`, not as part of a longer run of letters or digits.
fn contains_word(text: &str, needle: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    text.match_indices(needle).any(|(i, _)| {
        edge(text[..i].chars().next_back()) && edge(text[i + needle.len()..].chars().next())
    })
}

#[test]
fn the_demo_refuses_a_bad_broker_url_before_it_creates_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hall");
    for (url, why) in [
        ("broker:1883", "is not a broker URL"),
        ("mqtt://broker:0", "is not a port"),
        ("mqtts://broker", "mqtt:// only"),
    ] {
        let out = hallctl()
            .args(["demo", "--mqtt", url, "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: refused");
        assert!(err.contains("--mqtt") && err.contains(why), "{url}: {err}");
        assert!(!dir.exists(), "{url}: nothing created");
    }
}
