//! Workflows: one user request ("load BTCUSDT 1m candles for April, store them, build graphs")
//! carried out by workers (seed 001 §2.2). This module owns the names, the typed statuses and the
//! transitions; [`manager`] (queue-manager) drives them from `queue-events`, and every store keeps
//! the record through [`crate::store::Store`].
//!
//! A workflow has steps drawn from `load → store → graph → train`. `load` and `store` run together
//! (the connectors write what the loaders publish); `graph` starts once `store` has finished and
//! `train` once `graph` has. Each step has one task per worker (a loader per symbol and type, a
//! connector per collection, one graph builder). A step finishes when all its tasks have; a step
//! that fails fails the steps after it with the reason.

mod id;
pub mod manager;
mod request;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::workers::Target;
pub use id::new_queue_id;
pub use request::{
    DataType, DummySettings, GraphSettings, RequestProblems, TrainSettings, WorkflowRequest, WorkflowSpec,
};

/// Status of a workflow, a step or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Finished,
    Failed,
    Stopped,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Pending, Status::Running, Status::Finished, Status::Failed, Status::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }

    /// Finished, failed or stopped: nothing more happens to it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Finished | Status::Failed | Status::Stopped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}: expected one of pending, running, finished, failed, stopped"))
    }
}

/// A step of a workflow, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Load,
    Store,
    /// Holes in what was stored, asked of the exchange and filled; what it confirms empty kept
    /// (`store::repair`).
    Verify,
    /// Longer candles derived from the stored ones (`store::derived`).
    Derive,
    Graph,
    Train,
}

impl Step {
    pub const ALL: [Step; 6] = [Step::Load, Step::Store, Step::Verify, Step::Derive, Step::Graph, Step::Train];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Load => "load",
            Step::Store => "store",
            Step::Verify => "verify",
            Step::Derive => "derive",
            Step::Graph => "graph",
            Step::Train => "train",
        }
    }

    /// The seeds' `target` of the workers that carry the step out (seed 001 §3).
    pub fn target(self) -> Target {
        match self {
            Step::Load => Target::LoaderProducer,
            Step::Store => Target::Connector,
            Step::Verify => Target::GapVerifier,
            Step::Derive => Target::CandleDeriver,
            Step::Graph => Target::GraphBuilder,
            Step::Train => Target::Trainer,
        }
    }

    /// The step among `steps` that must finish before this one starts (`store` starts with `load`;
    /// what reads the stored series waits for `verify` when there is one).
    pub fn after(self, steps: &[Step]) -> Option<Step> {
        let earlier: &[Step] = match self {
            Step::Load | Step::Store => &[],
            Step::Verify => &[Step::Store],
            Step::Derive | Step::Graph => &[Step::Verify, Step::Store],
            Step::Train => &[Step::Graph, Step::Verify, Step::Store],
        };
        earlier.iter().copied().find(|s| steps.contains(s))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Step, String> {
        Step::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown step {s:?}: expected load, store, verify, derive, graph or train"))
    }
}

/// One worker's share of a step: a loader of one symbol and type, a connector of one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// The `producer` of its events, e.g. `loader-api-candles-1m__btcusdt`.
    pub producer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    pub status: Status,
    /// Times its worker was started (more than 1 after queue-manager restarted it).
    #[serde(default)]
    pub attempts: u32,
    /// Records counted before its worker was last resumed (a worker counts from its own start).
    #[serde(default)]
    pub resumed_from: u64,
    pub records_written: u64,
    pub gaps: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Epoch ms of its last event (or of its start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<i64>,
    /// The `start` command that starts its worker, sent again on a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub command: Option<crate::model::QueueControl>,
}

impl Task {
    pub fn new(producer: impl Into<String>) -> Task {
        Task {
            producer: producer.into(),
            symbol: None,
            kind: None,
            collection: None,
            status: Status::Pending,
            attempts: 0,
            resumed_from: 0,
            records_written: 0,
            gaps: 0,
            errors: 0,
            message: None,
            last_event_at: None,
            command: None,
        }
    }
}

/// A step's status and its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub step: Step,
    pub status: Status,
    /// Times the step was started (1 on its first start; more after restarts).
    pub attempts: u32,
    pub records_written: u64,
    pub gaps: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub tasks: Vec<Task>,
}

/// One decision queue-manager took, in the order taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// Epoch ms.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    pub what: String,
}

/// A workflow's record as queue-manager keeps it in the store (seed 001 §2.2, step 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workflow {
    /// `wf-btcusdt-api_candles_5m-20240801-a1b2c3`
    pub id: String,
    pub status: Status,
    pub spec: WorkflowSpec,
    pub steps: Vec<StepRecord>,
    /// Records the last step that writes records has written (stored rows, or loaded ones for a
    /// load-only workflow).
    pub records_written: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    pub updated_at: i64,
    /// The node whose queue-manager follows it (holds its lease in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub history: Vec<Decision>,
}

impl Workflow {
    /// A new workflow, every step pending.
    pub fn new(id: String, spec: WorkflowSpec, now: i64) -> Workflow {
        let steps = spec
            .steps
            .iter()
            .map(|&step| StepRecord {
                step,
                status: Status::Pending,
                attempts: 0,
                records_written: 0,
                gaps: 0,
                errors: 0,
                started_at: None,
                finished_at: None,
                message: None,
                tasks: Vec::new(),
            })
            .collect();
        let mut wf = Workflow {
            id,
            status: Status::Pending,
            spec,
            steps,
            records_written: 0,
            message: None,
            created_at: now,
            updated_at: now,
            owner: None,
            history: Vec::new(),
        };
        wf.decide(now, None, "created");
        wf
    }

    /// Writes a decision into the history.
    pub fn decide(&mut self, now: i64, step: Option<Step>, what: impl Into<String>) {
        self.history.push(Decision { at: now, step, what: what.into() });
        self.updated_at = now;
    }

    pub fn step(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }

    pub fn step_mut(&mut self, step: Step) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.step == step)
    }

    /// Pending steps whose dependency has finished: the ones to start now.
    pub fn startable(&self) -> Vec<Step> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        let steps = &self.spec.steps;
        self.steps
            .iter()
            .filter(|s| s.status == Status::Pending)
            .filter(|s| s.step.after(steps).is_none_or(|d| self.step(d).is_some_and(|d| d.status == Status::Finished)))
            .map(|s| s.step)
            .collect()
    }

    /// Marks `step` running with its tasks.
    pub fn start_step(&mut self, step: Step, tasks: Vec<Task>, now: i64) {
        let Some(s) = self.step_mut(step) else { return };
        s.status = Status::Running;
        s.attempts += 1;
        s.started_at.get_or_insert(now);
        for mut t in tasks {
            t.status = Status::Running;
            t.attempts = 1;
            t.last_event_at = Some(now);
            s.tasks.push(t);
        }
        let n = s.tasks.len();
        if self.status == Status::Pending {
            self.status = Status::Running;
        }
        self.decide(now, Some(step), format!("started with {n} worker(s)"));
    }

    /// The step and index of the task whose events `producer` sends.
    pub fn task_of(&self, producer: &str) -> Option<(Step, usize)> {
        self.steps.iter().find_map(|s| s.tasks.iter().position(|t| t.producer == producer).map(|i| (s.step, i)))
    }

    /// Re-adds up a step's totals from its tasks and finishes it when every task has; returns
    /// whether it finished now.
    pub fn settle(&mut self, step: Step, now: i64) -> bool {
        let Some(s) = self.step_mut(step) else { return false };
        s.records_written = s.tasks.iter().map(|t| t.records_written).sum();
        s.gaps = s.tasks.iter().map(|t| t.gaps).sum();
        s.errors = s.tasks.iter().map(|t| t.errors).sum();
        let done = s.status == Status::Running && s.tasks.iter().all(|t| t.status == Status::Finished);
        if done {
            s.status = Status::Finished;
            s.finished_at = Some(now);
            let what = format!("finished: {} records, {} gaps", s.records_written, s.gaps);
            self.decide(now, Some(step), what);
        }
        self.records_written = self
            .steps
            .iter()
            .rev()
            .find(|s| matches!(s.step, Step::Load | Step::Store) && s.status != Status::Pending)
            .map_or(0, |s| s.records_written);
        if done && self.steps.iter().all(|s| s.status == Status::Finished) {
            self.status = Status::Finished;
            self.decide(now, None, "finished: every step finished");
        }
        done
    }

    /// Fails `step` with `reason`, and with it every step after it and the workflow.
    pub fn fail(&mut self, step: Step, reason: &str, now: i64) {
        for s in self.steps.iter_mut() {
            if s.step == step {
                s.status = Status::Failed;
                s.message = Some(reason.to_owned());
                s.finished_at = Some(now);
            } else if s.status == Status::Pending {
                s.status = Status::Failed;
                s.message = Some(format!("not started: step {step} failed"));
            }
        }
        self.status = Status::Failed;
        self.message = Some(format!("step {step} failed: {reason}"));
        self.decide(now, Some(step), format!("failed: {reason}"));
    }

    /// Stops the workflow on request: running and pending steps become `stopped`.
    pub fn stop(&mut self, reason: &str, now: i64) {
        for s in self.steps.iter_mut().filter(|s| !s.status.is_terminal()) {
            s.status = Status::Stopped;
            s.finished_at = Some(now);
            for t in s.tasks.iter_mut().filter(|t| !t.status.is_terminal()) {
                t.status = Status::Stopped;
            }
        }
        self.status = Status::Stopped;
        self.message = Some(reason.to_owned());
        self.decide(now, None, format!("stopped: {reason}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: &[Step]) -> WorkflowSpec {
        WorkflowSpec {
            symbols: vec!["BTCUSDT".into()],
            types: vec![DataType::parse("api_candles_1m").unwrap()],
            time_range: Some((0, 60_000)),
            steps: steps.to_vec(),
            graph: Default::default(),
            dummy: None,
            train: None,
            derive: Vec::new(),
        }
    }

    #[test]
    fn graph_waits_for_store_and_store_starts_with_load() {
        let mut wf = Workflow::new("wf".into(), spec(&[Step::Load, Step::Store, Step::Graph]), 1);
        assert_eq!(wf.startable(), vec![Step::Load, Step::Store]);
        wf.start_step(Step::Load, vec![Task::new("loader")], 2);
        wf.start_step(Step::Store, vec![Task::new("connector")], 2);
        assert_eq!(wf.status, Status::Running);
        assert!(wf.startable().is_empty());
        wf.steps[0].tasks[0].status = Status::Finished;
        wf.steps[0].tasks[0].records_written = 7;
        assert!(wf.settle(Step::Load, 3));
        assert!(wf.startable().is_empty(), "graph waits for store, not load");
        wf.steps[1].tasks[0].status = Status::Finished;
        wf.steps[1].tasks[0].records_written = 7;
        assert!(wf.settle(Step::Store, 4));
        assert_eq!(wf.startable(), vec![Step::Graph]);
        assert_eq!((wf.records_written, wf.status), (7, Status::Running));
    }

    #[test]
    fn a_failed_step_fails_the_steps_after_it_with_the_reason() {
        let mut wf = Workflow::new("wf".into(), spec(&[Step::Load, Step::Store, Step::Graph]), 1);
        wf.start_step(Step::Load, vec![Task::new("loader")], 2);
        wf.fail(Step::Load, "the exchange refused", 3);
        assert_eq!(wf.status, Status::Failed);
        assert_eq!(wf.step(Step::Graph).unwrap().message.as_deref(), Some("not started: step load failed"));
        assert!(wf.message.as_deref().unwrap().contains("the exchange refused"));
        assert!(wf.startable().is_empty());
        assert_eq!(wf.history.last().unwrap().what, "failed: the exchange refused");
    }

    #[test]
    fn the_last_step_finishing_finishes_the_workflow() {
        let mut wf = Workflow::new("wf".into(), spec(&[Step::Load]), 1);
        wf.start_step(Step::Load, vec![Task::new("a"), Task::new("b")], 2);
        wf.steps[0].tasks[0].status = Status::Finished;
        assert!(!wf.settle(Step::Load, 3), "one of two tasks is not a step");
        wf.steps[0].tasks[1].status = Status::Finished;
        assert!(wf.settle(Step::Load, 4));
        assert_eq!(wf.status, Status::Finished);
    }

    #[test]
    fn statuses_and_steps_parse_their_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for s in Step::ALL {
            assert_eq!(s.as_str().parse::<Step>(), Ok(s));
        }
        assert!("done".parse::<Status>().unwrap_err().contains("pending, running"));
    }
}
