//! A REST answer body as the backfills and the book read it: klines, trades, aggregate trades and
//! depth snapshots. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamforge::model::{BookSnapshot, Candle, Trade};

fuzz_target!(|body: &[u8]| {
    let _ = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, 1_700_000_000_000);
    let _ = Trade::from_rest_trades("BTCUSDT", body);
    let _ = Trade::from_rest_agg_trades("BTCUSDT", body);
    let _ = BookSnapshot::from_rest("BTCUSDT", body);
});
