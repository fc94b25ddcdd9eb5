//! `streamforge run`: backfill klines, aggregate trades or trades of some symbols over a time range
//! into the store through the bus and connectors, then print a summary and exit. `--offline`
//! serves the bundled recording.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use std::sync::Arc;

use super::args::{parse_time, render, Common, LogArgs};
use super::{start_replay, AppError, BackfillWorkflow, NodeContext};
use crate::actors::connector;
use crate::actors::loader::{self, Gap};
use crate::config::Config;
use crate::exchange::binance::{backfill_kind, ArchiveReport, SequencedKind};
use crate::model::{format_ms, now_ms, parse_time_range, Interval};
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
    /// Offline: take whole days and months from the replay server's archive (ZIP + CHECKSUM, as
    /// data.binance.vision serves them), REST only for the rest.
    pub archive: bool,
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
    /// What came from Binance's archive rather than REST (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveReport>,
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

/// Symbols the exchange does not list (`exchangeInfo`) are refused before any work starts, each
/// named: Binance would answer every request for them with "Invalid symbol". An exchange that
/// cannot answer now (unreachable, 5xx, 429) is not a refusal: the loaders then back off as usual.
async fn check_listed(rest: &crate::exchange::binance::BinanceRest, symbols: &[String]) -> Result<(), AppError> {
    let listed: std::collections::BTreeSet<String> = match rest.symbols().await {
        Ok(listed) => listed.into_iter().map(|(s, _)| s).collect(),
        Err(e) if !e.is_terminal() => {
            tracing::warn!(error = %e, "Cannot read exchangeInfo now; the symbols are not checked before loading.");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let unknown: Vec<&str> = symbols.iter().filter(|s| !listed.contains(*s)).map(String::as_str).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(usage(format!("not listed by the exchange (exchangeInfo): {}", unknown.join(", "))))
}

/// Starts the run: replay server (offline), one loader + connector per symbol under a supervisor.
pub async fn start(opts: RunOptions) -> Result<RunHandle, AppError> {
    let mut problems = Vec::new();
    let (replay, data) = match &opts.offline_data {
        Some(dir) => {
            let (server, data) = start_replay(dir, 0.0).await?;
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
        config.binance.archive_url = opts.archive.then(|| r.archive_url());
    }
    let ctx = NodeContext::open(config).await?;
    let rest = ctx.binance_rest()?;
    if !opts.symbols.is_empty() {
        if let Err(e) = check_listed(&rest, &symbols).await {
            if let Some(r) = &replay {
                r.stop().await;
            }
            return Err(e);
        }
    }
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
        derive: Vec::new(),
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
pub async fn backfill(opts: RunOptions) -> Result<RunSummary, AppError> {
    start(opts).await?.finish().await
}

/// `streamforge run`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Comma-separated symbols, e.g. BTCUSDT,ETHUSDT (offline default: all recorded).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// What to load: klines (at --interval), aggTrades (aggregate trades) or trades.
    #[arg(long, value_enum, default_value_t = RunKind::Klines)]
    pub kind: RunKind,
    /// Kline interval: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// Start (inclusive): YYYY-MM-DD, YYYY-MM-DDTHH:MMZ or epoch ms.
    #[arg(long)]
    pub start: Option<String>,
    /// End (exclusive), same forms; default: now (offline: end of the recording).
    #[arg(long)]
    pub end: Option<String>,
    /// Both at once, as the seeds write it: 2024-08-01:2024-08-02.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub time_range: Option<String>,
    /// Binance REST base URL (overrides binance.rest_url).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Binance's data archive (overrides binance.archive_url; "" for REST only).
    #[arg(long)]
    pub archive_url: Option<String>,
    /// Offline: take whole months and days from the replay server's archive (ZIP + CHECKSUM files
    /// built from the recording), REST only for the rest.
    #[arg(long)]
    pub archive: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `streamforge run --kind` (and `repair --kind`) loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunKind {
    Klines,
    #[value(name = "aggTrades")]
    AggTrades,
    Trades,
}

impl RunKind {
    /// The sequenced kind of this `--kind` at `--interval` (klines only).
    pub fn sequenced(self, interval: &str) -> Result<Arc<dyn SequencedKind>, AppError> {
        let interval: Interval = interval.parse().map_err(|e| usage(format!("--interval: {e}")))?;
        let job_type = match self {
            RunKind::Klines => format!("api_candles_{interval}"),
            RunKind::AggTrades => "api_agg_trades".into(),
            RunKind::Trades => "api_trades".into(),
        };
        backfill_kind(&job_type).ok_or_else(|| usage(format!("cannot load {job_type}")))
    }
}

impl RunArgs {
    /// The run these arguments ask for, on `config`.
    pub fn options(&self, config: Config) -> Result<RunOptions, AppError> {
        let kind = self.kind.sequenced(&self.interval)?;
        let (start_ms, end_ms) = match &self.time_range {
            Some(r) => {
                parse_time_range(r).map(|(a, b)| (Some(a), Some(b))).map_err(|e| usage(format!("--time-range: {e}")))?
            }
            None => (parse_time("start", &self.start)?, parse_time("end", &self.end)?),
        };
        Ok(RunOptions {
            offline_data: self.common.offline_dir(&config),
            archive: self.archive,
            config,
            symbols: self.symbols.clone(),
            kind,
            start_ms,
            end_ms,
        })
    }
}

/// `streamforge run`: backfills with a progress bar per symbol on a terminal, returns the summary
/// to print.
pub async fn run(args: RunArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |c| {
        if let Some(url) = &args.base_url {
            c.binance.rest_url = url.clone();
        }
        if let Some(url) = &args.archive_url {
            c.binance.archive_url = Some(url.clone());
        }
    })?;
    let handle = start(args.options(config)?).await?;
    // Hidden when stderr is not a terminal (CI, a pipe); not drawn under --json.
    let bars = (!args.json).then(|| progress_bars(handle.workflows()));
    let summary = handle.finish().await;
    if let Some(bars) = bars {
        bars.abort();
    }
    Ok(render(&summary?, args.json))
}

/// Draws each workflow's progress (the share of its time range loaded) until aborted.
fn progress_bars(workflows: &[BackfillWorkflow]) -> tokio::task::JoinHandle<()> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {percent:>3}% {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let tracked: Vec<_> = workflows
        .iter()
        .map(|wf| {
            let (start, end) = (wf.job.start_ms, wf.job.end_ms);
            let bar = multi.add(ProgressBar::new((end - start).max(1) as u64).with_style(style.clone()));
            bar.set_prefix(wf.job.symbol.clone());
            (bar, start, wf.job.kind.noun(), wf.progress.subscribe())
        })
        .collect();
    tokio::spawn(async move {
        let _multi = multi;
        loop {
            for (bar, start, noun, rx) in &tracked {
                let p = rx.borrow().clone();
                bar.set_position(p.last_time.map_or(0, |t| (t - start).max(0) as u64));
                bar.set_message(format!("{} {noun}, {} gaps", p.records, p.gaps.len()));
                if p.done {
                    bar.finish();
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
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
        // What the others loaded is stored; the run still fails, naming each refusal.
        let refused: Vec<String> = self
            .workflows
            .iter()
            .filter_map(|wf| Some(format!("{}: {}", wf.job.symbol, wf.progress.borrow().failed.clone()?)))
            .collect();
        if !refused.is_empty() {
            return Err(AppError::JobFailed(refused.join("\n")));
        }
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
                archive: wf.archive_report(),
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
            if let Some(a) = &s.archive {
                writeln!(f, "    archive: {} {} from {} file(s) of {}", a.records, kind.noun(), a.files, a.url)?;
                if !a.missing.is_empty() {
                    writeln!(f, "    archive lacks (loaded over REST): {}", a.missing.join(", "))?;
                }
                for (file, why) in &a.rejected {
                    writeln!(f, "    archive file rejected, nothing of it stored (loaded over REST): {file}: {why}")?;
                }
            }
        }
        write!(f, "{} records in {:.2} s ({:.0} records/s)", self.records, self.elapsed_secs, self.records_per_sec)
    }
}
