//! A record taken off the bus, as a connector reads it. Whatever decodes must come back the same
//! through our own writer and reader (the direct layout of `bus_json` and serde's must agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamforge::model::DataRecord;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(record) = DataRecord::from_bytes(bytes) {
        let written = record.to_bytes();
        let again = DataRecord::from_bytes(&written).expect("our own bytes decode");
        assert_eq!(again, record, "round trip through {}", String::from_utf8_lossy(&written));
    }
});
