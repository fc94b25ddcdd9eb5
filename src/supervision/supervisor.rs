//! A one-for-one supervisor actor with OTP restart types and restart intensity.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::spec::{ChildSpec, Restart};
use crate::admin::metrics::Metrics;

/// More than `max_restarts` restarts within `within` makes the supervisor give up.
#[derive(Debug, Clone, Copy)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for Intensity {
    /// OTP's default is 1 restart in 5 s; data actors restart on transient faults more often.
    fn default() -> Self {
        Intensity {
            max_restarts: 10,
            within: Duration::from_secs(60),
        }
    }
}

pub struct SupervisorArgs {
    pub name: String,
    pub children: Vec<ChildSpec>,
    pub intensity: Intensity,
    /// Stop (normally) once every child has exited and none is due a restart.
    pub auto_shutdown: bool,
    pub metrics: Arc<Metrics>,
}

/// What the supervisor reports about one child.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub id: String,
    pub cell: Option<ActorCell>,
    pub restarts: u32,
    pub last_error: Option<String>,
}

pub enum SupervisorMsg {
    /// The children, in start order.
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

pub struct Supervisor;

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    restarts: u32,
    last_error: Option<String>,
}

pub struct SupervisorState {
    name: String,
    children: Vec<Child>,
    intensity: Intensity,
    recent_restarts: VecDeque<Instant>,
    auto_shutdown: bool,
    metrics: Arc<Metrics>,
}

impl SupervisorState {
    fn child_of(&mut self, cell: &ActorCell) -> Option<&mut Child> {
        self.children
            .iter_mut()
            .find(|c| c.cell.as_ref().is_some_and(|x| x.get_id() == cell.get_id()))
    }

    /// Records a restart; false when that exceeds the intensity.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        while self
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.intensity.within)
        {
            self.recent_restarts.pop_front();
        }
        self.recent_restarts.push_back(now);
        self.recent_restarts.len() as u32 <= self.intensity.max_restarts
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(args.children.len());
        for spec in args.children {
            let cell = spec.start(myself.get_cell()).await?;
            args.metrics
                .actor_up
                .with_label_values(&[spec.family])
                .inc();
            children.push(Child {
                spec,
                cell: Some(cell),
                restarts: 0,
                last_error: None,
            });
        }
        Ok(SupervisorState {
            name: args.name,
            children,
            intensity: args.intensity,
            recent_restarts: VecDeque::new(),
            auto_shutdown: args.auto_shutdown,
            metrics: args.metrics,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Children(reply) => {
                let info = state
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        cell: c.cell.clone(),
                        restarts: c.restarts,
                        last_error: c.last_error.clone(),
                    })
                    .collect();
                let _ = reply.send(info);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, error) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            // A kill is abnormal in OTP terms; any other stop is a normal exit.
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let abnormal = reason.as_deref() == Some("killed");
                (cell, abnormal.then(|| "killed".to_owned()))
            }
            _ => return Ok(()),
        };
        let supervisor = state.name.clone();
        let metrics = state.metrics.clone();
        let Some(child) = state.child_of(&cell) else {
            return Ok(());
        };
        child.cell = None;
        metrics
            .actor_up
            .with_label_values(&[child.spec.family])
            .dec();
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => error.is_some(),
            Restart::Temporary => false,
        };
        let id = child.spec.id.clone();
        match &error {
            Some(e) => {
                tracing::warn!(supervisor, child = %id, error = %e, restart, "Child failed.");
                child.last_error = Some(e.clone());
            }
            None => tracing::info!(supervisor, child = %id, restart, "Child exited normally."),
        }
        if restart {
            if !state.allow_restart() {
                let why = format!(
                    "{supervisor}: more than {} restarts within {:?}; giving up",
                    state.intensity.max_restarts, state.intensity.within
                );
                tracing::error!(supervisor, child = %id, "Restart intensity exceeded; supervisor gives up.");
                return Err(why.into());
            }
            let Some(child) = state.children.iter_mut().find(|c| c.spec.id == id) else {
                return Ok(());
            };
            let cell = child.spec.start(myself.get_cell()).await?;
            child.cell = Some(cell);
            child.restarts += 1;
            metrics
                .restarts
                .with_label_values(&[child.spec.family])
                .inc();
            metrics
                .actor_up
                .with_label_values(&[child.spec.family])
                .inc();
            tracing::info!(supervisor, child = %id, restarts = child.restarts, "Child restarted.");
        } else if state.auto_shutdown && state.children.iter().all(|c| c.cell.is_none()) {
            tracing::info!(supervisor, "All children finished; supervisor stops.");
            myself.stop(None);
        }
        Ok(())
    }

    /// Stops children in reverse start order, each within its shutdown time (then killed).
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for child in state.children.iter_mut().rev() {
            if let Some(cell) = child.cell.take() {
                let status = cell
                    .stop_and_wait(Some("shutdown".into()), Some(child.spec.shutdown))
                    .await;
                if status.is_err() {
                    tracing::warn!(supervisor = %state.name, child = %child.spec.id, "Child did not stop in time; killed.");
                    cell.kill();
                }
                state
                    .metrics
                    .actor_up
                    .with_label_values(&[child.spec.family])
                    .dec();
            }
        }
        Ok(())
    }
}
