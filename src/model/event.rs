//! `queue-events` telemetry, written by every worker (seed 001 §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifecycle status of a worker. Values other than the known ones are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Started,
    Loading,
    Finished,
    Error,
    Pong,
    /// A hole in the exchange's data (klines absent for a period) was found and reported.
    Gap,
    /// A supervisor is restarting a failed child (after its backoff).
    Restarting,
    /// The worker stopped on a `stop` command.
    Stopped,
    #[serde(untagged)]
    Other(String),
}

/// An event on `queue-events`. Every field of the seed's example is here; unknown fields are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEvent {
    pub queue_id: String,
    pub producer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_written: Option<u64>,
    #[serde(default)]
    pub finished: bool,
    /// With a final `error`: `false` when no retry can change the outcome (the exchange refused
    /// the request), so queue-manager fails the step at once instead of restarting the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Unix seconds with fraction.
    pub timestamp: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QueueEvent {
    /// An event stamped now; `finished` follows from the status.
    pub fn new(queue_id: &str, producer: &str, status: EventStatus) -> Self {
        QueueEvent {
            queue_id: queue_id.to_owned(),
            producer: producer.to_owned(),
            symbol: None,
            kind: None,
            finished: matches!(status, EventStatus::Finished),
            status,
            message: None,
            records_written: None,
            retryable: None,
            timestamp: super::unix_seconds_now(),
            extra: Map::new(),
        }
    }

    pub fn symbol(mut self, symbol: impl Into<String>) -> Self {
        self.symbol = Some(symbol.into());
        self
    }

    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn records_written(mut self, n: u64) -> Self {
        self.records_written = Some(n);
        self
    }
}
