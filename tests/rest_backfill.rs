//! REST backfills beyond 1m klines, end to end through `run --offline` (replay server on loopback →
//! loader → in-process bus → connector → SQLite), each checked against the recording read
//! straight from its files:
//! - aggregate trades (`aggTrades`, paged by `fromId`) of XRPETH over a time range, and resumed
//!   after the store's newest trade;
//! - every trade (`historicalTrades`) of the ETHUSDT capture, the range located through
//!   `aggTrades?startTime=`;
//! - 1s klines of the ETHUSDT capture. The sample has no recorded 1s klines, so the replay server
//!   computes them from the capture's complete trade sequence (14,515 consecutive ids) the way
//!   Binance does; the test computes them independently from the raw messages.

mod common;

use std::collections::BTreeMap;

use common::{recorded_agg_trades, recorded_capture_trades, sample_dir, test_config};
use streamforge::app::run::{backfill, RunOptions, RunSummary};
use streamforge::exchange::binance::backfill_kind;
use streamforge::model::{Decimal, TradeKind};
use streamforge::store;

fn options(store_url: &str, job_type: &str, symbol: &str) -> RunOptions {
    let mut config = test_config(store_url);
    config.loader.page_limit = 500; // many pages
    RunOptions {
        config,
        symbols: vec![symbol.into()],
        kind: backfill_kind(job_type).unwrap(),
        start_ms: None,
        end_ms: None,
        offline_data: Some(sample_dir()),
        archive: false,
    }
}

fn dec(v: &serde_json::Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

const HOUR: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_trades_over_a_range_equal_the_recording_and_a_longer_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let recorded = recorded_agg_trades();
    let first_time = recorded[0]["T"].as_i64().unwrap();
    let (start, middle, end) = (first_time + 3 * HOUR, first_time + 20 * HOUR, first_time + 40 * HOUR);
    let in_range =
        |to: i64| recorded.iter().filter(|t| (start..to).contains(&t["T"].as_i64().unwrap())).collect::<Vec<_>>();

    let mut opts = options(&url, "api_agg_trades", "XRPETH");
    (opts.start_ms, opts.end_ms) = (Some(start), Some(middle));
    let first = backfill(opts.clone()).await.unwrap();
    let want_first = in_range(middle).len() as u64;
    assert!(want_first > 1_000, "several pages: {want_first}");
    assert_eq!((first.records, first.symbols[0].stored), (want_first, want_first));

    // The same backfill over a longer range continues after the newest stored trade.
    opts.end_ms = Some(end);
    let second = backfill(opts).await.unwrap();
    let want = in_range(end);
    assert_eq!(second.records, want.len() as u64 - want_first, "only what the store does not have yet");
    let s = &second.symbols[0];
    assert_eq!(s.collection, first.symbols[0].collection, "the same backfill writes the same collection");
    assert!(s.gaps.is_empty(), "the recording's ids are consecutive");

    let stored = store::open(&url).await.unwrap().trades(&s.collection, "XRPETH", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), want.len(), "exactly the recorded trades of the range, none twice");
    for (got, want) in stored.iter().zip(&want) {
        assert_eq!(got.kind, TradeKind::AggTrade);
        assert_eq!(got.id, want["a"].as_i64().unwrap());
        assert_eq!((got.price, got.qty), (dec(&want["p"]), dec(&want["q"])), "trade {}", got.id);
        assert_eq!(got.time, want["T"].as_i64().unwrap());
        assert_eq!(got.is_buyer_maker, want["m"].as_bool().unwrap());
        assert_eq!(got.first_trade_id, want["f"].as_i64());
        assert_eq!(got.last_trade_id, want["l"].as_i64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trade_of_the_capture_is_loaded_from_historical_trades() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let summary = backfill(options(&url, "api_trades", "ETHUSDT")).await.unwrap();
    let mut recorded = recorded_capture_trades();
    recorded.sort_by_key(|t| t["t"].as_i64().unwrap());
    recorded.dedup_by_key(|t| t["t"].as_i64().unwrap());
    let s = &summary.symbols[0];
    assert_eq!((s.loaded, s.stored), (recorded.len() as u64, recorded.len() as u64));
    assert!(s.gaps.is_empty());
    let stored = store::open(&url).await.unwrap().trades(&s.collection, "ETHUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), recorded.len());
    for (got, want) in stored.iter().zip(&recorded) {
        assert_eq!(got.kind, TradeKind::Trade);
        assert_eq!(got.id, want["t"].as_i64().unwrap());
        assert_eq!((got.price, got.qty), (dec(&want["p"]), dec(&want["q"])), "trade {}", got.id);
        assert_eq!((got.time, got.is_buyer_maker), (want["T"].as_i64().unwrap(), want["m"].as_bool().unwrap()));
    }
}

/// What a 1s kline holds, computed here from the raw messages.
#[derive(Debug, Default, PartialEq)]
struct Second {
    ohlc: Option<[Decimal; 4]>,
    volume: Decimal,
    quote: Decimal,
    trades: u64,
    taker_base: Decimal,
    taker_quote: Decimal,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_klines_equal_those_computed_from_the_recorded_trades() {
    let mut recorded = recorded_capture_trades();
    recorded.sort_by_key(|t| t["t"].as_i64().unwrap());
    recorded.dedup_by_key(|t| t["t"].as_i64().unwrap());
    let mut seconds: BTreeMap<i64, Second> = BTreeMap::new();
    for t in &recorded {
        let (price, qty, time) = (dec(&t["p"]), dec(&t["q"]), t["T"].as_i64().unwrap());
        let s = seconds.entry(time / 1000 * 1000).or_default();
        let [_, high, low, close] = s.ohlc.get_or_insert([price, price, price, price]);
        (*high, *low, *close) = ((*high).max(price), (*low).min(price), price);
        s.volume += qty;
        s.quote += price * qty;
        s.trades += 1;
        if !t["m"].as_bool().unwrap() {
            s.taker_base += qty;
            s.taker_quote += price * qty;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let summary: RunSummary = backfill(options(&url, "api_candles_1s", "ETHUSDT")).await.unwrap();
    let s = &summary.symbols[0];
    let stored = store::open(&url).await.unwrap().candles(&s.collection, "ETHUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), seconds.len(), "one kline per second with trades");
    for (c, (open_time, want)) in stored.iter().zip(&seconds) {
        assert_eq!(c.open_time, *open_time);
        assert_eq!(c.close_time, open_time + 999);
        let got = Second {
            ohlc: Some([c.open, c.high, c.low, c.close]),
            volume: c.volume,
            quote: c.quote_volume.unwrap(),
            trades: c.trades.unwrap(),
            taker_base: c.taker_buy_base.unwrap(),
            taker_quote: c.taker_buy_quote.unwrap(),
        };
        assert_eq!(&got, want, "kline at {open_time}");
    }
    let times: Vec<i64> = seconds.keys().copied().collect();
    let want_gaps = common::true_gaps(&times, 1000);
    let got_gaps: Vec<(i64, i64, u64)> = s.gaps.iter().map(|g| (g.first_missing, g.last_missing, g.missing)).collect();
    assert!(!want_gaps.is_empty(), "seconds without a trade exist in the capture");
    assert_eq!(got_gaps, want_gaps, "seconds without trades are reported as gaps, not filled");
}
