//! Property tests of the chunker core ([`soundflow::base::framing`]) and of the alert rules
//! ([`soundflow::decide::alerts`]): random buffer splits, positions with jitter and jumps, silence,
//! partial frames and invalid configurations for the framer; arbitrary text, generated
//! valid rule files and single-fault mutations of them for the rules parser; random words
//! and perceptions for the evaluators built from random rule sets.
//!
//! Deterministic: every property runs from a fixed seed and writes no failure files.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;

use soundflow::Error;
use soundflow::base::framing::{Chunk, Framer, FramerConfig};
use soundflow::base::time::ms_to_samples;
use soundflow::decide::alerts::{
    Alert, AlertKind, AudioAlerts, Rule, RuleSet, RuleSpec, TextAlerts, Trigger, normalize_word,
};
use soundflow::perceive::perception::Word;
use soundflow::perceive::perception::{Perception, TagFrame};
use soundflow::perceive::vad::WindowProb;

/// A fixed seed and no persisted failures: the same cases every run, nothing written.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x1a1e_2024_f00d),
        ..ProptestConfig::default()
    }
}

// =======================================================================================
// Framer
// =======================================================================================

/// The bytes of the frame at stream position `pos`: a hash of the position, so that a frame
/// taken from the wrong place (even 65536 samples away) is noticed whatever `fb` is.
fn frame(pos: u64, fb: usize) -> impl Iterator<Item = u8> {
    // splitmix64 finaliser
    let mut z = pos.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let b = (z ^ (z >> 31)).to_le_bytes();
    (0..fb).map(move |k| b[k % 8] ^ (k / 8) as u8)
}

/// `n` frames of the stream starting at position `from`.
fn stream(from: u64, n: usize, fb: usize) -> Vec<u8> {
    (0..n as u64).flat_map(|i| frame(from + i, fb)).collect()
}

/// What the framer must produce for these runs (start position, frame-aligned bytes), each
/// run ended by a jump or by the final drain: full chunks every hop, then the rest of the
/// run (whatever was not yet sent) as one zero-padded chunk; the first chunk of each
/// non-empty run is a discontinuity; indices count across runs.
fn model(cfg: FramerConfig, runs: &[(u64, Vec<u8>)]) -> Vec<Chunk> {
    let (c, fb, hop) = (cfg.chunk, cfg.frame_bytes, cfg.chunk - cfg.overlap);
    let mut out = Vec::new();
    let mut index = 0u64;
    for (start, bytes) in runs {
        assert_eq!(bytes.len() % fb, 0, "model runs are frame-aligned");
        let n = bytes.len() / fb;
        let mut first = true;
        let mut k = 0usize;
        while k * hop + c <= n {
            let from = k * hop;
            out.push(Chunk {
                start: start + from as u64,
                data: bytes[from * fb..(from + c) * fb].to_vec(),
                valid: c,
                overlap: if k == 0 { 0 } else { cfg.overlap },
                discont: first,
                padded: false,
                index,
            });
            first = false;
            index += 1;
            k += 1;
        }
        let covered = if k == 0 { 0 } else { (k - 1) * hop + c };
        if n > covered {
            let from = k * hop;
            let mut data = bytes[from * fb..].to_vec();
            data.resize(c * fb, 0);
            out.push(Chunk {
                start: start + from as u64,
                data,
                valid: n - from,
                overlap: covered - from.min(covered),
                discont: first,
                padded: true,
                index,
            });
            index += 1;
        }
    }
    out
}

/// The audio the chunks carry, each sample once: every chunk's samples past its overlap.
fn reassemble(chunks: &[Chunk], fb: usize) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| c.data[c.overlap * fb..c.valid * fb].iter().copied())
        .collect()
}

/// Frame sizes as in real streams (mono/stereo S16, F32, 24-bit, 3-channel) and odd ones.
fn frame_bytes() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 3, 4, 6, 8, 12])
}

fn framer_config(max_tolerance: u64) -> impl Strategy<Value = FramerConfig> {
    (1usize..=48, frame_bytes(), 0..=max_tolerance).prop_flat_map(|(chunk, frame_bytes, tol)| {
        (0..chunk).prop_map(move |overlap| FramerConfig {
            chunk,
            overlap,
            frame_bytes,
            tolerance: tol,
        })
    })
}

/// Buffer sizes in frames, biased towards the edge cases: empty, one frame, a few frames.
fn buffer_frames() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1usize), 0usize..=8, 0usize..=150]
}

proptest! {
    #![proptest_config(config(3000))]

    /// Properties 1 and 3: any split of a contiguous stream, with exact positions or none,
    /// gives the chunks of the one-buffer feed (and of the model), nothing lost or repeated.
    #[test]
    fn any_split_of_a_contiguous_stream_gives_the_same_chunks(
        cfg in framer_config(16),
        origin in prop_oneof![Just(0u64), 0u64..1 << 40],
        n in prop_oneof![0usize..=4, 0usize..=400],
        sizes in prop::collection::vec(buffer_frames(), 0..40),
        no_pos in prop::collection::vec(prop::bool::weighted(0.3), 41),
    ) {
        let fb = cfg.frame_bytes;
        let hop = (cfg.chunk - cfg.overlap) as u64;
        // Without a position on the first buffer the run starts at 0.
        let origin = if no_pos[0] { 0 } else { origin };
        let input = stream(origin, n, fb);

        let mut f = Framer::new(cfg).unwrap();
        let mut chunks = Vec::new();
        let mut offset = 0usize;
        let last = sizes.len();
        for (i, size) in sizes.iter().copied().chain([usize::MAX]).enumerate() {
            let take = if i == last { n - offset } else { size.min(n - offset) };
            let pos = (!no_pos[i]).then_some(origin + offset as u64);
            let got = f.push(pos, &input[offset * fb..(offset + take) * fb]);
            chunks.extend(got);
            offset += take;
            prop_assert_eq!(f.total_samples(), offset as u64);
            prop_assert_eq!(f.expected_position(), Some(origin + offset as u64));
            let sent: usize = chunks.iter().map(Chunk::new_samples).sum();
            prop_assert_eq!(f.pending_samples(), offset - sent);
        }
        chunks.extend(f.drain());
        prop_assert!(f.drain().is_none(), "a second drain has nothing left");
        prop_assert_eq!(f.pending_samples(), 0);
        prop_assert_eq!(f.total_samples(), n as u64);

        let expected = model(cfg, &[(origin, input.clone())]);
        prop_assert_eq!(&chunks, &expected);

        let mut one = Framer::new(cfg).unwrap();
        let mut whole = one.push(Some(origin), &input);
        whole.extend(one.drain());
        prop_assert_eq!(&chunks, &whole);

        prop_assert_eq!(reassemble(&chunks, fb), input);
        for (i, c) in chunks.iter().enumerate() {
            prop_assert_eq!(c.index, i as u64);
            prop_assert_eq!(c.data.len(), cfg.chunk * fb);
            prop_assert!(c.valid > c.overlap && c.valid <= cfg.chunk);
            prop_assert!(c.data[c.valid * fb..].iter().all(|&b| b == 0));
            // only the drained chunk is padded, and it is never full
            prop_assert_eq!(c.padded, c.valid < cfg.chunk);
            prop_assert!(!c.padded || i + 1 == chunks.len());
        }
        for w in chunks.windows(2) {
            prop_assert_eq!(w[1].start, w[0].start + hop, "starts advance by the hop");
        }
    }
}

/// How one buffer's position relates to where the framer expects it.
#[derive(Debug, Clone)]
enum Step {
    /// Contiguous; reported with this jitter (clamped to the tolerance).
    Jitter(i64),
    /// Contiguous, without a position.
    NoPos,
    /// This many samples beyond the tolerance ahead of the expected position.
    Forward(u64),
    /// This many samples beyond the tolerance behind it (ahead if the stream is too young).
    Backward(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (-64i64..=64).prop_map(Step::Jitter),
        1 => Just(Step::NoPos),
        1 => prop_oneof![Just(1u64), 1u64..=20_000].prop_map(Step::Forward),
        1 => prop_oneof![Just(1u64), 1u64..=20_000].prop_map(Step::Backward),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    /// Properties 2 and 4: jitter within the tolerance changes nothing; a jump beyond it
    /// (forward gap or backward) drains the run as a padded chunk and starts a new run at
    /// the new position, marked discont, so no chunk ever mixes audio from both sides;
    /// silence pushed with `push_silence` is framed like zero samples at its position.
    #[test]
    fn jitter_is_absorbed_and_jumps_start_a_new_run(
        cfg in framer_config(64),
        origin in 0u64..1 << 40,
        segments in prop::collection::vec(
            (step(), buffer_frames(), prop::bool::weighted(0.25)),
            1..30,
        ),
    ) {
        let fb = cfg.frame_bytes;
        let tol = cfg.tolerance;
        let mut f = Framer::new(cfg).unwrap();
        let mut chunks = Vec::new();
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut expected = origin;
        let mut total = 0u64;
        for (i, (step, frames, silent)) in segments.iter().enumerate() {
            // (reported position, true position of the first sample)
            let (reported, at, jump) = if i == 0 {
                (Some(origin), origin, true)
            } else {
                match *step {
                    Step::Jitter(j) => {
                        let j = j.clamp(-(tol as i64), tol as i64);
                        (Some(expected.saturating_add_signed(j)), expected, false)
                    }
                    Step::NoPos => (None, expected, false),
                    Step::Forward(d) => {
                        let p = expected + tol + d;
                        (Some(p), p, true)
                    }
                    Step::Backward(d) => {
                        let p = expected.checked_sub(tol + d).unwrap_or(expected + tol + d);
                        (Some(p), p, true)
                    }
                }
            };
            let bytes = if *silent { vec![0u8; frames * fb] } else { stream(at, *frames, fb) };
            if jump {
                runs.push((at, bytes.clone()));
            } else {
                runs.last_mut().unwrap().1.extend_from_slice(&bytes);
            }
            let got = if *silent {
                f.push_silence(reported, *frames as u64).collect()
            } else {
                f.push(reported, &bytes)
            };
            chunks.extend(got);
            expected = at + *frames as u64;
            total += *frames as u64;
            prop_assert_eq!(f.expected_position(), Some(expected));
            prop_assert_eq!(f.total_samples(), total);
        }
        chunks.extend(f.drain());

        let want = model(cfg, &runs);
        prop_assert_eq!(&chunks, &want);

        // The same, stated without the model: a chunk's valid frames are the stream's
        // frames at the chunk's own positions (or silence), so none straddles a jump.
        for c in &chunks {
            let real = stream(c.start, c.valid, fb);
            let body = &c.data[..c.valid * fb];
            let ok = body
                .chunks(fb)
                .zip(real.chunks(fb))
                .all(|(got, at)| got == at || got.iter().all(|&x| x == 0));
            prop_assert!(ok, "chunk at {} holds audio from elsewhere: {:?}", c.start, c);
        }
        let starts_of_runs: Vec<u64> =
            runs.iter().filter(|r| !r.1.is_empty()).map(|r| r.0).collect();
        let disconts: Vec<u64> = chunks.iter().filter(|c| c.discont).map(|c| c.start).collect();
        prop_assert_eq!(disconts, starts_of_runs, "discont exactly at each run's start");
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Property 6: byte runs that split frames anywhere. The partial frame is carried over
    /// to the next buffer (with no position or a contiguous one), so the chunks are those
    /// of the whole frames; a trailing partial frame is dropped at the drain.
    #[test]
    fn partial_frames_are_carried_over_and_a_trailing_one_is_dropped(
        cfg in framer_config(4).prop_filter("frames of several bytes", |c| c.frame_bytes > 1),
        origin in 0u64..1 << 40,
        n in 0usize..=300,
        tail in 0usize..12,
        sizes in prop::collection::vec(prop_oneof![0usize..=3, 0usize..=64], 0..60),
        mode in 0u8..3,
    ) {
        let fb = cfg.frame_bytes;
        let tail = tail % fb;
        let mut input = stream(origin, n, fb);
        input.extend((0..tail).map(|i| 0xA0 | i as u8));
        let mut f = Framer::new(cfg).unwrap();
        let mut chunks = Vec::new();
        let mut offset = 0usize;
        for (i, size) in sizes.iter().copied().chain([usize::MAX]).enumerate() {
            let take = size.min(input.len() - offset);
            let pos = match mode {
                0 => None,
                1 => Some(origin + (offset / fb) as u64),
                _ => (i % 2 == 0).then_some(origin + (offset / fb) as u64),
            };
            chunks.extend(f.push(pos, &input[offset..offset + take]));
            offset += take;
            prop_assert_eq!(f.total_samples(), (offset / fb) as u64, "whole frames only");
        }
        chunks.extend(f.drain());
        // Positions never given: the run starts at 0.
        let start = if mode == 0 { 0 } else { origin };
        prop_assert_eq!(&chunks, &model(cfg, &[(start, input[..n * fb].to_vec())]));
        prop_assert_eq!(reassemble(&chunks, fb), input[..n * fb].to_vec());
        // After the drain nothing of the partial frame is left: the next bytes start a frame.
        let more = stream(0, 1, fb);
        prop_assert!(f.push(None, &more).is_empty() || cfg.chunk == 1);
        prop_assert_eq!(f.total_samples(), n as u64 + 1);
    }

    /// Property 6, continued: a jump, or silence, discards a pending partial frame (its bytes
    /// belong to audio before the jump), and the new run starts frame-aligned: audio pushed
    /// after it, without a position, continues frame by frame.
    #[test]
    fn a_jump_or_silence_discards_a_partial_frame(
        cfg in framer_config(0).prop_filter("frames of several bytes", |c| c.frame_bytes > 1),
        n in 0usize..=100,
        partial in 1usize..12,
        m in 0usize..=100,
        k in prop_oneof![Just(0usize), 1usize..=60],
        gap in 1u64..10_000,
        silence in any::<bool>(),
    ) {
        let fb = cfg.frame_bytes;
        let partial = 1 + (partial - 1) % (fb - 1);
        let mut head = stream(0, n, fb);
        head.extend(std::iter::repeat_n(0xEEu8, partial));
        let mut f = Framer::new(cfg).unwrap();
        let mut chunks = f.push(Some(0), &head);
        let runs = if silence {
            chunks.extend(f.push_silence(None, m as u64));
            let after = (n + m) as u64;
            chunks.extend(f.push(None, &stream(after, k, fb)));
            let mut run = stream(0, n, fb);
            run.resize((n + m) * fb, 0);
            run.extend(stream(after, k, fb));
            vec![(0, run)]
        } else {
            let at = n as u64 + gap;
            chunks.extend(f.push(Some(at), &stream(at, m, fb)));
            chunks.extend(f.push(None, &stream(at + m as u64, k, fb)));
            vec![(0, stream(0, n, fb)), (at, stream(at, m + k, fb))]
        };
        chunks.extend(f.drain());
        prop_assert_eq!(chunks, model(cfg, &runs));
    }

    /// Property 5: a configuration is accepted exactly when it is usable; never a panic.
    #[test]
    fn invalid_configs_are_errors(
        chunk in prop_oneof![Just(0usize), 0usize..=8, any::<usize>()],
        overlap in prop_oneof![Just(0usize), 0usize..=8, any::<usize>()],
        frame_bytes in prop_oneof![Just(0usize), 0usize..=16],
        tolerance in any::<u64>(),
    ) {
        let cfg = FramerConfig { chunk, overlap, frame_bytes, tolerance };
        let ok = chunk > 0 && overlap < chunk && frame_bytes > 0;
        prop_assert_eq!(cfg.validate().is_ok(), ok);
        match Framer::new(cfg) {
            Ok(f) => {
                prop_assert!(ok);
                prop_assert_eq!(f.config(), cfg);
            }
            Err(e) => {
                prop_assert!(!ok);
                prop_assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            }
        }
    }
}

/// After the drain at EOS the framer can go on: without a position it continues where the
/// drained chunk's audio ended; with one it starts a new run there. Indices keep counting.
#[test]
fn pushing_after_a_drain_continues() {
    let cfg = FramerConfig {
        chunk: 10,
        overlap: 3,
        frame_bytes: 2,
        tolerance: 0,
    };
    let mut f = Framer::new(cfg).unwrap();
    let a = f.push(Some(100), &stream(100, 12, 2));
    let d = f.drain().unwrap();
    assert_eq!((a.len(), d.start, d.valid, d.overlap), (1, 107, 5, 3));
    let b = f.push(None, &stream(112, 10, 2));
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].start, b[0].overlap, b[0].index), (112, 0, 2));
    assert_eq!(b[0].data, stream(112, 10, 2));
    f.drain();
    let c = f.push(Some(5000), &stream(5000, 10, 2));
    assert_eq!((c[0].start, c[0].index), (5000, 3));
    assert_eq!(c[0].data, stream(5000, 10, 2));
}

// =======================================================================================
// Alert rules: parser
// =======================================================================================

const ORIGIN: &str = "rules.toml";
/// The built-in rules' names, in order: one per sound class, then the others.
fn default_names() -> Vec<&'static str> {
    soundflow::decide::alerts::classes::CLASSES
        .iter()
        .map(|c| c.name)
        .chain(["dead-air", "clipping", "too-quiet", "wake"])
        .collect()
}

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// What an f32 written with `{:?}` reads back as through TOML (an f64, then cast).
fn reread(v: f32) -> f32 {
    format!("{v:?}").parse::<f64>().unwrap() as f32
}

/// A word for keyword rules: starts with a letter or digit, from several scripts, with
/// punctuation and apostrophes the normalisation drops or keeps. No whitespace.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{1,10}",
        "[a-zA-Z][a-z'’\\-.,!?]{0,8}",
        "[àéîõüßçñÆØÅẞİΣσςЖжλ日本語한국어ǅ0-9]{1,6}",
        "[\\p{Greek}\\p{Cyrillic}\\p{Han}\\p{Arabic}\\p{Nd}]{1,5}",
        "[\"'(\\[]?[a-zA-Z\\p{Latin}&&[^\u{130}]]{1,6}[\"')\\].,;:!?]?",
    ]
    .prop_filter("has a letter or digit", |w| {
        w.chars().any(char::is_alphanumeric)
    })
}

/// A phrase: one to four words separated by runs of spaces, maybe with punctuation.
fn phrase() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(word(), 1..4),
        " {0,2}",
        " {1,3}",
        "[.,!?]?",
    )
        .prop_map(|(ws, lead, sep, end)| format!("{lead}{}{end}", ws.join(&sep)))
}

fn unit_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(1.0f32),
        (1u32..=1_000_000).prop_map(|n| n as f32 / 1e6)
    ]
}

fn db() -> impl Strategy<Value = f32> {
    prop_oneof![-200f32..20f32, Just(-45.0f32), Just(0.0f32)]
}

fn ms() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=60_000, any::<u32>()]
}

fn positive_ms() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=60_000, 1u32..=u32::MAX]
}

#[derive(Debug, Clone)]
enum Spec {
    Keyword {
        words: Vec<String>,
        on: Option<bool>,
    },
    Phrase {
        phrases: Vec<String>,
        on: Option<bool>,
    },
    Regex {
        pattern: String,
        on: Option<bool>,
    },
    Wake {
        phrases: Option<Vec<String>>,
        wake_name: Option<String>,
        require_question: Option<bool>,
        on: Option<bool>,
    },
    DeadAir {
        seconds: f32,
        level_db: Option<f32>,
        speech_threshold: Option<f32>,
    },
    Clipping {
        window_ms: Option<u32>,
        ratio: Option<f32>,
    },
    Quiet {
        window_ms: Option<u32>,
        below_db: Option<f32>,
    },
    Sound {
        label: String,
        threshold: Option<f32>,
        min_duration_ms: Option<u32>,
        release_ms: Option<u32>,
    },
}

/// A valid `[[rule]]` as generated: `name` is fixed when the file is assembled.
#[derive(Debug, Clone)]
struct Desc {
    name: String,
    cooldown_ms: Option<u32>,
    spec: Spec,
}

const LABELS: [&str; 7] = [
    "alarm", "siren", "phone", "doorbell", "speech", "Alarm", "music",
];

fn regex_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "(?i)ticket \\d+",
            "budget",
            "\\bhey\\b",
            " ",
            "\\s",
            "^",
            "$",
            "a|",
            ".*",
            ".",
            "(?i)[a-z]+ [a-z]+",
            "\\p{Han}+",
            "\\?",
            "x*",
        ])
        .prop_map(String::from),
        word().prop_map(|w| regex::escape(&w)),
        phrase().prop_map(|p| format!("(?i){}", regex::escape(p.trim()))),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let on = prop::option::of(any::<bool>());
    prop_oneof![
        (prop::collection::vec(word(), 1..5), on.clone())
            .prop_map(|(words, on)| Spec::Keyword { words, on }),
        (prop::collection::vec(phrase(), 1..4), on.clone())
            .prop_map(|(phrases, on)| Spec::Phrase { phrases, on }),
        (regex_pattern(), on.clone()).prop_map(|(pattern, on)| Spec::Regex { pattern, on }),
        (
            0u8..3,
            prop::collection::vec(phrase(), 1..3),
            phrase(),
            prop::option::of(any::<bool>()),
            on,
        )
            .prop_map(|(which, phrases, name, rq, on)| Spec::Wake {
                phrases: (which == 1).then_some(phrases),
                wake_name: (which == 2).then_some(name),
                require_question: rq,
                on,
            }),
        (
            prop_oneof![
                (1u32..=10_000_000).prop_map(|n| n as f32 / 1000.0),
                1e-3f32..1e9f32
            ],
            prop::option::of(db()),
            prop::option::of(unit_f32())
        )
            .prop_map(|(seconds, level_db, speech_threshold)| Spec::DeadAir {
                seconds,
                level_db,
                speech_threshold
            }),
        (
            prop::option::of(positive_ms()),
            prop::option::of(unit_f32())
        )
            .prop_map(|(window_ms, ratio)| Spec::Clipping { window_ms, ratio }),
        (prop::option::of(positive_ms()), prop::option::of(db())).prop_map(
            |(window_ms, below_db)| Spec::Quiet {
                window_ms,
                below_db
            }
        ),
        (
            prop::sample::select(LABELS.to_vec()),
            " {0,2}",
            prop::option::of(unit_f32()),
            prop::option::of(ms()),
            prop::option::of(ms())
        )
            .prop_map(
                |(label, pad, threshold, min_duration_ms, release_ms)| Spec::Sound {
                    label: format!("{pad}{label}{pad}"),
                    threshold,
                    min_duration_ms,
                    release_ms,
                }
            ),
    ]
}

impl Spec {
    fn kind(&self) -> &'static str {
        match self {
            Spec::Keyword { .. } => "keyword",
            Spec::Phrase { .. } => "phrase",
            Spec::Regex { .. } => "regex",
            Spec::Wake { .. } => "wake",
            Spec::DeadAir { .. } => "dead-air",
            Spec::Clipping { .. } | Spec::Quiet { .. } => "level",
            Spec::Sound { .. } => "sound-event",
        }
    }

    fn is_text(&self) -> bool {
        matches!(
            self,
            Spec::Keyword { .. } | Spec::Phrase { .. } | Spec::Regex { .. } | Spec::Wake { .. }
        )
    }

    /// The key that must be present (besides name and kind), if any.
    fn required(&self) -> Option<&'static str> {
        match self {
            Spec::Keyword { .. } => Some("words"),
            Spec::Phrase { .. } => Some("phrases"),
            Spec::Regex { .. } => Some("pattern"),
            Spec::Wake { .. } => None,
            Spec::DeadAir { .. } => Some("seconds"),
            Spec::Clipping { .. } | Spec::Quiet { .. } => Some("condition"),
            Spec::Sound { .. } => Some("label"),
        }
    }
}

fn on_str(on: Option<bool>) -> Option<String> {
    on.map(|f| toml_str(if f { "final" } else { "partial" }))
}

impl Desc {
    /// The table's entries, `(key, TOML value)`, in file order.
    fn entries(&self) -> Vec<(String, String)> {
        let mut e: Vec<(&str, Option<String>)> = vec![
            ("name", Some(toml_str(&self.name))),
            ("kind", Some(toml_str(self.spec.kind()))),
        ];
        let f = |v: &Option<f32>| v.map(|v| format!("{v:?}"));
        let u = |v: &Option<u32>| v.map(|v| v.to_string());
        match &self.spec {
            Spec::Keyword { words, on } => {
                e.push(("words", Some(toml_list(words))));
                e.push(("on", on_str(*on)));
            }
            Spec::Phrase { phrases, on } => {
                e.push(("phrases", Some(toml_list(phrases))));
                e.push(("on", on_str(*on)));
            }
            Spec::Regex { pattern, on } => {
                e.push(("pattern", Some(toml_str(pattern))));
                e.push(("on", on_str(*on)));
            }
            Spec::Wake {
                phrases,
                wake_name,
                require_question,
                on,
            } => {
                e.push(("phrases", phrases.as_deref().map(toml_list)));
                e.push(("wake-name", wake_name.as_deref().map(toml_str)));
                e.push(("require-question", require_question.map(|b| b.to_string())));
                e.push(("on", on_str(*on)));
            }
            Spec::DeadAir {
                seconds,
                level_db,
                speech_threshold,
            } => {
                e.push(("seconds", Some(format!("{seconds:?}"))));
                e.push(("level-db", f(level_db)));
                e.push(("speech-threshold", f(speech_threshold)));
            }
            Spec::Clipping { window_ms, ratio } => {
                e.push(("condition", Some(toml_str("clipping"))));
                e.push(("window-ms", u(window_ms)));
                e.push(("ratio", f(ratio)));
            }
            Spec::Quiet {
                window_ms,
                below_db,
            } => {
                e.push(("condition", Some(toml_str("quiet"))));
                e.push(("window-ms", u(window_ms)));
                e.push(("below-db", f(below_db)));
            }
            Spec::Sound {
                label,
                threshold,
                min_duration_ms,
                release_ms,
            } => {
                e.push(("label", Some(toml_str(label))));
                e.push(("threshold", f(threshold)));
                e.push(("min-duration-ms", u(min_duration_ms)));
                e.push(("release-ms", u(release_ms)));
            }
        }
        e.push(("cooldown-ms", u(&self.cooldown_ms)));
        e.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    }

    /// Checks a parsed rule against what was written, defaults applied.
    fn check(&self, r: &Rule) -> Result<(), TestCaseError> {
        prop_assert_eq!(&r.name, &self.name);
        // A sound-event rule whose label names a built-in class takes the class's cooldown.
        let class_cooldown = match &self.spec {
            Spec::Sound { label, .. } => {
                soundflow::decide::alerts::classes::class(label.trim()).map(|c| c.cooldown_ms)
            }
            _ => None,
        };
        let default_cooldown = if self.spec.is_text() {
            0
        } else {
            class_cooldown.unwrap_or(10_000)
        };
        prop_assert_eq!(r.cooldown_ms, self.cooldown_ms.unwrap_or(default_cooldown));
        let trigger = |on: Option<bool>, default: Trigger| match on {
            None => default,
            Some(true) => Trigger::Final,
            Some(false) => Trigger::Partial,
        };
        let rf = |v: Option<f32>, d: f32| v.map_or(d, reread);
        match (&self.spec, &r.spec) {
            (Spec::Keyword { words, on }, RuleSpec::Keyword { words: got }) => {
                // normalize_word itself is checked against expectations below.
                let want: Vec<String> = words.iter().map(|w| normalize_word(w)).collect();
                prop_assert_eq!(got, &want);
                prop_assert_eq!(r.on, trigger(*on, Trigger::Partial));
            }
            (Spec::Phrase { phrases, on }, RuleSpec::Phrase { phrases: got }) => {
                let want: Vec<String> = phrases.iter().map(|p| p.trim().to_string()).collect();
                prop_assert_eq!(got, &want);
                prop_assert_eq!(r.on, trigger(*on, Trigger::Partial));
            }
            (Spec::Regex { pattern, on }, RuleSpec::Regex { pattern: got }) => {
                prop_assert_eq!(got.as_str(), pattern.as_str());
                prop_assert_eq!(r.on, trigger(*on, Trigger::Partial));
            }
            (
                Spec::Wake {
                    phrases,
                    wake_name,
                    require_question,
                    on,
                },
                RuleSpec::Wake {
                    phrases: got,
                    require_question: rq,
                    follow_up_ms,
                },
            ) => {
                let want: Vec<String> = match (phrases, wake_name) {
                    (Some(p), _) => p.iter().map(|p| p.trim().to_string()).collect(),
                    (None, Some(n)) => vec![format!("hey {}", n.trim())],
                    (None, None) => vec!["hey assistant".to_string()],
                };
                prop_assert_eq!(got, &want);
                prop_assert_eq!(*rq, require_question.unwrap_or(true));
                prop_assert_eq!(*follow_up_ms, 6000);
                prop_assert_eq!(r.on, trigger(*on, Trigger::Final));
            }
            (
                Spec::DeadAir {
                    seconds,
                    level_db,
                    speech_threshold,
                },
                RuleSpec::DeadAir {
                    seconds: s,
                    level_db: l,
                    speech_threshold: t,
                },
            ) => {
                prop_assert_eq!(*s, reread(*seconds));
                prop_assert_eq!(*l, rf(*level_db, -45.0));
                prop_assert_eq!(*t, rf(*speech_threshold, 0.5));
            }
            (
                Spec::Clipping { window_ms, ratio },
                RuleSpec::Clipping {
                    window_ms: w,
                    ratio: q,
                },
            ) => {
                prop_assert_eq!(*w, window_ms.unwrap_or(1000));
                prop_assert_eq!(*q, rf(*ratio, 0.005));
            }
            (
                Spec::Quiet {
                    window_ms,
                    below_db,
                },
                RuleSpec::Quiet {
                    window_ms: w,
                    below_db: b,
                },
            ) => {
                prop_assert_eq!(*w, window_ms.unwrap_or(3000));
                prop_assert_eq!(*b, rf(*below_db, -45.0));
            }
            (
                Spec::Sound {
                    label,
                    threshold,
                    min_duration_ms,
                    release_ms,
                },
                RuleSpec::SoundEvent {
                    labels: l,
                    threshold: t,
                    min_duration_ms: m,
                    release_ms: rl,
                    ..
                },
            ) => {
                // A label that names a built-in class brings the class's labels and values.
                let class = soundflow::decide::alerts::classes::class(label.trim());
                match class {
                    Some(c) => {
                        let names: Vec<&str> = l.iter().map(|x| x.name.as_str()).collect();
                        prop_assert_eq!(names, c.labels.to_vec());
                    }
                    None => {
                        prop_assert_eq!(l.len(), 1);
                        prop_assert_eq!(l[0].name.as_str(), label.trim());
                        prop_assert!(l[0].required);
                    }
                }
                let (dt, dm, dr) = class.map_or((0.5, 1000, 2000), |c| {
                    (c.threshold, c.min_duration_ms, c.release_ms)
                });
                prop_assert_eq!(*t, rf(*threshold, dt));
                prop_assert_eq!(*m, min_duration_ms.unwrap_or(dm));
                prop_assert_eq!(*rl, release_ms.unwrap_or(dr));
            }
            (want, got) => prop_assert!(false, "{want:?} parsed as {got:?}"),
        }
        Ok(())
    }
}

/// A rules file as a structure, so that one fault can be put at a known line.
#[derive(Debug, Clone)]
struct Doc {
    /// Top-level entries (`include-defaults`).
    top: Vec<(String, String)>,
    tables: Vec<Table>,
    /// Windows line ends: lines still count by `\n`.
    crlf: bool,
}

#[derive(Debug, Clone)]
struct Table {
    /// Blank and comment lines before the `[[rule]]` header.
    filler: Vec<String>,
    entries: Vec<(String, String)>,
}

/// Where an error must point.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Top(usize),
    Header(usize),
    Entry(usize, usize),
}

impl Doc {
    /// The text, and the 1-based line of each target.
    fn render(&self) -> (String, Vec<(Target, usize)>) {
        let mut text = String::new();
        let mut lines = Vec::new();
        let mut line = 1;
        let newline = if self.crlf { "\r\n" } else { "\n" };
        let mut put = |text: &mut String, s: &str, t: Option<Target>| {
            text.push_str(s);
            text.push_str(newline);
            if let Some(t) = t {
                lines.push((t, line));
            }
            line += 1;
        };
        for (i, (k, v)) in self.top.iter().enumerate() {
            put(&mut text, &format!("{k} = {v}"), Some(Target::Top(i)));
        }
        for (ti, t) in self.tables.iter().enumerate() {
            for f in &t.filler {
                put(&mut text, f, None);
            }
            put(&mut text, "[[rule]]", Some(Target::Header(ti)));
            for (ei, (k, v)) in t.entries.iter().enumerate() {
                put(
                    &mut text,
                    &format!("{k} = {v}"),
                    Some(Target::Entry(ti, ei)),
                );
            }
        }
        (text, lines)
    }

    fn line_of(&self, target: Target) -> usize {
        let (_, lines) = self.render();
        lines.iter().find(|(t, _)| *t == target).unwrap().1
    }
}

fn filler() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just(String::new()),
            "[ \t]{0,3}".prop_map(String::from),
            "[^\\x00-\\x1f\\x7f]{0,20}".prop_map(|s| format!("# {s}")),
        ],
        0..3,
    )
}

/// A valid rules file: its structure, its rules as written, and whether it includes the
/// defaults. Some rules take a built-in's name, which they then replace.
fn valid_file() -> impl Strategy<Value = (Doc, Vec<Desc>, bool)> {
    (
        prop::collection::vec(
            (
                spec(),
                prop::option::of(ms()),
                "[a-zA-Z0-9 _\\-\"\\\\'éß日😀\t]{0,8}",
                prop::option::of(prop::sample::select(default_names())),
                filler(),
            ),
            0..7,
        ),
        prop::option::of(any::<bool>()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(rules, include, crlf)| {
            let mut used = HashSet::new();
            let mut descs = Vec::new();
            let mut tables = Vec::new();
            for (i, (spec, cooldown_ms, base, default_name, filler)) in
                rules.into_iter().enumerate()
            {
                let name = match default_name {
                    Some(d) if !used.contains(d) => d.to_string(),
                    _ => format!("{base}#{i}"),
                };
                used.insert(name.clone());
                let desc = Desc {
                    name,
                    cooldown_ms,
                    spec,
                };
                tables.push(Table {
                    filler,
                    entries: desc.entries(),
                });
                descs.push(desc);
            }
            let top = include
                .map(|b| vec![("include-defaults".to_string(), b.to_string())])
                .unwrap_or_default();
            (Doc { top, tables, crlf }, descs, include == Some(true))
        })
}

/// The names a parsed file must have, in order.
fn expected_names(descs: &[Desc], include: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if include {
        names.extend(
            default_names()
                .into_iter()
                .filter(|d| !descs.iter().any(|r| r.name == *d))
                .map(|d| d.to_string()),
        );
    }
    names.extend(descs.iter().map(|d| d.name.clone()));
    names
}

/// Checks an error: a rules error with the origin and a line inside the text.
fn check_error(e: &Error, text: &str, origin: &str) -> Result<usize, TestCaseError> {
    match e {
        Error::Rules {
            origin: o,
            line,
            message,
        } => {
            prop_assert_eq!(o.as_str(), origin);
            let lines = text.matches('\n').count() + 1;
            prop_assert!(
                (1..=lines).contains(line),
                "line {} outside 1..={} for {:?}: {}",
                line,
                lines,
                text,
                message
            );
            prop_assert!(!message.is_empty());
            let shown = e.to_string();
            let prefix = format!("{origin}:{line}: ");
            prop_assert!(shown.starts_with(&prefix), "{}", shown);
            Ok(*line)
        }
        other => Err(TestCaseError::fail(format!("not a rules error: {other:?}"))),
    }
}

/// Invariants of any rule set that parsed, whatever the text.
fn check_parsed(set: &RuleSet) -> Result<(), TestCaseError> {
    let mut names = HashSet::new();
    for r in &set.rules {
        prop_assert!(!r.name.trim().is_empty());
        prop_assert!(names.insert(r.name.clone()), "duplicate {}", r.name);
        let unit = |v: f32| v.is_finite() && v > 0.0 && v <= 1.0;
        match &r.spec {
            RuleSpec::Keyword { words } => {
                prop_assert!(!words.is_empty());
                prop_assert!(words.iter().all(|w| !w.is_empty()));
            }
            RuleSpec::Phrase { phrases } | RuleSpec::Wake { phrases, .. } => {
                prop_assert!(!phrases.is_empty());
            }
            RuleSpec::Regex { .. } => {}
            RuleSpec::DeadAir {
                seconds,
                level_db,
                speech_threshold,
            } => {
                prop_assert!(seconds.is_finite() && *seconds > 0.0);
                prop_assert!(level_db.is_finite() && unit(*speech_threshold));
            }
            RuleSpec::Clipping { window_ms, ratio } => {
                prop_assert!(*window_ms > 0 && unit(*ratio));
            }
            RuleSpec::Quiet {
                window_ms,
                below_db,
            } => {
                prop_assert!(*window_ms > 0 && below_db.is_finite());
            }
            RuleSpec::SoundEvent {
                labels, threshold, ..
            } => {
                prop_assert!(!labels.is_empty());
                for l in labels {
                    prop_assert!(!l.name.is_empty() && l.name.trim() == l.name);
                }
                prop_assert!(unit(*threshold));
            }
        }
    }
    Ok(())
}

/// Random edits of a text: delete, insert, duplicate or swap lines, at char boundaries.
fn edit(text: &str, ops: &[(u8, Index, Index, String)]) -> String {
    let mut t = text.to_string();
    for (op, a, b, ins) in ops {
        let bounds: Vec<usize> = t.char_indices().map(|(i, _)| i).chain([t.len()]).collect();
        let ia = a.index(bounds.len());
        match op % 4 {
            0 => {
                // up to 8 chars from a char boundary
                let ib = (ia + 1 + b.index(8)).min(bounds.len() - 1);
                t.replace_range(bounds[ia]..bounds[ib], "");
            }
            1 => t.insert_str(bounds[ia], ins),
            2 => {
                let mut lines: Vec<&str> = t.split('\n').collect();
                let line = lines[a.index(lines.len())];
                let j = b.index(lines.len() + 1);
                lines.insert(j, line);
                t = lines.join("\n");
            }
            _ => {
                let mut lines: Vec<String> = t.split('\n').map(String::from).collect();
                let (i, j) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(i, j);
                t = lines.join("\n");
            }
        }
    }
    t
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[\\[\\]a-z=\"'\\n\\r #.,0-9{}\\-+_:\\\\]{0,200}",
        (
            valid_file(),
            prop::collection::vec(
                (
                    any::<u8>(),
                    any::<Index>(),
                    any::<Index>(),
                    "[\\[\\]=\"\n#a-z0-9.\\- ]{0,6}"
                ),
                1..4
            )
        )
            .prop_map(|((doc, _, _), ops)| edit(&doc.render().0, &ops)),
    ]
}

proptest! {
    #![proptest_config(config(5000))]

    /// Property 7: whatever the text, parsing never panics; an error is a rules error with
    /// the given origin and a line inside the text; a success holds only usable rules.
    #[test]
    fn parsing_any_text_never_panics(
        text in any_text(),
        origin in prop_oneof![Just(ORIGIN.to_string()), ".{0,12}"],
    ) {
        match RuleSet::parse(&text, &origin) {
            Ok(set) => check_parsed(&set)?,
            Err(e) => {
                check_error(&e, &text, &origin)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Property 8, valid files: they parse, with the rules in order, the defaults merged
    /// as documented, and every value (or its default) as written.
    #[test]
    fn generated_valid_files_parse_as_written((doc, descs, include) in valid_file()) {
        let (text, _) = doc.render();
        let set = match RuleSet::parse(&text, ORIGIN) {
            Ok(s) => s,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n--- for:\n{text}"))),
        };
        check_parsed(&set)?;
        let names: Vec<String> = set.rules.iter().map(|r| r.name.clone()).collect();
        prop_assert_eq!(names, expected_names(&descs, include));
        let user = &set.rules[set.rules.len() - descs.len()..];
        for (d, r) in descs.iter().zip(user) {
            d.check(r)?;
        }
        prop_assert_eq!(set.has_text_rules(), set.rules.iter().any(|r| r.spec.is_text()));
    }
}

/// One fault put into a valid file.
#[derive(Debug, Clone)]
enum Fault {
    /// Set a key of one rule (replacing it, or adding it) to a bad value.
    Set(&'static str, &'static str),
    /// Remove a key the rule needs: the error points at the `[[rule]]` header.
    Remove(&'static str),
    /// Give a later rule an earlier rule's name.
    DuplicateName,
    /// Repeat an entry of the table later in it (a TOML error).
    RepeatKey,
    /// An unknown key in a rule.
    UnknownKey,
    /// An unknown key at the top level.
    UnknownTopKey,
}

/// Values that are wrong for any rule.
const ANY_RULE_FAULTS: &[(&str, &str)] = &[
    ("kind", "\"sound\""),
    ("kind", "\"\""),
    ("kind", "true"),
    ("name", "\"  \""),
    ("name", "3"),
    ("name", "[\"a\"]"),
    ("cooldown-ms", "-1"),
    ("cooldown-ms", "4294967296"),
    ("cooldown-ms", "1.5"),
    ("cooldown-ms", "\"10\""),
];

/// Values that are wrong for a rule of this kind: out of range, of the wrong type, or keys
/// that do not apply to it.
fn kind_faults(spec: &Spec) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<(&str, &str)> = match spec {
        Spec::Keyword { .. } => vec![
            ("words", "[]"),
            ("words", "[\"two words\"]"),
            ("words", "[\"...\"]"),
            ("words", "\"budget\""),
            ("words", "[1]"),
        ],
        Spec::Phrase { .. } => vec![
            ("phrases", "[]"),
            ("phrases", "[\"!! ?\"]"),
            ("phrases", "[[\"a\"]]"),
            ("words", "[\"x\"]"),
        ],
        Spec::Regex { .. } => vec![
            ("pattern", "\"(\""),
            ("pattern", "\"[a-\""),
            ("pattern", "1"),
            ("pattern", "\"x{99999999999}\""),
        ],
        Spec::Wake {
            phrases, wake_name, ..
        } => {
            let mut v = vec![("require-question", "\"yes\""), ("require-question", "1")];
            if phrases.is_some() {
                v.push(("wake-name", "\"bob\""));
                v.push(("phrases", "[\"--\"]"));
                v.push(("phrases", "[]"));
            } else if wake_name.is_some() {
                v.push(("wake-name", "\"--\""));
                v.push(("wake-name", "\" \""));
            }
            v
        }
        Spec::DeadAir { .. } => vec![
            ("seconds", "0"),
            ("seconds", "-1.5"),
            ("seconds", "nan"),
            ("seconds", "inf"),
            ("seconds", "1e39"),
            ("seconds", "\"10\""),
            ("speech-threshold", "0"),
            ("speech-threshold", "1.5"),
            ("speech-threshold", "-nan"),
            ("level-db", "nan"),
            ("level-db", "-inf"),
            ("window-ms", "1000"),
            ("label", "\"alarm\""),
        ],
        Spec::Clipping { .. } => vec![
            ("ratio", "0"),
            ("ratio", "1.0001"),
            ("ratio", "-inf"),
            ("window-ms", "0"),
            ("window-ms", "-5"),
            ("below-db", "-45.0"),
            ("condition", "\"loud\""),
            ("condition", "1"),
            ("seconds", "3.0"),
        ],
        Spec::Quiet { .. } => vec![
            ("window-ms", "0"),
            ("window-ms", "1.5"),
            ("below-db", "nan"),
            ("below-db", "\"-45\""),
            ("ratio", "0.1"),
            ("condition", "\"Quiet\""),
        ],
        Spec::Sound { .. } => vec![
            ("threshold", "0"),
            ("threshold", "1.5"),
            ("threshold", "-0.1"),
            ("threshold", "nan"),
            ("threshold", "1e-50"),
            ("label", "\"  \""),
            ("label", "[]"),
            ("min-duration-ms", "-1"),
            ("release-ms", "1e3"),
            ("words", "[\"a\"]"),
            ("condition", "\"quiet\""),
        ],
    };
    if spec.is_text() {
        v.extend([
            ("on", "\"soon\""),
            ("on", "1"),
            ("seconds", "1.0"),
            ("label", "\"x\""),
        ]);
    } else {
        v.extend([("on", "\"final\""), ("pattern", "\"x\"")]);
    }
    v
}

fn fault(descs: &[Desc], pick: Index, which: Index) -> Fault {
    let d = &descs[pick.index(descs.len())];
    let mut all: Vec<Fault> = ANY_RULE_FAULTS
        .iter()
        .chain(kind_faults(&d.spec).iter())
        .map(|&(k, v)| Fault::Set(k, v))
        .collect();
    all.extend([
        Fault::Remove("name"),
        Fault::Remove("kind"),
        Fault::RepeatKey,
        Fault::UnknownKey,
        Fault::UnknownTopKey,
    ]);
    if let Some(req) = d.spec.required() {
        all.push(Fault::Remove(req));
    }
    if descs.len() > 1 {
        all.push(Fault::DuplicateName);
    }
    all[which.index(all.len())].clone()
}

/// Puts the fault into rule `ti` of the document; returns where the error must point.
fn apply(doc: &mut Doc, ti: usize, fault: &Fault, at: Index) -> Target {
    let find = |entries: &[(String, String)], k: &str| entries.iter().position(|(e, _)| e == k);
    if let Fault::DuplicateName = fault {
        // a later rule takes an earlier rule's name: the error is at the later one
        let (from, to) = if ti > 0 { (at.index(ti), ti) } else { (0, 1) };
        let src = &doc.tables[from].entries;
        let name = src[find(src, "name").unwrap()].1.clone();
        let dst = &mut doc.tables[to].entries;
        let i = find(dst, "name").unwrap();
        dst[i].1 = name;
        return Target::Entry(to, i);
    }
    if let Fault::UnknownTopKey = fault {
        let j = at.index(doc.top.len() + 1);
        doc.top.insert(j, ("bogus-top".into(), "true".into()));
        return Target::Top(j);
    }
    let entries = &mut doc.tables[ti].entries;
    let insert = |entries: &mut Vec<(String, String)>, key: &str, value: &str| {
        let j = at.index(entries.len() + 1);
        entries.insert(j, (key.into(), value.into()));
        Target::Entry(ti, j)
    };
    match *fault {
        Fault::Set(key, value) => match find(entries, key) {
            Some(i) => {
                entries[i].1 = value.into();
                Target::Entry(ti, i)
            }
            None => insert(entries, key, value),
        },
        Fault::Remove(key) => {
            if let Some(i) = find(entries, key) {
                entries.remove(i);
            }
            Target::Header(ti)
        }
        Fault::RepeatKey => {
            let i = at.index(entries.len());
            let copy = entries[i].clone();
            // anywhere after the original: the second occurrence is the error
            let j = i + 1 + at.index(entries.len() - i);
            entries.insert(j, copy);
            Target::Entry(ti, j)
        }
        Fault::UnknownKey => insert(entries, "bogus-key", "1"),
        Fault::DuplicateName | Fault::UnknownTopKey => unreachable!(),
    }
}

proptest! {
    #![proptest_config(config(4000))]

    /// Property 8, single faults: out-of-range values, wrong types, keys of another kind,
    /// unknown keys, repeated keys, duplicate names and missing keys each give an error at
    /// the line of the offending key (at the `[[rule]]` header for a missing key).
    #[test]
    fn one_fault_is_reported_at_its_line(
        (doc, descs, _) in valid_file().prop_filter("a rule to break", |(_, d, _)| !d.is_empty()),
        pick in any::<Index>(),
        which in any::<Index>(),
        at in any::<Index>(),
    ) {
        let ti = pick.index(descs.len());
        let fault = fault(&descs, pick, which);
        let mut doc = doc;
        let target = apply(&mut doc, ti, &fault, at);
        let want = doc.line_of(target);
        let (text, _) = doc.render();
        match RuleSet::parse(&text, ORIGIN) {
            Ok(_) => prop_assert!(false, "{fault:?} in rule {ti} was accepted:\n{text}"),
            Err(e) => {
                let line = check_error(&e, &text, ORIGIN)?;
                prop_assert_eq!(
                    line, want, "{:?} in rule {}: {}\n--- for:\n{}", fault, ti, e, text
                );
            }
        }
    }
}

// =======================================================================================
// Alert rules: evaluators
// =======================================================================================

/// Words as a transcript has them: rule words, question words, punctuation, noise.
fn transcript_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "hey", "Hey,", "assistant", "assistant?", "what", "What", "is", "budget", "Budget!",
            "ticket", "42", "?", "", " ", "...", "don't", "it’s", "alarm", "action", "item",
            "follow", "up", "İstanbul", "日本語", "🚨",
        ]).prop_map(String::from),
        2 => word(),
        1 => ".{0,6}",
    ]
}

/// Growing hypotheses of utterances: each push has the words so far, then the final one.
#[derive(Debug, Clone)]
struct Utterance {
    words: Vec<Word>,
    /// Words to replace by one of the rule set's own words, so that rules do match.
    from_rules: Vec<Option<Index>>,
    partial_cuts: Vec<usize>,
    reset_before: bool,
}

impl Utterance {
    /// The words, with those picked from `vocabulary` (when it has any) replaced.
    fn resolve(&self, vocabulary: &[String]) -> Vec<Word> {
        let mut words = self.words.clone();
        if !vocabulary.is_empty() {
            for (w, pick) in words.iter_mut().zip(&self.from_rules) {
                if let Some(i) = pick {
                    w.text = vocabulary[i.index(vocabulary.len())].clone();
                }
            }
        }
        words
    }
}

/// The words the text rules of a set watch for, and question words for wake rules.
fn vocabulary(set: &RuleSet) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in &set.rules {
        match &r.spec {
            RuleSpec::Keyword { words } => v.extend(words.iter().cloned()),
            RuleSpec::Phrase { phrases } | RuleSpec::Wake { phrases, .. } => v.extend(
                phrases
                    .iter()
                    .flat_map(|p| p.split_whitespace().map(String::from)),
            ),
            _ => {}
        }
    }
    if set
        .rules
        .iter()
        .any(|r| matches!(r.spec, RuleSpec::Wake { .. }))
    {
        v.extend(["what", "is", "how", "it?"].map(String::from));
    }
    v
}

fn utterances() -> impl Strategy<Value = Vec<Utterance>> {
    prop::collection::vec(
        (
            prop::collection::vec(
                (
                    transcript_word(),
                    prop_oneof![4 => 0u64..16_000, 1 => 0u64..1 << 36],
                    0u64..32_000,
                    prop::bool::weighted(0.05),
                    prop::option::weighted(0.5, any::<Index>()),
                ),
                0..12,
            ),
            prop::collection::vec(any::<Index>(), 0..4),
            prop::bool::weighted(0.1),
            0u64..1 << 36,
        ),
        1..6,
    )
    .prop_map(|us| {
        let mut t = 0u64;
        us.into_iter()
            .map(|(ws, cuts, reset_before, jump)| {
                if reset_before {
                    t = jump;
                }
                let from_rules = ws.iter().map(|w| w.4).collect();
                let words: Vec<Word> = ws
                    .into_iter()
                    .map(|(text, gap, len, backwards, _)| {
                        t = if backwards {
                            t.saturating_sub(gap)
                        } else {
                            t + gap
                        };
                        let w = Word {
                            text,
                            start: t,
                            end: t + len,
                        };
                        t += len;
                        w
                    })
                    .collect();
                let mut partial_cuts: Vec<usize> =
                    cuts.iter().map(|c| c.index(words.len() + 1)).collect();
                partial_cuts.sort_unstable();
                Utterance {
                    words,
                    from_rules,
                    partial_cuts,
                    reset_before,
                }
            })
            .collect()
    })
}

fn odd_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(-0.0f32),
        any::<f32>()
    ]
}

/// Perceptions as chunks bring them: windows and tag frames advancing with jitter, gaps,
/// the odd step back, odd values now and then.
fn perceptions() -> impl Strategy<Value = Vec<Perception>> {
    (
        prop_oneof![Just(16_000u32), Just(0u32), 1u32..=192_000],
        prop_oneof![Just(512u32), Just(0u32), 1u32..=4096],
        prop::collection::vec(
            (
                prop::collection::vec(
                    (
                        prop_oneof![8 => Just(0i64), 1 => -5000i64..5000, 1 => 0i64..1 << 30],
                        prop_oneof![4 => 0f32..=1f32, 1 => odd_f32()],
                        prop_oneof![4 => -90f32..0f32, 1 => odd_f32()],
                        prop_oneof![4 => Just(0u32), 2 => 0u32..600, 1 => any::<u32>()],
                    ),
                    0..24,
                ),
                prop::collection::vec(
                    (
                        prop_oneof![4 => Just(0i64), 1 => -50_000i64..50_000],
                        prop_oneof![4 => Just(16_000u64), 1 => 0u64..40_000],
                        prop::collection::vec(prop_oneof![4 => 0f32..=1f32, 1 => odd_f32()], 0..9),
                    ),
                    0..6,
                ),
                prop::bool::weighted(0.05),
                prop::sample::subsequence(LABELS.to_vec(), 0..=LABELS.len()),
            ),
            1..30,
        ),
    )
        .prop_map(|(rate, window, chunks)| {
            let (mut w_at, mut t_at) = (0u64, 0u64);
            chunks
                .into_iter()
                .map(|(ws, ts, reset, labels)| {
                    let windows = ws
                        .into_iter()
                        .map(|(d, prob, level_db, clipped)| {
                            w_at = w_at.saturating_add_signed(d);
                            let w = WindowProb {
                                start: w_at,
                                prob,
                                level_db,
                                clipped,
                            };
                            w_at += window.max(1) as u64;
                            w
                        })
                        .collect();
                    let tags = ts
                        .into_iter()
                        .map(|(d, len, scores)| {
                            t_at = t_at.saturating_add_signed(d);
                            let f = TagFrame {
                                start: t_at,
                                end: t_at + len,
                                scores,
                            };
                            t_at += 4000;
                            f
                        })
                        .collect();
                    Perception {
                        rate,
                        window,
                        windows,
                        reset,
                        labels: labels.into_iter().map(String::from).collect(),
                        tags,
                    }
                })
                .collect()
        })
}

fn kind_of(spec: &RuleSpec) -> AlertKind {
    match spec {
        RuleSpec::Keyword { .. } | RuleSpec::Phrase { .. } | RuleSpec::Regex { .. } => {
            AlertKind::Keyword
        }
        RuleSpec::Wake { .. } => AlertKind::Respond,
        RuleSpec::DeadAir { .. } => AlertKind::DeadAir,
        RuleSpec::Clipping { .. } | RuleSpec::Quiet { .. } => AlertKind::Level,
        RuleSpec::SoundEvent {
            role: soundflow::decide::alerts::SoundRole::Ignore,
            ..
        } => AlertKind::Sound,
        RuleSpec::SoundEvent { .. } => AlertKind::SoundEvent,
    }
}

fn check_alerts(set: &RuleSet, alerts: &[Alert], rate: u32) -> Result<(), TestCaseError> {
    prop_assert!(
        alerts.windows(2).all(|p| p[0].start <= p[1].start),
        "start order"
    );
    for a in alerts {
        let rule = set.rules.iter().find(|r| r.name == a.rule);
        prop_assert!(rule.is_some(), "unknown rule {}", a.rule);
        prop_assert_eq!(a.kind, kind_of(&rule.unwrap().spec));
        prop_assert_eq!(a.rate, rate.max(1));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    /// Property 9: evaluators built from random valid rule sets take random words and
    /// random perceptions without panicking; what they report names a rule of the set,
    /// has that rule's kind, and comes in start order.
    #[test]
    fn evaluators_take_random_input(
        (doc, _, _) in valid_file(),
        rate in prop_oneof![Just(16_000u32), Just(0u32), 1u32..=192_000],
        utterances in utterances(),
        perceptions in perceptions(),
    ) {
        let set = RuleSet::parse(&doc.render().0, ORIGIN).unwrap();

        let mut text = TextAlerts::new(&set, rate);
        prop_assert_eq!(text.is_empty(), !set.has_text_rules());
        let vocabulary = vocabulary(&set);
        // Occurrences are remembered this long (DEDUP_MEMORY_MS in soundflow::decide::alerts).
        let memory = ms_to_samples(120_000, rate.max(1));
        for u in &utterances {
            let words = u.resolve(&vocabulary);
            if u.reset_before {
                text.reset();
            }
            for &cut in &u.partial_cuts {
                let out = text.push(&words[..cut], false);
                check_alerts(&set, &out, rate)?;
            }
            let out = text.push(&words, true);
            check_alerts(&set, &out, rate)?;
            // The same final text again reports nothing: every occurrence was handled,
            // as long as the utterance is shorter than the memory of occurrences.
            let first = words.iter().map(|w| w.start).min().unwrap_or(0);
            let last = words.iter().map(|w| w.end).max().unwrap_or(0);
            if last.saturating_sub(first) <= memory {
                let again = text.push(&words, true);
                prop_assert!(again.is_empty(), "repeated: {:?}", again);
            }
        }

        let mut audio = AudioAlerts::new(&set, rate);
        prop_assert_eq!(audio.is_empty(), !set.has_audio_rules());
        let _ = audio.check_labels(&LABELS.map(String::from));
        // After every chunk, what the end would make due there (on a copy): only a sound
        // event still sounding in the last tagger frame can be, never one already reported;
        // every other rule fires as soon as its windows show it. The end forgets the runs:
        // nothing is due twice. `raised` holds what was raised on the current timeline (a
        // reset or a step back starts another).
        let mut raised: Vec<Alert> = Vec::new();
        let mut newest_frame = 0u64;
        for p in &perceptions {
            let out = audio.push(p);
            check_alerts(&set, &out, rate)?;
            if p.reset || p.tags.iter().any(|f| f.start < newest_frame) {
                raised.clear();
            }
            newest_frame = p.tags.iter().map(|f| f.start).fold(newest_frame, u64::max);
            raised.extend(out);
            let mut ending = audio.clone();
            let due = ending.finish(u64::MAX);
            check_alerts(&set, &due, rate)?;
            for a in &due {
                prop_assert!(matches!(a.kind, AlertKind::SoundEvent | AlertKind::Sound));
                prop_assert!(
                    !raised.iter().any(|r| r.rule == a.rule && r.start == a.start),
                    "due at the end and raised before: {:?}", a
                );
            }
            let again = ending.finish(u64::MAX);
            prop_assert!(again.is_empty(), "due again: {:?}", again);
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// A keyword, phrase or wake rule fires on its own words as written (a final push of
    /// exactly those words): what the parser stores and what the evaluator compares agree.
    #[test]
    fn text_rules_fire_on_their_own_words(
        w in word(),
        p in phrase(),
        name in phrase(),
        rate in 1u32..=96_000,
    ) {
        let as_words = |s: &str, t0: u64| -> Vec<Word> {
            s.split_whitespace()
                .enumerate()
                .map(|(i, x)| {
                    let start = t0 + 1000 * i as u64;
                    Word { text: x.to_string(), start, end: start + 900 }
                })
                .collect()
        };
        let rules = format!(
            "[[rule]]\nname = \"k\"\nkind = \"keyword\"\nwords = {}\n\n\
             [[rule]]\nname = \"p\"\nkind = \"phrase\"\nphrases = {}\n\n\
             [[rule]]\nname = \"w\"\nkind = \"wake\"\nwake-name = {}\n",
            toml_list(std::slice::from_ref(&w)),
            toml_list(std::slice::from_ref(&p)),
            toml_str(&name),
        );
        let set = RuleSet::parse(&rules, ORIGIN).unwrap();

        let mut t = TextAlerts::new(&set, rate);
        let out = t.push(&as_words(&w, 0), true);
        prop_assert!(out.iter().any(|a| a.rule == "k"), "keyword {w:?}: {out:?}");

        let mut t = TextAlerts::new(&set, rate);
        let out = t.push(&as_words(&p, 0), true);
        prop_assert!(out.iter().any(|a| a.rule == "p"), "phrase {p:?}: {out:?}");

        let mut t = TextAlerts::new(&set, rate);
        let asked = format!("hey {} what time is it", name.trim());
        let out = t.push(&as_words(&asked, 0), true);
        prop_assert!(
            out.iter().any(|a| {
                a.rule == "w" && a.kind == AlertKind::Respond && a.text == "what time is it"
            }),
            "wake {asked:?}: {out:?}"
        );
    }
}

/// `İ` (U+0130) lowercases to `i` plus a combining dot. Keyword rules are normalised twice
/// (when parsed and when the evaluator is built), transcript words once: the normalisation
/// must be idempotent for a keyword with `İ` to match itself.
#[test]
fn keyword_with_dotted_capital_i_matches_itself() {
    let set = RuleSet::parse(
        "[[rule]]\nname = \"city\"\nkind = \"keyword\"\nwords = [\"İstanbul\"]\n",
        ORIGIN,
    )
    .unwrap();
    let mut t = TextAlerts::new(&set, 16_000);
    let said = [Word {
        text: "İstanbul".into(),
        start: 0,
        end: 8000,
    }];
    assert_eq!(t.push(&said, true).len(), 1);
}

// =======================================================================================
// Alert rules: word normalisation
// =======================================================================================

/// Words and how rules compare them, worked out by hand from the documented rule: lowercase
/// (as Unicode lowercases each letter, with final ς folded to σ), keep letters, digits and
/// apostrophes (’ counts as '), trim apostrophes at the ends.
#[test]
fn normalised_words_are_as_documented() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("Budget,", "budget"),
        ("BUDGET", "budget"),
        ("\"Don't!\"", "don't"),
        ("it\u{2019}s", "it's"),
        ("'quoted'", "quoted"),
        ("''a''", "a"),
        ("rock'n'roll", "rock'n'roll"),
        ("--", ""),
        ("", ""),
        ("...?!", ""),
        ("🚨", ""),
        ("42nd.", "42nd"),
        ("e-mail", "email"),
        // Capital dotted I lowers to i and a combining dot, which is not a letter.
        ("İstanbul", "istanbul"),
        ("İSTANBUL", "istanbul"),
        // Final sigma: capitals and lowercase text agree.
        ("ΟΔΟΣ", "οδοσ"),
        ("οδος", "οδοσ"),
        ("Οδός", "οδόσ"),
        ("ẞ", "ß"),
        ("Straße", "straße"),
        ("ǅ", "ǆ"),
        ("Ⅻ", "ⅻ"),
        ("ЖУК", "жук"),
        ("日本語", "日本語"),
        ("٣", "٣"),
    ];
    for &(word, want) in cases {
        assert_eq!(normalize_word(word), want, "{word:?}");
    }
}

/// Any text, with what normalisation cares about mixed in.
fn any_word() -> impl Strategy<Value = String> {
    prop_oneof![word(), ".{0,12}", "[A-Za-zΣσςİıẞß'’\\-.,!? ]{0,12}",]
}

proptest! {
    #![proptest_config(config(2000))]

    /// Properties of the normalisation that need no second implementation of it.
    #[test]
    fn normalisation_properties(w in any_word()) {
        let n = normalize_word(&w);
        // Idempotent: rule words are normalised when parsed and again when compared.
        prop_assert_eq!(normalize_word(&n), n.clone());
        // Only letters, digits and inner apostrophes; already lowercase.
        prop_assert!(n.chars().all(|c| c.is_alphanumeric() || c == '\''), "{:?}", n);
        prop_assert!(!n.starts_with('\'') && !n.ends_with('\''), "{:?}", n);
        prop_assert_eq!(n.to_lowercase(), n.clone());
        // Empty exactly when there is nothing to match: no letter or digit.
        prop_assert_eq!(n.is_empty(), !w.chars().any(char::is_alphanumeric), "{:?}", n);
        // Case-insensitive: the word as lowercase text (final ς and all) and with ASCII
        // capitals compare the same.
        prop_assert_eq!(normalize_word(&w.to_lowercase()), n.clone(), "lowercase of {:?}", w);
        prop_assert_eq!(normalize_word(&w.to_ascii_uppercase()), n.clone());
        // Punctuation around a word does not matter.
        prop_assert_eq!(normalize_word(&format!("(\"{w}\"),!")), n);
    }

    /// A keyword rule fires on its word however a transcript writes it: in lowercase, in
    /// ASCII capitals, with ’ for ', inside quotes and punctuation.
    #[test]
    fn keywords_match_case_and_punctuation_variants(w in word()) {
        let set = RuleSet::parse(
            &format!("[[rule]]\nname = \"k\"\nkind = \"keyword\"\nwords = {}\n", toml_list(std::slice::from_ref(&w))),
            ORIGIN,
        )
        .unwrap();
        let variants = [
            w.to_lowercase(),
            w.to_ascii_uppercase(),
            w.replace('\'', "\u{2019}"),
            format!("\"{w}\","),
            format!("({w})?"),
        ];
        for (i, v) in variants.iter().enumerate() {
            let mut t = TextAlerts::new(&set, 16_000);
            let said = [Word { text: v.clone(), start: 0, end: 8000 }];
            let out = t.push(&said, true);
            prop_assert!(out.len() == 1, "variant {} {:?} of {:?}: {:?}", i, v, w, out);
        }
    }
}
