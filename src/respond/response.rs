//! Responses and the responders that produce them. Every kind of response — the turn-end
//! notice of the VAD loop, ASR text, alerts — goes through [`Responder`], so the respond
//! element has one path for all of them.

use crate::base::cancel::CancelFlag;
use crate::base::time::samples_to_ns;
use crate::perceive::perception::Word;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// An utterance ended; the text describes it.
    TurnEnd,
    /// Transcribed speech.
    Transcript,
    /// Something in the audio needs a reaction.
    Alert,
}

impl ResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::TurnEnd => "turn-end",
            ResponseKind::Transcript => "transcript",
            ResponseKind::Alert => "alert",
        }
    }
}

/// A finished response, timed in stream samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub kind: ResponseKind,
    pub text: String,
    pub start: u64,
    pub end: u64,
    pub rate: u32,
    pub confidence: f32,
    /// The words of the text with their times (stream samples), when the responder knows them.
    pub words: Vec<Word>,
}

impl Response {
    pub fn start_ns(&self) -> u64 {
        samples_to_ns(self.start, self.rate)
    }

    pub fn end_ns(&self) -> u64 {
        samples_to_ns(self.end, self.rate)
    }
}

/// An utterance as the decision cut it, with its audio.
#[derive(Debug, Clone, Copy)]
pub struct Utterance<'a> {
    pub start: u64,
    pub end: u64,
    pub rate: u32,
    pub audio: &'a [f32],
    /// Mean speech probability over the utterance's windows.
    pub confidence: f32,
}

impl Utterance<'_> {
    /// The transcript response for this utterance from the texts of its windows, or None when
    /// nothing was said in any of them.
    pub fn transcript(
        &self,
        texts: Vec<String>,
        words: Vec<Word>,
        confidence: f32,
    ) -> Option<Response> {
        (!texts.is_empty()).then(|| Response {
            kind: ResponseKind::Transcript,
            text: texts.join(" "),
            start: self.start,
            end: self.end,
            rate: self.rate,
            confidence,
            words,
        })
    }
}

pub trait Responder: Send {
    fn name(&self) -> &'static str;
    fn respond(&mut self, utterance: &Utterance<'_>) -> crate::Result<Option<Response>>;

    /// The flag that calls off a `respond` under way, for responders that can stop early.
    fn cancel_flag(&self) -> Option<CancelFlag> {
        None
    }

    /// Where the responder's inference server stands, for responders that use one.
    fn remote_status(&self) -> Option<crate::models::remote::RemoteStatus> {
        None
    }
}

/// Answers every turn end with a line naming the utterance's span, for pipelines that want
/// the turn-taking events themselves (and as the loop's response before ASR is plugged in).
#[derive(Debug, Default)]
pub struct TurnEndResponder;

impl Responder for TurnEndResponder {
    fn name(&self) -> &'static str {
        "turn-end"
    }

    fn respond(&mut self, u: &Utterance<'_>) -> crate::Result<Option<Response>> {
        let secs = |s: u64| s as f64 / u.rate.max(1) as f64;
        let text = format!(
            "[speech {:.2}s-{:.2}s, {:.2}s]",
            secs(u.start),
            secs(u.end),
            secs(u.end.saturating_sub(u.start))
        );
        Ok(Some(Response {
            kind: ResponseKind::TurnEnd,
            text,
            start: u.start,
            end: u.end,
            rate: u.rate,
            confidence: u.confidence,
            words: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_end_text_and_times() {
        let audio = vec![0.0; 16000];
        let u = Utterance {
            start: 16000,
            end: 40000,
            rate: 16000,
            audio: &audio,
            confidence: 0.9,
        };
        let r = TurnEndResponder.respond(&u).unwrap().unwrap();
        assert_eq!(r.text, "[speech 1.00s-2.50s, 1.50s]");
        assert_eq!(r.start_ns(), 1_000_000_000);
        assert_eq!(r.end_ns(), 2_500_000_000);
        assert_eq!(r.kind.as_str(), "turn-end");
    }
}
