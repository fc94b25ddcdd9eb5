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

    pub(crate) fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
