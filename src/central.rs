//! `hallctl central`: the national overview. It subscribes to every hall's topics
//! (`hallctl/v1/+/#`, see [`crate::mqtt`]) and keeps, per hall, what the monitoring room watches:
//! online or offline, throughput, backlog, on-time %, devices down, OEE, open alerts and the
//! hall's MQTT outbox backlog. The page and `/api/halls` are served by [`crate::api::central`].
//!
//! [`Overview::apply`] is pure: one message in, the state updated; it never fails on a message
//! it does not understand (it counts it). The figures come from the hall's `state` (its line
//! snapshot): throughput (`throughput.rate_per_hour`), on-time % (all classes' `on_time` counts
//! together), OEE (the mean of `performance.devices[].oee`), open alerts (`alerts`). A figure a
//! hall does not publish, or cannot yet (no job dispatched, no device observed), stays `None`
//! and the page shows "—".
//!
//! Events are deduplicated by `msg_id`: a hall resends from its cursor in order, so a message
//! whose id is not above the highest seen is a duplicate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, Incoming, QoS};
use serde::Serialize;
use serde_json::Value;

use crate::mqtt::{Broker, TOPIC_ROOT};

/// How far back throughput counts when a hall does not publish its own.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3600);

/// Every hall seen, by id.
#[derive(Debug, Default)]
pub struct Overview {
    halls: BTreeMap<String, HallState>,
    /// Messages that were not understood (bad topic or payload).
    pub ignored: u64,
}

#[derive(Debug, Default)]
struct HallState {
    status: Option<String>,
    state: Option<Value>,
    devices: BTreeMap<String, String>,
    highest_msg_id: u64,
    events: u64,
    duplicates: u64,
    /// Times of `dispatched` records seen, within [`THROUGHPUT_WINDOW`].
    dispatched: VecDeque<DateTime<Utc>>,
    alerts_open: BTreeSet<String>,
    last_message: Option<DateTime<Utc>>,
    last_checkpoint: Option<u64>,
}

/// One hall as the overview shows it. `None`: not known (shown as "—").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HallView {
    /// The hall's id.
    pub hall: String,
    /// Its name (from its state).
    pub name: Option<String>,
    /// `online` or `offline` (its retained status or last will).
    pub status: Option<String>,
    /// Passports dispatched in the last hour.
    pub throughput_per_hour: Option<f64>,
    /// Where the throughput comes from: `state` (the hall's own figure) or `events` (counted
    /// here from the `dispatched` records seen in the last hour).
    pub throughput_source: Option<String>,
    /// Jobs queued, all stages.
    pub backlog: Option<u64>,
    /// Jobs not finished.
    pub open_jobs: Option<u64>,
    /// On-time %, when the hall publishes it.
    pub on_time_pct: Option<f64>,
    /// Stations whose device is faulted or offline.
    pub devices_down: Vec<String>,
    /// Stations known.
    pub devices_total: u32,
    /// OEE %, when the hall publishes it.
    pub oee_pct: Option<f64>,
    /// Open alerts: from the hall's state when it lists them, else raised minus acknowledged
    /// among the events seen.
    pub open_alerts: u32,
    /// The hall's MQTT outbox backlog (records not yet acknowledged by the broker).
    pub outbox_backlog: Option<u64>,
    /// Distinct events received.
    pub events: u64,
    /// Duplicates dropped (resends after a reconnect).
    pub duplicates: u64,
    /// Highest event id seen.
    pub last_event: u64,
    /// The latest signed checkpoint seen.
    pub last_checkpoint: Option<u64>,
    /// When the last message came.
    pub last_message: Option<DateTime<Utc>>,
}

impl Overview {
    /// Takes one message: `hallctl/v1/<hall>/<what>` with its payload, received at `now`.
    pub fn apply(&mut self, topic: &str, payload: &[u8], now: DateTime<Utc>) {
        let Some(rest) = topic
            .strip_prefix(TOPIC_ROOT)
            .and_then(|r| r.strip_prefix('/'))
        else {
            self.ignored += 1;
            return;
        };
        let Some((hall, what)) = rest.split_once('/') else {
            self.ignored += 1;
            return;
        };
        if hall.is_empty() {
            self.ignored += 1;
            return;
        }
        let h = self.halls.entry(hall.to_string()).or_default();
        let understood = match what {
            "status" => match std::str::from_utf8(payload) {
                Ok(s @ ("online" | "offline")) => {
                    h.status = Some(s.to_string());
                    true
                }
                _ => false,
            },
            "state" => match serde_json::from_slice::<Value>(payload) {
                Ok(v) if v.is_object() => {
                    h.state = Some(v);
                    true
                }
                _ => false,
            },
            "events" => match serde_json::from_slice::<Value>(payload) {
                Ok(v) => h.event(&v, now),
                Err(_) => false,
            },
            // The same records as on `events`, which are counted.
            "alerts" => true,
            "checkpoints" => match serde_json::from_slice::<Value>(payload) {
                Ok(v) => match v["seq"].as_u64() {
                    Some(seq) => {
                        h.last_checkpoint = Some(h.last_checkpoint.unwrap_or(0).max(seq));
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            },
            _ => match what.strip_prefix("devices/") {
                Some(station) if !station.is_empty() => {
                    match serde_json::from_slice::<Value>(payload) {
                        Ok(v) => match v["readiness"].as_str() {
                            Some(r) => {
                                h.devices.insert(station.to_string(), r.to_string());
                                true
                            }
                            None => false,
                        },
                        Err(_) => false,
                    }
                }
                _ => false,
            },
        };
        if understood {
            h.last_message = Some(now);
        } else {
            self.ignored += 1;
        }
    }

    /// Every hall, by id, as of `now`.
    pub fn views(&self, now: DateTime<Utc>) -> Vec<HallView> {
        self.halls.iter().map(|(id, h)| h.view(id, now)).collect()
    }
}

impl HallState {
    fn event(&mut self, v: &Value, now: DateTime<Utc>) -> bool {
        let Some(id) = v["msg_id"].as_u64() else {
            return false;
        };
        if id <= self.highest_msg_id {
            self.duplicates += 1;
            return true;
        }
        self.highest_msg_id = id;
        self.events += 1;
        match v["record"].as_str().unwrap_or_default() {
            "dispatched" => {
                let at = v["at"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(now, |t| t.with_timezone(&Utc));
                self.dispatched.push_back(at);
                self.trim(now);
            }
            name if name.starts_with("alert") => {
                let d = &v["detail"];
                let alert = d["alert"]
                    .as_str()
                    .or_else(|| d["id"].as_str())
                    .map(str::to_string)
                    .or_else(|| d["alert"].as_u64().map(|n| n.to_string()));
                if let Some(a) = alert {
                    if name == "alert_raised" {
                        self.alerts_open.insert(a);
                    } else if matches!(
                        name,
                        "alert_acknowledged" | "alert_resolved" | "alert_cleared"
                    ) {
                        self.alerts_open.remove(&a);
                    }
                }
            }
            _ => {}
        }
        true
    }

    fn trim(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::from_std(THROUGHPUT_WINDOW).unwrap_or_default();
        while self.dispatched.front().is_some_and(|t| *t < now - window) {
            self.dispatched.pop_front();
        }
    }

    fn view(&self, id: &str, now: DateTime<Utc>) -> HallView {
        let state = self.state.as_ref();
        let num = |paths: &[&str]| -> Option<f64> {
            let s = state?;
            paths
                .iter()
                .find_map(|p| s.pointer(p).and_then(Value::as_f64))
        };
        let int = |p: &str| state.and_then(|s| s.pointer(p)).and_then(Value::as_u64);
        let window = chrono::Duration::from_std(THROUGHPUT_WINDOW).unwrap_or_default();
        let (throughput, source) = match num(&[
            "/throughput/rate_per_hour",
            "/throughput_per_hour",
            "/throughput/per_hour",
        ]) {
            Some(t) => (Some(t), "state"),
            None => (
                Some(
                    self.dispatched
                        .iter()
                        .filter(|t| **t >= now - window)
                        .count() as f64,
                ),
                "events",
            ),
        };
        let backlog = state
            .and_then(|s| s["queued"].as_array())
            .map(|q| q.iter().filter_map(Value::as_u64).sum());
        // Devices: the retained per-station messages; the state's stations until they come.
        let mut devices: BTreeMap<String, String> = state
            .and_then(|s| s["stations"].as_array())
            .map(|st| {
                st.iter()
                    .filter_map(|s| {
                        Some((
                            s["id"].as_str()?.to_string(),
                            s["readiness"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        devices.extend(self.devices.clone());
        let devices_down = devices
            .iter()
            .filter(|(_, r)| matches!(r.as_str(), "faulted" | "offline"))
            .map(|(s, _)| s.clone())
            .collect();
        let open_alerts = match state.map(|s| &s["alerts"]) {
            Some(Value::Array(a)) => a
                .iter()
                .filter(|x| x["open"].as_bool() != Some(false))
                .count(),
            _ => match state.and_then(|s| s["open_alerts"].as_u64()) {
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                None => self.alerts_open.len(),
            },
        };
        HallView {
            hall: id.to_string(),
            name: state.and_then(|s| s["name"].as_str()).map(str::to_string),
            status: self.status.clone(),
            throughput_per_hour: throughput,
            throughput_source: Some(source.to_string()),
            backlog,
            open_jobs: int("/open_jobs"),
            on_time_pct: on_time(state),
            devices_total: u32::try_from(devices.len()).unwrap_or(u32::MAX),
            devices_down,
            oee_pct: oee(state),
            open_alerts: u32::try_from(open_alerts).unwrap_or(u32::MAX),
            outbox_backlog: int("/outbox/backlog"),
            events: self.events,
            duplicates: self.duplicates,
            last_event: self.highest_msg_id,
            last_checkpoint: self.last_checkpoint,
            last_message: self.last_message,
        }
    }
}

/// On-time % over every class: `state.on_time` is `[{class, completed, on_time, percent}]`
/// (or a hall's own `on_time_pct`). `None` before the first completion.
fn on_time(state: Option<&Value>) -> Option<f64> {
    let s = state?;
    if let Some(p) = s["on_time_pct"].as_f64() {
        return Some(p);
    }
    let classes = s["on_time"].as_array()?;
    let (done, on_time) = classes.iter().fold((0u64, 0u64), |(d, o), c| {
        (
            d + c["completed"].as_u64().unwrap_or(0),
            o + c["on_time"].as_u64().unwrap_or(0),
        )
    });
    (done > 0).then(|| on_time as f64 * 100.0 / done as f64)
}

/// The hall's OEE %: the mean of its devices' OEE in the current shift
/// (`state.performance.devices[].oee`, a fraction), or a hall's own `oee_pct`. `None` when no
/// device has a figure.
fn oee(state: Option<&Value>) -> Option<f64> {
    let s = state?;
    if let Some(p) = s["oee_pct"].as_f64() {
        return Some(p);
    }
    let per_device: Vec<f64> = s
        .pointer("/performance/devices")?
        .as_array()?
        .iter()
        .filter_map(|d| d["oee"].as_f64())
        .collect();
    (!per_device.is_empty())
        .then(|| per_device.iter().sum::<f64>() * 100.0 / per_device.len() as f64)
}

/// What the central page serves: the overview and the broker connection.
#[derive(Debug, Clone, Default)]
pub struct Central {
    inner: Arc<Mutex<CentralInner>>,
}

#[derive(Debug, Default)]
struct CentralInner {
    overview: Overview,
    connected: bool,
    broker: String,
}

/// `/api/halls`: every hall, and whether central is connected to the broker.
#[derive(Debug, Clone, Serialize)]
pub struct HallsView {
    /// When this was built.
    pub at: DateTime<Utc>,
    /// The broker.
    pub broker: String,
    /// Whether central is connected to it.
    pub connected: bool,
    /// Messages not understood.
    pub ignored: u64,
    /// Every hall seen, by id.
    pub halls: Vec<HallView>,
}

impl Central {
    /// The view at `now`.
    pub fn halls(&self, now: DateTime<Utc>) -> HallsView {
        let i = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        HallsView {
            at: now,
            broker: i.broker.clone(),
            connected: i.connected,
            ignored: i.overview.ignored,
            halls: i.overview.views(now),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut CentralInner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Subscribes to every hall on `broker` and keeps `central` up to date, reconnecting with a
/// short backoff, until the task is dropped.
pub async fn follow(broker: Broker, central: Central) {
    central.with(|c| c.broker = broker.url.to_string());
    let (client, mut eventloop) = AsyncClient::new(broker.options(None), 64);
    let filter = format!("{TOPIC_ROOT}/+/#");
    let mut backoff = Duration::from_millis(200);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(200);
                central.with(|c| c.connected = true);
                tracing::info!(broker = %broker.url, "central: connected, subscribing to {filter}");
                // A clean session forgets subscriptions: subscribe on every connect.
                if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::error!("central: cannot subscribe: {e}");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                central.with(|c| c.overview.apply(&p.topic, &p.payload, Utc::now()));
            }
            Ok(_) => {}
            Err(e) => {
                let was = central.with(|c| std::mem::replace(&mut c.connected, false));
                if was {
                    tracing::warn!("central: lost the broker: {e}");
                } else {
                    tracing::debug!("central: broker unreachable: {e}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn event(id: u64, record: &str, at: &str, detail: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "msg_id": id, "hall": "h1", "seq": id, "record": record, "jobs": 0,
            "actor": "LINE", "at": at, "detail": detail,
        }))
        .expect("json")
    }

    #[test]
    fn a_hall_is_built_from_its_topics_and_fields_it_does_not_publish_stay_unknown() {
        let now = t("2026-11-21T10:30:00Z");
        let mut o = Overview::default();
        o.apply("hallctl/v1/h1/status", b"online", now);
        o.apply(
            "hallctl/v1/h1/state",
            br#"{"hall":"h1","name":"Hall one","queued":[3,2,1,0],"open_jobs":9,
                 "outbox":{"cursor":40,"backlog":2},
                 "stations":[{"id":"P1","readiness":"ready"},{"id":"L1","readiness":"ready"}]}"#,
            now,
        );
        o.apply(
            "hallctl/v1/h1/devices/L1",
            br#"{"station":"L1","readiness":"faulted"}"#,
            now,
        );
        o.apply(
            "hallctl/v1/h1/events",
            &event(1, "dispatched", "2026-11-21T10:00:00Z", Value::Null),
            now,
        );
        // An hour and more ago: outside the window.
        o.apply(
            "hallctl/v1/h1/events",
            &event(2, "dispatched", "2026-11-21T09:00:00Z", Value::Null),
            now,
        );
        o.apply("hallctl/v1/h1/checkpoints", br#"{"seq":1000}"#, now);
        let v = &o.views(now)[0];
        assert_eq!(v.hall, "h1");
        assert_eq!(v.name.as_deref(), Some("Hall one"));
        assert_eq!(v.status.as_deref(), Some("online"));
        assert_eq!(v.backlog, Some(6));
        assert_eq!(v.open_jobs, Some(9));
        assert_eq!(
            (v.devices_total, v.devices_down.clone()),
            (2, vec!["L1".to_string()])
        );
        assert_eq!(v.throughput_per_hour, Some(1.0));
        assert_eq!(v.throughput_source.as_deref(), Some("events"));
        assert_eq!(v.outbox_backlog, Some(2));
        assert_eq!(v.last_checkpoint, Some(1000));
        assert_eq!((v.on_time_pct, v.oee_pct), (None, None));
        assert_eq!(o.ignored, 0);
    }

    #[test]
    fn duplicates_are_dropped_by_msg_id_and_alerts_open_and_close() {
        let now = t("2026-11-21T10:30:00Z");
        let mut o = Overview::default();
        let at = "2026-11-21T10:29:00Z";
        let raised = serde_json::json!({"kind": "alert_raised", "alert": "A-7"});
        o.apply(
            "hallctl/v1/h1/events",
            &event(1, "alert_raised", at, raised.clone()),
            now,
        );
        o.apply(
            "hallctl/v1/h1/events",
            &event(2, "assigned", at, Value::Null),
            now,
        );
        // A resend after a reconnect: 1 and 2 again, then 3.
        o.apply(
            "hallctl/v1/h1/events",
            &event(1, "alert_raised", at, raised),
            now,
        );
        o.apply(
            "hallctl/v1/h1/events",
            &event(2, "assigned", at, Value::Null),
            now,
        );
        o.apply(
            "hallctl/v1/h1/events",
            &event(3, "dispatched", at, Value::Null),
            now,
        );
        let v = &o.views(now)[0];
        assert_eq!((v.events, v.duplicates, v.last_event), (3, 2, 3));
        assert_eq!(v.open_alerts, 1);
        let ack = serde_json::json!({"kind": "alert_acknowledged", "alert": "A-7"});
        o.apply(
            "hallctl/v1/h1/events",
            &event(4, "alert_acknowledged", at, ack),
            now,
        );
        assert_eq!(o.views(now)[0].open_alerts, 0);
    }

    #[test]
    fn figures_a_hall_publishes_are_read_and_garbage_is_counted_not_fatal() {
        let now = Utc::now();
        let mut o = Overview::default();
        o.apply(
            "hallctl/v1/h2/state",
            br#"{"queued":[0,0,0,0],
                 "on_time":[{"class":"normal","completed":150,"on_time":150,"percent":100.0},
                            {"class":"urgent","completed":50,"on_time":49,"percent":98.0},
                            {"class":"fast_track","completed":0,"on_time":0,"percent":null}],
                 "performance":{"shift":"2026-11-21A","devices":[{"device":"PR-01","oee":0.8},
                            {"device":"LM-01","oee":0.62}]},
                 "throughput":{"hourly":[],"shifts":[],"rate_per_hour":1650.0},
                 "alerts":[{"id":"AL-1","open":true,"acknowledged":null},
                           {"id":"AL-2","open":true,"acknowledged":{"by":"S1"}}]}"#,
            now,
        );
        for (topic, payload) in [
            ("hallctl/v1/h2/state", &b"not json"[..]),
            ("hallctl/v1/h2/status", b"maybe"),
            ("hallctl/v1/h2/events", br#"{"no":"id"}"#),
            ("hallctl/v1/h2/devices/", b"{}"),
            ("hallctl/v1/h2/unknown", b"{}"),
            ("other/h2/state", b"{}"),
            ("hallctl/v1/h2", b"{}"),
        ] {
            o.apply(topic, payload, now);
        }
        assert_eq!(o.ignored, 7);
        let v = &o.views(now)[0];
        assert_eq!(v.on_time_pct, Some(99.5));
        assert!(
            v.oee_pct.is_some_and(|p| (p - 71.0).abs() < 1e-9),
            "{:?}",
            v.oee_pct
        );
        assert_eq!(v.throughput_per_hour, Some(1650.0));
        assert_eq!(v.throughput_source.as_deref(), Some("state"));
        // An acknowledged condition stays open until it clears.
        assert_eq!(v.open_alerts, 2);
    }
}
