//! A local Binance-compatible server replaying recorded data: the test double for Binance and the
//! offline demo's source. REST `/api/v3/{klines,aggTrades,historicalTrades,depth,exchangeInfo,ping,time}` with
//! Binance's paging and weight header; WebSocket `/ws/<stream>` and `/stream?streams=…`; Binance's
//! public data archive (ZIP + CHECKSUM files) under `/data/`.

mod archive;
pub mod data;
mod klines;
mod limits;
mod rest;
mod ws;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::web;

pub use data::{ReplayData, ReplayDataError};
pub use klines::KlineSeries;
pub use limits::ReplayStats;

use limits::Gate;

use crate::http::HttpService;

/// Binance's request-weight budget per minute and IP.
pub const WEIGHT_LIMIT_1M: u32 = 6000;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Data(#[from] ReplayDataError),
    #[error("loading the recorded data failed: {0}")]
    LoadTask(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

impl Default for ReplayFaults {
    fn default() -> Self {
        ReplayFaults {
            weight_window: std::time::Duration::from_secs(60),
            drop_depth_events: Vec::new(),
            rate_limit_every: None,
            retry_after_secs: 0,
            ban: std::time::Duration::from_secs(120),
            banned_at_start: false,
            rest_delay: std::time::Duration::ZERO,
            server_error_every: None,
            silence_ws_after: None,
            drop_ws_after: None,
            hostile_ws: Vec::new(),
            ws_drop_skips: 0,
            missing_archive: Vec::new(),
            corrupt_archive: Vec::new(),
            unreadable_archive: Vec::new(),
        }
    }
}

/// How a connection fault takes a WebSocket connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionFault {
    /// Gone without a close frame.
    Drop,
    /// Open but silent: no data, no pings, no pongs.
    Silence,
}

/// Faults the replay server injects, to test how clients cope.
#[derive(Debug, Clone)]
pub struct ReplayFaults {
    /// The window the 6,000 weight budget is counted over: Binance's minute; shorter only to
    /// benchmark a client's budget use on a scaled clock.
    pub weight_window: std::time::Duration,
    /// Depth events (0-based, counted per WebSocket connection) that are not sent: a sequence gap
    /// in the client's stream. The server's own book still includes them.
    pub drop_depth_events: Vec<u64>,
    /// Every n-th REST request is answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_every: Option<u64>,
    pub retry_after_secs: u64,
    /// How long a ban (418) lasts: one for a request sent before a 429's wait was over, or during
    /// a ban. Binance's bans last 2 minutes to 3 days; the default is 2 minutes.
    pub ban: std::time::Duration,
    /// The IP is banned from the start (another client on it, or an earlier run, was banned).
    pub banned_at_start: bool,
    /// Added to every REST answer (a slow exchange).
    pub rest_delay: std::time::Duration,
    /// Every n-th REST request is answered 503: the client cannot know whether it was served.
    pub server_error_every: Option<u64>,
    /// Once this many WebSocket messages have been sent (server-wide), the connection about to
    /// send the next one goes silent — no data, no pings, no pongs — but stays open; once.
    pub silence_ws_after: Option<u64>,
    /// Once this many WebSocket messages have been sent (server-wide), the connection about to
    /// send the next one is dropped without a close frame — once (with `silence_ws_after`, the
    /// first of the two that is due).
    pub drop_ws_after: Option<u64>,
    /// Messages of the dropped or silenced connection's streams that pass while its client is
    /// away: never sent, so a client must fetch them over REST.
    pub ws_drop_skips: u64,
    /// Frames a broken or hostile server sends, each at a message position (0-based, counted per
    /// WebSocket connection, recorded messages only): a client must count and skip every bad one,
    /// keep every good message, and resync its books where the ids say so.
    pub hostile_ws: Vec<(u64, HostileFrame)>,
    /// Archive files (those whose name contains one of these, e.g. `2021-05-03`) answered 404:
    /// a day the archive never got.
    pub missing_archive: Vec<String>,
    /// Archive files (named the same way) served with a changed CSV under the genuine file's
    /// checksum: a download that does not match its `.CHECKSUM`, every time.
    pub corrupt_archive: Vec<String>,
    /// Archive files (named the same way) whose CSV has a broken line half-way, under a checksum
    /// of their own: a bad file the exchange published.
    pub unreadable_archive: Vec<String>,
}

/// What a broken or hostile server does at one message position (see
/// [`ReplayFaults::hostile_ws`]); except for `Late` and `Stall`, the message itself follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostileFrame {
    /// The message's text cut in half.
    Truncated,
    /// A text frame that is not JSON.
    Garbage,
    /// A binary frame (Binance sends text only).
    Binary,
    /// A JSON text frame of about this many bytes that is no stream message.
    Huge(usize),
    /// A well-formed message of the message's stream whose data is no event of that stream.
    Unexpected,
    /// The message (a depth event) is held back and sent right after the next depth event of its
    /// symbol: two events out of order, a gap in the ids for the client.
    Late,
    /// Nothing is sent for this long before the message (pings are still answered).
    Stall(std::time::Duration),
}

pub(crate) struct ReplayState {
    data: Arc<ReplayData>,
    speed: f64,
    gate: Arc<Gate>,
    faults: ReplayFaults,
    /// Per symbol, the update id the exchange's book has reached: the last depth event replayed
    /// (sent or dropped). REST snapshots are served at that point, as Binance serves its live book.
    depth_position: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// Per set of streams (`a/b`), the index of the next message of the live recording.
    stream_positions: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    ws_sent: std::sync::atomic::AtomicU64,
    /// A connection fault happened already (each happens once).
    ws_faulted: std::sync::atomic::AtomicBool,
    /// Archive ZIPs built so far, by file name.
    archive_files: std::sync::Mutex<std::collections::HashMap<String, bytes::Bytes>>,
}

impl ReplayState {
    fn depth_position(&self, symbol: &str) -> Option<i64> {
        self.depth_position.lock().unwrap_or_else(|e| e.into_inner()).get(symbol).copied()
    }

    fn set_depth_position(&self, symbol: &str, update_id: i64) {
        self.depth_position.lock().unwrap_or_else(|e| e.into_inner()).insert(symbol.to_owned(), update_id);
    }

    /// Index of the next message of a set of streams (`a/b`); `None` before anyone connected.
    fn stream_position(&self, streams: &str) -> Option<usize> {
        self.stream_positions.lock().unwrap_or_else(|e| e.into_inner()).get(streams).copied()
    }

    fn set_stream_position(&self, streams: &str, next: usize) {
        self.stream_positions.lock().unwrap_or_else(|e| e.into_inner()).insert(streams.to_owned(), next);
    }

    /// Counts a message about to be sent; says whether a fault takes the connection away now.
    fn connection_fault(&self) -> Option<ConnectionFault> {
        use std::sync::atomic::Ordering::AcqRel;
        let sent = self.ws_sent.fetch_add(1, AcqRel);
        let due = |at: Option<u64>| at.is_some_and(|n| sent >= n) && !self.ws_faulted.swap(true, AcqRel);
        if due(self.faults.drop_ws_after) {
            Some(ConnectionFault::Drop)
        } else if due(self.faults.silence_ws_after) {
            Some(ConnectionFault::Silence)
        } else {
            None
        }
    }

    /// Spends `weight` of this minute's budget for a request to `endpoint` as it arrives: the
    /// minute's total as `X-MBX-USED-WEIGHT-1M` reports it, or a 429/418 to send. The configured
    /// delay comes after, so a request is counted even if its client dies waiting for the answer.
    async fn admit(&self, endpoint: &str, weight: u32) -> Result<u32, actix_web::HttpResponse> {
        let admitted = self.gate.admit(endpoint, weight).map_err(|r| r.response());
        if !self.faults.rest_delay.is_zero() {
            tokio::time::sleep(self.faults.rest_delay).await;
        }
        admitted
    }
}

/// A running replay server; stops when [`ReplayServer::stop`] is called.
pub struct ReplayServer {
    http: HttpService,
    gate: Arc<Gate>,
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v3/klines", web::get().to(rest::klines))
        .route("/api/v3/aggTrades", web::get().to(rest::agg_trades))
        .route("/api/v3/historicalTrades", web::get().to(rest::historical_trades))
        .route("/api/v3/depth", web::get().to(rest::depth))
        .route("/api/v3/exchangeInfo", web::get().to(rest::exchange_info))
        .route("/api/v3/ping", web::get().to(rest::ping))
        .route("/api/v3/time", web::get().to(rest::time))
        .route("/ws/{stream}", web::get().to(ws::single))
        .route("/stream", web::get().to(ws::combined))
        .route("/data/{path:.*}", web::get().to(archive::file))
        .route("/replay/stats", web::get().to(rest::stats));
}

impl ReplayServer {
    /// Loads `dir` and serves it on `addr` (`127.0.0.1:0` picks a free port). `speed` scales the
    /// WebSocket pace: 1.0 is as recorded, 0 sends without waiting.
    pub async fn start_dir(
        dir: &Path,
        addr: &str,
        speed: f64,
        faults: ReplayFaults,
    ) -> Result<ReplayServer, ReplayError> {
        let dir = dir.to_owned();
        let data = tokio::task::spawn_blocking(move || ReplayData::load(&dir))
            .await
            .map_err(|e| ReplayError::LoadTask(e.to_string()))??;
        Self::start_with_faults(Arc::new(data), addr, speed, faults).await
    }

    pub async fn start(data: Arc<ReplayData>, addr: &str, speed: f64) -> Result<ReplayServer, ReplayError> {
        Self::start_with_faults(data, addr, speed, ReplayFaults::default()).await
    }

    /// Like [`ReplayServer::start`], injecting `faults`.
    pub async fn start_with_faults(
        data: Arc<ReplayData>,
        addr: &str,
        speed: f64,
        faults: ReplayFaults,
    ) -> Result<ReplayServer, ReplayError> {
        let gate = Arc::new(Gate::new(&faults));
        let state = ReplayState {
            data,
            speed,
            gate: gate.clone(),
            faults,
            depth_position: Default::default(),
            stream_positions: Default::default(),
            ws_sent: Default::default(),
            ws_faulted: Default::default(),
            archive_files: Default::default(),
        };
        let http = HttpService::start(addr, 2, state, routes, None, None)
            .await
            .map_err(|source| ReplayError::Bind { addr: addr.to_owned(), source })?;
        tracing::info!(addr = %http.addr(), "Replay server listening.");
        Ok(ReplayServer { http, gate })
    }

    /// What clients have asked so far (also served at `GET /replay/stats`).
    pub fn stats(&self) -> ReplayStats {
        self.gate.stats()
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// `http://127.0.0.1:PORT`, to use as a Binance REST base URL.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://127.0.0.1:PORT/data`, to use as Binance's archive base URL (`binance.archive_url`).
    pub fn archive_url(&self) -> String {
        format!("{}/data", self.rest_url())
    }

    /// `ws://127.0.0.1:PORT`, to use as a Binance WebSocket base URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    pub async fn stop(&self) {
        self.http.stop().await;
    }
}
