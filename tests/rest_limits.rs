//! Binance's request-weight rules against the replay server on the real recording: the server
//! answers 429 with `Retry-After` (injected every few requests) and bans (418) a client that does
//! not wait. The loaders must wait as told and never be banned.

mod common;

use common::{recorded_candles, sample_dir, test_config};
use streamforge::app::run::{backfill, RunOptions};
use streamforge::model::parse_date_or_time_ms;
use streamforge::replay::{ReplayFaults, ReplayServer};
use streamforge::store;

async fn server(faults: ReplayFaults) -> ReplayServer {
    ReplayServer::start_dir(&sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ignores_a_429_is_banned() {
    let server = server(ReplayFaults { rate_limit_every: Some(1), retry_after_secs: 5, ..Default::default() }).await;
    let url = format!("{}/api/v3/ping", server.rest_url());
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status().as_u16(), 429);
    assert_eq!(first.headers()["retry-after"], "5");
    let second = reqwest::get(&url).await.unwrap();
    assert_eq!(second.status().as_u16(), 418, "asked again before Retry-After passed");
    let stats = server.stats();
    assert_eq!((stats.rate_limited, stats.banned), (1, 1));
    server.stop().await;
}

/// A backfill of ETHUSDT (3 days, 500-row pages) against a server with `faults`: every recorded
/// candle must be stored; returns what the server saw.
async fn backfill_stores_every_candle(faults: ReplayFaults) -> streamforge::replay::ReplayStats {
    let server = server(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = test_config(&url);
    config.binance.rest_url = server.rest_url();
    config.loader.page_limit = 500;
    let summary = backfill(RunOptions {
        config,
        symbols: vec!["ETHUSDT".into()],
        kind: streamforge::exchange::binance::backfill_kind("api_candles_1m").unwrap(),
        start_ms: Some(parse_date_or_time_ms("2021-04-24").unwrap()),
        end_ms: Some(parse_date_or_time_ms("2021-04-27").unwrap()),
        offline_data: None,
    })
    .await
    .unwrap();
    let stats = server.stats();
    server.stop().await;
    let recorded = recorded_candles("ETH_USDT-1m.json.gz");
    let stored =
        store::open(&url).await.unwrap().candles(&summary.symbols[0].collection, "ETHUSDT", 0, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), recorded.len(), "every candle arrived despite the faults");
    for (got, want) in stored.iter().zip(&recorded) {
        assert_eq!((got.open_time, [got.open, got.high, got.low, got.close, got.volume]), (want.open_time, want.ohlcv));
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_429s_injected_the_loader_waits_as_told_and_is_never_banned() {
    let stats = backfill_stores_every_candle(ReplayFaults {
        rate_limit_every: Some(3),
        retry_after_secs: 1,
        ..Default::default()
    })
    .await;
    assert!(stats.rate_limited >= 2, "429s were injected: {stats:?}");
    assert_eq!(stats.banned, 0, "never asked before Retry-After passed: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_5xx_injected_the_loader_retries_and_stores_every_candle_once() {
    let stats = backfill_stores_every_candle(ReplayFaults { server_error_every: Some(3), ..Default::default() }).await;
    assert!(stats.server_errors >= 2, "503s were injected: {stats:?}");
    assert_eq!(stats.banned, 0);
}
