//! The example configuration shipped in `config/` is valid and equals the defaults it documents.

use std::path::Path;

use streamforge::config::{load, Config};

#[test]
fn example_config_is_valid_and_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/streamforge.example.toml");
    let loaded = load(Some(&path), Vec::new()).unwrap();
    assert_eq!(loaded, Config::default());
}

fn load_text(text: &str, env: Vec<(String, String)>) -> Result<Config, streamforge::config::ConfigErrors> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    load(Some(file.path()), env)
}

#[test]
fn broker_flavor_and_extra_librdkafka_properties_come_from_the_file_and_the_environment() {
    use streamforge::config::BrokerFlavor;
    let text = "[bus]\nurl = \"kafka://127.0.0.1:9092\"\n[bus.kafka]\nflavor = \"tansu\"\n\
                prefetch_kbytes = 2048\n[bus.kafka.librdkafka]\n\"fetch.wait.max.ms\" = \"100\"\ndebug = \"cgrp\"\n";
    let c = load_text(text, Vec::new()).unwrap();
    assert_eq!(c.bus.kafka.flavor, BrokerFlavor::Tansu);
    assert_eq!(c.bus.kafka.prefetch_kbytes, 2048);
    assert_eq!(c.bus.kafka.librdkafka.get("fetch.wait.max.ms").map(String::as_str), Some("100"));
    assert_eq!(c.bus.kafka.librdkafka.get("debug").map(String::as_str), Some("cgrp"));
    assert_eq!(Config::default().bus.kafka.flavor, BrokerFlavor::Kafka, "Apache Kafka unless told otherwise");
    let env = vec![("STREAMFORGE__BUS__KAFKA__FLAVOR".to_owned(), "kafka".to_owned())];
    assert_eq!(load_text(text, env).unwrap().bus.kafka.flavor, BrokerFlavor::Kafka, "the environment wins");
}

#[test]
fn properties_streamforge_owns_are_refused_with_every_other_problem() {
    let text = "[bus.kafka]\ncompression = \"brotli\"\nprefetch_kbytes = 64\n[bus.kafka.librdkafka]\n\
                \"enable.auto.commit\" = \"true\"\nacks = \"1\"\n\"fetch.max.bytes\" = \"1048576\"\n";
    let errs = load_text(text, Vec::new()).unwrap_err().0;
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("bus.kafka.compression")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("bus.kafka.prefetch_kbytes: 64 is below 1024")), "{errs:?}");
    for key in ["enable.auto.commit", "acks", "fetch.max.bytes"] {
        assert!(errs.iter().any(|e| e.contains(key) && e.contains("set by StreamForge")), "{key}: {errs:?}");
    }
    let bad_flavor = load_text("[bus.kafka]\nflavor = \"redpanda\"\n", Vec::new()).unwrap_err().0;
    assert!(bad_flavor.iter().any(|e| e.contains("redpanda") && e.contains("tansu")), "{bad_flavor:?}");
}

/// Every section of the file is read, `[[streams]]` and `[queue_manager]` included (sections
/// used to be copied one by one from a hand-kept list, which had left `streams` out).
#[test]
fn every_section_of_the_file_is_taken_including_streams() {
    let text = "[[streams]]\nkind = \"trade\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"trades-live\"\n\
                [queue_manager]\nenabled = false\n[dummy]\nenabled = true\n";
    let c = load_text(text, Vec::new()).unwrap();
    assert_eq!(c.streams.len(), 1);
    assert_eq!((c.streams[0].kind.as_str(), c.streams[0].topic.as_str()), ("trade", "trades-live"));
    assert_eq!(c.streams[0].symbols, ["ETHUSDT"]);
    assert!(!c.queue_manager.enabled);
    assert!(c.dummy.enabled);
    let bad = load_text("[[streams]]\nkind = 3\n[dummy]\nenabled = \"yes\"\n", Vec::new()).unwrap_err().to_string();
    assert!(bad.contains("[streams]") && bad.contains("[dummy]"), "both bad sections are named: {bad}");
}

/// `[monitor]`, `node.replay_speed` and a depth stream's `snapshot_ms` come from the file and the
/// environment; bad values are all reported at once.
#[test]
fn the_monitor_section_and_stream_snapshots_are_read_and_checked() {
    let text = "[node]\nreplay_speed = 10.0\n[monitor]\nsymbol = \"BTCUSDT\"\ntape = 25\n\
                [[streams]]\nkind = \"depth\"\nsymbols = [\"BTCUSDT\"]\ntopic = \"depth\"\nsnapshot_ms = 250\n";
    let env = vec![("STREAMFORGE__MONITOR__PUSH_MS".to_owned(), "200".to_owned())];
    let c = load_text(text, env).unwrap();
    assert_eq!((c.monitor.symbol.as_str(), c.monitor.tape, c.monitor.push_ms), ("BTCUSDT", 25, 200));
    assert_eq!(c.node.replay_speed, 10.0);
    assert_eq!(c.streams[0].snapshot_every(), std::time::Duration::from_millis(250));
    let bad =
        "[node]\nreplay_speed = -1.0\n[monitor]\npush_ms = 10\nlevels = 50\nclient_buffer = 0\nsymbol = \"eth\"\n\
               [[streams]]\nkind = \"trade\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"t\"\nsnapshot_ms = 500\n\
               [[streams]]\nkind = \"depth\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"d\"\nsnapshot_ms = 5\n";
    let errors = load_text(bad, Vec::new()).unwrap_err().to_string();
    for key in [
        "node.replay_speed",
        "monitor.push_ms",
        "monitor.levels",
        "monitor.client_buffer",
        "monitor.symbol",
        "streams[0].snapshot_ms",
        "streams[1].snapshot_ms",
    ] {
        assert!(errors.contains(key), "{key} is reported: {errors}");
    }
}

/// A depth stream's snapshot depths come from the file, per symbol where given; depths Binance does
/// not serve, symbols the entry lacks and limits on a stream without books are all reported.
#[test]
fn depth_snapshot_limits_are_read_per_symbol_and_checked() {
    let text = "[[streams]]\nkind = \"depth\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\", \"SOLUSDT\"]\ntopic = \"depth\"\n\
                snapshot_limit = 100\nsnapshot_limits = { BTCUSDT = 5000 }\n\
                [[streams]]\nkind = \"depth\"\nsymbols = [\"XRPUSDT\"]\ntopic = \"depth2\"\n";
    let c = load_text(text, Vec::new()).unwrap();
    let limits: Vec<u32> = c.streams[0].symbols.iter().map(|s| c.streams[0].snapshot_limit_of(s)).collect();
    assert_eq!(limits, [5000, 100, 100]);
    assert_eq!(c.streams[1].snapshot_limit_of("XRPUSDT"), 1000, "the default: limit 1000, weight 50");
    let bad = "[[streams]]\nkind = \"depth\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"d\"\n\
               snapshot_limit = 0\nsnapshot_limits = { ETHUSDT = 6000, BTCUSDT = 100 }\n\
               [[streams]]\nkind = \"trade\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"t\"\nsnapshot_limit = 100\n";
    let errors = load_text(bad, Vec::new()).unwrap_err().to_string();
    for problem in [
        "streams[0].snapshot_limit: 0 is not a depth",
        "streams[0].snapshot_limits.ETHUSDT: 6000 is not a depth",
        "streams[0].snapshot_limits: \"BTCUSDT\" is not one of the entry's symbols",
        "streams[1].snapshot_limit: only a depth stream",
    ] {
        assert!(errors.contains(problem), "{problem:?} is reported: {errors}");
    }
}

/// `binance.archive_url`: Binance's archive by default while `rest_url` is Binance's own, none with
/// another REST URL unless given, `""` for none; a URL that is not http(s) is refused with the
/// other problems.
#[test]
fn the_archive_url_defaults_with_binance_and_can_be_set_or_turned_off() {
    let c = load_text("", Vec::new()).unwrap();
    assert_eq!(c.binance.archive(), Some("https://data.binance.vision/data"));
    let replay = load_text("[binance]\nrest_url = \"http://127.0.0.1:9401\"\n", Vec::new()).unwrap();
    assert_eq!(replay.binance.archive(), None, "a replay server or a proxy names its archive");
    let set = "[binance]\nrest_url = \"http://127.0.0.1:9401\"\narchive_url = \"http://127.0.0.1:9401/data\"\n";
    assert_eq!(load_text(set, Vec::new()).unwrap().binance.archive(), Some("http://127.0.0.1:9401/data"));
    let off = vec![("STREAMFORGE__BINANCE__ARCHIVE_URL".to_owned(), String::new())];
    assert_eq!(load_text("", off).unwrap().binance.archive(), None, "\"\" from the environment: REST only");
    let errs =
        load_text("[binance]\narchive_url = \"ftp://mirror/data\"\nweight_share = 2.0\n", Vec::new()).unwrap_err().0;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("binance.archive_url") && e.contains("ftp://mirror/data")), "{errs:?}");
}
