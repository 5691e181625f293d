//! The red-team suite (issue 16, point 10): insider moves through the real binary, its API and
//! its simulated devices, thought up as the two operators of the seed's story would (they took
//! laminate patches off the line, and thousands of forged passports carried genuine patches).
//!
//! Every move is a request (or a device's fault and a request) to a hall whose MQTT publisher
//! writes to a Mosquitto broker of the test's own, while a supervisor's status stream (SSE) and
//! an MQTT subscriber on the hall's `alerts` topic run on threads of their own and timestamp what
//! they receive. For each move the test asserts the refusal (status and `error.rule`) or the
//! record, that nothing else changed (the ledger's records but refusals and their alerts, and the
//! named items' custody states), and that the alert occurrence the move caused, found in the
//! ledger by its sequence number, reached both the stream and the `alerts` topic. The time from
//! just before the request to each arrival is measured, never asserted: the deadlines (60 s) only
//! turn a lost alert into a failure. The figures go to `target/red-team.tsv`, and a summary
//! (p50/p99 per channel) is printed (`--nocapture`).
//!
//! `#[ignore]`d in a plain `cargo test` (it needs `mosquitto`): `scripts/test-all` runs it with
//! `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{Broker, Subscriber, hall_toml};
use common::*;
use hallctl::mqtt::EventMessage;
use serde_json::{Value, json};

// ---- what is watched -----------------------------------------------------------------------------

/// The supervisor's status stream, read on a thread of its own: every event with its arrival.
type SseLog = Arc<Mutex<Vec<(Instant, String, Value)>>>;

fn watch_sse(c: Client, token: &str) -> SseLog {
    let log: SseLog = Arc::default();
    let mut stream = c.stream(token);
    let keep = log.clone();
    std::thread::spawn(move || {
        while let Some((name, v)) = stream.try_next() {
            keep.lock().unwrap().push((Instant::now(), name, v));
        }
    });
    log
}

/// One hall of the suite: its service, its crew's tokens and its supervisor's stream.
struct RtHall {
    id: &'static str,
    hall: Hall,
    c: Client,
    sup: String,
    aud: String,
    sse: SseLog,
}

/// One measured move.
struct Row {
    name: String,
    outcome: String,
    alert: String,
    sse_ms: Option<f64>,
    mqtt_ms: Option<f64>,
}

struct Suite {
    sub: Subscriber,
    rows: Vec<Row>,
    // (last: the broker outlives the subscriber)
    _broker: Broker,
}

/// What a refused move must give.
struct Refusal<'a> {
    status: u16,
    rule: &'a str,
    actor: &'a str,
    /// The station recorded (and the alert's subject), or `None` for a station-less move
    /// (the subject is then the actor).
    station: Option<&'a str>,
    /// Serials the record and the alert must name.
    serials: &'a [&'a str],
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn counters(a: &str, b: &str) -> Value {
    json!([{"user": a, "pin": pin(a)}, {"user": b, "pin": pin(b)}])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The alert records (`alert_raised`, `alert_repeated`) after `head`: (seq, record).
fn alert_records_after(h: &RtHall, head: u64) -> Vec<(u64, Value)> {
    records(h.c, &h.aud)
        .into_iter()
        .filter(|r| r["seq"].as_u64().is_some_and(|s| s > head))
        .filter(|r| {
            matches!(
                r["event"]["action"]["kind"].as_str(),
                Some("alert_raised" | "alert_repeated")
            )
        })
        .map(|r| (r["seq"].as_u64().unwrap(), r["event"]["action"].clone()))
        .collect()
}

/// What a refused move must leave as it was: every record but refusals and their alerts, and
/// the custody state of the serials it names.
fn state(h: &RtHall, serials: &[&str]) -> (Vec<Value>, Vec<Value>) {
    let traces = serials
        .iter()
        .map(|s| {
            let r = h.c.get(&format!("/ledger/trace/{s}"), Some(&h.aud));
            if r.status == 200 && r.body["kind"].is_null() {
                // Never received: a trace of the attempts that named it, no custody state.
                json!(404)
            } else if r.status == 200 {
                r.body["state"].clone()
            } else {
                json!(r.status)
            }
        })
        .collect();
    (records_but_refusals(h.c, &h.aud), traces)
}

impl Suite {
    fn start() -> Suite {
        let broker = Broker::start();
        let sub = Subscriber::start(&broker, "red-team", "hallctl/v1/+/alerts", false);
        Suite {
            sub,
            rows: Vec::new(),
            _broker: broker,
        }
    }

    /// A hall of id `id` (with `extra` configuration) publishing to the suite's broker, its
    /// lots received, the supervisor's stream open.
    fn hall(&self, id: &'static str, extra: &str) -> RtHall {
        let toml = format!("{}\n{extra}\n", hall_toml(id, &self._broker));
        let hall = spawn_hall_as(0.02, &toml, PEOPLE);
        let c = hall.client;
        let sup = hall.sign_in("S1", None);
        let aud = hall.sign_in("AU1", None);
        receive_lots(c, &sup);
        let sse = watch_sse(c, &sup);
        RtHall {
            id,
            hall,
            c,
            sup,
            aud,
            sse,
        }
    }

    /// A move that must be refused: runs `act` (the request), checks the answer, the one
    /// `refused` record, that nothing else changed, and the alert occurrence on both channels
    /// (an incident of kind `refusal` about the station, or the actor when there is none).
    #[track_caller]
    fn refused(
        &mut self,
        h: &RtHall,
        name: &str,
        want: Refusal<'_>,
        watched: &[&str],
        act: impl FnOnce() -> Resp,
    ) -> Value {
        let subject = want.station.unwrap_or(want.actor);
        self.refused_as(h, name, want, ("refusal", subject), watched, act)
    }

    /// As [`Suite::refused`], the occurrence going to the incident of `kind` about `subject`
    /// (wrong co-signer PINs gather on the person who asked, as `cosigner_failures`).
    #[track_caller]
    fn refused_as(
        &mut self,
        h: &RtHall,
        name: &str,
        want: Refusal<'_>,
        (kind, subject): (&str, &str),
        watched: &[&str],
        act: impl FnOnce() -> Resp,
    ) -> Value {
        eprintln!("red team: {name}");
        let before = state(h, watched);
        let head = ledger_head(h.c, &h.aud);
        let t0 = Instant::now();
        let r = act();
        assert_eq!(r.status, want.status, "{name}: {}", r.text);
        assert_eq!(r.body["error"]["rule"], want.rule, "{name}: {}", r.text);
        let facts = refusals_after(h.c, &h.aud, head);
        assert_eq!(facts.len(), 1, "{name}: one refused record: {facts:?}");
        let (actor, rule, station, serials) = &facts[0];
        assert_eq!(
            (actor.as_str(), rule.as_str()),
            (want.actor, want.rule),
            "{name}: {facts:?}"
        );
        if let Some(st) = want.station {
            assert_eq!(station, st, "{name}: {facts:?}");
        }
        for s in want.serials {
            assert!(serials.iter().any(|x| x == s), "{name}: {s} in {facts:?}");
        }
        assert!(
            state(h, watched) == before,
            "{name}: a refused move changed something else"
        );
        let alert = self.alert(h, name, t0, head, kind, Some(subject), want.serials);
        assert!(
            strings(&alert["rules"]).iter().any(|r| r == want.rule),
            "{name}: the incident names the rule: {alert}"
        );
        let row = self.rows.last_mut().unwrap();
        row.outcome = format!("{} {}", want.status, want.rule);
        alert
    }

    /// Waits for the one alert occurrence recorded after `head` (of `kind`, about `subject`
    /// when given, naming `serials`), then for it on the stream and on MQTT; records the row.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    fn alert(
        &mut self,
        h: &RtHall,
        name: &str,
        t0: Instant,
        head: u64,
        kind: &str,
        subject: Option<&str>,
        serials: &[&str],
    ) -> Value {
        let found = wait_for(60, &format!("{name}: an alert record"), || {
            let a = alert_records_after(h, head);
            ((!a.is_empty()).then(|| a.clone()), format!("{a:?}"))
        });
        assert_eq!(
            found.len(),
            1,
            "{name}: one alert occurrence, none swallowed, none doubled: {found:?}"
        );
        let (seq, rec) = found[0].clone();
        let id = rec["alert"].as_str().expect("an alert id").to_string();
        let occurrence = rec["occurrence"].as_u64().unwrap_or(1);
        let list = h.c.get("/alerts", Some(&h.sup)).expect(200, "alerts");
        let alert = list["open"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{name}: alert {id} is open: {list}"));
        assert_eq!(alert["kind"], kind, "{name}: {alert}");
        if let Some(s) = subject {
            assert_eq!(alert["subject"], s, "{name}: {alert}");
        }
        assert_eq!(
            alert["occurrences"].as_u64(),
            Some(occurrence),
            "{name}: the incident counts this occurrence: {alert}"
        );
        let named = strings(&rec["serials"]);
        for s in serials {
            assert!(
                named.iter().any(|x| x == s),
                "{name}: the occurrence names {s}: {rec}"
            );
            assert!(
                strings(&alert["serials"]).iter().any(|x| x == s),
                "{name}: the incident names {s}: {alert}"
            );
        }
        // The stream.
        let sse_at = wait_for(60, &format!("{name}: record {seq} on the stream"), || {
            let log = h.sse.lock().unwrap();
            let hit = log.iter().find(|(_, _, v)| v["seq"].as_u64() == Some(seq));
            let got = hit.map(|(at, n, v)| (*at, n.clone(), v.clone()));
            (got, format!("{} events", log.len()))
        });
        let (at, ev, v) = sse_at;
        assert_eq!(ev, rec["kind"].as_str().unwrap(), "{name}: {v}");
        assert_eq!(v["alert"]["id"], id.as_str(), "{name}: {v}");
        assert_eq!(v["alert"]["occurrence"].as_u64(), Some(occurrence), "{v}");
        let sse_ms = ms(at.saturating_duration_since(t0));
        // MQTT.
        let topic = format!("hallctl/v1/{}/alerts", h.id);
        let mqtt_at = wait_for(60, &format!("{name}: record {seq} on {topic}"), || {
            let all = self.sub.all();
            let hit = all.iter().find(|g| {
                g.topic == topic
                    && serde_json::from_slice::<EventMessage>(&g.payload)
                        .is_ok_and(|m| m.msg_id == seq)
            });
            (hit.cloned(), format!("{} messages", all.len()))
        });
        let m: EventMessage = serde_json::from_slice(&mqtt_at.payload).unwrap();
        assert_eq!(
            m.record.alert.as_ref().map(|a| a.id.as_str()),
            Some(id.as_str()),
            "{name}: {}",
            mqtt_at.text()
        );
        let mqtt_ms = ms(mqtt_at.at.saturating_duration_since(t0));
        let what = format!(
            "{kind} {} ({}, occurrence {occurrence})",
            alert["subject"].as_str().unwrap_or_default(),
            alert["severity"].as_str().unwrap_or_default()
        );
        eprintln!("  -> {what}: SSE {sse_ms:.1} ms, MQTT {mqtt_ms:.1} ms");
        self.rows.push(Row {
            name: name.to_string(),
            outcome: String::new(),
            alert: what,
            sse_ms: Some(sse_ms),
            mqtt_ms: Some(mqtt_ms),
        });
        alert
    }

    /// A move that is recorded (not refused): `act` performs it and checks its records; then
    /// the alert it raised, on both channels.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    fn recorded(
        &mut self,
        h: &RtHall,
        name: &str,
        outcome: &str,
        kind: &str,
        subject: Option<&str>,
        serials: &[&str],
        act: impl FnOnce(),
    ) -> Value {
        eprintln!("red team: {name}");
        let head = ledger_head(h.c, &h.aud);
        let t0 = Instant::now();
        act();
        let a = self.alert(h, name, t0, head, kind, subject, serials);
        self.rows.last_mut().unwrap().outcome = outcome.to_string();
        a
    }

    /// Writes `target/red-team.tsv` and prints the table and the summary.
    fn report(&self) {
        let mut tsv = String::from("move\toutcome\talert\tsse_ms\tmqtt_ms\n");
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        for r in &self.rows {
            tsv.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                r.name,
                r.outcome,
                r.alert,
                f(r.sse_ms),
                f(r.mqtt_ms)
            ));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("red-team.tsv"), &tsv).unwrap();
        println!("\n{tsv}");
        for (channel, pick) in [
            ("SSE", (|r: &Row| r.sse_ms) as fn(&Row) -> Option<f64>),
            ("MQTT", |r: &Row| r.mqtt_ms),
        ] {
            let mut v: Vec<f64> = self.rows.iter().filter_map(pick).collect();
            v.sort_by(f64::total_cmp);
            println!(
                "red team: {channel}: {} alerts, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target: 5000 ms)",
                v.len(),
                percentile(&v, 50.0),
                percentile(&v, 99.0),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
        let moves = |alerted: bool| {
            self.rows
                .iter()
                .filter(|r| r.sse_ms.is_some() == alerted)
                .map(|r| r.name.split(" #").next().unwrap_or_default())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        println!(
            "red team: {} moves ({} alerted, {} answered or recorded without an alert), {} alert \
             occurrences timed; figures in target/red-team.tsv",
            moves(true) + moves(false),
            moves(true),
            moves(false),
            self.rows.iter().filter(|r| r.sse_ms.is_some()).count()
        );
    }
}

// ---- the line's steps ----------------------------------------------------------------------------

/// Waits until `st` has work assigned; returns its job.
fn assigned(h: &RtHall, st: &str) -> u64 {
    wait_for(60, &format!("work assigned at {st}"), || {
        let v = station(h.c, &h.sup, st);
        let ok = v["work"]["phase"] == "assigned";
        (
            ok.then(|| v["work"]["job"].as_u64().unwrap()),
            v.to_string(),
        )
    })
}

/// The operator at PRINT-01 prints whatever the line assigned there on `booklet` and confirms.
fn print(h: &RtHall, a1: &str, booklet: &str) -> u64 {
    let j = assigned(h, "PRINT-01");
    h.c.post(
        "/stations/PRINT-01/print",
        Some(a1),
        &json!({ "booklet": booklet }),
    )
    .expect(200, "print");
    wait_work(h.c, &h.sup, "PRINT-01", j, "awaiting_confirmation");
    h.c.post("/stations/PRINT-01/confirm", Some(a1), &json!({}))
        .expect(200, "confirm the print");
    j
}

/// The operator at LAM-01 laminates job `j` with `patch` and confirms.
fn laminate(h: &RtHall, b1: &str, j: u64, patch: &str) {
    laminated(h, b1, j, patch);
    h.c.post("/stations/LAM-01/confirm", Some(b1), &json!({}))
        .expect(200, "confirm the lamination");
}

/// The operator at LAM-01 laminates job `j` with `patch`: the step awaits confirmation.
fn laminated(h: &RtHall, b1: &str, j: u64, patch: &str) {
    wait_work(h.c, &h.sup, "LAM-01", j, "assigned");
    h.c.post(
        "/stations/LAM-01/laminate",
        Some(b1),
        &json!({ "patch": patch }),
    )
    .expect(200, "laminate");
    wait_work(h.c, &h.sup, "LAM-01", j, "awaiting_confirmation");
}

fn submit_n(h: &RtHall, tracking: &str) -> (u64, hallctl_jobs::intake::JobRequest) {
    let req = job_request(
        tracking,
        "Eriksson",
        &format!("R{}", &tracking[tracking.len() - 7..]),
    );
    (submit(h.c, &h.sup, &req), req)
}

fn session_held(h: &RtHall, id: &str) -> Vec<String> {
    strings(
        &h.c.get(&format!("/custody/sessions/{id}"), Some(&h.sup))
            .expect(200, "session")["held"],
    )
}

// ---- the suite -----------------------------------------------------------------------------------

#[test]
#[ignore = "needs mosquitto: run by scripts/test-all"]
fn insider_moves_are_refused_or_recorded_and_alerted_on_sse_and_mqtt() {
    let mut s = Suite::start();
    hall_a(&mut s);
    hall_b(&mut s);
    hall_c(&mut s);
    s.report();
}

/// The main hall: lamination gate, QC and dispatch, custody, devices.
#[allow(clippy::too_many_lines)]
fn hall_a(s: &mut Suite) {
    let mut h = s.hall("rt-a", "");
    let c = h.c;
    // One laminator works (the other's device is paused: the line assigns it nothing), so
    // every lamination is LAM-01's.
    c.post("/devices/LM-02/pause", Some(&h.sup), &json!({}))
        .expect(200, "pause LM-02");
    let a1 = h.hall.sign_in("A1", Some("PRINT-01"));
    open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000119");
    let b1 = h.hall.sign_in("B1", Some("LAM-01"));
    let ls1 = open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000119");
    let b2 = h.hall.sign_in("B2", Some("LAM-02"));
    let ls2 = open_and_issue(c, &b2, "B2", "LAM-02", "P2000130-P2000134");
    let c1 = h.hall.sign_in("C1", Some("QC-01"));
    let d1 = h.hall.sign_in("D1", Some("DISPATCH-01"));

    // 1. A job for another issuing state (a forged request through the issuance account): the
    // batch stores nothing, and the attempt is a fact and an alert about the submitter.
    {
        let mut req = job_request("TRK-RT-F", "Eriksson", "RT0000F01");
        req.personalization.issuing_state = "FRA".into();
        req.personalization.nationality = "FRA".into();
        let want = Refusal {
            status: 422,
            rule: "issuing_state",
            actor: "S1",
            station: None,
            serials: &[],
        };
        let alert = s.refused(&h, "a job for another issuing state", want, &[], || {
            c.post("/jobs", Some(&h.sup), &json!({ "jobs": [req] }))
        });
        assert!(
            alert["detail"].as_str().unwrap_or_default().contains("FRA"),
            "{alert}"
        );
        assert!(
            !alert.to_string().to_uppercase().contains("ERIKSSON"),
            "no holder data: {alert}"
        );
    }

    // J1 goes all the way; J2 waits at LAM-01.
    let (j1, req1) = submit_n(&h, "TRK-RT-0000001");
    assert_eq!(print(&h, &a1, "B1000100"), j1);
    laminate(&h, &b1, j1, "P2000100");
    wait_work(c, &h.sup, "QC-01", j1, "assigned");
    c.post(
        "/stations/QC-01/qc",
        Some(&c1),
        &json!({"booklet": "B1000100", "mrz": mrz_of(&req1)}),
    )
    .expect(200, "QC");
    wait_work(c, &h.sup, "DISPATCH-01", j1, "assigned");
    c.post(
        "/stations/DISPATCH-01/pack",
        Some(&d1),
        &json!({"booklet": "B1000100"}),
    )
    .expect(200, "pack");
    let (j2, req2) = submit_n(&h, "TRK-RT-0000002");
    assert_eq!(print(&h, &a1, "B1000101"), j2);
    wait_work(c, &h.sup, "LAM-01", j2, "assigned");

    // ---- the lamination gate (B1 at LAM-01, job 2 assigned) ----
    let lam = |body: Value| {
        let b1 = b1.clone();
        move || c.post("/stations/LAM-01/laminate", Some(&b1), &body)
    };
    fn at_lam<'a>(status: u16, rule: &'a str, serials: &'a [&'a str]) -> Refusal<'a> {
        Refusal {
            status,
            rule,
            actor: "B1",
            station: Some("LAM-01"),
            serials,
        }
    }
    s.refused(
        &h,
        "a patch serial that is on no roll",
        at_lam(409, "unknown_serial", &["P2999999"]),
        &["P2999999"],
        lam(json!({"patch": "P2999999"})),
    );
    s.refused(
        &h,
        "a patch still in the vault (never issued)",
        at_lam(409, "not_issued", &["P2000150"]),
        &["P2000150"],
        lam(json!({"patch": "P2000150"})),
    );
    s.refused(
        &h,
        "another station's patch",
        at_lam(409, "wrong_session", &["P2000130"]),
        &["P2000130"],
        lam(json!({"patch": "P2000130"})),
    );
    s.refused(
        &h,
        "reuse an applied patch",
        at_lam(409, "already_used", &["P2000100", "B1000100"]),
        &["P2000100", "B1000100"],
        lam(json!({"patch": "P2000100"})),
    );
    s.refused(
        &h,
        "a patch out of roll order without a reason",
        at_lam(409, "out_of_roll_order", &["P2000105", "P2000101"]),
        &["P2000105", "P2000101"],
        lam(json!({"patch": "P2000105"})),
    );
    s.refused(
        &h,
        "a booklet scanned as a patch",
        at_lam(409, "wrong_kind", &["B1000110"]),
        &["B1000110"],
        lam(json!({"patch": "B1000110"})),
    );
    s.refused(
        &h,
        "choose the job (name another job)",
        at_lam(403, "chose_work", &["P2000101"]),
        &["P2000101"],
        lam(json!({"patch": "P2000101", "job": j1})),
    );
    s.refused(
        &h,
        "act at another station",
        Refusal {
            status: 403,
            rule: "not_at_station",
            actor: "B1",
            station: Some("LAM-02"),
            serials: &[],
        },
        &["P2000130"],
        || {
            c.post(
                "/stations/LAM-02/laminate",
                Some(&b1),
                &json!({"patch": "P2000130"}),
            )
        },
    );
    s.refused(
        &h,
        "the wrong booklet in hand",
        at_lam(409, "wrong_booklet", &["B1000105", "B1000101"]),
        &["B1000105", "P2000101"],
        lam(json!({"patch": "P2000101", "booklet": "B1000105"})),
    );
    // Repeated attempts: each one an occurrence of the same incident, none swallowed.
    let mut last = 0;
    for (k, p) in ["P2999990", "P2999991", "P2999992"].iter().enumerate() {
        let a = s.refused(
            &h,
            &format!("repeated attempts (unknown patches) #{}", k + 1),
            at_lam(409, "unknown_serial", &[*p]),
            &[*p],
            lam(json!({ "patch": *p })),
        );
        let n = a["occurrences"].as_u64().unwrap();
        if k > 0 {
            assert_eq!(n, last + 1, "one more occurrence per attempt: {a}");
        }
        last = n;
        for q in &["P2999990", "P2999991", "P2999992"][..=k] {
            assert!(strings(&a["serials"]).iter().any(|x| x == q), "{a}");
        }
    }
    // A skip with a reason: recorded, the skipped serials set aside, alerted.
    s.recorded(
        &h,
        "skip patches on the roll (with a reason)",
        "200; patch_applied (skip_reason), items_set_aside P2000101-02",
        "roll_skip",
        Some(&ls1),
        &["P2000103", "P2000101"],
        || {
            c.post(
                "/stations/LAM-01/laminate",
                Some(&b1),
                &json!({"patch": "P2000103", "skip_reason": "first two creased"}),
            )
            .expect(200, "a skip with a reason");
            let sess = c
                .get(&format!("/custody/sessions/{ls1}"), Some(&h.sup))
                .expect(200, "session");
            assert_eq!(strings(&sess["set_aside"]), ["P2000101", "P2000102"]);
        },
    );
    wait_work(c, &h.sup, "LAM-01", j2, "awaiting_confirmation");
    c.post("/stations/LAM-01/confirm", Some(&b1), &json!({}))
        .expect(200, "confirm");
    wait_work(c, &h.sup, "QC-01", j2, "assigned");
    let (j3, req3) = submit_n(&h, "TRK-RT-0000003");
    assert_eq!(print(&h, &a1, "B1000102"), j3);
    wait_work(c, &h.sup, "LAM-01", j3, "assigned");
    s.refused(
        &h,
        "use a set-aside patch",
        at_lam(409, "set_aside", &["P2000101"]),
        &["P2000101"],
        lam(json!({"patch": "P2000101"})),
    );
    laminate(&h, &b1, j3, "P2000104");

    // ---- QC and dispatch (C1 at QC-01 with job 2; D1 at DISPATCH-01) ----
    s.refused(
        &h,
        "QC scans a booklet the line did not assign",
        Refusal {
            status: 409,
            rule: "wrong_booklet",
            actor: "C1",
            station: Some("QC-01"),
            serials: &["B1000102", "B1000101"],
        },
        &["B1000102", "B1000101"],
        || {
            c.post(
                "/stations/QC-01/qc",
                Some(&c1),
                &json!({"booklet": "B1000102", "mrz": mrz_of(&req3)}),
            )
        },
    );
    c.post(
        "/stations/QC-01/qc",
        Some(&c1),
        &json!({"booklet": "B1000101", "mrz": mrz_of(&req2)}),
    )
    .expect(200, "QC of job 2");
    wait_work(c, &h.sup, "DISPATCH-01", j2, "assigned");
    fn at_dispatch<'a>(serials: &'a [&'a str]) -> Refusal<'a> {
        Refusal {
            status: 409,
            rule: "wrong_booklet",
            actor: "D1",
            station: Some("DISPATCH-01"),
            serials,
        }
    }
    let pack = |booklet: &'static str| {
        let d1 = d1.clone();
        move || {
            c.post(
                "/stations/DISPATCH-01/pack",
                Some(&d1),
                &json!({ "booklet": booklet }),
            )
        }
    };
    s.refused(
        &h,
        "dispatch a booklet twice",
        at_dispatch(&["B1000100"]),
        &["B1000100"],
        pack("B1000100"),
    );
    s.refused(
        &h,
        "dispatch a booklet before its QC",
        at_dispatch(&["B1000102"]),
        &["B1000102"],
        pack("B1000102"),
    );
    pack("B1000101")().expect(200, "pack job 2");

    // QC reads a wrong field twice: spoiled (a re-read first), and the supervisor is told.
    wait_work(c, &h.sup, "QC-01", j3, "assigned");
    {
        let mut bad = req3.clone();
        bad.personalization.document_number = "RX0000003".into();
        let read = || {
            c.post(
                "/stations/QC-01/qc",
                Some(&c1),
                &json!({"booklet": "B1000102", "mrz": mrz_of(&bad)}),
            )
            .expect(200, "QC reading")
        };
        let head = ledger_head(c, &h.aud);
        let v = read();
        assert_eq!(v["outcome"], "reread", "{v}");
        assert_eq!(ledger_head(c, &h.aud), head, "a re-read records nothing");
        s.recorded(
            &h,
            "QC read-back with a wrong field",
            "re-read asked, then spoiled: qc_checked (failed), item_spoiled x2, job reprinted",
            "qc_spoil",
            Some("QC-01"),
            &["B1000102"],
            || {
                let v = read();
                assert_eq!(v["outcome"], "spoiled", "{v}");
                assert!(
                    strings(&v["fields"]).contains(&"document_number".to_string()),
                    "{v}"
                );
            },
        );
    }
    // The reprint of job 3 waits at PRINT-01 from now on.
    wait_work(c, &h.sup, "PRINT-01", j3, "assigned");
    // A QC spoil waits for a supervisor in hand: S1 takes booklet and patch and approves.
    {
        let list = c
            .get("/custody/spoilage", Some(&h.sup))
            .expect(200, "spoilage");
        let report = list["pending"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| strings(&r["serials"]).contains(&"B1000102".to_string()))
            .unwrap_or_else(|| panic!("the QC spoil awaits approval: {list}"))
            .clone();
        c.post(
            "/custody/spoilage/B1000102/approve",
            Some(&h.sup),
            &json!({"scanned": report["serials"], "note": "QC spoil seen"}),
        )
        .expect(200, "approve the QC spoil in hand");
    }

    // ---- custody (B1's session at LAM-01, B2's at LAM-02) ----
    let held_ls1 = session_held(&h, &ls1);
    fn on_ls1<'a>(
        status: u16,
        rule: &'a str,
        actor: &'a str,
        serials: &'a [&'a str],
    ) -> Refusal<'a> {
        Refusal {
            status,
            rule,
            actor,
            station: Some("LAM-01"),
            serials,
        }
    }
    s.refused(
        &h,
        "issue into another operator's session",
        on_ls1(403, "not_own_session", "B2", &[]),
        &["P2000140"],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/issue"),
                Some(&b2),
                &json!({"range": "P2000140-P2000141", "counters": counters("B2", "S1")}),
            )
        },
    );
    s.refused(
        &h,
        "close another operator's session",
        on_ls1(403, "not_own_session", "B2", &[]),
        &[],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/close"),
                Some(&b2),
                &json!({}),
            )
        },
    );
    s.refused(
        &h,
        "the same person twice as counters",
        on_ls1(409, "same_person", "B1", &["P2000140"]),
        &["P2000140"],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/issue"),
                Some(&b1),
                &json!({"serials": ["P2000140"], "counters": counters("B1", "B1")}),
            )
        },
    );
    // The seed's two operators counting for each other: a count needs a supervisor.
    let held_now = session_held(&h, &ls1);
    let mine = held_now.last().expect("B1 holds patches").clone();
    s.refused(
        &h,
        "two operators count a return of one's patches (no supervisor)",
        on_ls1(403, "count_without_supervisor", "B1", &[mine.as_str()]),
        &[mine.as_str()],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/return"),
                Some(&b1),
                &json!({"serials": [mine.clone()], "counters": counters("B1", "B2")}),
            )
        },
    );
    s.refused(
        &h,
        "issue an item that is not in the vault (applied)",
        on_ls1(409, "not_in_vault", "B1", &["P2000100"]),
        &["P2000100"],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/issue"),
                Some(&b1),
                &json!({"serials": ["P2000100"], "counters": counters("B1", "S1")}),
            )
        },
    );
    s.refused(
        &h,
        "return an item the session does not hold",
        on_ls1(409, "not_held", "B1", &["P2000130"]),
        &["P2000130"],
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/return"),
                Some(&b1),
                &json!({"serials": ["P2000130"], "counters": counters("B1", "S1")}),
            )
        },
    );
    let held: Vec<&str> = held_ls1.iter().map(String::as_str).collect();
    s.refused(
        &h,
        "close a session that does not balance",
        on_ls1(409, "unbalanced", "B1", &held),
        &held,
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/close"),
                Some(&b1),
                &json!({}),
            )
        },
    );
    s.refused(
        &h,
        "a signed discrepancy that leaves out serials",
        on_ls1(409, "unbalanced", "B1", &held),
        &held,
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/close"),
                Some(&b1),
                &json!({"missing": ["P2000119"], "statement": "one lost",
                        "supervisor": {"user": "S1", "pin": pin("S1")}}),
            )
        },
    );
    s.refused(
        &h,
        "sign one's own discrepancy",
        on_ls1(403, "self_signed_discrepancy", "B1", &[]),
        &held,
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/close"),
                Some(&b1),
                &json!({"missing": held, "statement": "lost",
                        "supervisor": {"user": "B1", "pin": pin("B1")}}),
            )
        },
    );
    s.refused(
        &h,
        "a fellow operator signs the discrepancy",
        on_ls1(403, "self_signed_discrepancy", "B1", &[]),
        &held,
        || {
            c.post(
                &format!("/custody/sessions/{ls1}/close"),
                Some(&b1),
                &json!({"missing": held, "statement": "lost",
                        "supervisor": {"user": "B2", "pin": pin("B2")}}),
            )
        },
    );
    fn hall_wide<'a>(rule: &'a str, serials: &'a [&'a str]) -> Refusal<'a> {
        Refusal {
            status: 409,
            rule,
            actor: "S1",
            station: None,
            serials,
        }
    }
    s.refused(
        &h,
        "destroy an item that is not spoiled",
        hall_wide("not_spoiled", &["P2000150"]),
        &["P2000150"],
        || {
            c.post(
                "/custody/destructions",
                Some(&h.sup),
                &json!({"batch": "D-RT-1", "serials": ["P2000150"],
                        "witnesses": counters("C1", "D1"),
                        "method": "shredding", "certificate": "C-RT-1"}),
            )
        },
    );
    s.refused(
        &h,
        "a witness from the item's custody chain",
        hall_wide("witness_in_custody_chain", &["B1000102"]),
        &["B1000102"],
        || {
            c.post(
                "/custody/destructions",
                Some(&h.sup),
                &json!({"batch": "D-RT-2", "serials": ["B1000102"],
                        "witnesses": counters("A1", "V1"),
                        "method": "shredding", "certificate": "C-RT-2"}),
            )
        },
    );
    s.refused(
        &h,
        "report an applied patch missing",
        hall_wide("not_missable", &["P2000100"]),
        &["P2000100"],
        || {
            c.post(
                "/custody/missing",
                Some(&h.sup),
                &json!({"serial": "P2000100", "note": "cannot find it"}),
            )
        },
    );
    s.recorded(
        &h,
        "report a patch missing",
        "200; item_reported_missing",
        "item_missing",
        Some("P2000160"),
        &["P2000160"],
        || {
            c.post(
                "/custody/missing",
                Some(&h.sup),
                &json!({"serial": "P2000160", "note": "not on the roll"}),
            )
            .expect(200, "missing");
        },
    );
    c.post(
        &format!("/custody/sessions/{ls2}/return"),
        Some(&b2),
        &json!({"range": "P2000130-P2000133", "counters": counters("B2", "S1")}),
    )
    .expect(200, "B2 returns four patches");
    s.recorded(
        &h,
        "close with a supervisor-signed discrepancy",
        "200; session_closed (discrepancy), P2000134 missing",
        "reconciliation",
        Some(&ls2),
        &["P2000134"],
        || {
            c.post(
                &format!("/custody/sessions/{ls2}/close"),
                Some(&b2),
                &json!({"missing": ["P2000134"], "statement": "not found at close",
                        "supervisor": {"user": "S1", "pin": pin("S1")}}),
            )
            .expect(200, "a signed discrepancy");
        },
    );
    let ls3 = open_and_issue(c, &b2, "B2", "LAM-02", "P2000135-P2000136");
    s.recorded(
        &h,
        "sign out holding items",
        "204; session_abandoned (signed out)",
        "session_abandoned",
        Some(&ls3),
        &["P2000135", "P2000136"],
        || {
            c.delete("/session", Some(&b2)).expect(204, "B2 signs out");
        },
    );
    let _b2 = h.hall.sign_in("B2", Some("LAM-02"));
    s.recorded(
        &h,
        "a supervisor vacates an operator holding items",
        "200; session_abandoned (vacated): a second occurrence",
        "session_abandoned",
        Some(&ls3),
        &["P2000135", "P2000136"],
        || {
            c.post("/stations/LAM-02/vacate", Some(&h.sup), &json!({}))
                .expect(200, "S1 signs B2 out of LAM-02");
        },
    );

    // ---- the devices' reading is the last word ----
    let spoil = |j: u64| {
        wait_job_state(c, &h.sup, j, &["needs_inspection"]);
        c.post(
            &format!("/jobs/{j}/inspect"),
            Some(&h.sup),
            &json!({"verdict": "spoil"}),
        )
        .expect(200, "the supervisor spoils it");
    };
    assert_eq!(print(&h, &a1, "B1000103"), j3);
    wait_work(c, &h.sup, "LAM-01", j3, "assigned");
    h.hall.inject("misfeed LM-01 P2000110");
    s.recorded(
        &h,
        "scan one patch, feed another (laminator reads P2000110)",
        "200, then the step stops: device_read_mismatch, both patches suspect",
        "read_mismatch",
        None,
        &["P2000105", "P2000110"],
        || {
            c.post(
                "/stations/LAM-01/laminate",
                Some(&b1),
                &json!({"patch": "P2000105"}),
            )
            .expect(200, "B1 scans P2000105");
        },
    );
    spoil(j3);
    let j = assigned(&h, "PRINT-01");
    h.hall.inject("misfeed PR-01 B1000115");
    s.recorded(
        &h,
        "scan one booklet, print another (printer reads back B1000115)",
        "200, then the step stops: device_read_mismatch, both booklets suspect",
        "read_mismatch",
        None,
        &["B1000104", "B1000115"],
        || {
            c.post(
                "/stations/PRINT-01/print",
                Some(&a1),
                &json!({"booklet": "B1000104"}),
            )
            .expect(200, "A1 scans B1000104");
        },
    );
    spoil(j);
    assert_eq!(print(&h, &a1, "B1000105"), j);
    wait_work(c, &h.sup, "LAM-01", j, "assigned");
    h.hall.inject("no-read LM-01");
    s.recorded(
        &h,
        "a laminator whose reader reads nothing",
        "200, then the step stops: device_read_mismatch (nothing read), the patch suspect",
        "read_mismatch",
        None,
        &["P2000106"],
        || {
            c.post(
                "/stations/LAM-01/laminate",
                Some(&b1),
                &json!({"patch": "P2000106"}),
            )
            .expect(200, "B1 scans P2000106");
        },
    );
    let _ = (c1, d1);
}

/// A hall of strict roll order: a skip, and the printer laminating their own booklet.
fn hall_b(s: &mut Suite) {
    let h = s.hall("rt-b", "[policy]\nroll_order = \"strict\"\n");
    let c = h.c;
    let a1 = h.hall.sign_in("A1", Some("PRINT-01"));
    let ps = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000109");
    let b1 = h.hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000109");
    let (j, _) = submit_n(&h, "TRK-RT-0000101");
    assert_eq!(print(&h, &a1, "B1000100"), j);
    let lam = assigned(&h, "LAM-01");
    assert_eq!(lam, j);
    s.refused(
        &h,
        "skip a patch under strict roll order",
        Refusal {
            status: 403,
            rule: "strict_roll_order",
            actor: "B1",
            station: Some("LAM-01"),
            serials: &["P2000105"],
        },
        &["P2000105", "P2000100"],
        || {
            c.post(
                "/stations/LAM-01/laminate",
                Some(&b1),
                &json!({"patch": "P2000105", "skip_reason": "creased"}),
            )
        },
    );
    // The printer walks to the other laminator with the booklet they printed.
    let a1 = move_operator(
        &h.hall,
        c,
        &a1,
        "A1",
        &ps,
        "B1000101-B1000109",
        "LAM-02",
        "P2000110-P2000111",
    );
    s.refused(
        &h,
        "laminate a booklet one printed",
        Refusal {
            status: 403,
            rule: "laminator_printed_booklet",
            actor: "A1",
            station: Some("LAM-02"),
            serials: &["B1000100"],
        },
        &["B1000100", "P2000110"],
        || {
            c.post(
                "/stations/LAM-02/laminate",
                Some(&a1),
                &json!({"patch": "P2000110", "booklet": "B1000100"}),
            )
        },
    );
}

/// The custody rules merged since (issue 16, points 3, 5 and 9): the issue cap, co-signer PINs
/// and spoilage approval. One printer (PRINT-01) and one laminator (LAM-01) work; V1 holds a
/// session at LAM-02 and V2 one at PRINT-02, whose devices are paused (the line assigns them
/// nothing), so no work is ever queued for them.
#[allow(clippy::too_many_lines)]
fn hall_c(s: &mut Suite) {
    let h = s.hall("rt-c", "");
    let c = h.c;
    for d in ["PR-02", "LM-02"] {
        c.post(&format!("/devices/{d}/pause"), Some(&h.sup), &json!({}))
            .expect(200, "pause a device");
    }
    let a1 = h.hall.sign_in("A1", Some("PRINT-01"));
    let ps = open_and_issue(c, &a1, "A1", "PRINT-01", "B1000100-B1000119");
    let b1 = h.hall.sign_in("B1", Some("LAM-01"));
    open_and_issue(c, &b1, "B1", "LAM-01", "P2000100-P2000119");
    let open = |tok: &str, st: &str| {
        c.post("/custody/sessions", Some(tok), &json!({ "station": st }))
            .expect(200, "open a session")["session"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // ---- the issue cap: no work queued for lamination, so a session holds at most 25 ----
    let v1 = h.hall.sign_in("V1", Some("LAM-02"));
    let vs = open(&v1, "LAM-02");
    let issue = |tok: &str, range: &'static str, counters: Value| {
        let (tok, vs) = (tok.to_string(), vs.clone());
        move || {
            let r = c.post(
                &format!("/custody/sessions/{vs}/issue"),
                Some(&tok),
                &json!({ "range": range, "counters": counters }),
            );
            if r.status == 409 {
                let m = r.body["error"]["message"].as_str().unwrap_or_default();
                assert!(m.contains("at most 25"), "the cap is named: {}", r.text);
            }
            r
        }
    };
    fn capped<'a>(actor: &'a str, serials: &'a [&'a str]) -> Refusal<'a> {
        Refusal {
            status: 409,
            rule: "issue_cap",
            actor,
            station: Some("LAM-02"),
            serials,
        }
    }
    s.refused(
        &h,
        "issue more than the station's work needs (26, none queued)",
        capped("V1", &["P2000150", "P2000175"]),
        &["P2000150", "P2000175"],
        issue(&v1, "P2000150-P2000175", counters("V1", "S1")),
    );
    issue(&v1, "P2000150-P2000159", counters("V1", "S1"))().expect(200, "10 patches");
    issue(&v1, "P2000160-P2000169", counters("V1", "S1"))().expect(200, "10 more");
    s.refused(
        &h,
        "split into small issues: the one that crosses the cap",
        capped("V1", &["P2000170", "P2000179"]),
        &["P2000170", "P2000179"],
        issue(&v1, "P2000170-P2000179", counters("V1", "S1")),
    );
    issue(&v1, "P2000170-P2000174", counters("V1", "S1"))().expect(200, "up to the cap");
    assert_eq!(session_held(&h, &vs).len(), 25);
    s.refused(
        &h,
        "a supervisor issues into an operator's session beyond the cap",
        capped("S1", &["P2000175"]),
        &["P2000175"],
        issue(&h.sup, "P2000175-P2000175", counters("S1", "V1")),
    );
    assert_eq!(session_held(&h, &vs).len(), 25, "nothing more issued");

    // ---- co-signer PINs: V2 at PRINT-02 guesses S1's (blocked for 15 minutes after) ----
    let v2 = h.hall.sign_in("V2", Some("PRINT-02"));
    let v2s = open(&v2, "PRINT-02");
    let guess = |s1_pin: &'static str, code: &'static str| {
        let (v2, v2s) = (v2.clone(), v2s.clone());
        move || {
            let r = c.post(
                &format!("/custody/sessions/{v2s}/issue"),
                Some(&v2),
                &json!({"range": "B1000150-B1000151", "counters": [
                    {"user": "V2", "pin": pin("V2")}, {"user": "S1", "pin": s1_pin},
                ]}),
            );
            assert_eq!(r.body["error"]["code"], code, "{}", r.text);
            // Blocked, the asker's own signature (the first) is not even checked.
            let field = if code == "cosign_blocked" {
                "counters[0]"
            } else {
                "counters[1]"
            };
            assert_eq!(r.body["error"]["field"], field, "{}", r.text);
            r
        }
    };
    let by_v2 = |status: u16| Refusal {
        status,
        rule: "cosigner_pin",
        actor: "V2",
        station: Some("PRINT-02"),
        serials: &[],
    };
    let mut last = 0;
    for (k, p) in ["999999", "111111", "222222", "333333", "444444"]
        .into_iter()
        .enumerate()
    {
        let name = if k == 0 {
            "a wrong co-signer PIN in an issue's counters".to_string()
        } else {
            format!("guess the co-signer's PIN until blocked #{}", k + 1)
        };
        let a = s.refused_as(
            &h,
            &name,
            by_v2(403),
            ("cosigner_failures", "V2"),
            &["B1000150", "B1000151"],
            guess(p, "cosigner_pin"),
        );
        let n = a["occurrences"].as_u64().unwrap();
        assert!(
            k == 0 || n == last + 1,
            "one more occurrence per guess: {a}"
        );
        last = n;
    }
    // The sixth attempt, even with the right PIN, is blocked (and recorded, critical).
    let a = s.refused_as(
        &h,
        "guess the co-signer's PIN until blocked #6 (the right PIN)",
        by_v2(423),
        ("cosigner_failures", "V2"),
        &["B1000150", "B1000151"],
        guess(pin("S1"), "cosign_blocked"),
    );
    assert_eq!(a["occurrences"].as_u64(), Some(last + 1), "{a}");
    assert_eq!(a["severity"], "critical", "{a}");
    s.rows.last_mut().unwrap().outcome = "423 cosign_blocked (rule cosigner_pin)".into();
    assert!(session_held(&h, &v2s).is_empty(), "nothing issued to V2");
    // S1 is not locked out: S1 signs in, and co-signs A1's issue at PRINT-01.
    let r = c.post("/session", None, &json!({"user": "S1", "pin": pin("S1")}));
    assert_eq!(r.status, 200, "S1 signs in: {}", r.text);
    c.post(
        &format!("/custody/sessions/{ps}/issue"),
        Some(&a1),
        &json!({"range": "B1000120-B1000121", "counters": counters("A1", "S1")}),
    )
    .expect(200, "S1 co-signs for A1");
    s.refused_as(
        &h,
        "a destruction witness's wrong PIN",
        Refusal {
            status: 403,
            rule: "cosigner_pin",
            actor: "S1",
            station: None,
            serials: &[],
        },
        ("cosigner_failures", "S1"),
        &["B1000190"],
        || {
            let r = c.post(
                "/custody/destructions",
                Some(&h.sup),
                &json!({"batch": "D-RT-3", "serials": ["B1000190"],
                        "witnesses": [{"user": "C1", "pin": pin("C1")},
                                      {"user": "D1", "pin": "999999"}],
                        "method": "shredding", "certificate": "C-RT-3"}),
            );
            assert_eq!(r.body["error"]["code"], "cosigner_pin", "{}", r.text);
            assert_eq!(r.body["error"]["field"], "witnesses[1]", "{}", r.text);
            r
        },
    );

    // ---- spoilage approval: B1 reports defects at LAM-01 ----
    let (j1, _) = submit_n(&h, "TRK-RT-0000201");
    assert_eq!(print(&h, &a1, "B1000100"), j1);
    laminated(&h, &b1, j1, "P2000100");
    let defect = |j: u64| {
        let head = ledger_head(c, &h.aud);
        c.post(
            "/stations/LAM-01/defect",
            Some(&b1),
            &json!({"reason": "air bubble under the patch"}),
        )
        .expect(200, "the defect report");
        wait_job_state(c, &h.sup, j, &["defect_reported"]);
        assert!(
            refusals_after(c, &h.aud, head).is_empty(),
            "nothing refused"
        );
    };
    let a = s.recorded(
        &h,
        "a defect report on a good lamination",
        "200; items_spoiled (awaiting approval), job defect_reported",
        "spoilage_awaiting_approval",
        Some("LAM-01"),
        &["P2000100", "B1000100"],
        || defect(j1),
    );
    let mut last = a["occurrences"].as_u64().unwrap();
    for (k, (booklet, patch)) in [("B1000101", "P2000101"), ("B1000102", "P2000102")]
        .into_iter()
        .enumerate()
    {
        let (j, _) = submit_n(&h, &format!("TRK-RT-000020{}", k + 2));
        assert_eq!(print(&h, &a1, booklet), j);
        laminated(&h, &b1, j, patch);
        let a = s.recorded(
            &h,
            &format!("repeated defect reports by one operator #{}", k + 2),
            "200; items_spoiled (awaiting approval): one more occurrence",
            "spoilage_awaiting_approval",
            Some("LAM-01"),
            &[patch, booklet],
            || defect(j),
        );
        let n = a["occurrences"].as_u64().unwrap();
        assert_eq!(n, last + 1, "one more occurrence per report: {a}");
        for x in ["P2000100", "B1000100"] {
            assert!(strings(&a["serials"]).iter().any(|y| y == x), "{a}");
        }
        last = n;
    }
    let pending = c
        .get("/custody/spoilage", Some(&h.sup))
        .expect(200, "spoilage")["pending"]
        .clone();
    assert_eq!(pending.as_array().map(Vec::len), Some(3), "{pending}");
    fn by_s1<'a>(rule: &'a str, serials: &'a [&'a str]) -> Refusal<'a> {
        Refusal {
            status: 409,
            rule,
            actor: "S1",
            station: None,
            serials,
        }
    }
    let decide = |tok: &str, verb: &'static str, scanned: Value| {
        let tok = tok.to_string();
        move || {
            c.post(
                &format!("/custody/spoilage/P2000100/{verb}"),
                Some(&tok),
                &json!({"scanned": scanned, "note": "seen"}),
            )
        }
    };
    s.refused(
        &h,
        "approve spoilage with one of its two items in hand",
        by_s1("spoilage_not_in_hand", &["P2000100", "B1000100"]),
        &["P2000100", "B1000100"],
        decide(&h.sup, "approve", json!(["B1000100"])),
    );
    // The reporter approving their own report (B1, an operator): refused as the ledger's
    // `self_approved_spoilage` would, recorded and alerted.
    s.refused(
        &h,
        "the reporter (an operator) approves their own report",
        Refusal {
            status: 403,
            rule: "self_approved_spoilage",
            actor: "B1",
            station: Some("LAM-01"),
            serials: &["P2000100"],
        },
        &["P2000100", "B1000100"],
        decide(&b1, "approve", json!(["P2000100", "B1000100"])),
    );
    s.refused(
        &h,
        "destroy an item still awaiting approval",
        by_s1("not_spoiled", &["P2000100"]),
        &["P2000100", "B1000100"],
        || {
            c.post(
                "/custody/destructions",
                Some(&h.sup),
                &json!({"batch": "D-RT-4", "serials": ["P2000100"],
                        "witnesses": counters("C1", "D1"),
                        "method": "shredding", "certificate": "C-RT-4"}),
            )
        },
    );
    decide(&h.sup, "approve", json!(["P2000100", "B1000100"]))().expect(200, "approved");
    s.refused(
        &h,
        "decide a spoilage report twice",
        by_s1("not_awaiting_approval", &["P2000100"]),
        &["P2000100", "B1000100"],
        decide(&h.sup, "reject", json!(["P2000100", "B1000100"])),
    );
}
