//! Upsert throughput per store backend (records/s), for candles and trades in batches of 1,000
//! and 10,000, each iteration into a new collection (inserts), through the `Store` trait as the
//! connector calls it:
//! - SQLite: a file in WAL mode;
//! - PostgreSQL (feature `postgres`): the server named by `STREAMFORGE_BENCH_POSTGRES_URL` (or
//!   `STREAMFORGE_TEST_POSTGRES_URL`), skipped when neither is set.
//!
//! Inputs are real: the bundled BTC/ETH/SOL 1m candles (12,108) and the ETHUSDT capture's trades
//! plus the XRPETH aggregate trades (26,992).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamforge::model::{DataRecord, Interval, Trade};
use streamforge::replay::ReplayData;
use streamforge::store::Store;

fn inputs() -> [(&'static str, Vec<DataRecord>); 2] {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let interval: Interval = "1m".parse().unwrap();
    let mut candles = Vec::new();
    let mut trades = Vec::new();
    for (symbol, d) in &data.symbols {
        candles.extend(data.candles(symbol, interval).into_iter().map(DataRecord::Candle));
        let parse = |rows: &[streamforge::replay::data::TradeRow], agg: bool| {
            let body = format!("[{}]", rows.iter().map(|r| r.raw.get()).collect::<Vec<_>>().join(","));
            if agg {
                Trade::from_rest_agg_trades(symbol, body.as_bytes()).unwrap()
            } else {
                Trade::from_rest_trades(symbol, body.as_bytes()).unwrap()
            }
        };
        if !d.trades.is_empty() {
            trades.extend(parse(&d.trades, false).into_iter().map(DataRecord::Trade));
        } else if !d.agg_trades.is_empty() {
            trades.extend(parse(&d.agg_trades, true).into_iter().map(DataRecord::Trade));
        }
    }
    [("candles", candles), ("trades", trades)]
}

static COLLECTION: AtomicU64 = AtomicU64::new(0);

fn bench_backend(c: &mut Criterion, backend: &str, store: Arc<dyn Store>, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group(format!("{backend}_upsert"));
    g.sample_size(10);
    for (kind, records) in inputs() {
        for batch in [1_000usize, 10_000] {
            g.throughput(Throughput::Elements(records.len() as u64));
            g.bench_function(format!("{kind}_batch_{batch}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let name = format!(
                            "bench_{kind}_{}_{}",
                            std::process::id(),
                            COLLECTION.fetch_add(1, Ordering::Relaxed)
                        );
                        let batches: Vec<_> = records.chunks(batch).map(|c| Arc::new(c.to_vec())).collect();
                        let started = Instant::now();
                        for chunk in batches {
                            rt.block_on(store.upsert(&name, chunk)).unwrap();
                        }
                        total += started.elapsed();
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

fn store_upsert(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt.block_on(streamforge::store::open(&format!("sqlite://{}", dir.path().join("b.db").display())));
    bench_backend(c, "sqlite", sqlite.unwrap(), &rt);
    let postgres =
        std::env::var("STREAMFORGE_BENCH_POSTGRES_URL").or_else(|_| std::env::var("STREAMFORGE_TEST_POSTGRES_URL"));
    match postgres {
        Ok(url) if cfg!(feature = "postgres") => {
            bench_backend(c, "postgres", rt.block_on(streamforge::store::open(&url)).unwrap(), &rt)
        }
        _ => eprintln!(
            "postgres_upsert: skipped (build with --features postgres and set STREAMFORGE_BENCH_POSTGRES_URL)"
        ),
    }
}

criterion_group!(benches, store_upsert);
criterion_main!(benches);
