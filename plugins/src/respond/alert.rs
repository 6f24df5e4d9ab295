//! Alert delivery for `lalm-respond`: every alert reaches the application three ways —
//! a `lalm-alert` element message on the bus (posted the moment the alert is known), one
//! JSON object per buffer on the `alert` source pad, and a `lalm-alert` custom serialized
//! event on the text pad, in order with the cues. Audio alerts arrive with the decision on
//! the streaming thread, text alerts (keyword, wake phrase) come from the decoding worker;
//! the alert pad has a task of its own, so a sink prerolling or blocking there never holds
//! up the text stream (and no queue is needed after the pad).

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use soundflow::decide::alerts::{Alert, AlertKind, AssistantMode};
use soundflow::perceive::perception::Word;

use super::assist::{AnswerKind, Ask};
use super::{CAT, Respond};
use crate::util::{clock, stream_times};
use crate::worker::{Item, Pushed};

/// Structure name of the bus message and of the text-pad event.
pub const ALERT_MESSAGE: &str = "lalm-alert";
/// Structure name of the low-priority bus message for an everyday sound that a rule with
/// `role = "ignore"` heard (music, applause): not an alert, so nothing else carries it.
pub const SOUND_MESSAGE: &str = "lalm-sound";

/// What the `alert` pad carries: one JSON object per buffer.
pub fn alert_caps() -> gst::Caps {
    gst::Caps::builder("application/x-json")
        .field("format", "lalm-alert")
        .build()
}

/// Alert buffers that may wait for the alert pad's sink.
const MAX_WAITING_ALERTS: usize = 256;

impl Respond {
    /// Hands an alert to the assistant, if there is one, as its rule's `assistant` key says:
    /// a question to answer, something to decide about or to remark on, or (silent) only a
    /// line of what was heard. `at` is the alert's start in stream time.
    fn tell_assistant(&self, a: &Alert, at: u64) {
        let Some(asst) = self.assistant() else { return };
        let secs = at as f64 / 1e9;
        let sound = matches!(a.kind, AlertKind::SoundEvent | AlertKind::Sound);
        // The label's first name reads best ("Smoke detector, smoke alarm": smoke detector).
        let name = a
            .label
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_lowercase();
        let cue = match a.kind {
            _ if sound => format!("You just heard a sound: {name}."),
            AlertKind::Keyword | AlertKind::Respond => {
                format!("You just heard someone say: \"{}\".", a.text)
            }
            _ => format!("The room's audio just raised an alert: {}.", a.text),
        };
        let wait = self.assistant_wait();
        let wait = wait.as_deref();
        let taken = match a.assistant {
            // What was said is already heard as transcript; a sound is not.
            AssistantMode::Silent => {
                !sound
                    || asst.hear(
                        format!(
                            "{} (sound: {name})",
                            soundflow::respond::assistant::interaction::stamp(secs)
                        ),
                        wait,
                    )
            }
            mode => asst.ask(
                Ask {
                    kind: if a.kind == AlertKind::Respond {
                        AnswerKind::Answer
                    } else {
                        AnswerKind::Interjection
                    },
                    force: mode == AssistantMode::Respond,
                    cue,
                    text: if a.kind == AlertKind::Respond {
                        a.text.clone()
                    } else {
                        a.label.clone()
                    },
                    start: a.start,
                    end: a.end,
                    rate: a.rate,
                    at: secs,
                    generation: self.generation.load(std::sync::atomic::Ordering::SeqCst),
                },
                wait,
            ),
        };
        if !taken {
            gst::warning!(
                CAT,
                imp = self,
                "the assistant is behind: alert {} ({}) not passed on",
                a.rule,
                a.label
            );
        }
    }

    /// Text rules over a hypothesis' words; alerts go out from the worker thread. First
    /// `before` gets the stream position (samples) where the first of them that puts a
    /// request to the assistant starts, or `None`: what was said before a question must reach
    /// the model ahead of the question.
    pub(super) fn check_text(
        &self,
        words: &[Word],
        is_final: bool,
        heard: u64,
        before: impl FnOnce(Option<u64>),
    ) {
        let (due, segment) = {
            let mut w = self.worker.lock();
            let due = match w.text_alerts.as_mut() {
                Some(t) => t.push(words, is_final),
                None => Vec::new(),
            };
            (due, w.segment.clone())
        };
        let asks = self.assistant.lock().is_some();
        before(
            due.iter()
                .filter(|a| asks && a.assistant != AssistantMode::Silent)
                .map(|a| a.start)
                .min(),
        );
        for a in due {
            self.deliver(&segment, &a, heard, true);
        }
    }

    /// Posts the message, pushes the JSON buffer and sends the text-pad event. `at` is the
    /// stream position the alert was known at, the alert buffer's timestamp.
    pub(super) fn deliver(
        &self,
        seg: &gst::FormattedSegment<gst::ClockTime>,
        a: &Alert,
        at: u64,
        from_worker: bool,
    ) {
        let (s, e, rt) = stream_times(seg, clock(a.start, a.rate), clock(a.end, a.rate));
        if a.kind == AlertKind::Sound {
            gst::debug!(CAT, imp = self, "sound {} ({}) {s}..{e}", a.rule, a.label);
            let fields = gst::Structure::builder(SOUND_MESSAGE)
                .field("class", a.rule.as_str())
                .field("label", a.label.as_str())
                .field("confidence", a.confidence as f64)
                .field("start", s)
                .field("end", e)
                .field("running-time", rt)
                .build();
            self.post_element(fields);
            self.tell_assistant(a, s);
            return;
        }
        self.tell_assistant(a, s);
        gst::info!(
            CAT,
            imp = self,
            "alert {} ({}, {}): {} ({s}..{e})",
            a.rule,
            a.kind.as_str(),
            a.label,
            a.text
        );
        let fields = gst::Structure::builder(ALERT_MESSAGE)
            .field("kind", a.kind.as_str())
            .field("rule", a.rule.as_str())
            .field("label", a.label.as_str())
            .field("text", a.text.as_str())
            .field("confidence", a.confidence as f64)
            .field("start", s)
            .field("end", e)
            .field("running-time", rt)
            .build();
        self.post_element(fields.clone());

        let json = serde_json::json!({
            "type": "alert",
            "kind": a.kind.as_str(),
            "rule": a.rule,
            "label": a.label,
            "text": a.text,
            "confidence": (a.confidence as f64 * 1000.0).round() / 1000.0,
            "start": s as f64 / 1e9,
            "end": e as f64 / 1e9,
            "start_ns": s,
            "end_ns": e,
        });
        self.push_alert_buffer(json.to_string(), clock(at, a.rate));

        let ev = gst::event::CustomDownstream::new(fields);
        if from_worker {
            let _ = self.srcpad.push_event(ev);
        } else {
            self.queue.push_event(ev);
        }
    }

    /// Posts an element message carrying `fields`.
    fn post_element(&self, fields: gst::Structure) {
        let msg = gst::message::Element::builder(fields)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn push_alert_buffer(&self, json: String, at: gst::ClockTime) {
        let pts = {
            let mut w = self.worker.lock();
            // Buffers leave in the order alerts become known; their times never go back.
            let pts = at.max(w.alert_pts);
            w.alert_pts = pts;
            pts
        };
        let mut line = json.into_bytes();
        line.push(b'\n');
        let mut buf = gst::Buffer::from_mut_slice(line);
        if let Some(b) = buf.get_mut() {
            b.set_pts(pts);
        }
        // A sink on the alert pad that never takes buffers must not make memory grow: past
        // the bound the pad's copy is dropped (the bus and the text pad still carry it).
        match self.alert_queue.push_job(buf, MAX_WAITING_ALERTS, false) {
            Ok(Pushed::Queued) => {}
            Ok(Pushed::Full(_)) => {
                let first = {
                    let mut w = self.worker.lock();
                    w.stats.dropped_alert_buffers += 1;
                    w.stats.dropped_alert_buffers == 1
                };
                if first {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::NoSpaceLeft,
                        (
                            "The alert pad is not taking buffers: alerts past {} waiting are dropped there",
                            MAX_WAITING_ALERTS
                        ),
                        ["link the alert pad to a sink that consumes, or leave it unlinked"]
                    );
                }
            }
            Err(e) => gst::debug!(CAT, imp = self, "alert buffer not queued: {e:?}"),
        }
    }

    /// The alert pad's task: pushes what the queue holds. An unlinked alert pad is normal
    /// (the bus and the text pad still carry every alert), so only a real error stops it.
    fn alert_iteration(&self) {
        let res = match self.alert_queue.pop() {
            None => {
                let _ = self.alertpad.pause_task();
                return;
            }
            Some(Item::Event(ev)) => {
                let _ = self.alertpad.push_event(ev);
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Job(buf)) => self.alertpad.push(buf),
        };
        match res {
            Ok(_) | Err(gst::FlowError::NotLinked) => {}
            Err(err) => {
                self.alert_queue.fail(err);
                let _ = self.alertpad.pause_task();
            }
        }
    }

    pub(super) fn start_alert_task(&self) -> Result<(), glib::BoolError> {
        let weak = self.obj().downgrade();
        self.alert_queue.start(&self.alertpad, move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp().alert_iteration();
            }
        })
    }

    pub(super) fn stop_alert_task(&self) {
        self.alert_queue.stop(&self.alertpad);
    }

    /// The alert pad's stream follows the sink's: stream-start and caps first, then the
    /// segment with a GAP at its start so a sink there prerolls before the first alert.
    pub(super) fn alert_pad_event(&self, event: &gst::Event) {
        use gst::EventView;
        match event.view() {
            EventView::StreamStart(s) => {
                let start =
                    gst::event::StreamStart::builder(&format!("{}/alert", s.stream_id())).build();
                self.alert_queue.push_event(start);
                self.alert_queue
                    .push_event(gst::event::Caps::new(&alert_caps()));
            }
            EventView::Segment(s) => {
                self.alert_queue.push_event(event.clone());
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    let at = seg.start().unwrap_or(gst::ClockTime::ZERO);
                    self.worker.lock().alert_pts = at;
                    self.alert_queue
                        .push_event(gst::event::Gap::builder(at).build());
                }
            }
            EventView::FlushStart(_) => {
                self.alert_queue.set_flushing(true);
                let _ = self.alertpad.push_event(event.clone());
                let _ = self.alertpad.pause_task();
            }
            // Time moving on between alerts: merged into the GAP before it while the sink
            // stalls, so a stalled alert pad holds one event, not one per chunk.
            EventView::Gap(_) => {
                self.alert_queue.push_gap(event.clone());
            }
            EventView::FlushStop(_) => {
                self.alert_queue.clear();
                let _ = self.alertpad.push_event(event.clone());
                if let Err(e) = self.start_alert_task() {
                    gst::error!(CAT, imp = self, "cannot restart the alert task: {e}");
                }
            }
            _ => {
                self.alert_queue.push_event(event.clone());
            }
        }
    }
}
