//! Training and prediction: batches built from samples (features standardised with statistics of
//! the training samples only, the adjacency normalised), Adam on a masked binary cross-entropy,
//! samples in time order (never shuffled), early stopping on the validation loss.

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};

use super::dataset::Dataset;
use super::model::{masked_bce, Forecaster};

/// Which graph a network sees: the builder's, none (identity: every node alone), or the
/// builder's with its nodes relabelled by a fixed permutation (same degrees, wrong neighbours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphUse {
    Graph,
    Identity,
    Shuffled(Vec<usize>),
}

/// Per-feature mean and standard deviation of the training samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Scaler {
    pub fn fit(ds: &Dataset, samples: &[usize]) -> Scaler {
        let f = ds.features();
        let (mut sum, mut sq, mut n) = (vec![0f64; f], vec![0f64; f], 0f64);
        for &i in samples {
            for chunk in ds.samples[i].features.chunks(f) {
                for (k, v) in chunk.iter().enumerate() {
                    sum[k] += *v as f64;
                    sq[k] += (*v as f64) * (*v as f64);
                }
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| {
                let var = (q / n - (s / n) * (s / n)).max(0.0);
                if var > 1e-12 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            })
            .collect();
        Scaler { mean, std }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitConfig {
    pub hidden: usize,
    pub epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// One batch, as flat vectors: `x: [b, nodes, steps, features]`, `a: [b, nodes, nodes]`,
/// `labels`/`mask: [b, nodes]`.
pub struct Batch {
    pub size: usize,
    pub x: Vec<f32>,
    pub a: Vec<f32>,
    pub labels: Vec<f32>,
    pub mask: Vec<f32>,
}

/// Â = D^-1/2 (|W| + I) D^-1/2 of one sample's graph, as `graph` says to use it.
fn adjacency(ds: &Dataset, sample: usize, graph: &GraphUse, out: &mut [f32]) {
    let n = ds.assets();
    out.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..n {
        out[i * n + i] = 1.0;
    }
    if *graph != GraphUse::Identity {
        for &(from, to, w) in &ds.samples[sample].edges {
            let (mut i, mut j) = (from as usize, to as usize);
            if let GraphUse::Shuffled(p) = graph {
                (i, j) = (p[i], p[j]);
            }
            out[i * n + j] += w.abs();
        }
    }
    let degree: Vec<f32> = (0..n).map(|i| out[i * n..(i + 1) * n].iter().sum::<f32>().max(1e-6).sqrt()).collect();
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] /= degree[i] * degree[j];
        }
    }
}

pub fn batch(ds: &Dataset, samples: &[usize], scaler: &Scaler, graph: &GraphUse) -> Batch {
    let (n, t, f) = (ds.assets(), ds.lookback, ds.features());
    let size = samples.len();
    let mut b = Batch {
        size,
        x: vec![0.0; size * n * t * f],
        a: vec![0.0; size * n * n],
        labels: vec![0.0; size * n],
        mask: vec![0.0; size * n],
    };
    for (k, &s) in samples.iter().enumerate() {
        let sample = &ds.samples[s];
        // Stored [step][node][feature]; the network takes [node][step][feature].
        for step in 0..t {
            for node in 0..n {
                for feat in 0..f {
                    let v = sample.features[(step * n + node) * f + feat];
                    b.x[((k * n + node) * t + step) * f + feat] = (v - scaler.mean[feat]) / scaler.std[feat];
                }
            }
        }
        adjacency(ds, s, graph, &mut b.a[k * n * n..(k + 1) * n * n]);
        for node in 0..n {
            if let Some(up) = sample.label(node) {
                b.labels[k * n + node] = if up { 1.0 } else { 0.0 };
                b.mask[k * n + node] = 1.0;
            }
        }
    }
    b
}

fn tensors<B: Backend>(b: &Batch, ds: &Dataset, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 3>) {
    let (n, t, f) = (ds.assets(), ds.lookback, ds.features());
    let x = Tensor::from_data(TensorData::new(b.x.clone(), [b.size, n, t, f]), device);
    let a = Tensor::from_data(TensorData::new(b.a.clone(), [b.size, n, n]), device);
    (x, a)
}

fn targets<B: Backend>(b: &Batch, ds: &Dataset, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let n = ds.assets();
    let labels = Tensor::from_data(TensorData::new(b.labels.clone(), [b.size, n]), device);
    let mask = Tensor::from_data(TensorData::new(b.mask.clone(), [b.size, n]), device);
    (labels, mask)
}

/// Mean masked loss of a trained network over `samples`.
fn loss_of<B: Backend, M: Forecaster<B>>(
    model: &M,
    ds: &Dataset,
    samples: &[usize],
    scaler: &Scaler,
    graph: &GraphUse,
    batch_size: usize,
    device: &B::Device,
) -> f64 {
    let (mut total, mut weight) = (0.0, 0.0);
    for chunk in samples.chunks(batch_size.max(1)) {
        let b = batch(ds, chunk, scaler, graph);
        let count: f32 = b.mask.iter().sum();
        let (x, a) = tensors::<B>(&b, ds, device);
        let (labels, mask) = targets::<B>(&b, ds, device);
        let loss: f32 = masked_bce(model.forward(x, a), labels, mask).into_scalar().elem();
        total += loss as f64 * count as f64;
        weight += count as f64;
    }
    total / weight.max(1.0)
}

/// What training did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FitLog {
    pub epochs: usize,
    /// Wall time of the whole fit.
    pub seconds: f64,
    pub best_epoch: usize,
    pub train_loss: Vec<f64>,
    pub validation_loss: Vec<f64>,
}

/// Trains the network `init` makes (after seeding the backend) on `train`, stopping early on the
/// validation loss of `validation`; returns the best network (for inference) and the log.
#[allow(clippy::too_many_arguments)]
pub fn fit<B, M>(
    init: impl Fn(&B::Device) -> M,
    ds: &Dataset,
    train: &[usize],
    validation: &[usize],
    scaler: &Scaler,
    graph: &GraphUse,
    cfg: &FitConfig,
    device: &B::Device,
) -> (M::InnerModule, FitLog)
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Forecaster<B>,
    M::InnerModule: Forecaster<B::InnerBackend>,
{
    B::seed(device, cfg.seed);
    let mut model = init(device);
    let mut optim = AdamConfig::new().init::<B, M>();
    let batches: Vec<Batch> = train.chunks(cfg.batch_size.max(1)).map(|c| batch(ds, c, scaler, graph)).collect();
    let started = std::time::Instant::now();
    let mut log =
        FitLog { epochs: 0, seconds: 0.0, best_epoch: 0, train_loss: Vec::new(), validation_loss: Vec::new() };
    let mut best = (f64::INFINITY, model.valid());
    for epoch in 0..cfg.epochs {
        let (mut total, mut weight) = (0.0, 0.0);
        for b in &batches {
            let (x, a) = tensors::<B>(b, ds, device);
            let (labels, mask) = targets::<B>(b, ds, device);
            let loss = masked_bce(model.forward(x, a), labels, mask);
            let value: f32 = loss.clone().into_scalar().elem();
            let count: f32 = b.mask.iter().sum();
            total += value as f64 * count as f64;
            weight += count as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        let inner = model.valid();
        let val = loss_of::<B::InnerBackend, _>(&inner, ds, validation, scaler, graph, cfg.batch_size, device);
        log.train_loss.push(total / weight.max(1.0));
        log.validation_loss.push(val);
        log.epochs = epoch + 1;
        if val < best.0 {
            best = (val, inner);
            log.best_epoch = epoch + 1;
        } else if epoch + 1 - log.best_epoch >= cfg.patience {
            break;
        }
    }
    log.seconds = started.elapsed().as_secs_f64();
    (best.1, log)
}

/// Probabilities that each node's next return is positive, `[sample][node]`.
pub fn predict<B: Backend, M: Forecaster<B>>(
    model: &M,
    ds: &Dataset,
    samples: &[usize],
    scaler: &Scaler,
    graph: &GraphUse,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let n = ds.assets();
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(64) {
        let b = batch(ds, chunk, scaler, graph);
        let (x, a) = tensors::<B>(&b, ds, device);
        let p = burn::tensor::activation::sigmoid(model.forward(x, a));
        let flat: Vec<f32> = p.into_data().to_vec().unwrap_or_default();
        out.extend(flat.chunks(n).map(|c| c.to_vec()));
    }
    out
}
