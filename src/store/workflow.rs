//! A workflow's status record, as queue-manager keeps it (seed 001 §2.2, step 2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// `wf-btcusdt-api_candles_5m-20240801-a1b2c3`
    pub id: String,
    /// pending | running | finished | error | …
    pub status: String,
    #[serde(default)]
    pub symbol: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub time_range: Option<String>,
    #[serde(default)]
    pub records_written: u64,
    #[serde(default)]
    pub message: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
    /// Anything else queue-manager wants to keep with it.
    #[serde(default)]
    pub extra: Map<String, Value>,
}
