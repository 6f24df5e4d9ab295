//! `lalm-respond`: the streaming thread schedules decodes ([`soundflow::respond::schedule`]), a worker
//! (the src pad's task, `output.rs`) runs them in order with the events and sends the cues,
//! and alerts go out three ways (`alert.rs`).
//!
//! Locks: `settings` (properties), `state` (the streaming thread's), `worker` (what the
//! worker sends and counts: never held through an inference or a push, so `stats` and the
//! properties can always be read), and `responder` (the model, used only by the worker).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::decide::alerts::{RuleSet, TextAlerts};
use soundflow::decide::decision::Decision;
use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{Runtime, SessionOptions};
use soundflow::perceive::speaker::{SpeakerEmbedder, SpeakerLabels};
use soundflow::respond::asr::whisper::decode::DecodeOptions;
use soundflow::respond::asr::whisper::{Transcriber, WhisperResponder};
use soundflow::respond::cues::CueMaker;
use soundflow::respond::profanity::ProfanityFilter;
use soundflow::respond::response::{Responder, TurnEndResponder};
use soundflow::respond::schedule::{Job, ScheduleConfig, Scheduler};
use soundflow::respond::subtitle::SubtitleWriter;

#[path = "alert.rs"]
mod alert;
#[path = "assist.rs"]
mod assist;
#[path = "output.rs"]
mod output;
pub use alert::alert_caps;

use super::{Mode, SoundCaptions, TextItems};
use crate::meta;
use crate::perceive::ExecutionProvider;
use crate::session::SessionSettings;
use crate::worker::{Pushed, WorkQueue};

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-respond",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm responses"),
    )
});

/// Chosen by `lalm-asr-bench` on real speech (README, "Fast subtitles"): against whisper-base
/// its final cues come sooner, its words on screen twice as fast, at a third of the CPU, with
/// fewer errors. English only; whisper-base speaks the other languages.
const DEFAULT_MODEL: &str = "moonshine-base";
const DEFAULT_LANGUAGE: &str = "en";
const DEFAULT_MAX_HISTORY_MS: u32 = 120_000;
/// Partials are asked for no faster than 1.5 times what the last one took, so a slower model
/// gets a slower cadence by itself. On real speech with moonshine-base, 200 ms puts the first
/// partial 0.88 s after speech starts (1.34 s at 500 ms) at the same final latency and WER.
const DEFAULT_PARTIAL_MS: u32 = 200;
const DEFAULT_MAX_UTTERANCE_MS: u32 = 20_000;
pub(super) const DEFAULT_LATENCY_MS: u32 = 8000;
const DEFAULT_THREADS: u32 = 2;
const DEFAULT_SEAL_AFTER_MS: u32 = 2000;
const DEFAULT_SEAL_FROM_MS: u32 = 8000;
const DEFAULT_PARTIAL_BUDGET: f32 = 0.35;
const NO_ASSISTANT: &str = "none";
const DEFAULT_ASSISTANT_MAX_TOKENS: u32 = 60;
/// Final decodes that may wait for the worker. A file waits for room; a live stream never
/// waits (its audio would be dropped upstream): a final past this is dropped with a warning.
const MAX_WAITING_FINALS: usize = 16;

#[derive(Debug, Clone)]
struct Settings {
    mode: Mode,
    model: String,
    language: String,
    provider: ExecutionProvider,
    threads: u32,
    partial_ms: u32,
    max_utterance_ms: u32,
    finals_only: bool,
    text_items: TextItems,
    sound_captions: SoundCaptions,
    /// Speaker-embedding package; "none" gives no speaker labels.
    speaker_model: String,
    /// Similarity at which an utterance is a known speaker's; below 0, the package's.
    speaker_threshold: f32,
    /// Written before a new speaker's first cue in the subtitle file (">> ").
    subtitle_speaker_prefix: Option<String>,
    text_speaker_prefix: Option<String>,
    latency_ms: u32,
    lateness_ms: u32,
    subtitle_location: Option<String>,
    /// `default` (the built-in English list) or a word-list file; None shows every word.
    profanity_filter: Option<String>,
    /// A file of terms the ASR favours.
    vocabulary: Option<String>,
    max_history_ms: u32,
    lead_in_ms: u32,
    seal_after_ms: u32,
    seal_from_ms: u32,
    partial_budget: f32,
    rules: Option<String>,
    session: SessionSettings,
    remote: crate::remote::RemoteSettings,
    ort_library: Option<String>,
    /// Language model package for the assistant; "none" turns it off.
    assistant_model: String,
    assistant_prompt: String,
    assistant_max_tokens: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Transcript,
            model: DEFAULT_MODEL.into(),
            language: DEFAULT_LANGUAGE.into(),
            provider: ExecutionProvider::Auto,
            threads: DEFAULT_THREADS,
            partial_ms: DEFAULT_PARTIAL_MS,
            max_utterance_ms: DEFAULT_MAX_UTTERANCE_MS,
            finals_only: false,
            text_items: TextItems::Cue,
            sound_captions: SoundCaptions::None,
            speaker_model: NO_SPEAKER_MODEL.into(),
            speaker_threshold: -1.0,
            subtitle_speaker_prefix: None,
            text_speaker_prefix: None,
            latency_ms: DEFAULT_LATENCY_MS,
            lateness_ms: 0,
            subtitle_location: None,
            profanity_filter: None,
            vocabulary: None,
            max_history_ms: DEFAULT_MAX_HISTORY_MS,
            lead_in_ms: 0,
            seal_after_ms: DEFAULT_SEAL_AFTER_MS,
            seal_from_ms: DEFAULT_SEAL_FROM_MS,
            partial_budget: DEFAULT_PARTIAL_BUDGET,
            rules: None,
            session: SessionSettings::default(),
            remote: Default::default(),
            ort_library: None,
            assistant_model: NO_ASSISTANT.into(),
            assistant_prompt: assist::DEFAULT_PROMPT.into(),
            assistant_max_tokens: DEFAULT_ASSISTANT_MAX_TOKENS,
        }
    }
}

impl Settings {
    /// The scheduler's settings.
    fn schedule(&self, rate: u32) -> ScheduleConfig {
        let mut cfg = ScheduleConfig::from_ms(
            rate,
            self.partial_ms,
            self.max_utterance_ms,
            self.max_history_ms,
        );
        cfg.lead_in = soundflow::base::time::ms_to_samples(self.lead_in_ms, rate);
        cfg.partial_budget_percent = (self.partial_budget * 100.0).round() as u32;
        cfg.seal_after = (self.seal_after_ms > 0)
            .then(|| soundflow::base::time::ms_to_samples(self.seal_after_ms, rate));
        cfg.seal_from = soundflow::base::time::ms_to_samples(self.seal_from_ms, rate);
        // A turn-end responder has nothing to say before the turn ends. With finals-only
        // nothing shows a partial: only the decodes made as a pause begins remain, which the
        // final takes or a long utterance is sealed with (each bit of audio decoded about once).
        if self.mode != Mode::Transcript {
            cfg.partial_every = 0;
            cfg.speculative_after = None;
            cfg.seal_after = None;
        } else if self.finals_only {
            cfg.partial_every = 0;
        }
        cfg
    }
}

/// Work for the worker, in order with the serialized events.
pub(super) enum Work {
    /// Decode a job; when it was queued, for the latency warning.
    Decode(Job, Instant),
    /// Move the text stream's time to here with a GAP.
    Advance(gst::ClockTime),
    /// The assistant finished replies: send them on the text pad.
    Answers,
    /// The audio rate from here on (the text rules count in samples).
    Rate(u32),
    /// A sound's bracketed caption for the text pad.
    Caption(SoundCaption),
}

/// A sound caption ("[APPLAUSE]") over the sound's span, in stream samples.
pub(super) struct SoundCaption {
    pub text: String,
    pub start: u64,
    pub end: u64,
    pub rate: u32,
}

/// How far behind the audio the text stream's GAPs stay while sound captions are on: a
/// sound rule knows a sound about 1.2 s (p95 1.6 s) after its onset, and its caption is
/// stamped at the onset, which the text stream must not have passed yet.
const CAPTION_HOLD_MS: u64 = 3000;

/// `speaker-model` value that turns speaker labels off.
pub(super) const NO_SPEAKER_MODEL: &str = "none";
/// Most speakers one stream tells apart; past it an utterance takes the closest one's label.
const MAX_SPEAKERS: usize = 32;

/// The streaming thread's state.
struct State {
    rate: u32,
    s16: bool,
    segment: gst::FormattedSegment<gst::ClockTime>,
    scheduler: Scheduler,
    scratch: Vec<f32>,
    /// Whether upstream is live; asked once per stream.
    live: Option<bool>,
    /// Captions of sounds heard during an utterance, held until its final is queued, so a
    /// caption never delays or splits a speech cue.
    captions: Vec<SoundCaption>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            rate: 16000,
            s16: false,
            segment: gst::FormattedSegment::new(),
            scheduler: Scheduler::new(Settings::default().schedule(16000), 16000),
            scratch: Vec::new(),
            live: None,
            captions: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Stats {
    pub responses: u64,
    pub cues: u64,
    /// Text buffers moved forward to arrive within the latency (live only).
    pub moved_forward: u64,
    /// Longest time from a text buffer's wanted running time to its push (live only).
    pub max_commit_delay: gst::ClockTime,
    pub dropped_finals: u64,
    pub dropped_alert_buffers: u64,
    /// Finals answered by the speculative decode made when their turn paused.
    pub speculative_finals: u64,
    /// Utterances' phrases sealed at a pause: later decodes of the utterance start after them.
    pub sealed: u64,
    /// Plain partial decodes run (neither speculative nor seals).
    pub partial_decodes: u64,
    /// Decodes run before a turn's end (partial, speculative or seal), and the audio they
    /// heard in ms: in all, and the most one of them heard.
    pub early_decodes: u64,
    pub early_audio_ms: u64,
    pub early_audio_max_ms: u64,
    /// Audio (ms) every decode run heard, for how often a second of audio is decoded.
    pub decoded_audio_ms: u64,
    /// Speculative decodes made (the rest served as partials: speech resumed).
    pub speculative_decodes: u64,
    /// Partial decodes called off by a final.
    pub cancelled_partials: u64,
    /// Decodes under way when a flush came, stopped.
    pub cancelled_flushed: u64,
    /// Replies of the assistant, and how many of them were decisions to stay silent.
    pub assistant_replies: u64,
    pub assistant_silent: u64,
    pub sound_captions: u64,
    /// Voice prints made (`speaker-model`).
    pub speaker_prints: u64,
}

/// What the worker sends and counts.
pub(super) struct WorkerState {
    pub segment: gst::FormattedSegment<gst::ClockTime>,
    /// Everything before this was covered on the text stream.
    pub text_pos: gst::ClockTime,
    pub cues: CueMaker,
    pub subtitle: Option<SubtitleWriter<std::fs::File>>,
    /// Masks listed words in everything shown (`profanity-filter`); rules hear them unmasked.
    pub profanity: Option<Arc<ProfanityFilter>>,
    /// The stream's speakers (with `speaker-model`), the utterance whose speaker is known
    /// (its start, its label) and the speaker of the last cue sent.
    pub speakers: Option<SpeakerLabels>,
    pub utterance_speaker: Option<(u64, usize)>,
    pub last_speaker: Option<usize>,
    /// The speaker of the last final written to the subtitle file.
    pub subtitle_speaker: Option<usize>,
    pub rules: Option<RuleSet>,
    pub text_alerts: Option<TextAlerts>,
    pub live: bool,
    /// Upstream's minimum latency, as the last latency query found it.
    pub upstream_latency: gst::ClockTime,
    /// The alert pad's last timestamp: its buffers never go back in time.
    pub alert_pts: gst::ClockTime,
    pub active_provider: Option<String>,
    pub stats: Stats,
    /// The last speculative decode: (generation, where its audio began, end, its result).
    pub speculative: Option<(
        u64,
        u64,
        u64,
        Option<soundflow::respond::response::Response>,
    )>,
    /// The ASR server status generation already reported.
    pub remote_seen: u64,
}

impl Default for WorkerState {
    fn default() -> Self {
        Self {
            segment: gst::FormattedSegment::new(),
            text_pos: gst::ClockTime::ZERO,
            cues: CueMaker::new(),
            subtitle: None,
            profanity: None,
            speakers: None,
            utterance_speaker: None,
            last_speaker: None,
            subtitle_speaker: None,
            rules: None,
            text_alerts: None,
            live: false,
            upstream_latency: gst::ClockTime::ZERO,
            alert_pts: gst::ClockTime::ZERO,
            active_provider: None,
            stats: Stats::default(),
            speculative: None,
            remote_seen: 0,
        }
    }
}

pub struct Respond {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    alertpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    worker: Mutex<WorkerState>,
    responder: Mutex<Option<Box<dyn Responder>>>,
    queue: WorkQueue<Work>,
    alert_queue: WorkQueue<gst::Buffer>,
    /// The stream's generation: a flush starts a new one, and work of an older one is dropped.
    generation: AtomicU64,
    /// What the worker is decoding, so that a final can call off a partial under way.
    flight: Mutex<Flight>,
    /// How long the last partial decode took (µs): partials are not asked for faster than
    /// the worker can make them.
    partial_us: AtomicU64,
    /// The language model's thread, with `assistant-model`.
    assistant: Mutex<Option<Arc<assist::AssistantHandle>>>,
    /// The speaker-embedding model (`speaker-model`), run on the worker thread.
    speaker: Mutex<Option<Arc<SpeakerEmbedder>>>,
}

/// The decode under way, shared by the worker (which starts and ends it) and the streaming
/// thread (which may call it off): one lock, so a final is never called off by mistake.
#[derive(Default)]
pub(super) struct Flight {
    /// The responder's flag, when it can stop early.
    pub cancel: Option<soundflow::base::cancel::CancelFlag>,
    /// A plain partial is being decoded: a final queued now calls it off.
    pub partial: bool,
}

impl Respond {
    fn load_responder(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().clone();
        let rules = crate::rules::load(s.rules.as_deref(), self.obj().upcast_ref(), *CAT)?;
        let (responder, provider): (Box<dyn Responder>, Option<String>) = match s.mode {
            Mode::TurnEnd => (Box::new(TurnEndResponder), None),
            Mode::Transcript => {
                let pkg = ModelPackage::find(&s.model)
                    .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{}", e)))?;
                let rt = Runtime::get(s.ort_library.as_deref().map(std::path::Path::new))
                    .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
                let mut opts = SessionOptions {
                    provider: s.provider.into(),
                    intra_threads: s.threads.max(1) as usize,
                    ..Default::default()
                };
                s.session.apply(&mut opts);
                if pkg.manifest.family == soundflow::respond::asr::moonshine::FAMILY {
                    opts.remote = s.remote.spec()?;
                    let mut r = self.load_moonshine(&pkg, &rt, &opts, &s.language)?;
                    if let Some(v) = self.vocabulary(&s, &rules)? {
                        r.set_vocabulary(Some(&v), soundflow::respond::asr::vocabulary::BONUS)
                            .map_err(|e| Self::bad_vocabulary(&s, e))?;
                    }
                    let provider = r.model().session_info().active.as_str().to_string();
                    (Box::new(r), Some(provider))
                } else {
                    if let Some(server) = &s.remote.server {
                        // Whisper's decoder caches would travel with every token; its decode
                        // loop is not served (docs/SCALE.md).
                        let text = format!(
                            "{} runs on local ONNX Runtime: only Moonshine's decode loop is served by {server}",
                            pkg.display_name()
                        );
                        gst::warning!(CAT, imp = self, "{text}");
                        let msg =
                            gst::message::Warning::builder(gst::LibraryError::Settings, &text)
                                .src(&*self.obj())
                                .build();
                        let _ = self.obj().post_message(msg);
                    }
                    let t = Transcriber::load(&pkg, &rt, &opts).map_err(|e| match e {
                        soundflow::Error::ModelFileMissing { .. } => {
                            gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
                        }
                        _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
                    })?;
                    // Region codes (en-US, as transcriberbin sets) name the language too.
                    let code = s.language.split(['-', '_']).next().unwrap_or_default();
                    let language = t.language_token(code).ok_or_else(|| {
                        gst::error_msg!(
                            gst::LibraryError::Settings,
                            (
                                "Language '{}' is not known to {}",
                                s.language,
                                pkg.display_name()
                            )
                        )
                    })?;
                    let element = self.obj().upcast_ref::<gst::Element>().clone();
                    crate::session::report_fallback(
                        &element,
                        *CAT,
                        "the ASR model",
                        t.session_info(),
                    );
                    let provider = t.session_info().active.as_str().to_string();
                    gst::info!(
                        CAT,
                        imp = self,
                        "loaded {} on {provider}",
                        pkg.display_name()
                    );
                    let opts = DecodeOptions {
                        language: Some(language),
                        ..Default::default()
                    };
                    let mut r = WhisperResponder::new(t, opts);
                    if let Some(v) = self.vocabulary(&s, &rules)? {
                        r.set_vocabulary(Some(&v), soundflow::respond::asr::vocabulary::BONUS)
                            .map_err(|e| Self::bad_vocabulary(&s, e))?;
                    }
                    (Box::new(r), Some(provider))
                }
            }
        };
        self.flight.lock().cancel = responder.cancel_flag();
        *self.responder.lock() = Some(responder);
        self.load_assistant(&s)?;
        self.load_speaker(&s)?;
        let mut w = self.worker.lock();
        w.active_provider = provider;
        w.rules = Some(rules.set);
        Ok(())
    }

    /// The terms the ASR favours: the `vocabulary` file's, and the wake rules' phrases (a
    /// wake phrase alone in its turn is a second of speech the ASR easily mishears, "Hey,
    /// that's it." for "Hey assistant."); None when there are none.
    fn vocabulary(
        &self,
        s: &Settings,
        rules: &crate::rules::Rules,
    ) -> Result<Option<soundflow::respond::asr::vocabulary::Vocabulary>, gst::ErrorMessage> {
        let mut v = match s.vocabulary.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => {
                let v = soundflow::respond::asr::vocabulary::Vocabulary::load(
                    std::path::Path::new(path),
                )
                .map_err(|e| Self::bad_vocabulary(s, e))?;
                gst::info!(
                    CAT,
                    imp = self,
                    "{} vocabulary terms from {path}",
                    v.terms.len()
                );
                v
            }
            None => soundflow::respond::asr::vocabulary::Vocabulary { terms: Vec::new() },
        };
        for rule in &rules.set.rules {
            if let soundflow::decide::alerts::types::RuleSpec::Wake { phrases, .. } = &rule.spec {
                for phrase in phrases {
                    if v.add(phrase, 1.0) {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "wake phrase {phrase:?} favoured by the ASR"
                        );
                    }
                }
            }
        }
        Ok((!v.terms.is_empty()).then_some(v))
    }

    fn bad_vocabulary(s: &Settings, e: soundflow::Error) -> gst::ErrorMessage {
        gst::error_msg!(
            gst::ResourceError::Read,
            (
                "Cannot use vocabulary {}: {}",
                s.vocabulary.as_deref().unwrap_or_default(),
                e
            )
        )
    }

    /// The package an optional model property (`prop`) names, with the runtime and the
    /// session options to load it on `threads`; None when the property is empty or `off`.
    fn optional_package(
        s: &Settings,
        prop: &str,
        name: &str,
        off: &str,
        hint: &str,
        threads: usize,
    ) -> Result<Option<(ModelPackage, Runtime, SessionOptions)>, gst::ErrorMessage> {
        let name = name.trim();
        if name.is_empty() || name == off {
            return Ok(None);
        }
        let pkg = ModelPackage::find(name).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("{}: {}", prop, e),
                ["{}", hint]
            )
        })?;
        let rt = Runtime::get(s.ort_library.as_deref().map(std::path::Path::new))
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        let mut opts = SessionOptions {
            provider: s.provider.into(),
            intra_threads: threads.max(1),
            ..Default::default()
        };
        s.session.apply(&mut opts);
        Ok(Some((pkg, rt, opts)))
    }

    /// The speaker-embedding model, loaded with the element so that a bad package fails the
    /// state change with a clear error.
    fn load_speaker(&self, s: &Settings) -> Result<(), gst::ErrorMessage> {
        let found = Self::optional_package(
            s,
            "speaker-model",
            &s.speaker_model,
            NO_SPEAKER_MODEL,
            "bash models/speaker/build_package.sh builds pyannote-community-1 (scripts/setup.sh does)",
            1,
        )?;
        let Some((pkg, rt, opts)) = found else {
            *self.speaker.lock() = None;
            return Ok(());
        };
        let model = SpeakerEmbedder::load(&pkg, &rt, &opts).map_err(|e| match e {
            soundflow::Error::ModelFileMissing { .. } | soundflow::Error::ModelLoad { .. } => {
                gst::error_msg!(gst::ResourceError::NotFound, ("speaker-model: {}", e))
            }
            _ => gst::error_msg!(gst::LibraryError::Settings, ("speaker-model: {}", e)),
        })?;
        gst::info!(CAT, imp = self, "speaker labels from {}", model.name());
        *self.speaker.lock() = Some(Arc::new(model));
        Ok(())
    }

    /// The assistant's language model, loaded with the element so that a bad package fails
    /// the state change with a clear error.
    fn load_assistant(&self, s: &Settings) -> Result<(), gst::ErrorMessage> {
        // The old one is closed (its thread joined) outside the lock.
        let old = self.assistant.lock().take();
        drop(old);
        let found = Self::optional_package(
            s,
            "assistant-model",
            &s.assistant_model,
            NO_ASSISTANT,
            "the default assistant's model is built by bash scripts/setup.sh --assistant",
            s.threads as usize,
        )?;
        let Some((pkg, rt, opts)) = found else {
            return Ok(());
        };
        let model =
            soundflow::respond::assistant::interaction::LanguageModel::load(&pkg, &rt, &opts)
                .map_err(|e| {
                    gst::error_msg!(gst::LibraryError::Settings, ("assistant-model: {}", e))
                })?;
        let element = self.obj().upcast_ref::<gst::Element>().clone();
        crate::session::report_fallback(
            &element,
            *CAT,
            "the assistant model",
            model.session_info(),
        );
        gst::info!(CAT, imp = self, "assistant {} loaded", model.name());
        let handle = assist::AssistantHandle::start(
            &self.obj(),
            std::sync::Arc::new(model),
            &s.assistant_prompt,
            s.assistant_max_tokens.max(1) as usize,
        )
        .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("assistant-model: {}", e)))?;
        *self.assistant.lock() = Some(Arc::new(handle));
        Ok(())
    }

    /// Moonshine: English only, so another language is refused here rather than transcribed
    /// as English.
    fn load_moonshine(
        &self,
        pkg: &ModelPackage,
        rt: &Runtime,
        opts: &SessionOptions,
        language: &str,
    ) -> Result<soundflow::respond::asr::moonshine::MoonshineResponder, gst::ErrorMessage> {
        let code = language.split(['-', '_']).next().unwrap_or_default();
        if !code.eq_ignore_ascii_case("en") {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                (
                    "{} transcribes English only, not '{}'",
                    pkg.display_name(),
                    language
                ),
                ["use model=whisper-base for other languages"]
            ));
        }
        let m = soundflow::respond::asr::moonshine::MoonshineModel::load(pkg, rt, opts).map_err(
            |e| match e {
                soundflow::Error::ModelFileMissing { .. } => {
                    gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
                }
                _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
            },
        )?;
        let element = self.obj().upcast_ref::<gst::Element>().clone();
        crate::session::report_fallback(&element, *CAT, "the ASR model", m.session_info());
        gst::info!(
            CAT,
            imp = self,
            "loaded {} on {}",
            m.name(),
            m.session_info().active.as_str()
        );
        Ok(soundflow::respond::asr::moonshine::MoonshineResponder::new(
            m,
        ))
    }

    fn open_subtitle_file(&self) -> Result<(), gst::ErrorMessage> {
        let loc = self.settings.lock().subtitle_location.clone();
        let file = match loc {
            None => None,
            Some(path) => Some(SubtitleWriter::create(&path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot write subtitles to {}: {}", path, e)
                )
            })?),
        };
        self.worker.lock().subtitle = file;
        Ok(())
    }

    /// Reads the `profanity-filter` list once per stream start: a list that cannot be read
    /// stops the pipeline rather than show the words it should have masked.
    fn load_profanity(&self) -> Result<(), gst::ErrorMessage> {
        let spec = self.settings.lock().profanity_filter.clone();
        let filter = match spec.as_deref() {
            None | Some("") | Some("none") => None,
            Some(spec) => Some(Arc::new(ProfanityFilter::load(spec).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Read,
                    ("Cannot use profanity-filter {}: {}", spec, e)
                )
            })?)),
        };
        self.worker.lock().profanity = filter;
        Ok(())
    }

    /// Whether upstream is live, asked once per stream: a file decoded faster than real time
    /// queues work and may wait for room; a live source may not.
    fn is_live(&self) -> bool {
        if let Some(l) = self.state.lock().live {
            return l;
        }
        let live = crate::util::upstream_is_live(&self.sinkpad);
        self.state.lock().live = Some(live);
        self.worker.lock().live = live;
        live
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let decision =
            meta::get_structure(&buffer, meta::DECISION_META).and_then(|s| meta::decision_from(&s));
        let Some(decision) = decision else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("lalm-respond received a chunk without LalmDecisionMeta"),
                ["put lalm-decide before lalm-respond"]
            );
            return Err(gst::FlowError::Error);
        };
        let live = self.is_live();
        {
            let mut st = self.state.lock();
            let (rate, s16) = (st.rate, st.s16);
            let mut scratch = std::mem::take(&mut st.scratch);
            let start = crate::util::new_chunk_samples(&buffer, rate, s16, &mut scratch);
            if let Ok(start) = start {
                st.scheduler.push_audio(start, &scratch);
            }
            st.scratch = scratch;
            start?;
            if let Some(p) = meta::get_structure(&buffer, meta::PERCEPTION_META)
                .and_then(|s| meta::perception_from(&s))
            {
                st.scheduler.push_windows(&p.windows);
            }
        }
        self.handle_decision(&decision, live)
    }

    fn handle_decision(
        &self,
        d: &Decision,
        live: bool,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let captions_mode = self.settings.lock().sound_captions;
        let (plan, rate, segment, captions) = {
            let mut st = self.state.lock();
            // Live, partials come no faster than 1.5 times what the last one took: a slow CPU
            // gets fewer of them instead of a queue. From a file only the decode made as a
            // pause begins gives partials: which partials a file got must not depend on the
            // machine's load, and decoding one every `partial-interval-ms` costs the square of
            // an utterance's length, for partial cues nobody watches as they come.
            let pace = if live {
                let took = self.partial_us.load(Ordering::Relaxed);
                (took as u128 * 3 / 2 * st.rate as u128 / 1_000_000) as u64
            } else {
                u64::MAX
            };
            st.scheduler.set_partial_pace(pace);
            let plan = st.scheduler.decide(d);
            gst::trace!(
                CAT,
                imp = self,
                "decision {:?} settled {} pause {:?}: {} finals, partial {}, idle until {:?}",
                d.events,
                d.settled_until,
                d.pause_since,
                plan.finals.len(),
                plan.partial.is_some(),
                plan.idle_until
            );
            // Only alerts need the segment: most chunks copy nothing.
            let segment = (!d.alerts.is_empty()).then(|| st.segment.clone());
            let captions = Self::sound_captions(&mut st, d, captions_mode);
            (plan, st.scheduler.rate(), segment, captions)
        };
        if let Some(segment) = segment {
            for a in &d.alerts {
                self.deliver(&segment, a, a.end, false);
            }
        }
        if !plan.finals.is_empty() && live {
            // Live, a final never waits behind a partial: queued ones go, one under way stops.
            // Not from a file: which partials would be gone depends on the load.
            self.queue.remove_jobs(
                |w| matches!(w, Work::Decode(j, _) if !j.is_final && !j.speculative && !j.seals),
            );
            let f = self.flight.lock();
            if f.partial
                && let Some(c) = &f.cancel
            {
                c.cancel();
            }
        }
        for job in plan.finals {
            let (start, end) = (job.start, job.end);
            match self.queue.push_job(
                Work::Decode(job, Instant::now()),
                MAX_WAITING_FINALS,
                !live,
            )? {
                Pushed::Queued => {}
                Pushed::Full(_) => {
                    self.worker.lock().stats.dropped_finals += 1;
                    gst::element_imp_warning!(
                        self,
                        gst::CoreError::Clock,
                        (
                            "Falling behind real time: the final decode of {}..{} was dropped",
                            crate::util::clock(start, rate),
                            crate::util::clock(end, rate)
                        ),
                        ["use a smaller or quantized model, fewer threads elsewhere, or a GPU"]
                    );
                }
            }
        }
        if let Some(job) = plan.seal {
            // Never dropped: the words of the utterance before it are decoded nowhere else. It
            // mostly takes the speculative decode just made, so it costs little.
            self.worker.lock().stats.sealed += 1;
            self.queue
                .push_job(Work::Decode(job, Instant::now()), usize::MAX, false)?;
        }
        if let Some(job) = plan.partial {
            let work = Work::Decode(job, Instant::now());
            if live {
                // Only the newest partial matters; one still waiting is replaced.
                self.queue.push_or_replace(
                    work,
                    |w| matches!(w, Work::Decode(j, _) if !j.is_final && !j.seals),
                )?;
            } else {
                // From a file the streaming thread waits for the worker instead.
                self.queue.push_job(work, MAX_WAITING_FINALS, true)?;
            }
        }
        for c in captions {
            self.queue.push_job(Work::Caption(c), usize::MAX, false)?;
        }
        // With sound captions on, the text stream stays behind by the time a sound rule
        // takes, so a caption can still be stamped at its sound's onset.
        let hold = match captions_mode {
            SoundCaptions::None => 0,
            _ => CAPTION_HOLD_MS * rate as u64 / 1000,
        };
        if let Some(to) = plan.idle_until.and_then(|t| t.checked_sub(hold)) {
            let work = Work::Advance(crate::util::clock(to, rate));
            if live {
                self.queue
                    .push_or_replace(work, |w| matches!(w, Work::Advance(_)))?;
            } else {
                self.queue.push_job(work, MAX_WAITING_FINALS, true)?;
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// The captions this decision's sound alerts get, and those held for an utterance that
    /// has now ended. `quiet` captions only sounds heard while no utterance is open; `all`
    /// holds the others until the utterance's final is queued (this decision's finals are
    /// queued before the captions it returns).
    fn sound_captions(st: &mut State, d: &Decision, mode: SoundCaptions) -> Vec<SoundCaption> {
        if mode == SoundCaptions::None {
            return Vec::new();
        }
        let open = st.scheduler.is_open();
        for a in &d.alerts {
            use soundflow::decide::alerts::AlertKind;
            if !matches!(a.kind, AlertKind::SoundEvent | AlertKind::Sound)
                || (mode == SoundCaptions::Quiet && (open || d.speaking))
            {
                continue;
            }
            st.captions.push(SoundCaption {
                text: soundflow::respond::captions::sound_caption(&a.rule, &a.label),
                start: a.start,
                end: a.end,
                rate: a.rate,
            });
        }
        if open {
            return Vec::new();
        }
        std::mem::take(&mut st.captions)
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        let weak = self.obj().downgrade();
        self.queue.start(&self.srcpad, move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp().task_iteration();
            }
        })
    }

    /// The assistant, out of its lock: nothing waits on that lock while the model works.
    fn assistant(&self) -> Option<Arc<assist::AssistantHandle>> {
        self.assistant.lock().clone()
    }

    /// How a line or request for the assistant waits for room in its queue: from a file,
    /// until a flush or a stop (which lines and requests the model gets must not depend on
    /// how fast the machine decodes the file: the backlog holds the stream back instead);
    /// live, not at all (a model too far behind loses them, with a warning).
    fn assistant_wait(&self) -> Option<Box<dyn Fn() -> bool + '_>> {
        if self.state.lock().live != Some(false) {
            return None;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        Some(Box::new(move || {
            self.queue.is_flushing() || self.generation.load(Ordering::SeqCst) != generation
        }))
    }

    /// Both tasks: the worker (text pad) and the alert pad's. A reply under way is called
    /// off, so a worker draining the assistant at EOS lets go at once.
    fn stop_task(&self) {
        if let Some(a) = self.assistant() {
            a.cancel();
        }
        self.queue.stop(&self.srcpad);
        self.stop_alert_task();
    }

    /// A flush: the scheduler and the cue maker forget the stream, and whatever a decode
    /// under way produces is dropped (its generation is old).
    fn flush(&self) {
        let generation = {
            let mut st = self.state.lock();
            st.captions.clear();
            st.scheduler.flush()
        };
        self.generation.store(generation, Ordering::SeqCst);
        // The decode under way (final or partial) is of the old stream: stop it now rather
        // than let the seek wait for it.
        if let Some(c) = &self.flight.lock().cancel {
            c.cancel();
        }
        if let Some(a) = self.assistant() {
            a.cancel();
        }
        let mut w = self.worker.lock();
        w.cues.flush(generation);
        if let Some(t) = w.text_alerts.as_mut() {
            t.reset();
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Caps(c) => {
                let Ok(info) = gst_audio::AudioInfo::from_caps(c.caps()) else {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("lalm-respond needs raw audio, got {}", c.caps())
                    );
                    return false;
                };
                let (cfg, mode) = {
                    let s = self.settings.lock();
                    (s.schedule(info.rate()), s.mode)
                };
                let model_rate = soundflow::dsp::mel::SAMPLE_RATE;
                if mode == Mode::Transcript && info.rate() != model_rate {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        (
                            "lalm-respond got {} Hz audio, but its ASR model runs at {} Hz",
                            info.rate(),
                            model_rate
                        ),
                        [
                            "use a perceive model at the ASR model's rate, or resample before the chunker"
                        ]
                    );
                    return false;
                }
                {
                    let mut st = self.state.lock();
                    st.rate = info.rate();
                    st.s16 = info.format() == gst_audio::AudioFormat::S16le;
                    st.scheduler.set_rate(info.rate(), cfg);
                }
                if self
                    .queue
                    .push_job(Work::Rate(info.rate()), usize::MAX, false)
                    .is_err()
                {
                    return false;
                }
                self.queue
                    .push_event(gst::event::Caps::new(&crate::util::text_caps()))
            }
            EventView::StreamStart(_) => {
                self.alert_pad_event(&event);
                self.queue.push_event(event)
            }
            EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().segment = seg;
                }
                self.alert_pad_event(&event);
                self.queue.push_event(event)
            }
            EventView::CustomDownstream(c) => {
                if let Some(s) = c.structure()
                    && s.name() == meta::DECISION_EVENT
                {
                    if let Some(d) = meta::decision_from(s)
                        && let Err(e) = self.handle_decision(&d, false)
                    {
                        gst::debug!(CAT, imp = self, "final response not queued: {e:?}");
                    }
                    return true;
                }
                self.queue.push_event(event)
            }
            EventView::Gap(g) => {
                // A hole upstream (a dropped chunk): nothing can be said about it.
                let (ts, dur) = g.get();
                let end = dur.and_then(|d| ts.checked_add(d)).unwrap_or(ts);
                if !self.state.lock().scheduler.is_open() {
                    // A failed or flushing worker is reported with the next chunk.
                    let _ = self
                        .queue
                        .push_or_replace(Work::Advance(end), |w| matches!(w, Work::Advance(_)));
                }
                true
            }
            EventView::FlushStart(_) => {
                self.queue.set_flushing(true);
                self.flush();
                self.alert_pad_event(&event);
                let ret = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ret
            }
            EventView::FlushStop(_) => {
                self.queue.clear();
                self.flush();
                self.worker.lock().text_pos = gst::ClockTime::ZERO;
                self.alert_pad_event(&event);
                let ret = self.srcpad.push_event(event);
                if let Err(e) = self.start_task() {
                    gst::error!(CAT, imp = self, "cannot restart worker: {e}");
                    return false;
                }
                ret
            }
            _ if event.is_serialized() => self.queue.push_event(event),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        // A serialized query (drain, allocation) is answered only once everything queued
        // before it was handled; a flush ends the wait.
        if query.is_serialized() && !self.queue.barrier() {
            return false;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            if !self.sinkpad.peer_query(q.query_mut()) {
                return false;
            }
            let (live, min, max) = q.result();
            let own = {
                let s = self.settings.lock();
                gst::ClockTime::from_mseconds((s.latency_ms + s.lateness_ms) as u64)
            };
            // The audio reached this element that much after its running time already; the
            // text may take the rest.
            self.worker.lock().upstream_latency = min;
            q.set(live, min + own, max.map(|m| m + own));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn stats(&self) -> gst::Structure {
        let st = self.worker.lock().stats;
        gst::Structure::builder("lalm-respond-stats")
            .field("responses", st.responses)
            .field("cues", st.cues)
            .field("moved-forward", st.moved_forward)
            .field("max-commit-delay", st.max_commit_delay.nseconds())
            .field("dropped-finals", st.dropped_finals)
            .field("dropped-alert-buffers", st.dropped_alert_buffers)
            .field("alert-waiting", self.alert_queue.len() as u64)
            .field("speculative-decodes", st.speculative_decodes)
            .field("speculative-finals", st.speculative_finals)
            .field("sealed", st.sealed)
            .field("partial-decodes", st.partial_decodes)
            .field("early-decodes", st.early_decodes)
            .field("early-audio-max-ms", st.early_audio_max_ms)
            .field(
                "early-audio-mean-ms",
                st.early_audio_ms / st.early_decodes.max(1),
            )
            .field("decoded-audio-ms", st.decoded_audio_ms)
            .field("cancelled-partials", st.cancelled_partials)
            .field("cancelled-flushed", st.cancelled_flushed)
            .field("assistant-replies", st.assistant_replies)
            .field("assistant-silent", st.assistant_silent)
            .field("sound-captions", st.sound_captions)
            .field("speaker-prints", st.speaker_prints)
            .build()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Respond {
    const NAME: &'static str = "GstLalmRespond";
    type Type = super::Respond;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                Respond::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |r| r.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                Respond::catch_panic_pad_function(parent, || false, |r| r.sink_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                Respond::catch_panic_pad_function(parent, || false, |r| r.sink_query(pad, query))
            })
            .build();
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&templ)
            .query_function(|pad, parent, query| {
                Respond::catch_panic_pad_function(parent, || false, |r| r.src_query(pad, query))
            })
            .build();
        let templ = klass.pad_template("alert").expect("alert template");
        let alertpad = gst::Pad::builder_from_template(&templ).build();
        Self {
            sinkpad,
            srcpad,
            alertpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            worker: Mutex::new(WorkerState::default()),
            responder: Mutex::new(None),
            queue: WorkQueue::default(),
            alert_queue: WorkQueue::default(),
            generation: AtomicU64::new(0),
            flight: Mutex::new(Flight::default()),
            partial_us: AtomicU64::new(0),
            assistant: Mutex::new(None),
            speaker: Mutex::new(None),
        }
    }
}

impl ObjectImpl for Respond {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecEnum::builder_with_default("mode", Mode::Transcript)
                    .nick("Response mode")
                    .blurb("What a turn is answered with: its transcript (with partial cues while it goes on) or a line naming its span")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model")
                    .nick("ASR model package")
                    .blurb("ASR model package for mode=transcript: a folder with model.toml or a package name searched like lalm-perceive's model: moonshine-base or moonshine-tiny (English, fastest), whisper-base (many languages), whisper-tiny-random (tests)")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("language-code")
                    .nick("Language")
                    .blurb("Language of the speech, ISO 639-1 (en, de, fr, ...), as the gst-plugins-rs transcribers name it")
                    .default_value(Some(DEFAULT_LANGUAGE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Auto)
                    .nick("Execution provider")
                    .blurb("ONNX Runtime execution provider for the ASR model; an unavailable one falls back to CPU with a logged warning")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Inference threads")
                    .blurb("ONNX Runtime intra-op threads for the ASR model")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("partial-interval-ms")
                    .nick("Partial cadence")
                    .blurb("While an utterance goes on, decode it again every this many milliseconds of audio; words two hypotheses agree on are committed as a partial cue and never retracted")
                    .minimum(200)
                    .maximum(60_000)
                    .default_value(DEFAULT_PARTIAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("lead-in-ms")
                    .nick("Lead-in")
                    .blurb("Audio before the detected start of speech that the model also hears, so that a soft first word (\"hey\") the voice detector caught late is not lost; never reaches back into the utterance before, and timestamps stay at the detected start. It trades the first partial's latency for accuracy: docs/benchmarks.md has the figures")
                    .maximum(1_000)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("partial-budget")
                    .nick("Partial budget")
                    .blurb("Seconds of audio the partial decodes may hear per second of the stream, beyond a credit of 1.2 s that every utterance starts with: an utterance's first partials come at the cadence, later ones wait while the credit is spent, so they thin out as the phrase since the last seal grows and what they cost per second of speech is bounded whatever its length. 0: no bound (every partial-interval-ms)")
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(DEFAULT_PARTIAL_BUDGET)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("seal-after-ms")
                    .nick("Seal after")
                    .blurb("When speech resumes after a pause whose decode heard at least this many milliseconds since the last seal, that decode's words are committed and later decodes of the utterance hear only the audio after the pause: a partial then costs what the audio since the last pause costs, not what the whole utterance costs. 0 decodes every partial and final from the utterance's start")
                    .maximum(60_000)
                    .default_value(DEFAULT_SEAL_AFTER_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("seal-from-ms")
                    .nick("Seal from")
                    .blurb("No seal before the utterance has run this many milliseconds: a shorter utterance is decoded whole (more accurate: a second or two decoded alone after a seal tends to gain words), and what one decode hears is bounded from here on")
                    .maximum(60_000)
                    .default_value(DEFAULT_SEAL_FROM_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-utterance-ms")
                    .nick("Longest utterance")
                    .blurb("An utterance longer than this is cut at its quietest point in the last 5 s and answered in parts (Whisper's window is 30 s)")
                    .minimum(2_000)
                    .maximum(29_000)
                    .default_value(DEFAULT_MAX_UTTERANCE_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("finals-only")
                    .nick("Finals only")
                    .blurb("Decode no partials and push only final cues on the src pad. The decodes made as a pause begins remain (a final takes them, or a long utterance is sealed with them); words they commit still reach the bus as lalm-transcript messages with final=false")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("text-items", TextItems::Cue)
                    .nick("Text items")
                    .blurb("What one text buffer carries: cue (the utterance's committed text so far, pts = the start of its newest words; a final cue, with nothing of its utterance shown before, starts with the utterance) or word (one buffer per newly committed word, pts = the word's start, as the gst-plugins-rs transcribers send items)")
                    .default_value(TextItems::Cue)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("sound-captions", SoundCaptions::None)
                    .nick("Sound captions")
                    .blurb("Bracketed captions of the sounds the sound rules hear ([MUSIC], [APPLAUSE], [PHONE RINGING], ...; a rules file's own rule by its label) on the text pad, stamped at the sound's onset: none; quiet (only sounds heard while nobody speaks); all (also sounds under speech, each sent after the final cue of the utterance it fell in, so no speech cue is split or delayed). One caption per episode of a sound, as its rule's alert. While on, the text stream's GAPs stay 3 s behind the audio")
                    .default_value(SoundCaptions::None)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("speaker-model")
                    .nick("Speaker model")
                    .blurb("Speaker-embedding package (pyannote-community-1, built by setup) that labels each utterance's speaker S1, S2, ... (stable within a stream): a speaker field on lalm-transcript and lalm-response messages and on LalmCueMeta, an rstranscribe/speaker-change event (field speaker) on the text pad before a new speaker's first cue, speaker-tagged lines for the assistant. The voice print hears the utterance's first 0.8 to 3 s (an utterance shorter than 0.8 s gets no label) when its first cue is made. none (the default) turns it off")
                    .default_value(Some(NO_SPEAKER_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("speaker-threshold")
                    .nick("Same-speaker similarity")
                    .blurb("Cosine similarity of voice prints at which an utterance is given a known speaker's label; a negative value takes the package's (pyannote-community-1: 0.35). Higher tells more speakers apart and splits one voice more often")
                    .minimum(-1.0)
                    .maximum(1.0)
                    .default_value(-1.0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("subtitle-speaker-prefix")
                    .nick("Subtitle speaker prefix")
                    .blurb("Written before the first cue of each new speaker in the subtitle file (with speaker-model), as caption practice marks a change: \">> \". None (the default) writes none")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("text-speaker-prefix")
                    .nick("Text speaker prefix")
                    .blurb("Written before the first text buffer of each new speaker on the text pad (with speaker-model), for caption encoders that do not act on the rstranscribe/speaker-change event, such as tttocea608 before gst-plugins-rs 0.14: \">> \" puts the broadcast speaker marker in the captions. None (the default) leaves the text as said")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Milliseconds added to the live latency: text reaches a synced sink at most this long (plus lateness) after its running time. In a live pipeline a buffer committed later than that is moved forward to the latest time it can still be shown (counted in stats as moved-forward). A final decode that waits longer posts a warning")
                    .maximum(60_000)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lateness")
                    .nick("Lateness")
                    .blurb("Extra milliseconds added to the reported latency, for downstream that needs slack")
                    .maximum(60_000)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("subtitle-location")
                    .nick("Subtitle file")
                    .blurb("Also write the final cues to this file: WebVTT if it ends in .vtt, SRT otherwise")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("vocabulary")
                    .nick("Vocabulary")
                    .blurb("A file of terms the ASR favours (names, products, jargon): one term (word or phrase) per line, # comments, an optional weight after a tab (default 1, 0 to 5). The greedy decoder (Moonshine or Whisper) gives the tokens that start or continue a term a bonus of a few logits (contextual biasing over a token trie), locally, not on a server. The wake rules' phrases are always favoured as well")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("profanity-filter")
                    .nick("Profanity filter")
                    .blurb("Mask listed words in cues, subtitle files and bus text (first letter kept, the rest as *; word times unchanged; alert rules still match the words as said): none (or empty) masks nothing, default is the built-in English list, anything else is a word-list file, one term per line, # comments, a trailing * matches words starting with the term")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-history-ms")
                    .nick("Audio history")
                    .blurb("Most audio kept for the utterance under way, in milliseconds; bounds memory if a turn never ends")
                    .minimum(1_000)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_MAX_HISTORY_MS)
                    .mutable_playing()
                    .build(),
                crate::rules::param_spec("Text rules (keyword, phrase, regex, wake) are evaluated here after each decode, audio rules by lalm-decide."),
                glib::ParamSpecString::builder("assistant-model")
                    .nick("Assistant model")
                    .blurb("Language model package (interaction-model) that answers wake-rule questions and speaks up about alerts, as each rule's assistant key says (respond, decide or silent), from what it heard; \"none\" turns it off. Replies go out as lalm-response messages (kind answer, interjection or silent, growing with final=false) and as text on the text pad")
                    .default_value(Some(NO_ASSISTANT))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("assistant-prompt")
                    .nick("Assistant prompt")
                    .blurb("The assistant's instruction (its system prompt)")
                    .default_value(Some(assist::DEFAULT_PROMPT))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("assistant-max-tokens")
                    .nick("Longest reply")
                    .blurb("Most tokens in one reply of the assistant")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_ASSISTANT_MAX_TOKENS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("responses, cues, moved-forward (text buffers moved forward to arrive within the latency), max-commit-delay (ns from a text buffer's running time to its push, live), dropped-finals (live streams that fell behind), dropped-alert-buffers (alert pad full), alert-waiting (buffers and events queued for the alert pad now; bounded however long its sink stalls), speculative-decodes (utterances decoded as they paused), speculative-finals (finals that took such a decode instead of a new one), sealed (phrases sealed at a pause, see seal-after-ms), partial-decodes (plain partial decodes run), early-decodes (every decode run before a turn's end: partial, speculative or seal), early-audio-max-ms and early-audio-mean-ms (the audio they heard: flat in the utterance's length with sealing), decoded-audio-ms (audio heard by every decode run), cancelled-partials (partial decodes stopped for a final), cancelled-flushed (decodes under way stopped by a flush)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("responses")
                    .nick("Responses")
                    .blurb("Final responses produced since the element went to PAUSED")
                    .read_only()
                    .build(),
            ]
            .into_iter()
            .chain([
                glib::ParamSpecString::builder("active-execution-provider")
                    .nick("Active execution provider")
                    .blurb("The execution provider the ASR model actually runs on (known once the element is READY; empty in mode=turn-end)")
                    .read_only()
                    .build(),
                crate::session::ort_library_spec(),
            ])
            .chain(crate::session::param_specs("the ASR model"))
            .chain(crate::remote::param_specs(
                "asr: the package's decode loop, which scripts/triton-repo.py writes for Moonshine packages; Whisper runs locally",
            ))
            .collect()
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock();
        let string = |v: &glib::Value| {
            v.get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|x| !x.is_empty())
        };
        match pspec.name() {
            "mode" => s.mode = value.get().expect("type checked upstream"),
            "model" => s.model = string(value).unwrap_or_else(|| DEFAULT_MODEL.into()),
            "language-code" => {
                s.language = string(value).unwrap_or_else(|| DEFAULT_LANGUAGE.into())
            }
            "execution-provider" => s.provider = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "partial-interval-ms" => s.partial_ms = value.get().expect("type checked upstream"),
            "max-utterance-ms" => s.max_utterance_ms = value.get().expect("type checked upstream"),
            "finals-only" => s.finals_only = value.get().expect("type checked upstream"),
            "latency" => s.latency_ms = value.get().expect("type checked upstream"),
            "lateness" => s.lateness_ms = value.get().expect("type checked upstream"),
            "subtitle-location" => s.subtitle_location = string(value),
            "profanity-filter" => s.profanity_filter = string(value),
            "vocabulary" => s.vocabulary = string(value),
            "max-history-ms" => s.max_history_ms = value.get().expect("type checked upstream"),
            "lead-in-ms" => s.lead_in_ms = value.get().expect("type checked upstream"),
            "seal-after-ms" => s.seal_after_ms = value.get().expect("type checked upstream"),
            "seal-from-ms" => s.seal_from_ms = value.get().expect("type checked upstream"),
            "partial-budget" => s.partial_budget = value.get().expect("type checked upstream"),
            "ort-library" => s.ort_library = string(value),
            "rules" => s.rules = crate::rules::from_value(value),
            "assistant-model" => {
                s.assistant_model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| NO_ASSISTANT.into())
            }
            "assistant-prompt" => {
                s.assistant_prompt = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| assist::DEFAULT_PROMPT.into())
            }
            "assistant-max-tokens" => {
                s.assistant_max_tokens = value.get().expect("type checked upstream")
            }
            "text-items" => s.text_items = value.get().expect("type checked upstream"),
            "sound-captions" => s.sound_captions = value.get().expect("type checked upstream"),
            "speaker-model" => {
                s.speaker_model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| NO_SPEAKER_MODEL.into())
            }
            "speaker-threshold" => {
                s.speaker_threshold = value.get().expect("type checked upstream")
            }
            "subtitle-speaker-prefix" => s.subtitle_speaker_prefix = string(value),
            "text-speaker-prefix" => s.text_speaker_prefix = string(value),
            other => {
                if !s.session.set(other, value) && !s.remote.set(other, value) {
                    gst::warning!(CAT, imp = self, "unknown property {other}")
                }
            }
        }
        drop(s);
        if matches!(
            pspec.name(),
            "partial-interval-ms"
                | "max-utterance-ms"
                | "max-history-ms"
                | "lead-in-ms"
                | "seal-after-ms"
                | "partial-budget"
                | "finals-only"
        ) {
            // Cadence and limits apply from the next decision on, what is open stays open.
            // The state lock is taken alone: the streaming thread never holds it with settings.
            let rate = self.state.lock().scheduler.rate();
            let cfg = self.settings.lock().schedule(rate);
            self.state.lock().scheduler.set_config(cfg);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock();
        match pspec.name() {
            "mode" => s.mode.to_value(),
            "model" => s.model.to_value(),
            "language-code" => s.language.to_value(),
            "execution-provider" => s.provider.to_value(),
            "threads" => s.threads.to_value(),
            "partial-interval-ms" => s.partial_ms.to_value(),
            "max-utterance-ms" => s.max_utterance_ms.to_value(),
            "finals-only" => s.finals_only.to_value(),
            "latency" => s.latency_ms.to_value(),
            "lateness" => s.lateness_ms.to_value(),
            "subtitle-location" => s.subtitle_location.to_value(),
            "profanity-filter" => s.profanity_filter.to_value(),
            "vocabulary" => s.vocabulary.to_value(),
            "max-history-ms" => s.max_history_ms.to_value(),
            "lead-in-ms" => s.lead_in_ms.to_value(),
            "seal-after-ms" => s.seal_after_ms.to_value(),
            "seal-from-ms" => s.seal_from_ms.to_value(),
            "partial-budget" => s.partial_budget.to_value(),
            "responses" => self.worker.lock().stats.responses.to_value(),
            "stats" => self.stats().to_value(),
            "rules" => s.rules.to_value(),
            "assistant-model" => s.assistant_model.to_value(),
            "assistant-prompt" => s.assistant_prompt.to_value(),
            "assistant-max-tokens" => s.assistant_max_tokens.to_value(),
            "text-items" => s.text_items.to_value(),
            "sound-captions" => s.sound_captions.to_value(),
            "speaker-model" => s.speaker_model.to_value(),
            "speaker-threshold" => s.speaker_threshold.to_value(),
            "subtitle-speaker-prefix" => s.subtitle_speaker_prefix.to_value(),
            "text-speaker-prefix" => s.text_speaker_prefix.to_value(),
            "ort-library" => s.ort_library.to_value(),
            "active-execution-provider" => self.worker.lock().active_provider.clone().to_value(),
            other => s
                .session
                .get(other)
                .or_else(|| s.remote.get(other))
                .unwrap_or_else(|| unreachable!("only registered properties reach here")),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("fresh pad");
        obj.add_pad(&self.srcpad).expect("fresh pad");
        obj.add_pad(&self.alertpad).expect("fresh pad");
    }
}

impl GstObjectImpl for Respond {}

impl ElementImpl for Respond {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM response",
                "Filter/Audio/Text",
                "Responds when lalm-decide says so, on a worker thread: live subtitles with \
                 Moonshine or Whisper (partial cues while an utterance goes on, committed by agreement and \
                 never retracted, a final cue at its end; pts = where its newest words start, \
                 up to their end; LalmCueMeta says which; or one buffer per word), or a line per turn; \
                 text arrives within the reported latency in live pipelines (put a queue before a \
                 clock-synced sink, whose waits would stall the worker); GAP events in \
                 between, lalm-transcript and lalm-response messages, \
                 rstranscribe/final-transcript events, optional SRT/WebVTT file; alerts as \
                 lalm-alert messages, JSON on the alert pad and text-pad events, everyday \
                 sounds as lalm-sound messages",
                "gst-lalm developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut t = crate::util::always_templates(
                &crate::util::mono_audio_caps(),
                &crate::util::text_caps(),
            );
            t.push(
                gst::PadTemplate::new(
                    "alert",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &alert::alert_caps(),
                )
                .expect("static pad template is valid"),
            );
            t
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(msg) = self.load_responder() {
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                let cfg = self.settings.lock().schedule(16000);
                *self.state.lock() = State {
                    scheduler: Scheduler::new(cfg, 16000),
                    ..Default::default()
                };
                self.generation.store(0, Ordering::SeqCst);
                {
                    let mut w = self.worker.lock();
                    let rules = w.rules.take();
                    let provider = w.active_provider.take();
                    let threshold = self.settings.lock().speaker_threshold;
                    *w = WorkerState {
                        rules,
                        active_provider: provider,
                        speakers: self.speaker.lock().as_ref().map(|m| {
                            let t = if threshold < 0.0 {
                                m.same_speaker()
                            } else {
                                threshold
                            };
                            SpeakerLabels::new(t, MAX_SPEAKERS)
                        }),
                        ..Default::default()
                    };
                }
                if let Err(msg) = self
                    .open_subtitle_file()
                    .and_then(|_| self.load_profanity())
                {
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => self.stop_task(),
            _ => {}
        }
        let ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::ReadyToPaused => {
                if let Err(e) = self.start_task().and_then(|_| self.start_alert_task()) {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Thread,
                        ("Cannot start the worker: {}", e)
                    );
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => {
                self.worker.lock().subtitle = None;
            }
            gst::StateChange::ReadyToNull => {
                *self.responder.lock() = None;
                *self.speaker.lock() = None;
                let assistant = self.assistant.lock().take();
                drop(assistant);
            }
            _ => {}
        }
        Ok(ret)
    }
}
