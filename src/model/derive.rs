//! Candles of a longer interval derived from stored candles of a shorter one (5m, 15m, 1h, 4h, 1d
//! from 1m), the way Binance builds its own: per period, the open of its first candle, the highest
//! high, the lowest low, the close of its last candle, and volumes, quote volumes, trade counts and
//! taker volumes summed. A period is aligned on UTC multiples of its length (Binance's klines are:
//! 1d at 00:00 UTC, 4h at 00:00, 04:00, …). A period with no source candle — an exchange outage —
//! is absent, not invented; one with some of its candles missing is built from those it has, as
//! Binance's is.

use super::{Candle, Interval};

/// Why candles of one interval cannot be derived from another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    #[error(
        "cannot derive {to} candles from {from} candles: {to} must be a whole multiple of {from}, of at most 1d \
         (3d, 1w and 1M candles are aligned on other boundaries than multiples of their length)"
    )]
    Intervals { from: Interval, to: Interval },
    #[error("{symbol} {interval} candle at {open_time} among {expected} candles of {first}: derive one symbol and interval at a time")]
    Mixed { symbol: String, interval: Interval, open_time: i64, expected: Interval, first: String },
    #[error("candles out of order at {open_time} (after {previous}): they must be ascending by open time")]
    Unordered { open_time: i64, previous: i64 },
}

/// Whether `to` candles can be derived from `from` candles.
pub fn derivable(from: Interval, to: Interval) -> Result<(), DeriveError> {
    const DAY: i64 = 86_400_000;
    let ok = from.is_fixed()
        && to.is_fixed()
        && to.millis() > from.millis()
        && to.millis() <= DAY
        && to.millis() % from.millis() == 0;
    if ok {
        Ok(())
    } else {
        Err(DeriveError::Intervals { from, to })
    }
}

/// The start of the `interval` period that holds `time` (epoch ms, UTC-aligned).
pub fn period_start(time: i64, interval: Interval) -> i64 {
    time - time.rem_euclid(interval.millis())
}

/// The `to` candles of `source` — candles of one symbol and one interval, ascending by open time.
/// A derived candle is `closed` when all its source candles are and its period ends at or before
/// `until` (epoch ms, the end of the span `source` was read over): the last period of a span that
/// stops inside it is still open, as Binance's current candle is.
pub fn derive(source: &[Candle], to: Interval, until: i64) -> Result<Vec<Candle>, DeriveError> {
    let Some(first) = source.first() else {
        return Ok(Vec::new());
    };
    derivable(first.interval, to)?;
    let mut out: Vec<Candle> = Vec::new();
    let mut previous = i64::MIN;
    for c in source {
        if c.symbol != first.symbol || c.interval != first.interval {
            return Err(DeriveError::Mixed {
                symbol: c.symbol.clone(),
                interval: c.interval,
                open_time: c.open_time,
                expected: first.interval,
                first: first.symbol.clone(),
            });
        }
        if c.open_time <= previous {
            return Err(DeriveError::Unordered { open_time: c.open_time, previous });
        }
        previous = c.open_time;
        let start = period_start(c.open_time, to);
        match out.last_mut() {
            Some(d) if d.open_time == start => merge(d, c),
            _ => out.push(Candle { interval: to, open_time: start, close_time: start + to.millis() - 1, ..c.clone() }),
        }
    }
    for d in &mut out {
        d.closed &= d.close_time < until;
    }
    Ok(out)
}

/// Folds the next source candle `c` of the period into `d`.
fn merge(d: &mut Candle, c: &Candle) {
    d.high = d.high.max(c.high);
    d.low = d.low.min(c.low);
    d.close = c.close;
    d.volume += c.volume;
    d.quote_volume = d.quote_volume.zip(c.quote_volume).map(|(a, b)| a + b);
    d.trades = d.trades.zip(c.trades).map(|(a, b)| a + b);
    d.taker_buy_base = d.taker_buy_base.zip(c.taker_buy_base).map(|(a, b)| a + b);
    d.taker_buy_quote = d.taker_buy_quote.zip(c.taker_buy_quote).map(|(a, b)| a + b);
    d.closed &= c.closed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Decimal;

    /// Real candles: BTCUSDT 1m from Binance's REST answer in the fixture (ten minutes, from the
    /// fourth minute of a 5m period on: three periods, the first and last of them partial).
    fn recorded() -> Vec<Candle> {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_klines.json");
        Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap()
    }

    #[test]
    fn a_period_takes_first_open_extremes_last_close_and_sums() {
        let one = recorded();
        let five = derive(&one, "5m".parse().unwrap(), i64::MAX).unwrap();
        let period = five[0].open_time;
        let inside: Vec<&Candle> =
            one.iter().filter(|c| period_start(c.open_time, "5m".parse().unwrap()) == period).collect();
        assert!(!inside.is_empty());
        let d = &five[0];
        assert_eq!(d.open, inside[0].open);
        assert_eq!(d.close, inside.last().unwrap().close);
        assert_eq!(d.high, inside.iter().map(|c| c.high).max().unwrap());
        assert_eq!(d.low, inside.iter().map(|c| c.low).min().unwrap());
        assert_eq!(d.volume, inside.iter().map(|c| c.volume).sum::<Decimal>());
        assert_eq!(d.trades, Some(inside.iter().map(|c| c.trades.unwrap()).sum()));
        assert_eq!(d.quote_volume, Some(inside.iter().map(|c| c.quote_volume.unwrap()).sum::<Decimal>()));
        assert_eq!((d.open_time % 300_000, d.close_time - d.open_time), (0, 299_999));
        assert_eq!(d.interval.to_string(), "5m");
    }

    #[test]
    fn a_period_without_candles_is_absent_and_a_period_cut_by_the_span_is_open() {
        let mut one = recorded();
        assert!(one.len() >= 10, "{}", one.len());
        let start = period_start(one[0].open_time, "5m".parse().unwrap()) + 300_000;
        // Drop a whole 5m period's candles: an outage.
        one.retain(|c| !(start..start + 300_000).contains(&c.open_time));
        let five = derive(&one, "5m".parse().unwrap(), start + 600_000).unwrap();
        assert!(five.iter().all(|d| d.open_time != start), "no candle invented for the outage");
        let last = five.last().unwrap();
        assert_eq!(last.closed, last.close_time < start + 600_000);
        assert!(
            five.iter().filter(|d| d.close_time >= start + 600_000).all(|d| !d.closed),
            "periods past the span stay open"
        );
    }

    #[test]
    fn intervals_that_do_not_divide_or_are_not_aligned_are_refused() {
        let i = |s: &str| s.parse::<Interval>().unwrap();
        assert!(
            derivable(i("1m"), i("5m")).is_ok()
                && derivable(i("5m"), i("1d")).is_ok()
                && derivable(i("1h"), i("4h")).is_ok()
        );
        for (from, to) in [("5m", "3m"), ("1m", "1m"), ("1h", "3d"), ("1d", "1w"), ("1m", "1M"), ("3m", "5m")] {
            assert!(matches!(derivable(i(from), i(to)), Err(DeriveError::Intervals { .. })), "{from} → {to}");
        }
        let mut one = recorded();
        one.swap(0, 1);
        assert!(matches!(derive(&one, i("5m"), i64::MAX), Err(DeriveError::Unordered { .. })));
        let mut mixed = recorded();
        mixed[3].symbol = "ETHUSDT".into();
        assert!(matches!(derive(&mixed, i("5m"), i64::MAX), Err(DeriveError::Mixed { .. })));
    }
}
