//! Offline mode: the bundled recorded data served by an in-process replay server on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AppError;
use crate::replay::{ReplayData, ReplayError, ReplayServer};

/// `dir` as given when it exists; a relative path is also looked up in the source tree, so
/// `data/sample` works from anywhere under `cargo run`.
pub fn resolve_data_dir(dir: &Path) -> Result<PathBuf, AppError> {
    if dir.is_dir() {
        return Ok(dir.to_owned());
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    if dir.is_relative() && in_tree.is_dir() {
        return Ok(in_tree);
    }
    Err(AppError::Usage(format!(
        "recorded data folder {} not found; pass --data DIR with a folder laid out like data/sample",
        dir.display()
    )))
}

/// Loads the recorded folder `dir` (see [`resolve_data_dir`]) off the async threads.
pub async fn load_recording(dir: &Path) -> Result<Arc<ReplayData>, AppError> {
    let dir = resolve_data_dir(dir)?;
    let data = tokio::task::spawn_blocking(move || ReplayData::load(&dir))
        .await
        .map_err(|e| ReplayError::LoadTask(e.to_string()))?
        .map_err(ReplayError::from)?;
    Ok(Arc::new(data))
}

/// Loads `dir` and serves it on a free loopback port: REST as fast as the client asks, WebSocket
/// streams at `speed` times the recorded pace (0: as fast as the client reads).
pub async fn start_replay(dir: &Path, speed: f64) -> Result<(ReplayServer, Arc<ReplayData>), AppError> {
    let data = load_recording(dir).await?;
    let server = ReplayServer::start(data.clone(), "127.0.0.1:0", speed).await?;
    Ok((server, data))
}
