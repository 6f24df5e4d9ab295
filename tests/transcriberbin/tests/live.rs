//! lalm-interact as gst-plugins-rs' `transcriberbin` `transcriber`, live: espeak-ng speech fed at
//! real pace through a live appsrc, a live videotestsrc, and the CEA-608 captions that come out
//! on the video are turned back into text (ccextractor ! cea608tojson) and must hold the words
//! that were spoken. Runs the real Whisper model (whisper-base) on the CPU.
//!
//! A plain `main` (harness = false): the GStreamer environment is set before any thread starts.
//! `LALM_PLUGIN_DIR` names the folder with the libgstlalm.so under test (default: the
//! repository's target/release).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// How long the whole run may take before it counts as "no captions".
const DEADLINE: Duration = Duration::from_secs(60);
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
        .and_then(|()| live_captions());
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
    let _ = std::fs::remove_file(&wav);
    if samples.is_empty() || rate == 0 {
        return Err("espeak-ng produced no audio".into());
    }
    Ok((samples, rate))
}

fn live_captions() -> Res<()> {
    let (first, rate) = speech(SENTENCES[0])?;
    let (second, _) = speech(SENTENCES[1])?;
    let rate_u = rate as usize;
    // 0.5 s silence, a sentence, 1.5 s silence, the other, then silence until the captions are
    // in (the feeder keeps the source live the way a microphone would).
    let mut audio = vec![0i16; rate_u / 2];
    audio.extend_from_slice(&first);
    audio.extend(std::iter::repeat_n(0i16, rate_u * 3 / 2));
    audio.extend_from_slice(&second);
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
    // The printable CEA-608 characters on those buffers, for the report.
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
    let stop = Arc::new(AtomicBool::new(false));
    let spoken = Arc::new(AtomicBool::new(false));
    let feeder = {
        let pipeline = pipeline.clone();
        let stop = stop.clone();
        let spoken = spoken.clone();
        let asrc = asrc.clone();
        let interact = interact.clone();
        std::thread::spawn(move || feed(&pipeline, &asrc, &interact, &audio, rate, &stop, &spoken))
    };

    let started = Instant::now();
    let mut transcripts = Vec::new();
    let mut outcome: Res<()> = Err("no caption text came out in time".into());
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
                    }
                }
                _ => {}
            }
        }
        let text = caption_text(&captions);
        let found = found_words(&text);
        // Both sentences fed, and their words back from the captions.
        if spoken.load(Ordering::Relaxed) && found.len() >= MIN_WORDS {
            outcome = Ok(());
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let fed = feeder
        .join()
        .map_err(|_| "the feeder panicked".to_string())?;
    let _ = pipeline.set_state(gst::State::Null);

    let text = caption_text(&captions);
    let cc = cc_buffers.load(Ordering::Relaxed);
    println!(
        "after {:.1} s: fed (silence before the speech, all) {fed:?} s, {cc} video buffers with caption data",
        started.elapsed().as_secs_f64()
    );
    println!("transcripts on the bus: {transcripts:#?}");
    println!(
        "CEA-608 characters on the video: {:?}",
        raw608.lock().map(|c| c.clone()).unwrap_or_default()
    );
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
            "{e}: words found {:?} in caption text {text:?}, {cc} video buffers with caption data",
            found_words(&text)
        )
    })?;
    let language: String = interact.property("language-code");
    if language != "en" {
        return Err(format!(
            "transcriberbin's en-GB reached Whisper as {language:?}"
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
    println!("caption words: {:?}", found_words(&text));
    Ok(())
}

/// Pushes CHUNK buffers at real pace, each when its last sample has been "captured" (its running
/// time plus its length): silence until `transcriber` plays (transcriberbin starts its
/// transcription branch only once video caps arrive, and audio before that is dropped), then
/// `audio`, then silence until `stop`, then EOS. Sets `spoken` after `audio`. Returns the seconds
/// fed before the speech and in all.
fn feed(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    transcriber: &gst::Element,
    audio: &[i16],
    rate: i32,
    stop: &AtomicBool,
    spoken: &AtomicBool,
) -> Res<(f64, f64)> {
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
