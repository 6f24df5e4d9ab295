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

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gst::prelude::*;

type Res<T> = Result<T, Box<dyn Error>>;

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

const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-us+f3",
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
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Res<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}").into())
        };
        let number = |v: String| -> Res<u32> {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: expected a positive integer, got {v:?}").into())
        };
        match name.as_str() {
            "--minutes" => args.minutes = number(value()?)?,
            "--threads" => args.threads = Some(number(value()?)?),
            "--chunk-ms" => args.chunk_ms = Some(number(value()?)?),
            "--input" => args.input = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}").into()),
        }
    }
    Ok(Some(args))
}

#[path = "../bin_rng.rs"]
mod bin_rng;
use bin_rng::Lcg;

fn run_tool(cmd: &mut Command) -> Res<()> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e} (is it installed?)", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Seconds of audio in a PCM WAV file, from its fmt and data chunks.
fn wav_seconds(path: &Path) -> Res<f64> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bad = || format!("{} is not a PCM WAV file", path.display());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad().into());
    }
    let u32_at = |i: usize| -> Option<u32> {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = 12;
    let mut byte_rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(pos + 4).ok_or_else(bad)? as usize;
        if id == b"fmt " {
            byte_rate = u32_at(pos + 8 + 8);
        } else if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0).ok_or_else(bad)?;
            let len = len.min(bytes.len() - pos - 8);
            return Ok(len as f64 / f64::from(rate));
        }
        pos += 8 + len + (len & 1);
    }
    Err(bad().into())
}

fn cache_dir() -> Res<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("lalm").join("bench"))
}

/// The cached recording for these parameters, made first if missing.
fn recording(minutes: u32) -> Res<PathBuf> {
    let dir = cache_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(format!(
        "speech-{minutes}min-{RATE}hz-v{RECORDING_VERSION}.wav"
    ));
    if out.is_file() {
        eprintln!("using cached recording {}", out.display());
        return Ok(out);
    }
    eprintln!(
        "generating a {minutes}-minute recording in {} ...",
        out.display()
    );
    let work = dir.join(format!("tmp-{minutes}min-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = generate(minutes, &work, &out);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| out)
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
        run_tool(
            Command::new("sox")
                .args([
                    "-n",
                    "-r",
                    "16000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                ])
                .arg(&sil)
                .args(["trim", "0", &format!("{silence:.3}")]),
        )?;
        total += silence;
        parts.push(sil);

        let text = SENTENCES[i % SENTENCES.len()];
        let voice = VOICES[rng.range(0, VOICES.len() as u32 - 1) as usize];
        let speed = rng.range(150, 180);
        let raw = work.join(format!("r{i:05}.wav"));
        run_tool(
            Command::new("espeak-ng")
                .args(["-v", voice, "-s", &speed.to_string(), "-w"])
                .arg(&raw)
                .arg(text),
        )?;
        let seg = work.join(format!("t{i:05}.wav"));
        run_tool(
            Command::new("sox")
                .arg(&raw)
                .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
                .arg(&seg),
        )?;
        let _ = std::fs::remove_file(&raw);
        total += wav_seconds(&seg)?;
        parts.push(seg);

        silence = f64::from(rng.range(800, 3000)) / 1000.0;
        i += 1;
    }
    // Trailing silence so the last utterance ends inside the recording.
    let tail = work.join("tail.wav");
    run_tool(
        Command::new("sox")
            .args([
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
            ])
            .arg(&tail)
            .args(["trim", "0", "2"]),
    )?;
    parts.push(tail);

    let partial = work.join("all.wav");
    run_tool(Command::new("sox").args(&parts).arg(&partial))?;
    std::fs::rename(&partial, out)
        .map_err(|e| format!("cannot move the recording to {}: {e}", out.display()))?;
    eprintln!("{i} utterances, {:.1} s", wav_seconds(out)?);
    Ok(())
}

fn vm_hwm_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> std::process::ExitCode {
    match bench() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lalm-bench: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
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
    let location = path
        .to_str()
        .ok_or_else(|| format!("{}: path is not UTF-8", path.display()))?;

    gst::init()?;
    // Register the elements this binary was built with, so it measures this code even when an
    // older copy of the plugin is installed.
    gstlalm::plugin_register_static()
        .map_err(|e| format!("cannot register the lalm plugin: {e}"))?;

    let description = format!(
        "filesrc location=\"{}\" ! {parser} ! lalm-interact name=loop mode=turn-end ! fakesink sync=false",
        location.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("cannot build the pipeline `{description}`: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the pipeline description did not give a pipeline")?;
    let lalm = pipeline
        .by_name("loop")
        .ok_or("no lalm-interact element named `loop` in the pipeline")?;
    if let Some(t) = args.threads {
        lalm.set_property("threads", t);
    }
    if let Some(c) = args.chunk_ms {
        lalm.set_property("chunk-ms", c);
    }
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;

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
            vm_hwm_mib().map_or_else(|| "-".into(), |m| format!("{m:.1}")),
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
                return Err(format!(
                    "pipeline error from {}: {} ({})",
                    e.src()
                        .map_or_else(|| "?".into(), |s| s.path_string().to_string()),
                    e.error(),
                    e.debug().map_or_else(String::new, |d| d.to_string())
                )
                .into());
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
            return format!(
                ": {} ({})",
                e.error(),
                e.debug().map_or_else(String::new, |d| d.to_string())
            );
        }
    }
    String::new()
}
