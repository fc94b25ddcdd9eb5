//! The admin HTTP server of a node (health, readiness, metrics, the supervision tree, the workflow
//! API, the dashboard), the actor that runs it, and every metric.

mod actor;
pub mod api;
pub mod auth;
mod docs;
mod lag;
pub mod metrics;
mod server;
mod ui;

pub use actor::{AdminActor, AdminArgs};
pub use lag::{GroupLag, LagSource, LagWatch};
pub use server::{AdminError, AdminServer, AdminState};
