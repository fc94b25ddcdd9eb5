//! Running an actix-web server inside the node's tokio runtime, the way every StreamForge HTTP
//! server does (admin API, replay server): our own signal handling, a free port with `:0`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::Service as _;
use actix_web::{web, App, HttpServer};

/// Told the status code of every response a server sends (e.g. to count them by class).
pub type ResponseHook = Arc<dyn Fn(u16) + Send + Sync>;

/// A running HTTP server.
pub struct HttpService {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

/// How long a stopping server waits for requests in progress (an endless stream included).
const SHUTDOWN_TIMEOUT: u64 = 5;

/// A listening socket on `addr` whose accepted connections inherit a `send_buffer`-byte send
/// buffer (set on the listener, as Linux copies it to each accepted socket).
async fn listener(addr: &str, send_buffer: u32) -> std::io::Result<std::net::TcpListener> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} names no address")))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(send_buffer)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

impl HttpService {
    /// Binds `addr` and serves `routes` with `state` as app data on `workers` threads. With
    /// `send_buffer`, every connection's kernel send buffer is that size instead of growing with
    /// TCP autotuning (to 4 MiB on Linux): what a client that stops reading can hold back. `hook`
    /// is told every response's status, errors turned into responses included.
    pub async fn start<D: Send + Sync + 'static>(
        addr: &str,
        workers: usize,
        state: D,
        routes: fn(&mut web::ServiceConfig),
        send_buffer: Option<u32>,
        hook: Option<ResponseHook>,
    ) -> std::io::Result<HttpService> {
        let bound = match send_buffer {
            Some(bytes) => Some(listener(addr, bytes).await?),
            None => None,
        };
        let state = web::Data::new(state);
        let server = HttpServer::new(move || {
            let hook = hook.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, service| {
                    let response = service.call(req);
                    let hook = hook.clone();
                    async move {
                        let response = response.await;
                        if let Some(hook) = &hook {
                            hook(match &response {
                                Ok(r) => r.status().as_u16(),
                                Err(e) => e.as_response_error().status_code().as_u16(),
                            });
                        }
                        response
                    }
                })
                .configure(routes)
        })
        .workers(workers)
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .disable_signals();
        let server = match bound {
            None => server.bind(addr)?,
            Some(listener) => server.listen(listener)?,
        };
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
