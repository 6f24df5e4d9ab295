//! The assistant of `lalm-respond` (`assistant-model`): a language model on a thread of its
//! own, so that the streaming thread and the subtitles never wait for it. It hears every final
//! transcript and sound as a timed line, prefilled into its cache as it comes; a wake rule's
//! question gets an answer, a sound-event alert a decision to speak up or stay silent.
//! Replies stream out as `lalm-response` messages (`kind=answer|interjection`, `final=false`
//! while they grow); a finished reply also goes out as text on the text pad, in order with the
//! subtitles, by the worker (`Work::Answers`).

use std::sync::Arc;
use std::sync::mpsc;

use gst::prelude::*;
use gst::subclass::prelude::*;
use parking_lot::Mutex;
use soundflow::base::cancel::CancelFlag;
use soundflow::respond::assistant::interaction::{Assistant, LanguageModel, stamp};

use super::{CAT, Respond, Work};
use crate::util::{clock, stream_times};

/// The instruction the model gets before anything it hears. The example remark is there
/// because the small default model copies the shape of an example far better than it follows
/// a description (measured with lalm-assist-eval: without it, qwen2.5-0.5b repeated the
/// request back, "The people in the room should hear about this …", on every sound).
pub const DEFAULT_PROMPT: &str = "You are a voice assistant listening to a live conversation. \
Each line you read is something heard, stamped with its time: what a person said, or a sound. \
When someone asks you something, answer in one or two short spoken sentences, using what was \
said. When you hear a sound that matters, speak to the people in the room: for example, on \
hearing a car alarm, \"I hear a car alarm. Is everything all right?\"";

/// What a silent decision reads as.
const SILENT: &str = "SILENT";
/// Tokens kept free in the context for a request and its reply.
const RESERVE: usize = 256;

/// A request to the model, with the span of what prompted it (stream samples).
#[derive(Debug, Clone)]
pub(super) struct Ask {
    pub kind: AnswerKind,
    /// An interjection the rule forces (`assistant = "respond"`): the model is not offered
    /// silence.
    pub force: bool,
    /// What happened, as the model reads it: "You just heard a sound: glass." (see
    /// `Respond::tell_assistant`).
    pub cue: String,
    /// The question, or the sound's label (the `prompt` of `lalm-response`).
    pub text: String,
    pub start: u64,
    pub end: u64,
    pub rate: u32,
    /// Seconds into the stream, for the line's stamp.
    pub at: f64,
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AnswerKind {
    /// A wake rule's question.
    Answer,
    /// A sound-event alert: speak up, or stay silent.
    Interjection,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Answer => "answer",
            AnswerKind::Interjection => "interjection",
        }
    }
}

/// A finished reply for the text pad.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub ask: Ask,
    pub text: String,
}

enum Msg {
    Heard(String),
    Ask(Ask),
    /// Acknowledged once everything sent before it is done.
    Drain(mpsc::SyncSender<()>),
}

/// Lines and requests that may wait for the model. Live, the stream never waits for the
/// assistant: past this, a line or request is dropped with a warning. From a file the sender
/// waits for room instead (see [`AssistantHandle::hear`]).
const MAX_WAITING: usize = 64;
/// How often a sender waiting for room, or a drain, looks at whether it is still wanted.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// What became of a message for the assistant's thread.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Queued,
    /// The queue was full and the sender did not (or no longer) wait.
    Refused,
    /// The thread is gone.
    Gone,
}

/// The reply under way and whether the handle is closing, under one lock: a flush or a close
/// always reaches the reply it means, and a closing handle starts no new one.
#[derive(Default)]
struct Control {
    reply: CancelFlag,
    closing: bool,
}

pub(super) struct AssistantHandle {
    tx: Option<mpsc::SyncSender<Msg>>,
    control: Arc<Mutex<Control>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Replies done and not yet sent on the text pad.
    pub done: Arc<Mutex<Vec<Answer>>>,
}

impl AssistantHandle {
    pub fn start(
        element: &super::super::Respond,
        model: Arc<LanguageModel>,
        prompt: &str,
        max_tokens: usize,
    ) -> soundflow::Result<Self> {
        let assistant = Assistant::new(model, prompt, RESERVE.max(max_tokens + 64))?;
        let (tx, rx) = mpsc::sync_channel(MAX_WAITING);
        let control = Arc::new(Mutex::new(Control::default()));
        let done = Arc::new(Mutex::new(Vec::new()));
        let weak = element.downgrade();
        let thread = {
            let (control, done) = (control.clone(), done.clone());
            std::thread::Builder::new()
                .name("lalm-assistant".into())
                .spawn(move || run(assistant, rx, weak, control, done, max_tokens))
                .map_err(|e| {
                    soundflow::Error::Inference(format!("cannot start the assistant: {e}"))
                })?
        };
        Ok(Self {
            tx: Some(tx),
            control,
            thread: Some(thread),
            done,
        })
    }

    /// Queues `msg`. Without `wait` a full queue drops it; with it, the sender waits for room
    /// until `wait` says to give up.
    fn send(&self, mut msg: Msg, wait: Option<&dyn Fn() -> bool>) -> Sent {
        let Some(tx) = self.tx.as_ref() else {
            return Sent::Gone;
        };
        loop {
            match tx.try_send(msg) {
                Ok(()) => return Sent::Queued,
                Err(mpsc::TrySendError::Disconnected(_)) => return Sent::Gone,
                Err(mpsc::TrySendError::Full(m)) => match wait {
                    Some(give_up) if !give_up() => {
                        msg = m;
                        std::thread::sleep(DRAIN_POLL);
                    }
                    _ => return Sent::Refused,
                },
            }
        }
    }

    /// A line of what was heard; false when it was not taken. `wait` (a file) waits for room
    /// while it returns false: which lines and requests the model gets must not depend on
    /// how fast the machine decodes the file. Without it (live) a model too far behind
    /// refuses the line.
    pub fn hear(&self, line: String, wait: Option<&dyn Fn() -> bool>) -> bool {
        self.send(Msg::Heard(line), wait) == Sent::Queued
    }

    /// A request; false when it was not taken (see [`Self::hear`] for `wait`).
    pub fn ask(&self, ask: Ask, wait: Option<&dyn Fn() -> bool>) -> bool {
        self.send(Msg::Ask(ask), wait) == Sent::Queued
    }

    /// Calls off the reply under way (a flush). Requests of an older generation are skipped
    /// by the thread, so a backlog is not answered either.
    pub fn cancel(&self) {
        self.control.lock().reply.cancel();
    }

    /// Waits until everything sent so far is done (EOS: no answer is lost), or until
    /// `abandon` says the wait is no longer wanted (a flush, a stop); returns whether it was
    /// done.
    pub fn drain(&self, abandon: impl Fn() -> bool) -> bool {
        let (ack, wait) = mpsc::sync_channel(1);
        match self.send(Msg::Drain(ack), Some(&abandon)) {
            Sent::Queued => {}
            Sent::Gone => return true,
            Sent::Refused => return false,
        }
        loop {
            match wait.recv_timeout(DRAIN_POLL) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) if abandon() => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

impl Drop for AssistantHandle {
    fn drop(&mut self) {
        {
            let mut c = self.control.lock();
            c.closing = true;
            c.reply.cancel();
        }
        // Closing the channel ends the thread; what still waits in it is not answered.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            // The element's last reference may be dropped on the assistant's own thread.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn run(
    mut assistant: Assistant,
    rx: mpsc::Receiver<Msg>,
    element: glib::WeakRef<super::super::Respond>,
    control: Arc<Mutex<Control>>,
    done: Arc<Mutex<Vec<Answer>>>,
    max_tokens: usize,
) {
    while let Ok(msg) = rx.recv() {
        if control.lock().closing {
            return;
        }
        let Some(obj) = element.upgrade() else { return };
        let imp = obj.imp();
        match msg {
            Msg::Heard(line) => {
                if let Err(e) = assistant.hear(&line) {
                    gst::warning!(CAT, imp = imp, "assistant cannot take in {line:?}: {e}");
                }
            }
            Msg::Drain(ack) => {
                let _ = ack.try_send(());
            }
            Msg::Ask(ask) => {
                // Asked before a flush: its answer would be dropped anyway.
                if imp.generation.load(std::sync::atomic::Ordering::SeqCst) != ask.generation {
                    continue;
                }
                // A flag of its own for this reply, under the lock a close takes: a close
                // or flush that came before it is never undone.
                let cancel = {
                    let mut c = control.lock();
                    if c.closing {
                        return;
                    }
                    c.reply = CancelFlag::default();
                    c.reply.clone()
                };
                if imp.generation.load(std::sync::atomic::Ordering::SeqCst) != ask.generation {
                    continue;
                }
                let line = request(&ask);
                gst::debug!(CAT, imp = imp, "assistant asked: {line}");
                let started = std::time::Instant::now();
                let mut first: Option<std::time::Duration> = None;
                let reply = assistant.ask(&line, max_tokens, &cancel, |text| {
                    first.get_or_insert_with(|| started.elapsed());
                    if ask.kind == AnswerKind::Answer {
                        imp.post_answer(&ask, text, None);
                    }
                });
                match reply {
                    Ok(r) => {
                        let silent = is_silent(&r.text);
                        gst::info!(
                            CAT,
                            imp = imp,
                            "assistant {} to {:?}: {:?} (first text after {:?}, {} tokens in {:?})",
                            ask.kind.as_str(),
                            ask.text,
                            r.text,
                            first.unwrap_or_default(),
                            r.tokens.len(),
                            started.elapsed()
                        );
                        {
                            let mut w = imp.worker.lock();
                            w.stats.assistant_replies += 1;
                            if silent {
                                w.stats.assistant_silent += 1;
                            }
                        }
                        if silent {
                            imp.post_silent(&ask, r.tokens.len());
                        } else if !r.text.is_empty() {
                            imp.post_answer(&ask, &r.text, Some(r.tokens.len()));
                            done.lock().push(Answer { ask, text: r.text });
                            imp.wake_worker();
                        }
                    }
                    Err(soundflow::Error::Cancelled) => {}
                    Err(e) => {
                        gst::element_imp_warning!(
                            imp,
                            gst::LibraryError::Failed,
                            ("The assistant could not reply: {}", e)
                        );
                    }
                }
            }
        }
    }
}

/// The user turn that asks the model: the question, or what happened and what to do.
fn request(ask: &Ask) -> String {
    match (ask.kind, ask.force) {
        (AnswerKind::Answer, _) => format!("{} (to you): {}", stamp(ask.at), ask.text),
        (AnswerKind::Interjection, true) => format!(
            "{} Say one short sentence to warn the people in the room or to ask if they are all right.",
            ask.cue
        ),
        (AnswerKind::Interjection, false) => format!(
            "{} If the people in the room should hear from you about it, say one short sentence to them; otherwise reply with exactly the word SILENT.",
            ask.cue
        ),
    }
}

/// "SILENT", "Silent." or an empty reply; also a reply that says SILENT after repeating the
/// question (small models echo it: "Should the people here hear about this sound? SILENT.").
fn is_silent(text: &str) -> bool {
    let t = text.trim().trim_matches(|c: char| !c.is_alphanumeric());
    t.is_empty()
        || t.eq_ignore_ascii_case(SILENT)
        || text
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == SILENT)
}

impl Respond {
    /// A `lalm-response` message for a reply: `kind`, `text`, `prompt` (the question or the
    /// sound), the span of what prompted it, and `final`: false while the reply grows, true
    /// with `tokens` (how many the model generated) once it is done.
    pub(super) fn post_answer(&self, ask: &Ask, text: &str, tokens: Option<usize>) {
        self.post_reply(ask, ask.kind.as_str(), text, tokens);
    }

    /// The decision to stay silent about a sound, as `lalm-response` with `kind=silent`.
    pub(super) fn post_silent(&self, ask: &Ask, tokens: usize) {
        self.post_reply(ask, "silent", "", Some(tokens));
    }

    fn post_reply(&self, ask: &Ask, kind: &str, text: &str, tokens: Option<usize>) {
        let (seg, profanity) = {
            let w = self.worker.lock();
            (w.segment.clone(), w.profanity.clone())
        };
        let shown = |t: &str| {
            profanity
                .as_ref()
                .map_or_else(|| t.to_string(), |f| f.mask_text(t))
        };
        let (s, e, rt) = stream_times(&seg, clock(ask.start, ask.rate), clock(ask.end, ask.rate));
        let mut b = gst::Structure::builder("lalm-response")
            .field("kind", kind)
            .field("text", shown(text))
            .field("final", tokens.is_some())
            .field("prompt", shown(&ask.text))
            .field("start", s)
            .field("end", e)
            .field("running-time", rt);
        if let Some(n) = tokens {
            b = b.field("tokens", n as u32);
        }
        let msg = gst::message::Element::builder(b.build())
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// Queues a wake-up for the worker, which sends finished replies on the text pad.
    fn wake_worker(&self) {
        let _ = self
            .queue
            .push_or_replace(Work::Answers, |w| matches!(w, Work::Answers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `lalm-respond` (in no pipeline) and the assistant's handle on the random-weight
    /// language model setup builds for tests, with `max_tokens` per reply.
    fn handle(max_tokens: usize) -> (crate::respond::Respond, AssistantHandle) {
        gst::init().expect("gst init");
        let _ = crate::plugin_register_static();
        let element = gst::ElementFactory::make("lalm-respond")
            .build()
            .expect("lalm-respond")
            .downcast::<crate::respond::Respond>()
            .expect("a Respond");
        let pkg = soundflow::models::package::ModelPackage::find("tiny-random")
            .expect("tiny-random language model (run scripts/setup.sh)");
        let rt = soundflow::models::runtime::Runtime::get(None).expect("ONNX Runtime");
        let model = LanguageModel::load(&pkg, &rt, &Default::default()).expect("model loads");
        let h = AssistantHandle::start(&element, Arc::new(model), DEFAULT_PROMPT, max_tokens)
            .expect("assistant starts");
        (element, h)
    }

    fn ask(n: usize) -> Ask {
        Ask {
            kind: AnswerKind::Answer,
            force: false,
            cue: String::new(),
            text: format!("question {n}: what did we decide about the release date?"),
            start: 0,
            end: 16000,
            rate: 16000,
            at: 1.0,
            generation: 0,
        }
    }

    fn replies(e: &crate::respond::Respond) -> u64 {
        e.imp().worker.lock().stats.assistant_replies
    }

    /// Closing with questions waiting answers none of them: the reply under way stops and
    /// the backlog is dropped (a close used to be undone by each queued question, so the
    /// join waited for every answer).
    #[test]
    fn closing_does_not_wait_for_the_backlog() {
        let (element, h) = handle(400);
        for n in 0..8 {
            assert!(h.ask(ask(n), None));
        }
        drop(h);
        assert!(
            replies(&element) <= 1,
            "{} of 8 questions answered after the close",
            replies(&element)
        );
    }

    /// A drain at EOS lets go once a flush says the answers are no longer wanted, and the
    /// flush's cancel reaches the reply under way.
    #[test]
    fn a_flush_releases_a_drain_and_stops_the_reply() {
        let (element, h) = handle(400);
        for n in 0..8 {
            assert!(h.ask(ask(n), None));
        }
        let h = Arc::new(h);
        let flushed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drain = {
            let (h, flushed) = (h.clone(), flushed.clone());
            std::thread::spawn(move || {
                h.drain(|| flushed.load(std::sync::atomic::Ordering::SeqCst))
            })
        };
        // What a flush does: a new generation (queued questions are skipped), the reply under
        // way called off, and the drain abandoned.
        element
            .imp()
            .generation
            .store(1, std::sync::atomic::Ordering::SeqCst);
        h.cancel();
        flushed.store(true, std::sync::atomic::Ordering::SeqCst);
        let done = drain.join().expect("drain thread");
        // Either everything before the drain was already handled (all skipped) or it let go.
        let answered = replies(&element);
        assert!(
            answered <= 1,
            "{answered} of 8 questions answered after the flush (drained: {done})"
        );
    }

    /// The queue is bounded: past it a line is refused, not queued without end.
    #[test]
    fn a_model_far_behind_refuses_lines() {
        let (_element, h) = handle(400);
        assert!(h.ask(ask(0), None));
        let taken = (0..10 * MAX_WAITING)
            .filter(|i| h.hear(format!("[00:0{}] a line", i % 10), None))
            .count();
        assert!(
            taken <= MAX_WAITING + 1,
            "{taken} lines queued past the bound of {MAX_WAITING}"
        );
    }

    /// From a file nothing is refused: the sender waits while the model works through its
    /// backlog, so the same lines and requests reach it however fast the file is decoded.
    /// (Letting go when told to is the drain's test above: the same wait.)
    #[test]
    fn a_file_waits_for_room_instead_of_losing_lines() {
        let (_element, h) = handle(8);
        assert!(h.ask(ask(0), Some(&|| false)));
        let lines = 3 * MAX_WAITING;
        let taken = (0..lines)
            .filter(|i| h.hear(format!("[00:0{}] a line", i % 10), Some(&|| false)))
            .count();
        assert_eq!(taken, lines, "lines refused while waiting");
    }

    #[test]
    fn silence_reads_loosely() {
        assert!(is_silent("SILENT"));
        assert!(is_silent(" silent."));
        assert!(is_silent(""));
        assert!(is_silent(
            "Should the people here hear about this sound? SILENT."
        ));
        assert!(!is_silent("The smoke alarm is going off."));
        assert!(!is_silent("The room went silent after the alarm."));
    }
}
