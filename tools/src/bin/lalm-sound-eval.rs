//! lalm-sound-eval: sound alerts on real recordings.
//!
//! Takes the real recordings listed in `tests/data/real-sounds.tsv` (extracted from pinned
//! packages by `scripts/fetch-sounds.sh`) and runs the loop (`lalm-interact mode=turn-end`:
//! VAD, tagger, rules; no ASR) over three streams, as fast as it goes:
//!
//! 1. **events**: every clip of the chosen split, each between stretches of real speech
//!    (`--gap` seconds, default 8). A `respond` clip must raise an alert of its class whose
//!    start lies within `--tolerance` seconds (default 1) of the clip's onset; an `ignore`
//!    clip (music, applause, …) must raise no alert.
//! 2. **speech**: `--speech-minutes` (default 20) of real speech alone: every sound alert is
//!    false.
//! 3. **everyday**: the split's `ignore` clips back to back (music, applause, laughter,
//!    footsteps, …) with no speech: every sound alert is false.
//!
//! Prints per-class precision and recall, false alerts per hour of speech and of everyday
//! sounds, the alert-start error and the onset → alert latency (p50, p95): the stream time
//! from the sound's onset to the end of the tagger window that made the alert due, which is
//! when a live loop has heard enough (processing adds its per-chunk time on top, see
//! lalm-alert-bench).
//!
//! With `--captions quiet|all` the loop also puts sound captions on its text pad
//! (`sound-captions`), and they are scored the same way against every clip, everyday ones
//! included: a caption is right when it is its clip's class's wording ("[APPLAUSE]") and
//! starts within the tolerance of the clip's onset; every caption over speech alone is false.
//!
//! Usage: lalm-sound-eval [--split test|calib|all] [--sounds DIR] [--speech-minutes N]
//!                        [--gap S] [--tolerance S] [--tagger PKG] [--rules FILE]
//!                        [--captions quiet|all] [--json FILE] [--set NAME=VALUE]...

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gst::prelude::*;

use lalm_tools::cli::Flags;
use lalm_tools::pipeline::{init, launch_loop, play_to_eos, quote};
use lalm_tools::wav::{SpeechPool, onset_offset, read_s16_mono, write_s16_mono};
use lalm_tools::{Res, bench_cache_dir, exit, percentile, sounds_dir};

const USAGE: &str = "usage: lalm-sound-eval [--split test|calib|all] [--sounds DIR] \
                     [--speech-minutes N] [--gap S] [--tolerance S] [--tagger PKG] \
                     [--rules FILE] [--captions quiet|all] [--json FILE] \
                     [--set NAME=VALUE]... (a lalm-interact \
                     property, e.g. tagger-calm-hop-ms=0)";
const RATE: u32 = 16_000;
/// Longest wait for a bus message before a run is taken for stuck.
const TEN_MINUTES: gst::ClockTime = gst::ClockTime::from_seconds(600);
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/real-sounds.tsv");

struct Opts {
    split: String,
    sounds: Option<PathBuf>,
    speech_minutes: f64,
    gap: f64,
    tolerance: f64,
    tagger: Option<String>,
    rules: Option<PathBuf>,
    json: Option<PathBuf>,
    /// `sound-captions` for the loop, if captions are scored.
    captions: Option<String>,
    /// lalm-interact properties, `name=value`.
    set: Vec<String>,
}

/// One manifest row that matters here.
#[derive(Clone)]
struct Clip {
    id: String,
    class: String,
    respond: bool,
    split: String,
}

/// A clip placed in a stream: where its sound starts.
struct Placed {
    clip: Clip,
    onset: f64,
    end: f64,
}

#[derive(Debug, Clone)]
struct Heard {
    /// `lalm-alert` with kind sound-event, or `lalm-sound`.
    alert: bool,
    class: String,
    label: String,
    confidence: f64,
    start: f64,
    end: f64,
}

fn parse_args() -> Res<Option<Opts>> {
    let mut a = Flags::new(std::env::args().skip(1), USAGE);
    let mut o = Opts {
        split: "test".into(),
        sounds: None,
        speech_minutes: 20.0,
        gap: 8.0,
        tolerance: 1.0,
        tagger: None,
        rules: None,
        json: None,
        captions: None,
        set: Vec::new(),
    };
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--split" => o.split = a.value()?,
            "--sounds" => o.sounds = Some(a.value()?.into()),
            "--speech-minutes" => o.speech_minutes = a.value()?.parse()?,
            "--gap" => o.gap = a.value()?.parse()?,
            "--tolerance" => o.tolerance = a.value()?.parse()?,
            "--tagger" => o.tagger = Some(a.value()?),
            "--rules" => o.rules = Some(a.value()?.into()),
            "--json" => o.json = Some(a.value()?.into()),
            "--captions" => o.captions = Some(a.value()?),
            "--set" => {
                let v = a.value()?;
                if !v.contains('=') || v.contains(char::is_whitespace) {
                    return Err(format!("--set {v}: expected NAME=VALUE").into());
                }
                o.set.push(v);
            }
            _ => return Err(a.unknown()),
        }
    }
    if a.asked_for_help() {
        return Ok(None);
    }
    if let Some(c) = &o.captions
        && !["quiet", "all"].contains(&c.as_str())
    {
        return Err(format!("--captions must be quiet or all, not {c}").into());
    }
    if !["test", "calib", "all"].contains(&o.split.as_str()) {
        return Err(format!("--split must be test, calib or all, not {}", o.split).into());
    }
    Ok(Some(o))
}

fn manifest() -> Res<Vec<Clip>> {
    let text =
        std::fs::read_to_string(MANIFEST).map_err(|e| format!("cannot read {MANIFEST}: {e}"))?;
    Ok(lalm_tools::streamaudio::parse_manifest(&text, MANIFEST)?
        .into_iter()
        .map(|c| Clip {
            id: c.id,
            class: c.class,
            respond: c.respond,
            split: c.split,
        })
        .collect())
}

/// The extracted recordings: `--sounds`, or [`sounds_dir`].
fn sounds(o: &Opts) -> Res<PathBuf> {
    match &o.sounds {
        Some(d) => Ok(d.clone()),
        None => sounds_dir(),
    }
}

/// The clips in an order where two of one class are never neighbours, where it can be
/// helped (one of each class in turn): a class's cooldown would otherwise hide the second.
fn interleave(clips: Vec<Clip>) -> Vec<Clip> {
    let mut by_class: BTreeMap<String, std::collections::VecDeque<Clip>> = BTreeMap::new();
    for c in clips {
        by_class.entry(c.class.clone()).or_default().push_back(c);
    }
    let mut out = Vec::new();
    while by_class.values().any(|q| !q.is_empty()) {
        for q in by_class.values_mut() {
            if let Some(c) = q.pop_front() {
                out.push(c);
            }
        }
    }
    out
}

/// A sound caption on the text pad: its start (s) and text.
type Caption = (f64, String);

/// Runs the loop over `wav`; returns what it heard (sound alerts and everyday sounds) and
/// the sound captions of its text pad.
fn run(wav: &Path, o: &Opts) -> Res<(Vec<Heard>, Vec<Caption>)> {
    let mut desc = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! \
         lalm-interact name=loop mode=turn-end",
        quote(wav)?
    );
    if let Some(t) = &o.tagger {
        desc += &format!(" tagger={t}");
    }
    if let Some(r) = &o.rules {
        desc += &format!(" rules={}", quote(r)?);
    }
    if let Some(c) = &o.captions {
        desc += &format!(" sound-captions={c}");
    }
    for p in &o.set {
        desc += &format!(" {p}");
    }
    desc += " ! fakesink name=text sync=false";
    let (pipeline, _lalm, bus) = launch_loop(&desc)?;
    let captions: std::sync::Arc<std::sync::Mutex<Vec<Caption>>> = Default::default();
    let sink_captions = captions.clone();
    pipeline
        .by_name("text")
        .and_then(|s| s.static_pad("sink"))
        .ok_or("no text sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && gstlalm::meta::get_structure(b, gstlalm::meta::CUE_META)
                    .and_then(|m| m.get::<String>("kind").ok())
                    .as_deref()
                    == Some("sound")
                && let Ok(map) = b.map_readable()
                && let Ok(mut v) = sink_captions.lock()
            {
                let at = b.pts().map_or(-1.0, |t| t.nseconds() as f64 / 1e9);
                v.push((at, String::from_utf8_lossy(&map).into_owned()));
            }
            gst::PadProbeReturn::Ok
        });
    let mut heard = Vec::new();
    let result = play_to_eos(&pipeline, &bus, TEN_MINUTES, |s, _| {
        let secs = |k: &str| s.get::<u64>(k).map_or(-1.0, |v| v as f64 / 1e9);
        let text = |k: &str| s.get::<String>(k).unwrap_or_default();
        let confidence = s.get::<f64>("confidence").unwrap_or(0.0);
        if s.name() == "lalm-alert" && text("kind") == "sound-event" {
            heard.push(Heard {
                alert: true,
                class: text("rule"),
                label: text("label"),
                confidence,
                start: secs("start"),
                end: secs("end"),
            });
        } else if s.name() == "lalm-sound" {
            heard.push(Heard {
                alert: false,
                class: text("class"),
                label: text("label"),
                confidence,
                start: secs("start"),
                end: secs("end"),
            });
        }
    });
    pipeline.set_state(gst::State::Null)?;
    let captions = captions.lock().map(|v| v.clone()).unwrap_or_default();
    result.map(|()| (heard, captions))
}

#[derive(Default, Clone, Copy)]
struct ClassScore {
    events: u32,
    found: u32,
    alerts: u32,
    true_alerts: u32,
}

fn main_() -> Res<()> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    init()?;
    let clips = interleave(
        manifest()?
            .into_iter()
            .filter(|c| o.split == "all" || c.split == o.split)
            .collect(),
    );
    let sounds = sounds(&o)?;
    let work = bench_cache_dir()?.join(format!("sound-eval-{}", o.split));
    std::fs::create_dir_all(&work)?;
    let mut speech = SpeechPool::new(&sounds.join("speech"), RATE)?;
    let gap = (o.gap * RATE as f64) as usize;

    // 1. Every clip between stretches of real speech.
    let mut events: Vec<i16> = speech.take(gap)?;
    let mut placed = Vec::new();
    let mut everyday: Vec<i16> = Vec::new();
    // The everyday stream's clips: class, start and end in seconds.
    let mut everyday_at: Vec<(String, f64, f64)> = Vec::new();
    for c in &clips {
        let path = sounds.join("clips").join(format!("{}.wav", c.id));
        let x = read_s16_mono(&path, RATE)?;
        let onset = (events.len() + onset_offset(&x, RATE)) as f64 / RATE as f64;
        events.extend_from_slice(&x);
        placed.push(Placed {
            clip: c.clone(),
            onset,
            end: events.len() as f64 / RATE as f64,
        });
        events.extend(speech.take(gap)?);
        if !c.respond {
            let at = everyday.len() as f64 / RATE as f64;
            everyday_at.push((c.class.clone(), at, at + x.len() as f64 / RATE as f64));
            everyday.extend_from_slice(&x);
            everyday.extend(std::iter::repeat_n(0i16, RATE as usize / 2));
        }
    }
    let events_wav = work.join("events.wav");
    write_s16_mono(&events_wav, RATE, &events)?;
    // 2. Real speech alone (a fresh pool: from the first recording).
    let mut alone = SpeechPool::new(&sounds.join("speech"), RATE)?;
    let speech_len = (o.speech_minutes * 60.0 * RATE as f64) as usize;
    let speech_wav = work.join("speech.wav");
    write_s16_mono(&speech_wav, RATE, &alone.take(speech_len)?)?;
    // 3. Everyday sounds alone.
    let everyday_wav = work.join("everyday.wav");
    write_s16_mono(&everyday_wav, RATE, &everyday)?;

    let t0 = std::time::Instant::now();
    let (heard_events, captions_events) = run(&events_wav, &o)?;
    let (heard_speech, captions_speech) = run(&speech_wav, &o)?;
    let (heard_everyday, captions_everyday) = if everyday.is_empty() {
        Default::default()
    } else {
        run(&everyday_wav, &o)?
    };
    let wall = t0.elapsed().as_secs_f64();

    // Score the events stream: each alert matches at most one respond clip of its class
    // whose onset is within the tolerance; each such clip is found by at most one alert.
    let mut per_class: BTreeMap<String, ClassScore> = BTreeMap::new();
    let mut used = vec![false; placed.len()];
    let mut start_err = Vec::new();
    let mut latency = Vec::new();
    let mut misses = Vec::new();
    let mut false_alerts = Vec::new();
    let mut false_during: Vec<String> = Vec::new();
    for p in placed.iter().filter(|p| p.clip.respond) {
        per_class.entry(p.clip.class.clone()).or_default().events += 1;
    }
    for h in heard_events.iter().filter(|h| h.alert) {
        per_class.entry(h.class.clone()).or_default().alerts += 1;
        let hit = placed.iter().enumerate().find(|(i, p)| {
            !used[*i]
                && p.clip.respond
                && p.clip.class == h.class
                && (h.start - p.onset).abs() <= o.tolerance
        });
        match hit {
            Some((i, p)) => {
                used[i] = true;
                let s = per_class.entry(h.class.clone()).or_default();
                s.true_alerts += 1;
                s.found += 1;
                start_err.push(h.start - p.onset);
                latency.push(h.end - p.onset);
            }
            None => {
                // Where it was: which clip (or speech) it overlapped.
                let on = placed
                    .iter()
                    .find(|p| h.start >= p.onset - o.tolerance && h.start <= p.end + o.tolerance);
                false_during.push(on.map_or("speech".to_string(), |p| p.clip.class.clone()));
                let near = on.map_or("speech".to_string(), |p| {
                    format!("{} ({})", p.clip.id, p.clip.class)
                });
                false_alerts.push(format!(
                    "{} ({} {:.2}) at {:.1} s during {near}",
                    h.class, h.label, h.confidence, h.start
                ));
            }
        }
    }
    for (i, p) in placed.iter().enumerate() {
        if p.clip.respond && !used[i] {
            misses.push(format!(
                "{} ({}) at {:.1} s",
                p.clip.id, p.clip.class, p.onset
            ));
        }
    }
    let ignored_heard: Vec<String> = heard_events
        .iter()
        .filter(|h| !h.alert)
        .map(|h| format!("{}@{:.1}", h.class, h.start))
        .collect();

    let speech_alerts: Vec<&Heard> = heard_speech.iter().filter(|h| h.alert).collect();
    let everyday_alerts: Vec<&Heard> = heard_everyday.iter().filter(|h| h.alert).collect();
    let speech_hours = speech_len as f64 / RATE as f64 / 3600.0;
    let everyday_hours = everyday.len() as f64 / RATE as f64 / 3600.0;

    println!(
        "lalm-sound-eval: split {}, {} clips ({} respond), {:.1} min events stream, {:.1} min speech, \
         {:.1} min everyday sounds; loop ran in {wall:.1} s",
        o.split,
        clips.len(),
        clips.iter().filter(|c| c.respond).count(),
        events.len() as f64 / RATE as f64 / 60.0,
        speech_hours * 60.0,
        everyday_hours * 60.0
    );
    println!("| class | events | found | alerts | precision | recall |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (class, s) in &per_class {
        let prec = if s.alerts > 0 {
            format!("{:.2}", s.true_alerts as f64 / s.alerts as f64)
        } else {
            "–".into()
        };
        let rec = if s.events > 0 {
            format!("{:.2}", s.found as f64 / s.events as f64)
        } else {
            "–".into()
        };
        println!(
            "| {class} | {} | {} | {} | {prec} | {rec} |",
            s.events, s.found, s.alerts
        );
    }
    let total = per_class
        .values()
        .fold(ClassScore::default(), |a, s| ClassScore {
            events: a.events + s.events,
            found: a.found + s.found,
            alerts: a.alerts + s.alerts,
            true_alerts: a.true_alerts + s.true_alerts,
        });
    let precision = total.true_alerts as f64 / total.alerts.max(1) as f64;
    let recall = total.found as f64 / total.events.max(1) as f64;
    println!(
        "all: {} events, {} found, {} alerts: precision {precision:.3}, recall {recall:.3}",
        total.events, total.found, total.alerts
    );
    println!(
        "false alerts: {} in {:.1} min of speech ({:.1}/h), {} in {:.1} min of everyday sounds \
         ({:.1}/h)",
        speech_alerts.len(),
        speech_hours * 60.0,
        speech_alerts.len() as f64 / speech_hours.max(1e-9),
        everyday_alerts.len(),
        everyday_hours * 60.0,
        everyday_alerts.len() as f64 / everyday_hours.max(1e-9)
    );
    println!(
        "alert start - onset: p50 {:+.2} s, p95 |err| {:.2} s; onset -> alert due: p50 {:.2} s, \
         p95 {:.2} s",
        percentile(&start_err, 0.5),
        percentile(&start_err.iter().map(|x| x.abs()).collect::<Vec<_>>(), 0.95),
        percentile(&latency, 0.5),
        percentile(&latency, 0.95)
    );
    for m in &misses {
        println!("missed: {m}");
    }
    for f in &false_alerts {
        println!("false: {f}");
    }
    // What each alert on the everyday stream fell on.
    let during = |h: &Heard| {
        everyday_at
            .iter()
            .find(|(_, a, b)| h.start >= a - o.tolerance && h.start <= b + o.tolerance)
            .map_or("?".to_string(), |(c, _, _)| c.clone())
    };
    for h in &speech_alerts {
        println!(
            "false (speech alone): {} ({} {:.2}) at {:.1} s",
            h.class, h.label, h.confidence, h.start
        );
    }
    for h in &everyday_alerts {
        println!(
            "false (everyday alone): {} ({} {:.2}) at {:.1} s during {}",
            h.class,
            h.label,
            h.confidence,
            h.start,
            during(h)
        );
    }
    println!(
        "everyday sounds reported (lalm-sound): {}",
        ignored_heard.join(" ")
    );

    if o.captions.is_some() {
        score_captions(
            &placed,
            &captions_events,
            &captions_speech,
            &captions_everyday,
            speech_hours,
            o.tolerance,
        );
    }

    if let Some(path) = &o.json {
        let classes: serde_json::Map<String, serde_json::Value> = per_class
            .iter()
            .map(|(c, s)| {
                (
                    c.clone(),
                    serde_json::json!({
                        "events": s.events, "found": s.found, "alerts": s.alerts,
                        "true_alerts": s.true_alerts,
                    }),
                )
            })
            .collect();
        let doc = serde_json::json!({
            "split": o.split,
            "clips": clips.len(),
            "classes": classes,
            "precision": precision,
            "recall": recall,
            "missed": misses,
            "false_in_events": false_alerts,
            "speech_minutes": speech_hours * 60.0,
            "speech_false_alerts": speech_alerts.iter().map(|h| format!("{} {} {:.1}", h.class, h.label, h.start)).collect::<Vec<_>>(),
            "everyday_minutes": everyday_hours * 60.0,
            "everyday_false_alerts": everyday_alerts.iter().map(|h| serde_json::json!({
                "class": h.class, "label": h.label, "start": h.start, "during": during(h),
            })).collect::<Vec<_>>(),
            "false_in_events_during": false_during,
            "sounds_reported": heard_events.iter().filter(|h| !h.alert).map(|h| h.class.clone()).collect::<Vec<_>>(),
            "start_error_s": start_err,
            "latency_s": latency,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    }
    Ok(())
}

/// The built-in class whose caption a clip of the manifest's `class` should get: the class
/// of that name, or the one whose labels cover it; none for sounds no class names (wind,
/// chatter).
fn caption_class(class: &str) -> Option<&'static str> {
    use soundflow::decide::alerts::classes;
    match class {
        "cheering" => Some("applause"),
        "door-close" => Some("door"),
        c => classes::class(c).map(|k| k.name),
    }
}

/// Sound captions against every clip of the events stream that a class captions: a clip is
/// found by at most one caption of its class's wording shown from `tolerance` before its
/// onset to `tolerance` after its end (a caption under speech waits for the speech's cue);
/// and the captions over speech and everyday sounds alone.
fn score_captions(
    placed: &[Placed],
    events: &[Caption],
    speech: &[Caption],
    everyday: &[Caption],
    speech_hours: f64,
    tolerance: f64,
) {
    use soundflow::respond::captions::sound_caption;
    let mut used = vec![false; placed.len()];
    let mut right = 0usize;
    let mut wrong = Vec::new();
    let mut delays = Vec::new();
    let wording = |p: &Placed| caption_class(&p.clip.class).map(|c| sound_caption(c, ""));
    for (at, text) in events {
        let hit = placed.iter().enumerate().position(|(i, p)| {
            !used[i]
                && wording(p).as_deref() == Some(text.as_str())
                && *at >= p.onset - tolerance
                && *at <= p.end + tolerance
        });
        match hit {
            Some(i) => {
                used[i] = true;
                right += 1;
                delays.push(at - placed[i].onset);
            }
            None => wrong.push(format!("{text} at {at:.1} s")),
        }
    }
    let mut by_class: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let captioned: Vec<usize> = (0..placed.len())
        .filter(|&i| wording(&placed[i]).is_some())
        .collect();
    for &i in &captioned {
        let p = &placed[i];
        let e = by_class.entry(p.clip.class.as_str()).or_default();
        e.0 += 1;
        e.1 += used[i] as u32;
    }
    println!("\nsound captions (sound-captions on the text pad):");
    println!("| class | clips | captioned |");
    println!("| --- | --- | --- |");
    for (class, (n, found)) in &by_class {
        println!("| {class} | {n} | {found} |");
    }
    println!(
        "captions: {} on the events stream, {right} right: precision {:.3}, recall {:.3} \
         ({right} of the {} clips a class captions; {} others)",
        events.len(),
        right as f64 / events.len().max(1) as f64,
        right as f64 / captioned.len().max(1) as f64,
        captioned.len(),
        placed.len() - captioned.len()
    );
    println!(
        "caption start - onset: p50 {:+.2} s, p95 {:+.2} s",
        percentile(&delays, 0.5),
        percentile(&delays, 0.95)
    );
    println!(
        "captions over speech alone: {} in {:.1} min; over everyday sounds alone: {}",
        speech.len(),
        speech_hours * 60.0,
        everyday.len()
    );
    for w in &wrong {
        println!("caption matching no clip: {w}");
    }
    for (at, text) in speech {
        println!("caption over speech alone: {text} at {at:.1} s");
    }
}

fn main() -> std::process::ExitCode {
    exit("lalm-sound-eval", main_())
}
