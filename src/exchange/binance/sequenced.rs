//! Streams whose records carry a per-symbol sequence a REST endpoint can resume from: aggregate
//! trades (`@aggTrade`, resumed with `aggTrades?fromId=`), trades (`@trade`, resumed with
//! `historicalTrades?fromId=`) and closed klines (`@kline_<i>`, resumed with `klines?startTime=`).
//! After a reconnect the loader asks for what followed the last record it published, so the
//! sequence has no hole.

use async_trait::async_trait;

use super::{BinanceRest, ExchangeError, StreamMessage};
use crate::model::{Candle, DataRecord, Interval, ParseError, Trade};

/// The kind a `[[streams]]` entry names: `aggTrade`, `trade` or `kline_<interval>`.
pub fn sequenced_kind(name: &str) -> Option<std::sync::Arc<dyn SequencedKind>> {
    match name {
        "aggTrade" => Some(std::sync::Arc::new(TradeStream::Aggregated)),
        "trade" => Some(std::sync::Arc::new(TradeStream::Every)),
        _ => name.strip_prefix("kline_")?.parse().ok().map(|i| std::sync::Arc::new(Klines(i)) as _),
    }
}

/// Rows per REST backfill request (Binance's maximum for all three endpoints).
const PAGE: u32 = 1000;

/// One kind of sequenced stream.
#[async_trait]
pub trait SequencedKind: Send + Sync + 'static {
    /// The stream of `symbol`, e.g. `btcusdt@aggTrade`.
    fn stream(&self, symbol: &str) -> String;

    /// Metric label, e.g. `aggTrade`.
    fn label(&self) -> &'static str;

    /// `(symbol, sequence, record)`; `None` for a message that is not a record yet (a kline that
    /// has not closed).
    fn decode(&self, msg: &StreamMessage) -> Result<Option<(String, i64, DataRecord)>, ParseError>;

    /// The records of `symbol` after sequence `last`, one page, and whether more may follow.
    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
    ) -> Result<(Vec<(i64, DataRecord)>, bool), ExchangeError>;
}

/// Aggregate trades (`@aggTrade`, resumed with `aggTrades`) or every trade (`@trade`, resumed
/// with `historicalTrades`); the sequence is the (aggregate) trade id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStream {
    Aggregated,
    Every,
}

#[async_trait]
impl SequencedKind for TradeStream {
    fn stream(&self, symbol: &str) -> String {
        format!("{}@{}", symbol.to_ascii_lowercase(), self.label())
    }

    fn label(&self) -> &'static str {
        match self {
            TradeStream::Aggregated => "aggTrade",
            TradeStream::Every => "trade",
        }
    }

    fn decode(&self, msg: &StreamMessage) -> Result<Option<(String, i64, DataRecord)>, ParseError> {
        let data = msg.data.get().as_bytes();
        let t = match self {
            TradeStream::Aggregated => Trade::from_ws_agg_trade(data)?,
            TradeStream::Every => Trade::from_ws_trade(data)?,
        };
        Ok(Some((t.symbol.clone(), t.id, DataRecord::Trade(t))))
    }

    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
    ) -> Result<(Vec<(i64, DataRecord)>, bool), ExchangeError> {
        let page = match self {
            TradeStream::Aggregated => rest.agg_trades(symbol, last + 1, PAGE).await?,
            TradeStream::Every => rest.historical_trades(symbol, last + 1, PAGE).await?,
        };
        let more = page.len() as u32 >= PAGE;
        Ok((page.into_iter().map(|t| (t.id, DataRecord::Trade(t))).collect(), more))
    }
}

/// Closed klines of one interval; the sequence is the open time.
pub struct Klines(pub Interval);

#[async_trait]
impl SequencedKind for Klines {
    fn stream(&self, symbol: &str) -> String {
        format!("{}@kline_{}", symbol.to_ascii_lowercase(), self.0)
    }

    fn label(&self) -> &'static str {
        "kline"
    }

    fn decode(&self, msg: &StreamMessage) -> Result<Option<(String, i64, DataRecord)>, ParseError> {
        let c = Candle::from_ws_kline(msg.data.get().as_bytes())?;
        Ok(c.closed.then(|| (c.symbol.clone(), c.open_time, DataRecord::Candle(c))))
    }

    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
    ) -> Result<(Vec<(i64, DataRecord)>, bool), ExchangeError> {
        let page = rest.klines(symbol, self.0, last + 1, crate::model::now_ms(), PAGE).await?;
        let more = page.len() as u32 >= PAGE;
        // Only closed candles: the one still forming comes on the stream when it closes.
        let closed = page.into_iter().filter(|c| c.closed).map(|c| (c.open_time, DataRecord::Candle(c))).collect();
        Ok((closed, more))
    }
}
