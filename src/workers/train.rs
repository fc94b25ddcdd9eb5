//! The `gnn-trainer` worker of a workflow's `train` step (feature `trainer`): trains on the stored
//! candles the command names ([`crate::app::train::train_on`]: samples, walk-forward evaluation by
//! the trainer actor, the newest model saved and registered) and reports the model on
//! `queue-events`. It is a temporary child: a failure is reported as given up (`error`, marked
//! `finished`) and queue-manager decides on a new attempt.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Target;
use crate::app::train::{train_on, TrainOptions};
use crate::app::NodeContext;
use crate::graph::Aligned;
use crate::model::{EventStatus, QueueEvent};

#[derive(Clone)]
pub struct TrainWorkerArgs {
    pub ctx: NodeContext,
    pub queue_id: String,
    pub aligned: Arc<Aligned>,
    pub opts: TrainOptions,
}

pub enum TrainWorkerMsg {
    Run,
}

pub struct TrainWorker;

impl TrainWorkerArgs {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.queue_id, Target::Trainer.name(), status).kind("train")
    }
}

impl Actor for TrainWorker {
    type Msg = TrainWorkerMsg;
    type State = TrainWorkerArgs;
    type Arguments = TrainWorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TrainWorkerMsg>,
        args: TrainWorkerArgs,
    ) -> Result<TrainWorkerArgs, ActorProcessingErr> {
        let message = format!("Training {} on {} symbols", args.opts.name, args.aligned.symbols.len());
        args.ctx.telemetry.emit(args.event(EventStatus::Started).message(message)).await;
        myself.send_message(TrainWorkerMsg::Run)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<TrainWorkerMsg>,
        _msg: TrainWorkerMsg,
        args: &mut TrainWorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        // The trainer actor's own events go to a queue id of their own: the step is done only
        // once the model is saved and registered.
        let evaluation = format!("{}-evaluation", args.queue_id);
        let ev = match train_on(&args.ctx, (*args.aligned).clone(), &args.opts, &evaluation).await {
            Ok(run) => {
                let message =
                    format!("Registered {} v{} at {} ({} samples)", run.name, run.version, run.url, run.samples);
                let mut ev = args.event(EventStatus::Finished).records_written(run.samples as u64).message(message);
                let model = serde_json::json!({ "name": run.name, "version": run.version, "url": run.url });
                ev.extra.insert("model".into(), model);
                ev
            }
            Err(error) => {
                let mut ev = args.event(EventStatus::Error).message(error.to_string());
                ev.finished = true;
                ev
            }
        };
        args.ctx.telemetry.emit(ev).await;
        myself.stop(None);
        Ok(())
    }
}
