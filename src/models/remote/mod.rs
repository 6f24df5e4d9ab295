//! Models served by a KServe v2 inference server (NVIDIA Triton Inference Server, KServe's
//! own server) over gRPC, with local ONNX Runtime as the fall back.
//!
//! A model that runs remotely still loads its ONNX file locally: the local session checks
//! the model's contract, checks the server's model against it, and runs the windows while
//! the server cannot be reached (`Fallback::Local`). Recurrent state stays with the client
//! and travels with every request, so a stream can move between the server and local
//! inference at any window without a jump in its state (see docs/SCALE.md for the
//! measurement behind that choice).
//!
//! One gRPC channel per server address serves every model and stream of the process: one
//! HTTP/2 connection with keep-alive pings, re-established by the channel after a failure.
//! At most `max_in_flight` requests are outstanding per address; a request that cannot get
//! a slot within its timeout fails like one the server did not answer in time.

mod client;
mod proto;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use client::Client;

use crate::{Error, Result};

/// What a model does when its server cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fallback {
    /// Run on local ONNX Runtime until the server answers again.
    #[default]
    Local,
    /// Fail: the stream errors out.
    Error,
}

impl std::str::FromStr for Fallback {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "local" => Ok(Self::Local),
            "error" => Ok(Self::Error),
            other => Err(Error::InvalidArgument(format!(
                "fallback must be local or error, not {other:?}"
            ))),
        }
    }
}

/// Where the models run and how the client behaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteSpec {
    /// `host:port` of the server's gRPC endpoint, or an `http://` URL.
    pub address: String,
    /// Model names on the server by role (`vad`, `tagger`) or by package name, each
    /// `name` or `name:version`. A model not listed is looked up under its package's folder
    /// name, which is what the repository writer (scripts/triton-repo.py) calls it.
    pub models: Vec<(String, String)>,
    pub timeout: Duration,
    pub fallback: Fallback,
    /// Requests outstanding at once on this address, over all models and streams.
    pub max_in_flight: usize,
}

impl RemoteSpec {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            models: Vec::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            fallback: Fallback::Local,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Parses `role=name[:version],…` (the elements' `server-models` property).
    pub fn parse_models(text: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, model)) = item.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "server model {item:?} is not role=name[:version] (for example vad=silero-vad:1)"
                )));
            };
            let (key, model) = (key.trim(), model.trim());
            if key.is_empty() || model.is_empty() || model.starts_with(':') {
                return Err(Error::InvalidArgument(format!(
                    "server model {item:?} is not role=name[:version]"
                )));
            }
            out.push((key.to_string(), model.to_string()));
        }
        Ok(out)
    }

    /// The server's name and version ("" for the newest) for a model of `role` from the
    /// package in folder `package`.
    pub fn model_for(&self, role: &str, package: &str) -> (String, String) {
        let named = self
            .models
            .iter()
            .find(|(k, _)| k == role)
            .or_else(|| self.models.iter().find(|(k, _)| k == package))
            .map(|(_, m)| m.as_str())
            .unwrap_or(package);
        match named.split_once(':') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (named.to_string(), String::new()),
        }
    }
}

/// A tensor handed to a model, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    Bool(&'a [bool]),
}

/// An output's values as the server sent them.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One output of a served model.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub shape: Vec<i64>,
    pub values: Values,
}

/// A tensor of a served model's metadata: name, KServe data type ("FP32"), shape (-1 free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// A served model's inputs and outputs, as its server describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    pub name: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl ServedModel {
    fn from_proto(m: &proto::ModelMetadataResponse) -> Self {
        let specs = |v: &[proto::TensorMetadata]| {
            v.iter()
                .map(|t| TensorSpec {
                    name: t.name.clone(),
                    datatype: t.datatype.clone(),
                    shape: t.shape.clone(),
                })
                .collect()
        };
        Self {
            name: m.name.clone(),
            inputs: specs(&m.inputs),
            outputs: specs(&m.outputs),
        }
    }

    /// Refuses the model unless it has these inputs and outputs (name, data type).
    pub fn expect(
        &self,
        address: &str,
        inputs: &[(&str, &str)],
        outputs: &[(&str, &str)],
    ) -> Result<()> {
        for (kind, want, have) in [
            ("input", inputs, &self.inputs),
            ("output", outputs, &self.outputs),
        ] {
            for (name, dt) in want {
                let found = have.iter().find(|t| t.name == *name);
                let reason = match found {
                    None => format!(
                        "the server's model has no {kind} named {name} (it has {:?})",
                        have.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
                    ),
                    Some(t) if t.datatype != *dt => {
                        format!(
                            "{kind} {name} is {} on the server, expected {dt}",
                            t.datatype
                        )
                    }
                    Some(_) => continue,
                };
                return Err(Error::RemoteModel {
                    address: address.to_string(),
                    model: self.name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub data: Data<'a>,
}

impl<'a> Input<'a> {
    pub fn f32(name: &'a str, shape: Vec<usize>, data: &'a [f32]) -> Self {
        Self {
            name,
            shape,
            data: Data::F32(data),
        }
    }

    pub fn i64(name: &'a str, shape: Vec<usize>, data: &'a [i64]) -> Self {
        Self {
            name,
            shape,
            data: Data::I64(data),
        }
    }

    pub fn bool(name: &'a str, shape: Vec<usize>, data: &'a [bool]) -> Self {
        Self {
            name,
            shape,
            data: Data::Bool(data),
        }
    }
}

/// Where a remote model stands, for the element to report changes of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    pub address: String,
    pub model: String,
    /// The server answered the last request (or none failed yet).
    pub up: bool,
    /// Bumped whenever `up` changes, so each user can tell it has not reported a change.
    pub generation: u64,
    /// Why the last request failed.
    pub last_error: Option<String>,
    pub requests: u64,
    pub local_runs: u64,
    /// Protobuf bytes of the requests sent and the answers received (HTTP/2 and TCP
    /// framing not counted).
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// One model on a server, shared by every stream that runs it.
pub struct RemoteModel {
    client: Arc<Client>,
    name: String,
    version: String,
    fallback: Fallback,
    up: AtomicBool,
    /// A health probe found the server ready again while the model was down.
    probe_ok: Arc<AtomicBool>,
    probing: Arc<AtomicBool>,
    generation: AtomicU64,
    requests: AtomicU64,
    local_runs: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_probe: Mutex<Option<Instant>>,
}

/// How often a model that is down asks the server whether it is ready again.
const PROBE_EVERY: Duration = Duration::from_millis(500);

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("address", &self.client.address())
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

impl RemoteModel {
    /// [`connect`](Self::connect) for a model with no local session of the same shape (a
    /// decode loop on the server): `check` judges the served model's inputs and outputs.
    pub fn connect_checked(
        spec: &RemoteSpec,
        role: &str,
        default_name: &str,
        check: impl FnOnce(&ServedModel, &str) -> Result<()>,
    ) -> Result<Self> {
        let client = Client::shared(spec)?;
        let (name, version) = spec.model_for(role, default_name);
        let model = Self {
            client,
            name,
            version,
            fallback: spec.fallback,
            up: AtomicBool::new(true),
            probe_ok: Arc::new(AtomicBool::new(false)),
            probing: Arc::new(AtomicBool::new(false)),
            generation: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            local_runs: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_probe: Mutex::new(None),
        };
        match model.client.metadata(&model.name, &model.version) {
            Ok(meta) => check(&ServedModel::from_proto(&meta), model.client.address())?,
            Err(e @ Error::RemoteUnavailable { .. }) if spec.fallback == Fallback::Local => {
                model.mark_down(&e);
            }
            Err(e) => return Err(e),
        }
        Ok(model)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> &str {
        self.client.address()
    }

    pub fn status(&self) -> RemoteStatus {
        RemoteStatus {
            address: self.client.address().to_string(),
            model: self.name.clone(),
            up: self.up.load(Ordering::Acquire),
            generation: self.generation.load(Ordering::Acquire),
            last_error: self.last_error.lock().clone(),
            requests: self.requests.load(Ordering::Relaxed),
            local_runs: self.local_runs.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
        }
    }

    fn mark_down(&self, e: &Error) {
        *self.last_error.lock() = Some(e.to_string());
        self.probe_ok.store(false, Ordering::Release);
        if self.up.swap(false, Ordering::AcqRel) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether the next request goes to the server. While the model is down, a probe in
    /// the background asks the server for readiness every [`PROBE_EVERY`]; the streams keep
    /// running locally meanwhile instead of each waiting on a dead address.
    fn try_remote(&self) -> bool {
        if self.up.load(Ordering::Acquire) || self.probe_ok.swap(false, Ordering::AcqRel) {
            return true;
        }
        let mut last = self.last_probe.lock();
        if last.is_some_and(|t| t.elapsed() < PROBE_EVERY) || self.probing.load(Ordering::Acquire) {
            return false;
        }
        *last = Some(Instant::now());
        self.probing.store(true, Ordering::Release);
        self.client.probe(
            &self.name,
            &self.version,
            self.probe_ok.clone(),
            self.probing.clone(),
        );
        false
    }

    /// Runs `remote` on the server, or `local` when the server is down and the fall back
    /// allows it (a failed request is run again locally, so nothing is lost).
    pub fn attempt<T>(
        &self,
        remote: impl FnOnce(&Self) -> Result<T>,
        local: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.try_remote() {
            self.requests.fetch_add(1, Ordering::Relaxed);
            match remote(self) {
                Ok(out) => {
                    self.mark_up();
                    return Ok(out);
                }
                Err(e) => {
                    log::warn!("{} on {}: {e}", self.name, self.client.address());
                    self.mark_down(&e);
                    if self.fallback == Fallback::Error {
                        return Err(e);
                    }
                }
            }
        } else if self.fallback == Fallback::Error {
            let why = self.last_error.lock().clone().unwrap_or_default();
            return Err(Error::RemoteUnavailable {
                address: self.client.address().to_string(),
                reason: why,
            });
        }
        self.local_runs.fetch_add(1, Ordering::Relaxed);
        local()
    }

    /// One request to the served model: the outputs named in `outputs`, in order.
    pub fn infer(&self, inputs: &[Input<'_>], outputs: &[&str]) -> Result<Vec<Output>> {
        let (out, sent, received) =
            self.client
                .infer(&self.name, &self.version, inputs, outputs)?;
        self.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(received as u64, Ordering::Relaxed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        let mut spec = RemoteSpec::new("127.0.0.1:8001");
        assert_eq!(
            spec.model_for("vad", "silero-vad"),
            ("silero-vad".into(), "".into())
        );
        spec.models = RemoteSpec::parse_models("vad = vad-gpu:3, ced-tiny=tags").unwrap();
        assert_eq!(
            spec.model_for("vad", "silero-vad"),
            ("vad-gpu".into(), "3".into())
        );
        assert_eq!(
            spec.model_for("tagger", "ced-tiny"),
            ("tags".into(), "".into())
        );
        assert!(RemoteSpec::parse_models("silero-vad").is_err());
        assert!(RemoteSpec::parse_models("vad=:2").is_err());
        assert!(RemoteSpec::parse_models(" , ").unwrap().is_empty());
    }

    #[test]
    fn fallback_names() {
        assert_eq!("local".parse::<Fallback>().unwrap(), Fallback::Local);
        assert_eq!("error".parse::<Fallback>().unwrap(), Fallback::Error);
        assert!("maybe".parse::<Fallback>().is_err());
    }
}
