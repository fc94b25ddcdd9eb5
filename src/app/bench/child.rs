//! One bench path, run in the process that measures it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::meter::{peak_rss_mb, Mark};
use super::{BenchPath, PathReport, Plan};
use crate::actors::connector::{ConnectorRoute, ConnectorShared};
use crate::admin::metrics::Metrics;
use crate::app::node::Node;
use crate::app::run::{self, RunOptions};
use crate::app::{AppError, NodeContext};
use crate::config::{Config, ConnectorRouteConfig, StreamConfig};
use crate::exchange::binance::backfill_kind;
use crate::model::Interval;
use crate::supervision::{Restart, Strategy, SupervisorArgs, Tree};

/// How often the measuring loop looks at the node's counters.
const WATCH_EVERY: Duration = Duration::from_millis(5);
/// Longest the websocket path waits for the books published when the recording's streams end.
const END_OF_STREAM_BOOKS_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn run(plan: Plan, mut config: Config) -> Result<PathReport, AppError> {
    config.binance.rest_url = plan.rest_url.clone();
    config.binance.ws_url = plan.ws_url.clone();
    match plan.path {
        BenchPath::Rest => rest(plan, config).await,
        BenchPath::Connector => connector(plan, config).await,
        BenchPath::Websocket => websocket(plan, config).await,
        BenchPath::Drain => drain(plan, config).await,
    }
}

/// Figures from two marks and the node's metrics.
fn report(plan: &Plan, records: u64, from: Mark, to: Mark, metrics: &Metrics, since: &str) -> PathReport {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    let cpu = to.cpu.saturating_sub(from.cpu).as_secs_f64();
    let ms = |q| metrics.record_latency_quantile(since, q).map(|s| s * 1000.0);
    PathReport {
        path: plan.path,
        unit: if plan.path == BenchPath::Websocket { "ws_messages" } else { "candles" }.into(),
        records,
        stored: metrics.records_out.with_label_values(&["connector"]).get(),
        seconds,
        records_per_s: if seconds > 0.0 { records as f64 / seconds } else { 0.0 },
        latency_since: since.into(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        peak_rss_mb: peak_rss_mb(),
        cpu_us_per_record: if records > 0 { cpu * 1e6 / records as f64 } else { 0.0 },
    }
}

/// Waits until the metric family `name` sums to at least `n`, then marks the moment.
async fn when_total(metrics: &Metrics, name: &str, n: f64) -> Mark {
    while metrics.total(name) < n {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    Mark::now()
}

/// The backfill as `run` does it, against the parent's replay server.
async fn rest(plan: Plan, config: Config) -> Result<PathReport, AppError> {
    let kind = backfill_kind(&format!("api_candles_{}", plan.interval))
        .ok_or_else(|| AppError::Usage(format!("cannot load {} klines", plan.interval)))?;
    let options = RunOptions {
        config,
        symbols: plan.symbols.clone(),
        kind,
        start_ms: Some(plan.range.0),
        end_ms: Some(plan.range.1),
        offline_data: None,
        archive: false,
    };
    let from = Mark::now();
    let handle = run::start(options).await?;
    let metrics = handle.context().metrics.clone();
    let summary = handle.finish().await?;
    let to = Mark::now();
    Ok(report(&plan, summary.records, from, to, &metrics, "append"))
}

/// A connector draining a topic of candles: the one the parent filled, or one this process
/// publishes to as the connector drains it.
async fn connector(plan: Plan, config: Config) -> Result<PathReport, AppError> {
    let ctx = NodeContext::open(config).await?;
    let shared = Arc::new(ConnectorShared::default());
    let (topic, publisher) = match &plan.topic {
        Some(topic) => {
            shared.drain.store(true, Ordering::Release);
            (topic.clone(), None)
        }
        None => {
            let topic = "bench-connector".to_owned();
            ctx.bus.ensure_topic(&topic, ctx.config.bus.partitions).await?;
            let data = crate::app::load_recording(&plan.data).await?;
            let interval: Interval = plan.interval.parse().map_err(|e| AppError::Usage(format!("{e}")))?;
            let (bus, shared, to) = (ctx.bus.clone(), shared.clone(), topic.clone());
            let publisher = tokio::spawn(async move {
                super::publish_candles(bus.as_ref(), |_| Some(to.as_str()), &data, interval).await?;
                shared.drain.store(true, Ordering::Release);
                Ok::<(), crate::bus::BusError>(())
            });
            (topic, Some(publisher))
        }
    };
    let route = ConnectorRoute {
        queue_id: "bench-connector".into(),
        topic,
        group: "bench-connector".into(),
        collection: "bench_candles".into(),
    };
    let spec = ctx.connector_child(route, shared.clone(), Restart::Transient);
    let mut tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("bench", Strategy::OneForOne, vec![spec])
    })
    .await?;
    // From the first record taken (a Kafka consumer first joins its group: not the path's cost).
    let first = when_total(&ctx.metrics, "streamforge_records_in_total", 1.0);
    let (first, ended) = tokio::join!(first, tree.wait());
    ended?;
    let to = Mark::now();
    if let Some(p) = publisher {
        p.await.map_err(|e| AppError::JobFailed(e.to_string()))??;
    }
    let records = shared.written.load(Ordering::Acquire);
    Ok(report(&plan, records, first, to, &ctx.metrics, "poll"))
}

/// A node whose config has one `[[connectors]]` route per symbol's topic, from the first record
/// taken until every candle is stored. On the in-process bus this process publishes them too.
async fn drain(plan: Plan, mut config: Config) -> Result<PathReport, AppError> {
    config.connectors = plan
        .topics
        .iter()
        .map(|(symbol, topic)| ConnectorRouteConfig {
            topic: topic.clone(),
            collection: format!("bench_drain_{}", symbol.to_ascii_lowercase()),
            group: Some(format!("{topic}-group")),
        })
        .collect();
    quiet_node(&mut config);
    let node = Node::start(config, None).await?;
    let publisher = (!plan.filled).then(|| {
        let (bus, data, topics) = (node.ctx.bus.clone(), plan.data.clone(), plan.topics.clone());
        let interval = plan.interval.clone();
        tokio::spawn(async move {
            let data = crate::app::load_recording(&data).await?;
            let interval: Interval = interval.parse().map_err(|e| AppError::Usage(format!("{e}")))?;
            let topic_of = |s: &str| topics.iter().find(|(symbol, _)| symbol == s).map(|(_, t)| t.as_str());
            super::publish_candles(bus.as_ref(), topic_of, &data, interval).await?;
            Ok::<(), AppError>(())
        })
    });
    let metrics = node.ctx.metrics.clone();
    let first = when_total(&metrics, "streamforge_records_in_total", 1.0).await;
    while metrics.records_out.with_label_values(&["connector"]).get() < plan.expect {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let to = Mark::now();
    if let Some(p) = publisher {
        p.await.map_err(|e| AppError::JobFailed(e.to_string()))??;
    }
    let report = report(&plan, plan.expect, first, to, &metrics, "poll");
    let mut tree = node.tree;
    tree.shutdown();
    tree.wait_for(Duration::from_secs(30)).await?;
    Ok(report)
}

/// Only what a path measures: no admin port to collide on, no monitor, queue-manager or dummy.
fn quiet_node(config: &mut Config) {
    config.node.admin_addr = "127.0.0.1:0".into();
    config.monitor.enabled = false;
    config.queue_manager.enabled = false;
    config.dummy.enabled = false;
}

/// A node streaming the recorded trades and depth of the plan's symbols into the store.
async fn websocket(plan: Plan, mut config: Config) -> Result<PathReport, AppError> {
    let stream = |kind: &str, topic: &str| StreamConfig {
        kind: kind.into(),
        symbols: plan.symbols.clone(),
        topic: topic.into(),
        ..Default::default()
    };
    config.streams = vec![stream("trade", "bench-trades"), stream("depth", "bench-depth")];
    let route = |topic: &str, collection: &str| ConnectorRouteConfig {
        topic: topic.into(),
        collection: collection.into(),
        group: Some(format!("bench-{collection}")),
    };
    config.connectors = vec![route("bench-trades", "bench_trades"), route("bench-depth", "bench_depth")];
    quiet_node(&mut config);
    let node = Node::start(config, None).await?;
    let metrics = node.ctx.metrics.clone();
    // Start-up (connections, snapshots) is left out: from the first message on.
    let first = when_total(&metrics, "streamforge_ws_messages_total", 1.0).await;
    when_total(&metrics, "streamforge_ws_messages_total", plan.expect as f64).await;
    let count = |actor: &str| metrics.records_out.with_label_values(&[actor]).get();
    // The recording's end closes the streams, and each book is published as it was then: wait for
    // those (one record per symbol beyond the messages), unless a book never synchronised.
    let books = Instant::now() + END_OF_STREAM_BOOKS_WAIT;
    while count("loader-ws") < plan.expect + plan.symbols.len() as u64 && Instant::now() < books {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    // Then until the connectors have committed everything the loaders published.
    while count("connector") < count("loader-ws") {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let to = Mark::now();
    let records = metrics.total("streamforge_ws_messages_total") as u64;
    let report = report(&plan, records, first, to, &metrics, "append");
    let mut tree = node.tree;
    tree.shutdown();
    tree.wait_for(Duration::from_secs(30)).await?;
    Ok(report)
}
