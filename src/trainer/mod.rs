//! The GNN trainer (seed 001 §4.4, `gnn-trainer`): samples from the graph builder's snapshots
//! ([`dataset`]), walk-forward splits ([`split`]), forecast scores ([`metrics`]), and — with the
//! `trainer` feature — the temporal graph network in burn, its training and the evaluation
//! against baselines.

pub mod dataset;
pub mod metrics;
pub mod split;
