//! What every WebSocket loader is given: its symbols (one connection's worth), where to publish,
//! the exchange clients and the link policy.

use std::sync::Arc;
use std::time::Duration;

use super::DeadLetters;
use crate::admin::metrics::Metrics;
use crate::bus::{Bus, BusError};
use crate::exchange::binance::{BadFrame, BinanceRest, BinanceWs, LinkPolicy, StreamMessage};
use crate::supervision::Heartbeat;

/// Longest one read waits, so a loader beats its heartbeat and handles stop requests.
pub const READ_WAIT: Duration = Duration::from_secs(1);
/// Messages taken per read when more are already waiting.
pub const MAX_BATCH: usize = 1000;

pub struct StreamArgs {
    /// Upper-case symbols, at most 1,024 (one connection).
    pub symbols: Vec<String>,
    /// Stable topic the records go to, keyed by symbol.
    pub topic: String,
    pub ws: BinanceWs,
    /// For backfills and snapshots, within the node's weight budget.
    pub rest: BinanceRest,
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    /// Where frames that are not messages, and messages that are not records, go.
    pub dead_letters: DeadLetters,
    pub heartbeat: Heartbeat,
    pub link: LinkPolicy,
}

/// A loader's symbols counted in `streamforge_ws_symbols{stream}` for as long as it lives (the
/// count goes down when the loader's state is dropped, however it ended).
pub struct Subscribed {
    metrics: Arc<Metrics>,
    stream: &'static str,
    symbols: i64,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.metrics.ws_symbols.with_label_values(&[self.stream]).sub(self.symbols);
    }
}

/// The `consumer` a WebSocket loader's dead letters name.
const LOADER: &str = "loader-ws";

impl StreamArgs {
    /// Counts this loader's symbols under `stream` (a `STREAMS` label) until the guard is dropped.
    pub fn subscribed(&self, stream: &'static str) -> Subscribed {
        let symbols = self.symbols.len() as i64;
        self.metrics.ws_symbols.with_label_values(&[stream]).add(symbols);
        Subscribed { metrics: self.metrics.clone(), stream, symbols }
    }

    /// Counts and dead-letters frames that were not messages (`streamforge_ws_bad_frames_total`);
    /// the stream goes on without them.
    pub async fn skip_bad_frames(&self, frames: Vec<BadFrame>) -> Result<(), BusError> {
        for f in frames {
            self.metrics.ws_bad_frames.with_label_values(&[f.reason]).inc();
            self.dead_letters.send_text(LOADER, &self.topic, f.reason, &f.error, f.text).await?;
        }
        Ok(())
    }

    /// Skips a message whose data is not a record of its stream as a bad frame of reason
    /// `undecodable`, its raw data kept.
    pub async fn skip_undecodable(
        &self,
        m: &StreamMessage,
        error: &(dyn std::fmt::Display + Sync),
    ) -> Result<(), BusError> {
        let frame = BadFrame {
            reason: "undecodable",
            error: format!("{}: {error}", m.stream),
            text: String::from_utf8_lossy(m.data()).into_owned(),
        };
        self.skip_bad_frames(vec![frame]).await
    }
}
