//! What every WebSocket loader is given: its symbols (one connection's worth), where to publish,
//! the exchange clients and the link policy.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::metrics::Metrics;
use crate::bus::Bus;
use crate::exchange::binance::{BinanceRest, BinanceWs, LinkPolicy};
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
    pub heartbeat: Heartbeat,
    pub link: LinkPolicy,
}
