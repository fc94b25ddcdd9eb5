//! The local order book on the real recorded ETHUSDT capture (hftbacktest, bundled in
//! data/sample): the replay server plays the depth stream through the real WebSocket client and
//! serves the recorded REST snapshot; the book after the last event must equal the book derived
//! here, independently, straight from the raw capture file.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::Arc;

use streamforge::admin::metrics::Metrics;
use streamforge::app::book::{follow_book, Until};
use streamforge::exchange::binance::{BinanceRest, BinanceWs, WeightLimiter};
use streamforge::model::{BookSnapshot, DataRecord, Decimal};
use streamforge::replay::{ReplayFaults, ReplayServer};

type Side = BTreeMap<Decimal, Decimal>;

/// The first REST snapshot in the capture, then every depth event after it applied in order —
/// the plainest reading of Binance's rules, with the straddle and continuity asserted.
fn derive_from_capture() -> (i64, Side, Side) {
    let dir = common::sample_dir().join("ws/hftbacktest_raw_binance/spot");
    // The ETHUSDT capture only: the BTCUSDT files beside it have their own snapshot.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ethusdt_")))
        .collect();
    files.sort();
    let (mut last, mut bids, mut asks) = (None::<i64>, Side::new(), Side::new());
    let apply = |side: &mut Side, levels: &serde_json::Value| {
        for l in levels.as_array().unwrap() {
            let price: Decimal = l[0].as_str().unwrap().parse().unwrap();
            let qty: Decimal = l[1].as_str().unwrap().parse().unwrap();
            if qty.is_zero() {
                side.remove(&price);
            } else {
                side.insert(price, qty);
            }
        }
    };
    for file in files {
        let reader = BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap()));
        for line in reader.lines() {
            let line = line.unwrap();
            let json: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
            if let Some(id) = json.get("lastUpdateId").and_then(|v| v.as_i64()) {
                if last.is_none() {
                    last = Some(id);
                    apply(&mut bids, &json["bids"]);
                    apply(&mut asks, &json["asks"]);
                }
                continue;
            }
            let (Some(l), Some("ethusdt@depth@100ms")) = (last, json["stream"].as_str()) else { continue };
            let d = &json["data"];
            let (first, final_id) = (d["U"].as_i64().unwrap(), d["u"].as_i64().unwrap());
            if final_id <= l {
                continue;
            }
            assert!(first <= l + 1, "the capture continues its snapshot: {first} > {}", l + 1);
            apply(&mut bids, &d["b"]);
            apply(&mut asks, &d["a"]);
            last = Some(final_id);
        }
    }
    (last.unwrap(), bids, asks)
}

fn levels(side: &Side, descending: bool) -> Vec<(Decimal, Decimal)> {
    let all: Vec<_> = side.iter().map(|(p, q)| (*p, *q)).collect();
    if descending {
        all.into_iter().rev().collect()
    } else {
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_book_after_the_replayed_capture_equals_the_book_derived_from_the_raw_file() {
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, Default::default()).await.unwrap();
    let rest =
        BinanceRest::new(&server.rest_url(), Arc::new(Metrics::new()), Arc::new(WeightLimiter::new(1.0))).unwrap();
    let ws = BinanceWs::new(&server.ws_url()).unwrap();
    let run =
        follow_book(&ws, &rest, "ETHUSDT", None, Until { events: None, stop: std::future::pending() }).await.unwrap();
    server.stop().await;

    let (last, bids, asks) = derive_from_capture();
    let book = run.book.expect("the book synchronised");
    assert_eq!(run.events, 6_470, "every recorded depth event arrived");
    assert_eq!((run.snapshots, run.resyncs), (1, 0), "one snapshot, no gap in a gap-free capture");
    assert_eq!(book.last_update_id, last);
    assert_eq!(book.bids, levels(&bids, true), "bids, best first");
    assert_eq!(book.asks, levels(&asks, false), "asks, best first");
    assert!(book.bids[0].0 < book.asks[0].0, "not crossed");
}

#[test]
fn book_command_prints_the_top_levels_as_binance_decimal_strings() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["book", "--offline", "--symbol", "ETHUSDT", "--depth", "20", "--json"])
        .env_remove("STREAMFORGE_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: BookSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (last, bids, asks) = derive_from_capture();
    assert_eq!(printed.symbol, "ETHUSDT");
    assert_eq!(printed.last_update_id, last);
    assert_eq!(printed.bids, levels(&bids, true)[..20]);
    assert_eq!(printed.asks, levels(&asks, false)[..20]);
    // Prices and quantities keep Binance's eight decimals, as strings.
    assert!(raw["bids"][0][0].as_str().unwrap().ends_with(|c: char| c.is_ascii_digit()));
    assert_eq!(raw["bids"][0][0].as_str().unwrap().split('.').nth(1).map(str::len), Some(8));
    assert_eq!(raw["asks"][0][1].as_str().unwrap().split('.').nth(1).map(str::len), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_depth_event_triggers_exactly_one_resync_and_the_book_is_right_after_it() {
    let faults = ReplayFaults { drop_depth_events: vec![3_000], ..Default::default() };
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let rest =
        BinanceRest::new(&server.rest_url(), Arc::new(Metrics::new()), Arc::new(WeightLimiter::new(1.0))).unwrap();
    let ws = BinanceWs::new(&server.ws_url()).unwrap();
    let run =
        follow_book(&ws, &rest, "ETHUSDT", None, Until { events: None, stop: std::future::pending() }).await.unwrap();
    server.stop().await;

    assert_eq!(run.events, 6_469, "one event was held back");
    assert_eq!(run.resyncs, 1, "the gap was seen once");
    assert_eq!(run.snapshots, 2, "the first sync and one rebuild");
    let (last, bids, asks) = derive_from_capture();
    let book = run.book.expect("the book synchronised again");
    assert_eq!(book.last_update_id, last);
    assert_eq!(book.bids, levels(&bids, true));
    assert_eq!(book.asks, levels(&asks, false));
}

/// A node with a `[[streams]] kind = "depth"` loader, offline: every recorded depth event is
/// published, and the book snapshot published when the capture ends is the book derived here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publishes_every_depth_event_and_the_exact_book() {
    let mut config = common::test_config("sqlite::memory:");
    config.node.admin_addr = "127.0.0.1:0".into();
    config.streams = vec![streamforge::config::StreamConfig {
        kind: "depth".into(),
        symbols: vec!["ETHUSDT".into()],
        topic: "ethusdt-depth".into(),
        snapshot_ms: None,
    }];
    let node = streamforge::app::node::Node::start(config, Some(common::sample_dir())).await.unwrap();
    let mut consumer = node.ctx.bus.subscribe("check", "ethusdt-depth").await.unwrap();
    let (last, bids, asks) = derive_from_capture();
    let (mut updates, mut book) = (0, None::<BookSnapshot>);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while book.as_ref().is_none_or(|b| b.last_update_id < last) {
        assert!(
            std::time::Instant::now() < deadline,
            "{updates} depth events, book at {:?}",
            book.map(|b| b.last_update_id)
        );
        let batch = consumer.poll(10_000, std::time::Duration::from_millis(200)).await.unwrap();
        for m in &batch {
            match DataRecord::from_bytes(&m.payload).unwrap() {
                DataRecord::DepthUpdate(_) => updates += 1,
                DataRecord::BookSnapshot(s) => book = Some(s),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Committed as read: the in-process bus holds what a group has not committed, and its
        // budget is smaller than the capture.
        consumer.commit(&streamforge::bus::commit_positions(&batch)).await.unwrap();
    }
    node.run_until(async {}).await.unwrap();
    let book = book.unwrap();
    assert_eq!(updates, 6_470, "every recorded depth event published");
    assert_eq!(book.last_update_id, last);
    assert_eq!(book.bids, levels(&bids, true)[..20], "best 20 bids");
    assert_eq!(book.asks, levels(&asks, false)[..20], "best 20 asks");
}

#[test]
fn book_command_stops_after_the_events_asked_for_and_prints_the_book_so_far() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["book", "--offline", "--symbol", "ETHUSDT", "--depth", "5", "--events", "2000"])
        .env_remove("STREAMFORGE_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("ETHUSDT at update ") && header.contains("(2000 events,"), "{header}");
    assert_eq!(text.lines().count(), 1 + 5, "five levels a side:\n{text}");
}
