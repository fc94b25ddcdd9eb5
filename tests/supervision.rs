//! The supervisor's OTP semantics: restart types on normal and abnormal exits, panics count as
//! failures, restart intensity makes it give up, children start in order and stop in reverse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use streamforge::admin::metrics::Metrics;
use streamforge::supervision::{ChildInfo, ChildSpec, Intensity, Restart, SupervisorArgs, Tree};

type Log = Arc<Mutex<Vec<String>>>;

struct Worker;

enum WorkerMsg {
    ExitNormally,
    Fail,
    Panic,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = (String, Log);
    type Arguments = (String, Log);

    async fn pre_start(
        &self,
        _me: ActorRef<WorkerMsg>,
        args: (String, Log),
    ) -> Result<(String, Log), ActorProcessingErr> {
        args.1.lock().unwrap().push(format!("start {}", args.0));
        Ok(args)
    }

    async fn handle(
        &self,
        me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _state: &mut (String, Log),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::ExitNormally => me.stop(None),
            WorkerMsg::Fail => return Err("asked to fail".into()),
            WorkerMsg::Panic => panic!("asked to panic"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WorkerMsg>,
        state: &mut (String, Log),
    ) -> Result<(), ActorProcessingErr> {
        state.1.lock().unwrap().push(format!("stop {}", state.0));
        Ok(())
    }
}

fn spec(id: &str, restart: Restart, log: &Log) -> ChildSpec {
    let (id2, log) = (id.to_owned(), log.clone());
    ChildSpec::new(id, "test", restart, move || {
        (Worker, (id2.clone(), log.clone()))
    })
}

async fn tree(children: Vec<ChildSpec>, max_restarts: u32) -> Tree {
    Tree::start(SupervisorArgs {
        name: "test".into(),
        children,
        intensity: Intensity {
            max_restarts,
            within: Duration::from_secs(60),
        },
        auto_shutdown: false,
        metrics: Arc::new(Metrics::new()),
    })
    .await
    .unwrap()
}

async fn child(t: &Tree, id: &str) -> ChildInfo {
    t.children().await.into_iter().find(|c| c.id == id).unwrap()
}

/// Sends `msg` to child `id` and waits until the supervisor has handled the exit.
async fn exit(t: &Tree, id: &str, msg: WorkerMsg) -> ChildInfo {
    let before = child(t, id).await;
    let cell = before.cell.clone().expect("child is running");
    cell.send_message(msg).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = child(t, id).await;
        let replaced = now.cell.as_ref().map(|c| c.get_id()) != Some(cell.get_id());
        if replaced {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "supervisor did not handle the exit of {id}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn restart_types_follow_otp() {
    let log: Log = Default::default();
    let t = tree(
        vec![
            spec("perm", Restart::Permanent, &log),
            spec("trans", Restart::Transient, &log),
            spec("temp", Restart::Temporary, &log),
        ],
        100,
    )
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        ["start perm", "start trans", "start temp"],
        "started in spec order"
    );

    let perm = exit(&t, "perm", WorkerMsg::ExitNormally).await;
    assert!(
        perm.cell.is_some() && perm.restarts == 1,
        "permanent: restarted after a normal exit"
    );
    let perm = exit(&t, "perm", WorkerMsg::Fail).await;
    assert!(
        perm.cell.is_some() && perm.restarts == 2,
        "permanent: restarted after a failure"
    );

    let trans = exit(&t, "trans", WorkerMsg::Fail).await;
    assert!(
        trans.cell.is_some() && trans.restarts == 1,
        "transient: restarted after a failure"
    );
    assert_eq!(trans.last_error.as_deref(), Some("asked to fail"));
    let trans = exit(&t, "trans", WorkerMsg::ExitNormally).await;
    assert!(
        trans.cell.is_none() && trans.restarts == 1,
        "transient: not restarted after a normal exit"
    );

    let temp = exit(&t, "temp", WorkerMsg::Fail).await;
    assert!(
        temp.cell.is_none() && temp.restarts == 0,
        "temporary: never restarted"
    );
}

#[tokio::test]
async fn a_panic_is_a_failure_and_is_restarted() {
    let log: Log = Default::default();
    let t = tree(vec![spec("p", Restart::Transient, &log)], 5).await;
    let info = exit(&t, "p", WorkerMsg::Panic).await;
    assert!(info.cell.is_some() && info.restarts == 1);
    assert!(info.last_error.unwrap().contains("asked to panic"));
}

#[tokio::test]
async fn more_than_max_restarts_makes_the_tree_fail() {
    let log: Log = Default::default();
    let mut t = tree(vec![spec("a", Restart::Permanent, &log)], 2).await;
    exit(&t, "a", WorkerMsg::Fail).await;
    exit(&t, "a", WorkerMsg::Fail).await;
    let cell = child(&t, "a").await.cell.unwrap();
    cell.send_message(WorkerMsg::Fail).unwrap();
    let err = t.wait_for(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.to_string().contains("more than 2 restarts"), "{err}");
}

#[tokio::test]
async fn shutdown_stops_children_in_reverse_order() {
    let log: Log = Default::default();
    let mut t = tree(
        vec![
            spec("one", Restart::Permanent, &log),
            spec("two", Restart::Permanent, &log),
        ],
        5,
    )
    .await;
    t.shutdown();
    t.wait_for(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["start one", "start two", "stop two", "stop one"]
    );
}
