//! Order-book messages: a `@depth` diff event and a REST `/api/v3/depth` snapshot.
//!
//! `@depth@100ms`: `{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,
//! "u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[["2733.70000000","0.00000000"]]}`
//! `/api/v3/depth`: `{"lastUpdateId":35346513512,"bids":[["2683.80000000","3.02920000"]],"asks":[…]}`

use serde::{Deserialize, Serialize};

use super::decimal::{level_serde, PriceLevel};
use super::scan::Scan;
use super::ParseError;

/// A diff of the book between update ids `first_update_id ..= final_update_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthUpdate {
    pub symbol: String,
    /// Event time, epoch ms.
    pub event_time: i64,
    /// `U`
    pub first_update_id: i64,
    /// `u`
    pub final_update_id: i64,
    #[serde(with = "level_serde")]
    pub bids: Vec<PriceLevel>,
    #[serde(with = "level_serde")]
    pub asks: Vec<PriceLevel>,
}

/// A full book at `last_update_id` (REST snapshot, or a top-N cut of a local book).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookSnapshot {
    pub symbol: String,
    pub last_update_id: i64,
    #[serde(with = "level_serde")]
    pub bids: Vec<PriceLevel>,
    #[serde(with = "level_serde")]
    pub asks: Vec<PriceLevel>,
}

#[derive(Deserialize)]
struct WsDepth {
    #[serde(rename = "E")]
    event_time: i64,
    s: String,
    #[serde(rename = "U")]
    first: i64,
    u: i64,
    #[serde(with = "level_serde")]
    b: Vec<PriceLevel>,
    #[serde(with = "level_serde")]
    a: Vec<PriceLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestDepth {
    last_update_id: i64,
    #[serde(with = "level_serde")]
    bids: Vec<PriceLevel>,
    #[serde(with = "level_serde")]
    asks: Vec<PriceLevel>,
}

/// A `depthUpdate` event in the exact byte layout Binance sends (fixed key order, no
/// whitespace). Anything else — and any error — is left to serde, which gives the message.
fn read_binance_depth(payload: &[u8]) -> Option<DepthUpdate> {
    let mut s = Scan::new(payload);
    s.lit(b"{\"e\":\"depthUpdate\",\"E\":")?;
    let event_time = s.int()?;
    s.lit(b",\"s\":\"")?;
    let symbol = s.text()?.to_owned();
    s.lit(b",\"U\":")?;
    let first_update_id = s.int()?;
    s.lit(b",\"u\":")?;
    let final_update_id = s.int()?;
    let (bids, asks) = s.sides_to_end(b",\"b\":", b",\"a\":")?;
    Some(DepthUpdate { symbol, event_time, first_update_id, final_update_id, bids, asks })
}

impl DepthUpdate {
    /// Decodes a WebSocket `depthUpdate` event: Binance's own layout directly, anything else (or
    /// anything wrong) through serde.
    pub fn from_ws(payload: &[u8]) -> Result<DepthUpdate, ParseError> {
        if let Some(d) = read_binance_depth(payload) {
            return Ok(d);
        }
        let d: WsDepth = serde_json::from_slice(payload)?;
        Ok(DepthUpdate {
            symbol: d.s,
            event_time: d.event_time,
            first_update_id: d.first,
            final_update_id: d.u,
            bids: d.b,
            asks: d.a,
        })
    }
}

impl BookSnapshot {
    /// Decodes a `/api/v3/depth` response body.
    pub fn from_rest(symbol: &str, body: &[u8]) -> Result<BookSnapshot, ParseError> {
        let d: RestDepth = serde_json::from_slice(body)?;
        Ok(BookSnapshot { symbol: symbol.to_owned(), last_update_id: d.last_update_id, bids: d.bids, asks: d.asks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ws_depth_from_capture() {
        let raw = r#"{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"],["2679.00000000","28.21530000"]],"a":[["2733.70000000","0.00000000"]]}"#;
        let d = DepthUpdate::from_ws(raw.as_bytes()).unwrap();
        assert_eq!((d.first_update_id, d.final_update_id), (35_346_513_499, 35_346_513_505));
        assert_eq!(d.bids.len(), 2);
        assert_eq!(d.asks[0].1.to_string(), "0.00000000");
    }

    #[test]
    fn the_direct_reader_and_serde_agree_and_odd_layouts_still_decode() {
        let raw = r#"{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"],["2679.00000000","28.21530000"]],"a":[]}"#;
        let direct = read_binance_depth(raw.as_bytes()).expect("Binance's layout is read directly");
        let d: WsDepth = serde_json::from_str(raw).unwrap();
        assert_eq!(
            (direct.symbol.as_str(), direct.event_time, direct.first_update_id),
            (d.s.as_str(), d.event_time, d.first)
        );
        assert_eq!((direct.final_update_id, &direct.bids, &direct.asks), (d.u, &d.b, &d.a));
        let spaced = raw.replace(",\"s\"", ", \"s\"");
        assert!(read_binance_depth(spaced.as_bytes()).is_none(), "another layout is left to serde");
        assert_eq!(DepthUpdate::from_ws(spaced.as_bytes()).unwrap(), direct);
        let bad = raw.replace("3.02920000", "3.0x");
        assert!(DepthUpdate::from_ws(bad.as_bytes()).is_err(), "and serde reports what is wrong");
    }

    #[test]
    fn decodes_rest_snapshot() {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_depth.json");
        let s = BookSnapshot::from_rest("BTCUSDT", body).unwrap();
        assert_eq!(s.last_update_id, 14_527_958_487);
        assert_eq!((s.bids.len(), s.asks.len()), (10, 10));
        assert_eq!(s.bids[0].0.to_string(), "60650.00000000");
        assert!(s.bids[0].0 < s.asks[0].0, "best bid below best ask");
    }
}
