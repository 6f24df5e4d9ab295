//! lalm-meeting: writes a synthetic "meeting" with known alert times, for the alert tests,
//! the alert benchmark and demos of `lalm-listen`.
//!
//! espeak-ng voices take turns (pauses of 0.6–2.5 s); some sentences start with a watched
//! word ("budget", "contract"; words Whisper base hears right in every espeak-ng voice used), some address the assistant ("Hey assistant, what …?"), one
//! is hard-clipped, one is spoken far too quietly. Between turns: smoke and CO alarm
//! patterns and alarm-clock beeping, sirens (wail, yelp, hi-lo), phones (North-American,
//! UK double ring, electronic trill) and doorbells (ding-dong, four-note chime), synthesized
//! here with other parameters than the tagger's training data; two stretches of dead air.
//! Pink noise runs underneath at -66 dBFS.
//!
//! With `--sounds DIR` (the real recordings of `tests/data/real-sounds.tsv`, extracted by
//! `scripts/fetch-sounds.sh`), the sound events are real recorded ones instead: a siren, a
//! bell phone, a doorbell, breaking glass, a dog, a cough, an explosion and gunfire from the
//! calibration set, whose classes the built-in rules name. The default tagger (an AudioSet
//! tagger) hears the synthesized tones as what they are, sine waves and beeps.
//!
//! Output in `--out DIR`: `meeting.wav` (16 kHz mono S16), `rules.toml` (the built-in rules
//! plus a keyword rule), `truth.json` (every alert the rules should raise: rule, kind, label,
//! onset in seconds).
//!
//! Usage: lalm-meeting [--minutes N] [--seed N] [--sounds DIR] --out DIR

use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

use lalm_tools::Res;
use lalm_tools::rng::Lcg;
use lalm_tools::wav::{onset_offset, read_s16_mono};

const RATE: usize = 16000;
const USAGE: &str = "usage: lalm-meeting [--minutes N] [--seed N] [--sounds DIR] --out DIR";

/// The real recordings a meeting takes its sound events from (`--sounds`): calibration clips
/// (never the test set's) and the built-in class each one raises.
const REAL_EVENTS: &[(&str, &str)] = &[
    ("siren-scorched-firetruck", "siren"),
    ("phone-linphone-oldphone", "phone"),
    ("doorbell-qgo", "doorbell"),
    ("glass-minetest-1", "glass"),
    ("dog-lugaru-bark", "dog"),
    ("cough-scratch-male", "cough"),
    ("explosion-netpanzer-1", "explosion"),
    ("gunshot-netpanzer-hv", "gunshot"),
];

const RULES: &str = r#"# The meeting's rules: the built-in ones (sound events, dead air, level, wake phrase)
# and one keyword rule.
include-defaults = true

[[rule]]
name = "watch"
kind = "keyword"
words = ["budget", "contract"]
"#;

const PLAIN: &[&str] = &[
    "Good morning everyone, thanks for joining the weekly call.",
    "Let us start with a quick round of updates from each team.",
    "The design review went well and we agreed on the new layout.",
    "I spoke with the customer yesterday and they are happy so far.",
    "We still need two more people for the testing effort next month.",
    "The new office furniture should arrive at the end of the week.",
    "Marketing wants a short video for the product launch.",
    "I will send the slides to everybody right after this meeting.",
    "The server migration finished without any problems on Sunday.",
    "Our hiring plan for the spring is almost complete.",
    "Please remember to fill in your holiday requests soon.",
    "The support team closed more tickets than ever last week.",
    "We are waiting for the legal team to review the agreement.",
    "The training session on Thursday will be recorded for everyone.",
    "I think we should move the retrospective to the afternoon.",
    "Sales numbers in the north region look very promising.",
    "The new coffee machine in the kitchen is finally working.",
    "Let us take the remaining questions offline after the call.",
    "The documentation has been updated with the latest changes.",
    "We have a visitor from the partner company next Tuesday.",
];

/// Each starts with its watched word (after at most "The"), so the word's onset is within a
/// few hundred milliseconds of the sentence's.
const KEYWORD: &[&str] = &[
    "Budget planning for the next quarter starts on Monday.",
    "The contract with the supplier ends in June.",
    "Budget approval came through this morning, which is great news.",
    "The contract renewal is on the agenda for next week.",
];

const WAKE: &[&str] = &[
    "Hey assistant, what is the next item on the agenda?",
    "Hey assistant, when is our next team meeting?",
    "Hey assistant, how many people joined the call today?",
];

const VOICES: &[&str] = &["en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m4"];

fn secs(s: f32) -> usize {
    (s * RATE as f32) as usize
}

fn tone(out: &mut Vec<f32>, freqs: &[f32], dur: f32, amp: f32, harmonics: bool) {
    let n = secs(dur);
    let fade = secs(0.005).max(1);
    for i in 0..n {
        let t = i as f32 / RATE as f32;
        let mut v = 0.0;
        for f in freqs {
            v += (2.0 * PI * f * t).sin();
            if harmonics {
                v += (2.0 * PI * 3.0 * f * t).sin() / 3.0;
            }
        }
        let env = (i.min(n - i) as f32 / fade as f32).min(1.0);
        out.push(amp * env * v / freqs.len() as f32);
    }
}

fn silence(out: &mut Vec<f32>, dur: f32) {
    out.extend(std::iter::repeat_n(0.0, secs(dur)));
}

/// A sine whose frequency follows `f(t)`.
fn sweep(out: &mut Vec<f32>, dur: f32, amp: f32, f: impl Fn(f32) -> f32) {
    let mut phase = 0.0f32;
    let n = secs(dur);
    for i in 0..n {
        let t = i as f32 / RATE as f32;
        phase += 2.0 * PI * f(t) / RATE as f32;
        let v = phase.sin() + 0.3 * (2.0 * phase).sin();
        let env = (i.min(n - i) as f32 / secs(0.01) as f32).min(1.0);
        out.push(amp * env * v / 1.3);
    }
}

fn decaying(out: &mut Vec<f32>, f: f32, dur: f32, amp: f32, decay: f32) {
    for i in 0..secs(dur) {
        let t = i as f32 / RATE as f32;
        let v = (2.0 * PI * f * t).sin()
            + 0.5 * (2.0 * PI * 2.0 * f * t).sin()
            + 0.25 * (2.0 * PI * 3.01 * f * t).sin();
        let attack = (t / 0.004).min(1.0);
        out.push(amp * attack * (-t / decay).exp() * v / 1.75);
    }
}

/// One sound event of `label`: its samples (starting with sound) and a description.
fn event(label: &str, variant: usize, rng: &mut Lcg) -> (Vec<f32>, String) {
    let mut x = Vec::new();
    let amp = rng.range_f32(0.15, 0.35);
    let what = match (label, variant % 3) {
        ("alarm", 0) => {
            let f = rng.range_f32(3000.0, 3300.0);
            for _ in 0..2 {
                for _ in 0..3 {
                    tone(&mut x, &[f], 0.5, amp, true);
                    silence(&mut x, 0.5);
                }
                silence(&mut x, 1.0);
            }
            format!("smoke alarm T3 at {f:.0} Hz")
        }
        ("alarm", 1) => {
            let f = rng.range_f32(2800.0, 3400.0);
            for _ in 0..3 {
                for _ in 0..4 {
                    tone(&mut x, &[f], 0.1, amp, true);
                    silence(&mut x, 0.1);
                }
                silence(&mut x, 1.2);
            }
            format!("CO alarm T4 at {f:.0} Hz")
        }
        ("alarm", _) => {
            let f = rng.range_f32(1800.0, 2600.0);
            for _ in 0..6 {
                for _ in 0..4 {
                    tone(&mut x, &[f], 0.08, amp, false);
                    silence(&mut x, 0.07);
                }
                silence(&mut x, 0.4);
            }
            format!("alarm clock beeping at {f:.0} Hz")
        }
        ("siren", 0) => {
            let (lo, hi, period) = (
                rng.range_f32(600.0, 750.0),
                rng.range_f32(1300.0, 1500.0),
                3.0,
            );
            sweep(&mut x, 6.0, amp, |t| {
                let p = (t / period).fract();
                let tri = if p < 0.5 { 2.0 * p } else { 2.0 - 2.0 * p };
                lo + (hi - lo) * tri
            });
            format!("wail siren {lo:.0}-{hi:.0} Hz")
        }
        ("siren", 1) => {
            let (lo, hi, period) = (
                rng.range_f32(650.0, 800.0),
                rng.range_f32(1400.0, 1600.0),
                rng.range_f32(0.25, 0.35),
            );
            sweep(&mut x, 4.0, amp, |t| lo + (hi - lo) * (t / period).fract());
            format!("yelp siren, {period:.2} s sweeps")
        }
        ("siren", _) => {
            let (a, b) = (rng.range_f32(430.0, 470.0), rng.range_f32(570.0, 620.0));
            sweep(&mut x, 5.0, amp, |t| {
                if (t / 0.55).floor() as i64 % 2 == 0 {
                    a
                } else {
                    b
                }
            });
            format!("hi-lo siren {a:.0}/{b:.0} Hz")
        }
        ("phone", 0) => {
            let d = rng.range_f32(-5.0, 5.0);
            tone(&mut x, &[440.0 + d, 480.0 + d], 2.0, amp, false);
            silence(&mut x, 4.0);
            tone(&mut x, &[440.0 + d, 480.0 + d], 2.0, amp, false);
            "North-American ring".into()
        }
        ("phone", 1) => {
            for _ in 0..3 {
                tone(&mut x, &[400.0, 450.0], 0.4, amp, false);
                silence(&mut x, 0.2);
                tone(&mut x, &[400.0, 450.0], 0.4, amp, false);
                silence(&mut x, 2.0);
            }
            "UK double ring".into()
        }
        ("phone", _) => {
            let (a, b, rate) = (
                rng.range_f32(1000.0, 1200.0),
                rng.range_f32(1300.0, 1600.0),
                rng.range_f32(14.0, 20.0),
            );
            for _ in 0..3 {
                sweep(&mut x, 1.5, amp, |t| {
                    if (t * rate).floor() as i64 % 2 == 0 {
                        a
                    } else {
                        b
                    }
                });
                silence(&mut x, 1.0);
            }
            format!("electronic trill ring {a:.0}/{b:.0} Hz at {rate:.0} Hz")
        }
        ("doorbell", 1) => {
            let base = rng.range_f32(500.0, 620.0);
            // Notes every half second, each ringing on under the next.
            for (i, r) in [1.26, 1.12, 1.0, 0.84].iter().enumerate() {
                let mut note = Vec::new();
                decaying(&mut note, base * r, 1.4, amp, 0.6);
                mix(&mut x, &note, secs(0.5 * i as f32));
            }
            format!("four-note chime from {base:.0} Hz")
        }
        ("doorbell", _) => {
            let hi = rng.range_f32(640.0, 720.0);
            for _ in 0..2 {
                let mut ding = Vec::new();
                decaying(&mut ding, hi, 1.2, amp, 0.5);
                decaying(&mut ding, hi * 0.8, 1.8, amp, 0.7);
                x.extend(ding);
                silence(&mut x, 0.6);
            }
            format!("ding-dong from {hi:.0} Hz")
        }
        _ => unreachable!("only the four labels are generated"),
    };
    (x, what)
}

fn mix(into: &mut Vec<f32>, x: &[f32], at: usize) {
    if into.len() < at + x.len() {
        into.resize(at + x.len(), 0.0);
    }
    for (a, b) in into[at..].iter_mut().zip(x) {
        *a += b;
    }
}

fn read_f32(path: &Path) -> Res<Vec<f32>> {
    let raw = path.with_extension("f32");
    let st = Command::new("sox")
        .arg(path)
        .args(["-t", "raw", "-e", "floating-point", "-b", "32", "-r"])
        .arg(RATE.to_string())
        .args(["-c", "1"])
        .arg(&raw)
        .status()?;
    if !st.success() {
        return Err(format!("sox could not convert {}", path.display()).into());
    }
    let bytes = std::fs::read(&raw)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn speak(dir: &Path, n: usize, text: &str, voice: &str, speed: u32) -> Res<Vec<f32>> {
    let wav = dir.join(format!("say-{n}.wav"));
    let st = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .map_err(|e| format!("espeak-ng: {e} (install espeak-ng)"))?;
    if !st.success() {
        return Err(format!("espeak-ng failed on {text:?}").into());
    }
    let mut x = read_f32(&wav)?;
    // Trim espeak's own silence so the onset is where the sample vector starts.
    let first = x.iter().position(|v| v.abs() > 0.01).unwrap_or(0);
    let last = x.iter().rposition(|v| v.abs() > 0.01).unwrap_or(x.len());
    x = x[first..=last.min(x.len() - 1)].to_vec();
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
    let gain = 0.08 / rms.max(1e-6);
    Ok(x.into_iter().map(|v| v * gain).collect())
}

struct Expected {
    rule: &'static str,
    kind: &'static str,
    label: String,
    onset: f32,
    what: String,
}

/// Pink noise (Paul Kellet's economy filter over white noise), RMS `rms`.
fn pink(n: usize, rms: f32, rng: &mut Lcg) -> Vec<f32> {
    let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
    let mut x: Vec<f32> = (0..n)
        .map(|_| {
            let w = rng.range_f32(-1.0, 1.0);
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            b0 + b1 + b2 + w * 0.1848
        })
        .collect();
    let r = (x.iter().map(|v| v * v).sum::<f32>() / n.max(1) as f32).sqrt();
    x.iter_mut().for_each(|v| *v *= rms / r.max(1e-9));
    x
}

/// A real recorded sound event: its samples from their onset on, and its class.
fn real_event(sounds: &Path, i: usize) -> Res<(Vec<f32>, &'static str, String)> {
    let (id, class) = REAL_EVENTS[i % REAL_EVENTS.len()];
    let x = read_s16_mono(&sounds.join("clips").join(format!("{id}.wav")), RATE as u32)?;
    let from = onset_offset(&x, RATE as u32);
    let samples = x[from..].iter().map(|&v| v as f32 / 32768.0).collect();
    Ok((samples, class, format!("real recording {id}")))
}

fn generate(minutes: f32, seed: u64, sounds: Option<&Path>, out: &Path) -> Res<()> {
    std::fs::create_dir_all(out)?;
    let tmp = out.join("parts");
    std::fs::create_dir_all(&tmp)?;
    let mut rng = Lcg(seed);
    let total = secs(minutes * 60.0);
    let mut audio: Vec<f32> = Vec::with_capacity(total + secs(30.0));
    let mut truth = Vec::new();
    // The plan: per minute, about two sound events; spread the specials over the meeting.
    let labels = ["alarm", "siren", "phone", "doorbell"];
    let n_events = ((minutes * 1.6).round() as usize).max(4);
    let n_dead = if minutes >= 4.0 { 2 } else { 1 };
    let mut specials: Vec<&str> = Vec::new();
    specials.extend(std::iter::repeat_n("event", n_events));
    specials.extend(std::iter::repeat_n("dead", n_dead));
    specials.extend(["keyword"; 4].iter().take(KEYWORD.len()));
    specials.extend(["wake"; 3]);
    specials.extend(["clip", "quiet"]);
    // Fisher-Yates with the seed, then slots spaced through the meeting.
    for i in (1..specials.len()).rev() {
        let j = rng.pick(i + 1);
        specials.swap(i, j);
    }
    let slot = total / (specials.len() + 1);
    let (mut said, mut ev_i, mut kw_i, mut wake_i, mut plain_i) = (0usize, 0usize, 0, 0, 0);
    let mut next_special = 0usize;
    silence(&mut audio, 1.0);
    let mut sound_end = 0usize;
    // Someone speaks between two specials, so two dead-air stretches never merge into one.
    let mut after_special = false;
    while audio.len() < total {
        let due = !after_special
            && next_special < specials.len()
            && audio.len() >= slot * (next_special + 1);
        after_special = due;
        let voice = VOICES[said % VOICES.len()];
        let speed = 150 + 10 * (said as u32 % 4);
        if !due {
            let text = PLAIN[plain_i % PLAIN.len()];
            plain_i += 1;
            let s = speak(&tmp, said, text, voice, speed)?;
            said += 1;
            audio.extend(s);
            sound_end = audio.len();
            silence(&mut audio, rng.range_f32(0.6, 2.5));
            continue;
        }
        let kind = specials[next_special];
        next_special += 1;
        let onset = audio.len() as f32 / RATE as f32;
        match kind {
            "event" => {
                let (x, rule, label, what) = match sounds {
                    Some(dir) => {
                        let (x, class, what) = real_event(dir, ev_i)?;
                        (x, class, class, what)
                    }
                    None => {
                        let label = labels[ev_i % labels.len()];
                        let (x, what) = event(label, ev_i / labels.len(), &mut rng);
                        (x, label_rule(label), label, what)
                    }
                };
                ev_i += 1;
                silence(&mut audio, 1.0);
                let onset = audio.len() as f32 / RATE as f32;
                audio.extend(x);
                sound_end = audio.len();
                silence(&mut audio, rng.range_f32(1.5, 3.0));
                truth.push(Expected {
                    rule,
                    kind: "sound-event",
                    label: label.into(),
                    onset,
                    what,
                });
            }
            "dead" => {
                silence(&mut audio, 13.0);
                truth.push(Expected {
                    rule: "dead-air",
                    kind: "dead-air",
                    label: "dead-air".into(),
                    // Dead air begins where the last sound ended, before the usual pause.
                    onset: sound_end as f32 / RATE as f32,
                    what: "13 s of dead air".into(),
                });
            }
            "keyword" => {
                let text = KEYWORD[kw_i % KEYWORD.len()];
                kw_i += 1;
                let s = speak(&tmp, said, text, voice, speed)?;
                said += 1;
                audio.extend(s);
                sound_end = audio.len();
                silence(&mut audio, rng.range_f32(0.8, 2.0));
                let word = if text.starts_with("The contract") {
                    "contract".to_string()
                } else {
                    "budget".to_string()
                };
                truth.push(Expected {
                    rule: "watch",
                    kind: "keyword",
                    label: word,
                    onset,
                    what: text.into(),
                });
            }
            "wake" => {
                let text = WAKE[wake_i % WAKE.len()];
                wake_i += 1;
                // The clearest voice: Whisper base hears "hey assistant" from en-gb-x-rp as
                // "K assistant", and the wake rule is about the rule, not the voice.
                let s = speak(&tmp, said, text, VOICES[0], 150)?;
                said += 1;
                audio.extend(s);
                sound_end = audio.len();
                silence(&mut audio, rng.range_f32(0.8, 2.0));
                truth.push(Expected {
                    rule: "wake",
                    kind: "respond",
                    label: "hey assistant".into(),
                    onset,
                    what: text.into(),
                });
            }
            "clip" => {
                let text = PLAIN[plain_i % PLAIN.len()];
                plain_i += 1;
                let s = speak(&tmp, said, text, voice, speed)?;
                said += 1;
                // Twenty times too loud: the peaks sit flat at full scale.
                audio.extend(s.iter().map(|v| (v * 20.0).clamp(-1.0, 1.0)));
                sound_end = audio.len();
                silence(&mut audio, rng.range_f32(0.8, 2.0));
                truth.push(Expected {
                    rule: "clipping",
                    kind: "level",
                    label: "clipping".into(),
                    onset,
                    what: format!("clipped speech: {text}"),
                });
            }
            _ => {
                let text = "I am not sure everybody can hear me from the back of the room, \
                            so I will keep this short and simple today.";
                let s = speak(&tmp, said, text, voice, speed)?;
                said += 1;
                // About -48 dBFS: audible over the noise, far below normal speech.
                audio.extend(s.iter().map(|v| v * 0.05));
                sound_end = audio.len();
                silence(&mut audio, rng.range_f32(0.8, 2.0));
                truth.push(Expected {
                    rule: "too-quiet",
                    kind: "level",
                    label: "quiet".into(),
                    onset,
                    what: "speech at about -48 dBFS".into(),
                });
            }
        }
    }
    silence(&mut audio, 1.0);
    let noise = pink(audio.len(), 0.0005, &mut rng);
    for (a, n) in audio.iter_mut().zip(noise) {
        *a = (*a + n).clamp(-1.0, 1.0);
    }
    write_wav(&out.join("meeting.wav"), &audio, &tmp)?;
    std::fs::write(out.join("rules.toml"), RULES)?;
    let json: Vec<serde_json::Value> = truth
        .iter()
        .map(|e| {
            serde_json::json!({
                "rule": e.rule, "kind": e.kind, "label": e.label,
                "onset": (e.onset as f64 * 1000.0).round() / 1000.0, "what": e.what,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "seconds": audio.len() as f64 / RATE as f64,
        "seed": seed,
        "alerts": json,
    });
    std::fs::write(
        out.join("truth.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "lalm-meeting: {:.1} s, {} sentences, {} expected alerts -> {}",
        audio.len() as f64 / RATE as f64,
        said,
        truth.len(),
        out.display()
    );
    Ok(())
}

fn label_rule(label: &str) -> &'static str {
    match label {
        "alarm" => "smoke-alarm",
        "siren" => "siren",
        "phone" => "phone",
        _ => "doorbell",
    }
}

fn write_wav(path: &Path, x: &[f32], tmp: &Path) -> Res<()> {
    let raw = tmp.join("meeting.f32");
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes)?;
    // No dither: the clipped stretch must stay flat at full scale.
    let st = Command::new("sox")
        .args(["-D", "-t", "raw", "-e", "floating-point", "-b", "32", "-r"])
        .arg(RATE.to_string())
        .args(["-c", "1"])
        .arg(&raw)
        .args(["-e", "signed-integer", "-b", "16"])
        .arg(path)
        .status()
        .map_err(|e| format!("sox: {e} (install sox)"))?;
    if !st.success() {
        return Err("sox could not write the meeting".into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut minutes = 10.0f32;
    let mut seed = 7u64;
    let mut out: Option<PathBuf> = None;
    let mut sounds: Option<PathBuf> = None;
    let mut it = std::env::args().skip(1);
    let bad = |m: String| {
        eprintln!("lalm-meeting: {m}\n{USAGE}");
        std::process::ExitCode::from(2)
    };
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--minutes", Some(v)) => match v.parse::<f32>() {
                Ok(m) if (1.0..=600.0).contains(&m) => minutes = m,
                _ => return bad(format!("--minutes: 1 to 600, got {v}")),
            },
            ("--seed", Some(v)) => match v.parse() {
                Ok(s) => seed = s,
                Err(_) => return bad(format!("--seed: a number, got {v}")),
            },
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--sounds", Some(v)) => sounds = Some(PathBuf::from(v)),
            (a, _) => return bad(format!("unknown or incomplete argument {a}")),
        }
    }
    let Some(out) = out else {
        return bad("--out DIR is required".into());
    };
    match generate(minutes, seed, sounds.as_deref(), &out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lalm-meeting: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
