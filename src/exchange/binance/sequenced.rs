//! Records that carry a per-symbol sequence a REST endpoint pages by: aggregate trades
//! (`@aggTrade`, `aggTrades?fromId=`), trades (`@trade`, `historicalTrades?fromId=`) and closed
//! klines (`@kline_<i>`, `klines?startTime=`). The WebSocket loaders ask for what followed the last
//! record they published after a reconnect, so the sequence has no hole; the REST backfill loader
//! pages through a time range the same way.

use std::sync::Arc;

use async_trait::async_trait;

use super::archive::Dataset;
use super::{BinanceRest, ExchangeError, StreamMessage};
use crate::model::{format_ms, now_ms, Candle, DataRecord, Interval, ParseError, Trade};

/// The kind a `[[streams]]` entry names: `aggTrade`, `trade` or `kline_<interval>`.
pub fn sequenced_kind(name: &str) -> Option<Arc<dyn SequencedKind>> {
    match name {
        "aggTrade" => Some(Arc::new(TradeStream::Aggregated)),
        "trade" => Some(Arc::new(TradeStream::Every)),
        _ => name.strip_prefix("kline_")?.parse().ok().map(|i| Arc::new(Klines(i)) as _),
    }
}

/// The kind a REST backfill job names, as the seeds' `TYPE` does: `api_candles_<interval>`,
/// `api_agg_trades` or `api_trades`.
pub fn backfill_kind(job_type: &str) -> Option<Arc<dyn SequencedKind>> {
    match job_type {
        "api_agg_trades" => Some(Arc::new(TradeStream::Aggregated)),
        "api_trades" => Some(Arc::new(TradeStream::Every)),
        _ => job_type.strip_prefix("api_candles_")?.parse().ok().map(|i| Arc::new(Klines(i)) as _),
    }
}

/// Rows per REST request (Binance's maximum for all three endpoints).
pub const PAGE: u32 = 1000;

/// A record with its place in the symbol's sequence and its time (open time of a candle, trade
/// time of a trade), epoch ms.
#[derive(Debug, Clone)]
pub struct Sequenced {
    pub seq: i64,
    pub time: i64,
    pub record: DataRecord,
}

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

    /// The seeds' type of a REST backfill of this kind: `api_candles_1m`, `api_agg_trades`,
    /// `api_trades`.
    fn job_type(&self) -> String;

    /// What the records are called in messages: `candles`, `aggregate trades`, `trades`.
    fn noun(&self) -> &'static str;

    /// The distance between consecutive sequences when nothing is missing: the interval of
    /// klines, 1 for trade ids; `None` for calendar months.
    fn step(&self) -> Option<i64>;

    /// The files of Binance's archive this kind's records are in; `None` where the archive has
    /// none to page by day (klines longer than a day).
    fn archive_dataset(&self) -> Option<Dataset> {
        None
    }

    /// A sequence as people read it: a time for klines, the id for trades.
    fn show(&self, seq: i64) -> String {
        seq.to_string()
    }

    /// The sequence just before the first record of `symbol` at or after `start_ms` and before
    /// `end_ms`, to page from; `None` when the exchange has no record in that range.
    async fn before(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<i64>, ExchangeError>;

    /// The records of `symbol` after sequence `last`, one page of at most `limit`, and whether
    /// more may follow.
    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
        limit: u32,
    ) -> Result<(Vec<Sequenced>, bool), ExchangeError>;
}

impl std::fmt::Debug for dyn SequencedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.job_type())
    }
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
        let data = msg.data();
        let t = match self {
            TradeStream::Aggregated => Trade::from_ws_agg_trade(data)?,
            TradeStream::Every => Trade::from_ws_trade(data)?,
        };
        Ok(Some((t.symbol.clone(), t.id, DataRecord::Trade(t))))
    }

    fn job_type(&self) -> String {
        match self {
            TradeStream::Aggregated => "api_agg_trades".into(),
            TradeStream::Every => "api_trades".into(),
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            TradeStream::Aggregated => "aggregate trades",
            TradeStream::Every => "trades",
        }
    }

    fn step(&self) -> Option<i64> {
        Some(1)
    }

    fn archive_dataset(&self) -> Option<Dataset> {
        Some(match self {
            TradeStream::Aggregated => Dataset::AggTrades,
            TradeStream::Every => Dataset::Trades,
        })
    }

    /// Trades have no time index but aggregate trades do: the first aggregate trade in the range
    /// gives its own id and that of its first trade.
    async fn before(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<i64>, ExchangeError> {
        let first = rest.agg_trades_between(symbol, start_ms, end_ms - 1, 1).await?.into_iter().next();
        Ok(first.and_then(|t| match self {
            TradeStream::Aggregated => Some(t.id - 1),
            TradeStream::Every => t.first_trade_id.map(|f| f - 1),
        }))
    }

    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
        limit: u32,
    ) -> Result<(Vec<Sequenced>, bool), ExchangeError> {
        let page = match self {
            TradeStream::Aggregated => rest.agg_trades(symbol, last + 1, limit).await?,
            TradeStream::Every => rest.historical_trades(symbol, last + 1, limit).await?,
        };
        let more = page.len() as u32 >= limit;
        Ok((
            page.into_iter().map(|t| Sequenced { seq: t.id, time: t.time, record: DataRecord::Trade(t) }).collect(),
            more,
        ))
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
        let c = Candle::from_ws_kline(msg.data())?;
        Ok(c.closed.then(|| (c.symbol.clone(), c.open_time, DataRecord::Candle(c))))
    }

    fn job_type(&self) -> String {
        format!("api_candles_{}", self.0)
    }

    fn noun(&self) -> &'static str {
        "candles"
    }

    fn step(&self) -> Option<i64> {
        self.0.is_fixed().then(|| self.0.millis())
    }

    fn show(&self, seq: i64) -> String {
        format_ms(seq)
    }

    /// Klines of a fixed interval that divides a day: every archive file holds whole candles.
    fn archive_dataset(&self) -> Option<Dataset> {
        let (ms, day) = (self.0.millis(), 86_400_000);
        (self.0.is_fixed() && ms <= day && day % ms == 0).then_some(Dataset::Klines(self.0))
    }

    async fn before(
        &self,
        _rest: &BinanceRest,
        _symbol: &str,
        start_ms: i64,
        _end_ms: i64,
    ) -> Result<Option<i64>, ExchangeError> {
        Ok(Some(start_ms - 1))
    }

    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
        limit: u32,
    ) -> Result<(Vec<Sequenced>, bool), ExchangeError> {
        let page = rest.klines(symbol, self.0, last + 1, now_ms(), limit).await?;
        let more = page.len() as u32 >= limit;
        // Only closed candles: the one still forming comes on the stream when it closes.
        let closed = page
            .into_iter()
            .filter(|c| c.closed)
            .map(|c| Sequenced { seq: c.open_time, time: c.open_time, record: DataRecord::Candle(c) })
            .collect();
        Ok((closed, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_kind_is_counted_under_a_label_exported_from_start_up() {
        let kinds: [&dyn SequencedKind; 3] =
            [&TradeStream::Aggregated, &TradeStream::Every, &Klines("1m".parse().unwrap())];
        let labels: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
        assert_eq!(labels, crate::admin::metrics::BACKFILLED_STREAMS);
        assert!(labels.iter().all(|l| crate::admin::metrics::STREAMS.contains(l)));
    }
}
