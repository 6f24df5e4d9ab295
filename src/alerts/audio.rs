//! The audio rules (dead air, clipping, quiet, sound events) over per-chunk [`Perception`].
//!
//! Each kind of audio rule is one [`Detector`]; [`AudioAlerts`] runs one per rule and applies
//! the rule's name and cooldown to what it detects. A new kind is a new detector and its
//! entry in [`detector`].

use std::collections::VecDeque;
use std::fmt;

use super::cooldown::Cooldown;
use super::types::{Alert, AlertKind, RuleSet, RuleSpec};
use crate::perception::{Perception, TagFrame};
use crate::time::ms_to_samples;
use crate::vad::WindowProb;
use crate::{Error, Result};

/// Windows with at least this speech probability count as speech for the quiet rule.
const QUIET_SPEECH_PROB: f32 = 0.5;
/// Quiet confidence reaches 1 this many dB below the rule's level (it is 0.5 at the level).
const QUIET_FULL_CONFIDENCE_DB: f32 = 6.0;

/// What one audio rule watches for, over the perception of successive chunks.
///
/// A detector reports each episode of its condition once, through `emit`, as soon as the
/// perception seen so far shows it; the rule's cooldown is applied by the caller.
trait Detector: fmt::Debug + Send + CloneDetector {
    /// One chunk's perception, whose VAD windows are `window` samples long; by default its
    /// windows one by one.
    fn push(&mut self, p: &Perception, window: u64, emit: &mut dyn FnMut(Fired)) {
        for w in &p.windows {
            self.window(w, window, emit);
        }
    }

    /// One VAD window `window` samples long, for the detectors that judge the windows (the
    /// default `push` hands each one here).
    fn window(&mut self, _w: &WindowProb, _window: u64, _emit: &mut dyn FnMut(Fired)) {}

    /// End of stream: reports what the end makes due. By default nothing: a condition that
    /// holds on the perception seen so far was reported when it was seen.
    fn finish(&mut self, _emit: &mut dyn FnMut(Fired)) {}

    /// Flush, discontinuity or end of stream: forgets the episode in progress (what happens
    /// across the gap is unknown).
    fn reset(&mut self);

    /// The tagger label a sound-event detector watches.
    fn sound_label(&self) -> Option<&str> {
        None
    }
}

/// Cloning through a `Box<dyn Detector>`, for every detector that is `Clone`.
trait CloneDetector {
    fn clone_box(&self) -> Box<dyn Detector>;
}

impl<T: Detector + Clone + 'static> CloneDetector for T {
    fn clone_box(&self) -> Box<dyn Detector> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Detector> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// The detector of an audio rule; `None` for a text rule.
fn detector(spec: &RuleSpec, rate: u32) -> Option<Box<dyn Detector>> {
    Some(match spec {
        RuleSpec::DeadAir {
            seconds,
            level_db,
            speech_threshold,
        } => Box::new(DeadAir {
            seconds: *seconds,
            length: ((*seconds as f64) * rate as f64).round().max(1.0) as u64,
            level_db: *level_db,
            speech_threshold: *speech_threshold,
            run_start: None,
            last_end: None,
            fired: false,
        }),
        RuleSpec::Clipping { window_ms, ratio } => Box::new(Clipping {
            span: ms_to_samples(*window_ms, rate).max(1),
            ratio: *ratio,
            windows: VecDeque::new(),
            last_clipped_end: None,
            fired: false,
        }),
        RuleSpec::Quiet {
            window_ms,
            below_db,
        } => Box::new(Quiet {
            span: ms_to_samples(*window_ms, rate).max(1),
            below_db: *below_db,
            speech: VecDeque::new(),
            fired: false,
        }),
        RuleSpec::SoundEvent {
            label,
            threshold,
            min_duration_ms,
            release_ms,
        } => Box::new(SoundEvent {
            label: label.clone(),
            threshold: *threshold,
            min_duration: ms_to_samples(*min_duration_ms, rate),
            release: ms_to_samples(*release_ms, rate),
            hop: None,
            last_frame_start: None,
            episode: None,
        }),
        RuleSpec::Keyword { .. }
        | RuleSpec::Phrase { .. }
        | RuleSpec::Regex { .. }
        | RuleSpec::Wake { .. } => return None,
    })
}

/// Evaluates the audio rules (dead air, clipping, quiet, sound events) chunk by chunk.
///
/// Every rule fires as soon as its condition holds on the windows seen so far, and once
/// per episode: the condition must end (as each rule defines) before it can fire again,
/// and then only once its cooldown has passed.
#[derive(Debug, Clone)]
pub struct AudioAlerts {
    rate: u32,
    rules: Vec<AudioRule>,
}

#[derive(Debug, Clone)]
struct AudioRule {
    name: String,
    cooldown: Cooldown,
    detector: Box<dyn Detector>,
}

impl AudioRule {
    /// The rule's detector, and the emitter it reports to: that applies the rule's cooldown,
    /// then puts the rule's name on the alert and the alert in `out`.
    fn with_emitter<'a>(
        &'a mut self,
        rate: u32,
        out: &'a mut Vec<Alert>,
    ) -> (&'a mut dyn Detector, impl FnMut(Fired) + 'a) {
        let name = self.name.as_str();
        let cooldown = &mut self.cooldown;
        let emit = move |a: Fired| {
            if cooldown.try_fire(a.start) {
                out.push(a.into_alert(name, rate));
            }
        };
        (self.detector.as_mut(), emit)
    }
}

impl AudioAlerts {
    pub fn new(rules: &RuleSet, rate: u32) -> Self {
        let rate = rate.max(1);
        let rules = rules
            .rules
            .iter()
            .filter_map(|r| {
                Some(AudioRule {
                    name: r.name.clone(),
                    cooldown: Cooldown::new(r.cooldown_ms, rate),
                    detector: detector(&r.spec, rate)?,
                })
            })
            .collect();
        Self { rate, rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Fails, naming the rule and the label, when a sound-event rule watches a label the
    /// tagger does not have. Labels match exactly or, failing that, ignoring ASCII case
    /// (as they do during evaluation).
    pub fn check_labels(&self, labels: &[String]) -> Result<()> {
        for rule in &self.rules {
            if let Some(label) = rule.detector.sound_label()
                && label_index(labels, label).is_none()
            {
                let shown: Vec<&str> = labels.iter().take(20).map(String::as_str).collect();
                let more = if labels.len() > shown.len() {
                    ", …"
                } else {
                    ""
                };
                return Err(Error::InvalidArgument(format!(
                    "alert rule `{}` watches sound-event label `{label}`, which the tagger does \
                     not have (its labels: {}{more})",
                    rule.name,
                    shown.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Feeds one chunk's perception (windows and tag frames in stream order) and returns the
    /// alerts that became due, in start order. A perception marked `reset` (start, flush,
    /// discontinuity) first forgets the runs in progress, as [`AudioAlerts::reset`] does.
    pub fn push(&mut self, p: &Perception) -> Vec<Alert> {
        if p.reset {
            self.reset();
        }
        let window = window_len(p);
        let mut out = Vec::new();
        for rule in &mut self.rules {
            let (detector, mut emit) = rule.with_emitter(self.rate, &mut out);
            detector.push(p, window, &mut emit);
        }
        out.sort_by_key(|a| a.start);
        out
    }

    /// End of stream at sample `end`: returns the alerts the end makes due, in start order,
    /// and forgets the runs, so the evaluator can serve a following stream.
    ///
    /// Only a sound event can be due here: one still sounding in the last tagger frame,
    /// which lasted its minimum duration up to the end of the audio but had no later frame
    /// to show it (see [`SoundEvent`]). The other rules fire as soon as their condition holds
    /// on the analysed windows; the audio after the last window (less than one) was not
    /// analysed and can complete none of them. The stream's end position is not needed: the
    /// alerts end at the last audio analysed.
    pub fn finish(&mut self, _end: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        for rule in &mut self.rules {
            let (detector, mut emit) = rule.with_emitter(self.rate, &mut out);
            detector.finish(&mut emit);
        }
        self.reset();
        out.sort_by_key(|a| a.start);
        out
    }

    /// Flush or discontinuity: forgets the runs in progress (what happens across the gap is
    /// unknown), keeps each rule's cooldown clock (a new timeline that restarts earlier is
    /// recognised by the cooldown) and the tagger's measured hop.
    pub fn reset(&mut self) {
        for rule in &mut self.rules {
            rule.detector.reset();
        }
    }
}

/// An audio alert before the cooldown and the rule's name are applied.
struct Fired {
    kind: AlertKind,
    label: String,
    confidence: f32,
    start: u64,
    end: u64,
    text: String,
}

impl Fired {
    fn into_alert(self, rule: &str, rate: u32) -> Alert {
        Alert {
            kind: self.kind,
            rule: rule.to_string(),
            label: self.label,
            confidence: self.confidence,
            start: self.start,
            end: self.end,
            rate,
            text: self.text,
        }
    }
}

/// VAD window length in samples: the perception's, or the spacing of its windows when it
/// does not say, or Silero's 32 ms.
fn window_len(p: &Perception) -> u64 {
    if p.window > 0 {
        return p.window as u64;
    }
    match p.windows.as_slice() {
        [a, b, ..] if b.start > a.start => b.start - a.start,
        _ => ms_to_samples(32, p.rate.max(1)).max(1),
    }
}

/// Index of `label` among `labels`: exact, else ignoring ASCII case.
fn label_index(labels: &[String], label: &str) -> Option<usize> {
    labels
        .iter()
        .position(|l| l == label)
        .or_else(|| labels.iter().position(|l| l.eq_ignore_ascii_case(label)))
}

/// Dead air: consecutive windows that are neither speech nor loud. A run fires once when it
/// has lasted `seconds`; only a live window (or a gap in the windows) re-arms it.
#[derive(Debug, Clone)]
struct DeadAir {
    seconds: f32,
    length: u64,
    level_db: f32,
    speech_threshold: f32,
    run_start: Option<u64>,
    last_end: Option<u64>,
    fired: bool,
}

impl Detector for DeadAir {
    fn reset(&mut self) {
        self.run_start = None;
        self.last_end = None;
        self.fired = false;
    }

    fn window(&mut self, w: &WindowProb, window: u64, emit: &mut dyn FnMut(Fired)) {
        let end = w.start + window;
        // Audio that was never analysed is not known to be dead; a window before the run
        // belongs to a restarted timeline.
        if self.last_end.is_some_and(|e| w.start > e) || self.run_start.is_some_and(|s| w.start < s)
        {
            self.run_start = None;
            self.fired = false;
        }
        self.last_end = Some(end);
        let dead = w.prob < self.speech_threshold && w.level_db < self.level_db;
        if !dead {
            self.run_start = None;
            self.fired = false;
            return;
        }
        let start = *self.run_start.get_or_insert(w.start);
        if !self.fired && end.saturating_sub(start) >= self.length {
            self.fired = true;
            emit(Fired {
                kind: AlertKind::DeadAir,
                label: "dead-air".into(),
                confidence: 1.0,
                start,
                end: start + self.length,
                text: format!("no speech or sound for {:.1} s", self.seconds),
            });
        }
    }
}

/// Clipping: clipped samples over the last `span` samples of windows, divided by the whole
/// span (so a burst early in a stream is judged on the same scale as later ones). An
/// episode ends once a whole span passes without a clipped sample.
#[derive(Debug, Clone)]
struct Clipping {
    span: u64,
    ratio: f32,
    /// (start, end, clipped) of the windows overlapping the last span.
    windows: VecDeque<(u64, u64, u32)>,
    last_clipped_end: Option<u64>,
    fired: bool,
}

impl Detector for Clipping {
    fn reset(&mut self) {
        self.windows.clear();
        self.last_clipped_end = None;
        self.fired = false;
    }

    fn window(&mut self, w: &WindowProb, window: u64, emit: &mut dyn FnMut(Fired)) {
        let end = w.start + window;
        self.windows.push_back((w.start, end, w.clipped));
        let from = end.saturating_sub(self.span);
        while self.windows.front().is_some_and(|&(_, e, _)| e <= from) {
            self.windows.pop_front();
        }
        if w.clipped > 0 {
            self.last_clipped_end = Some(end);
        }
        if self.fired
            && self
                .last_clipped_end
                .is_none_or(|e| end.saturating_sub(e) >= self.span)
        {
            self.fired = false;
        }
        let clipped: u64 = self.windows.iter().map(|&(_, _, c)| c as u64).sum();
        let observed = clipped as f64 / self.span as f64;
        if self.fired || clipped == 0 || observed < self.ratio as f64 {
            return;
        }
        self.fired = true;
        let start = self
            .windows
            .iter()
            .find(|&&(_, _, c)| c > 0)
            .map_or(w.start, |&(s, _, _)| s);
        emit(Fired {
            kind: AlertKind::Level,
            label: "clipping".into(),
            confidence: (observed / self.ratio as f64).min(1.0) as f32,
            start,
            end,
            text: format!(
                "input is clipping ({:.1} % of samples at full scale)",
                observed * 100.0
            ),
        });
    }
}

/// Quiet: speech windows (probability ≥ [`QUIET_SPEECH_PROB`]) covering at least half of
/// the last `span` samples with a mean level below `below_db`. An episode ends when such a
/// span is loud enough, or when no speech was heard for a whole span.
#[derive(Debug, Clone)]
struct Quiet {
    span: u64,
    below_db: f32,
    /// (start, end, level) of the speech windows overlapping the last span.
    speech: VecDeque<(u64, u64, f32)>,
    fired: bool,
}

impl Detector for Quiet {
    fn reset(&mut self) {
        self.speech.clear();
        self.fired = false;
    }

    fn window(&mut self, w: &WindowProb, window: u64, emit: &mut dyn FnMut(Fired)) {
        let end = w.start + window;
        if w.prob >= QUIET_SPEECH_PROB {
            self.speech.push_back((w.start, end, w.level_db));
        }
        let from = end.saturating_sub(self.span);
        while self.speech.front().is_some_and(|&(_, e, _)| e <= from) {
            self.speech.pop_front();
        }
        let Some(&(first, _, _)) = self.speech.front() else {
            self.fired = false;
            return;
        };
        let covered: u64 = self
            .speech
            .iter()
            .map(|&(s, e, _)| e.min(end).saturating_sub(s.max(from)))
            .sum();
        if covered * 2 < self.span {
            return;
        }
        let mean = self.speech.iter().map(|&(_, _, l)| l).sum::<f32>() / self.speech.len() as f32;
        if mean >= self.below_db {
            self.fired = false;
            return;
        }
        if self.fired {
            return;
        }
        self.fired = true;
        emit(Fired {
            kind: AlertKind::Level,
            label: "quiet".into(),
            confidence: (0.5 + (self.below_db - mean) / (2.0 * QUIET_FULL_CONFIDENCE_DB)).min(1.0),
            start: first,
            end,
            text: format!("speech is too quiet ({mean:.1} dBFS)"),
        });
    }
}

/// Sound events over tagger frames. An episode starts at the first frame scoring at least
/// `threshold` and fires once when it has lasted `min_duration`, measured as the distance
/// between the centres of its first and latest above-threshold frames plus one hop (each
/// frame stands for one hop of audio). The alert starts at the first frame's centre: a
/// frame (about a second long) crosses the threshold once the sound fills part of it, so
/// its centre estimates the onset better than its start. The episode ends once frames have
/// stayed below threshold for `release` (centre to centre); a later episode fires again,
/// subject to the cooldown.
///
/// At the end of the stream no later frame will come: an episode still above threshold in
/// the last frame is measured from its first centre to the end of that frame, the end of
/// the audio it heard, and fires if that reaches `min_duration`.
#[derive(Debug, Clone)]
struct SoundEvent {
    label: String,
    threshold: f32,
    min_duration: u64,
    release: u64,
    /// Distance between consecutive frame starts, once two frames have been seen.
    hop: Option<u64>,
    last_frame_start: Option<u64>,
    episode: Option<Episode>,
}

#[derive(Debug, Clone)]
struct Episode {
    first_centre: u64,
    last_above_centre: u64,
    /// The end of the latest above-threshold frame.
    last_above_end: u64,
    /// The latest frame seen scored below threshold: the episode is in its release.
    releasing: bool,
    max_score: f32,
    /// Fired, or suppressed by the cooldown: either way it is not reported again.
    done: bool,
}

impl Detector for SoundEvent {
    fn push(&mut self, p: &Perception, _window: u64, emit: &mut dyn FnMut(Fired)) {
        if let Some(i) = label_index(&p.labels, &self.label) {
            for f in &p.tags {
                self.frame(f, i, emit);
            }
        }
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Fired)) {
        let Some(ep) = &mut self.episode else {
            return;
        };
        if ep.done
            || ep.releasing
            || ep.last_above_end.saturating_sub(ep.first_centre) < self.min_duration
        {
            return;
        }
        ep.done = true;
        emit(Fired {
            kind: AlertKind::SoundEvent,
            label: self.label.clone(),
            confidence: ep.max_score,
            start: ep.first_centre,
            end: ep.last_above_end,
            text: format!("{} detected", self.label),
        });
    }

    fn reset(&mut self) {
        self.episode = None;
        self.last_frame_start = None;
    }

    fn sound_label(&self) -> Option<&str> {
        Some(&self.label)
    }
}

impl SoundEvent {
    fn frame(&mut self, f: &TagFrame, label: usize, emit: &mut dyn FnMut(Fired)) {
        if let Some(prev) = self.last_frame_start
            && f.start > prev
        {
            self.hop = Some(f.start - prev);
        }
        self.last_frame_start = Some(f.start);
        // Until two frames give the hop, assume the taggers' usual quarter-frame hop.
        let hop = self.hop.unwrap_or(f.end.saturating_sub(f.start) / 4);
        let centre = f.start + f.end.saturating_sub(f.start) / 2;
        let score = f.score(label);

        if let Some(ep) = &mut self.episode {
            let silent_for = centre.saturating_sub(ep.last_above_centre);
            // Below threshold for `release`, or frames missing for longer than that.
            let ended = if centre < ep.first_centre {
                true // a restarted timeline
            } else if score >= self.threshold {
                silent_for > self.release + hop
            } else {
                silent_for >= self.release
            };
            if ended {
                self.episode = None;
            } else {
                ep.releasing = score < self.threshold;
            }
        }
        if score < self.threshold {
            return;
        }
        let ep = self.episode.get_or_insert(Episode {
            first_centre: centre,
            last_above_centre: centre,
            last_above_end: f.end,
            releasing: false,
            max_score: score,
            done: false,
        });
        ep.last_above_centre = centre;
        ep.last_above_end = f.end;
        ep.max_score = ep.max_score.max(score);
        if !ep.done && ep.last_above_centre - ep.first_centre + hop >= self.min_duration {
            ep.done = true;
            emit(Fired {
                kind: AlertKind::SoundEvent,
                label: self.label.clone(),
                confidence: ep.max_score,
                start: ep.first_centre,
                end: f.end,
                text: format!("{} detected", self.label),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::TextAlerts;
    use crate::alerts::rules::{DEFAULT_SOUND_RELEASE_MS, sound_event_rule};
    use crate::alerts::types::{Rule, Trigger};

    const RATE: u32 = 16_000;

    const LABELS: [&str; 2] = ["speech", "alarm"];
    const FRAME: u64 = 16_000; // 1 s tagger window
    const HOP: u64 = 4_000; // 0.25 s between tagger windows

    /// A sound-event rule at threshold 0.5 and 300 ms, which the linear scores of
    /// [`tag_frames`] make easy to reason about (the defaults are tuned for a real tagger).
    fn sound_rules(cooldown_ms: u32) -> RuleSet {
        sound_rules_lasting(cooldown_ms, 300)
    }

    /// [`sound_rules`] with another minimum duration.
    fn sound_rules_lasting(cooldown_ms: u32, min_duration_ms: u32) -> RuleSet {
        let mut r = sound_event_rule("smoke", "alarm");
        r.cooldown_ms = cooldown_ms;
        r.spec = RuleSpec::SoundEvent {
            label: "alarm".into(),
            threshold: 0.5,
            min_duration_ms,
            release_ms: DEFAULT_SOUND_RELEASE_MS,
        };
        RuleSet { rules: vec![r] }
    }

    /// Tagger frames over `[0, total)`: the alarm's score is the fraction of the frame the
    /// sound fills, as a real tagger's roughly is.
    fn tag_frames(total: u64, sounds: &[(u64, u64)]) -> Vec<TagFrame> {
        (0..)
            .map(|i| i * HOP)
            .take_while(|&s| s + FRAME <= total)
            .map(|s| {
                let e = s + FRAME;
                let covered: u64 = sounds
                    .iter()
                    .map(|&(a, b)| b.min(e).saturating_sub(a.max(s)))
                    .sum();
                TagFrame {
                    start: s,
                    end: e,
                    scores: vec![0.1, covered as f32 / FRAME as f32],
                }
            })
            .collect()
    }

    /// Feeds the frames a few at a time, as chunks would bring them.
    fn run_tags(alerts: &mut AudioAlerts, frames: &[TagFrame]) -> Vec<Alert> {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        for chunk in frames.chunks(3) {
            out.extend(alerts.push(&Perception {
                rate: RATE,
                window: 512,
                labels: labels.clone(),
                tags: chunk.to_vec(),
                ..Default::default()
            }));
        }
        out
    }

    #[test]
    fn sound_event_fires_once_per_episode_near_the_onset() {
        let onset = 81_000;
        let frames = tag_frames(20 * 16_000, &[(onset, onset + 3 * 16_000)]);
        let mut a = AudioAlerts::new(&sound_rules(10_000), RATE);
        let alerts = run_tags(&mut a, &frames);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let al = &alerts[0];
        assert_eq!(al.kind, AlertKind::SoundEvent);
        assert_eq!((al.rule.as_str(), al.label.as_str()), ("smoke", "alarm"));
        assert_eq!(al.text, "alarm detected");
        assert!(
            al.start.abs_diff(onset) <= HOP,
            "start {} onset {onset}",
            al.start
        );
        // Fires on the second frame above threshold: centre distance (one hop) + one hop
        // reaches 300 ms.
        let first_above = frames
            .iter()
            .find(|f| f.scores[1] >= 0.5)
            .map(|f| f.start)
            .unwrap();
        assert_eq!(al.end, first_above + HOP + FRAME);
        assert!(al.confidence >= 0.5 && al.confidence <= 1.0);
        assert_eq!(al.rate, RATE);
        assert!(a.finish(20 * 16_000).is_empty());
    }

    #[test]
    fn sound_event_release_rearms_and_cooldown_suppresses() {
        let s = 16_000;
        // Episodes at 5 s, 13 s and 21 s, 3 s each, with 5 s of quiet between them.
        let sounds = [(5 * s, 8 * s), (13 * s, 16 * s), (21 * s, 24 * s)];
        let frames = tag_frames(30 * s, &sounds);

        let mut free = AudioAlerts::new(&sound_rules(0), RATE);
        let starts: Vec<u64> = run_tags(&mut free, &frames)
            .iter()
            .map(|a| a.start)
            .collect();
        assert_eq!(starts.len(), 3, "{starts:?}");
        for (st, (on, _)) in starts.iter().zip(sounds) {
            assert!(st.abs_diff(on) <= HOP, "{st} vs {on}");
        }

        // 10 s cooldown from the first alert's start: the 13 s episode is suppressed, the
        // 21 s one is not.
        let mut cooled = AudioAlerts::new(&sound_rules(10_000), RATE);
        let starts: Vec<u64> = run_tags(&mut cooled, &frames)
            .iter()
            .map(|a| a.start)
            .collect();
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert!(starts[1].abs_diff(21 * s) <= HOP);
    }

    #[test]
    fn sound_event_gap_shorter_than_release_is_one_episode() {
        let s = 16_000;
        // 1 s of quiet leaves frames overlapping the sound partly; no frame stays below
        // threshold for the 2 s release.
        let frames = tag_frames(20 * s, &[(5 * s, 8 * s), (9 * s, 12 * s)]);
        let mut a = AudioAlerts::new(&sound_rules(0), RATE);
        assert_eq!(run_tags(&mut a, &frames).len(), 1);
    }

    #[test]
    fn sound_event_sounding_at_the_end_is_due_at_finish() {
        let s = 16_000;
        let total = 10 * s;
        // From 0.6 s before the end only the last frame is at least half full: one frame is
        // one hop (250 ms) by the streaming measure, under 300 ms, yet the sound filled the
        // last 0.5 s of audio after that frame's centre.
        let onset = total - 9_600;
        let frames = tag_frames(total, &[(onset, total)]);
        let mut a = AudioAlerts::new(&sound_rules(0), RATE);
        assert!(run_tags(&mut a, &frames).is_empty());
        let due = a.finish(total);
        assert_eq!(due.len(), 1, "{due:?}");
        let al = &due[0];
        assert_eq!(al.kind, AlertKind::SoundEvent);
        assert_eq!((al.rule.as_str(), al.label.as_str()), ("smoke", "alarm"));
        assert!(
            al.start.abs_diff(onset) <= HOP,
            "start {} onset {onset}",
            al.start
        );
        assert_eq!(al.end, total);
        assert_eq!(al.rate, RATE);
        // The end forgets the episode: nothing is due twice.
        assert!(a.finish(total).is_empty());

        // A longer stream, where the sound goes on, raises it while streaming, from the
        // same start.
        let longer = tag_frames(total + 3 * s, &[(onset, total + 2 * s)]);
        let mut b = AudioAlerts::new(&sound_rules(0), RATE);
        let raised = run_tags(&mut b, &longer);
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].start, al.start);
    }

    #[test]
    fn finish_reports_no_ended_reported_or_cooled_down_episode() {
        let s = 16_000;
        let total = 10 * s;
        // Already reported while streaming: not again at the end.
        let frames = tag_frames(total, &[(7 * s, total)]);
        let mut a = AudioAlerts::new(&sound_rules(0), RATE);
        assert_eq!(run_tags(&mut a, &frames).len(), 1);
        assert!(a.finish(total).is_empty());

        // Ended before the end of the stream (the last frame is below threshold): 1.5 s by
        // the streaming measure is under 1.6 s, and the end adds nothing to a sound that is
        // over.
        let frames = tag_frames(total, &[(total - 2 * s, total - 9_600)]);
        let mut a = AudioAlerts::new(&sound_rules_lasting(0, 1600), RATE);
        assert!(run_tags(&mut a, &frames).is_empty());
        assert!(a.finish(total).is_empty());

        // Within the cooldown of an earlier alert of the rule.
        let sounds = [(s, 4 * s), (total - 9_600, total)];
        let frames = tag_frames(total, &sounds);
        let mut cooled = AudioAlerts::new(&sound_rules(10_000), RATE);
        assert_eq!(run_tags(&mut cooled, &frames).len(), 1);
        assert!(cooled.finish(total).is_empty());
        let mut free = AudioAlerts::new(&sound_rules(0), RATE);
        assert_eq!(run_tags(&mut free, &frames).len(), 1);
        assert_eq!(free.finish(total).len(), 1);

        // Other kinds have nothing due: dead air short of its length stays unreported.
        let mut d = AudioAlerts::new(&dead_air_rules(), RATE);
        let ws: Vec<WindowProb> = (0..300).map(|i| window(i * 512, 0.1, -60.0, 0)).collect();
        assert!(run_windows(&mut d, 512, &ws).is_empty());
        assert!(d.finish(300 * 512).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 500,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0a1e_7e05),
            ..Default::default()
        })]

        /// A sound that starts at `onset` and lasts to the end of the stream, with frames
        /// scoring the part of them it fills: when it lasted its minimum duration and a hop
        /// more, one alert is raised (while streaming or at the end) near the onset, from
        /// the start a longer stream with the sound going on raises; when it lasted less
        /// than its minimum duration, none is.
        #[test]
        fn a_sound_cut_by_the_end_is_raised_as_a_longer_stream_raises_it(
            hops in 8u64..80,
            onset_at in 0.0f64..1.0,
            min_duration_ms in 500u32..3000,
        ) {
            let total = hops * HOP;
            // From half a frame in, where the first frames can place the onset.
            let onset = FRAME / 2 + ((total - FRAME / 2) as f64 * onset_at) as u64;
            let rules = sound_rules_lasting(0, min_duration_ms);
            let min = ms_to_samples(min_duration_ms, RATE);

            let mut a = AudioAlerts::new(&rules, RATE);
            let mut got = run_tags(&mut a, &tag_frames(total, &[(onset, total)]));
            got.extend(a.finish(total));

            let mut b = AudioAlerts::new(&rules, RATE);
            let longer = run_tags(&mut b, &tag_frames(total + 20 * FRAME, &[(onset, total + 10 * FRAME)]));
            proptest::prop_assert_eq!(longer.len(), 1);

            let lasted = total - onset;
            if lasted >= min + HOP {
                proptest::prop_assert_eq!(got.len(), 1, "{:?}", got);
            } else if lasted < min {
                proptest::prop_assert!(got.is_empty(), "{:?}", got);
            }
            for al in &got {
                proptest::prop_assert!(al.start.abs_diff(onset) <= HOP);
                proptest::prop_assert_eq!(al.start, longer[0].start);
            }
        }
    }

    #[test]
    fn sound_event_labels_are_checked() {
        let a = AudioAlerts::new(&sound_rules(0), RATE);
        assert!(a.check_labels(&["Speech".into(), "Alarm".into()]).is_ok());
        let msg = a
            .check_labels(&["speech".into()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("`smoke`") && msg.contains("`alarm`"), "{msg}");
        // A perception without the label simply yields nothing.
        let frames = tag_frames(10 * 16_000, &[(16_000, 5 * 16_000)]);
        let mut b = AudioAlerts::new(&sound_rules(0), RATE);
        let out = b.push(&Perception {
            rate: RATE,
            labels: vec!["speech".into()],
            tags: frames,
            ..Default::default()
        });
        assert!(out.is_empty());
    }

    fn window(start: u64, prob: f32, level_db: f32, clipped: u32) -> WindowProb {
        WindowProb {
            start,
            prob,
            level_db,
            clipped,
        }
    }

    /// Feeds `windows` in chunks of 10, with window length `len`.
    fn run_windows(a: &mut AudioAlerts, len: u32, windows: &[WindowProb]) -> Vec<Alert> {
        windows
            .chunks(10)
            .flat_map(|c| {
                a.push(&Perception {
                    rate: RATE,
                    window: len,
                    windows: c.to_vec(),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn only(name: &str, spec: RuleSpec, cooldown_ms: u32) -> RuleSet {
        RuleSet {
            rules: vec![Rule {
                name: name.into(),
                cooldown_ms,
                on: Trigger::Partial,
                spec,
            }],
        }
    }

    fn dead_air_rules() -> RuleSet {
        only(
            "dead-air",
            RuleSpec::DeadAir {
                seconds: 10.0,
                level_db: -45.0,
                speech_threshold: 0.5,
            },
            10_000,
        )
    }

    #[test]
    fn dead_air_fires_at_exactly_n_seconds_and_rearms_on_a_live_window() {
        // 25 ms windows: 400 make 10 s.
        let len = 400u32;
        let mut a = AudioAlerts::new(&dead_air_rules(), RATE);
        let w = |i: u64, prob, level| window(i * len as u64, prob, level, 0);

        let first: Vec<WindowProb> = (0..399).map(|i| w(i, 0.1, -60.0)).collect();
        assert!(run_windows(&mut a, len, &first).is_empty());
        let out = a.push(&Perception {
            rate: RATE,
            window: len,
            windows: vec![w(399, 0.1, -60.0)],
            ..Default::default()
        });
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (0, 160_000));
        assert_eq!(out[0].kind, AlertKind::DeadAir);
        assert_eq!(out[0].label, "dead-air");
        assert_eq!(out[0].text, "no speech or sound for 10.0 s");

        // Still dead: nothing more.
        let more: Vec<WindowProb> = (400..1400).map(|i| w(i, 0.1, -60.0)).collect();
        assert!(run_windows(&mut a, len, &more).is_empty());

        // Speech breaks the run; a loud non-speech window would too.
        let mut next = vec![w(1400, 0.9, -60.0)];
        next.extend((1401..1801).map(|i| w(i, 0.1, -60.0)));
        let out = run_windows(&mut a, len, &next);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start, 1401 * len as u64);

        let mut loud = vec![w(1801, 0.1, -20.0)];
        loud.extend((1802..2202).map(|i| w(i, 0.1, -60.0)));
        assert_eq!(run_windows(&mut a, len, &loud).len(), 1);
    }

    #[test]
    fn dead_air_cooldown_and_reset() {
        let len = 400u32;
        let w = |i: u64, prob| window(i * len as u64, prob, -60.0, 0);
        // Runs start at 0 s, 10.025 s and 20.05 s; a 15 s cooldown holds back the second.
        let mut rules = dead_air_rules();
        rules.rules[0].cooldown_ms = 15_000;
        let mut a = AudioAlerts::new(&rules, RATE);
        let mut ws: Vec<WindowProb> = Vec::new();
        for run in 0..3u64 {
            let first = run * 401;
            ws.extend((first..first + 400).map(|i| w(i, 0.1)));
            ws.push(w(first + 400, 0.9));
        }
        let starts: Vec<u64> = run_windows(&mut a, len, &ws)
            .iter()
            .map(|a| a.start)
            .collect();
        assert_eq!(starts, [0, 802 * len as u64]);

        // A reset forgets the run in progress.
        let mut b = AudioAlerts::new(&dead_air_rules(), RATE);
        let half: Vec<WindowProb> = (0..300).map(|i| w(i, 0.1)).collect();
        run_windows(&mut b, len, &half);
        b.reset();
        let rest: Vec<WindowProb> = (300..500).map(|i| w(i, 0.1)).collect();
        assert!(run_windows(&mut b, len, &rest).is_empty());
        // So does a gap in the windows (audio that was never analysed).
        let mut c = AudioAlerts::new(&dead_air_rules(), RATE);
        let mut gapped: Vec<WindowProb> = (0..300).map(|i| w(i, 0.1)).collect();
        gapped.extend((310..610).map(|i| w(i, 0.1)));
        assert!(run_windows(&mut c, len, &gapped).is_empty());
    }

    #[test]
    fn clipping_fires_once_per_episode() {
        let spec = RuleSpec::Clipping {
            window_ms: 1000,
            ratio: 0.005,
        };
        let mut a = AudioAlerts::new(&only("clipping", spec, 0), RATE);
        let w = |i: u64, clipped| window(i * 512, 0.9, -10.0, clipped);
        // 2 s clean, then 10 clipped samples per window: 80 of 16000 after 8 windows.
        let mut ws: Vec<WindowProb> = (0..62).map(|i| w(i, 0)).collect();
        ws.extend((62..70).map(|i| w(i, 10)));
        let out = run_windows(&mut a, 512, &ws);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].start, 62 * 512);
        assert_eq!(out[0].end, 70 * 512);
        assert_eq!(out[0].kind, AlertKind::Level);
        assert_eq!(out[0].label, "clipping");
        assert_eq!(
            out[0].text,
            "input is clipping (0.5 % of samples at full scale)"
        );
        assert!((out[0].confidence - 1.0).abs() < 1e-6);

        // Keeps clipping: same episode. Then 31 clean windows (less than 1 s): still the
        // same episode.
        let mut ws: Vec<WindowProb> = (70..130).map(|i| w(i, 10)).collect();
        ws.extend((130..161).map(|i| w(i, 0)));
        ws.extend((161..200).map(|i| w(i, 10)));
        assert!(run_windows(&mut a, 512, &ws).is_empty());

        // A full second clean ends it; clipping again fires again.
        let mut ws: Vec<WindowProb> = (200..240).map(|i| w(i, 0)).collect();
        ws.extend((240..260).map(|i| w(i, 10)));
        let out = run_windows(&mut a, 512, &ws);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start, 240 * 512);
    }

    #[test]
    fn clipping_below_ratio_is_quiet() {
        let spec = RuleSpec::Clipping {
            window_ms: 1000,
            ratio: 0.005,
        };
        let mut a = AudioAlerts::new(&only("clipping", spec, 0), RATE);
        // 2 clipped samples per window: 64 per second, below 80.
        let ws: Vec<WindowProb> = (0..200).map(|i| window(i * 512, 0.9, -10.0, 2)).collect();
        assert!(run_windows(&mut a, 512, &ws).is_empty());
    }

    #[test]
    fn quiet_speech_fires_once_per_episode() {
        let spec = RuleSpec::Quiet {
            window_ms: 3000,
            below_db: -45.0,
        };
        let mut a = AudioAlerts::new(&only("too-quiet", spec, 0), RATE);
        let w = |i: u64, prob, level| window(i * 512, prob, level, 0);
        // Quiet non-speech never counts.
        let noise: Vec<WindowProb> = (0..200).map(|i| w(i, 0.1, -60.0)).collect();
        assert!(run_windows(&mut a, 512, &noise).is_empty());

        // Soft speech: half of 48000 samples is 24000, reached by the 47th window.
        let soft: Vec<WindowProb> = (200..246).map(|i| w(i, 0.9, -55.0)).collect();
        assert!(run_windows(&mut a, 512, &soft).is_empty());
        let out = a.push(&Perception {
            rate: RATE,
            window: 512,
            windows: vec![w(246, 0.9, -55.0)],
            ..Default::default()
        });
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (200 * 512, 247 * 512));
        assert_eq!(out[0].label, "quiet");
        assert_eq!(out[0].text, "speech is too quiet (-55.0 dBFS)");
        assert!(out[0].confidence > 0.5 && out[0].confidence <= 1.0);

        // Still soft: same episode.
        let soft: Vec<WindowProb> = (247..400).map(|i| w(i, 0.9, -55.0)).collect();
        assert!(run_windows(&mut a, 512, &soft).is_empty());

        // Loud speech ends it; soft speech again fires again.
        let loud: Vec<WindowProb> = (400..600).map(|i| w(i, 0.9, -20.0)).collect();
        assert!(run_windows(&mut a, 512, &loud).is_empty());
        let soft: Vec<WindowProb> = (600..800).map(|i| w(i, 0.9, -60.0)).collect();
        let out = run_windows(&mut a, 512, &soft);
        assert_eq!(out.len(), 1);
        assert!(out[0].start >= 600 * 512 - 48_000);
    }

    #[test]
    fn quiet_episode_ends_when_speech_stops() {
        let spec = RuleSpec::Quiet {
            window_ms: 1000,
            below_db: -45.0,
        };
        let mut a = AudioAlerts::new(&only("too-quiet", spec, 0), RATE);
        let w = |i: u64, prob| window(i * 512, prob, -55.0, 0);
        let mut ws: Vec<WindowProb> = (0..40).map(|i| w(i, 0.9)).collect();
        ws.extend((40..80).map(|i| w(i, 0.1)));
        ws.extend((80..120).map(|i| w(i, 0.9)));
        assert_eq!(run_windows(&mut a, 512, &ws).len(), 2);
    }

    #[test]
    fn audio_alerts_come_in_start_order() {
        let mut rules = dead_air_rules();
        rules.rules.extend(sound_rules(0).rules);
        let mut a = AudioAlerts::new(&rules, RATE);
        assert!(!a.is_empty());
        // 12 s of dead windows (512 samples) and an alarm from 2 s, in one chunk.
        let ws: Vec<WindowProb> = (0..375).map(|i| window(i * 512, 0.0, -70.0, 0)).collect();
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let out = a.push(&Perception {
            rate: RATE,
            window: 512,
            windows: ws,
            labels,
            tags: tag_frames(12 * 16_000, &[(2 * 16_000, 6 * 16_000)]),
            reset: true,
        });
        let kinds: Vec<AlertKind> = out.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::DeadAir, AlertKind::SoundEvent]);
        assert!(out.windows(2).all(|p| p[0].start <= p[1].start));
    }

    #[test]
    fn audio_and_text_evaluators_take_their_own_rules() {
        let d = RuleSet::defaults();
        let t = TextAlerts::new(
            &only(
                "x",
                RuleSpec::DeadAir {
                    seconds: 1.0,
                    level_db: -45.0,
                    speech_threshold: 0.5,
                },
                0,
            ),
            RATE,
        );
        assert!(t.is_empty());
        let a = AudioAlerts::new(
            &only(
                "x",
                RuleSpec::Keyword {
                    words: vec!["a".into()],
                },
                0,
            ),
            RATE,
        );
        assert!(a.is_empty());
        assert!(!AudioAlerts::new(&d, RATE).is_empty());
    }
}
