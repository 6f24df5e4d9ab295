//! Whisper as a responder: an utterance's audio in, its transcript with word times out.

use super::decode::DecodeOptions;
use super::transcriber::Transcriber;
use crate::Result;
use crate::respond::asr::vocabulary::Vocabulary;
use crate::respond::asr::{piece_words, windows};
use crate::respond::response::{Responder, Response, Utterance};

pub struct WhisperResponder {
    transcriber: Transcriber,
    opts: DecodeOptions,
}

impl WhisperResponder {
    pub fn new(transcriber: Transcriber, opts: DecodeOptions) -> Self {
        Self { transcriber, opts }
    }

    pub fn transcriber(&self) -> &Transcriber {
        &self.transcriber
    }

    /// Favours `vocab`'s terms from now on (None: no vocabulary).
    pub fn set_vocabulary(&mut self, vocab: Option<&Vocabulary>, bonus: f32) -> Result<()> {
        self.opts.bias = match vocab {
            Some(v) => Some(std::sync::Arc::new(self.transcriber.bias(v, bonus)?)),
            None => None,
        };
        Ok(())
    }
}

impl Responder for WhisperResponder {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn cancel_flag(&self) -> Option<crate::base::cancel::CancelFlag> {
        Some(self.opts.cancel.clone())
    }

    fn respond(&mut self, u: &Utterance<'_>) -> Result<Option<Response>> {
        // The scheduler keeps jobs within the window; audio longer than that is decoded
        // window by window rather than cut, so nothing heard goes unanswered.
        let base = u.end.saturating_sub(u.audio.len() as u64);
        let mut text = Vec::new();
        let mut words = Vec::new();
        let mut confidence = Vec::new();
        for (origin, audio) in windows(u.audio, u.rate) {
            let tr = self.transcriber.transcribe(audio, &self.opts)?;
            if tr.text.is_empty() {
                continue;
            }
            words.extend(piece_words(
                &tr.pieces,
                base + origin,
                u.rate,
                audio.len() as u64,
            ));
            text.push(tr.text);
            confidence.push(tr.avg_logprob.exp());
        }
        let mean = confidence.iter().sum::<f32>() / confidence.len().max(1) as f32;
        Ok(u.transcript(text, words, mean))
    }
}
