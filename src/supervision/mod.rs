//! Supervision trees with Erlang/OTP semantics on `ractor`: child specs with restart types
//! (permanent, transient, temporary) and shutdown times; strategies (one_for_one, one_for_all,
//! rest_for_one); restart intensity that escalates to the parent; exponential backoff with jitter;
//! heartbeats that turn a stall into a failure; dynamic children; ordered start, reverse stop; and
//! a live view of the whole tree for the admin API.

mod backoff;
mod heartbeat;
mod spec;
mod strategy;
mod supervisor;
mod tree;
mod view;

pub use backoff::{Backoff, Jitter};
pub use heartbeat::Heartbeat;
pub use spec::{ChildSpec, Restart, Unrecoverable};
pub use strategy::Strategy;
pub use supervisor::{Intensity, Supervisor, SupervisorArgs, SupervisorMsg};
pub use tree::{Tree, TreeFailed};
pub use view::{ChildState, ChildView, TreeNode, TreeView};
