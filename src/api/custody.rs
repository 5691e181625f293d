//! Custody of accountable items: lots into the vault, sessions at stations, two-person counts,
//! returns, closes, destruction and missing reports. Every co-signer proves who they are with
//! their own PIN in the request; the ledger enforces the custody rules.

use axum::Json;
use axum::extract::{Path, State};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
use super::{AppState, serial};
use crate::auth::{AuthError, parse_user_id};
use crate::ledger::event::Discrepancy;
use crate::ledger::{ItemKind, LedgerEvent, LotId, Refusal, Role, Serial, Session, SessionId};
use crate::line::{Attempt, SpoilageDecision, SpoilageList, SpoilageReport};

/// A co-signer: a person and their PIN (checked, never stored or logged).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cosigner {
    /// User id.
    pub user: String,
    /// Their PIN.
    pub pin: String,
}

/// Serials, as a list or as a range (`0041200-0041249`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Count {
    /// Serials, one by one.
    #[serde(default)]
    pub serials: Vec<String>,
    /// Or a range, as printed on the box or roll.
    #[serde(default)]
    pub range: Option<String>,
    /// The two people who counted (distinct).
    pub counters: [Cosigner; 2],
}

/// A lot received into the vault.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotIn {
    /// The lot id (`R-77`).
    pub lot: String,
    /// `booklet` or `patch`.
    #[schema(value_type = String)]
    pub kind: ItemKind,
    /// Who delivered it.
    pub supplier: String,
    /// The serial range (`0041200-0041349`).
    pub range: String,
}

/// A session to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// The station (the operator's own).
    pub station: String,
}

/// A session close, with a signed discrepancy when it does not balance.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseSession {
    /// Serials that cannot be found (must be exactly what the session still holds).
    #[serde(default)]
    pub missing: Vec<String>,
    /// The supervisor's statement.
    #[serde(default)]
    pub statement: Option<String>,
    /// The supervisor who signs the discrepancy.
    #[serde(default)]
    pub supervisor: Option<Cosigner>,
}

/// Items destroyed, witnessed by two people outside their custody chains.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destroy {
    /// The destruction batch.
    pub batch: String,
    /// The serials.
    pub serials: Vec<String>,
    /// The two witnesses.
    pub witnesses: [Cosigner; 2],
    /// How (shredding, incineration).
    pub method: String,
    /// The certificate number.
    pub certificate: String,
}

/// An item reported missing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Missing {
    /// The serial.
    pub serial: String,
    /// The circumstances.
    pub note: String,
}

/// A supervisor's decision on reported spoilage, with the items scanned in hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoilageDecisionIn {
    /// The serials scanned by the supervisor: every item of the report (the patch and the
    /// booklet it is on, for a lamination defect), and only them.
    pub scanned: Vec<String>,
    /// The supervisor's note.
    #[serde(default)]
    pub note: Option<String>,
}

/// A recorded ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// Its sequence number in the ledger.
    pub seq: u64,
    /// The session concerned, if any.
    #[schema(value_type = Option<String>)]
    pub session: Option<SessionId>,
    /// An alert the record raised (roll skip, discrepancy, missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub alert: Option<crate::ledger::Alert>,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_lot))
        .routes(routes!(open_session))
        .routes(routes!(get_session))
        .routes(routes!(issue))
        .routes(routes!(return_items))
        .routes(routes!(close_session))
        .routes(routes!(destroy))
        .routes(routes!(report_missing))
        .routes(routes!(spoilage))
        .routes(routes!(approve_spoilage))
        .routes(routes!(reject_spoilage))
}

/// An operator acts only on their own session; supervisors on any.
async fn own_session(s: &AppState, auth: &Auth, id: &str) -> Result<(), ApiError> {
    if auth.0.role != Role::Operator {
        return Ok(());
    }
    let ledger = s.ledger.clone();
    let sid = SessionId::new(id);
    let lookup = sid.clone();
    let session = super::blocking(move || Ok(ledger.session(&lookup)?)).await?;
    match session {
        // An operator acts on their session from its station's terminal only: not from the
        // hall UI or another station after walking away from it.
        Some(x) if x.operator == auth.0.user && auth.0.station.as_ref() == Some(&x.station) => {
            Ok(())
        }
        Some(x) if x.operator == auth.0.user => {
            let refusal = Refusal::NotAtStation {
                actor: auth.0.user.clone(),
                station: x.station.clone(),
            };
            let at = Attempt::on(&auth.0.user, &sid, []);
            Err(s.line.refuse(at, refusal).await.into())
        }
        Some(_) => {
            // Trying another operator's session is an insider's move: recorded and alerted.
            let refusal = Refusal::NotOwnSession {
                actor: auth.0.user.clone(),
                session: sid.clone(),
            };
            let at = Attempt::on(&auth.0.user, &sid, []);
            Err(s.line.refuse(at, refusal).await.into())
        }
        None => Err(ApiError::not_found("no such custody session")),
    }
}

fn parse_serials(c: &Count) -> Result<Vec<Serial>, ApiError> {
    match (&c.range, c.serials.is_empty()) {
        (Some(_), false) => Err(ApiError::invalid(
            "range",
            "give either serials or a range, not both",
        )),
        (Some(r), true) => Ok(super::serial_range("range", r)?.serials().collect()),
        (None, true) => Err(ApiError::invalid("serials", "no serials given")),
        (None, false) => c
            .serials
            .iter()
            .enumerate()
            .map(|(i, s)| serial(&format!("serials[{i}]"), s))
            .collect(),
    }
}

/// Checks the co-signers' PINs (off the async workers: argon2 is slow on purpose), typed at
/// `auth`'s request for `session` (if any). A wrong PIN counts against the person who asked
/// and their terminal, never against the co-signer (nobody can lock anyone else out), and is
/// recorded and alerted (`cosigner_pin`, incident `cosigner_failures`).
async fn cosign<const N: usize>(
    s: &AppState,
    auth: &Auth,
    session: Option<&SessionId>,
    field: &str,
    who: &[Cosigner; N],
) -> Result<[OperatorId; N], ApiError> {
    let asker = auth.0.user.clone();
    let station = auth.0.station.clone();
    let mut out = Vec::with_capacity(N);
    for (i, c) in who.iter().enumerate() {
        let id = parse_user_id(&c.user)
            .map_err(|_| ApiError::invalid(&format!("{field}[{i}]"), "invalid id or PIN"))?;
        let (users, pin, idc) = (s.users.clone(), c.pin.clone(), id.clone());
        let (a, st) = (asker.clone(), station.clone());
        let checked = super::blocking(move || {
            Ok(users.verify_cosigner_at(&a, st.as_ref(), &idc, &pin, chrono::Utc::now()))
        })
        .await?;
        if let Err(e) = checked {
            let refusal = match &e {
                AuthError::CosignerPin { failures, .. } => Some((*failures, false)),
                AuthError::CosignBlocked { .. } => Some((0, true)),
                _ => None,
            };
            if let Some((failures, blocked)) = refusal {
                let at = Attempt {
                    actor: asker.clone(),
                    station: station.clone(),
                    session: session.cloned(),
                    serials: Vec::new(),
                };
                let r = Refusal::CosignerPin {
                    cosigner: id.clone(),
                    asker: asker.clone(),
                    failures,
                    blocked,
                };
                s.line.record_refusal(at, r).await?;
            }
            return Err(ApiError::from(e).field(format!("{field}[{i}]")));
        }
        out.push(id);
    }
    out.try_into()
        .map_err(|_| ApiError::invalid(field, "wrong number of co-signers"))
}

/// One of the two counters of an issue or a return must be a supervisor: two operators must not
/// be able to count each other's items out of and back into the vault (the seed's story). The
/// same person twice is left to the ledger's `same_person`. A refusal is recorded and alerted.
async fn supervisor_counts(
    s: &AppState,
    auth: &Auth,
    session: &SessionId,
    counters: &[OperatorId; 2],
    serials: &[Serial],
) -> Result<(), ApiError> {
    if counters[0] == counters[1]
        || counters
            .iter()
            .any(|c| s.users.get(c).is_some_and(|u| u.role == Role::Supervisor))
    {
        return Ok(());
    }
    let refusal = Refusal::CountWithoutSupervisor {
        counters: counters.clone(),
    };
    let at = Attempt {
        actor: auth.0.user.clone(),
        station: auth.0.station.clone(),
        session: Some(session.clone()),
        serials: serials.to_vec(),
    };
    Err(ApiError::from(s.line.refuse(at, refusal).await).field("counters"))
}

/// Receives a lot (box of booklets, roll of patches) into the vault.
#[utoipa::path(post, path = "/custody/lots", request_body = LotIn,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn receive_lot(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<LotIn>,
) -> Result<Json<Recorded>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "receive lots into the vault")
        .await?;
    let range = super::serial_range("range", &r.range)?;
    // What the ledger checks at receipt (a last number with more digits than the first...),
    // answered as the bad input it is.
    crate::ledger::lots::check_range(&range).map_err(|r| match r {
        Refusal::Invalid(why) => ApiError::invalid("range", why),
        other => ApiError::invalid("range", other.to_string()),
    })?;
    let lot = serial("lot", &r.lot)
        .map_err(|_| ApiError::invalid("lot", "a lot id is 1–40 characters A–Z, 0–9 and -"))?;
    let supplier = super::text("supplier", &r.supplier)?;
    if supplier.is_empty() {
        return Err(ApiError::invalid("supplier", "name the supplier"));
    }
    let (ledger, actor) = (s.ledger.clone(), p.user.clone());
    let receipt = super::blocking(move || {
        Ok(ledger.append(
            actor,
            LedgerEvent::LotReceived {
                lot: LotId::new(lot.as_str()),
                kind: r.kind,
                supplier,
                range,
            },
        )?)
    })
    .await?;
    Ok(Json(Recorded {
        seq: receipt.seq,
        session: None,
        alert: receipt.alert,
    }))
}

/// Opens a custody session at the operator's own station.
#[utoipa::path(post, path = "/custody/sessions", request_body = OpenSession,
    responses((status = 200, body = Recorded), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn open_session(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<OpenSession>,
) -> Result<Json<Recorded>, ApiError> {
    let p = auth.require(&[Role::Operator])?;
    if r.station.trim().is_empty() {
        return Err(ApiError::invalid("station", "name the station (your own)"));
    }
    let station = StationId::new(r.station.trim());
    let id = s.line.open_session(p.user.clone(), station).await?;
    Ok(Json(Recorded {
        seq: s.ledger.head(),
        session: Some(id),
        alert: None,
    }))
}

/// A custody session: what it holds and its counts.
#[utoipa::path(get, path = "/custody/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_session(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    auth.require(&[Role::Operator, Role::Supervisor, Role::Auditor])?;
    let ledger = s.ledger.clone();
    let session = super::blocking(move || Ok(ledger.session(&SessionId::new(id))?)).await?;
    let session = session.ok_or_else(|| ApiError::not_found("no such custody session"))?;
    if auth.0.role == Role::Operator && session.operator != auth.0.user {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "an operator sees only their own sessions",
        ));
    }
    Ok(Json(session))
}

/// Issues items from the vault to a session, counted by two distinct people.
#[utoipa::path(post, path = "/custody/sessions/{id}/issue", params(("id" = String, Path)), request_body = Count,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn issue(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Count>,
) -> Result<Json<Recorded>, ApiError> {
    let c = counted(&s, &auth, &id, &r).await?;
    let session = c.session.clone();
    let seq = s.line.issue(c.by, c.session, c.serials, c.counters).await?;
    Ok(Json(recorded(seq, session)))
}

/// Returns unused items from a session to the vault, counted by two distinct people.
#[utoipa::path(post, path = "/custody/sessions/{id}/return", params(("id" = String, Path)), request_body = Count,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn return_items(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<Count>,
) -> Result<Json<Recorded>, ApiError> {
    let c = counted(&s, &auth, &id, &r).await?;
    let session = c.session.clone();
    let seq = s
        .line
        .return_items(c.by, c.session, c.serials, c.counters)
        .await?;
    Ok(Json(recorded(seq, session)))
}

/// A count of items into or out of a session, admitted: who asks, the session, the serials and
/// the two counters who signed.
struct Counted {
    by: OperatorId,
    session: SessionId,
    serials: Vec<Serial>,
    counters: [OperatorId; 2],
}

/// The answer to a count: its record, in its session.
fn recorded(seq: u64, session: SessionId) -> Recorded {
    Recorded {
        seq,
        session: Some(session),
        alert: None,
    }
}

/// What an issue and a return check first: a supervisor or the session's own operator, the
/// serials, the counters' PINs, and a supervisor among the counters.
async fn counted(s: &AppState, auth: &Auth, id: &str, r: &Count) -> Result<Counted, ApiError> {
    let by = auth
        .require(&[Role::Supervisor, Role::Operator])?
        .user
        .clone();
    own_session(s, auth, id).await?;
    let serials = parse_serials(r)?;
    let session = SessionId::new(id);
    let counters = cosign(s, auth, Some(&session), "counters", &r.counters).await?;
    supervisor_counts(s, auth, &session, &counters, &serials).await?;
    Ok(Counted {
        by,
        session,
        serials,
        counters,
    })
}

/// Closes a session: balanced, or with a supervisor-signed discrepancy listing the serials.
#[utoipa::path(post, path = "/custody/sessions/{id}/close", params(("id" = String, Path)), request_body = CloseSession,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody)))]
async fn close_session(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<CloseSession>,
) -> Result<Json<Recorded>, ApiError> {
    let p = auth.require(&[Role::Operator, Role::Supervisor])?;
    own_session(&s, &auth, &id).await?;
    let discrepancy = match (&r.supervisor, r.missing.is_empty()) {
        (None, true) => None,
        (None, false) => {
            return Err(ApiError::invalid(
                "supervisor",
                "a discrepancy must be signed by a supervisor",
            ));
        }
        (Some(sup), _) => {
            let sid = SessionId::new(id.clone());
            let [who] = cosign(
                &s,
                &auth,
                Some(&sid),
                "supervisor",
                std::slice::from_ref(sup)
                    .try_into()
                    .map_err(|_| ApiError::invalid("supervisor", "one supervisor"))?,
            )
            .await?;
            let is_supervisor = s
                .users
                .get(&who)
                .is_some_and(|u| u.role == Role::Supervisor);
            if !is_supervisor {
                // An operator signing their own (or a colleague's) discrepancy is an insider's
                // move: recorded and alerted, like the ledger's own refusal of a self-signature.
                let sid = SessionId::new(id.as_str());
                let (ledger, lookup) = (s.ledger.clone(), sid.clone());
                let session = super::blocking(move || Ok(ledger.session(&lookup)?)).await?;
                let refusal = Refusal::SelfSignedDiscrepancy {
                    operator: session.map_or_else(|| p.user.clone(), |x| x.operator),
                };
                let named = r.missing.iter().filter_map(|m| serial("missing", m).ok());
                let at = Attempt::on(&p.user, &sid, named);
                return Err(ApiError::from(s.line.refuse(at, refusal).await).field("supervisor"));
            }
            let missing = r
                .missing
                .iter()
                .enumerate()
                .map(|(i, m)| serial(&format!("missing[{i}]"), m))
                .collect::<Result<Vec<_>, _>>()?;
            Some(Discrepancy {
                missing,
                supervisor: who,
                statement: super::text("statement", r.statement.as_deref().unwrap_or_default())?,
            })
        }
    };
    let seq = s
        .line
        .close_session(p.user.clone(), SessionId::new(id.clone()), discrepancy)
        .await?;
    Ok(Json(Recorded {
        seq,
        session: Some(SessionId::new(id)),
        alert: None,
    }))
}

/// Records the destruction of spoiled items, witnessed by two people outside their chains.
#[utoipa::path(post, path = "/custody/destructions", request_body = Destroy,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn destroy(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<Destroy>,
) -> Result<Json<Recorded>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "record a destruction")
        .await?;
    let serials = r
        .serials
        .iter()
        .enumerate()
        .map(|(i, x)| serial(&format!("serials[{i}]"), x))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = serial("batch", &r.batch)
        .map_err(|_| ApiError::invalid("batch", "a batch id is 1–40 characters A–Z, 0–9 and -"))?;
    let method = super::text("method", &r.method)?;
    let certificate = super::text("certificate", &r.certificate)?;
    let witnesses = cosign(&s, &auth, None, "witnesses", &r.witnesses).await?;
    let receipt = s
        .line
        .custody(
            p.user.clone(),
            LedgerEvent::ItemsDestroyed {
                batch: batch.as_str().to_string(),
                serials,
                witnesses,
                method,
                certificate,
            },
        )
        .await?;
    Ok(Json(Recorded {
        seq: receipt.seq,
        session: None,
        alert: receipt.alert,
    }))
}

/// Reports an item missing.
#[utoipa::path(post, path = "/custody/missing", request_body = Missing,
    responses((status = 200, body = Recorded), (status = 409, body = ErrorBody)))]
async fn report_missing(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<Missing>,
) -> Result<Json<Recorded>, ApiError> {
    let p = auth
        .require_recorded(&s, &[Role::Supervisor], "report an item missing")
        .await?;
    let serial = serial("serial", &r.serial)?;
    let note = super::text("note", &r.note)?;
    let receipt = s
        .line
        .custody(
            p.user.clone(),
            LedgerEvent::ItemReportedMissing { serial, note },
        )
        .await?;
    Ok(Json(Recorded {
        seq: receipt.seq,
        session: None,
        alert: receipt.alert,
    }))
}

/// Spoilage not yet destroyed: reports awaiting a supervisor's decision (`pending`) and spoiled
/// items awaiting witnessed destruction (`to_destroy`).
#[utoipa::path(get, path = "/custody/spoilage",
    responses((status = 200, body = SpoilageList), (status = 403, body = ErrorBody)))]
async fn spoilage(State(s): State<AppState>, auth: Auth) -> Result<Json<SpoilageList>, ApiError> {
    auth.require(&[Role::Supervisor, Role::Auditor])?;
    Ok(Json(s.line.spoilage().await?))
}

async fn decide(
    s: &AppState,
    auth: &Auth,
    id: &str,
    r: SpoilageDecisionIn,
    approved: bool,
) -> Result<Json<SpoilageReport>, ApiError> {
    if auth.0.role == Role::Operator
        && let Ok(sid) = serial("serial", id)
    {
        // The operator who reported a spoil trying to decide it: the oldest theft path, tried.
        let ledger = s.ledger.clone();
        let lookup = sid.clone();
        let item = super::blocking(move || Ok(ledger.item(&lookup)?)).await?;
        if let Some(crate::ledger::ItemState::SpoilPending { by, .. }) = item.map(|i| i.state)
            && by == auth.0.user
        {
            let refusal = Refusal::SelfApprovedSpoilage {
                serial: sid.clone(),
                operator: by,
            };
            let at = Attempt {
                actor: auth.0.user.clone(),
                station: auth.0.station.clone(),
                session: None,
                serials: vec![sid],
            };
            return Err(s.line.refuse(at, refusal).await.into());
        }
    }
    let p = auth
        .require_recorded(s, &[Role::Supervisor], "decide spoilage")
        .await?;
    let serial_id = serial("serial", id)?;
    let scanned = r
        .scanned
        .iter()
        .enumerate()
        .map(|(i, x)| serial(&format!("scanned[{i}]"), x))
        .collect::<Result<Vec<_>, _>>()?;
    if scanned.is_empty() {
        return Err(ApiError::invalid(
            "scanned",
            "scan every item of the report in hand",
        ));
    }
    let note = super::text("note", r.note.as_deref().unwrap_or_default())?;
    let report = s
        .line
        .decide_spoilage(
            p.user.clone(),
            serial_id,
            SpoilageDecision {
                approved,
                scanned,
                note,
            },
        )
        .await?;
    Ok(Json(report))
}

/// Approves the spoilage reported on `serial` (one of the report's items): the items, scanned
/// in hand by the supervisor, wait for witnessed destruction; the job is printed again. The
/// supervisor is never the one who reported it, and joins the items' custody chain.
#[utoipa::path(post, path = "/custody/spoilage/{serial}/approve", params(("serial" = String, Path)),
    request_body = SpoilageDecisionIn,
    responses((status = 200, body = SpoilageReport), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_spoilage(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<SpoilageDecisionIn>,
) -> Result<Json<SpoilageReport>, ApiError> {
    decide(&s, &auth, &id, r, true).await
}

/// Rejects the spoilage reported on `serial`: the items, scanned in hand, are back where they
/// were (the print or lamination stands) and the job goes on.
#[utoipa::path(post, path = "/custody/spoilage/{serial}/reject", params(("serial" = String, Path)),
    request_body = SpoilageDecisionIn,
    responses((status = 200, body = SpoilageReport), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject_spoilage(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<SpoilageDecisionIn>,
) -> Result<Json<SpoilageReport>, ApiError> {
    decide(&s, &auth, &id, r, false).await
}
