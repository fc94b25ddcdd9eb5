//! The admin HTTP server of a node and its metrics.

pub mod metrics;
mod server;

pub use server::{AdminError, AdminServer, AdminState};
