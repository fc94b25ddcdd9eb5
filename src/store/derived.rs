//! Candles derived from stored candles (`model::derive`), stored like any other candles in
//! `candles_<interval>`: idempotent upserts by natural key, so deriving a span again replaces what it
//! derived before. Used by `streamforge derive` and the workflows' `derive` step.

use std::sync::Arc;

use super::{Store, StoreError};
use crate::model::derive::{derive, period_start, DeriveError};
use crate::model::{DataRecord, Interval};

/// Derived candles are written in transactions of this many.
const BATCH: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DeriveCandlesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{source_collection}: {error}")]
    Derive { source_collection: String, error: DeriveError },
}

/// What one symbol and interval came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Derived {
    pub symbol: String,
    pub interval: String,
    pub collection: String,
    /// Source candles read.
    pub source_candles: usize,
    /// Candles derived and stored.
    pub candles: usize,
    /// Of those, still open (their period ends after the source's last candle).
    pub open: usize,
    pub first: Option<i64>,
    pub last: Option<i64>,
}

/// The collection derived candles of `interval` go to.
pub fn candles_collection(interval: Interval) -> String {
    format!("candles_{interval}")
}

/// Derives `intervals` of `symbol` from its candles in `source` over `range` (whole periods of
/// the longest interval; everything when `None`) and stores them in `candles_<interval>`.
pub async fn derive_candles(
    store: &dyn Store,
    symbol: &str,
    source: &str,
    intervals: &[Interval],
    range: Option<(i64, i64)>,
) -> Result<Vec<Derived>, DeriveCandlesError> {
    let symbol = symbol.to_ascii_uppercase();
    let longest = intervals.iter().copied().max_by_key(|i| i.millis());
    // Widened to whole periods of the longest interval, so no derived candle is cut short.
    let (from, to) = match (range, longest) {
        (Some((from, to)), Some(l)) => (period_start(from, l), period_start(to - 1, l) + l.millis()),
        _ => (i64::MIN, i64::MAX),
    };
    let candles = store.candles(source, &symbol, from, to).await?;
    let until = candles.last().map_or(to, |c| (c.close_time + 1).min(to));
    let mut out = Vec::new();
    let bad = |error| DeriveCandlesError::Derive { source_collection: source.to_owned(), error };
    for &interval in intervals {
        let derived = derive(&candles, interval, until).map_err(bad)?;
        let collection = candles_collection(interval);
        for chunk in derived.chunks(BATCH) {
            let records = chunk.iter().cloned().map(DataRecord::Candle).collect();
            store.upsert(&collection, Arc::new(records)).await?;
        }
        out.push(Derived {
            symbol: symbol.clone(),
            interval: interval.to_string(),
            collection,
            source_candles: candles.len(),
            candles: derived.len(),
            open: derived.iter().filter(|c| !c.closed).count(),
            first: derived.first().map(|c| c.open_time),
            last: derived.last().map(|c| c.open_time),
        });
    }
    Ok(out)
}
