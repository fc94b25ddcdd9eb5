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
use streamforge::app::book::{follow_book, BookRun, Until};
use streamforge::exchange::binance::{BinanceRest, BinanceWs, WeightLimiter, MAX_SNAPSHOT_LIMIT};
use streamforge::model::{BookSnapshot, DataRecord, Decimal};
use streamforge::replay::{ReplayFaults, ReplayServer};

type Side = BTreeMap<Decimal, Decimal>;

/// The ETHUSDT capture files in time order (the BTCUSDT files beside them have their own snapshot).
fn eth_capture_files() -> Vec<std::path::PathBuf> {
    let dir = common::sample_dir().join("ws/hftbacktest_raw_binance/spot");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ethusdt_")))
        .collect();
    files.sort();
    files
}

/// The first REST snapshot in the capture, then every depth event after it applied in order —
/// the plainest reading of Binance's rules, with the straddle and continuity asserted.
fn derive_from_capture() -> (i64, Side, Side) {
    let files = eth_capture_files();
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

/// ETHUSDT's book followed over the whole capture, replayed at once with `faults`, from a snapshot
/// as deep as the capture's.
async fn follow_whole_capture(faults: ReplayFaults) -> BookRun {
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let rest =
        BinanceRest::new(&server.rest_url(), Arc::new(Metrics::new()), Arc::new(WeightLimiter::new(1.0))).unwrap();
    let ws = BinanceWs::new(&server.ws_url()).unwrap();
    let until = Until { events: None, stop: std::future::pending() };
    let run = follow_book(&ws, &rest, ("ETHUSDT", MAX_SNAPSHOT_LIMIT), None, until).await.unwrap();
    server.stop().await;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_book_after_the_replayed_capture_equals_the_book_derived_from_the_raw_file() {
    let run = follow_whole_capture(ReplayFaults::default()).await;

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

/// `--snapshot-limit` sets the depth the book starts from: the capture's full depth gives the exact
/// whole book, a shallow one a book that lacks the far levels no event touched; a depth Binance
/// does not serve is refused with the range.
#[test]
fn book_command_starts_from_a_snapshot_as_deep_as_asked() {
    let book = |limit: &str| {
        Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args([
                "book",
                "--offline",
                "--symbol",
                "ETHUSDT",
                "--depth",
                "100000",
                "--json",
                "--snapshot-limit",
                limit,
            ])
            .env_remove("STREAMFORGE_LOG")
            .output()
            .unwrap()
    };
    let (_, bids, asks) = derive_from_capture();
    let full: BookSnapshot = serde_json::from_slice(&book("5000").stdout).unwrap();
    assert_eq!((&full.bids, &full.asks), (&levels(&bids, true), &levels(&asks, false)), "the whole book");
    // Five levels a side to start from: only those the events touched since are known.
    let shallow: BookSnapshot = serde_json::from_slice(&book("5").stdout).unwrap();
    assert!(shallow.bids.len() < full.bids.len(), "{} of {} bid levels", shallow.bids.len(), full.bids.len());
    assert_eq!(shallow.bids[0], levels(&bids, true)[0], "the best bid is known all the same");
    let refused = book("6000");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--snapshot-limit") && stderr.contains("1..=5000"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_depth_event_triggers_exactly_one_resync_and_the_book_is_right_after_it() {
    let run = follow_whole_capture(ReplayFaults { drop_depth_events: vec![3_000], ..Default::default() }).await;

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
    // The check's group joins once the node has started, while the loader already reads. The
    // in-process bus drops what every group that has joined committed (the dashboard's monitor is
    // one) and, once its budget is spent, the oldest records of a topic no group has joined: so no
    // monitor, and a budget that holds the whole capture (about 10 MB of depth events).
    config.monitor.enabled = false;
    config.bus.memory_bytes = 64 << 20;
    config.streams = vec![streamforge::config::StreamConfig {
        kind: "depth".into(),
        symbols: vec!["ETHUSDT".into()],
        topic: "ethusdt-depth".into(),
        ..Default::default()
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
        // Committed as read, as a reader of the in-process bus does.
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

/// Depth snapshots are fetched beside the reading (issue 16, snapshot storms): while the replay
/// server takes seconds to answer the first snapshots, the loader keeps reading and publishing both
/// streams; each symbol's snapshot has the depth the config *file* gives it, and the weight spent
/// and the time until every book was in sync are exported. Before the fix the loader fetched
/// inside its read loop, so the first book came after at most a read's worth of events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_fetched_beside_the_stream_at_the_depths_the_config_file_gives() {
    let delay = std::time::Duration::from_secs(3);
    let faults = ReplayFaults { rest_delay: delay, ..Default::default() };
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 1.0, faults).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamforge.toml");
    let text = format!(
        "[node]\nadmin_addr = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite::memory:\"\n\
         [binance]\nrest_url = \"{}\"\nws_url = \"{}\"\n\
         [[streams]]\nkind = \"depth\"\nsymbols = [\"ETHUSDT\", \"BTCUSDT\"]\ntopic = \"depth-both\"\n\
         snapshot_limit = 100\nsnapshot_limits = {{ BTCUSDT = 1000 }}\n",
        server.rest_url(),
        server.ws_url()
    );
    std::fs::write(&path, text).unwrap();
    let config = streamforge::config::load(Some(&path), Vec::new()).unwrap();
    let node = streamforge::app::node::Node::start(config, None).await.unwrap();
    let mut consumer = node.ctx.bus.subscribe("check", "depth-both").await.unwrap();
    let (mut before_first_book, mut books) = (0u64, BTreeMap::<String, BookSnapshot>::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while books.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "books {:?} after {before_first_book} events", books.keys());
        let batch = consumer.poll(10_000, std::time::Duration::from_millis(200)).await.unwrap();
        for m in &batch {
            match DataRecord::from_bytes(&m.payload).unwrap() {
                DataRecord::DepthUpdate(_) if books.is_empty() => before_first_book += 1,
                DataRecord::DepthUpdate(_) => {}
                DataRecord::BookSnapshot(s) => {
                    books.insert(s.symbol.clone(), s);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        consumer.commit(&streamforge::bus::commit_positions(&batch)).await.unwrap();
    }
    // Two streams of ten events a second, read on while the first snapshot took `delay`.
    assert!(before_first_book >= 20, "only {before_first_book} events were published before the first book");
    let url = format!("http://{}/metrics", node.admin_addr());
    let metrics = common::wait_until("every book in sync", std::time::Duration::from_secs(30), || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        let value = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or_default()
        };
        let synced = value("streamforge_book_sync_seconds_count ");
        (synced >= 1.0)
            .then(|| (value("streamforge_book_snapshot_weight_total "), value("streamforge_book_sync_seconds_sum ")))
    })
    .await;
    node.run_until(async {}).await.unwrap();
    let stats = server.stats();
    server.stop().await;

    let limits: Vec<(&str, &[usize])> = stats.depth_limits.iter().map(|(s, l)| (s.as_str(), l.as_slice())).collect();
    assert_eq!(limits, [("BTCUSDT", &[1000][..]), ("ETHUSDT", &[100][..])], "one snapshot each, at its depth");
    let served: u32 = stats.weight_by_window.values().sum();
    assert_eq!(served, 50 + 5, "the server counted limit 1000 at 50 and limit 100 at 5");
    assert_eq!(metrics.0, f64::from(served), "the weight the node counted is the server's");
    assert!(metrics.1 >= delay.as_secs_f64(), "in sync no sooner than the snapshots came: {}", metrics.1);
}

/// The final update id of every `ethusdt@depth@100ms` event of the capture, in file order.
fn recorded_depth_ids() -> Vec<i64> {
    let files = eth_capture_files();
    let mut ids = Vec::new();
    for file in files {
        for line in common::read_gz(&file).lines() {
            let json: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
            if json["stream"] == "ethusdt@depth@100ms" {
                ids.push(json["data"]["u"].as_i64().unwrap());
            }
        }
    }
    ids
}

/// The sum of every series of `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Chaos (issue 16): a broken or hostile server sends, between the recorded ETHUSDT depth
/// events, truncated JSON, garbage text (twice), a binary frame, a 2 MiB JSON frame, a message of
/// an event the stream does not carry, two pairs of events out of order, and stalls (5 s before each pair). The
/// node's depth loader, set up by a TOML file, still publishes every recorded event exactly once,
/// counts and dead-letters exactly the six bad frames by reason, resyncs its book once per
/// out-of-order pair (the later event leaves a gap in the ids, the earlier one is then stale),
/// keeps its connection until the recording ends (no restart either), and ends with the book derived from the raw
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_server_costs_no_depth_event_and_every_bad_frame_is_counted() {
    use streamforge::replay::HostileFrame::*;
    let faults = ReplayFaults {
        hostile_ws: vec![
            (400, Truncated),
            (1_200, Garbage),
            (2_000, Binary),
            (2_800, Huge(2 << 20)),
            (3_600, Unexpected),
            // Each late pair comes after a stall long enough for the book to be in sync: a pair that
            // arrives while the book still waits for a snapshot (the first one's, at the replay's
            // full speed, or the previous pair's) is absorbed by that sync — both events end up
            // older than the snapshot — which made the count 1 on a loaded CI machine.
            (3_800, Stall(std::time::Duration::from_secs(5))),
            (4_000, Late),
            (4_800, Stall(std::time::Duration::from_secs(5))),
            (5_600, Late),
            (6_000, Garbage),
        ],
        ..Default::default()
    };
    let server = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamforge.toml");
    // No monitor and a bus budget above the capture: the check's group joins after the loader has
    // started reading, and must still find every event (see the test above).
    let text = format!(
        "[node]\nadmin_addr = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite::memory:\"\n[monitor]\nenabled = false\n\
         [bus]\nmemory_bytes = 67108864\n[binance]\nrest_url = \"{}\"\nws_url = \"{}\"\n\
         [[streams]]\nkind = \"depth\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"depth-hostile\"\nsnapshot_limit = 5000\n",
        server.rest_url(),
        server.ws_url()
    );
    std::fs::write(&path, text).unwrap();
    let config = streamforge::config::load(Some(&path), Vec::new()).unwrap();
    let node = streamforge::app::node::Node::start(config, None).await.unwrap();
    let mut consumer = node.ctx.bus.subscribe("check", "depth-hostile").await.unwrap();
    let mut letters = node.ctx.bus.subscribe("check", streamforge::bus::topics::DEAD_LETTER).await.unwrap();
    let (last, bids, asks) = derive_from_capture();
    let (mut ids, mut book) = (Vec::new(), None::<BookSnapshot>);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while book.as_ref().is_none_or(|b| b.last_update_id < last) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} depth events, book at {:?}",
            ids.len(),
            book.map(|b| b.last_update_id)
        );
        let batch = consumer.poll(10_000, std::time::Duration::from_millis(200)).await.unwrap();
        for m in &batch {
            match DataRecord::from_bytes(&m.payload).unwrap() {
                DataRecord::DepthUpdate(u) => ids.push(u.final_update_id),
                DataRecord::BookSnapshot(s) => book = Some(s),
                other => panic!("unexpected {other:?}"),
            }
        }
        consumer.commit(&streamforge::bus::commit_positions(&batch)).await.unwrap();
    }
    let metrics = reqwest::get(format!("http://{}/metrics", node.admin_addr())).await.unwrap().text().await.unwrap();
    let mut dead = Vec::new();
    while dead.len() < 6 {
        assert!(std::time::Instant::now() < deadline, "dead letters so far: {dead:?}");
        for m in letters.poll(100, std::time::Duration::from_millis(200)).await.unwrap() {
            dead.push(serde_json::from_slice::<streamforge::actors::DeadLetter>(&m.payload).unwrap());
        }
    }
    node.run_until(async {}).await.unwrap();
    server.stop().await;

    let mut recorded = recorded_depth_ids();
    assert_eq!(ids.len(), recorded.len(), "every recorded depth event published once");
    ids.sort_unstable();
    recorded.sort_unstable();
    assert_eq!(ids, recorded, "the same events");
    let bad = |reason: &str| metric_sum(&metrics, &format!("streamforge_ws_bad_frames_total{{reason=\"{reason}\"}}"));
    assert_eq!((bad("malformed"), bad("binary"), bad("undecodable")), (4.0, 1.0, 1.0), "bad frames by reason");
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["binary", "malformed", "malformed", "malformed", "malformed", "undecodable"]);
    assert!(dead.iter().any(|d| d.payload.len() > 2 << 20), "the huge frame is kept whole");
    let resyncs = metric_sum(&metrics, "streamforge_book_resyncs_total");
    assert_eq!(resyncs, 2.0, "one resync per out-of-order pair");
    // The recording's end closes the connection: that is the one reconnect.
    assert_eq!(metric_sum(&metrics, "streamforge_ws_reconnects_total"), 1.0, "the connection was kept till the end");
    assert_eq!(metric_sum(&metrics, "streamforge_actor_restarts_total"), 0.0, "nothing failed");
    let book = book.unwrap();
    assert_eq!(book.bids, levels(&bids, true)[..20], "best 20 bids");
    assert_eq!(book.asks, levels(&asks, false)[..20], "best 20 asks");
    eprintln!(
        "chaos verdict: {} of {} depth events once, 6 bad frames counted and dead-lettered, {resyncs} resyncs, no reconnect before the recording's end, 0 restarts, book exact",
        ids.len(),
        recorded.len()
    );
}
