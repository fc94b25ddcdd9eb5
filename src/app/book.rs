//! `streamforge book`: follows one symbol's `@depth@100ms` stream and keeps its local order book
//! (see [`crate::exchange::binance::BookKeeper`]) until the server closes the stream. Offline,
//! the replay server plays a recorded capture through the same WebSocket client.

use crate::exchange::binance::{BinanceRest, BinanceWs, BookKeeper};
use crate::model::{BookSnapshot, DepthUpdate};

use super::AppError;

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
    let mut keeper = BookKeeper::new(symbol);
    let mut events = 0u64;
    while let Some(message) = conn.next().await {
        let message = message?;
        let update = DepthUpdate::from_ws(message.data.get().as_bytes())
            .map_err(|e| AppError::Usage(format!("{stream}: not a depth event: {e}")))?;
        events += 1;
        keeper.feed(update, rest).await?;
    }
    Ok(BookRun {
        book: keeper.book().map(|b| b.top(depth)),
        events,
        snapshots: keeper.snapshots,
        resyncs: keeper.resyncs,
    })
}
