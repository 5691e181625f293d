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
use super::extract::bearer;
use crate::auth::Principal;
use crate::ledger::Role;
use crate::line::LineSnapshot;
use crate::status::{StatusEvent, StatusHub};

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
    /// `true` when the client fell behind and the events it missed were dropped: this
    /// snapshot replaces them.
    resync: bool,
    /// How many events were dropped (on a resync).
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    #[serde(flatten)]
    snapshot: &'a LineSnapshot,
}

fn snapshot_event(hub: &StatusHub, missed: Option<u64>) -> Event {
    let snap = hub.snapshot();
    let body = SnapshotEvent {
        resync: missed.is_some(),
        missed,
        snapshot: &snap,
    };
    Event::default()
        .event("snapshot")
        .data(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
}

fn status_event(e: &StatusEvent) -> Event {
    Event::default().event(e.name()).data(e.to_json())
}

/// The line's live status as server-sent events: first `event: snapshot` (the whole
/// [`LineSnapshot`], `resync: false`), then one event per ledger record the line persists
/// (`event: assigned`, `booklet_printed`, `patch_applied`, `job_changed`, ...: seq, job,
/// station, actor; never passport-holder data) and per device readiness change
/// (`event: device_state`). A client that falls behind is not waited for: the events it missed
/// are dropped and it gets a fresh `event: snapshot` with `resync: true`. Comments keep the
/// connection alive. Token in `Authorization: Bearer` or `?token=`; supervisors, auditors,
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
        Some(t) => t.trim(),
        None => bearer(&headers)?,
    };
    let p = s.users.authenticate(token)?;
    admit_watcher(&p)?;
    let hub = s.line.status().clone();
    // Subscribe before reading the snapshot: nothing falls between the two.
    let rx = hub.subscribe();
    Ok(Sse::new(events(hub, rx)).keep_alive(KeepAlive::default()))
}

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

struct Cursor {
    hub: StatusHub,
    rx: Receiver<StatusEvent>,
    started: bool,
}

/// The snapshot, then the events; a lag becomes a resync from a fresh snapshot. Ends when the
/// hub closes (shutdown) or the line's bus is gone.
fn events(
    hub: StatusHub,
    rx: Receiver<StatusEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        hub,
        rx,
        started: false,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if !c.started {
            c.started = true;
            let first = snapshot_event(&c.hub, None);
            return Some((Ok(first), c));
        }
        let next = tokio::select! {
            r = c.rx.recv() => r,
            () = c.hub.closed() => return None,
        };
        let event = match next {
            Ok(e) => status_event(&e),
            Err(RecvError::Lagged(missed)) => {
                // Jump to the newest events: those still buffered are older than the snapshot.
                c.rx = c.rx.resubscribe();
                snapshot_event(&c.hub, Some(missed))
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), c))
    })
}

/// `GET /metrics`: Prometheus text format. Token in `Authorization: Bearer` (monitor,
/// supervisor, admin). Not under `/api/v1`: where scrapers look.
pub(super) async fn metrics(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = s.users.authenticate(bearer(&headers)?)?;
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
