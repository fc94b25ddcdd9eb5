//! The `streamforge` binary: parses arguments, sets up logging, calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use streamforge::app::{self, node, run, AppError};
use streamforge::config::{self, Config};
use streamforge::exchange::binance::backfill_kind;
use streamforge::model::{parse_date_or_time_ms, parse_time_range, Interval};
use streamforge::replay::ReplayFaults;
use streamforge::workflow::GraphSettings;

#[derive(Parser)]
#[command(name = "streamforge", version, about = "Binance market data → bus → store, run by supervised actors.")]
struct Cli {
    /// Log JSON lines (for a cluster's log shipper) instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    /// Log filter, e.g. `info` or `streamforge=debug`.
    #[arg(long, global = true, env = "STREAMFORGE_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store URL, e.g. sqlite://./data/streamforge.db (overrides store.url).
    #[arg(long)]
    store: Option<String>,
    /// Admin HTTP address, e.g. 127.0.0.1:9400 (overrides node.admin_addr).
    #[arg(long)]
    admin_addr: Option<String>,
    /// Bus URL: memory:// or kafka://HOST:PORT (overrides bus.url).
    #[arg(long)]
    bus: Option<String>,
    /// Serve recorded data on loopback instead of calling Binance.
    #[arg(long)]
    offline: bool,
    /// Recorded data folder for --offline (default: the bundled data/sample).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

/// Which candles, and how the correlation graph is built from them (graph, train).
#[derive(Args, Clone)]
struct DataArgs {
    /// Comma-separated symbols (offline default: every recorded one, in data/markets 100 pairs).
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    #[arg(long, default_value = app::graph::DEFAULT_INTERVAL)]
    interval: String,
    /// Start (inclusive) and end (exclusive) of the candles: YYYY-MM-DD[THH:MMZ] or epoch ms.
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    end: Option<String>,
    /// Candles in the rolling correlation window.
    #[arg(long, default_value_t = GraphSettings::default().window)]
    window: usize,
    /// Least |correlation| of an edge.
    #[arg(long, default_value_t = GraphSettings::default().threshold)]
    threshold: f64,
    /// Edges kept per vertex, strongest first (0: all over the threshold).
    #[arg(long, default_value_t = GraphSettings::default().top_k)]
    top_k: usize,
}

impl Default for DataArgs {
    /// The flags' defaults (what `predict` builds its graph options from).
    fn default() -> Self {
        let g = GraphSettings::default();
        DataArgs {
            symbols: Vec::new(),
            interval: app::graph::DEFAULT_INTERVAL.into(),
            start: None,
            end: None,
            window: g.window,
            threshold: g.threshold,
            top_k: g.top_k,
        }
    }
}

impl DataArgs {
    /// The graph options these arguments describe; `name` defaults to `<prefix>_<interval>_w<window>`.
    fn options(
        &self,
        common: &Common,
        cfg: Config,
        name: Option<&str>,
        prefix: &str,
        every: usize,
    ) -> Result<app::graph::GraphOptions, AppError> {
        let interval: Interval = self.interval.parse().map_err(|e| AppError::Usage(format!("--interval: {e}")))?;
        let settings = GraphSettings { window: self.window, threshold: self.threshold, top_k: self.top_k, every };
        let offline_data = (common.offline || cfg.node.offline)
            .then(|| common.data.clone().unwrap_or_else(|| PathBuf::from(app::graph::MARKETS_DATA)));
        Ok(app::graph::GraphOptions {
            config: cfg,
            symbols: self.symbols.clone(),
            interval,
            start_ms: parse_time("start", &self.start)?,
            end_ms: parse_time("end", &self.end)?,
            offline_data,
            graph: settings.config(name.map_or_else(|| settings.family(prefix, interval), str::to_owned)),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Backfill klines into the store through the bus, print a summary, exit.
    Run {
        #[command(flatten)]
        common: Common,
        /// Comma-separated symbols, e.g. BTCUSDT,ETHUSDT (offline default: all recorded).
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// What to load: klines (at --interval), aggTrades (aggregate trades) or trades.
        #[arg(long, value_enum, default_value_t = RunKind::Klines)]
        kind: RunKind,
        /// Kline interval: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M.
        #[arg(long, default_value = "1m")]
        interval: String,
        /// Start (inclusive): YYYY-MM-DD, YYYY-MM-DDTHH:MMZ or epoch ms.
        #[arg(long)]
        start: Option<String>,
        /// End (exclusive), same forms; default: now (offline: end of the recording).
        #[arg(long)]
        end: Option<String>,
        /// Both at once, as the seeds write it: 2024-08-01:2024-08-02.
        #[arg(long, conflicts_with_all = ["start", "end"])]
        time_range: Option<String>,
        /// Binance REST base URL (overrides binance.rest_url).
        #[arg(long)]
        base_url: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the long-running actor node until SIGTERM.
    Node {
        #[command(flatten)]
        common: Common,
    },
    /// Run a node with only the dummy actor (ping/pong, simulated loading, failures).
    Dummy {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "dummy")]
        queue_id: String,
        /// Emit `loading` events every tick.
        #[arg(long)]
        simulate_loading: bool,
        /// Send an `error` event and fail after N ticks.
        #[arg(long, value_name = "N")]
        fail_after: Option<u32>,
        #[arg(long, default_value_t = 1000)]
        tick_ms: u64,
    },
    /// Keep one symbol's local order book from its depth stream; print it when the stream ends.
    Book {
        #[command(flatten)]
        common: Common,
        /// Symbol, e.g. ETHUSDT.
        #[arg(long)]
        symbol: String,
        /// Levels a side to print.
        #[arg(long, default_value_t = 20)]
        depth: usize,
        /// Print the book as JSON: {"symbol", "last_update_id", "bids": [[price, qty], …], "asks": …}.
        #[arg(long)]
        json: bool,
        /// Stop after this many depth events (default: when the stream ends, or on Ctrl-C/SIGTERM).
        #[arg(long, value_name = "N")]
        events: Option<u64>,
    },
    /// Build correlation graphs of many symbols' candles (backfilling them first), print a summary.
    Graph {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        data: DataArgs,
        /// A snapshot every N candles.
        #[arg(long, default_value_t = GraphSettings::default().every)]
        every: usize,
        /// Graph family name (default corr_<interval>_w<window>).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Train the temporal GNN with a walk-forward evaluation against baselines; save and register it
    /// (needs the `trainer` feature).
    Train {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        data: DataArgs,
        /// Snapshots (steps) of history per sample.
        #[arg(long, default_value_t = 8)]
        lookback: usize,
        /// Samples per walk-forward part: train, validation, test (default 12, 2 and 2 weeks of hours).
        #[arg(long, default_value_t = 2016)]
        train: usize,
        #[arg(long, default_value_t = 336)]
        validation: usize,
        #[arg(long, default_value_t = 336)]
        test: usize,
        /// Samples left out before validation and before test (default: window + lookback + 1).
        #[arg(long)]
        purge: Option<usize>,
        #[arg(long, default_value_t = 16)]
        hidden: usize,
        #[arg(long, default_value_t = 15)]
        epochs: usize,
        #[arg(long, default_value_t = 3)]
        patience: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 0.001)]
        learning_rate: f64,
        /// Seeds per model (seed, seed + 1, …).
        #[arg(long, default_value_t = 5)]
        seeds: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where models go: file://DIR or s3://BUCKET/PREFIX (S3 settings from AWS_* variables).
        #[arg(long, default_value = "file://./models")]
        artifacts: String,
        /// Model family name (default tgcn_<interval>_w<window>).
        #[arg(long)]
        name: Option<String>,
        /// cpu, cuda (falls back to the CPU, saying why, where CUDA cannot run) or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Score the latest candles with a saved model (needs the `trainer` feature).
    Predict {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
        /// Default: the newest registered version.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long, default_value = "file://./models")]
        artifacts: String,
        #[arg(long)]
        json: bool,
    },
    /// Talk to a node's admin API: workflows, ping, the supervision tree.
    Ctl {
        /// The node's admin API.
        #[arg(long, global = true, env = "STREAMFORGE_URL", default_value = "http://127.0.0.1:9400")]
        url: String,
        /// Bearer token for mutating requests.
        #[arg(long, global = true, env = "STREAMFORGE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the API's JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Serve recorded Binance data over Binance's REST and WebSocket API.
    ReplayServer {
        /// Folder laid out like data/sample (klines/, ws/, trades/).
        #[arg(long, default_value = "data/sample")]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:9401")]
        addr: String,
        /// WebSocket pace: 1 = as recorded, 10 = ten times faster, 0 = no waiting.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Fault: delay every REST answer by this many milliseconds (a slow exchange).
        #[arg(long, default_value_t = 0)]
        rest_delay_ms: u64,
        /// Fault: answer every N-th REST request with 429 and `Retry-After: --retry-after`.
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
        #[arg(long, default_value_t = 1, value_name = "SECONDS")]
        retry_after: u64,
        /// Fault: answer every N-th REST request with 503.
        #[arg(long, value_name = "N")]
        server_error_every: Option<u64>,
    },
}

/// File and environment, then command-line overrides (`tweak`), validated once more.
fn load_config(common: &Common, cli: &Cli, tweak: impl FnOnce(&mut Config)) -> Result<Config, AppError> {
    let mut cfg =
        config::load(common.config.as_deref(), std::env::vars()).map_err(|e| AppError::Usage(e.to_string()))?;
    if let Some(s) = &common.store {
        cfg.store.url = s.clone();
    }
    if let Some(a) = &common.admin_addr {
        cfg.node.admin_addr = a.clone();
    }
    if let Some(b) = &common.bus {
        cfg.bus.url = b.clone();
    }
    if let Some(level) = &cli.log_level {
        cfg.log.level = level.clone();
    }
    cfg.log.json |= cli.log_json;
    tweak(&mut cfg);
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(AppError::Usage(config::ConfigErrors(problems).to_string()));
    }
    streamforge::log::init(cfg.log.json, &cfg.log.level);
    Ok(cfg)
}

fn offline_dir(common: &Common, cfg: &Config) -> Option<PathBuf> {
    (common.offline || cfg.node.offline)
        .then(|| common.data.clone().unwrap_or_else(|| cfg.node.offline_data.clone().into()))
}

fn parse_time(flag: &str, v: &Option<String>) -> Result<Option<i64>, AppError> {
    v.as_deref().map(parse_date_or_time_ms).transpose().map_err(|e| AppError::Usage(format!("--{flag}: {e}")))
}

async fn execute(cli: Cli) -> Result<(), AppError> {
    match &cli.command {
        Command::Run { common, symbols, kind, interval, start, end, time_range, base_url, json } => {
            let cfg = load_config(common, &cli, |c| {
                if let Some(url) = base_url {
                    c.binance.rest_url = url.clone();
                }
            })?;
            let interval: Interval = interval.parse().map_err(|e| AppError::Usage(format!("--interval: {e}")))?;
            let job_type = match kind {
                RunKind::Klines => format!("api_candles_{interval}"),
                RunKind::AggTrades => "api_agg_trades".into(),
                RunKind::Trades => "api_trades".into(),
            };
            let kind = backfill_kind(&job_type).ok_or_else(|| AppError::Usage(format!("cannot load {job_type}")))?;
            let (start_ms, end_ms) = match time_range {
                Some(r) => parse_time_range(r)
                    .map(|(a, b)| (Some(a), Some(b)))
                    .map_err(|e| AppError::Usage(format!("--time-range: {e}")))?,
                None => (parse_time("start", start)?, parse_time("end", end)?),
            };
            let opts = run::RunOptions {
                offline_data: offline_dir(common, &cfg),
                config: cfg,
                symbols: symbols.clone(),
                kind,
                start_ms,
                end_ms,
            };
            let handle = run::start(opts).await?;
            // A bar per symbol on a terminal (hidden when stderr is not one, e.g. in CI or a pipe).
            let bars = (!*json).then(|| progress_bars(handle.workflows()));
            let summary = handle.finish().await;
            if let Some(bars) = bars {
                bars.abort();
            }
            print(&summary?, *json);
            Ok(())
        }
        Command::Graph { common, data, every, name, json } => {
            let cfg = load_config(common, &cli, |_| {})?;
            let built = app::graph::build(data.options(common, cfg, name.as_deref(), "corr", *every)?).await?;
            print(&built, *json);
            Ok(())
        }
        #[cfg(feature = "trainer")]
        Command::Train {
            common,
            data,
            lookback,
            train,
            validation,
            test,
            purge,
            hidden,
            epochs,
            patience,
            batch_size,
            learning_rate,
            seeds,
            seed,
            artifacts,
            name,
            device,
            json,
        } => {
            use streamforge::trainer::{evaluate::EvalConfig, fit::FitConfig, split::SplitConfig};
            let cfg = load_config(common, &cli, |_| {})?;
            let opts = data.options(common, cfg, None, "corr", 1)?;
            let name = name.clone().unwrap_or_else(|| {
                GraphSettings { window: data.window, ..GraphSettings::default() }.family("tgcn", opts.interval)
            });
            let purge = purge.unwrap_or(data.window + lookback + 1);
            let run = app::train::train(app::train::TrainOptions {
                data: opts,
                lookback: *lookback,
                eval: EvalConfig {
                    split: SplitConfig { train: *train, validation: *validation, test: *test, purge },
                    fit: FitConfig {
                        hidden: *hidden,
                        epochs: *epochs,
                        patience: *patience,
                        batch_size: *batch_size,
                        learning_rate: *learning_rate,
                        seed: *seed,
                    },
                    seeds: *seeds,
                },
                artifacts: artifacts.clone(),
                name,
                device: device.clone(),
            })
            .await?;
            print(&run, *json);
            Ok(())
        }
        #[cfg(feature = "trainer")]
        Command::Predict { common, name, version, artifacts, json } => {
            let cfg = load_config(common, &cli, |_| {})?;
            let opts = DataArgs::default().options(common, cfg, Some(name), "corr", 1)?;
            let run = app::train::predict(opts, artifacts, name, *version).await?;
            print(&run, *json);
            Ok(())
        }
        #[cfg(not(feature = "trainer"))]
        Command::Train { .. } | Command::Predict { .. } => Err(AppError::Usage(
            "this binary was built without the trainer: cargo build --release --features trainer".into(),
        )),
        Command::Node { common } => {
            let cfg = load_config(common, &cli, |_| {})?;
            let offline = offline_dir(common, &cfg);
            node::Node::start(cfg, offline).await?.run_until(node::shutdown_signal()).await
        }
        Command::Dummy { common, queue_id, simulate_loading, fail_after, tick_ms } => {
            let cfg = load_config(common, &cli, |c| {
                c.dummy = config::DummyConfig {
                    enabled: true,
                    queue_id: queue_id.clone(),
                    simulate_loading: *simulate_loading,
                    fail_after: fail_after.unwrap_or(0),
                    tick_ms: *tick_ms,
                };
            })?;
            node::Node::start(cfg, None).await?.run_until(node::shutdown_signal()).await
        }
        Command::Book { common, symbol, depth, json, events } => {
            let cfg = load_config(common, &cli, |_| {})?;
            let opts = app::book::BookOptions {
                offline_data: offline_dir(common, &cfg),
                config: cfg,
                symbol: symbol.to_ascii_uppercase(),
                depth: *depth,
                events: *events,
            };
            print(&app::book::run(opts, node::shutdown_signal()).await?, *json);
            Ok(())
        }
        Command::Ctl { url, token, json, command } => {
            let opts = app::ctl::CtlOptions {
                url: url.clone(),
                token: token.clone(),
                json: *json,
                command: command.options(),
            };
            let out = app::ctl::run(opts).await?;
            if !out.is_empty() {
                println!("{out}");
            }
            Ok(())
        }
        Command::ReplayServer {
            data,
            addr,
            speed,
            rest_delay_ms,
            rate_limit_every,
            retry_after,
            server_error_every,
        } => {
            streamforge::log::init(cli.log_json, cli.log_level.as_deref().unwrap_or("info"));
            let faults = ReplayFaults {
                rest_delay: std::time::Duration::from_millis(*rest_delay_ms),
                rate_limit_every: *rate_limit_every,
                retry_after_secs: *retry_after,
                server_error_every: *server_error_every,
                ..Default::default()
            };
            let opts =
                app::replay_server::ReplayOptions { data: data.clone(), addr: addr.clone(), speed: *speed, faults };
            app::replay_server::run(opts, |line| println!("{line}"), node::shutdown_signal()).await
        }
    }
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Workflows: start, list, show, stop.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Send a ping to a worker target and print the pongs with their round-trip times.
    Ping {
        /// e.g. dummy-service (or dummy), loader-producer, arango-connector, graph-builder.
        target: String,
        /// Only the workers of this workflow (default: all).
        #[arg(long)]
        queue_id: Option<String>,
        /// Exit non-zero when no pong comes.
        #[arg(long)]
        expect_pong: bool,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// queue-events as they arrive (for --timeout-ms, or until Ctrl-C with --follow).
    Events {
        #[arg(long)]
        queue_id: Option<String>,
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// The node's supervision tree.
    Tree,
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Start a workflow, e.g. --symbols BTCUSDT,ETHUSDT --types api_candles_1m --range 2024-08-01:2024-09-01.
    Start {
        #[arg(long, value_delimiter = ',', required = true)]
        symbols: Vec<String>,
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// START:END (end exclusive); offline nodes load each symbol's recorded span without it.
        #[arg(long)]
        range: Option<String>,
        /// Steps from load,store,graph,train (default: load,store, plus graph for candles).
        #[arg(long, value_delimiter = ',')]
        steps: Option<Vec<String>>,
    },
    /// List workflows, newest first.
    List {
        /// pending, running, finished, failed or stopped.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// One workflow's steps; --watch redraws them until it ends.
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
    },
    /// Stop a workflow and its workers.
    Stop { id: String },
}

impl CtlCommand {
    fn options(&self) -> app::ctl::CtlCommand {
        use app::ctl::CtlCommand as C;
        match self {
            CtlCommand::Workflows { command } => match command {
                WorkflowsCommand::Start { symbols, types, range, steps } => C::Start {
                    symbols: symbols.clone(),
                    types: types.clone(),
                    range: range.clone(),
                    steps: steps.clone(),
                },
                WorkflowsCommand::List { status, limit, offset } => {
                    C::List { status: status.clone(), limit: *limit, offset: *offset }
                }
                WorkflowsCommand::Show { id, watch } => C::Show { id: id.clone(), watch: *watch },
                WorkflowsCommand::Stop { id } => C::Stop { id: id.clone() },
            },
            CtlCommand::Ping { target, queue_id, expect_pong, timeout_ms } => C::Ping {
                target: target.clone(),
                queue_id: queue_id.clone(),
                expect_pong: *expect_pong,
                timeout_ms: *timeout_ms,
            },
            CtlCommand::Events { queue_id, follow, timeout_ms } => {
                C::Events { queue_id: queue_id.clone(), follow: *follow, timeout_ms: *timeout_ms }
            }
            CtlCommand::Tree => C::Tree,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunKind {
    Klines,
    #[value(name = "aggTrades")]
    AggTrades,
    Trades,
}

/// Prints a command's result as JSON or as its table.
fn print<T: serde::Serialize + std::fmt::Display>(value: &T, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{value}");
    }
}

/// Draws each workflow's progress (the share of its time range loaded) until aborted.
fn progress_bars(workflows: &[app::BackfillWorkflow]) -> tokio::task::JoinHandle<()> {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
