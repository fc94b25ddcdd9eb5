//! `run --offline` end to end on the bundled real recording: replay server (loopback) → loader →
//! in-process bus → connector → SQLite. The store must hold exactly the recorded candles.

mod common;

use common::{recorded_candles, sample_dir, test_config, true_gaps};
use streamforge::app::run::{backfill, RunOptions};
use streamforge::store;

fn options(store_url: &str) -> RunOptions {
    RunOptions {
        config: test_config(store_url),
        symbols: Vec::new(),
        kind: streamforge::exchange::binance::backfill_kind("api_candles_1m").unwrap(),
        start_ms: None,
        end_ms: None,
        offline_data: Some(sample_dir()),
        archive: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_holds_exactly_the_recorded_candles_and_reports_true_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let summary = backfill(options(&url)).await.unwrap();

    let files =
        [("BTCUSDT", "BTC_USDT-1m.json.gz"), ("ETHUSDT", "ETH_USDT-1m.json.gz"), ("SOLUSDT", "SOL_USDT-1m.json.gz")];
    assert_eq!(summary.symbols.len(), files.len(), "every recorded symbol is loaded by default");
    let store = store::open(&url).await.unwrap();
    for (symbol, file) in files {
        let recorded = recorded_candles(file);
        let s = summary.symbols.iter().find(|s| s.symbol == symbol).unwrap();
        let stored = store.candles(&s.collection, symbol, i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(stored.len(), recorded.len(), "{symbol}: row count");
        for (got, want) in stored.iter().zip(&recorded) {
            assert_eq!(got.open_time, want.open_time, "{symbol}");
            assert_eq!(
                [got.open, got.high, got.low, got.close, got.volume],
                want.ohlcv,
                "{symbol} at {}",
                got.open_time
            );
            assert_eq!(got.close_time, got.open_time + 59_999);
            assert_eq!(got.quote_volume, None, "the recording has no quote volume; none is invented");
        }
        assert_eq!((s.loaded, s.stored), (recorded.len() as u64, recorded.len() as u64));
        let times: Vec<i64> = recorded.iter().map(|c| c.open_time).collect();
        let want_gaps = true_gaps(&times, 60_000);
        let got_gaps: Vec<(i64, i64, u64)> =
            s.gaps.iter().map(|g| (g.first_missing, g.last_missing, g.missing)).collect();
        assert_eq!(got_gaps, want_gaps, "{symbol}: gaps");
        assert_eq!(got_gaps.len(), 1, "the 2021-04-25 outage is in the sample");
        assert_eq!(s.first_time, times.first().copied());
        assert_eq!(s.last_time, times.last().copied());
    }
    let wf = store.workflow(&summary.symbols[0].queue_id).await.unwrap().unwrap();
    assert_eq!((wf.status.as_str(), wf.records_written), ("finished", summary.symbols[0].loaded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_identical_run_resumes_after_the_stored_candles_and_adds_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let first = backfill(options(&url)).await.unwrap();
    let rows = |s: &streamforge::app::run::RunSummary| s.symbols.iter().map(|x| x.stored).sum::<u64>();
    let before = rows(&first);
    let second = backfill(options(&url)).await.unwrap();
    assert!(first.records > 0);
    assert_eq!(second.records, 0, "the second run starts after the store's newest candle: nothing left to load");
    assert_eq!(rows(&second), before, "and adds 0 rows");
    let all: u64 = store::open(&url).await.unwrap().collections().await.unwrap().iter().map(|c| c.rows).sum();
    assert_eq!(all, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_range_of_one_symbol_loads_only_that_range() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut opts = options(&url);
    opts.symbols = vec!["ethusdt".into()];
    opts.start_ms = Some(1_619_308_800_000); // 2021-04-25 00:00
    opts.end_ms = Some(1_619_312_400_000); // 01:00
    opts.config.loader.page_limit = 7; // many pages
    let summary = backfill(opts).await.unwrap();
    assert_eq!(summary.symbols.len(), 1);
    let s = &summary.symbols[0];
    assert_eq!((s.symbol.as_str(), s.loaded, s.stored), ("ETHUSDT", 60, 60));
    assert!(s.gaps.is_empty());
}
