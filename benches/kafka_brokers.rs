//! Apache Kafka against tansu on the same real data: the 1,225,514 Binance 1m candles of 20 symbols
//! in `../shared/data/klines/selskas_spot_1m_5m_2021/1m/` (another folder of freqtrade kline files:
//! `STREAMFORGE_BENCH_KLINES`). For each broker that is set (`STREAMFORGE_TEST_KAFKA` Apache Kafka,
//! `STREAMFORGE_TEST_TANSU` tansu; `.ci/run` shows how to start both): every candle published to
//! one topic of 3 partitions (producer records/s, acknowledged), then drained by a node's connector
//! family — the group's assigner and a connector per partition — into a fresh SQLite file (consume
//! → decode → upsert → commit: records/s and CPU per record of this process; the broker's CPU is
//! not counted). One pass per broker, printed as a table.
//! Run: `cargo bench --features kafka --bench kafka_brokers`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streamforge::actors::connector::ConnectorRoute;
use streamforge::app::NodeContext;
use streamforge::bus::OutRecord;
use streamforge::config::{BrokerFlavor, Config};
use streamforge::model::DataRecord;
use streamforge::replay::ReplayData;
use streamforge::supervision::{Strategy, Tree};

mod common;
use common::{cpu_time, unique};

fn klines_dir() -> PathBuf {
    std::env::var_os("STREAMFORGE_BENCH_KLINES").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/klines/selskas_spot_1m_5m_2021/1m")
    })
}

/// Every candle of the folder as a bus record keyed by symbol.
fn records() -> Vec<OutRecord> {
    let dir = klines_dir();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&dir, root.path().join("klines")).unwrap();
    let data = ReplayData::load(root.path()).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    data.all_candles("1m".parse().unwrap())
        .into_iter()
        .flat_map(|(symbol, candles)| {
            candles.into_iter().map(move |c| OutRecord::keyed(symbol.clone(), DataRecord::Candle(c).to_bytes()))
        })
        .collect()
}

struct Pass {
    produce: Duration,
    drain: Duration,
    drain_cpu: Duration,
}

async fn pass(addr: &str, flavor: BrokerFlavor, records: &[OutRecord]) -> Pass {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    config.bus.url = format!("kafka://{addr}");
    config.bus.kafka.flavor = flavor;
    let ctx = NodeContext::open(config).await.unwrap();
    let topic = unique("bench-brokers");
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();
    let t0 = Instant::now();
    ctx.bus.publish(&topic, records.to_vec()).await.unwrap();
    let produce = t0.elapsed();

    let route = ConnectorRoute {
        queue_id: "bench".into(),
        topic,
        group: unique("bench-brokers-group"),
        collection: "bench_candles".into(),
    };
    let family = ctx.partitioned_connectors(route);
    let stored = ctx.metrics.records_out.with_label_values(&["connector"]);
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut tree = Tree::start(ctx.supervisor_args("bench", Strategy::OneForOne, vec![family])).await.unwrap();
    while stored.get() < records.len() as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (drain, drain_cpu) = (t0.elapsed(), cpu_time() - c0);
    tree.shutdown();
    tree.wait_for(Duration::from_secs(60)).await.unwrap();
    Pass { produce, drain, drain_cpu }
}

fn main() {
    let records = records();
    let n = records.len() as f64;
    println!("{} candles from {}", records.len(), klines_dir().display());
    println!("| broker | produce (acknowledged) | connector path | connector CPU per record |");
    println!("|---|---|---|---|");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for (name, var, flavor) in [
        ("Apache Kafka", "STREAMFORGE_TEST_KAFKA", BrokerFlavor::Kafka),
        ("tansu", "STREAMFORGE_TEST_TANSU", BrokerFlavor::Tansu),
    ] {
        let Ok(addr) = std::env::var(var) else {
            println!("| {name} | {var} not set: skipped | | |");
            continue;
        };
        let p = rt.block_on(pass(&addr, flavor, &records));
        println!(
            "| {name} | {:.0} records/s ({:.1} s) | {:.0} records/s ({:.1} s) | {:.2} µs |",
            n / p.produce.as_secs_f64(),
            p.produce.as_secs_f64(),
            n / p.drain.as_secs_f64(),
            p.drain.as_secs_f64(),
            p.drain_cpu.as_secs_f64() * 1e6 / n
        );
    }
}
