//! Signing in and out. A sign-in at a station terminal also occupies the station: one station
//! per operator, one operator per station.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
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
}

/// A session token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionToken {
    /// The bearer token.
    pub token: String,
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

/// Signs in with id and PIN; at a station terminal, also takes the station.
#[utoipa::path(post, path = "/session", security(()), request_body = SignIn,
    responses((status = 200, body = SessionToken), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "station taken, or operator elsewhere"),
        (status = 423, body = ErrorBody, description = "locked after repeated failures")))]
async fn sign_in(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SignIn>,
) -> Result<Json<SessionToken>, ApiError> {
    let user = parse_user_id(&req.user)
        .map_err(|_| ApiError::from(crate::auth::AuthError::InvalidCredentials))?;
    // The PIN first: nothing about stations or who is where is told to someone who has not
    // proved who they are.
    let (users, u, pin) = (s.users.clone(), user.clone(), req.pin.clone());
    let account = super::blocking(move || Ok(users.verify_pin(&u, &pin)?)).await?;
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
            s.line.can_occupy(user.clone(), st.clone()).await?;
            Some(st)
        }
        _ => None,
    };
    let users = s.users.clone();
    let (u, pin, st) = (user.clone(), req.pin, station.clone());
    let token = super::blocking(move || Ok(users.sign_in(&u, &pin, st)?)).await?;
    if let Some(st) = &station
        && let Err(e) = s.line.occupy(user, st.clone()).await
    {
        let (users, t) = (s.users.clone(), token.token.clone());
        let _ = super::blocking(move || Ok(users.sign_out(&t)?)).await;
        return Err(e.into());
    }
    Ok(Json(SessionToken {
        token: token.token,
        user: token.user,
        role: token.role,
        station: token.station,
        expires_at: token.expires_at,
    }))
}

/// Signs out (and leaves the station; a step the device is running must be finished first).
#[utoipa::path(delete, path = "/session", responses((status = 204), (status = 401, body = ErrorBody),
    (status = 409, body = ErrorBody)))]
async fn sign_out(
    State(s): State<AppState>,
    auth: Auth,
    headers: axum::http::HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    if auth.0.station.is_some() {
        s.line.vacate(auth.0.user.clone()).await?;
    }
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let users = s.users.clone();
    super::blocking(move || Ok(users.sign_out(&token)?)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
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
