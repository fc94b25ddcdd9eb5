//! The dummy actor under a node's supervision tree: ping → pong on queue-events; `fail_after`
//! sends an `error` event, fails, and is restarted; past the restart intensity the node fails.

mod common;

use std::time::Duration;

use streamforge::app::node::Node;
use streamforge::bus::{topics, Consumer, OutRecord};
use streamforge::config::{Config, DummyConfig};
use streamforge::model::{Command, EventStatus, QueueControl, QueueEvent};

fn config(dummy: DummyConfig) -> Config {
    let mut c = common::test_config("sqlite::memory:");
    c.node.admin_addr = "127.0.0.1:0".into();
    c.dummy = dummy;
    c
}

/// Reads queue-events until `done` holds for everything seen so far; fails after 10 s.
async fn events_until(
    events: &mut Box<dyn Consumer>,
    what: &str,
    done: impl Fn(&[QueueEvent]) -> bool,
) -> Vec<QueueEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen: Vec<QueueEvent> = Vec::new();
    while !done(&seen) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; saw {seen:#?}");
        let msgs = events.poll(100, Duration::from_millis(50)).await.unwrap();
        seen.extend(msgs.iter().map(|m| serde_json::from_slice::<QueueEvent>(&m.payload).unwrap()));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_answers_ping_with_pong() {
    let dummy = DummyConfig { enabled: true, queue_id: "q-ping".into(), tick_ms: 20, ..DummyConfig::default() };
    let node = Node::start(config(dummy), None).await.unwrap();
    let mut events = node.ctx.bus.subscribe("test", topics::QUEUE_EVENTS).await.unwrap();

    let mut ping = QueueControl::new(Command::Ping, "q-ping");
    ping.target = Some("dummy".into());
    let other = QueueControl::new(Command::Ping, "someone-else");
    for cmd in [other, ping] {
        let record = OutRecord::keyed(cmd.queue_id.as_bytes(), serde_json::to_vec(&cmd).unwrap());
        node.ctx.bus.publish(topics::QUEUE_CONTROL, vec![record]).await.unwrap();
    }
    let seen = events_until(&mut events, "a pong", |s| s.iter().any(|e| e.status == EventStatus::Pong)).await;
    let pong = seen.iter().find(|e| e.status == EventStatus::Pong).unwrap();
    assert_eq!(pong.queue_id, "q-ping");
    assert_eq!(pong.producer, "dummy__q-ping");
    assert!(seen.iter().any(|e| e.status == EventStatus::Started));
    assert_eq!(
        seen.iter().filter(|e| e.status == EventStatus::Pong).count(),
        1,
        "only the ping for q-ping is answered"
    );
    node.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_after_sends_error_and_is_restarted() {
    let dummy =
        DummyConfig { enabled: true, queue_id: "q-fail".into(), simulate_loading: true, fail_after: 3, tick_ms: 10 };
    let node = Node::start(config(dummy), None).await.unwrap();
    let mut events = node.ctx.bus.subscribe("test", topics::QUEUE_EVENTS).await.unwrap();
    let count = |s: &[QueueEvent], status: EventStatus| s.iter().filter(|e| e.status == status).count();
    let seen = events_until(&mut events, "an error, a restart and a second error", |s| {
        count(s, EventStatus::Error) >= 2
            && count(s, EventStatus::Started) >= 2
            && count(s, EventStatus::Restarting) >= 1
    })
    .await;
    let first_error = seen.iter().position(|e| e.status == EventStatus::Error).unwrap();
    let loading_before = seen[..first_error].iter().filter(|e| e.status == EventStatus::Loading).count();
    assert_eq!(loading_before, 3, "three simulated loading ticks, then the failure");
    assert!(seen[first_error].message.as_deref().unwrap().contains("after 3 ticks"));
    let restarting =
        seen.iter().find(|e| e.status == EventStatus::Restarting).expect("the supervisor reports the restart");
    assert_eq!(restarting.producer, "dummy:q-fail");
    assert!(restarting.extra["error"].as_str().unwrap().contains("Simulated failure after 3 ticks"));
    let restarts = node.tree.find("dummy:q-fail").unwrap().restarts;
    assert!(restarts >= 1, "restarted by its supervisor");
    let metrics = reqwest::get(format!("http://{}/metrics", node.admin_addr())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("streamforge_actor_restarts_total{actor=\"dummy\"}"), "{metrics}");
    node.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fails_when_restart_intensity_is_exceeded() {
    let dummy =
        DummyConfig { enabled: true, queue_id: "q-storm".into(), fail_after: 1, tick_ms: 5, ..DummyConfig::default() };
    let mut cfg = config(dummy);
    cfg.supervision.max_restarts = 3;
    cfg.supervision.backoff_min_ms = 0;
    let node = Node::start(cfg, None).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), node.run_until(std::future::pending())).await.unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("giving up"), "{err}");
}
