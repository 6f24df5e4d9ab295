//! Perceive: what is in the audio, window by window.
//!
//! * [`vad`]: Silero VAD, windowed, with its recurrent state carried across calls.
//! * [`tagger`]: sound-event taggers (`audio-tagger` packages) run window by window.
//! * [`speaker`]: speaker embeddings (voice prints) and per-stream speaker labels.
//! * [`perception`]: what was perceived, as it travels with each chunk: VAD windows, tagger
//!   frames, the audio kept for responders, the words heard.

pub mod perception;
pub mod speaker;
pub mod tagger;
pub mod vad;
