use std::collections::VecDeque;
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::perception::{AudioHistory, Decision};
use soundflow::response::{Responder, Response, TurnEndResponder, Utterance};
use soundflow::time::ms_to_samples;

use crate::meta;
use crate::util::{clock, stream_times};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-respond",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm responses"),
    )
});

const DEFAULT_MAX_HISTORY_MS: u32 = 120_000;

struct State {
    rate: u32,
    s16: bool,
    segment: gst::FormattedSegment<gst::ClockTime>,
    history: AudioHistory,
    /// (window start, probability) of recent windows, for a response's confidence.
    probs: VecDeque<(u64, f32)>,
    /// Text stream position: everything before it was covered by a buffer or a GAP.
    text_pos: gst::ClockTime,
    responder: Box<dyn Responder>,
    responses: u64,
    scratch: Vec<f32>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            rate: 0,
            s16: false,
            segment: gst::FormattedSegment::new(),
            history: AudioHistory::default(),
            probs: VecDeque::new(),
            text_pos: gst::ClockTime::ZERO,
            responder: Box::new(TurnEndResponder),
            responses: 0,
            scratch: Vec::new(),
        }
    }
}

pub struct Respond {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    max_history_ms: Mutex<u32>,
    state: Mutex<State>,
}

impl Respond {
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
            let rate = st.rate.max(1);
            let s16 = st.s16;
            let mut scratch = std::mem::take(&mut st.scratch);
            let start = crate::util::new_chunk_samples(&buffer, rate, s16, &mut scratch)?;
            st.history.push(start, &scratch);
            st.scratch = scratch;
            if let Some(p) = meta::get_structure(&buffer, meta::PERCEPTION_META)
                .and_then(|s| meta::perception_from(&s))
            {
                st.probs.extend(p.windows.iter().map(|w| (w.start, w.prob)));
            }
        }
        self.handle_decision(&decision)
    }

    fn handle_decision(&self, d: &Decision) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut out: Vec<Response> = Vec::new();
        let (gap, rate) = {
            let mut st = self.state.lock();
            let rate = if d.rate > 0 { d.rate } else { st.rate.max(1) };
            if let Some((start, end)) = d.turn_end {
                let confidence = {
                    let (sum, n) = st
                        .probs
                        .iter()
                        .filter(|(s, _)| *s >= start && *s < end)
                        .fold((0.0f64, 0u32), |(a, n), (_, p)| (a + *p as f64, n + 1));
                    if n > 0 { (sum / n as f64) as f32 } else { 0.0 }
                };
                let State {
                    history, responder, ..
                } = &mut *st;
                let u = Utterance {
                    start,
                    end,
                    rate,
                    audio: history.range(start, end),
                    confidence,
                };
                match responder.respond(&u) {
                    Ok(Some(r)) => out.push(r),
                    Ok(None) => {}
                    Err(e) => {
                        gst::element_imp_warning!(
                            self,
                            gst::StreamError::Failed,
                            ("Responder {} failed: {}", responder.name(), e)
                        );
                    }
                }
            }
            // Audio before the settled position is never needed again; bound what is kept
            // even if a turn never ends.
            let max_keep = ms_to_samples(*self.max_history_ms.lock(), rate);
            let keep_from = d
                .settled_until
                .max(st.history.end().saturating_sub(max_keep));
            st.history.trim_before(keep_from);
            while st.probs.front().is_some_and(|(s, _)| *s < keep_from) {
                st.probs.pop_front();
            }
            (clock(d.settled_until, rate), rate)
        };
        for r in out {
            self.push_response(r, rate)?;
        }
        self.advance_to(gap);
        Ok(gst::FlowSuccess::Ok)
    }

    fn push_response(&self, r: Response, rate: u32) -> Result<gst::FlowSuccess, gst::FlowError> {
        let start = clock(r.start, rate);
        let end = clock(r.end, rate);
        let (seg, pts) = {
            let mut st = self.state.lock();
            st.responses += 1;
            // Responses are never earlier than what the text stream already covered.
            let pts = start.max(st.text_pos);
            st.text_pos = st.text_pos.max(end);
            (st.segment.clone(), pts)
        };
        let (s, e, rt) = stream_times(&seg, start, end);
        gst::info!(
            CAT,
            imp = self,
            "{}: {} ({s}..{e})",
            r.kind.as_str(),
            r.text
        );
        let msg = gst::message::Element::builder(
            gst::Structure::builder("lalm-response")
                .field("kind", r.kind.as_str())
                .field("text", r.text.as_str())
                .field("start", s)
                .field("end", e)
                .field("running-time", rt)
                .field("confidence", r.confidence as f64)
                .build(),
        )
        .src(&*self.obj())
        .build();
        let _ = self.obj().post_message(msg);
        let mut buf = gst::Buffer::from_mut_slice(r.text.into_bytes());
        {
            let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
            b.set_pts(pts);
            b.set_duration(end.saturating_sub(pts));
        }
        self.srcpad.push(buf)
    }

    /// Keeps downstream time moving between responses with GAP events up to `to`.
    fn advance_to(&self, to: gst::ClockTime) {
        let from = {
            let mut st = self.state.lock();
            if to <= st.text_pos {
                return;
            }
            let from = st.text_pos;
            st.text_pos = to;
            from
        };
        let gap = gst::event::Gap::builder(from).duration(to - from).build();
        let _ = self.srcpad.push_event(gap);
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
                self.srcpad
                    .push_event(gst::event::Caps::new(&crate::util::text_caps()))
            }
            EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    let mut st = self.state.lock();
                    st.text_pos = seg.start().unwrap_or(gst::ClockTime::ZERO);
                    st.segment = seg;
                }
                self.srcpad.push_event(event)
            }
            EventView::CustomDownstream(c) => {
                if let Some(s) = c.structure()
                    && s.name() == meta::DECISION_EVENT
                {
                    if let Some(d) = meta::decision_from(s)
                        && let Err(e) = self.handle_decision(&d)
                    {
                        gst::debug!(CAT, imp = self, "final response not pushed: {e:?}");
                    }
                    return true;
                }
                self.srcpad.push_event(event)
            }
            EventView::Gap(g) => {
                let (ts, dur) = g.get();
                let end = dur.map(|d| ts + d).unwrap_or(ts);
                // A hole upstream (a dropped chunk): nothing can be said about it.
                self.advance_to(end);
                true
            }
            EventView::FlushStop(_) => {
                {
                    let mut st = self.state.lock();
                    st.history.clear();
                    st.probs.clear();
                    st.text_pos = gst::ClockTime::ZERO;
                }
                self.srcpad.push_event(event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
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
        let srcpad = gst::Pad::builder_from_template(&templ).build();
        Self {
            sinkpad,
            srcpad,
            max_history_ms: Mutex::new(DEFAULT_MAX_HISTORY_MS),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for Respond {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
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
                    .blurb("Responses produced since the element went to PAUSED")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "max-history-ms" => {
                *self.max_history_ms.lock() = value.get().expect("type checked upstream")
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "max-history-ms" => self.max_history_ms.lock().to_value(),
            "responses" => self.state.lock().responses.to_value(),
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

impl GstObjectImpl for Respond {}

impl ElementImpl for Respond {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM response",
                "Filter/Audio/Text",
                "Responds when lalm-decide says so: one UTF-8 text buffer per response, timed \
                 over the utterance (pts = start, duration = its span), GAP events in between, \
                 and a lalm-response element message (kind, text, start, end, running-time, \
                 confidence)",
                "gst-lalm developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            crate::util::always_templates(
                &crate::util::mono_audio_caps(),
                &crate::util::text_caps(),
            )
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
        self.parent_change_state(transition)
    }
}
