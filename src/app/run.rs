//! `streamforge run`: backfill klines, aggregate trades or trades of some symbols over a time range
//! into the store through the bus and connectors, then print a summary and exit. `--offline`
//! serves the bundled recording.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use std::sync::Arc;

use super::{start_replay, AppError, BackfillWorkflow, NodeContext};
use crate::actors::connector;
use crate::actors::loader::{self, Gap};
use crate::config::Config;
use crate::exchange::binance::{backfill_kind, SequencedKind};
use crate::model::{format_ms, now_ms};
use crate::replay::ReplayServer;
use crate::supervision::{Strategy, SupervisorArgs, Tree, TreeFailed};
use crate::workflow::{DataType, Status, Step, Task, Workflow, WorkflowSpec};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Config,
    /// Upper-case symbols; empty means every symbol of the recording (offline only).
    pub symbols: Vec<String>,
    /// What to load: klines of an interval, aggregate trades or trades.
    pub kind: Arc<dyn SequencedKind>,
    /// Range of times `[start, end)` (candle open times, trade times), epoch ms; offline
    /// defaults to the recording's span.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Serve recorded data from this folder on loopback instead of calling Binance.
    pub offline_data: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SymbolSummary {
    pub symbol: String,
    /// `api_candles_<interval>`, `api_agg_trades` or `api_trades`.
    #[serde(rename = "type")]
    pub job_type: String,
    pub queue_id: String,
    pub collection: String,
    /// Records received from the exchange.
    pub loaded: u64,
    /// Rows the workflow's collection holds after the run.
    pub stored: u64,
    /// Times (candle open time, trade time) of the first and the last record loaded.
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    /// Holes in the exchange's sequence: candles of periods without trades, trade ids that never
    /// came (`first_missing`/`last_missing` are open times or ids).
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub symbols: Vec<SymbolSummary>,
    pub elapsed_secs: f64,
    pub records: u64,
    pub records_per_sec: f64,
}

/// A run in progress. [`RunHandle::finish`] waits for the loaders, lets the connectors drain, and
/// stops the tree.
pub struct RunHandle {
    ctx: NodeContext,
    workflows: Vec<BackfillWorkflow>,
    tree: Tree,
    started: Instant,
    replay: Option<ReplayServer>,
}

fn usage(msg: impl Into<String>) -> AppError {
    AppError::Usage(msg.into())
}

/// Starts the run: replay server (offline), one loader + connector per symbol under a supervisor.
pub async fn start(opts: RunOptions) -> Result<RunHandle, AppError> {
    let mut problems = Vec::new();
    let (replay, data) = match &opts.offline_data {
        Some(dir) => {
            let (server, data) = start_replay(dir).await?;
            (Some(server), Some(data))
        }
        None => (None, None),
    };
    let symbols: Vec<String> = match (&data, opts.symbols.is_empty()) {
        (_, false) => opts.symbols.iter().map(|s| s.to_ascii_uppercase()).collect(),
        (Some(d), true) => d.recorded_symbols(&opts.kind.job_type()),
        (None, true) => {
            problems
                .push("--symbols is required when loading from Binance (e.g. --symbols BTCUSDT,ETHUSDT)".to_owned());
            Vec::new()
        }
    };
    if data.is_some() && symbols.is_empty() {
        problems.push(format!(
            "the recording has no {} ({}); try another --data or --interval",
            opts.kind.noun(),
            opts.kind.job_type()
        ));
    }
    // Offline, a bound left open is the recording's: each symbol's own span.
    let recorded = |symbol: &str| data.as_ref()?.recorded_range(symbol, opts.kind.as_ref());
    if opts.start_ms.is_none() && data.is_none() {
        problems.push("--start (or --time-range) is required when loading from Binance".to_owned());
    }
    let mut ranges = Vec::new();
    for symbol in &symbols {
        let span = recorded(symbol);
        let start = opts.start_ms.or(span.map(|s| s.0)).unwrap_or_default();
        let end = opts.end_ms.or(span.map(|s| s.1)).unwrap_or_else(now_ms);
        if start >= end && (opts.start_ms.is_some() || span.is_some()) {
            problems.push(format!(
                "{symbol}: the range is empty: start {} is not before end {}",
                format_ms(start),
                format_ms(end)
            ));
        }
        ranges.push((start, end));
    }
    if !problems.is_empty() {
        if let Some(r) = &replay {
            r.stop().await;
        }
        problems.dedup();
        return Err(usage(problems.join("\n")));
    }

    let mut config = opts.config.clone();
    if let Some(r) = &replay {
        config.binance.rest_url = r.rest_url();
    }
    let ctx = NodeContext::open(config).await?;
    let rest = ctx.binance_rest()?;
    let mut workflows = Vec::new();
    let (mut connectors, mut loaders) = (Vec::new(), Vec::new());
    for (symbol, (start_ms, end_ms)) in symbols.iter().zip(ranges) {
        let wf = BackfillWorkflow::new(
            None,
            symbol,
            opts.kind.clone(),
            (start_ms, end_ms),
            None,
            None,
            ctx.config.loader.page_limit,
        );
        let (connector, loader) = wf.children(&ctx, &rest, false).await?;
        connectors.push(connector);
        loaders.push(loader);
        ctx.store.put_workflow(&record(&wf)?).await?;
        workflows.push(wf);
    }
    // Connectors start before loaders and stop after them, so that they drain what was loaded.
    let families = vec![
        ctx.family("connectors", Strategy::OneForOne, connectors, true),
        ctx.family("loaders", Strategy::OneForOne, loaders, true),
    ];
    let tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("run", Strategy::OneForOne, families)
    })
    .await?;
    Ok(RunHandle { ctx, workflows, tree, started: Instant::now(), replay })
}

/// The workflow record of one symbol's backfill: a load and a store step, running.
fn record(wf: &BackfillWorkflow) -> Result<Workflow, AppError> {
    let job_type = wf.job.job_type();
    let spec = WorkflowSpec {
        symbols: vec![wf.job.symbol.clone()],
        types: vec![DataType::parse(&job_type).map_err(AppError::Usage)?],
        time_range: Some((wf.job.start_ms, wf.job.end_ms)),
        steps: vec![Step::Load, Step::Store],
        graph: Default::default(),
        dummy: None,
        train: None,
    };
    let now = now_ms();
    let mut rec = Workflow::new(wf.job.queue_id.clone(), spec, now);
    let task = |producer: String| {
        let mut t = Task::new(producer);
        t.symbol = Some(wf.job.symbol.clone());
        t.kind = Some(job_type.clone());
        t.collection = Some(wf.collection.clone());
        t
    };
    let (loader, connector) =
        (task(loader::producer_name(&job_type, &wf.job.symbol)), task(connector::producer_name(&wf.collection)));
    rec.start_step(Step::Load, vec![loader], now);
    rec.start_step(Step::Store, vec![connector], now);
    Ok(rec)
}

/// Runs to completion: [`start`] then [`RunHandle::finish`].
pub async fn run(opts: RunOptions) -> Result<RunSummary, AppError> {
    start(opts).await?.finish().await
}

impl RunHandle {
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn workflows(&self) -> &[BackfillWorkflow] {
        &self.workflows
    }

    pub fn context(&self) -> &NodeContext {
        &self.ctx
    }

    pub async fn finish(mut self) -> Result<RunSummary, AppError> {
        let outcome = self.drive().await;
        if let Some(r) = &self.replay {
            r.stop().await;
        }
        for wf in &self.workflows {
            if let Ok(Some(mut rec)) = self.ctx.store.workflow(&wf.job.queue_id).await {
                let now = now_ms();
                let counts = [
                    (Step::Load, wf.progress.borrow().records),
                    (Step::Store, wf.connector.written.load(Ordering::Acquire)),
                ];
                for (step, records) in counts {
                    if let Some(task) = rec.step_mut(step).and_then(|s| s.tasks.first_mut()) {
                        task.records_written = records;
                        task.status = if outcome.is_ok() { Status::Finished } else { task.status };
                    }
                    rec.settle(step, now);
                }
                if let Err(e) = &outcome {
                    rec.fail(Step::Load, &e.to_string(), now);
                }
                self.ctx.store.put_workflow(&rec).await?;
            }
        }
        outcome?;
        self.summary().await
    }

    async fn drive(&mut self) -> Result<(), AppError> {
        let mut progress: Vec<_> = self.workflows.iter().map(|w| w.progress.subscribe()).collect();
        let loaders_done = async {
            for rx in progress.iter_mut() {
                let _ = rx.wait_for(|p| p.done).await;
            }
        };
        tokio::select! {
            _ = loaders_done => {}
            ended = self.tree.wait() => {
                ended?;
                return Err(TreeFailed("the pipeline stopped before its loaders finished".into()).into());
            }
        }
        for wf in &self.workflows {
            wf.connector.drain.store(true, Ordering::Release);
        }
        self.tree.wait().await?;
        Ok(())
    }

    async fn summary(&self) -> Result<RunSummary, AppError> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let collections = self.ctx.store.collections().await?;
        let mut symbols = Vec::new();
        for wf in &self.workflows {
            let p = wf.progress.borrow().clone();
            let stored = collections.iter().find(|c| c.name == wf.collection).map_or(0, |c| c.rows);
            symbols.push(SymbolSummary {
                symbol: wf.job.symbol.clone(),
                job_type: wf.job.job_type(),
                queue_id: wf.job.queue_id.clone(),
                collection: wf.collection.clone(),
                loaded: p.records,
                stored,
                first_time: p.first_time,
                last_time: p.last_time,
                gaps: p.gaps,
            });
        }
        let records: u64 = symbols.iter().map(|s| s.loaded).sum();
        Ok(RunSummary { records, records_per_sec: records as f64 / elapsed.max(1e-9), elapsed_secs: elapsed, symbols })
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>8} {:>8} {:<21} {:<21} {:>5}  collection",
            "symbol", "loaded", "stored", "first", "last", "gaps"
        )?;
        for s in &self.symbols {
            writeln!(
                f,
                "{:<10} {:>8} {:>8} {:<21} {:<21} {:>5}  {}",
                s.symbol,
                s.loaded,
                s.stored,
                s.first_time.map(format_ms).unwrap_or_else(|| "-".into()),
                s.last_time.map(format_ms).unwrap_or_else(|| "-".into()),
                s.gaps.len(),
                s.collection
            )?;
            let Some(kind) = backfill_kind(&s.job_type) else { continue };
            for g in &s.gaps {
                writeln!(
                    f,
                    "    gap: {} → {} ({} {} missing at the exchange; not filled)",
                    kind.show(g.first_missing),
                    kind.show(g.last_missing),
                    g.missing,
                    kind.noun()
                )?;
            }
        }
        write!(f, "{} records in {:.2} s ({:.0} records/s)", self.records, self.elapsed_secs, self.records_per_sec)
    }
}
