//! The top of a node's tree: a root that owns one supervisor and reports how it ended, so the
//! process can exit non-zero when the tree gives up (and Kubernetes restarts the pod).

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use super::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use super::view::{ChildView, TreeNode, TreeView};

/// How a tree ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("supervision tree failed: {0}")]
pub struct TreeFailed(pub String);

struct Root;

struct RootState {
    done: Option<oneshot::Sender<Result<(), TreeFailed>>>,
}

struct RootArgs {
    supervisor: SupervisorArgs,
    done: oneshot::Sender<Result<(), TreeFailed>>,
    started: oneshot::Sender<ActorRef<SupervisorMsg>>,
}

impl Actor for Root {
    type Msg = ();
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(&self, myself: ActorRef<()>, args: RootArgs) -> Result<RootState, ActorProcessingErr> {
        let (sup, _) = Actor::spawn_linked(None, Supervisor, args.supervisor, myself.get_cell()).await?;
        let _ = args.started.send(sup);
        Ok(RootState { done: Some(args.done) })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let outcome = match event {
            SupervisionEvent::ActorTerminated(_, _, _) => Ok(()),
            SupervisionEvent::ActorFailed(_, err) => Err(TreeFailed(err.to_string())),
            _ => return Ok(()),
        };
        if let Some(done) = state.done.take() {
            let _ = done.send(outcome);
        }
        myself.stop(None);
        Ok(())
    }
}

/// A running supervision tree.
pub struct Tree {
    supervisor: ActorRef<SupervisorMsg>,
    done: oneshot::Receiver<Result<(), TreeFailed>>,
    view: TreeView,
    path: String,
}

impl Tree {
    /// Starts the supervisor and its children, in order.
    pub async fn start(args: SupervisorArgs) -> Result<Tree, TreeFailed> {
        let (view, path) = (args.view.clone(), args.name.clone());
        let (done_tx, done) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        let root_args = RootArgs { supervisor: args, done: done_tx, started: started_tx };
        Actor::spawn(None, Root, root_args).await.map_err(|e| TreeFailed(e.to_string()))?;
        let supervisor = started.await.map_err(|_| TreeFailed("supervisor did not start".into()))?;
        Ok(Tree { supervisor, done, view, path })
    }

    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// The top supervisor's children, in start order.
    pub async fn children(&self) -> Vec<ChildView> {
        ractor::call_t!(self.supervisor, SupervisorMsg::Children, 5_000).unwrap_or_default()
    }

    /// A child anywhere in the tree, by id.
    pub fn find(&self, id: &str) -> Option<ChildView> {
        self.view.find(id)
    }

    /// The whole tree as the admin API shows it.
    pub fn snapshot(&self) -> Option<TreeNode> {
        self.view.tree(&self.path)
    }

    pub fn view(&self) -> &TreeView {
        &self.view
    }

    /// Graceful shutdown: children stop in reverse order, each within its shutdown time.
    pub fn shutdown(&self) {
        self.supervisor.stop(Some("shutdown".into()));
    }

    /// Waits until the tree has ended: `Ok` after a normal stop, `Err` when the supervisor gave up.
    pub async fn wait(&mut self) -> Result<(), TreeFailed> {
        (&mut self.done).await.unwrap_or_else(|_| Err(TreeFailed("root stopped without a report".into())))
    }

    /// Like [`Tree::wait`] but gives up after `timeout`.
    pub async fn wait_for(&mut self, timeout: Duration) -> Result<(), TreeFailed> {
        tokio::time::timeout(timeout, self.wait())
            .await
            .unwrap_or_else(|_| Err(TreeFailed(format!("tree did not end within {timeout:?}"))))
    }
}
