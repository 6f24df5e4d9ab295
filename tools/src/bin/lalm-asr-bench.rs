//! lalm-asr-bench: live subtitles of `lalm-interact` measured side by side with faster-whisper
//! base (int8, 2 threads, per utterance) on the same speech, in one run.
//!
//! The speech is real by default: the Asterisk English prompts (studio recordings of one
//! speaker), gathered by `scripts/fetch-speech.sh SECONDS` from a pinned Debian package into
//! one WAV with pauses, with upstream's transcripts; each prompt's truth span is tightened to
//! its speech (first/last 10 ms frame within 40 dB of its loudest). `--speech espeak` makes
//! (once, cached under `~/.cache/lalm/bench`) a recording of espeak-ng sentences instead
//! (48 distinct, several voices, 1.0–2.5 s silences), for mechanics.
//!
//! 1. Throughput (in a child process, so its peak memory is its own): the file through
//!    `lalm-interact` as fast as it goes: real-time factor, WER of the final cues, VmHWM.
//! 2. Baseline (child process): `models/whisper/bench_faster_whisper.py` in `.venv-proof`.
//! 3. Live (this process): the file paced in real time, 20 ms buffers each released at its end
//!    time like a capture device; every `lalm-transcript` message is stamped with the
//!    pipeline's running time when it is posted. Latency end of speech → final cue and speech
//!    start → first partial cue, per sentence, p50/p95.
//!
//! Usage: lalm-asr-bench [--speech real|long|espeak] [--seconds N] [--minutes N] [--asr-threads N]
//!                       [--threads N] [--set NAME=VALUE]... [--no-live]
//!                       [--no-baseline] [--venv DIR] [--ct2 DIR]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use lalm_tools::cli::Flags;
use lalm_tools::pipeline::{error_text, init, launch_loop, quote};
use lalm_tools::proc::{cpu_seconds, peak_rss_mib};
use lalm_tools::rng::Lcg;
use lalm_tools::speech::{cached, say};
use lalm_tools::{Res, wav};

/// Bump when the way the recording is made changes, so stale cached files are not reused.
const RECORDING_VERSION: u32 = 1;
const RATE: u32 = 16000;
/// Marks the child's result line on its stdout.
const CHILD_TAG: &str = "LALM-ASR-BENCH-CHILD ";
/// Buffer period of the live run (a capture device's period).
const LIVE_PERIOD_MS: u64 = 20;

const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Could you please turn on the lights in the kitchen?",
    "I think the meeting has been moved to Thursday afternoon.",
    "What is the weather going to be like tomorrow morning?",
    "Remind me to call my sister when I get home.",
    "The train to the city leaves from the last platform.",
    "Please set a timer for the pasta.",
    "She sells sea shells by the sea shore.",
    "How far is it from here to the airport?",
    "Play some quiet music while I read.",
    "The library closes early on weekdays.",
    "Can you tell me a short story about a lighthouse?",
    "We should buy more coffee, bread and a box of eggs.",
    "It has been raining all week without a break.",
    "Turn the volume down a little, it is too loud.",
    "The concert was cancelled because the singer was ill.",
    "Send a message to Alex saying I will be late.",
    "Good night, and thank you for all your help today.",
    "The children played in the garden until it got dark.",
    "My brother is learning to play the piano.",
    "Please close the window before you leave the house.",
    "The doctor said I should drink more water.",
    "We walked along the river and watched the boats.",
    "Where did you put the keys to the car?",
    "The museum has a new exhibition about ancient Egypt.",
    "I would like a cup of tea with milk, please.",
    "The old bridge was built more than a century ago.",
    "Our flight was delayed because of the storm.",
    "He forgot his umbrella on the bus again.",
    "The garden is full of roses and tall sunflowers.",
    "Let us meet in front of the station at noon.",
    "The cat is sleeping on the warm windowsill.",
    "Do you know a good place to eat near the office?",
    "The teacher asked the students to open their books.",
    "Fresh vegetables are sold at the market every Saturday.",
    "I need to finish this report before the weekend.",
    "The mountain road is closed because of heavy snow.",
    "Could you help me carry these boxes upstairs?",
    "The baby finally fell asleep after a long day.",
    "We are planning a trip to the seaside next summer.",
    "The phone rang twice and then stopped.",
    "Please remember to water the plants on Monday.",
    "The shop on the corner sells the best bread in town.",
    "My grandmother tells wonderful stories about her childhood.",
    "The engineer explained how the machine works.",
    "It is important to get enough sleep every night.",
    "The dog barked loudly when the postman arrived.",
    "Turn left at the next traffic light and park behind the bank.",
];

struct Args {
    /// Real recorded speech (the Asterisk prompts) rather than espeak-ng sentences.
    real: bool,
    /// The long Asterisk paragraphs (12-73 s, pauses inside) instead of the 2-12 s prompts.
    long: bool,
    /// Seconds of real speech to gather.
    seconds: u32,
    minutes: u32,
    /// lalm-interact properties to set, as name=value.
    props: Vec<(String, String)>,
    asr_threads: Option<u32>,
    threads: Option<u32>,
    live: bool,
    baseline: bool,
    venv: PathBuf,
    ct2: PathBuf,
    /// Internal: run the throughput pass on this WAV and print the result for the parent.
    child: Option<PathBuf>,
    /// A vocabulary file whose terms' recall is printed (its tab weights are ignored here).
    terms: Option<PathBuf>,
}

const USAGE: &str = concat!(
    "usage: lalm-asr-bench [--speech real|long|espeak] [--seconds N] [--minutes N]\n",
    "                      [--asr-threads N] [--threads N] [--set NAME=VALUE]... [--no-live]\n",
    "                      [--no-baseline] [--venv DIR] [--ct2 DIR]\n",
    "  --speech KIND    real: recorded studio speech, the Asterisk prompts (default);\n",
    "                   long: the Asterisk paragraphs of 12-73 s (pauses inside; 389 s in all);\n",
    "                   espeak: generated espeak-ng sentences\n",
    "  --seconds N      seconds of real speech (default 600; scripts/fetch-speech.sh N)\n",
    "  --minutes N      length of the generated espeak-ng recording in minutes (default 5)\n",
    "  --set NAME=VALUE a lalm-interact property for both lalm runs (repeatable)\n",
    "  --asr-threads N  ONNX Runtime threads of the Whisper model (lalm-interact `asr-threads`)\n",
    "  --threads N      ONNX Runtime threads of the VAD model (lalm-interact `threads`)\n",
    "  --no-live        skip the live-paced latency run (it takes as long as the recording)\n",
    "  --no-baseline    skip faster-whisper\n",
    "  --terms FILE     print how many of the times this vocabulary file's terms were said\n",
    "                   the final cues wrote them\n",
    "  --venv DIR       Python venv with faster-whisper (default <repo>/.venv-proof)\n",
    "  --ct2 DIR        CTranslate2 whisper-base folder (default ~/.cache/lalm/ct2/whisper-base)",
);

fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

fn home() -> Res<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| "HOME is not set".into())
}

fn parse_args() -> Res<Option<Args>> {
    let cache = match std::env::var_os("LALM_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => home()?.join(".cache").join("lalm"),
    };
    let mut args = Args {
        real: true,
        long: false,
        seconds: 600,
        minutes: 5,
        props: Vec::new(),
        asr_threads: None,
        threads: None,
        live: true,
        baseline: true,
        venv: repo_root().join(".venv-proof"),
        ct2: cache.join("ct2").join("whisper-base"),
        child: None,
        terms: None,
    };
    let mut flags = Flags::new(std::env::args().skip(1), USAGE);
    while let Some(name) = flags.next_flag() {
        match name.as_str() {
            "--minutes" => args.minutes = flags.positive()?,
            "--seconds" => args.seconds = flags.positive()?,
            "--speech" => {
                (args.real, args.long) = match flags.value()?.as_str() {
                    "real" => (true, false),
                    "long" => (true, true),
                    "espeak" => (false, false),
                    other => return Err(format!("--speech {other}: real, long or espeak").into()),
                }
            }
            "--set" => {
                let v = flags.value()?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--set {v}: expected NAME=VALUE"))?;
                args.props.push((k.to_string(), val.to_string()));
            }
            "--asr-threads" => args.asr_threads = Some(flags.positive()?),
            "--threads" => args.threads = Some(flags.positive()?),
            "--no-live" => args.live = false,
            "--no-baseline" => args.baseline = false,
            "--venv" => args.venv = PathBuf::from(flags.value()?),
            "--ct2" => args.ct2 = PathBuf::from(flags.value()?),
            "--throughput-child" => args.child = Some(PathBuf::from(flags.value()?)),
            "--terms" => args.terms = Some(PathBuf::from(flags.value()?)),
            _ => return Err(flags.unknown()),
        }
    }
    Ok((!flags.asked_for_help()).then_some(args))
}

/// One sentence of the recording: its text and its true speech span in seconds.
#[derive(Clone, Debug)]
struct Truth {
    start: f64,
    end: f64,
    text: String,
}

fn write_truth(path: &Path, truth: &[Truth]) -> Res<()> {
    let mut s = String::from("start_s\tend_s\ttext\n");
    for t in truth {
        s.push_str(&format!("{:.3}\t{:.3}\t{}\n", t.start, t.end, t.text));
    }
    std::fs::write(path, s).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

fn read_truth(path: &Path) -> Res<Vec<Truth>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "{}:{}: expected start<TAB>end<TAB>text",
                path.display(),
                i + 1
            )
        };
        let mut f = line.splitn(3, '\t');
        let start = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let end = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let text = f.next().ok_or_else(bad)?.to_string();
        out.push(Truth { start, end, text });
    }
    if out.is_empty() {
        return Err(format!("{}: no utterances", path.display()).into());
    }
    Ok(out)
}

/// First and last 10 ms frame (sample offsets, end exclusive) within 40 dB of the loudest frame.
fn speech_span(samples: &[i16]) -> Option<(usize, usize)> {
    const FRAME: usize = (RATE / 100) as usize;
    let energy: Vec<f64> = samples
        .chunks(FRAME)
        .map(|f| f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64)
        .collect();
    let peak = energy.iter().cloned().fold(0.0, f64::max);
    if peak <= 0.0 {
        return None;
    }
    let floor = peak * 1e-4; // -40 dB in energy
    let first = energy.iter().position(|&e| e >= floor)?;
    let last = energy.iter().rposition(|&e| e >= floor)?;
    Some((first * FRAME, ((last + 1) * FRAME).min(samples.len())))
}

/// The cached recording and truth file for these parameters, made first if missing.
fn recording(minutes: u32) -> Res<(PathBuf, PathBuf)> {
    let stem = format!("asr-speech-{minutes}min-{RATE}hz-v{RECORDING_VERSION}");
    let names = [format!("{stem}.wav"), format!("{stem}.truth.tsv")];
    let what = format!("a {minutes}-minute recording");
    let files = cached(&names, &what, |work, out| {
        generate(minutes, work, &out[0], &out[1])
    })?;
    match <[PathBuf; 2]>::try_from(files) {
        Ok([wav, tsv]) => Ok((wav, tsv)),
        Err(_) => Err("the recording's files are missing".into()),
    }
}

/// The real-speech recording (`scripts/fetch-speech.sh SECONDS`: Asterisk prompts with pauses)
/// and a truth TSV beside it whose spans are tightened to the speech in each prompt (the
/// prompt files carry some silence at their edges).
fn real_recording(seconds: u32, long: bool) -> Res<(PathBuf, PathBuf)> {
    let script = repo_root().join("scripts").join("fetch-speech.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(seconds.to_string())
        .args(long.then_some("long"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wav = PathBuf::from(
        stdout
            .lines()
            .last()
            .ok_or("fetch-speech.sh printed no path")?
            .trim(),
    );
    let json = wav.with_extension("json");
    let text = std::fs::read_to_string(&json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    let prompts: serde_json::Value = serde_json::from_str(&text)?;
    let samples = wav::read_s16_mono(&wav, RATE)?;
    let mut truth = Vec::new();
    for p in prompts.as_array().ok_or("the truth JSON is not a list")? {
        let (Some(start), Some(end), Some(text)) =
            (p["start"].as_f64(), p["end"].as_f64(), p["text"].as_str())
        else {
            return Err(format!("{}: an entry without start, end or text", json.display()).into());
        };
        let a = ((start * f64::from(RATE)) as usize).min(samples.len());
        let b = ((end * f64::from(RATE)) as usize).clamp(a, samples.len());
        if let Some((s, e)) = speech_span(&samples[a..b]) {
            truth.push(Truth {
                start: (a + s) as f64 / f64::from(RATE),
                end: (a + e) as f64 / f64::from(RATE),
                text: text.to_string(),
            });
        }
    }
    let tsv = wav.with_extension("truth.tsv");
    write_truth(&tsv, &truth)?;
    Ok((wav, tsv))
}

fn generate(minutes: u32, work: &Path, wav: &Path, tsv: &Path) -> Res<()> {
    let target = (f64::from(minutes) * 60.0 * f64::from(RATE)) as usize;
    let mut rng = Lcg(0xa5b_5eed);
    let mut audio: Vec<i16> = vec![0; RATE as usize]; // 1 s of leading silence
    let mut truth = Vec::new();
    let mut i = 0usize;
    while audio.len() < target {
        let text = SENTENCES[i % SENTENCES.len()];
        let seg = work.join("seg.wav");
        let voice = say(text, &mut rng, &seg)?;
        let samples = wav::read_s16_mono(&seg, RATE)?;
        let (s, e) = speech_span(&samples)
            .ok_or_else(|| format!("espeak-ng gave silence for {text:?} ({voice})"))?;
        let offset = audio.len();
        truth.push(Truth {
            start: (offset + s) as f64 / f64::from(RATE),
            end: (offset + e) as f64 / f64::from(RATE),
            text: text.to_string(),
        });
        audio.extend_from_slice(&samples);
        let gap = rng.range(1000, 2500) as usize * RATE as usize / 1000;
        audio.resize(audio.len() + gap, 0);
        i += 1;
    }
    audio.resize(audio.len() + 2 * RATE as usize, 0); // trailing silence
    let part = work.join("all.wav");
    wav::write_s16_mono(&part, RATE, &audio)?;
    write_truth(tsv, &truth)?;
    std::fs::rename(&part, wav)
        .map_err(|e| format!("cannot move the recording to {}: {e}", wav.display()))?;
    eprintln!(
        "{i} utterances ({} distinct sentences), {:.1} s",
        SENTENCES.len().min(i),
        audio.len() as f64 / f64::from(RATE)
    );
    Ok(())
}

/// Hesitations a transcript may or may not write down; neither side is scored on them.
const FILLERS: &[&str] = &[
    "um", "uh", "uhm", "umm", "er", "erm", "ah", "hmm", "mm", "mhm",
];

/// The normalizer both engines are scored with: lowercase words, punctuation stripped
/// (apostrophes dropped, other marks split words), numbers written as words ("7" and "seven"
/// are the same word), fillers dropped.
fn words(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .filter(|c| *c != '\'' && *c != '’')
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let mut out = Vec::new();
    for w in cleaned.split_whitespace() {
        if FILLERS.contains(&w) {
            continue;
        }
        match w.parse::<u64>() {
            Ok(n) if n < 1_000_000 => number_words(n, &mut out),
            _ => out.push(w.to_string()),
        }
    }
    out
}

/// English words of `n` (below a million), without "and": 105 is "one hundred five".
fn number_words(n: u64, out: &mut Vec<String>) {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if n >= 1000 {
        number_words(n / 1000, out);
        out.push("thousand".into());
        if !n.is_multiple_of(1000) {
            number_words(n % 1000, out);
        }
    } else if n >= 100 {
        out.push(ONES[(n / 100) as usize].into());
        out.push("hundred".into());
        if !n.is_multiple_of(100) {
            number_words(n % 100, out);
        }
    } else if n >= 20 {
        out.push(TENS[(n / 10) as usize].into());
        if !n.is_multiple_of(10) {
            out.push(ONES[(n % 10) as usize].into());
        }
    } else {
        out.push(ONES[n as usize].into());
    }
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1)
                .min(cur[j] + 1)
                .min(prev[j] + usize::from(x != y));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// How many of the times a vocabulary's terms were said the final cues wrote them (each
/// term's occurrences counted in the whole truth and the whole transcript, both normalized
/// as for the WER), and how many times they were written beyond that.
fn print_term_recall(path: &Path, truth: &[Truth], hyps: &[String]) -> Res<()> {
    let vocab = soundflow::respond::asr::vocabulary::Vocabulary::load(path)?;
    let r: Vec<String> = truth.iter().flat_map(|t| words(&t.text)).collect();
    let h: Vec<String> = hyps.iter().flat_map(|t| words(t)).collect();
    let count = |hay: &[String], needle: &[String]| {
        if needle.is_empty() || hay.len() < needle.len() {
            return 0;
        }
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    };
    let (mut said, mut found, mut extra) = (0, 0, 0);
    let mut rows = Vec::new();
    for (term, _) in &vocab.terms {
        let t = words(term);
        let (a, b) = (count(&r, &t), count(&h, &t));
        said += a;
        found += a.min(b);
        extra += b.saturating_sub(a);
        if a > 0 || b > 0 {
            rows.push(format!("{term} {}/{a}", a.min(b)));
        }
    }
    println!(
        "term recall         {found} of {said} ({:.1} %), {extra} written beyond what was said; {}",
        100.0 * found as f64 / said.max(1) as f64,
        rows.join(", ")
    );
    Ok(())
}

/// WER in percent of the concatenated hypotheses against the concatenated truth.
fn wer(truth: &[Truth], hyps: &[String]) -> (f64, usize) {
    let r: Vec<String> = truth.iter().flat_map(|t| words(&t.text)).collect();
    let h: Vec<String> = hyps.iter().flat_map(|t| words(t)).collect();
    (
        100.0 * edit_distance(&r, &h) as f64 / r.len().max(1) as f64,
        r.len(),
    )
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let k = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[k])
}

fn main() -> std::process::ExitCode {
    lalm_tools::exit("lalm-asr-bench", bench())
}

/// A `lalm-transcript` message: stream times in seconds and when it was posted.
#[derive(Clone, Debug)]
struct Cue {
    start: f64,
    end: f64,
    text: String,
    is_final: bool,
    /// Pipeline running time when the message was posted, seconds (live run only).
    posted: f64,
}

fn cue_of(s: &gst::StructureRef, posted: f64) -> Option<Cue> {
    Some(Cue {
        start: s.get::<u64>("start").ok()? as f64 / 1e9,
        end: s.get::<u64>("end").ok()? as f64 / 1e9,
        text: s.get::<String>("text").ok()?,
        is_final: s.get::<bool>("final").ok()?,
        posted,
    })
}

struct Loop {
    pipeline: gst::Pipeline,
    lalm: gst::Element,
    cues: Arc<Mutex<Vec<Cue>>>,
}

/// Builds the pipeline; the bus sync handler stamps every lalm-transcript message with the
/// pipeline's running time in the thread that posts it.
fn build(args: &Args, wav: &Path, live: bool) -> Res<Loop> {
    init()?;
    let pacing = if live {
        // 20 ms buffers, each released when its last sample would have been captured.
        format!(
            "audiobuffersplit output-buffer-duration=1/{} ! identity sync=true ts-offset={} ! ",
            1000 / LIVE_PERIOD_MS,
            LIVE_PERIOD_MS * 1_000_000
        )
    } else {
        String::new()
    };
    let (pipeline, lalm, bus) = launch_loop(&format!(
        "filesrc location={} ! wavparse ! {pacing}lalm-interact name=loop ! fakesink sync=false",
        quote(wav)?
    ))?;
    if let Some(t) = args.threads {
        lalm.set_property("threads", t);
    }
    if let Some(t) = args.asr_threads {
        lalm.set_property("asr-threads", t);
    }
    for (k, v) in &args.props {
        if lalm.find_property(k).is_none() {
            return Err(format!("lalm-interact has no property {k}").into());
        }
        lalm.set_property_from_str(k, v);
    }
    let cues = Arc::new(Mutex::new(Vec::new()));
    let weak = pipeline.downgrade();
    let sink = cues.clone();
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(el) = msg.view()
            && let Some(s) = el.structure()
            && s.name() == "lalm-transcript"
        {
            let posted = weak
                .upgrade()
                .and_then(|p| p.current_running_time())
                .map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
            if let (Some(cue), Ok(mut v)) = (cue_of(s, posted), sink.lock()) {
                v.push(cue);
            }
        }
        gst::BusSyncReply::Pass
    });
    Ok(Loop {
        pipeline,
        lalm,
        cues,
    })
}

/// Plays the pipeline to EOS; returns the warnings seen and lalm-respond's stats at the end.
fn play(l: &Loop) -> Res<(Vec<String>, Option<gst::Structure>)> {
    let bus = l.pipeline.bus().ok_or("the pipeline has no bus")?;
    l.pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let mut warnings = Vec::new();
    let result = loop {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(3600),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        ) else {
            break Err("no message on the bus for an hour; giving up".into());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(format!("pipeline error from {}", error_text(e)).into());
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            _ => {}
        }
    };
    let stats = l
        .lalm
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("respond"))
        .map(|r| r.property::<gst::Structure>("stats"));
    let _ = l.pipeline.set_state(gst::State::Null);
    result.map(|()| (warnings, stats))
}

/// The child's side of the throughput run: prints one JSON line for the parent.
fn throughput_child(args: &Args, wav: &Path) -> Res<()> {
    let l = build(args, wav, false)?;
    let started = Instant::now();
    let (warnings, _) = play(&l)?;
    let wall = started.elapsed().as_secs_f64();
    let cues = l.cues.lock().map_err(|_| "cue list poisoned")?.clone();
    let finals: Vec<serde_json::Value> = cues
        .iter()
        .filter(|c| c.is_final)
        .map(|c| serde_json::json!({"start": c.start, "end": c.end, "text": c.text}))
        .collect();
    let out = serde_json::json!({
        "wall_s": wall,
        "finals": finals,
        "partials": cues.iter().filter(|c| !c.is_final).count(),
        "warnings": warnings,
        "asr_threads": l.lalm.property::<u32>("asr-threads"),
        "vad_threads": l.lalm.property::<u32>("threads"),
        "asr_model": l.lalm.property::<String>("asr-model"),
        "turn_model": l.lalm.property::<String>("turn-model"),
        "partial_ms": l.lalm.property::<u32>("partial-interval-ms"),
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{CHILD_TAG}{out}");
    Ok(())
}

struct Throughput {
    wall_s: f64,
    finals: Vec<String>,
    /// (start, end) of each final cue, seconds.
    spans: Vec<(f64, f64)>,
    partials: u64,
    warnings: usize,
    asr_threads: u64,
    vad_threads: u64,
    asr_model: String,
    turn_model: String,
    partial_ms: u64,
    peak_rss_mib: Option<f64>,
}

fn run_throughput(args: &Args, wav: &Path) -> Res<Throughput> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--throughput-child").arg(wav);
    if let Some(t) = args.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if let Some(t) = args.asr_threads {
        cmd.arg("--asr-threads").arg(t.to_string());
    }
    for (k, v) in &args.props {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the throughput run: {e}"))?;
    if !out.status.success() {
        return Err(format!("the throughput run failed ({})", out.status).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_TAG))
        .ok_or("the throughput run printed no result")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let finals = v["finals"]
        .as_array()
        .ok_or("throughput result without finals")?
        .iter()
        .filter_map(|f| f["text"].as_str().map(str::to_string))
        .collect();
    let spans = v["finals"]
        .as_array()
        .ok_or("throughput result without finals")?
        .iter()
        .filter_map(|f| Some((f["start"].as_f64()?, f["end"].as_f64()?)))
        .collect();
    Ok(Throughput {
        spans,
        wall_s: v["wall_s"]
            .as_f64()
            .ok_or("throughput result without wall_s")?,
        finals,
        partials: v["partials"].as_u64().unwrap_or(0),
        warnings: v["warnings"].as_array().map_or(0, Vec::len),
        asr_threads: v["asr_threads"].as_u64().unwrap_or(0),
        vad_threads: v["vad_threads"].as_u64().unwrap_or(0),
        asr_model: v["asr_model"].as_str().unwrap_or("?").to_string(),
        turn_model: v["turn_model"].as_str().unwrap_or("?").to_string(),
        partial_ms: v["partial_ms"].as_u64().unwrap_or(0),
        peak_rss_mib: v["peak_rss_mib"].as_f64(),
    })
}

struct Baseline {
    rtf: f64,
    decode_p50: Option<f64>,
    decode_p95: Option<f64>,
    wer: f64,
    peak_rss_mib: Option<f64>,
    load_s: Option<f64>,
}

fn run_baseline(args: &Args, wav: &Path, tsv: &Path) -> Res<Baseline> {
    let python = args.venv.join("bin").join("python");
    let script = repo_root()
        .join("models")
        .join("whisper")
        .join("bench_faster_whisper.py");
    if !python.is_file() {
        return Err(format!(
            "no Python venv with faster-whisper at {} (create it with `bash models/whisper/prove.sh`, \
             or pass --venv DIR)",
            args.venv.display()
        )
        .into());
    }
    if !args.ct2.join("model.bin").is_file() {
        return Err(format!(
            "no CTranslate2 whisper-base at {} (bash models/whisper/build_package.sh makes it, or pass --ct2 DIR)",
            args.ct2.display()
        )
        .into());
    }
    let out = Command::new(&python)
        .arg(&script)
        .arg("--audio")
        .arg(wav)
        .arg("--truth")
        .arg(tsv)
        .arg("--model")
        .arg(&args.ct2)
        .args(["--threads", "2", "--compute-type", "int8"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("faster-whisper printed no result")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    Ok(Baseline {
        rtf: v["rtf"]
            .as_f64()
            .ok_or("faster-whisper result without rtf")?,
        decode_p50: v["decode_p50_s"].as_f64(),
        decode_p95: v["decode_p95_s"].as_f64(),
        // Scored here with the same normalizer as lalm's cues.
        wer: {
            let texts: Vec<String> = v["texts"]
                .as_array()
                .ok_or("faster-whisper result without texts")?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            wer(&read_truth(tsv)?, &texts).0
        },
        peak_rss_mib: v["peak_rss_mib"].as_f64(),
        load_s: v["model_load_s"].as_f64(),
    })
}

struct Live {
    final_lat: Vec<f64>,
    /// Each spoken word's end (estimated) → the first cue showing it.
    word_lat: Vec<f64>,
    partial_lat: Vec<f64>,
    first_text_lat: Vec<f64>,
    missed: usize,
    utterances: usize,
    finals: usize,
    partials: usize,
    warnings: usize,
    peak_rss_mib: Option<f64>,
    /// CPU seconds the process used over the live run, model load included.
    cpu_s: Option<f64>,
    /// lalm-respond's stats at the end of the run.
    stats: Option<gst::Structure>,
}

fn overlaps(c: &Cue, t: &Truth) -> bool {
    c.start < t.end && c.end > t.start
}

/// Word on screen latency of one sentence. The truth has no word times, so each word's end is
/// placed by its share of the sentence's letters within the true speech span. A cue carries
/// its utterance's words so far; the cues of one utterance share its start, and a sentence
/// the loop split into several utterances counts their words in order. Word k of the truth's
/// N is the hypothesis's word k·M/N (M words in the end), shown by the first cue that brings
/// the count past it.
fn word_latencies(t: &Truth, cues: &[Cue], out: &mut Vec<f64>) {
    let truth_words = words(&t.text);
    let mut mine: Vec<&Cue> = cues.iter().filter(|c| overlaps(c, t)).collect();
    mine.sort_by(|a, b| a.posted.total_cmp(&b.posted));
    // Per utterance (cue start), the word count over time.
    let mut starts: Vec<u64> = mine.iter().map(|c| (c.start * 1e6) as u64).collect();
    starts.sort_unstable();
    starts.dedup();
    let mut shown = vec![0usize; starts.len()];
    // (time, words shown in all) after each cue.
    let mut steps = Vec::new();
    for c in &mine {
        let Ok(i) = starts.binary_search(&((c.start * 1e6) as u64)) else {
            continue;
        };
        shown[i] = shown[i].max(words(&c.text).len());
        steps.push((c.posted, shown.iter().sum::<usize>()));
    }
    let total = steps.last().map_or(0, |s| s.1);
    let (n, letters) = (
        truth_words.len(),
        truth_words.iter().map(String::len).sum::<usize>(),
    );
    if n == 0 || total == 0 || letters == 0 {
        return;
    }
    let mut through = 0;
    for (k, w) in truth_words.iter().enumerate() {
        through += w.len();
        let spoken = t.start + (t.end - t.start) * through as f64 / letters as f64;
        let need = k * total / n + 1;
        if let Some(&(at, _)) = steps.iter().find(|s| s.1 >= need) {
            out.push(at - spoken);
        }
    }
}

fn run_live(args: &Args, wav: &Path, truth: &[Truth]) -> Res<Live> {
    let cpu_before = cpu_seconds();
    let l = build(args, wav, true)?;
    let (warnings, stats) = play(&l)?;
    // Only the live loop runs in this process now (the other runs were child processes).
    let cpu_s = cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let cues = l.cues.lock().map_err(|_| "cue list poisoned")?.clone();
    let mut final_lat = Vec::new();
    let mut partial_lat = Vec::new();
    let mut first_text_lat = Vec::new();
    let mut word_lat = Vec::new();
    let mut missed = 0;
    for t in truth {
        // The sentence's text is complete when the last final cue covering it arrives.
        let done = cues
            .iter()
            .filter(|c| c.is_final && overlaps(c, t))
            .map(|c| c.posted)
            .fold(f64::NAN, f64::max);
        if done.is_nan() {
            missed += 1;
            continue;
        }
        final_lat.push(done - t.end);
        let first_partial = cues
            .iter()
            .filter(|c| !c.is_final && overlaps(c, t))
            .map(|c| c.posted)
            .fold(f64::NAN, f64::min);
        if !first_partial.is_nan() {
            partial_lat.push(first_partial - t.start);
        }
        let first_any = cues
            .iter()
            .filter(|c| overlaps(c, t))
            .map(|c| c.posted)
            .fold(f64::NAN, f64::min);
        first_text_lat.push(first_any - t.start);
        word_latencies(t, &cues, &mut word_lat);
    }
    Ok(Live {
        final_lat,
        word_lat,
        partial_lat,
        first_text_lat,
        missed,
        utterances: truth.len(),
        finals: cues.iter().filter(|c| c.is_final).count(),
        partials: cues.iter().filter(|c| !c.is_final).count(),
        warnings: warnings.len(),
        peak_rss_mib: peak_rss_mib(),
        cpu_s,
        stats,
    })
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |s| format!("{s:.3} s"))
}

fn bench() -> Res<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    if let Some(wav) = &args.child {
        return throughput_child(&args, wav);
    }
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let (wav, tsv) = if args.real {
        real_recording(args.seconds, args.long)?
    } else {
        recording(args.minutes)?
    };
    let truth = read_truth(&tsv)?;
    let audio_s = wav::read_s16_mono(&wav, RATE)?.len() as f64 / f64::from(RATE);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());

    eprintln!("[1/3] lalm throughput run (child process, as fast as it goes) ...");
    let tp = run_throughput(&args, &wav)?;
    let (lalm_wer, ref_words) = wer(&truth, &tp.finals);
    if let Some(path) = &args.terms {
        print_term_recall(path, &truth, &tp.finals)?;
    }
    // Segmentation: a sentence answered by more than one final cue was split (a pause inside
    // it ended the turn); a cue over two sentences merged them.
    let split = truth
        .iter()
        .filter(|t| {
            tp.spans
                .iter()
                .filter(|(s, e)| *s < t.end && *e > t.start)
                .count()
                > 1
        })
        .count();
    let merged = tp
        .spans
        .iter()
        .filter(|(s, e)| truth.iter().filter(|t| *s < t.end && *e > t.start).count() > 1)
        .count();

    let baseline = if args.baseline {
        eprintln!("[2/3] faster-whisper base int8, 2 threads, per utterance ...");
        match run_baseline(&args, &wav, &tsv) {
            Ok(b) => Ok(b),
            Err(e) => {
                eprintln!("lalm-asr-bench: faster-whisper baseline skipped: {e}");
                Err(e.to_string())
            }
        }
    } else {
        Err("skipped (--no-baseline)".to_string())
    };

    let live = if args.live {
        eprintln!("[3/3] lalm live-paced latency run ({audio_s:.0} s) ...");
        Some(run_live(&args, &wav, &truth)?)
    } else {
        None
    };

    let lalm_rtf = tp.wall_s / audio_s;
    let fw = baseline.as_ref().ok();
    println!("command            {command_line}");
    println!("machine            {cpus} CPUs");
    println!(
        "audio              {} ({audio_s:.1} s, {} utterances, {ref_words} words; truth {})",
        wav.display(),
        truth.len(),
        tsv.display()
    );
    println!(
        "lalm               lalm-interact: Silero VAD ({} thread) + {} ONNX ({} threads), greedy, partials by LocalAgreement-2 every {} ms, turn model {}",
        tp.vad_threads, tp.asr_model, tp.asr_threads, tp.partial_ms, tp.turn_model
    );
    println!(
        "faster-whisper     base int8, cpu_threads 2, beam 1, per utterance: audio cut at the truth segments ±0.2 s (it has no streaming VAD loop), one untimed warm-up decode"
    );
    if let Err(e) = &baseline {
        println!("                   not run: {e}");
    }
    println!();
    let rows: Vec<(&str, String, String)> = vec![
        (
            "real-time factor",
            format!("{lalm_rtf:.3} (wall {:.1} s, incl. model load)", tp.wall_s),
            fw.map_or("-".into(), |b| {
                format!("{:.3} (decode time only; load {})", b.rtf, secs(b.load_s))
            }),
        ),
        (
            "live CPU / audio",
            live.as_ref()
                .and_then(|l| l.cpu_s)
                .map_or("n/a".into(), |c| {
                    format!(
                        "{:.3} (CPU s per audio s, partials on, load incl.)",
                        c / audio_s
                    )
                }),
            "n/a".into(),
        ),
        (
            "final latency p50",
            secs(live.as_ref().and_then(|l| percentile(&l.final_lat, 0.5))),
            fw.map_or("-".into(), |b| {
                format!("{} (decode time)", secs(b.decode_p50))
            }),
        ),
        (
            "final latency p95",
            secs(live.as_ref().and_then(|l| percentile(&l.final_lat, 0.95))),
            fw.map_or("-".into(), |b| {
                format!("{} (decode time)", secs(b.decode_p95))
            }),
        ),
        (
            "first partial p50",
            live.as_ref().map_or("n/a".into(), |l| {
                format!(
                    "{} ({}/{} utterances had one)",
                    secs(percentile(&l.partial_lat, 0.5)),
                    l.partial_lat.len(),
                    l.utterances
                )
            }),
            "n/a".into(),
        ),
        (
            "live decodes",
            live.as_ref()
                .and_then(|l| l.stats.as_ref())
                .map_or("n/a".into(), |st| {
                    let n = |k: &str| st.get::<u64>(k).unwrap_or(0);
                    format!(
                        "{} before turn ends, hearing {:.2} s each on average, {:.2} s at most; \
                         every decode heard {:.2}x the audio; {} phrases sealed",
                        n("early-decodes"),
                        n("early-audio-mean-ms") as f64 / 1e3,
                        n("early-audio-max-ms") as f64 / 1e3,
                        n("decoded-audio-ms") as f64 / 1e3 / audio_s,
                        n("sealed")
                    )
                }),
            "n/a".into(),
        ),
        (
            "first partial p95",
            secs(live.as_ref().and_then(|l| percentile(&l.partial_lat, 0.95))),
            "n/a".into(),
        ),
        (
            "first text p50/p95",
            live.as_ref().map_or("n/a".into(), |l| {
                format!(
                    "{} / {}",
                    secs(percentile(&l.first_text_lat, 0.5)),
                    secs(percentile(&l.first_text_lat, 0.95))
                )
            }),
            "n/a".into(),
        ),
        (
            "word shown p50/p95",
            live.as_ref().map_or("n/a".into(), |l| {
                format!(
                    "{} / {} ({} words)",
                    secs(percentile(&l.word_lat, 0.5)),
                    secs(percentile(&l.word_lat, 0.95)),
                    l.word_lat.len()
                )
            }),
            "n/a".into(),
        ),
        (
            "WER",
            format!("{lalm_wer:.2} % ({} final cues)", tp.finals.len()),
            fw.map_or("-".into(), |b| format!("{:.2} %", b.wer)),
        ),
        (
            "peak RSS",
            tp.peak_rss_mib
                .map_or("-".into(), |m| format!("{m:.1} MiB (throughput child)")),
            fw.map_or("-".into(), |b| {
                b.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1} MiB"))
            }),
        ),
    ];
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    println!(
        "{:<w0$}  {:<w1$}  faster-whisper base int8 2 threads",
        "figure", "lalm"
    );
    for (k, a, b) in &rows {
        println!("{k:<w0$}  {a:<w1$}  {b}");
    }
    println!();
    println!(
        "throughput run: {} final and {} partial cues, {} warnings; {split} of {} sentences split over several final cues, {merged} cues over two sentences",
        tp.finals.len(),
        tp.partials,
        tp.warnings,
        truth.len()
    );
    if let Some(l) = &live {
        println!(
            "live run: {} utterances, {} with no final cue, {} final and {} partial cues, {} warnings, process peak RSS {}",
            l.utterances,
            l.missed,
            l.finals,
            l.partials,
            l.warnings,
            l.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1} MiB"))
        );
        println!(
            "live latencies are pipeline running time when the message was posted minus the true speech end/start; audio paced in {LIVE_PERIOD_MS} ms buffers released at their end time"
        );
    }
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "MET",
        Some(false) => "NOT MET",
        None => "not measured",
    };
    let pct = |f: fn(&Live) -> &Vec<f64>, p| live.as_ref().and_then(|l| percentile(f(l), p));
    let final_p50 = pct(|l| &l.final_lat, 0.5);
    let final_p95 = pct(|l| &l.final_lat, 0.95);
    let partial_p50 = pct(|l| &l.partial_lat, 0.5);
    let word_p50 = pct(|l| &l.word_lat, 0.5);
    // Two views of the loop's cost: the throughput run's wall time (the file as fast as it
    // goes; the pace guard skips most partials there, audio arriving far faster than real
    // time), and the live run's CPU time per audio second, partials at their live cadence.
    let live_cpu = live.as_ref().and_then(|l| l.cpu_s).map(|c| c / audio_s);
    println!(
        "goals: final p50 <= 0.5 s: {}; final p95 <= 1.0 s: {}; first partial p50 <= 1.0 s: {}; \
         word p50 <= 1.5 s: {}; RTF <= 0.10 (throughput): {}; live CPU / audio <= 0.10: {}; \
         WER <= faster-whisper's: {}",
        verdict(final_p50.map(|p| p <= 0.5)),
        verdict(final_p95.map(|p| p <= 1.0)),
        verdict(partial_p50.map(|p| p <= 1.0)),
        verdict(word_p50.map(|p| p <= 1.5)),
        verdict(Some(lalm_rtf <= 0.10)),
        verdict(live_cpu.map(|c| c <= 0.10)),
        verdict(fw.map(|b| lalm_wer <= b.wer)),
    );
    Ok(())
}
