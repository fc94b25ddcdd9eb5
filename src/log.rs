//! Structured logs with `tracing`: human-readable on a terminal, JSON lines with `--log-json`
//! (what a cluster's log shipper wants). Logs go to stderr; stdout carries command output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Parses a `tracing` filter such as `info` or `streamforge=debug,actix_web=warn`.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level)
        .map_err(|e| format!("{level:?} is not a log filter like `info` or `streamforge=debug`: {e}"))
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(json: bool, level: &str) {
    let filter = filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).with_target(false).try_init()
    };
}
