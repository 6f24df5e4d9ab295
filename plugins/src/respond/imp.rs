use std::collections::VecDeque;
use std::io::Write;
use std::sync::LazyLock;
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::model::ModelPackage;
use soundflow::perception::{AudioHistory, Decision};
use soundflow::response::{Responder, Response, ResponseKind, TurnEndResponder, Utterance};
use soundflow::runtime::{Runtime, SessionOptions};
use soundflow::streaming::{LocalAgreement, Word};
use soundflow::subtitle::{Cue, VTT_HEADER, srt_cue, vtt_cue};
use soundflow::time::ms_to_samples;
use soundflow::whisper::decode::DecodeOptions;
use soundflow::whisper::{Transcriber, WhisperResponder};

#[path = "alert.rs"]
mod alert;
pub use alert::alert_caps;

use super::Mode;
use crate::meta;
use crate::perceive::ExecutionProvider;
use crate::session::SessionSettings;
use crate::util::{clock, stream_times};
use crate::worker::{Item, WorkQueue};

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-respond",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm responses"),
    )
});

const DEFAULT_MODEL: &str = "whisper-base";
const DEFAULT_LANGUAGE: &str = "en";
const DEFAULT_MAX_HISTORY_MS: u32 = 120_000;
const DEFAULT_PARTIAL_MS: u32 = 1000;
const DEFAULT_MAX_UTTERANCE_MS: u32 = 20_000;
const DEFAULT_LATENCY_MS: u32 = 1500;
const DEFAULT_THREADS: u32 = 2;
/// Where a long utterance may be cut: the quietest 100 ms of its last few seconds.
const CUT_SEARCH_MS: u32 = 5000;
const CUT_WINDOW_MS: u32 = 100;
/// Name of the downstream event the gst-plugins-rs transcribers send after a final result.
const FINAL_TRANSCRIPT_EVENT: &str = "rstranscribe/final-transcript";

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
    latency_ms: u32,
    lateness_ms: u32,
    subtitle_location: Option<String>,
    max_history_ms: u32,
    session: SessionSettings,
    ort_library: Option<String>,
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
            latency_ms: DEFAULT_LATENCY_MS,
            lateness_ms: 0,
            subtitle_location: None,
            session: SessionSettings::default(),
            ort_library: None,
            max_history_ms: DEFAULT_MAX_HISTORY_MS,
        }
    }
}

/// Work for the worker: decode `[start, end)` of the stream.
struct Job {
    generation: u64,
    is_final: bool,
    start: u64,
    end: u64,
    audio: Vec<f32>,
    confidence: f32,
    /// When the streaming thread handed the job over, for the latency warning.
    queued: Instant,
}

enum Work {
    Decode(Job),
    /// Move the text stream's time to here with a GAP.
    Advance(gst::ClockTime),
}

/// The utterance under way, as the streaming thread sees it.
struct Open {
    start: u64,
    last_partial: u64,
}

/// Streaming-thread state.
struct State {
    rate: u32,
    s16: bool,
    segment: gst::FormattedSegment<gst::ClockTime>,
    history: AudioHistory,
    /// (window start, probability, level) of recent windows.
    windows: VecDeque<(u64, f32, f32)>,
    open: Option<Open>,
    generation: u64,
    scratch: Vec<f32>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            rate: 16000,
            s16: false,
            segment: gst::FormattedSegment::new(),
            history: AudioHistory::default(),
            windows: VecDeque::new(),
            open: None,
            generation: 0,
            scratch: Vec::new(),
        }
    }
}

/// Worker-side state: what the text stream has covered and what was committed.
struct Output {
    /// Everything before this was covered by a final cue or a GAP.
    text_pos: gst::ClockTime,
    agreement: LocalAgreement,
    generation: u64,
    responses: u64,
    cues: u64,
    subtitle: Option<(std::fs::File, bool)>,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            text_pos: gst::ClockTime::ZERO,
            agreement: LocalAgreement::new(),
            generation: 0,
            responses: 0,
            cues: 0,
            subtitle: None,
        }
    }
}

pub struct Respond {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    alertpad: gst::Pad,
    alert_pad: Mutex<alert::AlertPadState>,
    alert_queue: WorkQueue<gst::Buffer>,
    /// Keyword and wake-phrase rules, from the rules event `lalm-decide` sends.
    text_alerts: Mutex<Option<soundflow::alerts::TextAlerts>>,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    output: Mutex<Output>,
    responder: Mutex<Option<Box<dyn Responder>>>,
    queue: WorkQueue<Work>,
    live: Mutex<Option<bool>>,
    active_provider: Mutex<Option<String>>,
}

fn join_words(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Respond {
    fn load_responder(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().clone();
        let responder: Box<dyn Responder> = match s.mode {
            Mode::TurnEnd => Box::new(TurnEndResponder),
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
                let t = Transcriber::load(&pkg, &rt, &opts).map_err(|e| match e {
                    soundflow::Error::ModelFileMissing { .. } => {
                        gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
                    }
                    _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
                })?;
                let language = t.language_token(&s.language).ok_or_else(|| {
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
                crate::session::report_fallback(&element, *CAT, "the ASR model", t.session_info());
                *self.active_provider.lock() = Some(t.session_info().active.as_str().into());
                gst::info!(
                    CAT,
                    imp = self,
                    "loaded {} on {}",
                    pkg.display_name(),
                    t.session_info().active.as_str()
                );
                let opts = DecodeOptions {
                    language: Some(language),
                    ..Default::default()
                };
                Box::new(WhisperResponder::new(t, opts))
            }
        };
        *self.responder.lock() = Some(responder);
        Ok(())
    }

    fn open_subtitle_file(&self) -> Result<(), gst::ErrorMessage> {
        let loc = self.settings.lock().subtitle_location.clone();
        let file = match loc {
            None => None,
            Some(path) => {
                let vtt = path.to_ascii_lowercase().ends_with(".vtt");
                let mut f = std::fs::File::create(&path).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::OpenWrite,
                        ("Cannot write subtitles to {}: {}", path, e)
                    )
                })?;
                if vtt {
                    f.write_all(VTT_HEADER.as_bytes()).map_err(|e| {
                        gst::error_msg!(gst::ResourceError::Write, ("{}: {}", path, e))
                    })?;
                }
                Some((f, vtt))
            }
        };
        self.output.lock().subtitle = file;
        Ok(())
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
        {
            let mut st = self.state.lock();
            let (rate, s16) = (st.rate, st.s16);
            let mut scratch = std::mem::take(&mut st.scratch);
            let start = crate::util::new_chunk_samples(&buffer, rate, s16, &mut scratch);
            if let Ok(start) = start {
                st.history.push(start, &scratch);
            }
            st.scratch = scratch;
            start?;
            if let Some(p) = meta::get_structure(&buffer, meta::PERCEPTION_META)
                .and_then(|s| meta::perception_from(&s))
            {
                st.windows
                    .extend(p.windows.iter().map(|w| (w.start, w.prob, w.level_db)));
            }
        }
        self.handle_decision(&decision)
    }

    fn job(&self, st: &State, is_final: bool, start: u64, end: u64) -> Job {
        let (sum, n) = st
            .windows
            .iter()
            .filter(|(s, _, _)| *s >= start && *s < end)
            .fold((0.0f64, 0u32), |(a, n), (_, p, _)| (a + *p as f64, n + 1));
        Job {
            generation: st.generation,
            is_final,
            start,
            end,
            audio: st.history.range(start, end).to_vec(),
            confidence: if n > 0 { (sum / n as f64) as f32 } else { 0.0 },
            queued: Instant::now(),
        }
    }

    /// The quietest point of `[from, to)`, judged by the windows' levels.
    fn quietest(st: &State, from: u64, to: u64, rate: u32) -> u64 {
        let span = ms_to_samples(CUT_WINDOW_MS, rate);
        let candidates: Vec<&(u64, f32, f32)> = st
            .windows
            .iter()
            .filter(|(s, _, _)| *s >= from && *s + span <= to)
            .collect();
        candidates
            .iter()
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map(|w| w.0)
            .unwrap_or(to)
    }

    fn handle_decision(&self, d: &Decision) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Only what a chunk needs: no strings are copied on the streaming thread.
        let (mode, partial_ms, max_utterance_ms, max_history_ms) = {
            let s = self.settings.lock();
            (s.mode, s.partial_ms, s.max_utterance_ms, s.max_history_ms)
        };
        for a in &d.alerts {
            self.deliver(a, a.end, false);
        }
        let mut finals = Vec::new();
        let mut partial = None;
        let advance;
        {
            let mut st = self.state.lock();
            let rate = if d.rate > 0 { d.rate } else { st.rate };
            let heard = st.history.end();
            if let Some(start) = d.speech_start
                && st.open.is_none()
            {
                st.open = Some(Open {
                    start,
                    last_partial: heard,
                });
            }
            if let Some((start, end)) = d.turn_end {
                // A long utterance already cut keeps its cut as the start.
                let start = st.open.take().map_or(start, |o| o.start.max(start));
                finals.push(self.job(&st, true, start, end));
            }
            let max_len = ms_to_samples(max_utterance_ms, rate);
            if let Some(open) = st.open.as_ref()
                && heard.saturating_sub(open.start) >= max_len
            {
                let from = heard
                    .saturating_sub(ms_to_samples(CUT_SEARCH_MS, rate))
                    .max(open.start + 1);
                let cut = Self::quietest(&st, from, heard, rate);
                let start = open.start;
                finals.push(self.job(&st, true, start, cut));
                st.open = Some(Open {
                    start: cut,
                    last_partial: heard,
                });
            }
            // Partials are decoded even with finals-only: they still reach the bus.
            if mode == Mode::Transcript {
                let every = ms_to_samples(partial_ms, rate);
                if let Some((start, last)) = st.open.as_ref().map(|o| (o.start, o.last_partial))
                    && heard.saturating_sub(last) >= every
                {
                    partial = Some(self.job(&st, false, start, heard));
                    if let Some(o) = st.open.as_mut() {
                        o.last_partial = heard;
                    }
                }
            }
            // Audio before the settled position (or the open utterance) is never needed
            // again; bound what is kept even if a turn never ends.
            let keep_from = st
                .open
                .as_ref()
                .map_or(d.settled_until, |o| o.start.min(d.settled_until))
                .max(heard.saturating_sub(ms_to_samples(max_history_ms, rate)));
            st.history.trim_before(keep_from);
            while st.windows.front().is_some_and(|(w, _, _)| *w < keep_from) {
                st.windows.pop_front();
            }
            advance = st.open.is_none().then(|| clock(d.settled_until, rate));
        }
        // Finals are never dropped: the streaming thread waits for room when it must.
        for job in finals {
            self.queue.push_job(Work::Decode(job), 16, true)?;
        }
        if let Some(job) = partial {
            // Only the newest partial matters; one still waiting is replaced.
            self.queue.push_or_replace(
                Work::Decode(job),
                |w| matches!(w, Work::Decode(j) if !j.is_final),
            );
        }
        if let Some(to) = advance {
            self.queue
                .push_or_replace(Work::Advance(to), |w| matches!(w, Work::Advance(_)));
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Whether upstream is live; a file decoded faster than real time queues work, and its
    /// waits say nothing about latency.
    fn is_live(&self) -> bool {
        if let Some(l) = *self.live.lock() {
            return l;
        }
        let mut q = gst::query::Latency::new();
        let live = self.sinkpad.peer_query(&mut q) && q.result().0;
        *self.live.lock() = Some(live);
        live
    }

    // --- worker ---------------------------------------------------------------------------

    fn task_iteration(&self) {
        let res = match self.queue.pop() {
            None => {
                let _ = self.srcpad.pause_task();
                return;
            }
            Some(Item::Event(ev)) => {
                if ev.type_() == gst::EventType::Eos {
                    self.alert_pad_event(&ev);
                }
                self.srcpad.push_event(ev);
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Job(Work::Advance(to))) => {
                self.advance_to(to);
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Job(Work::Decode(job))) => self.decode(job),
        };
        if let Err(err) = res {
            let flushing = self.queue.fail(err);
            if !flushing && matches!(err, gst::FlowError::Error | gst::FlowError::NotNegotiated) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Internal data stream error in lalm-respond"),
                    ["streaming stopped, reason {:?}", err]
                );
                let _ = self.srcpad.push_event(gst::event::Eos::new());
            }
            let _ = self.srcpad.pause_task();
        }
    }

    fn decode(&self, job: Job) -> Result<gst::FlowSuccess, gst::FlowError> {
        if job.generation != self.output.lock().generation {
            return Ok(gst::FlowSuccess::Ok);
        }
        let rate = self.state.lock().rate;
        let started = Instant::now();
        let response = {
            let mut guard = self.responder.lock();
            let Some(responder) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let u = Utterance {
                start: job.start,
                end: job.end,
                rate,
                audio: &job.audio,
                confidence: job.confidence,
            };
            match responder.respond(&u) {
                Ok(r) => r,
                Err(e) => {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("Responder {} failed: {}", responder.name(), e)
                    );
                    None
                }
            }
        };
        let took = started.elapsed();
        let budget = std::time::Duration::from_millis(self.settings.lock().latency_ms as u64);
        let waited = job.queued.elapsed();
        if job.is_final && waited > budget && self.is_live() {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Clock,
                (
                    "Decoding took {} ms ({} ms after the turn ended), over the {} ms latency budget",
                    took.as_millis(),
                    waited.as_millis(),
                    budget.as_millis()
                ),
                ["raise the latency property, or use a smaller or quantized model"]
            );
        }
        gst::debug!(
            CAT,
            imp = self,
            "{} decode of {:.2} s took {} ms",
            if job.is_final { "final" } else { "partial" },
            job.audio.len() as f64 / rate.max(1) as f64,
            took.as_millis()
        );
        if job.is_final {
            self.emit_final(&job, response, rate)
        } else {
            self.emit_partial(&job, response, rate)
        }
    }

    fn emit_partial(
        &self,
        job: &Job,
        response: Option<Response>,
        rate: u32,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(r) = response else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let (fresh, committed) = {
            let mut out = self.output.lock();
            let fresh = out.agreement.offer(r.words.clone());
            (fresh, out.agreement.committed().to_vec())
        };
        if fresh.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        self.check_text(&committed, false, job.end);
        // Word times are the model's guess and may run past the audio it was given.
        let end = committed.last().map_or(job.end, |w| w.end.min(job.end));
        let cue = Response {
            kind: ResponseKind::Transcript,
            text: join_words(&committed),
            start: job.start,
            end,
            rate,
            confidence: r.confidence,
            words: committed,
        };
        self.push_cue(cue, false, rate)
    }

    fn emit_final(
        &self,
        job: &Job,
        response: Option<Response>,
        rate: u32,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let cue = {
            let mut out = self.output.lock();
            match response {
                Some(r) if r.kind == ResponseKind::Transcript => {
                    out.agreement.finish(r.words.clone());
                    let words = out.agreement.committed().to_vec();
                    out.agreement.reset();
                    (!words.is_empty()).then(|| Response {
                        text: join_words(&words),
                        words,
                        ..r
                    })
                }
                Some(r) => Some(r),
                None => {
                    // Nothing said after all: whatever partials showed stays shown.
                    let words = out.agreement.committed().to_vec();
                    out.agreement.reset();
                    (!words.is_empty()).then(|| Response {
                        kind: ResponseKind::Transcript,
                        text: join_words(&words),
                        start: job.start,
                        end: job.end,
                        rate,
                        confidence: job.confidence,
                        words,
                    })
                }
            }
        };
        let Some(mut cue) = cue else {
            return Ok(gst::FlowSuccess::Ok);
        };
        cue.start = job.start;
        cue.end = job.end;
        self.check_text(&cue.words, true, job.end);
        self.push_cue(cue, true, rate)
    }

    fn push_cue(
        &self,
        r: Response,
        is_final: bool,
        rate: u32,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let start = clock(r.start, rate);
        let end = clock(r.end, rate);
        let (seg, pts) = {
            let st = self.state.lock();
            let mut out = self.output.lock();
            // A final cue never starts before what the text stream already covered.
            let pts = start.max(out.text_pos);
            if is_final {
                out.text_pos = out.text_pos.max(end);
                out.responses += 1;
            }
            out.cues += 1;
            (st.segment.clone(), pts)
        };
        let (s, e, rt) = stream_times(&seg, start, end);
        gst::info!(
            CAT,
            imp = self,
            "{} {}: {} ({s}..{e})",
            if is_final { "final" } else { "partial" },
            r.kind.as_str(),
            r.text
        );
        let words = gst::Array::new(r.words.iter().map(|w| {
            let (ws, we, _) = stream_times(&seg, clock(w.start, rate), clock(w.end, rate));
            gst::Structure::builder("word")
                .field("text", w.text.as_str())
                .field("start", ws)
                .field("end", we)
                .build()
                .to_send_value()
        }));
        let post = |name: &str| {
            let msg = gst::message::Element::builder(
                gst::Structure::builder(name)
                    .field("kind", r.kind.as_str())
                    .field("text", r.text.as_str())
                    .field("start", s)
                    .field("end", e)
                    .field("running-time", rt)
                    .field("confidence", r.confidence as f64)
                    .field("final", is_final)
                    .field("words", words.clone())
                    .build(),
            )
            .src(&*self.obj())
            .build();
            let _ = self.obj().post_message(msg);
        };
        if r.kind == ResponseKind::Transcript {
            post("lalm-transcript");
        }
        if is_final {
            post("lalm-response");
            self.write_subtitle(s, e, &r.text);
        }
        let finals_only = self.settings.lock().finals_only;
        if !is_final && finals_only {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut buf = gst::Buffer::from_mut_slice(r.text.clone().into_bytes());
        {
            let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
            b.set_pts(pts);
            b.set_duration(end.saturating_sub(pts));
            let info = gst::Structure::builder(meta::CUE_META)
                .field("final", is_final)
                .field("kind", r.kind.as_str())
                .field("confidence", r.confidence as f64)
                .build();
            meta::add_structure(b, meta::CUE_META, info).map_err(|_| gst::FlowError::Error)?;
        }
        let ret = self.srcpad.push(buf);
        if is_final && ret.is_ok() {
            let ev = gst::event::CustomDownstream::new(
                gst::Structure::builder(FINAL_TRANSCRIPT_EVENT).build(),
            );
            let _ = self.srcpad.push_event(ev);
        }
        ret
    }

    fn write_subtitle(&self, start: u64, end: u64, text: &str) {
        let mut out = self.output.lock();
        let index = out.responses as usize;
        let Some((file, vtt)) = out.subtitle.as_mut() else {
            return;
        };
        let cue = Cue {
            start,
            end,
            text: text.to_string(),
        };
        let line = if *vtt {
            vtt_cue(&cue)
        } else {
            srt_cue(index, &cue)
        };
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.flush()) {
            drop(out);
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Cannot write subtitle cue: {}", e)
            );
        }
    }

    /// Keeps downstream time moving between responses with GAP events up to `to`.
    fn advance_to(&self, to: gst::ClockTime) {
        let from = {
            let mut out = self.output.lock();
            if to <= out.text_pos {
                return;
            }
            let from = out.text_pos;
            out.text_pos = to;
            from
        };
        let gap = gst::event::Gap::builder(from).duration(to - from).build();
        self.alert_pad_event(&gap);
        let _ = self.srcpad.push_event(gap);
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        let weak = self.obj().downgrade();
        self.queue.start(&self.srcpad, move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp().task_iteration();
            }
        })
    }

    /// Both tasks: the worker (text pad) and the alert pad's.
    fn stop_task(&self) {
        self.queue.stop(&self.srcpad);
        self.stop_alert_task();
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
                {
                    let mut st = self.state.lock();
                    st.rate = info.rate();
                    st.s16 = info.format() == gst_audio::AudioFormat::S16le;
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
                    self.output.lock().text_pos = seg.start().unwrap_or(gst::ClockTime::ZERO);
                    self.state.lock().segment = seg;
                }
                self.alert_pad_event(&event);
                self.queue.push_event(event)
            }
            EventView::CustomDownstreamSticky(c)
                if c.structure().is_some_and(|s| s.name() == meta::RULES_EVENT) =>
            {
                if let Some(s) = c.structure() {
                    self.take_rules(s);
                }
                self.queue.push_event(event)
            }
            EventView::CustomDownstream(c) => {
                if let Some(s) = c.structure()
                    && s.name() == meta::DECISION_EVENT
                {
                    if let Some(d) = meta::decision_from(s)
                        && let Err(e) = self.handle_decision(&d)
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
                let end = dur.map(|d| ts + d).unwrap_or(ts);
                if self.state.lock().open.is_none() {
                    self.queue
                        .push_or_replace(Work::Advance(end), |w| matches!(w, Work::Advance(_)));
                }
                true
            }
            EventView::FlushStart(_) => {
                self.queue.set_flushing(true);
                self.alert_pad_event(&event);
                let ret = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ret
            }
            EventView::FlushStop(_) => {
                self.queue.clear();
                let generation = {
                    let mut st = self.state.lock();
                    st.history.clear();
                    st.windows.clear();
                    st.open = None;
                    st.generation += 1;
                    st.generation
                };
                {
                    let mut out = self.output.lock();
                    out.generation = generation;
                    out.agreement.reset();
                    out.text_pos = gst::ClockTime::ZERO;
                }
                if let Some(t) = self.text_alerts.lock().as_mut() {
                    t.reset();
                }
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

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            if !self.sinkpad.peer_query(q.query_mut()) {
                return false;
            }
            let (live, min, max) = q.result();
            let s = self.settings.lock();
            let own = gst::ClockTime::from_mseconds((s.latency_ms + s.lateness_ms) as u64);
            q.set(live, min + own, max.map(|m| m + own));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
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
            alert_pad: Mutex::new(alert::AlertPadState::default()),
            alert_queue: WorkQueue::default(),
            text_alerts: Mutex::new(None),
            settings: Mutex::new(Settings::default()),
            active_provider: Mutex::new(None),
            state: Mutex::new(State::default()),
            output: Mutex::new(Output::default()),
            responder: Mutex::new(None),
            queue: WorkQueue::default(),
            live: Mutex::new(None),
        }
    }
}

impl ObjectImpl for Respond {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecEnum::builder_with_default("mode", Mode::Transcript)
                    .nick("Response mode")
                    .blurb("What a turn is answered with: its transcript (Whisper, with partial cues while it goes on) or a line naming its span")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model")
                    .nick("ASR model package")
                    .blurb("Whisper model package for mode=transcript: a folder with model.toml or a package name searched like lalm-perceive's model (whisper-base, or whisper-tiny-random for tests)")
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
                    .blurb("Push only final cues on the src pad (partials still reach the bus as lalm-transcript messages with final=false)")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Milliseconds of processing budget added to the live latency; a final decode that takes longer posts a warning")
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
                glib::ParamSpecUInt::builder("max-history-ms")
                    .nick("Audio history")
                    .blurb("Most audio kept for the utterance under way, in milliseconds; bounds memory if a turn never ends")
                    .minimum(1_000)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_MAX_HISTORY_MS)
                    .mutable_playing()
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
            "max-history-ms" => s.max_history_ms = value.get().expect("type checked upstream"),
            "ort-library" => s.ort_library = string(value),
            other => {
                if !s.session.set(other, value) {
                    gst::warning!(CAT, imp = self, "unknown property {other}")
                }
            }
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
            "max-history-ms" => s.max_history_ms.to_value(),
            "responses" => self.output.lock().responses.to_value(),
            "ort-library" => s.ort_library.to_value(),
            "active-execution-provider" => self.active_provider.lock().clone().to_value(),
            other => s
                .session
                .get(other)
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
                 Whisper (partial cues while an utterance goes on, committed by agreement and \
                 never retracted, a final cue at its end; pts = speech start, duration = its \
                 span; LalmCueMeta says which), or a line per turn; GAP events in between, \
                 lalm-transcript and lalm-response messages, rstranscribe/final-transcript \
                 events, optional SRT/WebVTT file",
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
                *self.state.lock() = State::default();
                *self.output.lock() = Output::default();
                self.reset_alert_pad();
                *self.live.lock() = None;
                if let Err(msg) = self.open_subtitle_file() {
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
                self.output.lock().subtitle = None;
            }
            gst::StateChange::ReadyToNull => {
                *self.responder.lock() = None;
            }
            _ => {}
        }
        Ok(ret)
    }
}
