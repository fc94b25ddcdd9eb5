//! Publishing `queue-events`: the business telemetry every worker sends (seed 001 §3).
//! Whoever in the process needs to know what its own workers said (a one-task process learning
//! how its task ended) [`Telemetry::subscribe`]s instead of reading the bus back.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::admin::metrics::Metrics;
use crate::bus::{topics::QUEUE_EVENTS, Bus, OutRecord};
use crate::model::{EventStatus, QueueEvent};

#[derive(Clone)]
pub struct Telemetry {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    local: broadcast::Sender<QueueEvent>,
}

/// Events kept for a slow local subscriber before it misses some.
const LOCAL_BUFFER: usize = 256;

fn status_label(status: &EventStatus) -> &'static str {
    match status {
        EventStatus::Started => "started",
        EventStatus::Loading => "loading",
        EventStatus::Finished => "finished",
        EventStatus::Error => "error",
        EventStatus::Pong => "pong",
        EventStatus::Gap => "gap",
        EventStatus::Restarting => "restarting",
        EventStatus::Stopped => "stopped",
        EventStatus::Other(_) => "other",
    }
}

impl Telemetry {
    pub fn new(bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        Telemetry { bus, metrics, local: broadcast::channel(LOCAL_BUFFER).0 }
    }

    /// Every event this process emits from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QueueEvent> {
        self.local.subscribe()
    }

    /// Publishes `event` keyed by its queue id. Telemetry must never stop a worker: a failure to
    /// publish is logged and counted, not returned.
    pub async fn emit(&self, event: QueueEvent) {
        let label = status_label(&event.status);
        self.metrics.events.with_label_values(&[label]).inc();
        tracing::debug!(queue_id = %event.queue_id, producer = %event.producer, status = label,
            records_written = event.records_written, message = event.message.as_deref(), "Event.");
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "Event could not be serialized.");
                return;
            }
        };
        let record = OutRecord::keyed(event.queue_id.as_bytes(), payload);
        if self.local.receiver_count() > 0 {
            let _ = self.local.send(event.clone());
        }
        if let Err(error) = self.bus.publish(QUEUE_EVENTS, vec![record]).await {
            self.metrics.errors.with_label_values(&["telemetry", "publish"]).inc();
            tracing::warn!(%error, queue_id = %event.queue_id, "Event could not be published.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_counted_under_a_label_exported_from_start_up() {
        let statuses = [
            EventStatus::Started,
            EventStatus::Loading,
            EventStatus::Finished,
            EventStatus::Error,
            EventStatus::Pong,
            EventStatus::Gap,
            EventStatus::Restarting,
            EventStatus::Stopped,
            EventStatus::Other("paused".into()),
        ];
        let labels: Vec<&str> = statuses.iter().map(status_label).collect();
        assert_eq!(labels, crate::admin::metrics::EVENT_STATUSES);
    }
}
