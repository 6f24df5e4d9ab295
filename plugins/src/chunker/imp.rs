use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::base::framing::{Chunk, Framer, FramerConfig, SilenceFill};
use soundflow::base::time::{ms_to_samples, ns_to_samples};

use crate::meta;
use crate::util::clock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-chunker",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm chunker"),
    )
});

const DEFAULT_CHUNK_MS: u32 = 400;
const DEFAULT_OVERLAP_MS: u32 = 0;
const DEFAULT_TOLERANCE_MS: u32 = 40;
/// The largest chunk taken, in bytes. The longest chunk (60 s) of F32 at 384 kHz is 92 MB;
/// a rate in the caps that makes a chunk larger is refused rather than allocated (a GAP
/// frames a whole chunk at once).
const MAX_CHUNK_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy)]
struct Settings {
    chunk_ms: u32,
    overlap_ms: u32,
    tolerance_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            chunk_ms: DEFAULT_CHUNK_MS,
            overlap_ms: DEFAULT_OVERLAP_MS,
            tolerance_ms: DEFAULT_TOLERANCE_MS,
        }
    }
}

#[derive(Default)]
struct State {
    framer: Option<Framer>,
    rate: u32,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Samples seen in this stream; none at EOS is reported as an error.
    samples_seen: u64,
}

pub struct Chunker {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl Chunker {
    fn chunk_buffer(&self, c: Chunk, rate: u32) -> Result<gst::Buffer, gst::FlowError> {
        let start = c.start;
        let end = c.start + c.valid as u64;
        let structure = meta::chunk_structure(&c, rate);
        let discont = c.discont;
        let mut buf = gst::Buffer::from_mut_slice(c.data);
        {
            let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
            let pts = clock(start, rate);
            b.set_pts(pts);
            // Durations from positions, not from sizes, so consecutive chunks tile exactly.
            // Saturating: at the end of the clock's range both times are ClockTime::MAX.
            b.set_duration(clock(end, rate).saturating_sub(pts));
            b.set_offset(start);
            b.set_offset_end(end);
            if discont {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
            meta::add_structure(b, meta::CHUNK_META, structure).map_err(|e| {
                gst::error!(CAT, imp = self, "cannot add chunk meta: {e}");
                gst::FlowError::Error
            })?;
        }
        Ok(buf)
    }

    fn push_chunks(
        &self,
        chunks: Vec<Chunk>,
        rate: u32,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut ret = Ok(gst::FlowSuccess::Ok);
        for c in chunks {
            ret = self.push_chunk(c, rate);
            if ret.is_err() {
                break;
            }
        }
        ret
    }

    fn push_chunk(&self, c: Chunk, rate: u32) -> Result<gst::FlowSuccess, gst::FlowError> {
        gst::trace!(
            CAT,
            imp = self,
            "chunk {} at sample {} ({} valid)",
            c.index,
            c.start,
            c.valid
        );
        let buf = self.chunk_buffer(c, rate)?;
        self.srcpad.push(buf)
    }

    /// A gap is time in which nothing was heard: it becomes silence, so chunks keep their
    /// fixed size and downstream time keeps moving. The silence is framed and pushed one chunk
    /// at a time, without the state lock held across the push, so a gap of an hour holds one
    /// chunk in memory, not the hour.
    fn sink_gap(&self, event: gst::Event, ts: gst::ClockTime, dur: Option<gst::ClockTime>) -> bool {
        let (mut fill, rate) = {
            let st = self.state.lock();
            if st.framer.is_none() || st.rate == 0 {
                drop(st);
                return self.srcpad.push_event(event);
            }
            let Some(dur) = dur else {
                // Nothing to fill: the gap says no more than that time passed up to `ts`.
                return true;
            };
            // An end past the clock's range is clamped to it: the gap covers what is left.
            let end = ts.checked_add(dur).unwrap_or_else(|| {
                gst::warning!(
                    CAT,
                    imp = self,
                    "gap at {ts} lasting {dur} ends past the clock's range: clamped"
                );
                gst::ClockTime::MAX
            });
            let pos = ns_to_samples(ts.nseconds(), st.rate);
            let n = ns_to_samples(end.nseconds(), st.rate).saturating_sub(pos);
            (SilenceFill::new(Some(pos), n), st.rate)
        };
        loop {
            let next = match self.state.lock().framer.as_mut() {
                Some(f) => f.fill_silence(&mut fill),
                // Stopped (READY) between two chunks: the rest of the gap is gone with it.
                None => None,
            };
            let Some(c) = next else {
                return true;
            };
            if let Err(e) = self.push_chunk(c, rate) {
                gst::debug!(CAT, imp = self, "gap fill stopped: {e:?}");
                return false;
            }
        }
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (chunks, rate) = {
            let mut st = self.state.lock();
            let rate = st.rate;
            let Some(framer) = st.framer.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("lalm-chunker received data before caps"),
                    ["it needs audio/x-raw, format=F32LE or S16LE, channels=1 caps first"]
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let map = buffer.map_readable().map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("cannot map input buffer")
                );
                gst::FlowError::Error
            })?;
            let pos = buffer.pts().map(|t| ns_to_samples(t.nseconds(), rate));
            let chunks = framer.push(pos, map.as_slice());
            let frame = framer.config().frame_bytes as u64;
            st.samples_seen += map.size() as u64 / frame;
            (chunks, rate)
        };
        self.push_chunks(chunks, rate)
    }

    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (last, rate) = {
            let mut st = self.state.lock();
            let rate = st.rate;
            (st.framer.as_mut().and_then(Framer::drain), rate)
        };
        match last {
            Some(c) => self.push_chunks(vec![c], rate),
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    fn configure(&self, caps: &gst::CapsRef) -> Result<(), String> {
        let info =
            gst_audio::AudioInfo::from_caps(caps).map_err(|_| format!("not raw audio: {caps}"))?;
        if info.channels() != 1 {
            return Err(format!(
                "{} channels: lalm-chunker takes mono (put audioconvert before it)",
                info.channels()
            ));
        }
        let frame_bytes = match info.format() {
            gst_audio::AudioFormat::F32le => 4,
            gst_audio::AudioFormat::S16le => 2,
            f => return Err(format!("format {f:?}: lalm-chunker takes F32LE or S16LE")),
        };
        let s = *self.settings.lock();
        let rate = info.rate();
        let cfg = FramerConfig {
            chunk: ms_to_samples(s.chunk_ms, rate) as usize,
            overlap: ms_to_samples(s.overlap_ms, rate) as usize,
            frame_bytes,
            tolerance: ms_to_samples(s.tolerance_ms, rate),
        };
        if cfg.chunk.saturating_mul(frame_bytes) > MAX_CHUNK_BYTES {
            return Err(format!(
                "a chunk of {} ms at {rate} Hz is {} samples, more than lalm-chunker takes \
                 ({} MiB): lower chunk-ms or resample",
                s.chunk_ms,
                cfg.chunk,
                MAX_CHUNK_BYTES >> 20
            ));
        }
        let framer = Framer::new(cfg).map_err(|e| e.to_string())?;
        let mut st = self.state.lock();
        let same = st.rate == rate && st.framer.as_ref().map(|f| f.config()) == Some(cfg);
        if !same {
            st.framer = Some(framer);
            st.rate = rate;
        }
        Ok(())
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "event {:?}", event.type_());
        match event.view() {
            EventView::Caps(c) => {
                // Caps repeated unchanged are no format change: nothing to drain or redo.
                if pad.current_caps().as_ref() == Some(&c.caps_owned()) {
                    return self.srcpad.push_event(event);
                }
                // A format change mid-stream: what was framed in the old format goes first.
                if let Err(e) = self.drain() {
                    gst::debug!(CAT, imp = self, "drain before caps: {e:?}");
                }
                if let Err(msg) = self.configure(c.caps()) {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("Unsupported caps: {}", msg)
                    );
                    return false;
                }
                self.srcpad.push_event(event)
            }
            EventView::Segment(s) => {
                let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() else {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        (
                            "lalm-chunker needs a TIME segment, got {:?}",
                            s.segment().format()
                        )
                    );
                    return false;
                };
                self.state.lock().segment = Some(seg);
                self.srcpad.push_event(event)
            }
            EventView::Gap(g) => {
                let (ts, dur) = g.get();
                self.sink_gap(event, ts, dur)
            }
            EventView::Eos(_) => {
                if let Err(e) = self.drain() {
                    gst::debug!(CAT, imp = self, "drain at EOS: {e:?}");
                }
                let seen = self.state.lock().samples_seen;
                if seen == 0 {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Demux,
                        ("No audio: the stream ended before any sample arrived"),
                        [
                            "the input is empty (a zero-length file, or a source that produced nothing)"
                        ]
                    );
                }
                self.srcpad.push_event(event)
            }
            EventView::FlushStop(_) => {
                let mut st = self.state.lock();
                if let Some(f) = st.framer.as_mut() {
                    f.reset();
                }
                drop(st);
                self.srcpad.push_event(event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            if !self.sinkpad.peer_query(q.query_mut()) {
                return false;
            }
            let (live, min, max) = q.result();
            let chunk = gst::ClockTime::from_mseconds(self.settings.lock().chunk_ms as u64);
            gst::debug!(
                CAT,
                imp = self,
                "upstream latency {min}/{max:?}, adding {chunk}"
            );
            // Saturating: a latency near ClockTime::MAX from upstream wrapped to a small one.
            q.set(
                live,
                min.saturating_add(chunk),
                max.map(|m| m.saturating_add(chunk)),
            );
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Chunker {
    const NAME: &'static str = "GstLalmChunker";
    type Type = super::Chunker;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                Chunker::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |c| c.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                Chunker::catch_panic_pad_function(parent, || false, |c| c.sink_event(pad, event))
            })
            // Caps pass through unchanged, so a caps query is answered with what the peer of
            // the other pad takes, within the template: `audioresample ! lalm-chunker !
            // lalm-perceive` resamples to the model's rate. No PROXY_ALLOCATION: the chunker
            // copies its input into chunks of its own size, so downstream's pool and allocator
            // fit neither the input buffers nor anything upstream should allocate.
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&templ)
            .query_function(|pad, parent, query| {
                Chunker::catch_panic_pad_function(parent, || false, |c| c.src_query(pad, query))
            })
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for Chunker {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("chunk-ms")
                    .nick("Chunk length")
                    .blurb("Length of each output chunk in milliseconds (the paper's loop uses 400)")
                    .minimum(10)
                    .maximum(60_000)
                    .default_value(DEFAULT_CHUNK_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("overlap-ms")
                    .nick("Overlap")
                    .blurb("Milliseconds each chunk repeats from the end of the previous one; must be less than chunk-ms")
                    .maximum(59_990)
                    .default_value(DEFAULT_OVERLAP_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tolerance-ms")
                    .nick("Timestamp tolerance")
                    .blurb("Input timestamps off by at most this many milliseconds from the sample count are jitter; a larger jump drains the pending samples as a padded chunk and starts a new run marked DISCONT")
                    .maximum(10_000)
                    .default_value(DEFAULT_TOLERANCE_MS)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock();
        match pspec.name() {
            "chunk-ms" => s.chunk_ms = value.get().expect("type checked upstream"),
            "overlap-ms" => s.overlap_ms = value.get().expect("type checked upstream"),
            "tolerance-ms" => s.tolerance_ms = value.get().expect("type checked upstream"),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
        if s.overlap_ms >= s.chunk_ms {
            gst::warning!(
                CAT,
                imp = self,
                "overlap-ms {} is not less than chunk-ms {}: caps will be refused",
                s.overlap_ms,
                s.chunk_ms
            );
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock();
        match pspec.name() {
            "chunk-ms" => s.chunk_ms.to_value(),
            "overlap-ms" => s.overlap_ms.to_value(),
            "tolerance-ms" => s.tolerance_ms.to_value(),
            _ => unreachable!("only registered properties reach here"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("fresh pad");
        obj.add_pad(&self.srcpad).expect("fresh pad");
    }
}

impl GstObjectImpl for Chunker {}

impl ElementImpl for Chunker {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM audio chunker",
                "Filter/Audio",
                "Re-frames mono audio into fixed-size chunks (chunk-ms, optional overlap-ms) \
                 with sample-exact timestamps; gaps become silence, a jump in timestamps or EOS \
                 drains a zero-padded chunk marked in its LalmChunkMeta",
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
        if transition == gst::StateChange::ReadyToPaused {
            *self.state.lock() = State::default();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            *self.state.lock() = State::default();
        }
        Ok(ret)
    }
}
