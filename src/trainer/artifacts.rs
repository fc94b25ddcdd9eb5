//! What a training run leaves behind, in object storage (`object_store`): `file://DIR` (the
//! default, `file://./models`) or `s3://BUCKET/PREFIX` (AWS, or MinIO and other S3-compatible
//! servers: endpoint, credentials and path-style from the `AWS_*` variables, e.g.
//! `AWS_ENDPOINT=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false`).
//! A model lives under `<root>/<name>/<version>/`: `model.mpk` (burn's named MessagePack record),
//! `config.json` (everything needed to rebuild the network and its inputs), `metrics.json` and
//! `evaluation.txt`.

use std::sync::Arc;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};

use super::fit::{FitConfig, Scaler};
use super::model::{Forecaster, TemporalGcn};
use crate::config::ArtifactsConfig;

/// The artifact layout this build writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("invalid artifact location {0:?}: use file:///ABS/DIR, file://./REL/DIR or s3://BUCKET/PREFIX ({1})")]
    Location(String, String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} is not a model this build can use: {reason}")]
    Incompatible { path: String, reason: String },
}

/// How to rebuild a trained network and prepare its inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub format: u32,
    pub name: String,
    pub version: i64,
    pub symbols: Vec<String>,
    pub feature_names: Vec<String>,
    pub interval: String,
    pub lookback: usize,
    pub hidden: usize,
    /// Graph builder: window (steps), min periods, threshold, top-k.
    pub graph_window: usize,
    pub graph_min_periods: usize,
    pub graph_threshold: f64,
    pub graph_top_k: usize,
    pub scaler: Scaler,
    pub fit: FitConfig,
    /// Times of the first and last training sample.
    pub trained_from: i64,
    pub trained_to: i64,
}

/// A network's weights as `model.mpk` holds them (on whatever device it was trained).
pub fn weights<B: Backend>(model: &TemporalGcn<B>) -> Result<Vec<u8>, ArtifactError> {
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    Recorder::<B>::record(&recorder, model.clone().into_record(), ()).map_err(|e| io("model.mpk", e))
}

/// The S3 settings of a mounted secret: each file of `dir` whose name is one of them, as
/// `aws_<name>` with its content (a trailing newline dropped). Without an access key it fails.
/// `allow_http` and `virtual_hosted_style_request` are there for S3-protocol servers such as MinIO.
fn credential_files(dir: &str) -> Result<Vec<(String, String)>, ArtifactError> {
    let mut options = Vec::new();
    for name in [
        "access_key_id",
        "secret_access_key",
        "session_token",
        "endpoint",
        "region",
        "allow_http",
        "virtual_hosted_style_request",
    ] {
        let path = std::path::Path::new(dir).join(name);
        match std::fs::read_to_string(&path) {
            Ok(value) => options.push((format!("aws_{name}"), value.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path.display().to_string(), e)),
        }
    }
    if !options.iter().any(|(k, _)| k == "aws_access_key_id") {
        return Err(io(&format!("{dir}/access_key_id"), "artifacts.s3_credentials_dir has no access_key_id"));
    }
    Ok(options)
}

/// An opened artifact root.
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    root: StorePath,
    url: String,
}

fn io(path: &str, e: impl ToString) -> ArtifactError {
    ArtifactError::Io { path: path.to_owned(), reason: e.to_string() }
}

fn pretty<T: serde::Serialize>(value: &T) -> Result<String, ArtifactError> {
    serde_json::to_string_pretty(value).map_err(|e| io("json", e))
}

impl Artifacts {
    /// Opens `file://…` (created when missing) or `s3://…` with the credentials of
    /// `artifacts.s3_credentials_dir` (one file per setting), else of the `AWS_*` variables.
    pub fn open(url: &str, cfg: &ArtifactsConfig) -> Result<Artifacts, ArtifactError> {
        let options = match &cfg.s3_credentials_dir {
            Some(dir) if url.starts_with("s3://") => credential_files(dir)?,
            Some(_) => Vec::new(),
            None => std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect(),
        };
        Artifacts::open_with(url, options)
    }

    /// Opens `url` with explicit S3 options (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, … in any case).
    pub fn open_with(url: &str, options: Vec<(String, String)>) -> Result<Artifacts, ArtifactError> {
        let bad = |why: String| ArtifactError::Location(url.to_owned(), why);
        let url = url.trim_end_matches('/').to_owned();
        if let Some(dir) = url.strip_prefix("file://") {
            let dir = std::path::Path::new(if dir.is_empty() { "." } else { dir });
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            let abs = std::fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&abs).map_err(|e| bad(e.to_string()))?;
            return Ok(Artifacts {
                store: Arc::new(store),
                root: StorePath::from(""),
                url: format!("file://{}", abs.display()),
            });
        }
        if url.starts_with("s3://") {
            let parsed = reqwest::Url::parse(&url).map_err(|e| bad(e.to_string()))?;
            let options: Vec<(String, String)> =
                options.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            let (store, root) = object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.to_string()))?;
            return Ok(Artifacts { store: Arc::from(store), root, url });
        }
        Err(bad("unknown scheme".into()))
    }

    fn path(&self, name: &str, version: i64, file: &str) -> StorePath {
        let base = self.root.as_ref().trim_end_matches('/');
        let rel = format!("{name}/{version}/{file}");
        StorePath::from(if base.is_empty() { rel } else { format!("{base}/{rel}") })
    }

    /// The URL of a model's folder, for the registry.
    pub fn model_url(&self, name: &str, version: i64) -> String {
        format!("{}/{name}/{version}", self.url)
    }

    async fn put(&self, path: StorePath, bytes: Vec<u8>) -> Result<(), ArtifactError> {
        self.store.put(&path, PutPayload::from(bytes)).await.map(drop).map_err(|e| io(path.as_ref(), e))
    }

    async fn get(&self, path: &StorePath) -> Result<Vec<u8>, ArtifactError> {
        let got = self.store.get(path).await.map_err(|e| io(path.as_ref(), e))?;
        Ok(got.bytes().await.map_err(|e| io(path.as_ref(), e))?.to_vec())
    }

    /// Saves a trained network with its configuration, metrics and evaluation table.
    pub async fn save<B: Backend>(
        &self,
        model: &TemporalGcn<B>,
        config: &ModelConfig,
        metrics: &serde_json::Value,
        table: &str,
    ) -> Result<String, ArtifactError> {
        self.save_weights(weights(model)?, config, metrics, table).await
    }

    /// As [`Artifacts::save`], with the weights already recorded by [`weights`].
    pub async fn save_weights(
        &self,
        weights: Vec<u8>,
        config: &ModelConfig,
        metrics: &serde_json::Value,
        table: &str,
    ) -> Result<String, ArtifactError> {
        let (name, version) = (&config.name, config.version);
        self.put(self.path(name, version, "model.mpk"), weights).await?;
        self.put(self.path(name, version, "config.json"), pretty(config)?.into_bytes()).await?;
        self.put(self.path(name, version, "metrics.json"), pretty(metrics)?.into_bytes()).await?;
        self.put(self.path(name, version, "evaluation.txt"), table.as_bytes().to_vec()).await?;
        Ok(self.model_url(name, version))
    }

    /// Loads a model saved by [`Artifacts::save`]: a missing file, a file that is not what it
    /// should be, or weights that do not fit the configuration are errors naming the file.
    pub async fn load<B: Backend>(
        &self,
        name: &str,
        version: i64,
        device: &B::Device,
    ) -> Result<(TemporalGcn<B>, ModelConfig), ArtifactError> {
        let config_path = self.path(name, version, "config.json");
        let raw = self.get(&config_path).await?;
        let config: ModelConfig = serde_json::from_slice(&raw).map_err(|e| ArtifactError::Incompatible {
            path: config_path.to_string(),
            reason: format!("not a StreamForge model configuration ({e})"),
        })?;
        if config.format != FORMAT {
            return Err(ArtifactError::Incompatible {
                path: config_path.to_string(),
                reason: format!("artifact format {} (this build reads format {FORMAT})", config.format),
            });
        }
        let weights_path = self.path(name, version, "model.mpk");
        let weights = self.get(&weights_path).await?;
        let incompatible = |reason: String| ArtifactError::Incompatible { path: weights_path.to_string(), reason };
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
        let record = Recorder::<B>::load(&recorder, weights, device)
            .map_err(|e| incompatible(format!("not a burn record of a temporal GCN ({e})")))?;
        let (n, t, f) = (config.symbols.len(), config.lookback, config.feature_names.len());
        let blank = TemporalGcn::<B>::new(f, t, config.hidden, 0, device);
        let expected = blank.num_params();
        // A record whose tensors have other shapes than the configuration describes is refused
        // here rather than failing later inside a forward pass: loading takes the record's
        // shapes, so compare the sizes and try the inputs config.json describes.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let model = blank.load_record(record);
            let x = Tensor::<B, 4>::zeros([1, n, t, f], device);
            let a = Tensor::<B, 3>::zeros([1, n, n], device);
            let _ = model.forward(x, a).dims();
            model
        }));
        let model = checked.ok().filter(|m| m.num_params() == expected).ok_or_else(|| {
            incompatible(format!(
                "its weights do not fit the network of config.json ({f} features, {t} steps, {} hidden units)",
                config.hidden
            ))
        })?;
        Ok((model, config))
    }
}
