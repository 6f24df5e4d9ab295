//! lalm-streamaudio: StreamAudio-style streams from real recordings, with per-chunk labels.
//!
//! Joins real speech (the Asterisk prompt packs of `scripts/fetch-sounds.sh`) and the real
//! sound clips of `tests/data/real-sounds.tsv` into continuous streams: each sound alone in a
//! quiet room, right after speech, under speech, and sometimes again soon after. Every 0.5 s
//! chunk is labelled `respond` (the first 2 s of a respond-class sound not reported in the
//! 20 s before), `silent` (speech, quiet, everyday sounds, a sound already reported) or `-`
//! (the rest of a respond sound, left out of a decision's score), with what is heard there.
//!
//! Splits go by source file (`src/streamaudio.rs`): `train`, `calib` and `test` never share a
//! recording. The same seed gives the same streams.
//!
//! Writes, under `--out` (default ~/.cache/lalm/bench/streamaudio):
//! * `<split>-NN.wav`: the stream, 16 kHz mono;
//! * `<split>-NN.tsv`: its chunk labels (start_s, label, what);
//! * `<split>-manifest.tsv`: every recording the split used, with its package, version,
//!   sha256, path and licence;
//! * with `--features`, `<split>-NN.features.tsv`: per chunk, what the tagger (`--tagger`,
//!   default ced-tiny) hears in the 2 s ending with the chunk: the highest score among each
//!   built-in sound class's labels, and the Speech label's score. What a decision head learns
//!   from (`models/decision-head/train.py`).
//!
//! Usage: lalm-streamaudio [--split train|calib|test|all] [--streams N] [--events N]
//!                         [--seed S] [--out DIR] [--sounds DIR] [--features] [--tagger PKG]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use lalm_tools::cli::Flags;
use lalm_tools::streamaudio::{
    Context, Placed, RealClip, Step, fnv, label_chunks, parse_manifest, plan, split_of, tally,
    voice_split,
};
use lalm_tools::wav::{onset_offset, read_s16_mono, write_s16_mono};
use lalm_tools::{Res, bench_cache_dir, exit, sounds_dir};

const USAGE: &str = "usage: lalm-streamaudio [--split train|calib|test|all] [--streams N] \
                     [--events N] [--seed S] [--out DIR] [--sounds DIR] [--features] \
                     [--tagger PKG]";
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/real-sounds.tsv");
const RATE: u32 = 16_000;
/// A sound under speech is mixed at this gain (about -6 dB).
const UNDER_GAIN: f32 = 0.5;

struct Opts {
    splits: Vec<String>,
    streams: usize,
    events: usize,
    seed: u64,
    out: Option<PathBuf>,
    sounds: Option<PathBuf>,
    features: bool,
    tagger: String,
}

fn parse_args() -> Res<Option<Opts>> {
    let mut a = Flags::new(std::env::args().skip(1), USAGE);
    let mut o = Opts {
        splits: vec!["all".into()],
        streams: 4,
        events: 12,
        seed: 1,
        out: None,
        sounds: None,
        features: false,
        tagger: "ced-tiny".into(),
    };
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--split" => o.splits = vec![a.value()?],
            "--streams" => o.streams = a.positive()? as usize,
            "--events" => o.events = a.positive()? as usize,
            "--seed" => o.seed = a.value()?.parse()?,
            "--out" => o.out = Some(a.value()?.into()),
            "--sounds" => o.sounds = Some(a.value()?.into()),
            "--features" => o.features = true,
            "--tagger" => o.tagger = a.value()?,
            _ => return Err(a.unknown()),
        }
    }
    if a.asked_for_help() {
        return Ok(None);
    }
    if o.splits == ["all"] {
        o.splits = ["train", "calib", "test"].map(String::from).to_vec();
    } else if !["train", "calib", "test"].contains(&o.splits[0].as_str()) {
        return Err(format!(
            "--split must be train, calib, test or all, not {}",
            o.splits[0]
        )
        .into());
    }
    Ok(Some(o))
}

/// The split's speech, read round and round.
struct Voices {
    audio: Vec<i16>,
    next: usize,
    /// The `.spec` lines of the recordings used (package, version, sha256, path).
    specs: Vec<String>,
}

impl Voices {
    fn load(dir: &Path, split: &str) -> Res<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .filter(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| voice_split(s) == split)
            })
            .collect();
        files.sort();
        let mut audio = Vec::new();
        let mut specs = Vec::new();
        for f in &files {
            audio.extend(read_s16_mono(f, RATE)?);
            let spec = f.with_extension("spec");
            specs.push(
                std::fs::read_to_string(&spec)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            );
        }
        if audio.is_empty() {
            return Err(
                format!("no speech recordings of split {split} in {}", dir.display()).into(),
            );
        }
        Ok(Self {
            audio,
            next: 0,
            specs,
        })
    }

    fn take(&mut self, n: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let start = self.next % self.audio.len();
            let take = (n - out.len()).min(self.audio.len() - start);
            out.extend_from_slice(&self.audio[start..start + take]);
            self.next += take;
        }
        out
    }
}

fn secs(n: usize) -> f64 {
    n as f64 / RATE as f64
}

fn samples(s: f64) -> usize {
    (s * RATE as f64).round() as usize
}

/// One stream of the plan: its audio, the sounds placed in it and the speech stretches.
fn render(
    steps: &[Step],
    clips: &[&RealClip],
    audio_of: &[Vec<i16>],
    voices: &mut Voices,
) -> (Vec<i16>, Vec<Placed>, Vec<(f64, f64)>) {
    let mut out: Vec<i16> = Vec::new();
    let mut placed = Vec::new();
    let mut speech = Vec::new();
    for step in steps {
        match *step {
            Step::Silence(s) => out.extend(std::iter::repeat_n(0i16, samples(s))),
            Step::Speech(s) => {
                let at = out.len();
                out.extend(voices.take(samples(s)));
                speech.push((secs(at), secs(out.len())));
            }
            Step::Clip { index, context } => {
                let x = &audio_of[index];
                let onset = onset_offset(x, RATE);
                let at = out.len();
                if context == Context::UnderSpeech {
                    // Someone talks through it, from a second before to a second after.
                    let lead = samples(1.0);
                    let talk = voices.take(lead + x.len() + lead);
                    let base = out.len();
                    out.extend_from_slice(&talk);
                    for (i, s) in x.iter().enumerate() {
                        let o = &mut out[base + lead + i];
                        *o = (*o as f32 + *s as f32 * UNDER_GAIN)
                            .clamp(i16::MIN as f32, i16::MAX as f32)
                            as i16;
                    }
                    speech.push((secs(base), secs(out.len())));
                    placed.push(Placed {
                        id: clips[index].id.clone(),
                        class: clips[index].class.clone(),
                        respond: clips[index].respond,
                        context,
                        onset: secs(base + lead + onset),
                        end: secs(base + lead + x.len()),
                    });
                    continue;
                }
                out.extend_from_slice(x);
                placed.push(Placed {
                    id: clips[index].id.clone(),
                    class: clips[index].class.clone(),
                    respond: clips[index].respond,
                    context,
                    onset: secs(at + onset),
                    end: secs(out.len()),
                });
            }
        }
    }
    (out, placed, speech)
}

fn main_() -> Res<()> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    let text =
        std::fs::read_to_string(MANIFEST).map_err(|e| format!("cannot read {MANIFEST}: {e}"))?;
    let all = parse_manifest(&text, MANIFEST)?;
    let sounds = match &o.sounds {
        Some(d) => d.clone(),
        None => sounds_dir()?,
    };
    let out_dir = match &o.out {
        Some(d) => d.clone(),
        None => bench_cache_dir()?.join("streamaudio"),
    };
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let mut tagger = if o.features {
        // The classes the feature columns stand for, with what the rules do with each.
        let mut c = String::from("# class\trole\tthreshold\tmin_duration_ms\tcooldown_ms\n");
        for k in soundflow::decide::alerts::classes::CLASSES {
            let role = match k.role {
                soundflow::decide::alerts::types::SoundRole::Respond => "respond",
                soundflow::decide::alerts::types::SoundRole::Ignore => "ignore",
            };
            let _ = writeln!(
                c,
                "{}\t{role}\t{}\t{}\t{}",
                k.name, k.threshold, k.min_duration_ms, k.cooldown_ms
            );
        }
        std::fs::write(out_dir.join("classes.tsv"), c)?;
        Some(Featurizer::load(&o.tagger)?)
    } else {
        None
    };
    for split in &o.splits {
        let clips: Vec<&RealClip> = all.iter().filter(|c| split_of(c) == split).collect();
        let audio_of = clips
            .iter()
            .map(|c| read_s16_mono(&sounds.join("clips").join(format!("{}.wav", c.id)), RATE))
            .collect::<Res<Vec<_>>>()?;
        let mut voices = Voices::load(&sounds.join("speech"), split)?;
        let mut used = BTreeSet::new();
        let mut totals = std::collections::BTreeMap::new();
        let mut seconds = 0.0;
        for k in 0..o.streams {
            let seed = o.seed ^ (k as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15) ^ fnv(split);
            let steps = plan(&clips, o.events, seed);
            let (audio, placed, speech) = render(&steps, &clips, &audio_of, &mut voices);
            let len = secs(audio.len());
            seconds += len;
            let labels = label_chunks(len, &placed, &speech);
            for (l, n) in tally(&labels) {
                *totals.entry(l).or_insert(0usize) += n;
            }
            let stem = format!("{split}-{k:02}");
            write_s16_mono(&out_dir.join(format!("{stem}.wav")), RATE, &audio)?;
            let mut tsv = String::from("# start_s\tlabel\twhat\n");
            for l in &labels {
                let _ = writeln!(tsv, "{:.1}\t{}\t{}", l.start, l.label, l.what);
            }
            std::fs::write(out_dir.join(format!("{stem}.tsv")), tsv)?;
            if let Some(t) = tagger.as_mut() {
                let rows = t.chunk_features(&audio, labels.len())?;
                let mut f = format!("# start_s\t{}\tspeech\n", t.names.join("\t"));
                for (l, row) in labels.iter().zip(&rows) {
                    let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
                    let _ = writeln!(f, "{:.1}\t{}", l.start, cells.join("\t"));
                }
                std::fs::write(out_dir.join(format!("{stem}.features.tsv")), f)?;
            }
            used.extend(placed.iter().map(|p| p.id.clone()));
        }
        let mut manifest =
            String::from("# what\tid\tpackage\tversion\tsha256\tpath\tlicence\tsource\n");
        for c in clips.iter().filter(|c| used.contains(&c.id)) {
            let _ = writeln!(
                manifest,
                "clip\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                c.id, c.package, c.version, c.sha256, c.path, c.licence, c.source
            );
        }
        for s in &voices.specs {
            let f: Vec<&str> = s.split_whitespace().collect();
            if let [package, version, sha, path, ..] = f[..] {
                let voice = f.last().copied().unwrap_or_default();
                // tests/data/REAL-SOUNDS.md: the Spanish pack is GPL, the core sounds CC BY-SA.
                let licence = if package.starts_with("asterisk-prompt-es") {
                    "GPL"
                } else {
                    "CC-BY-SA-3.0"
                };
                let _ = writeln!(
                    manifest,
                    "speech\t{voice}\t{package}\t{version}\t{sha}\t{path}\t{licence}\tAsterisk prompt packs (Digium, Inc.; tests/data/REAL-SOUNDS.md)"
                );
            }
        }
        std::fs::write(out_dir.join(format!("{split}-manifest.tsv")), manifest)?;
        println!(
            "{split}: {} streams, {:.1} min, {} recordings of {} clips; chunks {:?}",
            o.streams,
            seconds / 60.0,
            used.len(),
            clips.len(),
            totals
        );
    }
    println!("written to {}", out_dir.display());
    Ok(())
}

/// The tagger and the decision head's view of its scores (each built-in class's best label,
/// and Speech: `soundflow::decide::head::ChunkFeatures`, what `lalm-decide` computes too).
struct Featurizer {
    tagger: soundflow::perceive::tagger::AudioTagger,
    features: soundflow::decide::head::ChunkFeatures,
    names: Vec<&'static str>,
}

impl Featurizer {
    fn load(package: &str) -> Res<Self> {
        use soundflow::decide::alerts::classes::CLASSES;
        let pkg = soundflow::models::package::ModelPackage::find(package)?;
        let rt = soundflow::models::runtime::Runtime::get(None)?;
        let opts = soundflow::models::runtime::SessionOptions::default();
        let tagger = soundflow::perceive::tagger::AudioTagger::load(&pkg, &rt, &opts)?;
        let features = soundflow::decide::head::ChunkFeatures::bind(tagger.labels());
        if !features.usable() {
            return Err(format!(
                "{package}: the tagger has no Speech label or no respond-class label"
            )
            .into());
        }
        Ok(Self {
            tagger,
            features,
            names: CLASSES.iter().map(|c| c.name).collect(),
        })
    }

    /// Per chunk: each class's highest label score and the Speech score, over the tagger
    /// window that ends with the chunk (zeros before the stream starts).
    fn chunk_features(&mut self, audio: &[i16], chunks: usize) -> Res<Vec<Vec<f32>>> {
        let window = self.tagger.window_samples();
        let x: Vec<f32> = audio.iter().map(|&s| s as f32 / 32768.0).collect();
        let mut rows = Vec::with_capacity(chunks);
        for batch in (0..chunks).collect::<Vec<_>>().chunks(16) {
            let wins: Vec<Vec<f32>> = batch
                .iter()
                .map(|&i| {
                    let end = samples((i + 1) as f64 * lalm_tools::streamaudio::CHUNK_S);
                    let mut w = vec![0.0f32; window];
                    let from = end.saturating_sub(window);
                    let have = &x[from.min(x.len())..end.min(x.len())];
                    let at = window - have.len();
                    w[at..].copy_from_slice(have);
                    w
                })
                .collect();
            let refs: Vec<&[f32]> = wins.iter().map(|w| w.as_slice()).collect();
            for scores in self.tagger.score(&refs)? {
                rows.push(self.features.row(&scores));
            }
        }
        Ok(rows)
    }
}

fn main() -> std::process::ExitCode {
    exit("lalm-streamaudio", main_())
}
