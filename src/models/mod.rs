//! Models: how they are packaged, loaded, shared and run, locally or on a server.
//!
//! * [`package`]: model packages (`model.toml` manifests) and where they are searched for.
//! * [`family`]: the model families, by the name their manifests give.
//! * [`runtime`]: locating and loading ONNX Runtime, execution providers with CPU fallback,
//!   sessions shared by every stream of the process.
//! * [`remote`]: models on a KServe v2 (Triton) server over gRPC.
//! * [`exec`]: where a model runs: the local session, or the server with the local session
//!   as the fall back.

pub mod exec;
pub mod family;
pub mod package;
pub mod remote;
pub mod runtime;
