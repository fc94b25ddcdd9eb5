//! The workers a node starts on command: one registry keyed by the seeds' `target` names
//! ([`Target`]), and the [`host`] actor that reads `queue-control` and starts, stops and answers
//! pings for them under the node's `workers` supervisor.
//!
//! | target | worker | from a `start` command |
//! |---|---|---|
//! | `loader-producer` | REST loader of one symbol and type | `symbol`, `type`, `time_range`, `kafka_topic`, `collection_name` |
//! | `loader-ws` | WebSocket loader of one symbol's live stream, until stopped | `symbol`, `type` (`ws_*`), `kafka_topic` |
//! | `arango-connector` (`connector`) | connector of one collection, finishing once its loader has | `kafka_topic`, `collection_name` |
//! | `graph-builder` | graph actor over stored candles | `symbols`, `collections`, `time_range`, `graph` (extra fields) |
//! | `gap-verifier` | repairs each stored series of the workflow: holes asked of the exchange and filled, what it confirms empty kept | `series` (extra field: symbol, type, collection, range each) |
//! | `candle-deriver` | derives longer candles from each symbol's stored ones into `candles_<interval>` | `symbols`, `collections`, `time_range`, `intervals` (extra fields) |
//! | `gnn-trainer` | trains the temporal GNN on stored candles, saves and registers the model (feature `trainer`) | as `graph-builder`, plus `train` |
//! | `dummy-service` (`dummy`) | the test double: finishes, hangs or fails on chosen attempts | `symbol`, `dummy` |
//!
//! The dummy answers its own pings (it reads `queue-control` itself).
//!
//! queue-manager starts them through a [`launch::Launcher`]: this node's worker host (embedded
//! mode) or a Kubernetes Job per task ([`kubernetes`], feature `kubernetes`), whose pod runs the
//! same binary in its one-task mode and so the same worker host.

pub mod host;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod launch;
#[cfg(feature = "trainer")]
pub mod train;

use std::fmt;

use crate::app::{AppError, NodeContext};
use crate::config::WorkersMode;

/// The launcher `queue_manager.workers` names.
pub async fn launcher(ctx: &NodeContext) -> Result<Box<dyn launch::Launcher>, AppError> {
    match ctx.config.queue_manager.workers {
        WorkersMode::Embedded => Ok(Box::new(launch::Embedded::new(ctx.bus.clone(), &ctx.config.node.id))),
        #[cfg(feature = "kubernetes")]
        WorkersMode::Kubernetes => Ok(Box::new(kubernetes::Kubernetes::connect(ctx).await?)),
        #[cfg(not(feature = "kubernetes"))]
        WorkersMode::Kubernetes => {
            Err(AppError::Usage("workers = \"kubernetes\" needs a binary built with --features kubernetes".into()))
        }
    }
}

/// A worker kind, by the seeds' `target` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    LoaderProducer,
    LoaderWs,
    Connector,
    GraphBuilder,
    GapVerifier,
    CandleDeriver,
    Trainer,
    Dummy,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::LoaderProducer,
        Target::LoaderWs,
        Target::Connector,
        Target::GraphBuilder,
        Target::GapVerifier,
        Target::CandleDeriver,
        Target::Trainer,
        Target::Dummy,
    ];

    /// The name commands carry in `target`.
    pub fn name(self) -> &'static str {
        match self {
            Target::LoaderProducer => "loader-producer",
            Target::LoaderWs => "loader-ws",
            Target::Connector => "arango-connector",
            Target::GraphBuilder => "graph-builder",
            Target::GapVerifier => "gap-verifier",
            Target::CandleDeriver => "candle-deriver",
            Target::Trainer => "gnn-trainer",
            Target::Dummy => "dummy-service",
        }
    }

    /// A target by any of its names (`connector` and `dummy` are accepted too).
    pub fn parse(name: &str) -> Option<Target> {
        match name {
            "connector" => Some(Target::Connector),
            "dummy" => Some(Target::Dummy),
            _ => Target::ALL.into_iter().find(|t| t.name() == name),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
