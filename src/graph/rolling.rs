//! Rolling statistics over the last `window` steps of N assets, kept as running sums: each new
//! step adds its values and the step leaving the window subtracts its own, so a step costs O(N²)
//! for the pairwise correlations (and O(N) for the per-asset moments), whatever the window.
//! Pairs only count steps where both returns exist.

use std::collections::VecDeque;

/// Sums over the steps where both assets of a pair have a return.
#[derive(Debug, Clone, Copy, Default)]
struct PairSums {
    n: u32,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

/// Count, sum and sum of squares of one series.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    pub n: u32,
    pub s: f64,
    pub ss: f64,
}

impl Moments {
    fn add(&mut self, x: f64, sign: f64) {
        self.n = if sign > 0.0 { self.n + 1 } else { self.n - 1 };
        self.s += sign * x;
        self.ss += sign * x * x;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.s / self.n as f64)
    }

    /// Sample standard deviation.
    pub fn std(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        Some(((self.ss - self.s * self.s / n) / (n - 1.0)).max(0.0).sqrt())
    }
}

/// One step's inputs: each asset's return and (log) volume, `None` where it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub returns: Vec<Option<f64>>,
    pub volumes: Vec<Option<f64>>,
}

pub struct Rolling {
    assets: usize,
    window: usize,
    history: VecDeque<Step>,
    /// Upper triangle, `i < j`, row-major.
    pairs: Vec<PairSums>,
    pub returns: Vec<Moments>,
    pub volumes: Vec<Moments>,
}

/// Index of pair `(i, j)`, `i < j`, in the upper triangle of an `n × n` matrix.
fn tri(n: usize, i: usize, j: usize) -> usize {
    i * n - i * (i + 1) / 2 + (j - i - 1)
}

impl Rolling {
    pub fn new(assets: usize, window: usize) -> Rolling {
        Rolling {
            assets,
            window: window.max(2),
            history: VecDeque::with_capacity(window + 1),
            pairs: vec![PairSums::default(); assets * assets.saturating_sub(1) / 2],
            returns: vec![Moments::default(); assets],
            volumes: vec![Moments::default(); assets],
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Steps currently in the window.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// The oldest step still in the window.
    pub fn oldest(&self) -> Option<&Step> {
        self.history.front()
    }

    fn apply(&mut self, step: &Step, sign: f64) {
        let n = self.assets;
        for (i, r) in step.returns.iter().enumerate() {
            if let Some(x) = r {
                self.returns[i].add(*x, sign);
            }
        }
        for (i, v) in step.volumes.iter().enumerate() {
            if let Some(x) = v {
                self.volumes[i].add(*x, sign);
            }
        }
        for i in 0..n {
            let Some(x) = step.returns[i] else { continue };
            for j in i + 1..n {
                let Some(y) = step.returns[j] else { continue };
                let p = &mut self.pairs[tri(n, i, j)];
                p.n = if sign > 0.0 { p.n + 1 } else { p.n - 1 };
                p.sx += sign * x;
                p.sy += sign * y;
                p.sxx += sign * x * x;
                p.syy += sign * y * y;
                p.sxy += sign * x * y;
            }
        }
    }

    /// Adds a step; the oldest leaves once the window is full.
    pub fn push(&mut self, step: Step) {
        assert_eq!(step.returns.len(), self.assets, "one return per asset");
        self.apply(&step, 1.0);
        self.history.push_back(step);
        if self.history.len() > self.window {
            if let Some(old) = self.history.pop_front() {
                self.apply(&old, -1.0);
            }
        }
    }

    /// Pearson correlation of the returns of `i` and `j` over the window, from the steps where
    /// both have one; `None` with fewer than `min_periods` such steps or a constant series.
    pub fn correlation(&self, i: usize, j: usize, min_periods: usize) -> Option<f64> {
        if i == j {
            return Some(1.0);
        }
        let (a, b) = if i < j { (i, j) } else { (j, i) };
        let p = self.pairs[tri(self.assets, a, b)];
        if (p.n as usize) < min_periods.max(2) {
            return None;
        }
        let n = p.n as f64;
        let cov = n * p.sxy - p.sx * p.sy;
        let vx = n * p.sxx - p.sx * p.sx;
        let vy = n * p.syy - p.sy * p.sy;
        // Running sums leave rounding residue; a series constant over the window has none.
        let eps = 1e-12 * (n * p.sxx.abs() + p.sx * p.sx).max(f64::MIN_POSITIVE);
        if vx <= eps || vy <= 1e-12 * (n * p.syy.abs() + p.sy * p.sy).max(f64::MIN_POSITIVE) {
            return None;
        }
        Some((cov / (vx * vy).sqrt()).clamp(-1.0, 1.0))
    }

    /// The same correlation computed from the window's steps directly (two passes, centred):
    /// the reference the running sums are checked against.
    pub fn correlation_direct(&self, i: usize, j: usize, min_periods: usize) -> Option<f64> {
        let both: Vec<(f64, f64)> = self.history.iter().filter_map(|s| Some((s.returns[i]?, s.returns[j]?))).collect();
        pearson(&both, min_periods)
    }
}

/// Pearson correlation of pairs, centred two-pass; `None` with fewer than `min_periods` pairs or
/// a constant series.
pub fn pearson(xy: &[(f64, f64)], min_periods: usize) -> Option<f64> {
    if xy.len() < min_periods.max(2) {
        return None;
    }
    let n = xy.len() as f64;
    let (mx, my) = (xy.iter().map(|p| p.0).sum::<f64>() / n, xy.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut cov, mut vx, mut vy) = (0.0, 0.0, 0.0);
    for (x, y) in xy {
        cov += (x - mx) * (y - my);
        vx += (x - mx) * (x - mx);
        vy += (y - my) * (y - my);
    }
    (vx > 0.0 && vy > 0.0).then(|| (cov / (vx * vy).sqrt()).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triangle_indexes_are_dense_and_distinct() {
        let n = 7;
        let mut seen: Vec<usize> = (0..n).flat_map(|i| (i + 1..n).map(move |j| tri(n, i, j))).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n * (n - 1) / 2).collect::<Vec<_>>());
    }
}
