//! The utterance scheduler: turns the per-chunk decisions and the audio into decode jobs.
//!
//! It keeps the audio of the utterance under way, opens an utterance at each speech start,
//! asks for a partial decode every `partial_every` samples while it goes on, a final decode
//! at its turn end, and cuts an utterance that runs past `max_utterance` at its quietest
//! point, so that no job is ever longer than the model's window. Events of one chunk are
//! taken in their order, so a turn end followed by the next speech start in the same chunk
//! closes one utterance and opens the next.
//!
//! Speculative finals (the paper's drain-on-trigger): when the utterance under way falls
//! silent, its audio so far is decoded at once as a partial marked `speculative`. If the turn
//! then ends without more speech, its final may take that decode instead of waiting for a new
//! one ([`Job::reuses`]); if speech resumes, the decode served as one more partial. No partial
//! is asked for during a pause: nothing new was said.
//!
//! Sealing (what keeps a decode's cost flat in the utterance's length): when speech resumes
//! after a pause whose speculative decode covers at least `seal_after` of new audio, that
//! decode is sealed into the utterance ([`Plan::seal`]): its words are committed, and every
//! later decode of the utterance (partial, speculative or final) starts at the end of its
//! audio, inside the pause, instead of at the utterance's start. A word never straddles a
//! pause, and the decoder hears whole phrases, so accuracy holds while a partial costs what the
//! audio since the last pause costs.
//!
//! Jobs carry the generation they were made in; a flush starts a new generation, so a decode
//! that was under way when the flush came is recognised as stale by [`crate::respond::cues`].

use std::collections::VecDeque;

use crate::decide::decision::Decision;
use crate::decide::decision::Event;
use crate::perceive::perception::AudioHistory;
use crate::perceive::vad::WindowProb;

/// How the scheduler cuts and paces, in samples of the stream's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Decode the open utterance again every this many samples; 0 for no partials.
    pub partial_every: u64,
    /// Partial decodes hear at most this many hundredths of a second of audio per second of
    /// the stream, plus `partial_burst`: a credit of audio to decode grows at this rate (up to
    /// the burst) and each partial decode spends what it hears; a partial waits while the
    /// credit is spent. (The decode made as a pause begins is not counted: the final takes
    /// it or a seal does, so it costs what the finals cost.) So the first partials of a phrase come at the
    /// cadence, later ones thin out as what they hear grows, and their cost per second of
    /// speech is bounded whatever the phrase's length. 0 for no bound.
    pub partial_budget_percent: u32,
    /// The most credit that builds up (samples), and what every utterance starts with: its
    /// first partials come at the cadence.
    pub partial_burst: u64,
    /// Longest job: an utterance running past this is cut and answered in parts.
    pub max_utterance: u64,
    /// Most audio kept, if a turn never ends.
    pub max_history: u64,
    /// How far back from the limit a cut may be placed.
    pub cut_search: u64,
    /// The span whose level is compared when looking for the quietest point.
    pub cut_window: u64,
    /// Decode an utterance once it has paused this long (samples), for its final to reuse;
    /// `None` for never.
    pub speculative_after: Option<u64>,
    /// How far a turn's end may lie past a speculative decode's audio for the decode to
    /// stand for it (the end's padding: past it lies resumed speech).
    pub reuse_slack: u64,
    /// Audio before an utterance's start that its decodes also get, never reaching back into
    /// the utterance before: a soft onset ("hey", "h", "f") may start before the VAD hears it.
    pub lead_in: u64,
    /// Seal a pause's speculative decode into the utterance once speech resumes, if it covers
    /// at least this many samples past the last seal; `None` for never (every decode then
    /// starts at the utterance's start).
    pub seal_after: Option<u64>,
    /// No seal before the utterance has run this long (samples from its start): a short
    /// utterance is decoded whole, which Moonshine transcribes better than in pieces (a
    /// piece of a second or two after a seal tends to gain a "Thank you."), and costs little.
    pub seal_from: u64,
}

impl ScheduleConfig {
    /// The defaults of the respond element at `rate`, with the given cadence and limits in ms.
    pub fn from_ms(rate: u32, partial_ms: u32, max_utterance_ms: u32, max_history_ms: u32) -> Self {
        let s = |ms: u32| crate::base::time::ms_to_samples(ms, rate);
        let max_utterance = s(max_utterance_ms).max(1);
        Self {
            partial_every: s(partial_ms),
            // A third of a second of audio per second: with the finals (each bit of audio
            // decoded about once) Moonshine base's loop stays near 0.1 CPU s per audio s.
            partial_budget_percent: 35,
            // The first two or three partials of an utterance at the cadence: two agreeing
            // hypotheses commit its first words as soon as without a budget.
            partial_burst: s(1200),
            max_utterance,
            max_history: s(max_history_ms).max(max_utterance),
            // Up to a quarter of the limit (5 s at 20 s): long enough to find a pause.
            cut_search: s(5000).min(max_utterance / 4).max(1),
            cut_window: s(100).max(1),
            // Shorter gaps are mostly between words; by 100 ms a turn end is near enough that
            // a decode started now is mostly done when it is confirmed.
            speculative_after: Some(s(100)),
            reuse_slack: s(50),
            // Off: a lead-in makes Moonshine's finals a little more accurate on real speech but
            // every first partial later (docs/benchmarks.md).
            lead_in: 0,
            // Shorter phrases decoded alone lose the context that a longer decode gives them.
            seal_after: Some(s(2000)),
            // The Asterisk prompts (most under 8 s) lost 0.7 WER points when sealed after 2 s;
            // from 8 s on, what one decode hears stays bounded all the same.
            seal_from: s(8000),
        }
    }
}

/// A decode of the utterance `[start, end)` of the stream, or of its part from `from` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub generation: u64,
    pub is_final: bool,
    /// The utterance's start (or the cut that began it): the start of its cue.
    pub start: u64,
    /// Where the decoded audio begins: `start`, or the end of the last sealed decode.
    pub from: u64,
    pub end: u64,
    pub rate: u32,
    /// The audio of `[from - lead-in, end)`: it may begin before `from`, never after.
    pub audio: Vec<f32>,
    /// Mean speech probability of the windows in the span.
    pub confidence: f32,
    /// A partial decoded at the start of a pause, kept for the final if the turn ends there.
    pub speculative: bool,
    /// A final whose turn ended in the pause a speculative decode of `[start, this)` was made
    /// at: that decode's result stands for this job's.
    pub reuses: Option<u64>,
    /// A speculative decode's pause: from here on the voice detector heard no speech, so a
    /// word the model places after it is not shown (the turn, if it ends, ends about here).
    pub pause_from: Option<u64>,
    /// Seals `[from, end)` into the utterance (see the module's doc); never dropped or
    /// replaced, and it `reuses` the speculative decode of that audio when there is one.
    pub seals: bool,
}

/// What one decision asks for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Final decodes, in stream order; never dropped.
    pub finals: Vec<Job>,
    /// A seal of the open utterance, after the finals; never dropped.
    pub seal: Option<Job>,
    /// The newest partial decode, if one is due; only the newest one matters.
    pub partial: Option<Job>,
    /// No utterance is open: the text stream may move on to here.
    pub idle_until: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    start: u64,
    /// Decodes of the utterance begin here: `start`, or the end of the last seal.
    from: u64,
    last_partial: u64,
    /// (pause start, end of its audio) of the speculative decode made in the current pause.
    speculative: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Scheduler {
    cfg: ScheduleConfig,
    rate: u32,
    history: AudioHistory,
    /// (window start, probability, level) of recent windows.
    windows: VecDeque<(u64, f32, f32)>,
    open: Option<Open>,
    generation: u64,
    /// Least samples between partials that the decoder can afford (see `set_partial_pace`).
    pace: u64,
    /// End of the last final: a lead-in never reaches back before it.
    answered_until: u64,
    /// Samples of audio partial decodes may still hear (see `partial_budget_percent`), and
    /// the stream position it was counted up to.
    credit: i64,
    credited_at: u64,
}

impl Scheduler {
    pub fn new(cfg: ScheduleConfig, rate: u32) -> Self {
        Self {
            cfg,
            rate,
            history: AudioHistory::default(),
            windows: VecDeque::new(),
            open: None,
            generation: 0,
            pace: 0,
            answered_until: 0,
            credit: cfg.partial_burst.min(i64::MAX as u64) as i64,
            credited_at: 0,
        }
    }

    /// Partials no closer than this many samples, whatever the configured cadence: what a
    /// partial decode costs now, so a slow machine gets fewer rather than a queue.
    pub fn set_partial_pace(&mut self, samples: u64) {
        self.pace = samples;
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether an utterance is under way.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Takes a new configuration; what is open stays open.
    pub fn set_config(&mut self, cfg: ScheduleConfig) {
        self.cfg = cfg;
    }

    /// A new rate (a caps change): positions restart, nothing open carries over.
    pub fn set_rate(&mut self, rate: u32, cfg: ScheduleConfig) {
        if rate != self.rate {
            self.rate = rate;
            self.history.clear();
            self.windows.clear();
            self.open = None;
            self.answered_until = 0;
        }
        self.cfg = cfg;
    }

    /// Forgets the stream and starts a new generation: jobs made before are stale.
    pub fn flush(&mut self) -> u64 {
        self.history.clear();
        self.windows.clear();
        self.open = None;
        self.answered_until = 0;
        self.generation += 1;
        self.generation
    }

    /// Audio of the stream from sample position `pos`.
    pub fn push_audio(&mut self, pos: u64, samples: &[f32]) {
        self.history.push(pos, samples);
    }

    pub fn push_windows(&mut self, windows: &[WindowProb]) {
        self.windows
            .extend(windows.iter().map(|w| (w.start, w.prob, w.level_db)));
    }

    /// End of the audio heard so far.
    pub fn heard(&self) -> u64 {
        self.history.end()
    }

    fn job(&self, is_final: bool, start: u64, from: u64, end: u64) -> Job {
        let (sum, n) = self
            .windows
            .iter()
            .filter(|(s, _, _)| *s >= start && *s < end)
            .fold((0.0f64, 0u32), |(a, n), (_, p, _)| (a + *p as f64, n + 1));
        Job {
            generation: self.generation,
            is_final,
            start,
            from,
            end,
            rate: self.rate,
            audio: self
                .history
                .range(
                    from.saturating_sub(self.cfg.lead_in)
                        .max(self.answered_until)
                        .min(from),
                    end,
                )
                .to_vec(),
            confidence: if n > 0 { (sum / n as f64) as f32 } else { 0.0 },
            speculative: false,
            reuses: None,
            pause_from: None,
            seals: false,
        }
    }

    /// The quietest point of `[from, to)`, judged by the windows' levels; `to` when no
    /// window lies there.
    fn quietest(&self, from: u64, to: u64) -> u64 {
        let span = self.cfg.cut_window;
        self.windows
            .iter()
            .filter(|(s, _, _)| *s > from && *s + span <= to)
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map_or(to, |w| w.0)
    }

    /// The partial budget's credit grows with the stream up to `heard`.
    fn accrue(&mut self, heard: u64) {
        let gained = heard.saturating_sub(self.credited_at)
            * u64::from(self.cfg.partial_budget_percent)
            / 100;
        let burst = self.burst();
        self.credit = self
            .credit
            .saturating_add(gained.min(i64::MAX as u64) as i64)
            .min(burst);
        self.credited_at = heard;
    }

    fn burst(&self) -> i64 {
        self.cfg.partial_burst.min(i64::MAX as u64) as i64
    }

    /// A partial decode of `n` samples spends its credit.
    fn spend(&mut self, n: u64) {
        self.credit = self.credit.saturating_sub(n.min(i64::MAX as u64) as i64);
    }

    /// Where to cut an utterance that started at `start`, decoded from `from`, so that its
    /// first part stays within the limit.
    fn cut_point(&self, start: u64, from: u64) -> u64 {
        let limit = start + self.cfg.max_utterance;
        let lo = limit.saturating_sub(self.cfg.cut_search).max(from);
        self.quietest(lo, limit)
    }

    /// Final jobs for `[start, end)` decoded from `from`, cut into parts no longer than the
    /// limit.
    fn finals(&mut self, mut start: u64, mut from: u64, end: u64, out: &mut Vec<Job>) {
        while end.saturating_sub(start) > self.cfg.max_utterance {
            let cut = self.cut_point(start, from).max(from);
            out.push(self.final_job(start, from, cut));
            (start, from) = (cut, cut);
        }
        if end > start {
            // A turn may end inside audio already sealed: its final decodes nothing new.
            out.push(self.final_job(start, from.min(end), end));
        }
    }

    fn final_job(&mut self, start: u64, from: u64, end: u64) -> Job {
        let job = self.job(true, start, from, end);
        self.answered_until = self.answered_until.max(end);
        job
    }

    /// The jobs a chunk's decision calls for. The chunk's audio and windows must have been
    /// pushed before.
    pub fn decide(&mut self, d: &Decision) -> Plan {
        let mut plan = Plan::default();
        let heard = self.heard();
        self.accrue(heard);
        for ev in &d.events {
            match *ev {
                Event::SpeechStart { start } => {
                    if self.open.is_none() {
                        // Each utterance's first words come at the cadence, whatever the one
                        // before spent: its debt is forgiven, the burst is its own.
                        self.credit = self.credit.max(self.burst());
                        self.open = Some(Open {
                            start,
                            from: start,
                            last_partial: heard,
                            speculative: None,
                        });
                    }
                }
                Event::TurnEnd { start, end } => {
                    // A long utterance already cut keeps its cut as the start.
                    let open = self.open.take();
                    let start = open.map_or(start, |o| o.start.max(start));
                    let from = open.map_or(start, |o| o.from.max(start));
                    let first = plan.finals.len();
                    self.finals(start, from, end, &mut plan.finals);
                    // The speculative decode holds everything up to the pause and some of
                    // it; the turn's end (the pause's start, padded) lies within that audio
                    // unless speech resumed after it, which moves the end past it.
                    if let Some((_, spec_end)) = open.and_then(|o| o.speculative)
                        && plan.finals.len() == first + 1
                        && let Some(job) = plan.finals.last_mut()
                        && job.start == start
                        && job.from == from
                        && job.end <= spec_end + self.cfg.reuse_slack
                    {
                        job.reuses = Some(spec_end);
                    }
                }
            }
        }
        while let Some(open) = self.open
            && heard.saturating_sub(open.start) > self.cfg.max_utterance
        {
            let cut = self.cut_point(open.start, open.from).max(open.from);
            let job = self.final_job(open.start, open.from, cut);
            plan.finals.push(job);
            self.open = Some(Open {
                start: cut,
                from: cut,
                last_partial: heard,
                speculative: None,
            });
        }
        let pause = d.pause_since.filter(|_| self.open.is_some());
        if let Some(open) = self.open
            && let Some((p, spec_end)) = open.speculative
            && Some(p) != pause
        {
            // Speech resumed (or a new pause began): the old decode is a partial, or, if it
            // heard enough new audio, the sealed start of the rest of the utterance.
            let seal = self
                .cfg
                .seal_after
                .is_some_and(|min| spec_end.saturating_sub(open.from) >= min)
                && spec_end.saturating_sub(open.start) >= self.cfg.seal_from;
            if seal {
                let mut job = self.job(false, open.start, open.from, spec_end);
                job.seals = true;
                job.reuses = Some(spec_end);
                job.pause_from = Some(p);
                plan.seal = Some(job);
                self.answered_until = self.answered_until.max(spec_end);
            }
            if let Some(o) = self.open.as_mut() {
                o.speculative = None;
                if seal {
                    o.from = spec_end;
                }
            }
        }
        if let (Some(after), Some(p), Some(open)) = (self.cfg.speculative_after, pause, self.open)
            && open.speculative.is_none()
            && p > open.from
            && heard.saturating_sub(p) >= after
        {
            let end = heard.min(open.start + self.cfg.max_utterance);
            let mut job = self.job(false, open.start, open.from, end);
            job.speculative = true;
            job.pause_from = Some(p);
            plan.partial = Some(job);
            if let Some(o) = self.open.as_mut() {
                o.speculative = Some((p, end));
                o.last_partial = heard;
            }
        } else if self.cfg.partial_every > 0
            && pause.is_none()
            && let Some(open) = self.open
            && heard.saturating_sub(open.last_partial) >= self.cfg.partial_every.max(self.pace)
            && (self.cfg.partial_budget_percent == 0 || self.credit > 0)
        {
            // A partial never reaches past the limit either: it waits for the cut.
            let end = heard.min(open.start + self.cfg.max_utterance);
            let job = self.job(false, open.start, open.from, end);
            let n = job.audio.len() as u64;
            plan.partial = Some(job);
            if let Some(o) = self.open.as_mut() {
                o.last_partial = heard;
            }
            self.spend(n);
        }
        // Audio before the settled position (or the open utterance) is never needed again;
        // bound what is kept even if a turn never ends.
        let keep_from = self
            .open
            .map_or(d.settled_until, |o| o.start.min(d.settled_until))
            .saturating_sub(self.cfg.lead_in)
            .max(heard.saturating_sub(self.cfg.max_history));
        self.history.trim_before(keep_from);
        while self.windows.front().is_some_and(|(w, _, _)| *w < keep_from) {
            self.windows.pop_front();
        }
        plan.idle_until = self.open.is_none().then_some(d.settled_until);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16000;
    const CHUNK: u64 = 6400;

    /// The cadence alone paces partials here; the budget has its own test.
    fn cfg() -> ScheduleConfig {
        ScheduleConfig {
            lead_in: 4000,
            partial_budget_percent: 0,
            ..ScheduleConfig::from_ms(RATE, 1000, 20_000, 120_000)
        }
    }

    /// Feeds `chunks` chunks of audio (level -20 dB, -60 dB where `quiet` says) and the
    /// decisions `events(i)` gives for chunk i; returns the plans.
    fn run(
        chunks: u64,
        events: impl Fn(u64) -> Vec<Event>,
        quiet: impl Fn(u64) -> bool,
        sched: &mut Scheduler,
    ) -> Vec<Plan> {
        let mut plans = Vec::new();
        for i in 0..chunks {
            let pos = i * CHUNK;
            sched.push_audio(pos, &vec![0.1; CHUNK as usize]);
            let windows: Vec<WindowProb> = (0..CHUNK / 512)
                .map(|k| {
                    let s = pos + k * 512;
                    WindowProb {
                        start: s,
                        prob: 0.9,
                        level_db: if quiet(s) { -60.0 } else { -20.0 },
                        clipped: 0,
                    }
                })
                .collect();
            sched.push_windows(&windows);
            let d = Decision {
                rate: RATE,
                events: events(i),
                ..Default::default()
            };
            plans.push(sched.decide(&d));
        }
        plans
    }

    #[test]
    fn a_turn_end_and_the_next_start_in_one_chunk_open_the_next_utterance() {
        let mut s = Scheduler::new(cfg(), RATE);
        // Utterance 1 from chunk 0 to chunk 5; in chunk 5 it ends and utterance 2 starts.
        let plans = run(
            80,
            |i| match i {
                0 => vec![Event::SpeechStart { start: 0 }],
                5 => vec![
                    Event::TurnEnd {
                        start: 0,
                        end: 5 * CHUNK,
                    },
                    Event::SpeechStart {
                        start: 5 * CHUNK + 3000,
                    },
                ],
                _ => vec![],
            },
            |_| false,
            &mut s,
        );
        let finals: Vec<&Job> = plans.iter().flat_map(|p| &p.finals).collect();
        assert_eq!(finals[0].start, 0);
        assert_eq!(finals[0].end, 5 * CHUNK);
        // The second utterance is open: partials come, and it is cut at the limit.
        assert!(plans[6..12].iter().any(|p| p.partial.is_some()));
        assert!(finals.len() >= 2, "the second utterance was never cut");
        for f in &finals {
            assert!(
                f.end - f.start <= cfg().max_utterance,
                "job of {} samples",
                f.end - f.start
            );
        }
        assert_eq!(finals[1].start, 5 * CHUNK + 3000);
    }

    #[test]
    fn long_utterances_are_cut_at_their_quietest_point_within_the_limit() {
        let mut s = Scheduler::new(cfg(), RATE);
        // A window boundary near 17 s.
        let quiet_at = 531 * 512;
        let plans = run(
            60,
            |i| match i {
                0 => vec![Event::SpeechStart { start: 0 }],
                59 => vec![Event::TurnEnd {
                    start: 0,
                    end: 59 * CHUNK,
                }],
                _ => vec![],
            },
            |pos| (quiet_at..quiet_at + 2048).contains(&pos),
            &mut s,
        );
        let finals: Vec<&Job> = plans.iter().flat_map(|p| &p.finals).collect();
        assert_eq!(finals[0].start, 0);
        assert_eq!(finals[0].end, quiet_at);
        assert_eq!(finals[0].audio.len() as u64, quiet_at);
        // The turn end answers the rest, from the cut on, with no lead-in into the first part.
        assert_eq!((finals[1].start, finals[1].end), (quiet_at, 59 * CHUNK));
        assert_eq!(finals[1].audio.len() as u64, 59 * CHUNK - quiet_at);
    }

    #[test]
    fn decodes_get_the_lead_in_but_never_the_utterance_before() {
        let lead = cfg().lead_in;
        assert!(lead > 0);
        let mut s = Scheduler::new(cfg(), RATE);
        // Utterances at chunks 2..8 and 10..13, then 13..16 right after the second.
        let plans = run(
            20,
            |i| match i {
                2 => vec![Event::SpeechStart { start: 2 * CHUNK }],
                8 => vec![Event::TurnEnd {
                    start: 2 * CHUNK,
                    end: 8 * CHUNK,
                }],
                10 => vec![Event::SpeechStart { start: 10 * CHUNK }],
                13 => vec![
                    Event::TurnEnd {
                        start: 10 * CHUNK,
                        end: 13 * CHUNK,
                    },
                    Event::SpeechStart {
                        start: 13 * CHUNK + 100,
                    },
                ],
                16 => vec![Event::TurnEnd {
                    start: 13 * CHUNK + 100,
                    end: 16 * CHUNK,
                }],
                _ => vec![],
            },
            |_| false,
            &mut s,
        );
        let finals: Vec<&Job> = plans.iter().flat_map(|p| &p.finals).collect();
        assert_eq!(finals.len(), 3, "{finals:?}");
        assert_eq!(finals[0].audio.len() as u64, 6 * CHUNK + lead);
        // Two chunks of silence between: more than the lead-in.
        assert!(2 * CHUNK > lead);
        assert_eq!(finals[1].audio.len() as u64, 3 * CHUNK + lead);
        // Only the 100 samples since the last final.
        assert_eq!(finals[2].audio.len() as u64, 3 * CHUNK - 100 + 100);
        // Partials of an open utterance get it too.
        let partial = plans[2..8]
            .iter()
            .find_map(|p| p.partial.as_ref())
            .expect("a partial of the first utterance");
        assert_eq!(
            partial.audio.len() as u64,
            partial.end - partial.start + lead
        );
    }

    #[test]
    fn a_turn_end_longer_than_the_limit_is_answered_in_parts() {
        // The start was missed (no speech start ever came): the turn end alone spans 45 s.
        let mut s = Scheduler::new(cfg(), RATE);
        let end = 45 * RATE as u64;
        let plans = run(
            end / CHUNK + 1,
            |i| {
                if i == end / CHUNK {
                    vec![Event::TurnEnd { start: 0, end }]
                } else {
                    vec![]
                }
            },
            |_| false,
            &mut s,
        );
        let finals: Vec<&Job> = plans.iter().flat_map(|p| &p.finals).collect();
        assert_eq!(finals.len(), 3);
        assert_eq!(finals[0].start, 0);
        assert_eq!(finals.last().map(|f| f.end), Some(end));
        for w in finals.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(
            finals
                .iter()
                .all(|f| f.end - f.start <= cfg().max_utterance)
        );
    }

    #[test]
    fn partials_come_at_their_cadence_and_a_flush_starts_a_new_generation() {
        let mut s = Scheduler::new(cfg(), RATE);
        let plans = run(
            10,
            |i| match i {
                0 => vec![Event::SpeechStart { start: 0 }],
                _ => vec![],
            },
            |_| false,
            &mut s,
        );
        let partials: Vec<&Job> = plans.iter().filter_map(|p| p.partial.as_ref()).collect();
        // 1000 ms cadence from the start's chunk: chunks 3, 6 and 9 (each 1.2 s on).
        assert_eq!(partials.len(), 3);
        assert!(partials.iter().all(|p| p.generation == 0 && !p.is_final));
        assert!(s.is_open());
        assert_eq!(s.flush(), 1);
        assert!(!s.is_open());
        let d = Decision {
            rate: RATE,
            events: vec![Event::TurnEnd {
                start: 0,
                end: CHUNK,
            }],
            ..Default::default()
        };
        s.push_audio(0, &vec![0.0; CHUNK as usize]);
        let plan = s.decide(&d);
        assert_eq!(plan.finals[0].generation, 1);
        assert_eq!(plan.idle_until, Some(0));
    }

    /// One chunk of audio and its decision, by hand.
    fn step(s: &mut Scheduler, i: u64, events: Vec<Event>, pause_since: Option<u64>) -> Plan {
        s.push_audio(i * CHUNK, &vec![0.1; CHUNK as usize]);
        s.decide(&Decision {
            rate: RATE,
            events,
            pause_since,
            ..Default::default()
        })
    }

    #[test]
    fn a_pause_is_decoded_at_once_and_its_turn_end_reuses_the_decode() {
        let mut s = Scheduler::new(cfg(), RATE);
        assert!(
            step(&mut s, 0, vec![Event::SpeechStart { start: 0 }], None)
                .partial
                .is_none()
        );
        step(&mut s, 1, vec![], None);
        // Silent since 2.5 chunks in: by the end of chunk 2 the pause is 0.5 chunk (200 ms).
        let plan = step(&mut s, 2, vec![], Some(CHUNK * 5 / 2));
        let spec = plan.partial.expect("a speculative decode");
        assert!(spec.speculative && !spec.is_final);
        assert_eq!((spec.start, spec.end), (0, 3 * CHUNK));
        // The pause goes on: no more partials, whatever the cadence.
        assert!(
            step(&mut s, 3, vec![], Some(CHUNK * 5 / 2))
                .partial
                .is_none()
        );
        let end = CHUNK * 5 / 2 + 480;
        let plan = step(&mut s, 4, vec![Event::TurnEnd { start: 0, end }], None);
        assert_eq!(plan.finals.len(), 1);
        assert_eq!(plan.finals[0].reuses, Some(3 * CHUNK));
    }

    #[test]
    fn speech_after_a_pause_makes_its_decode_a_plain_partial() {
        let mut s = Scheduler::new(cfg(), RATE);
        step(&mut s, 0, vec![Event::SpeechStart { start: 0 }], None);
        let spec = step(&mut s, 1, vec![], Some(CHUNK / 2)).partial;
        assert!(spec.is_some_and(|j| j.speculative));
        // Too short a pause asks for nothing.
        assert!(
            step(&mut s, 2, vec![], Some(3 * CHUNK - 512))
                .partial
                .is_none()
        );
        step(&mut s, 3, vec![], None);
        // Speech resumed and the turn ends after it: the final is decoded afresh.
        let plan = step(
            &mut s,
            4,
            vec![Event::TurnEnd {
                start: 0,
                end: 4 * CHUNK + 480,
            }],
            None,
        );
        assert_eq!(plan.finals[0].reuses, None);
        let mut s = Scheduler::new(
            ScheduleConfig {
                speculative_after: None,
                ..cfg()
            },
            RATE,
        );
        step(&mut s, 0, vec![Event::SpeechStart { start: 0 }], None);
        assert!(
            step(&mut s, 1, vec![], Some(CHUNK / 2)).partial.is_none(),
            "off"
        );
    }

    #[test]
    fn a_long_phrase_before_a_pause_is_sealed_and_later_decodes_start_after_it() {
        let mut s = Scheduler::new(
            ScheduleConfig {
                seal_from: 0,
                ..cfg()
            },
            RATE,
        );
        step(&mut s, 0, vec![Event::SpeechStart { start: 0 }], None);
        for i in 1..6 {
            step(&mut s, i, vec![], None);
        }
        // 2.6 s of speech, then a pause: its decode covers 2.8 s, past `seal_after` (2 s).
        let spec = step(&mut s, 6, vec![], Some(6 * CHUNK + CHUNK / 2))
            .partial
            .expect("a speculative decode");
        assert_eq!((spec.from, spec.end), (0, 7 * CHUNK));
        // Speech resumes: the decode is sealed, not thrown away.
        let plan = step(&mut s, 7, vec![], None);
        let seal = plan.seal.expect("a seal");
        assert!(seal.seals && !seal.is_final);
        assert_eq!((seal.start, seal.from, seal.end), (0, 0, 7 * CHUNK));
        assert_eq!(seal.reuses, Some(7 * CHUNK));
        // Every later decode hears only the audio after the seal, with no lead-in back into it.
        let mut partials = Vec::new();
        for i in 8..12 {
            partials.extend(step(&mut s, i, vec![], None).partial);
        }
        assert!(!partials.is_empty());
        for p in &partials {
            assert_eq!((p.start, p.from), (0, 7 * CHUNK));
            assert_eq!(p.audio.len() as u64, p.end - 7 * CHUNK);
        }
        let plan = step(
            &mut s,
            12,
            vec![Event::TurnEnd {
                start: 0,
                end: 12 * CHUNK,
            }],
            None,
        );
        let f = &plan.finals[0];
        assert_eq!((f.start, f.from, f.end), (0, 7 * CHUNK, 12 * CHUNK));
        assert_eq!(f.audio.len() as u64, 5 * CHUNK);
        assert!(plan.seal.is_none());
    }

    #[test]
    fn a_short_phrase_is_not_sealed_and_sealing_can_be_off() {
        // Too little new audio; sealing off; or an utterance shorter than `seal_from`.
        for (seal_after, seal_from) in [
            (Some(32 * CHUNK), 0),
            (None, 0),
            (
                Some(CHUNK),
                ScheduleConfig::from_ms(RATE, 200, 20_000, 120_000).seal_from,
            ),
        ] {
            let mut s = Scheduler::new(
                ScheduleConfig {
                    seal_after,
                    seal_from,
                    ..cfg()
                },
                RATE,
            );
            step(&mut s, 0, vec![Event::SpeechStart { start: 0 }], None);
            for i in 1..6 {
                step(&mut s, i, vec![], None);
            }
            assert!(
                step(&mut s, 6, vec![], Some(6 * CHUNK + CHUNK / 2))
                    .partial
                    .is_some()
            );
            assert!(step(&mut s, 7, vec![], None).seal.is_none());
            let plan = step(
                &mut s,
                8,
                vec![Event::TurnEnd {
                    start: 0,
                    end: 8 * CHUNK,
                }],
                None,
            );
            assert_eq!(plan.finals[0].from, 0);
        }
    }

    #[test]
    fn the_budget_thins_partials_as_the_phrase_grows_and_bounds_what_they_hear() {
        let cfg = ScheduleConfig {
            partial_budget_percent: 100,
            partial_burst: 2 * RATE as u64,
            ..ScheduleConfig::from_ms(RATE, 200, 20_000, 120_000)
        };
        let chunks = 50; // 20 s of speech with no pause
        let run = |cfg: ScheduleConfig| {
            let mut s = Scheduler::new(cfg, RATE);
            let (mut at, mut heard) = (Vec::new(), 0u64);
            for i in 0..chunks {
                let ev = if i == 0 {
                    vec![Event::SpeechStart { start: 0 }]
                } else {
                    vec![]
                };
                if let Some(p) = step(&mut s, i, ev, None).partial {
                    at.push(i);
                    heard += p.audio.len() as u64;
                }
            }
            (at, heard)
        };
        let (at, heard) = run(cfg);
        // The burst: the first partials come at the cadence, one per chunk.
        assert_eq!(&at[..2], &[1, 2], "{at:?}");
        // Later ones thin out: the gaps grow with what the phrase has become.
        let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.last() > gaps.first(), "{at:?}");
        // What they heard in all stays within the stream (100 %) and the burst, plus the
        // last one's audio (spent after it was granted).
        let last = at.last().map_or(0, |&c| (c + 1) * CHUNK);
        assert!(
            heard <= chunks * CHUNK + cfg.partial_burst + last,
            "{heard}"
        );
        // Without the budget they come at the cadence and hear the square of the length.
        let (_, unbounded) = run(ScheduleConfig {
            partial_budget_percent: 0,
            ..cfg
        });
        assert!(unbounded > 4 * heard, "{unbounded} vs {heard}");
    }

    #[test]
    fn partials_slow_down_to_what_the_decoder_affords() {
        let mut s = Scheduler::new(cfg(), RATE);
        // Each partial took 2 s to decode: one every 2 s of audio, not every 1 s.
        s.set_partial_pace(2 * RATE as u64);
        let mut n = 0;
        for i in 0..20 {
            let ev = if i == 0 {
                vec![Event::SpeechStart { start: 0 }]
            } else {
                vec![]
            };
            n += usize::from(step(&mut s, i, ev, None).partial.is_some());
        }
        // 8 s of audio: 3 partials (every 5 chunks), not 6.
        assert_eq!(n, 3);
    }
}
