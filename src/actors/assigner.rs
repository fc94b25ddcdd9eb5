//! The partition assigner: a node's member of one consumer group. When the group assigns it
//! partitions it starts one worker actor per partition under its own supervisor (as dynamic
//! children); when partitions are revoked it stops their workers gracefully — a connector flushes
//! its batch and commits on the way out — and only then lets the rebalance complete. So the nodes
//! of a StatefulSet share a topic's partitions, and the survivors take a dead node's partitions
//! over from its last commit.
//!
//! It must be the first child of a supervisor of its own (with its workers as the only other
//! children): a new incarnation stops whatever workers the previous one left behind, as their
//! partitions belonged to the member that died with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::admin::LagSource;
use crate::bus::{Bus, GroupEvent, GroupMember};
use crate::supervision::{ChildSpec, SupervisorMsg};

/// Builds the worker of one partition of a member.
pub type WorkerFactory = Arc<dyn Fn(Arc<dyn GroupMember>, u32) -> ChildSpec + Send + Sync>;

pub struct AssignerArgs {
    pub bus: Arc<dyn Bus>,
    pub group: String,
    pub topic: String,
    pub worker: WorkerFactory,
    /// Told which partitions this node owns, whose lag it then reports.
    pub lag: LagSource,
}

pub enum AssignerMsg {
    Event(GroupEvent),
    /// The member's event stream failed or ended.
    Lost(String),
}

pub struct PartitionAssigner;

pub struct AssignerState {
    member: Arc<dyn GroupMember>,
    group: String,
    topic: String,
    lag: LagSource,
    /// Known from post_start on.
    supervisor: Option<ActorRef<SupervisorMsg>>,
    worker: WorkerFactory,
    /// Partition → id of its worker under the supervisor.
    workers: BTreeMap<u32, String>,
    /// Forwards the member's events to this actor.
    events: Option<tokio::task::JoinHandle<()>>,
}

/// Longest a supervisor call may take: a worker's graceful stop (flush and commit) included.
const SUPERVISOR_CALL: Duration = Duration::from_secs(60);

impl AssignerState {
    fn supervisor(&self) -> Result<&ActorRef<SupervisorMsg>, ActorProcessingErr> {
        Ok(self.supervisor.as_ref().ok_or("the partition assigner has no supervisor")?)
    }

    async fn start(&mut self, partitions: Vec<u32>) -> Result<(), ActorProcessingErr> {
        for p in partitions {
            let spec = (self.worker)(self.member.clone(), p);
            let id = spec.id.clone();
            let started = ractor::call_t!(self.supervisor()?, SupervisorMsg::StartChild, ms(SUPERVISOR_CALL), spec)?;
            started.map_err(|e| format!("cannot start the worker of partition {p}: {e}"))?;
            self.workers.insert(p, id);
            self.lag.own(&self.group, &self.topic, p);
        }
        Ok(())
    }

    async fn stop(&mut self, partitions: &[u32]) -> Result<(), ActorProcessingErr> {
        for p in partitions {
            self.lag.disown(&self.group, &self.topic, *p);
            if let Some(id) = self.workers.remove(p) {
                ractor::call_t!(self.supervisor()?, SupervisorMsg::TerminateChild, ms(SUPERVISOR_CALL), id)?;
            }
        }
        Ok(())
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Actor for PartitionAssigner {
    type Msg = AssignerMsg;
    type State = AssignerState;
    type Arguments = AssignerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<AssignerMsg>,
        args: AssignerArgs,
    ) -> Result<AssignerState, ActorProcessingErr> {
        let member = args.bus.join(&args.group, &args.topic).await?;
        tracing::info!(group = %args.group, topic = %args.topic, "Joined the consumer group.");
        Ok(AssignerState {
            member,
            group: args.group,
            topic: args.topic,
            lag: args.lag,
            supervisor: None,
            worker: args.worker,
            workers: BTreeMap::new(),
            events: None,
        })
    }

    /// Runs once the supervisor has registered this incarnation (it cannot answer calls before):
    /// stops the workers a previous incarnation left behind — they worked for a member that is
    /// gone — and then starts taking the member's assignment changes.
    async fn post_start(
        &self,
        myself: ActorRef<AssignerMsg>,
        state: &mut AssignerState,
    ) -> Result<(), ActorProcessingErr> {
        // A supervisor links its children only once they have started.
        let supervisor: ActorRef<SupervisorMsg> =
            myself.try_get_supervisor().ok_or("the partition assigner needs a supervisor of its own")?.into();
        let children = ractor::call_t!(supervisor, SupervisorMsg::Children, ms(SUPERVISOR_CALL))?;
        for child in children {
            if child.cell.as_ref().is_none_or(|c| c.get_id() != myself.get_id()) {
                ractor::call_t!(supervisor, SupervisorMsg::TerminateChild, ms(SUPERVISOR_CALL), child.id)?;
            }
        }
        state.supervisor = Some(supervisor);
        let source = state.member.clone();
        state.events = Some(tokio::spawn(async move {
            loop {
                let msg = match source.next_event().await {
                    Ok(event) => AssignerMsg::Event(event),
                    Err(e) => AssignerMsg::Lost(e.to_string()),
                };
                let lost = matches!(msg, AssignerMsg::Lost(_));
                if myself.send_message(msg).is_err() || lost {
                    return;
                }
            }
        }));
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<AssignerMsg>,
        msg: AssignerMsg,
        state: &mut AssignerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AssignerMsg::Event(GroupEvent::Assigned(partitions)) => state.start(partitions).await,
            AssignerMsg::Event(GroupEvent::Revoked { partitions, lost, ack }) => {
                if lost {
                    tracing::warn!(
                        ?partitions,
                        "Partitions lost to another member; their uncommitted work is redone there."
                    );
                }
                let stopped = state.stop(&partitions).await;
                ack.done();
                stopped
            }
            AssignerMsg::Lost(reason) => Err(format!("left the consumer group: {reason}").into()),
        }
    }

    /// The supervisor stops the workers before this actor (they started after it), so each has
    /// flushed and committed while the member still held its partition.
    async fn post_stop(
        &self,
        _myself: ActorRef<AssignerMsg>,
        state: &mut AssignerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(events) = state.events.take() {
            events.abort();
        }
        // This member leaves the group: its partitions are reported by their next owner.
        for p in state.workers.keys() {
            state.lag.disown(&state.group, &state.topic, *p);
        }
        Ok(())
    }
}
