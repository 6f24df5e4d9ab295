//! lalm-interact as gst-plugins-rs' `transcriberbin` `transcriber`, live: speech fed at real
//! pace through a live appsrc, a live videotestsrc, and the CEA-608 captions that come out on the
//! video are turned back into text (ccextractor ! cea608tojson). Two runs, on the default ASR
//! (Moonshine base) on the CPU:
//!
//! 1. espeak-ng's sentences: the captions hold the words that were spoken;
//! 2. real voices (the pinned Asterisk prompt packs under `LALM_SOUNDS_DIR`, from
//!    scripts/fetch-sounds.sh) with `speaker-model` and `text-speaker-prefix=">> "`: the
//!    captions carry the speaker marker at each change of voice.
//!
//! A plain `main` (harness = false): the GStreamer environment is set before any thread starts.
//! `LALM_PLUGIN_DIR` names the folder with the libgstlalm.so under test (default: the
//! repository's target/release).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// What espeak-ng says, two utterances with a pause between (sentences the plugin's own tests
/// know Whisper gets from this voice).
const SENTENCES: [&str; 2] = [
    "The doctor said that I should drink more water every day.",
    "Could you tell me where the nearest bus stop is, please?",
];
/// The caption text must hold at least `MIN_WORDS` of these.
const WORDS: &[&str] = &[
    "doctor", "said", "drink", "water", "every", "day", "tell", "nearest", "bus", "stop", "please",
];
const MIN_WORDS: usize = 4;
/// How long one run may take before its captions count as missing.
const DEADLINE: Duration = Duration::from_secs(90);
/// The speaker run's turns: a voice of `LALM_SOUNDS_DIR/speech` and the second its
/// `TURN_SECS` start at (the stretches `plugins/tests/respond.rs` labels S1, S2, S1).
const TURNS: [(&str, usize); 3] = [
    ("en_US_f_Allison", 60),
    ("it_IT_m_Carlo", 30),
    ("en_US_f_Allison", 90),
];
const TURN_SECS: usize = 6;
/// The rate of the prompt recordings.
const SPEECH_RATE: usize = 16_000;
/// The live source's buffer length.
const CHUNK: Duration = Duration::from_millis(20);

type Res<T> = Result<T, String>;
/// Text buffers seen at one point: pts and text.
type Texts = Mutex<Vec<(Option<gst::ClockTime>, String)>>;
/// A text buffer's pts and duration.
type Span = (Option<gst::ClockTime>, Option<gst::ClockTime>);

fn main() {
    let plugin_dir = std::env::var_os("LALM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release"));
    let registry = std::env::temp_dir().join(format!(
        "lalm-transcriberbin-registry-{}.bin",
        std::process::id()
    ));
    // SAFETY: nothing else runs yet (no test harness, no GStreamer threads), so no thread can
    // read the environment while it changes. The plugin under test comes from this build, not
    // from an installed copy in the user's plugin folder.
    unsafe {
        std::env::set_var("GST_PLUGIN_PATH", &plugin_dir);
        std::env::set_var("GST_REGISTRY", &registry);
    }
    let result = lalm_transcriberbin_test::init()
        .map_err(|e| format!("cannot register the closed caption plugins: {e}"))
        .and_then(|()| check_elements(&plugin_dir))
        .and_then(|()| espeak_captions())
        .and_then(|()| speaker_captions());
    let _ = std::fs::remove_file(&registry);
    match result {
        Ok(()) => println!("transcriberbin live captions: ok"),
        Err(e) => {
            eprintln!("transcriberbin live captions: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// Every element the pipeline needs is there, and lalm-interact comes from `plugin_dir`.
fn check_elements(plugin_dir: &Path) -> Res<()> {
    for name in [
        "transcriberbin",
        "cea708mux",
        "textwrap",
        "cea608tojson",
        "cccombiner",
        "ccconverter",
        "ccextractor",
        "lalm-interact",
    ] {
        if gst::ElementFactory::find(name).is_none() {
            return Err(format!(
                "element {name} is missing (gstreamer1.0-plugins-bad for the cc* elements, \
                 libgstlalm.so in {} for lalm-interact): run scripts/test-transcriberbin.sh",
                plugin_dir.display()
            ));
        }
    }
    let file = gst::ElementFactory::find("lalm-interact")
        .and_then(|f| f.plugin())
        .and_then(|p| p.filename());
    let want = plugin_dir
        .join("libgstlalm.so")
        .canonicalize()
        .map_err(|e| format!("{}/libgstlalm.so: {e}", plugin_dir.display()))?;
    match file.map(|f| f.canonicalize()) {
        Some(Ok(f)) if f == want => Ok(()),
        other => Err(format!(
            "lalm-interact is loaded from {other:?}, not the build under test {}",
            want.display()
        )),
    }
}

/// espeak-ng's speech, as mono S16 samples and their rate.
fn speech(text: &str) -> Res<(Vec<i16>, i32)> {
    let wav = std::env::temp_dir().join(format!("lalm-transcriberbin-{}.wav", std::process::id()));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .map_err(|e| format!("cannot run espeak-ng: {e}"))?;
    if !status.success() {
        return Err(format!("espeak-ng failed: {status}"));
    }
    let decoded = decode(&wav);
    let _ = std::fs::remove_file(&wav);
    decoded.map_err(|e| format!("espeak-ng's speech: {e}"))
}

/// A WAV file as mono S16 samples and their rate.
fn decode(wav: &Path) -> Res<(Vec<i16>, i32)> {
    let decode = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert \
         ! audio/x-raw,format=S16LE,channels=1,layout=interleaved ! appsink name=sink sync=false",
        wav.display()
    ))
    .map_err(|e| format!("decode pipeline: {e}"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "decode pipeline is not a pipeline".to_string())?;
    let sink = decode
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or("decode pipeline has no appsink")?;
    decode
        .set_state(gst::State::Playing)
        .map_err(|e| format!("decode pipeline: {e}"))?;
    let mut samples = Vec::new();
    let mut rate = 0;
    while let Ok(sample) = sink.pull_sample() {
        if let Some(info) = sample
            .caps()
            .and_then(|c| gst_audio::AudioInfo::from_caps(c).ok())
        {
            rate = info.rate() as i32;
        }
        let map = sample
            .buffer()
            .ok_or("sample without buffer")?
            .map_readable()
            .map_err(|e| format!("map: {e}"))?;
        samples.extend(
            map.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
    }
    let _ = decode.set_state(gst::State::Null);
    if samples.is_empty() || rate == 0 {
        return Err(format!("{}: no audio", wav.display()));
    }
    Ok((samples, rate))
}

/// A final transcript from the bus: stream times in ns, the speaker label (empty without one).
#[derive(Debug, Clone)]
struct Final {
    start: u64,
    end: u64,
    speaker: String,
    text: String,
}

/// What a run saw so far, for its `done` check and the report.
#[derive(Default)]
struct Seen {
    /// The whole speech has been fed.
    spoken: bool,
    /// Running time at which the speech started (the silence fed before it).
    speech_at: u64,
    /// The caption text cea608tojson gave, lower case, its windows joined.
    captions: String,
    /// The printable CEA-608 characters on the video, each as sent once.
    raw608: String,
    finals: Vec<Final>,
}

/// Espeak-ng's two sentences: their words come back from the captions.
fn espeak_captions() -> Res<()> {
    let (first, rate) = speech(SENTENCES[0])?;
    let (second, _) = speech(SENTENCES[1])?;
    let rate_u = rate as usize;
    // 0.5 s silence, a sentence, 1.5 s silence, the other.
    let mut audio = vec![0i16; rate_u / 2];
    audio.extend_from_slice(&first);
    audio.extend(std::iter::repeat_n(0i16, rate_u * 3 / 2));
    audio.extend_from_slice(&second);
    let seen = run(
        audio,
        rate,
        |_| {},
        |s| s.spoken && found_words(&s.captions).len() >= MIN_WORDS,
    )?;
    println!("caption words: {:?}", found_words(&seen.captions));
    Ok(())
}

/// Real voices from the pinned Asterisk prompt packs, three turns (Allison, Carlo, Allison),
/// through `speaker-model` and `text-speaker-prefix=">> "`: the CEA-608 captions carry the
/// broadcast speaker marker once at each change of voice, the stream's first speaker
/// included. (tttocea608's own `speaker-prefix`, which acts on the `rstranscribe/speaker-change`
/// event lalm-respond also sends, is in gst-plugins-rs 0.14 and later, which need GStreamer 1.24;
/// Debian 12 has 1.22.)
fn speaker_captions() -> Res<()> {
    let dir = std::env::var_os("LALM_SOUNDS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or("LALM_SOUNDS_DIR is not set: run scripts/test-transcriberbin.sh")?;
    let gap = 3 * SPEECH_RATE / 2;
    let mut audio = vec![0i16; gap];
    let mut turns = Vec::new();
    for (voice, from_s) in TURNS {
        let path = dir.join("speech").join(format!("{voice}.wav"));
        let (x, rate) = decode(&path)?;
        if rate as usize != SPEECH_RATE {
            return Err(format!("{}: {rate} Hz, not {SPEECH_RATE}", path.display()));
        }
        let from = from_s * SPEECH_RATE;
        let turn = x
            .get(from..from + TURN_SECS * SPEECH_RATE)
            .ok_or_else(|| format!("{} is shorter than expected", path.display()))?;
        turns.push((audio.len(), audio.len() + turn.len()));
        audio.extend_from_slice(turn);
        audio.extend(std::iter::repeat_n(0i16, gap));
    }
    let ns = |samples: usize| samples as u64 * 1_000_000_000 / SPEECH_RATE as u64;
    let (last_start, last_end) = turns.last().copied().ok_or("no turn")?;
    let seen = run(
        audio,
        SPEECH_RATE as i32,
        |interact| {
            interact.set_property("speaker-model", "pyannote-community-1");
            interact.set_property("text-speaker-prefix", ">> ");
        },
        |s| {
            // The last turn has been answered to its end, and the last final's words are out.
            let answered = s
                .finals
                .iter()
                .any(|f| f.start + 300_000_000 >= s.speech_at + ns(last_start))
                && s.finals
                    .iter()
                    .any(|f| f.end + 1_000_000_000 >= s.speech_at + ns(last_end));
            let last_word = s
                .finals
                .last()
                .and_then(|f| f.text.split_whitespace().last().map(letters))
                .unwrap_or_default();
            s.spoken && answered && letters(&s.raw608).ends_with(&last_word)
        },
    )?;
    // The voice of each final, by the turn it starts in; labels as the bus gave them.
    let turn_of = |f: &Final| {
        turns
            .iter()
            .rposition(|(a, _)| seen.speech_at + ns(*a) <= f.start + 300_000_000)
            .unwrap_or(0)
    };
    // Runs of one label: (the turn it starts in, the label, its first final).
    let mut runs: Vec<(usize, String, &Final)> = Vec::new();
    for f in &seen.finals {
        if runs.last().is_none_or(|(_, sp, _)| *sp != f.speaker) {
            runs.push((turn_of(f), f.speaker.clone(), f));
        }
    }
    let labels: Vec<&str> = runs.iter().map(|(_, sp, _)| sp.as_str()).collect();
    if labels != ["S1", "S2", "S1"] || runs.iter().map(|(t, _, _)| *t).ne(0..3) {
        return Err(format!(
            "speakers by turn {:?}, want S1, S2, S1 starting turns 0, 1, 2: {:?}",
            runs.iter().map(|(t, sp, _)| (t, sp)).collect::<Vec<_>>(),
            seen.finals
        ));
    }
    let markers = seen.raw608.matches(">>").count();
    if markers != runs.len() {
        return Err(format!(
            "{markers} speaker markers in the CEA-608 captions, want {} (one per change): {:?}",
            runs.len(),
            seen.raw608
        ));
    }
    // Each marker comes right before the first words of the speaker it announces.
    let after: Vec<String> = seen.raw608.split(">>").skip(1).map(letters).collect();
    for (i, (_, speaker, first)) in runs.iter().enumerate() {
        let word = first
            .text
            .split_whitespace()
            .next()
            .map(letters)
            .unwrap_or_default();
        if !after.get(i).is_some_and(|p| p.starts_with(&word)) {
            return Err(format!(
                "marker {i} is not followed by {speaker}'s first word {word:?}: {:?}",
                seen.raw608
            ));
        }
    }
    println!("speaker markers: {markers}, speakers {labels:?}");
    Ok(())
}

/// Lower-case letters and digits only: CEA-608's character set and line breaks aside.
fn letters(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Plays `audio` live into transcriberbin with `lalm-interact` (finals-only, no tagger, then
/// `configure`) as its transcriber, until `done` holds or the deadline passes. Checks what every
/// run must: no error, the language handed down, text items that follow each other, caption
/// data on the video.
fn run(
    audio: Vec<i16>,
    rate: i32,
    configure: impl FnOnce(&gst::Element),
    done: impl Fn(&Seen) -> bool,
) -> Res<Seen> {
    let speech_secs = audio.len() as f64 / rate as f64;
    println!("speech: {speech_secs:.1} s at {rate} Hz");

    let pipeline = gst::Pipeline::new();
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|e| format!("{factory}: {e}"))
    };
    let asrc = gst_app::AppSrc::builder()
        .caps(
            &gst_audio::AudioCapsBuilder::new_interleaved()
                .format(gst_audio::AudioFormat::S16le)
                .rate(rate)
                .channels(1)
                .build(),
        )
        .is_live(true)
        .format(gst::Format::Time)
        .min_latency(CHUNK.as_nanos() as i64)
        .build();
    let vsrc = gst::ElementFactory::make("videotestsrc")
        .property("is-live", true)
        .property_from_str("pattern", "black")
        .build()
        .map_err(|e| format!("videotestsrc: {e}"))?;
    let vcaps = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("width", 320i32)
            .field("height", 240i32)
            .field("framerate", gst::Fraction::new(30000, 1001))
            .build(),
    )?;
    // Debian 12's GStreamer 1.22 has no cea608mux (the default mux method), so CEA-708 muxing,
    // which still carries the transcript as CEA-608 on CC1.
    let tbin = gst::ElementFactory::make("transcriberbin")
        .property_from_str("mux-method", "cea708")
        .build()
        .map_err(|e| format!("transcriberbin: {e}"))?;
    // finals-only: transcriberbin appends every text buffer to the captions, and lalm-respond's
    // partial cues repeat their utterance's text so far, so the captions would repeat it.
    let interact = gst::ElementFactory::make("lalm-interact")
        .property("tagger", "none")
        .property("finals-only", true)
        .build()
        .map_err(|e| format!("lalm-interact: {e}"))?;
    configure(&interact);
    tbin.set_property("transcriber", &interact);
    // transcriberbin hands its transcriber region-qualified codes (its default is en-US).
    tbin.set_property("language-code", "en-GB");
    let asink = clocked_sink()?;
    let extractor = make("ccextractor")?;
    let vsink = clocked_sink()?;
    let ccconv = make("ccconverter")?;
    let cc608 = capsfilter(
        gst::Caps::builder("closedcaption/x-cea-608")
            .field("format", "raw")
            .build(),
    )?;
    // cea608tojson, unbuffered: every change of the roll-up window comes out (cea608tott only
    // emits a caption once it is erased, which roll-up never does).
    let tojson = gst::ElementFactory::make("cea608tojson")
        .property("unbuffered", true)
        .build()
        .map_err(|e| format!("cea608tojson: {e}"))?;
    // No sink waits for a preroll buffer: in a live pipeline the audio only starts once it plays.
    let textsink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .build();
    pipeline
        .add_many([
            asrc.upcast_ref(),
            &vsrc,
            &vcaps,
            &tbin,
            &asink,
            &extractor,
            &vsink,
            &ccconv,
            &cc608,
            &tojson,
            textsink.upcast_ref(),
        ])
        .map_err(|e| format!("add: {e}"))?;
    let link = |a: &gst::Element, ap: &str, b: &gst::Element, bp: &str| {
        a.link_pads(Some(ap), b, Some(bp))
            .map_err(|e| format!("link {}.{ap} -> {}.{bp}: {e}", a.name(), b.name()))
    };
    link(asrc.upcast_ref(), "src", &tbin, "sink_audio")?;
    link(&vsrc, "src", &vcaps, "sink")?;
    link(&vcaps, "src", &tbin, "sink_video")?;
    link(&tbin, "src_audio", &asink, "sink")?;
    link(&tbin, "src_video", &extractor, "sink")?;
    link(&extractor, "src", &vsink, "sink")?;
    gst::Element::link_many([&ccconv, &cc608, &tojson, textsink.upcast_ref()])
        .map_err(|e| format!("link the caption branch: {e}"))?;
    // ccextractor's caption pad appears with the first caption meta.
    let conv_sink = ccconv.static_pad("sink").ok_or("ccconverter has no sink")?;
    extractor.connect_pad_added(move |_, pad| {
        if pad.name() == "caption"
            && let Err(e) = pad.link(&conv_sink)
        {
            eprintln!("cannot link ccextractor's caption pad: {e:?}");
        }
    });

    // Video buffers that carry caption data, counted on transcriberbin's video output.
    let cc_buffers = Arc::new(AtomicUsize::new(0));
    let counter = cc_buffers.clone();
    // The printable CEA-608 characters on those buffers.
    let raw608: Arc<Mutex<String>> = Arc::default();
    let chars = raw608.clone();
    tbin.static_pad("src_video")
        .ok_or("transcriberbin has no src_video")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                let mut any = false;
                for m in buffer.iter_meta::<gst_video::VideoCaptionMeta>() {
                    any |= !m.data().is_empty();
                    if let Ok(mut c) = chars.lock() {
                        c.push_str(&printable_608(m.caption_type(), m.data()));
                    }
                }
                if any {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });
    // What lalm-interact hands transcriberbin, and when (running time at arrival), for the
    // report when captions are missing.
    let cues: Arc<Mutex<Vec<String>>> = Arc::default();
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let span_log = spans.clone();
    let log = cues.clone();
    interact
        .static_pad("src")
        .ok_or("lalm-interact has no src pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(buffer) = info.buffer() {
                let now = pad
                    .parent_element()
                    .and_then(|e| Some(e.clock()?.time()?.saturating_sub(e.base_time()?)));
                let text = buffer
                    .map_readable()
                    .map(|m| String::from_utf8_lossy(&m).into_owned())
                    .unwrap_or_default();
                if let Ok(mut s) = span_log.lock() {
                    s.push((buffer.pts(), buffer.duration()));
                }
                if let Ok(mut l) = log.lock() {
                    l.push(format!(
                        "pts {} dur {} at {}: {text:?}",
                        buffer.pts().display(),
                        buffer.duration().display(),
                        now.display()
                    ));
                }
            }
            gst::PadProbeReturn::Ok
        });
    let captions: Arc<Texts> = Arc::default();
    let store = captions.clone();
    textsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    let text = buffer
                        .map_readable()
                        .map(|m| String::from_utf8_lossy(&m).into_owned())
                        .unwrap_or_default();
                    if let Ok(mut c) = store.lock() {
                        c.push((buffer.pts(), text));
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    let bus = pipeline.bus().ok_or("pipeline without bus")?;
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let why = bus
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => {
                    Some(format!("{} ({:?})", err.error(), err.debug()))
                }
                _ => None,
            })
            .unwrap_or_default();
        let _ = pipeline.set_state(gst::State::Null);
        return Err(format!("cannot start the pipeline: {e}: {why}"));
    }
    let progress = Arc::new(Progress {
        stop: AtomicBool::new(false),
        spoken: AtomicBool::new(false),
        speech_at: AtomicU64::new(u64::MAX),
    });
    let feeder = {
        let pipeline = pipeline.clone();
        let progress = progress.clone();
        let asrc = asrc.clone();
        let interact = interact.clone();
        std::thread::spawn(move || feed(&pipeline, &asrc, &interact, &audio, rate, &progress))
    };

    let started = Instant::now();
    let mut transcripts = Vec::new();
    let mut seen = Seen::default();
    let mut outcome: Res<()> = Err("the captions were not complete in time".into());
    while started.elapsed() < DEADLINE {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    outcome = Err(format!(
                        "error from {:?}: {} ({:?})",
                        msg.src().map(|s| s.path_string()),
                        e.error(),
                        e.debug()
                    ));
                    break;
                }
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure()
                        && s.name() == "lalm-transcript"
                    {
                        transcripts.push(s.to_string());
                        if s.get::<bool>("final").unwrap_or(false) {
                            seen.finals.push(Final {
                                start: s.get::<u64>("start").unwrap_or(0),
                                end: s.get::<u64>("end").unwrap_or(0),
                                speaker: s.get::<String>("speaker").unwrap_or_default(),
                                text: s.get::<String>("text").unwrap_or_default(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        seen.spoken = progress.spoken.load(Ordering::Relaxed);
        seen.speech_at = progress.speech_at.load(Ordering::Relaxed);
        seen.captions = caption_text(&captions);
        seen.raw608 = raw608.lock().map(|c| c.clone()).unwrap_or_default();
        if done(&seen) {
            outcome = Ok(());
            break;
        }
    }
    progress.stop.store(true, Ordering::Relaxed);
    let fed = feeder
        .join()
        .map_err(|_| "the feeder panicked".to_string())?;
    let _ = pipeline.set_state(gst::State::Null);

    let cc = cc_buffers.load(Ordering::Relaxed);
    println!(
        "after {:.1} s: fed (silence before the speech, all) {fed:?} s, {cc} video buffers with caption data",
        started.elapsed().as_secs_f64()
    );
    println!("transcripts on the bus: {transcripts:#?}");
    println!("CEA-608 characters on the video: {:?}", seen.raw608);
    println!(
        "lalm-interact's text: {:#?}",
        cues.lock().map(|c| c.clone()).unwrap_or_default()
    );
    if let Ok(c) = captions.lock() {
        for (pts, t) in c.iter() {
            println!("caption at {}: {t:?}", pts.display());
        }
    }
    outcome.map_err(|e| {
        format!(
            "{e}: caption text {:?}, {cc} video buffers with caption data",
            seen.captions
        )
    })?;
    let language: String = interact.property("language-code");
    if language != "en" {
        return Err(format!(
            "transcriberbin's en-GB reached the ASR as {language:?}"
        ));
    }
    // Text items follow each other the way a transcriber's do: an item that starts before the
    // previous one ends would be captioned again on top of it.
    let spans = spans.lock().map(|s| s.clone()).unwrap_or_default();
    for pair in spans.windows(2) {
        let end = pair[0].0.zip(pair[0].1).map(|(p, d)| p + d);
        if let (Some(end), Some(next)) = (end, pair[1].0)
            && next < end
        {
            return Err(format!(
                "a text item starts at {next} before the previous one ends at {end}: the captions repeat it"
            ));
        }
    }
    if cc == 0 {
        return Err("captions came out but no video buffer carried caption meta".into());
    }
    Ok(seen)
}

/// Between the feeder and the run: stop feeding; the speech has been fed; the running time (ns)
/// at which it started, u64::MAX until then.
struct Progress {
    stop: AtomicBool,
    spoken: AtomicBool,
    speech_at: AtomicU64,
}

/// Pushes CHUNK buffers at real pace, each when its last sample has been "captured" (its running
/// time plus its length): silence until `transcriber` plays (transcriberbin starts its
/// transcription branch only once video caps arrive, and audio before that is dropped), then
/// `audio`, then silence until `stop`, then EOS. Sets `spoken` after `audio`, `speech_at` (running time, ns) where it starts. Returns the seconds
/// fed before the speech and in all.
fn feed(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    transcriber: &gst::Element,
    audio: &[i16],
    rate: i32,
    progress: &Progress,
) -> Res<(f64, f64)> {
    let Progress {
        stop,
        spoken,
        speech_at,
    } = progress;
    let per = (rate as u64 * CHUNK.as_millis() as u64 / 1000) as usize;
    // The clock and base time are there once the pipeline plays.
    let (clock, base) = loop {
        if stop.load(Ordering::Relaxed) {
            return Ok((0.0, 0.0));
        }
        match (pipeline.clock(), pipeline.base_time()) {
            (Some(c), Some(b)) if pipeline.current_state() == gst::State::Playing => break (c, b),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let start = clock
        .time()
        .ok_or("clock without time")?
        .saturating_sub(base);
    let ns = |samples: usize| {
        gst::ClockTime::from_nseconds((samples as u64).saturating_mul(1_000_000_000) / rate as u64)
    };
    let silence = vec![0i16; per];
    let mut fed = 0usize;
    let mut speech_from = None;
    while !stop.load(Ordering::Relaxed) {
        if speech_from.is_none() && transcriber.current_state() == gst::State::Playing {
            speech_from = Some(fed);
            speech_at.store((start + ns(fed)).nseconds(), Ordering::Relaxed);
        }
        let chunk = match speech_from {
            Some(from) => match audio.get(fed - from..fed - from + per) {
                Some(c) => c,
                None => {
                    spoken.store(true, Ordering::Relaxed);
                    &silence
                }
            },
            None => &silence,
        };
        let pts = start + ns(fed);
        let duration = ns(per);
        let _ = clock.new_single_shot_id(base + pts + duration).wait();
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buffer.get_mut().ok_or("fresh buffer is shared")?;
            b.set_pts(pts);
            b.set_duration(duration);
        }
        if src.push_buffer(buffer).is_err() {
            break;
        }
        fed += per;
    }
    let _ = src.end_of_stream();
    let secs = |n: usize| n as f64 / rate as f64;
    Ok((secs(speech_from.unwrap_or(fed)), secs(fed)))
}

fn capsfilter(caps: gst::Caps) -> Res<gst::Element> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| format!("capsfilter: {e}"))
}

/// A fakesink synced to the clock that, like every sink here, needs no preroll buffer: in a
/// live pipeline the audio only starts once it plays.
fn clocked_sink() -> Res<gst::Element> {
    gst::ElementFactory::make("fakesink")
        .property("sync", true)
        .property("async", false)
        .build()
        .map_err(|e| format!("fakesink: {e}"))
}

fn caption_text(captions: &Texts) -> String {
    captions
        .lock()
        .map(|c| {
            c.iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
        .to_lowercase()
}

fn found_words(text: &str) -> Vec<&'static str> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_string)
        .collect();
    WORDS
        .iter()
        .copied()
        .filter(|w| words.iter().any(|x| x == w))
        .collect()
}

/// The printable characters of CEA-608 byte pairs (parity bit dropped; control code pairs,
/// whose first byte is 0x10..=0x1f, and padding skipped).
fn printable_608(kind: gst_video::VideoCaptionType, data: &[u8]) -> String {
    let pairs: Vec<[u8; 2]> = match kind {
        gst_video::VideoCaptionType::Cea608Raw => {
            data.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
        }
        // cc_data triplets: field-1 608 data has cc_valid and cc_type 0.
        gst_video::VideoCaptionType::Cea708Raw => data
            .chunks_exact(3)
            .filter(|t| t[0] & 0x07 == 0x04)
            .map(|t| [t[1], t[2]])
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .iter()
        .map(|p| [p[0] & 0x7f, p[1] & 0x7f])
        .filter(|p| !(0x10..=0x1f).contains(&p[0]))
        .flat_map(|p| p.into_iter().filter(|b| *b >= 0x20).map(char::from))
        .collect()
}
