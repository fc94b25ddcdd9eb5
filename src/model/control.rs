//! `queue-control` commands, written only by queue-manager (seed 001 §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a worker is asked to do. Values other than the known ones are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Start,
    Stop,
    Ping,
    #[serde(untagged)]
    Other(String),
}

/// A command on `queue-control`. Every field of the seed's example is here; fields this
/// version does not know are kept in `extra` and written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueControl {
    pub command: Command,
    pub queue_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `YYYY-MM-DD:YYYY-MM-DD`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Unix seconds with fraction.
    pub timestamp: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QueueControl {
    /// A bare command for one workflow, stamped now.
    pub fn new(command: Command, queue_id: impl Into<String>) -> Self {
        QueueControl {
            command,
            queue_id: queue_id.into(),
            target: None,
            symbol: None,
            kind: None,
            time_range: None,
            kafka_topic: None,
            collection_name: None,
            telemetry_id: None,
            image: None,
            timestamp: super::unix_seconds_now(),
            extra: Map::new(),
        }
    }

    /// Whether a worker with this queue id and target name should act on the command.
    pub fn is_for(&self, queue_id: &str, target: &str) -> bool {
        let queue_matches = self.queue_id == queue_id || self.queue_id == "*";
        let target_matches = self.target.as_deref().is_none_or(|t| t == target || t == "*");
        queue_matches && target_matches
    }
}
