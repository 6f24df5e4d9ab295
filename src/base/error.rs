use std::path::PathBuf;

/// Errors carry enough context for a person to act on them: which file, which library,
/// which input name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "ONNX Runtime library not found or not loadable at {path}: {reason}. \
         Run the setup command from the README, or point LALM_ORT_LIBRARY (or the element's \
         ort-library property) at libonnxruntime.so"
    )]
    RuntimeLibrary { path: PathBuf, reason: String },

    #[error(
        "ONNX Runtime library not found: searched {searched}. Run the setup command from the \
         README, or set LALM_ORT_LIBRARY to the path of libonnxruntime.so"
    )]
    RuntimeLibraryNotFound { searched: String },

    #[error(
        "ONNX Runtime was already loaded from {loaded} in this process; it cannot also be \
         loaded from {requested}"
    )]
    RuntimeLibraryConflict { loaded: PathBuf, requested: PathBuf },

    #[error("model package not found: {what}; searched {searched}")]
    ModelNotFound { what: String, searched: String },

    #[error("model file missing: {path} (named by {manifest})")]
    ModelFileMissing { path: PathBuf, manifest: PathBuf },

    #[error("invalid model manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },

    #[error("model {path} cannot be used as {family}: {reason}")]
    ModelContract {
        path: PathBuf,
        family: String,
        reason: String,
    },

    #[error("ONNX Runtime failed to load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },

    /// The inference server could not be reached or did not answer in time.
    #[error("inference server {address} unreachable: {reason}")]
    RemoteUnavailable { address: String, reason: String },

    /// The server does not serve the model asked for, or serves one that does not fit.
    #[error("inference server {address}, model '{model}': {reason}")]
    RemoteModel {
        address: String,
        model: String,
        reason: String,
    },

    /// The server refused a request (a shape or type it does not accept).
    #[error("inference server {address} refused the request: {reason}")]
    RemoteRefused { address: String, reason: String },

    #[error("bad inference server address {address:?}: {reason}")]
    RemoteAddress { address: String, reason: String },

    #[error("inference failed: {0}")]
    Inference(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The work was called off (a partial decode overtaken by its turn's final).
    #[error("cancelled")]
    Cancelled,

    /// An alert rules file (or inline rules text) that cannot be used; `line` is 1-based.
    #[error("{origin}:{line}: {message}")]
    Rules {
        origin: String,
        line: usize,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;
