//! Speech recognition: the responders that turn an utterance's audio into a transcript with
//! word times, and what they share.
//!
//! * [`whisper`]: Whisper: tokenizer, encoder-decoder model with KV cache, greedy decoding.
//! * [`moonshine`]: Moonshine, whose compute grows with the audio.
//! * [`vocabulary`]: terms the decoder favours (contextual biasing over a token trie).
//!
//! Both cut long audio into [`windows`] of at most [`MAX_SECONDS`] and spread each decoded
//! [`Piece`]'s time over its words with [`piece_words`].

pub mod moonshine;
pub mod vocabulary;
pub mod whisper;

use crate::perceive::perception::Word;

/// Longest audio one decode takes: Whisper's window.
pub const MAX_SECONDS: f32 = 30.0;

/// A piece of the transcript with its times in seconds from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

/// Words of the pieces, each piece's time shared among its words by their length, in stream
/// samples from `origin`.
pub fn piece_words(pieces: &[Piece], origin: u64, rate: u32, audio_len: u64) -> Vec<Word> {
    let at = |secs: f32| (origin + (secs.max(0.0) * rate as f32) as u64).min(origin + audio_len);
    let mut out = Vec::new();
    for p in pieces {
        let words: Vec<&str> = p.text.split_whitespace().collect();
        let chars: usize = words.iter().map(|w| w.chars().count()).sum();
        let (s, e) = (at(p.start), at(p.end.max(p.start)));
        let span = e.saturating_sub(s);
        let mut done = 0usize;
        for w in words {
            let n = w.chars().count();
            let ws = s + span * done as u64 / chars.max(1) as u64;
            done += n;
            let we = s + span * done as u64 / chars.max(1) as u64;
            out.push(Word {
                text: w.to_string(),
                start: ws,
                end: we.max(ws),
            });
        }
    }
    out
}

/// The audio cut into consecutive pieces of at most [`MAX_SECONDS`], each with its offset.
pub fn windows(audio: &[f32], rate: u32) -> impl Iterator<Item = (u64, &[f32])> {
    let max = ((MAX_SECONDS * rate as f32) as usize).max(1);
    audio
        .chunks(max)
        .enumerate()
        .map(move |(i, a)| ((i * max) as u64, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_longer_than_the_window_is_decoded_in_windows() {
        let audio = vec![0.0f32; 45 * 16000];
        let w: Vec<(u64, usize)> = windows(&audio, 16000).map(|(o, a)| (o, a.len())).collect();
        assert_eq!(w, vec![(0, 30 * 16000), (30 * 16000, 15 * 16000)]);
        assert_eq!(windows(&audio[..16000], 16000).count(), 1);
    }

    #[test]
    fn words_share_their_piece_time_by_length() {
        let pieces = vec![Piece {
            start: 1.0,
            end: 2.0,
            text: "ab abcd ab".into(),
        }];
        let w = piece_words(&pieces, 16000, 16000, 48000);
        let spans: Vec<(u64, u64)> = w.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(spans, vec![(32000, 36000), (36000, 44000), (44000, 48000)]);
    }
}
