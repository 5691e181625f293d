//! Alerts (open and recently closed, a supervisor's acknowledgement) and staff and machine
//! performance. Performance is for supervisors and monitoring services only: never for
//! operators at stations.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Auth};
use crate::ledger::Role;
use crate::line::{Alert, AlertList, PerfReport, Period};

/// Who may read alerts.
const ALERT_READERS: &[Role] = &[Role::Supervisor, Role::Auditor, Role::Admin, Role::Monitor];
/// Who may acknowledge an alert.
const ACKNOWLEDGERS: &[Role] = &[Role::Supervisor];
/// Who may read performance figures.
const PERFORMANCE_READERS: &[Role] = &[Role::Supervisor, Role::Monitor];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(ack))
        .routes(routes!(resolve))
        .routes(routes!(performance))
}

/// Open alerts (oldest first) and the last closed ones (most recent first). Supervisors,
/// auditors, admins, monitors.
#[utoipa::path(get, path = "/alerts",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(State(s): State<AppState>, auth: Auth) -> Result<Json<AlertList>, ApiError> {
    auth.require(ALERT_READERS)?;
    Ok(Json(s.line.alerts().await?))
}

/// A supervisor acknowledges an alert: recorded in the ledger (`alert_acknowledged`, with the
/// supervisor as actor). It means "seen": a condition (device, backlog, due at risk) stays
/// open until it clears, an incident (refusals, reconciliation, roll skip, abandoned session,
/// missing item...) until a supervisor resolves it with a note (`POST /alerts/{id}/resolve`).
/// 404 for an unknown id, 409 when it was acknowledged already.
#[utoipa::path(post, path = "/alerts/{id}/ack", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ack(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Alert>, ApiError> {
    let p = auth
        .require_recorded(&s, ACKNOWLEDGERS, "acknowledge alerts")
        .await?;
    let id = id.trim();
    if id.is_empty() || id.len() > 32 {
        return Err(ApiError::invalid("id", "an alert id is like AL-17"));
    }
    Ok(Json(
        s.line.ack_alert(p.user.clone(), id.to_string()).await?,
    ))
}

/// A resolution: what was found and done.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// The supervisor's note (required, 1–500 characters; no passport-holder data).
    pub note: String,
}

/// A supervisor resolves an incident with a note: recorded in the ledger (`alert_resolved`,
/// with the supervisor as actor); the incident closes. 404 for an id not open, 409 for a
/// condition (it clears by itself), 422 without a note.
#[utoipa::path(post, path = "/alerts/{id}/resolve", params(("id" = String, Path)), request_body = Resolve,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn resolve(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Resolve>,
) -> Result<Json<Alert>, ApiError> {
    let p = auth
        .require_recorded(&s, ACKNOWLEDGERS, "resolve incidents")
        .await?;
    let id = id.trim();
    if id.is_empty() || id.len() > 32 {
        return Err(ApiError::invalid("id", "an alert id is like AL-17"));
    }
    let note = super::text("note", &r.note)?;
    if note.trim().is_empty() || note.chars().count() > 500 {
        return Err(ApiError::invalid(
            "note",
            "say what was found and done (1–500 characters)",
        ));
    }
    Ok(Json(
        s.line
            .resolve_alert(p.user.clone(), id.to_string(), note)
            .await?,
    ))
}

/// `?shift=2026-11-21A` or `?day=2026-11-21` (neither: the current shift).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// A shift: the date it starts and A (06–14 UTC), B (14–22) or C (22–06).
    pub shift: Option<String>,
    /// A calendar day (UTC).
    pub day: Option<String>,
}

/// Staff and machine performance over a shift or a day: per device completed and spoiled
/// steps, spoilage rate, mean cycle time, idle time, downtime by reason (fault, offline,
/// paused, no work) and OEE (availability × performance × quality); per operator completed
/// and spoiled steps, spoilage rate, mean cycle time, idle time. Measured since the
/// controller started. Supervisors and monitoring services only.
#[utoipa::path(get, path = "/performance", params(PeriodQuery),
    responses((status = 200, body = PerfReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn performance(
    State(s): State<AppState>,
    auth: Auth,
    q: Result<ApiQuery<PeriodQuery>, ApiError>,
) -> Result<Json<PerfReport>, ApiError> {
    auth.require(PERFORMANCE_READERS)?;
    let ApiQuery(q) = q?;
    let period = match (q.shift, q.day) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "shift",
                "give a shift or a day, not both",
            ));
        }
        (Some(sh), None) => Period::parse_shift(&sh).map_err(|m| ApiError::invalid("shift", m))?,
        (None, Some(d)) => Period::parse_day(&d).map_err(|m| ApiError::invalid("day", m))?,
        (None, None) => Period::shift_at(chrono::Utc::now()),
    };
    Ok(Json(s.line.performance(period).await?))
}
