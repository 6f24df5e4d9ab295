//! ONNX Runtime: where its library is found, loading it once per process, and building
//! sessions on the execution provider the user asked for, with a logged fall back to CPU.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use once_cell::sync::OnceCell;
use parking_lot::Mutex;

use crate::{Error, Result};

/// The ONNX Runtime version the setup installs and the default search looks for.
pub const ORT_VERSION: &str = "1.31.1";
/// Environment variable naming the ONNX Runtime library to load; wins over the search.
pub const ORT_LIBRARY_ENV: &str = "LALM_ORT_LIBRARY";

/// Where the library is looked for when neither a property nor `LALM_ORT_LIBRARY` names it:
/// `ORT_DYLIB_PATH` (the `ort` crate's own variable), then the lalm data dirs, where the
/// setup command installs it, then the system's default library search.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    for dir in crate::models::package::data_dirs() {
        let base = dir.join("onnxruntime");
        out.push(base.join(format!("libonnxruntime.so.{ORT_VERSION}")));
        out.push(base.join("libonnxruntime.so"));
    }
    for dir in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"] {
        out.push(Path::new(dir).join("libonnxruntime.so.1"));
        out.push(Path::new(dir).join("libonnxruntime.so"));
    }
    out
}

/// Resolves which library file to load: an explicit path, then `LALM_ORT_LIBRARY`, then
/// the first existing candidate.
pub fn resolve_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ORT_LIBRARY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = library_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::RuntimeLibraryNotFound {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

struct Loaded {
    path: PathBuf,
    env: ort::environment::Environment,
}

static RUNTIME: OnceCell<Loaded> = OnceCell::new();
// Serialises first loads so two elements starting together agree on one library.
static LOAD_LOCK: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, loading the library on first use.
#[derive(Clone)]
pub struct Runtime {
    env: ort::environment::Environment,
    path: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("path", &self.path).finish()
    }
}

impl Runtime {
    /// Loads ONNX Runtime from `explicit`, `LALM_ORT_LIBRARY` or the default search. The
    /// library stays loaded for the life of the process; asking for another file afterwards
    /// is an error rather than a silent surprise.
    pub fn get(explicit: Option<&Path>) -> Result<Runtime> {
        let _guard = LOAD_LOCK.lock();
        if let Some(l) = RUNTIME.get() {
            let wanted_explicitly = explicit
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .or_else(|| std::env::var_os(ORT_LIBRARY_ENV).map(PathBuf::from))
                .filter(|p| !p.as_os_str().is_empty());
            if let Some(want) = wanted_explicitly
                && !same_file(&want, &l.path)
            {
                return Err(Error::RuntimeLibraryConflict {
                    loaded: l.path.clone(),
                    requested: want,
                });
            }
            return Ok(Runtime {
                env: l.env.clone(),
                path: l.path.clone(),
            });
        }
        let path = resolve_library(explicit)?;
        if !path.exists() {
            return Err(Error::RuntimeLibrary {
                path,
                reason: "no such file".into(),
            });
        }
        let builder = ort::init_from(&path).map_err(|e| Error::RuntimeLibrary {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let env = builder
            .with_name("gst-lalm")
            .with_telemetry(false)
            .build()
            .map_err(|e| Error::RuntimeLibrary {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let loaded = RUNTIME.get_or_init(|| Loaded { path, env });
        Ok(Runtime {
            env: loaded.env.clone(),
            path: loaded.path.clone(),
        })
    }

    pub fn library_path(&self) -> &Path {
        &self.path
    }

    /// Builds a session for `model` on `provider`. If that provider cannot be registered
    /// (no GPU, a CPU-only library, missing CUDA libraries), the session is built on CPU and
    /// the returned [`SessionInfo`] says so and why.
    pub fn session(
        &self,
        model: &Path,
        opts: &SessionOptions,
    ) -> Result<(ort::session::Session, SessionInfo)> {
        if !model.is_file() {
            return Err(Error::ModelLoad {
                path: model.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        let mut fallback_reason = None;
        let mut order: Vec<ExecutionProvider> = match opts.provider {
            ExecutionProvider::Auto => vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu],
            ExecutionProvider::TensorRt => vec![
                ExecutionProvider::TensorRt,
                ExecutionProvider::Cuda,
                ExecutionProvider::Cpu,
            ],
            ExecutionProvider::Cuda => vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu],
            ExecutionProvider::Cpu => vec![ExecutionProvider::Cpu],
        };
        // `auto` only tries CUDA when the library says it was built with it: a CPU-only
        // library then needs no noisy failed attempt.
        if opts.provider == ExecutionProvider::Auto
            && !provider_compiled_in(ExecutionProvider::Cuda)
        {
            order.retain(|p| *p == ExecutionProvider::Cpu);
        }
        for p in order {
            match self.try_session(model, opts, p) {
                Ok(session) => {
                    let info = SessionInfo {
                        requested: opts.provider,
                        active: p,
                        fallback_reason: fallback_reason.clone(),
                    };
                    return Ok((session, info));
                }
                Err(TryError::Provider(reason)) => {
                    let why = format!("{} unavailable: {reason}", p.as_str());
                    fallback_reason = Some(match fallback_reason {
                        Some(prev) => format!("{prev}; {why}"),
                        None => why,
                    });
                }
                Err(TryError::Fatal(e)) => return Err(e),
            }
        }
        Err(Error::ModelLoad {
            path: model.to_path_buf(),
            reason: fallback_reason.unwrap_or_else(|| "no execution provider".into()),
        })
    }

    fn try_session(
        &self,
        model: &Path,
        opts: &SessionOptions,
        p: ExecutionProvider,
    ) -> std::result::Result<ort::session::Session, TryError> {
        use ort::ep::ExecutionProvider as _;
        let load_err = |e: String| {
            TryError::Fatal(Error::ModelLoad {
                path: model.to_path_buf(),
                reason: e,
            })
        };
        let mut b = ort::session::Session::builder(&self.env)
            .map_err(|e| load_err(e.to_string()))?
            .with_intra_threads(opts.intra_threads.max(1))
            .map_err(|e| load_err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| load_err(e.to_string()))?
            // Spinning keeps idle intra-op threads busy-waiting after every run: on the live
            // loop's short, frequent runs it doubled the CPU time (0.69 against 0.38 CPU s per
            // audio s, lalm-asr-bench on real speech) for no latency gained.
            .with_intra_op_spinning(false)
            .map_err(|e| load_err(e.to_string()))?
            .with_no_environment_execution_providers()
            .map_err(|e| load_err(e.to_string()))?
            .with_memory_pattern(opts.memory_pattern)
            .map_err(|e| load_err(e.to_string()))?;
        if !opts.cpu_arena {
            ort::ep::CPU::default()
                .with_arena_allocator(false)
                .register(&mut b)
                .map_err(|e| TryError::Provider(e.to_string()))?;
        }
        match p {
            ExecutionProvider::Cpu | ExecutionProvider::Auto => {}
            ExecutionProvider::Cuda => {
                if !provider_compiled_in(p) {
                    return Err(TryError::Provider(
                        "this ONNX Runtime library was built without CUDA".into(),
                    ));
                }
                let ep = ort::ep::CUDA::default().with_device_id(opts.device_id);
                ep.register(&mut b)
                    .map_err(|e| TryError::Provider(e.to_string()))?;
            }
            ExecutionProvider::TensorRt => {
                if !provider_compiled_in(p) {
                    return Err(TryError::Provider(
                        "this ONNX Runtime library was built without TensorRT".into(),
                    ));
                }
                let mut ep = ort::ep::TensorRT::default()
                    .with_device_id(opts.device_id)
                    .with_fp16(opts.trt_fp16);
                if let Some(dir) = &opts.trt_cache_dir {
                    // ONNX Runtime makes only the last folder of the path.
                    std::fs::create_dir_all(dir).map_err(|e| {
                        TryError::Provider(format!(
                            "cannot create the TensorRT cache folder {}: {e}",
                            dir.display()
                        ))
                    })?;
                    ep = ep
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display().to_string())
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir.display().to_string());
                }
                ep.register(&mut b)
                    .map_err(|e| TryError::Provider(e.to_string()))?;
                // Nodes TensorRT does not take (the tagger's STFT, say) go to CUDA rather
                // than CPU, when this library has it.
                if provider_compiled_in(ExecutionProvider::Cuda) {
                    let cuda = ort::ep::CUDA::default().with_device_id(opts.device_id);
                    cuda.register(&mut b)
                        .map_err(|e| TryError::Provider(e.to_string()))?;
                }
            }
        }
        let result = b.commit_from_file(model);
        match result {
            Ok(s) => Ok(s),
            // A GPU provider that registered but failed at session creation (missing CUDA
            // libraries, no device) is a provider problem; on CPU it is the model's.
            Err(e) if p != ExecutionProvider::Cpu => Err(TryError::Provider(e.to_string())),
            Err(e) => Err(load_err(e.to_string())),
        }
    }
}

enum TryError {
    Provider(String),
    Fatal(Error),
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn provider_compiled_in(p: ExecutionProvider) -> bool {
    use ort::ep::ExecutionProvider as _;
    match p {
        ExecutionProvider::Cpu | ExecutionProvider::Auto => true,
        ExecutionProvider::Cuda => ort::ep::CUDA::is_available().unwrap_or(false),
        ExecutionProvider::TensorRt => ort::ep::TensorRT::is_available().unwrap_or(false),
    }
}

/// Which execution provider a session should run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    /// CUDA when the library has it and a device answers, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

impl ExecutionProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProvider::Auto => "auto",
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
        }
    }
}

impl FromStr for ExecutionProvider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            other => Err(Error::InvalidArgument(format!(
                "unknown execution provider '{other}' (expected auto, cpu, cuda or tensorrt)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub provider: ExecutionProvider,
    pub intra_threads: usize,
    pub device_id: i32,
    pub trt_fp16: bool,
    pub trt_cache_dir: Option<PathBuf>,
    /// ONNX Runtime's memory-pattern planning: a win for fixed shapes, a growing pile of
    /// buffers when every run has another shape (Whisper's fitted windows).
    pub memory_pattern: bool,
    /// ONNX Runtime's CPU arena: it keeps the most a run ever needed for the next runs. Off
    /// for models whose runs differ in size (the ASR's utterances), so a long utterance's
    /// buffers go back to the process when its decode ends.
    pub cpu_arena: bool,
    /// One session (and batcher) per process for the same model file and options, rather
    /// than one per stream.
    pub shared: bool,
    /// Run the models on this inference server (local ONNX Runtime stays loaded, to check
    /// the server's models and to fall back on).
    pub remote: Option<crate::models::remote::RemoteSpec>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            provider: ExecutionProvider::Auto,
            intra_threads: 1,
            device_id: 0,
            trt_fp16: false,
            trt_cache_dir: None,
            memory_pattern: true,
            cpu_arena: true,
            shared: true,
            remote: None,
        }
    }
}

/// What a session ended up running on, and why if that is not what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub requested: ExecutionProvider,
    pub active: ExecutionProvider,
    pub fallback_reason: Option<String>,
}

/// A model's sessions and what they run on, shared by every stream using the same model
/// file, provider and options. `ort` runs a session through `&mut` (some ONNX Runtime
/// internals are not thread-safe), so each run takes a session of its own from a pool: an
/// idle one, else a new one while fewer than [`SharedSession::max_sessions`] exist (one per
/// core the model's intra-op threads leave), else it waits for one to come back. Runs of
/// different streams thus go on at once while a core is free, and the weights are loaded
/// again only when runs really overlap.
pub struct SharedSession {
    idle: Mutex<Vec<ort::session::Session>>,
    returned: parking_lot::Condvar,
    /// Sessions made so far (idle or in use).
    made: std::sync::atomic::AtomicUsize,
    max: usize,
    /// How to make another: the runtime and options that made the first, on its provider.
    more: Option<(Runtime, SessionOptions)>,
    info: SessionInfo,
    path: PathBuf,
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSession")
            .field("path", &self.path)
            .field("provider", &self.info.active)
            .field("sessions", &self.sessions())
            .finish()
    }
}

/// A session taken from a [`SharedSession`]'s pool; it goes back when dropped.
pub struct SessionGuard<'a> {
    pool: &'a SharedSession,
    session: Option<ort::session::Session>,
}

impl std::ops::Deref for SessionGuard<'_> {
    type Target = ort::session::Session;
    fn deref(&self) -> &Self::Target {
        self.session
            .as_ref()
            .expect("a guard holds its session until dropped")
    }
}

impl std::ops::DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.session
            .as_mut()
            .expect("a guard holds its session until dropped")
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.idle.lock().push(s);
            self.pool.returned.notify_one();
        }
    }
}

impl SharedSession {
    /// A pool holding `session`, growing to `max` sessions made by `more`.
    fn new(
        session: ort::session::Session,
        info: SessionInfo,
        path: PathBuf,
        max: usize,
        more: Option<(Runtime, SessionOptions)>,
    ) -> Self {
        Self {
            idle: Mutex::new(vec![session]),
            returned: parking_lot::Condvar::new(),
            made: std::sync::atomic::AtomicUsize::new(1),
            max: if more.is_some() { max.max(1) } else { 1 },
            more,
            info,
            path,
        }
    }

    /// A session to run, for as long as the guard lives: an idle one, a new one while the
    /// pool may grow (if making it fails, the run waits for one of the others instead), or
    /// the next one given back.
    pub fn lock(&self) -> SessionGuard<'_> {
        use std::sync::atomic::Ordering;
        let mut idle = self.idle.lock();
        loop {
            if let Some(s) = idle.pop() {
                return SessionGuard {
                    pool: self,
                    session: Some(s),
                };
            }
            let made = self.made.load(Ordering::SeqCst);
            if made < self.max
                && let Some((rt, opts)) = &self.more
                && self
                    .made
                    .compare_exchange(made, made + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // Loading takes a while: not under the lock the other runs give back under.
                drop(idle);
                match rt.session(&self.path, opts) {
                    Ok((s, _)) => {
                        return SessionGuard {
                            pool: self,
                            session: Some(s),
                        };
                    }
                    Err(e) => {
                        log::warn!(
                            "{}: no further session ({e}); runs share the {made} there are",
                            self.path.display()
                        );
                        // Never try again: the pool stays at what it has.
                        self.made.store(usize::MAX / 2, Ordering::SeqCst);
                        idle = self.idle.lock();
                        continue;
                    }
                }
            }
            self.returned.wait(&mut idle);
        }
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sessions made so far.
    pub fn sessions(&self) -> usize {
        self.made
            .load(std::sync::atomic::Ordering::SeqCst)
            .min(self.max)
    }

    /// The most sessions the pool makes.
    pub fn max_sessions(&self) -> usize {
        self.max
    }
}

/// What makes two sessions interchangeable: the same model file (by path, size and
/// modification time, so a rebuilt model is loaded afresh) and the same session options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    provider: ExecutionProvider,
    intra_threads: usize,
    device_id: i32,
    trt_fp16: bool,
    trt_cache_dir: Option<PathBuf>,
    memory_pattern: bool,
    cpu_arena: bool,
    remote: Option<crate::models::remote::RemoteSpec>,
    /// What else the sharing object depends on (a package's parameters, say).
    extra: String,
}

impl SessionKey {
    /// The same key, distinguished further by `extra`.
    pub fn with_extra(mut self, extra: impl Into<String>) -> Self {
        self.extra = extra.into();
        self
    }

    pub fn new(model: &Path, opts: &SessionOptions) -> Result<Self> {
        let meta = std::fs::metadata(model).map_err(|e| Error::ModelLoad {
            path: model.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: model.canonicalize().unwrap_or_else(|_| model.to_path_buf()),
            len: meta.len(),
            modified: meta.modified().ok(),
            provider: opts.provider,
            intra_threads: opts.intra_threads.max(1),
            device_id: opts.device_id,
            trt_fp16: opts.trt_fp16,
            trt_cache_dir: opts.trt_cache_dir.clone(),
            memory_pattern: opts.memory_pattern,
            cpu_arena: opts.cpu_arena,
            remote: opts.remote.clone(),
            extra: String::new(),
        })
    }
}

type Shared = Arc<dyn std::any::Any + Send + Sync>;
type Weak = std::sync::Weak<dyn std::any::Any + Send + Sync>;

// Weak entries: a model lives as long as some stream uses it, and no longer.
static SHARED: Mutex<Vec<(std::any::TypeId, SessionKey, Weak)>> = Mutex::new(Vec::new());
// Held across a build, so streams starting together build one object rather than racing to
// build two; reentrant, because a shared model builds its shared session inside its build.
static BUILDING: parking_lot::ReentrantMutex<()> = parking_lot::ReentrantMutex::new(());

/// The process-wide `T` for `key`: the live one if any stream holds it, else a new one from
/// `build`. Models use it to share their session and their batcher between streams.
pub fn share<T, F>(key: &SessionKey, build: F) -> Result<Arc<T>>
where
    T: std::any::Any + Send + Sync,
    F: FnOnce() -> Result<T>,
{
    let ty = std::any::TypeId::of::<T>();
    let _building = BUILDING.lock();
    let live = {
        let mut reg = SHARED.lock();
        reg.retain(|(_, _, w)| w.strong_count() > 0);
        reg.iter()
            .find(|(t, k, _)| *t == ty && k == key)
            .and_then(|(_, _, w)| w.upgrade())
    };
    if let Some(obj) = live {
        return obj
            .downcast::<T>()
            .map_err(|_| Error::Inference("shared model registry holds a wrong type".into()));
    }
    let obj = Arc::new(build()?);
    let erased: Shared = obj.clone();
    SHARED
        .lock()
        .push((ty, key.clone(), Arc::downgrade(&erased)));
    Ok(obj)
}

/// A package's model object (session, batcher, parameters): with `opts.shared` the one every
/// stream of the process uses for this package and options, else one of its own.
pub fn package_model<T, F>(
    pkg: &crate::models::package::ModelPackage,
    opts: &SessionOptions,
    build: F,
) -> Result<Arc<T>>
where
    T: std::any::Any + Send + Sync,
    F: FnOnce() -> Result<T>,
{
    if !opts.shared {
        return build().map(Arc::new);
    }
    let key = SessionKey::new(&pkg.file("model")?, opts)?.with_extra(format!(
        "{}:{}",
        pkg.manifest.family,
        pkg.manifest_path.display()
    ));
    share(&key, build)
}

/// How many shared objects are alive in this process, for tests and statistics.
pub fn shared_count() -> usize {
    SHARED
        .lock()
        .iter()
        .filter(|(_, _, w)| w.strong_count() > 0)
        .count()
}

impl Runtime {
    /// The session for `model` and `opts`: shared with every other user of the same file
    /// and options when `opts.shared`, else a private one.
    pub fn shared_session(
        &self,
        model: &Path,
        opts: &SessionOptions,
    ) -> Result<Arc<SharedSession>> {
        let build = || {
            let (session, info) = self.session(model, opts)?;
            // More sessions only on the CPU, one per core the intra-op threads leave free: a
            // GPU runs one model's calls one after another anyway, and each session there
            // holds its own device memory.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let max = cores / opts.intra_threads.max(1);
            let more = (info.active == ExecutionProvider::Cpu).then(|| {
                let mut o = opts.clone();
                o.provider = ExecutionProvider::Cpu;
                (self.clone(), o)
            });
            Ok(SharedSession::new(
                session,
                info,
                model.to_path_buf(),
                max,
                more,
            ))
        };
        if !opts.shared {
            return build().map(Arc::new);
        }
        if !model.is_file() {
            return Err(Error::ModelLoad {
                path: model.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        share(&SessionKey::new(model, opts)?, build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        assert_eq!(
            "CUDA".parse::<ExecutionProvider>().unwrap(),
            ExecutionProvider::Cuda
        );
        assert_eq!(
            "trt".parse::<ExecutionProvider>().unwrap(),
            ExecutionProvider::TensorRt
        );
        assert!("npu".parse::<ExecutionProvider>().is_err());
    }

    #[test]
    fn explicit_library_wins() {
        let p = resolve_library(Some(Path::new("/x/libonnxruntime.so"))).unwrap();
        assert_eq!(p, PathBuf::from("/x/libonnxruntime.so"));
    }
}
