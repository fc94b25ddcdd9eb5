//! The live picture of a supervision tree, kept up to date by its supervisors and read by the
//! admin API (`GET /api/v1/supervision`) and by tests that need a child's cell.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ractor::ActorCell;
use serde::Serialize;

use super::Strategy;

/// A child's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Running,
    /// Waiting out its backoff before the next start.
    Restarting,
    /// Exited and not due a restart.
    Stopped,
    /// Failed with an error no restart can mend ([`super::Unrecoverable`]); left stopped.
    Failed,
}

impl ChildState {
    /// Stopped or failed: nothing runs and nothing is due.
    pub fn ended(self) -> bool {
        matches!(self, ChildState::Stopped | ChildState::Failed)
    }
}

/// What is known about one child.
#[derive(Debug, Clone, Serialize)]
pub struct ChildView {
    pub id: String,
    /// Actor family (`loader`, `connector`, …) or `supervisor`.
    pub kind: &'static str,
    pub state: ChildState,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// Epoch ms of the current incarnation's start.
    pub up_since_ms: Option<i64>,
    #[serde(skip)]
    pub cell: Option<ActorCell>,
}

/// One node of the tree as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    #[serde(flatten)]
    pub child: ChildView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TreeNode>,
}

#[derive(Default)]
struct Inner {
    /// Supervisor path → strategy.
    supervisors: BTreeMap<String, Strategy>,
    /// (supervisor path, start sequence) → child.
    children: BTreeMap<(String, u64), ChildView>,
}

/// Shared by every supervisor of one tree.
#[derive(Clone, Default)]
pub struct TreeView(Arc<Mutex<Inner>>);

impl TreeView {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn supervisor_started(&self, path: &str, strategy: Strategy) {
        self.lock().supervisors.insert(path.to_owned(), strategy);
    }

    pub(crate) fn supervisor_stopped(&self, path: &str) {
        let mut inner = self.lock();
        inner.supervisors.remove(path);
        inner.children.retain(|(p, _), _| p != path);
    }

    pub(crate) fn set(&self, path: &str, seq: u64, child: ChildView) {
        self.lock().children.insert((path.to_owned(), seq), child);
    }

    pub(crate) fn remove(&self, path: &str, seq: u64) {
        self.lock().children.remove(&(path.to_owned(), seq));
    }

    /// The first child with this id anywhere in the tree.
    pub fn find(&self, id: &str) -> Option<ChildView> {
        self.lock().children.values().find(|c| c.id == id).cloned()
    }

    /// The children of the supervisor at `path`, in start order.
    pub fn children_of(&self, path: &str) -> Vec<ChildView> {
        self.lock().children.iter().filter(|((p, _), _)| p == path).map(|(_, c)| c.clone()).collect()
    }

    /// The tree below the supervisor at `root` (its path), for the API.
    pub fn tree(&self, root: &str) -> Option<TreeNode> {
        let inner = self.lock();
        let strategy = *inner.supervisors.get(root)?;
        let child = ChildView {
            id: root.rsplit('/').next().unwrap_or(root).to_owned(),
            kind: "supervisor",
            state: ChildState::Running,
            restarts: 0,
            last_error: None,
            up_since_ms: None,
            cell: None,
        };
        Some(build(&inner, root, child, Some(strategy)))
    }
}

fn build(inner: &Inner, path: &str, child: ChildView, strategy: Option<Strategy>) -> TreeNode {
    let children = inner
        .children
        .iter()
        .filter(|((p, _), _)| p == path)
        .map(|(_, c)| {
            let sub = format!("{path}/{}", c.id);
            match inner.supervisors.get(&sub) {
                Some(s) => build(inner, &sub, c.clone(), Some(*s)),
                None => TreeNode { child: c.clone(), strategy: None, children: Vec::new() },
            }
        })
        .collect();
    TreeNode { child, strategy, children }
}
