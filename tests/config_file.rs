//! The example configuration shipped in `config/` is valid and equals the defaults it documents.

use std::path::Path;

use streamforge::config::{load, Config};

#[test]
fn example_config_is_valid_and_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/streamforge.example.toml");
    let loaded = load(Some(&path), Vec::new()).unwrap();
    assert_eq!(loaded, Config::default());
}
