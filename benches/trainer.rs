//! Training time per epoch on the CPU backend (burn flex) for the bundled 1h data at 100 assets:
//! one pass over 2,016 samples (12 weeks of hours: the `train` command's default training part)
//! of the temporal GCN, batch 32, with its validation pass over 336 samples. Inputs are real: the
//! graph builder's snapshots of `data/markets`.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use criterion::{criterion_group, criterion_main, Criterion};
use streamforge::graph::{align, GraphConfig};
use streamforge::model::Interval;
use streamforge::replay::ReplayData;
use streamforge::trainer::dataset::build;
use streamforge::trainer::fit::{fit, FitConfig, GraphUse, Scaler};
use streamforge::trainer::model::TemporalGcn;

fn epoch(c: &mut Criterion) {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/markets")).unwrap();
    let hour: Interval = "1h".parse().unwrap();
    let series = data.all_candles(hour);
    let aligned = align(&series, hour.millis()).unwrap();
    let graph = GraphConfig { name: "bench".into(), window: 168, min_periods: 84, threshold: 0.5, top_k: 5, every: 1 };
    let ds = build(&aligned, &graph, 8, false);
    let train: Vec<usize> = (0..2016).collect();
    let validation: Vec<usize> = (2016..2352).collect();
    let scaler = Scaler::fit(&ds, &train);
    let device = Default::default();
    let cfg = FitConfig { hidden: 16, epochs: 1, patience: 1, batch_size: 32, learning_rate: 1e-3, seed: 7 };
    let mut g = c.benchmark_group("trainer_cpu_100_assets");
    g.sample_size(10);
    g.bench_function("gnn_epoch_2016_samples", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let init =
                    |d: &_| TemporalGcn::<Autodiff<Flex>>::new(ds.features(), ds.lookback, cfg.hidden, cfg.seed, d);
                std::hint::black_box(fit::<Autodiff<Flex>, _>(
                    init,
                    &ds,
                    &train,
                    &validation,
                    &scaler,
                    &GraphUse::Graph,
                    &cfg,
                    &device,
                ));
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, epoch);
criterion_main!(benches);
