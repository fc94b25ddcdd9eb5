//! Kill the connector mid-run: the supervisor restarts it, the records it had consumed but not
//! committed are delivered again, and the store ends with every row exactly once.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{sample_dir, test_config, wait_until};
use streamforge::actors::connector::ConnectorMsg;
use streamforge::app::run::{start, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connector_is_restarted_and_every_row_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let mut config = test_config(&url);
    // Full batches of 1000 are committed; the last 36 of 4036 candles per symbol wait in memory
    // (the flush interval is far away) when the failure hits.
    config.connector.batch_size = 1000;
    config.connector.flush_interval_ms = 600_000;
    let opts = RunOptions {
        config,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        kind: streamforge::exchange::binance::backfill_kind("api_candles_1m").unwrap(),
        start_ms: None,
        end_ms: None,
        offline_data: Some(sample_dir()),
        archive: false,
    };
    let handle = start(opts).await.unwrap();
    let wf = &handle.workflows()[0];
    let ctx = handle.context();
    let group = format!("connector-{}", wf.collection);

    // Wait until 4 batches are committed and the loader has published everything.
    let lag = wait_until("4 committed batches and a finished loader", Duration::from_secs(30), || async {
        let written = wf.connector.written.load(Ordering::Acquire);
        let done = wf.progress.borrow().done;
        let lag: u64 = ctx.bus.lag(&group, &wf.job.topic).await.unwrap().iter().map(|p| p.lag()).sum();
        (written == 4000 && done).then_some(lag)
    })
    .await;
    assert_eq!(lag, 36, "36 records are consumed or pending but not committed");

    let id = format!("connector:{}", wf.collection);
    let connector = handle.tree().find(&id).and_then(|c| c.cell).unwrap();
    connector.send_message(ConnectorMsg::Fail("test kills the connector".into())).unwrap();
    wait_until("the connector's restart", Duration::from_secs(10), || async {
        handle.tree().find(&id).filter(|c| c.restarts == 1 && c.cell.is_some()).map(|_| ())
    })
    .await;
    let info = handle.tree().find(&id).unwrap();
    assert!(info.last_error.as_deref().unwrap_or_default().contains("test kills the connector"));
    let metrics = ctx.metrics.render();
    assert!(metrics.contains("streamforge_actor_restarts_total{actor=\"connector\"} 1"), "{metrics}");

    let (bus, topic) = (ctx.bus.clone(), wf.job.topic.clone());
    let summary = handle.finish().await.unwrap();
    for s in &summary.symbols {
        assert_eq!((s.loaded, s.stored), (4036, 4036), "{}", s.symbol);
    }
    let lag: u64 = bus.lag(&group, &topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, 0, "the restarted connector consumed and committed the redelivered records");
}
