//! Core of gst-lalm: everything the perceive → decide → respond loop needs that can be
//! built and tested without a GStreamer pipeline.
//!
//! * [`alerts`]: proactive alert rules (TOML), evaluated over perception and transcripts.
//! * [`interaction`]: the interaction model, a decoder language model with a KV cache.
//! * [`framing`]: re-framing arbitrary sample runs into fixed chunks, counted in samples.
//! * [`remote`]: models on a KServe v2 (Triton) server over gRPC, local ONNX Runtime as fall back.
//! * [`runtime`]: locating and loading ONNX Runtime, execution providers with CPU fallback.
//! * [`model`]: model packages (`model.toml` manifests) and where they are searched for.
//! * [`vad`]: Silero VAD, windowed, with its recurrent state carried across calls.
//! * [`decision`]: the per-window speech/turn state machine.
//! * [`response`]: what a response is, and the responders that produce one.
//! * [`schedule`]: the utterance scheduler: decisions and audio in, decode jobs out.
//! * [`cues`]: decode results to partial and final cues, nothing stale after a flush.
//! * [`streaming`]: LocalAgreement-2 over successive hypotheses of an utterance.
//! * [`subtitle`]: SRT and WebVTT cues.
//! * [`tagger`]: sound-event taggers (`audio-tagger` packages) run window by window.
//! * [`whisper`]: Whisper ASR: log-mel front end, tokenizer, ONNX model, greedy decoding.

pub mod alerts;
pub mod batch;
pub mod cues;
pub mod decision;
pub mod error;
pub mod framing;
pub mod interaction;
pub mod model;
pub mod moonshine;
pub mod perception;
pub mod remote;
pub mod response;
pub mod runtime;
pub mod schedule;
pub mod streaming;
pub mod subtitle;
pub mod tagger;
pub mod time;
pub mod turn;
pub mod vad;
pub mod whisper;

pub use error::{Error, Result};
