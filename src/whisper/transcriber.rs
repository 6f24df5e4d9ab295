//! One utterance in, text out: the log-mel window, the encoder, greedy decoding and the
//! tokenizer put together, as the respond element uses them.

use super::decode::{DecodeOptions, Guard, greedy};
use super::mel::LogMel;
use super::model::WhisperModel;
use super::tokenizer::WhisperTokenizer;
use crate::model::ModelPackage;
use crate::runtime::{Runtime, SessionInfo, SessionOptions};
use crate::{Error, Result};

/// A piece of the transcript with its times in seconds from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

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
        })
    }

    pub fn session_info(&self) -> &SessionInfo {
        self.model.session_info()
    }

    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// The language token for an ISO 639-1 code such as "en".
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.tokenizer.language(code)
    }

    /// Transcribes up to 30 s of 16 kHz mono audio.
    pub fn transcribe(&mut self, samples: &[f32], opts: &DecodeOptions) -> Result<Transcript> {
        let frames = self.model.params().n_frames();
        let mel = self.mel.compute_padded_30s(samples);
        if mel.len() != self.model.params().n_mels * frames {
            return Err(Error::InvalidArgument(format!(
                "log-mel window has {} values, the model wants {} x {frames}",
                mel.len(),
                self.model.params().n_mels
            )));
        }
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
