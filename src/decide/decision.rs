//! The per-window decision: is someone speaking, did a turn just start, did it just end.
//!
//! Hysteresis: speech begins when the probability reaches `threshold` and is confirmed once
//! it lasted `min_speech_ms`; it ends once the probability stayed below `neg_threshold` for
//! `min_silence_ms`. Reported boundaries are widened by `speech_pad_ms` on both sides,
//! without overlapping the previous utterance or reaching past what has been heard.
//!
//! The model's probability trails the end of speech: the silence is only detected a few
//! windows after the sound stopped. The end is therefore moved back. When the utterance
//! stands at least [`CLEAN_SNR_DB`] above the noise floor (tracked over the windows the model
//! calls silence), levels are reliable: the end is the last window (at most
//! [`END_LOOKBACK_MS`] back) standing [`END_MARGIN_DB`] above the floor and within
//! [`END_DYNAMIC_DB`] of the utterance's loudest window. In noise, where a fading tail
//! drowns, the end is placed [`NOISY_LAG_WINDOWS`] windows before the end of the last
//! window the model still called speech: in noise its probability lags the sound by that
//! much (measured on espeak-ng speech in pink noise at 10 dB SNR).

use std::collections::VecDeque;

use crate::base::time::ms_to_samples;
use crate::perceive::vad::WindowProb;

/// How far before the detected silence an utterance end may be moved back.
pub const END_LOOKBACK_MS: u32 = 256;
/// How far above the noise floor a window must be to count as the utterance's last sound.
pub const END_MARGIN_DB: f32 = 6.0;
/// A window this far below the utterance's loudest one is its fading tail, not its sound.
pub const END_DYNAMIC_DB: f32 = 30.0;
/// Utterance-to-floor distance from which levels, not probabilities, place the end.
pub const CLEAN_SNR_DB: f32 = 35.0;
/// Quiet windows an onset may contain (the closure of a stop consonant) when its start is
/// moved back.
pub const ONSET_GAP_WINDOWS: usize = 2;
/// How many windows the model's probability trails the end of speech in noise.
pub const NOISY_LAG_WINDOWS: u64 = 3;
/// Weight of each new silent window in the noise-floor estimate.
const FLOOR_ALPHA: f32 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionConfig {
    pub threshold: f32,
    pub neg_threshold: f32,
    pub min_speech_ms: u32,
    pub min_silence_ms: u32,
    pub speech_pad_ms: u32,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 500,
            speech_pad_ms: 30,
        }
    }
}

impl DecisionConfig {
    pub fn validate(&self) -> crate::Result<()> {
        if !(0.0..=1.0).contains(&self.threshold) || !(0.0..=1.0).contains(&self.neg_threshold) {
            return Err(crate::Error::InvalidArgument(
                "thresholds must lie between 0 and 1".into(),
            ));
        }
        if self.neg_threshold > self.threshold {
            return Err(crate::Error::InvalidArgument(format!(
                "the off threshold ({}) must not exceed the on threshold ({})",
                self.neg_threshold, self.threshold
            )));
        }
        Ok(())
    }
}

/// What the decider concluded; positions are stream sample positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Speech was confirmed; it started at `start`.
    SpeechStart { start: u64 },
    /// The utterance `[start, end)` is over: the speaker's turn ended.
    TurnEnd { start: u64, end: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Silence,
    /// Above threshold, not yet for `min_speech`.
    Candidate {
        start: u64,
    },
    Speech {
        start: u64,
        silence_since: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Decider {
    cfg: DecisionConfig,
    min_speech: u64,
    min_silence: u64,
    pad: u64,
    window: u64,
    state: State,
    /// End of the last window seen.
    position: Option<u64>,
    /// Start of the last window seen: a window before it restarts the run.
    last_start: Option<u64>,
    /// Start of the stream run: no boundary is padded before it.
    origin: u64,
    /// End of the previous utterance: the next one never starts before it.
    last_end: u64,
    /// Level of what the model calls silence, in dBFS.
    noise_floor: Option<f32>,
    /// (start, level) of the last windows, for placing an end.
    recent: VecDeque<(u64, f32)>,
    lookback: u64,
    /// Level of the loudest window of the utterance under way.
    loudest: f32,
    /// Start of the last window at or above the threshold.
    last_high: Option<u64>,
}

impl Decider {
    pub fn new(cfg: DecisionConfig, rate: u32, window: usize) -> crate::Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            min_speech: ms_to_samples(cfg.min_speech_ms, rate),
            min_silence: ms_to_samples(cfg.min_silence_ms, rate),
            pad: ms_to_samples(cfg.speech_pad_ms, rate),
            window: window as u64,
            state: State::Silence,
            position: None,
            last_start: None,
            origin: 0,
            last_end: 0,
            noise_floor: None,
            recent: VecDeque::new(),
            lookback: ms_to_samples(END_LOOKBACK_MS, rate),
            loudest: crate::perceive::vad::SILENCE_DB,
            last_high: None,
        })
    }

    pub fn config(&self) -> DecisionConfig {
        self.cfg
    }

    /// Forgets the stream: after a flush or a discontinuity nothing open may carry over.
    pub fn reset(&mut self) {
        self.state = State::Silence;
        self.position = None;
        self.last_start = None;
        self.origin = 0;
        self.last_end = 0;
        self.noise_floor = None;
        self.recent.clear();
        self.loudest = crate::perceive::vad::SILENCE_DB;
        self.last_high = None;
    }

    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Where the silence of the utterance under way began, while it lasts and has not yet
    /// lasted `min_silence_ms`: the turn may be about to end.
    pub fn pause_since(&self) -> Option<u64> {
        match self.state {
            State::Speech { silence_since, .. } => silence_since,
            _ => None,
        }
    }

    /// End of the last window taken.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// Ends the turn under way now, without waiting for `min_silence_ms` (an end-of-turn
    /// model found it complete). Only during a pause: an utterance still being spoken is not
    /// cut. Its end is placed as a full silence would have placed it.
    pub fn end_turn(&mut self) -> Option<Event> {
        let pos = self.position?;
        match self.state {
            State::Speech {
                start,
                silence_since: Some(since),
            } => Some(self.close(start, since, pos)),
            _ => None,
        }
    }

    /// Start of the utterance under way, once confirmed.
    pub fn open_utterance_start(&self) -> Option<u64> {
        match self.state {
            State::Speech { start, .. } => Some(self.padded_start(start)),
            _ => None,
        }
    }

    /// No utterance reported from now on can start before this position.
    pub fn settled_until(&self) -> u64 {
        let Some(pos) = self.position else {
            return self.origin;
        };
        // A start found at the next window may be moved back by up to the look-back to
        // where its sound began, and by the noise floor as it is then: never settle inside it.
        let next = self.padded_start(pos.saturating_sub(self.lookback));
        match self.state {
            State::Silence => next,
            // The candidate may yet fall back to silence, and the next one start before it.
            State::Candidate { start } => self.padded_start(start).min(next),
            State::Speech { start, .. } => self.padded_start(start),
        }
    }

    fn padded_start(&self, start: u64) -> u64 {
        start
            .saturating_sub(self.pad)
            .max(self.last_end)
            .max(self.origin)
    }

    /// Takes the next window. A window that starts before the previous one (positions went
    /// back without the discontinuity on which the caller resets) restarts the run: what was
    /// open closes where it was last heard, and that is the event returned; the window then
    /// opens the new run, its own speech confirmed from the next window on so no event is lost.
    pub fn push(&mut self, w: WindowProb) -> Option<Event> {
        if self.last_start.is_some_and(|last| w.start < last) {
            let closing = self.finish();
            self.reset();
            if closing.is_some() {
                // In the fresh state only a confirmation could give an event, and that waits.
                let own = self.step(w, false);
                debug_assert!(own.is_none(), "{own:?}");
                return closing;
            }
        }
        self.step(w, true)
    }

    fn step(&mut self, w: WindowProb, may_confirm: bool) -> Option<Event> {
        if self.position.is_none() {
            self.origin = w.start;
            self.last_end = w.start;
        }
        self.last_start = Some(w.start);
        let end = w.start.saturating_add(self.window);
        self.position = Some(end);
        let p = w.prob;
        // Enough windows to look back from where the silence began, once it has lasted.
        let max_recent = ((self.lookback + self.min_silence) / self.window.max(1)) as usize + 2;
        if self.recent.len() >= max_recent {
            self.recent.pop_front();
        }
        self.recent.push_back((w.start, w.level_db));
        if p >= self.cfg.threshold {
            self.last_high = Some(w.start);
        }
        if matches!(self.state, State::Silence) && p < self.cfg.threshold {
            self.loudest = crate::perceive::vad::SILENCE_DB;
        } else {
            self.loudest = self.loudest.max(w.level_db);
        }
        if p < self.cfg.neg_threshold && !matches!(self.state, State::Speech { .. }) {
            self.noise_floor = Some(match self.noise_floor {
                Some(f) => f + FLOOR_ALPHA * (w.level_db - f),
                None => w.level_db,
            });
        }
        match self.state {
            State::Silence => {
                if p >= self.cfg.threshold {
                    let start = self.refine_start(w.start);
                    self.state = State::Candidate { start };
                    return if may_confirm { self.confirm(end) } else { None };
                }
                None
            }
            State::Candidate { .. } => {
                if p < self.cfg.neg_threshold {
                    self.state = State::Silence;
                    return None;
                }
                self.confirm(end)
            }
            State::Speech {
                start,
                silence_since,
            } => {
                if p >= self.cfg.threshold {
                    self.state = State::Speech {
                        start,
                        silence_since: None,
                    };
                    return None;
                }
                if p >= self.cfg.neg_threshold {
                    return None;
                }
                let since = silence_since.unwrap_or(w.start);
                // Windows only move forward here (see `push`), so `since <= end`.
                if end.saturating_sub(since) >= self.min_silence {
                    return Some(self.close(start, since, end));
                }
                self.state = State::Speech {
                    start,
                    silence_since: Some(since),
                };
                None
            }
        }
    }

    /// Closes an open utterance at the end of the stream (EOS, or before a discontinuity).
    pub fn finish(&mut self) -> Option<Event> {
        let pos = self.position?;
        let ev = match self.state {
            State::Speech {
                start,
                silence_since,
            } => Some(match silence_since {
                Some(since) => self.close(start, since, pos),
                // Still speaking when the audio stops: the utterance ends with the audio.
                None => self.close_at(start, pos),
            }),
            _ => None,
        };
        self.state = State::Silence;
        ev
    }

    fn confirm(&mut self, end: u64) -> Option<Event> {
        let State::Candidate { start } = self.state else {
            return None;
        };
        if end.saturating_sub(start) >= self.min_speech {
            self.state = State::Speech {
                start,
                silence_since: None,
            };
            return Some(Event::SpeechStart {
                start: self.padded_start(start),
            });
        }
        None
    }

    /// Where the sound of an utterance the model first heard at `first` really began: the
    /// model needs a window or two of a soft onset (a plosive, a breath) before it is sure, so
    /// the start moves back over the windows just before that stand [`END_MARGIN_DB`] above
    /// the noise floor, at most [`END_LOOKBACK_MS`].
    fn refine_start(&self, first: u64) -> u64 {
        let Some(floor) = self.noise_floor else {
            return first;
        };
        let from = first.saturating_sub(self.lookback).max(self.last_end);
        let mut start = first;
        // A stop consonant's closure is a short silence inside the onset: bridge up to
        // ONSET_GAP_WINDOWS quiet windows.
        let mut quiet = 0;
        for (s, level) in self.recent.iter().rev().filter(|(s, _)| *s < first) {
            if *s < from {
                break;
            }
            if *level >= floor + END_MARGIN_DB {
                start = *s;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet > ONSET_GAP_WINDOWS {
                    break;
                }
            }
        }
        start
    }

    /// Where the sound of an utterance whose silence was detected at `since` really ended.
    fn refine_end(&self, start: u64, since: u64) -> u64 {
        let floor = self.noise_floor.unwrap_or(0.0);
        if self.noise_floor.is_none() || self.loudest - floor < CLEAN_SNR_DB {
            let lag = (NOISY_LAG_WINDOWS - 1) * self.window;
            return self
                .last_high
                .filter(|h| *h >= start)
                .map_or(since, |h| h.saturating_sub(lag).max(start).min(since));
        }
        let from = since.saturating_sub(self.lookback).max(start);
        let threshold = (floor + END_MARGIN_DB).max(self.loudest - END_DYNAMIC_DB);
        self.recent
            .iter()
            .rev()
            .filter(|(s, _)| *s >= from && *s < since)
            .find(|(_, level)| *level >= threshold)
            .map(|(s, _)| s.saturating_add(self.window).min(since))
            .unwrap_or(since)
    }

    fn close(&mut self, start: u64, speech_end: u64, heard_until: u64) -> Event {
        let speech_end = self.refine_end(start, speech_end);
        self.close_at(start, speech_end.saturating_add(self.pad).min(heard_until))
    }

    fn close_at(&mut self, start: u64, end: u64) -> Event {
        let s = self.padded_start(start);
        let e = end.max(s);
        self.state = State::Silence;
        self.last_end = e;
        Event::TurnEnd { start: s, end: e }
    }
}

/// Per-chunk decision, in stream sample positions at `rate`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub rate: u32,
    /// Someone is speaking at the end of this chunk.
    pub speaking: bool,
    /// The utterance under way has been silent since here, at the end of this chunk: its turn
    /// may be about to end (a responder can start decoding it).
    pub pause_since: Option<u64>,
    /// What the decider concluded in this chunk, in stream order: a turn can end and the
    /// next speech start within one chunk.
    pub events: Vec<Event>,
    /// No utterance reported later will start before this position.
    pub settled_until: u64,
    /// Alerts the audio rules raised in this chunk, for the respond element to deliver.
    pub alerts: Vec<crate::decide::alerts::types::Alert>,
}

impl Decision {
    pub fn is_silent(&self) -> bool {
        self.events.is_empty() && self.alerts.is_empty()
    }

    /// Starts of the speech confirmed in this chunk, in order.
    pub fn speech_starts(&self) -> impl Iterator<Item = u64> + '_ {
        self.events.iter().filter_map(|e| match *e {
            Event::SpeechStart { start } => Some(start),
            Event::TurnEnd { .. } => None,
        })
    }

    /// Utterances `[start, end)` that ended in this chunk, in order.
    pub fn turn_ends(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.events.iter().filter_map(|e| match *e {
            Event::TurnEnd { start, end } => Some((start, end)),
            Event::SpeechStart { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 512;

    fn run(probs: &[f32], cfg: DecisionConfig) -> (Vec<(usize, Event)>, Decider) {
        let mut d = Decider::new(cfg, 16000, W as usize).unwrap();
        let mut out = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            if let Some(e) = d.push(WindowProb {
                start: i as u64 * W,
                prob: p,
                level_db: 0.0,
                clipped: 0,
            }) {
                out.push((i, e));
            }
        }
        (out, d)
    }

    fn pattern(parts: &[(f32, usize)]) -> Vec<f32> {
        parts
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    #[test]
    fn one_utterance_with_padding() {
        // 10 windows silence, 30 speech (960 ms), 30 silence.
        let probs = pattern(&[(0.05, 10), (0.9, 30), (0.05, 30)]);
        let (ev, _) = run(&probs, DecisionConfig::default());
        assert_eq!(ev.len(), 2, "{ev:?}");
        let pad = 480;
        // min_speech 250 ms = 4000 samples = 8 windows: confirmed at window 17.
        assert_eq!(
            ev[0],
            (
                17,
                Event::SpeechStart {
                    start: 10 * W - pad
                }
            )
        );
        // min_silence 500 ms = 8000 samples: 16 windows of silence from window 40.
        assert_eq!(
            ev[1],
            (
                55,
                Event::TurnEnd {
                    start: 10 * W - pad,
                    end: 37 * W + pad
                }
            )
        );
    }

    #[test]
    fn short_blips_are_ignored() {
        let probs = pattern(&[(0.05, 10), (0.9, 3), (0.05, 30)]);
        let (ev, d) = run(&probs, DecisionConfig::default());
        assert!(ev.is_empty(), "{ev:?}");
        assert!(!d.in_speech());
    }

    #[test]
    fn hysteresis_keeps_a_wavering_utterance_together() {
        // Values between the two thresholds neither start nor end anything.
        let probs = pattern(&[(0.9, 10), (0.4, 40), (0.9, 10), (0.1, 20)]);
        let (ev, _) = run(&probs, DecisionConfig::default());
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(ev[1].1, Event::TurnEnd { start: 0, end } if end == 57 * W + 480));
    }

    #[test]
    fn pauses_shorter_than_min_silence_do_not_split() {
        let probs = pattern(&[(0.9, 20), (0.1, 10), (0.9, 20), (0.1, 20)]);
        let (ev, _) = run(&probs, DecisionConfig::default());
        let ends: Vec<_> = ev
            .iter()
            .filter(|(_, e)| matches!(e, Event::TurnEnd { .. }))
            .collect();
        assert_eq!(ends.len(), 1);
    }

    #[test]
    fn finish_closes_open_speech_and_padding_never_overlaps() {
        let cfg = DecisionConfig {
            speech_pad_ms: 400,
            ..Default::default()
        };
        let probs = pattern(&[(0.9, 20), (0.1, 16), (0.9, 20)]);
        let (ev, mut d) = run(&probs, cfg);
        let Some((_, Event::TurnEnd { end: first_end, .. })) = ev
            .iter()
            .find(|(_, e)| matches!(e, Event::TurnEnd { .. }))
            .copied()
        else {
            panic!("no first turn end: {ev:?}");
        };
        let Some(Event::SpeechStart {
            start: second_start,
        }) = ev.last().map(|e| e.1)
        else {
            panic!("no second start: {ev:?}");
        };
        assert!(second_start >= first_end);
        match d.finish() {
            Some(Event::TurnEnd { start, end }) => {
                assert_eq!(start, second_start);
                assert_eq!(end, 56 * W);
            }
            other => panic!("{other:?}"),
        }
        assert!(d.finish().is_none());
    }

    #[test]
    fn settled_position_never_passes_an_open_candidate() {
        let probs = pattern(&[(0.1, 10), (0.9, 2)]);
        let (_, d) = run(&probs, DecisionConfig::default());
        let lookback = u64::from(END_LOOKBACK_MS) * 16;
        assert_eq!(d.settled_until(), 12 * W - lookback - 480);
        let (_, d) = run(&pattern(&[(0.1, 10)]), DecisionConfig::default());
        assert_eq!(d.settled_until(), 10 * W - lookback - 480);
    }

    /// An onset the VAD hears late (a breathy start, loud before it is speech-like) is moved
    /// back to where its sound began: what was settled before it must not pass that start.
    #[test]
    fn settled_position_never_passes_a_start_moved_back_to_its_onset() {
        let mut d = Decider::new(DecisionConfig::default(), 16000, W as usize).unwrap();
        // (prob, level dBFS, windows): a quiet room, 6 loud windows the VAD doubts, speech.
        let parts = [(0.05, -70.0, 20), (0.3, -25.0, 6), (0.9, -20.0, 20)];
        let mut settled = Vec::new();
        let mut start = None;
        let mut i = 0u64;
        for &(prob, level_db, n) in &parts {
            for _ in 0..n {
                let ev = d.push(WindowProb {
                    start: i * W,
                    prob,
                    level_db,
                    clipped: 0,
                });
                if let Some(Event::SpeechStart { start: s }) = ev {
                    start = Some(s);
                }
                settled.push(d.settled_until());
                i += 1;
            }
        }
        let start = start.expect("speech confirmed");
        assert!(start < 26 * W - 480, "the onset moved back: {start}");
        let max = settled.iter().copied().max().unwrap_or(0);
        assert!(max <= start, "settled {max} past the start {start}");
    }

    #[test]
    fn the_end_moves_back_to_the_last_sound() {
        let mut d = Decider::new(DecisionConfig::default(), 16000, W as usize).unwrap();
        let mut events = Vec::new();
        // Silence at -60 dB, speech at -20 dB for 30 windows, then silence; the model's
        // probability trails the sound by 3 windows.
        for i in 0..80u64 {
            let level = if (10..40).contains(&i) { -20.0 } else { -60.0 };
            let prob = if (10..43).contains(&i) { 0.9 } else { 0.05 };
            if let Some(e) = d.push(WindowProb {
                start: i * W,
                prob,
                level_db: level,
                clipped: 0,
            }) {
                events.push(e);
            }
        }
        assert_eq!(
            events.last(),
            Some(&Event::TurnEnd {
                start: 10 * W - 480,
                end: 40 * W + 480
            })
        );
    }

    #[test]
    fn a_soft_onset_moves_the_start_back() {
        let mut d = Decider::new(DecisionConfig::default(), 16000, W as usize).unwrap();
        let mut events = Vec::new();
        // Silence at -60 dB; a soft onset at -35 dB for 3 windows that the model misses,
        // a closure of one quiet window, then speech.
        for i in 0..40u64 {
            let level = match i {
                0..10 => -60.0,
                10..13 => -35.0,
                13 => -60.0,
                _ => -20.0,
            };
            let prob = if i >= 13 { 0.9 } else { 0.05 };
            if let Some(e) = d.push(WindowProb {
                start: i * W,
                prob,
                level_db: level,
                clipped: 0,
            }) {
                events.push(e);
            }
        }
        assert_eq!(
            events.first(),
            Some(&Event::SpeechStart {
                start: 10 * W - 480
            })
        );
    }

    fn window(i: u64, prob: f32) -> WindowProb {
        WindowProb {
            start: i * W,
            prob,
            level_db: 0.0,
            clipped: 0,
        }
    }

    #[test]
    fn windows_going_back_restart_the_run() {
        let mut d = Decider::new(DecisionConfig::default(), 16000, W as usize).unwrap();
        let mut events = Vec::new();
        // Silence, an utterance from window 100, five windows of its closing silence...
        for i in 90..135 {
            let prob = if (100..130).contains(&i) { 0.9 } else { 0.05 };
            events.extend(d.push(window(i, prob)));
        }
        assert_eq!(
            events,
            vec![Event::SpeechStart {
                start: 100 * W - 480
            }]
        );
        // ...then the positions go back to the start without a discontinuity. Measured
        // across the jump, the silence would have lasted a negative time.
        let closing = d.push(window(1, 0.05));
        let Some(Event::TurnEnd { start, end }) = closing else {
            panic!("the open utterance must close: {closing:?}");
        };
        assert_eq!(start, 100 * W - 480);
        assert!(end > start + 25 * W && end <= 135 * W, "{start}..{end}");
        // The new run is decided on its own: an utterance from window 2.
        let mut events = Vec::new();
        for i in 2..60 {
            let prob = if (2..32).contains(&i) { 0.9 } else { 0.05 };
            events.extend(d.push(window(i, prob)));
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Event::SpeechStart { start: 2 * W - 480 });
        assert!(matches!(events[1], Event::TurnEnd { start: s, end: e }
            if s == 2 * W - 480 && e > 29 * W && e < 33 * W));
    }

    #[test]
    fn a_restart_loses_no_event() {
        // Speech confirmed by a single window: the window that goes back both closes the
        // open utterance and starts the next one; the start comes with the next window.
        let cfg = DecisionConfig {
            min_speech_ms: 0,
            ..Default::default()
        };
        let mut d = Decider::new(cfg, 16000, W as usize).unwrap();
        let mut events = Vec::new();
        for i in (50..60).chain(10..20) {
            events.extend(d.push(window(i, 0.9)));
        }
        events.extend(d.finish());
        assert_eq!(
            events,
            vec![
                // Not padded before the first window heard.
                Event::SpeechStart { start: 50 * W },
                Event::TurnEnd {
                    start: 50 * W,
                    end: 60 * W
                },
                Event::SpeechStart { start: 10 * W },
                Event::TurnEnd {
                    start: 10 * W,
                    end: 20 * W
                },
            ]
        );
    }

    #[test]
    fn positions_at_the_end_of_the_range_do_not_overflow() {
        let mut d = Decider::new(DecisionConfig::default(), 16000, W as usize).unwrap();
        // Windows from 20 windows before the end of the range; the later ones saturate.
        let top = u64::MAX - 20 * W;
        let mut events = Vec::new();
        for k in 0..40u64 {
            let prob = if k < 20 { 0.9 } else { 0.05 };
            events.push(d.push(WindowProb {
                start: top.saturating_add(k * W),
                prob,
                level_db: 0.0,
                clipped: 0,
            }));
        }
        events.push(d.finish());
        let events: Vec<Event> = events.into_iter().flatten().collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Event::SpeechStart { start: top });
        assert!(matches!(events[1], Event::TurnEnd { start, end } if start == top && end > top));
    }

    #[test]
    fn a_turn_ends_early_only_during_a_pause() {
        let cfg = DecisionConfig::default();
        // 1 s of speech, then 4 silent windows (128 ms): a pause, not yet a turn end.
        let (ev, mut d) = run(&pattern(&[(0.9, 32), (0.1, 4)]), cfg);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(d.pause_since(), Some(32 * W));
        let Some(Event::TurnEnd { start, end }) = d.end_turn() else {
            panic!("a pause ends when asked")
        };
        assert_eq!(start, 0);
        // Placed as a full silence would place it: moved back over the model's lag.
        assert!(end > 28 * W && end <= 33 * W, "{end}");
        assert_eq!(d.pause_since(), None);
        assert!(d.end_turn().is_none(), "nothing is open any more");
        // Still speaking: nothing to end.
        let (_, mut d) = run(&pattern(&[(0.9, 32)]), cfg);
        assert_eq!(d.pause_since(), None);
        assert!(d.end_turn().is_none());
    }

    #[test]
    fn bad_thresholds_are_refused() {
        let cfg = DecisionConfig {
            threshold: 0.3,
            neg_threshold: 0.5,
            ..Default::default()
        };
        assert!(Decider::new(cfg, 16000, 512).is_err());
    }
}
