//! Hole repair: finds what a stored series lacks anywhere in a range — open times of candles
//! between the range's ends at the interval's step, ids of (aggregate) trades between stored
//! ones — asks the exchange for exactly those spans, and stores what it sends. A span the
//! exchange has nothing for (an outage such as 2021-04-25 04:00–08:45) is recorded as a confirmed
//! gap ([`Store::put_confirmed_gaps`]) and never asked for again; a span the store had lost is
//! filled. Records are written straight to the store (idempotent upserts by natural key).

use std::sync::Arc;

use super::{ConfirmedGap, Store, StoreError};
use crate::exchange::binance::{BinanceRest, ExchangeError, Sequenced, SequencedKind, PAGE};
use crate::model::DataRecord;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{0} have no fixed step to find holes by")]
    NoStep(String),
}

/// A span of the sequence, both ends included, and how many records it holds or lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub first: i64,
    pub last: i64,
    pub records: u64,
}

impl Span {
    /// The span `[first, last]` at `step`.
    fn of(first: i64, last: i64, step: i64) -> Span {
        Span { first, last, records: ((last - first) / step + 1) as u64 }
    }

    /// What lies strictly between the sequences `prev` and `next` at `step`; `None` when they are
    /// consecutive (or out of order).
    fn between(prev: i64, next: i64, step: i64) -> Option<Span> {
        (next > prev + step).then(|| Span::of(prev + step, next - step, step))
    }
}

/// What a repair of one symbol found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    pub symbol: String,
    pub collection: String,
    /// Records the store held in the range before the repair.
    pub scanned: u64,
    /// Holes found (`records`: how many are missing).
    pub holes: Vec<Span>,
    /// Spans the exchange sent records for, now stored (`records`: how many).
    pub filled: Vec<Span>,
    /// Spans the exchange confirmed empty now (`records`: how many are missing there).
    pub confirmed_empty: Vec<Span>,
    /// Holes, or parts of them, confirmed empty before: not asked for.
    pub known_empty: Vec<Span>,
    /// REST requests sent.
    pub requests: u64,
}

/// Records read from the store per query while scanning (candles: ~a week of 1m).
const SCAN_WINDOW_RECORDS: i64 = 10_000;

/// Holes in `symbol`'s series in `collection` with times in `[from, to)`. Candles: every
/// interval step between the range's ends is expected, so holes at either end count. Trades:
/// between the first and the last stored id (the ids beyond are not known from the store).
pub async fn find_holes(
    store: &dyn Store,
    collection: &str,
    symbol: &str,
    kind: &dyn SequencedKind,
    (from, to): (i64, i64),
) -> Result<(Vec<Span>, u64), RepairError> {
    let step = kind.step().ok_or_else(|| RepairError::NoStep(kind.noun().to_owned()))?;
    let candles = kind.label() == "kline";
    let mut holes = Vec::new();
    let mut scanned = 0;
    // Candles: the open time before the first expected one, so a missing start is a hole.
    let first_expected = from + (step - from.rem_euclid(step)) % step;
    let mut prev = candles.then_some(first_expected - step);
    let mut window_start = from;
    // A window spans this much time: ~SCAN_WINDOW_RECORDS candles; trades by day.
    let span = if candles { step * SCAN_WINDOW_RECORDS } else { 86_400_000 };
    while window_start < to {
        let window_end = window_start.saturating_add(span).min(to);
        let seqs: Vec<i64> = if candles {
            store.candles(collection, symbol, window_start, window_end).await?.iter().map(|c| c.open_time).collect()
        } else {
            store.trades(collection, symbol, window_start, window_end).await?.iter().map(|t| t.id).collect()
        };
        scanned += seqs.len() as u64;
        for seq in seqs {
            holes.extend(prev.and_then(|p| Span::between(p, seq, step)));
            prev = Some(prev.map_or(seq, |p| p.max(seq)));
        }
        window_start = window_end;
    }
    if candles {
        let last_expected = to - 1 - (to - 1 - first_expected).rem_euclid(step);
        holes.extend(prev.and_then(|p| Span::between(p, last_expected + step, step)));
    }
    Ok((holes, scanned))
}

/// `hole` less the confirmed gaps (sorted): the parts still to ask for, and those known empty.
fn subtract(hole: Span, confirmed: &[ConfirmedGap], step: i64) -> (Vec<Span>, Vec<Span>) {
    let span = |first: i64, last: i64| Span::of(first, last, step);
    let (mut ask, mut known) = (Vec::new(), Vec::new());
    let mut at = hole.first;
    for g in confirmed.iter().filter(|g| g.last_missing >= hole.first && g.first_missing <= hole.last) {
        if g.first_missing > at {
            ask.push(span(at, g.first_missing - step));
        }
        let (a, b) = (g.first_missing.max(at), g.last_missing.min(hole.last));
        if a <= b {
            known.push(span(a, b));
        }
        at = at.max(g.last_missing + step);
    }
    if at <= hole.last {
        ask.push(span(at, hole.last));
    }
    (ask, known)
}

/// Spans of `[first, last]` (at `step`) that none of the ordered `present` sequences fall on.
fn absent(first: i64, last: i64, present: &[i64], step: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut prev = first - step;
    for &seq in present.iter().chain(std::iter::once(&(last + step))) {
        out.extend(Span::between(prev, seq, step));
        prev = prev.max(seq);
    }
    out
}

/// Finds the holes of `symbol`'s series in `collection` over `range`, asks `rest` for each (but
/// not for what is confirmed empty), stores what comes back and records what the exchange
/// confirmed empty.
pub async fn repair(
    store: &dyn Store,
    rest: &BinanceRest,
    collection: &str,
    symbol: &str,
    kind: &dyn SequencedKind,
    range: (i64, i64),
) -> Result<RepairReport, RepairError> {
    let step = kind.step().ok_or_else(|| RepairError::NoStep(kind.noun().to_owned()))?;
    let (holes, scanned) = find_holes(store, collection, symbol, kind, range).await?;
    let confirmed = store.confirmed_gaps(collection, symbol).await?;
    let mut report = RepairReport {
        symbol: symbol.to_owned(),
        collection: collection.to_owned(),
        scanned,
        holes: holes.clone(),
        ..Default::default()
    };
    for hole in holes {
        let (ask, known) = subtract(hole, &confirmed, step);
        report.known_empty.extend(known);
        for part in ask {
            let present = fill(store, rest, collection, symbol, kind, part, &mut report).await?;
            let empty = absent(part.first, part.last, &present, step);
            let gaps: Vec<ConfirmedGap> =
                empty.iter().map(|s| ConfirmedGap { first_missing: s.first, last_missing: s.last }).collect();
            store.put_confirmed_gaps(collection, symbol, &gaps).await?;
            report.confirmed_empty.extend(empty);
        }
    }
    tracing::info!(
        %symbol, %collection, holes = report.holes.len(), filled = report.filled.len(),
        confirmed_empty = report.confirmed_empty.len(), requests = report.requests, "Repair done."
    );
    Ok(report)
}

/// Pages `part` from the exchange and stores it; the sequences it got, in order.
async fn fill(
    store: &dyn Store,
    rest: &BinanceRest,
    collection: &str,
    symbol: &str,
    kind: &dyn SequencedKind,
    part: Span,
    report: &mut RepairReport,
) -> Result<Vec<i64>, RepairError> {
    let step = kind.step().unwrap_or(1);
    let mut cursor = part.first - step;
    let mut present = Vec::new();
    loop {
        let limit = PAGE.min(((part.last - cursor) / step).clamp(1, i64::from(PAGE)) as u32);
        let (page, more) = kind.after(rest, symbol, cursor, limit).await?;
        report.requests += 1;
        let total = page.len();
        let kept: Vec<Sequenced> = page.into_iter().filter(|r| r.seq <= part.last).collect();
        let Some(last) = kept.last().map(|r| r.seq) else { break };
        present.extend(kept.iter().map(|r| r.seq));
        let records: Vec<DataRecord> = kept.into_iter().map(|r| r.record).collect();
        let n = records.len() as u64;
        store.upsert(collection, Arc::new(records)).await?;
        let first = present[present.len() - n as usize];
        report.filled.push(Span { first, last, records: n });
        cursor = last;
        if (n as usize) < total || !more || last >= part.last {
            break;
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_gaps_are_taken_out_of_a_hole() {
        let hole = Span { first: 10, last: 20, records: 11 };
        let gaps =
            [ConfirmedGap { first_missing: 8, last_missing: 12 }, ConfirmedGap { first_missing: 15, last_missing: 16 }];
        let (ask, known) = subtract(hole, &gaps, 1);
        assert_eq!(ask, vec![Span { first: 13, last: 14, records: 2 }, Span { first: 17, last: 20, records: 4 }]);
        assert_eq!(known, vec![Span { first: 10, last: 12, records: 3 }, Span { first: 15, last: 16, records: 2 }]);
        let (ask, known) = subtract(hole, &[ConfirmedGap { first_missing: 0, last_missing: 30 }], 1);
        assert!(ask.is_empty());
        assert_eq!(known, vec![hole]);
    }

    #[test]
    fn what_the_exchange_did_not_send_is_absent() {
        assert_eq!(
            absent(0, 600, &[60, 120, 420], 60),
            vec![
                Span { first: 0, last: 0, records: 1 },
                Span { first: 180, last: 360, records: 4 },
                Span { first: 480, last: 600, records: 3 }
            ]
        );
        assert!(absent(1, 3, &[1, 2, 3], 1).is_empty());
    }
}
