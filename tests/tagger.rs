//! Sound-event taggers through the real ONNX Runtime: the loader's contract checks, the
//! streaming windows and both front ends, on two tiny arithmetic models (tests/data, made by
//! make_tagger_test_models.py) whose scores the test can predict.

mod common;

use std::path::{Path, PathBuf};

use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::perceive::tagger::{AudioTagger, TagWatch};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load(dir: &Path) -> soundflow::Result<AudioTagger> {
    let pkg = ModelPackage::load(dir)?;
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    AudioTagger::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cpu,
            ..Default::default()
        },
    )
}

fn sine(n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin())
        .collect()
}

/// A copy of a test package with one manifest line replaced (or a file removed).
fn altered(name: &str, from: &str, to: &str, remove: Option<&str>) -> PathBuf {
    let src = data(name);
    let dir = common::tmpdir(&format!("tagger-{name}"));
    for f in ["model.onnx", "model.toml", "labels.txt"] {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy package");
    }
    let toml = std::fs::read_to_string(dir.join("model.toml")).expect("manifest");
    std::fs::write(dir.join("model.toml"), toml.replace(from, to)).expect("manifest");
    if let Some(f) = remove {
        std::fs::remove_file(dir.join(f)).expect("remove");
    }
    dir
}

#[test]
fn waveform_windows_follow_the_stream_in_any_piece_sizes() {
    let mut t = load(&data("tagger-wave")).expect("loads");
    assert_eq!(t.labels(), ["loud", "quiet"]);
    assert_eq!((t.window_samples(), t.hop_samples()), (1600, 800));
    // 0.5 s of silence, then 0.5 s of a loud tone.
    let mut audio = vec![0.0f32; 8000];
    audio.extend(sine(8000, 0.5));
    let whole = t.process(1000, &audio).expect("scores");
    assert_eq!(whole.len(), (audio.len() - 1600) / 800 + 1);
    for (i, f) in whole.iter().enumerate() {
        assert_eq!(f.start, 1000 + 800 * i as u64);
        assert_eq!(f.end, f.start + 1600);
        let (a, b) = ((f.start - 1000) as usize, (f.end - 1000) as usize);
        if b <= 8000 {
            assert!(
                f.score(0) < 0.01 && f.score(1) > 0.99,
                "silent window {i}: {f:?}"
            );
        }
        if a >= 8000 {
            assert!(f.score(0) > 0.99, "loud window {i}: {f:?}");
        }
    }
    // The same audio in odd pieces gives the same windows.
    t.reset();
    let mut pieces = Vec::new();
    let mut pos = 0;
    for n in [1, 799, 3, 2000, 517, 4096].iter().cycle() {
        if pos >= audio.len() {
            break;
        }
        let end = (pos + n).min(audio.len());
        pieces.extend(
            t.process(1000 + pos as u64, &audio[pos..end])
                .expect("scores"),
        );
        pos = end;
    }
    assert_eq!(pieces.len(), whole.len());
    for (a, b) in pieces.iter().zip(&whole) {
        assert_eq!((a.start, a.end), (b.start, b.end));
        assert!((a.score(0) - b.score(0)).abs() < 1e-5);
    }
    // A jump in positions starts the windows over from the new position.
    let after = t.process(100_000, &sine(2400, 0.5)).expect("scores");
    assert_eq!(
        after.iter().map(|f| f.start).collect::<Vec<_>>(),
        [100_000, 100_800]
    );
    // Windows can be scored directly, as one batch.
    let quiet = vec![0.0f32; 1600];
    let loud = sine(1600, 0.5);
    let rows = t.score(&[&quiet, &loud]).expect("batch");
    assert!(rows[0][0] < 0.01 && rows[1][0] > 0.99);
    assert!(t.score(&[&quiet[..100]]).is_err());
}

/// With a watch, quiet stretches are looked at one abutting window after another, and from
/// the first window in which the watched label comes near, at the model's hop again; odd
/// piece sizes give the same windows.
#[test]
fn a_watched_tagger_looks_coarsely_until_a_watched_label_comes_near() {
    let mut t = load(&data("tagger-wave")).expect("loads");
    // 1 s of silence, then 1 s of a loud tone, then silence again.
    let mut audio = vec![0.0f32; 16000];
    audio.extend(sine(16000, 0.5));
    audio.extend(vec![0.0f32; 16000]);
    let watch = TagWatch {
        labels: vec![(0, 0.25)],
        // Asked for more than a window: clamped to one, so no sample goes unheard.
        calm_hop: 5000,
    };
    t.set_watch(Some(watch.clone()));
    let frames = t.process(0, &audio).expect("scores");
    let starts: Vec<u64> = frames.iter().map(|f| f.start).collect();
    // Calm: every 1600 (the window). The window at 16000 hears the tone and is near: the
    // model-hop window between it and the calm one before (15200) is scored too and put
    // before it, and the next comes one hop (800) on, and so on while it sounds.
    let calm: Vec<u64> = (0..10).map(|i| i * 1600).collect();
    assert_eq!(&starts[..10], &calm[..]);
    assert_eq!(&starts[10..13], &[15200, 16000, 16800]);
    assert!(frames[11].score(0) >= 0.25, "{:?}", frames[11]);
    for w in frames[10..].windows(2) {
        let step = w[1].start - w[0].start;
        let near = w[0].score(0) >= 0.25;
        assert_eq!(step, if near { 800 } else { 1600 }, "after {:?}", w[0]);
    }
    // Fewer windows than without a watch; from the first near one on, the same as without.
    t.set_watch(None);
    t.reset();
    let all = t.process(0, &audio).expect("scores");
    assert!(
        frames.len() * 4 <= all.len() * 3,
        "{} vs {}",
        frames.len(),
        all.len()
    );
    let loud =
        |f: &&soundflow::perceive::perception::TagFrame| f.start >= 16000 && f.score(0) > 0.25;
    assert_eq!(
        frames
            .iter()
            .filter(loud)
            .map(|f| f.start)
            .collect::<Vec<_>>(),
        all.iter().filter(loud).map(|f| f.start).collect::<Vec<_>>()
    );
    // The same audio in odd pieces gives the same windows.
    t.set_watch(Some(watch));
    t.reset();
    let mut pieces = Vec::new();
    let mut pos = 0;
    for n in [1, 799, 3, 2000, 517, 4096].iter().cycle() {
        if pos >= audio.len() {
            break;
        }
        let end = (pos + n).min(audio.len());
        pieces.extend(t.process(pos as u64, &audio[pos..end]).expect("scores"));
        pos = end;
    }
    assert_eq!(pieces.iter().map(|f| f.start).collect::<Vec<_>>(), starts);
}

#[test]
fn log_mel_front_end_and_logits() {
    let mut t = load(&data("tagger-logmel")).expect("loads");
    let silent = vec![0.0f32; 1680];
    let loud = sine(1680, 0.5);
    let rows = t.score(&[&silent, &loud]).expect("scores");
    // Digital silence: ln(1e-6) everywhere, far below zero; the tone: large energies in the
    // band that holds 440 Hz pull the mean up. The sigmoid maps the logits into (0, 1).
    assert!(rows[0][0] < 1e-3 && rows[0][1] > 0.999, "{rows:?}");
    assert!(rows[1][0] > rows[0][0], "{rows:?}");
    for r in &rows {
        assert!(
            (r[0] + r[1] - 1.0).abs() < 1e-4,
            "sigmoid(x) + sigmoid(-x) = 1: {r:?}"
        );
    }
}

#[test]
fn mismatched_packages_are_refused_with_a_reason() {
    let e = load(&altered(
        "tagger-wave",
        "window = 1600",
        "window = 1000",
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("dimension 1 is 1600") && e.contains("1000"),
        "{e}"
    );

    let dir = altered("tagger-wave", "", "", None);
    std::fs::write(dir.join("labels.txt"), "a\nb\nc\n").expect("labels");
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("2 scores") && e.contains("lists 3"), "{e}");

    let e = load(&altered("tagger-wave", "", "", Some("labels.txt")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels.txt"), "{e}");

    let e = load(&altered(
        "tagger-wave",
        "input_kind = \"waveform\"",
        "input_kind = \"spectrogram\"",
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("spectrogram") && e.contains("log-mel"), "{e}");

    let e = load(&altered("tagger-logmel", "n_mels = 8", "n_mels = 16", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("16"), "{e}");

    let e = load(&altered(
        "tagger-wave",
        "family = \"audio-tagger\"",
        "family = \"silero-vad\"",
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("audio-tagger"), "{e}");
}

/// The project's own tagger on sounds made here: a smoke-alarm pattern, a phone ring and speech.
#[test]
fn project_tagger_tells_alarm_phone_and_speech_apart() {
    let pkg =
        ModelPackage::find("lalm-tagger").expect("lalm-tagger package (run scripts/setup.sh)");
    let mut t = load(&pkg.dir).expect("loads");
    let label = |name: &str| t.labels().iter().position(|l| l == name).expect("label");
    let (alarm, phone, speech) = (label("alarm"), label("phone"), label("speech"));
    let tone = |freqs: &[f32], secs: f32| -> Vec<f32> {
        (0..(secs * 16000.0) as usize)
            .map(|i| {
                let t = i as f32 / 16000.0;
                freqs
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum::<f32>()
                    * 0.2
                    / freqs.len() as f32
            })
            .collect()
    };
    let mut beeps = Vec::new();
    for _ in 0..3 {
        beeps.extend(tone(&[3150.0], 0.5));
        beeps.extend(vec![0.0; 8000]);
    }
    let ring = tone(&[440.0, 480.0], 1.0);
    let dir = common::tmpdir("tagger-speech");
    let said = common::speak(
        &dir,
        "Could you send me the report before lunch?",
        "en-us",
        160,
    );
    let window = |x: &[f32]| x[..15360.min(x.len())].to_vec();
    let mut padded = window(&said);
    padded.resize(15360, 0.0);
    let rows = t
        .score(&[&window(&beeps), &window(&ring), &padded])
        .expect("scores");
    eprintln!("{:?}\n{rows:?}", t.labels());
    assert!(
        rows[0][alarm] > 0.5 && rows[0][phone] < 0.5,
        "beeps: {:?}",
        rows[0]
    );
    assert!(
        rows[1][phone] > 0.5 && rows[1][alarm] < 0.5,
        "ring: {:?}",
        rows[1]
    );
    assert!(rows[2][speech] > 0.5, "speech: {:?}", rows[2]);
    for (i, s) in rows[2].iter().enumerate() {
        if i != speech && t.labels()[i] != "music" {
            assert!(*s < 0.5, "speech scored {} {s}", t.labels()[i]);
        }
    }
}

/// The default tagger, CED-Tiny: its 527 AudioSet labels hold every label the built-in sound
/// classes name (a typo there would leave a class deaf without an error), the package runs
/// through the family with the level gate, and espeak-ng speech scores as speech and raises
/// no respond class.
#[test]
fn ced_tiny_has_every_class_label_and_hears_speech_as_speech() {
    let pkg = ModelPackage::find("ced-tiny").expect("ced-tiny package (run scripts/setup.sh)");
    let mut t = load(&pkg.dir).expect("loads");
    assert_eq!(t.labels().len(), 527);
    let lower: Vec<String> = t.labels().iter().map(|l| l.to_lowercase()).collect();
    for c in soundflow::decide::alerts::classes::CLASSES {
        for l in c.labels.iter().filter(|l| **l != "phone") {
            assert!(
                lower.contains(&l.to_lowercase()),
                "class {}: `{l}` is not a ced-tiny label",
                c.name
            );
        }
    }
    assert_eq!((t.window_samples(), t.hop_samples()), (32000, 8000));

    let dir = common::tmpdir("ced-speech");
    let said = common::speak(
        &dir,
        "Could you send me the report before lunch? I will read it this afternoon.",
        "en-us",
        160,
    );
    // Silence first: the gate scores it 0 without running the model.
    t.set_gate_db(Some(-60.0));
    let mut x = vec![0.0f32; 32000];
    x.extend_from_slice(&said);
    let frames = t.process(0, &x).expect("scores");
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert!(
        frames[0].scores.iter().all(|&s| s == 0.0),
        "silence was scored"
    );
    let (gated, scored) = t.gate_counts();
    assert!(gated >= 1 && scored >= 1, "gated {gated}, scored {scored}");
    let speech = t
        .labels()
        .iter()
        .position(|l| l == "Speech")
        .expect("Speech");
    let best = frames.iter().map(|f| f.scores[speech]).fold(0.0, f32::max);
    assert!(best > 0.5, "speech scored {best}");
    let index = |l: &str| lower.iter().position(|x| *x == l.to_lowercase());
    for c in soundflow::decide::alerts::classes::CLASSES
        .iter()
        .filter(|c| c.role == soundflow::decide::alerts::SoundRole::Respond)
    {
        for f in &frames {
            let s = c
                .labels
                .iter()
                .filter_map(|l| index(l))
                .map(|i| f.scores[i])
                .fold(0.0, f32::max);
            assert!(s < c.threshold, "speech scored {} {s}", c.name);
        }
    }
}

/// The default `ced-tiny` runs its MatMuls in int8 with activations scaled per call. Each
/// window runs alone (`max_batch = 1`), so a window's scores are the same, bit for bit,
/// whatever shares its call: a file's alerts cannot depend on what other streams send at
/// the same moment. And on real recordings (a studio voice, a recorded police siren) the int8
/// model scores within a few hundredths of the published fp32 export.
#[test]
fn int8_ced_tiny_scores_each_window_alone_and_close_to_fp32() {
    let int8 = ModelPackage::find("ced-tiny").expect("ced-tiny package (run scripts/setup.sh)");
    let fp32 = ModelPackage::find("ced-tiny-fp32").expect("ced-tiny-fp32 (run scripts/setup.sh)");
    let mut q = load(&int8.dir).expect("ced-tiny loads");
    let mut f = load(&fp32.dir).expect("ced-tiny-fp32 loads");
    let dir = common::tmpdir("ced-int8");
    let (speech, _) = common::asterisk_prompts();
    let siren = common::real_clip(&dir, "siren-scorched-policecar");
    let window = q.window_samples();
    let mut windows: Vec<&[f32]> = speech.chunks_exact(window).take(12).collect();
    windows.extend(siren.chunks_exact(window).take(4));
    assert!(windows.len() >= 14, "{} windows", windows.len());

    // Each window with a loud other window in the same call, against it alone.
    let loud = sine(window, 0.9);
    for w in &windows {
        let alone = q.score(&[w]).expect("scores").remove(0);
        let shared = q.score(&[&loud, w]).expect("scores").remove(1);
        assert!(
            alone == shared,
            "a window scored differently beside another"
        );
    }

    let a = q.score(&windows).expect("int8 scores");
    let b = f.score(&windows).expect("fp32 scores");
    let siren_label = q.labels().iter().position(|l| l == "Siren").expect("Siren");
    let (mut worst, mut sum, mut n) = (0.0f32, 0.0f64, 0usize);
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            worst = worst.max((x - y).abs());
            sum += (x - y).abs() as f64;
            n += 1;
        }
    }
    assert!(worst < 0.1, "int8 and fp32 differ by up to {worst}");
    assert!(
        sum / (n as f64) < 1e-3,
        "mean difference {}",
        sum / n as f64
    );
    let heard = |rows: &[Vec<f32>]| {
        rows[12..]
            .iter()
            .map(|r| r[siren_label])
            .fold(0.0, f32::max)
    };
    assert!(
        heard(&a) > 0.3 && heard(&b) > 0.3,
        "siren {} / {}",
        heard(&a),
        heard(&b)
    );
}
