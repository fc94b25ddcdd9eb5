//! Honest evaluation: walk-forward folds, scalers fitted on each fold's training samples, early
//! stopping on its validation samples, several seeds, and on exactly the same test samples the
//! GNN, its ablations (no graph, a shuffled graph) and the baselines (logistic regression on the
//! same features, momentum, reversal, the training majority class). Learned models report the mean
//! over seeds of each score; rules have no seed.

use std::fmt;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::dataset::Dataset;
use super::fit::{fit, predict, FitConfig, FitLog, GraphUse, Scaler};
use super::metrics::{score, Forecast, Scores};
use super::model::{Logistic, TemporalGcn};
use super::seeded::Seeded;
use super::split::{walk_forward, Fold, SplitConfig};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalConfig {
    pub split: SplitConfig,
    pub fit: FitConfig,
    /// Seeds `fit.seed`, `fit.seed + 1`, …
    pub seeds: usize,
}

/// The models compared, in table order.
pub const MODELS: [&str; 7] =
    ["gnn", "gnn_no_graph", "gnn_shuffled_graph", "logistic", "momentum", "reversal", "majority"];

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultRow {
    pub model: String,
    /// `None`: all folds' test samples together.
    pub fold: Option<usize>,
    pub scores: Scores,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub folds: Vec<Fold>,
    /// Time span of each fold's test samples.
    pub test_spans: Vec<(i64, i64)>,
    pub rows: Vec<ResultRow>,
    /// The GNN's training log of each fold and seed.
    pub logs: Vec<FitLog>,
}

fn forecasts(ds: &Dataset, samples: &[usize], scores: &[Vec<f32>]) -> Vec<Forecast> {
    let mut out = Vec::new();
    for (k, &s) in samples.iter().enumerate() {
        let sample = &ds.samples[s];
        for (node, score) in scores[k].iter().enumerate() {
            if let Some(up) = sample.label(node) {
                out.push(Forecast { time: sample.time, score: *score, up, next_return: sample.next_return[node] });
            }
        }
    }
    out
}

/// The last step's `ret_1` of every node (unscaled): what the momentum and reversal rules use.
fn last_returns(ds: &Dataset, samples: &[usize]) -> Vec<Vec<f32>> {
    let (n, f, t) = (ds.assets(), ds.features(), ds.lookback);
    let ret = ds.feature_names.iter().position(|x| x == "ret_1").unwrap_or(0);
    samples
        .iter()
        .map(|&s| (0..n).map(|node| ds.samples[s].features[((t - 1) * n + node) * f + ret]).collect())
        .collect()
}

fn mean_scores(all: &[Scores]) -> Scores {
    let n = all.len().max(1) as f64;
    let avg = |f: &dyn Fn(&Scores) -> f64| all.iter().map(f).sum::<f64>() / n;
    let avg_opt = |f: &dyn Fn(&Scores) -> Option<f64>| {
        let v: Vec<f64> = all.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Scores {
        n: all.first().map_or(0, |s| s.n),
        accuracy: avg(&|s| s.accuracy),
        majority_rate: avg(&|s| s.majority_rate),
        balanced_accuracy: avg(&|s| s.balanced_accuracy),
        mcc: avg(&|s| s.mcc),
        ic: avg_opt(&|s| s.ic),
        icir: avg_opt(&|s| s.icir),
    }
}

/// Trains and scores every model on every fold; `trained` receives each fold's GNN of the first
/// seed (the last one is the most recent model).
pub fn evaluate<B: AutodiffBackend>(
    ds: &Dataset,
    cfg: &EvalConfig,
    device: &B::Device,
    mut trained: impl FnMut(usize, &TemporalGcn<B::InnerBackend>, &Scaler),
) -> Evaluation
where
    TemporalGcn<B>: AutodiffModule<B, InnerModule = TemporalGcn<B::InnerBackend>>,
    Logistic<B>: AutodiffModule<B, InnerModule = Logistic<B::InnerBackend>>,
{
    let folds = walk_forward(ds.samples.len(), &cfg.split);
    let (n, f, t) = (ds.assets(), ds.features(), ds.lookback);
    let hidden = cfg.fit.hidden;
    // Per model: per fold, per seed, the test forecasts.
    let mut by_model: Vec<Vec<Vec<Vec<Forecast>>>> = vec![Vec::new(); MODELS.len()];
    let mut logs = Vec::new();
    for (k, fold) in folds.iter().enumerate() {
        let train: Vec<usize> = fold.train.clone().collect();
        let validation: Vec<usize> = fold.validation.clone().collect();
        let test: Vec<usize> = fold.test.clone().collect();
        let scaler = Scaler::fit(ds, &train);
        for model in by_model.iter_mut() {
            model.push(Vec::new());
        }
        for s in 0..cfg.seeds.max(1) {
            let fc = FitConfig { seed: cfg.fit.seed + s as u64, ..cfg.fit };
            let variants =
                [GraphUse::Graph, GraphUse::Identity, GraphUse::Shuffled(Seeded::new(fc.seed).permutation(n))];
            for (m, graph) in variants.iter().enumerate() {
                let (model, log) = fit::<B, _>(
                    |d| TemporalGcn::new(f, t, hidden, fc.seed, d),
                    ds,
                    &train,
                    &validation,
                    &scaler,
                    graph,
                    &fc,
                    device,
                );
                tracing::info!(
                    fold = k,
                    seed = fc.seed,
                    model = MODELS[m],
                    epochs = log.epochs,
                    best_epoch = log.best_epoch,
                    seconds = log.seconds,
                    "Trained."
                );
                let p = predict(&model, ds, &test, &scaler, graph, device);
                by_model[m][k].push(forecasts(ds, &test, &p));
                if m == 0 {
                    if s == 0 {
                        trained(k, &model, &scaler);
                    }
                    logs.push(log);
                }
            }
            let (model, _) = fit::<B, _>(
                |d| Logistic::new(f, fc.seed, d),
                ds,
                &train,
                &validation,
                &scaler,
                &GraphUse::Identity,
                &fc,
                device,
            );
            let p = predict(&model, ds, &test, &scaler, &GraphUse::Identity, device);
            by_model[3][k].push(forecasts(ds, &test, &p));
        }
        let last = last_returns(ds, &test);
        let reversal: Vec<Vec<f32>> = last.iter().map(|r| r.iter().map(|x| -x).collect()).collect();
        let ups =
            train.iter().flat_map(|&s| (0..n).filter_map(move |node| ds.samples[s].label(node))).collect::<Vec<_>>();
        let up_majority = ups.iter().filter(|u| **u).count() * 2 >= ups.len();
        let constant = vec![vec![if up_majority { 1.0 } else { 0.0 }; n]; test.len()];
        by_model[4][k].push(forecasts(ds, &test, &last));
        by_model[5][k].push(forecasts(ds, &test, &reversal));
        by_model[6][k].push(forecasts(ds, &test, &constant));
    }
    // Rules classify by the sign of their score, models by probability 0.5.
    let threshold = |m: usize| if m == 4 || m == 5 { 0.0 } else { 0.5 };
    let mut rows = Vec::new();
    for (m, name) in MODELS.iter().enumerate() {
        for (k, per_seed) in by_model[m].iter().enumerate() {
            let s: Vec<Scores> = per_seed.iter().map(|fc| score(fc, threshold(m))).collect();
            rows.push(ResultRow { model: name.to_string(), fold: Some(k), scores: mean_scores(&s) });
        }
        let seeds = by_model[m].first().map_or(0, |v| v.len());
        let pooled: Vec<Scores> = (0..seeds)
            .map(|s| {
                let all: Vec<Forecast> = by_model[m].iter().flat_map(|fold| fold[s].iter().copied()).collect();
                score(&all, threshold(m))
            })
            .collect();
        rows.push(ResultRow { model: name.to_string(), fold: None, scores: mean_scores(&pooled) });
    }
    let test_spans = folds.iter().map(|f| (ds.samples[f.test.start].time, ds.samples[f.test.end - 1].time)).collect();
    Evaluation { folds, test_spans, rows, logs }
}

impl Evaluation {
    pub fn overall(&self, model: &str) -> Option<&Scores> {
        self.rows.iter().find(|r| r.model == model && r.fold.is_none()).map(|r| &r.scores)
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.4}"));
        writeln!(
            f,
            "{:<20} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "model", "fold", "n", "acc", "majority", "bal_acc", "mcc", "rank_ic", "icir"
        )?;
        for r in &self.rows {
            let s = &r.scores;
            writeln!(
                f,
                "{:<20} {:>5} {:>8} {:>8.4} {:>8.4} {:>8.4} {:>+8.4} {:>8} {:>9}",
                r.model,
                r.fold.map_or("all".to_string(), |k| k.to_string()),
                s.n,
                s.accuracy,
                s.majority_rate,
                s.balanced_accuracy,
                s.mcc,
                opt(s.ic),
                opt(s.icir)
            )?;
        }
        // Next-hour direction is close to a coin toss: far better than that means the inputs saw
        // the future somewhere.
        for r in self.rows.iter().filter(|r| r.scores.accuracy > LEAKAGE_ALARM) {
            writeln!(
                f,
                "LEAKAGE ALARM: {} fold {} accuracy {:.3} > {LEAKAGE_ALARM} — investigate before trusting any number here",
                r.model,
                r.fold.map_or("all".to_string(), |k| k.to_string()),
                r.scores.accuracy
            )?;
        }
        Ok(())
    }
}

/// An accuracy above this on next-interval direction is treated as a sign of leakage.
pub const LEAKAGE_ALARM: f64 = 0.6;
