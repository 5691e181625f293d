//! User accounts: admins manage everyone, supervisors manage operators. Every change is a
//! ledger record with its actor.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
use crate::auth::{UserSummary, parse_user_id, require_manage};
use crate::ledger::Role;

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Id (staff number): 2–32 of `A-Z 0-9 -`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `operator`, `supervisor`, `auditor`, `admin` or `monitor`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The PIN (6–12 digits, not trivial); absent for `monitor`, which gets a service token.
    #[serde(default)]
    pub pin: Option<String>,
}

/// A new PIN.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPin {
    /// 6–12 digits, not trivial.
    pub pin: String,
}

/// The created account, and a service token shown once (monitor accounts).
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The account.
    #[schema(value_type = Object)]
    pub user: UserSummary,
    /// The service token (monitor accounts only; shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(reset_pin))
}

/// Every account (no PIN hashes).
#[utoipa::path(get, path = "/users", responses((status = 200, body = Vec<Object>), (status = 403, body = ErrorBody)))]
async fn list(State(s): State<AppState>, auth: Auth) -> Result<Json<Vec<UserSummary>>, ApiError> {
    auth.require(&[Role::Admin, Role::Supervisor])?;
    Ok(Json(s.users.list().iter().map(|u| u.summary()).collect()))
}

/// Adds an account.
#[utoipa::path(post, path = "/users", request_body = NewUser,
    responses((status = 200, body = Created), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<NewUser>,
) -> Result<Json<Created>, ApiError> {
    require_manage(&auth.0, r.role)?;
    let (users, actor) = (s.users.clone(), auth.0.user.clone());
    let created = super::blocking(move || {
        if r.role == Role::Monitor {
            let (u, token) = users.add_service(&actor, &r.id, &r.name)?;
            Ok(Created {
                user: u.summary(),
                token: Some(token),
            })
        } else {
            let pin = r
                .pin
                .ok_or_else(|| ApiError::invalid("pin", "a person's account needs a PIN"))?;
            let u = users.add(&actor, &r.id, &r.name, r.role, &pin)?;
            Ok(Created {
                user: u.summary(),
                token: None,
            })
        }
    })
    .await?;
    Ok(Json(created))
}

fn target(s: &AppState, auth: &Auth, id: &str) -> Result<crate::auth::User, ApiError> {
    let id = parse_user_id(id)?;
    let u = s
        .users
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    require_manage(&auth.0, u.role)?;
    Ok(u)
}

/// Disables an account (its tokens stop working).
#[utoipa::path(post, path = "/users/{id}/disable", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no change: already so")))]
async fn disable(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserSummary>, ApiError> {
    let u = target(&s, &auth, &id)?;
    let (users, actor) = (s.users.clone(), auth.0.user.clone());
    let out = super::blocking(move || Ok(users.disable(&actor, &u.id)?)).await?;
    Ok(Json(out.summary()))
}

/// Enables an account again.
#[utoipa::path(post, path = "/users/{id}/enable", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no change: already so")))]
async fn enable(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserSummary>, ApiError> {
    let u = target(&s, &auth, &id)?;
    let (users, actor) = (s.users.clone(), auth.0.user.clone());
    let out = super::blocking(move || Ok(users.enable(&actor, &u.id)?)).await?;
    Ok(Json(out.summary()))
}

/// Sets a new PIN (clears a lockout).
#[utoipa::path(post, path = "/users/{id}/reset-pin", params(("id" = String, Path)), request_body = NewPin,
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_pin(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<NewPin>,
) -> Result<Json<UserSummary>, ApiError> {
    let u = target(&s, &auth, &id)?;
    let (users, actor) = (s.users.clone(), auth.0.user.clone());
    let out = super::blocking(move || Ok(users.reset_pin(&actor, &u.id, &r.pin)?)).await?;
    Ok(Json(out.summary()))
}
