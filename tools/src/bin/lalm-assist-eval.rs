//! lalm-assist-eval: the assistant of `lalm-respond` (`assistant-model`) measured in the loop.
//!
//! 1. **Proactive decisions**, scored as Proactive-Sound-Bench scores them (RESPOND or
//!    IGNORE, right or wrong per item). The items are the benchmark's (listed in
//!    `tests/data/proactive-items.tsv` with their category and decision); each is stood in
//!    for by a real recording of the class that sounds like its description (the clips of
//!    `scripts/fetch-sounds.sh`), placed between `--gap` seconds of real speech. One stream
//!    holds every item; default `lalm-interact` runs over it as fast as it goes, once per
//!    `--modes` entry, the mode being the `assistant` key given to every built-in sound
//!    class:
//!    - `decide`: the model decides about respond-class sounds (the others only inform it);
//!    - `respond`: the model must speak about respond-class sounds;
//!    - `decide-all`: the model decides about every sound it is told of, everyday ones too.
//!
//!    An item counts as RESPOND when a final `lalm-response` with `kind=interjection` starts
//!    within `--tolerance` seconds of the clip. The rules alone (a sound-event alert, no
//!    model) are scored from the same runs.
//! 2. **Meeting questions**: `--meetings` generated meetings (espeak-ng voices: mechanics of
//!    the speech, real ASR), each telling facts in turn and then asking "Hey assistant, …"
//!    about each of them, paced in real time. An answer is right when it holds the fact.
//!    The meetings are transcribed with `--qa-asr` (default moonshine-base, the loop's own;
//!    whisper-base for comparison).
//! 3. **Speed**, from the paced run: the time from the end of the spoken question to the
//!    answer's first text (p50, p95), the same from the moment the question's final transcript
//!    was out (the model's share), tokens per second, and the process's peak memory.
//!
//! Usage: lalm-assist-eval [--part proactive|qa|all] [--model PKG] [--modes M,M,...]
//!                         [--gap S] [--tolerance S] [--meetings N] [--sounds DIR]
//!                         [--qa-asr MODEL] [--set NAME=VALUE]... [--json FILE]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use soundflow::decide::alerts::SoundRole;
use soundflow::decide::alerts::classes::CLASSES;

use lalm_tools::cli::Flags;
use lalm_tools::pipeline::{error_text, init, launch_loop, quote};
use lalm_tools::proc::peak_rss_mib;
use lalm_tools::rng::Lcg;
use lalm_tools::speech::speak_s16;
use lalm_tools::wav::{SpeechPool, onset_offset, read_s16_mono, write_s16_mono};
use lalm_tools::{Res, bench_cache_dir, exit, percentile, sounds_dir};

const USAGE: &str = "usage: lalm-assist-eval [--part proactive|qa|all] [--model PKG] \
                     [--modes M,M,...] [--gap S] [--tolerance S] [--meetings N] [--sounds DIR] \
                     [--qa-asr MODEL] [--set NAME=VALUE]... [--json FILE]";
const RATE: u32 = 16_000;
const ITEMS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/proactive-items.tsv"
);
const CLIPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/real-sounds.tsv");
const PAPER: (f64, f64) = lalm_tools::PSB_PAPER_ACCURACY;
const MODES: &[&str] = &["decide", "respond", "decide-all"];
/// Buffer period of the paced run.
const PERIOD_MS: u64 = 20;

struct Opts {
    part: String,
    model: String,
    modes: Vec<String>,
    gap: f64,
    tolerance: f64,
    meetings: u32,
    sounds: Option<PathBuf>,
    qa_asr: String,
    props: Vec<(String, String)>,
    json: Option<PathBuf>,
}

fn parse_args() -> Res<Option<Opts>> {
    let mut a = Flags::new(std::env::args().skip(1), USAGE);
    let mut o = Opts {
        part: "all".into(),
        model: "qwen2.5-0.5b".into(),
        modes: MODES.iter().map(|m| m.to_string()).collect(),
        gap: 6.0,
        tolerance: 1.0,
        meetings: 2,
        sounds: None,
        qa_asr: "moonshine-base".into(),
        props: Vec::new(),
        json: None,
    };
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--part" => o.part = a.value()?,
            "--model" => o.model = a.value()?,
            "--modes" => o.modes = a.value()?.split(',').map(|m| m.trim().into()).collect(),
            "--gap" => o.gap = a.value()?.parse()?,
            "--tolerance" => o.tolerance = a.value()?.parse()?,
            "--meetings" => o.meetings = a.positive()?,
            "--sounds" => o.sounds = Some(a.value()?.into()),
            "--qa-asr" => o.qa_asr = a.value()?,
            "--set" => {
                let kv = a.value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--set takes NAME=VALUE, not {kv}"))?;
                o.props.push((k.into(), v.into()));
            }
            "--json" => o.json = Some(a.value()?.into()),
            _ => return Err(a.unknown()),
        }
    }
    if a.asked_for_help() {
        return Ok(None);
    }
    if !["proactive", "qa", "all"].contains(&o.part.as_str()) {
        return Err(format!("--part must be proactive, qa or all, not {}", o.part).into());
    }
    if let Some(m) = o.modes.iter().find(|m| !MODES.contains(&m.as_str())) {
        return Err(format!("unknown mode {m}; modes: {}", MODES.join(", ")).into());
    }
    Ok(Some(o))
}

/// The rows of a tab-separated table with a header (lines starting with `#` are notes).
fn table(path: &str) -> Res<Vec<BTreeMap<String, String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| format!("{path}: empty"))?
        .split('\t')
        .map(|h| h.trim().to_string())
        .collect();
    Ok(lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(|f| f.trim().to_string()))
                .collect()
        })
        .collect())
}

fn field<'a>(row: &'a BTreeMap<String, String>, key: &str) -> Res<&'a str> {
    row.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("a row has no {key}").into())
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    category: String,
    description: String,
    respond: bool,
    class: String,
    clip: String,
    onset: f64,
    end: f64,
}

/// Every benchmark item with a clip of its class, clips of a class taken in turn; the items
/// interleaved by class, so that a class's cooldown never hides its next item.
fn items() -> Res<Vec<Item>> {
    let mut clips: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in table(CLIPS)? {
        clips
            .entry(field(&row, "class")?.into())
            .or_default()
            .push(field(&row, "id")?.into());
    }
    let mut by_class: BTreeMap<String, std::collections::VecDeque<Item>> = BTreeMap::new();
    for row in table(ITEMS)? {
        let class = field(&row, "class")?.to_string();
        let pool = clips
            .get(&class)
            .ok_or_else(|| format!("{ITEMS}: no recording of class {class}"))?;
        let queue = by_class.entry(class.clone()).or_default();
        let clip = pool[queue.len() % pool.len()].clone();
        queue.push_back(Item {
            id: field(&row, "id")?.into(),
            category: format!("{} / {}", field(&row, "domain")?, field(&row, "category")?),
            description: field(&row, "description")?.into(),
            respond: field(&row, "decision")? == "RESPOND",
            class,
            clip,
            onset: 0.0,
            end: 0.0,
        });
    }
    let mut out = Vec::new();
    while by_class.values().any(|q| !q.is_empty()) {
        for q in by_class.values_mut() {
            out.extend(q.pop_front());
        }
    }
    Ok(out)
}

/// A rules file giving every built-in sound class the `assistant` key of `mode`.
fn mode_rules(mode: &str, dir: &Path) -> Res<PathBuf> {
    let mut text = String::from("include-defaults = true\n");
    for c in CLASSES {
        let assistant = match (mode, c.role) {
            ("decide-all", _) => "decide",
            (_, SoundRole::Ignore) => "silent",
            (m, SoundRole::Respond) => m,
        };
        text += &format!(
            "\n[[rule]]\nname = \"{0}\"\nkind = \"sound-event\"\nlabel = \"{0}\"\nassistant = \"{assistant}\"\n",
            c.name
        );
    }
    let path = dir.join(format!("rules-{mode}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A bus message of the loop that the scoring reads, with the pipeline running time it was
/// posted at (seconds).
#[derive(Debug, Clone)]
struct Msg {
    name: String,
    kind: String,
    text: String,
    prompt: String,
    is_final: bool,
    tokens: u32,
    start: f64,
    end: f64,
    posted: f64,
}

/// Runs `lalm-interact` over `wav` (paced in real time with `live`) and collects its
/// `lalm-alert`, `lalm-sound`, `lalm-response` and `lalm-transcript` messages.
fn run(wav: &Path, o: &Opts, rules: Option<&Path>, asr: Option<&str>) -> Res<Vec<Msg>> {
    let live = asr.is_some();
    let pacing = if live {
        format!(
            "audiobuffersplit output-buffer-duration=1/{} ! identity sync=true ts-offset={} ! ",
            1000 / PERIOD_MS,
            PERIOD_MS * 1_000_000
        )
    } else {
        String::new()
    };
    let (pipeline, lalm, bus) = launch_loop(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! {pacing}\
         lalm-interact name=loop ! fakesink sync=false",
        quote(wav)?
    ))?;
    lalm.set_property("assistant-model", &o.model);
    if let Some(m) = asr {
        lalm.set_property_from_str("asr-model", m);
    }
    if let Some(r) = rules {
        lalm.set_property("rules", r.to_str().ok_or("rules path is not UTF-8")?);
    }
    for (k, v) in &o.props {
        if lalm.find_property(k).is_none() {
            return Err(format!("lalm-interact has no property {k}").into());
        }
        lalm.set_property_from_str(k, v);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (weak, sink) = (pipeline.downgrade(), seen.clone());
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(el) = msg.view()
            && let Some(s) = el.structure()
            && [
                "lalm-alert",
                "lalm-sound",
                "lalm-response",
                "lalm-transcript",
            ]
            .contains(&s.name().as_str())
        {
            let posted = weak
                .upgrade()
                .and_then(|p| p.current_running_time())
                .map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
            let text = |k: &str| s.get::<String>(k).unwrap_or_default();
            let secs = |k: &str| s.get::<u64>(k).map_or(f64::NAN, |v| v as f64 / 1e9);
            let m = Msg {
                name: s.name().to_string(),
                kind: text("kind"),
                text: text("text"),
                prompt: text("prompt"),
                is_final: s.get::<bool>("final").unwrap_or(true),
                tokens: s.get::<u32>("tokens").unwrap_or(0),
                start: secs("start"),
                end: secs("end"),
                posted,
            };
            if let Ok(mut v) = sink.lock() {
                v.push(m);
            }
        }
        gst::BusSyncReply::Pass
    });
    pipeline.set_state(gst::State::Playing)?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(600)) else {
            break Err("no message for ten minutes".into());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(error_text(e)),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    let v = seen.lock().map_err(|_| "message list poisoned")?.clone();
    Ok(v)
}

fn pct(right: usize, n: usize) -> String {
    if n == 0 {
        "–".into()
    } else {
        format!("{:.1} %", 100.0 * right as f64 / n as f64)
    }
}

/// One way of deciding, scored over the items.
struct Scored {
    name: String,
    said: Vec<bool>,
}

fn proactive(o: &Opts, json: &mut serde_json::Map<String, serde_json::Value>) -> Res<()> {
    let sounds = match &o.sounds {
        Some(d) => d.clone(),
        None => sounds_dir()?,
    };
    let work = bench_cache_dir()?.join("assist-eval");
    std::fs::create_dir_all(&work)?;
    let mut items = items()?;
    let mut speech = SpeechPool::new(&sounds.join("speech"), RATE)?;
    let gap = (o.gap * RATE as f64) as usize;
    let mut stream = speech.take(gap)?;
    for it in &mut items {
        let x = read_s16_mono(&sounds.join("clips").join(format!("{}.wav", it.clip)), RATE)?;
        it.onset = (stream.len() + onset_offset(&x, RATE)) as f64 / RATE as f64;
        stream.extend_from_slice(&x);
        it.end = stream.len() as f64 / RATE as f64;
        stream.extend(speech.take(gap)?);
    }
    let wav = work.join("proactive.wav");
    write_s16_mono(&wav, RATE, &stream)?;
    let minutes = stream.len() as f64 / RATE as f64 / 60.0;
    println!(
        "proactive: {} Proactive-Sound-Bench items ({} RESPOND, {} IGNORE) as real recordings \
         between real speech, {minutes:.1} min; model {}",
        items.len(),
        items.iter().filter(|i| i.respond).count(),
        items.iter().filter(|i| !i.respond).count(),
        o.model
    );
    let within =
        |m: &Msg, it: &Item| m.start >= it.onset - o.tolerance && m.start <= it.end + o.tolerance;
    let mut scored: Vec<Scored> = Vec::new();
    let mut replies: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for mode in &o.modes {
        let t0 = std::time::Instant::now();
        let msgs = run(&wav, o, Some(&mode_rules(mode, &work)?), None)?;
        let said: Vec<bool> = items
            .iter()
            .map(|it| {
                msgs.iter().any(|m| {
                    m.name == "lalm-response"
                        && m.kind == "interjection"
                        && m.is_final
                        && within(m, it)
                })
            })
            .collect();
        println!(
            "  mode {mode}: ran in {:.0} s, {} interjections, {} silent decisions",
            t0.elapsed().as_secs_f64(),
            msgs.iter()
                .filter(|m| m.kind == "interjection" && m.is_final)
                .count(),
            msgs.iter().filter(|m| m.kind == "silent").count()
        );
        if scored.is_empty() {
            scored.push(Scored {
                name: "rules alone".into(),
                said: items
                    .iter()
                    .map(|it| {
                        msgs.iter().any(|m| {
                            m.name == "lalm-alert" && m.kind == "sound-event" && within(m, it)
                        })
                    })
                    .collect(),
            });
        }
        replies.insert(
            mode.clone(),
            msgs.iter()
                .filter(|m| m.kind == "interjection" && m.is_final)
                .map(|m| (m.prompt.clone(), m.text.clone()))
                .collect(),
        );
        scored.push(Scored {
            name: format!("model, {mode}"),
            said,
        });
    }

    let mut cats: Vec<String> = items.iter().map(|i| i.category.clone()).collect();
    cats.sort();
    cats.dedup();
    print!("| category | items |");
    for s in &scored {
        print!(" {} |", s.name);
    }
    println!();
    println!("|{}", " --- |".repeat(2 + scored.len()));
    let mut summary = serde_json::Map::new();
    for cat in cats.iter().map(Some).chain([None]) {
        let idx: Vec<usize> = (0..items.len())
            .filter(|&i| cat.is_none_or(|c| &items[i].category == c))
            .collect();
        print!(
            "| {} | {} |",
            cat.map_or("**all**", |c| c.as_str()),
            idx.len()
        );
        for s in &scored {
            let right = idx
                .iter()
                .filter(|&&i| s.said[i] == items[i].respond)
                .count();
            print!(" {} |", pct(right, idx.len()));
        }
        println!();
    }
    for s in &scored {
        let count = |respond: bool, said: bool| {
            (0..items.len())
                .filter(|&i| items[i].respond == respond && s.said[i] == said)
                .count()
        };
        let (tp, fn_, tn, fp) = (
            count(true, true),
            count(true, false),
            count(false, false),
            count(false, true),
        );
        let acc = 100.0 * (tp + tn) as f64 / items.len().max(1) as f64;
        println!(
            "{}: accuracy {acc:.1} % (paper: {} % single, {} % multi); RESPOND items answered \
             {tp}/{}, IGNORE items left alone {tn}/{}",
            s.name,
            PAPER.0,
            PAPER.1,
            tp + fn_,
            tn + fp
        );
        summary.insert(
            s.name.clone(),
            serde_json::json!({
                "accuracy": acc, "respond_answered": tp, "respond_missed": fn_,
                "ignore_kept": tn, "ignore_answered": fp,
                "per_item": items.iter().zip(&s.said).map(|(it, said)| serde_json::json!({
                    "id": it.id, "description": it.description, "class": it.class,
                    "clip": it.clip, "decision": if it.respond { "RESPOND" } else { "IGNORE" },
                    "said": said,
                })).collect::<Vec<_>>(),
            }),
        );
    }
    for (mode, r) in &replies {
        for (prompt, text) in r.iter().take(6) {
            println!("  {mode}: ({prompt}) {text}");
        }
    }
    json.insert("proactive".into(), serde_json::Value::Object(summary));
    json.insert("proactive_replies".into(), serde_json::to_value(&replies)?);
    Ok(())
}

/// A fact told in a meeting and the question about it: the sentence, the question, and the
/// words of which an answer must hold one.
fn facts(rng: &mut Lcg) -> Vec<(String, String, Vec<String>)> {
    let pick = |rng: &mut Lcg, v: &[&'static str]| v[rng.pick(v.len())];
    let names = [
        "Sarah", "David", "Maria", "Peter", "Anna", "James", "Laura", "Thomas",
    ];
    let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
    let cities = ["Paris", "Berlin", "Madrid", "Chicago", "Boston", "Toronto"];
    let months = ["March", "April", "June", "July", "October", "November"];
    let numbers = [
        ("twelve", "12"),
        ("fifteen", "15"),
        ("twenty", "20"),
        ("thirty", "30"),
        ("forty", "40"),
    ];
    let colors = ["green", "blue", "red", "yellow"];
    let hours = [("two", "2"), ("three", "3"), ("four", "4"), ("ten", "10")];
    let (n, day) = (pick(rng, &names), pick(rng, &days));
    let city = pick(rng, &cities);
    let month = pick(rng, &months);
    let (num_w, num_d) = numbers[rng.pick(numbers.len())];
    let color = pick(rng, &colors);
    let (hour_w, hour_d) = hours[rng.pick(hours.len())];
    let owner = pick(rng, &names);
    let v = |w: &[&str]| w.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    vec![
        (
            format!("{n} will present the budget on {day} morning."),
            "Hey assistant, who will present the budget?".into(),
            v(&[n]),
        ),
        (
            format!("The new office will open in {city} next year."),
            "Hey assistant, where will the new office open?".into(),
            v(&[city]),
        ),
        (
            format!("The product launch moves to {month} because the tests are late."),
            "Hey assistant, when is the product launch?".into(),
            v(&[month]),
        ),
        (
            format!("We need {num_w} more laptops for the new team."),
            "Hey assistant, how many laptops do we need?".into(),
            v(&[num_w, num_d]),
        ),
        (
            format!("The client call is at {hour_w} o'clock this afternoon."),
            "Hey assistant, what time is the client call?".into(),
            v(&[hour_w, hour_d]),
        ),
        (
            format!("We picked the {color} design for the new logo."),
            "Hey assistant, which design did we pick for the logo?".into(),
            v(&[color]),
        ),
        (
            format!("{owner} is in charge of the hiring plan."),
            "Hey assistant, who is in charge of the hiring plan?".into(),
            v(&[owner]),
        ),
    ]
}

const FILLERS: &[&str] = &[
    "Good morning everyone, thanks for joining.",
    "Let us go through the updates one by one.",
    "That sounds good to me.",
    "Any other questions before we move on?",
];

/// The last sample louder than about -50 dBFS, plus one.
fn speech_end(x: &[i16]) -> usize {
    x.iter()
        .rposition(|s| s.unsigned_abs() > 100)
        .map_or(0, |i| i + 1)
}

struct Question {
    text: String,
    expect: Vec<String>,
    /// Where its audio starts and its speech ends, seconds.
    start: f64,
    end: f64,
}

/// One generated meeting: what was said (start, text), the questions, and its recording.
struct Meeting {
    lines: Vec<(f64, String)>,
    questions: Vec<Question>,
    wav: PathBuf,
}

/// The voices the meetings use: the two that both ASR models hear best (the others, such as
/// en-029 and en-gb-scotland, cost most of the wake phrases in a first run).
const QA_VOICES: &[&str] = &["en-us", "en-gb"];

fn meeting(work: &Path, index: u32, rng: &mut Lcg) -> Res<Meeting> {
    let silence = |s: f64| vec![0i16; (s * RATE as f64) as usize];
    let mut audio = silence(1.0);
    let mut lines = Vec::new();
    let mut n = 0;
    let mut say = |text: &str, audio: &mut Vec<i16>| -> Res<(f64, f64)> {
        let path = work.join(format!("qa-{index}-{n}.wav"));
        speak_s16(text, QA_VOICES[n % QA_VOICES.len()], 150, &path)?;
        n += 1;
        let x = read_s16_mono(&path, RATE)?;
        let start = audio.len() as f64 / RATE as f64;
        let end = (audio.len() + speech_end(&x)) as f64 / RATE as f64;
        audio.extend_from_slice(&x);
        audio.extend(silence(1.0));
        Ok((start, end))
    };
    let told = facts(rng);
    lines.push((say(FILLERS[0], &mut audio)?.0, FILLERS[0].to_string()));
    for (i, (fact, _, _)) in told.iter().enumerate() {
        lines.push((say(fact, &mut audio)?.0, fact.clone()));
        if i % 3 == 2 {
            let filler = FILLERS[1 + (i / 3) % 3];
            lines.push((say(filler, &mut audio)?.0, filler.to_string()));
        }
    }
    // The questions come after all the facts, in a shuffled order.
    let mut order: Vec<usize> = (0..told.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.pick(i + 1));
    }
    let mut questions = Vec::new();
    for i in order {
        let (_, q, expect) = &told[i];
        let (start, end) = say(q, &mut audio)?;
        questions.push(Question {
            text: q.clone(),
            expect: expect.clone(),
            start,
            end,
        });
        // Time to answer before the next question.
        audio.extend(silence(5.0));
    }
    let wav = work.join(format!("qa-{index}.wav"));
    write_s16_mono(&wav, RATE, &audio)?;
    Ok(Meeting {
        lines,
        questions,
        wav,
    })
}

/// The answer holds one of the expected words.
fn holds(answer: &str, expect: &[String]) -> bool {
    let low = answer.to_lowercase();
    expect.iter().any(|w| {
        low.split(|c: char| !c.is_alphanumeric())
            .any(|t| t == w.as_str())
    })
}

/// The same questions asked of the model directly, over the exact text of the meeting: the
/// model's share of the accuracy, without the ASR's mistakes. Uses the element's default
/// instruction and its request line.
fn qa_on_text(o: &Opts, meetings: &[Meeting]) -> Res<(usize, Vec<f64>)> {
    use soundflow::respond::assistant::interaction::{Assistant, LanguageModel, stamp};
    let prompt: String = gst::ElementFactory::make("lalm-respond")
        .build()?
        .property("assistant-prompt");
    let pkg = soundflow::models::package::ModelPackage::find(&o.model)?;
    let rt = soundflow::models::runtime::Runtime::get(None)?;
    let opts = soundflow::models::runtime::SessionOptions {
        intra_threads: 2,
        shared: false,
        ..Default::default()
    };
    let model = Arc::new(LanguageModel::load(&pkg, &rt, &opts)?);
    let (mut right, mut first) = (0, Vec::new());
    for m in meetings {
        let mut a = Assistant::new(model.clone(), &prompt, 256)?;
        for (at, line) in &m.lines {
            a.hear(&format!("{} {line}", stamp(*at)))?;
        }
        for q in &m.questions {
            let t0 = std::time::Instant::now();
            let mut t1 = None;
            let r = a.ask(
                &format!("{} (to you): {}", stamp(q.start), q.text),
                60,
                &Default::default(),
                |_| {
                    t1.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                },
            )?;
            first.extend(t1);
            let ok = holds(&r.text, &q.expect);
            right += ok as usize;
            println!(
                "  text: {} {:?} -> {:?}",
                if ok { "right" } else { "WRONG" },
                q.text,
                r.text
            );
        }
    }
    Ok((right, first))
}

fn qa(o: &Opts, json: &mut serde_json::Map<String, serde_json::Value>) -> Res<()> {
    let work = bench_cache_dir()?.join("assist-eval");
    std::fs::create_dir_all(&work)?;
    let mut rng = Lcg(13);
    let meetings: Vec<Meeting> = (0..o.meetings)
        .map(|i| meeting(&work, i, &mut rng))
        .collect::<Res<_>>()?;
    let total: usize = meetings.iter().map(|m| m.questions.len()).sum();
    println!(
        "meeting questions: {} meetings (espeak-ng en-us and en-gb), {total} questions, paced \
         in real time, one run per meeting; model {}, ASR {}",
        o.meetings, o.model, o.qa_asr
    );
    let mut right = 0;
    let mut woken = 0;
    let mut first_after_end = Vec::new();
    let mut first_after_final = Vec::new();
    let mut rates = Vec::new();
    let mut rows = Vec::new();
    // How long after its utterance ended each final transcript came out: what the model's
    // work costs the subtitles (compare a run with `--model none`).
    let mut subtitle_delay = Vec::new();
    for m in &meetings {
        let msgs = run(&m.wav, o, None, Some(&o.qa_asr))?;
        subtitle_delay.extend(
            msgs.iter()
                .filter(|x| x.name == "lalm-transcript" && x.is_final)
                .map(|x| x.posted - x.end),
        );
        for q in &m.questions {
            let ours = |m: &&Msg| {
                m.name == "lalm-response"
                    && m.kind == "answer"
                    && m.start >= q.start - 0.5
                    && m.start < q.end
            };
            let answer = msgs.iter().filter(ours).find(|m| m.is_final);
            let first = msgs.iter().find(ours);
            let transcript = msgs.iter().find(|m| {
                m.name == "lalm-transcript" && m.is_final && m.start < q.end && m.end > q.start
            });
            let text = answer.map_or(String::new(), |a| a.text.clone());
            let ok = holds(&text, &q.expect);
            right += ok as usize;
            woken += answer.is_some() as usize;
            if let Some(f) = first {
                first_after_end.push(f.posted - q.end);
                if let Some(t) = transcript {
                    first_after_final.push(f.posted - t.posted);
                }
            }
            if let (Some(f), Some(a)) = (first, answer)
                && a.tokens > 1
                && a.posted > f.posted
            {
                // The first token's text is out at `f`; the others follow until `a`.
                rates.push((a.tokens - 1) as f64 / (a.posted - f.posted));
            }
            println!(
                "  loop: {} {:?} -> {:?}{}",
                if ok { "right" } else { "WRONG" },
                q.text,
                text,
                transcript.map_or(" (question not transcribed)".into(), |t| format!(
                    " (heard {:?})",
                    t.text
                ))
            );
            rows.push(serde_json::json!({
                "question": q.text, "expect": q.expect, "answer": text, "right": ok,
                "heard": transcript.map(|t| t.text.clone()),
                "first_text_after_end_s": first.map(|f| f.posted - q.end),
            }));
        }
    }
    let peak = peak_rss_mib();
    println!(
        "final transcripts after the end of their utterance: p50 {:.2} s, p95 {:.2} s ({} finals)",
        percentile(&subtitle_delay, 0.5),
        percentile(&subtitle_delay, 0.95),
        subtitle_delay.len()
    );
    let (text_right, text_first) = if o.model == "none" {
        (0, Vec::new())
    } else {
        qa_on_text(o, &meetings)?
    };
    println!(
        "meeting questions answered right through the loop: {right}/{total} ({}; the wake rule \
         fired on {woken}); on the exact text: {text_right}/{total} ({})",
        pct(right, total),
        pct(text_right, total)
    );
    println!(
        "first text after the end of the question: p50 {:.2} s, p95 {:.2} s ({} answers); after \
         its final transcript: p50 {:.2} s, p95 {:.2} s; after the request, text only: p50 \
         {:.2} s, p95 {:.2} s",
        percentile(&first_after_end, 0.5),
        percentile(&first_after_end, 0.95),
        first_after_end.len(),
        percentile(&first_after_final, 0.5),
        percentile(&first_after_final, 0.95),
        percentile(&text_first, 0.5),
        percentile(&text_first, 0.95)
    );
    println!(
        "tokens per second while answering: p50 {:.1}; peak memory of the loop's process (VAD, \
         tagger, ASR, turn model and language model): {}",
        percentile(&rates, 0.5),
        peak.map_or("?".into(), |m| format!("{m:.0} MiB"))
    );
    json.insert(
        "qa".into(),
        serde_json::json!({
            "questions": rows, "right": right, "woken": woken, "total": total,
            "text_right": text_right,
            "first_text_after_end_s": first_after_end,
            "first_text_after_final_s": first_after_final,
            "first_text_after_request_s": text_first,
            "tokens_per_s": rates, "peak_rss_mib": peak,
            "subtitle_delay_s": subtitle_delay,
        }),
    );
    Ok(())
}

fn main_() -> Res<()> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    init()?;
    let mut json = serde_json::Map::new();
    json.insert("model".into(), o.model.clone().into());
    if o.part != "qa" {
        proactive(&o, &mut json)?;
    }
    if o.part != "proactive" {
        qa(&o, &mut json)?;
    }
    if let Some(path) = &o.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::Value::Object(json))? + "\n",
        )?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit("lalm-assist-eval", main_())
}
