//! How queue-manager's orders reach workers: one trait, [`Launcher`], with two modes.
//!
//! - [`Embedded`] (`queue_manager.workers = "embedded"`, the default): every command goes on
//!   `queue-control`; a `start` names this node (`"node": "<node id>"`), so that this node's worker
//!   host starts the worker as an actor of its own tree.
//! - `Kubernetes` (`"kubernetes"`, feature `kubernetes`, [`super::kubernetes`]): the commands go on
//!   `queue-control` as well (every worker reads its stops and pings there), and each `start` is
//!   also a `batch/v1` Job that runs the same binary in its one-task mode; a stop deletes the Jobs.
//!
//! Either way, what a worker reports comes back on `queue-events`. What a launcher learns on its
//! own — a Job that failed without its worker saying so — it hands over as [`WorkerExit`]s.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::bus::{topics, Bus, BusError, OutRecord};
use crate::model::QueueControl;

/// A worker that ended without reporting it, as its launcher saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerExit {
    pub queue_id: String,
    /// The `producer` of the task's events.
    pub producer: String,
    /// The attempt that ended (a restarted task's older attempts are not news).
    pub attempt: u32,
    pub reason: String,
}

/// The `attempt` a `start` command carries (1 when it carries none).
pub fn attempt_of(cmd: &QueueControl) -> u32 {
    cmd.extra.get("attempt").and_then(Value::as_u64).map_or(1, |a| a as u32)
}

/// The `stop` of exactly the worker a `start` command started (its workflow, target, symbol,
/// type and collection): a restart replaces that worker and no other of the workflow.
pub fn stop_for(start: &QueueControl) -> QueueControl {
    let mut stop = QueueControl::new(crate::model::Command::Stop, start.queue_id.clone());
    stop.target = start.target.clone();
    stop.symbol = start.symbol.clone();
    stop.kind = start.kind.clone();
    stop.collection_name = start.collection_name.clone();
    stop
}

/// Starts and stops the workers of queue-manager's tasks.
#[async_trait]
pub trait Launcher: Send + Sync {
    /// `embedded` or `kubernetes`.
    fn mode(&self) -> &'static str;

    /// Starts the worker of a `start` command whose events will come from `producer`. An error
    /// is a start that cannot happen (the cluster refused the Job); queue-manager treats it as
    /// a worker that gave up.
    async fn start(&self, cmd: QueueControl, producer: &str) -> Result<(), String>;

    /// Stops the workers a `stop` command selects.
    async fn stop(&self, cmd: QueueControl);

    /// A workflow has finished: every worker of it has reported that it is done, and whatever
    /// still holds one of them lets go (the stop on `queue-control`). Nothing is killed: a
    /// finished worker's process may still be exiting.
    async fn finished(&self, queue_id: &str) {
        self.announce(QueueControl::new(crate::model::Command::Stop, queue_id)).await
    }

    /// Publishes a command on `queue-control` and nothing else.
    async fn announce(&self, cmd: QueueControl);

    /// Lets go of this node's workers of a workflow that another queue-manager follows now.
    async fn release(&self, queue_id: &str);

    /// The workers that ended unreported since the last call.
    fn exits(&self) -> Vec<WorkerExit>;
}

/// Workers as actors of this node's tree, started by its worker host.
pub struct Embedded {
    bus: Arc<dyn Bus>,
    node: String,
}

impl Embedded {
    pub fn new(bus: Arc<dyn Bus>, node: impl Into<String>) -> Self {
        Embedded { bus, node: node.into() }
    }

    fn here(&self, mut cmd: QueueControl) -> QueueControl {
        cmd.extra.insert("node".into(), Value::String(self.node.clone()));
        cmd
    }
}

#[async_trait]
impl Launcher for Embedded {
    fn mode(&self) -> &'static str {
        "embedded"
    }

    async fn start(&self, cmd: QueueControl, _producer: &str) -> Result<(), String> {
        publish(&self.bus, self.here(cmd)).await;
        Ok(())
    }

    async fn stop(&self, cmd: QueueControl) {
        publish(&self.bus, cmd).await
    }

    async fn announce(&self, cmd: QueueControl) {
        publish(&self.bus, cmd).await
    }

    async fn release(&self, queue_id: &str) {
        // A stop naming a node is for that node's workers only.
        let stop = QueueControl::new(crate::model::Command::Stop, queue_id);
        publish(&self.bus, self.here(stop)).await
    }

    fn exits(&self) -> Vec<WorkerExit> {
        Vec::new()
    }
}

/// Publishes a command on `queue-control`, keyed by its queue id.
pub async fn send(bus: &Arc<dyn Bus>, cmd: &QueueControl) -> Result<(), BusError> {
    // Strings, numbers and JSON values only: serializing cannot fail.
    let payload = serde_json::to_vec(cmd).expect("a command serializes");
    bus.publish(topics::QUEUE_CONTROL, vec![OutRecord::keyed(cmd.queue_id.as_bytes(), payload)]).await
}

/// [`send`], a failure logged: the command's sender carries on (queue-manager restarts a
/// worker that never started).
pub async fn publish(bus: &Arc<dyn Bus>, cmd: QueueControl) {
    if let Err(error) = send(bus, &cmd).await {
        tracing::warn!(%error, queue_id = %cmd.queue_id, "A command could not be published.");
    }
}
