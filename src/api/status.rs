//! The live status of the line: the SSE stream at `/api/v1/stream` and the Prometheus
//! exposition at `/metrics` (see [`crate::status`]).

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::credential;
use crate::auth::Principal;
use crate::ledger::Role;
use crate::line::LineSnapshot;
use crate::status::{Numbered, StatusHub};

/// Who may watch the line (an operator too, but only when signed in at a station).
const WATCHERS: &[Role] = &[Role::Supervisor, Role::Auditor, Role::Admin, Role::Monitor];

/// Who may scrape the metrics.
const SCRAPERS: &[Role] = &[Role::Monitor, Role::Supervisor, Role::Admin];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// `?token=`: browsers' `EventSource` cannot set headers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StreamQuery {
    /// The bearer token, when the `Authorization` header cannot be sent.
    pub token: Option<String>,
}

/// The body of an `event: snapshot`.
#[derive(Debug, Serialize)]
struct SnapshotEvent<'a> {
    /// `true` when this snapshot replaces events the client did not get (it fell behind, or
    /// they were emitted as it subscribed).
    resync: bool,
    /// How many events this snapshot stands in for (on a resync: those the client did not get
    /// as events).
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    #[serde(flatten)]
    snapshot: &'a LineSnapshot,
}

fn snapshot_event(snap: &LineSnapshot, resync: bool, missed: Option<u64>) -> Event {
    let body = SnapshotEvent {
        resync,
        missed,
        snapshot: snap,
    };
    Event::default()
        .event("snapshot")
        .data(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
}

fn status_event(n: &Numbered) -> Event {
    Event::default()
        .id(n.id.to_string())
        .event(n.event.name())
        .data(&*n.json)
}

/// The line's live status as server-sent events: first `event: snapshot` (the whole
/// [`LineSnapshot`], `resync: false`), then one event per ledger record the line persists
/// (`event: assigned`, `booklet_printed`, `patch_applied`, `job_changed`, ...: seq, job,
/// station, actor; never passport-holder data), per device readiness change
/// (`event: device_state`) and per device step finished (`event: step_phase`: station, job,
/// stage, `awaiting_confirmation`: the operator confirms or reports a defect); alerts come as their records (`alert_raised`, `alert_cleared`,
/// `alert_acknowledged`, each with an `alert` object: id, and kind, subject and detail when
/// raised). Operators get snapshots without the performance summary. A client that falls
/// behind is not waited for: the events it missed
/// are dropped and it gets a fresh `event: snapshot` with `resync: true`, covering every event
/// emitted until it fell behind, and `missed`: how many events that snapshot stands in for. A comment every 2 s
/// of quiet is the stream's heartbeat (the pages say offline after 5 s without). Token in `Authorization: Bearer`, `?token=` or the hall UI's session cookie; supervisors, auditors,
/// admins, monitors, and operators signed in at a station.
#[utoipa::path(get, path = "/stream", params(StreamQuery), tag = "status",
    responses(
        (status = 200, description = "an event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let token = match q.token.as_deref() {
        Some(t) => t.trim().to_string(),
        None => credential(&axum::http::Method::GET, &headers, &s.web)?.token,
    };
    let p = s.users.authenticate(&token)?;
    admit_watcher(&p)?;
    let hub = s.line.status().clone();
    // Subscribe before reading the snapshot: nothing falls between the two.
    let rx = hub.subscribe();
    // Performance figures are for supervisors and monitoring, never for a station.
    let with_performance = p.role != Role::Operator;
    Ok(
        Sse::new(events(hub, rx, with_performance))
            .keep_alive(KeepAlive::new().interval(HEARTBEAT)),
    )
}

/// How often a quiet stream gets a heartbeat (an SSE comment): the pages say "offline" after
/// 5 s without one (`STREAM_SILENCE_MS` in hall-ui's common.js).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

fn admit_watcher(p: &Principal) -> Result<(), ApiError> {
    if p.role == Role::Operator && p.station.is_some() {
        return Ok(());
    }
    if p.role == Role::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an operator may watch the line only when signed in at a station",
        ));
    }
    crate::auth::require(p, WATCHERS)?;
    Ok(())
}

/// What a stream sends, before it is rendered.
#[derive(Debug)]
enum Item {
    /// The line at a glance; `resync` when it replaces events (`missed` of them).
    Snapshot {
        snap: LineSnapshot,
        resync: bool,
        missed: Option<u64>,
    },
    /// One status event.
    Status(Numbered),
}

impl Item {
    /// The SSE event (snapshots without the performance summary unless `with_performance`).
    fn render(self, with_performance: bool) -> Event {
        match self {
            Item::Status(n) => status_event(&n),
            Item::Snapshot {
                mut snap,
                resync,
                missed,
            } => {
                if !with_performance {
                    snap.performance = None;
                }
                snapshot_event(&snap, resync, missed)
            }
        }
    }
}

struct Cursor {
    hub: StatusHub,
    rx: Receiver<Numbered>,
    started: bool,
    /// The id of the next event to send: those below it are in the snapshot the client has.
    next: u64,
}

impl Cursor {
    /// A snapshot; from here on only events after it are sent.
    fn snapshot(&mut self, snap: LineSnapshot, resync: bool, missed: Option<u64>) -> Item {
        self.next = snap.events + 1;
        Item::Snapshot {
            snap,
            resync,
            missed,
        }
    }
}

/// The stream's events, rendered (see [`items`]).
fn events(
    hub: StatusHub,
    rx: Receiver<Numbered>,
    with_performance: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    use futures_util::StreamExt as _;
    items(hub, rx).map(move |i| Ok(i.render(with_performance)))
}

/// The snapshot, then the events; a lag becomes a resync from a fresh snapshot. Ends when the
/// hub closes (shutdown) or the line's bus is gone.
///
/// Snapshots are stamped with the last event id they reflect, so the stream never sends an
/// event twice over and never leaves a hole: an event that is already in the snapshot is
/// skipped, and one that arrives after a hole (emitted before this client subscribed, while
/// the snapshot it got was not yet published, or dropped because the client fell behind)
/// waits for the snapshot that covers it and sends that instead, with `missed`: how many
/// events it stands in for.
fn items(hub: StatusHub, rx: Receiver<Numbered>) -> impl Stream<Item = Item> {
    let cursor = Cursor {
        hub,
        rx,
        started: false,
        next: 1,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if !c.started {
            c.started = true;
            let first = c.snapshot(c.hub.snapshot(), false, None);
            return Some((first, c));
        }
        loop {
            let next = tokio::select! {
                r = c.rx.recv() => r,
                () = c.hub.closed() => return None,
            };
            let cover = match next {
                Ok(n) if n.id < c.next => continue,
                Ok(n) if n.id == c.next => {
                    c.next += 1;
                    return Some((Item::Status(n), c));
                }
                // A hole before this event: the snapshot that covers it.
                Ok(n) => n.id,
                Err(RecvError::Lagged(_)) => {
                    // Jump to the newest events (those still buffered are older than the
                    // snapshot to come), and to a snapshot covering every event emitted so far:
                    // the one in hand may be older than what was dropped, or even than what
                    // the client already has.
                    c.rx = c.rx.resubscribe();
                    c.hub.last_id()
                }
                Err(RecvError::Closed) => return None,
            };
            let mut watch = c.hub.watch();
            let snap = tokio::select! {
                s = watch.wait_for(|s| s.events >= cover) => match s {
                    Ok(s) => s.clone(),
                    Err(_) => return None,
                },
                () = c.hub.closed() => return None,
            };
            let missed = (snap.events + 1).saturating_sub(c.next);
            return Some((c.snapshot(snap, true, Some(missed)), c));
        }
    })
}

/// `GET /metrics`: Prometheus text format. Token in `Authorization: Bearer` (monitor,
/// supervisor, admin). Not under `/api/v1`: where scrapers look.
pub(super) async fn metrics(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = credential(&axum::http::Method::GET, &headers, &s.web)?;
    let p = s.users.authenticate(&c.token)?;
    crate::auth::require(&p, SCRAPERS)?;
    let text = s.line.status().render_metrics(&s.hall.id);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::status::{DeviceStateEvent, StatusEvent};
    use hallctl_jobs::job::StationId;

    fn emit(hub: &StatusHub, n: usize) {
        for _ in 0..n {
            hub.emit(StatusEvent::DeviceState(DeviceStateEvent {
                station: StationId::new("PRINT-01"),
                device: None,
                readiness: hallctl_jobs::scheduler::DeviceReadiness::Ready,
                at: chrono::Utc::now(),
            }));
        }
    }

    /// Whether the stream has an item ready now.
    async fn ready(s: &mut (impl Stream<Item = Item> + Unpin)) -> Option<Item> {
        tokio::time::timeout(std::time::Duration::from_millis(50), s.next())
            .await
            .ok()
            .flatten()
    }

    fn status_id(i: Option<Item>) -> u64 {
        match i {
            Some(Item::Status(n)) => n.id,
            other => panic!("not a status event: {other:?}"),
        }
    }

    fn snapshot_of(i: Option<Item>) -> (u64, bool, Option<u64>) {
        match i {
            Some(Item::Snapshot {
                snap,
                resync,
                missed,
            }) => (snap.events, resync, missed),
            other => panic!("not a snapshot: {other:?}"),
        }
    }

    /// A client that falls behind while the published snapshot is older than what it missed
    /// gets one snapshot covering everything emitted, saying how many events it stands in for;
    /// never a stale one first (which would take the client back in time, then resync again).
    #[tokio::test]
    async fn a_lagging_client_waits_for_a_snapshot_covering_what_it_missed() {
        let hub = StatusHub::new(4);
        emit(&hub, 2);
        hub.publish(LineSnapshot::default());
        let mut s = Box::pin(items(hub.clone(), hub.subscribe()));
        assert_eq!(snapshot_of(ready(&mut s).await), (2, false, None));
        emit(&hub, 1);
        assert_eq!(status_id(ready(&mut s).await), 3);

        // 10 events into a ring of 4: the client lags; the line has not published yet.
        emit(&hub, 10);
        assert!(
            ready(&mut s).await.is_none(),
            "a stale snapshot was sent for a lag"
        );
        hub.publish(LineSnapshot::default());
        assert_eq!(snapshot_of(ready(&mut s).await), (13, true, Some(10)));

        // Then it follows the events again, from the next one.
        emit(&hub, 1);
        assert_eq!(status_id(ready(&mut s).await), 14);
    }

    /// An event that arrives after a hole (events emitted before the client subscribed, while
    /// the snapshot it got was not yet published) waits for the snapshot covering it.
    #[tokio::test]
    async fn a_hole_is_filled_by_the_snapshot_that_covers_it() {
        let hub = StatusHub::new(64);
        emit(&hub, 2);
        let mut s = Box::pin(items(hub.clone(), hub.subscribe()));
        assert_eq!(snapshot_of(ready(&mut s).await), (0, false, None));
        emit(&hub, 1);
        assert!(ready(&mut s).await.is_none(), "event 3 sent after a hole");
        hub.publish(LineSnapshot::default());
        assert_eq!(snapshot_of(ready(&mut s).await), (3, true, Some(3)));
        emit(&hub, 1);
        assert_eq!(status_id(ready(&mut s).await), 4);
    }
}
