//! Respond: from decisions and audio to what the loop says back.
//!
//! * [`response`]: what a response is, and the responders that produce one.
//! * [`schedule`]: the utterance scheduler: decisions and audio in, decode jobs out.
//! * [`cues`]: decode results to partial and final cues, nothing stale after a flush.
//! * [`streaming`]: LocalAgreement-2 over successive hypotheses of an utterance.
//! * [`subtitle`]: SRT and WebVTT cues.
//! * [`profanity`]: masking listed words in what is shown.
//! * [`captions`]: the bracketed captions of sounds ("[APPLAUSE]").
//! * [`asr`]: speech recognition: Whisper and Moonshine as responders.
//! * [`assistant`]: the interaction model, a decoder language model with a KV cache.

pub mod asr;
pub mod assistant;
pub mod captions;
pub mod cues;
pub mod profanity;
pub mod response;
pub mod schedule;
pub mod streaming;
pub mod subtitle;
