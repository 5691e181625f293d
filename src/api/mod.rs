//! The HTTP API (axum, JSON, under `/api/v1`): the only module that names axum types.
//!
//! One router per resource, merged in [`app`]; handlers are thin (authorize, call the line,
//! the ledger or the user directory, map the answer). Every route but `/health` and the API
//! document needs a bearer token (or the hall UI's session cookie with its CSRF token: see
//! [`web`]), and every handler names the roles it admits. Every response carries the security
//! headers of [`web::security_headers`]. The OpenAPI
//! document at `/api/v1/openapi.json` is generated from the handlers' annotations. (The status
//! stream also takes `?token=`, since browsers' `EventSource` cannot set headers.) The hall
//! UI's pages and assets are served beside the API ([`ui`]).

pub mod alerts;
pub mod central;
pub mod custody;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod ledger;
pub mod session;
pub mod stations;
pub mod status;
pub mod ui;
pub mod users;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Users;
use crate::ledger::Ledger;
use crate::line::Line;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The line (jobs, stations, custody through the line).
    pub line: Line,
    /// The user directory (sign-in, tokens, PINs).
    pub users: Arc<Users>,
    /// The ledger (queries).
    pub ledger: Arc<Ledger>,
    /// The hall.
    pub hall: Arc<HallInfo>,
    /// Limits.
    pub limits: Limits,
    /// Cookie sessions, CSRF, the sign-in limit, HTTPS ([`web`]).
    pub web: Arc<web::WebSecurity>,
    /// The online verification running, if one is ([`ledger::VerifyGate`]).
    pub verify: Arc<ledger::VerifyGate>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("hall", &self.hall)
            .finish_non_exhaustive()
    }
}

/// The hall's identity, for responses and exports.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HallInfo {
    /// Hall id.
    pub id: String,
    /// Hall name.
    pub name: String,
    /// ICAO code of the issuing state.
    pub issuing_state: String,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, bytes.
    pub body_bytes: usize,
    /// Longest a request may take.
    pub timeout: Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hallctl",
        description = "Production-hall printing line controller: jobs, stations, custody of accountable items, the ledger. Every route but /health needs `Authorization: Bearer <token>` (from POST /api/v1/session) or, in the hall UI, the session cookie `hallctl_session_<id>` that POST /api/v1/session with `\"cookie\": true` sets: a request authenticated by cookie sends the session's `X-CSRF-Token` (from the same answer); a POST, PUT, PATCH or DELETE without the right one, or with an `Origin` that is not this host, is refused (403, nothing changed). Sign-in attempts are limited per client address (429 with Retry-After). Every response carries nosniff, X-Frame-Options DENY, no-referrer, a CSP; API answers Cache-Control no-store; HSTS over HTTPS. Errors: `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement};
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // OpenAPI names one cookie; the real name carries the session's id
        // (`hallctl_session_<id>`), one cookie per session of the browser.
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "hallctl_session_<id>",
                "The hall UI's session (POST /api/v1/session with \"cookie\": true): HttpOnly, \
                 SameSite=Strict, Path=/api/v1, Secure over HTTPS. Goes with the session's \
                 X-CSRF-Token; a POST, PUT, PATCH or DELETE without the right one is refused \
                 (403).",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The `csrf` of the cookie sign-in's answer; sent with the session cookie.",
            ))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("cookie", Vec::<String>::new())
                .add("csrf", Vec::<String>::new()),
        ]);
    }
}

/// Health: answers without authentication. 503 when the line's actor stopped or the store
/// stopped confirming writes (fail-stop: nothing can be acknowledged until an operator acts).
#[utoipa::path(get, path = "/health", security(()),
    responses((status = 200, description = "alive and recording"), (status = 503, body = error::ErrorBody)))]
async fn health(State(s): State<AppState>) -> Result<&'static str, ApiError> {
    if let Some(why) = s.ledger.unavailable() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            format!("the ledger is not recording: {why}"),
        ));
    }
    if !s.line.is_alive() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the line stopped",
        ));
    }
    Ok("ok")
}

/// The routes and the document they generate.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .merge(session::router())
        .merge(jobs::router())
        .merge(stations::router())
        .merge(custody::router())
        .merge(ledger::router())
        .merge(users::router())
        .merge(status::router())
        .merge(alerts::router())
        .split_for_parts();
    let mut doc = doc;
    document_shared_errors(&mut doc);
    (router, doc)
}

/// Adds to every operation the error answers the shared machinery gives whatever the handler
/// says, so that the document tells a client every status it can get (the generated battery,
/// `tests/api_battery.rs`, checks every answer against it): 401 and 403 on every route that
/// needs a token; 400 (malformed JSON), 404 (something the body names does not exist), 413
/// (over `server.body_limit_bytes`), 415 (not JSON) and 422 (unknown field, wrong type, invalid
/// value) where there is a body; 404 and 422 where a
/// path names something; 422 for a bad query; 503 everywhere (the request deadline, a store that
/// stopped confirming writes). A status a handler documents itself keeps its description.
fn document_shared_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
            let params = op.parameters.as_deref().unwrap_or_default();
            let in_path = params
                .iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Path));
            let in_query = params
                .iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Query));
            let mut add: Vec<(&str, &str)> = Vec::new();
            if !public {
                add.push((
                    "401",
                    "no token, or one that is unknown, expired or disabled",
                ));
                add.push(("403", "a role this route does not admit"));
            }
            if op.request_body.is_some() {
                add.push(("400", "malformed JSON"));
                add.push((
                    "404",
                    "a station, session, serial or account named in the body does not exist",
                ));
                add.push(("413", "a body over `server.body_limit_bytes`"));
                add.push(("415", "a body that is not `application/json`"));
                add.push((
                    "422",
                    "an unknown field, a wrong type or an invalid value (`field` names it)",
                ));
            }
            if in_path {
                add.push(("404", "no such resource"));
                add.push(("422", "a malformed id"));
            }
            if in_query {
                add.push(("422", "a malformed query (`field` names it)"));
            }
            add.push((
                "503",
                "no answer within `server.request_timeout_secs`, or the store cannot record",
            ));
            for (status, description) in add {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
}

/// The whole API, ready to serve (tests call it without a socket).
pub fn app(state: AppState) -> Router {
    let (api, doc) = routes();
    let doc = Arc::new(doc);
    let limits = state.limits;
    let tls = state.web.tls;
    let api = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(one_error_body));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", axum::routing::get(status::metrics))
        .merge(ui::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(axum::middleware::from_fn_with_state(limits, deadline))
        .layer(axum::middleware::from_fn_with_state(
            tls,
            web::security_headers,
        ))
        .with_state(state)
}

/// The one error body for what an extractor refused before a handler ran (a path segment that
/// is not UTF-8 once decoded, a query string that does not parse): axum answers those in plain
/// text; the API answers every error as `{"error": {"code", "message"}}`.
async fn one_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "content_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        _ if status.is_server_error() => "internal",
        _ => "refused",
    };
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        error::redact_serde(&text)
    };
    ApiError::new(status, code, message).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such route: the API is under /api/v1 (see /api/v1/openapi.json); the hall UI is at /, /station and /audit",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /api/v1/openapi.json)",
    )
}

/// Every request gets a deadline; a late one is answered with the one error body. (A command
/// already handed to the line still completes there: it is durable or refused, never half.)
///
/// Every answer says how long the controller took over it (`Server-Timing: app;dur=<ms>`): the
/// browser shows it in its network timings, beside the time the request took end to end, so the
/// server's share of a terminal's scan-to-answer time can be told from the loopback's and the
/// page's.
async fn deadline(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = deadline_inner(limits, req, next).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={took:.2}")) {
        response
            .headers_mut()
            .insert(axum::http::HeaderName::from_static("server-timing"), v);
    }
    response
}

async fn deadline_inner(limits: Limits, req: Request, next: Next) -> Response {
    // An online verification takes as long as the ledger is long (a full one of 10 M records,
    // tens of seconds): it reports its progress on the status stream instead, and ends by itself.
    if req.uri().path() == "/api/v1/ledger/verify" {
        return next.run(req).await;
    }
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} s; the request may still complete: check before retrying",
                limits.timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Parses a scanned or typed serial (booklet, patch): 1–40 characters `A–Z`, `0–9` and `-`.
///
/// # Errors
/// 422 naming `field`.
pub(crate) fn serial(field: &str, s: &str) -> Result<crate::ledger::Serial, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::invalid(
            field,
            "a serial is 1–40 characters A–Z, 0–9 and -",
        ));
    }
    Ok(crate::ledger::Serial::new(s))
}

/// The most characters a free-text field (a reason, a statement, a note, a supplier) holds: it
/// is kept in the ledger for the life of the passports.
pub(crate) const TEXT_MAX: usize = 500;

/// Checks a free-text field: at most [`TEXT_MAX`] characters and no control characters (a
/// record stays one line in every export). Returns it trimmed; whether it may be empty is the
/// line's or the ledger's rule.
///
/// # Errors
/// 422 naming `field`.
pub(crate) fn text(field: &str, s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.chars().count() > TEXT_MAX {
        return Err(ApiError::invalid(
            field,
            format!("at most {TEXT_MAX} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "no control characters (line breaks, tabs)",
        ));
    }
    Ok(s.to_string())
}

/// Parses a serial range (`0041200-0041349`, `BK-9001200-BK-9001299`): both ends are serials
/// (see [`serial`]) and it holds at most [`crate::ledger::custody::MAX_LOT`] items, so that a
/// typed range never makes the controller build millions of serials.
///
/// # Errors
/// 422 naming `field`.
pub(crate) fn serial_range(field: &str, s: &str) -> Result<crate::ledger::SerialRange, ApiError> {
    use crate::ledger::custody::MAX_LOT;
    let range = crate::ledger::SerialRange::parse(s.trim()).ok_or_else(|| {
        ApiError::invalid(
            field,
            "a range is `first-last` with the same prefix, e.g. 0041200-0041349",
        )
    })?;
    for end in [range.first, range.last] {
        serial(field, range.serial(end).as_str())?;
    }
    if range.len() > MAX_LOT {
        return Err(ApiError::invalid(
            field,
            format!("a range holds at most {MAX_LOT} serials"),
        ));
    }
    Ok(range)
}

/// Runs a blocking ledger query off the async workers.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("query task failed: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the query failed",
        )
    })?
}
