//! Workflow ids as the seeds write them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::format_ms;

/// `wf-btcusdt-api_candles_5m-20240801-a1b2c3`: readable (first symbol, first type, start date),
/// and unique per submission.
pub fn new_queue_id(symbol: &str, kind: &str, start_ms: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let date: String = format_ms(start_ms).chars().take(10).filter(|c| *c != '-').collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let salt = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("wf-{}-{kind}-{date}-{:06x}", symbol.to_ascii_lowercase(), (salt ^ (salt >> 24)) & 0xff_ffff)
}
