//! Running an actix-web server inside the node's tokio runtime, the way every StreamForge HTTP
//! server does (admin API, replay server): our own signal handling, a free port with `:0`.

use std::net::SocketAddr;

use actix_web::{web, App, HttpServer};

/// A running HTTP server.
pub struct HttpService {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl HttpService {
    /// Binds `addr` and serves `routes` with `state` as app data on `workers` threads.
    pub async fn start<D: Send + Sync + 'static>(
        addr: &str,
        workers: usize,
        state: D,
        routes: fn(&mut web::ServiceConfig),
    ) -> std::io::Result<HttpService> {
        let state = web::Data::new(state);
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
            .workers(workers)
            .disable_signals()
            .bind(addr)?;
        let bound = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("no address bound"))?;
        let running = server.run();
        let handle = running.handle();
        tokio::spawn(running);
        Ok(HttpService { addr: bound, handle })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}
