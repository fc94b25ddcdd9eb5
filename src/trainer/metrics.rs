//! What a direction forecast is worth: accuracy against the test fold's majority rate, balanced
//! accuracy, Matthews correlation, and the daily cross-sectional rank information coefficient
//! (Spearman correlation between scores and next returns across assets at each time, averaged
//! per day) with its information ratio (mean / standard deviation of the daily ICs).

use std::collections::BTreeMap;

/// One forecast: at `time`, for one asset, a score (higher: more likely up; the class is
/// `score > threshold`) and what happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub time: i64,
    pub score: f32,
    pub up: bool,
    pub next_return: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    pub n: usize,
    pub accuracy: f64,
    /// The share of the more frequent class among the labels: what always guessing it scores.
    pub majority_rate: f64,
    pub balanced_accuracy: f64,
    pub mcc: f64,
    /// Mean daily rank IC; `None` where the scores do not rank (a constant forecast).
    pub ic: Option<f64>,
    pub icir: Option<f64>,
}

const DAY_MS: i64 = 86_400_000;

/// Average ranks (ties share the mean rank).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|a, b| x[*a].total_cmp(&x[*b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        for k in i..=j {
            r[order[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = ranks(x).into_iter().zip(ranks(y)).collect();
    crate::graph::pearson(&pairs, 3)
}

/// Scores `forecasts`, classifying `score > threshold` as up.
pub fn score(forecasts: &[Forecast], threshold: f32) -> Scores {
    let (mut tp, mut tn, mut fp, mut fneg) = (0f64, 0f64, 0f64, 0f64);
    for f in forecasts {
        match (f.score > threshold, f.up) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
        }
    }
    let n = tp + tn + fp + fneg;
    let ups = tp + fneg;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let denom = ((tp + fp) * (tp + fneg) * (tn + fp) * (tn + fneg)).sqrt();
    let mut by_time: BTreeMap<i64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for f in forecasts {
        let e = by_time.entry(f.time).or_default();
        e.0.push(f.score as f64);
        e.1.push(f.next_return as f64);
    }
    let mut by_day: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, (s, r)) in &by_time {
        if let Some(ic) = spearman(s, r) {
            by_day.entry(t.div_euclid(DAY_MS)).or_default().push(ic);
        }
    }
    let daily: Vec<f64> = by_day.values().map(|v| v.iter().sum::<f64>() / v.len() as f64).collect();
    let ic = (!daily.is_empty()).then(|| daily.iter().sum::<f64>() / daily.len() as f64);
    let icir = ic.and_then(|m| {
        let sd = (daily.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (daily.len().max(2) - 1) as f64).sqrt();
        (sd > 0.0).then(|| m / sd)
    });
    Scores {
        n: n as usize,
        accuracy: ratio(tp + tn, n),
        majority_rate: ratio(ups.max(n - ups), n),
        balanced_accuracy: (ratio(tp, tp + fneg) + ratio(tn, tn + fp)) / 2.0,
        mcc: if denom > 0.0 { (tp * tn - fp * fneg) / denom } else { 0.0 },
        ic,
        icir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(time: i64, score: f32, next_return: f32) -> Forecast {
        Forecast { time, score, up: next_return > 0.0, next_return }
    }

    #[test]
    fn scores_follow_their_definitions() {
        // 4 up, 2 down; predictions: 3 of the ups right, 1 down right.
        let fc =
            [f(0, 0.9, 0.01), f(0, 0.8, 0.02), f(0, 0.7, 0.03), f(0, 0.2, 0.01), f(0, 0.6, -0.01), f(0, 0.1, -0.02)];
        let s = score(&fc, 0.5);
        assert_eq!(s.n, 6);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((s.majority_rate - 4.0 / 6.0).abs() < 1e-12);
        assert!((s.balanced_accuracy - (0.75 + 0.5) / 2.0).abs() < 1e-12);
        let mcc = (3.0 * 1.0 - 1.0 * 1.0) / ((4.0f64) * 4.0 * 2.0 * 2.0).sqrt();
        assert!((s.mcc - mcc).abs() < 1e-12);
        // Scores ranked 6,5,4,2,3,1 against returns ranked 3.5,5,6,3.5,2,1 (ties share a rank).
        let x = [6.0, 5.0, 4.0, 2.0, 3.0, 1.0];
        let y = [3.5, 5.0, 6.0, 3.5, 2.0, 1.0];
        let pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
        assert!((s.ic.unwrap() - crate::graph::pearson(&pairs, 3).unwrap()).abs() < 1e-12);
        assert_eq!(s.icir, None, "one day: no spread to divide by");
        let constant = score(&[f(0, 0.5, 0.01), f(0, 0.5, -0.01), f(0, 0.5, 0.02)], 0.4);
        assert_eq!(constant.ic, None, "a constant forecast does not rank");
        assert_eq!(constant.mcc, 0.0);
    }
}
