//! The dashboard: the page at `/ui` (HTML, script and style embedded in the binary from
//! `assets/ui/`, no CDN) and the monitor API it draws from, under `/api/v1/monitor` with the read
//! rules of the rest of the API: `GET /api/v1/monitor` (the symbols this node streams),
//! `GET /api/v1/monitor/{symbol}` (the board now) and `GET /api/v1/monitor/{symbol}/stream`
//! (server-sent events: `snapshot`, then `update` and `health`; see [`crate::monitor`]).

use actix_web::{web, HttpResponse};
use futures_util::StreamExt as _;

use super::api::{error, ErrorBody};
use super::AdminState;
use crate::monitor::SubscribeError;

const PAGE: &str = include_str!("../../assets/ui/index.html");
const SCRIPT: &str = include_str!("../../assets/ui/app.js");
const STYLE: &str = include_str!("../../assets/ui/app.css");

/// An embedded asset, revalidated on every load (a new binary may serve a new page).
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).insert_header(("cache-control", "no-cache")).body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// The page and its assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui", web::get().to(page))
        .route("/ui/", web::get().to(page))
        .route("/ui/app.js", web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/app.css", web::get().to(|| async { asset("text/css; charset=utf-8", STYLE) }));
}

fn subscribe_error(e: SubscribeError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match e {
        SubscribeError::UnknownSymbol { .. } => error(StatusCode::NOT_FOUND, "unknown symbol", e.to_string()),
        SubscribeError::Full(_) => error(StatusCode::SERVICE_UNAVAILABLE, "too many clients", e.to_string()),
        SubscribeError::Closed => error(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string()),
    }
}

/// The symbols this node streams and how the dashboard is set up.
#[utoipa::path(get, path = "/api/v1/monitor", tag = "monitor",
    responses((status = 200, description = "`{symbols, default, push_ms, tape, candles, levels}`", body = Object)))]
pub(super) async fn monitor(state: web::Data<AdminState>) -> HttpResponse {
    let hub = &state.monitor;
    let c = hub.config();
    HttpResponse::Ok().json(serde_json::json!({
        "node": state.root,
        "symbols": hub.symbols(),
        "default": hub.default_symbol(),
        "push_ms": c.push_ms,
        "tape": c.tape,
        "candles": c.candles,
        "levels": c.levels,
    }))
}

/// One symbol's board now: tape, 1m candles, verified book (update id, sync state), stats.
#[utoipa::path(get, path = "/api/v1/monitor/{symbol}", tag = "monitor",
    params(("symbol" = String, Path, description = "an upper-case symbol the node streams, e.g. ETHUSDT")),
    responses((status = 200, description = "the board", body = Object),
        (status = 404, description = "the node streams no such symbol", body = ErrorBody)))]
pub(super) async fn board(state: web::Data<AdminState>, path: web::Path<String>) -> HttpResponse {
    match state.monitor.snapshot(&path.into_inner()) {
        Ok(board) => HttpResponse::Ok().json(board),
        Err(e) => subscribe_error(e),
    }
}

/// The board as server-sent events: `snapshot` first, then `update` (what changed, at most every
/// `monitor.push_ms`) and `health` (each second), for as long as the client keeps up.
#[utoipa::path(get, path = "/api/v1/monitor/{symbol}/stream", tag = "monitor",
    params(("symbol" = String, Path, description = "an upper-case symbol the node streams, e.g. ETHUSDT")),
    responses((status = 200, description = "an endless text/event-stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "the node streams no such symbol", body = ErrorBody),
        (status = 503, description = "monitor.max_clients streams are open, or the node is stopping", body = ErrorBody)))]
pub(super) async fn stream(state: web::Data<AdminState>, path: web::Path<String>) -> HttpResponse {
    match state.monitor.subscribe(&path.into_inner()) {
        Ok(rx) => {
            let frames = tokio_stream_of(rx).map(Ok::<_, actix_web::Error>);
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .insert_header(("x-accel-buffering", "no"))
                .streaming(frames)
        }
        Err(e) => subscribe_error(e),
    }
}

/// A receiver as a stream that ends when the hub drops the client.
fn tokio_stream_of(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> impl futures_util::Stream<Item = bytes::Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|frame| (frame, rx)) })
}

/// The monitor API under `/api/v1`.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.route("/monitor", web::get().to(monitor))
        .route("/monitor/{symbol}", web::get().to(board))
        .route("/monitor/{symbol}/stream", web::get().to(stream));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_its_embedded_assets() {
        for needle in ["/ui/app.js", "/ui/app.css", "<h1", "lang=\"en\""] {
            assert!(super::PAGE.contains(needle), "{needle}");
        }
        for text in [super::PAGE, super::SCRIPT, super::STYLE] {
            assert!(!text.contains("https://") && !text.contains("http://"), "no outside address in the assets");
        }
        assert!(super::SCRIPT.contains("/api/v1/monitor"));
    }
}
