//! `streamforge book`: follows one symbol's `@depth@100ms` stream and keeps its local order book
//! (see [`crate::exchange::binance::BookKeeper`]; its REST snapshot `--snapshot-limit` levels deep)
//! until the server closes the stream. Offline, the replay server plays a recorded capture through
//! the same WebSocket client.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::admin::metrics::Metrics;
use crate::config::Config;
use crate::exchange::binance::{
    BinanceRest, BinanceWs, BookKeeper, ExchangeError, Frame, SnapshotPlan, WeightLimiter, DEFAULT_SNAPSHOT_LIMIT,
    MAX_SNAPSHOT_LIMIT,
};
use crate::model::{BookSnapshot, DepthUpdate};

use super::args::{render, Common, LogArgs};
use super::{start_replay, AppError};

/// What `streamforge book` is asked for.
#[derive(Debug, Clone)]
pub struct BookOptions {
    pub config: Config,
    /// Upper-case symbol, e.g. `ETHUSDT`.
    pub symbol: String,
    /// Levels a side kept in the final book.
    pub depth: usize,
    /// Levels a side of the REST snapshot the book starts from.
    pub snapshot_limit: u32,
    /// Stop after this many depth events.
    pub events: Option<u64>,
    /// Replay this recorded folder on loopback instead of calling Binance.
    pub offline_data: Option<PathBuf>,
}

/// The book as the command prints it.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct FinalBook {
    pub book: BookSnapshot,
    #[serde(skip)]
    pub run: (u64, u32, u32),
}

impl fmt::Display for FinalBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (events, snapshots, resyncs) = self.run;
        write!(
            f,
            "{} at update {} ({events} events, {snapshots} snapshots, {resyncs} resyncs)",
            self.book.symbol, self.book.last_update_id
        )?;
        for ((bp, bq), (ap, aq)) in self.book.bids.iter().zip(&self.book.asks) {
            write!(f, "\n{bq:>18} {bp:>16} | {ap:<16} {aq:<18}")?;
        }
        Ok(())
    }
}

/// `streamforge book`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct BookArgs {
    #[command(flatten)]
    pub common: Common,
    /// Symbol, e.g. ETHUSDT.
    #[arg(long)]
    pub symbol: String,
    /// Levels a side to print.
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    /// Levels a side of the REST snapshot the book starts from, 1 to 5000 (weight 5 up to 100, 25
    /// up to 500, 50 up to 1000, 250 above); the book is exact only as deep as its snapshot was.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SNAPSHOT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SNAPSHOT_LIMIT)))]
    pub snapshot_limit: u32,
    /// Print the book as JSON: {"symbol", "last_update_id", "bids": [[price, qty], …], "asks": …}.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many depth events (default: when the stream ends, or on Ctrl-C/SIGTERM).
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
}

/// `streamforge book`: keeps the book until the stream ends, `--events` or `shutdown`; returns
/// the book to print.
pub async fn run(args: BookArgs, log: &LogArgs, shutdown: impl Future<Output = ()>) -> Result<String, AppError> {
    let config = args.common.config(log, |_| {})?;
    let opts = BookOptions {
        offline_data: args.common.offline_dir(&config),
        config,
        symbol: args.symbol.to_ascii_uppercase(),
        depth: args.depth,
        snapshot_limit: args.snapshot_limit,
        events: args.events,
    };
    Ok(render(&keep(opts, shutdown).await?, args.json))
}

/// Follows the book (offline over the replay server) until the stream ends, `events` have come
/// or `shutdown` resolves; the book must have synchronised by then.
pub async fn keep(opts: BookOptions, shutdown: impl Future<Output = ()>) -> Result<FinalBook, AppError> {
    let (replay, rest_url, ws_url) = match &opts.offline_data {
        Some(dir) => {
            let (server, _) = start_replay(dir, 0.0).await?;
            let urls = (server.rest_url(), server.ws_url());
            (Some(server), urls.0, urls.1)
        }
        None => (None, opts.config.binance.rest_url.clone(), opts.config.binance.ws_url.clone()),
    };
    // The command's process has one client: its budget is the configured share of the IP's.
    let budget = Arc::new(WeightLimiter::new(opts.config.binance.weight_share));
    let rest = BinanceRest::new(&rest_url, Arc::new(Metrics::new()), budget)?;
    let ws = BinanceWs::new(&ws_url)?;
    let until = Until { events: opts.events, stop: shutdown };
    let outcome = follow_book(&ws, &rest, (&opts.symbol, opts.snapshot_limit), Some(opts.depth), until).await;
    if let Some(server) = replay {
        server.stop().await;
    }
    let run = outcome?;
    let book = run.book.ok_or_else(|| {
        AppError::Usage(format!("{}: the stream ended before the book was synchronised", opts.symbol))
    })?;
    Ok(FinalBook { book, run: (run.events, run.snapshots, run.resyncs) })
}

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

/// Follows `symbol`'s book (its snapshot `snapshot_limit` levels deep) until the server closes
/// the stream or `until` says so; `depth` cuts the final book.
pub async fn follow_book(
    ws: &BinanceWs,
    rest: &BinanceRest,
    (symbol, snapshot_limit): (&str, u32),
    depth: Option<usize>,
    until: Until<impl Future<Output = ()>>,
) -> Result<BookRun, AppError> {
    let stream = format!("{}@depth@100ms", symbol.to_ascii_lowercase());
    let mut conn = ws.connect(std::slice::from_ref(&stream)).await?;
    let plan = SnapshotPlan::new([(symbol.to_owned(), snapshot_limit)]);
    let mut keeper = BookKeeper::new(rest.clone(), rest.metrics().clone(), &plan);
    let mut events = 0u64;
    let stop = until.stop;
    tokio::pin!(stop);
    while until.events.is_none_or(|n| events < n) {
        let message = tokio::select! {
            m = conn.next() => m,
            fetched = keeper.next_fetched() => {
                fetched?;
                continue;
            }
            _ = &mut stop => break,
        };
        let Some(frame) = message else { break };
        let message = match frame? {
            Frame::Message(m) => m,
            // `streamforge book` is a one-shot view of one stream: a bad frame is logged and skipped.
            Frame::Bad(bad) => {
                tracing::warn!(reason = bad.reason, error = %bad.error, "Frame skipped.");
                continue;
            }
        };
        let update = DepthUpdate::from_ws(message.data())
            .map_err(|source| ExchangeError::Decode { url: stream.clone(), source })?;
        events += 1;
        keeper.feed(&update);
    }
    keeper.settle().await?;
    Ok(BookRun {
        book: keeper.book(symbol).map(|b| b.top(depth)),
        events,
        snapshots: keeper.snapshots,
        resyncs: keeper.resyncs,
    })
}
