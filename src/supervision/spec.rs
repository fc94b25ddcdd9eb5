//! What a supervisor needs to know about a child: its id, how to start it, when to restart it, how
//! long it may take to stop, and whether it promises heartbeats.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

use super::heartbeat::Heartbeat;
use super::supervisor::{Supervisor, SupervisorArgs};
use super::view::TreeView;

/// When a child that exited is started again (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit (an error, a panic, a kill, a missed heartbeat).
    Transient,
    /// Never restarted.
    Temporary,
}

type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// Passed to a child's start function by its supervisor.
pub(crate) struct StartContext {
    pub supervisor: ActorCell,
    /// Path of the supervisor starting the child (`node/connectors`).
    pub path: String,
    pub heartbeat: Heartbeat,
    /// The tree's view, shared with nested supervisors.
    pub view: TreeView,
}

/// How to start (and restart) one child under a supervisor.
#[derive(Clone)]
pub struct ChildSpec {
    pub id: String,
    /// Metric label and API kind: the actor family (`loader`, `connector`, …) or `supervisor`.
    pub family: &'static str,
    pub restart: Restart,
    /// How long a stopping child may take to finish before it is killed.
    pub shutdown: Duration,
    /// When set, the child must call [`Heartbeat::beat`] at least this often.
    pub heartbeat: Option<Duration>,
    start: Arc<dyn Fn(StartContext) -> StartFuture + Send + Sync>,
}

impl ChildSpec {
    /// A child built fresh by `make` on every (re)start: its state comes from the arguments again,
    /// as after an Erlang restart.
    pub fn new<A, F>(id: impl Into<String>, family: &'static str, restart: Restart, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        Self::with_heartbeat(id, family, restart, None, move |_| make())
    }

    /// A child that receives its [`Heartbeat`] handle and is treated as stalled when it does not
    /// beat within `timeout`.
    pub fn with_heartbeat<A, F>(
        id: impl Into<String>,
        family: &'static str,
        restart: Restart,
        timeout: Option<Duration>,
        make: F,
    ) -> Self
    where
        A: Actor,
        F: Fn(Heartbeat) -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        ChildSpec {
            id: id.into(),
            family,
            restart,
            shutdown: Duration::from_secs(10),
            heartbeat: timeout,
            start: Arc::new(move |ctx: StartContext| {
                let make = make.clone();
                Box::pin(async move {
                    let (actor, args) = make(ctx.heartbeat);
                    let (actor_ref, _) = Actor::spawn_linked(None, actor, args, ctx.supervisor).await?;
                    Ok(actor_ref.get_cell())
                })
            }),
        }
    }

    /// A nested supervisor; `make` builds its arguments on every (re)start. Its path in the tree
    /// is its parent's path followed by `id`, and it reports into its parent's view.
    pub fn supervisor<F>(id: impl Into<String>, restart: Restart, make: F) -> Self
    where
        F: Fn() -> SupervisorArgs + Send + Sync + 'static,
    {
        let id: String = id.into();
        let make = Arc::new(make);
        let own = id.clone();
        ChildSpec {
            id,
            family: "supervisor",
            restart,
            // A supervisor stops its own children first; give it room for theirs.
            shutdown: Duration::from_secs(60),
            heartbeat: None,
            start: Arc::new(move |ctx: StartContext| {
                let mut args = make();
                args.name = format!("{}/{own}", ctx.path);
                args.view = ctx.view;
                Box::pin(async move {
                    let (actor_ref, _) = Actor::spawn_linked(None, Supervisor, args, ctx.supervisor).await?;
                    Ok(actor_ref.get_cell())
                })
            }),
        }
    }

    pub fn with_shutdown(mut self, shutdown: Duration) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub(crate) async fn start(&self, ctx: StartContext) -> Result<ActorCell, SpawnErr> {
        (self.start)(ctx).await
    }
}

/// The error of a child that no restart can mend (e.g. the exchange refused what it was asked for):
/// a child that fails with it is marked [`ChildState::Failed`](super::ChildState) and not
/// restarted, whatever its [`Restart`] type, and it counts as ended for the strategy and for
/// `auto_shutdown`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unrecoverable(pub String);
