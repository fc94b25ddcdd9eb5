//! Graceful shutdown: a node asked to stop stops its tree top-down in reverse order, and the
//! connector writes and commits the partial batch it holds before it stops — nothing is left
//! uncommitted, nothing is lost.

mod common;

use std::time::Duration;

use common::{sample_dir, wait_until};
use streamforge::app::node::Node;

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_commits_the_connectors_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = common::test_config(&url);
    config.node.admin_addr = "127.0.0.1:0".into();
    // One day of ETHUSDT: 1,440 candles, fewer than a batch, and a flush interval far away: the
    // connector holds them all in memory, uncommitted, when the node is told to stop.
    config.connector.batch_size = 5_000;
    config.connector.flush_interval_ms = 600_000;
    config.job.symbol = Some("ETHUSDT".into());
    config.job.kind = Some("api_candles_1m".into());
    config.job.time_range = Some("2021-04-24:2021-04-25".into());
    config.job.collection_name = Some("ethusdt_api_candles_1m_2021_04_24".into());
    config.job.queue_id = Some("wf-ethusdt-api_candles_1m-20210424-abcdef".into());
    let node = Node::start(config, Some(sample_dir())).await.unwrap();
    let ctx = node.ctx.clone();
    wait_until("the connector to hold all 1,440 candles", Duration::from_secs(20), || async {
        (metric(&ctx.metrics.render(), "streamforge_records_in_total{actor=\"connector\"}") == Some(1440)).then_some(())
    })
    .await;
    let topic = "wf-ethusdt-api_candles_1m-20210424-abcdef-data";
    let group = "connector-ethusdt_api_candles_1m_2021_04_24";
    let lag = |ctx: streamforge::app::NodeContext| async move {
        ctx.bus.lag(group, topic).await.unwrap().iter().map(|p| p.lag()).sum::<u64>()
    };
    assert_eq!(lag(ctx.clone()).await, 1440, "nothing committed yet");
    assert_eq!(ctx.store.high_water_mark("ethusdt_api_candles_1m_2021_04_24", "ETHUSDT").await.unwrap(), None);

    node.run_until(async {}).await.unwrap();

    let stored = ctx.store.candles("ethusdt_api_candles_1m_2021_04_24", "ETHUSDT", 0, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), 1440, "the partial batch was written on the way down");
    assert_eq!(lag(ctx.clone()).await, 0, "and committed");
    let metrics = ctx.metrics.render();
    for family in ["connector", "loader", "admin"] {
        assert_eq!(
            metric(&metrics, &format!("streamforge_actor_up{{actor=\"{family}\"}}")),
            Some(0),
            "{family} is down"
        );
    }
}
