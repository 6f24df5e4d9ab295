//! Greedy Whisper decoding of one window, with the rules that keep it honest: language and
//! task tokens, suppressed tokens, timestamp tokens in well-formed pairs, a no-speech gate,
//! and guards against hallucinated repetition (repeated n-grams, compression ratio, a token
//! cap per window).

use std::io::Write;

use super::model::{CrossKv, WhisperModel, WhisperParams};
use crate::Result;
use crate::respond::asr::vocabulary::{Bias, BiasState};

/// Seconds per timestamp token step.
pub const TIME_PRECISION: f32 = 0.02;

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Language token; `None` means English.
    pub language: Option<u32>,
    pub timestamps: bool,
    /// Most tokens sampled for one window.
    pub max_tokens: usize,
    /// A window whose no-speech probability is above this, with a mean log-probability
    /// below `logprob_threshold`, is silence.
    pub no_speech_threshold: f32,
    pub logprob_threshold: f32,
    /// A window whose no-speech probability is above this is silence whatever the text's
    /// log-probability: an always-on loop must not caption silence ("you", "Thank you.").
    pub no_speech_hard_threshold: f32,
    /// Text that compresses better than this (gzip ratio) is a repetition loop.
    pub compression_ratio_threshold: f32,
    /// An n-gram of this many tokens repeated `max_ngram_repeats` times in a row stops decoding.
    pub ngram: usize,
    pub max_ngram_repeats: usize,
    /// Latest first timestamp, in seconds.
    pub max_initial_timestamp: f32,
    /// Checked before each token: once set, decoding stops with [`crate::Error::Cancelled`].
    pub cancel: crate::base::cancel::CancelFlag,
    /// A vocabulary's terms to favour (see [`crate::respond::asr::vocabulary`]).
    pub bias: Option<std::sync::Arc<Bias>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            language: None,
            timestamps: true,
            max_tokens: 224,
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            no_speech_hard_threshold: 0.9,
            compression_ratio_threshold: 2.4,
            ngram: 3,
            max_ngram_repeats: 3,
            max_initial_timestamp: 1.0,
            cancel: Default::default(),
            bias: None,
        }
    }
}

/// Why a decode was cut short or thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    NoSpeech,
    RepeatedNgram,
    /// A long span said twice in a row; the copy was dropped and the text kept.
    RepeatedSpan,
    CompressionRatio,
    TokenCap,
}

/// Text between two timestamp tokens, times relative to the window start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedText {
    pub start: f32,
    pub end: f32,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Sampled tokens after the prompt, timestamps included, end-of-text excluded.
    pub tokens: Vec<u32>,
    /// Text tokens only.
    pub text_tokens: Vec<u32>,
    pub segments: Vec<TimedText>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    /// Set when a guard fired; `NoSpeech` and `CompressionRatio` mean the text is empty.
    pub guard: Option<Guard>,
}

/// The prompt: start of transcript, language, task, and no-timestamps if asked.
pub fn prompt(p: &WhisperParams, opts: &DecodeOptions) -> Vec<u32> {
    let mut v = vec![p.sot, opts.language.unwrap_or(p.lang_en), p.transcribe];
    if !opts.timestamps {
        v.push(p.no_timestamps);
    }
    v
}

fn log_softmax(x: &[f32], out: &mut Vec<f32>) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    out.clear();
    out.extend(x.iter().map(|v| v - lse));
}

/// Tokens never sampled: the manifest's list plus the task and control tokens.
fn suppressed(p: &WhisperParams) -> Vec<u32> {
    let mut s = p.suppress_tokens.clone();
    s.extend([
        p.transcribe,
        p.translate,
        p.sot,
        p.no_speech,
        p.sot_prev,
        p.sot_lm,
    ]);
    s.retain(|t| (*t as usize) < p.n_vocab && *t != p.eot);
    s.sort_unstable();
    s.dedup();
    s
}

/// Applies Whisper's timestamp rules to `logits` for the next token after `sampled`.
fn timestamp_rules(p: &WhisperParams, opts: &DecodeOptions, sampled: &[u32], logits: &mut [f32]) {
    let ts = p.timestamp_begin as usize;
    let n = logits.len();
    logits[p.no_timestamps as usize] = f32::NEG_INFINITY;
    let last_ts = sampled.last().is_some_and(|t| *t >= p.timestamp_begin);
    let penult_ts = sampled.len() < 2 || sampled[sampled.len() - 2] >= p.timestamp_begin;
    if last_ts {
        if penult_ts {
            // A pair just closed: text must follow.
            logits[ts..n]
                .iter_mut()
                .for_each(|v| *v = f32::NEG_INFINITY);
        } else {
            // An opening timestamp: another timestamp or the end must follow.
            logits[..p.eot as usize]
                .iter_mut()
                .for_each(|v| *v = f32::NEG_INFINITY);
        }
    }
    // Time never goes backwards.
    if let Some(last) = sampled.iter().rev().find(|t| **t >= p.timestamp_begin) {
        let floor = if last_ts && !penult_ts {
            *last as usize
        } else {
            *last as usize + 1
        };
        let floor = floor.min(n);
        logits[ts..floor]
            .iter_mut()
            .for_each(|v| *v = f32::NEG_INFINITY);
    }
    if sampled.is_empty() {
        // The first token is a timestamp, and not a late one.
        logits[..ts].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        let last_allowed = ts + (opts.max_initial_timestamp / TIME_PRECISION).round() as usize;
        if last_allowed + 1 < n {
            logits[last_allowed + 1..]
                .iter_mut()
                .for_each(|v| *v = f32::NEG_INFINITY);
        }
    }
    // When timestamps together are likelier than any text token, take a timestamp.
    let mut lp = Vec::with_capacity(n);
    log_softmax(logits, &mut lp);
    let ts_lse = {
        let m = lp[ts..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if m.is_finite() {
            m + lp[ts..].iter().map(|v| (v - m).exp()).sum::<f32>().ln()
        } else {
            f32::NEG_INFINITY
        }
    };
    let text_max = lp[..ts].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if ts_lse > text_max {
        logits[..ts].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
    }
}

/// gzip compression ratio of `text`, as Whisper measures repetitiveness.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    if enc.write_all(text.as_bytes()).is_err() {
        return 0.0;
    }
    match enc.finish() {
        Ok(z) if !z.is_empty() => text.len() as f32 / z.len() as f32,
        _ => 0.0,
    }
}

/// Shortest span that, repeated back to back twice at the end, is a hallucinated loop rather
/// than speech ("very very" is speech; a repeated clause is not).
pub const LOOP_SPAN: usize = 5;

/// If `tokens` ends with a span of at least [`LOOP_SPAN`] tokens said twice in a row, the
/// length of the second copy.
pub fn repeated_tail(tokens: &[u32]) -> Option<usize> {
    (LOOP_SPAN..=tokens.len() / 2).find(|&len| {
        let n = tokens.len();
        tokens[n - len..] == tokens[n - 2 * len..n - len]
    })
}

/// Whether the last `n`-gram of `tokens` repeats `times` times back to back at its end.
pub fn ends_in_repetition(tokens: &[u32], n: usize, times: usize) -> bool {
    if n == 0 || times < 2 {
        return false;
    }
    (1..=n).any(|len| {
        let need = len * times;
        if tokens.len() < need {
            return false;
        }
        let tail = &tokens[tokens.len() - need..];
        let unit = &tail[..len];
        tail.chunks(len).all(|c| c == unit)
    })
}

/// Decodes one encoded window greedily. `text_of` turns text tokens into text (for the
/// compression-ratio guard).
pub fn greedy(
    model: &mut WhisperModel,
    cross: &CrossKv,
    opts: &DecodeOptions,
    text_of: &dyn Fn(&[u32]) -> String,
) -> Result<Decoded> {
    let p = model.params().clone();
    let suppress = suppressed(&p);
    let prompt = prompt(&p, opts);
    let mut cache = model.new_cache();
    let logits = model.decode(&prompt, &mut cache, cross)?;
    let nv = p.n_vocab;
    let mut lp = Vec::with_capacity(nv);
    // No-speech probability: at the start-of-transcript position.
    log_softmax(&logits[..nv], &mut lp);
    let no_speech_prob = lp.get(p.no_speech as usize).map(|v| v.exp()).unwrap_or(0.0);
    let mut next = logits[(prompt.len() - 1) * nv..prompt.len() * nv].to_vec();
    let mut sampled: Vec<u32> = Vec::new();
    let mut sum_lp = 0.0f32;
    let mut guard = None;
    let mut biased = BiasState::default();
    let mut biased_scores = Vec::new();
    let cap = opts
        .max_tokens
        .min(p.n_text_ctx.saturating_sub(prompt.len() + 1));
    loop {
        for t in &suppress {
            next[*t as usize] = f32::NEG_INFINITY;
        }
        if sampled.is_empty() {
            // No blank or immediate end as the first text.
            for t in &p.suppress_tokens_begin {
                if let Some(v) = next.get_mut(*t as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        if opts.timestamps {
            timestamp_rules(&p, opts, &sampled, &mut next);
        }
        log_softmax(&next, &mut lp);
        // A vocabulary picks among the biased scores; the log-probability kept for the
        // no-speech gate is the model's own.
        let scores = match &opts.bias {
            Some(b) => {
                biased_scores.clear();
                biased_scores.extend_from_slice(&lp);
                b.boost(&biased, &mut biased_scores);
                &biased_scores
            }
            None => &lp,
        };
        let tok = scores
            .iter()
            .enumerate()
            .fold((p.eot as usize, f32::NEG_INFINITY), |acc, (i, v)| {
                if *v > acc.1 { (i, *v) } else { acc }
            })
            .0;
        let best = lp.get(tok).copied().unwrap_or(f32::NEG_INFINITY);
        let tok = tok as u32;
        if tok == p.eot || !best.is_finite() {
            break;
        }
        sum_lp += best;
        sampled.push(tok);
        // Timestamps may fall between a term's words; they neither advance nor break it.
        if let Some(b) = &opts.bias
            && tok < p.eot
        {
            b.advance(&mut biased, tok);
        }
        if ends_in_repetition(&sampled, opts.ngram, opts.max_ngram_repeats) {
            guard = Some(Guard::RepeatedNgram);
            break;
        }
        let text_only: Vec<u32> = sampled.iter().copied().filter(|t| *t < p.eot).collect();
        if let Some(len) = repeated_tail(&text_only) {
            // Drop the second copy (and anything sampled with it) and stop: the first copy
            // is what was said.
            let mut to_drop = len;
            while to_drop > 0 {
                match sampled.pop() {
                    Some(t) if t < p.eot => to_drop -= 1,
                    Some(_) => {}
                    None => break,
                }
            }
            guard = Some(Guard::RepeatedSpan);
            break;
        }
        if sampled.len() >= cap {
            guard = Some(Guard::TokenCap);
            break;
        }
        if opts.cancel.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        next = model.decode(&[tok], &mut cache, cross)?;
    }
    let avg_logprob = if sampled.is_empty() {
        0.0
    } else {
        sum_lp / (sampled.len() + 1) as f32
    };
    let text_tokens: Vec<u32> = sampled.iter().copied().filter(|t| *t < p.eot).collect();
    if (no_speech_prob > opts.no_speech_threshold && avg_logprob < opts.logprob_threshold)
        || no_speech_prob > opts.no_speech_hard_threshold
    {
        guard = Some(Guard::NoSpeech);
    }
    if guard.is_none()
        && compression_ratio(&text_of(&text_tokens)) > opts.compression_ratio_threshold
    {
        guard = Some(Guard::CompressionRatio);
    }
    let segments = if opts.timestamps {
        timed_segments(&p, &sampled)
    } else {
        Vec::new()
    };
    let empty = matches!(guard, Some(Guard::NoSpeech | Guard::CompressionRatio));
    Ok(Decoded {
        tokens: if empty { Vec::new() } else { sampled },
        text_tokens: if empty { Vec::new() } else { text_tokens },
        segments: if empty { Vec::new() } else { segments },
        avg_logprob,
        no_speech_prob,
        guard,
    })
}

/// Splits sampled tokens at timestamp pairs into timed pieces.
pub fn timed_segments(p: &WhisperParams, sampled: &[u32]) -> Vec<TimedText> {
    let time = |t: u32| (t - p.timestamp_begin) as f32 * TIME_PRECISION;
    let mut out = Vec::new();
    let mut start: Option<f32> = None;
    let mut text = Vec::new();
    for &t in sampled {
        if t >= p.timestamp_begin {
            match start {
                None => start = Some(time(t)),
                Some(s) => {
                    if !text.is_empty() {
                        out.push(TimedText {
                            start: s,
                            end: time(t),
                            tokens: std::mem::take(&mut text),
                        });
                    }
                    start = None;
                }
            }
        } else if t < p.eot {
            text.push(t);
        }
    }
    if !text.is_empty() {
        out.push(TimedText {
            start: start.unwrap_or(0.0),
            end: start.unwrap_or(0.0),
            tokens: text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clause_said_twice_is_a_loop() {
        let said = [10, 11, 12, 13, 14, 15];
        let mut twice = said.to_vec();
        twice.extend_from_slice(&said);
        assert_eq!(repeated_tail(&twice), Some(6));
        assert_eq!(repeated_tail(&[1, 2, 1, 2]), None);
        assert_eq!(repeated_tail(&said), None);
    }

    #[test]
    fn repetition_is_found_at_the_end_only() {
        assert!(ends_in_repetition(&[5, 1, 2, 1, 2, 1, 2], 3, 3));
        assert!(ends_in_repetition(&[7, 7, 7], 3, 3));
        assert!(!ends_in_repetition(&[1, 2, 1, 2, 1, 3], 3, 3));
        assert!(!ends_in_repetition(&[1, 2, 3, 4, 5, 6], 3, 3));
    }

    #[test]
    fn compression_ratio_flags_loops() {
        let normal = "the weather today is sunny with a light breeze from the west";
        let looped = "thank you. ".repeat(20);
        assert!(compression_ratio(normal) < 2.4);
        assert!(compression_ratio(&looped) > 2.4);
    }
}
