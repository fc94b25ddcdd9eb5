//! `streamforge graph`: backfill the candles of many symbols at one interval into the store (as
//! `run` does, resuming), align them, and let the graph actor build and store correlation graph
//! snapshots; print a summary. `--offline` serves the bundled 100-pair 1h recording.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::args::{parse_time, render, Common, LogArgs};
use super::run::{backfill, RunOptions};
use super::{AppError, NodeContext};
use crate::actors::graph::{GraphProgress, SnapshotSummary};
use crate::config::Config;
use crate::exchange::binance::backfill_kind;
use crate::graph::{align, Aligned, GraphConfig};
use crate::model::{format_ms, Interval};
use crate::supervision::{Strategy, SupervisorArgs, Tree, TreeFailed};
use crate::workflow::GraphSettings;

/// The bundled multi-asset recording `--offline` serves (100 USDT pairs, 1h).
pub const MARKETS_DATA: &str = "data/markets";

/// The candle interval graphs (and the trainer) use unless told otherwise.
pub const DEFAULT_INTERVAL: &str = "1h";

/// Which candles, and how the correlation graph is built from them (`graph`, `train`).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Comma-separated symbols (offline default: every recorded one, in data/markets 100 pairs).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,
    #[arg(long, default_value = DEFAULT_INTERVAL)]
    pub interval: String,
    /// Start (inclusive) and end (exclusive) of the candles: YYYY-MM-DD[THH:MMZ] or epoch ms.
    #[arg(long)]
    pub start: Option<String>,
    #[arg(long)]
    pub end: Option<String>,
    /// Candles in the rolling correlation window.
    #[arg(long, default_value_t = GraphSettings::default().window)]
    pub window: usize,
    /// Least |correlation| of an edge.
    #[arg(long, default_value_t = GraphSettings::default().threshold)]
    pub threshold: f64,
    /// Edges kept per vertex, strongest first (0: all over the threshold).
    #[arg(long, default_value_t = GraphSettings::default().top_k)]
    pub top_k: usize,
}

impl DataArgs {
    /// The graph options these arguments describe, a snapshot every `every` candles; `name`
    /// defaults to `<prefix>_<interval>_w<window>`. Offline, the bundled 100 pairs by default.
    pub fn options(
        &self,
        common: &Common,
        config: Config,
        name: Option<&str>,
        prefix: &str,
        every: usize,
    ) -> Result<GraphOptions, AppError> {
        let interval: Interval = self.interval.parse().map_err(|e| AppError::Usage(format!("--interval: {e}")))?;
        let settings = GraphSettings { window: self.window, threshold: self.threshold, top_k: self.top_k, every };
        Ok(GraphOptions {
            offline_data: common.offline_dir_or(&config, PathBuf::from(MARKETS_DATA)),
            config,
            symbols: self.symbols.clone(),
            interval,
            start_ms: parse_time("start", &self.start)?,
            end_ms: parse_time("end", &self.end)?,
            graph: settings.config(name.map_or_else(|| settings.family(prefix, interval), str::to_owned)),
        })
    }
}

/// `streamforge graph`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub data: DataArgs,
    /// A snapshot every N candles.
    #[arg(long, default_value_t = GraphSettings::default().every)]
    pub every: usize,
    /// Graph family name (default corr_<interval>_w<window>).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `streamforge graph`: builds the graphs, returns the summary to print.
pub async fn run(args: GraphArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |_| {})?;
    let built = build(args.data.options(&args.common, config, args.name.as_deref(), "corr", args.every)?).await?;
    Ok(render(&built, args.json))
}

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
    let loaded = backfill(RunOptions {
        config: data.config.clone(),
        symbols: data.symbols.clone(),
        kind,
        start_ms: data.start_ms,
        end_ms: data.end_ms,
        offline_data: data.offline_data.clone(),
        archive: false,
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
