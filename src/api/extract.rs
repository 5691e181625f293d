//! Extractors: the authenticated principal (deny by default: no token, no access; a bearer
//! token, or the hall UI's session cookie with its CSRF token, see [`super::web`]), JSON
//! bodies and query strings whose rejections use the one error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, redact_serde};
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
        self.recorded(s, auth::require(&self.0, roles), what).await
    }

    /// As [`Auth::require_recorded`], for managing an account of `target`'s role (admins manage
    /// every account, supervisors operators': [`auth::require_manage`]).
    ///
    /// # Errors
    /// As [`Auth::require_recorded`].
    pub async fn require_manage_recorded(
        &self,
        s: &AppState,
        target: Role,
        what: &str,
    ) -> Result<&Principal, ApiError> {
        self.recorded(s, auth::require_manage(&self.0, target), what)
            .await
    }

    /// A role check's outcome; a refusal of a person is recorded and alerted.
    async fn recorded(
        &self,
        s: &AppState,
        check: Result<(), auth::AuthError>,
        what: &str,
    ) -> Result<&Principal, ApiError> {
        let Err(e) = check else {
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

/// A query string. A parameter that does not parse is refused with the one error body naming it
/// (`field` and the message: "limit: invalid digit found in string"); axum's `Query` says only
/// what went wrong, not where. A handler that admits only some roles takes it as
/// `Result<ApiQuery<T>, ApiError>` and looks at it after the role check: a role that may not
/// read the route is told so (403), not how its query is spelled (422).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses the query string `q` (as axum's `Query` does), naming the parameter that does not.
///
/// # Errors
/// 422 `invalid`, its `field` the parameter when it is known.
pub(crate) fn query<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let why = redact_serde(&e.inner().to_string());
        if field.is_empty() || field == "." {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the query string: {why}"),
            )
        } else {
            ApiError::invalid(&field, format!("{field}: {why}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed
    struct Q {
        limit: Option<usize>,
        order: Option<String>,
    }

    #[test]
    fn a_query_parameter_that_does_not_parse_is_named() {
        let e = super::query::<Q>("order=newest&limit=abc").expect_err("not a number");
        assert_eq!(e.body.field.as_deref(), Some("limit"));
        assert!(e.body.message.starts_with("limit: "), "{}", e.body.message);
        let e = super::query::<Q>("limt=5").expect_err("unknown");
        assert!(e.body.message.contains("limt"), "{}", e.body.message);
        assert_eq!(super::query::<Q>("limit=5").expect("parses").limit, Some(5));
        assert_eq!(super::query::<Q>("").expect("empty").limit, None);
    }
}
