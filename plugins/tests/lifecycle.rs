//! Lifecycle and load: the same file gives the same output whatever the machine is doing, a
//! bus handler may read an element's stats while it posts, and a stalled alert pad holds a
//! bounded queue. Real models (Moonshine base, CED-Tiny, smart-turn) on real speech.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// The first half minute of the real-speech recording (one studio voice, prompts with pauses).
fn real_minute(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("minute.wav");
    let ok = std::process::Command::new("sox")
        .arg(common::asterisk_live_wav())
        .arg(&out)
        .args(["trim", "0", "30"])
        .status()
        .expect("sox runs")
        .success();
    assert!(
        ok,
        "sox trims the recording (run bash scripts/fetch-speech.sh)"
    );
    out
}

/// What a run leaves: the text pad's bytes, the alert pad's, the SRT file and the
/// lalm-* element messages as gst-launch prints them (the source element's name and message
/// number aside).
struct Output {
    text: Vec<u8>,
    alerts: Vec<u8>,
    srt: Vec<u8>,
    messages: Vec<String>,
}

fn run(wav: &std::path::Path, dir: &std::path::Path, tag: &str, props: &[&str]) -> Output {
    let text = dir.join(format!("{tag}.txt"));
    let alerts = dir.join(format!("{tag}.alerts"));
    let srt = dir.join(format!("{tag}.srt"));
    let location = format!("location={}", wav.display());
    let srt_prop = format!("subtitle-location={}", srt.display());
    let text_sink = format!("location={}", text.display());
    let alert_sink = format!("location={}", alerts.display());
    let mut args = vec![
        "-m",
        "filesrc",
        &location,
        "!",
        "wavparse",
        "!",
        "lalm-interact",
        "name=lalm",
        &srt_prop,
    ];
    args.extend_from_slice(props);
    args.extend([
        "!",
        "filesink",
        &text_sink,
        "lalm.alert",
        "!",
        "filesink",
        &alert_sink,
    ]);
    let out = common::gst_launch(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gst-launch-1.0 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each element posts its own messages in order; how two elements' messages interleave
    // on the bus is up to the threads, so they are compared element by element.
    let mut messages: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            let from = l.split("from element \"").nth(1)?.split('"').next()?;
            let i = l.find("): lalm-")?;
            Some(format!("{from}: {}", &l[i + 3..]))
        })
        .filter(|m| !m.contains("-stats"))
        .collect();
    messages.sort_by(|a, b| a.split(": ").next().cmp(&b.split(": ").next()));
    Output {
        text: std::fs::read(&text).expect("text output"),
        alerts: std::fs::read(&alerts).expect("alert output"),
        srt: std::fs::read(&srt).expect("subtitle file"),
        messages,
    }
}

/// The `i`-th 100 ms buffer of a stream of F32 samples, `piece` being its audio.
fn piece_at(i: usize, piece: &[f32]) -> gst::Buffer {
    let bytes: Vec<u8> = piece.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut b = gst::Buffer::from_mut_slice(bytes);
    b.get_mut()
        .expect("writable")
        .set_pts(gst::ClockTime::from_nseconds(
            (i * 1600) as u64 * 1_000_000_000 / common::RATE as u64,
        ));
    b
}

/// Threads that keep every core busy until dropped.
struct Hogs(Arc<AtomicBool>, Vec<std::thread::JoinHandle<u64>>);

impl Hogs {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                    }
                    x
                })
            })
            .collect();
        Self(stop, threads)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

/// A broadcaster re-running a file gets the same subtitles: the second run has every core
/// hogged and other thread counts, and every cue, alert and message is the same, byte for
/// byte. (Partials used to be paced by how long the last one took and replaced when the
/// worker was behind, so what was decoded depended on the load.)
#[test]
fn a_file_gives_the_same_output_under_load() {
    init();
    let dir = common::tmpdir("same-under-load");
    let wav = real_minute(&dir);
    let calm = run(&wav, &dir, "calm", &[]);
    let busy = {
        let _hogs = Hogs::start();
        run(
            &wav,
            &dir,
            "busy",
            &["perceive::threads=2", "respond::threads=1"],
        )
    };
    let cues = calm
        .messages
        .iter()
        .filter(|m| m.contains(": lalm-transcript"))
        .count();
    assert!(
        cues >= 5,
        "the half minute of speech gives cues: {:#?}",
        calm.messages
    );
    assert!(!calm.srt.is_empty(), "final cues in the SRT");
    for (tag, out) in [("calm", &calm), ("busy", &busy)] {
        let _ = std::fs::write(dir.join(format!("{tag}.messages")), out.messages.join("\n"));
    }
    eprintln!("messages in {}", dir.display());
    for (i, (a, b)) in calm.messages.iter().zip(&busy.messages).enumerate() {
        assert_eq!(a, b, "message {i} differs under load");
    }
    assert_eq!(calm.messages.len(), busy.messages.len(), "as many messages");
    assert!(calm.text == busy.text, "the text pad differs under load");
    assert!(
        calm.alerts == busy.alerts,
        "the alert pad differs under load"
    );
    assert_eq!(
        String::from_utf8_lossy(&calm.srt),
        String::from_utf8_lossy(&busy.srt),
        "the subtitle file differs under load"
    );
}

/// The elements post their messages outside their locks: a synchronous bus handler that
/// reads lalm-decide's stats on every decision (it used to post under its state lock, which
/// the stats would take again: a deadlock) runs to EOS, and the stats show the turn model's
/// work (asked at pauses, some turns ended early).
#[test]
fn a_bus_handler_may_read_stats_while_the_loop_posts() {
    init();
    let dir = common::tmpdir("stats-from-bus");
    let wav = real_minute(&dir);
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! lalm-chunker \
         ! lalm-perceive tagger=none ! lalm-decide name=decide ! fakesink sync=false",
        wav.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let decide = p.by_name("decide").expect("decide");
    let reads = Arc::new(AtomicU64::new(0));
    let bus = p.bus().expect("bus");
    {
        let (decide, reads) = (decide.clone(), reads.clone());
        bus.set_sync_handler(move |_, m| {
            if m.structure().is_some_and(|s| s.name() == "lalm-decision") {
                let stats = decide.property::<gst::Structure>("stats");
                assert!(stats.get::<u64>("speech-starts").is_ok());
                reads.fetch_add(1, Ordering::SeqCst);
            }
            gst::BusSyncReply::Pass
        });
    }
    play_to_eos(&p);
    let stats = decide.property::<gst::Structure>("stats");
    p.set_state(gst::State::Null).expect("null");
    let get = |f: &str| stats.get::<u64>(f).expect("stats field");
    assert_eq!(
        reads.load(Ordering::SeqCst),
        get("speech-starts") + get("turn-ends"),
        "every decision was read"
    );
    assert!(
        get("turn-ends") >= 4,
        "the half minute has several turns: {stats}"
    );
    assert_eq!(get("speech-starts"), get("turn-ends"), "{stats}");
    assert!(get("turn-asks") >= get("turn-early-ends"), "{stats}");
    assert!(get("turn-asks") > 0, "the turn model was asked: {stats}");
}

/// Plays `p` until EOS; an error, or no EOS in ten minutes (the loop hangs), fails the test.
fn play_to_eos(p: &gst::Pipeline) {
    let bus = p.bus().expect("bus");
    p.set_state(gst::State::Playing).expect("playing");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error (the loop hangs otherwise)");
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
}

/// `wav` through `lalm-chunker ! lalm-perceive tagger=none ! lalm-decide {props}`: the
/// pipeline and its lalm-decide.
fn decide_pipeline(wav: &std::path::Path, props: &str) -> (gst::Pipeline, gst::Element) {
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! lalm-chunker \
         ! lalm-perceive tagger=none ! lalm-decide name=decide {props} ! fakesink sync=false",
        wav.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let decide = p.by_name("decide").expect("decide");
    (p, decide)
}

/// `turn-early-pause-ms` asks the turn model a first time, sooner, with its own threshold:
/// at threshold 0 every pause it sees ends the turn there (each turn end but the one EOS makes
/// is an early one, one ask each); at threshold 1 none does, so pauses that last are asked
/// twice.
#[test]
fn the_early_turn_ask_ends_turns_at_its_own_threshold() {
    init();
    let dir = common::tmpdir("early-turn-ask");
    let wav = real_minute(&dir);
    let stats_with = |props: &str| -> gst::Structure {
        let (p, decide) = decide_pipeline(&wav, props);
        play_to_eos(&p);
        let stats = decide.property::<gst::Structure>("stats");
        p.set_state(gst::State::Null).expect("null");
        stats
    };
    let get = |s: &gst::Structure, f: &str| s.get::<u64>(f).expect("stats field");
    let plain = stats_with("");
    let eager = stats_with("turn-early-pause-ms=200 turn-early-threshold=0");
    assert!(get(&eager, "turn-ends") >= 4, "{eager}");
    // EOS closes the last utterance without a pause to ask about.
    assert!(
        get(&eager, "turn-early-ends") + 1 >= get(&eager, "turn-ends"),
        "{eager}"
    );
    assert_eq!(
        get(&eager, "turn-asks"),
        get(&eager, "turn-early-ends"),
        "{eager}"
    );
    let strict = stats_with("turn-early-pause-ms=200 turn-early-threshold=1");
    assert_eq!(
        get(&strict, "turn-ends"),
        get(&plain, "turn-ends"),
        "{strict} {plain}"
    );
    assert!(
        get(&strict, "turn-asks") > get(&plain, "turn-asks"),
        "pauses asked twice: {strict} against {plain}"
    );
}

/// `turn-prefetch` asks the turn model a chunk before `turn-pause-ms`, on its own thread:
/// turns end on those answers, a file gives the same decisions however the threads run, and a
/// threshold no answer reaches makes every prefetched pause be asked again (the same turn ends
/// as without the prefetch, one more ask each).
#[test]
fn a_prefetched_turn_ask_ends_turns_and_keeps_a_file_repeatable() {
    init();
    let dir = common::tmpdir("turn-prefetch");
    let wav = real_minute(&dir);
    let run = |props: &str| -> (gst::Structure, Vec<(String, u64, u64)>) {
        let (p, decide) = decide_pipeline(&wav, props);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            p.bus().expect("bus").set_sync_handler(move |_, m| {
                if let Some(s) = m.structure().filter(|s| s.name() == "lalm-decision") {
                    let field = |f: &str| s.get::<u64>(f).expect("decision field");
                    seen.lock().expect("decisions").push((
                        s.get::<String>("kind").expect("kind"),
                        field("start"),
                        field("end"),
                    ));
                }
                gst::BusSyncReply::Pass
            });
        }
        play_to_eos(&p);
        let stats = decide.property::<gst::Structure>("stats");
        p.set_state(gst::State::Null).expect("null");
        let seen = seen.lock().expect("decisions").clone();
        (stats, seen)
    };
    let get = |s: &gst::Structure, f: &str| s.get::<u64>(f).expect("stats field");
    let (plain, _) = run("");
    assert_eq!(get(&plain, "turn-prefetch-hits"), 0, "{plain}");
    let (first, decisions) = run("turn-prefetch=true");
    assert!(get(&first, "turn-ends") >= 4, "{first}");
    assert!(
        get(&first, "turn-prefetch-hits") > 0,
        "turns ended on prefetched answers: {first}"
    );
    assert!(
        get(&first, "turn-early-ends") >= get(&first, "turn-prefetch-hits"),
        "{first}"
    );
    for _ in 0..2 {
        let (_, again) = run("turn-prefetch=true");
        assert_eq!(again, decisions, "the same file, the same decisions");
    }
    let (strict_plain, plain_decisions) = run("turn-threshold=1");
    let (strict, strict_decisions) = run("turn-threshold=1 turn-prefetch=true");
    assert_eq!(get(&strict, "turn-prefetch-hits"), 0, "{strict}");
    assert_eq!(strict_decisions, plain_decisions);
    assert!(
        get(&strict, "turn-asks") > get(&strict_plain, "turn-asks"),
        "prefetched pauses asked again: {strict} against {strict_plain}"
    );
}

/// An alert pad whose sink stalls while time moves on holds a bounded queue: the GAPs that
/// keep it moving merge into one instead of piling up one per chunk.
#[test]
fn a_stalled_alert_pad_holds_a_bounded_queue() {
    init();
    let p = gst::parse::launch(
        "appsrc name=src format=time caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved \
         ! lalm-chunker ! lalm-perceive tagger=none ! lalm-decide turn-model=none \
         ! lalm-respond name=respond mode=turn-end ! fakesink name=text sync=false \
         respond.alert ! fakesink name=alerts sync=false async=false",
    )
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = p.by_name("src").expect("src");
    let respond = p.by_name("respond").expect("respond");
    // The alert pad's sink never takes anything.
    let stalled = Arc::new(AtomicBool::new(true));
    let alert_pad = p
        .by_name("alerts")
        .expect("alerts")
        .static_pad("sink")
        .expect("sink pad");
    {
        let stalled = stalled.clone();
        alert_pad.add_probe(gst::PadProbeType::DATA_DOWNSTREAM, move |_, _| {
            while stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            gst::PadProbeReturn::Ok
        });
    }
    // How far the text pad has come, by its buffers and GAPs.
    let reached = Arc::new(AtomicU64::new(0));
    {
        let reached = reached.clone();
        p.by_name("text")
            .expect("text")
            .static_pad("sink")
            .expect("sink pad")
            .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(e)) = &info.data
                    && let gst::EventView::Gap(g) = e.view()
                {
                    let (ts, d) = g.get();
                    let end = ts + d.unwrap_or(gst::ClockTime::ZERO);
                    reached.fetch_max(end.nseconds(), Ordering::SeqCst);
                }
                gst::PadProbeReturn::Ok
            });
    }
    p.set_state(gst::State::Playing).expect("playing");
    // Five minutes of quiet room noise in one-second buffers.
    let secs = 300u64;
    let mut rng = common::Lcg(7);
    for i in 0..secs {
        let samples: Vec<u8> = (0..16000)
            .flat_map(|_| (rng.gauss() * 0.001).to_le_bytes())
            .collect();
        let mut b = gst::Buffer::from_mut_slice(samples);
        {
            let b = b.get_mut().expect("writable");
            b.set_pts(gst::ClockTime::from_seconds(i));
            b.set_duration(gst::ClockTime::from_seconds(1));
        }
        let ret = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&b]);
        assert_eq!(ret, gst::FlowReturn::Ok);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while reached.load(Ordering::SeqCst) < gst::ClockTime::from_seconds(secs - 5).nseconds() {
        assert!(
            Instant::now() < deadline,
            "the text pad never got near the end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = respond.property::<gst::Structure>("stats");
    let waiting = stats.get::<u64>("alert-waiting").expect("alert-waiting");
    stalled.store(false, Ordering::SeqCst);
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    p.set_state(gst::State::Null).expect("null");
    assert!(
        waiting <= 8,
        "{waiting} items wait for a stalled alert pad after {secs} s of audio: {stats}"
    );
}

/// A flush stops the ASR decode under way instead of waiting for it: a seek into a file whose
/// decoding is far behind is answered at once, and what was under way is counted in stats.
#[test]
fn a_flush_stops_the_decode_under_way() {
    init();
    let (audio, _) = common::asterisk_prompts();
    // Whisper base re-decodes the utterance for every partial: 40 s of speech keeps the
    // worker busy long after the audio is in.
    let audio = &audio[..(40 * common::RATE as usize).min(audio.len())];
    let mut h = gst_check::Harness::new_parse(
        "lalm-chunker ! lalm-perceive tagger=none overload=block ! lalm-decide turn-model=none \
         ! lalm-respond name=respond model=whisper-base",
    );
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    let respond = h
        .element()
        .expect("bin")
        .downcast::<gst::Bin>()
        .expect("a bin")
        .by_name("respond")
        .expect("respond");
    let stat = |f: &str| {
        respond
            .property::<gst::Structure>("stats")
            .get::<u64>(f)
            .expect("stats field")
    };
    let mut flushed = 0;
    // Each round: audio in until the worker has cues out and more to do, then a flush. A
    // round whose flush came between two decodes stops nothing; another round follows.
    for round in 0..5 {
        for (i, piece) in audio.chunks(1600).enumerate() {
            assert_eq!(h.push(piece_at(i, piece)), Ok(gst::FlowSuccess::Ok));
        }
        assert!(h.push_event(gst::event::FlushStart::new()));
        assert!(h.push_event(gst::event::FlushStop::new(true)));
        assert!(
            h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
        );
        flushed = stat("cancelled-flushed");
        eprintln!("round {round}: cancelled-flushed {flushed}");
        if flushed > 0 {
            break;
        }
    }
    assert!(flushed > 0, "no flush ever stopped a decode under way");
}

/// The loop's messages for `audio` pushed in 100 ms buffers from a non-live `appsrc` (a
/// `gst_check::Harness` answers the latency query as live), with `pause` between buffers:
/// how fast upstream delivers must not change what comes out.
fn transcripts_at_pace(audio: &[f32], pause: Duration) -> Vec<String> {
    let p = gst::parse::launch(
        "appsrc name=src format=time is-live=false \
         caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved \
         ! lalm-chunker ! lalm-perceive ! lalm-decide ! lalm-respond ! fakesink sync=false",
    )
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = p.by_name("src").expect("src");
    let bus = p.bus().expect("bus");
    p.set_state(gst::State::Playing).expect("playing");
    for (i, piece) in audio.chunks(1600).enumerate() {
        let ret = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&piece_at(i, piece)]);
        assert_eq!(ret, gst::FlowReturn::Ok);
        std::thread::sleep(pause);
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let mut out = Vec::new();
    loop {
        let m = bus
            .timed_pop(gst::ClockTime::from_seconds(600))
            .expect("messages up to EOS");
        match m.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{e:?}"),
            _ => {}
        }
        if let Some(s) = m.structure()
            && (s.name() == "lalm-transcript" || s.name() == "lalm-response")
        {
            out.push(s.to_string());
        }
    }
    p.set_state(gst::State::Null).expect("null");
    out
}

/// A file decoded while upstream is quick and while it is slow (a loaded machine, a slow
/// demuxer) gives the same partial and final cues: partials used to be paced by the decoder's
/// speed and replaced while it was behind, so which were decoded depended on how fast the
/// audio came (the quick run got none at all). From a file, only the decode made as each
/// pause begins is decoded before the final (which takes it).
#[test]
fn a_file_gives_the_same_cues_whatever_upstream_pace() {
    init();
    let (audio, _) = common::asterisk_prompts();
    let audio = &audio[..(20 * common::RATE as usize).min(audio.len())];
    let quick = transcripts_at_pace(audio, Duration::ZERO);
    let slow = transcripts_at_pace(audio, Duration::from_millis(25));
    assert!(
        quick
            .iter()
            .filter(|m| m.starts_with("lalm-response"))
            .count()
            >= 3,
        "final cues: {quick:#?}"
    );
    for (i, (a, b)) in quick.iter().zip(&slow).enumerate() {
        assert_eq!(a, b, "message {i} differs with upstream's pace");
    }
    assert_eq!(quick.len(), slow.len());
}

/// What a file run through `lalm-interact <props>` says: its final transcripts in order and
/// lalm-respond's stats at the end.
fn finals_and_stats(wav: &std::path::Path, props: &str) -> (Vec<String>, gst::Structure) {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! wavparse ! lalm-interact name=lalm {props} ! fakesink",
        wav.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut finals = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            gst::MessageView::Element(el) => {
                if let Some(s) = el.structure()
                    && s.name() == "lalm-transcript"
                    && s.get::<bool>("final").unwrap_or(false)
                {
                    finals.push(s.get::<String>("text").unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    let respond = pipeline
        .by_name("lalm")
        .and_then(|b| b.downcast::<gst::Bin>().ok())
        .and_then(|b| b.by_name("respond"))
        .expect("lalm-respond inside lalm-interact");
    let stats = respond.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).expect("null");
    (finals, stats)
}

/// Long real paragraphs (19-25 s each, pauses inside): with sealing, a decode hears the audio
/// since the last pause, not the whole utterance, so what one decode costs no longer grows
/// with the utterance; and the words are as right as when every decode heard it all.
#[test]
fn a_long_utterance_is_decoded_phrase_by_phrase_and_as_well() {
    let (wav, truth) = common::asterisk_long();
    let dir = common::tmpdir("sealed");
    let clip = dir.join("long.wav");
    // The paragraphs that end within 70 s, cut inside the pause after the last of them.
    let said: Vec<&str> = truth
        .iter()
        .filter(|(_, end, _)| *end <= 70.0)
        .map(|(_, _, t)| t.as_str())
        .collect();
    let cut = truth
        .iter()
        .filter(|(_, end, _)| *end <= 70.0)
        .map(|(_, end, _)| end + 0.5)
        .fold(0.0, f64::max);
    assert!(
        std::process::Command::new("sox")
            .arg(&wav)
            .arg(&clip)
            .args(["trim", "0", &format!("{cut:.3}")])
            .status()
            .expect("sox runs")
            .success()
    );
    assert!(said.len() >= 3, "three paragraphs in the clip: {truth:?}");
    let reference = said.join(" ");
    let ms = |st: &gst::Structure, k: &str| st.get::<u64>(k).expect(k);
    let (whole, whole_stats) = finals_and_stats(&clip, "seal-after-ms=0");
    // Sealing from an utterance's first pause on, to see it at work on every paragraph.
    let (sealed, sealed_stats) = finals_and_stats(&clip, "seal-from-ms=0");
    // The defaults seal from 8 s on: the longest decode is still bounded.
    let (_, default_stats) = finals_and_stats(&clip, "");
    eprintln!(
        "every decode from the start: {whole_stats}\n{}",
        whole.join(" | ")
    );
    eprintln!("sealed: {sealed_stats}\n{}", sealed.join(" | "));
    assert!(ms(&sealed_stats, "sealed") >= 3, "{sealed_stats}");
    assert_eq!(ms(&whole_stats, "sealed"), 0, "{whole_stats}");
    // From a file only the decodes made as a pause begins come before a turn's end: without
    // sealing each hears the utterance so far, with it the phrase since the last seal.
    let (mean_sealed, mean_whole) = (
        ms(&sealed_stats, "early-audio-mean-ms"),
        ms(&whole_stats, "early-audio-mean-ms"),
    );
    assert!(
        mean_whole >= 6000 && mean_sealed * 10 <= mean_whole * 6,
        "mean decode before a turn end: {mean_sealed} ms sealed, {mean_whole} ms not"
    );
    for st in [&sealed_stats, &default_stats] {
        assert!(
            ms(st, "early-audio-max-ms") < ms(&whole_stats, "early-audio-max-ms"),
            "the longest decode: {st}"
        );
    }
    assert!(
        ms(&sealed_stats, "decoded-audio-ms") * 10 <= ms(&whole_stats, "decoded-audio-ms") * 6,
        "sealing decodes less audio in all"
    );
    let wer = |finals: &[String]| {
        let (errors, words) = common::word_errors(&reference, &finals.join(" "));
        errors as f64 / words.max(1) as f64
    };
    let (w_sealed, w_whole) = (wer(&sealed), wer(&whole));
    eprintln!("WER sealed {w_sealed:.3}, whole {w_whole:.3}");
    assert!(
        w_sealed <= w_whole + 0.02 && w_sealed <= 0.15,
        "sealing lost words: WER {w_sealed:.3} against {w_whole:.3}"
    );
}
