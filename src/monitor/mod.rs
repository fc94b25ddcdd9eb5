//! The live monitor behind the dashboard at `/ui`: a [`Hub`] of per-symbol boards (trade tape,
//! 1m candles, verified book, counters) fed by the [`Monitor`] actor from the node's own stream
//! topics, and the clients it pushes to. Each client gets a full `snapshot`, then at most one
//! `update` per `monitor.push_ms` with what changed (trades batched, the book coalesced to its
//! latest state) and a `health` frame a second from the node's metrics and supervision tree.
//! Frames are built once and shared by every client of a symbol; a client holds at most
//! `monitor.client_buffer` unsent frames, and one that falls further behind is dropped (its
//! page reconnects and starts again from a snapshot), so a slow tab never grows the node.

mod actor;
mod board;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

pub use actor::{Monitor, MonitorArgs, MonitorSource};
pub use board::{BookState, MinuteCandle, SymbolBoard};

use crate::admin::metrics::Metrics;
use crate::config::MonitorConfig;

/// Why a client cannot subscribe.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("this node streams no {symbol}; it streams {known:?}")]
    UnknownSymbol { symbol: String, known: Vec<String> },
    #[error("{0} event streams are open, the most monitor.max_clients allows")]
    Full(usize),
    #[error("the node is stopping; connect again in a moment")]
    Closed,
}

struct Client {
    symbol: String,
    tx: mpsc::Sender<Bytes>,
}

/// The boards and the clients, shared by the monitor actor and the admin server.
pub struct Hub {
    config: MonitorConfig,
    boards: Mutex<BTreeMap<String, SymbolBoard>>,
    clients: Mutex<Vec<Client>>,
    /// The latest health frame, sent to a new client at once.
    health: Mutex<Option<Bytes>>,
    metrics: Arc<Metrics>,
    /// Set when the admin server stops: no new clients.
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One server-sent event.
fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// How soon a browser reconnects after the stream ends (the node restarted).
const RETRY: &str = "retry: 1000\n\n";

impl Hub {
    /// A hub for `symbols`, each with how often its depth loader publishes a verified book.
    pub fn new(config: MonitorConfig, symbols: &[(String, Duration)], metrics: Arc<Metrics>) -> Self {
        let boards = symbols
            .iter()
            .map(|(s, every)| (s.clone(), SymbolBoard::new(s, config.tape, config.candles, config.levels, *every)))
            .collect();
        Hub {
            config,
            boards: Mutex::new(boards),
            clients: Mutex::default(),
            health: Mutex::default(),
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    pub fn symbols(&self) -> Vec<String> {
        lock(&self.boards).keys().cloned().collect()
    }

    /// `monitor.symbol` when the node streams it, else the first symbol it streams.
    pub fn default_symbol(&self) -> Option<String> {
        let boards = lock(&self.boards);
        boards
            .contains_key(&self.config.symbol)
            .then(|| self.config.symbol.clone())
            .or_else(|| boards.keys().next().cloned())
    }

    /// The full board of `symbol`, as a new client's first frame carries it.
    pub fn snapshot(&self, symbol: &str) -> Result<Value, SubscribeError> {
        let boards = lock(&self.boards);
        boards.get(symbol).map(SymbolBoard::snapshot).ok_or_else(|| SubscribeError::UnknownSymbol {
            symbol: symbol.to_owned(),
            known: boards.keys().cloned().collect(),
        })
    }

    /// A new client of `symbol`: its channel already holds the snapshot (and the latest health).
    pub fn subscribe(&self, symbol: &str) -> Result<mpsc::Receiver<Bytes>, SubscribeError> {
        let snapshot = self.snapshot(symbol)?;
        let mut clients = lock(&self.clients);
        if self.closed.load(Ordering::Acquire) {
            return Err(SubscribeError::Closed);
        }
        clients.retain(|c| !c.tx.is_closed());
        if clients.len() >= self.config.max_clients {
            return Err(SubscribeError::Full(clients.len()));
        }
        let (tx, rx) = mpsc::channel(self.config.client_buffer + 2);
        let _ = tx.try_send(Bytes::from_static(RETRY.as_bytes()));
        let _ = tx.try_send(sse("snapshot", &snapshot));
        if let Some(h) = lock(&self.health).clone() {
            let _ = tx.try_send(h);
        }
        self.metrics.monitor_frames.with_label_values(&["snapshot"]).inc();
        clients.push(Client { symbol: symbol.to_owned(), tx });
        self.metrics.monitor_clients.set(clients.len() as i64);
        Ok(rx)
    }

    /// Runs `f` on `symbol`'s board; `None` for a symbol the node does not stream.
    pub(crate) fn with_board<R>(&self, symbol: &str, f: impl FnOnce(&mut SymbolBoard) -> R) -> Option<R> {
        lock(&self.boards).get_mut(symbol).map(f)
    }

    /// Sends every symbol's changes to its clients.
    pub(crate) fn push_updates(&self) {
        let frames: Vec<(String, Bytes)> = lock(&self.boards)
            .iter_mut()
            .filter_map(|(s, b)| b.update().map(|u| (s.clone(), sse("update", &u))))
            .collect();
        for (symbol, frame) in frames {
            self.send(Some(&symbol), "update", frame);
        }
    }

    /// Ends a second: message rates, then `health` to every client.
    pub(crate) fn push_health(&self, health: &Value) {
        for b in lock(&self.boards).values_mut() {
            b.tick_second();
        }
        let frame = sse("health", health);
        *lock(&self.health) = Some(frame.clone());
        self.send(None, "health", frame);
    }

    /// Ends every client's stream and takes no new ones (the admin server is stopping).
    pub fn close(&self) {
        let mut clients = lock(&self.clients);
        self.closed.store(true, Ordering::Release);
        clients.clear();
        self.metrics.monitor_clients.set(0);
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        lock(&self.clients).len()
    }

    /// `frame` to the clients of `symbol` (all clients for `None`). A client whose buffer is
    /// full is dropped; one that has gone is forgotten.
    fn send(&self, symbol: Option<&str>, kind: &str, frame: Bytes) {
        let mut clients = lock(&self.clients);
        let before = clients.len();
        let mut sent = 0;
        clients.retain(|c| {
            if symbol.is_some_and(|s| s != c.symbol) {
                return !c.tx.is_closed();
            }
            match c.tx.try_send(frame.clone()) {
                Ok(()) => {
                    sent += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(symbol = %c.symbol, "A dashboard client fell behind; dropped (its page reconnects).");
                    self.metrics.monitor_dropped.inc();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.metrics.monitor_frames.with_label_values(&[kind]).inc_by(sent);
        if clients.len() != before {
            self.metrics.monitor_clients.set(clients.len() as i64);
        }
    }
}
