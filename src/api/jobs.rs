//! Jobs: batch submission (idempotent on tracking number), reads, and the supervisors'
//! commands.

use axum::Json;
use axum::extract::{Path, State};
use hallctl_jobs::intake::JobRequest;
use hallctl_jobs::job::{InspectionVerdict, JobId, PriorityClass};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Auth};
use crate::ledger::Role;
use crate::line::{JobFilter, JobView, Line, Page, Submitted};

const READERS: &[Role] = &[Role::Supervisor, Role::Auditor, Role::Admin, Role::Monitor];
/// The issuance system submits with a supervisor-role service account (see the README).
const SUBMITTERS: &[Role] = &[Role::Supervisor, Role::Admin];

/// A batch of jobs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The jobs (1–5,000).
    pub jobs: Vec<JobRequest>,
}

/// A reason (cancel).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why.
    pub reason: String,
}

/// A new priority class.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reprioritise {
    /// `normal`, `urgent` or `fast_track`.
    #[schema(value_type = String)]
    pub class: PriorityClass,
    /// Why.
    pub reason: String,
}

/// A supervisor's verdict on an interrupted job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inspect {
    /// `step_completed`, `retry_step` or `spoil`.
    #[schema(value_type = String)]
    pub verdict: InspectionVerdict,
    /// For `step_completed`: the booklet or patch found on the job.
    #[serde(default)]
    pub serial: Option<String>,
}

/// The accepted batch.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Accepted {
    /// One entry per submitted job, in order.
    #[schema(value_type = Vec<Object>)]
    pub jobs: Vec<Submitted>,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(get_job))
        .routes(routes!(hold))
        .routes(routes!(release))
        .routes(routes!(cancel))
        .routes(routes!(reprioritise))
        .routes(routes!(inspect))
}

fn job_id(raw: &str) -> Result<JobId, ApiError> {
    let digits = raw.strip_prefix("J-").unwrap_or(raw);
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(JobId)
        .ok_or_else(|| ApiError::invalid("id", "a job id is `J-00000042` or `42`"))
}

/// Submits jobs in one batch: all or nothing; an identical resubmission returns the existing
/// job, a conflicting one refuses the batch.
#[utoipa::path(post, path = "/jobs", request_body = Batch,
    responses((status = 200, body = Accepted), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn submit(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<Json<Accepted>, ApiError> {
    let p = auth.require(SUBMITTERS)?;
    let jobs = s.line.submit(p.user.clone(), batch.jobs).await?;
    Ok(Json(Accepted { jobs }))
}

/// Lists jobs, in id order (oldest first, or newest first with `order=newest`), one page at a
/// time; `q` finds the job(s) of a tracking number, a booklet serial or a patch serial.
#[utoipa::path(get, path = "/jobs",
    params(("state" = Option<String>, Query, description = "a job state (`queued`, `printing`, `needs_inspection`, ...)"),
        ("class" = Option<String>, Query, description = "`normal`, `urgent` or `fast_track`"),
        ("destination" = Option<String>, Query),
        ("order" = Option<String>, Query, pattern = "^(oldest|newest)$", description = "`oldest` (default) or `newest`"),
        ("after" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_u64, description = "oldest first: the previous page's `next` (at most 2^63 - 1)"),
        ("before" = Option<u64>, Query, minimum = 1, maximum = 9223372036854775807_u64, description = "with `order=newest`: the previous page's `next` (1 to 2^63 - 1)"),
        ("q" = Option<String>, Query, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._/-]+$",
            description = "a tracking number, booklet serial or patch serial: only the job(s) it belongs to"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "page size (default 100)")),
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    auth: Auth,
    filter: Result<ApiQuery<JobFilter>, ApiError>,
) -> Result<Json<Page>, ApiError> {
    auth.require(READERS)?;
    let ApiQuery(filter) = filter?;
    let ledger = s.ledger.clone();
    let page = super::blocking(move || Ok(Line::jobs(&ledger, &filter)?)).await?;
    Ok(Json(page))
}

/// One job (no passport-holder data).
#[utoipa::path(get, path = "/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    auth.require(READERS)?;
    let (ledger, id) = (s.ledger.clone(), job_id(&id)?);
    Ok(Json(
        super::blocking(move || Ok(Line::job(&ledger, id)?)).await?,
    ))
}

/// Holds a waiting job.
#[utoipa::path(post, path = "/jobs/{id}/hold", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn hold(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "hold jobs")
        .await?;
    Ok(Json(s.line.hold(p.user.clone(), job_id(&id)?).await?))
}

/// Releases a held job.
#[utoipa::path(post, path = "/jobs/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn release(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "release jobs")
        .await?;
    Ok(Json(s.line.release(p.user.clone(), job_id(&id)?).await?))
}

/// Cancels a job that is not in a step (its printed booklet and patch are spoiled).
#[utoipa::path(post, path = "/jobs/{id}/cancel", params(("id" = String, Path)), request_body = Reason,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Reason>,
) -> Result<Json<JobView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "cancel jobs")
        .await?;
    let id = job_id(&id)?;
    let reason = super::text("reason", &r.reason)?;
    Ok(Json(s.line.cancel(p.user.clone(), id, reason).await?))
}

/// Changes a job's class.
#[utoipa::path(post, path = "/jobs/{id}/reprioritise", params(("id" = String, Path)), request_body = Reprioritise,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn reprioritise(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Reprioritise>,
) -> Result<Json<JobView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "reprioritise jobs")
        .await?;
    let id = job_id(&id)?;
    let reason = super::text("reason", &r.reason)?;
    Ok(Json(
        s.line
            .reprioritise(p.user.clone(), id, r.class, reason)
            .await?,
    ))
}

/// A supervisor's verdict on a job interrupted by a restart.
#[utoipa::path(post, path = "/jobs/{id}/inspect", params(("id" = String, Path)), request_body = Inspect,
    responses((status = 200, body = Object), (status = 409, body = ErrorBody)))]
async fn inspect(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Inspect>,
) -> Result<Json<JobView>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "decide an inspection")
        .await?;
    let id = job_id(&id)?;
    let serial = r
        .serial
        .as_deref()
        .map(|x| super::serial("serial", x).map(|x| x.as_str().to_string()))
        .transpose()?;
    Ok(Json(
        s.line
            .inspect(p.user.clone(), id, r.verdict, serial)
            .await?,
    ))
}
