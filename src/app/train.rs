//! `streamforge train` and `predict`: candles of many symbols (backfilled first, as `graph`
//! does) → graph snapshots at every step → samples → walk-forward evaluation of the temporal GCN
//! against its ablations and baselines → the table, the most recent model saved to object storage
//! and registered in the store. `predict` loads a saved model and scores the latest sample.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use std::sync::{Arc, Mutex};

use burn::backend::Flex;

use super::args::{render, Common, LogArgs};
use super::graph::{load_aligned, DataArgs, GraphOptions, MARKETS_DATA};
use super::{AppError, NodeContext};
use crate::actors::trainer::{TrainerActor, TrainerArgs};
use crate::config::Config;
use crate::graph::{Aligned, GraphConfig};
use crate::model::{format_ms, now_ms, Interval};
use crate::store::ModelRecord;
use crate::supervision::{ChildSpec, Restart, Strategy, SupervisorArgs, Tree, TreeFailed};
use crate::trainer::artifacts::{Artifacts, ModelConfig, FORMAT};
use crate::trainer::dataset::{build, Dataset};
use crate::trainer::device::{choose, Device};
use crate::trainer::evaluate::{EvalConfig, Evaluation};
use crate::trainer::fit::{predict as forecast, FitConfig, GraphUse};
use crate::trainer::split::SplitConfig;
use crate::workflow::GraphSettings;

type Cpu = Flex;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Candles and the graph, as for `graph` (its `every` is ignored: a snapshot every step).
    pub data: GraphOptions,
    /// Steps of snapshots a sample carries.
    pub lookback: usize,
    pub eval: EvalConfig,
    /// `file://DIR` or `s3://BUCKET/PREFIX`.
    pub artifacts: String,
    /// Model family name in the registry.
    pub name: String,
    /// `cpu`, `cuda` or `auto` (CUDA when built with it and a driver is present).
    pub device: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainRun {
    pub name: String,
    pub version: i64,
    pub url: String,
    pub assets: usize,
    pub samples: usize,
    pub evaluation: Evaluation,
    pub elapsed_secs: f64,
    /// Mean wall time of one GNN training epoch.
    pub epoch_secs: f64,
    pub device: Device,
    /// Why training did not run on the device asked for.
    pub device_note: Option<String>,
}

/// Backfills (resuming) and aligns the candles `opts.data` names, then [`train_on`] them.
pub async fn train(opts: TrainOptions) -> Result<TrainRun, AppError> {
    let (ctx, aligned, _) = load_aligned(&opts.data).await?;
    train_on(&ctx, aligned, &opts, &format!("train-{}", opts.name)).await
}

/// Trains on `aligned` candles: samples, the walk-forward evaluation by a supervised trainer actor
/// (reporting on `queue-events` as `queue_id`), the most recent model saved and registered.
pub async fn train_on(
    ctx: &NodeContext,
    aligned: Aligned,
    opts: &TrainOptions,
    queue_id: &str,
) -> Result<TrainRun, AppError> {
    let mut problems = opts.data.graph.problems();
    let reach = opts.data.graph.window + opts.lookback;
    if opts.eval.split.purge < reach + 1 {
        problems.push(format!(
            "purge {} is shorter than the label horizon (1) plus the inputs' reach ({reach} steps)",
            opts.eval.split.purge
        ));
    }
    if opts.eval.seeds < 1 || opts.lookback < 1 {
        problems.push("seeds and lookback must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(AppError::Usage(problems.join("\n")));
    }
    let (device, device_note) = choose(&opts.device).map_err(AppError::Usage)?;
    if let Some(note) = &device_note {
        tracing::warn!("{note}");
    }
    let artifacts = Artifacts::open(&opts.artifacts, &opts.data.config.artifacts)?;
    let started = Instant::now();
    let (graph, lookback) = (opts.data.graph.clone(), opts.lookback);
    let dataset = Arc::new(
        tokio::task::spawn_blocking(move || build(&aligned, &graph, lookback, false))
            .await
            .map_err(|e| AppError::Usage(format!("building the samples failed: {e}")))?,
    );
    let result = Arc::new(Mutex::new(None));
    let spec = {
        let (ctx, dataset, eval, result) = (ctx.clone(), dataset.clone(), opts.eval.clone(), result.clone());
        let queue_id = queue_id.to_owned();
        ChildSpec::new(format!("trainer:{}", opts.name), "trainer", Restart::Transient, move || {
            let args = TrainerArgs {
                queue_id: queue_id.clone(),
                dataset: dataset.clone(),
                eval: eval.clone(),
                device,
                telemetry: ctx.telemetry.clone(),
                result: result.clone(),
            };
            (TrainerActor, args)
        })
    };
    let args = SupervisorArgs { auto_shutdown: true, ..ctx.supervisor_args("train", Strategy::OneForOne, vec![spec]) };
    Tree::start(args).await?.wait().await?;
    let (evaluation, last) = result
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| TreeFailed("the trainer stopped without a result".into()))?;
    let epochs: usize = evaluation.logs.iter().map(|l| l.epochs).sum();
    let epoch_secs = evaluation.logs.iter().map(|l| l.seconds).sum::<f64>() / epochs.max(1) as f64;
    let Some((fold, weights, scaler)) = last else {
        return Err(AppError::Usage(format!(
            "not enough data for one fold: {} samples, a fold needs {} (train + validation + test + 2 × purge)",
            dataset.samples.len(),
            opts.eval.split.train + opts.eval.split.validation + opts.eval.split.test + 2 * opts.eval.split.purge
        )));
    };
    let version = ctx.store.model(&opts.name, None).await?.map_or(1, |m| m.version + 1);
    let trained = &evaluation.folds[fold].train;
    let config = ModelConfig {
        format: FORMAT,
        name: opts.name.clone(),
        version,
        symbols: dataset.symbols.clone(),
        feature_names: dataset.feature_names.clone(),
        interval: opts.data.interval.to_string(),
        lookback: dataset.lookback,
        hidden: opts.eval.fit.hidden,
        graph_window: opts.data.graph.window,
        graph_min_periods: opts.data.graph.min_periods,
        graph_threshold: opts.data.graph.threshold,
        graph_top_k: opts.data.graph.top_k,
        scaler,
        fit: opts.eval.fit,
        trained_from: dataset.samples[trained.start].time,
        trained_to: dataset.samples[trained.end - 1].time,
    };
    let table = evaluation.to_string();
    let metrics = serde_json::json!({
        "evaluation": evaluation,
        "samples": dataset.samples.len(),
        "data_from": dataset.samples.first().map(|s| s.time),
        "data_to": dataset.samples.last().map(|s| s.time),
        "config": opts.eval,
    });
    let url = artifacts.save_weights(weights, &config, &metrics, &table).await?;
    let overall = |m: &str| evaluation.overall(m).map(|s| serde_json::to_value(s).unwrap_or_default());
    ctx.store
        .put_model(&ModelRecord {
            name: opts.name.clone(),
            version,
            uri: url.clone(),
            metrics: serde_json::json!({
                "data_from": config.trained_from, "data_to": dataset.samples.last().map(|s| s.time),
                "symbols": config.symbols.len(), "gnn": overall("gnn"), "logistic": overall("logistic"),
                "majority": overall("majority"),
            }),
            created_at: now_ms(),
        })
        .await?;
    Ok(TrainRun {
        name: opts.name.clone(),
        version,
        url,
        assets: dataset.assets(),
        samples: dataset.samples.len(),
        evaluation,
        elapsed_secs: started.elapsed().as_secs_f64(),
        epoch_secs,
        device,
        device_note,
    })
}

impl fmt::Display for TrainRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.evaluation)?;
        for (k, (a, b)) in self.evaluation.test_spans.iter().enumerate() {
            writeln!(f, "fold {k}: test {} → {}", format_ms(*a), format_ms(*b))?;
        }
        if let Some(note) = &self.device_note {
            writeln!(f, "note: {note}")?;
        }
        write!(
            f,
            "{} v{}: {} assets, {} samples, {:.1} s ({:.3} s per GNN epoch on {:?}) → {}",
            self.name,
            self.version,
            self.assets,
            self.samples,
            self.elapsed_secs,
            self.epoch_secs,
            self.device,
            self.url
        )
    }
}

/// `streamforge train`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub data: DataArgs,
    /// Snapshots (steps) of history per sample.
    #[arg(long, default_value_t = 8)]
    pub lookback: usize,
    /// Samples per walk-forward part: train, validation, test (default 12, 2 and 2 weeks of hours).
    #[arg(long, default_value_t = 2016)]
    pub train: usize,
    #[arg(long, default_value_t = 336)]
    pub validation: usize,
    #[arg(long, default_value_t = 336)]
    pub test: usize,
    /// Samples left out before validation and before test (default: window + lookback + 1).
    #[arg(long)]
    pub purge: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub hidden: usize,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.001)]
    pub learning_rate: f64,
    /// Seeds per model (seed, seed + 1, …).
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where models go: file://DIR or s3://BUCKET/PREFIX (S3 settings from AWS_* variables).
    #[arg(long, default_value = ARTIFACTS)]
    pub artifacts: String,
    /// Model family name (default tgcn_<interval>_w<window>).
    #[arg(long)]
    pub name: Option<String>,
    /// cpu, cuda (falls back to the CPU, saying why, where CUDA cannot run) or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long)]
    pub json: bool,
}

/// Where models go unless told otherwise.
pub const ARTIFACTS: &str = "file://./models";

impl TrainArgs {
    /// The training these arguments ask for, on `config`.
    pub fn options(&self, config: Config) -> Result<TrainOptions, AppError> {
        let data = self.data.options(&self.common, config, None, "corr", 1)?;
        let name = self.name.clone().unwrap_or_else(|| {
            GraphSettings { window: self.data.window, ..GraphSettings::default() }.family("tgcn", data.interval)
        });
        let purge = self.purge.unwrap_or(self.data.window + self.lookback + 1);
        Ok(TrainOptions {
            data,
            lookback: self.lookback,
            eval: EvalConfig {
                split: SplitConfig { train: self.train, validation: self.validation, test: self.test, purge },
                fit: FitConfig {
                    hidden: self.hidden,
                    epochs: self.epochs,
                    patience: self.patience,
                    batch_size: self.batch_size,
                    learning_rate: self.learning_rate,
                    seed: self.seed,
                },
                seeds: self.seeds,
            },
            artifacts: self.artifacts.clone(),
            name,
            device: self.device.clone(),
        })
    }
}

/// `streamforge train`: trains, saves and registers; returns the evaluation to print.
pub async fn run(args: TrainArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |_| {})?;
    Ok(render(&train(args.options(config)?).await?, args.json))
}

/// `streamforge predict`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub name: String,
    /// Default: the newest registered version.
    #[arg(long)]
    pub version: Option<i64>,
    #[arg(long, default_value = ARTIFACTS)]
    pub artifacts: String,
    #[arg(long)]
    pub json: bool,
}

/// `streamforge predict`: scores the latest candles; returns the forecast to print.
pub async fn run_predict(args: PredictArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |_| {})?;
    let opts = PredictOptions {
        offline_data: args.common.offline_dir_or(&config, PathBuf::from(MARKETS_DATA)),
        config,
        start_ms: None,
        end_ms: None,
        artifacts: args.artifacts,
        name: args.name,
        version: args.version,
    };
    Ok(render(&predict(opts).await?, args.json))
}

/// One asset's forecast.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub symbol: String,
    /// Probability that the next return is positive.
    pub up: f32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PredictRun {
    pub name: String,
    pub version: i64,
    /// Open time of the last candle the forecast uses; it is for the interval after it.
    pub time: i64,
    pub predictions: Vec<Prediction>,
}

/// What `predict` is asked for: a model, and where the candles it scores come from.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub config: Config,
    /// Replay this recorded folder on loopback instead of calling Binance.
    pub offline_data: Option<PathBuf>,
    /// The candles to score, `[start, end)` epoch ms (default: all the store has, up to now).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// `file://DIR` or `s3://BUCKET/PREFIX`.
    pub artifacts: String,
    pub name: String,
    /// Default: the newest registered version.
    pub version: Option<i64>,
}

/// Loads the model (the asked-for version, or the newest registered) and scores the latest
/// sample of its symbols' candles at its interval, graphed as it was trained.
pub async fn predict(opts: PredictOptions) -> Result<PredictRun, AppError> {
    let PredictOptions { config, offline_data, start_ms, end_ms, artifacts, name, version } = opts;
    let name = name.as_str();
    let store = crate::store::open_configured(&config.store).await?;
    let version = match version {
        Some(v) => v,
        None => store
            .model(name, None)
            .await?
            .map(|m| m.version)
            .ok_or_else(|| AppError::Usage(format!("no model {name:?} is registered; train one first")))?,
    };
    let device = Default::default();
    let (model, trained) = Artifacts::open(&artifacts, &config.artifacts)?.load::<Cpu>(name, version, &device).await?;
    let data = GraphOptions {
        config,
        symbols: trained.symbols.clone(),
        interval: trained.interval.parse::<Interval>().map_err(|e| AppError::Usage(e.to_string()))?,
        start_ms,
        end_ms,
        offline_data,
        graph: GraphConfig {
            name: name.to_owned(),
            window: trained.graph_window,
            min_periods: trained.graph_min_periods,
            threshold: trained.graph_threshold,
            top_k: trained.graph_top_k,
            every: 1,
        },
    };
    let config = trained;
    let (_, aligned, _) = load_aligned(&data).await?;
    let dataset: Dataset = build(&aligned, &data.graph, config.lookback, true);
    if dataset.symbols != config.symbols {
        return Err(AppError::Usage(format!(
            "the store has candles for {} of the model's {} symbols",
            dataset.symbols.len(),
            config.symbols.len()
        )));
    }
    let Some(last) = dataset.samples.len().checked_sub(1) else {
        return Err(AppError::Usage(format!(
            "not enough candles: a forecast needs {} consecutive steps",
            config.graph_min_periods + config.lookback
        )));
    };
    let p = forecast(&model, &dataset, &[last], &config.scaler, &GraphUse::Graph, &device);
    let predictions =
        config.symbols.iter().zip(&p[0]).map(|(s, up)| Prediction { symbol: s.clone(), up: *up }).collect();
    Ok(PredictRun { name: name.to_owned(), version, time: dataset.samples[last].time, predictions })
}

impl fmt::Display for PredictRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} v{} at {} (forecast for the next interval)", self.name, self.version, format_ms(self.time))?;
        let mut sorted = self.predictions.clone();
        sorted.sort_by(|a, b| b.up.total_cmp(&a.up));
        for p in sorted {
            writeln!(f, "{:<12} {:.4}", p.symbol, p.up)?;
        }
        Ok(())
    }
}
