//! Consumer lag of the node's consumer groups, per partition: the quantity KEDA scales on, exported
//! as `streamforge_consumer_lag` and served by `GET /api/v1/lag`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::metrics::Metrics;
use crate::bus::{Bus, PartitionLag};

/// The (group, topic) pairs this node consumes, and how to read their lag.
#[derive(Clone)]
pub struct LagSource {
    bus: Arc<dyn Bus>,
    targets: Arc<Mutex<BTreeSet<(String, String)>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupLag {
    pub group: String,
    #[serde(flatten)]
    pub partition: PartitionLag,
    pub lag: u64,
}

impl LagSource {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        LagSource { bus, targets: Arc::default() }
    }

    /// Starts reporting the lag of `group` on `topic`.
    pub fn watch(&self, group: &str, topic: &str) {
        self.targets.lock().unwrap_or_else(|e| e.into_inner()).insert((group.to_owned(), topic.to_owned()));
    }

    /// Reads the lag of every watched pair from the bus and updates the gauge. A pair that cannot
    /// be read (the broker is away) is skipped and logged, so the rest is still reported.
    pub async fn read(&self, metrics: &Metrics) -> Vec<GroupLag> {
        let targets: Vec<(String, String)> =
            self.targets.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        let mut out = Vec::new();
        for (group, topic) in targets {
            match self.bus.lag(&group, &topic).await {
                Ok(parts) => {
                    for p in parts {
                        let partition = p.partition.to_string();
                        metrics.consumer_lag.with_label_values(&[&group, &topic, &partition]).set(p.lag() as i64);
                        out.push(GroupLag { group: group.clone(), lag: p.lag(), partition: p });
                    }
                }
                Err(error) => tracing::warn!(group, topic, %error, "Cannot read consumer lag."),
            }
        }
        out
    }
}
