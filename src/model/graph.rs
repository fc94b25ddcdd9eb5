//! A market-relation graph of one window (the `graph` actor writes it, the `trainer` reads it):
//! vertices are assets with feature vectors, edges are signed, weighted relations between two
//! assets (a correlation of returns). Stored ArangoDB-style as vertex and edge documents, or as
//! rows of vertex and edge tables.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphSnapshot {
    /// The graph family, e.g. `corr_1m_w60`: one builder configuration.
    pub name: String,
    /// The time the graph describes (epoch ms): built from data up to and including it.
    pub time: i64,
    /// The window of data it was built from, `[window_start, window_end)`, epoch ms.
    pub window_start: i64,
    pub window_end: i64,
    /// Names of the vertex features, in the order of [`Vertex::features`].
    pub feature_names: Vec<String>,
    pub vertices: Vec<Vertex>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vertex {
    pub symbol: String,
    pub features: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// Signed strength, e.g. a correlation in [-1, 1].
    pub weight: f64,
}
