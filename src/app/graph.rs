//! `streamforge graph`: backfill the candles of many symbols at one interval into the store (as
//! `run` does, resuming), align them, and let the graph actor build and store correlation graph
//! snapshots; print a summary. `--offline` serves the bundled 100-pair 1h recording.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::run::{run, RunOptions};
use super::{AppError, NodeContext};
use crate::actors::graph::{GraphProgress, SnapshotSummary};
use crate::config::Config;
use crate::exchange::binance::backfill_kind;
use crate::graph::{align, Aligned, GraphConfig};
use crate::model::{format_ms, Interval};
use crate::supervision::{Strategy, SupervisorArgs, Tree, TreeFailed};

/// The bundled multi-asset recording `--offline` serves (100 USDT pairs, 1h).
pub const MARKETS_DATA: &str = "data/markets";

/// The candle interval graphs (and the trainer) use unless told otherwise.
pub const DEFAULT_INTERVAL: &str = "1h";

#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub config: Config,
    /// Upper-case symbols; empty means every symbol of the recording (offline only).
    pub symbols: Vec<String>,
    pub interval: Interval,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub offline_data: Option<PathBuf>,
    pub graph: GraphConfig,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphRun {
    pub name: String,
    pub symbols: usize,
    /// Grid steps (open times) the candles cover.
    pub steps: usize,
    /// Candles loaded from the exchange by this run (0 when the store had them).
    pub loaded: u64,
    pub snapshots: Vec<SnapshotSummary>,
    pub elapsed_secs: f64,
}

/// Backfills (resuming) the candles `data` names into the store, reads them back and aligns
/// them; returns the node context it opened and the aligned candles, with how many were loaded.
pub(super) async fn load_aligned(data: &GraphOptions) -> Result<(NodeContext, Aligned, u64), AppError> {
    let kind = backfill_kind(&format!("api_candles_{}", data.interval))
        .ok_or_else(|| AppError::Usage(format!("cannot load {} klines", data.interval)))?;
    let loaded = run(RunOptions {
        config: data.config.clone(),
        symbols: data.symbols.clone(),
        kind,
        start_ms: data.start_ms,
        end_ms: data.end_ms,
        offline_data: data.offline_data.clone(),
    })
    .await?;
    let ctx = NodeContext::open(data.config.clone()).await?;
    let mut series = Vec::with_capacity(loaded.symbols.len());
    for s in &loaded.symbols {
        let (from, to) = (data.start_ms.unwrap_or(i64::MIN), data.end_ms.unwrap_or(i64::MAX));
        series.push((s.symbol.clone(), ctx.store.candles(&s.collection, &s.symbol, from, to).await?));
    }
    let aligned = align(&series, data.interval.millis()).map_err(AppError::Usage)?;
    Ok((ctx, aligned, loaded.records))
}

/// Backfills, aligns and builds; returns what was built.
pub async fn build(opts: GraphOptions) -> Result<GraphRun, AppError> {
    let problems = opts.graph.problems();
    if !problems.is_empty() {
        return Err(AppError::Usage(problems.join("\n")));
    }
    let started = Instant::now();
    let (ctx, aligned, loaded) = load_aligned(&opts).await?;
    let aligned = Arc::new(aligned);
    let progress = Arc::new(watch::channel(GraphProgress::default()).0);
    let (id, queue_id) = (format!("graph:{}", opts.graph.name), format!("graph-{}", opts.graph.name));
    let spec = ctx.graph_child(id, queue_id, opts.graph.clone(), aligned.clone(), progress.clone());
    let mut tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("graph", Strategy::OneForOne, vec![spec])
    })
    .await?;
    tree.wait().await?;
    let p = progress.borrow().clone();
    if !p.done {
        return Err(TreeFailed("the graph builder stopped before the last row".into()).into());
    }
    Ok(GraphRun {
        name: opts.graph.name,
        symbols: aligned.symbols.len(),
        steps: aligned.rows.len(),
        loaded,
        snapshots: p.snapshots,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for GraphRun {
    /// A line per snapshot, thinned to at most 40 evenly spread, then the averages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<21} {:>8} {:>6} {:>7}  strongest pairs (correlation of log returns)",
            "time", "vertices", "edges", "density"
        )?;
        let stride = self.snapshots.len().div_ceil(40).max(1);
        for s in self.snapshots.iter().step_by(stride) {
            let pairs: Vec<String> = s.strongest.iter().map(|(a, b, c)| format!("{a}~{b} {c:+.2}")).collect();
            writeln!(
                f,
                "{:<21} {:>8} {:>6} {:>7.3}  {}",
                format_ms(s.time),
                s.vertices,
                s.edges,
                s.density,
                pairs.join(", ")
            )?;
        }
        let n = self.snapshots.len().max(1) as f64;
        write!(
            f,
            "{}: {} snapshots of {} symbols over {} steps, mean {:.0} edges (density {:.3}); {} candles loaded; {:.2} s",
            self.name,
            self.snapshots.len(),
            self.symbols,
            self.steps,
            self.snapshots.iter().map(|s| s.edges as f64).sum::<f64>() / n,
            self.snapshots.iter().map(|s| s.density).sum::<f64>() / n,
            self.loaded,
            self.elapsed_secs
        )
    }
}
