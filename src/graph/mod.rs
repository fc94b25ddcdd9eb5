//! Market-relation graphs from candles (seed 001 §4.4, `graph-builder`): candles of N symbols
//! aligned on open time ([`align`]), rolling return correlations and per-asset features kept as
//! running sums ([`rolling`]), and snapshots with the strongest correlations as signed, weighted
//! edges ([`builder`]).

pub mod align;
pub mod builder;
pub mod rolling;

pub use align::{align, Aligned, Bar, Row};
pub use builder::{density, GraphBuilder, GraphConfig, FEATURES};
pub use rolling::{pearson, Rolling};
