//! REST backfill against the replay server's enforced weight budget (`cargo bench --bench
//! rest_budget`): four loaders of one node share one limiter (`binance.weight_share` 0.9) and
//! page klines as fast as they can; the server counts weight the way Binance does. Goal: ≥ 90% of
//! the allowed weight used in every window, 0 × 429. The budget is unchanged (6,000) but counted
//! over a 3 s window instead of a minute on both sides, so a window fits in a benchmark sample.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use streamforge::admin::metrics::Metrics;
use streamforge::exchange::binance::{BinanceRest, WeightLimiter, WEIGHT_PER_MINUTE};
use streamforge::model::now_ms;
use streamforge::replay::{ReplayFaults, ReplayServer};

const WINDOW: Duration = Duration::from_secs(3);
const LOADERS: usize = 4;

fn rest_budget(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let faults = ReplayFaults { weight_window: WINDOW, ..Default::default() };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let server = rt.block_on(ReplayServer::start_dir(&dir, "127.0.0.1:0", 0.0, faults)).unwrap();
    let limiter = Arc::new(WeightLimiter::with_window(0.9, WINDOW));
    let rest = BinanceRest::new(&server.rest_url(), Arc::new(Metrics::new()), limiter).unwrap();
    let window_ms = WINDOW.as_millis() as i64;
    let mut windows = Vec::new();

    let mut g = c.benchmark_group("rest_budget");
    g.sample_size(10).measurement_time(Duration::from_secs(40));
    g.bench_function("klines_backfill_one_window", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // From one window boundary to the next, every loader pages klines.
                    let start = (now_ms() / window_ms + 1) * window_ms;
                    tokio::time::sleep(Duration::from_millis((start - now_ms()).max(0) as u64)).await;
                    let t0 = Instant::now();
                    let tasks: Vec<_> = (0..LOADERS)
                        .map(|i| {
                            let rest = rest.clone();
                            tokio::spawn(async move {
                                let mut from = 1_619_222_400_000 + i as i64 * 3_600_000;
                                while now_ms() < start + window_ms {
                                    let page = rest
                                        .klines("BTCUSDT", "1m".parse().unwrap(), from, i64::MAX, 100)
                                        .await
                                        .unwrap();
                                    from = page.last().map_or(1_619_222_400_000, |c| c.open_time + 60_000);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    total += t0.elapsed();
                    windows.push(start);
                }
                total
            })
        })
    });
    g.finish();
    let stats = server.stats();
    let used: Vec<f64> = windows
        .iter()
        .filter_map(|w| stats.weight_by_window.get(w))
        .map(|u| *u as f64 / WEIGHT_PER_MINUTE as f64)
        .collect();
    let mean = used.iter().sum::<f64>() / used.len().max(1) as f64;
    let min = used.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "weight used per window: mean {:.1}%, min {:.1}% of 6,000 over {} windows; 429s: {}, 418s: {}",
        mean * 100.0,
        min * 100.0,
        used.len(),
        stats.rate_limited,
        stats.banned
    );
    rt.block_on(server.stop());
}

criterion_group!(benches, rest_budget);
criterion_main!(benches);
