//! Keeps one symbol's [`LocalBook`] in sync from its depth events, fetching REST snapshots when
//! the book needs one: at the start, and after a gap or a crossed book. A snapshot that does not
//! connect to the stream is fetched again, at most once a second, and given up after
//! [`MAX_SNAPSHOT_MISSES`] in a row.

use std::time::Duration;

use tokio::time::Instant;

use super::{BinanceRest, BookFault, BookStep, ExchangeError, LocalBook, OrderBook};
use crate::model::DepthUpdate;

/// The deepest snapshot Binance serves (weight 250).
pub const SNAPSHOT_LIMIT: u32 = 5000;
/// A snapshot that does not connect to the stream is fetched again at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(1);
/// Consecutive snapshots that do not connect before giving up.
pub const MAX_SNAPSHOT_MISSES: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{symbol}: {misses} snapshots in a row missed the stream, last: {fault}")]
    SnapshotsMissStream { symbol: String, misses: u32, fault: BookFault },
}

/// What feeding one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// The book is in sync after it.
    Live,
    /// Still waiting for a snapshot that connects.
    Syncing,
    /// The book broke and was rebuilt (or is being rebuilt) from a new snapshot.
    Resynced(BookFault),
}

#[derive(Debug)]
pub struct BookKeeper {
    symbol: String,
    book: LocalBook,
    misses: u32,
    last_fetch: Option<Instant>,
    /// Snapshots fetched so far.
    pub snapshots: u32,
    /// Times a synchronised book broke and was rebuilt.
    pub resyncs: u32,
}

impl BookKeeper {
    pub fn new(symbol: &str) -> BookKeeper {
        BookKeeper {
            symbol: symbol.to_owned(),
            book: LocalBook::new(symbol),
            misses: 0,
            last_fetch: None,
            snapshots: 0,
            resyncs: 0,
        }
    }

    pub fn book(&self) -> Option<&OrderBook> {
        self.book.book()
    }

    /// Feeds one depth event, fetching a snapshot over `rest` when the book needs one.
    pub async fn feed(&mut self, update: &DepthUpdate, rest: &BinanceRest) -> Result<Fed, KeeperError> {
        let mut outcome = Fed::Syncing;
        match self.book.on_event(update) {
            BookStep::Applied | BookStep::Stale => return Ok(Fed::Live),
            BookStep::NeedSnapshot => {}
            BookStep::Resync(fault) => {
                self.resyncs += 1;
                tracing::warn!(%fault, "Order book broke; rebuilding it from a new snapshot.");
                outcome = Fed::Resynced(fault);
            }
        }
        if self.misses > 0 && self.last_fetch.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return Ok(outcome);
        }
        let snapshot = rest.depth(&self.symbol, SNAPSHOT_LIMIT).await?;
        self.snapshots += 1;
        self.last_fetch = Some(Instant::now());
        match self.book.on_snapshot(&snapshot) {
            Ok(()) => {
                self.misses = 0;
                Ok(if outcome == Fed::Syncing { Fed::Live } else { outcome })
            }
            Err(fault) => {
                self.misses += 1;
                tracing::warn!(%fault, misses = self.misses, "Snapshot does not connect to the stream; fetching another.");
                if self.misses >= MAX_SNAPSHOT_MISSES {
                    return Err(KeeperError::SnapshotsMissStream {
                        symbol: self.symbol.clone(),
                        misses: self.misses,
                        fault,
                    });
                }
                Ok(outcome)
            }
        }
    }
}
