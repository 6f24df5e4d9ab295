//! lalm-speaker-eval: speaker labels and speaker changes on real voices.
//!
//! Builds a conversation from the real multi-voice prompts that `scripts/fetch-sounds.sh`
//! extracts from pinned Debian packages (the Asterisk prompt packs: five voices, four
//! languages; `tests/data/real-sounds.tsv`): turns of one voice (its prompts, cut at their
//! silences, 2 to 8 s of speech), 0.6 to 1.2 s apart, the voice of each turn drawn by a fixed
//! seed (a third of the turns keep the previous voice, so a pause alone must not look like a
//! change). Each voice's recording is split in two halves: `--split calib` builds from the
//! first halves, `--split test` from the second, so the two never share a recording.
//!
//! Runs `lalm-interact finals-only=true speaker-model=…` over it, as fast as it goes, once
//! per `--thresholds` value, and scores the final transcripts' `speaker` labels:
//!
//! * speaker changes: a change is where a final's label differs from the previous labelled
//!   final's; right when within `--tolerance` s (default 1) of a true change of voice;
//!   precision and recall;
//! * purity: the share of labelled speech whose label's most common voice it is; coverage:
//!   the share of each voice's speech under its most common label;
//! * how many labels, and how many finals got none (shorter than the print's minimum).
//!
//! Usage: lalm-speaker-eval [--split calib|test] [--turns N] [--thresholds T,T,...]
//!                          [--model PKG] [--tolerance S] [--sounds DIR]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gst::prelude::*;

use lalm_tools::cli::Flags;
use lalm_tools::pipeline::{init, launch_loop, play_to_eos, quote};
use lalm_tools::rng::Lcg;
use lalm_tools::wav::{read_s16_mono, write_s16_mono};
use lalm_tools::{Res, bench_cache_dir, exit, sounds_dir};

const USAGE: &str = "usage: lalm-speaker-eval [--split calib|test] [--turns N] \
                     [--thresholds T,T,...] [--model PKG] [--tolerance S] [--sounds DIR]";
const RATE: usize = 16_000;
/// Longest wait for a bus message before a run is taken for stuck.
const TEN_MINUTES: gst::ClockTime = gst::ClockTime::from_seconds(600);

struct Opts {
    split: String,
    turns: usize,
    thresholds: Vec<f32>,
    model: String,
    tolerance: f64,
    sounds: Option<PathBuf>,
}

fn parse_args() -> Res<Option<Opts>> {
    let mut a = Flags::new(std::env::args().skip(1), USAGE);
    let mut o = Opts {
        split: "test".into(),
        turns: 60,
        thresholds: vec![-1.0],
        model: "pyannote-community-1".into(),
        tolerance: 1.0,
        sounds: None,
    };
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--split" => o.split = a.value()?,
            "--turns" => o.turns = a.positive()? as usize,
            "--thresholds" => {
                o.thresholds = a
                    .value()?
                    .split(',')
                    .map(|t| t.trim().parse::<f32>())
                    .collect::<Result<_, _>>()?
            }
            "--model" => o.model = a.value()?,
            "--tolerance" => o.tolerance = a.value()?.parse()?,
            "--sounds" => o.sounds = Some(a.value()?.into()),
            _ => return Err(a.unknown()),
        }
    }
    if a.asked_for_help() {
        return Ok(None);
    }
    if !["calib", "test"].contains(&o.split.as_str()) {
        return Err(format!("--split must be calib or test, not {}", o.split).into());
    }
    Ok(Some(o))
}

/// Stretches of speech in `x`: runs of 20 ms frames above -40 dBFS, split where at least
/// 300 ms are below it, each with 100 ms of its surroundings.
fn segments(x: &[i16]) -> Vec<(usize, usize)> {
    let frame = RATE / 50;
    let loud: Vec<bool> = x
        .chunks(frame)
        .map(|c| {
            let e = c.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / c.len().max(1) as f64;
            e.sqrt() > 32768.0 * 0.01
        })
        .collect();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quiet = 0;
    for (i, &l) in loud.iter().enumerate() {
        match (l, start) {
            (true, None) => {
                start = Some(i);
                quiet = 0;
            }
            (true, Some(_)) => quiet = 0,
            (false, Some(s)) => {
                quiet += 1;
                if quiet >= 15 {
                    out.push((s, i + 1 - quiet));
                    start = None;
                }
            }
            (false, None) => {}
        }
    }
    if let Some(s) = start {
        out.push((s, loud.len()));
    }
    let pad = 5;
    out.into_iter()
        .filter(|(a, b)| b - a >= 20)
        .map(|(a, b)| {
            (
                a.saturating_sub(pad) * frame,
                ((b + pad) * frame).min(x.len()),
            )
        })
        .collect()
}

/// One voice's recording (its half for the split), cut into speech stretches.
struct Voice {
    name: String,
    audio: Vec<i16>,
    segs: Vec<(usize, usize)>,
    next: usize,
}

impl Voice {
    fn load(path: &Path, split: &str) -> Res<Self> {
        let all = read_s16_mono(path, RATE as u32)?;
        let half = all.len() / 2;
        let audio = if split == "calib" {
            all[..half].to_vec()
        } else {
            all[half..].to_vec()
        };
        let segs = segments(&audio);
        if segs.is_empty() {
            return Err(format!("no speech found in {}", path.display()).into());
        }
        Ok(Self {
            name: path
                .file_stem()
                .map_or("?".into(), |s| s.to_string_lossy().into_owned()),
            audio,
            segs,
            next: 0,
        })
    }

    /// The next 2-8 s of speech: whole stretches, 150 ms apart.
    fn turn(&mut self, want: usize) -> Vec<i16> {
        let mut out = Vec::new();
        while out.len() < want.min(8 * RATE) {
            let (a, b) = self.segs[self.next % self.segs.len()];
            self.next += 1;
            if !out.is_empty() {
                if out.len() + (b - a) > 8 * RATE {
                    break;
                }
                out.extend(std::iter::repeat_n(0i16, RATE * 15 / 100));
            }
            out.extend_from_slice(&self.audio[a..b]);
        }
        out
    }
}

struct Turn {
    voice: usize,
    start: f64,
    end: f64,
}

struct Final {
    start: f64,
    end: f64,
    speaker: Option<String>,
}

fn run(wav: &Path, model: &str, threshold: f32) -> Res<Vec<Final>> {
    let desc = format!(
        "filesrc location={} ! wavparse ! lalm-interact name=loop finals-only=true \
         speaker-model={model} speaker-threshold={threshold} ! fakesink sync=false",
        quote(wav)?
    );
    let (pipeline, _lalm, bus) = launch_loop(&desc)?;
    let mut finals = Vec::new();
    let result = play_to_eos(&pipeline, &bus, TEN_MINUTES, |s, _| {
        if s.name() == "lalm-transcript" && s.get::<bool>("final").unwrap_or(false) {
            let secs = |k: &str| s.get::<u64>(k).map_or(0.0, |v| v as f64 / 1e9);
            finals.push(Final {
                start: secs("start"),
                end: secs("end"),
                speaker: s.get::<String>("speaker").ok(),
            });
        }
    });
    pipeline.set_state(gst::State::Null)?;
    result.map(|()| finals)
}

fn main_() -> Res<()> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    init()?;
    let sounds = match &o.sounds {
        Some(d) => d.clone(),
        None => sounds_dir()?,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(sounds.join("speech"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    let mut voices = files
        .iter()
        .map(|f| Voice::load(f, &o.split))
        .collect::<Res<Vec<_>>>()?;
    if voices.len() < 2 {
        return Err("speaker changes need at least two voices".into());
    }

    let mut rng = Lcg(if o.split == "calib" { 11 } else { 29 });
    let mut audio: Vec<i16> = vec![0; RATE / 2];
    let mut turns: Vec<Turn> = Vec::new();
    let mut voice = rng.pick(voices.len());
    for i in 0..o.turns {
        if i > 0 && rng.uniform() >= 1.0 / 3.0 {
            let other = rng.pick(voices.len() - 1);
            voice = if other >= voice { other + 1 } else { other };
        }
        let want = RATE * rng.range(2, 8) as usize;
        let x = voices[voice].turn(want);
        let start = audio.len() as f64 / RATE as f64;
        audio.extend_from_slice(&x);
        turns.push(Turn {
            voice,
            start,
            end: audio.len() as f64 / RATE as f64,
        });
        let gap = RATE * rng.range(600, 1200) as usize / 1000;
        audio.extend(std::iter::repeat_n(0i16, gap));
    }
    let work = bench_cache_dir()?.join(format!("speaker-eval-{}", o.split));
    std::fs::create_dir_all(&work)?;
    let wav = work.join("conversation.wav");
    write_s16_mono(&wav, RATE as u32, &audio)?;
    let changes: Vec<f64> = turns
        .windows(2)
        .filter(|w| w[0].voice != w[1].voice)
        .map(|w| w[1].start)
        .collect();
    println!(
        "lalm-speaker-eval: split {}, {} voices ({}), {} turns, {} changes of voice, {:.1} min",
        o.split,
        voices.len(),
        voices
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        turns.len(),
        changes.len(),
        audio.len() as f64 / RATE as f64 / 60.0
    );
    println!(
        "| threshold | labels | finals (unlabelled) | change precision | change recall | purity | coverage | wall |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for &t in &o.thresholds {
        let t0 = std::time::Instant::now();
        let finals = run(&wav, &o.model, t)?;
        let wall = t0.elapsed().as_secs_f64();
        // Each final's voice: the turn it overlaps most.
        let voice_of = |f: &Final| {
            turns
                .iter()
                .map(|u| (u.voice, (f.end.min(u.end) - f.start.max(u.start)).max(0.0)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, o)| *o > 0.0)
                .map(|(v, _)| v)
        };
        let mut predicted = Vec::new();
        let mut last: Option<&str> = None;
        let mut per_label: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
        let mut per_voice: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
        let mut unlabelled = 0;
        for f in &finals {
            let Some(s) = f.speaker.as_deref() else {
                unlabelled += 1;
                continue;
            };
            if last.is_some_and(|l| l != s) {
                predicted.push(f.start);
            }
            last = Some(s);
            if let Some(v) = voice_of(f) {
                let d = f.end - f.start;
                *per_label
                    .entry(s.to_string())
                    .or_default()
                    .entry(v)
                    .or_default() += d;
                *per_voice
                    .entry(v)
                    .or_default()
                    .entry(s.to_string())
                    .or_default() += d;
            }
        }
        let mut used = vec![false; changes.len()];
        let mut right = 0;
        for p in &predicted {
            if let Some(i) =
                (0..changes.len()).find(|&i| !used[i] && (changes[i] - p).abs() <= o.tolerance)
            {
                used[i] = true;
                right += 1;
            }
        }
        let share = |m: &BTreeMap<String, BTreeMap<usize, f64>>| {
            let total: f64 = m.values().flat_map(|v| v.values()).sum();
            let best: f64 = m
                .values()
                .map(|v| v.values().copied().fold(0.0, f64::max))
                .sum();
            best / total.max(1e-9)
        };
        let coverage = {
            let total: f64 = per_voice.values().flat_map(|v| v.values()).sum();
            let best: f64 = per_voice
                .values()
                .map(|v| v.values().copied().fold(0.0, f64::max))
                .sum();
            best / total.max(1e-9)
        };
        println!(
            "| {} | {} | {} ({unlabelled}) | {:.2} ({right}/{}) | {:.2} ({right}/{}) | {:.2} | {:.2} | {wall:.1} s |",
            if t < 0.0 {
                "package's".to_string()
            } else {
                format!("{t:.2}")
            },
            per_label.len(),
            finals.len(),
            right as f64 / predicted.len().max(1) as f64,
            predicted.len(),
            right as f64 / changes.len().max(1) as f64,
            changes.len(),
            share(&per_label),
            coverage
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit("lalm-speaker-eval", main_())
}
