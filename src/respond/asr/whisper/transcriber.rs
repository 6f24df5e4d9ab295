//! One utterance in, text out: the log-mel window, the encoder, greedy decoding and the
//! tokenizer put together, as the respond element uses them.

use super::decode::{DecodeOptions, Guard, greedy};
use super::model::WhisperModel;
use super::tokenizer::WhisperTokenizer;
use crate::dsp::mel::LogMel;
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions};
use crate::respond::asr::Piece;
use crate::respond::asr::vocabulary::{Bias, Vocabulary};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub pieces: Vec<Piece>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub guard: Option<Guard>,
}

pub struct Transcriber {
    model: WhisperModel,
    tokenizer: WhisperTokenizer,
    mel: LogMel,
    window: Window,
}

/// How much audio the encoder sees per decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// Whisper's full 30 s window, as trained.
    Full,
    /// The audio plus `pad` seconds of silence, at least `min` seconds: far cheaper for short
    /// utterances, at a small cost in accuracy.
    Fit { pad: f32, min: f32 },
}

impl Default for Window {
    /// The audio plus 1 s of silence. With the fall back to the full window when a guard
    /// fires, on 66 espeak-ng sentences: WER 12.7 % in 23 s, against 15.0 % in 50 s for the
    /// full window alone and 14.4 % in 19 s for the audio plus 3 s.
    fn default() -> Self {
        Window::Fit { pad: 1.0, min: 0.0 }
    }
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("model", &self.model)
            .finish()
    }
}

impl Transcriber {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        let model = WhisperModel::load(pkg, rt, opts)?;
        let tokenizer = WhisperTokenizer::from_file(model.tokenizer_path()).map_err(Error::from)?;
        let mel = LogMel::new(model.params().n_mels)?;
        Ok(Self {
            model,
            tokenizer,
            mel,
            window: Window::default(),
        })
    }

    pub fn set_window(&mut self, window: Window) {
        self.window = window;
    }

    pub fn session_info(&self) -> &SessionInfo {
        self.model.session_info()
    }

    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// The token trie of a vocabulary in Whisper's tokens: every spelling of every term after a
    /// space. Whisper writes a space before every word, its first included; the spelling without
    /// one would also favour the term inside a longer word ("Inter-Asterisk" became
    /// "Interasterisk").
    pub fn bias(&self, vocab: &Vocabulary, bonus: f32) -> Result<Bias> {
        let tok = &self.tokenizer;
        let seqs = vocab
            .token_sequences(|spelling| tok.encode(&format!(" {spelling}")).map_err(Error::from))?;
        let distinctive = |id: u32| {
            tok.decode(&[id])
                .chars()
                .filter(|c| c.is_alphanumeric())
                .count()
                >= 3
        };
        Ok(Bias::new(&seqs, bonus, distinctive))
    }

    /// The language token for an ISO 639-1 code such as "en".
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.tokenizer.language(code)
    }

    /// Transcribes up to 30 s of 16 kHz mono audio. A fitted window whose decode trips a
    /// hallucination guard is decoded again in the full window, as Whisper was trained.
    pub fn transcribe(&mut self, samples: &[f32], opts: &DecodeOptions) -> Result<Transcript> {
        let first = self.transcribe_in(samples, opts, self.window)?;
        let retry = matches!(
            first.guard,
            Some(
                Guard::RepeatedNgram
                    | Guard::RepeatedSpan
                    | Guard::CompressionRatio
                    | Guard::TokenCap
            )
        );
        if retry && self.window != Window::Full {
            return self.transcribe_in(samples, opts, Window::Full);
        }
        Ok(first)
    }

    fn transcribe_in(
        &mut self,
        samples: &[f32],
        opts: &DecodeOptions,
        window: Window,
    ) -> Result<Transcript> {
        let full = self.model.params().n_frames();
        let n_mels = self.model.params().n_mels;
        let mel = self.mel.compute_padded_30s(samples);
        if mel.len() != n_mels * full {
            return Err(Error::InvalidArgument(format!(
                "log-mel window has {} values, the model wants {n_mels} x {full}",
                mel.len()
            )));
        }
        let frames = match window {
            Window::Full => full,
            Window::Fit { pad, min } => {
                let secs = (samples.len() as f32 / 16000.0 + pad).max(min);
                // Whole encoder positions: an even number of frames.
                (((secs * 100.0).ceil() as usize).div_ceil(2) * 2).clamp(2, full)
            }
        };
        let mel: Vec<f32> = if frames == full {
            mel
        } else {
            mel.chunks_exact(full)
                .flat_map(|row| &row[..frames])
                .copied()
                .collect()
        };
        let cross = self.model.encode(&mel, frames)?;
        let tokenizer = &self.tokenizer;
        let d = greedy(&mut self.model, &cross, opts, &|t| tokenizer.decode(t))?;
        let pieces = d
            .segments
            .iter()
            .map(|s| Piece {
                start: s.start,
                end: s.end,
                text: tokenizer.decode(&s.tokens).trim().to_string(),
            })
            .filter(|p| !p.text.is_empty())
            .collect();
        Ok(Transcript {
            text: tokenizer.decode(&d.text_tokens).trim().to_string(),
            pieces,
            avg_logprob: d.avg_logprob,
            no_speech_prob: d.no_speech_prob,
            guard: d.guard,
        })
    }
}
