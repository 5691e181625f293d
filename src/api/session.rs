//! Signing in and out. A sign-in at a station terminal also occupies the station: one station
//! per operator, one operator per station.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
use super::web::{ClientAddr, credential, same_origin, too_many};
use crate::auth::parse_user_id;
use crate::ledger::Role;

/// A sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// User id (staff number).
    pub user: String,
    /// PIN (never logged).
    pub pin: String,
    /// The station terminal signed in at; absent on the hall UI.
    #[serde(default)]
    pub station: Option<String>,
    /// `true` (the hall UI): the session token goes in an `HttpOnly` cookie
    /// (`hallctl_session_<id>`, `SameSite=Strict`, `Path=/api/v1`, `Secure` over HTTPS), never
    /// in the body, which carries the session's CSRF token instead. Default `false`: the token
    /// is in the body, for `Authorization: Bearer`.
    #[serde(default)]
    pub cookie: bool,
}

/// A session token (shown once).
#[derive(Serialize, ToSchema)]
pub struct SessionToken {
    /// The bearer token; absent for a cookie sign-in (the token is in the cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// For a cookie sign-in only: the session's CSRF token, to send as `X-CSRF-Token` with
    /// every request (required on POST, PUT, PATCH and DELETE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// Who.
    #[schema(value_type = String)]
    pub user: OperatorId,
    /// Their role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Where.
    #[schema(value_type = Option<String>)]
    pub station: Option<StationId>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionToken")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("station", &self.station)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who the token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Who.
    #[schema(value_type = String)]
    pub user: OperatorId,
    /// Their role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Where.
    #[schema(value_type = Option<String>)]
    pub station: Option<StationId>,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(me))
}

/// Signs in with id and PIN; at a station terminal, also takes the station. With
/// `"cookie": true` (the hall UI) the token is set as an `HttpOnly` session cookie and the
/// answer carries the session's CSRF token instead. Attempts are limited per client address
/// (`server.signin_burst`, one more every `server.signin_refill_secs`; the right PIN gives its
/// attempt back): beyond, 429 with `Retry-After`, and the PIN is not checked.
#[utoipa::path(post, path = "/session", security(()), request_body = SignIn,
    responses((status = 200, body = SessionToken,
            headers(("Set-Cookie" = String, description = "with \"cookie\": true: hallctl_session_<id>=<token>; Path=/api/v1; Max-Age=...; HttpOnly; SameSite=Strict (; Secure over HTTPS)"))),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a cookie sign-in from another origin; `not_rostered`: the PIN was right, but the account is not rostered for the shift now (30 minutes' grace either side of its shifts)"),
        (status = 409, body = ErrorBody, description = "station taken, or operator elsewhere"),
        (status = 423, body = ErrorBody, description = "locked after repeated failures"),
        (status = 429, body = ErrorBody, description = "too many attempts from this address",
            headers(("Retry-After" = u64, description = "seconds until the next attempt")))))]
async fn sign_in(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    if let Some(ip) = addr
        && let Err(wait) = s.web.signin().take(ip, Instant::now())
    {
        tracing::warn!(client = %ip, "sign-in attempts over the limit: refused unchecked");
        return Ok(too_many(wait));
    }
    if req.cookie {
        same_origin(&headers)?;
    }
    let cookie = req.cookie;
    let token = open_session(&s, req, addr).await?;
    let mut body = SessionToken {
        token: None,
        csrf: None,
        user: token.user,
        role: token.role,
        station: token.station,
        expires_at: token.expires_at,
    };
    if !cookie {
        body.token = Some(token.token);
        return Ok(Json(body).into_response());
    }
    body.csrf = Some(s.web.csrf_token(&token.token));
    let max_age = (body.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    let set = s.web.session_cookie(&token.token, max_age);
    Ok(([(header::SET_COOKIE, set)], Json(body)).into_response())
}

/// Checks the PIN (a right one gives the attempt back to `addr`), takes the station, opens the
/// session.
async fn open_session(
    s: &AppState,
    req: SignIn,
    addr: Option<std::net::IpAddr>,
) -> Result<crate::auth::Token, ApiError> {
    let user = parse_user_id(&req.user)
        .map_err(|_| ApiError::from(crate::auth::AuthError::InvalidCredentials))?;
    // The PIN first: nothing about stations or who is where is told to someone who has not
    // proved who they are.
    let (users, u, pin) = (s.users.clone(), user.clone(), req.pin.clone());
    // Wrong PINs count and lock at this address only: nobody locks anyone out of the
    // terminals they are not at.
    let origin = addr.map(|ip| ip.to_string());
    let o = origin.clone();
    let checked =
        super::blocking(move || Ok(users.verify_pin_from(&u, &pin, o.as_deref()))).await?;
    let account = match checked {
        Ok(a) => a,
        Err(e) => {
            // A lock (and every try while it lasts) is someone guessing at this id here: the
            // supervisor is told, whoever the id is (unknown ids too: the alert says nothing
            // the record does not).
            if let crate::auth::AuthError::Locked { until } = &e {
                let place = origin.as_deref().unwrap_or("an unknown address");
                s.line
                    .raise_incident(
                        crate::line::AlertKind::SigninLockout,
                        user.to_string(),
                        format!(
                            "wrong PINs for {user} from {place}: sign-in there is locked until {} UTC",
                            until.format("%H:%M")
                        ),
                    )
                    .await?;
            }
            return Err(e.into());
        }
    };
    let station = match req.station.as_deref() {
        Some(st) if !st.trim().is_empty() => {
            if account.role != Role::Operator {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "station terminals are for operators; {user} is a {}",
                        account.role
                    ),
                ));
            }
            let st = StationId::new(st.trim());
            s.line.station(st.clone()).await?;
            rostered(s, &account, Some(&st)).await?;
            give_back(s, addr);
            s.line.can_occupy(user.clone(), st.clone()).await?;
            Some(st)
        }
        _ => {
            rostered(s, &account, None).await?;
            give_back(s, addr);
            None
        }
    };
    let users = s.users.clone();
    let (u, pin, st) = (user.clone(), req.pin, station.clone());
    let signed = super::blocking(move || {
        Ok(users.sign_in_from_at(&u, &pin, st, origin.as_deref(), chrono::Utc::now()))
    })
    .await?;
    let token = match signed {
        Ok(t) => t,
        // A shift's edge passed between the check above and this one.
        Err(crate::auth::AuthError::NotRostered(e)) => {
            return Err(not_rostered(s, &user, station.as_ref(), e).await);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(st) = &station
        && let Err(e) = s.line.occupy(user, st.clone()).await
    {
        let (users, t) = (s.users.clone(), token.token.clone());
        let _ = super::blocking(move || Ok(users.sign_out(&t)?)).await;
        return Err(e.into());
    }
    Ok(token)
}

/// Gives back the sign-in attempt from `addr`: the PIN was right and the account is rostered
/// now. (A refusal by the roster keeps it counted: else it could be repeated without limit, each
/// writing a refusal and raising an alert.)
fn give_back(s: &AppState, addr: Option<std::net::IpAddr>) {
    if let Some(ip) = addr {
        s.web.signin().give_back(ip, Instant::now());
    }
}

/// Refuses (recorded and alerted, like any refusal of a rule) a person whose PIN was right but
/// who is not rostered for the shift now (see [`crate::roster`]).
async fn rostered(
    s: &AppState,
    account: &crate::auth::User,
    at: Option<&StationId>,
) -> Result<(), ApiError> {
    match crate::roster::may_sign_in(&account.shifts, chrono::Utc::now()) {
        Ok(()) => Ok(()),
        Err(e) => Err(not_rostered(s, &account.id, at, e).await),
    }
}

async fn not_rostered(
    s: &AppState,
    user: &OperatorId,
    at: Option<&StationId>,
    e: crate::roster::NotRostered,
) -> ApiError {
    let refusal = crate::ledger::Refusal::NotRostered {
        actor: user.clone(),
        at: at.cloned(),
        why: e.to_string(),
    };
    let attempt = crate::line::Attempt {
        actor: user.clone(),
        station: None,
        session: None,
        serials: Vec::new(),
    };
    if let Err(stopped) = s.line.record_refusal(attempt, refusal).await {
        return stopped.into();
    }
    crate::auth::AuthError::NotRostered(e).into()
}

/// Signs out (and leaves the station; a step the device is running must be finished first).
/// A cookie session's cookie is cleared.
#[utoipa::path(delete, path = "/session", responses((status = 204), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "a cookie session without its X-CSRF-Token"),
    (status = 409, body = ErrorBody)))]
async fn sign_out(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = credential(&method, &headers, &s.web)?;
    let p = s.users.authenticate(&c.token)?;
    if p.station.is_some() {
        s.line
            .vacate(p.user.clone(), "signed out".to_string(), false)
            .await?;
    }
    let users = s.users.clone();
    let token = c.token;
    super::blocking(move || Ok(users.sign_out(&token)?)).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = c.cookie.and_then(|name| s.web.clear_cookie(&name)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/session", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(auth: Auth) -> Json<Me> {
    Json(Me {
        user: auth.0.user,
        role: auth.0.role,
        station: auth.0.station,
    })
}
