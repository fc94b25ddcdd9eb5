//! What a supervisor needs to know about a child: its id, how to start it, when to restart it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

/// When a child that exited is started again (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit (an error, a panic, a kill).
    Transient,
    /// Never restarted.
    Temporary,
}

type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// How to start (and restart) one child under a supervisor.
#[derive(Clone)]
pub struct ChildSpec {
    pub id: String,
    /// Metric label: the actor family (`loader`, `connector`, …).
    pub family: &'static str,
    pub restart: Restart,
    /// How long a stopping child may take to finish before it is killed.
    pub shutdown: Duration,
    start: Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>,
}

impl ChildSpec {
    /// A child built fresh by `make` on every (re)start: its state comes from the arguments again,
    /// as after an Erlang restart.
    pub fn new<A, F>(id: impl Into<String>, family: &'static str, restart: Restart, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        ChildSpec {
            id: id.into(),
            family,
            restart,
            shutdown: Duration::from_secs(10),
            start: Arc::new(move |supervisor: ActorCell| {
                let make = make.clone();
                Box::pin(async move {
                    let (actor, args) = make();
                    let (actor_ref, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
                    Ok(actor_ref.get_cell())
                })
            }),
        }
    }

    pub fn with_shutdown(mut self, shutdown: Duration) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub(crate) async fn start(&self, supervisor: ActorCell) -> Result<ActorCell, SpawnErr> {
        (self.start)(supervisor).await
    }
}
