//! `streamforge ctl`: the admin API from a terminal or a script (the seeds' `debug_producer.py`
//! and more). Human tables by default, the API's JSON with `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::AppError;
use crate::workflow::{Status, Workflow};

/// Where the API is and who calls it.
#[derive(Debug, Clone)]
pub struct Client {
    pub url: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

/// `streamforge ctl`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct CtlArgs {
    /// The node's admin API.
    #[arg(long, global = true, env = "STREAMFORGE_URL", default_value = "http://127.0.0.1:9400")]
    pub url: String,
    /// Bearer token for mutating requests.
    #[arg(long, global = true, env = "STREAMFORGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Workflows: start, list, show, stop.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Send a ping to a worker target and print the pongs with their round-trip times.
    Ping {
        /// e.g. dummy-service (or dummy), loader-producer, arango-connector, graph-builder.
        target: String,
        /// Only the workers of this workflow (default: all).
        #[arg(long)]
        queue_id: Option<String>,
        /// Exit non-zero when no pong comes.
        #[arg(long)]
        expect_pong: bool,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// queue-events as they arrive (for --timeout-ms, or until Ctrl-C with --follow).
    Events {
        #[arg(long)]
        queue_id: Option<String>,
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// The node's supervision tree.
    Tree,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum WorkflowsCommand {
    /// Start a workflow, e.g. --symbols BTCUSDT,ETHUSDT --types api_candles_1m --range 2024-08-01:2024-09-01.
    Start {
        #[arg(long, value_delimiter = ',', required = true)]
        symbols: Vec<String>,
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// START:END (end exclusive); offline nodes load each symbol's recorded span without it.
        #[arg(long)]
        range: Option<String>,
        /// Steps from load,store,verify,derive,graph,train (default: load,store, plus graph for candles).
        #[arg(long, value_delimiter = ',')]
        steps: Option<Vec<String>>,
        /// The derive step's intervals, e.g. 5m,1h (default: 5m,15m,1h,4h,1d, those the loaded
        /// interval divides).
        #[arg(long, value_delimiter = ',')]
        derive: Option<Vec<String>>,
    },
    /// List workflows, newest first.
    List {
        /// pending, running, finished, failed or stopped.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// One workflow's steps; --watch redraws them until it ends.
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
    },
    /// Stop a workflow and its workers.
    Stop { id: String },
}

/// How often `show --watch` redraws.
const WATCH_EVERY: Duration = Duration::from_millis(500);

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Result<Client, AppError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| AppError::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client { url: url.trim_end_matches('/').to_owned(), token, http })
    }

    /// Calls the API; a non-2xx answer is an error carrying the API's `reason`.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, AppError> {
        let url = format!("{}{path}", self.url);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| AppError::Usage(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| AppError::Usage(format!("{url}: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let reason =
            value.get("reason").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
        Err(AppError::Api { status: status.as_u16(), reason })
    }
}

impl Client {
    /// Prints each server-sent event of `path` as a line (the event's JSON with `json`) until
    /// the stream ends.
    async fn events(&self, path: &str, json: bool) -> Result<(), AppError> {
        let url = format!("{}{path}", self.url);
        let mut req = self.http.get(&url).timeout(Duration::from_secs(u32::MAX as u64));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.map_err(|e| AppError::Usage(format!("cannot reach {url}: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            return Err(AppError::Api { status, reason: text });
        }
        let mut pending = String::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| AppError::Usage(format!("{url}: {e}")))? {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find("\n\n") {
                let frame: String = pending.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                if json {
                    println!("{data}");
                } else if let Ok(ev) = serde_json::from_str::<crate::model::QueueEvent>(data) {
                    let status = serde_json::to_value(&ev.status).unwrap_or_default();
                    println!(
                        "{} {:<44} {:<40} {:<9} {}",
                        crate::model::format_ms((ev.timestamp * 1000.0) as i64),
                        ev.queue_id,
                        ev.producer,
                        status.as_str().unwrap_or("?"),
                        ev.message.unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, AppError> {
    serde_json::from_value(v).map_err(|e| AppError::Usage(format!("unexpected answer from the API: {e}")))
}

/// Runs one `ctl` command and returns what to print; `events --follow` ends on `shutdown`.
pub async fn run(opts: CtlArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<String, AppError> {
    let client = Client::new(&opts.url, opts.token.clone())?;
    let json = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let command = match opts.command {
        CtlCommand::Workflows { command } => command,
        CtlCommand::Ping { target, queue_id, expect_pong, timeout_ms } => {
            return ping(&client, opts.json, &target, queue_id, expect_pong, timeout_ms).await
        }
        CtlCommand::Events { queue_id, follow, timeout_ms } => {
            let path = match &queue_id {
                Some(q) => format!("/api/v1/events?queue_id={q}"),
                None => "/api/v1/events".to_owned(),
            };
            let listen = client.events(&path, opts.json);
            let window = async {
                if follow {
                    shutdown.await
                } else {
                    tokio::time::sleep(Duration::from_millis(timeout_ms)).await
                }
            };
            tokio::select! {
                outcome = listen => outcome?,
                () = window => {}
            }
            return Ok(String::new());
        }
        CtlCommand::Tree => {
            let v = client.call(reqwest::Method::GET, "/api/v1/supervision", None).await?;
            if opts.json {
                return Ok(json(&v));
            }
            let mut out = String::new();
            tree(&v, 0, &mut out);
            return Ok(out.trim_end().to_owned());
        }
    };
    match command {
        WorkflowsCommand::Start { symbols, types, range, steps, derive } => {
            let mut body = json!({ "symbols": symbols, "types": types });
            if let Some(r) = range {
                body["time_range"] = r.into();
            }
            if let Some(s) = steps {
                body["steps"] = s.into();
            }
            if let Some(d) = derive {
                body["derive"] = d.into();
            }
            let v = client.call(reqwest::Method::POST, "/api/v1/workflows", Some(body)).await?;
            if opts.json {
                return Ok(json(&v));
            }
            Ok(show(&parse(v)?))
        }
        WorkflowsCommand::List { status, limit, offset } => {
            let mut path = format!("/api/v1/workflows?limit={limit}&offset={offset}");
            if let Some(s) = status {
                write!(path, "&status={s}").ok();
            }
            let v = client.call(reqwest::Method::GET, &path, None).await?;
            if opts.json {
                return Ok(json(&v));
            }
            let total = v["total"].as_u64().unwrap_or_default();
            let workflows: Vec<Workflow> = parse(v["workflows"].clone())?;
            let mut out = format!("{:<48} {:<9} {:>10} {:<24} steps\n", "id", "status", "records", "created");
            for wf in &workflows {
                let steps: Vec<String> = wf.steps.iter().map(|s| format!("{}:{}", s.step, s.status)).collect();
                writeln!(
                    out,
                    "{:<48} {:<9} {:>10} {:<24} {}",
                    wf.id,
                    wf.status,
                    wf.records_written,
                    crate::model::format_ms(wf.created_at),
                    steps.join(" ")
                )
                .ok();
            }
            write!(out, "{} of {total} workflows", workflows.len()).ok();
            Ok(out)
        }
        WorkflowsCommand::Show { id, watch } => {
            let path = format!("/api/v1/workflows/{id}");
            let bars = watch.then(indicatif::MultiProgress::new);
            let mut drawn: Vec<indicatif::ProgressBar> = Vec::new();
            loop {
                let v = client.call(reqwest::Method::GET, &path, None).await?;
                let wf: Workflow = parse(v.clone())?;
                let Some(multi) = &bars else {
                    return Ok(if opts.json { json(&v) } else { show(&wf) });
                };
                redraw(multi, &mut drawn, &wf);
                if wf.status.is_terminal() {
                    for b in &drawn {
                        b.finish();
                    }
                    return Ok(if opts.json { json(&v) } else { show(&wf) });
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
        }
        WorkflowsCommand::Stop { id } => {
            let v = client.call(reqwest::Method::POST, &format!("/api/v1/workflows/{id}/stop"), None).await?;
            if opts.json {
                return Ok(json(&v));
            }
            Ok(show(&parse(v)?))
        }
    }
}

/// `ctl ping`: the pongs with their round-trip times.
async fn ping(
    client: &Client,
    as_json: bool,
    target: &str,
    queue_id: Option<String>,
    expect_pong: bool,
    timeout_ms: u64,
) -> Result<String, AppError> {
    let mut body = json!({ "target": target, "timeout_ms": timeout_ms });
    if let Some(q) = queue_id {
        body["queue_id"] = q.into();
    }
    let v = client.call(reqwest::Method::POST, "/api/v1/ping", Some(body)).await?;
    let pongs = v["pongs"].as_array().cloned().unwrap_or_default();
    if expect_pong && pongs.is_empty() {
        return Err(AppError::Api { status: 0, reason: format!("no pong from {target} within {timeout_ms} ms") });
    }
    if as_json {
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = String::new();
    for p in &pongs {
        writeln!(
            out,
            "pong from {} ({}): rtt {:.2} ms",
            p["producer"].as_str().unwrap_or("?"),
            p["queue_id"].as_str().unwrap_or("?"),
            p["rtt_ms"].as_f64().unwrap_or_default()
        )
        .ok();
    }
    if pongs.is_empty() {
        write!(out, "no pong from {target} within {timeout_ms} ms").ok();
    }
    Ok(out.trim_end().to_owned())
}

/// A workflow as a table of its steps.
pub fn show(wf: &Workflow) -> String {
    let mut out = format!("{}  {}  {} records\n", wf.id, wf.status, wf.records_written);
    if let Some(m) = &wf.message {
        writeln!(out, "  {m}").ok();
    }
    writeln!(out, "  {:<7} {:<9} {:>8} {:>10} {:>5} {:>6}", "step", "status", "attempts", "records", "gaps", "errors")
        .ok();
    for s in &wf.steps {
        writeln!(
            out,
            "  {:<7} {:<9} {:>8} {:>10} {:>5} {:>6}",
            s.step.as_str(),
            s.status.as_str(),
            s.attempts,
            s.records_written,
            s.gaps,
            s.errors
        )
        .ok();
    }
    out.trim_end().to_owned()
}

/// One bar per task: records written, finished or not.
fn redraw(multi: &indicatif::MultiProgress, bars: &mut Vec<indicatif::ProgressBar>, wf: &Workflow) {
    let style = indicatif::ProgressStyle::with_template("{prefix:<40} {spinner} {msg}").expect("a valid template");
    let tasks: Vec<_> = wf.steps.iter().flat_map(|s| s.tasks.iter().map(move |t| (s.step, t))).collect();
    while bars.len() < tasks.len() {
        bars.push(multi.add(indicatif::ProgressBar::new_spinner().with_style(style.clone())));
    }
    for (bar, (step, t)) in bars.iter().zip(tasks) {
        bar.set_prefix(format!("{step} {}", t.symbol.as_deref().unwrap_or(&t.producer)));
        bar.set_message(format!("{} {} records", t.status, t.records_written));
        if t.status == Status::Running {
            bar.tick();
        }
    }
}

fn tree(node: &Value, depth: usize, out: &mut String) {
    let state = node["state"].as_str().unwrap_or("?");
    let restarts = node["restarts"].as_u64().unwrap_or_default();
    writeln!(
        out,
        "{}{} [{}] {state}, {restarts} restarts",
        "  ".repeat(depth),
        node["id"].as_str().unwrap_or("?"),
        node["kind"].as_str().unwrap_or("?")
    )
    .ok();
    for child in node["children"].as_array().into_iter().flatten() {
        tree(child, depth + 1, out);
    }
}
