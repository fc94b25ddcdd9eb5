//! Binance's request-weight rules against the replay server on the real recording: the server
//! answers 429 with `Retry-After` (injected every few requests) and bans (418) a client that does
//! not wait, or that asks during a ban. The loaders must wait as told and never be banned; a node
//! that finds itself banned sends nothing until the ban is over.

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

/// A backfill of `symbols` (3 days, 500-row pages, concurrently) against a server with `faults`:
/// every recorded candle must be stored; returns what the server saw.
async fn backfill_stores_every_candle(symbols: &[&str], faults: ReplayFaults) -> streamforge::replay::ReplayStats {
    let server = server(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = test_config(&url);
    config.binance.rest_url = server.rest_url();
    config.loader.page_limit = 500;
    let summary = backfill(RunOptions {
        config,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        kind: streamforge::exchange::binance::backfill_kind("api_candles_1m").unwrap(),
        start_ms: Some(parse_date_or_time_ms("2021-04-24").unwrap()),
        end_ms: Some(parse_date_or_time_ms("2021-04-27").unwrap()),
        offline_data: None,
        archive: false,
    })
    .await
    .unwrap();
    let stats = server.stats();
    server.stop().await;
    let db = store::open(&url).await.unwrap();
    for loaded in &summary.symbols {
        let file = format!("{}_USDT-1m.json.gz", loaded.symbol.trim_end_matches("USDT"));
        let recorded = recorded_candles(&file);
        let stored = db.candles(&loaded.collection, &loaded.symbol, 0, i64::MAX).await.unwrap();
        assert_eq!(stored.len(), recorded.len(), "every {} candle arrived despite the faults", loaded.symbol);
        for (got, want) in stored.iter().zip(&recorded) {
            assert_eq!(
                (got.open_time, [got.open, got.high, got.low, got.close, got.volume]),
                (want.open_time, want.ohlcv)
            );
        }
    }
    assert_eq!(summary.symbols.len(), symbols.len());
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_429s_injected_the_loader_waits_as_told_and_is_never_banned() {
    let stats = backfill_stores_every_candle(
        &["ETHUSDT"],
        ReplayFaults { rate_limit_every: Some(3), retry_after_secs: 1, ..Default::default() },
    )
    .await;
    assert!(stats.rate_limited >= 2, "429s were injected: {stats:?}");
    assert_eq!(stats.banned, 0, "never asked before Retry-After passed: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_5xx_injected_the_loader_retries_and_stores_every_candle_once() {
    let stats =
        backfill_stores_every_candle(&["ETHUSDT"], ReplayFaults { server_error_every: Some(3), ..Default::default() })
            .await;
    assert!(stats.server_errors >= 2, "503s were injected: {stats:?}");
    assert_eq!(stats.banned, 0);
}

/// The node starts while its IP is banned (for 3 s here; Binance's bans last minutes to days, and
/// a request during one starts it again): the first request learns of the ban, and then no request
/// of any of the three concurrent loaders goes out until it is over — the server counts every
/// request it refuses, so one refusal is all there may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_holds_every_request_of_the_node_until_it_is_over() {
    let faults = ReplayFaults { banned_at_start: true, ban: std::time::Duration::from_secs(3), ..Default::default() };
    let stats = backfill_stores_every_candle(&["BTCUSDT", "ETHUSDT", "SOLUSDT"], faults).await;
    assert_eq!(stats.banned, 1, "only the request that found the ban was refused: {stats:?}");
    assert!(stats.requests["klines"] >= 3 * 9, "all three loaded after the ban: {stats:?}");
}

/// Every request 429s (`Retry-After: 1`): one call waits out five in a row and reports the error,
/// but the budget stays held for the last one's wait too, so the next call does not go out early
/// (which would earn a ban).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_repeated_429s_the_next_request_still_waits_as_told() {
    use std::sync::Arc;
    use streamforge::exchange::binance::{BinanceRest, WeightLimiter};
    use streamforge::model::Interval;
    let server = server(ReplayFaults { rate_limit_every: Some(1), retry_after_secs: 1, ..Default::default() }).await;
    let metrics = Arc::new(streamforge::admin::metrics::Metrics::new());
    let rest = BinanceRest::new(&server.rest_url(), metrics, Arc::new(WeightLimiter::new(1.0))).unwrap();
    let start = parse_date_or_time_ms("2021-04-24").unwrap();
    for _ in 0..2 {
        let err =
            rest.klines("ETHUSDT", "1m".parse::<Interval>().unwrap(), start, start + 60_000, 1).await.unwrap_err();
        assert!(err.to_string().contains("429"), "{err}");
        assert!(!err.is_terminal(), "a retry after the wait is safe");
    }
    let stats = server.stats();
    server.stop().await;
    assert_eq!((stats.rate_limited, stats.banned), (10, 0), "{stats:?}");
}
