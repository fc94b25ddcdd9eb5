//! Supervision: supervisors that start children in order, restart them by their restart type when
//! they fail (an error or a panic), give up after too many restarts in a window, and stop children
//! in reverse order on shutdown. Erlang/OTP's supervisor is the reference.

mod spec;
mod supervisor;
mod tree;

pub use spec::{ChildSpec, Restart};
pub use supervisor::{ChildInfo, Intensity, Supervisor, SupervisorArgs, SupervisorMsg};
pub use tree::{Tree, TreeFailed};
