//! lalm-listen: runs the perceive → decide → respond loop on a URI, a file or the microphone
//! and prints what it says as JSON lines on stdout, one object per line, flushed at once —
//! for servers that spawn it and read its output.
//!
//! Lines have a `type`: `transcript` (final subtitles; partial ones too with `--partials`,
//! marked `"final": false`), `alert` (every lalm-alert), `error` (then the exit status is 1)
//! and a last `eos` line when the input ended. Times are stream time: `start`/`end` in
//! seconds and `start_ns`/`end_ns` in nanoseconds.
//!
//! Usage: lalm-listen [OPTIONS] URI|PATH|mic
//!   --rules FILE       alert rules (TOML); default: the built-in rules
//!   --tagger PKG       sound-event tagger package, or none (default ced-tiny)
//!   --asr-model PKG    Whisper package (default whisper-base)
//!   --mode MODE        transcript (default) or turn-end (no ASR)
//!   --language CODE    language of the speech (default en)
//!   --partials         also print partial transcripts
//!   --realtime         feed a file at its real pace, as a live source would
//!   --no-transcripts   print alerts only
//!   --speaker-model PKG  label speakers (e.g. pyannote-community-1)
//!   --report FILE      also write a picture of what was heard: one self-contained HTML page
//!                      (waveform, speech, speakers, cues, sound events, alerts on one
//!                      zoomable timeline), written at the end
//!   --labels FILE      also write the cues, sound events and alerts as an Audacity label track

use std::io::Write;
use std::process::ExitCode;

use gst::glib;
use gst::prelude::*;
use lalm_tools::pipeline::{error_text, init};

const USAGE: &str = "usage: lalm-listen [--rules FILE] [--tagger PKG|none] [--asr-model PKG] \
[--mode transcript|turn-end] [--language CODE] [--partials] [--realtime] [--no-transcripts] \
[--speaker-model PKG] [--report FILE.html] [--labels FILE.txt] URI|PATH|mic";

#[derive(Debug, Default)]
struct Args {
    input: String,
    rules: Option<String>,
    tagger: Option<String>,
    asr_model: Option<String>,
    mode: Option<String>,
    language: Option<String>,
    partials: bool,
    realtime: bool,
    transcripts: bool,
    speaker_model: Option<String>,
    report: Option<String>,
    labels: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        transcripts: true,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rules" => a.rules = Some(value("--rules")?),
            "--tagger" => a.tagger = Some(value("--tagger")?),
            "--asr-model" => a.asr_model = Some(value("--asr-model")?),
            "--mode" => a.mode = Some(value("--mode")?),
            "--language" => a.language = Some(value("--language")?),
            "--partials" => a.partials = true,
            "--realtime" => a.realtime = true,
            "--no-transcripts" => a.transcripts = false,
            "--speaker-model" => a.speaker_model = Some(value("--speaker-model")?),
            "--report" => a.report = Some(value("--report")?),
            "--labels" => a.labels = Some(value("--labels")?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if a.input.is_empty() => a.input = s.to_string(),
            s => return Err(format!("one input only (got {} and {s})", a.input)),
        }
    }
    if a.input.is_empty() {
        return Err("no input given".into());
    }
    Ok(a)
}

/// The pipeline: the microphone or a URI (a path becomes a file URI), the loop, and sinks
/// for its text and alert pads (what is printed comes from the bus).
fn build(a: &Args) -> Result<gst::Pipeline, String> {
    let source = if a.input == "mic" {
        "autoaudiosrc".to_string()
    } else {
        let uri = if a.input.contains("://") {
            a.input.clone()
        } else {
            let path = std::fs::canonicalize(&a.input).map_err(|e| format!("{}: {e}", a.input))?;
            glib::filename_to_uri(&path, None)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_string()
        };
        format!(
            "uridecodebin uri=\"{}\" caps=audio/x-raw expose-all-streams=false{}",
            uri.replace('"', "%22"),
            if a.realtime { " ! clocksync" } else { "" }
        )
    };
    // The waveform of a report: the peak of every 50 ms from `level`.
    let level = if a.report.is_some() {
        " ! audioconvert ! level post-messages=true interval=50000000"
    } else {
        ""
    };
    let description = format!(
        "{source}{level} ! lalm-interact name=lalm finals-only=true \
         ! fakesink sync=false async=false lalm.alert ! fakesink sync=false async=false"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("cannot build the pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let lalm = pipeline.by_name("lalm").ok_or("no lalm-interact")?;
    for (prop, v) in [
        ("rules", &a.rules),
        ("tagger", &a.tagger),
        ("asr-model", &a.asr_model),
        ("mode", &a.mode),
        ("language-code", &a.language),
        ("speaker-model", &a.speaker_model),
    ] {
        if let Some(v) = v {
            lalm.set_property_from_str(prop, v);
        }
    }
    Ok(pipeline)
}

fn to_json(v: &glib::SendValue) -> serde_json::Value {
    use serde_json::Value;
    if let Ok(s) = v.get::<&str>() {
        Value::from(s)
    } else if let Ok(b) = v.get::<bool>() {
        Value::from(b)
    } else if let Ok(x) = v.get::<f64>() {
        Value::from((x * 1000.0).round() / 1000.0)
    } else if let Ok(x) = v.get::<u64>() {
        Value::from(x)
    } else if let Ok(a) = v.get::<gst::Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Ok(s) = v.get::<gst::Structure>() {
        structure_json(&s)
    } else {
        Value::Null
    }
}

/// A message structure as JSON; nanosecond times also in seconds.
fn structure_json(s: &gst::StructureRef) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in s.iter() {
        let key = k.replace('-', "_");
        if matches!(k.as_str(), "start" | "end")
            && let Ok(ns) = v.get::<u64>()
        {
            m.insert(format!("{key}_ns"), ns.into());
            m.insert(key, serde_json::Value::from(ns as f64 / 1e9));
            continue;
        }
        m.insert(key, to_json(v));
    }
    serde_json::Value::Object(m)
}

fn print(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A reader that went away ends the program at the next line anyway.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn typed(kind: &str, mut v: serde_json::Value) -> serde_json::Value {
    if let Some(m) = v.as_object_mut() {
        m.insert("type".into(), kind.into());
    }
    v
}

fn run(a: &Args) -> Result<(), String> {
    init().map_err(|e| e.to_string())?;
    let pipeline = build(a)?;
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The element's own error message says why.
        let why = bus
            .timed_pop_filtered(gst::ClockTime::SECOND, &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => Some(error_text(err)),
                _ => None,
            })
            .unwrap_or_else(|| "the pipeline cannot start".into());
        let _ = pipeline.set_state(gst::State::Null);
        return Err(why);
    }
    let name = std::path::Path::new(&a.input)
        .file_name()
        .map_or(a.input.clone(), |n| n.to_string_lossy().into_owned());
    let mut report = lalm_tools::report::Report::new(&name);
    let keep = a.report.is_some() || a.labels.is_some();
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if keep {
                    report.add(s);
                }
                match s.name().as_str() {
                    "lalm-alert" => print(typed("alert", structure_json(s))),
                    "lalm-transcript" if a.transcripts => {
                        let is_final = s.get::<bool>("final").unwrap_or(true);
                        if is_final || a.partials {
                            print(typed("transcript", structure_json(s)));
                        }
                    }
                    _ => {}
                }
            }
            gst::MessageView::Warning(w) => {
                eprintln!("lalm-listen: warning: {}", w.error());
            }
            gst::MessageView::Error(err) => {
                break Err(error_text(err));
            }
            gst::MessageView::Eos(_) => {
                print(serde_json::json!({"type": "eos"}));
                break Ok(());
            }
            _ => {}
        }
    };
    let end = pipeline
        .query_position::<gst::ClockTime>()
        .map_or(0.0, |t| t.nseconds() as f64 / 1e9);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    report.finish(end);
    if let Some(path) = &a.report {
        std::fs::write(path, report.html()).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("lalm-listen: report written to {path}");
    }
    if let Some(path) = &a.labels {
        std::fs::write(path, report.audacity_labels()).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("lalm-listen: labels written to {path}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lalm-listen: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print(serde_json::json!({"type": "error", "message": e}));
            eprintln!("lalm-listen: {e}");
            ExitCode::FAILURE
        }
    }
}
