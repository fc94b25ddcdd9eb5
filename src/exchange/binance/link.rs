//! A WebSocket link that stays up: one connection carrying a set of streams, opened again with
//! backoff and jitter when it fails, closes or goes silent (no frame, not even a ping, for
//! `silence`), and renewed before Binance's 24 h cut-off. The loaders on top decide what to do
//! after a reconnect (backfill, resync).

use std::time::Duration;

use futures_util::FutureExt;

use super::{BadFrame, BinanceWs, Frame, StreamMessage, WsConnection};
use crate::supervision::{Backoff, Jitter};

/// How a link behaves; `max_age` should differ per connection of a node (a stagger), so that
/// they do not all renew at once.
#[derive(Debug, Clone)]
pub struct LinkPolicy {
    pub backoff: Backoff,
    pub silence: Duration,
    pub max_age: Duration,
}

pub enum LinkEvent {
    /// (Re)connected: anything sent meanwhile was missed.
    Connected,
    /// Messages that arrived, in order, and the frames among them that were not messages.
    Messages(Vec<StreamMessage>, Vec<BadFrame>),
    /// Nothing arrived within the wait; the link is still alive.
    Idle,
    /// The connection is gone (or is being renewed): connect again after `retry_in`.
    Down { retry_in: Duration, reason: String, failure: bool },
}

pub struct StreamLink {
    ws: BinanceWs,
    streams: Vec<String>,
    policy: LinkPolicy,
    conn: Option<WsConnection>,
    /// Connection attempts or connections failed in a row.
    failures: u32,
    jitter: Jitter,
}

impl StreamLink {
    pub fn new(ws: BinanceWs, streams: Vec<String>, policy: LinkPolicy, seed: u64) -> StreamLink {
        StreamLink { ws, streams, policy, conn: None, failures: 0, jitter: Jitter::new(seed) }
    }

    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    fn down(&mut self, reason: String) -> LinkEvent {
        self.conn = None;
        self.failures += 1;
        let retry_in = self.policy.backoff.delay(self.failures, self.jitter.next_unit());
        tracing::warn!(streams = self.streams.len(), retry_ms = retry_in.as_millis() as u64, %reason, "WebSocket down.");
        LinkEvent::Down { retry_in, reason, failure: true }
    }

    pub async fn connect(&mut self) -> LinkEvent {
        match self.ws.connect(&self.streams).await {
            Ok(conn) => {
                self.conn = Some(conn);
                LinkEvent::Connected
            }
            Err(e) => self.down(e.to_string()),
        }
    }

    /// Waits up to `wait` for messages; takes up to `max` of those already there.
    pub async fn read(&mut self, wait: Duration, max: usize) -> LinkEvent {
        let Some(conn) = self.conn.as_mut() else {
            return self.down("not connected".into());
        };
        if conn.age() >= self.policy.max_age {
            self.conn = None;
            tracing::info!(streams = self.streams.len(), "Renewing the WebSocket connection before 24 h.");
            return LinkEvent::Down { retry_in: Duration::ZERO, reason: "renewal".into(), failure: false };
        }
        let first = match tokio::time::timeout(wait, conn.next()).await {
            Err(_) if conn.idle() >= self.policy.silence => return self.down("silent connection".into()),
            Err(_) => return LinkEvent::Idle,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return self.down(e.to_string()),
            Ok(None) => return self.down("closed by the server".into()),
        };
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            match frame {
                Frame::Message(m) => out.push(m),
                Frame::Bad(b) => bad.push(b),
            }
            if out.len() + bad.len() < max {
                if let Some(Some(Ok(frame))) = conn.next().now_or_never() {
                    next = Some(frame);
                }
            }
        }
        self.failures = 0;
        LinkEvent::Messages(out, bad)
    }
}
