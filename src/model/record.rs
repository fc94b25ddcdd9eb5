//! The data messages that travel on data topics, and their natural keys.

use serde::{Deserialize, Serialize};

use super::bus_json;
use super::{BookSnapshot, Candle, DepthUpdate, Trade};

/// One normalized market record. On the bus it is JSON tagged by `record`
/// (`{"record":"candle","symbol":"BTCUSDT",…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum DataRecord {
    Candle(Candle),
    Trade(Trade),
    DepthUpdate(DepthUpdate),
    BookSnapshot(BookSnapshot),
}

/// The table family a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Candle,
    Trade,
    DepthUpdate,
    BookSnapshot,
}

impl RecordKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Candle => "candle",
            RecordKind::Trade => "trade",
            RecordKind::DepthUpdate => "depth_update",
            RecordKind::BookSnapshot => "book_snapshot",
        }
    }
}

/// The identity of a record at the exchange: writing the same key twice is one row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NaturalKey {
    /// (symbol, interval, open_time)
    Candle(String, String, i64),
    /// (symbol, trade kind, trade id)
    Trade(String, &'static str, i64),
    /// (symbol, final_update_id)
    Depth(String, i64),
    /// (symbol, last_update_id)
    Snapshot(String, i64),
}

impl DataRecord {
    pub fn kind(&self) -> RecordKind {
        match self {
            DataRecord::Candle(_) => RecordKind::Candle,
            DataRecord::Trade(_) => RecordKind::Trade,
            DataRecord::DepthUpdate(_) => RecordKind::DepthUpdate,
            DataRecord::BookSnapshot(_) => RecordKind::BookSnapshot,
        }
    }

    pub fn symbol(&self) -> &str {
        match self {
            DataRecord::Candle(c) => &c.symbol,
            DataRecord::Trade(t) => &t.symbol,
            DataRecord::DepthUpdate(d) => &d.symbol,
            DataRecord::BookSnapshot(s) => &s.symbol,
        }
    }

    pub fn natural_key(&self) -> NaturalKey {
        match self {
            DataRecord::Candle(c) => NaturalKey::Candle(c.symbol.clone(), c.interval.to_string(), c.open_time),
            DataRecord::Trade(t) => NaturalKey::Trade(t.symbol.clone(), t.kind.as_str(), t.id),
            DataRecord::DepthUpdate(d) => NaturalKey::Depth(d.symbol.clone(), d.final_update_id),
            DataRecord::BookSnapshot(s) => NaturalKey::Snapshot(s.symbol.clone(), s.last_update_id),
        }
    }

    /// JSON bytes for the bus, without spare capacity: the in-process bus holds them as they are
    /// (a doubling buffer left a 300-byte candle in a 512-byte allocation). Written into a
    /// per-thread scratch buffer and copied out once at their length. Candles, depth events and books
    /// are written directly ([`bus_json`]: serde's per-string escaping of some 80 decimals was a
    /// fifth of the WebSocket path); the bytes are the ones serde writes (tests compare them).
    pub fn to_bytes(&self) -> Vec<u8> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            if !bus_json::write(buf, self) {
                // Serializing these plain structs cannot fail: every field is a string, number or bool.
                serde_json::to_writer(&mut *buf, self).unwrap_or_default();
            }
            let bytes = buf.to_vec();
            if buf.capacity() > SCRATCH_KEPT {
                *buf = Vec::new();
            }
            bytes
        })
    }

    /// Parses a data message taken off the bus. Reads the tag first and then the record itself,
    /// which avoids serde's buffering of internally tagged enums. Our writers' layout is read
    /// directly ([`bus_json`]); otherwise the tag is read straight from the front where our
    /// writers put it (`{"record":"trade",…`), saving a pass, or found by serde.
    pub fn from_bytes(bytes: &[u8]) -> Result<DataRecord, serde_json::Error> {
        #[derive(Deserialize)]
        struct Tag<'a> {
            #[serde(borrow)]
            record: std::borrow::Cow<'a, str>,
        }
        if let Some(record) = bus_json::read(bytes) {
            return Ok(record);
        }
        let leading = bytes
            .strip_prefix(b"{\"record\":\"")
            .and_then(|rest| rest.iter().position(|b| *b == b'"').map(|end| &rest[..end]))
            .filter(|tag| !tag.contains(&b'\\'))
            .and_then(|tag| std::str::from_utf8(tag).ok());
        let tag = match leading {
            Some(tag) => tag.into(),
            None => serde_json::from_slice::<Tag<'_>>(bytes)?.record,
        };
        match &*tag {
            "candle" => serde_json::from_slice(bytes).map(DataRecord::Candle),
            "trade" => serde_json::from_slice(bytes).map(DataRecord::Trade),
            "depth_update" => serde_json::from_slice(bytes).map(DataRecord::DepthUpdate),
            "book_snapshot" => serde_json::from_slice(bytes).map(DataRecord::BookSnapshot),
            other => {
                Err(serde::de::Error::unknown_variant(other, &["candle", "trade", "depth_update", "book_snapshot"]))
            }
        }
    }
}

/// A scratch buffer that grew past this (a deep book snapshot) is not kept.
const SCRATCH_KEPT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_bus_bytes() {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_klines.json");
        let c = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap();
        let rec = DataRecord::Candle(c[0].clone());
        let back = DataRecord::from_bytes(&rec.to_bytes()).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.natural_key(), NaturalKey::Candle("BTCUSDT".into(), "1m".into(), 1_634_943_780_000));
        let v: serde_json::Value = serde_json::from_slice(&rec.to_bytes()).unwrap();
        assert_eq!(v["record"], "candle");
        assert_eq!(v["open"], "60685.22000000", "decimals travel as exact strings");
    }

    #[test]
    fn every_record_kind_round_trips() {
        let trades = include_bytes!("../../tests/fixtures/rest/http_spot_market_agg_trades.json");
        let depth = include_bytes!("../../tests/fixtures/rest/http_spot_market_depth.json");
        let ws_depth = br#"{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[]}"#;
        let records = [
            DataRecord::Trade(crate::model::Trade::from_rest_agg_trades("BTCUSDT", trades).unwrap().remove(0)),
            DataRecord::BookSnapshot(crate::model::BookSnapshot::from_rest("BTCUSDT", depth).unwrap()),
            DataRecord::DepthUpdate(crate::model::DepthUpdate::from_ws(ws_depth).unwrap()),
        ];
        for rec in records {
            assert_eq!(DataRecord::from_bytes(&rec.to_bytes()).unwrap(), rec);
        }
    }

    /// Another writer's key order or escapes: the tag is found by serde.
    #[test]
    fn the_tag_is_found_anywhere() {
        let rec = DataRecord::from_bytes(
            &DataRecord::DepthUpdate(
                DepthUpdate::from_ws(br#"{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":2,"u":3,"b":[],"a":[]}"#).unwrap(),
            )
            .to_bytes(),
        )
        .unwrap();
        let moved = br#"{"symbol":"ETHUSDT","event_time":1,"first_update_id":2,"record":"depth_update","final_update_id":3,"bids":[],"asks":[]}"#;
        assert_eq!(DataRecord::from_bytes(moved).unwrap(), rec);
        let escaped = br#"{"record":"depth\u005fupdate","symbol":"ETHUSDT","event_time":1,"first_update_id":2,"final_update_id":3,"bids":[],"asks":[]}"#;
        assert_eq!(DataRecord::from_bytes(escaped).unwrap(), rec);
    }

    #[test]
    fn wrong_schema_is_rejected() {
        assert!(DataRecord::from_bytes(br#"{"record":"candle","symbol":"BTCUSDT"}"#).is_err());
        assert!(DataRecord::from_bytes(br#"{"record":"weather","temp":3}"#).is_err());
        assert!(DataRecord::from_bytes(br#"{"symbol":"BTCUSDT"}"#).is_err());
        assert!(DataRecord::from_bytes(b"{not json").is_err());
    }
}
