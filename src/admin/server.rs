//! The admin HTTP server: `/healthz` (the process answers), `/readyz` (the supervision tree is up),
//! `/metrics` (Prometheus text), `/api/v1/supervision` (the live tree), `/api/v1/lag`, the
//! control plane of [`super::api`] (workflows, ping), the API docs at `/docs` and the dashboard at
//! `/ui` ([`super::ui`]). Unknown paths get a 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::auth::Auth;
use super::metrics::Metrics;
use super::LagSource;
use crate::bus::Bus;
use crate::http::HttpService;
use crate::monitor::Hub;
use crate::store::Store;
use crate::supervision::TreeView;
use crate::workflow::manager::ManagerHandle;

#[derive(Debug, thiserror::Error)]
#[error("cannot start the admin server on {addr}: {source}")]
pub struct AdminError {
    addr: String,
    source: std::io::Error,
}

/// What the handlers can see.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// The node's supervision tree and the path of its root.
    pub view: TreeView,
    pub root: String,
    pub lag: LagSource,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    /// queue-manager, where the node runs one (`queue_manager.enabled`).
    pub manager: Option<ManagerHandle>,
    pub auth: Arc<Auth>,
    /// The dashboard's boards and clients (no symbols when the node streams none).
    pub monitor: Arc<Hub>,
}

/// Each admin connection's kernel send buffer: a dashboard tab that stops reading holds back at
/// most this much (plus its bounded frame queue) before the monitor drops it.
const SEND_BUFFER: u32 = 64 * 1024;

pub struct AdminServer {
    http: HttpService,
    /// Its dashboard clients, disconnected before the server stops (their streams never end).
    monitor: Arc<Hub>,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "starting" }))
    }
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    state.lag.read(&state.metrics).await;
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

/// The live supervision tree: every supervisor and child with state, restarts, last error, up since.
#[utoipa::path(get, path = "/api/v1/supervision", tag = "node",
    responses((status = 200, description = "the tree from the root", body = Object),
        (status = 503, description = "no tree runs yet", body = Object)))]
pub(super) async fn supervision(state: web::Data<AdminState>) -> HttpResponse {
    match state.view.tree(&state.root) {
        Some(tree) => HttpResponse::Ok().json(tree),
        None => HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "no supervision tree running" })),
    }
}

/// Consumer lag of this node's groups, per partition, read from the bus now.
#[utoipa::path(get, path = "/api/v1/lag", tag = "node",
    responses((status = 200, description = "`{total, partitions: [{group, topic, partition, committed, end, lag}]}`", body = Object)))]
pub(super) async fn lag(state: web::Data<AdminState>) -> HttpResponse {
    let partitions = state.lag.read(&state.metrics).await;
    let total: u64 = partitions.iter().map(|p| p.lag).sum();
    HttpResponse::Ok().json(serde_json::json!({ "total": total, "partitions": partitions }))
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "not found",
        "path": req.path(),
        "endpoints": ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/ui", "/api/v1/supervision", "/api/v1/lag",
            "/api/v1/workflows", "/api/v1/workflows/{id}", "/api/v1/workflows/{id}/stop", "/api/v1/ping", "/api/v1/events",
            "/api/v1/monitor", "/api/v1/monitor/{symbol}", "/api/v1/monitor/{symbol}/stream"],
    }))
}

/// The read-only views of the node under `/api/v1`.
fn views(cfg: &mut web::ServiceConfig) {
    cfg.route("/supervision", web::get().to(supervision)).route("/lag", web::get().to(lag)).configure(super::ui::api);
}

/// The OpenAPI document of the API.
async fn openapi() -> HttpResponse {
    use utoipa::OpenApi as _;
    HttpResponse::Ok().json(super::api::ApiDoc::openapi())
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/openapi.json", web::get().to(openapi))
        .configure(super::docs::routes)
        .configure(super::ui::routes)
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .service(super::api::scope(views).default_service(web::to(not_found)))
        .default_service(web::to(not_found));
}

impl AdminServer {
    pub async fn start(addr: &str, state: AdminState) -> Result<AdminServer, AdminError> {
        let monitor = state.monitor.clone();
        let metrics = state.metrics.clone();
        let hook: crate::http::ResponseHook = Arc::new(move |status| metrics.http_response(status));
        let http = HttpService::start(addr, 1, state, routes, Some(SEND_BUFFER), Some(hook))
            .await
            .map_err(|source| AdminError { addr: addr.to_owned(), source })?;
        tracing::info!(addr = %http.addr(), "Admin server listening.");
        Ok(AdminServer { http, monitor })
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Ends the dashboards' event streams (their pages reconnect to the next server on the
    /// address), then stops accepting and lets requests in progress finish.
    pub async fn stop(&self) {
        self.monitor.close();
        self.http.stop().await;
    }
}
