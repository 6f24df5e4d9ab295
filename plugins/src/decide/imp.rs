use std::sync::{Arc, LazyLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::decide::alerts::AudioAlerts;
use soundflow::decide::decision::Decision;
use soundflow::decide::decision::{Decider, DecisionConfig, Event};
use soundflow::decide::head::{DecisionHead, HeadStream};
use soundflow::decide::turn::TurnModel;
use soundflow::perceive::perception::AudioHistory;

use crate::meta;
use crate::rules::Rules;
use crate::util::{clock, stream_times};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-decide",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm decisions"),
    )
});

/// The end-of-turn model asked at each pause, by default.
pub const DEFAULT_TURN_MODEL: &str = "smart-turn-v3.2";
/// Measured on 159 real sentences (the Asterisk prompts, `lalm-asr-bench`): asked after
/// 200 ms at 0.5, as pipecat does, 10 sentences were split at a phrase break; at 0.9 after
/// 300 ms none was, as with `min-silence-ms` alone (README, "Fast subtitles").
const DEFAULT_TURN_THRESHOLD: f32 = 0.9;
/// Silence after which the turn model is asked (see the threshold).
const DEFAULT_TURN_PAUSE_MS: u32 = 300;
/// The early ask is off by default until measured (see `turn-early-pause-ms`).
const DEFAULT_TURN_EARLY_PAUSE_MS: u32 = 0;
const DEFAULT_TURN_EARLY_THRESHOLD: f32 = 0.97;
/// Two threads: 28 ms a call against 45 ms on one (this project's 2-core machine), and the
/// call sits on the path from the end of speech to the final cue.
const DEFAULT_TURN_THREADS: u32 = 2;
/// The prefetch is measured in docs/benchmarks.md ("Asking the turn model a chunk early").
const DEFAULT_TURN_PREFETCH: bool = false;

#[derive(Debug, Clone)]
struct Settings {
    config: DecisionConfig,
    /// Alert rules file; None for the built-in rules, "none" for no rules.
    rules: Option<String>,
    /// End-of-turn model package; empty for none.
    turn_model: String,
    turn_threshold: f32,
    turn_pause_ms: u32,
    turn_early_pause_ms: u32,
    turn_early_threshold: f32,
    turn_threads: u32,
    turn_prefetch: bool,
    /// Decision head package; empty for none (the sound rules decide).
    decision_model: String,
    ort_library: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: DecisionConfig::default(),
            rules: None,
            turn_model: DEFAULT_TURN_MODEL.into(),
            turn_threshold: DEFAULT_TURN_THRESHOLD,
            turn_pause_ms: DEFAULT_TURN_PAUSE_MS,
            turn_early_pause_ms: DEFAULT_TURN_EARLY_PAUSE_MS,
            turn_early_threshold: DEFAULT_TURN_EARLY_THRESHOLD,
            turn_threads: DEFAULT_TURN_THREADS,
            turn_prefetch: DEFAULT_TURN_PREFETCH,
            decision_model: String::new(),
            ort_library: None,
        }
    }
}

/// The end-of-turn model with the audio it needs.
struct Turn {
    /// Shared with the streaming thread while it runs, out of the state lock.
    model: Arc<TurnModel>,
    threshold: f32,
    /// Samples of silence after which it is asked.
    pause: u64,
    /// An earlier ask with a stricter threshold (0: none).
    early_pause: u64,
    early_threshold: f32,
    audio: AudioHistory,
    scratch: Vec<f32>,
    /// The pause (its start) it was last asked about, and how far: 1 the early ask, 2 the
    /// ask at `pause`.
    asked: Option<(u64, u8)>,
    /// Ask a chunk before `pause` is reached (`turn-prefetch`).
    prefetch: bool,
    /// That ask, running: the pause it is about (its start), and the answer to come.
    prefetched: Option<(u64, std::thread::JoinHandle<soundflow::Result<f32>>)>,
}

#[derive(Default)]
struct State {
    decider: Option<Decider>,
    rules: Option<Rules>,
    alerts: Option<AudioAlerts>,
    /// The tagger labels the sound-event rules were checked against.
    checked_labels: Option<Vec<String>>,
    rate: u32,
    /// Running sum and count of the speech probabilities of the utterance under way.
    prob_sum: f64,
    prob_n: u64,
    turn: Option<Turn>,
    head: Option<Head>,
    s16: bool,
    /// Bus messages to post once the lock is let go.
    posts: Vec<Post>,
    stats: Stats,
}

/// The decision head and the stream's chunks it decides on.
struct Head {
    model: DecisionHead,
    stream: HeadStream,
    /// The tagger's labels were found to give the head nothing, and that was said.
    warned: bool,
}

/// A `lalm-decision` message waiting to be posted.
struct Post {
    kind: &'static str,
    start: u64,
    end: u64,
    rate: u32,
    confidence: f64,
}

/// What the `stats` property reports; kept across flushes, reset at READY.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    speech_starts: u64,
    turn_ends: u64,
    alerts: u64,
    turn_asks: u64,
    turn_early_ends: u64,
    turn_prefetch_hits: u64,
    head_chunks: u64,
}

/// What the end-of-turn model is asked about a pause, and the probability that ends the turn.
struct TurnQuestion {
    model: Arc<TurnModel>,
    audio: Vec<f32>,
    threshold: f32,
    /// The answer of an ask made a chunk earlier about the same pause (`turn-prefetch`).
    prefetched: Option<std::thread::JoinHandle<soundflow::Result<f32>>>,
}

pub struct Decide {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl Decide {
    /// The model package `name` names, loaded by `load` on the CPU with `threads` intra-op
    /// threads; `None` when `name` is empty or `none`. `off` says how to do without it.
    fn load_cpu_model<T>(
        &self,
        name: &str,
        threads: usize,
        off: &str,
        load: impl FnOnce(
            &soundflow::models::package::ModelPackage,
            &soundflow::models::runtime::Runtime,
            &soundflow::models::runtime::SessionOptions,
        ) -> soundflow::Result<T>,
    ) -> Result<Option<T>, gst::ErrorMessage> {
        let name = name.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let pkg = soundflow::models::package::ModelPackage::find(name)
            .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{}", e), ["{}", off]))?;
        let library = self.settings.lock().ort_library.clone();
        let rt =
            soundflow::models::runtime::Runtime::get(library.as_deref().map(std::path::Path::new))
                .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        let opts = soundflow::models::runtime::SessionOptions {
            provider: soundflow::models::runtime::ExecutionProvider::Cpu,
            intra_threads: threads,
            ..Default::default()
        };
        load(&pkg, &rt, &opts).map(Some).map_err(|e| match e {
            soundflow::Error::ModelFileMissing { .. } | soundflow::Error::ModelLoad { .. } => {
                gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
            }
            _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
        })
    }

    /// The end-of-turn model `turn-model` names, on the CPU (it is small and asked once per
    /// pause); `None` when it is off.
    fn load_turn_model(&self) -> Result<Option<Turn>, gst::ErrorMessage> {
        let s = self.settings.lock().clone();
        let Some(model) = self.load_cpu_model(
            &s.turn_model,
            s.turn_threads as usize,
            "set turn-model=none to end turns on min-silence-ms alone",
            TurnModel::load,
        )?
        else {
            return Ok(None);
        };
        gst::info!(
            CAT,
            imp = self,
            "end-of-turn model {} asked after {} ms of silence, threshold {}",
            model.name(),
            s.turn_pause_ms,
            s.turn_threshold
        );
        Ok(Some(Turn {
            pause: soundflow::base::time::ms_to_samples(s.turn_pause_ms, model.sample_rate()),
            early_pause: soundflow::base::time::ms_to_samples(
                s.turn_early_pause_ms.min(s.turn_pause_ms),
                model.sample_rate(),
            ),
            early_threshold: s.turn_early_threshold,
            model: Arc::new(model),
            threshold: s.turn_threshold,
            audio: AudioHistory::default(),
            scratch: Vec::new(),
            asked: None,
            prefetch: s.turn_prefetch,
            prefetched: None,
        }))
    }

    /// The decision head `decision-model` names, on the CPU (a few hundred multiply-adds per
    /// half second); `None` when the sound rules decide.
    fn load_decision_head(&self) -> Result<Option<DecisionHead>, gst::ErrorMessage> {
        let name = self.settings.lock().decision_model.clone();
        let Some(head) = self.load_cpu_model(
            &name,
            1,
            "leave decision-model empty for the sound rules' own thresholds",
            DecisionHead::load,
        )?
        else {
            return Ok(None);
        };
        gst::info!(
            CAT,
            imp = self,
            "decision head {} decides on sounds, threshold {}",
            head.name(),
            head.threshold()
        );
        Ok(Some(head))
    }

    /// The head's responses to the tagger windows of `p`, as sound-event alerts in place of
    /// those of the sound rules. A response is about the respond class scoring highest in its
    /// chunk, and goes out under that class's rule (its name and `assistant` key); a class
    /// the rules do not list gets none: rules still forbid.
    fn head_alerts(
        &self,
        st: &mut State,
        p: &soundflow::perceive::perception::Perception,
    ) -> Vec<soundflow::decide::alerts::types::Alert> {
        use soundflow::decide::alerts::types::{Alert, AlertKind, RuleSpec, SoundRole};
        let rate = st.rate;
        let State {
            head, rules, stats, ..
        } = st;
        let Some(h) = head.as_mut() else {
            return Vec::new();
        };
        if p.reset {
            h.stream.reset();
        }
        let chunks = h.stream.push(&p.labels, &p.tags);
        if h.stream.usable() == Some(false) && !h.warned {
            h.warned = true;
            gst::warning!(
                CAT,
                imp = self,
                "decision head {}: the tagger has no Speech label or none of the respond \
                 classes' labels, so the head hears nothing (use an AudioSet tagger such as \
                 ced-tiny)",
                h.model.name()
            );
        }
        if chunks.is_empty() {
            return Vec::new();
        }
        stats.head_chunks += chunks.len() as u64;
        let inputs: Vec<Vec<f32>> = chunks.iter().map(|c| c.inputs.clone()).collect();
        let probs = match h.model.respond(&inputs) {
            Ok(p) => p,
            Err(e) => {
                gst::warning!(CAT, imp = self, "decision head failed: {e}");
                return Vec::new();
            }
        };
        let threshold = h.model.threshold();
        let mut out = Vec::new();
        for (c, prob) in chunks.iter().zip(probs) {
            gst::trace!(
                CAT,
                imp = self,
                "chunk {}..{}: respond {prob:.3}",
                c.start,
                c.end
            );
            let Some(r) = h.stream.decide(c, prob, threshold) else {
                continue;
            };
            let rule = rules.as_ref().and_then(|rs| {
                rs.set.rules.iter().find(|rule| {
                    rule.name == r.class.name
                        && matches!(
                            rule.spec,
                            RuleSpec::SoundEvent {
                                role: SoundRole::Respond,
                                ..
                            }
                        )
                })
            });
            let Some(rule) = rule else {
                gst::debug!(
                    CAT,
                    imp = self,
                    "decision head: respond to {} ({prob:.2}), but no rule lists the class",
                    r.class.name
                );
                continue;
            };
            out.push(Alert {
                kind: AlertKind::SoundEvent,
                rule: rule.name.clone(),
                text: format!("{} detected", r.label),
                label: r.label,
                confidence: prob,
                start: r.start,
                end: r.end,
                rate,
                assistant: rule.assistant,
            });
        }
        out
    }

    /// During a pause of `turn-pause-ms`, the end-of-turn model is asked once whether the
    /// turn is complete: this is the question, if one is due, to run out of the state lock.
    fn turn_question(&self, st: &mut State, window_end: u64) -> Option<TurnQuestion> {
        let rate = st.rate;
        let (Some(turn), Some(decider)) = (st.turn.as_mut(), st.decider.as_ref()) else {
            return None;
        };
        let since = decider.pause_since()?;
        if turn.model.sample_rate() != rate {
            return None;
        }
        let done = match turn.asked {
            Some((s, stage)) if s == since => stage,
            _ => 0,
        };
        let paused = window_end.saturating_sub(since);
        let (stage, threshold) = if done < 2 && paused >= turn.pause {
            (2, turn.threshold)
        } else if done < 1 && turn.early_pause > 0 && paused >= turn.early_pause {
            (1, turn.early_threshold)
        } else {
            return None;
        };
        turn.asked = Some((since, stage));
        let prefetched = match turn.prefetched.take() {
            Some((s, h)) if s == since && stage == 2 => Some(h),
            _ => None,
        };
        if prefetched.is_none() {
            st.stats.turn_asks += 1;
        }
        let from = window_end.saturating_sub(turn.model.window() as u64);
        Some(TurnQuestion {
            model: turn.model.clone(),
            audio: turn.audio.range(from, window_end).to_vec(),
            threshold,
            prefetched,
        })
    }

    /// With `turn-prefetch`: when the pause under way will reach `turn-pause-ms` within the
    /// next chunk (as long as this one), the model is asked now, on a thread of its own, about
    /// the audio up to `chunk_end`. The ask at `turn-pause-ms` then takes that answer if it
    /// ends the turn, so the model's run is off the path from the end of speech to the turn's
    /// end; otherwise it asks again as without the prefetch. The answer depends only on the
    /// audio, so a file still gives the same events whatever the timing.
    fn prefetch_turn(&self, st: &mut State, chunk_end: u64, chunk_len: u64) {
        let rate = st.rate;
        let (Some(turn), Some(decider)) = (st.turn.as_mut(), st.decider.as_ref()) else {
            return;
        };
        let Some(since) = decider.pause_since() else {
            turn.prefetched = None;
            return;
        };
        if !turn.prefetch
            || turn.model.sample_rate() != rate
            || turn
                .asked
                .is_some_and(|(s, stage)| s == since && stage >= 2)
            || turn.prefetched.as_ref().is_some_and(|(s, _)| *s == since)
        {
            return;
        }
        let paused = chunk_end.saturating_sub(since);
        if paused >= turn.pause || paused + chunk_len < turn.pause {
            return;
        }
        let from = chunk_end.saturating_sub(turn.model.window() as u64);
        let audio = turn.audio.range(from, chunk_end).to_vec();
        let model = turn.model.clone();
        match std::thread::Builder::new()
            .name("lalm-turn-ask".into())
            .spawn(move || model.completion(&audio))
        {
            Ok(h) => {
                turn.prefetched = Some((since, h));
                st.stats.turn_asks += 1;
            }
            // Without a thread the ask is simply made at `turn-pause-ms`.
            Err(e) => gst::debug!(CAT, imp = self, "no thread for the early turn ask: {e}"),
        }
    }

    /// The model's answer: if the turn is complete it ends now rather than after
    /// `min-silence-ms`.
    fn turn_answer(
        &self,
        st: &mut State,
        p: soundflow::Result<f32>,
        threshold: f32,
    ) -> Option<Event> {
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                gst::warning!(CAT, imp = self, "end-of-turn model failed: {e}");
                return None;
            }
        };
        let (Some(_), Some(decider)) = (st.turn.as_ref(), st.decider.as_mut()) else {
            return None;
        };
        gst::debug!(
            CAT,
            imp = self,
            "pause at {:?}: turn complete with probability {p:.3}",
            decider.pause_since()
        );
        if p < threshold {
            return None;
        }
        let ev = decider.end_turn();
        if ev.is_some() {
            st.stats.turn_early_ends += 1;
        }
        ev
    }

    /// Posts what waits in `posts`; never under the state lock (a bus handler may read this
    /// element's properties).
    fn post_all(&self, posts: Vec<Post>) {
        for p in posts {
            self.post(p.kind, p.start, p.end, p.rate, p.confidence);
        }
    }

    fn post(&self, kind: &str, start: u64, end: u64, rate: u32, confidence: f64) {
        let seg = self
            .obj()
            .segment()
            .downcast::<gst::ClockTime>()
            .unwrap_or_else(|_| gst::FormattedSegment::new());
        let (s, e, rt) = stream_times(&seg, clock(start, rate), clock(end, rate));
        gst::debug!(CAT, imp = self, "{kind} {s}..{e}");
        let msg = gst::message::Element::builder(
            gst::Structure::builder("lalm-decision")
                .field("kind", kind)
                .field("start", s)
                .field("end", e)
                .field("running-time", rt)
                .field("confidence", confidence)
                .build(),
        )
        .src(&*self.obj())
        .build();
        let _ = self.obj().post_message(msg);
    }

    fn apply(&self, st: &mut State, ev: Event, d: &mut Decision) {
        let rate = st.rate;
        let conf = if st.prob_n > 0 {
            st.prob_sum / st.prob_n as f64
        } else {
            0.0
        };
        let post = |kind, start, end| Post {
            kind,
            start,
            end,
            rate,
            confidence: conf,
        };
        match ev {
            Event::SpeechStart { start } => {
                d.events.push(ev);
                st.stats.speech_starts += 1;
                st.posts.push(post("speech-start", start, start));
            }
            Event::TurnEnd { start, end } => {
                d.events.push(ev);
                st.stats.turn_ends += 1;
                st.posts.push(post("turn-end", start, end));
                st.prob_sum = 0.0;
                st.prob_n = 0;
            }
        }
    }

    /// Closes what is open: before a discontinuity and at EOS, an utterance under way ends
    /// where the audio ends.
    fn finish(&self, st: &mut State) -> Option<Decision> {
        let ev = st.decider.as_mut()?.finish()?;
        let mut d = Decision {
            rate: st.rate,
            ..Default::default()
        };
        self.apply(st, ev, &mut d);
        d.settled_until = st.decider.as_ref().map(|x| x.settled_until()).unwrap_or(0);
        Some(d)
    }

    /// Sound-event rules name tagger labels. A label a rules file names that the tagger does
    /// not have is an error (it names the label and its line); a built-in class none of
    /// whose labels the tagger has stays idle, which is logged.
    fn check_labels(&self, st: &mut State, labels: &[String]) -> Result<(), gst::FlowError> {
        if st.checked_labels.as_deref() == Some(labels) {
            return Ok(());
        }
        st.checked_labels = Some(labels.to_vec());
        let (Some(alerts), Some(rules)) = (st.alerts.as_ref(), st.rules.as_ref()) else {
            return Ok(());
        };
        let wanted = rules.set.sound_rules();
        if wanted.is_empty() {
            return Ok(());
        }
        if labels.is_empty() {
            let why = format!(
                "sound-event rules ({}) need a tagger, but lalm-perceive runs none",
                wanted.join(", ")
            );
            if rules.from_file {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("Alert rules from {} cannot all fire: {}", rules.origin, why)
                );
            } else {
                gst::info!(CAT, imp = self, "built-in sound-event rules idle: {why}");
            }
            return Ok(());
        }
        match alerts.check_labels(labels) {
            Ok(idle) if idle.is_empty() => Ok(()),
            Ok(idle) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "sound-event rules idle, the tagger has none of their labels: {}",
                    idle.join(", ")
                );
                Ok(())
            }
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    ("Alert rules from {}: {}", rules.origin, e)
                );
                Err(gst::FlowError::Error)
            }
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Decide {
    const NAME: &'static str = "GstLalmDecide";
    type Type = super::Decide;
    type ParentType = gst_base::BaseTransform;

    fn new() -> Self {
        Self {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for Decide {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = DecisionConfig::default();
            vec![
                crate::rules::param_spec("Audio rules are evaluated here, text rules by lalm-respond."),
                glib::ParamSpecFloat::builder("threshold")
                    .nick("Speech threshold")
                    .blurb("Speech probability at or above which speech begins")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("neg-threshold")
                    .nick("Silence threshold")
                    .blurb("Speech probability below which silence is counted (hysteresis: must not exceed threshold)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.neg_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-speech-ms")
                    .nick("Minimum speech")
                    .blurb("Speech shorter than this is ignored; a speech start is reported once speech lasted this long")
                    .maximum(60_000)
                    .default_value(d.min_speech_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-silence-ms")
                    .nick("Minimum silence")
                    .blurb("Silence that ends a turn; shorter pauses stay inside the utterance")
                    .maximum(60_000)
                    .default_value(d.min_silence_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("speech-pad-ms")
                    .nick("Speech padding")
                    .blurb("Milliseconds added before and after each utterance (never overlapping the previous one)")
                    .maximum(10_000)
                    .default_value(d.speech_pad_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("turn-model")
                    .nick("End-of-turn model")
                    .blurb("turn-detector model package (a folder, its model.toml, or a package name searched like lalm-perceive's model) asked once per pause, after turn-pause-ms of silence, whether the turn is complete: if so the turn ends then instead of after min-silence-ms; none (or empty) ends turns on min-silence-ms alone")
                    .default_value(Some(DEFAULT_TURN_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("turn-threshold")
                    .nick("Turn-complete threshold")
                    .blurb("Probability from the end-of-turn model at or above which a pause ends the turn")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_TURN_THRESHOLD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("turn-pause-ms")
                    .nick("Pause before asking")
                    .blurb("Milliseconds of silence after which the end-of-turn model is asked (a turn never ends sooner; min-silence-ms still ends it if the model says no)")
                    .maximum(60_000)
                    .default_value(DEFAULT_TURN_PAUSE_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("turn-early-pause-ms")
                    .nick("Pause before the early ask")
                    .blurb("Milliseconds of silence after which the end-of-turn model is first asked, with turn-early-threshold: a turn it is surest of ends then, sooner than turn-pause-ms; 0 asks only at turn-pause-ms. Each early ask is one more model call per pause")
                    .maximum(60_000)
                    .default_value(DEFAULT_TURN_EARLY_PAUSE_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("turn-early-threshold")
                    .nick("Early turn-complete threshold")
                    .blurb("Probability at or above which the early ask (turn-early-pause-ms) ends the turn")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_TURN_EARLY_THRESHOLD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("turn-threads")
                    .nick("End-of-turn model threads")
                    .blurb("ONNX Runtime intra-op threads of the end-of-turn model (its call is on the path from the end of speech to the final cue)")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_TURN_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("turn-prefetch")
                    .nick("Ask the end-of-turn model a chunk early")
                    .blurb("When a pause will reach turn-pause-ms within the next chunk, ask the end-of-turn model now, on its own thread, about the audio so far; at turn-pause-ms its answer ends the turn if it is at or above turn-threshold, and the model is asked again otherwise. Takes the model's run off the path from the end of speech to the turn's end (and the final cue), for one more model call per pause that reaches turn-pause-ms minus a chunk")
                    .default_value(DEFAULT_TURN_PREFETCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("decision-model")
                    .nick("Decision head")
                    .blurb("decision-head model package (a folder, its model.toml, or a package name such as decision-head) that decides, per half second of the tagger's scores and the half minute before, whether a sound calls for a response, in place of the sound-event rules' thresholds; the response goes out as a sound-event alert under the rule of the respond class scoring highest (a class no rule lists gets none), at most once per class in 10 s. Empty or none: the rules decide (the default: on the real test sounds the head found more and sooner but was right less often, docs/alerts.md)")
                    .mutable_ready()
                    .build(),
                crate::session::ort_library_spec(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("lalm-decide-stats: speech-starts, turn-ends, alerts (audio alerts raised), turn-asks (end-of-turn model calls), turn-prefetch-hits (turns ended on the answer of an ask made a chunk early, turn-prefetch), turn-early-ends (turns it ended before min-silence-ms), head-chunks (chunks the decision head was asked about); since READY")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock();
        match pspec.name() {
            "rules" => {
                settings.rules = crate::rules::from_value(value);
                return;
            }
            "turn-model" => {
                settings.turn_model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                return;
            }
            "turn-threshold" => {
                settings.turn_threshold = value.get().expect("type checked upstream");
                return;
            }
            "turn-early-pause-ms" => {
                settings.turn_early_pause_ms = value.get().expect("type checked upstream");
                return;
            }
            "turn-early-threshold" => {
                settings.turn_early_threshold = value.get().expect("type checked upstream");
                return;
            }
            "decision-model" => {
                settings.decision_model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                return;
            }
            "turn-pause-ms" => {
                settings.turn_pause_ms = value.get().expect("type checked upstream");
                return;
            }
            "turn-threads" => {
                settings.turn_threads = value.get().expect("type checked upstream");
                return;
            }
            "turn-prefetch" => {
                settings.turn_prefetch = value.get().expect("type checked upstream");
                return;
            }
            "ort-library" => {
                settings.ort_library = value.get().expect("type checked upstream");
                return;
            }
            _ => {}
        }
        let s = &mut settings.config;
        match pspec.name() {
            "threshold" => s.threshold = value.get().expect("type checked upstream"),
            "neg-threshold" => s.neg_threshold = value.get().expect("type checked upstream"),
            "min-speech-ms" => s.min_speech_ms = value.get().expect("type checked upstream"),
            "min-silence-ms" => s.min_silence_ms = value.get().expect("type checked upstream"),
            "speech-pad-ms" => s.speech_pad_ms = value.get().expect("type checked upstream"),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        // The streaming thread takes the state lock, then the settings': never the reverse.
        if pspec.name() == "stats" {
            let st = self.state.lock().stats;
            return gst::Structure::builder("lalm-decide-stats")
                .field("speech-starts", st.speech_starts)
                .field("turn-ends", st.turn_ends)
                .field("alerts", st.alerts)
                .field("turn-asks", st.turn_asks)
                .field("turn-early-ends", st.turn_early_ends)
                .field("turn-prefetch-hits", st.turn_prefetch_hits)
                .field("head-chunks", st.head_chunks)
                .build()
                .to_value();
        }
        let settings = self.settings.lock();
        let s = &settings.config;
        match pspec.name() {
            "rules" => settings.rules.to_value(),
            "turn-model" => settings.turn_model.to_value(),
            "decision-model" => settings.decision_model.to_value(),
            "turn-threshold" => settings.turn_threshold.to_value(),
            "turn-pause-ms" => settings.turn_pause_ms.to_value(),
            "turn-early-pause-ms" => settings.turn_early_pause_ms.to_value(),
            "turn-early-threshold" => settings.turn_early_threshold.to_value(),
            "turn-threads" => settings.turn_threads.to_value(),
            "turn-prefetch" => settings.turn_prefetch.to_value(),
            "ort-library" => settings.ort_library.to_value(),
            "threshold" => s.threshold.to_value(),
            "neg-threshold" => s.neg_threshold.to_value(),
            "min-speech-ms" => s.min_speech_ms.to_value(),
            "min-silence-ms" => s.min_silence_ms.to_value(),
            "speech-pad-ms" => s.speech_pad_ms.to_value(),
            _ => unreachable!("only registered properties reach here"),
        }
    }
}

impl GstObjectImpl for Decide {}

impl ElementImpl for Decide {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM decision",
                "Filter/Analyzer/Audio",
                "Decides per chunk whether to stay silent or respond: speech start and turn end \
                 from the perception meta (hysteresis thresholds, minimum speech and silence, \
                 padding) and alerts due by the audio rules (sound events, dead air, level); \
                 attaches LalmDecisionMeta and posts lalm-decision element messages",
                "gst-lalm developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = crate::util::mono_audio_caps();
            crate::util::always_templates(&caps, &caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Decide {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let cfg = self.settings.lock().config;
        cfg.validate()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let spec = self.settings.lock().rules.clone();
        let rules = crate::rules::load(spec.as_deref(), self.obj().upcast_ref(), *CAT)?;
        let turn = self.load_turn_model()?;
        // The stream's chunks are set up with the first chunk's rate.
        let head = self.load_decision_head()?.map(|model| Head {
            model,
            stream: HeadStream::new(16_000),
            warned: false,
        });
        *self.state.lock() = State {
            rules: Some(rules),
            turn,
            head,
            ..Default::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock() = State::default();
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_audio::AudioInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "not raw audio: {incaps}"))?;
        self.state.lock().s16 = info.format() == gst_audio::AudioFormat::S16le;
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Sink
            && let gst::QueryViewMut::Custom(q) = query.view_mut()
            && q.structure()
                .is_some_and(|s| s.name() == meta::TAGGER_WATCH)
        {
            let s = q.structure_mut();
            // Which tagger outputs the sound-event rules act on: lalm-perceive may look at
            // the others coarsely. Answered from the rules alone, before any frame.
            let Some(labels) = meta::tagger_watch_labels(s) else {
                return false;
            };
            let watched = {
                let st = self.state.lock();
                let Some(rules) = st.rules.as_ref() else {
                    return false;
                };
                AudioAlerts::new(&rules.set, st.rate.max(1)).watched_for(&labels)
            };
            gst::debug!(CAT, imp = self, "tagger outputs watched: {watched:?}");
            meta::set_tagger_watch_answer(s, &watched);
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => {
                let mut st = self.state.lock();
                if let Some(d) = st.decider.as_mut() {
                    d.reset();
                }
                if let Some(a) = st.alerts.as_mut() {
                    a.reset();
                }
                if let Some(h) = st.head.as_mut() {
                    h.stream.reset();
                }
                st.prob_sum = 0.0;
                st.prob_n = 0;
            }
            gst::EventView::Eos(_) => {
                let (closing, posts) = {
                    let mut st = self.state.lock();
                    let mut closing = self.finish(&mut st);
                    let end = st.decider.as_ref().map_or(0, |x| x.settled_until());
                    let due = st
                        .alerts
                        .as_mut()
                        .map(|a| a.finish(end))
                        .unwrap_or_default();
                    if !due.is_empty() {
                        let d = closing.get_or_insert_with(|| Decision {
                            rate: st.rate,
                            settled_until: end,
                            ..Default::default()
                        });
                        d.alerts = due;
                    }
                    (closing, std::mem::take(&mut st.posts))
                };
                self.post_all(posts);
                if let Some(d) = closing {
                    let ev = gst::event::CustomDownstream::new(meta::decision_structure(
                        &d,
                        meta::DECISION_EVENT,
                    ));
                    if !self.obj().src_pad().push_event(ev) {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "final decision event not handled downstream"
                        );
                    }
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(p) =
            meta::get_structure(buf, meta::PERCEPTION_META).and_then(|s| meta::perception_from(&s))
        else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("lalm-decide received a chunk without LalmPerceptionMeta"),
                ["put lalm-perceive before lalm-decide"]
            );
            return Err(gst::FlowError::Error);
        };
        let mut st = self.state.lock();
        let mut d = Decision {
            rate: p.rate,
            ..Default::default()
        };
        let restart = p.reset || buf.flags().contains(gst::BufferFlags::DISCONT);
        if restart && let Some(closing) = self.finish(&mut st) {
            d.events.extend(closing.events);
        }
        if st.decider.is_none() || st.rate != p.rate || restart {
            let cfg = self.settings.lock().config;
            st.decider = Some(Decider::new(cfg, p.rate, p.window as usize).map_err(|e| {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", e));
                gst::FlowError::Error
            })?);
            if st.rate != p.rate || st.alerts.is_none() {
                st.alerts = st.rules.as_ref().map(|r| AudioAlerts::new(&r.set, p.rate));
            } else if let Some(a) = st.alerts.as_mut() {
                a.reset();
            }
            if let Some(h) = st.head.as_mut() {
                // Its chunks are counted in samples of the stream's rate.
                h.stream = HeadStream::new(p.rate);
            }
            st.rate = p.rate;
        }
        // The labels come with a stream's first chunk and with those carrying tag frames.
        if p.reset || !p.labels.is_empty() {
            self.check_labels(&mut st, &p.labels)?;
        }
        let (rate, s16) = (st.rate, st.s16);
        if restart && let Some(t) = st.turn.as_mut() {
            t.audio.clear();
            t.asked = None;
            t.prefetched = None;
        }
        if let Some(t) = st.turn.as_mut() {
            let mut scratch = std::mem::take(&mut t.scratch);
            let start = crate::util::new_chunk_samples(buf, rate, s16, &mut scratch)?;
            t.audio.push(start, &scratch);
            t.scratch = scratch;
            // What the model hears, and the chunk after it.
            let keep = t
                .audio
                .end()
                .saturating_sub(t.model.window() as u64 + rate as u64);
            t.audio.trim_before(keep);
        }
        if let Some(a) = st.alerts.as_mut() {
            d.alerts = a.push(&p);
        }
        if st.head.is_some() {
            // The head decides on sounds: the rules' own sound-event alerts give way to it.
            d.alerts
                .retain(|a| a.kind != soundflow::decide::alerts::types::AlertKind::SoundEvent);
            d.alerts.extend(self.head_alerts(&mut st, &p));
            d.alerts.sort_by_key(|a| a.start);
        }
        for a in &d.alerts {
            gst::debug!(
                CAT,
                imp = self,
                "alert {} ({}) {}..{}",
                a.rule,
                a.label,
                a.start,
                a.end
            );
        }
        st.stats.alerts += d.alerts.len() as u64;
        for w in &p.windows {
            let mut ev = st.decider.as_mut().and_then(|x| x.push(*w));
            if ev.is_none()
                && let Some(q) = self.turn_question(&mut st, w.start + p.window as u64)
            {
                // Only this thread changes the state, so letting go of it while the model
                // runs loses nothing; properties and stats stay readable meanwhile.
                drop(st);
                let had_prefetch = q.prefetched.is_some();
                let early = q.prefetched.and_then(|h| h.join().ok()?.ok());
                let hit = early.is_some_and(|p| p >= q.threshold);
                let answer = match early {
                    Some(p) if hit => Ok(p),
                    _ => q.model.completion(&q.audio),
                };
                st = self.state.lock();
                if hit {
                    st.stats.turn_prefetch_hits += 1;
                } else if had_prefetch {
                    st.stats.turn_asks += 1;
                }
                ev = self.turn_answer(&mut st, answer, q.threshold);
            }
            if st.decider.as_ref().is_some_and(|x| x.in_speech())
                || matches!(ev, Some(Event::SpeechStart { .. }))
            {
                st.prob_sum += w.prob as f64;
                st.prob_n += 1;
            }
            if let Some(ev) = ev {
                self.apply(&mut st, ev, &mut d);
            }
        }
        if let (Some(first), Some(last)) = (p.windows.first(), p.windows.last()) {
            let end = last.start + p.window as u64;
            self.prefetch_turn(&mut st, end, end.saturating_sub(first.start));
        }
        if let Some(x) = st.decider.as_ref() {
            d.speaking = x.in_speech();
            d.pause_since = x.pause_since();
            d.settled_until = x.settled_until();
        }
        let posts = std::mem::take(&mut st.posts);
        drop(st);
        self.post_all(posts);
        meta::add_structure(
            buf,
            meta::DECISION_META,
            meta::decision_structure(&d, meta::DECISION_META),
        )
        .map_err(|_| gst::FlowError::Error)?;
        Ok(gst::FlowSuccess::Ok)
    }
}
