//! Models: how they are packaged, loaded, shared and run, locally or on a server.
//!
//! * [`package`]: model packages (`model.toml` manifests) and where they are searched for.
//! * [`family`]: the model families, by the name their manifests give.
//! * [`contract`]: what a family's model must look like, declared once as a signature and
//!   checked one way against a session or a server's model; the [`ModelFamily`] trait
//!   through which every family opens packages, loads shared sessions and connects to a
//!   server.
//! * [`runtime`]: locating and loading ONNX Runtime, execution providers with CPU fallback,
//!   sessions shared by every stream of the process.
//! * [`remote`]: models on a KServe v2 (Triton) server over gRPC.
//! * [`exec`]: where a model runs: the local session, or the server with the local session
//!   as the fall back.

pub mod contract;
pub mod exec;
pub mod family;
pub mod package;
pub mod remote;
pub mod runtime;

pub use contract::ModelFamily;
