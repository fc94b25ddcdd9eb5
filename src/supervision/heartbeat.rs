//! Heartbeats: a child that declared one must beat within its timeout, or its supervisor treats it
//! as stalled (e.g. a WebSocket loader that receives nothing) and kills and restarts it.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// The child's side: call [`Heartbeat::beat`] whenever it makes progress.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Heartbeat {
    pub(crate) fn new() -> Self {
        Heartbeat(Arc::new(Mutex::new(Instant::now())))
    }

    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Runs `work`, beating every second until it is done: for a wait the child chose (the node's
    /// REST budget held by a ban), which is not a hang. `work` must end by itself (a timeout).
    pub async fn during<F: std::future::Future>(&self, work: F) -> F::Output {
        tokio::pin!(work);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick() => self.beat(),
            }
        }
    }

    pub(crate) fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
