//! lalm-bench: runs the whole perceive → decide → respond loop (`lalm-interact`, in
//! `mode=turn-end`: the VAD and sound-event tagger loop without ASR, which lalm-asr-bench
//! measures; lalm-alert-bench compares it with and without the tagger) over a long
//! recording as fast as it goes and prints wall time, real-time factor, per-chunk model time,
//! responses and peak memory.
//!
//! Without `--input` it makes (once, then caches) a recording of espeak-ng sentences separated
//! by silences, at 16 kHz mono S16, with the espeak-ng and sox command-line tools.
//!
//! Usage: lalm-bench [--minutes N] [--threads N] [--chunk-ms N] [--input PATH]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gst::prelude::*;
use lalm_tools::cli::Flags;
use lalm_tools::pipeline::{error_text, init, launch_loop, quote};
use lalm_tools::proc::{peak_rss_mib, run_tool};
use lalm_tools::rng::Lcg;
use lalm_tools::speech::{cached, say};
use lalm_tools::{Res, wav};

/// Bump when the way the recording is made changes, so stale cached files are not reused.
const RECORDING_VERSION: u32 = 1;
const RATE: u32 = 16000;

const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Could you please turn on the lights in the kitchen?",
    "I think the meeting has been moved to Thursday afternoon.",
    "What is the weather going to be like tomorrow morning?",
    "Remind me to call my sister when I get home.",
    "The train to Edinburgh leaves from platform nine.",
    "Please set a timer for twelve minutes.",
    "She sells sea shells by the sea shore.",
    "How many kilometres is it from here to the airport?",
    "Play some quiet music while I read.",
    "The library closes at eight o'clock on weekdays.",
    "Can you tell me a short story about a lighthouse?",
    "We should buy more coffee, bread and a dozen eggs.",
    "It has been raining for three days without a break.",
    "Turn the volume down a little, it is too loud.",
    "My favourite colour used to be green, now it is blue.",
    "The concert was cancelled because the singer was ill.",
    "Send a message to Alex saying I will be late.",
    "Mathematics is the language in which the universe is written.",
    "Good night, and thank you for all your help today.",
];

struct Args {
    minutes: u32,
    threads: Option<u32>,
    chunk_ms: Option<u32>,
    input: Option<PathBuf>,
}

const USAGE: &str = concat!(
    "usage: lalm-bench [--minutes N] [--threads N] [--chunk-ms N] [--input PATH]\n",
    "  --minutes N    length of the generated recording in minutes (default 10)\n",
    "  --threads N    ONNX Runtime intra-op threads (lalm-interact `threads`, default 1)\n",
    "  --chunk-ms N   chunk length in milliseconds (lalm-interact `chunk-ms`)\n",
    "  --input PATH   use this audio file (any format decodebin reads) instead of generating one",
);

fn parse_args() -> Res<Option<Args>> {
    let mut args = Args {
        minutes: 10,
        threads: None,
        chunk_ms: None,
        input: None,
    };
    let mut flags = Flags::new(std::env::args().skip(1), USAGE);
    while let Some(name) = flags.next_flag() {
        match name.as_str() {
            "--minutes" => args.minutes = flags.positive()?,
            "--threads" => args.threads = Some(flags.positive()?),
            "--chunk-ms" => args.chunk_ms = Some(flags.positive()?),
            "--input" => args.input = Some(PathBuf::from(flags.value()?)),
            _ => return Err(flags.unknown()),
        }
    }
    Ok((!flags.asked_for_help()).then_some(args))
}

/// Seconds of audio in a WAV file the generator wrote (16 kHz mono S16).
fn wav_seconds(path: &Path) -> Res<f64> {
    Ok(wav::read_s16_mono(path, RATE)?.len() as f64 / f64::from(RATE))
}

/// `seconds` of digital silence as a WAV file the recording is joined from.
fn write_silence(path: &Path, seconds: f64) -> Res<()> {
    let n = (seconds * f64::from(RATE)).round() as usize;
    wav::write_s16_mono(path, RATE, &vec![0; n])
}

/// The cached recording for these parameters, made first if missing.
fn recording(minutes: u32) -> Res<PathBuf> {
    let name = format!("speech-{minutes}min-{RATE}hz-v{RECORDING_VERSION}.wav");
    let what = format!("a {minutes}-minute recording");
    let mut files = cached(&[name], &what, |work, out| generate(minutes, work, &out[0]))?;
    files.pop().ok_or_else(|| "no recording".into())
}

fn generate(minutes: u32, work: &Path, out: &Path) -> Res<()> {
    let target = f64::from(minutes) * 60.0;
    let mut rng = Lcg(0x5eed_1a1b);
    let mut parts: Vec<PathBuf> = Vec::new();
    let mut total = 0.0;
    let mut i = 0usize;
    // Leading silence so the stream does not start mid-word.
    let mut silence = 1.0;
    while total < target {
        let sil = work.join(format!("s{i:05}.wav"));
        write_silence(&sil, silence)?;
        total += silence;
        parts.push(sil);

        let text = SENTENCES[i % SENTENCES.len()];
        let seg = work.join(format!("t{i:05}.wav"));
        say(text, &mut rng, &seg)?;
        total += wav_seconds(&seg)?;
        parts.push(seg);

        silence = f64::from(rng.range(800, 3000)) / 1000.0;
        i += 1;
    }
    // Trailing silence so the last utterance ends inside the recording.
    let tail = work.join("tail.wav");
    write_silence(&tail, 2.0)?;
    parts.push(tail);

    let partial = work.join("all.wav");
    run_tool(Command::new("sox").args(&parts).arg(&partial))?;
    std::fs::rename(&partial, out)
        .map_err(|e| format!("cannot move the recording to {}: {e}", out.display()))?;
    eprintln!("{i} utterances, {:.1} s", wav_seconds(out)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    lalm_tools::exit("lalm-bench", bench())
}

fn bench() -> Res<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");

    let (path, parser) = match &args.input {
        Some(p) => {
            if !p.is_file() {
                return Err(format!("--input {}: no such file", p.display()).into());
            }
            (p.clone(), "decodebin")
        }
        None => (recording(args.minutes)?, "wavparse"),
    };
    let path = path.canonicalize().unwrap_or(path);

    init()?;
    let (pipeline, lalm, bus) = launch_loop(&format!(
        "filesrc location={} ! {parser} ! lalm-interact name=loop mode=turn-end ! fakesink sync=false",
        quote(&path)?
    ))?;
    if let Some(t) = args.threads {
        lalm.set_property("threads", t);
    }
    if let Some(c) = args.chunk_ms {
        lalm.set_property("chunk-ms", c);
    }
    let started = Instant::now();
    let outcome = run(&pipeline, &bus);
    let wall = started.elapsed();

    // Everything is read before NULL: the elements keep their figures until then.
    let duration = pipeline
        .query_duration::<gst::ClockTime>()
        .or_else(|| pipeline.query_position::<gst::ClockTime>());
    let stats = lalm.property::<Option<gst::Structure>>("stats");
    let threads = lalm.property::<u32>("threads");
    let chunk_ms = lalm.property::<u32>("chunk-ms");
    let provider = lalm
        .property::<Option<String>>("active-execution-provider")
        .unwrap_or_else(|| "-".into());
    let _ = pipeline.set_state(gst::State::Null);
    let responses = outcome?;

    let audio_s = duration.map(|d| d.nseconds() as f64 / 1e9);
    let wall_s = wall.as_secs_f64();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let field = |name: &str| -> String {
        stats
            .as_ref()
            .and_then(|s| s.get::<u64>(name).ok())
            .map_or_else(|| "-".into(), |v| v.to_string())
    };

    let rows: Vec<(&str, String)> = vec![
        ("command", command_line),
        ("input", path.display().to_string()),
        ("cpus", cpus.to_string()),
        ("ort threads", threads.to_string()),
        ("execution provider", provider),
        ("chunk-ms", chunk_ms.to_string()),
        (
            "audio duration (s)",
            audio_s.map_or_else(|| "-".into(), |a| format!("{a:.1}")),
        ),
        ("wall time (s)", format!("{wall_s:.2}")),
        (
            "real-time factor",
            audio_s
                .filter(|a| *a > 0.0)
                .map_or_else(|| "-".into(), |a| format!("{:.4}", wall_s / a)),
        ),
        ("chunks", field("chunks")),
        ("windows", field("windows")),
        ("dropped", field("dropped")),
        ("perceive mean (us/chunk)", field("mean-us")),
        ("perceive p50 (us/chunk)", field("p50-us")),
        ("perceive p99 (us/chunk)", field("p99-us")),
        ("perceive max (us/chunk)", field("max-us")),
        ("tagger windows", field("tag-frames")),
        ("tagger mean (us/chunk)", field("tagger-mean-us")),
        ("lalm-response messages", responses.to_string()),
        (
            "peak RSS (MiB)",
            peak_rss_mib().map_or_else(|| "-".into(), |m| format!("{m:.1}")),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    Ok(())
}

/// Plays the pipeline to EOS; returns the number of lalm-response messages.
fn run(pipeline: &gst::Pipeline, bus: &gst::Bus) -> Res<u64> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}{}", bus_error(bus)))?;
    let mut responses = 0u64;
    loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(3600)) else {
            return Err("no message on the bus for an hour; giving up".into());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(responses),
            gst::MessageView::Error(e) => {
                return Err(format!("pipeline error from {}", error_text(e)).into());
            }
            gst::MessageView::Element(el)
                if el.structure().is_some_and(|s| s.name() == "lalm-response") =>
            {
                responses += 1;
            }
            _ => {}
        }
    }
}

/// The first error message waiting on the bus, for a failed state change.
fn bus_error(bus: &gst::Bus) -> String {
    let wait = Duration::from_millis(500);
    let timeout = gst::ClockTime::from_nseconds(wait.as_nanos() as u64);
    while let Some(msg) = bus.timed_pop_filtered(timeout, &[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return format!(": {}", error_text(e));
        }
    }
    String::new()
}
