//! Topic names shared by every node (seed 001 §3) and the naming rules for data topics.

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
