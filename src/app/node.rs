//! `streamforge node`: the long-running actor node. Its supervision tree is
//! `<node id>` (one_for_one) → `admin`, `connectors`, `loaders`, `monitor` (the dashboard's feed,
//! when the node has `[[streams]]`), `workers` (the worker host and the workers it starts on
//! command), `queue-manager`, `dummies` (see docs/supervision.md). An offline node with nothing to
//! run streams the bundled capture to the dashboard at `/ui`.
//! It runs until SIGTERM/SIGINT (then stops the tree top-down, in reverse start order) and exits
//! non-zero when the tree gives up, so that Kubernetes restarts the pod.
//!
//! One-task mode (`[job]` with a `target`, i.e. a Job of cluster mode): the tree is only `admin`
//! and `workers`, whose host runs that one worker; the node ends when the worker has, exiting
//! non-zero when it failed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::args::{Common, LogArgs};
use super::{start_replay, AppError, BackfillWorkflow, NodeContext};
use crate::actors::book_stream::{BookStream, BookStreamArgs};
use crate::actors::connector::ConnectorRoute;
use crate::actors::dummy::DummyOptions;
use crate::actors::sequenced_stream::{Published, SequencedStream, SequencedStreamArgs};
use crate::actors::stream::StreamArgs;
use crate::admin::auth::Auth;
use crate::admin::{AdminActor, AdminArgs, AdminState};
use crate::config::{Config, ConnectorRouteConfig, StreamConfig};
use crate::exchange::binance::{backfill_kind, sequenced_kind, BinanceWs, LinkPolicy, MAX_STREAMS_PER_CONNECTION};
use crate::model::parse_time_range;
use crate::model::QueueControl;
use crate::monitor::{Hub, Monitor, MonitorArgs, MonitorSource};
use crate::replay::ReplayData;
use crate::supervision::{ChildSpec, Restart, Strategy, Tree};
use crate::workers::host::{job_command, HostArgs, HostShared, JobOutcome, WorkerHost};
use crate::workflow::manager::{ManagerArgs, ManagerHandle, QueueManager};

/// `streamforge node`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: Common,
}

/// `streamforge node`: starts the node from its config and runs it until `shutdown` (or, in
/// one-task mode, until its worker has ended).
pub async fn run(args: NodeArgs, log: &LogArgs, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let common = &args.common;
    let config = args.common.config(log, |cfg| {
        let nothing_to_run = cfg.streams.is_empty() && cfg.connectors.is_empty() && !cfg.job.is_set();
        if common.offline_asked(cfg.node.offline) && nothing_to_run {
            offline_demo(cfg);
        }
    })?;
    let offline = args.common.offline_dir(&config);
    let dashboard = config.monitor.enabled && !config.streams.is_empty();
    let node = Node::start(config, offline).await?;
    if dashboard {
        println!("Dashboard: http://{}/ui", node.admin_addr());
    }
    node.run_until(shutdown).await
}

/// What an offline node runs when its configuration asks for nothing: the bundled BTCUSDT and
/// ETHUSDT capture streamed live by the replay server (trades, aggregate trades, depth with ten
/// verified books a second), connectors storing the trades in SQLite, and the dashboard.
fn offline_demo(cfg: &mut Config) {
    let symbols = vec!["BTCUSDT".to_owned(), "ETHUSDT".to_owned()];
    let stream = |kind: &str, topic: &str, snapshot_ms| StreamConfig {
        kind: kind.into(),
        symbols: symbols.clone(),
        topic: topic.into(),
        snapshot_ms,
        ..Default::default()
    };
    cfg.streams = vec![
        stream("trade", "demo-trades", None),
        stream("aggTrade", "demo-agg-trades", None),
        stream("depth", "demo-depth", Some(100)),
    ];
    let connector = |topic: &str, collection: &str| ConnectorRouteConfig {
        topic: topic.into(),
        collection: collection.into(),
        group: None,
    };
    cfg.connectors = vec![connector("demo-trades", "demo_trades"), connector("demo-agg-trades", "demo_agg_trades")];
}

/// How long a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A started node: its admin address and tree, for callers that drive it (tests, `dummy`).
pub struct Node {
    pub ctx: NodeContext,
    pub tree: Tree,
    admin_addr: SocketAddr,
    replay: Option<crate::replay::ReplayServer>,
    /// One-task mode: how its task ended, once it has.
    job: Option<watch::Receiver<Option<JobOutcome>>>,
}

/// The dummy as configured in `[dummy]`.
fn dummy_child(ctx: &NodeContext) -> ChildSpec {
    let d = &ctx.config.dummy;
    let options = DummyOptions {
        simulate_loading: d.simulate_loading,
        fail_after: (d.fail_after > 0).then_some(d.fail_after),
        ..DummyOptions::new(d.queue_id.clone(), Duration::from_millis(d.tick_ms))
    };
    ctx.dummy_child(format!("dummy:{}", d.queue_id), options, Restart::Permanent)
}

/// The admin server as the root's first child; `bound` receives its address.
fn admin_child(
    ctx: &NodeContext,
    ready: Arc<AtomicBool>,
    bound: Arc<Mutex<Option<SocketAddr>>>,
    manager: Option<ManagerHandle>,
    auth: Arc<Auth>,
    monitor: Arc<Hub>,
) -> ChildSpec {
    let state = AdminState {
        metrics: ctx.metrics.clone(),
        ready,
        view: ctx.view.clone(),
        root: ctx.config.node.id.clone(),
        lag: ctx.lag.clone(),
        store: ctx.store.clone(),
        bus: ctx.bus.clone(),
        manager,
        auth,
        monitor,
    };
    let addr = ctx.config.node.admin_addr.clone();
    ChildSpec::new("admin", "admin", Restart::Permanent, move || {
        (AdminActor, AdminArgs { addr: addr.clone(), state: state.clone(), bound: bound.clone() })
    })
}

/// The dashboard's hub over the symbols of `[[streams]]` (none when `monitor.enabled` is off) and
/// the topics its actor reads, with the collection a `[[connectors]]` entry stores each in.
fn monitor_hub(ctx: &NodeContext) -> (Arc<Hub>, Vec<MonitorSource>) {
    let c = &ctx.config;
    let streams = if c.monitor.enabled { c.streams.as_slice() } else { &[] };
    let mut symbols: Vec<(String, Duration)> = Vec::new();
    for entry in streams {
        for sym in &entry.symbols {
            match symbols.iter_mut().find(|(s, _)| s == sym) {
                Some((_, every)) if entry.kind == "depth" => *every = entry.snapshot_every(),
                Some(_) => {}
                None => symbols.push((sym.clone(), entry.snapshot_every())),
            }
        }
    }
    let sources = streams
        .iter()
        .map(|e| MonitorSource {
            topic: e.topic.clone(),
            kind: e.kind.clone(),
            symbols: e.symbols.clone(),
            collection: c.connectors.iter().find(|r| r.topic == e.topic).map(|r| r.collection.clone()),
        })
        .collect();
    (Arc::new(Hub::new(c.monitor.clone(), &symbols, ctx.metrics.clone())), sources)
}

/// The monitor actor feeding `hub` from `sources`.
fn monitor_child(ctx: &NodeContext, hub: Arc<Hub>, sources: Vec<MonitorSource>) -> ChildSpec {
    let ctx = ctx.clone();
    ChildSpec::new("monitor", "monitor", Restart::Permanent, move || {
        (Monitor, MonitorArgs { ctx: ctx.clone(), hub: hub.clone(), sources: sources.clone() })
    })
}

/// The worker host as the first child of the `workers` supervisor, which holds the workers it
/// starts on command.
fn workers_family(ctx: &NodeContext, shared: Arc<HostShared>, job: Option<QueueControl>) -> ChildSpec {
    let host_ctx = ctx.clone();
    let host = ChildSpec::new("worker-host", "host", Restart::Permanent, move || {
        (WorkerHost, HostArgs { ctx: host_ctx.clone(), shared: shared.clone(), job: job.clone() })
    });
    ctx.family("workers", Strategy::OneForOne, vec![host], false)
}

/// queue-manager, reachable through `handle`.
fn manager_child(ctx: &NodeContext, handle: ManagerHandle, recorded: Option<Arc<ReplayData>>) -> ChildSpec {
    let ctx = ctx.clone();
    ChildSpec::new("queue-manager", "queue-manager", Restart::Permanent, move || {
        let args = ManagerArgs { ctx: ctx.clone(), handle: handle.clone(), recorded: recorded.clone() };
        (QueueManager, args)
    })
}

impl Node {
    /// Starts everything the configuration asks for; `offline_data` overrides `node.offline_data`.
    pub async fn start(mut config: Config, offline_data: Option<PathBuf>) -> Result<Node, AppError> {
        let offline = offline_data.or_else(|| config.node.offline.then(|| PathBuf::from(&config.node.offline_data)));
        let (replay, recorded) = match offline {
            Some(dir) => {
                let (server, data) = start_replay(&dir, config.node.replay_speed).await?;
                config.binance.rest_url = server.rest_url();
                config.binance.ws_url = server.ws_url();
                (Some(server), Some(data))
            }
            None => (None, None),
        };
        let ctx = NodeContext::open(config).await?;
        let ready = Arc::new(AtomicBool::new(false));
        let bound = Arc::new(Mutex::new(None));
        let auth = Arc::new(Auth::from_config(&ctx.config.admin).map_err(AppError::Usage)?);
        if let Some(job) = job_command(&ctx.config.job) {
            let shared = Arc::<HostShared>::default();
            let outcome = shared.outcome();
            let none = Arc::new(Hub::new(ctx.config.monitor.clone(), &[], ctx.metrics.clone()));
            let children = vec![
                admin_child(&ctx, ready.clone(), bound.clone(), None, auth, none),
                workers_family(&ctx, shared, Some(job)),
            ];
            let mut node = Node::grow(ctx, children, ready, bound, replay).await?;
            node.job = Some(outcome);
            return Ok(node);
        }
        let (mut connectors, mut loaders) = (Vec::new(), Vec::new());
        if ctx.config.job.is_set() {
            let (connector, loader) = job_children(&ctx).await?;
            connectors.push(connector);
            loaders.push(loader);
        }
        for c in &ctx.config.connectors {
            ctx.bus.ensure_topic(&c.topic, ctx.config.bus.partitions).await?;
            let route = ConnectorRoute {
                queue_id: format!("{}-{}", ctx.config.node.id, c.collection),
                topic: c.topic.clone(),
                group: c.group.clone().unwrap_or_else(|| crate::bus::topics::connector_group(&c.collection)),
                collection: c.collection.clone(),
            };
            connectors.push(ctx.partitioned_connectors(route));
        }
        loaders.extend(stream_children(&ctx).await?);
        let manager = ctx.config.queue_manager.enabled.then(ManagerHandle::default);
        let (hub, sources) = monitor_hub(&ctx);
        let mut children = vec![
            admin_child(&ctx, ready.clone(), bound.clone(), manager.clone(), auth, hub.clone()),
            ctx.family("connectors", Strategy::OneForOne, connectors, false),
            ctx.family("loaders", Strategy::OneForOne, loaders, false),
        ];
        if !sources.is_empty() {
            children.push(monitor_child(&ctx, hub, sources));
        }
        if let Some(handle) = manager {
            children.push(workers_family(&ctx, Arc::default(), None));
            children.push(manager_child(&ctx, handle, recorded));
        }
        if ctx.config.dummy.enabled {
            children.push(ctx.family("dummies", Strategy::OneForOne, vec![dummy_child(&ctx)], false));
        }
        Node::grow(ctx, children, ready, bound, replay).await
    }

    /// Starts the tree of `children` and waits for the admin server's address.
    async fn grow(
        ctx: NodeContext,
        children: Vec<ChildSpec>,
        ready: Arc<AtomicBool>,
        bound: Arc<Mutex<Option<SocketAddr>>>,
        replay: Option<crate::replay::ReplayServer>,
    ) -> Result<Node, AppError> {
        let tree = Tree::start(ctx.supervisor_args(&ctx.config.node.id, Strategy::OneForOne, children)).await?;
        let admin_addr = bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| AppError::Usage("the admin server did not report its address".into()))?;
        ready.store(true, Ordering::Release);
        tracing::info!(node = %ctx.config.node.id, admin = %admin_addr, "Node started.");
        Ok(Node { ctx, tree, admin_addr, replay, job: None })
    }

    /// The admin server's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Runs until `shutdown` resolves (then stops gracefully) or the tree gives up (an error);
    /// in one-task mode also until the task has ended (an error when it failed).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
        let mut job = self.job.take();
        let task = async {
            match job.as_mut() {
                Some(rx) => rx.wait_for(Option::is_some).await.ok().and_then(|o| o.clone()),
                None => std::future::pending().await,
            }
        };
        let mut failed = None;
        let outcome = tokio::select! {
            _ = shutdown => {
                tracing::info!("Shutdown requested; stopping actors in reverse order.");
                self.tree.shutdown();
                self.tree.wait_for(SHUTDOWN_GRACE).await
            }
            ended = task => {
                failed = ended.and_then(Result::err);
                tracing::info!(failed = failed.is_some(), "The job's task has ended; stopping.");
                self.tree.shutdown();
                self.tree.wait_for(SHUTDOWN_GRACE).await
            }
            ended = self.tree.wait() => ended,
        };
        if let Some(r) = &self.replay {
            r.stop().await;
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "Supervision tree gave up; exiting non-zero.");
        }
        outcome?;
        match failed {
            Some(reason) => Err(AppError::JobFailed(reason)),
            None => Ok(()),
        }
    }
}

/// The one workflow given by `[job]` / the seeds' plain variables: a loader and a connector that
/// keeps consuming its topic for as long as the node runs.
async fn job_children(ctx: &NodeContext) -> Result<(ChildSpec, ChildSpec), AppError> {
    let j = &ctx.config.job;
    let bad = |what: &str| AppError::Usage(format!("job: {what}"));
    let kind = j.kind.as_deref().and_then(backfill_kind).ok_or_else(|| bad("type"))?;
    let range = j.time_range.as_deref().map(parse_time_range).transpose().map_err(|e| bad(&e.to_string()))?;
    let range = range.ok_or_else(|| bad("time_range"))?;
    let symbol = j.symbol.clone().ok_or_else(|| bad("symbol"))?;
    let wf = BackfillWorkflow::new(
        j.queue_id.clone(),
        &symbol,
        kind,
        range,
        j.kafka_topic.clone(),
        j.collection_name.clone(),
        ctx.config.loader.page_limit,
    );
    let rest = ctx.binance_rest()?;
    wf.children(ctx, &rest, true).await
}

/// A stream loader beats at least every second while connected and before every REST page.
const STREAM_HEARTBEAT: Duration = Duration::from_secs(60);
/// Connections are renewed after 23 h (Binance cuts them at 24 h), the n-th of a node 5 min later
/// than the one before, so that they do not all renew at once.
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(23 * 3600);
const CONNECTION_STAGGER: Duration = Duration::from_secs(300);
/// A depth loader publishes the best 20 levels a side of each book (every `snapshot_ms`).
const BOOK_DEPTH: usize = 20;
/// Silence (not even a ping; Binance pings every 20 s) after which a connection is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(60);

/// The `[[streams]]` loaders: one per connection of at most 1,024 streams.
async fn stream_children(ctx: &NodeContext) -> Result<Vec<ChildSpec>, AppError> {
    let mut out = Vec::new();
    for entry in &ctx.config.streams {
        ctx.bus.ensure_topic(&entry.topic, ctx.config.bus.partitions).await?;
        for (n, symbols) in entry.symbols.chunks(MAX_STREAMS_PER_CONNECTION).enumerate() {
            let max_age = CONNECTION_MAX_AGE + CONNECTION_STAGGER * out.len() as u32;
            let id = format!("stream:{}:{}:{n}", entry.kind, entry.topic);
            out.push(stream_child(ctx, entry, symbols.to_vec(), id, max_age)?);
        }
    }
    Ok(out)
}

/// One WebSocket connection's loader of `stream`'s kind (`aggTrade`, `trade`, `kline_<i>`,
/// `depth`) for `symbols` (at most 1,024 of its symbols), publishing to its topic, renewed after
/// `max_age`.
pub fn stream_child(
    ctx: &NodeContext,
    stream: &StreamConfig,
    symbols: Vec<String>,
    id: String,
    max_age: Duration,
) -> Result<ChildSpec, AppError> {
    let (ws, rest) = (BinanceWs::new(&ctx.config.binance.ws_url)?, ctx.binance_rest()?);
    let (ctx, topic, kind, snapshot_every) =
        (ctx.clone(), stream.topic.clone(), stream.kind.as_str(), stream.snapshot_every());
    let snapshots = stream.snapshot_plan(&symbols);
    let link = LinkPolicy { backoff: ctx.config.supervision.backoff(), silence: STREAM_SILENCE, max_age };
    let args = move |heartbeat| StreamArgs {
        symbols: symbols.clone(),
        topic: topic.clone(),
        ws: ws.clone(),
        rest: rest.clone(),
        bus: ctx.bus.clone(),
        metrics: ctx.metrics.clone(),
        dead_letters: ctx.dead_letters.clone(),
        heartbeat,
        link: link.clone(),
    };
    let (family, restart, beat) = ("loader", Restart::Permanent, Some(STREAM_HEARTBEAT));
    Ok(match sequenced_kind(kind) {
        Some(kind) => {
            let published = Published::default();
            ChildSpec::with_heartbeat(id, family, restart, beat, move |heartbeat| {
                let (kind, published) = (kind.clone(), published.clone());
                (SequencedStream, SequencedStreamArgs { stream: args(heartbeat), kind, published })
            })
        }
        None => ChildSpec::with_heartbeat(id, family, restart, beat, move |heartbeat| {
            let stream = args(heartbeat);
            (BookStream, BookStreamArgs { stream, depth: BOOK_DEPTH, snapshot_every, snapshots: snapshots.clone() })
        }),
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the node.");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
