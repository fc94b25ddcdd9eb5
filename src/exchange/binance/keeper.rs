//! Keeps the [`LocalBook`]s of a connection's symbols in sync from their depth events. A book that
//! needs a snapshot — at the start, after a gap or a crossed book — asks the [`SnapshotFetcher`] and
//! goes on buffering while it is fetched, so the stream keeps being read. A snapshot that does not
//! connect to the stream is fetched again, and given up after [`MAX_SNAPSHOT_MISSES`] in a row;
//! a failed fetch that may heal is retried. Once every book is in sync after a (re)start, the time
//! it took and the weight spent are reported (`streamforge_book_sync_seconds`, a log line).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::snapshots::{Fetched, SnapshotFetcher, SnapshotPlan};
use super::{BinanceRest, BookFault, BookStep, ExchangeError, LocalBook, OrderBook};
use crate::admin::metrics::Metrics;
use crate::model::DepthUpdate;

/// Consecutive snapshots that do not connect before giving up.
pub const MAX_SNAPSHOT_MISSES: u32 = 10;
/// How long the end of a stream waits for the snapshots under way.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

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
    /// Buffered while the book waits for a snapshot that connects.
    Syncing,
    /// The book broke; it is rebuilt from a new snapshot.
    Resynced(BookFault),
}

#[derive(Debug)]
struct Kept {
    book: LocalBook,
    misses: u32,
}

pub struct BookKeeper {
    books: HashMap<String, Kept>,
    fetcher: SnapshotFetcher,
    metrics: Arc<Metrics>,
    /// Since when (and from what snapshot weight spent) a book has been out of sync, until all are.
    syncing_since: Option<(Instant, u64)>,
    /// Snapshots applied so far.
    pub snapshots: u32,
    /// Times a synchronised book broke and was rebuilt.
    pub resyncs: u32,
}

impl BookKeeper {
    /// Books for the plan's symbols, their snapshots fetched over `rest` as the plan says.
    pub fn new(rest: BinanceRest, metrics: Arc<Metrics>, plan: &SnapshotPlan) -> BookKeeper {
        let books = plan.symbols().map(|s| (s.to_owned(), Kept { book: LocalBook::new(s), misses: 0 })).collect();
        let fetcher = SnapshotFetcher::new(rest, metrics.clone(), plan);
        BookKeeper { books, fetcher, metrics, syncing_since: Some((Instant::now(), 0)), snapshots: 0, resyncs: 0 }
    }

    /// Starts every book over (after a reconnect: events were missed); fetches under way are dropped.
    pub fn restart(&mut self) {
        for (symbol, kept) in &mut self.books {
            *kept = Kept { book: LocalBook::new(symbol), misses: 0 };
        }
        self.fetcher.reset();
        self.syncing_since = Some((Instant::now(), self.fetcher.weight()));
    }

    pub fn book(&self, symbol: &str) -> Option<&OrderBook> {
        self.books.get(symbol)?.book.book()
    }

    /// The books that are in sync.
    pub fn books(&self) -> impl Iterator<Item = &OrderBook> {
        self.books.values().filter_map(|k| k.book.book())
    }

    /// Feeds one depth event; `None` when its symbol is not kept here.
    pub fn feed(&mut self, update: &DepthUpdate) -> Option<Fed> {
        let kept = self.books.get_mut(&update.symbol)?;
        let fed = match kept.book.on_event(update) {
            BookStep::Applied | BookStep::Stale => return Some(Fed::Live),
            BookStep::NeedSnapshot => Fed::Syncing,
            BookStep::Resync(fault) => {
                self.resyncs += 1;
                tracing::warn!(%fault, "Order book broke; rebuilding it from a new snapshot.");
                self.syncing_since.get_or_insert((Instant::now(), self.fetcher.weight()));
                Fed::Resynced(fault)
            }
        };
        self.fetcher.request(&update.symbol);
        Some(fed)
    }

    /// Applies every snapshot fetched so far, without waiting.
    pub fn take_fetched(&mut self) -> Result<(), KeeperError> {
        while let Some(fetched) = self.fetcher.try_next() {
            self.apply(fetched)?;
        }
        Ok(())
    }

    /// Waits for the next fetch to end and applies it; never resolves while none is under way.
    /// Cancel-safe.
    pub async fn next_fetched(&mut self) -> Result<(), KeeperError> {
        let fetched = self.fetcher.next().await;
        self.apply(fetched)
    }

    /// Applies the fetches asked for or under way as they end, for at most [`SETTLE_WAIT`] (when
    /// the stream has ended: the books it leaves are then as complete as they can be).
    pub async fn settle(&mut self) -> Result<(), KeeperError> {
        let deadline = Instant::now() + SETTLE_WAIT;
        while self.fetcher.busy() {
            match tokio::time::timeout_at(deadline, self.next_fetched()).await {
                Ok(applied) => applied?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn apply(&mut self, Fetched { symbol, result }: Fetched) -> Result<(), KeeperError> {
        let Some(kept) = self.books.get_mut(&symbol) else { return Ok(()) };
        let snapshot = match result {
            Ok(snapshot) => snapshot,
            Err(error) if error.is_terminal() => return Err(error.into()),
            Err(error) => {
                self.metrics.errors.with_label_values(&["loader", error.metric_label()]).inc();
                tracing::warn!(%symbol, %error, "Depth snapshot failed; fetching another.");
                self.fetcher.request(&symbol);
                return Ok(());
            }
        };
        self.snapshots += 1;
        match kept.book.on_snapshot(&snapshot) {
            Ok(()) => kept.misses = 0,
            Err(fault) => {
                kept.misses += 1;
                tracing::warn!(%fault, misses = kept.misses, "Snapshot does not connect to the stream; fetching another.");
                if kept.misses >= MAX_SNAPSHOT_MISSES {
                    return Err(KeeperError::SnapshotsMissStream { symbol, misses: kept.misses, fault });
                }
                self.fetcher.request(&symbol);
            }
        }
        self.report_synced();
        Ok(())
    }

    /// Once every book is in sync after a (re)start or a resync: the time it took and the weight
    /// its snapshots cost.
    fn report_synced(&mut self) {
        let Some((since, weight_before)) = self.syncing_since else { return };
        if self.books.values().any(|k| k.book.book().is_none()) {
            return;
        }
        self.syncing_since = None;
        let seconds = since.elapsed().as_secs_f64();
        self.metrics.book_sync_seconds.observe(seconds);
        let (books, weight) = (self.books.len(), self.fetcher.weight() - weight_before);
        tracing::info!(books, seconds, weight, "Every order book is in sync.");
    }
}
