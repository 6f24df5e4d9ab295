//! StreamAudio-style streams, the paper's data pipeline in small: real speech and real sound
//! events from pinned packages joined into continuous streams, each 0.5 s chunk labelled
//! respond or silent with what calls for it, in the contexts a decision must weigh (a sound
//! alone in a quiet room, under speech, right after speech, the same sound again soon after).
//!
//! Splits go by source file, so that no recording is heard in two of them: the real-sound
//! manifest's `test` rows stay the test split (the figures of `lalm-sound-eval` use them), its
//! `calib` rows are divided into `train` and `calib` by a hash of their source file (package
//! and path), and each voice recording belongs to one split.

use std::collections::BTreeMap;

use crate::Res;
use crate::rng::Lcg;

/// Label chunks of this length.
pub const CHUNK_S: f64 = 0.5;
/// A respond sound calls for a response within this long of its onset: later chunks of it are
/// left out of the decision's score (a response was due already).
pub const RESPOND_WINDOW_S: f64 = 2.0;
/// The same class again within this long was already reported: its chunks are silent.
pub const REPORTED_S: f64 = 20.0;

/// One row of `tests/data/real-sounds.tsv`, with what the licence record needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RealClip {
    pub id: String,
    pub class: String,
    pub respond: bool,
    /// The manifest's split: `calib` or `test`.
    pub split: String,
    pub package: String,
    pub version: String,
    pub sha256: String,
    pub path: String,
    pub licence: String,
    pub source: String,
}

/// The rows of the real-sound manifest.
pub fn parse_manifest(text: &str, origin: &str) -> Res<Vec<RealClip>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| format!("{origin}: empty manifest"))?
        .1
        .split('\t')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("{origin}: no column {name}"))
    };
    let cols = [
        "id", "class", "role", "split", "package", "version", "sha256", "path", "licence", "source",
    ]
    .map(col);
    let mut idx = [0usize; 10];
    for (i, c) in cols.into_iter().enumerate() {
        idx[i] = c?;
    }
    let mut clips = Vec::new();
    for (n, line) in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| {
            f.get(idx[i])
                .map(|s| s.trim().to_string())
                .ok_or_else(|| format!("{origin}:{}: too few columns", n + 1))
        };
        let role = get(2)?;
        if role != "respond" && role != "ignore" {
            return Err(format!("{origin}:{}: role {role:?}", n + 1).into());
        }
        clips.push(RealClip {
            id: get(0)?,
            class: get(1)?,
            respond: role == "respond",
            split: get(3)?,
            package: get(4)?,
            version: get(5)?,
            sha256: get(6)?,
            path: get(7)?,
            licence: get(8)?,
            source: get(9)?,
        });
    }
    Ok(clips)
}

/// A stable 64-bit hash (FNV-1a): splits and seeds must not change between runs or builds.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The split a clip belongs to: `test` as the manifest says, else `train` or `calib` by its
/// source file (two to one), so that clips cut from one file stay together.
pub fn split_of(clip: &RealClip) -> &'static str {
    if clip.split == "test" {
        "test"
    } else if fnv(&format!("{}/{}", clip.package, clip.path)).is_multiple_of(3) {
        "calib"
    } else {
        "train"
    }
}

/// The split a voice recording (`scripts/fetch-sounds.sh`'s speech set) belongs to: the
/// English recording is the test split's speech, the Italian the calibration split's, the
/// others train.
pub fn voice_split(voice: &str) -> &'static str {
    match voice {
        "en_US_f_Allison" => "test",
        "it_IT_m_Carlo" => "calib",
        _ => "train",
    }
}

/// Where a sound sits in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// After a pause, nobody talking.
    Quiet,
    /// Right after a stretch of speech.
    AfterSpeech,
    /// Mixed under someone talking.
    UnderSpeech,
    /// The same clip again, soon after its first time.
    Repeat,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Quiet => "quiet",
            Context::AfterSpeech => "after-speech",
            Context::UnderSpeech => "under-speech",
            Context::Repeat => "repeat",
        }
    }
}

/// A clip placed in a stream, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub id: String,
    pub class: String,
    pub respond: bool,
    pub context: Context,
    pub onset: f64,
    pub end: f64,
}

/// One label chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkLabel {
    pub start: f64,
    /// `respond`, `silent`, or `-` (left out: a respond sound after its decision window).
    pub label: &'static str,
    /// What is heard there: a class and its context, `speech`, or `quiet`.
    pub what: String,
}

/// The chunk labels of a stream of `len_s` seconds holding `placed` sounds and speech in
/// `speech` (start, end) stretches. A respond sound's first `RESPOND_WINDOW_S` calls for a
/// response unless the same class was placed within `REPORTED_S` before (already reported);
/// everything else is silent.
pub fn label_chunks(len_s: f64, placed: &[Placed], speech: &[(f64, f64)]) -> Vec<ChunkLabel> {
    let n = (len_s / CHUNK_S).floor() as usize;
    let reported = |p: &Placed| {
        placed
            .iter()
            .any(|q| q.class == p.class && q.onset < p.onset && p.onset - q.onset <= REPORTED_S)
    };
    (0..n)
        .map(|i| {
            let (a, b) = (i as f64 * CHUNK_S, (i + 1) as f64 * CHUNK_S);
            let over = |s: f64, e: f64| a < e && b > s;
            let sound = placed.iter().find(|p| over(p.onset, p.end));
            match sound {
                Some(p) => {
                    let what = format!("{} {}", p.class, p.context.name());
                    let label = if !p.respond || reported(p) {
                        "silent"
                    } else if over(p.onset, p.onset + RESPOND_WINDOW_S) {
                        "respond"
                    } else {
                        "-"
                    };
                    ChunkLabel {
                        start: a,
                        label,
                        what,
                    }
                }
                None => ChunkLabel {
                    start: a,
                    label: "silent",
                    what: if speech.iter().any(|&(s, e)| over(s, e)) {
                        "speech".into()
                    } else {
                        "quiet".into()
                    },
                },
            }
        })
        .collect()
}

/// A stream's plan before any audio is read: the clips in order with their contexts and the
/// stretches of speech and silence around them, in seconds. Deterministic in `seed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Silence(f64),
    Speech(f64),
    Clip { index: usize, context: Context },
}

pub fn plan(clips: &[&RealClip], events: usize, seed: u64) -> Vec<Step> {
    let mut rng = Lcg(seed);
    let mut steps = vec![Step::Silence(1.0)];
    let respond: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].respond).collect();
    let ignore: Vec<usize> = (0..clips.len()).filter(|&i| !clips[i].respond).collect();
    for _ in 0..events {
        // Three respond sounds for two everyday ones.
        let pool = if ignore.is_empty() || (!respond.is_empty() && rng.uniform() < 0.6) {
            &respond
        } else {
            &ignore
        };
        if pool.is_empty() {
            break;
        }
        let index = pool[rng.pick(pool.len())];
        steps.push(Step::Speech(rng.range_f32(3.0, 6.0) as f64));
        let context = match rng.pick(3) {
            0 => Context::Quiet,
            1 => Context::AfterSpeech,
            _ => Context::UnderSpeech,
        };
        match context {
            Context::Quiet => steps.push(Step::Silence(rng.range_f32(1.0, 2.0) as f64)),
            Context::AfterSpeech => steps.push(Step::Silence(0.2)),
            _ => {}
        }
        steps.push(Step::Clip { index, context });
        steps.push(Step::Silence(rng.range_f32(1.0, 2.0) as f64));
        if rng.uniform() < 0.3 {
            steps.push(Step::Silence(rng.range_f32(2.0, 6.0) as f64));
            steps.push(Step::Clip {
                index,
                context: Context::Repeat,
            });
            steps.push(Step::Silence(1.0));
        }
    }
    steps.push(Step::Speech(4.0));
    steps.push(Step::Silence(1.0));
    steps
}

/// How many chunks carry each label, per split and context, for the report.
pub fn tally(labels: &[ChunkLabel]) -> BTreeMap<&'static str, usize> {
    let mut t = BTreeMap::new();
    for l in labels {
        *t.entry(l.label).or_insert(0) += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: &str, respond: bool, split: &str, package: &str, path: &str) -> RealClip {
        RealClip {
            id: id.into(),
            class: id.split('-').next().unwrap_or(id).into(),
            respond,
            split: split.into(),
            package: package.into(),
            version: "1".into(),
            sha256: "0".into(),
            path: path.into(),
            licence: "GPL-2".into(),
            source: "x".into(),
        }
    }

    #[test]
    fn the_real_manifest_splits_by_source_file() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/real-sounds.tsv"
        ))
        .expect("manifest");
        let clips = parse_manifest(&text, "real-sounds.tsv").expect("parsed");
        let mut by_source: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for c in &clips {
            by_source
                .entry(format!("{}/{}", c.package, c.path))
                .or_default()
                .push(split_of(c));
        }
        for (src, splits) in &by_source {
            assert!(splits.iter().all(|s| *s == splits[0]), "{src}: {splits:?}");
        }
        for s in ["train", "calib", "test"] {
            let n = clips
                .iter()
                .filter(|c| split_of(c) == s && c.respond)
                .count();
            assert!(n >= 5, "{s} has {n} respond clips");
        }
        assert_ne!(voice_split("en_US_f_Allison"), voice_split("it_IT_m_Carlo"));
    }

    #[test]
    fn a_respond_sound_calls_for_a_response_once_and_early() {
        let placed = vec![
            Placed {
                id: "siren-a".into(),
                class: "siren".into(),
                respond: true,
                context: Context::Quiet,
                onset: 4.0,
                end: 9.0,
            },
            Placed {
                id: "siren-a".into(),
                class: "siren".into(),
                respond: true,
                context: Context::Repeat,
                onset: 14.0,
                end: 19.0,
            },
            Placed {
                id: "music-b".into(),
                class: "music".into(),
                respond: false,
                context: Context::UnderSpeech,
                onset: 22.0,
                end: 25.0,
            },
        ];
        let l = label_chunks(30.0, &placed, &[(0.0, 3.5), (21.0, 26.0)]);
        let at = |t: f64| &l[(t / CHUNK_S) as usize];
        assert_eq!((at(1.0).label, at(1.0).what.as_str()), ("silent", "speech"));
        assert_eq!(at(3.5).what, "quiet");
        assert_eq!((at(4.0).label, at(5.5).label), ("respond", "respond"));
        assert_eq!(at(6.0).label, "-");
        assert_eq!(at(14.0).label, "silent", "already reported");
        assert_eq!(at(14.0).what, "siren repeat");
        assert_eq!(
            (at(22.5).label, at(22.5).what.as_str()),
            ("silent", "music under-speech")
        );
        let t = tally(&l);
        assert_eq!(t["respond"], 4);
    }

    #[test]
    fn a_plan_is_the_same_for_the_same_seed() {
        let a = clip("siren-a", true, "calib", "p", "a.wav");
        let b = clip("music-b", false, "calib", "p", "b.wav");
        let clips = [&a, &b];
        assert_eq!(plan(&clips, 8, 7), plan(&clips, 8, 7));
        assert_ne!(plan(&clips, 8, 7), plan(&clips, 8, 8));
        let n = plan(&clips, 8, 7)
            .iter()
            .filter(|s| matches!(s, Step::Clip { context, .. } if *context != Context::Repeat))
            .count();
        assert_eq!(n, 8);
    }
}
