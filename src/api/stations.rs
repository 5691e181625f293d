//! Stations, their terminals' actions, devices and dispatch bags. An operator acts only at the
//! station their token was issued for, and only on the work the line assigned.

use axum::Json;
use axum::extract::{Path, State};
use hallctl_jobs::job::{DeviceId, JobId, StationId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
use super::{AppState, serial};
use crate::auth::Principal;
use crate::ledger::Role;
use crate::line::{Bag, LineSnapshot, QcOutcome, StationView};

/// A booklet scan (print, QC, dispatch).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookletScan {
    /// The booklet serial.
    pub booklet: String,
    /// Optional: the job the operator believes this is for. Operators never choose work: a
    /// job other than the assigned one is refused.
    #[serde(default)]
    pub job: Option<u64>,
}

/// A patch scan at lamination.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchScan {
    /// The patch serial.
    pub patch: String,
    /// Why a patch out of roll order is used (raises an alert).
    #[serde(default)]
    pub skip_reason: Option<String>,
    /// Optional: the job the operator believes this is for (see [`BookletScan::job`]).
    #[serde(default)]
    pub job: Option<u64>,
    /// Optional: the booklet in the operator's hands, scanned before the patch. Refused when
    /// this operator printed it, or when it is not the assigned job's booklet.
    #[serde(default)]
    pub booklet: Option<String>,
}

/// A defect report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Defect {
    /// What is wrong.
    pub reason: String,
}

/// A QC read-back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QcRead {
    /// The booklet serial.
    pub booklet: String,
    /// The two MRZ lines read back from the data page.
    pub mrz: [String; 2],
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(line))
        .routes(routes!(station))
        .routes(routes!(print))
        .routes(routes!(laminate))
        .routes(routes!(confirm))
        .routes(routes!(defect))
        .routes(routes!(qc))
        .routes(routes!(pack))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(clear_fault))
        .routes(routes!(vacate))
        .routes(routes!(bag))
        .routes(routes!(close_bag))
}

/// The operator acting at `station`: their token must have been issued there. Acting at
/// another station is recorded and alerted (`not_at_station`).
async fn at_station<'a>(
    s: &AppState,
    auth: &'a Auth,
    station: &str,
) -> Result<&'a Principal, ApiError> {
    let p = auth.require(&[Role::Operator])?;
    if p.station.as_ref().map(StationId::as_str) != Some(station) {
        let station = StationId::new(station);
        let refusal = crate::ledger::Refusal::NotAtStation {
            actor: p.user.clone(),
            station: station.clone(),
        };
        // Only a station the hall has is recorded: a made-up name is only answered.
        if !s.line.snapshot().stations.iter().any(|v| v.id == station) {
            return Err(crate::line::LineError::Forbidden(refusal).into());
        }
        let at = crate::line::Attempt::at(&p.user, &station, []);
        return Err(s.line.refuse(at, refusal).await.into());
    }
    Ok(p)
}

/// The whole line: stations, queues, counts.
#[utoipa::path(get, path = "/line", responses((status = 200, body = Object), (status = 401, body = ErrorBody)))]
async fn line(State(s): State<AppState>, auth: Auth) -> Result<Json<LineSnapshot>, ApiError> {
    auth.require(&[Role::Supervisor, Role::Auditor, Role::Admin, Role::Monitor])?;
    Ok(Json(s.line.snapshot()))
}

/// One station: who is there, its session, its assigned work. An operator sees only their own.
#[utoipa::path(get, path = "/stations/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn station(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    if auth.0.role == Role::Operator {
        at_station(&s, &auth, &id).await?;
    } else {
        auth.require(&[Role::Supervisor, Role::Auditor, Role::Admin, Role::Monitor])?;
    }
    Ok(Json(s.line.station(StationId::new(id)).await?))
}

/// Print station: the booklet scanned for the assigned job; the printer starts.
#[utoipa::path(post, path = "/stations/{id}/print", params(("id" = String, Path)), request_body = BookletScan,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn print(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<BookletScan>,
) -> Result<Json<StationView>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    let b = serial("booklet", &r.booklet)?;
    Ok(Json(
        s.line
            .scan_booklet(p.user.clone(), StationId::new(id), b, r.job.map(JobId))
            .await?,
    ))
}

/// Lamination station: the patch scanned; it is recorded as applied (the gate), then fed.
#[utoipa::path(post, path = "/stations/{id}/laminate", params(("id" = String, Path)), request_body = PatchScan,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn laminate(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<PatchScan>,
) -> Result<Json<StationView>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    let patch = serial("patch", &r.patch)?;
    let booklet = r
        .booklet
        .as_deref()
        .map(|b| serial("booklet", b))
        .transpose()?;
    let skip_reason = r
        .skip_reason
        .as_deref()
        .map(|x| super::text("skip_reason", x))
        .transpose()?;
    Ok(Json(
        s.line
            .scan_patch(
                p.user.clone(),
                StationId::new(id),
                patch,
                skip_reason,
                r.job.map(JobId),
                booklet,
            )
            .await?,
    ))
}

/// Confirms the finished print or lamination.
#[utoipa::path(post, path = "/stations/{id}/confirm", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn confirm(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    Ok(Json(
        s.line.confirm(p.user.clone(), StationId::new(id)).await?,
    ))
}

/// Reports a defect: the item is spoiled and the job goes back to printing.
#[utoipa::path(post, path = "/stations/{id}/defect", params(("id" = String, Path)), request_body = Defect,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn defect(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Defect>,
) -> Result<Json<StationView>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    let reason = super::text("reason", &r.reason)?;
    Ok(Json(
        s.line
            .report_defect(p.user.clone(), StationId::new(id), reason)
            .await?,
    ))
}

/// QC: the MRZ read back from the booklet, compared with the job's.
#[utoipa::path(post, path = "/stations/{id}/qc", params(("id" = String, Path)), request_body = QcRead,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn qc(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<QcRead>,
) -> Result<Json<QcOutcome>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    let b = serial("booklet", &r.booklet)?;
    if r.mrz.iter().any(|l| l.trim().len() != 44) {
        return Err(ApiError::invalid("mrz", "two lines of 44 characters each"));
    }
    Ok(Json(
        s.line
            .qc(p.user.clone(), StationId::new(id), b, r.mrz)
            .await?,
    ))
}

/// Dispatch: the finished booklet goes into its destination's bag.
#[utoipa::path(post, path = "/stations/{id}/pack", params(("id" = String, Path)), request_body = BookletScan,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn pack(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<BookletScan>,
) -> Result<Json<Bag>, ApiError> {
    let p = at_station(&s, &auth, &id).await?;
    let b = serial("booklet", &r.booklet)?;
    Ok(Json(
        s.line.pack(p.user.clone(), StationId::new(id), b).await?,
    ))
}

/// Pauses a device: the line assigns it nothing until resumed.
#[utoipa::path(post, path = "/devices/{id}/pause", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "pause a device")
        .await?;
    Ok(Json(
        s.line
            .pause_device(p.user.clone(), DeviceId::new(id), true)
            .await?,
    ))
}

/// Resumes a paused device.
#[utoipa::path(post, path = "/devices/{id}/resume", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "resume a device")
        .await?;
    Ok(Json(
        s.line
            .pause_device(p.user.clone(), DeviceId::new(id), false)
            .await?,
    ))
}

/// Signs whoever is at a station out of it (a supervisor: an operator who left, whose token
/// expired or whose account was disabled). An assigned step not yet started goes back to the
/// queue; a running one must be finished first.
#[utoipa::path(post, path = "/stations/{id}/vacate", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn vacate(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "sign someone out of a station")
        .await?;
    let station = StationId::new(id);
    let view = s.line.station(station.clone()).await?;
    let Some(op) = view.operator else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            format!("nobody is signed in at {station}"),
        ));
    };
    s.line
        .vacate(
            op.clone(),
            format!("signed out by supervisor {}", p.user),
            true,
        )
        .await?;
    let ledger = s.ledger.clone();
    let (actor, st) = (p.user.clone(), station.clone());
    super::blocking(move || {
        Ok(ledger.append(
            actor,
            crate::ledger::LedgerEvent::Action {
                action: crate::ledger::ControlAction::SignedOut {
                    user: op,
                    station: Some(st),
                    reason: "signed out by a supervisor".into(),
                },
            },
        )?)
    })
    .await?;
    Ok(Json(s.line.station(station).await?))
}

/// Clears a device's fault once its cause is removed (a supervisor, or the operator signed in
/// at the device's station).
#[utoipa::path(post, path = "/devices/{id}/clear-fault", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn clear_fault(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let p = auth.require(&[Role::Supervisor, Role::Operator])?;
    if p.role == Role::Operator {
        let station = p.station.clone().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "clear a fault from the device's station terminal",
            )
        })?;
        let view = s.line.station(station).await?;
        if view.device.as_ref().map(DeviceId::as_str) != Some(id.as_str()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("{id} is not the device of {}", view.id),
            ));
        }
    }
    Ok(Json(
        s.line
            .clear_fault(p.user.clone(), DeviceId::new(id))
            .await?,
    ))
}

/// A dispatch bag and its manifest.
#[utoipa::path(get, path = "/bags/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn bag(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Bag>, ApiError> {
    auth.require(&[Role::Operator, Role::Supervisor, Role::Auditor, Role::Admin])?;
    Ok(Json(s.line.bag(id).await?))
}

/// Closes a bag: its manifest is final.
#[utoipa::path(post, path = "/bags/{id}/close", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn close_bag(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Bag>, ApiError> {
    let p = auth.require(&[Role::Operator, Role::Supervisor])?;
    if p.role == Role::Operator {
        let at_dispatch = match &p.station {
            Some(st) => {
                s.line.station(st.clone()).await?.kind == crate::config::StationKind::Dispatch
            }
            None => false,
        };
        if !at_dispatch {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "close bags from a dispatch station",
            ));
        }
    }
    Ok(Json(s.line.close_bag(p.user.clone(), id).await?))
}
