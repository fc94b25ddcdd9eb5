//! The actors of a node. Each is a `ractor` actor whose state is rebuilt from its arguments when a
//! supervisor restarts it, and each reports its lifecycle on `queue-events`.

pub mod assigner;
pub mod book_stream;
pub mod connector;
mod dead_letter;
pub mod deriver;
pub mod dummy;
pub mod graph;
pub mod loader;
pub mod sequenced_stream;
pub mod stream;
mod telemetry;
#[cfg(feature = "trainer")]
pub mod trainer;
pub mod verifier;

pub use dead_letter::{json_error_reason, DeadLetter, DeadLetters};
pub use telemetry::Telemetry;
