//! The hall UI's pages and assets (see [`hallctl_ui`]): `/` (hall view), `/station` (station
//! terminal), `/audit` (auditor view), `/ui/...` and `/favicon.ico` (the pages' icon). They
//! need no sign-in: they carry no data, and every request they make goes to the API in the
//! user's cookie session (see [`super::web`]).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

pub(super) fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/ui/{*path}", get(asset))
        .route("/favicon.ico", get(favicon));
    for (route, _, _) in hallctl_ui::PAGES {
        r = r.route(
            route,
            get(move |h: HeaderMap| async move { page(route, &h) }),
        );
    }
    r
}

fn page(route: &str, headers: &HeaderMap) -> Response {
    match hallctl_ui::page(route) {
        Some(a) => send(a, headers),
        None => ApiError::not_found("no such page").into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match hallctl_ui::asset(&path) {
        Some(a) => send(a, &headers),
        None => ApiError::not_found(format!("no UI asset {path}")).into_response(),
    }
}

/// The pages link `/ui/favicon.svg`; a browser that asks `/favicon.ico` anyway gets it too.
async fn favicon(headers: HeaderMap) -> Response {
    match hallctl_ui::favicon() {
        Some(a) => send(a, &headers),
        None => ApiError::not_found("no icon").into_response(),
    }
}

/// The asset, or `304 Not Modified` when the browser's copy is current.
fn send(a: hallctl_ui::Asset, req: &HeaderMap) -> Response {
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(hallctl_ui::CACHE_CONTROL),
    );
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.is_page {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(hallctl_ui::CONTENT_SECURITY_POLICY),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    let body = match a.body {
        std::borrow::Cow::Borrowed(b) => axum::body::Body::from(b),
        std::borrow::Cow::Owned(v) => axum::body::Body::from(v),
    };
    (StatusCode::OK, h, body).into_response()
}
