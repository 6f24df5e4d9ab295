//! Core of gst-lalm: everything the perceive → decide → respond loop needs that can be
//! built and tested without a GStreamer pipeline.
//!
//! The folders are the loop's layers, each using only the layers before it:
//!
//! ```text
//! base ← dsp ← models ← perceive ← decide ← respond
//! ```
//!
//! * [`base`]: stream time, errors, framing, batching, cancellation.
//! * [`dsp`]: signal processing the models share: log-mel, window functions.
//! * [`models`]: model packages, ONNX Runtime sessions, the inference server client, and
//!   the one place that picks where a model runs.
//! * [`perceive`]: VAD and sound-event tagging, and the perception that travels with each
//!   chunk.
//! * [`decide`]: the speech/turn state machine, the smart-turn model, alert rules.
//! * [`respond`]: scheduling decodes, ASR (Whisper, Moonshine), streaming agreement, cues
//!   and subtitles, the assistant's language model.
//!
//! `tests/layout.rs` holds the layering to this order and keeps the modules within a layer
//! free of import cycles.

pub mod base;
pub mod decide;
pub mod dsp;
pub mod models;
pub mod perceive;
pub mod respond;

pub use base::error::{Error, Result};
