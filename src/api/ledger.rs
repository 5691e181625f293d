//! Ledger queries for auditors and supervisors: trace, reconciliation, records by operator,
//! station or time, the destruction register, missing items (with INTERPOL SLTD fields), the
//! latest signed checkpoint and signed evidence bundles. Read-only: nothing in this API can rewrite the ledger.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Auth};
use crate::ledger::event::RECORD_KINDS;
use crate::ledger::query::{
    MissingItem, Reconciliation, RecordFilter, RecordsPage, Scope, SltdRow, Trace,
};
use crate::ledger::verify::{VerifyMode, VerifyOptions, VerifyReport};
use crate::ledger::{Checkpoint, LotId, Record, Role, Serial, SessionId, ShiftId};
use crate::status::{StatusEvent, VerifyEvent};

const AUDIT: &[Role] = &[Role::Auditor, Role::Supervisor];

/// What to reconcile: exactly one of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    /// A shift (`2026-11-21A`).
    pub shift: Option<String>,
    /// A custody session.
    pub session: Option<String>,
    /// A roll or box.
    pub roll: Option<String>,
}

/// Which records.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// By this person.
    pub operator: Option<String>,
    /// At this station.
    pub station: Option<String>,
    /// From (RFC 3339, inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (RFC 3339, exclusive).
    pub to: Option<DateTime<Utc>>,
    /// At most this many (1–10,000, default 1,000).
    pub limit: Option<usize>,
    /// Of this kind: the event's `type` (`patch_applied`, `item_spoiled`, ...), `action` for
    /// any controller action, or an action's `kind` (`refused`, `signed_in`, ...).
    pub kind: Option<String>,
    /// Oldest first, after this record's sequence number: the next page's cursor is the last
    /// record's `seq`.
    pub after: Option<String>,
    /// Newest first, before this record's sequence number: the next (older) page's cursor is
    /// the last record's `seq`. Not with `after`.
    pub before: Option<String>,
}

/// The `kind` parameter's schema: one of [`RECORD_KINDS`], so that the document names what
/// the route accepts (another value is a 422 naming `kind`).
struct RecordKindParam;

impl utoipa::PartialSchema for RecordKindParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(RECORD_KINDS.iter().copied()))
            .into()
    }
}

impl ToSchema for RecordKindParam {}

/// A cursor (`after`, `before`): a record's sequence number, 0 to 2^63 - 1 (the document's
/// `int64`, which no ledger reaches).
fn cursor(name: &str, v: Option<String>) -> Result<Option<u64>, ApiError> {
    v.map(|v| {
        v.trim()
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    "a record's sequence number (0 to 9223372036854775807)",
                )
            })
    })
    .transpose()
}

/// Records one request of `/ledger/records` examines at most (records read, or index entries
/// looked up): a rare kind over ten years of records is a page cut short, and a cursor to
/// continue from, not one request reading the whole ledger.
pub const RECORDS_EXAMINED_PER_REQUEST: usize = 50_000;

/// Missing items, with the fields of INTERPOL's SLTD database.
#[derive(Debug, Serialize, ToSchema)]
pub struct MissingReport {
    /// The items.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<MissingItem>,
    /// The same, as SLTD rows.
    #[schema(value_type = Vec<Object>)]
    pub sltd: Vec<SltdRow>,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trace))
        .routes(routes!(reconcile))
        .routes(routes!(records))
        .routes(routes!(destructions))
        .routes(routes!(missing))
        .routes(routes!(checkpoint))
        .routes(routes!(evidence))
        .routes(routes!(head))
        .routes(routes!(verify))
}

/// Which verification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// `incremental` (default: from the last verified signed checkpoint to the head), `full`
    /// (every record from the first) or `since_checkpoint` (from the newest checkpoint).
    #[schema(value_type = Option<String>)]
    pub mode: Option<VerifyMode>,
}

/// One online verification at a time: the one running, as its last progress event.
#[derive(Debug, Default)]
pub struct VerifyGate(std::sync::Mutex<Option<VerifyEvent>>);

impl VerifyGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<VerifyEvent>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Frees the gate when the verification ends, however it ends.
struct GateRelease(std::sync::Arc<VerifyGate>);

impl Drop for GateRelease {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

/// Verifies the running hall's ledger inside the controller, without stopping it: every link
/// recomputed and every checkpoint's signature checked, as `hallctl audit verify` does offline,
/// with the same report. Incremental by default (from the last signed checkpoint that an earlier
/// verification found good); `?mode=full` checks every record. Progress goes on the status
/// stream as `ledger_verify` events. A chain that fails is answered 200 with the report
/// (`first_bad` names the record and what is wrong with it); 409 while another verification
/// runs. For auditors and admins.
#[utoipa::path(get, path = "/ledger/verify",
    params(("mode" = Option<String>, Query, description = "incremental (default), full or since_checkpoint")),
    responses((status = 200, body = Object), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn verify(
    State(s): State<AppState>,
    auth: Auth,
    q: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<VerifyReport>, ApiError> {
    let who = auth.require(&[Role::Auditor, Role::Admin])?.user.clone();
    let Query(q) = q.map_err(|e| {
        ApiError::invalid(
            "mode",
            format!(
                "{} (use incremental, full or since_checkpoint)",
                super::error::redact_serde(&e.body_text())
            ),
        )
    })?;
    let mode = q.mode.unwrap_or(VerifyMode::Incremental);
    let status = s.line.status().clone();
    let event = move |state: &str, done: u64, total: u64, first_bad: Option<u64>| VerifyEvent {
        mode: mode.name().to_string(),
        state: state.to_string(),
        done,
        total,
        first_bad,
        by: who.clone(),
        at: Utc::now(),
    };
    let started = event("running", 0, s.ledger.head(), None);
    {
        let mut running = s.verify.lock();
        if let Some(r) = running.as_ref() {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!(
                    "a {} verification asked by {} is running ({} of {} records checked): wait for its report on the status stream, then ask again",
                    r.mode, r.by, r.done, r.total
                ),
            ));
        }
        *running = Some(started.clone());
    }
    status.emit(StatusEvent::Verify(started));
    let (ledger, gate) = (s.ledger.clone(), s.verify.clone());
    let report = super::blocking(move || {
        let _release = GateRelease(gate.clone());
        let mut last = std::time::Instant::now();
        let result = ledger.verify(
            &VerifyOptions {
                mode,
                ..VerifyOptions::default()
            },
            |done, total| {
                if last.elapsed() >= std::time::Duration::from_millis(250) {
                    last = std::time::Instant::now();
                    let e = event("running", done, total, None);
                    *gate.lock() = Some(e.clone());
                    status.emit(StatusEvent::Verify(e));
                }
            },
        );
        let end = match &result {
            Ok(r) if r.ok() => event("passed", r.checked, r.checked, None),
            Ok(r) => event(
                "failed",
                r.checked,
                r.checked,
                r.first_bad.as_ref().map(|b| b.seq),
            ),
            Err(_) => event("error", 0, 0, None),
        };
        status.emit(StatusEvent::Verify(end));
        Ok(result?)
    })
    .await?;
    if let Some(b) = &report.first_bad {
        tracing::error!(
            seq = b.seq,
            "online ledger verification FAILED at record {}: {}",
            b.seq,
            b.problem
        );
    }
    Ok(Json(report))
}

/// The ledger's head: its last record's sequence number and chain link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Head {
    /// The last record's sequence number (0: no record yet).
    pub seq: u64,
    /// Its chain link (hex).
    pub link: String,
}

/// The ledger's head (last sequence number and chain link): how an auditor, a supervisor, an
/// admin or the monitoring room sees, cheaply, whether anything was recorded between two reads.
#[utoipa::path(get, path = "/ledger/head", responses((status = 200, body = Head)))]
async fn head(State(s): State<AppState>, auth: Auth) -> Result<Json<Head>, ApiError> {
    auth.require(&[Role::Auditor, Role::Supervisor, Role::Admin, Role::Monitor])?;
    let (seq, link) = s.ledger.head_link();
    Ok(Json(Head { seq, link }))
}

/// Traces a patch or booklet serial forward and backward.
#[utoipa::path(get, path = "/ledger/trace/{serial}", params(("serial" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn trace(
    State(s): State<AppState>,
    auth: Auth,
    Path(serial): Path<String>,
) -> Result<Json<Trace>, ApiError> {
    auth.require(AUDIT)?;
    let ledger = s.ledger.clone();
    let t = super::blocking(move || Ok(ledger.trace(&Serial::new(serial.trim()))?)).await?;
    Ok(Json(t.ok_or_else(|| {
        ApiError::not_found("the ledger has no record of this serial")
    })?))
}

/// Reconciliation, serial by serial, of a shift, a session or a roll.
#[utoipa::path(get, path = "/ledger/reconcile",
    params(("shift" = Option<String>, Query), ("session" = Option<String>, Query), ("roll" = Option<String>, Query)),
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
async fn reconcile(
    State(s): State<AppState>,
    auth: Auth,
    q: Result<ApiQuery<ReconcileQuery>, ApiError>,
) -> Result<Json<Reconciliation>, ApiError> {
    auth.require(AUDIT)?;
    let ApiQuery(q) = q?;
    let scope = match (q.shift, q.session, q.roll) {
        (Some(x), None, None) => Scope::Shift(ShiftId::new(x)),
        (None, Some(x), None) => Scope::Session(SessionId::new(x)),
        (None, None, Some(x)) => Scope::Lot(LotId::new(x)),
        _ => {
            return Err(ApiError::invalid(
                "shift",
                "give exactly one of shift, session or roll",
            ));
        }
    };
    let ledger = s.ledger.clone();
    Ok(Json(
        super::blocking(move || Ok(ledger.reconcile(&scope)?)).await?,
    ))
}

/// Records by operator, station, time range and kind: a page, oldest first (from just after
/// `after`) or newest first (from just before `before`), and the cursor of the next page
/// (`next`) until the search is `complete`. A request examines at most 50,000 records, so a
/// page can be short, or empty, and not the last. By time alone the pages run in time order
/// (then by `seq`); otherwise in the order of `seq`. Records name staff, stations, serials and
/// document numbers only.
#[utoipa::path(get, path = "/ledger/records",
    params(("operator" = Option<String>, Query), ("station" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10_000, description = "at most this many (default 1,000)"),
        ("kind" = inline(Option<RecordKindParam>), Query, description = "the event's type (patch_applied, item_spoiled, ...), action for any controller action, or an action's kind (refused, signed_in, ...)"),
        ("after" = Option<u64>, Query, description = "oldest first, after this record (a page's next; 0 or none: from the first)"),
        ("before" = Option<u64>, Query, description = "newest first, before this record (a page's next; past the head: from the last); not with after")),
    responses((status = 200, body = RecordsPage), (status = 422, body = ErrorBody)))]
async fn records(
    State(s): State<AppState>,
    auth: Auth,
    q: Result<ApiQuery<RecordsQuery>, ApiError>,
) -> Result<Json<RecordsPage>, ApiError> {
    auth.require(AUDIT)?;
    let ApiQuery(q) = q?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::invalid("limit", "between 1 and 10000"));
    }
    let kind = match q.kind {
        Some(k) if !RECORD_KINDS.contains(&k.trim()) => {
            return Err(ApiError::invalid(
                "kind",
                format!(
                    "not a kind of record: use one of {}",
                    RECORD_KINDS.join(", ")
                ),
            ));
        }
        k => k.map(|k| k.trim().to_string()),
    };
    let (after, before) = (cursor("after", q.after)?, cursor("before", q.before)?);
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid(
            "before",
            "give after (oldest first) or before (newest first), not both",
        ));
    }
    let filter = RecordFilter {
        operator: q.operator.map(OperatorId::new),
        station: q.station.map(StationId::new),
        from: q.from,
        to: q.to,
        kind,
        after,
        before,
    };
    let ledger = s.ledger.clone();
    Ok(Json(
        super::blocking(move || {
            Ok(ledger.records_page(&filter, limit, RECORDS_EXAMINED_PER_REQUEST)?)
        })
        .await?,
    ))
}

/// The destruction register.
#[utoipa::path(get, path = "/ledger/destructions", responses((status = 200, body = Vec<Object>)))]
async fn destructions(
    State(s): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Record>>, ApiError> {
    auth.require(AUDIT)?;
    let ledger = s.ledger.clone();
    Ok(Json(
        super::blocking(move || Ok(ledger.destruction_register()?)).await?,
    ))
}

/// Missing items, also as INTERPOL SLTD rows.
#[utoipa::path(get, path = "/ledger/missing", responses((status = 200, body = MissingReport)))]
async fn missing(State(s): State<AppState>, auth: Auth) -> Result<Json<MissingReport>, ApiError> {
    auth.require(AUDIT)?;
    let (ledger, state) = (s.ledger.clone(), s.hall.issuing_state.clone());
    let items = super::blocking(move || Ok(ledger.missing()?)).await?;
    let sltd = items.iter().map(|m| SltdRow::of(m, &state)).collect();
    Ok(Json(MissingReport { items, sltd }))
}

/// The latest signed checkpoint (sequence number, head hash, time, signature).
#[utoipa::path(get, path = "/ledger/checkpoint", responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn checkpoint(State(s): State<AppState>, auth: Auth) -> Result<Json<Checkpoint>, ApiError> {
    auth.require(&[Role::Auditor, Role::Supervisor, Role::Monitor])?;
    let ledger = s.ledger.clone();
    let cp = super::blocking(move || Ok(ledger.last_checkpoint()?)).await?;
    Ok(Json(
        cp.ok_or_else(|| ApiError::not_found("no checkpoint yet"))?,
    ))
}

/// The signed evidence bundle of a serial (as `hallctl audit evidence` writes it), to check
/// offline with `hallctl audit check-bundle`. Signs a fresh checkpoint first when the newest
/// records are not covered by one. Sent as a download (`evidence-<serial>.json`).
#[utoipa::path(get, path = "/ledger/evidence/{serial}", params(("serial" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn evidence(
    State(s): State<AppState>,
    auth: Auth,
    Path(serial): Path<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    auth.require(AUDIT)?;
    let serial = super::serial("serial", &serial)?;
    let (ledger, sr) = (s.ledger.clone(), serial.clone());
    let bundle = super::blocking(move || Ok(ledger.evidence(&sr)?)).await?;
    let bundle = bundle.ok_or_else(|| {
        ApiError::not_found(format!(
            "{serial} was never received into the vault: the ledger does not know it"
        ))
    })?;
    let disposition = format!("attachment; filename=\"evidence-{serial}.json\"");
    Ok((
        [(axum::http::header::CONTENT_DISPOSITION, disposition)],
        Json(bundle),
    ))
}
