//! The supervisor's OTP semantics, deterministically: paused tokio time (advanced by the test or
//! automatically when idle), conditions waited on, never sleeps as synchronisation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};
use streamforge::admin::metrics::Metrics;
use streamforge::supervision::{
    Backoff, ChildSpec, ChildState, ChildView, Heartbeat, Intensity, Restart, Strategy, SupervisorArgs, SupervisorMsg,
    Tree, Unrecoverable,
};

/// What the workers did, in order: `start x`, `stop x` (graceful stops only).
type Log = Arc<Mutex<Vec<String>>>;

/// Every incarnation of every worker; a start while an earlier incarnation of the same id still
/// runs (has not reached Stopping) is recorded as a violation.
#[derive(Clone, Default)]
struct Alive(Arc<Mutex<Incarnations>>);

/// (every incarnation started, violations found)
type Incarnations = (Vec<(String, ActorCell)>, Vec<String>);

impl Alive {
    fn running(&self) -> Vec<String> {
        let inner = self.0.lock().unwrap();
        inner.0.iter().filter(|(_, c)| c.get_status() < ActorStatus::Stopping).map(|(id, _)| id.clone()).collect()
    }
}

struct Worker;

#[derive(Clone)]
struct WorkerArgs {
    id: String,
    log: Log,
    alive: Alive,
    heartbeat: Option<Heartbeat>,
    /// `post_stop` never returns (a child that ignores its shutdown timeout).
    hang_on_stop: bool,
}

struct WorkerState(WorkerArgs);

enum WorkerMsg {
    ExitNormally,
    Fail,
    /// Fails with an error no restart can mend.
    FailForGood,
    Panic,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(&self, me: ActorRef<WorkerMsg>, args: WorkerArgs) -> Result<WorkerState, ActorProcessingErr> {
        let mut alive = args.alive.0.lock().unwrap();
        let twice = alive.0.iter().any(|(id, c)| *id == args.id && c.get_status() < ActorStatus::Stopping);
        if twice {
            alive.1.push(format!("{} started while still running", args.id));
        }
        alive.0.push((args.id.clone(), me.get_cell()));
        drop(alive);
        args.log.lock().unwrap().push(format!("start {}", args.id));
        if let Some(hb) = &args.heartbeat {
            hb.beat();
        }
        Ok(WorkerState(args))
    }

    async fn handle(
        &self,
        me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _s: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::ExitNormally => me.stop(None),
            WorkerMsg::Fail => return Err("asked to fail".into()),
            WorkerMsg::FailForGood => return Err(Box::new(Unrecoverable("refused for good".into()))),
            WorkerMsg::Panic => panic!("asked to panic"),
        }
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<WorkerMsg>, s: &mut WorkerState) -> Result<(), ActorProcessingErr> {
        if s.0.hang_on_stop {
            std::future::pending::<()>().await;
        }
        s.0.log.lock().unwrap().push(format!("stop {}", s.0.id));
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Env {
    log: Log,
    alive: Alive,
}

impl Env {
    fn worker(&self, id: &str) -> WorkerArgs {
        WorkerArgs {
            id: id.into(),
            log: self.log.clone(),
            alive: self.alive.clone(),
            heartbeat: None,
            hang_on_stop: false,
        }
    }

    fn spec(&self, id: &str, restart: Restart) -> ChildSpec {
        let args = self.worker(id);
        ChildSpec::new(id, "test", restart, move || (Worker, args.clone()))
    }

    fn beating(&self, id: &str, timeout: Duration) -> ChildSpec {
        let args = self.worker(id);
        ChildSpec::with_heartbeat(id, "test", Restart::Permanent, Some(timeout), move |hb| {
            (Worker, WorkerArgs { heartbeat: Some(hb), ..args.clone() })
        })
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn violations(&self) -> Vec<String> {
        self.alive.0.lock().unwrap().1.clone()
    }
}

fn args(strategy: Strategy, children: Vec<ChildSpec>) -> SupervisorArgs {
    SupervisorArgs {
        intensity: Intensity { max_restarts: 1000, within: Duration::from_secs(60) },
        backoff: Backoff::NONE,
        jitter_seed: Some(42),
        ..SupervisorArgs::new("test", strategy, children, Arc::new(Metrics::new()))
    }
}

async fn child(t: &Tree, id: &str) -> ChildView {
    t.children().await.into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no child {id}"))
}

/// Polls `check` (letting paused time run) until it holds; fails after 10 s of test time.
async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sends `msg` to child `id` and waits until its supervisor has dealt with the exit.
async fn exit(t: &Tree, id: &str, msg: WorkerMsg) -> ChildView {
    let before = child(t, id).await;
    let cell = before.cell.clone().expect("child is running");
    cell.send_message(msg).unwrap();
    let gone = cell.get_id();
    wait_until("the supervisor to handle the exit", || async {
        let now = child(t, id).await;
        now.cell.as_ref().map(|c| c.get_id()) != Some(gone) && now.state != ChildState::Restarting
            || now.state == ChildState::Restarting
    })
    .await;
    child(t, id).await
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let env = Env::default();
    let t = Tree::start(args(Strategy::OneForOne, ["a", "b", "c"].map(|i| env.spec(i, Restart::Permanent)).to_vec()))
        .await
        .unwrap();
    assert_eq!(env.take_log(), ["start a", "start b", "start c"], "started in spec order");
    exit(&t, "b", WorkerMsg::Fail).await;
    assert_eq!(env.take_log(), ["start b"]);
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    let env = Env::default();
    let t = Tree::start(args(Strategy::OneForAll, ["a", "b", "c"].map(|i| env.spec(i, Restart::Permanent)).to_vec()))
        .await
        .unwrap();
    env.take_log();
    exit(&t, "b", WorkerMsg::Fail).await;
    assert_eq!(env.take_log(), ["stop c", "stop a", "start a", "start b", "start c"]);
    assert!(env.violations().is_empty(), "{:?}", env.violations());
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let env = Env::default();
    let t =
        Tree::start(args(Strategy::RestForOne, ["a", "b", "c", "d"].map(|i| env.spec(i, Restart::Permanent)).to_vec()))
            .await
            .unwrap();
    env.take_log();
    exit(&t, "b", WorkerMsg::Fail).await;
    assert_eq!(env.take_log(), ["stop d", "stop c", "start b", "start c", "start d"]);
}

#[tokio::test(start_paused = true)]
async fn restart_types_follow_otp() {
    let env = Env::default();
    let children = vec![
        env.spec("perm", Restart::Permanent),
        env.spec("trans", Restart::Transient),
        env.spec("temp", Restart::Temporary),
    ];
    let t = Tree::start(args(Strategy::OneForOne, children)).await.unwrap();

    let perm = exit(&t, "perm", WorkerMsg::ExitNormally).await;
    assert!(perm.cell.is_some() && perm.restarts == 1, "permanent: restarted after a normal exit");
    let perm = exit(&t, "perm", WorkerMsg::Fail).await;
    assert!(perm.cell.is_some() && perm.restarts == 2, "permanent: restarted after a failure");

    let trans = exit(&t, "trans", WorkerMsg::Fail).await;
    assert!(trans.cell.is_some() && trans.restarts == 1, "transient: restarted after a failure");
    assert_eq!(trans.last_error.as_deref(), Some("asked to fail"));
    let trans = exit(&t, "trans", WorkerMsg::ExitNormally).await;
    assert!(
        trans.cell.is_none() && trans.restarts == 1 && trans.state == ChildState::Stopped,
        "transient: not after a normal exit"
    );

    // No restart type restarts a child that failed for good: it is marked failed, with its error.
    let perm = exit(&t, "perm", WorkerMsg::FailForGood).await;
    assert_eq!((perm.state, perm.restarts), (ChildState::Failed, 2), "permanent: left failed");
    assert_eq!(perm.last_error.as_deref(), Some("refused for good"));
    assert!(perm.cell.is_none());

    let temp = child(&t, "temp").await.cell.unwrap();
    temp.send_message(WorkerMsg::Fail).unwrap();
    wait_until("the temporary child to be forgotten", || async { t.children().await.iter().all(|c| c.id != "temp") })
        .await;
    assert_eq!(env.take_log().iter().filter(|l| *l == "start temp").count(), 1, "temporary: never restarted");
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_failure_and_is_restarted() {
    let env = Env::default();
    let t = Tree::start(args(Strategy::OneForOne, vec![env.spec("p", Restart::Transient)])).await.unwrap();
    let info = exit(&t, "p", WorkerMsg::Panic).await;
    assert!(info.cell.is_some() && info.restarts == 1);
    assert!(info.last_error.unwrap().contains("asked to panic"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_child_is_killed_and_restarted() {
    let env = Env::default();
    let t = Tree::start(args(Strategy::OneForOne, vec![env.beating("ws", Duration::from_secs(5))])).await.unwrap();
    // The worker beats once at start and then never again.
    wait_until("the stall to be detected", || async { child(&t, "ws").await.restarts >= 1 }).await;
    let info = child(&t, "ws").await;
    assert!(info.last_error.as_deref().unwrap().contains("stalled: no heartbeat within 5s"), "{:?}", info.last_error);
    assert_eq!(env.take_log().iter().filter(|l| l.starts_with("start")).count(), 2);
}

fn tight(max_restarts: u32, within: Duration, strategy: Strategy, children: Vec<ChildSpec>) -> SupervisorArgs {
    SupervisorArgs { intensity: Intensity { max_restarts, within }, ..args(strategy, children) }
}

#[tokio::test(start_paused = true)]
async fn more_than_r_restarts_within_t_escalates() {
    let env = Env::default();
    let args = tight(3, Duration::from_secs(10), Strategy::OneForOne, vec![env.spec("a", Restart::Permanent)]);
    let metrics = args.metrics.clone();
    let mut t = Tree::start(args).await.unwrap();
    for _ in 0..3 {
        exit(&t, "a", WorkerMsg::Fail).await;
    }
    assert_eq!(metrics.supervisor_give_ups.get(), 0, "three restarts are within the intensity");
    child(&t, "a").await.cell.unwrap().send_message(WorkerMsg::Fail).unwrap();
    let err = t.wait_for(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.to_string().contains("more than 3 restarts within 10s"), "{err}");
    assert_eq!(metrics.supervisor_give_ups.get(), 1, "streamforge_supervisor_give_ups_total counts the give-up");
}

#[tokio::test(start_paused = true)]
async fn r_restarts_spread_over_more_than_t_do_not_escalate() {
    let env = Env::default();
    let t =
        Tree::start(tight(3, Duration::from_secs(10), Strategy::OneForOne, vec![env.spec("a", Restart::Permanent)]))
            .await
            .unwrap();
    for _ in 0..12 {
        exit(&t, "a", WorkerMsg::Fail).await;
        tokio::time::advance(Duration::from_secs(4)).await;
    }
    let a = child(&t, "a").await;
    assert!(a.cell.is_some() && a.restarts == 12, "still supervised after 12 spread-out failures");
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_that_gives_up_escalates_to_its_parent() {
    let env = Env::default();
    let inner_env = env.clone();
    let metrics = Arc::new(Metrics::new());
    let inner = ChildSpec::supervisor("inner", Restart::Permanent, move || {
        tight(1, Duration::from_secs(10), Strategy::OneForOne, vec![inner_env.spec("w", Restart::Permanent)])
    });
    let t = Tree::start(SupervisorArgs { metrics, ..args(Strategy::OneForOne, vec![inner]) }).await.unwrap();
    let w = t.find("w").unwrap().cell.unwrap();
    w.send_message(WorkerMsg::Fail).unwrap();
    wait_until("the first restart of w", || async { t.find("w").is_some_and(|c| c.restarts == 1 && c.cell.is_some()) })
        .await;
    t.find("w").unwrap().cell.unwrap().send_message(WorkerMsg::Fail).unwrap();
    wait_until("the parent to restart the inner supervisor", || async { child(&t, "inner").await.restarts == 1 }).await;
    let inner = child(&t, "inner").await;
    assert!(inner.last_error.unwrap().contains("giving up"));
    wait_until("w to run again under the new inner supervisor", || async {
        t.find("w").is_some_and(|c| c.cell.is_some())
    })
    .await;
    let snapshot = serde_json::to_value(t.snapshot().unwrap()).unwrap();
    assert_eq!(snapshot["children"][0]["id"], "inner");
    assert_eq!(snapshot["children"][0]["children"][0]["id"], "w");
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_grow_are_capped_and_reset_after_a_stable_period() {
    let env = Env::default();
    let backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(400),
        reset_after: Duration::from_secs(30),
        jitter: 0.0,
    };
    let t =
        Tree::start(SupervisorArgs { backoff, ..args(Strategy::OneForOne, vec![env.spec("a", Restart::Permanent)]) })
            .await
            .unwrap();
    for expected in [100u64, 200, 400, 400] {
        let restarting = exit(&t, "a", WorkerMsg::Fail).await;
        assert_eq!(restarting.state, ChildState::Restarting);
        tokio::time::advance(Duration::from_millis(expected - 1)).await;
        assert!(child(&t, "a").await.cell.is_none(), "not before {expected} ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        wait_until("the restart", || async { child(&t, "a").await.cell.is_some() }).await;
    }
    // A child that ran for the stable period starts over at the minimum.
    tokio::time::advance(Duration::from_secs(31)).await;
    exit(&t, "a", WorkerMsg::Fail).await;
    tokio::time::advance(Duration::from_millis(100)).await;
    wait_until("the restart after 100 ms", || async { child(&t, "a").await.cell.is_some() }).await;
}

#[tokio::test(start_paused = true)]
async fn dynamic_children_are_added_and_removed_at_run_time() {
    let env = Env::default();
    let t = Tree::start(args(Strategy::OneForOne, Vec::new())).await.unwrap();
    for i in 0..5 {
        let spec = env.spec(&format!("p{i}"), Restart::Permanent);
        ractor::call!(t.supervisor(), SupervisorMsg::StartChild, spec).unwrap().unwrap();
    }
    let dup = ractor::call!(t.supervisor(), SupervisorMsg::StartChild, env.spec("p1", Restart::Permanent)).unwrap();
    assert!(dup.unwrap_err().contains("already exists"));
    exit(&t, "p3", WorkerMsg::Fail).await;
    assert!(ractor::call!(t.supervisor(), SupervisorMsg::TerminateChild, "p3".to_owned()).unwrap());
    assert!(!ractor::call!(t.supervisor(), SupervisorMsg::TerminateChild, "nope".to_owned()).unwrap());
    let ids: Vec<String> = t.children().await.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["p0", "p1", "p2", "p4"]);
    assert!(env.take_log().contains(&"stop p3".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_in_reverse_order_and_kills_a_child_that_overruns() {
    let env = Env::default();
    let hang = WorkerArgs { hang_on_stop: true, ..env.worker("slow") };
    let slow = ChildSpec::new("slow", "test", Restart::Permanent, move || (Worker, hang.clone()))
        .with_shutdown(Duration::from_secs(2));
    let mut t = Tree::start(args(
        Strategy::OneForOne,
        vec![env.spec("one", Restart::Permanent), slow, env.spec("three", Restart::Permanent)],
    ))
    .await
    .unwrap();
    t.shutdown();
    t.wait_for(Duration::from_secs(30)).await.unwrap();
    assert_eq!(env.take_log(), ["start one", "start slow", "start three", "stop three", "stop one"]);
    assert!(env.alive.running().is_empty(), "the overrunning child was killed");
}

mod property {
    use proptest::prelude::*;
    use streamforge::supervision::Strategy as Supervise;

    use super::{args, child, wait_until, ChildState, Env, Restart, Tree, WorkerMsg};

    #[derive(Debug, Clone, Copy)]
    enum Action {
        Fail,
        Panic,
        ExitNormally,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![Just(Action::Fail), Just(Action::Panic), Just(Action::ExitNormally)]
    }

    fn restart() -> impl Strategy<Value = Restart> {
        prop_oneof![Just(Restart::Permanent), Just(Restart::Transient), Just(Restart::Temporary)]
    }

    fn strategy() -> impl Strategy<Value = Supervise> {
        prop_oneof![Just(Supervise::OneForOne), Just(Supervise::OneForAll), Just(Supervise::RestForOne)]
    }

    async fn settle(t: &Tree) {
        wait_until("the tree to settle", || async {
            t.children().await.iter().all(|c| c.state != ChildState::Restarting)
        })
        .await;
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// For random sequences of failures and exits: a permanent child is never left dead while
        /// its supervisor lives, and no child ever runs twice at once.
        #[test]
        fn permanent_children_stay_up_and_none_runs_twice(
            kinds in proptest::collection::vec(restart(), 1..5),
            strat in strategy(),
            actions in proptest::collection::vec((0usize..5, action()), 1..15),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            rt.block_on(async {
                let env = Env::default();
                let ids: Vec<String> = (0..kinds.len()).map(|i| format!("c{i}")).collect();
                let children = ids.iter().zip(&kinds).map(|(id, k)| env.spec(id, *k)).collect();
                let t = Tree::start(args(strat, children)).await.unwrap();
                for (target, act) in actions {
                    let Some(victim) = t.children().await.into_iter().filter(|c| c.cell.is_some()).nth(target) else { continue };
                    let msg = match act {
                        Action::Fail => WorkerMsg::Fail,
                        Action::Panic => WorkerMsg::Panic,
                        Action::ExitNormally => WorkerMsg::ExitNormally,
                    };
                    victim.cell.unwrap().send_message(msg).unwrap();
                    let gone = victim.id.clone();
                    wait_until("the exit to be handled", || async {
                        let now = t.children().await;
                        now.iter().find(|c| c.id == gone).is_none_or(|c| c.restarts > victim.restarts || c.cell.is_none())
                    }).await;
                    settle(&t).await;
                    for (id, kind) in ids.iter().zip(&kinds) {
                        if *kind == Restart::Permanent {
                            let c = child(&t, id).await;
                            assert!(c.cell.is_some(), "permanent {id} is dead: {c:?}");
                        }
                    }
                    assert!(env.violations().is_empty(), "{:?}", env.violations());
                }
            });
        }
    }
}
