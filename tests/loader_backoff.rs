//! A loader whose exchange has gone away fails, and its supervisor restarts it with growing delays
//! (exponential backoff, capped) instead of spinning. Paused tokio time; the exchange is a closed
//! loopback port, so every connection is refused at once.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use streamforge::app::run::{start, RunOptions};
use streamforge::bus::topics;
use streamforge::model::{EventStatus, QueueEvent};

#[tokio::test(start_paused = true)]
async fn a_loader_whose_exchange_is_gone_backs_off_instead_of_spinning() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = common::test_config("sqlite::memory:");
    config.binance.rest_url = format!("http://127.0.0.1:{port}");
    config.supervision.backoff_min_ms = 1_000;
    config.supervision.backoff_max_ms = 8_000;
    config.supervision.backoff_jitter = 0.0;
    config.supervision.max_restarts = 100;
    config.supervision.within_secs = 3_600;
    let opts = RunOptions {
        config,
        symbols: vec!["BTCUSDT".into()],
        kind: streamforge::exchange::binance::backfill_kind("api_candles_1m").unwrap(),
        start_ms: Some(1_619_222_400_000),
        end_ms: Some(1_619_308_800_000),
        offline_data: None,
        archive: false,
    };
    let handle = start(opts).await.unwrap();
    let mut events = handle.context().bus.subscribe("test", topics::QUEUE_EVENTS).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut seen: Vec<QueueEvent> = Vec::new();
    let restarts = |seen: &[QueueEvent]| -> Vec<QueueEvent> {
        seen.iter()
            .filter(|e| e.status == EventStatus::Restarting && e.producer.starts_with("loader:"))
            .cloned()
            .collect()
    };
    while restarts(&seen).len() < 6 {
        assert!(started.elapsed() < Duration::from_secs(600), "too few restarts: {seen:#?}");
        let batch = events.poll(100, Duration::from_millis(100)).await.unwrap();
        seen.extend(batch.iter().map(|m| serde_json::from_slice::<QueueEvent>(&m.payload).unwrap()));
    }
    let delays: Vec<u64> = restarts(&seen).iter().map(|e| e.extra["delay_ms"].as_u64().unwrap()).collect();
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 8_000, 8_000], "doubling, capped at the maximum");
    let errors = seen.iter().filter(|e| e.status == EventStatus::Error && e.producer.starts_with("loader-api")).count();
    assert_eq!(errors, 6, "each incarnation reports its failure once: {seen:#?}");
    assert!(seen.iter().any(|e| e.message.as_deref().is_some_and(|m| m.contains("cannot reach"))));
    // Six incarnations took at least the sum of the delays: no spinning.
    assert!(started.elapsed() >= Duration::from_millis(1_000 + 2_000 + 4_000 + 8_000 + 8_000));
    let wf = &handle.workflows()[0];
    let loader = handle.tree().find(&format!("loader:{}:{}", wf.job.queue_id, wf.collection)).unwrap();
    assert!(loader.restarts >= 6);
    handle.tree().shutdown();
}
