//! A stand-in for the few Kubernetes API calls queue-manager makes in cluster mode, and for the
//! kubelet behind them.
//!
//! No Kubernetes API server can run here (no container runtime, no etcd, nothing to pull images
//! from), so this serves, on loopback, exactly the calls of `src/workers/kubernetes.rs` — create a
//! Job, list Jobs by label selector, watch them, delete one, all in one namespace — with the bodies the API server sends: objects with `uid`, `resourceVersion` and
//! `creationTimestamp`, a `JobList`, `Status` objects for errors (409 `AlreadyExists`, 404), and watch
//! events as JSON lines on a response that stays open. The client is the real `kube` client over
//! real HTTP.
//!
//! It also plays the kubelet: the container of a created Job runs as a real `streamforge` process
//! with the Job's `args` and `env` (`fieldRef: metadata.name` resolved to the pod's name; the
//! ConfigMap's mount path mapped to a folder holding its `streamforge.toml`; the writable scratch
//! folder to a folder of the pod's own; the pod's admin server on a free loopback port, as its own
//! network namespace would give it). Its exit becomes the Job's `Complete` or `Failed` condition,
//! announced on the watch; deleting a Job stops its process with SIGTERM, as the kubelet does.
//! Pods are not retried (`backoffLimit` is taken as reached at the first failure).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Decides that a created Job's pod never runs: `Some((reason, message))` fails it at once.
pub type FailRule = Box<dyn Fn(&Value) -> Option<(String, String)> + Send + Sync>;

#[derive(Default)]
struct State {
    jobs: BTreeMap<String, Value>,
    version: u64,
    /// Every watch event sent, by resource version, for watches that start from an older one.
    log: Vec<(u64, String)>,
    watchers: Vec<mpsc::UnboundedSender<String>>,
    /// Every Job body as queue-manager sent it, in order.
    created: Vec<Value>,
    /// The names of the Jobs deleted.
    deleted: Vec<String>,
    pids: HashMap<String, u32>,
}

pub struct KubeApi {
    pub url: String,
    state: Arc<Mutex<State>>,
}

struct Kubelet {
    binary: PathBuf,
    /// What the ConfigMap's mount path stands for here.
    config_dir: PathBuf,
    pods: PathBuf,
    fail: FailRule,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl KubeApi {
    /// Serves on a free loopback port; Jobs' pods run `binary` with the ConfigMap mounted from
    /// `config_dir`, their files under `pods`.
    pub async fn start(binary: &Path, config_dir: &Path, pods: &Path, fail: FailRule) -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let kubelet = Arc::new(Kubelet {
            binary: binary.to_owned(),
            config_dir: config_dir.to_owned(),
            pods: pods.to_owned(),
            fail,
        });
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, st.clone(), kubelet.clone()));
            }
        });
        KubeApi { url, state }
    }

    /// Every Job created, as sent.
    pub fn created(&self) -> Vec<Value> {
        lock(&self.state).created.clone()
    }

    /// The Jobs that exist now, by name.
    pub fn jobs(&self) -> BTreeMap<String, Value> {
        lock(&self.state).jobs.clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        lock(&self.state).deleted.clone()
    }

    /// The process ids of the pods that run now.
    pub fn running_pids(&self) -> Vec<u32> {
        lock(&self.state).pids.values().copied().collect()
    }
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 as a calendar date.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (code, body)
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn matches(job: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        job["metadata"]["labels"][k].as_str() == Some(v)
    })
}

/// Records a change of `job` and tells the watchers.
fn announce(state: &mut State, kind: &str, job: &Value) {
    let line = json!({"type": kind, "object": job}).to_string() + "\n";
    let version = state.version;
    state.log.push((version, line.clone()));
    state.watchers.retain(|w| w.send(line.clone()).is_ok());
}

fn bump(state: &mut State, job: &mut Value) {
    state.version += 1;
    job["metadata"]["resourceVersion"] = state.version.to_string().into();
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>, kubelet: Arc<Kubelet>) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: HashMap<String, String> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
    let selector = params.get("labelSelector").cloned().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (code, answer) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs"])
            if params.get("watch").is_some_and(|w| w == "true") =>
        {
            let from: u64 = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            let (tx, mut rx) = mpsc::unbounded_channel();
            {
                let mut st = lock(&state);
                for (_, line) in st.log.iter().filter(|(v, _)| *v > from) {
                    let _ = tx.send(line.clone());
                }
                st.watchers.push(tx);
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while let Some(line) = rx.recv().await {
                let object: Value = serde_json::from_str(&line).unwrap_or_default();
                if !matches(&object["object"], &selector) {
                    continue;
                }
                if socket.write_all(line.as_bytes()).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            return;
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs"]) => {
            let st = lock(&state);
            let items: Vec<&Value> = st.jobs.values().filter(|j| matches(j, &selector)).collect();
            (
                200,
                json!({"kind": "JobList", "apiVersion": "batch/v1",
                         "metadata": {"resourceVersion": st.version.to_string()}, "items": items}),
            )
        }
        ("POST", ["apis", "batch", "v1", "namespaces", ns, "jobs"]) => match serde_json::from_slice::<Value>(body) {
            Err(e) => status(400, "BadRequest", &e.to_string()),
            Ok(sent) => {
                let name = sent["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let mut st = lock(&state);
                st.created.push(sent.clone());
                if st.jobs.contains_key(&name) {
                    status(409, "AlreadyExists", &format!("jobs.batch \"{name}\" already exists"))
                } else {
                    let mut job = sent;
                    job["apiVersion"] = "batch/v1".into();
                    job["kind"] = "Job".into();
                    job["metadata"]["namespace"] = (*ns).into();
                    job["metadata"]["uid"] = format!("00000000-0000-4000-8000-{:012x}", st.version + 1).into();
                    job["metadata"]["creationTimestamp"] = now_rfc3339().into();
                    job["status"] = json!({});
                    bump(&mut st, &mut job);
                    st.jobs.insert(name.clone(), job.clone());
                    announce(&mut st, "ADDED", &job);
                    drop(st);
                    run_pod(&state, &kubelet, &job);
                    (201, job)
                }
            }
        },
        ("DELETE", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let mut st = lock(&state);
            match st.jobs.remove(*name) {
                None => status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
                Some(mut job) => {
                    st.deleted.push((*name).to_owned());
                    if let Some(pid) = st.pids.remove(*name) {
                        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                    }
                    bump(&mut st, &mut job);
                    announce(&mut st, "DELETED", &job);
                    (200, job)
                }
            }
        }
        _ => status(404, "NotFound", &format!("{method} {path} is not served by the stand-in")),
    };
    let text = answer.to_string();
    let reply = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Marks the Job ended (`Complete` or `Failed`) and tells the watchers.
fn finish(state: &Mutex<State>, name: &str, failed: Option<(String, String)>) {
    let mut st = lock(state);
    st.pids.remove(name);
    let Some(mut job) = st.jobs.get(name).cloned() else { return };
    let now = now_rfc3339();
    job["status"] = match failed {
        None => json!({"succeeded": 1, "completionTime": now,
                       "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}),
        Some((reason, message)) => json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                       "reason": reason, "message": message, "lastTransitionTime": now}]}),
    };
    bump(&mut st, &mut job);
    st.jobs.insert(name.to_owned(), job.clone());
    announce(&mut st, "MODIFIED", &job);
}

/// Runs the Job's container as a process (or fails it at once, as `fail` says).
fn run_pod(state: &Arc<Mutex<State>>, kubelet: &Kubelet, job: &Value) {
    let name = job["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if let Some(failed) = (kubelet.fail)(job) {
        finish(state, &name, Some(failed));
        return;
    }
    let pod = format!("{name}-pod");
    let dir = kubelet.pods.join(&pod);
    std::fs::create_dir_all(&dir).unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let config_mount = container["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "config"))
        .and_then(|m| m["mountPath"].as_str())
        .map(str::to_owned);
    let args: Vec<String> = container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|a| match &config_mount {
            Some(m) if a.starts_with(m.as_str()) => {
                format!("{}{}", kubelet.config_dir.display(), &a[m.len()..])
            }
            _ => a,
        })
        .collect();
    let mut cmd = tokio::process::Command::new(&kubelet.binary);
    cmd.args(&args).current_dir(&dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for var in container["env"].as_array().into_iter().flatten() {
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.clone(),
            Some(other) => panic!("the stand-in resolves metadata.name only, not {other}"),
            None => var["value"].as_str().unwrap_or_default().to_owned(),
        };
        cmd.env(var["name"].as_str().unwrap(), value);
    }
    // The pod's own network: its admin server on a port of its own.
    cmd.env("STREAMFORGE__NODE__ADMIN_ADDR", "127.0.0.1:0");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    cmd.stdout(Stdio::null()).stderr(log).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    lock(state).pids.insert(name.clone(), child.id().unwrap_or_default());
    let state = state.clone();
    tokio::spawn(async move {
        let exit = child.wait().await.unwrap();
        let failed = (!exit.success()).then(|| {
            let message = format!("Job has reached the specified backoff limit (exit status {exit})");
            ("BackoffLimitExceeded".to_owned(), message)
        });
        finish(&state, &name, failed);
    });
}
