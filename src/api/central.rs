//! `hallctl central`'s HTTP side (see [`crate::central`]): the overview page at `/` and
//! `GET /api/halls`. Read-only and unauthenticated: it shows what every hall publishes to the
//! monitoring broker, and listens on the loopback by default (put it behind the monitoring
//! room's proxy to share it).

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Json};
use axum::routing::get;

use crate::central::{Central, HallsView};

/// Serves the page and `/api/halls` on `listener` until `shutdown` completes.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    central: Central,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(central))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The page and `/api/halls`.
pub fn router(central: Central) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/halls", get(halls))
        .with_state(central)
}

async fn page() -> Html<&'static str> {
    Html(hallctl_ui::CENTRAL_HTML)
}

async fn halls(State(c): State<Central>) -> Json<HallsView> {
    Json(c.halls(chrono::Utc::now()))
}
