//! Domain model: normalized market records parsed from Binance's own JSON, and the
//! `queue-control` / `queue-events` protocol messages of the original services.

mod bus_json;
mod candle;
mod control;
mod decimal;
mod depth;
pub mod derive;
mod event;
mod graph;
mod interval;
mod record;
mod scan;
mod time;
mod trade;

pub use candle::Candle;
pub use control::{Command, QueueControl};
pub use decimal::{decimal_from_json_number, parse_decimal, Decimal, DecimalText, Levels, PriceLevel};
pub use depth::{BookSnapshot, DepthUpdate};
pub use event::{EventStatus, QueueEvent};
pub use graph::{Edge, GraphSnapshot, Vertex};
pub use interval::Interval;
pub use record::{DataRecord, NaturalKey, RecordKind};
pub use time::{format_ms, now_ms, parse_date_or_time_ms, parse_time_range, unix_seconds_now};
pub use trade::{Trade, TradeKind};

/// A payload from outside could not be turned into a domain value.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid decimal {value:?} in field `{field}`")]
    Decimal { field: &'static str, value: String },
    #[error("invalid interval {0:?}: expected one of 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M")]
    Interval(String),
    #[error("invalid time {0:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or epoch milliseconds")]
    Time(String),
    #[error("invalid time range {0:?}: expected START:END with START before END, e.g. 2024-08-01:2024-08-02")]
    TimeRange(String),
    #[error("CSV line {line}: {reason}")]
    Csv { line: usize, reason: String },
}
