//! One error body everywhere: `{"error": {"code", "message", "field"}}`. Internals are logged,
//! never sent; messages never carry passport-holder data, PINs or tokens.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::ledger::LedgerError;
use crate::line::{BatchError, LineError};

/// An API error: the status and the body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body's content.
    pub body: ErrorDetail,
}

/// The error body's content.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid`, `not_found`, `refused`, ...).
    pub code: String,
    /// What is wrong, in plain words.
    pub message: String,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every refused item of a batch (job submissions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<BatchError>,
    /// The custody, separation or gating rule that refused (`already_used`, ...): the refusal
    /// is recorded in the ledger and raised as an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

/// `{"error": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                field: None,
                errors: Vec::new(),
                rule: None,
            },
        }
    }

    /// The same, naming a field.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 naming a field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).field(field)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.body })).into_response()
    }
}

impl From<LineError> for ApiError {
    fn from(e: LineError) -> Self {
        let msg = e.to_string();
        match e {
            LineError::Invalid { field, .. } => {
                let mut a = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", msg);
                a.body.field = field;
                a
            }
            LineError::Batch(errors) => {
                let mut a = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_jobs", msg);
                a.body.field = errors.first().map(|e| e.field.clone());
                // Jobs for another issuing state are recorded and alerted (the line does it).
                if errors
                    .iter()
                    .any(|e| e.field.ends_with("personalization.issuing_state"))
                {
                    a.body.rule = Some("issuing_state");
                }
                a.body.errors = errors;
                a
            }
            LineError::NotFound(_) => ApiError::not_found(msg),
            LineError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            LineError::Forbidden(r) => {
                let mut a = ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg);
                a.body.rule = Some(r.rule());
                a
            }
            LineError::Refused(r) => {
                let mut a = ApiError::new(StatusCode::CONFLICT, "refused", msg);
                a.body.rule = Some(r.rule());
                a
            }
            // The reason (a disk almost full, a failed write) helps whoever reads it at a
            // terminal; it names files and devices, never request data.
            LineError::Storage(_) => {
                tracing::error!("{msg}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", msg)
            }
            LineError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", msg),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        let status = match &e {
            AuthError::InvalidCredentials | AuthError::Disabled | AuthError::Expired => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::Locked { .. } | AuthError::CosignBlocked { .. } => StatusCode::LOCKED,
            // Not 401: the asker's own session is fine (a terminal must not sign out on a
            // co-signer's typo).
            AuthError::CosignerPin { .. } => StatusCode::FORBIDDEN,
            AuthError::UnknownUser(_) => StatusCode::NOT_FOUND,
            AuthError::Exists(_) | AuthError::NoChange(_) => StatusCode::CONFLICT,
            AuthError::WeakPin { .. }
            | AuthError::InvalidId { .. }
            | AuthError::InvalidName { .. }
            | AuthError::AccountKind(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::Forbidden { .. } | AuthError::NotRostered(_) => StatusCode::FORBIDDEN,
            AuthError::Ledger(LedgerError::Refused(_)) => StatusCode::CONFLICT,
            AuthError::Policy(_) | AuthError::Crypto(_) | AuthError::Ledger(_) => {
                tracing::error!("{msg}");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "the controller cannot do this now; nothing was changed",
                );
            }
        };
        let mut a = ApiError::new(status, e.code(), msg);
        if matches!(
            e,
            AuthError::CosignerPin { .. } | AuthError::CosignBlocked { .. }
        ) {
            a.body.rule = Some("cosigner_pin");
        }
        if matches!(e, AuthError::NotRostered(_)) {
            a.body.rule = Some("not_rostered");
        }
        a
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        ApiError::from(LineError::from(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_json",
                    redact_serde(&text),
                );
                a.body.field = serde_field(&text);
                a
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                redact_serde(&e.body_text()),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) => {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "too_large", "the request body is too large")
                } else {
                    ApiError::new(status, "bad_body", "the request body could not be read")
                }
            }
            other => ApiError::new(other.status(), "bad_json", redact_serde(&other.body_text())),
        }
    }
}

/// The field a JSON data error is about, from axum's message (`Failed to deserialize the JSON
/// body into the target type: jobs[0].due: invalid type: ...`, or `... unknown field `x` ...`
/// at the top level): the path, and the unknown or missing field's name within it.
pub(crate) fn serde_field(msg: &str) -> Option<String> {
    let rest = msg
        .split_once("into the target type: ")
        .map_or(msg, |(_, r)| r);
    let (path, detail) = match rest.split_once(": ") {
        Some((p, d))
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (Some(p.trim_matches('.')), d)
        }
        _ => (None, rest),
    };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|k| detail.split_once(k))
        .and_then(|(_, after)| after.split_once('`'))
        .map(|(name, _)| name);
    match (path.filter(|p| !p.is_empty()), named) {
        // serde_path_to_error's path ends at an unknown field, and at the object of a missing one.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p.to_string()),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (Some(p), None) => Some(p.to_string()),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    }
}

/// serde's messages can quote the submitted value (`invalid type: string "ERIKSSON"`): keep
/// the kind and the position, drop the value.
pub(crate) fn redact_serde(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push('…');
                out.push(c);
            }
            Some(_) => {}
            None if c == '"' => {
                quote = Some('"');
                out.push(c);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_field_of_a_json_data_error_is_named() {
        let p = "Failed to deserialize the JSON body into the target type: ";
        for (msg, field) in [
            (
                "jobs[0].personalization.surname: invalid type: integer `3`, expected a string at line 1 column 9",
                Some("jobs[0].personalization.surname"),
            ),
            (
                "jobs[1].colour: unknown field `colour`, expected one of `a`, `b` at line 1 column 9",
                Some("jobs[1].colour"),
            ),
            (
                "remember: unknown field `remember`, expected `user` at line 1 column 9",
                Some("remember"),
            ),
            (
                "unknown field `priority`, expected `jobs` at line 1 column 30",
                Some("priority"),
            ),
            ("missing field `pin` at line 1 column 12", Some("pin")),
            (
                "counters[0]: missing field `pin` at line 1 column 40",
                Some("counters[0].pin"),
            ),
            ("invalid type: sequence, expected a string", None),
        ] {
            assert_eq!(
                super::serde_field(&format!("{p}{msg}")).as_deref(),
                field,
                "{msg}"
            );
        }
    }

    #[test]
    fn serde_messages_lose_the_submitted_value_but_keep_the_field() {
        let m = super::redact_serde(
            "Failed to deserialize the JSON body into the target type: jobs[0].personalization.surname: invalid type: string \"ERIKSSON\", expected u32 at line 1 column 40",
        );
        assert!(!m.contains("ERIKSSON"), "{m}");
        assert!(m.contains("personalization.surname"), "{m}");
        assert!(m.contains("line 1 column 40"), "{m}");
    }
}
