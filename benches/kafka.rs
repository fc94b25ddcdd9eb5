//! Through a real Kafka-protocol broker on loopback (`STREAMFORGE_TEST_KAFKA`, default
//! 127.0.0.1:9092; `.ci/run` shows how to start Apache Kafka; for tansu also set
//! `STREAMFORGE_BENCH_FLAVOR=tansu`): producer records/s, and the connector path
//! (consume → decode → SQLite upsert → commit) in records/s and CPU time per record of this process
//! alone (the broker's CPU excluded). Run: `cargo bench --features kafka --bench kafka`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamforge::actors::connector::{ConnectorRoute, ConnectorShared};
use streamforge::app::NodeContext;
use streamforge::bus::OutRecord;
use streamforge::config::Config;
use streamforge::model::{DataRecord, Interval};
use streamforge::replay::ReplayData;
use streamforge::supervision::{Restart, Strategy, SupervisorArgs, Tree};

mod common;
use common::{cpu_time, unique};

const RECORDS: usize = 48_432; // the bundled candles, four times

fn records() -> Vec<OutRecord> {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let interval: Interval = "1m".parse().unwrap();
    let mut out = Vec::new();
    for copy in 0..4 {
        for (symbol, d) in &data.symbols {
            let Some(rows) = d.klines.get(&interval) else { continue };
            for r in rows.iter() {
                let candle = r.candle(&format!("{symbol}{copy}"), interval);
                out.push(OutRecord::keyed(&candle.symbol, DataRecord::Candle(candle.clone()).to_bytes()));
            }
        }
    }
    assert_eq!(out.len(), RECORDS);
    out
}

async fn context(store: &str) -> NodeContext {
    let mut config = Config::default();
    config.store.url = store.to_owned();
    config.bus.url = format!("kafka://{}", std::env::var("STREAMFORGE_TEST_KAFKA").unwrap_or("127.0.0.1:9092".into()));
    if std::env::var("STREAMFORGE_BENCH_FLAVOR").is_ok_and(|f| f == "tansu") {
        config.bus.kafka.flavor = streamforge::config::BrokerFlavor::Tansu;
    }
    NodeContext::open(config).await.unwrap()
}

/// A node on a fresh SQLite file, a new topic holding `records`, and a route that consumes it.
async fn published(prefix: &str, records: &[OutRecord]) -> (tempfile::TempDir, NodeContext, ConnectorRoute) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
    let topic = unique(prefix);
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();
    ctx.bus.publish(&topic, records.to_vec()).await.unwrap();
    let route = ConnectorRoute {
        queue_id: "bench".into(),
        topic,
        group: unique("bench-group"),
        collection: "bench_candles".into(),
    };
    (dir, ctx, route)
}

fn kafka(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let records = records();
    let mut g = c.benchmark_group("kafka");
    g.sample_size(10).measurement_time(Duration::from_secs(30)).throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("produce_acknowledged", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let ctx = context("sqlite::memory:").await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let topic = unique("bench-produce");
                    ctx.bus.ensure_topic(&topic, 3).await.unwrap();
                    let t0 = Instant::now();
                    ctx.bus.publish(&topic, records.clone()).await.unwrap();
                    total += t0.elapsed();
                }
                total
            })
        })
    });
    let (mut cpu, mut n) = (Duration::ZERO, 0u64);
    g.bench_function("connector_consume_decode_sqlite_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, ctx, route) = published("bench-connector", &records).await;
                    // Steady state: the connector is not told to drain until it has stored everything,
                    // so the measurement is consume → decode → upsert → commit, not end-of-stream checks.
                    let shared = Arc::new(ConnectorShared::default());
                    let spec = ctx.connector_child(route, shared.clone(), Restart::Transient);
                    let (t0, c0) = (Instant::now(), cpu_time());
                    let mut tree = Tree::start(SupervisorArgs {
                        auto_shutdown: true,
                        ..ctx.supervisor_args("bench", Strategy::OneForOne, vec![spec])
                    })
                    .await
                    .unwrap();
                    while shared.written.load(Ordering::Acquire) < RECORDS as u64 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    total += t0.elapsed();
                    cpu += cpu_time() - c0;
                    shared.drain.store(true, Ordering::Release);
                    tree.wait().await.unwrap();
                    n += shared.written.load(Ordering::Acquire);
                }
                total
            })
        })
    });
    let (mut pcpu, mut pn) = (Duration::ZERO, 0u64);
    g.bench_function("partitioned_connectors_consume_decode_sqlite_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, ctx, route) = published("bench-partitioned", &records).await;
                    // A node's path: the group's assigner and one connector per partition.
                    let family = ctx.partitioned_connectors(route);
                    let stored = ctx.metrics.records_out.with_label_values(&["connector"]);
                    let (t0, c0) = (Instant::now(), cpu_time());
                    let mut tree =
                        Tree::start(ctx.supervisor_args("bench", Strategy::OneForOne, vec![family])).await.unwrap();
                    while stored.get() < RECORDS as u64 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    total += t0.elapsed();
                    pcpu += cpu_time() - c0;
                    pn += stored.get();
                    tree.shutdown();
                    tree.wait_for(Duration::from_secs(30)).await.unwrap();
                }
                total
            })
        })
    });
    g.finish();
    for (path, cpu, n) in [("connector", cpu, n), ("partitioned connectors", pcpu, pn)] {
        if n > 0 {
            println!(
                "{path} path CPU per record (this process): {:.2} µs over {n} records",
                cpu.as_secs_f64() * 1e6 / n as f64
            );
        }
    }
}

criterion_group!(benches, kafka);
criterion_main!(benches);
