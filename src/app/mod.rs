//! The commands the binary runs, built from the library's parts: `run` (one backfill to the store,
//! then exit), `node` (the long-running actor node), `dummy` (a node with the dummy worker),
//! `book` (a local order book), `graph` (correlation graphs), `derive` (longer candles from shorter
//! stored ones), `repair` (holes in stored series filled from the exchange), `train`/`predict`, `ctl` (the admin
//! API from a terminal), `replay-server`, `bench` (the hot paths measured on recorded data). Each
//! module holds its command's arguments (clap) and its `run`; [`args`] what they share.

pub mod args;
pub mod bench;
pub mod book;
mod context;
pub mod ctl;
pub mod derive;
pub mod dummy;
pub mod graph;
pub mod malloc;
pub mod node;
mod offline;
pub mod repair;
pub mod replay_server;
pub mod run;
#[cfg(feature = "trainer")]
pub mod train;
mod workflow;

pub use context::NodeContext;
pub use offline::{load_recording, resolve_data_dir, start_replay};
pub use workflow::BackfillWorkflow;

use crate::admin::AdminError;
use crate::bus::BusError;
use crate::exchange::binance::{ExchangeError, KeeperError};
use crate::replay::ReplayError;
use crate::store::StoreError;
use crate::supervision::TreeFailed;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input from the user: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The admin API refused a `ctl` request (`status` 0: no HTTP status, e.g. no pong came).
    #[error("{reason}")]
    Api { status: u16, reason: String },
    /// A one-task process's worker failed (the reason it reported).
    #[error("the job failed: {0}")]
    JobFailed(String),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Book(#[from] KeeperError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Tree(#[from] TreeFailed),
    #[cfg(feature = "trainer")]
    #[error(transparent)]
    Artifact(#[from] crate::trainer::artifacts::ArtifactError),
}

impl AppError {
    /// 2 for what the user must fix in the invocation or config, 1 for failures while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            _ => 1,
        }
    }
}
