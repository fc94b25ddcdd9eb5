//! `streamforge dummy`: a node whose only worker is the dummy actor (ping/pong, simulated
//! loading, failures) — the seeds' `dummy-service`, for exercising the protocol and the tree.

use std::future::Future;

use super::args::{Common, LogArgs};
use super::node::Node;
use super::AppError;

/// `streamforge dummy`'s command line: each flag overrides its key of `[dummy]`.
#[derive(clap::Args, Debug, Clone)]
pub struct DummyArgs {
    #[command(flatten)]
    pub common: Common,
    /// The workflow id it answers for (dummy.queue_id).
    #[arg(long)]
    pub queue_id: Option<String>,
    /// Emit `loading` events every tick (dummy.simulate_loading).
    #[arg(long)]
    pub simulate_loading: bool,
    /// Send an `error` event and fail after N ticks (dummy.fail_after).
    #[arg(long, value_name = "N")]
    pub fail_after: Option<u32>,
    /// dummy.tick_ms.
    #[arg(long, value_name = "MS")]
    pub tick_ms: Option<u64>,
}

/// Starts the node with the dummy enabled and runs it until `shutdown`.
pub async fn run(args: DummyArgs, log: &LogArgs, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let config = args.common.config(log, |c| {
        let d = &mut c.dummy;
        d.enabled = true;
        d.simulate_loading |= args.simulate_loading;
        if let Some(q) = &args.queue_id {
            d.queue_id = q.clone();
        }
        if let Some(n) = args.fail_after {
            d.fail_after = n;
        }
        if let Some(ms) = args.tick_ms {
            d.tick_ms = ms;
        }
    })?;
    let offline = args.common.offline_dir(&config);
    Node::start(config, offline).await?.run_until(shutdown).await
}
