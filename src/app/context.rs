//! The shared handles of a node: configuration, bus, store, metrics, telemetry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::actors::assigner::{AssignerArgs, PartitionAssigner, WorkerFactory};
use crate::actors::connector::{Connector, ConnectorArgs, ConnectorRoute, ConnectorShared, ConnectorSource};
use crate::actors::dummy::{Dummy, DummyArgs, DummyOptions};
use crate::actors::graph::{GraphActor, GraphArgs, GraphProgress};
use crate::actors::{DeadLetters, Telemetry};
use crate::admin::metrics::Metrics;
use crate::admin::LagSource;
use crate::bus::{self, topics, Bus};
use crate::config::Config;
use crate::exchange::binance::{BinanceRest, WeightLimiter};
use crate::graph::{Aligned, GraphConfig};
use crate::store::{self, Store};
use crate::supervision::{ChildSpec, Restart, Strategy, SupervisorArgs, TreeView};

use super::AppError;

/// A connector beats on every poll (at most 100 ms apart) and after every store write; a write
/// stuck for this long is a stall.
const CONNECTOR_HEARTBEAT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct NodeContext {
    pub config: Arc<Config>,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub telemetry: Telemetry,
    pub dead_letters: DeadLetters,
    /// The live picture of this node's supervision tree.
    pub view: TreeView,
    /// The consumer groups this node's connectors belong to, for lag reporting.
    pub lag: LagSource,
    /// The REST weight budget every loader of the node spends from.
    pub rest_weight: Arc<WeightLimiter>,
}

impl NodeContext {
    /// Opens the bus and the store named by the configuration and creates the service topics.
    pub async fn open(config: Config) -> Result<NodeContext, AppError> {
        let metrics = Arc::new(Metrics::new());
        let bus = bus::open(&config.bus, &config.node.id)?;
        for topic in [topics::QUEUE_CONTROL, topics::QUEUE_EVENTS, topics::DEAD_LETTER] {
            bus.ensure_topic(topic, config.bus.partitions).await?;
        }
        let store = store::open_configured(&config.store).await?;
        Ok(NodeContext {
            telemetry: Telemetry::new(bus.clone(), metrics.clone()),
            dead_letters: DeadLetters::new(bus.clone(), metrics.clone()),
            view: TreeView::default(),
            lag: LagSource::new(bus.clone()),
            rest_weight: Arc::new(WeightLimiter::new(config.binance.weight_share)),
            config: Arc::new(config),
            bus,
            store,
            metrics,
        })
    }

    /// A connector for `route` with this node's connector settings, as a supervised child; it reads
    /// the partitions its group gives it as one member (a workflow's connector).
    pub fn connector_child(&self, route: ConnectorRoute, shared: Arc<ConnectorShared>, restart: Restart) -> ChildSpec {
        let id = format!("connector:{}", route.collection);
        self.connector_spec(id, route, ConnectorSource::Group, shared, restart)
    }

    /// The connectors of `route` on this node, partitioned: a supervisor `connectors:<collection>`
    /// whose first child is the group's partition assigner, which adds one connector per partition
    /// the group assigns this node and stops it (flushed and committed) when it is revoked.
    pub fn partitioned_connectors(&self, route: ConnectorRoute) -> ChildSpec {
        let (ctx, shared, worker_route) = (self.clone(), Arc::<ConnectorShared>::default(), route.clone());
        let worker: WorkerFactory = Arc::new(move |member, p| {
            let id = format!("connector:{}:p{p}", worker_route.collection);
            let source = ConnectorSource::Partition(member, p);
            ctx.connector_spec(id, worker_route.clone(), source, shared.clone(), Restart::Transient)
        });
        let (bus, lag) = (self.bus.clone(), self.lag.clone());
        let assigner =
            ChildSpec::new(format!("assigner:{}", route.collection), "assigner", Restart::Permanent, move || {
                let args = AssignerArgs {
                    bus: bus.clone(),
                    group: route.group.clone(),
                    topic: route.topic.clone(),
                    worker: worker.clone(),
                    lag: lag.clone(),
                };
                (PartitionAssigner, args)
            });
        self.family(&format!("connectors:{}", route.collection), Strategy::OneForOne, vec![assigner], false)
    }

    fn connector_spec(
        &self,
        id: String,
        route: ConnectorRoute,
        source: ConnectorSource,
        shared: Arc<ConnectorShared>,
        restart: Restart,
    ) -> ChildSpec {
        let ctx = self.clone();
        ChildSpec::with_heartbeat(id, "connector", restart, Some(CONNECTOR_HEARTBEAT), move |heartbeat| {
            let args = ConnectorArgs {
                heartbeat,
                route: route.clone(),
                source: source.clone(),
                batch_size: ctx.config.connector.batch_size,
                flush_interval: ctx.config.connector.flush_interval(),
                bus: ctx.bus.clone(),
                store: ctx.store.clone(),
                telemetry: ctx.telemetry.clone(),
                dead_letters: ctx.dead_letters.clone(),
                metrics: ctx.metrics.clone(),
                shared: shared.clone(),
                lag: matches!(source, ConnectorSource::Group).then(|| ctx.lag.watch(&route.group, &route.topic)),
            };
            (Connector, args)
        })
    }

    /// A graph builder over `aligned` as a supervised child (transient); its progress goes to
    /// `progress`.
    pub fn graph_child(
        &self,
        id: String,
        queue_id: String,
        config: GraphConfig,
        aligned: Arc<Aligned>,
        progress: Arc<watch::Sender<GraphProgress>>,
    ) -> ChildSpec {
        let ctx = self.clone();
        ChildSpec::new(id, "graph", Restart::Transient, move || {
            let args = GraphArgs {
                queue_id: queue_id.clone(),
                config: config.clone(),
                aligned: aligned.clone(),
                store: ctx.store.clone(),
                bus: ctx.bus.clone(),
                telemetry: ctx.telemetry.clone(),
                progress: progress.clone(),
            };
            (GraphActor, args)
        })
    }

    /// A dummy with `options` as a supervised child.
    pub fn dummy_child(&self, id: String, options: DummyOptions, restart: Restart) -> ChildSpec {
        let ctx = self.clone();
        ChildSpec::new(id, "dummy", restart, move || {
            let args = DummyArgs {
                options: options.clone(),
                bus: ctx.bus.clone(),
                telemetry: ctx.telemetry.clone(),
                dead_letters: ctx.dead_letters.clone(),
            };
            (Dummy, args)
        })
    }

    /// A Binance REST client on `binance.rest_url` that spends from the node's weight budget.
    pub fn binance_rest(&self) -> Result<BinanceRest, AppError> {
        Ok(BinanceRest::new(&self.config.binance.rest_url, self.metrics.clone(), self.rest_weight.clone())?)
    }

    /// A supervisor with this node's intensity, backoff, telemetry and tree view.
    pub fn supervisor_args(&self, name: &str, strategy: Strategy, children: Vec<ChildSpec>) -> SupervisorArgs {
        SupervisorArgs {
            intensity: self.config.supervision.intensity(),
            backoff: self.config.supervision.backoff(),
            telemetry: Some(self.telemetry.clone()),
            view: self.view.clone(),
            ..SupervisorArgs::new(name, strategy, children, self.metrics.clone())
        }
    }

    /// A supervisor for one actor family, as a child of the node's root.
    pub fn family(&self, name: &str, strategy: Strategy, children: Vec<ChildSpec>, auto_shutdown: bool) -> ChildSpec {
        let ctx = self.clone();
        let name = name.to_owned();
        let restart = if auto_shutdown { Restart::Transient } else { Restart::Permanent };
        ChildSpec::supervisor(name.clone(), restart, move || SupervisorArgs {
            auto_shutdown,
            ..ctx.supervisor_args(&name, strategy, children.clone())
        })
    }
}
