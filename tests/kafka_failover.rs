//! Failures with Kafka as the bus, end to end on real processes: two nodes in one consumer group
//! lose one to SIGKILL, and the broker itself stops for 15 s mid-stream. The store must end with
//! every source record exactly once. Built with `--features kafka`; needs `tansu` on PATH (for the
//! outage test, which runs its own broker) and the CI broker (`STREAMFORGE_TEST_KAFKA`).
#![cfg(feature = "kafka")]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{recorded_candles, FileCandle};
use streamforge::actors::connector::{ConnectorRoute, ConnectorShared};
use streamforge::app::NodeContext;
use streamforge::bus::OutRecord;
use streamforge::model::{Candle, DataRecord};
use streamforge::store::{self, Store};
use streamforge::supervision::{Restart, Strategy, SupervisorArgs, Tree};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The bundled candles of one symbol as records, keyed `<symbol>-<day>` so they spread over
/// partitions.
fn source(symbol: &str, file: &str) -> Vec<(FileCandle, OutRecord)> {
    recorded_candles(file)
        .into_iter()
        .map(|f| {
            let [open, high, low, close, volume] = f.ohlcv;
            let candle = Candle {
                symbol: symbol.into(),
                interval: "1m".parse().unwrap(),
                open_time: f.open_time,
                close_time: f.open_time + 59_999,
                open,
                high,
                low,
                close,
                volume,
                quote_volume: None,
                trades: None,
                taker_buy_base: None,
                taker_buy_quote: None,
                closed: true,
            };
            let key = format!("{symbol}-{}", f.open_time / 86_400_000);
            (f, OutRecord::keyed(key, DataRecord::Candle(candle).to_bytes()))
        })
        .collect()
}

/// Every stored candle of `symbol` equals the source, and there are exactly as many.
async fn assert_exactly(store: &Arc<dyn Store>, collection: &str, symbol: &str, want: &[FileCandle]) {
    let got = store.candles(collection, symbol, i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(got.len(), want.len(), "{symbol}: row count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.open_time, [g.open, g.high, g.low, g.close, g.volume]), (w.open_time, w.ohlcv), "{symbol}");
    }
}

async fn wait_rows(store: &Arc<dyn Store>, collection: &str, rows: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = store.collections().await.unwrap().iter().find(|c| c.name == collection).map_or(0, |c| c.rows);
        if now >= rows {
            return;
        }
        assert!(Instant::now() < deadline, "only {now} of {rows} rows after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Node(Child, String);

impl Node {
    fn start(config: &std::path::Path, store: &str, log: &std::path::Path) -> Node {
        let admin = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args(["node", "--config"])
            .arg(config)
            .args(["--bus", &format!("kafka://{}", common::kafka_broker()), "--store", store, "--admin-addr", &admin])
            .env("STREAMFORGE__LOG__LEVEL", "info,actix_server=warn,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Node(child, format!("http://{admin}"))
    }

    async fn metric(&self, name: &str) -> Option<u64> {
        let text = reqwest::get(format!("{}/metrics", self.1)).await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Broker incompatibility (tansu 0.6.0): when a group's *leader* dies, tansu keeps it as the
/// leader of the next generation, so SyncGroup answers REBALANCE_IN_PROGRESS to the survivors for
/// ever and the group never recovers. A Kafka broker drops the dead leader after its session
/// timeout. The test therefore starts the nodes one after the other — the first to join leads the
/// group — and kills the second; the survivor must then take the dead node's partitions over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_partitions_and_the_survivor_takes_over_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let topic = common::unique_name("failover");
    let collection = "candles_failover";
    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        cfg,
        "[bus]\npartitions = 6\n[bus.kafka]\nsession_timeout_ms = 10000\n[connector]\nbatch_size = 500\nflush_interval_ms = 200\n\
         [[connectors]]\ntopic = \"{topic}\"\ncollection = \"{collection}\"\ngroup = \"{topic}-group\""
    )
    .unwrap();
    let mut publisher_cfg = common::test_config("sqlite::memory:");
    publisher_cfg.bus.url = format!("kafka://{}", common::kafka_broker());
    publisher_cfg.bus.partitions = 6;
    let ctx = NodeContext::open(publisher_cfg).await.unwrap();
    // The publisher may come first: the topic must not depend on which node has started.
    ctx.bus.ensure_topic(&topic, 6).await.unwrap();
    let sources =
        [("BTCUSDT", "BTC_USDT-1m.json.gz"), ("ETHUSDT", "ETH_USDT-1m.json.gz"), ("SOLUSDT", "SOL_USDT-1m.json.gz")]
            .map(|(s, f)| (s, source(s, f)));
    let all: Vec<OutRecord> = sources.iter().flat_map(|(_, v)| v.iter().map(|(_, r)| r.clone())).collect();
    let total = all.len() as u64;
    let third = all.len() / 3;
    let logs = std::env::temp_dir();
    let consumed = "streamforge_records_in_total{actor=\"connector\"}";
    let connectors_up = "streamforge_actor_up{actor=\"connector\"}";

    // The first node alone: it leads the group and owns every partition.
    let a = Node::start(cfg.path(), &store_url, &logs.join(format!("{topic}-a.log")));
    ctx.bus.publish(&topic, all[..third].to_vec()).await.unwrap();
    wait_metric(&a, consumed, |n| n > 0, "the first node consumes").await;

    // The second joins: the partitions are split between the two.
    let mut b = Node::start(cfg.path(), &store_url, &logs.join(format!("{topic}-b.log")));
    wait_metric(&b, connectors_up, |n| n > 0, "the second node is assigned partitions").await;
    wait_metric(&a, connectors_up, |n| n < 6, "the first node gives partitions up").await;
    ctx.bus.publish(&topic, all[third..2 * third].to_vec()).await.unwrap();
    wait_metric(&b, consumed, |n| n > 0, "the second node consumes its partitions").await;

    b.0.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye to the group.
    b.0.wait().unwrap();
    ctx.bus.publish(&topic, all[2 * third..].to_vec()).await.unwrap();

    let store = store::open(&store_url).await.unwrap();
    wait_rows(&store, collection, total, Duration::from_secs(120)).await;
    for (symbol, src) in &sources {
        let want: Vec<FileCandle> = src.iter().map(|(f, _)| f.clone()).collect();
        assert_exactly(&store, collection, symbol, &want).await;
    }
    wait_metric(&a, connectors_up, |n| n == 6, "the survivor owns every partition").await;
    let mut a = a;
    Command::new("kill").args(["-TERM", &a.0.id().to_string()]).status().unwrap();
    assert_eq!(a.0.wait().unwrap().code(), Some(0));
}

/// Waits (up to a minute) until `node`'s metric `name` satisfies `ok`.
async fn wait_metric(node: &Node, name: &str, ok: impl Fn(u64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = node.metric(name).await;
        if now.is_some_and(&ok) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {name} is {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_of_15_s_loses_and_duplicates_nothing() {
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new("tansu")
        .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu is installed (see .ci/run)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "private broker did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut config = common::test_config("sqlite::memory:");
    config.bus.url = format!("kafka://127.0.0.1:{port}");
    config.connector.batch_size = 200;
    let ctx = NodeContext::open(config).await.unwrap();
    let topic = common::unique_name("outage");
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();

    let shared = Arc::new(ConnectorShared::default());
    let route = ConnectorRoute {
        queue_id: "wf-outage".into(),
        topic: topic.clone(),
        group: format!("{topic}-g"),
        collection: "btc_outage".into(),
    };
    let spec = ctx.connector_child(route, shared.clone(), Restart::Transient);
    let mut tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("outage", Strategy::OneForOne, vec![spec])
    })
    .await
    .unwrap();

    let src = source("BTCUSDT", "BTC_USDT-1m.json.gz");
    let records: Vec<OutRecord> = src.iter().map(|(_, r)| r.clone()).collect();
    let chunks: Vec<Vec<OutRecord>> = records.chunks(200).map(|c| c.to_vec()).collect();
    let bus = ctx.bus.clone();
    let publisher = tokio::spawn(async move {
        for chunk in chunks {
            bus.publish(&topic, chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let wait_written = |n: u64| {
        let shared = shared.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while shared.written.load(Ordering::Acquire) < n {
                assert!(Instant::now() < deadline, "connector stuck below {n}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_written(1000).await;
    let pid = broker.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    tokio::time::timeout(Duration::from_secs(180), publisher).await.unwrap().unwrap();
    shared.drain.store(true, Ordering::Release);
    tree.wait_for(Duration::from_secs(180)).await.unwrap();

    let want: Vec<FileCandle> = src.iter().map(|(f, _)| f.clone()).collect();
    assert_exactly(&ctx.store, "btc_outage", "BTCUSDT", &want).await;
    let _ = broker.kill();
    let _ = broker.wait();
}
