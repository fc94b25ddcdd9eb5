//! Publishing `queue-events`: the business telemetry every worker sends (seed 001 §3).

use std::sync::Arc;

use crate::admin::metrics::Metrics;
use crate::bus::{topics::QUEUE_EVENTS, Bus, OutRecord};
use crate::model::{EventStatus, QueueEvent};

#[derive(Clone)]
pub struct Telemetry {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
}

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
        Telemetry { bus, metrics }
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
        if let Err(error) = self.bus.publish(QUEUE_EVENTS, vec![record]).await {
            self.metrics.errors.with_label_values(&["telemetry", "publish"]).inc();
            tracing::warn!(%error, queue_id = %event.queue_id, "Event could not be published.");
        }
    }
}
