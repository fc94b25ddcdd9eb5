//! Malformed JSON and a wrong-schema record on a data topic go to the dead-letter topic with the
//! reason, are counted, and the connector stores every good record and carries on.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use streamforge::actors::connector::ConnectorRoute;
use streamforge::app::NodeContext;
use streamforge::bus::{topics, OutRecord};
use streamforge::model::{Candle, DataRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_dead_lettered_and_counted_and_good_ones_stored() {
    let ctx = NodeContext::open(common::test_config("sqlite::memory:")).await.unwrap();
    let topic = "wf-test-data";
    ctx.bus.ensure_topic(topic, 3).await.unwrap();

    // Real candles (a recorded /api/v3/klines body), with the two bad messages in between.
    let body = include_bytes!("fixtures/rest/http_spot_market_klines.json");
    let candles = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap();
    let mut records: Vec<OutRecord> =
        candles.iter().map(|c| OutRecord::keyed("BTCUSDT", DataRecord::Candle(c.clone()).to_bytes())).collect();
    records.insert(3, OutRecord::keyed("BTCUSDT", &b"{\"record\":\"candle\",\"symbol\":"[..]));
    records.insert(7, OutRecord::keyed("BTCUSDT", &br#"{"record":"candle","symbol":"BTCUSDT","price":"1"}"#[..]));
    ctx.bus.publish(topic, records).await.unwrap();

    let route = ConnectorRoute {
        queue_id: "wf-test".into(),
        topic: topic.into(),
        group: "connector-test".into(),
        collection: "btcusdt_api_candles_1m_2021_10_22".into(),
    };
    let mut config = (*ctx.config).clone();
    config.connector.batch_size = 4;
    let ctx = NodeContext { config: Arc::new(config), ..ctx };
    let (shared, tree) = common::drain_with_connector(&ctx, route, Duration::from_secs(20)).await;

    let stored = ctx.store.candles("btcusdt_api_candles_1m_2021_10_22", "BTCUSDT", 0, i64::MAX).await.unwrap();
    assert_eq!(stored, candles, "all good records stored, exactly");
    assert_eq!(shared.written.load(Ordering::Acquire), 10);
    assert_eq!(tree.children().await.len(), 0, "tree is gone");

    let mut dlq = ctx.bus.subscribe("inspect", topics::DEAD_LETTER).await.unwrap();
    let letters = dlq.poll(100, Duration::from_millis(200)).await.unwrap();
    assert_eq!(letters.len(), 2);
    let reasons: Vec<String> = letters
        .iter()
        .map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap())
        .map(|v| {
            assert_eq!(v["source_topic"], topic);
            v["reason"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        reasons.contains(&"malformed_json".to_owned()) && reasons.contains(&"wrong_schema".to_owned()),
        "{reasons:?}"
    );

    let metrics = ctx.metrics.render();
    let count = |reason: &str| {
        let line = format!("streamforge_dead_letters_total{{reason=\"{reason}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    assert_eq!(count("malformed_json") + count("wrong_schema"), 2, "{metrics}");
    let lag: u64 = ctx.bus.lag("connector-test", topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, 0, "dead-lettered messages are committed past, not retried forever");
}
