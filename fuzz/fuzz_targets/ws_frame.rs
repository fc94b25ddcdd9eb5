//! A WebSocket text frame as a loader reads it: the combined-stream envelope, then its data as
//! each stream kind decodes it. Nothing may panic; a frame is a message or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamforge::exchange::binance::StreamMessage;
use streamforge::model::{Candle, DepthUpdate, Trade};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for data in [StreamMessage::parse(text).ok().map(|m| m.data().to_vec()), Some(bytes.to_vec())].into_iter().flatten() {
        let _ = DepthUpdate::from_ws(&data);
        let _ = Trade::from_ws_trade(&data);
        let _ = Trade::from_ws_agg_trade(&data);
        let _ = Candle::from_ws_kline(&data);
    }
});
