use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::base::batch::{BatchCounts, BatchPolicy};
use soundflow::models::package::ModelPackage;
use soundflow::models::remote::RemoteStatus;
use soundflow::models::runtime::{Runtime, SessionOptions};
use soundflow::perceive::perception::Perception;
use soundflow::perceive::tagger::{AudioTagger, TagWatch};
use soundflow::perceive::vad::SileroVad;

use super::{ExecutionProvider, Overload};
use crate::meta;
use crate::session::SessionSettings;
use crate::worker::{Item, Pushed, WorkQueue};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-perceive",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm perception"),
    )
});

const DEFAULT_MODEL: &str = "silero-vad";
const DEFAULT_TAGGER: &str = "ced-tiny";
/// Below this a window is near digital silence or a quiet room's floor: no sound event to
/// find, and a muted or idle stream costs no tagger time.
const DEFAULT_TAGGER_GATE_DB: f32 = -60.0;
/// `tagger-gate-db` at its minimum scores every window.
const TAGGER_GATE_OFF_DB: f32 = -200.0;
/// Tagger hop while no watched label comes near its rules' scores: CED-Tiny's window, so the
/// windows abut and every sample is still heard once.
const DEFAULT_TAGGER_CALM_HOP_MS: u32 = 2000;
const DEFAULT_MAX_QUEUE: u32 = 8;
const DEFAULT_LATENCY_MS: u32 = 50;
const DEFAULT_THREADS: u32 = 1;
const DEFAULT_BATCH_WAIT_MS: u32 = 5;
const DEFAULT_MAX_BATCH: u32 = 32;
/// How many recent per-chunk times the statistics keep.
const TIMING_WINDOW: usize = 4096;

#[derive(Debug, Clone)]
struct Settings {
    model: String,
    /// Sound-event tagger package; empty runs the VAD alone.
    tagger: String,
    /// Tagger windows quieter than this (dBFS) are not scored.
    tagger_gate_db: f32,
    /// Tagger hop while calm (see `tagger-calm-hop-ms`); 0 keeps the model's hop.
    tagger_calm_hop_ms: u32,
    provider: ExecutionProvider,
    ort_library: Option<String>,
    threads: u32,
    max_queue: u32,
    overload: Overload,
    latency_ms: u32,
    session: SessionSettings,
    remote: crate::remote::RemoteSettings,
    batch_wait_ms: u32,
    max_batch: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            tagger: DEFAULT_TAGGER.into(),
            tagger_gate_db: DEFAULT_TAGGER_GATE_DB,
            tagger_calm_hop_ms: DEFAULT_TAGGER_CALM_HOP_MS,
            provider: ExecutionProvider::Auto,
            ort_library: None,
            threads: DEFAULT_THREADS,
            max_queue: DEFAULT_MAX_QUEUE,
            overload: Overload::Auto,
            latency_ms: DEFAULT_LATENCY_MS,
            session: SessionSettings::default(),
            remote: Default::default(),
            batch_wait_ms: DEFAULT_BATCH_WAIT_MS,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

#[derive(Default)]
struct Stats {
    chunks: u64,
    /// Time spent in the tagger alone, so its share of the chunk time is known.
    tagger_us: u64,
    tag_frames: u64,
    windows: u64,
    dropped: u64,
    total_us: u64,
    max_us: u64,
    recent_us: VecDeque<u32>,
    /// The shared models' batch counts as of this element's last chunk: read here, the
    /// getter never touches the models, which the worker holds through inference.
    vad_batches: Option<BatchCounts>,
    tagger_batches: Option<BatchCounts>,
    /// Tagger windows skipped by the level gate, and scored.
    tag_gated: u64,
    tag_scored: u64,
}

impl Stats {
    fn record(&mut self, us: u64, done: &Done) {
        self.chunks += 1;
        self.tagger_us += done.tagger_us;
        self.tag_frames += done.tag_frames as u64;
        self.windows += done.windows as u64;
        self.total_us += us;
        self.max_us = self.max_us.max(us);
        if self.recent_us.len() == TIMING_WINDOW {
            self.recent_us.pop_front();
        }
        self.recent_us.push_back(us.min(u32::MAX as u64) as u32);
        self.vad_batches = Some(done.vad_batches);
        self.tagger_batches = done.tagger_batches;
        (self.tag_gated, self.tag_scored) = done.gate_counts;
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.recent_us.is_empty() {
            return 0;
        }
        let mut v: Vec<u32> = self.recent_us.iter().copied().collect();
        v.sort_unstable();
        let idx = ((v.len() - 1) as f64 * q).round() as usize;
        v[idx.min(v.len() - 1)] as u64
    }
}

/// What the streaming thread, the worker's bookkeeping and the property getters share. Held
/// only for short updates, never across inference, a push or a posted message.
struct State {
    /// The loaded model's sample rate (READY and up): caps queries and caps are held to it.
    model_rate: Option<u32>,
    active_provider: Option<String>,
    /// The segment as the streaming thread last saw it: only dropped chunks, which are
    /// dropped on that thread as they arrive, are placed in it.
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    live: Option<bool>,
    /// A chunk was dropped: the next chunk queued restarts the models, since their state no
    /// longer follows the audio.
    reset_next: bool,
    /// Latency this element reports: the configured budget, raised when chunks take longer.
    budget: super::budget::LatencyBudget,
    stats: Stats,
    /// The VAD's and the tagger's server status generations already reported, and their
    /// latest status.
    remote_seen: [u64; 2],
    remote: [Option<RemoteStatus>; 2],
}

impl Default for State {
    fn default() -> Self {
        Self {
            model_rate: None,
            active_provider: None,
            segment: None,
            live: None,
            reset_next: false,
            budget: super::budget::LatencyBudget::new(gst::ClockTime::from_mseconds(
                DEFAULT_LATENCY_MS as u64,
            )),
            stats: Stats::default(),
            remote_seen: [0; 2],
            remote: [None, None],
        }
    }
}

/// The worker's own state: the models and what it carries from one chunk to the next. The
/// worker holds it through inference (and cross-stream batch waits); only it, the state
/// changes and FLUSH_STOP (while the worker is paused) take it.
struct Worker {
    vad: SileroVad,
    tagger: Option<AudioTagger>,
    /// Format of the chunks, as the caps event before them in the queue says.
    rate: u32,
    s16: bool,
    /// Restart the models on the next chunk (a new stream, a flush).
    reset_pending: bool,
    samples: Vec<f32>,
    /// The tagger's hop while calm, ms; 0 never looks coarsely.
    calm_hop_ms: u32,
    /// Downstream was asked which tagger outputs it acts on, for this stream.
    watch_asked: bool,
}

/// A chunk for the worker, with whether the models restart on it.
struct Chunk {
    buffer: gst::Buffer,
    reset: bool,
}

/// What the worker measured on a chunk, for the statistics.
struct Done {
    windows: usize,
    tag_frames: usize,
    tagger_us: u64,
    vad_batches: BatchCounts,
    tagger_batches: Option<BatchCounts>,
    /// This stream's tagger windows gated and scored so far.
    gate_counts: (u64, u64),
    /// Where the VAD's and the tagger's servers stand, when they run on one.
    remote: [Option<RemoteStatus>; 2],
}

/// Why a chunk could not be analysed: a flow error, or an error to post once the worker's
/// lock is released.
enum Failure {
    Flow(gst::FlowError),
    Post(gst::ErrorMessage),
}

impl From<gst::FlowError> for Failure {
    fn from(e: gst::FlowError) -> Self {
        Self::Flow(e)
    }
}

impl Worker {
    fn new(vad: SileroVad, tagger: Option<AudioTagger>, calm_hop_ms: u32) -> Self {
        Self {
            vad,
            tagger,
            rate: 0,
            s16: false,
            reset_pending: true,
            samples: Vec::new(),
            calm_hop_ms,
            watch_asked: false,
        }
    }

    /// A new stream: the next chunk starts from a clean model state.
    fn restart(&mut self) {
        self.vad.reset();
        if let Some(t) = self.tagger.as_mut() {
            t.reset();
        }
        self.reset_pending = true;
        self.watch_asked = false;
    }

    /// The tagger's labels, when downstream is still to be asked which of them it acts on.
    fn watch_question(&mut self) -> Option<Vec<String>> {
        if self.watch_asked || self.calm_hop_ms == 0 || self.rate == 0 {
            return None;
        }
        self.watch_asked = true;
        self.tagger.as_ref().map(|t| t.labels().to_vec())
    }

    /// Downstream's answer: the tagger looks coarsely while none of those outputs comes near.
    fn set_watch(&mut self, watched: Option<Vec<(usize, f32)>>) {
        let calm_hop = soundflow::base::time::ms_to_samples(self.calm_hop_ms, self.rate);
        if let Some(t) = self.tagger.as_mut() {
            t.set_watch(watched.map(|labels| TagWatch { labels, calm_hop }));
        }
    }

    /// Applies a serialized event that changes how the chunks after it are read.
    fn apply(&mut self, event: &gst::Event) {
        if let gst::EventView::Caps(c) = event.view()
            && let Ok(info) = gst_audio::AudioInfo::from_caps(c.caps())
        {
            self.rate = info.rate();
            self.s16 = info.format() == gst_audio::AudioFormat::S16le;
        }
    }

    /// Runs the models on the chunk's new samples and attaches the perception meta.
    fn perceive(&mut self, chunk: Chunk) -> Result<(gst::Buffer, Done), Failure> {
        let Chunk { mut buffer, reset } = chunk;
        let mut samples = std::mem::take(&mut self.samples);
        let start = crate::util::new_chunk_samples(&buffer, self.rate, self.s16, &mut samples)?;
        let discont = buffer.flags().contains(gst::BufferFlags::DISCONT);
        let reset = std::mem::take(&mut self.reset_pending) || reset || discont;
        let failed = |e: soundflow::Error| {
            Failure::Post(gst::error_msg!(
                gst::StreamError::Failed,
                ("Perception model failed: {}", e)
            ))
        };
        if reset {
            self.vad.reset();
        }
        let windows = self.vad.process(start, &samples).map_err(failed)?;
        let mut p = Perception {
            rate: self.rate,
            window: self.vad.window_samples() as u32,
            windows,
            reset,
            ..Default::default()
        };
        let mut tagger_us = 0;
        if let Some(t) = self.tagger.as_mut() {
            let t1 = Instant::now();
            if reset {
                t.reset();
            }
            p.tags = t.process(start, &samples).map_err(failed)?;
            // 527 names are no small meta: they go with the stream's first chunk and with
            // those that carry frames, not with every chunk.
            if reset || !p.tags.is_empty() {
                p.labels = t.labels().to_vec();
            }
            tagger_us = t1.elapsed().as_micros() as u64;
        }
        self.samples = samples;
        meta::add_structure(
            buffer.make_mut(),
            meta::PERCEPTION_META,
            meta::perception_structure(&p),
        )
        .map_err(|_| gst::FlowError::Error)?;
        let done = Done {
            windows: p.windows.len(),
            tag_frames: p.tags.len(),
            tagger_us,
            vad_batches: self.vad.batch_counts(),
            tagger_batches: self.tagger.as_ref().map(|t| t.batch_counts()),
            gate_counts: self.tagger.as_ref().map_or((0, 0), |t| t.gate_counts()),
            remote: [
                self.vad.remote_status(),
                self.tagger.as_ref().and_then(|t| t.remote_status()),
            ],
        };
        Ok((buffer, done))
    }
}

pub struct Perceive {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    worker: Mutex<Option<Worker>>,
    queue: WorkQueue<Chunk>,
}

impl Perceive {
    fn load_model(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().clone();
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
        opts.remote = s.remote.spec()?;
        let policy = BatchPolicy {
            wait: std::time::Duration::from_millis(s.batch_wait_ms as u64),
            max_jobs: s.max_batch.max(1) as usize,
        };
        let mut vad = SileroVad::load(&pkg, &rt, &opts).map_err(model_error)?;
        vad.set_batch_policy(policy);
        let tagger = match s.tagger.as_str() {
            "" | "none" => None,
            spec => {
                let tpkg = ModelPackage::find(spec).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::NotFound,
                        ("{}", e),
                        ["set tagger=none to run without sound-event detection"]
                    )
                })?;
                let mut t = AudioTagger::load(&tpkg, &rt, &opts).map_err(model_error)?;
                t.set_batch_policy(policy);
                t.set_gate_db((s.tagger_gate_db > TAGGER_GATE_OFF_DB).then_some(s.tagger_gate_db));
                if t.sample_rate() != vad.sample_rate() {
                    return Err(gst::error_msg!(
                        gst::LibraryError::Settings,
                        (
                            "The tagger {} runs at {} Hz but the VAD at {} Hz",
                            tpkg.display_name(),
                            t.sample_rate(),
                            vad.sample_rate()
                        )
                    ));
                }
                gst::info!(
                    CAT,
                    imp = self,
                    "tagger {} from {}: labels {:?}, window {} hop {} samples",
                    tpkg.display_name(),
                    tpkg.dir.display(),
                    t.labels(),
                    t.window_samples(),
                    t.hop_samples()
                );
                Some(t)
            }
        };
        let info = vad.session_info().clone();
        let element = self.obj().upcast_ref::<gst::Element>().clone();
        crate::session::report_fallback(&element, *CAT, "the VAD", &info);
        let mut active = info.active.as_str().to_string();
        if let Some(t) = &tagger {
            let tinfo = t.session_info();
            // The same provider fails the same way for both models: say it once.
            if tinfo.active != info.active {
                crate::session::report_fallback(&element, *CAT, "the tagger", tinfo);
                active = format!("{active} (tagger {})", tinfo.active.as_str());
            }
        }
        gst::info!(
            CAT,
            imp = self,
            "loaded {} ({}) from {} on {} with ONNX Runtime {}",
            pkg.display_name(),
            pkg.manifest.family,
            pkg.dir.display(),
            info.active.as_str(),
            rt.library_path().display()
        );
        let rate = vad.sample_rate();
        *self.worker.lock() = Some(Worker::new(vad, tagger, s.tagger_calm_hop_ms));
        let mut st = self.state.lock();
        st.model_rate = Some(rate);
        st.active_provider = Some(active);
        Ok(())
    }

    fn is_live(&self) -> bool {
        if let Some(l) = self.state.lock().live {
            return l;
        }
        let live = crate::util::upstream_is_live(&self.sinkpad);
        self.state.lock().live = Some(live);
        live
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (max, overload) = {
            let s = self.settings.lock();
            (s.max_queue.max(1) as usize, s.overload)
        };
        let drop_when_full = match overload {
            Overload::Drop => true,
            Overload::Block => false,
            Overload::Auto => self.is_live(),
        };
        let reset = self.state.lock().reset_next;
        match self
            .queue
            .push_job(Chunk { buffer, reset }, max, !drop_when_full)?
        {
            Pushed::Queued => {
                if reset {
                    self.state.lock().reset_next = false;
                }
            }
            Pushed::Full(chunk) => self.drop_buffer(&chunk.buffer),
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Overload in a live pipeline: the chunk is not analysed. Downstream learns of the hole
    /// through a GAP, the application through a QoS message and the `stats` counter.
    fn drop_buffer(&self, buffer: &gst::Buffer) {
        let (dropped, processed, segment) = {
            let mut st = self.state.lock();
            st.stats.dropped += 1;
            // The chunks queued before this one still follow the audio; the next one not.
            st.reset_next = true;
            (st.stats.dropped, st.stats.chunks, st.segment.clone())
        };
        gst::warning!(
            CAT,
            imp = self,
            "worker overloaded: dropping chunk at {:?} ({dropped} dropped so far)",
            buffer.pts()
        );
        if let (Some(pts), Some(seg)) = (buffer.pts(), segment) {
            let msg = gst::message::Qos::builder(true)
                .running_time(seg.to_running_time(pts))
                .stream_time(seg.to_stream_time(pts))
                .timestamp(pts)
                .duration(buffer.duration())
                .stats(
                    gst::format::Buffers::from_u64(processed),
                    gst::format::Buffers::from_u64(dropped),
                )
                .src(&*self.obj())
                .build();
            let _ = self.obj().post_message(msg);
            let gap = gst::event::Gap::builder(pts)
                .duration(buffer.duration())
                .build();
            // The hole is reported even when the queue is full; holes in a row merge into
            // one event, so a sustained overload does not grow the queue.
            self.queue.push_gap(gap);
        }
    }

    fn task_iteration(&self) {
        let Some(item) = self.queue.pop() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let res = match item {
            Item::Job(chunk) => self.handle_chunk(chunk),
            Item::Event(ev) => {
                if let Some(w) = self.worker.lock().as_mut() {
                    w.apply(&ev);
                }
                let is_eos = ev.type_() == gst::EventType::Eos;
                if !self.srcpad.push_event(ev) && is_eos {
                    gst::debug!(CAT, imp = self, "EOS not handled downstream");
                }
                Ok(gst::FlowSuccess::Ok)
            }
        };
        if let Err(err) = res {
            let element = self.obj().upcast_ref::<gst::Element>().clone();
            let fatal = crate::worker::report_failure(&self.queue, &element, err);
            if fatal
                || err == gst::FlowError::Eos
                || err == gst::FlowError::NotLinked
                || matches!(err, gst::FlowError::Error | gst::FlowError::NotNegotiated)
            {
                let _ = self.srcpad.push_event(gst::event::Eos::new());
            }
            let _ = self.srcpad.pause_task();
        }
    }

    /// Analyses a chunk under the worker's lock, then (the lock released) posts any error,
    /// records the statistics and pushes the chunk.
    fn handle_chunk(&self, chunk: Chunk) -> Result<gst::FlowSuccess, gst::FlowError> {
        let question = self.worker.lock().as_mut().and_then(Worker::watch_question);
        if let Some(labels) = question {
            // Asked before the stream's first window, out of the worker's lock: which windows
            // are scored then depends on the rules alone, never on timing.
            let mut q = meta::tagger_watch_query(&labels);
            let watched = self
                .srcpad
                .peer_query(&mut q)
                .then(|| q.structure().and_then(meta::tagger_watch_answer))
                .flatten();
            gst::debug!(
                CAT,
                imp = self,
                "tagger outputs watched downstream: {watched:?}"
            );
            if let Some(w) = self.worker.lock().as_mut() {
                w.set_watch(watched);
            }
        }
        let t0 = Instant::now();
        let res = match self.worker.lock().as_mut() {
            Some(w) => w.perceive(chunk),
            None => Err(Failure::Post(gst::error_msg!(
                gst::CoreError::StateChange,
                ("lalm-perceive has no model loaded")
            ))),
        };
        let (buffer, done) = match res {
            Ok(r) => r,
            Err(Failure::Flow(e)) => return Err(e),
            Err(Failure::Post(msg)) => {
                self.post_error_message(msg);
                return Err(gst::FlowError::Error);
            }
        };
        let elapsed = t0.elapsed();
        self.report_remote(&done.remote);
        self.state
            .lock()
            .stats
            .record(elapsed.as_micros() as u64, &done);
        self.check_budget(elapsed);
        self.srcpad.push(buffer)
    }

    /// Tells the application when a model lost its server or got it back.
    fn report_remote(&self, statuses: &[Option<RemoteStatus>; 2]) {
        let element = self.obj().upcast_ref::<gst::Element>().clone();
        let mut seen = self.state.lock().remote_seen;
        for ((st, what), seen) in statuses
            .iter()
            .zip(["the VAD", "the tagger"])
            .zip(&mut seen)
        {
            if let Some(st) = st {
                crate::remote::report(&element, *CAT, what, st, seen);
            }
        }
        let mut state = self.state.lock();
        state.remote_seen = seen;
        state.remote = statuses.clone();
    }

    /// A chunk that took longer than the reported latency means the latency was a lie: raise
    /// it and tell the pipeline to recompute; once a long run of chunks is well inside it
    /// again, lower it the same way.
    fn check_budget(&self, elapsed: std::time::Duration) {
        let took = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
        let change = self.state.lock().budget.observe(took);
        match change {
            None => return,
            Some(super::budget::Change::Raised { from, to }) => gst::warning!(
                CAT,
                imp = self,
                "a chunk took {took}, over the {from} budget: reporting {to} latency"
            ),
            Some(super::budget::Change::Lowered { from, to }) => gst::info!(
                CAT,
                imp = self,
                "chunks run well within {from} again: reporting {to} latency"
            ),
        }
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        let weak = self.obj().downgrade();
        self.queue.start(&self.srcpad, move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp().task_iteration();
            }
        })
    }

    fn stop_task(&self) {
        self.queue.stop(&self.srcpad);
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::FlushStart(_) => {
                self.queue.set_flushing(true);
                let ret = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ret
            }
            EventView::FlushStop(_) => {
                self.queue.clear();
                // The worker is paused since FLUSH_START: this lock is free.
                if let Some(w) = self.worker.lock().as_mut() {
                    w.restart();
                }
                self.state.lock().reset_next = false;
                let ret = self.srcpad.push_event(event);
                if let Err(e) = self.start_task() {
                    gst::error!(CAT, imp = self, "cannot restart worker: {e}");
                    return false;
                }
                ret
            }
            EventView::Caps(c) => {
                // Checked here, so a bad format is refused to upstream; the worker reads
                // the chunks with it only when it reaches this event, after the chunks
                // queued before it.
                let Ok(info) = gst_audio::AudioInfo::from_caps(c.caps()) else {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("lalm-perceive needs raw audio, got {}", c.caps())
                    );
                    return false;
                };
                let model_rate = self.state.lock().model_rate;
                if let Some(mr) = model_rate
                    && mr != info.rate()
                {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        (
                            "The model runs at {} Hz but the stream is {} Hz",
                            mr,
                            info.rate()
                        ),
                        ["put audioresample before lalm-chunker, or use lalm-interact"]
                    );
                    return false;
                }
                self.queue.push_event(event)
            }
            EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().segment = Some(seg);
                }
                self.queue.push_event(event)
            }
            _ if event.is_serialized() => self.queue.push_event(event),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Caps(q) = query.view_mut() {
            return self.query_caps(pad, q);
        }
        // A serialized query (DRAIN, ALLOCATION) must find downstream as the chunks queued
        // before it leave it: wait until the worker has handled them.
        if query.is_serialized() && !self.queue.barrier() {
            gst::debug!(CAT, imp = self, "{:?} query not answered: flushing", query);
            return false;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Latency(q) => {
                if !self.sinkpad.peer_query(q.query_mut()) {
                    return false;
                }
                let (live, min, max) = q.result();
                let own = {
                    let mut st = self.state.lock();
                    st.live = Some(live);
                    st.budget.current()
                };
                q.set(live, min + own, max.map(|m| m + own));
                true
            }
            gst::QueryViewMut::Caps(q) => self.query_caps(pad, q),
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// Caps on either pad: the template's formats at the model's rate once a model is
    /// loaded, narrowed to what the other side's peer takes, so upstream resamples to it.
    fn query_caps(&self, pad: &gst::Pad, q: &mut gst::query::Caps) -> bool {
        let mut ours = pad.pad_template_caps();
        if let Some(rate) = self.state.lock().model_rate {
            let rate = i32::try_from(rate).unwrap_or(i32::MAX);
            for s in ours.make_mut().iter_mut() {
                s.set("rate", rate);
            }
        }
        let other = if pad == &self.sinkpad {
            &self.srcpad
        } else {
            &self.sinkpad
        };
        let filter = match q.filter() {
            Some(f) => f.intersect_with_mode(&ours, gst::CapsIntersectMode::First),
            None => ours.clone(),
        };
        let peer = other.peer_query_caps(Some(&filter));
        let caps = peer.intersect_with_mode(&ours, gst::CapsIntersectMode::First);
        gst::log!(CAT, obj = pad, "caps query answered with {caps}");
        q.set_result(&caps);
        true
    }

    fn stats_structure(&self) -> gst::Structure {
        let st = self.state.lock();
        let s = &st.stats;
        gst::Structure::builder("lalm-perceive-stats")
            .field("chunks", s.chunks)
            .field("windows", s.windows)
            .field("dropped", s.dropped)
            .field("tag-frames", s.tag_frames)
            .field(
                "tagger-mean-us",
                s.tagger_us.checked_div(s.chunks).unwrap_or(0),
            )
            .field("mean-us", s.total_us.checked_div(s.chunks).unwrap_or(0))
            .field("p50-us", s.percentile(0.5))
            .field("p99-us", s.percentile(0.99))
            .field("max-us", s.max_us)
            .field("latency-ns", st.budget.current().nseconds())
            .field("vad-batch-mean", batch_mean(s.vad_batches))
            .field("tagger-batch-mean", batch_mean(s.tagger_batches))
            .field("tagger-gated", s.tag_gated)
            .field("tagger-scored", s.tag_scored)
            .field("server-up", st.remote.iter().flatten().all(|r| r.up))
            .field(
                "server-requests",
                st.remote.iter().flatten().map(|r| r.requests).sum::<u64>(),
            )
            .field(
                "server-local-runs",
                st.remote
                    .iter()
                    .flatten()
                    .map(|r| r.local_runs)
                    .sum::<u64>(),
            )
            .field(
                "server-bytes-out",
                st.remote.iter().flatten().map(|r| r.bytes_out).sum::<u64>(),
            )
            .field(
                "server-bytes-in",
                st.remote.iter().flatten().map(|r| r.bytes_in).sum::<u64>(),
            )
            .build()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Perceive {
    const NAME: &'static str = "GstLalmPerceive";
    type Type = super::Perceive;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                Perceive::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |p| p.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                Perceive::catch_panic_pad_function(parent, || false, |p| p.sink_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                Perceive::catch_panic_pad_function(parent, || false, |p| p.sink_query(pad, query))
            })
            .build();
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&templ)
            .query_function(|pad, parent, query| {
                Perceive::catch_panic_pad_function(parent, || false, |p| p.src_query(pad, query))
            })
            .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            worker: Mutex::new(None),
            queue: WorkQueue::default(),
        }
    }
}

impl ObjectImpl for Perceive {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model package")
                    .blurb("Perception model package: a folder with model.toml, its model.toml, or a package name searched in $LALM_MODEL_PATH, $XDG_DATA_HOME/lalm/models and $XDG_DATA_DIRS/lalm/models")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tagger")
                    .nick("Sound-event tagger")
                    .blurb("audio-tagger model package run next to the VAD, for sound-event alerts (a folder, its model.toml, or a package name searched like model); none (or empty) runs the VAD alone")
                    .default_value(Some(DEFAULT_TAGGER))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("tagger-gate-db")
                    .nick("Tagger level gate")
                    .blurb("Tagger windows whose RMS level is below this (dBFS) score 0 without running the tagger: silence holds no sound event, and idle or muted streams cost no tagger time; -200 scores every window")
                    .minimum(TAGGER_GATE_OFF_DB)
                    .maximum(0.0)
                    .default_value(DEFAULT_TAGGER_GATE_DB)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tagger-calm-hop-ms")
                    .nick("Tagger calm hop")
                    .blurb("While no tagger label that the downstream lalm-decide's sound rules act on scores near their threshold (a quarter of it), tagger windows follow each other this far apart (at most one window, so every sample is still heard) instead of at the model's hop; once one comes near, the windows back to the calm one before it and on at the model's hop, so the frames around a sound are those of the full rate; a stream with no sound event costs a fraction of the tagger time. Asked of lalm-decide with a custom query as each stream starts; without it downstream, or with 0, every window is scored")
                    .maximum(60_000)
                    .default_value(DEFAULT_TAGGER_CALM_HOP_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Auto)
                    .nick("Execution provider")
                    .blurb("ONNX Runtime execution provider; an unavailable one falls back to CPU with a logged warning (see active-execution-provider)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-execution-provider")
                    .nick("Active execution provider")
                    .blurb("The execution provider the model actually runs on (known once the element is READY)")
                    .read_only()
                    .build(),
                crate::session::ort_library_spec(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Inference threads")
                    .blurb("ONNX Runtime intra-op threads for the model")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-wait-ms")
                    .nick("Batch wait")
                    .blurb("With share-session, the most a chunk waits for other streams' chunks so their windows run as one batched inference (0: only what is ready at that moment); a stream alone never waits")
                    .maximum(1000)
                    .default_value(DEFAULT_BATCH_WAIT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-batch")
                    .nick("Largest batch")
                    .blurb("With share-session, the most streams' chunks one batched inference takes (1: no batching); a tagger package may run fewer windows per inference (params.max_batch: the default ced-tiny runs each window alone)")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_MAX_BATCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-queue")
                    .nick("Queue length")
                    .blurb("Chunks waiting for the worker before the overload policy applies")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_MAX_QUEUE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("overload", Overload::Auto)
                    .nick("Overload policy")
                    .blurb("When the queue is full: drop (count it in stats, send a GAP downstream, post a QoS message) or block the streaming thread; auto drops only in live pipelines, so nothing is lost from files")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("processing-latency-ms")
                    .nick("Processing latency")
                    .blurb("Latency the element reports for its worker; raised automatically (with a latency message) when a chunk takes longer")
                    .maximum(60_000)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("lalm-perceive-stats: chunks, windows, dropped, tag-frames, tagger-mean-us (tagger time per chunk), mean-us, p50-us, p99-us, max-us (per-chunk model time, VAD and tagger, batch waits included, over the last 4096 chunks), latency-ns, vad-batch-mean and tagger-batch-mean (streams' chunks per inference call on the shared models, as of this element's last chunk), tagger-gated and tagger-scored (this stream's tagger windows skipped by tagger-gate-db and run); with a server: server-up (the models' last requests reached it), server-requests and server-local-runs (inference calls sent to the server and run locally instead), server-bytes-out and server-bytes-in (protobuf bytes of the requests and answers, without HTTP/2 framing), all over every stream of the shared models")
                    .read_only()
                    .build(),
            ]
            .into_iter()
            .chain(crate::session::param_specs("the VAD and tagger"))
            .chain(crate::remote::param_specs("vad, tagger"))
            .collect()
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock();
        match pspec.name() {
            "model" => {
                s.model = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| DEFAULT_MODEL.into())
            }
            "tagger" => {
                s.tagger = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "tagger-gate-db" => s.tagger_gate_db = value.get().expect("type checked upstream"),
            "tagger-calm-hop-ms" => {
                s.tagger_calm_hop_ms = value.get().expect("type checked upstream")
            }
            "execution-provider" => s.provider = value.get().expect("type checked upstream"),
            "ort-library" => {
                s.ort_library = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .filter(|p| !p.is_empty())
            }
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "max-queue" => s.max_queue = value.get().expect("type checked upstream"),
            "batch-wait-ms" => s.batch_wait_ms = value.get().expect("type checked upstream"),
            "max-batch" => s.max_batch = value.get().expect("type checked upstream"),
            "overload" => s.overload = value.get().expect("type checked upstream"),
            "processing-latency-ms" => {
                s.latency_ms = value.get().expect("type checked upstream");
                self.state
                    .lock()
                    .budget
                    .reset(gst::ClockTime::from_mseconds(s.latency_ms as u64));
            }
            other => {
                if !s.session.set(other, value) && !s.remote.set(other, value) {
                    gst::warning!(CAT, imp = self, "unknown property {other}")
                }
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock();
        match pspec.name() {
            "model" => s.model.to_value(),
            "tagger" => s.tagger.to_value(),
            "tagger-gate-db" => s.tagger_gate_db.to_value(),
            "tagger-calm-hop-ms" => s.tagger_calm_hop_ms.to_value(),
            "execution-provider" => s.provider.to_value(),
            "active-execution-provider" => self.state.lock().active_provider.to_value(),
            "ort-library" => s.ort_library.to_value(),
            "threads" => s.threads.to_value(),
            "max-queue" => s.max_queue.to_value(),
            "batch-wait-ms" => s.batch_wait_ms.to_value(),
            "max-batch" => s.max_batch.to_value(),
            "overload" => s.overload.to_value(),
            "processing-latency-ms" => s.latency_ms.to_value(),
            "stats" => {
                drop(s);
                self.stats_structure().to_value()
            }
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
    }
}

impl GstObjectImpl for Perceive {}

impl ElementImpl for Perceive {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM perception",
                "Filter/Analyzer/Audio",
                "Runs the perception models over each chunk on a worker thread: Silero VAD \
                 (its recurrent state carried across chunks) and a sound-event tagger; attaches \
                 per-window speech probabilities, levels and tagger scores as \
                 LalmPerceptionMeta; the models run on local ONNX Runtime or, with server, on a \
                 KServe v2 (Triton) inference server",
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

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(msg) = self.load_model() {
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
                {
                    let mut st = self.state.lock();
                    st.segment = None;
                    st.live = None;
                    // A new stream: a latency raised by the last one's slow chunks goes.
                    let configured = self.settings.lock().latency_ms;
                    st.budget
                        .reset(gst::ClockTime::from_mseconds(configured as u64));
                    st.reset_next = false;
                    st.stats = Stats::default();
                }
                // The worker is not started yet: this lock is free.
                if let Some(w) = self.worker.lock().as_mut() {
                    w.rate = 0;
                    w.s16 = false;
                    w.restart();
                }
                if let Err(e) = self.start_task() {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Thread,
                        ("Cannot start the worker: {}", e)
                    );
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToNull => {
                *self.worker.lock() = None;
                let mut st = self.state.lock();
                st.model_rate = None;
                st.active_provider = None;
            }
            _ => {}
        }
        Ok(ret)
    }
}

/// Streams' jobs per inference call on this element's shared model, over every stream that
/// shares it; 0 before the first call.
fn batch_mean(counts: Option<BatchCounts>) -> f64 {
    counts.map(|c| c.mean_jobs()).unwrap_or(0.0)
}

/// Model loading errors as the messages a person can act on: a missing file is NotFound, a
/// model that breaks its family's contract a settings error.
fn model_error(e: soundflow::Error) -> gst::ErrorMessage {
    match e {
        soundflow::Error::ModelFileMissing { .. } => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
        }
        soundflow::Error::ModelContract { .. } | soundflow::Error::Manifest { .. } => {
            gst::error_msg!(gst::LibraryError::Settings, ("{}", e))
        }
        soundflow::Error::RemoteModel { .. } | soundflow::Error::RemoteAddress { .. } => {
            gst::error_msg!(gst::LibraryError::Settings, ("{}", e))
        }
        soundflow::Error::RemoteUnavailable { .. } => gst::error_msg!(
            gst::ResourceError::OpenRead,
            ("{}", e),
            ["set server-fallback=local to start on local ONNX Runtime while the server is down"]
        ),
        _ => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)),
    }
}
