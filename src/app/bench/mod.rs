//! `streamforge bench`: the three hot paths on real recorded data, each measured in a process of
//! its own so that its CPU and memory are its alone:
//! - `rest`: the backfill, klines paged over REST → loaders → bus → connectors → store (what
//!   `run` does);
//! - `connector`: a topic of candles drained by a connector into the store, decode → upsert →
//!   commit. Through Kafka this process fills the topic first and the measured one only consumes;
//!   on the in-process bus the measured process publishes too (a bus in one process cannot be
//!   filled from another), which its figures include;
//! - `websocket`: the recorded `@trade` and `@depth@100ms` streams → stream loaders (every depth
//!   event applied to a verified local book) → bus → connectors → store.
//!
//! This process serves the recording (the replay server, as fast as it is read) and runs each
//! path as `streamforge bench --child PLAN`, which reports one [`PathReport`] as JSON on stdout.

mod child;
mod meter;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::args::LogArgs;
use super::{resolve_data_dir, AppError};
use crate::bus::OutRecord;
use crate::config::{self, Config};
use crate::model::{DataRecord, Interval};
use crate::replay::{ReplayData, ReplayServer};

/// `streamforge bench`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// TOML configuration file: its bus, store, connector and loader settings are the ones measured.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Bus: memory:// (default) or kafka://HOST:PORT (overrides bus.url).
    #[arg(long)]
    pub bus: Option<String>,
    /// Store to write to; it must not hold the recording already (a backfill resumes after what is
    /// stored). Default: a fresh SQLite file per path in a temporary folder.
    #[arg(long)]
    pub store: Option<String>,
    /// Recorded data, laid out like data/sample (e.g. the 20 symbols × 1m of
    /// ../shared/data/klines/selskas_spot_1m_5m_2021 under DIR/klines/).
    #[arg(long, value_name = "DIR", default_value = "data/sample")]
    pub data: PathBuf,
    /// Interval of the recorded klines the rest and connector paths load.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// The paths to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BenchPath::Rest, BenchPath::Connector, BenchPath::Websocket])]
    pub paths: Vec<BenchPath>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Internal: run one path as planned (JSON) and print its report.
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BenchPath {
    Rest,
    Connector,
    Websocket,
    /// A node draining one topic per recorded symbol, a `[[connectors]]` route each: what a
    /// node's memory costs per topic it consumes. Not in the default set.
    Drain,
}

impl BenchPath {
    fn name(self) -> &'static str {
        match self {
            BenchPath::Rest => "rest",
            BenchPath::Connector => "connector",
            BenchPath::Websocket => "websocket",
            BenchPath::Drain => "drain",
        }
    }
}

/// What a measured process is to do: handed to it as JSON by `--child`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    path: BenchPath,
    /// The replay server this process runs.
    rest_url: String,
    ws_url: String,
    data: PathBuf,
    interval: String,
    /// rest: the symbols with recorded klines; websocket: those with a recorded capture.
    symbols: Vec<String>,
    /// rest: the range every symbol's recording falls in, `[start, end)`.
    range: (i64, i64),
    /// connector: the topic this process filled (Kafka); `None`: the child publishes itself.
    topic: Option<String>,
    /// drain: each symbol's topic, filled by this process through Kafka (`filled`) or by the child
    /// on the in-process bus.
    topics: Vec<(String, String)>,
    filled: bool,
    /// How many records the path will see: candles, or WebSocket messages.
    expect: u64,
}

/// One path's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathReport {
    pub path: BenchPath,
    /// What `records` counts: `candles` or `ws_messages`.
    pub unit: String,
    pub records: u64,
    /// Records the connectors wrote to the store.
    pub stored: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    /// Latency to the store commit, since the record's bus append (`rest`, `websocket`: when the
    /// loader published what the exchange sent) or since the connector polled it (`connector`,
    /// whose records were all published beforehand); estimated from
    /// `streamforge_record_latency_seconds` as Prometheus' `histogram_quantile` does.
    pub latency_since: String,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Peak resident memory of the measuring process (start-up included).
    pub peak_rss_mb: f64,
    /// CPU (user + system) of the measuring process per record, start-up excluded.
    pub cpu_us_per_record: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub bus: String,
    pub store: String,
    pub data: String,
    /// Where the WebSocket path's capture came from: `data`, or the bundled one when it has none.
    pub capture: String,
    pub cores: usize,
    pub paths: Vec<PathReport>,
}

/// `streamforge bench`: runs the asked paths and returns the report to print (the child's JSON
/// line when this process is a measured child).
pub async fn run(args: BenchArgs, log: &LogArgs) -> Result<String, AppError> {
    if let Some(plan) = &args.child {
        let plan: Plan =
            serde_json::from_str(plan).map_err(|e| AppError::Usage(format!("--child: not a bench plan: {e}")))?;
        let config = child_config(&args, log)?;
        let report = child::run(plan, config).await?;
        return Ok(serde_json::to_string(&report).unwrap_or_default());
    }
    let config = child_config(&args, log)?;
    let interval: Interval = args.interval.parse().map_err(|e| AppError::Usage(format!("--interval: {e}")))?;
    let dir = resolve_data_dir(&args.data)?;
    let recorded = Recorded::serve(&dir).await?;
    // The WebSocket path replays the capture of --data, or the bundled one when it has none.
    let capture = match (args.paths.contains(&BenchPath::Websocket), capture_messages(&recorded.data).1) {
        (true, 0) => Some(Recorded::serve(&resolve_data_dir(std::path::Path::new(BUNDLED))?).await?),
        _ => None,
    };
    let scratch = scratch_dir()?;
    let mut paths = Vec::new();
    let mut outcome = Ok(());
    for path in dedup(&args.paths) {
        let source = if path == BenchPath::Websocket { capture.as_ref().unwrap_or(&recorded) } else { &recorded };
        let report = match plan(path, source, interval, &config).await {
            Ok(plan) => measure(&args, &plan, &scratch).await,
            Err(e) => Err(e),
        };
        match report {
            Ok(r) => paths.push(r),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    recorded.server.stop().await;
    if let Some(c) = &capture {
        c.server.stop().await;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;
    let report = BenchReport {
        bus: config.bus.url.clone(),
        store: args.store.clone().unwrap_or_else(|| "sqlite (a fresh file per path)".into()),
        data: args.data.display().to_string(),
        capture: capture.as_ref().map_or_else(|| args.data.display().to_string(), |_| BUNDLED.to_owned()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        paths,
    };
    Ok(super::args::render(&report, args.json))
}

/// The configuration every process of the run uses: the file, the environment and the flags; a
/// quiet log unless asked otherwise.
fn child_config(args: &BenchArgs, log: &LogArgs) -> Result<Config, AppError> {
    let cfg = config::load_with(args.config.as_deref(), std::env::vars(), |cfg| {
        if let Some(b) = &args.bus {
            cfg.bus.url = b.clone();
        }
        if let Some(s) = &args.store {
            cfg.store.url = s.clone();
        }
        cfg.log.level = log.log_level.clone().unwrap_or_else(|| "error".into());
        cfg.log.json |= log.log_json;
    })
    .map_err(|e| AppError::Usage(e.to_string()))?;
    crate::log::init(cfg.log.json, &cfg.log.level);
    Ok(cfg)
}

/// The recording the bench starts from.
const BUNDLED: &str = "data/sample";

/// A recording and the replay server serving it, as fast as it is read.
struct Recorded {
    dir: PathBuf,
    data: Arc<ReplayData>,
    server: ReplayServer,
}

impl Recorded {
    async fn serve(dir: &std::path::Path) -> Result<Recorded, AppError> {
        let (server, data) = super::start_replay(dir, 0.0).await?;
        Ok(Recorded { dir: dir.to_owned(), data, server })
    }
}

/// The symbols with a recorded `@trade` or `@depth@100ms` stream, and those streams' messages.
fn capture_messages(data: &ReplayData) -> (Vec<String>, u64) {
    let (mut symbols, mut messages) = (Vec::new(), 0);
    for (symbol, d) in &data.symbols {
        let lower = symbol.to_ascii_lowercase();
        let streams = [format!("{lower}@trade"), format!("{lower}@depth@100ms")];
        let n = d.ws.iter().filter(|r| streams.iter().any(|s| **s == *r.stream)).count() as u64;
        if n > 0 {
            symbols.push(symbol.clone());
            messages += n;
        }
    }
    (symbols, messages)
}

fn dedup(paths: &[BenchPath]) -> Vec<BenchPath> {
    let mut out: Vec<BenchPath> = Vec::new();
    for p in paths {
        if !out.contains(p) {
            out.push(*p);
        }
    }
    out
}

/// A folder for the default stores, removed at the end.
fn scratch_dir() -> Result<PathBuf, AppError> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("streamforge-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// What the child of `path` is to do; for the connector path through Kafka, fills its topic.
async fn plan(path: BenchPath, source: &Recorded, interval: Interval, config: &Config) -> Result<Plan, AppError> {
    let (server, dir, data) = (&source.server, source.dir.as_path(), source.data.as_ref());
    let job_type = format!("api_candles_{interval}");
    let mut plan = Plan {
        path,
        rest_url: server.rest_url(),
        ws_url: server.ws_url(),
        data: dir.to_owned(),
        interval: interval.to_string(),
        symbols: Vec::new(),
        range: (i64::MAX, i64::MIN),
        topic: None,
        topics: Vec::new(),
        filled: false,
        expect: 0,
    };
    let kind = crate::exchange::binance::backfill_kind(&job_type)
        .ok_or_else(|| AppError::Usage(format!("--interval: cannot load {job_type}")))?;
    let candles = || -> Result<u64, AppError> {
        let symbols = data.recorded_symbols(&job_type);
        if symbols.is_empty() {
            return Err(AppError::Usage(format!(
                "{}: no {interval} klines recorded; try another --interval",
                dir.display()
            )));
        }
        Ok(symbols.iter().filter_map(|s| data.symbols[s].klines.get(&interval)).map(|k| k.len() as u64).sum())
    };
    match path {
        BenchPath::Rest => {
            plan.expect = candles()?;
            plan.symbols = data.recorded_symbols(&job_type);
            for s in &plan.symbols {
                if let Some((start, end)) = data.recorded_range(s, kind.as_ref()) {
                    plan.range = (plan.range.0.min(start), plan.range.1.max(end));
                }
            }
        }
        BenchPath::Connector => {
            plan.expect = candles()?;
            if config.bus.url.starts_with("kafka://") {
                plan.topic = Some(fill_topic(config, data, interval).await?);
            }
        }
        BenchPath::Drain => {
            plan.expect = candles()?;
            let nanos = unique_suffix();
            plan.topics = data
                .recorded_symbols(&job_type)
                .into_iter()
                .map(|s| {
                    let topic = format!("bench-drain-{nanos}-{}", s.to_ascii_lowercase());
                    (s, topic)
                })
                .collect();
            if config.bus.url.starts_with("kafka://") {
                let bus = crate::bus::open(&config.bus, &config.node.id)?;
                for (symbol, topic) in &plan.topics {
                    bus.ensure_topic(topic, config.bus.partitions).await?;
                    publish_candles(bus.as_ref(), |s| (s == symbol).then_some(topic.as_str()), data, interval).await?;
                }
                plan.filled = true;
            }
        }
        BenchPath::Websocket => {
            (plan.symbols, plan.expect) = capture_messages(data);
            if plan.symbols.is_empty() {
                return Err(AppError::Usage(format!("{}: no @trade or @depth capture (ws/) to replay", dir.display())));
            }
        }
    }
    Ok(plan)
}

/// Publishes every recorded candle at `interval` to a new topic of the bus (keyed by symbol) for
/// the connector path to drain, and names it.
async fn fill_topic(config: &Config, data: &ReplayData, interval: Interval) -> Result<String, AppError> {
    let bus = crate::bus::open(&config.bus, &config.node.id)?;
    let topic = format!("bench-connector-{}", unique_suffix());
    bus.ensure_topic(&topic, config.bus.partitions).await?;
    publish_candles(bus.as_ref(), |_| Some(topic.as_str()), data, interval).await?;
    Ok(topic)
}

/// Nanoseconds since the epoch: new topic names per run (a Kafka topic outlives the run).
fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// Publishes every recorded candle at `interval` of each symbol `topic_of` names a topic for,
/// keyed by symbol, a page at a time.
async fn publish_candles<'a>(
    bus: &dyn crate::bus::Bus,
    topic_of: impl Fn(&str) -> Option<&'a str>,
    data: &ReplayData,
    interval: Interval,
) -> Result<(), crate::bus::BusError> {
    for (symbol, rows) in data.symbols.iter().filter_map(|(s, d)| Some((s, d.klines.get(&interval)?))) {
        let Some(topic) = topic_of(symbol) else { continue };
        let mut rows = rows.iter().peekable();
        while rows.peek().is_some() {
            let records = rows
                .by_ref()
                .take(1000)
                .map(|r| OutRecord::keyed(symbol, DataRecord::Candle(r.candle(symbol, interval)).to_bytes()))
                .collect();
            bus.publish(topic, records).await?;
        }
    }
    Ok(())
}

/// Runs `plan` in a child process of this binary and reads its report.
async fn measure(args: &BenchArgs, plan: &Plan, scratch: &std::path::Path) -> Result<PathReport, AppError> {
    let exe = std::env::current_exe().map_err(|e| AppError::Usage(format!("cannot find this binary: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench").arg("--child").arg(serde_json::to_string(plan).unwrap_or_default());
    if let Some(c) = &args.config {
        cmd.arg("--config").arg(c);
    }
    if let Some(b) = &args.bus {
        cmd.arg("--bus").arg(b);
    }
    let store = match &args.store {
        Some(s) => s.clone(),
        None => format!("sqlite://{}", scratch.join(format!("{}.db", plan.path.name())).display()),
    };
    cmd.arg("--store").arg(store);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    let name = plan.path.name();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| AppError::JobFailed(format!("bench {name}: {e}")))?
        .map_err(|e| AppError::JobFailed(format!("bench {name}: cannot start: {e}")))?;
    if !out.status.success() {
        return Err(AppError::JobFailed(format!("bench {name} exited with {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| AppError::JobFailed(format!("bench {name}: unreadable report {line:?}: {e}")))
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bus {} · store {} · data {} · capture {} · {} cores",
            self.bus, self.store, self.data, self.capture, self.cores
        )?;
        writeln!(
            f,
            "{:<10} {:>10} {:<12} {:>12} {:>9} {:>9} {:>12} {:>13}",
            "path", "records", "", "records/s", "p50 ms", "p99 ms", "peak RSS MB", "CPU µs/record"
        )?;
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        for p in &self.paths {
            writeln!(
                f,
                "{:<10} {:>10} {:<12} {:>12.0} {:>9} {:>9} {:>12.1} {:>13.2}",
                p.path.name(),
                p.records,
                p.unit,
                p.records_per_s,
                ms(p.p50_ms),
                ms(p.p99_ms),
                p.peak_rss_mb,
                p.cpu_us_per_record
            )?;
        }
        write!(
            f,
            "latency: to the store commit since the bus append (rest, websocket) or the connector's poll (connector)"
        )
    }
}
