//! `streamforge book`: follows one symbol's `@depth@100ms` stream and keeps its local order book
//! (see [`crate::exchange::binance::book`]), fetching REST snapshots when the book needs one.
//! Offline, the replay server plays a recorded capture through the same WebSocket client.

use std::time::{Duration, Instant};

use crate::exchange::binance::{BinanceRest, BinanceWs, BookStep, LocalBook};
use crate::model::{BookSnapshot, DepthUpdate};

use super::AppError;

/// The deepest snapshot Binance serves (weight 250).
pub const SNAPSHOT_LIMIT: u32 = 5000;
/// A snapshot that does not connect to the stream is fetched again at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(1);
/// Consecutive snapshots that do not connect before giving up.
const MAX_SNAPSHOT_MISSES: u32 = 10;

/// How following a book went.
#[derive(Debug)]
pub struct BookRun {
    /// The book when the stream ended (`None` if it never synchronised).
    pub book: Option<BookSnapshot>,
    pub events: u64,
    pub snapshots: u32,
    /// Times a synchronised book broke (gap or crossed) and was rebuilt.
    pub resyncs: u32,
}

/// Follows `symbol`'s book until the server closes the stream; `depth` cuts the final book.
pub async fn follow_book(
    ws: &BinanceWs,
    rest: &BinanceRest,
    symbol: &str,
    depth: Option<usize>,
) -> Result<BookRun, AppError> {
    let stream = format!("{}@depth@100ms", symbol.to_ascii_lowercase());
    let mut conn = ws.connect(std::slice::from_ref(&stream)).await?;
    let mut book = LocalBook::new(symbol);
    let mut run = BookRun { book: None, events: 0, snapshots: 0, resyncs: 0 };
    let (mut misses, mut last_fetch) = (0u32, None::<Instant>);
    while let Some(message) = conn.next().await {
        let message = message?;
        let update = DepthUpdate::from_ws(message.data.get().as_bytes())
            .map_err(|e| AppError::Usage(format!("{stream}: not a depth event: {e}")))?;
        run.events += 1;
        match book.on_event(update) {
            BookStep::Applied | BookStep::Stale => continue,
            BookStep::NeedSnapshot => {}
            BookStep::Resync(fault) => {
                run.resyncs += 1;
                tracing::warn!(%fault, "Order book broke; rebuilding it from a new snapshot.");
            }
        }
        if last_fetch.is_some_and(|t| t.elapsed() < REFETCH_EVERY) && misses > 0 {
            continue;
        }
        let snapshot = rest.depth(symbol, SNAPSHOT_LIMIT).await?;
        (run.snapshots, last_fetch) = (run.snapshots + 1, Some(Instant::now()));
        match book.on_snapshot(&snapshot) {
            Ok(()) => misses = 0,
            Err(fault) => {
                misses += 1;
                tracing::warn!(%fault, misses, "Snapshot does not connect to the stream; fetching another.");
                if misses >= MAX_SNAPSHOT_MISSES {
                    return Err(AppError::Usage(format!(
                        "{symbol}: {misses} snapshots in a row missed the stream: {fault}"
                    )));
                }
            }
        }
    }
    run.book = book.book().map(|b| b.top(depth));
    Ok(run)
}
