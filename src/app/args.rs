//! What the commands' command lines share: logging, the config file with its common overrides,
//! times as the user writes them, and the result printed as a table or as JSON. Each command's
//! own arguments live with the command (`run::RunArgs`, `graph::GraphArgs`, …): their defaults
//! are written once, there.

use std::path::PathBuf;

use clap::Args;

use super::AppError;
use crate::config::{self, Config};
use crate::model::parse_date_or_time_ms;

/// How the process logs (global flags: before or after the command).
#[derive(Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// Log JSON lines (for a cluster's log shipper) instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Log filter, e.g. `info` or `streamforge=debug`.
    #[arg(long, global = true, env = "STREAMFORGE_LOG")]
    pub log_level: Option<String>,
}

impl LogArgs {
    /// Logging for a command that reads no config file.
    pub fn init(&self) {
        crate::log::init(self.log_json, self.log_level.as_deref().unwrap_or("info"));
    }
}

/// The config file and the flags that override its most used keys.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Store URL, e.g. sqlite://./data/streamforge.db (overrides store.url).
    #[arg(long)]
    pub store: Option<String>,
    /// Admin HTTP address, e.g. 127.0.0.1:9400 (overrides node.admin_addr).
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// Bus URL: memory:// or kafka://HOST:PORT (overrides bus.url).
    #[arg(long)]
    pub bus: Option<String>,
    /// Serve recorded data on loopback instead of calling Binance.
    #[arg(long)]
    pub offline: bool,
    /// Recorded data folder to replay; implies --offline (default with --offline: node.offline_data,
    /// the bundled data/sample).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl Common {
    /// The file and the environment, then the flags and the command's own overrides (`tweak`),
    /// validated once, with every problem listed: a flag can mend a bad file value. Starts
    /// logging as configured.
    pub fn config(&self, log: &LogArgs, tweak: impl FnOnce(&mut Config)) -> Result<Config, AppError> {
        let cfg = config::load_with(self.config.as_deref(), std::env::vars(), |cfg| {
            if let Some(s) = &self.store {
                cfg.store.url = s.clone();
            }
            if let Some(a) = &self.admin_addr {
                cfg.node.admin_addr = a.clone();
            }
            if let Some(b) = &self.bus {
                cfg.bus.url = b.clone();
            }
            if let Some(level) = &log.log_level {
                cfg.log.level = level.clone();
            }
            cfg.log.json |= log.log_json;
            tweak(cfg);
        })
        .map_err(|e| AppError::Usage(e.to_string()))?;
        crate::log::init(cfg.log.json, &cfg.log.level);
        Ok(cfg)
    }

    /// The recorded folder to replay when offline (by flag or by `node.offline`), else `None`.
    pub fn offline_dir(&self, cfg: &Config) -> Option<PathBuf> {
        self.offline_dir_or(cfg, PathBuf::from(&cfg.node.offline_data))
    }

    /// Like [`Common::offline_dir`], with another default folder than `node.offline_data`.
    pub fn offline_dir_or(&self, cfg: &Config, default: PathBuf) -> Option<PathBuf> {
        self.offline_asked(cfg.node.offline).then(|| self.data.clone().unwrap_or(default))
    }

    /// Whether recorded data is replayed: `--offline`, `--data DIR` (recorded data is only ever
    /// replayed; it used to be ignored without `--offline`, and the command went to Binance), or
    /// `node.offline`.
    pub fn offline_asked(&self, node_offline: bool) -> bool {
        self.offline || self.data.is_some() || node_offline
    }
}

/// A time flag's value (`YYYY-MM-DD[THH:MMZ]` or epoch ms), the flag named in the error.
pub fn parse_time(flag: &str, v: &Option<String>) -> Result<Option<i64>, AppError> {
    v.as_deref().map(parse_date_or_time_ms).transpose().map_err(|e| AppError::Usage(format!("--{flag}: {e}")))
}

/// A command's result as pretty JSON, or as its table.
pub fn render<T: serde::Serialize + std::fmt::Display>(value: &T, json: bool) -> String {
    if json {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        value.to_string()
    }
}

/// The arguments of a command this binary was built without: taken as they come, so that the
/// command can say which feature it needs instead of failing on its first flag.
#[cfg(not(feature = "trainer"))]
#[derive(Args, Debug, Clone)]
pub struct Unavailable {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}
