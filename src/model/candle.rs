//! A normalized OHLCV candle (kline), decoded from Binance REST `/api/v3/klines` rows and
//! WebSocket `<symbol>@kline_<interval>` events.
//!
//! REST row (<https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints>):
//! `[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,
//!   "2434.19055334",308,"1756.87402397","28.46694368","0"]`

use serde::{Deserialize, Serialize};

use super::decimal::{decimal_text, parse_decimal, Decimal};
use super::{Interval, ParseError};

/// One candle. Fields Binance does not always provide through every source (freqtrade recordings
/// carry no quote volume or trade count) are optional rather than invented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub symbol: String,
    pub interval: Interval,
    /// Candle start, epoch ms (Binance kline open time).
    pub open_time: i64,
    /// Candle end, epoch ms, inclusive (`open_time + interval - 1`).
    pub close_time: i64,
    #[serde(with = "decimal_text")]
    pub open: Decimal,
    #[serde(with = "decimal_text")]
    pub high: Decimal,
    #[serde(with = "decimal_text")]
    pub low: Decimal,
    #[serde(with = "decimal_text")]
    pub close: Decimal,
    /// Base-asset volume.
    #[serde(with = "decimal_text")]
    pub volume: Decimal,
    #[serde(default, with = "decimal_text::option")]
    pub quote_volume: Option<Decimal>,
    #[serde(default)]
    pub trades: Option<u64>,
    #[serde(default, with = "decimal_text::option")]
    pub taker_buy_base: Option<Decimal>,
    #[serde(default, with = "decimal_text::option")]
    pub taker_buy_quote: Option<Decimal>,
    /// False only for a candle still forming (a WS kline with `x: false`, or a REST row whose
    /// close time is in the future).
    pub closed: bool,
}

/// The REST row layout, borrowed straight from the response body.
#[derive(Deserialize)]
struct RestRow<'a>(
    i64,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i64,
    Option<&'a str>,
    Option<u64>,
    Option<&'a str>,
    Option<&'a str>,
    serde::de::IgnoredAny,
);

#[derive(Deserialize)]
struct WsEvent<'a> {
    #[serde(borrow)]
    k: WsKline<'a>,
}

#[derive(Deserialize)]
struct WsKline<'a> {
    t: i64,
    #[serde(rename = "T")]
    close_time: i64,
    s: &'a str,
    i: &'a str,
    o: &'a str,
    c: &'a str,
    h: &'a str,
    l: &'a str,
    v: &'a str,
    // Binance always sends these; a replay of a recording that lacks them sends null.
    n: Option<u64>,
    x: bool,
    q: Option<&'a str>,
    #[serde(rename = "V")]
    taker_base: Option<&'a str>,
    #[serde(rename = "Q")]
    taker_quote: Option<&'a str>,
}

fn opt_decimal(field: &'static str, v: Option<&str>) -> Result<Option<Decimal>, ParseError> {
    v.map(|s| parse_decimal(field, s)).transpose()
}

impl Candle {
    /// Decodes a whole `/api/v3/klines` response body. `now_ms` decides whether the last row is
    /// still forming.
    pub fn from_rest_klines(
        symbol: &str,
        interval: Interval,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<Candle>, ParseError> {
        let rows: Vec<RestRow<'_>> = serde_json::from_slice(body)?;
        rows.into_iter()
            .map(|r| {
                Ok(Candle {
                    symbol: symbol.to_owned(),
                    interval,
                    open_time: r.0,
                    close_time: r.6,
                    open: parse_decimal("open", r.1)?,
                    high: parse_decimal("high", r.2)?,
                    low: parse_decimal("low", r.3)?,
                    close: parse_decimal("close", r.4)?,
                    volume: parse_decimal("volume", r.5)?,
                    quote_volume: opt_decimal("quote_volume", r.7)?,
                    trades: r.8,
                    taker_buy_base: opt_decimal("taker_buy_base", r.9)?,
                    taker_buy_quote: opt_decimal("taker_buy_quote", r.10)?,
                    closed: r.6 < now_ms,
                })
            })
            .collect()
    }

    /// Decodes a WebSocket kline event (the `data` of a combined-stream message).
    pub fn from_ws_kline(payload: &[u8]) -> Result<Candle, ParseError> {
        let ev: WsEvent<'_> = serde_json::from_slice(payload)?;
        let k = ev.k;
        Ok(Candle {
            symbol: k.s.to_owned(),
            interval: k.i.parse()?,
            open_time: k.t,
            close_time: k.close_time,
            open: parse_decimal("open", k.o)?,
            high: parse_decimal("high", k.h)?,
            low: parse_decimal("low", k.l)?,
            close: parse_decimal("close", k.c)?,
            volume: parse_decimal("volume", k.v)?,
            quote_volume: opt_decimal("quote_volume", k.q)?,
            trades: k.n,
            taker_buy_base: opt_decimal("taker_buy_base", k.taker_base)?,
            taker_buy_quote: opt_decimal("taker_buy_quote", k.taker_quote)?,
            closed: k.x,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real body: a recorded `GET /api/v3/klines?symbol=BTCUSDT&interval=1m` (2021-10-22).
    const REST: &[u8] = include_bytes!("../../tests/fixtures/rest/http_spot_market_klines.json");

    #[test]
    fn decodes_rest_rows_exactly() {
        let m: Interval = "1m".parse().unwrap();
        let c = Candle::from_rest_klines("BTCUSDT", m, REST, 1_700_000_000_000).unwrap();
        assert_eq!(c.len(), 10);
        assert_eq!(c[0].open_time, 1_634_943_780_000);
        assert_eq!(c[0].close_time, 1_634_943_839_999);
        assert_eq!(c[0].open.to_string(), "60685.22000000");
        assert_eq!(c[0].trades, Some(617));
        assert_eq!(c[0].quote_volume.unwrap().to_string(), "1313200.01340410");
        assert!(c.windows(2).all(|w| w[1].open_time - w[0].open_time == 60_000));
        assert!(c.iter().all(|k| k.closed));
        let forming = Candle::from_rest_klines("BTCUSDT", m, REST, c[9].close_time).unwrap();
        assert!(forming[8].closed && !forming[9].closed);
    }

    #[test]
    fn decodes_ws_kline_event() {
        // Layout of a `@kline_1m` event as recorded by cryptofeed (NKNUSDT, 2021-10-12).
        let ws = r#"{"e":"kline","E":1633998512271,"s":"NKNUSDT","k":{"t":1633998480000,"T":1633998539999,"s":"NKNUSDT","i":"1m","f":38069512,"L":38069520,"o":"0.44030000","c":"0.44040000","h":"0.44040000","l":"0.44020000","v":"3049.70000000","n":9,"x":false,"q":"1342.87880000","V":"1508.30000000","Q":"664.23400000","B":"0"}}"#;
        let c = Candle::from_ws_kline(ws.as_bytes()).unwrap();
        assert_eq!(c.symbol, "NKNUSDT");
        assert!(!c.closed);
        assert_eq!(c.volume.to_string(), "3049.70000000");
    }

    #[test]
    fn rejects_bad_decimal() {
        let bad = r#"[[1,"x","1","1","1","1",2,"1",1,"1","1","0"]]"#;
        let err = Candle::from_rest_klines("A", "1m".parse().unwrap(), bad.as_bytes(), 0).unwrap_err();
        assert!(err.to_string().contains("open"), "{err}");
    }
}
