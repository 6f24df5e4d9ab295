//! Streaming agreement: while an utterance goes on it is decoded again and again, and only
//! what two consecutive hypotheses agree on is committed (LocalAgreement-2), so a committed
//! word is never taken back.
//!
//! A long utterance is decoded in segments: once a decode of its audio up to a pause is
//! [sealed](LocalAgreement::seal), later decodes hear only the audio after that pause, and
//! their hypotheses are read as continuing the sealed words. So what one decode costs depends
//! on the time since the last pause, not on how long the utterance has run.

use crate::perceive::perception::Word;

/// Words compare by their letters and digits only, so "Hello," and "hello" agree.
fn key(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct LocalAgreement {
    committed: Vec<Word>,
    previous: Vec<Word>,
    /// The first this many committed words were sealed: hypotheses start after them.
    sealed: usize,
}

impl LocalAgreement {
    pub fn new() -> Self {
        Self::default()
    }

    /// Words committed so far, in order.
    pub fn committed(&self) -> &[Word] {
        &self.committed
    }

    /// Words sealed so far (see [`Self::seal`]).
    pub fn sealed(&self) -> usize {
        self.sealed
    }

    /// The sealed words followed by a hypothesis of the audio after them.
    fn whole(&self, tail: Vec<Word>) -> Vec<Word> {
        if self.sealed == 0 {
            return tail;
        }
        let mut whole = self.committed[..self.sealed].to_vec();
        whole.extend(tail);
        whole
    }

    /// Offers a new hypothesis of the utterance after the sealed words (of all of it when
    /// nothing is sealed); returns the words it newly commits: those past the committed ones
    /// on which it agrees with the previous hypothesis.
    pub fn offer(&mut self, tail: Vec<Word>) -> Vec<Word> {
        let hypothesis = self.whole(tail);
        let n = self.committed.len();
        let mut fresh = Vec::new();
        // A hypothesis that does not start with the committed words is only kept for the next
        // comparison; what is committed stays.
        let consistent = hypothesis.len() >= n
            && hypothesis[..n]
                .iter()
                .zip(&self.committed)
                .all(|(a, b)| key(&a.text) == key(&b.text));
        if consistent {
            let agreed = hypothesis[n..]
                .iter()
                .zip(self.previous.get(n..).unwrap_or(&[]))
                .take_while(|(a, b)| key(&a.text) == key(&b.text))
                .count();
            fresh.extend(hypothesis[n..n + agreed].iter().cloned());
            self.committed.extend(fresh.iter().cloned());
        }
        self.previous = hypothesis;
        fresh
    }

    /// The final hypothesis of the utterance after the sealed words: everything it holds past
    /// the committed words is committed, provided it agrees with them; returns the newly
    /// committed words.
    pub fn finish(&mut self, tail: Vec<Word>) -> Vec<Word> {
        let last = self.whole(tail);
        let n = self.committed.len();
        let consistent = last.len() >= n
            && last[..n]
                .iter()
                .zip(&self.committed)
                .all(|(a, b)| key(&a.text) == key(&b.text));
        let fresh: Vec<Word> = if consistent {
            last[n..].to_vec()
        } else {
            // The final decode disagrees with what was already shown (a word committed from
            // audio cut inside it, "opened" for "opens"): keep what was shown and add what
            // follows the point of the final that best aligns with the end of it.
            last[aligned_end(&self.committed, &last)..].to_vec()
        };
        self.committed.extend(fresh.iter().cloned());
        self.previous.clear();
        fresh
    }

    /// A decode of the audio after the sealed words up to a pause, in an utterance that goes
    /// on: it is committed as a final would be, and later hypotheses decode only the audio
    /// after the pause. No word straddles a pause, so nothing is cut in two.
    pub fn seal(&mut self, tail: Vec<Word>) -> Vec<Word> {
        let fresh = self.finish(tail);
        self.sealed = self.committed.len();
        fresh
    }

    pub fn reset(&mut self) {
        self.committed.clear();
        self.previous.clear();
        self.sealed = 0;
    }
}

/// The number of leading words of `hyp` that best match all of `shown` (fewest word edits;
/// on a tie the longer prefix, so a substituted last word is not repeated).
fn aligned_end(shown: &[Word], hyp: &[Word]) -> usize {
    let (a, b): (Vec<String>, Vec<String>) = (
        shown.iter().map(|w| key(&w.text)).collect(),
        hyp.iter().map(|w| key(&w.text)).collect(),
    );
    // Row i: edits turning shown[..i] into hyp[..j], for every j.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, aw) in a.iter().enumerate() {
        let mut next = vec![i + 1; b.len() + 1];
        for (j, bw) in b.iter().enumerate() {
            next[j + 1] = (row[j] + usize::from(aw != bw))
                .min(row[j + 1] + 1)
                .min(next[j] + 1);
        }
        row = next;
    }
    let best = row.iter().copied().min().unwrap_or(0);
    row.iter().rposition(|&d| d == best).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Word> {
        s.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                text: w.into(),
                start: i as u64,
                end: i as u64 + 1,
            })
            .collect()
    }

    fn texts(w: &[Word]) -> Vec<&str> {
        w.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn only_agreed_prefixes_are_committed() {
        let mut la = LocalAgreement::new();
        assert!(la.offer(words("the whether")).is_empty());
        assert_eq!(texts(&la.offer(words("the weather today"))), vec!["the"]);
        assert_eq!(
            texts(&la.offer(words("the weather today is"))),
            vec!["weather", "today"]
        );
        assert!(la.offer(words("the weather today was sunny")).is_empty());
        assert_eq!(
            texts(&la.finish(words("the weather today is sunny."))),
            vec!["is", "sunny."]
        );
        assert_eq!(
            texts(la.committed()),
            vec!["the", "weather", "today", "is", "sunny."]
        );
    }

    #[test]
    fn committed_words_are_never_retracted() {
        let mut la = LocalAgreement::new();
        la.offer(words("send the report"));
        la.offer(words("send the report by"));
        assert_eq!(la.committed().len(), 3);
        // A later hypothesis that rewrites the start does not change what was committed.
        assert!(la.offer(words("spend a report by friday")).is_empty());
        assert!(la.offer(words("spend a report by friday")).is_empty());
        assert_eq!(texts(la.committed()), vec!["send", "the", "report"]);
        assert_eq!(
            texts(&la.finish(words("spend a report by friday"))),
            vec!["by", "friday"]
        );
    }

    #[test]
    fn a_final_that_rewrites_the_last_committed_word_still_adds_its_tail() {
        let mut la = LocalAgreement::new();
        // Two partials over audio cut inside "opens" agree on "opened".
        la.offer(words("The museum opened"));
        la.offer(words("The museum opened"));
        assert_eq!(la.committed().len(), 3);
        assert_eq!(
            texts(&la.finish(words("The museum opens at nine."))),
            vec!["at", "nine."]
        );
        // A word the final inserts among the shown ones is aligned over, not repeated.
        let mut la = LocalAgreement::new();
        la.offer(words("send the report"));
        la.offer(words("send the report"));
        assert_eq!(
            texts(&la.finish(words("send the quarterly report to finance"))),
            vec!["to", "finance"]
        );
    }

    #[test]
    fn after_a_seal_hypotheses_of_the_rest_continue_the_sealed_words() {
        let mut la = LocalAgreement::new();
        la.offer(words("the weather"));
        la.offer(words("the weather today"));
        assert_eq!(texts(la.committed()), vec!["the", "weather"]);
        // The decode up to the pause says more: all of it is committed.
        assert_eq!(
            texts(&la.seal(words("the weather today is fine"))),
            vec!["today", "is", "fine"]
        );
        assert_eq!(la.sealed(), 5);
        // Decodes of the audio after the pause commit by agreement as before.
        assert!(la.offer(words("and warm")).is_empty());
        assert_eq!(
            texts(&la.offer(words("and warm tomorrow"))),
            vec!["and", "warm"]
        );
        assert_eq!(
            texts(&la.finish(words("and warm tomorrow."))),
            vec!["tomorrow."]
        );
        assert_eq!(
            join(la.committed()),
            "the weather today is fine and warm tomorrow."
        );
        la.reset();
        assert_eq!(la.sealed(), 0);
        assert!(la.committed().is_empty());
    }

    #[test]
    fn a_seal_that_rewrites_a_committed_word_keeps_what_was_shown() {
        let mut la = LocalAgreement::new();
        la.offer(words("send the report"));
        la.offer(words("send the report"));
        la.seal(words("spend the report to finance"));
        assert_eq!(join(la.committed()), "send the report to finance");
        assert_eq!(la.sealed(), 5);
    }

    fn join(w: &[Word]) -> String {
        texts(w).join(" ")
    }

    #[test]
    fn punctuation_and_case_do_not_break_agreement() {
        let mut la = LocalAgreement::new();
        la.offer(words("Hello world"));
        assert_eq!(
            texts(&la.offer(words("hello, World."))),
            vec!["hello,", "World."]
        );
    }
}
