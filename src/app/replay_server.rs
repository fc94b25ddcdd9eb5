//! `streamforge replay-server`: recorded Binance data over Binance's REST and WebSocket API, with
//! injectable faults, until shut down.

use std::future::Future;
use std::path::PathBuf;

use super::{resolve_data_dir, AppError};
use crate::replay::{ReplayFaults, ReplayServer};

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// A folder laid out like `data/sample`.
    pub data: PathBuf,
    pub addr: String,
    /// WebSocket pace: 1 as recorded, 10 ten times faster, 0 no waiting.
    pub speed: f64,
    pub faults: ReplayFaults,
}

/// Serves until `shutdown` resolves; `started` is told the folder and the URLs once it listens.
pub async fn run(
    opts: ReplayOptions,
    started: impl FnOnce(&str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    if !(opts.speed >= 0.0 && opts.speed.is_finite()) {
        return Err(AppError::Usage(format!("--speed: {} must be 0 or a positive number", opts.speed)));
    }
    let dir = resolve_data_dir(&opts.data)?;
    let server = ReplayServer::start_dir(&dir, &opts.addr, opts.speed, opts.faults).await?;
    started(&format!("Replaying {}: REST {}, WebSocket {}", dir.display(), server.rest_url(), server.ws_url()));
    shutdown.await;
    server.stop().await;
    Ok(())
}
