//! Samples for next-interval direction prediction, built only from what is known at each time:
//! at step `t` the graph builder's snapshot (features from the rolling window ending at `t`,
//! edges from correlations of returns in that window) for the last `lookback` steps, and as label
//! the sign of each asset's return from `t` to `t + 1`. Nothing from after `t` enters a sample's
//! inputs; scalers are fitted later on training samples only.

use std::collections::{HashMap, VecDeque};

use crate::graph::align::returns;
use crate::graph::{Aligned, GraphBuilder, GraphConfig};

/// One prediction time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Open time of the last candle the inputs use.
    pub time: i64,
    /// Features of the last `lookback` steps, oldest first: `[step][asset][feature]`, flattened.
    pub features: Vec<f32>,
    /// Edges of the graph at `time`: (from, to, weight), asset indexes.
    pub edges: Vec<(u16, u16, f32)>,
    /// Each asset's log return from `time` to the next step; `NaN` where unknown.
    pub next_return: Vec<f32>,
}

impl Sample {
    /// 1 where the next return is positive, 0 where not; `None` where unknown.
    pub fn label(&self, asset: usize) -> Option<bool> {
        let r = self.next_return[asset];
        (!r.is_nan()).then_some(r > 0.0)
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub symbols: Vec<String>,
    pub feature_names: Vec<String>,
    pub lookback: usize,
    pub step_ms: i64,
    pub samples: Vec<Sample>,
    /// The graph builder's window: how far back a sample's inputs reach, besides `lookback`.
    pub window: usize,
}

impl Dataset {
    pub fn assets(&self) -> usize {
        self.symbols.len()
    }

    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// Steps of history one sample's inputs depend on.
    pub fn reach(&self) -> usize {
        self.window + self.lookback
    }
}

/// Steps the graph builder through `aligned` (a snapshot every step) and collects a sample at
/// every step with `lookback` consecutive snapshots behind it and a next step after it — and,
/// with `latest`, also at the last step, whose next returns are unknown (`NaN`): the one to
/// predict.
pub fn build(aligned: &Aligned, graph: &GraphConfig, lookback: usize, latest: bool) -> Dataset {
    let lookback = lookback.max(1);
    let config = GraphConfig { every: 1, ..graph.clone() };
    let mut builder = GraphBuilder::new(config, aligned.symbols.clone(), aligned.step_ms);
    let index: HashMap<&str, u16> = aligned.symbols.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
    // The last `lookback` snapshots: (time, features).
    let mut recent: VecDeque<(i64, Vec<f32>)> = VecDeque::with_capacity(lookback + 1);
    let (mut samples, mut feature_names) = (Vec::new(), Vec::new());
    for (k, row) in aligned.rows.iter().enumerate() {
        let Some(g) = builder.step(row) else { continue };
        feature_names.clone_from(&g.feature_names);
        let features = g.vertices.iter().flat_map(|v| v.features.iter().map(|x| *x as f32)).collect();
        recent.push_back((row.time, features));
        if recent.len() > lookback {
            recent.pop_front();
        }
        let next = aligned.rows.get(k + 1);
        if next.is_none() && !latest {
            continue;
        }
        // Consecutive snapshots only: a sample does not straddle a stretch without one.
        let consecutive = recent.iter().zip(recent.iter().skip(1)).all(|(a, b)| b.0 - a.0 == aligned.step_ms);
        if recent.len() < lookback || !consecutive {
            continue;
        }
        let next_return = match next {
            Some(next) => returns(Some(row), next).into_iter().map(|r| r.map_or(f32::NAN, |r| r as f32)).collect(),
            None => vec![f32::NAN; aligned.symbols.len()],
        };
        samples.push(Sample {
            time: row.time,
            features: recent.iter().flat_map(|(_, f)| f.iter().copied()).collect(),
            edges: g.edges.iter().map(|e| (index[e.from.as_str()], index[e.to.as_str()], e.weight as f32)).collect(),
            next_return,
        });
    }
    Dataset {
        symbols: aligned.symbols.clone(),
        feature_names,
        lookback,
        step_ms: aligned.step_ms,
        samples,
        window: graph.window,
    }
}
