//! The model registry: which trained model lives where, with the metrics it was evaluated with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model family, e.g. `tgcn_corr_1m_w60`.
    pub name: String,
    /// Increases with every trained model of the family.
    pub version: i64,
    /// Where the weights are, e.g. `s3://models/tgcn_corr_1m_w60/7.mpk` or a file path.
    pub uri: String,
    /// Evaluation results and training parameters, as the trainer reports them.
    pub metrics: Value,
    /// Epoch ms.
    pub created_at: i64,
}
