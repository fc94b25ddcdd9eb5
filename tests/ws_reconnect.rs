//! The WebSocket aggTrade loader against the replay server on the real XRPETH recording (freqtrade
//! aggTrades, served as the live `xrpeth@aggTrade` stream): the connection is dropped mid-stream
//! and 1,500 trades pass while the loader is away. Reconnection plus REST backfill must leave no
//! hole in the published aggregate-trade ids, and publish none twice.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamforge::actors::sequenced_stream::{Published, SequencedStream, SequencedStreamArgs};
use streamforge::actors::stream::StreamArgs;
use streamforge::actors::{DeadLetter, DeadLetters};
use streamforge::admin::metrics::Metrics;
use streamforge::bus::memory::MemoryBus;
use streamforge::bus::topics::DEAD_LETTER;
use streamforge::bus::Bus;
use streamforge::exchange::binance::{BinanceRest, BinanceWs, LinkPolicy, SequencedKind, TradeStream, WeightLimiter};
use streamforge::model::DataRecord;
use streamforge::replay::{HostileFrame, ReplayFaults, ReplayServer};
use streamforge::supervision::{Backoff, ChildSpec, Restart, Strategy, SupervisorArgs, Tree};

/// The aggregate-trade ids of the recording, read straight from the file.
fn recorded_ids() -> Vec<i64> {
    common::recorded_agg_trades().iter().map(|t| t["a"].as_i64().unwrap()).collect()
}

/// The trade ids of the capture's `ethusdt@trade` messages, read straight from the files.
fn recorded_trade_ids() -> Vec<i64> {
    common::recorded_capture_trades().iter().map(|t| t["t"].as_i64().unwrap()).collect()
}

/// Runs the loader of `kind` on `symbol` against a replay server with `faults` until `want` ids
/// are published; checks no id is missing or published twice; returns (reconnects, backfilled,
/// restarts of the loader, the dead letters it sent).
async fn loader_publishes_every_trade_once(
    faults: ReplayFaults,
    kind: Arc<dyn SequencedKind>,
    symbol: &str,
    want: Vec<i64>,
) -> (u64, u64, u64, Vec<DeadLetter>) {
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(64 << 20));
    bus.ensure_topic("xrp-trades", 3).await.unwrap();
    let mut consumer = bus.subscribe("check", "xrp-trades").await.unwrap();
    bus.ensure_topic(DEAD_LETTER, 1).await.unwrap();
    let mut letters = bus.subscribe("check", DEAD_LETTER).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let dead_letters = DeadLetters::new(bus.clone(), metrics.clone());
    let (rest, ws) = (
        BinanceRest::new(&server.rest_url(), metrics.clone(), Arc::new(WeightLimiter::new(1.0))).unwrap(),
        BinanceWs::new(&server.ws_url()).unwrap(),
    );
    let (b, m, symbol, label) = (bus.clone(), metrics.clone(), symbol.to_owned(), kind.label());
    let published = Published::default();
    let spec = ChildSpec::with_heartbeat(
        "loader-ws",
        "loader",
        Restart::Permanent,
        Some(Duration::from_secs(30)),
        move |heartbeat| {
            let args = StreamArgs {
                symbols: vec![symbol.clone()],
                topic: "xrp-trades".into(),
                ws: ws.clone(),
                rest: rest.clone(),
                bus: b.clone(),
                metrics: m.clone(),
                dead_letters: dead_letters.clone(),
                heartbeat,
                link: LinkPolicy {
                    backoff: Backoff {
                        min: Duration::from_millis(50),
                        max: Duration::from_millis(500),
                        reset_after: Duration::from_secs(60),
                        jitter: 0.5,
                    },
                    silence: Duration::from_secs(2),
                    max_age: Duration::from_secs(23 * 3600),
                },
            };
            (SequencedStream, SequencedStreamArgs { stream: args, kind: kind.clone(), published: published.clone() })
        },
    );
    let tree =
        Tree::start(SupervisorArgs::new("test", Strategy::OneForOne, vec![spec], metrics.clone())).await.unwrap();

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want.len() {
        assert!(Instant::now() < deadline, "only {} of {} trades published", got.len(), want.len());
        for m in consumer.poll(5_000, Duration::from_millis(200)).await.unwrap() {
            let DataRecord::Trade(t) = DataRecord::from_bytes(&m.payload).unwrap() else { panic!("a trade") };
            got.push(t.id);
        }
    }
    // Give a late duplicate the chance to show up.
    let extra = consumer.poll(5_000, Duration::from_millis(300)).await.unwrap();
    let letters: Vec<DeadLetter> = letters
        .poll(100, Duration::from_millis(100))
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    tree.shutdown();
    server.stop().await;

    assert!(extra.is_empty(), "{} trades published twice", extra.len());
    let unique: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no trade published twice");
    assert_eq!(unique.into_iter().collect::<Vec<_>>(), want, "every recorded id, no hole");
    (
        metrics.ws_reconnects.with_label_values(&[label]).get(),
        metrics.backfilled.with_label_values(&[label]).get(),
        metrics.restarts.with_label_values(&["loader"]).get(),
        letters,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_is_reconnected_and_backfilled_without_a_hole() {
    let faults = ReplayFaults { drop_ws_after: Some(4_000), ws_drop_skips: 1_500, ..Default::default() };
    let (reconnects, backfilled, restarts, _) =
        loader_publishes_every_trade_once(faults, Arc::new(TradeStream::Aggregated), "XRPETH", recorded_ids()).await;
    assert!(reconnects >= 1, "the dropped connection was noticed");
    assert_eq!(restarts, 0, "a lost connection is the link's business, not a failure");
    assert!(backfilled >= 1_500, "the trades passed while away came over REST: {backfilled}");
}

/// Malformed frames in the stream (half of a message, sent before it) are skipped: counted,
/// dead-lettered with their raw text, and the connection — with every other stream on it — goes
/// on (it used to be torn down and reopened for each one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_is_dead_lettered_and_skipped_without_a_reconnect() {
    let kind = Arc::new(TradeStream::Aggregated);
    // The recording's end closes the connection too: that is the baseline to compare with.
    let clean = loader_publishes_every_trade_once(ReplayFaults::default(), kind.clone(), "XRPETH", recorded_ids());
    let (clean_reconnects, ..) = clean.await;
    let faults = ReplayFaults {
        hostile_ws: vec![(100, HostileFrame::Truncated), (2_000, HostileFrame::Truncated)],
        ..Default::default()
    };
    let (reconnects, backfilled, restarts, letters) =
        loader_publishes_every_trade_once(faults, kind, "XRPETH", recorded_ids()).await;
    assert_eq!(reconnects, clean_reconnects, "no reconnect beyond the recording's end");
    assert_eq!((backfilled, restarts), (0, 0), "nothing was missed, nothing failed");
    assert_eq!(letters.len(), 2, "{letters:?}");
    for letter in &letters {
        assert_eq!((letter.reason.as_str(), letter.consumer.as_str()), ("malformed", "loader-ws"));
        assert_eq!(letter.source_topic, "xrp-trades");
        assert!(letter.payload.starts_with("{\"stream\":\"xrpeth@aggTrade\""), "the raw text: {}", letter.payload);
        assert!(serde_json::from_str::<serde_json::Value>(&letter.payload).is_err(), "it was cut: {}", letter.payload);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_detected_replaced_and_backfilled_without_a_hole() {
    let faults = ReplayFaults { silence_ws_after: Some(6_000), ws_drop_skips: 1_000, ..Default::default() };
    let (reconnects, backfilled, restarts, _) =
        loader_publishes_every_trade_once(faults, Arc::new(TradeStream::Aggregated), "XRPETH", recorded_ids()).await;
    assert!(reconnects >= 1, "the silent connection was given up");
    assert_eq!(restarts, 0, "a lost connection is the link's business, not a failure");
    assert!(backfilled >= 1_000, "the trades passed while silent came over REST: {backfilled}");
}

/// The same on the real `ethusdt@trade` capture: the missed trades come from `historicalTrades`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_trade_stream_is_backfilled_from_historical_trades_without_a_hole() {
    let faults = ReplayFaults { drop_ws_after: Some(5_000), ws_drop_skips: 2_000, ..Default::default() };
    let (reconnects, backfilled, restarts, _) =
        loader_publishes_every_trade_once(faults, Arc::new(TradeStream::Every), "ETHUSDT", recorded_trade_ids()).await;
    assert!(reconnects >= 1);
    assert_eq!(restarts, 0, "a lost connection is the link's business, not a failure");
    assert!(backfilled >= 2_000, "the trades passed while away came over REST: {backfilled}");
}

/// The node as configured by `[[streams]]` + `[[connectors]]`, offline: the recorded XRPETH trades
/// go WebSocket → bus → connector → SQLite, every one exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_streams_recorded_trades_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = common::test_config(&url);
    config.node.admin_addr = "127.0.0.1:0".into();
    config.streams = vec![streamforge::config::StreamConfig {
        kind: "aggTrade".into(),
        symbols: vec!["XRPETH".into()],
        topic: "xrpeth-aggtrades".into(),
        ..Default::default()
    }];
    config.connectors = vec![streamforge::config::ConnectorRouteConfig {
        topic: "xrpeth-aggtrades".into(),
        collection: "xrpeth_aggtrades".into(),
        group: None,
    }];
    let node = streamforge::app::node::Node::start(config, Some(common::sample_dir())).await.unwrap();
    let store = node.ctx.store.clone();
    let want = recorded_ids().len() as u64;
    common::wait_until("every recorded trade stored", Duration::from_secs(60), || async {
        let rows =
            store.collections().await.unwrap().iter().find(|c| c.name == "xrpeth_aggtrades").map_or(0, |c| c.rows);
        (rows == want).then_some(())
    })
    .await;
    node.run_until(async {}).await.unwrap();
    let rows = store.collections().await.unwrap().iter().find(|c| c.name == "xrpeth_aggtrades").map_or(0, |c| c.rows);
    assert_eq!(rows, want, "exactly the recorded trades, none twice");
}

/// A node with `[[streams]] kind = "kline_1m"`, offline: the recorded BTCUSDT candles arrive as
/// closed kline events and end in the store exactly as recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_streams_closed_klines_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = common::test_config(&url);
    config.node.admin_addr = "127.0.0.1:0".into();
    config.streams = vec![streamforge::config::StreamConfig {
        kind: "kline_1m".into(),
        symbols: vec!["BTCUSDT".into()],
        topic: "btcusdt-klines".into(),
        ..Default::default()
    }];
    config.connectors = vec![streamforge::config::ConnectorRouteConfig {
        topic: "btcusdt-klines".into(),
        collection: "btcusdt_klines_1m".into(),
        group: None,
    }];
    let node = streamforge::app::node::Node::start(config, Some(common::sample_dir())).await.unwrap();
    let store = node.ctx.store.clone();
    let want = common::recorded_candles("BTC_USDT-1m.json.gz");
    common::wait_until("every recorded candle stored", Duration::from_secs(60), || async {
        let got = store.candles("btcusdt_klines_1m", "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
        (got.len() == want.len()).then_some(got)
    })
    .await
    .iter()
    .zip(&want)
    .for_each(|(g, w)| assert_eq!((g.open_time, [g.open, g.high, g.low, g.close, g.volume]), (w.open_time, w.ohlcv)));
    node.run_until(async {}).await.unwrap();
}

/// REST answers 503 now and then while the loader backfills: the loader fails, its supervisor
/// restarts it, and the new incarnation resumes from the last record the failed one published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_that_fails_mid_backfill_resumes_where_it_stopped() {
    let faults = ReplayFaults {
        drop_ws_after: Some(4_000),
        ws_drop_skips: 3_500,
        server_error_every: Some(3),
        ..Default::default()
    };
    let (reconnects, backfilled, restarts, _) =
        loader_publishes_every_trade_once(faults, Arc::new(TradeStream::Aggregated), "XRPETH", recorded_ids()).await;
    assert!(reconnects >= 1);
    assert!(restarts >= 1, "a 503 failed the loader and it was restarted");
    assert!(backfilled >= 3_500, "{backfilled}");
}

/// Binance carries at most 1,024 streams on one connection: 2,100 symbols take three loaders, each
/// with its own connection. (Their WebSocket URL is a closed loopback port: the loaders keep
/// retrying, nothing leaves the machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_1024_symbols_are_spread_over_several_connections() {
    let mut config = common::test_config("sqlite::memory:");
    config.node.admin_addr = "127.0.0.1:0".into();
    config.binance.ws_url = "ws://127.0.0.1:9".into();
    config.binance.rest_url = "http://127.0.0.1:9".into();
    let symbols: Vec<String> = (0..2_100).map(|i| format!("SYM{i}USDT")).collect();
    config.streams = vec![streamforge::config::StreamConfig {
        kind: "aggTrade".into(),
        symbols,
        topic: "many-trades".into(),
        ..Default::default()
    }];
    let node = streamforge::app::node::Node::start(config, None).await.unwrap();
    let loaders: Vec<String> =
        node.tree.view().children_of("streamforge-0/loaders").into_iter().map(|c| c.id).collect();
    node.run_until(async {}).await.unwrap();
    assert_eq!(
        loaders,
        ["stream:aggTrade:many-trades:0", "stream:aggTrade:many-trades:1", "stream:aggTrade:many-trades:2"]
    );
}
