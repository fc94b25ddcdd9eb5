//! The graph builder: steps through aligned candles, keeps rolling return correlations and
//! per-asset features, and every `every` steps emits a snapshot — vertices are all assets with
//! their features, edges the pairs whose |correlation| reaches the threshold and is among the
//! `top_k` strongest of either end, in both directions (the relation is symmetric), signed and
//! weighted by the correlation. A snapshot at time `t` uses candles up to and including the one
//! opening at `t`, and nothing later.

use super::align::{returns, Row};
use super::rolling::{Rolling, Step};
use crate::model::{Edge, GraphSnapshot, Vertex};

/// The vertex features, in order.
pub const FEATURES: [&str; 5] = ["ret_1", "ret_mean", "volatility", "log_volume_z", "present"];

#[derive(Debug, Clone, PartialEq)]
pub struct GraphConfig {
    /// The graph family, e.g. `corr_1h_w168`.
    pub name: String,
    /// Steps (candles) in the rolling window.
    pub window: usize,
    /// Steps with both returns a pair needs before it may get an edge.
    pub min_periods: usize,
    /// Least |correlation| of an edge.
    pub threshold: f64,
    /// Edges kept per vertex, strongest first (0: every pair over the threshold).
    pub top_k: usize,
    /// A snapshot every this many steps.
    pub every: usize,
}

impl GraphConfig {
    /// Every problem with the configuration, for a start-up error.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.window < 3 {
            p.push(format!("graph window {} is too short: at least 3 steps", self.window));
        }
        if self.min_periods < 2 || self.min_periods > self.window {
            p.push(format!("graph min_periods {} must be within 2..={}", self.min_periods, self.window));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            p.push(format!("graph threshold {} must be within 0..=1", self.threshold));
        }
        if self.every == 0 {
            p.push("graph every must be at least 1".into());
        }
        p
    }
}

pub struct GraphBuilder {
    config: GraphConfig,
    symbols: Vec<String>,
    step_ms: i64,
    rolling: Rolling,
    previous: Option<Row>,
    steps: u64,
}

impl GraphBuilder {
    pub fn new(config: GraphConfig, symbols: Vec<String>, step_ms: i64) -> GraphBuilder {
        let rolling = Rolling::new(symbols.len(), config.window);
        GraphBuilder { config, symbols, step_ms, rolling, previous: None, steps: 0 }
    }

    pub fn rolling(&self) -> &Rolling {
        &self.rolling
    }

    /// Takes the next row (rows must come in time order, one per grid step); returns a snapshot
    /// when one is due and the window is warm.
    pub fn step(&mut self, row: &Row) -> Option<GraphSnapshot> {
        let rets = returns(self.previous.as_ref(), row);
        let volumes = row.bars.iter().map(|b| b.map(|b| (1.0 + b.volume.max(0.0)).ln())).collect();
        self.rolling.push(Step { returns: rets.clone(), volumes });
        self.previous = Some(row.clone());
        self.steps += 1;
        let warm = self.rolling.len() >= self.config.min_periods;
        (warm && self.steps.is_multiple_of(self.config.every as u64)).then(|| self.snapshot(row.time, &rets))
    }

    fn features(&self, k: usize, latest: Option<f64>, latest_volume: Option<f64>) -> Vec<f64> {
        let r = &self.rolling.returns[k];
        let v = &self.rolling.volumes[k];
        let z = match (latest_volume, v.mean(), v.std()) {
            (Some(x), Some(m), Some(s)) if s > 0.0 => (x - m) / s,
            _ => 0.0,
        };
        vec![
            latest.unwrap_or(0.0),
            r.mean().unwrap_or(0.0),
            r.std().unwrap_or(0.0),
            z,
            if latest.is_some() { 1.0 } else { 0.0 },
        ]
    }

    fn snapshot(&self, time: i64, latest: &[Option<f64>]) -> GraphSnapshot {
        let n = self.symbols.len();
        let latest_volume: Vec<Option<f64>> = self
            .previous
            .as_ref()
            .map(|r| r.bars.iter().map(|b| b.map(|b| (1.0 + b.volume.max(0.0)).ln())).collect())
            .unwrap_or_else(|| vec![None; n]);
        let vertices = (0..n)
            .map(|k| Vertex {
                symbol: self.symbols[k].clone(),
                features: self.features(k, latest[k], latest_volume[k]),
            })
            .collect();
        // Each vertex's strongest neighbours over the threshold; a kept pair is an edge both ways.
        let mut keep = std::collections::BTreeMap::new();
        for i in 0..n {
            let mut near: Vec<(usize, f64)> = (0..n)
                .filter(|&j| j != i)
                .filter_map(|j| Some((j, self.rolling.correlation(i, j, self.config.min_periods)?)))
                .filter(|(_, c)| c.abs() >= self.config.threshold)
                .collect();
            near.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            if self.config.top_k > 0 {
                near.truncate(self.config.top_k);
            }
            for (j, c) in near {
                keep.insert((i, j), c);
                keep.insert((j, i), c);
            }
        }
        let edges = keep
            .into_iter()
            .map(|((i, j), weight)| Edge { from: self.symbols[i].clone(), to: self.symbols[j].clone(), weight })
            .collect();
        // The window's first return is the change into its oldest row: the data starts one step
        // before that.
        let window_start = time - self.rolling.len() as i64 * self.step_ms;
        GraphSnapshot {
            name: self.config.name.clone(),
            time,
            window_start,
            window_end: time + self.step_ms,
            feature_names: FEATURES.iter().map(|f| f.to_string()).collect(),
            vertices,
            edges,
        }
    }
}

/// Edges over possible directed pairs among the vertices present in the snapshot.
pub fn density(g: &GraphSnapshot) -> f64 {
    let present = g.vertices.iter().filter(|v| v.features.last().copied() == Some(1.0)).count() as f64;
    if present < 2.0 {
        return 0.0;
    }
    g.edges.len() as f64 / (present * (present - 1.0))
}
