//! The graph builder on the bundled real 1h candles (`data/markets`, 100 Binance USDT pairs):
//! rolling correlations against direct computation, alignment across a missing candle, and the
//! snapshots `streamforge graph --offline` stores, read back through the store.

mod common;

use std::collections::HashMap;
use std::path::Path;

use streamforge::app::graph::{build, GraphOptions, MARKETS_DATA};
use streamforge::graph::{align, pearson, GraphBuilder, GraphConfig, Rolling};
use streamforge::model::{Candle, Interval};
use streamforge::replay::ReplayData;

fn markets() -> ReplayData {
    ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(MARKETS_DATA)).unwrap()
}

fn hour() -> Interval {
    "1h".parse().unwrap()
}

fn candles(data: &ReplayData, symbol: &str) -> Vec<Candle> {
    data.candles(symbol, hour())
}

#[test]
fn rolling_correlations_match_a_direct_computation_at_every_step() {
    let data = markets();
    let symbols = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "XRPUSDT"];
    let series: Vec<(String, Vec<Candle>)> = symbols.iter().map(|s| (s.to_string(), candles(&data, s))).collect();
    let aligned = align(&series, hour().millis()).unwrap();
    let config = GraphConfig { name: "t".into(), window: 168, min_periods: 84, threshold: 0.0, top_k: 0, every: 1 };
    let mut builder = GraphBuilder::new(config, aligned.symbols.clone(), aligned.step_ms);
    let (mut checked, mut worst) = (0, 0.0f64);
    for row in &aligned.rows {
        builder.step(row);
        let rolling: &Rolling = builder.rolling();
        for i in 0..symbols.len() {
            for j in (0..symbols.len()).filter(|&j| j != i) {
                let (fast, direct) = (rolling.correlation(i, j, 84), rolling.correlation_direct(i, j, 84));
                match (fast, direct) {
                    (Some(a), Some(b)) => {
                        worst = worst.max((a - b).abs());
                        checked += 1;
                    }
                    (None, None) => {}
                    other => panic!("at {} ({i},{j}): {other:?}", row.time),
                }
            }
        }
    }
    assert!(checked > 5_000 * 12, "{checked} correlations checked");
    assert!(worst < 1e-9, "running sums drift from the direct computation by {worst:e}");
    // And the direct computation is Pearson's: BTC/ETH over the last window by hand.
    let n = aligned.rows.len();
    let r = |k: usize, t: usize| {
        let (a, b) = (aligned.rows[t - 1].bars[k]?, aligned.rows[t].bars[k]?);
        Some((b.close / a.close).ln())
    };
    let pairs: Vec<(f64, f64)> = (n - 168..n).filter_map(|t| Some((r(0, t)?, r(1, t)?))).collect();
    let by_hand = pearson(&pairs, 84).unwrap();
    let rolling = builder.rolling().correlation(0, 1, 84).unwrap();
    assert!((by_hand - rolling).abs() < 1e-9, "{by_hand} vs {rolling}");
    assert!(rolling > 0.5, "BTC and ETH move together: {rolling}");
}

#[test]
fn a_missing_candle_leaves_every_other_value_in_place() {
    let data = markets();
    let btc = candles(&data, "BTCUSDT");
    let mut eth = candles(&data, "ETHUSDT");
    let full = align(&[("BTCUSDT".into(), btc.clone()), ("ETHUSDT".into(), eth.clone())], hour().millis()).unwrap();
    let removed = eth.remove(1000);
    let holed = align(&[("BTCUSDT".into(), btc), ("ETHUSDT".into(), eth)], hour().millis()).unwrap();
    assert_eq!(full.rows.len(), holed.rows.len());
    for (a, b) in full.rows.iter().zip(&holed.rows) {
        assert_eq!(a.time, b.time);
        assert_eq!(a.bars[0], b.bars[0]);
        if a.time == removed.open_time {
            assert_eq!(b.bars[1], None, "the hole is where the candle was");
        } else {
            assert_eq!(a.bars[1], b.bars[1], "at {}", a.time);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_symmetric_respect_threshold_and_top_k_and_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let symbols: Vec<String> = [
        "BTCUSDT", "ETHUSDT", "ADAUSDT", "DOGEUSDT", "XRPUSDT", "LTCUSDT", "LINKUSDT", "DOTUSDT", "EOSUSDT", "TRXUSDT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let config =
        GraphConfig { name: "corr_1h_w72".into(), window: 72, min_periods: 36, threshold: 0.6, top_k: 3, every: 24 };
    let opts = GraphOptions {
        config: common::test_config(&url),
        symbols: symbols.clone(),
        interval: hour(),
        start_ms: Some(1_609_459_200_000), // 2021-01-01
        end_ms: Some(1_614_556_800_000),   // 2021-03-01
        offline_data: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(MARKETS_DATA)),
        graph: config.clone(),
    };
    let built = build(opts).await.unwrap();
    assert_eq!(built.symbols, 10);
    assert_eq!(built.steps, 59 * 24);
    assert!(built.snapshots.len() >= 55, "a snapshot a day once warm: {}", built.snapshots.len());
    let store = streamforge::store::open(&url).await.unwrap();
    for s in &built.snapshots {
        let g = store.graph(&config.name, s.time).await.unwrap().expect("stored");
        assert_eq!(g.vertices.len(), 10);
        assert_eq!(g.edges.len(), s.edges);
        let span = g.window_end - g.window_start;
        assert!(span <= 73 * 3_600_000 && span > 36 * 3_600_000, "at most 72 returns, 73 candles: {span}");
        if s.time >= built.snapshots[0].time + 72 * 3_600_000 {
            assert_eq!(span, 73 * 3_600_000, "a full window: 72 returns need 73 candles");
        }
        let weight: HashMap<(&str, &str), f64> =
            g.edges.iter().map(|e| ((e.from.as_str(), e.to.as_str()), e.weight)).collect();
        for e in &g.edges {
            assert_ne!(e.from, e.to, "no self-loops");
            assert!(e.weight.abs() >= config.threshold, "threshold: {e:?}");
            assert_eq!(weight.get(&(e.to.as_str(), e.from.as_str())), Some(&e.weight), "symmetric: {e:?}");
        }
        // Each edge is among the 3 strongest of one of its ends: a vertex's own 3 strongest
        // candidates are all kept, so they are also the 3 strongest of its kept edges.
        for e in &g.edges {
            let rank = |v: &str, other: &str| {
                let mut mine: Vec<f64> = g.edges.iter().filter(|x| x.from == v).map(|x| x.weight.abs()).collect();
                mine.sort_by(|a, b| b.total_cmp(a));
                let w = weight[&(v, other)].abs();
                mine.iter().position(|x| *x == w).unwrap()
            };
            assert!(rank(&e.from, &e.to) < 3 || rank(&e.to, &e.from) < 3, "top-k: {e:?}");
        }
    }
    // Written and read back equal: rebuild one snapshot in memory from the same candles.
    let last = built.snapshots.last().unwrap();
    let stored = store.graph(&config.name, last.time).await.unwrap().unwrap();
    let data = markets();
    let series: Vec<(String, Vec<Candle>)> = symbols
        .iter()
        .map(|s| {
            let c =
                candles(&data, s).into_iter().filter(|c| (1_609_459_200_000..1_614_556_800_000).contains(&c.open_time));
            (s.clone(), c.collect())
        })
        .collect();
    let aligned = align(&series, hour().millis()).unwrap();
    let mut builder = GraphBuilder::new(config, aligned.symbols.clone(), aligned.step_ms);
    let again = aligned.rows.iter().filter_map(|r| builder.step(r)).find(|g| g.time == last.time).unwrap();
    let mut want = again.clone();
    want.vertices.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    want.edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    assert_eq!(stored, want, "the store gives back exactly the snapshot built");
}
