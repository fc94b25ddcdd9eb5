//! A configuration file's text through the real loader: a configuration or the list of its
//! problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(config) = streamforge::config::load_text("fuzz.toml", text, Vec::new(), |_| {}) {
        assert!(config.validate().is_empty(), "a loaded configuration is valid");
    }
});
