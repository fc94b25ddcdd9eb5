//! A normalized trade: a raw trade (`@trade`, `/api/v3/trades`, `/api/v3/historicalTrades`) or an
//! aggregate trade (`@aggTrade`, `/api/v3/aggTrades`), with Binance's ids kept.
//!
//! `@trade`: `{"e":"trade","E":1723161254000,"s":"ETHUSDT","t":1528411466,"p":"2683.81000000",
//! "q":"0.00420000","T":1723161253999,"m":false,"M":true}`
//! `/api/v3/aggTrades` item: `{"a":13519807,"p":"0.00141342","q":"23.00000000","f":15373518,
//! "l":15373518,"T":1570752011620,"m":true,"M":true}`

use serde::{Deserialize, Serialize};

use super::decimal::{decimal_text, parse_decimal, Decimal};
use super::ParseError;

/// Which Binance id space `Trade::id` belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeKind {
    /// A single fill; `id` is the trade id.
    Trade,
    /// An aggregate of fills at one price; `id` is the aggregate trade id.
    AggTrade,
}

impl TradeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TradeKind::Trade => "trade",
            TradeKind::AggTrade => "agg_trade",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub symbol: String,
    pub kind: TradeKind,
    /// Trade id (`t`/`id`) or aggregate trade id (`a`).
    pub id: i64,
    #[serde(with = "decimal_text")]
    pub price: Decimal,
    #[serde(with = "decimal_text")]
    pub qty: Decimal,
    /// Trade time, epoch ms.
    pub time: i64,
    pub is_buyer_maker: bool,
    /// First and last underlying trade ids of an aggregate trade.
    #[serde(default)]
    pub first_trade_id: Option<i64>,
    #[serde(default)]
    pub last_trade_id: Option<i64>,
}

#[derive(Deserialize)]
struct WsTrade<'a> {
    s: &'a str,
    t: i64,
    p: &'a str,
    q: &'a str,
    #[serde(rename = "T")]
    time: i64,
    m: bool,
}

#[derive(Deserialize)]
struct RawAgg<'a> {
    #[serde(default)]
    s: Option<&'a str>,
    a: i64,
    p: &'a str,
    q: &'a str,
    f: i64,
    l: i64,
    #[serde(rename = "T")]
    time: i64,
    m: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestTrade<'a> {
    id: i64,
    price: &'a str,
    qty: &'a str,
    time: i64,
    is_buyer_maker: bool,
}

impl RawAgg<'_> {
    fn into_trade(self, symbol: &str) -> Result<Trade, ParseError> {
        Ok(Trade {
            symbol: self.s.unwrap_or(symbol).to_owned(),
            kind: TradeKind::AggTrade,
            id: self.a,
            price: parse_decimal("price", self.p)?,
            qty: parse_decimal("qty", self.q)?,
            time: self.time,
            is_buyer_maker: self.m,
            first_trade_id: Some(self.f),
            last_trade_id: Some(self.l),
        })
    }
}

impl Trade {
    /// Decodes a WebSocket `@trade` event.
    pub fn from_ws_trade(payload: &[u8]) -> Result<Trade, ParseError> {
        let t: WsTrade<'_> = serde_json::from_slice(payload)?;
        Ok(Trade {
            symbol: t.s.to_owned(),
            kind: TradeKind::Trade,
            id: t.t,
            price: parse_decimal("price", t.p)?,
            qty: parse_decimal("qty", t.q)?,
            time: t.time,
            is_buyer_maker: t.m,
            first_trade_id: None,
            last_trade_id: None,
        })
    }

    /// Decodes a WebSocket `@aggTrade` event.
    pub fn from_ws_agg_trade(payload: &[u8]) -> Result<Trade, ParseError> {
        let raw: RawAgg<'_> = serde_json::from_slice(payload)?;
        raw.into_trade("")
    }

    /// Decodes a `/api/v3/aggTrades` response body.
    pub fn from_rest_agg_trades(symbol: &str, body: &[u8]) -> Result<Vec<Trade>, ParseError> {
        let rows: Vec<RawAgg<'_>> = serde_json::from_slice(body)?;
        rows.into_iter().map(|r| r.into_trade(symbol)).collect()
    }

    /// Decodes a `/api/v3/trades` or `/api/v3/historicalTrades` response body.
    pub fn from_rest_trades(symbol: &str, body: &[u8]) -> Result<Vec<Trade>, ParseError> {
        let rows: Vec<RestTrade<'_>> = serde_json::from_slice(body)?;
        rows.into_iter()
            .map(|r| {
                Ok(Trade {
                    symbol: symbol.to_owned(),
                    kind: TradeKind::Trade,
                    id: r.id,
                    price: parse_decimal("price", r.price)?,
                    qty: parse_decimal("qty", r.qty)?,
                    time: r.time,
                    is_buyer_maker: r.is_buyer_maker,
                    first_trade_id: None,
                    last_trade_id: None,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ws_trade_from_capture() {
        // hftbacktest capture, spot ETHUSDT 2024-08-08.
        let raw = r#"{"e":"trade","E":1723161255312,"s":"ETHUSDT","t":1528411466,"p":"2683.81000000","q":"0.00420000","T":1723161255311,"m":false,"M":true}"#;
        let t = Trade::from_ws_trade(raw.as_bytes()).unwrap();
        assert_eq!((t.id, t.kind, t.is_buyer_maker), (1_528_411_466, TradeKind::Trade, false));
        assert_eq!(t.price.to_string(), "2683.81000000");
    }

    #[test]
    fn decodes_rest_agg_trades() {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_agg_trades.json");
        let t = Trade::from_rest_agg_trades("BTCUSDT", body).unwrap();
        assert_eq!(t.len(), 10);
        assert_eq!(t[0].symbol, "BTCUSDT");
        assert_eq!(
            (t[0].id, t[0].first_trade_id, t[0].last_trade_id),
            (966_492_862, Some(1_111_480_471), Some(1_111_480_471))
        );
        assert_eq!(t[0].price.to_string(), "60759.60000000");
        assert_eq!(t[0].kind, TradeKind::AggTrade);
        assert!(t.windows(2).all(|w| w[1].id == w[0].id + 1), "aggregate ids are contiguous");
    }

    #[test]
    fn decodes_rest_trades_and_historical_trades() {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_trades.json");
        let t = Trade::from_rest_trades("BTCUSDT", body).unwrap();
        assert_eq!((t[0].id, t[0].time, t[0].is_buyer_maker), (1_111_468_873, 1_634_942_949_263, true));
        assert_eq!(t[0].qty.to_string(), "0.02924000");
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_historical_trades.json");
        assert_eq!(Trade::from_rest_trades("BTCUSDT", body).unwrap().len(), 10);
    }
}
