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

/// `streamforge replay-server`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Folder laid out like data/sample (klines/, ws/, trades/).
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:9401")]
    pub addr: String,
    /// WebSocket pace: 1 = as recorded, 10 = ten times faster, 0 = no waiting.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Fault: delay every REST answer by this many milliseconds (a slow exchange).
    #[arg(long, default_value_t = 0)]
    pub rest_delay_ms: u64,
    /// Fault: answer every N-th REST request with 429 and `Retry-After: --retry-after`.
    #[arg(long, value_name = "N")]
    pub rate_limit_every: Option<u64>,
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    pub retry_after: u64,
    /// Fault: answer every N-th REST request with 503.
    #[arg(long, value_name = "N")]
    pub server_error_every: Option<u64>,
    /// Fault: archive files whose name contains this (e.g. 2021-05-03, or BTCUSDT-1m-2021-04) are
    /// served with a changed CSV under the genuine checksum (repeatable).
    #[arg(long, value_name = "NAME")]
    pub corrupt_archive: Vec<String>,
    /// Fault: archive files whose name contains this are missing (404; repeatable).
    #[arg(long, value_name = "NAME")]
    pub missing_archive: Vec<String>,
}

impl From<ReplayArgs> for ReplayOptions {
    fn from(a: ReplayArgs) -> Self {
        let faults = ReplayFaults {
            rest_delay: std::time::Duration::from_millis(a.rest_delay_ms),
            rate_limit_every: a.rate_limit_every,
            retry_after_secs: a.retry_after,
            server_error_every: a.server_error_every,
            corrupt_archive: a.corrupt_archive,
            missing_archive: a.missing_archive,
            ..Default::default()
        };
        ReplayOptions { data: a.data, addr: a.addr, speed: a.speed, faults }
    }
}

/// Serves until `shutdown` resolves; prints the folder and the URLs on stdout once it listens
/// (a script waits for that line).
pub async fn run(opts: ReplayOptions, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    if !(opts.speed >= 0.0 && opts.speed.is_finite()) {
        return Err(AppError::Usage(format!("--speed: {} must be 0 or a positive number", opts.speed)));
    }
    let dir = resolve_data_dir(&opts.data)?;
    let server = ReplayServer::start_dir(&dir, &opts.addr, opts.speed, opts.faults).await?;
    println!(
        "Replaying {}: REST {}, WebSocket {}, archive {}",
        dir.display(),
        server.rest_url(),
        server.ws_url(),
        server.archive_url()
    );
    shutdown.await;
    server.stop().await;
    Ok(())
}
