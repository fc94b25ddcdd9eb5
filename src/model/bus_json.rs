//! The data topics' JSON for the record kinds that carry nearly all the bytes — candles, depth
//! events and book snapshots — written and read directly in the one layout serde writes for them
//! (`{"record":"candle","symbol":"BTCUSDT","interval":"1m",…}`, fields in declaration order).
//! The bytes are serde's (tests compare them on real records), so other consumers read them as
//! before; anything unusual — a symbol that needs escaping, a negative number, another writer's
//! key order — is left to serde. Serde's string machinery (escape scanning, UTF-8 checks, field
//! matching by name) was the largest share of the connector path's own work.

use super::decimal::{push_decimal, push_levels, Decimal, PriceLevel};
use super::scan::Scan;
use super::{BookSnapshot, Candle, DataRecord, DepthUpdate};

/// Writes `record` into `out` when its kind and text allow it; `false` leaves it to serde.
pub(super) fn write(out: &mut Vec<u8>, record: &DataRecord) -> bool {
    match record {
        DataRecord::Candle(c) if needs_no_escape(&c.symbol) => write_candle(out, c),
        DataRecord::DepthUpdate(d) if needs_no_escape(&d.symbol) => write_depth_update(out, d),
        DataRecord::BookSnapshot(b) if needs_no_escape(&b.symbol) => write_book_snapshot(out, b),
        _ => return false,
    }
    true
}

/// The record in `bytes` when it is one of ours in our layout.
pub(super) fn read(bytes: &[u8]) -> Option<DataRecord> {
    if bytes.starts_with(CANDLE) {
        read_candle(bytes).map(DataRecord::Candle)
    } else if bytes.starts_with(DEPTH_UPDATE) {
        read_depth_update(bytes).map(DataRecord::DepthUpdate)
    } else if bytes.starts_with(BOOK_SNAPSHOT) {
        read_book_snapshot(bytes).map(DataRecord::BookSnapshot)
    } else {
        None
    }
}

const CANDLE: &[u8] = b"{\"record\":\"candle\",\"symbol\":\"";
const DEPTH_UPDATE: &[u8] = b"{\"record\":\"depth_update\",\"symbol\":\"";
const BOOK_SNAPSHOT: &[u8] = b"{\"record\":\"book_snapshot\",\"symbol\":\"";
const BIDS: &[u8] = b",\"bids\":";
const ASKS: &[u8] = b",\"asks\":";

/// Text serde_json writes as it is (no control characters, quotes or backslashes).
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

struct Out<'a>(&'a mut Vec<u8>, itoa::Buffer);

impl Out<'_> {
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn int(&mut self, v: impl itoa::Integer) -> &mut Self {
        let Out(out, digits) = self;
        out.extend_from_slice(digits.format(v).as_bytes());
        self
    }

    fn decimal(&mut self, d: &Decimal) -> &mut Self {
        self.0.push(b'"');
        push_decimal(self.0, d);
        self.0.push(b'"');
        self
    }

    fn opt_decimal(&mut self, d: &Option<Decimal>) -> &mut Self {
        match d {
            Some(d) => self.decimal(d),
            None => self.raw(b"null"),
        }
    }

    fn opt_int(&mut self, v: Option<impl itoa::Integer>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.raw(b"null"),
        }
    }

    /// `,"bids":[…],"asks":[…]}`: the two sides that end a book record.
    fn sides_to_end(&mut self, bids: &[PriceLevel], asks: &[PriceLevel]) {
        self.raw(BIDS);
        push_levels(self.0, bids);
        self.raw(ASKS);
        push_levels(self.0, asks);
        self.raw(b"}");
    }
}

fn write_candle(out: &mut Vec<u8>, c: &Candle) {
    let mut o = Out(out, itoa::Buffer::new());
    o.raw(CANDLE).raw(c.symbol.as_bytes()).raw(b"\",\"interval\":\"").raw(c.interval.as_str().as_bytes());
    o.raw(b"\",\"open_time\":").int(c.open_time).raw(b",\"close_time\":").int(c.close_time);
    o.raw(b",\"open\":").decimal(&c.open).raw(b",\"high\":").decimal(&c.high);
    o.raw(b",\"low\":").decimal(&c.low).raw(b",\"close\":").decimal(&c.close);
    o.raw(b",\"volume\":").decimal(&c.volume).raw(b",\"quote_volume\":").opt_decimal(&c.quote_volume);
    o.raw(b",\"trades\":").opt_int(c.trades).raw(b",\"taker_buy_base\":").opt_decimal(&c.taker_buy_base);
    o.raw(b",\"taker_buy_quote\":").opt_decimal(&c.taker_buy_quote);
    o.raw(b",\"closed\":").raw(if c.closed { b"true}" } else { b"false}" });
}

fn read_candle(bytes: &[u8]) -> Option<Candle> {
    let mut s = Scan::new(bytes);
    s.lit(CANDLE)?;
    let symbol = s.text()?.to_owned();
    s.lit(b",\"interval\":\"")?;
    let interval = s.text()?.parse().ok()?;
    s.lit(b",\"open_time\":")?;
    let open_time = s.int()?;
    s.lit(b",\"close_time\":")?;
    let close_time = s.int()?;
    let mut decimal = |key: &[u8]| s.lit(key).and_then(|()| s.decimal());
    let open = decimal(b",\"open\":\"")?;
    let high = decimal(b",\"high\":\"")?;
    let low = decimal(b",\"low\":\"")?;
    let close = decimal(b",\"close\":\"")?;
    let volume = decimal(b",\"volume\":\"")?;
    s.lit(b",\"quote_volume\":")?;
    let quote_volume = s.opt_decimal()?;
    s.lit(b",\"trades\":")?;
    let trades = s.opt_int()?.map(u64::try_from).transpose().ok()?;
    s.lit(b",\"taker_buy_base\":")?;
    let taker_buy_base = s.opt_decimal()?;
    s.lit(b",\"taker_buy_quote\":")?;
    let taker_buy_quote = s.opt_decimal()?;
    s.lit(b",\"closed\":")?;
    let closed = s.bool()?;
    s.lit(b"}")?;
    s.end()?;
    Some(Candle {
        symbol,
        interval,
        open_time,
        close_time,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        trades,
        taker_buy_base,
        taker_buy_quote,
        closed,
    })
}

fn write_depth_update(out: &mut Vec<u8>, d: &DepthUpdate) {
    let mut o = Out(out, itoa::Buffer::new());
    o.raw(DEPTH_UPDATE).raw(d.symbol.as_bytes()).raw(b"\",\"event_time\":").int(d.event_time);
    o.raw(b",\"first_update_id\":").int(d.first_update_id);
    o.raw(b",\"final_update_id\":").int(d.final_update_id).sides_to_end(&d.bids, &d.asks);
}

fn read_depth_update(bytes: &[u8]) -> Option<DepthUpdate> {
    let mut s = Scan::new(bytes);
    s.lit(DEPTH_UPDATE)?;
    let symbol = s.text()?.to_owned();
    s.lit(b",\"event_time\":")?;
    let event_time = s.int()?;
    s.lit(b",\"first_update_id\":")?;
    let first_update_id = s.int()?;
    s.lit(b",\"final_update_id\":")?;
    let final_update_id = s.int()?;
    let (bids, asks) = s.sides_to_end(BIDS, ASKS)?;
    Some(DepthUpdate { symbol, event_time, first_update_id, final_update_id, bids, asks })
}

fn write_book_snapshot(out: &mut Vec<u8>, b: &BookSnapshot) {
    let mut o = Out(out, itoa::Buffer::new());
    o.raw(BOOK_SNAPSHOT).raw(b.symbol.as_bytes()).raw(b"\",\"last_update_id\":").int(b.last_update_id);
    o.sides_to_end(&b.bids, &b.asks);
}

fn read_book_snapshot(bytes: &[u8]) -> Option<BookSnapshot> {
    let mut s = Scan::new(bytes);
    s.lit(BOOK_SNAPSHOT)?;
    let symbol = s.text()?.to_owned();
    s.lit(b",\"last_update_id\":")?;
    let last_update_id = s.int()?;
    let (bids, asks) = s.sides_to_end(BIDS, ASKS)?;
    Some(BookSnapshot { symbol, last_update_id, bids, asks })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::replay::ReplayData;

    fn sample() -> ReplayData {
        ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap()
    }

    /// Writes what serde writes and reads back what it wrote, directly.
    fn check(record: &DataRecord) {
        let mut direct = Vec::new();
        assert!(write(&mut direct, record), "{record:?} is written directly");
        assert_eq!(String::from_utf8_lossy(&direct), serde_json::to_string(record).unwrap());
        assert_eq!(read(&direct).as_ref(), Some(record), "and read back directly");
    }

    /// Every candle and depth event of the bundled recordings (REST candles with every field,
    /// freqtrade candles without the optional ones, the ETHUSDT depth capture) and both books.
    #[test]
    fn real_records_are_written_and_read_as_serde_does() {
        let data = sample();
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_klines.json");
        let rest = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap();
        let recorded = data.all_candles("1m".parse().unwrap()).into_iter().flat_map(|(_, c)| c);
        let mut seen = (0, 0, 0);
        for c in rest.into_iter().chain(recorded) {
            seen.0 += usize::from(c.quote_volume.is_some());
            seen.1 += 1;
            check(&DataRecord::Candle(c));
        }
        for row in data.symbols["ETHUSDT"].ws.iter().filter(|r| r.stream.ends_with("@depth@100ms")) {
            check(&DataRecord::DepthUpdate(DepthUpdate::from_ws(row.data().as_bytes()).unwrap()));
            seen.2 += 1;
        }
        for symbol in ["BTCUSDT", "ETHUSDT"] {
            check(&DataRecord::BookSnapshot(data.book_at(symbol, None).unwrap().unwrap()));
        }
        assert!(seen.0 > 0 && seen.1 > 1000 && seen.2 > 1000, "{seen:?}");
    }

    #[test]
    fn unusual_records_are_left_to_serde() {
        let c: Candle = serde_json::from_str(
            r#"{"symbol":"BTC\"USDT","interval":"1m","open_time":-60000,"close_time":-1,"open":"1.5","high":"2",
            "low":"1","close":"-1.5","volume":"0","closed":false}"#,
        )
        .unwrap();
        let record = DataRecord::Candle(c.clone());
        assert!(!write(&mut Vec::new(), &record), "a symbol that needs escaping");
        let mut plain = c;
        plain.symbol = "BTCUSDT".into();
        let bytes = serde_json::to_vec(&DataRecord::Candle(plain.clone())).unwrap();
        assert_eq!(read(&bytes), None, "negative numbers go to serde");
        assert_eq!(DataRecord::from_bytes(&bytes).unwrap(), DataRecord::Candle(plain));
        assert_eq!(read(b"{\"record\":\"candle\",\"symbol\":\"BTCUSDT\"}"), None);
    }
}
