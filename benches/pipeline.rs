//! Throughput benchmarks for the embedded defaults:
//! - `kline_decode`: Binance `/api/v3/klines` JSON → `Candle`, records/s on one core;
//! - `record_decode`: bus records (candles, depth events) decoded and encoded, records/s;
//! - `bus_handoff`: the in-process bus alone, publish → poll → commit in batches, records/s;
//! - `embedded_pipeline`: in-process bus → connector → SQLite (file, WAL), records/s end to end,
//!   from the first publish to the last commit.
//!
//! Inputs are real: the recorded REST body in `tests/fixtures/rest/` and the bundled 1m candles.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamforge::actors::connector::{ConnectorRoute, ConnectorShared};
use streamforge::app::NodeContext;
use streamforge::bus::memory::MemoryBus;
use streamforge::bus::{commit_positions, Bus, GroupEvent, OutRecord};
use streamforge::config::Config;
use streamforge::model::{Candle, DataRecord, DepthUpdate, Interval};
use streamforge::replay::ReplayData;
use streamforge::supervision::{Restart, Strategy, SupervisorArgs, Tree};

/// A 1000-row klines body: the 10 recorded rows repeated with consecutive open times.
fn klines_body() -> Vec<u8> {
    let body = include_str!("../tests/fixtures/rest/http_spot_market_klines.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
    let mut out = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut r = rows[i % rows.len()].clone();
        r[0] = (1_634_943_780_000i64 + i as i64 * 60_000).into();
        out.push(r);
    }
    serde_json::to_vec(&out).unwrap()
}

fn kline_decode(c: &mut Criterion) {
    let body = klines_body();
    let interval: Interval = "1m".parse().unwrap();
    let mut g = c.benchmark_group("kline_decode");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("rest_page_1000_rows", |b| {
        b.iter(|| Candle::from_rest_klines("BTCUSDT", interval, std::hint::black_box(&body), i64::MAX).unwrap())
    });
    g.finish();
}

/// What the connector pays per bus message (JSON bytes → `DataRecord`) and the loaders per record
/// (`DataRecord` → JSON bytes), for candles and for the depth events of the ETHUSDT capture.
fn record_decode(c: &mut Criterion) {
    let candles: Vec<Vec<u8>> = records(1).into_iter().map(|(_, b)| b).collect();
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let depth: Vec<Vec<u8>> = data.symbols["ETHUSDT"]
        .ws
        .iter()
        .filter(|r| r.stream.ends_with("@depth@100ms"))
        .map(|r| DataRecord::DepthUpdate(DepthUpdate::from_ws(r.data().as_bytes()).unwrap()).to_bytes())
        .collect();
    let mut g = c.benchmark_group("record_decode");
    for (name, bytes) in [("candle", &candles), ("depth_update", &depth)] {
        g.throughput(Throughput::Elements(bytes.len() as u64));
        g.bench_function(format!("bus_{name}_json"), |b| {
            b.iter(|| bytes.iter().map(|m| DataRecord::from_bytes(m).unwrap()).collect::<Vec<_>>())
        });
        let decoded: Vec<DataRecord> = bytes.iter().map(|m| DataRecord::from_bytes(m).unwrap()).collect();
        g.bench_function(format!("bus_{name}_encode"), |b| {
            b.iter(|| decoded.iter().map(DataRecord::to_bytes).collect::<Vec<_>>())
        });
    }
    g.finish();
}

/// The bundled candles, copied under `copies` symbol names to make a larger load.
fn records(copies: usize) -> Vec<(String, Vec<u8>)> {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let interval: Interval = "1m".parse().unwrap();
    let mut out = Vec::new();
    for copy in 0..copies {
        for (symbol, d) in &data.symbols {
            let Some(rows) = d.klines.get(&interval) else {
                continue;
            };
            let name = format!("{symbol}{copy}");
            for r in rows.iter() {
                let candle = r.candle(&name, interval);
                out.push((name.clone(), DataRecord::Candle(candle).to_bytes()));
            }
        }
    }
    out
}

async fn one_pipeline_run(records: &[(String, Vec<u8>)]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let ctx = NodeContext::open(config).await.unwrap();
    ctx.bus.ensure_topic("bench-data", 3).await.unwrap();
    let shared = Arc::new(ConnectorShared::default());
    shared.drain.store(true, Ordering::Release);
    let route = ConnectorRoute {
        queue_id: "bench".into(),
        topic: "bench-data".into(),
        group: "bench".into(),
        collection: "bench_candles".into(),
    };
    let spec = ctx.connector_child(route, shared.clone(), Restart::Transient);
    let started = Instant::now();
    let out: Vec<OutRecord> = records.iter().map(|(k, v)| OutRecord::keyed(k, v.clone())).collect();
    ctx.bus.publish("bench-data", out).await.unwrap();
    let mut tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("bench", Strategy::OneForOne, vec![spec])
    })
    .await
    .unwrap();
    tree.wait().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(shared.written.load(Ordering::Acquire), records.len() as u64);
    elapsed
}

/// The in-process bus alone: batches of 2000 candles published, polled by a group member's
/// partition consumer and committed, as a loader hands records to a connector.
fn bus_handoff(c: &mut Criterion) {
    let records: Vec<OutRecord> = records(1).into_iter().map(|(k, v)| OutRecord::keyed(&k, v)).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bus = MemoryBus::new(32 << 20);
    let mut consumer = rt.block_on(async {
        bus.ensure_topic("handoff", 1).await.unwrap();
        let member = bus.join("bench", "handoff").await.unwrap();
        assert!(matches!(member.next_event().await.unwrap(), GroupEvent::Assigned(_)));
        member.partition(0).await.unwrap()
    });
    let mut g = c.benchmark_group("bus_handoff");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("memory_publish_poll_commit", |b| {
        b.iter(|| {
            rt.block_on(async {
                for batch in records.chunks(2000) {
                    bus.publish("handoff", batch.to_vec()).await.unwrap();
                    let mut got = 0;
                    while got < batch.len() {
                        let messages = consumer.poll(2000, Duration::from_secs(1)).await.unwrap();
                        got += messages.len();
                        consumer.commit(&commit_positions(&messages)).await.unwrap();
                    }
                }
            })
        })
    });
    g.finish();
}

fn embedded_pipeline(c: &mut Criterion) {
    let records = records(4);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("embedded_pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("bus_connector_sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(one_pipeline_run(&records));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, kline_decode, record_decode, bus_handoff, embedded_pipeline);
criterion_main!(benches);
