//! `streamforge book`: follows one symbol's `@depth@100ms` stream and keeps its local order book
//! (see [`crate::exchange::binance::BookKeeper`]) until the server closes the stream. Offline,
//! the replay server plays a recorded capture through the same WebSocket client.

use std::future::Future;

use crate::exchange::binance::{BinanceRest, BinanceWs, BookKeeper, ExchangeError};
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

/// When following a book ends (besides the server closing the stream).
pub struct Until<F> {
    /// After this many depth events.
    pub events: Option<u64>,
    /// When this resolves (e.g. Ctrl-C).
    pub stop: F,
}

/// Follows `symbol`'s book until the server closes the stream or `until` says so; `depth` cuts
/// the final book.
pub async fn follow_book(
    ws: &BinanceWs,
    rest: &BinanceRest,
    symbol: &str,
    depth: Option<usize>,
    until: Until<impl Future<Output = ()>>,
) -> Result<BookRun, AppError> {
    let stream = format!("{}@depth@100ms", symbol.to_ascii_lowercase());
    let mut conn = ws.connect(std::slice::from_ref(&stream)).await?;
    let mut keeper = BookKeeper::new(symbol);
    let mut events = 0u64;
    let stop = until.stop;
    tokio::pin!(stop);
    while until.events.is_none_or(|n| events < n) {
        let message = tokio::select! {
            m = conn.next() => m,
            _ = &mut stop => break,
        };
        let Some(message) = message else { break };
        let message = message?;
        let update = DepthUpdate::from_ws(message.data())
            .map_err(|source| ExchangeError::Decode { url: stream.clone(), source })?;
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
