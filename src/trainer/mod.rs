//! The GNN trainer (seed 001 §4.4, `gnn-trainer`): samples from the graph builder's snapshots
//! ([`dataset`]), walk-forward splits ([`split`]), forecast scores ([`metrics`]), and — with the
//! `trainer` feature — the temporal graph network in burn, its training and the evaluation
//! against baselines.

#[cfg(feature = "trainer")]
pub mod artifacts;
pub mod dataset;
#[cfg(feature = "trainer")]
pub mod device;
#[cfg(feature = "trainer")]
pub mod evaluate;
#[cfg(feature = "trainer")]
pub mod fit;
pub mod metrics;
#[cfg(feature = "trainer")]
pub mod model;
#[cfg(feature = "trainer")]
pub mod seeded;
pub mod split;
