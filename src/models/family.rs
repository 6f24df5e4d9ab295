//! The model families, by the `family` a package's manifest names. A family's code (in
//! `perceive`, `decide` or `respond`) refers to its name here, so the package loader can tell
//! families apart without depending on the code that runs them.

/// Silero VAD (`perceive::vad`).
pub const SILERO_VAD: &str = "silero-vad";
/// Sound-event taggers (`perceive::tagger`).
pub const AUDIO_TAGGER: &str = "audio-tagger";
/// Speaker embedders (`perceive::speaker`): a voice print per utterance.
pub const SPEAKER_EMBEDDING: &str = "speaker-embedding";
/// The smart-turn end-of-turn model (`decide::turn`).
pub const TURN_DETECTOR: &str = "turn-detector";
/// The learned respond/silent decision head (`decide::head`): tagger scores in, a
/// probability per chunk out.
pub const DECISION_HEAD: &str = "decision-head";
/// Whisper ASR (`respond::asr::whisper`).
pub const WHISPER: &str = "whisper";
/// Moonshine ASR (`respond::asr::moonshine`).
pub const MOONSHINE: &str = "moonshine";
/// The interaction language model (`respond::assistant::interaction`).
pub const INTERACTION: &str = "interaction-model";

/// Whether packages of `family` take audio, and so must declare a sample rate.
pub fn takes_audio(family: &str) -> bool {
    family != INTERACTION && family != DECISION_HEAD
}
