//! Decoders on real payloads, table-driven: every message of the bundled ETHUSDT WebSocket capture
//! (`@trade`, `@depth@100ms`) and every row of the recorded REST bodies (klines, aggTrades, trades,
//! historicalTrades, depth) decodes, and each decoded field equals the raw JSON field — decimals
//! as the exact strings Binance sent. The sample holds no real `@kline_<i>` or `@aggTrade`
//! WebSocket messages; those decoders are covered by the REST rows of the same shapes here and by
//! the model's unit tests.

mod common;

use std::io::{BufRead, BufReader};

use serde_json::Value;
use streamforge::model::{BookSnapshot, Candle, DepthUpdate, PriceLevel, Trade};

/// `(stream, data)` of every message in the capture.
fn capture() -> Vec<(String, Value)> {
    let dir = common::sample_dir().join("ws/hftbacktest_raw_binance/spot");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(f).unwrap())).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
            if let Some(stream) = v["stream"].as_str() {
                out.push((stream.to_owned(), v["data"].clone()));
            }
        }
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn levels_equal(got: &[PriceLevel], raw: &Value) {
    let raw = raw.as_array().unwrap();
    assert_eq!(got.len(), raw.len());
    for ((p, q), r) in got.iter().zip(raw) {
        assert_eq!((p.to_string().as_str(), q.to_string().as_str()), (s(&r[0]), s(&r[1])));
    }
}

fn check_trade(data: &Value) {
    let t = Trade::from_ws_trade(data.to_string().as_bytes()).unwrap();
    assert_eq!(t.symbol, s(&data["s"]));
    assert_eq!(t.id, data["t"].as_i64().unwrap());
    assert_eq!(t.price.to_string(), s(&data["p"]));
    assert_eq!(t.qty.to_string(), s(&data["q"]));
    assert_eq!(t.time, data["T"].as_i64().unwrap());
    assert_eq!(t.is_buyer_maker, data["m"].as_bool().unwrap());
}

fn check_depth(data: &Value) {
    let d = DepthUpdate::from_ws(data.to_string().as_bytes()).unwrap();
    assert_eq!(d.symbol, s(&data["s"]));
    assert_eq!(d.event_time, data["E"].as_i64().unwrap());
    assert_eq!((d.first_update_id, d.final_update_id), (data["U"].as_i64().unwrap(), data["u"].as_i64().unwrap()));
    levels_equal(&d.bids, &data["b"]);
    levels_equal(&d.asks, &data["a"]);
}

#[test]
fn every_recorded_websocket_message_decodes_field_for_field() {
    type Check = fn(&Value);
    // ETHUSDT + BTCUSDT (data/sample/PROVENANCE.md).
    let table: [(&str, Check, usize); 2] =
        [("@trade", check_trade, 14_515 + 19_904), ("@depth@100ms", check_depth, 6_470 + 6_495)];
    let messages = capture();
    for (suffix, check, recorded) in table {
        let mine: Vec<&Value> = messages.iter().filter(|(st, _)| st.ends_with(suffix)).map(|(_, d)| d).collect();
        assert_eq!(mine.len(), recorded, "{suffix}: messages in the capture");
        for data in mine {
            check(data);
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/rest/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_recorded_rest_body_decodes_field_for_field() {
    // (fixture, decode, check one decoded row against its raw row)
    let klines = fixture("http_spot_market_klines.json");
    let raw: Vec<Value> = serde_json::from_slice(&klines).unwrap();
    let candles = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), &klines, i64::MAX).unwrap();
    assert_eq!(candles.len(), raw.len());
    for (c, r) in candles.iter().zip(&raw) {
        assert_eq!((c.open_time, c.close_time), (r[0].as_i64().unwrap(), r[6].as_i64().unwrap()));
        let got = [c.open, c.high, c.low, c.close, c.volume].map(|d| d.to_string());
        assert_eq!(got, [1, 2, 3, 4, 5].map(|i| s(&r[i]).to_owned()));
        assert_eq!(c.quote_volume.unwrap().to_string(), s(&r[7]));
        assert_eq!(c.trades, r[8].as_u64());
        assert!(c.closed, "every row of a past range is closed");
    }

    let agg = fixture("http_spot_market_agg_trades.json");
    let raw: Vec<Value> = serde_json::from_slice(&agg).unwrap();
    let trades = Trade::from_rest_agg_trades("BTCUSDT", &agg).unwrap();
    assert_eq!(trades.len(), raw.len());
    for (t, r) in trades.iter().zip(&raw) {
        assert_eq!(
            (t.id, t.time, t.is_buyer_maker),
            (r["a"].as_i64().unwrap(), r["T"].as_i64().unwrap(), r["m"].as_bool().unwrap())
        );
        assert_eq!((t.price.to_string().as_str(), t.qty.to_string().as_str()), (s(&r["p"]), s(&r["q"])));
        assert_eq!((t.first_trade_id, t.last_trade_id), (r["f"].as_i64(), r["l"].as_i64()));
    }

    for name in ["http_spot_market_trades.json", "http_spot_market_historical_trades.json"] {
        let body = fixture(name);
        let raw: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let trades = Trade::from_rest_trades("BTCUSDT", &body).unwrap();
        assert_eq!(trades.len(), raw.len(), "{name}");
        for (t, r) in trades.iter().zip(&raw) {
            assert_eq!((t.id, t.time), (r["id"].as_i64().unwrap(), r["time"].as_i64().unwrap()), "{name}");
            assert_eq!((t.price.to_string().as_str(), t.qty.to_string().as_str()), (s(&r["price"]), s(&r["qty"])));
            assert_eq!(t.is_buyer_maker, r["isBuyerMaker"].as_bool().unwrap());
        }
    }

    let depth = fixture("http_spot_market_depth.json");
    let raw: Value = serde_json::from_slice(&depth).unwrap();
    let book = BookSnapshot::from_rest("BTCUSDT", &depth).unwrap();
    assert_eq!(book.last_update_id, raw["lastUpdateId"].as_i64().unwrap());
    levels_equal(&book.bids, &raw["bids"]);
    levels_equal(&book.asks, &raw["asks"]);
}
