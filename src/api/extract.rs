//! Extractors: the authenticated principal (deny by default: no token, no access; a bearer
//! token, or the hall UI's session cookie with its CSRF token, see [`super::web`]) and JSON
//! bodies whose rejections use the one error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
pub(crate) use super::web::credential;
use crate::auth::{self, Principal};
use crate::ledger::Role;

/// The signed-in user making the request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// Admits only `roles` (deny by default).
    ///
    /// # Errors
    /// 403 naming the roles admitted.
    pub fn require(&self, roles: &[Role]) -> Result<&Principal, ApiError> {
        auth::require(&self.0, roles)?;
        Ok(&self.0)
    }
}

impl Auth {
    /// As [`Auth::require`], for a route whose refusal is an insider's move (an operator
    /// acknowledging alerts, destroying items, holding jobs): a person refused here is recorded
    /// and alerted (rule `role`, `what` they tried). A monitoring service is only answered.
    ///
    /// # Errors
    /// As [`Auth::require`]; the line stopped.
    pub async fn require_recorded(
        &self,
        s: &AppState,
        roles: &[Role],
        what: &str,
    ) -> Result<&Principal, ApiError> {
        let Err(e) = auth::require(&self.0, roles) else {
            return Ok(&self.0);
        };
        let mut answer = ApiError::from(e);
        if self.0.role != Role::Monitor {
            let refusal = crate::ledger::Refusal::RoleRefused {
                actor: self.0.user.clone(),
                role: self.0.role,
                action: what.to_string(),
            };
            let at = crate::line::Attempt {
                actor: self.0.user.clone(),
                station: self.0.station.clone(),
                session: None,
                serials: Vec::new(),
            };
            s.line.record_refusal(at, refusal).await?;
            answer.body.rule = Some("role");
        }
        Err(answer)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let c = credential(&parts.method, &parts.headers, &state.web)?;
        Ok(Auth(state.users.authenticate(&c.token)?))
    }
}

/// A JSON body; malformed JSON, unknown fields, wrong types and oversized bodies are refused
/// with the one error body.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}
