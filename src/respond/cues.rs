//! From decode results to cues: partial cues committed by agreement (never retracted), a
//! final cue per utterance, and nothing from a decode made before the last flush.
//!
//! A cue carries all the words committed for its utterance so far (a rolling caption) and
//! says which of them are new, so the element can stamp the cue at the start of its newest
//! material, or send one item per new word.

use crate::perceive::perception::Word;
use crate::respond::response::{Response, ResponseKind};
use crate::respond::schedule::Job;
use crate::respond::streaming::LocalAgreement;

/// One cue to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub is_final: bool,
    pub kind: ResponseKind,
    /// The words of the cue joined by spaces (or the responder's text when it has no words).
    pub text: String,
    /// Span of the cue's audio, stream samples.
    pub start: u64,
    pub end: u64,
    pub rate: u32,
    pub confidence: f32,
    /// All words committed for the utterance so far, in order.
    pub words: Vec<Word>,
    /// Index of the first word not yet shown (see [`CueMaker::mark_shown`]).
    pub fresh_from: usize,
}

impl Cue {
    /// The words this cue adds to what was shown.
    pub fn fresh(&self) -> &[Word] {
        &self.words[self.fresh_from.min(self.words.len())..]
    }

    /// Where the cue's newest material begins: its start when nothing of the utterance was
    /// shown yet, else its first new word, else the end of its last word.
    pub fn fresh_start(&self) -> u64 {
        if self.fresh_from == 0 {
            return self.start;
        }
        self.fresh()
            .first()
            .map(|w| w.start)
            .or_else(|| self.words.last().map(|w| w.end))
            // Word times are the model's guess: one at or past the end would make an empty
            // cue outside its utterance, so the newest words start before the end.
            .map_or(self.start, |t| {
                t.clamp(self.start, self.end.saturating_sub(1).max(self.start))
            })
    }
}

pub fn join_words(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Default)]
pub struct CueMaker {
    agreement: LocalAgreement,
    generation: u64,
    finals: u64,
    /// Words of the utterance under way that reached the text stream.
    shown: usize,
    /// Where the audio after the last seal of the utterance under way begins.
    from: Option<u64>,
}

impl CueMaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A flush: what is decoded for an earlier generation is dropped from now on.
    pub fn flush(&mut self, generation: u64) {
        self.generation = generation;
        self.agreement.reset();
        self.shown = 0;
        self.from = None;
    }

    /// The first `n` words of the utterance under way were sent on the text stream (a partial
    /// cue that was only posted on the bus does not count).
    pub fn mark_shown(&mut self, n: usize) {
        self.shown = self.shown.max(n);
    }

    /// Whether a job of `generation` still belongs to the stream.
    pub fn is_current(&self, generation: u64) -> bool {
        generation == self.generation
    }

    /// Final cues made since creation.
    pub fn finals(&self) -> u64 {
        self.finals
    }

    /// The cue a decode of `job` gives, if any. Stale jobs give nothing.
    pub fn take(&mut self, job: &Job, response: Option<Response>) -> Option<Cue> {
        if !self.is_current(job.generation) {
            return None;
        }
        if job.is_final {
            self.take_final(job, response)
        } else if job.from != self.from.unwrap_or(job.start) {
            // A decode that does not continue what was sealed (one made before a seal and
            // answered after it): its words would be read against the wrong audio.
            None
        } else if job.seals {
            self.take_seal(job, response)
        } else {
            self.take_partial(job, response)
        }
    }

    fn take_seal(&mut self, job: &Job, response: Option<Response>) -> Option<Cue> {
        self.from = Some(job.end);
        let r = response.filter(|r| r.kind == ResponseKind::Transcript)?;
        let fresh = self.agreement.seal(r.words);
        self.partial_cue(job, &fresh, r.confidence)
    }

    fn take_partial(&mut self, job: &Job, response: Option<Response>) -> Option<Cue> {
        let mut r = response?;
        if let Some(p) = job.pause_from {
            r.words.retain(|w| w.start < p);
        }
        let fresh = self.agreement.offer(r.words);
        self.partial_cue(job, &fresh, r.confidence)
    }

    /// The partial cue of everything committed so far, when `fresh` words were just committed.
    fn partial_cue(&self, job: &Job, fresh: &[Word], confidence: f32) -> Option<Cue> {
        if fresh.is_empty() {
            return None;
        }
        let words = self.agreement.committed().to_vec();
        // Word times are the model's guess and may run past the audio it was given.
        let end = words.last().map_or(job.end, |w| w.end.min(job.end));
        Some(Cue {
            is_final: false,
            kind: ResponseKind::Transcript,
            text: join_words(&words),
            start: job.start,
            end: end.max(job.start),
            rate: job.rate,
            confidence,
            words,
            fresh_from: self.shown,
        })
    }

    fn take_final(&mut self, job: &Job, response: Option<Response>) -> Option<Cue> {
        let before = self.shown;
        let cue = match response {
            Some(r) if r.kind == ResponseKind::Transcript => {
                self.agreement.finish(r.words);
                let words = self.agreement.committed().to_vec();
                (!words.is_empty()).then(|| Cue {
                    is_final: true,
                    kind: r.kind,
                    text: join_words(&words),
                    start: job.start,
                    end: job.end,
                    rate: job.rate,
                    confidence: r.confidence,
                    words,
                    fresh_from: before,
                })
            }
            Some(r) => Some(Cue {
                is_final: true,
                kind: r.kind,
                text: r.text,
                start: job.start,
                end: job.end,
                rate: job.rate,
                confidence: r.confidence,
                words: Vec::new(),
                fresh_from: 0,
            }),
            None => {
                // Nothing said after all: whatever partials showed stays shown.
                let words = self.agreement.committed().to_vec();
                (!words.is_empty()).then(|| Cue {
                    is_final: true,
                    kind: ResponseKind::Transcript,
                    text: join_words(&words),
                    start: job.start,
                    end: job.end,
                    rate: job.rate,
                    confidence: job.confidence,
                    fresh_from: before,
                    words,
                })
            }
        };
        self.agreement.reset();
        self.shown = 0;
        self.from = None;
        if cue.is_some() {
            self.finals += 1;
        }
        cue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(generation: u64, is_final: bool) -> Job {
        Job {
            generation,
            is_final,
            start: 0,
            from: 0,
            end: 1000,
            rate: 16000,
            audio: Vec::new(),
            confidence: 0.9,
            speculative: false,
            reuses: None,
            pause_from: None,
            seals: false,
        }
    }

    #[test]
    fn a_sealed_phrase_is_shown_whole_and_the_rest_continues_it() {
        let mut m = CueMaker::new();
        m.take(&job(0, false), response("good morning"));
        let mut seal = job(0, false);
        seal.seals = true;
        seal.end = 400;
        let c = m
            .take(&seal, response("good morning everyone"))
            .expect("a cue");
        assert!(!c.is_final);
        assert_eq!(c.text, "good morning everyone");
        let tail = |is_final| Job {
            from: 400,
            ..job(0, is_final)
        };
        // A decode made before the seal and answered after it is not read as the rest.
        assert!(m.take(&job(0, false), response("x y")).is_none());
        assert!(m.take(&tail(false), response("thanks for")).is_none());
        let c = m
            .take(&tail(false), response("thanks for joining"))
            .expect("agreed words");
        assert_eq!(c.text, "good morning everyone thanks for");
        let f = m
            .take(&tail(true), response("thanks for joining."))
            .expect("final");
        assert_eq!(f.text, "good morning everyone thanks for joining.");
        assert_eq!((f.start, f.end), (0, 1000));
        // The next utterance starts from nothing sealed.
        let f = m.take(&job(0, true), response("bye")).expect("final");
        assert_eq!(f.text, "bye");
    }

    /// Words a speculative decode places in the pause were heard in silence: a partial never
    /// shows them, so the text stream never runs past where the turn then ends.
    #[test]
    fn a_speculative_decode_shows_nothing_from_its_pause() {
        let mut m = CueMaker::new();
        m.take(&job(0, false), response("one two three"));
        let mut spec = job(0, false);
        spec.speculative = true;
        spec.pause_from = Some(150);
        let cue = m
            .take(&spec, response("one two three four"))
            .expect("a partial");
        assert_eq!(cue.text, "one two");
        assert!(cue.words.iter().all(|w| w.start < 150), "{:?}", cue.words);
    }

    fn response(text: &str) -> Option<Response> {
        let words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                text: w.into(),
                start: i as u64 * 100,
                end: i as u64 * 100 + 90,
            })
            .collect();
        Some(Response {
            kind: ResponseKind::Transcript,
            text: text.into(),
            start: 0,
            end: 1000,
            rate: 16000,
            confidence: 0.8,
            words,
        })
    }

    #[test]
    fn partials_commit_by_agreement_and_the_final_adds_the_rest() {
        let mut m = CueMaker::new();
        assert!(m.take(&job(0, false), response("the whether")).is_none());
        let c = m
            .take(&job(0, false), response("the weather is"))
            .expect("agreed word");
        assert_eq!(c.text, "the");
        assert_eq!(c.fresh_start(), 0);
        m.mark_shown(c.words.len());
        let c = m
            .take(&job(0, false), response("the weather is fine"))
            .expect("agreed words");
        assert_eq!(c.text, "the weather is");
        assert_eq!(c.fresh_from, 1);
        assert_eq!(c.fresh_start(), 100);
        m.mark_shown(c.words.len());
        let f = m
            .take(&job(0, true), response("the weather is fine today"))
            .expect("final");
        assert!(f.is_final);
        assert_eq!(f.text, "the weather is fine today");
        assert_eq!(
            f.fresh()
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>(),
            ["fine", "today"]
        );
        assert_eq!(m.finals(), 1);
        // Partials that were not shown (finals only): the final starts at the utterance.
        m.take(&job(0, false), response("a b"));
        m.take(&job(0, false), response("a b c"));
        let f = m.take(&job(0, true), response("a b c d")).expect("final");
        assert_eq!((f.fresh_from, f.fresh_start()), (0, 0));
    }

    #[test]
    fn a_decode_from_before_a_flush_gives_nothing() {
        let mut m = CueMaker::new();
        m.take(&job(0, false), response("hello there"));
        m.flush(1);
        assert!(m.take(&job(0, false), response("hello there")).is_none());
        assert!(m.take(&job(0, true), response("hello there")).is_none());
        assert_eq!(m.finals(), 0);
        // The new generation starts from nothing committed.
        let f = m.take(&job(1, true), response("good day")).expect("final");
        assert_eq!(f.text, "good day");
        assert_eq!(f.fresh_from, 0);
    }

    #[test]
    fn an_empty_final_keeps_what_partials_showed() {
        let mut m = CueMaker::new();
        m.take(&job(0, false), response("one two"));
        m.take(&job(0, false), response("one two three"));
        m.mark_shown(2);
        let f = m.take(&job(0, true), None).expect("final");
        assert_eq!(f.text, "one two");
        assert!(f.fresh().is_empty());
        assert_eq!(f.fresh_start(), 190);
    }
}
