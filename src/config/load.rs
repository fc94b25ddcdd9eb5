//! Reading configuration: TOML file, then environment overrides, then validation.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::Config;

/// Everything wrong with a configuration, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        write!(f, "Fix the file or the STREAMFORGE__SECTION__KEY variables; see docs/configuration.md.")
    }
}

impl std::error::Error for ConfigErrors {}

/// The seeds' plain variables (and the two a Job of cluster mode adds) and where they land.
const PLAIN_VARS: [(&str, &str); 8] = [
    ("TARGET", "target"),
    ("JOB_EXTRA", "extra"),
    ("QUEUE_ID", "queue_id"),
    ("SYMBOL", "symbol"),
    ("TYPE", "type"),
    ("KAFKA_TOPIC", "kafka_topic"),
    ("COLLECTION_NAME", "collection_name"),
    ("TIME_RANGE", "time_range"),
];

/// A value from the environment: a TOML scalar when it parses as one, else a string.
fn env_value(raw: &str) -> Value {
    let parsed: Result<Table, _> = format!("v = {raw}").parse();
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(v @ (Value::Integer(_) | Value::Float(_) | Value::Boolean(_))) => v,
        _ => Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut Table, path: &[String], value: Value, errs: &mut Vec<String>, var: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = table;
    for p in parents {
        let entry = cur.entry(p.clone()).or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => cur = t,
            _ => {
                errs.push(format!("{var}: `{p}` is a value, not a section"));
                return;
            }
        }
    }
    cur.insert(last.clone(), value);
}

/// Builds the configuration from an optional TOML file and `env` (pass `std::env::vars()`).
pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
    load_with(file, env, |_| {})
}

/// [`load`], with `overrides` (the command line's) applied before the configuration is
/// validated: a flag can mend a bad value of the file, and every remaining problem is listed.
pub fn load_with(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: impl FnOnce(&mut Config),
) -> Result<Config, ConfigErrors> {
    let mut errs = Vec::new();
    let (source, text) = match file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).unwrap_or_else(|e| {
                errs.push(format!("{}: cannot read the config file: {e}", path.display()));
                String::new()
            }),
        ),
        None => (String::new(), String::new()),
    };
    from_text(&source, &text, errs, env, overrides)
}

/// [`load_with`] on the TOML `text` of a file named `source` in the messages.
pub fn load_text(
    source: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: impl FnOnce(&mut Config),
) -> Result<Config, ConfigErrors> {
    from_text(source, text, Vec::new(), env, overrides)
}

fn from_text(
    source: &str,
    text: &str,
    mut errs: Vec<String>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: impl FnOnce(&mut Config),
) -> Result<Config, ConfigErrors> {
    let mut table = text.parse::<Table>().unwrap_or_else(|e| {
        errs.push(format!("{source}: not valid TOML: {}", e.message()));
        Table::new()
    });
    let env: HashMap<String, String> = env.into_iter().collect();
    let mut keys: Vec<&String> = env.keys().collect();
    keys.sort();
    for key in keys {
        let Some(rest) = key.strip_prefix("STREAMFORGE__") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            errs.push(format!("{key}: expected STREAMFORGE__SECTION__KEY"));
            continue;
        }
        set_path(&mut table, &path, env_value(&env[key]), &mut errs, key);
    }
    for (var, field) in PLAIN_VARS {
        if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
            let path = ["job".to_owned(), field.to_owned()];
            set_path(&mut table, &path, Value::String(v.clone()), &mut errs, var);
        }
    }
    // Check section by section so that one bad section does not hide the others; then read the
    // good ones at once, so that every section (present or future) is taken as written, and check
    // what they say.
    let mut names: Vec<String> = table.keys().cloned().collect();
    names.sort();
    for name in names {
        let mut one = Table::new();
        one.insert(name.clone(), table[&name].clone());
        if let Err(e) = Value::Table(one).try_into::<Config>() {
            errs.push(format!("[{name}]: {}", e.message().trim()));
            table.remove(&name);
        }
    }
    let mut config: Config =
        Value::Table(table).try_into().map_err(|e| ConfigErrors(vec![e.message().trim().to_owned()]))?;
    overrides(&mut config);
    errs.extend(config.validate());
    if errs.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_loaded_as_a_file_would_be_and_its_problems_name_it() {
        let config = load_text("inline.toml", "[node]\nid = \"n7\"\n", Vec::new(), |_| {}).unwrap();
        assert_eq!(config.node.id, "n7");
        let errs = load_text("inline.toml", "[node\n", Vec::new(), |_| {}).unwrap_err().0;
        assert!(errs[0].starts_with("inline.toml: not valid TOML"), "{errs:?}");
        let errs = load_text("inline.toml", "[bus]\nmemory_bytes = 5\n", Vec::new(), |_| {}).unwrap_err().0;
        assert!(errs.iter().any(|e| e.contains("bus.memory_bytes")), "{errs:?}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_then_file_then_env_then_plain_vars() {
        let f = file("[connector]\nbatch_size = 100\n[store]\nurl = \"sqlite://a.db\"\n");
        let c = load(
            Some(f.path()),
            env(&[
                ("STREAMFORGE__STORE__URL", "sqlite://b.db"),
                ("STREAMFORGE__CONNECTOR__FLUSH_INTERVAL_MS", "20"),
                ("SYMBOL", "ETHUSDT"),
                ("TYPE", "api_candles_1m"),
                ("TIME_RANGE", "2021-04-24:2021-04-25"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.connector.batch_size, 100);
        assert_eq!(c.connector.flush_interval_ms, 20);
        assert_eq!(c.store.url, "sqlite://b.db");
        assert_eq!(c.job.symbol.as_deref(), Some("ETHUSDT"));
        assert_eq!(c.loader.page_limit, 1000, "untouched defaults stay");
    }

    #[test]
    fn bad_cluster_settings_are_all_reported() {
        let f = file(
            "[queue_manager]\nworkers = \"kubernetes\"\n[kubernetes]\nnamespace = \"Not_A_Label\"\nimage = \"\"\n\
             image_pull_policy = \"Sometimes\"\nbackoff_limit = -1\n[kubernetes.worker_resources]\ncpu_limit = \"lots\"\n",
        );
        let err = load(Some(f.path()), env(&[("TARGET", "painter"), ("JOB_EXTRA", "[1]")])).unwrap_err();
        let all = err.0.join("\n");
        let mut needles = vec![
            "kubernetes.namespace",
            "kubernetes.image:",
            "image_pull_policy",
            "backoff_limit",
            "cpu_limit",
            "job.target",
            "job.extra",
        ];
        if !cfg!(feature = "kubernetes") {
            needles.push("--features kubernetes");
        }
        for needle in needles {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn every_problem_is_reported_together() {
        let f = file("[connector]\nbatch_size = \"lots\"\n[nope]\nx = 1\n[loader]\npage_limit = 5000\n");
        let err =
            load(Some(f.path()), env(&[("STREAMFORGE__NODE__ADMIN_ADDR", "localhost"), ("TYPE", "ws_everything")]))
                .unwrap_err();
        let all = err.0.join("\n");
        for needle in ["[connector]", "[nope]", "page_limit", "admin_addr", "job.type", "job.symbol", "job.time_range"]
        {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/streamforge.toml")), env(&[])).unwrap_err();
        assert!(err.0[0].contains("cannot read"));
    }
}
