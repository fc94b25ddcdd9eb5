//! The dead-letter path: a message a consumer cannot use is published, with the reason and where it
//! came from, to the dead-letter topic and counted — never dropped, never fatal.

use std::sync::Arc;

use serde::Serialize;

use crate::admin::metrics::Metrics;
use crate::bus::{topics::DEAD_LETTER, Bus, BusError, BusMessage, OutRecord};

#[derive(Clone)]
pub struct DeadLetters {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
}

/// What lands on the dead-letter topic.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct DeadLetter {
    pub source_topic: String,
    pub partition: u32,
    pub offset: u64,
    pub consumer: String,
    /// `malformed_json` | `wrong_schema` | `rejected`; from a WebSocket loader `malformed`, `binary`
    /// or `undecodable`
    pub reason: String,
    pub error: String,
    /// The original payload (lossy UTF-8).
    pub payload: String,
    pub timestamp_ms: i64,
}

/// A bounded label for why a payload could not be decoded.
pub fn json_error_reason(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "wrong_schema",
        _ => "malformed_json",
    }
}

impl DeadLetters {
    pub fn new(bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        DeadLetters { bus, metrics }
    }

    /// Publishes `msg` to the dead-letter topic and waits for the bus to take it, so the caller may
    /// then commit past it.
    pub async fn send(
        &self,
        consumer: &str,
        msg: &BusMessage,
        reason: &'static str,
        error: &str,
    ) -> Result<(), BusError> {
        tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, consumer, reason, error,
            "Message sent to the dead-letter topic.");
        let letter = DeadLetter {
            source_topic: msg.topic.to_string(),
            partition: msg.partition,
            offset: msg.offset,
            consumer: consumer.to_owned(),
            reason: reason.to_owned(),
            error: error.to_owned(),
            payload: String::from_utf8_lossy(&msg.payload).into_owned(),
            timestamp_ms: crate::model::now_ms(),
        };
        self.publish(letter, msg.key.clone()).await
    }

    /// Dead-letters `text` that never was a bus record (a WebSocket frame), naming the topic its
    /// records would have gone to (partition and offset 0: it had none).
    pub async fn send_text(
        &self,
        consumer: &str,
        topic: &str,
        reason: &'static str,
        error: &str,
        text: String,
    ) -> Result<(), BusError> {
        tracing::warn!(topic, consumer, reason, error, "Frame sent to the dead-letter topic.");
        let letter = DeadLetter {
            source_topic: topic.to_owned(),
            partition: 0,
            offset: 0,
            consumer: consumer.to_owned(),
            reason: reason.to_owned(),
            error: error.to_owned(),
            payload: text,
            timestamp_ms: crate::model::now_ms(),
        };
        self.publish(letter, None).await
    }

    async fn publish(&self, letter: DeadLetter, key: Option<bytes::Bytes>) -> Result<(), BusError> {
        let payload = serde_json::to_vec(&letter).unwrap_or_default();
        self.bus.publish(DEAD_LETTER, vec![OutRecord { key, payload: payload.into() }]).await?;
        self.metrics.dead_letters.with_label_values(&[letter.reason.as_str()]).inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_reasons_are_labels_exported_from_start_up() {
        let malformed = serde_json::from_str::<serde_json::Value>("{not json").unwrap_err();
        let wrong = serde_json::from_str::<Vec<i64>>("{\"a\": 1}").unwrap_err();
        let reasons = [json_error_reason(&malformed), json_error_reason(&wrong)];
        assert_eq!(reasons, ["malformed_json", "wrong_schema"]);
        assert!(reasons.iter().all(|r| crate::admin::metrics::DEAD_LETTER_REASONS.contains(r)));
    }
}
