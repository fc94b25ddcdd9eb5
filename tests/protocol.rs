//! The seeds' protocol examples parse into our types and serialize back with the same fields and values.

use serde_json::Value;
use streamforge::model::{Command, EventStatus, QueueControl, QueueEvent};

const CONTROL: &str = include_str!("fixtures/seed/queue-control.json");
const EVENT: &str = include_str!("fixtures/seed/queue-events.json");

#[test]
fn queue_control_seed_example_round_trips() {
    let cmd: QueueControl = serde_json::from_str(CONTROL).unwrap();
    assert_eq!(cmd.command, Command::Start);
    assert_eq!(cmd.kind.as_deref(), Some("api_candles_5m"));
    assert_eq!(cmd.timestamp, 1722500000.123);
    assert!(cmd.extra.is_empty(), "every seed field is a known field");
    let back: Value = serde_json::to_value(&cmd).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(CONTROL).unwrap());
}

#[test]
fn queue_events_seed_example_round_trips() {
    let ev: QueueEvent = serde_json::from_str(EVENT).unwrap();
    assert_eq!(ev.status, EventStatus::Loading);
    assert_eq!(ev.records_written, Some(15000));
    assert!(!ev.finished);
    let back: Value = serde_json::to_value(&ev).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(EVENT).unwrap());
}

#[test]
fn unknown_fields_and_values_are_kept() {
    let mut v: Value = serde_json::from_str(CONTROL).unwrap();
    v["command"] = "rebalance".into();
    v["priority"] = 7.into();
    let cmd: QueueControl = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(cmd.command, Command::Other("rebalance".into()));
    assert_eq!(serde_json::to_value(&cmd).unwrap(), v);

    let mut e: Value = serde_json::from_str(EVENT).unwrap();
    e["status"] = "paused".into();
    e["node"] = "streamforge-1".into();
    let ev: QueueEvent = serde_json::from_value(e.clone()).unwrap();
    assert_eq!(ev.status, EventStatus::Other("paused".into()));
    assert_eq!(serde_json::to_value(&ev).unwrap(), e);
}

#[test]
fn a_command_missing_required_fields_is_rejected() {
    assert!(serde_json::from_str::<QueueControl>(r#"{"command":"ping"}"#).is_err());
    assert!(serde_json::from_str::<QueueEvent>(r#"{"queue_id":"q","status":"loading"}"#).is_err());
}
