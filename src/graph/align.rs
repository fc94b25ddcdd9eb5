//! Candles of several symbols on one time grid. Every open time from the first to the last at the
//! interval's step is a row; a symbol without a candle at that time has `None` there — never the
//! previous value — so a missing candle breaks that symbol's returns instead of shifting them.

use crate::model::Candle;

/// What the graph needs of one candle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub close: f64,
    pub volume: f64,
}

/// One open time across every symbol (in the order of [`Aligned::symbols`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: i64,
    pub bars: Vec<Option<Bar>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aligned {
    pub symbols: Vec<String>,
    pub step_ms: i64,
    pub rows: Vec<Row>,
}

fn bar(c: &Candle) -> Bar {
    let f = |d: rust_decimal::Decimal| d.to_string().parse::<f64>().unwrap_or(f64::NAN);
    Bar { close: f(c.close), volume: f(c.volume) }
}

/// Aligns `series` (symbol, its candles) on a grid of `step_ms`. Candles off the grid (an open
/// time not a multiple of the step from the first) are an error: they mean mixed intervals.
pub fn align(series: &[(String, Vec<Candle>)], step_ms: i64) -> Result<Aligned, String> {
    let first = series.iter().filter_map(|(_, c)| c.iter().map(|c| c.open_time).min()).min();
    let last = series.iter().filter_map(|(_, c)| c.iter().map(|c| c.open_time).max()).max();
    let symbols: Vec<String> = series.iter().map(|(s, _)| s.clone()).collect();
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Aligned { symbols, step_ms, rows: Vec::new() });
    };
    let steps = ((last - first) / step_ms + 1) as usize;
    let mut rows: Vec<Row> =
        (0..steps).map(|i| Row { time: first + i as i64 * step_ms, bars: vec![None; series.len()] }).collect();
    for (k, (symbol, candles)) in series.iter().enumerate() {
        for c in candles {
            let offset = c.open_time - first;
            if offset % step_ms != 0 {
                return Err(format!("{symbol}: candle at {} is not on the {step_ms} ms grid", c.open_time));
            }
            rows[(offset / step_ms) as usize].bars[k] = Some(bar(c));
        }
    }
    Ok(Aligned { symbols, step_ms, rows })
}

/// Log returns of each symbol from the previous row to `row`: `None` where either candle is
/// missing (a gap is not bridged).
pub fn returns(previous: Option<&Row>, row: &Row) -> Vec<Option<f64>> {
    row.bars
        .iter()
        .enumerate()
        .map(|(k, now)| {
            let before = previous?.bars[k]?;
            let now = (*now)?;
            (before.close > 0.0 && now.close > 0.0).then(|| (now.close / before.close).ln())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Interval;

    fn candle(symbol: &str, t: i64, close: &str) -> Candle {
        let d = |s: &str| s.parse().unwrap();
        Candle {
            symbol: symbol.into(),
            interval: Interval::S1,
            open_time: t,
            close_time: t + 999,
            open: d(close),
            high: d(close),
            low: d(close),
            close: d(close),
            volume: d("1"),
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            closed: true,
        }
    }

    #[test]
    fn a_missing_candle_is_a_hole_not_a_shift() {
        let a = vec![candle("A", 0, "10"), candle("A", 1000, "11"), candle("A", 2000, "12"), candle("A", 3000, "13")];
        let b = vec![candle("B", 0, "20"), candle("B", 2000, "22"), candle("B", 3000, "23")];
        let al = align(&[("A".into(), a), ("B".into(), b)], 1000).unwrap();
        assert_eq!(al.rows.len(), 4);
        assert_eq!(al.rows[1].bars[1], None, "B has no candle at 1000");
        assert_eq!(al.rows[2].bars[1].unwrap().close, 22.0, "B's 2000 candle stays at 2000");
        let r2 = returns(Some(&al.rows[1]), &al.rows[2]);
        assert_eq!(r2[1], None, "no return across B's missing candle");
        assert!((r2[0].unwrap() - (12.0f64 / 11.0).ln()).abs() < 1e-15);
        let r3 = returns(Some(&al.rows[2]), &al.rows[3]);
        assert!((r3[1].unwrap() - (23.0f64 / 22.0).ln()).abs() < 1e-15, "and B resumes after it");
        assert!(align(&[("A".into(), vec![candle("A", 0, "1"), candle("A", 1500, "1")])], 1000).is_err());
    }
}
