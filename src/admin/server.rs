//! The admin HTTP server: `/healthz` (the process answers), `/readyz` (the supervision tree is up),
//! `/metrics` (Prometheus text). Unknown paths get a 404 with a reason.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

use super::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error("cannot start the admin server on {addr}: {source}")]
pub struct AdminError {
    addr: String,
    source: std::io::Error,
}

/// What the handlers can see.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub struct AdminServer {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
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
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "not found",
        "path": req.path(),
        "endpoints": ["/healthz", "/readyz", "/metrics"],
    }))
}

impl AdminServer {
    pub async fn start(addr: &str, state: AdminState) -> Result<AdminServer, AdminError> {
        let state = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .bind(addr)
        .map_err(|source| AdminError { addr: addr.to_owned(), source })?;
        let bound = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| AdminError { addr: addr.to_owned(), source: std::io::Error::other("no address bound") })?;
        let running = server.run();
        let handle = running.handle();
        tokio::spawn(running);
        tracing::info!(addr = %bound, "Admin server listening.");
        Ok(AdminServer { addr: bound, handle })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}
