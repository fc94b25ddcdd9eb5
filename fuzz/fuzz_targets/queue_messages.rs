//! `queue-control` commands and `queue-events` reports as workers and queue-manager read them.
//! What decodes must decode the same after being written back (unknown fields kept unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamforge::model::{QueueControl, QueueEvent};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(command) = serde_json::from_slice::<QueueControl>(bytes) {
        let written = serde_json::to_vec(&command).unwrap();
        assert_eq!(serde_json::from_slice::<QueueControl>(&written).unwrap(), command);
    }
    if let Ok(event) = serde_json::from_slice::<QueueEvent>(bytes) {
        let written = serde_json::to_vec(&event).unwrap();
        assert_eq!(serde_json::from_slice::<QueueEvent>(&written).unwrap(), event);
    }
});
