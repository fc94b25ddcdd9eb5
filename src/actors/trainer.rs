//! The trainer actor (the seeds' `gnn-trainer`): runs the walk-forward evaluation of the temporal
//! GCN and its baselines on the chosen device, off the async runtime, and reports on
//! `queue-events`. Its result — the evaluation and the most recent fold's network as recorded
//! weights — goes to a slot the caller reads; a restarted trainer trains again from the start.

use std::sync::{Arc, Mutex};

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Telemetry;
use crate::model::{EventStatus, QueueEvent};
use crate::trainer::artifacts::{weights, ArtifactError};
use crate::trainer::dataset::Dataset;
use crate::trainer::device::Device;
use crate::trainer::evaluate::{evaluate, EvalConfig, Evaluation};
use crate::trainer::fit::Scaler;
use crate::trainer::model::{Logistic, TemporalGcn};

/// The most recent fold's GNN (as recorded weights) and its scaler.
pub type Latest = Option<(usize, Vec<u8>, Scaler)>;

/// What a training run produced.
pub type Trained = (Evaluation, Latest);

/// Runs the evaluation on backend `B`.
pub fn evaluate_on<B: AutodiffBackend>(dataset: &Dataset, eval: &EvalConfig) -> Result<Trained, ArtifactError>
where
    TemporalGcn<B>: AutodiffModule<B, InnerModule = TemporalGcn<B::InnerBackend>>,
    Logistic<B>: AutodiffModule<B, InnerModule = Logistic<B::InnerBackend>>,
{
    let device = Default::default();
    let mut last = None;
    let evaluation = evaluate::<B>(dataset, eval, &device, |fold, model, scaler| {
        last = Some((fold, model.clone(), scaler.clone()));
    });
    let latest = match last {
        Some((fold, model, scaler)) => Some((fold, weights(&model)?, scaler)),
        None => None,
    };
    Ok((evaluation, latest))
}

/// The evaluation on `device` (CUDA only in a build with it).
pub fn evaluate_on_device(dataset: &Dataset, eval: &EvalConfig, device: Device) -> Result<Trained, ArtifactError> {
    match device {
        Device::Cpu => evaluate_on::<Autodiff<Flex>>(dataset, eval),
        #[cfg(feature = "cuda")]
        Device::Cuda => evaluate_on::<Autodiff<burn::backend::Cuda>>(dataset, eval),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => unreachable!("trainer::device::choose never picks CUDA in a build without it"),
    }
}

pub struct TrainerArgs {
    pub queue_id: String,
    pub dataset: Arc<Dataset>,
    pub eval: EvalConfig,
    pub device: Device,
    pub telemetry: Telemetry,
    /// Filled when training is done.
    pub result: Arc<Mutex<Option<Trained>>>,
}

pub enum TrainerMsg {
    Train,
}

pub struct TrainerActor;

impl TrainerArgs {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.queue_id, "gnn-trainer", status).kind("train")
    }
}

impl Actor for TrainerActor {
    type Msg = TrainerMsg;
    type State = TrainerArgs;
    type Arguments = TrainerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TrainerMsg>,
        args: TrainerArgs,
    ) -> Result<TrainerArgs, ActorProcessingErr> {
        let message = format!(
            "Training on {:?}: {} assets, {} samples, {} seeds",
            args.device,
            args.dataset.assets(),
            args.dataset.samples.len(),
            args.eval.seeds
        );
        args.telemetry.emit(args.event(EventStatus::Started).message(message)).await;
        myself.send_message(TrainerMsg::Train)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<TrainerMsg>,
        msg: TrainerMsg,
        args: &mut TrainerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrainerMsg::Train => {
                let (dataset, eval, device) = (args.dataset.clone(), args.eval.clone(), args.device);
                let outcome = tokio::task::spawn_blocking(move || evaluate_on_device(&dataset, &eval, device)).await?;
                match outcome {
                    Ok(trained) => {
                        let folds = trained.0.folds.len();
                        *args.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(trained);
                        let message = format!("Evaluated {folds} folds");
                        args.telemetry.emit(args.event(EventStatus::Finished).message(message)).await;
                        myself.stop(None);
                    }
                    Err(error) => {
                        args.telemetry.emit(args.event(EventStatus::Error).message(error.to_string())).await;
                        return Err(error.into());
                    }
                }
            }
        }
        Ok(())
    }
}
