//! `lalm-respond` in transcript mode (Whisper subtitles) with gst_check::Harness: real
//! espeak-ng speech through `lalm-chunker ! lalm-perceive ! lalm-decide ! lalm-respond`.
//! `whisper-tiny-random` where the words do not matter, `whisper-base` where they do
//! (both installed by scripts/setup.sh). The respond worker answers asynchronously, so the
//! tests record what reaches the harness's sink pad, in order, and wait for it.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;

const F32_CAPS: &str = "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";
const FINAL_EVENT: &str = "rstranscribe/final-transcript";
const TINY: &str = "whisper-tiny-random";
const BASE: &str = "whisper-base";
/// How far a cue may be from the true speech span.
const TOLERANCE_NS: i64 = 200_000_000;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// Sets `e` (with a bus of its own) to `state`, which must fail, and returns the error it
/// posted and its text with the debug part.
fn failed_change(e: &gst::Element, state: gst::State) -> (gst::glib::Error, String) {
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    assert!(e.set_state(state).is_err(), "{state:?} fails");
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = format!("{} | {:?}", err.error(), err.debug());
    let _ = e.set_state(gst::State::Null);
    (err.error(), text)
}

fn ns(samples: usize) -> u64 {
    samples as u64 * 1_000_000_000 / common::RATE as u64
}

/// What reached the harness's sink pad (GAP events left out).
#[derive(Debug, Clone)]
enum Item {
    Cue {
        pts: u64,
        duration: u64,
        text: String,
        meta: Option<gst::Structure>,
    },
    /// An event: its type name (`eos`, `flush-stop`, ...) or a custom event's structure name.
    Event(String),
}

impl Item {
    fn is_cue(&self) -> bool {
        matches!(self, Item::Cue { .. })
    }
    fn is_final_cue(&self) -> bool {
        match self {
            Item::Cue { meta, .. } => meta
                .as_ref()
                .and_then(|m| m.get::<bool>("final").ok())
                .unwrap_or(false),
            _ => false,
        }
    }
    fn is_event(&self, name: &str) -> bool {
        matches!(self, Item::Event(n) if n == name)
    }
}

type Log = Arc<Mutex<Vec<Item>>>;

struct Loop {
    h: Harness,
    bus: gst::Bus,
    log: Log,
    /// Messages taken off the bus so far: each look sees all of them.
    seen: Mutex<Vec<gst::Structure>>,
}

/// The loop ending in `lalm-respond <respond>`, playing, with its bus and a log of its output.
fn run_loop(respond: &str) -> Loop {
    init();
    let mut h = Harness::new_parse(&format!(
        "lalm-chunker ! lalm-perceive overload=block ! lalm-decide ! lalm-respond {respond}"
    ));
    let bus = gst::Bus::new();
    h.element().expect("bin").set_bus(Some(&bus));
    let log: Log = Arc::default();
    let log2 = log.clone();
    h.sinkpad()
        .expect("harness sink pad")
        .add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                let item = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => Some(Item::Cue {
                        pts: b.pts().map_or(u64::MAX, |t| t.nseconds()),
                        duration: b.duration().map_or(u64::MAX, |t| t.nseconds()),
                        text: String::from_utf8_lossy(&b.map_readable().expect("map")).into_owned(),
                        meta: gstlalm::meta::get_structure(b, gstlalm::meta::CUE_META),
                    }),
                    Some(gst::PadProbeData::Event(e)) => match e.view() {
                        gst::EventView::Gap(_) => None,
                        gst::EventView::CustomDownstream(c) => Some(Item::Event(
                            c.structure()
                                .map_or("custom".into(), |s| s.name().to_string()),
                        )),
                        _ => Some(Item::Event(e.type_().name().to_string())),
                    },
                    _ => None,
                };
                if let Some(item) = item {
                    log2.lock().expect("log").push(item);
                }
                gst::PadProbeReturn::Ok
            },
        )
        .expect("probe");
    h.set_src_caps_str(F32_CAPS);
    h.play();
    Loop {
        h,
        bus,
        log,
        seen: Mutex::default(),
    }
}

impl Loop {
    /// Pushes `samples` from stream sample `at` on, in 100 ms buffers.
    fn push_audio(&mut self, samples: &[f32], at: usize) {
        for (i, piece) in samples.chunks(1600).enumerate() {
            let bytes: Vec<u8> = piece.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut b = gst::Buffer::from_mut_slice(bytes);
            {
                let b = b.get_mut().expect("writable");
                b.set_pts(gst::ClockTime::from_nseconds(ns(at + i * 1600)));
                b.set_duration(gst::ClockTime::from_nseconds(ns(piece.len())));
            }
            assert_eq!(self.h.push(b), Ok(gst::FlowSuccess::Ok));
        }
    }

    /// As [`Loop::push_audio`], each 100 ms buffer pushed when its time has come, as a capture
    /// device delivers it: the harness's source is live, and a live `lalm-respond` paces its
    /// partials by what a decode costs and keeps only the newest, so audio pushed all at once
    /// leaves a loaded machine fewer partials than a microphone would.
    fn push_audio_paced(&mut self, samples: &[f32], at: usize) {
        let t0 = Instant::now();
        for (i, piece) in samples.chunks(1600).enumerate() {
            let due = t0 + Duration::from_millis(100 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            self.push_audio(piece, at + i * 1600);
        }
    }

    /// Waits (up to 300 s) until the log satisfies `done`; returns the log then.
    fn wait(&self, what: &str, done: impl Fn(&[Item]) -> bool) -> Vec<Item> {
        // Far above what a loaded machine needs: the wait ends at the event.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let items = self.log.lock().expect("log").clone();
            if done(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {items:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The structures of the element messages named `name` posted so far.
    fn messages(&self, name: &str) -> Vec<gst::Structure> {
        let mut seen = self.seen.lock().expect("seen");
        seen.extend(
            std::iter::from_fn(|| self.bus.pop())
                .filter_map(|m| m.structure().map(|s| s.to_owned())),
        );
        seen.iter().filter(|s| s.name() == name).cloned().collect()
    }
}

/// `secs` seconds of silence.
fn silence(secs: f32) -> Vec<f32> {
    vec![0.0; (secs * common::RATE as f32) as usize]
}

/// Lead-in silence, the sentence, trailing silence; and the sentence's true span.
fn utterance(
    dir: &std::path::Path,
    text: &str,
    voice: &str,
    lead: f32,
    trail: f32,
) -> (Vec<f32>, (usize, usize)) {
    let s = common::speak(dir, text, voice, 160);
    let (a, b) = common::active_span(&s);
    let mut audio = silence(lead);
    let off = audio.len();
    audio.extend(s);
    audio.extend(silence(trail));
    (audio, (off + a, off + b))
}

/// The span of the last lalm-response message.
fn response_span(l: &Loop) -> (u64, u64) {
    let r = l.messages("lalm-response");
    let last = r.last().expect("a lalm-response message");
    (
        last.get::<u64>("start").expect("start"),
        last.get::<u64>("end").expect("end"),
    )
}

fn assert_near(what: &str, found: u64, truth: u64) {
    let d = found as i64 - truth as i64;
    assert!(
        d.abs() <= TOLERANCE_NS,
        "{what}: {found} ns, truth {truth} ns (off by {} ms)",
        d / 1_000_000
    );
}

#[test]
fn final_cue_spans_the_utterance_and_is_followed_by_the_final_transcript_event() {
    let dir = common::tmpdir("respond-final");
    let (audio, (ta, tb)) = utterance(
        &dir,
        "The weather today is sunny with a light breeze from the west.",
        "en-us",
        0.5,
        2.0,
    );
    let mut l = run_loop(&format!("model={TINY}"));
    l.push_audio(&audio, 0);
    let items = l.wait("a final cue and the final-transcript event", |items| {
        items
            .iter()
            .position(Item::is_final_cue)
            .is_some_and(|i| items[i..].iter().any(|x| x.is_event(FINAL_EVENT)))
    });
    let i = items.iter().position(Item::is_final_cue).expect("final");
    let Item::Cue {
        pts,
        duration,
        text,
        meta,
    } = &items[i]
    else {
        unreachable!()
    };
    assert!(
        items[i + 1].is_event(FINAL_EVENT),
        "the final cue is directly followed by {FINAL_EVENT}: {:?}",
        &items[i..]
    );
    assert!(!text.is_empty());
    let meta = meta.as_ref().expect("LalmCueMeta");
    assert!(meta.get::<bool>("final").expect("final field"));
    assert_eq!(meta.get::<String>("kind").expect("kind"), "transcript");
    assert!(meta.get::<f64>("confidence").is_ok());
    assert_eq!(
        items[..i]
            .iter()
            .filter(|x| x.is_event(FINAL_EVENT))
            .count(),
        0,
        "no final-transcript event before the final cue"
    );

    // The response spans the utterance as lalm-decide placed it; the final cue's buffer
    // starts where its words not shown by partials start, and ends with the utterance.
    let turns: Vec<(u64, u64)> = l
        .messages("lalm-decision")
        .iter()
        .filter(|s| s.get::<String>("kind").ok().as_deref() == Some("turn-end"))
        .map(|s| (s.get("start").expect("start"), s.get("end").expect("end")))
        .collect();
    assert_eq!(turns.len(), 1, "one turn: {turns:?}");
    let (start, end) = turns[0];
    let (rs, re) = response_span(&l);
    assert_eq!((rs, re), (start, end), "the response spans the utterance");
    assert!(
        *pts >= start,
        "pts {pts} before the utterance start {start}"
    );
    assert_eq!(pts + duration, end, "the final cue ends with the utterance");
    assert_near("response start", rs, ns(ta));
    assert_near("response end", re, ns(tb));

    let caps =
        l.h.sinkpad()
            .expect("sink")
            .current_caps()
            .expect("caps on the text stream");
    let s = caps.structure(0).expect("structure");
    assert_eq!(s.name(), "text/x-raw");
    assert_eq!(s.get::<&str>("format").expect("format"), "utf8");
}

/// One long utterance (two sentences without a pause), so partials are decoded.
fn long_utterance(dir: &std::path::Path) -> Vec<f32> {
    let mut audio = silence(0.5);
    for text in [
        "Please send the quarterly report to the finance team by Friday.",
        "Our next meeting will take place in the large conference room.",
    ] {
        audio.extend(common::speak(dir, text, "en-us", 160));
    }
    audio.extend(silence(2.0));
    audio
}

/// Runs the long utterance, then EOS, through `lalm-respond <props>`; returns the log up to
/// EOS and the number of lalm-transcript messages with final=false.
fn partials_of(props: &str) -> (Vec<Item>, usize) {
    let (items, partials, _) = partials_and_stats_of(props);
    (items, partials)
}

/// As `partials_of`, with lalm-respond's stats at EOS.
fn partials_and_stats_of(props: &str) -> (Vec<Item>, usize, gst::Structure) {
    let dir = common::tmpdir("respond-partials");
    let audio = long_utterance(&dir);
    let mut l = run_loop(&format!("model={TINY} partial-interval-ms=300 {props}"));
    l.push_audio_paced(&audio, 0);
    // EOS after the audio: the worker sends it after everything decoded before it, so the
    // log up to it is all the element will ever send for this stream.
    l.h.push_event(gst::event::Eos::new());
    let items = l.wait("the final cue and EOS", |items| {
        items.iter().any(|x| x.is_event(FINAL_EVENT)) && items.iter().any(|x| x.is_event("eos"))
    });
    let partials = l
        .messages("lalm-transcript")
        .iter()
        .filter(|s| !s.get::<bool>("final").expect("final field"))
        .count();
    let bin =
        l.h.element()
            .expect("bin")
            .downcast::<gst::Bin>()
            .expect("a bin");
    let respond = bin
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == "lalm-respond"))
        .expect("lalm-respond in the bin");
    (items, partials, respond.property::<gst::Structure>("stats"))
}

/// The plain partial decodes run: neither speculative (made as a pause begins) nor seals.
fn plain_partial_decodes(stats: &gst::Structure) -> u64 {
    stats
        .get::<u64>("partial-decodes")
        .unwrap_or_else(|_| panic!("partial-decodes in {stats}"))
}

#[test]
fn partial_cues_are_pushed_by_default() {
    let (items, partials) = partials_of("");
    let pushed = items
        .iter()
        .filter(|x| x.is_cue() && !x.is_final_cue())
        .count();
    eprintln!("partials: {pushed} pushed, {partials} on the bus");
    assert!(pushed > 0, "partial cues while the utterance goes on");
    assert_eq!(pushed, partials, "each partial is pushed and posted");
    let i = items.iter().position(Item::is_final_cue).expect("final");
    let cues: Vec<&str> = items
        .iter()
        .filter_map(|x| match x {
            Item::Cue { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let before = items[..i].iter().filter(|x| x.is_cue()).count();
    assert!(
        before > 0,
        "at least one partial cue comes before the final cue: {items:#?}"
    );
    assert_eq!(
        before + 1,
        cues.len(),
        "one utterance: its partials, then its final cue and nothing else: {cues:#?}"
    );
    // A cue carries the utterance's committed words so far, and committed words are never
    // retracted: each cue's text is a word prefix of the next one's (the final's included).
    for w in cues.windows(2) {
        assert!(
            is_word_prefix(w[0], w[1]),
            "a committed word was retracted: {:?} then {:?}\nall cues: {cues:#?}",
            w[0],
            w[1]
        );
    }
    // After the final cue: its final-transcript event, then only the end of the stream.
    assert!(
        items[i + 1].is_event(FINAL_EVENT),
        "the final cue is directly followed by {FINAL_EVENT}: {:?}",
        &items[i..]
    );
    assert!(
        items[i + 2..].iter().all(|x| x.is_event("eos")),
        "nothing but {FINAL_EVENT} and EOS after the final cue: {:?}",
        &items[i..]
    );
}

/// Whether `a` is `b`'s first words: `b` itself, or `b` continuing after `a` with a space.
fn is_word_prefix(a: &str, b: &str) -> bool {
    b.strip_prefix(a)
        .is_some_and(|rest| rest.is_empty() || a.is_empty() || rest.starts_with(' '))
}

#[test]
fn finals_only_pushes_no_partial_buffers() {
    let (items, _) = partials_of("finals-only=true");
    let cues: Vec<&Item> = items.iter().filter(|x| x.is_cue()).collect();
    assert_eq!(cues.len(), 1, "only the final cue: {cues:#?}");
    assert!(cues[0].is_final_cue());
}

/// With `finals-only` nothing shows a partial, so none is decoded: only the decodes made as
/// a pause begins (which the final takes) remain. Without it, a live stream gets plain
/// partial decodes at their cadence.
#[test]
fn finals_only_decodes_no_partials() {
    let (_, _, stats) = partials_and_stats_of("finals-only=true");
    eprintln!("finals-only: {stats}");
    assert!(
        plain_partial_decodes(&stats) == 0,
        "finals-only=true decoded plain partials: {stats}"
    );
    let (_, _, stats) = partials_and_stats_of("");
    eprintln!("default: {stats}");
    assert!(
        plain_partial_decodes(&stats) > 0,
        "the default decodes partials while the utterance goes on: {stats}"
    );
}

/// `HH:MM:SS<sep>mmm` in nanoseconds.
fn parse_clock(s: &str, sep: char) -> u64 {
    let (hms, ms) = s
        .split_once(sep)
        .unwrap_or_else(|| panic!("{s:?} has {sep:?}"));
    let p: Vec<u64> = hms.split(':').map(|x| x.parse().expect("number")).collect();
    assert_eq!(p.len(), 3, "{s:?}");
    assert_eq!(ms.len(), 3, "{s:?}");
    ((p[0] * 3600 + p[1] * 60 + p[2]) * 1000 + ms.parse::<u64>().expect("ms")) * 1_000_000
}

/// Runs two sentences through whisper-base writing `file`; returns the file's text, the
/// true spans and the sentences.
fn subtitles(name: &str) -> (String, Vec<(usize, usize)>, Vec<&'static str>) {
    let dir = common::tmpdir(&format!("respond-{name}"));
    let sentences = vec![
        "The weather today is sunny with a light breeze from the west.",
        "I would like to order two coffees and a glass of water.",
    ];
    let (mut audio, t0) = utterance(&dir, sentences[0], "en-us", 0.5, 1.5);
    let (second, t1) = utterance(&dir, sentences[1], "en-us+f3", 0.0, 1.5);
    let off = audio.len();
    audio.extend(second);
    let truth = vec![t0, (t1.0 + off, t1.1 + off)];
    let path = dir.join(name);
    // Partials are not needed here: decode only at turn ends.
    let mut l = run_loop(&format!(
        "model={BASE} partial-interval-ms=60000 subtitle-location={}",
        path.display()
    ));
    l.push_audio(&audio, 0);
    l.h.push_event(gst::event::Eos::new());
    l.wait("EOS", |items| items.iter().any(|x| x.is_event("eos")));
    drop(l);
    let text = std::fs::read_to_string(&path).expect("subtitle file");
    eprintln!("{name}:\n{text}");
    (text, truth, sentences)
}

fn check_cue_text(text: &str, sentence: &str) {
    assert!(!text.trim().is_empty(), "cue text is not empty");
    let (e, n) = common::word_errors(sentence, text);
    assert!(e * 3 <= n, "{text:?} is far from {sentence:?}: {e}/{n}");
}

#[test]
fn srt_file_has_numbered_timed_cues() {
    let (file, truth, sentences) = subtitles("cues.srt");
    assert!(
        file.ends_with("\n\n"),
        "the last cue ends with a blank line"
    );
    let blocks: Vec<&str> = file.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "one cue per sentence: {file:?}");
    for (i, block) in blocks.iter().enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.len() >= 3, "index, timing, text: {block:?}");
        assert_eq!(lines[0], (i + 1).to_string(), "SRT cues count from 1");
        let (a, b) = lines[1].split_once(" --> ").expect("timing line");
        let (a, b) = (parse_clock(a, ','), parse_clock(b, ','));
        assert!(a < b, "{block:?}");
        assert_near("SRT cue start", a, ns(truth[i].0));
        assert_near("SRT cue end", b, ns(truth[i].1));
        check_cue_text(&lines[2..].join(" "), sentences[i]);
    }
}

#[test]
fn vtt_file_has_a_header_and_timed_cues() {
    let (file, truth, sentences) = subtitles("cues.vtt");
    let body = file
        .strip_prefix("WEBVTT\n\n")
        .unwrap_or_else(|| panic!("WebVTT header: {file:?}"));
    assert!(
        file.ends_with("\n\n"),
        "the last cue ends with a blank line"
    );
    let blocks: Vec<&str> = body.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "one cue per sentence: {file:?}");
    for (i, block) in blocks.iter().enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines.len() >= 2, "timing, text: {block:?}");
        let (a, b) = lines[0].split_once(" --> ").expect("timing line");
        let (a, b) = (parse_clock(a, '.'), parse_clock(b, '.'));
        assert!(a < b, "{block:?}");
        assert_near("WebVTT cue start", a, ns(truth[i].0));
        assert_near("WebVTT cue end", b, ns(truth[i].1));
        check_cue_text(&lines[1..].join(" "), sentences[i]);
    }
}

#[test]
fn a_flush_in_an_utterance_lets_nothing_stale_out() {
    let dir = common::tmpdir("respond-flush");
    let (before, (ta, _)) = utterance(
        &dir,
        "Can you hear me clearly, or should I move closer to the microphone?",
        "en-us",
        0.5,
        0.0,
    );
    // Cut in the middle of the speech: the utterance is open, partials are being decoded.
    let cut = ta + 2 * common::RATE as usize;
    // whisper-base: slow enough that a decode is under way when the flush comes.
    let mut l = run_loop(&format!("model={BASE} partial-interval-ms=200"));
    l.push_audio_paced(&before[..cut], 0);
    // Let a partial or two be decoded, then flush while the utterance goes on.
    let _ = l.wait("a partial before the flush", |items| {
        items.iter().any(Item::is_cue)
    });
    l.push_audio(&before[cut..cut + common::RATE as usize / 2], cut);
    l.h.push_event(gst::event::FlushStart::new());
    l.h.push_event(gst::event::FlushStop::new(true));
    l.h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    // After the flush: 3 s of silence, then another sentence.
    let (after, (tb_a, tb_b)) = utterance(
        &dir,
        "The train to the airport leaves every twenty minutes.",
        "en-gb",
        3.0,
        2.0,
    );
    l.push_audio(&after, 0);
    let items = l.wait("the final cue after the flush", |items| {
        items
            .iter()
            .position(|x| x.is_event("flush-stop"))
            .is_some_and(|f| items[f..].iter().any(Item::is_final_cue))
    });
    let f = items
        .iter()
        .position(|x| x.is_event("flush-stop"))
        .expect("flush-stop");
    // EOS reaches the pad only after every decode queued or under way before it: after it,
    // nothing stale can still come out.
    l.h.push_event(gst::event::Eos::new());
    let items = l.wait("EOS", |items| items.iter().any(|x| x.is_event("eos")));
    let after_flush: Vec<&Item> = items[f..].iter().filter(|x| x.is_cue()).collect();
    eprintln!(
        "{} cues before the flush, after it: {after_flush:#?}",
        items[..f].iter().filter(|x| x.is_cue()).count()
    );
    for cue in &after_flush {
        let Item::Cue { pts, .. } = cue else {
            unreachable!()
        };
        assert!(
            *pts >= ns(tb_a) - TOLERANCE_NS as u64,
            "a cue from before the flush came out after it: {cue:?} (the new speech starts at {} ns)",
            ns(tb_a)
        );
    }
    let finals: Vec<&&Item> = after_flush.iter().filter(|x| x.is_final_cue()).collect();
    assert_eq!(finals.len(), 1, "one final after the flush: {finals:#?}");
    let Item::Cue { pts, duration, .. } = finals[0] else {
        unreachable!()
    };
    let (rs, re) = response_span(&l);
    assert_near("final response start", rs, ns(tb_a));
    assert_near("final response end", re, ns(tb_b));
    assert!(
        *pts >= rs && pts + duration == re,
        "final cue inside its response"
    );
}

#[test]
fn eos_in_speech_answers_the_last_utterance_first() {
    let dir = common::tmpdir("respond-eos");
    let (audio, (ta, tb)) = utterance(
        &dir,
        "Remember to save your work before closing the application.",
        "en-us",
        0.5,
        0.0,
    );
    // The recording ends in the middle of the speech.
    let end = tb - common::RATE as usize * 6 / 10;
    let mut l = run_loop(&format!("model={TINY}"));
    l.push_audio(&audio[..end], 0);
    l.h.push_event(gst::event::Eos::new());
    let items = l.wait("EOS", |items| items.iter().any(|x| x.is_event("eos")));
    let eos = items.iter().position(|x| x.is_event("eos")).expect("eos");
    let finals: Vec<&Item> = items[..eos].iter().filter(|x| x.is_final_cue()).collect();
    assert_eq!(
        finals.len(),
        1,
        "the open utterance is answered before EOS: {items:#?}"
    );
    assert!(
        items[..eos].iter().any(|x| x.is_event(FINAL_EVENT)),
        "{FINAL_EVENT} before EOS"
    );
    assert!(
        items[eos + 1..].iter().all(|x| !x.is_cue()),
        "nothing after EOS"
    );
    let Item::Cue { pts, duration, .. } = finals[0] else {
        unreachable!()
    };
    let (rs, re) = response_span(&l);
    assert_near("final response start", rs, ns(ta));
    assert_near("final response end (the end of the recording)", re, ns(end));
    assert!(
        *pts >= rs && pts + duration == re,
        "final cue inside its response"
    );
}

#[test]
fn a_missing_asr_model_is_a_clear_error_naming_it() {
    init();
    let e = gst::ElementFactory::make("lalm-respond")
        .property("model", "/nonexistent/dir")
        .build()
        .expect("element");
    let (err, text) = failed_change(&e, gst::State::Ready);
    eprintln!("{text}");
    assert!(text.contains("/nonexistent/dir"), "names the model: {text}");
    assert!(
        err.matches(gst::ResourceError::NotFound),
        "a not-found error: {text}"
    );
}

#[test]
fn a_long_utterance_is_cut_at_its_quietest_point_and_answered_in_parts() {
    let dir = common::tmpdir("respond-long");
    // Two sentences back to back: about 7 s of speech without a pause long enough to end
    // the turn.
    let audio = long_utterance(&dir);
    let mut l = run_loop("model=whisper-base finals-only=true max-utterance-ms=3000");
    l.push_audio(&audio, 0);
    l.h.push_event(gst::event::Eos::new());
    let items = l.wait("EOS", |items| items.iter().any(|x| x.is_event("eos")));
    let finals: Vec<(u64, u64, String)> = items
        .iter()
        .filter(|x| x.is_final_cue())
        .filter_map(|x| match x {
            Item::Cue {
                pts,
                duration,
                text,
                ..
            } => Some((*pts, *duration, text.clone())),
            _ => None,
        })
        .collect();
    eprintln!("{finals:#?}");
    assert!(finals.len() >= 2, "cut into parts: {finals:?}");
    // A cut part ends exactly where the next begins: nothing heard is lost at a cut.
    assert!(
        finals.windows(2).any(|w| w[0].0 + w[0].1 == w[1].0),
        "no contiguous parts: {finals:?}"
    );
    // No part is longer than the maximum, give or take the chunk in which it was noticed
    // and the silence that ends a turn.
    let slack = 400_000_000 + 500_000_000;
    for (pts, dur, text) in &finals {
        assert!(
            *dur <= 3_000_000_000 + slack,
            "part at {pts} lasts {dur} ns"
        );
        assert!(!text.trim().is_empty());
    }
}

/// A buffer of `audio` placed at sample `offset`, with a decision that opens and closes the
/// utterance `[ta, tb)` of it.
fn speech_buffer(audio: &[f32], offset: u64, (ta, tb): (usize, usize)) -> gst::Buffer {
    let d = soundflow::decide::decision::Decision {
        rate: common::RATE,
        events: vec![
            soundflow::decide::decision::Event::SpeechStart {
                start: offset + ta as u64,
            },
            soundflow::decide::decision::Event::TurnEnd {
                start: offset + ta as u64,
                end: offset + tb as u64,
            },
        ],
        settled_until: offset + ta as u64,
        ..Default::default()
    };
    let mut buf = gst::Buffer::from_slice(
        audio
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    {
        let b = buf.get_mut().expect("fresh buffer");
        b.set_pts(gst::ClockTime::from_nseconds(ns(offset as usize)));
        gstlalm::meta::add_structure(
            b,
            gstlalm::meta::DECISION_META,
            gstlalm::meta::decision_structure(&d, gstlalm::meta::DECISION_META),
        )
        .expect("meta");
    }
    buf
}

/// lalm-respond alone (whisper-base, writing an SRT file), fed one buffer of speech whose
/// decision closes the utterance at once.
struct Alone {
    h: Harness,
    bus: gst::Bus,
    srt: std::path::PathBuf,
    audio: Vec<f32>,
    span: (usize, usize),
}

fn respond_alone(dir: &std::path::Path) -> Alone {
    respond_alone_with(dir, &[])
}

fn respond_alone_with(dir: &std::path::Path, props: &[(&str, &str)]) -> Alone {
    init();
    let (audio, span) = utterance(
        dir,
        "Please send the quarterly report to the finance team by Friday afternoon.",
        "en-us",
        0.5,
        0.5,
    );
    let srt = dir.join("cues.srt");
    // Properties set before the harness takes the element (it starts it).
    let e = gst::ElementFactory::make("lalm-respond")
        .property("model", BASE)
        .property("subtitle-location", srt.to_str().expect("utf-8 path"))
        .build()
        .expect("lalm-respond");
    for (k, v) in props {
        e.set_property_from_str(k, v);
    }
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    let bus = gst::Bus::new();
    h.element().expect("element").set_bus(Some(&bus));
    h.set_src_caps_str(F32_CAPS);
    h.play();
    h.push(speech_buffer(&audio, 0, span)).expect("push");
    Alone {
        h,
        bus,
        srt,
        audio,
        span,
    }
}

fn responses_posted(bus: &gst::Bus) -> usize {
    std::iter::from_fn(|| bus.pop())
        .filter(|m| {
            m.structure()
                .is_some_and(|s| s.name() == "lalm-transcript" || s.name() == "lalm-response")
        })
        .count()
}

#[test]
fn a_decode_under_way_at_a_flush_posts_and_writes_nothing() {
    // Without a flush the decode answers: messages and a subtitle line.
    let a = respond_alone(&common::tmpdir("respond-stale"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while a.h.element().expect("element").property::<u64>("responses") == 0 {
        assert!(Instant::now() < deadline, "no response without a flush");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(responses_posted(&a.bus) > 0);
    assert!(
        std::fs::read_to_string(&a.srt)
            .expect("srt")
            .contains("-->")
    );
    drop(a);

    // A flush while the worker decodes it: nothing of that decode may come out.
    let mut a = respond_alone(&common::tmpdir("respond-stale-flush"));
    // The worker has taken the job (a whisper-base decode of 4 s takes far longer).
    std::thread::sleep(Duration::from_millis(150));
    a.h.push_event(gst::event::FlushStart::new());
    a.h.push_event(gst::event::FlushStop::new(true));
    // The worker takes EOS only once the decode under way is done (one worker thread, in
    // order): once EOS is out, whatever that decode was going to post has been posted.
    a.h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    a.h.push_event(gst::event::Eos::new());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match a.h.try_pull_event() {
            Some(e) if e.type_() == gst::EventType::Eos => break,
            Some(_) => {}
            None => {
                assert!(Instant::now() < deadline, "no EOS after the flush");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let written = std::fs::read_to_string(&a.srt).unwrap_or_default();
    assert_eq!(
        responses_posted(&a.bus),
        0,
        "a decode from before the flush posted messages"
    );
    assert!(
        !written.contains("-->"),
        "a decode from before the flush wrote a subtitle: {written}"
    );
    assert_eq!(
        a.h.element().expect("element").property::<u64>("responses"),
        0
    );
    if let Some(b) = a.h.try_pull() {
        panic!("a stale text buffer came out: {b:?}");
    }
}

#[test]
fn a_live_stream_never_waits_for_final_decodes() {
    // Utterances closing faster than the model answers them: a live streaming thread must
    // not wait for room in the queue (it used to block once 16 finals waited).
    let mut a = respond_alone(&common::tmpdir("respond-live-finals"));
    let len = a.audio.len() as u64;
    for i in 1..=40u64 {
        a.h.push(speech_buffer(&a.audio, i * len, a.span))
            .expect("push");
    }
    // Counted, not timed: had the streaming thread waited for room among the 16 finals that
    // may wait, the worker would have finished at least 41 - 16 - 1 decodes by now.
    let element = a.h.element().expect("element");
    let responded = element.property::<u64>("responses");
    let stats = element.property::<gst::Structure>("stats");
    let dropped = stats.get::<u64>("dropped-finals").expect("dropped-finals");
    eprintln!("after the handover: {responded} responses, {stats}");
    assert!(
        responded < 41 - 16 - 1,
        "{responded} of 41 finals were decoded while they were handed over: the streaming \
         thread waited for the worker ({stats})"
    );
    // What was not decoded, waiting or under way was dropped.
    assert!(
        dropped > 0 && dropped + 16 + 1 + responded >= 41,
        "{dropped} finals dropped, {responded} decoded, of 41 ({stats})"
    );
}

#[test]
fn an_alert_pad_that_takes_nothing_does_not_grow_memory() {
    init();
    let e = gst::ElementFactory::make("lalm-respond")
        .property_from_str("mode", "turn-end")
        .build()
        .expect("lalm-respond");
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    // A sink on the alert pad that never returns until the test ends.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let stuck = gst::Pad::builder(gst::PadDirection::Sink)
        .name("stuck")
        .chain_function(move |_, _, _| {
            let _ = wait.lock().expect("wait").recv();
            Ok(gst::FlowSuccess::Ok)
        })
        .event_function(|_, _, _| true)
        .build();
    stuck.set_active(true).expect("activate");
    h.element()
        .expect("element")
        .static_pad("alert")
        .expect("alert pad")
        .link(&stuck)
        .expect("link");
    h.set_src_caps_str(F32_CAPS);
    h.play();
    for i in 0..400u64 {
        let d = soundflow::decide::decision::Decision {
            rate: common::RATE,
            alerts: vec![soundflow::decide::alerts::Alert {
                kind: soundflow::decide::alerts::AlertKind::SoundEvent,
                rule: "alarm".into(),
                label: "alarm".into(),
                confidence: 0.9,
                start: i * 6400,
                end: i * 6400 + 3200,
                rate: common::RATE,
                text: "alarm detected".into(),
                assistant: soundflow::decide::alerts::AssistantMode::SOUND_DEFAULT,
            }],
            settled_until: i * 6400,
            ..Default::default()
        };
        let mut buf = gst::Buffer::from_slice(vec![0u8; 6400 * 4]);
        {
            let b = buf.get_mut().expect("fresh buffer");
            b.set_pts(gst::ClockTime::from_nseconds(ns(i as usize * 6400)));
            gstlalm::meta::add_structure(
                b,
                gstlalm::meta::DECISION_META,
                gstlalm::meta::decision_structure(&d, gstlalm::meta::DECISION_META),
            )
            .expect("meta");
        }
        h.push(buf).expect("push");
    }
    let stats = h
        .element()
        .expect("element")
        .property::<gst::Structure>("stats");
    let dropped = stats
        .get::<u64>("dropped-alert-buffers")
        .expect("dropped-alert-buffers");
    // 256 wait, one is stuck in the sink: the rest are dropped on that pad only.
    assert!(
        (400 - 257 - 2..=400 - 256).contains(&dropped),
        "{dropped} alert buffers dropped: {stats}"
    );
    drop(release);
}

#[test]
fn word_items_are_one_buffer_per_word_at_the_word_start() {
    let a = respond_alone_with(
        &common::tmpdir("respond-words"),
        &[("text-items", "word"), ("finals-only", "true")],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while a.h.element().expect("element").property::<u64>("responses") == 0 {
        assert!(Instant::now() < deadline, "no response");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut h = a.h;
    let mut words = Vec::new();
    while let Some(b) = h.try_pull() {
        let text = String::from_utf8(b.map_readable().expect("map").to_vec()).expect("utf-8");
        let pts = b.pts().expect("pts").nseconds();
        let end = pts + b.duration().expect("duration").nseconds();
        words.push((text, pts, end));
    }
    let message = responses_text(&a.bus);
    eprintln!("{words:?}\n{message}");
    // As many buffers as the final has words, each a single word, in order, inside the
    // utterance.
    assert_eq!(words.len(), message.split_whitespace().count(), "{words:?}");
    assert!(
        words
            .iter()
            .all(|(w, _, _)| !w.contains(' ') && !w.is_empty())
    );
    let (ta, tb) = (ns(a.span.0), ns(a.span.1));
    assert!(
        words.windows(2).all(|w| w[0].1 <= w[1].1),
        "pts go back: {words:?}"
    );
    assert!(
        words
            .first()
            .is_some_and(|w| w.1 >= ta && w.1 <= ta + TOLERANCE_NS as u64),
        "the first word starts with the utterance ({ta}): {words:?}"
    );
    assert!(words.iter().all(|w| w.2 <= tb), "{words:?}");
}

fn responses_text(bus: &gst::Bus) -> String {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.name() == "lalm-response")
        .filter_map(|s| s.get::<String>("text").ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Real speech (the first four Asterisk prompts: "pound" four times, "password" once)
/// through the default ASR with `profanity-filter` listing those two words: the text pad,
/// the SRT file and the transcript messages show them masked with their times kept, and a
/// keyword rule on "pound" still fires, because rules hear what was said.
#[test]
fn profanity_filter_masks_what_is_shown_and_rules_hear_what_was_said() {
    let dir = common::tmpdir("respond-profanity");
    let (speech, prompts) = common::asterisk_prompts();
    let end = prompts[3].1 + common::RATE as usize;
    let list = dir.join("words.txt");
    std::fs::write(&list, "# the test's list\npound\npassword*\n").expect("word list");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "include-defaults = false\n[[rule]]\nname = \"said\"\nkind = \"keyword\"\nwords = [\"pound\"]\non = \"final\"\ncooldown-ms = 0\n",
    )
    .expect("rules");
    let srt = dir.join("masked.srt");
    let mut l = run_loop(&format!(
        "profanity-filter={} rules={} subtitle-location={}",
        list.display(),
        rules.display(),
        srt.display()
    ));
    l.push_audio(&speech[..end], 0);
    l.h.push_event(gst::event::Eos::new());
    let items = l.wait("EOS", |items| items.iter().any(|x| x.is_event("eos")));

    let listed = |text: &str| {
        common::norm_words(text)
            .iter()
            .any(|w| w == "pound" || w.starts_with("password"))
    };
    let cues: Vec<String> = items
        .iter()
        .filter_map(|x| match x {
            Item::Cue { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let shown = cues.join(" | ");
    assert!(!listed(&shown), "a listed word was shown: {shown}");
    assert!(
        shown.matches("p****").count() >= 3,
        "the masked words are shown in their place: {shown}"
    );
    let file = std::fs::read_to_string(&srt).expect("the SRT file");
    assert!(!listed(&file), "{file}");
    assert!(file.contains("p****"), "{file}");

    let transcripts = l.messages("lalm-transcript");
    assert!(!transcripts.is_empty(), "transcripts are posted");
    for t in &transcripts {
        let text = t.get::<String>("text").expect("text");
        assert!(!listed(&text), "bus text: {text}");
        let words = t.get::<gst::Array>("words").expect("words");
        for w in words.iter() {
            let w = w.get::<gst::Structure>().expect("word");
            let (wt, ws, we) = (
                w.get::<String>("text").expect("text"),
                w.get::<u64>("start").expect("start"),
                w.get::<u64>("end").expect("end"),
            );
            assert!(!listed(&wt), "a word of {text:?}: {wt}");
            assert!(ws <= we, "{text:?}: word times");
        }
    }
    let alerts: Vec<_> = l
        .messages("lalm-alert")
        .into_iter()
        .filter(|a| a.get::<String>("rule").ok().as_deref() == Some("said"))
        .collect();
    assert!(
        alerts.len() >= 3,
        "the keyword rule hears the unmasked word in each prompt: {alerts:?}"
    );
}

/// A word list that cannot be used stops the pipeline with an error naming it, rather than
/// show the words it should have masked.
#[test]
fn an_unusable_profanity_list_is_a_clear_error_naming_it() {
    init();
    let dir = common::tmpdir("respond-profanity-bad");
    let bad = dir.join("two-words.txt");
    std::fs::write(&bad, "fine\nnot one\n").expect("list");
    for (spec, names) in [
        (
            "/nonexistent/words.txt".to_string(),
            "/nonexistent/words.txt".to_string(),
        ),
        (bad.display().to_string(), format!("{}:2", bad.display())),
    ] {
        let e = gst::ElementFactory::make("lalm-respond")
            .property("model", TINY)
            .property("profanity-filter", spec.as_str())
            .build()
            .expect("element");
        assert!(
            e.set_state(gst::State::Ready).is_ok(),
            "READY loads the model"
        );
        let (_, text) = failed_change(&e, gst::State::Paused);
        assert!(text.contains(&names), "names {names}: {text}");
    }
}

/// A text-pad buffer: its `LalmCueMeta` kind, pts and text.
type TextItem = (String, u64, String);

/// `wav` through `filesrc ! wavparse ! lalm-interact <props>` (not live, so the output is
/// the same on every run) to EOS: the text pad's buffers as (kind, pts, text).
fn text_of_file(wav: &std::path::Path, props: &str) -> Vec<TextItem> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! lalm-interact {props} ! fakesink name=text sync=false",
        wav.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let got: Arc<Mutex<Vec<TextItem>>> = Arc::default();
    let got2 = got.clone();
    pipeline
        .by_name("text")
        .expect("the sink")
        .static_pad("sink")
        .expect("its pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                let kind = gstlalm::meta::get_structure(b, gstlalm::meta::CUE_META)
                    .and_then(|m| m.get::<String>("kind").ok())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&b.map_readable().expect("map")).into_owned();
                got2.lock().expect("log").push((
                    kind,
                    b.pts().map_or(u64::MAX, |t| t.nseconds()),
                    text,
                ));
            }
            gst::PadProbeReturn::Ok
        })
        .expect("probe");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().expect("bus");
    // Far above what a loaded machine needs: the wait ends at EOS.
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within 10 minutes");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{}: {:?}", e.error(), e.debug());
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    got.lock().expect("log").clone()
}

/// Real speech, a real siren between two prompts, then real music under a third prompt.
/// `quiet` captions the siren at its onset and nothing under speech; `all` also captions the
/// music, once, within the music; the text pad's times never go back; and the speech cues
/// are the same buffers at the same times with captions on or off.
#[test]
fn sound_captions_are_timed_with_the_sound_and_never_touch_speech_cues() {
    let dir = common::tmpdir("respond-captions");
    let (speech, prompts) = common::asterisk_prompts();
    let rate = common::RATE as usize;
    let prompt = |i: usize| speech[prompts[i].0..prompts[i].1].to_vec();
    let mut audio = prompt(0);
    audio.extend(vec![0.0; rate]);
    let siren_at = audio.len();
    let siren = common::real_clip(&dir, "siren-scorched-firetruck");
    audio.extend(&siren);
    audio.extend(vec![0.0; rate]);
    let music_at = audio.len();
    let mut under = prompt(1);
    under.extend(vec![0.0; rate / 2]);
    under.extend(prompt(2));
    let music = common::real_clip(&dir, "music-moh-manolo-a");
    for (i, x) in under.iter_mut().enumerate() {
        *x += 0.5 * music.get(i).copied().unwrap_or(0.0);
    }
    let music_end = music_at + under.len();
    audio.extend(under);
    audio.extend(vec![0.0; 2 * rate]);

    let wav = dir.join("speech-siren-music.wav");
    common::write_wav(&wav, &audio);
    let runs: Vec<(&str, Vec<TextItem>)> = ["none", "quiet", "all"]
        .into_iter()
        .map(|mode| {
            let srt = dir.join(format!("{mode}.srt"));
            let props = format!("sound-captions={mode} subtitle-location={}", srt.display());
            (mode, text_of_file(&wav, &props))
        })
        .collect();
    let srt = |mode: &str| std::fs::read_to_string(dir.join(format!("{mode}.srt"))).expect("SRT");
    assert!(!srt("none").contains('['), "{}", srt("none"));
    assert!(srt("quiet").contains("[SIREN]"), "{}", srt("quiet"));
    assert!(srt("all").contains("[MUSIC]"), "{}", srt("all"));
    for (mode, cues) in &runs {
        eprintln!("sound-captions={mode}: {cues:?}");
        let pts: Vec<u64> = cues.iter().map(|c| c.1).collect();
        assert!(
            pts.windows(2).all(|w| w[0] <= w[1]),
            "{mode}: text pts go forward"
        );
    }
    let speech_of = |cues: &[TextItem]| -> Vec<(u64, String)> {
        cues.iter()
            .filter(|c| c.0 != "sound")
            .map(|c| (c.1, c.2.clone()))
            .collect()
    };
    let sounds_of = |cues: &[TextItem]| -> Vec<(u64, String)> {
        cues.iter()
            .filter(|c| c.0 == "sound")
            .map(|c| (c.1, c.2.clone()))
            .collect()
    };
    let (none, quiet, all) = (&runs[0].1, &runs[1].1, &runs[2].1);
    assert!(sounds_of(none).is_empty(), "none captions nothing");
    assert!(!speech_of(none).is_empty(), "the prompts are transcribed");
    for (mode, cues) in [("quiet", quiet), ("all", all)] {
        assert_eq!(
            speech_of(cues),
            speech_of(none),
            "{mode}: the speech cues are those without captions"
        );
    }
    let siren = [(ns(siren_at), "[SIREN]".to_string())];
    let near = |found: &[(u64, String)], want: &[(u64, String)]| {
        found.len() == want.len()
            && found
                .iter()
                .zip(want)
                .all(|(f, w)| f.1 == w.1 && f.0.abs_diff(w.0) <= 1_000_000_000)
    };
    assert!(
        near(&sounds_of(quiet), &siren),
        "quiet: the siren at its onset {:?}, nothing under speech: {:?}",
        siren[0],
        sounds_of(quiet)
    );
    let sounds = sounds_of(all);
    assert!(
        near(&sounds[..1.min(sounds.len())], &siren),
        "all: the siren first: {sounds:?}"
    );
    let music: Vec<_> = sounds.iter().filter(|s| s.1 == "[MUSIC]").collect();
    assert_eq!(music.len(), 1, "all: the music once: {sounds:?}");
    assert!(
        (ns(music_at)..ns(music_end)).contains(&music[0].0),
        "all: the music caption lies in the music: {music:?}"
    );
}

/// Three turns of real voices from the pinned prompt packs (Allison, Carlo, Allison again):
/// `speaker-model` labels the finals S1, S2, S1, sends `rstranscribe/speaker-change` before
/// the first cue of each new speaker (three, the first included), and marks each change in
/// the subtitle file with `subtitle-speaker-prefix` and on the text pad with
/// `text-speaker-prefix`.
#[test]
fn speakers_are_labelled_and_their_changes_announced() {
    init();
    let dir = common::tmpdir("respond-speakers");
    let voices = common::cache_path("sounds/speech");
    let voice = |name: &str, from_s: usize, secs: usize| -> Vec<f32> {
        let path = voices.join(format!("{name}.wav"));
        assert!(
            path.is_file(),
            "{}: run bash scripts/fetch-sounds.sh",
            path.display()
        );
        let copy = dir.join(format!("{name}.wav"));
        std::fs::copy(&path, &copy).expect("copy the voice");
        let x = common::read_audio(&copy);
        let a = from_s * common::RATE as usize;
        x[a..a + secs * common::RATE as usize].to_vec()
    };
    let gap = vec![0.0f32; common::RATE as usize * 3 / 2];
    let mut audio = gap.clone();
    let mut starts = Vec::new();
    for (name, from) in [
        ("en_US_f_Allison", 60),
        ("it_IT_m_Carlo", 30),
        ("en_US_f_Allison", 90),
    ] {
        starts.push(ns(audio.len()));
        audio.extend(voice(name, from, 6));
        audio.extend(&gap);
    }
    let wav = dir.join("three-turns.wav");
    common::write_wav(&wav, &audio);
    let srt = dir.join("speakers.srt");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! lalm-interact name=l finals-only=true \
         speaker-model=pyannote-community-1 subtitle-speaker-prefix=\">> \" \
         text-speaker-prefix=\">> \" subtitle-location={} ! fakesink name=text sync=false",
        wav.display(),
        srt.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    // What reached the sink, in order: cues as (pts, speaker, text) and speaker changes.
    type Log = Mutex<Vec<(String, u64, String, String)>>;
    let seen: Arc<Log> = Arc::default();
    let seen2 = seen.clone();
    pipeline
        .by_name("text")
        .expect("sink")
        .static_pad("sink")
        .expect("pad")
        .add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let item = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => {
                        let speaker = gstlalm::meta::get_structure(b, gstlalm::meta::CUE_META)
                            .and_then(|m| m.get::<String>("speaker").ok())
                            .unwrap_or_default();
                        let text = b
                            .map_readable()
                            .map(|m| String::from_utf8_lossy(&m).into_owned())
                            .unwrap_or_default();
                        Some((
                            "cue".to_string(),
                            b.pts().map_or(0, |t| t.nseconds()),
                            speaker,
                            text,
                        ))
                    }
                    Some(gst::PadProbeData::Event(e)) => e
                        .structure()
                        .filter(|s| s.name() == "rstranscribe/speaker-change")
                        .map(|s| {
                            (
                                "change".to_string(),
                                0,
                                s.get::<String>("speaker").unwrap_or_default(),
                                String::new(),
                            )
                        }),
                    _ => None,
                };
                if let Some(i) = item {
                    seen2.lock().expect("log").push(i);
                }
                gst::PadProbeReturn::Ok
            },
        )
        .expect("probe");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let mut finals = Vec::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(600))
            .expect("EOS within ten minutes");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure()
                    && s.name() == "lalm-transcript"
                    && s.get::<bool>("final").unwrap_or(false)
                {
                    finals.push((
                        s.get::<u64>("start").expect("start"),
                        s.get::<String>("speaker").unwrap_or_default(),
                    ));
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    eprintln!("finals {finals:?}");
    // Each turn's finals carry the turn's speaker.
    let turn_of = |t: u64| {
        starts
            .iter()
            .rposition(|&s| s <= t + 300_000_000)
            .unwrap_or(0)
    };
    let want = ["S1", "S2", "S1"];
    assert!(finals.len() >= 3, "{finals:?}");
    for (start, speaker) in &finals {
        assert_eq!(
            speaker,
            want[turn_of(*start)],
            "the final at {start}: {finals:?}"
        );
    }
    // A change before the first cue of each turn, and none inside a turn.
    let seen = seen.lock().expect("log").clone();
    eprintln!("text pad {seen:?}");
    let mut current = None;
    let mut changes = Vec::new();
    let mut just_changed = false;
    for (what, _, speaker, text) in &seen {
        if what == "change" {
            changes.push(speaker.clone());
            current = Some(speaker.clone());
            just_changed = true;
        } else {
            assert_eq!(
                Some(speaker),
                current.as_ref(),
                "a cue after its speaker's change"
            );
            // The marker starts the first text of each new speaker, and no other.
            assert_eq!(
                text.starts_with(">> "),
                just_changed,
                "{text:?} in {seen:?}"
            );
            just_changed = false;
        }
    }
    assert_eq!(changes, want, "{seen:?}");
    let file = std::fs::read_to_string(&srt).expect("SRT");
    assert_eq!(file.matches(">> ").count(), 3, "{file}");
}

/// A speaker model that cannot be found fails READY with an error naming it.
#[test]
fn a_missing_speaker_model_is_a_clear_error() {
    init();
    let e = gst::ElementFactory::make("lalm-respond")
        .property("model", TINY)
        .property("speaker-model", "/nonexistent/speaker")
        .build()
        .expect("element");
    let (_, text) = failed_change(&e, gst::State::Ready);
    assert!(text.contains("/nonexistent/speaker"), "{text}");
}

/// Real prompts (the pinned Asterisk prompts) whose term each ASR mishears, won back by
/// `vocabulary`: Moonshine base writes "Login incorrect. Mailbox?" (`vm-incorrect-mailbox`) as
/// "Logging incorrect mailbox", whisper-base "The passwords you entered …" (`vm-mismatch`) as
/// "The pass would you entered …"; with the term listed the final writes it, and the rest of
/// the prompt stays. An unusable vocabulary file is an error naming it.
#[test]
fn a_vocabulary_term_is_written_as_listed() {
    let dir = common::tmpdir("respond-vocabulary");
    for (prompt, model, term, kept) in [
        ("vm-incorrect-mailbox", "moonshine-base", "login", "mailbox"),
        ("vm-mismatch", "whisper-base", "password", "entered"),
    ] {
        let g722 = common::cache_path(&format!(
            "speech/pkg/usr/share/asterisk/sounds/en_US_f_Allison/{prompt}.g722"
        ));
        let raw = dir.join(format!("{prompt}.raw"));
        let ok = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "g722", "-i"])
            .arg(&g722)
            .args(["-ar", "16000", "-ac", "1", "-f", "f32le"])
            .arg(&raw)
            .status()
            .expect("ffmpeg (scripts/fetch-speech.sh installs it)");
        assert!(
            ok.success(),
            "{}: run bash scripts/fetch-speech.sh",
            g722.display()
        );
        let samples: Vec<f32> = std::fs::read(&raw)
            .expect("decoded prompt")
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let half = common::RATE as usize / 2;
        let mut audio = vec![0.0f32; half];
        audio.extend(&samples);
        audio.extend(vec![0.0f32; 2 * half]);
        let wav = dir.join(format!("{prompt}.wav"));
        common::write_wav(&wav, &audio);
        let text = |props: &str| -> String {
            text_of_file(&wav, &format!("finals-only=true asr-model={model} {props}"))
                .into_iter()
                .map(|c| c.2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let has = |t: &str, w: &str| common::norm_words(t).contains(&w.to_string());
        let plain = text("");
        let list = dir.join("terms.txt");
        std::fs::write(
            &list,
            format!("# the system's words\n{term}\nComedian Mail\t2\n"),
        )
        .expect("list");
        let biased = text(&format!("vocabulary={}", list.display()));
        eprintln!("{model} without: {plain}\n{model} with:    {biased}");
        assert!(!has(&plain, term), "{model} alone mishears it: {plain}");
        assert!(
            has(&biased, term),
            "{model}: the listed term is written: {biased}"
        );
        assert!(
            has(&biased, kept),
            "{model}: the rest of the prompt stays: {biased}"
        );
    }

    init();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "login\tvery\n").expect("bad list");
    let e = gst::ElementFactory::make("lalm-respond")
        .property("vocabulary", bad.display().to_string())
        .build()
        .expect("element");
    let (_, text) = failed_change(&e, gst::State::Ready);
    assert!(text.contains(&format!("{}:1", bad.display())), "{text}");
}
