//! The worker side of `lalm-respond`: runs the decodes in order with the events, turns their
//! results into cues ([`soundflow::respond::cues`]) and sends them on the text pad, on time.
//!
//! Timing. A text buffer is stamped where its newest words begin (a whole utterance's final
//! cue, with nothing shown before it, where the utterance begins). It can only be sent once
//! those words are committed, which is later; the element reports `latency + lateness` as
//! own latency, so a synced sink downstream waits that long (plus upstream's latency) for it.
//! In a live pipeline a buffer that would still arrive after its running time plus upstream's
//! and its own latency is moved forward
//! to the latest time it can be shown (and counted in `stats` as `moved-forward`), so a
//! synced sink never drops text. The bus messages and the subtitle file keep the true times.

use std::sync::atomic::Ordering;
use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;
use soundflow::respond::cues::Cue;
use soundflow::respond::response::{ResponseKind, Utterance};
use soundflow::respond::schedule::Job;
use soundflow::respond::subtitle;

use super::super::TextItems;
use super::{CAT, Respond, SoundCaption, Work, WorkerState};
use crate::meta;
use crate::util::{clock, stream_times};
use crate::worker::Item;

/// Name of the downstream event the gst-plugins-rs transcribers send after a final result.
const FINAL_TRANSCRIPT_EVENT: &str = "rstranscribe/final-transcript";
/// The downstream event the gst-plugins-rs transcribers send when the speaker changes
/// (field `speaker`); tttocea608/708 start a new line on it.
const SPEAKER_CHANGE_EVENT: &str = "rstranscribe/speaker-change";
/// How far ahead of its deadline a buffer moved forward is placed, for the push itself.
const DEADLINE_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(50);
/// Shortest display of a cue that had to be moved forward past its own end.
const MIN_MOVED_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(1000);

/// One text buffer to push.
struct TextBuffer {
    text: String,
    pts: gst::ClockTime,
    duration: gst::ClockTime,
}

impl Respond {
    pub(super) fn task_iteration(&self) {
        let res = match self.queue.pop() {
            None => {
                let _ = self.srcpad.pause_task();
                return;
            }
            Some(Item::Event(ev)) => self.worker_event(ev),
            Some(Item::Job(Work::Advance(to))) => {
                self.advance_to(to);
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Job(Work::Answers)) => self.send_answers(),
            Some(Item::Job(Work::Caption(c))) => self.send_caption(c),
            Some(Item::Job(Work::Rate(rate))) => {
                let mut w = self.worker.lock();
                w.text_alerts = w
                    .rules
                    .as_ref()
                    .map(|r| soundflow::decide::alerts::TextAlerts::new(r, rate))
                    .filter(|t| !t.is_empty());
                Ok(gst::FlowSuccess::Ok)
            }
            Some(Item::Job(Work::Decode(job, queued))) => self.decode(job, queued),
        };
        if let Err(err) = res {
            let element = self.obj().upcast_ref::<gst::Element>().clone();
            if crate::worker::report_failure(&self.queue, &element, err) {
                let _ = self.srcpad.push_event(gst::event::Eos::new());
            }
            let _ = self.srcpad.pause_task();
        }
    }

    /// A serialized event reaches the worker in order with the decodes queued before it.
    fn worker_event(&self, ev: gst::Event) -> Result<gst::FlowSuccess, gst::FlowError> {
        match ev.view() {
            gst::EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    let mut w = self.worker.lock();
                    w.text_pos = seg.start().unwrap_or(gst::ClockTime::ZERO);
                    w.segment = seg;
                }
            }
            gst::EventView::Eos(_) => {
                // Everything heard was asked about: the replies go out before the end.
                if let Some(a) = self.assistant() {
                    let generation = self.generation.load(Ordering::SeqCst);
                    // A flush or a stop while waiting: those replies would be dropped anyway.
                    a.drain(|| {
                        self.queue.is_flushing()
                            || self.generation.load(Ordering::SeqCst) != generation
                    });
                }
                self.send_answers()?;
                self.alert_pad_event(&ev);
            }
            _ => {}
        }
        self.srcpad.push_event(ev);
        Ok(gst::FlowSuccess::Ok)
    }

    fn decode(&self, job: Job, queued: Instant) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.generation.load(Ordering::SeqCst) != job.generation {
            return Ok(gst::FlowSuccess::Ok);
        }
        let started = Instant::now();
        // A final whose turn ended in the pause a speculative decode was made at takes that
        // decode: the audio after it is the pause itself. Not when that decode heard nothing:
        // Moonshine may give nothing for a short phrase cut one way and the words cut another
        // ("Hey assistant." alone in its turn), so the final's own audio gets its own decode.
        let reused = job.reuses.and_then(|spec_end| {
            let spec = self.worker.lock().speculative.take()?;
            let (generation, from, end, response) = spec;
            (generation == job.generation && from == job.from && end == spec_end)
                .then(|| response.map(|r| fit_to(r, job.end)))
                .filter(|r| r.is_some())
        });
        {
            // The generation is looked at again under the lock a flush cancels under: a flush
            // either comes first (the job is dropped here) or calls this decode off.
            let mut f = self.flight.lock();
            if self.generation.load(Ordering::SeqCst) != job.generation {
                return Ok(gst::FlowSuccess::Ok);
            }
            f.partial = !job.is_final && !job.speculative && !job.seals;
            if let Some(c) = &f.cancel {
                c.clear();
            }
        }
        // Only this thread runs the responder while the task runs: its lock is never
        // contended, and nothing else (stats, properties) waits on an inference.
        let (response, failure) = if let Some(response) = reused {
            if job.is_final {
                self.worker.lock().stats.speculative_finals += 1;
            }
            (response, None)
        } else {
            let mut guard = self.responder.lock();
            let Some(responder) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let u = Utterance {
                start: job.start,
                end: job.end,
                rate: job.rate,
                audio: &job.audio,
                confidence: job.confidence,
            };
            let res = responder.respond(&u);
            let remote = responder.remote_status();
            let name = responder.name();
            drop(guard);
            {
                let heard = job.audio.len() as u64 * 1000 / u64::from(job.rate.max(1));
                let st = &mut self.worker.lock().stats;
                st.decoded_audio_ms += heard;
                if !job.is_final {
                    st.early_decodes += 1;
                    st.early_audio_ms += heard;
                    st.early_audio_max_ms = st.early_audio_max_ms.max(heard);
                    if !job.speculative && !job.seals {
                        st.partial_decodes += 1;
                    }
                }
            }
            if let Some(st) = remote {
                let element = self.obj().upcast_ref::<gst::Element>().clone();
                let mut seen = self.worker.lock().remote_seen;
                crate::remote::report(&element, *CAT, "the ASR model", &st, &mut seen);
                self.worker.lock().remote_seen = seen;
            }
            match res {
                Ok(r) => (r, None),
                Err(soundflow::Error::Cancelled) => {
                    let mut w = self.worker.lock();
                    if self.generation.load(Ordering::SeqCst) != job.generation {
                        w.stats.cancelled_flushed += 1;
                    } else {
                        w.stats.cancelled_partials += 1;
                    }
                    (None, None)
                }
                // server-fallback=error: the stream stops, as lalm-perceive's does.
                Err(e @ soundflow::Error::RemoteUnavailable { .. }) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("Responder {} failed: {}", name, e)
                    );
                    return Err(gst::FlowError::Error);
                }
                Err(e) => (None, Some(format!("Responder {name} failed: {e}"))),
            }
        };
        self.flight.lock().partial = false;
        if let Some(why) = failure {
            gst::element_imp_warning!(self, gst::StreamError::Decode, ("{}", why));
        }
        let took = started.elapsed();
        if !job.is_final {
            self.partial_us
                .store(took.as_micros() as u64, Ordering::Relaxed);
        }
        if job.speculative {
            let mut w = self.worker.lock();
            w.stats.speculative_decodes += 1;
            w.speculative = Some((job.generation, job.from, job.end, response.clone()));
        }
        let (budget, live) = (
            std::time::Duration::from_millis(self.settings.lock().latency_ms as u64),
            self.worker.lock().live,
        );
        let waited = queued.elapsed();
        if job.is_final && waited > budget && live {
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
            job.audio.len() as f64 / job.rate.max(1) as f64,
            took.as_millis()
        );
        let cue = self.worker.lock().cues.take(&job, response);
        match cue {
            Some(cue) => {
                let speaker = self.speaker_of(&job, &cue);
                self.emit(&job, cue, speaker)
            }
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    /// The speaker of the cue's utterance (with `speaker-model`): known once one of its cues
    /// had a voice print, else taken from this decode's audio if it holds enough speech.
    fn speaker_of(&self, job: &Job, cue: &Cue) -> Option<usize> {
        let model = self.speaker.lock().clone()?;
        {
            let w = self.worker.lock();
            if let Some((start, label)) = w.utterance_speaker
                && start == cue.start
            {
                return Some(label);
            }
            w.speakers.as_ref()?;
        }
        if cue.kind != ResponseKind::Transcript
            || job.audio.len() < model.min_samples()
            || job.rate != model.sample_rate()
        {
            return None;
        }
        match model.embed(&job.audio) {
            Ok(print) => {
                let mut w = self.worker.lock();
                let label = w.speakers.as_mut()?.assign(&print);
                w.utterance_speaker = Some((cue.start, label));
                w.stats.speaker_prints += 1;
                Some(label)
            }
            Err(e) => {
                gst::warning!(CAT, imp = self, "no voice print: {e}");
                None
            }
        }
    }

    /// In a live pipeline, the running time now and the latency a text buffer must arrive
    /// within (upstream's plus this element's): what [`Self::place`] needs. None for a file.
    fn timing(&self) -> Option<(gst::ClockTime, gst::ClockTime)> {
        let latency = {
            let s = self.settings.lock();
            gst::ClockTime::from_mseconds((s.latency_ms + s.lateness_ms) as u64)
        };
        let (live, upstream) = {
            let w = self.worker.lock();
            (w.live, w.upstream_latency)
        };
        if !live {
            return None;
        }
        self.now_running_time().map(|now| (now, upstream + latency))
    }

    /// The running time now, when the pipeline is live and running.
    fn now_running_time(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base = obj.base_time()?;
        clock.time().checked_sub(base)
    }

    /// Places a buffer that wants to start at `want` and end at `end` on the text stream:
    /// never before what was sent, and in a live pipeline never so late that it would arrive
    /// after its running time plus the reported latency.
    fn place(
        w: &mut WorkerState,
        want: gst::ClockTime,
        end: gst::ClockTime,
        live: Option<(gst::ClockTime, gst::ClockTime)>,
    ) -> (gst::ClockTime, gst::ClockTime) {
        let mut pts = want.max(w.text_pos);
        let mut duration = end.saturating_sub(pts);
        if let Some((now, latency)) = live
            && let Some(rt) = w.segment.to_running_time(pts)
        {
            if let Some(delay) = now.checked_sub(rt) {
                w.stats.max_commit_delay = w.stats.max_commit_delay.max(delay);
            }
            // The earliest running time a buffer sent now may carry so that it arrives
            // within the latency, with a margin for the push itself.
            let earliest = (now + DEADLINE_MARGIN).saturating_sub(latency);
            if rt < earliest
                && let Some(moved) = w.segment.position_from_running_time(earliest)
            {
                w.stats.moved_forward += 1;
                pts = moved;
                duration = end.saturating_sub(pts).max(MIN_MOVED_DURATION);
            }
        }
        w.text_pos = w.text_pos.max(pts);
        (pts, duration)
    }

    fn emit(
        &self,
        job: &Job,
        cue: Cue,
        speaker: Option<usize>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (finals_only, items, prefix, text_prefix) = {
            let s = self.settings.lock();
            (
                s.finals_only,
                s.text_items,
                s.subtitle_speaker_prefix.clone(),
                s.text_speaker_prefix.clone(),
            )
        };
        // What is shown is masked; the text rules hear is what was said.
        let profanity = self.worker.lock().profanity.clone();
        let (cue, said) = match profanity {
            Some(f) => {
                let masked = Cue {
                    text: f.mask_text(&cue.text),
                    words: f.mask_words(&cue.words),
                    ..cue.clone()
                };
                (masked, Some(cue.words))
            }
            None => (cue, None),
        };
        let rate = cue.rate;
        let shown = cue.is_final || !finals_only;
        let timing = self.timing();
        let (seg, buffers, subtitle_error, changed) = {
            let mut w = self.worker.lock();
            // A flush since the decode began: nothing of it goes out.
            if !w.cues.is_current(job.generation)
                || self.generation.load(Ordering::SeqCst) != job.generation
            {
                return Ok(gst::FlowSuccess::Ok);
            }
            let mut buffers = Vec::new();
            // A new speaker is announced before the first cue of theirs that is shown.
            let changed = match speaker {
                Some(n) if shown && w.last_speaker != Some(n) => {
                    w.last_speaker = Some(n);
                    true
                }
                _ => false,
            };
            if shown {
                match items {
                    TextItems::Cue => {
                        let (pts, duration) = Self::place(
                            &mut w,
                            clock(cue.fresh_start(), rate),
                            clock(cue.end, rate),
                            timing,
                        );
                        buffers.push(TextBuffer {
                            text: cue.text.clone(),
                            pts,
                            duration,
                        });
                    }
                    TextItems::Word => {
                        for word in cue.fresh() {
                            let (pts, duration) = Self::place(
                                &mut w,
                                clock(word.start.max(cue.start), rate),
                                clock(word.end.min(cue.end), rate),
                                timing,
                            );
                            buffers.push(TextBuffer {
                                text: word.text.clone(),
                                pts,
                                duration,
                            });
                        }
                    }
                }
                if changed && let (Some(p), Some(first)) = (&text_prefix, buffers.first_mut()) {
                    first.text = format!("{p}{}", first.text);
                }
                // A final closes its utterance: the next one starts with nothing shown.
                if !cue.is_final {
                    w.cues.mark_shown(cue.words.len());
                }
            }
            if cue.is_final {
                w.text_pos = w.text_pos.max(clock(cue.end, rate));
                w.stats.responses += 1;
            }
            w.stats.cues += 1;
            let seg = w.segment.clone();
            let mut subtitle_error = None;
            if cue.is_final && w.subtitle.is_some() {
                let (s, e, _) = stream_times(&seg, clock(cue.start, rate), clock(cue.end, rate));
                // The prefix marks the first final of each new speaker in the file.
                let marked = match (speaker, &prefix) {
                    (Some(n), Some(p)) if w.subtitle_speaker != Some(n) => {
                        w.subtitle_speaker = Some(n);
                        format!("{p}{}", cue.text)
                    }
                    _ => cue.text.clone(),
                };
                let line = subtitle::Cue {
                    start: s,
                    end: e,
                    text: marked,
                };
                let file = w.subtitle.as_mut();
                subtitle_error = file.and_then(|f| f.write(&line).err());
            }
            (seg, buffers, subtitle_error, changed)
        };
        if let Some(e) = subtitle_error {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Cannot write subtitle cue: {}", e)
            );
        }
        self.post_cue(&seg, &cue, speaker);
        // A final is heard as a line, up to where a question to the assistant in it begins:
        // the request carries the question, and the small default model, reading it twice,
        // tends to repeat its previous answer (lalm-assist-eval's meeting questions).
        let hear = |asked_from: Option<u64>| {
            if !cue.is_final || cue.kind != ResponseKind::Transcript {
                return;
            }
            let Some(a) = self.assistant() else { return };
            let text = match asked_from {
                None => cue.text.clone(),
                Some(at) => {
                    let before: Vec<_> =
                        cue.words.iter().filter(|w| w.start < at).cloned().collect();
                    soundflow::respond::cues::join_words(&before)
                }
            };
            if text.trim().is_empty() {
                return;
            }
            let (s, _, _) = stream_times(&seg, clock(cue.start, rate), clock(cue.end, rate));
            let who = speaker.map_or(String::new(), |n| {
                format!("{}: ", soundflow::perceive::speaker::label(n))
            });
            let line = format!(
                "{} {who}{}",
                soundflow::respond::assistant::interaction::stamp(s as f64 / 1e9),
                text.trim()
            );
            let wait = self.assistant_wait();
            if !a.hear(line, wait.as_deref()) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "the assistant is behind: a final went unheard"
                );
            }
        };
        self.check_text(
            said.as_deref().unwrap_or(&cue.words),
            cue.is_final,
            job.end,
            hear,
        );
        if changed && let Some(n) = speaker {
            let ev = gst::event::CustomDownstream::new(
                gst::Structure::builder(SPEAKER_CHANGE_EVENT)
                    .field("speaker", soundflow::perceive::speaker::label(n))
                    .build(),
            );
            let _ = self.srcpad.push_event(ev);
        }
        for b in buffers {
            self.push_text(b, &cue, speaker)?;
        }
        if cue.is_final && shown {
            let ev = gst::event::CustomDownstream::new(
                gst::Structure::builder(FINAL_TRANSCRIPT_EVENT).build(),
            );
            let _ = self.srcpad.push_event(ev);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn post_cue(
        &self,
        seg: &gst::FormattedSegment<gst::ClockTime>,
        cue: &Cue,
        speaker: Option<usize>,
    ) {
        let rate = cue.rate;
        let (s, e, rt) = stream_times(seg, clock(cue.start, rate), clock(cue.end, rate));
        gst::info!(
            CAT,
            imp = self,
            "{} {}: {} ({s}..{e})",
            if cue.is_final { "final" } else { "partial" },
            cue.kind.as_str(),
            cue.text
        );
        let words = gst::Array::new(cue.words.iter().map(|w| {
            let (ws, we, _) = stream_times(seg, clock(w.start, rate), clock(w.end, rate));
            gst::Structure::builder("word")
                .field("text", w.text.as_str())
                .field("start", ws)
                .field("end", we)
                .build()
                .to_send_value()
        }));
        let post = |name: &str| {
            let mut b = gst::Structure::builder(name)
                .field("kind", cue.kind.as_str())
                .field("text", cue.text.as_str())
                .field("start", s)
                .field("end", e)
                .field("running-time", rt)
                .field("confidence", cue.confidence as f64)
                .field("final", cue.is_final)
                .field("words", words.clone());
            if let Some(n) = speaker {
                b = b.field("speaker", soundflow::perceive::speaker::label(n));
            }
            let msg = gst::message::Element::builder(b.build())
                .src(&*self.obj())
                .build();
            let _ = self.obj().post_message(msg);
        };
        if cue.kind == ResponseKind::Transcript {
            post("lalm-transcript");
        }
        if cue.is_final {
            post("lalm-response");
        }
    }

    fn push_text(
        &self,
        item: TextBuffer,
        cue: &Cue,
        speaker: Option<usize>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut buf = gst::Buffer::from_mut_slice(item.text.into_bytes());
        {
            let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
            b.set_pts(item.pts);
            b.set_duration(item.duration);
            let mut info = gst::Structure::builder(meta::CUE_META)
                .field("final", cue.is_final)
                .field("kind", cue.kind.as_str())
                .field("confidence", cue.confidence as f64);
            if let Some(n) = speaker {
                info = info.field("speaker", soundflow::perceive::speaker::label(n));
            }
            let info = info.build();
            meta::add_structure(b, meta::CUE_META, info).map_err(|_| gst::FlowError::Error)?;
        }
        self.srcpad.push(buf)
    }

    /// Sends the assistant's finished replies on the text pad: a text buffer from where the
    /// text stream stands (or the end of what prompted it, if later), shown for a reading time.
    fn send_answers(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let done = match self.assistant() {
            Some(a) => std::mem::take(&mut *a.done.lock()),
            None => return Ok(gst::FlowSuccess::Ok),
        };
        let profanity = self.worker.lock().profanity.clone();
        for answer in done {
            if self.generation.load(Ordering::SeqCst) != answer.ask.generation {
                continue;
            }
            let timing = self.timing();
            let words = answer.text.split_whitespace().count() as u64;
            let reading = gst::ClockTime::from_mseconds((300 * words).max(2000));
            let (pts, duration) = {
                let mut w = self.worker.lock();
                let want = clock(answer.ask.end, answer.ask.rate).max(w.text_pos);
                Self::place(&mut w, want, want + reading, timing)
            };
            let text = match &profanity {
                Some(f) => f.mask_text(&answer.text),
                None => answer.text,
            };
            let mut buf = gst::Buffer::from_mut_slice(text.into_bytes());
            {
                let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
                b.set_pts(pts);
                b.set_duration(duration);
                let info = gst::Structure::builder(meta::CUE_META)
                    .field("final", true)
                    .field("kind", answer.ask.kind.as_str())
                    .field("confidence", 1.0f64)
                    .build();
                meta::add_structure(b, meta::CUE_META, info).map_err(|_| gst::FlowError::Error)?;
            }
            self.srcpad.push(buf)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Sends a sound's caption on the text pad at the sound's onset (or where the text stream
    /// stands, if later), shown for the sound or at least `MIN_CAPTION`, and writes it to
    /// the subtitle file.
    fn send_caption(&self, c: SoundCaption) -> Result<gst::FlowSuccess, gst::FlowError> {
        const MIN_CAPTION: gst::ClockTime = gst::ClockTime::from_mseconds(2000);
        let start = clock(c.start, c.rate);
        let end = clock(c.end, c.rate).max(start + MIN_CAPTION);
        let timing = self.timing();
        let (pts, duration, subtitle_error) = {
            let mut w = self.worker.lock();
            let (pts, duration) = Self::place(&mut w, start, end, timing);
            w.stats.sound_captions += 1;
            let seg = w.segment.clone();
            let subtitle_error = w.subtitle.as_mut().and_then(|file| {
                let (s, e, _) = stream_times(&seg, start, end);
                file.write(&subtitle::Cue {
                    start: s,
                    end: e,
                    text: c.text.clone(),
                })
                .err()
            });
            (pts, duration, subtitle_error)
        };
        if let Some(e) = subtitle_error {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Cannot write subtitle cue: {}", e)
            );
        }
        gst::debug!(CAT, imp = self, "sound caption {} at {pts}", c.text);
        let mut buf = gst::Buffer::from_mut_slice(c.text.into_bytes());
        {
            let b = buf.get_mut().ok_or(gst::FlowError::Error)?;
            b.set_pts(pts);
            b.set_duration(duration);
            let info = gst::Structure::builder(meta::CUE_META)
                .field("final", true)
                .field("kind", "sound")
                .field("confidence", 1.0f64)
                .build();
            meta::add_structure(b, meta::CUE_META, info).map_err(|_| gst::FlowError::Error)?;
        }
        self.srcpad.push(buf)
    }

    /// Keeps downstream time moving between responses with GAP events up to `to`.
    fn advance_to(&self, to: gst::ClockTime) {
        let from = {
            let mut w = self.worker.lock();
            if to <= w.text_pos {
                return;
            }
            let from = w.text_pos;
            w.text_pos = to;
            from
        };
        gst::log!(
            CAT,
            imp = self,
            "text stream moves on with a gap {from}..{to}"
        );
        let gap = gst::event::Gap::builder(from).duration(to - from).build();
        self.alert_pad_event(&gap);
        let _ = self.srcpad.push_event(gap);
    }
}

/// A speculative decode's result standing for a final that ends at `end` (the decode went on
/// a little into the pause): its span and words end there.
fn fit_to(
    mut r: soundflow::respond::response::Response,
    end: u64,
) -> soundflow::respond::response::Response {
    r.end = end.max(r.start);
    for w in &mut r.words {
        w.end = w.end.min(r.end);
        w.start = w.start.min(w.end);
    }
    r
}
