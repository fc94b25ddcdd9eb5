//! Topic names shared by every node (seed 001 §3), the naming rules for data topics, and the names of
//! the consumer groups StreamForge reads them in (what a Kafka user's ACLs must allow, deploy/strimzi).

/// Commands from queue-manager to workers.
pub const QUEUE_CONTROL: &str = "queue-control";
/// Telemetry from every worker.
pub const QUEUE_EVENTS: &str = "queue-events";
/// `graph-snapshot` events: a snapshot of a graph family was stored (for the trainer).
pub const GRAPH_SNAPSHOTS: &str = "graph-snapshots";
/// Messages a consumer could not use, with the reason, so nothing is silently lost.
pub const DEAD_LETTER: &str = "dead-letter";

/// Whether `topic` is one of the control topics every node shares (not a data topic).
pub fn is_shared(topic: &str) -> bool {
    [QUEUE_CONTROL, QUEUE_EVENTS, GRAPH_SNAPSHOTS, DEAD_LETTER].contains(&topic)
}

/// The per-workflow data topic of the seeds: `<queue_id>-data`.
pub fn data_topic(queue_id: &str) -> String {
    format!("{queue_id}-data")
}

/// A connector's group when its `[[connectors]]` entry names none, and a workflow connector's:
/// `connector-<collection>`; nodes in one group share the topic's partitions.
pub fn connector_group(collection: &str) -> String {
    format!("{CONNECTOR_GROUP_PREFIX}{collection}")
}

/// The dashboard's group of a node: it reads the `[[streams]]` topics on its own.
pub fn monitor_group(node: &str) -> String {
    format!("{MONITOR_GROUP_PREFIX}{node}")
}

/// queue-manager's group of a node on `queue-events`: every queue-manager reads every event.
pub fn manager_group(node: &str) -> String {
    format!("{MANAGER_GROUP_PREFIX}{node}")
}

/// The worker host's group of a node on `queue-control`: every host reads every command.
pub fn workers_group(node: &str) -> String {
    format!("{WORKERS_GROUP_PREFIX}{node}")
}

pub const CONNECTOR_GROUP_PREFIX: &str = "connector-";
pub const MONITOR_GROUP_PREFIX: &str = "monitor-";
pub const MANAGER_GROUP_PREFIX: &str = "queue-manager-";
pub const WORKERS_GROUP_PREFIX: &str = "workers-";
/// A dummy worker's group on `queue-control` is its producer name, `dummy__<queue id>[__<symbol>]`.
pub const DUMMY_GROUP_PREFIX: &str = "dummy__";
